// upstream.test.mjs - serverless upstream webhooks, seen from both ends.
//
// A small node:http server plays the upstream (an Azure Functions app would):
// it records every call, checks the X-ASRS-* headers and the signature with
// its own HMAC (node:crypto, never the service's code), and answers per event.
// The official clients see the results: a rejected connect, Completions
// coming back from the upstream, and the documented failures when the
// upstream is down (connection refused), too slow (over a small
// upstream_timeout_ms) or answering 500.  Failures must also reach the resource
// logs (a diagnostic setting routes them to the archive) and /metrics.
//
// Nothing may hang: every wait is bounded, and every service must still exit 0
// on SIGTERM (server.mjs checks), also with an upstream call in flight.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { decode as msgpackDecode } from '@msgpack/msgpack';
import { startServer } from './lib/server.mjs';
import { MessagePackHubProtocol, buildClient, connectClient, stopAll } from './lib/client.mjs';
import { negotiate, rawHubSocket } from './lib/hub.mjs';
import { RS, rawWebSocket } from './lib/raw.mjs';
import { rest } from './lib/rest.mjs';
import { settle, sleep, uniq, waitFor, withTimeout } from './lib/util.mjs';

const RESOURCE_ID = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/Microsoft.SignalRService/SignalR/switchboard';
const STORAGE_ID = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/Microsoft.Storage/storageAccounts/local';

let server;
let upstreams = [];
let clients = [];

afterEach(async () => {
    await stopAll(clients);
    clients = [];
    if (server) {
        const s = server;
        server = null;
        await s.stop();
    }
    await Promise.all(upstreams.map((u) => u.close()));
    upstreams = [];
});

/* ---------------------------------------------------------------------------
 * The fake upstream.
 */

// Starts an upstream on a free port; handler(call) -> {status, body, contentType} (may be async).
// Calls are recorded as {hub, category, event, headers, body (Buffer), text}.
async function startUpstream(handler) {
    const calls = [];
    const srv = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', async () => {
            const body = Buffer.concat(chunks);
            const parts = req.url.split('?')[0].split('/').slice(2).map(decodeURIComponent); // /up/{hub}/{category}/{event}
            const call = { path: req.url, hub: parts[0], category: parts[1], event: parts[2], headers: req.headers, body, text: body.toString('utf8'), at: Date.now() };
            calls.push(call);
            let answer;
            try {
                answer = (await handler(call)) ?? {};
            } catch (err) {
                answer = { status: 599, body: String(err) };
            }
            if (res.destroyed) return; // the service gave up on us
            const headers = {};
            if (answer.contentType) headers['Content-Type'] = answer.contentType;
            res.writeHead(answer.status ?? 200, headers);
            res.end(answer.body ?? '');
        });
    });
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const up = {
        url: `http://127.0.0.1:${srv.address().port}`,
        template: `http://127.0.0.1:${srv.address().port}/up/{hub}/{category}/{event}`,
        calls,
        find: (pred) => calls.find(pred),
        waitCall: (pred, what, ms = 3000) => waitFor(() => calls.find(pred), ms, `upstream call: ${what} (got ${JSON.stringify(calls.map((c) => `${c.hub}/${c.category}/${c.event}`))})`),
        close: () => new Promise((resolve) => {
            srv.closeAllConnections();
            srv.close(resolve);
        }),
    };
    upstreams.push(up);
    return up;
}

// A port nothing listens on: bind, note the port, close.
async function deadPort() {
    const s = http.createServer();
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    const { port } = s.address();
    await new Promise((resolve) => s.close(resolve));
    return port;
}

function expectedSignature(key, connectionId) {
    return `sha256=${createHmac('sha256', Buffer.from(key, 'utf8')).update(connectionId, 'utf8').digest('hex').toUpperCase()}`;
}

