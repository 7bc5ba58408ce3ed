// badinput.test.mjs - hostile and broken input on the HTTP, WebSocket and hub
// protocol layers, written byte by byte over raw sockets.
//
// After every case the service must still serve: afterEach connects a fresh
// official client and delivers a REST message to it, and checks that the
// process is alive with no sanitizer report.  The server runs with
// SWITCHBOARD_MAX_MESSAGE_BYTES=1024 so the oversized-message case is cheap.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from './lib/server.mjs';
import { connectClient } from './lib/client.mjs';
import { rest, describeResponse } from './lib/rest.mjs';
import { allBytes, msgpackMessages, negotiate, rawHubSocket, waitHandshake } from './lib/hub.mjs';
import { describeRaw, encodeFrame, rawConnect, rawHttp, RS, writeByteByByte } from './lib/raw.mjs';
import { restToken } from './lib/token.mjs';
import { sleep, uniq, waitFor, withTimeout } from './lib/util.mjs';

let server;
let api;
const open = [];

before(async () => {
    server = await startServer({ mode: 'serverless', env: { SWITCHBOARD_MAX_MESSAGE_BYTES: '1024' } });
    api = rest(server);
});

afterEach(async () => {
    for (const s of open.splice(0)) s.destroy();
    server.assertHealthy();
    // The service must still serve a fresh official client end to end.
    const c = await connectClient(server, { hub: 'sanity', user: uniq('sanity') });
    try {
        const marker = uniq('alive');
        const res = await api.post(`/api/v1/hubs/sanity/connections/${c.connectionId}`, { json: { target: 'm', arguments: [marker] } });
        assert.equal(res.status, 202, describeResponse(res));
        await c.waitMessage('m', (a) => a[0] === marker);
    } finally {
        await c.stop();
    }
});

after(async () => {
    await server?.stop();
});

async function hubSocket(opts) {
    const r = await rawHubSocket(server, 'badhub', opts);
    open.push(r.ws);
    return r.ws;
}

const head = (lines) => `${lines.join('\r\n')}\r\n\r\n`;

