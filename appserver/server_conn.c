/*
 * server_conn.c - one server connection of a hub, as the SDK's
 * ServiceConnection runs it: WebSocket to {Endpoint}/server/?hub=h&cid=<uuid>
 * with a bearer token and X-ASRS-Server-Id, the service-protocol handshake,
 * keep-alive pings, liveness and handshake timeouts, reconnects with backoff
 * (1, 2, 4 ... 60 s), and the dispatch of every message the service sends.
 *
 * The WebSocket is a byte stream of service-protocol frames (the SDK ignores
 * WebSocket message boundaries), so bytes accumulate in sc->in until a whole
 * frame is there.  A frame the codec rejects closes the connection, which then
 * reconnects: bad data from the service never takes the process down.
 *
 * State: IDLE -> CONNECTING -> HANDSHAKING -> READY, back to IDLE (with a
 * retry time) whenever the WebSocket ends; STOPPED once the app stops.  All
 * timing is driven by the app's tick (sb_app_sconn_tick), not per-connection
 * timers, so stopping needs to close nothing here but the WebSocket.
 *
 * Not here: what client connections and hub methods do (client_conn.c,
 * hub_methods.c), the tracing of data messages (outbound.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "appserver.h"
#include "auth/jwt.h"
#include "net/http_parse.h"
#include "util/alloc.h"
#include "util/error.h"

#define USER_AGENT "Microsoft.Azure.SignalR/1.0.0 (switchboard-appserver; Linux)"

static void on_open(sb_wsc *ws, void *user);
static void on_message(sb_wsc *ws, void *user, const uint8_t *data, size_t len);
static void on_closed(sb_wsc *ws, void *user, const char *reason);
static const sb_wsc_handler handler = {on_open, on_message, on_closed};

static sb_app *app_of(const sb_app_sconn *sc) {
    return sc->hub->app;
}

void sb_app_sconn_init(sb_app_sconn *sc, sb_app_hub *hub, int index) {
    memset(sc, 0, sizeof *sc);
    sc->hub = hub;
    sc->index = index;
    sc->state = SB_APP_SCONN_IDLE;
    sb_buf_init(&sc->in);
}

void sb_app_sconn_free(sb_app_sconn *sc) {
    sb_buf_free(&sc->in);
}

static void new_uuid(char out[37]) {
    uint8_t r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        abort(); /* the kernel's CSPRNG is not optional */
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

static char *server_token(sb_app *app, const char *audience) {
    time_t now = time(NULL);
    json_t *claims = json_pack("{s:s, s:I, s:I, s:I, s:s}", "aud", audience, "exp",
                               (json_int_t)now + SB_APP_TOKEN_LIFETIME_S, "iat", (json_int_t)now, "nbf",
                               (json_int_t)now, "nameid", app->server_id);
    char *tok = NULL;
    sb_jwt_sign("HS256", app->cs.access_key, strlen(app->cs.access_key), claims, &tok);
    json_decref(claims);
    return tok;
}

static void start_attempt(sb_app_sconn *sc, uint64_t now) {
    sb_app *app = app_of(sc);
    new_uuid(sc->cid);
    sb_buf hub, target, headers;
    sb_buf_init(&hub);
    sb_buf_init(&target);
    sb_buf_init(&headers);
    sb_url_encode(sc->hub->lname, strlen(sc->hub->lname), &hub);
    sb_buf_appendf(&target, "%s/server/?hub=%s&cid=%s", app->cs.server.path, hub.data, sc->cid);
    char *aud = sb_asprintf("%s/server/?hub=%s", app->cs.server.url, hub.data);
    char *tok = server_token(app, aud);
    sb_buf_appendf(&headers,
                   "Authorization: Bearer %s\r\nX-ASRS-Server-Id: %s\r\nAsrs-User-Agent: %s\r\n"
                   "X-Requested-With: XMLHttpRequest\r\n",
                   tok ? tok : "", app->server_id, USER_AGENT);
    sb_wsc_request req = {
        .addr = (const struct sockaddr *)&app->service_addr,
        .host_header = app->host_header,
        .target = target.data,
        .extra_headers = headers.data,
        .max_message = SB_APP_MAX_SERVICE_MESSAGE,
    };
    sc->state = SB_APP_SCONN_CONNECTING;
    sc->started_ms = now;
    sc->unusable = 0;
    sc->finack = 0;
    sc->ws = sb_wsc_connect(app->loop, &req, &handler, sc);
    sb_free(tok);
    sb_free(aud);
    sb_buf_free(&hub);
    sb_buf_free(&target);
    sb_buf_free(&headers);
}

