/*
 * http.c - HTTP/1.1 request loop, routing and responses; see http.h.
 *
 * Routing is by path prefix:
 *   OPTIONS *          CORS preflight
 *   /client/...        SignalR client endpoint (signalr/client.c)
 *   /server/...        app-server connections, default mode (service/service.c)
 *   /api/...           data-plane REST API (rest/rest_api.c)
 *   /subscriptions/... ARM-shaped management API: resource, diagnostic settings (rest/mgmt_api.c);
 *                      its metrics routes (.../providers/Microsoft.Insights/metric*, metrics:getBatch)
 *                      go to metrics/metrics_api.c
 *   /v1/workspaces/... Logs query API, KQL (rest/query_api.c)
 *   /metrics           Prometheus exposition (metrics/prometheus.c)
 *   /                  a one-line banner
 * Everything else is 404.
 */
#include "net/http.h"

#include <string.h>

#include "diag/diag.h"
#include "diag/events.h"
#include "metrics/metrics.h"
#include "metrics/metrics_api.h"
#include "metrics/prometheus.h"
#include "net/ws.h"
#include "rest/mgmt_api.h"
#include "rest/query_api.h"
#include "rest/rest_api.h"
#include "server.h"
#include "service/service.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/error.h"

const char *sb_http_reason(int status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void sb_http_log_response(sb_conn *c, int status) {
    if (!c->http || !c->busy || !sb_diag_should_log(c->srv, SB_LOGT_HTTP, 0))
        return;
    const sb_http_request *req = &c->http->req;
    char *path = sb_strndup(req->path.base, req->path.len);
    char *query = sb_strndup(req->query.base, req->query.len);
    double ms = (double)(uv_hrtime() - c->req_start_ns) / 1e6;
    sb_log_http_request(c->srv, req->method_name ? req->method_name : "?", path, query, status, ms, c->peer_ip);
    sb_free(path);
    sb_free(query);
}

static void write_head(sb_conn *c, int status, const char *content_type, long content_length, const char *extra) {
    sb_http_log_response(c, status);
    sb_metrics_operation(c->srv, status >= 500 ? 2 : status >= 400 ? 1 : 0); /* SystemErrors / UserErrors */
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appendf(&b, "HTTP/1.1 %d %s\r\n", status, sb_http_reason(status));
    if (content_type)
        sb_buf_appendf(&b, "Content-Type: %s\r\n", content_type);
    if (content_length >= 0)
        sb_buf_appendf(&b, "Content-Length: %ld\r\n", content_length);
    if (c->origin)
        sb_buf_appendf(&b, "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
                       c->origin);
    if (!c->resp_keep_alive)
        sb_buf_appends(&b, "Connection: close\r\n");
    if (extra)
        sb_buf_appends(&b, extra);
    sb_buf_appends(&b, "\r\n");
    sb_conn_write_copy(c, b.data, b.len);
    sb_buf_free(&b);
}

void sb_http_respond_head(sb_conn *c, int status, const char *content_type, const char *extra_headers) {
    write_head(c, status, content_type, -1, extra_headers);
}

void sb_http_respond(sb_conn *c, int status, const char *content_type, const void *body, size_t len,
                     const char *extra_headers) {
    if (c->closing)
        return;
    write_head(c, status, content_type, (long)len, extra_headers);
    if (len && !c->resp_head)
        sb_conn_write_copy(c, body, len);
    sb_http_request_done(c);
}

void sb_http_respond_text(sb_conn *c, int status, const char *text) {
    sb_http_respond(c, status, "text/plain; charset=utf-8", text, strlen(text), NULL);
}

void sb_http_respond_json(sb_conn *c, int status, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT);
    sb_http_respond(c, status, "application/json", s, s ? strlen(s) : 0, NULL);
    free(s);
}

static void parser_free(sb_conn *c) {
    if (!c->http)
        return;
    sb_http_parser_free(c->http);
    sb_free(c->http);
    c->http = NULL;
}

void sb_http_release_request(sb_conn *c) {
    parser_free(c);
    sb_free(c->origin);
    c->origin = NULL;
}

void sb_http_request_done(sb_conn *c) {
    if (c->closing)
        return;
    c->busy = 0;
    c->kind = SB_CONN_HTTP;
    sb_free(c->origin);
    c->origin = NULL;
    if (c->http) {
        if (c->in.len) /* a pipelined request has begun */
            sb_http_parser_reset(c->http);
        else
            parser_free(c);
    }
    if (!c->resp_keep_alive) {
        sb_conn_close_after_flush(c);
        return;
    }
    if (!c->dispatching && c->in.len)
        sb_http_on_data(c);
}

