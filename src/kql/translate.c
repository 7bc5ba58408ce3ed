/*
 * translate.c - KQL syntax tree to SQL; see translate.h for the invariants.
 *
 * Every expression is translated bottom-up into (SQL text, KQL type); the
 * type decides the SQL: `a + b` is integer addition for longs but
 * kql_dt_add() for datetime + timespan, `a has b` is a kql_strop() call on
 * text.  Type errors are reported the way Kusto words them ("Cannot compare
 * values of types string and long").  Names resolve to a column of the
 * current stage first, then to an earlier `let`.
 *
 * Column naming follows Kusto's binder: `Name = e` wins; a bare column
 * keeps its name and bin/floor/tostring/tolong/... pass their first
 * argument's name through; unnamed aggregates are prefix_arg (count_,
 * dcount_X, set_X, countif_); other unnamed columns are Column1, Column2, ...
 * (one counter per query, skipping names in use); duplicates get 1, 2, ...
 *
 * Errors unwind with longjmp; all memory is in the arena.
 */
#include "kql/translate.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kql/datetime.h"
#include "kql/lexer.h"
#include "util/error.h"

#define MAX_TR_DEPTH 400 /* left-deep chains like 1+1+1+... are not bounded by the parser's depth */

typedef struct col {
    const char *name;
    sb_kql_type type;
} col;

typedef struct key {
    int desc, nulls_first;
} key;

typedef struct tr {
    sb_kql_arena *a;
    const char *src;
    size_t srclen;
    jmp_buf fail;
    char *err;
    size_t errlen;
    const sb_kql_query *q;
    const sb_kql_translate_opts *o;
    sb_kql_param *params;
    size_t nparams;
    char *ctes; /* "s0 AS (...), s1 AS (...)" */
    int nstages;
    col *cols; /* the current stage's visible columns */
    size_t ncols;
    key *keys; /* the current stage's hidden sort keys "#k0".. */
    size_t nkeys;
    const char *opname; /* for messages: "'where' operator" */
    size_t let_limit;   /* lets visible to the expression being translated */
    int agg_ok;         /* aggregates allowed here (summarize), and then bare columns are not */
    int in_agg;         /* inside an aggregate's arguments */
    int naggs, nminmax; /* aggregates in this summarize (arg_max needs to be alone) */
    int colnum;         /* the ColumnN counter */
    int depth;
} tr;

typedef struct tx {
    char *sql;
    sb_kql_type type;
} tx;

static void fail_at(tr *t, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
static void fail_at(tr *t, size_t pos, const char *fmt, ...) {
    char msg[512], full[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (t->opname)
        snprintf(full, sizeof full, "%s: %s", t->opname, msg);
    else
        snprintf(full, sizeof full, "%s", msg);
    sb_kql_format_error(t->err, t->errlen, t->src, t->srclen, pos, "Semantic", full);
    longjmp(t->fail, 1);
}

const char *sb_kql_type_name(sb_kql_type ty) {
    switch (ty) {
    case SB_KQL_T_BOOL:
        return "bool";
    case SB_KQL_T_INT:
        return "int";
    case SB_KQL_T_LONG:
        return "long";
    case SB_KQL_T_REAL:
        return "real";
    case SB_KQL_T_STRING:
        return "string";
    case SB_KQL_T_DATETIME:
        return "datetime";
    case SB_KQL_T_TIMESPAN:
        return "timespan";
    case SB_KQL_T_DYNAMIC:
        return "dynamic";
    default:
        return "null";
    }
}

int sb_kql_table_allowed(const char *name) {
    return strcmp(name, "SignalRServiceDiagnosticLogs") == 0 || strcmp(name, "AzureActivity") == 0 ||
           strcmp(name, "AzureMetrics") == 0;
}

sb_kql_type sb_kql_column_type(const char *name, const char *decltype) {
    if (strcmp(name, "TimeGenerated") == 0 || strcmp(name, "TimeStamp") == 0)
        return SB_KQL_T_DATETIME;
    if (decltype &&strncasecmp(decltype, "INT", 3) == 0)
        return SB_KQL_T_LONG;
    if (decltype && (strncasecmp(decltype, "REAL", 4) == 0 || strncasecmp(decltype, "DOUBLE", 6) == 0 ||
                     strncasecmp(decltype, "FLOAT", 5) == 0))
        return SB_KQL_T_REAL;
    return SB_KQL_T_STRING;
}

/* ---- SQL text helpers ---------------------------------------------------------------------------- */

static char *quote_ident(tr *t, const char *name) {
    size_t n = strlen(name), extra = 0;
    for (size_t i = 0; i < n; i++)
        extra += name[i] == '"';
    char *q = sb_kql_alloc(t->a, n + extra + 3), *o = q;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '"')
            *o++ = '"';
        *o++ = name[i];
    }
    *o++ = '"';
    *o = '\0';
    return q;
}

static char *param(tr *t, sb_kql_type type, int64_t i, double r, const char *s) {
    sb_kql_param p = {type, i, r, s};
    sb_kql_push(t->a, &t->params, &t->nparams, &p, sizeof p);
    return sb_kql_sprintf(t->a, "?%zu", t->nparams);
}

static char *dt_param(tr *t, int64_t ticks) {
    char *text = sb_kql_alloc(t->a, SB_KQL_DT_TEXT_LEN + 1);
    sb_kql_dt_format(ticks, text);
    return param(t, SB_KQL_T_DATETIME, ticks, 0, text);
}

static int is_numeric(sb_kql_type ty) {
    return ty == SB_KQL_T_INT || ty == SB_KQL_T_LONG || ty == SB_KQL_T_REAL;
}
static int is_integral(sb_kql_type ty) {
    return ty == SB_KQL_T_INT || ty == SB_KQL_T_LONG;
}

/* Can values of a and b be compared / unified? */
static int compatible(sb_kql_type a, sb_kql_type b) {
    return a == b || a == SB_KQL_T_NULL || b == SB_KQL_T_NULL || (is_numeric(a) && is_numeric(b));
}

static sb_kql_type unify(sb_kql_type a, sb_kql_type b) {
    if (a == SB_KQL_T_NULL)
        return b;
    if (b == SB_KQL_T_NULL || a == b)
        return a;
    if (a == SB_KQL_T_REAL || b == SB_KQL_T_REAL)
        return SB_KQL_T_REAL;
    return SB_KQL_T_LONG;
}

/* ---- names ------------------------------------------------------------------------------------- */

static const col *find_col(const tr *t, const char *name) {
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

static const sb_kql_let *find_let(const tr *t, const char *name) {
    for (size_t i = t->let_limit; i-- > 0;)
        if (strcmp(t->q->lets[i].name, name) == 0)
            return &t->q->lets[i];
    return NULL;
}

/* The expression a let name stands for (so ago(window) folds when `let window = 1h;`). */
static const sb_kql_expr *resolve(const tr *t, const sb_kql_expr *e) {
    for (int hops = 0; e->kind == SB_KQL_E_NAME && !find_col(t, e->s) && hops < 64; hops++) {
        const sb_kql_let *l = find_let(t, e->s);
        if (!l)
            break;
        e = l->expr;
    }
    return e;
}

static int passes_name(const char *fn) {
    static const char *const pass[] = {"bin",   "floor",    "bin_at", "bin_auto",   "tostring",  "tolong",
                                       "toint", "todouble", "toreal", "todatetime", "startofday"};
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++)
        if (strcmp(fn, pass[i]) == 0)
            return 1;
    return 0;
}

/* Kusto's name(expr): a bare column's name, passed through some functions; NULL when none. */
static const char *expr_name(const tr *t, const sb_kql_expr *e) {
    if (e->kind == SB_KQL_E_NAME)
        return find_col(t, e->s) ? e->s : NULL;
    if (e->kind == SB_KQL_E_CALL && e->nargs && passes_name(e->s))
        return expr_name(t, e->args[0]);
    return NULL;
}

static int name_taken(const col *cols, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(cols[i].name, name) == 0)
            return 1;
    return 0;
}

/* ColumnN with the query-wide counter, skipping names in cols and in the current stage. */
static const char *next_column_name(tr *t, const col *cols, size_t n) {
    for (;;) {
        const char *name = sb_kql_sprintf(t->a, "Column%d", ++t->colnum);
        if (!name_taken(cols, n, name) && !find_col(t, name))
            return name;
    }
}

