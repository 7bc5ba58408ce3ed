// raw.mjs - hand-made HTTP and WebSocket traffic over node:net.
//
// The official clients and node:http only produce well-formed traffic; the
// bad-input tests need the opposite (junk instead of HTTP, oversized heads,
// unmasked or truncated WebSocket frames, bytes dribbled one at a time), so
// this module writes bytes itself and parses what comes back just enough to
// assert on it.  Server frames are parsed strictly: a masked server frame or a
// reserved bit is recorded as a protocol violation by the service.
//
// Everything here has a timeout; sockets are destroyed by close()/destroy().

import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { deferred, sleep, waitFor, withTimeout } from './util.mjs';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const RS = '\x1e';

// Connected socket with everything it receives collected in .data; .ended resolves on close.
export async function rawConnect(port) {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    await withTimeout(new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
    }), 3000, 'TCP connect');
    const state = { socket, data: Buffer.alloc(0), error: null, closed: false };
    const ended = deferred();
    socket.on('data', (c) => { state.data = Buffer.concat([state.data, c]); });
    socket.on('error', (err) => { state.error = err; });
    socket.on('close', () => {
        state.closed = true;
        ended.resolve();
    });
    state.ended = ended.promise;
    return state;
}

// Writes buf one byte per TCP segment, pausing between bytes.
export async function writeByteByByte(socket, buf, pauseMs = 1) {
    for (const byte of buf) {
        if (socket.destroyed) return;
        socket.write(Buffer.from([byte]));
        await sleep(pauseMs);
    }
}

// Parses the status line and headers of the first HTTP response in buf (null if incomplete).
export function parseHttpResponse(buf) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = buf.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
    if (!m) return { status: NaN, statusLine: head[0], headers: {}, body: buf.subarray(end + 4) };
    const headers = {};
    for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    return { status: Number(m[1]), statusLine: head[0], headers, body: buf.subarray(end + 4) };
}

/*
 * Sends head (+ body in chunks) and returns the response as soon as one is
 * complete, or whatever arrived when the server closed.  Stops sending the body
 * once the server has answered, like a well-behaved client facing an early 413.
 * -> {status, headers, body, closedByServer, socketError, raw}
 */
// One line saying what a raw exchange produced, for assertion messages.
export function describeRaw(res) {
    if (res.status === null) {
        return `no HTTP response (${res.raw.length} bytes received; connection ${res.socketError ?? (res.closedByServer ? 'closed by the server' : 'open')})`;
    }
    return JSON.stringify(res.raw.toString('latin1').slice(0, 200));
}

export async function rawHttp(port, head, body = null, { timeoutMs = 5000, chunk = 65536 } = {}) {
    const conn = await rawConnect(port);
    const { socket } = conn;
    socket.write(head);
    if (body) {
        for (let off = 0; off < body.length && conn.data.length === 0 && !socket.destroyed; off += chunk) {
            const ok = socket.write(body.subarray(off, off + chunk));
            if (!ok) await Promise.race([new Promise((r) => socket.once('drain', r)), conn.ended, sleep(200)]);
        }
    }
    const complete = () => {
        const res = parseHttpResponse(conn.data);
        if (!res || Number.isNaN(res.status)) return false;
        const len = Number(res.headers['content-length'] ?? 0);
        return res.body.length >= len;
    };
    try {
        await waitFor(() => complete() || conn.closed, timeoutMs, 'an HTTP response or the socket to close');
    } finally {
        socket.destroy();
    }
    const res = parseHttpResponse(conn.data);
    return {
        ...(res ?? { status: null, headers: {}, body: Buffer.alloc(0) }),
        closedByServer: conn.closed,
        socketError: conn.error?.code ?? null,
        raw: conn.data,
    };
}

/* ---------------------------------------------------------------------------
 * WebSocket client over a raw socket.
 */

// Encodes one client frame; mask=false produces the illegal unmasked frame.
export function encodeFrame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
    const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '', 'utf8');
    const len = data.length;
    const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode) & 0xff];
    const maskBit = mask ? 0x80 : 0;
    if (len < 126) head.push(maskBit | len);
    else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
    else {
        head.push(maskBit | 127, 0, 0, 0, 0);
        head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
    }
    if (!mask) return Buffer.concat([Buffer.from(head), data]);
    const key = randomBytes(4);
    const masked = Buffer.alloc(len);
    for (let i = 0; i < len; i++) masked[i] = data[i] ^ key[i & 3];
    return Buffer.concat([Buffer.from(head), key, masked]);
}

/*
 * Upgrades a raw socket to WebSocket at pathAndQuery.
 * Resolves to a RawWebSocket on 101; rejects with err.response = {status, body} otherwise.
 */
