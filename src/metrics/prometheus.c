/*
 * prometheus.c - the /metrics endpoint; see prometheus.h.
 *
 * Names follow Prometheus conventions (snake_case, _total for counters, base
 * units); labels carry the dimensions (hub, endpoint, category).  Text format
 * 0.0.4.  The platform metrics' counters are process totals (metrics.c keeps
 * them without hot-path cost); the process_* families are the standard ones
 * of the Prometheus client libraries, with process_start_time_seconds taken
 * when the service started.
 */
#include "metrics/prometheus.h"

#include <dirent.h>
#include <inttypes.h>
#include <string.h>
#include <sys/resource.h>

#include "diag/diag.h"
#include "limits/tier.h"
#include "metrics/metrics.h"
#include "net/http.h"
#include "server.h"
#include "service/service.h"
#include "upstream/dispatch.h"
#include "util/buf.h"

/* Label values: escape backslash, double quote and newline. */
static void label_value(sb_buf *b, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            sb_buf_appendc(b, '\\'), sb_buf_appendc(b, *v);
        else if (*v == '\n')
            sb_buf_appends(b, "\\n");
        else
            sb_buf_appendc(b, *v);
    }
}

static void head(sb_buf *b, const char *name, const char *type, const char *help) {
    sb_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Entries of /proc/self/fd, less the one opendir holds while counting. */
static long open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

static void endpoint_label(sb_buf *b, int ep) {
    static const char *const labels[SB_EP_COUNT] = {"client", "server", "livetrace"};
    sb_buf_appendf(b, "endpoint=\"%s\"", labels[ep]);
}

/* The platform metrics' counters since start (metrics.c), the tier's gauges and the process. */
static void platform_metrics(sb_buf *b, sb_server *srv) {
    sb_metrics_totals t;
    sb_metrics_get_totals(srv, &t);
    head(b, "switchboard_connections_opened_total", "counter", "Connections opened, by endpoint.");
    for (int e = 0; e < SB_EP_COUNT; e++) {
        sb_buf_appends(b, "switchboard_connections_opened_total{");
        endpoint_label(b, e);
        sb_buf_appendf(b, "} %" PRIu64 "\n", t.opened[e]);
    }
    head(b, "switchboard_connections_closed_total", "counter",
         "Connections closed or refused, by endpoint and Azure close category.");
    for (int e = 0; e < SB_EP_COUNT; e++)
        for (int k = 0; k < SB_CC_COUNT; k++) {
            sb_buf_appends(b, "switchboard_connections_closed_total{");
            endpoint_label(b, e);
            sb_buf_appendf(b, ",category=\"%s\"} %" PRIu64 "\n", sb_close_category_name((sb_close_category)k),
                           t.closed[e][k]);
        }
    head(b, "switchboard_inbound_bytes_total", "counter", "Bytes received by the service (InboundTraffic).");
    sb_buf_appendf(b, "switchboard_inbound_bytes_total %" PRIu64 "\n", t.inbound_bytes);
    head(b, "switchboard_outbound_bytes_total", "counter",
         "Bytes of messages sent to clients (OutboundTraffic).");
    sb_buf_appendf(b, "switchboard_outbound_bytes_total %" PRIu64 "\n", t.outbound_bytes);
    head(b, "switchboard_messages_total", "counter",
         "Messages sent to clients in 2 KB units, pings excluded (MessageCount).");
    sb_buf_appendf(b, "switchboard_messages_total %" PRIu64 "\n", t.messages);
    head(b, "switchboard_operations_total", "counter",
         "Requests answered and connections closed, by result (SystemErrors and UserErrors are their "
         "shares).");
    sb_buf_appendf(b, "switchboard_operations_total{result=\"ok\"} %" PRIu64 "\n",
                   t.operations - t.user_errors - t.system_errors);
    sb_buf_appendf(b, "switchboard_operations_total{result=\"user_error\"} %" PRIu64 "\n", t.user_errors);
    sb_buf_appendf(b, "switchboard_operations_total{result=\"system_error\"} %" PRIu64 "\n", t.system_errors);
    head(b, "switchboard_connection_quota_utilization_ratio", "gauge",
         "Client and server connections relative to the tier's connection quota.");
    sb_buf_appendf(b, "switchboard_connection_quota_utilization_ratio %.6g\n",
                   sb_tier_quota_utilization(srv) / 100.0);
    head(b, "switchboard_connection_limit", "gauge",
         "Connections the tier allows (client and server together).");
    sb_buf_appendf(b, "switchboard_connection_limit %" PRIu64 "\n", sb_tier_connection_limit(&srv->cfg));
    head(b, "switchboard_daily_messages", "gauge",
         "Messages sent today (UTC) in 2 KB units: the Free tier's quota count.");
    sb_buf_appendf(b, "switchboard_daily_messages %" PRIu64 "\n", sb_metrics_day_messages(srv));
    uint64_t daily = sb_tier_daily_message_limit(&srv->cfg);
    if (daily) {
        head(b, "switchboard_daily_message_limit", "gauge",
             "Messages the Free tier allows per UTC day, in 2 KB units.");
        sb_buf_appendf(b, "switchboard_daily_message_limit %" PRIu64 "\n", daily);
    }

    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        head(b, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        sb_buf_appendf(b, "process_cpu_seconds_total %.6f\n",
                       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    }
    size_t rss;
    if (uv_resident_set_memory(&rss) == 0) {
        head(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        sb_buf_appendf(b, "process_resident_memory_bytes %zu\n", rss);
    }
    long fds = open_fds();
    if (fds >= 0) {
        head(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        sb_buf_appendf(b, "process_open_fds %ld\n", fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        head(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        sb_buf_appendf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    head(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    sb_buf_appendf(b, "process_start_time_seconds %.3f\n", sb__metrics_start_time(srv));
}

void sb_prometheus_handle(sb_conn *c, sb_http_request *req) {
    sb_server *srv = c->srv;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        sb_http_respond(c, 405, "text/plain", NULL, 0, "Allow: GET, HEAD\r\n");
        return;
    }
    sb_buf b;
    sb_buf_init(&b);

    head(&b, "switchboard_connection_count", "gauge", "Current connections by hub and endpoint (client, server).");
    sb_dict_iter it;
    sb_dict_iter_init(&it, &srv->router.hubs);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));) {
        sb_hub *h = e->value;
        sb_buf_appends(&b, "switchboard_connection_count{endpoint=\"client\",hub=\"");
        label_value(&b, h->name);
        sb_buf_appendf(&b, "\"} %zu\n", sb_dict_count(&h->clients));
        sb_buf_appends(&b, "switchboard_connection_count{endpoint=\"server\",hub=\"");
        label_value(&b, h->name);
        sb_buf_appendf(&b, "\"} %zu\n", sb_service_hub_server_count(h));
    }
    head(&b, "switchboard_diagnostic_clients", "gauge", "Connected diagnostic clients.");
    sb_buf_appendf(&b, "switchboard_diagnostic_clients %zu\n", srv->ndiagnostic_clients);

    sb_diag_stats st;
    sb_diag_get_stats(srv, &st);
    head(&b, "switchboard_log_records_emitted_total", "counter", "Resource and activity log records accepted.");
    sb_buf_appendf(&b, "switchboard_log_records_emitted_total %" PRIu64 "\n", st.emitted);
    head(&b, "switchboard_log_records_written_total", "counter", "Log record deliveries completed by the sinks.");
    sb_buf_appendf(&b, "switchboard_log_records_written_total %" PRIu64 "\n", st.written);
    head(&b, "switchboard_log_records_dropped_total", "counter",
         "Log records that could not be delivered, by reason (queue full, sink failed after retries).");
    sb_buf_appendf(&b, "switchboard_log_records_dropped_total{reason=\"queue\"} %" PRIu64 "\n", st.dropped_queue);
    sb_buf_appendf(&b, "switchboard_log_records_dropped_total{reason=\"sink\"} %" PRIu64 "\n", st.dropped_sink);
    head(&b, "switchboard_log_queue_depth", "gauge", "Log records waiting for the writer thread.");
    sb_buf_appendf(&b, "switchboard_log_queue_depth %" PRIu64 "\n", st.queue_depth);
    platform_metrics(&b, srv);

    sb_upstream_stats us;
    sb_upstream_get_stats(srv, &us);
    head(&b, "switchboard_upstream_requests_total", "counter",
         "Serverless upstream calls by event (connect, connected, disconnected, message) and final outcome.");
    for (int e = 0; e < SB_UPSTREAM_EV_COUNT; e++)
        for (int o = 0; o < SB_UPSTREAM_OUT_COUNT; o++)
            sb_buf_appendf(&b, "switchboard_upstream_requests_total{event=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
                           sb_upstream_event_label(e), sb_upstream_outcome_label(o), us.requests[e][o]);
    head(&b, "switchboard_upstream_retries_total", "counter", "Upstream call attempts repeated after a failure.");
    sb_buf_appendf(&b, "switchboard_upstream_retries_total %" PRIu64 "\n", us.retries);
    head(&b, "switchboard_upstream_requests_in_flight", "gauge", "Upstream calls running, queued or waiting to retry.");
    sb_buf_appendf(&b, "switchboard_upstream_requests_in_flight{state=\"active\"} %zu\n", us.active);
    sb_buf_appendf(&b, "switchboard_upstream_requests_in_flight{state=\"queued\"} %zu\n", us.queued);
    sb_buf_appendf(&b, "switchboard_upstream_requests_in_flight{state=\"retrying\"} %zu\n", us.retrying);

    sb_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
    sb_buf_free(&b);
}
