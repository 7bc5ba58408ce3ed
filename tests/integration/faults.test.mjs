// faults.test.mjs - the service's own faults, provoked by the fault-injection
// build ($SWITCHBOARD_FAULTS_BIN, made by `make $(BUILD)/switchboard-faults`;
// src/net/fault.c says how the fault is triggered) and seen where an operator
// looks: the client's onclose, the ConnectionAborted record in the archive and
// the workspace, the close category and SystemErrors in /metrics and in Azure
// Monitor's metrics API.
//
// Covered:
//  - a socket write to a connected WebSocket client failing with ENOBUFS (the
//    service's fault, not the peer's) closes that client with "Internal server
//    transient error", counted as ConnectionCloseCategory ServiceTransientError
//    and as a system error; a healthy client of the same hub gets the same
//    broadcast and stays connected;
//  - the ordinary binary ignores the trigger (the shipped build has no hook).
//
// The fault fires on the first write after the faulty user's handshake
// response, once per process, so every count here is exact.  Every wait has a
// timeout.  Skipped (with the reason shown) when SWITCHBOARD_FAULTS_BIN is
// unset; `make integration` always sets it.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { connectClient, stopClientsAndServer } from './lib/client.mjs';
import { rest, describeResponse } from './lib/rest.mjs';
import { RESOURCE_ID, metrics, mgmt, readArchive, waitArchive, waitWorkspace } from './lib/logs.mjs';
import { uniq, waitFor } from './lib/util.mjs';

const FAULTS_BIN = process.env.SWITCHBOARD_FAULTS_BIN;
const NORMAL_BIN = process.env.SWITCHBOARD_BIN;
const TRIGGER = 'SWITCHBOARD_FAULT_WRITE_USER';
const MESSAGE = 'Internal server transient error';
const CATEGORY = 'ServiceTransientError';
const CLOSED = (category) => `switchboard_connections_closed_total{endpoint="client",category="${category}"}`;
const SYSTEM_ERRORS = 'switchboard_operations_total{result="system_error"}';
const RESOURCE_ID_UPPER = RESOURCE_ID.toUpperCase();
const minuteFloor = (ms) => Math.floor(ms / 60000) * 60000;

// lib/server.mjs starts $SWITCHBOARD_BIN; node --test runs each file in its own process, so pointing it at
// another binary here touches no other test file.
async function startWith(bin, env) {
    process.env.SWITCHBOARD_BIN = bin;
    try {
        return await startServer({ mode: 'serverless', env });
    } finally {
        process.env.SWITCHBOARD_BIN = NORMAL_BIN;
    }
}

// PT1M points of one metric from Azure Monitor's metrics API (the route the SDKs call), one series.
async function armMinutes(server, metric, from, to, filter) {
    const q = new URLSearchParams({
        'api-version': '2024-02-01', metricnames: metric, interval: 'PT1M', aggregation: 'total,maximum',
        timespan: `${new Date(from).toISOString()}/${new Date(to).toISOString()}`,
    });
    if (filter) q.set('$filter', filter);
    const res = await rest(server).get(`${RESOURCE_ID}/providers/Microsoft.Insights/metrics?${q}`);
    assert.equal(res.status, 200, describeResponse(res));
    const [m] = res.json().value;
    assert.equal(m.name.value, metric);
    assert.equal(m.timeseries.length, 1, `one series of ${metric}: ${JSON.stringify(m.timeseries)}`);
    return m.timeseries[0].data.map((p) => ({ ...p, at: Date.parse(p.timeStamp) }));
}

