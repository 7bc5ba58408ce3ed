/*
 * wsclient.c - one outbound WebSocket connection over libuv: TCP connect,
 * the HTTP/1.1 upgrade request, checking the 101 answer, then frames both ways
 * (masked out, unmasked in; ws_client_frame.c does the bytes).
 *
 * Lifetime: sb_wsc_connect() allocates; every end (refused connect, a non-101
 * answer, a close frame, EOF, an error, sb_wsc_close()) funnels into teardown(),
 * which closes the two handles (socket, closing-handshake timer).  When both
 * close callbacks have run, on_closed is called once and the object is freed.
 * So the owner may call sb_wsc_close() from inside on_message: nothing is freed
 * before the read callback returns (Redis freeClientAsync).
 *
 * Control frames: pings are answered with pongs; a close frame from the
 * service is echoed and ends the connection; our own close waits up to a
 * second for the echo.
 *
 * Not here: the service protocol (server_conn.c), name resolution (done once
 * at start-up by main.c), TLS.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "appserver.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/error.h"

#define MAX_RESPONSE_HEAD 16384
#define CLOSE_WAIT_MS 1000

enum { ST_CONNECTING, ST_UPGRADING, ST_OPEN, ST_CLOSING, ST_CLOSED };

struct sb_wsc {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    const sb_wsc_handler *h;
    void *user;
    int state;
    int handles_open;
    char accept[29]; /* the Sec-WebSocket-Accept we expect */
    sb_buf request;
    sb_buf head; /* the upgrade response so far */
    sb_wscf_parser parser;
    char *reason; /* why it ended: the first cause wins */
};

typedef struct wsc_write {
    uv_write_t req;
    sb_wsc *ws;
    sb_wsc_written_cb cb;
    void *arg;
    sb_buf frame;
} wsc_write;

static uint32_t next_mask(void) {
    /* masking only has to be unpredictable to a browser-side attacker; xorshift seeded from the kernel will
     * do */
    static uint64_t s;
    if (!s && (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s || !s))
        s = 0x9e3779b97f4a7c15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (uint32_t)(s >> 16);
}

static void on_handle_closed(uv_handle_t *hd) {
    sb_wsc *ws = hd->data;
    if (--ws->handles_open > 0)
        return;
    ws->h->on_closed(ws, ws->user, ws->reason ? ws->reason : "closed");
    sb_buf_free(&ws->request);
    sb_buf_free(&ws->head);
    sb_wscf_parser_free(&ws->parser);
    sb_free(ws->reason);
    sb_free(ws);
}

static void teardown(sb_wsc *ws, const char *reason) {
    if (ws->state == ST_CLOSED)
        return;
    ws->state = ST_CLOSED;
    if (!ws->reason)
        ws->reason = sb_strdup(reason);
    uv_read_stop((uv_stream_t *)&ws->tcp);
    uv_close((uv_handle_t *)&ws->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&ws->timer, on_handle_closed);
}

static void on_written(uv_write_t *req, int status) {
    wsc_write *w = (wsc_write *)req;
    if (status < 0 && status != UV_ECANCELED)
        teardown(w->ws, uv_strerror(status));
    if (w->cb)
        w->cb(w->arg, status);
    sb_buf_free(&w->frame);
    sb_free(w);
}

static int write_raw(sb_wsc *ws, sb_buf *bytes, sb_wsc_written_cb cb, void *arg) {
    if (uv_stream_get_write_queue_size((uv_stream_t *)&ws->tcp) > SB_APP_MAX_WRITE_QUEUE) {
        sb_buf_free(bytes);
        teardown(ws, "write queue over its bound (the service does not read)");
        return SB_ENOSPC;
    }
    wsc_write *w = sb_calloc(1, sizeof *w);
    w->ws = ws;
    w->cb = cb;
    w->arg = arg;
    w->frame = *bytes;
    sb_buf_init(bytes);
    uv_buf_t b = uv_buf_init(w->frame.data, (unsigned)w->frame.len);
    int rc = uv_write(&w->req, (uv_stream_t *)&ws->tcp, &b, 1, on_written);
    if (rc < 0) {
        sb_buf_free(&w->frame);
        sb_free(w);
        teardown(ws, uv_strerror(rc));
        return SB_EIO;
    }
    return SB_OK;
}

