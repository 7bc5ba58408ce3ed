// keepalive.test.mjs - keep-alive pings, the client timeout and the
// handshake timeout, observed with a raw WebSocket (the `ws` package) so the
// test sees every frame the service sends and controls exactly what the
// client sends.  Each test starts its own server with short intervals.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer } from './lib/server.mjs';
import { connectClient } from './lib/client.mjs';
import { rest, describeResponse } from './lib/rest.mjs';
import { negotiate } from './lib/hub.mjs';
import { deferred, sleep, uniq, waitFor, withTimeout } from './lib/util.mjs';

const RS = '\x1e';
let server;
const sockets = [];

afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    if (server) {
        const s = server;
        server = null;
        await s.stop();
    }
});

// Negotiates and opens a `ws` WebSocket; records text records, close code and timing.
async function openHubSocket(hub) {
    const neg = await negotiate(server, hub, { user: 'raw' });
    assert.equal(neg.status, 200, neg.text);
    const url = `ws://127.0.0.1:${server.port}/client/?hub=${hub}&id=${neg.json.connectionToken}`;
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${server.clientToken(hub, { user: 'raw' })}` } });
    sockets.push(ws);
    const state = { ws, text: '', records: [], frames: [], close: null, openedAt: 0 };
    const opened = deferred();
    const closed = deferred();
    ws.on('open', () => { state.openedAt = Date.now(); opened.resolve(); });
    ws.on('error', (err) => { state.error = err; opened.reject(err); });
    ws.on('message', (data, isBinary) => {
        state.frames.push({ isBinary, at: Date.now() });
        state.text += data.toString('utf8');
        const parts = state.text.split(RS);
        state.text = parts.pop();
        for (const p of parts) state.records.push({ record: p, at: Date.now() });
    });
    ws.on('close', (code, reason) => {
        state.close = { code, reason: reason.toString(), at: Date.now() };
        closed.resolve(state.close);
    });
    state.closed = closed.promise;
    await withTimeout(opened.promise, 3000, 'the WebSocket to open');
    return state;
}

async function handshake(state, protocol = 'json') {
    state.ws.send(`${JSON.stringify({ protocol, version: 1 })}${RS}`);
    await waitFor(() => state.records.length >= 1, 3000, 'the handshake reply');
    assert.equal(state.records[0].record, '{}', 'handshake success is exactly {}');
    return state.records[0].at;
}

describe('keep-alive and timeouts', { timeout: 20000 }, () => {
    it('SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS=300: an idle connected client receives {"type":6} pings in text frames', async () => {
        server = await startServer({ env: { SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '300' } });
        const s = await openHubSocket('kahub');
        const handshakeAt = await handshake(s);
        await sleep(1600);
        const pings = s.records.slice(1);
        assert.ok(pings.length >= 3 && pings.length <= 8, `expected about 5 pings in 1.6 s, got ${pings.length}`);
        for (const p of pings) assert.equal(p.record, '{"type":6}');
        assert.ok(s.frames.every((f) => !f.isBinary), 'a JSON client gets text frames only');
        assert.ok(pings[0].at - handshakeAt >= 150, `first ping ${pings[0].at - handshakeAt} ms after the handshake, should wait about one interval`);
        assert.equal(s.close, null, 'the connection stays open');
    });

    it('pings are only sent when idle: regular REST traffic postpones them', async () => {
        server = await startServer({ env: { SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '400' } });
        const s = await openHubSocket('kabusy');
        await handshake(s);
        const api = rest(server);
        // A message every 150 ms keeps the server from being idle for 400 ms.
        const start = Date.now();
        while (Date.now() - start < 1500) {
            const res = await api.post('/api/v1/hubs/kabusy', { json: { target: 'm', arguments: [uniq('busy')] } });
            assert.equal(res.status, 202, describeResponse(res));
            await sleep(150);
        }
        const pings = s.records.slice(1).filter((r) => r.record === '{"type":6}');
        assert.ok(pings.length <= 1, `expected no pings while busy, got ${pings.length}`);
        assert.ok(s.records.length >= 8, `expected the invocations to arrive, got ${s.records.length - 1} records`);
    });

    it('SWITCHBOARD_CLIENT_TIMEOUT_MS=1000: a client silent after the handshake gets a Close message, then the socket closes', async () => {
        server = await startServer({ env: { SWITCHBOARD_CLIENT_TIMEOUT_MS: '1000', SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '300' } });
        const s = await openHubSocket('tohub');
        const handshakeAt = await handshake(s);
        const close = await withTimeout(s.closed, 3000, 'the server to close a silent client');
        const elapsed = close.at - handshakeAt;
        assert.ok(elapsed >= 800, `closed after ${elapsed} ms, before the 1000 ms client timeout`);
        assert.ok(elapsed <= 2500, `closed after ${elapsed} ms, long after the 1000 ms client timeout`);
        const closeMsgs = s.records.map((r) => JSON.parse(r.record)).filter((m) => m.type === 7);
        assert.equal(closeMsgs.length, 1, `exactly one Close message before the socket closed: ${JSON.stringify(s.records)}`);
        assert.equal(typeof closeMsgs[0].error, 'string');
        assert.ok(closeMsgs[0].error.length > 0, 'the Close message says why');
        assert.equal(JSON.parse(s.records.at(-1).record).type, 7, 'nothing follows the Close message');
    });

    it('a client that keeps pinging outlives the client timeout; so does an official client with a short keep-alive', async () => {
        server = await startServer({ env: { SWITCHBOARD_CLIENT_TIMEOUT_MS: '1000', SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '300' } });
        const s = await openHubSocket('alivehub');
        await handshake(s);
        const official = await connectClient(server, { hub: 'alivehub', user: 'official', keepAliveMs: 250 });
        try {
            const start = Date.now();
            while (Date.now() - start < 2500) {
                s.ws.send(`{"type":6}${RS}`);
                await sleep(250);
            }
            assert.equal(s.close, null, `raw client was closed: ${JSON.stringify(s.close)} ${JSON.stringify(s.records.slice(-2))}`);
            assert.equal(official.isClosed, false, `official client was closed: ${official.closeError}`);
            const marker = uniq('alive');
            const res = await rest(server).post(`/api/v1/hubs/alivehub/users/official`, { json: { target: 'm', arguments: [marker] } });
            assert.equal(res.status, 202, describeResponse(res));
            await official.waitMessage('m', (a) => a[0] === marker);
        } finally {
            await official.stop();
        }
    });

    it('SWITCHBOARD_HANDSHAKE_TIMEOUT_MS=500: a socket that never sends the handshake is closed', async () => {
        server = await startServer({ env: { SWITCHBOARD_HANDSHAKE_TIMEOUT_MS: '500' } });
        const s = await openHubSocket('hshub');
        const close = await withTimeout(s.closed, 3000, 'the server to close a socket without handshake');
        const elapsed = close.at - s.openedAt;
        assert.ok(elapsed >= 400, `closed after ${elapsed} ms, before the 500 ms handshake timeout`);
        assert.ok(elapsed <= 2000, `closed after ${elapsed} ms, long after the 500 ms handshake timeout`);
        // If the service explains itself, it must do so as a handshake error response, not a hub message.
        for (const r of s.records) {
            const msg = JSON.parse(r.record);
            assert.equal(typeof msg.error, 'string', `unexpected record ${r.record}`);
            assert.equal(msg.type, undefined, 'a handshake response carries no type');
        }
    });

    it('a handshake sent in time after some delay is still accepted (timeout counts from connect, not bytes)', async () => {
        server = await startServer({ env: { SWITCHBOARD_HANDSHAKE_TIMEOUT_MS: '1500' } });
        const s = await openHubSocket('hslate');
        await sleep(600);
        await handshake(s);
        await sleep(100);
        assert.equal(s.close, null);
    });
});
