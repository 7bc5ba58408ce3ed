/*
 * events.h - the resource-log producers: one function per event the service
 * records, called from the code where the event happens (client.c,
 * service.c, http.c).  Each decides cheaply whether the record is collected
 * (diagnostic settings exist; the log type is "collect all", or the
 * connection is a diagnostic client) before building anything, so a service
 * with no diagnostic setting pays one branch per event.
 *
 * Texts and operation names come from names.h; the collecting rules are the
 * seed's (docs/LOGS.md).
 */
#ifndef SB_DIAG_EVENTS_H
#define SB_DIAG_EVENTS_H

#include <stdint.h>

#include "hub/hub.h"
#include "signalr/client.h"

struct sb_server;
struct sb_server_conn;

/* Client connections. */
void sb_log_client_started(sb_client *cl);
void sb_log_client_closed(sb_client *cl, sb_close_reason why, const char *error);
/* A client request refused before a connection exists: 401 (collection Authorization) and
 * 429 (collection Throttling).  user_id/hub may be NULL. */
void sb_log_client_unauthorized(struct sb_server *srv, const char *caller_ip, const char *hub, const char *message);
void sb_log_client_throttled(struct sb_server *srv, const char *caller_ip, const char *hub, const char *user_id,
                             int diagnostic, const char *message);
/* A send refused because the Free tier's daily message quota is used up (collection Throttling, operation
 * MessageThrottled, "Message count reaches limit").  connection_type: who sent it (names.h; REST callers and
 * app servers are Server); connection_id may be NULL. */
void sb_log_message_throttled(struct sb_server *srv, const char *caller_ip, const char *hub,
                              const char *connection_type, const char *connection_id);

/* Server connections (default mode). */
void sb_log_server_started(struct sb_server *srv, const char *server_connection_id, const char *hub,
                           const char *caller_ip, const char *server_id);
void sb_log_server_closed(struct sb_server *srv, const char *server_connection_id, const char *hub,
                          const char *caller_ip, const char *server_id, int aborted, const char *message);

/* Messaging: the four paths of the seed's message-flow story.  Each is a no-op unless collected. */
/* Path 1: a message from a diagnostic client arrived; returns the new service-generated tracing id (0 if
 * not traced). */
uint64_t sb_log_message_from_client(sb_client *cl, const char *message_type);
/* Path 2: that message left for the app server. */
void sb_log_message_to_server(sb_client *cl, uint64_t tracing_id, const char *server_connection_id);
/* Path 3: a service message with a tracing id arrived from an app server. */
void sb_log_message_from_server(struct sb_server *srv, sb_hub *hub, const char *message_type, uint64_t tracing_id,
                                const char *server_connection_id, const char *caller_ip);
/* Path 4: a traced message (m->tracing_id) was handed to a client's transport.  The deliveries of one message
 * are one fan-out record (diag.h), whose handle m keeps. */
void sb_log_message_to_client(sb_client *cl, sb_msg *m);

/* HTTP request logs. */
void sb_log_http_request(struct sb_server *srv, const char *method, const char *path, const char *query, int status,
                         double duration_ms, const char *caller_ip);

/* Transport type name for logs ("WebSockets", ...), NULL for none. */
const char *sb_log_transport_name(sb_transport t);

/* Serverless upstream: a call for a client's event failed (category/event as sent; error = what the client
 * got or would get, e.g. "Invocation failed, status code 500").  ConnectivityLogs, collection Connection,
 * operation InvokeUpstreamFailed, level Warning; collected like the client's connectivity events.  Takes
 * copies of the client's fields because the client may be gone when the answer comes. */
void sb_log_upstream_failed(struct sb_server *srv, const char *hub, const char *connection_id, const char *user_id,
                            sb_transport transport, int diagnostic, const char *caller_ip, const char *category,
                            const char *event, const char *error);

#endif
