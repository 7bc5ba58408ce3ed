/*
 * metrics.h - Azure SignalR Service's platform metrics: hot-path counters,
 * the one-minute store, and the close categories.
 *
 * Hot path: the sb_metrics_* recorders below are called on the event loop
 * for every connection open/close and every byte in or out.  They are plain
 * increments into the current minute's slot (no locks, no allocation); the
 * minute is sealed by a 1 s timer and handed to the log writer thread (the
 * same thread as the resource logs) which appends it to the 93-day store in
 * the data dir and exports it through diagnostic settings (AllMetrics).
 *
 * Names, units and aggregations are Azure's (the definitions table in
 * metrics.c, sb_metric_defs): ConnectionCount, ConnectionOpenCount,
 * ConnectionCloseCount, ConnectionQuotaUtilization, InboundTraffic,
 * OutboundTraffic, MessageCount (2 KB units of outbound traffic, pings
 * excluded), ServerLoad, SystemErrors, UserErrors; dimensions Endpoint
 * (Client, Server, LiveTrace) and ConnectionCloseCategory.  docs/METRICS.md
 * explains each.
 *
 * Readers: metrics_api.c (Azure Monitor's metrics API), prometheus.c
 * (/metrics), metrics_cli.c (`switchboard metrics`, reads the store files),
 * limits/tier.c (the Free tier's daily message count).
 */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct sb_server;
typedef struct sb_metrics sb_metrics;

typedef enum sb_metrics_endpoint {
    SB_EP_CLIENT = 0,
    SB_EP_SERVER = 1,
    SB_EP_LIVETRACE = 2,
    SB_EP_COUNT
} sb_metrics_endpoint;

/* ConnectionCloseCategory values, exactly Azure's fifteen. */
typedef enum sb_close_category {
    SB_CC_NORMAL = 0,
    SB_CC_THROTTLED,
    SB_CC_PING_TIMEOUT,
    SB_CC_NO_AVAILABLE_SERVER_CONNECTION,
    SB_CC_INVOKE_UPSTREAM_FAILED,
    SB_CC_SLOW_CLIENT,
    SB_CC_HANDSHAKE_ERROR,
    SB_CC_SERVER_CONNECTION_NOT_FOUND,
    SB_CC_SERVER_CONNECTION_CLOSED,
    SB_CC_SERVICE_TRANSIENT_ERROR,
    SB_CC_BAD_REQUEST,
    SB_CC_CLOSED_BY_APP_SERVER,
    SB_CC_SERVICE_RELOAD,
    SB_CC_SERVICE_MODE_SWITCHED,
    SB_CC_UNAUTHORIZED,
    SB_CC_COUNT
} sb_close_category;

const char *sb_close_category_name(sb_close_category c);
/* "Client", "Server", "LiveTrace". */
const char *sb_metrics_endpoint_name(sb_metrics_endpoint ep);
/* The category of a client close (enum sb_close_reason of signalr/client.h); unknown reasons are
 * ServiceTransientError.  The mapping is documented in docs/METRICS.md. */
sb_close_category sb_metrics_category_for(int sb_close_reason);
/* What a close in category c means for SystemErrors / UserErrors: 0 not an error, 1 user, 2 system. */
int sb_metrics_category_error_kind(sb_close_category c);

/* ---- the ten metrics ---- */

typedef enum sb_metric_id {
    SB_METRIC_CONNECTION_CLOSE_COUNT = 0,
    SB_METRIC_CONNECTION_COUNT,
    SB_METRIC_CONNECTION_OPEN_COUNT,
    SB_METRIC_CONNECTION_QUOTA_UTILIZATION,
    SB_METRIC_INBOUND_TRAFFIC,
    SB_METRIC_MESSAGE_COUNT,
    SB_METRIC_OUTBOUND_TRAFFIC,
    SB_METRIC_SERVER_LOAD,
    SB_METRIC_SYSTEM_ERRORS,
    SB_METRIC_USER_ERRORS,
    SB_METRIC_COUNT
} sb_metric_id;

typedef enum sb_metric_aggregation {
    SB_AGG_AVERAGE = 0,
    SB_AGG_COUNT,
    SB_AGG_MINIMUM,
    SB_AGG_MAXIMUM,
    SB_AGG_TOTAL,
    SB_AGG_N
} sb_metric_aggregation;

#define SB_METRIC_DIM_ENDPOINT 1u
#define SB_METRIC_DIM_CATEGORY 2u

