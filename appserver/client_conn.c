/*
 * client_conn.c - the client connections the service routes to this app
 * server, as the SDK's ClientConnectionContext sees them.
 *
 * OpenConnection creates one (connection id, user id from the claims, hub
 * protocol from ext Protocol, diagnostic flag from the Asrs-Is-Diagnostic-Client
 * header, the server connection it came on).  ConnectionData carries the
 * client's raw bytes: first the hub handshake request, answered with
 * ConnectionData "{}\x1e" (always JSON text, as the SDK does), then hub
 * messages in the client's protocol, split, decoded and dispatched here.
 * CloseConnection from the service, a Close hub message, or the drop of the
 * server connection forgets the client.
 *
 * Invariant: a client is in its hub's dict exactly while it is alive; while
 * its bytes are being dispatched (busy) it is only marked dead, and the
 * dispatch loop frees it when it returns.
 *
 * Not here: what the hub methods do (hub_methods.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "appserver.h"
#include "util/alloc.h"
#include "util/error.h"

#define NAME_IDENTIFIER_URI "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"
#define MAX_HANDSHAKE 4096

sb_app_client *sb_app_client_find(sb_app_hub *hub, const char *id) {
    return id ? sb_dict_gets(&hub->clients, id) : NULL;
}

static void client_free(sb_app_client *cl) {
    sb_buf_free(&cl->in);
    sb_free(cl->id);
    sb_free(cl->user);
    sb_free(cl->instance_id);
    sb_free(cl);
}

void sb_app_client_forget(sb_app_client *cl) {
    if (cl->dead)
        return;
    sb_dict_del(&cl->hub->clients, cl->id, strlen(cl->id));
    if (cl->sconn->nclients)
        cl->sconn->nclients--;
    if (cl->busy)
        cl->dead = 1;
    else
        client_free(cl);
}

static const char *claim(const sb_svc_msg *m, const char *type) {
    for (size_t i = 0; i < m->claims.n; i++)
        if (strcmp(m->claims.v[i].type, type) == 0 && *m->claims.v[i].value)
            return m->claims.v[i].value;
    return NULL;
}

static const char *header(const sb_svc_msg *m, const char *name) {
    const sb_svc_header *h = sb_svc_header_find(m, name);
    return h && h->values.n ? h->values.v[0] : NULL;
}

void sb_app_client_open(sb_app_sconn *sc, const sb_svc_msg *m) {
    sb_app_hub *hub = sc->hub;
    sb_app_client *old = sb_app_client_find(hub, m->connection_id);
    if (old)
        sb_app_client_forget(old);
    sb_app_client *cl = sb_calloc(1, sizeof *cl);
    cl->hub = hub;
    cl->sconn = sc;
    cl->id = sb_strdup(m->connection_id);
    const char *user = claim(m, "asrs.s.uid");
    if (!user)
        user = claim(m, "nameid");
    if (!user)
        user = claim(m, NAME_IDENTIFIER_URI);
    cl->user = user ? sb_strdup(user) : NULL;
    cl->protocol =
        m->protocol && strcasecmp(m->protocol, "messagepack") == 0 ? SB_HUBPROTO_MSGPACK : SB_HUBPROTO_JSON;
    const char *diag = header(m, SB_SVC_HEADER_IS_DIAGNOSTIC_CLIENT);
    cl->diagnostic = diag && strcasecmp(diag, "true") == 0;
    const char *inst = header(m, SB_SVC_HEADER_INSTANCE_ID);
    cl->instance_id = inst ? sb_strdup(inst) : NULL;
    /* migrated from another server: the client is already handshaken, no handshake response */
    cl->handshaken = header(m, SB_SVC_HEADER_MIGRATE_FROM) != NULL;
    sb_buf_init(&cl->in);
    sb_dict_set(&hub->clients, cl->id, strlen(cl->id), cl);
    sc->nclients++;
}

