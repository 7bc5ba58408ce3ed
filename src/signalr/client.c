/*
 * client.c - the SignalR client endpoint; see client.h.
 *
 * Request flow:
 *   POST /client/negotiate?hub=H      auth -> new sb_client (NEGOTIATED) -> ids + transports
 *   GET  /client/?hub=H&id=T  (WS)    auth -> upgrade -> HANDSHAKE
 *   GET  /client/?hub=H&id=T  (SSE)   auth -> event stream -> HANDSHAKE
 *   GET  /client/?hub=H&id=T  (LP)    auth -> first poll 200 -> HANDSHAKE; later polls wait
 *   POST /client/?hub=H&id=T          auth -> hub-protocol bytes from an SSE/LP client
 *   DELETE /client/?hub=H&id=T        auth -> LP client ends
 * The hub handshake moves the client to CONNECTED and into the router's
 * indexes (sb_client_activate).  Every end of a client goes through
 * sb_client_close(), which is idempotent.
 *
 * Stateful reconnect is not offered: negotiate never answers
 * useStatefulReconnect, which the protocol defines as declining it, so clients
 * that ask for it proceed without.
 */
#include "signalr/client.h"

#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "diag/events.h"
#include "diag/names.h"
#include "limits/tier.h"
#include "metrics/metrics.h"
#include "net/http.h"
#include "net/ws.h"
#include "server.h"
#include "service/service.h"
#include "signalr/transport_http.h"
#include "upstream/dispatch.h"
#include "upstream/upstream.h"
#include "util/alloc.h"
#include "util/error.h"

#define MAX_HANDSHAKE_BYTES 4096

static const char not_connected_text[] = "Azure SignalR Service is not connected yet, please try again later.";

/* ---- responses -------------------------------------------------------------- */

static void respond_auth_failure(sb_conn *c, sb_auth_result *res, const char *hub) {
    if (res->status == 401) {
        sb_log_client_unauthorized(c->srv, c->peer_ip, hub, res->message.data);
        sb_metrics_connection_refused(c->srv, SB_EP_CLIENT, SB_CC_UNAUTHORIZED);
    }
    if (res->status == 401) {
        sb_http_respond(c, 401, "text/plain; charset=utf-8", res->message.data, res->message.len,
                        "WWW-Authenticate: Bearer\r\n");
    } else {
        sb_http_respond(c, res->status, "text/plain; charset=utf-8", res->message.data, res->message.len, NULL);
    }
}

/* Authenticate a client request for hub; *claims on success. */
static int authenticate(sb_conn *c, sb_http_request *req, const char *hub, int allow_query, json_t **claims) {
    sb_server *srv = c->srv;
    char *aud = sb_asprintf("%s/client/?hub=%s", srv->endpoint, hub);
    const char *valid[] = {aud};
    sb_auth_result res;
    int rc = sb_auth_request(srv, req, allow_query, valid, 1, 0, &res);
    sb_free(aud);
    if (rc != SB_OK) {
        respond_auth_failure(c, &res, hub);
        sb_auth_result_free(&res);
        return rc;
    }
    *claims = res.claims;
    res.claims = NULL;
    sb_auth_result_free(&res);
    return SB_OK;
}

static int claim_true(json_t *claims, const char *name) {
    const char *v = sb_jwt_claim_string(claims, name);
    return v && strcasecmp(v, "true") == 0;
}

/*
 * The claims a client keeps after negotiate (takes ownership of claims).  Default mode: the whole
 * token payload, which OpenConnection passes to the app server.  Serverless: a client's claims only
 * feed its upstream calls' X-ASRS-User-Claims header, so keep exactly the claims that header
 * carries (upstream.c decides which: each is tried alone) - the token's times and audience, which
 * differ per token, would make every client's set unique and unshareable (hub.h).
 */
static json_t *claims_to_keep(sb_server *srv, json_t *claims) {
    if (srv->mode == SB_MODE_DEFAULT || !claims)
        return claims;
    json_t *kept = json_object();
    sb_buf header;
    sb_buf_init(&header);
    const char *name;
    json_t *value;
    json_object_foreach(claims, name, value) {
        json_t *one = json_object();
        json_object_set(one, name, value);
        sb_buf_reset(&header);
        sb_upstream_claims_header(one, &header);
        if (header.len)
            json_object_set(kept, name, value);
        json_decref(one);
    }
    sb_buf_free(&header);
    json_decref(claims);
    if (json_object_size(kept))
        return kept;
    json_decref(kept);
    return NULL;
}

/* ---- negotiate -------------------------------------------------------------- */

