// transports.test.mjs - the acceptance path: official clients on every
// transport and protocol receive every kind of REST send.
//
// Matrix: WebSockets, ServerSentEvents and LongPolling with JSON; WebSockets
// and LongPolling with MessagePack.  For each, two clients (alice, bob) join
// through negotiate with an accessTokenFactory whose token names the user, and
// the tests drive v1 and 2022-06-01 REST sends at them.  Absence ("bob gets
// nothing") is only asserted after a later control message has arrived at
// bob, so it means something.
//
// Also here: the negotiate response itself, and the two-step flow through an
// app server that redirects the client to the service.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from './lib/server.mjs';
import { connectClient, buildClient, stopAll } from './lib/client.mjs';
import { rest, v2022, describeResponse } from './lib/rest.mjs';
import { negotiate } from './lib/hub.mjs';
import { uniq, waitFor, withTimeout } from './lib/util.mjs';

// Every JSON value kind, nesting, unicode beyond the BMP, characters JSON must
// escape (including the record separator 0x1E that frames JSON hub messages).
const PAYLOAD = [
    'héllo wörld ✓ 日本語 🎉',
    '',
    'quote " backslash \\ newline \n tab \t record-separator \u001e end',
    42,
    -7,
    0,
    3.25,
    0.1,
    9007199254740991,
    true,
    false,
    null,
    { a: 1, nested: { list: [1, 'two', null, { deep: true }] }, 'ключ': 'значение', empty: {} },
    [1, [2, [3, []]]],
    [],
    {},
];

const MATRIX = [
    { transport: 'WebSockets', protocol: 'json', tag: 'wsjson' },
    { transport: 'ServerSentEvents', protocol: 'json', tag: 'ssejson' },
    { transport: 'LongPolling', protocol: 'json', tag: 'lpjson' },
    { transport: 'WebSockets', protocol: 'messagepack', tag: 'wsmsgpack' },
    { transport: 'LongPolling', protocol: 'messagepack', tag: 'lpmsgpack' },
];

let server;
let api;

before(async () => {
    server = await startServer({ mode: 'serverless' });
    api = rest(server);
});
afterEach(() => server.assertHealthy());
after(async () => {
    await server?.stop();
});

// POST/PUT/DELETE and assert the status, with the response in the failure message.
async function call(method, path, body, status) {
    const res = await api.request(method, path, body === undefined ? {} : { json: body });
    assert.equal(res.status, status, `${method} ${path} -> ${describeResponse(res)}`);
    return res;
}

// Asserts client received nothing matching marker: a control message sent now must arrive first.
async function assertNothing(client, marker, hub) {
    const control = uniq('ctl');
    await call('POST', `/api/v1/hubs/${hub}/connections/${client.connectionId}`, { target: 'ctl', arguments: [control] }, 202);
    await client.waitMessage('ctl', (args) => args[0] === control);
    const leaked = client.messages.filter((m) => m.args?.[0] === marker || m.unhandled);
    assert.deepEqual(leaked, [], `${client.describe()} must not have received ${marker}`);
}

describe('negotiate at /client/negotiate', () => {
    it('version 1 returns connectionId, connectionToken and WebSockets/SSE/LongPolling with their formats', async () => {
        const res = await negotiate(server, 'neg', { user: 'u1' });
        assert.equal(res.status, 200, res.text);
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
        const body = res.json;
        assert.equal(body.negotiateVersion, 1);
        assert.equal(typeof body.connectionId, 'string');
        assert.ok(body.connectionId.length > 0);
        assert.equal(typeof body.connectionToken, 'string');
        // The JS client appends the token to the URL without encoding it.
        assert.match(body.connectionToken, /^[A-Za-z0-9_-]+$/);
        assert.notEqual(body.connectionToken, body.connectionId, 'the token is secret, the id is public');
        assert.deepEqual(body.availableTransports, [
            { transport: 'WebSockets', transferFormats: ['Text', 'Binary'] },
            { transport: 'ServerSentEvents', transferFormats: ['Text'] },
            { transport: 'LongPolling', transferFormats: ['Text', 'Binary'] },
        ]);
        assert.equal(body.error, undefined);
        assert.equal(body.url, undefined, 'the service must not redirect again');
    });

    it('without negotiateVersion answers version 0 and no connectionToken', async () => {
        const res = await negotiate(server, 'neg', { version: null });
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json.negotiateVersion ?? 0, 0);
        assert.equal(typeof res.json.connectionId, 'string');
        assert.equal(res.json.connectionToken, undefined);
        assert.equal(res.json.availableTransports.length, 3);
    });

    it('every negotiate creates a distinct connection id and token', async () => {
        const a = await negotiate(server, 'neg');
        const b = await negotiate(server, 'neg');
        assert.notEqual(a.json.connectionId, b.json.connectionId);
        assert.notEqual(a.json.connectionToken, b.json.connectionToken);
    });
});

