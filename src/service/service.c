/*
 * service.c - app-server connections and default-mode routing; see service.h.
 *
 * State:
 *   sb_service (srv->servers)   every server connection, the instance id, the d-m flag
 *   sb_hub_servers (hub->servers) the hub's server connections and a round-robin cursor
 *   sb_server_conn              one WebSocket from an app server: its clients, timers, input buffer
 *
 * A server connection is usable for new clients once its handshake succeeded,
 * unless it is Weak (management SDK) or its server announced a graceful
 * shutdown ("shutdown" ping), after which it only finishes its clients.
 *
 * Invariants: a client with cl->server set is in that server connection's
 * client list; the list is emptied (clients closed with "Server connection
 * dropped") before the server connection is freed.
 */
#include "service/service.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "diag/events.h"
#include "diag/names.h"
#include "limits/tier.h"
#include "metrics/metrics.h"
#include "net/http.h"
#include "net/ws.h"
#include "server.h"
#include "service/svcproto.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/error.h"

typedef struct sb_service {
    sb_list all; /* sb_server_conn.all_node */
    char instance_id[40];
    int message_logging;
} sb_service;

typedef struct sb_hub_servers {
    sb_list conns; /* sb_server_conn.hub_node */
    size_t n;
} sb_hub_servers;

typedef struct sb_server_conn {
    sb_conn *conn;
    sb_server *srv;
    sb_hub *hub;
    char *id;        /* cid query parameter, or generated */
    char *server_id; /* X-ASRS-Server-Id, else the token's nameid */
    int connection_type;
    int handshaken;
    int offline;     /* its server is shutting down: no new clients */
    sb_buf in;       /* service-protocol bytes not yet a whole message */
    uint64_t last_recv_ms, last_send_ms;
    sb_list clients; /* sb_client.server_node */
    size_t nclients;
    sb_list hub_node;
    sb_list all_node;
} sb_server_conn;

static sb_service *registry(sb_server *srv) { return srv->servers; }

void sb_service_init(sb_server *srv) {
    sb_service *s = sb_calloc(1, sizeof(*s));
    sb_list_init(&s->all);
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        abort(); /* the kernel's CSPRNG is not optional */
    snprintf(s->instance_id, sizeof s->instance_id, "switchboard-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
             r[3], r[4], r[5], r[6], r[7]);
    srv->servers = s;
}

void sb_service_free(sb_server *srv) {
    sb_free(srv->servers);
    srv->servers = NULL;
}

/* ---- sending ---------------------------------------------------------------- */

static void send_msg(sb_server_conn *sc, const sb_svc_msg *m) {
    if (!sc->conn || sc->conn->closing)
        return;
    sb_buf b;
    sb_buf_init(&b);
    sb_svc_encode(m, &b);
    sb_shbuf *f = sb_ws_frame_build(SB_WS_OP_BINARY, b.data, b.len);
    sb_buf_free(&b);
    if (sb_conn_write(sc->conn, f) == SB_ENOSPC) {
        /* an app server that cannot keep up with its own clients' traffic: drop it, its clients reconnect */
        sb_shbuf_unref(f);
        sb_ws_close(sc->conn, SB_WS_CLOSE_POLICY, "Server connection is too slow.");
        return;
    }
    sb_shbuf_unref(f);
    sc->last_send_ms = sb_now_ms(sc->srv);
}

static void send_ping(sb_server_conn *sc, const char *const *kv, size_t n) {
    sb_svc_msg m;
    sb_svc_ping_build(&m, kv, n);
    send_msg(sc, &m);
    sb_svc_msg_clear(&m);
}

static void send_ack(sb_server_conn *sc, int32_t ack_id, int status, const char *message) {
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_ACK;
    m.ack_id = ack_id;
    m.status = status;
    m.message = (char *)(message ? message : "");
    send_msg(sc, &m);
}

static void send_messaging_flag(sb_server_conn *sc, int on) {
    const char *kv[] = {SB_SVC_PING_MESSAGING_LOGS, on ? SB_SVC_PING_MESSAGING_LOGS_ON : SB_SVC_PING_MESSAGING_LOGS_OFF};
    send_ping(sc, kv, 2);
}

/* ---- the endpoint ----------------------------------------------------------- */

static void on_ws_message(sb_conn *c, int opcode, const char *data, size_t len);
static void on_lost(sb_conn *c);

