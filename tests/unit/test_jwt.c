/*
 * test_jwt.c - JWT signing and verification, audience matching and user ids.
 *
 * Known answers come from outside this code: the HS256/HS512 tokens were
 * computed independently (Node's crypto.createHmac over the same compact
 * JSON), and the verification vector is RFC 7515 appendix A.1.  Tokens with
 * hand-written headers or payloads are built by make_token() straight from
 * OpenSSL HMAC so that failure paths can be reached with a valid signature.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/jwt.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/error.h"

#define NOW 1700000000
#define KEY "c2VjcmV0LWtleQ==/\xc3\xa9" /* looks like base64 on purpose: it must be used as-is */
#define KEY2 "secondary-key"
#define CLIENT_AUD "https://example.service.signalr.net/client/?hub=chat"

static const char *const keys1[] = {KEY};

static sb_jwt_verify_opts opts_for(const char *const *keys, size_t nkeys) {
    return (sb_jwt_verify_opts){
        .keys = keys, .nkeys = nkeys, .now = NOW, .skew_seconds = 300, .max_token_len = 4096};
}

/* hseg.pseg.signature: the two segments as given (already encoded or deliberately not), signed under md. */
static char *sign_segments(const EVP_MD *md, const char *key, const char *hseg, const char *pseg) {
    sb_buf t;
    sb_buf_init(&t);
    sb_buf_appendf(&t, "%s.%s", hseg, pseg);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    assert_non_null(HMAC(md, key, (int)strlen(key), (unsigned char *)t.data, t.len, mac, &len));
    sb_buf_appendc(&t, '.');
    sb_base64url_encode(mac, len, &t);
    return sb_buf_steal(&t, NULL);
}

/* header.payload.signature from raw JSON texts. */
static char *make_token(const EVP_MD *md, const char *key, const char *header, const char *payload) {
    sb_buf h, p;
    sb_buf_init(&h);
    sb_buf_init(&p);
    sb_base64url_encode(header, strlen(header), &h);
    sb_base64url_encode(payload, strlen(payload), &p);
    char *tok = sign_segments(md, key, h.data, p.data);
    sb_buf_free(&h);
    sb_buf_free(&p);
    return tok;
}

/* tok with its signature segment replaced by sig. */
static char *with_signature(const char *tok, const char *sig) {
    const char *dot = strrchr(tok, '.');
    return sb_asprintf("%.*s.%s", (int)(dot - tok), tok, sig);
}

static char *hs256(const char *payload) {
    return make_token(EVP_sha256(), KEY, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload);
}

/* Verify token and check the outcome; returns the payload on success (caller decrefs). */
static json_t *expect_verify(const char *token, const sb_jwt_verify_opts *o, int rc, const char *reason) {
    json_t *payload = (json_t *)1;
    const char *why = "unset";
    /* An exact-size heap copy lets ASan catch any read past the token's length. */
    size_t len = strlen(token);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, token, len);
    assert_int_equal(sb_jwt_verify(copy, len, o, &payload, &why), rc);
    free(copy);
    if (rc == SB_OK) {
        assert_null(why);
        assert_true(json_is_object(payload));
        return payload;
    }
    assert_string_equal(why, reason);
    assert_null(payload);
    return NULL;
}

static json_t *std_payload(void) {
    return json_pack("{s:s, s:I, s:I, s:s}", "aud", CLIENT_AUD, "exp", (json_int_t)NOW + 3600, "iat",
                     (json_int_t)NOW, "nameid", "user1");
}

/* ---- signing ---- */

