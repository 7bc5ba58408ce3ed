/*
 * auth.h - authenticating an HTTP request the way Azure SignalR Service does:
 * a bearer JWT (Authorization header, or the access_token query parameter
 * for WebSocket and SSE requests, which browsers cannot give headers), signed
 * with one of the access keys, with an audience from the allowed list.
 *
 * Also owns the access keys: loaded from configuration, or generated once and
 * persisted in the data directory (accesskey file, mode 0600).
 */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include <jansson.h>

#include "net/http_parse.h"
#include "util/buf.h"

struct sb_server;

typedef struct sb_auth_result {
    json_t *claims; /* owned by the caller on success */
    int status;     /* on failure: 401 or 413 */
    sb_buf message; /* on failure: the reason (also logged); caller frees with sb_buf_free */
} sb_auth_result;

/*
 * Verify the request's token.  valid_auds are the audiences accepted (the
 * request URL without its query for REST and management; the client URL
 * {endpoint}/client/?hub=<hub> for clients).  ignore_query: compare audiences
 * without the query (REST).  allow_query_token: also look at ?access_token=.
 * Returns SB_OK (res->claims set) or SB_EAUTH / SB_E2BIG (res->status, res->message set).
 */
int sb_auth_request(struct sb_server *srv, const sb_http_request *req, int allow_query_token,
                    const char *const *valid_auds, size_t nvalid, int ignore_query, sb_auth_result *res);
void sb_auth_result_free(sb_auth_result *res);
/* The reason to show for a failed verification: res->message, or a generic text when it is empty or not UTF-8. */
const char *sb_auth_result_reason(const sb_auth_result *res);

/*
 * Verify the bearer token of an ARM-shaped request (management, metrics, Logs query): the accepted audience is
 * the endpoint plus the request path, as sent or with runs of '/' collapsed (Azure SDKs differ in slashes).
 * Same returns as sb_auth_request.
 */
int sb_auth_arm_request(struct sb_server *srv, const sb_http_request *req, sb_auth_result *res);

/* Load or create the access key per configuration (cfg.access_key, else <data_dir>/accesskey). */
int sb_auth_load_keys(struct sb_server *srv);
/* A new random access key (43 base64url chars, like Azure's 44-char keys without padding). */
char *sb_auth_generate_key(void);

#endif
