/*
 * rest_api.c - the data-plane REST API; see rest_api.h.
 *
 * One table, `routes`, lists every API: a path pattern below /api/ ({h} hub,
 * {g} group, {u} user, {c} connection capture one percent-decoded segment),
 * the methods it answers, the router operation, the success status (v1 and
 * 2022-06-01 differ: 202 vs 200/204) and which query parameters it reads.
 * Several rows may share a pattern with different methods; a path that
 * matches some row but none for the method is 405 with their union in Allow.
 * Literal segments compare case-insensitively (as ASP.NET routing does) and
 * after decoding, so ":send" and "%3Asend" are the same.
 *
 * Order of checks in sb_rest_handle(): route; health answers without auth
 * (load balancers probe it); otherwise auth comes before any other answer, so
 * an anonymous caller learns nothing about which paths exist; then the
 * routing error (400/404/405), the body size (413), the operation.
 *
 * Error answers (all but auth): JSON {"code","level","message"} where code is
 * the x-ms-error-code header value sent with it and level its first dotted
 * part (Error / Warning / Info), shaped like the service's ServiceResponse.
 * The Management SDK matches the header on 404s to tell "not there" (an
 * expected answer) from "wrong endpoint", so those codes are exactly the
 * service's.  (net/http.c drops the body of HEAD answers.)  Auth failures are
 * text/plain with the auth module's message, identical on every endpoint.
 *
 * Hubs: reads, sends and closes use sb_router_find_hub() and never create a
 * hub (a REST caller cannot make the service allocate a hub per name it
 * invents); only adding a user to a group creates one, because that
 * membership must outlive the request and apply to the user's future
 * connections.
 *
 * Not here: group-name rules beyond length and blankness (the router accepts
 * any string); whitespace means ASCII whitespace.
 */
#include "rest/rest_api.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "diag/events.h"
#include "diag/names.h"
#include "hub/hub.h"
#include "hub/msg.h"
#include "limits/tier.h"
#include "net/http.h"
#include "server.h"
#include "signalr/hubproto.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_PUT = 8, M_DELETE = 16, M_READ = M_GET | M_HEAD };
static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE"}; /* bit order */

enum { Q_EXCLUDED = 1, Q_REASON = 2, Q_TTL = 4, Q_TOKEN = 8 };

typedef struct route_def {
    const char *pattern;
    unsigned char methods;
    unsigned char op;
    short status;
    unsigned char query;
} route_def;

