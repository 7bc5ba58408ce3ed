/*
 * sink_workspace.c - the Log Analytics workspace sink: one SQLite database per
 * workspace (<data_dir>/workspaces/<name>.db) holding Azure's tables
 * SignalRServiceDiagnosticLogs, AzureActivity and AzureMetrics with Azure's
 * column names, so the query engine can run Microsoft's sample KQL against
 * them.
 *
 * Owns: the schema (version 1, recorded in _switchboard_meta; tables are
 * created if missing, so a version-1 file gains AzureMetrics on open), the
 * database connection and its three prepared INSERTs.
 *
 * Invariants:
 *  - a delivered batch is ONE transaction: write() opens it and inserts,
 *    flush() commits; any failure rolls back, so a retried batch never leaves
 *    duplicates or half a batch;
 *  - a fan-out record is one row per recipient (sb_log_record_next), as if
 *    each had been a record of its own; rows sharing a time format it once;
 *  - WAL mode with synchronous=NORMAL: readers (queries) never block the
 *    writer, commits do not fsync (a power cut may lose the last batches,
 *    never corrupt the file); busy_timeout covers a checkpointing reader;
 *  - string columns are '' when absent (Log Analytics has no null strings),
 *    numeric columns NULL; TimeGenerated is fixed-width ISO-8601 UTC with a
 *    7-digit fraction, so text order is time order; _ResourceId is upper-cased
 *    as Azure writes it.  LogType (ConnectivityLogs/MessagingLogs/
 *    HttpRequestLogs) and the HTTP columns are Switchboard's additions;
 *  - activity records go to AzureActivity: OperationName is the display text
 *    (the record's message), OperationNameValue the operation upper-cased;
 *  - metric rows (AllMetrics) go to AzureMetrics, one per metric and minute:
 *    ResourceId/_ResourceId, Resource and ResourceGroup upper-cased as Azure
 *    writes them, TimeGrain PT1M.
 *
 * Called by: pipeline.c on the writer thread, through sb_sink_workspace.  The
 * connection is used by that thread only.  Not here: queries (a later
 * module opens its own read connection).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "diag/names.h"
#include "diag/sink.h"
#include "kql/kql.h"
#include "util/alloc.h"
#include "util/error.h"

#define SCHEMA_VERSION "1"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS _switchboard_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "INSERT OR IGNORE INTO _switchboard_meta(key, value) VALUES('schema_version', '" SCHEMA_VERSION "');"
    "CREATE TABLE IF NOT EXISTS " SB_TABLE_DIAGNOSTIC_LOGS "("
    "TimeGenerated TEXT NOT NULL, Collection TEXT, OperationName TEXT, Location TEXT, Level TEXT,"
    " CallerIpAddress TEXT, Message TEXT, UserId TEXT, ConnectionId TEXT, ConnectionType TEXT,"
    " TransportType TEXT, HubName TEXT, GroupName TEXT, MessageTracingId INTEGER, MessageType TEXT,"
    " InvocationId TEXT, LogType TEXT, HttpMethod TEXT, Url TEXT, RouteTemplate TEXT, StatusCode INTEGER,"
    " DurationMs REAL, TraceId TEXT, _ResourceId TEXT, _SubscriptionId TEXT, TenantId TEXT, SourceSystem "
    "TEXT,"
    " Type TEXT);"
    "CREATE INDEX IF NOT EXISTS ix_" SB_TABLE_DIAGNOSTIC_LOGS "_TimeGenerated ON " SB_TABLE_DIAGNOSTIC_LOGS
    "(TimeGenerated);"
    "CREATE INDEX IF NOT EXISTS ix_" SB_TABLE_DIAGNOSTIC_LOGS "_ConnectionId ON " SB_TABLE_DIAGNOSTIC_LOGS
    "(ConnectionId);"
    "CREATE INDEX IF NOT EXISTS ix_" SB_TABLE_DIAGNOSTIC_LOGS "_UserId ON " SB_TABLE_DIAGNOSTIC_LOGS
    "(UserId);"
    "CREATE INDEX IF NOT EXISTS ix_" SB_TABLE_DIAGNOSTIC_LOGS "_MessageTracingId ON " SB_TABLE_DIAGNOSTIC_LOGS
    "(MessageTracingId);"
    "CREATE TABLE IF NOT EXISTS " SB_TABLE_ACTIVITY "("
    "TimeGenerated TEXT NOT NULL, OperationName TEXT, OperationNameValue TEXT, Level TEXT,"
    " ActivityStatusValue TEXT, Caller TEXT, CallerIpAddress TEXT, Category TEXT, Properties TEXT,"
    " _ResourceId TEXT, SubscriptionId TEXT, ResourceGroup TEXT, ResourceProviderValue TEXT, Type TEXT);"
    "CREATE INDEX IF NOT EXISTS ix_" SB_TABLE_ACTIVITY "_TimeGenerated ON " SB_TABLE_ACTIVITY
    "(TimeGenerated);"
    "CREATE TABLE IF NOT EXISTS " SB_TABLE_METRICS "("
    "TimeGenerated TEXT NOT NULL, ResourceId TEXT, _ResourceId TEXT, ResourceProvider TEXT, Resource TEXT,"
    " ResourceGroup TEXT, SubscriptionId TEXT, _SubscriptionId TEXT, MetricName TEXT, Total REAL, Count REAL,"
    " Maximum REAL, Minimum REAL, Average REAL, TimeGrain TEXT, UnitName TEXT, TenantId TEXT, SourceSystem TEXT,"
    " Type TEXT);"
    "CREATE INDEX IF NOT EXISTS ix_" SB_TABLE_METRICS "_TimeGenerated ON " SB_TABLE_METRICS
    "(TimeGenerated);";

static const char insert_log_sql[] =
    "INSERT INTO " SB_TABLE_DIAGNOSTIC_LOGS "(TimeGenerated, Collection, OperationName, Location, Level,"
    " CallerIpAddress, Message, UserId, ConnectionId, ConnectionType, TransportType, HubName, GroupName,"
    " MessageTracingId, MessageType, InvocationId, LogType, HttpMethod, Url, RouteTemplate, StatusCode, "
    "DurationMs,"
    " TraceId, _ResourceId, _SubscriptionId, TenantId, SourceSystem, Type)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, '', ?16, ?17, ?18, ?19, ?20, "
    "?21,"
    " ?22, ?23, ?24, '', 'Azure', '" SB_TABLE_DIAGNOSTIC_LOGS "')";

static const char insert_activity_sql[] =
    "INSERT INTO " SB_TABLE_ACTIVITY
    "(TimeGenerated, OperationName, OperationNameValue, Level, ActivityStatusValue,"
    " Caller, CallerIpAddress, Category, Properties, _ResourceId, SubscriptionId, ResourceGroup,"
    " ResourceProviderValue, Type)"
    " VALUES(?1, ?11, upper(?2), ?3, ?4, ?5, ?6, '" SB_ACTIVITY_CATEGORY_ADMINISTRATIVE
    "', ?7, ?8, ?9, ?10, '" SB_ACTIVITY_RESOURCE_PROVIDER "', '" SB_TABLE_ACTIVITY "')";

static const char insert_metric_sql[] =
    "INSERT INTO " SB_TABLE_METRICS "(TimeGenerated, ResourceId, _ResourceId, ResourceProvider, Resource,"
    " ResourceGroup, SubscriptionId, _SubscriptionId, MetricName, Total, Count, Maximum, Minimum, Average,"
    " TimeGrain, UnitName, TenantId, SourceSystem, Type)"
    " VALUES(?1, ?2, ?2, '" SB_METRICS_RESOURCE_PROVIDER "', ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, '"
    SB_METRICS_TIME_GRAIN "', ?12, '', 'Azure', '" SB_TABLE_METRICS "')";

typedef struct workspace {
    sqlite3 *db;
    sqlite3_stmt *ins_log, *ins_activity, *ins_metric;
    char *resource_id_upper, *subscription_id, *resource_group, *location;
    char *resource_name_upper, *resource_group_upper;
    int in_txn;
    sb_buf time_text;
    int64_t time_text_us; /* the instant time_text holds, if any */
    sb_log_record *view;  /* a fan-out's recipient as a plain record (allocated: the type ends in a flexible array) */
    sb_buf view_message;
    int log_retention_days, activity_retention_days;
    int64_t next_retention_us; /* when rows past their retention are deleted next */
} workspace;

