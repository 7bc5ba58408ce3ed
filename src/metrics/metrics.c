/*
 * metrics.c - the live side of the platform metrics (see metrics.h): the
 * recorders, the current minute, sealing, and the metric definitions.
 *
 * State (srv->metrics, event loop thread only):
 *   cur         the minute being counted; recorders add to it in place
 *   live[ep]    connections open now per endpoint (the gauges' level)
 *   ring        the last RING_MINUTES sealed minutes, so API reads of recent
 *               minutes never depend on the writer having written them yet
 *   sealed      counters summed over this process's sealed minutes (with cur:
 *               the Prometheus totals, at no cost on the hot path)
 *   day_sealed  messages of today's sealed minutes (with cur.messages: the
 *               Free tier's daily count)
 *
 * Time: a 1 s timer samples the gauges (connections per endpoint, quota
 * utilization, CPU) and, when the UTC wall-clock minute changed, seals cur:
 * the sealed copy goes to the ring, to the writer thread (the store, through
 * sb_diag_run_on_writer) and, when a diagnostic setting has AllMetrics, out
 * as one metric row per exportable metric.  A gauge's minimum and maximum
 * also move on every open and close, so a spike between samples is seen.
 *
 * Restarts: start reads the current minute back from the store (a restart
 * within a minute continues it; the sealed record replaces the slot) and
 * sums today's stored messages, so the Free tier's quota survives restarts.
 * stop seals the minute as it is, so nothing counted is lost at shutdown
 * (a restart within the same minute exports that minute's row twice).
 *
 * Hot path: recorders are an increment or two; the only branch is the NULL
 * check that keeps them callable when metrics never started (tests, tools).
 *
 * Not here: the meaning of a record's fields (store.c), the API
 * (metrics_api.c), tier limits (limits/tier.c).
 */
#include "metrics/metrics.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "diag/diag.h"
#include "limits/tier.h"
#include "metrics/store.h"
#include "server.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/error.h"

#define TICK_MS 1000
#define RING_MINUTES 16
#define US_PER_MINUTE INT64_C(60000000)

struct sb_metrics {
    sb_server *srv;
    uv_timer_t timer;
    int running; /* timer started, stop not called yet */
    sb_metrics_minute cur;
    uint64_t live[SB_EP_COUNT];
    sb_metrics_minute ring[RING_MINUTES]; /* oldest at ring_next when full */
    size_t ring_len, ring_next;
    sb_metrics_totals sealed;
    int64_t day; /* cur's UTC day */
    uint64_t day_sealed;
    uint64_t last_cpu_us, last_sample_ns; /* ServerLoad: CPU time and monotonic time of the last sample */
    unsigned ncpu;
    char *dir;               /* <data_dir>/metrics */
    sb_metrics_store *store; /* used by writer-thread jobs only; closed in sb_metrics_free */
    double start_time;       /* wall clock, seconds */
};

/* ---- names ------------------------------------------------------------------------------------ */

static const char *const category_names[SB_CC_COUNT] = {
    [SB_CC_NORMAL] = "Normal",
    [SB_CC_THROTTLED] = "Throttled",
    [SB_CC_PING_TIMEOUT] = "PingTimeout",
    [SB_CC_NO_AVAILABLE_SERVER_CONNECTION] = "NoAvailableServerConnection",
    [SB_CC_INVOKE_UPSTREAM_FAILED] = "InvokeUpstreamFailed",
    [SB_CC_SLOW_CLIENT] = "SlowClient",
    [SB_CC_HANDSHAKE_ERROR] = "HandshakeError",
    [SB_CC_SERVER_CONNECTION_NOT_FOUND] = "ServerConnectionNotFound",
    [SB_CC_SERVER_CONNECTION_CLOSED] = "ServerConnectionClosed",
    [SB_CC_SERVICE_TRANSIENT_ERROR] = "ServiceTransientError",
    [SB_CC_BAD_REQUEST] = "BadRequest",
    [SB_CC_CLOSED_BY_APP_SERVER] = "ClosedByAppServer",
    [SB_CC_SERVICE_RELOAD] = "ServiceReload",
    [SB_CC_SERVICE_MODE_SWITCHED] = "ServiceModeSwitched",
    [SB_CC_UNAUTHORIZED] = "Unauthorized",
};

static const char *const endpoint_names[SB_EP_COUNT] = {"Client", "Server", "LiveTrace"};

const char *sb_close_category_name(sb_close_category c) {
    return (unsigned)c < SB_CC_COUNT ? category_names[c] : "Unknown";
}

