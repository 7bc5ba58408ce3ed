/*
 * test_utf8.c - strict UTF-8 validation (util/utf8.c).
 *
 * Hand-picked edge cases (overlongs, surrogates, > U+10FFFF, truncation, the
 * 8-byte ASCII fast path), every split point of multi-byte text fed
 * incrementally, and an exhaustive comparison of all 1-, 2- and 3-byte inputs
 * (plus every 4-byte lead with a spread of continuations) against a
 * reference that decodes code points the slow, obvious way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/utf8.h"

#define VALID(s) sb_utf8_valid((s), sizeof(s) - 1)

static void test_valid_sequences(void **state) {
    (void)state;
    assert_int_equal(sb_utf8_valid("", 0), 1);
    assert_int_equal(VALID("hello, world"), 1);
    assert_int_equal(VALID("\xC2\x80"), 1);                                     /* U+0080 */
    assert_int_equal(VALID("\xDF\xBF"), 1);                                     /* U+07FF */
    assert_int_equal(VALID("\xE0\xA0\x80"), 1);                                 /* U+0800 */
    assert_int_equal(VALID("\xED\x9F\xBF"), 1);                                 /* U+D7FF */
    assert_int_equal(VALID("\xEE\x80\x80"), 1);                                 /* U+E000 */
    assert_int_equal(VALID("\xEF\xBF\xBF"), 1);                                 /* U+FFFF */
    assert_int_equal(VALID("\xF0\x90\x80\x80"), 1);                             /* U+10000 */
    assert_int_equal(VALID("\xF4\x8F\xBF\xBF"), 1);                             /* U+10FFFF */
    assert_int_equal(VALID("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"), 1); /* Autobahn's kosme */
    assert_int_equal(VALID("0123456789abcdef\xE2\x82\xAC"
                           "0123456789abcdef"),
                     1);
    assert_int_equal(sb_utf8_valid("a\0b", 3), 1); /* NUL is a character */
}

static void test_overlongs(void **state) {
    (void)state;
    assert_int_equal(VALID("\xC0\x80"), 0);
    assert_int_equal(VALID("\xC1\xBF"), 0);
    assert_int_equal(VALID("\xE0\x80\x80"), 0);
    assert_int_equal(VALID("\xE0\x9F\xBF"), 0);
    assert_int_equal(VALID("\xF0\x80\x80\x80"), 0);
    assert_int_equal(VALID("\xF0\x8F\xBF\xBF"), 0);
    assert_int_equal(VALID("\xC0\xAF"), 0); /* the classic overlong '/' */
}

static void test_surrogates_and_range(void **state) {
    (void)state;
    assert_int_equal(VALID("\xED\xA0\x80"), 0);             /* U+D800 */
    assert_int_equal(VALID("\xED\xBF\xBF"), 0);             /* U+DFFF */
    assert_int_equal(VALID("\xED\xA0\x80\xED\xB0\x80"), 0); /* a CESU-8 pair */
    assert_int_equal(VALID("\xF4\x90\x80\x80"), 0);         /* U+110000 */
    assert_int_equal(VALID("\xF5\x80\x80\x80"), 0);
    assert_int_equal(VALID("\xF8\x88\x80\x80\x80"), 0);
    assert_int_equal(VALID("\xFE"), 0);
    assert_int_equal(VALID("\xFF"), 0);
}

static void test_bad_continuations(void **state) {
    (void)state;
    assert_int_equal(VALID("\x80"), 0);
    assert_int_equal(VALID("a\xBF"), 0);
    assert_int_equal(VALID("\xC2\x41"), 0);
    assert_int_equal(VALID("\xE2\x82\x41"), 0);
    assert_int_equal(VALID("\xF0\x90\x80\xC0"), 0);
    assert_int_equal(VALID("\xC2\xC2\x80"), 0);
    /* A bad byte right after an 8-byte ASCII run and at the end of one. */
    assert_int_equal(VALID("abcdefgh\xC0\x80"), 0);
    assert_int_equal(VALID("abcdefg\x80"), 0);
    assert_int_equal(VALID("abcdefghijklmnop\xFF"), 0);
}