int sb_app_sconn_send(sb_app_sconn *sc, const sb_svc_msg *m, sb_wsc_written_cb cb, void *arg) {
    if (!sc->ws)
        return SB_ECLOSED;
    sb_buf b;
    sb_buf_init(&b);
    sb_svc_encode(m, &b);
    int rc = sb_wsc_send(sc->ws, SB_WS_OP_BINARY, b.data, b.len, cb, arg);
    sb_buf_free(&b);
    return rc;
}

static void send_ping(sb_app_sconn *sc, const char *const *kv, size_t n) {
    sb_svc_msg m;
    sb_svc_ping_build(&m, kv, n);
    sb_app_sconn_send(sc, &m, NULL, NULL);
    sb_svc_msg_clear(&m);
}

static void send_keepalive(sb_app_sconn *sc, uint64_t now) {
    char in_hub[24], on_conn[24];
    snprintf(in_hub, sizeof in_hub, "%zu", sb_dict_count(&sc->hub->clients));
    snprintf(on_conn, sizeof on_conn, "%zu", sc->nclients);
    const char *kv[] = {SB_SVC_PING_CLIENT_IN_HUB, in_hub, SB_SVC_PING_CLIENT, on_conn};
    send_ping(sc, kv, 4);
    sc->last_ping_ms = now;
}

int sb_app_sconn_usable(const sb_app_sconn *sc) {
    return sc->state == SB_APP_SCONN_READY && sc->ws && sb_wsc_is_open(sc->ws) && !sc->unusable;
}

sb_app_sconn *sb_app_hub_pick(sb_app_hub *hub, sb_app_sconn *prefer, sb_app_sconn *avoid) {
    if (prefer && prefer != avoid && sb_app_sconn_usable(prefer))
        return prefer;
    for (size_t i = 0; i < hub->nconns; i++) {
        size_t k = (hub->rr + i) % hub->nconns;
        sb_app_sconn *c = &hub->conns[k];
        if (c != avoid && sb_app_sconn_usable(c)) {
            hub->rr = (k + 1) % hub->nconns;
            return c;
        }
    }
    return avoid && sb_app_sconn_usable(avoid) ? avoid : NULL;
}

int sb_app_hub_ready(const sb_app_hub *hub) {
    for (size_t i = 0; i < hub->nconns; i++)
        if (sb_app_sconn_usable(&hub->conns[i]))
            return 1;
    return 0;
}

/* ---- what the service sends ------------------------------------------------------ */

static void fail_conn(sb_app_sconn *sc, const char *why) {
    fprintf(stderr, "appserver: hub %s connection %s: %s\n", sc->hub->name, sc->cid, why);
    if (sc->ws)
        sb_wsc_close(sc->ws, SB_WS_CLOSE_PROTOCOL_ERROR, why);
}

static void on_ping(sb_app_sconn *sc, const sb_svc_msg *m) {
    sb_app_hub *hub = sc->hub;
    const char *v;
    if (!m->strings.n)
        return; /* plain keep-alive */
    /* the SDK's else-if chain: status, servers, then the rest */
    if (sb_svc_ping_get(m, SB_SVC_PING_STATUS, NULL) || sb_svc_ping_get(m, SB_SVC_PING_SERVERS, NULL))
        return;
    if (sb_svc_ping_get(m, SB_SVC_PING_MESSAGING_LOGS, &v)) {
        hub->message_log = strcmp(v, SB_SVC_PING_MESSAGING_LOGS_ON) == 0;
    } else if (sb_svc_ping_get(m, SB_SVC_PING_OFFLINE, &v)) {
        sb_app_log(hub->app, "Received instance offline service ping: %s", v);
        sb_app_clients_offline(hub, v);
    } else if (sb_svc_ping_get(m, SB_SVC_PING_ECHO, NULL)) {
        send_ping(sc, (const char *const *)m->strings.v, m->strings.n);
    } else if (sb_svc_ping_get(m, SB_SVC_PING_SHUTDOWN, &v)) {
        if (strcmp(v, SB_SVC_PING_SHUTDOWN_FIN_ACK) == 0)
            sc->finack = 1;
    }
}

