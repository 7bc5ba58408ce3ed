// logs.mjs - resource logs as a user sees them: the ARM-shaped management
// API that turns them on, the archive files in the storage account, the rows
// of the Log Analytics workspace, and the Prometheus counters of the pipeline.
//
// Everything is read from where Azure puts it (the archive path laid out like
// the insights-logs-alllogs container, the SignalRServiceDiagnosticLogs table),
// never through the service's own code, so a wrong path, field or column fails
// a test.  The workspace is read with better-sqlite3 in read-only mode: the
// service writes it in WAL mode, so a reader never blocks the writer and sees
// every committed batch.
//
// Tracing ids are 64-bit: archive lines are parsed with messageTracingId kept
// as its decimal text (JSON.parse would round it), and workspace integers are
// read as BigInt and turned into the same text.
//
// Not here: starting services and clients (server.mjs, client.mjs, appserver.mjs).

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describeResponse, rest } from './rest.mjs';
import { waitFor } from './util.mjs';

const SUBSCRIPTION = '00000000-0000-0000-0000-000000000000';
export const RESOURCE_ID = `/subscriptions/${SUBSCRIPTION}/resourceGroups/default/providers/Microsoft.SignalRService/SignalR/switchboard`;
export const STORAGE_ID = `/subscriptions/${SUBSCRIPTION}/resourceGroups/default/providers/Microsoft.Storage/storageAccounts/local`;
export const WORKSPACE_ID = `/subscriptions/${SUBSCRIPTION}/resourceGroups/default/providers/Microsoft.OperationalInsights/workspaces/local`;
export const CONTAINER = 'insights-logs-alllogs';
export const TABLE = 'SignalRServiceDiagnosticLogs';
export const SETTINGS_API = '2021-05-01-preview';
export const RESOURCE_API = '2024-03-01';

/* ---------------------------------------------------------------------------
 * Management API.
 */

// Throws with the response when status is not one of ok.
function expectStatus(res, ok, what) {
    if (!ok.includes(res.status)) throw new Error(`${what}: expected ${ok.join('/')}, got ${describeResponse(res)}`);
    return res;
}

export function settingPath(name) {
    return `${RESOURCE_ID}/providers/Microsoft.Insights/diagnosticSettings/${encodeURIComponent(name)}`;
}

/*
 * mgmt(server): the diagnostic settings and log source settings of server's resource.
 * putSetting(name, {storage, workspace}) routes allLogs to the storage account and/or workspace "local";
 * setLogTypes({ConnectivityLogs: bool, MessagingLogs: bool, HttpRequestLogs: bool}) ticks/unticks types.
 */
export function mgmt(server) {
    const api = rest(server);
    return {
        async putSetting(name, { storage = true, workspace = true } = {}) {
            const properties = { logs: [{ categoryGroup: 'allLogs', enabled: true }] };
            if (storage) properties.storageAccountId = STORAGE_ID;
            if (workspace) properties.workspaceId = WORKSPACE_ID;
            const res = await api.put(`${settingPath(name)}?api-version=${SETTINGS_API}`, { json: { properties } });
            return expectStatus(res, [200, 201], `PUT diagnostic setting ${name}`).json();
        },
        async deleteSetting(name) {
            const res = await api.del(`${settingPath(name)}?api-version=${SETTINGS_API}`);
            return expectStatus(res, [200, 204], `DELETE diagnostic setting ${name}`);
        },
        async listSettings() {
            const res = await api.get(`${RESOURCE_ID}/providers/Microsoft.Insights/diagnosticSettings?api-version=${SETTINGS_API}`);
            return expectStatus(res, [200], 'GET diagnostic settings').json().value;
        },
        async setLogTypes(types) {
            const categories = Object.entries(types).map(([name, on]) => ({ name, enabled: on ? 'true' : 'false' }));
            const res = await api.request('PATCH', `${RESOURCE_ID}?api-version=${RESOURCE_API}`,
                { json: { properties: { resourceLogConfiguration: { categories } } } });
            return expectStatus(res, [200, 202], `PATCH log source settings ${JSON.stringify(types)}`).json();
        },
    };
}

/* ---------------------------------------------------------------------------
 * Archive (storage account "local").
 */

export function archiveRoot(dataDir, account = 'local') {
    return join(dataDir, 'storage', account, CONTAINER);
}

const pad = (n) => String(n).padStart(2, '0');

// The exact file Azure's layout gives the hour (UTC) of date.
export function archivePath(dataDir, date, account = 'local') {
    return join(archiveRoot(dataDir, account), `resourceId=${RESOURCE_ID.toUpperCase()}`,
        `y=${date.getUTCFullYear()}`, `m=${pad(date.getUTCMonth() + 1)}`, `d=${pad(date.getUTCDate())}`,
        `h=${pad(date.getUTCHours())}`, 'm=00', 'PT1H.json');
}

// Every regular file under dir, recursively.
function filesUnder(dir) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
    const out = [];
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, entry.name);
        if (entry.isDirectory()) out.push(...filesUnder(p));
        else out.push(p);
    }
    return out.sort();
}

// One archive line -> object; properties.messageTracingId stays decimal text.  Throws on anything but
// one compact JSON object.
export function parseArchiveLine(line) {
    const safe = line.replace(/"messageTracingId":(\d+)/, '"messageTracingId":"$1"');
    const value = JSON.parse(safe);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`archive line is not an object: ${line}`);
    return value;
}