const char *sb_metrics_endpoint_name(sb_metrics_endpoint ep) {
    return (unsigned)ep < SB_EP_COUNT ? endpoint_names[ep] : "Unknown";
}

sb_close_category sb_metrics_category_for(int reason) {
    switch (reason) {
    case SB_CLOSE_NORMAL:
        return SB_CC_NORMAL;
    case SB_CLOSE_BY_APP:
        return SB_CC_CLOSED_BY_APP_SERVER;
    case SB_CLOSE_PING_TIMEOUT:
    case SB_CLOSE_HANDSHAKE_TIMEOUT: /* nothing arrived in time: the same symptom as a missed ping */
    case SB_CLOSE_NEGOTIATE_TIMEOUT:
        return SB_CC_PING_TIMEOUT;
    case SB_CLOSE_HANDSHAKE_ERROR: /* a malformed or unsupported hub handshake request */
    case SB_CLOSE_PROTOCOL_ERROR:
        return SB_CC_BAD_REQUEST;
    case SB_CLOSE_SLOW_CLIENT:
        return SB_CC_SLOW_CLIENT;
    case SB_CLOSE_TRANSPORT_LOST: /* Azure: "closed the WebSocket without completing the close handshake" */
        return SB_CC_HANDSHAKE_ERROR;
    case SB_CLOSE_SERVICE_RELOAD:
        return SB_CC_SERVICE_RELOAD;
    case SB_CLOSE_SERVER_DROPPED:
        return SB_CC_SERVER_CONNECTION_CLOSED;
    case SB_CLOSE_UPSTREAM_FAILED:
        return SB_CC_INVOKE_UPSTREAM_FAILED;
    default:
        return SB_CC_SERVICE_TRANSIENT_ERROR;
    }
}

int sb_metrics_category_error_kind(sb_close_category c) {
    switch (c) {
    case SB_CC_NORMAL:
    case SB_CC_CLOSED_BY_APP_SERVER:
    case SB_CC_SERVICE_RELOAD:
    case SB_CC_SERVICE_MODE_SWITCHED:
        return 0;
    case SB_CC_SERVICE_TRANSIENT_ERROR:
    case SB_CC_COUNT:
        return 2;
    default:
        return 1; /* the client, the app server, their network or their upstream */
    }
}

const sb_metric_def sb_metric_defs[SB_METRIC_COUNT] = {
    [SB_METRIC_CONNECTION_CLOSE_COUNT] = {"ConnectionCloseCount", "Connection Close Count",
                                          "Connections closed, by endpoint and close category.", "Traffic",
                                          "Count", SB_AGG_TOTAL,
                                          SB_METRIC_DIM_ENDPOINT | SB_METRIC_DIM_CATEGORY, 1},
    [SB_METRIC_CONNECTION_COUNT] = {"ConnectionCount", "Connection Count",
                                    "Concurrent connections, by endpoint.", "Traffic", "Count",
                                    SB_AGG_MAXIMUM, SB_METRIC_DIM_ENDPOINT, 1},
    [SB_METRIC_CONNECTION_OPEN_COUNT] = {"ConnectionOpenCount", "Connection Open Count",
                                         "Connections opened, by endpoint.", "Traffic", "Count", SB_AGG_TOTAL,
                                         SB_METRIC_DIM_ENDPOINT, 1},
    [SB_METRIC_CONNECTION_QUOTA_UTILIZATION] =
        {"ConnectionQuotaUtilization", "Connection Quota Utilization",
         "Client and server connections relative to the tier's connection "
         "quota, in percent.",
         "Traffic", "Percent", SB_AGG_MAXIMUM, 0, 1},
    [SB_METRIC_INBOUND_TRAFFIC] = {"InboundTraffic", "Inbound Traffic", "Bytes received by the service.",
                                   "Traffic", "Bytes", SB_AGG_TOTAL, 0, 1},
    [SB_METRIC_MESSAGE_COUNT] =
        {"MessageCount", "Message Count",
         "Messages sent to clients, in units of 2 KB of outbound traffic; pings excluded.", "Traffic",
         "Count", SB_AGG_TOTAL, 0, 1},
    [SB_METRIC_OUTBOUND_TRAFFIC] = {"OutboundTraffic", "Outbound Traffic",
                                    "Bytes of messages sent to clients.", "Traffic", "Bytes", SB_AGG_TOTAL, 0,
                                    1},
    [SB_METRIC_SERVER_LOAD] = {"ServerLoad", "Server Load",
                               "CPU used by the service, in percent of the machine.", "Saturation", "Percent",
                               SB_AGG_MAXIMUM, 0, 0},
    [SB_METRIC_SYSTEM_ERRORS] = {"SystemErrors", "System Errors",
                                 "Operations that failed because of the service, in percent.", "Errors",
                                 "Percent", SB_AGG_MAXIMUM, 0, 1},
    [SB_METRIC_USER_ERRORS] =
        {"UserErrors", "User Errors",
         "Operations that failed because of the client, the app or the network, in percent.", "Errors",
         "Percent", SB_AGG_MAXIMUM, 0, 1},
};

