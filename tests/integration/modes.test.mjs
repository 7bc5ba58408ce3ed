// modes.test.mjs - service modes and process lifecycle.
//
// Default mode (no --mode flag) proxies clients to app servers; with none
// connected a client must be refused quickly and clearly, never left hanging.
// Graceful shutdown: SIGTERM with clients on every transport closes them
// (their onclose fires) and the process exits 0 within 5 s.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { buildClient, connectClient, stopAll } from './lib/client.mjs';
import { negotiate, rawHubSocket } from './lib/hub.mjs';
import { RS } from './lib/raw.mjs';
import { settle, withTimeout } from './lib/util.mjs';

let server;
let clients = [];

afterEach(async () => {
    await stopAll(clients);
    clients = [];
    if (server) {
        const s = server;
        server = null;
        await s.stop();
    }
});

describe('default mode without an app server', { timeout: 20000 }, () => {
    it('negotiate fails quickly with a non-2xx status saying the service is not connected', async () => {
        server = await startServer({ mode: 'default' });
        const started = Date.now();
        const res = await negotiate(server, 'chat', { user: 'd1', timeoutMs: 5000 });
        const elapsed = Date.now() - started;
        assert.ok(res.status < 200 || res.status >= 300, `negotiate answered ${res.status}: ${res.text}`);
        assert.match(res.text, /not connected/i);
        assert.ok(elapsed < 5000, `took ${elapsed} ms`);
    });

    it('the official client start() rejects within 5 s', async () => {
        server = await startServer({ mode: 'default' });
        const c = buildClient(server, { hub: 'chat', user: 'd2' });
        clients.push(c);
        const started = Date.now();
        const outcome = await settle(withTimeout(c.conn.start(), 5000, 'start() to settle'));
        const elapsed = Date.now() - started;
        assert.equal(outcome.ok, false, 'start() must not succeed without an app server');
        assert.doesNotMatch(outcome.error.message, /timed out after/, `start() hung: ${outcome.error.message}`);
        assert.match(outcome.error.message, /not connected/i);
        assert.ok(elapsed < 5000, `took ${elapsed} ms`);
    });

    it('--mode serverless on the same binary accepts the same client (control)', async () => {
        server = await startServer({ mode: 'serverless' });
        const c = await connectClient(server, { hub: 'chat', user: 'd3' });
        clients.push(c);
        assert.equal(c.conn.state, 'Connected');
    });
});

describe('graceful shutdown', { timeout: 20000 }, () => {
    it('SIGTERM closes WebSockets, SSE and LongPolling clients (onclose fires) and the process exits 0', async () => {
        server = await startServer({ mode: 'serverless' });
        clients = [
            await connectClient(server, { hub: 'bye', user: 'ws', transport: 'WebSockets' }),
            await connectClient(server, { hub: 'bye', user: 'sse', transport: 'ServerSentEvents' }),
            await connectClient(server, { hub: 'bye', user: 'lp', transport: 'LongPolling' }),
            await connectClient(server, { hub: 'bye', user: 'lpmp', transport: 'LongPolling', protocol: 'messagepack' }),
        ];
        const s = server;
        server = null;
        const started = Date.now();
        await s.stop(); // asserts exit status 0 within 5 s and a clean stderr
        assert.ok(Date.now() - started < 5000);
        await Promise.all(clients.map((c) => c.waitClosed(5000)));
    });

    it('on SIGTERM a WebSocket client is told goodbye (Close message or close frame) before the TCP connection ends', async () => {
        server = await startServer({ mode: 'serverless' });
        const { ws } = await rawHubSocket(server, 'bye2', { user: 'raw' });
        try {
            const s = server;
            server = null;
            await s.stop();
            await withTimeout(ws.ended, 3000, 'the socket to end');
            const records = ws.records().slice(1).map((r) => JSON.parse(r));
            const closeMessage = records.find((m) => m.type === 7);
            assert.ok(closeMessage || ws.closeFrame,
                `expected a Close message or a WebSocket close frame, got ${JSON.stringify(ws.text())} and no close frame`);
            if (ws.closeFrame) assert.ok([1000, 1001].includes(ws.closeFrame.code), `close code ${ws.closeFrame.code}`);
            assert.ok(ws.text().endsWith(RS) || ws.text() === '', 'no half-written record');
        } finally {
            ws.destroy();
        }
    });
});