static void negotiate(sb_conn *c, sb_http_request *req, sb_hub *hub, json_t *claims) {
    sb_server *srv = c->srv;
    if (req->method != HTTP_POST) {
        json_decref(claims);
        sb_http_respond(c, 405, "text/plain", NULL, 0, "Allow: POST\r\n");
        return;
    }
    sb_buf v;
    sb_buf_init(&v);
    int version = 0;
    if (sb_http_query_get(req->query, "negotiateVersion", 1, &v) > 0) {
        char *end;
        long n = strtol(v.data, &end, 10);
        if (!v.len || *end) {
            sb_buf_free(&v);
            json_decref(claims);
            json_t *e = json_pack("{s:s}", "error", "The client requested a non-integer protocol version.");
            sb_http_respond_json(c, 200, e);
            json_decref(e);
            return;
        }
        version = n >= 1 ? 1 : 0;
    }
    sb_buf_free(&v);
    if (srv->mode == SB_MODE_DEFAULT && !sb_service_hub_available(hub)) {
        json_decref(claims);
        sb_http_respond_text(c, 500, not_connected_text);
        return;
    }
    int diagnostic = claim_true(claims, "asrs.s.dc");
    if (!sb_tier_connection_allowed(srv) ||
        (srv->cfg.max_connections > 0 && srv->router.nclients >= (size_t)srv->cfg.max_connections)) {
        sb_metrics_connection_refused(srv, SB_EP_CLIENT, SB_CC_THROTTLED);
        sb_log_client_throttled(srv, c->peer_ip, hub->name, sb_jwt_user_id(claims), diagnostic,
                                SB_MSG_CONNECTION_COUNT_REACHES_LIMIT);
        json_decref(claims);
        sb_http_respond_text(c, 429, SB_MSG_CONNECTION_COUNT_REACHES_LIMIT);
        return;
    }
    if (diagnostic && srv->ndiagnostic_clients >= (size_t)srv->cfg.max_diagnostic_clients) {
        /* the new diagnostic client is refused; those already connected are untouched */
        sb_metrics_connection_refused(srv, SB_EP_CLIENT, SB_CC_THROTTLED);
        sb_log_client_throttled(srv, c->peer_ip, hub->name, sb_jwt_user_id(claims), 1,
                                "Diagnostic client count reaches limit");
        json_decref(claims);
        sb_http_respond_text(c, 429, "Too Many Requests: diagnostic client count reaches limit.");
        return;
    }
    /* the user id points into the whole claims: they live until the client has its copy */
    sb_client *cl =
        sb_client_new(&srv->router, hub, sb_jwt_user_id(claims), claims_to_keep(srv, json_incref(claims)), version);
    json_decref(claims);
    if (diagnostic) {
        cl->diagnostic = 1;
        srv->ndiagnostic_clients++;
    }
    snprintf(cl->caller_ip, sizeof cl->caller_ip, "%s", c->peer_ip);

    /* Written directly rather than built with jansson: this runs once per connection, the shape is fixed and
     * both ids are base64url (nothing to escape).  Keys in the order the ASP.NET Core server writes them. */
    char body[512]; /* the text below is 272 bytes plus two ids of SB_ID_LEN characters */
    _Static_assert(272 + 2 * SB_ID_LEN < sizeof body, "the negotiate body fits");
    int n = snprintf(body, sizeof body,
                     "{\"negotiateVersion\":%d,\"connectionId\":\"%s\"%s%s%s,\"availableTransports\":["
                     "{\"transport\":\"WebSockets\",\"transferFormats\":[\"Text\",\"Binary\"]},"
                     "{\"transport\":\"ServerSentEvents\",\"transferFormats\":[\"Text\"]},"
                     "{\"transport\":\"LongPolling\",\"transferFormats\":[\"Text\",\"Binary\"]}]}",
                     version, cl->id, version >= 1 ? ",\"connectionToken\":\"" : "", version >= 1 ? cl->token : "",
                     version >= 1 ? "\"" : "");
    sb_http_respond(c, 200, "application/json", body, (size_t)n, NULL);
}

/* ---- connect requests ------------------------------------------------------- */

static int wants_sse(const sb_http_request *req) {
    sb_slice a = sb_http_header_get(req, "Accept");
    return a.base && a.len >= 17 && memmem(a.base, a.len, "text/event-stream", 17) != NULL;
}

/* Remember what an app server is told about the client in OpenConnection: the connect query
 * (without the connection token and access token) and the request headers (without credentials). */
static void remember_request(sb_client *cl, const sb_http_request *req) {
    sb_buf q;
    sb_buf_init(&q);
    const char *p = req->query.base, *end = p + req->query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        size_t n = (size_t)(pe - p);
        if (!(n >= 3 && memcmp(p, "id=", 3) == 0) && !(n >= 13 && memcmp(p, "access_token=", 13) == 0) && n) {
            if (q.len)
                sb_buf_appendc(&q, '&');
            sb_buf_append(&q, p, n);
        }
        p = pe + 1;
    }
    sb_client_set_query(cl, q.data ? q.data : "", q.len);
    sb_buf_free(&q);
    if (cl->hub->router->srv->mode != SB_MODE_DEFAULT)
        return; /* only an app server's OpenConnection carries the headers: keep idle clients small */
    if (cl->headers)
        json_decref(cl->headers);
    cl->headers = json_object();
    size_t total = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const sb_http_header *h = &req->headers[i];
        if (sb_slice_ieq(h->name, "Authorization") || sb_slice_ieq(h->name, "Cookie") ||
            sb_slice_ieq(h->name, "Sec-WebSocket-Key") || h->name.len > 128)
            continue;
        total += h->name.len + h->value.len;
        if (total > 8192)
            break;
        char *name = sb_strndup(h->name.base, h->name.len);
        json_object_set_new(cl->headers, name, json_stringn(h->value.base, h->value.len));
        sb_free(name);
    }
}