void sb_service_endpoint_handle(sb_conn *c, sb_http_request *req) {
    sb_server *srv = c->srv;
    if (!sb_slice_eq(req->path, "/server/") && !sb_slice_eq(req->path, "/server")) {
        sb_http_respond_text(c, 404, "Not found.");
        return;
    }
    if (srv->mode == SB_MODE_SERVERLESS) {
        sb_http_respond_text(c, 403, "Server connections are not allowed: the service is in Serverless mode.");
        return;
    }
    if (srv->stopping) {
        sb_http_respond_text(c, 503, SB_MSG_SERVICE_RELOADING);
        return;
    }
    sb_buf hubname, cid;
    sb_buf_init(&hubname);
    sb_buf_init(&cid);
    int nhub = sb_http_query_get(req->query, "hub", 1, &hubname);
    if (nhub != 1 || !hubname.len || !sb_hub_name_valid(hubname.data)) {
        sb_http_respond_text(c, 400, nhub > 1 ? "Multiple 'hub' query parameters are not allowed."
                                              : "A valid 'hub' query parameter is required.");
        goto out;
    }
    char *aud = sb_asprintf("%s/server/?hub=%s", srv->endpoint, hubname.data);
    const char *valid[] = {aud};
    sb_auth_result res;
    int rc = sb_auth_request(srv, req, 0, valid, 1, 0, &res);
    sb_free(aud);
    if (rc != SB_OK) {
        sb_http_respond(c, res.status, "text/plain; charset=utf-8", res.message.data, res.message.len,
                        res.status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL);
        sb_auth_result_free(&res);
        goto out;
    }
    if (!sb_tier_connection_allowed(srv)) {
        /* server connections count toward the connection quota, as in Azure */
        sb_metrics_connection_refused(srv, SB_EP_SERVER, SB_CC_THROTTLED);
        sb_http_respond_text(c, 429, SB_MSG_CONNECTION_COUNT_REACHES_LIMIT);
        sb_auth_result_free(&res);
        goto out;
    }
    if (sb_ws_check_upgrade(c, req) != SB_OK) {
        sb_auth_result_free(&res);
        goto out;
    }
    sb_server_conn *sc = sb_calloc(1, sizeof(*sc));
    sc->srv = srv;
    sc->conn = c;
    sc->hub = sb_router_hub(&srv->router, hubname.data);
    if (sb_http_query_get(req->query, "cid", 0, &cid) > 0 && cid.len && cid.len < 128)
        sc->id = sb_strndup(cid.data, cid.len);
    else {
        char *k = sb_auth_generate_key();
        k[22] = '\0';
        sc->id = k;
    }
    sb_slice sid = sb_http_header_get(req, "X-ASRS-Server-Id");
    const char *nameid = sb_jwt_user_id(res.claims);
    sc->server_id = sid.base && sid.len < 256 ? sb_strndup(sid.base, sid.len) : sb_strdup(nameid ? nameid : sc->id);
    sb_auth_result_free(&res);
    sb_buf_init(&sc->in);
    sb_list_init(&sc->clients);
    sb_list_init(&sc->hub_node);
    sb_list_insert_tail(&registry(srv)->all, &sc->all_node);
    sc->last_recv_ms = sc->last_send_ms = sb_now_ms(srv);
    sb_ws_upgrade(c, req, (size_t)srv->cfg.max_server_message_bytes);
    c->upper = sc;
    c->on_ws_message = on_ws_message;
    c->on_lost = on_lost;
out:
    sb_buf_free(&hubname);
    sb_buf_free(&cid);
}

int sb_service_hub_available(sb_hub *hub) {
    if (!hub->servers)
        return 0;
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &hub->servers->conns) {
        sb_server_conn *sc = sb_container_of(pos, sb_server_conn, hub_node);
        if (sc->handshaken && !sc->offline && sc->connection_type != SB_SVC_CONN_WEAK && sc->conn &&
            !sc->conn->closing)
            return 1;
    }
    return 0;
}

size_t sb_service_hub_server_count(sb_hub *hub) { return hub->servers ? hub->servers->n : 0; }

/* ---- routing clients -------------------------------------------------------- */

