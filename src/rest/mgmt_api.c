/*
 * mgmt_api.c - the ARM-shaped management API; see mgmt_api.h for the routes.
 *
 * Paths: the request path is split into percent-decoded segments with empty
 * segments dropped (the Azure SDKs send "//subscriptions/..." when the
 * endpoint ends in '/'), the leading segments must equal the configured
 * resource id ignoring case (ARM ids are case-insensitive), and the rest
 * picks the route.  A '+' in a path is a plus, not a space.
 *
 * Order of checks: route classification (pure, no answer yet); auth (a
 * bearer JWT signed with an access key, audience = endpoint + request path,
 * like the data-plane REST API), so an anonymous caller learns nothing about
 * which paths exist; then 400/404 of the path, 405, api-version, 413, and the
 * operation.  Errors are ARM's shape {"error":{"code","message"}}.
 *
 * State: the current settings are read with sb_diag_current_settings(); a
 * write copies them, changes the copy and hands it to sb_diag_apply_settings()
 * (producers see it at once, the writer within a loop turn, and the writer
 * persists it).  The resource's properties.upstream (serverless upstream
 * templates) works the same way through sb_upstream_current() and
 * sb_upstream_apply() (upstream/dispatch.c persists it); a PATCH validates
 * every property it changes before applying any.  Nothing here keeps state
 * between requests.
 *
 * Activity log: every write that names a real operation (PUT or DELETE of a
 * diagnostic setting, PATCH of the resource) emits one SB_LOGT_ACTIVITY
 * record through sb_diag_emit(), whether it succeeded or failed (auth,
 * api-version and validation failures included):
 *   operationName  Microsoft.Insights/diagnosticSettings/write    PUT  .../diagnosticSettings/{name}
 *                  Microsoft.Insights/diagnosticSettings/delete   DELETE .../diagnosticSettings/{name}
 *                  Microsoft.SignalRService/SignalR/write         PATCH {resourceId}
 *   status         "Succeeded" (level Informational) or "Failed" (level Error)
 *   caller         the token's "nameid", else "sub", else "accessKey" (absent when auth failed)
 *   callerIpAddress the peer address
 *   properties     {"name","httpMethod","statusCode"[,"message" on failure]}
 * Reads are not recorded (Azure's activity log records writes only).
 *
 * Not here: the validation rules of a setting and the JSON shapes of
 * settings (diag/settings.c), token checks (auth/), the pipeline (diag/).
 * Long-running-operation answers (202 + Azure-AsyncOperation) are never used:
 * every change is complete when the answer is sent.
 */
#include "rest/mgmt_api.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "diag/diag.h"
#include "diag/names.h"
#include "diag/settings.h"
#include "limits/tier.h"
#include "net/http.h"
#include "server.h"
#include "upstream/dispatch.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_SEGMENTS 16 /* the longest route has 12 */
#define JSON_TYPE "application/json; charset=utf-8"

static const char *const signalr_versions[] = {"2024-03-01", "2023-02-01", "2022-02-01"};
static const char *const insights_versions[] = {"2021-05-01-preview", "2020-05-01-preview",
                                                "2017-05-01-preview"};

typedef enum route_kind {
    R_NONE = 0,
    R_RESOURCE,   /* {resourceId} */
    R_SETTINGS,   /* .../diagnosticSettings */
    R_SETTING,    /* .../diagnosticSettings/{name} */
    R_CATEGORIES, /* .../diagnosticSettingsCategories */
    R_CATEGORY,   /* .../diagnosticSettingsCategories/{name} */
} route_kind;

enum { M_GET = 1, M_HEAD = 2, M_PUT = 4, M_DELETE = 8, M_PATCH = 16 };

static const struct {
    unsigned methods;
    const char *allow;
} route_methods[] = {
    [R_RESOURCE] = {M_GET | M_HEAD | M_PATCH, "GET, HEAD, PATCH"},
    [R_SETTINGS] = {M_GET | M_HEAD, "GET, HEAD"},
    [R_SETTING] = {M_GET | M_HEAD | M_PUT | M_DELETE, "GET, HEAD, PUT, DELETE"},
    [R_CATEGORIES] = {M_GET | M_HEAD, "GET, HEAD"},
    [R_CATEGORY] = {M_GET | M_HEAD, "GET, HEAD"},
};

