// logs.test.mjs - resource logs end to end: what a user finds in the storage
// account's archive and in the Log Analytics workspace after real clients
// connect, talk and go away, and what the pipeline's counters say.
//
// Covered, with the official @microsoft/signalr client wherever a client is
// involved (a raw WebSocket only where a misbehaving client is the point):
//  - connect / disconnect / abort over WebSockets, ServerSentEvents and
//    LongPolling: the exact archive path, every field of every record, the
//    same rows in SignalRServiceDiagnosticLogs; abort reasons (application
//    server closed, ping timeout, service reloading, server connection
//    dropped); access tokens never reach the logs;
//  - a 401 (wrong audience) -> an Authorization record with Azure's text;
//    the connection cap -> 429 and a Throttling record;
//  - default mode with the reference app server: a diagnostic client's Echo
//    traced on all four paths with matching tracing ids (cross-checked with
//    the app server's own messaging log); "collect all" with ordinary clients
//    traces server-to-client messages only;
//  - log source settings: a type turned off stops for ordinary clients within
//    1 s and stays on for diagnostic clients; deleting the last diagnostic
//    setting stops collection altogether;
//  - the diagnostic client limit (100, and a configured 2): the next one gets
//    429, those connected are untouched;
//  - load: thousands of traced messages per second, every delivery record
//    present, nothing dropped, health requests stay fast meanwhile;
//  - a destination that cannot be written: the service keeps serving, the
//    drops are counted after the retries and reported to the other
//    destination by a LogRecordsDropped warning.
//
// Absence ("no record for this client") is only asserted after a record
// produced later by the same pipeline has reached the same destination, or
// after waiting longer than the 1 s the contract allows.  Every wait has a
// timeout.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { startServer } from './lib/server.mjs';
import { startAppServer } from './lib/appserver.mjs';
import { buildClient, connectClient, stopAll, stopClientsAndServer } from './lib/client.mjs';
import { negotiate, rawHubSocket } from './lib/hub.mjs';
import { rest, describeResponse } from './lib/rest.mjs';
import { restToken, signJwt } from './lib/token.mjs';
import { sleep, uniq, waitFor, withTimeout } from './lib/util.mjs';
import {
    RESOURCE_ID, archivePath, archiveRoot, expectedRow, metric, metrics, mgmt, pickColumns, readArchive,
    waitArchive, waitWorkspace, workspaceRows,
} from './lib/logs.mjs';

const TRANSPORTS = ['WebSockets', 'ServerSentEvents', 'LongPolling'];
const RESOURCE_ID_UPPER = RESOURCE_ID.toUpperCase();
const TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/;
const RECORD_WAIT_MS = 3000;   // records reach disk within ~1 s
const SETTINGS_APPLY_MS = 1000; // log source and diagnostic settings apply within 1 s
const CALL_TIMEOUT_MS = 5000;

const MSG = {
    started: 'Connection started',
    ended: 'Connection ended',
    serverless: 'Entered Serverless mode.',
    appClosed: 'Application server closed the connection',
    pingTimeout: 'Connection ping timeout',
    reloading: 'Service reloading, try reconnecting',
    serverDropped: 'Server connection dropped',
    countLimit: 'Connection count reaches limit',
    diagLimit: 'Diagnostic client count reaches limit',
};

// Levels are not published by Azure for these events; these are the service's: an abort the application
// asked for is informational, any other abort a warning.
const LEVEL_OF = {
    [MSG.started]: 'Informational',
    [MSG.ended]: 'Informational',
    [MSG.serverless]: 'Informational',
    [MSG.appClosed]: 'Informational',
    [MSG.pingTimeout]: 'Warning',
    [MSG.reloading]: 'Warning',
    [MSG.serverDropped]: 'Warning',
};

/* ---------------------------------------------------------------------------------------------
 * Helpers.
 */

// The archive record Azure's schema says a client connectivity event produces (every field but time).
function connectivityRecord({ operationName, message, connectionId, transportType, userId, collection = 'Connection', level }) {
    const properties = { type: 'ConnectivityLogs', collection, connectionId, transportType, connectionType: 'Client', userId, message, hub: 'chat' };
    for (const k of Object.keys(properties)) if (properties[k] === undefined) delete properties[k];
    return {
        level: level ?? LEVEL_OF[message],
        resourceId: RESOURCE_ID_UPPER,
        location: 'local',
        category: 'AllLogs',
        operationName,
        callerIpAddress: '127.0.0.1',
        properties,
    };
}

function withoutTime(rec) {
    const { time, ...rest } = rec;
    return rest;
}

// Time is Azure's fixed-width UTC text, inside [from, to] (ms, with slack for clock granularity).
function assertTime(rec, from, to) {
    assert.match(rec.time, TIME_RE, `time of ${rec.line}`);
    const t = Date.parse(rec.time);
    assert.ok(t >= from - 1000 && t <= to + 1000, `time ${rec.time} outside the test's window ${new Date(from).toISOString()}..${new Date(to).toISOString()}`);
}

// The record is in the file of the hour it was written in: the hour of its time, or the next one if the
// hour turned between stamping and writing.
function assertArchivePath(dataDir, rec) {
    const t = Date.parse(rec.time);
    const allowed = new Set([archivePath(dataDir, new Date(t)), archivePath(dataDir, new Date(t + 5000))]);
    assert.ok(allowed.has(rec.file), `record ${rec.operationName} is in ${rec.file}, expected ${[...allowed].join(' or ')}`);
}

// Every file in the container has Azure's path shape (resource id upper-cased, m=00, PT1H.json).
function assertArchiveTree(dataDir) {
    const root = archiveRoot(dataDir);
    const shape = new RegExp(`^${escapeRe(`${root}/resourceId=${RESOURCE_ID_UPPER}`)}/y=\\d{4}/m=\\d\\d/d=\\d\\d/h=\\d\\d/m=00/PT1H\\.json$`);
    const files = new Set(readArchive(dataDir).map((r) => r.file));
    assert.ok(files.size >= 1, 'the archive holds no file');
    for (const f of files) assert.match(f, shape);
}

function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Records of one connection id, in archive order.
const ofConnection = (id) => (r) => r.properties?.connectionId === id;

// Waits for the archive records of connection id to show the operations ops (in order); returns them.
async function waitConnectionRecords(dataDir, id, ops, ms = RECORD_WAIT_MS) {
    const recs = await waitArchive(dataDir, (r) => ofConnection(id)(r) && r.properties.type === 'ConnectivityLogs',
        { count: ops.length, ms, what: `connectivity records of ${id} (${ops.join(', ')})` });
    assert.deepEqual(recs.map((r) => r.operationName), ops, `operations recorded for ${id}`);
    return recs;
}

