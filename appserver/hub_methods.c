/*
 * hub_methods.c - the hub the reference app server exposes: the methods a
 * test or benchmark client invokes, each one exercising one service-protocol
 * path (connection, user, group, broadcast, group membership with acks,
 * closing a connection).
 *
 *   Echo(x...)                  result x[0]; also "echo"(x...) to the caller (MultiConnectionData)
 *   Broadcast(x...)             "broadcast"(x...) to everyone (BroadcastData)
 *   SendToUser(user, x...)      "user"(x...) (UserData)
 *   SendToGroup(group, x...)    "group"(x...) (GroupBroadcastData)
 *   SendToConnection(id, x...)  "direct"(x...) (MultiConnectionData)
 *   JoinGroup(g) / LeaveGroup(g)  JoinGroupWithAck / LeaveGroupWithAck, completes after the Ack
 *   JoinAndSendNoAwait(g, text) the un-awaited AddToGroupAsync race, made deterministic: the group
 *                               send leaves on one connection first, the join follows on another
 *                               once the send has been written; the caller does not get its message
 *   JoinAndSendAwait(g, text)   join, wait for the Ack, then the group send: the caller gets it
 *   AddUserToGroup(user, g)     UserJoinGroupWithAck, completes after the Ack
 *   Close(reason?)              CloseConnection for the caller
 *   GetConnectionId()           result: the caller's connection id
 *
 * Target names match case-insensitively (as ASP.NET Core binds them).  Every
 * invocation with an invocationId gets a Completion: the method's result, null,
 * or an error.  Error texts follow ASP.NET Core with detailed errors on.
 *
 * Work that outlives the invocation (an ack wait, a write completion) keeps
 * copies of what it needs and finds the caller again by connection id.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "appserver.h"
#include "util/alloc.h"

typedef struct call {
    sb_app_client *cl;
    const char *invocation_id; /* NULL: non-blocking, no completion */
    const char *target;
    json_t *args;
    sb_app_origin origin;
} call;

static void complete(call *c, const char *error, json_t *result) {
    if (c->invocation_id)
        sb_app_client_complete(c->cl, c->invocation_id, error, result);
}

static int need_args(call *c, size_t n) {
    size_t have = json_array_size(c->args);
    if (have >= n)
        return 1;
    char err[300];
    snprintf(
        err, sizeof err,
        "Failed to invoke '%s' due to an error on the server. InvalidDataException: Invocation provides %zu "
        "argument(s) but target expects %zu.",
        c->target, have, n);
    complete(c, err, NULL);
    return 0;
}

/* The string argument i, or NULL after answering the caller with a binding error. */
static const char *string_arg(call *c, size_t i) {
    json_t *v = json_array_get(c->args, i);
    if (json_is_string(v))
        return json_string_value(v);
    char err[300];
    snprintf(
        err, sizeof err,
        "Failed to invoke '%s' due to an error on the server. InvalidDataException: Error binding arguments. "
        "Make sure that the types of the provided values match the types of the hub method being invoked.",
        c->target);
    complete(c, err, NULL);
    return NULL;
}

/* args[from..] as a new array. */
static json_t *rest_args(call *c, size_t from) {
    json_t *a = json_array();
    for (size_t i = from; i < json_array_size(c->args); i++)
        json_array_append(a, json_array_get(c->args, i));
    return a;
}

static void send_data(call *c, sb_svc_msg *m, const char *target, json_t *args) {
    sb_app_payloads_build(m, target, args);
    sb_app_send(&c->origin, m, NULL, NULL);
    sb_app_payloads_free(m);
}

static void send_to_connection(call *c, const char *id, const char *target, json_t *args) {
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    char *ids[1] = {(char *)id};
    m.type = SB_SVC_MULTI_CONNECTION_DATA;
    m.connection_ids.v = ids;
    m.connection_ids.n = 1;
    send_data(c, &m, target, args);
}

static void send_to_group(const sb_app_origin *o, const char *group, json_t *args, sb_wsc_written_cb then,
                          void *then_arg) {
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_GROUP_BROADCAST_DATA;
    m.group = (char *)group;
    sb_app_payloads_build(&m, "group", args);
    sb_app_send(o, &m, then, then_arg);
    sb_app_payloads_free(&m);
}

/* ---- waiting for acks ---------------------------------------------------------- */

