/*
 * metrics_api.c - Azure Monitor's metrics API; see metrics_api.h for the
 * routes.
 *
 * Order of checks (like rest/mgmt_api.c): route classification (pure); auth,
 * so an anonymous caller learns nothing about which paths exist; then 404 of
 * the path, 405, api-version, the query parameters (400), and the answer.
 *
 * A metrics query becomes an evaluation: for every requested metric, the
 * series its filter asks for (a dimension not in the filter is aggregated
 * away; 'Dim eq *' gives one series per value that has data; listed values
 * give one series each) times the buckets of the interval, each an
 * sb_metrics_point (store.h) that minutes are added into.  Buckets lie on a
 * UTC grid of the interval (PT1H buckets start on the hour); only minutes
 * inside the timespan count; FULL is one bucket labelled with the start.  A
 * bucket with no stored minute (the service was not running) is a point
 * with only its timeStamp.  The evaluation is bounded: more than MAX_POINTS
 * points is a 400 that says to widen the interval or shorten the timespan.
 *
 * The store read and the rendering run on the libuv threadpool.  Minutes
 * still in memory (the current one, and those the writer may not have
 * written yet) are copied into the job on the loop and replace the store's
 * copy of the same minute.
 *
 * Deliberately not here: the subscription-scope metrics API (region
 * queries), POST to .../metrics, rollupby and AutoAdjustTimegrain (accepted
 * and ignored), and dimension filters on metrics that lack the dimension
 * (the filter is ignored for that metric).
 */
#include "metrics/metrics_api.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "metrics/store.h"
#include "net/http.h"
#include "server.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/isotime.h"
#include "util/utf8.h"

#define JSON_TYPE "application/json; charset=utf-8"
#define NAMESPACE "Microsoft.SignalRService/SignalR"
#define NAMESPACE_LOWER "microsoft.signalrservice/signalr"
#define MAX_POINTS 200000
#define MAX_SEGMENTS 16
#define DEFAULT_TOP 10
#define US_PER_MINUTE INT64_C(60000000)
#define MAX_SERIES (SB_EP_COUNT * SB_CC_COUNT)

static const char *const api_versions[] = {"2024-02-01", "2023-10-01", "2023-05-01-preview", "2021-05-01",
                                           "2019-07-01", "2018-01-01", "2017-12-01-preview"};

/* ---- small parsers ---------------------------------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *fmt, const char *arg) {
    snprintf(err, errlen, fmt, arg);
    size_t n = strlen(err); /* a quoted request string may have been cut mid-character */
    while (n && !sb_utf8_valid(err, n))
        err[--n] = '\0';
    return SB_EINVAL;
}

static int bad0(char *err, size_t errlen, const char *msg) {
    snprintf(err, errlen, "%s", msg);
    return SB_EINVAL;
}

int sb_metrics_parse_datetime(const char *s, size_t len, int64_t *out_us) {
    int64_t ticks;
    int rc = sb_isotime_parse(s, len, SB_ISOTIME_OFFSET | SB_ISOTIME_LEAP_SECOND, &ticks);
    if (rc != SB_OK || ticks < 0) /* nothing before the epoch was ever recorded */
        return SB_EINVAL;
    *out_us = ticks / 10;
    return SB_OK;
}

int sb_metrics_parse_duration(const char *s, size_t len, int64_t *out_us) {
    size_t i = 0;
    if (len < 3 || (s[i] != 'P' && s[i] != 'p'))
        return SB_EINVAL;
    i++;
    int in_time = 0, any = 0;
    double total_s = 0;
    while (i < len) {
        if ((s[i] == 'T' || s[i] == 't') && !in_time) {
            in_time = 1;
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '.'))
            i++;
        if (i == start || i >= len || i - start > 12)
            return SB_EINVAL;
        char num[16];
        memcpy(num, s + start, i - start);
        num[i - start] = '\0';
        char *end;
        double v = strtod(num, &end);
        if (*end)
            return SB_EINVAL;
        char unit = (char)toupper((unsigned char)s[i++]);
        double mult = !in_time ? (unit == 'W'   ? 604800
                                  : unit == 'D' ? 86400
                                                : -1)
                               : (unit == 'H'   ? 3600
                                  : unit == 'M' ? 60
                                  : unit == 'S' ? 1
                                                : -1);
        if (mult < 0 || (strchr(num, '.') && unit != 'S'))
            return SB_EINVAL;
        total_s += v * mult;
        any = 1;
    }
    if (!any || total_s <= 0 || total_s > 1e10)
        return SB_EINVAL;
    *out_us = (int64_t)llround(total_s * 1e6);
    return SB_OK;
}

int sb_metrics_parse_timespan(const char *text, int64_t now_us, int64_t *start_us, int64_t *end_us, char *err,
                              size_t errlen) {
    const char *slash = strchr(text, '/');
    int64_t a, b;
    int rc = SB_EINVAL;
    if (!slash) {
        if (sb_metrics_parse_duration(text, strlen(text), &a) == SB_OK) {
            *start_us = now_us - a;
            *end_us = now_us;
            rc = SB_OK;
        }
    } else {
        size_t la = (size_t)(slash - text), lb = strlen(slash + 1);
        const char *t2 = slash + 1;
        if (sb_metrics_parse_datetime(text, la, &a) == SB_OK) {
            if (sb_metrics_parse_datetime(t2, lb, &b) == SB_OK) {
                *start_us = a, *end_us = b, rc = SB_OK;
            } else if (sb_metrics_parse_duration(t2, lb, &b) == SB_OK) {
                *start_us = a, *end_us = a + b, rc = SB_OK;
            }
        } else if (sb_metrics_parse_duration(text, la, &a) == SB_OK &&
                   sb_metrics_parse_datetime(t2, lb, &b) == SB_OK) {
            *start_us = b - a, *end_us = b, rc = SB_OK;
        }
    }
    if (rc != SB_OK)
        return bad(err, errlen,
                   "The timespan '%.200s' is not valid: use start/end (ISO 8601 date-times), start/duration, "
                   "duration/end or a duration.",
                   text);
    if (*end_us <= *start_us)
        return bad(err, errlen, "The timespan '%.200s' is not valid: its end must be after its start.", text);
    return SB_OK;
}

