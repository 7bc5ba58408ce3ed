/*
 * ws_frame.c - RFC 6455 framing for the server side; see ws_frame.h.
 *
 * Owns: the frame parser state machine (header bytes -> payload bytes ->
 * event), message reassembly, and the server-side encoders.
 *
 * Invariants:
 *  - Every rule is checked as soon as the byte that breaks it arrives: RSV,
 *    opcode and FIN-on-control at byte 0; the mask bit and control length at
 *    byte 1; the 64-bit length MSB and the message size limit once the length
 *    is known, before any payload is buffered.  A peer can therefore never
 *    make us hold more than max_message bytes of a data message.
 *  - Data payloads are unmasked straight from the input into p->msg (one pass
 *    that reads and writes each byte once, the same cost as unmasking in
 *    place, which a const input would not allow anyway); control payloads go
 *    to p->ctl, so a ping interleaved in a fragmented message leaves the
 *    message alone.
 *  - Text is validated incrementally on the unmasked bytes as they arrive, so
 *    bad UTF-8 is reported in the fragment that contains it (1007), and the
 *    state must be ACCEPT when the final fragment ends.
 *  - p->msg holds a delivered message until the next sb_ws_parse call, which
 *    empties it (and drops a large allocation) when no message is in progress.
 *  - Errors are sticky: after one, every call returns the same code.
 *
 * Called by net/ws.c for every read on an upgraded connection, and by the
 * broadcast path for the encoders.
 *
 * Not here: permessage-deflate (never negotiated), client-side masking,
 * sockets and close handshakes (net/ws.c).
 */
#include "net/ws_frame.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

enum { ST_HEADER, ST_PAYLOAD, ST_ERROR };

/* A delivered message larger than this is freed instead of kept for reuse, so
 * an idle connection does not pin the memory of its largest message. */
#define MSG_KEEP_CAP (64 * 1024)

#define CONTROL_MAX 125

static int is_control(int op) {
    return op & 0x8;
}

static int fail(sb_ws_parser *p, int rc, uint16_t close_code, const char *why) {
    p->state = ST_ERROR;
    p->error_close_code = close_code;
    p->error = why;
    return rc;
}

static int sticky_error(const sb_ws_parser *p) {
    switch (p->error_close_code) {
    case SB_WS_CLOSE_TOO_BIG:
        return SB_E2BIG;
    case SB_WS_CLOSE_INVALID_DATA:
        return SB_EUTF8;
    default:
        return SB_EPROTO;
    }
}

void sb_ws_parser_init(sb_ws_parser *p, size_t max_message) {
    memset(p, 0, sizeof(*p));
    p->max_message = max_message;
    sb_buf_init(&p->msg);
    sb_buf_init(&p->ctl);
    p->state = ST_HEADER;
    p->utf8_state = SB_UTF8_ACCEPT;
}

void sb_ws_parser_free(sb_ws_parser *p) {
    sb_buf_free(&p->msg);
    sb_buf_free(&p->ctl);
}

int sb_ws_parser_idle(const sb_ws_parser *p) { return p->state == ST_HEADER && p->hdr_len == 0 && !p->msg_opcode; }

/* Bytes 0 and 1 of a header: everything that can be judged before the length. */
static int check_first_bytes(sb_ws_parser *p) {
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    int op = b0 & 0x0F;
    if (b0 & 0x70)
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    switch (op) {
    case SB_WS_OP_CONT:
    case SB_WS_OP_TEXT:
    case SB_WS_OP_BINARY:
    case SB_WS_OP_CLOSE:
    case SB_WS_OP_PING:
    case SB_WS_OP_PONG:
        break;
    default:
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "unknown opcode");
    }
    if (!(b1 & 0x80))
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "client frame not masked");
    if (is_control(op)) {
        if (!(b0 & 0x80))
            return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
        if ((b1 & 0x7F) > CONTROL_MAX)
            return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "control frame too long");
    }
    return SB_OK;
}

static size_t header_size(const sb_ws_parser *p) {
    uint8_t l7 = p->hdr[1] & 0x7F;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
}

/* The whole header is in p->hdr: decode it and set up the payload phase. */
static int start_frame(sb_ws_parser *p) {
    const uint8_t *h = p->hdr;
    uint8_t l7 = h[1] & 0x7F;
    uint64_t len = l7;
    size_t pos = 2;
    if (l7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        pos = 4;
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        pos = 10;
        if (len >> 63)
            return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "64-bit length has the high bit set");
    }
    memcpy(p->mask, h + pos, 4);

    int op = h[0] & 0x0F;
    p->frame_opcode = op;
    p->frame_fin = h[0] >> 7;
    p->frame_len = len;
    p->frame_got = 0;

    if (is_control(op)) {
        sb_buf_reset(&p->ctl);
    } else {
        if (op == SB_WS_OP_CONT) {
            if (!p->msg_opcode)
                return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "continuation without a message");
        } else {
            if (p->msg_opcode)
                return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
            p->msg_opcode = op;
            p->utf8_state = SB_UTF8_ACCEPT;
            sb_buf_reset(&p->msg);
        }
        if (len > p->max_message || p->msg.len > p->max_message - len)
            return fail(p, SB_E2BIG, SB_WS_CLOSE_TOO_BIG, "message too big");
    }
    p->state = ST_PAYLOAD;
    return SB_OK;
}

/* dst[i] = src[i] ^ mask[(off + i) % 4], eight bytes at a time: an 8-byte
 * pattern of the rotated mask lines up with every 8-byte step because 8 is a
 * multiple of 4. */
