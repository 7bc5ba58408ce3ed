// defaultmode.test.mjs - default mode end to end: official clients routed
// through the reference app server (build/switchboard-appserver), which is
// connected to the service over the service protocol.
//
// The path under test is client -> service -> app server -> service -> client:
// the client negotiates at the app server, is redirected to the service with
// the app server's token, and every hub method it invokes runs in the app
// server, whose sends come back through the service.  Covered: every
// transport with JSON, MessagePack over WebSockets and LongPolling; group,
// user and connection sends reaching exactly their targets; the join/send
// race of Azure's troubleshooting guide (un-awaited join loses the message,
// awaited join never does); an app server crash; two app servers sharing one
// hub; the app server closing a client; graceful service shutdown; hostile
// input on the /server/ endpoint; /server/ refused in serverless mode.
//
// Absence ("the non-member gets nothing") is only asserted after a later
// control message has reached that client through the same path, so it means
// something.  Every wait has a timeout.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer } from './lib/server.mjs';
import { startAppServer } from './lib/appserver.mjs';
import { buildClient, stopAll, signalR, HttpTransportType, MessagePackHubProtocol } from './lib/client.mjs';
import { negotiate, rawHubSocket } from './lib/hub.mjs';
import { encodeFrame, rawConnect, rawWebSocket, writeByteByByte } from './lib/raw.mjs';
import { signJwt } from './lib/token.mjs';
import { deferred, sleep, uniq, waitFor, withTimeout } from './lib/util.mjs';

const MATRIX = [
    { transport: 'WebSockets', protocol: 'json' },
    { transport: 'ServerSentEvents', protocol: 'json' },
    { transport: 'LongPolling', protocol: 'json' },
    { transport: 'WebSockets', protocol: 'messagepack' },
    { transport: 'LongPolling', protocol: 'messagepack' },
];

// Arguments that both hub protocols carry losslessly through the app server (JSON value kinds, nesting,
// unicode beyond the BMP, the JSON record separator inside a string).
const PAYLOAD = [
    'héllo wörld ✓ 日本語 🎉',
    '',
    'quote " backslash \\ newline \n record-separator \u001e end',
    42, -7, 0, 3.25, 9007199254740991, true, false, null,
    { a: 1, nested: { list: [1, 'two', null, { deep: true }] }, 'ключ': 'значение', empty: {} },
    [1, [2, [3, []]]],
];

// Every target the app server's hub methods send to.
const TARGETS = ['echo', 'broadcast', 'user', 'group', 'direct'];
const INVOKE_TIMEOUT_MS = 5000;

// An official client built the two-step way: URL of the app server, no token factory.
async function viaApp(service, app, list, { user = uniq('u'), transport = 'WebSockets', protocol = 'json', diag = false } = {}) {
    const c = buildClient(service, { url: app.clientUrl('chat', user, { diag }), transport, protocol, targets: TARGETS });
    list.push(c);
    await c.start();
    c.user = user;
    return c;
}

function call(c, method, ...args) {
    return withTimeout(c.conn.invoke(method, ...args), INVOKE_TIMEOUT_MS, `${method} invoked by the ${c.describe()}`);
}

// Messages of target whose first argument is marker.
function got(c, target, marker) {
    return c.received(target).filter((m) => m.args?.[0] === marker);
}

// Sends a control message to c through the app server (from sender) and waits for it, then asserts that
// c never received target(marker): anything sent before the control would have arrived first.
async function assertNotReceived(c, target, marker, sender) {
    const control = uniq('ctl');
    await call(sender, 'SendToConnection', c.connectionId, control);
    await c.waitMessage('direct', (a) => a[0] === control);
    assert.deepEqual(got(c, target, marker), [], `the ${c.describe()} must not receive ${target}(${marker})`);
}

// The onclose error of c, which must exist and mention text.
async function closedWith(c, text, ms = 5000) {
    const error = await c.waitClosed(ms);
    assert.ok(error, `the ${c.describe()} closed without an error (expected one containing "${text}")`);
    assert.ok(error.message.includes(text), `onclose error of the ${c.describe()}: ${JSON.stringify(error.message)} does not contain "${text}"`);
    return error;
}

