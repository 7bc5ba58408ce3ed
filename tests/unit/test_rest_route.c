/*
 * test_rest_route.c - the pure parts of the data-plane REST API: routing
 * (every route of v1 and 2022-06-01, every way a path, a name or a query
 * parameter can be malformed, 404 vs 405 + Allow, api-version and
 * application handling) and send-body parsing (JSON in both casings, the
 * MessagePack map of pre-framed payloads, every rejection).  Truncated
 * inputs are fed one byte longer at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rest/rest_api.h"
#include "util/error.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Route "path?query" (the query may be absent). */
static int route(const char *method, const char *url, sb_rest_route_t *out) {
    const char *q = strchr(url, '?');
    sb_slice path = sb_slice_make(url, q ? (size_t)(q - url) : strlen(url));
    sb_slice query = q ? sb_slice_make(q + 1, strlen(q + 1)) : sb_slice_make("", 0);
    return sb_rest_route(method, path, query, out);
}

static void assert_str_or_null(const char *got, const char *want) {
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got ? got : "(null)", want);
}

/* ---- every route ---- */

typedef struct ok_case {
    const char *method, *url;
    sb_rest_op op;
    int version, status;
    const char *hub, *group, *user, *connection;
} ok_case;

#define V2 "?api-version=2022-06-01"

