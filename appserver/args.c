/*
 * args.c - the arguments of a hub Invocation as jansson values, whatever the
 * client's hub protocol, so hub methods are written once against json_t.
 *
 * Input: the message body that sb_hubproto_decode() already accepted, so its
 * structure is known to be sound and every declared array or map length is
 * backed by real bytes (msgpack-c may then size its zone by those lengths).
 * msgpack-c refuses nesting deeper than its fixed parser stack, which also
 * bounds the recursion of the conversion below.
 *
 * MessagePack has values JSON lacks; they map the way a .NET hub would see
 * them after a JSON round trip: bin -> base64 string, uint64 above INT64_MAX ->
 * real, NaN/inf -> null, ext -> null, map keys that are integers -> decimal
 * strings, other keys dropped, strings that are not UTF-8 -> null.
 */
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>

#include "appserver.h"
#include "util/base64.h"

static json_t *from_msgpack(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 <= (uint64_t)INT64_MAX ? json_integer((json_int_t)o->via.u64)
                                                 : json_real((double)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        json_t *r = isfinite(o->via.f64) ? json_real(o->via.f64) : NULL;
        return r ? r : json_null();
    }
    case MSGPACK_OBJECT_STR: {
        json_t *s = json_stringn(o->via.str.ptr, o->via.str.size);
        return s ? s : json_null();
    }
    case MSGPACK_OBJECT_BIN: {
        sb_buf b;
        sb_buf_init(&b);
        sb_base64_encode(o->via.bin.ptr, o->via.bin.size, &b);
        json_t *s = json_stringn(b.data ? b.data : "", b.len);
        sb_buf_free(&b);
        return s;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            json_array_append_new(a, from_msgpack(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *obj = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char num[24];
            json_t *v = from_msgpack(&o->via.map.ptr[i].val);
            if (k->type == MSGPACK_OBJECT_STR)
                json_object_setn_new(obj, k->via.str.ptr, k->via.str.size, v); /* refuses bad UTF-8 */
            else if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf(num, sizeof num, "%" PRIu64, k->via.u64);
                json_object_set_new(obj, num, v);
            } else if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                snprintf(num, sizeof num, "%" PRId64, k->via.i64);
                json_object_set_new(obj, num, v);
            } else {
                json_decref(v);
            }
        }
        return obj;
    }
    default:
        return json_null(); /* ext */
    }
}

static json_t *args_msgpack(sb_slice raw) {
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    json_t *args = NULL;
    if (msgpack_unpack_next(&up, raw.base, raw.len, &off) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *o = &up.data;
        /* [type, headers, invocationId, target, [arguments], streamIds?] */
        if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 5 &&
            o->via.array.ptr[4].type == MSGPACK_OBJECT_ARRAY)
            args = from_msgpack(&o->via.array.ptr[4]);
    }
    msgpack_unpacked_destroy(&up);
    return args;
}

static json_t *args_json(sb_slice raw) {
    json_t *root = json_loadb(raw.base, raw.len, 0, NULL);
    json_t *args = root ? json_object_get(root, "arguments") : NULL;
    if (args && json_is_array(args))
        json_incref(args);
    else
        args = NULL;
    json_decref(root);
    return args;
}

json_t *sb_app_args_decode(sb_hub_protocol p, sb_slice raw) {
    return p == SB_HUBPROTO_MSGPACK ? args_msgpack(raw) : args_json(raw);
}