// The headers every upstream call must carry.
function assertAsrsHeaders(call, { key, connectionId, hub, category, event, user }) {
    const h = call.headers;
    assert.equal(h['x-asrs-connection-id'], connectionId, 'X-ASRS-Connection-Id');
    assert.equal(h['x-asrs-hub'], hub, 'X-ASRS-Hub');
    assert.equal(h['x-asrs-category'], category, 'X-ASRS-Category');
    assert.equal(h['x-asrs-event'], event, 'X-ASRS-Event');
    if (user === undefined) assert.equal(h['x-asrs-user-id'], undefined, 'anonymous: no X-ASRS-User-Id');
    else assert.equal(h['x-asrs-user-id'], user, 'X-ASRS-User-Id');
    const signatures = (h['x-asrs-signature'] ?? '').split(',');
    assert.ok(signatures.includes(expectedSignature(key, connectionId)),
        `X-ASRS-Signature ${h['x-asrs-signature']} does not carry ${expectedSignature(key, connectionId)}`);
    assert.match(h['x-asrs-client-query'] ?? '', new RegExp(`^\\?hub=${hub}(&|$)`), 'X-ASRS-Client-Query');
    assert.doesNotMatch(h['x-asrs-client-query'], /access_token=|(^|[?&])id=/, 'no credentials in X-ASRS-Client-Query');
    assert.equal(call.category, category, 'the {category} placeholder');
    assert.equal(call.event, event, 'the {event} placeholder');
}

const jsonCompletion = (invocationId, result) => `${JSON.stringify({ type: 3, invocationId, result })}${RS}`;
const msgpackCompletion = (invocationId, result) =>
    Buffer.from(new MessagePackHubProtocol().writeMessage({ type: 3, invocationId, result, headers: {} }));

/* ---------------------------------------------------------------------------
 * Logs and metrics, read where a user reads them.
 */

async function routeLogsToArchive(s) {
    const api = rest(s);
    const res = await api.put(`${RESOURCE_ID}/providers/Microsoft.Insights/diagnosticSettings/up?api-version=2021-05-01-preview`,
        { json: { properties: { storageAccountId: STORAGE_ID, logs: [{ categoryGroup: 'allLogs', enabled: true }] } } });
    assert.ok([200, 201].includes(res.status), `PUT diagnostic setting: ${res.status} ${res.text}`);
}

