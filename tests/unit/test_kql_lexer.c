/*
 * test_kql_lexer.c - KQL tokens and the time values behind literals: every
 * token kind, timespan units, string escapes and verbatim strings, the
 * hyphenated operator names, lexical errors, raw text for datetime(...),
 * the line:column + caret error excerpt; datetime/timespan text in both
 * directions and ISO-8601 durations and intervals (the Logs API timespan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kql/arena.h"
#include "kql/datetime.h"
#include "kql/lexer.h"
#include "util/error.h"

#define TICKS_S SB_KQL_TICKS_PER_SECOND

typedef struct lexed {
    sb_kql_arena a;
    sb_kql_lexer lx;
    sb_kql_token t[32];
    int n;
} lexed;

static void lex_all(lexed *l, const char *src) {
    sb_kql_arena_init(&l->a);
    sb_kql_lex_init(&l->lx, src, strlen(src), &l->a);
    l->n = 0;
    do
        sb_kql_lex_next(&l->lx, &l->t[l->n]);
    while (l->t[l->n].kind != SB_KQL_TOK_EOF && l->t[l->n].kind != SB_KQL_TOK_ERROR && ++l->n < 31);
    if (l->t[l->n].kind == SB_KQL_TOK_ERROR)
        l->n++;
}

static void test_idents_and_punct(void **state) {
    lexed l;
    lex_all(&l, "T | project-away a_1, ['my col'] | where x=~\"y\" and z !in~ (1) // comment\n|sort by q<=2");
    const sb_kql_token *t = l.t;
    assert_int_equal(t[0].kind, SB_KQL_TOK_IDENT);
    assert_string_equal(t[0].text, "T");
    assert_int_equal(t[1].op, SB_KQL_P_PIPE);
    assert_string_equal(t[2].text, "project-away");
    assert_string_equal(t[3].text, "a_1");
    assert_int_equal(t[4].op, SB_KQL_P_COMMA);
    assert_string_equal(t[5].text, "my col");
    assert_string_equal(t[7].text, "where");
    assert_string_equal(t[8].text, "x");
    assert_int_equal(t[9].op, SB_KQL_P_EQ_TILDE);
    assert_int_equal(t[10].kind, SB_KQL_TOK_STRING);
    assert_string_equal(t[12].text, "z");
    assert_int_equal(t[13].op, SB_KQL_P_BANG);
    assert_int_equal(t[14].pos, t[13].end); /* '!' glued to the word: the parser needs that */
    assert_string_equal(t[14].text, "in~");
    assert_int_equal(t[15].op, SB_KQL_P_LPAREN);
    assert_int_equal(t[16].kind, SB_KQL_TOK_LONG);
    assert_int_equal(t[18].op, SB_KQL_P_PIPE); /* the comment is gone */
    assert_string_equal(t[19].text, "sort");
    assert_int_equal(t[22].op, SB_KQL_P_LE);
    assert_int_equal(t[l.n].kind, SB_KQL_TOK_EOF);
    sb_kql_arena_free(&l.a);
}

static void test_operators(void **state) {
    lexed l;
    lex_all(&l, "== != <> < <= > >= =~ !~ + - * / % . .. = ; [ ]");
    static const int want[] = {SB_KQL_P_EQ,       SB_KQL_P_NE,      SB_KQL_P_NE,       SB_KQL_P_LT,
                               SB_KQL_P_LE,       SB_KQL_P_GT,      SB_KQL_P_GE,       SB_KQL_P_EQ_TILDE,
                               SB_KQL_P_NE_TILDE, SB_KQL_P_PLUS,    SB_KQL_P_MINUS,    SB_KQL_P_STAR,
                               SB_KQL_P_SLASH,    SB_KQL_P_PERCENT, SB_KQL_P_DOT,      SB_KQL_P_DOTDOT,
                               SB_KQL_P_ASSIGN,   SB_KQL_P_SEMI,    SB_KQL_P_LBRACKET, SB_KQL_P_RBRACKET};
    assert_int_equal(l.n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < l.n; i++) {
        assert_int_equal(l.t[i].kind, SB_KQL_TOK_PUNCT);
        assert_int_equal(l.t[i].op, want[i]);
    }
    sb_kql_arena_free(&l.a);
}