static int send_frame(sb_wsc *ws, int opcode, const void *data, size_t len, sb_wsc_written_cb cb, void *arg) {
    sb_buf f;
    sb_buf_init(&f);
    sb_wscf_build(&f, opcode, data, len, next_mask());
    return write_raw(ws, &f, cb, arg);
}

static void send_close_frame(sb_wsc *ws, uint16_t code, const char *reason) {
    uint8_t body[125];
    size_t n = 0;
    if (code && code != SB_WS_CLOSE_NO_STATUS) {
        body[0] = (uint8_t)(code >> 8);
        body[1] = (uint8_t)code;
        n = 2;
        size_t r = reason ? strlen(reason) : 0;
        if (r > sizeof body - 2) {
            r = sizeof body - 2;
            while (r && ((uint8_t)reason[r] & 0xC0) == 0x80)
                r--; /* keep the reason valid UTF-8 */
        }
        if (r)
            memcpy(body + 2, reason, r);
        n += r;
    }
    send_frame(ws, SB_WS_OP_CLOSE, body, n, NULL, NULL);
}

static void on_close_wait(uv_timer_t *t) {
    teardown(t->data, "closed (the service did not answer the close frame)");
}

/* ---- reading ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    /* one loop, one thread: the bytes are consumed before the next read */
    static char storage[65536];
    buf->base = storage;
    buf->len = sizeof storage;
}

static void feed_frames(sb_wsc *ws, const uint8_t *p, size_t n) {
    while (n && (ws->state == ST_OPEN || ws->state == ST_CLOSING)) {
        sb_ws_event ev;
        size_t used = 0;
        int rc = sb_wscf_parse(&ws->parser, p, n, &used, &ev);
        p += used;
        n -= used;
        if (rc == SB_EAGAIN)
            return;
        if (rc != SB_OK) {
            char why[160];
            snprintf(why, sizeof why, "invalid frame from the service: %s", ws->parser.error);
            send_close_frame(ws, ws->parser.error_close_code, ws->parser.error);
            teardown(ws, why);
            return;
        }
        switch (ev.opcode) {
        case SB_WS_OP_TEXT:
        case SB_WS_OP_BINARY:
            if (ws->state == ST_OPEN)
                ws->h->on_message(ws, ws->user, (const uint8_t *)ev.payload.base, ev.payload.len);
            break;
        case SB_WS_OP_PING:
            if (ws->state == ST_OPEN)
                send_frame(ws, SB_WS_OP_PONG, ev.payload.base, ev.payload.len, NULL, NULL);
            break;
        case SB_WS_OP_CLOSE: {
            char why[200];
            snprintf(why, sizeof why, "closed by the service (%u%s%.*s)", ev.close_code,
                     ev.close_reason.len ? " " : "", (int)ev.close_reason.len, ev.close_reason.base);
            if (ws->state == ST_OPEN)
                send_close_frame(ws, ev.close_code, NULL);
            teardown(ws, why);
            return;
        }
        default:
            break; /* pong */
        }
    }
}

