/*
 * test_diag_pipeline.c - the resource-log pipeline end to end, in a temp data
 * dir, through a server struct with only the fields the pipeline reads:
 * nothing is written without a setting (but the activity log always is),
 * records reach the archive and the workspace exactly once and in order,
 * settings persist and are reloaded, audit routing, re-routing on a settings
 * change, undeclared destinations, queue overflow (counted and reported), a
 * failing sink (retried, then dropped and reported, without blocking the
 * other destination), a bounded stop, and a throughput figure (printed, not
 * asserted).  Fan-outs: one record per message's deliveries, closed by any
 * other record or the hand-off (order kept), counted per recipient in every
 * counter and in the queue bound, retried whole, chunked by recipients, their
 * blocks recycled across turns without mixing recipients up.
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
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag/diag.h"
#include "diag/names.h"
#include "diag/sink.h"
#include "server.h"
#include "util/alloc.h"
#include "util/error.h"

#define RID "/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.SignalRService/SignalR/hub1"

static sb_server srv;
static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(p);
}

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb_pipeline_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    memset(&srv, 0, sizeof srv);
    srv.cfg.data_dir = tmpdir;
    srv.cfg.log_queue_max_records = 100000;
    srv.cfg.location = "westus";
    srv.cfg.subscription_id = "sub-1";
    srv.cfg.resource_group = "rg1";
    srv.cfg.resource_name = "hub1";
    srv.cfg.storage_accounts = "local, other";
    srv.cfg.workspaces = "local";
    snprintf(srv.resource_id, sizeof srv.resource_id, "%s", RID);
    return 0;
}

static int teardown(void **state) {
    sb_diag_stop(&srv);
    sb_sink_register(&sb_sink_archive);
    sb_sink_register(&sb_sink_workspace);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void add_setting(sb_diag_settings *s, const char *name, const char *storage, const char *workspace,
                        int all, int audit) {
    sb_diag_setting *d = &s->v[s->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    if (storage)
        d->storage_account_id = sb_asprintf(
            "/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/%s",
            storage);
    if (workspace)
        d->workspace_id = sb_asprintf(
            "/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/%s",
            workspace);
    d->logs_all = all;
    d->logs_audit = audit;
}

static void apply(const char *storage, const char *workspace, int all, int audit) {
    sb_diag_settings s;
    sb_diag_settings_init(&s);
    add_setting(&s, "s1", storage, workspace, all, audit);
    sb_diag_apply_settings(&srv, &s);
    sb_diag_settings_free(&s);
}

static sb_diag_stats stats(void) {
    sb_diag_stats st;
    sb_diag_get_stats(&srv, &st);
    return st;
}

/* Poll the counters; fail after timeout_s. */
static void wait_written(uint64_t written, uint64_t dropped_sink, double timeout_s) {
    double end = mono_s() + timeout_s;
    for (;;) {
        sb_diag_stats st = stats();
        if (st.written >= written && st.dropped_sink >= dropped_sink)
            return;
        if (mono_s() > end)
            fail_msg("timed out: written %llu (want %llu), dropped_sink %llu (want %llu)",
                     (unsigned long long)st.written, (unsigned long long)written,
                     (unsigned long long)st.dropped_sink, (unsigned long long)dropped_sink);
        usleep(5000);
    }
}

static void emit_conn(int i, const char *collection) {
    char conn[32];
    snprintf(conn, sizeof conn, "c-%d", i);
    sb_log_fields f = {.type = SB_LOGT_CONNECTIVITY,
                       .level = SB_LEVEL_INFORMATIONAL,
                       .operation_name = SB_OP_CONNECTION_STARTED,
                       .collection = collection,
                       .message = SB_MSG_CONNECTION_STARTED,
                       .connection_id = conn,
                       .caller_ip = "127.0.0.1",
                       .transport_type = SB_LOG_TRANSPORT_WEBSOCKETS,
                       .connection_type = SB_LOG_CONNECTION_TYPE_CLIENT};
    sb_diag_emit(&srv, &f);
}

static void emit_activity(const char *op) {
    sb_log_fields f = {.type = SB_LOGT_ACTIVITY,
                       .operation_name = op,
                       .caller = "accessKey",
                       .status = "Succeeded",
                       .properties = "{\"x\":1}"};
    sb_diag_emit(&srv, &f);
}

/* ---- reading what was written ---- */

static char **found;
static size_t nfound;

static int collect(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    if (flag == FTW_F && strcmp(p + strlen(p) - 9, "PT1H.json") == 0) {
        found = realloc(found, (nfound + 1) * sizeof *found);
        found[nfound++] = strdup(p);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every line of every hour file under dir (hours in order), as parsed objects in a JSON array. */
static json_t *archive_lines(const char *sub) {
    char *dir = sb_asprintf("%s/%s", tmpdir, sub);
    found = NULL;
    nfound = 0;
    nftw(dir, collect, 16, FTW_PHYS);
    if (nfound)
        qsort(found, nfound, sizeof *found, cmp_str);
    json_t *all = json_array();
    for (size_t i = 0; i < nfound; i++) {
        FILE *f = fopen(found[i], "r");
        assert_non_null(f);
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, f)) > 0) {
            assert_int_equal(line[n - 1], '\n');
            json_error_t e;
            json_t *j = json_loads(line, 0, &e);
            if (!j)
                fail_msg("bad line in %s: %s", found[i], line);
            json_array_append_new(all, j);
        }
        free(line);
        fclose(f);
        free(found[i]);
    }
    free(found);
    free(dir);
    return all;
}

