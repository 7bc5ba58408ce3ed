/*
 * fuzz_kql.c - the query engine on arbitrary text: lexer, parser,
 * translator, then execution on a small in-memory workspace (the sink's two
 * main tables with a few rows), with a deadline and row limit so no input
 * can run long.  Any input must end in a result or a clean error; SQL the
 * translator emitted that SQLite rejects as malformed (a syntax error, an
 * unknown column) is a translator bug and aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kql/kql.h"
#include "util/alloc.h"
#include "util/error.h"

static sqlite3 *db;

static void open_workspace(void) {
    sqlite3_open(":memory:", &db);
    sqlite3_exec(
        db,
        "CREATE TABLE SignalRServiceDiagnosticLogs(TimeGenerated TEXT NOT NULL, Collection TEXT,"
        " OperationName TEXT, Location TEXT, Level TEXT, CallerIpAddress TEXT, Message TEXT, UserId TEXT,"
        " ConnectionId TEXT, ConnectionType TEXT, TransportType TEXT, HubName TEXT, GroupName TEXT,"
        " MessageTracingId INTEGER, MessageType TEXT, InvocationId TEXT, LogType TEXT, HttpMethod TEXT,"
        " Url TEXT, RouteTemplate TEXT, StatusCode INTEGER, DurationMs REAL, TraceId TEXT, _ResourceId TEXT,"
        " _SubscriptionId TEXT, TenantId TEXT, SourceSystem TEXT, Type TEXT);"
        "CREATE TABLE AzureActivity(TimeGenerated TEXT NOT NULL, OperationName TEXT, OperationNameValue TEXT,"
        " Level TEXT, ActivityStatusValue TEXT, Caller TEXT, CallerIpAddress TEXT, Category TEXT,"
        " Properties TEXT, _ResourceId TEXT, SubscriptionId TEXT, ResourceGroup TEXT,"
        " ResourceProviderValue TEXT, Type TEXT);"
        "INSERT INTO SignalRServiceDiagnosticLogs(TimeGenerated, OperationName, Level, Message, UserId,"
        " ConnectionId, ConnectionType, TransportType, MessageTracingId, DurationMs) VALUES"
        " ('2026-01-01T11:00:00.0000000Z','ConnectionStarted','Informational','Connection started','alice',"
        "'c1','Client','WebSockets',NULL,1.5),"
        " ('2026-01-01T11:05:00.1234567Z','ConnectionAborted','Warning','Connection ping timeout','alice',"
        "'c1','Client','WebSockets',7,NULL),"
        " ('2025-12-31T23:59:59.9999999Z','MessageSentToClient','Informational','Sent a message 7','',"
        "'c2','Server','LongPolling',-1,0.25);"
        "INSERT INTO AzureActivity(TimeGenerated, OperationNameValue, Caller) VALUES"
        " ('2026-01-01T09:00:00.0000000Z','Microsoft.Insights/diagnosticSettings/write','accessKey');",
        NULL, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db)
        open_workspace();
    char *q = sb_malloc(size + 1);
    memcpy(q, data, size);
    q[size] = '\0'; /* the engine takes C strings: text after a NUL is ignored */
    sb_kql_options o = {.now = INT64_C(17672256000000000), .max_rows = 200, .timeout_ms = 200};
    if (size % 3 == 0) /* some inputs also get a Logs API timespan */
        o.timespan = "PT2H";
    sb_kql_result r;
    char err[2048];
    int rc = sb_kql_run_opts(db, q, &o, &r, err, sizeof err);
    if (rc == SB_OK) {
        json_t *j = sb_kql_result_to_json(&r);
        char *s = json_dumps(j, JSON_COMPACT);
        if (!s)
            abort(); /* the body must always encode */
        free(s);
        json_decref(j);
        for (size_t i = 0; i < r.nrows; i++)
            for (size_t c = 0; c < r.ncolumns; c++)
                sb_free(sb_kql_value_to_text(sb_kql_cell(&r, i, c), r.columns[c].type));
        sb_kql_result_free(&r);
    } else if (strncmp(err, "Semantic error: the query is too complex to run (", 49) == 0 &&
               (strstr(err, "syntax error") || strstr(err, "no such") || strstr(err, "misuse") ||
                strstr(err, "wrong number of arguments") || strstr(err, "ambiguous"))) {
        abort(); /* the translator emitted invalid SQL */
    }
    sb_free(q);
    return 0;
}
