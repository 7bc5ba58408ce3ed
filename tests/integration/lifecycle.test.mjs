// lifecycle.test.mjs - the service ending a client connection on its own
// initiative, seen where an operator looks: the close category in /metrics
// (switchboard_connections_closed_total) and the ConnectionAborted record in
// the Log Analytics workspace.
//
// Covered:
//  - a slow consumer: a raw WebSocket client that stops reading while REST
//    broadcasts pile up is closed as SlowClient ("Connection closed because
//    it is too slow to receive messages"), and an official client connected
//    alongside keeps being served;
//  - a ping timeout: a raw WebSocket client that handshakes and then stays
//    silent past client_timeout is closed as PingTimeout ("Connection ping
//    timeout").
//
// Not here: the internal-write-error path (ServiceTransientError, "Internal
// server transient error"): a loopback write cannot be made to fail for a
// reason other than the peer from outside, so faults.test.mjs runs it
// against the fault-injecting test build.  Every wait has a timeout.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { connectClient, stopClientsAndServer } from './lib/client.mjs';
import { rawHubSocket } from './lib/hub.mjs';
import { rest, describeResponse } from './lib/rest.mjs';
import { metrics, mgmt, waitWorkspace } from './lib/logs.mjs';
import { uniq, waitFor } from './lib/util.mjs';

const CLOSED = (category) => `switchboard_connections_closed_total{endpoint="client",category="${category}"}`;
const SLOW_MSG = 'Connection closed because it is too slow to receive messages';
const PING_MSG = 'Connection ping timeout';
// Loopback socket buffers hold several MB; this many bytes cannot all be parked in the kernel.
const FLOOD_POSTS = 40;
const FLOOD_ARG = 'x'.repeat(800 * 1024);

async function waitMetric(server, key, want, ms = 5000) {
    let last;
    await waitFor(async () => {
        last = (await metrics(server)).get(key);
        return last === want;
    }, ms, `${key} == ${want} (last ${last})`);
}

function waitAborted(server, connectionId, message) {
    return waitWorkspace(server.dataDir, 'ConnectionId = ? AND OperationName = ?', [connectionId, 'ConnectionAborted'],
        { ms: 5000, what: `ConnectionAborted row of ${connectionId}` }).then((rows) => {
        assert.equal(rows.length, 1, `one ConnectionAborted row for ${connectionId}: ${JSON.stringify(rows)}`);
        assert.equal(rows[0].Message, message);
        assert.equal(rows[0].LogType, 'ConnectivityLogs');
        assert.equal(rows[0].TransportType, 'WebSockets');
        return rows[0];
    });
}

describe('connections the service closes', () => {
    let server;
    let raw;
    const clients = [];
    afterEach(async () => {
        raw?.ws.destroy();
        raw = null;
        const s = server;
        server = null;
        await stopClientsAndServer(clients, s);
    });

    it('a consumer that stops reading is closed as SlowClient; others keep being served', async () => {
        server = await startServer({ mode: 'serverless', env: { SWITCHBOARD_MAX_OUTPUT_QUEUE_BYTES: '4096' } });
        await mgmt(server).putSetting('alllogs');
        const slowHub = uniq('slow');
        const okHub = uniq('ok');
        raw = await rawHubSocket(server, slowHub, { user: uniq('slowuser') });
        const good = await connectClient(server, { hub: okHub, user: uniq('gooduser') });
        clients.push(good);
        // The raw client reads nothing from now on: the kernel buffers fill, then the service's queue.
        raw.ws.socket.pause();

        const api = rest(server);
        const before = (await metrics(server)).get(CLOSED('SlowClient'));
        assert.equal(before, 0, 'no slow client before the flood');
        for (let i = 0; i < FLOOD_POSTS; i++) {
            const res = await api.post(`/api/v1/hubs/${slowHub}`, { json: { target: 'm', arguments: [FLOOD_ARG] } });
            assert.equal(res.status, 202, `broadcast ${i}: ${describeResponse(res)}`);
            if ((await metrics(server)).get(CLOSED('SlowClient')) === 1) break;
        }
        await waitMetric(server, CLOSED('SlowClient'), 1);
        await waitAborted(server, raw.connectionId, SLOW_MSG);

        const res = await api.post(`/api/v1/hubs/${okHub}`, { json: { target: 'ctl', arguments: ['after-slow'] } });
        assert.equal(res.status, 202, describeResponse(res));
        await good.waitMessage('ctl', (args) => args[0] === 'after-slow', 5000);
        assert.equal(good.isClosed, false, 'the reading client stayed connected');
        assert.equal((await metrics(server)).get(CLOSED('SlowClient')), 1, 'only the stalled client was slow');
    });

    it('a client silent past client_timeout is closed as PingTimeout', async () => {
        server = await startServer({ mode: 'serverless', env: { SWITCHBOARD_CLIENT_TIMEOUT_MS: '1000' } });
        await mgmt(server).putSetting('alllogs');
        const t0 = Date.now();
        // Handshakes, then sends nothing at all (not even pings).
        raw = await rawHubSocket(server, 'chat', { user: uniq('silent') });
        await raw.ws.waitEnded(5000);
        assert.ok(Date.now() - t0 >= 900, `closed after ${Date.now() - t0} ms, before the 1000 ms client timeout`);
        await waitMetric(server, CLOSED('PingTimeout'), 1);
        await waitAborted(server, raw.connectionId, PING_MSG);
        const m = await metrics(server);
        assert.equal(m.get(CLOSED('SlowClient')), 0);
        assert.equal(m.get(CLOSED('ServiceTransientError')), 0);
    });
});
