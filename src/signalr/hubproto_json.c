/*
 * hubproto_json.c - the JSON hub protocol: messages are UTF-8 JSON objects,
 * each followed by the record separator 0x1E.
 *
 * Decoding parses the whole body with jansson (which rejects invalid UTF-8,
 * \u0000 in strings, trailing data and nesting deeper than its own limit) and
 * then checks what the spec requires of each message type a client may send,
 * with the same rules (and error texts in the same style) as the .NET server:
 * Invocation's invocationId is optional and an empty one means "no reply
 * wanted"; every other type that carries an invocationId needs a non-empty one.
 * Property order is free (the JS client writes "type" last).
 *
 * Encoding writes compact JSON with "type" first and omits what is absent:
 * the JS client rejects a null invocationId, and .NET writes allowReconnect
 * only when true.  Strings are escaped by sb__json_write_string, JSON values
 * (arguments, results) are dumped by jansson.
 *
 * Not here: the handshake (hubproto.c), which is JSON for every protocol.
 */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "signalr/hubproto.h"
#include "util/alloc.h"
#include "util/error.h"

#define RECORD_SEPARATOR 0x1e

static int json_split(const uint8_t *data, size_t len, size_t max_message, sb_slice *body, size_t *consumed) {
    /* A separator at index max_message still ends a body of exactly max_message bytes. */
    size_t scan = len > max_message ? max_message + 1 : len;
    const uint8_t *sep = scan ? memchr(data, RECORD_SEPARATOR, scan) : NULL;
    if (!sep)
        return len > max_message ? SB_E2BIG : SB_EAGAIN;
    *body = sb_slice_make(data, (size_t)(sep - data));
    *consumed = body->len + 1;
    return SB_OK;
}

/* ---- decoding ----------------------------------------------------------- */

static int fail(const char **err, const char *text) {
    *err = text;
    return SB_EPROTO;
}

/* Invocation: absent, null and "" all mean non-blocking. */
static int get_optional_id(json_t *root, sb_hub_msg *m, const char **err) {
    json_t *id = json_object_get(root, "invocationId");
    if (!id || json_is_null(id))
        return SB_OK;
    if (!json_is_string(id))
        return fail(err, "Expected 'invocationId' to be of type String.");
    if (json_string_length(id) > 0)
        m->invocation_id = sb_strdup(json_string_value(id));
    return SB_OK;
}

static int get_required_id(json_t *root, sb_hub_msg *m, const char **err) {
    int rc = get_optional_id(root, m, err);
    if (rc == SB_OK && !m->invocation_id)
        return fail(err, "Missing required property 'invocationId'.");
    return rc;
}

static int check_headers(json_t *root, const char **err) {
    json_t *headers = json_object_get(root, "headers");
    if (!headers)
        return SB_OK;
    if (!json_is_object(headers))
        return fail(err, "Expected 'headers' to be of type Object.");
    const char *key;
    json_t *value;
    json_object_foreach(headers, key, value) {
        if (!json_is_string(value))
            return fail(err, "Expected header values to be of type String.");
    }
    return SB_OK;
}

/* Invocation and StreamInvocation: target, arguments and the optional streamIds. */
static int get_invocation(json_t *root, sb_hub_msg *m, const char **err) {
    json_t *target = json_object_get(root, "target");
    if (target && !json_is_string(target))
        return fail(err, "Expected 'target' to be of type String.");
    if (!target || json_string_length(target) == 0)
        return fail(err, "Missing required property 'target'.");
    json_t *arguments = json_object_get(root, "arguments");
    if (!arguments)
        return fail(err, "Missing required property 'arguments'.");
    if (!json_is_array(arguments))
        return fail(err, "Expected 'arguments' to be of type Array.");
    json_t *stream_ids = json_object_get(root, "streamIds");
    if (stream_ids) {
        size_t i;
        json_t *id;
        if (!json_is_array(stream_ids))
            return fail(err, "Expected 'streamIds' to be of type Array.");
        json_array_foreach(stream_ids, i, id) {
            if (!json_is_string(id))
                return fail(err, "Expected 'streamIds' to contain only strings.");
        }
    }
    m->target = sb_strdup(json_string_value(target));
    m->nargs = json_array_size(arguments);
    return SB_OK;
}

/* Completion and Close: a null error is no error. */
static int get_error(json_t *root, sb_hub_msg *m, const char **err) {
    json_t *error = json_object_get(root, "error");
    if (!error || json_is_null(error))
        return SB_OK;
    if (!json_is_string(error))
        return fail(err, "Expected 'error' to be of type String.");
    m->error = sb_strdup(json_string_value(error));
    return SB_OK;
}

static int get_sequence_id(json_t *root, sb_hub_msg *m, const char **err) {
    json_t *seq = json_object_get(root, "sequenceId");
    if (!seq)
        return fail(err, "Missing required property 'sequenceId'.");
    if (json_is_integer(seq)) {
        m->sequence_id = json_integer_value(seq);
        return SB_OK;
    }
    /* A number written as 5.0 is still a sequence id; 0.5 or 1e300 is not.  The range
     * check comes first because converting a double outside int64_t is undefined. */
    double d = json_is_real(seq) ? json_real_value(seq) : 0.5;
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(int64_t)d == d) {
        m->sequence_id = (int64_t)d;
        return SB_OK;
    }
    return fail(err, "Expected 'sequenceId' to be an integer.");
}