static const route_def routes[] = {
    /* v1: no api-version */
    {"v1/health", M_READ, SB_REST_OP_HEALTH, 200, 0},
    {"v1/hubs/{h}", M_POST, SB_REST_OP_SEND_HUB, 202, Q_EXCLUDED},
    {"v1/hubs/{h}/users/{u}", M_POST, SB_REST_OP_SEND_USER, 202, 0},
    {"v1/hubs/{h}/users/{u}", M_READ, SB_REST_OP_USER_EXISTS, 200, 0},
    {"v1/hubs/{h}/users/{u}/groups", M_DELETE, SB_REST_OP_USER_LEAVE_ALL, 200, 0},
    {"v1/hubs/{h}/connections/{c}", M_POST, SB_REST_OP_SEND_CONNECTION, 202, 0},
    {"v1/hubs/{h}/connections/{c}", M_READ, SB_REST_OP_CONNECTION_EXISTS, 200, 0},
    {"v1/hubs/{h}/connections/{c}", M_DELETE, SB_REST_OP_CLOSE_CONNECTION, 202, Q_REASON},
    {"v1/hubs/{h}/groups/{g}", M_POST, SB_REST_OP_SEND_GROUP, 202, Q_EXCLUDED},
    {"v1/hubs/{h}/groups/{g}", M_READ, SB_REST_OP_GROUP_EXISTS, 200, 0},
    {"v1/hubs/{h}/groups/{g}/connections/{c}", M_PUT, SB_REST_OP_GROUP_ADD_CONNECTION, 200, 0},
    {"v1/hubs/{h}/groups/{g}/connections/{c}", M_DELETE, SB_REST_OP_GROUP_REMOVE_CONNECTION, 200, 0},
    {"v1/hubs/{h}/groups/{g}/users/{u}", M_READ, SB_REST_OP_USER_IN_GROUP, 200, 0},
    {"v1/hubs/{h}/groups/{g}/users/{u}", M_PUT, SB_REST_OP_USER_GROUP_ADD, 202, Q_TTL},
    {"v1/hubs/{h}/groups/{g}/users/{u}", M_DELETE, SB_REST_OP_USER_GROUP_REMOVE, 202, 0},
    /* 2022-06-01 family: ?api-version= required (except health), optional ?application= */
    {"health", M_READ, SB_REST_OP_HEALTH, 200, 0},
    {"hubs/{h}/:send", M_POST, SB_REST_OP_SEND_HUB, 202, Q_EXCLUDED},
    {"hubs/{h}/:generateToken", M_POST, SB_REST_OP_GENERATE_TOKEN, 200, Q_TOKEN},
    {"hubs/{h}/:closeConnections", M_POST, SB_REST_OP_CLOSE_HUB, 204, Q_EXCLUDED | Q_REASON},
    {"hubs/{h}/users/{u}/:send", M_POST, SB_REST_OP_SEND_USER, 202, 0},
    {"hubs/{h}/users/{u}/:closeConnections", M_POST, SB_REST_OP_CLOSE_USER, 204, Q_EXCLUDED | Q_REASON},
    {"hubs/{h}/users/{u}", M_READ, SB_REST_OP_USER_EXISTS, 200, 0},
    {"hubs/{h}/users/{u}/groups", M_DELETE, SB_REST_OP_USER_LEAVE_ALL, 204, 0},
    {"hubs/{h}/users/{u}/groups/{g}", M_READ, SB_REST_OP_USER_IN_GROUP, 200, 0},
    {"hubs/{h}/users/{u}/groups/{g}", M_PUT, SB_REST_OP_USER_GROUP_ADD, 200, Q_TTL},
    {"hubs/{h}/users/{u}/groups/{g}", M_DELETE, SB_REST_OP_USER_GROUP_REMOVE, 204, 0},
    {"hubs/{h}/groups/{g}/users/{u}", M_READ, SB_REST_OP_USER_IN_GROUP, 200, 0},
    {"hubs/{h}/groups/{g}/users/{u}", M_PUT, SB_REST_OP_USER_GROUP_ADD, 200, Q_TTL},
    {"hubs/{h}/groups/{g}/users/{u}", M_DELETE, SB_REST_OP_USER_GROUP_REMOVE, 204, 0},
    {"hubs/{h}/connections/{c}/:send", M_POST, SB_REST_OP_SEND_CONNECTION, 202, 0},
    {"hubs/{h}/connections/{c}", M_READ, SB_REST_OP_CONNECTION_EXISTS, 200, 0},
    {"hubs/{h}/connections/{c}", M_DELETE, SB_REST_OP_CLOSE_CONNECTION, 200, Q_REASON},
    {"hubs/{h}/connections/{c}/groups", M_DELETE, SB_REST_OP_CONNECTION_LEAVE_ALL, 200, 0},
    {"hubs/{h}/connections/{c}/groups/{g}", M_PUT, SB_REST_OP_GROUP_ADD_CONNECTION, 200, 0},
    {"hubs/{h}/connections/{c}/groups/{g}", M_DELETE, SB_REST_OP_GROUP_REMOVE_CONNECTION, 200, 0},
    {"hubs/{h}/groups/{g}/connections/{c}", M_PUT, SB_REST_OP_GROUP_ADD_CONNECTION, 200, 0},
    {"hubs/{h}/groups/{g}/connections/{c}", M_DELETE, SB_REST_OP_GROUP_REMOVE_CONNECTION, 200, 0},
    {"hubs/{h}/groups/{g}/:send", M_POST, SB_REST_OP_SEND_GROUP, 202, Q_EXCLUDED},
    {"hubs/{h}/groups/{g}/:closeConnections", M_POST, SB_REST_OP_CLOSE_GROUP, 204, Q_EXCLUDED | Q_REASON},
    {"hubs/{h}/groups/{g}", M_READ, SB_REST_OP_GROUP_EXISTS, 200, 0},
};

#define MAX_SEGMENTS 8 /* below /api/; the longest pattern has 7 */

static const char *const api_versions[] = {"2022-06-01", "2022-11-01", "2023-07-01", "2024-01-01",
                                           "2024-12-01"};

/* The 404 of an operation whose target may be missing (x-ms-error-code, message). */
static const struct {
    const char *code, *message;
} op_missing[SB_REST_OP_COUNT] = {
    [SB_REST_OP_CONNECTION_EXISTS] = {"Warning.Connection.NotExisted", "The connection does not exist."},
    [SB_REST_OP_CLOSE_CONNECTION] = {"Warning.Connection.NotExisted", "The connection does not exist."},
    [SB_REST_OP_GROUP_REMOVE_CONNECTION] = {"Warning.Connection.NotExisted",
                                            "The connection does not exist."},
    [SB_REST_OP_GROUP_ADD_CONNECTION] = {"Error.Connection.NotExisted", "The connection does not exist."},
    [SB_REST_OP_USER_EXISTS] = {"Warning.User.NotExisted", "The user has no connection."},
    [SB_REST_OP_GROUP_EXISTS] = {"Warning.Group.NotExisted", "The group has no connection."},
    [SB_REST_OP_USER_IN_GROUP] = {"Info.User.NotInGroup", "The user is not in the group."},
};

