/*
 * test_kql_engine.c - KQL queries end to end against a fixture workspace
 * with known rows: a database created by the real workspace sink (so the
 * schema is the one the service writes), filled with ten connectivity and
 * messaging records and two activity records around a fixed now()
 * (2026-01-01T12:00:00Z).
 *
 * Covered: every Microsoft sample query for SignalRServiceDiagnosticLogs
 * with its exact result; every operator, string operator, function and
 * aggregate; column naming and types; sort order through later stages; the
 * Logs API JSON encoding; the timespan argument; semantic errors with their
 * positions; injection attempts; limits (truncation, cancel); the ready-made
 * samples; retention.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "diag/sink.h"
#include "kql/datetime.h"
#include "kql/kql.h"
#include "kql/samples.h"
#include "util/alloc.h"
#include "util/error.h"

#define AZURE_ACTIVITY_QUERY                                                                                 \
    "AzureActivity | summarize count() by OperationNameValue | sort by OperationNameValue asc"

static sqlite3 *db;
static char *garbage[64]; /* query texts built by a test, freed by teardown */
static size_t ngarbage;

static char *keep(char *s) {
    assert_true(ngarbage < 64);
    garbage[ngarbage++] = s;
    return s;
}
#define F(...) keep(sb_asprintf(__VA_ARGS__))
static char dbpath[256];
static int64_t now_ticks;

static const char fixture[] =
    "INSERT INTO SignalRServiceDiagnosticLogs(TimeGenerated, Collection, OperationName, Level, Message, "
    "UserId,"
    " ConnectionId, ConnectionType, TransportType, CallerIpAddress, MessageTracingId, _ResourceId) VALUES"
    " ('2026-01-01T11:00:00.0000000Z','Connection','ConnectionStarted','Informational','Connection "
    "started','alice','c1','Client','WebSockets','10.0.0.1',NULL,'/R'),"
    " ('2026-01-01T11:00:05.1234567Z','Message','MessageReceivedFromClient','Informational','Received a "
    "message 101 from client connection c1.','alice','c1','Client','WebSockets','10.0.0.1',101,'/R'),"
    " ('2026-01-01T11:05:00.0000000Z','Connection','ConnectionAborted','Warning','Connection ping "
    "timeout','alice','c1','Client','WebSockets','10.0.0.1',NULL,'/R'),"
    " ('2026-01-01T11:10:00.0000000Z','Connection','ConnectionStarted','Informational','Connection "
    "started','bob','c2','Client','ServerSentEvents','10.0.0.2',NULL,'/R'),"
    " ('2026-01-01T11:20:00.0000000Z','Connection','ConnectionEnded','Informational','Connection "
    "ended','bob','c2','Client','ServerSentEvents','10.0.0.2',NULL,'/R'),"
    " ('2026-01-01T11:30:00.0000000Z','Connection','ConnectionStarted','Informational','Connection "
    "started','','s1','Server','WebSockets','10.0.0.9',NULL,'/R'),"
    " ('2026-01-01T11:40:00.0000000Z','Authorization','AuthorizationFailed','Error','Failed to validate "
    "audience. Expected Audiences: http://a/client/?hub=chat. Actual Audiences: "
    "http://b','','','Client','LongPolling','10.0.0.3',NULL,'/R'),"
    " ('2026-01-01T11:50:00.0000000Z','Throttling','ConnectionAborted','Warning','Connection count reaches "
    "limit','carol','c3','Client','LongPolling','10.0.0.3',NULL,'/R'),"
    " ('2026-01-01T10:00:00.0000000Z','Connection','ConnectionStarted','Informational','Connection "
    "started','carol','c4','Client','LongPolling','',NULL,'/R'),"
    " ('2025-11-20T00:00:00.0000000Z','Connection','ConnectionEnded','Informational','Connection "
    "ended','dave','c5','Client','WebSockets','10.0.0.4',NULL,'/R');"
    "INSERT INTO AzureActivity(TimeGenerated, OperationNameValue, Level, ActivityStatusValue, Caller) VALUES"
    " ('2026-01-01T09:00:00.0000000Z','Microsoft.Insights/diagnosticSettings/"
    "write','Informational','Succeeded','accessKey'),"
    " ('2025-09-01T00:00:00.0000000Z','Microsoft.SignalRService/SignalR/"
    "write','Informational','Succeeded','accessKey');";

static int setup(void **state) {
    snprintf(dbpath, sizeof dbpath, "/tmp/test_kql_engine_%d.db", (int)getpid());
    unlink(dbpath);
    sb_sink s = {.vt = &sb_sink_workspace};
    sb_sink_config c = {.name = "local", .path = dbpath, .resource_id = "/r", .location = "local"};
    assert_int_equal(s.vt->open(&s, &c), SB_OK);
    s.vt->close(&s);
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, fixture, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("fixture: %s", msg);
    assert_int_equal(sb_kql_dt_parse("2026-01-01T12:00:00Z", 20, &now_ticks), SB_OK);
    return 0;
}

static int teardown(void **state) {
    while (ngarbage)
        sb_free(garbage[--ngarbage]);
    sqlite3_close(db);
    char side[300];
    unlink(dbpath);
    snprintf(side, sizeof side, "%s-wal", dbpath);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", dbpath);
    unlink(side);
    return 0;
}

static int run_with(const char *q, const sb_kql_options *o, sb_kql_result *r, char *err, size_t errlen) {
    sb_kql_options opts = o ? *o : (sb_kql_options){0};
    if (!opts.now)
        opts.now = now_ticks;
    return sb_kql_run_opts(db, q, &opts, r, err, errlen);
}

/* The Logs API body of q (fails the test on an error). */
static json_t *body_of(const char *q) {
    sb_kql_result r;
    char err[2048];
    int rc = run_with(q, NULL, &r, err, sizeof err);
    if (rc != SB_OK)
        fail_msg("query failed (%d): %s\n%s", rc, err, q);
    json_t *j = sb_kql_result_to_json(&r);
    sb_kql_result_free(&r);
    return j;
}