// Stops clients, then the app servers, then the service; reports the first failure after trying all.
async function teardown(clients, apps, service) {
    await stopAll(clients.splice(0));
    const failures = [];
    for (const app of apps) {
        try { await app?.stop(); } catch (err) { failures.push(err); }
    }
    try { await service?.stop(); } catch (err) { failures.push(err); }
    if (failures.length) throw failures[0];
}

/* ---------------------------------------------------------------------------------------------
 * The service protocol spoken by hand (bad-input tests): varint-framed MessagePack.
 */

// [1, version 1, connectionType 0, target "", migrationLevel 0, {}, allowStatefulReconnects false], framed.
const HANDSHAKE = Buffer.from([0x08, 0x97, 0x01, 0x01, 0x00, 0xa0, 0x00, 0x80, 0xc2]);

function varint(n) {
    const out = [];
    do {
        let b = n & 0x7f;
        n = Math.floor(n / 128);
        if (n) b |= 0x80;
        out.push(b);
    } while (n);
    return Buffer.from(out);
}

// Decodes one MessagePack value at buf[pos]: -> [value, next position].  The subset the service writes.
function unpack(buf, pos = 0) {
    const b = buf[pos];
    const str = (len, at) => [buf.toString('utf8', at, at + len), at + len];
    const seq = (n, at, isMap) => {
        const out = isMap ? {} : [];
        for (let i = 0; i < n; i++) {
            let k;
            if (isMap) [k, at] = unpack(buf, at);
            let v;
            [v, at] = unpack(buf, at);
            if (isMap) out[k] = v; else out.push(v);
        }
        return [out, at];
    };
    if (b === undefined) throw new Error('truncated MessagePack');
    if (b <= 0x7f) return [b, pos + 1];
    if (b >= 0xe0) return [b - 0x100, pos + 1];
    if ((b & 0xf0) === 0x80) return seq(b & 0x0f, pos + 1, true);
    if ((b & 0xf0) === 0x90) return seq(b & 0x0f, pos + 1, false);
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f, pos + 1);
    switch (b) {
    case 0xc0: return [null, pos + 1];
    case 0xc2: return [false, pos + 1];
    case 0xc3: return [true, pos + 1];
    case 0xc4: return [buf.subarray(pos + 2, pos + 2 + buf[pos + 1]), pos + 2 + buf[pos + 1]];
    case 0xc5: return [buf.subarray(pos + 3, pos + 3 + buf.readUInt16BE(pos + 1)), pos + 3 + buf.readUInt16BE(pos + 1)];
    case 0xc6: return [buf.subarray(pos + 5, pos + 5 + buf.readUInt32BE(pos + 1)), pos + 5 + buf.readUInt32BE(pos + 1)];
    case 0xcc: return [buf[pos + 1], pos + 2];
    case 0xcd: return [buf.readUInt16BE(pos + 1), pos + 3];
    case 0xce: return [buf.readUInt32BE(pos + 1), pos + 5];
    case 0xcf: return [buf.readBigUInt64BE(pos + 1), pos + 9];
    case 0xd0: return [buf.readInt8(pos + 1), pos + 2];
    case 0xd1: return [buf.readInt16BE(pos + 1), pos + 3];
    case 0xd2: return [buf.readInt32BE(pos + 1), pos + 5];
    case 0xd9: return str(buf[pos + 1], pos + 2);
    case 0xda: return str(buf.readUInt16BE(pos + 1), pos + 3);
    case 0xdb: return str(buf.readUInt32BE(pos + 1), pos + 5);
    case 0xdc: return seq(buf.readUInt16BE(pos + 1), pos + 3, false);
    case 0xde: return seq(buf.readUInt16BE(pos + 1), pos + 3, true);
    default: throw new Error(`unexpected MessagePack byte 0x${b.toString(16)} at ${pos}`);
    }
}

// Service-protocol messages received so far on ws (the WebSocket is a byte stream of frames).
function serviceMessages(ws) {
    const bytes = Buffer.concat(ws.messages.map((m) => m.data));
    const out = [];
    let pos = 0;
    while (pos < bytes.length) {
        let len = 0;
        let shift = 0;
        let p = pos;
        for (;;) {
            if (p >= bytes.length) return out;
            const b = bytes[p++];
            len += (b & 0x7f) * 2 ** shift;
            shift += 7;
            if (!(b & 0x80)) break;
        }
        if (p + len > bytes.length) return out;
        out.push(unpack(bytes.subarray(p, p + len))[0]);
        pos = p + len;
    }
    return out;
}