static void connect_request(sb_conn *c, sb_http_request *req, sb_hub *hub) {
    sb_server *srv = c->srv;
    sb_buf id;
    sb_buf_init(&id);
    int n = sb_http_query_get(req->query, "id", 0, &id);
    if (n <= 0 || !id.len) {
        sb_buf_free(&id);
        sb_http_respond_text(c, 400, "Connection ID required");
        return;
    }
    sb_client *cl = sb_router_find_token(&srv->router, id.data);
    sb_buf_free(&id);
    if (!cl || cl->hub != hub) {
        sb_http_respond_text(c, 404, "No Connection with that ID");
        return;
    }
    int is_ws = req->upgrade || sb_http_header_get(req, "Upgrade").base;
    switch (req->method) {
    case HTTP_GET:
        if (is_ws) {
            if (cl->transport != SB_TRANSPORT_NONE) {
                sb_http_respond_text(c, 409, "Connection already has a transport.");
                return;
            }
            if (sb_ws_check_upgrade(c, req) != SB_OK)
                return;
            remember_request(cl, req);
            sb_ws_upgrade(c, req, (size_t)srv->cfg.max_message_bytes);
            c->client = cl;
            cl->conn = c;
            cl->transport = SB_TRANSPORT_WEBSOCKETS;
            cl->state = SB_CLIENT_HANDSHAKE;
            cl->state_ms = cl->last_recv_ms = sb_stamp(sb_now_ms(srv));
            snprintf(cl->caller_ip, sizeof cl->caller_ip, "%s", c->peer_ip);
            return;
        }
        if (wants_sse(req)) {
            if (cl->transport != SB_TRANSPORT_NONE) {
                sb_http_respond_text(c, 409, "Connection already has a transport.");
                return;
            }
            cl->transport = SB_TRANSPORT_SSE;
            cl->state = SB_CLIENT_HANDSHAKE;
            cl->state_ms = cl->last_recv_ms = sb_stamp(sb_now_ms(srv));
            snprintf(cl->caller_ip, sizeof cl->caller_ip, "%s", c->peer_ip);
            remember_request(cl, req);
            sb_sse_start(c, cl);
            return;
        }
        if (cl->transport != SB_TRANSPORT_NONE && cl->transport != SB_TRANSPORT_LONGPOLLING) {
            sb_http_respond_text(c, 409, "Connection already has a transport.");
            return;
        }
        snprintf(cl->caller_ip, sizeof cl->caller_ip, "%s", c->peer_ip);
        if (cl->transport == SB_TRANSPORT_NONE)
            remember_request(cl, req);
        sb_lp_poll(c, cl);
        return;
    case HTTP_POST:
        if (cl->transport == SB_TRANSPORT_WEBSOCKETS) {
            sb_http_respond_text(c, 405, "POST requests are not allowed for WebSocket connections.");
            return;
        }
        if (cl->transport == SB_TRANSPORT_NONE) {
            sb_http_respond_text(c, 400, "The connection has no transport yet.");
            return;
        }
        sb_client_ref(cl);
        if (req->body.len)
            sb_client_on_bytes(cl, req->body.data, req->body.len);
        sb_client_unref(cl);
        if (!c->closing)
            sb_http_respond(c, 200, "text/plain", NULL, 0, NULL);
        return;
    case HTTP_DELETE:
        if (cl->transport != SB_TRANSPORT_LONGPOLLING) {
            sb_http_respond_text(c, 400, "Cannot terminate this connection using the DELETE endpoint.");
            return;
        }
        sb_client_close(cl, SB_CLOSE_NORMAL, NULL, 0);
        sb_http_respond(c, 202, "text/plain", NULL, 0, NULL);
        return;
    default:
        sb_http_respond(c, 405, "text/plain", NULL, 0, "Allow: GET, POST, DELETE\r\n");
        return;
    }
}

