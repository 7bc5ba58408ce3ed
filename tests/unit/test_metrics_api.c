/*
 * test_metrics_api.c - the metrics API's pure parts: the parameter parsers
 * (ISO 8601 date-times and durations, timespans, intervals, aggregations,
 * metric names, $filter, orderby) with their errors, every prefix of valid
 * inputs fed one byte at a time (each must parse or fail, never misbehave),
 * the route matcher, and the evaluation rendered as Azure's JSON: series by
 * dimension (aggregated away, '*', listed values), buckets on the interval's
 * grid, empty buckets, FULL, aggregations, top, orderby, metadata only, and
 * the point limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "metrics/metrics_api.h"
#include "metrics/store.h"
#include "util/alloc.h"
#include "util/error.h"

#define T0 INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z in microseconds */
#define M0 (T0 / 60000000)           /* ... in minutes */
#define RID "/subscriptions/s/resourceGroups/rg/providers/Microsoft.SignalRService/SignalR/x"

static int64_t dt(const char *s) {
    int64_t v = 0;
    assert_int_equal(sb_metrics_parse_datetime(s, strlen(s), &v), SB_OK);
    return v;
}

static int dt_fails(const char *s) {
    int64_t v;
    return sb_metrics_parse_datetime(s, strlen(s), &v) != SB_OK;
}