// A server token as the SDK signs it: aud = endpoint + /server/?hub=H, nameid = the server id.
function serverToken(service, hub, { key = service.accessKey, aud } = {}) {
    const iat = Math.floor(Date.now() / 1000);
    return signJwt({ aud: aud ?? `${service.endpoint}/server/?hub=${hub}`, iat, nbf: iat, exp: iat + 3600, nameid: 'raw-server' }, key);
}

async function serverSocket(service, { hub = 'chat', token } = {}) {
    return rawWebSocket(service.port, `/server/?hub=${hub}&cid=${randomUUID()}`, {
        Authorization: `Bearer ${token ?? serverToken(service, hub)}`,
        'X-ASRS-Server-Id': 'raw-server',
    });
}

// Sends the handshake and returns the HandshakeResponse [2, error, ext, connectionId].
async function handshake(ws) {
    ws.sendBinary(HANDSHAKE);
    return waitFor(() => serviceMessages(ws).find((m) => Array.isArray(m) && m[0] === 2), 3000,
        `a HandshakeResponse (got ${JSON.stringify(serviceMessages(ws), (k, v) => (typeof v === 'bigint' ? String(v) : v))})`);
}

function assertHandshakeOk(resp) {
    assert.equal(resp.length, 4, `HandshakeResponse ${JSON.stringify(resp)} should be [2, error, ext, connectionId]`);
    assert.ok(resp[1] === '' || resp[1] === null, `handshake error: ${JSON.stringify(resp[1])}`);
    assert.deepEqual(resp[2], {});
    assert.equal(typeof resp[3], 'string');
    assert.ok(resp[3].length > 0, 'HandshakeResponse carries the server connection id');
}

// Sends a WebSocket Close and waits for the service to answer it and drop the TCP connection.
async function closeCleanly(ws) {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(1000);
    ws.send(0x8, payload);
    await ws.waitCloseFrame();
    await ws.waitEnded();
}

async function expectClose(ws, code) {
    const frame = await ws.waitCloseFrame();
    assert.equal(frame.code, code, `close frame ${JSON.stringify(frame)}, expected code ${code}`);
    await ws.waitEnded();
    assert.deepEqual(ws.violations, []);
}

/* ---------------------------------------------------------------------------------------------
 * One app server: the hub methods.
 */