static const ok_case ok_cases[] = {
    /* v1 */
    {"GET", "/api/v1/health", SB_REST_OP_HEALTH, 1, 200, NULL, NULL, NULL, NULL},
    {"HEAD", "/api/v1/health", SB_REST_OP_HEALTH, 1, 200, NULL, NULL, NULL, NULL},
    {"POST", "/api/v1/hubs/chat", SB_REST_OP_SEND_HUB, 1, 202, "chat", NULL, NULL, NULL},
    {"POST", "/api/v1/hubs/chat/users/u1", SB_REST_OP_SEND_USER, 1, 202, "chat", NULL, "u1", NULL},
    {"GET", "/api/v1/hubs/chat/users/u1", SB_REST_OP_USER_EXISTS, 1, 200, "chat", NULL, "u1", NULL},
    {"HEAD", "/api/v1/hubs/chat/users/u1", SB_REST_OP_USER_EXISTS, 1, 200, "chat", NULL, "u1", NULL},
    {"DELETE", "/api/v1/hubs/chat/users/u1/groups", SB_REST_OP_USER_LEAVE_ALL, 1, 200, "chat", NULL, "u1",
     NULL},
    {"POST", "/api/v1/hubs/chat/connections/c1", SB_REST_OP_SEND_CONNECTION, 1, 202, "chat", NULL, NULL,
     "c1"},
    {"GET", "/api/v1/hubs/chat/connections/c1", SB_REST_OP_CONNECTION_EXISTS, 1, 200, "chat", NULL, NULL,
     "c1"},
    {"HEAD", "/api/v1/hubs/chat/connections/c1", SB_REST_OP_CONNECTION_EXISTS, 1, 200, "chat", NULL, NULL,
     "c1"},
    {"DELETE", "/api/v1/hubs/chat/connections/c1", SB_REST_OP_CLOSE_CONNECTION, 1, 202, "chat", NULL, NULL,
     "c1"},
    {"POST", "/api/v1/hubs/chat/groups/g1", SB_REST_OP_SEND_GROUP, 1, 202, "chat", "g1", NULL, NULL},
    {"GET", "/api/v1/hubs/chat/groups/g1", SB_REST_OP_GROUP_EXISTS, 1, 200, "chat", "g1", NULL, NULL},
    {"HEAD", "/api/v1/hubs/chat/groups/g1", SB_REST_OP_GROUP_EXISTS, 1, 200, "chat", "g1", NULL, NULL},
    {"PUT", "/api/v1/hubs/chat/groups/g1/connections/c1", SB_REST_OP_GROUP_ADD_CONNECTION, 1, 200, "chat",
     "g1", NULL, "c1"},
    {"DELETE", "/api/v1/hubs/chat/groups/g1/connections/c1", SB_REST_OP_GROUP_REMOVE_CONNECTION, 1, 200,
     "chat", "g1", NULL, "c1"},
    {"GET", "/api/v1/hubs/chat/groups/g1/users/u1", SB_REST_OP_USER_IN_GROUP, 1, 200, "chat", "g1", "u1",
     NULL},
    {"HEAD", "/api/v1/hubs/chat/groups/g1/users/u1", SB_REST_OP_USER_IN_GROUP, 1, 200, "chat", "g1", "u1",
     NULL},
    {"PUT", "/api/v1/hubs/chat/groups/g1/users/u1", SB_REST_OP_USER_GROUP_ADD, 1, 202, "chat", "g1", "u1",
     NULL},
    {"DELETE", "/api/v1/hubs/chat/groups/g1/users/u1", SB_REST_OP_USER_GROUP_REMOVE, 1, 202, "chat", "g1",
     "u1", NULL},
    /* 2022-06-01 */
    {"GET", "/api/health", SB_REST_OP_HEALTH, 2, 200, NULL, NULL, NULL, NULL},
    {"HEAD", "/api/health" V2, SB_REST_OP_HEALTH, 2, 200, NULL, NULL, NULL, NULL},
    {"POST", "/api/hubs/chat/:send" V2, SB_REST_OP_SEND_HUB, 2, 202, "chat", NULL, NULL, NULL},
    {"POST", "/api/hubs/chat/:closeConnections" V2, SB_REST_OP_CLOSE_HUB, 2, 204, "chat", NULL, NULL, NULL},
    {"POST", "/api/hubs/chat/users/u1/:send" V2, SB_REST_OP_SEND_USER, 2, 202, "chat", NULL, "u1", NULL},
    {"POST", "/api/hubs/chat/users/u1/:closeConnections" V2, SB_REST_OP_CLOSE_USER, 2, 204, "chat", NULL,
     "u1", NULL},
    {"HEAD", "/api/hubs/chat/users/u1" V2, SB_REST_OP_USER_EXISTS, 2, 200, "chat", NULL, "u1", NULL},
    {"GET", "/api/hubs/chat/users/u1" V2, SB_REST_OP_USER_EXISTS, 2, 200, "chat", NULL, "u1", NULL},
    {"DELETE", "/api/hubs/chat/users/u1/groups" V2, SB_REST_OP_USER_LEAVE_ALL, 2, 204, "chat", NULL, "u1",
     NULL},
    {"HEAD", "/api/hubs/chat/users/u1/groups/g1" V2, SB_REST_OP_USER_IN_GROUP, 2, 200, "chat", "g1", "u1",
     NULL},
    {"GET", "/api/hubs/chat/users/u1/groups/g1" V2, SB_REST_OP_USER_IN_GROUP, 2, 200, "chat", "g1", "u1",
     NULL},
    {"PUT", "/api/hubs/chat/users/u1/groups/g1" V2, SB_REST_OP_USER_GROUP_ADD, 2, 200, "chat", "g1", "u1",
     NULL},
    {"DELETE", "/api/hubs/chat/users/u1/groups/g1" V2, SB_REST_OP_USER_GROUP_REMOVE, 2, 204, "chat", "g1",
     "u1", NULL},
    {"HEAD", "/api/hubs/chat/groups/g1/users/u1" V2, SB_REST_OP_USER_IN_GROUP, 2, 200, "chat", "g1", "u1",
     NULL},
    {"PUT", "/api/hubs/chat/groups/g1/users/u1" V2, SB_REST_OP_USER_GROUP_ADD, 2, 200, "chat", "g1", "u1",
     NULL},
    {"DELETE", "/api/hubs/chat/groups/g1/users/u1" V2, SB_REST_OP_USER_GROUP_REMOVE, 2, 204, "chat", "g1",
     "u1", NULL},
    {"POST", "/api/hubs/chat/connections/c1/:send" V2, SB_REST_OP_SEND_CONNECTION, 2, 202, "chat", NULL, NULL,
     "c1"},
    {"HEAD", "/api/hubs/chat/connections/c1" V2, SB_REST_OP_CONNECTION_EXISTS, 2, 200, "chat", NULL, NULL,
     "c1"},
    {"GET", "/api/hubs/chat/connections/c1" V2, SB_REST_OP_CONNECTION_EXISTS, 2, 200, "chat", NULL, NULL,
     "c1"},
    {"DELETE", "/api/hubs/chat/connections/c1" V2, SB_REST_OP_CLOSE_CONNECTION, 2, 200, "chat", NULL, NULL,
     "c1"},
    {"DELETE", "/api/hubs/chat/connections/c1/groups" V2, SB_REST_OP_CONNECTION_LEAVE_ALL, 2, 200, "chat",
     NULL, NULL, "c1"},
    {"PUT", "/api/hubs/chat/connections/c1/groups/g1" V2, SB_REST_OP_GROUP_ADD_CONNECTION, 2, 200, "chat",
     "g1", NULL, "c1"},
    {"DELETE", "/api/hubs/chat/connections/c1/groups/g1" V2, SB_REST_OP_GROUP_REMOVE_CONNECTION, 2, 200,
     "chat", "g1", NULL, "c1"},
    {"PUT", "/api/hubs/chat/groups/g1/connections/c1" V2, SB_REST_OP_GROUP_ADD_CONNECTION, 2, 200, "chat",
     "g1", NULL, "c1"},
    {"DELETE", "/api/hubs/chat/groups/g1/connections/c1" V2, SB_REST_OP_GROUP_REMOVE_CONNECTION, 2, 200,
     "chat", "g1", NULL, "c1"},
    {"POST", "/api/hubs/chat/groups/g1/:send" V2, SB_REST_OP_SEND_GROUP, 2, 202, "chat", "g1", NULL, NULL},
    {"POST", "/api/hubs/chat/groups/g1/:closeConnections" V2, SB_REST_OP_CLOSE_GROUP, 2, 204, "chat", "g1",
     NULL, NULL},
    {"HEAD", "/api/hubs/chat/groups/g1" V2, SB_REST_OP_GROUP_EXISTS, 2, 200, "chat", "g1", NULL, NULL},
    {"GET", "/api/hubs/chat/groups/g1" V2, SB_REST_OP_GROUP_EXISTS, 2, 200, "chat", "g1", NULL, NULL},
    /* decoding, case, trailing slash */
    {"POST", "/api/v1/hubs/chat/users/a%20b+c%2Fd", SB_REST_OP_SEND_USER, 1, 202, "chat", NULL, "a b+c/d",
     NULL},
    {"POST", "/API/V1/HUBS/Chat/Users/U1", SB_REST_OP_SEND_USER, 1, 202, "Chat", NULL, "U1", NULL},
    {"POST", "/api/hubs/chat/%3Asend" V2, SB_REST_OP_SEND_HUB, 2, 202, "chat", NULL, NULL, NULL},
    {"POST", "/api/hubs/chat/:SEND" V2, SB_REST_OP_SEND_HUB, 2, 202, "chat", NULL, NULL, NULL},
    {"GET", "/api/v1/hubs/chat/groups/%C3%A9t%C3%A9/", SB_REST_OP_GROUP_EXISTS, 1, 200, "chat",
     "\xC3\xA9t\xC3\xA9", NULL, NULL},
    /* a name equal to a literal is still a name */
    {"POST", "/api/hubs/users/users/groups/:send" V2, SB_REST_OP_SEND_USER, 2, 202, "users", NULL, "groups",
     NULL},
    {"POST", "/api/hubs/h/groups/:send/:send" V2, SB_REST_OP_SEND_GROUP, 2, 202, "h", ":send", NULL, NULL},
    {"POST", "/api/v1/hubs/v1", SB_REST_OP_SEND_HUB, 1, 202, "v1", NULL, NULL, NULL},
};