static char *dump(json_t *j) {
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* rows must equal want (compact JSON); sorted: compare as a set of rows. */
static void expect_rows_(const char *q, const char *want, int sorted) {
    json_t *j = body_of(q);
    json_t *rows = json_object_get(json_array_get(json_object_get(j, "tables"), 0), "rows");
    if (sorted) {
        size_t n = json_array_size(rows);
        char **texts = sb_calloc(n + 1, sizeof *texts);
        for (size_t i = 0; i < n; i++)
            texts[i] = dump(json_array_get(rows, i));
        qsort(texts, n, sizeof *texts, cmp_str);
        json_t *sorted_rows = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(sorted_rows, json_loads(texts[i], 0, NULL));
            free(texts[i]);
        }
        sb_free(texts);
        rows = sorted_rows;
    } else {
        json_incref(rows);
    }
    char *got = dump(rows);
    if (strcmp(got, want) != 0)
        fail_msg("query: %s\n  got:  %s\n  want: %s", q, got, want);
    free(got);
    json_decref(rows);
    json_decref(j);
}
#define expect_rows(q, want) expect_rows_(q, want, 0)
#define expect_row_set(q, want) expect_rows_(q, want, 1)

/* columns as "name:type,..." */
static void expect_columns(const char *q, const char *want) {
    json_t *j = body_of(q);
    json_t *cols = json_object_get(json_array_get(json_object_get(j, "tables"), 0), "columns");
    char got[1024] = "";
    for (size_t i = 0; i < json_array_size(cols); i++) {
        json_t *c = json_array_get(cols, i);
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s:%s", i ? "," : "",
                 json_string_value(json_object_get(c, "name")),
                 json_string_value(json_object_get(c, "type")));
    }
    if (strcmp(got, want) != 0)
        fail_msg("query: %s\n  got:  %s\n  want: %s", q, got, want);
    json_decref(j);
}

static void expect_count(const char *q, long n) {
    char want[32];
    snprintf(want, sizeof want, "[[%ld]]", n);
    char *full = sb_asprintf("SignalRServiceDiagnosticLogs | where %s | count", q);
    expect_rows(full, want);
    sb_free(full);
}

static void expect_error(const char *q, int rc, const char *first_line) {
    sb_kql_result r;
    char err[2048];
    int got = run_with(q, NULL, &r, err, sizeof err);
    if (got != rc)
        fail_msg("query: %s\n  rc %d, want %d (%s)", q, got, rc, err);
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(err, "\n"), err);
    if (strcmp(line, first_line) != 0)
        fail_msg("query: %s\n  got:  %s\n  want: %s", q, line, first_line);
    assert_int_equal(r.nrows, 0);
    assert_null(r.columns);
}

#define T "SignalRServiceDiagnosticLogs "

/* ---- Microsoft's sample queries --------------------------------------------------------------------- */

static void test_ms_samples(void **state) {
    const sb_kql_sample *s;
    s = sb_kql_sample_find("ms-client-connection-ids");
    expect_columns(s->query, "ConnectionId:string,_ResourceId:string,count_:long");
    expect_row_set(s->query,
                   "[[\"\",\"/R\",1],[\"c1\",\"/R\",3],[\"c2\",\"/R\",2],[\"c3\",\"/R\",1],[\"c4\",\"/R\",1],"
                   "[\"c5\",\"/R\",1]]");
    static const char close_rows[] =
        "[[\"c1\",\"Connection ping timeout\",\"/R\",1],[\"c2\",\"Connection ended\",\"/R\",1],"
        "[\"c3\",\"Connection count reaches limit\",\"/R\",1],[\"c5\",\"Connection ended\",\"/R\",1]]";
    expect_row_set(sb_kql_sample_find("ms-connection-close-reasons")->query, close_rows);
    expect_row_set(sb_kql_sample_find("ms-message-tracing-id")->query, close_rows);
    expect_row_set(
        sb_kql_sample_find("ms-ip-addresses")->query,
        "[[\"10.0.0.1\",\"/R\",3],[\"10.0.0.2\",\"/R\",2],[\"10.0.0.3\",\"/R\",2],[\"10.0.0.4\",\"/R\",1],"
        "[\"10.0.0.9\",\"/R\",1]]");
    s = sb_kql_sample_find("ms-connection-id"); /* the empty id matches the record without one */
    expect_rows(F("%s | project TimeGenerated, OperationName", s->query),
                "[[\"2026-01-01T11:40:00Z\",\"AuthorizationFailed\"]]");
    s = sb_kql_sample_find("ms-user-id");
    expect_rows(F("%s | project TimeGenerated, ConnectionId", s->query),
                "[[\"2026-01-01T11:30:00Z\",\"s1\"],[\"2026-01-01T11:40:00Z\",\"\"]]");
    s = sb_kql_sample_find("ms-warnings-errors");
    expect_rows(F("%s | project TimeGenerated, Level", s->query),
                "[[\"2026-01-01T11:50:00Z\",\"Warning\"],[\"2026-01-01T11:40:00Z\",\"Error\"],"
                "[\"2026-01-01T11:05:00Z\",\"Warning\"]]");
    expect_row_set(sb_kql_sample_find("ms-server-connection-ids")->query, "[[\"s1\",\"/R\",1]]");
    s = sb_kql_sample_find("ms-operation-timechart");
    expect_columns(s->query, "OperationName:string,TimeGenerated:datetime,count_:long");
    static const char timechart_data[] = T "| summarize count() by OperationName, bin(TimeGenerated, 1min)";
    expect_rows(
        F("%s | where OperationName == 'ConnectionStarted' | sort by TimeGenerated asc", timechart_data),
        "[[\"ConnectionStarted\",\"2026-01-01T10:00:00Z\",1],[\"ConnectionStarted\",\"2026-01-01T11:00:00Z\","
        "1],"
        "[\"ConnectionStarted\",\"2026-01-01T11:10:00Z\",1],[\"ConnectionStarted\",\"2026-01-01T11:30:00Z\","
        "1]]");
    expect_rows(F("%s | summarize sum(count_), count()", timechart_data), "[[10,10]]");
    sb_kql_result r;
    char err[512];
    assert_int_equal(run_with(s->query, NULL, &r, err, sizeof err), SB_OK);
    assert_string_equal(r.render, "timechart");
    sb_kql_result_free(&r);
    expect_row_set(sb_kql_sample_find("ms-transport-types")->query,
                   "[[\"LongPolling\",\"/R\",3],[\"ServerSentEvents\",\"/R\",2],[\"WebSockets\",\"/R\",5]]");
    expect_row_set(
        sb_kql_sample_find("ms-user-ids")->query,
        "[[\"\",\"/R\",2],[\"alice\",\"/R\",3],[\"bob\",\"/R\",2],[\"carol\",\"/R\",2],[\"dave\",\"/R\",1]]");
}