/* ---- routing ------------------------------------------------------------- */

static int fail(sb_rest_route_t *out, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(sb_rest_route_t *out, int status, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof out->message, fmt, ap);
    va_end(ap);
    out->op = SB_REST_OP_NONE;
    out->status = status;
    out->error_code = code;
    return status == 404 ? SB_ENOENT : status == 405 ? SB_EPERM : SB_EINVAL;
}

static int invalid(sb_rest_route_t *out, const char *message) {
    return fail(out, 400, "Error.InvalidArgument", "%s", message);
}

static unsigned method_bit(const char *method) {
    for (size_t i = 0; method && i < ARRAY_LEN(method_names); i++)
        if (strcmp(method, method_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* A decoded value the router can take as a C string. */
static int text_ok(const char *s, size_t n) {
    return !memchr(s, 0, n) && sb_utf8_valid(s, n);
}

/* Split the path below /api/ into decoded segments.  Tolerates one trailing '/'. */
static int split_path(sb_slice path, sb_buf seg[MAX_SEGMENTS], size_t *nseg, sb_rest_route_t *out) {
    const char *end = path.base + path.len;
    if (path.len > 1 && end[-1] == '/')
        end--;
    if (!path.len || path.base[0] != '/')
        return fail(out, 404, "Error.NotFound", "No API matches the request path.");
    const char *p = path.base + 1;
    for (int first = 1;; first = 0) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (!e)
            e = end;
        sb_slice raw = sb_slice_make(p, (size_t)(e - p));
        if (!raw.len || (first && !sb_slice_ieq(raw, "api")) || (!first && *nseg == MAX_SEGMENTS))
            return fail(out, 404, "Error.NotFound", "No API matches the request path.");
        if (!first) {
            if (sb_url_decode(raw, 0, &seg[*nseg]) != SB_OK)
                return invalid(out, "Invalid percent-encoding in the request path.");
            (*nseg)++;
        }
        if (e == end)
            return SB_OK;
        p = e + 1;
    }
}

static int pattern_matches(const char *pat, const sb_buf seg[], size_t nseg) {
    size_t i = 0;
    for (const char *p = pat;; p++) {
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (i == nseg || (*p != '{' && !(seg[i].len == n && strncasecmp(seg[i].data, p, n) == 0)))
            return 0;
        i++;
        if (!*e)
            return i == nseg;
        p = e;
    }
}

/* Next parameter of *q named `name` (ASCII case-insensitive, like ASP.NET binding): its decoded
 * value in v (never NULL data) and 1; 0 when there is none left; SB_EINVAL on a bad escape. */
static int query_next(sb_slice *q, const char *name, sb_buf *v) {
    size_t nlen = strlen(name);
    while (q->len) {
        char *amp = memchr(q->base, '&', q->len);
        sb_slice pair = sb_slice_make(q->base, amp ? (size_t)(amp - q->base) : q->len);
        size_t skip = pair.len + (amp ? 1 : 0);
        q->base += skip;
        q->len -= skip;
        char *eq = memchr(pair.base, '=', pair.len);
        size_t klen = eq ? (size_t)(eq - pair.base) : pair.len;
        if (klen != nlen || strncasecmp(pair.base, name, nlen) != 0)
            continue;
        sb_buf_reset(v);
        sb_slice val = eq ? sb_slice_make(eq + 1, pair.len - klen - 1) : sb_slice_make(pair.base, 0);
        if (sb_url_decode(val, 1, v) != SB_OK)
            return SB_EINVAL;
        sb_buf_append(v, "", 0);
        return 1;
    }
    return 0;
}

static int query_first(sb_slice q, const char *name, sb_buf *v) {
    return query_next(&q, name, v);
}

static int check_api_version(sb_slice query, sb_buf *v, sb_rest_route_t *out) {
    int found = query_first(query, "api-version", v);
    if (found < 0)
        return invalid(out, "Invalid percent-encoding in the query.");
    if (!found || !v->len)
        return invalid(out, "The api-version query parameter (?api-version=) is required for all requests.");
    for (size_t i = 0; i < ARRAY_LEN(api_versions); i++)
        if (strcmp(v->data, api_versions[i]) == 0)
            return SB_OK;
    /* echo the value only when it is plainly a version string (it ends up in a JSON body and logs) */
    int plain = v->len <= 32 && strspn(v->data, "0123456789-.abcdefghijklmnopqrstuvwxyz") == v->len;
    return fail(out, 400, "Error.InvalidArgument",
                "The api-version '%s' is not supported. Supported versions: 2022-06-01, 2022-11-01, "
                "2023-07-01, 2024-01-01, 2024-12-01.",
                plain ? v->data : "(invalid)");
}

/* .NET counts UTF-16 units: a 4-byte UTF-8 sequence is two. */
static int group_name_valid(const char *s) {
    size_t units = 0;
    int blank = 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80)
            units += *p >= 0xF0 ? 2 : 1;
        if (!(*p == ' ' || (*p >= '\t' && *p <= '\r')))
            blank = 0;
    }
    return units >= 1 && units <= 1024 && !blank;
}