int sb_app_client_send_raw(sb_app_client *cl, const void *data, size_t len) {
    sb_app_sconn *sc = sb_app_hub_pick(cl->hub, cl->sconn, NULL);
    if (!sc)
        return SB_ECLOSED;
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_CONNECTION_DATA;
    m.connection_id = cl->id;
    m.payload.data = (uint8_t *)data;
    m.payload.len = len;
    return sb_app_sconn_send(sc, &m, NULL, NULL);
}

void sb_app_client_complete(sb_app_client *cl, const char *invocation_id, const char *error, json_t *result) {
    sb_buf b;
    sb_buf_init(&b);
    sb_hubproto_write_completion(cl->protocol, &b, invocation_id, error,
                                 error    ? NULL
                                 : result ? result
                                          : json_null());
    sb_app_client_send_raw(cl, b.data, b.len);
    sb_buf_free(&b);
}

/* The app ends the connection: CloseConnection with the reason, then forget it. */
static void abort_client(sb_app_client *cl, const char *error) {
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_CLOSE_CONNECTION;
    m.connection_id = cl->id;
    m.error = (char *)(error ? error : "");
    sb_app_origin o = {cl->hub, cl->sconn, cl->diagnostic};
    sb_app_send(&o, &m, NULL, NULL);
    sb_app_client_forget(cl);
}

static void handshake_fail(sb_app_client *cl, const char *error) {
    sb_buf b;
    sb_buf_init(&b);
    sb_handshake_write_response(&b, error);
    sb_app_client_send_raw(cl, b.data, b.len);
    sb_buf_free(&b);
    abort_client(cl, error);
}

/* Consume the handshake request from cl->in; 1 when done and hub messages may follow. */
static int handshake(sb_app_client *cl) {
    sb_handshake_req hs;
    size_t used = 0;
    const char *err = NULL;
    int rc = sb_handshake_parse((const uint8_t *)cl->in.data, cl->in.len, MAX_HANDSHAKE, &used, &hs, &err);
    if (rc == SB_EAGAIN)
        return 0;
    if (rc != SB_OK) {
        handshake_fail(cl, err ? err : "An unexpected error occurred during connection handshake.");
        return 0;
    }
    char msg[160];
    if (strcmp(hs.protocol, "json") == 0) {
        cl->protocol = SB_HUBPROTO_JSON;
    } else if (strcmp(hs.protocol, "messagepack") == 0) {
        cl->protocol = SB_HUBPROTO_MSGPACK;
    } else {
        snprintf(msg, sizeof msg, "The protocol '%s' is not supported.", hs.protocol);
        handshake_fail(cl, msg);
        return 0;
    }
    if (hs.version < 0 || hs.version > 2) {
        snprintf(msg, sizeof msg, "The server does not support version %d of the '%s' protocol.", hs.version,
                 hs.protocol);
        handshake_fail(cl, msg);
        return 0;
    }
    sb_buf_consume(&cl->in, used);
    cl->handshaken = 1;
    sb_buf ok;
    sb_buf_init(&ok);
    sb_handshake_write_response(&ok, NULL);
    sb_app_client_send_raw(cl, ok.data, ok.len);
    sb_buf_free(&ok);
    return 1;
}

static void on_hub_message(sb_app_client *cl, const sb_hub_msg *hm) {
    switch (hm->type) {
    case SB_HUBMSG_INVOCATION:
    case SB_HUBMSG_STREAM_INVOCATION: {
        json_t *args = hm->type == SB_HUBMSG_INVOCATION ? sb_app_args_decode(cl->protocol, hm->raw) : NULL;
        if (hm->type == SB_HUBMSG_INVOCATION && !args) {
            if (hm->invocation_id)
                sb_app_client_complete(cl, hm->invocation_id,
                                       "Failed to invoke the hub method: its arguments could not be read.",
                                       NULL);
            break;
        }
        if (args) {
            sb_app_invoke(cl, hm, args);
            json_decref(args);
        } else if (hm->invocation_id) {
            char err[300];
            snprintf(err, sizeof err, "Unknown hub method '%s'", hm->target);
            sb_app_client_complete(cl, hm->invocation_id, err, NULL);
        }
        break;
    }
    case SB_HUBMSG_CLOSE:
        sb_app_client_forget(cl); /* the client leaves; the service closes its side itself */
        break;
    default:
        break; /* pings, completions, cancels, acks, sequences: nothing to do here */
    }
}

