/*
 * lexer.c - KQL tokens; see lexer.h.
 *
 * Numbers: a digit run with an optional fraction and exponent is a long or
 * a real; letters glued to it must be a timespan unit (30s, 1.5h, 1min),
 * anything else is an error rather than two tokens, so "10x" is reported
 * where it is written.  "1..3" lexes as 1 .. 3 (the between operator).
 *
 * Strings never span lines (KQL's rule), so an unbalanced quote is reported
 * at the quote, not at the end of the query.
 */
#include "kql/lexer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kql/datetime.h"
#include "util/buf.h"
#include "util/error.h"

static int is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_alnum(char c) {
    return is_alpha(c) || is_digit(c);
}

void sb_kql_lex_init(sb_kql_lexer *lx, const char *src, size_t len, sb_kql_arena *arena) {
    lx->src = src;
    lx->len = len;
    lx->pos = 0;
    lx->arena = arena;
}

static void skip_blanks(sb_kql_lexer *lx) {
    while (lx->pos < lx->len) {
        char c = lx->src[lx->pos];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
            lx->pos++;
        } else if (c == '/' && lx->pos + 1 < lx->len && lx->src[lx->pos + 1] == '/') {
            while (lx->pos < lx->len && lx->src[lx->pos] != '\n')
                lx->pos++;
        } else {
            break;
        }
    }
}

