// appserver.mjs - starts and stops the reference app server (build/switchboard-appserver)
// against a running switchboard, for default-mode tests.
//
// The app server is what an ASP.NET Core app with the Azure SignalR SDK would
// be: it opens server connections to the service's /server/ endpoint per hub
// and answers POST /{hub}/negotiate with a redirect to the service.  It
// announces itself with exactly one stdout line once its negotiate listener
// is up and every hub has a handshaken server connection; that line is the
// only readiness signal trusted here.
//
// Invariants enforced at teardown (stop()): exit on SIGTERM within 5 s with
// status 0, exactly one line on stdout, no sanitizer report on stderr.  An app
// server a test killed on purpose (kill()) is exempt from the exit status, not
// from the sanitizer check.  Output is always drained and kept, capped, for
// failure messages; SWITCHBOARD_TEST_VERBOSE=1 echoes it live.
//
// Not here: anything about the service itself (server.mjs) or the clients
// (client.mjs); this file only owns the app-server process.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sanitizerFindings } from './server.mjs';
import { deferred, withTimeout } from './util.mjs';

const READY_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 5000;
const OUTPUT_CAP = 1 << 20;
const READY_LINE = /^appserver: listening on (http:\/\/127\.0\.0\.1:(\d+))$/m;

const running = new Set();
// Last resort if a test file dies without its teardown: never leave an app server behind.
process.on('exit', () => {
    for (const proc of running) proc.kill('SIGKILL');
});

// Absolute path of the app server binary: $SWITCHBOARD_APPSERVER, else the repository's build/.
export function appServerPath() {
    return process.env.SWITCHBOARD_APPSERVER ||
        fileURLToPath(new URL('../../../build/switchboard-appserver', import.meta.url));
}

function tail(text, lines = 40) {
    return text.split('\n').slice(-lines).join('\n');
}

/*
 * startAppServer(server, {hubs, connections, log, serverId}) -> started app server.
 * server: a startServer() result (its endpoint and access key form the connection string).
 * hubs: hub names (default ['chat']); connections: server connections per hub (default: the binary's);
 * log: true for a fresh log file in a temp directory, or a path; serverId: --server-id.
 * Result: {url, port, logPath, proc, clientUrl(hub, user, {diag}), readLog(), stop(), kill(), ...}
 */
