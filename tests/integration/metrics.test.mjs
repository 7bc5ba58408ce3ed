// metrics.test.mjs - platform metrics, tiers and limits, and the lifecycle
// pieces around them, driven like a user would:
//
//  - known traffic from official clients and REST broadcasts (3 WebSocket
//    clients, 10 broadcasts of a known size), then every metric's value by
//    dimension through Azure Monitor's APIs with Microsoft's own SDKs
//    (@azure/arm-monitor's MonitorClient: ARM metrics, metricDefinitions,
//    metricNamespaces; @azure/monitor-query-metrics' MetricsClient:
//    metrics:getBatch) and through GET /metrics, whose text is checked
//    against the Prometheus 0.0.4 exposition rules by a strict parser;
//  - close categories (Normal, ClosedByAppServer, ServiceReload), UserErrors;
//  - AllMetrics in a diagnostic setting: rows in the workspace table
//    AzureMetrics and lines in the archive container insights-metrics-pt1m
//    once the minute is sealed (this waits for the next minute);
//  - the Free tier: the 21st connection gets 429 with a Throttling record;
//    REST sends over the daily message quota get 429 "Message count reaches
//    limit" with a MessageThrottled record; app-server fan-out over the quota
//    is dropped while the client's own replies still flow;
//  - tier/units configuration errors; SIGHUP reload (clients get a
//    reconnect-allowed Close, the configuration is re-read, the service keeps
//    serving; a bad file reloads nothing); the `switchboard metrics` table.
//
// The service's minute is its UTC wall-clock minute; every query spans the
// test's whole time, so a minute boundary in the middle changes nothing.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MonitorClient } from '@azure/arm-monitor';
import { MetricsClient } from '@azure/monitor-query-metrics';
import { binaryPath, startServer } from './lib/server.mjs';
import { startAppServer } from './lib/appserver.mjs';
import { buildClient, connectClient, stopAll } from './lib/client.mjs';
import { rest, describeResponse } from './lib/rest.mjs';
import { restToken } from './lib/token.mjs';
import { sleep, uniq, waitFor, withTimeout } from './lib/util.mjs';

const SUB = '00000000-0000-0000-0000-000000000000';
const RESOURCE_ID = `/subscriptions/${SUB}/resourceGroups/default/providers/Microsoft.SignalRService/SignalR/switchboard`;
const RID_UPPER = RESOURCE_ID.toUpperCase();
const NAMESPACE = 'Microsoft.SignalRService/SignalR';
const SETTINGS_API = '2021-05-01-preview';
const STORAGE_ID = `/subscriptions/${SUB}/resourceGroups/default/providers/Microsoft.Storage/storageAccounts/local`;
const WORKSPACE_ID = `/subscriptions/${SUB}/resourceGroups/default/providers/Microsoft.OperationalInsights/workspaces/local`;
const ALL_METRICS = ['ConnectionCloseCount', 'ConnectionCount', 'ConnectionOpenCount', 'ConnectionQuotaUtilization',
    'InboundTraffic', 'MessageCount', 'OutboundTraffic', 'ServerLoad', 'SystemErrors', 'UserErrors'];

/* ---------------------------------------------------------------------------------------------
 * Clients of Azure Monitor's APIs: Microsoft's SDKs over http://, with our HS256 token per request
 * (audience = the request URL without its query), as the reference digest describes.
 */

const credential = { getToken: async () => ({ token: 'unused', expiresOnTimestamp: Date.now() + 3600_000 }) };

function withServiceAuth(client, server) {
    client.pipeline.removePolicy({ name: 'bearerTokenAuthenticationPolicy' });
    client.pipeline.addPolicy({
        name: 'switchboardAuth',
        sendRequest: (request, next) => {
            const path = new URL(request.url).pathname;
            request.headers.set('authorization', `Bearer ${restToken(`${server.endpoint}${path}`, { key: server.accessKey })}`);
            return next(request);
        },
    });
    return client;
}

function armClient(server) {
    return withServiceAuth(new MonitorClient(credential, SUB, { endpoint: server.endpoint, allowInsecureConnection: true }), server);
}

function batchClient(server) {
    return withServiceAuth(new MetricsClient(server.endpoint, credential, { allowInsecureConnection: true }), server);
}

// The single data point of a FULL query, per series key ('' or the dimension values joined by '/').
function fullPoints(metric) {
    const out = new Map();
    for (const ts of metric.timeseries) {
        const key = (ts.metadatavalues ?? []).map((m) => m.value).join('/');
        assert.equal(ts.data.length, 1, `one point per series with interval FULL (${metric.name.value})`);
        out.set(key, ts.data[0]);
    }
    return out;
}

function byName(list, name) {
    const m = list.find((x) => x.name.value === name);
    assert.ok(m, `no metric ${name} in the answer (has ${list.map((x) => x.name.value).join(', ')})`);
    return m;
}

/* ---------------------------------------------------------------------------------------------
 * Prometheus text format 0.0.4, checked strictly.
 */

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text, where) {
    if (text === 'NaN' || text === '+Inf' || text === '-Inf') return Number(text.replace('Inf', 'Infinity'));
    assert.match(text, /^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$/, `bad value ${JSON.stringify(text)} in ${where}`);
    return Number(text);
}

