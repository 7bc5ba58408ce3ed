/*
 * outbound.c - app server -> service messages that carry hub traffic or
 * change group membership: the payloads map, the tracing decision, the
 * "Start to ..." / "Succeeded ..." / "Failed ..." lines, and the choice of the
 * server connection.
 *
 * Tracing (WithTracingId in the SDK): a message gets a new tracing id when its
 * hub has "collect all" messaging logs on (d-m = 1) or when it was caused by
 * an invocation from a diagnostic client; only then are lines logged.
 *
 * Connection choice: the caller's own server connection when it is usable
 * (the SDK keeps a client's flow on one connection so its messages stay in
 * order), otherwise any usable connection of the hub.
 *
 * Not here: ConnectionData to a single client (client_conn.c: the SDK never
 * stamps those) and pings (server_conn.c).
 */
#include <inttypes.h>
#include <string.h>

#include "appserver.h"
#include "util/alloc.h"
#include "util/error.h"

void sb_app_payloads_build(sb_svc_msg *m, const char *target, json_t *args) {
    static const sb_hub_protocol order[] = {SB_HUBPROTO_JSON, SB_HUBPROTO_MSGPACK};
    m->payloads.v = sb_calloc(2, sizeof(sb_svc_payload));
    m->payloads.n = 2;
    for (size_t i = 0; i < 2; i++) {
        sb_buf b;
        sb_buf_init(&b);
        sb_hubproto_write_invocation(order[i], &b, NULL, target, args);
        m->payloads.v[i].protocol = (char *)sb_hubproto_name(order[i]);
        size_t len;
        m->payloads.v[i].bytes.data = (uint8_t *)sb_buf_steal(&b, &len);
        m->payloads.v[i].bytes.len = len;
    }
}

void sb_app_payloads_free(sb_svc_msg *m) {
    for (size_t i = 0; i < m->payloads.n; i++)
        sb_free(m->payloads.v[i].bytes.data);
    sb_free(m->payloads.v);
    m->payloads.v = NULL;
    m->payloads.n = 0;
}

static void join_list(sb_buf *out, const sb_svc_strv *v) {
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            sb_buf_appends(out, ", ");
        sb_buf_appends(out, v->v[i]);
    }
}

