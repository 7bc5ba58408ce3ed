/*
 * hubproto.h - the SignalR hub protocols (JSON and MessagePack): handshake,
 * message splitting, decoding of client messages and encoding of server
 * messages.  I/O-free; fuzzed by fuzz/fuzz_hubproto.c.
 *
 * Framing: JSON messages end with the record separator 0x1E; MessagePack
 * messages are prefixed with a VarInt length (1-5 bytes, little-endian base
 * 128).  The handshake request is always JSON + 0x1E whatever protocol follows.
 *
 * Decoding keeps the message's raw bytes (so the service can forward a client's
 * invocation untouched to an app server or an upstream) and extracts only the
 * fields the service itself acts on.  Encoding writes whole framed messages.
 *
 * Ownership: sb_hub_msg's strings are owned by the message; release them with
 * sb_hub_msg_clear().  Slices in it point into the caller's input.
 *
 * Limits: max_len / max_message bound a message's body (the bytes without the
 * 0x1E or the VarInt prefix), and are enforced as soon as the body is known to
 * be longer, so a peer can never make the caller buffer more than the limit
 * plus the framing.  Decoding allocates nothing proportional to a declared
 * length that the input does not actually contain.
 *
 * Layout: hubproto.c (dispatch, handshake, VarInt), hubproto_json.c and
 * hubproto_msgpack.c (one sb__hubproto_ops table each).
 */
#ifndef SB_HUBPROTO_H
#define SB_HUBPROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef enum sb_hub_protocol {
    SB_HUBPROTO_JSON = 0,
    SB_HUBPROTO_MSGPACK = 1,
    SB_HUBPROTO_COUNT
} sb_hub_protocol;

enum sb_hub_msg_type {
    SB_HUBMSG_INVOCATION = 1,
    SB_HUBMSG_STREAM_ITEM = 2,
    SB_HUBMSG_COMPLETION = 3,
    SB_HUBMSG_STREAM_INVOCATION = 4,
    SB_HUBMSG_CANCEL_INVOCATION = 5,
    SB_HUBMSG_PING = 6,
    SB_HUBMSG_CLOSE = 7,
    SB_HUBMSG_ACK = 8,
    SB_HUBMSG_SEQUENCE = 9,
};

/* "json" / "messagepack" */
const char *sb_hubproto_name(sb_hub_protocol p);

/* ---- handshake ---------------------------------------------------------- */

typedef struct sb_handshake_req {
    char protocol[32]; /* as sent, e.g. "json"; "" unless SB_OK */
    int version;       /* >= 0; -1 unless SB_OK */
} sb_handshake_req;

/*
 * Parse the handshake request at the start of data (JSON + 0x1E).  Bytes after
 * the separator are not looked at (they are the first hub messages).
 * SB_OK: *out filled, *consumed = bytes including the separator.
 * SB_EAGAIN: no separator yet (and no more than max_len bytes of JSON so far).
 * SB_EPROTO / SB_E2BIG: invalid (not a JSON object, protocol not a string of at
 * most 31 bytes, version not an integer in 0..INT_MAX, or more than max_len bytes
 * without a separator); *err is a static text for the
 * {"error": ...} response (e.g. "An unexpected error occurred during connection handshake.").
 */
int sb_handshake_parse(const uint8_t *data, size_t len, size_t max_len, size_t *consumed,
                       sb_handshake_req *out, const char **err);
/* Success "{}\x1e" (err NULL) or {"error":"..."}\x1e, appended to out; always JSON text. */
void sb_handshake_write_response(sb_buf *out, const char *err);

/* ---- splitting and decoding -------------------------------------------- */

/*
 * Find the next complete message in a byte stream.
 * SB_OK: *body is the message without framing, *consumed the bytes used including framing.
 * SB_EAGAIN: incomplete.  SB_E2BIG: over max_message.  SB_EPROTO: bad varint.
 */
int sb_hubproto_split(sb_hub_protocol p, const uint8_t *data, size_t len, size_t max_message, sb_slice *body,
                      size_t *consumed);