// Parses labels at text[i] (after '{'): -> [{name: value}, index after '}'].
function parseLabels(text, i, where) {
    const labels = {};
    for (;;) {
        if (text[i] === '}') return [labels, i + 1];
        const eq = text.indexOf('=', i);
        assert.ok(eq > i, `label without '=' in ${where}`);
        const name = text.slice(i, eq);
        assert.match(name, LABEL, `bad label name ${JSON.stringify(name)} in ${where}`);
        assert.ok(!name.startsWith('__'), `reserved label name ${name} in ${where}`);
        assert.equal(text[eq + 1], '"', `label value not quoted in ${where}`);
        let value = '';
        let j = eq + 2;
        for (; j < text.length && text[j] !== '"'; j++) {
            if (text[j] === '\\') {
                const e = text[++j];
                assert.ok(e === '\\' || e === '"' || e === 'n', `bad escape \\${e} in ${where}`);
                value += e === 'n' ? '\n' : e;
            } else {
                value += text[j];
            }
        }
        assert.equal(text[j], '"', `unterminated label value in ${where}`);
        assert.ok(!(name in labels), `label ${name} twice in ${where}`);
        labels[name] = value;
        i = j + 1;
        if (text[i] === ',') i++;
        else assert.equal(text[i], '}', `expected ',' or '}' in ${where}`);
    }
}