static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4], uint64_t off) {
    uint8_t m[8];
    for (int i = 0; i < 8; i++)
        m[i] = mask[(off + (uint64_t)i) & 3];
    uint64_t m64;
    memcpy(&m64, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= m64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ m[i & 7];
}

static int valid_close_code(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

/* A control frame is complete in p->ctl. */
static int emit_control(sb_ws_parser *p, sb_ws_event *ev) {
    ev->opcode = p->frame_opcode;
    ev->payload = sb_slice_make(p->ctl.data, p->ctl.len);
    ev->close_code = 0;
    ev->close_reason = sb_slice_make(p->ctl.data, 0);
    if (p->frame_opcode != SB_WS_OP_CLOSE)
        return SB_OK;
    if (p->ctl.len == 0) {
        ev->close_code = SB_WS_CLOSE_NO_STATUS;
        return SB_OK;
    }
    if (p->ctl.len == 1)
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body");
    const uint8_t *b = (const uint8_t *)p->ctl.data;
    unsigned code = (unsigned)b[0] << 8 | b[1];
    if (!valid_close_code(code))
        return fail(p, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
    if (!sb_utf8_valid(b + 2, p->ctl.len - 2))
        return fail(p, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA, "close reason is not UTF-8");
    ev->close_code = (uint16_t)code;
    ev->close_reason = sb_slice_make(p->ctl.data + 2, p->ctl.len - 2);
    return SB_OK;
}

int sb_ws_parse(sb_ws_parser *p, const uint8_t *data, size_t len, size_t *consumed, sb_ws_event *ev) {
    size_t off = 0;
    int rc;
    *consumed = 0;
    if (p->state == ST_ERROR)
        return sticky_error(p);
    if (!p->msg_opcode) {
        if (p->msg.cap > MSG_KEEP_CAP)
            sb_buf_free(&p->msg);
        else
            sb_buf_reset(&p->msg);
    }

    for (;;) {
        if (p->state == ST_HEADER) {
            size_t need = p->hdr_len < 2 ? 2 : header_size(p);
            size_t take = need - p->hdr_len;
            if (take > len - off)
                take = len - off;
            if (take)
                memcpy(p->hdr + p->hdr_len, data + off, take);
            p->hdr_len += take;
            off += take;
            *consumed = off;
            if (p->hdr_len < need)
                return SB_EAGAIN;
            rc = need == 2 ? check_first_bytes(p) : start_frame(p);
            if (rc != SB_OK)
                return rc;
            continue;
        }

        int control = is_control(p->frame_opcode);
        sb_buf *dst = control ? &p->ctl : &p->msg;
        uint64_t remain = p->frame_len - p->frame_got;
        size_t take = remain < len - off ? (size_t)remain : len - off;
        /* Reserve even for 0 bytes so an empty payload still has a valid base. */
        sb_buf_reserve(dst, take);
        uint8_t *out = (uint8_t *)dst->data + dst->len;
        unmask_copy(out, data + off, take, p->mask, p->frame_got);
        dst->len += take;
        dst->data[dst->len] = '\0';
        off += take;
        p->frame_got += take;
        *consumed = off;
        if (!control && p->msg_opcode == SB_WS_OP_TEXT &&
            sb_utf8_feed(&p->utf8_state, out, take) == SB_UTF8_REJECT)
            return fail(p, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA, "text message is not UTF-8");
        if (p->frame_got < p->frame_len)
            return SB_EAGAIN;

        /* Frame complete. */
        p->state = ST_HEADER;
        p->hdr_len = 0;
        if (control)
            return emit_control(p, ev);
        if (!p->frame_fin)
            continue;
        if (p->msg_opcode == SB_WS_OP_TEXT && p->utf8_state != SB_UTF8_ACCEPT)
            return fail(p, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
        ev->opcode = p->msg_opcode;
        ev->payload = sb_slice_make(p->msg.data, p->msg.len);
        ev->close_code = 0;
        ev->close_reason = sb_slice_make(p->msg.data, 0);
        p->msg_opcode = 0;
        return SB_OK;
    }
}

size_t sb_ws_frame_header(uint8_t out[10], int opcode, uint64_t len) {
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

sb_shbuf *sb_ws_frame_build(int opcode, const void *payload, size_t len) {
    uint8_t h[10];
    size_t hl = sb_ws_frame_header(h, opcode, len);
    sb_shbuf *s = sb_shbuf_new(hl + len);
    memcpy(s->data, h, hl);
    if (len)
        memcpy(s->data + hl, payload, len);
    return s;
}

sb_shbuf *sb_ws_close_frame(uint16_t code, const char *reason) {
    /* 1005 means "no code" and must never be sent; nor may a reason without a code. */
    if (code == 0 || code == SB_WS_CLOSE_NO_STATUS)
        return sb_ws_frame_build(SB_WS_OP_CLOSE, NULL, 0);
    uint8_t body[CONTROL_MAX];
    size_t n = reason ? strlen(reason) : 0;
    if (n > CONTROL_MAX - 2) {
        n = CONTROL_MAX - 2;
        /* Back up to a lead byte so the cut does not split a character. */
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    if (n)
        memcpy(body + 2, reason, n);
    return sb_ws_frame_build(SB_WS_OP_CLOSE, body, n + 2);
}

void sb_ws_accept_key(const char *key, size_t key_len, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /* Real keys are 24 characters; anything longer is the caller's to reject,
     * but must still not overflow the stack buffer. */
    char stack[64 + sizeof(guid)];
    size_t n = key_len + sizeof(guid) - 1;
    char *buf = n <= sizeof(stack) ? stack : sb_malloc(n);
    if (key_len)
        memcpy(buf, key, key_len);
    memcpy(buf + key_len, guid, sizeof(guid) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)buf, n, digest);
    if (buf != stack)
        sb_free(buf);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    out[28] = '\0';
}