/* One request on its way through the checks. */
typedef struct mgmt_req {
    route_kind kind;
    unsigned method;
    sb_buf seg[MAX_SEGMENTS];
    size_t nseg;
    const char *name;    /* R_SETTING / R_CATEGORY: the decoded last segment */
    const char *op;      /* write operation name, or NULL for reads and non-routes */
    const char *op_text; /* its human-readable form (the record's message) */
    const char *caller;  /* after auth */
    /* the answer */
    int status;
    json_t *body;      /* success body (owned), NULL for none */
    const char *code;  /* error code; NULL on success */
    const char *allow; /* 405 */
    char message[512]; /* error message */
} mgmt_req;

static void fail(mgmt_req *m, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(mgmt_req *m, int status, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->message, sizeof m->message, fmt, ap);
    va_end(ap);
    size_t n = strlen(m->message); /* a quoted user string may have been cut mid-character */
    while (n && !sb_utf8_valid(m->message, n))
        m->message[--n] = '\0';
    m->status = status;
    m->code = code;
}

static void ok(mgmt_req *m, int status, json_t *body) {
    m->status = status;
    m->body = body;
    m->code = NULL;
}

static unsigned method_bit(enum http_method method) {
    switch (method) {
    case HTTP_GET:
        return M_GET;
    case HTTP_HEAD:
        return M_HEAD;
    case HTTP_PUT:
        return M_PUT;
    case HTTP_DELETE:
        return M_DELETE;
    case HTTP_PATCH:
        return M_PATCH;
    default:
        return 0;
    }
}

/* ---- routing ------------------------------------------------------------------------------------- */


static int seg_is(const sb_buf *s, const char *lit) {
    return s->len == strlen(lit) && strncasecmp(s->data, lit, s->len) == 0;
}

