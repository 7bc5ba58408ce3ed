/*
 * svcproto.c - service protocol codec: VarInt framing, a bounds-checked
 * MessagePack reader, a smallest-encoding MessagePack writer, and one table
 * (`layouts`) that describes every message type's array layout.
 *
 * The table is the single place that says which fields a type has, in which
 * order, from which array length each optional field is present, which ids may
 * not be nil and which ext keys the type carries; the decoder and the encoder
 * both walk it, so they cannot disagree.  Ping (a variable list of strings) is
 * the only type handled outside the table.
 *
 * Reader invariants, because the input comes from the network:
 *  - every length is checked against the bytes left before anything is copied
 *    or allocated, and a list of n elements is only allocated once n <= bytes
 *    left (each element needs at least one byte), so memory stays linear in
 *    the input size;
 *  - values we skip (unknown ext keys) are skipped iteratively with a pending
 *    item counter, so nesting depth costs no stack;
 *  - on any error the partially built message is freed.
 *
 * The writer is hand-made rather than msgpack-c's packer so that the choice of
 * every header byte (fixint vs cc, the fixed d2 of ConnectionFlowControl) is
 * explicit and matches the SDK byte for byte.
 *
 * Not here: what messages mean (routing, acks, tracing decisions), sockets,
 * and the SignalR hub protocols inside payloads.
 */
#include "service/svcproto.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/error.h"

/* ---- the layout table ---------------------------------------------------- */

enum field_kind { K_END = 0, K_STR, K_I32, K_BOOL, K_STRV, K_PAYLOADS, K_HEADERS, K_CLAIMS, K_BIN, K_EXT };

enum field_flag {
    F_REQUIRED = 1 << 0,      /* nil is rejected on decode */
    F_FIXED32 = 1 << 1,       /* always written as d2 + 4 bytes */
    F_EMPTY_IF_NULL = 1 << 2, /* NULL written as "" (the SDK model never holds null) */
    F_TARGET = 1 << 3,        /* HandshakeRequest target: "" unless connection_type != 0 */
    F_NIL_IF_NULL = 1 << 4,   /* bytes: NULL written as nil instead of an empty bin */
    F_NEWER = 1 << 5,         /* dropped by the writer for legacy_layout when at its default */
    F_WRITE_ONLY = 1 << 6,    /* written but, like the SDK, never read */
};

typedef struct field {
    uint8_t kind;
    uint8_t flags;
    uint8_t gate; /* smallest array length that carries this field; 0 = exactly its position */
    uint16_t offset;
    const char *err;
} field;

typedef struct layout {
    uint8_t min_len; /* shortest array the SDK accepts; shorter is an error */
    uint8_t ext;     /* SB_SVC_EXT_BIT set of the ext keys this type carries */
    field f[7];      /* wire order after the type; K_END terminates */
} layout;

/* One line per field and per type, so the table reads like the catalogue. */
/* clang-format off */
#define AT(member) offsetof(sb_svc_msg, member), "invalid field " #member
#define STR(m) {K_STR, 0, 0, AT(m)}
#define REQ(m) {K_STR, F_REQUIRED, 0, AT(m)}
#define I32(m) {K_I32, 0, 0, AT(m)}
#define STRV(m) {K_STRV, 0, 0, AT(m)}
#define BIN(m) {K_BIN, 0, 0, AT(m)}
#define PAYLOADS {K_PAYLOADS, 0, 0, AT(payloads)}
#define HEADERS {K_HEADERS, 0, 0, AT(headers)}
#define CLAIMS {K_CLAIMS, 0, 0, AT(claims)}
#define EXT {K_EXT, 0, 0, 0, "invalid extension map"}

#define X_TR SB_SVC_EXT_BIT(SB_SVC_EXT_TRACING_ID)
#define X_TTL SB_SVC_EXT_BIT(SB_SVC_EXT_TTL)
#define X_PROTO SB_SVC_EXT_BIT(SB_SVC_EXT_PROTOCOL)
#define X_FILTER SB_SVC_EXT_BIT(SB_SVC_EXT_FILTER)
#define X_DATA (SB_SVC_EXT_BIT(SB_SVC_EXT_DATA_MESSAGE_TYPE) | SB_SVC_EXT_BIT(SB_SVC_EXT_IS_PARTIAL))

