/*
 * events.c - resource-log producers; see events.h.
 *
 * Collecting rules (the seed's "collect all" / "collect partially"):
 *  - nothing is produced unless a diagnostic setting routes resource logs;
 *  - a log type whose box is ticked in the log source settings is collected
 *    for every connection ("collect all");
 *  - otherwise only for diagnostic clients ("collect partially"), which get
 *    connectivity events and messages in both directions;
 *  - under "collect all" messaging, client-to-server messages of ordinary
 *    clients are not traced (the service does not parse them for tracing):
 *    only server-to-client messages, whose tracing ids the app servers stamp.
 */
#include "diag/events.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "diag/diag.h"
#include "diag/names.h"
#include "server.h"
#include "util/alloc.h"

const char *sb_log_transport_name(sb_transport t) {
    switch (t) {
    case SB_TRANSPORT_WEBSOCKETS:
        return SB_LOG_TRANSPORT_WEBSOCKETS;
    case SB_TRANSPORT_SSE:
        return SB_LOG_TRANSPORT_SSE;
    case SB_TRANSPORT_LONGPOLLING:
        return SB_LOG_TRANSPORT_LONGPOLLING;
    case SB_TRANSPORT_NONE:
        break;
    }
    return NULL;
}

static sb_server *srv_of(sb_client *cl) { return cl->hub->router->srv; }

static void client_fields(sb_log_fields *f, sb_client *cl) {
    memset(f, 0, sizeof *f);
    f->type = SB_LOGT_CONNECTIVITY;
    f->level = SB_LEVEL_INFORMATIONAL;
    f->collection = SB_LOG_COLLECTION_CONNECTION;
    f->caller_ip = cl->caller_ip[0] ? cl->caller_ip : NULL;
    f->connection_id = cl->id;
    f->user_id = cl->user_id;
    f->transport_type = sb_log_transport_name(cl->transport);
    f->connection_type = SB_LOG_CONNECTION_TYPE_CLIENT;
    f->hub = cl->hub->name;
}

void sb_log_client_started(sb_client *cl) {
    sb_server *srv = srv_of(cl);
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, cl->diagnostic))
        return;
    sb_log_fields f;
    client_fields(&f, cl);
    f.operation_name = SB_OP_CONNECTION_STARTED;
    f.message = SB_MSG_CONNECTION_STARTED;
    sb_diag_emit(srv, &f);
    if (srv->mode == SB_MODE_SERVERLESS) {
        f.operation_name = SB_OP_SERVERLESS_MODE_ENTERED;
        f.message = SB_MSG_SERVERLESS_MODE_ENTERED;
        sb_diag_emit(srv, &f);
    }
}

void sb_log_client_closed(sb_client *cl, sb_close_reason why, const char *error) {
    sb_server *srv = srv_of(cl);
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, cl->diagnostic))
        return;
    sb_log_fields f;
    client_fields(&f, cl);
    f.operation_name = SB_OP_CONNECTION_ABORTED;
    f.level = SB_LEVEL_WARNING;
    switch (why) {
    case SB_CLOSE_NORMAL:
        f.operation_name = SB_OP_CONNECTION_ENDED;
        f.level = SB_LEVEL_INFORMATIONAL;
        f.message = SB_MSG_CONNECTION_ENDED;
        break;
    case SB_CLOSE_BY_APP:
        /* an application's deliberate close is an abort with this reason, as Azure records it */
        f.message = SB_MSG_APP_SERVER_CLOSED;
        f.level = SB_LEVEL_INFORMATIONAL;
        break;
    case SB_CLOSE_PING_TIMEOUT:
        f.message = SB_MSG_PING_TIMEOUT;
        break;
    case SB_CLOSE_SERVICE_RELOAD:
        f.message = SB_MSG_SERVICE_RELOADING;
        break;
    case SB_CLOSE_SERVER_DROPPED:
        f.message = SB_MSG_SERVER_CONNECTION_DROPPED;
        break;
    case SB_CLOSE_INTERNAL_ERROR:
        f.message = SB_MSG_INTERNAL_TRANSIENT_ERROR;
        f.level = SB_LEVEL_ERROR;
        break;
    case SB_CLOSE_SLOW_CLIENT:
        f.message = "Connection closed because it is too slow to receive messages";
        break;
    case SB_CLOSE_TRANSPORT_LOST:
        f.message = "Connection dropped by the client without a close message";
        break;
    case SB_CLOSE_HANDSHAKE_TIMEOUT:
        f.message = "Handshake was canceled";
        break;
    case SB_CLOSE_HANDSHAKE_ERROR:
    case SB_CLOSE_PROTOCOL_ERROR:
        f.message = error && *error ? error : "Connection closed with an error";
        break;
    case SB_CLOSE_NEGOTIATE_TIMEOUT:
        return; /* never connected: no connection to end */
    case SB_CLOSE_UPSTREAM_FAILED:
        f.message = error && *error ? error : SB_MSG_INVOKE_UPSTREAM_FAILED;
        break;
    }
    sb_diag_emit(srv, &f);
}

