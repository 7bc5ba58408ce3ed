// kql.test.mjs - Log Analytics queries over the workspace: the query API
// (POST and GET /v1/workspaces/{id}/query), `switchboard logs query` and the
// official LogsQueryClient (@azure/monitor-query-logs) against the logs of
// real traffic.
//
// One serverless service for the file: a diagnostic setting routes every log
// to the workspace "local" and every log type is collected for all
// connections except HTTP request logs (each query would add one and move
// the counts the three paths must agree on); then official SignalR clients connect on the three
// transports (one user twice), one is refused for a bad token, one stops,
// one is closed through the REST API.  Every Microsoft sample query for
// SignalRServiceDiagnosticLogs runs unchanged through the three paths, which
// must agree with each other and with what the traffic did.  Malformed
// queries (unbalanced quotes, unknown operators, SQL injection attempts) get
// a clear 400 and change nothing.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { LogsQueryClient } from '@azure/monitor-query-logs';
import { connectClient, stopAll } from './lib/client.mjs';
import { rest } from './lib/rest.mjs';
import { binaryPath, startServer } from './lib/server.mjs';
import { restToken, signJwt } from './lib/token.mjs';
import { sleep, uniq, waitFor } from './lib/util.mjs';

const WS = 'local';
const QUERY_PATH = `/v1/workspaces/${WS}/query`;
const T = 'SignalRServiceDiagnosticLogs\n';

// Microsoft's sample queries for SignalRServiceDiagnosticLogs, verbatim.
const MS = {
    clientConnectionIds: `${T}| where ConnectionType == "Client"\n| summarize count() by ConnectionId, _ResourceId`,
    closeReasons: `${T}| where OperationName == "ConnectionAborted" or OperationName == "ConnectionEnded" or OperationName == "EndConnectionFailed"\n| summarize count() by  ConnectionId, Message, _ResourceId`,
    ipAddresses: `${T}| where isnotnull(CallerIpAddress) and isnotempty(CallerIpAddress)\n| summarize count() by CallerIpAddress, _ResourceId`,
    connectionId: `${T}// Enter ConnectionId value to filter by specific connection ID.\n| where ConnectionId == ""\n| sort by TimeGenerated asc\n| take 100`,
    userId: `${T}// Enter UserId value to filter by specific user ID.\n| where UserId == ""\n| sort by TimeGenerated asc\n| take 100`,
    warnings: `${T}| where Level == "Warning" or Level == "Error"\n| sort by TimeGenerated desc, Collection asc\n| take 100`,
    serverConnectionIds: `${T}| where ConnectionType == "Server"\n| summarize count() by  ConnectionId, _ResourceId`,
    timechart: `${T}| summarize count() by OperationName, bin(TimeGenerated, 1min)\n| render timechart`,
    transportTypes: `${T}| where isnotnull(TransportType) and isnotempty(TransportType)\n| summarize count() by TransportType, _ResourceId`,
    userIds: `${T}| summarize count() by UserId, _ResourceId`,
};

let server;
let api;
const ids = {};
const clients = [];

function runBinary(args) {
    return new Promise((resolve) => {
        execFile(binaryPath(), args, { timeout: 15000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
            resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
        });
    });
}

async function cliQuery(query, extra = []) {
    const r = await runBinary(['logs', 'query', query, '--data-dir', server.dataDir, '--workspace', WS, '--format', 'json', ...extra]);
    return r;
}

async function apiQuery(query, body = {}, headers = {}) {
    const res = await api.post(QUERY_PATH, { json: { query, ...body }, headers });
    return { status: res.status, body: res.text ? res.json() : null, headers: res.headers };
}

// Rows of a table as objects keyed by column name.
function objects(table) {
    return table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c.name, row[i]])));
}

function sdkClient() {
    const credential = { getToken: async () => ({ token: 'unused', expiresOnTimestamp: Date.now() + 3600_000 }) };
    const client = new LogsQueryClient(credential, { endpoint: `${server.endpoint}/v1`, allowInsecureConnection: true });
    // The SDK refuses bearer tokens over http://; sign our own, audience = the request URL without its query.
    client.pipeline.removePolicy({ name: 'bearerTokenAuthenticationPolicy' });
    client.pipeline.addPolicy({
        name: 'switchboardAuth',
        sendRequest: (request, next) => {
            const url = new URL(request.url);
            request.headers.set('authorization', `Bearer ${restToken(`${server.endpoint}${url.pathname}`, { key: server.accessKey })}`);
            return next(request);
        },
    });
    return client;
}