// Every archive record has exactly one workspace row with the same columns.
async function assertInWorkspace(dataDir, recs, ms = RECORD_WAIT_MS) {
    for (const rec of recs) {
        const want = expectedRow(rec);
        const rows = await waitWorkspace(dataDir, 'TimeGenerated = ? AND OperationName = ? AND Message = ?',
            [rec.time, rec.operationName, want.Message], { ms, what: `workspace row for ${rec.line}` });
        assert.equal(rows.length, 1, `exactly one workspace row for ${rec.line}, got ${JSON.stringify(rows)}`);
        assert.deepEqual(pickColumns(rows[0], want), want, `workspace row for archive record ${rec.line}`);
    }
}

// An official client whose start() must fail with status; returns the error.
async function expectRefused(client, status) {
    let error;
    try {
        await client.start();
    } catch (err) {
        error = err;
    }
    assert.ok(error, `start() of the ${client.describe()} succeeded, expected HTTP ${status}`);
    const got = error.statusCode ?? error.innerErrors?.find((e) => e.statusCode)?.statusCode;
    assert.ok(got === status || String(error.message).includes(`${status}`),
        `start() failed with ${JSON.stringify(error.message)} (statusCode ${got}), expected HTTP ${status}`);
    return error;
}

// Token of a diagnostic client (serverless: the claim is in the client token).
function diagToken(server, user) {
    return server.clientToken('chat', { user, claims: { 'asrs.s.dc': 'true' } });
}

async function restBroadcast(server, arg) {
    const res = await rest(server).post('/api/v1/hubs/chat', { json: { target: 'm', arguments: [arg] } });
    assert.equal(res.status, 202, `REST broadcast: ${describeResponse(res)}`);
}

// Stops the service with SIGTERM but keeps its data directory until the caller has read it.
async function stopKeepingData(server) {
    const before = process.env.SWITCHBOARD_TEST_KEEP;
    process.env.SWITCHBOARD_TEST_KEEP = '1';
    try {
        await server.stop();
    } finally {
        if (before === undefined) delete process.env.SWITCHBOARD_TEST_KEEP;
        else process.env.SWITCHBOARD_TEST_KEEP = before;
    }
}

// A snapshot of everything both destinations hold, for "nothing new" assertions.
function snapshot(dataDir) {
    return { archive: readArchive(dataDir).map((r) => r.line), workspace: workspaceRows(dataDir).length };
}

/* ---------------------------------------------------------------------------------------------
 * 1. Connectivity over every transport.
 */

describe('connectivity logs over every transport (serverless)', () => {
    let server;
    const clients = [];
    before(async () => {
        server = await startServer({ mode: 'serverless' });
        await mgmt(server).putSetting('alllogs');
    });
    afterEach(async () => {
        await stopAll(clients.splice(0));
        server.assertHealthy();
    });
    after(async () => server?.stop());

    for (const transport of TRANSPORTS) {
        it(`${transport}: connect, disconnect and abort are archived and land in the workspace`, async () => {
            const t0 = Date.now();
            const userA = uniq(`ended-${transport}-`);
            const userB = uniq(`aborted-${transport}-`);
            const tokenA = server.clientToken('chat', { user: userA });
            const tokenB = server.clientToken('chat', { user: userB });

            const a = buildClient(server, { transport, user: userA, token: tokenA });
            clients.push(a);
            await a.start();
            const idA = a.connectionId;
            await a.stop();

            const b = buildClient(server, { transport, user: userB, token: tokenB });
            clients.push(b);
            await b.start();
            const idB = b.connectionId;
            const del = await rest(server).del(`/api/v1/hubs/chat/connections/${idB}`);
            assert.equal(del.status, 202, `REST close connection: ${describeResponse(del)}`);
            await b.waitClosed(CALL_TIMEOUT_MS);

            const recsA = await waitConnectionRecords(server.dataDir, idA, ['ConnectionStarted', 'ServerlessModeEntered', 'ConnectionEnded']);
            const recsB = await waitConnectionRecords(server.dataDir, idB, ['ConnectionStarted', 'ServerlessModeEntered', 'ConnectionAborted']);
            const t1 = Date.now();

            const expectA = [
                ['ConnectionStarted', MSG.started], ['ServerlessModeEntered', MSG.serverless], ['ConnectionEnded', MSG.ended],
            ];
            const expectB = [
                ['ConnectionStarted', MSG.started], ['ServerlessModeEntered', MSG.serverless], ['ConnectionAborted', MSG.appClosed],
            ];
            for (const [recs, expect, id, userId] of [[recsA, expectA, idA, userA], [recsB, expectB, idB, userB]]) {
                recs.forEach((rec, i) => {
                    const [operationName, message] = expect[i];
                    assert.deepEqual(withoutTime(rec),
                        connectivityRecord({ operationName, message, connectionId: id, transportType: transport, userId }),
                        `archive record ${i} of ${id}`);
                    assertTime(rec, t0, t1);
                    assertArchivePath(server.dataDir, rec);
                    if (i) assert.ok(rec.time >= recs[i - 1].time, `records of ${id} out of time order: ${recs[i - 1].time} then ${rec.time}`);
                });
            }
            assertArchiveTree(server.dataDir);
            await assertInWorkspace(server.dataDir, [...recsA, ...recsB]);

            // HTTP request logs of the same clients: the negotiate is there, and no access token is, anywhere.
            const negotiates = readArchive(server.dataDir).filter((r) => r.operationName === 'HttpRequest' &&
                r.properties.httpMethod === 'POST' && r.properties.url === `${server.endpoint}/client/negotiate?hub=chat&negotiateVersion=1`);
            assert.ok(negotiates.length >= 2, `HttpRequest records of the negotiates: ${negotiates.length}`);
            for (const n of negotiates) {
                assert.equal(n.properties.type, 'HttpRequestLogs');
                assert.equal(n.properties.statusCode, 200);
                assert.equal(n.level, 'Informational');
            }
            for (const rec of readArchive(server.dataDir)) {
                for (const token of [tokenA, tokenB]) {
                    assert.ok(!rec.line.includes(token), `an access token reached the archive: ${rec.line}`);
                }
                if (rec.properties.url?.includes('access_token=')) {
                    assert.match(rec.properties.url, /access_token=\*\*\*(&|$)/, `token not redacted in ${rec.properties.url}`);
                }
            }
            for (const row of workspaceRows(server.dataDir)) {
                assert.ok(![tokenA, tokenB].some((tk) => row.Url.includes(tk) || row.Message.includes(tk)), `an access token reached the workspace: ${row.Url}`);
            }
        });
    }
});