static const layout layouts[SB_SVC_TYPE_MAX + 1] = {
    [SB_SVC_HANDSHAKE_REQUEST] = {2, 0,
        {I32(version), {K_I32, 0, 4, AT(connection_type)}, {K_STR, F_TARGET, 4, AT(target)}, I32(migration_level),
         EXT, {K_BOOL, F_NEWER, 0, AT(allow_stateful_reconnects)}}},
    [SB_SVC_HANDSHAKE_RESPONSE] = {2, 0, {STR(error), EXT, STR(connection_id)}},
    [SB_SVC_OPEN_CONNECTION] = {3, X_TR | X_PROTO,
        {REQ(connection_id), CLAIMS, {K_HEADERS, 0, 5, AT(headers)}, STR(query_string), EXT}},
    [SB_SVC_CLOSE_CONNECTION] = {3, X_TR,
        {REQ(connection_id), {K_STR, F_EMPTY_IF_NULL, 0, AT(error)}, HEADERS, EXT}},
    [SB_SVC_CONNECTION_DATA] = {3, X_TR | X_DATA, {REQ(connection_id), BIN(payload), EXT}},
    [SB_SVC_MULTI_CONNECTION_DATA] = {3, X_TR | X_FILTER, {STRV(connection_ids), PAYLOADS, EXT}},
    [SB_SVC_USER_DATA] = {3, X_TR | X_FILTER, {REQ(user_id), PAYLOADS, EXT}},
    [SB_SVC_MULTI_USER_DATA] = {3, X_TR | X_FILTER, {STRV(user_ids), PAYLOADS, EXT}},
    [SB_SVC_BROADCAST_DATA] = {3, X_TR | X_FILTER, {STRV(excluded), PAYLOADS, EXT}},
    [SB_SVC_JOIN_GROUP] = {3, X_TR, {REQ(connection_id), REQ(group), EXT}},
    [SB_SVC_LEAVE_GROUP] = {3, X_TR, {REQ(connection_id), STR(group), EXT}},
    [SB_SVC_GROUP_BROADCAST_DATA] = {4, X_TR | X_FILTER,
        {REQ(group), STRV(excluded), PAYLOADS, EXT, {K_STRV, 0, 7, AT(excluded_user_ids)}, STR(caller_user_id)}},
    [SB_SVC_MULTI_GROUP_BROADCAST_DATA] = {3, X_TR | X_FILTER, {STRV(groups), PAYLOADS, EXT}},
    [SB_SVC_SERVICE_ERROR] = {2, 0, {STR(error)}},
    [SB_SVC_USER_JOIN_GROUP] = {3, X_TR | X_TTL, {REQ(user_id), REQ(group), EXT}},
    [SB_SVC_USER_LEAVE_GROUP] = {3, X_TR, {REQ(user_id), STR(group), EXT}},
    [SB_SVC_JOIN_GROUP_WITH_ACK] = {4, X_TR, {REQ(connection_id), REQ(group), I32(ack_id), EXT}},
    [SB_SVC_LEAVE_GROUP_WITH_ACK] = {4, X_TR, {REQ(connection_id), STR(group), I32(ack_id), EXT}},
    [SB_SVC_ACK] = {4, 0,
        {I32(ack_id), I32(status), STR(message), EXT, {K_BIN, F_NIL_IF_NULL | F_NEWER, 0, AT(payload)}}},
    [SB_SVC_CHECK_USER_IN_GROUP_WITH_ACK] = {4, X_TR, {REQ(user_id), REQ(group), I32(ack_id), EXT}},
    [SB_SVC_SERVICE_EVENT] = {6, 0, {I32(object_type), STR(object_id), I32(kind), STR(message), EXT}},
    [SB_SVC_CHECK_GROUP_EXISTENCE_WITH_ACK] = {4, X_TR, {REQ(group), I32(ack_id), EXT}},
    [SB_SVC_CHECK_CONNECTION_EXISTENCE_WITH_ACK] = {4, X_TR, {REQ(connection_id), I32(ack_id), EXT}},
    [SB_SVC_CHECK_USER_EXISTENCE_WITH_ACK] = {4, X_TR, {REQ(user_id), I32(ack_id), EXT}},
    [SB_SVC_USER_JOIN_GROUP_WITH_ACK] = {5, X_TR | X_TTL, {REQ(user_id), REQ(group), I32(ack_id), EXT}},
    [SB_SVC_USER_LEAVE_GROUP_WITH_ACK] = {5, X_TR, {REQ(user_id), STR(group), I32(ack_id), EXT}},
    [SB_SVC_ACCESS_KEY_REQUEST] = {4, 0, {STR(aad_token), STR(kid), EXT}},
    [SB_SVC_ACCESS_KEY_RESPONSE] = {6, 0, {STR(kid), STR(access_key), STR(error_type), STR(error), EXT}},
    [SB_SVC_CLOSE_CONNECTION_WITH_ACK] = {4, X_TR, {REQ(connection_id), STR(reason), I32(ack_id), EXT}},
    [SB_SVC_CLOSE_CONNECTIONS_WITH_ACK] = {4, X_TR, {STR(reason), I32(ack_id), STRV(excluded), EXT}},
    [SB_SVC_CLOSE_USER_CONNECTIONS_WITH_ACK] = {5, X_TR,
        {REQ(user_id), STR(reason), I32(ack_id), STRV(excluded), EXT}},
    [SB_SVC_CLOSE_GROUP_CONNECTIONS_WITH_ACK] = {5, X_TR,
        {REQ(group), STR(reason), I32(ack_id), STRV(excluded), EXT}},
    [SB_SVC_CLIENT_INVOCATION] = {6, X_TR,
        {REQ(invocation_id), REQ(connection_id), REQ(caller_server_id), PAYLOADS, EXT}},
    [SB_SVC_CLIENT_COMPLETION] = {7, X_TR | X_PROTO,
        {REQ(invocation_id), REQ(connection_id), REQ(caller_server_id), STR(protocol), BIN(payload), EXT}},
    [SB_SVC_ERROR_COMPLETION] = {6, X_TR,
        {REQ(invocation_id), REQ(connection_id), REQ(caller_server_id), STR(error), EXT}},
    [SB_SVC_SERVICE_MAPPING] = {5, 0, {REQ(invocation_id), REQ(connection_id), REQ(instance_id), EXT}},
    [SB_SVC_CONNECTION_RECONNECT] = {3, 0, {REQ(connection_id), EXT}},
    [SB_SVC_CONNECTION_FLOW_CONTROL] = {4, 0,
        {REQ(connection_id), {K_I32, F_FIXED32, 0, AT(connection_type)}, {K_I32, F_FIXED32, 0, AT(operation)},
         {K_EXT, F_WRITE_ONLY, 0, 0, "invalid extension map"}}},
    [SB_SVC_GROUP_MEMBER_QUERY] = {6, X_TR,
        {EXT, REQ(group), I32(ack_id), I32(max_count), STR(continuation_token)}},
};
/* clang-format on */

