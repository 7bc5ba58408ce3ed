/*
 * record.h - one resource-log or activity-log record on its way from a
 * producer (event loop) to the sinks (writer thread).
 *
 * A producer fills an sb_log_fields on its stack (borrowed strings, static
 * names from names.h) and sb_log_record_new() copies it into ONE allocation
 * (header + string area), so enqueueing costs one malloc and the writer frees
 * it with one free.  Records are immutable once handed to the writer.
 *
 * Fan-out records: one message delivered to N clients makes N messaging
 * records that differ only in the recipient.  The loop builds them as ONE
 * record (sb_log_record_new_fanout) holding the shared fields once, to which
 * each further recipient appends only its own fields (connection id, user id,
 * caller IP, transport), packed into one growing block: no allocation and no
 * text formatting per recipient.  It stands for sb_log_record_count() records
 * everywhere records are counted (queue bound, emitted, written, dropped);
 * sinks expand it: the archive line of each recipient is byte-identical to
 * that of the plain record with the same fields, and sb_log_record_next()
 * hands a sink each recipient as a plain record view.
 *
 * Formats (record.c):
 *  - archive JSON (Azure's resource-log schema, one compact object per line):
 *    {"time","level","resourceId","location","category":"AllLogs","operationName",
 *     "callerIpAddress","properties":{"type","collection","connectionId","transportType",
 *     "connectionType","userId","message","hub","messageTracingId","messageType", http fields...}}
 *  - activity records (SB_LOGT_ACTIVITY), Azure's activity-log archive shape:
 *    {"time","level","resourceId","location","category":"Administrative","operationName","resultType",
 *     "resultDescription" (the message),"caller","callerIpAddress","properties":{...producer's object...}}
 *  - metric rows (SB_LOGT_METRIC, AllMetrics: one metric, one minute, dimensions aggregated away), Azure's
 *    metrics archive shape (sb_log_record_metric_json):
 *    {"count","total","minimum","maximum","average","resourceId","time","metricName","timeGrain":"PT1M"}
 *  - workspace rows: the SignalRServiceDiagnosticLogs / AzureActivity / AzureMetrics columns
 *    (sink_workspace.c).
 */
#ifndef SB_DIAG_RECORD_H
#define SB_DIAG_RECORD_H

#include <stdint.h>

#include "util/buf.h"

typedef enum sb_log_type {
    SB_LOGT_CONNECTIVITY = 0,
    SB_LOGT_MESSAGING = 1,
    SB_LOGT_HTTP = 2,
    SB_LOGT_COUNT = 3, /* resource-log types; the activity log is separate: */
    SB_LOGT_ACTIVITY = 3,
    SB_LOGT_METRIC = 4, /* platform metrics exported by diagnostic settings (AllMetrics) */
} sb_log_type;

/* One metric's aggregate over one minute (SB_LOGT_METRIC).  name and unit are static strings. */
typedef struct sb_log_metric {
    const char *name; /* e.g. "ConnectionCount" */
    const char *unit; /* e.g. "Count" */
    double total, count, minimum, maximum, average;
} sb_log_metric;

typedef enum sb_log_level {
    SB_LEVEL_INFORMATIONAL = 0,
    SB_LEVEL_WARNING,
    SB_LEVEL_ERROR,
    SB_LEVEL_CRITICAL,
} sb_log_level;

/* What a producer provides.  Strings are borrowed for the duration of the call; NULL = absent. */
typedef struct sb_log_fields {
    sb_log_type type;
    sb_log_level level;
    const char *operation_name; /* names.h */
    const char *collection;     /* names.h; NULL for HTTP and activity records */
    const char *message;
    const char *message_tail; /* fan-out records only: a recipient's message is message + its connection id +
                               * message_tail (a static string) */
    const char *caller_ip;
    const char *connection_id;
    const char *user_id;
    const char *transport_type;  /* names.h or NULL */
    const char *connection_type; /* names.h or NULL */
    const char *hub;
    const char *group;
    const char *message_type; /* e.g. "BroadcastDataMessage" */
    uint64_t tracing_id;      /* with has_tracing_id */
    int has_tracing_id;
    /* HTTP request logs */
    const char *http_method;
    const char *url;
    const char *route_template;
    const char *trace_id;
    int status_code;
    double duration_ms;
    /* activity log */
    const char *caller;      /* who made the management call (token subject or "accessKey") */
    const char *status;      /* "Succeeded" / "Failed" */
    const char *properties;  /* compact JSON object with operation details, or NULL */
    /* metric rows */
    sb_log_metric metric;
    int64_t time_us; /* the record's time (metric rows: the minute); 0 = now */
} sb_log_fields;