/* name, name1, name2, ... : the first not in cols. */
static const char *unique_name(tr *t, const col *cols, size_t n, const char *name) {
    if (!name_taken(cols, n, name))
        return name;
    for (int k = 1;; k++) {
        const char *cand = sb_kql_sprintf(t->a, "%s%d", name, k);
        if (!name_taken(cols, n, cand))
            return cand;
    }
}

/* ---- expressions ------------------------------------------------------------------------------- */

static tx tr_expr(tr *t, const sb_kql_expr *e);

static tx mk(char *sql, sb_kql_type type) {
    return (tx){sql, type};
}

static const char *op_text(int op) {
    switch (op) {
    case SB_KQL_OP_OR:
        return "or";
    case SB_KQL_OP_AND:
        return "and";
    case SB_KQL_OP_EQ:
        return "==";
    case SB_KQL_OP_NE:
        return "!=";
    case SB_KQL_OP_LT:
        return "<";
    case SB_KQL_OP_LE:
        return "<=";
    case SB_KQL_OP_GT:
        return ">";
    case SB_KQL_OP_GE:
        return ">=";
    case SB_KQL_OP_EQ_CI:
        return "=~";
    case SB_KQL_OP_NE_CI:
        return "!~";
    case SB_KQL_OP_ADD:
        return "+";
    case SB_KQL_OP_SUB:
        return "-";
    case SB_KQL_OP_MUL:
        return "*";
    case SB_KQL_OP_DIV:
        return "/";
    case SB_KQL_OP_MOD:
        return "%";
    case SB_KQL_OP_HAS:
        return "has";
    case SB_KQL_OP_HAS_CS:
        return "has_cs";
    case SB_KQL_OP_HASPREFIX:
        return "hasprefix";
    case SB_KQL_OP_HASSUFFIX:
        return "hassuffix";
    case SB_KQL_OP_CONTAINS:
        return "contains";
    case SB_KQL_OP_CONTAINS_CS:
        return "contains_cs";
    case SB_KQL_OP_STARTSWITH:
        return "startswith";
    case SB_KQL_OP_STARTSWITH_CS:
        return "startswith_cs";
    case SB_KQL_OP_ENDSWITH:
        return "endswith";
    case SB_KQL_OP_ENDSWITH_CS:
        return "endswith_cs";
    case SB_KQL_OP_MATCHES_REGEX:
        return "matches regex";
    default:
        return "?";
    }
}

static void need_type(tr *t, const sb_kql_expr *e, tx v, sb_kql_type want, const char *what) {
    if (v.type != want && v.type != SB_KQL_T_NULL && !(is_numeric(want) && is_numeric(v.type)))
        fail_at(t, e->pos, "%s must be of type %s, found %s", what, sb_kql_type_name(want),
                sb_kql_type_name(v.type));
}

/* Any value as text (string operators accept every type, as Kusto converts). */
static char *as_text(tr *t, tx v) {
    if (v.type == SB_KQL_T_STRING)
        return v.sql;
    return sb_kql_sprintf(t->a, "kql_tostring(%s, %d)", v.sql, (int)v.type);
}

static tx tr_literal(tr *t, const sb_kql_expr *e) {
    switch (e->lit_type) {
    case SB_KQL_T_STRING:
        return mk(param(t, SB_KQL_T_STRING, 0, 0, e->s), SB_KQL_T_STRING);
    case SB_KQL_T_REAL:
        return mk(param(t, SB_KQL_T_REAL, 0, e->r, NULL), SB_KQL_T_REAL);
    case SB_KQL_T_DATETIME:
        return mk(dt_param(t, e->i), SB_KQL_T_DATETIME);
    case SB_KQL_T_NULL:
        return mk(sb_kql_strdup(t->a, "NULL"), (sb_kql_type)e->op);
    default:
        return mk(param(t, e->lit_type, e->i, 0, NULL), e->lit_type);
    }
}

static tx tr_name(tr *t, const sb_kql_expr *e) {
    const col *c = find_col(t, e->s);
    if (c) {
        if (t->agg_ok && !t->in_agg)
            fail_at(t, e->pos, "the column '%s' must be inside an aggregate function or listed after 'by'",
                    e->s);
        return mk(quote_ident(t, c->name), c->type);
    }
    const sb_kql_let *l = find_let(t, e->s);
    if (l) {
        /* a let is translated where it is used, seeing only the lets before it */
        size_t saved = t->let_limit;
        t->let_limit = (size_t)(l - t->q->lets);
        tx v = tr_expr(t, l->expr);
        t->let_limit = saved;
        return v;
    }
    fail_at(t, e->pos, "Failed to resolve scalar expression named '%s'", e->s);
}

static tx tr_compare(tr *t, const sb_kql_expr *e, tx l, tx r) {
    int op = e->op;
    if (op == SB_KQL_OP_EQ_CI || op == SB_KQL_OP_NE_CI) {
        if (l.type != SB_KQL_T_STRING && l.type != SB_KQL_T_NULL)
            fail_at(t, e->pos, "'%s' compares strings, found %s", op_text(op), sb_kql_type_name(l.type));
        if (r.type != SB_KQL_T_STRING && r.type != SB_KQL_T_NULL)
            fail_at(t, e->pos, "'%s' compares strings, found %s", op_text(op), sb_kql_type_name(r.type));
        return mk(sb_kql_sprintf(t->a, "(%s %s %s COLLATE NOCASE)", l.sql, op == SB_KQL_OP_EQ_CI ? "=" : "<>",
                                 r.sql),
                  SB_KQL_T_BOOL);
    }
    if (!compatible(l.type, r.type) || l.type == SB_KQL_T_DYNAMIC || r.type == SB_KQL_T_DYNAMIC)
        fail_at(t, e->pos, "Cannot compare values of types %s and %s", sb_kql_type_name(l.type),
                sb_kql_type_name(r.type));
    const char *sqlop = op == SB_KQL_OP_EQ   ? "="
                        : op == SB_KQL_OP_NE ? "IS NOT" /* null != 5 is true in KQL */
                        : op == SB_KQL_OP_LT ? "<"
                        : op == SB_KQL_OP_LE ? "<="
                        : op == SB_KQL_OP_GT ? ">"
                                             : ">=";
    return mk(sb_kql_sprintf(t->a, "(%s %s %s)", l.sql, sqlop, r.sql), SB_KQL_T_BOOL);
}

static tx tr_arith(tr *t, const sb_kql_expr *e, tx l, tx r) {
    int op = e->op;
    sb_kql_type a = l.type, b = r.type;
    const char *sym = op_text(op);
    if (a == SB_KQL_T_NULL || b == SB_KQL_T_NULL)
        return mk(sb_kql_strdup(t->a, "NULL"), a == SB_KQL_T_NULL ? b : a);
    if (is_numeric(a) && is_numeric(b)) {
        sb_kql_type rt = a == SB_KQL_T_REAL || b == SB_KQL_T_REAL ? SB_KQL_T_REAL
                         : a == SB_KQL_T_INT && b == SB_KQL_T_INT ? SB_KQL_T_INT
                                                                  : SB_KQL_T_LONG;
        return mk(sb_kql_sprintf(t->a, "(%s %s %s)", l.sql, sym, r.sql), rt);
    }
    if (a == SB_KQL_T_DATETIME && b == SB_KQL_T_TIMESPAN && (op == SB_KQL_OP_ADD || op == SB_KQL_OP_SUB))
        return mk(
            sb_kql_sprintf(t->a, "kql_dt_add(%s, %s(%s))", l.sql, op == SB_KQL_OP_SUB ? "-" : "", r.sql),
            SB_KQL_T_DATETIME);
    if (a == SB_KQL_T_TIMESPAN && b == SB_KQL_T_DATETIME && op == SB_KQL_OP_ADD)
        return mk(sb_kql_sprintf(t->a, "kql_dt_add(%s, %s)", r.sql, l.sql), SB_KQL_T_DATETIME);
    if (a == SB_KQL_T_DATETIME && b == SB_KQL_T_DATETIME && op == SB_KQL_OP_SUB)
        return mk(sb_kql_sprintf(t->a, "kql_dt_diff(%s, %s)", l.sql, r.sql), SB_KQL_T_TIMESPAN);
    if (a == SB_KQL_T_TIMESPAN && b == SB_KQL_T_TIMESPAN) {
        if (op == SB_KQL_OP_ADD || op == SB_KQL_OP_SUB || op == SB_KQL_OP_MOD)
            return mk(sb_kql_sprintf(t->a, "(%s %s %s)", l.sql, sym, r.sql), SB_KQL_T_TIMESPAN);
        if (op == SB_KQL_OP_DIV)
            return mk(sb_kql_sprintf(t->a, "(CAST(%s AS REAL) / %s)", l.sql, r.sql), SB_KQL_T_REAL);
    }
    if (a == SB_KQL_T_TIMESPAN && is_numeric(b) && (op == SB_KQL_OP_MUL || op == SB_KQL_OP_DIV))
        return mk(sb_kql_sprintf(t->a, "CAST(%s %s %s AS INTEGER)", l.sql, sym, r.sql), SB_KQL_T_TIMESPAN);
    if (is_numeric(a) && b == SB_KQL_T_TIMESPAN && op == SB_KQL_OP_MUL)
        return mk(sb_kql_sprintf(t->a, "CAST(%s * %s AS INTEGER)", l.sql, r.sql), SB_KQL_T_TIMESPAN);
    fail_at(t, e->pos, "the operator '%s' is not defined for types %s and %s", sym, sb_kql_type_name(a),
            sb_kql_type_name(b));
}

