/*
 * kql.h - Log Analytics queries: KQL over a workspace database.
 *
 * The engine answers the subset of the Kusto Query Language that Azure's
 * SignalR troubleshooting needs (Microsoft's sample queries for
 * SignalRServiceDiagnosticLogs run unchanged) against a workspace database
 * written by the workspace sink (diag/sink_workspace.c): tables
 * SignalRServiceDiagnosticLogs, AzureActivity and, when present, AzureMetrics.
 *
 * Data path of a query: text -> lexer.c -> parser.c (syntax tree, ast.h)
 * -> translate.c (one SQL statement: a chain of CTEs, one per pipeline
 * stage, every literal a bound parameter, every name checked against the
 * columns of its stage) -> exec.c (SQLite with the KQL functions of
 * sqlfuncs.c registered, typed result table) -> result.c (the Logs API JSON).
 *
 * Threading: sb_kql_run blocks (it runs SQL); never call it on the event
 * loop (rest/query_api.c runs it on the libuv threadpool).  Everything here is
 * reentrant; one sqlite3 handle must not be used by two threads at once.
 *
 * Errors: SB_EINVAL is a syntax error, SB_EPROTO a semantic error (unknown
 * table, column or function, type mismatch), SB_ETIMEDOUT the deadline or the
 * cancel flag, SB_EIO a database failure.  err then holds a message; syntax
 * and semantic messages read "Syntax error at L:C: ..." / "Semantic error at
 * L:C: ..." followed by the offending line and a caret.
 */
#ifndef SB_KQL_H
#define SB_KQL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* KQL scalar types, as the Logs API names them. */
typedef enum sb_kql_type {
    SB_KQL_T_NULL = 0, /* the type of an untyped null; never a result column type */
    SB_KQL_T_BOOL,
    SB_KQL_T_INT,
    SB_KQL_T_LONG,
    SB_KQL_T_REAL,
    SB_KQL_T_STRING,
    SB_KQL_T_DATETIME,
    SB_KQL_T_TIMESPAN,
    SB_KQL_T_DYNAMIC,
} sb_kql_type;

/* "bool", "int", "long", "real", "string", "datetime", "timespan", "dynamic". */
const char *sb_kql_type_name(sb_kql_type t);

typedef struct sb_kql_column {
    char *name;
    sb_kql_type type;
} sb_kql_column;

/* One cell.  null: no value (strings are never null: "").  bool/int/long: i; datetime/timespan: i in
 * ticks (datetime since 1970-01-01); real: r; string/dynamic: s (owned, NUL-terminated). */
typedef struct sb_kql_value {
    int null;
    int64_t i;
    double r;
    char *s;
} sb_kql_value;

typedef struct sb_kql_result {
    sb_kql_column *columns;
    size_t ncolumns;
    sb_kql_value *cells; /* nrows * ncolumns, row-major */
    size_t nrows;
    int truncated;      /* stopped at max_rows / max_bytes */
    char *render;       /* the render operator's visualization ("timechart"), or NULL */
    char *render_title; /* its title property, or NULL */
    double elapsed_s;   /* execution time */
} sb_kql_result;

static inline const sb_kql_value *sb_kql_cell(const sb_kql_result *r, size_t row, size_t col) {
    return &r->cells[row * r->ncolumns + col];
}

typedef struct sb_kql_options {
    const char *timespan;       /* ISO-8601 duration or interval restricting TimeGenerated, or NULL */
    int64_t now;                /* now() in ticks; 0: the wall clock when the query starts */
    size_t max_rows;            /* 0: 500000 (the Logs API limit) */
    size_t max_bytes;           /* 0: 64 MiB of cell text */
    int64_t timeout_ms;         /* 0: none */
    const volatile int *cancel; /* polled during execution: non-zero stops the query (SB_ETIMEDOUT) */
} sb_kql_options;

/* Limits applied when the options leave them 0. */
#define SB_KQL_DEFAULT_MAX_ROWS 500000
#define SB_KQL_DEFAULT_MAX_BYTES (64u * 1024 * 1024)

/*
 * Run query against db (opened read-only by the caller is enough).  timespan: as in the Logs API ("PT1H",
 * "start/end", ...) or NULL.  On SB_OK *out holds the result (free with sb_kql_result_free); on failure
 * *out is empty and err holds the message.
 */
int sb_kql_run(sqlite3 *db, const char *query, const char *timespan, sb_kql_result *out, char *err,
               size_t errlen);
int sb_kql_run_opts(sqlite3 *db, const char *query, const sb_kql_options *opts, sb_kql_result *out, char *err,
                    size_t errlen);
void sb_kql_result_free(sb_kql_result *r);

/* The Logs API response body: {"tables":[{"name":"PrimaryResult","columns":[{"name","type"}],"rows":[...]}]};
 * datetime cells as ISO-8601 'Z' strings, timespans as "[d.]hh:mm:ss[.fffffff]", dynamic as JSON text. */
json_t *sb_kql_result_to_json(const sb_kql_result *r);
/* One cell as the Logs API encodes it (new reference). */
json_t *sb_kql_value_to_json(const sb_kql_value *v, sb_kql_type t);
/* One cell as text (table and CSV output): a heap string the caller frees with sb_free. */
char *sb_kql_value_to_text(const sb_kql_value *v, sb_kql_type t);

/* Register the KQL SQL functions (has, regex, datetime arithmetic, make_set, ...) on a connection.
 * sb_kql_run does it itself; exposed for tests. */
int sb_kql_register_functions(sqlite3 *db);

/*
 * Delete rows older than their table's retention: SignalRServiceDiagnosticLogs (and AzureMetrics) older
 * than log_days, AzureActivity older than activity_days (0 = keep forever), in batches of batch_rows
 * (each its own transaction, so the writer never holds the database for long), at most max_batches
 * batches per table per call.  now_us: the wall clock in microseconds.  Returns the number of rows
 * deleted, or a negative error (SB_EIO).  Called on the log writer thread, never on the event loop.
 */
long sb_kql_enforce_retention(sqlite3 *db, int64_t now_us, int log_days, int activity_days, int batch_rows,
                              int max_batches);

#endif