void sb_client_endpoint_handle(sb_conn *c, sb_http_request *req) {
    sb_server *srv = c->srv;
    int is_negotiate = sb_slice_eq(req->path, "/client/negotiate") || sb_slice_eq(req->path, "/client/negotiate/");
    if (!is_negotiate && !sb_slice_eq(req->path, "/client/") && !sb_slice_eq(req->path, "/client")) {
        sb_http_respond_text(c, 404, "Not found.");
        return;
    }
    if (srv->stopping) {
        sb_http_respond_text(c, 503, SB_MSG_SERVICE_RELOADING);
        return;
    }
    sb_buf hubname;
    sb_buf_init(&hubname);
    int nhub = sb_http_query_get(req->query, "hub", 1, &hubname);
    if (nhub > 1) {
        sb_buf_free(&hubname);
        sb_http_respond_text(c, 400, "Multiple 'hub' query parameters are not allowed.");
        return;
    }
    if (nhub == 0 || !hubname.len) {
        sb_buf_free(&hubname);
        sb_http_respond_text(c, 400, "The 'hub' query parameter is required.");
        return;
    }
    if (!sb_hub_name_valid(hubname.data)) {
        sb_buf_free(&hubname);
        sb_http_respond_text(c, 400, "Invalid hub name.");
        return;
    }
    /* audience uses the hub as the client sent it; matching ignores case */
    int allow_query = !is_negotiate && (req->upgrade || wants_sse(req));
    json_t *claims = NULL;
    if (authenticate(c, req, hubname.data, allow_query, &claims) != SB_OK) {
        sb_buf_free(&hubname);
        return;
    }
    sb_hub *hub = sb_router_hub(&srv->router, hubname.data);
    sb_buf_free(&hubname);
    if (is_negotiate) {
        negotiate(c, req, hub, claims);
        return;
    }
    json_decref(claims);
    connect_request(c, req, hub);
}

/* ---- sending to a client ---------------------------------------------------- */

int sb_client_deliver(sb_client *cl, sb_msg *m) {
    sb_conn *c = cl->conn;
    int rc = SB_OK;
    size_t bytes = 0;
    int json = cl->protocol == SB_HUBPROTO_JSON;
    switch (cl->transport) {
    case SB_TRANSPORT_WEBSOCKETS:
    case SB_TRANSPORT_SSE: {
        if (!c)
            return SB_ECLOSED;
        sb_wire w = cl->transport == SB_TRANSPORT_SSE ? SB_WIRE_SSE_JSON : json ? SB_WIRE_WS_JSON : SB_WIRE_WS_MSGPACK;
        sb_shbuf *b = sb_msg_wire(m, w);
        if (!b)
            return SB_EINVAL;
        rc = sb_conn_write(c, b);
        bytes = b->len;
        break;
    }
    case SB_TRANSPORT_LONGPOLLING: {
        sb_shbuf *b = sb_msg_wire(m, json ? SB_WIRE_RAW_JSON : SB_WIRE_RAW_MSGPACK);
        if (!b)
            return SB_EINVAL;
        sb_outq *q = &cl->lp->queue;
        if (q->bytes + b->len > (size_t)cl->hub->router->srv->cfg.max_output_queue_bytes && q->bytes)
            return SB_ENOSPC;
        sb_outq_push(q, b);
        bytes = b->len;
        sb_lp_flush(cl);
        break;
    }
    case SB_TRANSPORT_NONE:
        return SB_ECLOSED;
    }
    if (rc == SB_OK) {
        cl->last_send_ms = sb_stamp(sb_now_ms(cl->hub->router->srv));
        sb_metrics_outbound(cl->hub->router->srv, bytes, m->is_ping);
        if (m->tracing_id)
            sb_log_message_to_client(cl, m);
    }
    return rc;
}

/* Send one already-framed hub message (handshake response, Close, Completion) to this client only. */
static void send_raw(sb_client *cl, const char *data, size_t len, int text) {
    sb_msg m;
    memset(&m, 0, sizeof m);
    sb_shbuf *b = sb_shbuf_from(data, len);
    m.payload[cl->protocol] = b;
    if (text && cl->protocol != SB_HUBPROTO_JSON) {
        /* the handshake response is JSON text whatever the protocol: frame it as its own payload */
        m.payload[SB_HUBPROTO_JSON] = sb_shbuf_ref(b);
    }
    sb_client_deliver(cl, &m);
    sb_msg_release(&m);
}

/* ---- receiving from a client ------------------------------------------------ */

static void handshake_fail_with(sb_client *cl, const char *err, sb_close_reason why) {
    sb_buf b;
    sb_buf_init(&b);
    sb_handshake_write_response(&b, err);
    sb_hub_protocol saved = cl->protocol;
    cl->protocol = SB_HUBPROTO_JSON; /* the error response is JSON text */
    send_raw(cl, b.data, b.len, 1);
    cl->protocol = saved;
    sb_buf_free(&b);
    sb_client_close(cl, why, NULL, 0);
}

static void handshake_fail(sb_client *cl, const char *err) { handshake_fail_with(cl, err, SB_CLOSE_HANDSHAKE_ERROR); }