/* A Warning about a request or message the service refused (no connection record to hang it on). */
static void refusal_fields(sb_log_fields *f, const char *collection, const char *operation, const char *caller_ip,
                           const char *hub, const char *message) {
    memset(f, 0, sizeof *f);
    f->type = SB_LOGT_CONNECTIVITY;
    f->level = SB_LEVEL_WARNING;
    f->collection = collection;
    f->operation_name = operation;
    f->connection_type = SB_LOG_CONNECTION_TYPE_CLIENT;
    f->caller_ip = caller_ip && *caller_ip ? caller_ip : NULL;
    f->hub = hub;
    f->message = message;
}

void sb_log_client_unauthorized(sb_server *srv, const char *caller_ip, const char *hub, const char *message) {
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, 0))
        return;
    sb_log_fields f;
    refusal_fields(&f, SB_LOG_COLLECTION_AUTHORIZATION, SB_OP_AUTHORIZATION_FAILED, caller_ip, hub, message);
    sb_diag_emit(srv, &f);
}

void sb_log_client_throttled(sb_server *srv, const char *caller_ip, const char *hub, const char *user_id,
                             int diagnostic, const char *message) {
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, diagnostic))
        return;
    sb_log_fields f;
    refusal_fields(&f, SB_LOG_COLLECTION_THROTTLING, SB_OP_CONNECTION_ABORTED, caller_ip, hub, message);
    f.user_id = user_id;
    sb_diag_emit(srv, &f);
}

void sb_log_message_throttled(sb_server *srv, const char *caller_ip, const char *hub,
                              const char *connection_type, const char *connection_id) {
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, 0))
        return;
    sb_log_fields f;
    refusal_fields(&f, SB_LOG_COLLECTION_THROTTLING, SB_OP_MESSAGE_THROTTLED, caller_ip, hub,
                   SB_MSG_MESSAGE_COUNT_REACHES_LIMIT);
    f.connection_type = connection_type;
    f.connection_id = connection_id;
    sb_diag_emit(srv, &f);
}

static void server_fields(sb_log_fields *f, const char *scid, const char *hub, const char *ip, const char *server_id) {
    memset(f, 0, sizeof *f);
    f->type = SB_LOGT_CONNECTIVITY;
    f->level = SB_LEVEL_INFORMATIONAL;
    f->collection = SB_LOG_COLLECTION_CONNECTION;
    f->connection_id = scid;
    f->user_id = server_id;
    f->caller_ip = ip && *ip ? ip : NULL;
    f->hub = hub;
    f->transport_type = SB_LOG_TRANSPORT_WEBSOCKETS;
    f->connection_type = SB_LOG_CONNECTION_TYPE_SERVER;
}

void sb_log_server_started(sb_server *srv, const char *scid, const char *hub, const char *ip, const char *server_id) {
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, 0))
        return;
    sb_log_fields f;
    server_fields(&f, scid, hub, ip, server_id);
    f.operation_name = SB_OP_CONNECTION_STARTED;
    f.message = SB_MSG_CONNECTION_STARTED;
    sb_diag_emit(srv, &f);
}

void sb_log_server_closed(sb_server *srv, const char *scid, const char *hub, const char *ip, const char *server_id,
                          int aborted, const char *message) {
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, 0))
        return;
    sb_log_fields f;
    server_fields(&f, scid, hub, ip, server_id);
    f.operation_name = aborted ? SB_OP_CONNECTION_ABORTED : SB_OP_CONNECTION_ENDED;
    f.level = aborted ? SB_LEVEL_WARNING : SB_LEVEL_INFORMATIONAL;
    f.message = message ? message : SB_MSG_CONNECTION_ENDED;
    sb_diag_emit(srv, &f);
}

/*
 * Service-generated tracing ids (Path 1), laid out like the SDK's: a random
 * per-process 28-bit prefix in bits 59..32 and a counter in bits 31..0, so ids
 * from this service and from app servers do not collide in one workspace.
 */
