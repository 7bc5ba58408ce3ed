/*
 * ws.h - WebSocket connections: the upgrade response, reading frames into
 * whole messages, control frames (ping/pong/close), and sending.
 *
 * After sb_ws_upgrade() the sb_conn is in WS mode; each whole data message is
 * passed to the conn's client (SignalR hub-protocol bytes) or to
 * c->on_ws_message (app-server connections).  Protocol errors close with the
 * status code the parser chose (1002, 1007, 1009).
 */
#ifndef SB_WS_H
#define SB_WS_H

#include "net/conn.h"

/* Validate the upgrade request; on failure answers 400 and returns SB_EPROTO. */
int sb_ws_check_upgrade(sb_conn *c, const sb_http_request *req);
/* Answer 101 and switch the conn to WebSocket mode; leftover input after the request is kept. */
void sb_ws_upgrade(sb_conn *c, const sb_http_request *req, size_t max_message);
void sb_ws_on_data(sb_conn *c);
/* Send a close frame and close after it is flushed. */
void sb_ws_close(sb_conn *c, uint16_t code, const char *reason);

#endif
