/*
 * dispatch.c - client events to upstream calls and back; see dispatch.h.
 *
 * One request (up_req) per call: it copies everything it needs from the
 * client when the event happens (ids, hub, user, headers, body), so the
 * client may close or be freed while the call runs.  When the answer comes:
 *   connect       the client was referenced at the start (sb_client_ref) and
 *                 is handed to the caller's callback, which re-checks its
 *                 state; a parked client is found in `connecting` by token
 *   connected     the client is looked up again by token; a call that threw
 *                 (transport error, timeout, nothing sent) closes it with
 *                 InvokeUpstreamFailed and allowReconnect false, as Azure's
 *                 emulator does; a bad status is only logged
 *   messages      a blocking invocation's answer goes to the client, if it is
 *                 still connected, as its Completion
 *   disconnected  nothing to do but log a failure
 *
 * Sizes kept from an answer: 16 MB for a blocking invocation (Azure's limit),
 * 1 MB for connect, nothing for the others (their bodies are ignored).
 *
 * Settings persistence: one save at a time on the threadpool; a change made
 * while one runs is saved after it (only the newest), so the file always ends
 * at the last applied list.
 */
#include "upstream/dispatch.h"

#include <stdio.h>
#include <string.h>

#include "diag/events.h"
#include "server.h"
#include "signalr/client.h"
#include "upstream/http_multi.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

#define INVOCATION_MAX_RESPONSE ((size_t)16 << 20)
#define CONNECT_MAX_RESPONSE ((size_t)1 << 20)
#define REJECT_BODY_MAX 512
#define MAX_USER_ID_BYTES 1024
#define MAX_GROUP_BYTES 1024

typedef struct persist_job {
    uv_work_t req;
    struct sb_upstream *up;
    char *path;
    char *text;
    int rc;
} persist_job;

typedef struct sb_upstream {
    sb_server *srv;
    sb_http_multi *http; /* NULL once stopped */
    sb_upstream_settings settings;
    sb_dict connecting; /* token -> up_req of a parked handshake */
    char *path;         /* <data_dir>/upstream.json */
    int persist_running;
    char *persist_next; /* newest document waiting for the running save */
    uint64_t counts[SB_UPSTREAM_EV_COUNT][SB_UPSTREAM_OUT_COUNT];
    int curl_ready; /* curl_global_init done */
} sb_upstream;

typedef struct up_req {
    sb_http_call call;
    sb_upstream *up;
    sb_upstream_event_kind kind;
    int refused; /* submit's error (nothing was sent) */
    char token[SB_ID_LEN + 1];
    char connection_id[SB_ID_LEN + 1];
    char *hub, *user_id, *category, *event, *invocation_id;
    sb_transport transport;
    int diagnostic;
    char caller_ip[46];
    sb_client *client; /* connect: referenced until the answer */
    sb_upstream_connect_cb on_connect;
    sb_buf url;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
} up_req;

static sb_upstream *of(sb_server *srv) {
    return srv->upstream;
}

/* An event for cl goes out only in serverless mode, while running, when a template matches. */
static const sb_upstream_template *route(sb_client *cl, const char *category, const char *event) {
    sb_server *srv = cl->hub->router->srv;
    sb_upstream *up = of(srv);
    if (!up || !up->http || srv->mode != SB_MODE_SERVERLESS)
        return NULL;
    return sb_upstream_match(&up->settings, cl->hub->name, category, event,
                             (int)srv->cfg.upstream_connect_event);
}

/* ---- building a request ---------------------------------------------------------------------- */

/* Append one header line; libcurl copies it. */
static struct curl_slist *add_line(struct curl_slist *list, const char *line) {
    struct curl_slist *next = curl_slist_append(list, line);
    if (!next) {
        fprintf(stderr, "switchboard: upstream: out of memory\n");
        abort();
    }
    return next;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *name, const char *value) {
    sb_buf line;
    sb_buf_init(&line);
    sb_buf_appendf(&line, "%s: ", name);
    sb_upstream_header_value(value, &line);
    list = add_line(list, line.data);
    sb_buf_free(&line);
    return list;
}