/* Opcodes of kql_strop() (sqlfuncs.c). */
enum { STROP_HAS = 1, STROP_HASPREFIX, STROP_HASSUFFIX, STROP_CONTAINS, STROP_STARTSWITH, STROP_ENDSWITH };

static tx tr_binary(tr *t, const sb_kql_expr *e) {
    int op = e->op;
    tx l = tr_expr(t, e->args[0]);
    tx r = tr_expr(t, e->args[1]);
    switch (op) {
    case SB_KQL_OP_AND:
    case SB_KQL_OP_OR:
        need_type(t, e->args[0], l, SB_KQL_T_BOOL,
                  sb_kql_sprintf(t->a, "the left operand of '%s'", op_text(op)));
        need_type(t, e->args[1], r, SB_KQL_T_BOOL,
                  sb_kql_sprintf(t->a, "the right operand of '%s'", op_text(op)));
        return mk(sb_kql_sprintf(t->a, "(%s %s %s)", l.sql, op == SB_KQL_OP_AND ? "AND" : "OR", r.sql),
                  SB_KQL_T_BOOL);
    case SB_KQL_OP_EQ:
    case SB_KQL_OP_NE:
    case SB_KQL_OP_LT:
    case SB_KQL_OP_LE:
    case SB_KQL_OP_GT:
    case SB_KQL_OP_GE:
    case SB_KQL_OP_EQ_CI:
    case SB_KQL_OP_NE_CI:
        return tr_compare(t, e, l, r);
    case SB_KQL_OP_ADD:
    case SB_KQL_OP_SUB:
    case SB_KQL_OP_MUL:
    case SB_KQL_OP_DIV:
    case SB_KQL_OP_MOD:
        return tr_arith(t, e, l, r);
    case SB_KQL_OP_MATCHES_REGEX: {
        const sb_kql_expr *pat = resolve(t, e->args[1]);
        if (pat->kind != SB_KQL_E_LITERAL || pat->lit_type != SB_KQL_T_STRING)
            fail_at(t, e->args[1]->pos, "the pattern of 'matches regex' must be a constant string");
        return mk(sb_kql_sprintf(t->a, "(%s REGEXP %s)", as_text(t, l), r.sql), SB_KQL_T_BOOL);
    }
    default: {
        int cs = op == SB_KQL_OP_HAS_CS || op == SB_KQL_OP_CONTAINS_CS || op == SB_KQL_OP_STARTSWITH_CS ||
                 op == SB_KQL_OP_ENDSWITH_CS;
        int code = op == SB_KQL_OP_HAS || op == SB_KQL_OP_HAS_CS                 ? STROP_HAS
                   : op == SB_KQL_OP_HASPREFIX                                   ? STROP_HASPREFIX
                   : op == SB_KQL_OP_HASSUFFIX                                   ? STROP_HASSUFFIX
                   : op == SB_KQL_OP_CONTAINS || op == SB_KQL_OP_CONTAINS_CS     ? STROP_CONTAINS
                   : op == SB_KQL_OP_STARTSWITH || op == SB_KQL_OP_STARTSWITH_CS ? STROP_STARTSWITH
                                                                                 : STROP_ENDSWITH;
        char *call =
            sb_kql_sprintf(t->a, "kql_strop(%d, %s, %s)", code * 2 + cs, as_text(t, l), as_text(t, r));
        return mk(e->negated ? sb_kql_sprintf(t->a, "(NOT %s)", call) : call, SB_KQL_T_BOOL);
    }
    }
}

static tx tr_in(tr *t, const sb_kql_expr *e) {
    tx l = tr_expr(t, e->args[0]);
    if (e->icase && l.type != SB_KQL_T_STRING)
        fail_at(t, e->pos, "'in~' compares strings, found %s", sb_kql_type_name(l.type));
    char *list = sb_kql_strdup(t->a, "");
    for (size_t i = 1; i < e->nargs; i++) {
        tx v = tr_expr(t, e->args[i]);
        if (!compatible(l.type, v.type))
            fail_at(t, e->args[i]->pos, "Cannot compare values of types %s and %s in the 'in' list",
                    sb_kql_type_name(l.type), sb_kql_type_name(v.type));
        list = sb_kql_sprintf(t->a, "%s%s%s", list, i > 1 ? ", " : "", v.sql);
    }
    const char *coll = e->icase ? " COLLATE NOCASE" : "";
    char *in = sb_kql_sprintf(t->a, "(%s%s IN (%s))", l.sql, coll, list);
    return mk(e->negated ? sb_kql_sprintf(t->a, "(NOT %s)", in) : in, SB_KQL_T_BOOL);
}

static tx tr_between(tr *t, const sb_kql_expr *e) {
    tx v = tr_expr(t, e->args[0]), lo = tr_expr(t, e->args[1]), hi = tr_expr(t, e->args[2]);
    if (v.type == SB_KQL_T_DATETIME && hi.type == SB_KQL_T_TIMESPAN) /* dt between (d .. 3d) = [d, d + 3d] */
        hi = mk(sb_kql_sprintf(t->a, "kql_dt_add(%s, %s)", lo.sql, hi.sql), SB_KQL_T_DATETIME);
    if (!compatible(v.type, lo.type) || !compatible(v.type, hi.type) || v.type == SB_KQL_T_STRING ||
        v.type == SB_KQL_T_BOOL || v.type == SB_KQL_T_DYNAMIC)
        fail_at(t, e->pos, "'between' is not defined for types %s, %s and %s", sb_kql_type_name(v.type),
                sb_kql_type_name(lo.type), sb_kql_type_name(hi.type));
    return mk(
        sb_kql_sprintf(t->a, "(%s %sBETWEEN %s AND %s)", v.sql, e->negated ? "NOT " : "", lo.sql, hi.sql),
        SB_KQL_T_BOOL);
}

/* ---- functions ----------------------------------------------------------------------------------- */

static void arity(tr *t, const sb_kql_expr *e, size_t min, size_t max) {
    if (e->nargs < min || e->nargs > max) {
        if (min == max)
            fail_at(t, e->pos, "the function '%s' expects %zu argument%s, got %zu", e->s, min,
                    min == 1 ? "" : "s", e->nargs);
        fail_at(t, e->pos, "the function '%s' expects %zu to %zu arguments, got %zu", e->s, min, max,
                e->nargs);
    }
    for (size_t i = 0; i < e->nargs; i++)
        if (e->args[i]->kind == SB_KQL_E_STAR)
            fail_at(t, e->args[i]->pos, "'*' is not an argument of '%s'", e->s);
}

static int is_fn(const sb_kql_expr *e, const char *name) {
    return strcmp(e->s, name) == 0;
}

/* The constant value of a timespan expression (a literal, maybe through a let), or 0 when not constant. */
static int const_timespan(tr *t, const sb_kql_expr *e, int64_t *ticks) {
    e = resolve(t, e);
    if (e->kind == SB_KQL_E_LITERAL && e->lit_type == SB_KQL_T_TIMESPAN) {
        *ticks = e->i;
        return 1;
    }
    return 0;
}