static const char *event_object_name(int t) {
    static const char *const names[] = {"ServiceInstance", "Connection", "User", "Group", "ServerConnection"};
    return t >= 0 && t < 5 ? names[t] : "Unknown";
}

static const char *event_kind_name(int k) {
    static const char *const names[] = {"Reloading", "Invalid", "NotExisted", "BufferFull"};
    return k >= 0 && k < 4 ? names[k] : "Unknown";
}

static void on_handshake_response(sb_app_sconn *sc, const sb_svc_msg *m) {
    sb_app *app = app_of(sc);
    if (m->type != SB_SVC_HANDSHAKE_RESPONSE) {
        fail_conn(sc, "the service sent something other than a handshake response first");
        return;
    }
    if (m->error && *m->error) {
        char why[300];
        snprintf(why, sizeof why, "handshake refused: %s", m->error);
        fail_conn(sc, why);
        return;
    }
    sc->state = SB_APP_SCONN_READY;
    sc->attempts = 0;
    sc->last_ping_ms = sb_app_now_ms(app);
    sb_app_log(app, "Service connection %s connected.", sc->cid);
    sb_app_check_ready(app);
}

static void dispatch(sb_app_sconn *sc, const sb_svc_msg *m) {
    sb_app_hub *hub = sc->hub;
    if (sc->state == SB_APP_SCONN_HANDSHAKING) {
        on_handshake_response(sc, m);
        return;
    }
    switch (m->type) {
    case SB_SVC_PING:
        on_ping(sc, m);
        break;
    case SB_SVC_OPEN_CONNECTION:
        sb_app_client_open(sc, m);
        break;
    case SB_SVC_CONNECTION_DATA:
        sb_app_client_data(sc, m);
        break;
    case SB_SVC_CLOSE_CONNECTION:
        sb_app_client_closed(sc, m);
        break;
    case SB_SVC_CONNECTION_RECONNECT:
        sb_app_client_reconnected(sc, m);
        break;
    case SB_SVC_ACK:
        sb_app_ack_resolve(hub, m->ack_id, m->status, m->message);
        break;
    case SB_SVC_SERVICE_ERROR:
        /* as the SDK: no more writes on this connection, keep reading */
        sc->unusable = 1;
        fprintf(stderr, "appserver: hub %s connection %s: service error: %s\n", hub->name, sc->cid,
                m->error ? m->error : "");
        sb_app_log(hub->app, "Connection %s received error message from service: %s", sc->cid,
                   m->error ? m->error : "");
        break;
    case SB_SVC_SERVICE_EVENT:
        sb_app_log(hub->app, "%s recieved service event for %s(%s) is %s, message is: %s", sc->cid,
                   event_object_name(m->object_type), m->object_id ? m->object_id : "",
                   event_kind_name(m->kind), m->message ? m->message : "");
        break;
    default:
        break; /* handshake repeats, types meant for the service, unknown types */
    }
}

static void on_open(sb_wsc *ws, void *user) {
    sb_app_sconn *sc = user;
    sb_app *app = app_of(sc);
    sc->state = SB_APP_SCONN_HANDSHAKING;
    sc->last_recv_ms = sb_app_now_ms(app);
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_HANDSHAKE_REQUEST;
    m.version = 1;
    m.connection_type = SB_SVC_CONN_DEFAULT;
    m.migration_level = SB_SVC_MIGRATION_OFF;
    sb_app_sconn_send(sc, &m, NULL, NULL);
}