/* ---------------------------------------------------------------------------------------------
 * Abort reasons that need their own service: ping timeout, graceful shutdown.
 */

describe('abort reasons: ping timeout and service reloading', () => {
    let server;
    const clients = [];
    afterEach(async () => {
        await stopAll(clients.splice(0));
        const s = server;
        server = null;
        if (s?.dataDir) {
            try { await s.stop(); } finally { rmSync(s.dataDir, { recursive: true, force: true }); }
        }
    });

    it('a client that goes silent is aborted with "Connection ping timeout"', async () => {
        server = await startServer({ mode: 'serverless', env: { SWITCHBOARD_CLIENT_TIMEOUT_MS: '1000' } });
        await mgmt(server).putSetting('alllogs');
        const t0 = Date.now();
        const user = uniq('silent');
        // A raw WebSocket: handshakes like any client, then sends nothing at all.
        const raw = await rawHubSocket(server, 'chat', { user });
        try {
            const recs = await waitConnectionRecords(server.dataDir, raw.connectionId,
                ['ConnectionStarted', 'ServerlessModeEntered', 'ConnectionAborted'], 5000);
            const aborted = recs[2];
            assert.deepEqual(withoutTime(aborted), connectivityRecord({
                operationName: 'ConnectionAborted', message: MSG.pingTimeout, connectionId: raw.connectionId,
                transportType: 'WebSockets', userId: user,
            }));
            const silentFor = Date.parse(aborted.time) - Date.parse(recs[0].time);
            assert.ok(silentFor >= 900, `aborted ${silentFor} ms after it started, before the 1000 ms client timeout`);
            assertTime(aborted, t0, Date.now());
            assertArchivePath(server.dataDir, aborted);
            await assertInWorkspace(server.dataDir, recs);
        } finally {
            raw.ws.destroy();
        }
    });

    it('SIGTERM aborts every client with "Service reloading, try reconnecting" and flushes before exit', async () => {
        server = await startServer({ mode: 'serverless' });
        await mgmt(server).putSetting('alllogs');
        const t0 = Date.now();
        const conns = [];
        for (const transport of TRANSPORTS) {
            const user = uniq(`reload-${transport}-`);
            const c = await connectClient(server, { transport, user });
            clients.push(c);
            conns.push({ id: c.connectionId, transport, user });
        }
        // No waiting for the records on disk: the shutdown itself must flush them.
        await stopKeepingData(server);
        for (const { id, transport, user } of conns) {
            const recs = readArchive(server.dataDir).filter(ofConnection(id));
            assert.deepEqual(recs.map((r) => r.operationName), ['ConnectionStarted', 'ServerlessModeEntered', 'ConnectionAborted'],
                `records of the ${transport} client after shutdown`);
            assert.deepEqual(withoutTime(recs[2]), connectivityRecord({
                operationName: 'ConnectionAborted', message: MSG.reloading, connectionId: id, transportType: transport, userId: user,
            }));
            assertTime(recs[2], t0, Date.now());
            assertArchivePath(server.dataDir, recs[2]);
            await assertInWorkspace(server.dataDir, recs, 0);
        }
    });
});

/* ---------------------------------------------------------------------------------------------
 * 2. Authorization failures and throttling.
 */

describe('authorization and throttling records', () => {
    let server;
    const clients = [];
    before(async () => {
        server = await startServer({ mode: 'serverless', env: { SWITCHBOARD_MAX_CONNECTIONS: '2' } });
        await mgmt(server).putSetting('alllogs');
    });
    afterEach(async () => {
        await stopAll(clients.splice(0));
        server.assertHealthy();
    });
    after(async () => server?.stop());

    it('a 401 for a wrong audience is recorded with the expected and actual audiences', async () => {
        const t0 = Date.now();
        const user = uniq('wrongaud');
        const wrongAud = `${server.endpoint}/client/?hub=elsewhere`;
        const now = Math.floor(Date.now() / 1000);
        const token = signJwt({ aud: wrongAud, iat: now, nbf: now, exp: now + 600, nameid: user }, server.accessKey);
        const c = buildClient(server, { transport: 'WebSockets', token });
        clients.push(c);
        await expectRefused(c, 401);

        const text = `Failed to validate audience. Expected Audiences: ${server.endpoint}/client/?hub=chat. Actual Audiences: ${wrongAud}`;
        const [rec] = await waitArchive(server.dataDir, (r) => r.properties.collection === 'Authorization',
            { what: 'an Authorization record' });
        assert.deepEqual(withoutTime(rec), {
            level: 'Warning',
            resourceId: RESOURCE_ID_UPPER,
            location: 'local',
            category: 'AllLogs',
            operationName: 'AuthorizationFailed',
            callerIpAddress: '127.0.0.1',
            properties: { type: 'ConnectivityLogs', collection: 'Authorization', connectionType: 'Client', message: text, hub: 'chat' },
        });
        assertTime(rec, t0, Date.now());
        assertArchivePath(server.dataDir, rec);
        await assertInWorkspace(server.dataDir, [rec]);
    });

    it('the third client over SWITCHBOARD_MAX_CONNECTIONS=2 gets 429 and a Throttling record', async () => {
        const t0 = Date.now();
        const first = await connectClient(server, { user: uniq('cap1-') });
        clients.push(first);
        const second = await connectClient(server, { user: uniq('cap2-'), transport: 'LongPolling' });
        clients.push(second);
        const user = uniq('cap3-');
        const third = buildClient(server, { user });
        clients.push(third);
        await expectRefused(third, 429);

        const [rec] = await waitArchive(server.dataDir, (r) => r.properties.collection === 'Throttling',
            { what: 'a Throttling record' });
        assert.deepEqual(withoutTime(rec), {
            level: 'Warning',
            resourceId: RESOURCE_ID_UPPER,
            location: 'local',
            category: 'AllLogs',
            operationName: 'ConnectionAborted',
            callerIpAddress: '127.0.0.1',
            properties: { type: 'ConnectivityLogs', collection: 'Throttling', connectionType: 'Client', userId: user, message: MSG.countLimit, hub: 'chat' },
        });
        assertTime(rec, t0, Date.now());
        await assertInWorkspace(server.dataDir, [rec]);

        // The refused client changed nothing for the two connected ones.
        const marker = uniq('after-429-');
        await restBroadcast(server, marker);
        await first.waitMessage('m', (a) => a[0] === marker);
        await second.waitMessage('m', (a) => a[0] === marker);
        assert.ok(!first.isClosed && !second.isClosed, 'a connected client was closed by the refusal');
    });
});