static sb_server_conn *pick(sb_hub *hub) {
    if (!hub->servers)
        return NULL;
    /* round robin: take the first usable one and rotate it to the back */
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &hub->servers->conns) {
        sb_server_conn *sc = sb_container_of(pos, sb_server_conn, hub_node);
        if (sc->handshaken && !sc->offline && sc->connection_type != SB_SVC_CONN_WEAK && sc->conn &&
            !sc->conn->closing) {
            sb_list_remove(&sc->hub_node);
            sb_list_insert_tail(&hub->servers->conns, &sc->hub_node);
            return sc;
        }
    }
    return NULL;
}

static void add_claims(sb_svc_msg *m, json_t *claims) {
    if (!claims)
        return;
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(claims, k, v) n += json_is_array(v) ? json_array_size(v) : 1;
    m->claims.v = sb_calloc(n ? n : 1, sizeof(sb_svc_claim));
    json_object_foreach(claims, k, v) {
        size_t cnt = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < cnt; i++) {
            json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
            char *val = json_is_string(e) ? sb_strdup(json_string_value(e))
                        : json_is_integer(e) ? sb_asprintf("%" JSON_INTEGER_FORMAT, json_integer_value(e))
                        : json_is_true(e)    ? sb_strdup("true")
                        : json_is_false(e)   ? sb_strdup("false")
                                             : json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!val)
                continue;
            m->claims.v[m->claims.n].type = sb_strdup(k);
            m->claims.v[m->claims.n].value = val;
            m->claims.n++;
        }
    }
}

static void add_header(sb_svc_msg *m, const char *name, const char *value) {
    m->headers.v = sb_realloc(m->headers.v, (m->headers.n + 1) * sizeof(sb_svc_header));
    sb_svc_header *h = &m->headers.v[m->headers.n++];
    h->name = sb_strdup(name);
    h->values.v = sb_malloc(sizeof(char *));
    h->values.v[0] = sb_strdup(value);
    h->values.n = 1;
}

int sb_service_open_client(sb_client *cl, const char *handshake, size_t len) {
    sb_server *srv = cl->hub->router->srv;
    sb_server_conn *sc = pick(cl->hub);
    if (!sc)
        return SB_ENOENT;
    cl->server = sc;
    sb_list_insert_tail(&sc->clients, &cl->server_node);
    sc->nclients++;

    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_OPEN_CONNECTION;
    m.connection_id = sb_strdup(cl->id);
    add_claims(&m, cl->claims);
    if (cl->headers) {
        const char *k;
        json_t *v;
        json_object_foreach(cl->headers, k, v) {
            if (json_is_string(v))
                add_header(&m, k, json_string_value(v));
        }
    }
    add_header(&m, "X-Forwarded-For", cl->caller_ip);
    add_header(&m, SB_SVC_HEADER_INSTANCE_ID, registry(srv)->instance_id);
    add_header(&m, SB_SVC_HEADER_IS_DIAGNOSTIC_CLIENT, cl->diagnostic ? "true" : "false");
    m.query_string = sb_strdup(cl->query ? cl->query : "");
    m.protocol = sb_strdup(sb_hubproto_name(cl->protocol));
    send_msg(sc, &m);
    sb_svc_msg_clear(&m);
    sb_service_client_data(cl, handshake, len, 0);
    return SB_OK;
}

void sb_service_client_data(sb_client *cl, const char *data, size_t len, uint64_t tracing_id) {
    sb_server_conn *sc = cl->server;
    if (!sc)
        return;
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_CONNECTION_DATA;
    m.connection_id = cl->id;
    m.payload.data = (uint8_t *)data;
    m.payload.len = len;
    if (tracing_id) {
        m.has_tracing_id = 1;
        m.tracing_id = tracing_id;
    }
    send_msg(sc, &m);
    if (tracing_id)
        sb_log_message_to_server(cl, tracing_id, sc->id);
}

int sb_service_client_completion(sb_client *cl, const sb_hub_msg *hm, const char *framed, size_t len) {
    if (hm->type != SB_HUBMSG_COMPLETION || !hm->invocation_id || !cl->server)
        return 0;
    char *caller = sb_dict_del(&cl->pending_invocations, hm->invocation_id, strlen(hm->invocation_id));
    if (!caller)
        return 0;
    /* answer on a connection of the calling server when it is connected to this hub, else the client's own */
    sb_server_conn *to = cl->server;
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &cl->hub->servers->conns) {
        sb_server_conn *sc = sb_container_of(pos, sb_server_conn, hub_node);
        if (sc->handshaken && strcmp(sc->server_id, caller) == 0) {
            to = sc;
            break;
        }
    }
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.invocation_id = hm->invocation_id;
    m.connection_id = cl->id;
    m.caller_server_id = caller;
    if (hm->error) {
        m.type = SB_SVC_ERROR_COMPLETION;
        m.error = hm->error;
    } else {
        m.type = SB_SVC_CLIENT_COMPLETION;
        m.protocol = (char *)sb_hubproto_name(cl->protocol);
        m.payload.data = (uint8_t *)framed;
        m.payload.len = len;
    }
    send_msg(to, &m);
    sb_free(caller);
    return 1;
}