typedef struct sb_log_record {
    struct sb_log_record *next; /* queue link, owned by the pipeline */
    uint32_t refs;              /* deliveries still outstanding; writer thread only (pipeline.c) */
    int64_t time_us;            /* UTC, microseconds since the epoch */
    sb_log_type type;
    sb_log_level level;
    uint64_t tracing_id;
    int has_tracing_id;
    int status_code;
    double duration_ms;
    /* static names from names.h (not copied) */
    const char *operation_name, *collection, *transport_type, *connection_type, *status;
    /* copied strings (point into data[]; NULL when absent) */
    const char *message, *caller_ip, *connection_id, *user_id, *hub, *group, *url, *trace_id, *caller,
        *properties, *message_type, *http_method, *route_template;
    sb_log_metric metric; /* SB_LOGT_METRIC */
    /* Fan-out (rcpt_n > 0): stands for rcpt_n records, one per recipient, sharing every field except
     * connection_id, user_id, caller_ip and transport_type (the recipient's; NULL here) and the message
     * (message + connection id + message_tail).  Recipients are packed in rcpt, a block of its own that grows
     * while the loop appends (record.c owns the layout). */
    const char *message_tail;
    uint32_t rcpt_n;
    char *rcpt;
    size_t rcpt_len, rcpt_cap;
    char data[];
} sb_log_record;

/* What varies between the records of a fan-out.  Borrowed for the call; NULL = absent. */
typedef struct sb_log_recipient {
    const char *connection_id;
    const char *user_id;
    const char *caller_ip;
    const char *transport_type; /* names.h or NULL */
} sb_log_recipient;

/* One allocation; time_us = f->time_us, or now.  operation_name, collection, transport_type, connection_type and status
 * must point at string literals (names.h); every other string is copied. */
sb_log_record *sb_log_record_new(const sb_log_fields *f);
void sb_log_record_free(sb_log_record *r);

/* A fan-out record with its first recipient: shared's own connection_id, user_id, caller_ip and transport_type
 * are ignored; shared->message and shared->message_tail frame each recipient's connection id.  block (NULL:
 * none) is memory for the recipients, block_cap bytes from sb_malloc, that the record adopts: a block recycled
 * from an earlier fan-out (sb_log_record_free_keep_block) is already mapped and in the cache. */
sb_log_record *sb_log_record_new_fanout(const sb_log_fields *shared, const sb_log_recipient *first, void *block,
                                        size_t block_cap);
/* The shared fields of a "sent to client" fan-out (MessageSentToClient, Azure's message text around each
 * recipient's connection id), as every producer and test builds them; head (at least SB_LOG_SENT_HEAD_MAX bytes)
 * receives the text before the connection id and must live as long as f. */
#define SB_LOG_SENT_HEAD_MAX 96
void sb_log_fields_sent_to_client(sb_log_fields *f, const char *hub, uint64_t tracing_id, char *head,
                                  size_t headlen);
/* Free r but hand back its recipients' block (NULL for a plain record) and its size in *cap. */
void *sb_log_record_free_keep_block(sb_log_record *r, size_t *cap);
/* Append a recipient (copied) to a fan-out record not yet handed to the writer. */
void sb_log_record_add_recipient(sb_log_record *r, const sb_log_recipient *rc);
/* How many log records r stands for. */
static inline size_t sb_log_record_count(const sb_log_record *r) {
    return r->rcpt_n ? r->rcpt_n : 1;
}
/* Walk the records r stands for: start with *pos = 0; each call returns the next one (r itself for a plain
 * record; for a fan-out, *view filled as the plain record of one recipient, its message text built in
 * *message), or NULL at the end.  A view borrows from r and *message; it is valid until the next call. */
const sb_log_record *sb_log_record_next(const sb_log_record *r, size_t *pos, sb_log_record *view,
                                        sb_buf *message);

const char *sb_log_level_name(sb_log_level l);
const char *sb_log_type_name(sb_log_type t); /* SB_LOGT_ACTIVITY: the activity category */

/* Append t (microseconds since the epoch, UTC) as "2026-11-26T01:02:03.4560000Z": Azure's 7-digit fraction,
 * fixed width so the text sorts like the time (archive "time", workspace TimeGenerated). */
void sb_log_time_format(int64_t time_us, sb_buf *out);

/* Append the archive JSON line (with '\n') for r - one line per recipient for a fan-out, whose invariant
 * parts (time included) are formatted once.  resource_id as configured (it is upper-cased in the archive, like
 * Azure's). */
void sb_log_record_archive_json(const sb_log_record *r, const char *resource_id, const char *location, sb_buf *out);
/* Append the metrics archive JSON line (with '\n') of an SB_LOGT_METRIC record. */
void sb_log_record_metric_json(const sb_log_record *r, const char *resource_id, sb_buf *out);

#endif
