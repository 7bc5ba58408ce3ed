/*
 * query_api.c - the Logs query API; see query_api.h for the routes.
 *
 * Order of checks: route classification (pure); auth, so an anonymous
 * caller learns nothing about which paths or workspaces exist; then 404 for
 * the path, 405, the workspace (404 WorkspaceNotFoundError), the arguments
 * (400 BadArgumentError), the concurrency limit (429); then the query runs
 * on the threadpool.
 *
 * Threadpool job lifetime: the job owns copies of everything the worker
 * needs (database path, query, timespan), so the request may be gone when
 * the worker runs.  The conn is held (sb_conn_hold) from submission to the
 * after-work callback, which answers only when the conn is not closing and
 * then releases it; the conn's memory outlives its uv_close until then.  The
 * worker polls the server's stopping flag, so a shutdown never waits for a
 * long query.  The worker also renders the JSON body, so the loop only
 * copies bytes.
 *
 * A workspace whose database does not exist yet (no setting has routed logs
 * to it) answers like an empty workspace: an in-memory database with no
 * tables, so a query names the missing table in its error.
 */
#include "rest/query_api.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <uv.h>

#include "auth/auth.h"
#include "kql/kql.h"
#include "net/http.h"
#include "server.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

#define JSON_TYPE "application/json; charset=utf-8"
#define MAX_IN_FLIGHT 16         /* queued or running queries; more get 429 */
#define DEFAULT_WAIT_SECONDS 180 /* the Logs API's default server timeout */
#define MAX_WAIT_SECONDS 600

typedef struct job {
    uv_work_t work;
    sb_conn *conn;
    sb_server *srv;
    char *db_path, *query, *timespan;
    int wait_s, want_stats, want_render;
    /* the answer, made on the worker */
    int status;
    char *body;
} job;

static int in_flight; /* loop thread only */

/* ---- answers ------------------------------------------------------------------------------------- */

static char *error_body(const char *code, const char *message, json_t *inner) {
    json_t *e = json_pack("{s:s, s:s%}", "code", code, "message", message, strlen(message));
    if (!json_is_object(e)) { /* invalid UTF-8 in an echoed name */
        json_decref(e);
        e = json_pack("{s:s, s:s}", "code", code, "message", "The request had some invalid properties");
    }
    if (inner)
        json_object_set_new(e, "innererror", inner);
    json_t *body = json_pack("{s:o}", "error", e);
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return s;
}

static void answer(sb_conn *c, int status, char *body, const char *extra) {
    sb_http_respond(c, status, JSON_TYPE, body, body ? strlen(body) : 0, extra);
    free(body);
}

static void answer_error(sb_conn *c, int status, const char *code, const char *message) {
    answer(c, status, error_body(code, message, NULL), NULL);
}

/* The engine's error as Azure shapes it: the first line as message, the full text (with the caret) inside. */
static char *query_error_body(int rc, const char *err, int *status) {
    const char *nl = strchr(err, '\n');
    char first[512];
    snprintf(first, sizeof first, "%.*s", (int)(nl ? (size_t)(nl - err) : strlen(err)), err);
    if (rc == SB_ETIMEDOUT) {
        *status = 504;
        return error_body("GatewayTimeout", first, NULL);
    }
    if (rc == SB_EIO) {
        *status = 500;
        return error_body("InternalServerError", first, NULL);
    }
    *status = 400;
    const char *inner_code = strncmp(err, "Syntax error", 12) == 0     ? "SyntaxError"
                             : strncmp(err, "Semantic error", 14) == 0 ? "SemanticError"
                                                                       : "InvalidArgument";
    json_t *inner = json_pack("{s:s, s:s%}", "code", inner_code, "message", err, strlen(err));
    int line, col;
    if (inner && sscanf(err, "%*s error at %d:%d:", &line, &col) == 2) {
        json_object_set_new(inner, "line", json_integer(line));
        json_object_set_new(inner, "pos", json_integer(col));
    }
    return error_body("BadArgumentError", first, inner);
}

/* ---- the worker ---------------------------------------------------------------------------------- */

