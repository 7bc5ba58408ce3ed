/*
 * fuzz_metrics_query.c - the metrics API's parsers of untrusted query
 * parameters ($filter, timespan, interval, aggregation, metricnames,
 * orderby, ISO 8601 date-times and durations) and the evaluation they feed.
 * The first byte picks the parser; with the high bit set the input is split
 * at the first '\n' into a $filter and a timespan, evaluated over a few
 * synthetic minutes, and the answer must be valid JSON.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_api.h"
#include "metrics/store.h"
#include "util/alloc.h"

#define T0 INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */

static void evaluate(const char *text, size_t n) {
    const char *nl = memchr(text, '\n', n);
    size_t flen = nl ? (size_t)(nl - text) : n;
    char *filter = sb_strndup(text, flen);
    char *span = sb_strndup(nl ? nl + 1 : "", nl ? n - flen - 1 : 0);
    char err[512];
    sb_metrics_query q;
    memset(&q, 0, sizeof q);
    q.top = 1 + (int)(n % 12);
    q.orderby_agg = (int)(n % 6) - 1;
    q.orderby_desc = (int)(n & 1);
    q.interval_min = (int64_t)(n % 3 == 0 ? 0 : n % 3 == 1 ? 1 : 5);
    for (int i = 0; i < SB_METRIC_COUNT; i++)
        q.order[q.nmetrics++] = i;
    if (sb_metrics_parse_filter(filter, &q.endpoint, &q.category, err, sizeof err) == 0 &&
        sb_metrics_parse_timespan(span, T0, &q.start_us, &q.end_us, err, sizeof err) == 0) {
        if (q.end_us - q.start_us > INT64_C(7200000000)) /* keep one run cheap: at most two hours */
            q.end_us = q.start_us + INT64_C(7200000000);
        sb_metrics_minute m[3];
        int64_t first = q.start_us / 60000000;
        for (int i = 0; i < 3; i++) {
            sb_metrics_minute_init(&m[i], first + i * 7, (uint64_t[SB_EP_COUNT]){(uint64_t)i, 1, 0},
                                   i * 12.5);
            m[i].closed[i][(size_t)(n + (size_t)i) % SB_CC_COUNT] = (uint64_t)n;
            m[i].messages = (uint64_t)i;
            m[i].operations = 3;
            m[i].user_errors = (uint64_t)i;
        }
        sb_buf out;
        sb_buf_init(&out);
        if (sb_metrics_render(&q, m, 3, "/subscriptions/s/x", &out, err, sizeof err) == 0) {
            json_t *j = json_loadb(out.data, out.len, 0, NULL);
            if (!json_is_array(j))
                __builtin_trap();
            json_decref(j);
        } else if (out.len) {
            __builtin_trap(); /* a refused evaluation writes nothing */
        }
        sb_buf_free(&out);
    }
    sb_free(filter);
    sb_free(span);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size || size > 4096)
        return 0;
    uint8_t sel = data[0];
    char *text = sb_strndup((const char *)data + 1, size - 1);
    size_t n = strlen(text); /* query values never hold NUL */
    char err[512];
    if (sel & 0x80) {
        evaluate(text, n);
    } else {
        sb_metrics_query q;
        memset(&q, 0, sizeof q);
        sb_dim_filter ep, cat;
        int64_t a, b;
        unsigned aggs;
        int agg, desc;
        switch (sel % 8) {
        case 0:
            if (sb_metrics_parse_filter(text, &ep, &cat, err, sizeof err) == 0 &&
                (ep.mode > SB_DIM_VALUES || cat.mode > SB_DIM_VALUES || ep.values >> SB_EP_COUNT ||
                 cat.values >> SB_CC_COUNT))
                __builtin_trap();
            break;
        case 1:
            if (sb_metrics_parse_timespan(text, T0, &a, &b, err, sizeof err) == 0 && b <= a)
                __builtin_trap();
            break;
        case 2:
            sb_metrics_parse_interval(text, &a, err, sizeof err);
            break;
        case 3:
            sb_metrics_parse_aggregations(text, &aggs, err, sizeof err);
            break;
        case 4:
            if (sb_metrics_parse_names(text, &q, err, sizeof err) == 0 &&
                (q.nmetrics < 1 || q.nmetrics > SB_METRIC_COUNT))
                __builtin_trap();
            break;
        case 5:
            sb_metrics_parse_orderby(text, &agg, &desc, err, sizeof err);
            break;
        case 6:
            sb_metrics_parse_datetime(text, n, &a);
            break;
        default:
            if (sb_metrics_parse_duration(text, n, &a) == 0 && a <= 0)
                __builtin_trap();
            break;
        }
    }
    sb_free(text);
    return 0;
}
