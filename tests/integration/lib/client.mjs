// client.mjs - the official @microsoft/signalr client, wrapped for assertions.
//
// Tests must see what a real application sees, so the connection is built the
// way Azure's documentation builds it: HubConnectionBuilder().withUrl(url,
// {transport, accessTokenFactory}) with the JSON or MessagePack protocol.  The
// wrapper only records: every invocation the client receives (including ones
// for targets nobody registered, which the client merely logs), the onclose
// error, and the client's own log lines for failure messages.

import signalR from '@microsoft/signalr';
import msgpack from '@microsoft/signalr-protocol-msgpack';
import { deferred, waitFor, withTimeout } from './util.mjs';

const { HubConnectionBuilder, HttpTransportType, LogLevel } = signalR;
const { MessagePackHubProtocol } = msgpack;

export { signalR, HttpTransportType, MessagePackHubProtocol };

const START_TIMEOUT_MS = 5000;
const UNHANDLED_TARGET = /No client method with the name '(.+)' found\./;

// Records the client's log; picks up invocations of unregistered targets.
class RecordingLogger {
    constructor(sink) {
        this.sink = sink;
        this.lines = [];
        this.echo = process.env.SWITCHBOARD_TEST_CLIENT_LOG === '1';
    }
    log(level, message) {
        const line = `[${LogLevel[level]}] ${message}`;
        this.lines.push(line);
        if (this.lines.length > 200) this.lines.shift();
        if (this.echo) process.stderr.write(`[client] ${line}\n`);
        const m = UNHANDLED_TARGET.exec(message);
        if (m) this.sink({ target: m[1], args: undefined, unhandled: true });
    }
}

/*
 * connectClient(server, opts) -> started client wrapper.
 * opts: hub, user (nameid), transport ('WebSockets'|'ServerSentEvents'|'LongPolling'),
 * protocol ('json'|'messagepack'), targets (handler names to register),
 * url (two-step flow through an app server: no token factory), token (fixed access token; null for none),
 * keepAliveMs (client ping interval).
 */
export async function connectClient(server, opts = {}) {
    const c = buildClient(server, opts);
    await c.start();
    return c;
}

export function buildClient(server, {
    hub = 'chat', user, transport = 'WebSockets', protocol = 'json', targets = ['m', 'ctl'],
    url, token, keepAliveMs,
} = {}) {
    const messages = [];
    const record = (msg) => messages.push({ ...msg, at: Date.now() });
    const logger = new RecordingLogger(record);
    const options = { transport: HttpTransportType[transport] };
    // token: a fixed token; null: no token at all; undefined: a valid token for hub and user.
    if (!url && token !== null) options.accessTokenFactory = () => token ?? server.clientToken(hub, { user });
    let builder = new HubConnectionBuilder()
        .withUrl(url ?? `${server.endpoint}/client/?hub=${hub}`, options)
        .configureLogging(logger);
    if (protocol === 'messagepack') builder = builder.withHubProtocol(new MessagePackHubProtocol());
    const conn = builder.build();
    if (keepAliveMs) conn.keepAliveIntervalInMilliseconds = keepAliveMs;
    for (const target of targets) conn.on(target, (...args) => record({ target, args }));

    const closed = deferred();
    let closeError;
    let isClosed = false;
    conn.onclose((error) => {
        isClosed = true;
        closeError = error;
        closed.resolve(error);
    });

    const wrapper = {
        conn,
        messages,
        logger,
        closed: closed.promise,
        get isClosed() { return isClosed; },
        get closeError() { return closeError; },
        get connectionId() { return conn.connectionId; },
        describe: () => `${transport}/${protocol} client ${conn.connectionId ?? '(not connected)'}`,

        async start() {
            try {
                await withTimeout(conn.start(), START_TIMEOUT_MS, `${transport}/${protocol} client start()`);
            } catch (err) {
                err.message += `\nclient log:\n${logger.lines.slice(-15).join('\n')}`;
                throw err;
            }
        },

        // Waits for an invocation of target whose arguments satisfy match (default: any).
        async waitMessage(target, match = () => true, ms = 3000) {
            const lower = target.toLowerCase();
            return waitFor(
                () => messages.find((m) => m.target.toLowerCase() === lower && match(m.args)),
                ms,
                `'${target}' on the ${wrapper.describe()} (received so far: ${JSON.stringify(messages.map((m) => m.target))})`,
            );
        },

        received: (target) => messages.filter((m) => m.target.toLowerCase() === target.toLowerCase()),

        async waitClosed(ms = 3000) {
            return withTimeout(closed.promise, ms, `onclose of the ${wrapper.describe()}`);
        },

        // Best effort: a test's teardown must not hang on a client the server already dropped.
        async stop() {
            if (isClosed) return;
            try {
                await withTimeout(conn.stop(), 3000, 'client stop()');
            } catch {
                // the transport may already be gone; nothing more to release
            }
        },
    };
    return wrapper;
}

// Stops every client in list, ignoring failures.
export async function stopAll(list) {
    await Promise.all(list.filter(Boolean).map((c) => c.stop()));
}

// A test's teardown: its clients (the array is emptied), then its server, which must have stayed healthy (no
// crash, no sanitizer report) and must stop cleanly.  The caller clears its own reference to the server first.
export async function stopClientsAndServer(clients, server) {
    await stopAll(clients.splice(0));
    if (server) {
        server.assertHealthy();
        await server.stop();
    }
}