static tx tr_bin(tr *t, const sb_kql_expr *e, tx v, tx size) {
    if (v.type == SB_KQL_T_DATETIME && size.type == SB_KQL_T_TIMESPAN) {
        int64_t ticks;
        /* whole units of the fixed-width text: truncate it instead of calling a function per row */
        if (const_timespan(t, e->args[1], &ticks)) {
            static const struct {
                int64_t ticks;
                int keep;
                const char *tail;
            } cuts[] = {
                {SB_KQL_TICKS_PER_DAY, 10, "T00:00:00.0000000Z"},
                {3600 * SB_KQL_TICKS_PER_SECOND, 13, ":00:00.0000000Z"},
                {60 * SB_KQL_TICKS_PER_SECOND, 16, ":00.0000000Z"},
                {SB_KQL_TICKS_PER_SECOND, 19, ".0000000Z"},
            };
            for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
                if (ticks == cuts[i].ticks)
                    return mk(sb_kql_sprintf(t->a, "(substr(%s, 1, %d) || '%s')", v.sql, cuts[i].keep,
                                             cuts[i].tail),
                              SB_KQL_T_DATETIME);
        }
        return mk(sb_kql_sprintf(t->a, "kql_bin_dt(%s, %s)", v.sql, size.sql), SB_KQL_T_DATETIME);
    }
    if ((is_numeric(v.type) && is_numeric(size.type)) ||
        (v.type == SB_KQL_T_TIMESPAN && size.type == SB_KQL_T_TIMESPAN)) {
        sb_kql_type rt = v.type == SB_KQL_T_TIMESPAN                             ? SB_KQL_T_TIMESPAN
                         : v.type == SB_KQL_T_REAL || size.type == SB_KQL_T_REAL ? SB_KQL_T_REAL
                                                                                 : v.type;
        return mk(sb_kql_sprintf(t->a, "kql_bin_num(%s, %s, %d)", v.sql, size.sql, rt == SB_KQL_T_REAL), rt);
    }
    fail_at(t, e->pos, "'%s' is not defined for types %s and %s", e->s, sb_kql_type_name(v.type),
            sb_kql_type_name(size.type));
}

static tx tr_aggregate(tr *t, const sb_kql_expr *e);
static int is_aggregate(const char *name);

static tx tr_call(tr *t, const sb_kql_expr *e) {
    if (is_aggregate(e->s)) {
        if (!t->agg_ok)
            fail_at(t, e->pos, "the aggregate function '%s' may only be used in 'summarize'", e->s);
        if (t->in_agg)
            fail_at(t, e->pos, "aggregate functions cannot be nested ('%s' inside another aggregate)", e->s);
        return tr_aggregate(t, e);
    }
    if (is_fn(e, "ago")) {
        arity(t, e, 1, 1);
        int64_t ticks;
        if (const_timespan(t, e->args[0], &ticks))
            return mk(dt_param(t, t->o->now - ticks), SB_KQL_T_DATETIME);
        tx v = tr_expr(t, e->args[0]);
        need_type(t, e->args[0], v, SB_KQL_T_TIMESPAN, "the argument of 'ago'");
        return mk(sb_kql_sprintf(t->a, "kql_dt_add(%s, -(%s))", dt_param(t, t->o->now), v.sql),
                  SB_KQL_T_DATETIME);
    }
    if (is_fn(e, "now")) {
        arity(t, e, 0, 1);
        int64_t ticks = 0;
        if (e->nargs == 0 || const_timespan(t, e->args[0], &ticks))
            return mk(dt_param(t, t->o->now + ticks), SB_KQL_T_DATETIME);
        tx v = tr_expr(t, e->args[0]);
        need_type(t, e->args[0], v, SB_KQL_T_TIMESPAN, "the argument of 'now'");
        return mk(sb_kql_sprintf(t->a, "kql_dt_add(%s, %s)", dt_param(t, t->o->now), v.sql),
                  SB_KQL_T_DATETIME);
    }
    if (is_fn(e, "isempty") || is_fn(e, "isnotempty") || is_fn(e, "isnull") || is_fn(e, "isnotnull")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        int not = is_fn(e, "isnotempty") || is_fn(e, "isnotnull");
        /* isempty is true for "" and null; isnull("") is false (an empty string is a value) */
        if (v.type == SB_KQL_T_STRING && (is_fn(e, "isempty") || is_fn(e, "isnotempty")))
            return mk(sb_kql_sprintf(t->a, not ? "(%s <> '')" : "(coalesce(%s, '') = '')", v.sql),
                      SB_KQL_T_BOOL);
        return mk(sb_kql_sprintf(t->a, "(%s IS %sNULL)", v.sql, not ? "NOT " : ""), SB_KQL_T_BOOL);
    }
    if (is_fn(e, "not")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        need_type(t, e->args[0], v, SB_KQL_T_BOOL, "the argument of 'not'");
        return mk(sb_kql_sprintf(t->a, "(NOT %s)", v.sql), SB_KQL_T_BOOL);
    }
    if (is_fn(e, "todatetime")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        if (v.type == SB_KQL_T_DATETIME || v.type == SB_KQL_T_NULL)
            return mk(v.sql, SB_KQL_T_DATETIME);
        if (v.type == SB_KQL_T_STRING || v.type == SB_KQL_T_DYNAMIC)
            return mk(sb_kql_sprintf(t->a, "kql_todatetime(%s)", v.sql), SB_KQL_T_DATETIME);
        fail_at(t, e->pos, "'todatetime' is not defined for type %s", sb_kql_type_name(v.type));
    }
    if (is_fn(e, "tostring")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        return mk(v.type == SB_KQL_T_NULL ? sb_kql_strdup(t->a, "''") : as_text(t, v), SB_KQL_T_STRING);
    }
    if (is_fn(e, "tolong") || is_fn(e, "toint")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        sb_kql_type rt = is_fn(e, "toint") ? SB_KQL_T_INT : SB_KQL_T_LONG;
        if (is_integral(v.type) || v.type == SB_KQL_T_BOOL || v.type == SB_KQL_T_TIMESPAN ||
            v.type == SB_KQL_T_NULL)
            return mk(v.sql, rt);
        if (v.type == SB_KQL_T_REAL)
            return mk(sb_kql_sprintf(t->a, "CAST(%s AS INTEGER)", v.sql), rt);
        if (v.type == SB_KQL_T_DATETIME)
            return mk(sb_kql_sprintf(t->a, "kql_dt_ticks(%s)", v.sql), rt);
        return mk(sb_kql_sprintf(t->a, "kql_tolong(%s)", v.sql), rt);
    }
    if (is_fn(e, "todouble") || is_fn(e, "toreal")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        if (is_numeric(v.type) || v.type == SB_KQL_T_BOOL || v.type == SB_KQL_T_TIMESPAN ||
            v.type == SB_KQL_T_NULL)
            return mk(sb_kql_sprintf(t->a, "CAST(%s AS REAL)", v.sql), SB_KQL_T_REAL);
        if (v.type == SB_KQL_T_STRING || v.type == SB_KQL_T_DYNAMIC)
            return mk(sb_kql_sprintf(t->a, "kql_toreal(%s)", v.sql), SB_KQL_T_REAL);
        fail_at(t, e->pos, "'%s' is not defined for type %s", e->s, sb_kql_type_name(v.type));
    }
    if (is_fn(e, "tobool") || is_fn(e, "toboolean")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        if (v.type == SB_KQL_T_BOOL || v.type == SB_KQL_T_NULL)
            return mk(v.sql, SB_KQL_T_BOOL);
        if (is_numeric(v.type))
            return mk(sb_kql_sprintf(t->a, "(%s <> 0)", v.sql), SB_KQL_T_BOOL);
        if (v.type == SB_KQL_T_STRING)
            return mk(sb_kql_sprintf(t->a, "kql_tobool(%s)", v.sql), SB_KQL_T_BOOL);
        fail_at(t, e->pos, "'%s' is not defined for type %s", e->s, sb_kql_type_name(v.type));
    }
    if (is_fn(e, "strcat")) {
        arity(t, e, 1, 64);
        char *s = sb_kql_strdup(t->a, "(");
        for (size_t i = 0; i < e->nargs; i++) {
            tx v = tr_expr(t, e->args[i]);
            s = sb_kql_sprintf(t->a, "%s%scoalesce(%s, '')", s, i ? " || " : "", as_text(t, v));
        }
        return mk(sb_kql_sprintf(t->a, "%s)", s), SB_KQL_T_STRING);
    }
    if (is_fn(e, "strlen") || is_fn(e, "tolower") || is_fn(e, "toupper")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        char *s = as_text(t, v);
        if (is_fn(e, "strlen"))
            return mk(sb_kql_sprintf(t->a, "length(coalesce(%s, ''))", s), SB_KQL_T_LONG);
        return mk(sb_kql_sprintf(t->a, "%s(%s)", is_fn(e, "tolower") ? "lower" : "upper", s),
                  SB_KQL_T_STRING);
    }
    if (is_fn(e, "substring")) {
        arity(t, e, 2, 3);
        tx s = tr_expr(t, e->args[0]), start = tr_expr(t, e->args[1]);
        need_type(t, e->args[1], start, SB_KQL_T_LONG, "the start of 'substring'");
        if (e->nargs == 2)
            return mk(
                sb_kql_sprintf(t->a, "coalesce(substr(%s, max(%s, 0) + 1), '')", as_text(t, s), start.sql),
                SB_KQL_T_STRING);
        tx len = tr_expr(t, e->args[2]);
        need_type(t, e->args[2], len, SB_KQL_T_LONG, "the length of 'substring'");
        return mk(sb_kql_sprintf(t->a, "coalesce(substr(%s, max(%s, 0) + 1, max(%s, 0)), '')", as_text(t, s),
                                 start.sql, len.sql),
                  SB_KQL_T_STRING);
    }
    if (is_fn(e, "bin") || is_fn(e, "floor")) {
        arity(t, e, 2, 2);
        tx v = tr_expr(t, e->args[0]), size = tr_expr(t, e->args[1]);
        return tr_bin(t, e, v, size);
    }
    if (is_fn(e, "startofday")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        need_type(t, e->args[0], v, SB_KQL_T_DATETIME, "the argument of 'startofday'");
        return mk(sb_kql_sprintf(t->a, "(substr(%s, 1, 10) || 'T00:00:00.0000000Z')", v.sql),
                  SB_KQL_T_DATETIME);
    }
    if (is_fn(e, "iff") || is_fn(e, "iif")) {
        arity(t, e, 3, 3);
        tx c = tr_expr(t, e->args[0]), a = tr_expr(t, e->args[1]), b = tr_expr(t, e->args[2]);
        need_type(t, e->args[0], c, SB_KQL_T_BOOL, "the condition of 'iff'");
        if (!compatible(a.type, b.type))
            fail_at(t, e->pos, "the branches of 'iff' have different types, %s and %s",
                    sb_kql_type_name(a.type), sb_kql_type_name(b.type));
        return mk(sb_kql_sprintf(t->a, "(CASE WHEN %s THEN %s ELSE %s END)", c.sql, a.sql, b.sql),
                  unify(a.type, b.type));
    }
    if (is_fn(e, "coalesce")) {
        arity(t, e, 1, 64);
        tx first = tr_expr(t, e->args[0]);
        char *s = sb_kql_sprintf(t->a, "coalesce(%s", first.sql);
        sb_kql_type ty = first.type;
        for (size_t i = 1; i < e->nargs; i++) {
            tx v = tr_expr(t, e->args[i]);
            if (!compatible(ty, v.type))
                fail_at(t, e->args[i]->pos, "the arguments of 'coalesce' have different types, %s and %s",
                        sb_kql_type_name(ty), sb_kql_type_name(v.type));
            ty = unify(ty, v.type);
            s = sb_kql_sprintf(t->a, "%s, %s", s, v.sql);
        }
        return mk(sb_kql_sprintf(t->a, e->nargs == 1 ? "%s, NULL)" : "%s)", s), ty);
    }
    if (is_fn(e, "abs")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        if (!is_numeric(v.type) && v.type != SB_KQL_T_TIMESPAN)
            fail_at(t, e->pos, "'abs' is not defined for type %s", sb_kql_type_name(v.type));
        return mk(sb_kql_sprintf(t->a, "abs(%s)", v.sql), v.type);
    }
    if (is_fn(e, "array_length")) {
        arity(t, e, 1, 1);
        tx v = tr_expr(t, e->args[0]);
        need_type(t, e->args[0], v, SB_KQL_T_DYNAMIC, "the argument of 'array_length'");
        return mk(sb_kql_sprintf(t->a, "kql_array_length(%s)", v.sql), SB_KQL_T_LONG);
    }
    fail_at(t, e->pos, "Failed to resolve function named '%s'", e->s);
}