static void detach_client(sb_client *cl) {
    if (!cl->server)
        return;
    sb_list_remove(&cl->server_node);
    cl->server->nclients--;
    cl->server = NULL;
}

void sb_service_client_closed(sb_client *cl, const char *error) {
    sb_server_conn *sc = cl->server;
    if (!sc)
        return;
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_CLOSE_CONNECTION;
    m.connection_id = cl->id;
    m.error = (char *)(error ? error : "");
    send_msg(sc, &m);
    detach_client(cl);
}

/* ---- messages from the server ----------------------------------------------- */

/* Build the fan-out message from a payloads map (json and/or messagepack). */
static void msg_from_payloads(sb_msg *out, const sb_svc_msg *m) {
    const sb_svc_payload *pj = sb_svc_payload_find(m, "json");
    const sb_svc_payload *pm = sb_svc_payload_find(m, "messagepack");
    sb_msg_init_payloads(out, pj ? pj->bytes.data : NULL, pj ? pj->bytes.len : 0, pm ? pm->bytes.data : NULL,
                         pm ? pm->bytes.len : 0);
    out->tracing_id = m->has_tracing_id ? m->tracing_id : 0;
}

/* Excluded connection ids plus every connection of the excluded users. */
static void build_exclude(sb_hub *hub, const sb_svc_strv *conns, const sb_svc_strv *users, sb_exclude *ex,
                          const char ***owned) {
    size_t n = conns->n;
    for (size_t i = 0; users && i < users->n; i++) {
        sb_user *u = sb_dict_gets(&hub->users, users->v[i]);
        n += u ? u->count : 0;
    }
    const char **ids = sb_malloc((n ? n : 1) * sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < conns->n; i++)
        ids[k++] = conns->v[i];
    for (size_t i = 0; users && i < users->n; i++) {
        sb_user *u = sb_dict_gets(&hub->users, users->v[i]);
        if (!u)
            continue;
        sb_list *pos, *tmp;
        sb_list_foreach_safe(pos, tmp, &u->clients) ids[k++] = sb_container_of(pos, sb_client, user_link)->id;
    }
    ex->ids = ids;
    ex->n = k;
    *owned = ids;
}

static void on_ping(sb_server_conn *sc, const sb_svc_msg *m) {
    const char *val = NULL;
    if (m->strings.n < 2)
        return; /* plain keep-alive */
    /* keys are looked up like the SDK does: key/value pairs, first match wins */
    if (sb_svc_ping_get(m, SB_SVC_PING_ECHO, &val)) {
        send_ping(sc, (const char *const *)m->strings.v, m->strings.n);
    } else if (sb_svc_ping_get(m, SB_SVC_PING_STATUS, &val)) {
        const char *kv[] = {SB_SVC_PING_STATUS,
                            sb_dict_count(&sc->hub->clients) ? SB_SVC_PING_STATUS_ACTIVE : SB_SVC_PING_STATUS_INACTIVE};
        send_ping(sc, kv, 2);
    } else if (sb_svc_ping_get(m, SB_SVC_PING_SHUTDOWN, &val) && val && strncmp(val, "fin:", 4) == 0) {
        /* the server is shutting down gracefully: no new clients on this connection */
        sc->offline = 1;
        const char *kv[] = {SB_SVC_PING_SHUTDOWN, SB_SVC_PING_SHUTDOWN_FIN_ACK};
        send_ping(sc, kv, 2);
    } else if (sb_svc_ping_get(m, SB_SVC_PING_SERVERS, &val)) {
        sb_buf b;
        sb_buf_init(&b);
        sb_buf_appendf(&b, "%" PRIu64 ":", sb_now_ms(sc->srv));
        int first = 1;
        sb_list *pos, *tmp;
        sb_list_foreach_safe(pos, tmp, &sc->hub->servers->conns) {
            sb_server_conn *o = sb_container_of(pos, sb_server_conn, hub_node);
            if (!strstr(b.data, o->server_id)) {
                sb_buf_appendf(&b, "%s%s", first ? "" : ";", o->server_id);
                first = 0;
            }
        }
        const char *kv[] = {SB_SVC_PING_SERVERS, b.data};
        send_ping(sc, kv, 2);
        sb_buf_free(&b);
    }
}