/* Split and dispatch every whole hub message in cl->in (cl->busy is set by the caller). */
static void drain(sb_app_client *cl) {
    size_t off = 0;
    while (!cl->dead && off < cl->in.len) {
        sb_slice body;
        size_t used = 0;
        int rc = sb_hubproto_split(cl->protocol, (const uint8_t *)cl->in.data + off, cl->in.len - off,
                                   SB_APP_MAX_CLIENT_MESSAGE, &body, &used);
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            abort_client(cl,
                         rc == SB_E2BIG ? "The message is too large." : "Connection closed with an error.");
            return;
        }
        off += used;
        sb_hub_msg hm;
        const char *err = NULL;
        rc = sb_hubproto_decode(cl->protocol, body, &hm, &err);
        if (rc != SB_OK) {
            sb_hub_msg_clear(&hm);
            abort_client(cl, err ? err : "Connection closed with an error.");
            return;
        }
        on_hub_message(cl, &hm);
        sb_hub_msg_clear(&hm);
    }
    if (!cl->dead)
        sb_buf_consume(&cl->in, off);
}

void sb_app_client_data(sb_app_sconn *sc, const sb_svc_msg *m) {
    sb_app_hub *hub = sc->hub;
    sb_app_client *cl = sb_app_client_find(hub, m->connection_id);
    if (!cl) {
        if (m->has_tracing_id)
            sb_app_log(hub->app, "Received message %" PRIu64 " for connection %s which does not exist.",
                       m->tracing_id, m->connection_id ? m->connection_id : "");
        return;
    }
    if (m->has_tracing_id)
        sb_app_log(hub->app, "Received message %" PRIu64 " from client connection %s.", m->tracing_id,
                   cl->id);
    if (!m->payload.len)
        return;
    if (cl->in.len + m->payload.len > SB_APP_MAX_CLIENT_MESSAGE + 8) {
        abort_client(cl, "The message is too large.");
        return;
    }
    sb_buf_append(&cl->in, m->payload.data, m->payload.len);
    cl->busy = 1;
    if (cl->handshaken || handshake(cl))
        drain(cl);
    cl->busy = 0;
    if (cl->dead)
        client_free(cl);
}

void sb_app_client_closed(sb_app_sconn *sc, const sb_svc_msg *m) {
    sb_app_client *cl = sb_app_client_find(sc->hub, m->connection_id);
    if (cl)
        sb_app_client_forget(cl);
}

void sb_app_client_reconnected(sb_app_sconn *sc, const sb_svc_msg *m) {
    sb_app_client *cl = sb_app_client_find(sc->hub, m->connection_id);
    if (cl && cl->handshaken)
        sb_buf_reset(&cl->in);
}

/* Forget every client of the hub for which match(cl, arg) holds. */
static void forget_where(sb_app_hub *hub, int (*match)(const sb_app_client *, const void *),
                         const void *arg) {
    sb_dict_iter it;
    sb_dict_iter_init(&it, &hub->clients);
    sb_dict_entry *e;
    while ((e = sb_dict_next(&it))) {
        sb_app_client *cl = e->value;
        if (match(cl, arg))
            sb_app_client_forget(cl); /* deletes the entry just returned: the iterator allows it */
    }
}

static int on_conn(const sb_app_client *cl, const void *sc) {
    return cl->sconn == sc;
}
static int of_instance(const sb_app_client *cl, const void *inst) {
    return cl->instance_id && strcmp(cl->instance_id, inst) == 0;
}

void sb_app_clients_drop_conn(sb_app_sconn *sc) {
    forget_where(sc->hub, on_conn, sc);
    sc->nclients = 0;
}

void sb_app_clients_offline(sb_app_hub *hub, const char *instance_id) {
    forget_where(hub, of_instance, instance_id);
}