static int decode_fields(json_t *root, sb_hub_msg *m, const char **err) {
    if (!json_is_object(root))
        return fail(err, "Message is not a JSON object.");
    json_t *type = json_object_get(root, "type");
    if (!type)
        return fail(err, "Missing required property 'type'.");
    if (!json_is_integer(type))
        return fail(err, "Expected 'type' to be of type Integer.");
    if (json_integer_value(type) < INT_MIN || json_integer_value(type) > INT_MAX)
        return fail(err, "Property 'type' is out of range.");
    m->type = (int)json_integer_value(type);

    /* Unknown types are the caller's to ignore, so nothing else about them is checked. */
    if (m->type < SB_HUBMSG_INVOCATION || m->type > SB_HUBMSG_SEQUENCE)
        return SB_OK;
    int rc = check_headers(root, err);
    if (rc)
        return rc;
    switch (m->type) {
    case SB_HUBMSG_INVOCATION:
        if ((rc = get_optional_id(root, m, err)))
            return rc;
        return get_invocation(root, m, err);
    case SB_HUBMSG_STREAM_INVOCATION:
        if ((rc = get_required_id(root, m, err)))
            return rc;
        return get_invocation(root, m, err);
    case SB_HUBMSG_STREAM_ITEM:
        if ((rc = get_required_id(root, m, err)))
            return rc;
        if (!json_object_get(root, "item"))
            return fail(err, "Missing required property 'item'.");
        return SB_OK;
    case SB_HUBMSG_COMPLETION:
        if ((rc = get_required_id(root, m, err)) || (rc = get_error(root, m, err)))
            return rc;
        m->has_result = json_object_get(root, "result") != NULL;
        if (m->error && m->has_result)
            return fail(err, "The 'error' and 'result' properties are mutually exclusive.");
        return SB_OK;
    case SB_HUBMSG_CANCEL_INVOCATION:
        return get_required_id(root, m, err);
    case SB_HUBMSG_CLOSE: {
        if ((rc = get_error(root, m, err)))
            return rc;
        json_t *allow = json_object_get(root, "allowReconnect");
        if (allow && !json_is_boolean(allow))
            return fail(err, "Expected 'allowReconnect' to be of type Boolean.");
        m->allow_reconnect = json_is_true(allow);
        return SB_OK;
    }
    case SB_HUBMSG_ACK:
    case SB_HUBMSG_SEQUENCE:
        return get_sequence_id(root, m, err);
    default: /* Ping */
        return SB_OK;
    }
}

static int json_decode(sb_slice body, sb_hub_msg *m, const char **err) {
    json_t *root = json_loadb(body.base, body.len, 0, NULL);
    if (!root)
        return fail(err, "Error reading JSON.");
    int rc = decode_fields(root, m, err);
    json_decref(root);
    return rc;
}

/* ---- encoding ----------------------------------------------------------- */

static void write_value(sb_buf *out, json_t *value) {
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t n = json_dumpb(value, NULL, 0, flags);
    sb_buf_reserve(out, n);
    json_dumpb(value, out->data + out->len, n, flags);
    out->len += n;
    out->data[out->len] = '\0';
}

static void write_end(sb_buf *out) {
    sb_buf_append(out, "}\x1e", 2);
}

static void json_write_invocation(sb_buf *out, const char *invocation_id, const char *target,
                                  json_t *arguments) {
    sb_buf_appends(out, "{\"type\":1");
    if (invocation_id) {
        sb_buf_appends(out, ",\"invocationId\":");
        sb__json_write_string(out, invocation_id);
    }
    sb_buf_appends(out, ",\"target\":");
    sb__json_write_string(out, target);
    sb_buf_appends(out, ",\"arguments\":");
    if (arguments)
        write_value(out, arguments);
    else
        sb_buf_appends(out, "[]");
    write_end(out);
}

static void json_write_ping(sb_buf *out) {
    sb_buf_appends(out, "{\"type\":6}\x1e");
}

static void json_write_close(sb_buf *out, const char *error, int allow_reconnect) {
    sb_buf_appends(out, "{\"type\":7");
    if (error) {
        sb_buf_appends(out, ",\"error\":");
        sb__json_write_string(out, error);
    }
    if (allow_reconnect)
        sb_buf_appends(out, ",\"allowReconnect\":true");
    write_end(out);
}

static void json_write_completion(sb_buf *out, const char *invocation_id, const char *error, json_t *result) {
    sb_buf_appends(out, "{\"type\":3,\"invocationId\":");
    sb__json_write_string(out, invocation_id);
    if (error) {
        sb_buf_appends(out, ",\"error\":");
        sb__json_write_string(out, error);
    } else if (result) {
        sb_buf_appends(out, ",\"result\":");
        write_value(out, result);
    }
    write_end(out);
}

static void json_write_sequence_id(sb_buf *out, int type, int64_t sequence_id) {
    sb_buf_appendf(out, "{\"type\":%d,\"sequenceId\":%" PRId64 "}\x1e", type, sequence_id);
}

const sb__hubproto_ops sb__hubproto_json = {
    .name = "json",
    .split = json_split,
    .decode = json_decode,
    .write_invocation = json_write_invocation,
    .write_ping = json_write_ping,
    .write_close = json_write_close,
    .write_completion = json_write_completion,
    .write_sequence_id = json_write_sequence_id,
};