describe('through one app server', { timeout: 40000 }, () => {
    let service;
    let app;
    const clients = [];

    before(async () => {
        service = await startServer({ mode: 'default' });
        app = await startAppServer(service);
    });
    afterEach(async () => {
        await stopAll(clients.splice(0));
        service.assertHealthy();
        assert.ok(app.alive, `the app server died:\n${app.stderr}`);
    });
    after(() => teardown(clients, [app], service));

    it('the app server negotiate redirects to the service with a token for the user', async () => {
        const res = await fetch(`${app.url}/chat/negotiate?user=alice`, { method: 'POST', signal: AbortSignal.timeout(5000) });
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.equal(body.url, `${service.endpoint}/client/?hub=chat`);
        assert.equal(typeof body.accessToken, 'string');
        // The service takes that token directly at /client/negotiate.
        const neg = await negotiate(service, 'chat', { token: body.accessToken });
        assert.equal(neg.status, 200, neg.text);
        assert.equal(typeof neg.json.connectionId, 'string');
    });

    for (const { transport, protocol } of MATRIX) {
        it(`${transport} with ${protocol}: Echo, GetConnectionId, an unknown method, Broadcast and SendToConnection`, async () => {
            const c = await viaApp(service, app, clients, { transport, protocol });
            const peer = await viaApp(service, app, clients);
            assert.equal(c.conn.state, 'Connected');

            const marker = uniq('echo');
            assert.equal(await call(c, 'Echo', marker, ...PAYLOAD), marker, 'Echo returns its first argument');
            const echoed = await c.waitMessage('echo', (a) => a[0] === marker);
            assert.deepEqual(echoed.args, [marker, ...PAYLOAD], 'Echo sends every argument back intact');
            assert.equal(await call(c, 'eCHO', 'any case'), 'any case', 'method names match case-insensitively');
            assert.equal(await call(c, 'GetConnectionId'), c.connectionId);
            await assert.rejects(call(c, 'NoSuchMethod', 1), (err) => {
                assert.ok(err.message.includes("Unknown hub method 'NoSuchMethod'"), err.message);
                return true;
            });
            assert.equal(c.conn.state, 'Connected', 'a failed invocation does not close the connection');

            const bc = uniq('bc');
            await call(c, 'Broadcast', bc, { n: 1 });
            for (const x of [c, peer]) {
                const m = await x.waitMessage('broadcast', (a) => a[0] === bc);
                assert.deepEqual(m.args, [bc, { n: 1 }], `broadcast at the ${x.describe()}`);
            }
            const toC = uniq('direct');
            await call(peer, 'SendToConnection', c.connectionId, toC, [1, 2]);
            assert.deepEqual((await c.waitMessage('direct', (a) => a[0] === toC)).args, [toC, [1, 2]]);
            const toPeer = uniq('direct');
            await call(c, 'SendToConnection', peer.connectionId, toPeer);
            await peer.waitMessage('direct', (a) => a[0] === toPeer);
            assert.deepEqual(got(peer, 'direct', toC), [], 'SendToConnection reaches only its target');
        });
    }

    it('group sends reach exactly the members; LeaveGroup and AddUserToGroup take effect', async () => {
        const g = uniq('g');
        const alice = await viaApp(service, app, clients, { transport: 'WebSockets', protocol: 'json' });
        const bob = await viaApp(service, app, clients, { transport: 'LongPolling', protocol: 'messagepack' });
        const carol = await viaApp(service, app, clients, { transport: 'ServerSentEvents', protocol: 'json' });
        await call(alice, 'JoinGroup', g);
        await call(bob, 'JoinGroup', g);

        const m1 = uniq('m1');
        await call(carol, 'SendToGroup', g, m1, { from: 'carol' });
        for (const x of [alice, bob]) {
            assert.deepEqual((await x.waitMessage('group', (a) => a[0] === m1)).args, [m1, { from: 'carol' }]);
        }
        await assertNotReceived(carol, 'group', m1, alice);

        // Positive control: once carol joins, the same kind of send reaches her.
        await call(carol, 'JoinGroup', g);
        const m2 = uniq('m2');
        await call(alice, 'SendToGroup', g, m2);
        for (const x of [alice, bob, carol]) await x.waitMessage('group', (a) => a[0] === m2);

        await call(bob, 'LeaveGroup', g);
        const m3 = uniq('m3');
        await call(alice, 'SendToGroup', g, m3);
        for (const x of [alice, carol]) await x.waitMessage('group', (a) => a[0] === m3);
        await assertNotReceived(bob, 'group', m3, alice);

        // AddUserToGroup covers every connection of the user, including ones on other transports.
        const g2 = uniq('g');
        const daveUser = uniq('dave');
        const dave1 = await viaApp(service, app, clients, { user: daveUser, transport: 'WebSockets', protocol: 'messagepack' });
        const dave2 = await viaApp(service, app, clients, { user: daveUser, transport: 'LongPolling', protocol: 'json' });
        await call(alice, 'AddUserToGroup', daveUser, g2);
        const m4 = uniq('m4');
        await call(alice, 'SendToGroup', g2, m4);
        for (const x of [dave1, dave2]) await x.waitMessage('group', (a) => a[0] === m4);
        await assertNotReceived(alice, 'group', m4, carol);
    });

    it('SendToUser reaches every connection of that user and nobody else', async () => {
        const erin = uniq('erin');
        const e1 = await viaApp(service, app, clients, { user: erin, transport: 'WebSockets', protocol: 'json' });
        const e2 = await viaApp(service, app, clients, { user: erin, transport: 'ServerSentEvents', protocol: 'json' });
        const e3 = await viaApp(service, app, clients, { user: erin, transport: 'LongPolling', protocol: 'messagepack' });
        const frank = await viaApp(service, app, clients, { user: uniq('frank') });
        const marker = uniq('touser');
        await call(frank, 'SendToUser', erin, marker, 7);
        for (const x of [e1, e2, e3]) {
            assert.deepEqual((await x.waitMessage('user', (a) => a[0] === marker)).args, [marker, 7], x.describe());
        }
        await assertNotReceived(frank, 'user', marker, e1);
        // Positive control for frank: a send to his own user reaches him.
        const back = uniq('back');
        await call(e1, 'SendToUser', frank.user, back);
        await frank.waitMessage('user', (a) => a[0] === back);
    });

    it('JoinAndSendNoAwait reproduces the race: members get the message, the caller does not (5 times)', async () => {
        const caller = await viaApp(service, app, clients);
        const member = await viaApp(service, app, clients, { transport: 'LongPolling', protocol: 'messagepack' });
        for (let i = 0; i < 5; i++) {
            const g = uniq('race');
            const text = uniq('text');
            await call(member, 'JoinGroup', g);
            await call(caller, 'JoinAndSendNoAwait', g, text);
            await member.waitMessage('group', (a) => a[0] === text);
            // Once the caller is surely a member, a later group send reaches it; the early one never did.
            await call(caller, 'JoinGroup', g);
            const control = uniq('after');
            await call(member, 'SendToGroup', g, control);
            await caller.waitMessage('group', (a) => a[0] === control);
            assert.deepEqual(got(caller, 'group', text), [], `round ${i}: the caller received its own message although it joined after the send`);
        }
    });

    it('JoinAndSendAwait never loses the message (20 times, two transports)', async () => {
        const a = await viaApp(service, app, clients);
        const b = await viaApp(service, app, clients, { transport: 'LongPolling', protocol: 'messagepack' });
        for (let i = 0; i < 20; i++) {
            for (const c of [a, b]) {
                const g = uniq('await');
                const text = uniq('text');
                await call(c, 'JoinAndSendAwait', g, text);
                const m = await c.waitMessage('group', (x) => x[0] === text);
                assert.deepEqual(m.args, [text], `round ${i} on the ${c.describe()}`);
            }
        }
    });

    for (const { transport, protocol } of MATRIX.slice(0, 4)) {
        it(`${transport} with ${protocol}: Close(reason) closes the caller with that reason`, async () => {
            const c = await viaApp(service, app, clients, { transport, protocol });
            const other = await viaApp(service, app, clients);
            const reason = uniq('closing because of test reason ');
            await call(c, 'Close', reason);
            await closedWith(c, reason);
            // Only the caller is closed.
            assert.equal(await call(other, 'Echo', 'still here'), 'still here');
        });
    }

    it('Close() without a reason closes the caller with "Application server closed the connection"', async () => {
        const c = await viaApp(service, app, clients, { transport: 'LongPolling', protocol: 'messagepack' });
        await call(c, 'Close');
        await closedWith(c, 'Application server closed the connection');
        const w = await viaApp(service, app, clients);
        await call(w, 'Close');
        await closedWith(w, 'Application server closed the connection');
    });
});