before(async () => {
    server = await startServer({ mode: 'serverless' });
    api = rest(server);
    const common = ['--endpoint', server.endpoint, '--access-key', server.accessKey, '--data-dir', server.dataDir];
    let r = await runBinary(['diag', 'set', 'kql', '--workspace', WS, '--logs', 'allLogs', ...common]);
    assert.equal(r.code, 0, `diag set failed: ${r.stderr}`);
    r = await runBinary(['diag', 'log-types', '--connectivity', 'on', '--messaging', 'on', '--http', 'off', ...common]);
    assert.equal(r.code, 0, `diag log-types failed: ${r.stderr}`);
    await sleep(1100); // settings reach the writer within a second

    const alice1 = await connectClient(server, { user: 'alice', transport: 'WebSockets' });
    const alice2 = await connectClient(server, { user: 'alice', transport: 'WebSockets' });
    const bob = await connectClient(server, { user: 'bob', transport: 'ServerSentEvents' });
    const carol = await connectClient(server, { user: 'carol', transport: 'LongPolling' });
    clients.push(alice2, bob, carol);
    Object.assign(ids, { alice1: alice1.connectionId, alice2: alice2.connectionId, bob: bob.connectionId, carol: carol.connectionId });
    // a refused client: its token is signed with another key (an Authorization record)
    await assert.rejects(connectClient(server, { user: 'mallory', token: server.clientToken('chat', { user: 'mallory', key: 'not-the-key' }) }));
    const sent = await api.post('/api/v1/hubs/chat/users/bob', { json: { target: 'm', arguments: ['hello'] } });
    assert.equal(sent.status, 202);
    await bob.waitMessage('m');
    await alice1.stop(); // ConnectionEnded
    const closed = await api.del(`/api/v1/hubs/chat/connections/${encodeURIComponent(ids.carol)}`);
    assert.equal(closed.status, 202);
    await carol.waitClosed(5000);

    // the writer delivers within about a second: wait until both closes are queryable
    await waitFor(async () => {
        const r = await apiQuery(`${T}| where OperationName in ("ConnectionEnded", "ConnectionAborted") | count`);
        return r.status === 200 && r.body.tables[0].rows[0][0] >= 2;
    }, 10000, 'the close records in the workspace');
});

after(async () => {
    await stopAll(clients);
    if (server) await server.stop();
});

describe('Microsoft sample queries, through the API, the CLI and LogsQueryClient', () => {
    for (const [name, query] of Object.entries(MS)) {
        test(name, async () => {
            const viaApi = await apiQuery(query);
            assert.equal(viaApi.status, 200, JSON.stringify(viaApi.body));
            assert.deepEqual(Object.keys(viaApi.body), ['tables']);
            const table = viaApi.body.tables[0];
            assert.equal(table.name, 'PrimaryResult');

            const viaCli = await cliQuery(query);
            assert.equal(viaCli.code, 0, viaCli.stderr);
            assert.deepEqual(JSON.parse(viaCli.stdout), viaApi.body, 'the CLI prints exactly the API body');

            const viaSdk = await sdkClient().queryWorkspace(WS, query, { duration: 'P1D' }, { includeVisualization: true });
            assert.equal(viaSdk.status, 'Success');
            const sdkTable = viaSdk.tables[0];
            assert.deepEqual(sdkTable.columnDescriptors, table.columns);
            assert.equal(sdkTable.rows.length, table.rows.length);
            sdkTable.rows.forEach((row, i) => row.forEach((cell, k) => {
                const want = table.rows[i][k];
                if (table.columns[k].type === 'datetime') assert.equal(cell.getTime(), new Date(want).getTime());
                else assert.deepEqual(cell, want);
            }));
            check[name](table, viaSdk);
        });
    }
});