static int parse_ttl(const sb_buf *v, long *ttl) {
    if (!v->len || v->len > 10 || strspn(v->data, "0123456789") != v->len)
        return SB_EINVAL;
    long long n = strtoll(v->data, NULL, 10);
    if (n > INT32_MAX)
        return SB_EINVAL;
    *ttl = (long)n;
    return SB_OK;
}

/* minutesToExpire: a whole number of minutes, 1 to a year (the token's exp must stay far from overflow). */
static int parse_minutes(const sb_buf *v, long *minutes) {
    if (!v->len || v->len > 6 || strspn(v->data, "0123456789") != v->len)
        return SB_EINVAL;
    long n = strtol(v->data, NULL, 10);
    if (n < 1 || n > 525600)
        return SB_EINVAL;
    *minutes = n;
    return SB_OK;
}

/* Copy the captured segments of the matched pattern into out. */
static int capture(const char *pat, const sb_buf seg[], sb_rest_route_t *out) {
    size_t i = 0;
    for (const char *p = pat; *p; i++) {
        const char *e = strchrnul(p, '/');
        if (*p == '{') {
            static const char *const what[] = {"hub name", "group name", "user id", "connection id"};
            int k = p[1] == 'h' ? 0 : p[1] == 'g' ? 1 : p[1] == 'u' ? 2 : 3;
            char **dst[] = {&out->hub, &out->group, &out->user, &out->connection};
            if (!text_ok(seg[i].data, seg[i].len))
                return fail(out, 400, "Error.InvalidArgument", "Invalid %s.", what[k]);
            *dst[k] = sb_strndup(seg[i].data, seg[i].len);
        }
        p = *e ? e + 1 : e;
    }
    return SB_OK;
}

static int read_query(const route_def *rd, sb_slice query, sb_buf *v, sb_rest_route_t *out) {
    int found;
    if (rd->query & Q_EXCLUDED) {
        sb_slice q = query;
        while ((found = query_next(&q, "excluded", v)) > 0) {
            if (!text_ok(v->data, v->len))
                return invalid(out, "Invalid excluded connection id.");
            if (!v->len)
                continue;
            out->excluded = sb_realloc(out->excluded, (out->nexcluded + 1) * sizeof *out->excluded);
            out->excluded[out->nexcluded++] = sb_strndup(v->data, v->len);
        }
        if (found < 0)
            return invalid(out, "Invalid percent-encoding in the query.");
    }
    if (rd->query & Q_REASON) {
        found = query_first(query, "reason", v);
        if (found < 0 || (found && !text_ok(v->data, v->len)))
            return invalid(out, "Invalid reason.");
        if (found)
            out->reason = sb_strndup(v->data, v->len);
    }
    if (rd->query & Q_TTL) {
        found = query_first(query, "ttl", v);
        if (found < 0 || (found && v->len && parse_ttl(v, &out->ttl) != SB_OK))
            return invalid(out, "Invalid ttl: expected a whole number of seconds, 0 or more.");
    }
    if (rd->query & Q_TOKEN) {
        found = query_first(query, "userId", v);
        if (found < 0 || (found && !text_ok(v->data, v->len)))
            return invalid(out, "Invalid userId.");
        if (found && v->len)
            out->user = sb_strndup(v->data, v->len);
        found = query_first(query, "minutesToExpire", v);
        if (found < 0 || (found && v->len && parse_minutes(v, &out->minutes) != SB_OK))
            return invalid(out, "Invalid minutesToExpire: expected a whole number of minutes from 1 to 525600.");
    }
    return SB_OK;
}