describe('HTTP layer', () => {
    it('junk bytes instead of HTTP get a 400 or a close', async () => {
        const res = await rawHttp(server.port, '\x16\x03\x01\x02\x00\x01\x00\xff junk \x00\x01\r\n\r\n', null, { timeoutMs: 3000 });
        const answered400 = res.status === 400;
        const closedSilently = res.status === null && res.closedByServer;
        assert.ok(answered400 || closedSilently, `got ${describeRaw(res)}`);
    });

    it('a request head over 16 KB gets 431; an 8 KB head is fine', async () => {
        const fine = await rawHttp(server.port, head(['GET /api/v1/health HTTP/1.1', 'Host: 127.0.0.1', `X-Fill: ${'a'.repeat(8000)}`, 'Connection: close']));
        assert.equal(fine.status, 200, describeRaw(fine));
        const big = await rawHttp(server.port, head(['GET /api/v1/health HTTP/1.1', 'Host: 127.0.0.1', `X-Fill: ${'a'.repeat(20000)}`]));
        assert.equal(big.status, 431, describeRaw(big));
    });

    it('a URL over 12 KB gets 414', async () => {
        const res = await rawHttp(server.port, head([`GET /api/v1/health?pad=${'a'.repeat(13000)} HTTP/1.1`, 'Host: 127.0.0.1']));
        assert.equal(res.status, 414, describeRaw(res));
    });

    it('a declared Content-Length over 1 MB is refused with 413 right after the head', async () => {
        const path = '/api/v1/hubs/badhub';
        const token = restToken(`${server.endpoint}${path}`, { key: server.accessKey });
        const res = await rawHttp(server.port, head([`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1',
            `Authorization: Bearer ${token}`, 'Content-Type: application/json', `Content-Length: ${2 * 1024 * 1024}`]));
        assert.equal(res.status, 413, describeRaw(res));
    });

    it('a REST body over 1 MB sent in full, as ordinary clients do, still gets its 413 (not a reset)', async () => {
        const path = '/api/v1/hubs/badhub';
        const body = Buffer.alloc(2 * 1024 * 1024, 0x61);
        const token = restToken(`${server.endpoint}${path}`, { key: server.accessKey });
        const res = await rawHttp(server.port, head([`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1',
            `Authorization: Bearer ${token}`, 'Content-Type: application/json', `Content-Length: ${body.length}`]), body);
        assert.equal(res.status, 413, describeRaw(res));
    });

    it('a request written one byte at a time is served', async () => {
        const conn = await rawConnect(server.port);
        open.push(conn.socket);
        await writeByteByByte(conn.socket, Buffer.from(head(['GET /api/v1/health HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close'])));
        await waitFor(() => conn.data.length > 12, 3000, 'the response');
        assert.match(conn.data.toString('latin1'), /^HTTP\/1\.1 200 /);
    });

    it('two pipelined requests in one write are both answered in order', async () => {
        const conn = await rawConnect(server.port);
        open.push(conn.socket);
        conn.socket.write(head(['GET /api/v1/health HTTP/1.1', 'Host: 127.0.0.1']) +
            head(['GET /api/v1/hubs/badhub/users/nobody HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close']));
        await waitFor(() => (conn.data.toString('latin1').match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= 2, 3000, 'two responses');
        const statuses = conn.data.toString('latin1').match(/HTTP\/1\.1 (\d{3})/g);
        assert.deepEqual(statuses, ['HTTP/1.1 200', 'HTTP/1.1 401']);
    });

    it('a truncated request head followed by EOF, and abrupt disconnects mid-request, leave the server unaffected', async () => {
        const conn = await rawConnect(server.port);
        conn.socket.end('POST /client/negotiate?hub=badhub&negoti');
        await withTimeout(conn.ended, 3000, 'the server to close after EOF');
        for (let i = 0; i < 20; i++) {
            const c = await rawConnect(server.port);
            c.socket.write(`POST /api/v1/hubs/badhub HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"tar`);
            c.socket.destroy();
        }
        await sleep(100);
    });
});

describe('WebSocket layer', () => {
    it('an unmasked client frame is closed with 1002', async () => {
        const ws = await hubSocket();
        ws.sendText(`{"type":6}${RS}`, { mask: false });
        const close = await ws.waitCloseFrame();
        assert.equal(close.code, 1002, `close frame ${JSON.stringify(close)} after hub records ${JSON.stringify(ws.text())}`);
        await ws.waitEnded();
        assert.deepEqual(ws.violations, []);
    });

    it('invalid UTF-8 in a text frame is closed with 1007', async () => {
        const ws = await hubSocket();
        ws.send(0x1, Buffer.concat([Buffer.from('{"type":1,"target":"'), Buffer.from([0xff, 0xfe, 0xc0, 0xaf]), Buffer.from(`","arguments":[]}${RS}`)]));
        const close = await ws.waitCloseFrame();
        assert.equal(close.code, 1007, `close frame ${JSON.stringify(close)} after hub records ${JSON.stringify(ws.text())}`);
        await ws.waitEnded();
    });

    it('a 4 KB message over SWITCHBOARD_MAX_MESSAGE_BYTES=1024 is closed with 1009', async () => {
        const ws = await hubSocket();
        ws.sendText(`{"type":1,"target":"big","arguments":["${'a'.repeat(4050)}"]}${RS}`);
        const close = await ws.waitCloseFrame();
        assert.equal(close.code, 1009, `close frame ${JSON.stringify(close)} after hub records ${JSON.stringify(ws.text())}`);
        await ws.waitEnded();
    });

    it('a message just under the limit is accepted', async () => {
        const ws = await hubSocket();
        ws.sendText(`{"type":6}${RS}{"type":1,"target":"ok","arguments":["${'a'.repeat(900)}"]}${RS}`);
        await sleep(300);
        assert.equal(ws.closeFrame, null, `closed: ${JSON.stringify(ws.closeFrame)} after ${JSON.stringify(ws.text())}`);
        assert.equal(ws.isEnded, false);
    });

    it('a truncated frame followed by EOF leaves the server unaffected', async () => {
        const ws = await hubSocket();
        const frame = encodeFrame(0x1, Buffer.alloc(200, 0x61));
        ws.writeRaw(frame.subarray(0, 30));
        ws.socket.end();
        await ws.waitEnded();
    });

    it('a handshake fragmented over three frames, with a ping between fragments, is accepted and the ping answered', async () => {
        const ws = await hubSocket({ handshake: false });
        ws.send(0x1, '{"protocol":', { fin: false });
        ws.send(0x9, 'mid-ping');
        ws.send(0x0, '"json","ver', { fin: false });
        ws.send(0x0, `sion":1}${RS}`, { fin: true });
        assert.equal(await withTimeout(waitHandshake(ws), 3000, 'the handshake reply'), '{}');
        await waitFor(() => ws.pongs.some((p) => p.toString() === 'mid-ping'), 2000, 'the pong for the interleaved ping');
    });

    it('a handshake split across two WebSocket messages is accepted (the input is a byte stream)', async () => {
        const ws = await hubSocket({ handshake: false });
        ws.sendText('{"protocol":"json",');
        await sleep(50);
        ws.sendText(`"version":1}${RS}`);
        assert.equal(await withTimeout(waitHandshake(ws), 3000, 'the handshake reply'), '{}');
    });

    it('frames written one byte at a time are parsed, and the connection then receives messages', async () => {
        const { ws, connectionId } = await rawHubSocket(server, 'badhub', { handshake: false });
        open.push(ws);
        await writeByteByByte(ws.socket, Buffer.concat([
            encodeFrame(0x1, '{"protocol":"json",', { fin: false }),
            encodeFrame(0x0, `"version":1}${RS}`),
            encodeFrame(0x1, `{"type":6}${RS}`),
        ]));
        assert.equal(await withTimeout(waitHandshake(ws), 3000, 'the handshake reply'), '{}');
        const marker = uniq('bytewise');
        const res = await api.post(`/api/v1/hubs/badhub/connections/${connectionId}`, { json: { target: 'm', arguments: [marker] } });
        assert.equal(res.status, 202, describeResponse(res));
        const records = await ws.waitRecords(2);
        const inv = records.slice(1).map((r) => JSON.parse(r)).find((m) => m.type === 1);
        assert.deepEqual(inv, { type: 1, target: 'm', arguments: [marker] });
    });
});

describe('hub protocol layer', () => {
    it('malformed JSON after the handshake gets a Close message "Connection closed with an error.", then the socket closes', async () => {
        const ws = await hubSocket();
        ws.sendText(`{"type":1,"target":${RS}`);
        const records = await ws.waitRecords(2);
        const close = JSON.parse(records.at(-1));
        assert.equal(close.type, 7, `expected a Close message, got ${records.at(-1)}`);
        assert.ok(close.error?.startsWith('Connection closed with an error.'), `error was ${JSON.stringify(close.error)}`);
        await ws.waitEnded();
    });

    it('malformed MessagePack after the handshake gets a Close message "Connection closed with an error.", then the socket closes', async () => {
        const ws = await hubSocket({ protocol: 'messagepack' });
        // Length 3, then 0xc1: a byte MessagePack never uses.
        ws.sendBinary(Buffer.from([0x03, 0xc1, 0xc1, 0xc1]));
        const close = await waitFor(() => {
            try {
                return msgpackMessages(ws).find((m) => m.type === 7);
            } catch {
                return undefined; // a partially received message; keep waiting
            }
        }, 3000, `a MessagePack Close message (bytes: ${allBytes(ws).toString('hex')})`);
        assert.ok(close.error?.startsWith('Connection closed with an error.'), `error was ${JSON.stringify(close.error)}`);
        assert.ok(ws.messages.slice(1).every((m) => m.opcode === 0x2), 'MessagePack messages travel in binary frames');
        await ws.waitEnded();
    });

    it('a handshake for protocol "foo" gets {"error":"The protocol \'foo\' is not supported."} and a close', async () => {
        const ws = await hubSocket({ handshake: false });
        ws.sendText(`{"protocol":"foo","version":1}${RS}`);
        const reply = await withTimeout(waitHandshake(ws), 3000, 'the handshake reply');
        assert.equal(reply, `{"error":"The protocol 'foo' is not supported."}`);
        await ws.waitEnded();
    });

    it('a handshake for an unsupported version gets an error naming the version', async () => {
        const ws = await hubSocket({ handshake: false });
        ws.sendText(`{"protocol":"json","version":99}${RS}`);
        const reply = JSON.parse(await withTimeout(waitHandshake(ws), 3000, 'the handshake reply'));
        assert.match(reply.error ?? '', /version 99\b/, `handshake reply ${JSON.stringify(reply)}`);
        await ws.waitEnded();
    });

    it('MessagePack requested over Server-Sent Events gets a handshake error about the transfer format', async () => {
        const hub = 'badsse';
        const neg = await negotiate(server, hub, { user: 'sse' });
        assert.equal(neg.status, 200, neg.text);
        const token = server.clientToken(hub, { user: 'sse' });
        const connectPath = `/client/?hub=${hub}&id=${neg.json.connectionToken}`;
        const stream = { status: 0, body: '', ended: false };
        const req = http.request({
            host: '127.0.0.1', port: server.port, path: connectPath, agent: false,
            headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}` },
        }, (res) => {
            stream.status = res.statusCode;
            stream.contentType = res.headers['content-type'];
            res.setEncoding('utf8');
            res.on('data', (c) => { stream.body += c; });
            res.on('end', () => { stream.ended = true; });
            res.on('error', () => { stream.ended = true; });
        });
        req.on('error', () => { stream.ended = true; });
        req.end();
        open.push(req);
        try {
            await waitFor(() => stream.status, 3000, 'the SSE response head');
            assert.equal(stream.status, 200);
            assert.match(stream.contentType ?? '', /^text\/event-stream/);
            const post = await fetch(`${server.endpoint}${connectPath}`, {
                method: 'POST',
                headers: { Authorization: `Bearer ${token}` },
                body: `{"protocol":"messagepack","version":1}${RS}`,
                signal: AbortSignal.timeout(3000),
            });
            await post.text();
            assert.equal(post.status, 200);
            const line = await waitFor(() => stream.body.split(/\r?\n/).find((l) => l.startsWith('data: ')), 3000,
                `an SSE data line (stream so far: ${JSON.stringify(stream.body)})`);
            const reply = JSON.parse(line.slice('data: '.length).replace(RS, ''));
            assert.ok(/transfer format/.test(reply.error ?? ''), `handshake reply ${line}`);
            await waitFor(() => stream.ended, 3000, 'the SSE stream to end after the failed handshake');
        } finally {
            req.destroy();
        }
    });
});
