/*
 * test_diag_sinks.c - the two local sinks through their vtables, in a temp
 * directory: the archive (blob paths for given instants, appends split by
 * the hour of writing, a failed flush leaves no torn or duplicated lines,
 * the retention sweep deletes only expired hour folders it recognises) and
 * the workspace (exact table columns and row values, one transaction per
 * batch so a retried batch never duplicates rows, schema versioning, WAL so
 * a reader never blocks a delivery).  Fan-out records: one archive line and
 * one workspace row per recipient, in order, retried without duplicates, and
 * an archive file far past the drop-behind stretch holds every byte.  Ends
 * with a micro-benchmark of both sinks that prints records/s (informational,
 * not an assertion).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag/names.h"
#include "diag/record.h"
#include "diag/sink.h"
#include "util/alloc.h"
#include "util/error.h"

#define RID "/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.SignalRService/SignalR/hub1"
#define RID_UPPER "/SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.SIGNALRSERVICE/SIGNALR/HUB1"

static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(p);
}

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb_sinks_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state) {
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static sb_sink_config config(const char *path, int retention) {
    return (sb_sink_config){.name = "local",
                            .path = path,
                            .resource_id = RID,
                            .subscription_id = "sub-1",
                            .resource_group = "rg1",
                            .location = "westus",
                            .retention_days = retention};
}

static sb_log_record *rec(sb_log_type type, const char *op, const char *conn) {
    sb_log_fields f = {.type = type,
                       .level = SB_LEVEL_INFORMATIONAL,
                       .operation_name = op,
                       .collection = type == SB_LOGT_CONNECTIVITY ? SB_LOG_COLLECTION_CONNECTION : NULL,
                       .message = "m",
                       .connection_id = conn};
    return sb_log_record_new(&f);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    sb_buf b;
    sb_buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sb_buf_append(&b, chunk, n);
    fclose(f);
    if (!b.data)
        sb_buf_append(&b, "", 0);
    return sb_buf_steal(&b, NULL);
}

/* Lines of a file, each parsed; returns the count and checks each is one JSON object. */
static size_t count_json_lines(const char *text) {
    size_t n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl); /* never a torn last line */
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
        if (!json_is_object(j))
            fail_msg("bad line: %.*s", (int)(nl - p), p);
        json_decref(j);
        n++;
        p = nl + 1;
    }
    return n;
}

static char *archive_file(const char *root, const char *container, const char *resource, int64_t t) {
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appendf(&b, "%s/", root);
    sb_sink_archive_path(container, resource, t, &b);
    return sb_buf_steal(&b, NULL);
}

/* ---- archive ---- */

static void expect_path(const char *container, const char *resource, int64_t t, const char *want) {
    sb_buf b;
    sb_buf_init(&b);
    sb_sink_archive_path(container, resource, t, &b);
    assert_string_equal(b.data, want);
    sb_buf_free(&b);
}

static void test_archive_path(void **state) {
    int64_t t = INT64_C(1795654923456789); /* 2026-11-26T01:02:03.456789Z */
    expect_path(SB_CONTAINER_LOGS, RID, t,
                "insights-logs-alllogs/resourceId=" RID_UPPER "/y=2026/m=11/d=26/h=01/m=00/PT1H.json");
    expect_path(
        SB_CONTAINER_ACTIVITY, "/subscriptions/sub-1", t,
        "insights-activity-logs/resourceId=/SUBSCRIPTIONS/SUB-1/y=2026/m=11/d=26/h=01/m=00/PT1H.json");
    /* hour edges: the last microsecond of an hour, the first of the next, a year change */
    int64_t h2 = INT64_C(1795658400) * 1000000; /* 2026-11-26T02:00:00Z */
    expect_path("c", "/x", h2 - 1, "c/resourceId=/X/y=2026/m=11/d=26/h=01/m=00/PT1H.json");
    expect_path("c", "/x", h2, "c/resourceId=/X/y=2026/m=11/d=26/h=02/m=00/PT1H.json");
    expect_path("c", "/x", INT64_C(1798761600) * 1000000 - 1,
                "c/resourceId=/X/y=2026/m=12/d=31/h=23/m=00/PT1H.json");
    expect_path("c", "/x", INT64_C(1798761600) * 1000000,
                "c/resourceId=/X/y=2027/m=01/d=01/h=00/m=00/PT1H.json");
}

