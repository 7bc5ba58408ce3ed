/*
 * hubproto_msgpack.c - the MessagePack hub protocol: each message is a
 * MessagePack array [type, ...] prefixed with its VarInt length.
 *
 * Decoding uses a small bounds-checked reader of our own rather than
 * msgpack-c's unpacker, for two reasons found by testing msgpack-c 4.0:
 *   - it allocates a declared array or map size up front, so five bytes
 *     (dd ff ff ff ff) ask for 64 GiB before any element is seen;
 *   - it fails at 32 levels of nesting, which would reject legitimate deeply
 *     nested arguments that .NET accepts.
 * The service never needs the arguments as objects (it forwards the raw bytes)
 * so the reader only walks: one pass checks that the body is exactly one
 * well-formed value, where every declared count is bounded by the bytes that
 * remain (each element takes at least one) and nesting costs nothing (a
 * counter of pending elements, no recursion, no allocation); a second pass
 * reads the few top-level fields.
 *
 * Validation follows the .NET reader: Headers must be a map of strings;
 * Invocation's invocationId may be nil or empty (non-blocking), every other
 * invocationId must be a non-empty string; elements past those read are
 * ignored, so [7, nil] and [7, nil, true] are both a Close and an Invocation
 * may have 5 or 6 elements.  Extracted strings must be valid UTF-8 without NUL
 * because they leave as C strings and may be re-encoded as JSON.
 *
 * Encoding uses msgpack-c's packer (it picks the smallest integer encoding)
 * writing straight into the output buffer; the body is then shifted right to
 * make room for its VarInt length.
 */
#include <limits.h>
#include <msgpack.h>
#include <string.h>

#include "signalr/hubproto.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

static int mp_split(const uint8_t *data, size_t len, size_t max_message, sb_slice *body, size_t *consumed) {
    size_t size, nbytes;
    int rc = sb_varint_read(data, len, &size, &nbytes);
    if (rc)
        return rc;
    if (size > max_message)
        return SB_E2BIG;
    if (len - nbytes < size)
        return SB_EAGAIN;
    *body = sb_slice_make(data + nbytes, size);
    *consumed = nbytes + size;
    return SB_OK;
}

/* ---- reader ------------------------------------------------------------- */

typedef struct mp_reader {
    const uint8_t *p, *end;
} mp_reader;

enum mp_kind { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_EXT, MP_ARRAY, MP_MAP };

/* One value's header; payloads of str/bin/ext/float are consumed with it. */
typedef struct mp_value {
    enum mp_kind kind;
    uint64_t u;       /* MP_UINT, MP_BOOL (0/1) */
    int64_t i;        /* MP_INT (the signed encodings, whatever the sign of the value) */
    uint64_t n;       /* MP_ARRAY elements, MP_MAP pairs, MP_STR/MP_BIN/MP_EXT payload bytes */
    const uint8_t *s; /* MP_STR/MP_BIN/MP_EXT payload */
} mp_value;

static int read_be(mp_reader *r, unsigned nbytes, uint64_t *v) {
    if ((size_t)(r->end - r->p) < nbytes)
        return -1;
    *v = 0;
    for (unsigned k = 0; k < nbytes; k++)
        *v = *v << 8 | *r->p++;
    return 0;
}

static int read_payload(mp_reader *r, mp_value *v, uint64_t n) {
    if ((uint64_t)(r->end - r->p) < n)
        return -1;
    v->s = r->p;
    v->n = n;
    r->p += n;
    return 0;
}