/* ---- aggregates ---------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *prefix; /* of the default column name */
} aggregates[] = {
    {"count", "count"}, {"countif", "countif"}, {"dcount", "dcount"}, {"dcountif", "dcountif"},
    {"sum", "sum"},     {"sumif", "sumif"},     {"avg", "avg"},       {"avgif", "avgif"},
    {"min", "min"},     {"max", "max"},         {"make_set", "set"},  {"make_list", "list"},
    {"arg_max", "max"}, {"arg_min", "min"},
};

static int is_aggregate(const char *name) {
    for (size_t i = 0; i < sizeof aggregates / sizeof aggregates[0]; i++)
        if (strcmp(aggregates[i].name, name) == 0)
            return 1;
    return 0;
}

static const char *aggregate_prefix(const char *name) {
    for (size_t i = 0; i < sizeof aggregates / sizeof aggregates[0]; i++)
        if (strcmp(aggregates[i].name, name) == 0)
            return aggregates[i].prefix;
    return NULL;
}

static tx agg_arg(tr *t, const sb_kql_expr *e, size_t i) {
    t->in_agg = 1;
    tx v = tr_expr(t, e->args[i]);
    t->in_agg = 0;
    return v;
}

static tx agg_pred(tr *t, const sb_kql_expr *e, size_t i) {
    tx p = agg_arg(t, e, i);
    need_type(t, e->args[i], p, SB_KQL_T_BOOL, sb_kql_sprintf(t->a, "the predicate of '%s'", e->s));
    return p;
}

static tx tr_aggregate(tr *t, const sb_kql_expr *e) {
    t->naggs++;
    if (is_fn(e, "count")) {
        if (e->nargs == 1 && e->args[0]->kind == SB_KQL_E_STAR)
            return mk(sb_kql_strdup(t->a, "count(*)"), SB_KQL_T_LONG);
        arity(t, e, 0, 1);
        if (e->nargs == 0)
            return mk(sb_kql_strdup(t->a, "count(*)"), SB_KQL_T_LONG);
        return mk(sb_kql_sprintf(t->a, "count(%s)", agg_arg(t, e, 0).sql), SB_KQL_T_LONG);
    }
    if (is_fn(e, "countif")) {
        arity(t, e, 1, 1);
        return mk(sb_kql_sprintf(t->a, "count(CASE WHEN %s THEN 1 END)", agg_pred(t, e, 0).sql),
                  SB_KQL_T_LONG);
    }
    if (is_fn(e, "dcount") || is_fn(e, "dcountif")) {
        int cond = is_fn(e, "dcountif");
        arity(t, e, cond ? 2 : 1, cond ? 3 : 2); /* the accuracy argument is accepted: the count is exact */
        tx v = agg_arg(t, e, 0);
        if (!cond)
            return mk(sb_kql_sprintf(t->a, "count(DISTINCT %s)", v.sql), SB_KQL_T_LONG);
        return mk(
            sb_kql_sprintf(t->a, "count(DISTINCT CASE WHEN %s THEN %s END)", agg_pred(t, e, 1).sql, v.sql),
            SB_KQL_T_LONG);
    }
    if (is_fn(e, "sum") || is_fn(e, "sumif") || is_fn(e, "avg") || is_fn(e, "avgif")) {
        int cond = is_fn(e, "sumif") || is_fn(e, "avgif"), sum = e->s[0] == 's';
        arity(t, e, cond ? 2 : 1, cond ? 2 : 1);
        tx v = agg_arg(t, e, 0);
        if (!is_numeric(v.type) && v.type != SB_KQL_T_TIMESPAN && v.type != SB_KQL_T_NULL)
            fail_at(t, e->args[0]->pos, "'%s' is not defined for type %s", e->s, sb_kql_type_name(v.type));
        char *arg =
            cond ? sb_kql_sprintf(t->a, "CASE WHEN %s THEN %s END", agg_pred(t, e, 1).sql, v.sql) : v.sql;
        if (sum)
            return mk(sb_kql_sprintf(t->a, "coalesce(sum(%s), 0)", arg),
                      v.type == SB_KQL_T_NULL ? SB_KQL_T_LONG : v.type);
        if (v.type == SB_KQL_T_TIMESPAN)
            return mk(sb_kql_sprintf(t->a, "CAST(avg(%s) AS INTEGER)", arg), SB_KQL_T_TIMESPAN);
        return mk(sb_kql_sprintf(t->a, "avg(%s)", arg), SB_KQL_T_REAL);
    }
    if (is_fn(e, "min") || is_fn(e, "max")) {
        arity(t, e, 1, 1);
        tx v = agg_arg(t, e, 0);
        if (v.type == SB_KQL_T_DYNAMIC)
            fail_at(t, e->args[0]->pos, "'%s' is not defined for type dynamic", e->s);
        t->nminmax++;
        return mk(sb_kql_sprintf(t->a, "%s(%s)", e->s, v.sql), v.type);
    }
    if (is_fn(e, "make_set") || is_fn(e, "make_list")) {
        arity(t, e, 1, 2);
        tx v = agg_arg(t, e, 0);
        char *limit = sb_kql_strdup(t->a, "1048576");
        if (e->nargs == 2) {
            tx m = agg_arg(t, e, 1);
            need_type(t, e->args[1], m, SB_KQL_T_LONG, sb_kql_sprintf(t->a, "the size limit of '%s'", e->s));
            limit = m.sql;
        }
        return mk(sb_kql_sprintf(t->a, "kql_%s(%s, %d, %s)", e->s, v.sql, (int)v.type, limit),
                  SB_KQL_T_DYNAMIC);
    }
    fail_at(t, e->pos,
            "'%s' must be the only aggregate of its 'summarize', written as Name = %s(...) or alone", e->s,
            e->s);
}