/* Serverless: answer the handshake, enter the indexes, tell the upstream (connected event). */
static void handshake_complete(sb_client *cl) {
    sb_buf b;
    sb_buf_init(&b);
    sb_handshake_write_response(&b, NULL);
    send_raw(cl, b.data, b.len, 1);
    sb_buf_free(&b);
    cl->state = SB_CLIENT_CONNECTED;
    sb_client_activate(cl);
    sb_log_client_started(cl);
    sb_metrics_connection_opened(cl->hub->router->srv, SB_EP_CLIENT);
    sb_upstream_connected(cl);
}

/* The upstream answered a parked handshake (connect event).  The client is referenced for the call. */
static void on_upstream_connect(sb_client *cl, const sb_upstream_connect_result *r) {
    if (cl->state != SB_CLIENT_HANDSHAKE)
        return; /* closed while waiting (handshake timeout, transport gone, shutdown) */
    if (r->outcome == SB_UPSTREAM_CONNECT_REJECT) {
        handshake_fail(cl, r->error);
        return;
    }
    if (r->outcome == SB_UPSTREAM_CONNECT_FAILED) {
        handshake_fail_with(cl, r->error, SB_CLOSE_UPSTREAM_FAILED);
        return;
    }
    if (r->user_id)
        sb_client_set_user_id(cl, r->user_id);
    handshake_complete(cl);
    for (size_t i = 0; i < r->ngroups && cl->state == SB_CLIENT_CONNECTED; i++)
        sb_router_group_add(cl->hub, r->groups[i], cl->id);
    /* messages that arrived while the handshake waited */
    if (cl->state == SB_CLIENT_CONNECTED && cl->in)
        sb_client_on_bytes(cl, "", 0);
}

/* Returns bytes consumed, 0 if more are needed; closes the client on errors. */
static size_t on_handshake(sb_client *cl, const char *data, size_t len) {
    if (sb_upstream_connect_pending(cl))
        return 0; /* the upstream has not answered the connect event yet: hold what follows */
    sb_handshake_req hs;
    size_t used = 0;
    const char *err = NULL;
    int rc = sb_handshake_parse((const uint8_t *)data, len, MAX_HANDSHAKE_BYTES, &used, &hs, &err);
    if (rc == SB_EAGAIN)
        return 0;
    if (rc != SB_OK) {
        handshake_fail(cl, err ? err : "An unexpected error occurred during connection handshake.");
        return len;
    }
    char msg[256];
    if (strcmp(hs.protocol, "json") == 0) {
        cl->protocol = SB_HUBPROTO_JSON;
    } else if (strcmp(hs.protocol, "messagepack") == 0) {
        cl->protocol = SB_HUBPROTO_MSGPACK;
    } else {
        snprintf(msg, sizeof msg, "The protocol '%s' is not supported.", hs.protocol);
        handshake_fail(cl, msg);
        return len;
    }
    if (hs.version < 0 || hs.version > 2) {
        snprintf(msg, sizeof msg, "The server does not support version %d of the '%s' protocol.", hs.version,
                 hs.protocol);
        handshake_fail(cl, msg);
        return len;
    }
    if (cl->transport == SB_TRANSPORT_SSE && cl->protocol != SB_HUBPROTO_JSON) {
        snprintf(msg, sizeof msg,
                 "Cannot use the '%s' protocol on the current transport. The transport does not support 'Binary' "
                 "transfer format.",
                 hs.protocol);
        cl->protocol = SB_HUBPROTO_JSON;
        handshake_fail(cl, msg);
        return len;
    }
    if (cl->hub->router->srv->mode == SB_MODE_DEFAULT) {
        /* the app server answers the handshake itself (its response comes back as ConnectionData) */
        cl->state = SB_CLIENT_CONNECTED;
        sb_client_activate(cl);
        if (sb_service_open_client(cl, data, used) != SB_OK) {
            cl->state = SB_CLIENT_HANDSHAKE;
            handshake_fail(cl, not_connected_text);
            return len;
        }
        sb_client_forget_request(cl); /* the app server has them now */
        sb_log_client_started(cl);
        sb_metrics_connection_opened(cl->hub->router->srv, SB_EP_CLIENT);
        return used;
    }
    if (sb_upstream_connect(cl, on_upstream_connect) != SB_OK)
        handshake_complete(cl); /* no connect event configured */
    return used;
}

/* Hub message class names as the .NET protocol library spells them (messaging logs' MessageType). */
static const char *hub_message_type(int type) {
    switch (type) {
    case SB_HUBMSG_INVOCATION: return "InvocationMessage";
    case SB_HUBMSG_STREAM_ITEM: return "StreamItemMessage";
    case SB_HUBMSG_COMPLETION: return "CompletionMessage";
    case SB_HUBMSG_STREAM_INVOCATION: return "StreamInvocationMessage";
    case SB_HUBMSG_CANCEL_INVOCATION: return "CancelInvocationMessage";
    case SB_HUBMSG_PING: return "PingMessage";
    case SB_HUBMSG_CLOSE: return "CloseMessage";
    case SB_HUBMSG_ACK: return "AckMessage";
    case SB_HUBMSG_SEQUENCE: return "SequenceMessage";
    default: return "UnknownMessage";
    }
}

