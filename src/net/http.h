/*
 * http.h - HTTP/1.1 request dispatch and responses.
 *
 * net/conn.c feeds received bytes to sb_http_on_data() while a connection is
 * in HTTP mode; complete requests are routed by path to the handlers of the
 * client endpoint (signalr/), the REST API (rest/) and the server endpoint
 * (service/).  A handler either answers at once with sb_http_respond*() or
 * takes the socket over (WebSocket upgrade, SSE stream, parked long poll) and
 * answers later; sb_http_request_done() then lets the next pipelined request
 * run.
 *
 * Responses carry CORS headers for browser clients (Origin echoed, credentials
 * allowed) and honour keep-alive.
 */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <jansson.h>

#include "net/conn.h"

/* Feed input that arrived while the conn is in HTTP mode (bytes are in c->in). */
void sb_http_on_data(sb_conn *c);

/* Standard reason phrase for a status code. */
const char *sb_http_reason(int status);

/*
 * Start a response: status line, Date-less minimal headers, CORS, keep-alive,
 * Content-Type and Content-Length (-1: none, for streams), then extra_headers
 * ("Name: value\r\n" lines, may be NULL).  Then the body if any.
 */
void sb_http_respond(sb_conn *c, int status, const char *content_type, const void *body, size_t len,
                     const char *extra_headers);
/* text/plain body. */
void sb_http_respond_text(sb_conn *c, int status, const char *text);
/* application/json body from a jansson value (not consumed). */
void sb_http_respond_json(sb_conn *c, int status, json_t *body);
/* Write only the head of a response with no Content-Length (streams: SSE). */
void sb_http_respond_head(sb_conn *c, int status, const char *content_type, const char *extra_headers);

/* Record an HTTP request log for the request being answered (called when its status is known). */
void sb_http_log_response(sb_conn *c, int status);

/* The asynchronous answer to the current request is complete: continue with the next request or close.
 * A connection with no further request bytes keeps no parser meanwhile (idle keep-alive sockets are cheap). */
void sb_http_request_done(sb_conn *c);
/* The response has been started and streams until the socket closes (Server-Sent Events): the
 * request's parser and Origin are not needed any more.  Its request log was written with the head. */
void sb_http_release_request(sb_conn *c);

#endif