static void test_sign_known_vectors(void **state) {
    json_t *p = std_payload();
    char *tok = NULL;
    assert_int_equal(sb_jwt_sign("HS256", KEY, strlen(KEY), p, &tok), SB_OK);
    assert_string_equal(
        tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
             "eyJhdWQiOiJodHRwczovL2V4YW1wbGUuc2VydmljZS5zaWduYWxyLm5ldC9jbGllbnQvP2h1Yj1jaGF0IiwiZXhw"
             "IjoxNzAwMDAzNjAwLCJpYXQiOjE3MDAwMDAwMDAsIm5hbWVpZCI6InVzZXIxIn0."
             "VHJDOhkhxCXRxYT7mQqGa-DmLaEImU9S-OWLUe0ga00");
    free(tok);
    assert_int_equal(sb_jwt_sign("HS512", KEY, strlen(KEY), p, &tok), SB_OK);
    assert_string_equal(
        tok, "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
             "eyJhdWQiOiJodHRwczovL2V4YW1wbGUuc2VydmljZS5zaWduYWxyLm5ldC9jbGllbnQvP2h1Yj1jaGF0IiwiZXhw"
             "IjoxNzAwMDAzNjAwLCJpYXQiOjE3MDAwMDAwMDAsIm5hbWVpZCI6InVzZXIxIn0."
             "rN2t2ROTCGpoOTtAyJiPE_y5Mc6MUgkVlvhDCqh9ET_FAcDbaFEjV-i1pfqRNBw0fLNLyfdLzKm9TcIvcW972g");
    free(tok);
    json_decref(p);
}

static void test_sign_rejects_bad_arguments(void **state) {
    json_t *p = std_payload(), *arr = json_array();
    char *tok = (char *)1;
    assert_int_equal(sb_jwt_sign("none", KEY, strlen(KEY), p, &tok), SB_EINVAL);
    assert_null(tok);
    assert_int_equal(sb_jwt_sign("hs256", KEY, strlen(KEY), p, &tok), SB_EINVAL);
    assert_int_equal(sb_jwt_sign(NULL, KEY, strlen(KEY), p, &tok), SB_EINVAL);
    assert_int_equal(sb_jwt_sign("HS256", KEY, strlen(KEY), arr, &tok), SB_EINVAL);
    assert_int_equal(sb_jwt_sign("HS256", KEY, strlen(KEY), NULL, &tok), SB_EINVAL);
    assert_int_equal(sb_jwt_sign("HS256", NULL, 3, p, &tok), SB_EINVAL);
    assert_null(tok);
    json_decref(p);
    json_decref(arr);
}

/* ---- verification ---- */

static void test_round_trip_every_algorithm(void **state) {
    static const char *const algs[] = {"HS256", "HS384", "HS512"};
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    o.algs = algs;
    o.nalgs = 3;
    for (size_t i = 0; i < 3; i++) {
        json_t *p = std_payload();
        char *tok;
        assert_int_equal(sb_jwt_sign(algs[i], KEY, strlen(KEY), p, &tok), SB_OK);
        json_t *got = expect_verify(tok, &o, SB_OK, NULL);
        assert_true(json_equal(got, p));
        json_decref(got);
        json_decref(p);
        free(tok);
    }
}

static void test_rfc7515_a1_vector(void **state) {
    static const char *const rfc_key[] = {"\x03\x23\x35\x4b\x2b\x0f\xa5\xbc\x83\x7e\x06\x65\x77\x7b\xa6\x8f"
                                          "\x5a\xb3\x28\xe6\xf0\x54\xc9\x28\xa9\x0f\x84\xb2\xd2\x50\x2e\xbf"
                                          "\xd3\xfb\x5a\x92\xd2\x06\x47\xef\x96\x8a\xb4\xc3\x77\x62\x3d\x22"
                                          "\x3d\x2e\x21\x72\x05\x2e\x4f\x08\xc0\xcd\x9a\xf5\x67\xd0\x80\xa3"};
    const char *tok =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    sb_jwt_verify_opts o = opts_for(rfc_key, 1);
    o.now = 1300819000;
    json_t *p = expect_verify(tok, &o, SB_OK, NULL);
    assert_string_equal(sb_jwt_claim_string(p, "iss"), "joe");
    assert_true(json_is_true(json_object_get(p, "http://example.com/is_root")));
    json_decref(p);
    o.now = 1300819380 + 301;
    expect_verify(tok, &o, SB_EAUTH, SB_JWT_REASON_EXPIRED);
}

