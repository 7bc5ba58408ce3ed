/*
 * parser.c - recursive descent from tokens to the syntax tree; see ast.h.
 *
 * Grammar (lowest precedence first):
 *   query     := { 'let' NAME '=' expr ';' } tabular [';']
 *   tabular   := NAME { '|' operator }
 *   expr      := and { 'or' and }
 *   and       := compare { 'and' compare }
 *   compare   := additive [ cmpop additive | ['!'] 'in' ['~'] '(' list ')'
 *                         | ['!'] 'between' '(' additive '..' additive ')' | 'matches' 'regex' additive ]
 *   additive  := term { ('+'|'-') term }
 *   term      := unary { ('*'|'/'|'%') unary }
 *   unary     := '-' unary | primary
 *   primary   := literal | NAME | NAME '(' args ')' | '(' expr ')' | datetime(raw) | timespan(raw)
 *
 * Errors unwind with longjmp to sb_kql_parse: every allocation is in the
 * arena, so nothing leaks.  The first error wins and is reported at the
 * offending token with the expectation that failed, e.g.
 * "expected an operator after '|', found 'wher' (did you mean 'where'?)".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kql/ast.h"
#include "kql/datetime.h"
#include "kql/lexer.h"
#include "util/error.h"

typedef struct parser {
    sb_kql_lexer lx;
    sb_kql_token tok, nxt;
    sb_kql_arena *a;
    const char *src;
    size_t len;
    int depth;
    jmp_buf fail;
    char *err;
    size_t errlen;
} parser;

static const char *const operator_names[] = {
    "where", "filter", "project", "project-away", "project-keep", "project-rename", "extend", "summarize",
    "order", "sort",   "take",    "limit",        "top",          "distinct",       "count",  "render",
};

static void fail_at(parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
static void fail_at(parser *p, size_t pos, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sb_kql_format_error(p->err, p->errlen, p->src, p->len, pos, "Syntax", msg);
    longjmp(p->fail, 1);
}

static const char *describe(parser *p, const sb_kql_token *t) {
    return sb_kql_tok_describe(p->a, p->src, t);
}

static void check_lex_error(parser *p) {
    if (p->tok.kind == SB_KQL_TOK_ERROR)
        fail_at(p, p->tok.pos, "%s", p->tok.text);
}

static void advance(parser *p) {
    p->tok = p->nxt;
    sb_kql_lex_next(&p->lx, &p->nxt);
    check_lex_error(p);
}

static int is_punct(const sb_kql_token *t, int op) {
    return t->kind == SB_KQL_TOK_PUNCT && t->op == op;
}
static int is_word(const sb_kql_token *t, const char *w) {
    return t->kind == SB_KQL_TOK_IDENT && strcmp(t->text, w) == 0;
}

static void expect_punct(parser *p, int op, const char *what, const char *context) {
    if (!is_punct(&p->tok, op))
        fail_at(p, p->tok.pos, "expected %s%s, found %s", what, context, describe(p, &p->tok));
    advance(p);
}

static void expect_word(parser *p, const char *w, const char *context) {
    if (!is_word(&p->tok, w))
        fail_at(p, p->tok.pos, "expected '%s'%s, found %s", w, context, describe(p, &p->tok));
    advance(p);
}

static char *expect_name(parser *p, const char *what) {
    if (p->tok.kind != SB_KQL_TOK_IDENT)
        fail_at(p, p->tok.pos, "expected %s, found %s", what, describe(p, &p->tok));
    char *s = p->tok.text;
    advance(p);
    return s;
}

static sb_kql_expr *node(parser *p, sb_kql_expr_kind kind, size_t pos) {
    sb_kql_expr *e = sb_kql_alloc(p->a, sizeof *e);
    e->kind = kind;
    e->pos = pos;
    return e;
}

static void add_arg(parser *p, sb_kql_expr *e, sb_kql_expr *arg) {
    sb_kql_push(p->a, &e->args, &e->nargs, &arg, sizeof arg);
}

static sb_kql_expr *binary(parser *p, int op, size_t pos, sb_kql_expr *l, sb_kql_expr *r) {
    sb_kql_expr *e = node(p, SB_KQL_E_BINARY, pos);
    e->op = op;
    add_arg(p, e, l);
    add_arg(p, e, r);
    return e;
}

static sb_kql_expr *parse_expr(parser *p);

/* datetime(...) / timespan(...) with raw text: the lookahead token is the '(' just lexed. */
static sb_kql_expr *raw_literal(parser *p, int is_datetime) {
    size_t pos = p->tok.pos;
    size_t start, end;
    if (!sb_kql_lex_raw(&p->lx, &start, &end))
        fail_at(p, p->nxt.pos, "expected ')' to close %s(", is_datetime ? "datetime" : "timespan");
    const char *s = p->src + start;
    size_t n = end - start;
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    /* the quoted form datetime('2026-01-01') */
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0])
        s++, n -= 2;
    sb_kql_expr *e = node(p, SB_KQL_E_LITERAL, pos);
    if (is_datetime) {
        e->lit_type = SB_KQL_T_DATETIME;
        if (n == 0 || (n == 4 && memcmp(s, "null", 4) == 0)) {
            e->lit_type = SB_KQL_T_NULL;
            e->op = SB_KQL_T_DATETIME; /* a typed null: the type travels in op */
        } else if (sb_kql_dt_parse(s, n, &e->i) != SB_OK) {
            fail_at(p, (size_t)(s - p->src), "invalid datetime literal '%.*s'", (int)(n > 60 ? 60 : n), s);
        }
    } else {
        e->lit_type = SB_KQL_T_TIMESPAN;
        int64_t days = 0;
        size_t k = 0;
        while (k < n && s[k] >= '0' && s[k] <= '9' && days < INT64_C(10675199))
            days = days * 10 + (s[k++] - '0');
        if (n && k == n) /* timespan(2) is two days */
            e->i = days * SB_KQL_TICKS_PER_DAY;
        else if (sb_kql_ts_parse(s, n, &e->i) != SB_OK)
            fail_at(p, (size_t)(s - p->src), "invalid timespan literal '%.*s'", (int)(n > 60 ? 60 : n), s);
    }
    /* restart the token stream after the ')' */
    sb_kql_lex_next(&p->lx, &p->tok);
    check_lex_error(p);
    sb_kql_lex_next(&p->lx, &p->nxt);
    return e;
}