function archiveRecords(dataDir) {
    const out = [];
    const walk = (dir) => {
        if (!existsSync(dir)) return;
        for (const name of readdirSync(dir)) {
            const p = join(dir, name);
            if (statSync(p).isDirectory()) walk(p);
            else out.push(...readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
        }
    };
    walk(join(dataDir, 'storage', 'local', 'insights-logs-alllogs'));
    return out;
}

function waitLog(s, pred, what) {
    return waitFor(() => archiveRecords(s.dataDir).find(pred), 4000, `resource log record: ${what}`);
}

async function metric(s, name, labels) {
    const res = await fetch(`${s.endpoint}/metrics`, { signal: AbortSignal.timeout(3000) });
    const text = await res.text();
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
    const want = pairs ? `${name}{${pairs}}` : name;
    const line = text.split('\n').find((l) => l.startsWith(`${want} `));
    assert.ok(line, `/metrics has no ${want}:\n${text}`);
    return Number(line.split(' ')[1]);
}

async function patchUpstream(s, templates) {
    return rest(s).request('PATCH', `${RESOURCE_ID}?api-version=2024-03-01`, { json: { properties: { upstream: { templates } } } });
}

/* ---------------------------------------------------------------------------
 * The contract with a working upstream.
 */

describe('upstream: events and invocations', { timeout: 30000 }, () => {
    // Connect answers: mallory is refused, alice joins a group, anonymous clients get a user id.
    function happyUpstream() {
        return startUpstream((call) => {
            if (call.category === 'connections' && call.event === 'connect') {
                const user = call.headers['x-asrs-user-id'];
                if (user === 'mallory') return { status: 401, body: 'mallory is not welcome' };
                if (user === 'alice') return { body: JSON.stringify({ groups: ['vip', '   '] }), contentType: 'application/json' };
                if (!user) return { body: JSON.stringify({ userId: 'assigned-bob' }), contentType: 'application/json' };
                return { status: 204 };
            }
            if (call.category === 'messages' && call.event === 'echo') {
                if (call.headers['content-type'] === 'application/x-msgpack') {
                    const [type, , invocationId, target, args] = msgpackDecode(call.body);
                    assert.equal(type, 1);
                    assert.equal(target, 'echo');
                    return { body: msgpackCompletion(invocationId, { echo: args[0], user: call.headers['x-asrs-user-id'] ?? null }) };
                }
                const msg = JSON.parse(call.text);
                return { body: jsonCompletion(msg.invocationId, { echo: msg.arguments[0], user: call.headers['x-asrs-user-id'] ?? null }) };
            }
            if (call.event === 'nothing') return { status: 204 };
            if (call.event === 'empty200') return { status: 200 };
            return { status: 200 };
        });
    }

    it('connect, connected, invocations, disconnected: headers, signature, bodies, completions', async () => {
        const up = await happyUpstream();
        server = await startServer({ env: { SWITCHBOARD_UPSTREAM_URL_TEMPLATE: up.template, SWITCHBOARD_UPSTREAM_CONNECT_EVENT: 'on' } });
        const hub = uniq('hub');
        const alice = await connectClient(server, { hub, user: 'alice' });
        clients.push(alice);
        const id = alice.connectionId;
        const base = { key: server.accessKey, connectionId: id, hub, user: 'alice' };

        const connect = up.find((c) => c.event === 'connect');
        assert.ok(connect, 'connect event sent before the handshake completed');
        assertAsrsHeaders(connect, { ...base, category: 'connections', event: 'connect' });
        assert.match(connect.headers['x-asrs-user-claims'], /(^|, )nameid: alice(,|$)/);
        assert.doesNotMatch(connect.headers['x-asrs-user-claims'], /(^|, )(aud|exp|iat|nbf): /, 'system claims are not passed on');

        const connected = await up.waitCall((c) => c.event === 'connected' && c.headers['x-asrs-connection-id'] === id, 'connected');
        assertAsrsHeaders(connected, { ...base, category: 'connections', event: 'connected' });
        assert.equal(connected.headers['content-type'], 'application/json');
        assert.deepEqual(JSON.parse(connected.text), { type: 10 });
        assert.ok(connected.at >= connect.at);

        // blocking invocation: the upstream's framed Completion is what the client gets
        const result = await withTimeout(alice.conn.invoke('echo', 'hi', 2), 3000, 'invoke echo');
        assert.deepEqual(result, { echo: 'hi', user: 'alice' });
        const echo = up.find((c) => c.event === 'echo');
        assertAsrsHeaders(echo, { ...base, category: 'messages', event: 'echo' });
        assert.equal(echo.headers['content-type'], 'application/json');
        const sent = JSON.parse(echo.text); // the client's own encoding, without the 0x1E
        assert.equal(sent.type, 1);
        assert.equal(sent.target, 'echo');
        assert.deepEqual(sent.arguments, ['hi', 2]);
        assert.ok(!echo.text.includes(RS), 'no record separator in the body');

        // 204 and an empty 200 are void completions
        assert.equal(await withTimeout(alice.conn.invoke('nothing'), 3000, 'invoke nothing'), undefined);
        assert.equal(await withTimeout(alice.conn.invoke('empty200'), 3000, 'invoke empty200'), undefined);

        // non-blocking invocation: forwarded without an invocationId, the answer ignored
        await alice.conn.send('notify', { a: [1, 2] });
        const notify = await up.waitCall((c) => c.event === 'notify', 'notify');
        assert.deepEqual(JSON.parse(notify.text), { type: 1, target: 'notify', arguments: [{ a: [1, 2] }] });

        // groups from the connect answer were joined (blank names ignored)
        const api = rest(server);
        const res = await api.post(`/api/v1/hubs/${hub}/groups/vip`, { json: { target: 'm', arguments: ['for vips'] } });
        assert.equal(res.status, 202);
        await alice.waitMessage('m', (args) => args[0] === 'for vips');

        await alice.stop();
        const disconnected = await up.waitCall((c) => c.event === 'disconnected', 'disconnected');
        assertAsrsHeaders(disconnected, { ...base, category: 'connections', event: 'disconnected' });
        assert.equal(JSON.parse(disconnected.text).type, 11);
        assert.equal(await metric(server, 'switchboard_upstream_requests_total', { event: 'message', outcome: 'success' }), 4);
        assert.equal(await metric(server, 'switchboard_upstream_requests_total', { event: 'connect', outcome: 'success' }), 1);
    });

    it('a connect answered 401 rejects the client with the upstream status and text; no connected event', async () => {
        const up = await happyUpstream();
        server = await startServer({ env: { SWITCHBOARD_UPSTREAM_URL_TEMPLATE: up.template, SWITCHBOARD_UPSTREAM_CONNECT_EVENT: 'on' } });
        await routeLogsToArchive(server);
        const c = buildClient(server, { hub: 'gate', user: 'mallory' });
        clients.push(c);
        const outcome = await settle(withTimeout(c.conn.start(), 5000, 'start() of a rejected client'));
        assert.equal(outcome.ok, false);
        assert.match(outcome.error.message, /401/);
        assert.match(outcome.error.message, /mallory is not welcome/);
        await sleep(200);
        assert.equal(up.calls.filter((x) => x.event === 'connected' || x.event === 'disconnected').length, 0);
        assert.equal(await metric(server, 'switchboard_upstream_requests_total', { event: 'connect', outcome: 'rejected' }), 1);
        await waitLog(server, (r) => r.operationName === 'AuthorizationFailed' && /401: mallory is not welcome/.test(r.properties.message),
            'AuthorizationFailed for the rejected connect');
    });

    it('the connect answer can assign a user id; MessagePack, SSE and LongPolling clients get their completions', async () => {
        const up = await happyUpstream();
        server = await startServer({ env: { SWITCHBOARD_UPSTREAM_URL_TEMPLATE: up.template, SWITCHBOARD_UPSTREAM_CONNECT_EVENT: 'on' } });
        const anon = await connectClient(server, { hub: 'anon', token: server.clientToken('anon', {}) });
        clients.push(anon);
        assert.deepEqual(await withTimeout(anon.conn.invoke('echo', 'x'), 3000, 'invoke'), { echo: 'x', user: 'assigned-bob' });
        const mp = await connectClient(server, { hub: 'mp', user: 'carol', protocol: 'messagepack' });
        clients.push(mp);
        assert.deepEqual(await withTimeout(mp.conn.invoke('echo', new Uint8Array([1, 2])), 3000, 'msgpack invoke'),
            { echo: new Uint8Array([1, 2]), user: 'carol' });
        const mpCall = up.find((c) => c.hub === 'mp' && c.event === 'echo');
        assert.equal(mpCall.headers['content-type'], 'application/x-msgpack');
        assert.equal(mpCall.body[0] & 0xf0, 0x90, 'the bare MessagePack array, no VarInt length prefix');
        for (const transport of ['ServerSentEvents', 'LongPolling']) {
            const c = await connectClient(server, { hub: 'tr', user: transport, transport });
            clients.push(c);
            assert.deepEqual(await withTimeout(c.conn.invoke('echo', transport), 5000, `${transport} invoke`), { echo: transport, user: transport });
        }
    });

    it('by default a "*" template does not hold the handshake (no connect event)', async () => {
        const up = await happyUpstream();
        server = await startServer({ env: { SWITCHBOARD_UPSTREAM_URL_TEMPLATE: up.template } });
        const c = await connectClient(server, { hub: 'plain', user: 'mallory' }); // would be refused by connect
        clients.push(c);
        await up.waitCall((x) => x.event === 'connected', 'connected');
        assert.equal(up.calls.filter((x) => x.event === 'connect').length, 0);
    });

    it('messages sent while the connect event is pending wait for the answer, then run in order', async () => {
        let release;
        const gate = new Promise((r) => { release = r; });
        const up = await startUpstream(async (call) => {
            if (call.event === 'connect') {
                await gate;
                return { status: 200 };
            }
            if (call.event === 'echo') return { body: jsonCompletion(JSON.parse(call.text).invocationId, 'late') };
            return { status: 200 };
        });
        server = await startServer();
        const patched = await patchUpstream(server, [{ urlTemplate: up.template, eventPattern: 'connect, connected, echo' }]);
        assert.equal(patched.status, 200, patched.text);
        const neg = await negotiate(server, 'held', { user: 'u1' });
        const ws = await rawWebSocket(server.port, `/client/?hub=held&id=${neg.json.connectionToken}`,
            { Authorization: `Bearer ${server.clientToken('held', { user: 'u1' })}` });
        // the handshake and an invocation in one frame, before the upstream answered connect
        ws.sendText(`{"protocol":"json","version":1}${RS}{"type":1,"invocationId":"7","target":"echo","arguments":[]}${RS}`);
        await up.waitCall((c) => c.event === 'connect', 'connect');
        await sleep(150);
        assert.equal(ws.records().length, 0, 'nothing answered while the connect event is pending');
        assert.equal(up.calls.filter((c) => c.event === 'echo').length, 0);
        release();
        await waitFor(() => ws.records().length >= 2, 3000, 'handshake reply and completion');
        assert.equal(ws.records()[0], '{}');
        assert.deepEqual(JSON.parse(ws.records()[1]), { type: 3, invocationId: '7', result: 'late' });
        ws.destroy();
    });
});

/* ---------------------------------------------------------------------------
 * Management API.
 */

describe('upstream: settings on the management API', { timeout: 20000 }, () => {
    it('GET shows the configured template; PATCH validates, replaces the list, persists it and takes effect', async () => {
        const up = await startUpstream(() => ({ status: 200 }));
        server = await startServer({ env: { SWITCHBOARD_UPSTREAM_URL_TEMPLATE: 'http://127.0.0.1:9/{event}' } });
        const api = rest(server);
        const got = await api.get(`${RESOURCE_ID}?api-version=2024-03-01`);
        assert.equal(got.status, 200);
        assert.deepEqual(got.json().properties.upstream, { templates: [
            { urlTemplate: 'http://127.0.0.1:9/{event}', hubPattern: '*', eventPattern: '*', categoryPattern: '*', auth: { type: 'None' } }] });

        for (const [templates, msg] of [
            [[{ hubPattern: '*' }], /templates\[0\]\.urlTemplate is required/],
            [[{ urlTemplate: 'relative/path' }], /absolute http or https URL/],
            [[{ urlTemplate: 'http://x/', auth: { type: 'ManagedIdentity', managedIdentity: { resource: 'r' } } }], /ManagedIdentity/],
            [{}, /templates must be an array/],
        ]) {
            const res = await patchUpstream(server, templates);
            assert.equal(res.status, 400, res.text);
            assert.equal(res.json().error.code, 'BadRequest');
            assert.match(res.json().error.message, msg);
        }
        // refused PATCHes changed nothing
        assert.equal((await api.get(`${RESOURCE_ID}?api-version=2024-03-01`)).json().properties.upstream.templates[0].urlTemplate,
            'http://127.0.0.1:9/{event}');

        const templates = [
            { urlTemplate: up.template, hubPattern: 'chat, other', eventPattern: 'connected,ping', categoryPattern: '*' },
            { urlTemplate: `${up.url}/up/{hub}/{category}/second-{event}`, categoryPattern: 'messages' },
        ];
        const res = await patchUpstream(server, templates);
        assert.equal(res.status, 200, res.text);
        const expected = { templates: templates.map((t) => ({ hubPattern: '*', eventPattern: '*', categoryPattern: '*', ...t, auth: { type: 'None' } })) };
        assert.deepEqual(res.json().properties.upstream, expected);
        const file = join(server.dataDir, 'upstream.json');
        await waitFor(() => existsSync(file) && isDeepStrictEqual(JSON.parse(readFileSync(file, 'utf8')), expected),
            3000, 'upstream.json with the new list');

        const c = await connectClient(server, { hub: 'chat', user: 'p1' });
        clients.push(c);
        await up.waitCall((x) => x.event === 'connected', 'connected through the first template');
        await c.conn.send('ping');
        await up.waitCall((x) => x.event === 'ping', 'ping through the first template (first match wins)');
        await c.conn.send('other');
        await up.waitCall((x) => x.event === 'second-other', 'other target through the second template');
        // no template matches the connections category for hub 'elsewhere': no events at all
        const d = await connectClient(server, { hub: 'elsewhere', user: 'p2' });
        clients.push(d);
        await d.stop();
        await sleep(200);
        assert.equal(up.calls.filter((x) => x.hub === 'elsewhere').length, 0);
    });

    it('an invocation no template matches is answered with an error Completion, never left hanging', async () => {
        const up = await startUpstream(() => ({ status: 200 }));
        server = await startServer();
        assert.equal((await patchUpstream(server, [{ urlTemplate: up.template, eventPattern: 'only-this' }])).status, 200);
        const c = await connectClient(server, { hub: 'nomatch', user: 'n1' });
        clients.push(c);
        const outcome = await settle(withTimeout(c.conn.invoke('somethingElse'), 3000, 'invoke without a template'));
        assert.equal(outcome.ok, false);
        assert.match(outcome.error.message, /Invocation failed: no handler is available for hub 'nomatch'/);
        assert.equal(up.calls.length, 0);
    });
});

/* ---------------------------------------------------------------------------
 * Failures.
 */

describe('upstream: failures', { timeout: 40000 }, () => {
    // 'slow' never answers in time, 'fail500' answers 500; everything else succeeds.
    async function troubledSetup({ env = {} } = {}) {
        const up = await startUpstream(async (call) => {
            if (call.event === 'slow' || (call.hub === 'slowhub' && call.event === 'connect')) {
                await sleep(2000);
                return { status: 200 };
            }
            if (call.event === 'fail500') return { status: 500, body: 'boom' };
            return { status: 200 };
        });
        const dead = await deadPort();
        server = await startServer({ env: { SWITCHBOARD_UPSTREAM_TIMEOUT_MS: '300', SWITCHBOARD_UPSTREAM_RETRIES: '1', ...env } });
        await routeLogsToArchive(server);
        const res = await patchUpstream(server, [
            { urlTemplate: `http://127.0.0.1:${dead}/up/{hub}/{category}/{event}`, eventPattern: 'down' },
            { urlTemplate: `http://127.0.0.1:${dead}/up/{hub}/{category}/{event}`, hubPattern: 'doomed', eventPattern: 'connect' },
            { urlTemplate: `http://127.0.0.1:${dead}/up/{hub}/{category}/{event}`, hubPattern: 'lonely', eventPattern: 'connected' },
            { urlTemplate: up.template, hubPattern: 'slowhub', eventPattern: 'connect' },
            { urlTemplate: up.template },
        ]);
        assert.equal(res.status, 200, res.text);
        return { up, dead };
    }

    it('invocations: 500, timeout and connection refused become error Completions; logged and counted', async () => {
        const { up } = await troubledSetup();
        const c = await connectClient(server, { hub: 'trouble', user: 't1' });
        clients.push(c);

        let started = Date.now();
        let outcome = await settle(withTimeout(c.conn.invoke('fail500'), 3000, 'invoke fail500'));
        assert.equal(outcome.ok, false);
        assert.match(outcome.error.message, /Invocation failed, status code 500$/);

        started = Date.now();
        outcome = await settle(withTimeout(c.conn.invoke('slow'), 3000, 'invoke slow'));
        assert.equal(outcome.ok, false);
        assert.match(outcome.error.message, /Invocation failed, error: .*time.*\.$/i);
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 250 && elapsed < 1500, `a 300 ms timeout took ${elapsed} ms (invocations are not retried)`);
        assert.equal(up.calls.filter((x) => x.event === 'slow').length, 1, 'invocations are never retried');

        outcome = await settle(withTimeout(c.conn.invoke('down'), 3000, 'invoke down'));
        assert.equal(outcome.ok, false);
        assert.match(outcome.error.message, /Invocation failed, error: .*(connect|refused).*\.$/i);

        // the client is still fine
        assert.equal(c.conn.state, 'Connected');
        assert.equal(await withTimeout(c.conn.invoke('fine'), 3000, 'invoke fine'), undefined);

        for (const [outcomeLabel, n] of [['http_error', 1], ['timeout', 1], ['unreachable', 1], ['success', 1]]) {
            assert.equal(await metric(server, 'switchboard_upstream_requests_total', { event: 'message', outcome: outcomeLabel }), n, outcomeLabel);
        }
        const failures = (re) => (r) => r.operationName === 'InvokeUpstreamFailed' && re.test(r.properties.message);
        const rec = await waitLog(server, failures(/messages\/fail500: Invocation failed, status code 500/), 'fail500');
        assert.equal(rec.properties.type, 'ConnectivityLogs');
        assert.equal(rec.properties.connectionId, c.connectionId);
        assert.equal(rec.properties.hub, 'trouble');
        assert.equal(rec.level, 'Warning');
        await waitLog(server, failures(/messages\/slow: Invocation failed, error: /), 'slow');
        await waitLog(server, failures(/messages\/down: Invocation failed, error: /), 'down');
    });

    it('a connect event to an unreachable upstream refuses the client (InvokeUpstreamFailed)', async () => {
        await troubledSetup();
        const c = buildClient(server, { hub: 'doomed', user: 'd1' });
        clients.push(c);
        const outcome = await settle(withTimeout(c.conn.start(), 5000, 'start() against a dead connect upstream'));
        assert.equal(outcome.ok, false);
        assert.match(outcome.error.message, /Invocation failed, error: /);
        assert.equal(await metric(server, 'switchboard_upstream_requests_total', { event: 'connect', outcome: 'unreachable' }), 1);
        await waitLog(server, (r) => r.operationName === 'InvokeUpstreamFailed' && /connections\/connect: Invocation failed/.test(r.properties.message), 'connect failure');
    });

    it('a connect event slower than the timeout refuses the client within the timeout', async () => {
        const { up } = await troubledSetup();
        const c = buildClient(server, { hub: 'slowhub', user: 's1' });
        clients.push(c);
        const started = Date.now();
        const outcome = await settle(withTimeout(c.conn.start(), 5000, 'start() against a slow connect upstream'));
        assert.equal(outcome.ok, false);
        assert.ok(Date.now() - started < 3000, 'refused within the upstream timeout, not the handshake timeout');
        assert.ok(up.calls.some((x) => x.hub === 'slowhub' && x.event === 'connect'));
        assert.match(outcome.error.message, /Invocation failed, error: .*time/i);
        assert.equal(await metric(server, 'switchboard_upstream_requests_total', { event: 'connect', outcome: 'timeout' }), 1);
    });

    it('a connected event that cannot be delivered (after retries) closes the client without reconnect', async () => {
        await troubledSetup();
        // The failed delivery may be decided within a millisecond (a refused connection and a zero jittered
        // backoff), so the Close can reach the client before its start() has returned: start() then rejects with
        // the Close's error, and onclose never runs. Both are the same outcome.
        const c = buildClient(server, { hub: 'lonely', user: 'l1' });
        clients.push(c);
        const started = await settle(withTimeout(c.conn.start(), 5000, 'start() of the lonely client'));
        const err = started.ok ? await c.waitClosed(5000) : started.error;
        assert.ok(err, 'the client is closed with an error');
        assert.match(err.message, /Invocation failed, error: /);
        assert.equal(await metric(server, 'switchboard_upstream_requests_total', { event: 'connected', outcome: 'unreachable' }), 1);
        assert.equal(await metric(server, 'switchboard_upstream_retries_total', {}), 1, 'one retry (upstream_retries=1)');
        await waitLog(server, (r) => r.operationName === 'ConnectionAborted' && r.properties.userId === 'l1' &&
            /Invocation failed, error: /.test(r.properties.message), 'ConnectionAborted with the upstream failure');

        // on the wire: a Close with the error and without allowReconnect
        const { ws } = await rawHubSocket(server, 'lonely', { user: 'l2' });
        await waitFor(() => ws.records().some((r) => JSON.parse(r).type === 7), 3000, 'the Close message');
        const close = JSON.parse(ws.records().find((r) => JSON.parse(r).type === 7));
        assert.match(close.error, /^Invocation failed, error: /);
        assert.equal(close.allowReconnect, undefined);
        ws.destroy();
    });

    it('SIGTERM with an upstream call in flight still exits 0 within the grace period', async () => {
        const up = await startUpstream(async () => {
            await sleep(10000);
            return { status: 200 };
        });
        server = await startServer({ env: { SWITCHBOARD_UPSTREAM_URL_TEMPLATE: up.template } });
        const c = await connectClient(server, { hub: 'inflight', user: 'i1' });
        clients.push(c);
        const pending = settle(c.conn.invoke('forever'));
        await up.waitCall((x) => x.event === 'forever', 'the call in flight');
        const s = server;
        server = null;
        const started = Date.now();
        await s.stop(); // exit status 0 and a clean stderr, within 5 s
        assert.ok(Date.now() - started < 5000);
        const outcome = await withTimeout(pending, 3000, 'the pending invocation to settle');
        assert.equal(outcome.ok, false);
    });
});