static void on_handshake(sb_server_conn *sc, const sb_svc_msg *m) {
    sb_svc_msg r;
    memset(&r, 0, sizeof r);
    r.type = SB_SVC_HANDSHAKE_RESPONSE;
    if (m->type != SB_SVC_HANDSHAKE_REQUEST) {
        r.error = "The first message must be a handshake request.";
        send_msg(sc, &r);
        sb_ws_close(sc->conn, SB_WS_CLOSE_POLICY, "handshake expected");
        return;
    }
    if (m->version != 1) {
        r.error = "Version mismatch.";
        send_msg(sc, &r);
        sb_ws_close(sc->conn, SB_WS_CLOSE_POLICY, "version mismatch");
        return;
    }
    r.error = "";
    r.connection_id = sc->id;
    send_msg(sc, &r);
    sc->handshaken = 1;
    sc->connection_type = m->connection_type;
    sb_hub *hub = sc->hub;
    if (!hub->servers) {
        hub->servers = sb_calloc(1, sizeof(sb_hub_servers));
        sb_list_init(&hub->servers->conns);
    }
    sb_list_insert_tail(&hub->servers->conns, &sc->hub_node);
    hub->servers->n++;
    sb_metrics_connection_opened(sc->srv, SB_EP_SERVER);
    sb_log_server_started(sc->srv, sc->id, hub->name, sc->conn->peer_ip, sc->server_id);
    if (registry(sc->srv)->message_logging)
        send_messaging_flag(sc, 1);
}

static sb_client *find_client(sb_server_conn *sc, const char *id) { return id ? sb_hub_find_client(sc->hub, id) : NULL; }

static void ack(sb_server_conn *sc, const sb_svc_msg *m, int ok) {
    send_ack(sc, m->ack_id, ok ? SB_SVC_ACK_OK : SB_SVC_ACK_NOT_FOUND, ok ? "" : "Not found.");
}

/* Messages the router fans out.  One connection's own traffic (ConnectionData: handshake answers, results,
 * Clients.Caller; client invocations) is not, so clients can still connect and get answers. */
static int is_fanout(int type) {
    switch (type) {
    case SB_SVC_MULTI_CONNECTION_DATA:
    case SB_SVC_USER_DATA:
    case SB_SVC_MULTI_USER_DATA:
    case SB_SVC_BROADCAST_DATA:
    case SB_SVC_GROUP_BROADCAST_DATA:
    case SB_SVC_MULTI_GROUP_BROADCAST_DATA:
        return 1;
    default:
        return 0;
    }
}

