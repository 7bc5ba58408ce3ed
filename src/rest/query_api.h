/*
 * query_api.h - the Azure Monitor Logs query API over the local workspaces,
 * so LogsQueryClient (@azure/monitor-query-logs) and plain HTTP can run KQL:
 *
 *   POST /v1/workspaces/{workspaceId}/query   {"query":"...","timespan":"PT1H"?}
 *   GET  /v1/workspaces/{workspaceId}/query?query=...&timespan=...
 *
 * also without /v1 and with doubled slashes (the SDKs join paths sloppily).
 * {workspaceId} is a workspace name declared in the `workspaces` setting
 * (e.g. "local"), or an ARM id ending in /workspaces/<name>.
 *
 * Answers {"tables":[{"name":"PrimaryResult","columns":[...],"rows":[...]}]}
 * (plus "statistics" / "render" when the Prefer header asks for them, and a
 * PartialError when the result was cut at 500,000 rows), or Azure's error
 * shape {"error":{"code","message","innererror"?}}: 400 BadArgumentError
 * (SyntaxError / SemanticError inside), 401 AuthorizationRequiredError,
 * 404 PathNotFoundError / WorkspaceNotFoundError, 405, 429, 504 on the
 * Prefer wait limit.
 *
 * Auth: a bearer JWT signed with an access key, audience = endpoint +
 * request path (without the query), as for the REST and management APIs.
 *
 * The event loop never blocks: the query runs on the libuv threadpool
 * against its own read-only connection and the answer is written from the
 * after-work callback, holding the conn (sb_conn_hold) in between.
 */
#ifndef SB_QUERY_API_H
#define SB_QUERY_API_H

#include "net/conn.h"
#include "net/http_parse.h"

/* Is path (raw, undecoded) one of the Logs API's?  (/v1/..., /workspaces/..., with any doubled slashes.) */
int sb_query_api_matches(sb_slice path);
/* Handle one request whose path matched; always answers, possibly later. */
void sb_query_api_handle(sb_conn *c, sb_http_request *req);

#endif
