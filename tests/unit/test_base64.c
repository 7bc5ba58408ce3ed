/*
 * test_base64.c - base64/base64url: RFC 4648 section 10 vectors, the url
 * alphabet, padding rules, strict rejection of every non-canonical spelling,
 * and that a failed decode leaves the output buffer untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/base64.h"
#include "util/error.h"

typedef struct vector {
    const char *plain, *std, *url;
} vector;

static const vector rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void expect_decode(int (*dec)(const char *, size_t, sb_buf *), const char *in, const char *plain) {
    sb_buf b;
    sb_buf_init(&b);
    assert_int_equal(dec(in, strlen(in), &b), SB_OK);
    assert_int_equal(b.len, strlen(plain));
    assert_memory_equal(b.data, plain, b.len);
    assert_int_equal(b.data[b.len], '\0');
    sb_buf_free(&b);
}

static void test_rfc4648_vectors(void **state) {
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const vector *v = &rfc4648[i];
        sb_buf b;
        sb_buf_init(&b);
        sb_base64_encode(v->plain, strlen(v->plain), &b);
        assert_string_equal(b.data, v->std);
        sb_buf_reset(&b);
        sb_base64url_encode(v->plain, strlen(v->plain), &b);
        assert_string_equal(b.data, v->url);
        sb_buf_free(&b);

        expect_decode(sb_base64_decode, v->std, v->plain);
        expect_decode(sb_base64_decode, v->url, v->plain); /* unpadded standard base64 */
        expect_decode(sb_base64url_decode, v->url, v->plain);
        expect_decode(sb_base64url_decode, v->std, v->plain); /* padded base64url */
    }
}

static void test_url_alphabet(void **state) {
    const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    sb_buf b;
    sb_buf_init(&b);
    sb_base64_encode(bytes, sizeof(bytes), &b);
    assert_string_equal(b.data, "+/+/");
    sb_buf_reset(&b);
    sb_base64url_encode(bytes, sizeof(bytes), &b);
    assert_string_equal(b.data, "-_-_");
    sb_buf_reset(&b);
    sb_base64url_encode(bytes, 2, &b);
    assert_string_equal(b.data, "-_8");

    sb_buf_reset(&b);
    assert_int_equal(sb_base64url_decode("-_-_", 4, &b), SB_OK);
    assert_memory_equal(b.data, bytes, 3);
    assert_int_equal(sb_base64url_decode("+/+/", 4, &b), SB_EINVAL);
    assert_int_equal(sb_base64_decode("-_-_", 4, &b), SB_EINVAL);
    sb_buf_free(&b);
}

static void test_encode_appends(void **state) {
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appends(&b, "x.");
    sb_base64url_encode("foo", 3, &b);
    assert_string_equal(b.data, "x.Zm9v");
    assert_int_equal(sb_base64url_decode("YmFy", 4, &b), SB_OK);
    assert_string_equal(b.data, "x.Zm9vbar");
    sb_buf_free(&b);
}

static void test_rejects_bad_input(void **state) {
    static const char *const bad[] = {
        "Z",        /* 4k+1 characters carry no whole byte */
        "Zm9vY",    /* same, longer */
        "Zg=",      /* padded but not a multiple of 4 */
        "Zg===",    /* three pads */
        "Z===",     /* three pads in one quantum */
        "====",     /* nothing but padding */
        "=",        /* lone pad */
        "Zm9v=",    /* pad after a full quantum */
        "Zm=v",     /* pad in the middle */
        "Zg==Zg==", /* pad in the middle of the input */
        "Zh==",     /* non-zero leftover bits (canonical is Zg==) */
        "Zm9=",     /* non-zero leftover bits (canonical is Zm8=) */
        "Zh",       /* same without padding */
        "Zm9",      /* same without padding */
        "Zm8==",    /* one pad too many */
        "Zm9v\n",   /* whitespace is not skipped */
        " Zm9v",    /* leading whitespace */
        "Zm 9v",    /* inner whitespace */
        "Zm9v*A==", /* outside both alphabets */
        "Zm9\x80",  /* high byte */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_buf b;
        sb_buf_init(&b);
        sb_buf_appends(&b, "keep");
        assert_int_equal(sb_base64_decode(bad[i], strlen(bad[i]), &b), SB_EINVAL);
        assert_int_equal(sb_base64url_decode(bad[i], strlen(bad[i]), &b), SB_EINVAL);
        assert_int_equal(b.len, 4);
        assert_string_equal(b.data, "keep");
        sb_buf_free(&b);
    }
    /* An embedded NUL is just another character outside the alphabet. */
    sb_buf b;
    sb_buf_init(&b);
    assert_int_equal(sb_base64_decode("Zm\0v", 4, &b), SB_EINVAL);
    assert_int_equal(b.len, 0);
    sb_buf_free(&b);
}

/* Every two-character input decodes iff it is the canonical encoding of the byte it yields: 64 * 4 of them.
 */
static void test_only_canonical_tails_accepted(void **state) {
    int accepted = 0;
    for (int c1 = 0; c1 < 256; c1++) {
        for (int c2 = 0; c2 < 256; c2++) {
            char in[2] = {(char)c1, (char)c2};
            sb_buf dec, enc;
            sb_buf_init(&dec);
            sb_buf_init(&enc);
            if (sb_base64url_decode(in, 2, &dec) == SB_OK) {
                accepted++;
                assert_int_equal(dec.len, 1);
                sb_base64url_encode(dec.data, 1, &enc);
                assert_memory_equal(enc.data, in, 2);
            }
            sb_buf_free(&dec);
            sb_buf_free(&enc);
        }
    }
    assert_int_equal(accepted, 256);
}

static void test_round_trip_all_lengths(void **state) {
    unsigned char data[300];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof(data); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        data[i] = (unsigned char)x;
    }
    for (size_t n = 0; n <= sizeof(data); n++) {
        sb_buf e, d;
        sb_buf_init(&e);
        sb_buf_init(&d);
        sb_base64_encode(data, n, &e);
        assert_int_equal(e.len, (n + 2) / 3 * 4);
        assert_int_equal(sb_base64_decode(e.data, e.len, &d), SB_OK);
        assert_int_equal(d.len, n);
        if (n)
            assert_memory_equal(d.data, data, n);
        sb_buf_reset(&e);
        sb_buf_reset(&d);
        sb_base64url_encode(data, n, &e);
        assert_null(memchr(e.data, '=', e.len));
        char direct[sizeof(data) * 4 / 3 + 4];
        assert_int_equal(sb_base64url_encode_to(data, n, direct), e.len);
        assert_int_equal(e.len, SB_BASE64URL_LEN(n));
        if (n)
            assert_memory_equal(direct, e.data, e.len);
        assert_int_equal(sb_base64url_decode(e.data, e.len, &d), SB_OK);
        assert_int_equal(d.len, n);
        if (n)
            assert_memory_equal(d.data, data, n);
        sb_buf_free(&e);
        sb_buf_free(&d);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_encode_appends),
        cmocka_unit_test(test_rejects_bad_input),
        cmocka_unit_test(test_only_canonical_tails_accepted),
        cmocka_unit_test(test_round_trip_all_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