static void test_length_limit(void **state) {
    json_t *p = std_payload();
    char *tok;
    assert_int_equal(sb_jwt_sign("HS256", KEY, strlen(KEY), p, &tok), SB_OK);
    size_t len = strlen(tok);
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    o.max_token_len = len;
    json_decref(expect_verify(tok, &o, SB_OK, NULL));
    o.max_token_len = len - 1;
    expect_verify(tok, &o, SB_E2BIG, SB_JWT_REASON_TOO_LARGE);
    assert_string_equal(SB_JWT_REASON_TOO_LARGE, "The token is too large.");

    /* The limit wins over everything else, even garbage, and 0 means Azure's 4 KB. */
    char *big = malloc(SB_JWT_MAX_TOKEN_LEN + 2);
    memset(big, '.', SB_JWT_MAX_TOKEN_LEN + 1);
    big[SB_JWT_MAX_TOKEN_LEN + 1] = '\0';
    o.max_token_len = 0;
    expect_verify(big, &o, SB_E2BIG, SB_JWT_REASON_TOO_LARGE);
    big[SB_JWT_MAX_TOKEN_LEN] = '\0';
    expect_verify(big, &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);
    free(big);
    free(tok);
    json_decref(p);
}

static void test_malformed(void **state) {
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "...",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.e30.",
        "e30.e30.",                     /* header {} has no alg */
        "WzFd.e30.",                    /* header [1] is not an object */
        "eyJhbGciOjF9.e30.",            /* alg 1 is not a string */
        "eyJhbGciOm51bGx9.e30.",        /* alg null */
        "bm90IGpzb24.e30.",             /* "not json" */
        "eyJhbGciOiJIUzI1NiJ9",         /* header only */
        "eyJhbGciOiJIUzI1NiJ9x.e30.",   /* header of 4k+1 characters */
        "eyJhbGciOiJIUzI1NiJ9.e30.a.b", /* four segments */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_verify(bad[i], &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);

    /* Duplicate "alg" (which one would win is parser-dependent). */
    char *t = make_token(EVP_sha256(), KEY, "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"exp\":1700003600}");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);
    free(t);

    /* A signature segment that is not base64url. */
    char *good = hs256("{\"exp\":1700003600}");
    t = with_signature(good, "abc*def");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);
    free(t);
    free(good);

    /* Correctly signed, but the payload is not a JSON object. */
    static const char *const payloads[] = {"[1,2]",
                                           "42",
                                           "\"s\"",
                                           "{\"exp\":1",
                                           "",
                                           "{\"exp\":1,\"exp\":2}",
                                           "{\"exp\":99999999999999999999999}"};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        t = hs256(payloads[i]);
        expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);
        free(t);
    }
    /* Correctly signed, but the payload segment is not base64url. */
    t = sign_segments(EVP_sha256(), KEY, "eyJhbGciOiJIUzI1NiJ9", "e30*");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);
    free(t);
    /* exp and nbf of the wrong type. */
    t = hs256("{\"exp\":\"1700003600\"}");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);
    free(t);
    t = hs256("{\"exp\":1700003600,\"nbf\":\"0\"}");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_MALFORMED);
    free(t);
}

static void test_null_token(void **state) {
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    json_t *p = (json_t *)1;
    const char *why = NULL;
    assert_int_equal(sb_jwt_verify(NULL, 0, &o, &p, &why), SB_EAUTH);
    assert_string_equal(why, SB_JWT_REASON_MALFORMED);
    assert_null(p);
}

static void test_alg_none(void **state) {
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    static const char *const hdrs[] = {"{\"alg\":\"none\"}", "{\"alg\":\"NONE\",\"typ\":\"JWT\"}",
                                       "{\"alg\":\"None\"}"};
    for (size_t i = 0; i < 3; i++) {
        sb_buf t;
        sb_buf_init(&t);
        sb_base64url_encode(hdrs[i], strlen(hdrs[i]), &t);
        sb_buf_appends(&t, ".eyJleHAiOjE3MDAwMDM2MDB9."); /* {"exp":1700003600}, no signature */
        expect_verify(t.data, &o, SB_EAUTH, "The algorithm 'none' is not allowed.");
        sb_buf_free(&t);
    }
    /* Even with a valid HS256 MAC attached, "none" is refused by name. */
    char *t = make_token(EVP_sha256(), KEY, "{\"alg\":\"none\"}", "{\"exp\":1700003600}");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_ALG_NONE);
    free(t);
}