export async function rawWebSocket(port, pathAndQuery, headers = {}) {
    const conn = await rawConnect(port);
    const key = randomBytes(16).toString('base64');
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    conn.socket.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
    let res;
    try {
        res = await waitFor(() => parseHttpResponse(conn.data) || (conn.closed && { status: null }), 3000,
            'the WebSocket upgrade response');
    } catch (err) {
        conn.socket.destroy();
        throw err;
    }
    if (res.status !== 101) {
        conn.socket.destroy();
        const err = new Error(`WebSocket upgrade answered ${res.status ?? 'nothing'}: ${res.body?.toString('utf8').slice(0, 300)}`);
        err.response = res;
        throw err;
    }
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
    if (res.headers['sec-websocket-accept'] !== accept) {
        conn.socket.destroy();
        throw new Error(`bad Sec-WebSocket-Accept ${res.headers['sec-websocket-accept']} (expected ${accept})`);
    }
    return new RawWebSocket(conn, conn.data.length - res.body.length);
}

export class RawWebSocket {
    constructor(conn, consumed) {
        this.conn = conn;
        this.socket = conn.socket;
        this.offset = consumed;          // bytes of conn.data already parsed
        this.messages = [];              // {opcode, data: Buffer}, fragments reassembled
        this.pongs = [];
        this.closeFrame = null;          // {code, reason} once the server sent Close
        this.violations = [];            // protocol errors committed by the server
        this.fragments = null;
        this.socket.on('data', () => this._parse());
        this._parse();
    }

    get ended() { return this.conn.ended; }
    get isEnded() { return this.conn.closed; }

    _parse() {
        for (;;) {
            const buf = this.conn.data;
            let p = this.offset;
            if (buf.length - p < 2) return;
            const b0 = buf[p], b1 = buf[p + 1];
            let len = b1 & 0x7f;
            p += 2;
            if (len === 126) {
                if (buf.length - p < 2) return;
                len = buf.readUInt16BE(p);
                p += 2;
            } else if (len === 127) {
                if (buf.length - p < 8) return;
                len = Number(buf.readBigUInt64BE(p));
                p += 8;
            }
            if (b1 & 0x80) {
                this.violations.push('server frame is masked');
                if (buf.length - p < 4) return;
                p += 4;
            }
            if (buf.length - p < len) return;
            const payload = buf.subarray(p, p + len);
            this.offset = p + len;
            if (b0 & 0x70) this.violations.push(`reserved bits set (0x${b0.toString(16)})`);
            this._frame(b0 & 0x80, b0 & 0x0f, payload);
        }
    }

    _frame(fin, opcode, payload) {
        if (opcode === 0x8) {
            this.closeFrame = {
                code: payload.length >= 2 ? payload.readUInt16BE(0) : null,
                reason: payload.subarray(2).toString('utf8'),
            };
            return;
        }
        if (opcode === 0x9) {
            if (!this.socket.destroyed) this.socket.write(encodeFrame(0xA, payload));
            return;
        }
        if (opcode === 0xA) {
            this.pongs.push(payload);
            return;
        }
        if (opcode === 0x0) {
            if (!this.fragments) { this.violations.push('continuation without a start frame'); return; }
            this.fragments.parts.push(payload);
        } else {
            if (this.fragments) this.violations.push('new data frame inside a fragmented message');
            this.fragments = { opcode, parts: [payload] };
        }
        if (fin) {
            this.messages.push({ opcode: this.fragments.opcode, data: Buffer.concat(this.fragments.parts) });
            this.fragments = null;
        }
    }

    send(opcode, payload, opts) {
        this.socket.write(encodeFrame(opcode, payload, opts));
    }
    sendText(text, opts) { this.send(0x1, text, opts); }
    sendBinary(buf, opts) { this.send(0x2, buf, opts); }
    writeRaw(buf) { this.socket.write(buf); }

    // All text the server sent so far, concatenated (JSON hub protocol is a byte stream of records).
    text() {
        return this.messages.map((m) => m.data.toString('utf8')).join('');
    }

    // Complete JSON hub records (without the 0x1E) received so far.
    records() {
        const parts = this.text().split(RS);
        return parts.slice(0, -1);
    }

    async waitRecords(n, ms = 3000) {
        return waitFor(() => this.records().length >= n && this.records(), ms,
            `${n} hub record(s) from the server (got ${JSON.stringify(this.text())})`);
    }

    async waitCloseFrame(ms = 3000) {
        return waitFor(() => this.closeFrame, ms,
            `a WebSocket Close frame (messages so far: ${JSON.stringify(this.text().slice(0, 200))})`);
    }

    async waitEnded(ms = 3000) {
        return withTimeout(this.conn.ended, ms, 'the server to close the TCP connection');
    }

    // Sends a Close frame (if still possible) and drops the socket.
    close(code = 1000) {
        if (!this.socket.destroyed) {
            const payload = Buffer.alloc(2);
            payload.writeUInt16BE(code);
            this.socket.write(encodeFrame(0x8, payload));
            this.socket.end();
            setTimeout(() => this.socket.destroy(), 200).unref();
        }
    }

    destroy() { this.socket.destroy(); }
}