static void test_archive_appends_by_hour_of_writing(void **state) {
    char *root = sb_asprintf("%s/storage/local", tmpdir);
    sb_sink s = {.vt = &sb_sink_archive};
    sb_sink_config c = config(root, 0);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    sb_log_record *recs[4] = {rec(SB_LOGT_CONNECTIVITY, SB_OP_CONNECTION_STARTED, "c1"),
                              rec(SB_LOGT_ACTIVITY, "Microsoft.SignalRService/SignalR/write", NULL),
                              rec(SB_LOGT_MESSAGING, SB_OP_MESSAGE_SENT_TO_CLIENT, "c2"),
                              rec(SB_LOGT_HTTP, SB_OP_HTTP_REQUEST, NULL)};
    recs[0]->time_us = 0; /* an old stamp still lands in the file of the hour it is written */
    int64_t before = now_us();
    assert_int_equal(s.vt->write(&s, recs, 4), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK);
    assert_int_equal(s.vt->write(&s, recs, 1), SB_OK); /* a second batch appends */
    assert_int_equal(s.vt->flush(&s), SB_OK);
    int64_t after = now_us();

    char *logs = archive_file(root, SB_CONTAINER_LOGS, RID, before);
    char *text = read_file(logs);
    if (!text) { /* the hour turned between the two clock reads */
        free(logs);
        logs = archive_file(root, SB_CONTAINER_LOGS, RID, after);
        text = read_file(logs);
    }
    assert_non_null(text);
    assert_int_equal(count_json_lines(text), 4);
    const char *a = strstr(text, "ConnectionStarted"), *b = strstr(text, "MessageSentToClient"),
               *h = strstr(text, "HttpRequest");
    assert_true(a && b && h && a < b && b < h); /* batch order kept */
    assert_null(strstr(text, "Administrative"));
    assert_non_null(strstr(text, "\"time\":\"1970-01-01T00:00:00.0000000Z\""));
    free(text);

    char *act = archive_file(root, SB_CONTAINER_ACTIVITY, "/subscriptions/sub-1", before);
    text = read_file(act);
    if (!text) {
        free(act);
        act = archive_file(root, SB_CONTAINER_ACTIVITY, "/subscriptions/sub-1", after);
        text = read_file(act);
    }
    assert_non_null(text);
    assert_int_equal(count_json_lines(text), 1);
    assert_non_null(strstr(text, "\"category\":\"Administrative\""));
    free(text);
    free(act);
    free(logs);
    s.vt->close(&s);
    assert_null(s.impl);
    for (int i = 0; i < 4; i++)
        sb_log_record_free(recs[i]);
    free(root);
}

static void test_archive_failure_then_retry(void **state) {
    char *root = sb_asprintf("%s/storage/local", tmpdir);
    sb_sink s = {.vt = &sb_sink_archive};
    sb_sink_config c = config(root, 0);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    /* a regular file where the year folder must go: the append cannot open its file */
    int64_t t = now_us();
    char *file = archive_file(root, SB_CONTAINER_LOGS, RID, t);
    char *year = strstr(file, "/y=");
    assert_non_null(year);
    year = strndup(file, (size_t)(year - file) + 7);
    *strrchr(year, '/') = '\0';
    char *parent = strdup(year);
    *strrchr(parent, '/') = '\0';
    char *cmd = sb_asprintf("mkdir -p '%s' && touch '%s'", parent, year);
    assert_int_equal(system(cmd), 0);

    sb_log_record *recs[3] = {rec(SB_LOGT_CONNECTIVITY, "A", "1"), rec(SB_LOGT_CONNECTIVITY, "B", "2"),
                              rec(SB_LOGT_CONNECTIVITY, "C", "3")};
    assert_int_equal(s.vt->write(&s, recs, 3), SB_OK);
    int rc = s.vt->flush(&s);
    if (now_us() / 3600000000 == t / 3600000000) { /* same hour: the blocked path was the one used */
        assert_true(rc < 0);
        assert_non_null(strstr(s.err, "cannot open"));
        assert_int_equal(unlink(year), 0);
        /* the pipeline retries with the same records: written once, whole */
        assert_int_equal(s.vt->write(&s, recs, 3), SB_OK);
        assert_int_equal(s.vt->flush(&s), SB_OK);
        char *text = read_file(file);
        assert_non_null(text);
        assert_int_equal(count_json_lines(text), 3);
        free(text);
    }
    s.vt->close(&s);
    for (int i = 0; i < 3; i++)
        sb_log_record_free(recs[i]);
    free(cmd);
    free(parent);
    free(year);
    free(file);
    free(root);

    /* a root below a regular file cannot be created: open fails, says why, and close is still safe */
    char *blocker = sb_asprintf("%s/blocker", tmpdir);
    FILE *f = fopen(blocker, "w");
    fclose(f);
    char *bad = sb_asprintf("%s/sub/dir", blocker);
    sb_sink s2 = {.vt = &sb_sink_archive};
    sb_sink_config c2 = config(bad, 0);
    assert_true(s2.vt->open(&s2, &c2) < 0);
    assert_non_null(strstr(s2.err, "cannot create"));
    s2.vt->close(&s2);
    free(bad);
    free(blocker);
}

