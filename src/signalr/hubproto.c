/*
 * hubproto.c - what the two hub protocols share: the protocol table and the
 * public entry points that dispatch through it, the handshake (always JSON,
 * whatever protocol follows), the VarInt length prefix and JSON string escaping.
 *
 * Invariants: a protocol value outside sb_hub_protocol makes split and decode
 * return SB_EINVAL (the caller closes the connection); the writers, which
 * cannot fail, assert it instead.  Decoding always leaves *out in a state
 * sb_hub_msg_clear() accepts.  Empty input may come as (NULL, 0): an sb_buf
 * that never held data.
 *
 * Called by the transports (net/ws.c, sse.c, longpoll.c) on received bytes and
 * by the hub router to frame outgoing messages.  Whether a handshake's protocol
 * and version are supported is the caller's decision, not this file's: it
 * knows the transport's transfer format.
 */
#include "signalr/hubproto.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

#define RECORD_SEPARATOR 0x1e

static const char handshake_error[] = "An unexpected error occurred during connection handshake.";

static const sb__hubproto_ops *const protocols[SB_HUBPROTO_COUNT] = {
    [SB_HUBPROTO_JSON] = &sb__hubproto_json,
    [SB_HUBPROTO_MSGPACK] = &sb__hubproto_msgpack,
};

static const sb__hubproto_ops *ops_of(sb_hub_protocol p) {
    return (unsigned)p < SB_HUBPROTO_COUNT ? protocols[p] : NULL;
}

/* The writers have no error return: a bad protocol there is a bug in the caller. */
static const sb__hubproto_ops *writer_of(sb_hub_protocol p) {
    assert((unsigned)p < SB_HUBPROTO_COUNT);
    return protocols[p];
}

const char *sb_hubproto_name(sb_hub_protocol p) {
    const sb__hubproto_ops *ops = ops_of(p);
    return ops ? ops->name : "unknown";
}

/* ---- handshake ---------------------------------------------------------- */

int sb_handshake_parse(const uint8_t *data, size_t len, size_t max_len, size_t *consumed,
                       sb_handshake_req *out, const char **err) {
    out->protocol[0] = '\0';
    out->version = -1;
    *consumed = 0;
    *err = NULL;

    /* Look one byte past max_len: a separator there still ends a max_len-byte request. */
    size_t scan = len > max_len ? max_len + 1 : len;
    const uint8_t *sep = scan ? memchr(data, RECORD_SEPARATOR, scan) : NULL;
    if (!sep) {
        if (len > max_len) {
            *err = handshake_error;
            return SB_E2BIG;
        }
        return SB_EAGAIN;
    }

    json_t *root = json_loadb((const char *)data, (size_t)(sep - data), 0, NULL);
    json_t *protocol = json_object_get(root, "protocol"); /* NULL-safe for a non-object */
    json_t *version = json_object_get(root, "version");
    int rc = SB_EPROTO;
    if (json_is_string(protocol) && json_string_length(protocol) < sizeof(out->protocol) &&
        json_is_integer(version) && json_integer_value(version) >= 0 &&
        json_integer_value(version) <= INT_MAX) {
        memcpy(out->protocol, json_string_value(protocol), json_string_length(protocol) + 1);
        out->version = (int)json_integer_value(version);
        *consumed = (size_t)(sep - data) + 1;
        rc = SB_OK;
    } else {
        *err = handshake_error;
    }
    json_decref(root);
    return rc;
}

void sb_handshake_write_response(sb_buf *out, const char *err) {
    if (!err) {
        sb_buf_append(out, "{}\x1e", 3);
        return;
    }
    sb_buf_appends(out, "{\"error\":");
    sb__json_write_string(out, err);
    sb_buf_append(out, "}\x1e", 2);
}

/* ---- splitting and decoding -------------------------------------------- */

int sb_hubproto_split(sb_hub_protocol p, const uint8_t *data, size_t len, size_t max_message, sb_slice *body,
                      size_t *consumed) {
    const sb__hubproto_ops *ops = ops_of(p);
    return ops ? ops->split(data, len, max_message, body, consumed) : SB_EINVAL;
}

int sb_hubproto_decode(sb_hub_protocol p, sb_slice body, sb_hub_msg *out, const char **err) {
    memset(out, 0, sizeof(*out));
    out->raw = body;
    *err = NULL;
    const sb__hubproto_ops *ops = ops_of(p);
    if (!ops) {
        *err = "Unknown hub protocol.";
        return SB_EINVAL;
    }
    return ops->decode(body, out, err);
}

void sb_hub_msg_clear(sb_hub_msg *m) {
    sb_free(m->invocation_id);
    sb_free(m->target);
    sb_free(m->error);
    memset(m, 0, sizeof(*m));
}

/* ---- encoding ----------------------------------------------------------- */

void sb_hubproto_write_invocation(sb_hub_protocol p, sb_buf *out, const char *invocation_id,
                                  const char *target, json_t *arguments) {
    writer_of(p)->write_invocation(out, invocation_id, target, arguments);
}

void sb_hubproto_write_ping(sb_hub_protocol p, sb_buf *out) {
    writer_of(p)->write_ping(out);
}

void sb_hubproto_write_close(sb_hub_protocol p, sb_buf *out, const char *error, int allow_reconnect) {
    writer_of(p)->write_close(out, error, allow_reconnect);
}

void sb_hubproto_write_completion(sb_hub_protocol p, sb_buf *out, const char *invocation_id,
                                  const char *error, json_t *result) {
    writer_of(p)->write_completion(out, invocation_id, error, result);
}

void sb_hubproto_write_ack(sb_hub_protocol p, sb_buf *out, int64_t sequence_id) {
    writer_of(p)->write_sequence_id(out, SB_HUBMSG_ACK, sequence_id);
}

void sb_hubproto_write_sequence(sb_hub_protocol p, sb_buf *out, int64_t sequence_id) {
    writer_of(p)->write_sequence_id(out, SB_HUBMSG_SEQUENCE, sequence_id);
}

void sb__json_write_string(sb_buf *out, const char *s) {
    static const char hex[] = "0123456789abcdef";
    sb_buf_appendc(out, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};
            sb_buf_append(out, esc, 2);
        } else if (*c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};
            sb_buf_append(out, esc, 6);
        } else {
            sb_buf_appendc(out, (char)*c);
        }
    }
    sb_buf_appendc(out, '"');
}

/* ---- VarInt ------------------------------------------------------------- */

size_t sb_varint_write(uint8_t out[5], size_t value) {
    assert(value <= INT32_MAX);
    size_t n = 0;
    do {
        uint8_t b = value & 0x7f;
        value >>= 7;
        out[n++] = b | (value ? 0x80 : 0);
    } while (value && n < 5);
    return n;
}

int sb_varint_read(const uint8_t *data, size_t len, size_t *value, size_t *nbytes) {
    size_t v = 0;
    for (size_t i = 0;; i++) {
        if (i >= len)
            return SB_EAGAIN;
        /* The 5th byte holds bits 28-30 only: anything above 7 is a length over 2^31-1
         * (or a continuation bit, i.e. a 6th byte), which the protocol rules out.  So
         * the loop ends by the 5th byte. */
        if (i == 4 && data[i] > 7)
            return SB_EPROTO;
        v |= (size_t)(data[i] & 0x7f) << (7 * i);
        if (!(data[i] & 0x80)) {
            *value = v;
            *nbytes = i + 1;
            return SB_OK;
        }
    }
}