int sb_metrics_parse_interval(const char *text, int64_t *minutes, char *err, size_t errlen) {
    static const struct {
        const char *name;
        int64_t minutes;
    } grains[] = {{"PT1M", 1},   {"PT5M", 5},    {"PT15M", 15}, {"PT30M", 30}, {"PT1H", 60},
                  {"PT6H", 360}, {"PT12H", 720}, {"P1D", 1440}, {"FULL", 0}};
    for (size_t i = 0; i < sizeof grains / sizeof grains[0]; i++)
        if (strcasecmp(text, grains[i].name) == 0) {
            *minutes = grains[i].minutes;
            return SB_OK;
        }
    return bad(
        err, errlen,
        "Invalid time grain '%.100s'. Supported: PT1M, PT5M, PT15M, PT30M, PT1H, PT6H, PT12H, P1D, FULL.",
        text);
}

static int agg_from_name(const char *s, size_t n) {
    static const struct {
        const char *name;
        int agg;
    } names[] = {{"average", SB_AGG_AVERAGE}, {"avg", SB_AGG_AVERAGE}, {"count", SB_AGG_COUNT},
                 {"minimum", SB_AGG_MINIMUM}, {"min", SB_AGG_MINIMUM}, {"maximum", SB_AGG_MAXIMUM},
                 {"max", SB_AGG_MAXIMUM},     {"total", SB_AGG_TOTAL}, {"sum", SB_AGG_TOTAL}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && strncasecmp(names[i].name, s, n) == 0)
            return names[i].agg;
    return -1;
}

/* Calls fn for every comma-separated item (blanks trimmed, empty items skipped). */
static int each_item(const char *text, int (*fn)(const char *s, size_t n, void *arg), void *arg) {
    for (const char *p = text; *p;) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            int rc = fn(a, (size_t)(b - a), arg);
            if (rc != SB_OK)
                return rc;
        }
        p = *e ? e + 1 : e;
    }
    return SB_OK;
}

typedef struct item_ctx {
    sb_metrics_query *q;
    unsigned *aggs;
    char *err;
    size_t errlen;
} item_ctx;

static int add_name(const char *s, size_t n, void *arg) {
    item_ctx *x = arg;
    int id = sb_metric_find(s, n);
    if (id < 0) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(n < 100 ? n : 100), s);
        sb_buf valid;
        sb_buf_init(&valid);
        for (int i = 0; i < SB_METRIC_COUNT; i++)
            sb_buf_appendf(&valid, "%s%s", i ? "," : "", sb_metric_defs[i].name);
        snprintf(x->err, x->errlen,
                 "Failed to find metric configuration for provider: Microsoft.SignalRService, resource Type: "
                 "SignalR, metric: %s, Valid metrics: %s",
                 name, valid.data);
        sb_buf_free(&valid);
        size_t k = strlen(x->err);
        while (k && !sb_utf8_valid(x->err, k))
            x->err[--k] = '\0';
        return SB_EINVAL;
    }
    if (!(x->q->metrics & (1u << id))) {
        x->q->metrics |= 1u << id;
        x->q->order[x->q->nmetrics++] = id;
    }
    return SB_OK;
}

int sb_metrics_parse_names(const char *text, sb_metrics_query *q, char *err, size_t errlen) {
    item_ctx x = {q, NULL, err, errlen};
    int rc = each_item(text, add_name, &x);
    if (rc == SB_OK && !q->nmetrics)
        return bad0(err, errlen, "The metricnames parameter names no metric.");
    return rc;
}

static int add_agg(const char *s, size_t n, void *arg) {
    item_ctx *x = arg;
    if (n == 4 && strncasecmp(s, "none", 4) == 0)
        return SB_OK;
    int a = agg_from_name(s, n);
    if (a < 0) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(n < 100 ? n : 100), s);
        return bad(x->err, x->errlen,
                   "Invalid aggregation '%s'. Supported: Average, Count, Minimum, Maximum, Total.", name);
    }
    *x->aggs |= 1u << a;
    return SB_OK;
}

int sb_metrics_parse_aggregations(const char *text, unsigned *out, char *err, size_t errlen) {
    *out = 0;
    item_ctx x = {NULL, out, err, errlen};
    return each_item(text, add_agg, &x);
}

int sb_metrics_parse_orderby(const char *text, int *agg, int *desc, char *err, size_t errlen) {
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    const char *w = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    int a = agg_from_name(w, (size_t)(p - w));
    while (isspace((unsigned char)*p))
        p++;
    const char *dir = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    size_t dn = (size_t)(p - dir);
    while (isspace((unsigned char)*p))
        p++;
    int d = dn == 0 || (dn == 3 && strncasecmp(dir, "asc", 3) == 0) ? 0
            : dn == 4 && strncasecmp(dir, "desc", 4) == 0           ? 1
                                                                    : -1;
    if (a < 0 || d < 0 || *p)
        return bad(err, errlen, "The orderby '%.100s' is not valid: use '<aggregation> asc|desc'.", text);
    *agg = a;
    *desc = d;
    return SB_OK;
}

/* ---- $filter ---------------------------------------------------------------------------------- */

typedef struct lexer {
    const char *s;
    size_t i, len;
    int depth;
} lexer;

enum { T_END, T_IDENT, T_STRING, T_BAD };