static void test_algorithm_allow_list(void **state) {
    static const char *const only256[] = {"HS256"};
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    char *t512 = make_token(EVP_sha512(), KEY, "{\"alg\":\"HS512\"}", "{\"exp\":1700003600}");
    char *t384 = make_token(EVP_sha384(), KEY, "{\"alg\":\"HS384\"}", "{\"exp\":1700003600}");
    char *tlow = make_token(EVP_sha256(), KEY, "{\"alg\":\"hs256\"}", "{\"exp\":1700003600}");
    char *trs = make_token(EVP_sha256(), KEY, "{\"alg\":\"RS256\"}", "{\"exp\":1700003600}");

    /* Default list: HS256 and HS512. */
    json_decref(expect_verify(t512, &o, SB_OK, NULL));
    expect_verify(t384, &o, SB_EAUTH, "The algorithm 'HS384' is not allowed.");
    expect_verify(tlow, &o, SB_EAUTH, SB_JWT_REASON_ALG_NOT_ALLOWED);
    expect_verify(trs, &o, SB_EAUTH, "The token algorithm is not allowed.");

    o.algs = only256;
    o.nalgs = 1;
    expect_verify(t512, &o, SB_EAUTH, "The algorithm 'HS512' is not allowed.");
    o.nalgs = 0; /* an empty list allows nothing */
    char *t256 = hs256("{\"exp\":1700003600}");
    expect_verify(t256, &o, SB_EAUTH, "The algorithm 'HS256' is not allowed.");

    free(t256);
    free(t512);
    free(t384);
    free(tlow);
    free(trs);
}