/* ---- operators ------------------------------------------------------------------------------------ */

static void test_comparisons_and_case(void **state) {
    expect_count("UserId == \"alice\"", 3);
    expect_count("UserId == \"ALICE\"", 0);
    expect_count("UserId =~ \"ALICE\"", 3);
    expect_count("UserId != \"alice\"", 7);
    expect_count("UserId !~ \"ALICE\"", 7);
    expect_count("UserId <> 'alice'", 7);
    expect_count("UserId in (\"alice\", \"bob\")", 5);
    expect_count("UserId in (\"ALICE\")", 0);
    expect_count("UserId in~ (\"ALICE\")", 3);
    expect_count("UserId !in (\"alice\")", 7);
    expect_count("UserId !in~ (\"ALICE\", \"BOB\")", 5);
    expect_count("MessageTracingId == 101", 1);
    expect_count("MessageTracingId != 101", 9); /* null != 101 is true in KQL */
    expect_count("MessageTracingId > 100.5", 1);
    expect_count("MessageTracingId in (100, 101)", 1);
    expect_count("TimeGenerated >= datetime(2026-01-01)", 9);
    expect_count("TimeGenerated < datetime(2026-01-01 11:00:05.1234567)", 3);
    expect_count("UserId > 'b'", 5); /* ordinal: bob, carol, dave */
}

static void test_string_operators(void **state) {
    expect_count("Message has \"ping\"", 1);
    expect_count("Message has \"pin\"", 0); /* a whole term */
    expect_count("Message has \"PING\"", 1);
    expect_count("Message has_cs \"PING\"", 0);
    expect_count("Message has_cs \"ping\"", 1);
    expect_count("Message !has \"started\"", 6);
    expect_count("Message !has_cs \"Started\"", 10);
    expect_count("Message has \"client connection\"", 1); /* a phrase at term boundaries */
    expect_count("Message has \"101\"", 1);
    expect_count("Message has \"10\"", 0);
    expect_count("Message has \"http://a/client\"", 1);
    expect_count("Message contains \"pin\"", 1);
    expect_count("Message contains \"PIN\"", 1);
    expect_count("Message contains_cs \"PIN\"", 0);
    expect_count("Message !contains \"connection\"", 1); /* only the audience failure lacks it */
    expect_count("Message hasprefix \"Connec\"", 9);
    expect_count("Message hassuffix \"ended\"", 2);
    expect_count("Message startswith \"conn\"", 8);
    expect_count("Message startswith_cs \"conn\"", 0);
    expect_count("Message !startswith \"conn\"", 2);
    expect_count("Message endswith \"LIMIT\"", 1);
    expect_count("Message endswith_cs \"LIMIT\"", 0);
    expect_count("Message !endswith \"limit\"", 9);
    expect_count("Message matches regex \"[0-9]+ from\"", 1);
    expect_count("Message matches regex @\"^Conn.*(ended|timeout)$\"", 3);
    expect_count("Message matches regex @\"\\d{3}\"", 1);
    expect_count("Message matches regex \"(?i)^connection STARTED$\"", 4);
    expect_count("Message matches regex \"^(?:Connection) (started|ended)$\"", 6);
    expect_count("MessageTracingId has \"101\"", 1); /* non-strings are compared as their text */
    expect_count("UserId has \"\"", 10);
}

static void test_logic_and_ranges(void **state) {
    expect_count("not(UserId == \"alice\") and UserId != \"\"", 5);
    expect_count("UserId == 'alice' or UserId == 'bob' and Level == 'Warning'", 3);
    expect_count("(UserId == 'alice' or UserId == 'bob') and Level == 'Warning'", 1);
    expect_count("MessageTracingId between (100 .. 101)", 1);
    expect_count("MessageTracingId !between (100 .. 101)", 0);                    /* null is neither */
    expect_count("TimeGenerated between (datetime(2026-01-01 11:00) .. 10m)", 4); /* both ends included */
    expect_count("TimeGenerated !between (datetime(2026-01-01 11:00) .. datetime(2026-01-01 11:10))", 6);
    expect_count("isempty(UserId)", 2);
    expect_count("isnotempty(UserId)", 8);
    expect_count("isnull(MessageTracingId)", 9);
    expect_count("isnotnull(MessageTracingId)", 1);
    expect_count("isnotnull(UserId)", 10); /* "" is a value */
    expect_count("isnull(UserId)", 0);
    expect_count("isempty(MessageTracingId)", 9);
    expect_count("true", 10);
    expect_count("false or 1 == 1", 10);
}