static void route(sb_server *srv, const sb_http_request *req, mgmt_req *m) {
    sb_buf rid[MAX_SEGMENTS];
    size_t nrid = 0;
    for (size_t i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_init(&rid[i]);
    m->method = method_bit(req->method);
    int rc = sb_url_path_split(req->path, m->seg, MAX_SEGMENTS, &m->nseg);
    int rid_rc =
        sb_url_path_split(sb_slice_make(srv->resource_id, strlen(srv->resource_id)), rid, MAX_SEGMENTS, &nrid);
    int match = rc == SB_OK && rid_rc == SB_OK && m->nseg >= nrid;
    for (size_t i = 0; match && i < nrid; i++)
        match = m->seg[i].len == rid[i].len && strncasecmp(m->seg[i].data, rid[i].data, rid[i].len) == 0;
    size_t rest = match ? m->nseg - nrid : 0;
    const sb_buf *s = match ? &m->seg[nrid] : NULL;
    if (rc == SB_EINVAL) {
        fail(m, 400, "InvalidRequestUri", "The request path is not valid: bad percent-encoding or text.");
    } else if (!match) {
        fail(m, 404, "ResourceNotFound",
             "The Resource 'Microsoft.SignalRService/SignalR/%s' under resource group "
             "'%s' was not found.",
             srv->cfg.resource_name, srv->cfg.resource_group);
        if (rc == SB_OK && m->nseg >= 8 && seg_is(&m->seg[0], "subscriptions"))
            fail(m, 404, "ResourceNotFound",
                 "The Resource '%s/%s/%s' under resource group '%s' was not found.", m->seg[5].data,
                 m->seg[6].data, m->seg[7].data, m->seg[3].data);
    } else if (rest == 0) {
        m->kind = R_RESOURCE;
    } else if ((rest == 3 || rest == 4) && seg_is(&s[0], "providers") &&
               seg_is(&s[1], "Microsoft.Insights") &&
               (seg_is(&s[2], "diagnosticSettings") || seg_is(&s[2], "diagnosticSettingsCategories"))) {
        int categories = seg_is(&s[2], "diagnosticSettingsCategories");
        m->kind =
            rest == 3 ? (categories ? R_CATEGORIES : R_SETTINGS) : (categories ? R_CATEGORY : R_SETTING);
        m->name = rest == 4 ? s[3].data : NULL;
    } else {
        fail(m, 404, "InvalidResourceType",
             "The resource type of the request path is not served for resource '%s'.",
             srv->cfg.resource_name);
    }
    if (m->kind == R_SETTING && m->method == M_PUT) {
        m->op = SB_OP_DIAG_SETTINGS_WRITE;
        m->op_text = "Create or update resource diagnostic setting";
    } else if (m->kind == R_SETTING && m->method == M_DELETE) {
        m->op = SB_OP_DIAG_SETTINGS_DELETE;
        m->op_text = "Delete resource diagnostic setting";
    } else if (m->kind == R_RESOURCE && m->method == M_PATCH) {
        m->op = SB_OP_SIGNALR_WRITE;
        m->op_text = "Update SignalR";
    }
    for (size_t i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_free(&rid[i]);
}

/* 1 when the api-version is acceptable for the route; otherwise the 400 is set. */
static int check_api_version(const sb_http_request *req, mgmt_req *m) {
    const char *const *versions = m->kind == R_RESOURCE ? signalr_versions : insights_versions;
    size_t nversions = m->kind == R_RESOURCE ? ARRAY_LEN(signalr_versions) : ARRAY_LEN(insights_versions);
    sb_buf v;
    sb_buf_init(&v);
    int n = sb_http_query_get(req->query, "api-version", 1, &v);
    int found = 0;
    for (size_t i = 0; n > 0 && i < nversions; i++)
        found |= strcmp(v.data, versions[i]) == 0;
    if (n <= 0 || !v.len) {
        fail(m, 400, "MissingApiVersionParameter",
             "The api-version query parameter (?api-version=) is required for all requests.");
    } else if (!found) {
        sb_buf list;
        sb_buf_init(&list);
        for (size_t i = 0; i < nversions; i++)
            sb_buf_appendf(&list, "%s'%s'", i ? ", " : "", versions[i]);
        fail(m, 400, "InvalidApiVersionParameter",
             "The api-version '%s' is invalid. The supported versions are %s.",
             sb_utf8_valid(v.data, v.len) && v.len < 64 ? v.data : "(unreadable)", list.data);
        sb_buf_free(&list);
    }
    sb_buf_free(&v);
    return found;
}

/* ---- answers ------------------------------------------------------------------------------------- */

static const sb_diag_settings *current(sb_server *srv, sb_diag_settings *fallback) {
    const sb_diag_settings *s = sb_diag_current_settings(srv);
    if (s)
        return s;
    sb_diag_settings_init(fallback);
    return fallback;
}

/* The endpoint's host (without port) and port (explicit, else the scheme's). */
static void endpoint_host(const char *endpoint, char *host, size_t hostlen, int *port) {
    const char *p = strstr(endpoint, "://");
    int https = p && strncasecmp(endpoint, "https", 5) == 0;
    p = p ? p + 3 : endpoint;
    const char *end = p + strcspn(p, "/?#");
    const char *colon = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        colon = rb && rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
    }
    const char *hend = colon ? colon : end;
    snprintf(host, hostlen, "%.*s", (int)(hend - p), p);
    *port = colon ? atoi(colon + 1) : https ? 443 : 80;
}

static json_t *resource_json(sb_server *srv, const sb_diag_settings *s) {
    char host[256];
    int public_port;
    endpoint_host(srv->endpoint ? srv->endpoint : "", host, sizeof host, &public_port);
    json_t *features = json_pack("[{s:s, s:s, s:{}}]", "flag", "ServiceMode", "value",
                                 srv->mode == SB_MODE_SERVERLESS ? "Serverless" : "Default", "properties");
    json_t *props =
        json_pack("{s:s, s:s, s:i, s:i, s:s, s:o, s:o}", "provisioningState", "Succeeded", "hostName", host,
                  "publicPort", public_port, "serverPort", srv->port, "externalIP", "127.0.0.1", "features",
                  features, "resourceLogConfiguration", sb_diag_log_config_to_arm(s));
    json_object_set_new(props, "upstream", sb_upstream_settings_to_json(sb_upstream_current(srv)));
    /* the sku reflects the configured tier and units, named as Azure names them */
    sb_tier tier = (sb_tier)srv->cfg.tier;
    const char *sku = tier == SB_TIER_FREE ? "Free_F1" : tier == SB_TIER_PREMIUM ? "Premium_P1" : "Standard_S1";
    const char *size = tier == SB_TIER_FREE ? "F1" : tier == SB_TIER_PREMIUM ? "P1" : "S1";
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:i}, s:o}", "id", srv->resource_id, "name",
                     srv->cfg.resource_name, "type", "Microsoft.SignalRService/SignalR", "kind", "SignalR",
                     "location", srv->cfg.location, "sku", "name", sku, "tier", sb_tier_name(tier), "size", size,
                     "capacity", (int)sb_tier_units(&srv->cfg), "properties", props);
}