/* ---- stages -------------------------------------------------------------------------------------- */

static char *key_name(tr *t, size_t i) {
    return sb_kql_sprintf(t->a, "\"#k%zu\"", i);
}

/* ", "#k0", "#k1"" : the hidden keys carried by a row-preserving stage. */
static char *carry_keys(tr *t) {
    char *s = sb_kql_strdup(t->a, "");
    for (size_t i = 0; i < t->nkeys; i++)
        s = sb_kql_sprintf(t->a, "%s, %s", s, key_name(t, i));
    return s;
}

static char *order_by(tr *t) {
    if (!t->nkeys)
        return sb_kql_strdup(t->a, "");
    char *s = sb_kql_strdup(t->a, " ORDER BY ");
    for (size_t i = 0; i < t->nkeys; i++) {
        const key *k = &t->keys[i];
        /* SQLite sorts nulls first ascending and last descending, like KQL's defaults; only the other
         * choices are spelled out, so the default order can still come from an index */
        const char *nulls = k->desc && k->nulls_first     ? " NULLS FIRST"
                            : !k->desc && !k->nulls_first ? " NULLS LAST"
                                                          : "";
        s = sb_kql_sprintf(t->a, "%s%s%s%s%s", s, i ? ", " : "", key_name(t, i), k->desc ? " DESC" : "",
                           nulls);
    }
    return s;
}

static char *visible_list(tr *t) {
    char *s = sb_kql_strdup(t->a, "");
    for (size_t i = 0; i < t->ncols; i++)
        s = sb_kql_sprintf(t->a, "%s%s%s", s, i ? ", " : "", quote_ident(t, t->cols[i].name));
    return s;
}

static const char *prev(tr *t) {
    return sb_kql_sprintf(t->a, "s%d", t->nstages - 1);
}

static void push_stage(tr *t, const char *select) {
    t->ctes = sb_kql_sprintf(t->a, "%s%ss%d AS (%s)", t->ctes, t->nstages ? ", " : "", t->nstages, select);
    t->nstages++;
}

/* A stage selecting `list` (visible columns, already named) from the previous one, keeping the order. */
static void row_stage(tr *t, const char *list, const char *where, col *cols, size_t ncols) {
    const char *ks = carry_keys(t);
    push_stage(t, sb_kql_sprintf(t->a, "SELECT %s%s FROM %s%s%s", list, ks, prev(t), where ? " WHERE " : "",
                                 where ? where : ""));
    t->cols = cols;
    t->ncols = ncols;
}

static void op_where(tr *t, const sb_kql_op *op) {
    tx p = tr_expr(t, op->expr);
    need_type(t, op->expr, p, SB_KQL_T_BOOL, "the predicate");
    row_stage(t, visible_list(t), p.sql, t->cols, t->ncols);
}

/* The SELECT list of project and distinct: each item translated and named (its own name, the column it reads,
 * or Column1...), names unique; the new columns in *cols_out.  `verb` completes "the column 'x' is ... more than
 * once". */
static char *named_list(tr *t, const sb_kql_op *op, const char *verb, col **cols_out, size_t *n_out) {
    col *cols = NULL;
    size_t n = 0;
    char *list = sb_kql_strdup(t->a, "");
    for (size_t i = 0; i < op->nitems; i++) {
        const sb_kql_named *it = &op->items[i];
        tx v = tr_expr(t, it->expr);
        const char *name = it->name ? it->name : expr_name(t, it->expr);
        if (!name)
            name = next_column_name(t, cols, n);
        if (name_taken(cols, n, name))
            fail_at(t, it->name_pos, "the column '%s' is %s more than once", name, verb);
        col c = {name, v.type == SB_KQL_T_NULL ? SB_KQL_T_STRING : v.type};
        sb_kql_push(t->a, &cols, &n, &c, sizeof c);
        list = sb_kql_sprintf(t->a, "%s%s%s AS %s", list, i ? ", " : "", v.sql, quote_ident(t, name));
    }
    *cols_out = cols;
    *n_out = n;
    return list;
}

static void op_project(tr *t, const sb_kql_op *op) {
    col *cols;
    size_t n;
    char *list = named_list(t, op, "projected", &cols, &n);
    row_stage(t, list, NULL, cols, n);
}

static void op_extend(tr *t, const sb_kql_op *op) {
    for (size_t i = 0; i < op->nitems; i++) {
        const sb_kql_named *it = &op->items[i];
        tx v = tr_expr(t, it->expr);
        const char *name = it->name ? it->name : expr_name(t, it->expr);
        col *cols = NULL;
        size_t n = 0;
        char *list = sb_kql_strdup(t->a, "");
        int replaced = 0;
        if (!name)
            name = next_column_name(t, NULL, 0);
        sb_kql_type ty = v.type == SB_KQL_T_NULL ? SB_KQL_T_STRING : v.type;
        for (size_t k = 0; k < t->ncols; k++) {
            col c = t->cols[k];
            const char *sql = quote_ident(t, c.name);
            if (strcmp(c.name, name) == 0) { /* Kusto's binder replaces in place */
                sql = v.sql;
                c.type = ty;
                replaced = 1;
            }
            sb_kql_push(t->a, &cols, &n, &c, sizeof c);
            list = sb_kql_sprintf(t->a, "%s%s%s AS %s", list, k ? ", " : "", sql, quote_ident(t, c.name));
        }
        if (!replaced) {
            col c = {name, ty};
            sb_kql_push(t->a, &cols, &n, &c, sizeof c);
            list =
                sb_kql_sprintf(t->a, "%s%s%s AS %s", list, t->ncols ? ", " : "", v.sql, quote_ident(t, name));
        }
        row_stage(t, list, NULL, cols, n);
    }
}

static int glob_match(const char *pat, const char *s) {
    if (!*pat)
        return !*s;
    if (*pat == '*') {
        for (;; s++) {
            if (glob_match(pat + 1, s))
                return 1;
            if (!*s)
                return 0;
        }
    }
    return *s == *pat && glob_match(pat + 1, s + 1);
}

