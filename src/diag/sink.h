/*
 * sink.h - the destination interface of the resource-log pipeline.
 *
 * A sink is one open destination (one storage account, one workspace, the
 * built-in activity-log store) behind a small vtable, Fluent Bit style: the
 * pipeline (pipeline.c) owns batching, routing, retries with backoff and drop
 * accounting; a sink only turns a batch of records into I/O and says whether
 * it worked.  Adding a destination type means adding one sink_<kind>.c that
 * defines an sb_sink_vtable and registering it (sb_sink_register, or the
 * built-in table in pipeline.c).
 *
 * Contract of a delivery: write(batch) stages the records, flush() makes them
 * durable to the process (a write() syscall, a COMMIT).  Either may fail with
 * a negative error code and a message in s->err; the pipeline then calls
 * write() again later with the same records (plus any that arrived since), so
 * a sink must discard what a failed attempt staged and must not leave half a
 * batch behind when it can avoid it (the archive truncates a partial append,
 * the workspace rolls back).
 *
 * Records: one sb_log_record may be a fan-out (record.h) standing for
 * sb_log_record_count() log records - one message's deliveries, differing only
 * in the recipient.  A sink writes each of them as its own line or row, in
 * order, exactly as if they had come as plain records: walk them with
 * sb_log_record_next() (sb_log_record_archive_json() writes all of a
 * fan-out's lines itself).  A retry carries the same records, fan-outs whole.
 *
 * Threading: every function is called on the writer thread only; sinks never
 * see libuv or the router.  Records are borrowed for the duration of the call.
 *
 * Local layouts (under data_dir):
 *   storage/<account>/insights-logs-alllogs/resourceId=/SUBSCRIPTIONS/<SUB>/RESOURCEGROUPS/<RG>/PROVIDERS/
 *       MICROSOFT.SIGNALRSERVICE/SIGNALR/<NAME>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json
 *   storage/<account>/insights-activity-logs/resourceId=/SUBSCRIPTIONS/<SUB>/y=.../m=00/PT1H.json
 *   activitylog/insights-activity-logs/...   the built-in activity-log store, same layout, kept 90 days
 *   workspaces/<name>.db                     SQLite: SignalRServiceDiagnosticLogs, AzureActivity
 */
#ifndef SB_DIAG_SINK_H
#define SB_DIAG_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "diag/record.h"
#include "util/buf.h"

#define SB_SINK_ERR_MAX 1024

/* What a sink is told when it opens; strings are valid until close. */
typedef struct sb_sink_config {
    const char *name;        /* storage account / workspace name */
    const char *path;        /* local sinks: archive root directory, or the database file */
    const char *resource_id; /* as configured; sinks upper-case it where Azure does */
    const char *subscription_id;
    const char *resource_group;
    const char *location;
    int retention_days; /* archive: delete hour folders older than this; workspace: log and metric rows (0 = forever) */
    int activity_retention_days; /* workspace: AzureActivity rows (0 = keep forever) */
} sb_sink_config;

typedef struct sb_sink sb_sink;

typedef struct sb_sink_vtable {
    const char *name; /* destination kind: "archive", "workspace" */
    int (*open)(sb_sink *s, const sb_sink_config *c);
    int (*write)(sb_sink *s, sb_log_record *const *recs, size_t n);
    int (*flush)(sb_sink *s);
    /* Housekeeping, called on every writer wake-up (the sink keeps its own schedule); may be NULL. */
    void (*tick)(sb_sink *s, int64_t now_us);
    void (*close)(sb_sink *s); /* also after a failed open; frees impl */
} sb_sink_vtable;

struct sb_sink {
    const sb_sink_vtable *vt;
    void *impl;                /* the sink's own state */
    char err[SB_SINK_ERR_MAX]; /* why the last call failed */
};

extern const sb_sink_vtable sb_sink_archive;
extern const sb_sink_vtable sb_sink_workspace;

/* Make vt the sink for its kind (replacing a built-in of the same name), e.g. a remote storage account or a
 * test double.  Call before sb_diag_start; not thread-safe. */
void sb_sink_register(const sb_sink_vtable *vt);
/* The registered sink for a kind, or NULL. */
const sb_sink_vtable *sb_sink_find(const char *kind);

/* The archive blob path, relative to the account root, of the hour that contains time_us:
 *   <container>/resourceId=<RESOURCE>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json
 * where RESOURCE is resource (a resource id, or "/subscriptions/<sub>" for the activity log) upper-cased. */
void sb_sink_archive_path(const char *container, const char *resource, int64_t time_us, sb_buf *out);

#endif