static json_t *category_json(sb_server *srv, const char *name) {
    int logs = strcasecmp(name, SB_LOG_CATEGORY_ALLLOGS) == 0;
    if (!logs && strcasecmp(name, "AllMetrics") != 0)
        return NULL;
    const char *canonical = logs ? SB_LOG_CATEGORY_ALLLOGS : "AllMetrics";
    char *id = sb_asprintf("%s/providers/microsoft.insights/diagnosticSettingsCategories/%s",
                           srv->resource_id, canonical);
    json_t *groups = logs ? json_pack("[s, s]", "allLogs", "audit") : json_array();
    json_t *j = json_pack("{s:s, s:s, s:s, s:{s:s, s:o}}", "id", id, "type",
                          "Microsoft.Insights/diagnosticSettingsCategories", "name", canonical, "properties",
                          "categoryType", logs ? "Logs" : "Metrics", "categoryGroups", groups);
    sb_free(id);
    return j;
}

/* The request body as JSON; NULL with the 400 set. */
static json_t *parse_body(const sb_http_request *req, mgmt_req *m) {
    json_error_t jerr;
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
    if (!body)
        fail(m, 400, "InvalidRequestContent",
             "The request content was invalid and could not be deserialized: %s",
             sb_utf8_valid(jerr.text, strlen(jerr.text)) ? jerr.text : "not valid JSON.");
    return body;
}

static void get_resource(sb_server *srv, mgmt_req *m) {
    sb_diag_settings tmp;
    ok(m, 200, resource_json(srv, current(srv, &tmp)));
}

static void patch_resource(sb_server *srv, const sb_http_request *req, mgmt_req *m) {
    json_t *body = parse_body(req, m);
    if (!body)
        return;
    json_t *props = json_object_get(body, "properties");
    json_t *cfg = json_object_get(props, "resourceLogConfiguration");
    json_t *upstream = json_object_get(props, "upstream");
    sb_diag_settings tmp, next;
    sb_upstream_settings next_upstream;
    char err[512];
    sb_diag_settings_copy(&next, current(srv, &tmp));
    sb_upstream_settings_init(&next_upstream);
    if (!json_is_object(body)) {
        fail(m, 400, "InvalidRequestContent", "The request content must be a JSON object.");
    } else if (props && !json_is_null(props) && !json_is_object(props)) {
        fail(m, 400, "InvalidRequestContent", "The property 'properties' must be an object.");
    } else if (cfg && !json_is_null(cfg) &&
               sb_diag_log_config_from_arm(&next, cfg, err, sizeof err) != SB_OK) {
        fail(m, 400, "BadRequest", "%s", err);
    } else if (upstream && !json_is_null(upstream) &&
               sb_upstream_settings_from_json(&next_upstream, upstream, err, sizeof err) != SB_OK) {
        fail(m, 400, "BadRequest", "%s", err);
    } else {
        /* Other properties (tags, sku, features, ...) are not settable here and are ignored, as a PATCH
         * that changes nothing would be. */
        sb_diag_apply_settings(srv, &next);
        if (upstream && !json_is_null(upstream))
            sb_upstream_apply(srv, &next_upstream);
        ok(m, 200, resource_json(srv, &next));
    }
    sb_upstream_settings_free(&next_upstream);
    sb_diag_settings_free(&next);
    json_decref(body);
}