/* ---------------------------------------------------------------------------------------------
 * The app server crashes.
 */

describe('the app server is killed (SIGKILL)', { timeout: 30000 }, () => {
    let service;
    const apps = [];
    const clients = [];

    before(async () => {
        service = await startServer({ mode: 'default' });
        apps.push(await startAppServer(service));
    });
    after(() => teardown(clients, apps, service));

    it('its clients close with "Server connection dropped"; the service keeps serving a new app server', async () => {
        const [app] = apps;
        const mine = [];
        for (const opts of MATRIX) mine.push(await viaApp(service, app, clients, opts));
        for (const c of mine) assert.equal(await call(c, 'Echo', 'before'), 'before');

        await app.kill();
        for (const c of mine) await closedWith(c, 'Server connection dropped');
        service.assertHealthy();
        // Every server connection of the dead app server is gone: nothing can take a new client.
        await waitFor(async () => (await negotiate(service, 'chat', { user: 'x' })).status === 500, 3000,
            'negotiate to answer 500 once no app server is connected');

        const app2 = await startAppServer(service);
        apps.push(app2);
        const fresh = await viaApp(service, app2, clients, { transport: 'LongPolling', protocol: 'json' });
        assert.equal(await call(fresh, 'Echo', 'after'), 'after');
        service.assertHealthy();
    });
});

