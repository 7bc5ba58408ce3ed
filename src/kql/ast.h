/*
 * ast.h - the syntax tree of one KQL query and the parser that builds it.
 *
 * A query is: scalar `let` statements, then one tabular expression: a table
 * name followed by `| operator` stages.  Every node records the byte offset
 * where it starts, so the translator can point its semantic errors at the
 * right place.  All nodes and strings live in the caller's arena.
 *
 * The parser is pure (no database, no I/O): it checks syntax only.  Names of
 * tables, columns and functions, types and aggregate placement are the
 * translator's business (translate.c).
 */
#ifndef SB_KQL_AST_H
#define SB_KQL_AST_H

#include <stddef.h>
#include <stdint.h>

#include "kql/arena.h"
#include "kql/kql.h"

typedef enum sb_kql_expr_kind {
    SB_KQL_E_LITERAL, /* lit_type with i (long, bool, datetime/timespan ticks), r (real) or s (string) */
    SB_KQL_E_NAME,    /* a column or a let name */
    SB_KQL_E_CALL,    /* name(args) */
    SB_KQL_E_BINARY,  /* args[0] op args[1]; negated for !has, !contains, ... */
    SB_KQL_E_NEG,     /* -args[0] */
    SB_KQL_E_IN,      /* args[0] in (args[1..]); negated, icase (in~) */
    SB_KQL_E_BETWEEN, /* args[0] between (args[1] .. args[2]); negated */
    SB_KQL_E_STAR,    /* '*' as a function argument: count(*), arg_max(x, *) */
} sb_kql_expr_kind;

typedef enum sb_kql_binop {
    SB_KQL_OP_OR = 1,
    SB_KQL_OP_AND,
    SB_KQL_OP_EQ,
    SB_KQL_OP_NE,
    SB_KQL_OP_LT,
    SB_KQL_OP_LE,
    SB_KQL_OP_GT,
    SB_KQL_OP_GE,
    SB_KQL_OP_EQ_CI, /* =~ */
    SB_KQL_OP_NE_CI, /* !~ */
    SB_KQL_OP_ADD,
    SB_KQL_OP_SUB,
    SB_KQL_OP_MUL,
    SB_KQL_OP_DIV,
    SB_KQL_OP_MOD,
    SB_KQL_OP_HAS,
    SB_KQL_OP_HAS_CS,
    SB_KQL_OP_HASPREFIX,
    SB_KQL_OP_HASSUFFIX,
    SB_KQL_OP_CONTAINS,
    SB_KQL_OP_CONTAINS_CS,
    SB_KQL_OP_STARTSWITH,
    SB_KQL_OP_STARTSWITH_CS,
    SB_KQL_OP_ENDSWITH,
    SB_KQL_OP_ENDSWITH_CS,
    SB_KQL_OP_MATCHES_REGEX,
} sb_kql_binop;

typedef struct sb_kql_expr sb_kql_expr;
struct sb_kql_expr {
    sb_kql_expr_kind kind;
    size_t pos;
    int op; /* sb_kql_binop */
    int negated, icase;
    sb_kql_type lit_type;
    int64_t i;
    double r;
    char *s; /* string literal (NUL-free: the lexer's value is cut at a NUL), name, function name */
    sb_kql_expr **args;
    size_t nargs;
};

/* `Name = expr` or a bare `expr` (name NULL) in project, extend, summarize and by lists. */
typedef struct sb_kql_named {
    char *name;
    size_t name_pos;
    sb_kql_expr *expr;
} sb_kql_named;

typedef struct sb_kql_sortkey {
    sb_kql_expr *expr;
    int desc;  /* the default is desc */
    int nulls; /* 0 default (asc: first, desc: last), 1 first, 2 last */
} sb_kql_sortkey;

typedef enum sb_kql_op_kind {
    SB_KQL_O_WHERE = 1,
    SB_KQL_O_PROJECT,
    SB_KQL_O_PROJECT_AWAY,   /* items[].name: a name or a pattern with '*' */
    SB_KQL_O_PROJECT_KEEP,   /* same */
    SB_KQL_O_PROJECT_RENAME, /* items[].name = new name, items[].expr = the old name (E_NAME) */
    SB_KQL_O_EXTEND,
    SB_KQL_O_SUMMARIZE,
    SB_KQL_O_SORT,
    SB_KQL_O_TAKE,
    SB_KQL_O_TOP,
    SB_KQL_O_DISTINCT, /* items (bare names) or star */
    SB_KQL_O_COUNT,
    SB_KQL_O_RENDER,
} sb_kql_op_kind;

typedef struct sb_kql_op {
    sb_kql_op_kind kind;
    size_t pos;
    const char *name;  /* as written: "where", "sort", "project-away" (for messages) */
    sb_kql_expr *expr; /* where: predicate; take/top: row count */
    sb_kql_named *items;
    size_t nitems;
    sb_kql_named *by;
    size_t nby;
    sb_kql_sortkey *keys;
    size_t nkeys;
    int star;
    char *viz, *title; /* render */
} sb_kql_op;

typedef struct sb_kql_let {
    char *name;
    size_t pos;
    sb_kql_expr *expr;
} sb_kql_let;

typedef struct sb_kql_query {
    sb_kql_let *lets;
    size_t nlets;
    char *table;
    size_t table_pos;
    sb_kql_op *ops;
    size_t nops;
} sb_kql_query;

/* Longest query text accepted (the parser's memory is proportional to it). */
#define SB_KQL_MAX_QUERY_BYTES (256 * 1024)
/* Deepest expression nesting accepted (the parser and translator recurse). */
#define SB_KQL_MAX_DEPTH 128

/*
 * Parse src (len bytes, need not be NUL-terminated).  SB_OK with *out in the arena, or SB_EINVAL with
 * "Syntax error at L:C: ..." and a caret excerpt in err.
 */
int sb_kql_parse(const char *src, size_t len, sb_kql_arena *a, sb_kql_query **out, char *err, size_t errlen);

#endif
