/*
 * msg.c - lazily encoded, shared message forms; see msg.h.
 */
#include "hub/msg.h"

#include <string.h>

#include "net/ws_frame.h"
#include "util/alloc.h"

void sb_msg_init_invocation(sb_msg *m, const char *target, json_t *arguments) {
    memset(m, 0, sizeof(*m));
    m->target = target;
    m->arguments = arguments;
}

void sb_msg_init_payloads(sb_msg *m, const void *json, size_t json_len, const void *msgpack, size_t msgpack_len) {
    memset(m, 0, sizeof(*m));
    if (json)
        m->payload[SB_HUBPROTO_JSON] = sb_shbuf_from(json, json_len);
    if (msgpack)
        m->payload[SB_HUBPROTO_MSGPACK] = sb_shbuf_from(msgpack, msgpack_len);
}

sb_shbuf *sb_msg_payload(sb_msg *m, sb_hub_protocol p) {
    if (m->payload[p] || !m->target)
        return m->payload[p];
    sb_buf b;
    sb_buf_init(&b);
    sb_hubproto_write_invocation(p, &b, NULL, m->target, m->arguments);
    m->payload[p] = sb_shbuf_from(b.data, b.len);
    sb_buf_free(&b);
    return m->payload[p];
}

sb_shbuf *sb_sse_frame(const void *payload, size_t len) {
    /* One event per payload: each LF-separated line becomes "data: <line>\r\n", then a blank line.
     * JSON hub messages never contain a raw LF (jansson escapes control characters), but a
     * pre-encoded payload from an app server might, so split properly. */
    const char *p = payload, *end = p + len;
    size_t lines = 1;
    for (const char *q = p; q < end; q++)
        lines += *q == '\n';
    sb_shbuf *s = sb_shbuf_new(len + lines * 8 + 2);
    char *o = s->data;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r')
            n--;
        memcpy(o, "data: ", 6), o += 6;
        memcpy(o, p, n), o += n;
        *o++ = '\r', *o++ = '\n';
        if (!nl)
            break;
        p = nl + 1;
    }
    *o++ = '\r', *o++ = '\n';
    s->len = (size_t)(o - s->data);
    return s;
}

sb_shbuf *sb_msg_wire(sb_msg *m, sb_wire w) {
    if (m->wire[w])
        return m->wire[w];
    sb_hub_protocol p = (w == SB_WIRE_WS_MSGPACK || w == SB_WIRE_RAW_MSGPACK) ? SB_HUBPROTO_MSGPACK : SB_HUBPROTO_JSON;
    sb_shbuf *pl = sb_msg_payload(m, p);
    if (!pl)
        return NULL;
    switch (w) {
    case SB_WIRE_WS_JSON:
        m->wire[w] = sb_ws_frame_build(SB_WS_OP_TEXT, pl->data, pl->len);
        break;
    case SB_WIRE_WS_MSGPACK:
        m->wire[w] = sb_ws_frame_build(SB_WS_OP_BINARY, pl->data, pl->len);
        break;
    case SB_WIRE_SSE_JSON:
        m->wire[w] = sb_sse_frame(pl->data, pl->len);
        break;
    case SB_WIRE_RAW_JSON:
    case SB_WIRE_RAW_MSGPACK:
        m->wire[w] = sb_shbuf_ref(pl);
        break;
    case SB_WIRE_COUNT:
        return NULL;
    }
    return m->wire[w];
}

void sb_msg_release(sb_msg *m) {
    for (int i = 0; i < SB_HUBPROTO_COUNT; i++)
        sb_shbuf_unref(m->payload[i]), m->payload[i] = NULL;
    for (int i = 0; i < SB_WIRE_COUNT; i++)
        sb_shbuf_unref(m->wire[i]), m->wire[i] = NULL;
    m->log_fanout = NULL;
}
