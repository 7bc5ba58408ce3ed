/*
 * test_kql_parser.c - the syntax tree of every operator and expression form,
 * precedence, let statements, datetime()/timespan() raw literals, and the
 * syntax errors: the message and the exact line:column of each.  Also every
 * prefix of a long query, one byte at a time, must parse or fail cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kql/ast.h"
#include "kql/datetime.h"
#include "util/alloc.h"
#include "util/error.h"

static sb_kql_arena arena;
static char err[1024];

static int setup(void **state) {
    sb_kql_arena_init(&arena);
    return 0;
}

static int teardown(void **state) {
    sb_kql_arena_free(&arena);
    return 0;
}

static sb_kql_query *parse_ok(const char *src) {
    sb_kql_query *q = NULL;
    int rc = sb_kql_parse(src, strlen(src), &arena, &q, err, sizeof err);
    if (rc != SB_OK)
        fail_msg("parse failed: %s", err);
    return q;
}

/* The error's first line must be exactly want. */
static void parse_fails(const char *src, const char *want) {
    sb_kql_query *q = NULL;
    assert_int_equal(sb_kql_parse(src, strlen(src), &arena, &q, err, sizeof err), SB_EINVAL);
    assert_null(q);
    char first[512];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(err, "\n"), err);
    assert_string_equal(first, want);
}

static void test_pipeline_shape(void **state) {
    sb_kql_query *q =
        parse_ok("SignalRServiceDiagnosticLogs\n| where ConnectionType == \"Client\"\n"
                 "| summarize count() by ConnectionId, _ResourceId\n| sort by count_ desc, X asc nulls last"
                 "\n| take 10 | project a, B = a + 1 | extend C = 2 | project-away a, B* | project-keep C"
                 " | project-rename D = C | distinct D | top 5 by D asc | count | render timechart with "
                 "(title = \"t\", xtitle = \"x\")");
    assert_string_equal(q->table, "SignalRServiceDiagnosticLogs");
    assert_int_equal(q->nops, 13);
    static const sb_kql_op_kind kinds[] = {
        SB_KQL_O_WHERE,          SB_KQL_O_SUMMARIZE, SB_KQL_O_SORT,         SB_KQL_O_TAKE,
        SB_KQL_O_PROJECT,        SB_KQL_O_EXTEND,    SB_KQL_O_PROJECT_AWAY, SB_KQL_O_PROJECT_KEEP,
        SB_KQL_O_PROJECT_RENAME, SB_KQL_O_DISTINCT,  SB_KQL_O_TOP,          SB_KQL_O_COUNT,
        SB_KQL_O_RENDER};
    for (size_t i = 0; i < 13; i++)
        assert_int_equal(q->ops[i].kind, kinds[i]);
    const sb_kql_op *sum = &q->ops[1];
    assert_int_equal(sum->nitems, 1);
    assert_int_equal(sum->items[0].expr->kind, SB_KQL_E_CALL);
    assert_string_equal(sum->items[0].expr->s, "count");
    assert_int_equal(sum->nby, 2);
    assert_string_equal(sum->by[1].expr->s, "_ResourceId");
    const sb_kql_op *sort = &q->ops[2];
    assert_int_equal(sort->nkeys, 2);
    assert_int_equal(sort->keys[0].desc, 1);
    assert_int_equal(sort->keys[1].desc, 0);
    assert_int_equal(sort->keys[1].nulls, 2);
    assert_string_equal(q->ops[4].items[1].name, "B");
    assert_null(q->ops[4].items[0].name);
    assert_string_equal(q->ops[6].items[1].name, "B*");
    assert_string_equal(q->ops[8].items[0].name, "D");
    assert_string_equal(q->ops[8].items[0].expr->s, "C");
    assert_int_equal(q->ops[10].keys[0].desc, 0);
    assert_string_equal(q->ops[12].viz, "timechart");
    assert_string_equal(q->ops[12].title, "t");
    assert_int_equal(q->ops[12].pos,
                     strlen("SignalRServiceDiagnosticLogs\n| where ConnectionType == \"Client\"\n"
                            "| summarize count() by ConnectionId, _ResourceId\n| sort by count_ desc, X "
                            "asc nulls last\n| take 10 | project a, B = a + 1 | extend C = 2 | "
                            "project-away a, B* | project-keep C | project-rename D = C | distinct D | "
                            "top 5 by D asc | count | "));
}

