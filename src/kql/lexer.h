/*
 * lexer.h - KQL tokens, produced on demand from the query text.
 *
 * Owns: the lexical rules of the supported subset (identifiers, including
 * the hyphenated operator names project-away / project-rename / project-keep
 * and the bracketed form ['name'], `in~`; string literals "..." '...' with
 * backslash escapes, verbatim @"..." and h"..."; long, real and timespan
 * literals like 30s 5m 1.5h 100ms 7d 1min; punctuation; // comments), and
 * the position arithmetic of error messages (line:column and a caret
 * excerpt).
 *
 * The parser pulls one token at a time (sb_kql_lex_next) because a few
 * constructs need the raw text instead of tokens: datetime(2026-01-01 10:00)
 * reads up to the closing parenthesis with sb_kql_lex_raw.
 *
 * A lexical error yields a token of kind SB_KQL_TOK_ERROR with its message;
 * the parser reports it as a syntax error at the token's position.
 */
#ifndef SB_KQL_LEXER_H
#define SB_KQL_LEXER_H

#include <stddef.h>
#include <stdint.h>

#include "kql/arena.h"

typedef enum sb_kql_tok_kind {
    SB_KQL_TOK_EOF = 0,
    SB_KQL_TOK_IDENT,    /* text: the name */
    SB_KQL_TOK_STRING,   /* text: the decoded value (may contain NUL: len) */
    SB_KQL_TOK_LONG,     /* i */
    SB_KQL_TOK_REAL,     /* r */
    SB_KQL_TOK_TIMESPAN, /* i: ticks */
    SB_KQL_TOK_PUNCT,    /* op */
    SB_KQL_TOK_ERROR,    /* text: what is wrong */
} sb_kql_tok_kind;

typedef enum sb_kql_punct {
    SB_KQL_P_PIPE = 1,
    SB_KQL_P_LPAREN,
    SB_KQL_P_RPAREN,
    SB_KQL_P_LBRACKET,
    SB_KQL_P_RBRACKET,
    SB_KQL_P_COMMA,
    SB_KQL_P_SEMI,
    SB_KQL_P_ASSIGN, /* = */
    SB_KQL_P_EQ,     /* == */
    SB_KQL_P_NE,     /* != or <> */
    SB_KQL_P_LT,
    SB_KQL_P_LE,
    SB_KQL_P_GT,
    SB_KQL_P_GE,
    SB_KQL_P_EQ_TILDE, /* =~ */
    SB_KQL_P_NE_TILDE, /* !~ */
    SB_KQL_P_PLUS,
    SB_KQL_P_MINUS,
    SB_KQL_P_STAR,
    SB_KQL_P_SLASH,
    SB_KQL_P_PERCENT,
    SB_KQL_P_DOT,
    SB_KQL_P_DOTDOT, /* .. */
    SB_KQL_P_BANG,   /* ! directly before a word: !in, !has, !contains ... */
} sb_kql_punct;

typedef struct sb_kql_token {
    sb_kql_tok_kind kind;
    size_t pos; /* byte offset of the token in the query */
    size_t end; /* byte offset just past it */
    int op;     /* SB_KQL_TOK_PUNCT */
    int64_t i;
    double r;
    char *text; /* arena; NUL-terminated */
    size_t len; /* of text */
} sb_kql_token;

typedef struct sb_kql_lexer {
    const char *src;
    size_t len, pos;
    sb_kql_arena *arena;
} sb_kql_lexer;

void sb_kql_lex_init(sb_kql_lexer *lx, const char *src, size_t len, sb_kql_arena *arena);
/* The next token (comments and blanks skipped). */
void sb_kql_lex_next(sb_kql_lexer *lx, sb_kql_token *t);
/* Raw text from the current position up to (not including) the next ')' at nesting depth 0, which is
 * consumed.  Returns 0 when the text ends first. */
int sb_kql_lex_raw(sb_kql_lexer *lx, size_t *start, size_t *end);
/* Human-readable form of a token for messages: "'wher'", "end of query", "'|'". */
const char *sb_kql_tok_describe(sb_kql_arena *a, const char *src, const sb_kql_token *t);

/*
 * Format "<kind> error at L:C: <message>\n<the line>\n<caret>" into err.  Columns count characters
 * (UTF-8 code points) from 1; tabs in the excerpt are kept so the caret lines up.
 */
void sb_kql_format_error(char *err, size_t errlen, const char *src, size_t srclen, size_t pos,
                         const char *kind, const char *message);
/* Line and column (both from 1) of a byte offset. */
void sb_kql_line_col(const char *src, size_t srclen, size_t pos, int *line, int *col);

#endif
