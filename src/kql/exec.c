/*
 * exec.c - running a query: parse, translate, prepare, bind, step into a
 * typed result table; see kql.h.
 *
 * The table lookup reads the real columns of the database (pragma
 * table_info), so a workspace created by an older or newer sink still
 * answers with the columns it has; only the three Log Analytics table names
 * are ever looked up (translate.c's allowlist), so the sink's own
 * _switchboard_meta and sqlite_master stay out of reach.
 *
 * Limits: a progress handler stops the statement at the deadline or when
 * the cancel flag is raised; rows stop at max_rows and cell text at
 * max_bytes (the result is then marked truncated, as the Logs API does with
 * a PartialError).  An error raised inside a SQL function (a bad regular
 * expression) is the query's fault and is reported as a semantic error.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kql/arena.h"
#include "kql/ast.h"
#include "kql/datetime.h"
#include "kql/kql.h"
#include "kql/translate.h"
#include "util/alloc.h"
#include "util/error.h"

#define PROGRESS_OPS 4000 /* VM steps between deadline checks */

typedef struct run_ctx {
    sqlite3 *db;
    uint64_t deadline_ns; /* 0: none */
    const volatile int *cancel;
    int stopped;
} run_ctx;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int on_progress(void *p) {
    run_ctx *r = p;
    if ((r->cancel && *r->cancel) || (r->deadline_ns && mono_ns() > r->deadline_ns)) {
        r->stopped = 1;
        return 1;
    }
    return 0;
}

static int lookup_table(void *ctx, const char *table, sb_kql_column **cols, size_t *ncols, sb_kql_arena *a) {
    run_ctx *r = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT name, type FROM pragma_table_info(?1)", -1, &st, NULL) != SQLITE_OK)
        return SB_EIO;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    *cols = NULL;
    *ncols = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        if (!name)
            continue;
        sb_kql_column c = {sb_kql_strdup(a, name), sb_kql_column_type(name, type)};
        sb_kql_push(a, cols, ncols, &c, sizeof c);
    }
    sqlite3_finalize(st);
    return *ncols ? SB_OK : SB_ENOENT;
}

static void bind_params(sqlite3_stmt *st, const sb_kql_plan *plan) {
    for (size_t i = 0; i < plan->nparams; i++) {
        const sb_kql_param *p = &plan->params[i];
        int k = (int)i + 1;
        switch (p->type) {
        case SB_KQL_T_STRING:
        case SB_KQL_T_DATETIME:
        case SB_KQL_T_DYNAMIC:
            sqlite3_bind_text(st, k, p->s, -1, SQLITE_STATIC);
            break;
        case SB_KQL_T_REAL:
            sqlite3_bind_double(st, k, p->r);
            break;
        default:
            sqlite3_bind_int64(st, k, p->i);
            break;
        }
    }
}

/* One cell from the current row; returns the bytes of text it holds. */
static size_t read_cell(sqlite3_stmt *st, int c, sb_kql_type type, sb_kql_value *v) {
    int null = sqlite3_column_type(st, c) == SQLITE_NULL;
    switch (type) {
    case SB_KQL_T_STRING:
    case SB_KQL_T_DYNAMIC: {
        if (null && type == SB_KQL_T_DYNAMIC) {
            v->null = 1;
            return 0;
        }
        const char *s = (const char *)sqlite3_column_text(st, c);
        size_t n = s ? (size_t)sqlite3_column_bytes(st, c) : 0;
        v->s = sb_strndup(s ? s : "", n);
        return n;
    }
    case SB_KQL_T_REAL:
        v->null = null;
        v->r = null ? 0 : sqlite3_column_double(st, c);
        return 8;
    case SB_KQL_T_DATETIME: {
        const char *s = (const char *)sqlite3_column_text(st, c);
        v->null = !s || sb_kql_dt_parse(s, (size_t)sqlite3_column_bytes(st, c), &v->i) != SB_OK;
        return 28;
    }
    case SB_KQL_T_BOOL:
        v->null = null;
        v->i = null ? 0 : sqlite3_column_int64(st, c) != 0;
        return 5;
    default:
        v->null = null;
        v->i = null ? 0 : sqlite3_column_int64(st, c);
        return 8;
    }
}

static int step_rows(sqlite3_stmt *st, const sb_kql_plan *plan, const sb_kql_options *o, sb_kql_result *out) {
    size_t max_rows = o->max_rows ? o->max_rows : SB_KQL_DEFAULT_MAX_ROWS;
    size_t max_bytes = o->max_bytes ? o->max_bytes : SB_KQL_DEFAULT_MAX_BYTES;
    size_t cap = 0, bytes = 0, nc = plan->ncolumns;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->nrows == max_rows || bytes > max_bytes) {
            out->truncated = 1;
            return SQLITE_DONE;
        }
        if (out->nrows == cap) {
            cap = cap ? cap * 2 : 64;
            out->cells = sb_realloc(out->cells, cap * (nc ? nc : 1) * sizeof *out->cells);
        }
        sb_kql_value *row = &out->cells[out->nrows * nc];
        memset(row, 0, nc * sizeof *row);
        for (size_t c = 0; c < nc; c++)
            bytes += read_cell(st, (int)c, plan->columns[c].type, &row[c]) + 4;
        out->nrows++;
    }
    return rc;
}

