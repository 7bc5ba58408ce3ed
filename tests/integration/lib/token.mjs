// token.mjs - HS256 JSON Web Tokens for the tests, written with node:crypto only.
//
// Deliberately independent of the service's own JWT code: if both shared an
// implementation, a bug in it would sign and accept the same wrong tokens and
// every test would still pass.  The rules are Azure SignalR's: the HMAC key is
// the UTF-8 bytes of the access key as written (not base64-decoded), `aud` is
// the URL being called, `exp` is in seconds.

import { createHmac } from 'node:crypto';

const b64url = (data) => Buffer.from(data).toString('base64url');

// Signs payload with key; header fields can be overridden (e.g. {alg:'none'}).
export function signJwt(payload, key, header = {}) {
    const head = { alg: 'HS256', typ: 'JWT', ...header };
    const signingInput = `${b64url(JSON.stringify(head))}.${b64url(JSON.stringify(payload))}`;
    if (head.alg === 'none') return `${signingInput}.`;
    const digest = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[head.alg];
    if (!digest) throw new Error(`signJwt: unsupported alg ${head.alg}`);
    const signature = createHmac(digest, Buffer.from(key, 'utf8')).update(signingInput).digest('base64url');
    return `${signingInput}.${signature}`;
}

const now = () => Math.floor(Date.now() / 1000);

// Claims for aud with the standard lifetime fields; ttl in seconds (negative = already expired).
function claimsFor(aud, { user, ttl = 3600, claims = {} }) {
    const iat = now();
    const payload = { aud, iat, nbf: iat, exp: iat + ttl };
    if (user !== undefined) payload.nameid = user;
    return { ...payload, ...claims };
}

// Token for the client endpoint of hub, as an app server would issue it.
export function clientToken(endpoint, hub, { key, user, ttl, claims, header } = {}) {
    if (!key) throw new Error('clientToken: key is required');
    return signJwt(claimsFor(`${endpoint}/client/?hub=${hub}`, { user, ttl, claims }), key, header);
}

// Token for one data-plane REST call; url is the request URL without its query.
export function restToken(url, { key, ttl, claims, header } = {}) {
    if (!key) throw new Error('restToken: key is required');
    return signJwt(claimsFor(url, { ttl, claims }), key, header);
}
