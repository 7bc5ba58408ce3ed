/*
 * sqlfuncs.c - the SQL functions the translated queries call; see kql.h
 * (sb_kql_register_functions) and translate.c for where each is used.
 *
 *   kql_strop(code, hay, needle)   has/hasprefix/hassuffix/contains/startswith/endswith;
 *                                  code = op * 2 + case_sensitive (translate.c's STROP_*)
 *   regexp(pattern, text)          `text REGEXP pattern`: POSIX extended regex (regex.h) with the
 *                                  common RE2 spellings \d \D (?i) (?: translated; compiled once per
 *                                  statement (auxdata)
 *   kql_dt_add(dt, ticks) kql_dt_diff(a, b) kql_dt_ticks(dt) kql_bin_dt(dt, ticks)
 *   kql_bin_num(x, size, real) kql_todatetime(x) kql_tostring(x, type) kql_tolong(x)
 *   kql_toreal(x) kql_tobool(x) kql_array_length(json)
 *   kql_make_set(x, type, max) kql_make_list(x, type, max)   aggregates -> JSON array text
 *
 * Terms (has): a term is a maximal run of ASCII letters and digits (bytes
 * >= 0x80 count as letters, so UTF-8 words stay whole).  `hay has needle`
 * holds when needle occurs with no term character glued to its alphanumeric
 * ends; case is folded for ASCII only, as for =~.
 *
 * Every function treats a NULL text argument as "" and returns NULL for a
 * NULL datetime, like Kusto's null propagation.
 */
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kql/datetime.h"
#include "kql/kql.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/dict.h"
#include "util/error.h"

/* Defined in result.c: a JSON string from possibly invalid UTF-8. */
json_t *sb__kql_json_string(const char *s, size_t n);
/* Defined in result.c: a double the way Kusto prints it (shortest round-trip form). */
void sb__kql_format_real(double v, char out[32]);

enum { STROP_HAS = 1, STROP_HASPREFIX, STROP_HASSUFFIX, STROP_CONTAINS, STROP_STARTSWITH, STROP_ENDSWITH };

static int term_char(unsigned char c) {
    return isalnum(c) || c >= 0x80;
}

static int eq_at(const unsigned char *h, const unsigned char *n, size_t len, int cs) {
    if (cs)
        return memcmp(h, n, len) == 0;
    for (size_t i = 0; i < len; i++)
        if (tolower(h[i]) != tolower(n[i]))
            return 0;
    return 1;
}

/* Does needle occur in hay at a position satisfying the boundary rules? */
static int find(const unsigned char *h, size_t hn, const unsigned char *n, size_t nn, int cs, int left,
                int right) {
    if (nn > hn)
        return 0;
    int lb = left && nn && term_char(n[0]), rb = right && nn && term_char(n[nn - 1]);
    for (size_t i = 0; i + nn <= hn; i++) {
        if (!eq_at(h + i, n, nn, cs))
            continue;
        if (lb && i > 0 && term_char(h[i - 1]))
            continue;
        if (rb && i + nn < hn && term_char(h[i + nn]))
            continue;
        return 1;
    }
    return 0;
}

static const unsigned char *text_arg(sqlite3_value *v, size_t *n) {
    const unsigned char *s = sqlite3_value_text(v);
    *n = s ? (size_t)sqlite3_value_bytes(v) : 0;
    return s ? s : (const unsigned char *)"";
}

static void fn_strop(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    int code = sqlite3_value_int(argv[0]);
    int op = code / 2, cs = code % 2;
    size_t hn, nn;
    const unsigned char *h = text_arg(argv[1], &hn), *n = text_arg(argv[2], &nn);
    int r = 0;
    switch (op) {
    case STROP_HAS:
        r = find(h, hn, n, nn, cs, 1, 1);
        break;
    case STROP_HASPREFIX:
        r = find(h, hn, n, nn, cs, 1, 0);
        break;
    case STROP_HASSUFFIX:
        r = find(h, hn, n, nn, cs, 0, 1);
        break;
    case STROP_CONTAINS:
        r = find(h, hn, n, nn, cs, 0, 0);
        break;
    case STROP_STARTSWITH:
        r = nn <= hn && eq_at(h, n, nn, cs);
        break;
    case STROP_ENDSWITH:
        r = nn <= hn && eq_at(h + hn - nn, n, nn, cs);
        break;
    default:
        sqlite3_result_error(ctx, "kql_strop: bad operator code", -1);
        return;
    }
    sqlite3_result_int(ctx, r);
}

/* ---- regex --------------------------------------------------------------------------------------- */