static void on_work(uv_work_t *w) {
    job *j = w->data;
    sqlite3 *db = NULL;
    struct stat st;
    const char *path = stat(j->db_path, &st) == 0 ? j->db_path : ":memory:";
    int open_rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (open_rc != SQLITE_OK && path != j->db_path) {
        sqlite3_close(db);
        db = NULL;
        open_rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    }
    if (open_rc != SQLITE_OK) {
        j->status = 500;
        j->body = error_body("InternalServerError", "The workspace database cannot be opened.", NULL);
        sqlite3_close(db);
        return;
    }
    sqlite3_busy_timeout(db, 5000);
    sb_kql_options o = {0};
    o.timespan = j->timespan;
    o.timeout_ms = (int64_t)j->wait_s * 1000;
    o.cancel = (const volatile int *)&j->srv->stopping;
    sb_kql_result r;
    char err[4096];
    int rc = sb_kql_run_opts(db, j->query, &o, &r, err, sizeof err);
    sqlite3_close(db);
    if (rc != SB_OK) {
        j->body = query_error_body(rc, err, &j->status);
        return;
    }
    json_t *body = sb_kql_result_to_json(&r);
    if (r.truncated)
        json_object_set_new(body, "error",
                            json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "code", "PartialError", "message",
                                      "There were some errors when processing your query.", "details", "code",
                                      "EngineError", "message",
                                      "Query result set has exceeded the internal limit and was truncated."));
    if (j->want_stats)
        json_object_set_new(body, "statistics",
                            json_pack("{s:{s:f, s:[{s:I}]}}", "query", "executionTime", r.elapsed_s,
                                      "datasetStatistics", "tableRowCount", (json_int_t)r.nrows));
    if (j->want_render && r.render)
        json_object_set_new(body, "render",
                            json_pack("{s:s, s:s, s:b, s:b, s:s, s:s, s:n}", "visualization", r.render,
                                      "title", r.render_title ? r.render_title : "", "accumulate", 0,
                                      "isQuerySorted", 0, "kind", "", "annotation", "", "by"));
    j->body = json_dumps(body, JSON_COMPACT);
    j->status = j->body ? 200 : 500;
    if (!j->body)
        j->body = error_body("InternalServerError", "The result could not be encoded.", NULL);
    json_decref(body);
    sb_kql_result_free(&r);
}

static void job_free(job *j) {
    sb_free(j->db_path);
    sb_free(j->query);
    sb_free(j->timespan);
    free(j->body);
    sb_free(j);
}

static void on_after_work(uv_work_t *w, int status) {
    job *j = w->data;
    sb_conn *c = j->conn;
    in_flight--;
    if (!c->closing) {
        if (status == UV_ECANCELED)
            answer_error(c, 503, "ServiceUnavailable", "The service is stopping.");
        else
            sb_http_respond(c, j->status, JSON_TYPE, j->body, strlen(j->body), NULL);
    }
    sb_conn_release(c);
    job_free(j);
}

/* ---- the request --------------------------------------------------------------------------------- */

int sb_query_api_matches(sb_slice path) {
    size_t i = 0;
    while (i < path.len && path.base[i] == '/')
        i++;
    if (i == 0)
        return 0;
    sb_slice rest = sb_slice_make(path.base + i, path.len - i);
    return (rest.len >= 3 && strncmp(rest.base, "v1", 2) == 0 && (rest.len == 2 || rest.base[2] == '/')) ||
           (rest.len >= 11 && strncmp(rest.base, "workspaces/", 11) == 0);
}

/* The decoded {workspaceId} of ".../workspaces/{id}/query", or NULL when the path is not that route. */
static char *route_workspace(const sb_buf *collapsed) {
    const char *p = collapsed->data;
    if (strncmp(p, "/v1/", 4) == 0)
        p += 3;
    if (strncmp(p, "/workspaces/", 12) != 0)
        return NULL;
    p += 12;
    const char *slash = strchr(p, '/');
    if (!slash || slash == p || strcmp(slash, "/query") != 0)
        return NULL;
    sb_buf id;
    sb_buf_init(&id);
    if (sb_url_decode(sb_slice_make(p, (size_t)(slash - p)), 0, &id) != SB_OK || !id.len ||
        memchr(id.data, 0, id.len) || !sb_utf8_valid(id.data, id.len)) {
        sb_buf_free(&id);
        return NULL;
    }
    return sb_buf_steal(&id, NULL);
}

/* A declared workspace name for id (a name, or an ARM id ending in /workspaces/<name>), or NULL. */
static const char *workspace_name(const sb_server *srv, const char *id) {
    const char *name = id;
    for (const char *p = id; (p = strchr(p, '/')); p++)
        if (strncasecmp(p, "/workspaces/", 12) == 0)
            name = p + 12;
    size_t n = strlen(name);
    if (!n || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return NULL;
    const char *list = srv->cfg.workspaces ? srv->cfg.workspaces : "";
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *te = e;
        while (te > p && te[-1] == ' ')
            te--;
        if ((size_t)(te - p) == n && strncmp(p, name, n) == 0)
            return name;
        p = e;
    }
    return NULL;
}

static int authorize(sb_conn *c, const sb_http_request *req) {
    sb_auth_result res;
    int rc = sb_auth_arm_request(c->srv, req, &res);
    if (rc != SB_OK)
        answer_error(c, res.status == 413 ? 413 : 401, "AuthorizationRequiredError", sb_auth_result_reason(&res));
    sb_auth_result_free(&res);
    return rc == SB_OK;
}