/* framed: the message with its framing, as the client sent it */
static void on_message(sb_client *cl, const sb_hub_msg *m, const char *framed, size_t framed_len) {
    if (cl->server) {
        /* default mode: everything goes to the app server; a Close also ends the client here */
        if (!sb_service_client_completion(cl, m, framed, framed_len)) {
            uint64_t tid = m->type == SB_HUBMSG_PING ? 0 : sb_log_message_from_client(cl, hub_message_type(m->type));
            sb_service_client_data(cl, framed, framed_len, tid);
        }
        if (m->type == SB_HUBMSG_CLOSE)
            sb_client_close(cl, SB_CLOSE_NORMAL, NULL, 0);
        return;
    }
    switch (m->type) {
    case SB_HUBMSG_PING:
    case SB_HUBMSG_ACK:
    case SB_HUBMSG_SEQUENCE:
        return;
    case SB_HUBMSG_CLOSE:
        sb_client_close(cl, SB_CLOSE_NORMAL, NULL, 0);
        return;
    case SB_HUBMSG_INVOCATION:
    case SB_HUBMSG_STREAM_INVOCATION:
        if (sb_upstream_invoke(cl, m) == SB_OK)
            return; /* the upstream answers (a blocking invocation's Completion comes back from it) */
        if (m->invocation_id) {
            /* No app server or upstream handles invocations here: answer so the caller never hangs. */
            char err[256];
            snprintf(err, sizeof err, "Invocation failed: no handler is available for hub '%s'.", cl->hub->name);
            sb_buf b;
            sb_buf_init(&b);
            sb_hubproto_write_completion(cl->protocol, &b, m->invocation_id, err, NULL);
            send_raw(cl, b.data, b.len, 0);
            sb_buf_free(&b);
        }
        return;
    default:
        return; /* completions, stream items, cancels and unknown types have no receiver here */
    }
}

/* The held remainder exists only while it holds bytes: an idle client keeps no buffer. */
static void drop_input(sb_client *cl) {
    if (!cl->in)
        return;
    sb_buf_free(cl->in);
    sb_free(cl->in);
    cl->in = NULL;
}

void sb_client_on_bytes(sb_client *cl, const char *data, size_t len) {
    if (cl->state == SB_CLIENT_CLOSED)
        return;
    sb_server *srv = cl->hub->router->srv;
    cl->last_recv_ms = sb_stamp(sb_now_ms(srv));
    /* work on the held remainder plus the new bytes */
    const char *p = data;
    size_t n = len;
    sb_buf *held = cl->in;
    if (held) {
        sb_buf_append(held, data, len);
        p = held->data;
        n = held->len;
    }
    size_t off = 0;
    sb_client_ref(cl);
    while (off < n && cl->state != SB_CLIENT_CLOSED) {
        if (cl->state == SB_CLIENT_HANDSHAKE) {
            size_t used = on_handshake(cl, p + off, n - off);
            if (!used)
                break;
            off += used;
            continue;
        }
        if (cl->state != SB_CLIENT_CONNECTED)
            break;
        sb_slice body;
        size_t used = 0;
        int rc = sb_hubproto_split(cl->protocol, (const uint8_t *)p + off, n - off, (size_t)srv->cfg.max_message_bytes,
                                   &body, &used);
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            sb_client_close(cl, SB_CLOSE_PROTOCOL_ERROR,
                            rc == SB_E2BIG ? "Connection closed with an error. The message exceeds the maximum size."
                                           : "Connection closed with an error. The message framing is invalid.",
                            0);
            break;
        }
        const char *framed = p + off;
        off += used;
        sb_hub_msg m;
        const char *err = NULL;
        rc = sb_hubproto_decode(cl->protocol, body, &m, &err);
        if (rc != SB_OK) {
            char text[300];
            snprintf(text, sizeof text, "Connection closed with an error. InvalidDataException: %s",
                     err ? err : "invalid message");
            sb_hub_msg_clear(&m);
            sb_client_close(cl, SB_CLOSE_PROTOCOL_ERROR, text, 0);
            break;
        }
        on_message(cl, &m, framed, used);
        sb_hub_msg_clear(&m);
    }
    if (cl->state != SB_CLIENT_CLOSED) {
        /* keep what is not a whole message yet */
        if (held) { /* nothing above replaces cl->in: only this function does, and it does not recurse */
            sb_buf_consume(held, off);
            if (!held->len)
                drop_input(cl);
        } else if (off < n) {
            if (n - off > (size_t)srv->cfg.max_message_bytes + 16) {
                sb_client_close(cl, SB_CLOSE_PROTOCOL_ERROR,
                                "Connection closed with an error. The message exceeds the maximum size.", 0);
            } else {
                if (!cl->in) {
                    cl->in = sb_malloc(sizeof(*cl->in));
                    sb_buf_init(cl->in);
                }
                sb_buf_append(cl->in, p + off, n - off);
            }
        }
    } else {
        drop_input(cl);
    }
    sb_client_unref(cl);
}