static sb_kql_expr *parse_primary(parser *p) {
    sb_kql_token t = p->tok;
    switch (t.kind) {
    case SB_KQL_TOK_LONG: {
        sb_kql_expr *e = node(p, SB_KQL_E_LITERAL, t.pos);
        e->lit_type = SB_KQL_T_LONG;
        e->i = t.i;
        advance(p);
        return e;
    }
    case SB_KQL_TOK_REAL: {
        sb_kql_expr *e = node(p, SB_KQL_E_LITERAL, t.pos);
        e->lit_type = SB_KQL_T_REAL;
        e->r = t.r;
        advance(p);
        return e;
    }
    case SB_KQL_TOK_TIMESPAN: {
        sb_kql_expr *e = node(p, SB_KQL_E_LITERAL, t.pos);
        e->lit_type = SB_KQL_T_TIMESPAN;
        e->i = t.i;
        advance(p);
        return e;
    }
    case SB_KQL_TOK_STRING: {
        sb_kql_expr *e = node(p, SB_KQL_E_LITERAL, t.pos);
        e->lit_type = SB_KQL_T_STRING;
        e->s = t.text;
        advance(p);
        return e;
    }
    case SB_KQL_TOK_IDENT: {
        if (is_punct(&p->nxt, SB_KQL_P_LPAREN)) {
            if (strcmp(t.text, "datetime") == 0)
                return raw_literal(p, 1);
            if (strcmp(t.text, "timespan") == 0 || strcmp(t.text, "time") == 0)
                return raw_literal(p, 0);
            sb_kql_expr *e = node(p, SB_KQL_E_CALL, t.pos);
            e->s = t.text;
            advance(p);
            advance(p);
            if (!is_punct(&p->tok, SB_KQL_P_RPAREN)) {
                for (;;) {
                    if (is_punct(&p->tok, SB_KQL_P_STAR) &&
                        (is_punct(&p->nxt, SB_KQL_P_COMMA) || is_punct(&p->nxt, SB_KQL_P_RPAREN))) {
                        add_arg(p, e, node(p, SB_KQL_E_STAR, p->tok.pos));
                        advance(p);
                    } else {
                        add_arg(p, e, parse_expr(p));
                    }
                    if (!is_punct(&p->tok, SB_KQL_P_COMMA))
                        break;
                    advance(p);
                }
            }
            expect_punct(p, SB_KQL_P_RPAREN, "',' or ')'",
                         sb_kql_sprintf(p->a, " in the arguments of %s()", t.text));
            return e;
        }
        if (strcmp(t.text, "true") == 0 || strcmp(t.text, "false") == 0) {
            sb_kql_expr *e = node(p, SB_KQL_E_LITERAL, t.pos);
            e->lit_type = SB_KQL_T_BOOL;
            e->i = t.text[0] == 't';
            advance(p);
            return e;
        }
        sb_kql_expr *e = node(p, SB_KQL_E_NAME, t.pos);
        e->s = t.text;
        advance(p);
        return e;
    }
    case SB_KQL_TOK_PUNCT:
        if (t.op == SB_KQL_P_LPAREN) {
            advance(p);
            sb_kql_expr *e = parse_expr(p);
            expect_punct(p, SB_KQL_P_RPAREN, "')'", " to close '('");
            return e;
        }
        break;
    default:
        break;
    }
    fail_at(p, t.pos, "expected an expression, found %s", describe(p, &t));
}