/* Prefer: wait=N, include-statistics=true, include-render=true (comma-separated, any order). */
static void parse_prefer(const sb_http_request *req, job *j) {
    sb_slice h = sb_http_header_get(req, "Prefer");
    j->wait_s = DEFAULT_WAIT_SECONDS;
    if (!h.base)
        return;
    char *s = sb_strndup(h.base, h.len), *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        int v;
        if (sscanf(tok, "wait=%d", &v) == 1 && v > 0)
            j->wait_s = v > MAX_WAIT_SECONDS ? MAX_WAIT_SECONDS : v;
        else if (strncasecmp(tok, "include-statistics=true", 23) == 0)
            j->want_stats = 1;
        else if (strncasecmp(tok, "include-render=true", 19) == 0)
            j->want_render = 1;
    }
    sb_free(s);
}

/* query and timespan from the JSON body (POST) or the query string (GET).  0 with an answer sent on error. */
static int read_arguments(sb_conn *c, const sb_http_request *req, job *j) {
    if (req->method == HTTP_POST) {
        json_error_t jerr;
        json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
        if (!json_is_object(body)) {
            json_decref(body);
            answer_error(c, 400, "BadArgumentError",
                         "The request body must be a JSON object {\"query\": \"...\"}.");
            return 0;
        }
        json_t *q = json_object_get(body, "query"), *ts = json_object_get(body, "timespan");
        if (!json_is_string(q) || !json_string_length(q) ||
            (ts && !json_is_string(ts) && !json_is_null(ts))) {
            json_decref(body);
            answer_error(c, 400, "BadArgumentError",
                         "The request had some invalid properties: 'query' must be a non-empty string and "
                         "'timespan' an ISO-8601 duration or interval string.");
            return 0;
        }
        if (memchr(json_string_value(q), 0, json_string_length(q))) {
            json_decref(body);
            answer_error(c, 400, "BadArgumentError", "The query must not contain NUL characters.");
            return 0;
        }
        j->query = sb_strdup(json_string_value(q));
        j->timespan = json_is_string(ts) && json_string_length(ts) ? sb_strdup(json_string_value(ts)) : NULL;
        json_decref(body);
        return 1;
    }
    sb_buf v;
    sb_buf_init(&v);
    int n = sb_http_query_get(req->query, "query", 0, &v);
    if (n <= 0 || !v.len || memchr(v.data, 0, v.len) || !sb_utf8_valid(v.data, v.len)) {
        sb_buf_free(&v);
        answer_error(c, 400, "BadArgumentError",
                     "The request had some invalid properties: give ?query=<KQL>.");
        return 0;
    }
    j->query = sb_buf_steal(&v, NULL);
    if (sb_http_query_get(req->query, "timespan", 0, &v) > 0 && v.len)
        j->timespan = sb_buf_steal(&v, NULL);
    sb_buf_free(&v);
    return 1;
}

void sb_query_api_handle(sb_conn *c, sb_http_request *req) {
    sb_server *srv = c->srv;
    sb_buf collapsed;
    sb_buf_init(&collapsed);
    sb_url_path_collapse(req->path, &collapsed);
    char *id = NULL;
    job *j = NULL;
    if (!authorize(c, req))
        goto out;
    id = route_workspace(&collapsed);
    if (!id) {
        answer_error(c, 404, "PathNotFoundError", "The requested path does not exist");
        goto out;
    }
    if (req->method != HTTP_GET && req->method != HTTP_POST) {
        answer(c, 405, error_body("MethodNotAllowed", "Use GET or POST.", NULL), "Allow: GET, POST\r\n");
        goto out;
    }
    const char *name = workspace_name(srv, id);
    if (!name) {
        answer_error(c, 404, "WorkspaceNotFoundError", "The workspace could not be found");
        goto out;
    }
    j = sb_calloc(1, sizeof *j);
    parse_prefer(req, j);
    if (!read_arguments(c, req, j))
        goto out;
    if (in_flight >= MAX_IN_FLIGHT) {
        answer_error(c, 429, "TooManyRequests", "Too many queries are running; retry shortly.");
        goto out;
    }
    j->db_path = sb_asprintf("%s/workspaces/%s.db", srv->cfg.data_dir, name);
    j->conn = c;
    j->srv = srv;
    j->work.data = j;
    sb_conn_hold(c);
    if (uv_queue_work(srv->loop, &j->work, on_work, on_after_work) != 0) {
        answer_error(c, 500, "InternalServerError", "The query could not be scheduled.");
        sb_conn_release(c);
        goto out;
    }
    in_flight++;
    j = NULL; /* the after-work callback owns it */
out:
    if (j)
        job_free(j);
    sb_free(id);
    sb_buf_free(&collapsed);
}