/* ---------------------------------------------------------------------------------------------
 * 3. Messaging logs in default mode, through the reference app server.
 */

describe('messaging logs in default mode (reference app server)', () => {
    let server;
    let app;
    const clients = [];
    const TARGETS = ['echo', 'broadcast', 'direct'];

    async function viaApp({ user = uniq('u'), transport = 'WebSockets', diag = false } = {}) {
        const c = buildClient(server, { url: app.clientUrl('chat', user, { diag }), transport, targets: TARGETS });
        clients.push(c);
        await c.start();
        c.user = user;
        return c;
    }
    const call = (c, method, ...args) =>
        withTimeout(c.conn.invoke(method, ...args), CALL_TIMEOUT_MS, `${method} invoked by the ${c.describe()}`);
    const messaging = (r) => r.properties.type === 'MessagingLogs';

    before(async () => {
        server = await startServer({ mode: 'default' });
        app = await startAppServer(server, { log: true });
        await mgmt(server).putSetting('alllogs');
    });
    afterEach(async () => {
        await stopAll(clients.splice(0));
        server.assertHealthy();
    });
    after(async () => {
        try { await app?.stop(); } finally { await server?.stop(); }
    });

    it('collect partially: a diagnostic client\'s Echo is traced on Path 1-4 with matching ids; an ordinary client\'s is not', async () => {
        await mgmt(server).setLogTypes({ MessagingLogs: false });
        await sleep(SETTINGS_APPLY_MS);
        const t0 = Date.now();
        const plain = await viaApp({ user: uniq('plain') });
        const diag = await viaApp({ user: uniq('diag'), diag: true });
        const C = diag.connectionId;

        const plainMarker = uniq('plain-echo-');
        assert.equal(await call(plain, 'Echo', plainMarker), plainMarker);
        await plain.waitMessage('echo', (a) => a[0] === plainMarker);
        const marker = uniq('diag-echo-');
        assert.equal(await call(diag, 'Echo', marker), marker);
        await diag.waitMessage('echo', (a) => a[0] === marker);

        // Path 1 and 2 (client -> service -> server), then Path 3 and 4 for the echo coming back.
        const recs = await waitArchive(server.dataDir, messaging, { count: 4, what: 'four messaging records' });
        await sleep(300); // anything more (an extra or duplicate record) would be in the same batch or just after
        const all = readArchive(server.dataDir).filter(messaging);
        assert.deepEqual(all.map((r) => r.operationName),
            ['MessageReceivedFromClient', 'MessageSentToServer', 'MessageReceivedFromServer', 'MessageSentToClient'],
            `messaging records: ${JSON.stringify(all.map((r) => r.properties.message))}`);
        const [p1, p2, p3, p4] = recs;

        const X = p1.properties.messageTracingId;
        assert.match(String(X), /^[1-9]\d*$/, 'Path 1 carries a service-generated tracing id');
        assert.equal(p1.properties.message, `Received a message ${X} from client connection ${C}.`);
        const m2 = /^Sent a message (\d+) to server connection (\S+) successfully\.$/.exec(p2.properties.message);
        assert.ok(m2, `Path 2 text: ${p2.properties.message}`);
        assert.equal(m2[1], X, 'Path 2 carries the tracing id of Path 1');
        assert.equal(p2.properties.messageTracingId, X);
        const S = m2[2];

        const m3 = /^Received a MultiConnectionDataMessage message (\d+) from server connection (\S+)\.$/.exec(p3.properties.message);
        assert.ok(m3, `Path 3 text: ${p3.properties.message}`);
        const Y = m3[1];
        assert.notEqual(Y, X, 'the reply is a new message with its own tracing id');
        assert.equal(m3[2], S, 'the reply comes back on the server connection the invocation went out on');
        assert.equal(p3.properties.messageTracingId, Y);
        assert.equal(p3.properties.messageType, 'MultiConnectionDataMessage');
        assert.equal(p4.properties.message, `Sent a message ${Y} to client connection ${C} successfully.`);
        assert.equal(p4.properties.messageTracingId, Y);

        // The client-side records describe the diagnostic client; Path 3 describes the server connection.
        const about = (rec) => {
            const { message, messageTracingId, messageType, ...who } = rec.properties;
            return { level: rec.level, resourceId: rec.resourceId, location: rec.location, category: rec.category, callerIpAddress: rec.callerIpAddress, ...who };
        };
        for (const rec of [p1, p2, p4]) {
            assert.deepEqual(about(rec), {
                level: 'Informational', resourceId: RESOURCE_ID_UPPER, location: 'local', category: 'AllLogs', callerIpAddress: '127.0.0.1',
                type: 'MessagingLogs', collection: 'Message', connectionId: C, transportType: 'WebSockets', connectionType: 'Client',
                userId: diag.user, hub: 'chat',
            }, `fields of ${rec.operationName}`);
        }
        assert.equal(p1.properties.messageType, 'InvocationMessage');
        assert.deepEqual([p3.properties.type, p3.properties.collection, p3.properties.connectionId, p3.properties.connectionType, p3.properties.hub, p3.level],
            ['MessagingLogs', 'Message', S, 'Server', 'chat', 'Informational']);
        for (let i = 1; i < 4; i++) assert.ok(recs[i].time >= recs[i - 1].time, `Path ${i + 1} stamped before Path ${i}`);
        for (const rec of recs) assertTime(rec, t0, Date.now());

        // The app server saw the same ids: it received X from C and stamped Y on the echo to C.
        const appLog = await waitFor(() => {
            const lines = app.readLog();
            return lines.includes(`Received message ${X} from client connection ${C}.`) &&
                lines.includes(`Succeeded to send message ${Y}.`) && lines;
        }, RECORD_WAIT_MS, `the app server's log lines for ${X} and ${Y}`);
        assert.ok(appLog.includes(`Start to send message ${Y} to 1 connections ${C}.`), `app server log:\n${appLog.join('\n')}`);
        assert.ok(!appLog.some((l) => l.includes(plain.connectionId)), `the ordinary client's echo was traced by the app server:\n${appLog.join('\n')}`);

        // Nothing about the ordinary client, although its Echo ran first.
        assert.deepEqual(all.filter(ofConnection(plain.connectionId)), []);
        assert.ok(!all.some((r) => r.properties.message.includes(plain.connectionId)));
        await assertInWorkspace(server.dataDir, recs);
    });

    it('collect all: ordinary clients\' Broadcast is traced server-to-client for every recipient, client-to-server not', async () => {
        await mgmt(server).setLogTypes({ MessagingLogs: true });
        await sleep(SETTINGS_APPLY_MS); // the app servers are told to stamp tracing ids
        const before = readArchive(server.dataDir).filter(messaging).length;
        const a = await viaApp({ user: uniq('bca') });
        const b = await viaApp({ user: uniq('bcb'), transport: 'ServerSentEvents' });
        const c = await viaApp({ user: uniq('bcc'), transport: 'LongPolling' });
        const recipients = [a, b, c];
        const marker = uniq('bcast-');
        await call(a, 'Broadcast', marker);
        for (const r of recipients) await r.waitMessage('broadcast', (args) => args[0] === marker);

        const fresh = () => readArchive(server.dataDir).filter(messaging).slice(before);
        await waitFor(() => fresh().filter((r) => r.operationName === 'MessageSentToClient').length >= 3, RECORD_WAIT_MS,
            'Path 4 records for three recipients');
        await sleep(300);
        const recs = fresh();
        const p3 = recs.filter((r) => r.operationName === 'MessageReceivedFromServer');
        assert.equal(p3.length, 1, `one Path 3 record: ${JSON.stringify(recs.map((r) => r.properties.message))}`);
        const m3 = /^Received a BroadcastDataMessage message (\d+) from server connection (\S+)\.$/.exec(p3[0].properties.message);
        assert.ok(m3, `Path 3 text: ${p3[0].properties.message}`);
        const Y = m3[1];
        assert.equal(p3[0].properties.messageType, 'BroadcastDataMessage');
        assert.ok(app.readLog().includes(`Start to broadcast message ${Y}.`), 'the app server stamped the broadcast with the same id');

        const p4 = recs.filter((r) => r.operationName === 'MessageSentToClient');
        assert.deepEqual(p4.map((r) => r.properties.connectionId).sort(), recipients.map((r) => r.connectionId).sort(),
            'one Path 4 record per recipient');
        for (const rec of p4) {
            const r = recipients.find((x) => x.connectionId === rec.properties.connectionId);
            assert.equal(rec.properties.message, `Sent a message ${Y} to client connection ${r.connectionId} successfully.`);
            assert.equal(rec.properties.messageTracingId, Y);
            assert.equal(rec.properties.userId, r.user);
            assert.ok(rec.time >= p3[0].time, 'Path 4 before Path 3');
        }
        assert.deepEqual(p4.map((r) => r.properties.transportType).sort(), ['LongPolling', 'ServerSentEvents', 'WebSockets']);
        // Client-to-server messages of ordinary clients are never parsed for tracing.
        assert.deepEqual(recs.filter((r) => r.operationName === 'MessageReceivedFromClient' || r.operationName === 'MessageSentToServer'), [],
            'client-to-server messages of ordinary clients were logged');
        assert.ok(!recs.some((r) => /^Received a message \d+ from client connection/.test(r.properties.message)));
        assert.equal(recs.length, 4, `exactly Path 3 + three Path 4 records: ${JSON.stringify(recs.map((r) => r.properties.message))}`);
        await assertInWorkspace(server.dataDir, recs);
    });

    it('the app server closing a client, then dying: "Application server closed the connection", "Server connection dropped"', async () => {
        const closedUser = uniq('closed');
        const closed = await viaApp({ user: closedUser, transport: 'ServerSentEvents' });
        const closedId = closed.connectionId;
        call(closed, 'Close', 'bye').catch(() => {}); // the connection ends before any completion
        await closed.waitClosed(CALL_TIMEOUT_MS);
        const recsClosed = await waitConnectionRecords(server.dataDir, closedId, ['ConnectionStarted', 'ConnectionAborted']);
        assert.deepEqual(withoutTime(recsClosed[1]), connectivityRecord({
            operationName: 'ConnectionAborted', message: MSG.appClosed, connectionId: closedId, transportType: 'ServerSentEvents', userId: closedUser,
        }));
        await assertInWorkspace(server.dataDir, recsClosed);

        const orphanUser = uniq('orphan');
        const orphan = await viaApp({ user: orphanUser, transport: 'LongPolling' });
        const orphanId = orphan.connectionId; // the client forgets it once closed
        await app.kill();
        await orphan.waitClosed(CALL_TIMEOUT_MS);
        const recsOrphan = await waitConnectionRecords(server.dataDir, orphanId, ['ConnectionStarted', 'ConnectionAborted']);
        assert.deepEqual(withoutTime(recsOrphan[0]), connectivityRecord({
            operationName: 'ConnectionStarted', message: MSG.started, connectionId: orphanId, transportType: 'LongPolling', userId: orphanUser,
        }));
        assert.deepEqual(withoutTime(recsOrphan[1]), connectivityRecord({
            operationName: 'ConnectionAborted', message: MSG.serverDropped, connectionId: orphanId, transportType: 'LongPolling', userId: orphanUser,
        }));
        await assertInWorkspace(server.dataDir, recsOrphan);
    });
});