static void op_project_pattern(tr *t, const sb_kql_op *op) {
    int away = op->kind == SB_KQL_O_PROJECT_AWAY;
    for (size_t i = 0; i < op->nitems; i++) {
        int hits = 0;
        for (size_t k = 0; k < t->ncols; k++)
            hits += glob_match(op->items[i].name, t->cols[k].name);
        if (!hits && !strchr(op->items[i].name, '*'))
            fail_at(t, op->items[i].name_pos, "Failed to resolve column named '%s'", op->items[i].name);
    }
    col *cols = NULL;
    size_t n = 0;
    char *list = sb_kql_strdup(t->a, "");
    for (size_t k = 0; k < t->ncols; k++) {
        int hit = 0;
        for (size_t i = 0; i < op->nitems && !hit; i++)
            hit = glob_match(op->items[i].name, t->cols[k].name);
        if (hit == away)
            continue;
        list = sb_kql_sprintf(t->a, "%s%s%s", list, n ? ", " : "", quote_ident(t, t->cols[k].name));
        sb_kql_push(t->a, &cols, &n, &t->cols[k], sizeof t->cols[k]);
    }
    if (!n)
        fail_at(t, op->pos, "no columns are left");
    row_stage(t, list, NULL, cols, n);
}

static void op_project_rename(tr *t, const sb_kql_op *op) {
    col *cols = sb_kql_alloc(t->a, t->ncols * sizeof *cols);
    memcpy(cols, t->cols, t->ncols * sizeof *cols);
    for (size_t i = 0; i < op->nitems; i++) {
        const char *old = op->items[i].expr->s;
        size_t k = 0;
        while (k < t->ncols && strcmp(t->cols[k].name, old) != 0)
            k++;
        if (k == t->ncols)
            fail_at(t, op->items[i].expr->pos, "Failed to resolve column named '%s'", old);
        cols[k].name = op->items[i].name;
    }
    char *list = sb_kql_strdup(t->a, "");
    for (size_t k = 0; k < t->ncols; k++) {
        if (name_taken(cols, k, cols[k].name))
            fail_at(t, op->pos, "the column '%s' would appear twice", cols[k].name);
        list = sb_kql_sprintf(t->a, "%s%s%s AS %s", list, k ? ", " : "", quote_ident(t, t->cols[k].name),
                              quote_ident(t, cols[k].name));
    }
    row_stage(t, list, NULL, cols, t->ncols);
}

/* arg_max(E, cols...) / arg_min: SQLite gives bare columns the values of the row holding the max/min. */
static void summarize_arg_ext(tr *t, const sb_kql_named *it, col **cols, size_t *n, char **list) {
    const sb_kql_expr *e = it->expr;
    if (e->nargs < 2)
        fail_at(t, e->pos, "'%s' expects the expression to maximise and the columns to return (or *)", e->s);
    t->in_agg = 1;
    tx v = tr_expr(t, e->args[0]);
    t->in_agg = 0;
    if (v.type == SB_KQL_T_DYNAMIC)
        fail_at(t, e->args[0]->pos, "'%s' is not defined for type dynamic", e->s);
    const char *ename = it->name ? it->name : expr_name(t, e->args[0]);
    if (!ename)
        ename = is_fn(e, "arg_max") ? "max_" : "min_";
    ename = unique_name(t, *cols, *n, ename);
    *list = sb_kql_sprintf(t->a, "%s%s%s(%s) AS %s", *list, *n ? ", " : "",
                           is_fn(e, "arg_max") ? "max" : "min", v.sql, quote_ident(t, ename));
    col c = {ename, v.type};
    sb_kql_push(t->a, cols, n, &c, sizeof c);
    for (size_t i = 1; i < e->nargs; i++) {
        const sb_kql_expr *a = e->args[i];
        if (a->kind == SB_KQL_E_STAR) {
            for (size_t k = 0; k < t->ncols; k++) {
                if (name_taken(*cols, *n, t->cols[k].name))
                    continue; /* by-columns and the maximised column are not repeated */
                *list = sb_kql_sprintf(t->a, "%s, %s", *list, quote_ident(t, t->cols[k].name));
                sb_kql_push(t->a, cols, n, &t->cols[k], sizeof t->cols[k]);
            }
            continue;
        }
        if (a->kind != SB_KQL_E_NAME || !find_col(t, a->s))
            fail_at(t, a->pos, "the extra arguments of '%s' must be column names or *", e->s);
        const col *src = find_col(t, a->s);
        const char *name = unique_name(t, *cols, *n, src->name);
        *list = sb_kql_sprintf(t->a, "%s, %s AS %s", *list, quote_ident(t, src->name), quote_ident(t, name));
        col cc = {name, src->type};
        sb_kql_push(t->a, cols, n, &cc, sizeof cc);
    }
}

static void op_summarize(tr *t, const sb_kql_op *op) {
    col *cols = NULL;
    size_t n = 0;
    char *list = sb_kql_strdup(t->a, "");
    for (size_t i = 0; i < op->nby; i++) {
        const sb_kql_named *it = &op->by[i];
        tx v = tr_expr(t, it->expr);
        if (v.type == SB_KQL_T_DYNAMIC)
            fail_at(t, it->expr->pos, "cannot group by a dynamic value");
        const char *name = it->name ? it->name : expr_name(t, it->expr);
        if (!name)
            name = next_column_name(t, cols, n);
        name = unique_name(t, cols, n, name);
        col c = {name, v.type == SB_KQL_T_NULL ? SB_KQL_T_STRING : v.type};
        sb_kql_push(t->a, &cols, &n, &c, sizeof c);
        list = sb_kql_sprintf(t->a, "%s%s%s AS %s", list, i ? ", " : "", v.sql, quote_ident(t, name));
    }
    size_t nby = n;
    t->naggs = t->nminmax = 0;
    for (size_t i = 0; i < op->nitems; i++) {
        const sb_kql_expr *e = op->items[i].expr;
        if (e->kind == SB_KQL_E_CALL && (is_fn(e, "arg_max") || is_fn(e, "arg_min"))) {
            if (op->nitems != 1)
                fail_at(t, e->pos, "'%s' must be the only aggregate of its 'summarize'", e->s);
            summarize_arg_ext(t, &op->items[i], &cols, &n, &list);
            continue;
        }
        t->agg_ok = 1;
        int before = t->naggs;
        tx v = tr_expr(t, e);
        t->agg_ok = 0;
        if (t->naggs == before)
            fail_at(t, e->pos, "'summarize' expects aggregate functions such as count(), dcount(x), sum(x)");
        const char *name = op->items[i].name;
        if (!name && e->kind == SB_KQL_E_CALL) {
            const char *arg = e->nargs && e->args[0]->kind != SB_KQL_E_STAR ? expr_name(t, e->args[0]) : NULL;
            if (is_fn(e, "countif"))
                arg = NULL; /* Kusto names countif(p) "countif_" whatever p is */
            name = sb_kql_sprintf(t->a, "%s_%s", aggregate_prefix(e->s), arg ? arg : "");
        }
        if (!name)
            name = next_column_name(t, cols, n);
        name = unique_name(t, cols, n, name);
        col c = {name, v.type == SB_KQL_T_NULL ? SB_KQL_T_LONG : v.type};
        sb_kql_push(t->a, &cols, &n, &c, sizeof c);
        list = sb_kql_sprintf(t->a, "%s%s%s AS %s", list, n > 1 ? ", " : "", v.sql, quote_ident(t, name));
    }
    char *group = sb_kql_strdup(t->a, "");
    for (size_t i = 0; i < nby; i++)
        group = sb_kql_sprintf(t->a, "%s%s%zu", group, i ? ", " : " GROUP BY ", i + 1);
    push_stage(t, sb_kql_sprintf(t->a, "SELECT %s FROM %s%s", list, prev(t), group));
    t->cols = cols;
    t->ncols = n;
    t->nkeys = 0;
}

/* sort / top: new hidden keys replace the old ones. */
static void sort_stage(tr *t, const sb_kql_op *op, const char *limit) {
    char *list = visible_list(t);
    key *keys = NULL;
    size_t nkeys = 0;
    for (size_t i = 0; i < op->nkeys; i++) {
        const sb_kql_sortkey *k = &op->keys[i];
        tx v = tr_expr(t, k->expr);
        if (v.type == SB_KQL_T_DYNAMIC)
            fail_at(t, k->expr->pos, "cannot sort by a dynamic value");
        list = sb_kql_sprintf(t->a, "%s, %s AS %s", list, v.sql, key_name(t, i));
        key kk = {k->desc, k->nulls ? k->nulls == 1 : !k->desc};
        sb_kql_push(t->a, &keys, &nkeys, &kk, sizeof kk);
    }
    t->keys = keys;
    t->nkeys = nkeys;
    push_stage(t, sb_kql_sprintf(t->a, "SELECT %s FROM %s%s%s", list, prev(t), limit ? order_by(t) : "",
                                 limit ? limit : ""));
}