static sb_kql_expr *parse_unary(parser *p) {
    if (is_punct(&p->tok, SB_KQL_P_MINUS)) {
        size_t pos = p->tok.pos;
        advance(p);
        if (++p->depth > SB_KQL_MAX_DEPTH)
            fail_at(p, pos, "expression nested too deeply");
        sb_kql_expr *arg = parse_unary(p);
        p->depth--;
        /* fold -literal so "-1" and "-1h" are literals */
        if (arg->kind == SB_KQL_E_LITERAL &&
            (arg->lit_type == SB_KQL_T_LONG || arg->lit_type == SB_KQL_T_TIMESPAN)) {
            arg->i = (int64_t)(0 - (uint64_t)arg->i);
            arg->pos = pos;
            return arg;
        }
        if (arg->kind == SB_KQL_E_LITERAL && arg->lit_type == SB_KQL_T_REAL) {
            arg->r = -arg->r;
            arg->pos = pos;
            return arg;
        }
        sb_kql_expr *e = node(p, SB_KQL_E_NEG, pos);
        add_arg(p, e, arg);
        return e;
    }
    return parse_primary(p);
}

static sb_kql_expr *parse_term(parser *p) {
    sb_kql_expr *l = parse_unary(p);
    for (;;) {
        int op = is_punct(&p->tok, SB_KQL_P_STAR)      ? SB_KQL_OP_MUL
                 : is_punct(&p->tok, SB_KQL_P_SLASH)   ? SB_KQL_OP_DIV
                 : is_punct(&p->tok, SB_KQL_P_PERCENT) ? SB_KQL_OP_MOD
                                                       : 0;
        if (!op)
            return l;
        size_t pos = p->tok.pos;
        advance(p);
        l = binary(p, op, pos, l, parse_unary(p));
    }
}

static sb_kql_expr *parse_additive(parser *p) {
    sb_kql_expr *l = parse_term(p);
    for (;;) {
        int op = is_punct(&p->tok, SB_KQL_P_PLUS)    ? SB_KQL_OP_ADD
                 : is_punct(&p->tok, SB_KQL_P_MINUS) ? SB_KQL_OP_SUB
                                                     : 0;
        if (!op)
            return l;
        size_t pos = p->tok.pos;
        advance(p);
        l = binary(p, op, pos, l, parse_term(p));
    }
}

static const struct {
    const char *word;
    int op;
    int negatable;
} word_ops[] = {
    {"has", SB_KQL_OP_HAS, 1},
    {"has_cs", SB_KQL_OP_HAS_CS, 1},
    {"hasprefix", SB_KQL_OP_HASPREFIX, 1},
    {"hassuffix", SB_KQL_OP_HASSUFFIX, 1},
    {"contains", SB_KQL_OP_CONTAINS, 1},
    {"contains_cs", SB_KQL_OP_CONTAINS_CS, 1},
    {"startswith", SB_KQL_OP_STARTSWITH, 1},
    {"startswith_cs", SB_KQL_OP_STARTSWITH_CS, 1},
    {"endswith", SB_KQL_OP_ENDSWITH, 1},
    {"endswith_cs", SB_KQL_OP_ENDSWITH_CS, 1},
};