/* ---------------------------------------------------------------------------------------------
 * 4. Log source settings and deleting diagnostic settings.
 */

describe('log source settings and diagnostic settings changes', () => {
    let server;
    const clients = [];
    before(async () => {
        server = await startServer({ mode: 'serverless' });
    });
    afterEach(async () => {
        await stopAll(clients.splice(0));
        server.assertHealthy();
    });
    after(async () => server?.stop());

    const started = (id) => (r) => r.properties.connectionId === id && r.operationName === 'ConnectionStarted';

    it('ConnectivityLogs off: ordinary clients stop being logged within 1 s, diagnostic clients still are', async () => {
        const api = mgmt(server);
        await api.putSetting('alllogs');
        const config = await api.setLogTypes({ ConnectivityLogs: false });
        assert.deepEqual(config.properties.resourceLogConfiguration.categories.find((c) => c.name === 'ConnectivityLogs'),
            { name: 'ConnectivityLogs', enabled: 'false' });
        await sleep(SETTINGS_APPLY_MS);

        const plain = await connectClient(server, { user: uniq('plain'), transport: 'ServerSentEvents' });
        clients.push(plain);
        const diagUser = uniq('diag');
        const diag = buildClient(server, { user: diagUser, token: diagToken(server, diagUser), transport: 'ServerSentEvents' });
        clients.push(diag);
        await diag.start();
        const plainId = plain.connectionId;
        const diagId = diag.connectionId;
        await plain.stop();
        await diag.stop();

        // The diagnostic client's whole story; the ordinary client came and went first, so its records would be here.
        const recs = await waitConnectionRecords(server.dataDir, diagId, ['ConnectionStarted', 'ServerlessModeEntered', 'ConnectionEnded']);
        assert.deepEqual(withoutTime(recs[2]), connectivityRecord({
            operationName: 'ConnectionEnded', message: MSG.ended, connectionId: diagId, transportType: 'ServerSentEvents', userId: diagUser,
        }));
        assert.deepEqual(readArchive(server.dataDir).filter(ofConnection(plainId)), [], 'records of the ordinary client');
        assert.deepEqual(workspaceRows(server.dataDir, 'ConnectionId = ?', [plainId]), [], 'workspace rows of the ordinary client');
        // Only the connectivity type is off: HTTP request logs of both negotiates are still collected.
        const negotiates = readArchive(server.dataDir).filter((r) => r.operationName === 'HttpRequest' && r.properties.url?.includes('/client/negotiate'));
        assert.equal(negotiates.length, 2, 'HttpRequest records of the two negotiates');

        // And back on: the next ordinary client is logged again.
        await api.setLogTypes({ ConnectivityLogs: true });
        await sleep(SETTINGS_APPLY_MS);
        const again = await connectClient(server, { user: uniq('again') });
        clients.push(again);
        await waitArchive(server.dataDir, started(again.connectionId), { what: 'ConnectionStarted of a client after turning the type back on' });
    });

    it('deleting a setting stops its destination; deleting the last one stops collection altogether', async () => {
        const api = mgmt(server);
        for (const s of await api.listSettings()) await api.deleteSetting(s.name);
        await api.putSetting('toarchive', { storage: true, workspace: false });
        await api.putSetting('toworkspace', { storage: false, workspace: true });
        assert.deepEqual((await api.listSettings()).map((s) => s.name).sort(), ['toarchive', 'toworkspace']);
        await sleep(SETTINGS_APPLY_MS);

        const diagUser = uniq('diag-both');
        const one = buildClient(server, { user: diagUser, token: diagToken(server, diagUser) });
        clients.push(one);
        await one.start();
        await waitArchive(server.dataDir, started(one.connectionId), { what: 'ConnectionStarted in the archive' });
        await waitWorkspace(server.dataDir, "ConnectionId = ? AND OperationName = 'ConnectionStarted'", [one.connectionId], { what: 'ConnectionStarted in the workspace' });

        // Without the archive's setting: the workspace still gets records, the archive no longer does.
        await api.deleteSetting('toarchive');
        await sleep(SETTINGS_APPLY_MS);
        const archivedBefore = readArchive(server.dataDir).length;
        const two = await connectClient(server, { user: uniq('ws-only') });
        clients.push(two);
        await waitWorkspace(server.dataDir, "ConnectionId = ? AND OperationName = 'ConnectionStarted'", [two.connectionId], { what: 'ConnectionStarted in the workspace' });
        await sleep(SETTINGS_APPLY_MS);
        assert.equal(readArchive(server.dataDir).length, archivedBefore, 'records reached the archive after its setting was deleted');

        // Without any setting: nothing at all, for ordinary and diagnostic clients, connectivity, messages or HTTP.
        await api.deleteSetting('toworkspace');
        assert.deepEqual(await api.listSettings(), []);
        await sleep(SETTINGS_APPLY_MS);
        const snap = snapshot(server.dataDir);
        const emitted = metric(await metrics(server), 'switchboard_log_records_emitted_total');
        const three = await connectClient(server, { user: uniq('none') });
        clients.push(three);
        const diagUser2 = uniq('diag-none');
        const four = buildClient(server, { user: diagUser2, token: diagToken(server, diagUser2), transport: 'LongPolling' });
        clients.push(four);
        await four.start();
        const marker = uniq('unlogged-');
        const traced = await rest(server).post('/api/v1/hubs/chat', {
            json: { target: 'm', arguments: [marker] }, headers: { 'X-ASRS-Message-Tracing-Id': '4242' },
        });
        assert.equal(traced.status, 202, describeResponse(traced));
        await four.waitMessage('m', (a) => a[0] === marker);
        await three.waitMessage('m', (a) => a[0] === marker);
        await stopAll([three, four]);
        await sleep(SETTINGS_APPLY_MS + 500);
        assert.deepEqual(snapshot(server.dataDir), snap, 'records were written after the last diagnostic setting was deleted');
        assert.equal(metric(await metrics(server), 'switchboard_log_records_emitted_total'), emitted,
            'records were produced after the last diagnostic setting was deleted');
    });
});