/* The sized formats come in families of widths 1, 2, 4 (and 8) bytes, in order. */
static int mp_next(mp_reader *r, mp_value *v) {
    uint64_t x;
    if (r->p >= r->end)
        return -1;
    uint8_t b = *r->p++;
    if (b <= 0x7f || b >= 0xe0) { /* positive / negative fixint */
        v->kind = b <= 0x7f ? MP_UINT : MP_INT;
        v->u = b;
        v->i = (int8_t)b;
        return 0;
    }
    if (b <= 0x9f) { /* fixmap 0x80-0x8f, fixarray 0x90-0x9f */
        v->kind = b <= 0x8f ? MP_MAP : MP_ARRAY;
        v->n = b & 0x0f;
        return 0;
    }
    if (b <= 0xbf) {
        v->kind = MP_STR;
        return read_payload(r, v, b & 0x1f);
    }
    switch (b) {
    case 0xc0:
        v->kind = MP_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        v->kind = MP_BOOL;
        v->u = b & 1;
        return 0;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6:
        v->kind = MP_BIN;
        return read_be(r, 1u << (b - 0xc4), &x) ? -1 : read_payload(r, v, x);
    case 0xc7: /* ext 8/16/32: length, then a type byte and the data */
    case 0xc8:
    case 0xc9:
        v->kind = MP_EXT;
        return read_be(r, 1u << (b - 0xc7), &x) ? -1 : read_payload(r, v, x + 1);
    case 0xca:
    case 0xcb:
        v->kind = MP_FLOAT;
        return read_payload(r, v, b == 0xca ? 4 : 8);
    case 0xcc: /* uint 8/16/32/64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        v->kind = MP_UINT;
        return read_be(r, 1u << (b - 0xcc), &v->u);
    case 0xd0: /* int 8/16/32/64 */
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        unsigned width = 1u << (b - 0xd0);
        if (read_be(r, width, &x))
            return -1;
        v->kind = MP_INT;
        v->i = width == 1 ? (int8_t)x : width == 2 ? (int16_t)x : width == 4 ? (int32_t)x : (int64_t)x;
        return 0;
    }
    case 0xd4: /* fixext 1/2/4/8/16: a type byte and the data */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        v->kind = MP_EXT;
        return read_payload(r, v, 1 + (1u << (b - 0xd4)));
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb:
        v->kind = MP_STR;
        return read_be(r, 1u << (b - 0xd9), &x) ? -1 : read_payload(r, v, x);
    case 0xdc:
    case 0xdd:
        v->kind = MP_ARRAY;
        return read_be(r, b == 0xdc ? 2 : 4, &v->n);
    case 0xde:
    case 0xdf:
        v->kind = MP_MAP;
        return read_be(r, b == 0xde ? 2 : 4, &v->n);
    default: /* 0xc1 is never used */
        return -1;
    }
}

/* Skip count whole values.  Every step consumes a byte, so the walk is linear
 * in the input whatever the sizes claim.  Each pending value needs at least one
 * byte, so a claim larger than what remains is rejected at once, which also
 * keeps the counter far from overflowing. */
static int mp_skip(mp_reader *r, uint64_t count) {
    uint64_t pending = count;
    while (pending > 0) {
        mp_value v;
        if (mp_next(r, &v))
            return -1;
        pending--;
        if (v.kind == MP_ARRAY)
            pending += v.n;
        else if (v.kind == MP_MAP)
            pending += 2 * v.n;
        if (pending > (uint64_t)(r->end - r->p))
            return -1;
    }
    return 0;
}

static int as_int64(const mp_value *v, int64_t *out) {
    if (v->kind == MP_INT) {
        *out = v->i;
        return 0;
    }
    if (v->kind == MP_UINT && v->u <= INT64_MAX) {
        *out = (int64_t)v->u;
        return 0;
    }
    return -1;
}

/* ---- decoding ----------------------------------------------------------- */

static int fail(const char **err, const char *text) {
    *err = text;
    return SB_EPROTO;
}

static const char bad_text[] = "Strings must be valid UTF-8 without NUL characters.";

static int is_text(const mp_value *v) {
    return v->kind == MP_STR && !memchr(v->s, 0, v->n) && sb_utf8_valid(v->s, v->n);
}

/* A string field that may also be nil (*out stays NULL then). */
static int read_text_or_nil(mp_reader *r, char **out, const char *wrong_type, const char **err) {
    mp_value v;
    if (mp_next(r, &v) || (v.kind != MP_STR && v.kind != MP_NIL))
        return fail(err, wrong_type);
    if (v.kind == MP_NIL)
        return SB_OK;
    if (!is_text(&v))
        return fail(err, bad_text);
    *out = sb_strndup((const char *)v.s, v.n);
    return SB_OK;
}

static int read_headers(mp_reader *r, const char **err) {
    mp_value v;
    if (mp_next(r, &v) || v.kind != MP_MAP)
        return fail(err, "Invalid headers.");
    for (uint64_t k = 0; k < 2 * v.n; k++) {
        mp_value s;
        if (mp_next(r, &s) || s.kind != MP_STR)
            return fail(err, "Invalid headers.");
    }
    return SB_OK;
}

/* Invocation (required == 0): nil or "" means non-blocking.  Otherwise both are missing. */
static int read_invocation_id(mp_reader *r, sb_hub_msg *m, int required, const char **err) {
    int rc = read_text_or_nil(r, &m->invocation_id, "Expected 'invocationId' to be of type String.", err);
    if (rc)
        return rc;
    if (m->invocation_id && !m->invocation_id[0]) {
        sb_free(m->invocation_id);
        m->invocation_id = NULL;
    }
    if (required && !m->invocation_id)
        return fail(err, "Missing required property 'invocationId'.");
    return SB_OK;
}