static void test_datetime(void **state) {
    assert_true(dt("2026-01-01T00:00:00Z") == T0);
    assert_true(dt("2026-01-01T00:00:00.000Z") == T0);
    assert_true(dt("2026-01-01t00:00z") == T0);
    assert_true(dt("2026-01-01") == T0);
    assert_true(dt("2026-01-01T00:00:00") == T0); /* no zone: UTC */
    assert_true(dt("2026-01-01T01:00:00+01:00") == T0);
    assert_true(dt("2026-01-01T01:00:00 01:00") == T0); /* '+' decoded as a space by the query parser */
    assert_true(dt("2025-12-31T23:30:00-00:30") == T0);
    assert_true(dt("2026-01-01T00:00:00.5Z") == T0 + 500000);
    assert_true(dt("2026-01-01T00:00:00.1234567Z") == T0 + 123456);
    assert_true(dt("2024-02-29T00:00:00Z") == INT64_C(1709164800000000));
    assert_true(dt("1970-01-01T00:00:00Z") == 0);
    const char *bad[] = {"",
                         "2026",
                         "2026-01",
                         "2026-1-01",
                         "2026-01-01T",
                         "2026-01-01T00",
                         "2026-01-01T00:00:",
                         "2026-01-01T24:00:00Z",
                         "2026-13-01",
                         "2026-00-01",
                         "2026-01-32",
                         "2025-02-29",
                         "2026-04-31",
                         "2026-01-01T00:60",
                         "2026-01-01T00:00:00.Z",
                         "2026-01-01T00:00:00ZZ",
                         "2026-01-01T00:00:00+1:00",
                         "2026-01-01T00:00:00+24:00",
                         "1969-12-31T00:00:00Z",
                         "x026-01-01",
                         "2026-01-01 00:00:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_true(dt_fails(bad[i]));
}

static int64_t dur(const char *s) {
    int64_t v = 0;
    assert_int_equal(sb_metrics_parse_duration(s, strlen(s), &v), SB_OK);
    return v;
}

static void test_duration(void **state) {
    assert_true(dur("PT1M") == 60000000);
    assert_true(dur("PT1H") == 3600000000LL);
    assert_true(dur("P1D") == 86400000000LL);
    assert_true(dur("P1W") == 604800000000LL);
    assert_true(dur("P1DT2H3M4S") == (86400LL + 7200 + 180 + 4) * 1000000);
    assert_true(dur("PT0.5S") == 500000);
    assert_true(dur("pt30m") == 1800000000LL);
    const char *bad[] = {"",
                         "P",
                         "PT",
                         "PT0S",
                         "P1Y",
                         "P1M",
                         "PT1X",
                         "1H",
                         "PTM",
                         "P1.5D",
                         "PT1H1",
                         "P-1D",
                         "PT9999999999999H"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        assert_int_equal(sb_metrics_parse_duration(bad[i], strlen(bad[i]), &v), SB_EINVAL);
    }
}

static void test_timespan_and_interval(void **state) {
    char err[256];
    int64_t a, b, now = T0 + 7200 * INT64_C(1000000);
    assert_int_equal(
        sb_metrics_parse_timespan("2026-01-01T00:00:00Z/2026-01-01T01:00:00Z", now, &a, &b, err, sizeof err),
        SB_OK);
    assert_true(a == T0 && b == T0 + 3600 * INT64_C(1000000));
    assert_int_equal(sb_metrics_parse_timespan("2026-01-01T00:00:00Z/PT30M", now, &a, &b, err, sizeof err),
                     SB_OK);
    assert_true(a == T0 && b == T0 + 1800 * INT64_C(1000000));
    assert_int_equal(sb_metrics_parse_timespan("PT30M/2026-01-01T00:30:00Z", now, &a, &b, err, sizeof err),
                     SB_OK);
    assert_true(a == T0 && b == T0 + 1800 * INT64_C(1000000));
    assert_int_equal(sb_metrics_parse_timespan("PT2H", now, &a, &b, err, sizeof err), SB_OK);
    assert_true(a == T0 && b == now);
    assert_int_equal(
        sb_metrics_parse_timespan("2026-01-01T01:00:00Z/2026-01-01T00:00:00Z", now, &a, &b, err, sizeof err),
        SB_EINVAL);
    assert_non_null(strstr(err, "end must be after"));
    assert_int_equal(sb_metrics_parse_timespan("yesterday", now, &a, &b, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "'yesterday'"));
    assert_int_equal(sb_metrics_parse_timespan("PT1H/PT1H", now, &a, &b, err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_metrics_parse_timespan("/", now, &a, &b, err, sizeof err), SB_EINVAL);

    int64_t m;
    const char *ok[] = {"PT1M", "pt5m", "PT15M", "PT30M", "PT1H", "PT6H", "PT12H", "P1D", "FULL", "full"};
    const int64_t want[] = {1, 5, 15, 30, 60, 360, 720, 1440, 0, 0};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(sb_metrics_parse_interval(ok[i], &m, err, sizeof err), SB_OK);
        assert_true(m == want[i]);
    }
    assert_int_equal(sb_metrics_parse_interval("PT2M", &m, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "Invalid time grain 'PT2M'"));
}

static void test_names_aggregations_orderby(void **state) {
    char err[512];
    sb_metrics_query q;
    memset(&q, 0, sizeof q);
    assert_int_equal(
        sb_metrics_parse_names("MessageCount, connectioncount,MessageCount", &q, err, sizeof err), SB_OK);
    assert_int_equal(q.nmetrics, 2); /* duplicates once, in the order asked */
    assert_int_equal(q.order[0], SB_METRIC_MESSAGE_COUNT);
    assert_int_equal(q.order[1], SB_METRIC_CONNECTION_COUNT);
    memset(&q, 0, sizeof q);
    assert_int_equal(sb_metrics_parse_names("Bogus", &q, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err,
                           "Failed to find metric configuration for provider: Microsoft.SignalRService, "
                           "resource Type: SignalR, metric: Bogus, Valid metrics: ConnectionCloseCount,"));
    assert_int_equal(sb_metrics_parse_names(" , ,", &q, err, sizeof err), SB_EINVAL);

    unsigned aggs;
    assert_int_equal(sb_metrics_parse_aggregations("Maximum,total, AVERAGE,none", &aggs, err, sizeof err),
                     SB_OK);
    assert_int_equal(aggs, (1u << SB_AGG_MAXIMUM) | (1u << SB_AGG_TOTAL) | (1u << SB_AGG_AVERAGE));
    assert_int_equal(sb_metrics_parse_aggregations("median", &aggs, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "'median'"));

    int agg, desc;
    assert_int_equal(sb_metrics_parse_orderby("sum asc", &agg, &desc, err, sizeof err), SB_OK);
    assert_true(agg == SB_AGG_TOTAL && !desc);
    assert_int_equal(sb_metrics_parse_orderby(" Maximum  DESC ", &agg, &desc, err, sizeof err), SB_OK);
    assert_true(agg == SB_AGG_MAXIMUM && desc);
    assert_int_equal(sb_metrics_parse_orderby("count", &agg, &desc, err, sizeof err), SB_OK);
    assert_true(agg == SB_AGG_COUNT && !desc);
    assert_int_equal(sb_metrics_parse_orderby("sum up", &agg, &desc, err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_metrics_parse_orderby("sum asc extra", &agg, &desc, err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_metrics_parse_orderby("", &agg, &desc, err, sizeof err), SB_EINVAL);
}

static void test_filter(void **state) {
    char err[256];
    sb_dim_filter ep, cat;
    assert_int_equal(sb_metrics_parse_filter("Endpoint eq 'Client'", &ep, &cat, err, sizeof err), SB_OK);
    assert_true(ep.mode == SB_DIM_VALUES && ep.values == 1u << SB_EP_CLIENT && cat.mode == SB_DIM_AGGREGATE);
    assert_int_equal(
        sb_metrics_parse_filter("endpoint EQ 'client' or Endpoint eq 'Server'", &ep, &cat, err, sizeof err),
        SB_OK);
    assert_true(ep.values == ((1u << SB_EP_CLIENT) | (1u << SB_EP_SERVER)));
    assert_int_equal(sb_metrics_parse_filter("Endpoint eq '*' and ConnectionCloseCategory eq '*'", &ep, &cat,
                                             err, sizeof err),
                     SB_OK);
    assert_true(ep.mode == SB_DIM_SPLIT_ALL && cat.mode == SB_DIM_SPLIT_ALL);
    assert_int_equal(
        sb_metrics_parse_filter("(ConnectionCloseCategory eq 'PingTimeout' or ConnectionCloseCategory "
                                "eq 'Normal') and (Endpoint eq 'Client')",
                                &ep, &cat, err, sizeof err),
        SB_OK);
    assert_true(cat.mode == SB_DIM_VALUES &&
                cat.values == ((1u << SB_CC_PING_TIMEOUT) | (1u << SB_CC_NORMAL)));
    assert_true(ep.values == 1u << SB_EP_CLIENT);
    assert_int_equal(
        sb_metrics_parse_filter("Endpoint eq 'Client' or Endpoint eq '*'", &ep, &cat, err, sizeof err),
        SB_OK);
    assert_true(ep.mode == SB_DIM_SPLIT_ALL);

    const struct {
        const char *text, *message;
    } bad[] = {
        {"Endpoint", "only 'eq'"},
        {"Endpoint ne 'Client'", "only 'eq'"},
        {"Endpoint eq Client", "quoted value"},
        {"Endpoint eq 'Client", "quoted value"},
        {"Tier eq 'Hot'", "dimension 'Tier' is not supported"},
        {"Endpoint eq 'Bogus'", "value 'Bogus'"},
        {"Endpoint eq 'Client' xor Endpoint eq 'Server'", "joined by"},
        {"Endpoint eq 'Client' and", "expected a dimension"},
        {"(Endpoint eq 'Client'", "unbalanced"},
        {"Endpoint eq 'Client')", "unbalanced"},
        {"", "expected a dimension"},
        {"'Client' eq Endpoint", "expected a dimension"},
        {"Endpoint eq 'Cli''ent'", "value 'Cli'ent'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(sb_metrics_parse_filter(bad[i].text, &ep, &cat, err, sizeof err), SB_EINVAL);
        if (!strstr(err, bad[i].message))
            fail_msg("filter '%s': message '%s' lacks '%s'", bad[i].text, err, bad[i].message);
        assert_true(ep.mode == SB_DIM_AGGREGATE && cat.mode == SB_DIM_AGGREGATE); /* nothing half-applied */
    }
}

/* Every prefix of a valid input, one byte longer each time: parsers must answer cleanly on all of them. */
static void test_prefixes_byte_at_a_time(void **state) {
    const char *filters[] = {
        "(Endpoint eq 'Client' or Endpoint eq 'Server') and ConnectionCloseCategory eq '*'",
        "ConnectionCloseCategory eq 'ServiceReload'"};
    char err[256], buf[256];
    for (size_t f = 0; f < 2; f++) {
        size_t n = strlen(filters[f]);
        for (size_t k = 0; k <= n; k++) {
            memcpy(buf, filters[f], k);
            buf[k] = '\0';
            sb_dim_filter ep, cat;
            int rc = sb_metrics_parse_filter(buf, &ep, &cat, err, sizeof err);
            assert_true(rc == SB_OK || rc == SB_EINVAL);
            /* whole filters: all of it, and (first filter) its parenthesized head with or without the blank
             */
            size_t head = f == 0 ? strlen("(Endpoint eq 'Client' or Endpoint eq 'Server')") : n;
            assert_int_equal(rc == SB_OK, k == n || k == head || k == head + 1);
        }
    }
    const char *times[] = {"2026-01-01T00:00:00.123+01:00", "P1DT2H3M4.5S"};
    for (size_t t = 0; t < 2; t++) {
        size_t n = strlen(times[t]);
        for (size_t k = 0; k <= n; k++) {
            int64_t v;
            int rc = t == 0 ? sb_metrics_parse_datetime(times[t], k, &v)
                            : sb_metrics_parse_duration(times[t], k, &v);
            assert_true(rc == SB_OK || rc == SB_EINVAL);
        }
    }
}

static void test_route_match(void **state) {
    const char *yes[] = {
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.SignalRService/SignalR/x/providers/"
        "Microsoft.Insights/metrics",
        "//subscriptions/s/resourceGroups/rg/providers/Microsoft.SignalRService/SignalR/x/providers/"
        "microsoft.insights/metricNamespaces",
        "/subscriptions/s/x/providers/MICROSOFT.INSIGHTS/METRICDEFINITIONS",
        "/subscriptions/s/metrics:getBatch", "/subscriptions/s/metrics%3AgetBatch"};
    const char *no[] = {
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.SignalRService/SignalR/x",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.SignalRService/SignalR/x/providers/"
        "Microsoft.Insights/diagnosticSettings/metrics",
        "/subscriptions/s/metrics", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(sb_metrics_api_match(sb_slice_make(yes[i], strlen(yes[i]))));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(sb_metrics_api_match(sb_slice_make(no[i], strlen(no[i]))));
}

/* ---- evaluation ---- */

static sb_metrics_minute minutes[16];
static size_t nminutes;

static sb_metrics_minute *add_minute(int64_t k) {
    sb_metrics_minute *m = &minutes[nminutes++];
    sb_metrics_minute_init(m, M0 + k, (uint64_t[SB_EP_COUNT]){0}, 0);
    m->connections[SB_EP_COUNT].count = 1;
    return m;
}

static void query(sb_metrics_query *q, const char *names, const char *from, const char *to,
                  int64_t interval) {
    char err[256];
    memset(q, 0, sizeof *q);
    q->top = 10;
    q->orderby_agg = -1;
    assert_int_equal(sb_metrics_parse_names(names, q, err, sizeof err), SB_OK);
    q->start_us = dt(from);
    q->end_us = dt(to);
    q->interval_min = interval;
}

static json_t *render(const sb_metrics_query *q) {
    sb_buf out;
    sb_buf_init(&out);
    char err[256];
    assert_int_equal(sb_metrics_render(q, minutes, nminutes, RID, &out, err, sizeof err), SB_OK);
    json_error_t jerr;
    json_t *j = json_loads(out.data, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, out.data);
    sb_buf_free(&out);
    return j;
}

static json_t *series(json_t *value, size_t metric, size_t s) {
    return json_array_get(json_object_get(json_array_get(value, metric), "timeseries"), s);
}

static double point(json_t *value, size_t metric, size_t s, size_t k, const char *agg) {
    json_t *p = json_array_get(json_object_get(series(value, metric, s), "data"), k);
    json_t *v = json_object_get(p, agg);
    if (!json_is_number(v))
        fail_msg("no %s in point %zu of series %zu of metric %zu", agg, k, s, metric);
    return json_number_value(v);
}

static const char *meta(json_t *value, size_t metric, size_t s, size_t i) {
    json_t *m = json_array_get(json_object_get(series(value, metric, s), "metadatavalues"), i);
    return json_string_value(json_object_get(m, "value"));
}

static void test_render_buckets_and_shape(void **state) {
    nminutes = 0;
    for (int k = 0; k < 7; k++) {
        sb_metrics_minute *m = add_minute(k);
        m->messages = (uint64_t)k;
        m->opened[SB_EP_CLIENT] = 1;
    }
    add_minute(9)->messages = 100; /* 7 and 8 missing: the service was down */
    sb_metrics_query q;
    query(&q, "MessageCount,ConnectionOpenCount", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", 5);
    json_t *v = render(&q);
    assert_int_equal(json_array_size(v), 2);
    json_t *m0 = json_array_get(v, 0);
    assert_string_equal(json_string_value(json_object_get(m0, "id")),
                        RID "/providers/Microsoft.Insights/metrics/MessageCount");
    assert_string_equal(json_string_value(json_object_get(m0, "type")), "Microsoft.Insights/metrics");
    assert_string_equal(json_string_value(json_object_get(json_object_get(m0, "name"), "value")),
                        "MessageCount");
    assert_string_equal(json_string_value(json_object_get(json_object_get(m0, "name"), "localizedValue")),
                        "Message Count");
    assert_string_equal(json_string_value(json_object_get(m0, "unit")), "Count");
    assert_string_equal(json_string_value(json_object_get(m0, "errorCode")), "Success");
    assert_null(json_object_get(series(v, 0, 0), "metadatavalues")); /* no filter, no metadata */
    json_t *data = json_object_get(series(v, 0, 0), "data");
    assert_int_equal(json_array_size(data), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "timeStamp")),
                        "2026-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "timeStamp")),
                        "2026-01-01T00:05:00Z");
    assert_true(point(v, 0, 0, 0, "total") == 0 + 1 + 2 + 3 + 4);
    assert_true(point(v, 0, 0, 1, "total") == 5 + 6 + 100);
    assert_null(json_object_get(json_array_get(data, 0), "maximum")); /* only the primary aggregation */
    assert_true(point(v, 1, 0, 0, "total") == 5);
    json_decref(v);

    /* an unaligned start: buckets stay on the grid, minutes outside the timespan do not count */
    query(&q, "MessageCount", "2026-01-01T00:03:00Z", "2026-01-01T00:11:00Z", 5);
    q.aggregations = (1u << SB_AGG_TOTAL) | (1u << SB_AGG_COUNT) | (1u << SB_AGG_AVERAGE) |
                     (1u << SB_AGG_MINIMUM) | (1u << SB_AGG_MAXIMUM);
    v = render(&q);
    data = json_object_get(series(v, 0, 0), "data");
    assert_int_equal(json_array_size(data), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "timeStamp")),
                        "2026-01-01T00:00:00Z");
    assert_true(point(v, 0, 0, 0, "total") == 3 + 4);
    assert_true(point(v, 0, 0, 0, "count") == 2);
    assert_true(point(v, 0, 0, 0, "average") == 3.5);
    assert_true(point(v, 0, 0, 0, "minimum") == 3);
    assert_true(point(v, 0, 0, 1, "maximum") == 100);
    /* the bucket of 00:10 holds no stored minute: a point with only its time */
    json_t *empty = json_array_get(data, 2);
    assert_int_equal(json_object_size(empty), 1);
    json_decref(v);

    /* FULL: one point labelled with the start */
    query(&q, "MessageCount", "2026-01-01T00:02:30Z", "2026-01-01T01:00:00Z", 0);
    v = render(&q);
    data = json_object_get(series(v, 0, 0), "data");
    assert_int_equal(json_array_size(data), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "timeStamp")),
                        "2026-01-01T00:02:30Z");
    assert_true(point(v, 0, 0, 0, "total") == 2 + 3 + 4 + 5 + 6 + 100);
    json_decref(v);

    /* metadata only */
    query(&q, "MessageCount", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", 1);
    q.metadata_only = 1;
    v = render(&q);
    assert_int_equal(json_array_size(json_object_get(series(v, 0, 0), "data")), 0);
    json_decref(v);
}

static void test_render_dimensions(void **state) {
    nminutes = 0;
    sb_metrics_minute *m = add_minute(0);
    m->closed[SB_EP_CLIENT][SB_CC_NORMAL] = 3;
    m->closed[SB_EP_CLIENT][SB_CC_PING_TIMEOUT] = 1;
    m->closed[SB_EP_SERVER][SB_CC_SERVICE_RELOAD] = 2;
    m->opened[SB_EP_CLIENT] = 4;
    m->connections[SB_EP_CLIENT] = (sb_metrics_gauge){.sum = 3, .min = 0, .max = 4, .count = 1};
    m->connections[SB_EP_SERVER] = (sb_metrics_gauge){.sum = 2, .min = 2, .max = 2, .count = 1};
    m->connections[SB_EP_COUNT] = (sb_metrics_gauge){.sum = 5, .min = 2, .max = 6, .count = 1};
    char err[256];
    sb_metrics_query q;

    /* aggregated away */
    query(&q, "ConnectionCloseCount,ConnectionCount", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", 1);
    json_t *v = render(&q);
    assert_true(point(v, 0, 0, 0, "total") == 6);
    assert_true(point(v, 1, 0, 0, "maximum") == 6); /* the combined gauge, not 4 + 2 */
    json_decref(v);

    /* Endpoint eq '*': the values with data, in dimension order, with lower-cased dimension names */
    query(&q, "ConnectionCloseCount,ConnectionCount,InboundTraffic", "2026-01-01T00:00:00Z",
          "2026-01-01T00:01:00Z", 1);
    assert_int_equal(sb_metrics_parse_filter("Endpoint eq '*'", &q.endpoint, &q.category, err, sizeof err),
                     SB_OK);
    v = render(&q);
    json_t *ts = json_object_get(json_array_get(v, 0), "timeseries");
    assert_int_equal(json_array_size(ts), 2); /* LiveTrace has no data */
    assert_string_equal(meta(v, 0, 0, 0), "Client");
    assert_string_equal(meta(v, 0, 1, 0), "Server");
    json_t *md = json_array_get(json_object_get(series(v, 0, 0), "metadatavalues"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(md, "name"), "value")), "endpoint");
    assert_true(point(v, 0, 0, 0, "total") == 4);
    assert_true(point(v, 0, 1, 0, "total") == 2);
    assert_true(point(v, 1, 0, 0, "maximum") == 4);
    assert_true(point(v, 1, 1, 0, "maximum") == 2);
    /* a metric without the dimension ignores the filter */
    assert_null(json_object_get(series(v, 2, 0), "metadatavalues"));
    assert_int_equal(json_array_size(json_object_get(json_array_get(v, 2), "timeseries")), 1);
    json_decref(v);

    /* listed values appear even without data; both dimensions split */
    query(&q, "ConnectionCloseCount", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", 1);
    assert_int_equal(
        sb_metrics_parse_filter("Endpoint eq 'Client' and (ConnectionCloseCategory eq 'Normal' or "
                                "ConnectionCloseCategory eq 'SlowClient')",
                                &q.endpoint, &q.category, err, sizeof err),
        SB_OK);
    v = render(&q);
    ts = json_object_get(json_array_get(v, 0), "timeseries");
    assert_int_equal(json_array_size(ts), 2);
    assert_string_equal(meta(v, 0, 0, 0), "Client");
    assert_string_equal(meta(v, 0, 0, 1), "Normal");
    assert_string_equal(meta(v, 0, 1, 1), "SlowClient");
    assert_true(point(v, 0, 0, 0, "total") == 3);
    assert_true(point(v, 0, 1, 0, "total") == 0);
    json_decref(v);

    /* ConnectionCloseCategory eq '*' alone: endpoints aggregated away */
    query(&q, "ConnectionCloseCount", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", 1);
    assert_int_equal(
        sb_metrics_parse_filter("ConnectionCloseCategory eq '*'", &q.endpoint, &q.category, err, sizeof err),
        SB_OK);
    v = render(&q);
    ts = json_object_get(json_array_get(v, 0), "timeseries");
    assert_int_equal(json_array_size(ts), 3);
    assert_string_equal(meta(v, 0, 0, 0), "Normal");
    assert_string_equal(meta(v, 0, 1, 0), "PingTimeout");
    assert_string_equal(meta(v, 0, 2, 0), "ServiceReload");
    json_decref(v);

    /* orderby and top */
    q.orderby_agg = SB_AGG_TOTAL;
    q.orderby_desc = 1;
    q.top = 2;
    v = render(&q);
    ts = json_object_get(json_array_get(v, 0), "timeseries");
    assert_int_equal(json_array_size(ts), 2);
    assert_string_equal(meta(v, 0, 0, 0), "Normal");
    assert_string_equal(meta(v, 0, 1, 0), "ServiceReload");
    json_decref(v);
    q.orderby_desc = 0;
    q.top = 10;
    v = render(&q);
    assert_string_equal(meta(v, 0, 0, 0), "PingTimeout");
    json_decref(v);
}

static void test_render_limits(void **state) {
    nminutes = 0;
    sb_metrics_query q;
    char err[256];
    sb_buf out;
    sb_buf_init(&out);
    /* 93 days at PT1M split by both dimensions: far beyond the point limit */
    query(&q, "ConnectionCloseCount", "2026-01-01T00:00:00Z", "2026-04-04T00:00:00Z", 1);
    assert_int_equal(sb_metrics_parse_filter("Endpoint eq '*' and ConnectionCloseCategory eq '*'",
                                             &q.endpoint, &q.category, err, sizeof err),
                     SB_OK);
    assert_int_equal(sb_metrics_render(&q, minutes, nminutes, RID, &out, err, sizeof err), SB_E2BIG);
    assert_non_null(strstr(err, "data points"));
    assert_int_equal(out.len, 0);
    /* the same at P1D is fine, and with no data every series is left out */
    q.interval_min = 1440;
    assert_int_equal(sb_metrics_render(&q, minutes, nminutes, RID, &out, err, sizeof err), SB_OK);
    json_t *v = json_loads(out.data, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(json_array_get(v, 0), "timeseries")), 0);
    json_decref(v);
    sb_buf_free(&out);

    sb_buf t;
    sb_buf_init(&t);
    sb_metrics_format_time(T0 + 59999999, &t);
    assert_string_equal(t.data, "2026-01-01T00:00:59Z");
    sb_buf_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_timespan_and_interval),
        cmocka_unit_test(test_names_aggregations_orderby),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_prefixes_byte_at_a_time),
        cmocka_unit_test(test_route_match),
        cmocka_unit_test(test_render_buckets_and_shape),
        cmocka_unit_test(test_render_dimensions),
        cmocka_unit_test(test_render_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