static int db_fail(sb_sink *s, workspace *w, const char *what) {
    snprintf(s->err, sizeof s->err, "%s: %s", what, w->db ? sqlite3_errmsg(w->db) : "out of memory");
    return SB_EIO;
}

static int exec(sb_sink *s, workspace *w, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(w->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return SB_OK;
    snprintf(s->err, sizeof s->err, "%s", msg ? msg : sqlite3_errmsg(w->db));
    sqlite3_free(msg);
    return SB_EIO;
}

static int check_schema_version(sb_sink *s, workspace *w) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(w->db, "SELECT value FROM _switchboard_meta WHERE key = 'schema_version'", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(s, w, "reading the schema version");
    int rc = SB_OK;
    const unsigned char *v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (!v || strcmp((const char *)v, SCHEMA_VERSION) != 0) {
        snprintf(s->err, sizeof s->err,
                 "unsupported workspace schema version %s (expected " SCHEMA_VERSION ")",
                 v ? (const char *)v : "(none)");
        rc = SB_EPROTO;
    }
    sqlite3_finalize(st);
    return rc;
}

static int workspace_open(sb_sink *s, const sb_sink_config *c) {
    workspace *w = sb_calloc(1, sizeof *w);
    s->impl = w;
    w->log_retention_days = c->retention_days;
    w->activity_retention_days = c->activity_retention_days;
    w->resource_id_upper = sb_strdup(c->resource_id);
    for (char *p = w->resource_id_upper; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - ('a' - 'A'));
    w->subscription_id = sb_strdup(c->subscription_id ? c->subscription_id : "");
    w->resource_group = sb_strdup(c->resource_group ? c->resource_group : "");
    w->location = sb_strdup(c->location ? c->location : "");
    const char *slash = strrchr(w->resource_id_upper, '/');
    w->resource_name_upper = sb_strdup(slash ? slash + 1 : w->resource_id_upper);
    w->resource_group_upper = sb_strdup(w->resource_group);
    for (char *p = w->resource_group_upper; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - ('a' - 'A'));
    sb_buf_init(&w->time_text);
    sb_buf_init(&w->view_message);
    w->view = sb_calloc(1, sizeof *w->view);
    if (sqlite3_open_v2(c->path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return db_fail(s, w, c->path);
    sqlite3_busy_timeout(w->db, 5000);
    /* 64 MiB of page cache keeps the four indexes' hot pages out of pread(); checkpointing every ~40 MB of
     * WAL instead of every 4 MB halves the fsyncs.  Together they double the insert rate of a busy service.
     */
    int rc = exec(s, w,
                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
                  " PRAGMA wal_autocheckpoint=10000;");
    if (rc == SB_OK)
        rc = exec(s, w, schema_sql);
    if (rc == SB_OK)
        rc = check_schema_version(s, w);
    if (rc != SB_OK)
        return rc;
    if (sqlite3_prepare_v3(w->db, insert_log_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->ins_log, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(w->db, insert_activity_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->ins_activity,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(w->db, insert_metric_sql, -1, SQLITE_PREPARE_PERSISTENT, &w->ins_metric, NULL) !=
            SQLITE_OK)
        return db_fail(s, w, "preparing inserts");
    return SB_OK;
}

/* Absent strings are '' (Log Analytics has no null strings).  Borrowed text stays valid for the call. */
static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

/* TimeGenerated of r: the records of a fan-out share one instant. */
static void bind_time(workspace *w, sqlite3_stmt *st, const sb_log_record *r) {
    if (!w->time_text.len || r->time_us != w->time_text_us) {
        sb_buf_reset(&w->time_text);
        sb_log_time_format(r->time_us, &w->time_text);
        w->time_text_us = r->time_us;
    }
    sqlite3_bind_text(st, 1, w->time_text.data, (int)w->time_text.len, SQLITE_TRANSIENT);
}

static int insert_log(workspace *w, const sb_log_record *r) {
    sqlite3_stmt *st = w->ins_log;
    bind_time(w, st, r);
    bind_text(st, 2, r->collection);
    bind_text(st, 3, r->operation_name);
    bind_text(st, 4, w->location);
    bind_text(st, 5, sb_log_level_name(r->level));
    bind_text(st, 6, r->caller_ip);
    bind_text(st, 7, r->message);
    bind_text(st, 8, r->user_id);
    bind_text(st, 9, r->connection_id);
    bind_text(st, 10, r->connection_type);
    bind_text(st, 11, r->transport_type);
    bind_text(st, 12, r->hub);
    bind_text(st, 13, r->group);
    if (r->has_tracing_id)
        sqlite3_bind_int64(st, 14, (sqlite3_int64)r->tracing_id); /* Azure's column is a signed long */
    else
        sqlite3_bind_null(st, 14);
    bind_text(st, 15, r->message_type);
    bind_text(st, 16, sb_log_type_name(r->type));
    int http = r->type == SB_LOGT_HTTP;
    bind_text(st, 17, http ? r->http_method : NULL);
    bind_text(st, 18, http ? r->url : NULL);
    bind_text(st, 19, http ? r->route_template : NULL);
    if (http) {
        sqlite3_bind_int(st, 20, r->status_code);
        sqlite3_bind_double(st, 21, r->duration_ms);
    } else {
        sqlite3_bind_null(st, 20);
        sqlite3_bind_null(st, 21);
    }
    bind_text(st, 22, http ? r->trace_id : NULL);
    bind_text(st, 23, w->resource_id_upper);
    bind_text(st, 24, w->subscription_id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SB_OK : SB_EIO;
}

static int insert_activity(workspace *w, const sb_log_record *r) {
    sqlite3_stmt *st = w->ins_activity;
    bind_time(w, st, r);
    bind_text(st, 2, r->operation_name);
    bind_text(st, 3, sb_log_level_name(r->level));
    bind_text(st, 4, r->status);
    bind_text(st, 5, r->caller);
    bind_text(st, 6, r->caller_ip);
    bind_text(st, 7, r->properties ? r->properties : "{}");
    bind_text(st, 8, w->resource_id_upper);
    bind_text(st, 9, w->subscription_id);
    bind_text(st, 10, w->resource_group);
    /* Azure shows the operation's display text and, upper-cased, its value (MICROSOFT.X/Y/WRITE) */
    bind_text(st, 11, r->message ? r->message : r->operation_name);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SB_OK : SB_EIO;
}

static int insert_metric(workspace *w, const sb_log_record *r) {
    sqlite3_stmt *st = w->ins_metric;
    bind_time(w, st, r);
    bind_text(st, 2, w->resource_id_upper);
    bind_text(st, 3, w->resource_name_upper);
    bind_text(st, 4, w->resource_group_upper);
    bind_text(st, 5, w->subscription_id);
    bind_text(st, 6, r->metric.name);
    sqlite3_bind_double(st, 7, r->metric.total);
    sqlite3_bind_double(st, 8, r->metric.count);
    sqlite3_bind_double(st, 9, r->metric.maximum);
    sqlite3_bind_double(st, 10, r->metric.minimum);
    sqlite3_bind_double(st, 11, r->metric.average);
    bind_text(st, 12, r->metric.unit);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SB_OK : SB_EIO;
}

static void rollback(workspace *w) {
    if (w->in_txn)
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
    w->in_txn = 0;
}

static int workspace_write(sb_sink *s, sb_log_record *const *recs, size_t n) {
    workspace *w = s->impl;
    rollback(w); /* a failed attempt's rows are part of this batch again */
    if (exec(s, w, "BEGIN") != SB_OK)
        return SB_EIO;
    w->in_txn = 1;
    for (size_t i = 0; i < n; i++) {
        int rc = SB_OK;
        size_t pos = 0;
        const sb_log_record *r;
        while (rc == SB_OK && (r = sb_log_record_next(recs[i], &pos, w->view, &w->view_message)))
            rc = r->type == SB_LOGT_ACTIVITY ? insert_activity(w, r)
                 : r->type == SB_LOGT_METRIC ? insert_metric(w, r)
                                             : insert_log(w, r);
        if (rc != SB_OK) {
            db_fail(s, w, "insert");
            rollback(w);
            return rc;
        }
    }
    return SB_OK;
}

static int workspace_flush(sb_sink *s) {
    workspace *w = s->impl;
    if (!w->in_txn)
        return SB_OK;
    if (sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(s, w, "commit");
        rollback(w);
        return SB_EIO;
    }
    w->in_txn = 0;
    return SB_OK;
}

static void workspace_close(sb_sink *s) {
    workspace *w = s->impl;
    if (!w)
        return;
    rollback(w);
    sqlite3_finalize(w->ins_log);
    sqlite3_finalize(w->ins_activity);
    sqlite3_finalize(w->ins_metric);
    sqlite3_close(w->db); /* also when open failed: sqlite3_open_v2 hands back a handle to release */
    sb_free(w->resource_id_upper);
    sb_free(w->subscription_id);
    sb_free(w->resource_group);
    sb_free(w->location);
    sb_free(w->resource_name_upper);
    sb_free(w->resource_group_upper);
    sb_buf_free(&w->time_text);
    sb_buf_free(&w->view_message);
    sb_free(w->view);
    sb_free(w);
    s->impl = NULL;
}

/*
 * Table retention, once an hour on the writer thread and never inside a batch
 * transaction: rows older than their table's retention are deleted in small
 * batches (each its own transaction), so readers and the next batch never wait
 * long.
 */
static void workspace_tick(sb_sink *s, int64_t now_us) {
    workspace *w = s->impl;
    if (!w || !w->db || w->in_txn || now_us < w->next_retention_us)
        return;
    w->next_retention_us = now_us + (int64_t)3600 * 1000000;
    if (w->log_retention_days > 0 || w->activity_retention_days > 0)
        sb_kql_enforce_retention(w->db, now_us, w->log_retention_days, w->activity_retention_days, 1000, 50);
}

const sb_sink_vtable sb_sink_workspace = {
    .name = "workspace",
    .open = workspace_open,
    .write = workspace_write,
    .flush = workspace_flush,
    .tick = workspace_tick,
    .close = workspace_close,
};