int sb_kql_run_opts(sqlite3 *db, const char *query, const sb_kql_options *opts, sb_kql_result *out, char *err,
                    size_t errlen) {
    static const sb_kql_options no_opts;
    const sb_kql_options *o = opts ? opts : &no_opts;
    memset(out, 0, sizeof *out);
    if (errlen)
        err[0] = '\0';
    uint64_t started = mono_ns();
    sb_kql_translate_opts to = {0};
    to.now = o->now ? o->now : sb_kql_now();
    if (o->timespan && *o->timespan) {
        if (sb_kql_iso_interval(o->timespan, to.now, &to.window_start, &to.window_end) != SB_OK) {
            snprintf(err, errlen,
                     "Invalid timespan '%.100s': expected an ISO-8601 duration such as PT1H or P1D, or an "
                     "interval "
                     "such as 2026-01-01T00:00:00Z/2026-01-02T00:00:00Z",
                     o->timespan);
            return SB_EINVAL;
        }
        to.has_window = 1;
    }
    run_ctx rc_ctx = {db, o->timeout_ms > 0 ? started + (uint64_t)o->timeout_ms * 1000000u : 0, o->cancel, 0};
    sb_kql_arena a;
    sb_kql_arena_init(&a);
    sb_kql_query *q;
    sb_kql_plan plan;
    size_t len = strlen(query);
    int rc = sb_kql_parse(query, len, &a, &q, err, errlen);
    if (rc == SB_OK)
        rc = sb_kql_translate(q, query, len, lookup_table, &rc_ctx, &to, &a, &plan, err, errlen);
    if (rc != SB_OK) {
        sb_kql_arena_free(&a);
        return rc;
    }
    sqlite3_stmt *st = NULL;
    if (sb_kql_register_functions(db) != SB_OK) {
        snprintf(err, errlen, "cannot register the query functions: %s", sqlite3_errmsg(db));
        sb_kql_arena_free(&a);
        return SB_EIO;
    }
    if (sqlite3_prepare_v2(db, plan.sql, -1, &st, NULL) != SQLITE_OK) {
        /* the translator only emits valid SQL, so this is a limit: too many terms, too deep */
        snprintf(err, errlen, "Semantic error: the query is too complex to run (%s)", sqlite3_errmsg(db));
        sb_kql_arena_free(&a);
        return SB_EPROTO;
    }
    bind_params(st, &plan);
    sqlite3_progress_handler(db, PROGRESS_OPS, on_progress, &rc_ctx);
    out->ncolumns = plan.ncolumns;
    out->columns = sb_calloc(plan.ncolumns ? plan.ncolumns : 1, sizeof *out->columns);
    for (size_t c = 0; c < plan.ncolumns; c++) {
        out->columns[c].name = sb_strdup(plan.columns[c].name);
        out->columns[c].type = plan.columns[c].type;
    }
    int src = step_rows(st, &plan, o, out);
    sqlite3_progress_handler(db, 0, NULL, NULL);
    rc = SB_OK;
    if (src != SQLITE_DONE) {
        const char *msg = sqlite3_errmsg(db);
        if (rc_ctx.stopped) {
            snprintf(err, errlen, "The query was stopped: %s",
                     o->cancel && *o->cancel ? "it was cancelled" : "it ran longer than its time limit");
            rc = SB_ETIMEDOUT;
        } else if (strncmp(msg, "invalid regular expression", 26) == 0) {
            snprintf(err, errlen, "Semantic error: %s", msg);
            rc = SB_EPROTO;
        } else {
            snprintf(err, errlen, "the workspace database failed: %s", msg);
            rc = SB_EIO;
        }
    }
    sqlite3_finalize(st);
    if (rc == SB_OK) {
        out->render = plan.render ? sb_strdup(plan.render) : NULL;
        out->render_title = plan.render_title ? sb_strdup(plan.render_title) : NULL;
        out->elapsed_s = (double)(mono_ns() - started) / 1e9;
    } else {
        sb_kql_result_free(out);
    }
    sb_kql_arena_free(&a);
    return rc;
}

int sb_kql_run(sqlite3 *db, const char *query, const char *timespan, sb_kql_result *out, char *err,
               size_t errlen) {
    sb_kql_options o = {0};
    o.timespan = timespan;
    return sb_kql_run_opts(db, query, &o, out, err, errlen);
}