int sb_metric_find(const char *name, size_t len) {
    for (int i = 0; i < SB_METRIC_COUNT; i++)
        if (strlen(sb_metric_defs[i].name) == len && strncasecmp(sb_metric_defs[i].name, name, len) == 0)
            return i;
    return -1;
}

static const char *const agg_fields[SB_AGG_N] = {"average", "count", "minimum", "maximum", "total"};
static const char *const agg_names[SB_AGG_N] = {"Average", "Count", "Minimum", "Maximum", "Total"};

const char *sb_metric_aggregation_field(sb_metric_aggregation a) {
    return (unsigned)a < SB_AGG_N ? agg_fields[a] : "total";
}
const char *sb_metric_aggregation_name(sb_metric_aggregation a) {
    return (unsigned)a < SB_AGG_N ? agg_names[a] : "Total";
}

/* ---- the current minute ----------------------------------------------------------------------- */

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static void level(sb_metrics_gauge *g, double v) {
    if (v < g->min)
        g->min = v;
    if (v > g->max)
        g->max = v;
}

static void sample(sb_metrics_gauge *g, double v) {
    if (!g->count) /* the first sample of a level-less gauge (ServerLoad) defines its range */
        g->min = g->max = v;
    level(g, v);
    g->sum += v;
    g->count++;
}

static uint64_t live_all(const sb_metrics *m) {
    uint64_t n = 0;
    for (int e = 0; e < SB_EP_COUNT; e++)
        n += m->live[e];
    return n;
}

