/*
 * negotiate.c - the app server's own HTTP endpoint, as an ASP.NET Core app with
 * AddAzureSignalR() exposes it: POST /{hub}/negotiate (also /negotiate?hub=h)
 * answers with a redirect to the service, {"url": "{Endpoint}/client/?hub=h",
 * "accessToken": <JWT for that URL>, "availableTransports": []}, and the client
 * follows it.  CORS is answered the way a browser client with credentials
 * needs it (echoed Origin, Allow-Credentials, preflight).
 *
 * The token: HS256 with the AccessKey, aud = the client URL, exp = now + 1 h,
 * nameid = ?user=..., and asrs.s.dc = "true" when the query has diag=yes (the
 * docs' DiagnosticClientFilter example).  While a hub has no ready server
 * connection, negotiate fails with the SDK's 500 text.
 *
 * Requests are parsed by net/http_parse (I/O-free); keep-alive and pipelining
 * work; every other path is 404.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "appserver.h"
#include "auth/jwt.h"
#include "net/http_parse.h"
#include "util/alloc.h"
#include "util/error.h"

#define MAX_HEADER_BYTES 16384
#define MAX_URL_BYTES 8192
#define MAX_BODY_BYTES 65536
#define NOT_CONNECTED_TEXT "Azure SignalR Service is not connected yet, please try again later."

typedef struct http_server {
    uv_tcp_t listener;
    sb_list conns; /* http_conn.node */
} http_server;

typedef struct http_conn {
    uv_tcp_t tcp;
    sb_app *app;
    sb_http_parser parser;
    sb_list node;
    int closing;
} http_conn;

typedef struct http_write {
    uv_write_t req;
    http_conn *conn;
    int close_after;
    sb_buf bytes;
} http_write;

static void on_conn_closed(uv_handle_t *h) {
    http_conn *c = h->data;
    sb_http_parser_free(&c->parser);
    sb_free(c);
}

static void conn_close(http_conn *c) {
    if (c->closing)
        return;
    c->closing = 1;
    sb_list_remove(&c->node);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status) {
    http_write *w = (http_write *)req;
    if (w->close_after || status < 0)
        conn_close(w->conn);
    sb_buf_free(&w->bytes);
    sb_free(w);
}