static void test_every_route(void **state) {
    for (size_t i = 0; i < ARRAY_LEN(ok_cases); i++) {
        const ok_case *k = &ok_cases[i];
        sb_rest_route_t r;
        int rc = route(k->method, k->url, &r);
        if (rc != SB_OK)
            fail_msg("%s %s: %d %s", k->method, k->url, r.status, r.message);
        assert_int_equal(r.op, k->op);
        assert_int_equal(r.version, k->version);
        assert_int_equal(r.status, k->status);
        assert_str_or_null(r.hub, k->hub);
        assert_str_or_null(r.group, k->group);
        assert_str_or_null(r.user, k->user);
        assert_str_or_null(r.connection, k->connection);
        assert_null(r.reason);
        assert_int_equal(r.nexcluded, 0);
        assert_int_equal(r.ttl, -1);
        sb_rest_route_free(&r);
        sb_rest_route_free(&r); /* idempotent */
    }
}

/* ---- malformed ---- */

typedef struct bad_case {
    const char *method, *url;
    int rc, status;
    const char *code, *message; /* message: a substring */
} bad_case;

#define NF SB_ENOENT, 404, "Error.NotFound", "No API matches"
#define BAD(msg) SB_EINVAL, 400, "Error.InvalidArgument", msg

static const bad_case bad_cases[] = {
    /* paths no API has */
    {"GET", "", NF},
    {"GET", "/", NF},
    {"GET", "api/v1/health", NF},
    {"GET", "/api", NF},
    {"GET", "/api/", NF},
    {"GET", "/api//", NF},
    {"GET", "/api//v1/health", NF},
    {"GET", "/api/v1//health", NF},
    {"GET", "/api/v1/health//", NF},
    {"GET", "/apix/v1/health", NF},
    {"GET", "/ap/v1/health", NF},
    {"GET", "/api/v1", NF},
    {"GET", "/api/v2/health", NF},
    {"POST", "/api/v1/hubs", NF},
    {"POST", "/api/v1/hubs/", NF},
    {"POST", "/api/v1/hubs/chat/unknown", NF},
    {"POST", "/api/v1/hubs/chat/users", NF},
    {"POST", "/api/v1/hubs/chat/users/u/:send", NF},
    {"PUT", "/api/v1/hubs/chat/users/u/groups/g", NF},
    {"DELETE", "/api/v1/hubs/chat/connections/c/groups", NF},
    {"POST", "/api/hubs/chat" V2, NF},
    {"POST", "/api/hubs/chat/:broadcast" V2, NF},
    {"POST", "/api/hubs/chat/:generateToken" V2, NF},
    {"GET", "/api/auth/accessKey" V2, NF},
    {"POST", "/api/hubs/chat/connections/c/:invoke" V2, NF},
    {"GET", "/api/v1/hubs/h/groups/g/connections/c/x/y", NF},
    {"GET", "/api/a/b/c/d/e/f/g/h/i/j", NF},
    {"GET", "/api/hubs/chat/groups/g/users/u/x" V2, NF},
    /* escapes and names */
    {"POST", "/api/v1/hubs/chat/users/%", BAD("percent-encoding")},
    {"POST", "/api/v1/hubs/chat/users/a%4", BAD("percent-encoding")},
    {"POST", "/api/v1/hubs/chat/users/%zz", BAD("percent-encoding")},
    {"POST", "/api/v1/hubs/%", BAD("percent-encoding")},
    {"POST", "/api/v1/hubs/chat/users/a%00b", BAD("Invalid user id.")},
    {"POST", "/api/v1/hubs/chat/users/%FF", BAD("Invalid user id.")},
    {"POST", "/api/v1/hubs/chat/connections/%C0%AF", BAD("Invalid connection id.")},
    {"POST", "/api/v1/hubs/chat/groups/%ED%A0%80", BAD("Invalid group name.")},
    {"POST", "/api/v1/hubs/c%00hat", BAD("Invalid hub name.")},
    {"POST", "/api/v1/hubs/1chat", BAD("Invalid hub name.")},
    {"POST", "/api/v1/hubs/_chat", BAD("Invalid hub name.")},
    {"POST", "/api/v1/hubs/ch%20at", BAD("Invalid hub name.")},
    {"POST", "/api/v1/hubs/ch-at", BAD("Invalid hub name.")},
    {"POST", "/api/hubs/ch%2Fat/:send" V2, BAD("Invalid hub name.")},
    {"POST", "/api/v1/hubs/chat/groups/%20", BAD("Invalid group name")},
    {"POST", "/api/v1/hubs/chat/groups/%20%09%0A%0D%0B%0C", BAD("Invalid group name")},
    {"POST", "/api/hubs/chat/groups/%20%20/:send" V2, BAD("Invalid group name")},
    /* api-version */
    {"POST", "/api/hubs/chat/:send", BAD("api-version query parameter")},
    {"POST", "/api/hubs/chat/:send?api-version=", BAD("api-version query parameter")},
    {"POST", "/api/hubs/chat/:send?api-version", BAD("api-version query parameter")},
    {"POST", "/api/hubs/chat/:send?apiversion=2022-06-01", BAD("api-version query parameter")},
    {"POST", "/api/hubs/chat/:send?api-version=2021-01-01", BAD("api-version '2021-01-01' is not supported")},
    {"POST", "/api/hubs/chat/:send?api-version=2022-06-01x",
     BAD("api-version '2022-06-01x' is not supported")},
    {"POST", "/api/hubs/chat/:send?api-version=%3Cscript%3E",
     BAD("api-version '(invalid)' is not supported")},
    {"POST", "/api/hubs/chat/:send?api-version=%", BAD("percent-encoding in the query")},
    /* application */
    {"POST", "/api/hubs/chat/:send" V2 "&application=1app", BAD("Invalid application name.")},
    {"POST", "/api/hubs/chat/:send" V2 "&application=a%20b", BAD("Invalid application name.")},
    {"POST", "/api/hubs/chat/:send" V2 "&application=%", BAD("Invalid application name.")},
    /* query parameters */
    {"POST", "/api/v1/hubs/chat?excluded=%", BAD("percent-encoding in the query")},
    {"POST", "/api/v1/hubs/chat?excluded=a%00", BAD("Invalid excluded")},
    {"POST", "/api/v1/hubs/chat?excluded=%FE", BAD("Invalid excluded")},
    {"DELETE", "/api/v1/hubs/chat/connections/c?reason=%", BAD("Invalid reason.")},
    {"DELETE", "/api/v1/hubs/chat/connections/c?reason=a%00b", BAD("Invalid reason.")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=-1", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=abc", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=1.5", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=+5", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=%2B5", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=%20", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=2147483648", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=99999999999", BAD("Invalid ttl")},
    {"PUT", "/api/v1/hubs/chat/groups/g/users/u?ttl=%", BAD("Invalid ttl")},
    {"PUT", "/api/hubs/chat/users/u/groups/g" V2 "&ttl=x", BAD("Invalid ttl")},
};