static uint64_t cpu_us(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Connection levels move with every open and close, so a minute's range includes what happened between
 * samples; samples (sum/count: the average) come from the tick only. */
static void levels_changed(sb_metrics *m, sb_metrics_endpoint ep) {
    level(&m->cur.connections[ep], (double)m->live[ep]);
    level(&m->cur.connections[SB_EP_COUNT], (double)live_all(m));
    level(&m->cur.quota, sb_tier_quota_utilization(m->srv));
}

static void take_samples(sb_metrics *m) {
    for (int e = 0; e < SB_EP_COUNT; e++)
        sample(&m->cur.connections[e], (double)m->live[e]);
    sample(&m->cur.connections[SB_EP_COUNT], (double)live_all(m));
    sample(&m->cur.quota, sb_tier_quota_utilization(m->srv));
    uint64_t now_ns = uv_hrtime(), cpu = cpu_us();
    if (m->last_sample_ns && now_ns > m->last_sample_ns) {
        double wall = (double)(now_ns - m->last_sample_ns) / 1000.0;
        double load = (double)(cpu - m->last_cpu_us) * 100.0 / wall / (double)m->ncpu;
        sample(&m->cur.server_load, load < 0 ? 0 : load > 100 ? 100 : load);
    }
    m->last_sample_ns = now_ns;
    m->last_cpu_us = cpu;
}

static void begin_minute(sb_metrics *m, int64_t minute) {
    sb_metrics_minute_init(&m->cur, minute, m->live, sb_tier_quota_utilization(m->srv));
    int64_t day = floor_div(minute, SB_METRICS_MINUTES_PER_DAY);
    if (day != m->day) {
        m->day = day;
        m->day_sealed = 0;
    }
}

typedef struct store_job {
    sb_metrics_store *store;
    sb_metrics_minute minute;
} store_job;

static void write_minute(void *arg) { /* writer thread */
    store_job *j = arg;
    char err[512];
    if (sb_metrics_store_write(j->store, &j->minute, err, sizeof err) != SB_OK)
        fprintf(stderr, "switchboard: metrics: %s; minute %lld is not stored\n", err,
                (long long)j->minute.minute);
    sb_metrics_store_prune(j->store, floor_div(j->minute.minute, SB_METRICS_MINUTES_PER_DAY));
    sb_free(j);
}

static void export_rows(sb_server *srv, const sb_metrics_minute *min) {
    if (!sb_diag_should_log(srv, SB_LOGT_METRIC, 0))
        return;
    for (int i = 0; i < SB_METRIC_COUNT; i++) {
        const sb_metric_def *d = &sb_metric_defs[i];
        sb_metrics_point p;
        sb_metrics_minute_point(min, (sb_metric_id)i, SB_METRICS_ALL, SB_METRICS_ALL, &p);
        if (!d->exportable || !p.count)
            continue;
        sb_log_fields f;
        memset(&f, 0, sizeof f);
        f.type = SB_LOGT_METRIC;
        f.level = SB_LEVEL_INFORMATIONAL;
        f.time_us = min->minute * US_PER_MINUTE;
        f.metric = (sb_log_metric){d->name,
                                   d->unit,
                                   p.total,
                                   (double)p.count,
                                   p.minimum,
                                   p.maximum,
                                   sb_metrics_point_value(&p, SB_AGG_AVERAGE)};
        sb_diag_emit(srv, &f);
    }
}

static void add_totals(sb_metrics_totals *t, const sb_metrics_minute *min) {
    for (int e = 0; e < SB_EP_COUNT; e++) {
        t->opened[e] += min->opened[e];
        for (int c = 0; c < SB_CC_COUNT; c++)
            t->closed[e][c] += min->closed[e][c];
    }
    t->inbound_bytes += min->inbound_bytes;
    t->outbound_bytes += min->outbound_bytes;
    t->messages += min->messages;
    t->operations += min->operations;
    t->user_errors += min->user_errors;
    t->system_errors += min->system_errors;
}

static void seal(sb_metrics *m) {
    const sb_metrics_minute *min = &m->cur;
    m->ring[m->ring_next] = *min;
    m->ring_next = (m->ring_next + 1) % RING_MINUTES;
    if (m->ring_len < RING_MINUTES)
        m->ring_len++;
    add_totals(&m->sealed, min);
    if (floor_div(min->minute, SB_METRICS_MINUTES_PER_DAY) == m->day)
        m->day_sealed += min->messages;
    store_job *j = sb_malloc(sizeof *j);
    j->store = m->store;
    j->minute = *min;
    if (sb_diag_run_on_writer(m->srv, write_minute, j) != SB_OK)
        sb_free(j); /* no writer (a tool or test without the pipeline): memory only */
    export_rows(m->srv, min);
}

void sb__metrics_tick_at(sb_server *srv, int64_t now_us) {
    sb_metrics *m = srv->metrics;
    if (!m)
        return;
    int64_t minute = floor_div(now_us, US_PER_MINUTE);
    if (minute != m->cur.minute) {
        seal(m);
        begin_minute(m, minute);
    }
    take_samples(m);
}

static void on_tick(uv_timer_t *t) {
    sb_metrics *m = t->data;
    sb__metrics_tick_at(m->srv, wall_us());
}

size_t sb__metrics_recent(const sb_server *srv, int64_t from, int64_t to, sb_metrics_minute *out,
                          size_t max) {
    const sb_metrics *m = srv->metrics;
    size_t n = 0;
    if (!m)
        return 0;
    for (size_t i = 0; i < m->ring_len && n < max; i++) {
        const sb_metrics_minute *r = &m->ring[(m->ring_next + RING_MINUTES - m->ring_len + i) % RING_MINUTES];
        if (r->minute >= from && r->minute < to && r->minute != m->cur.minute)
            out[n++] = *r;
    }
    if (n < max && m->cur.minute >= from && m->cur.minute < to)
        out[n++] = m->cur;
    return n;
}

/* ---- recorders -------------------------------------------------------------------------------- */

void sb_metrics_connection_opened(sb_server *srv, sb_metrics_endpoint ep) {
    sb_metrics *m = srv->metrics;
    if (!m || (unsigned)ep >= SB_EP_COUNT)
        return;
    m->live[ep]++;
    m->cur.opened[ep]++;
    levels_changed(m, ep);
}

static void count_operation(sb_metrics *m, int error_kind) {
    m->cur.operations++;
    if (error_kind == 1)
        m->cur.user_errors++;
    else if (error_kind == 2)
        m->cur.system_errors++;
}

void sb_metrics_connection_closed(sb_server *srv, sb_metrics_endpoint ep, sb_close_category cat) {
    sb_metrics *m = srv->metrics;
    if (!m || (unsigned)ep >= SB_EP_COUNT)
        return;
    if ((unsigned)cat >= SB_CC_COUNT)
        cat = SB_CC_SERVICE_TRANSIENT_ERROR;
    if (m->live[ep])
        m->live[ep]--;
    m->cur.closed[ep][cat]++;
    count_operation(m, sb_metrics_category_error_kind(cat));
    levels_changed(m, ep);
}

void sb_metrics_connection_refused(sb_server *srv, sb_metrics_endpoint ep, sb_close_category cat) {
    sb_metrics *m = srv->metrics;
    if (!m || (unsigned)ep >= SB_EP_COUNT)
        return;
    if ((unsigned)cat >= SB_CC_COUNT)
        cat = SB_CC_SERVICE_TRANSIENT_ERROR;
    m->cur.closed[ep][cat]++; /* the refusing HTTP answer is the operation (counted by the HTTP layer) */
}

void sb_metrics_inbound(sb_server *srv, size_t bytes) {
    sb_metrics *m = srv->metrics;
    if (m)
        m->cur.inbound_bytes += bytes;
}

void sb_metrics_outbound(sb_server *srv, size_t bytes, int is_ping) {
    sb_metrics *m = srv->metrics;
    if (!m)
        return;
    m->cur.outbound_bytes += bytes;
    if (!is_ping)
        m->cur.messages += (bytes + 2047) / 2048;
}

void sb_metrics_operation(sb_server *srv, int error_kind) {
    sb_metrics *m = srv->metrics;
    if (m)
        count_operation(m, error_kind);
}

/* ---- readers ---------------------------------------------------------------------------------- */

uint64_t sb_metrics_live(const sb_server *srv, sb_metrics_endpoint ep) {
    const sb_metrics *m = srv->metrics;
    return m && (unsigned)ep < SB_EP_COUNT ? m->live[ep] : 0;
}

/* The day turns with the first tick after 00:00 UTC: up to a second of the new day counts to the old one. */
uint64_t sb_metrics_day_messages(const sb_server *srv) {
    const sb_metrics *m = srv->metrics;
    return m ? m->day_sealed + m->cur.messages : 0;
}

void sb_metrics_get_totals(const sb_server *srv, sb_metrics_totals *out) {
    memset(out, 0, sizeof *out);
    const sb_metrics *m = srv->metrics;
    if (!m)
        return;
    *out = m->sealed;
    if (m->running)
        add_totals(out, &m->cur);
}

double sb__metrics_start_time(const sb_server *srv) {
    return srv->metrics ? srv->metrics->start_time : 0;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

int sb_metrics_start(sb_server *srv) {
    if (srv->metrics)
        return SB_OK;
    char err[512];
    if (sb_tier_check_config(&srv->cfg, err, sizeof err) != SB_OK) {
        fprintf(stderr, "switchboard: %s\n", err);
        return SB_EINVAL;
    }
    char *dir = sb_asprintf("%s/" SB_METRICS_DIR, srv->cfg.data_dir);
    sb_metrics_store *store = sb_metrics_store_open(dir, err, sizeof err);
    if (!store) {
        fprintf(stderr, "switchboard: metrics: %s\n", err);
        sb_free(dir);
        return SB_EIO;
    }
    sb_metrics *m = sb_calloc(1, sizeof *m);
    m->srv = srv;
    m->dir = dir;
    m->store = store;
    m->ncpu = uv_available_parallelism();
    if (!m->ncpu)
        m->ncpu = 1;
    int64_t now = wall_us();
    m->start_time = (double)now / 1e6;
    m->day = INT64_MIN;
    srv->metrics = m;
    int64_t minute = floor_div(now, US_PER_MINUTE);
    begin_minute(m, minute);
    sb_metrics_minute before; /* the same minute from a process that stopped moments ago */
    if (sb_metrics_store_read(dir, minute, &before) == SB_OK)
        sb_metrics_minute_merge(&m->cur, &before);
    m->day_sealed = sb_metrics_store_day_messages(dir, m->day, minute);
    take_samples(m);
    if (srv->loop) {
        uv_timer_init(srv->loop, &m->timer);
        m->timer.data = m;
        uv_timer_start(&m->timer, on_tick, TICK_MS, TICK_MS);
        uv_unref((uv_handle_t *)&m->timer); /* never the reason the loop keeps running: stop closes it */
    }
    m->running = 1;
    return SB_OK;
}

void sb_metrics_stop(sb_server *srv) {
    sb_metrics *m = srv->metrics;
    if (!m || !m->running)
        return;
    m->running = 0;
    seal(m);
    if (srv->loop)
        uv_close((uv_handle_t *)&m->timer, NULL);
}

void sb_metrics_free(sb_server *srv) {
    sb_metrics *m = srv->metrics;
    if (!m)
        return;
    sb_metrics_store_close(m->store);
    sb_free(m->dir);
    sb_free(m);
    srv->metrics = NULL;
}