static void test_numbers_and_timespans(void **state) {
    lexed l;
    lex_all(&l, "42 0x1F 1.5 2e3 30s 5m 1h 7d 100ms 1.5h 1min 2 hours 10microsecond 3tick 1..3");
    assert_int_equal(l.t[0].kind, SB_KQL_TOK_LONG);
    assert_int_equal(l.t[0].i, 42);
    assert_int_equal(l.t[1].i, 31);
    assert_int_equal(l.t[2].kind, SB_KQL_TOK_REAL);
    assert_true(l.t[2].r == 1.5);
    assert_true(l.t[3].r == 2000.0);
    static const int64_t ts[] = {30 * TICKS_S, 300 * TICKS_S,  3600 * TICKS_S, 7 * SB_KQL_TICKS_PER_DAY,
                                 1000000,      5400 * TICKS_S, 60 * TICKS_S};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(l.t[4 + i].kind, SB_KQL_TOK_TIMESPAN);
        assert_int_equal(l.t[4 + i].i, ts[i]);
    }
    /* "2 hours" with a blank is a number and a name, not a timespan */
    assert_int_equal(l.t[11].kind, SB_KQL_TOK_LONG);
    assert_int_equal(l.t[12].kind, SB_KQL_TOK_IDENT);
    assert_int_equal(l.t[13].i, 100);
    assert_int_equal(l.t[14].i, 3);
    assert_int_equal(l.t[15].i, 1);
    assert_int_equal(l.t[16].op, SB_KQL_P_DOTDOT);
    assert_int_equal(l.t[17].i, 3);
    sb_kql_arena_free(&l.a);
}

static void test_strings(void **state) {
    lexed l;
    lex_all(&l, "'a\\'b' \"c\\\"d\\n\\t\\\\\" @'C:\\x''y' h\"secret\" \"\\u00e9\"");
    assert_string_equal(l.t[0].text, "a'b");
    assert_string_equal(l.t[1].text, "c\"d\n\t\\");
    assert_string_equal(l.t[2].text, "C:\\x'y");
    assert_string_equal(l.t[3].text, "secret");
    assert_string_equal(l.t[4].text, "\xc3\xa9");
    sb_kql_arena_free(&l.a);
}

static void expect_lex_error(const char *src, const char *message, size_t pos) {
    lexed l;
    lex_all(&l, src);
    const sb_kql_token *e = &l.t[l.n - 1];
    assert_int_equal(e->kind, SB_KQL_TOK_ERROR);
    assert_string_equal(e->text, message);
    assert_int_equal(e->pos, pos);
    sb_kql_arena_free(&l.a);
}

static void test_lex_errors(void **state) {
    expect_lex_error("T | where a == 'open", "unterminated string literal", 15);
    expect_lex_error("x == \"one\ntwo\"", "unterminated string literal", 5);
    expect_lex_error("x == 10x", "invalid number or timespan literal", 5);
    expect_lex_error("a # b", "unexpected character", 2);
    expect_lex_error("'bad \\q escape'", "invalid escape sequence '\\q' in string literal", 0);
    expect_lex_error("'\\u12'", "invalid \\u escape in string literal", 0);
    expect_lex_error("99999999999999999999", "integer literal out of range for long", 0);
    expect_lex_error("0x", "invalid hexadecimal literal", 0);
    expect_lex_error("['']", "a bracketed name must not be empty", 0);
    expect_lex_error("['a' x", "expected ']' after a bracketed name", 0);
}