static void test_precedence(void **state) {
    sb_kql_query *q = parse_ok("T | where a == 1 or b > 2 and not(c) or -d * 3 + 4 < 5");
    const sb_kql_expr *e = q->ops[0].expr;
    /* ((a == 1) or ((b > 2) and not(c))) or (((-d * 3) + 4) < 5) */
    assert_int_equal(e->op, SB_KQL_OP_OR);
    assert_int_equal(e->args[0]->op, SB_KQL_OP_OR);
    assert_int_equal(e->args[0]->args[1]->op, SB_KQL_OP_AND);
    const sb_kql_expr *lt = e->args[1];
    assert_int_equal(lt->op, SB_KQL_OP_LT);
    assert_int_equal(lt->args[0]->op, SB_KQL_OP_ADD);
    assert_int_equal(lt->args[0]->args[0]->op, SB_KQL_OP_MUL);
    assert_int_equal(lt->args[0]->args[0]->args[0]->kind, SB_KQL_E_NEG);
}

static void test_string_operators(void **state) {
    sb_kql_query *q =
        parse_ok("T | where a has 'x' and a !has_cs 'y' and a contains 'z' and a !startswith 'w' "
                 "and a endswith_cs 'v' and a matches regex '^a+' and a in ('p', 'q') and a !in~ ('r') "
                 "and n between (1 .. 10) and n !between (2 .. 3) and a =~ 'A' and a !~ 'B' and a "
                 "hasprefix 'h' and a hassuffix 's'");
    const sb_kql_expr *e = q->ops[0].expr;
    const sb_kql_expr *terms[14];
    for (int i = 13; i > 0; i--) {
        terms[i] = e->args[1];
        e = e->args[0];
    }
    terms[0] = e;
    assert_int_equal(terms[0]->op, SB_KQL_OP_HAS);
    assert_int_equal(terms[1]->op, SB_KQL_OP_HAS_CS);
    assert_true(terms[1]->negated);
    assert_int_equal(terms[2]->op, SB_KQL_OP_CONTAINS);
    assert_int_equal(terms[3]->op, SB_KQL_OP_STARTSWITH);
    assert_true(terms[3]->negated);
    assert_int_equal(terms[4]->op, SB_KQL_OP_ENDSWITH_CS);
    assert_int_equal(terms[5]->op, SB_KQL_OP_MATCHES_REGEX);
    assert_int_equal(terms[6]->kind, SB_KQL_E_IN);
    assert_int_equal(terms[6]->nargs, 3);
    assert_false(terms[6]->negated);
    assert_int_equal(terms[7]->kind, SB_KQL_E_IN);
    assert_true(terms[7]->negated && terms[7]->icase);
    assert_int_equal(terms[8]->kind, SB_KQL_E_BETWEEN);
    assert_true(terms[9]->negated);
    assert_int_equal(terms[10]->op, SB_KQL_OP_EQ_CI);
    assert_int_equal(terms[11]->op, SB_KQL_OP_NE_CI);
    assert_int_equal(terms[12]->op, SB_KQL_OP_HASPREFIX);
    assert_int_equal(terms[13]->op, SB_KQL_OP_HASSUFFIX);
}

