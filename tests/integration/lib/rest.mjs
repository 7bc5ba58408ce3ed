// rest.mjs - a small client for the data-plane REST API.
//
// Built on node:http rather than fetch so a test sees exactly what the
// service answered: status, raw headers and body, also for HEAD and for
// responses the service sends before it has read the whole request body
// (413).  Each call opens its own connection (agent: false) so one bad
// response cannot poison the next test through a shared keep-alive socket.
//
// Authentication follows Azure's documented rule: a bearer JWT whose `aud`
// is the request URL without its query string.

import http from 'node:http';
import { restToken } from './token.mjs';
import { withTimeout } from './util.mjs';

const REQUEST_TIMEOUT_MS = 5000;

/*
 * rest(server).request(method, pathAndQuery, opts) -> {status, headers, text, json()}
 * opts.json: value to send as a JSON body; opts.body: raw string/Buffer body.
 * opts.token: bearer token to use (null = send no Authorization header);
 * by default a valid token whose aud is endpoint + path.
 */
export function rest(server) {
    const request = (method, pathAndQuery, { json, body, headers = {}, token, contentType } = {}) => {
        const path = pathAndQuery.split('?')[0];
        const bearer = token === undefined ? restToken(`${server.endpoint}${path}`, { key: server.accessKey }) : token;
        let payload = body;
        const hdrs = { ...headers };
        if (json !== undefined) {
            payload = JSON.stringify(json);
            hdrs['Content-Type'] = contentType ?? 'application/json; charset=utf-8';
        } else if (contentType) {
            hdrs['Content-Type'] = contentType;
        }
        if (bearer !== null) hdrs.Authorization = `Bearer ${bearer}`;
        if (payload !== undefined) hdrs['Content-Length'] = Buffer.byteLength(payload);
        else if (method !== 'GET' && method !== 'HEAD') hdrs['Content-Length'] = 0;

        const done = new Promise((resolve, reject) => {
            const req = http.request(
                { host: '127.0.0.1', port: server.port, method, path: pathAndQuery, headers: hdrs, agent: false },
                (res) => {
                    const chunks = [];
                    res.on('data', (c) => chunks.push(c));
                    res.on('end', () => {
                        const text = Buffer.concat(chunks).toString('utf8');
                        resolve({
                            status: res.statusCode,
                            headers: res.headers,
                            text,
                            json: () => JSON.parse(text),
                        });
                    });
                    res.on('error', reject);
                },
            );
            // The service may answer (413) and close before taking the whole body; the answer is what counts.
            req.on('error', (err) => reject(new Error(`${method} ${path}: ${err.message}`)));
            if (payload !== undefined) req.end(payload);
            else req.end();
        });
        return withTimeout(done, REQUEST_TIMEOUT_MS, `${method} ${path}`);
    };
    return {
        request,
        get: (p, o) => request('GET', p, o),
        head: (p, o) => request('HEAD', p, o),
        post: (p, o) => request('POST', p, o),
        put: (p, o) => request('PUT', p, o),
        del: (p, o) => request('DELETE', p, o),
    };
}

// Query string for the 2022-06-01 API, with optional extra parameters.
export function v2022(extra = '') {
    return `?api-version=2022-06-01${extra ? `&${extra}` : ''}`;
}

// Pretty one-line summary for assertion messages.
export function describeResponse(res) {
    return `${res.status} ${JSON.stringify(res.text.slice(0, 300))}`;
}
