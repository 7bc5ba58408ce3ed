/*
 * ws_client_frame.c - WebSocket framing from the client's side of RFC 6455:
 * frames we send are masked, frames the server sends are not (and must not be).
 *
 * I/O-free, incremental (any split of the input works, one byte at a time
 * included), bounded: a data message larger than max_message is refused as
 * soon as its declared length says so, before its bytes arrive.
 *
 * The server-side codec (src/net/ws_frame.c) is the mirror image; it stays
 * untouched so the service's hot path keeps its own invariants.  Events reuse
 * its sb_ws_event so both sides speak about frames the same way.
 */
#include <string.h>

#include "appserver.h"
#include "util/error.h"
#include "util/utf8.h"

void sb_wscf_parser_init(sb_wscf_parser *p, size_t max_message) {
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
    sb_buf_init(&p->msg);
    sb_buf_init(&p->ctl);
}

void sb_wscf_parser_free(sb_wscf_parser *p) {
    sb_buf_free(&p->msg);
    sb_buf_free(&p->ctl);
}

static int fail(sb_wscf_parser *p, int rc, uint16_t code, const char *why) {
    p->error_close_code = code;
    p->error = why;
    return rc;
}

static int valid_close_code(unsigned code) {
    if (code >= 3000 && code <= 4999)
        return 1;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

/* The header is complete: check it and set up the payload phase. */
static int start_frame(sb_wscf_parser *p) {
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    if (b0 & 0x70)
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    if (b1 & 0x80)
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "masked frame from the server");
    int op = b0 & 0x0f, fin = (b0 & 0x80) != 0;
    uint64_t len = b1 & 0x7f;
    if (len == 126) {
        len = ((uint64_t)p->hdr[2] << 8) | p->hdr[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p->hdr[2 + i];
        if (len >> 63)
            return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "frame length has the top bit set");
    }
    switch (op) {
    case SB_WS_OP_CLOSE:
    case SB_WS_OP_PING:
    case SB_WS_OP_PONG:
        if (!fin || len > 125)
            return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "invalid control frame");
        sb_buf_reset(&p->ctl);
        break;
    case SB_WS_OP_TEXT:
    case SB_WS_OP_BINARY:
        if (p->msg_opcode)
            return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
        p->msg_opcode = op;
        sb_buf_reset(&p->msg);
        /* fall through */
    case SB_WS_OP_CONT:
        if (!p->msg_opcode)
            return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "continuation without a message");
        if (len > p->max_message || p->msg.len + len > p->max_message)
            return fail(p, SB_E2BIG, SB_WS_CLOSE_TOO_BIG, "message too big");
        break;
    default:
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "unknown opcode");
    }
    p->frame_opcode = op;
    p->frame_fin = fin;
    p->frame_len = len;
    p->frame_got = 0;
    p->in_payload = 1;
    return SB_OK;
}

/* The payload is complete: SB_OK with *ev when it finishes an event, SB_EAGAIN otherwise. */
static int end_frame(sb_wscf_parser *p, sb_ws_event *ev) {
    p->in_payload = 0;
    p->hdr_len = 0;
    memset(ev, 0, sizeof *ev);
    int op = p->frame_opcode;
    if (op == SB_WS_OP_CLOSE || op == SB_WS_OP_PING || op == SB_WS_OP_PONG) {
        ev->opcode = op;
        ev->payload = sb_slice_make(p->ctl.data, p->ctl.len);
        if (op == SB_WS_OP_CLOSE) {
            ev->close_code = SB_WS_CLOSE_NO_STATUS;
            if (p->ctl.len == 1)
                return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body");
            if (p->ctl.len >= 2) {
                unsigned code = ((unsigned)(uint8_t)p->ctl.data[0] << 8) | (uint8_t)p->ctl.data[1];
                if (!valid_close_code(code))
                    return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
                ev->close_code = (uint16_t)code;
                ev->close_reason = sb_slice_make(p->ctl.data + 2, p->ctl.len - 2);
                if (!sb_utf8_valid(ev->close_reason.base, ev->close_reason.len))
                    return fail(p, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA, "close reason is not UTF-8");
            }
        }
        p->emitted = 1;
        return SB_OK;
    }
    if (!p->frame_fin)
        return SB_EAGAIN;
    if (p->msg_opcode == SB_WS_OP_TEXT && !sb_utf8_valid(p->msg.data, p->msg.len))
        return fail(p, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA, "text message is not UTF-8");
    ev->opcode = p->msg_opcode;
    ev->payload = sb_slice_make(p->msg.data, p->msg.len);
    p->msg_opcode = 0;
    p->emitted = 1;
    return SB_OK;
}

static size_t header_size(const uint8_t *hdr) {
    unsigned l = hdr[1] & 0x7f;
    return l == 126 ? 4 : l == 127 ? 10 : 2;
}

int sb_wscf_parse(sb_wscf_parser *p, const uint8_t *data, size_t len, size_t *consumed, sb_ws_event *ev) {
    if (p->emitted) {
        p->emitted = 0;
        if (!p->msg_opcode)
            sb_buf_reset(&p->msg);
        sb_buf_reset(&p->ctl);
    }
    size_t off = 0;
    for (;;) {
        if (!p->in_payload) {
            while (off < len && (p->hdr_len < 2 || p->hdr_len < header_size(p->hdr)))
                p->hdr[p->hdr_len++] = data[off++];
            if (p->hdr_len < 2 || p->hdr_len < header_size(p->hdr))
                break;
            int rc = start_frame(p);
            if (rc != SB_OK) {
                *consumed = off;
                return rc;
            }
        }
        uint64_t want = p->frame_len - p->frame_got;
        size_t take = (size_t)(want < (uint64_t)(len - off) ? want : (uint64_t)(len - off));
        int control = p->frame_opcode >= SB_WS_OP_CLOSE;
        sb_buf_append(control ? &p->ctl : &p->msg, data + off, take);
        off += take;
        p->frame_got += take;
        if (p->frame_got < p->frame_len)
            break;
        int rc = end_frame(p, ev);
        if (rc != SB_EAGAIN) {
            *consumed = off;
            return rc;
        }
    }
    *consumed = off;
    return SB_EAGAIN;
}

void sb_wscf_build(sb_buf *out, int opcode, const void *payload, size_t len, uint32_t mask) {
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t key[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8), (uint8_t)mask};
    memcpy(hdr + h, key, 4);
    h += 4;
    sb_buf_reserve(out, h + len);
    sb_buf_append(out, hdr, h);
    uint8_t *dst = (uint8_t *)out->data + out->len;
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        dst[i] = src[i] ^ key[i & 3];
    out->len += len;
    out->data[out->len] = '\0';
}
