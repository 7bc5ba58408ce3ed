/*
 * server.h - process state: the event loop, the listener, the router, the
 * configuration and the per-loop-turn housekeeping.  The central structs of
 * the service are reachable from sb_server.
 *
 * One libuv loop runs all network I/O and routing (no blocking work on it:
 * no disk, SQLite, DNS or outbound HTTP); write threads (write_threads) only
 * share the write syscalls of a busy turn's flush (net/conn.c).  A uv_check handle flushes the
 * output of every connection written to during the turn; a sweep timer drives
 * keep-alive pings and timeouts for all clients at once (no per-connection
 * timers).
 *
 * Shutdown: SIGINT/SIGTERM start a graceful stop - the listener closes,
 * /api/v1/health answers 503, clients get a reconnect-allowed Close, queued
 * output is flushed, then the loop ends with every handle closed.
 *
 * Reload: SIGHUP (`switchboard reload`, which finds the process through
 * <data_dir>/switchboard.pid) re-reads the configuration off the loop and
 * applies the reloadable settings (tier, units, free_tier_daily_messages,
 * max_connections, max_diagnostic_clients), closes every client with a
 * reconnect-allowed Close "Service reloading, try reconnecting" and reopens
 * the log sinks; the service keeps running.  A configuration that does not
 * load (or whose tier and units do not fit) is reported and nothing reloads.
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
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t stop_timer;
    sb_router router;
    sb_list conns;           /* every sb_conn (all_link) */
    sb_list pending_writes;  /* sb_conn with queued output (pending_link) */
    struct sb_parfor *flush_pool; /* write threads of the parallel flush (net/conn.c), or NULL */
    void *flush_jobs;             /* the parallel flush's job array and pointers to it (conn.c owns the type) */
    void **flush_ptrs;
    size_t flush_jobs_cap;
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
    struct sb_metrics *metrics; /* platform metrics: counters, current minute (metrics/) */
    int reloading;              /* a reload is reading the configuration */
    struct sb_upstream *upstream; /* serverless: upstream settings and webhook calls (upstream/) */
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
/* Graceful reload (SIGHUP): see above.  Ignored while stopping or while a reload is under way. */
void sb_server_reload(sb_server *s);
/* `switchboard reload`: send SIGHUP to the service whose pid file is in data_dir.  SB_OK, or an error with
 * a message in err (no pid file, no such process, not a switchboard process). */
int sb_server_send_reload(const char *data_dir, char *err, size_t errlen);

#endif
