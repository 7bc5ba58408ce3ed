/*
 * kql_bench.c - how fast the KQL engine answers on a big workspace.
 *
 * Builds (or reuses) a workspace database with the sink's real schema
 * (diag/sink_workspace.c opens it) holding N rows (default 10 million)
 * spread evenly over the 24 hours before now, ~10 rows per connection, then
 * runs each query below several times on a fresh read-only connection, as
 * the query API does, and prints the median and the spread.  Informational:
 * no assertion, no timing test.
 *
 *   kql_bench [--rows N] [--db PATH] [--runs K]
 *
 * The database is kept (default /tmp/switchboard-kql-bench.db) so later runs
 * skip the fill; delete it to rebuild.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "diag/sink.h"
#include "kql/datetime.h"
#include "kql/kql.h"
#include "util/error.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long long count_rows(const char *path) {
    sqlite3 *db;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM SignalRServiceDiagnosticLogs", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static int fill(const char *path, long long rows, int64_t now) {
    sb_sink s = {.vt = &sb_sink_workspace};
    sb_sink_config c = {.name = "bench",
                        .path = path,
                        .resource_id = "/subscriptions/s/resourceGroups/g/providers/"
                                       "Microsoft.SignalRService/SignalR/bench",
                        .location = "local"};
    if (s.vt->open(&s, &c) != SB_OK) {
        fprintf(stderr, "kql_bench: %s\n", s.err);
        s.vt->close(&s);
        return 1;
    }
    s.vt->close(&s);
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;", NULL,
                 NULL, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(
        db,
        "INSERT INTO SignalRServiceDiagnosticLogs(TimeGenerated, Collection, OperationName, Location,"
        " Level, CallerIpAddress, Message, UserId, ConnectionId, ConnectionType, TransportType, HubName,"
        " MessageTracingId, _ResourceId, Type) VALUES(?1, ?2, ?3, 'local', 'Informational', ?4, ?5, ?6,"
        " ?7, 'Client', 'WebSockets', 'chat', ?8, '/SUBSCRIPTIONS/S/RESOURCEGROUPS/G', "
        "'SignalRServiceDiagnosticLogs')",
        -1, &st, NULL);
    static const char *const ops[] = {"ConnectionStarted", "MessageSentToClient", "MessageReceivedFromClient",
                                      "ConnectionEnded", "ConnectionAborted"};
    double t0 = now_s();
    int64_t span = 24 * 3600 * SB_KQL_TICKS_PER_SECOND;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (long long i = 0; i < rows; i++) {
        char when[SB_KQL_DT_TEXT_LEN + 1], ip[32], user[32], conn[32];
        sb_kql_dt_format(now - span + (int64_t)((double)span * (double)i / (double)rows), when);
        long long c = i / 10; /* ten records per connection, in time order */
        snprintf(ip, sizeof ip, "10.%lld.%lld.%lld", c / 65536 % 256, c / 256 % 256, c % 256);
        snprintf(user, sizeof user, "user%lld", c % 50000);
        snprintf(conn, sizeof conn, "conn-%010lld", c);
        const char *op = ops[i % 10 == 0 ? 0 : i % 10 == 9 ? 3 + (int)(c % 2) : 1 + (int)(i % 2)];
        sqlite3_bind_text(st, 1, when, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, i % 10 == 0 || i % 10 == 9 ? "Connection" : "Message", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, op, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, ip, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, op, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, user, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, conn, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 8, i);
        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "kql_bench: insert: %s\n", sqlite3_errmsg(db));
            return 1;
        }
        sqlite3_reset(st);
        if (i % 200000 == 199999) {
            sqlite3_exec(db, "COMMIT; BEGIN", NULL, NULL, NULL);
            fprintf(stderr, "\rkql_bench: %lld rows", i + 1);
        }
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(st);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;", NULL, NULL, NULL);
    sqlite3_close(db);
    fprintf(stderr, "\rkql_bench: filled %lld rows in %.1f s\n", rows, now_s() - t0);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"rows", required_argument, 0, 'n'},
                                         {"db", required_argument, 0, 'd'},
                                         {"runs", required_argument, 0, 'r'},
                                         {0, 0, 0, 0}};
    long long rows = 10000000;
    const char *path = "/tmp/switchboard-kql-bench.db";
    int runs = 5, ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            rows = atoll(optarg);
            break;
        case 'd':
            path = optarg;
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: kql_bench [--rows N] [--db PATH] [--runs K]\n");
            return 2;
        }
    }
    if (rows < 10 || runs < 1 || runs > 100) {
        fprintf(stderr, "kql_bench: --rows must be >= 10 and --runs 1..100\n");
        return 2;
    }
    /* "now" is fixed relative to the data: the fill time is stored next to the database */
    char stamp[512];
    snprintf(stamp, sizeof stamp, "%s.now", path);
    int64_t now = 0;
    FILE *f = fopen(stamp, "r");
    if (f) {
        long long v;
        if (fscanf(f, "%lld", &v) == 1)
            now = v;
        fclose(f);
    }
    if (!now || count_rows(path) != rows) {
        remove(path);
        now = sb_kql_now();
        if (fill(path, rows, now))
            return 1;
        f = fopen(stamp, "w");
        if (f) {
            fprintf(f, "%lld\n", (long long)now);
            fclose(f);
        }
    }
    char one_conn[128];
    snprintf(one_conn, sizeof one_conn, "SignalRServiceDiagnosticLogs | where ConnectionId == 'conn-%010lld'",
             rows / 10 / 2);
    const char *queries[] = {
        "SignalRServiceDiagnosticLogs | where TimeGenerated > ago(1h) | summarize count() by "
        "bin(TimeGenerated, 1m)",
        one_conn,
        "SignalRServiceDiagnosticLogs | where TimeGenerated > ago(1h) | summarize dcount(ConnectionId) by "
        "OperationName",
        "SignalRServiceDiagnosticLogs | where UserId == 'user42' | sort by TimeGenerated desc | take 100",
        "SignalRServiceDiagnosticLogs | where TimeGenerated > ago(1h) | summarize count() by "
        "bin(TimeGenerated, 7m)",
    };
    printf("%lld rows in %s; %d runs per query (median, min..max)\n", rows, path, runs);
    for (size_t k = 0; k < sizeof queries / sizeof queries[0]; k++) {
        double t[100];
        size_t nrows = 0;
        for (int i = 0; i < runs; i++) {
            sqlite3 *db;
            sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
            sb_kql_options o = {.now = now};
            sb_kql_result r;
            char err[1024];
            double t0 = now_s();
            if (sb_kql_run_opts(db, queries[k], &o, &r, err, sizeof err) != SB_OK) {
                fprintf(stderr, "kql_bench: %s\n", err);
                sqlite3_close(db);
                return 1;
            }
            t[i] = now_s() - t0;
            nrows = r.nrows;
            sb_kql_result_free(&r);
            sqlite3_close(db);
        }
        qsort(t, (size_t)runs, sizeof t[0], cmp_double);
        printf("%8.1f ms  (%.1f..%.1f)  %6zu rows  %s\n", t[runs / 2] * 1e3, t[0] * 1e3, t[runs - 1] * 1e3,
               nrows, queries[k]);
    }
    return 0;
}
