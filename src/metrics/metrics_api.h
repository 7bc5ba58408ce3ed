/*
 * metrics_api.h - Azure Monitor's metrics API over the platform metrics, at
 * the paths Azure uses, so the Azure SDKs (@azure/arm-monitor's
 * metrics/metricDefinitions/metricNamespaces, @azure/monitor-query-metrics'
 * MetricsClient) and plain HTTP callers can read them:
 *
 *   GET  {resourceId}/providers/Microsoft.Insights/metrics?api-version=&metricnames=&timespan=&interval=
 *        &aggregation=&$filter=&top=&orderby=&resultType=&metricnamespace=
 *   GET  {resourceId}/providers/Microsoft.Insights/metricDefinitions?api-version=
 *   GET  {resourceId}/providers/Microsoft.Insights/metricNamespaces?api-version=
 *   POST /subscriptions/{sub}/metrics:getBatch?api-version=&metricnamespace=&metricnames=&starttime=&endtime=
 *        &interval=&aggregation=&filter=&top=&orderby=    body {"resourceids":[...]}
 *
 * Auth: a bearer JWT signed with an access key, audience = endpoint + request
 * path (the query ignored), like the management API.  Errors are ARM's shape
 * {"error":{"code","message"}}.
 *
 * Reads never block the loop: the request is parsed on the loop, the recent
 * minutes held in memory are copied, and the store is read, aggregated and
 * rendered on the libuv threadpool; the answer is sent from the loop.
 *
 * Called by: net/http.c for paths sb_metrics_api_match() accepts (checked
 * before the management API).  The parsing and evaluation functions below
 * are pure and exposed for the tests and the fuzzer.
 */
#ifndef SB_METRICS_API_H
#define SB_METRICS_API_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "net/conn.h"
#include "net/http_parse.h"
#include "util/buf.h"

/* Is path one of the routes above (case-insensitive; any number of leading slashes)? */
int sb_metrics_api_match(sb_slice path);
/* Answer one request (always answers, possibly later from a threadpool job). */
void sb_metrics_api_handle(sb_conn *c, sb_http_request *req);

/* ---- the query, parsed (pure) ---- */

typedef enum sb_dim_mode {
    SB_DIM_AGGREGATE = 0, /* not in the filter: aggregated away */
    SB_DIM_SPLIT_ALL,     /* Dim eq '*': one series per value that has data */
    SB_DIM_VALUES,        /* Dim eq 'a' [or Dim eq 'b']: one series per listed value */
} sb_dim_mode;

typedef struct sb_dim_filter {
    sb_dim_mode mode;
    uint32_t values; /* SB_DIM_VALUES: bit per value index (endpoint or close category) */
} sb_dim_filter;

typedef struct sb_metrics_query {
    uint32_t metrics;           /* bit per sb_metric_id, in request order below */
    int order[SB_METRIC_COUNT]; /* the requested metrics, as asked */
    int nmetrics;
    unsigned aggregations;    /* bit per sb_metric_aggregation; 0 = each metric's primary */
    int64_t start_us, end_us; /* the timespan, [start, end) */
    int64_t interval_min;     /* bucket width in minutes; 0 = FULL (one bucket) */
    sb_dim_filter endpoint, category;
    int top;         /* series per metric when splitting (default 10) */
    int orderby_agg; /* -1 none: series in dimension order */
    int orderby_desc;
    int metadata_only; /* resultType=Metadata */
} sb_metrics_query;

/* Each returns SB_OK, or SB_EINVAL with the 400 message in err. */
int sb_metrics_parse_names(const char *text, sb_metrics_query *q, char *err, size_t errlen);
int sb_metrics_parse_aggregations(const char *text, unsigned *out, char *err, size_t errlen);
/* "PT1M" ... "P1D", or "FULL" (0). */
int sb_metrics_parse_interval(const char *text, int64_t *minutes, char *err, size_t errlen);
/* "start/end", "start/duration", "duration/end" or "duration" (ending now); now_us for the relative forms. */
int sb_metrics_parse_timespan(const char *text, int64_t now_us, int64_t *start_us, int64_t *end_us, char *err,
                              size_t errlen);
/* ISO 8601 date-time (Z, an offset, or none = UTC) -> microseconds since the epoch. */
int sb_metrics_parse_datetime(const char *text, size_t len, int64_t *out_us);
/* ISO 8601 duration PnWnDTnHnMnS -> microseconds (> 0). */
int sb_metrics_parse_duration(const char *text, size_t len, int64_t *out_us);
/* $filter: terms "Dim eq 'value'" joined by and/or, parentheses allowed; Endpoint and
 * ConnectionCloseCategory (case-insensitive), values by name or '*'. */
int sb_metrics_parse_filter(const char *text, sb_dim_filter *endpoint, sb_dim_filter *category, char *err,
                            size_t errlen);
/* "<aggregation> [asc|desc]". */
int sb_metrics_parse_orderby(const char *text, int *agg, int *desc, char *err, size_t errlen);

/*
 * Evaluate q over minutes (any order, each minute once) and append the JSON array of metric objects (Azure's
 * "value") to out.  resource_id: the ids of the answer.  Returns SB_OK or SB_E2BIG (err set) when the answer
 * would exceed the point limit.
 */
int sb_metrics_render(const sb_metrics_query *q, const struct sb_metrics_minute *minutes, size_t nminutes,
                      const char *resource_id, sb_buf *out, char *err, size_t errlen);

/* ISO 8601 of t (microseconds), seconds precision: "2026-01-01T00:05:00Z". */
void sb_metrics_format_time(int64_t t_us, sb_buf *out);

#endif
