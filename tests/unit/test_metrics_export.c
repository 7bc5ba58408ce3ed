/*
 * test_metrics_export.c - AllMetrics through the log pipeline: sealed minutes
 * become one row per exportable metric (dimensions aggregated away, no
 * ServerLoad) in the workspace table AzureMetrics and in the archive
 * container insights-metrics-pt1m, only while a diagnostic setting has
 * AllMetrics, and a metrics-only setting produces no resource logs; the
 * writer also writes the store.  Also the pipeline's writer jobs (run, and
 * refused without a pipeline) and sb_diag_reopen (sinks reopen, nothing
 * pending is lost).
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
#include <math.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag/diag.h"
#include "diag/names.h"
#include "metrics/metrics.h"
#include "metrics/store.h"
#include "server.h"
#include "util/alloc.h"
#include "util/error.h"

#define US_MIN INT64_C(60000000)
#define RID "/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.SignalRService/SignalR/hub1"

static sb_server srv;
static uv_loop_t loop;
static char tmpdir[256];
static int64_t day0;

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(p);
}

static void set(const char *name, const char *value) {
    char err[256];
    assert_int_equal(sb_config_set(&srv.cfg, name, value, err, sizeof err), SB_OK);
}

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb_mexport_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    memset(&srv, 0, sizeof srv);
    sb_config_defaults(&srv.cfg);
    set("data_dir", tmpdir);
    set("subscription_id", "sub-1");
    set("resource_group", "rg1");
    set("resource_name", "hub1");
    snprintf(srv.resource_id, sizeof srv.resource_id, "%s", RID);
    assert_int_equal(uv_loop_init(&loop), 0);
    srv.loop = &loop;
    sb_router_init(&srv.router, &srv);
    day0 = (int64_t)time(NULL) / 86400 * 1440;
    return 0;
}

static void stop_all(void) {
    sb_metrics_stop(&srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    sb_diag_flush_turn(&srv);
    sb_diag_stop(&srv);
    sb_metrics_free(&srv);
}

static int teardown(void **state) {
    stop_all();
    assert_int_equal(uv_loop_close(&loop), 0);
    sb_router_free(&srv.router);
    sb_config_free(&srv.cfg);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void apply(int logs, int metrics) {
    sb_diag_settings s;
    sb_diag_settings_init(&s);
    sb_diag_setting *d = &s.v[s.n++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "m1");
    d->storage_account_id = sb_strdup("/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.Storage/"
                                      "storageAccounts/local");
    d->workspace_id =
        sb_strdup("/subscriptions/sub-1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/"
                  "workspaces/local");
    d->logs_all = logs;
    d->metrics = metrics;
    sb_diag_apply_settings(&srv, &s);
    sb_diag_settings_free(&s);
}

/* One minute of known traffic, sealed by the next tick. */
static void traffic_minute(int64_t minute) {
    sb__metrics_tick_at(&srv, minute * US_MIN);
    for (int i = 0; i < 3; i++)
        sb_metrics_connection_opened(&srv, SB_EP_CLIENT);
    sb_metrics_connection_opened(&srv, SB_EP_SERVER);
    sb_metrics_connection_closed(&srv, SB_EP_CLIENT, SB_CC_NORMAL);
    sb_metrics_inbound(&srv, 500);
    sb_metrics_outbound(&srv, 3000, 0);
    sb_metrics_outbound(&srv, 3000, 0);
    sb_metrics_operation(&srv, 0);
    sb_metrics_operation(&srv, 1);
    sb__metrics_tick_at(&srv, (minute + 1) * US_MIN);
    sb_diag_flush_turn(&srv);
}