static void on_message(sb_server_conn *sc, const sb_svc_msg *m) {
    sb_hub *hub = sc->hub;
    if (m->has_tracing_id && m->tracing_id)
        sb_log_message_from_server(sc->srv, hub, sb_svc_type_name(m->type), m->tracing_id, sc->id,
                                   sc->conn ? sc->conn->peer_ip : NULL);
    if (is_fanout(m->type) && !sb_tier_message_allowed(sc->srv, 1)) { /* Free tier quota used up: dropped */
        sb_log_message_throttled(sc->srv, sc->conn ? sc->conn->peer_ip : NULL, hub->name,
                                 SB_LOG_CONNECTION_TYPE_SERVER, sc->id);
        return;
    }
    sb_msg out;
    sb_exclude ex = {0};
    const char **owned = NULL;
    switch (m->type) {
    case SB_SVC_PING:
        on_ping(sc, m);
        break;
    case SB_SVC_HANDSHAKE_REQUEST:
        break; /* a second handshake is ignored */
    case SB_SVC_CLOSE_CONNECTION: {
        sb_client *cl = find_client(sc, m->connection_id);
        if (cl) {
            detach_client(cl); /* the server knows: no CloseConnection back */
            sb_client_close(cl, SB_CLOSE_BY_APP,
                            m->error && *m->error ? m->error : SB_MSG_APP_SERVER_CLOSED, 0);
        }
        break;
    }
    case SB_SVC_CONNECTION_DATA: {
        sb_client *cl = find_client(sc, m->connection_id);
        if (cl && m->payload.len) {
            memset(&out, 0, sizeof out);
            out.payload[cl->protocol] = sb_shbuf_from(m->payload.data, m->payload.len);
            out.tracing_id = m->has_tracing_id ? m->tracing_id : 0;
            if (sb_client_deliver(cl, &out) == SB_ENOSPC)
                sb_client_close(cl, SB_CLOSE_SLOW_CLIENT, "Connection closed because it is too slow to receive messages.", 1);
            sb_msg_release(&out);
        }
        break;
    }
    case SB_SVC_MULTI_CONNECTION_DATA:
        msg_from_payloads(&out, m);
        sb_router_send_connections(hub, (const char *const *)m->connection_ids.v, m->connection_ids.n, &out);
        sb_msg_release(&out);
        break;
    case SB_SVC_USER_DATA:
        msg_from_payloads(&out, m);
        sb_router_send_user(hub, m->user_id, &out);
        sb_msg_release(&out);
        break;
    case SB_SVC_MULTI_USER_DATA:
        msg_from_payloads(&out, m);
        sb_router_send_users(hub, (const char *const *)m->user_ids.v, m->user_ids.n, &out);
        sb_msg_release(&out);
        break;
    case SB_SVC_BROADCAST_DATA:
        msg_from_payloads(&out, m);
        ex.ids = (const char *const *)m->excluded.v;
        ex.n = m->excluded.n;
        sb_router_broadcast(hub, &out, &ex);
        sb_msg_release(&out);
        break;
    case SB_SVC_GROUP_BROADCAST_DATA:
        msg_from_payloads(&out, m);
        build_exclude(hub, &m->excluded, &m->excluded_user_ids, &ex, &owned);
        sb_router_send_group(hub, m->group, &out, &ex);
        sb_free(owned);
        sb_msg_release(&out);
        break;
    case SB_SVC_MULTI_GROUP_BROADCAST_DATA:
        msg_from_payloads(&out, m);
        sb_router_send_groups(hub, (const char *const *)m->groups.v, m->groups.n, &out);
        sb_msg_release(&out);
        break;
    case SB_SVC_JOIN_GROUP:
        sb_router_group_add(hub, m->group, m->connection_id);
        break;
    case SB_SVC_LEAVE_GROUP:
        if (m->group)
            sb_router_group_remove(hub, m->group, m->connection_id);
        else
            sb_router_group_remove_all(hub, m->connection_id);
        break;
    case SB_SVC_USER_JOIN_GROUP:
        sb_router_user_group_add(hub, m->user_id, m->group, m->has_ttl ? m->ttl : -1);
        break;
    case SB_SVC_USER_LEAVE_GROUP:
        if (m->group)
            sb_router_user_group_remove(hub, m->user_id, m->group);
        else
            sb_router_user_group_remove_all(hub, m->user_id);
        break;
    case SB_SVC_JOIN_GROUP_WITH_ACK:
        ack(sc, m, sb_router_group_add(hub, m->group, m->connection_id) == SB_OK);
        break;
    case SB_SVC_LEAVE_GROUP_WITH_ACK:
        ack(sc, m, (m->group ? sb_router_group_remove(hub, m->group, m->connection_id)
                             : sb_router_group_remove_all(hub, m->connection_id)) == SB_OK);
        break;
    case SB_SVC_CHECK_USER_IN_GROUP_WITH_ACK:
        ack(sc, m, sb_router_user_in_group(hub, m->user_id, m->group));
        break;
    case SB_SVC_CHECK_GROUP_EXISTENCE_WITH_ACK:
        ack(sc, m, sb_router_group_exists(hub, m->group));
        break;
    case SB_SVC_CHECK_CONNECTION_EXISTENCE_WITH_ACK:
        ack(sc, m, sb_router_connection_exists(hub, m->connection_id));
        break;
    case SB_SVC_CHECK_USER_EXISTENCE_WITH_ACK:
        ack(sc, m, sb_router_user_exists(hub, m->user_id));
        break;
    case SB_SVC_USER_JOIN_GROUP_WITH_ACK:
        sb_router_user_group_add(hub, m->user_id, m->group, m->has_ttl ? m->ttl : -1);
        ack(sc, m, 1);
        break;
    case SB_SVC_USER_LEAVE_GROUP_WITH_ACK:
        if (m->group)
            sb_router_user_group_remove(hub, m->user_id, m->group);
        else
            sb_router_user_group_remove_all(hub, m->user_id);
        ack(sc, m, 1);
        break;
    case SB_SVC_CLOSE_CONNECTION_WITH_ACK: {
        sb_client *cl = find_client(sc, m->connection_id);
        if (cl)
            sb_client_close(cl, SB_CLOSE_BY_APP,
                            m->reason && *m->reason ? m->reason : SB_MSG_APP_SERVER_CLOSED, 0);
        ack(sc, m, cl != NULL);
        break;
    }
    case SB_SVC_CLOSE_CONNECTIONS_WITH_ACK:
        ex.ids = (const char *const *)m->excluded.v;
        ex.n = m->excluded.n;
        sb_router_close_hub(hub, m->reason, &ex);
        ack(sc, m, 1);
        break;
    case SB_SVC_CLOSE_USER_CONNECTIONS_WITH_ACK:
        ex.ids = (const char *const *)m->excluded.v;
        ex.n = m->excluded.n;
        sb_router_close_user(hub, m->user_id, m->reason, &ex);
        ack(sc, m, 1);
        break;
    case SB_SVC_CLOSE_GROUP_CONNECTIONS_WITH_ACK:
        ex.ids = (const char *const *)m->excluded.v;
        ex.n = m->excluded.n;
        sb_router_close_group(hub, m->group, m->reason, &ex);
        ack(sc, m, 1);
        break;
    case SB_SVC_CLIENT_INVOCATION: {
        sb_client *cl = find_client(sc, m->connection_id);
        if (!cl) {
            sb_svc_msg r;
            memset(&r, 0, sizeof r);
            r.type = SB_SVC_ERROR_COMPLETION;
            r.invocation_id = m->invocation_id;
            r.connection_id = m->connection_id;
            r.caller_server_id = m->caller_server_id;
            r.error = "Connection does not exist.";
            send_msg(sc, &r);
            break;
        }
        sb_free(sb_dict_set(&cl->pending_invocations, m->invocation_id, strlen(m->invocation_id),
                            sb_strdup(m->caller_server_id)));
        msg_from_payloads(&out, m);
        sb_client_deliver(cl, &out);
        sb_msg_release(&out);
        break;
    }
    case SB_SVC_ACCESS_KEY_REQUEST: {
        sb_svc_msg r;
        memset(&r, 0, sizeof r);
        r.type = SB_SVC_ACCESS_KEY_RESPONSE;
        r.error_type = "NotSupportedException";
        r.error = "Microsoft Entra ID authentication is not supported by this service; use an access key.";
        send_msg(sc, &r);
        break;
    }
    case SB_SVC_CONNECTION_FLOW_CONTROL:
        if (m->operation == SB_SVC_FLOW_OFFLINE && m->connection_type == SB_SVC_FLOW_SERVER)
            sc->offline = 1;
        break;
    default:
        break; /* service-to-server types and unknown types are dropped */
    }
}