static void make_hour(const char *root, const char *container, const char *resource_upper, int64_t t) {
    time_t secs = (time_t)(t / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char *cmd = sb_asprintf("mkdir -p '%s/%s/resourceId=%s/y=%04d/m=%02d/d=%02d/h=%02d/m=00' && touch "
                            "'%s/%s/resourceId=%s/y=%04d/m=%02d/d=%02d/h=%02d/m=00/PT1H.json'",
                            root, container, resource_upper, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                            tm.tm_hour, root, container, resource_upper, tm.tm_year + 1900, tm.tm_mon + 1,
                            tm.tm_mday, tm.tm_hour);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static int hour_exists(const char *root, const char *container, const char *resource, int64_t t) {
    char *p = archive_file(root, container, resource, t);
    int ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static void test_archive_retention(void **state) {
    char *root = sb_asprintf("%s/activitylog", tmpdir);
    const int64_t day = INT64_C(86400000000);
    int64_t now = now_us();
    /* at_cutoff: the hour that contains the cutoff instant is not over yet, so it stays */
    int64_t old = now - 200 * day, edge_old = now - 91 * day, at_cutoff = now - 90 * day,
            recent = now - 89 * day;
    const char *sub = "/subscriptions/sub-1", *sub_upper = "/SUBSCRIPTIONS/SUB-1";
    make_hour(root, SB_CONTAINER_ACTIVITY, sub_upper, old);
    make_hour(root, SB_CONTAINER_ACTIVITY, sub_upper, edge_old);
    make_hour(root, SB_CONTAINER_ACTIVITY, sub_upper, recent);
    make_hour(root, SB_CONTAINER_ACTIVITY, sub_upper, at_cutoff);
    make_hour(root, SB_CONTAINER_LOGS, RID_UPPER, old);
    /* things the sweep did not create are never touched */
    char *keep = sb_asprintf("%s/%s/resourceId=%s/y=2001/notes", root, SB_CONTAINER_ACTIVITY, sub_upper);
    char *cmd = sb_asprintf("mkdir -p '%s'", keep);
    assert_int_equal(system(cmd), 0);

    sb_sink s = {.vt = &sb_sink_archive};
    sb_sink_config c = config(root, 90);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    s.vt->tick(&s, now);
    assert_false(hour_exists(root, SB_CONTAINER_ACTIVITY, sub, old));
    assert_false(hour_exists(root, SB_CONTAINER_ACTIVITY, sub, edge_old));
    assert_true(hour_exists(root, SB_CONTAINER_ACTIVITY, sub, recent));
    assert_true(hour_exists(root, SB_CONTAINER_ACTIVITY, sub, at_cutoff));
    assert_false(hour_exists(root, SB_CONTAINER_LOGS, RID, old));
    assert_int_equal(access(keep, F_OK), 0);
    /* emptied parents go too: the old year folder (200 days back) is gone unless the recent shares it */
    time_t so = (time_t)(old / 1000000), sr = (time_t)(recent / 1000000);
    struct tm tmo, tmr;
    gmtime_r(&so, &tmo);
    gmtime_r(&sr, &tmr);
    if (tmo.tm_year != tmr.tm_year) {
        char *ydir = sb_asprintf("%s/%s/resourceId=%s/y=%04d", root, SB_CONTAINER_ACTIVITY, sub_upper,
                                 tmo.tm_year + 1900);
        assert_int_not_equal(access(ydir, F_OK), 0);
        free(ydir);
    }

    /* at most once an hour */
    make_hour(root, SB_CONTAINER_ACTIVITY, sub_upper, old);
    s.vt->tick(&s, now + 60 * INT64_C(1000000));
    assert_true(hour_exists(root, SB_CONTAINER_ACTIVITY, sub, old));
    s.vt->tick(&s, now + INT64_C(3600000000) + 1);
    assert_false(hour_exists(root, SB_CONTAINER_ACTIVITY, sub, old));
    s.vt->close(&s);

    /* retention 0 keeps everything */
    make_hour(root, SB_CONTAINER_ACTIVITY, sub_upper, old);
    sb_sink s2 = {.vt = &sb_sink_archive};
    sb_sink_config c2 = config(root, 0);
    assert_int_equal(s2.vt->open(&s2, &c2), SB_OK);
    s2.vt->tick(&s2, now);
    assert_true(hour_exists(root, SB_CONTAINER_ACTIVITY, sub, old));
    s2.vt->close(&s2);
    free(cmd);
    free(keep);
    free(root);
}

/* ---- workspace ---- */

static sqlite3 *open_db(const char *path) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static long long scalar(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *text_query(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    char *r = strdup(t ? (const char *)t : "(null)");
    sqlite3_finalize(st);
    return r;
}

static void expect_text(sqlite3 *db, const char *sql, const char *want) {
    char *got = text_query(db, sql);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got '%s', want '%s'", sql, got, want);
    free(got);
}

static void expect_columns(sqlite3 *db, const char *table, const char *const *cols, size_t n) {
    char *sql = sb_asprintf("PRAGMA table_info(%s)", table);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    size_t i = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(i < n);
        assert_string_equal((const char *)sqlite3_column_text(st, 1), cols[i]);
        i++;
    }
    assert_int_equal(i, n);
    sqlite3_finalize(st);
    free(sql);
}

static void test_workspace_rows(void **state) {
    char *path = sb_asprintf("%s/ws.db", tmpdir);
    sb_sink s = {.vt = &sb_sink_workspace};
    sb_sink_config c = config(path, 0);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    sb_log_fields conn = {.type = SB_LOGT_CONNECTIVITY,
                          .level = SB_LEVEL_WARNING,
                          .operation_name = SB_OP_CONNECTION_ABORTED,
                          .collection = SB_LOG_COLLECTION_CONNECTION,
                          .message = SB_MSG_PING_TIMEOUT,
                          .caller_ip = "10.1.2.3",
                          .connection_id = "conn-1",
                          .user_id = "alice",
                          .transport_type = SB_LOG_TRANSPORT_SSE,
                          .connection_type = SB_LOG_CONNECTION_TYPE_CLIENT,
                          .hub = "chat",
                          .group = "g1"};
    sb_log_fields msg = {.type = SB_LOGT_MESSAGING,
                         .operation_name = SB_OP_MESSAGE_RECEIVED_FROM_SERVER,
                         .collection = SB_LOG_COLLECTION_MESSAGE,
                         .message_type = "BroadcastDataMessage",
                         .tracing_id = 1234567890123ull,
                         .has_tracing_id = 1};
    sb_log_fields http = {.type = SB_LOGT_HTTP,
                          .operation_name = SB_OP_HTTP_REQUEST,
                          .http_method = "GET",
                          .url = "/api/health",
                          .route_template = "/api/health",
                          .trace_id = "tr",
                          .status_code = 200,
                          .duration_ms = 1.25};
    sb_log_fields act = {.type = SB_LOGT_ACTIVITY,
                         .operation_name = "Microsoft.Insights/diagnosticSettings/write",
                         .caller = "accessKey",
                         .caller_ip = "127.0.0.1",
                         .status = "Succeeded",
                         .message = "Create or update resource diagnostic setting",
                         .properties = "{\"name\":\"s1\"}"};
    sb_log_fields act_bare = {.type = SB_LOGT_ACTIVITY,
                              .operation_name = "Microsoft.SignalRService/SignalR/write"};
    sb_log_record *recs[5] = {sb_log_record_new(&conn), sb_log_record_new(&msg), sb_log_record_new(&http),
                              sb_log_record_new(&act), sb_log_record_new(&act_bare)};
    recs[0]->time_us = INT64_C(1795654923456789);
    assert_int_equal(s.vt->write(&s, recs, 5), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK);
    s.vt->close(&s);

    sqlite3 *db = open_db(path);
    static const char *const log_cols[] = {
        "TimeGenerated",   "Collection",       "OperationName", "Location",
        "Level",           "CallerIpAddress",  "Message",       "UserId",
        "ConnectionId",    "ConnectionType",   "TransportType", "HubName",
        "GroupName",       "MessageTracingId", "MessageType",   "InvocationId",
        "LogType",         "HttpMethod",       "Url",           "RouteTemplate",
        "StatusCode",      "DurationMs",       "TraceId",       "_ResourceId",
        "_SubscriptionId", "TenantId",         "SourceSystem",  "Type"};
    expect_columns(db, SB_TABLE_DIAGNOSTIC_LOGS, log_cols, sizeof log_cols / sizeof log_cols[0]);
    static const char *const act_cols[] = {"TimeGenerated",
                                           "OperationName",
                                           "OperationNameValue",
                                           "Level",
                                           "ActivityStatusValue",
                                           "Caller",
                                           "CallerIpAddress",
                                           "Category",
                                           "Properties",
                                           "_ResourceId",
                                           "SubscriptionId",
                                           "ResourceGroup",
                                           "ResourceProviderValue",
                                           "Type"};
    expect_columns(db, SB_TABLE_ACTIVITY, act_cols, sizeof act_cols / sizeof act_cols[0]);
    assert_int_equal(scalar(db, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 3);
    assert_int_equal(scalar(db, "SELECT count(*) FROM AzureActivity"), 2);
    expect_text(
        db,
        "SELECT TimeGenerated||'|'||Collection||'|'||OperationName||'|'||Location||'|'||Level||'|'||"
        "CallerIpAddress||'|'||Message||'|'||UserId||'|'||ConnectionId||'|'||ConnectionType||'|'||"
        "TransportType||'|'||HubName||'|'||GroupName||'|'||coalesce(MessageTracingId,'NULL')||'|'||"
        "MessageType||'|'||InvocationId||'|'||LogType||'|'||HttpMethod||'|'||coalesce(StatusCode,'NULL')||'|'"
        "||_ResourceId||'|'||_SubscriptionId||'|'||TenantId||'|'||SourceSystem||'|'||Type "
        "FROM SignalRServiceDiagnosticLogs WHERE rowid = 1",
        "2026-11-26T01:02:03.4567890Z|Connection|ConnectionAborted|westus|Warning|10.1.2.3|"
        "Connection ping "
        "timeout|alice|conn-1|Client|ServerSentEvents|chat|g1|NULL|||ConnectivityLogs||NULL|" RID_UPPER
        "|sub-1||Azure|SignalRServiceDiagnosticLogs");
    expect_text(
        db,
        "SELECT "
        "MessageTracingId||'|'||typeof(MessageTracingId)||'|'||MessageType||'|'||LogType||'|'||Message "
        "FROM SignalRServiceDiagnosticLogs WHERE rowid = 2",
        "1234567890123|integer|BroadcastDataMessage|MessagingLogs|");
    expect_text(
        db,
        "SELECT HttpMethod||'|'||Url||'|'||RouteTemplate||'|'||StatusCode||'|'||typeof(StatusCode)||'|'||"
        "DurationMs||'|'||typeof(DurationMs)||'|'||TraceId||'|'||LogType||'|'||Collection "
        "FROM SignalRServiceDiagnosticLogs WHERE rowid = 3",
        "GET|/api/health|/api/health|200|integer|1.25|real|tr|HttpRequestLogs|");
    expect_text(
        db,
        "SELECT "
        "OperationName||'|'||OperationNameValue||'|'||Level||'|'||ActivityStatusValue||'|'||Caller||'|'"
        "||CallerIpAddress||'|'||Category||'|'||Properties||'|'||_ResourceId||'|'||SubscriptionId||'|'||"
        "ResourceGroup||'|'||ResourceProviderValue||'|'||Type FROM AzureActivity WHERE rowid = 1",
        "Create or update resource diagnostic "
        "setting|MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/WRITE|Informational|"
        "Succeeded|accessKey|127.0.0.1|Administrative|{\"name\":\"s1\"}|" RID_UPPER
        "|sub-1|rg1|MICROSOFT.SIGNALRSERVICE|AzureActivity");
    /* no display text: the operation stands in; absent strings are '' and the properties an empty object */
    expect_text(
        db,
        "SELECT "
        "OperationName||'|'||OperationNameValue||'|'||Caller||'|'||ActivityStatusValue||'|'||Properties "
        "FROM AzureActivity WHERE rowid = 2",
        "Microsoft.SignalRService/SignalR/write|MICROSOFT.SIGNALRSERVICE/SIGNALR/WRITE|||{}");
    /* the text sorts like the time */
    expect_text(db, "SELECT ConnectionId FROM SignalRServiceDiagnosticLogs ORDER BY TimeGenerated LIMIT 1",
                "conn-1");
    expect_text(db, "SELECT value FROM _switchboard_meta WHERE key = 'schema_version'", "1");
    expect_text(db, "PRAGMA journal_mode", "wal");
    assert_int_equal(
        scalar(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ("
                   "'ix_SignalRServiceDiagnosticLogs_TimeGenerated',"
                   "'ix_SignalRServiceDiagnosticLogs_ConnectionId',"
                   "'ix_SignalRServiceDiagnosticLogs_UserId',"
                   "'ix_SignalRServiceDiagnosticLogs_MessageTracingId', 'ix_AzureActivity_TimeGenerated')"),
        5);
    sqlite3_close(db);
    for (int i = 0; i < 5; i++)
        sb_log_record_free(recs[i]);
    free(path);
}

static void test_workspace_retry_and_reopen(void **state) {
    char *path = sb_asprintf("%s/ws.db", tmpdir);
    sb_sink s = {.vt = &sb_sink_workspace};
    sb_sink_config c = config(path, 0);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    sb_log_record *recs[5];
    for (int i = 0; i < 5; i++)
        recs[i] = rec(SB_LOGT_CONNECTIVITY, SB_OP_CONNECTION_STARTED, "c");
    /* an attempt that never committed is replaced by the retry, not added to */
    assert_int_equal(s.vt->write(&s, recs, 5), SB_OK);
    assert_int_equal(s.vt->write(&s, recs, 5), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK); /* nothing open: a no-op */

    /* a reader holding a snapshot does not block the next delivery (WAL) */
    sqlite3 *reader = open_db(path);
    assert_int_equal(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(scalar(reader, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 5);
    assert_int_equal(s.vt->write(&s, recs, 2), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK);
    assert_int_equal(scalar(reader, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"),
                     5); /* its snapshot */
    sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
    assert_int_equal(scalar(reader, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 7);
    sqlite3_close(reader);
    /* staged but never flushed: close rolls it back */
    assert_int_equal(s.vt->write(&s, recs, 5), SB_OK);
    s.vt->close(&s);

    /* reopening an existing database keeps its rows */
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    assert_int_equal(s.vt->write(&s, recs, 1), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK);
    s.vt->close(&s);
    sqlite3 *db = open_db(path);
    assert_int_equal(scalar(db, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 8);

    /* a database from a newer schema is refused, with the reason */
    assert_int_equal(sqlite3_exec(db, "UPDATE _switchboard_meta SET value = '2'", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(s.vt->open(&s, &c), SB_EPROTO);
    assert_non_null(strstr(s.err, "unsupported workspace schema version 2"));
    s.vt->close(&s);

    /* a database that cannot be created */
    char *bad = sb_asprintf("%s/missing/dir/ws.db", tmpdir);
    sb_sink_config c2 = config(bad, 0);
    assert_true(s.vt->open(&s, &c2) < 0);
    assert_non_null(strstr(s.err, bad));
    s.vt->close(&s);

    /* not a database at all */
    char *junk = sb_asprintf("%s/junk.db", tmpdir);
    FILE *f = fopen(junk, "w");
    fputs("this is not a database, just some text that is long enough to fill a header page...........", f);
    fclose(f);
    sb_sink_config c3 = config(junk, 0);
    assert_true(s.vt->open(&s, &c3) < 0);
    assert_true(s.err[0] != '\0');
    s.vt->close(&s);

    for (int i = 0; i < 5; i++)
        sb_log_record_free(recs[i]);
    free(junk);
    free(bad);
    free(path);
}

/* ---- fan-out records ---- */

/* A SentToClient fan-out to n recipients <prefix>-<i>; odd ones have a user, every third no caller IP. */
static sb_log_record *fanout_rec(uint64_t tracing_id, size_t n, const char *prefix) {
    char head[SB_LOG_SENT_HEAD_MAX];
    sb_log_fields f;
    sb_log_fields_sent_to_client(&f, "chat", tracing_id, head, sizeof head);
    sb_log_record *r = NULL;
    for (size_t i = 0; i < n; i++) {
        char conn[64], user[32];
        snprintf(conn, sizeof conn, "%s-%zu", prefix, i);
        snprintf(user, sizeof user, "user-%zu", i);
        sb_log_recipient rc = {conn, i % 2 ? user : NULL, i % 3 ? "10.0.0.9" : NULL,
                               i % 2 ? SB_LOG_TRANSPORT_SSE : SB_LOG_TRANSPORT_WEBSOCKETS};
        if (r)
            sb_log_record_add_recipient(r, &rc);
        else
            r = sb_log_record_new_fanout(&f, &rc, NULL, 0);
    }
    return r;
}

static void test_fanout_one_line_and_row_per_recipient(void **state) {
    sb_log_record *recs[4] = {rec(SB_LOGT_CONNECTIVITY, SB_OP_CONNECTION_STARTED, "c1"), fanout_rec(7, 5, "f"),
                              rec(SB_LOGT_HTTP, SB_OP_HTTP_REQUEST, "h"), fanout_rec(8, 3, "g")};
    static const char *const order[] = {"c1", "f-0", "f-1", "f-2", "f-3", "f-4", "h", "g-0", "g-1", "g-2"};

    /* archive: a failed attempt's staging is discarded, so a retried batch is written once */
    char *root = sb_asprintf("%s/storage/local", tmpdir);
    sb_sink s = {.vt = &sb_sink_archive};
    sb_sink_config c = config(root, 0);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    int64_t before = now_us();
    assert_int_equal(s.vt->write(&s, recs, 4), SB_OK);
    assert_int_equal(s.vt->write(&s, recs, 4), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK);
    int64_t after = now_us();
    s.vt->close(&s);
    char *logs = archive_file(root, SB_CONTAINER_LOGS, RID, before);
    char *text = read_file(logs);
    if (!text) {
        free(logs);
        logs = archive_file(root, SB_CONTAINER_LOGS, RID, after);
        text = read_file(logs);
    }
    assert_non_null(text);
    assert_int_equal(count_json_lines(text), 10);
    const char *p = text;
    for (size_t i = 0; i < 10; i++) {
        char *key = sb_asprintf("\"connectionId\":\"%s\"", order[i]);
        const char *at = strstr(p, key);
        if (!at)
            fail_msg("%s missing or out of order", key);
        p = at;
        free(key);
    }
    assert_non_null(strstr(text, "\"message\":\"Sent a message 7 to client connection f-3 successfully.\""));
    free(text);
    free(logs);

    /* workspace: a row per recipient; the retried batch replaces the failed attempt's rows */
    char *path = sb_asprintf("%s/ws.db", tmpdir);
    sb_sink w = {.vt = &sb_sink_workspace};
    sb_sink_config wc = config(path, 0);
    assert_int_equal(w.vt->open(&w, &wc), SB_OK);
    assert_int_equal(w.vt->write(&w, recs, 4), SB_OK);
    assert_int_equal(w.vt->write(&w, recs, 4), SB_OK);
    assert_int_equal(w.vt->flush(&w), SB_OK);
    w.vt->close(&w);
    sqlite3 *db = open_db(path);
    assert_int_equal(scalar(db, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 10);
    for (size_t i = 0; i < 10; i++) {
        char *sql =
            sb_asprintf("SELECT ConnectionId FROM SignalRServiceDiagnosticLogs WHERE rowid = %zu", i + 1);
        expect_text(db, sql, order[i]);
        free(sql);
    }
    expect_text(db,
                "SELECT Message||'|'||UserId||'|'||CallerIpAddress||'|'||TransportType||'|'||ConnectionType"
                "||'|'||HubName||'|'||MessageTracingId||'|'||LogType||'|'||OperationName||'|'||Collection "
                "FROM SignalRServiceDiagnosticLogs WHERE ConnectionId = 'f-3'",
                "Sent a message 7 to client connection f-3 successfully.|user-3||ServerSentEvents|Client|chat|"
                "7|MessagingLogs|MessageSentToClient|Message");
    expect_text(db,
                "SELECT UserId||'|'||CallerIpAddress||'|'||TransportType FROM SignalRServiceDiagnosticLogs "
                "WHERE ConnectionId = 'g-2'",
                "|10.0.0.9|WebSockets");
    /* a fan-out's rows share its one instant */
    assert_int_equal(scalar(db, "SELECT count(DISTINCT TimeGenerated) FROM SignalRServiceDiagnosticLogs WHERE "
                                "MessageTracingId = 7"),
                     1);
    sqlite3_close(db);
    free(path);
    for (int i = 0; i < 4; i++)
        sb_log_record_free(recs[i]);
    free(root);
}

/* Far past the drop-behind stretch (pages handed to writeback, then dropped from the cache), the file still
 * holds every line in order, and a reopened sink appends after them. */
static void test_archive_drop_behind_keeps_every_byte(void **state) {
#if defined(__SANITIZE_ADDRESS__)
    const size_t fanouts = 60, per = 1000;
#else
    const size_t fanouts = 150, per = 1000; /* ~90 MB: several stretches */
#endif
    char *root = sb_asprintf("%s/storage/local", tmpdir);
    sb_sink s = {.vt = &sb_sink_archive};
    sb_sink_config c = config(root, 0);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    int64_t before = now_us();
    size_t bytes = 0;
    sb_buf expect_last;
    sb_buf_init(&expect_last);
    for (size_t i = 0; i < fanouts; i++) {
        sb_log_record *r = fanout_rec(i + 1, per, "a-connection-id-of-ordinary-length");
        sb_buf one;
        sb_buf_init(&one);
        sb_log_record_archive_json(r, RID, "westus", &one);
        bytes += one.len;
        if (i == fanouts - 1) {
            sb_buf_reset(&expect_last);
            sb_buf_append(&expect_last, one.data, one.len);
        }
        sb_buf_free(&one);
        assert_int_equal(s.vt->write(&s, &r, 1), SB_OK);
        assert_int_equal(s.vt->flush(&s), SB_OK);
        sb_log_record_free(r);
    }
    s.vt->close(&s);
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    sb_log_record *last = rec(SB_LOGT_CONNECTIVITY, SB_OP_CONNECTION_ENDED, "the-end");
    assert_int_equal(s.vt->write(&s, &last, 1), SB_OK);
    assert_int_equal(s.vt->flush(&s), SB_OK);
    s.vt->close(&s);
    int64_t after = now_us();
    sb_log_record_free(last);
    if (before / 3600000000 == after / 3600000000) { /* one hour file */
        char *file = archive_file(root, SB_CONTAINER_LOGS, RID, before);
        char *text = read_file(file);
        assert_non_null(text);
        size_t len = strlen(text), lines = 0;
        for (const char *q = text; (q = strchr(q, '\n')); q++)
            lines++;
        assert_int_equal(lines, fanouts * per + 1);
        char *tail = strrchr(text, '\n');
        *tail = '\0';
        tail = strrchr(text, '\n') + 1;
        assert_non_null(strstr(tail, "\"connectionId\":\"the-end\""));
        assert_true(len > bytes);
        assert_memory_equal(text + bytes - expect_last.len, expect_last.data, expect_last.len);
        free(text);
        free(file);
    }
    sb_buf_free(&expect_last);
    free(root);
}

/* ---- micro-benchmark (prints, never fails on speed) ---- */

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double bench_sink(const sb_sink_vtable *vt, const char *path, sb_log_record **recs, size_t n) {
    sb_sink s = {.vt = vt};
    sb_sink_config c = config(path, 0);
    assert_int_equal(vt->open(&s, &c), SB_OK);
    double t0 = mono_s();
    for (size_t i = 0; i < n; i += 8192) {
        size_t k = n - i < 8192 ? n - i : 8192;
        assert_int_equal(vt->write(&s, recs + i, k), SB_OK);
        assert_int_equal(vt->flush(&s), SB_OK);
    }
    double dt = mono_s() - t0;
    vt->close(&s);
    return (double)n / dt;
}

static void test_bench_sinks(void **state) {
#if defined(__SANITIZE_ADDRESS__)
    const size_t n = 50000;
#else
    const size_t n = 400000;
#endif
    sb_log_record **recs = malloc(n * sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        char conn[32], user[32], msg[128];
        snprintf(conn, sizeof conn, "conn-%zu", i % 5000);
        snprintf(user, sizeof user, "user-%zu", i % 1000);
        snprintf(msg, sizeof msg, "Sent a message %zu to client connection %s successfully.", i, conn);
        sb_log_fields f = {.type = SB_LOGT_MESSAGING,
                           .operation_name = SB_OP_MESSAGE_SENT_TO_CLIENT,
                           .collection = SB_LOG_COLLECTION_MESSAGE,
                           .message = msg,
                           .caller_ip = "10.0.0.1",
                           .connection_id = conn,
                           .user_id = user,
                           .transport_type = SB_LOG_TRANSPORT_WEBSOCKETS,
                           .connection_type = SB_LOG_CONNECTION_TYPE_CLIENT,
                           .hub = "chat",
                           .tracing_id = i,
                           .has_tracing_id = 1};
        recs[i] = sb_log_record_new(&f);
    }
    char *root = sb_asprintf("%s/bench-storage", tmpdir), *db = sb_asprintf("%s/bench.db", tmpdir);
    double ar = bench_sink(&sb_sink_archive, root, recs, n);
    double wr = bench_sink(&sb_sink_workspace, db, recs, n);
    print_message("sink benchmark: %zu messaging records: archive %.0f records/s, workspace %.0f records/s\n",
                  n, ar, wr);
    for (size_t i = 0; i < n; i++)
        sb_log_record_free(recs[i]);
    free(recs);
    free(root);
    free(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archive_path),
        cmocka_unit_test_setup_teardown(test_archive_appends_by_hour_of_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_failure_then_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workspace_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workspace_retry_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_one_line_and_row_per_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_drop_behind_keeps_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench_sinks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