/* ---------------------------------------------------------------------------------------------
 * 5. The diagnostic client limit.
 */

describe('diagnostic client limit', () => {
    let server;
    const clients = [];
    afterEach(async () => {
        const s = server;
        server = null;
        await stopClientsAndServer(clients, s);
    });

    // The Throttling record of a refused diagnostic client.
    async function assertDiagThrottled(user) {
        const [rec] = await waitArchive(server.dataDir, (r) => r.properties.collection === 'Throttling' && r.properties.userId === user,
            { what: `the Throttling record of ${user}` });
        assert.deepEqual(withoutTime(rec), {
            level: 'Warning', resourceId: RESOURCE_ID_UPPER, location: 'local', category: 'AllLogs',
            operationName: 'ConnectionAborted', callerIpAddress: '127.0.0.1',
            properties: { type: 'ConnectivityLogs', collection: 'Throttling', connectionType: 'Client', userId: user, message: MSG.diagLimit, hub: 'chat' },
        });
        await assertInWorkspace(server.dataDir, [rec]);
    }

    it('the 101st diagnostic client gets 429 (default limit 100); connected ones are untouched', async () => {
        server = await startServer({ mode: 'serverless' });
        await mgmt(server).putSetting('alllogs');
        const connected = [];
        for (let i = 0; i < 2; i++) {
            const user = uniq(`dc${i}-`);
            const c = buildClient(server, { user, token: diagToken(server, user), transport: i ? 'LongPolling' : 'WebSockets' });
            clients.push(c);
            await c.start();
            connected.push(c);
        }
        // 98 more diagnostic clients that negotiate and hold their slot (until the negotiate timeout).
        for (let batch = 0; batch < 98; batch += 14) {
            const results = await Promise.all(Array.from({ length: 14 }, (_, k) => {
                const user = `held${batch + k}`;
                return negotiate(server, 'chat', { user, token: diagToken(server, user) });
            }));
            for (const r of results) assert.equal(r.status, 200, `negotiate of a diagnostic client under the limit: ${r.status} ${r.text}`);
        }
        assert.equal(metric(await metrics(server), 'switchboard_diagnostic_clients'), 100);

        const user = uniq('dc101-');
        const refused = buildClient(server, { user, token: diagToken(server, user) });
        clients.push(refused);
        await expectRefused(refused, 429);
        await assertDiagThrottled(user);

        // An ordinary client is not a diagnostic one: it connects.
        const plain = await connectClient(server, { user: uniq('plain') });
        clients.push(plain);
        const marker = uniq('still-');
        await restBroadcast(server, marker);
        for (const c of [...connected, plain]) await c.waitMessage('m', (a) => a[0] === marker);
        assert.ok(connected.every((c) => !c.isClosed), 'a connected diagnostic client was closed');
        assert.equal(metric(await metrics(server), 'switchboard_diagnostic_clients'), 100);
    });

    it('SWITCHBOARD_MAX_DIAGNOSTIC_CLIENTS=2: the third gets 429, a freed slot is reused', async () => {
        server = await startServer({ mode: 'serverless', env: { SWITCHBOARD_MAX_DIAGNOSTIC_CLIENTS: '2' } });
        await mgmt(server).putSetting('alllogs');
        const mk = (tag, transport = 'WebSockets') => {
            const user = uniq(tag);
            const c = buildClient(server, { user, token: diagToken(server, user), transport });
            c.user = user;
            clients.push(c);
            return c;
        };
        const d1 = mk('d1-');
        const d2 = mk('d2-', 'ServerSentEvents');
        await d1.start();
        await d2.start();
        const d3 = mk('d3-');
        await expectRefused(d3, 429);
        await assertDiagThrottled(d3.user);

        const marker = uniq('two-');
        await restBroadcast(server, marker);
        await d1.waitMessage('m', (a) => a[0] === marker);
        await d2.waitMessage('m', (a) => a[0] === marker);

        await d1.stop();
        await waitFor(async () => metric(await metrics(server), 'switchboard_diagnostic_clients') === 1, RECORD_WAIT_MS,
            'switchboard_diagnostic_clients to drop to 1');
        const d4 = mk('d4-', 'LongPolling');
        await d4.start();
        const marker2 = uniq('again-');
        await restBroadcast(server, marker2);
        await d2.waitMessage('m', (a) => a[0] === marker2);
        await d4.waitMessage('m', (a) => a[0] === marker2);
        assert.equal(metric(await metrics(server), 'switchboard_diagnostic_clients'), 2);
    });
});

