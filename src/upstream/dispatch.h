/*
 * dispatch.h - serverless upstream for the running service: turns a client's
 * events into webhook calls (http_multi.c) and the upstream's answers into
 * what the client sees; owns the current upstream settings, their
 * persistence in <data_dir>/upstream.json, and the counters /metrics shows.
 *
 * Events (category/event, when a template matches; serverless mode only):
 *   connections/connect      blocking, before the handshake is answered: the
 *                            handshake waits for the upstream (see
 *                            sb_upstream_connect); never retried
 *   connections/connected    after the handshake, body {"type":10}; retried
 *   connections/disconnected when a connected client closes, body {"type":11}
 *                            or {"type":11,"error":"..."}; retried
 *   messages/<target>        every Invocation, body = the message as the
 *                            client's protocol encoded it, without framing;
 *                            a blocking one's answer is its Completion; never
 *                            retried
 *
 * Failures (a transport error, a timeout, a status other than 200/204) are
 * logged (InvokeUpstreamFailed resource-log records) and counted; what the
 * client sees is in docs/UPSTREAM.md.
 *
 * Called by: signalr/client.c (the events), rest/mgmt_api.c (settings),
 * metrics/prometheus.c (stats), server.c (lifecycle).  Loop thread only.
 */
#ifndef SB_UPSTREAM_DISPATCH_H
#define SB_UPSTREAM_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "hub/hub.h"
#include "signalr/hubproto.h"
#include "upstream/upstream.h"

struct sb_server;

/* ---- lifecycle (server.c) ---- */
/* Settings from <data_dir>/upstream.json when it exists (the management API wrote it), else from
 * upstream_url_template.  Prints errors. */
int sb_upstream_start(struct sb_server *srv);
/* Calls running, queued or waiting to retry, plus a settings save in progress. */
size_t sb_upstream_pending(struct sb_server *srv);
/* End every call (cancelled) and close the HTTP client's handles.  Idempotent. */
void sb_upstream_stop(struct sb_server *srv);
/* Release what is left after the loop ended. */
void sb_upstream_free(struct sb_server *srv);

/* ---- client events (signalr/client.c) ---- */
typedef enum sb_upstream_connect_outcome {
    SB_UPSTREAM_CONNECT_ACCEPT = 0, /* 200/204: finish the handshake */
    SB_UPSTREAM_CONNECT_REJECT,     /* 401/403: handshake error with the upstream's status and text */
    SB_UPSTREAM_CONNECT_FAILED,     /* anything else: handshake error, close category InvokeUpstreamFailed */
} sb_upstream_connect_outcome;

typedef struct sb_upstream_connect_result {
    sb_upstream_connect_outcome outcome;
    const char *error;         /* REJECT / FAILED: the text for the client */
    const char *user_id;       /* ACCEPT: the user id the upstream gave the connection, or NULL */
    const char *const *groups; /* ACCEPT: groups the connection joins */
    size_t ngroups;
} sb_upstream_connect_result;

typedef void (*sb_upstream_connect_cb)(sb_client *cl, const sb_upstream_connect_result *r);

/*
 * Send the connect event for a client whose handshake request was accepted.  SB_ENOENT: no
 * template matches (or not serverless): answer the handshake now.  SB_OK: cb runs exactly once
 * with the answer, with the client referenced for the call; it must re-check cl->state (the
 * client may have closed meanwhile).  cb runs before this returns when the call cannot even be
 * queued.  Until then sb_upstream_connect_pending() is true.
 */
int sb_upstream_connect(sb_client *cl, sb_upstream_connect_cb cb);
int sb_upstream_connect_pending(const sb_client *cl);
/* The handshake completed / a connected client is closing (error: its close error or NULL).
 * Everything needed is copied: the client may be freed right after. */
void sb_upstream_connected(sb_client *cl);
void sb_upstream_disconnected(sb_client *cl, const char *error);
/* A client Invocation.  SB_ENOENT: no template matches (the caller answers a blocking one);
 * SB_OK: the upstream (or this module, on failure) answers it. */
int sb_upstream_invoke(sb_client *cl, const sb_hub_msg *m);

/* ---- settings (rest/mgmt_api.c) ---- */
/* The current list (empty when the module is not started). */
const sb_upstream_settings *sb_upstream_current(struct sb_server *srv);
/* Replace the list (copied): calls made from now on use it; it is saved off the loop. */
void sb_upstream_apply(struct sb_server *srv, const sb_upstream_settings *s);

/* ---- counters (metrics/prometheus.c) ---- */
typedef enum sb_upstream_event_kind {
    SB_UPSTREAM_EV_CONNECT = 0,
    SB_UPSTREAM_EV_CONNECTED,
    SB_UPSTREAM_EV_DISCONNECTED,
    SB_UPSTREAM_EV_MESSAGE,
    SB_UPSTREAM_EV_COUNT
} sb_upstream_event_kind;

typedef enum sb_upstream_outcome {
    SB_UPSTREAM_OUT_SUCCESS = 0, /* 200 or 204 */
    SB_UPSTREAM_OUT_REJECTED,    /* connect answered 401/403 */
    SB_UPSTREAM_OUT_HTTP_ERROR,  /* any other status */
    SB_UPSTREAM_OUT_TIMEOUT,
    SB_UPSTREAM_OUT_UNREACHABLE, /* refused, reset, DNS, ... */
    SB_UPSTREAM_OUT_TOO_LARGE,   /* answer over 16 MB (invocations) / 1 MB (connect) */
    SB_UPSTREAM_OUT_QUEUE_FULL,  /* upstream_max_queue calls already waiting */
    SB_UPSTREAM_OUT_CANCELLED,   /* shutdown */
    SB_UPSTREAM_OUT_COUNT
} sb_upstream_outcome;

typedef struct sb_upstream_stats {
    uint64_t requests[SB_UPSTREAM_EV_COUNT][SB_UPSTREAM_OUT_COUNT]; /* finished calls, after retries */
    uint64_t retries;
    size_t active, queued, retrying;
} sb_upstream_stats;

void sb_upstream_get_stats(struct sb_server *srv, sb_upstream_stats *out);
/* Label values: "connect", "connected", "disconnected", "message"; "success", "rejected", ... */
const char *sb_upstream_event_label(sb_upstream_event_kind e);
const char *sb_upstream_outcome_label(sb_upstream_outcome o);

#endif