static void test_malformed(void **state) {
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const bad_case *k = &bad_cases[i];
        sb_rest_route_t r;
        int rc = route(k->method, k->url, &r);
        if (rc != k->rc || r.status != k->status || !strstr(r.message, k->message))
            fail_msg("%s %s: rc %d status %d message '%s'", k->method, k->url, rc, r.status, r.message);
        assert_int_equal(r.op, SB_REST_OP_NONE);
        assert_string_equal(r.error_code, k->code);
        assert_string_equal(r.allow, "");
        sb_rest_route_free(&r);
    }
}

static void test_method_not_allowed(void **state) {
    static const struct {
        const char *method, *url, *allow;
    } cases[] = {
        {"DELETE", "/api/v1/health", "GET, HEAD"},
        {"POST", "/api/health", "GET, HEAD"},
        {"GET", "/api/v1/hubs/chat", "POST"},
        {"PATCH", "/api/v1/hubs/chat/connections/c", "GET, HEAD, POST, DELETE"},
        {"POST", "/api/v1/hubs/chat/groups/g/users/u/", "GET, HEAD, PUT, DELETE"},
        {"OPTIONS", "/api/hubs/chat/groups/g/connections/c" V2, "PUT, DELETE"},
        {"GET", "/api/hubs/chat/:send" V2, "POST"},
        {"get", "/api/v1/health", "GET, HEAD"},              /* methods are case-sensitive */
        {"POST", "/api/hubs/chat/users/u/groups", "DELETE"}, /* 405 wins over a missing api-version */
        {NULL, "/api/v1/hubs/chat/users/u", "GET, HEAD, POST"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sb_rest_route_t r;
        assert_int_equal(route(cases[i].method, cases[i].url, &r), SB_EPERM);
        assert_int_equal(r.status, 405);
        assert_int_equal(r.op, SB_REST_OP_NONE);
        assert_string_equal(r.error_code, "Error.MethodNotAllowed");
        assert_string_equal(r.allow, cases[i].allow);
        sb_rest_route_free(&r);
    }
}

/* ---- api-version and application ---- */

static void test_api_versions(void **state) {
    static const char *const good[] = {"2022-06-01", "2022-11-01", "2023-07-01", "2024-01-01", "2024-12-01"};
    char url[128];
    sb_rest_route_t r;
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        snprintf(url, sizeof url, "/api/hubs/chat/:send?api-version=%s", good[i]);
        assert_int_equal(route("POST", url, &r), SB_OK);
        sb_rest_route_free(&r);
    }
    /* name case-insensitive, position free, first occurrence wins */
    assert_int_equal(route("POST", "/api/hubs/chat/:send?x=1&API-VERSION=2022-06-01", &r), SB_OK);
    sb_rest_route_free(&r);
    assert_int_equal(route("POST", "/api/hubs/chat/:send?api-version=2022-06-01&api-version=bogus", &r),
                     SB_OK);
    sb_rest_route_free(&r);
    assert_int_equal(route("POST", "/api/hubs/chat/:send?api-version=bogus&api-version=2022-06-01", &r),
                     SB_EINVAL);
    sb_rest_route_free(&r);
    /* v1 and health ignore it */
    assert_int_equal(route("POST", "/api/v1/hubs/chat?api-version=bogus", &r), SB_OK);
    sb_rest_route_free(&r);
    assert_int_equal(route("GET", "/api/health?api-version=bogus", &r), SB_OK);
    sb_rest_route_free(&r);
    /* an unsupported-version message never echoes more than a plain version string */
    char longv[200];
    snprintf(longv, sizeof longv, "/api/hubs/chat/:send?api-version=%0100d", 7);
    assert_int_equal(route("POST", longv, &r), SB_EINVAL);
    assert_non_null(strstr(r.message, "'(invalid)'"));
    sb_rest_route_free(&r);
}

