/*
 * client.h - the SignalR client endpoint: /client/negotiate, the transports'
 * connect requests (/client/?hub=H&id=TOKEN), the hub handshake, inbound hub
 * messages, keep-alive and timeouts, and closing a client.
 *
 * Transports: WebSockets (net/ws.c framing), Server-Sent Events and long
 * polling (signalr/transport_http.c) all end in the same calls here:
 * sb_client_on_bytes() for inbound hub-protocol bytes and sb_client_deliver()
 * (hub/router.c) for outbound messages.
 */
#ifndef SB_CLIENT_H
#define SB_CLIENT_H

#include "hub/hub.h"
#include "net/conn.h"

/* Why a client connection ended: drives the Close message, logs and metrics. */
typedef enum sb_close_reason {
    SB_CLOSE_NORMAL = 0,          /* the client closed (Close message, DELETE, socket closed after Close) */
    SB_CLOSE_BY_APP,              /* REST close / app server CloseConnection */
    SB_CLOSE_PING_TIMEOUT,        /* nothing received within client_timeout */
    SB_CLOSE_HANDSHAKE_TIMEOUT,
    SB_CLOSE_HANDSHAKE_ERROR,
    SB_CLOSE_PROTOCOL_ERROR,      /* bad frames or hub messages */
    SB_CLOSE_SLOW_CLIENT,         /* output queue over its limit */
    SB_CLOSE_TRANSPORT_LOST,      /* socket dropped without a Close */
    SB_CLOSE_SERVICE_RELOAD,      /* graceful shutdown / reload */
    SB_CLOSE_SERVER_DROPPED,      /* default mode: its app-server connection dropped */
    SB_CLOSE_INTERNAL_ERROR,
    SB_CLOSE_NEGOTIATE_TIMEOUT,   /* negotiated but never connected */
    SB_CLOSE_UPSTREAM_FAILED,     /* serverless: a connect/connected upstream call failed (InvokeUpstreamFailed) */
} sb_close_reason;

/* Handle a request under /client/ (negotiate or connect).  Always answers or takes the socket over. */
void sb_client_endpoint_handle(sb_conn *c, sb_http_request *req);

/* Inbound hub-protocol bytes from the client's transport. */
void sb_client_on_bytes(sb_client *cl, const char *data, size_t len);

/*
 * Close a client: send a Close message (error may be NULL; allow_reconnect as
 * given) when the transport can still carry it, close the transport after the
 * flush, unlink from all indexes.  Safe to call more than once and from inside
 * the client's own callbacks.
 */
void sb_client_close(sb_client *cl, sb_close_reason why, const char *error, int allow_reconnect);

/* The transport of a client went away (socket closed).  For WS this ends the client; for SSE/LP it
 * starts the disconnect timeout. */
void sb_client_transport_lost(sb_client *cl, sb_conn *c);

/* Periodic sweep: pings, client/handshake/negotiate/disconnect timeouts. */
void sb_client_sweep(struct sb_server *srv);

/* Close every client for a graceful stop (reconnect allowed). */
void sb_client_close_all(struct sb_server *srv, sb_close_reason why, const char *error);

#endif