typedef struct sb_hub_msg {
    int type;            /* enum sb_hub_msg_type, or another number (unknown types are kept, not errors) */
    sb_slice raw;        /* the message body as received (no framing) */
    char *invocation_id; /* NULL if absent */
    char *target;        /* Invocation / StreamInvocation */
    char *error;         /* Close / Completion error, NULL if absent */
    int allow_reconnect; /* Close */
    int64_t sequence_id; /* Ack / Sequence */
    int has_result;      /* Completion with a result */
    size_t nargs;        /* Invocation / StreamInvocation: number of arguments */
} sb_hub_msg;

/*
 * Decode one message body (from sb_hubproto_split).  Validates the structure the
 * spec requires of a client message (Invocation needs a non-empty target and an
 * arguments array, etc.).  On error returns SB_EPROTO (SB_EINVAL for a bad p)
 * and *err is a static description.  Always call sb_hub_msg_clear() afterwards,
 * even on error.
 */
int sb_hubproto_decode(sb_hub_protocol p, sb_slice body, sb_hub_msg *out, const char **err);
void sb_hub_msg_clear(sb_hub_msg *m);

/* ---- encoding (each appends one whole framed message to out) ----------- */

/* Invocation with JSON arguments (a json array, NULL = none); invocation_id NULL = non-blocking.
 * For MessagePack the JSON values are converted (integers stay integers, reals float64,
 * strings str, null nil, objects maps). */
void sb_hubproto_write_invocation(sb_hub_protocol p, sb_buf *out, const char *invocation_id,
                                  const char *target, json_t *arguments);
void sb_hubproto_write_ping(sb_hub_protocol p, sb_buf *out);
/* Close; error NULL for none.  JSON writes allowReconnect only when true,
 * MessagePack always ([7, err|nil, bool]). */
void sb_hubproto_write_close(sb_hub_protocol p, sb_buf *out, const char *error, int allow_reconnect);
/* Completion: error (non-NULL) XOR result (non-NULL json) XOR void (both NULL); invocation_id required. */
void sb_hubproto_write_completion(sb_hub_protocol p, sb_buf *out, const char *invocation_id,
                                  const char *error, json_t *result);
void sb_hubproto_write_ack(sb_hub_protocol p, sb_buf *out, int64_t sequence_id);
void sb_hubproto_write_sequence(sb_hub_protocol p, sb_buf *out, int64_t sequence_id);

/* VarInt length prefix helpers (MessagePack framing; also used by the service protocol). */
/* Writes 1-5 bytes and returns how many; value must be at most 2^31-1 (the protocol's maximum). */
size_t sb_varint_write(uint8_t out[5], size_t value);
/* SB_OK with *value and *nbytes, SB_EAGAIN if incomplete, SB_EPROTO if > 2 GB / too long. */
int sb_varint_read(const uint8_t *data, size_t len, size_t *value, size_t *nbytes);

/* ---- internal: one table per protocol; only hubproto.c calls through it - */

typedef struct sb__hubproto_ops {
    const char *name;
    int (*split)(const uint8_t *data, size_t len, size_t max_message, sb_slice *body, size_t *consumed);
    /* out is zeroed with raw set and *err NULL before the call */
    int (*decode)(sb_slice body, sb_hub_msg *out, const char **err);
    void (*write_invocation)(sb_buf *out, const char *invocation_id, const char *target, json_t *arguments);
    void (*write_ping)(sb_buf *out);
    void (*write_close)(sb_buf *out, const char *error, int allow_reconnect);
    void (*write_completion)(sb_buf *out, const char *invocation_id, const char *error, json_t *result);
    /* Ack or Sequence: both are {type, sequenceId} */
    void (*write_sequence_id)(sb_buf *out, int type, int64_t sequence_id);
} sb__hubproto_ops;

extern const sb__hubproto_ops sb__hubproto_json;
extern const sb__hubproto_ops sb__hubproto_msgpack;

/* Append s as a quoted, escaped JSON string (shared by the JSON protocol and the handshake). */
void sb__json_write_string(sb_buf *out, const char *s);

#endif
