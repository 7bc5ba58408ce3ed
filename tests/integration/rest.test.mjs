// rest.test.mjs - the data-plane REST API: status codes, existence checks,
// group and user management, body parsing, limits and REST authentication.
//
// Delivery across transports is covered by transports.test.mjs; here the
// clients are official WebSocket/JSON clients and the focus is on what each
// endpoint answers and on the state it leaves behind (observed through the
// existence endpoints and through delivery).

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomAccessKey, startServer } from './lib/server.mjs';
import { connectClient, stopAll } from './lib/client.mjs';
import { rest, v2022, describeResponse } from './lib/rest.mjs';
import { describeRaw, rawHttp } from './lib/raw.mjs';
import { restToken, signJwt } from './lib/token.mjs';
import { uniq, waitFor } from './lib/util.mjs';

let server;
let api;
const clients = [];

before(async () => {
    server = await startServer({ mode: 'serverless' });
    api = rest(server);
});
afterEach(() => server.assertHealthy());
after(async () => {
    await stopAll(clients);
    await server?.stop();
});

async function client(hub, user, opts = {}) {
    const c = await connectClient(server, { hub, user, ...opts });
    clients.push(c);
    return c;
}

async function expectStatus(method, path, status, opts = {}) {
    const res = await api.request(method, path, opts);
    assert.equal(res.status, status, `${method} ${path} -> ${describeResponse(res)}`);
    return res;
}

const send = (marker) => ({ json: { target: 'm', arguments: [marker] } });

// Asserts client got nothing tagged marker, proven by a later control message arriving first.
async function assertNothing(c, marker, hub) {
    const control = uniq('ctl');
    await expectStatus('POST', `/api/v1/hubs/${hub}/connections/${c.connectionId}`, 202,
        { json: { target: 'ctl', arguments: [control] } });
    await c.waitMessage('ctl', (a) => a[0] === control);
    assert.deepEqual(c.received('m').filter((m) => m.args[0] === marker), [], `${c.describe()} got ${marker}`);
}

describe('health', () => {
    it('GET and HEAD /api/v1/health answer 200', async () => {
        await expectStatus('GET', '/api/v1/health', 200);
        await expectStatus('HEAD', '/api/v1/health', 200);
    });

    it('HEAD /api/health?api-version=2022-06-01 answers 200', async () => {
        await expectStatus('HEAD', `/api/health${v2022()}`, 200);
    });
});

