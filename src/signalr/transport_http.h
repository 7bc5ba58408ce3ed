/*
 * transport_http.h - the two HTTP transports: Server-Sent Events (one long
 * response carrying "data:" events) and long polling (each GET waits for
 * queued messages).  Sends from the client arrive as HTTP POSTs for both and
 * are handled in client.c.
 */
#ifndef SB_TRANSPORT_HTTP_H
#define SB_TRANSPORT_HTTP_H

#include "hub/hub.h"
#include "net/conn.h"

/* Start the event stream on c for client cl. */
void sb_sse_start(sb_conn *c, sb_client *cl);
/* A poll request for cl: answer at once (first poll, queued data, closed) or park it. */
void sb_lp_poll(sb_conn *c, sb_client *cl);
/* Answer the parked poll with everything queued (no-op if none is parked or nothing is queued). */
void sb_lp_flush(sb_client *cl);
/* Answer a parked poll with 204 (the connection is over), detaching it. */
void sb_lp_end(sb_client *cl);
/* Sweep: answer polls past their deadline with an empty 200. */
void sb_lp_check_deadline(sb_client *cl, uint64_t now);

#endif