static void list_settings(sb_server *srv, mgmt_req *m) {
    sb_diag_settings tmp;
    const sb_diag_settings *s = current(srv, &tmp);
    json_t *value = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(value, sb_diag_setting_to_arm(&s->v[i], srv->resource_id));
    ok(m, 200, json_pack("{s:o}", "value", value));
}

static void get_setting(sb_server *srv, mgmt_req *m) {
    sb_diag_settings tmp;
    const sb_diag_settings *s = current(srv, &tmp);
    int i = sb_diag_settings_find(s, m->name);
    if (i < 0)
        fail(m, 404, "ResourceNotFound", "The diagnostic setting '%s' doesn't exist.", m->name);
    else
        ok(m, 200, sb_diag_setting_to_arm(&s->v[i], srv->resource_id));
}

static void put_setting(sb_server *srv, const sb_http_request *req, mgmt_req *m) {
    json_t *body = parse_body(req, m);
    if (!body)
        return;
    sb_diag_destinations dst = {srv->cfg.storage_accounts, srv->cfg.workspaces};
    sb_diag_setting d;
    char err[512];
    if (sb_diag_setting_from_arm(m->name, body, &dst, &d, err, sizeof err) != SB_OK) {
        fail(m, 400, "BadRequest", "%s", err);
    } else {
        sb_diag_settings tmp, next;
        sb_diag_settings_copy(&next, current(srv, &tmp));
        if (sb_diag_settings_put(&next, &d, err, sizeof err) != SB_OK) {
            fail(m, 400, "BadRequest", "%s", err);
        } else {
            sb_diag_apply_settings(srv, &next);
            ok(m, 200,
               sb_diag_setting_to_arm(&next.v[sb_diag_settings_find(&next, m->name)], srv->resource_id));
        }
        sb_diag_setting_free(&d);
        sb_diag_settings_free(&next);
    }
    json_decref(body);
}

static void delete_setting(sb_server *srv, mgmt_req *m) {
    sb_diag_settings tmp, next;
    sb_diag_settings_copy(&next, current(srv, &tmp));
    if (sb_diag_settings_remove(&next, m->name) == SB_ENOENT) {
        ok(m, 204, NULL);
    } else {
        sb_diag_apply_settings(srv, &next);
        ok(m, 200, NULL);
    }
    sb_diag_settings_free(&next);
}

static void get_categories(sb_server *srv, mgmt_req *m) {
    json_t *value = json_array();
    json_array_append_new(value, category_json(srv, SB_LOG_CATEGORY_ALLLOGS));
    json_array_append_new(value, category_json(srv, "AllMetrics"));
    ok(m, 200, json_pack("{s:o}", "value", value));
}

static void get_category(sb_server *srv, mgmt_req *m) {
    json_t *j = category_json(srv, m->name);
    if (!j)
        fail(m, 404, "ResourceNotFound", "The diagnostic settings category '%s' doesn't exist.", m->name);
    else
        ok(m, 200, j);
}

/* ---- glue ---------------------------------------------------------------------------------------- */

/* 1 when authorized (m->caller set, *claims owned by the caller); otherwise the answer is set. */
static int authorize(sb_server *srv, const sb_http_request *req, mgmt_req *m, json_t **claims) {
    sb_auth_result res;
    int rc = sb_auth_arm_request(srv, req, &res);
    if (rc == SB_OK) {
        *claims = res.claims;
        res.claims = NULL;
        const char *who = sb_jwt_claim_string(*claims, "nameid");
        if (!who || !*who)
            who = sb_jwt_claim_string(*claims, "sub");
        m->caller = who && *who ? who : "accessKey";
    } else {
        fail(m, res.status ? res.status : 401, "AuthenticationFailed", "%s", sb_auth_result_reason(&res));
    }
    sb_auth_result_free(&res);
    return rc == SB_OK;
}