static int word_op(const sb_kql_token *t) {
    if (t->kind != SB_KQL_TOK_IDENT)
        return 0;
    for (size_t i = 0; i < sizeof word_ops / sizeof word_ops[0]; i++)
        if (strcmp(t->text, word_ops[i].word) == 0)
            return word_ops[i].op;
    return 0;
}

static sb_kql_expr *parse_in_list(parser *p, sb_kql_expr *l, size_t pos, int negated, int icase) {
    sb_kql_expr *e = node(p, SB_KQL_E_IN, pos);
    e->negated = negated;
    e->icase = icase;
    add_arg(p, e, l);
    expect_punct(p, SB_KQL_P_LPAREN, "'('", " after 'in'");
    for (;;) {
        add_arg(p, e, parse_additive(p));
        if (!is_punct(&p->tok, SB_KQL_P_COMMA))
            break;
        advance(p);
    }
    expect_punct(p, SB_KQL_P_RPAREN, "',' or ')'", " in the 'in' list");
    return e;
}

static sb_kql_expr *parse_compare(parser *p) {
    sb_kql_expr *l = parse_additive(p);
    size_t pos = p->tok.pos;
    static const struct {
        int punct, op;
    } sym[] = {
        {SB_KQL_P_EQ, SB_KQL_OP_EQ},          {SB_KQL_P_NE, SB_KQL_OP_NE},
        {SB_KQL_P_LT, SB_KQL_OP_LT},          {SB_KQL_P_LE, SB_KQL_OP_LE},
        {SB_KQL_P_GT, SB_KQL_OP_GT},          {SB_KQL_P_GE, SB_KQL_OP_GE},
        {SB_KQL_P_EQ_TILDE, SB_KQL_OP_EQ_CI}, {SB_KQL_P_NE_TILDE, SB_KQL_OP_NE_CI},
    };
    for (size_t i = 0; i < sizeof sym / sizeof sym[0]; i++)
        if (is_punct(&p->tok, sym[i].punct)) {
            advance(p);
            return binary(p, sym[i].op, pos, l, parse_additive(p));
        }
    if (is_punct(&p->tok, SB_KQL_P_ASSIGN))
        fail_at(p, pos, "'=' is not a comparison; use '==' (or '=~' to ignore case)");
    int negated = 0;
    if (is_punct(&p->tok, SB_KQL_P_BANG)) {
        if (p->nxt.kind != SB_KQL_TOK_IDENT || p->nxt.pos != p->tok.end)
            fail_at(p, pos, "expected an operator such as '!in', '!has' or '!contains' after '!', found %s",
                    describe(p, &p->nxt));
        negated = 1;
        advance(p);
    }
    int op = word_op(&p->tok);
    if (op) {
        advance(p);
        sb_kql_expr *e = binary(p, op, pos, l, parse_additive(p));
        e->negated = negated;
        return e;
    }
    if (is_word(&p->tok, "in") || is_word(&p->tok, "in~")) {
        int icase = p->tok.text[2] == '~';
        advance(p);
        return parse_in_list(p, l, pos, negated, icase);
    }
    if (is_word(&p->tok, "between")) {
        advance(p);
        sb_kql_expr *e = node(p, SB_KQL_E_BETWEEN, pos);
        e->negated = negated;
        add_arg(p, e, l);
        expect_punct(p, SB_KQL_P_LPAREN, "'('", " after 'between'");
        add_arg(p, e, parse_additive(p));
        expect_punct(p, SB_KQL_P_DOTDOT, "'..'", " in 'between (low .. high)'");
        add_arg(p, e, parse_additive(p));
        expect_punct(p, SB_KQL_P_RPAREN, "')'", " to close 'between ('");
        return e;
    }
    if (negated)
        fail_at(p, p->tok.pos, "expected an operator such as 'in', 'has' or 'contains' after '!', found %s",
                describe(p, &p->tok));
    if (is_word(&p->tok, "matches")) {
        advance(p);
        expect_word(p, "regex", " after 'matches'");
        return binary(p, SB_KQL_OP_MATCHES_REGEX, pos, l, parse_additive(p));
    }
    return l;
}

