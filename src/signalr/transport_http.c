/*
 * transport_http.c - Server-Sent Events and long polling; see transport_http.h.
 *
 * SSE: the response head has no Content-Length and the socket closes when the
 * stream ends.  ":\r\n" goes out first so browsers fire onopen at once.
 * Messages are framed as events once per fan-out (hub/msg.c) and queued on
 * the socket like WebSocket frames.
 *
 * Long polling: messages wait in the client's lp->queue (bounded like any
 * output queue; cl->lp exists from the first poll on, other transports do
 * without it).  The first poll is the connect step and returns 200 empty at
 * once; later polls return everything queued, or park until data arrives or
 * the poll deadline passes (200 empty, the client polls again).  A poll for a
 * closed connection gets 204.  While no poll is parked the client is
 * "transport lost" and the disconnect timeout runs.
 */
#include "signalr/transport_http.h"

#include <string.h>

#include "net/http.h"
#include "server.h"
#include "signalr/client.h"
#include "util/alloc.h"

static const char no_cache[] = "Cache-Control: no-cache, no-store\r\nPragma: no-cache\r\n"
                               "Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n";

void sb_sse_start(sb_conn *c, sb_client *cl) {
    c->resp_keep_alive = 0; /* the stream ends with the socket */
    sb_http_respond_head(c, 200, "text/event-stream",
                         "Cache-Control: no-cache,no-store\r\nPragma: no-cache\r\nContent-Encoding: identity\r\n"
                         "X-Accel-Buffering: no\r\n");
    sb_conn_write_copy(c, ":\r\n", 3);
    sb_http_release_request(c); /* a stream until the socket closes: no further request on it */
    c->kind = SB_CONN_SSE;
    c->client = cl;
    cl->conn = c;
}

static void answer_with_queue(sb_conn *c, sb_client *cl) {
    sb_outq *q = &cl->lp->queue;
    char head[512];
    snprintf(head, sizeof head, "%s", no_cache);
    c->kind = SB_CONN_HTTP;
    c->client = NULL;
    if (cl->conn == c)
        cl->conn = NULL;
    /* head with the total length, then the queued payloads themselves (shared, not copied) */
    size_t total = q->bytes;
    sb_http_log_response(c, 200);
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appendf(&b, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %zu\r\n%s", total,
                   head);
    if (c->origin)
        sb_buf_appendf(&b, "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
                       c->origin);
    if (!c->resp_keep_alive)
        sb_buf_appends(&b, "Connection: close\r\n");
    sb_buf_appends(&b, "\r\n");
    sb_conn_write_copy(c, b.data, b.len);
    sb_buf_free(&b);
    while (q->count) {
        sb_shbuf *s = sb_outq_at(q, 0);
        if (q->off) {
            sb_conn_write_copy(c, s->data + q->off, s->len - q->off);
        } else {
            sb_outq_push(&c->out, s); /* never refused: the queue bound was enforced on entry */
            sb_conn_write_copy(c, "", 0);
        }
        sb_outq_consume(q, s->len - q->off);
    }
    cl->lp->transport_lost_ms = sb_now_ms(c->srv);
    sb_http_request_done(c);
}

void sb_lp_poll(sb_conn *c, sb_client *cl) {
    if (cl->conn && cl->conn != c && cl->conn->kind == SB_CONN_LP) {
        /* a newer poll supersedes the parked one */
        sb_conn *old = cl->conn;
        old->client = NULL;
        old->kind = SB_CONN_HTTP;
        cl->conn = NULL;
        sb_http_respond(old, 204, "text/plain", NULL, 0, no_cache);
    }
    if (cl->state == SB_CLIENT_CLOSED) {
        sb_client_ref(cl);
        if (cl->lp && cl->lp->queue.count)
            answer_with_queue(c, cl);
        else
            sb_http_respond(c, 204, "text/plain", NULL, 0, no_cache);
        sb_client_forget(cl);
        sb_client_unref(cl);
        return;
    }
    if (cl->transport == SB_TRANSPORT_NONE) {
        /* first poll: the connect step, answered at once */
        cl->lp = sb_calloc(1, sizeof(*cl->lp));
        sb_outq_init(&cl->lp->queue);
        cl->transport = SB_TRANSPORT_LONGPOLLING;
        cl->state = SB_CLIENT_HANDSHAKE;
        cl->lp->transport_lost_ms = sb_now_ms(c->srv);
        cl->state_ms = cl->last_recv_ms = sb_stamp(cl->lp->transport_lost_ms);
        sb_http_respond(c, 200, "application/octet-stream", NULL, 0, no_cache);
        return;
    }
    if (cl->lp->queue.count) {
        answer_with_queue(c, cl);
        return;
    }
    c->kind = SB_CONN_LP;
    c->client = cl;
    cl->conn = c;
    cl->lp->transport_lost_ms = 0;
    cl->lp->poll_deadline_ms = sb_now_ms(c->srv) + (uint64_t)c->srv->cfg.long_poll_timeout_ms;
}

void sb_lp_flush(sb_client *cl) {
    sb_conn *c = cl->conn;
    if (c && c->kind == SB_CONN_LP && !c->closing && cl->lp->queue.count)
        answer_with_queue(c, cl);
}

void sb_lp_end(sb_client *cl) {
    sb_conn *c = cl->conn;
    if (!c || c->kind != SB_CONN_LP || c->closing)
        return;
    if (cl->lp->queue.count) {
        answer_with_queue(c, cl);
        return;
    }
    c->client = NULL;
    cl->conn = NULL;
    sb_http_respond(c, 204, "text/plain", NULL, 0, no_cache);
}

void sb_lp_check_deadline(sb_client *cl, uint64_t now) {
    sb_conn *c = cl->conn;
    if (!c || c->kind != SB_CONN_LP || c->closing || now < cl->lp->poll_deadline_ms)
        return;
    c->client = NULL;
    cl->conn = NULL;
    cl->lp->transport_lost_ms = now;
    sb_http_respond(c, 200, "application/octet-stream", NULL, 0, no_cache);
}