static void test_application(void **state) {
    sb_rest_route_t r;
    assert_int_equal(route("POST", "/api/hubs/Chat/:send" V2 "&application=App1", &r), SB_OK);
    assert_string_equal(r.hub, "App1_Chat");
    sb_rest_route_free(&r);
    assert_int_equal(route("HEAD", "/api/hubs/chat/groups/g" V2 "&Application=a%2Eb", &r), SB_OK);
    assert_string_equal(r.hub, "a.b_chat");
    sb_rest_route_free(&r);
    assert_int_equal(route("POST", "/api/hubs/chat/:send" V2 "&application=", &r), SB_OK);
    assert_string_equal(r.hub, "chat");
    sb_rest_route_free(&r);
    /* v1 has no application parameter */
    assert_int_equal(route("POST", "/api/v1/hubs/chat?application=app", &r), SB_OK);
    assert_string_equal(r.hub, "chat");
    sb_rest_route_free(&r);
    /* the combined name must still be a hub name (the router keys at most 128 characters) */
    char url[512], name[128];
    memset(name, 'a', 63);
    name[63] = '\0';
    snprintf(url, sizeof url, "/api/hubs/%s/:send" V2 "&application=b%s", name, name);
    assert_int_equal(route("POST", url, &r), SB_OK); /* 64 + 1 + 63 = 128 */
    assert_int_equal(strlen(r.hub), 128);
    sb_rest_route_free(&r);
    snprintf(url, sizeof url, "/api/hubs/%s/:send" V2 "&application=bb%s", name, name);
    assert_int_equal(route("POST", url, &r), SB_EINVAL);
    assert_non_null(strstr(r.message, "longer than 128"));
    sb_rest_route_free(&r);
}

/* ---- names ---- */

static void repeat(char *out, const char *unit, size_t n) {
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        strcat(out, unit);
}

static void test_hub_name_length(void **state) {
    char hub[140], url[256];
    sb_rest_route_t r;
    repeat(hub, "h", 128);
    snprintf(url, sizeof url, "/api/v1/hubs/%s", hub);
    assert_int_equal(route("POST", url, &r), SB_OK);
    sb_rest_route_free(&r);
    repeat(hub, "h", 129);
    snprintf(url, sizeof url, "/api/v1/hubs/%s", hub);
    assert_int_equal(route("POST", url, &r), SB_EINVAL);
    assert_string_equal(r.message, "Invalid hub name.");
    sb_rest_route_free(&r);
}

/* Group names are 1-1024 UTF-16 units: 2-byte UTF-8 characters count one, 4-byte ones two. */
static void test_group_name_length(void **state) {
    static const struct {
        const char *unit;
        size_t n;
        const char *suffix;
        int ok;
    } cases[] = {
        {"g", 1024, "", 1},      {"g", 1025, "", 0},           {"%C3%A9", 1024, "", 1},
        {"%C3%A9", 1025, "", 0}, {"%F0%9F%98%80", 512, "", 1}, {"%F0%9F%98%80", 513, "", 0},
        {"%20", 1023, "x", 1},   {"%20", 1024, "", 0},
    };
    static char group[1025 * 12 + 1], url[sizeof group + 64];
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        repeat(group, cases[i].unit, cases[i].n);
        snprintf(url, sizeof url, "/api/v1/hubs/chat/groups/%s%s", group, cases[i].suffix);
        sb_rest_route_t r;
        int rc = route("POST", url, &r);
        if (rc != (cases[i].ok ? SB_OK : SB_EINVAL) || (rc && !strstr(r.message, "Invalid group name")))
            fail_msg("%zu x %s%s: rc %d '%s'", cases[i].n, cases[i].unit, cases[i].suffix, rc, r.message);
        sb_rest_route_free(&r);
    }
}

/* ---- query parameters ---- */

static void test_excluded(void **state) {
    sb_rest_route_t r;
    assert_int_equal(
        route("POST", "/api/v1/hubs/chat?excluded=a&x=1&excluded=&Excluded=b%20c&excluded=d+e&excluded", &r),
        SB_OK);
    assert_int_equal(r.nexcluded, 3);
    assert_string_equal(r.excluded[0], "a");
    assert_string_equal(r.excluded[1], "b c");
    assert_string_equal(r.excluded[2], "d e");
    sb_rest_route_free(&r);

    assert_int_equal(route("POST", "/api/hubs/chat/groups/g/:send" V2 "&excluded=c1&excluded=c2", &r), SB_OK);
    assert_int_equal(r.nexcluded, 2);
    assert_string_equal(r.excluded[1], "c2");
    sb_rest_route_free(&r);

    assert_int_equal(route("POST", "/api/hubs/chat/:closeConnections" V2 "&excluded=c1&reason=bye", &r),
                     SB_OK);
    assert_int_equal(r.nexcluded, 1);
    assert_string_equal(r.reason, "bye");
    sb_rest_route_free(&r);

    /* routes without the parameter neither read nor validate it */
    assert_int_equal(route("POST", "/api/v1/hubs/chat/users/u?excluded=a&excluded=%", &r), SB_OK);
    assert_int_equal(r.nexcluded, 0);
    sb_rest_route_free(&r);
    /* excludedx / xexcluded are other parameters */
    assert_int_equal(route("POST", "/api/v1/hubs/chat?excludedx=a&xexcluded=b", &r), SB_OK);
    assert_int_equal(r.nexcluded, 0);
    sb_rest_route_free(&r);
}