static char *row_count(tr *t, const sb_kql_expr *e) {
    size_t saved = t->ncols;
    t->ncols = 0; /* a row count is a constant: no columns in scope */
    tx v = tr_expr(t, e);
    t->ncols = saved;
    if (!is_integral(v.type))
        fail_at(t, e->pos, "the row count must be of type long, found %s", sb_kql_type_name(v.type));
    return sb_kql_sprintf(t->a, " LIMIT max(%s, 0)", v.sql);
}

static void op_take(tr *t, const sb_kql_op *op) {
    char *limit = row_count(t, op->expr);
    push_stage(t, sb_kql_sprintf(t->a, "SELECT %s%s FROM %s%s%s", visible_list(t), carry_keys(t), prev(t),
                                 order_by(t), limit));
}

static void op_distinct(tr *t, const sb_kql_op *op) {
    if (op->star) {
        push_stage(t, sb_kql_sprintf(t->a, "SELECT DISTINCT %s FROM %s", visible_list(t), prev(t)));
        t->nkeys = 0;
        return;
    }
    col *cols;
    size_t n;
    char *list = named_list(t, op, "listed", &cols, &n);
    push_stage(t, sb_kql_sprintf(t->a, "SELECT DISTINCT %s FROM %s", list, prev(t)));
    t->cols = cols;
    t->ncols = n;
    t->nkeys = 0;
}

static void op_count(tr *t) {
    push_stage(t, sb_kql_sprintf(t->a, "SELECT count(*) AS \"Count\" FROM %s", prev(t)));
    col *c = sb_kql_alloc(t->a, sizeof *c);
    c->name = "Count";
    c->type = SB_KQL_T_LONG;
    t->cols = c;
    t->ncols = 1;
    t->nkeys = 0;
}

static void source_stage(tr *t, sb_kql_table_lookup lookup, void *ctx) {
    const sb_kql_query *q = t->q;
    sb_kql_column *tc = NULL;
    size_t ntc = 0;
    if (!sb_kql_table_allowed(q->table) || lookup(ctx, q->table, &tc, &ntc, t->a) != SB_OK || !ntc) {
        if (find_let(t, q->table))
            fail_at(t, q->table_pos, "'%s' is a scalar let; a query starts with a table name", q->table);
        fail_at(t, q->table_pos, "Failed to resolve table expression named '%s'", q->table);
    }
    col *cols = sb_kql_alloc(t->a, ntc * sizeof *cols);
    int has_time = 0;
    for (size_t i = 0; i < ntc; i++) {
        cols[i].name = tc[i].name;
        cols[i].type = tc[i].type;
        has_time |= strcmp(tc[i].name, "TimeGenerated") == 0 && tc[i].type == SB_KQL_T_DATETIME;
    }
    t->cols = cols;
    t->ncols = ntc;
    char *where = NULL;
    if (t->o->has_window && has_time)
        where = sb_kql_sprintf(t->a, " WHERE \"TimeGenerated\" >= %s AND \"TimeGenerated\" <= %s",
                               dt_param(t, t->o->window_start), dt_param(t, t->o->window_end));
    push_stage(t, sb_kql_sprintf(t->a, "SELECT %s FROM %s%s", visible_list(t), quote_ident(t, q->table),
                                 where ? where : ""));
}

static tx tr_expr(tr *t, const sb_kql_expr *e) {
    if (++t->depth > MAX_TR_DEPTH)
        fail_at(t, e->pos, "the expression is too complex");
    tx v;
    switch (e->kind) {
    case SB_KQL_E_LITERAL:
        v = tr_literal(t, e);
        break;
    case SB_KQL_E_NAME:
        v = tr_name(t, e);
        break;
    case SB_KQL_E_CALL:
        v = tr_call(t, e);
        break;
    case SB_KQL_E_BINARY:
        v = tr_binary(t, e);
        break;
    case SB_KQL_E_IN:
        v = tr_in(t, e);
        break;
    case SB_KQL_E_BETWEEN:
        v = tr_between(t, e);
        break;
    case SB_KQL_E_NEG: {
        tx a = tr_expr(t, e->args[0]);
        if (!is_numeric(a.type) && a.type != SB_KQL_T_TIMESPAN && a.type != SB_KQL_T_NULL)
            fail_at(t, e->pos, "the operator '-' is not defined for type %s", sb_kql_type_name(a.type));
        v = mk(sb_kql_sprintf(t->a, "(-%s)", a.sql), a.type);
        break;
    }
    default:
        fail_at(t, e->pos, "'*' is only allowed as a function argument");
    }
    t->depth--;
    return v;
}

int sb_kql_translate(const sb_kql_query *q, const char *src, size_t srclen, sb_kql_table_lookup lookup,
                     void *ctx, const sb_kql_translate_opts *o, sb_kql_arena *a, sb_kql_plan *plan, char *err,
                     size_t errlen) {
    tr *t = sb_kql_alloc(a, sizeof *t);
    t->a = a;
    t->src = src;
    t->srclen = srclen;
    t->err = err;
    t->errlen = errlen;
    t->q = q;
    t->o = o;
    t->ctes = sb_kql_strdup(a, "");
    memset(plan, 0, sizeof *plan);
    if (setjmp(t->fail))
        return SB_EPROTO;
    /* every let must translate on its own, even if unused, so its errors are reported */
    for (size_t i = 0; i < q->nlets; i++) {
        t->let_limit = i;
        t->opname = sb_kql_sprintf(a, "let %s", q->lets[i].name);
        tx v = tr_expr(t, q->lets[i].expr);
        if (v.type == SB_KQL_T_DYNAMIC)
            fail_at(t, q->lets[i].expr->pos, "only scalar lets are supported");
    }
    t->let_limit = q->nlets;
    t->nparams = 0; /* the checks above bound nothing that is used */
    t->params = NULL;
    t->opname = NULL;
    source_stage(t, lookup, ctx);
    for (size_t i = 0; i < q->nops; i++) {
        const sb_kql_op *op = &q->ops[i];
        t->opname = sb_kql_sprintf(a, "'%s' operator", op->name);
        switch (op->kind) {
        case SB_KQL_O_WHERE:
            op_where(t, op);
            break;
        case SB_KQL_O_PROJECT:
            op_project(t, op);
            break;
        case SB_KQL_O_PROJECT_AWAY:
        case SB_KQL_O_PROJECT_KEEP:
            op_project_pattern(t, op);
            break;
        case SB_KQL_O_PROJECT_RENAME:
            op_project_rename(t, op);
            break;
        case SB_KQL_O_EXTEND:
            op_extend(t, op);
            break;
        case SB_KQL_O_SUMMARIZE:
            op_summarize(t, op);
            break;
        case SB_KQL_O_SORT:
            sort_stage(t, op, NULL);
            break;
        case SB_KQL_O_TOP:
            sort_stage(t, op, row_count(t, op->expr));
            break;
        case SB_KQL_O_TAKE:
            op_take(t, op);
            break;
        case SB_KQL_O_DISTINCT:
            op_distinct(t, op);
            break;
        case SB_KQL_O_COUNT:
            op_count(t);
            break;
        case SB_KQL_O_RENDER:
            if (i + 1 != q->nops)
                fail_at(t, q->ops[i + 1].pos, "'render' must be the last operator");
            plan->render = op->viz;
            plan->render_title = op->title;
            break;
        }
    }
    plan->sql =
        sb_kql_sprintf(a, "WITH %s SELECT %s FROM %s%s", t->ctes, visible_list(t), prev(t), order_by(t));
    plan->params = t->params;
    plan->nparams = t->nparams;
    plan->ncolumns = t->ncols;
    plan->columns = sb_kql_alloc(a, (t->ncols ? t->ncols : 1) * sizeof *plan->columns);
    for (size_t i = 0; i < t->ncols; i++) {
        plan->columns[i].name = (char *)t->cols[i].name;
        plan->columns[i].type = t->cols[i].type;
    }
    return SB_OK;
}