/* The MessageLog.cs "Start to ..." line for m (which carries its tracing id). */
static void log_start(sb_app *app, const sb_svc_msg *m) {
    uint64_t id = m->tracing_id;
    sb_buf l;
    sb_buf_init(&l);
    switch (m->type) {
    case SB_SVC_BROADCAST_DATA:
        if (!m->excluded.n) {
            sb_buf_appendf(&l, "Start to broadcast message %" PRIu64 ".", id);
        } else {
            sb_buf_appendf(&l, "Start to broadcast message %" PRIu64 " except for %zu connections ", id,
                           m->excluded.n);
            join_list(&l, &m->excluded);
            sb_buf_appendc(&l, '.');
        }
        break;
    case SB_SVC_MULTI_CONNECTION_DATA:
        sb_buf_appendf(&l, "Start to send message %" PRIu64 " to %zu connections ", id, m->connection_ids.n);
        join_list(&l, &m->connection_ids);
        sb_buf_appendc(&l, '.');
        break;
    case SB_SVC_CONNECTION_DATA:
        sb_buf_appendf(&l, "Start to send message %" PRIu64 " to connection %s.", id, m->connection_id);
        break;
    case SB_SVC_GROUP_BROADCAST_DATA:
        if (!m->excluded.n) {
            sb_buf_appendf(&l, "Start to broadcast message %" PRIu64 " to group %s.", id, m->group);
        } else {
            sb_buf_appendf(&l,
                           "Start to broadcast message %" PRIu64 " to group %s except for %zu connections ",
                           id, m->group, m->excluded.n);
            join_list(&l, &m->excluded);
            sb_buf_appendc(&l, '.');
        }
        break;
    case SB_SVC_MULTI_GROUP_BROADCAST_DATA:
        sb_buf_appendf(&l, "Start to broadcast message %" PRIu64 " to %zu groups ", id, m->groups.n);
        join_list(&l, &m->groups);
        sb_buf_appendc(&l, '.');
        break;
    case SB_SVC_USER_DATA:
        sb_buf_appendf(&l, "Start to send message %" PRIu64 " to user %s.", id, m->user_id);
        break;
    case SB_SVC_MULTI_USER_DATA:
        sb_buf_appendf(&l, "Start to send message %" PRIu64 " to %zu users ", id, m->user_ids.n);
        join_list(&l, &m->user_ids);
        sb_buf_appendc(&l, '.');
        break;
    case SB_SVC_JOIN_GROUP:
    case SB_SVC_JOIN_GROUP_WITH_ACK:
        sb_buf_appendf(&l, "Start to send message %" PRIu64 " to add connection %s to group %s.", id,
                       m->connection_id, m->group);
        break;
    case SB_SVC_LEAVE_GROUP:
    case SB_SVC_LEAVE_GROUP_WITH_ACK:
        if (m->group)
            sb_buf_appendf(&l, "Start to send message %" PRIu64 " to remove connection %s from group %s.", id,
                           m->connection_id, m->group);
        else
            sb_buf_appendf(&l, "Start to send message %" PRIu64 " to remove connection %s from all groups.",
                           id, m->connection_id);
        break;
    case SB_SVC_USER_JOIN_GROUP:
    case SB_SVC_USER_JOIN_GROUP_WITH_ACK:
        if (m->has_ttl)
            sb_buf_appendf(&l,
                           "Start to send message %" PRIu64 " to add user %s to group %s with TTL %" PRId32
                           " seconds.",
                           id, m->user_id, m->group, m->ttl);
        else
            sb_buf_appendf(&l, "Start to send message %" PRIu64 " to add user %s to group %s.", id,
                           m->user_id, m->group);
        break;
    case SB_SVC_USER_LEAVE_GROUP:
    case SB_SVC_USER_LEAVE_GROUP_WITH_ACK:
        if (m->group)
            sb_buf_appendf(&l, "Start to send message %" PRIu64 " to remove user %s from group %s.", id,
                           m->user_id, m->group);
        else
            sb_buf_appendf(&l, "Start to send message %" PRIu64 " to remove user %s from all groups.", id,
                           m->user_id);
        break;
    case SB_SVC_CLOSE_CONNECTION:
        sb_buf_appendf(&l, "Start to send message %" PRIu64 " to close connection %s for reason: '%s'.", id,
                       m->connection_id, m->error ? m->error : "");
        break;
    default:
        break;
    }
    if (l.len)
        sb_app_log(app, "%s", l.data);
    sb_buf_free(&l);
}

/* Stamp a tracing id when the origin asks for one; returns whether it did. */
static int stamp(const sb_app_origin *o, sb_svc_msg *m) {
    if (!o->hub->message_log && !o->diagnostic)
        return 0;
    m->has_tracing_id = 1;
    m->tracing_id = sb_app_tracing_next(o->hub->app);
    log_start(o->hub->app, m);
    return 1;
}

int sb_app_send(const sb_app_origin *o, sb_svc_msg *m, sb_wsc_written_cb then, void *then_arg) {
    int traced = stamp(o, m);
    sb_app_sconn *sc = sb_app_hub_pick(o->hub, o->via, NULL);
    int rc = sc ? sb_app_sconn_send(sc, m, then, then_arg) : SB_ECLOSED;
    if (traced)
        sb_app_log(o->hub->app,
                   rc == SB_OK ? "Succeeded to send message %" PRIu64 "."
                               : "Failed to send message %" PRIu64 ".",
                   m->tracing_id);
    if (rc != SB_OK && then)
        then(then_arg, rc);
    return rc;
}

void sb_app_send_with_ack(const sb_app_origin *o, sb_svc_msg *m, sb_app_ack_cb done, void *arg) {
    int traced = stamp(o, m);
    m->ack_id = sb_app_ack_add(o->hub, m->tracing_id, traced, done, arg);
    sb_app_sconn *sc = sb_app_hub_pick(o->hub, o->via, NULL);
    int rc = sc ? sb_app_sconn_send(sc, m, NULL, NULL) : SB_ECLOSED;
    if (rc != SB_OK) {
        if (traced)
            sb_app_log(o->hub->app, "Failed to send message %" PRIu64 ".", m->tracing_id);
        sb_app_ack_abandon(o->hub, m->ack_id);
    }
}