const check = {
    clientConnectionIds(table) {
        assert.deepEqual(table.columns.map((c) => `${c.name}:${c.type}`), ['ConnectionId:string', '_ResourceId:string', 'count_:long']);
        const rows = objects(table);
        for (const id of Object.values(ids)) assert.ok(rows.some((r) => r.ConnectionId === id && r.count_ >= 1), `no row for ${id}`);
        assert.ok(rows.every((r) => /\/PROVIDERS\/MICROSOFT\.SIGNALRSERVICE\/SIGNALR\//.test(r._ResourceId)));
    },
    closeReasons(table) {
        assert.deepEqual(table.columns.map((c) => c.name), ['ConnectionId', 'Message', '_ResourceId', 'count_']);
        const rows = objects(table);
        assert.ok(rows.some((r) => r.ConnectionId === ids.carol && r.Message === 'Application server closed the connection'), JSON.stringify(rows));
        assert.ok(rows.some((r) => r.ConnectionId === ids.alice1), JSON.stringify(rows));
        assert.ok(!rows.some((r) => r.ConnectionId === ids.bob), 'bob is still connected');
    },
    ipAddresses(table) {
        const rows = objects(table);
        assert.ok(rows.some((r) => r.CallerIpAddress === '127.0.0.1' && r.count_ > 0), JSON.stringify(rows));
        assert.ok(rows.every((r) => r.CallerIpAddress !== ''));
    },
    // Microsoft's text filters on an empty id: it finds the records that have none (the refused client's)
    connectionId(table) {
        const rows = objects(table);
        assert.ok(rows.length <= 100 && rows.every((r) => r.ConnectionId === ''));
        assert.ok(rows.some((r) => r.Collection === 'Authorization'), JSON.stringify(rows));
        const times = rows.map((r) => r.TimeGenerated);
        assert.deepEqual(times, [...times].sort(), 'oldest first');
    },
    userId(table) {
        const rows = objects(table);
        assert.ok(rows.length <= 100 && rows.every((r) => r.UserId === ''));
        assert.ok(!rows.some((r) => ['alice', 'bob', 'carol'].includes(r.UserId)));
    },
    warnings(table) {
        const rows = objects(table);
        assert.ok(rows.every((r) => r.Level === 'Warning' || r.Level === 'Error'));
        const times = rows.map((r) => r.TimeGenerated);
        assert.deepEqual(times, [...times].sort().reverse(), 'latest first');
    },
    serverConnectionIds(table) {
        assert.equal(table.rows.length, 0, 'serverless mode has no server connections');
    },
    timechart(table, sdk) {
        assert.deepEqual(table.columns.map((c) => `${c.name}:${c.type}`), ['OperationName:string', 'TimeGenerated:datetime', 'count_:long']);
        const rows = objects(table);
        assert.ok(rows.some((r) => r.OperationName === 'ConnectionAborted'));
        assert.ok(rows.every((r) => /:00Z$/.test(r.TimeGenerated)), 'binned to whole minutes');
        assert.equal(sdk.visualization.visualization, 'timechart');
    },
    transportTypes(table) {
        const kinds = objects(table).map((r) => r.TransportType).sort();
        for (const t of ['LongPolling', 'ServerSentEvents', 'WebSockets']) assert.ok(kinds.includes(t), kinds.join());
    },
    userIds(table) {
        const users = objects(table).map((r) => r.UserId);
        for (const u of ['alice', 'bob', 'carol']) assert.ok(users.includes(u), users.join());
    },
};

describe('the query API', () => {
    test('GET with a percent-encoded query and a timespan', async () => {
        const q = encodeURIComponent(`${T}| where UserId == "alice" and OperationName == "ConnectionStarted" | count`);
        const res = await api.get(`${QUERY_PATH}?query=${q}&timespan=PT1H`);
        assert.equal(res.status, 200, res.text);
        assert.match(res.headers['content-type'], /^application\/json/);
        assert.deepEqual(res.json().tables[0].rows, [[2]]);
    });

    test('doubled slashes and the path without /v1', async () => {
        for (const path of [`//v1/workspaces/${WS}/query`, `/workspaces/${WS}/query`]) {
            const res = await api.post(path, { json: { query: `${T}| take 1 | count` } });
            assert.equal(res.status, 200, `${path}: ${res.text}`);
        }
    });

    test('a timespan in the past sees nothing; the Prefer header adds statistics and render', async () => {
        const past = await apiQuery(`${T}| count`, { timespan: '2020-01-01T00:00:00Z/2020-01-02T00:00:00Z' });
        assert.deepEqual(past.body.tables[0].rows, [[0]]);
        const r = await apiQuery(MS.timechart, { timespan: 'PT1H' }, { Prefer: 'wait=30,include-statistics=true,include-render=true' });
        assert.equal(r.status, 200);
        assert.equal(r.body.render.visualization, 'timechart');
        assert.equal(typeof r.body.statistics.query.executionTime, 'number');
    });

    test('the user-facing troubleshooting samples run through the CLI', async () => {
        const one = await runBinary(['logs', 'samples', '--run', 'connection', '--arg', `connectionId=${ids.carol}`, '--data-dir', server.dataDir, '--format', 'json']);
        assert.equal(one.code, 0, one.stderr);
        const rows = objects(JSON.parse(one.stdout).tables[0]);
        assert.ok(rows.length >= 2);
        assert.ok(rows.every((r) => r.ConnectionId === ids.carol));
        assert.equal(rows.at(-1).OperationName, 'ConnectionAborted');
        const perUser = await runBinary(['logs', 'samples', '--run', 'connections-per-user', '--data-dir', server.dataDir, '--format', 'json']);
        assert.equal(perUser.code, 0, perUser.stderr);
        const alice = objects(JSON.parse(perUser.stdout).tables[0]).find((r) => r.UserId === 'alice');
        assert.equal(alice.connections, 2, 'two connections for one user: the growth the guide looks for');
        const auth = await runBinary(['logs', 'samples', '--run', 'authorization-failures', '--data-dir', server.dataDir, '--format', 'json']);
        assert.equal(auth.code, 0, auth.stderr);
        assert.ok(JSON.parse(auth.stdout).tables[0].rows.length >= 1, 'the refused client is on record');
        const table = await runBinary(['logs', 'query', `${T}| where UserId == "bob" | summarize n = count() by UserId`, '--data-dir', server.dataDir]);
        assert.equal(table.code, 0, table.stderr);
        assert.match(table.stdout, /^UserId\s+n\n-+\s+-+\nbob\s+\d+\n\(1 row\)\n$/);
        const missing = await runBinary(['logs', 'samples', '--run', 'user', '--data-dir', server.dataDir]);
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /needs --arg userId=VALUE/);
    });

    test('malformed queries are clear 400s and change nothing', async () => {
        const count = async () => (await apiQuery(`${T}| count`)).body.tables[0].rows[0][0];
        const before = await count();
        const cases = [
            [`${T}| where UserId == "alice`, 'SyntaxError', /unterminated string literal/],
            [`${T}| wher UserId == "alice"`, 'SyntaxError', /expected an operator after '\|', found 'wher'/],
            [`${T}| where UserId == "'; drop table SignalRServiceDiagnosticLogs; --"`, null, null],
            [`${T}; drop table SignalRServiceDiagnosticLogs; --`, 'SyntaxError', /expected/],
            [`${T}| where UserId == ''; drop table x; --'`, 'SyntaxError', /expected|unterminated/],
            ['sqlite_master | take 1', 'SemanticError', /Failed to resolve table expression named 'sqlite_master'/],
            [`${T}| project "UserId"; DELETE FROM SignalRServiceDiagnosticLogs`, 'SyntaxError', /expected/],
            [`${T}| where NoSuchColumn == 1`, 'SemanticError', /Failed to resolve scalar expression named 'NoSuchColumn'/],
        ];
        for (const [query, code, message] of cases) {
            const r = await apiQuery(query);
            if (!code) {
                assert.equal(r.status, 200, 'an injection attempt inside a literal is just a string');
                assert.equal(r.body.tables[0].rows.length, 0);
                continue;
            }
            assert.equal(r.status, 400, `${query}: ${JSON.stringify(r.body)}`);
            assert.equal(r.body.error.code, 'BadArgumentError');
            assert.equal(r.body.error.innererror.code, code, JSON.stringify(r.body));
            assert.match(r.body.error.message, message);
            assert.match(r.body.error.innererror.message, /\n.*\n *\^$/, 'the excerpt and a caret');
            const viaCli = await cliQuery(query);
            assert.equal(viaCli.code, 1);
            assert.match(viaCli.stderr, message);
        }
        await assert.rejects(sdkClient().queryWorkspace(WS, `${T}| wher x`, { duration: 'PT1H' }),
            (err) => err.statusCode === 400 && /wher/.test(err.message));
        assert.equal(await count(), before, 'nothing was deleted');
    });

    test('auth, unknown paths and workspaces', async () => {
        const noToken = await api.post(QUERY_PATH, { json: { query: `${T}| count` }, token: null });
        assert.equal(noToken.status, 401);
        assert.equal(noToken.json().error.code, 'AuthorizationRequiredError');
        const otherAud = await api.post(QUERY_PATH, { json: { query: `${T}| count` }, token: restToken(`${server.endpoint}/v1/workspaces/other/query`, { key: server.accessKey }) });
        assert.equal(otherAud.status, 401);
        const badKey = await api.post(QUERY_PATH, { json: { query: `${T}| count` }, token: signJwt({ aud: `${server.endpoint}${QUERY_PATH}`, exp: Math.floor(Date.now() / 1000) + 60 }, 'wrong') });
        assert.equal(badKey.status, 401);
        const ws = await api.post('/v1/workspaces/nope/query', { json: { query: `${T}| count` } });
        assert.equal(ws.status, 404);
        assert.equal(ws.json().error.code, 'WorkspaceNotFoundError');
        const path = await api.post('/v1/workspaces/local/nothing', { json: { query: 'x' } });
        assert.equal(path.status, 404);
        assert.equal(path.json().error.code, 'PathNotFoundError');
        const method = await api.put(QUERY_PATH, { json: { query: 'x' } });
        assert.equal(method.status, 405);
        const body = await api.post(QUERY_PATH, { body: 'not json', contentType: 'application/json' });
        assert.equal(body.status, 400);
        assert.equal(body.json().error.code, 'BadArgumentError');
    });

    test('queries run off the event loop: the service answers while many run', async () => {
        const heavy = `${T}| extend k = strcat(ConnectionId, UserId) | summarize make_set(k), dcount(k) by bin(TimeGenerated, 1s)`;
        const pending = Array.from({ length: 12 }, () => apiQuery(heavy));
        const health = await api.get('/api/v1/health');
        assert.equal(health.status, 200);
        for (const r of await Promise.all(pending)) assert.equal(r.status, 200);
    });

    test('a client that disconnects before its answer does not hurt the service', async () => {
        const payload = JSON.stringify({ query: `${T}| summarize count() by UserId` });
        await new Promise((resolve) => {
            const req = http.request({
                host: '127.0.0.1', port: server.port, method: 'POST', path: QUERY_PATH, agent: false,
                headers: {
                    'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload),
                    Authorization: `Bearer ${restToken(`${server.endpoint}${QUERY_PATH}`, { key: server.accessKey })}`,
                },
            });
            req.on('error', () => resolve());
            req.end(payload, () => { req.destroy(); resolve(); });
        });
        await sleep(200);
        const r = await apiQuery(`${T}| take 1 | count`);
        assert.equal(r.status, 200);
        server.assertHealthy();
    });

    test('byte-at-a-time request bodies are answered once complete', async () => {
        const payload = JSON.stringify({ query: `${T}| where UserId == "${uniq('nobody')}" | count` });
        const token = restToken(`${server.endpoint}${QUERY_PATH}`, { key: server.accessKey });
        const text = await new Promise((resolve, reject) => {
            const req = http.request({
                host: '127.0.0.1', port: server.port, method: 'POST', path: QUERY_PATH, agent: false,
                headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), Authorization: `Bearer ${token}` },
            }, (res) => {
                let body = '';
                res.on('data', (c) => { body += c; });
                res.on('end', () => resolve(body));
            });
            req.on('error', reject);
            req.flushHeaders();
            (async () => {
                for (const ch of Buffer.from(payload)) {
                    req.write(Buffer.from([ch]));
                    await sleep(1);
                }
                req.end();
            })();
        });
        assert.deepEqual(JSON.parse(text).tables[0].rows, [[0]]);
    });
});