static int route_matched(const route_def *rd, const sb_buf seg[], sb_slice query, sb_rest_route_t *out) {
    sb_buf v;
    sb_buf_init(&v);
    out->op = (sb_rest_op)rd->op;
    out->status = rd->status;
    out->version = strncmp(rd->pattern, "v1/", 3) == 0 ? 1 : 2;
    int rc = capture(rd->pattern, seg, out);
    if (rc == SB_OK && out->version == 2 && out->op != SB_REST_OP_HEALTH)
        rc = check_api_version(query, &v, out);
    if (rc == SB_OK && out->op == SB_REST_OP_GENERATE_TOKEN && strcmp(v.data, "2022-06-01") == 0)
        rc = fail(out, 404, "Error.NotFound", "No API matches the request path in api-version 2022-06-01.");
    if (rc == SB_OK && out->hub && !sb_hub_name_valid(out->hub))
        rc = invalid(out, "Invalid hub name.");
    if (rc == SB_OK && out->hub && out->version == 2) {
        int found = query_first(query, "application", &v);
        if (found < 0 || (found && v.len && !sb_hub_name_valid(v.data))) {
            rc = invalid(out, "Invalid application name.");
        } else if (found && v.len) {
            char *prefixed = sb_asprintf("%s_%s", v.data, out->hub);
            sb_free(out->hub);
            out->hub = prefixed;
            if (!sb_hub_name_valid(prefixed)) /* the router keys hubs by at most 128 characters */
                rc = invalid(out, "The application and hub names together are longer than 128 characters.");
        }
    }
    if (rc == SB_OK && out->group && !group_name_valid(out->group))
        rc = invalid(out, "Invalid group name: it must be 1-1024 characters and not only whitespace.");
    if (rc == SB_OK)
        rc = read_query(rd, query, &v, out);
    sb_buf_free(&v);
    return rc;
}

int sb_rest_route(const char *method, sb_slice path, sb_slice query, sb_rest_route_t *out) {
    memset(out, 0, sizeof *out);
    out->ttl = -1;
    out->minutes = 60;
    sb_buf seg[MAX_SEGMENTS];
    size_t nseg = 0;
    for (size_t i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_init(&seg[i]);

    int rc = split_path(path, seg, &nseg, out);
    if (rc == SB_OK) {
        unsigned want = method_bit(method), allowed = 0;
        const route_def *hit = NULL;
        for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
            if (!pattern_matches(routes[i].pattern, seg, nseg))
                continue;
            allowed |= routes[i].methods;
            if (!hit && (routes[i].methods & want))
                hit = &routes[i];
        }
        if (hit) {
            rc = route_matched(hit, seg, query, out);
        } else if (!allowed) {
            rc = fail(out, 404, "Error.NotFound", "No API matches the request path.");
        } else {
            for (size_t i = 0, n = 0; i < ARRAY_LEN(method_names); i++)
                if (allowed & (1u << i))
                    n += (size_t)snprintf(out->allow + n, sizeof out->allow - n, "%s%s", n ? ", " : "",
                                          method_names[i]);
            rc = fail(out, 405, "Error.MethodNotAllowed", "The method is not allowed on this path.");
        }
    }
    for (size_t i = 0; i < MAX_SEGMENTS; i++)
        sb_buf_free(&seg[i]);
    return rc;
}

void sb_rest_route_free(sb_rest_route_t *r) {
    sb_free(r->hub);
    sb_free(r->group);
    sb_free(r->user);
    sb_free(r->connection);
    sb_free(r->reason);
    for (size_t i = 0; i < r->nexcluded; i++)
        sb_free(r->excluded[i]);
    sb_free(r->excluded);
    r->hub = r->group = r->user = r->connection = r->reason = NULL;
    r->excluded = NULL;
    r->nexcluded = 0;
}

/* ---- send bodies ----------------------------------------------------------- */

static int send_invalid(char *err, size_t errlen, const char *message) {
    snprintf(err, errlen, "%s", message);
    return SB_EINVAL;
}

/* Media type of a Content-Type value, parameters and case ignored. */
static int media_type_is(sb_slice ct, const char *type) {
    size_t n = 0;
    while (n < ct.len && ct.base[n] != ';')
        n++;
    while (n && (ct.base[n - 1] == ' ' || ct.base[n - 1] == '\t'))
        n--;
    return sb_slice_ieq(sb_slice_make(ct.base, n), type);
}

static int parse_json_body(sb_slice body, sb_rest_send *out, char *err, size_t errlen) {
    if (!body.len)
        return send_invalid(err, errlen, "The request body must be a JSON object.");
    json_error_t je;
    out->body = json_loadb(body.base, body.len, 0, &je);
    if (!out->body) {
        snprintf(err, errlen, "The request body is not valid JSON: %s", je.text);
        return SB_EINVAL;
    }
    if (!json_is_object(out->body))
        return send_invalid(err, errlen, "The request body must be a JSON object.");
    /* the Management SDK writes PascalCase, the docs camelCase */
    json_t *target = NULL, *args = NULL, *v;
    const char *key;
    json_object_foreach(out->body, key, v) {
        if (!target && strcasecmp(key, "target") == 0)
            target = v;
        else if (!args && strcasecmp(key, "arguments") == 0)
            args = v;
    }
    if (!json_is_string(target) || !json_string_length(target))
        return send_invalid(err, errlen, "The 'target' field is required.");
    if (args && !json_is_null(args) && !json_is_array(args))
        return send_invalid(err, errlen, "The 'arguments' field must be an array.");
    out->target = json_string_value(target);
    out->arguments = json_is_array(args) ? json_incref(args) : json_array();
    return SB_OK;
}