/* [type, Headers, InvocationId, Target, [Arguments], [StreamIds]?] after the type. */
static int read_invocation(mp_reader *r, sb_hub_msg *m, uint64_t count, const char **err) {
    int rc;
    if ((rc = read_headers(r, err)) ||
        (rc = read_invocation_id(r, m, m->type == SB_HUBMSG_STREAM_INVOCATION, err)) ||
        (rc = read_text_or_nil(r, &m->target, "Expected 'target' to be of type String.", err)))
        return rc;
    if (!m->target || !m->target[0])
        return fail(err, "Missing required property 'target'.");
    mp_value v;
    if (mp_next(r, &v) || v.kind != MP_ARRAY)
        return fail(err, "Expected 'arguments' to be of type Array.");
    m->nargs = (size_t)v.n;
    (void)mp_skip(r, v.n); /* cannot fail: the first pass checked the whole body */
    if (count >= 6) {
        if (mp_next(r, &v) || v.kind != MP_ARRAY)
            return fail(err, "Expected 'streamIds' to be of type Array.");
        for (uint64_t k = 0; k < v.n; k++) {
            mp_value id;
            if (mp_next(r, &id) || id.kind != MP_STR)
                return fail(err, "Expected 'streamIds' to contain only strings.");
        }
    }
    return SB_OK;
}

static int read_completion(mp_reader *r, sb_hub_msg *m, uint64_t count, const char **err) {
    int rc;
    if ((rc = read_headers(r, err)) || (rc = read_invocation_id(r, m, 1, err)))
        return rc;
    mp_value v;
    int64_t kind;
    if (mp_next(r, &v) || as_int64(&v, &kind) || kind < 1 || kind > 3)
        return fail(err, "Invalid invocation result kind.");
    if (kind == 2) /* void */
        return SB_OK;
    if (count < 5)
        return fail(err, "Missing the result of a Completion message.");
    if (kind == 3) {
        m->has_result = 1;
        return SB_OK;
    }
    if ((rc = read_text_or_nil(r, &m->error, "Expected 'error' to be of type String.", err)))
        return rc;
    return m->error ? SB_OK : fail(err, "Expected 'error' to be of type String.");
}

static int read_close(mp_reader *r, sb_hub_msg *m, uint64_t count, const char **err) {
    int rc = read_text_or_nil(r, &m->error, "Expected 'error' to be of type String.", err);
    if (rc || count < 3)
        return rc;
    mp_value v;
    if (mp_next(r, &v) || v.kind != MP_BOOL)
        return fail(err, "Expected 'allowReconnect' to be of type Boolean.");
    m->allow_reconnect = (int)v.u;
    return SB_OK;
}

static int mp_decode(sb_slice body, sb_hub_msg *m, const char **err) {
    /* The spec's minimum element count for each known type, the type included. */
    static const uint8_t min_count[] = {
        [SB_HUBMSG_INVOCATION] = 5,
        [SB_HUBMSG_STREAM_ITEM] = 4,
        [SB_HUBMSG_COMPLETION] = 4,
        [SB_HUBMSG_STREAM_INVOCATION] = 5,
        [SB_HUBMSG_CANCEL_INVOCATION] = 3,
        [SB_HUBMSG_PING] = 1,
        [SB_HUBMSG_CLOSE] = 2,
        [SB_HUBMSG_ACK] = 2,
        [SB_HUBMSG_SEQUENCE] = 2,
    };
    if (body.len == 0) /* also spares arithmetic on a NULL base */
        return fail(err, "Invalid payload.");
    const uint8_t *start = (const uint8_t *)body.base;
    mp_reader r = {start, start + body.len};
    if (mp_skip(&r, 1) || r.p != r.end)
        return fail(err, "Invalid payload.");
    r.p = start;

    mp_value v;
    int64_t type;
    mp_next(&r, &v);
    if (v.kind != MP_ARRAY || v.n == 0)
        return fail(err, "Message is not a non-empty MessagePack array.");
    uint64_t count = v.n;
    if (mp_next(&r, &v) || as_int64(&v, &type))
        return fail(err, "Expected the message type to be an integer.");
    if (type < INT_MIN || type > INT_MAX)
        return fail(err, "The message type is out of range.");
    m->type = (int)type;
    if (m->type < SB_HUBMSG_INVOCATION || m->type > SB_HUBMSG_SEQUENCE)
        return SB_OK; /* unknown: the caller's to ignore */
    if (count < min_count[m->type])
        return fail(err, "The message has too few elements for its type.");

    int rc;
    switch (m->type) {
    case SB_HUBMSG_INVOCATION:
    case SB_HUBMSG_STREAM_INVOCATION:
        return read_invocation(&r, m, count, err);
    case SB_HUBMSG_STREAM_ITEM:
    case SB_HUBMSG_CANCEL_INVOCATION: /* StreamItem's item may be anything */
        if ((rc = read_headers(&r, err)))
            return rc;
        return read_invocation_id(&r, m, 1, err);
    case SB_HUBMSG_COMPLETION:
        return read_completion(&r, m, count, err);
    case SB_HUBMSG_CLOSE:
        return read_close(&r, m, count, err);
    case SB_HUBMSG_ACK:
    case SB_HUBMSG_SEQUENCE:
        if (mp_next(&r, &v) || as_int64(&v, &m->sequence_id))
            return fail(err, "Expected 'sequenceId' to be an integer.");
        return SB_OK;
    default: /* Ping */
        return SB_OK;
    }
}