/* ---------------------------------------------------------------------------------------------
 * Two app servers on one hub.
 */

describe('two app servers share the clients of a hub', { timeout: 30000 }, () => {
    let service;
    let appA;
    let appB;
    const clients = [];
    const mine = [];
    let owner;     // connection id -> 'A' | 'B', from the app servers' messaging logs

    before(async () => {
        service = await startServer({ mode: 'default' });
        appA = await startAppServer(service, { log: true, serverId: 'app-a' });
        appB = await startAppServer(service, { log: true, serverId: 'app-b' });
        // All negotiate at A; the service routes each connection to some server connection of either.
        // diag=yes makes them diagnostic clients, so the app server that runs their hub methods logs the sends.
        for (let i = 0; i < 10; i++) mine.push(await viaApp(service, appA, clients, { ...MATRIX[i % MATRIX.length], diag: true }));
    });
    afterEach(() => service.assertHealthy());
    after(() => teardown(clients, [appA, appB], service));

    it('a broadcast from any of the 10 clients reaches all 10', async () => {
        const markers = [];
        for (const c of mine) {
            const marker = uniq('bc');
            markers.push(marker);
            await call(c, 'Broadcast', marker);
        }
        for (const c of mine) {
            for (const marker of markers) await c.waitMessage('broadcast', (a) => a[0] === marker);
        }
    });

    it('both app servers got clients: each client is in exactly one app server log', async () => {
        // Echo runs in the app server that owns the caller; for a diagnostic client it logs
        // "Start to send message <id> to 1 connections <caller>." and, once written, "Succeeded ...".
        for (const c of mine) await call(c, 'Echo', 'log me');
        const logged = (app) => {
            const lines = app.readLog();
            const ids = new Set();
            for (const l of lines) {
                const m = /^Start to send message (\d+) to 1 connections (\S+)\.$/.exec(l);
                if (m && lines.includes(`Succeeded to send message ${m[1]}.`)) ids.add(m[2]);
            }
            return ids;
        };
        let a;
        let b;
        await waitFor(() => {
            a = logged(appA);
            b = logged(appB);
            return mine.every((c) => a.has(c.connectionId) || b.has(c.connectionId));
        }, 3000, `every client in a log (A: ${appA.readLog().slice(-4).join(' | ')}; B: ${appB.readLog().slice(-4).join(' | ')})`);
        owner = new Map();
        for (const c of mine) {
            assert.ok(!(a.has(c.connectionId) && b.has(c.connectionId)), `${c.connectionId} was served by both app servers`);
            owner.set(c.connectionId, a.has(c.connectionId) ? 'A' : 'B');
        }
        const onB = [...owner.values()].filter((o) => o === 'B').length;
        assert.ok(onB > 0 && onB < 10, `${10 - onB} clients on A, ${onB} on B: both must have some`);
    });

    it('killing app server B closes exactly its clients; those on A keep working', async () => {
        assert.ok(owner, 'needs the previous test');
        await appB.kill();
        const onB = mine.filter((c) => owner.get(c.connectionId) === 'B');
        const onA = mine.filter((c) => owner.get(c.connectionId) === 'A');
        for (const c of onB) await closedWith(c, 'Server connection dropped');
        const marker = uniq('survivors');
        await call(onA[0], 'Broadcast', marker);
        for (const c of onA) {
            await c.waitMessage('broadcast', (a) => a[0] === marker);
            assert.equal(c.isClosed, false, `${c.describe()} was on A and must stay connected`);
        }
    });
});

/* ---------------------------------------------------------------------------------------------
 * Graceful shutdown of the service.
 */