describe('v1 API', () => {
    const hub = 'restv1';
    let carol;
    before(async () => {
        carol = await client(hub, 'carol');
    });

    it('send endpoints answer 202 (broadcast, user, connection, group), also for an absent user or empty group', async () => {
        const marker = uniq('s');
        await expectStatus('POST', `/api/v1/hubs/${hub}`, 202, send(marker));
        await expectStatus('POST', `/api/v1/hubs/${hub}/users/carol`, 202, send(marker));
        await expectStatus('POST', `/api/v1/hubs/${hub}/users/nobody_here`, 202, send(marker));
        await expectStatus('POST', `/api/v1/hubs/${hub}/connections/${carol.connectionId}`, 202, send(marker));
        await expectStatus('POST', `/api/v1/hubs/${hub}/groups/emptygroup`, 202, send(marker));
        await waitFor(() => carol.received('m').filter((m) => m.args[0] === marker).length === 3, 3000,
            'carol to receive the broadcast, user and connection sends');
    });

    it('GET and HEAD existence of connection, user and group answer 200 when present, 404 when absent', async () => {
        const group = uniq('g');
        for (const method of ['GET', 'HEAD']) {
            await expectStatus(method, `/api/v1/hubs/${hub}/connections/${carol.connectionId}`, 200);
            await expectStatus(method, `/api/v1/hubs/${hub}/connections/NoSuchConnection0000000`, 404);
            await expectStatus(method, `/api/v1/hubs/${hub}/users/carol`, 200);
            await expectStatus(method, `/api/v1/hubs/${hub}/users/nobody_here`, 404);
            await expectStatus(method, `/api/v1/hubs/${hub}/groups/${group}`, 404);
        }
        await expectStatus('PUT', `/api/v1/hubs/${hub}/groups/${group}/connections/${carol.connectionId}`, 200);
        await expectStatus('GET', `/api/v1/hubs/${hub}/groups/${group}`, 200);
        await expectStatus('HEAD', `/api/v1/hubs/${hub}/groups/${group}`, 200);
        // Existence is per hub.
        await expectStatus('HEAD', `/api/v1/hubs/otherhub/connections/${carol.connectionId}`, 404);
    });

    it('PUT connection into group answers 200, and 404 for an unknown connection', async () => {
        const group = uniq('g');
        await expectStatus('PUT', `/api/v1/hubs/${hub}/groups/${group}/connections/${carol.connectionId}`, 200);
        await expectStatus('PUT', `/api/v1/hubs/${hub}/groups/${group}/connections/NoSuchConnection0000000`, 404);
    });

    it('DELETE connection from group answers 200 and the connection stops receiving group sends', async () => {
        const group = uniq('g');
        await expectStatus('PUT', `/api/v1/hubs/${hub}/groups/${group}/connections/${carol.connectionId}`, 200);
        await expectStatus('DELETE', `/api/v1/hubs/${hub}/groups/${group}/connections/${carol.connectionId}`, 200);
        await expectStatus('HEAD', `/api/v1/hubs/${hub}/groups/${group}`, 404);
        const marker = uniq('left');
        await expectStatus('POST', `/api/v1/hubs/${hub}/groups/${group}`, 202, send(marker));
        await assertNothing(carol, marker, hub);
    });

    it('PUT and DELETE user in group (?ttl=) answer 202 and change delivery', async () => {
        const group = uniq('g');
        await expectStatus('PUT', `/api/v1/hubs/${hub}/groups/${group}/users/carol?ttl=60`, 202);
        await expectStatus('HEAD', `/api/v1/hubs/${hub}/groups/${group}`, 200);
        const inGroup = uniq('in');
        await expectStatus('POST', `/api/v1/hubs/${hub}/groups/${group}`, 202, send(inGroup));
        await carol.waitMessage('m', (a) => a[0] === inGroup);
        await expectStatus('DELETE', `/api/v1/hubs/${hub}/groups/${group}/users/carol`, 202);
        const out = uniq('out');
        await expectStatus('POST', `/api/v1/hubs/${hub}/groups/${group}`, 202, send(out));
        await assertNothing(carol, out, hub);
    });

    it('DELETE user from all groups answers 200 and removes every membership', async () => {
        const g1 = uniq('g');
        const g2 = uniq('g');
        await expectStatus('PUT', `/api/v1/hubs/${hub}/groups/${g1}/users/carol`, 202);
        await expectStatus('PUT', `/api/v1/hubs/${hub}/groups/${g2}/users/carol`, 202);
        await expectStatus('DELETE', `/api/v1/hubs/${hub}/users/carol/groups`, 200);
        const marker = uniq('allgone');
        await expectStatus('POST', `/api/v1/hubs/${hub}/groups/${g1}`, 202, send(marker));
        await expectStatus('POST', `/api/v1/hubs/${hub}/groups/${g2}`, 202, send(marker));
        await assertNothing(carol, marker, hub);
    });

    it('repeated ?excluded= parameters exclude every listed connection', async () => {
        const h = 'restexcl';
        const [a, b, c] = [await client(h, 'xa'), await client(h, 'xb'), await client(h, 'xc')];
        const marker = uniq('ex');
        await expectStatus('POST', `/api/v1/hubs/${h}?excluded=${a.connectionId}&excluded=${b.connectionId}`, 202, send(marker));
        await c.waitMessage('m', (args) => args[0] === marker);
        await assertNothing(a, marker, h);
        await assertNothing(b, marker, h);
    });
});