static void req_free(up_req *r) {
    curl_slist_free_all(r->headers);
    sb_buf_free(&r->url);
    sb_buf_free(&r->call.response);
    sb_free(r->hub);
    sb_free(r->user_id);
    sb_free(r->category);
    sb_free(r->event);
    sb_free(r->invocation_id);
    sb_free(r->body);
    sb_free(r);
}

static void on_call_done(sb_http_call *call);

static up_req *req_new(sb_client *cl, sb_upstream_event_kind kind, const sb_upstream_template *t,
                       const char *category, const char *event, const char *content_type, const void *body,
                       size_t body_len) {
    sb_server *srv = cl->hub->router->srv;
    up_req *r = sb_calloc(1, sizeof *r);
    r->up = of(srv);
    r->kind = kind;
    memcpy(r->token, cl->token, sizeof r->token);
    memcpy(r->connection_id, cl->id, sizeof r->connection_id);
    r->hub = sb_strdup(cl->hub->name);
    r->user_id = cl->user_id ? sb_strdup(cl->user_id) : NULL;
    r->category = sb_strdup(category);
    r->event = sb_strdup(event);
    r->transport = cl->transport;
    r->diagnostic = cl->diagnostic;
    memcpy(r->caller_ip, cl->caller_ip, sizeof r->caller_ip);
    sb_buf_init(&r->url);
    sb_upstream_expand(t->url_template, cl->hub->name, category, event, &r->url);
    r->body = sb_malloc(body_len + 1);
    if (body_len)
        memcpy(r->body, body, body_len);
    r->body_len = body_len;

    sb_buf v;
    sb_buf_init(&v);
    struct curl_slist *h = NULL;
    h = add_header(h, "Content-Type", content_type);
    h = add_line(h, "Expect:"); /* no 100-continue round trip for larger bodies */
    h = add_header(h, SB_UPSTREAM_HEADER_CONNECTION_ID, cl->id);
    if (cl->user_id)
        h = add_header(h, SB_UPSTREAM_HEADER_USER_ID, cl->user_id);
    h = add_header(h, SB_UPSTREAM_HEADER_HUB, cl->hub->name);
    h = add_header(h, SB_UPSTREAM_HEADER_CATEGORY, category);
    h = add_header(h, SB_UPSTREAM_HEADER_EVENT, event);
    sb_upstream_signature((const char *const *)srv->access_keys, srv->naccess_keys, cl->id, &v);
    h = add_header(h, SB_UPSTREAM_HEADER_SIGNATURE, v.data ? v.data : "");
    sb_buf_reset(&v);
    if (cl->claims)
        sb_upstream_claims_header(cl->claims, &v);
    if (v.len)
        h = add_header(h, SB_UPSTREAM_HEADER_USER_CLAIMS, v.data);
    if (cl->query && *cl->query) {
        sb_buf_reset(&v);
        sb_buf_appendc(&v, '?');
        sb_buf_appends(&v, cl->query);
        h = add_header(h, SB_UPSTREAM_HEADER_CLIENT_QUERY, v.data);
    }
    sb_buf_free(&v);
    r->headers = h;

    r->call.url = r->url.data;
    r->call.headers = r->headers;
    r->call.body = r->body;
    r->call.body_len = r->body_len;
    r->call.timeout_ms = srv->cfg.upstream_timeout_ms;
    r->call.max_response =
        kind == SB_UPSTREAM_EV_CONNECT ? CONNECT_MAX_RESPONSE : 0; /* see sb_upstream_invoke */
    r->call.max_attempts = kind == SB_UPSTREAM_EV_CONNECTED || kind == SB_UPSTREAM_EV_DISCONNECTED
                               ? 1 + (int)srv->cfg.upstream_retries
                               : 1;
    r->call.on_done = on_call_done;
    r->call.data = r;
    return r;
}

/* ---- answers --------------------------------------------------------------------------------- */

/* Append "Invocation failed, error: <why>." without doubling a final period. */
static void error_text(sb_buf *out, const char *why) {
    size_t n = strlen(why);
    while (n && why[n - 1] == '.')
        n--;
    char *trimmed = sb_strndup(why, n);
    sb_buf_appendf(out, SB_UPSTREAM_FMT_ERROR, trimmed);
    sb_free(trimmed);
}

static int status_ok(long status) {
    return status == 200 || status == 204;
}