static void test_literals(void **state) {
    sb_kql_query *q =
        parse_ok("T | project datetime(2026-01-02 03:04:05.5), datetime('2026-01-02'), datetime(null), "
                 "timespan(1.02:00:00), time(2), 5m, -3, -1.5, true, false, 'x', -2h");
    const sb_kql_named *it = q->ops[0].items;
    int64_t t;
    assert_int_equal(sb_kql_dt_parse("2026-01-02T03:04:05.5", 21, &t), SB_OK);
    assert_int_equal(it[0].expr->lit_type, SB_KQL_T_DATETIME);
    assert_int_equal(it[0].expr->i, t);
    assert_int_equal(it[1].expr->i,
                     t - (3 * 3600 + 4 * 60 + 5) * SB_KQL_TICKS_PER_SECOND - SB_KQL_TICKS_PER_SECOND / 2);
    assert_int_equal(it[2].expr->lit_type, SB_KQL_T_NULL);
    assert_int_equal(it[2].expr->op, SB_KQL_T_DATETIME);
    assert_int_equal(it[3].expr->i, SB_KQL_TICKS_PER_DAY + 2 * 3600 * SB_KQL_TICKS_PER_SECOND);
    assert_int_equal(it[4].expr->i, 2 * SB_KQL_TICKS_PER_DAY);
    assert_int_equal(it[5].expr->lit_type, SB_KQL_T_TIMESPAN);
    assert_int_equal(it[6].expr->i, -3); /* folded */
    assert_true(it[7].expr->r == -1.5);
    assert_int_equal(it[8].expr->lit_type, SB_KQL_T_BOOL);
    assert_int_equal(it[8].expr->i, 1);
    assert_int_equal(it[9].expr->i, 0);
    assert_string_equal(it[10].expr->s, "x");
    assert_int_equal(it[11].expr->i, -2 * 3600 * SB_KQL_TICKS_PER_SECOND);
}

static void test_lets_and_calls(void **state) {
    sb_kql_query *q =
        parse_ok("let since = ago(1h);\nlet who = \"alice\";\nT | where TimeGenerated > since and "
                 "UserId == who | summarize arg_max(TimeGenerated, *), n = count(*) by bin(T2, 1m);");
    assert_int_equal(q->nlets, 2);
    assert_string_equal(q->lets[0].name, "since");
    assert_int_equal(q->lets[0].expr->kind, SB_KQL_E_CALL);
    assert_int_equal(q->ops[1].items[0].expr->args[1]->kind, SB_KQL_E_STAR);
    assert_int_equal(q->ops[1].items[1].expr->args[0]->kind, SB_KQL_E_STAR);
    assert_string_equal(q->ops[1].items[1].name, "n");
    assert_string_equal(q->ops[1].by[0].expr->s, "bin");
    parse_ok("T | summarize by a");
    parse_ok("T");
    parse_ok("T // only a comment\n");
    parse_ok("T | where f()");
}