static void on_ws_message(sb_conn *c, int opcode, const char *data, size_t len) {
    sb_server_conn *sc = c->upper;
    sb_server *srv = sc->srv;
    sc->last_recv_ms = sb_now_ms(srv);
    /* the WebSocket is a byte stream of frames: messages may span WebSocket messages */
    const uint8_t *p = (const uint8_t *)data;
    size_t n = len;
    if (sc->in.len) {
        sb_buf_append(&sc->in, data, len);
        p = (const uint8_t *)sc->in.data;
        n = sc->in.len;
    }
    size_t off = 0;
    while (off < n && !c->closing && !c->close_after_flush) {
        sb_slice body;
        size_t used = 0;
        int rc = sb_svc_split(p + off, n - off, (size_t)srv->cfg.max_server_message_bytes, &body, &used);
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            sb_ws_close(c, rc == SB_E2BIG ? SB_WS_CLOSE_TOO_BIG : SB_WS_CLOSE_PROTOCOL_ERROR,
                        rc == SB_E2BIG ? "message too large" : "invalid message framing");
            break;
        }
        off += used;
        sb_svc_msg m;
        const char *err = NULL;
        rc = sb_svc_decode((const uint8_t *)body.base, body.len, &m, &err);
        if (rc != SB_OK) {
            fprintf(stderr, "switchboard: server connection %s: invalid message: %s\n", sc->id, err ? err : "?");
            sb_svc_msg_clear(&m);
            sb_ws_close(c, SB_WS_CLOSE_PROTOCOL_ERROR, "invalid service message");
            break;
        }
        if (!m.unknown) {
            if (!sc->handshaken)
                on_handshake(sc, &m);
            else
                on_message(sc, &m);
        }
        sb_svc_msg_clear(&m);
    }
    if (c->closing || c->close_after_flush) {
        sb_buf_free(&sc->in);
    } else if ((const char *)p == sc->in.data) {
        sb_buf_consume(&sc->in, off);
    } else if (off < n) {
        sb_buf_append(&sc->in, (const char *)p + off, n - off);
    }
}