static const char *const type_names[SB_SVC_TYPE_MAX + 1] = {
    [1] = "HandshakeRequestMessage",
    [2] = "HandshakeResponseMessage",
    [3] = "PingMessage",
    [4] = "OpenConnectionMessage",
    [5] = "CloseConnectionMessage",
    [6] = "ConnectionDataMessage",
    [7] = "MultiConnectionDataMessage",
    [8] = "UserDataMessage",
    [9] = "MultiUserDataMessage",
    [10] = "BroadcastDataMessage",
    [11] = "JoinGroupMessage",
    [12] = "LeaveGroupMessage",
    [13] = "GroupBroadcastDataMessage",
    [14] = "MultiGroupBroadcastDataMessage",
    [15] = "ServiceErrorMessage",
    [16] = "UserJoinGroupMessage",
    [17] = "UserLeaveGroupMessage",
    [18] = "JoinGroupWithAckMessage",
    [19] = "LeaveGroupWithAckMessage",
    [20] = "AckMessage",
    [21] = "CheckUserInGroupWithAckMessage",
    [22] = "ServiceEventMessage",
    [23] = "CheckGroupExistenceWithAckMessage",
    [24] = "CheckConnectionExistenceWithAckMessage",
    [25] = "CheckUserExistenceWithAckMessage",
    [26] = "UserJoinGroupWithAckMessage",
    [27] = "UserLeaveGroupWithAckMessage",
    [28] = "AccessKeyRequestMessage",
    [29] = "AccessKeyResponseMessage",
    [30] = "CloseConnectionWithAckMessage",
    [31] = "CloseConnectionsWithAckMessage",
    [32] = "CloseUserConnectionsWithAckMessage",
    [33] = "CloseGroupConnectionsWithAckMessage",
    [34] = "ClientInvocationMessage",
    [35] = "ClientCompletionMessage",
    [36] = "ErrorCompletionMessage",
    [37] = "ServiceMappingMessage",
    [38] = "ConnectionReconnectMessage",
    [39] = "ConnectionFlowControlMessage",
    [40] = "GroupMemberQueryMessage",
};

/* The layout of a table-driven type, or NULL (Ping and unknown types). */
static const layout *layout_of(int type) {
    if (type < 1 || type > SB_SVC_TYPE_MAX || type == SB_SVC_PING)
        return NULL;
    return &layouts[type];
}

const char *sb_svc_type_name(int type) {
    return type >= 1 && type <= SB_SVC_TYPE_MAX ? type_names[type] : "UnknownMessage";
}

unsigned sb_svc_ext_allowed(int type) {
    const layout *l = layout_of(type);
    return l ? l->ext : 0;
}

#define MEMBER(m, f, T) ((T *)((char *)(m) + (f)->offset))
#define CMEMBER(m, f, T) ((const T *)((const char *)(m) + (f)->offset))

/* ---- VarInt framing ------------------------------------------------------ */

static size_t varint_write(uint8_t out[5], size_t value) {
    size_t n = 0;
    do {
        uint8_t b = value & 0x7f;
        value >>= 7;
        out[n++] = b | (value ? 0x80 : 0);
    } while (value && n < 5);
    return n;
}

int sb_svc_split(const uint8_t *data, size_t len, size_t max_message, sb_slice *body, size_t *consumed) {
    size_t value = 0, n = 0;
    for (;;) {
        if (n == len)
            return SB_EAGAIN;
        uint8_t b = data[n];
        value |= (size_t)(b & 0x7f) << (7 * n);
        n++;
        if (n == 5) {
            /* 5 x 7 bits would allow 32 GB; the SDK caps frames below 2 GB. */
            if (b > 7)
                return SB_EPROTO;
            break;
        }
        if (!(b & 0x80))
            break;
    }
    if (value > max_message)
        return SB_E2BIG;
    if (len - n < value)
        return SB_EAGAIN;
    body->base = (char *)(data + n);
    body->len = value;
    *consumed = n + value;
    return SB_OK;
}

/* ---- MessagePack reader -------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    const uint8_t *end;
} reader;

static size_t rd_left(const reader *r) {
    return (size_t)(r->end - r->p);
}

/* Big-endian unsigned of n bytes (1, 2, 4 or 8). */
static int rd_be(reader *r, unsigned n, uint64_t *v) {
    if (rd_left(r) < n)
        return -1;
    uint64_t x = 0;
    for (unsigned i = 0; i < n; i++)
        x = x << 8 | r->p[i];
    r->p += n;
    *v = x;
    return 0;
}