static void test_syntax_errors(void **state) {
    parse_fails("SignalRServiceDiagnosticLogs | wher x",
                "Syntax error at 1:32: expected an operator after '|', found 'wher' (did you mean 'where'?)");
    parse_fails(
        "T | frobnicate",
        "Syntax error at 1:5: expected an operator after '|', found 'frobnicate' (supported: where, project, "
        "project-away, project-keep, project-rename, extend, summarize, order by, sort by, take, limit, top, "
        "distinct, count, render)");
    parse_fails("T |", "Syntax error at 1:4: expected an operator after '|', found the end of the query");
    parse_fails("T | where UserId == 'alice", "Syntax error at 1:21: unterminated string literal");
    parse_fails("T\n| where (a == 1",
                "Syntax error at 2:16: expected ')' to close '(', found the end of the query");
    parse_fails("T | where a = 1",
                "Syntax error at 1:13: '=' is not a comparison; use '==' (or '=~' to ignore case)");
    parse_fails("T | sort TimeGenerated",
                "Syntax error at 1:10: expected 'by' after 'sort', found 'TimeGenerated'");
    parse_fails("T | take", "Syntax error at 1:9: expected an expression, found the end of the query");
    parse_fails("T | where a in 1", "Syntax error at 1:16: expected '(' after 'in', found '1'");
    parse_fails("T | where a between (1, 2)",
                "Syntax error at 1:23: expected '..' in 'between (low .. high)', found ','");
    parse_fails("T | where a matches 'x'",
                "Syntax error at 1:21: expected 'regex' after 'matches', found ''x''");
    parse_fails("T | where a ! has 'x'", "Syntax error at 1:13: expected an operator such as '!in', '!has' "
                                         "or '!contains' after '!', found 'has'");
    parse_fails("T | where f(a,", "Syntax error at 1:15: expected an expression, found the end of the query");
    parse_fails("T | where f(a b)",
                "Syntax error at 1:15: expected ',' or ')' in the arguments of f(), found 'b'");
    parse_fails("T x", "Syntax error at 1:3: expected '|' after the table name, found 'x'");
    parse_fails("T | count; drop table x; --",
                "Syntax error at 1:12: expected '|' or the end of the query, found 'drop'");
    parse_fails("let x = 1 T", "Syntax error at 1:11: expected ';' to end the let statement, found 'T'");
    parse_fails("| where x", "Syntax error at 1:1: expected a table name, found '|'");
    parse_fails("", "Syntax error at 1:1: expected a table name, found the end of the query");
    parse_fails("T | where datetime(2026-13-01) > x",
                "Syntax error at 1:20: invalid datetime literal '2026-13-01'");
    parse_fails("T | where datetime(2026-01-01", "Syntax error at 1:19: expected ')' to close datetime(");
    parse_fails("T | project timespan(abc)", "Syntax error at 1:22: invalid timespan literal 'abc'");
    parse_fails("T | top 5 by a, b",
                "Syntax error at 1:17: 'top' takes one sort key; use 'sort by' then 'take' for more");
    parse_fails(
        "T | summarize",
        "Syntax error at 1:14: expected aggregates or 'by' after 'summarize', found the end of the query");
    parse_fails("T | sort by a nulls middle",
                "Syntax error at 1:21: expected 'first' or 'last' after 'nulls', found 'middle'");
    parse_fails("T | project-away", "Syntax error at 1:17: expected a column name or a wildcard pattern "
                                    "after 'project-away', found the end of the query");
    parse_fails("T | render timechart with (title = x)",
                "Syntax error at 1:36: the render title must be a string literal");
    parse_fails("T | where \xc3\xa9 @ 1", "Syntax error at 1:11: unexpected character");
}

static void test_depth_limit(void **state) {
    char q[2000] = "T | where ";
    for (int i = 0; i < 300; i++)
        strcat(q, "(");
    strcat(q, "1");
    sb_kql_query *out;
    assert_int_equal(sb_kql_parse(q, strlen(q), &arena, &out, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "nested too deeply"));
    char *big = sb_malloc(SB_KQL_MAX_QUERY_BYTES + 2);
    memset(big, ' ', SB_KQL_MAX_QUERY_BYTES + 1);
    big[0] = 'T';
    assert_int_equal(sb_kql_parse(big, SB_KQL_MAX_QUERY_BYTES + 1, &arena, &out, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "longer than"));
    sb_free(big);
}

/* Every prefix of a query, one byte longer each time: each parses or fails with a positioned syntax error. */
static void test_prefixes_byte_at_a_time(void **state) {
    const char *q =
        "let w = 1h;\nSignalRServiceDiagnosticLogs\n| where TimeGenerated > ago(w) and Message has \"a\\\"b\""
        " and UserId in~ ('x', @'y')\n| summarize n = count(), s = make_set(UserId) by bin(TimeGenerated, "
        "1min)\n| sort by n desc nulls first | take 5 | render timechart with (title='z')";
    size_t n = strlen(q), ok = 0;
    for (size_t len = 0; len <= n; len++) {
        sb_kql_arena a;
        sb_kql_arena_init(&a);
        sb_kql_query *out = NULL;
        char e[512] = "";
        int rc = sb_kql_parse(q, len, &a, &out, e, sizeof e);
        if (rc == SB_OK) {
            assert_non_null(out);
            ok++;
        } else {
            assert_int_equal(rc, SB_EINVAL);
            assert_int_equal(strncmp(e, "Syntax error at ", 16), 0);
            assert_non_null(strchr(e, '^'));
        }
        sb_kql_arena_free(&a);
    }
    assert_true(ok > 10); /* e.g. every prefix ending after a complete operator */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lets_and_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test(test_prefixes_byte_at_a_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