for (const { transport, protocol, tag } of MATRIX) {
    describe(`${transport} with ${protocol}`, { timeout: 30000 }, () => {
        const hub = `hub_${tag}`;
        const aliceUser = `alice_${tag}`;
        const bobUser = `bob_${tag}`;
        let alice;
        let bob;

        before(async () => {
            alice = await connectClient(server, { hub, user: aliceUser, transport, protocol });
            bob = await connectClient(server, { hub, user: bobUser, transport, protocol });
        });
        after(async () => {
            await stopAll([alice, bob]);
        });

        it('connects through negotiate with an accessTokenFactory; REST sees the connection and the user', async () => {
            assert.ok(alice.connectionId, 'connectionId after start()');
            assert.notEqual(alice.connectionId, bob.connectionId);
            assert.equal(alice.conn.state, 'Connected');
            const conn = await api.head(`/api/v1/hubs/${hub}/connections/${alice.connectionId}`);
            assert.equal(conn.status, 200, `HEAD connection -> ${describeResponse(conn)}`);
            const user = await api.get(`/api/v1/hubs/${hub}/users/${aliceUser}`);
            assert.equal(user.status, 200, `GET user (nameid claim) -> ${describeResponse(user)}`);
        });

        it('v1 broadcast reaches both clients with every argument kind intact', async () => {
            const marker = uniq('bc');
            await call('POST', `/api/v1/hubs/${hub}`, { target: 'm', arguments: [marker, ...PAYLOAD] }, 202);
            for (const c of [alice, bob]) {
                const got = await c.waitMessage('m', (a) => a[0] === marker);
                assert.deepEqual(got.args, [marker, ...PAYLOAD], `${c.describe()} arguments`);
            }
        });

        it('v1 send to a user reaches only that user', async () => {
            const marker = uniq('user');
            await call('POST', `/api/v1/hubs/${hub}/users/${aliceUser}`, { target: 'm', arguments: [marker, { n: 1 }] }, 202);
            const got = await alice.waitMessage('m', (a) => a[0] === marker);
            assert.deepEqual(got.args, [marker, { n: 1 }]);
            await assertNothing(bob, marker, hub);
        });

        it('v1 send to a connection reaches only that connection', async () => {
            const marker = uniq('conn');
            await call('POST', `/api/v1/hubs/${hub}/connections/${bob.connectionId}`, { target: 'm', arguments: [marker, [1, 2]] }, 202);
            const got = await bob.waitMessage('m', (a) => a[0] === marker);
            assert.deepEqual(got.args, [marker, [1, 2]]);
            await assertNothing(alice, marker, hub);
        });

        it('v1 group: a connection added through REST receives group sends, others do not', async () => {
            const group = uniq('g');
            const marker = uniq('grp');
            await call('PUT', `/api/v1/hubs/${hub}/groups/${group}/connections/${alice.connectionId}`, undefined, 200);
            await call('POST', `/api/v1/hubs/${hub}/groups/${group}`, { target: 'm', arguments: [marker, null] }, 202);
            const got = await alice.waitMessage('m', (a) => a[0] === marker);
            assert.deepEqual(got.args, [marker, null]);
            await assertNothing(bob, marker, hub);
        });

        it('v1 user in group (with ttl) routes group sends to that user', async () => {
            const group = uniq('g');
            const marker = uniq('ugrp');
            await call('PUT', `/api/v1/hubs/${hub}/groups/${group}/users/${bobUser}?ttl=60`, undefined, 202);
            await call('POST', `/api/v1/hubs/${hub}/groups/${group}`, { target: 'm', arguments: [marker] }, 202);
            await bob.waitMessage('m', (a) => a[0] === marker);
            await assertNothing(alice, marker, hub);
        });

        it('v1 broadcast with ?excluded= skips the excluded connection', async () => {
            const marker = uniq('exb');
            await call('POST', `/api/v1/hubs/${hub}?excluded=${alice.connectionId}`, { target: 'm', arguments: [marker] }, 202);
            await bob.waitMessage('m', (a) => a[0] === marker);
            await assertNothing(alice, marker, hub);
        });

        it('v1 group send with ?excluded= skips the excluded member', async () => {
            const group = uniq('g');
            const marker = uniq('exg');
            await call('PUT', `/api/v1/hubs/${hub}/groups/${group}/connections/${alice.connectionId}`, undefined, 200);
            await call('PUT', `/api/v1/hubs/${hub}/groups/${group}/connections/${bob.connectionId}`, undefined, 200);
            await call('POST', `/api/v1/hubs/${hub}/groups/${group}?excluded=${bob.connectionId}`, { target: 'm', arguments: [marker] }, 202);
            await alice.waitMessage('m', (a) => a[0] === marker);
            await assertNothing(bob, marker, hub);
        });

        it('2022-06-01 :send to hub, user, connection and group each arrive with their arguments', async () => {
            const group = uniq('g');
            await call('PUT', `/api/hubs/${hub}/groups/${group}/connections/${bob.connectionId}${v2022()}`, undefined, 200);
            const cases = [
                [`/api/hubs/${hub}/:send`, [alice, bob]],
                [`/api/hubs/${hub}/users/${aliceUser}/:send`, [alice]],
                [`/api/hubs/${hub}/connections/${alice.connectionId}/:send`, [alice]],
                [`/api/hubs/${hub}/groups/${group}/:send`, [bob]],
            ];
            for (const [path, receivers] of cases) {
                const marker = uniq('v22');
                const args = [marker, { path, n: 3.5, list: ['x', null] }];
                await call('POST', `${path}${v2022()}`, { target: 'm', arguments: args }, 202);
                for (const c of receivers) {
                    const got = await c.waitMessage('m', (a) => a[0] === marker);
                    assert.deepEqual(got.args, args, `${path} at ${c.describe()}`);
                }
                for (const c of [alice, bob].filter((x) => !receivers.includes(x))) await assertNothing(c, marker, hub);
            }
        });

        it('2022-06-01 :send with ?excluded= skips the excluded connection', async () => {
            const marker = uniq('ex22');
            await call('POST', `/api/hubs/${hub}/:send${v2022(`excluded=${bob.connectionId}`)}`, { target: 'm', arguments: [marker] }, 202);
            await alice.waitMessage('m', (a) => a[0] === marker);
            await assertNothing(bob, marker, hub);
        });

        it('a PascalCase body {"Target","Arguments"} (Management SDK) is delivered', async () => {
            const marker = uniq('pascal');
            await call('POST', `/api/hubs/${hub}/:send${v2022()}`, { Target: 'm', Arguments: [marker, { k: 'v' }] }, 202);
            for (const c of [alice, bob]) {
                const got = await c.waitMessage('m', (a) => a[0] === marker);
                assert.deepEqual(got.args, [marker, { k: 'v' }]);
            }
        });

        it('JSON escapes in the REST body (\\u00e9, surrogate pairs, \\u001e) arrive decoded', async () => {
            const marker = uniq('esc');
            const body = `{"target":"m","arguments":["${marker}","caf\\u00e9 \\ud83c\\udf89","\\u001e","tab\\tnl\\n\\/"]}`;
            const res = await api.post(`/api/v1/hubs/${hub}/connections/${alice.connectionId}`,
                { body, contentType: 'application/json; charset=utf-8' });
            assert.equal(res.status, 202, describeResponse(res));
            const got = await alice.waitMessage('m', (a) => a[0] === marker);
            assert.deepEqual(got.args, [marker, 'café 🎉', '\u001e', 'tab\tnl\n/']);
        });

        it('closing a connection through v1 REST fires its onclose with the reason; the other stays', async () => {
            const reason = `closed by v1 ${tag}`;
            await call('DELETE', `/api/v1/hubs/${hub}/connections/${alice.connectionId}?reason=${encodeURIComponent(reason)}`, undefined, 202);
            const error = await alice.waitClosed(3000);
            assert.ok(error, 'onclose must carry an error when the service closes with a reason');
            assert.ok(error.message.includes(reason), `onclose error "${error.message}" should contain "${reason}"`);
            const marker = uniq('after');
            await call('POST', `/api/v1/hubs/${hub}`, { target: 'm', arguments: [marker] }, 202);
            await bob.waitMessage('m', (a) => a[0] === marker);
            await waitFor(async () => (await api.head(`/api/v1/hubs/${hub}/connections/${alice.connectionId}`)).status === 404,
                2000, 'HEAD of the closed connection to answer 404');
        });

        it('closing a connection through 2022-06-01 REST answers 200 and fires onclose with the reason', async () => {
            const reason = `closed by 2022 ${tag}`;
            await call('DELETE', `/api/hubs/${hub}/connections/${bob.connectionId}${v2022(`reason=${encodeURIComponent(reason)}`)}`, undefined, 200);
            const error = await bob.waitClosed(3000);
            assert.ok(error, 'onclose must carry an error when the service closes with a reason');
            assert.ok(error.message.includes(reason), `onclose error "${error.message}" should contain "${reason}"`);
        });
    });
}