static void error_tok(sb_kql_lexer *lx, sb_kql_token *t, const char *msg) {
    t->kind = SB_KQL_TOK_ERROR;
    t->text = sb_kql_strdup(lx->arena, msg);
    t->len = strlen(msg);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put_utf8(sb_buf *b, unsigned cp) {
    if (cp < 0x80) {
        sb_buf_appendc(b, (char)cp);
    } else if (cp < 0x800) {
        sb_buf_appendc(b, (char)(0xC0 | cp >> 6));
        sb_buf_appendc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        sb_buf_appendc(b, (char)(0xE0 | cp >> 12));
        sb_buf_appendc(b, (char)(0x80 | (cp >> 6 & 0x3F)));
        sb_buf_appendc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* A quoted string starting at lx->pos (the quote).  verbatim: no escapes, a doubled quote is one quote. */
static void lex_string(sb_kql_lexer *lx, sb_kql_token *t, int verbatim) {
    char q = lx->src[lx->pos++];
    sb_buf b;
    sb_buf_init(&b);
    for (;;) {
        if (lx->pos >= lx->len || lx->src[lx->pos] == '\n') {
            sb_buf_free(&b);
            lx->pos = t->pos;
            error_tok(lx, t, "unterminated string literal");
            lx->pos = lx->len; /* nothing after an unbalanced quote can be trusted */
            return;
        }
        char c = lx->src[lx->pos++];
        if (c == q) {
            if (verbatim && lx->pos < lx->len && lx->src[lx->pos] == q) {
                sb_buf_appendc(&b, q);
                lx->pos++;
                continue;
            }
            break;
        }
        if (c != '\\' || verbatim) {
            sb_buf_appendc(&b, c);
            continue;
        }
        if (lx->pos >= lx->len)
            continue; /* reported as unterminated on the next turn */
        char e = lx->src[lx->pos++];
        switch (e) {
        case 'n':
            sb_buf_appendc(&b, '\n');
            break;
        case 't':
            sb_buf_appendc(&b, '\t');
            break;
        case 'r':
            sb_buf_appendc(&b, '\r');
            break;
        case '\\':
            sb_buf_appendc(&b, '\\');
            break;
        case '\'':
            sb_buf_appendc(&b, '\'');
            break;
        case '"':
            sb_buf_appendc(&b, '"');
            break;
        case 'u': {
            unsigned cp = 0;
            for (int k = 0; k < 4; k++) {
                int h = lx->pos < lx->len ? hexval(lx->src[lx->pos]) : -1;
                if (h < 0) {
                    sb_buf_free(&b);
                    error_tok(lx, t, "invalid \\u escape in string literal");
                    return;
                }
                cp = cp * 16 + (unsigned)h;
                lx->pos++;
            }
            put_utf8(&b, cp);
            break;
        }
        default: {
            sb_buf_free(&b);
            char msg[64];
            snprintf(msg, sizeof msg, "invalid escape sequence '\\%c' in string literal", e);
            error_tok(lx, t, msg);
            return;
        }
        }
    }
    t->kind = SB_KQL_TOK_STRING;
    t->text = sb_kql_strndup(lx->arena, b.data ? b.data : "", b.len);
    t->len = b.len;
    sb_buf_free(&b);
}

static void lex_number(sb_kql_lexer *lx, sb_kql_token *t) {
    const char *s = lx->src;
    size_t i = lx->pos, n = lx->len;
    if (s[i] == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        i += 2;
        uint64_t v = 0;
        size_t start = i;
        while (i < n && hexval(s[i]) >= 0) {
            if (v >> 60) {
                error_tok(lx, t, "hexadecimal literal out of range");
                lx->pos = i;
                return;
            }
            v = v * 16 + (unsigned)hexval(s[i++]);
        }
        lx->pos = i;
        if (i == start || (i < n && is_alnum(s[i]))) {
            error_tok(lx, t, "invalid hexadecimal literal");
            return;
        }
        t->kind = SB_KQL_TOK_LONG;
        t->i = (int64_t)v;
        return;
    }
    int real = 0;
    while (i < n && is_digit(s[i]))
        i++;
    if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
        real = 1;
        i++;
        while (i < n && is_digit(s[i]))
            i++;
    }
    size_t numend = i;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && is_digit(s[j])) {
            while (j < n && is_digit(s[j]))
                j++;
            real = 1;
            i = numend = j;
        }
    }
    if (i < n && is_alpha(s[i])) {
        size_t u = i;
        while (i < n && is_alnum(s[i]))
            i++;
        lx->pos = i;
        int64_t ticks;
        if (numend == u && sb_kql_ts_parse(s + t->pos, i - t->pos, &ticks) == SB_OK) {
            t->kind = SB_KQL_TOK_TIMESPAN;
            t->i = ticks;
            return;
        }
        error_tok(lx, t, "invalid number or timespan literal");
        return;
    }
    lx->pos = i;
    char tmp[64];
    size_t len = i - t->pos;
    if (len >= sizeof tmp) {
        error_tok(lx, t, "numeric literal too long");
        return;
    }
    memcpy(tmp, s + t->pos, len);
    tmp[len] = '\0';
    if (real) {
        t->kind = SB_KQL_TOK_REAL;
        t->r = strtod(tmp, NULL);
        return;
    }
    char *end;
    unsigned long long v = strtoull(tmp, &end, 10);
    if (v > (unsigned long long)INT64_MAX) {
        error_tok(lx, t, "integer literal out of range for long");
        return;
    }
    t->kind = SB_KQL_TOK_LONG;
    t->i = (int64_t)v;
}

static int starts(const sb_kql_lexer *lx, const char *lit) {
    size_t n = strlen(lit);
    return lx->len - lx->pos >= n && memcmp(lx->src + lx->pos, lit, n) == 0;
}

static void punct(sb_kql_lexer *lx, sb_kql_token *t, int op, size_t n) {
    t->kind = SB_KQL_TOK_PUNCT;
    t->op = op;
    lx->pos += n;
}