describe('internal faults', { skip: !FAULTS_BIN && 'SWITCHBOARD_FAULTS_BIN is not set' }, () => {
    let server;
    const clients = [];
    afterEach(async () => {
        const s = server;
        server = null;
        await stopClientsAndServer(clients, s);
    });

    it('a failed socket write closes only that client: "Internal server transient error", ServiceTransientError', async () => {
        const hub = uniq('fault');
        const faultyUser = uniq('faulty');
        const healthyUser = uniq('healthy');
        server = await startWith(FAULTS_BIN, { [TRIGGER]: faultyUser, SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '600000' });
        await mgmt(server).putSetting('alllogs');
        const t0 = Date.now();
        const faulty = await connectClient(server, { hub, user: faultyUser });
        const healthy = await connectClient(server, { hub, user: healthyUser });
        clients.push(faulty, healthy);
        const faultyId = faulty.connectionId; // the client forgets it once closed
        const before = await metrics(server);
        assert.equal(before.get(CLOSED(CATEGORY)), 0);
        assert.equal(before.get(SYSTEM_ERRORS), 0);

        const api = rest(server);
        let res = await api.post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: ['first'] } });
        assert.equal(res.status, 202, describeResponse(res));
        const closeError = await faulty.waitClosed(5000);
        const t1 = Date.now();
        assert.ok(closeError instanceof Error, `onclose of the faulty client carries an error (got ${closeError})`);
        await healthy.waitMessage('m', (args) => args[0] === 'first', 5000);
        assert.equal(faulty.received('m').length, 0, 'the failed write sent nothing');

        // The healthy client keeps being served.
        res = await api.post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: ['second'] } });
        assert.equal(res.status, 202, describeResponse(res));
        await healthy.waitMessage('m', (args) => args[0] === 'second', 5000);
        assert.equal(healthy.isClosed, false, 'the healthy client stayed connected');

        // Resource logs: one ConnectionAborted record for the faulty connection, at level Error.
        const [rec] = await waitArchive(server.dataDir,
            (r) => r.properties?.connectionId === faultyId && r.operationName === 'ConnectionAborted',
            { ms: 5000, what: `ConnectionAborted of ${faultyId}` });
        const { time, ...fields } = rec;
        assert.deepEqual(fields, {
            level: 'Error',
            resourceId: RESOURCE_ID_UPPER,
            location: 'local',
            category: 'AllLogs',
            operationName: 'ConnectionAborted',
            callerIpAddress: '127.0.0.1',
            properties: {
                type: 'ConnectivityLogs', collection: 'Connection', connectionId: faultyId,
                transportType: 'WebSockets', connectionType: 'Client', userId: faultyUser, message: MESSAGE, hub,
            },
        });
        assert.ok(Date.parse(time) >= t0 - 1000 && Date.parse(time) <= t1 + 1000, `record time ${time}`);
        const rows = await waitWorkspace(server.dataDir, 'ConnectionId = ? AND OperationName = ?',
            [faultyId, 'ConnectionAborted'], { ms: 5000, what: `ConnectionAborted row of ${faultyId}` });
        assert.equal(rows.length, 1);
        assert.equal(rows[0].Message, MESSAGE);
        assert.equal(rows[0].Level, 'Error');
        assert.equal(rows[0].LogType, 'ConnectivityLogs');

        // Prometheus: exactly one ServiceTransientError close, and it is the one system error.
        await waitFor(async () => (await metrics(server)).get(CLOSED(CATEGORY)) === 1, 5000, `${CLOSED(CATEGORY)} == 1`);
        const after = await metrics(server);
        assert.equal(after.get(SYSTEM_ERRORS), 1, 'the close is the only system error');
        assert.equal(after.get(CLOSED('Normal')), 0);
        assert.equal(after.get(CLOSED('HandshakeError')), 0, 'not counted as a dropped transport');

        // Azure Monitor's metrics API: the close in the minute it happened, and SystemErrors above 0 there.
        const from = minuteFloor(t0);
        const to = minuteFloor(t1) + 60000;
        const closes = await armMinutes(server, 'ConnectionCloseCount', from, to,
            `Endpoint eq 'Client' and ConnectionCloseCategory eq '${CATEGORY}'`);
        const hit = closes.filter((p) => p.total);
        assert.equal(hit.length, 1, `one minute with the close: ${JSON.stringify(closes)}`);
        assert.equal(hit[0].total, 1);
        assert.ok(hit[0].at >= from && hit[0].at <= minuteFloor(t1), `the close's minute ${hit[0].timeStamp}`);
        const sys = (await armMinutes(server, 'SystemErrors', from, to)).find((p) => p.at === hit[0].at);
        assert.ok(sys && sys.maximum > 0 && sys.maximum <= 100, `SystemErrors in that minute: ${JSON.stringify(sys)}`);

        // Once per process: the same user connects again and is served.
        const again = await connectClient(server, { hub, user: faultyUser });
        clients.push(again);
        res = await api.post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: ['third'] } });
        assert.equal(res.status, 202, describeResponse(res));
        await again.waitMessage('m', (args) => args[0] === 'third', 5000);
        assert.equal((await metrics(server)).get(CLOSED(CATEGORY)), 1);
    });

    it('the ordinary binary has no hook: the trigger changes nothing', async () => {
        const hub = uniq('nofault');
        const user = uniq('faulty');
        server = await startWith(NORMAL_BIN, { [TRIGGER]: user });
        await mgmt(server).putSetting('alllogs');
        const c = await connectClient(server, { hub, user });
        clients.push(c);
        const res = await rest(server).post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: ['hello'] } });
        assert.equal(res.status, 202, describeResponse(res));
        await c.waitMessage('m', (args) => args[0] === 'hello', 5000); // the write the hook would have failed
        assert.equal(c.isClosed, false);
        const m = await metrics(server);
        assert.equal(m.get(CLOSED(CATEGORY)), 0);
        assert.equal(m.get(SYSTEM_ERRORS), 0);
        assert.ok(!readArchive(server.dataDir).some((r) => r.properties?.message === MESSAGE), 'no transient-error record');
    });
});
