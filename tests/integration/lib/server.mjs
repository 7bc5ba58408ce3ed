// server.mjs - starts and stops the real switchboard binary for a test.
//
// Each server gets a loopback port chosen by the kernel, a fresh data
// directory and a random access key, so tests never collide and never depend
// on machine state.  The service announces itself with its connection string
// on stdout; that line is the only readiness signal we trust.
//
// Invariants enforced at teardown (stop()): the process exits on SIGTERM
// within 5 s with status 0, and its stderr holds no sanitizer report.  A
// server that died during a test fails that test's teardown rather than
// letting later tests run against nothing.
//
// Output is always drained (a full pipe would block the service) and kept,
// capped, for failure messages.  SWITCHBOARD_TEST_VERBOSE=1 echoes it live.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientToken, restToken } from './token.mjs';
import { deferred, withTimeout } from './util.mjs';

const READY_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 5000;
const OUTPUT_CAP = 1 << 20;
const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'];
const CONNECTION_STRING = /Endpoint=(http:\/\/127\.0\.0\.1:(\d+));AccessKey=([^;\s]+);Version=1\.0;/;

const running = new Set();
// Last resort if a test file dies without its teardown: never leave a service behind.
process.on('exit', () => {
    for (const proc of running) proc.kill('SIGKILL');
});

export function binaryPath() {
    const bin = process.env.SWITCHBOARD_BIN;
    if (!bin) throw new Error('SWITCHBOARD_BIN is not set (absolute path of the switchboard binary)');
    return bin;
}

// 32 random bytes as base64url: 43 characters, like an Azure access key's length.
export function randomAccessKey() {
    return randomBytes(32).toString('base64url');
}

function tail(text, lines = 40) {
    return text.split('\n').slice(-lines).join('\n');
}

// Returns the sanitizer report lines in text (empty when clean).
export function sanitizerFindings(text) {
    return text.split('\n').filter((line) => SANITIZER_MARKS.some((mark) => line.includes(mark)));
}

/*
 * startServer({mode, env, args}) -> {endpoint, port, accessKey, dataDir, proc, stop(), ...}
 * mode: 'serverless' (default) passes --mode serverless; 'default' or null passes no --mode flag.
 * env: extra environment, typically SWITCHBOARD_<KEY> configuration overrides.
 */
export async function startServer({ mode = 'serverless', env = {}, args = [] } = {}) {
    const accessKey = randomAccessKey();
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-it-'));
    const argv = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--access-key', accessKey];
    if (mode && mode !== 'default') argv.push('--mode', mode);
    argv.push(...args);

    const proc = spawn(binaryPath(), argv, {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(proc);
    const verbose = process.env.SWITCHBOARD_TEST_VERBOSE === '1';
    let stdout = '';
    let stderr = '';
    const ready = deferred();
    const exited = deferred();
    let exitStatus = null;

    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
        if (verbose) process.stderr.write(`[sb out] ${chunk}`);
        if (stdout.length < OUTPUT_CAP) stdout += chunk;
        const match = CONNECTION_STRING.exec(stdout);
        if (match) ready.resolve(match);
    });
    proc.stderr.on('data', (chunk) => {
        if (verbose) process.stderr.write(`[sb err] ${chunk}`);
        // Keep the head (startup) and everything until the cap; sanitizer reports come last, so keep the tail too.
        stderr = stderr.length < OUTPUT_CAP ? stderr + chunk : stderr.slice(0, OUTPUT_CAP / 2) + stderr.slice(-OUTPUT_CAP / 2) + chunk;
    });
    proc.on('error', (err) => ready.reject(new Error(`cannot start ${binaryPath()}: ${err.message}`)));
    proc.on('exit', (code, signal) => {
        running.delete(proc);
        exitStatus = { code, signal };
        exited.resolve(exitStatus);
        ready.reject(
            new Error(`switchboard exited (code ${code}, signal ${signal}) before printing its connection string\n` +
                `argv: ${argv.join(' ')}\nstdout:\n${tail(stdout)}\nstderr:\n${tail(stderr)}`),
        );
    });

    let match;
    try {
        match = await withTimeout(ready.promise, READY_TIMEOUT_MS, 'the connection string on stdout');
    } catch (err) {
        proc.kill('SIGKILL');
        rmSync(dataDir, { recursive: true, force: true });
        err.message += `\nstdout so far:\n${tail(stdout)}\nstderr so far:\n${tail(stderr)}`;
        throw err;
    }
    const [, endpoint, port, printedKey] = match;
    if (printedKey !== accessKey) {
        proc.kill('SIGKILL');
        throw new Error(`connection string carries AccessKey ${printedKey}, expected the --access-key ${accessKey}`);
    }

    const server = {
        endpoint,
        port: Number(port),
        accessKey,
        dataDir,
        proc,
        mode,
        exited: exited.promise,
        get stdout() { return stdout; },
        get stderr() { return stderr; },
        get alive() { return exitStatus === null; },
        clientToken: (hub, opts = {}) => clientToken(endpoint, hub, { key: accessKey, ...opts }),
        restToken: (url, opts = {}) => restToken(url, { key: accessKey, ...opts }),

        // Throws when the service died or reported a sanitizer finding; for afterEach hooks.
        assertHealthy() {
            const findings = sanitizerFindings(stderr);
            if (findings.length) throw new Error(`sanitizer report in switchboard stderr:\n${findings.join('\n')}\n${tail(stderr, 60)}`);
            if (exitStatus) throw new Error(`switchboard died during the test (code ${exitStatus.code}, signal ${exitStatus.signal})\nstderr:\n${tail(stderr)}`);
        },

        // SIGTERM, then assert a clean exit (status 0, no sanitizer report).  Idempotent.
        async stop() {
            if (server.stopped) return server.stopped;
            server.stopped = (async () => {
                const diedEarly = exitStatus;
                if (!diedEarly) proc.kill('SIGTERM');
                let status;
                try {
                    status = await withTimeout(exited.promise, STOP_TIMEOUT_MS, 'switchboard to exit after SIGTERM');
                } catch (err) {
                    proc.kill('SIGKILL');
                    throw new Error(`${err.message}\nstderr:\n${tail(stderr)}`);
                }
                const findings = sanitizerFindings(stderr);
                if (findings.length) throw new Error(`sanitizer report in switchboard stderr:\n${findings.join('\n')}\n${tail(stderr, 60)}`);
                if (diedEarly) throw new Error(`switchboard had already exited before stop() (code ${status.code}, signal ${status.signal})\nstderr:\n${tail(stderr)}`);
                if (status.code !== 0 || status.signal !== null) {
                    throw new Error(`switchboard exited with code ${status.code}, signal ${status.signal} after SIGTERM (expected 0)\nstderr:\n${tail(stderr)}`);
                }
                if (process.env.SWITCHBOARD_TEST_KEEP !== '1') rmSync(dataDir, { recursive: true, force: true });
                return status;
            })();
            return server.stopped;
        },
    };
    return server;
}