typedef struct pending {
    sb_app_hub *hub;
    char *conn_id;
    char *invocation_id; /* NULL: nobody to complete */
    char *target;
    char *group; /* JoinAndSendAwait: send to it after the ack */
    json_t *group_args;
    int diagnostic;
    sb_app_sconn *via; /* JoinAndSendNoAwait: the connection for the join */
} pending;

static pending *pending_new(call *c) {
    pending *p = sb_calloc(1, sizeof *p);
    p->hub = c->cl->hub;
    p->conn_id = sb_strdup(c->cl->id);
    p->invocation_id = c->invocation_id ? sb_strdup(c->invocation_id) : NULL;
    p->target = sb_strdup(c->target);
    p->diagnostic = c->cl->diagnostic;
    return p;
}

static void pending_free(pending *p) {
    sb_free(p->conn_id);
    sb_free(p->invocation_id);
    sb_free(p->target);
    sb_free(p->group);
    json_decref(p->group_args);
    sb_free(p);
}

static const char *status_text(int status) {
    switch (status) {
    case SB_SVC_ACK_TIMEOUT:
        return "TimeoutException: The service timed out the operation.";
    case SB_SVC_ACK_INTERNAL_SERVER_ERROR:
        return "TimeoutException: The service failed the operation with an internal error.";
    case 0:
        return "TimeoutException: No ack was received from the service.";
    default:
        return "InvalidOperationException: The service answered with an unknown ack status.";
    }
}

static void on_ack(void *arg, int status, const char *message) {
    pending *p = arg;
    sb_app_client *cl = sb_app_client_find(p->hub, p->conn_id);
    int ok = status == SB_SVC_ACK_OK || status == SB_SVC_ACK_NOT_FOUND;
    if (cl && ok && p->group) {
        sb_app_origin o = {p->hub, cl->sconn, p->diagnostic};
        send_to_group(&o, p->group, p->group_args, NULL, NULL);
    }
    if (cl && p->invocation_id) {
        if (ok) {
            sb_app_client_complete(cl, p->invocation_id, NULL, NULL);
        } else {
            char err[400];
            snprintf(err, sizeof err, "An unexpected error occurred invoking '%s' on the server. %s",
                     p->target, status_text(status));
            sb_app_client_complete(cl, p->invocation_id, err, NULL);
        }
    }
    pending_free(p);
}

static void send_group_op(const sb_app_origin *o, int type, const char *who, const char *group, pending *p) {
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    if (type == SB_SVC_USER_JOIN_GROUP_WITH_ACK || type == SB_SVC_USER_LEAVE_GROUP_WITH_ACK)
        m.user_id = (char *)who;
    else
        m.connection_id = (char *)who;
    m.group = (char *)group;
    sb_app_send_with_ack(o, &m, on_ack, p);
}

/* ---- the methods ------------------------------------------------------------------ */

static void m_echo(call *c) {
    send_to_connection(c, c->cl->id, "echo", c->args);
    complete(c, NULL, json_array_get(c->args, 0));
}

static void m_broadcast(call *c) {
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_BROADCAST_DATA;
    send_data(c, &m, "broadcast", c->args);
    complete(c, NULL, NULL);
}

static void m_send_to_user(call *c) {
    const char *user;
    if (!need_args(c, 1) || !(user = string_arg(c, 0)))
        return;
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_USER_DATA;
    m.user_id = (char *)user;
    json_t *rest = rest_args(c, 1);
    send_data(c, &m, "user", rest);
    json_decref(rest);
    complete(c, NULL, NULL);
}

static void m_send_to_group(call *c) {
    const char *group;
    if (!need_args(c, 1) || !(group = string_arg(c, 0)))
        return;
    json_t *rest = rest_args(c, 1);
    send_to_group(&c->origin, group, rest, NULL, NULL);
    json_decref(rest);
    complete(c, NULL, NULL);
}

static void m_send_to_connection(call *c) {
    const char *id;
    if (!need_args(c, 1) || !(id = string_arg(c, 0)))
        return;
    json_t *rest = rest_args(c, 1);
    send_to_connection(c, id, "direct", rest);
    json_decref(rest);
    complete(c, NULL, NULL);
}