static void preflight(sb_conn *c, const sb_http_request *req) {
    sb_slice h = sb_http_header_get(req, "Access-Control-Request-Headers");
    sb_buf extra;
    sb_buf_init(&extra);
    sb_buf_appends(&extra, "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, HEAD, OPTIONS\r\n");
    if (h.base && h.len < 1024 && !memchr(h.base, '\r', h.len) && !memchr(h.base, '\n', h.len))
        sb_buf_appendf(&extra, "Access-Control-Allow-Headers: %.*s\r\n", (int)h.len, h.base);
    else
        sb_buf_appends(&extra, "Access-Control-Allow-Headers: X-SignalR-User-Agent, X-Requested-With, "
                               "Authorization, Content-Type\r\n");
    sb_buf_appends(&extra, "Access-Control-Max-Age: 86400\r\n");
    sb_http_respond(c, 204, NULL, NULL, 0, extra.data);
    sb_buf_free(&extra);
}

static int path_is(sb_slice path, const char *prefix) {
    size_t n = strlen(prefix);
    return path.len >= n && memcmp(path.base, prefix, n) == 0;
}

static void dispatch(sb_conn *c, sb_http_request *req) {
    if (req->method == HTTP_OPTIONS) {
        preflight(c, req);
    } else if (path_is(req->path, "/client/") || sb_slice_eq(req->path, "/client")) {
        sb_client_endpoint_handle(c, req);
    } else if (path_is(req->path, "/server/") || sb_slice_eq(req->path, "/server")) {
        sb_service_endpoint_handle(c, req);
    } else if (path_is(req->path, "/subscriptions/") || path_is(req->path, "//subscriptions/")) {
        /* the Azure SDKs join the endpoint and the resource id into "//subscriptions/..." */
        if (sb_metrics_api_match(req->path)) /* Azure Monitor's metrics API (metrics/metrics_api.c) */
            sb_metrics_api_handle(c, req);
        else
            sb_mgmt_handle(c, req);
    } else if (path_is(req->path, "/api/")) {
        if (req->body.len > (size_t)c->srv->cfg.max_rest_body_bytes)
            sb_http_respond_text(c, 413, "The request body is too large.");
        else
            sb_rest_handle(c, req);
    } else if (sb_query_api_matches(req->path)) {
        sb_query_api_handle(c, req);
    } else if (sb_slice_eq(req->path, "/metrics")) {
        sb_prometheus_handle(c, req);
    } else if (sb_slice_eq(req->path, "/")) {
        sb_http_respond_text(c, 200, "Switchboard: a SignalR-compatible real-time messaging service.\n");
    } else {
        sb_http_respond_text(c, 404, "Not found.");
    }
}

void sb_http_on_data(sb_conn *c) {
    c->dispatching = 1;
    while (!c->closing && !c->close_after_flush && c->kind == SB_CONN_HTTP && !c->busy && c->in.len) {
        if (!c->http) {
            const sb_config *cfg = &c->srv->cfg;
            c->http = sb_malloc(sizeof(*c->http));
            sb_http_parser_init(c->http, (size_t)cfg->max_header_bytes, (size_t)cfg->max_url_bytes,
                                (size_t)(cfg->max_rest_body_bytes > cfg->max_message_bytes ? cfg->max_rest_body_bytes
                                                                                           : cfg->max_message_bytes));
        }
        size_t used = 0;
        int rc = sb_http_parser_feed(c->http, c->in.data, c->in.len, &used);
        if (rc == SB_EAGAIN) {
            sb_buf_consume(&c->in, used);
            break;
        }
        if (rc != SB_OK) {
            int status = c->http->status ? c->http->status : 400;
            c->resp_keep_alive = 0;
            c->resp_head = 0;
            write_head(c, status, "text/plain; charset=utf-8", (long)strlen(c->http->error ? c->http->error : ""), NULL);
            if (c->http->error)
                sb_conn_write_copy(c, c->http->error, strlen(c->http->error));
            sb_conn_close_after_flush(c);
            break;
        }
        sb_buf_consume(&c->in, used);
        sb_http_request *req = &c->http->req;
        c->busy = 1;
        c->req_start_ns = uv_hrtime();
        c->resp_keep_alive = req->keep_alive && !c->srv->stopping;
        c->resp_head = req->method == HTTP_HEAD;
        sb_slice origin = sb_http_header_get(req, "Origin");
        sb_free(c->origin);
        c->origin = origin.base && origin.len < 512 && !memchr(origin.base, '\r', origin.len) &&
                            !memchr(origin.base, '\n', origin.len)
                        ? sb_strndup(origin.base, origin.len)
                        : NULL;
        dispatch(c, req);
        if (c->kind == SB_CONN_WS && !c->closing) {
            sb_http_log_response(c, 101);
            sb_http_release_request(c);
            c->busy = 0;
            if (c->in.len)
                sb_ws_on_data(c);
            break;
        }
    }
    c->dispatching = 0;
}