/* ---- closing ---------------------------------------------------------------- */

void sb_client_close(sb_client *cl, sb_close_reason why, const char *error, int allow_reconnect) {
    if (cl->state == SB_CLIENT_CLOSED)
        return;
    sb_client_ref(cl);
    int connected = cl->state == SB_CLIENT_CONNECTED;
    sb_conn *c = cl->conn;
    /* A Close message only when the transport can still carry one: not after the peer left, and
     * not after the socket was already given its final frame (a WebSocket protocol error). */
    int can_send = connected && why != SB_CLOSE_NORMAL && why != SB_CLOSE_TRANSPORT_LOST &&
                   (cl->transport == SB_TRANSPORT_LONGPOLLING || (c && !c->closing && !c->close_after_flush));
    if (can_send) {
        sb_buf b;
        sb_buf_init(&b);
        sb_hubproto_write_close(cl->protocol, &b, error, allow_reconnect);
        sb_msg m;
        memset(&m, 0, sizeof m);
        m.payload[cl->protocol] = sb_shbuf_from(b.data, b.len);
        sb_buf_free(&b);
        /* a Close message is never refused for backlog: push it past the limit */
        if (cl->transport == SB_TRANSPORT_LONGPOLLING) {
            sb_shbuf *raw = sb_msg_wire(&m, cl->protocol == SB_HUBPROTO_JSON ? SB_WIRE_RAW_JSON : SB_WIRE_RAW_MSGPACK);
            sb_outq_push(&cl->lp->queue, raw);
        } else if (c && !c->closing) {
            sb_wire w = cl->transport == SB_TRANSPORT_SSE       ? SB_WIRE_SSE_JSON
                        : cl->protocol == SB_HUBPROTO_JSON ? SB_WIRE_WS_JSON
                                                           : SB_WIRE_WS_MSGPACK;
            sb_outq_push(&c->out, sb_msg_wire(&m, w));
            sb_conn_write_copy(c, "", 0);
        }
        sb_msg_release(&m);
    }
    if (connected) {
        sb_log_client_closed(cl, why, error);
        sb_metrics_connection_closed(cl->hub->router->srv, SB_EP_CLIENT, sb_metrics_category_for(why));
    } else if (cl->state == SB_CLIENT_HANDSHAKE) { /* its transport came, its hub handshake never completed */
        sb_metrics_connection_refused(cl->hub->router->srv, SB_EP_CLIENT, sb_metrics_category_for(why));
    }
    if (connected && !cl->server) /* serverless: the upstream learns the client is gone */
        sb_upstream_disconnected(cl, why == SB_CLOSE_NORMAL ? NULL : error);
    if (cl->diagnostic)
        cl->hub->router->srv->ndiagnostic_clients--;
    if (cl->server) /* default mode: the app server learns the client is gone */
        sb_service_client_closed(cl, why == SB_CLOSE_NORMAL ? NULL : error);
    sb_client_unlink(cl); /* state CLOSED from here on */
    if (c && !c->closing) {
        switch (cl->transport) {
        case SB_TRANSPORT_WEBSOCKETS:
            c->client = NULL;
            cl->conn = NULL;
            sb_ws_close(c, SB_WS_CLOSE_NORMAL, "");
            break;
        case SB_TRANSPORT_SSE:
            c->client = NULL;
            cl->conn = NULL;
            sb_conn_close_after_flush(c);
            break;
        case SB_TRANSPORT_LONGPOLLING:
            sb_lp_end(cl);
            break;
        case SB_TRANSPORT_NONE:
            break;
        }
    } else if (c) {
        c->client = NULL;
        cl->conn = NULL;
    }
    sb_client_unref(cl);
}

void sb_client_transport_lost(sb_client *cl, sb_conn *c) {
    if (cl->conn == c)
        cl->conn = NULL;
    if (cl->state == SB_CLIENT_CLOSED)
        return;
    if (c->internal_error &&
        (cl->transport == SB_TRANSPORT_WEBSOCKETS || cl->transport == SB_TRANSPORT_SSE)) {
        sb_client_close(cl, SB_CLOSE_INTERNAL_ERROR, SB_MSG_INTERNAL_TRANSIENT_ERROR, 1);
        return;
    }
    switch (cl->transport) {
    case SB_TRANSPORT_WEBSOCKETS:
        sb_client_close(cl, c->peer_closed ? SB_CLOSE_NORMAL : SB_CLOSE_TRANSPORT_LOST, NULL, 0);
        break;
    case SB_TRANSPORT_SSE:
        /* closing the EventSource is how an SSE client leaves */
        sb_client_close(cl, SB_CLOSE_NORMAL, NULL, 0);
        break;
    case SB_TRANSPORT_LONGPOLLING:
        cl->lp->transport_lost_ms = sb_now_ms(c->srv);
        break;
    case SB_TRANSPORT_NONE:
        break;
    }
}