static void group_membership(call *c, int type) {
    const char *group;
    if (!need_args(c, 1) || !(group = string_arg(c, 0)))
        return;
    send_group_op(&c->origin, type, c->cl->id, group, pending_new(c));
}

static void m_join_group(call *c) {
    group_membership(c, SB_SVC_JOIN_GROUP_WITH_ACK);
}
static void m_leave_group(call *c) {
    group_membership(c, SB_SVC_LEAVE_GROUP_WITH_ACK);
}

static void m_add_user_to_group(call *c) {
    const char *user, *group;
    if (!need_args(c, 2) || !(user = string_arg(c, 0)) || !(group = string_arg(c, 1)))
        return;
    send_group_op(&c->origin, SB_SVC_USER_JOIN_GROUP_WITH_ACK, user, group, pending_new(c));
}

/* JoinAndSendNoAwait, second half: the group send has left; now the join, on the other connection. */
static void join_after_send(void *arg, int status) {
    pending *p = arg;
    sb_app_origin o = {p->hub, p->via, p->diagnostic};
    char *group = p->group;
    p->group = NULL; /* the ack needs no follow-up send */
    send_group_op(&o, SB_SVC_JOIN_GROUP_WITH_ACK, p->conn_id, group, p);
    sb_free(group);
}

static void m_join_and_send_no_await(call *c) {
    const char *group, *text;
    if (!need_args(c, 2) || !(group = string_arg(c, 0)) || !(text = string_arg(c, 1)))
        return;
    sb_app_sconn *first = sb_app_hub_pick(c->cl->hub, c->cl->sconn, NULL);
    pending *p = pending_new(c);
    sb_free(p->invocation_id);
    p->invocation_id = NULL; /* the invocation completes now, not after the ack */
    p->group = sb_strdup(group);
    p->via = sb_app_hub_pick(c->cl->hub, NULL, first);
    sb_app_origin o = c->origin;
    o.via = first;
    json_t *args = json_pack("[s]", text);
    send_to_group(&o, group, args, join_after_send, p);
    json_decref(args);
    complete(c, NULL, NULL);
}

static void m_join_and_send_await(call *c) {
    const char *group, *text;
    if (!need_args(c, 2) || !(group = string_arg(c, 0)) || !(text = string_arg(c, 1)))
        return;
    pending *p = pending_new(c);
    p->group = sb_strdup(group);
    p->group_args = json_pack("[s]", text);
    send_group_op(&c->origin, SB_SVC_JOIN_GROUP_WITH_ACK, c->cl->id, group, p);
}

static void m_close(call *c) {
    json_t *r = json_array_get(c->args, 0);
    const char *reason = json_is_string(r) ? json_string_value(r) : "";
    /* the completion first: once the service has the CloseConnection the caller is gone */
    complete(c, NULL, NULL);
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_CLOSE_CONNECTION;
    m.connection_id = c->cl->id;
    m.error = (char *)reason;
    sb_app_send(&c->origin, &m, NULL, NULL);
    sb_app_client_forget(c->cl);
}

static void m_get_connection_id(call *c) {
    json_t *id = json_string(c->cl->id);
    complete(c, NULL, id);
    json_decref(id);
}

static const struct {
    const char *name;
    void (*run)(call *c);
} methods[] = {
    {"Echo", m_echo},
    {"Broadcast", m_broadcast},
    {"SendToUser", m_send_to_user},
    {"SendToGroup", m_send_to_group},
    {"SendToConnection", m_send_to_connection},
    {"JoinGroup", m_join_group},
    {"LeaveGroup", m_leave_group},
    {"JoinAndSendNoAwait", m_join_and_send_no_await},
    {"JoinAndSendAwait", m_join_and_send_await},
    {"AddUserToGroup", m_add_user_to_group},
    {"Close", m_close},
    {"GetConnectionId", m_get_connection_id},
};

void sb_app_invoke(sb_app_client *cl, const sb_hub_msg *hm, json_t *args) {
    call c = {
        .cl = cl,
        .invocation_id = hm->invocation_id,
        .target = hm->target,
        .args = args,
        .origin = {cl->hub, cl->sconn, cl->diagnostic},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcasecmp(methods[i].name, hm->target) == 0) {
            methods[i].run(&c);
            return;
        }
    }
    char err[300];
    snprintf(err, sizeof err, "Unknown hub method '%s'", hm->target);
    complete(&c, err, NULL);
}