static void test_time_functions(void **state) {
    expect_count("TimeGenerated > ago(1h)", 7);
    expect_count("TimeGenerated >= ago(1h)", 8);
    expect_count("TimeGenerated <= now()", 10);
    expect_count("TimeGenerated < now(-1h)", 2);
    expect_count("TimeGenerated > ago(30d)", 9);
    expect_count("TimeGenerated > now() - 1h", 7);
    expect_count("TimeGenerated > ago(1h + 0s) and TimeGenerated < ago(-1d)", 7);
    expect_count("TimeGenerated == todatetime(\"2026-01-01 11:30\")", 1);
    expect_count("TimeGenerated == todatetime(\"not a date\")", 0);
    expect_count("startofday(TimeGenerated) == datetime(2026-01-01)", 9);
    expect_rows(T "| where ConnectionId == 'c1' | sort by TimeGenerated asc | project d = TimeGenerated - "
                  "datetime(2026-01-01 11:00), e = 1h + 30m, f = 100ms, g = 7d, h = (TimeGenerated - "
                  "datetime(2026-01-01 11:00)) / 1m, i = -2s * 3, j = datetime(2026-01-01) + 36h",
                "[[\"00:00:00\",\"01:30:00\",\"00:00:00.1000000\",\"7.00:00:00\",0.0,\"-00:00:06\",\"2026-01-"
                "02T12:00:00Z\"],"
                "[\"00:00:05.1234567\",\"01:30:00\",\"00:00:00.1000000\",\"7.00:00:00\",0.085390944999999996,"
                "\"-00:00:06\","
                "\"2026-01-02T12:00:00Z\"],"
                "[\"00:05:00\",\"01:30:00\",\"00:00:00.1000000\",\"7.00:00:00\",5.0,\"-00:00:06\",\"2026-01-"
                "02T12:00:00Z\"]]");
    expect_rows(T "| where ConnectionId == 'c1' | summarize count() by b = bin(TimeGenerated, 15m), h = "
                  "bin(TimeGenerated, 1h), d = bin(TimeGenerated, 1d), s = bin(TimeGenerated, 1s), x = "
                  "floor(TimeGenerated, 7m) | sort by s asc",
                "[[\"2026-01-01T11:00:00Z\",\"2026-01-01T11:00:00Z\",\"2026-01-01T00:00:00Z\",\"2026-01-"
                "01T11:00:00Z\","
                "\"2026-01-01T10:58:00Z\",1],"
                "[\"2026-01-01T11:00:00Z\",\"2026-01-01T11:00:00Z\",\"2026-01-01T00:00:00Z\",\"2026-01-01T11:"
                "00:05Z\","
                "\"2026-01-01T10:58:00Z\",1],"
                "[\"2026-01-01T11:00:00Z\",\"2026-01-01T11:00:00Z\",\"2026-01-01T00:00:00Z\",\"2026-01-01T11:"
                "05:00Z\","
                "\"2026-01-01T11:05:00Z\",1]]");
    expect_rows(T
                "| where isnotnull(MessageTracingId) | project bin(MessageTracingId, 10), b = bin(2.5, 1.0), "
                "t = bin(95s, 1m), n = bin(-7, 5)",
                "[[100,2.0,\"00:01:00\",-10]]");
}

static void test_conversions_and_strings(void **state) {
    expect_columns(
        T "| take 1 | project a = tostring(MessageTracingId), b = tolong(\"42\") + 1, c = tolong(\"x\"), "
          "d = toint(\"7\"), e = todouble(\"2.5\"), f = tobool(\"TRUE\"), g = tostring(1.5), h = "
          "tostring(datetime(2026-01-01 10:00)), i = tostring(90s), j = tostring(true), k = toreal(3)",
        "a:string,b:long,c:long,d:int,e:real,f:bool,g:string,h:string,i:string,j:string,k:real");
    expect_rows(
        T "| where isnotnull(MessageTracingId) | project a = tostring(MessageTracingId), b = tolong(\"42\") "
          "+ 1, c = tolong(\"x\"), d = toint(\"7\"), e = todouble(\"2.5\"), f = tobool(\"TRUE\"), g = "
          "tostring(1.5), h = tostring(datetime(2026-01-01 10:00)), i = tostring(90s), j = tostring(true), "
          "k = tolong(2.9), l = tolong(datetime(1970-01-01 00:00:01)), m = todouble(\"-inf\")",
        "[[\"101\",43,null,7,2.5,true,\"1.5\",\"2026-01-01T10:00:00Z\",\"00:01:30\",\"true\",2,10000000,\"-"
        "Infinity\"]]");
    expect_rows(
        T "| where ConnectionId == 'c1' and isnull(MessageTracingId) | sort by TimeGenerated asc | project "
          "s = strcat(UserId, \"@\", ConnectionId, \"#\", MessageTracingId), n = strlen(UserId), "
          "u = toupper(UserId), l = tolower('AbC'), sub = substring(Message, 0, 4), sub2 = substring(UserId, "
          "3), "
          "i = iff(Level == 'Warning', 'w', 'o'), c = coalesce(MessageTracingId, -1), a = abs(-3)",
        "[[\"alice@c1#\",5,\"ALICE\",\"abc\",\"Conn\",\"ce\",\"o\",-1,3],"
        "[\"alice@c1#\",5,\"ALICE\",\"abc\",\"Conn\",\"ce\",\"w\",-1,3]]");
    expect_rows(T "| summarize s = make_set(UserId) | project n = array_length(s)", "[[5]]");
    expect_rows(T "| take 1 | project x = 7 / 2, y = 7 / 2.0, z = 7 % 3, w = -(2 + 1), v = 2 * 1.5",
                "[[3,3.5,1,-3,3.0]]");
}