describe('2022-06-01 API', () => {
    const hub = 'rest22';
    let dave;
    before(async () => {
        dave = await client(hub, 'dave');
    });

    it('PUT user to group answers 200, DELETE 204, DELETE all groups 204', async () => {
        const group = uniq('g');
        await expectStatus('PUT', `/api/hubs/${hub}/users/dave/groups/${group}${v2022()}`, 200);
        const marker = uniq('ug');
        await expectStatus('POST', `/api/hubs/${hub}/groups/${group}/:send${v2022()}`, 202, send(marker));
        await dave.waitMessage('m', (a) => a[0] === marker);
        await expectStatus('DELETE', `/api/hubs/${hub}/users/dave/groups/${group}${v2022()}`, 204);
        await expectStatus('PUT', `/api/hubs/${hub}/users/dave/groups/${group}${v2022('ttl=30')}`, 200);
        await expectStatus('DELETE', `/api/hubs/${hub}/users/dave/groups${v2022()}`, 204);
        const later = uniq('none');
        await expectStatus('POST', `/api/hubs/${hub}/groups/${group}/:send${v2022()}`, 202, send(later));
        await assertNothing(dave, later, hub);
    });

    it('PUT connection to group answers 200 and DELETE 200', async () => {
        const group = uniq('g');
        await expectStatus('PUT', `/api/hubs/${hub}/groups/${group}/connections/${dave.connectionId}${v2022()}`, 200);
        await expectStatus('HEAD', `/api/hubs/${hub}/groups/${group}${v2022()}`, 200);
        await expectStatus('DELETE', `/api/hubs/${hub}/groups/${group}/connections/${dave.connectionId}${v2022()}`, 200);
    });

    it('HEAD existence answers 200 when present and 404 with x-ms-error-code when absent', async () => {
        await expectStatus('HEAD', `/api/hubs/${hub}/connections/${dave.connectionId}${v2022()}`, 200);
        await expectStatus('HEAD', `/api/hubs/${hub}/users/dave${v2022()}`, 200);
        const cases = [
            [`/api/hubs/${hub}/connections/NoSuchConnection0000000`, 'Warning.Connection.NotExisted'],
            [`/api/hubs/${hub}/users/nobody_here`, 'Warning.User.NotExisted'],
            [`/api/hubs/${hub}/groups/${uniq('empty')}`, 'Warning.Group.NotExisted'],
        ];
        for (const [path, code] of cases) {
            const res = await expectStatus('HEAD', `${path}${v2022()}`, 404);
            assert.equal(res.headers['x-ms-error-code'], code, `x-ms-error-code of HEAD ${path}`);
        }
    });

    it('&application=app addresses hub app_hub', async () => {
        const appClient = await client('myapp_apphub', 'erin');
        const marker = uniq('app');
        await expectStatus('POST', `/api/hubs/apphub/:send${v2022('application=myapp')}`, 202, send(marker));
        await appClient.waitMessage('m', (a) => a[0] === marker);
        await expectStatus('HEAD', `/api/hubs/apphub/connections/${appClient.connectionId}${v2022('application=myapp')}`, 200);
        await expectStatus('HEAD', `/api/hubs/apphub/connections/${appClient.connectionId}${v2022()}`, 404);
    });

    it(':closeConnections answers 204 and closes every client of the hub', async () => {
        const h = 'restclose';
        const a = await client(h, 'ca');
        const b = await client(h, 'cb', { transport: 'LongPolling' });
        await expectStatus('POST', `/api/hubs/${h}/:closeConnections${v2022('reason=maintenance')}`, 204);
        await a.waitClosed(3000);
        await b.waitClosed(3000);
        await waitFor(async () => (await api.head(`/api/hubs/${h}/users/ca${v2022()}`)).status === 404, 2000,
            'the closed user to stop existing');
    });
});

describe('2022-11-01 and later: :generateToken', () => {
    const hub = 'resttoken';
    const payloadOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));

    it('answers 200 {token}; an official client connects with it as that user and is reached by user sends', async () => {
        const res = await expectStatus('POST',
            `/api/hubs/${hub}/:generateToken?api-version=2022-11-01&userId=${encodeURIComponent('tok user')}&minutesToExpire=5`, 200);
        assert.match(res.headers['content-type'], /^application\/json/);
        const { token } = res.json();
        const claims = payloadOf(token);
        assert.equal(claims.aud, `${server.endpoint}/client/?hub=${hub}`);
        assert.equal(claims.nameid, 'tok user');
        assert.equal(claims.exp - claims.iat, 300);
        assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 60);

        const c = await client(hub, undefined, { token });
        const marker = uniq('tok');
        await expectStatus('POST', `/api/hubs/${hub}/users/${encodeURIComponent('tok user')}/:send${v2022()}`, 202, send(marker));
        await c.waitMessage('m', (a) => a[0] === marker);
    });

    it('defaults to an hour and no user; the token opens this hub only', async () => {
        const res = await expectStatus('POST', `/api/hubs/${hub}/:generateToken?api-version=2024-01-01`, 200);
        const { token } = res.json();
        const claims = payloadOf(token);
        assert.equal(claims.exp - claims.iat, 3600);
        assert.equal(claims.nameid, undefined);
        await client(hub, undefined, { token });
        const other = await fetch(`${server.endpoint}/client/negotiate?hub=elsewhere&negotiateVersion=1`,
            { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
        assert.equal(other.status, 401);
    });

    it('is not part of 2022-06-01 (404), refuses a bad minutesToExpire (400) and needs a REST token (401)', async () => {
        await expectStatus('POST', `/api/hubs/${hub}/:generateToken${v2022()}`, 404);
        for (const m of ['0', '-5', 'soon', '525601']) {
            const res = await expectStatus('POST', `/api/hubs/${hub}/:generateToken?api-version=2023-07-01&minutesToExpire=${m}`, 400);
            assert.equal(res.headers['x-ms-error-code'], 'Error.InvalidArgument');
        }
        await expectStatus('POST', `/api/hubs/${hub}/:generateToken?api-version=2023-07-01`, 401, { token: null });
    });
});