/* What happened, and the text a client gets for it ("" on success). */
static sb_upstream_outcome classify(const up_req *r, sb_buf *text) {
    if (r->refused == SB_ENOSPC) {
        error_text(text, "too many upstream calls are waiting");
        return SB_UPSTREAM_OUT_QUEUE_FULL;
    }
    if (r->refused) {
        sb_buf_appends(text, SB_UPSTREAM_TEXT_CANCELLED);
        return SB_UPSTREAM_OUT_CANCELLED;
    }
    const sb_http_call *c = &r->call;
    switch (c->outcome) {
    case SB_HTTP_RESPONSE:
        if (status_ok(c->status))
            return SB_UPSTREAM_OUT_SUCCESS;
        if (r->kind == SB_UPSTREAM_EV_CONNECT && (c->status == 401 || c->status == 403)) {
            sb_buf_appendf(text, SB_UPSTREAM_FMT_REJECTED, c->status);
            size_t n = c->response.len < REJECT_BODY_MAX ? c->response.len : REJECT_BODY_MAX;
            while (n && !sb_utf8_valid(c->response.data, n)) /* never cut a character in half */
                n--;
            if (n) {
                char *body = sb_strndup(c->response.data, n);
                sb_buf_appends(text, ": ");
                sb_upstream_header_value(body, text); /* one line of text */
                sb_free(body);
            }
            return SB_UPSTREAM_OUT_REJECTED;
        }
        sb_buf_appendf(text, SB_UPSTREAM_FMT_STATUS, c->status);
        return SB_UPSTREAM_OUT_HTTP_ERROR;
    case SB_HTTP_TIMEOUT:
        error_text(text, c->error);
        return SB_UPSTREAM_OUT_TIMEOUT;
    case SB_HTTP_UNREACHABLE:
        error_text(text, c->error);
        return SB_UPSTREAM_OUT_UNREACHABLE;
    case SB_HTTP_TOO_LARGE:
        sb_buf_appends(text, SB_UPSTREAM_TEXT_TOO_LARGE);
        return SB_UPSTREAM_OUT_TOO_LARGE;
    case SB_HTTP_CANCELLED:
        break;
    }
    sb_buf_appends(text, SB_UPSTREAM_TEXT_CANCELLED);
    return SB_UPSTREAM_OUT_CANCELLED;
}

static int group_name_ok(const char *g) {
    size_t n = strlen(g);
    if (!n || n > MAX_GROUP_BYTES)
        return 0;
    for (const char *p = g; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return 1;
    return 0;
}

/* Accepted connect: the optional body {"userId"?, "groups"?, "subprotocol"?}; anything that is not
 * such an object, and fields of the wrong type, are ignored.  subprotocol is accepted and ignored:
 * the WebSocket upgrade was answered before the hub handshake began. */
static void answer_connect_accept(up_req *r) {
    const sb_buf *body = &r->call.response;
    json_t *doc = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    json_t *uid = json_object_get(doc, "userId");
    json_t *groups = json_object_get(doc, "groups");
    size_t n = json_is_array(groups) ? json_array_size(groups) : 0;
    const char **names = n ? sb_calloc(n, sizeof *names) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *g = json_string_value(json_array_get(groups, i));
        if (g && group_name_ok(g) && strlen(g) == json_string_length(json_array_get(groups, i)))
            names[k++] = g;
    }
    const char *user = json_string_value(uid);
    if (user &&
        (!*user || json_string_length(uid) > MAX_USER_ID_BYTES || strlen(user) != json_string_length(uid)))
        user = NULL;
    sb_upstream_connect_result res = {SB_UPSTREAM_CONNECT_ACCEPT, NULL, user, names, k};
    r->on_connect(r->client, &res);
    sb_free(names);
    json_decref(doc);
}