void sb_kql_lex_next(sb_kql_lexer *lx, sb_kql_token *t) {
    memset(t, 0, sizeof *t);
    skip_blanks(lx);
    t->pos = lx->pos;
    if (lx->pos >= lx->len) {
        t->kind = SB_KQL_TOK_EOF;
        t->end = lx->pos;
        return;
    }
    const char *s = lx->src;
    char c = s[lx->pos], d = lx->pos + 1 < lx->len ? s[lx->pos + 1] : '\0';
    if (c == '"' || c == '\'') {
        lex_string(lx, t, 0);
    } else if ((c == '@' || c == 'h' || c == 'H') && (d == '"' || d == '\'')) {
        lx->pos++;
        lex_string(lx, t, c == '@');
    } else if ((c == 'h' || c == 'H') && d == '@' && lx->pos + 2 < lx->len &&
               (s[lx->pos + 2] == '"' || s[lx->pos + 2] == '\'')) {
        lx->pos += 2;
        lex_string(lx, t, 1);
    } else if (is_alpha(c)) {
        size_t i = lx->pos;
        while (i < lx->len && is_alnum(s[i]))
            i++;
        /* hyphenated operator names are single words */
        if (i - lx->pos == 7 && memcmp(s + lx->pos, "project", 7) == 0 && i + 1 < lx->len && s[i] == '-' &&
            is_alpha(s[i + 1])) {
            i++;
            while (i < lx->len && is_alnum(s[i]))
                i++;
        } else if (i - lx->pos == 2 && memcmp(s + lx->pos, "in", 2) == 0 && i < lx->len && s[i] == '~') {
            i++;
        }
        t->kind = SB_KQL_TOK_IDENT;
        t->text = sb_kql_strndup(lx->arena, s + lx->pos, i - lx->pos);
        t->len = i - lx->pos;
        lx->pos = i;
    } else if (is_digit(c)) {
        lex_number(lx, t);
    } else if (c == '[' && (d == '\'' || d == '"')) {
        /* ['column name'] */
        lx->pos++;
        sb_kql_token str;
        memset(&str, 0, sizeof str);
        str.pos = lx->pos;
        lex_string(lx, &str, 0);
        skip_blanks(lx);
        if (str.kind == SB_KQL_TOK_ERROR) {
            *t = str;
        } else if (lx->pos >= lx->len || s[lx->pos] != ']') {
            error_tok(lx, t, "expected ']' after a bracketed name");
        } else if (!str.len || memchr(str.text, 0, str.len)) {
            lx->pos++;
            error_tok(lx, t, "a bracketed name must not be empty");
        } else {
            lx->pos++;
            t->kind = SB_KQL_TOK_IDENT;
            t->text = str.text;
            t->len = str.len;
        }
    } else if (starts(lx, "==")) {
        punct(lx, t, SB_KQL_P_EQ, 2);
    } else if (starts(lx, "=~")) {
        punct(lx, t, SB_KQL_P_EQ_TILDE, 2);
    } else if (starts(lx, "!=")) {
        punct(lx, t, SB_KQL_P_NE, 2);
    } else if (starts(lx, "<>")) {
        punct(lx, t, SB_KQL_P_NE, 2);
    } else if (starts(lx, "!~")) {
        punct(lx, t, SB_KQL_P_NE_TILDE, 2);
    } else if (starts(lx, "<=")) {
        punct(lx, t, SB_KQL_P_LE, 2);
    } else if (starts(lx, ">=")) {
        punct(lx, t, SB_KQL_P_GE, 2);
    } else if (starts(lx, "..")) {
        punct(lx, t, SB_KQL_P_DOTDOT, 2);
    } else {
        static const char singles[] = "|()[],;=<>+-*/%.!";
        static const int ops[] = {SB_KQL_P_PIPE,     SB_KQL_P_LPAREN, SB_KQL_P_RPAREN,  SB_KQL_P_LBRACKET,
                                  SB_KQL_P_RBRACKET, SB_KQL_P_COMMA,  SB_KQL_P_SEMI,    SB_KQL_P_ASSIGN,
                                  SB_KQL_P_LT,       SB_KQL_P_GT,     SB_KQL_P_PLUS,    SB_KQL_P_MINUS,
                                  SB_KQL_P_STAR,     SB_KQL_P_SLASH,  SB_KQL_P_PERCENT, SB_KQL_P_DOT,
                                  SB_KQL_P_BANG};
        const char *p = c ? strchr(singles, c) : NULL;
        if (p) {
            punct(lx, t, ops[p - singles], 1);
        } else {
            /* one whole UTF-8 character, so the message quotes it intact */
            size_t n = 1;
            while (lx->pos + n < lx->len && ((unsigned char)s[lx->pos + n] & 0xC0) == 0x80 && n < 4)
                n++;
            lx->pos += n;
            error_tok(lx, t, "unexpected character");
        }
    }
    t->end = lx->pos;
}