/* ---------------------------------------------------------------------------------------------
 * 6. Under load.
 */

// Probes GET /api/v1/health on its own thread (its own event loop), so the latency measured is the
// service's, not this process's while it is busy receiving thousands of messages.
const PROBE_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
let stop = false;
parentPort.on('message', () => { stop = true; });
const once = () => new Promise((resolve) => {
    const t = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port: workerData.port, path: '/api/v1/health', agent: false, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t) / 1e6, status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ ms: Number(process.hrtime.bigint() - t) / 1e6, status: 0, error: e.message }));
});
(async () => {
    const samples = [];
    while (!stop) {
        samples.push(await once());
        await new Promise((r) => setTimeout(r, 5));
    }
    parentPort.postMessage(samples);
})();
`;

function percentile(values, p) {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

describe('messaging logs under load', () => {
    let server;
    const clients = [];
    before(async () => {
        server = await startServer({ mode: 'serverless' });
        await mgmt(server).putSetting('alllogs');
    });
    after(async () => {
        await stopAll(clients.splice(0));
        server.assertHealthy();
        await server.stop();
    });

    it('every traced delivery is recorded, nothing is dropped, health stays fast', async (t) => {
        const RECIPIENTS = 20;
        const MESSAGES = 250;
        const CONCURRENCY = 8;
        const BASE = 9007199254740993n; // 2^53 + 1: tracing ids beyond a double's exact range
        for (let i = 0; i < RECIPIENTS; i++) {
            const c = buildClient(server, { user: `load${i}` });
            clients.push(c);
        }
        await Promise.all(clients.map((c) => c.start()));
        const ids = clients.map((c) => c.connectionId).sort();

        const probe = new Worker(PROBE_SOURCE, { eval: true, workerData: { port: server.port } });
        const probeDone = new Promise((resolve, reject) => {
            probe.once('message', resolve);
            probe.once('error', reject);
        });
        const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
        const path = '/api/v1/hubs/chat';
        const token = restToken(`${server.endpoint}${path}`, { key: server.accessKey });
        const post = (i) => new Promise((resolve, reject) => {
            const body = JSON.stringify({ target: 'm', arguments: [i] });
            const req = http.request({
                host: '127.0.0.1', port: server.port, method: 'POST', path, agent,
                headers: {
                    Authorization: `Bearer ${token}`, 'Content-Type': 'application/json',
                    'Content-Length': Buffer.byteLength(body), 'X-ASRS-Message-Tracing-Id': String(BASE + BigInt(i)),
                },
            }, (res) => {
                res.resume();
                res.on('end', () => (res.statusCode === 202 ? resolve() : reject(new Error(`broadcast ${i}: ${res.statusCode}`))));
            });
            req.on('error', reject);
            req.end(body);
        });

        // The probe runs while the messages go out, are delivered and their records are written.
        let samples;
        let recs;
        const started = Date.now();
        let sentAt;
        let deliveredAt;
        const isPath4 = (r) => r.operationName === 'MessageSentToClient';
        try {
            let next = 0;
            await withTimeout(Promise.all(Array.from({ length: CONCURRENCY }, async () => {
                while (next < MESSAGES) await post(next++);
            })), 15000, `${MESSAGES} REST broadcasts`);
            sentAt = Date.now();
            await waitFor(() => clients.every((c) => c.received('m').length >= MESSAGES), 10000,
                `every client to receive ${MESSAGES} messages`).catch((err) => {
                err.message += ` (got ${clients.map((c) => c.received('m').length).join(',')})`;
                throw err;
            });
            deliveredAt = Date.now();
            recs = await waitArchive(server.dataDir, isPath4, { count: MESSAGES * RECIPIENTS, ms: 10000, what: 'Path 4 records' });
        } finally {
            agent.destroy();
            probe.postMessage('stop');
            samples = await withTimeout(probeDone, 10000, 'the health probe to finish');
            await probe.terminate();
        }
        const rate = Math.round((MESSAGES * RECIPIENTS) / ((deliveredAt - started) / 1000));
        t.diagnostic(`${MESSAGES} broadcasts x ${RECIPIENTS} clients sent in ${sentAt - started} ms, delivered in ` +
            `${deliveredAt - started} ms (~${rate} messages/s), recorded in ${Date.now() - started} ms`);

        // Every delivery has its Path 4 record, exactly once, with the id the REST call carried.
        assert.equal(recs.length, MESSAGES * RECIPIENTS, 'Path 4 records in the archive');
        const byId = new Map();
        for (const r of recs) {
            const id = r.properties.messageTracingId;
            assert.equal(r.properties.message, `Sent a message ${id} to client connection ${r.properties.connectionId} successfully.`);
            if (!byId.has(id)) byId.set(id, []);
            byId.get(id).push(r.properties.connectionId);
        }
        assert.equal(byId.size, MESSAGES, 'distinct tracing ids');
        for (let i = 0; i < MESSAGES; i++) {
            const id = String(BASE + BigInt(i));
            assert.deepEqual((byId.get(id) ?? []).sort(), ids, `recipients recorded for message ${id}`);
        }
        const rows = await waitWorkspace(server.dataDir, "OperationName = 'MessageSentToClient'", [],
            { count: MESSAGES * RECIPIENTS, ms: 10000, what: 'Path 4 rows' });
        assert.equal(rows.length, MESSAGES * RECIPIENTS, 'Path 4 rows in the workspace');
        assert.equal(new Set(rows.map((r) => `${r.MessageTracingId}/${r.ConnectionId}`)).size, MESSAGES * RECIPIENTS, 'distinct (id, connection) rows');
        assert.ok(rows.every((r) => byId.has(r.MessageTracingId)), 'workspace tracing ids are the archive\'s, exactly');

        const m = await metrics(server);
        assert.equal(metric(m, 'switchboard_log_records_dropped_total{reason="queue"}'), 0, 'records dropped: queue full');
        assert.equal(metric(m, 'switchboard_log_records_dropped_total{reason="sink"}'), 0, 'records dropped: sink failed');
        assert.ok(metric(m, 'switchboard_log_records_emitted_total') >= MESSAGES * RECIPIENTS);
        await waitFor(async () => metric(await metrics(server), 'switchboard_log_queue_depth') === 0, RECORD_WAIT_MS, 'an empty log queue');

        const ok = samples.filter((s) => s.status === 200);
        assert.equal(ok.length, samples.length, `failed health probes: ${JSON.stringify(samples.filter((s) => s.status !== 200).slice(0, 3))}`);
        assert.ok(samples.length >= 10, `only ${samples.length} health probes ran during the load`);
        const p99 = percentile(samples.map((s) => s.ms), 99);
        t.diagnostic(`health latency over ${samples.length} probes: p50 ${percentile(samples.map((s) => s.ms), 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
        assert.ok(p99 < 200, `p99 of GET /api/v1/health under load is ${p99.toFixed(1)} ms (limit 200 ms)`);
    });
});