static uint64_t next_tracing_id(void) {
    static uint64_t prefix;
    static uint32_t counter;
    if (!prefix) {
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r = 0x5b0a4d;
        prefix = ((uint64_t)((r & 0x0FFFFFFF) | 1)) << 32;
    }
    return prefix | counter++;
}

static void message_fields(sb_log_fields *f, sb_client *cl) {
    client_fields(f, cl);
    f->type = SB_LOGT_MESSAGING;
    f->collection = SB_LOG_COLLECTION_MESSAGE;
    f->has_tracing_id = 1;
}

uint64_t sb_log_message_from_client(sb_client *cl, const char *message_type) {
    sb_server *srv = srv_of(cl);
    /* client messages are traced only for diagnostic clients, whatever the collecting behaviour */
    if (!cl->diagnostic || !sb_diag_should_log(srv, SB_LOGT_MESSAGING, 1))
        return 0;
    uint64_t id = next_tracing_id();
    char text[160];
    snprintf(text, sizeof text, SB_MSG_FMT_RECEIVED_FROM_CLIENT, (unsigned long long)id, cl->id);
    sb_log_fields f;
    message_fields(&f, cl);
    f.operation_name = SB_OP_MESSAGE_RECEIVED_FROM_CLIENT;
    f.message = text;
    f.message_type = message_type;
    f.tracing_id = id;
    sb_diag_emit(srv, &f);
    return id;
}

void sb_log_message_to_server(sb_client *cl, uint64_t tracing_id, const char *scid) {
    if (!tracing_id)
        return;
    sb_server *srv = srv_of(cl);
    if (!sb_diag_should_log(srv, SB_LOGT_MESSAGING, cl->diagnostic))
        return;
    char text[200];
    snprintf(text, sizeof text, SB_MSG_FMT_SENT_TO_SERVER, (unsigned long long)tracing_id, scid);
    sb_log_fields f;
    message_fields(&f, cl);
    f.operation_name = SB_OP_MESSAGE_SENT_TO_SERVER;
    f.message = text;
    f.tracing_id = tracing_id;
    sb_diag_emit(srv, &f);
}

void sb_log_message_from_server(sb_server *srv, sb_hub *hub, const char *message_type, uint64_t tracing_id,
                                const char *scid, const char *ip) {
    /* An app server stamps tracing ids only under "collect all" or for a diagnostic client's flow,
     * so a stamped message is collected whenever resource logs are. */
    if (!tracing_id || !sb_diag_should_log(srv, SB_LOGT_MESSAGING, 1))
        return;
    char text[256];
    snprintf(text, sizeof text, SB_MSG_FMT_RECEIVED_FROM_SERVER, message_type, (unsigned long long)tracing_id, scid);
    sb_log_fields f;
    memset(&f, 0, sizeof f);
    f.type = SB_LOGT_MESSAGING;
    f.level = SB_LEVEL_INFORMATIONAL;
    f.collection = SB_LOG_COLLECTION_MESSAGE;
    f.operation_name = SB_OP_MESSAGE_RECEIVED_FROM_SERVER;
    f.connection_id = scid;
    f.connection_type = SB_LOG_CONNECTION_TYPE_SERVER;
    f.transport_type = SB_LOG_TRANSPORT_WEBSOCKETS;
    f.caller_ip = ip && *ip ? ip : NULL;
    f.hub = hub ? hub->name : NULL;
    f.message = text;
    f.message_type = message_type;
    f.tracing_id = tracing_id;
    f.has_tracing_id = 1;
    sb_diag_emit(srv, &f);
}

/* Called for every recipient of a broadcast: after the first, a recipient costs a copy of its four fields. */
void sb_log_message_to_client(sb_client *cl, sb_msg *m) {
    sb_server *srv = srv_of(cl);
    if (!m->tracing_id || !sb_diag_should_log(srv, SB_LOGT_MESSAGING, cl->diagnostic))
        return;
    sb_log_recipient rc = {.connection_id = cl->id,
                           .user_id = cl->user_id,
                           .caller_ip = cl->caller_ip[0] ? cl->caller_ip : NULL,
                           .transport_type = sb_log_transport_name(cl->transport)};
    if (sb_diag_fanout_add(srv, m->log_fanout, cl->hub, &rc))
        return;
    char head[SB_LOG_SENT_HEAD_MAX];
    sb_log_fields f;
    sb_log_fields_sent_to_client(&f, cl->hub->name, m->tracing_id, head, sizeof head);
    m->log_fanout = sb_diag_fanout_begin(srv, cl->hub, &f, &rc);
}