static void respond(http_conn *c, const sb_http_request *req, int status, const char *reason,
                    const char *type, const char *body, const char *extra, int keep_alive) {
    http_write *w = sb_calloc(1, sizeof *w);
    w->conn = c;
    w->close_after = !keep_alive;
    sb_buf_init(&w->bytes);
    size_t blen = body ? strlen(body) : 0;
    sb_buf_appendf(&w->bytes, "HTTP/1.1 %d %s\r\n", status, reason);
    if (type)
        sb_buf_appendf(&w->bytes, "Content-Type: %s\r\n", type);
    sb_buf_appendf(&w->bytes, "Content-Length: %zu\r\nCache-Control: no-cache\r\n", blen);
    sb_slice origin = req ? sb_http_header_get(req, "Origin") : (sb_slice){0};
    if (origin.base)
        sb_buf_appendf(&w->bytes,
                       "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
                       "Vary: Origin\r\n",
                       (int)origin.len, origin.base);
    if (extra)
        sb_buf_appends(&w->bytes, extra);
    sb_buf_appends(&w->bytes, keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    if (blen)
        sb_buf_append(&w->bytes, body, blen);
    uv_buf_t b = uv_buf_init(w->bytes.data, (unsigned)w->bytes.len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        sb_buf_free(&w->bytes);
        sb_free(w);
        conn_close(c);
    }
}

static char *client_token(sb_app *app, const char *audience, const char *user, int diagnostic) {
    time_t now = time(NULL);
    json_t *claims =
        json_pack("{s:s, s:I, s:I, s:I}", "aud", audience, "exp", (json_int_t)now + SB_APP_TOKEN_LIFETIME_S,
                  "iat", (json_int_t)now, "nbf", (json_int_t)now);
    if (user)
        json_object_set_new(claims, "nameid", json_string(user));
    if (diagnostic)
        json_object_set_new(claims, "asrs.s.dc", json_string("true"));
    char *tok = NULL;
    sb_jwt_sign("HS256", app->cs.access_key, strlen(app->cs.access_key), claims, &tok);
    json_decref(claims);
    return tok;
}

static void negotiate(http_conn *c, const sb_http_request *req, sb_app_hub *hub, int ka) {
    sb_app *app = c->app;
    if (req->method != HTTP_POST) {
        respond(c, req, 405, "Method Not Allowed", "text/plain", "Only POST is allowed.", "Allow: POST\r\n",
                ka);
        return;
    }
    if (!sb_app_hub_ready(hub)) {
        respond(c, req, 500, "Internal Server Error", "text/plain", NOT_CONNECTED_TEXT, NULL, ka);
        return;
    }
    sb_buf user, diag, enc;
    sb_buf_init(&user);
    sb_buf_init(&diag);
    sb_buf_init(&enc);
    int has_user =
        sb_http_query_get(req->query, "user", 0, &user) > 0 && user.len && !memchr(user.data, 0, user.len);
    int diagnostic = sb_http_query_get(req->query, "diag", 0, &diag) > 0 && strcmp(diag.data, "yes") == 0;
    sb_url_encode(hub->lname, strlen(hub->lname), &enc);
    char *url = sb_asprintf("%s/client/?hub=%s", app->cs.client_url, enc.data);
    char *tok = client_token(app, url, has_user ? user.data : NULL, diagnostic);
    json_t *body =
        json_pack("{s:s, s:s, s:[]}", "url", url, "accessToken", tok ? tok : "", "availableTransports");
    char *text = json_dumps(body, JSON_COMPACT);
    respond(c, req, 200, "OK", "application/json", text, NULL, ka);
    free(text);
    json_decref(body);
    sb_free(tok);
    sb_free(url);
    sb_buf_free(&user);
    sb_buf_free(&diag);
    sb_buf_free(&enc);
}

static void handle(http_conn *c, const sb_http_request *req) {
    sb_app *app = c->app;
    int ka = req->keep_alive;
    if (req->method == HTTP_OPTIONS) {
        sb_slice want = sb_http_header_get(req, "Access-Control-Request-Headers");
        char extra[1024];
        snprintf(extra, sizeof extra,
                 "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\nAccess-Control-Allow-Headers: %.*s\r\n"
                 "Access-Control-Max-Age: 600\r\n",
                 want.base && want.len < 700 ? (int)want.len : 63,
                 want.base && want.len < 700
                     ? want.base
                     : "X-SignalR-User-Agent, X-Requested-With, Authorization, Content-Type");
        respond(c, req, 204, "No Content", NULL, NULL, extra, ka);
        return;
    }
    sb_slice path = req->path;
    sb_app_hub *hub = NULL;
    if (sb_slice_eq(path, "/negotiate") || sb_slice_eq(path, "/negotiate/")) {
        sb_buf name;
        sb_buf_init(&name);
        if (sb_http_query_get(req->query, "hub", 1, &name) == 1)
            hub = sb_app_hub_find(app, name.data, name.len);
        sb_buf_free(&name);
    } else if (path.len > 11 && path.base[0] == '/' &&
               memcmp(path.base + path.len - 10, "/negotiate", 10) == 0) {
        hub = sb_app_hub_find(app, path.base + 1, path.len - 11);
    } else {
        respond(c, req, 404, "Not Found", "text/plain", "Not found.", NULL, ka);
        return;
    }
    if (!hub) {
        respond(c, req, 404, "Not Found", "text/plain", "No such hub.", NULL, ka);
        return;
    }
    negotiate(c, req, hub, ka);
}

static const char *reason_of(int status) {
    switch (status) {
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    default:
        return "Bad Request";
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char storage[65536]; /* consumed before the next read: one loop, one thread */
    buf->base = storage;
    buf->len = sizeof storage;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    http_conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    const char *p = buf->base;
    size_t n = (size_t)nread;
    while (n && !c->closing) {
        size_t used = 0;
        int rc = sb_http_parser_feed(&c->parser, p, n, &used);
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            int st = c->parser.status ? c->parser.status : 400;
            respond(c, NULL, st, reason_of(st), "text/plain",
                    c->parser.error ? c->parser.error : "Bad request.", NULL, 0);
            uv_read_stop(s);
            return;
        }
        p += used;
        n -= used;
        handle(c, &c->parser.req);
        if (!c->parser.req.keep_alive) {
            uv_read_stop(s);
            return;
        }
        sb_http_parser_reset(&c->parser);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    sb_app *app = server->data;
    http_server *hs = app->http;
    if (status < 0)
        return;
    http_conn *c = sb_calloc(1, sizeof *c);
    c->app = app;
    uv_tcp_init(app->loop, &c->tcp);
    c->tcp.data = c;
    sb_http_parser_init(&c->parser, MAX_HEADER_BYTES, MAX_URL_BYTES, MAX_BODY_BYTES);
    sb_list_insert_tail(&hs->conns, &c->node);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

static void on_listener_closed(uv_handle_t *h) {
    sb_free(h->data);
}

int sb_app_http_start(sb_app *app, const char *spec) {
    struct sockaddr_storage ss;
    const char *colon = strrchr(spec, ':');
    if (!colon) {
        fprintf(stderr, "appserver: --listen wants HOST:PORT, got '%s'\n", spec);
        return SB_EINVAL;
    }
    char host[256];
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) {
        fprintf(stderr, "appserver: --listen host too long\n");
        return SB_EINVAL;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    char *h = host;
    if (h[0] == '[' && hl > 1 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535 ||
        (uv_ip4_addr(h, (int)port, (struct sockaddr_in *)&ss) &&
         uv_ip6_addr(h, (int)port, (struct sockaddr_in6 *)&ss))) {
        fprintf(stderr, "appserver: invalid --listen address '%s'\n", spec);
        return SB_EINVAL;
    }
    http_server *hs = sb_calloc(1, sizeof *hs);
    sb_list_init(&hs->conns);
    uv_tcp_init(app->loop, &hs->listener);
    hs->listener.data = app;
    app->http = hs;
    int rc = uv_tcp_bind(&hs->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&hs->listener, 128, on_connection);
    if (rc < 0) {
        fprintf(stderr, "appserver: cannot listen on %s: %s\n", spec, uv_strerror(rc));
        hs->listener.data = hs;
        uv_close((uv_handle_t *)&hs->listener, on_listener_closed);
        app->http = NULL;
        return SB_EIO;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&hs->listener, (struct sockaddr *)&bound, &len);
    app->http_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                       : ((struct sockaddr_in *)&bound)->sin_port);
    return SB_OK;
}

void sb_app_http_stop(sb_app *app) {
    http_server *hs = app->http;
    if (!hs)
        return;
    app->http = NULL;
    while (!sb_list_empty(&hs->conns))
        conn_close(sb_container_of(hs->conns.next, http_conn, node));
    hs->listener.data = hs;
    uv_close((uv_handle_t *)&hs->listener, on_listener_closed);
}