static void test_raw_text(void **state) {
    sb_kql_arena a;
    sb_kql_arena_init(&a);
    sb_kql_lexer lx;
    const char *src = "(2026-01-01 10:00 (x)) rest";
    sb_kql_lex_init(&lx, src, strlen(src), &a);
    sb_kql_token t;
    sb_kql_lex_next(&lx, &t); /* '(' */
    size_t s, e;
    assert_int_equal(sb_kql_lex_raw(&lx, &s, &e), 1);
    assert_int_equal(s, 1);
    assert_int_equal(e, 21); /* the nested parentheses stay inside */
    sb_kql_lex_next(&lx, &t);
    assert_string_equal(t.text, "rest");
    sb_kql_lex_init(&lx, "(unclosed", 9, &a);
    sb_kql_lex_next(&lx, &t);
    assert_int_equal(sb_kql_lex_raw(&lx, &s, &e), 0);
    sb_kql_arena_free(&a);
}

static void test_error_excerpt(void **state) {
    char err[512];
    const char *q = "T\n| where x == 1\n| wher y";
    sb_kql_format_error(err, sizeof err, q, strlen(q), 19, "Syntax", "expected an operator");
    assert_string_equal(err, "Syntax error at 3:3: expected an operator\n| wher y\n  ^");
    /* columns count characters, not bytes; tabs are kept so the caret lines up */
    const char *u = "T | where \xc3\xa9\t== x";
    sb_kql_format_error(err, sizeof err, u, strlen(u), 13, "Semantic", "m");
    assert_string_equal(err, "Semantic error at 1:13: m\nT | where \xc3\xa9\t== x\n           \t^");
    /* a tiny buffer is cut, never overrun, never mid-character */
    char small[8];
    sb_kql_format_error(small, sizeof small, q, strlen(q), 0, "Syntax", "x");
    assert_string_equal(small, "Syntax ");
    int line, col;
    sb_kql_line_col(q, strlen(q), 1000, &line, &col);
    assert_int_equal(line, 3);
    assert_int_equal(col, 9);
}