static const char *prop(json_t *line, const char *key) {
    return json_string_value(json_object_get(json_object_get(line, "properties"), key));
}

static long long db_count(const char *name, const char *sql) {
    char *path = sb_asprintf("%s/workspaces/%s.db", tmpdir, name);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(path);
    return v;
}

static int exists(const char *sub) {
    char *p = sb_asprintf("%s/%s", tmpdir, sub);
    int ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* ---- tests ---- */

static void test_flags_and_should_log(void **state) {
    assert_false(sb_diag_should_log(&srv, SB_LOGT_ACTIVITY, 0)); /* not started */
    assert_int_equal(sb_diag_current_settings(&srv)->n, 0);
    emit_conn(0, SB_LOG_COLLECTION_CONNECTION); /* no pipeline: a no-op */
    sb_diag_flush_turn(&srv);

    assert_int_equal(sb_diag_start(&srv), SB_OK);
    assert_int_equal(sb_diag_start(&srv), SB_OK); /* already running */
    assert_false(sb_diag_collecting(&srv));
    assert_false(sb_diag_should_log(&srv, SB_LOGT_CONNECTIVITY, 1));
    assert_true(sb_diag_should_log(&srv, SB_LOGT_ACTIVITY, 0));
    assert_true(sb_diag_type_enabled(&srv, SB_LOGT_MESSAGING)); /* default: collect all */

    sb_diag_settings s;
    sb_diag_settings_init(&s);
    add_setting(&s, "s1", "local", NULL, 1, 0);
    s.type_enabled[SB_LOGT_MESSAGING] = 0;
    sb_diag_apply_settings(&srv, &s);
    sb_diag_settings_free(&s);
    /* effective for producers at once */
    assert_true(sb_diag_collecting(&srv));
    assert_false(sb_diag_type_enabled(&srv, SB_LOGT_MESSAGING));
    assert_false(sb_diag_should_log(&srv, SB_LOGT_MESSAGING, 0));
    assert_true(sb_diag_should_log(&srv, SB_LOGT_MESSAGING, 1)); /* diagnostic clients: collect partially */
    assert_true(sb_diag_should_log(&srv, SB_LOGT_CONNECTIVITY, 0));
    assert_false(sb_diag_type_enabled(&srv, (sb_log_type)77));
    assert_false(sb_diag_should_log(&srv, (sb_log_type)77, 1));
    const sb_diag_settings *cur = sb_diag_current_settings(&srv);
    assert_int_equal(cur->n, 1);
    assert_string_equal(cur->v[0].name, "s1");

    sb_diag_stop(&srv);
    sb_diag_stop(&srv); /* idempotent */
    assert_null(srv.diag);
    assert_false(sb_diag_collecting(&srv));
    emit_conn(1, SB_LOG_COLLECTION_CONNECTION); /* after stop: a no-op */
    sb_diag_flush_turn(&srv);
    sb_diag_stats st = stats();
    assert_int_equal(st.emitted, 0);
}

static void test_no_setting_nothing_written(void **state) {
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    for (int i = 0; i < 10; i++)
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    emit_activity("Microsoft.SignalRService/SignalR/write"); /* the activity log is always collected */
    sb_diag_flush_turn(&srv);
    wait_written(1, 0, 5);
    assert_int_equal(stats().emitted, 1);
    sb_diag_stop(&srv);
    assert_false(exists("storage/local"));
    assert_false(exists("workspaces/local.db"));
    json_t *lines = archive_lines("storage");
    assert_int_equal(json_array_size(lines), 0);
    json_decref(lines);
    lines = archive_lines("activitylog/" SB_CONTAINER_ACTIVITY "/resourceId=/SUBSCRIPTIONS/SUB-1");
    assert_int_equal(json_array_size(lines), 1);
    json_t *a = json_array_get(lines, 0);
    assert_string_equal(json_string_value(json_object_get(a, "operationName")),
                        "Microsoft.SignalRService/SignalR/write");
    assert_string_equal(json_string_value(json_object_get(a, "category")), "Administrative");
    json_decref(lines);
    assert_false(exists("diagnostic-settings.json")); /* nothing changed, nothing saved */
}

static void test_end_to_end(void **state) {
    const int n = 3000;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", "local", 1, 0);
    for (int i = 0; i < n; i++) {
        char conn[32], msg[128];
        snprintf(conn, sizeof conn, "c-%d", i);
        if (i % 3 == 0) {
            emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
        } else if (i % 3 == 1) {
            snprintf(msg, sizeof msg, SB_MSG_FMT_SENT_TO_CLIENT, (unsigned long long)i, conn);
            sb_log_fields f = {.type = SB_LOGT_MESSAGING,
                               .operation_name = SB_OP_MESSAGE_SENT_TO_CLIENT,
                               .collection = SB_LOG_COLLECTION_MESSAGE,
                               .message = msg,
                               .connection_id = conn,
                               .tracing_id = (uint64_t)i,
                               .has_tracing_id = 1};
            sb_diag_emit(&srv, &f);
        } else {
            sb_log_fields f = {.type = SB_LOGT_HTTP,
                               .operation_name = SB_OP_HTTP_REQUEST,
                               .message = "GET /api/health 200",
                               .connection_id = conn,
                               .http_method = "GET",
                               .url = "/api/health",
                               .route_template = "/api/health",
                               .status_code = 200,
                               .duration_ms = 0.5};
            sb_diag_emit(&srv, &f);
        }
        if (i % 100 == 99)
            sb_diag_flush_turn(&srv);
    }
    sb_diag_flush_turn(&srv);
    wait_written(2 * (uint64_t)n, 0, 10);
    sb_diag_stats st = stats();
    assert_int_equal(st.emitted, n);
    assert_int_equal(st.written, 2 * n); /* one delivery per destination */
    assert_int_equal(st.dropped_queue + st.dropped_sink, 0);
    assert_int_equal(st.queue_depth, 0);
    sb_diag_stop(&srv);

    json_t *lines = archive_lines("storage/local/" SB_CONTAINER_LOGS);
    assert_int_equal(json_array_size(lines), n);
    for (int i = 0; i < n; i++) {
        json_t *l = json_array_get(lines, (size_t)i);
        char conn[32];
        snprintf(conn, sizeof conn, "c-%d", i);
        assert_string_equal(prop(l, "connectionId"), conn); /* in emission order */
        assert_string_equal(
            json_string_value(json_object_get(l, "resourceId")),
            "/SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.SIGNALRSERVICE/SIGNALR/HUB1");
        assert_string_equal(json_string_value(json_object_get(l, "location")), "westus");
        assert_string_equal(prop(l, "type"), i % 3 == 0   ? "ConnectivityLogs"
                                             : i % 3 == 1 ? "MessagingLogs"
                                                          : "HttpRequestLogs");
    }
    json_decref(lines);
    assert_int_equal(db_count("local", "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), n);
    assert_int_equal(db_count("local", "SELECT count(*) FROM SignalRServiceDiagnosticLogs WHERE LogType = "
                                       "'MessagingLogs' AND MessageTracingId % 3 = 1"),
                     n / 3);
    assert_int_equal(db_count("local",
                              "SELECT count(*) FROM SignalRServiceDiagnosticLogs WHERE StatusCode = 200 "
                              "AND HttpMethod = 'GET' AND ConnectionId = 'c-2'"),
                     1);
    assert_int_equal(
        db_count("local", "SELECT count(DISTINCT ConnectionId) FROM SignalRServiceDiagnosticLogs"), n);

    /* the settings were saved by the writer and come back on the next start */
    char *path = sb_asprintf("%s/diagnostic-settings.json", tmpdir);
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    assert_non_null(doc);
    json_t *list = json_object_get(doc, "diagnosticSettings");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")), "s1");
    json_decref(doc);
    char *tmp = sb_asprintf("%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed into place */
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    assert_true(sb_diag_collecting(&srv));
    assert_int_equal(sb_diag_current_settings(&srv)->n, 1);
    assert_non_null(strstr(sb_diag_current_settings(&srv)->v[0].workspace_id, "/workspaces/local"));
    sb_diag_stop(&srv);
    free(tmp);
    free(path);
}

static void test_audit_routing(void **state) {
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", NULL, 0, 1);
    emit_conn(1, SB_LOG_COLLECTION_CONNECTION);
    emit_conn(2, SB_LOG_COLLECTION_AUTHORIZATION);
    emit_conn(3, NULL);
    emit_activity("Microsoft.Insights/diagnosticSettings/write");
    sb_diag_flush_turn(&srv);
    wait_written(3, 0, 5); /* Authorization + activity to the account, activity to the built-in store */
    sb_diag_stop(&srv);
    json_t *lines = archive_lines("storage/local/" SB_CONTAINER_LOGS);
    assert_int_equal(json_array_size(lines), 1);
    assert_string_equal(prop(json_array_get(lines, 0), "connectionId"), "c-2");
    json_decref(lines);
    lines = archive_lines("storage/local/" SB_CONTAINER_ACTIVITY);
    assert_int_equal(json_array_size(lines), 1);
    json_decref(lines);
    lines = archive_lines("activitylog");
    assert_int_equal(json_array_size(lines), 1);
    json_decref(lines);
}

static void test_settings_change_reroutes(void **state) {
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", NULL, 1, 0);
    for (int i = 0; i < 5; i++)
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    sb_diag_flush_turn(&srv);
    wait_written(5, 0, 5);
    double t0 = mono_s();
    apply("other", NULL, 1, 0);
    for (int i = 5; i < 12; i++)
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    sb_diag_flush_turn(&srv);
    wait_written(12, 0, 5);
    assert_true(mono_s() - t0 < 1.0); /* within a turn, not Azure's 10 minutes */
    /* removing every setting stops collection at once */
    sb_diag_settings none;
    sb_diag_settings_init(&none);
    sb_diag_apply_settings(&srv, &none);
    assert_false(sb_diag_collecting(&srv));
    emit_conn(99, SB_LOG_COLLECTION_CONNECTION);
    sb_diag_flush_turn(&srv);
    assert_int_equal(stats().emitted, 12);
    sb_diag_stop(&srv);
    json_t *a = archive_lines("storage/local"), *b = archive_lines("storage/other");
    assert_int_equal(json_array_size(a), 5);
    assert_int_equal(json_array_size(b), 7);
    assert_string_equal(prop(json_array_get(b, 0), "connectionId"), "c-5");
    json_decref(a);
    json_decref(b);
    /* the last settings saved are the empty ones */
    sb_diag_settings loaded;
    char err[256];
    char *path = sb_asprintf("%s/diagnostic-settings.json", tmpdir);
    assert_int_equal(sb_diag_settings_load(&loaded, path, err, sizeof err), SB_OK);
    assert_int_equal(loaded.n, 0);
    sb_diag_settings_free(&loaded);
    free(path);
}

static void test_undeclared_destination(void **state) {
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("nothere", "local", 1, 0);
    for (int i = 0; i < 4; i++)
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    sb_diag_flush_turn(&srv);
    /* the workspace gets the 4 and the report; the account drops both, and does not report the report */
    wait_written(5, 5, 5);
    usleep(1300000); /* past the report interval: no second report may follow */
    sb_diag_stats st = stats();
    assert_int_equal(st.written, 5);
    assert_int_equal(st.dropped_sink, 5);
    sb_diag_stop(&srv);
    assert_false(exists("storage/nothere"));
    assert_int_equal(db_count("local", "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 5);
    assert_int_equal(db_count("local",
                              "SELECT count(*) FROM SignalRServiceDiagnosticLogs WHERE OperationName = "
                              "'LogRecordsDropped' AND Level = 'Warning' AND LogType = 'ConnectivityLogs' "
                              "AND Message = '4 log records were dropped: storage account ''nothere'' is "
                              "unavailable (not declared in the storage_accounts setting).'"),
                     1);
}

/* Seconds since the epoch of an archive "time" value. */
static double line_time(json_t *line) {
    struct tm tm = {0};
    int frac = 0;
    const char *t = json_string_value(json_object_get(line, "time"));
    assert_int_equal(sscanf(t, "%d-%d-%dT%d:%d:%d.%7d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec, &frac),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + frac / 1e7;
}

static void test_queue_overflow(void **state) {
    srv.cfg.log_queue_max_records = 100;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", NULL, 1, 0);
    for (int i = 0; i < 250; i++) /* one long turn: the bound holds before the hand-off */
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    sb_diag_stats st = stats();
    assert_int_equal(st.emitted, 100);
    assert_int_equal(st.dropped_queue, 150);
    sb_diag_flush_turn(&srv);
    wait_written(101, 0, 5);        /* the 100 and the report */
    for (int i = 250; i < 400; i++) /* room again once the writer took the queue; overflow again */
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    sb_diag_flush_turn(&srv);
    wait_written(202, 0, 5); /* the next report waits for the report interval */
    st = stats();
    assert_int_equal(st.emitted, 202);
    assert_int_equal(st.dropped_queue, 200);
    assert_int_equal(st.dropped_sink, 0);
    sb_diag_stop(&srv);

    json_t *lines = archive_lines("storage/local");
    assert_int_equal(json_array_size(lines), 202);
    const char *want[2] = {"150 log records were dropped: the log queue was full.",
                           "50 log records were dropped: the log queue was full."};
    double when[2];
    int warnings = 0;
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l) {
        if (strcmp(json_string_value(json_object_get(l, "operationName")), SB_OP_LOG_RECORDS_DROPPED) != 0)
            continue;
        assert_true(warnings < 2);
        assert_string_equal(json_string_value(json_object_get(l, "level")), "Warning");
        assert_string_equal(prop(l, "type"), "ConnectivityLogs");
        assert_string_equal(prop(l, "message"), want[warnings]);
        when[warnings++] = line_time(l);
    }
    assert_int_equal(warnings, 2);
    assert_true(when[1] - when[0] >= 0.95); /* at most one report a second */
    json_decref(lines);
}

/* A workspace that never accepts anything. */
static atomic_int fake_opens, fake_closes, fake_batch_attempts, fake_fail_open;

static int fake_open(sb_sink *s, const sb_sink_config *c) {
    atomic_fetch_add(&fake_opens, 1);
    if (atomic_load(&fake_fail_open)) {
        snprintf(s->err, sizeof s->err, "disk on fire");
        return SB_EIO;
    }
    s->impl = sb_malloc(16);
    return SB_OK;
}

static int fake_write(sb_sink *s, sb_log_record *const *recs, size_t n) {
    if (n && recs[0]->connection_id && strncmp(recs[0]->connection_id, "c-", 2) == 0)
        atomic_fetch_add(&fake_batch_attempts, 1);
    snprintf(s->err, sizeof s->err, "write refused");
    return SB_EIO;
}

static int fake_flush(sb_sink *s) {
    return SB_OK;
}

static void fake_close(sb_sink *s) {
    atomic_fetch_add(&fake_closes, 1);
    sb_free(s->impl);
    s->impl = NULL;
}

static const sb_sink_vtable fake_workspace = {
    .name = "workspace", .open = fake_open, .write = fake_write, .flush = fake_flush, .close = fake_close};

static int archive_has_message(const char *msg) {
    json_t *lines = archive_lines("storage/local");
    size_t i;
    json_t *l;
    int found_it = 0;
    json_array_foreach(lines, i, l) {
        const char *m = prop(l, "message");
        if (m && strcmp(m, msg) == 0)
            found_it = 1;
    }
    json_decref(lines);
    return found_it;
}

static void run_failing_workspace(int fail_open, const char *reason) {
    atomic_store(&fake_opens, 0);
    atomic_store(&fake_closes, 0);
    atomic_store(&fake_batch_attempts, 0);
    atomic_store(&fake_fail_open, fail_open);
    sb_sink_register(&fake_workspace);
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", "local", 1, 0);
    double t0 = mono_s();
    for (int i = 0; i < 10; i++)
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    sb_diag_flush_turn(&srv);
    /* the healthy archive is not held back by the failing workspace */
    wait_written(10, 0, 2);
    assert_true(mono_s() - t0 < 1.0);
    /* 1 attempt + 5 retries with backoff (at most 0.1+0.2+0.4+0.8+1.6 s), then dropped */
    wait_written(10, 10, 8);
    if (fail_open)
        assert_true(atomic_load(&fake_opens) >= 6);
    else
        assert_int_equal(atomic_load(&fake_batch_attempts), 6);
    char want[256];
    snprintf(want, sizeof want, "10 log records were dropped: workspace 'local' is unavailable (%s).",
             reason);
    double end = mono_s() + 5;
    while (!archive_has_message(want) && mono_s() < end)
        usleep(20000);
    assert_true(archive_has_message(want));
    t0 = mono_s();
    sb_diag_stop(&srv); /* the report itself is pending on the failing sink: the drain gives up in time */
    assert_true(mono_s() - t0 < 4.5);
    assert_int_equal(atomic_load(&fake_closes),
                     atomic_load(&fake_opens)); /* close also after a failed open */
}

static void test_failing_sink_retries_then_drops(void **state) {
    run_failing_workspace(0, "write refused");
}

static void test_failing_open_retries_then_drops(void **state) {
    run_failing_workspace(1, "disk on fire");
}

static void test_stop_is_bounded(void **state) {
    atomic_store(&fake_fail_open, 0);
    sb_sink_register(&fake_workspace);
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply(NULL, "local", 1, 0);
    for (int i = 0; i < 10; i++)
        emit_conn(i, SB_LOG_COLLECTION_CONNECTION);
    double t0 = mono_s();
    sb_diag_stop(&srv); /* hands over the last batch itself */
    assert_true(mono_s() - t0 < 4.5);
    assert_null(srv.diag);
}

static void test_corrupt_settings_refuses_start(void **state) {
    char *path = sb_asprintf("%s/diagnostic-settings.json", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("{\"diagnosticSettings\": [", f);
    fclose(f);
    assert_int_not_equal(sb_diag_start(&srv), SB_OK);
    assert_null(srv.diag);
    /* a data dir that cannot be created */
    unlink(path);
    char *blocker = sb_asprintf("%s/file", tmpdir);
    f = fopen(blocker, "w");
    fclose(f);
    srv.cfg.data_dir = blocker;
    assert_int_not_equal(sb_diag_start(&srv), SB_OK);
    assert_null(srv.diag);
    free(blocker);
    free(path);
}

/* ---- fan-outs ---- */

/* One traced delivery, the way events.c logs it: append to the message's fan-out, or begin one. */
static void deliver(void **handle, const void *scope, uint64_t tracing_id, const char *conn) {
    sb_log_recipient rc = {conn, "user", "10.0.0.1", SB_LOG_TRANSPORT_WEBSOCKETS};
    if (sb_diag_fanout_add(&srv, *handle, scope, &rc))
        return;
    char head[SB_LOG_SENT_HEAD_MAX];
    sb_log_fields f;
    sb_log_fields_sent_to_client(&f, "chat", tracing_id, head, sizeof head);
    *handle = sb_diag_fanout_begin(&srv, scope, &f, &rc);
}

static void deliver_n(void **handle, const void *scope, uint64_t tracing_id, const char *prefix, int from,
                      int to) {
    for (int i = from; i < to; i++) {
        char conn[64];
        snprintf(conn, sizeof conn, "%s-%d", prefix, i);
        deliver(handle, scope, tracing_id, conn);
    }
}

static void test_fanout_not_collected(void **state) {
    static int scope;
    sb_log_recipient rc = {"c", NULL, NULL, NULL};
    sb_log_fields f = {.type = SB_LOGT_MESSAGING, .message = "m"};
    assert_int_equal(sb_diag_fanout_add(&srv, NULL, &scope, &rc), 1); /* no pipeline: nothing to do */
    assert_null(sb_diag_fanout_begin(&srv, &scope, &f, &rc));
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    assert_int_equal(sb_diag_fanout_add(&srv, NULL, &scope, &rc), 1); /* no setting */
    assert_null(sb_diag_fanout_begin(&srv, &scope, &f, &rc));
    apply("local", NULL, 1, 0);
    assert_int_equal(sb_diag_fanout_add(&srv, NULL, &scope, &rc), 0); /* no handle: begin one */
    sb_log_fields activity = {.type = SB_LOGT_ACTIVITY, .message = "m"};
    assert_null(sb_diag_fanout_begin(&srv, &scope, &activity, &rc)); /* resource logs only */
    assert_int_equal(stats().emitted, 0);
}

static void test_fanout_end_to_end(void **state) {
    static int hub_a, hub_b;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", "local", 1, 0);
    void *a = NULL, *b = NULL;
    deliver_n(&a, &hub_a, 1, "a", 0, 5);
    void *first = a;
    assert_non_null(first);
    emit_conn(100, SB_LOG_COLLECTION_CONNECTION); /* closes the fan-out: order is kept */
    deliver_n(&a, &hub_a, 1, "a", 5, 7);          /* the same message goes on in a new record */
    assert_ptr_not_equal(a, first);
    deliver_n(&b, &hub_b, 2, "b", 0, 3); /* another message: another record, closing a's */
    sb_log_recipient rc = {"x", NULL, NULL, NULL};
    assert_int_equal(sb_diag_fanout_add(&srv, a, &hub_a, &rc), 0); /* a is closed */
    assert_int_equal(sb_diag_fanout_add(&srv, b, &hub_a, &rc), 0); /* another scope */
    deliver_n(&b, &hub_b, 2, "b", 3, 4);
    assert_int_equal(stats().emitted, 5 + 1 + 2 + 4);
    sb_diag_flush_turn(&srv);
    assert_int_equal(sb_diag_fanout_add(&srv, b, &hub_b, &rc), 0); /* the hand-off closed it */
    b = NULL;
    /* many turns of fan-outs: the writer hands blocks back, the loop reuses them */
    int turns = 60;
    for (int t = 0; t < turns; t++) {
        void *h = NULL;
        char prefix[16];
        snprintf(prefix, sizeof prefix, "t%d", t);
        deliver_n(&h, &hub_a, 100 + (uint64_t)t, prefix, 0, 50 + t);
        sb_diag_flush_turn(&srv);
        if (t % 10 == 9)
            wait_written(2 * (12 + (uint64_t)(t + 1) * 50 + (uint64_t)t * (t + 1) / 2), 0, 10);
    }
    uint64_t total = 12 + (uint64_t)turns * 50 + (uint64_t)turns * (turns - 1) / 2;
    wait_written(2 * total, 0, 10);
    sb_diag_stats st = stats();
    assert_int_equal(st.emitted, total);
    assert_int_equal(st.written, 2 * total); /* one delivery per recipient per destination */
    assert_int_equal(st.dropped_queue + st.dropped_sink, 0);
    assert_int_equal(st.queue_depth, 0);
    sb_diag_stop(&srv);

    json_t *lines = archive_lines("storage/local/" SB_CONTAINER_LOGS);
    assert_int_equal(json_array_size(lines), total);
    static const char *const order[] = {"a-0", "a-1", "a-2", "a-3", "a-4", "c-100",
                                        "a-5", "a-6", "b-0", "b-1", "b-2", "b-3"};
    for (size_t i = 0; i < 12; i++)
        assert_string_equal(prop(json_array_get(lines, i), "connectionId"), order[i]);
    json_t *l = json_array_get(lines, 9);
    assert_string_equal(prop(l, "message"), "Sent a message 2 to client connection b-1 successfully.");
    assert_string_equal(prop(l, "userId"), "user");
    assert_string_equal(json_string_value(json_object_get(l, "callerIpAddress")), "10.0.0.1");
    json_t *props = json_object_get(l, "properties");
    assert_int_equal(json_integer_value(json_object_get(props, "messageTracingId")), 2);
    size_t i = 12;
    for (int t = 0; t < turns; t++)
        for (int k = 0; k < 50 + t; k++, i++) {
            char want[32];
            snprintf(want, sizeof want, "t%d-%d", t, k);
            assert_string_equal(prop(json_array_get(lines, i), "connectionId"), want);
        }
    json_decref(lines);
    assert_int_equal(db_count("local", "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), (long long)total);
    assert_int_equal(db_count("local", "SELECT count(*) FROM SignalRServiceDiagnosticLogs WHERE "
                                       "MessageTracingId = 2 AND Message LIKE "
                                       "'Sent a message 2 to client connection b-_ successfully.'"),
                     4);
}

static void test_fanout_queue_bound(void **state) {
    static int hub;
    srv.cfg.log_queue_max_records = 100;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", NULL, 1, 0);
    void *h = NULL;
    deliver_n(&h, &hub, 9, "r", 0, 250); /* the bound counts recipients, not fan-outs */
    sb_diag_stats st = stats();
    assert_int_equal(st.emitted, 100);
    assert_int_equal(st.dropped_queue, 150);
    void *other = NULL;
    deliver_n(&other, &hub, 10, "s", 0, 3); /* full: not even a new fan-out */
    assert_null(other);
    assert_int_equal(stats().dropped_queue, 153);
    sb_diag_flush_turn(&srv);
    wait_written(101, 0, 5); /* the 100 and the report */
    sb_diag_stop(&srv);
    json_t *lines = archive_lines("storage/local");
    assert_int_equal(json_array_size(lines), 101);
    int sent = 0, reports = 0;
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l) {
        const char *op = json_string_value(json_object_get(l, "operationName"));
        if (strcmp(op, SB_OP_MESSAGE_SENT_TO_CLIENT) == 0) {
            char want[32];
            snprintf(want, sizeof want, "r-%d", sent++);
            assert_string_equal(prop(l, "connectionId"), want);
        } else {
            assert_string_equal(op, SB_OP_LOG_RECORDS_DROPPED);
            assert_string_equal(prop(l, "message"), "153 log records were dropped: the log queue was full.");
            reports++;
        }
    }
    assert_int_equal(sent, 100);
    assert_int_equal(reports, 1);
    json_decref(lines);
}

/* A workspace that refuses fail_writes attempts (-1: all), and remembers what each attempt was given. */
static atomic_int flaky_fail_writes, flaky_attempts, flaky_max_chunk, flaky_bad_retry;
static atomic_long flaky_rows;
static long flaky_last_attempt; /* log records in the last refused attempt (writer thread only) */

static int flaky_open(sb_sink *s, const sb_sink_config *c) {
    s->impl = NULL;
    return SB_OK;
}

static int flaky_write(sb_sink *s, sb_log_record *const *recs, size_t n) {
    long records = 0;
    for (size_t i = 0; i < n; i++) {
        sb_log_record view;
        sb_buf msg;
        sb_buf_init(&msg);
        size_t pos = 0;
        for (const sb_log_record *r; (r = sb_log_record_next(recs[i], &pos, &view, &msg));)
            records += r->connection_id && r->message ? 1 : 0;
        sb_buf_free(&msg);
    }
    if (records > atomic_load(&flaky_max_chunk))
        atomic_store(&flaky_max_chunk, (int)records);
    int attempt = atomic_fetch_add(&flaky_attempts, 1);
    if (attempt > 0 && flaky_last_attempt && records != flaky_last_attempt)
        atomic_store(&flaky_bad_retry, 1); /* a retry must carry the same records */
    int fail = atomic_load(&flaky_fail_writes);
    if (fail < 0 || attempt < fail) {
        flaky_last_attempt = records;
        snprintf(s->err, sizeof s->err, "write refused");
        return SB_EIO;
    }
    flaky_last_attempt = 0;
    atomic_fetch_add(&flaky_rows, records);
    return SB_OK;
}

static void flaky_close(sb_sink *s) {
}

static const sb_sink_vtable flaky_workspace = {
    .name = "workspace", .open = flaky_open, .write = flaky_write, .flush = fake_flush, .close = flaky_close};

static void flaky_reset(int fail_writes) {
    atomic_store(&flaky_fail_writes, fail_writes);
    atomic_store(&flaky_attempts, 0);
    atomic_store(&flaky_max_chunk, 0);
    atomic_store(&flaky_bad_retry, 0);
    atomic_store(&flaky_rows, 0);
    flaky_last_attempt = 0;
    sb_sink_register(&flaky_workspace);
}

static void test_fanout_retried_whole(void **state) {
    static int hub;
    flaky_reset(2);
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply(NULL, "local", 1, 0);
    void *h = NULL;
    deliver_n(&h, &hub, 1, "x", 0, 700);
    sb_diag_flush_turn(&srv);
    wait_written(700, 0, 5); /* two refusals with backoff, then the same 700 */
    assert_int_equal(atomic_load(&flaky_attempts), 3);
    assert_false(atomic_load(&flaky_bad_retry));
    assert_int_equal(atomic_load(&flaky_rows), 700);
    sb_diag_stats st = stats();
    assert_int_equal(st.written, 700);
    assert_int_equal(st.dropped_sink, 0);
    sb_diag_stop(&srv);
}

static void test_fanout_dropped_per_recipient(void **state) {
    static int hub;
    flaky_reset(-1);
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply("local", "local", 1, 0);
    void *h = NULL;
    deliver_n(&h, &hub, 1, "x", 0, 40);
    sb_diag_flush_turn(&srv);
    wait_written(40, 40, 8); /* the archive has them; the workspace gives up on all 40 */
    double end = mono_s() + 5;
    const char *want = "40 log records were dropped: workspace 'local' is unavailable (write refused).";
    while (!archive_has_message(want) && mono_s() < end)
        usleep(20000);
    assert_true(archive_has_message(want));
    assert_int_equal(stats().dropped_sink, 40);
    sb_diag_stop(&srv);
}

static void test_fanout_chunks_count_recipients(void **state) {
    static int hub;
    flaky_reset(0);
    srv.cfg.log_queue_max_records = 1 << 20;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply(NULL, "local", 1, 0);
    for (int m = 0; m < 25; m++) {
        void *h = NULL;
        deliver_n(&h, &hub, (uint64_t)m + 1, "c", 0, 1000);
    }
    sb_diag_flush_turn(&srv); /* one wake-up: 25 fan-outs, 25,000 records */
    wait_written(25000, 0, 10);
    assert_int_equal(atomic_load(&flaky_rows), 25000);
    /* chunks of about 8192 records: a fan-out is never split, so at most one over */
    assert_true(atomic_load(&flaky_max_chunk) < 8192 + 1000);
    assert_true(atomic_load(&flaky_attempts) >= 3);
    sb_diag_stop(&srv);
}

static double bench(const char *storage, const char *workspace, int n) {
    srv.cfg.log_queue_max_records = 1 << 22;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply(storage, workspace, 1, 0);
    double t0 = mono_s();
    for (int i = 0; i < n; i++) {
        char conn[32], msg[128];
        snprintf(conn, sizeof conn, "conn-%d", i % 5000);
        snprintf(msg, sizeof msg, SB_MSG_FMT_SENT_TO_CLIENT, (unsigned long long)i, conn);
        sb_log_fields f = {.type = SB_LOGT_MESSAGING,
                           .operation_name = SB_OP_MESSAGE_SENT_TO_CLIENT,
                           .collection = SB_LOG_COLLECTION_MESSAGE,
                           .message = msg,
                           .caller_ip = "10.0.0.1",
                           .connection_id = conn,
                           .user_id = "user",
                           .transport_type = SB_LOG_TRANSPORT_WEBSOCKETS,
                           .connection_type = SB_LOG_CONNECTION_TYPE_CLIENT,
                           .hub = "chat",
                           .tracing_id = (uint64_t)i,
                           .has_tracing_id = 1};
        sb_diag_emit(&srv, &f);
        if (i % 256 == 255)
            sb_diag_flush_turn(&srv);
    }
    sb_diag_flush_turn(&srv);
    wait_written((uint64_t)n, 0, 120);
    double rate = n / (mono_s() - t0);
    assert_int_equal(stats().dropped_queue, 0);
    sb_diag_stop(&srv);
    return rate;
}

/* The same records as fan-outs of 1,000 recipients (a broadcast's deliveries), one per turn. */
static double bench_fanout(const char *storage, const char *workspace, int n) {
    static int hub;
    srv.cfg.log_queue_max_records = 1 << 22;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply(storage, workspace, 1, 0);
    double t0 = mono_s();
    for (int i = 0; i < n; i += 1000) {
        void *h = NULL;
        deliver_n(&h, &hub, (uint64_t)i, "conn", 0, n - i < 1000 ? n - i : 1000);
        sb_diag_flush_turn(&srv);
    }
    wait_written((uint64_t)n, 0, 120);
    double rate = n / (mono_s() - t0);
    assert_int_equal(stats().dropped_queue, 0);
    sb_diag_stop(&srv);
    return rate;
}

static void test_bench_pipeline(void **state) {
#if defined(__SANITIZE_ADDRESS__)
    const int n = 20000;
#else
    const int n = 300000;
#endif
    double ar = bench("local", NULL, n);
    double wr = bench(NULL, "local", n);
    double af = bench_fanout("local", NULL, n);
    double wf = bench_fanout(NULL, "local", n);
    print_message("pipeline benchmark: %d records emitted on this thread until written by the writer: "
                  "archive %.0f records/s, workspace %.0f records/s; as fan-outs of 1,000: archive %.0f "
                  "records/s, workspace %.0f records/s\n",
                  n, ar, wr, af, wf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flags_and_should_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_setting_nothing_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_change_reroutes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undeclared_destination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_sink_retries_then_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_open_retries_then_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_settings_refuses_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_not_collected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_end_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_retried_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_dropped_per_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_chunks_count_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bench_pipeline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