// -> Map('name' | 'name{l="v",...}' as written -> value); throws on any violation of the format.
function parseExposition(text) {
    assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
    const types = new Map();
    const helps = new Set();
    const finished = new Set();
    const samples = new Map();
    let current = null;
    const lines = text.split('\n').slice(0, -1);
    for (const [n, line] of lines.entries()) {
        const where = `line ${n + 1}: ${line}`;
        if (line === '') continue;
        const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
        if (meta) {
            const [, kind, name, rest] = meta;
            assert.match(name, NAME, `bad metric name in ${where}`);
            assert.ok(!finished.has(name) || name === current, `family ${name} is not contiguous (${where})`);
            if (current !== name) {
                if (current) finished.add(current);
                current = name;
            }
            if (kind === 'HELP') {
                assert.ok(!helps.has(name), `second HELP for ${name}`);
                assert.ok(rest && !/\\[^\\n]/.test(rest), `bad HELP text in ${where}`);
                helps.add(name);
            } else {
                assert.ok(!types.has(name), `second TYPE for ${name}`);
                assert.ok(TYPES.has(rest), `bad TYPE in ${where}`);
                assert.ok(![...samples.keys()].some((k) => k === name || k.startsWith(`${name}{`)), `TYPE after samples of ${name}`);
                types.set(name, rest);
            }
            continue;
        }
        if (line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{?)/.exec(line);
        assert.ok(m, `bad sample line ${where}`);
        const name = m[1];
        let i = name.length;
        let labels = {};
        if (m[2]) [labels, i] = parseLabels(line, i + 1, where);
        assert.equal(line[i], ' ', `expected a space before the value in ${where}`);
        const parts = line.slice(i + 1).split(' ');
        assert.ok(parts.length === 1 || (parts.length === 2 && /^-?\d+$/.test(parts[1])), `bad value/timestamp in ${where}`);
        const value = parseValue(parts[0], where);
        assert.ok(types.has(name), `sample of ${name} without a TYPE line`);
        assert.ok(name === current, `sample of ${name} outside its family's block (${where})`);
        if (types.get(name) === 'counter') {
            assert.ok(name.endsWith('_total'), `counter ${name} must end in _total`);
            assert.ok(value >= 0, `counter ${name} is negative`);
        } else {
            assert.ok(!name.endsWith('_total'), `non-counter ${name} must not end in _total`);
        }
        const key = Object.keys(labels).length
            ? `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`
            : name;
        assert.ok(!samples.has(key), `duplicate series ${key}`);
        samples.set(key, value);
    }
    for (const name of types.keys()) assert.ok(helps.has(name), `no HELP for ${name}`);
    return samples;
}

async function scrape(server) {
    const res = await fetch(`${server.endpoint}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    return parseExposition(await res.text());
}

function prom(samples, key) {
    assert.ok(samples.has(key), `/metrics has no ${key}`);
    return samples.get(key);
}

/* ---------------------------------------------------------------------------------------------
 * Diagnostic settings and the sinks.
 */

async function putSetting(api, name, { logs = true, metrics = true } = {}) {
    const properties = { storageAccountId: STORAGE_ID, workspaceId: WORKSPACE_ID, logs: [], metrics: [] };
    if (logs) properties.logs.push({ categoryGroup: 'allLogs', enabled: true });
    if (metrics) properties.metrics.push({ category: 'AllMetrics', enabled: true });
    const path = `${RESOURCE_ID}/providers/Microsoft.Insights/diagnosticSettings/${name}?api-version=${SETTINGS_API}`;
    const res = await api.put(path, { json: { properties } });
    assert.ok([200, 201].includes(res.status), `PUT diagnostic setting: ${describeResponse(res)}`);
}

function sqlRows(dataDir, sql, params = []) {
    const path = join(dataDir, 'workspaces', 'local.db');
    if (!existsSync(path)) return [];
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
        db.pragma('busy_timeout = 2000');
        return db.prepare(sql).all(...params);
    } catch (err) {
        if (/no such table/.test(err.message)) return [];
        throw err;
    } finally {
        db.close();
    }
}

async function waitRows(dataDir, sql, params, count, ms, what) {
    return waitFor(() => {
        const rows = sqlRows(dataDir, sql, params);
        return rows.length >= count && rows;
    }, ms, what);
}

// Every JSON line of every hour file under the archive container of storage account "local".
function archiveLines(dataDir, container) {
    const root = join(dataDir, 'storage', 'local', container);
    const out = [];
    const walk = (dir) => {
        if (!existsSync(dir)) return;
        for (const e of readdirSync(dir, { withFileTypes: true })) {
            const p = join(dir, e.name);
            if (e.isDirectory()) walk(p);
            else if (e.name === 'PT1H.json') out.push({ path: p, lines: readFileSync(p, 'utf8').split('\n').filter(Boolean) });
        }
    };
    walk(root);
    return out;
}

const minuteFloor = (ms) => Math.floor(ms / 60000) * 60000;

/* ===============================================================================================
 * Standard tier, serverless: known traffic, every metric by dimension.
 */

describe('platform metrics (Standard, serverless)', () => {
    let server;
    let api;
    let started;
    const clients = [];
    const hub = uniq('metrics');
    const PAYLOAD = 'x'.repeat(2500);
    // What one REST broadcast costs per WebSocket/JSON recipient: the compact invocation, the record
    // separator, a 4-byte WebSocket header (126..65535 bytes of payload).
    const FRAME = Buffer.byteLength(JSON.stringify({ type: 1, target: 'm', arguments: [PAYLOAD] })) + 1 + 4;
    const UNITS = Math.ceil(FRAME / 2048);
    let baseline;
    let afterTraffic;
    let trafficMinute;

    before(async () => {
        started = minuteFloor(Date.now());
        server = await startServer({ mode: 'serverless', env: { SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '600000' } });
        api = rest(server);
        await putSetting(api, 'metrics-all');
    });
    afterEach(() => server.assertHealthy());
    after(async () => {
        await stopAll(clients);
        await server?.stop();
    });

    const span = () => ({ start: new Date(started), end: new Date(minuteFloor(Date.now()) + 120000) });

    async function armFull(names, { filter, aggregation = 'total,maximum,minimum,count,average' } = {}) {
        const { start, end } = span();
        return armClient(server).metrics.list(RESOURCE_ID, {
            metricnames: names.join(','), timespan: `${start.toISOString()}/${end.toISOString()}`, interval: 'FULL',
            aggregation, filter, metricnamespace: NAMESPACE,
        });
    }

    it('counts 3 clients and 10 broadcasts exactly, by dimension, in the ARM API, getBatch and /metrics', async () => {
        assert.equal(UNITS, 2);
        for (let i = 0; i < 3; i++) clients.push(await connectClient(server, { hub, user: `u${i}` }));
        await waitFor(async () => prom(await scrape(server), 'switchboard_connections_opened_total{endpoint="client"}') === 3,
            3000, 'three client opens on /metrics');
        baseline = await scrape(server);
        const armBefore = fullPoints(byName((await armFull(['MessageCount', 'OutboundTraffic', 'InboundTraffic'])).value, 'MessageCount'));

        let bodies = 0;
        for (let i = 0; i < 10; i++) {
            const body = { target: 'm', arguments: [PAYLOAD] };
            bodies += Buffer.byteLength(JSON.stringify(body));
            const res = await api.post(`/api/v1/hubs/${hub}`, { json: body });
            assert.equal(res.status, 202, describeResponse(res));
        }
        for (const c of clients) await waitFor(() => c.received('m').length === 10, 3000, `10 broadcasts on ${c.describe()}`);
        trafficMinute = minuteFloor(Date.now());
        afterTraffic = await scrape(server);

        // Prometheus: exact deltas
        assert.equal(prom(afterTraffic, 'switchboard_messages_total') - prom(baseline, 'switchboard_messages_total'), 30 * UNITS);
        assert.equal(prom(afterTraffic, 'switchboard_outbound_bytes_total') - prom(baseline, 'switchboard_outbound_bytes_total'), 30 * FRAME);
        assert.ok(prom(afterTraffic, 'switchboard_inbound_bytes_total') - prom(baseline, 'switchboard_inbound_bytes_total') > bodies);
        assert.equal(prom(afterTraffic, 'switchboard_connections_opened_total{endpoint="client"}'), 3);
        assert.equal(prom(afterTraffic, 'switchboard_connections_opened_total{endpoint="server"}'), 0);
        assert.equal(prom(afterTraffic, `switchboard_connection_count{endpoint="client",hub="${hub}"}`), 3);
        assert.ok(Math.abs(prom(afterTraffic, 'switchboard_connection_quota_utilization_ratio') - 3 / 100000) < 1e-9);
        assert.equal(prom(afterTraffic, 'switchboard_connection_limit'), 100000);

        // ARM metrics API through MonitorClient: the same deltas, and the dimensions
        const res = await armFull(['MessageCount', 'OutboundTraffic', 'InboundTraffic', 'ConnectionOpenCount', 'ConnectionCount']);
        assert.equal(res.namespace, 'microsoft.signalrservice/signalr');
        assert.ok(res.timespan.includes('/'));
        const msg = fullPoints(byName(res.value, 'MessageCount')).get('');
        assert.equal(msg.total - armBefore.get('').total, 30 * UNITS);
        assert.equal(byName(res.value, 'MessageCount').unit, 'Count');
        assert.equal(byName(res.value, 'OutboundTraffic').unit, 'Bytes');
        assert.equal(fullPoints(byName(res.value, 'ConnectionOpenCount')).get('').total, 3);
        assert.equal(fullPoints(byName(res.value, 'ConnectionCount')).get('').maximum, 3);

        const split = await armFull(['ConnectionOpenCount', 'ConnectionCount'], { filter: "Endpoint eq '*'" });
        const opens = fullPoints(byName(split.value, 'ConnectionOpenCount'));
        assert.deepEqual([...opens.keys()], ['Client'], 'only endpoints with data are listed for *');
        assert.equal(opens.get('Client').total, 3);
        const md = byName(split.value, 'ConnectionOpenCount').timeseries[0].metadatavalues[0];
        assert.equal(md.name.value, 'endpoint');
        assert.equal(fullPoints(byName(split.value, 'ConnectionCount')).get('Client').maximum, 3);
        const serverOnly = await armFull(['ConnectionOpenCount'], { filter: "Endpoint eq 'Server'" });
        assert.equal(fullPoints(byName(serverOnly.value, 'ConnectionOpenCount')).get('Server').total, 0, 'a listed value is shown without data');

        // per minute: the points of PT1M add up to the FULL total, and the traffic minute holds the broadcasts
        const { start, end } = span();
        const perMinute = await armClient(server).metrics.list(RESOURCE_ID, {
            metricnames: 'MessageCount', timespan: `${start.toISOString()}/${end.toISOString()}`, interval: 'PT1M', aggregation: 'total',
        });
        const points = perMinute.value[0].timeseries[0].data;
        const sum = points.reduce((s, p) => s + (p.total ?? 0), 0);
        assert.equal(sum, msg.total);
        assert.ok(points.every((p) => p.timeStamp.getTime() % 60000 === 0), 'PT1M points sit on minutes');

        // metrics:getBatch through MetricsClient: the same numbers
        const batch = await batchClient(server).queryResources([RESOURCE_ID], ['MessageCount', 'ConnectionOpenCount'], NAMESPACE,
            { startTime: start, endTime: end, interval: 'FULL', aggregation: 'total', filter: "Endpoint eq '*'" });
        assert.equal(batch.length, 1);
        assert.equal(batch[0].resourceId, RESOURCE_ID);
        const bm = batch[0].metrics; /* this SDK names a metric by its localizedValue */
        assert.deepEqual(bm.map((m) => m.name), ['Message Count', 'Connection Open Count']);
        assert.equal(bm[0].timeseries[0].data[0].total, msg.total);
        const bo = bm[1].timeseries;
        assert.equal(bo.length, 1);
        assert.equal(bo[0].metadatavalues[0].value, 'Client');
        assert.equal(bo[0].data[0].total, 3);
    });

    it('closes are counted by category: Normal (client stop) and ClosedByAppServer (REST close)', async () => {
        const extra = await connectClient(server, { hub, user: 'closer' });
        const res = await api.del(`/api/v1/hubs/${hub}/connections/${extra.connectionId}`);
        assert.equal(res.status, 202, describeResponse(res));
        await extra.waitClosed();
        await stopAll(clients.splice(0));
        const samples = await waitFor(async () => {
            const s = await scrape(server);
            return s.get('switchboard_connections_closed_total{endpoint="client",category="Normal"}') === 3 && s;
        }, 3000, 'three Normal closes on /metrics');
        assert.equal(prom(samples, 'switchboard_connections_closed_total{endpoint="client",category="ClosedByAppServer"}'), 1);
        assert.equal(prom(samples, 'switchboard_connections_closed_total{endpoint="client",category="PingTimeout"}'), 0);

        const r = await armFull(['ConnectionCloseCount', 'ConnectionCount'], { filter: "Endpoint eq 'Client' and ConnectionCloseCategory eq '*'" });
        const closes = fullPoints(byName(r.value, 'ConnectionCloseCount'));
        assert.deepEqual([...closes.keys()].sort(), ['Client/ClosedByAppServer', 'Client/Normal']);
        assert.equal(closes.get('Client/Normal').total, 3);
        assert.equal(closes.get('Client/ClosedByAppServer').total, 1);
        const cc = fullPoints(byName(r.value, 'ConnectionCount'));
        assert.equal(cc.get('Client').maximum, 4);
        assert.equal(cc.get('Client').minimum, 0);
        const ts = byName(r.value, 'ConnectionCloseCount').timeseries[0].metadatavalues;
        assert.deepEqual(ts.map((m) => m.name.value), ['endpoint', 'connectionclosecategory']);
    });

    it('UserErrors and SystemErrors are percentages of operations', async () => {
        const bad = await api.get('/api/v1/hubs/nobody/users/x', { token: null });
        assert.equal(bad.status, 401);
        const r = await armFull(['UserErrors', 'SystemErrors']);
        const user = fullPoints(byName(r.value, 'UserErrors')).get('');
        assert.ok(user.maximum > 0 && user.maximum <= 100, `UserErrors ${JSON.stringify(user)}`);
        assert.equal(byName(r.value, 'UserErrors').unit, 'Percent');
        assert.equal(fullPoints(byName(r.value, 'SystemErrors')).get('').maximum, 0);
        const s = await scrape(server);
        assert.ok(prom(s, 'switchboard_operations_total{result="user_error"}') >= 1);
        assert.equal(prom(s, 'switchboard_operations_total{result="system_error"}'), 0);
    });

    it('metricDefinitions and metricNamespaces answer the SDK with the ten metrics', async () => {
        const client = armClient(server);
        const defs = [];
        for await (const d of client.metricDefinitions.list(RESOURCE_ID)) defs.push(d);
        assert.deepEqual(defs.map((d) => d.name.value), ALL_METRICS);
        const close = defs.find((d) => d.name.value === 'ConnectionCloseCount');
        assert.deepEqual(close.dimensions.map((d) => d.value), ['Endpoint', 'ConnectionCloseCategory']);
        assert.equal(close.primaryAggregationType, 'Total');
        assert.equal(close.unit, 'Count');
        assert.deepEqual(close.metricAvailabilities[0], { timeGrain: 'PT1M', retention: 'P93D' });
        assert.equal(defs.find((d) => d.name.value === 'ConnectionCount').primaryAggregationType, 'Maximum');
        assert.equal(defs.find((d) => d.name.value === 'ServerLoad').unit, 'Percent');
        assert.equal(defs.find((d) => d.name.value === 'InboundTraffic').unit, 'Bytes');
        const ns = [];
        for await (const n of client.metricNamespaces.list(RESOURCE_ID)) ns.push(n);
        assert.equal(ns.length, 1);
        assert.equal(ns[0].properties.metricNamespaceName, NAMESPACE);
    });

    it('answers bad requests with ARM errors the SDKs surface', async () => {
        const client = armClient(server);
        const { start, end } = span();
        const timespan = `${start.toISOString()}/${end.toISOString()}`;
        await assert.rejects(client.metrics.list(RESOURCE_ID, { metricnames: 'Bogus', timespan }),
            (err) => err.statusCode === 400 && /Failed to find metric configuration.*metric: Bogus/.test(err.message));
        await assert.rejects(client.metrics.list(RESOURCE_ID, { metricnames: 'MessageCount', timespan, interval: 'PT2M' }),
            (err) => err.statusCode === 400 && /Invalid time grain/.test(err.message));
        await assert.rejects(client.metrics.list(RESOURCE_ID, { metricnames: 'MessageCount', timespan, filter: "Tier eq 'Hot'" }),
            (err) => err.statusCode === 400 && /not supported/.test(err.message));
        const path = `${RESOURCE_ID}/providers/Microsoft.Insights/metrics`;
        const noAuth = await api.get(`${path}?api-version=2024-02-01`, { token: null });
        assert.equal(noAuth.status, 401);
        assert.equal(noAuth.json().error.code, 'AuthenticationFailed');
        const noVersion = await api.get(path);
        assert.equal(noVersion.status, 400);
        assert.equal(noVersion.json().error.code, 'MissingApiVersionParameter');
        const other = `/subscriptions/${SUB}/resourceGroups/default/providers/Microsoft.SignalRService/SignalR/other/providers/Microsoft.Insights/metrics`;
        assert.equal((await api.get(`${other}?api-version=2024-02-01`)).status, 404);
        const post = await api.post(`${path}?api-version=2024-02-01`);
        assert.equal(post.status, 405);
        const huge = await api.get(`${path}?api-version=2024-02-01&metricnames=ConnectionCloseCount&interval=PT1M` +
            `&timespan=P90D&%24filter=${encodeURIComponent("Endpoint eq '*' and ConnectionCloseCategory eq '*'")}`);
        assert.equal(huge.status, 400);
        assert.match(huge.json().error.message, /data points/);
        await assert.rejects(batchClient(server).queryResources(
            [RESOURCE_ID.replace('switchboard', 'elsewhere')], ['MessageCount'], NAMESPACE, {}),
        (err) => err.statusCode === 400 && /not served/.test(err.message));
    });

    it('/metrics is valid 0.0.4 exposition with process metrics', async () => {
        const s = await scrape(server);
        for (const key of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds',
            'process_start_time_seconds', 'switchboard_log_records_emitted_total', 'switchboard_daily_messages']) {
            assert.ok(s.has(key), `/metrics has ${key}`);
        }
        assert.ok(prom(s, 'process_resident_memory_bytes') > 1e6);
        assert.ok(prom(s, 'process_open_fds') > 3);
        assert.ok(Math.abs(prom(s, 'process_start_time_seconds') - Date.now() / 1000) < 600);
        let categories = 0;
        for (const key of s.keys()) if (key.startsWith('switchboard_connections_closed_total{endpoint="client"')) categories++;
        assert.equal(categories, 15, "all fifteen of Azure's close categories");
        assert.ok(!s.has('switchboard_daily_message_limit'), 'no daily cap outside the Free tier');
    });

    it('AllMetrics rows reach AzureMetrics and insights-metrics-pt1m once the minute is sealed', async () => {
        const when = new Date(trafficMinute).toISOString().replace('.000Z', '.0000000Z');
        const rows = await waitRows(server.dataDir, 'SELECT * FROM AzureMetrics WHERE TimeGenerated = ? ORDER BY MetricName',
            [when], 9, 75000, `the AzureMetrics rows of ${when}`);
        assert.deepEqual(rows.map((r) => r.MetricName), ALL_METRICS.filter((m) => m !== 'ServerLoad'));
        for (const r of rows) {
            assert.equal(r.TimeGrain, 'PT1M');
            assert.equal(r.ResourceId, RID_UPPER);
            assert.equal(r.ResourceProvider, 'MICROSOFT.SIGNALRSERVICE');
            assert.equal(r.Resource, 'SWITCHBOARD');
            assert.equal(r.ResourceGroup, 'DEFAULT');
            assert.equal(r.SubscriptionId, SUB);
            assert.equal(r.Type, 'AzureMetrics');
            assert.ok(Math.abs(r.Average - r.Total / r.Count) < 1e-9, `Average of ${r.MetricName}`);
        }
        const msg = rows.find((r) => r.MetricName === 'MessageCount');
        assert.ok(msg.Total >= 30 * UNITS, `MessageCount of the traffic minute: ${msg.Total}`);
        assert.equal(rows.find((r) => r.MetricName === 'OutboundTraffic').UnitName, 'Bytes');

        const files = archiveLines(server.dataDir, 'insights-metrics-pt1m');
        assert.ok(files.length >= 1, 'an archive file under insights-metrics-pt1m');
        assert.ok(files[0].path.includes(`resourceId=${RID_UPPER}/y=`), files[0].path);
        const lines = files.flatMap((f) => f.lines).map((l) => JSON.parse(l));
        const ours = lines.filter((l) => l.time === when);
        assert.equal(ours.length, 9);
        const out = ours.find((l) => l.metricName === 'OutboundTraffic');
        assert.deepEqual(Object.keys(out), ['count', 'total', 'minimum', 'maximum', 'average', 'resourceId', 'time', 'metricName', 'timeGrain']);
        assert.equal(out.timeGrain, 'PT1M');
        assert.equal(out.resourceId, RID_UPPER);
        assert.equal(out.total, rows.find((r) => r.MetricName === 'OutboundTraffic').Total);
    });

    it('switchboard metrics prints the stored minutes as a table', () => {
        // the traffic minute is sealed and stored by now (the test above waited for it)
        const run = (...args) => spawnSync(binaryPath(), ['metrics', '--data-dir', server.dataDir, ...args], { encoding: 'utf8', timeout: 10000 });
        const all = run('--since', '2h');
        assert.equal(all.status, 0, all.stderr);
        const lines = all.stdout.trim().split('\n');
        assert.match(lines[0], /^minute \(UTC\)\s+Closed\s+Connections\s+Opened\s+Quota%\s+InBytes\s+Messages\s+OutBytes\s+Load%\s+SysErr%\s+UserErr%$/);
        const stamp = new Date(trafficMinute).toISOString().slice(0, 16).replace('T', ' ');
        const row = lines.find((l) => l.startsWith(`${stamp}Z`));
        assert.ok(row, `a row for ${stamp}Z in\n${all.stdout}`);
        const cols = row.trim().split(/\s+/); /* date, time, then the ten metrics in the header's order */
        assert.ok(Number(cols[7]) >= 30 * UNITS, `Messages of the traffic minute: ${row}`);
        const one = run('--metric', 'connectionclosecount', '--since', 'PT2H');
        assert.equal(one.status, 0, one.stderr);
        assert.match(one.stdout, /^ConnectionCloseCount \(Count; per-dimension columns: Total\)/);
        assert.match(one.stdout, /Total\s+Count\s+Minimum\s+Maximum\s+Average\s+Client\s+Server\s+LiveTrace\s+Normal\s+ClosedByAppServer\n/);
        const bad = run('--metric', 'Nope');
        assert.equal(bad.status, 2);
        assert.match(bad.stderr, /unknown metric 'Nope'/);
        const badSince = run('--since', 'soon');
        assert.equal(badSince.status, 2);
        const empty = spawnSync(binaryPath(), ['metrics', '--data-dir', join(server.dataDir, 'nothing-here')], { encoding: 'utf8', timeout: 10000 });
        assert.equal(empty.status, 0);
        assert.match(empty.stdout, /no minutes stored/);
    });
});

/* ===============================================================================================
 * The Free tier.
 */

describe('Free tier', () => {
    let server;
    let api;
    const clients = [];
    const hub = uniq('free');
    const QUOTA = 45;

    before(async () => {
        server = await startServer({
            mode: 'serverless',
            env: { SWITCHBOARD_TIER: 'Free', SWITCHBOARD_FREE_TIER_DAILY_MESSAGES: String(QUOTA), SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '600000' },
        });
        api = rest(server);
        await putSetting(api, 'free-logs', { metrics: false });
    });
    afterEach(() => server.assertHealthy());
    after(async () => {
        await stopAll(clients);
        await server?.stop();
    });

    it('the 21st connection gets 429 "Connection count reaches limit" and a Throttling record', async () => {
        for (let i = 0; i < 20; i++) clients.push(await connectClient(server, { hub, user: `f${i}` }));
        const c21 = buildClient(server, { hub, user: 'f21' });
        await assert.rejects(c21.start(), /429/);
        const rows = await waitRows(server.dataDir,
            "SELECT * FROM SignalRServiceDiagnosticLogs WHERE Collection = 'Throttling' AND Message = 'Connection count reaches limit'",
            [], 1, 3000, 'the Throttling record');
        assert.equal(rows[0].Level, 'Warning');
        const s = await scrape(server);
        assert.equal(prom(s, 'switchboard_connection_limit'), 20);
        assert.equal(prom(s, 'switchboard_connection_quota_utilization_ratio'), 1);
        assert.equal(prom(s, 'switchboard_connections_closed_total{endpoint="client",category="Throttled"}'), 1);
        assert.equal(prom(s, 'switchboard_daily_message_limit'), QUOTA);
        const { value } = await armClient(server).metrics.list(RESOURCE_ID, {
            metricnames: 'ConnectionQuotaUtilization', timespan: 'PT10M', interval: 'FULL', aggregation: 'maximum',
        });
        assert.equal(value[0].timeseries[0].data[0].maximum, 100);
    });

    it('REST sends over the daily message quota get 429 "Message count reaches limit" and a MessageThrottled record', async () => {
        // each broadcast costs 20 units (one per client); a send is accepted while today's count is below the quota
        let refused = null;
        for (let i = 0; i < 5 && !refused; i++) {
            const used = prom(await scrape(server), 'switchboard_daily_messages');
            const res = await api.post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: [`b${i}`] } });
            if (used < QUOTA) {
                assert.equal(res.status, 202, `send ${i} with ${used} of ${QUOTA} used: ${describeResponse(res)}`);
                for (const c of clients) await c.waitMessage('m', (a) => a[0] === `b${i}`);
            } else {
                refused = { i, res, used };
            }
        }
        assert.ok(refused, 'a send was refused within five broadcasts');
        assert.equal(refused.res.status, 429);
        assert.deepEqual(refused.res.json(), { code: 'Error.Throttled.MessageCountReachesLimit', level: 'Error', message: 'Message count reaches limit' });
        assert.equal(refused.res.headers['x-ms-error-code'], 'Error.Throttled.MessageCountReachesLimit');
        // every send API is refused, not only broadcasts
        const one = await api.post(`/api/v1/hubs/${hub}/connections/${clients[0].connectionId}`, { json: { target: 'm', arguments: ['one'] } });
        assert.equal(one.status, 429);
        const rows = await waitRows(server.dataDir,
            "SELECT * FROM SignalRServiceDiagnosticLogs WHERE OperationName = 'MessageThrottled'", [], 2, 3000, 'MessageThrottled records');
        assert.equal(rows[0].Collection, 'Throttling');
        assert.equal(rows[0].Message, 'Message count reaches limit');
        assert.equal(rows[0].HubName, hub);
        // nothing refused was delivered, and the count did not move
        await sleep(200);
        for (const c of clients) {
            assert.equal(c.received('m').filter((m) => m.args[0] === `b${refused.i}` || m.args[0] === 'one').length, 0);
        }
        assert.equal(prom(await scrape(server), 'switchboard_daily_messages'), refused.used);
        // non-send APIs still work
        assert.equal((await api.get(`/api/v1/hubs/${hub}/connections/${clients[0].connectionId}`)).status, 200);
    });
});

describe('Free tier, default mode: app-server fan-out over the quota is dropped', () => {
    let server;
    let app;
    const clients = [];

    before(async () => {
        server = await startServer({
            mode: 'default',
            env: { SWITCHBOARD_TIER: 'Free', SWITCHBOARD_FREE_TIER_DAILY_MESSAGES: '10', SWITCHBOARD_KEEP_ALIVE_INTERVAL_MS: '600000' },
        });
        await putSetting(rest(server), 'free-default', { metrics: false });
        app = await startAppServer(server, { hubs: ['chat'] });
    });
    afterEach(() => server.assertHealthy());
    after(async () => {
        await stopAll(clients);
        await app?.stop();
        await server?.stop();
    });

    it('broadcasts stop reaching clients; the client\'s own invocation results still do', async () => {
        const c = buildClient(server, { url: app.clientUrl('chat', 'd1'), targets: ['broadcast', 'direct'] });
        clients.push(c);
        await c.start();
        const call = (m, ...a) => withTimeout(c.conn.invoke(m, ...a), 5000, `${m} invoked`);
        let dropped = null;
        for (let i = 0; i < 20 && !dropped; i++) {
            const used = prom(await scrape(server), 'switchboard_daily_messages');
            await call('Broadcast', `m${i}`); // the completion arrives either way
            if (used < 10) {
                await c.waitMessage('broadcast', (a) => a[0] === `m${i}`);
            } else {
                dropped = `m${i}`;
            }
        }
        assert.ok(dropped, 'the quota was reached');
        // the drop is logged when it happens: once the record is there, the message is not merely late
        await waitRows(server.dataDir, "SELECT * FROM SignalRServiceDiagnosticLogs WHERE OperationName = 'MessageThrottled' AND ConnectionType = 'Server'",
            [], 1, 3000, 'the MessageThrottled record of the app server');
        await sleep(200);
        assert.equal(c.received('broadcast').filter((m) => m.args[0] === dropped).length, 0);
        assert.equal(c.isClosed, false, 'the client stays connected');
    });
});

/* ===============================================================================================
 * Configuration errors, reload, the CLI.
 */

describe('tiers as configuration', () => {
    it('refuses units that are not one of Azure\'s steps, with a clear message', () => {
        const dir = mkdtempSync(join(tmpdir(), 'sb-it-units-'));
        try {
            for (const [tier, units, text] of [['Standard', '15', 'units: 15 is not valid for tier Standard; valid: 1-10, 20, 30, ..., 100'],
                ['Free', '2', 'units: 2 is not valid for tier Free'], ['Premium', '250', 'units: 250 is not valid for tier Premium']]) {
                const r = spawnSync(binaryPath(), ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], {
                    env: { ...process.env, SWITCHBOARD_TIER: tier, SWITCHBOARD_UNITS: units }, encoding: 'utf8', timeout: 10000,
                });
                assert.equal(r.status, 1, `${tier}/${units}: exit status (stderr: ${r.stderr})`);
                assert.ok(r.stderr.includes(text), `${tier}/${units}: stderr ${JSON.stringify(r.stderr)}`);
            }
            const bad = spawnSync(binaryPath(), ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir], {
                env: { ...process.env, SWITCHBOARD_TIER: 'Basic' }, encoding: 'utf8', timeout: 10000,
            });
            assert.notEqual(bad.status, 0);
            assert.match(bad.stderr, /Free\|Standard\|Premium|Free, Standard, Premium|tier/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe('reload (SIGHUP and switchboard reload)', () => {
    let server;
    let cfgDir;
    let cfgFile;
    const clients = [];

    before(async () => {
        cfgDir = mkdtempSync(join(tmpdir(), 'sb-it-reload-'));
        cfgFile = join(cfgDir, 'switchboard.conf');
        writeFileSync(cfgFile, 'tier = Standard\nunits = 1\n');
        server = await startServer({ mode: 'serverless', args: ['--config', cfgFile] });
    });
    afterEach(() => server.assertHealthy());
    after(async () => {
        await stopAll(clients);
        await server?.stop();
        rmSync(cfgDir, { recursive: true, force: true });
    });

    it('closes clients with a reconnect-allowed Close, re-reads the tier and keeps serving', async () => {
        const hub = uniq('reload');
        const c = await connectClient(server, { hub });
        clients.push(c);
        assert.equal(prom(await scrape(server), 'switchboard_connection_limit'), 1000);
        writeFileSync(cfgFile, 'tier = Standard\nunits = 20\n');
        const r = spawnSync(binaryPath(), ['reload', '--data-dir', server.dataDir], { encoding: 'utf8', timeout: 10000 });
        assert.equal(r.status, 0, `switchboard reload: ${r.stderr}`);
        const error = await c.waitClosed(5000);
        assert.ok(error && /Service reloading, try reconnecting/.test(error.message), `onclose: ${error?.message}`);
        await waitFor(async () => prom(await scrape(server), 'switchboard_connection_limit') === 20000, 3000, 'the new units in effect');
        const s = await scrape(server);
        assert.equal(prom(s, 'switchboard_connections_closed_total{endpoint="client",category="ServiceReload"}'), 1);
        // still serving: health, a new client, REST
        assert.equal((await fetch(`${server.endpoint}/api/v1/health`)).status, 200);
        const again = await connectClient(server, { hub });
        clients.push(again);
        const res = await rest(server).post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: ['after'] } });
        assert.equal(res.status, 202);
        await again.waitMessage('m', (a) => a[0] === 'after');

        // an invalid file is reported and nothing is reloaded: clients stay; SIGHUP works like the command
        writeFileSync(cfgFile, 'tier = Standard\nunits = 15\n');
        server.proc.kill('SIGHUP');
        await waitFor(() => server.stderr.includes('configuration not applied: units: 15'), 3000, 'the reload error');
        assert.equal(prom(await scrape(server), 'switchboard_connection_limit'), 20000);
        assert.equal(again.isClosed, false);
        assert.equal(prom(await scrape(server), 'switchboard_connections_closed_total{endpoint="client",category="ServiceReload"}'), 1);
    });

    it('switchboard reload reports a data dir without a service', () => {
        const dir = mkdtempSync(join(tmpdir(), 'sb-it-noservice-'));
        const r = spawnSync(binaryPath(), ['reload', '--data-dir', dir], { encoding: 'utf8', timeout: 10000 });
        rmSync(dir, { recursive: true, force: true });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /no service runs with data dir/);
    });
});