static void record_activity(sb_server *srv, const sb_http_request *req, const sb_conn *c, const mgmt_req *m) {
    int succeeded = m->code == NULL;
    json_t *props =
        json_pack("{s:s, s:s, s:i}", "name", m->name ? m->name : srv->cfg.resource_name, "httpMethod",
                  req->method_name ? req->method_name : "", "statusCode", m->status);
    if (!succeeded)
        json_object_set_new(props, "message", json_string(m->message));
    char *text = json_dumps(props, JSON_COMPACT);
    sb_log_fields f = {
        .type = SB_LOGT_ACTIVITY,
        .level = succeeded ? SB_LEVEL_INFORMATIONAL : SB_LEVEL_ERROR,
        .operation_name = m->op,
        .message = m->op_text,
        .caller_ip = c->peer_ip,
        .caller = m->caller,
        .status = succeeded ? "Succeeded" : "Failed",
        .status_code = m->status,
        .properties = text,
    };
    sb_diag_emit(srv, &f);
    free(text);
    json_decref(props);
}

static void respond(sb_conn *c, mgmt_req *m) {
    sb_buf hdr;
    sb_buf_init(&hdr);
    json_t *body = m->body;
    if (m->code) {
        body = json_pack("{s:{s:s, s:s}}", "error", "code", m->code, "message", m->message);
        if (m->status == 401)
            sb_buf_appends(&hdr, "WWW-Authenticate: Bearer\r\n");
        if (m->status == 405)
            sb_buf_appendf(&hdr, "Allow: %s\r\n", m->allow);
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    sb_http_respond(c, m->status, JSON_TYPE, text, text ? strlen(text) : 0, hdr.len ? hdr.data : NULL);
    free(text);
    if (body != m->body)
        json_decref(body);
    sb_buf_free(&hdr);
}

void sb_mgmt_handle(sb_conn *c, sb_http_request *req) {
    sb_server *srv = c->srv;
    mgmt_req m;
    memset(&m, 0, sizeof m);
    for (size_t i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_init(&m.seg[i]);
    json_t *claims = NULL;
    route(srv, req, &m);
    if (!authorize(srv, req, &m, &claims)) {
        /* the answer is set */
    } else if (m.kind == R_NONE) {
        /* the 400/404 is set */
    } else if (!(route_methods[m.kind].methods & m.method)) {
        m.allow = route_methods[m.kind].allow;
        fail(&m, 405, "MethodNotAllowed", "The method '%s' is not allowed on this resource; allowed: %s.",
             req->method_name ? req->method_name : "?", m.allow);
    } else if (!check_api_version(req, &m)) {
        /* the 400 is set */
    } else if (req->body.len > (size_t)srv->cfg.max_rest_body_bytes) {
        fail(&m, 413, "RequestEntityTooLarge", "The request content is larger than %ld bytes.",
             srv->cfg.max_rest_body_bytes);
    } else {
        switch (m.kind) {
        case R_RESOURCE:
            if (m.method == M_PATCH)
                patch_resource(srv, req, &m);
            else
                get_resource(srv, &m);
            break;
        case R_SETTINGS:
            list_settings(srv, &m);
            break;
        case R_SETTING:
            if (m.method == M_PUT)
                put_setting(srv, req, &m);
            else if (m.method == M_DELETE)
                delete_setting(srv, &m);
            else
                get_setting(srv, &m);
            break;
        case R_CATEGORIES:
            get_categories(srv, &m);
            break;
        case R_CATEGORY:
            get_category(srv, &m);
            break;
        case R_NONE:
            break;
        }
    }
    if (m.op)
        record_activity(srv, req, c, &m);
    respond(c, &m);
    json_decref(m.body);
    json_decref(claims);
    for (size_t i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_free(&m.seg[i]);
}
