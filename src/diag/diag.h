/*
 * diag.h - resource logs: the producers' entry points and the pipeline that
 * carries records to the sinks.
 *
 * Data path of a record:
 *   producer on the event loop (client.c, service.c, http.c, rest/)
 *     -> sb_diag_should_log(): cheap flags, no allocation when nothing is collected
 *     -> sb_diag_emit(): one allocation, appended to a per-turn batch (no lock);
 *        a message delivered to many clients: one fan-out record, each further
 *        recipient appended to it (sb_diag_fanout_add: a copy, no allocation)
 *     -> once per loop turn the batch is handed to the writer thread (one lock)
 *   writer thread (pipeline.c)
 *     -> routes each record by the current diagnostic settings to sinks
 *        (archive: sink_archive.c, workspace: sink_workspace.c, live streams later)
 *     -> batches, retries with full-jitter backoff, counts what it must drop
 *
 * Guarantees: the loop never blocks on a sink; memory is bounded by
 * log_queue_max_records; a record that cannot be delivered is counted (per
 * reason) and reported by a Warning record and the metrics; SIGTERM flushes
 * everything before exit; records reach disk within about 1 s.
 *
 * Threading: every function here is called on the event loop thread, except
 * where noted.
 */
#ifndef SB_DIAG_H
#define SB_DIAG_H

#include <stdint.h>

#include "diag/record.h"
#include "diag/settings.h"

struct sb_server;
typedef struct sb_diag sb_diag;

/* Start-up: load persisted settings, open sinks, start the writer thread.  Prints errors. */
int sb_diag_start(struct sb_server *srv);
/* Flush every queued record to its sinks, stop the thread, close sinks.  Idempotent. */
void sb_diag_stop(struct sb_server *srv);
/* Hand this turn's batch to the writer (called once per loop turn by the server). */
void sb_diag_flush_turn(struct sb_server *srv);

/* Hot-path flags, read on the loop thread (updated there when settings change). */
int sb_diag_collecting(const struct sb_server *srv);                 /* any setting routes logs */
int sb_diag_type_enabled(const struct sb_server *srv, sb_log_type t); /* collect all for this type */
/* Should a record of type t about a client (diagnostic or not) be produced?  SB_LOGT_METRIC: does a
 * setting export metrics (AllMetrics)? */
int sb_diag_should_log(const struct sb_server *srv, sb_log_type t, int diagnostic);

/* Enqueue a record (copied).  Never blocks; drops are counted. */
void sb_diag_emit(struct sb_server *srv, const sb_log_fields *f);

/* Fan-outs: the resource-log records of one message's deliveries, which differ only in the recipient
 * (record.h).  The producer keeps a handle per message, NULL at first, and for each recipient calls
 * sb_diag_fanout_add(); 0 means the handle is not the open fan-out, and the producer builds the shared fields
 * and calls sb_diag_fanout_begin(), which returns the new handle (NULL when not collected or dropped).  1 means
 * done: appended, or dropped because the queue is full (counted), or not collected.  scope (e.g. the hub) must
 * match too.  A fan-out closes when any other record is emitted, another fan-out begins or the turn ends, so
 * records keep their order; a closed handle gets 0.  A handle must not outlive the loop turn that returned it
 * (its record may be freed, and its address reused, after the hand-off): the message drops it on release. */
int sb_diag_fanout_add(struct sb_server *srv, const void *handle, const void *scope,
                       const sb_log_recipient *rc);
void *sb_diag_fanout_begin(struct sb_server *srv, const void *scope, const sb_log_fields *shared,
                           const sb_log_recipient *rc);

/* Run fn(arg) on the writer thread at its next wake-up (the metrics store is written there, so every file
 * under the data dir has one writer).  fn owns arg and must release it; jobs queued before sb_diag_stop run
 * before the thread ends.  SB_ECLOSED when no pipeline runs (nothing queued: the caller keeps arg). */
int sb_diag_run_on_writer(struct sb_server *srv, void (*fn)(void *arg), void *arg);
/* Close every open sink at the writer's next wake-up; each reopens on its next write, and nothing pending
 * is lost (graceful reload: archive folders moved away, a workspace file replaced). */
void sb_diag_reopen(struct sb_server *srv);

/* Replace the settings (management API / CLI): effective for producers at once, for the writer
 * within one turn; persisted by the writer thread.  Takes a copy. */
void sb_diag_apply_settings(struct sb_server *srv, const sb_diag_settings *s);
/* The current settings (read-only view, loop thread). */
const sb_diag_settings *sb_diag_current_settings(const struct sb_server *srv);

typedef struct sb_diag_stats {
    /* log records, a fan-out counting each recipient */
    uint64_t emitted;          /* records accepted */
    uint64_t written;          /* record deliveries completed (a record routed to two sinks counts twice) */
    uint64_t dropped_queue;    /* refused because the queue was full */
    uint64_t dropped_sink;     /* given up after retries */
    uint64_t queue_depth;      /* records waiting */
} sb_diag_stats;
/* Safe from any thread. */
void sb_diag_get_stats(const struct sb_server *srv, sb_diag_stats *out);

#endif