static sb_kql_expr *parse_and(parser *p) {
    sb_kql_expr *l = parse_compare(p);
    while (is_word(&p->tok, "and")) {
        size_t pos = p->tok.pos;
        advance(p);
        l = binary(p, SB_KQL_OP_AND, pos, l, parse_compare(p));
    }
    return l;
}

static sb_kql_expr *parse_expr(parser *p) {
    if (++p->depth > SB_KQL_MAX_DEPTH)
        fail_at(p, p->tok.pos, "expression nested too deeply");
    sb_kql_expr *l = parse_and(p);
    while (is_word(&p->tok, "or")) {
        size_t pos = p->tok.pos;
        advance(p);
        l = binary(p, SB_KQL_OP_OR, pos, l, parse_and(p));
    }
    p->depth--;
    return l;
}

/* [Name =] expr */
static sb_kql_named parse_named(parser *p) {
    sb_kql_named n = {0};
    if (p->tok.kind == SB_KQL_TOK_IDENT && is_punct(&p->nxt, SB_KQL_P_ASSIGN)) {
        n.name = p->tok.text;
        n.name_pos = p->tok.pos;
        advance(p);
        advance(p);
    }
    n.expr = parse_expr(p);
    if (!n.name)
        n.name_pos = n.expr->pos;
    return n;
}

static void parse_named_list(parser *p, sb_kql_named **items, size_t *n) {
    for (;;) {
        sb_kql_named it = parse_named(p);
        sb_kql_push(p->a, items, n, &it, sizeof it);
        if (!is_punct(&p->tok, SB_KQL_P_COMMA))
            return;
        advance(p);
    }
}

/* A column name or a pattern with '*' (project-away, project-keep): adjacent name and '*' tokens. */
static sb_kql_named parse_pattern(parser *p, const char *opname) {
    sb_kql_named n = {0};
    n.name_pos = p->tok.pos;
    size_t start = p->tok.pos, end = start;
    char *text = sb_kql_strdup(p->a, "");
    while ((p->tok.kind == SB_KQL_TOK_IDENT || is_punct(&p->tok, SB_KQL_P_STAR)) &&
           (end == start || p->tok.pos == end)) {
        text = sb_kql_sprintf(p->a, "%s%s", text, p->tok.kind == SB_KQL_TOK_IDENT ? p->tok.text : "*");
        end = p->tok.end;
        advance(p);
    }
    if (end == start)
        fail_at(p, p->tok.pos, "expected a column name or a wildcard pattern after '%s', found %s", opname,
                describe(p, &p->tok));
    n.name = text;
    return n;
}

static void parse_sort_keys(parser *p, sb_kql_op *op) {
    for (;;) {
        sb_kql_sortkey k = {0};
        k.expr = parse_expr(p);
        k.desc = 1;
        if (is_word(&p->tok, "asc")) {
            k.desc = 0;
            advance(p);
        } else if (is_word(&p->tok, "desc")) {
            advance(p);
        }
        if (is_word(&p->tok, "nulls")) {
            advance(p);
            if (is_word(&p->tok, "first"))
                k.nulls = 1;
            else if (is_word(&p->tok, "last"))
                k.nulls = 2;
            else
                fail_at(p, p->tok.pos, "expected 'first' or 'last' after 'nulls', found %s",
                        describe(p, &p->tok));
            advance(p);
        }
        sb_kql_push(p->a, &op->keys, &op->nkeys, &k, sizeof k);
        if (!is_punct(&p->tok, SB_KQL_P_COMMA))
            return;
        advance(p);
    }
}