static void free_regex(void *p) {
    regfree(p);
    sb_free(p);
}

/* RE2 spellings POSIX ERE lacks: \d \D (also inside brackets), (?: groups, a leading (?i). */
static char *to_posix(const char *pat, int *icase) {
    sb_buf b;
    sb_buf_init(&b);
    if (strncmp(pat, "(?i)", 4) == 0) {
        *icase = 1;
        pat += 4;
    }
    int in_bracket = 0;
    for (const char *p = pat; *p; p++) {
        if (p[0] == '\\' && p[1]) {
            if (p[1] == 'd') {
                sb_buf_appends(&b, in_bracket ? "0-9" : "[0-9]");
            } else if (p[1] == 'D' && !in_bracket) {
                sb_buf_appends(&b, "[^0-9]");
            } else {
                sb_buf_append(&b, p, 2);
            }
            p++;
            continue;
        }
        if (!in_bracket && p[0] == '(' && p[1] == '?' && p[2] == ':') {
            sb_buf_appendc(&b, '(');
            p += 2;
            continue;
        }
        if (!in_bracket && *p == '[') {
            in_bracket = 1;
            sb_buf_appendc(&b, *p);
            if (p[1] == '^')
                sb_buf_appendc(&b, *++p);
            if (p[1] == ']')
                sb_buf_appendc(&b, *++p);
            continue;
        }
        if (in_bracket && *p == ']')
            in_bracket = 0;
        sb_buf_appendc(&b, *p);
    }
    return sb_buf_steal(&b, NULL);
}

static void fn_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    regex_t *re = sqlite3_get_auxdata(ctx, 0);
    int fresh = !re;
    if (fresh) {
        const char *pat = (const char *)sqlite3_value_text(argv[0]);
        int icase = 0;
        char *posix = to_posix(pat ? pat : "", &icase);
        re = sb_malloc(sizeof *re);
        int rc = regcomp(re, posix, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
        sb_free(posix);
        if (rc != 0) {
            char why[128], msg[256];
            regerror(rc, re, why, sizeof why);
            sb_free(re);
            snprintf(msg, sizeof msg, "invalid regular expression '%.80s': %s", pat ? pat : "", why);
            sqlite3_result_error(ctx, msg, -1);
            return;
        }
    }
    size_t n;
    const unsigned char *s = text_arg(argv[1], &n);
    sqlite3_result_int(ctx, regexec(re, (const char *)s, 0, NULL, 0) == 0);
    if (fresh) /* cached for the statement's next rows; SQLite may also free it at once */
        sqlite3_set_auxdata(ctx, 0, re, free_regex);
}

/* ---- datetime ------------------------------------------------------------------------------------ */

/* A datetime argument (canonical text, or any form sb_kql_dt_parse takes). */
static int dt_arg(sqlite3_value *v, int64_t *t) {
    if (sqlite3_value_type(v) == SQLITE_NULL)
        return 0;
    const char *s = (const char *)sqlite3_value_text(v);
    return s && sb_kql_dt_parse(s, (size_t)sqlite3_value_bytes(v), t) == SB_OK;
}

static void result_dt(sqlite3_context *ctx, int64_t t) {
    if (!sb_kql_dt_valid(t)) {
        sqlite3_result_null(ctx);
        return;
    }
    char text[SB_KQL_DT_TEXT_LEN + 1];
    sb_kql_dt_format(t, text);
    sqlite3_result_text(ctx, text, SB_KQL_DT_TEXT_LEN, SQLITE_TRANSIENT);
}

static void fn_dt_add(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    int64_t t;
    if (!dt_arg(argv[0], &t) || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    int64_t d = sqlite3_value_int64(argv[1]);
    if ((d > 0 && t > INT64_MAX - d) || (d < 0 && t < INT64_MIN - d)) {
        sqlite3_result_null(ctx);
        return;
    }
    result_dt(ctx, t + d);
}

static void fn_dt_diff(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    int64_t a, b;
    if (!dt_arg(argv[0], &a) || !dt_arg(argv[1], &b))
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, a - b); /* both within 0001..9999: no overflow */
}