describe('graceful service shutdown (SIGTERM)', { timeout: 30000 }, () => {
    let service;
    let app;
    const clients = [];

    before(async () => {
        service = await startServer({ mode: 'default' });
        app = await startAppServer(service);
    });
    after(() => teardown(clients, [app], service));

    it('closes clients with a reconnect-allowed Close; the service and the app server exit 0', async () => {
        // Official clients with automatic reconnect: onreconnecting with the server's close error is
        // what a Close message with allowReconnect: true produces (without it the client just closes).
        const official = [];
        for (const { transport, protocol } of MATRIX.filter((m) => m.transport !== 'WebSockets' || m.protocol === 'json')) {
            let builder = new signalR.HubConnectionBuilder()
                .withUrl(app.clientUrl('chat', uniq('grace')), { transport: HttpTransportType[transport] })
                .withAutomaticReconnect({ nextRetryDelayInMilliseconds: (ctx) => (ctx.previousRetryCount === 0 ? 60000 : null) })
                .configureLogging(signalR.LogLevel.None);
            if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
            const conn = builder.build();
            const reconnecting = deferred();
            conn.onreconnecting((err) => reconnecting.resolve(err));
            await withTimeout(conn.start(), 5000, `${transport}/${protocol} start()`);
            official.push({ conn, reconnecting: reconnecting.promise, what: `${transport}/${protocol}` });
        }
        // A raw JSON client shows the Close message on the wire.
        const raw = await rawHubSocket(service, 'chat', { user: uniq('raw') });
        try {
            const stopped = service.stop();
            const close = await waitFor(() => raw.ws.records().slice(1).map((r) => JSON.parse(r)).find((m) => m.type === 7), 5000,
                `a Close message on the raw client (got ${JSON.stringify(raw.ws.text())})`);
            assert.equal(close.allowReconnect, true, `Close message ${JSON.stringify(close)}`);
            for (const o of official) {
                const err = await withTimeout(o.reconnecting, 5000, `onreconnecting of the ${o.what} client`);
                assert.ok(err?.message.includes('Server returned an error on close'), `${o.what}: reconnecting because of ${err?.message}`);
            }
            await stopped; // exit status 0, no sanitizer report
        } finally {
            raw.ws.destroy();
            for (const o of official) await withTimeout(o.conn.stop(), 3000, 'client stop()').catch(() => {});
        }
        await app.stop(); // the app server outlives its service and still stops cleanly
    });
});

/* ---------------------------------------------------------------------------------------------
 * Hostile input on /server/.
 */

