/*
 * rest_api.h - the data-plane REST API: /api/v1/... and /api/... with
 * ?api-version=2022-06-01 (or a later version from the same family).
 *
 * Owns: mapping an HTTP request under /api/ onto one router operation (send,
 * close, existence check, group membership) and answering it with the status
 * and x-ms-error-code header the Azure SignalR Management SDK expects.
 *
 * Two pure, I/O-free steps do all the parsing and are unit-tested directly:
 *   sb_rest_route()       method + path + query -> operation and its decoded
 *                         arguments (hub, group, user, connection, excluded,
 *                         reason, ttl), or the 400/404/405 to answer with;
 *   sb_rest_parse_send()  a send request's body (JSON, or the MessagePack map
 *                         of pre-framed payloads) -> target + arguments or
 *                         payloads, or the 400 message.
 * sb_rest_handle() glues them to auth (auth/), the router (hub/) and the HTTP
 * responses (net/http.h).
 *
 * Called by: net/http.c for every request whose path starts with /api/.
 * 2022-11-01+: POST /api/hubs/{hub}/:generateToken?userId=&minutesToExpire=
 * answers {"token":"<client access token for the hub>"}, signed with the
 * primary access key, as the Management SDK's NegotiateAsync would make it.
 *
 * Not here: the HTTP parser, token verification, the hub indexes; :execute
 * (OData filters), /api/auth/accessKey and the 2024-12-01 client-result and
 * stream routes are not served (404).
 */
#ifndef SB_REST_API_H
#define SB_REST_API_H

#include <jansson.h>
#include <stddef.h>

#include "net/conn.h"
#include "net/http_parse.h"
#include "util/buf.h"

typedef enum sb_rest_op {
    SB_REST_OP_NONE = 0,
    SB_REST_OP_HEALTH,
    SB_REST_OP_SEND_HUB, /* broadcast */
    SB_REST_OP_SEND_USER,
    SB_REST_OP_SEND_CONNECTION,
    SB_REST_OP_SEND_GROUP,
    SB_REST_OP_CLOSE_HUB, /* :closeConnections on the hub / a group / a user */
    SB_REST_OP_CLOSE_GROUP,
    SB_REST_OP_CLOSE_USER,
    SB_REST_OP_CLOSE_CONNECTION, /* DELETE .../connections/{cid} */
    SB_REST_OP_CONNECTION_EXISTS,
    SB_REST_OP_GROUP_EXISTS,
    SB_REST_OP_USER_EXISTS,
    SB_REST_OP_USER_IN_GROUP,
    SB_REST_OP_GROUP_ADD_CONNECTION,
    SB_REST_OP_GROUP_REMOVE_CONNECTION,
    SB_REST_OP_CONNECTION_LEAVE_ALL, /* DELETE .../connections/{cid}/groups */
    SB_REST_OP_USER_GROUP_ADD,
    SB_REST_OP_USER_GROUP_REMOVE,
    SB_REST_OP_USER_LEAVE_ALL, /* DELETE .../users/{user}/groups */
    SB_REST_OP_GENERATE_TOKEN, /* POST .../:generateToken (2022-11-01 and later) */
    SB_REST_OP_COUNT
} sb_rest_op;

/* One routed request.  Strings are percent-decoded, NUL-free, valid UTF-8 and owned. */
typedef struct sb_rest_route_t {
    sb_rest_op op;
    int version; /* 1: /api/v1 ; 2: /api + api-version (2022-06-01 family) */
    int status;  /* success: the status to answer with; failure: 400, 404 or 405 */
    char *hub;   /* as sent (the router lower-cases), "app_hub" with ?application=; NULL if none */
    char *group; /* NULL when the route has no such segment */
    char *user; /* the {user} segment, or :generateToken's ?userId= */
    char *connection;
    char *reason;    /* ?reason= for closes; NULL if absent */
    char **excluded; /* ?excluded= connection ids (repeatable), empty values dropped */
    size_t nexcluded;
    long ttl;               /* ?ttl= seconds for user-group add; -1 when absent */
    long minutes;           /* :generateToken's ?minutesToExpire= (default 60) */
    const char *error_code; /* failure: x-ms-error-code value, e.g. "Error.InvalidArgument" */
    char allow[40];         /* 405: the Allow header value */
    char message[200];      /* failure: human-readable reason */
} sb_rest_route_t;

/*
 * Route a request: method ("GET", ...), raw path (starting "/api/"), raw
 * query (without '?').  Returns SB_OK with out filled, or SB_ENOENT (404, no
 * such API), SB_EPERM (405, out->allow set) or SB_EINVAL (400: bad escape,
 * invalid hub or group name, missing or unknown api-version, bad ttl) with
 * out->status, out->error_code and out->message set.  Always call
 * sb_rest_route_free() afterwards, whatever the result.
 */
int sb_rest_route(const char *method, sb_slice path, sb_slice query, sb_rest_route_t *out);
void sb_rest_route_free(sb_rest_route_t *r);

/* The message of a send request. */
typedef struct sb_rest_send {
    json_t *body;          /* the parsed JSON body (owned); NULL for the binary form */
    const char *target;    /* inside body */
    json_t *arguments;     /* owned reference: the body's array, or a new [] when absent */
    sb_slice json_payload; /* binary form: framed JSON-protocol message (points into the request body) */
    sb_slice msgpack_payload;
} sb_rest_send;

/*
 * Parse a send body.  content_type is the Content-Type header (base NULL if
 * absent): application/octet-stream selects the binary form, anything else is
 * read as JSON.  Returns SB_OK, or SB_EINVAL with a message in err (the
 * request deserves a 400).  Call sb_rest_send_free() in both cases.
 */
int sb_rest_parse_send(sb_slice content_type, sb_slice body, sb_rest_send *out, char *err, size_t errlen);
void sb_rest_send_free(sb_rest_send *s);

/* Handle a request whose path starts with /api/ ; always answers. */
void sb_rest_handle(sb_conn *c, sb_http_request *req);

#endif