typedef struct sb_metric_def {
    const char *name;         /* REST name, e.g. "ConnectionCount" */
    const char *display_name; /* localizedValue, e.g. "Connection Count" */
    const char *description;
    const char *category; /* "Traffic", "Saturation", "Errors" */
    const char *unit;     /* "Count", "Bytes", "Percent" */
    sb_metric_aggregation primary;
    unsigned dims;  /* SB_METRIC_DIM_* */
    int exportable; /* sent as AllMetrics by diagnostic settings */
} sb_metric_def;

extern const sb_metric_def sb_metric_defs[SB_METRIC_COUNT];
/* Case-insensitive lookup by REST name; -1 when unknown. */
int sb_metric_find(const char *name, size_t len);
/* "average", "count", ... (lower case: the JSON field names of a data point). */
const char *sb_metric_aggregation_field(sb_metric_aggregation a);
/* "Average", "Count", ... (metric definitions, AzureMetrics columns). */
const char *sb_metric_aggregation_name(sb_metric_aggregation a);

/* ---- recorders (event loop thread) ---- */
void sb_metrics_connection_opened(struct sb_server *srv, sb_metrics_endpoint ep);
void sb_metrics_connection_closed(struct sb_server *srv, sb_metrics_endpoint ep, sb_close_category cat);
/* A connection refused before it was opened (429 Throttled, 401 Unauthorized): counted in
 * ConnectionCloseCount by category and as an operation, never in ConnectionCount. */
void sb_metrics_connection_refused(struct sb_server *srv, sb_metrics_endpoint ep, sb_close_category cat);
/*
 * The per-read, per-message and per-request recorders.  SB_METRICS_OFF turns them into inline no-ops in the
 * objects compiled with it: only the benchmark's switchboard-nometrics build does that, to measure what
 * metrics cost on the broadcast path (bench/run.sh, case "metrics").  metrics.c itself is never compiled
 * with it (its definitions would collide with these), so the rest of the metrics keep working.
 */
#ifndef SB_METRICS_OFF
/* Bytes received by the service (any socket). */
void sb_metrics_inbound(struct sb_server *srv, size_t bytes);
/* Bytes of one message sent to a client; pings are traffic but not messages. */
void sb_metrics_outbound(struct sb_server *srv, size_t bytes, int is_ping);
/* One operation (connect, send, ...) finished; error_kind 0 ok, 1 user error, 2 system error. */
void sb_metrics_operation(struct sb_server *srv, int error_kind);
#else
static inline void sb_metrics_inbound(struct sb_server *srv, size_t bytes) {}
static inline void sb_metrics_outbound(struct sb_server *srv, size_t bytes, int is_ping) {}
static inline void sb_metrics_operation(struct sb_server *srv, int error_kind) {}
#endif

/* ---- readers (event loop thread) ---- */

/* Connections counted now, per endpoint (opened minus closed). */
uint64_t sb_metrics_live(const struct sb_server *srv, sb_metrics_endpoint ep);
/* Messages (2 KB units) sent today, UTC: the Free tier's daily quota count.  Survives restarts. */
uint64_t sb_metrics_day_messages(const struct sb_server *srv);

/* Counters since the process started (Prometheus). */
typedef struct sb_metrics_totals {
    uint64_t opened[SB_EP_COUNT];
    uint64_t closed[SB_EP_COUNT][SB_CC_COUNT];
    uint64_t inbound_bytes, outbound_bytes, messages;
    uint64_t operations, user_errors, system_errors;
} sb_metrics_totals;
void sb_metrics_get_totals(const struct sb_server *srv, sb_metrics_totals *out);

/* Lifecycle (server.c).  start: before the loop runs (reads today's store file to restore the day's message
 * count and a minute interrupted by a restart).  stop: seal the current minute and hand it to the writer,
 * close the timer (the recorders stay callable until free).  free: after sb_diag_stop. */
int sb_metrics_start(struct sb_server *srv);
void sb_metrics_stop(struct sb_server *srv);
void sb_metrics_free(struct sb_server *srv);

/* ---- internals shared with metrics_api.c, prometheus.c and the tests ---- */
struct sb_metrics_minute;
/* Run the 1 s tick as if the wall clock read now_us: seal the minute if it changed, take the samples. */
void sb__metrics_tick_at(struct sb_server *srv, int64_t now_us);
/* Copy the minutes in [from, to) held in memory (recently sealed, and the current one) into out, oldest
 * first; returns how many (at most max).  They supersede the store's copies of the same minutes. */
size_t sb__metrics_recent(const struct sb_server *srv, int64_t from, int64_t to,
                          struct sb_metrics_minute *out, size_t max);
/* When metrics started (wall clock, seconds): process_start_time_seconds. */
double sb__metrics_start_time(const struct sb_server *srv);

#endif