describe('request bodies', () => {
    const hub = 'restbody';

    it('a body without target answers 400 (v1 and 2022-06-01)', async () => {
        await expectStatus('POST', `/api/v1/hubs/${hub}`, 400, { json: { arguments: [1] } });
        await expectStatus('POST', `/api/hubs/${hub}/:send${v2022()}`, 400, { json: { arguments: [1] } });
        await expectStatus('POST', `/api/v1/hubs/${hub}/users/u`, 400, { json: {} });
    });

    it('a body that is not JSON answers 400', async () => {
        await expectStatus('POST', `/api/v1/hubs/${hub}`, 400, { body: '{"target":"m","arguments":[', contentType: 'application/json' });
        await expectStatus('POST', `/api/hubs/${hub}/:send${v2022()}`, 400, { body: 'not json', contentType: 'application/json' });
    });

    it('a body just under 1 MB is accepted (202)', async () => {
        const filler = 'x'.repeat(1000 * 1000);
        await expectStatus('POST', `/api/v1/hubs/${hub}`, 202, { json: { target: 'm', arguments: [filler] } });
    });

    it('a body over 1 MB answers 413', async () => {
        const path = `/api/v1/hubs/${hub}`;
        const body = Buffer.from(JSON.stringify({ target: 'm', arguments: ['y'.repeat(1100 * 1000)] }));
        const token = restToken(`${server.endpoint}${path}`, { key: server.accessKey });
        const res = await rawHttp(server.port,
            `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body);
        assert.equal(res.status, 413, describeRaw(res));
    });

    it('SWITCHBOARD_MAX_REST_BODY_BYTES lowers the body limit', async () => {
        const small = await startServer({ mode: 'serverless', env: { SWITCHBOARD_MAX_REST_BODY_BYTES: '2048' } });
        try {
            const smallApi = rest(small);
            const ok = await smallApi.post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: ['a'.repeat(1000)] } });
            assert.equal(ok.status, 202, describeResponse(ok));
            const big = await smallApi.post(`/api/v1/hubs/${hub}`, { json: { target: 'm', arguments: ['a'.repeat(4096)] } });
            assert.equal(big.status, 413, describeResponse(big));
        } finally {
            await small.stop();
        }
    });
});

describe('REST authentication', () => {
    const hub = 'restauth';
    const path = `/api/v1/hubs/${hub}`;
    const body = { json: { target: 'm', arguments: [] } };

    it('a missing token answers 401', async () => {
        await expectStatus('POST', path, 401, { ...body, token: null });
    });

    it('a token signed with another key answers 401', async () => {
        const token = restToken(`${server.endpoint}${path}`, { key: randomAccessKey() });
        await expectStatus('POST', path, 401, { ...body, token });
    });

    it('an expired token answers 401', async () => {
        const token = restToken(`${server.endpoint}${path}`, { key: server.accessKey, ttl: -3600 });
        await expectStatus('POST', path, 401, { ...body, token });
    });

    it('a token for another URL answers 401 naming both audiences', async () => {
        const aud = `${server.endpoint}/api/v1/hubs/otherhub`;
        const token = restToken(aud, { key: server.accessKey });
        const res = await expectStatus('POST', path, 401, { ...body, token });
        assert.ok(res.text.includes('Failed to validate audience. Expected Audiences: '), res.text);
        assert.ok(res.text.includes(`. Actual Audiences: ${aud}`), res.text);
    });

    it('a client-endpoint token is not a REST token (401)', async () => {
        const token = server.clientToken(hub, { user: 'x' });
        await expectStatus('POST', path, 401, { ...body, token });
    });

    it('the Management SDK audience form (with ?api-version, without port) is accepted', async () => {
        const p = `/api/hubs/${hub}/:send`;
        const withQuery = restToken(`${server.endpoint}${p}?api-version=2022-06-01`, { key: server.accessKey });
        await expectStatus('POST', `${p}${v2022()}`, 202, { ...body, token: withQuery });
        const noPort = restToken(`http://127.0.0.1${p}?api-version=2022-06-01`, { key: server.accessKey });
        await expectStatus('POST', `${p}${v2022()}`, 202, { ...body, token: noPort });
    });

    it('alg none answers 401', async () => {
        const now = Math.floor(Date.now() / 1000);
        const token = signJwt({ aud: `${server.endpoint}${path}`, exp: now + 600 }, server.accessKey, { alg: 'none' });
        await expectStatus('POST', path, 401, { ...body, token });
    });
});