static void test_reason(void **state) {
    sb_rest_route_t r;
    assert_int_equal(route("DELETE", "/api/v1/hubs/chat/connections/c?reason=going+away%21&reason=x", &r),
                     SB_OK);
    assert_string_equal(r.reason, "going away!");
    sb_rest_route_free(&r);
    assert_int_equal(route("DELETE", "/api/hubs/chat/connections/c" V2 "&reason=", &r), SB_OK);
    assert_string_equal(r.reason, "");
    sb_rest_route_free(&r);
    assert_int_equal(route("DELETE", "/api/hubs/chat/connections/c" V2, &r), SB_OK);
    assert_null(r.reason);
    sb_rest_route_free(&r);
    assert_int_equal(route("POST", "/api/hubs/chat/users/u/:closeConnections" V2 "&reason=%E2%9C%93", &r),
                     SB_OK);
    assert_string_equal(r.reason, "\xE2\x9C\x93");
    sb_rest_route_free(&r);
    /* not read where there is nothing to close */
    assert_int_equal(route("GET", "/api/v1/hubs/chat/connections/c?reason=%", &r), SB_OK);
    assert_null(r.reason);
    sb_rest_route_free(&r);
}

static void test_generate_token(void **state) {
    sb_rest_route_t r;
    assert_int_equal(route("POST", "/api/hubs/Chat/:generateToken?api-version=2022-11-01&userId=u%201&minutesToExpire=5",
                           &r),
                     SB_OK);
    assert_int_equal(r.op, SB_REST_OP_GENERATE_TOKEN);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.hub, "Chat");
    assert_string_equal(r.user, "u 1");
    assert_int_equal(r.minutes, 5);
    sb_rest_route_free(&r);
    /* defaults: no user, an hour; the application prefixes the hub as for every other route */
    assert_int_equal(route("POST", "/api/hubs/chat/:generateToken?api-version=2024-01-01&userId=&application=app", &r),
                     SB_OK);
    assert_null(r.user);
    assert_int_equal(r.minutes, 60);
    assert_string_equal(r.hub, "app_chat");
    sb_rest_route_free(&r);
    /* not in 2022-06-01, and not over /api/v1 */
    assert_int_equal(route("POST", "/api/hubs/chat/:generateToken" V2, &r), SB_ENOENT);
    assert_int_equal(r.status, 404);
    sb_rest_route_free(&r);
    assert_int_equal(route("POST", "/api/v1/hubs/chat/:generateToken", &r), SB_ENOENT);
    sb_rest_route_free(&r);
    assert_int_equal(route("GET", "/api/hubs/chat/:generateToken?api-version=2022-11-01", &r), SB_EPERM);
    sb_rest_route_free(&r);
    static const char *const bad[] = {"0", "-1", "1.5", "525601", "9999999", "x", "%"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char url[200];
        snprintf(url, sizeof url, "/api/hubs/chat/:generateToken?api-version=2023-07-01&minutesToExpire=%s", bad[i]);
        assert_int_equal(route("POST", url, &r), SB_EINVAL);
        assert_int_equal(r.status, 400);
        sb_rest_route_free(&r);
    }
    assert_int_equal(route("POST", "/api/hubs/chat/:generateToken?api-version=2023-07-01&minutesToExpire=525600", &r),
                     SB_OK);
    assert_int_equal(r.minutes, 525600);
    sb_rest_route_free(&r);
}

static void test_ttl(void **state) {
    static const struct {
        const char *query;
        long ttl;
    } cases[] = {
        {"", -1},
        {"?ttl=", -1},
        {"?ttl", -1},
        {"?ttl=0", 0},
        {"?ttl=3600", 3600},
        {"?TTL=7", 7},
        {"?ttl=2147483647", 2147483647L},
        {"?ttl=0000000005", 5},
        {"?x=1&ttl=9&ttl=bogus", 9},
    };
    char url[128];
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sb_rest_route_t r;
        snprintf(url, sizeof url, "/api/v1/hubs/chat/groups/g/users/u%s", cases[i].query);
        assert_int_equal(route("PUT", url, &r), SB_OK);
        assert_int_equal(r.ttl, cases[i].ttl);
        sb_rest_route_free(&r);
    }
    sb_rest_route_t r;
    assert_int_equal(route("PUT", "/api/hubs/chat/groups/g/users/u" V2 "&ttl=60", &r), SB_OK);
    assert_int_equal(r.ttl, 60);
    sb_rest_route_free(&r);
    /* only add reads it */
    assert_int_equal(route("DELETE", "/api/v1/hubs/chat/groups/g/users/u?ttl=bogus", &r), SB_OK);
    assert_int_equal(r.ttl, -1);
    sb_rest_route_free(&r);
}