/* Edit distance up to 3 (operator suggestions). */
static int distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 32 || lb > 32)
        return 99;
    int d[33][33];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static void parse_render(parser *p, sb_kql_op *op) {
    op->viz = expect_name(
        p, "a visualization after 'render' (timechart, columnchart, barchart, piechart, table, ...)");
    if (!is_word(&p->tok, "with"))
        return;
    advance(p);
    expect_punct(p, SB_KQL_P_LPAREN, "'('", " after 'with'");
    for (;;) {
        char *prop = expect_name(p, "a render property name");
        expect_punct(p, SB_KQL_P_ASSIGN, "'='", " after a render property name");
        sb_kql_expr *v = parse_additive(p);
        if (strcmp(prop, "title") == 0) {
            if (v->kind != SB_KQL_E_LITERAL || v->lit_type != SB_KQL_T_STRING)
                fail_at(p, v->pos, "the render title must be a string literal");
            op->title = v->s;
        }
        if (!is_punct(&p->tok, SB_KQL_P_COMMA))
            break;
        advance(p);
    }
    expect_punct(p, SB_KQL_P_RPAREN, "',' or ')'", " in the render properties");
}

static void parse_operator(parser *p, sb_kql_op *op) {
    advance(p); /* '|' */
    op->pos = p->tok.pos;
    if (p->tok.kind != SB_KQL_TOK_IDENT) {
        fail_at(p, p->tok.pos, "expected an operator after '|', found %s", describe(p, &p->tok));
    }
    const char *w = p->tok.text;
    op->name = w;
    int known = 0;
    for (size_t i = 0; i < sizeof operator_names / sizeof operator_names[0]; i++)
        known |= strcmp(w, operator_names[i]) == 0;
    if (!known) {
        const char *best = NULL;
        int bestd = 3;
        for (size_t i = 0; i < sizeof operator_names / sizeof operator_names[0]; i++) {
            int d = distance(w, operator_names[i]);
            if (d < bestd)
                bestd = d, best = operator_names[i];
        }
        if (best)
            fail_at(p, p->tok.pos, "expected an operator after '|', found %s (did you mean '%s'?)",
                    describe(p, &p->tok), best);
        fail_at(p, p->tok.pos,
                "expected an operator after '|', found %s (supported: where, project, project-away, "
                "project-keep, project-rename, extend, summarize, order by, sort by, take, limit, top, "
                "distinct, count, render)",
                describe(p, &p->tok));
    }
    advance(p);
    if (!strcmp(w, "where") || !strcmp(w, "filter")) {
        op->kind = SB_KQL_O_WHERE;
        op->expr = parse_expr(p);
    } else if (!strcmp(w, "project") || !strcmp(w, "extend")) {
        op->kind = w[0] == 'p' ? SB_KQL_O_PROJECT : SB_KQL_O_EXTEND;
        parse_named_list(p, &op->items, &op->nitems);
    } else if (!strcmp(w, "project-away") || !strcmp(w, "project-keep")) {
        op->kind = w[8] == 'a' ? SB_KQL_O_PROJECT_AWAY : SB_KQL_O_PROJECT_KEEP;
        for (;;) {
            sb_kql_named n = parse_pattern(p, w);
            sb_kql_push(p->a, &op->items, &op->nitems, &n, sizeof n);
            if (!is_punct(&p->tok, SB_KQL_P_COMMA))
                break;
            advance(p);
        }
    } else if (!strcmp(w, "project-rename")) {
        op->kind = SB_KQL_O_PROJECT_RENAME;
        for (;;) {
            sb_kql_named n = {0};
            n.name_pos = p->tok.pos;
            n.name = expect_name(p, "a new column name after 'project-rename'");
            expect_punct(p, SB_KQL_P_ASSIGN, "'='", " in 'project-rename NewName = OldName'");
            n.expr = node(p, SB_KQL_E_NAME, p->tok.pos);
            n.expr->s = expect_name(p, "the existing column name");
            sb_kql_push(p->a, &op->items, &op->nitems, &n, sizeof n);
            if (!is_punct(&p->tok, SB_KQL_P_COMMA))
                break;
            advance(p);
        }
    } else if (!strcmp(w, "summarize")) {
        op->kind = SB_KQL_O_SUMMARIZE;
        if (p->tok.kind == SB_KQL_TOK_EOF || is_punct(&p->tok, SB_KQL_P_PIPE) ||
            is_punct(&p->tok, SB_KQL_P_SEMI))
            fail_at(p, p->tok.pos, "expected aggregates or 'by' after 'summarize', found %s",
                    describe(p, &p->tok));
        if (!is_word(&p->tok, "by"))
            parse_named_list(p, &op->items, &op->nitems);
        if (is_word(&p->tok, "by")) {
            advance(p);
            parse_named_list(p, &op->by, &op->nby);
        }
    } else if (!strcmp(w, "order") || !strcmp(w, "sort")) {
        op->kind = SB_KQL_O_SORT;
        expect_word(p, "by", sb_kql_sprintf(p->a, " after '%s'", w));
        parse_sort_keys(p, op);
    } else if (!strcmp(w, "take") || !strcmp(w, "limit")) {
        op->kind = SB_KQL_O_TAKE;
        op->expr = parse_expr(p);
    } else if (!strcmp(w, "top")) {
        op->kind = SB_KQL_O_TOP;
        op->expr = parse_additive(p);
        expect_word(p, "by", " after the row count of 'top'");
        parse_sort_keys(p, op);
        if (op->nkeys != 1)
            fail_at(p, op->keys[1].expr->pos, "'top' takes one sort key; use 'sort by' then 'take' for more");
    } else if (!strcmp(w, "distinct")) {
        op->kind = SB_KQL_O_DISTINCT;
        if (is_punct(&p->tok, SB_KQL_P_STAR)) {
            op->star = 1;
            advance(p);
        } else {
            parse_named_list(p, &op->items, &op->nitems);
        }
    } else if (!strcmp(w, "count")) {
        op->kind = SB_KQL_O_COUNT;
    } else {
        op->kind = SB_KQL_O_RENDER;
        parse_render(p, op);
    }
}

