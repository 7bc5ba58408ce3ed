// hub.mjs - the SignalR client protocol spoken by hand, for tests that need
// to misbehave or to observe raw frames: negotiate, connect a raw WebSocket,
// send the hub handshake, decode what the server sends back.
//
// Decoding of MessagePack hub messages reuses the official protocol class so
// the test accepts exactly what the official client accepts.

import msgpack from '@microsoft/signalr-protocol-msgpack';
import signalR from '@microsoft/signalr';
import { rawWebSocket, RS } from './raw.mjs';
import { withTimeout } from './util.mjs';

const { MessagePackHubProtocol } = msgpack;
const { NullLogger } = signalR;

/*
 * POST /client/negotiate for hub.  opts.token overrides the token (null = no
 * Authorization header); opts.query replaces the whole query string.
 * -> {status, headers, text, json}
 */
export async function negotiate(server, hub, { user, token, version = 1, query, timeoutMs = 5000 } = {}) {
    const q = query ?? `hub=${hub}${version === null ? '' : `&negotiateVersion=${version}`}`;
    const headers = {};
    const bearer = token === undefined ? server.clientToken(hub, { user }) : token;
    if (bearer !== null) headers.Authorization = `Bearer ${bearer}`;
    const res = await fetch(`${server.endpoint}/client/negotiate?${q}`, {
        method: 'POST', headers, signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
}

/*
 * Negotiates, opens a raw WebSocket and (unless handshake === false) performs
 * the hub handshake for protocol, asserting the `{}` reply.
 * -> {ws, negotiation, connectionId, token}
 */
export async function rawHubSocket(server, hub, { protocol = 'json', user, handshake = true } = {}) {
    const neg = await negotiate(server, hub, { user });
    if (neg.status !== 200 || !neg.json?.connectionToken) {
        throw new Error(`negotiate for a raw client failed: ${neg.status} ${neg.text}`);
    }
    const token = server.clientToken(hub, { user });
    const ws = await rawWebSocket(server.port, `/client/?hub=${hub}&id=${neg.json.connectionToken}`,
        { Authorization: `Bearer ${token}` });
    if (handshake) {
        ws.sendText(`${JSON.stringify({ protocol, version: 1 })}${RS}`);
        const reply = await withTimeout(waitHandshake(ws), 3000, 'the handshake reply');
        if (reply !== '{}') {
            ws.destroy();
            throw new Error(`handshake for ${protocol} answered ${JSON.stringify(reply)}, expected {}`);
        }
    }
    return { ws, negotiation: neg.json, connectionId: neg.json.connectionId, token };
}

// Text of the handshake reply (up to the first 0x1E), whatever frame type carried it.
export async function waitHandshake(ws) {
    for (;;) {
        const bytes = allBytes(ws);
        const end = bytes.indexOf(0x1e);
        if (end >= 0) return bytes.subarray(0, end).toString('utf8');
        if (ws.isEnded) throw new Error(`socket closed before the handshake reply (got ${JSON.stringify(bytes.toString('utf8'))})`);
        await new Promise((r) => setTimeout(r, 10));
    }
}

// Everything the server sent as data frames, in order.
export function allBytes(ws) {
    return Buffer.concat(ws.messages.map((m) => m.data));
}

// MessagePack hub messages received after the handshake reply, decoded by the official protocol.
export function msgpackMessages(ws) {
    const bytes = allBytes(ws);
    const end = bytes.indexOf(0x1e);
    if (end < 0) return [];
    const rest = bytes.subarray(end + 1);
    if (rest.length === 0) return [];
    const ab = rest.buffer.slice(rest.byteOffset, rest.byteOffset + rest.length);
    return new MessagePackHubProtocol().parseMessages(ab, NullLogger.instance);
}

// JSON hub records after the handshake reply, parsed.
export function jsonMessages(ws) {
    return ws.records().slice(1).map((r) => JSON.parse(r));
}