static void test_bad_signature(void **state) {
    static const char *const other[] = {KEY2};
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    char *good = hs256("{\"exp\":1700003600}");

    sb_jwt_verify_opts wrong = opts_for(other, 1);
    expect_verify(good, &wrong, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    sb_jwt_verify_opts none = opts_for(NULL, 0);
    expect_verify(good, &none, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);

    char *t = with_signature(good, "");
    expect_verify(t, &o, SB_EAUTH, "The signature is invalid.");
    free(t);
    t = with_signature(good, "AAAA"); /* valid base64url, wrong length */
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    free(t);

    /* The right MAC followed by extra bytes, and the right MAC cut short, are both wrong. */
    sb_buf mac, sig;
    sb_buf_init(&mac);
    sb_buf_init(&sig);
    const char *s = strrchr(good, '.') + 1;
    assert_int_equal(sb_base64url_decode(s, strlen(s), &mac), SB_OK);
    assert_int_equal(mac.len, 32);
    sb_buf_append(&mac, "xyz", 3);
    sb_base64url_encode(mac.data, mac.len, &sig);
    t = with_signature(good, sig.data);
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    free(t);
    sb_buf_reset(&sig);
    sb_base64url_encode(mac.data, 31, &sig);
    t = with_signature(good, sig.data);
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    free(t);
    sb_buf_free(&mac);
    sb_buf_free(&sig);

    /* The key is the access key's bytes as written, not their base64 decoding. */
    sb_buf raw;
    sb_buf_init(&raw);
    assert_int_equal(sb_base64_decode("c2VjcmV0LWtleQ==", 16, &raw), SB_OK);
    const char *decoded[] = {raw.data};
    sb_jwt_verify_opts dec = opts_for(decoded, 1);
    expect_verify(good, &dec, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    sb_buf_free(&raw);

    /* Flip each signature character to a different alphabet character: always detected. */
    char *flip = strdup(good);
    char *flip_sig = strrchr(flip, '.') + 1;
    for (char *c = flip_sig; *c; c++) {
        char saved = *c;
        *c = saved == 'A' ? 'B' : 'A';
        json_t *p = NULL;
        const char *why = NULL;
        int rc = sb_jwt_verify(flip, strlen(flip), &o, &p, &why);
        assert_int_equal(rc, SB_EAUTH);
        assert_null(p);
        *c = saved;
    }
    free(flip);

    /* Payload swapped under the original signature. */
    char *other_tok = hs256("{\"exp\":1800000000}");
    const char *sig1 = strrchr(good, '.') + 1;
    t = with_signature(other_tok, sig1);
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    free(t);
    free(other_tok);
    free(good);
}

static void test_multiple_keys(void **state) {
    static const char *const both[] = {KEY, KEY2};
    static const char *const with_hole[] = {NULL, "", KEY2};
    sb_jwt_verify_opts o = opts_for(both, 2);
    char *t1 = hs256("{\"exp\":1700003600}");
    char *t2 =
        make_token(EVP_sha256(), KEY2, "{\"alg\":\"HS256\",\"kid\":\"-12345\"}", "{\"exp\":1700003600}");
    json_decref(expect_verify(t1, &o, SB_OK, NULL));
    json_decref(expect_verify(t2, &o, SB_OK, NULL)); /* kid is ignored */
    o.nkeys = 1;
    expect_verify(t2, &o, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    sb_jwt_verify_opts h = opts_for(with_hole, 3);
    json_decref(expect_verify(t2, &h, SB_OK, NULL));
    expect_verify(t1, &h, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
    free(t1);
    free(t2);
}

/* More keys than the keyed-HMAC table holds, visited twice and out of order: an entry replaced round robin must
 * never answer for another key, and every key's tokens keep verifying after their entry was recreated. */
static void test_key_rotation_beyond_the_table(void **state) {
    enum { NKEYS = 20 };
    char *keys[NKEYS], *toks[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        keys[i] = sb_asprintf("rotated-key-%d", i);
        toks[i] = make_token(i % 2 ? EVP_sha512() : EVP_sha256(), keys[i],
                             i % 2 ? "{\"alg\":\"HS512\"}" : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                             "{\"exp\":1700003600}");
    }
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < NKEYS; k++) {
            int i = round ? (k * 7) % NKEYS : k;
            const char *mine[] = {keys[i]}, *other[] = {keys[(i + 1) % NKEYS]};
            sb_jwt_verify_opts o = opts_for(mine, 1);
            json_decref(expect_verify(toks[i], &o, SB_OK, NULL));
            o = opts_for(other, 1);
            expect_verify(toks[i], &o, SB_EAUTH, SB_JWT_REASON_BAD_SIGNATURE);
        }
    for (int i = 0; i < NKEYS; i++) {
        free(keys[i]);
        free(toks[i]);
    }
}

/* The header of the last token is remembered: the same bytes must still meet each call's own allow-list, and a
 * different header right after is decoded afresh. */
static void test_remembered_header_is_still_judged(void **state) {
    static const char *const only512[] = {"HS512"};
    char *t = hs256("{\"exp\":1700003600}");
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    json_decref(expect_verify(t, &o, SB_OK, NULL));
    o.algs = only512;
    o.nalgs = 1;
    expect_verify(t, &o, SB_EAUTH, "The algorithm 'HS256' is not allowed.");
    char *none = make_token(EVP_sha256(), KEY, "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"exp\":1700003600}");
    o = opts_for(keys1, 1);
    expect_verify(none, &o, SB_EAUTH, SB_JWT_REASON_ALG_NONE);
    json_decref(expect_verify(t, &o, SB_OK, NULL));
    free(t);
    free(none);
}

static void test_empty_key(void **state) {
    static const char *const empty[] = {""};
    json_t *p = json_pack("{s:I}", "exp", (json_int_t)NOW + 10);
    char *tok;
    assert_int_equal(sb_jwt_sign("HS256", "", 0, p, &tok), SB_OK);
    sb_jwt_verify_opts o = opts_for(empty, 1);
    json_decref(expect_verify(tok, &o, SB_OK, NULL));
    expect_verify(tok, &(sb_jwt_verify_opts){.keys = keys1, .nkeys = 1, .now = NOW}, SB_EAUTH,
                  SB_JWT_REASON_BAD_SIGNATURE);
    free(tok);
    json_decref(p);
}

static void test_expiration_and_skew(void **state) {
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    struct {
        const char *payload;
        int rc;
        const char *reason;
    } cases[] = {
        {"{}", SB_EAUTH, "The token has no expiration."},
        {"{\"exp\":null}", SB_EAUTH, SB_JWT_REASON_NO_EXPIRATION},
        {"{\"nbf\":1699999000}", SB_EAUTH, SB_JWT_REASON_NO_EXPIRATION},
        {"{\"exp\":1700000000}", SB_OK, NULL},                       /* exactly now */
        {"{\"exp\":1699999700}", SB_OK, NULL},                       /* now - skew */
        {"{\"exp\":1699999699}", SB_EAUTH, "The token is expired."}, /* one second past the skew */
        {"{\"exp\":1699999699.5}", SB_EAUTH, SB_JWT_REASON_EXPIRED},
        {"{\"exp\":1699999700.5}", SB_OK, NULL},
        {"{\"exp\":-1}", SB_EAUTH, SB_JWT_REASON_EXPIRED},
        {"{\"exp\":1e300}", SB_OK, NULL},
        {"{\"exp\":1700003600,\"nbf\":1700000300}", SB_OK, NULL}, /* now + skew */
        {"{\"exp\":1700003600,\"nbf\":1700000301}", SB_EAUTH, "The token is not valid yet."},
        {"{\"exp\":1700003600,\"nbf\":null}", SB_OK, NULL},
        {"{\"exp\":1700003600,\"iat\":\"whenever\"}", SB_OK, NULL}, /* iat is not validated */
        {"{\"exp\":1600000000,\"nbf\":1800000000}", SB_EAUTH, SB_JWT_REASON_EXPIRED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = hs256(cases[i].payload);
        json_decref(expect_verify(t, &o, cases[i].rc, cases[i].reason));
        free(t);
    }
    /* Without skew the boundaries move to now itself. */
    o.skew_seconds = 0;
    char *t = hs256("{\"exp\":1699999999}");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_EXPIRED);
    free(t);
    t = hs256("{\"exp\":1700003600,\"nbf\":1700000001}");
    expect_verify(t, &o, SB_EAUTH, SB_JWT_REASON_NOT_YET_VALID);
    free(t);
}

/* Every strict prefix of a valid token, fed one byte longer each time, is refused without crashing. */
static void test_every_prefix_refused(void **state) {
    json_t *p = std_payload();
    char *tok;
    assert_int_equal(sb_jwt_sign("HS256", KEY, strlen(KEY), p, &tok), SB_OK);
    sb_jwt_verify_opts o = opts_for(keys1, 1);
    size_t len = strlen(tok);
    for (size_t n = 0; n < len; n++) {
        char *prefix = malloc(n ? n : 1);
        memcpy(prefix, tok, n);
        json_t *out = (json_t *)1;
        const char *why = NULL;
        assert_int_equal(sb_jwt_verify(prefix, n, &o, &out, &why), SB_EAUTH);
        assert_null(out);
        assert_true(strcmp(why, SB_JWT_REASON_MALFORMED) == 0 ||
                    strcmp(why, SB_JWT_REASON_BAD_SIGNATURE) == 0);
        free(prefix);
    }
    free(tok);
    json_decref(p);
}

/* ---- audience ---- */

static int aud_check(const char *aud_json, const char *const *valid, size_t nvalid, int ignore_query,
                     sb_buf *msg) {
    json_t *p = json_loads(aud_json, 0, NULL);
    assert_non_null(p);
    int rc = sb_jwt_check_audience(p, valid, nvalid, ignore_query, msg);
    json_decref(p);
    return rc;
}

static void expect_aud(const char *aud, const char *valid, int ignore_query, int rc) {
    sb_buf msg;
    sb_buf_init(&msg);
    json_t *p = json_pack("{s:s}", "aud", aud);
    const char *const v[] = {valid};
    int got = sb_jwt_check_audience(p, v, 1, ignore_query, &msg);
    if (got != rc)
        fail_msg("aud %s vs valid %s (ignore_query %d): got %d, want %d", aud, valid, ignore_query, got, rc);
    assert_int_equal(msg.len == 0, rc == SB_OK);
    json_decref(p);
    sb_buf_free(&msg);
}

static void test_audience_url_rules(void **state) {
    const char *v = CLIENT_AUD;
    expect_aud(v, v, 0, SB_OK);
    expect_aud("https://example.service.signalr.net:443/client/?hub=chat", v, 0, SB_OK);
    expect_aud(v, "https://example.service.signalr.net:8443/client/?hub=chat", 0, SB_OK);
    expect_aud("HTTPS://Example.Service.SignalR.net/client/?hub=CHAT", v, 0, SB_OK);
    expect_aud("https://example.service.signalr.net/client?hub=chat", v, 0, SB_OK);
    expect_aud(v, "https://example.service.signalr.net/client?hub=Chat", 0, SB_OK);
    expect_aud("https://example.service.signalr.net/client/?asrs.op=%2Fchat&hub=chat&asrs_request_id=x", v, 0,
               SB_OK);
    expect_aud("https://example.service.signalr.net/client/?HUB=chat", v, 0, SB_OK);
    expect_aud("https://example.service.signalr.net/client/?hub=ch%61t", v, 0, SB_OK);
    expect_aud("https://example.service.signalr.net/client/?hub=chat#frag", v, 0, SB_OK);

    expect_aud("https://example.service.signalr.net/Client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net/client//?hub=chat", v, 0, SB_EAUTH);
    expect_aud("http://example.service.signalr.net/client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("https://other.service.signalr.net/client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net.evil/client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("https://evil@example.service.signalr.net/client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net:x/client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net/client/?hub=chat2", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net/client/?hub=", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net/client/", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net/client/?hubs=chat", v, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net/client/?hub=chat&hub=chat", v, 0, SB_EAUTH);
    expect_aud("example.service.signalr.net/client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("https:///client/?hub=chat", v, 0, SB_EAUTH);
    expect_aud("", v, 0, SB_EAUTH);
    expect_aud("chat", "chat", 0, SB_EAUTH); /* not URLs: never equal */

    /* REST audiences: no hub parameter on either side, or a query that is ignored. */
    const char *rest = "https://example.service.signalr.net/api/v1/hubs/chat";
    expect_aud(rest, rest, 0, SB_OK);
    expect_aud("https://example.service.signalr.net/api/v1/hubs/chat/", rest, 0, SB_OK);
    expect_aud("https://example.service.signalr.net/api/v1/hubs/chat?x=1", rest, 0, SB_OK);
    expect_aud("https://example.service.signalr.net/api/hubs/chat/:send?api-version=2022-06-01",
               "https://example.service.signalr.net:8080/api/hubs/chat/:send", 1, SB_OK);
    expect_aud("https://example.service.signalr.net/api/v1/hubs/chat?hub=x", rest, 0, SB_EAUTH);
    expect_aud("https://example.service.signalr.net/api/v1/hubs/chat?hub=x", rest, 1, SB_OK);
    expect_aud("https://example.service.signalr.net/client/?hub=other", v, 1, SB_OK);
    expect_aud("https://example.service.signalr.net/api/v1/hubs/Chat", rest, 1, SB_EAUTH);

    /* The SDKs and the emulator run on localhost and IPv6 literals too. */
    expect_aud("http://localhost/client/?hub=chat", "http://localhost:8888/client/?hub=chat", 0, SB_OK);
    expect_aud("http://[::1]/client/?hub=chat", "http://[::1]:8888/client/?hub=chat", 0, SB_OK);
    expect_aud("http://[::1/client/?hub=chat", "http://[::1]:8888/client/?hub=chat", 0, SB_EAUTH);
    expect_aud("http://[::1]x/client/?hub=chat", "http://[::1]/client/?hub=chat", 0, SB_EAUTH);
    expect_aud("https://h", "https://h/", 0, SB_OK);
}

static void test_audience_arrays_and_message(void **state) {
    const char *const valid[] = {CLIENT_AUD, "https://example.service.signalr.net:8080/client/?hub=chat"};
    sb_buf msg;
    sb_buf_init(&msg);
    sb_buf_appends(&msg, "stale");

    assert_int_equal(
        aud_check("{\"aud\":[\"https://a/\",7,\"https://example.service.signalr.net/client/?hub=Chat\"]}",
                  valid, 2, 0, &msg),
        SB_OK);
    assert_int_equal(msg.len, 0);

    assert_int_equal(aud_check("{\"aud\":[\"https://a/\",7,\"https://b/?hub=chat\"]}", valid, 2, 0, &msg),
                     SB_EAUTH);
    assert_string_equal(msg.data, "Failed to validate audience. Expected Audiences: "
                                  "https://example.service.signalr.net/client/?hub=chat, "
                                  "https://example.service.signalr.net:8080/client/?hub=chat. "
                                  "Actual Audiences: https://a/, https://b/?hub=chat");

    assert_int_equal(
        aud_check("{\"aud\":\"https://example.service.signalr.net/client/?hub=x\"}", valid, 1, 0, &msg),
        SB_EAUTH);
    assert_string_equal(msg.data, "Failed to validate audience. Expected Audiences: "
                                  "https://example.service.signalr.net/client/?hub=chat. "
                                  "Actual Audiences: https://example.service.signalr.net/client/?hub=x");

    assert_int_equal(aud_check("{\"exp\":1}", valid, 1, 0, &msg), SB_EAUTH);
    assert_string_equal(msg.data, "Failed to validate audience. Expected Audiences: "
                                  "https://example.service.signalr.net/client/?hub=chat. Actual Audiences: ");

    assert_int_equal(aud_check("{\"aud\":[]}", valid, 2, 0, &msg), SB_EAUTH);
    assert_int_equal(aud_check("{\"aud\":42}", valid, 2, 0, &msg), SB_EAUTH);
    assert_string_equal(msg.data + msg.len - strlen("Actual Audiences: "), "Actual Audiences: ");

    /* Nothing valid: never a match. */
    assert_int_equal(aud_check("{\"aud\":\"" CLIENT_AUD "\"}", valid, 0, 0, &msg), SB_EAUTH);
    assert_string_equal(msg.data,
                        "Failed to validate audience. Expected Audiences: . Actual Audiences: " CLIENT_AUD);

    assert_int_equal(sb_jwt_check_audience(NULL, valid, 2, 0, &msg), SB_EAUTH);
    sb_buf_free(&msg);
}

/* ---- claims ---- */

static void test_user_id_precedence(void **state) {
    json_t *p = json_pack("{s:s, s:s, s:s, s:s}", "sub", "from-sub",
                          "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "from-uri",
                          "nameid", "from-nameid", "asrs.s.uid", "from-uid");
    assert_string_equal(sb_jwt_user_id(p), "from-uid");
    json_object_set_new(p, "asrs.s.uid", json_integer(5)); /* not a string: skipped */
    assert_string_equal(sb_jwt_user_id(p), "from-nameid");
    json_object_del(p, "asrs.s.uid");
    json_object_set_new(p, "nameid", json_pack("[s,s]", "first", "second"));
    assert_string_equal(sb_jwt_user_id(p), "first");
    json_object_set_new(p, "nameid", json_string("")); /* empty: skipped */
    assert_string_equal(sb_jwt_user_id(p), "from-uri");
    json_object_del(p, "nameid");
    json_object_del(p, "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier");
    assert_string_equal(sb_jwt_user_id(p), "from-sub");
    json_object_set_new(p, "sub", json_pack("[i,s]", 1, "x")); /* first element not a string */
    assert_null(sb_jwt_user_id(p));
    json_object_del(p, "sub");
    assert_null(sb_jwt_user_id(p));
    assert_null(sb_jwt_user_id(NULL));
    json_decref(p);
}

static void test_claim_string(void **state) {
    json_t *p = json_pack("{s:s, s:[s,s], s:[], s:b}", "role", "admin", "roles", "a", "b", "none", "flag", 1);
    assert_string_equal(sb_jwt_claim_string(p, "role"), "admin");
    assert_string_equal(sb_jwt_claim_string(p, "roles"), "a");
    assert_null(sb_jwt_claim_string(p, "none"));
    assert_null(sb_jwt_claim_string(p, "flag"));
    assert_null(sb_jwt_claim_string(p, "missing"));
    assert_null(sb_jwt_claim_string(NULL, "role"));
    json_decref(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_known_vectors),
        cmocka_unit_test(test_sign_rejects_bad_arguments),
        cmocka_unit_test(test_round_trip_every_algorithm),
        cmocka_unit_test(test_rfc7515_a1_vector),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_null_token),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_algorithm_allow_list),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_multiple_keys),
        cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_expiration_and_skew),
        cmocka_unit_test(test_every_prefix_refused),
        cmocka_unit_test(test_audience_url_rules),
        cmocka_unit_test(test_audience_arrays_and_message),
        cmocka_unit_test(test_user_id_precedence),
        cmocka_unit_test(test_claim_string),
        cmocka_unit_test(test_key_rotation_beyond_the_table),
        cmocka_unit_test(test_remembered_header_is_still_judged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