/* Route template: the path with ids replaced by their parameter names. */
static void route_template(const char *path, char *out, size_t outlen) {
    static const char *const params[][2] = {{"hubs", "{hub}"},        {"groups", "{group}"},
                                            {"users", "{user}"},      {"connections", "{connectionId}"},
                                            {"diagnosticSettings", "{name}"}, {"workspaces", "{workspaceId}"}};
    size_t o = 0;
    const char *p = path;
    const char *replace_next = NULL;
    while (*p && o + 1 < outlen) {
        if (*p == '/') {
            out[o++] = *p++;
            continue;
        }
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *seg = p;
        size_t seglen = n;
        if (replace_next) {
            seg = replace_next;
            seglen = strlen(replace_next);
            replace_next = NULL;
        } else {
            for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
                if (strlen(params[i][0]) == n && strncmp(p, params[i][0], n) == 0)
                    replace_next = params[i][1];
        }
        if (o + seglen >= outlen)
            break;
        memcpy(out + o, seg, seglen);
        o += seglen;
        p += n;
    }
    out[o] = '\0';
}

/* The query with access_token values redacted (tokens never reach the logs). */
static void redact_query(const char *q, char *out, size_t outlen) {
    size_t o = 0;
    const char *p = q;
    while (*p && o + 1 < outlen) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n >= 13 && strncmp(p, "access_token=", 13) == 0) {
            o += (size_t)snprintf(out + o, outlen - o, "access_token=***");
        } else {
            size_t k = n < outlen - o - 1 ? n : outlen - o - 1;
            memcpy(out + o, p, k);
            o += k;
        }
        if (!amp || o + 1 >= outlen)
            break;
        out[o++] = '&';
        p = amp + 1;
    }
    if (o >= outlen)
        o = outlen - 1;
    out[o] = '\0';
}

void sb_log_http_request(sb_server *srv, const char *method, const char *path, const char *query, int status,
                         double duration_ms, const char *caller_ip) {
    if (!sb_diag_should_log(srv, SB_LOGT_HTTP, 0))
        return;
    char tmpl[512], url[2048], q[1536] = "";
    route_template(path, tmpl, sizeof tmpl);
    if (query && *query)
        redact_query(query, q, sizeof q);
    snprintf(url, sizeof url, "%s%s%s%s", srv->endpoint, path, q[0] ? "?" : "", q);
    char text[600];
    snprintf(text, sizeof text, "%s %s %d", method, tmpl, status);
    sb_log_fields f;
    memset(&f, 0, sizeof f);
    f.type = SB_LOGT_HTTP;
    f.level = status >= 500 ? SB_LEVEL_ERROR : status >= 400 ? SB_LEVEL_WARNING : SB_LEVEL_INFORMATIONAL;
    f.operation_name = SB_OP_HTTP_REQUEST;
    f.http_method = method;
    f.url = url;
    f.route_template = tmpl;
    f.status_code = status;
    f.duration_ms = duration_ms;
    f.caller_ip = caller_ip && *caller_ip ? caller_ip : NULL;
    f.message = text;
    sb_diag_emit(srv, &f);
}

void sb_log_upstream_failed(sb_server *srv, const char *hub, const char *connection_id, const char *user_id,
                            sb_transport transport, int diagnostic, const char *caller_ip, const char *category,
                            const char *event, const char *error) {
    if (!sb_diag_should_log(srv, SB_LOGT_CONNECTIVITY, diagnostic))
        return;
    char text[768];
    snprintf(text, sizeof text, SB_MSG_FMT_INVOKE_UPSTREAM_FAILED, category, event, error ? error : "");
    sb_log_fields f;
    memset(&f, 0, sizeof f);
    f.type = SB_LOGT_CONNECTIVITY;
    f.level = SB_LEVEL_WARNING;
    f.collection = SB_LOG_COLLECTION_CONNECTION;
    f.operation_name = SB_OP_INVOKE_UPSTREAM_FAILED;
    f.connection_type = SB_LOG_CONNECTION_TYPE_CLIENT;
    f.transport_type = sb_log_transport_name(transport);
    f.caller_ip = caller_ip;
    f.connection_id = connection_id;
    f.user_id = user_id;
    f.hub = hub;
    f.message = text;
    sb_diag_emit(srv, &f);
}