/* Every truncation of valid URLs routes to some answer and never crashes or leaks. */
static void test_truncated_paths(void **state) {
    static const char *const urls[] = {
        "/api/v1/hubs/chat/groups/g%20x/users/u%C3%A9?ttl=10",
        "/api/hubs/chat/users/u1/:closeConnections?api-version=2022-06-01&excluded=a%20b&reason=r",
    };
    for (size_t u = 0; u < ARRAY_LEN(urls); u++) {
        size_t n = strlen(urls[u]), ok = 0;
        const char *q = strchr(urls[u], '?');
        size_t plen = (size_t)(q - urls[u]);
        for (size_t i = 0; i <= n; i++) {
            sb_rest_route_t r;
            sb_slice path = sb_slice_make(urls[u], i < plen ? i : plen);
            sb_slice query = i > plen ? sb_slice_make(q + 1, i - plen - 1) : sb_slice_make("", 0);
            int rc = sb_rest_route(u ? "POST" : "PUT", path, query, &r);
            assert_true(rc == SB_OK || rc == SB_EINVAL || rc == SB_ENOENT || rc == SB_EPERM);
            assert_int_equal(rc == SB_OK, r.op != SB_REST_OP_NONE);
            ok += rc == SB_OK;
            sb_rest_route_free(&r);
        }
        assert_true(ok > 0);
    }
}

/* ---- send bodies ---- */

static int parse(const char *ct, const void *body, size_t len, sb_rest_send *s, char *err) {
    sb_slice cts = ct ? sb_slice_make(ct, strlen(ct)) : sb_slice_make(NULL, 0);
    err[0] = '\0';
    return sb_rest_parse_send(cts, sb_slice_make(body, len), s, err, 256);
}

static int parse_json(const char *ct, const char *body, sb_rest_send *s, char *err) {
    return parse(ct, body, strlen(body), s, err);
}