static sqlite3 *open_workspace(void) {
    char *path = sb_asprintf("%s/workspaces/local.db", tmpdir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sb_free(path);
    return db;
}

static int count_rows(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1; /* the table does not exist */
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
}

static char *time_text(int64_t minute) {
    char buf[64];
    time_t t = (time_t)(minute * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.0000000Z", &tm);
    return sb_strdup(buf);
}

static void test_rows_in_workspace_and_archive(void **state) {
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply(0, 1);
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    int64_t minute = day0 + 30;
    traffic_minute(minute);
    /* a resource log is not collected by a metrics-only setting */
    assert_false(sb_diag_should_log(&srv, SB_LOGT_CONNECTIVITY, 0));
    assert_true(sb_diag_should_log(&srv, SB_LOGT_METRIC, 0));
    stop_all();

    sqlite3 *db = open_workspace();
    char *when = time_text(minute);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT MetricName, Total, Count, Maximum, Minimum, Average, UnitName, "
                           "TimeGrain, ResourceId, _ResourceId, ResourceProvider, Resource, "
                           "ResourceGroup, SubscriptionId, Type FROM AzureMetrics WHERE "
                           "TimeGenerated = ?1 ORDER BY MetricName",
                           -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, when, -1, SQLITE_STATIC);
    static const struct {
        const char *name;
        double total, count, max, min;
        const char *unit;
    } want[] = {
        {"ConnectionCloseCount", 1, 1, 1, 1, "Count"},
        {"ConnectionCount", 0, 0, 4, 0, "Count"}, /* sum/count from samples: checked loosely below */
        {"ConnectionOpenCount", 4, 1, 4, 4, "Count"},
        {"ConnectionQuotaUtilization", 0, 0, 0, 0, "Percent"},
        {"InboundTraffic", 500, 1, 500, 500, "Bytes"},
        {"MessageCount", 4, 1, 4, 4, "Count"},
        {"OutboundTraffic", 6000, 1, 6000, 6000, "Bytes"},
        {"SystemErrors", 0, 1, 0, 0, "Percent"},
        {"UserErrors", 100.0 / 3, 1, 100.0 / 3, 100.0 / 3, "Percent"}, /* 1 of 3 operations (2 + one close) */
    };
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(n < sizeof want / sizeof want[0]);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), want[n].name);
        assert_string_equal((const char *)sqlite3_column_text(st, 6), want[n].unit);
        assert_string_equal((const char *)sqlite3_column_text(st, 7), "PT1M");
        assert_string_equal((const char *)sqlite3_column_text(st, 8),
                            "/SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/RG1/"
                            "PROVIDERS/MICROSOFT.SIGNALRSERVICE/SIGNALR/HUB1");
        assert_string_equal((const char *)sqlite3_column_text(st, 9),
                            (const char *)sqlite3_column_text(st, 8));
        assert_string_equal((const char *)sqlite3_column_text(st, 10), "MICROSOFT.SIGNALRSERVICE");
        assert_string_equal((const char *)sqlite3_column_text(st, 11), "HUB1");
        assert_string_equal((const char *)sqlite3_column_text(st, 12), "RG1");
        assert_string_equal((const char *)sqlite3_column_text(st, 13), "sub-1");
        assert_string_equal((const char *)sqlite3_column_text(st, 14), "AzureMetrics");
        double total = sqlite3_column_double(st, 1), count = sqlite3_column_double(st, 2),
               max = sqlite3_column_double(st, 3), min = sqlite3_column_double(st, 4),
               avg = sqlite3_column_double(st, 5);
        if (strcmp(want[n].name, "ConnectionCount") == 0) {
            assert_true(max == 4 && min == 0 && count >= 1);
        } else if (strcmp(want[n].name, "ConnectionQuotaUtilization") == 0) {
            assert_true(max > 0 && max < 0.01); /* 4 of 100,000 at most */
        } else {
            if (fabs(total - want[n].total) > 1e-9 || count != want[n].count ||
                fabs(max - want[n].max) > 1e-9 || fabs(min - want[n].min) > 1e-9)
                fail_msg("%s: total %g count %g max %g min %g", want[n].name, total, count, max, min);
            assert_true(fabs(avg - total / count) < 1e-9);
        }
        n++;
    }
    assert_int_equal(n, sizeof want / sizeof want[0]); /* ServerLoad is not exportable */
    sqlite3_finalize(st);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 0);
    sqlite3_close(db);

    /* the archive: same rows, Azure's metrics archive shape, under insights-metrics-pt1m */
    char *cmd =
        sb_asprintf("cat %s/storage/local/" SB_CONTAINER_METRICS "/resourceId=/SUBSCRIPTIONS/SUB-1/"
                    "RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.SIGNALRSERVICE/SIGNALR/HUB1/y=*/m=*/d=*/h=*/"
                    "m=00/PT1H.json 2>/dev/null",
                    tmpdir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[2048];
    int lines = 0, found = 0;
    while (fgets(line, sizeof line, p)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (!j)
            fail_msg("archive line is not JSON: %s", line);
        assert_int_equal(json_object_size(j), 9);
        const char *keys[] = {"count",      "total", "minimum",    "maximum",  "average",
                              "resourceId", "time",  "metricName", "timeGrain"};
        for (size_t k = 0; k < 9; k++)
            assert_non_null(json_object_get(j, keys[k]));
        assert_string_equal(json_string_value(json_object_get(j, "timeGrain")), "PT1M");
        if (strcmp(json_string_value(json_object_get(j, "time")), when) == 0 &&
            strcmp(json_string_value(json_object_get(j, "metricName")), "OutboundTraffic") == 0) {
            found = 1;
            assert_true(json_number_value(json_object_get(j, "total")) == 6000);
            assert_string_equal(json_string_value(json_object_get(j, "resourceId")),
                                "/SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.SIGNALRSERVICE/"
                                "SIGNALR/HUB1");
        }
        json_decref(j);
        lines++;
    }
    pclose(p);
    assert_true(found);
    assert_true(lines >= 9 && lines % 9 == 0); /* whole minutes only */
    /* the store has the minute too */
    char *dir = sb_asprintf("%s/metrics", tmpdir);
    sb_metrics_minute m;
    assert_int_equal(sb_metrics_store_read(dir, minute, &m), SB_OK);
    assert_int_equal(m.outbound_bytes, 6000);
    sb_free(dir);
    sb_free(cmd);
    sb_free(when);
}

