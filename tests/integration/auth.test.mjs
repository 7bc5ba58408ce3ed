// auth.test.mjs - authentication of the client endpoint.
//
// Each rejected token is checked twice: the raw negotiate answer (status and
// the text a developer would read) and the official client, whose start()
// must reject without ever producing a connection the service knows about.
// The request-level checks (duplicate hub parameter, unknown connection id,
// token re-presented on the connect request) follow.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomAccessKey, startServer } from './lib/server.mjs';
import { buildClient, connectClient } from './lib/client.mjs';
import { rest, describeResponse } from './lib/rest.mjs';
import { negotiate } from './lib/hub.mjs';
import { describeRaw, rawHttp, rawWebSocket } from './lib/raw.mjs';
import { clientToken, signJwt } from './lib/token.mjs';
import { settle, uniq } from './lib/util.mjs';

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

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// The official client with a fixed token must fail to start, and the user must never appear.
async function assertClientRejected(token, hub, user, statusText) {
    const c = buildClient(server, { hub, user, token, transport: 'WebSockets' });
    const outcome = await settle(c.start());
    assert.equal(outcome.ok, false, 'start() must reject with a bad token');
    assert.ok(outcome.error.message.includes(statusText),
        `start() error should mention ${statusText}: ${outcome.error.message.split('\n')[0]}`);
    assert.notEqual(c.conn.state, 'Connected');
    const res = await api.get(`/api/v1/hubs/${hub}/users/${user}`);
    assert.equal(res.status, 404, `no connection may exist for ${user}: ${describeResponse(res)}`);
}

describe('negotiate rejects bad tokens', () => {
    const hub = 'authhub';

    it('no token: 401 saying no access token was provided', async () => {
        const res = await negotiate(server, hub, { token: null });
        assert.equal(res.status, 401, res.text);
        assert.match(res.text, /access token/i);
        const c = buildClient(server, { hub, transport: 'WebSockets', token: null });
        const outcome = await settle(c.start());
        assert.equal(outcome.ok, false, 'start() without a token must reject');
        assert.match(outcome.error.message, /401/);
    });

    it('expired token: 401 "The token is expired."', async () => {
        const user = uniq('expired');
        const token = server.clientToken(hub, { user, ttl: -3600 });
        const res = await negotiate(server, hub, { token });
        assert.equal(res.status, 401, res.text);
        assert.ok(res.text.includes('The token is expired.'), res.text);
        await assertClientRejected(token, hub, user, '401');
    });

    it('token signed with another key: 401 "The signature is invalid."', async () => {
        const user = uniq('forged');
        const token = clientToken(server.endpoint, hub, { key: randomAccessKey(), user });
        const res = await negotiate(server, hub, { token });
        assert.equal(res.status, 401, res.text);
        assert.ok(res.text.includes('The signature is invalid.'), res.text);
        await assertClientRejected(token, hub, user, '401');
    });

    it('alg none: 401 "The algorithm \'none\' is not allowed."', async () => {
        const user = uniq('none');
        const now = Math.floor(Date.now() / 1000);
        const token = signJwt({ aud: `${server.endpoint}/client/?hub=${hub}`, exp: now + 600, nameid: user },
            server.accessKey, { alg: 'none' });
        const res = await negotiate(server, hub, { token });
        assert.equal(res.status, 401, res.text);
        assert.ok(res.text.includes("The algorithm 'none' is not allowed."), res.text);
        await assertClientRejected(token, hub, user, '401');
    });

    it('a token that is not a JWT: 401', async () => {
        const res = await negotiate(server, hub, { token: 'definitely.not-a.jwt' });
        assert.equal(res.status, 401, res.text);
        assert.ok(res.text.length > 0, 'the 401 says why');
    });

    it('wrong audience: 401 "Failed to validate audience. Expected Audiences: ... Actual Audiences: <aud>"', async () => {
        const user = uniq('aud');
        const aud = `${server.endpoint}/client/?hub=someotherhub`;
        const now = Math.floor(Date.now() / 1000);
        const token = signJwt({ aud, exp: now + 600, nameid: user }, server.accessKey);
        const res = await negotiate(server, hub, { token });
        assert.equal(res.status, 401, res.text);
        assert.match(res.text, new RegExp(`Failed to validate audience\\. Expected Audiences: .+\\. Actual Audiences: ${escapeRe(aud)}`));
        assert.ok(res.text.includes(`/client/?hub=${hub}`), `the expected audience names hub ${hub}: ${res.text}`);
        await assertClientRejected(token, hub, user, '401');
    });

    it('a token over 4 KB: 413', async () => {
        const user = uniq('big');
        const token = server.clientToken(hub, { user, claims: { pad: 'p'.repeat(5000) } });
        assert.ok(token.length > 4096);
        const res = await negotiate(server, hub, { token });
        assert.equal(res.status, 413, res.text);
        assert.ok(res.text.includes('The token is too large.'), res.text);
        await assertClientRejected(token, hub, user, '413');
    });

    it('the audience without the port (Azure SDK form) is accepted', async () => {
        const now = Math.floor(Date.now() / 1000);
        const token = signJwt({ aud: `http://127.0.0.1/client/?hub=${hub}`, exp: now + 600 }, server.accessKey);
        const res = await negotiate(server, hub, { token });
        assert.equal(res.status, 200, res.text);
        assert.ok(res.json.connectionToken);
    });
});

