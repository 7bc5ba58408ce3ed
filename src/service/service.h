/*
 * service.h - default mode: app servers connected over the Azure SignalR
 * service protocol, and the routing of client connections through them.
 *
 * An app server (the Microsoft.Azure.SignalR SDK, or any speaker of the
 * protocol) opens several WebSocket "server connections" per hub at
 * /server/?hub=H.  Each new client connection of the hub is assigned to one of
 * them (round robin over the live ones, sticky for the client's life):
 * OpenConnection carries the client's claims, headers and query; every client
 * message goes up as ConnectionData; the server's messages come down and are
 * fanned out by the router (one connection, many, a user, a group, everyone)
 * with the payload for each client's hub protocol.
 *
 * Codec: service/svcproto.c.  Fan-out: hub/router.c.  This file owns the
 * server connections' state, the ack replies, keep-alive, and what happens to
 * clients when their server connection goes away ("Server connection dropped").
 */
#ifndef SB_SERVICE_H
#define SB_SERVICE_H

#include "hub/hub.h"
#include "net/conn.h"
#include "signalr/hubproto.h"

struct sb_server;

/* Handle a request under /server/ (authenticated WebSocket upgrade). */
void sb_service_endpoint_handle(sb_conn *c, sb_http_request *req);
/* Can a new client of this hub be routed (a live, handshaken server connection that carries clients)? */
int sb_service_hub_available(sb_hub *hub);
/* Handshaken server connections of a hub (metrics). */
size_t sb_service_hub_server_count(sb_hub *hub);
/*
 * Route a client whose hub handshake request was received: pick a server
 * connection, send OpenConnection, then the handshake bytes as ConnectionData.
 * SB_ENOENT when no server connection can take it.
 */
int sb_service_open_client(sb_client *cl, const char *handshake, size_t len);
/* Forward one framed client message (tracing_id 0 = none). */
void sb_service_client_data(sb_client *cl, const char *data, size_t len, uint64_t tracing_id);
/* A client Completion answering a client-result invocation: sent to the caller server as
 * ClientCompletion.  Returns 1 if it was such a completion (consumed), 0 otherwise. */
int sb_service_client_completion(sb_client *cl, const sb_hub_msg *m, const char *framed, size_t len);
/* The client ended: tell its server with CloseConnection (error may be NULL), unless the server closed it. */
void sb_service_client_closed(sb_client *cl, const char *error);
/* Keep-alive pings and timeouts of server connections. */
void sb_service_sweep(struct sb_server *srv);
/* Graceful stop: tell servers this instance goes offline, close their connections after the flush. */
void sb_service_stop(struct sb_server *srv);
/* "Collect all" messaging logs on/off: the d-m ping to every server connection (and to new ones). */
void sb_service_set_message_logging(struct sb_server *srv, int on);
/* Set up / tear down the registry (srv->servers). */
void sb_service_init(struct sb_server *srv);
void sb_service_free(struct sb_server *srv);

#endif