static void parse_query(parser *p, sb_kql_query *q) {
    while (is_word(&p->tok, "let")) {
        advance(p);
        sb_kql_let l = {0};
        l.pos = p->tok.pos;
        l.name = expect_name(p, "a name after 'let'");
        expect_punct(p, SB_KQL_P_ASSIGN, "'='", sb_kql_sprintf(p->a, " after 'let %s'", l.name));
        l.expr = parse_expr(p);
        expect_punct(p, SB_KQL_P_SEMI, "';'", " to end the let statement");
        sb_kql_push(p->a, &q->lets, &q->nlets, &l, sizeof l);
    }
    q->table_pos = p->tok.pos;
    if (p->tok.kind != SB_KQL_TOK_IDENT)
        fail_at(p, p->tok.pos, "expected a table name, found %s", describe(p, &p->tok));
    q->table = p->tok.text;
    advance(p);
    while (is_punct(&p->tok, SB_KQL_P_PIPE)) {
        sb_kql_op op = {0};
        parse_operator(p, &op);
        sb_kql_push(p->a, &q->ops, &q->nops, &op, sizeof op);
    }
    if (is_punct(&p->tok, SB_KQL_P_SEMI))
        advance(p);
    if (p->tok.kind != SB_KQL_TOK_EOF) {
        if (p->tok.kind == SB_KQL_TOK_IDENT && q->nops == 0 && q->nlets == 0)
            fail_at(p, p->tok.pos, "expected '|' after the table name, found %s", describe(p, &p->tok));
        fail_at(p, p->tok.pos, "expected '|' or the end of the query, found %s", describe(p, &p->tok));
    }
}

int sb_kql_parse(const char *src, size_t len, sb_kql_arena *a, sb_kql_query **out, char *err, size_t errlen) {
    parser *p = sb_kql_alloc(a, sizeof *p);
    p->a = a;
    p->src = src;
    p->len = len;
    p->err = err;
    p->errlen = errlen;
    *out = NULL;
    if (setjmp(p->fail))
        return SB_EINVAL;
    if (len > SB_KQL_MAX_QUERY_BYTES)
        fail_at(p, 0, "the query is longer than %d bytes", SB_KQL_MAX_QUERY_BYTES);
    sb_kql_lex_init(&p->lx, src, len, a);
    sb_kql_lex_next(&p->lx, &p->nxt);
    advance(p);
    sb_kql_query *q = sb_kql_alloc(a, sizeof *q);
    parse_query(p, q);
    *out = q;
    return SB_OK;
}
