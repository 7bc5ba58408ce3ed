/*
 * record.h - one resource-log or activity-log record on its way from a
 * producer (event loop) to the sinks (writer thread).
 *
 * A producer fills an sb_log_fields on its stack (borrowed strings, static
 * names from names.h) and sb_log_record_new() copies it into ONE allocation
 * (header + string area), so enqueueing costs one malloc and the writer frees
 * it with one free.  Records are immutable after creation.
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
    char data[];
} sb_log_record;

/* One allocation; time_us = f->time_us, or now.  operation_name, collection, transport_type, connection_type and status
 * must point at string literals (names.h); every other string is copied. */
sb_log_record *sb_log_record_new(const sb_log_fields *f);
void sb_log_record_free(sb_log_record *r);

const char *sb_log_level_name(sb_log_level l);
const char *sb_log_type_name(sb_log_type t); /* SB_LOGT_ACTIVITY: the activity category */

/* Append t (microseconds since the epoch, UTC) as "2026-11-26T01:02:03.4560000Z": Azure's 7-digit fraction,
 * fixed width so the text sorts like the time (archive "time", workspace TimeGenerated). */
void sb_log_time_format(int64_t time_us, sb_buf *out);

/* Append the archive JSON line (with '\n') for r.  resource_id as configured (it is upper-cased in the
 * archive, like Azure's). */
void sb_log_record_archive_json(const sb_log_record *r, const char *resource_id, const char *location, sb_buf *out);
/* Append the metrics archive JSON line (with '\n') of an SB_LOGT_METRIC record. */
void sb_log_record_metric_json(const sb_log_record *r, const char *resource_id, sb_buf *out);

#endif