static void test_nothing_exported_without_all_metrics(void **state) {
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    apply(1, 0); /* logs only */
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    assert_false(sb_diag_should_log(&srv, SB_LOGT_METRIC, 0));
    traffic_minute(day0 + 40);
    /* a metric row emitted by hand is refused too; a resource log goes through (and creates the workspace) */
    sb_log_fields f = {.type = SB_LOGT_METRIC, .metric = {"MessageCount", "Count", 1, 1, 1, 1, 1}};
    sb_diag_emit(&srv, &f);
    sb_log_fields log = {.type = SB_LOGT_CONNECTIVITY,
                         .operation_name = SB_OP_CONNECTION_STARTED,
                         .collection = SB_LOG_COLLECTION_CONNECTION,
                         .message = SB_MSG_CONNECTION_STARTED};
    sb_diag_emit(&srv, &log);
    sb_diag_stats st;
    sb_diag_get_stats(&srv, &st);
    assert_int_equal(st.emitted, 1);
    stop_all();
    sqlite3 *db = open_workspace();
    assert_int_equal(count_rows(db, "SELECT count(*) FROM AzureMetrics"), 0);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM SignalRServiceDiagnosticLogs"), 1);
    sqlite3_close(db);
}

static void test_no_setting_no_rows_but_the_store(void **state) {
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    traffic_minute(day0 + 50);
    stop_all();
    char *ws = sb_asprintf("%s/workspaces/local.db", tmpdir);
    assert_int_not_equal(access(ws, F_OK), 0); /* nothing was routed anywhere */
    char *dir = sb_asprintf("%s/metrics", tmpdir);
    sb_metrics_minute m;
    assert_int_equal(sb_metrics_store_read(dir, day0 + 50, &m), SB_OK); /* platform metrics are always kept */
    assert_int_equal(m.inbound_bytes, 500);
    sb_free(dir);
    sb_free(ws);
}

static atomic_int job_runs;
static void job(void *arg) {
    atomic_fetch_add(&job_runs, *(int *)arg);
    sb_free(arg);
}

static void test_writer_jobs_and_reopen(void **state) {
    int *arg = sb_malloc(sizeof *arg);
    *arg = 1;
    assert_int_equal(sb_diag_run_on_writer(&srv, job, arg),
                     SB_ECLOSED); /* no pipeline: the caller keeps arg */
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    assert_int_equal(sb_diag_run_on_writer(&srv, job, arg), SB_OK);
    for (int i = 0; i < 200 && atomic_load(&job_runs) == 0; i++)
        usleep(5000);
    assert_int_equal(atomic_load(&job_runs), 1);

    apply(1, 1);
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    traffic_minute(day0 + 60);
    sb_diag_reopen(&srv);
    sb_diag_reopen(&srv);
    traffic_minute(day0 + 62);
    for (int i = 0; i < 10; i++) { /* queued before the stop: all run before the writer ends */
        int *k = sb_malloc(sizeof *k);
        *k = 10;
        assert_int_equal(sb_diag_run_on_writer(&srv, job, k), SB_OK);
    }
    sb_diag_reopen(&srv); /* sb_diag_reopen with nothing open and before a stop is harmless */
    stop_all();
    assert_int_equal(atomic_load(&job_runs), 101);
    sb_diag_reopen(&srv); /* no pipeline: nothing happens */
    sqlite3 *db = open_workspace();
    assert_int_equal(count_rows(db,
                                "SELECT count(DISTINCT TimeGenerated) FROM AzureMetrics WHERE MetricName = "
                                "'InboundTraffic' AND Total = 500"),
                     2);
    sqlite3_close(db);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_in_workspace_and_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_exported_without_all_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_setting_no_rows_but_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_jobs_and_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
