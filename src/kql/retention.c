/*
 * retention.c - deleting workspace rows past their table's retention; see
 * kql.h (sb_kql_enforce_retention).
 *
 * Log Analytics keeps each table for its own retention (30 days by default,
 * 90 for AzureActivity).  Rows go in small batches, each DELETE its own
 * transaction on the rowids of the oldest expired rows (found through the
 * TimeGenerated index), so a reader or the next delivery waits at most one
 * batch.  Called on the log writer thread, which owns the connection, about
 * once an hour; never on the event loop.
 */
#include <stdio.h>
#include <string.h>

#include "kql/datetime.h"
#include "kql/kql.h"
#include "util/error.h"

static long purge(sqlite3 *db, const char *table, int days, int64_t now_us, int batch_rows, int max_batches) {
    if (days <= 0)
        return 0;
    char sql[256];
    snprintf(sql, sizeof sql,
             "DELETE FROM \"%s\" WHERE rowid IN (SELECT rowid FROM \"%s\" WHERE TimeGenerated < ?1 "
             "ORDER BY TimeGenerated LIMIT ?2)",
             table, table);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return sqlite3_errcode(db) == SQLITE_ERROR ? 0 : SB_EIO; /* SQLITE_ERROR: the table does not exist */
    char cutoff[SB_KQL_DT_TEXT_LEN + 1];
    sb_kql_dt_format(now_us * 10 - (int64_t)days * SB_KQL_TICKS_PER_DAY, cutoff);
    sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, batch_rows > 0 ? batch_rows : 1000);
    long total = 0;
    for (int b = 0; b < max_batches; b++) {
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            total = SB_EIO;
            break;
        }
        int n = sqlite3_changes(db);
        total += n;
        if (n < (batch_rows > 0 ? batch_rows : 1000))
            break;
    }
    sqlite3_finalize(st);
    return total;
}

long sb_kql_enforce_retention(sqlite3 *db, int64_t now_us, int log_days, int activity_days, int batch_rows,
                              int max_batches) {
    static const char *const log_tables[] = {"SignalRServiceDiagnosticLogs", "AzureMetrics"};
    long total = 0;
    for (size_t i = 0; i < sizeof log_tables / sizeof log_tables[0]; i++) {
        long n = purge(db, log_tables[i], log_days, now_us, batch_rows, max_batches);
        if (n < 0)
            return n;
        total += n;
    }
    long n = purge(db, "AzureActivity", activity_days, now_us, batch_rows, max_batches);
    return n < 0 ? n : total + n;
}