static void test_send_json(void **state) {
    static const struct {
        const char *ct, *body, *target, *args;
    } cases[] = {
        {"application/json; charset=utf-8", "{\"target\":\"hello\",\"arguments\":[1,\"a\",{\"x\":null}]}",
         "hello", "[1,\"a\",{\"x\":null}]"},
        {NULL, "{\"Target\":\"Hello\",\"Arguments\":[true]}", "Hello", "[true]"},
        {"text/plain", " {\"ARGUMENTS\":[], \"tArGeT\":\"t\"} ", "t", "[]"},
        {"application/json", "{\"target\":\"t\"}", "t", "[]"},
        {"application/json", "{\"target\":\"t\",\"arguments\":null}", "t", "[]"},
        {"application/json", "{\"target\":\"t\",\"other\":1,\"arguments\":[[]]}", "t", "[[]]"},
        {"application/json", "{\"target\":\"\\u00e9\"}", "\xC3\xA9", "[]"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sb_rest_send s;
        char err[256];
        assert_int_equal(parse_json(cases[i].ct, cases[i].body, &s, err), SB_OK);
        assert_non_null(s.body);
        assert_string_equal(s.target, cases[i].target);
        assert_true(json_is_array(s.arguments));
        char *args = json_dumps(s.arguments, JSON_COMPACT);
        assert_string_equal(args, cases[i].args);
        free(args);
        assert_null(s.json_payload.base);
        assert_null(s.msgpack_payload.base);
        sb_rest_send_free(&s);
        sb_rest_send_free(&s);
    }
}

static void test_send_json_invalid(void **state) {
    static const struct {
        const char *body, *message; /* message: a prefix */
    } cases[] = {
        {"", "The request body must be a JSON object."},
        {"[]", "The request body must be a JSON object."},
        {"[{\"target\":\"t\"}]", "The request body must be a JSON object."},
        {"{", "The request body is not valid JSON"},
        {"{\"target\":\"t\"", "The request body is not valid JSON"},
        {"{\"target\":\"t\"} x", "The request body is not valid JSON"},
        {"\"target\"", "The request body is not valid JSON"},
        {"{\"target\":\"a\\u0000b\"}", "The request body is not valid JSON"},
        {"{\"target\":\"\xFF\"}", "The request body is not valid JSON"},
        {"{}", "The 'target' field is required."},
        {"{\"arguments\":[]}", "The 'target' field is required."},
        {"{\"target\":\"\"}", "The 'target' field is required."},
        {"{\"target\":5}", "The 'target' field is required."},
        {"{\"target\":null}", "The 'target' field is required."},
        {"{\"target\":[\"t\"]}", "The 'target' field is required."},
        {"{\"method\":\"t\"}", "The 'target' field is required."},
        {"{\"target\":\"t\",\"arguments\":{}}", "The 'arguments' field must be an array."},
        {"{\"target\":\"t\",\"arguments\":\"x\"}", "The 'arguments' field must be an array."},
        {"{\"target\":\"t\",\"arguments\":1}", "The 'arguments' field must be an array."},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sb_rest_send s;
        char err[256];
        if (parse_json("application/json", cases[i].body, &s, err) != SB_EINVAL ||
            strncmp(err, cases[i].message, strlen(cases[i].message)) != 0)
            fail_msg("body %s: '%s'", cases[i].body, err);
        sb_rest_send_free(&s);
    }
}

/* fixmap {"json": bin8 "{..}\x1e", "messagepack": bin8 <varint len><body>} */
static const uint8_t binary_body[] = {
    0x82, 0xA4, 'j', 's', 'o', 'n', 0xC4, 0x03, '{', '}',  0x1E, 0xAB, 'm',  'e',
    's',  's',  'a', 'g', 'e', 'p', 'a',  'c',  'k', 0xC4, 0x03, 0x02, 0x91, 0x06,
};

static void test_send_binary(void **state) {
    sb_rest_send s;
    char err[256];
    assert_int_equal(parse("application/octet-stream", binary_body, sizeof binary_body, &s, err), SB_OK);
    assert_null(s.body);
    assert_null(s.target);
    assert_int_equal(s.json_payload.len, 3);
    assert_memory_equal(s.json_payload.base, "{}\x1e", 3);
    assert_int_equal(s.msgpack_payload.len, 3);
    assert_memory_equal(s.msgpack_payload.base, "\x02\x91\x06", 3);
    sb_rest_send_free(&s);

    /* media type case and parameters; map16, str8 keys, str values, unknown protocols ignored, one payload */
    static const uint8_t wide[] = {0xDE, 0x00, 0x02, 0xD9, 0x04, 'J', 'S',  'O',  'N',  0xA3, '[',
                                   ']',  0x1E, 0xA3, 'x',  'm',  'l', 0xC5, 0x00, 0x01, '<'};
    assert_int_equal(parse("Application/Octet-Stream ; x=y", wide, sizeof wide, &s, err), SB_OK);
    assert_int_equal(s.json_payload.len, 3);
    assert_null(s.msgpack_payload.base);
    sb_rest_send_free(&s);

    /* map32 with a str16 key and bin32 value, messagepack only */
    static const uint8_t map32[] = {0xDF, 0,   0,   0,   1,   0xDA, 0,    11, 'm', 'e', 's', 's',  'a',
                                    'g',  'e', 'p', 'a', 'c', 'k',  0xC6, 0,  0,   0,   2,   0x01, 0xC0};
    assert_int_equal(parse("application/octet-stream", map32, sizeof map32, &s, err), SB_OK);
    assert_null(s.json_payload.base);
    assert_int_equal(s.msgpack_payload.len, 2);
    sb_rest_send_free(&s);

    /* the same bytes as JSON are just invalid JSON */
    assert_int_equal(parse("application/json", binary_body, sizeof binary_body, &s, err), SB_EINVAL);
    sb_rest_send_free(&s);
}

#define BYTES(lit) lit, sizeof(lit) - 1

static void test_send_binary_invalid(void **state) {
    static const struct {
        const char *bytes;
        size_t len;
        const char *message; /* substring */
    } cases[] = {
        {BYTES(""), "MessagePack map"},
        {BYTES("\x90"), "MessagePack map"},                                   /* array */
        {BYTES("\xDE\x00"), "MessagePack map"},                               /* short map16 header */
        {BYTES("\x80"), "neither"},                                           /* empty map */
        {BYTES("\x81\xA3xml\xC4\x01<"), "neither"},                           /* only unknown protocols */
        {BYTES("\x81\xA4json\x05"), "MessagePack map"},                       /* int value */
        {BYTES("\x81\x05\xC4\x01\x1e"), "MessagePack map"},                   /* int key */
        {BYTES("\x81\xA4json\xC4\x03{}\x1e\x00"), "MessagePack map"},         /* trailing byte */
        {BYTES("\x82\xA4json\xC4\x03{}\x1e"), "MessagePack map"},             /* map says two entries */
        {BYTES("\xDF\xFF\xFF\xFF\xFF\xA4json"), "MessagePack map"},           /* huge declared count */
        {BYTES("\x81\xA4json\xC6\xFF\xFF\xFF\xFF{}\x1e"), "MessagePack map"}, /* huge declared length */
        {BYTES("\x81\xA4json\xC5\x00"), "MessagePack map"},                   /* short bin16 length */
        {BYTES("\x81\xA4json\xC4\x02{}"), "'json' payload"},                  /* no record separator */
        {BYTES("\x81\xA4json\xC4\x01\x1e"), "'json' payload"},                /* separator only */
        {BYTES("\x81\xA4json\xC4\x00"), "'json' payload"},
        {BYTES("\x81\xABmessagepack\xC4\x03\x03\x91\x06"), "'messagepack' payload"}, /* prefix too long */
        {BYTES("\x81\xABmessagepack\xC4\x03\x01\x91\x06"), "'messagepack' payload"}, /* prefix too short */
        {BYTES("\x81\xABmessagepack\xC4\x01\x00"), "'messagepack' payload"},         /* empty message */
        {BYTES("\x81\xABmessagepack\xC4\x01\x80"), "'messagepack' payload"},         /* unterminated varint */
        {BYTES("\x81\xABmessagepack\xC4\x00"), "'messagepack' payload"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sb_rest_send s;
        char err[256];
        if (parse("application/octet-stream", cases[i].bytes, cases[i].len, &s, err) != SB_EINVAL ||
            !strstr(err, cases[i].message))
            fail_msg("case %zu: '%s'", i, err);
        sb_rest_send_free(&s);
    }
}

/* Every strict prefix of a valid binary body is rejected; the whole body is accepted. */
static void test_send_binary_truncated(void **state) {
    for (size_t n = 0; n <= sizeof binary_body; n++) {
        sb_rest_send s;
        char err[256];
        int rc = parse("application/octet-stream", binary_body, n, &s, err);
        assert_int_equal(rc, n == sizeof binary_body ? SB_OK : SB_EINVAL);
        sb_rest_send_free(&s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_api_versions),
        cmocka_unit_test(test_application),
        cmocka_unit_test(test_hub_name_length),
        cmocka_unit_test(test_group_name_length),
        cmocka_unit_test(test_excluded),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_generate_token),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_truncated_paths),
        cmocka_unit_test(test_send_json),
        cmocka_unit_test(test_send_json_invalid),
        cmocka_unit_test(test_send_binary),
        cmocka_unit_test(test_send_binary_invalid),
        cmocka_unit_test(test_send_binary_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