/*
 * Every record in the storage account's container: [{...record, file}] in file then line order.
 * Also checks the framing every line must have: complete lines, each '\n'-terminated, no blank lines.
 */
export function readArchive(dataDir, account = 'local') {
    const out = [];
    for (const file of filesUnder(archiveRoot(dataDir, account))) {
        const text = readFileSync(file, 'utf8');
        if (text.length && !text.endsWith('\n')) {
            // A batch is appended with one write(); a reader may catch it mid-way only if that were not so.
            throw new Error(`${file} does not end with a newline: ${JSON.stringify(text.slice(-200))}`);
        }
        const lines = text.split('\n').slice(0, -1);
        lines.forEach((line, i) => {
            if (!line) throw new Error(`${file}:${i + 1} is blank`);
            let rec;
            try { rec = parseArchiveLine(line); } catch (err) { throw new Error(`${file}:${i + 1}: ${err.message}\n${line}`); }
            Object.defineProperty(rec, 'file', { value: file, enumerable: false });
            Object.defineProperty(rec, 'line', { value: line, enumerable: false });
            out.push(rec);
        });
    }
    return out;
}

// Waits until the archive holds records satisfying match, at least count of them; returns them all.
export async function waitArchive(dataDir, match, { count = 1, ms = 3000, what = 'archive records' } = {}) {
    let last = [];
    try {
        return await waitFor(() => {
            last = readArchive(dataDir).filter(match);
            return last.length >= count && last;
        }, ms, `${count} ${what}`);
    } catch (err) {
        err.message += ` (found ${last.length}: ${JSON.stringify(last.slice(0, 5))})`;
        throw err;
    }
}

/* ---------------------------------------------------------------------------
 * Workspace (Log Analytics "local": SQLite).
 */

export function workspacePath(dataDir, name = 'local') {
    return join(dataDir, 'workspaces', `${name}.db`);
}

// Integers as BigInt, then tracing ids as decimal text and the other integers as numbers.
function normalizeRow(row) {
    const out = {};
    for (const [k, v] of Object.entries(row)) {
        if (typeof v === 'bigint') out[k] = k === 'MessageTracingId' ? v.toString() : Number(v);
        else out[k] = v;
    }
    return out;
}

// Rows of SignalRServiceDiagnosticLogs matching an SQL condition (with ? params), in insertion order.
export function workspaceRows(dataDir, where = '1', params = [], name = 'local') {
    const path = workspacePath(dataDir, name);
    if (!existsSync(path)) return [];
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
        db.pragma('busy_timeout = 2000');
        const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(TABLE);
        if (!hasTable) return [];
        const stmt = db.prepare(`SELECT * FROM ${TABLE} WHERE ${where} ORDER BY rowid`).safeIntegers(true);
        return stmt.all(...params).map(normalizeRow);
    } finally {
        db.close();
    }
}

export async function waitWorkspace(dataDir, where, params, { count = 1, ms = 3000, what = 'workspace rows' } = {}) {
    let last = [];
    try {
        return await waitFor(() => {
            last = workspaceRows(dataDir, where, params);
            return last.length >= count && last;
        }, ms, `${count} ${what}`);
    } catch (err) {
        err.message += ` (found ${last.length}: ${JSON.stringify(last.slice(0, 5))})`;
        throw err;
    }
}

// The workspace columns an archive record must have produced (Log Analytics has '' for absent strings).
export function expectedRow(rec) {
    const p = rec.properties ?? {};
    const s = (v) => v ?? '';
    const row = {
        TimeGenerated: rec.time,
        Collection: s(p.collection),
        OperationName: rec.operationName,
        Location: rec.location,
        Level: rec.level,
        CallerIpAddress: s(rec.callerIpAddress),
        Message: s(p.message),
        UserId: s(p.userId),
        ConnectionId: s(p.connectionId),
        ConnectionType: s(p.connectionType),
        TransportType: s(p.transportType),
        HubName: s(p.hub),
        MessageTracingId: p.messageTracingId ?? null,
        MessageType: s(p.messageType),
        LogType: p.type,
        _ResourceId: rec.resourceId,
        Type: TABLE,
    };
    if (p.type === 'HttpRequestLogs') {
        Object.assign(row, { HttpMethod: s(p.httpMethod), Url: s(p.url), StatusCode: p.statusCode });
    }
    return row;
}

// The subset of row's columns that expectedRow() names.
export function pickColumns(row, like) {
    return Object.fromEntries(Object.keys(like).map((k) => [k, row[k]]));
}

/* ---------------------------------------------------------------------------
 * Prometheus.
 */

// GET /metrics -> Map('name' or 'name{labels}' -> number).
export async function metrics(server) {
    const res = await fetch(`${server.endpoint}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${text.slice(0, 200)}`);
    const out = new Map();
    for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const m = /^(\S+?(?:\{[^}]*\})?)\s+(\S+)$/.exec(line);
        if (m) out.set(m[1], Number(m[2]));
    }
    return out;
}

// A metric that must be present.
export function metric(map, key) {
    if (!map.has(key)) throw new Error(`/metrics has no ${key} (has: ${[...map.keys()].join(', ')})`);
    return map.get(key);
}