/* Just the MessagePack the binary body uses: a map of str/bin to str/bin.  Declared lengths are
 * checked against the bytes present before anything is read, so no input can over-read. */
typedef struct mp_cursor {
    const uint8_t *p, *end;
} mp_cursor;

static int mp_be(mp_cursor *c, int nbytes, size_t *v) {
    if (c->end - c->p < nbytes)
        return 0;
    size_t x = 0;
    while (nbytes--)
        x = x << 8 | *c->p++;
    *v = x;
    return 1;
}

static int mp_map(mp_cursor *c, size_t *n) {
    if (c->p == c->end)
        return 0;
    uint8_t b = *c->p++;
    if ((b & 0xF0) == 0x80) {
        *n = b & 0x0F;
        return 1;
    }
    return b == 0xDE ? mp_be(c, 2, n) : b == 0xDF ? mp_be(c, 4, n) : 0;
}

static int mp_bytes(mp_cursor *c, sb_slice *s) {
    if (c->p == c->end)
        return 0;
    uint8_t b = *c->p++;
    /* str8/bin8, str16/bin16, str32/bin32: big-endian length of 1, 2 or 4 bytes */
    int width = b == 0xD9 || b == 0xC4 ? 1 : b == 0xDA || b == 0xC5 ? 2 : b == 0xDB || b == 0xC6 ? 4 : 0;
    size_t n;
    if ((b & 0xE0) == 0xA0)
        n = b & 0x1F;
    else if (!width || !mp_be(c, width, &n))
        return 0;
    if ((size_t)(c->end - c->p) < n)
        return 0;
    *s = sb_slice_make(c->p, n);
    c->p += n;
    return 1;
}

static int parse_binary_body(sb_slice body, sb_rest_send *out, char *err, size_t errlen) {
    static const char shape[] = "The binary body must be a MessagePack map of protocol name to payload.";
    mp_cursor c = {(const uint8_t *)body.base, (const uint8_t *)body.base + body.len};
    size_t n;
    if (!mp_map(&c, &n))
        return send_invalid(err, errlen, shape);
    for (size_t i = 0; i < n; i++) {
        sb_slice k, v;
        if (!mp_bytes(&c, &k) || !mp_bytes(&c, &v))
            return send_invalid(err, errlen, shape);
        if (sb_slice_ieq(k, "json"))
            out->json_payload = v;
        else if (sb_slice_ieq(k, "messagepack"))
            out->msgpack_payload = v;
        /* other protocol names: no client here speaks them */
    }
    if (c.p != c.end)
        return send_invalid(err, errlen, shape);
    if (!out->json_payload.base && !out->msgpack_payload.base)
        return send_invalid(err, errlen, "The binary body has neither a 'json' nor a 'messagepack' payload.");
    /* a badly framed payload would desynchronise every client stream it is written to */
    sb_slice j = out->json_payload, m = out->msgpack_payload;
    if (j.base && (j.len < 2 || j.base[j.len - 1] != 0x1E))
        return send_invalid(err, errlen, "The 'json' payload must be one message ending with 0x1E.");
    size_t len, nb;
    if (m.base &&
        (sb_varint_read((const uint8_t *)m.base, m.len, &len, &nb) != SB_OK || !len || nb + len != m.len))
        return send_invalid(err, errlen, "The 'messagepack' payload must be one length-prefixed message.");
    return SB_OK;
}

int sb_rest_parse_send(sb_slice content_type, sb_slice body, sb_rest_send *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (content_type.base && media_type_is(content_type, "application/octet-stream"))
        return parse_binary_body(body, out, err, errlen);
    return parse_json_body(body, out, err, errlen);
}

void sb_rest_send_free(sb_rest_send *s) {
    if (s->arguments)
        json_decref(s->arguments);
    if (s->body)
        json_decref(s->body);
    memset(s, 0, sizeof *s);
}

/* ---- answering ------------------------------------------------------------- */

static void respond_empty(sb_conn *c, int status) {
    sb_http_respond(c, status, NULL, NULL, 0, NULL);
}

