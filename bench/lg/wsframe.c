/*
 * wsframe.c - the client's side of RFC 6455 framing for the load generator:
 * frames it sends are masked, frames servers send are not.
 *
 * The receive side is a streaming parser with no message reassembly: data frame
 * payloads are handed on chunk by chunk as they arrive (the stamp scanner does
 * not care where a message starts), so a subscriber needs 32 bytes of frame
 * state and never a buffer.  Only a control frame split across reads is
 * gathered, into a 125-byte block allocated for that moment (servers send them
 * rarely: pings, the final close).
 *
 * Deliberately lenient where a load generator can afford it: text payloads are
 * not UTF-8 validated, fragmentation rules for data frames are not enforced.
 * Strict where a broken server would corrupt the measurement: masked frames,
 * reserved bits, unknown opcodes, oversized or fragmented control frames.
 *
 * The service's own server-side codec (src/net/ws_frame.c) reassembles and
 * validates whole messages, which is the wrong trade for 10,000 subscribers in
 * one process; the opcodes are shared with it.
 */
#include <string.h>

#include "loadgen.h"
#include "net/ws_frame.h"
#include "util/alloc.h"
#include "util/error.h"

size_t sb_lg_ws_frame(uint8_t *out, int opcode, const void *payload, size_t len, uint32_t mask) {
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t key[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8), (uint8_t)mask};
    memcpy(out + h, key, 4);
    h += 4;
    const uint8_t *src = payload;
    for (size_t i = 0; i < len; i++)
        out[h + i] = src[i] ^ key[i & 3];
    return h + len;
}

static size_t header_size(const uint8_t *hdr) {
    unsigned l7 = hdr[1] & 0x7f;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
}

static int valid_opcode(int op) {
    return op == SB_WS_OP_CONT || op == SB_WS_OP_TEXT || op == SB_WS_OP_BINARY || op == SB_WS_OP_CLOSE ||
           op == SB_WS_OP_PING || op == SB_WS_OP_PONG;
}

/* The header in rx->hdr is complete: check it and enter the payload. */
static int start_frame(sb_lg_wsrx *rx) {
    uint8_t b0 = rx->hdr[0], b1 = rx->hdr[1];
    int op = b0 & 0x0f;
    if ((b0 & 0x70) || (b1 & 0x80) || !valid_opcode(op))
        return SB_EPROTO;
    uint64_t len = b1 & 0x7f;
    if (len == 126) {
        len = ((uint64_t)rx->hdr[2] << 8) | rx->hdr[3];
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | rx->hdr[2 + i];
        if (len >> 63)
            return SB_EPROTO;
    }
    if (op >= SB_WS_OP_CLOSE && (len > 125 || !(b0 & 0x80)))
        return SB_EPROTO;
    rx->opcode = (uint8_t)op;
    rx->left = len;
    rx->in_frame = 1;
    rx->hdr_len = 0;
    rx->ctl_len = 0;
    return SB_OK;
}

static void end_control(sb_lg_wsrx *rx, const sb_lg_ws_handler *h, void *arg, const uint8_t *p, size_t n) {
    rx->in_frame = 0;
    h->on_control(arg, rx->opcode, p, n);
}

int sb_lg_ws_feed(sb_lg_wsrx *rx, const uint8_t *p, size_t n, const sb_lg_ws_handler *h, void *arg) {
    while (n) {
        if (!rx->in_frame) {
            size_t need = rx->hdr_len < 2 ? 2 : header_size(rx->hdr);
            size_t take = need - rx->hdr_len < n ? need - rx->hdr_len : n;
            memcpy(rx->hdr + rx->hdr_len, p, take);
            rx->hdr_len += (uint8_t)take;
            p += take;
            n -= take;
            if (rx->hdr_len < 2 || rx->hdr_len < header_size(rx->hdr))
                continue;
            int rc = start_frame(rx);
            if (rc != SB_OK)
                return rc;
            if (!rx->left) {
                if (rx->opcode >= SB_WS_OP_CLOSE)
                    end_control(rx, h, arg, p, 0);
                else
                    rx->in_frame = 0;
            }
            continue;
        }
        size_t take = rx->left < n ? (size_t)rx->left : n;
        if (rx->opcode < SB_WS_OP_CLOSE) {
            h->on_data(arg, p, take);
            rx->left -= take;
            if (!rx->left)
                rx->in_frame = 0;
        } else if (!rx->ctl_len && take == rx->left) {
            rx->left = 0;
            end_control(rx, h, arg, p, take); /* whole in this read: no copy */
        } else {
            if (!rx->ctl)
                rx->ctl = sb_malloc(125);
            memcpy(rx->ctl + rx->ctl_len, p, take);
            rx->ctl_len += (uint8_t)take;
            rx->left -= take;
            if (!rx->left) {
                end_control(rx, h, arg, rx->ctl, rx->ctl_len);
                sb_free(rx->ctl);
                rx->ctl = NULL;
            }
        }
        p += take;
        n -= take;
    }
    return SB_OK;
}

void sb_lg_ws_free(sb_lg_wsrx *rx) {
    sb_free(rx->ctl);
    rx->ctl = NULL;
}
