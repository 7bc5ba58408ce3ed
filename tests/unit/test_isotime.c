/*
 * test_isotime.c - the shared ISO 8601 parser and calendar arithmetic: every
 * accepted form, each flag's extra forms (and their refusal without it),
 * calendar edges (leap years, month lengths, year 1 and 9999), fractions
 * finer than a tick, and malformed input cut at every length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "util/error.h"
#include "util/isotime.h"

#define S SB_TICKS_PER_SECOND

static int parse(const char *s, unsigned flags, int64_t *t) {
    return sb_isotime_parse(s, strlen(s), flags, t);
}

static void expect(const char *s, unsigned flags, int64_t want) {
    int64_t t = -1;
    assert_int_equal(parse(s, flags, &t), SB_OK);
    assert_int_equal(t, want);
}

static void refuse(const char *s, unsigned flags) {
    int64_t t = 12345;
    assert_int_equal(parse(s, flags, &t), SB_EINVAL);
    assert_int_equal(t, 12345); /* untouched on error */
}

static void test_forms(void **state) {
    expect("1970-01-01", 0, 0);
    expect("1970-01-01T00:00", 0, 0);
    expect("1970-01-01T00:00:01Z", 0, S);
    expect("1970-01-01t00:00:01z", 0, S);
    expect("2026-11-26T05:06:07Z", 0, INT64_C(1795669567) * S);
    expect("2026-11-26T05:06:07.5Z", 0, INT64_C(1795669567) * S + 5000000);
    expect("2026-11-26T05:06:07.1234567", 0, INT64_C(1795669567) * S + 1234567);
    expect("2026-11-26T05:06:07.123456789", 0, INT64_C(1795669567) * S + 1234567); /* finer than a tick */
    expect("1969-12-31T23:59:59Z", 0, -S);
    expect("0001-01-01T00:00:00Z", 0, INT64_C(-62135596800) * S);
    expect("9999-12-31T23:59:59.9999999Z", 0, INT64_C(253402300799) * S + 9999999);
}

static void test_calendar(void **state) {
    expect("2024-02-29", 0, INT64_C(1709164800) * S);
    refuse("2023-02-29", 0);
    expect("2000-02-29", 0, INT64_C(951782400) * S);
    refuse("1900-02-29", 0);
    refuse("2026-04-31", 0);
    refuse("2026-13-01", 0);
    refuse("2026-00-10", 0);
    refuse("2026-01-00", 0);
    refuse("0000-01-01", 0);
    refuse("2026-01-01T24:00", 0);
    refuse("2026-01-01T23:60", 0);
    for (int64_t days = -719162; days < 2932897; days += 997) { /* year 1 .. 9999, both directions agree */
        int y;
        unsigned m, d;
        sb_civil_from_days(days, &y, &m, &d);
        assert_int_equal(sb_days_from_civil(y, m, d), days);
    }
}

static void test_flags(void **state) {
    refuse("2026-01-01 10:00", 0);
    expect("2026-01-01 10:00", SB_ISOTIME_SPACE_SEP, INT64_C(1767261600) * S);
    refuse("2026-01-01T10:00:00+02:00", 0);
    expect("2026-01-01T10:00:00+02:00", SB_ISOTIME_OFFSET, INT64_C(1767254400) * S);
    expect("2026-01-01T10:00:00-01:30", SB_ISOTIME_OFFSET, INT64_C(1767267000) * S);
    expect("2026-01-01T10:00:00 02:00", SB_ISOTIME_OFFSET, INT64_C(1767254400) * S); /* '+' decoded as ' ' */
    refuse("2026-01-01T10:00:00+24:00", SB_ISOTIME_OFFSET);
    refuse("2026-01-01T10:00:00+0200", SB_ISOTIME_OFFSET);
    refuse("2026-01-01T10:00:00Z+02:00", SB_ISOTIME_OFFSET);
    refuse("2026-01-01T23:59:60Z", 0);
    expect("2026-01-01T23:59:60Z", SB_ISOTIME_LEAP_SECOND, INT64_C(1767312000) * S);
}

static void test_malformed(void **state) {
    refuse("", 0);
    refuse("2026", 0);
    refuse("2026-1-01", 0);
    refuse("2026-01-01T", 0);
    refuse("2026-01-01T10", 0);
    refuse("2026-01-01T10:0", 0);
    refuse("2026-01-01T10:00:0", 0);
    refuse("2026-01-01T10:00:00.", 0);
    refuse("2026-01-01T10:00:00.5x", 0);
    refuse(" 2026-01-01", 0);
    refuse("2026-01-01 ", 0);
    refuse("2026-01-01TT10:00", 0);
    /* every prefix of a full form is either a valid shorter form or refused, never read past its end */
    const char *full = "2026-11-26T05:06:07.1234567+02:00";
    for (size_t n = 0; n <= strlen(full); n++) {
        int64_t t;
        int rc = sb_isotime_parse(full, n, SB_ISOTIME_OFFSET, &t);
        assert_true(rc == SB_OK || rc == SB_EINVAL);
        if (n == 10 || n == 16 || n == 19 || (n >= 21 && n <= 27) || n == strlen(full))
            assert_int_equal(rc, SB_OK);
    }
}

/* The time of day alone (shared with KQL timespans): ranges, the leap-second flag, the fraction, and that what
 * follows is left to the caller. */
static void test_clock(void **state) {
    static const struct {
        const char *s;
        unsigned flags;
        int64_t ticks; /* -1: refused */
        size_t end;
    } cases[] = {
        {"00:00", 0, 0, 5},
        {"23:59:59.9999999", 0, (INT64_C(86399) * 10000000) + 9999999, 16},
        {"01:02:03.123456789Z", 0, INT64_C(3723) * 10000000 + 1234567, 18},
        {"10:00 rest", 0, INT64_C(36000) * 10000000, 5},
        {"23:59:60", SB_ISOTIME_LEAP_SECOND, INT64_C(86400) * 10000000, 8},
        {"23:59:60", 0, -1, 0},
        {"24:00", 0, -1, 0},
        {"12:60", 0, -1, 0},
        {"12:00:5", 0, -1, 0},
        {"12:00:00.", 0, -1, 0},
        {"1:00", 0, -1, 0},
        {"12-00", 0, -1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t i = 0;
        int64_t t = -7;
        int rc = sb_isotime_parse_clock(cases[k].s, strlen(cases[k].s), &i, cases[k].flags, &t);
        if (cases[k].ticks < 0) {
            assert_int_equal(rc, SB_EINVAL);
            continue;
        }
        assert_int_equal(rc, SB_OK);
        assert_int_equal(t, cases[k].ticks);
        assert_int_equal(i, cases[k].end);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