static void fn_dt_ticks(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    int64_t t;
    if (!dt_arg(argv[0], &t))
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, t);
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void fn_bin_dt(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    int64_t t;
    if (!dt_arg(argv[0], &t) || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    int64_t size = sqlite3_value_int64(argv[1]);
    if (size <= 0) {
        sqlite3_result_null(ctx);
        return;
    }
    result_dt(ctx, floor_div(t, size) * size);
}

static void fn_bin_num(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
        sqlite3_result_null(ctx);
        return;
    }
    if (sqlite3_value_int(argv[2])) {
        double v = sqlite3_value_double(argv[0]), size = sqlite3_value_double(argv[1]);
        if (!(size > 0))
            sqlite3_result_null(ctx);
        else
            sqlite3_result_double(ctx, floor(v / size) * size);
        return;
    }
    int64_t v = sqlite3_value_int64(argv[0]), size = sqlite3_value_int64(argv[1]);
    if (size <= 0 || (v == INT64_MIN && size == 1))
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, floor_div(v, size) * size);
}

static void fn_todatetime(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    int64_t t;
    if (!dt_arg(argv[0], &t))
        sqlite3_result_null(ctx);
    else
        result_dt(ctx, t);
}

/* ---- conversions --------------------------------------------------------------------------------- */

static void fn_tostring(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    sqlite3_value *v = argv[0];
    if (sqlite3_value_type(v) == SQLITE_NULL) {
        sqlite3_result_text(ctx, "", 0, SQLITE_STATIC);
        return;
    }
    char buf[64];
    int64_t t;
    switch ((sb_kql_type)sqlite3_value_int(argv[1])) {
    case SB_KQL_T_BOOL:
        sqlite3_result_text(ctx, sqlite3_value_int64(v) ? "true" : "false", -1, SQLITE_STATIC);
        return;
    case SB_KQL_T_REAL:
        sb__kql_format_real(sqlite3_value_double(v), buf);
        sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
        return;
    case SB_KQL_T_DATETIME:
        if (!dt_arg(v, &t)) {
            sqlite3_result_text(ctx, "", 0, SQLITE_STATIC);
            return;
        }
        sb_kql_dt_format_api(t, buf);
        sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
        return;
    case SB_KQL_T_TIMESPAN:
        sb_kql_ts_format(sqlite3_value_int64(v), buf);
        sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
        return;
    case SB_KQL_T_INT:
    case SB_KQL_T_LONG:
        snprintf(buf, sizeof buf, "%lld", (long long)sqlite3_value_int64(v));
        sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
        return;
    default:
        sqlite3_result_value(ctx, v);
        return;
    }
}

static const char *trimmed(sqlite3_value *v, size_t *n) {
    const char *s = (const char *)sqlite3_value_text(v);
    if (!s)
        return NULL;
    *n = (size_t)sqlite3_value_bytes(v);
    while (*n && isspace((unsigned char)*s))
        s++, (*n)--;
    while (*n && isspace((unsigned char)s[*n - 1]))
        (*n)--;
    return s;
}

/* The trimmed text of v as a C string in buf (cap bytes), or NULL when it is null, empty or too long to be a
 * number (tolong, toreal). */
static const char *trimmed_copy(sqlite3_value *v, char *buf, size_t cap) {
    size_t n;
    const char *s = trimmed(v, &n);
    if (!s || !n || n >= cap)
        return NULL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

static void fn_tolong(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    char buf[32], *end;
    if (!trimmed_copy(argv[0], buf, sizeof buf)) {
        sqlite3_result_null(ctx);
        return;
    }
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, v);
}

static void fn_toreal(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    char buf[64], *end;
    if (!trimmed_copy(argv[0], buf, sizeof buf)) {
        sqlite3_result_null(ctx);
        return;
    }
    double v = strtod(buf, &end);
    if (*end)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_double(ctx, v);
}

static void fn_tobool(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    size_t n;
    const char *s = trimmed(argv[0], &n);
    if (s && ((n == 4 && strncasecmp(s, "true", 4) == 0) || (n == 1 && *s == '1')))
        sqlite3_result_int(ctx, 1);
    else if (s && ((n == 5 && strncasecmp(s, "false", 5) == 0) || (n == 1 && *s == '0')))
        sqlite3_result_int(ctx, 0);
    else
        sqlite3_result_null(ctx);
}

static void fn_array_length(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    size_t n;
    const char *s = trimmed(argv[0], &n);
    json_t *j = s ? json_loadb(s, n, JSON_DECODE_ANY, NULL) : NULL;
    if (json_is_array(j))
        sqlite3_result_int64(ctx, (sqlite3_int64)json_array_size(j));
    else
        sqlite3_result_null(ctx);
    json_decref(j);
}

/* ---- make_set / make_list ------------------------------------------------------------------------ */

typedef struct collect {
    json_t *arr;
    sb_dict seen; /* make_set: the compact JSON of every value kept */
    int distinct;
} collect;