/* ---- encoding ----------------------------------------------------------- */

static int on_pack_write(void *data, const char *p, size_t n) {
    sb_buf_append(data, p, n);
    return 0;
}

typedef struct mp_frame {
    sb_buf *out;
    size_t start;
    msgpack_packer pk;
} mp_frame;

static void frame_begin(mp_frame *f, sb_buf *out) {
    f->out = out;
    f->start = out->len;
    msgpack_packer_init(&f->pk, out, on_pack_write);
}

/* Prefix the packed body with its length: one memmove beats packing twice. */
static void frame_end(mp_frame *f) {
    sb_buf *out = f->out;
    size_t n = out->len - f->start;
    uint8_t prefix[5];
    size_t k = sb_varint_write(prefix, n);
    sb_buf_reserve(out, k);
    memmove(out->data + f->start + k, out->data + f->start, n);
    memcpy(out->data + f->start, prefix, k);
    out->len += k;
    out->data[out->len] = '\0';
}

static void pack_text(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_text_or_nil(msgpack_packer *pk, const char *s) {
    if (s)
        pack_text(pk, s);
    else
        msgpack_pack_nil(pk);
}

/* Recursion is bounded by the depth of a json_t the server built (jansson parses at most 2048 levels). */
static void pack_json(msgpack_packer *pk, json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach(v, key, item) {
            pack_text(pk, key);
            pack_json(pk, item);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, item) pack_json(pk, item);
        break;
    }
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(v));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

/* Every message we write to a client starts [type, {}, ...]: empty Headers. */
static void begin_with_headers(mp_frame *f, sb_buf *out, int type, size_t count) {
    frame_begin(f, out);
    msgpack_pack_array(&f->pk, count);
    msgpack_pack_int(&f->pk, type);
    msgpack_pack_map(&f->pk, 0);
}

static void mp_write_invocation(sb_buf *out, const char *invocation_id, const char *target,
                                json_t *arguments) {
    mp_frame f;
    begin_with_headers(&f, out, SB_HUBMSG_INVOCATION, 5);
    pack_text_or_nil(&f.pk, invocation_id);
    pack_text(&f.pk, target);
    if (arguments)
        pack_json(&f.pk, arguments);
    else
        msgpack_pack_array(&f.pk, 0);
    frame_end(&f);
}

static void mp_write_ping(sb_buf *out) {
    sb_buf_append(out, "\x02\x91\x06", 3);
}

static void mp_write_close(sb_buf *out, const char *error, int allow_reconnect) {
    mp_frame f;
    frame_begin(&f, out);
    msgpack_pack_array(&f.pk, 3);
    msgpack_pack_int(&f.pk, SB_HUBMSG_CLOSE);
    pack_text_or_nil(&f.pk, error);
    if (allow_reconnect)
        msgpack_pack_true(&f.pk);
    else
        msgpack_pack_false(&f.pk);
    frame_end(&f);
}

static void mp_write_completion(sb_buf *out, const char *invocation_id, const char *error, json_t *result) {
    enum { RESULT_ERROR = 1, RESULT_VOID = 2, RESULT_VALUE = 3 };
    mp_frame f;
    begin_with_headers(&f, out, SB_HUBMSG_COMPLETION, error || result ? 5 : 4);
    pack_text(&f.pk, invocation_id);
    if (error) {
        msgpack_pack_int(&f.pk, RESULT_ERROR);
        pack_text(&f.pk, error);
    } else if (result) {
        msgpack_pack_int(&f.pk, RESULT_VALUE);
        pack_json(&f.pk, result);
    } else {
        msgpack_pack_int(&f.pk, RESULT_VOID);
    }
    frame_end(&f);
}

static void mp_write_sequence_id(sb_buf *out, int type, int64_t sequence_id) {
    mp_frame f;
    frame_begin(&f, out);
    msgpack_pack_array(&f.pk, 2);
    msgpack_pack_int(&f.pk, type);
    msgpack_pack_int64(&f.pk, sequence_id);
    frame_end(&f);
}

const sb__hubproto_ops sb__hubproto_msgpack = {
    .name = "messagepack",
    .split = mp_split,
    .decode = mp_decode,
    .write_invocation = mp_write_invocation,
    .write_ping = mp_write_ping,
    .write_close = mp_write_close,
    .write_completion = mp_write_completion,
    .write_sequence_id = mp_write_sequence_id,
};