/* The HTTP layer drops the body of an answer to HEAD and keeps its Content-Length. */
static void respond_error(sb_conn *c, int status, const char *code, const char *message, const char *allow) {
    sb_buf hdr;
    sb_buf_init(&hdr);
    sb_buf_appendf(&hdr, "x-ms-error-code: %s\r\n", code);
    if (allow && *allow)
        sb_buf_appendf(&hdr, "Allow: %s\r\n", allow);
    const char *dot = strchr(code, '.');
    json_t *msg = json_string(message); /* NULL if a parser's message is not UTF-8 */
    json_t *j =
        json_pack("{s:s, s:s%, s:o}", "code", code, "level", code, dot ? (size_t)(dot - code) : strlen(code),
                  "message", msg ? msg : json_string("The request is invalid."));
    char *text = json_dumps(j, JSON_COMPACT);
    sb_http_respond(c, status, "application/json; charset=utf-8", text, strlen(text), hdr.data);
    sb_free(text);
    json_decref(j);
    sb_buf_free(&hdr);
}

/* Audience: this endpoint + the request path; the query is ignored (the Management SDK signs it). */
static int authorize(sb_conn *c, const sb_http_request *req) {
    sb_server *srv = c->srv;
    char *aud = sb_asprintf("%s%.*s", srv->endpoint, (int)req->path.len, req->path.base);
    const char *const auds[] = {aud};
    sb_auth_result res;
    int rc = sb_auth_request(srv, req, 0, auds, 1, 1, &res);
    if (rc != SB_OK) {
        int status = res.status ? res.status : 401;
        sb_http_respond(c, status, "text/plain; charset=utf-8", res.message.data, res.message.len,
                        status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL);
    }
    sb_auth_result_free(&res);
    sb_free(aud);
    return rc == SB_OK;
}

/* Answers 400 itself and returns 0 when the body is unusable, and 429 when the tier's message quota is used
 * up. */
static int deliver(sb_conn *c, const sb_http_request *req, const sb_rest_route_t *rt, sb_hub *hub) {
    char err[256];
    sb_rest_send s;
    sb_slice body = sb_slice_make(req->body.data, req->body.len);
    if (sb_rest_parse_send(sb_http_header_get(req, "Content-Type"), body, &s, err, sizeof err) != SB_OK) {
        respond_error(c, 400, "Error.InvalidArgument", err, NULL);
        sb_rest_send_free(&s);
        return 0;
    }
    if (!sb_tier_message_allowed(c->srv, 1)) { /* Free tier: the day's message quota is used up */
        sb_log_message_throttled(c->srv, c->peer_ip, rt->hub, SB_LOG_CONNECTION_TYPE_SERVER, NULL);
        respond_error(c, 429, "Error.Throttled.MessageCountReachesLimit", SB_MSG_MESSAGE_COUNT_REACHES_LIMIT,
                      NULL);
        sb_rest_send_free(&s);
        return 0;
    }
    if (hub) {
        sb_msg m;
        if (s.body)
            sb_msg_init_invocation(&m, s.target, s.arguments);
        else
            sb_msg_init_payloads(&m, s.json_payload.base, s.json_payload.len, s.msgpack_payload.base,
                                 s.msgpack_payload.len);
        /* the Management SDK's EnableMessageTracing stamps REST sends with this header; the id then
         * follows the message into the messaging logs like an app server's tracing id */
        sb_slice tid = sb_http_header_get(req, "X-ASRS-Message-Tracing-Id");
        if (tid.base && tid.len && tid.len < 21) {
            char num[24];
            memcpy(num, tid.base, tid.len);
            num[tid.len] = '\0';
            char *end;
            unsigned long long v = strtoull(num, &end, 10);
            if (!*end && num[0] != '-')
                m.tracing_id = v;
        }
        sb_exclude ex = {(const char *const *)rt->excluded, rt->nexcluded};
        if (rt->op == SB_REST_OP_SEND_HUB)
            sb_router_broadcast(hub, &m, &ex);
        else if (rt->op == SB_REST_OP_SEND_USER)
            sb_router_send_user(hub, rt->user, &m);
        else if (rt->op == SB_REST_OP_SEND_CONNECTION)
            sb_router_send_connection(hub, rt->connection, &m);
        else
            sb_router_send_group(hub, rt->group, &m, &ex);
        sb_msg_release(&m);
    }
    sb_rest_send_free(&s);
    return 1;
}

/* :generateToken: the client access token an app's negotiate endpoint would hand out for this hub (audience
 * {endpoint}/client/?hub=<hub>, lifetime minutesToExpire, the user id as nameid), signed with the primary key. */