export async function startAppServer(server, { hubs = ['chat'], connections, log, serverId } = {}) {
    const bin = appServerPath();
    if (!existsSync(bin)) throw new Error(`app server binary ${bin} does not exist (set SWITCHBOARD_APPSERVER)`);
    const connectionString = `Endpoint=${server.endpoint};AccessKey=${server.accessKey};Version=1.0;`;
    const argv = ['--connection-string', connectionString, '--listen', '127.0.0.1:0'];
    for (const hub of hubs) argv.push('--hub', hub);
    if (connections !== undefined) argv.push('--connections', String(connections));
    let logDir = null;
    let logPath = null;
    if (log === true) {
        logDir = mkdtempSync(join(tmpdir(), 'sb-app-'));
        logPath = join(logDir, 'appserver.log');
    } else if (typeof log === 'string') {
        logPath = log;
    }
    if (logPath) argv.push('--log', logPath);
    if (serverId) argv.push('--server-id', serverId);

    const proc = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(proc);
    const verbose = process.env.SWITCHBOARD_TEST_VERBOSE === '1';
    let stdout = '';
    let stderr = '';
    let exitStatus = null;
    let killed = false;
    const ready = deferred();
    const exited = deferred();

    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
        if (verbose) process.stderr.write(`[app out] ${chunk}`);
        if (stdout.length < OUTPUT_CAP) stdout += chunk;
        const match = READY_LINE.exec(stdout);
        if (match) ready.resolve(match);
    });
    proc.stderr.on('data', (chunk) => {
        if (verbose) process.stderr.write(`[app err] ${chunk}`);
        // Sanitizer reports come last: keep the head and the tail once over the cap.
        stderr = stderr.length < OUTPUT_CAP ? stderr + chunk : stderr.slice(0, OUTPUT_CAP / 2) + stderr.slice(-OUTPUT_CAP / 2) + chunk;
    });
    proc.on('error', (err) => ready.reject(new Error(`cannot start ${bin}: ${err.message}`)));
    proc.on('exit', (code, signal) => {
        running.delete(proc);
        exitStatus = { code, signal };
        exited.resolve(exitStatus);
        ready.reject(new Error(`switchboard-appserver exited (code ${code}, signal ${signal}) before its readiness line\n` +
            `stdout:\n${tail(stdout)}\nstderr:\n${tail(stderr)}`));
    });

    let match;
    try {
        match = await withTimeout(ready.promise, READY_TIMEOUT_MS, 'the app server readiness line on stdout');
    } catch (err) {
        proc.kill('SIGKILL');
        if (logDir) rmSync(logDir, { recursive: true, force: true });
        err.message += `\nargv: ${argv.join(' ')}\nstdout so far:\n${tail(stdout)}\nstderr so far:\n${tail(stderr)}`;
        throw err;
    }
    const [, url, port] = match;

    const sanitizerCheck = () => {
        const findings = sanitizerFindings(stderr);
        if (findings.length) throw new Error(`sanitizer report in switchboard-appserver stderr:\n${findings.join('\n')}\n${tail(stderr, 60)}`);
    };

    const app = {
        url,
        port: Number(port),
        logPath,
        proc,
        exited: exited.promise,
        get stdout() { return stdout; },
        get stderr() { return stderr; },
        get alive() { return exitStatus === null; },

        // The URL an official client is built with (no token factory: negotiate redirects it).
        clientUrl(hub = 'chat', user, { diag = false } = {}) {
            const q = [];
            if (user !== undefined) q.push(`user=${encodeURIComponent(user)}`);
            if (diag) q.push('diag=yes');
            return `${url}/${hub}${q.length ? `?${q.join('&')}` : ''}`;
        },

        // The messaging log so far, as lines without their timestamps ('' without --log).
        readLog() {
            if (!logPath || !existsSync(logPath)) return [];
            return readFileSync(logPath, 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^\S+ /, ''));
        },

        // SIGKILL, for tests of a crashing app server; waits for the exit.
        async kill() {
            killed = true;
            if (exitStatus === null) proc.kill('SIGKILL');
            await withTimeout(exited.promise, STOP_TIMEOUT_MS, 'switchboard-appserver to die after SIGKILL');
        },

        // SIGTERM, then assert a clean exit (status 0, one stdout line, no sanitizer report).  Idempotent.
        async stop() {
            if (app.stopped) return app.stopped;
            app.stopped = (async () => {
                const diedEarly = exitStatus;
                if (!diedEarly) proc.kill('SIGTERM');
                let status;
                try {
                    status = await withTimeout(exited.promise, STOP_TIMEOUT_MS, 'switchboard-appserver to exit after SIGTERM');
                } catch (err) {
                    proc.kill('SIGKILL');
                    throw new Error(`${err.message}\nstderr:\n${tail(stderr)}`);
                }
                sanitizerCheck();
                const cleanUp = () => {
                    if (logDir && process.env.SWITCHBOARD_TEST_KEEP !== '1') rmSync(logDir, { recursive: true, force: true });
                };
                if (killed) {
                    cleanUp();
                    return status;
                }
                if (diedEarly) {
                    throw new Error(`switchboard-appserver had already exited before stop() (code ${status.code}, signal ${status.signal})\nstderr:\n${tail(stderr)}`);
                }
                if (status.code !== 0 || status.signal !== null) {
                    throw new Error(`switchboard-appserver exited with code ${status.code}, signal ${status.signal} after SIGTERM (expected 0)\nstderr:\n${tail(stderr)}`);
                }
                const lines = stdout.split('\n').filter(Boolean);
                if (lines.length !== 1) throw new Error(`switchboard-appserver printed ${lines.length} stdout lines, expected exactly one:\n${tail(stdout)}`);
                cleanUp();
                return status;
            })();
            return app.stopped;
        },
    };
    return app;
}
