/*
 * jwt.c - HS256/HS384/HS512 JSON Web Tokens, audience and user-id claims; see jwt.h.
 *
 * Owns: the compact serialization (three base64url segments), the HMAC
 * algorithm table, the order of verification checks, URL comparison for `aud`.
 * Called by client negotiate/connect and the REST API to authenticate a
 * request, and by token generation (CLI, REST generateToken).
 *
 * Invariants:
 *  - The length limit is checked before any byte of the token is read, so
 *    every later allocation is bounded by max_token_len.
 *  - The header is judged before the signature: a token with alg "none" and an
 *    empty signature is reported as "none", not as a bad signature.
 *  - The payload is parsed only after a signature matched, so unauthenticated
 *    input never reaches the claim checks.
 *  - Signatures are compared with CRYPTO_memcmp; a signature of the wrong
 *    length is simply a bad signature.
 *  - Every failure reason is a static string (safe to keep in log records).
 *
 * Not here: RS/ES algorithms, Entra ID tokens, `kid` lookup (Azure's kid is a
 * process-random hash of the key, so all configured keys are tried instead),
 * `iat`, `iss` (Azure does not validate them), and the claim renaming of
 * `asrs.u.*` (the hub layer does that when it passes claims on).
 */
#include "auth/jwt.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "util/base64.h"
#include "util/error.h"

typedef struct jwt_alg {
    const char *name;
    const EVP_MD *(*md)(void);
    const char *refused; /* reason when the algorithm is known but not allowed */
} jwt_alg;

static const jwt_alg jwt_algs[] = {
    {"HS256", EVP_sha256, "The algorithm 'HS256' is not allowed."},
    {"HS384", EVP_sha384, "The algorithm 'HS384' is not allowed."},
    {"HS512", EVP_sha512, "The algorithm 'HS512' is not allowed."},
};

static const char *const default_algs[] = {"HS256", "HS512"};

static const jwt_alg *find_alg(const char *name) {
    for (size_t i = 0; name && i < sizeof(jwt_algs) / sizeof(jwt_algs[0]); i++)
        if (strcmp(jwt_algs[i].name, name) == 0)
            return &jwt_algs[i];
    return NULL;
}

/*
 * Keyed HMAC states.  The one-shot HMAC() looks up the digest and MAC implementations and runs the key schedule on
 * every call; a token is verified on every negotiate, connect and REST request, always with one of a few keys.  So
 * each (algorithm, key) pair gets one keyed EVP_MAC_CTX, kept in a small table, and a call works on a duplicate of
 * it.  The table is shared by every thread (token generation can run off the loop) under one mutex held only for
 * the lookup and the duplication.  Entries live until the process ends or are replaced round robin once the table
 * is full (keys are rotated rarely); a copy of the key is kept to compare and is wiped when the entry goes.
 */
#define MAC_SLOTS 8

typedef struct mac_slot {
    const jwt_alg *alg;
    char *key;
    size_t key_len;
    EVP_MAC_CTX *ctx;
} mac_slot;

static pthread_mutex_t mac_mu = PTHREAD_MUTEX_INITIALIZER;
static EVP_MAC *hmac_impl;
static mac_slot mac_slots[MAC_SLOTS];
static unsigned mac_next;

/* A duplicate of the keyed state for (alg, key), or NULL.  Caller holds mac_mu. */
static EVP_MAC_CTX *keyed_dup(const jwt_alg *alg, const char *key, size_t key_len) {
    for (unsigned i = 0; i < MAC_SLOTS; i++) {
        mac_slot *s = &mac_slots[i];
        if (s->ctx && s->alg == alg && s->key_len == key_len && memcmp(s->key, key, key_len) == 0)
            return EVP_MAC_CTX_dup(s->ctx);
    }
    if (!hmac_impl && !(hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL)))
        return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_impl);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)EVP_MD_get0_name(alg->md()), 0),
        OSSL_PARAM_construct_end(),
    };
    static const unsigned char no_key; /* a NULL key would mean "keep the previous one" */
    if (!ctx || !EVP_MAC_init(ctx, key_len ? (const unsigned char *)key : &no_key, key_len, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    char *copy = OPENSSL_memdup(key_len ? key : "", key_len + !key_len); /* never a zero-size request */
    if (!copy) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    mac_slot *s = &mac_slots[mac_next++ % MAC_SLOTS];
    if (s->ctx) {
        EVP_MAC_CTX_free(s->ctx);
        OPENSSL_clear_free(s->key, s->key_len);
    }
    *s = (mac_slot){alg, copy, key_len, ctx};
    return EVP_MAC_CTX_dup(ctx);
}

/* HMAC of data under key into md (EVP_MAX_MD_SIZE bytes); returns the MAC length, 0 on failure. */
static unsigned mac(const jwt_alg *alg, const char *key, size_t key_len, const char *data, size_t n,
                    unsigned char *md) {
    pthread_mutex_lock(&mac_mu);
    EVP_MAC_CTX *ctx = keyed_dup(alg, key, key_len);
    pthread_mutex_unlock(&mac_mu);
    size_t len = 0;
    int ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)data, n) &&
             EVP_MAC_final(ctx, md, &len, EVP_MAX_MD_SIZE);
    EVP_MAC_CTX_free(ctx);
    return ok ? (unsigned)len : 0;
}