static void test_tabular_operators(void **state) {
    /* sort order survives later row-wise stages and take */
    expect_rows(T "| sort by TimeGenerated asc | where UserId == \"alice\" | project Message | take 2",
                "[[\"Connection started\"],[\"Received a message 101 from client connection c1.\"]]");
    expect_rows(T "| top 2 by TimeGenerated | project ConnectionId", "[[\"c3\"],[\"\"]]");
    expect_rows(T "| top 1 by TimeGenerated asc | project ConnectionId", "[[\"c5\"]]");
    expect_rows(T "| order by MessageTracingId desc, TimeGenerated asc | take 2 | project MessageTracingId, "
                  "ConnectionId",
                "[[101,\"c1\"],[null,\"c5\"]]"); /* desc puts nulls last */
    expect_rows(
        T
        "| sort by MessageTracingId asc, TimeGenerated asc | take 1 | project MessageTracingId, ConnectionId",
        "[[null,\"c5\"]]"); /* asc puts nulls first */
    expect_rows(
        T "| sort by MessageTracingId desc nulls first, TimeGenerated desc | take 1 | project ConnectionId",
        "[[\"c3\"]]");
    expect_rows(T "| sort by MessageTracingId asc nulls last | take 1 | project MessageTracingId", "[[101]]");
    expect_rows(T "| distinct TransportType | sort by TransportType asc",
                "[[\"LongPolling\"],[\"ServerSentEvents\"],[\"WebSockets\"]]");
    expect_rows(T "| project TransportType, ConnectionType | distinct * | count", "[[4]]");
    expect_rows(T "| count", "[[10]]");
    expect_rows(T "| take 0 | count", "[[0]]");
    expect_rows(T "| limit 3 | count", "[[3]]");
    expect_columns(
        T "| take 1 | project-away Collection, *Id, _*, Location, HubName, GroupName, MessageType, "
          "Url, Route*, HttpMethod, StatusCode, DurationMs, Type, TenantId, SourceSystem, LogType, TraceId",
        "TimeGenerated:datetime,OperationName:string,Level:string,CallerIpAddress:string,Message:string,"
        "ConnectionType:string,TransportType:string");
    expect_columns(T "| project-keep Use*, Level | project-rename Who = UserId", "Level:string,Who:string");
    /* extend replaces in place, appends new columns, later items see earlier ones */
    expect_columns(T "| project UserId, Level | extend Level = strlen(Level), n = 1, m = n + 1, UserId",
                   "UserId:string,Level:long,n:long,m:long");
    expect_columns(T "| project UserId | extend strlen(UserId), UserId == 'x', Column1 = 5, 2",
                   "UserId:string,Column1:long,Column2:bool,Column3:long");
    expect_columns(T "| project a = 1, tostring(UserId), bin(TimeGenerated, 1h), 1 + 1",
                   "a:long,UserId:string,TimeGenerated:datetime,Column1:long");
    expect_columns(T "| project ['a \"b'] = 1, x = 2 == 2", "a \"b:long,x:bool");
}

static void test_summarize(void **state) {
    expect_columns(
        T "| summarize count(), count(MessageTracingId), dcount(UserId), countif(Level == \"Warning\"), "
          "min(TimeGenerated), max(TimeGenerated), avg(MessageTracingId), sum(MessageTracingId), "
          "make_set(TransportType), make_list(UserId), dcountif(UserId, Level == 'Warning'), "
          "sumif(MessageTracingId, true), make_set(TransportType), x = count() * 2",
        "count_:long,count_MessageTracingId:long,dcount_UserId:long,countif_:long,"
        "min_TimeGenerated:datetime,max_TimeGenerated:datetime,avg_MessageTracingId:real,"
        "sum_MessageTracingId:long,set_TransportType:dynamic,list_UserId:dynamic,dcountif_UserId:long,"
        "sumif_MessageTracingId:long,set_TransportType1:dynamic,x:long");
    expect_rows(
        T "| summarize count(), count(MessageTracingId), dcount(UserId), countif(Level == \"Warning\"), "
          "min(TimeGenerated), max(TimeGenerated), avg(MessageTracingId), sum(MessageTracingId), "
          "make_set(TransportType), make_set(TransportType, 1), dcountif(UserId, Level == 'Warning'), "
          "x = count() * 2",
        "[[10,1,5,2,\"2025-11-20T00:00:00Z\",\"2026-01-01T11:50:00Z\",101.0,101,"
        "\"[\\\"WebSockets\\\",\\\"ServerSentEvents\\\",\\\"LongPolling\\\"]\",\"[\\\"WebSockets\\\"]\",2,20]"
        "]");
    /* the time order of the fixture's insertion is not the list order: check the list's content */
    expect_rows(T "| where UserId == 'bob' | sort by TimeGenerated asc | summarize make_list(OperationName), "
                  "make_set(MessageTracingId), make_set(TimeGenerated)",
                "[[\"[\\\"ConnectionStarted\\\",\\\"ConnectionEnded\\\"]\",\"[]\","
                "\"[\\\"2026-01-01T11:10:00Z\\\",\\\"2026-01-01T11:20:00Z\\\"]\"]]");
    /* no rows: one row of defaults without by, no rows with by */
    expect_rows(T "| where UserId == 'nobody' | summarize count(), dcount(UserId), make_set(UserId), "
                  "sum(MessageTracingId), min(TimeGenerated), countif(true)",
                "[[0,0,\"[]\",0,null,0]]");
    expect_rows(T "| where UserId == 'nobody' | summarize count() by UserId", "[]");
    expect_row_set(T "| summarize arg_max(TimeGenerated, ConnectionId, Level) by UserId",
                   "[[\"\",\"2026-01-01T11:40:00Z\",\"\",\"Error\"],[\"alice\",\"2026-01-01T11:05:00Z\","
                   "\"c1\",\"Warning\"],"
                   "[\"bob\",\"2026-01-01T11:20:00Z\",\"c2\",\"Informational\"],[\"carol\",\"2026-01-01T11:"
                   "50:00Z\",\"c3\","
                   "\"Warning\"],[\"dave\",\"2025-11-20T00:00:00Z\",\"c5\",\"Informational\"]]");
    expect_row_set(T "| summarize arg_min(TimeGenerated, ConnectionId) by UserId | where UserId == 'carol'",
                   "[[\"carol\",\"2026-01-01T10:00:00Z\",\"c4\"]]");
    expect_columns(T "| project UserId, TimeGenerated, Level, ConnectionId | summarize "
                     "arg_max(TimeGenerated, *) by UserId",
                   "UserId:string,TimeGenerated:datetime,Level:string,ConnectionId:string");
    expect_columns(T "| project UserId, TimeGenerated | summarize arg_max(strlen(UserId), *)",
                   "max_:long,UserId:string,TimeGenerated:datetime");
    expect_row_set(T "| summarize by ConnectionType", "[[\"Client\"],[\"Server\"]]");
    expect_row_set(T
                   "| summarize n = count() by ConnectionType, Minute = bin(TimeGenerated, 1d) | where n > 1",
                   "[[\"Client\",\"2026-01-01T00:00:00Z\",8]]");
    expect_columns(T "| summarize count() by strlen(UserId)", "Column1:long,count_:long");
    expect_rows(AZURE_ACTIVITY_QUERY, "[[\"Microsoft.Insights/diagnosticSettings/write\",1],"
                                      "[\"Microsoft.SignalRService/SignalR/write\",1]]");
}