/* ---- timers ----------------------------------------------------------------- */

/* Between messages a client needs no output ring: give back the socket's (and the long-polling
 * queue's) once a sweep; the next message allocates one again (Redis' clientsCron does the same
 * with idle clients' buffers).  Input buffers need no sweep: they are freed when emptied. */
static void release_idle_buffers(sb_client *cl) {
    if (cl->conn && !cl->conn->out.count)
        sb_outq_clear(&cl->conn->out);
    if (cl->lp && !cl->lp->queue.count)
        sb_outq_clear(&cl->lp->queue);
}

void sb_client_sweep(sb_server *srv) {
    uint64_t now = sb_now_ms(srv);
    const sb_config *cfg = &srv->cfg;
    sb_msg ping;
    memset(&ping, 0, sizeof ping);
    int ping_ready = 0;
    sb_ihash_iter it;
    sb_ihash_iter_init(&it, &srv->router.tokens);
    for (sb_ihash_node *n; (n = sb_ihash_next(&it));) {
        sb_client *cl = sb_container_of(n, sb_client, token_link);
        switch (cl->state) {
        case SB_CLIENT_NEGOTIATED:
            if (sb_stamp_since(now, cl->state_ms) >= (uint32_t)cfg->negotiate_timeout_ms)
                sb_client_close(cl, SB_CLOSE_NEGOTIATE_TIMEOUT, NULL, 0);
            break;
        case SB_CLIENT_HANDSHAKE:
            if (sb_stamp_since(now, cl->state_ms) >= (uint32_t)cfg->handshake_timeout_ms)
                handshake_fail(cl, "Handshake was canceled.");
            else if (cl->transport == SB_TRANSPORT_LONGPOLLING && !cl->conn && cl->lp->transport_lost_ms &&
                     now - cl->lp->transport_lost_ms >= (uint64_t)cfg->disconnect_timeout_ms)
                sb_client_close(cl, SB_CLOSE_TRANSPORT_LOST, NULL, 0);
            break;
        case SB_CLIENT_CONNECTED:
            if (cl->transport == SB_TRANSPORT_LONGPOLLING) {
                sb_lp_check_deadline(cl, now);
                if (!cl->conn && cl->lp->transport_lost_ms &&
                    now - cl->lp->transport_lost_ms >= (uint64_t)cfg->disconnect_timeout_ms)
                    sb_client_close(cl, SB_CLOSE_TRANSPORT_LOST, NULL, 0);
                else
                    release_idle_buffers(cl);
                break;
            }
            if (sb_stamp_since(now, cl->last_recv_ms) >= (uint32_t)cfg->client_timeout_ms) {
                sb_client_close(cl, SB_CLOSE_PING_TIMEOUT, SB_MSG_PING_TIMEOUT, 1);
                break;
            }
            if (sb_stamp_since(now, cl->last_send_ms) >= (uint32_t)cfg->keep_alive_interval_ms) {
                if (!ping_ready) {
                    sb_buf b;
                    sb_buf_init(&b);
                    sb_hubproto_write_ping(SB_HUBPROTO_JSON, &b);
                    ping.payload[SB_HUBPROTO_JSON] = sb_shbuf_from(b.data, b.len);
                    sb_buf_reset(&b);
                    sb_hubproto_write_ping(SB_HUBPROTO_MSGPACK, &b);
                    ping.payload[SB_HUBPROTO_MSGPACK] = sb_shbuf_from(b.data, b.len);
                    sb_buf_free(&b);
                    ping.is_ping = 1;
                    ping_ready = 1;
                }
                if (sb_client_deliver(cl, &ping) == SB_ENOSPC) {
                    sb_client_close(cl, SB_CLOSE_SLOW_CLIENT,
                                    "Connection closed because it is too slow to receive messages.", 1);
                    break;
                }
            }
            release_idle_buffers(cl);
            break;
        case SB_CLIENT_CLOSED:
            if (cl->lingering && !cl->conn &&
                now - cl->lp->transport_lost_ms >= (uint64_t)cfg->disconnect_timeout_ms)
                sb_client_forget(cl);
            break;
        }
    }
    sb_msg_release(&ping);
}

void sb_client_close_all(sb_server *srv, sb_close_reason why, const char *error) {
    sb_ihash_iter it;
    sb_ihash_iter_init(&it, &srv->router.tokens);
    for (sb_ihash_node *n; (n = sb_ihash_next(&it));) {
        sb_client *cl = sb_container_of(n, sb_client, token_link);
        if (cl->state == SB_CLIENT_CLOSED)
            sb_client_forget(cl);
        else
            sb_client_close(cl, why, error, 1);
    }
}