int sb_kql_lex_raw(sb_kql_lexer *lx, size_t *start, size_t *end) {
    *start = lx->pos;
    int depth = 0;
    while (lx->pos < lx->len) {
        char c = lx->src[lx->pos];
        if (c == '\n')
            break;
        if (c == '(')
            depth++;
        if (c == ')' && depth-- == 0) {
            *end = lx->pos++;
            return 1;
        }
        lx->pos++;
    }
    *end = lx->pos;
    return 0;
}

const char *sb_kql_tok_describe(sb_kql_arena *a, const char *src, const sb_kql_token *t) {
    if (t->kind == SB_KQL_TOK_EOF)
        return "the end of the query";
    size_t n = t->end > t->pos ? t->end - t->pos : 0;
    if (n > 40)
        return sb_kql_sprintf(a, "'%.37s...'", src + t->pos);
    return sb_kql_sprintf(a, "'%.*s'", (int)n, src + t->pos);
}

void sb_kql_line_col(const char *src, size_t srclen, size_t pos, int *line, int *col) {
    if (pos > srclen)
        pos = srclen;
    int l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        if (src[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

void sb_kql_format_error(char *err, size_t errlen, const char *src, size_t srclen, size_t pos,
                         const char *kind, const char *message) {
    if (!errlen)
        return;
    if (pos > srclen)
        pos = srclen;
    int line, col;
    sb_kql_line_col(src, srclen, pos, &line, &col);
    size_t ls = pos;
    while (ls > 0 && src[ls - 1] != '\n')
        ls--;
    size_t le = pos;
    while (le < srclen && src[le] != '\n' && src[le] != '\r')
        le++;
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appendf(&b, "%s error at %d:%d: %s\n", kind, line, col, message);
    /* a very long line is cut around the error so the caret stays visible */
    size_t from = ls;
    if (pos - ls > 60) {
        from = pos - 50;
        while (from < pos && ((unsigned char)src[from] & 0xC0) == 0x80)
            from++;
    }
    size_t to = le - from > 120 && pos + 60 < le ? pos + 60 : le;
    while (to > pos && to < le && ((unsigned char)src[to] & 0xC0) == 0x80)
        to--;
    if (from > ls)
        sb_buf_appends(&b, "...");
    for (size_t i = from; i < to; i++)
        sb_buf_appendc(&b, src[i] == '\0' ? ' ' : src[i]);
    if (to < le)
        sb_buf_appends(&b, "...");
    sb_buf_appendc(&b, '\n');
    if (from > ls)
        sb_buf_appends(&b, "   ");
    for (size_t i = from; i < pos; i++) {
        if (src[i] == '\t')
            sb_buf_appendc(&b, '\t');
        else if (((unsigned char)src[i] & 0xC0) != 0x80)
            sb_buf_appendc(&b, ' ');
    }
    sb_buf_appendc(&b, '^');
    size_t n = b.len < errlen - 1 ? b.len : errlen - 1;
    /* never cut a UTF-8 character in half */
    while (n > 0 && n < b.len && ((unsigned char)b.data[n] & 0xC0) == 0x80)
        n--;
    memcpy(err, b.data, n);
    err[n] = '\0';
    sb_buf_free(&b);
}