static void test_lets_and_render(void **state) {
    expect_rows("let who = \"bob\";\nlet since = 1d;\n" T
                "| where UserId == who and TimeGenerated > ago(since) | count",
                "[[2]]");
    expect_rows("let a = 2; let b = a * 3; " T "| take 1 | project b", "[[6]]");
    expect_rows("let x = 1; let x = x + 1; " T "| take 1 | project x",
                "[[2]]"); /* a let sees the lets before it */
    sb_kql_result r;
    char err[512];
    assert_int_equal(run_with(T "| count | render columnchart with (title=\"Events\", xtitle='x')", NULL, &r,
                              err, sizeof err),
                     SB_OK);
    assert_string_equal(r.render, "columnchart");
    assert_string_equal(r.render_title, "Events");
    sb_kql_result_free(&r);
}

static void test_json_encoding_and_types(void **state) {
    json_t *j = body_of(
        T "| where ConnectionId == 'c1' | sort by TimeGenerated asc | take 2 | project TimeGenerated, "
          "b = UserId == 'alice', t = 90m, s = 'x' == 'y', n = MessageTracingId, r = 0.5, "
          "i = toint(2), e = todouble(\"inf\")");
    char *text = dump(j);
    assert_string_equal(
        text,
        "{\"tables\":[{\"name\":\"PrimaryResult\",\"columns\":[{\"name\":\"TimeGenerated\",\"type\":"
        "\"datetime\"},"
        "{\"name\":\"b\",\"type\":\"bool\"},{\"name\":\"t\",\"type\":\"timespan\"},{\"name\":\"s\",\"type\":"
        "\"bool\"},{\"name\":\"n\",\"type\":\"long\"},{\"name\":\"r\",\"type\":\"real\"},{\"name\":\"i\","
        "\"type\":\"int\"},{\"name\":\"e\",\"type\":\"real\"}],\"rows\":[[\"2026-01-01T11:00:00Z\",true,"
        "\"01:30:00\",false,null,0.5,2,\"Infinity\"],[\"2026-01-01T11:00:05.1234567Z\",true,\"01:30:00\","
        "false,101,0.5,2,\"Infinity\"]]}]}");
    free(text);
    json_decref(j);
    /* text that is not UTF-8 (written by something else) still makes valid JSON */
    assert_int_equal(
        sqlite3_exec(
            db,
            "INSERT INTO AzureActivity(TimeGenerated, Caller) VALUES('2026-01-01T08:00:00.0000000Z', "
            "CAST(X'61FF62' AS TEXT))",
            NULL, NULL, NULL),
        SQLITE_OK);
    expect_rows("AzureActivity | where TimeGenerated == datetime(2026-01-01 08:00) | project Caller",
                "[[\"a\xef\xbf\xbd"
                "b\"]]");
    char *cell = NULL;
    sb_kql_value v = {.null = 1};
    cell = sb_kql_value_to_text(&v, SB_KQL_T_LONG);
    assert_string_equal(cell, "");
    sb_free(cell);
    sb_kql_value dt = {.i = 0};
    cell = sb_kql_value_to_text(&dt, SB_KQL_T_DATETIME);
    assert_string_equal(cell, "1970-01-01T00:00:00Z");
    sb_free(cell);
}

static void test_timespan_argument(void **state) {
    sb_kql_options o = {.timespan = "PT1H"};
    sb_kql_result r;
    char err[512];
    assert_int_equal(run_with(T "| count", &o, &r, err, sizeof err), SB_OK);
    assert_int_equal(sb_kql_cell(&r, 0, 0)->i, 8); /* [11:00, 12:00], both ends included */
    sb_kql_result_free(&r);
    o.timespan = "2026-01-01T11:00:00Z/2026-01-01T11:10:00Z";
    assert_int_equal(run_with(T "| where UserId == 'alice' | count", &o, &r, err, sizeof err), SB_OK);
    assert_int_equal(sb_kql_cell(&r, 0, 0)->i, 3);
    sb_kql_result_free(&r);
    o.timespan = "P1Y";
    assert_int_equal(run_with(T "| count", &o, &r, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "Invalid timespan 'P1Y'"));
    assert_int_equal(sb_kql_run(db, T "| take 1 | count", NULL, &r, err, sizeof err), SB_OK);
    sb_kql_result_free(&r);
}