/* ---------------------------------------------------------------------------------------------
 * 7. A destination that cannot be written.
 */

describe('an unwritable destination', () => {
    let server;
    const clients = [];
    after(async () => {
        await stopAll(clients.splice(0));
        if (server) {
            server.assertHealthy();
            await server.stop();
        }
    });

    it('keeps the service serving, counts the drops after the retries and reports them to the workspace', async () => {
        server = await startServer({ mode: 'serverless' });
        // Running as root, permissions stop nothing: make the container impossible to create instead.
        const account = join(server.dataDir, 'storage', 'local');
        mkdirSync(account, { recursive: true });
        writeFileSync(join(account, 'insights-logs-alllogs'), 'a file where the container directory must go\n');
        await mgmt(server).putSetting('alllogs');

        const user = uniq('during');
        const c = await connectClient(server, { user });
        clients.push(c);
        const marker = uniq('served-');
        await restBroadcast(server, marker);
        await c.waitMessage('m', (a) => a[0] === marker);

        // The other destination is not held up by the failing one.
        await waitWorkspace(server.dataDir, "ConnectionId = ? AND OperationName = 'ConnectionStarted'", [c.connectionId],
            { what: 'the workspace row of a connection while the archive fails' });

        const dropped = await waitFor(async () => {
            const n = metric(await metrics(server), 'switchboard_log_records_dropped_total{reason="sink"}');
            return n > 0 && n;
        }, 15000, 'switchboard_log_records_dropped_total{reason="sink"} > 0');

        const [warning] = await waitWorkspace(server.dataDir, "OperationName = 'LogRecordsDropped'", [],
            { ms: 5000, what: 'a LogRecordsDropped row in the workspace' });
        assert.equal(warning.Level, 'Warning');
        assert.equal(warning.LogType, 'ConnectivityLogs');
        assert.equal(warning.Location, 'local');
        assert.equal(warning._ResourceId, RESOURCE_ID_UPPER);
        // names.h: "%llu log records were dropped: %s." with the reason "%s '%s' is unavailable (%s)".
        const m = /^(\d+) log records were dropped: storage account 'local' is unavailable \((.+)\)\.$/.exec(warning.Message);
        assert.ok(m, `LogRecordsDropped message: ${JSON.stringify(warning.Message)}`);
        // The cause must survive whole: a container path that is a file is ENOTDIR.
        assert.match(m[2], /Not a directory/, `the reason of the drops lost its cause: ${JSON.stringify(m[2])}`);
        assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= dropped, `reported ${m[1]} drops, the counter says ${dropped}`);
        assert.equal(metric(await metrics(server), 'switchboard_log_records_dropped_total{reason="queue"}'), 0);

        // Still serving: new clients, messages, health.
        const after = await connectClient(server, { user: uniq('after'), transport: 'LongPolling' });
        clients.push(after);
        const marker2 = uniq('still-');
        await restBroadcast(server, marker2);
        await after.waitMessage('m', (a) => a[0] === marker2);
        await c.waitMessage('m', (a) => a[0] === marker2);
        const health = await rest(server).get('/api/v1/health');
        assert.equal(health.status, 200);
        await waitWorkspace(server.dataDir, "ConnectionId = ? AND OperationName = 'ConnectionStarted'", [after.connectionId],
            { what: 'the workspace row of a connection made after the drops' });
    });
});
