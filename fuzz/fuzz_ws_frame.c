/*
 * fuzz_ws_frame.c - libFuzzer target for the WebSocket frame parser and
 * encoders (net/ws_frame.c).
 *
 * The first input byte picks the chunk size the rest is fed in and the
 * message size limit; the rest is a client's byte stream.  Every event is
 * checked against what net/ws.c relies on (text is valid UTF-8, messages fit
 * the limit, control payloads fit 125 bytes, close codes are sendable) and
 * its payload is run back through the encoders.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_frame.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            abort();                                                                                         \
    } while (0)

static void check_event(const sb_ws_parser *p, const sb_ws_event *ev) {
    switch (ev->opcode) {
    case SB_WS_OP_TEXT:
        CHECK(sb_utf8_valid(ev->payload.base, ev->payload.len));
        /* fall through */
    case SB_WS_OP_BINARY:
        CHECK(ev->payload.len <= p->max_message);
        break;
    case SB_WS_OP_CLOSE:
        CHECK(ev->payload.len <= 125);
        CHECK(ev->close_code == SB_WS_CLOSE_NO_STATUS || (ev->close_code >= 1000 && ev->close_code < 5000));
        CHECK(sb_utf8_valid(ev->close_reason.base, ev->close_reason.len));
        break;
    case SB_WS_OP_PING:
    case SB_WS_OP_PONG:
        CHECK(ev->payload.len <= 125);
        break;
    default:
        abort();
    }

    sb_shbuf *f = sb_ws_frame_build(ev->opcode, ev->payload.base, ev->payload.len);
    uint8_t h[10];
    CHECK(f->len == sb_ws_frame_header(h, ev->opcode, ev->payload.len) + ev->payload.len);
    sb_shbuf_unref(f);
    /* Any bytes as a close reason: the frame stays within 125 bytes of payload. */
    char *reason = sb_strndup(ev->payload.base, ev->payload.len);
    f = sb_ws_close_frame(SB_WS_CLOSE_NORMAL, reason);
    CHECK(f->len <= 2 + 125 && (uint8_t)f->data[1] == f->len - 2);
    sb_shbuf_unref(f);
    sb_free(reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] & 0x1F) + 1;
    size_t max_message = data[0] & 0x80 ? 1 << 16 : 64;
    data++, size--;

    char accept[29];
    sb_ws_accept_key((const char *)data, size < 64 ? size : 64, accept);
    CHECK(strlen(accept) == 28);

    sb_ws_parser p;
    sb_ws_parser_init(&p, max_message);
    size_t off = 0;
    while (off < size) {
        size_t n = step < size - off ? step : size - off;
        size_t used = 0;
        sb_ws_event ev;
        int rc = sb_ws_parse(&p, data + off, n, &used, &ev);
        CHECK(used <= n);
        off += used;
        if (rc == SB_OK) {
            check_event(&p, &ev);
        } else if (rc != SB_EAGAIN) {
            CHECK(rc == SB_EPROTO || rc == SB_EUTF8 || rc == SB_E2BIG);
            CHECK(p.error != NULL && p.error_close_code >= 1002 && p.error_close_code <= 1009);
            break;
        } else {
            CHECK(used == n);
        }
    }
    sb_ws_parser_free(&p);
    return 0;
}