static void test_semantic_errors(void **state) {
    expect_error("Nope | count", SB_EPROTO,
                 "Semantic error at 1:1: Failed to resolve table expression named 'Nope'");
    expect_error(
        "signalrservicediagnosticlogs | count", SB_EPROTO,
        "Semantic error at 1:1: Failed to resolve table expression named 'signalrservicediagnosticlogs'");
    expect_error("_switchboard_meta | count", SB_EPROTO,
                 "Semantic error at 1:1: Failed to resolve table expression named '_switchboard_meta'");
    sqlite3 *bare;
    assert_int_equal(sqlite3_open(":memory:", &bare), SQLITE_OK);
    sb_kql_result none;
    char why[512];
    assert_int_equal(sb_kql_run(bare, "AzureMetrics | count", NULL, &none, why, sizeof why), SB_EPROTO);
    assert_string_equal(why,
                        "Semantic error at 1:1: Failed to resolve table expression named 'AzureMetrics'\n"
                        "AzureMetrics | count\n^");
    sqlite3_close(bare);
    expect_rows("AzureMetrics | count", "[[0]]"); /* present (empty) in the sink's schema */
    expect_error(T "| where Foo == 1", SB_EPROTO,
                 "Semantic error at 1:38: 'where' operator: Failed to resolve scalar expression named 'Foo'");
    expect_error(T "| where UserId == 1", SB_EPROTO,
                 "Semantic error at 1:45: 'where' operator: Cannot compare values of types string and long");
    expect_error(
        T "| where UserId", SB_EPROTO,
        "Semantic error at 1:38: 'where' operator: the predicate must be of type bool, found string");
    expect_error(T "| where Level == \"Warning\" or \"Error\"", SB_EPROTO,
                 "Semantic error at 1:60: 'where' operator: the right operand of 'or' must be of type bool, "
                 "found string");
    expect_error(T "| project x = frob(1)", SB_EPROTO,
                 "Semantic error at 1:44: 'project' operator: Failed to resolve function named 'frob'");
    expect_error(T "| where count() > 1", SB_EPROTO,
                 "Semantic error at 1:38: 'where' operator: the aggregate function 'count' may only be used "
                 "in 'summarize'");
    expect_error(T "| summarize UserId", SB_EPROTO,
                 "Semantic error at 1:42: 'summarize' operator: the column 'UserId' must be inside an "
                 "aggregate function "
                 "or listed after 'by'");
    expect_error(
        T "| summarize count(count())", SB_EPROTO,
        "Semantic error at 1:48: 'summarize' operator: aggregate functions cannot be nested ('count' inside "
        "another aggregate)");
    expect_error(T "| summarize arg_max(TimeGenerated, *), count()", SB_EPROTO,
                 "Semantic error at 1:42: 'summarize' operator: 'arg_max' must be the only aggregate of its "
                 "'summarize'");
    expect_error(T "| summarize 1", SB_EPROTO,
                 "Semantic error at 1:42: 'summarize' operator: 'summarize' expects aggregate functions such "
                 "as count(), "
                 "dcount(x), sum(x)");
    expect_error(T "| render timechart | count", SB_EPROTO,
                 "Semantic error at 1:51: 'render' operator: 'render' must be the last operator");
    expect_error(
        T "| project UserId, UserId", SB_EPROTO,
        "Semantic error at 1:48: 'project' operator: the column 'UserId' is projected more than once");
    expect_error(
        T "| distinct UserId, UserId", SB_EPROTO,
        "Semantic error at 1:49: 'distinct' operator: the column 'UserId' is listed more than once");
    expect_error(T "| project-away Nope", SB_EPROTO,
                 "Semantic error at 1:45: 'project-away' operator: Failed to resolve column named 'Nope'");
    expect_error(T "| project-away *", SB_EPROTO,
                 "Semantic error at 1:32: 'project-away' operator: no columns are left");
    expect_error(T "| project-rename A = Nope", SB_EPROTO,
                 "Semantic error at 1:51: 'project-rename' operator: Failed to resolve column named 'Nope'");
    expect_error(T "| take 'x'", SB_EPROTO,
                 "Semantic error at 1:37: 'take' operator: the row count must be of type long, found string");
    expect_error(
        T "| take UserId", SB_EPROTO,
        "Semantic error at 1:37: 'take' operator: Failed to resolve scalar expression named 'UserId'");
    expect_error(T "| where UserId =~ 1", SB_EPROTO,
                 "Semantic error at 1:45: 'where' operator: '=~' compares strings, found long");
    expect_error(
        T "| where Message matches regex Level", SB_EPROTO,
        "Semantic error at 1:60: 'where' operator: the pattern of 'matches regex' must be a constant string");
    expect_error(T "| where Message matches regex '('", SB_EPROTO,
                 "Semantic error: invalid regular expression '(': Unmatched ( or \\(");
    expect_error(T "| project x = UserId + 1", SB_EPROTO,
                 "Semantic error at 1:51: 'project' operator: the operator '+' is not defined for types "
                 "string and long");
    expect_error(
        T "| project x = strlen()", SB_EPROTO,
        "Semantic error at 1:44: 'project' operator: the function 'strlen' expects 1 argument, got 0");
    expect_error(T "| project x = iff(true, 1, 'a')", SB_EPROTO,
                 "Semantic error at 1:44: 'project' operator: the branches of 'iff' have different types, "
                 "long and string");
    expect_error("let x = UserId; " T "| count", SB_EPROTO,
                 "Semantic error at 1:9: let x: Failed to resolve scalar expression named 'UserId'");
    expect_error("let x = 1; x | count", SB_EPROTO,
                 "Semantic error at 1:12: 'x' is a scalar let; a query starts with a table name");
    expect_error(
        T "| summarize make_set(UserId) by s = make_set(UserId)", SB_EPROTO,
        "Semantic error at 1:66: 'summarize' operator: the aggregate function 'make_set' may only be used in "
        "'summarize'");
    expect_error(T "| where Foo ==", SB_EINVAL,
                 "Syntax error at 1:44: expected an expression, found the end of the query");
    /* a left-deep chain deeper than the translator allows is an error, not a stack overflow */
    char *deep = sb_strdup(T "| where 1");
    for (int i = 0; i < 600; i++) {
        char *next = sb_asprintf("%s+1", deep);
        sb_free(deep);
        deep = next;
    }
    char *q = sb_asprintf("%s > 0", deep);
    sb_kql_result r;
    char err[2048];
    assert_int_equal(run_with(q, NULL, &r, err, sizeof err), SB_EPROTO);
    assert_non_null(strstr(err, "the expression is too complex"));
    sb_free(q);
    sb_free(deep);
}

static void test_injection_changes_nothing(void **state) {
    expect_count("UserId == \"'; DROP TABLE SignalRServiceDiagnosticLogs; --\"", 0);
    expect_count("UserId == '\"; DELETE FROM SignalRServiceDiagnosticLogs; --'", 0);
    expect_count("Message has \"') OR 1=1 --\"", 0);
    expect_columns(T "| project ['x\"; DROP TABLE t; --'] = 1 | take 1", "x\"; DROP TABLE t; --:long");
    expect_error(T "| where UserId == ''; drop table SignalRServiceDiagnosticLogs; --'", SB_EINVAL,
                 "Syntax error at 1:52: expected '|' or the end of the query, found 'drop'");
    expect_rows(T "| count", "[[10]]");
}