describe('two-step flow through an app server', { timeout: 30000 }, () => {
    let app;
    let appUrl;
    const negotiations = [];
    const clients = [];

    before(async () => {
        // What an app server does: authenticate its user, then redirect to the service with a token.
        app = http.createServer((req, res) => {
            const url = new URL(req.url, 'http://app');
            if (req.method !== 'POST' || !url.pathname.endsWith('/negotiate')) {
                res.writeHead(404).end();
                return;
            }
            const user = url.searchParams.get('user') ?? 'anonymous';
            negotiations.push({ path: url.pathname, user, query: url.search });
            const body = JSON.stringify({
                url: `${server.endpoint}/client/?hub=chat`,
                accessToken: server.clientToken('chat', { user }),
            });
            res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
        });
        await new Promise((resolve) => app.listen(0, '127.0.0.1', resolve));
        appUrl = `http://127.0.0.1:${app.address().port}`;
    });
    after(async () => {
        await stopAll(clients);
        await new Promise((resolve) => app.close(resolve));
    });

    for (const { transport, protocol } of [
        { transport: 'WebSockets', protocol: 'json' },
        { transport: 'ServerSentEvents', protocol: 'json' },
        { transport: 'LongPolling', protocol: 'messagepack' },
    ]) {
        it(`${transport}/${protocol}: the client follows {url, accessToken} to the service and receives user sends`, async () => {
            const user = uniq('two');
            const seen = negotiations.length;
            const c = buildClient(server, { url: `${appUrl}/?user=${user}`, transport, protocol });
            clients.push(c);
            await c.start();
            assert.equal(negotiations.length, seen + 1, 'the app server saw exactly one negotiate');
            assert.equal(negotiations.at(-1).path, '/negotiate');
            assert.match(negotiations.at(-1).query, /negotiateVersion=1/);
            const marker = uniq('redir');
            await call('POST', `/api/v1/hubs/chat/users/${user}`, { target: 'm', arguments: [marker, 'via app'] }, 202);
            const got = await c.waitMessage('m', (a) => a[0] === marker);
            assert.deepEqual(got.args, [marker, 'via app']);
            await withTimeout(c.conn.stop(), 3000, 'client stop()');
        });
    }
});