static void test_datetime_text(void **state) {
    int64_t t;
    char buf[64];
    assert_int_equal(sb_kql_dt_parse("1970-01-01", 10, &t), SB_OK);
    assert_int_equal(t, 0);
    assert_int_equal(sb_kql_dt_parse("2026-01-02T03:04:05.1234567Z", 28, &t), SB_OK);
    sb_kql_dt_format(t, buf);
    assert_string_equal(buf, "2026-01-02T03:04:05.1234567Z");
    assert_int_equal(sb_kql_dt_format_api(t, buf), 28);
    assert_int_equal(sb_kql_dt_parse(" 2026-01-02 03:04:05.5 ", 23, &t), SB_OK);
    sb_kql_dt_format_api(t, buf);
    assert_string_equal(buf, "2026-01-02T03:04:05.5Z");
    assert_int_equal(sb_kql_dt_parse("2026-01-02T03:04", 16, &t), SB_OK);
    sb_kql_dt_format_api(t, buf);
    assert_string_equal(buf, "2026-01-02T03:04:00Z");
    assert_int_equal(sb_kql_dt_parse("2024-02-29T00:00:00.000Z", 24, &t), SB_OK); /* the SDK's toISOString */
    assert_int_equal(sb_kql_dt_parse("0001-01-01", 10, &t), SB_OK);
    assert_int_equal(t, SB_KQL_DT_MIN);
    sb_kql_dt_format(SB_KQL_DT_MAX, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59.9999999Z");
    sb_kql_dt_format(-1, buf); /* before the epoch: floor, not truncation */
    assert_string_equal(buf, "1969-12-31T23:59:59.9999999Z");
    static const char *const bad[] = {"2023-02-29",      "2026-13-01", "2026-01-01T24:00",
                                      "2026-1-1",        "x",          "2026-01-01T10:00:00.",
                                      "2026-01-01Zjunk", "",           "0000-01-01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sb_kql_dt_parse(bad[i], strlen(bad[i]), &t), SB_EINVAL);
}

static void test_timespan_text(void **state) {
    char buf[40];
    int64_t t;
    sb_kql_ts_format(90 * TICKS_S, buf);
    assert_string_equal(buf, "00:01:30");
    sb_kql_ts_format(SB_KQL_TICKS_PER_DAY + 5, buf);
    assert_string_equal(buf, "1.00:00:00.0000005");
    sb_kql_ts_format(-2 * TICKS_S, buf);
    assert_string_equal(buf, "-00:00:02");
    sb_kql_ts_format(INT64_MIN, buf); /* no overflow on the most negative value */
    assert_true(buf[0] == '-');
    assert_int_equal(sb_kql_ts_parse("1.02:03:04.5", 12, &t), SB_OK);
    assert_int_equal(t, SB_KQL_TICKS_PER_DAY + (2 * 3600 + 3 * 60 + 4) * TICKS_S + TICKS_S / 2);
    assert_int_equal(sb_kql_ts_parse("-00:05", 6, &t), SB_OK);
    assert_int_equal(t, -300 * TICKS_S);
    assert_int_equal(sb_kql_ts_parse("1.5h", 4, &t), SB_OK);
    assert_int_equal(t, 5400 * TICKS_S);
    assert_int_equal(sb_kql_ts_parse("2d", 2, &t), SB_OK);
    assert_int_equal(sb_kql_ts_unit("MINUTES", 7), 60 * TICKS_S);
    assert_int_equal(sb_kql_ts_unit("w", 1), 0); /* KQL has no weeks */
    static const char *const bad[] = {"5", "h", "1w", "24:00", "1:2", "00:00:00.", "1.5.5h", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sb_kql_ts_parse(bad[i], strlen(bad[i]), &t), SB_EINVAL);
}

static void test_iso_durations(void **state) {
    int64_t t, s, e;
    assert_int_equal(sb_kql_iso_duration("PT1H", 4, &t), SB_OK);
    assert_int_equal(t, 3600 * TICKS_S);
    assert_int_equal(sb_kql_iso_duration("P1DT30M", 7, &t), SB_OK);
    assert_int_equal(t, SB_KQL_TICKS_PER_DAY + 1800 * TICKS_S);
    assert_int_equal(sb_kql_iso_duration("P2W", 3, &t), SB_OK);
    assert_int_equal(t, 14 * SB_KQL_TICKS_PER_DAY);
    assert_int_equal(sb_kql_iso_duration("PT0.5S", 6, &t), SB_OK);
    assert_int_equal(t, TICKS_S / 2);
    static const char *const bad[] = {"P1Y", "P1M", "PT", "P", "1H", "PT1D", "PTH", "P1DT1H1H1X"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sb_kql_iso_duration(bad[i], strlen(bad[i]), &t), SB_EINVAL);
    int64_t now;
    assert_int_equal(sb_kql_dt_parse("2026-01-01T12:00:00Z", 20, &now), SB_OK);
    assert_int_equal(sb_kql_iso_interval("PT1H", now, &s, &e), SB_OK);
    assert_int_equal(e - s, 3600 * TICKS_S);
    assert_int_equal(e, now);
    assert_int_equal(sb_kql_iso_interval("2026-01-01T00:00:00.000Z/2026-01-01T01:00:00.000Z", now, &s, &e),
                     SB_OK);
    assert_int_equal(e - s, 3600 * TICKS_S);
    assert_int_equal(sb_kql_iso_interval("2026-01-01T00:00:00Z/PT2H", now, &s, &e), SB_OK);
    assert_int_equal(e - s, 7200 * TICKS_S);
    assert_int_equal(sb_kql_iso_interval("PT2H/2026-01-01T00:00:00Z", now, &s, &e), SB_OK);
    assert_int_equal(e - s, 7200 * TICKS_S);
    assert_int_equal(sb_kql_iso_interval("2026-01-02T00:00:00Z/2026-01-01T00:00:00Z", now, &s, &e),
                     SB_EINVAL);
    assert_int_equal(sb_kql_iso_interval("PT1H/PT1H", now, &s, &e), SB_EINVAL);
    assert_int_equal(sb_kql_iso_interval("yesterday", now, &s, &e), SB_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idents_and_punct),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_numbers_and_timespans),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_lex_errors),
        cmocka_unit_test(test_raw_text),
        cmocka_unit_test(test_error_excerpt),
        cmocka_unit_test(test_datetime_text),
        cmocka_unit_test(test_timespan_text),
        cmocka_unit_test(test_iso_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