describe('bad input on the server endpoint', { timeout: 40000 }, () => {
    let service;
    let app;
    const clients = [];
    const open = [];

    before(async () => {
        service = await startServer({ mode: 'default', env: { SWITCHBOARD_MAX_SERVER_MESSAGE_BYTES: '1024' } });
        app = await startAppServer(service);
    });
    afterEach(async () => {
        for (const ws of open.splice(0)) ws.destroy();
        service.assertHealthy();
        // The service must still serve a fresh official client end to end through the app server.
        const c = await viaApp(service, app, clients);
        assert.equal(await call(c, 'Echo', 'alive'), 'alive');
        await c.waitMessage('echo', (a) => a[0] === 'alive');
        await stopAll(clients.splice(0));
    });
    after(() => teardown(clients, [app], service));

    async function socket(opts) {
        const ws = await serverSocket(service, opts);
        open.push(ws);
        return ws;
    }

    it('a truncated service frame, then a WebSocket Close: the service closes cleanly', async () => {
        const ws = await socket();
        assertHandshakeOk(await handshake(ws));
        ws.sendBinary(Buffer.from([0x0a, 0x93, 0x03])); // declares 10 bytes, carries 2
        await closeCleanly(ws);
        assert.deepEqual(ws.violations, []);
    });

    it('a truncated service frame, then TCP EOF; and a truncated WebSocket frame, then EOF', async () => {
        const ws = await socket();
        assertHandshakeOk(await handshake(ws));
        ws.sendBinary(Buffer.from([0x0a, 0x93, 0x03]));
        ws.socket.end();
        await ws.waitEnded();

        const ws2 = await socket();
        const frame = encodeFrame(0x2, Buffer.alloc(100, 0x91));
        ws2.writeRaw(frame.subarray(0, 20));
        ws2.socket.end();
        await ws2.waitEnded();
    });

    it('an invalid length varint (5th byte > 7) closes with 1002', async () => {
        const ws = await socket();
        ws.sendBinary(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]));
        await expectClose(ws, 1002);
    });

    it('an unknown message type is ignored; a handshake written one byte per WebSocket message still works', async () => {
        const ws = await socket();
        ws.sendBinary(Buffer.from([0x02, 0x91, 0x63])); // [99]
        // The service reads the WebSocket as a byte stream: frames may span messages.
        for (const byte of HANDSHAKE) ws.sendBinary(Buffer.from([byte]));
        const resp = await waitFor(() => serviceMessages(ws).find((m) => Array.isArray(m) && m[0] === 2), 3000,
            `a HandshakeResponse (received ${ws.messages.length} messages, close frame ${JSON.stringify(ws.closeFrame)})`);
        assertHandshakeOk(resp);
        assert.equal(serviceMessages(ws)[0][0], 2, 'the HandshakeResponse is the first thing the service sends');
        // Unknown types after the handshake are ignored too; the connection stays usable.
        ws.sendBinary(Buffer.from([0x02, 0x91, 0x63]));
        ws.sendBinary(Buffer.from([0x02, 0x91, 0x03])); // [3] keep-alive
        await sleep(100);
        assert.equal(ws.closeFrame, null, `the service closed: ${JSON.stringify(ws.closeFrame)}`);
        await closeCleanly(ws);
    });

    it('the handshake dribbled one TCP byte at a time inside one WebSocket frame works', async () => {
        const ws = await socket();
        await writeByteByByte(ws.socket, encodeFrame(0x2, HANDSHAKE));
        const resp = await waitFor(() => serviceMessages(ws).find((m) => Array.isArray(m) && m[0] === 2), 3000, 'a HandshakeResponse');
        assertHandshakeOk(resp);
        await closeCleanly(ws);
    });

    it('a 4 KB message over SWITCHBOARD_MAX_SERVER_MESSAGE_BYTES=1024 closes with 1009', async () => {
        const ws = await socket();
        assertHandshakeOk(await handshake(ws));
        const body = Buffer.concat([Buffer.from([0x92, 0x03, 0xda, 0x0f, 0xf0]), Buffer.alloc(0x0ff0, 0x61)]); // [3, "aaa..."]
        ws.sendBinary(Buffer.concat([varint(body.length), body]));
        await expectClose(ws, 1009);
    });

    it('a service frame declaring 4 KB, sent in small WebSocket messages, closes with 1009', async () => {
        const ws = await socket();
        assertHandshakeOk(await handshake(ws));
        const body = Buffer.concat([Buffer.from([0x92, 0x03, 0xda, 0x0f, 0xf0]), Buffer.alloc(0x0ff0, 0x61)]);
        const framed = Buffer.concat([varint(body.length), body]);
        for (let off = 0; off < framed.length && !ws.closeFrame && !ws.isEnded; off += 512) {
            ws.sendBinary(framed.subarray(off, off + 512));
            await sleep(5);
        }
        await expectClose(ws, 1009);
    });

    it('bad tokens are refused with 401 on the upgrade', async () => {
        const cases = {
            'wrong key': serverToken(service, 'chat', { key: 'not-the-access-key-at-all-0123456789abcdef' }),
            'client audience': serverToken(service, 'chat', { aud: `${service.endpoint}/client/?hub=chat` }),
            'other hub audience': serverToken(service, 'other'),
            'not a JWT': 'garbage',
        };
        for (const [what, token] of Object.entries(cases)) {
            const err = await serverSocket(service, { token }).then(
                (ws) => { open.push(ws); return null; },
                (e) => e,
            );
            assert.ok(err, `${what}: the upgrade succeeded`);
            assert.equal(err.response?.status, 401, `${what}: ${err.message}`);
        }
        const conn = await rawConnect(service.port);
        open.push(conn.socket);
        conn.socket.write(`GET /server/?hub=chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
        await waitFor(() => /^HTTP\/1\.1 \d{3}/.test(conn.data.toString('latin1')), 3000, 'a response without a token');
        assert.match(conn.data.toString('latin1'), /^HTTP\/1\.1 401 /);
    });
});

/* ---------------------------------------------------------------------------------------------
 * Serverless mode has no /server/ endpoint.
 */

describe('serverless mode', { timeout: 15000 }, () => {
    let service;
    before(async () => {
        service = await startServer();
    });
    after(() => service?.stop());

    it('refuses a server connection with 403, even with a valid server token', async () => {
        const err = await serverSocket(service).then((ws) => { ws.destroy(); return null; }, (e) => e);
        assert.ok(err, 'the upgrade succeeded');
        assert.equal(err.response?.status, 403, err.message);
        service.assertHealthy();
    });
});