describe('client endpoint request checks', () => {
    const hub = 'authreq';

    it('two hub query parameters: 400', async () => {
        const res = await negotiate(server, hub, { query: `hub=${hub}&hub=other&negotiateVersion=1` });
        assert.equal(res.status, 400, res.text);
    });

    it('connect with a valid token and an unknown id: 404 (long-polling GET and WebSocket upgrade)', async () => {
        const token = server.clientToken(hub, { user: 'u' });
        const res = await rawHttp(server.port,
            `GET /client/?hub=${hub}&id=UnknownConnectionToken HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`);
        assert.equal(res.status, 404, describeRaw(res));
        const upgrade = await settle(rawWebSocket(server.port, `/client/?hub=${hub}&id=UnknownConnectionToken`,
            { Authorization: `Bearer ${token}` }));
        assert.equal(upgrade.ok, false, 'the upgrade must be refused');
        assert.equal(upgrade.error.response?.status, 404, upgrade.error.message);
    });

    it('the connect request re-checks the token: negotiate with a good one, connect with an expired one -> 401', async () => {
        const neg = await negotiate(server, hub, { user: 'v' });
        assert.equal(neg.status, 200, neg.text);
        const expired = server.clientToken(hub, { user: 'v', ttl: -3600 });
        const res = await rawHttp(server.port,
            `GET /client/?hub=${hub}&id=${neg.json.connectionToken} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            `Authorization: Bearer ${expired}\r\n\r\n`);
        assert.equal(res.status, 401, describeRaw(res));
        const upgrade = await settle(rawWebSocket(server.port, `/client/?hub=${hub}&id=${neg.json.connectionToken}`, {}));
        assert.equal(upgrade.ok, false, 'a WebSocket without any token must be refused');
        assert.equal(upgrade.error.response?.status, 401, upgrade.error.message);
    });

    it('a token for another hub cannot connect to this hub', async () => {
        const c = buildClient(server, { hub, user: 'w', token: server.clientToken('anotherhub', { user: 'w' }) });
        const outcome = await settle(c.start());
        assert.equal(outcome.ok, false);
        assert.match(outcome.error.message, /401/);
    });

    it('a good token connects (control for the rejections above)', async () => {
        const c = await connectClient(server, { hub, user: 'ok' });
        try {
            assert.equal(c.conn.state, 'Connected');
            const res = await api.get(`/api/v1/hubs/${hub}/users/ok`);
            assert.equal(res.status, 200, describeResponse(res));
        } finally {
            await c.stop();
        }
    });
});