/* The server connection's socket is gone: its clients cannot be served any more. */
static void on_lost(sb_conn *c) {
    sb_server_conn *sc = c->upper;
    if (sc->handshaken) {
        /* a close the service started (shutdown) or the server's clean close frame ends it;
         * anything else is the server connection dropping */
        int aborted = !c->peer_closed && !sc->srv->stopping;
        sb_log_server_closed(sc->srv, sc->id, sc->hub->name, c->peer_ip, sc->server_id, aborted,
                             aborted ? SB_MSG_SERVER_CONNECTION_DROPPED : NULL);
        int timed_out = sb_now_ms(sc->srv) - sc->last_recv_ms >= (uint64_t)sc->srv->cfg.server_timeout_ms;
        sb_metrics_connection_closed(sc->srv, SB_EP_SERVER,
                                     sc->srv->stopping ? SB_CC_SERVICE_RELOAD
                                     : c->peer_closed  ? SB_CC_NORMAL
                                     : timed_out       ? SB_CC_PING_TIMEOUT
                                                       : SB_CC_HANDSHAKE_ERROR);
    }
    c->upper = NULL;
    sc->conn = NULL;
    while (!sb_list_empty(&sc->clients)) {
        sb_client *cl = sb_container_of(sc->clients.next, sb_client, server_node);
        detach_client(cl);
        sb_client_close(cl, SB_CLOSE_SERVER_DROPPED, SB_MSG_SERVER_CONNECTION_DROPPED, 1);
    }
    if (sc->handshaken) {
        sb_list_remove(&sc->hub_node);
        sc->hub->servers->n--;
        if (sc->hub->servers->n == 0) {
            sb_free(sc->hub->servers);
            sc->hub->servers = NULL;
        }
    }
    sb_list_remove(&sc->all_node);
    sb_buf_free(&sc->in);
    sb_free(sc->id);
    sb_free(sc->server_id);
    sb_free(sc);
}

/* ---- timers and control ----------------------------------------------------- */

void sb_service_sweep(sb_server *srv) {
    sb_service *s = registry(srv);
    uint64_t now = sb_now_ms(srv);
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &s->all) {
        sb_server_conn *sc = sb_container_of(pos, sb_server_conn, all_node);
        if (!sc->conn || sc->conn->closing || sc->conn->close_after_flush)
            continue;
        if (now - sc->last_recv_ms >= (uint64_t)srv->cfg.server_timeout_ms) {
            fprintf(stderr, "switchboard: server connection %s timed out\n", sc->id);
            sb_conn_close(sc->conn); /* frees sc through on_lost */
            continue;
        }
        if (sc->handshaken && now - sc->last_send_ms >= (uint64_t)srv->cfg.server_keep_alive_interval_ms)
            send_ping(sc, NULL, 0);
    }
}

void sb_service_set_message_logging(sb_server *srv, int on) {
    sb_service *s = registry(srv);
    if (s->message_logging == !!on)
        return;
    s->message_logging = !!on;
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &s->all) {
        sb_server_conn *sc = sb_container_of(pos, sb_server_conn, all_node);
        if (sc->handshaken)
            send_messaging_flag(sc, on);
    }
}

void sb_service_stop(sb_server *srv) {
    sb_service *s = registry(srv);
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &s->all) {
        sb_server_conn *sc = sb_container_of(pos, sb_server_conn, all_node);
        if (!sc->conn)
            continue;
        if (sc->handshaken) {
            const char *kv[] = {SB_SVC_PING_OFFLINE, s->instance_id};
            send_ping(sc, kv, 2);
        }
        sb_ws_close(sc->conn, SB_WS_CLOSE_GOING_AWAY, "service stopping");
    }
}
