/*
 * ws.c - WebSocket connections on top of sb_conn; see ws.h.
 * Framing rules live in ws_frame.c; this file moves bytes between the socket
 * and the message consumer and answers control frames.
 *
 * The frame parser exists only while a frame or a fragmented message is
 * partly received: it is created when bytes arrive and freed (with its
 * reassembly buffers) once they are all consumed at a frame boundary.  An
 * idle WebSocket therefore holds no parser and no buffer; the limit it is
 * created with stays in c->ws_max_message.
 */
#include "net/ws.h"

#include <string.h>

#include "net/http.h"
#include "server.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/error.h"

int sb_ws_check_upgrade(sb_conn *c, const sb_http_request *req) {
    sb_slice up = sb_http_header_get(req, "Upgrade");
    sb_slice ver = sb_http_header_get(req, "Sec-WebSocket-Version");
    sb_slice key = sb_http_header_get(req, "Sec-WebSocket-Key");
    if (req->method != HTTP_GET || !up.base || !sb_slice_ieq(up, "websocket") ||
        !sb_http_header_has_token(req, "Connection", "upgrade") || !key.base || key.len < 16 || key.len > 64) {
        sb_http_respond_text(c, 400, "Not a valid WebSocket request.");
        return SB_EPROTO;
    }
    if (!ver.base || !sb_slice_eq(ver, "13")) {
        sb_http_respond(c, 426, "text/plain", "Unsupported WebSocket version.", 30, "Sec-WebSocket-Version: 13\r\n");
        return SB_EPROTO;
    }
    return SB_OK;
}

void sb_ws_upgrade(sb_conn *c, const sb_http_request *req, size_t max_message) {
    sb_slice key = sb_http_header_get(req, "Sec-WebSocket-Key");
    char accept[29];
    sb_ws_accept_key(key.base, key.len, accept);
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appendf(&b,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   accept);
    sb_conn_write_copy(c, b.data, b.len);
    sb_buf_free(&b);
    c->kind = SB_CONN_WS;
    c->ws_max_message = max_message > UINT32_MAX ? UINT32_MAX : (uint32_t)max_message;
    /* the HTTP parser is freed by the HTTP layer once the dispatch returns; the frame parser
     * is created with the first bytes (sb_ws_on_data) */
}

void sb_ws_close(sb_conn *c, uint16_t code, const char *reason) {
    if (c->closing || c->close_after_flush)
        return;
    sb_shbuf *f = sb_ws_close_frame(code, reason);
    sb_outq_push(&c->out, f); /* a close frame is never refused for backlog */
    sb_shbuf_unref(f);
    sb_conn_write_copy(c, "", 0); /* marks the conn for the flush */
    sb_conn_close_after_flush(c);
}

static void deliver(sb_conn *c, int opcode, const char *data, size_t len) {
    if (c->client)
        sb_client_on_bytes(c->client, data, len);
    else if (c->on_ws_message)
        c->on_ws_message(c, opcode, data, len);
}

void sb_ws_on_data(sb_conn *c) {
    if (!c->ws && c->in.len) {
        c->ws = sb_malloc(sizeof(*c->ws));
        sb_ws_parser_init(c->ws, c->ws_max_message);
    }
    size_t off = 0;
    while (off < c->in.len && !c->closing && !c->close_after_flush) {
        size_t used = 0;
        sb_ws_event ev;
        int rc = sb_ws_parse(c->ws, (const uint8_t *)c->in.data + off, c->in.len - off, &used, &ev);
        off += used;
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            uint16_t code = c->ws->error_close_code ? c->ws->error_close_code : SB_WS_CLOSE_PROTOCOL_ERROR;
            const char *why = c->ws->error ? c->ws->error : "protocol error";
            /* the close frame with the parser's code goes first; the client then ends without a hub Close */
            sb_ws_close(c, code, why);
            if (c->client)
                sb_client_close(c->client, SB_CLOSE_PROTOCOL_ERROR, NULL, 0);
            break;
        }
        switch (ev.opcode) {
        case SB_WS_OP_TEXT:
        case SB_WS_OP_BINARY:
            deliver(c, ev.opcode, ev.payload.base, ev.payload.len);
            break;
        case SB_WS_OP_PING: {
            sb_shbuf *f = sb_ws_frame_build(SB_WS_OP_PONG, ev.payload.base, ev.payload.len);
            sb_conn_write(c, f);
            sb_shbuf_unref(f);
            break;
        }
        case SB_WS_OP_PONG:
            break;
        case SB_WS_OP_CLOSE:
            c->peer_closed = 1;
            sb_ws_close(c, ev.close_code == SB_WS_CLOSE_NO_STATUS ? SB_WS_CLOSE_NORMAL : ev.close_code, "");
            break;
        }
    }
    if (c->closing)
        return;
    sb_buf_consume(&c->in, off);
    if (c->ws && !c->in.len && sb_ws_parser_idle(c->ws)) {
        /* every event was handled above: nothing in the parser is needed any more */
        sb_ws_parser_free(c->ws);
        sb_free(c->ws);
        c->ws = NULL;
    }
}