int sb_jwt_sign(const char *alg, const char *key, size_t key_len, json_t *payload, char **out) {
    *out = NULL;
    const jwt_alg *a = find_alg(alg);
    if (!a || !json_is_object(payload) || (!key && key_len))
        return SB_EINVAL;
    char *body = json_dumps(payload, JSON_COMPACT);
    if (!body)
        return SB_EINVAL;

    sb_buf tok, header;
    sb_buf_init(&tok);
    sb_buf_init(&header);
    sb_buf_appendf(&header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", a->name);
    sb_base64url_encode(header.data, header.len, &tok);
    sb_buf_appendc(&tok, '.');
    sb_base64url_encode(body, strlen(body), &tok);
    sb_buf_free(&header);
    free(body); /* json_dumps allocates with jansson's allocator, plain malloc here */

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = mac(a, key, key_len, tok.data, tok.len, md);
    if (!md_len) {
        sb_buf_free(&tok);
        return SB_EINVAL;
    }
    sb_buf_appendc(&tok, '.');
    sb_base64url_encode(md, md_len, &tok);
    *out = sb_buf_steal(&tok, NULL);
    return SB_OK;
}

static int alg_allowed(const jwt_alg *alg, const sb_jwt_verify_opts *opts) {
    const char *const *list = opts->algs ? opts->algs : default_algs;
    size_t n = opts->algs ? opts->nalgs : sizeof(default_algs) / sizeof(default_algs[0]);
    for (size_t i = 0; i < n; i++)
        if (list[i] && strcmp(list[i], alg->name) == 0)
            return 1;
    return 0;
}

/* Decode one base64url segment and parse it as a JSON object; NULL if it is not one. */
static json_t *decode_object(const char *s, size_t n, sb_buf *scratch) {
    sb_buf_reset(scratch);
    if (sb_base64url_decode(s, n, scratch) != SB_OK)
        return NULL;
    json_t *j = json_loadb(scratch->data, scratch->len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/*
 * The algorithm a header segment names, or NULL with *reason set.  Tokens of one issuer share their header
 * segment byte for byte, so the last one that named a known algorithm is remembered per thread (same bytes, same
 * answer) and its base64 and JSON decoding skipped.
 */
static const jwt_alg *header_alg(const char *seg, size_t n, sb_buf *scratch, const char **reason) {
    static _Thread_local char seen[128];
    static _Thread_local size_t seen_len;
    static _Thread_local const jwt_alg *seen_alg;
    if (seen_alg && n == seen_len && memcmp(seg, seen, n) == 0)
        return seen_alg;
    json_t *header = decode_object(seg, n, scratch);
    const char *alg_name = json_string_value(json_object_get(header, "alg"));
    const jwt_alg *alg = find_alg(alg_name);
    if (!alg_name)
        *reason = SB_JWT_REASON_MALFORMED;
    else if (strcasecmp(alg_name, "none") == 0)
        *reason = SB_JWT_REASON_ALG_NONE;
    else if (!alg)
        *reason = SB_JWT_REASON_ALG_NOT_ALLOWED;
    json_decref(header);
    if (alg && n <= sizeof seen) {
        memcpy(seen, seg, n);
        seen_len = n;
        seen_alg = alg;
    }
    return alg;
}

/* The part of verification that owns allocations; sb_jwt_verify maps its reason to a return code. */
static const char *verify(const char *token, size_t len, const sb_jwt_verify_opts *opts, sb_buf *scratch,
                          json_t **payload_out) {
    const char *end = token + len;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return SB_JWT_REASON_MALFORMED;

    const char *reason = NULL;
    const jwt_alg *alg = header_alg(token, (size_t)(dot1 - token), scratch, &reason);
    if (!reason && !alg_allowed(alg, opts))
        reason = alg->refused;
    if (reason)
        return reason;

    sb_buf_reset(scratch);
    if (sb_base64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), scratch) != SB_OK)
        return SB_JWT_REASON_MALFORMED;
    int matched = 0;
    for (size_t i = 0; i < opts->nkeys && !matched; i++) {
        if (!opts->keys[i])
            continue;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = mac(alg, opts->keys[i], strlen(opts->keys[i]), token, (size_t)(dot2 - token), md);
        matched = md_len && md_len == scratch->len && CRYPTO_memcmp(md, scratch->data, md_len) == 0;
    }
    if (!matched)
        return SB_JWT_REASON_BAD_SIGNATURE;

    json_t *payload = decode_object(dot1 + 1, (size_t)(dot2 - dot1 - 1), scratch);
    if (!payload)
        return SB_JWT_REASON_MALFORMED;
    /* Compare in double: exp may be a real, and now +- skew must not overflow time_t. */
    double now = (double)opts->now, skew = (double)opts->skew_seconds;
    json_t *exp = json_object_get(payload, "exp"), *nbf = json_object_get(payload, "nbf");
    if (!exp || json_is_null(exp))
        reason = SB_JWT_REASON_NO_EXPIRATION;
    else if (!json_is_number(exp) || (nbf && !json_is_null(nbf) && !json_is_number(nbf)))
        reason = SB_JWT_REASON_MALFORMED;
    else if (json_number_value(exp) < now - skew)
        reason = SB_JWT_REASON_EXPIRED;
    else if (json_is_number(nbf) && json_number_value(nbf) > now + skew)
        reason = SB_JWT_REASON_NOT_YET_VALID;
    if (reason) {
        json_decref(payload);
        return reason;
    }
    *payload_out = payload;
    return NULL;
}

int sb_jwt_verify(const char *token, size_t len, const sb_jwt_verify_opts *opts, json_t **payload_out,
                  const char **reason) {
    *payload_out = NULL;
    *reason = NULL;
    size_t max = opts->max_token_len ? opts->max_token_len : SB_JWT_MAX_TOKEN_LEN;
    if (len > max) {
        *reason = SB_JWT_REASON_TOO_LARGE;
        return SB_E2BIG;
    }
    if (!token) {
        *reason = SB_JWT_REASON_MALFORMED;
        return SB_EAUTH;
    }
    sb_buf scratch;
    sb_buf_init(&scratch);
    *reason = verify(token, len, opts, &scratch, payload_out);
    sb_buf_free(&scratch);
    return *reason ? SB_EAUTH : SB_OK;
}

/* ---- audience ---- */

typedef struct url_parts {
    sb_slice scheme, host, path, hub;
    int has_hub;
} url_parts;

/* Split scheme://host[:port]/path[?query][#fragment].  Returns 0, or -1 when s is not such a URL or names
 * `hub` twice (the service answers a duplicate hub with 400, so such an audience never matches). */
static int parse_url(const char *s, size_t n, url_parts *u) {
    memset(u, 0, sizeof(*u));
    const char *end = s + n, *p = s;
    while (p < end && (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.'))
        p++;
    if (p == s || end - p < 3 || memcmp(p, "://", 3) != 0)
        return -1;
    u->scheme = sb_slice_make(s, (size_t)(p - s));

    const char *auth = p + 3, *auth_end = auth;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
        auth_end++;
    const char *host_end = auth_end;
    if (auth < auth_end && *auth == '[') { /* IPv6 literal: the port, if any, follows the ']' */
        const char *rb = memchr(auth, ']', (size_t)(auth_end - auth));
        if (!rb)
            return -1;
        host_end = rb + 1;
    } else {
        const char *colon = memrchr(auth, ':', (size_t)(auth_end - auth));
        if (colon)
            host_end = colon;
    }
    if (host_end < auth_end) {
        if (*host_end != ':')
            return -1;
        for (const char *d = host_end + 1; d < auth_end; d++)
            if (!isdigit((unsigned char)*d))
                return -1;
    }
    if (host_end == auth)
        return -1;
    u->host = sb_slice_make(auth, (size_t)(host_end - auth));

    const char *path_end = auth_end;
    while (path_end < end && *path_end != '?' && *path_end != '#')
        path_end++;
    u->path = sb_slice_make(auth_end, (size_t)(path_end - auth_end));
    if (u->path.len && u->path.base[u->path.len - 1] == '/')
        u->path.len--;

    if (path_end == end || *path_end != '?')
        return 0;
    const char *q = path_end + 1, *q_end = memchr(q, '#', (size_t)(end - q));
    if (!q_end)
        q_end = end;
    while (q < q_end) {
        const char *amp = memchr(q, '&', (size_t)(q_end - q));
        const char *param_end = amp ? amp : q_end;
        const char *eq = memchr(q, '=', (size_t)(param_end - q));
        const char *name_end = eq ? eq : param_end;
        if (sb_slice_ieq(sb_slice_make(q, (size_t)(name_end - q)), "hub")) {
            if (u->has_hub)
                return -1;
            u->has_hub = 1;
            u->hub = eq ? sb_slice_make(eq + 1, (size_t)(param_end - eq - 1)) : sb_slice_make(param_end, 0);
        }
        q = amp ? amp + 1 : q_end;
    }
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Next byte of a query value with %XX decoded (a '%' not followed by two hex digits stands for itself). */
static int next_decoded(sb_slice s, size_t *i) {
    unsigned char c = (unsigned char)s.base[*i];
    if (c == '%' && s.len - *i >= 3 && hexval(s.base[*i + 1]) >= 0 && hexval(s.base[*i + 2]) >= 0) {
        c = (unsigned char)(hexval(s.base[*i + 1]) << 4 | hexval(s.base[*i + 2]));
        *i += 3;
        return c;
    }
    (*i)++;
    return c;
}

/* Query values are compared after percent-decoding because the SDKs escape hub names differently. */
static int query_value_ieq(sb_slice a, sb_slice b) {
    size_t i = 0, j = 0;
    while (i < a.len && j < b.len)
        if (tolower(next_decoded(a, &i)) != tolower(next_decoded(b, &j)))
            return 0;
    return i == a.len && j == b.len;
}

static int slice_ieq(sb_slice a, sb_slice b) {
    return a.len == b.len && strncasecmp(a.base, b.base, a.len) == 0;
}

static int url_matches(const char *aud, size_t aud_len, const char *valid, int ignore_query) {
    url_parts a, v;
    if (parse_url(aud, aud_len, &a) != 0 || parse_url(valid, strlen(valid), &v) != 0)
        return 0;
    if (!slice_ieq(a.scheme, v.scheme) || !slice_ieq(a.host, v.host))
        return 0;
    if (a.path.len != v.path.len || memcmp(a.path.base, v.path.base, a.path.len) != 0)
        return 0;
    if (ignore_query)
        return 1;
    if (a.has_hub != v.has_hub)
        return 0;
    return !a.has_hub || query_value_ieq(a.hub, v.hub);
}

static int aud_matches(json_t *aud, const char *const *valid, size_t nvalid, int ignore_query) {
    if (!json_is_string(aud))
        return 0;
    for (size_t i = 0; i < nvalid; i++)
        if (valid[i] && url_matches(json_string_value(aud), json_string_length(aud), valid[i], ignore_query))
            return 1;
    return 0;
}

int sb_jwt_check_audience(json_t *payload, const char *const *valid, size_t nvalid, int ignore_query,
                          sb_buf *msg) {
    sb_buf_reset(msg);
    json_t *aud = json_object_get(payload, "aud");
    if (aud_matches(aud, valid, nvalid, ignore_query))
        return SB_OK;
    size_t i;
    json_t *el;
    json_array_foreach(aud, i, el) {
        if (aud_matches(el, valid, nvalid, ignore_query))
            return SB_OK;
    }

    sb_buf_appends(msg, "Failed to validate audience. Expected Audiences: ");
    for (i = 0; i < nvalid; i++) {
        if (i)
            sb_buf_appends(msg, ", ");
        sb_buf_appends(msg, valid[i] ? valid[i] : "");
    }
    sb_buf_appends(msg, ". Actual Audiences: ");
    if (json_is_string(aud)) {
        sb_buf_append(msg, json_string_value(aud), json_string_length(aud));
    } else {
        int first = 1;
        json_array_foreach(aud, i, el) {
            if (!json_is_string(el))
                continue;
            if (!first)
                sb_buf_appends(msg, ", ");
            sb_buf_append(msg, json_string_value(el), json_string_length(el));
            first = 0;
        }
    }
    return SB_EAUTH;
}

/* ---- claims ---- */

const char *sb_jwt_claim_string(json_t *payload, const char *name) {
    json_t *v = json_object_get(payload, name);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_string_value(v);
}

const char *sb_jwt_user_id(json_t *payload) {
    static const char *const claims[] = {
        "asrs.s.uid",
        "nameid",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
        "sub",
    };
    /* An empty id would put every such connection under one user, so it counts as absent. */
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        const char *id = sb_jwt_claim_string(payload, claims[i]);
        if (id && *id)
            return id;
    }
    return NULL;
}
