/*
 * server.h - process state: the event loop, the listener, the router, the
 * configuration and the per-loop-turn housekeeping.  The central structs of
 * the service are reachable from sb_server.
 *
 * One libuv loop runs all network I/O and routing (no blocking work on it:
 * no disk, SQLite, DNS or outbound HTTP).  A uv_check handle flushes the
 * output of every connection written to during the turn; a sweep timer drives
 * keep-alive pings and timeouts for all clients at once (no per-connection
 * timers).
 *
 * Shutdown: SIGINT/SIGTERM start a graceful stop - the listener closes,
 * /api/v1/health answers 503, clients get a reconnect-allowed Close, queued
 * output is flushed, then the loop ends with every handle closed.
 */
#ifndef SB_SERVER_H
#define SB_SERVER_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "hub/hub.h"
#include "util/list.h"

typedef struct sb_server {
    uv_loop_t *loop;
    sb_config cfg;
    uv_tcp_t listener;
    uv_check_t flush_check;
    uv_timer_t sweep_timer;
    uv_signal_t sig_int, sig_term;
    uv_timer_t stop_timer;
    sb_router router;
    sb_list conns;           /* every sb_conn (all_link) */
    sb_list pending_writes;  /* sb_conn with queued output (pending_link) */
    char *access_keys[2];    /* primary, secondary (NULL if unset) */
    size_t naccess_keys;
    char *endpoint;          /* e.g. http://127.0.0.1:8080 (no trailing slash) */
    int port;                /* bound port */
    int stopping;
    uint64_t stop_elapsed_ms; /* time spent in the graceful stop so far */
    int mode;                /* enum sb_service_mode */
    char resource_id[512];
    struct sb_diag *diag;       /* resource logs pipeline (diag/) */
    size_t ndiagnostic_clients; /* connected diagnostic clients (limit max_diagnostic_clients) */
    struct sb_service *servers; /* default mode: app-server connection registry (service/) */
} sb_server;

/* Milliseconds on the loop clock (cheap, cached per turn). */
static inline uint64_t sb_now_ms(const sb_server *s) { return uv_now(s->loop); }

/* Prepare (config already loaded): access key, listener.  Prints errors to stderr. */
int sb_server_init(sb_server *s, uv_loop_t *loop);
/* Run until stopped; returns 0 after a clean shutdown. */
int sb_server_run(sb_server *s);
void sb_server_free(sb_server *s);
/* Begin graceful shutdown (idempotent). */
void sb_server_stop(sb_server *s);

#endif
