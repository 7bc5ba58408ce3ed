/*
 * result.c - the result table: its cells as Logs API JSON and as text, and
 * freeing it.
 *
 * Cell encodings follow the Logs API exactly: datetime as ISO-8601 'Z' text
 * without trailing fraction zeros, timespan as "[d.]hh:mm:ss[.fffffff]",
 * dynamic as JSON *text* (the SDK JSON.parses it), bool as true/false,
 * special reals as "NaN" / "Infinity" / "-Infinity", a null as JSON null
 * except for strings, which are never null ("").  Text that is not valid
 * UTF-8 (a workspace row written by something else) is repaired with U+FFFD
 * so the body is always valid JSON.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kql/datetime.h"
#include "kql/kql.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/utf8.h"

json_t *sb__kql_json_string(const char *s, size_t n);
void sb__kql_format_real(double v, char out[32]);

json_t *sb__kql_json_string(const char *s, size_t n) {
    if (sb_utf8_valid(s, n) && !memchr(s, 0, n))
        return json_stringn(s, n);
    sb_buf b;
    sb_buf_init(&b);
    size_t i = 0;
    while (i < n) {
        /* the longest valid prefix of at most 4 bytes starting here, else one bad byte */
        size_t len = 0;
        for (size_t k = 1; k <= 4 && i + k <= n; k++)
            if (sb_utf8_valid(s + i, k))
                len = k;
        if (len && s[i] != '\0') {
            sb_buf_append(&b, s + i, len);
            i += len;
        } else {
            sb_buf_appends(&b, "\xEF\xBF\xBD");
            i++;
        }
    }
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    sb_buf_free(&b);
    return j;
}

void sb__kql_format_real(double v, char out[32]) {
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

json_t *sb_kql_value_to_json(const sb_kql_value *v, sb_kql_type t) {
    char buf[64];
    if (t == SB_KQL_T_STRING)
        return v->null || !v->s ? json_string("") : sb__kql_json_string(v->s, strlen(v->s));
    if (v->null)
        return json_null();
    switch (t) {
    case SB_KQL_T_BOOL:
        return json_boolean(v->i != 0);
    case SB_KQL_T_INT:
    case SB_KQL_T_LONG:
        return json_integer(v->i);
    case SB_KQL_T_REAL:
        if (isfinite(v->r))
            return json_real(v->r);
        sb__kql_format_real(v->r, buf);
        return json_string(buf);
    case SB_KQL_T_DATETIME:
        sb_kql_dt_format_api(v->i, buf);
        return json_string(buf);
    case SB_KQL_T_TIMESPAN:
        sb_kql_ts_format(v->i, buf);
        return json_string(buf);
    case SB_KQL_T_DYNAMIC:
        return sb__kql_json_string(v->s ? v->s : "null", v->s ? strlen(v->s) : 4);
    default:
        return json_null();
    }
}

char *sb_kql_value_to_text(const sb_kql_value *v, sb_kql_type t) {
    char buf[64];
    if (v->null)
        return sb_strdup("");
    switch (t) {
    case SB_KQL_T_BOOL:
        return sb_strdup(v->i ? "true" : "false");
    case SB_KQL_T_INT:
    case SB_KQL_T_LONG:
        return sb_asprintf("%lld", (long long)v->i);
    case SB_KQL_T_REAL:
        sb__kql_format_real(v->r, buf);
        return sb_strdup(buf);
    case SB_KQL_T_DATETIME:
        sb_kql_dt_format_api(v->i, buf);
        return sb_strdup(buf);
    case SB_KQL_T_TIMESPAN:
        sb_kql_ts_format(v->i, buf);
        return sb_strdup(buf);
    default:
        return sb_strdup(v->s ? v->s : "");
    }
}

json_t *sb_kql_result_to_json(const sb_kql_result *r) {
    json_t *cols = json_array();
    for (size_t c = 0; c < r->ncolumns; c++)
        json_array_append_new(cols,
                              json_pack("{s:o, s:s}", "name",
                                        sb__kql_json_string(r->columns[c].name, strlen(r->columns[c].name)),
                                        "type", sb_kql_type_name(r->columns[c].type)));
    json_t *rows = json_array();
    for (size_t i = 0; i < r->nrows; i++) {
        json_t *row = json_array();
        for (size_t c = 0; c < r->ncolumns; c++)
            json_array_append_new(row, sb_kql_value_to_json(sb_kql_cell(r, i, c), r->columns[c].type));
        json_array_append_new(rows, row);
    }
    json_t *table = json_pack("{s:s, s:o, s:o}", "name", "PrimaryResult", "columns", cols, "rows", rows);
    return json_pack("{s:[o]}", "tables", table);
}

void sb_kql_result_free(sb_kql_result *r) {
    for (size_t i = 0; i < r->nrows * r->ncolumns; i++)
        sb_free(r->cells[i].s);
    sb_free(r->cells);
    for (size_t c = 0; c < r->ncolumns; c++)
        sb_free(r->columns[c].name);
    sb_free(r->columns);
    sb_free(r->render);
    sb_free(r->render_title);
    memset(r, 0, sizeof *r);
}
