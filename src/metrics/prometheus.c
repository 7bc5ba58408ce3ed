/*
 * prometheus.c - the /metrics endpoint; see prometheus.h.
 *
 * Names follow Prometheus conventions (snake_case, _total for counters, base
 * units); labels carry the dimensions (hub, endpoint).  Text format 0.0.4.
 */
#include "metrics/prometheus.h"

#include <inttypes.h>
#include <string.h>

#include "diag/diag.h"
#include "net/http.h"
#include "server.h"
#include "service/service.h"
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

    sb_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
    sb_buf_free(&b);
}