/* Next token (parentheses are skipped and only counted: or/and mean the same whatever the grouping). */
static int next_token(lexer *lx, sb_buf *text) {
    for (;;) {
        while (lx->i < lx->len && isspace((unsigned char)lx->s[lx->i]))
            lx->i++;
        if (lx->i >= lx->len)
            return T_END;
        char c = lx->s[lx->i];
        if (c == '(') {
            lx->depth++;
            lx->i++;
        } else if (c == ')') {
            if (--lx->depth < 0)
                return T_BAD;
            lx->i++;
        } else {
            break;
        }
    }
    sb_buf_reset(text);
    char c = lx->s[lx->i];
    if (c == '\'') {
        for (lx->i++;; lx->i++) {
            if (lx->i >= lx->len)
                return T_BAD;
            if (lx->s[lx->i] == '\'') {
                if (lx->i + 1 < lx->len && lx->s[lx->i + 1] == '\'') { /* '' is a quote */
                    sb_buf_appendc(text, '\'');
                    lx->i++;
                    continue;
                }
                lx->i++;
                return T_STRING;
            }
            sb_buf_appendc(text, lx->s[lx->i]);
        }
    }
    if (isalpha((unsigned char)c) || c == '_') {
        while (lx->i < lx->len && (isalnum((unsigned char)lx->s[lx->i]) || lx->s[lx->i] == '_'))
            sb_buf_appendc(text, lx->s[lx->i++]);
        return T_IDENT;
    }
    return T_BAD;
}

static int value_index(int dim, const char *v) {
    int n = dim == 0 ? SB_EP_COUNT : SB_CC_COUNT;
    for (int i = 0; i < n; i++) {
        const char *name = dim == 0 ? sb_metrics_endpoint_name((sb_metrics_endpoint)i)
                                    : sb_close_category_name((sb_close_category)i);
        if (strcasecmp(name, v) == 0)
            return i;
    }
    return -1;
}

int sb_metrics_parse_filter(const char *text, sb_dim_filter *endpoint, sb_dim_filter *category, char *err,
                            size_t errlen) {
    memset(endpoint, 0, sizeof *endpoint);
    memset(category, 0, sizeof *category);
    lexer lx = {text, 0, strlen(text), 0};
    sb_buf tok;
    sb_buf_init(&tok);
    int rc = SB_OK;
    for (;;) {
        int t = next_token(&lx, &tok); /* a term: at the start, or after and/or */
        if (t != T_IDENT) {
            rc = bad(err, errlen, "The $filter '%.200s' is not valid: expected a dimension name.", text);
            break;
        }
        int dim = strcasecmp(tok.data, "Endpoint") == 0                  ? 0
                  : strcasecmp(tok.data, "ConnectionCloseCategory") == 0 ? 1
                                                                         : -1;
        if (dim < 0) {
            rc = bad(err, errlen,
                     "The $filter dimension '%.100s' is not supported; dimensions: Endpoint, "
                     "ConnectionCloseCategory.",
                     tok.data);
            break;
        }
        if (next_token(&lx, &tok) != T_IDENT || strcasecmp(tok.data, "eq") != 0) {
            rc = bad(err, errlen, "The $filter '%.200s' is not valid: only 'eq' comparisons are supported.",
                     text);
            break;
        }
        if (next_token(&lx, &tok) != T_STRING) {
            rc = bad(err, errlen, "The $filter '%.200s' is not valid: expected a quoted value after 'eq'.",
                     text);
            break;
        }
        sb_dim_filter *f = dim == 0 ? endpoint : category;
        if (strcmp(tok.data, "*") == 0) {
            f->mode = SB_DIM_SPLIT_ALL;
        } else {
            int v = value_index(dim, tok.data);
            if (v < 0) {
                rc =
                    bad(err, errlen, "The $filter value '%.100s' is not a value of its dimension.", tok.data);
                break;
            }
            if (f->mode != SB_DIM_SPLIT_ALL)
                f->mode = SB_DIM_VALUES;
            f->values |= 1u << v;
        }
        t = next_token(&lx, &tok);
        if (t == T_END)
            break;
        if (t != T_IDENT || (strcasecmp(tok.data, "and") != 0 && strcasecmp(tok.data, "or") != 0)) {
            rc = bad(err, errlen,
                     lx.depth < 0 ? "The $filter '%.200s' is not valid: unbalanced parentheses."
                                  : "The $filter '%.200s' is not valid: terms are joined by 'and' or 'or'.",
                     text);
            break;
        }
    }
    if (rc == SB_OK && lx.depth != 0)
        rc = bad(err, errlen, "The $filter '%.200s' is not valid: unbalanced parentheses.", text);
    sb_buf_free(&tok);
    if (rc != SB_OK) {
        memset(endpoint, 0, sizeof *endpoint);
        memset(category, 0, sizeof *category);
    }
    return rc;
}

/* ---- evaluation ------------------------------------------------------------------------------- */

typedef struct series {
    signed char endpoint, category; /* index or SB_METRICS_ALL */
    unsigned char nonzero;
} series;

typedef struct metric_eval {
    sb_metric_id id;
    int nseries;
    series s[MAX_SERIES];
    sb_metrics_point *points; /* nseries * nb */
} metric_eval;

typedef struct eval {
    const sb_metrics_query *q;
    int64_t m0, m1, b0; /* minutes [m0, m1) count; buckets start at b0 (a minute) */
    size_t nb;
    unsigned char *present;
    metric_eval mets[SB_METRIC_COUNT];
} eval;

