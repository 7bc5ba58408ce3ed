/*
 * fuzz_jwt.c - libFuzzer target for src/auth/jwt.c and the base64url decoder.
 *
 * One input is used three ways so that random bytes reach code behind the
 * signature check too:
 *  1. as a token, verified with fixed keys (every reason must be one of ours);
 *  2. its middle segment (or the whole input when it has no dots) decoded and
 *     parsed as claims, then run through the audience check and user-id lookup;
 *  3. when the input is itself a JSON object, signed and verified again: a
 *     token we signed must never fail on its signature or algorithm.
 * Any broken invariant aborts so libFuzzer records the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "util/base64.h"
#include "util/error.h"

static const char *const keys[] = {"fuzz-key", "c2Vjb25kYXJ5"};
static const char *const valid[] = {"https://example.service.signalr.net/client/?hub=chat",
                                    "http://localhost:8888/api/v1/hubs/chat/"};

static const sb_jwt_verify_opts opts = {
    .keys = keys, .nkeys = 2, .now = 1700000000, .skew_seconds = 300, .max_token_len = 4096};

static void use_claims(json_t *claims) {
    sb_buf msg;
    sb_buf_init(&msg);
    for (int ignore_query = 0; ignore_query <= 1; ignore_query++) {
        int rc = sb_jwt_check_audience(claims, valid, 2, ignore_query, &msg);
        if ((rc == SB_OK) != (msg.len == 0))
            abort();
    }
    const char *uid = sb_jwt_user_id(claims);
    if (uid && !*uid)
        abort();
    (void)sb_jwt_claim_string(claims, "role");
    sb_buf_free(&msg);
}

static int is_reason(const char *r) {
    static const char *const known[] = {
        SB_JWT_REASON_TOO_LARGE,
        SB_JWT_REASON_MALFORMED,
        SB_JWT_REASON_BAD_SIGNATURE,
        SB_JWT_REASON_ALG_NONE,
        SB_JWT_REASON_ALG_NOT_ALLOWED,
        SB_JWT_REASON_NO_EXPIRATION,
        SB_JWT_REASON_EXPIRED,
        SB_JWT_REASON_NOT_YET_VALID,
        "The algorithm 'HS256' is not allowed.",
        "The algorithm 'HS384' is not allowed.",
        "The algorithm 'HS512' is not allowed.",
    };
    for (size_t i = 0; r && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(r, known[i]) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    json_t *payload = NULL;
    const char *reason = NULL;

    int rc = sb_jwt_verify(s, size, &opts, &payload, &reason);
    if (rc == SB_OK) {
        if (reason || !json_is_object(payload))
            abort();
        use_claims(payload);
        json_decref(payload);
    } else if (payload || !is_reason(reason) || (rc != SB_EAUTH && rc != SB_E2BIG)) {
        abort();
    }

    if (size <= 4096) {
        const char *seg = s, *end = s + size, *dot = memchr(s, '.', size);
        if (dot) {
            seg = dot + 1;
            const char *dot2 = memchr(seg, '.', (size_t)(end - seg));
            end = dot2 ? dot2 : end;
        }
        sb_buf raw;
        sb_buf_init(&raw);
        if (sb_base64url_decode(seg, (size_t)(end - seg), &raw) == SB_OK) {
            json_t *claims = json_loadb(raw.data, raw.len, 0, NULL);
            if (json_is_object(claims))
                use_claims(claims);
            json_decref(claims);
        }
        sb_buf_free(&raw);

        json_t *obj = json_loadb(s, size, 0, NULL);
        char *tok = NULL;
        if (json_is_object(obj) && sb_jwt_sign("HS256", keys[1], strlen(keys[1]), obj, &tok) == SB_OK) {
            rc = sb_jwt_verify(tok, strlen(tok), &opts, &payload, &reason);
            if (rc == SB_OK) {
                if (!json_equal(payload, obj))
                    abort();
                use_claims(payload);
                json_decref(payload);
            } else if (!is_reason(reason) || strcmp(reason, SB_JWT_REASON_BAD_SIGNATURE) == 0 ||
                       strstr(reason, "algorithm")) {
                abort();
            }
        }
        free(tok);
        json_decref(obj);
    }
    return 0;
}