/* A cell as the JSON value Kusto puts in a dynamic array. */
static json_t *to_json_value(sqlite3_value *v, sb_kql_type type) {
    char buf[64];
    int64_t t;
    switch (type) {
    case SB_KQL_T_BOOL:
        return json_boolean(sqlite3_value_int64(v) != 0);
    case SB_KQL_T_INT:
    case SB_KQL_T_LONG:
        return json_integer(sqlite3_value_int64(v));
    case SB_KQL_T_REAL: {
        double d = sqlite3_value_double(v);
        return isfinite(d) ? json_real(d) : json_string(isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
    }
    case SB_KQL_T_DATETIME:
        if (!dt_arg(v, &t))
            return NULL;
        sb_kql_dt_format_api(t, buf);
        return json_string(buf);
    case SB_KQL_T_TIMESPAN:
        sb_kql_ts_format(sqlite3_value_int64(v), buf);
        return json_string(buf);
    case SB_KQL_T_DYNAMIC: {
        const char *s = (const char *)sqlite3_value_text(v);
        json_t *j = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
        if (j)
            return j;
        return sb__kql_json_string(s ? s : "",
                                   s ? (size_t)sqlite3_value_bytes(v) : 0); /* not JSON: the text */
    }
    default: {
        const char *s = (const char *)sqlite3_value_text(v);
        return sb__kql_json_string(s ? s : "", s ? (size_t)sqlite3_value_bytes(v) : 0);
    }
    }
}

static void collect_step(sqlite3_context *ctx, int argc, sqlite3_value **argv, int distinct) {
    collect *c = sqlite3_aggregate_context(ctx, sizeof *c);
    if (!c) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (!c->arr) {
        c->arr = json_array();
        sb_dict_init(&c->seen);
        c->distinct = distinct;
    }
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return; /* aggregates ignore nulls */
    sqlite3_int64 max = sqlite3_value_int64(argv[2]);
    if ((sqlite3_int64)json_array_size(c->arr) >= max)
        return;
    json_t *j = to_json_value(argv[0], (sb_kql_type)sqlite3_value_int(argv[1]));
    if (!j)
        return;
    if (distinct) {
        char *key = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!key || sb_dict_gets(&c->seen, key)) {
            free(key);
            json_decref(j);
            return;
        }
        sb_dict_set(&c->seen, key, strlen(key), c);
        free(key);
    }
    json_array_append_new(c->arr, j);
}

static void set_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    collect_step(ctx, argc, argv, 1);
}
static void list_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    collect_step(ctx, argc, argv, 0);
}

static void collect_final(sqlite3_context *ctx) {
    collect *c = sqlite3_aggregate_context(ctx, 0);
    if (!c || !c->arr) {
        sqlite3_result_text(ctx, "[]", 2, SQLITE_STATIC);
        return;
    }
    char *s = json_dumps(c->arr, JSON_COMPACT);
    if (s)
        sqlite3_result_text(ctx, s, -1, free);
    else
        sqlite3_result_error_nomem(ctx);
    json_decref(c->arr);
    sb_dict_free(&c->seen);
    c->arr = NULL;
}

int sb_kql_register_functions(sqlite3 *db) {
    static const struct {
        const char *name;
        int argc;
        void (*fn)(sqlite3_context *, int, sqlite3_value **);
    } scalars[] = {
        {"kql_strop", 3, fn_strop},
        {"regexp", 2, fn_regexp},
        {"kql_dt_add", 2, fn_dt_add},
        {"kql_dt_diff", 2, fn_dt_diff},
        {"kql_dt_ticks", 1, fn_dt_ticks},
        {"kql_bin_dt", 2, fn_bin_dt},
        {"kql_bin_num", 3, fn_bin_num},
        {"kql_todatetime", 1, fn_todatetime},
        {"kql_tostring", 2, fn_tostring},
        {"kql_tolong", 1, fn_tolong},
        {"kql_toreal", 1, fn_toreal},
        {"kql_tobool", 1, fn_tobool},
        {"kql_array_length", 1, fn_array_length},
    };
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (sqlite3_create_function_v2(db, scalars[i].name, scalars[i].argc, flags, NULL, scalars[i].fn, NULL,
                                       NULL, NULL) != SQLITE_OK)
            return SB_EIO;
    if (sqlite3_create_function_v2(db, "kql_make_set", 3, flags, NULL, NULL, set_step, collect_final, NULL) !=
            SQLITE_OK ||
        sqlite3_create_function_v2(db, "kql_make_list", 3, flags, NULL, NULL, list_step, collect_final,
                                   NULL) != SQLITE_OK)
        return SB_EIO;
    return SB_OK;
}
