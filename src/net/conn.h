/*
 * conn.h - one accepted TCP socket and its byte I/O.
 *
 * An sb_conn starts as an HTTP/1.1 connection (net/http.c parses requests and
 * dispatches them).  A request handler may then turn the socket into something
 * longer-lived: a WebSocket (kind WS), a Server-Sent Events stream (SSE) or a
 * parked long poll (LP).  `client` points at the SignalR connection the socket
 * carries in those states.
 *
 * Writes: callers queue shared buffers with sb_conn_write(); nothing is written
 * immediately.  The connection is put on the server's pending list and flushed
 * once per loop turn (a uv_check handle), all queued buffers in one writev
 * (Redis handleClientsWithPendingWrites); a turn with many sockets to write
 * spreads those writevs over the write threads (conn.c, util/parfor.h).  queued + in-flight bytes above
 * max_output_queue_bytes make sb_conn_write() return SB_ENOSPC: the caller
 * closes the consumer as slow.
 *
 * Lifetime rules (see docs/ARCHITECTURE.md):
 *  1. sb_conn memory is freed only in the uv_close callback.
 *  2. sb_conn_close() may be called from any callback, including the conn's own
 *     read callback; it marks the conn, detaches the client and starts uv_close.
 *     Code holding a conn pointer after calling out must check conn->closing.
 *  3. sb_conn_close_after_flush() closes once queued bytes are written.  An
 *     HTTP connection then lingers: its write side is shut down and input is
 *     read and discarded for a bounded time and byte count before the close, so
 *     a client still sending a body we refused (413) reads our answer instead
 *     of a connection reset.
 */
#ifndef SB_CONN_H
#define SB_CONN_H

#include <uv.h>

#include "net/http_parse.h"
#include "net/outq.h"
#include "net/ws_frame.h"
#include "util/buf.h"
#include "util/list.h"

struct sb_server;
struct sb_client;

typedef enum sb_conn_kind {
    SB_CONN_HTTP = 0, /* parsing requests */
    SB_CONN_WS,       /* upgraded to WebSocket */
    SB_CONN_SSE,      /* streaming an event-stream response */
    SB_CONN_LP,       /* a long poll is parked, waiting for data */
} sb_conn_kind;

typedef struct sb_conn {
    uv_tcp_t tcp;
    struct sb_server *srv;
    /* Field order and widths keep an idle WebSocket's sb_conn in a 512-byte malloc chunk: tens of
     * thousands of them are the bulk of the server's memory (bench idle-19k). */
    sb_conn_kind kind : 4;
    unsigned closing : 1;
    unsigned close_after_flush : 1;
    unsigned write_pending : 1; /* on srv->pending_writes */
    unsigned busy : 1;          /* a request is being answered asynchronously; hold further input */
    unsigned resp_keep_alive : 1;
    unsigned peer_closed : 1; /* the peer ended the WebSocket with a close frame */
    unsigned internal_error : 1; /* a write failed for a reason that is not the peer's doing */
    unsigned lingering : 1;   /* answered and shut down for writing; draining input before the close */
    unsigned dispatching : 1; /* inside the HTTP request loop (no re-entry) */
    unsigned resp_head : 1;   /* the request being answered is a HEAD */
    unsigned handle_closed : 1; /* the uv_close callback ran */
    int holds; /* sb_conn_hold() references: memory outlives uv_close until released */
    char peer_ip[46];
    sb_http_parser *http; /* kind == HTTP, from a request's first byte until it is answered (net/http.c) */
    char *origin;         /* Origin of the request being answered (CORS), or NULL */
    sb_buf in;            /* bytes received and not yet consumed; no storage while empty */
    sb_ws_parser *ws;     /* kind == WS, only while a frame or message is partly received (net/ws.c) */
    sb_outq out;          /* queued, not yet handed to the kernel */
    size_t inflight;      /* bytes handed to uv_write and not yet completed */
    sb_list pending_link; /* in srv->pending_writes */
    sb_list all_link;     /* in srv->conns */
    struct sb_client *client; /* the SignalR client this socket carries (WS, SSE, LP) */
    /* Other WebSocket users (app-server connections): whole messages and the socket's end. */
    void *upper;
    void (*on_ws_message)(struct sb_conn *c, int opcode, const char *data, size_t len);
    void (*on_lost)(struct sb_conn *c);
    uint64_t req_start_ns; /* when the request being answered was complete (HTTP request logs) */
    uint64_t linger_deadline_ms;
    uint32_t linger_discarded; /* bounded by LINGER_MAX_BYTES (conn.c) */
    uint32_t ws_max_message;   /* kind == WS: the message size limit the parser is created with */
} sb_conn;

/* Queue b for writing (takes a reference).  SB_ENOSPC if over the output limit (nothing queued). */
int sb_conn_write(sb_conn *c, sb_shbuf *b);
/* Queue a copy of bytes (for small one-off responses); never refuses. */
void sb_conn_write_copy(sb_conn *c, const void *p, size_t n);
/* Bytes queued or in flight. */
static inline size_t sb_conn_backlog(const sb_conn *c) { return c->out.bytes + c->inflight; }
void sb_conn_close(sb_conn *c);
/*
 * Keep the conn's memory valid across asynchronous work (a threadpool query):
 * hold before starting, release in the after-work callback, and check
 * c->closing before answering.  The memory is freed by whichever comes last,
 * the uv_close callback or the last release.
 */
static inline void sb_conn_hold(sb_conn *c) { c->holds++; }
void sb_conn_release(sb_conn *c);
void sb_conn_close_after_flush(sb_conn *c);
/* Close lingering connections past their deadline (called from the server's sweep). */
void sb_conn_sweep(struct sb_server *srv);
/* Write everything queued on every pending connection (called once per loop turn). */
void sb_conn_flush_pending(struct sb_server *srv);

/* Accept a new connection on the listener (called from the listen callback). */
void sb_conn_accept(struct sb_server *srv, uv_stream_t *listener);

#endif