static void test_truncated(void **state) {
    (void)state;
    assert_int_equal(VALID("\xC2"), 0);
    assert_int_equal(VALID("\xE2\x82"), 0);
    assert_int_equal(VALID("\xF0\x9F\x98"), 0);
    assert_int_equal(VALID("abcdefghijk\xF0"), 0);

    uint32_t st = SB_UTF8_ACCEPT;
    uint32_t ret = sb_utf8_feed(&st, "\xE2\x82", 2);
    assert_int_equal(ret, st);
    assert_int_not_equal(st, SB_UTF8_ACCEPT);
    assert_int_not_equal(st, SB_UTF8_REJECT);
    assert_int_equal(sb_utf8_feed(&st, "\xAC", 1), SB_UTF8_ACCEPT);
}

static void test_split_everywhere(void **state) {
    (void)state;
    static const char text[] =
        "plain \xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xED\x9F\xBF end of text";
    size_t n = sizeof(text) - 1;
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            uint32_t st = SB_UTF8_ACCEPT;
            sb_utf8_feed(&st, text, a);
            assert_int_not_equal(st, SB_UTF8_REJECT);
            sb_utf8_feed(&st, text + a, b - a);
            assert_int_not_equal(st, SB_UTF8_REJECT);
            sb_utf8_feed(&st, text + b, n - b);
            assert_int_equal(st, SB_UTF8_ACCEPT);
        }
    }
    /* An invalid sequence split across feeds is still caught. */
    uint32_t st = SB_UTF8_ACCEPT;
    sb_utf8_feed(&st, "ok \xED", 4);
    assert_int_not_equal(st, SB_UTF8_REJECT);
    assert_int_equal(sb_utf8_feed(&st, "\xA0\x80", 2), SB_UTF8_REJECT);
}

static void test_reject_is_sticky(void **state) {
    (void)state;
    uint32_t st = SB_UTF8_ACCEPT;
    assert_int_equal(sb_utf8_feed(&st, "\xFF", 1), SB_UTF8_REJECT);
    assert_int_equal(sb_utf8_feed(&st, "abc", 3), SB_UTF8_REJECT);
    assert_int_equal(sb_utf8_feed(&st, "", 0), SB_UTF8_REJECT);
    assert_int_equal(st, SB_UTF8_REJECT);
}

/* Reference: decode the first sequence the obvious way; 1 if s[0..n) is exactly one valid character. */
static int ref_one_char(const unsigned char *s, size_t n) {
    size_t need;
    uint32_t cp, min;
    if (s[0] < 0x80)
        need = 1, cp = s[0], min = 0;
    else if ((s[0] & 0xE0) == 0xC0)
        need = 2, cp = s[0] & 0x1F, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0)
        need = 3, cp = s[0] & 0x0F, min = 0x800;
    else if ((s[0] & 0xF8) == 0xF0)
        need = 4, cp = s[0] & 0x07, min = 0x10000;
    else
        return 0;
    if (n != need)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    return cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

static void test_exhaustive_against_reference(void **state) {
    (void)state;
    unsigned char b[4];
    for (unsigned x = 0; x < 0x100; x++) {
        b[0] = (unsigned char)x;
        assert_int_equal(sb_utf8_valid(b, 1), ref_one_char(b, 1));
        for (unsigned y = 0; y < 0x100; y++) {
            b[1] = (unsigned char)y;
            if (ref_one_char(b, 1))
                continue; /* two one-byte characters: covered by the 1-byte case */
            assert_int_equal(sb_utf8_valid(b, 2), ref_one_char(b, 2));
            if (x < 0xE0)
                continue;
            for (unsigned z = 0; z < 0x100; z++) {
                b[2] = (unsigned char)z;
                assert_int_equal(sb_utf8_valid(b, 3), ref_one_char(b, 3));
            }
        }
    }
    static const unsigned char conts[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (unsigned x = 0xF0; x < 0x100; x++)
        for (size_t i = 0; i < sizeof(conts); i++)
            for (size_t j = 0; j < sizeof(conts); j++)
                for (size_t k = 0; k < sizeof(conts); k++) {
                    b[0] = (unsigned char)x, b[1] = conts[i], b[2] = conts[j], b[3] = conts[k];
                    assert_int_equal(sb_utf8_valid(b, 4), ref_one_char(b, 4));
                }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_sequences),
        cmocka_unit_test(test_overlongs),
        cmocka_unit_test(test_surrogates_and_range),
        cmocka_unit_test(test_bad_continuations),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_reject_is_sticky),
        cmocka_unit_test(test_exhaustive_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