/* Any integer encoding.  *negative tells how to read *bits: as int64 when set, else as uint64. */
static int rd_integer(reader *r, int *negative, uint64_t *bits) {
    if (!rd_left(r))
        return -1;
    uint8_t b = *r->p++;
    uint64_t u;
    int64_t s;
    if (b <= 0x7f) {
        *negative = 0;
        *bits = b;
        return 0;
    }
    if (b >= 0xe0) {
        s = (int8_t)b;
    } else if (b >= 0xcc && b <= 0xcf) {
        if (rd_be(r, 1u << (b - 0xcc), &u))
            return -1;
        *negative = 0;
        *bits = u;
        return 0;
    } else if (b >= 0xd0 && b <= 0xd3) {
        unsigned n = 1u << (b - 0xd0);
        if (rd_be(r, n, &u))
            return -1;
        s = n == 1 ? (int8_t)u : n == 2 ? (int16_t)u : n == 4 ? (int32_t)u : (int64_t)u;
    } else {
        return -1;
    }
    *negative = s < 0;
    *bits = (uint64_t)s;
    return 0;
}

static int rd_i32(reader *r, int32_t *out) {
    int neg;
    uint64_t bits;
    if (rd_integer(r, &neg, &bits))
        return -1;
    if (neg ? (int64_t)bits < INT32_MIN : bits > INT32_MAX)
        return -1;
    *out = neg ? (int32_t)(int64_t)bits : (int32_t)bits;
    return 0;
}

static int rd_u64(reader *r, uint64_t *out) {
    int neg;
    if (rd_integer(r, &neg, out) || neg)
        return -1;
    return 0;
}

static int rd_bool(reader *r, int *out) {
    if (!rd_left(r) || (*r->p != 0xc2 && *r->p != 0xc3))
        return -1;
    *out = *r->p++ == 0xc3;
    return 0;
}

static int rd_is_nil(reader *r) {
    if (rd_left(r) && *r->p == 0xc0) {
        r->p++;
        return 1;
    }
    return 0;
}

/* Array (map 0) or map (map 1) header; nil reads as empty when allow_nil. */
static int rd_container(reader *r, int map, int allow_nil, uint32_t *n) {
    if (allow_nil && rd_is_nil(r)) {
        *n = 0;
        return 0;
    }
    if (!rd_left(r))
        return -1;
    uint8_t b = *r->p++;
    uint64_t v;
    uint8_t fix = map ? 0x80 : 0x90, w16 = map ? 0xde : 0xdc;
    if ((b & 0xf0) == fix)
        v = b & 0x0f;
    else if (b == w16 || b == w16 + 1) {
        if (rd_be(r, b == w16 ? 2 : 4, &v))
            return -1;
    } else
        return -1;
    /* Every element takes at least one byte (two per map entry), so a longer
     * count is a lie and must not size an allocation. */
    if (v > rd_left(r) / (map ? 2 : 1))
        return -1;
    *n = (uint32_t)v;
    return 0;
}