static void generate_token(sb_conn *c, const sb_rest_route_t *rt) {
    sb_server *srv = c->srv;
    const char *key = srv->access_keys[0];
    json_int_t now = (json_int_t)time(NULL);
    char *aud = sb_asprintf("%s/client/?hub=%s", srv->endpoint, rt->hub);
    json_t *claims = json_pack("{s:s, s:I, s:I, s:I}", "aud", aud, "iat", now, "nbf", now, "exp",
                               now + (json_int_t)rt->minutes * 60);
    sb_free(aud);
    if (rt->user)
        json_object_set_new(claims, "nameid", json_string(rt->user));
    char *token = NULL;
    int rc = key ? sb_jwt_sign("HS256", key, strlen(key), claims, &token) : SB_EINVAL;
    json_decref(claims);
    if (rc != SB_OK) {
        respond_error(c, 500, "Error.Internal", "The token could not be signed.", NULL);
        return;
    }
    json_t *body = json_pack("{s:s}", "token", token);
    char *text = json_dumps(body, JSON_COMPACT);
    sb_http_respond(c, 200, "application/json; charset=utf-8", text, strlen(text), NULL);
    free(text); /* jansson's allocator is plain malloc here */
    json_decref(body);
    sb_free(token);
}

static void execute(sb_conn *c, const sb_http_request *req, const sb_rest_route_t *rt) {
    sb_router *r = &c->srv->router;
    sb_hub *hub = sb_router_find_hub(r, rt->hub);
    sb_exclude ex = {(const char *const *)rt->excluded, rt->nexcluded};
    int found = 1;
    switch (rt->op) {
    case SB_REST_OP_SEND_HUB:
    case SB_REST_OP_SEND_USER:
    case SB_REST_OP_SEND_CONNECTION:
    case SB_REST_OP_SEND_GROUP:
        if (!deliver(c, req, rt, hub))
            return;
        break;
    case SB_REST_OP_CLOSE_HUB:
        if (hub)
            sb_router_close_hub(hub, rt->reason, &ex);
        break;
    case SB_REST_OP_CLOSE_GROUP:
        if (hub)
            sb_router_close_group(hub, rt->group, rt->reason, &ex);
        break;
    case SB_REST_OP_CLOSE_USER:
        if (hub)
            sb_router_close_user(hub, rt->user, rt->reason, &ex);
        break;
    case SB_REST_OP_CLOSE_CONNECTION:
        found = hub && sb_router_close_connection(hub, rt->connection, rt->reason) == SB_OK;
        break;
    case SB_REST_OP_CONNECTION_EXISTS:
        found = hub && sb_router_connection_exists(hub, rt->connection);
        break;
    case SB_REST_OP_GROUP_EXISTS:
        found = hub && sb_router_group_exists(hub, rt->group);
        break;
    case SB_REST_OP_USER_EXISTS:
        found = hub && sb_router_user_exists(hub, rt->user);
        break;
    case SB_REST_OP_USER_IN_GROUP:
        found = hub && sb_router_user_in_group(hub, rt->user, rt->group);
        break;
    case SB_REST_OP_GROUP_ADD_CONNECTION:
        found = hub && sb_router_group_add(hub, rt->group, rt->connection) == SB_OK;
        break;
    case SB_REST_OP_GROUP_REMOVE_CONNECTION:
        found = hub && sb_router_group_remove(hub, rt->group, rt->connection) == SB_OK;
        break;
    case SB_REST_OP_CONNECTION_LEAVE_ALL: /* idempotent: an unknown connection is in no group */
        if (hub)
            sb_router_group_remove_all(hub, rt->connection);
        break;
    case SB_REST_OP_USER_GROUP_ADD:
        sb_router_user_group_add(sb_router_hub(r, rt->hub), rt->user, rt->group, rt->ttl);
        break;
    case SB_REST_OP_USER_GROUP_REMOVE:
        if (hub)
            sb_router_user_group_remove(hub, rt->user, rt->group);
        break;
    case SB_REST_OP_USER_LEAVE_ALL:
        if (hub)
            sb_router_user_group_remove_all(hub, rt->user);
        break;
    case SB_REST_OP_GENERATE_TOKEN:
        generate_token(c, rt);
        return;
    default:
        break;
    }
    if (found)
        respond_empty(c, rt->status);
    else
        respond_error(c, 404, op_missing[rt->op].code, op_missing[rt->op].message, NULL);
}

void sb_rest_handle(sb_conn *c, sb_http_request *req) {
    sb_server *srv = c->srv;
    sb_rest_route_t rt;
    int rc = sb_rest_route(req->method_name, req->path, req->query, &rt);
    if (rc == SB_OK && rt.op == SB_REST_OP_HEALTH) {
        if (srv->stopping)
            respond_error(c, 503, "Error.ServiceUnavailable", "Service is shutting down.", NULL);
        else
            respond_empty(c, 200);
    } else if (!authorize(c, req)) {
        /* answered */
    } else if (rc != SB_OK) {
        respond_error(c, rt.status, rt.error_code, rt.message, rt.allow);
    } else if (req->body.len > (size_t)srv->cfg.max_rest_body_bytes) {
        respond_error(c, 413, "Error.PayloadTooLarge", "The request body is too large.", NULL);
    } else {
        execute(c, req, &rt);
    }
    sb_rest_route_free(&rt);
}