/* A blocking invocation's Completion, if its client is still connected. */
static void answer_invocation(up_req *r, sb_upstream_outcome out, const char *text) {
    sb_server *srv = r->up->srv;
    sb_client *cl = sb_router_find_token(&srv->router, r->token);
    if (!cl || cl->state != SB_CLIENT_CONNECTED)
        return;
    sb_msg m;
    memset(&m, 0, sizeof m);
    if (out == SB_UPSTREAM_OUT_SUCCESS && r->call.status == 200 && r->call.response.len) {
        /* the upstream returned a whole framed hub message in the client's protocol: verbatim */
        m.payload[cl->protocol] = sb_shbuf_from(r->call.response.data, r->call.response.len);
    } else {
        sb_buf b;
        sb_buf_init(&b);
        sb_hubproto_write_completion(cl->protocol, &b, r->invocation_id,
                                     out == SB_UPSTREAM_OUT_SUCCESS ? NULL : text, NULL);
        m.payload[cl->protocol] = sb_shbuf_from(b.data, b.len);
        sb_buf_free(&b);
    }
    if (sb_client_deliver(cl, &m) == SB_ENOSPC)
        sb_client_close(cl, SB_CLOSE_SLOW_CLIENT,
                        "Connection closed because it is too slow to receive messages.", 1);
    sb_msg_release(&m);
}

/* The call is over (answered, failed, or never sent): count, log, and act on the client. */
static void settle(up_req *r) {
    sb_upstream *up = r->up;
    sb_server *srv = up->srv;
    sb_buf text;
    sb_buf_init(&text);
    sb_upstream_outcome out = classify(r, &text);
    up->counts[r->kind][out]++;
    if (out == SB_UPSTREAM_OUT_REJECTED)
        sb_log_client_unauthorized(srv, r->caller_ip[0] ? r->caller_ip : NULL, r->hub, text.data);
    else if (out != SB_UPSTREAM_OUT_SUCCESS)
        sb_log_upstream_failed(srv, r->hub, r->connection_id, r->user_id, r->transport, r->diagnostic,
                               r->caller_ip[0] ? r->caller_ip : NULL, r->category, r->event, text.data);
    switch (r->kind) {
    case SB_UPSTREAM_EV_CONNECT: {
        sb_dict_del(&up->connecting, r->token, SB_ID_LEN);
        if (out == SB_UPSTREAM_OUT_SUCCESS) {
            answer_connect_accept(r);
        } else {
            sb_upstream_connect_result res = {out == SB_UPSTREAM_OUT_REJECTED ? SB_UPSTREAM_CONNECT_REJECT
                                                                              : SB_UPSTREAM_CONNECT_FAILED,
                                              text.data, NULL, NULL, 0};
            r->on_connect(r->client, &res);
        }
        sb_client_unref(r->client);
        break;
    }
    case SB_UPSTREAM_EV_CONNECTED:
        /* the emulator closes the client when the call throws; a bad status is only logged */
        if (out == SB_UPSTREAM_OUT_TIMEOUT || out == SB_UPSTREAM_OUT_UNREACHABLE ||
            out == SB_UPSTREAM_OUT_QUEUE_FULL) {
            sb_client *cl = sb_router_find_token(&srv->router, r->token);
            if (cl && cl->state == SB_CLIENT_CONNECTED)
                sb_client_close(cl, SB_CLOSE_UPSTREAM_FAILED, text.data, 0);
        }
        break;
    case SB_UPSTREAM_EV_MESSAGE:
        if (r->invocation_id)
            answer_invocation(r, out, text.data);
        break;
    case SB_UPSTREAM_EV_DISCONNECTED:
    case SB_UPSTREAM_EV_COUNT:
        break;
    }
    sb_buf_free(&text);
}

static void on_call_done(sb_http_call *call) {
    up_req *r = call->data;
    settle(r);
    req_free(r);
}

/* Hand the request to the HTTP client; a refusal settles it at once. */
static void submit(up_req *r) {
    int rc = sb_http_multi_submit(r->up->http, &r->call);
    if (rc == SB_OK)
        return;
    r->refused = rc == SB_ENOSPC ? SB_ENOSPC : SB_ECANCELED;
    settle(r);
    req_free(r);
}

/* ---- events ---------------------------------------------------------------------------------- */

