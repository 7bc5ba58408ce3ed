// statefulreconnect.test.mjs - a client that asks for stateful reconnect.
//
// Switchboard does not offer stateful reconnect: negotiate never answers
// useStatefulReconnect, which the transport protocol defines as declining it.
// The official client must then connect normally (handshake version 1, no
// Ack/Sequence traffic) and receive messages as usual.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import signalR from '@microsoft/signalr';
import { startServer } from './lib/server.mjs';
import { rest } from './lib/rest.mjs';
import { withTimeout } from './lib/util.mjs';

test('a client asking for stateful reconnect is told it is not offered and works normally', async () => {
    const server = await startServer({ mode: 'serverless' });
    try {
        // negotiate with useStatefulReconnect=true: the response must not offer it
        const res = await fetch(`${server.endpoint}/client/negotiate?hub=chat&negotiateVersion=1&useStatefulReconnect=true`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${server.clientToken('chat', { user: 'sr' })}` },
        });
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.equal(body.useStatefulReconnect, undefined, 'stateful reconnect must not be offered');
        assert.equal(body.negotiateVersion, 1);

        const conn = new signalR.HubConnectionBuilder()
            .withUrl(`${server.endpoint}/client/?hub=chat`, {
                transport: signalR.HttpTransportType.WebSockets,
                accessTokenFactory: () => server.clientToken('chat', { user: 'sr' }),
            })
            .withStatefulReconnect()
            .configureLogging(signalR.LogLevel.None)
            .build();
        const got = new Promise((resolve) => conn.on('m', (...args) => resolve(args)));
        await withTimeout(conn.start(), 5000, 'start with stateful reconnect requested');
        const r = await rest(server).post('/api/v1/hubs/chat', { json: { target: 'm', arguments: ['hello', 1] } });
        assert.equal(r.status, 202);
        assert.deepEqual(await withTimeout(got, 3000, 'the broadcast'), ['hello', 1]);
        await conn.stop();
        server.assertHealthy();
    } finally {
        await server.stop();
    }
});