static void on_message(sb_wsc *ws, void *user, const uint8_t *data, size_t len) {
    sb_app_sconn *sc = user;
    sc->last_recv_ms = sb_app_now_ms(app_of(sc));
    const uint8_t *p = data;
    size_t n = len;
    if (sc->in.len) {
        sb_buf_append(&sc->in, data, len);
        p = (const uint8_t *)sc->in.data;
        n = sc->in.len;
    }
    size_t off = 0;
    while (off < n && sc->ws && sb_wsc_is_open(sc->ws)) {
        sb_slice body;
        size_t used = 0;
        int rc = sb_svc_split(p + off, n - off, SB_APP_MAX_SERVICE_MESSAGE, &body, &used);
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            fail_conn(sc, rc == SB_E2BIG ? "service message too large" : "invalid service message framing");
            break;
        }
        off += used;
        sb_svc_msg m;
        const char *err = NULL;
        rc = sb_svc_decode((const uint8_t *)body.base, body.len, &m, &err);
        if (rc != SB_OK) {
            char why[200];
            snprintf(why, sizeof why, "invalid service message (type %d): %s", m.type, err ? err : "?");
            sb_svc_msg_clear(&m);
            fail_conn(sc, why);
            break;
        }
        if (!m.unknown)
            dispatch(sc, &m);
        sb_svc_msg_clear(&m);
    }
    if (!sc->ws || !sb_wsc_is_open(sc->ws)) {
        sb_buf_free(&sc->in);
    } else if ((const char *)p == sc->in.data) {
        sb_buf_consume(&sc->in, off);
    } else if (off < n) {
        sb_buf_append(&sc->in, (const char *)p + off, n - off);
    }
}

static uint64_t backoff_ms(unsigned attempts) {
    uint64_t d = (uint64_t)SB_APP_BACKOFF_FIRST_MS << (attempts < 6 ? attempts : 6);
    return d < SB_APP_BACKOFF_MAX_MS ? d : SB_APP_BACKOFF_MAX_MS;
}

static void on_closed(sb_wsc *ws, void *user, const char *reason) {
    sb_app_sconn *sc = user;
    sb_app *app = app_of(sc);
    int was_ready = sc->state == SB_APP_SCONN_READY;
    sc->ws = NULL;
    sb_buf_free(&sc->in);
    /* the service drops this connection's clients itself; nobody will send their CloseConnection */
    sb_app_clients_drop_conn(sc);
    if (app->stopping) {
        sc->state = SB_APP_SCONN_STOPPED;
        return;
    }
    uint64_t now = sb_app_now_ms(app);
    uint64_t delay = backoff_ms(sc->attempts++);
    sc->state = SB_APP_SCONN_IDLE;
    sc->retry_at_ms = now + delay;
    fprintf(stderr, "appserver: hub %s connection %s %s: %s; reconnecting in %" PRIu64 " ms\n", sc->hub->name,
            sc->cid, was_ready ? "dropped" : "failed", reason, delay);
}

void sb_app_sconn_tick(sb_app_sconn *sc, uint64_t now) {
    sb_app *app = app_of(sc);
    switch (sc->state) {
    case SB_APP_SCONN_IDLE:
        if (!app->stopping && now >= sc->retry_at_ms)
            start_attempt(sc, now);
        break;
    case SB_APP_SCONN_CONNECTING:
    case SB_APP_SCONN_HANDSHAKING:
        if (now - sc->started_ms >= SB_APP_HANDSHAKE_TIMEOUT_MS && sc->ws)
            fail_conn(sc, "no handshake response in time");
        break;
    case SB_APP_SCONN_READY:
        if (!sc->ws)
            break;
        if (now - sc->last_recv_ms >= SB_APP_SERVICE_TIMEOUT_MS) {
            sb_app_log(app,
                       "Connection to service '%s' timeout. %.2fms elapsed without receiving a message from "
                       "service. "
                       "Id: %s",
                       app->cs.server.url, (double)(now - sc->last_recv_ms), sc->cid);
            fail_conn(sc, "nothing received from the service for 30 s");
        } else if (now - sc->last_ping_ms >= SB_APP_KEEPALIVE_MS) {
            send_keepalive(sc, now);
        }
        break;
    default:
        break;
    }
}

void sb_app_sconn_begin_stop(sb_app_sconn *sc) {
    if (sc->state == SB_APP_SCONN_READY && sc->ws) {
        const char *kv[] = {SB_SVC_PING_SHUTDOWN, SB_SVC_PING_SHUTDOWN_FIN};
        send_ping(sc, kv, 2);
    } else {
        sc->finack = 1; /* nothing to wait for */
    }
}

void sb_app_sconn_close(sb_app_sconn *sc) {
    if (sc->ws)
        sb_wsc_close(sc->ws, SB_WS_CLOSE_NORMAL, "app server stopping");
    else
        sc->state = SB_APP_SCONN_STOPPED;
}