int sb_upstream_connect(sb_client *cl, sb_upstream_connect_cb cb) {
    const sb_upstream_template *t = route(cl, SB_UPSTREAM_CATEGORY_CONNECTIONS, SB_UPSTREAM_EVENT_CONNECT);
    if (!t)
        return SB_ENOENT;
    up_req *r = req_new(cl, SB_UPSTREAM_EV_CONNECT, t, SB_UPSTREAM_CATEGORY_CONNECTIONS,
                        SB_UPSTREAM_EVENT_CONNECT, "application/json", "{}", 2);
    sb_client_ref(cl);
    r->client = cl;
    r->on_connect = cb;
    sb_dict_set(&r->up->connecting, r->token, SB_ID_LEN, r);
    submit(r);
    return SB_OK;
}

int sb_upstream_connect_pending(const sb_client *cl) {
    sb_upstream *up = of(cl->hub->router->srv);
    return up && sb_dict_get(&up->connecting, cl->token, SB_ID_LEN) != NULL;
}

void sb_upstream_connected(sb_client *cl) {
    const sb_upstream_template *t = route(cl, SB_UPSTREAM_CATEGORY_CONNECTIONS, SB_UPSTREAM_EVENT_CONNECTED);
    if (!t)
        return;
    static const char body[] = "{\"type\":10}";
    submit(req_new(cl, SB_UPSTREAM_EV_CONNECTED, t, SB_UPSTREAM_CATEGORY_CONNECTIONS,
                   SB_UPSTREAM_EVENT_CONNECTED, "application/json", body, sizeof body - 1));
}

void sb_upstream_disconnected(sb_client *cl, const char *error) {
    const sb_upstream_template *t =
        route(cl, SB_UPSTREAM_CATEGORY_CONNECTIONS, SB_UPSTREAM_EVENT_DISCONNECTED);
    if (!t)
        return;
    json_t *doc = json_pack("{s:i}", "type", 11);
    if (error && *error)
        json_object_set_new(doc, "error", json_string(error));
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    submit(req_new(cl, SB_UPSTREAM_EV_DISCONNECTED, t, SB_UPSTREAM_CATEGORY_CONNECTIONS,
                   SB_UPSTREAM_EVENT_DISCONNECTED, "application/json", body ? body : "{\"type\":11}",
                   body ? strlen(body) : 11));
    free(body);
}

int sb_upstream_invoke(sb_client *cl, const sb_hub_msg *m) {
    if (m->type != SB_HUBMSG_INVOCATION || !m->target)
        return SB_ENOENT;
    const sb_upstream_template *t = route(cl, SB_UPSTREAM_CATEGORY_MESSAGES, m->target);
    if (!t)
        return SB_ENOENT;
    const char *type = cl->protocol == SB_HUBPROTO_MSGPACK ? "application/x-msgpack" : "application/json";
    up_req *r = req_new(cl, SB_UPSTREAM_EV_MESSAGE, t, SB_UPSTREAM_CATEGORY_MESSAGES, m->target, type,
                        m->raw.base, m->raw.len);
    if (m->invocation_id) {
        r->invocation_id = sb_strdup(m->invocation_id);
        r->call.max_response = INVOCATION_MAX_RESPONSE;
    }
    submit(r);
    return SB_OK;
}

/* ---- settings -------------------------------------------------------------------------------- */

static void start_persist(sb_upstream *up, char *text);

static void persist_work(uv_work_t *req) {
    persist_job *job = req->data;
    job->rc = sb_upstream_settings_save_text(job->path, job->text);
}

static void persist_done(uv_work_t *req, int status) {
    persist_job *job = req->data;
    sb_upstream *up = job->up;
    if (job->rc != SB_OK)
        fprintf(stderr, "switchboard: upstream: cannot save settings to %s: %s\n", job->path,
                sb_strerror(job->rc));
    free(job->text);
    sb_free(job->path);
    sb_free(job);
    up->persist_running = 0;
    if (up->persist_next) {
        char *next = up->persist_next;
        up->persist_next = NULL;
        start_persist(up, next);
    }
}

static void start_persist(sb_upstream *up, char *text) {
    persist_job *job = sb_calloc(1, sizeof *job);
    job->req.data = job;
    job->up = up;
    job->path = sb_strdup(up->path);
    job->text = text;
    up->persist_running = 1;
    if (uv_queue_work(up->srv->loop, &job->req, persist_work, persist_done) != 0) {
        fprintf(stderr, "switchboard: upstream: cannot save settings to %s: no worker\n", up->path);
        free(text);
        sb_free(job->path);
        sb_free(job);
        up->persist_running = 0;
    }
}