/* Check the upgrade answer in ws->head; returns the header length or 0 (and tears down) on failure. */
static size_t check_upgrade(sb_wsc *ws, size_t head_len) {
    const char *s = ws->head.data;
    int status = 0;
    if (sscanf(s, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    int upgrade = 0, connection = 0, accept = 0;
    const char *line = strstr(s, "\r\n");
    while (line && (size_t)(line - s) + 2 < head_len) {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol || eol == line)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vlen = (size_t)(eol - v);
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (nlen == 7 && strncasecmp(line, "Upgrade", 7) == 0)
                upgrade = vlen == 9 && strncasecmp(v, "websocket", 9) == 0;
            else if (nlen == 10 && strncasecmp(line, "Connection", 10) == 0)
                connection = memmem(v, vlen, "pgrade", 6) != NULL; /* "Upgrade", any case of the U */
            else if (nlen == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0)
                accept = vlen == 28 && memcmp(v, ws->accept, 28) == 0;
        }
        line = eol;
    }
    if (status == 101 && upgrade && connection && accept)
        return head_len;
    char why[512];
    if (status != 101) {
        const char *eol = strstr(s, "\r\n");
        size_t body = ws->head.len - head_len;
        snprintf(why, sizeof why, "upgrade refused: %.*s%s%.*s", (int)(eol ? eol - s : 0), s,
                 body ? ": " : "", (int)(body > 300 ? 300 : body), s + head_len);
    } else {
        snprintf(why, sizeof why, "invalid upgrade response (upgrade %d, connection %d, accept %d)", upgrade,
                 connection, accept);
    }
    teardown(ws, why);
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    sb_wsc *ws = stream->data;
    if (nread == 0 || ws->state == ST_CLOSED)
        return;
    if (nread < 0) {
        teardown(ws, nread == UV_EOF ? "connection closed by the service" : uv_strerror((int)nread));
        return;
    }
    if (ws->state != ST_UPGRADING) {
        feed_frames(ws, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    sb_buf_append(&ws->head, buf->base, (size_t)nread);
    char *end = strstr(ws->head.data, "\r\n\r\n");
    if (!end) {
        if (ws->head.len > MAX_RESPONSE_HEAD)
            teardown(ws, "upgrade response too long");
        return;
    }
    size_t head_len = check_upgrade(ws, (size_t)(end + 4 - ws->head.data));
    if (!head_len)
        return;
    ws->state = ST_OPEN;
    sb_buf rest = ws->head;
    sb_buf_init(&ws->head);
    ws->h->on_open(ws, ws->user);
    feed_frames(ws, (const uint8_t *)rest.data + head_len, rest.len - head_len);
    sb_buf_free(&rest);
}

/* ---- connecting ----------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
    sb_wsc *ws = req->data;
    if (ws->state == ST_CLOSED)
        return;
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "connect: %s", uv_strerror(status));
        teardown(ws, why);
        return;
    }
    uv_tcp_nodelay(&ws->tcp, 1);
    ws->state = ST_UPGRADING;
    if (write_raw(ws, &ws->request, NULL, NULL) != SB_OK)
        return;
    int rc = uv_read_start((uv_stream_t *)&ws->tcp, on_alloc, on_read);
    if (rc < 0)
        teardown(ws, uv_strerror(rc));
}

sb_wsc *sb_wsc_connect(uv_loop_t *loop, const sb_wsc_request *r, const sb_wsc_handler *h, void *user) {
    sb_wsc *ws = sb_calloc(1, sizeof *ws);
    ws->h = h;
    ws->user = user;
    ws->state = ST_CONNECTING;
    sb_buf_init(&ws->request);
    sb_buf_init(&ws->head);
    sb_wscf_parser_init(&ws->parser, r->max_message);
    uv_tcp_init(loop, &ws->tcp);
    uv_timer_init(loop, &ws->timer);
    ws->tcp.data = ws->timer.data = ws->connect_req.data = ws;
    ws->handles_open = 2;

    uint8_t nonce[16];
    for (int i = 0; i < 4; i++) {
        uint32_t m = next_mask();
        memcpy(nonce + 4 * i, &m, 4);
    }
    sb_buf key;
    sb_buf_init(&key);
    sb_base64_encode(nonce, sizeof nonce, &key);
    sb_ws_accept_key(key.data, key.len, ws->accept);
    sb_buf_appendf(&ws->request,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                   r->target, r->host_header, key.data, r->extra_headers ? r->extra_headers : "");
    sb_buf_free(&key);

    int rc = uv_tcp_connect(&ws->connect_req, &ws->tcp, r->addr, on_connect);
    if (rc < 0) {
        char why[160];
        snprintf(why, sizeof why, "connect: %s", uv_strerror(rc));
        teardown(ws, why);
    }
    return ws;
}

int sb_wsc_send(sb_wsc *ws, int opcode, const void *data, size_t len, sb_wsc_written_cb cb, void *arg) {
    if (ws->state != ST_OPEN)
        return SB_ECLOSED;
    return send_frame(ws, opcode, data, len, cb, arg);
}

void sb_wsc_close(sb_wsc *ws, uint16_t code, const char *reason) {
    if (ws->state == ST_OPEN) {
        send_close_frame(ws, code, reason);
        if (ws->state == ST_CLOSED)
            return;
        ws->state = ST_CLOSING;
        if (!ws->reason)
            ws->reason = sb_strdup(reason && *reason ? reason : "closed");
        uv_timer_start(&ws->timer, on_close_wait, CLOSE_WAIT_MS, 0);
    } else if (ws->state == ST_CONNECTING || ws->state == ST_UPGRADING) {
        teardown(ws, reason && *reason ? reason : "closed before the upgrade completed");
    }
}

int sb_wsc_is_open(const sb_wsc *ws) {
    return ws->state == ST_OPEN;
}
