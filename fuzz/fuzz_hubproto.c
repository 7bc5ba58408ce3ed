/*
 * fuzz_hubproto.c - libFuzzer target for src/signalr/hubproto*.c.
 *
 * The first byte picks the protocol (low bit: 0 JSON, 1 MessagePack); the rest
 * is a connection's inbound byte stream:
 *  1. parsed as a handshake request (a failure's response must be valid JSON
 *     carrying the error text);
 *  2. split and decoded message by message, from after the handshake when it
 *     parsed, else from the start, until the splitter wants more or rejects;
 *  3. every message that decodes is written again from its extracted fields in
 *     BOTH protocols and decoded back: what we write must always decode, to the
 *     same fields.  This runs the writers (escaping, msgpack framing) on
 *     hostile strings.
 * Any broken invariant aborts so libFuzzer records the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "signalr/hubproto.h"
#include "util/error.h"

#define MAX_MESSAGE 4096
#define MAX_HANDSHAKE 1024

static int same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Write m again in protocol p from its extracted fields; 0 if the type has no writer. */
static int rewrite(sb_hub_protocol p, const sb_hub_msg *m, sb_buf *out) {
    switch (m->type) {
    case SB_HUBMSG_INVOCATION:
        sb_hubproto_write_invocation(p, out, m->invocation_id, m->target, NULL);
        return 1;
    case SB_HUBMSG_COMPLETION: {
        json_t *result = m->has_result ? json_null() : NULL;
        sb_hubproto_write_completion(p, out, m->invocation_id, m->error, result);
        return 1;
    }
    case SB_HUBMSG_PING:
        sb_hubproto_write_ping(p, out);
        return 1;
    case SB_HUBMSG_CLOSE:
        sb_hubproto_write_close(p, out, m->error, m->allow_reconnect);
        return 1;
    case SB_HUBMSG_ACK:
        sb_hubproto_write_ack(p, out, m->sequence_id);
        return 1;
    case SB_HUBMSG_SEQUENCE:
        sb_hubproto_write_sequence(p, out, m->sequence_id);
        return 1;
    default:
        return 0;
    }
}

static void check_rewrite(sb_hub_protocol p, const sb_hub_msg *m) {
    sb_buf out;
    sb_buf_init(&out);
    if (rewrite(p, m, &out)) {
        sb_slice body;
        size_t consumed;
        sb_hub_msg again;
        const char *err;
        if (sb_hubproto_split(p, (const uint8_t *)out.data, out.len, SIZE_MAX, &body, &consumed) != SB_OK ||
            consumed != out.len)
            abort();
        if (sb_hubproto_decode(p, body, &again, &err) != SB_OK)
            abort();
        if (again.type != m->type || !same_str(again.invocation_id, m->invocation_id) ||
            !same_str(again.target, m->target) || !same_str(again.error, m->error) ||
            again.allow_reconnect != m->allow_reconnect || again.sequence_id != m->sequence_id ||
            again.has_result != m->has_result)
            abort();
        sb_hub_msg_clear(&again);
    }
    sb_buf_free(&out);
}

static size_t check_handshake(const uint8_t *in, size_t len) {
    sb_handshake_req req;
    size_t consumed;
    const char *err;
    int rc = sb_handshake_parse(in, len, MAX_HANDSHAKE, &consumed, &req, &err);
    if (rc == SB_OK) {
        if (consumed == 0 || consumed > len || in[consumed - 1] != 0x1e || consumed > MAX_HANDSHAKE + 1 ||
            req.version < 0 || memchr(req.protocol, 0, sizeof(req.protocol)) == NULL || err)
            abort();
        return consumed;
    }
    if (rc == SB_EAGAIN) {
        if (err || len > MAX_HANDSHAKE)
            abort();
        return 0;
    }
    if ((rc != SB_EPROTO && rc != SB_E2BIG) || !err)
        abort();
    sb_buf resp;
    sb_buf_init(&resp);
    sb_handshake_write_response(&resp, err);
    json_t *v = json_loadb(resp.data, resp.len - 1, 0, NULL);
    if (resp.data[resp.len - 1] != 0x1e || !v ||
        !same_str(json_string_value(json_object_get(v, "error")), err))
        abort();
    json_decref(v);
    sb_buf_free(&resp);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    sb_hub_protocol p = (data[0] & 1) ? SB_HUBPROTO_MSGPACK : SB_HUBPROTO_JSON;
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    size_t off = check_handshake(in, len);
    for (;;) {
        sb_slice body;
        size_t consumed;
        int rc = sb_hubproto_split(p, in + off, len - off, MAX_MESSAGE, &body, &consumed);
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            if (rc != SB_E2BIG && !(rc == SB_EPROTO && p == SB_HUBPROTO_MSGPACK))
                abort();
            break;
        }
        if (consumed == 0 || consumed > len - off || body.len > MAX_MESSAGE)
            abort();

        sb_hub_msg m;
        const char *err;
        rc = sb_hubproto_decode(p, body, &m, &err);
        if (rc == SB_OK) {
            if (err || m.raw.base != body.base || m.raw.len != body.len)
                abort();
            check_rewrite(SB_HUBPROTO_JSON, &m);
            check_rewrite(SB_HUBPROTO_MSGPACK, &m);
        } else if (rc != SB_EPROTO || !err) {
            abort();
        }
        sb_hub_msg_clear(&m);
        off += consumed;
    }
    return 0;
}