const sb_upstream_settings *sb_upstream_current(sb_server *srv) {
    static const sb_upstream_settings none = {NULL, 0};
    return of(srv) ? &of(srv)->settings : &none;
}

void sb_upstream_apply(sb_server *srv, const sb_upstream_settings *s) {
    sb_upstream *up = of(srv);
    if (!up)
        return;
    sb_upstream_settings_free(&up->settings);
    sb_upstream_settings_copy(&up->settings, s);
    json_t *doc = sb_upstream_settings_to_json(&up->settings);
    char *text = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    if (up->persist_running) {
        free(up->persist_next);
        up->persist_next = text;
    } else {
        start_persist(up, text);
    }
}

/* ---- lifecycle and counters ------------------------------------------------------------------ */

int sb_upstream_start(sb_server *srv) {
    if (srv->upstream)
        return SB_OK;
    sb_upstream *up = sb_calloc(1, sizeof *up);
    up->srv = srv;
    up->path = sb_asprintf("%s/upstream.json", srv->cfg.data_dir);
    sb_dict_init(&up->connecting);
    char err[768];
    int rc = sb_upstream_settings_load(&up->settings, up->path, err, sizeof err);
    if (rc == SB_ENOENT)
        rc = sb_upstream_settings_single(&up->settings, srv->cfg.upstream_url_template, err, sizeof err);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: upstream settings: %s\n", err);
        sb_upstream_settings_free(&up->settings);
        sb_free(up->path);
        sb_free(up);
        return rc;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "switchboard: upstream: libcurl cannot start\n");
        sb_upstream_settings_free(&up->settings);
        sb_free(up->path);
        sb_free(up);
        return SB_EIO;
    }
    up->curl_ready = 1;
    up->http = sb_http_multi_new(srv->loop, (size_t)srv->cfg.upstream_max_concurrency,
                                 (size_t)srv->cfg.upstream_max_queue);
    srv->upstream = up;
    return SB_OK;
}

size_t sb_upstream_pending(sb_server *srv) {
    sb_upstream *up = of(srv);
    if (!up)
        return 0;
    size_t n = (size_t)up->persist_running;
    if (up->http)
        n += sb_http_multi_active(up->http) + sb_http_multi_queued(up->http) +
             sb_http_multi_retrying(up->http);
    return n;
}

void sb_upstream_stop(sb_server *srv) {
    sb_upstream *up = of(srv);
    if (!up || !up->http)
        return;
    sb_http_multi *http = up->http;
    up->http = NULL; /* events from here on are not sent; the cancellations below still settle */
    sb_http_multi_close(http);
}

void sb_upstream_free(sb_server *srv) {
    sb_upstream *up = of(srv);
    if (!up)
        return;
    sb_upstream_stop(srv);
    sb_upstream_settings_free(&up->settings);
    sb_dict_free(&up->connecting);
    free(up->persist_next);
    sb_free(up->path);
    if (up->curl_ready)
        curl_global_cleanup();
    sb_free(up);
    srv->upstream = NULL;
}

void sb_upstream_get_stats(sb_server *srv, sb_upstream_stats *out) {
    memset(out, 0, sizeof *out);
    sb_upstream *up = of(srv);
    if (!up)
        return;
    memcpy(out->requests, up->counts, sizeof out->requests);
    if (up->http) {
        out->retries = sb_http_multi_retries(up->http);
        out->active = sb_http_multi_active(up->http);
        out->queued = sb_http_multi_queued(up->http);
        out->retrying = sb_http_multi_retrying(up->http);
    }
}

const char *sb_upstream_event_label(sb_upstream_event_kind e) {
    static const char *const names[] = {"connect", "connected", "disconnected", "message"};
    return (unsigned)e < SB_UPSTREAM_EV_COUNT ? names[e] : "unknown";
}

const char *sb_upstream_outcome_label(sb_upstream_outcome o) {
    static const char *const names[] = {"success",     "rejected",  "http_error", "timeout",
                                        "unreachable", "too_large", "queue_full", "cancelled"};
    return (unsigned)o < SB_UPSTREAM_OUT_COUNT ? names[o] : "unknown";
}
