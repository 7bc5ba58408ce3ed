/*
 * jwt.h - JSON Web Tokens as Azure SignalR Service uses them: HS256 (and
 * HS384/HS512) signed with the UTF-8 bytes of an access key, audience checks,
 * and the user id taken from the claims.  I/O-free; fuzzed by fuzz/fuzz_jwt.c.
 *
 * Signing and verification are hand-written over OpenSSL HMAC + jansson (not
 * libjwt) because the service must report Azure's exact failure texts, try
 * several keys while ignoring `kid`, refuse `alg: none` and unconfigured
 * algorithms explicitly, and compare audiences the way the SDKs build them.
 *
 * Ownership: *payload_out is a new jansson reference the caller json_decref()s.
 */
#ifndef SB_JWT_H
#define SB_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "util/buf.h"

/* Azure's token limit; also what max_token_len == 0 means. */
#define SB_JWT_MAX_TOKEN_LEN 4096

/* Failure texts (*reason of sb_jwt_verify), spelled as the service reports them. */
#define SB_JWT_REASON_TOO_LARGE "The token is too large."
#define SB_JWT_REASON_MALFORMED "The token is malformed."
#define SB_JWT_REASON_BAD_SIGNATURE "The signature is invalid."
#define SB_JWT_REASON_ALG_NONE "The algorithm 'none' is not allowed."
#define SB_JWT_REASON_ALG_NOT_ALLOWED "The token algorithm is not allowed." /* alg outside HS256/384/512 */
#define SB_JWT_REASON_NO_EXPIRATION "The token has no expiration."
#define SB_JWT_REASON_EXPIRED "The token is expired."
#define SB_JWT_REASON_NOT_YET_VALID "The token is not valid yet."

/* Sign payload (not consumed) with key; alg is "HS256", "HS384" or "HS512". *out is heap, caller frees. */
int sb_jwt_sign(const char *alg, const char *key, size_t key_len, json_t *payload, char **out);

typedef struct sb_jwt_verify_opts {
    const char *const *keys; /* access keys to try in order (primary, secondary) */
    size_t nkeys;
    const char *const *algs; /* allowed algorithms, e.g. {"HS256"} ; NULL = {"HS256","HS512"} */
    size_t nalgs;
    time_t now;
    int skew_seconds;     /* tolerance for exp/nbf (e.g. 300) */
    size_t max_token_len; /* 4096: longer is SB_E2BIG (HTTP 413); 0 = SB_JWT_MAX_TOKEN_LEN */
} sb_jwt_verify_opts;

/*
 * Verify signature, algorithm, exp and nbf.  On success returns SB_OK and
 * *payload_out.  On failure returns SB_E2BIG (too long) or SB_EAUTH, with
 * *reason a static text suitable for a 401 body and a log record, e.g.
 * "The token is malformed.", "The signature is invalid.", "The algorithm 'none' is not allowed.",
 * "The token is expired.", "The token is not valid yet." (SB_JWT_REASON_*).  A known
 * algorithm that is not in algs reads "The algorithm 'HS384' is not allowed.".
 */
int sb_jwt_verify(const char *token, size_t len, const sb_jwt_verify_opts *opts, json_t **payload_out,
                  const char **reason);

/*
 * Audience check.  valid[] are the URLs this request accepts.  A token audience
 * (string or array of strings) matches a valid URL when scheme and host are
 * equal ignoring case, ports are ignored (the SDKs drop them), paths are equal
 * ignoring one trailing '/', and, unless ignore_query, the `hub` query
 * parameters are equal ignoring case (other query parameters are ignored;
 * %XX escapes are decoded; absent on both sides is equal; an audience naming
 * `hub` twice, or that is not such a URL at all, never matches).
 * On mismatch returns SB_EAUTH and writes exactly
 * "Failed to validate audience. Expected Audiences: <valid, comma-separated>. Actual Audiences: <actual>"
 * into msg (reset first).
 */
int sb_jwt_check_audience(json_t *payload, const char *const *valid, size_t nvalid, int ignore_query,
                          sb_buf *msg);

/* User id: "asrs.s.uid", then "nameid", then the long NameIdentifier claim URI, then "sub" (string values,
 * empty ones skipped).  NULL if none. */
const char *sb_jwt_user_id(json_t *payload);
/* String value of a claim (first element if an array); NULL if absent. */
const char *sb_jwt_claim_string(json_t *payload, const char *name);

#endif