/* The values of one dimension a metric's series cover. */
static int dim_values(const sb_dim_filter *f, int has_dim, int nvalues, signed char out[]) {
    if (!has_dim || f->mode == SB_DIM_AGGREGATE) {
        out[0] = SB_METRICS_ALL;
        return 1;
    }
    int n = 0;
    for (int v = 0; v < nvalues; v++)
        if (f->mode == SB_DIM_SPLIT_ALL || (f->values & (1u << v)))
            out[n++] = (signed char)v;
    return n;
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Lay out the evaluation (series and buckets) without allocating: SB_E2BIG when it is too large. */
static int eval_plan(eval *e, const sb_metrics_query *q, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    e->q = q;
    e->m0 = floor_div(q->start_us, US_PER_MINUTE);
    e->m1 = floor_div(q->end_us + US_PER_MINUTE - 1, US_PER_MINUTE);
    if (q->interval_min > 0) {
        e->b0 = floor_div(e->m0, q->interval_min) * q->interval_min;
        e->nb = (size_t)((e->m1 - e->b0 + q->interval_min - 1) / q->interval_min);
    } else {
        e->b0 = e->m0;
        e->nb = 1;
    }
    size_t points = 0;
    for (int k = 0; k < q->nmetrics; k++) {
        metric_eval *me = &e->mets[k];
        me->id = (sb_metric_id)q->order[k];
        unsigned dims = sb_metric_defs[me->id].dims;
        signed char eps[SB_EP_COUNT], cats[SB_CC_COUNT];
        int ne = dim_values(&q->endpoint, dims & SB_METRIC_DIM_ENDPOINT, SB_EP_COUNT, eps);
        int nc = dim_values(&q->category, dims & SB_METRIC_DIM_CATEGORY, SB_CC_COUNT, cats);
        for (int i = 0; i < ne; i++)
            for (int j = 0; j < nc; j++)
                me->s[me->nseries++] = (series){eps[i], cats[j], 0};
        points += (size_t)me->nseries * e->nb;
    }
    if (e->nb > MAX_POINTS || points > MAX_POINTS) {
        snprintf(
            err, errlen,
            "The query asks for more than %d data points; use a larger interval, a shorter timespan or fewer "
            "split dimensions.",
            MAX_POINTS);
        return SB_E2BIG;
    }
    return SB_OK;
}

static int eval_init(eval *e, const sb_metrics_query *q, char *err, size_t errlen) {
    int rc = eval_plan(e, q, err, errlen);
    if (rc != SB_OK)
        return rc;
    e->present = sb_calloc(e->nb, 1);
    for (int k = 0; k < q->nmetrics; k++)
        e->mets[k].points = sb_calloc((size_t)e->mets[k].nseries * e->nb, sizeof(sb_metrics_point));
    return SB_OK;
}

static void eval_free(eval *e) {
    for (int k = 0; k < e->q->nmetrics; k++)
        sb_free(e->mets[k].points);
    sb_free(e->present);
}

static void eval_add(eval *e, const sb_metrics_minute *m) {
    if (m->minute < e->m0 || m->minute >= e->m1)
        return;
    size_t b = e->q->interval_min > 0 ? (size_t)((m->minute - e->b0) / e->q->interval_min) : 0;
    e->present[b] = 1;
    for (int k = 0; k < e->q->nmetrics; k++) {
        metric_eval *me = &e->mets[k];
        for (int i = 0; i < me->nseries; i++) {
            sb_metrics_point p;
            sb_metrics_minute_point(m, me->id, me->s[i].endpoint, me->s[i].category, &p);
            sb_metrics_point_add(&me->points[(size_t)i * e->nb + b], &p);
            if (p.count && (p.total != 0 || p.maximum != 0))
                me->s[i].nonzero = 1;
        }
    }
}

/* ---- rendering -------------------------------------------------------------------------------- */

static void put_json_string(sb_buf *b, const char *s) {
    json_t *j = json_string(s);
    char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    sb_buf_appends(b, text ? text : "\"\"");
    free(text);
    json_decref(j);
}

static void put_number(sb_buf *b, double v) {
    if (!isfinite(v))
        v = 0;
    if (v == (double)(int64_t)v && fabs(v) < 9007199254740992.0)
        sb_buf_appendf(b, "%lld.0", (long long)v);
    else
        sb_buf_appendf(b, "%.15g", v);
}

void sb_metrics_format_time(int64_t t_us, sb_buf *out) {
    time_t secs = (time_t)floor_div(t_us, 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    sb_buf_appendf(out, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                   tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void format_duration(int64_t minutes, sb_buf *out) {
    int64_t d = minutes / 1440, h = minutes % 1440 / 60, m = minutes % 60;
    sb_buf_appendc(out, 'P');
    if (d)
        sb_buf_appendf(out, "%lldD", (long long)d);
    if (h || m || !d) {
        sb_buf_appendc(out, 'T');
        if (h)
            sb_buf_appendf(out, "%lldH", (long long)h);
        if (m || !h)
            sb_buf_appendf(out, "%lldM", (long long)m);
    }
}

typedef struct ranked {
    int index;
    double key;
} ranked;

static int rank_asc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : x->index - y->index;
}

static int rank_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    return x->key > y->key ? -1 : x->key < y->key ? 1 : x->index - y->index;
}

static void put_metadata(sb_buf *b, const char *dim, const char *value, int first) {
    sb_buf_appendf(b, "%s{\"name\":{\"value\":\"%s\",\"localizedValue\":\"%s\"},\"value\":\"%s\"}",
                   first ? "" : ",", dim, dim, value);
}

static void render_metric(const eval *e, const metric_eval *me, const char *rid, sb_buf *b) {
    const sb_metrics_query *q = e->q;
    const sb_metric_def *d = &sb_metric_defs[me->id];
    int split_ep = (d->dims & SB_METRIC_DIM_ENDPOINT) && q->endpoint.mode != SB_DIM_AGGREGATE;
    int split_cat = (d->dims & SB_METRIC_DIM_CATEGORY) && q->category.mode != SB_DIM_AGGREGATE;
    int wildcard = (split_ep && q->endpoint.mode == SB_DIM_SPLIT_ALL) ||
                   (split_cat && q->category.mode == SB_DIM_SPLIT_ALL);
    ranked order[MAX_SERIES];
    int n = 0;
    for (int i = 0; i < me->nseries; i++) {
        if (wildcard && !me->s[i].nonzero)
            continue; /* '*' lists the values that have data */
        sb_metrics_point all = {0};
        if (q->orderby_agg >= 0)
            for (size_t k = 0; k < e->nb; k++)
                sb_metrics_point_add(&all, &me->points[(size_t)i * e->nb + k]);
        order[n++] = (ranked){i, q->orderby_agg >= 0 ? sb_metrics_point_value(&all, q->orderby_agg) : 0};
    }
    if (q->orderby_agg >= 0)
        qsort(order, (size_t)n, sizeof order[0], q->orderby_desc ? rank_desc : rank_asc);
    if ((split_ep || split_cat) && n > q->top)
        n = q->top;
    unsigned aggs = q->aggregations ? q->aggregations : 1u << d->primary;

    sb_buf_appends(b, "{\"id\":");
    char *id = sb_asprintf("%s/providers/Microsoft.Insights/metrics/%s", rid, d->name);
    put_json_string(b, id);
    sb_free(id);
    sb_buf_appendf(
        b,
        ",\"type\":\"Microsoft.Insights/metrics\",\"name\":{\"value\":\"%s\",\"localizedValue\":\"%s\"},"
        "\"displayDescription\":\"%s\",\"unit\":\"%s\",\"errorCode\":\"Success\",\"timeseries\":[",
        d->name, d->display_name, d->description, d->unit);
    for (int r = 0; r < n; r++) {
        const series *s = &me->s[order[r].index];
        sb_buf_appends(b, r ? ",{" : "{");
        if (split_ep || split_cat) {
            sb_buf_appends(b, "\"metadatavalues\":[");
            if (split_ep)
                put_metadata(b, "endpoint", sb_metrics_endpoint_name((sb_metrics_endpoint)s->endpoint), 1);
            if (split_cat)
                put_metadata(b, "connectionclosecategory",
                             sb_close_category_name((sb_close_category)s->category), !split_ep);
            sb_buf_appends(b, "],");
        }
        sb_buf_appends(b, "\"data\":[");
        for (size_t k = 0; !q->metadata_only && k < e->nb; k++) {
            const sb_metrics_point *p = &me->points[(size_t)order[r].index * e->nb + k];
            sb_buf_appends(b, k ? ",{\"timeStamp\":\"" : "{\"timeStamp\":\"");
            sb_metrics_format_time(
                q->interval_min > 0 ? (e->b0 + (int64_t)k * q->interval_min) * US_PER_MINUTE : q->start_us,
                b);
            sb_buf_appendc(b, '"');
            if (e->present[k] && p->count)
                for (int a = 0; a < SB_AGG_N; a++)
                    if (aggs & (1u << a)) {
                        sb_buf_appendf(b, ",\"%s\":", sb_metric_aggregation_field((sb_metric_aggregation)a));
                        put_number(b, sb_metrics_point_value(p, (sb_metric_aggregation)a));
                    }
            sb_buf_appendc(b, '}');
        }
        sb_buf_appends(b, "]}");
    }
    sb_buf_appends(b, "]}");
}

static void render_all(const eval *e, const char *rid, sb_buf *out) {
    sb_buf_appendc(out, '[');
    for (int k = 0; k < e->q->nmetrics; k++) {
        if (k)
            sb_buf_appendc(out, ',');
        render_metric(e, &e->mets[k], rid, out);
    }
    sb_buf_appendc(out, ']');
}

int sb_metrics_render(const sb_metrics_query *q, const sb_metrics_minute *minutes, size_t nminutes,
                      const char *resource_id, sb_buf *out, char *err, size_t errlen) {
    eval e;
    int rc = eval_init(&e, q, err, errlen);
    if (rc != SB_OK)
        return rc;
    for (size_t i = 0; i < nminutes; i++)
        eval_add(&e, &minutes[i]);
    render_all(&e, resource_id, out);
    eval_free(&e);
    return SB_OK;
}

/* ---- routing ---------------------------------------------------------------------------------- */

typedef enum route_kind { R_NONE = 0, R_METRICS, R_DEFINITIONS, R_NAMESPACES, R_BATCH } route_kind;

/* Case-insensitive substring search in a slice. */
static int slice_has(sb_slice s, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= s.len; i++)
        if (strncasecmp(s.base + i, needle, n) == 0)
            return 1;
    return 0;
}

int sb_metrics_api_match(sb_slice path) {
    return slice_has(path, "/providers/microsoft.insights/metric") || slice_has(path, "/metrics:getbatch") ||
           slice_has(path, "/metrics%3agetbatch");
}


static int seg_is(const sb_buf *s, const char *lit) {
    return s->len == strlen(lit) && strncasecmp(s->data, lit, s->len) == 0;
}

/* Is id (any slashes) this service's resource id (case-insensitive)? */
static int is_our_resource(const sb_server *srv, const char *id) {
    sb_buf a[MAX_SEGMENTS], b[MAX_SEGMENTS];
    size_t na = 0, nb = 0;
    for (int i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_init(&a[i]), sb_buf_init(&b[i]);
    int same = sb_url_path_split(sb_slice_make(id, strlen(id)), a, MAX_SEGMENTS, &na) == SB_OK &&
               sb_url_path_split(sb_slice_make(srv->resource_id, strlen(srv->resource_id)), b, MAX_SEGMENTS,
                                 &nb) == SB_OK &&
               na == nb;
    for (size_t i = 0; same && i < na; i++)
        same = a[i].len == b[i].len && strncasecmp(a[i].data, b[i].data, a[i].len) == 0;
    for (int i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_free(&a[i]), sb_buf_free(&b[i]);
    return same;
}

static route_kind classify(const sb_server *srv, sb_slice path, int *bad_path) {
    sb_buf seg[MAX_SEGMENTS], rid[MAX_SEGMENTS];
    size_t n = 0, nrid = 0;
    for (int i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_init(&seg[i]), sb_buf_init(&rid[i]);
    route_kind k = R_NONE;
    int rc = sb_url_path_split(path, seg, MAX_SEGMENTS, &n);
    *bad_path = rc == SB_EINVAL;
    if (rc == SB_OK && n == 3 && seg_is(&seg[0], "subscriptions") && seg_is(&seg[2], "metrics:getBatch")) {
        k = R_BATCH;
    } else if (rc == SB_OK &&
               sb_url_path_split(sb_slice_make(srv->resource_id, strlen(srv->resource_id)), rid, MAX_SEGMENTS,
                                 &nrid) == SB_OK &&
               n == nrid + 3) {
        int match = 1;
        for (size_t i = 0; match && i < nrid; i++)
            match = seg[i].len == rid[i].len && strncasecmp(seg[i].data, rid[i].data, rid[i].len) == 0;
        if (match && seg_is(&seg[nrid], "providers") && seg_is(&seg[nrid + 1], "Microsoft.Insights")) {
            const sb_buf *last = &seg[nrid + 2];
            k = seg_is(last, "metrics")             ? R_METRICS
                : seg_is(last, "metricDefinitions") ? R_DEFINITIONS
                : seg_is(last, "metricNamespaces")  ? R_NAMESPACES
                                                    : R_NONE;
        }
    }
    for (int i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_free(&seg[i]), sb_buf_free(&rid[i]);
    return k;
}

/* ---- answers ---------------------------------------------------------------------------------- */

static void respond_error(sb_conn *c, int status, const char *code, const char *message) {
    json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    char *text = json_dumps(j, JSON_COMPACT);
    sb_http_respond(c, status, JSON_TYPE, text, text ? strlen(text) : 0,
                    status == 401   ? "WWW-Authenticate: Bearer\r\n"
                    : status == 405 ? "Allow: GET, HEAD, POST\r\n"
                                    : NULL);
    free(text);
    json_decref(j);
}

static void respond_json(sb_conn *c, json_t *j) {
    char *text = json_dumps(j, JSON_COMPACT);
    sb_http_respond(c, 200, JSON_TYPE, text, text ? strlen(text) : 0, NULL);
    free(text);
    json_decref(j);
}

static int authorize(sb_conn *c, const sb_http_request *req) {
    sb_auth_result res;
    int rc = sb_auth_arm_request(c->srv, req, &res);
    if (rc != SB_OK)
        respond_error(c, res.status ? res.status : 401, "AuthenticationFailed", sb_auth_result_reason(&res));
    sb_auth_result_free(&res);
    return rc == SB_OK;
}

static int check_api_version(sb_conn *c, const sb_http_request *req) {
    sb_buf v;
    sb_buf_init(&v);
    int n = sb_http_query_get(req->query, "api-version", 1, &v);
    int found = 0;
    for (size_t i = 0; n > 0 && i < sizeof api_versions / sizeof api_versions[0]; i++)
        found |= strcmp(v.data, api_versions[i]) == 0;
    if (n <= 0 || !v.len) {
        respond_error(c, 400, "MissingApiVersionParameter",
                      "The api-version query parameter (?api-version=) is required for all requests.");
    } else if (!found) {
        sb_buf msg;
        sb_buf_init(&msg);
        sb_buf_appends(&msg, "The api-version is invalid. The supported versions are ");
        for (size_t i = 0; i < sizeof api_versions / sizeof api_versions[0]; i++)
            sb_buf_appendf(&msg, "%s'%s'", i ? ", " : "", api_versions[i]);
        sb_buf_appendc(&msg, '.');
        respond_error(c, 400, "InvalidApiVersionParameter", msg.data);
        sb_buf_free(&msg);
    }
    sb_buf_free(&v);
    return found;
}

static json_t *definitions_json(const sb_server *srv) {
    json_t *value = json_array();
    for (int i = 0; i < SB_METRIC_COUNT; i++) {
        const sb_metric_def *d = &sb_metric_defs[i];
        json_t *dims = json_array();
        if (d->dims & SB_METRIC_DIM_ENDPOINT)
            json_array_append_new(dims,
                                  json_pack("{s:s, s:s}", "value", "Endpoint", "localizedValue", "Endpoint"));
        if (d->dims & SB_METRIC_DIM_CATEGORY)
            json_array_append_new(dims, json_pack("{s:s, s:s}", "value", "ConnectionCloseCategory",
                                                  "localizedValue", "ConnectionCloseCategory"));
        json_t *supported = json_array();
        static const sb_metric_aggregation order[] = {SB_AGG_AVERAGE, SB_AGG_MINIMUM, SB_AGG_MAXIMUM,
                                                      SB_AGG_TOTAL, SB_AGG_COUNT};
        json_array_append_new(supported, json_string("None"));
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
            json_array_append_new(supported, json_string(sb_metric_aggregation_name(order[k])));
        char *id =
            sb_asprintf("%s/providers/microsoft.insights/metricdefinitions/%s", srv->resource_id, d->name);
        json_t *def = json_pack(
            "{s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:b, s:s, s:s, s:o, s:[{s:s, s:s}, {s:s, s:s}, "
            "{s:s, s:s}]}",
            "id", id, "resourceId", srv->resource_id, "namespace", NAMESPACE, "name", "value", d->name,
            "localizedValue", d->display_name, "displayDescription", d->description, "category", d->category,
            "metricClass", strcmp(d->category, "Traffic") == 0 ? "Transactions" : d->category,
            "isDimensionRequired", 0, "unit", d->unit, "primaryAggregationType",
            sb_metric_aggregation_name(d->primary), "supportedAggregationTypes", supported,
            "metricAvailabilities", "timeGrain", "PT1M", "retention", "P93D", "timeGrain", "PT1H",
            "retention", "P93D", "timeGrain", "P1D", "retention", "P93D");
        json_object_set_new(def, "dimensions", dims);
        sb_free(id);
        json_array_append_new(value, def);
    }
    return json_pack("{s:o}", "value", value);
}

static json_t *namespaces_json(const sb_server *srv) {
    char *id =
        sb_asprintf("%s/providers/microsoft.insights/metricNamespaces/Microsoft.SignalRService-SignalR",
                    srv->resource_id);
    json_t *j = json_pack("{s:[{s:s, s:s, s:s, s:s, s:{s:s}}]}", "value", "id", id, "name",
                          "Microsoft.SignalRService-SignalR", "type", "Microsoft.Insights/metricNamespaces",
                          "classification", "Platform", "properties", "metricNamespaceName", NAMESPACE);
    sb_free(id);
    return j;
}

/* ---- the query job ---------------------------------------------------------------------------- */

#define RECENT_MAX 32

typedef struct query_job {
    uv_work_t req;
    sb_conn *conn;
    route_kind kind;
    sb_metrics_query q;
    char *dir, *resource_id, *location;
    size_t nresources; /* getBatch: one entry per requested id */
    sb_metrics_minute recent[RECENT_MAX];
    size_t nrecent;
    sb_buf body;
    int status;
    char err[512];
} query_job;

typedef struct scan_ctx {
    eval *e;
    const query_job *j;
} scan_ctx;

static int in_recent(const query_job *j, int64_t minute) {
    for (size_t i = 0; i < j->nrecent; i++)
        if (j->recent[i].minute == minute)
            return 1;
    return 0;
}

static int scan_minute(const sb_metrics_minute *m, void *arg) {
    scan_ctx *x = arg;
    if (!in_recent(x->j, m->minute)) /* memory holds the newer copy */
        eval_add(x->e, m);
    return 0;
}

static void run_query(uv_work_t *req) { /* threadpool */
    query_job *j = req->data;
    eval e;
    if (eval_init(&e, &j->q, j->err, sizeof j->err) != SB_OK) {
        j->status = 400;
        return;
    }
    scan_ctx x = {&e, j};
    int rc = sb_metrics_store_scan(j->dir, e.m0, e.m1, scan_minute, &x);
    if (rc != SB_OK) {
        snprintf(j->err, sizeof j->err, "The metrics store could not be read: %s.", sb_strerror(rc));
        j->status = 500;
        eval_free(&e);
        return;
    }
    for (size_t i = 0; i < j->nrecent; i++)
        eval_add(&e, &j->recent[i]);
    sb_buf value;
    sb_buf_init(&value);
    render_all(&e, j->resource_id, &value);
    eval_free(&e);

    sb_buf span, interval;
    sb_buf_init(&span);
    sb_buf_init(&interval);
    sb_metrics_format_time(j->q.start_us, &span);
    size_t mid = span.len;
    sb_buf_appendc(&span, '/');
    sb_metrics_format_time(j->q.end_us, &span);
    format_duration(j->q.interval_min ? j->q.interval_min : e.m1 - e.m0, &interval);
    sb_buf *b = &j->body;
    if (j->kind == R_BATCH) {
        span.data[mid] = '\0';
        sb_buf_appends(b, "{\"values\":[");
        for (size_t i = 0; i < j->nresources; i++) {
            sb_buf_appendf(
                b,
                "%s{\"starttime\":\"%s\",\"endtime\":\"%s\",\"interval\":\"%s\",\"namespace\":\"" NAMESPACE
                "\",\"resourceregion\":",
                i ? "," : "", span.data, span.data + mid + 1, interval.data);
            put_json_string(b, j->location);
            sb_buf_appends(b, ",\"resourceid\":");
            put_json_string(b, j->resource_id);
            sb_buf_appends(b, ",\"value\":");
            sb_buf_append(b, value.data, value.len);
            sb_buf_appendc(b, '}');
        }
        sb_buf_appends(b, "]}");
    } else {
        sb_buf_appendf(b,
                       "{\"cost\":0,\"timespan\":\"%s\",\"interval\":\"%s\",\"namespace\":\"" NAMESPACE_LOWER
                       "\",\"resourceregion\":",
                       span.data, interval.data);
        put_json_string(b, j->location);
        sb_buf_appends(b, ",\"value\":");
        sb_buf_append(b, value.data, value.len);
        sb_buf_appendc(b, '}');
    }
    sb_buf_free(&value);
    sb_buf_free(&span);
    sb_buf_free(&interval);
    j->status = 200;
}

static void query_done(uv_work_t *req, int status) {
    query_job *j = req->data;
    sb_conn *c = j->conn;
    if (!c->closing) {
        if (status != 0)
            respond_error(c, 500, "InternalServerError", "The query was canceled.");
        else if (j->status == 200)
            sb_http_respond(c, 200, JSON_TYPE, j->body.data, j->body.len, NULL);
        else
            respond_error(c, j->status, j->status == 400 ? "BadRequest" : "InternalServerError", j->err);
    }
    sb_conn_release(c);
    sb_buf_free(&j->body);
    sb_free(j->dir);
    sb_free(j->resource_id);
    sb_free(j->location);
    sb_free(j);
}

/* Query parameter name (ARM $filter vs getBatch filter) -> value; 0 when absent. */
static int param(const sb_http_request *req, const char *name, sb_buf *v) {
    return sb_http_query_get(req->query, name, 1, v) > 0;
}

/* Fill q from the request; answers 400 itself and returns 0 on a bad parameter. */
static int parse_query(sb_conn *c, const sb_http_request *req, route_kind kind, sb_metrics_query *q) {
    char err[512];
    sb_buf v;
    sb_buf_init(&v);
    int rc = SB_OK;
    memset(q, 0, sizeof *q);
    q->top = DEFAULT_TOP;
    q->orderby_agg = -1;
    q->interval_min = 1;
    int64_t now = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    if (param(req, "metricnamespace", &v) && strcasecmp(v.data, NAMESPACE) != 0) {
        rc = bad(err, sizeof err,
                 "The metric namespace '%.200s' is not valid for this resource; use " NAMESPACE ".", v.data);
    } else if (kind == R_BATCH && !v.len) {
        rc = bad0(err, sizeof err, "The metricnamespace parameter is required.");
    }
    if (rc == SB_OK) {
        if (param(req, "metricnames", &v))
            rc = sb_metrics_parse_names(v.data, q, err, sizeof err);
        else if (kind == R_BATCH)
            rc = bad0(err, sizeof err, "The metricnames parameter is required.");
        else /* ARM: no names means the first metric, as Azure answers */
            rc = sb_metrics_parse_names(sb_metric_defs[0].name, q, err, sizeof err);
    }
    if (rc == SB_OK && param(req, "aggregation", &v))
        rc = sb_metrics_parse_aggregations(v.data, &q->aggregations, err, sizeof err);
    if (rc == SB_OK && param(req, "interval", &v))
        rc = sb_metrics_parse_interval(v.data, &q->interval_min, err, sizeof err);
    if (rc == SB_OK) {
        q->start_us = now - 3600 * INT64_C(1000000); /* Azure's default: the last hour */
        q->end_us = now;
        if (kind == R_BATCH) {
            int has_start = param(req, "starttime", &v);
            if (has_start && sb_metrics_parse_datetime(v.data, v.len, &q->start_us) != SB_OK)
                rc = bad(err, sizeof err, "The starttime '%.200s' is not an ISO 8601 date-time.", v.data);
            if (rc == SB_OK && param(req, "endtime", &v)) {
                if (sb_metrics_parse_datetime(v.data, v.len, &q->end_us) != SB_OK)
                    rc = bad(err, sizeof err, "The endtime '%.200s' is not an ISO 8601 date-time.", v.data);
                else if (!has_start)
                    q->start_us = q->end_us - 3600 * INT64_C(1000000);
            } else if (rc == SB_OK && has_start) {
                q->end_us = q->start_us + 3600 * INT64_C(1000000);
            }
            if (rc == SB_OK && q->end_us <= q->start_us)
                rc = bad0(err, sizeof err, "The endtime must be after the starttime.");
        } else if (param(req, "timespan", &v)) {
            rc = sb_metrics_parse_timespan(v.data, now, &q->start_us, &q->end_us, err, sizeof err);
        }
    }
    if (rc == SB_OK && param(req, kind == R_BATCH ? "filter" : "$filter", &v) && v.len)
        rc = sb_metrics_parse_filter(v.data, &q->endpoint, &q->category, err, sizeof err);
    if (rc == SB_OK && param(req, "top", &v)) {
        char *end;
        long t = strtol(v.data, &end, 10);
        if (!v.len || *end || t < 1 || t > 100000)
            rc = bad(err, sizeof err, "The top '%.50s' is not a positive number.", v.data);
        else
            q->top = (int)t;
    }
    if (rc == SB_OK && param(req, "orderby", &v) && v.len)
        rc = sb_metrics_parse_orderby(v.data, &q->orderby_agg, &q->orderby_desc, err, sizeof err);
    if (rc == SB_OK && param(req, "resultType", &v))
        q->metadata_only = strcasecmp(v.data, "Metadata") == 0;
    sb_buf_free(&v);
    if (rc != SB_OK)
        respond_error(c, 400, "BadRequest", err);
    return rc == SB_OK;
}

/* getBatch body {"resourceids":[...]}: every id must be this resource.  Answers 400 itself. */
static int parse_batch_body(sb_conn *c, const sb_http_request *req, size_t *n) {
    json_error_t jerr;
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
    json_t *ids = json_object_get(body, "resourceids");
    const char *msg = NULL;
    char text[512];
    if (!json_is_array(ids) || !json_array_size(ids)) {
        msg = "The request body must be {\"resourceids\":[...]} with at least one resource id.";
    } else {
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id) {
            if (!json_is_string(id) || !is_our_resource(c->srv, json_string_value(id))) {
                bad(text, sizeof text, "The resource '%.300s' is not served by this service.",
                    json_is_string(id) ? json_string_value(id) : "(not a string)");
                msg = text;
                break;
            }
        }
        *n = json_array_size(ids);
    }
    json_decref(body);
    if (msg)
        respond_error(c, 400, "BadRequest", msg);
    return msg == NULL;
}

void sb_metrics_api_handle(sb_conn *c, sb_http_request *req) {
    sb_server *srv = c->srv;
    int bad_path = 0;
    route_kind kind = classify(srv, req->path, &bad_path);
    if (!authorize(c, req))
        return;
    if (kind == R_NONE) {
        if (bad_path)
            respond_error(c, 400, "InvalidRequestUri",
                          "The request path is not valid: bad percent-encoding or text.");
        else
            respond_error(c, 404, "ResourceNotFound",
                          "The requested metrics resource was not found for this service.");
        return;
    }
    int get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    if ((kind == R_BATCH && req->method != HTTP_POST) || (kind != R_BATCH && !get)) {
        respond_error(c, 405, "MethodNotAllowed",
                      kind == R_BATCH ? "metrics:getBatch takes POST." : "This metrics resource takes GET.");
        return;
    }
    if (!check_api_version(c, req))
        return;
    if (req->body.len > (size_t)srv->cfg.max_rest_body_bytes) {
        respond_error(c, 413, "RequestEntityTooLarge", "The request content is too large.");
        return;
    }
    if (kind == R_DEFINITIONS) {
        respond_json(c, definitions_json(srv));
        return;
    }
    if (kind == R_NAMESPACES) {
        respond_json(c, namespaces_json(srv));
        return;
    }
    query_job *j = sb_calloc(1, sizeof *j);
    j->kind = kind;
    j->nresources = 1;
    if (!parse_query(c, req, kind, &j->q) || (kind == R_BATCH && !parse_batch_body(c, req, &j->nresources))) {
        sb_free(j);
        return;
    }
    /* refuse an oversized evaluation here, before anything is queued */
    eval plan;
    if (eval_plan(&plan, &j->q, j->err, sizeof j->err) != SB_OK) {
        respond_error(c, 400, "BadRequest", j->err);
        sb_free(j);
        return;
    }
    j->nrecent =
        sb__metrics_recent(srv, floor_div(j->q.start_us, US_PER_MINUTE),
                           floor_div(j->q.end_us + US_PER_MINUTE - 1, US_PER_MINUTE), j->recent, RECENT_MAX);
    j->dir = sb_asprintf("%s/" SB_METRICS_DIR, srv->cfg.data_dir);
    j->resource_id = sb_strdup(srv->resource_id);
    j->location = sb_strdup(srv->cfg.location ? srv->cfg.location : "");
    sb_buf_init(&j->body);
    j->conn = c;
    j->req.data = j;
    sb_conn_hold(c);
    if (uv_queue_work(srv->loop, &j->req, run_query, query_done) != 0) {
        sb_conn_release(c);
        respond_error(c, 503, "ServiceUnavailable", "The query could not be started.");
        sb_free(j->dir);
        sb_free(j->resource_id);
        sb_free(j->location);
        sb_free(j);
    }
}