/* str (nil allowed) -> view; *s NULL for nil. */
static int rd_strview(reader *r, const uint8_t **s, size_t *n) {
    if (rd_is_nil(r)) {
        *s = NULL;
        *n = 0;
        return 0;
    }
    if (!rd_left(r))
        return -1;
    uint8_t b = *r->p++;
    uint64_t len;
    if ((b & 0xe0) == 0xa0)
        len = b & 0x1f;
    else if (b >= 0xd9 && b <= 0xdb) {
        if (rd_be(r, 1u << (b - 0xd9), &len))
            return -1;
    } else
        return -1;
    if (len > rd_left(r))
        return -1;
    *s = r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

/* Owned string; nil -> NULL, or "" when nil_empty.  Embedded NULs are rejected. */
static int rd_str(reader *r, int nil_empty, char **out) {
    const uint8_t *s;
    size_t n;
    if (rd_strview(r, &s, &n) || (s && memchr(s, 0, n)))
        return -1;
    *out = s ? sb_strndup((const char *)s, n) : nil_empty ? sb_strdup("") : NULL;
    return 0;
}

/* Owned bytes; nil -> {NULL, 0}; an empty bin is non-NULL so nil and empty stay distinct. */
static int rd_bin(reader *r, sb_svc_bytes *out) {
    if (rd_is_nil(r))
        return 0;
    if (!rd_left(r))
        return -1;
    uint8_t b = *r->p++;
    uint64_t len;
    if (b < 0xc4 || b > 0xc6 || rd_be(r, 1u << (b - 0xc4), &len) || len > rd_left(r))
        return -1;
    out->data = sb_malloc((size_t)len);
    if (len)
        memcpy(out->data, r->p, (size_t)len);
    out->len = (size_t)len;
    r->p += len;
    return 0;
}

/* The header of a list (map: 0) or map (1) whose elements the caller reads next, nil allowed: *v gets n zeroed
 * elements of `size` bytes (left alone for none) and *count their number.  The caller stores *v before reading
 * any element, so a failure half way is freed by sb_svc_msg_clear. */
static int rd_elements(reader *r, int map, void **v, size_t *count, size_t size) {
    uint32_t n;
    if (rd_container(r, map, 1, &n))
        return -1;
    if (n) {
        *v = sb_calloc(n, size);
        *count = n;
    }
    return 0;
}

static int rd_strv(reader *r, sb_svc_strv *out) {
    void *v = NULL;
    if (rd_elements(r, 0, &v, &out->n, sizeof *out->v))
        return -1;
    out->v = v;
    for (size_t i = 0; i < out->n; i++)
        if (rd_str(r, 1, &out->v[i]))
            return -1;
    return 0;
}

static int rd_payloads(reader *r, sb_svc_payloads *out) {
    void *v = NULL;
    if (rd_elements(r, 1, &v, &out->n, sizeof *out->v))
        return -1;
    out->v = v;
    for (size_t i = 0; i < out->n; i++)
        if (rd_str(r, 1, &out->v[i].protocol) || rd_bin(r, &out->v[i].bytes))
            return -1;
    return 0;
}

static int rd_headers(reader *r, sb_svc_headers *out) {
    void *v = NULL;
    if (rd_elements(r, 1, &v, &out->n, sizeof *out->v))
        return -1;
    out->v = v;
    for (size_t i = 0; i < out->n; i++)
        if (rd_str(r, 1, &out->v[i].name) || rd_strv(r, &out->v[i].values))
            return -1;
    return 0;
}

static int rd_claims(reader *r, sb_svc_claims *out) {
    void *v = NULL;
    if (rd_elements(r, 1, &v, &out->n, sizeof *out->v))
        return -1;
    out->v = v;
    for (size_t i = 0; i < out->n; i++)
        if (rd_str(r, 1, &out->v[i].type) || rd_str(r, 1, &out->v[i].value))
            return -1;
    return 0;
}

/* Skip one complete value of any type. */
static int rd_skip(reader *r) {
    uint64_t pending = 1;
    while (pending) {
        pending--;
        if (!rd_left(r))
            return -1;
        uint8_t b = *r->p++;
        uint64_t n = 0; /* payload bytes after the header */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* self-contained */
        } else if (b <= 0x8f) {
            pending += 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            pending += b & 0x0f;
        } else if (b <= 0xbf) {
            n = b & 0x1f;
        } else if (b >= 0xc4 && b <= 0xc6) { /* bin */
            if (rd_be(r, 1u << (b - 0xc4), &n))
                return -1;
        } else if (b >= 0xc7 && b <= 0xc9) { /* ext: length, then a type byte */
            if (rd_be(r, 1u << (b - 0xc7), &n))
                return -1;
            n += 1;
        } else if (b >= 0xca && b <= 0xd3) { /* float32/64, uint8-64, int8-64 */
            static const uint8_t size[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
            n = size[b - 0xca];
        } else if (b >= 0xd4 && b <= 0xd8) { /* fixext 1-16 plus its type byte */
            n = 1 + (1u << (b - 0xd4));
        } else if (b >= 0xd9 && b <= 0xdb) {
            if (rd_be(r, 1u << (b - 0xd9), &n))
                return -1;
        } else if (b == 0xdc || b == 0xdd) {
            uint64_t c;
            if (rd_be(r, b == 0xdc ? 2 : 4, &c))
                return -1;
            pending += c;
        } else if (b == 0xde || b == 0xdf) {
            uint64_t c;
            if (rd_be(r, b == 0xde ? 2 : 4, &c))
                return -1;
            pending += 2 * c;
        } else {
            return -1; /* 0xc1 is never used */
        }
        if (n > rd_left(r))
            return -1;
        r->p += n;
        /* Each pending value needs a byte; also keeps the counter bounded. */
        if (pending > rd_left(r))
            return -1;
    }
    return 0;
}

/* Ext map: keys the type carries are read with their type; all others are skipped. */
static int rd_ext(reader *r, sb_svc_msg *m, unsigned allowed) {
    uint32_t n;
    if (rd_container(r, 1, 1, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        int neg;
        uint64_t key;
        if (rd_integer(r, &neg, &key))
            return -1;
        if (neg || key > SB_SVC_EXT_IS_PARTIAL || !(allowed & SB_SVC_EXT_BIT(key))) {
            if (rd_skip(r))
                return -1;
            continue;
        }
        int rc = 0;
        switch (key) {
        case SB_SVC_EXT_TRACING_ID:
            rc = rd_u64(r, &m->tracing_id);
            m->has_tracing_id = 1;
            break;
        case SB_SVC_EXT_TTL:
            rc = rd_i32(r, &m->ttl);
            m->has_ttl = 1;
            break;
        case SB_SVC_EXT_PROTOCOL: /* repeats ClientCompletion's positional protocol; last wins */
            sb_free(m->protocol);
            m->protocol = NULL;
            rc = rd_str(r, 0, &m->protocol);
            break;
        case SB_SVC_EXT_FILTER:
            sb_free(m->filter);
            m->filter = NULL;
            rc = rd_str(r, 0, &m->filter);
            break;
        case SB_SVC_EXT_DATA_MESSAGE_TYPE:
            rc = rd_i32(r, &m->data_message_type);
            m->has_data_message_type = 1;
            break;
        case SB_SVC_EXT_IS_PARTIAL:
            rc = rd_bool(r, &m->is_partial);
            m->has_is_partial = 1;
            break;
        }
        if (rc)
            return -1;
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

static int rd_field(reader *r, sb_svc_msg *m, const field *f, unsigned ext) {
    switch (f->kind) {
    case K_STR: {
        char **s = MEMBER(m, f, char *);
        return rd_str(r, 0, s) || (!*s && (f->flags & F_REQUIRED)) ? -1 : 0;
    }
    case K_I32:
        return rd_i32(r, MEMBER(m, f, int32_t));
    case K_BOOL:
        return rd_bool(r, MEMBER(m, f, int));
    case K_STRV:
        return rd_strv(r, MEMBER(m, f, sb_svc_strv));
    case K_PAYLOADS:
        return rd_payloads(r, &m->payloads);
    case K_HEADERS:
        return rd_headers(r, &m->headers);
    case K_CLAIMS:
        return rd_claims(r, &m->claims);
    case K_BIN:
        return rd_bin(r, MEMBER(m, f, sb_svc_bytes));
    case K_EXT:
        return rd_ext(r, m, ext);
    }
    return -1;
}

static int decode_fields(reader *r, sb_svc_msg *m, const layout *l, uint32_t len, const char **err) {
    if (len < l->min_len) {
        *err = "too few elements for the message type";
        return -1;
    }
    for (unsigned i = 0; l->f[i].kind != K_END; i++) {
        const field *f = &l->f[i];
        unsigned gate = f->gate ? f->gate : i + 2;
        if (f->flags & F_WRITE_ONLY)
            break;
        if (len < gate) {
            m->legacy_layout = 1;
            break;
        }
        if (rd_field(r, m, f, l->ext)) {
            *err = f->err;
            return -1;
        }
    }
    if (m->type == SB_SVC_CONNECTION_FLOW_CONTROL) {
        if (m->connection_type != SB_SVC_FLOW_CLIENT && m->connection_type != SB_SVC_FLOW_SERVER) {
            *err = "invalid field connection_type";
            return -1;
        }
        if (m->operation < SB_SVC_FLOW_PAUSE || m->operation > SB_SVC_FLOW_OFFLINE) {
            *err = "invalid field operation";
            return -1;
        }
    }
    return 0;
}

int sb_svc_decode(const uint8_t *body, size_t len, sb_svc_msg *m, const char **err) {
    reader r = {body, len ? body + len : body}; /* no arithmetic on a NULL empty body */
    const char *e = NULL;
    uint32_t n;
    int32_t type = 0; /* stays 0 until the type itself has been read */
    memset(m, 0, sizeof *m);
    if (rd_container(&r, 0, 0, &n) || n == 0) {
        e = "not a MessagePack array";
        goto fail;
    }
    if (rd_i32(&r, &type)) {
        e = "invalid message type";
        goto fail;
    }
    m->type = type;
    if (type == SB_SVC_PING) {
        if (n > 1) {
            m->strings.v = sb_calloc(n - 1, sizeof *m->strings.v);
            m->strings.n = n - 1;
            for (uint32_t i = 0; i + 1 < n; i++)
                if (rd_str(&r, 1, &m->strings.v[i])) {
                    e = "invalid ping string";
                    goto fail;
                }
        }
        return SB_OK;
    }
    const layout *l = layout_of(type);
    if (!l) {
        m->unknown = 1; /* a newer peer's message: the caller drops it */
        return SB_OK;
    }
    if (decode_fields(&r, m, l, n, &e))
        goto fail;
    return SB_OK;
fail:
    sb_svc_msg_clear(m);
    m->type = type; /* lets the caller say which message was malformed */
    if (err)
        *err = e;
    return SB_EPROTO;
}

static void strv_free(sb_svc_strv *v) {
    for (size_t i = 0; i < v->n; i++)
        sb_free(v->v[i]);
    sb_free(v->v);
}

void sb_svc_msg_clear(sb_svc_msg *m) {
    char **strs[] = {&m->connection_id,
                     &m->user_id,
                     &m->group,
                     &m->invocation_id,
                     &m->caller_server_id,
                     &m->instance_id,
                     &m->caller_user_id,
                     &m->target,
                     &m->query_string,
                     &m->error,
                     &m->message,
                     &m->reason,
                     &m->object_id,
                     &m->aad_token,
                     &m->kid,
                     &m->access_key,
                     &m->error_type,
                     &m->continuation_token,
                     &m->protocol,
                     &m->filter};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        sb_free(*strs[i]);
    strv_free(&m->strings);
    strv_free(&m->connection_ids);
    strv_free(&m->user_ids);
    strv_free(&m->groups);
    strv_free(&m->excluded);
    strv_free(&m->excluded_user_ids);
    for (size_t i = 0; i < m->payloads.n; i++) {
        sb_free(m->payloads.v[i].protocol);
        sb_free(m->payloads.v[i].bytes.data);
    }
    sb_free(m->payloads.v);
    for (size_t i = 0; i < m->headers.n; i++) {
        sb_free(m->headers.v[i].name);
        strv_free(&m->headers.v[i].values);
    }
    sb_free(m->headers.v);
    for (size_t i = 0; i < m->claims.n; i++) {
        sb_free(m->claims.v[i].type);
        sb_free(m->claims.v[i].value);
    }
    sb_free(m->claims.v);
    sb_free(m->payload.data);
    memset(m, 0, sizeof *m);
}

/* ---- MessagePack writer (smallest encodings, as MessagePack-CSharp) ------- */

static void w_byte(sb_buf *b, uint8_t c) {
    sb_buf_append(b, &c, 1);
}

static void w_tagged(sb_buf *b, uint8_t tag, uint64_t v, unsigned n) {
    uint8_t t[9];
    t[0] = tag;
    for (unsigned i = 0; i < n; i++)
        t[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    sb_buf_append(b, t, 1 + n);
}

static void w_uint(sb_buf *b, uint64_t v) {
    if (v <= 0x7f)
        w_byte(b, (uint8_t)v);
    else if (v <= UINT8_MAX)
        w_tagged(b, 0xcc, v, 1);
    else if (v <= UINT16_MAX)
        w_tagged(b, 0xcd, v, 2);
    else if (v <= UINT32_MAX)
        w_tagged(b, 0xce, v, 4);
    else
        w_tagged(b, 0xcf, v, 8);
}

static void w_int(sb_buf *b, int64_t v) {
    if (v >= 0)
        w_uint(b, (uint64_t)v);
    else if (v >= -32)
        w_byte(b, (uint8_t)v);
    else if (v >= INT8_MIN)
        w_tagged(b, 0xd0, (uint64_t)v, 1);
    else if (v >= INT16_MIN)
        w_tagged(b, 0xd1, (uint64_t)v, 2);
    else if (v >= INT32_MIN)
        w_tagged(b, 0xd2, (uint64_t)v, 4);
    else
        w_tagged(b, 0xd3, (uint64_t)v, 8);
}

/* fix (n < 16) / 16-bit / 32-bit header for arrays (0x90, 0xdc) and maps (0x80, 0xde). */
static void w_container(sb_buf *b, uint8_t fix, uint8_t w16, size_t n) {
    if (n < 16)
        w_byte(b, (uint8_t)(fix | n));
    else if (n <= UINT16_MAX)
        w_tagged(b, w16, n, 2);
    else
        w_tagged(b, w16 + 1, n, 4);
}
#define w_array(b, n) w_container(b, 0x90, 0xdc, n)
#define w_map(b, n) w_container(b, 0x80, 0xde, n)

static void w_str(sb_buf *b, const char *s) {
    if (!s) {
        w_byte(b, 0xc0);
        return;
    }
    size_t n = strlen(s);
    if (n < 32)
        w_byte(b, (uint8_t)(0xa0 | n));
    else if (n <= UINT8_MAX)
        w_tagged(b, 0xd9, n, 1);
    else if (n <= UINT16_MAX)
        w_tagged(b, 0xda, n, 2);
    else
        w_tagged(b, 0xdb, n, 4);
    sb_buf_append(b, s, n);
}

static void w_bin(sb_buf *b, const sb_svc_bytes *v, int nil_if_null) {
    if (!v->data && nil_if_null) {
        w_byte(b, 0xc0);
        return;
    }
    size_t n = v->data ? v->len : 0;
    if (n <= UINT8_MAX)
        w_tagged(b, 0xc4, n, 1);
    else if (n <= UINT16_MAX)
        w_tagged(b, 0xc5, n, 2);
    else
        w_tagged(b, 0xc6, n, 4);
    sb_buf_append(b, v->data, n);
}

static void w_strv(sb_buf *b, const sb_svc_strv *v) {
    w_array(b, v->n);
    for (size_t i = 0; i < v->n; i++)
        w_str(b, v->v[i]);
}

/* Ext map in ascending key order with only the keys `allowed` and set; defaults
 * (data type 0, not partial) are omitted as the SDK does. */
static void w_ext(sb_buf *b, const sb_svc_msg *m, unsigned allowed) {
    int tr = (allowed & SB_SVC_EXT_BIT(SB_SVC_EXT_TRACING_ID)) && m->has_tracing_id;
    int ttl = (allowed & SB_SVC_EXT_BIT(SB_SVC_EXT_TTL)) && m->has_ttl;
    int proto = (allowed & SB_SVC_EXT_BIT(SB_SVC_EXT_PROTOCOL)) && m->protocol;
    int filter = (allowed & SB_SVC_EXT_BIT(SB_SVC_EXT_FILTER)) && m->filter;
    int dmt = (allowed & SB_SVC_EXT_BIT(SB_SVC_EXT_DATA_MESSAGE_TYPE)) && m->has_data_message_type &&
              m->data_message_type != SB_SVC_DATA_UNKNOWN;
    int part = (allowed & SB_SVC_EXT_BIT(SB_SVC_EXT_IS_PARTIAL)) && m->has_is_partial && m->is_partial;
    w_map(b, (size_t)(tr + ttl + proto + filter + dmt + part));
    if (tr) {
        w_byte(b, SB_SVC_EXT_TRACING_ID);
        w_uint(b, m->tracing_id);
    }
    if (ttl) {
        w_byte(b, SB_SVC_EXT_TTL);
        w_int(b, m->ttl);
    }
    if (proto) {
        w_byte(b, SB_SVC_EXT_PROTOCOL);
        w_str(b, m->protocol);
    }
    if (filter) {
        w_byte(b, SB_SVC_EXT_FILTER);
        w_str(b, m->filter);
    }
    if (dmt) {
        w_byte(b, SB_SVC_EXT_DATA_MESSAGE_TYPE);
        w_int(b, m->data_message_type);
    }
    if (part) {
        w_byte(b, SB_SVC_EXT_IS_PARTIAL);
        w_byte(b, 0xc3);
    }
}

static void w_field(sb_buf *b, const sb_svc_msg *m, const field *f, unsigned ext) {
    switch (f->kind) {
    case K_STR: {
        const char *s = *CMEMBER(m, f, char *);
        if (f->flags & F_TARGET)
            s = m->connection_type == SB_SVC_CONN_DEFAULT || !s ? "" : s;
        else if ((f->flags & F_EMPTY_IF_NULL) && !s)
            s = "";
        w_str(b, s);
        break;
    }
    case K_I32: {
        int32_t v = *CMEMBER(m, f, int32_t);
        if (f->flags & F_FIXED32)
            w_tagged(b, 0xd2, (uint64_t)(int64_t)v, 4);
        else
            w_int(b, v);
        break;
    }
    case K_BOOL:
        w_byte(b, *CMEMBER(m, f, int) ? 0xc3 : 0xc2);
        break;
    case K_STRV:
        w_strv(b, CMEMBER(m, f, sb_svc_strv));
        break;
    case K_PAYLOADS:
        w_map(b, m->payloads.n);
        for (size_t i = 0; i < m->payloads.n; i++) {
            w_str(b, m->payloads.v[i].protocol);
            w_bin(b, &m->payloads.v[i].bytes, 0);
        }
        break;
    case K_HEADERS:
        w_map(b, m->headers.n);
        for (size_t i = 0; i < m->headers.n; i++) {
            w_str(b, m->headers.v[i].name);
            w_strv(b, &m->headers.v[i].values);
        }
        break;
    case K_CLAIMS:
        w_map(b, m->claims.n);
        for (size_t i = 0; i < m->claims.n; i++) {
            w_str(b, m->claims.v[i].type);
            w_str(b, m->claims.v[i].value);
        }
        break;
    case K_BIN:
        w_bin(b, CMEMBER(m, f, sb_svc_bytes), f->flags & F_NIL_IF_NULL);
        break;
    case K_EXT:
        w_ext(b, m, ext);
        break;
    }
}

/* Whether a F_NEWER tail field holds the value an older peer would imply. */
static int at_default(const sb_svc_msg *m, const field *f) {
    return f->kind == K_BOOL ? !*CMEMBER(m, f, int) : !CMEMBER(m, f, sb_svc_bytes)->data;
}

/* The body is written after a 5-byte hole; the prefix is then slid into place. */
static size_t frame_begin(sb_buf *out) {
    size_t start = out->len;
    sb_buf_reserve(out, 5);
    out->len += 5;
    return start;
}

static void frame_end(sb_buf *out, size_t start) {
    size_t body = out->len - start - 5;
    uint8_t prefix[5];
    size_t k = varint_write(prefix, body);
    memmove(out->data + start + k, out->data + start + 5, body);
    memcpy(out->data + start, prefix, k);
    out->len = start + k + body;
    out->data[out->len] = '\0';
}

static void w_ping(sb_buf *out, const char *const *kv, size_t n) {
    w_array(out, n + 1);
    w_byte(out, SB_SVC_PING);
    for (size_t i = 0; i < n; i++)
        w_str(out, kv[i]);
}

void sb_svc_encode(const sb_svc_msg *m, sb_buf *out) {
    size_t start = frame_begin(out);
    const layout *l = layout_of(m->type);
    if (m->type == SB_SVC_PING) {
        w_ping(out, (const char *const *)m->strings.v, m->strings.n);
    } else if (!l) {
        w_array(out, 1);
        w_int(out, m->type);
    } else {
        size_t nf = 0;
        while (nf < sizeof l->f / sizeof l->f[0] && l->f[nf].kind != K_END)
            nf++;
        const field *last = &l->f[nf - 1];
        if (m->legacy_layout && (last->flags & F_NEWER) && at_default(m, last))
            nf--;
        w_array(out, nf + 1);
        w_int(out, m->type);
        for (size_t i = 0; i < nf; i++)
            w_field(out, m, &l->f[i], l->ext);
    }
    frame_end(out, start);
}

/* ---- helpers ------------------------------------------------------------- */

const sb_svc_payload *sb_svc_payload_find(const sb_svc_msg *m, const char *protocol) {
    for (size_t i = 0; i < m->payloads.n; i++)
        if (m->payloads.v[i].protocol && strcasecmp(m->payloads.v[i].protocol, protocol) == 0)
            return &m->payloads.v[i];
    return NULL;
}

const sb_svc_header *sb_svc_header_find(const sb_svc_msg *m, const char *name) {
    for (size_t i = 0; i < m->headers.n; i++)
        if (m->headers.v[i].name && strcasecmp(m->headers.v[i].name, name) == 0)
            return &m->headers.v[i];
    return NULL;
}

void sb_svc_ping_build(sb_svc_msg *m, const char *const *kv, size_t n) {
    memset(m, 0, sizeof *m);
    m->type = SB_SVC_PING;
    if (!n)
        return;
    m->strings.v = sb_calloc(n, sizeof *m->strings.v);
    m->strings.n = n;
    for (size_t i = 0; i < n; i++)
        m->strings.v[i] = kv[i] ? sb_strdup(kv[i]) : NULL;
}

void sb_svc_ping_write(sb_buf *out, const char *const *kv, size_t n) {
    size_t start = frame_begin(out);
    w_ping(out, kv, n);
    frame_end(out, start);
}

int sb_svc_ping_get(const sb_svc_msg *m, const char *key, const char **value) {
    if (m->type != SB_SVC_PING)
        return 0;
    for (size_t i = 0; i + 1 < m->strings.n; i += 2) {
        if (m->strings.v[i] && strcmp(m->strings.v[i], key) == 0) {
            if (value)
                *value = m->strings.v[i + 1];
            return 1;
        }
    }
    return 0;
}