static void test_limits(void **state) {
    sqlite3 *big;
    assert_int_equal(sqlite3_open(":memory:", &big), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(big,
                     "CREATE TABLE SignalRServiceDiagnosticLogs(TimeGenerated TEXT, UserId TEXT);"
                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
                     " INSERT INTO SignalRServiceDiagnosticLogs SELECT '2026-01-01T00:00:00.0000000Z', 'u' "
                     "|| i FROM n;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sb_kql_options o = {.max_rows = 3};
    sb_kql_result r;
    char err[512];
    assert_int_equal(sb_kql_run_opts(big, T "| project UserId", &o, &r, err, sizeof err), SB_OK);
    assert_int_equal(r.nrows, 3);
    assert_true(r.truncated);
    sb_kql_result_free(&r);
    o = (sb_kql_options){.max_bytes = 100};
    assert_int_equal(sb_kql_run_opts(big, T "| project UserId", &o, &r, err, sizeof err), SB_OK);
    assert_true(r.truncated && r.nrows < 20);
    sb_kql_result_free(&r);
    static volatile int cancel = 1;
    o = (sb_kql_options){.cancel = &cancel};
    assert_int_equal(
        sb_kql_run_opts(big, T "| summarize dcount(UserId) by UserId | count", &o, &r, err, sizeof err),
        SB_ETIMEDOUT);
    assert_string_equal(err, "The query was stopped: it was cancelled");
    assert_null(r.columns);
    o = (sb_kql_options){.timeout_ms = 1};
    usleep(2000);
    /* the deadline starts with the query; a long query crosses it */
    assert_int_equal(sb_kql_run_opts(big,
                                     T "| extend k = strcat(UserId, UserId) | summarize make_set(k) by k | "
                                       "summarize count() by strlen(set_k) | count",
                                     &o, &r, err, sizeof err) == SB_ETIMEDOUT ||
                         r.nrows == 1,
                     1);
    sb_kql_result_free(&r);
    sqlite3_close(big);
}

static void test_samples(void **state) {
    for (size_t i = 0; i < sb_kql_nsamples; i++) {
        const char *args[] = {"connectionId=c1", "userId=alice", "tracingId=101"};
        char missing[64];
        char *q = sb_kql_sample_expand(&sb_kql_samples[i], args, 3, missing, sizeof missing);
        assert_non_null(q);
        json_decref(body_of(q));
        sb_free(q);
    }
    expect_rows(sb_kql_sample_find("close-reasons")->query,
                "[[\"ConnectionEnded\",\"Connection ended\",2],[\"ConnectionAborted\",\"Connection count "
                "reaches limit\",1],"
                "[\"ConnectionAborted\",\"Connection ping timeout\",1]]");
    expect_row_set(
        sb_kql_sample_find("aborts-by-reason")->query,
        "[[\"Connection count reaches limit\",1,\"2026-01-01T11:50:00Z\"],[\"Connection ping timeout\",1,"
        "\"2026-01-01T11:05:00Z\"]]");
    expect_row_set(sb_kql_sample_find("connections-per-user")->query,
                   "[[\"alice\",1,\"[\\\"10.0.0.1\\\"]\"],[\"bob\",1,\"[\\\"10.0.0.2\\\"]\"],"
                   "[\"carol\",1,\"[\\\"\\\"]\"]]"); /* c3 was refused before it started */
    const char *args[] = {"tracingId=101"};
    char missing[64];
    char *q = sb_kql_sample_expand(sb_kql_sample_find("tracing-id"), args, 1, missing, sizeof missing);
    expect_rows(F("%s | project ConnectionId", q), "[[\"c1\"]]");
    sb_free(q);
    assert_null(sb_kql_sample_expand(sb_kql_sample_find("user"), args, 1, missing, sizeof missing));
    assert_string_equal(missing, "userId");
    const char *evil[] = {"userId=a\"b\\\" | take 1 //"};
    q = sb_kql_sample_expand(sb_kql_sample_find("user"), evil, 1, missing, sizeof missing);
    assert_non_null(strstr(q, "UserId == \"a\\\"b\\\\\\\" | take 1 //\""));
    expect_rows(F("%s | count", q), "[[0]]");
    sb_free(q);
    assert_null(sb_kql_sample_find("nope"));
}

static void test_retention(void **state) {
    int64_t now_us = now_ticks / 10;
    /* batches of one row: the loop must continue until everything expired is gone */
    assert_int_equal(sb_kql_enforce_retention(db, now_us, 30, 90, 1, 100), 2);
    expect_rows(T "| where UserId == 'dave' | count", "[[0]]");
    expect_rows(T "| count", "[[9]]");
    expect_rows("AzureActivity | where Caller == 'accessKey' | count", "[[1]]");
    assert_int_equal(sb_kql_enforce_retention(db, now_us, 30, 90, 1000, 10), 0);
    /* 0 days keeps everything; a later clock expires more, at most max_batches * batch_rows per table */
    assert_int_equal(sb_kql_enforce_retention(db, now_us + 100LL * 86400 * 1000000, 0, 0, 5, 10), 0);
    assert_int_equal(sb_kql_enforce_retention(db, now_us + 100LL * 86400 * 1000000, 30, 0, 2, 2), 4);
    expect_rows(T "| count", "[[5]]");
    sqlite3 *empty;
    assert_int_equal(sqlite3_open(":memory:", &empty), SQLITE_OK);
    assert_int_equal(sb_kql_enforce_retention(empty, now_us, 30, 90, 10, 10),
                     0); /* no tables: nothing to do */
    sqlite3_close(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ms_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comparisons_and_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logic_and_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conversions_and_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tabular_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summarize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lets_and_render, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_encoding_and_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timespan_argument, setup, teardown),
        cmocka_unit_test_setup_teardown(test_semantic_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_injection_changes_nothing, setup, teardown),
        cmocka_unit_test(test_limits),
        cmocka_unit_test_setup_teardown(test_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
