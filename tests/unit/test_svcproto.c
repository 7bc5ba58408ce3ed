/*
 * test_svcproto.c - the service protocol codec against the SDK's byte vectors
 * (ServiceProtocolFacts), plus per-type round trips, framing, truncation,
 * byte-at-a-time streaming, integer/string/bin widths, ext-key filtering and
 * older layouts.
 *
 * Vectors are written in a tiny hex notation: hex byte pairs separated by
 * spaces, and 'text' for the raw bytes of a string (no header).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service/svcproto.h"
#include "util/alloc.h"
#include "util/error.h"

/* ---- helpers ------------------------------------------------------------- */

static sb_buf hexbuf(const char *s) {
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_reserve(&b, 1);
    while (*s) {
        if (*s == ' ') {
            s++;
        } else if (*s == '\'') {
            const char *end = strchr(s + 1, '\'');
            assert_non_null(end);
            sb_buf_append(&b, s + 1, (size_t)(end - s - 1));
            s = end + 1;
        } else {
            unsigned v;
            assert_int_equal(sscanf(s, "%2x", &v), 1);
            sb_buf_appendc(&b, (char)v);
            s += 2;
        }
    }
    return b;
}

static void dump(const char *label, const uint8_t *p, size_t n) {
    print_message("%s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 200; i++)
        print_message(" %02x", p[i]);
    print_message("\n");
}

static void assert_bytes(const char *what, const void *got, size_t glen, const void *exp, size_t elen) {
    if (glen != elen || memcmp(got, exp, elen) != 0) {
        print_message("mismatch: %s\n", what);
        dump("  got", got, glen);
        dump("  exp", exp, elen);
        fail_msg("%s: encoded bytes differ", what);
    }
}

static int decode_hex(const char *hex, sb_svc_msg *m) {
    sb_buf b = hexbuf(hex);
    const char *err = NULL;
    int rc = sb_svc_decode((const uint8_t *)b.data, b.len, m, &err);
    sb_buf_free(&b);
    return rc;
}

/* Strip the VarInt prefix of a single framed message, checking it frames exactly len bytes. */
static sb_slice unframe(const sb_buf *framed) {
    sb_slice body;
    size_t used = 0;
    assert_int_equal(sb_svc_split((const uint8_t *)framed->data, framed->len, SIZE_MAX, &body, &used), SB_OK);
    assert_int_equal(used, framed->len);
    return body;
}

static void encode_equals(const sb_svc_msg *m, const char *hex, const char *what) {
    sb_buf exp = hexbuf(hex), out;
    sb_buf_init(&out);
    sb_svc_encode(m, &out);
    sb_slice body = unframe(&out);
    assert_bytes(what, body.base, body.len, exp.data, exp.len);
    sb_buf_free(&exp);
    sb_buf_free(&out);
}

/* ---- section 6 vectors --------------------------------------------------- */

#define PJ_6 "82 a4 'json' c4 07 06 07 01 02 03 04 05 ab 'messagepack' c4 07 07 01 02 03 04 05 06"

typedef struct vector {
    const char *name;
    int type;
    const char *hex;
} vector;

/* Decoded and re-encoded byte for byte. */
/* clang-format off */
static const vector roundtrip_vectors[] = {
    {"HandshakeRequest len6", 1, "96 01 01 00 a0 00 80"},
    {"HandshakeRequest Type=1 Target=abc", 1, "96 01 01 01 a3 'abc' 00 80"},
    {"HandshakeRequest MigrationLevel=1", 1, "96 01 01 00 a0 01 80"},
    {"HandshakeRequest len7", 1, "97 01 01 00 a0 00 80 c2"},
    {"HandshakeRequest AllowStatefulReconnects", 1, "97 01 01 00 a0 00 80 c3"},
    {"HandshakeResponse", 2, "94 02 a0 80 c0"},
    {"HandshakeResponse error", 2, "94 02 b1 'Version mismatch.' 80 c0"},
    {"HandshakeResponse ConnectionId", 2, "94 02 a0 80 a3 'abc'"},
    {"Ping", 3, "91 03"},
    {"Ping a b", 3, "93 03 a1 'a' a1 'b'"},
    {"OpenConnection", 4, "96 04 a5 'conn1' 80 80 a0 80"},
    {"OpenConnection TracingId", 4, "96 04 a5 'conn1' 80 80 a0 81 01 cd 03 78"},
    {"OpenConnection Protocol", 4, "96 04 a5 'conn1' 80 80 a0 81 03 a4 'json'"},
    {"OpenConnection query", 4, "96 04 a5 'conn4' 80 80 ad 'query1=value1' 80"},
    {"OpenConnection claims", 4,
     "96 04 a5 'conn2' 81 d9 44 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier' "
     "a5 'user1' 80 a0 80"},
    {"CloseConnection", 5, "95 05 a5 'conn3' a0 80 80"},
    {"CloseConnection error", 5, "95 05 a5 'conn4' ae 'Error message.' 80 80"},
    {"CloseConnection TracingId", 5, "95 05 a5 'conn4' a0 80 81 01 7b"},
    {"ConnectionData", 6, "94 06 a5 'conn5' c4 07 01 02 03 04 05 06 07 80"},
    {"ConnectionData TracingId", 6, "94 06 a5 'conn5' c4 07 01 02 03 04 05 06 07 81 01 cd 04 d2"},
    {"ConnectionData Type IsPartial", 6, "94 06 a5 'conn6' c4 07 01 02 03 04 05 06 07 82 05 02 06 c3"},
    {"ConnectionReconnect", 38, "93 26 a5 'conn7' 80"},
    {"MultiConnectionData", 7,
     "94 07 92 a5 'conn6' a5 'conn7' 82 a4 'json' c4 07 02 03 04 05 06 07 01 ab 'messagepack' c4 07 03 04 05 06 "
     "07 01 02 80"},
    {"UserData", 8,
     "94 08 a5 'user1' 82 a4 'json' c4 07 06 07 01 02 03 04 05 ab 'messagepack' c4 07 07 01 02 03 04 05 06 81 "
     "01 cd 04 d2"},
    {"Broadcast", 10,
     "94 0a 90 82 a4 'json' c4 07 04 05 06 07 01 02 03 ab 'messagepack' c4 07 05 06 07 01 02 03 04 80"},
    {"Broadcast TracingId", 10,
     "94 0a 90 82 a4 'json' c4 07 04 05 06 07 01 02 03 ab 'messagepack' c4 07 05 06 07 01 02 03 04 81 01 cd 04 "
     "d2"},
    {"JoinGroup", 11, "94 0b a6 'conn10' a6 'group1' 80"},
    {"JoinGroup TracingId", 11, "94 0b a6 'conn10' a6 'group1' 81 01 cd 04 d2"},
    {"LeaveGroup", 12, "94 0c a6 'conn11' a6 'group2' 80"},
    {"UserJoinGroup Ttl", 16, "94 10 a6 'conn10' a6 'group1' 81 02 64"},
    {"GroupBroadcast", 13, "97 0d a6 'group3' 90 " PJ_6 " 80 90 c0"},
    {"GroupBroadcast TracingId", 13, "97 0d a6 'group3' 90 " PJ_6 " 81 01 cd 04 d2 90 c0"},
    {"GroupBroadcast excluded", 13,
     "97 0d a6 'group3' 92 a6 'conn12' a6 'conn13' " PJ_6 " 80 92 a5 'user1' a5 'user2' a5 'user3'"},
    {"MultiGroupBroadcast", 14,
     "94 0e 92 a6 'group4' a6 'group5' 82 a4 'json' c4 08 01 02 03 04 05 06 07 08 ab 'messagepack' c4 08 07 08 "
     "01 02 03 04 05 06 80"},
    {"ServiceError", 15, "92 0f d9 2b 'Maximum message count limit reached: 100000'"},
    {"JoinGroupWithAck", 18, "95 12 a6 'conn14' a6 'group1' 01 80"},
    {"JoinGroupWithAck TracingId", 18, "95 12 a6 'conn14' a6 'group1' 01 81 01 cd 04 d2"},
    {"LeaveGroupWithAck", 19, "95 13 a6 'conn15' a6 'group2' 01 80"},
    {"UserJoinGroupWithAck", 26, "95 1a a6 'conn14' a6 'group1' 01 82 01 cd 04 d2 02 cd 02 9a"},
    {"Ack len5", 20, "95 14 01 64 a0 80"},
    {"Ack message", 20, "95 14 02 65 b9 'Joined group successfully' 80"},
    {"Ack payload", 20, "96 14 02 00 a0 80 c4 03 01 02 03"},
    {"CheckUserInGroupWithAck", 21, "95 15 a4 'user' a5 'group' 03 81 01 cd 04 d2"},
    {"ServiceEvent", 22, "96 16 02 a3 'abc' 02 b8 'User abc is not existed.' 80"},
    {"CheckGroupExistenceWithAck", 23, "94 17 a5 'group' 00 81 01 03"},
    {"CheckConnectionExistenceWithAck", 24, "94 18 a6 'connId' 01 81 01 02"},
    {"CheckUserExistenceWithAck", 25, "94 19 a3 'uid' 04 81 01 17"},
    {"CloseConnectionWithAck", 30, "95 1e a5 'conn1' c0 01 80"},
    {"CloseUserConnectionsWithAck", 32, "96 20 a5 'user1' c0 01 90 80"},
    {"CloseGroupConnectionsWithAck", 33, "96 21 a6 'group1' a6 'detail' 01 90 81 01 01"},
    {"AccessKeyRequest", 28, "94 1c a5 'token' c0 80"},
    {"AccessKeyResponse", 29, "96 1d a3 'kid' a3 'key' c0 c0 80"},
    {"ClientInvocation", 34,
     "96 22 ac 'invocationId' a5 'conn1' a7 'server1' 82 a4 'json' c4 07 02 03 04 05 06 07 01 ab 'messagepack' "
     "c4 07 03 04 05 06 07 01 02 80"},
    {"ClientCompletion", 35,
     "97 23 ac 'invocationId' a5 'conn1' a7 'server1' a4 'json' c4 07 02 03 04 05 06 07 01 81 03 a4 'json'"},
    {"ErrorCompletion", 36, "96 24 ac 'invocationId' a5 'conn1' a7 'server1' b2 'invocation failed.' 80"},
    {"ServiceMapping", 37, "95 25 ac 'invocationId' a5 'conn1' a9 'instance1' 80"},
    {"ConnectionFlowControl Pause Client", 39, "95 27 a5 'conn1' d2 00 00 00 01 d2 00 00 00 01 80"},
    {"ConnectionFlowControl Offline Server", 39, "95 27 a5 'conn2' d2 00 00 00 02 d2 00 00 00 04 80"},
    {"GroupMemberQuery", 40, "96 28 81 01 cd 04 d2 a5 'group' 01 0a a5 'token'"},
};
#define N_ROUNDTRIP (sizeof roundtrip_vectors / sizeof roundtrip_vectors[0])

/* Older layouts the SDK still parses; the writer emits the newer layout for them. */
static const vector parse_only_vectors[] = {
    {"HandshakeRequest legacy len2", 1, "92 01 01"},
    {"HandshakeResponse legacy len2", 2, "92 02 a0"},
    {"CloseConnection legacy with headers", 5, "94 05 a5 'conn4' ae 'Error message.' 81 a3 'foo' 91 a3 'bar'"},
    {"Ack legacy len4", 20, "94 14 01 64 a0"},
    {"CloseConnection nil error", 5, "93 05 a5 'conn3' c0"},
    {"HandshakeRequest len5", 1, "95 01 01 00 a0 00"},
    {"HandshakeRequest len4", 1, "94 01 01 01 a3 'abc'"},
    {"HandshakeResponse len3", 2, "93 02 a0 80"},
    {"OpenConnection len5", 4, "95 04 a5 'conn1' 80 80 a0"},
    {"OpenConnection len3", 4, "93 04 a5 'conn1' 80"},
    {"GroupBroadcast len4", 13, "94 0d a6 'group3' 90 80"},
    {"GroupBroadcast len5", 13, "95 0d a6 'group3' 90 80 81 01 05"},
};
#define N_PARSE_ONLY (sizeof parse_only_vectors / sizeof parse_only_vectors[0])
/* clang-format on */

static void test_vectors_roundtrip(void **state) {
    for (size_t i = 0; i < N_ROUNDTRIP; i++) {
        const vector *v = &roundtrip_vectors[i];
        sb_svc_msg m;
        const char *err = NULL;
        sb_buf in = hexbuf(v->hex);
        int rc = sb_svc_decode((const uint8_t *)in.data, in.len, &m, &err);
        if (rc != SB_OK)
            fail_msg("%s: decode failed: %s", v->name, err ? err : "?");
        assert_int_equal(m.type, v->type);
        assert_int_equal(m.unknown, 0);
        sb_buf out;
        sb_buf_init(&out);
        sb_svc_encode(&m, &out);
        sb_slice body = unframe(&out);
        assert_bytes(v->name, body.base, body.len, in.data, in.len);
        sb_svc_msg_clear(&m);
        sb_buf_free(&out);
        sb_buf_free(&in);
    }
}

static void test_vectors_parse_only(void **state) {
    for (size_t i = 0; i < N_PARSE_ONLY; i++) {
        const vector *v = &parse_only_vectors[i];
        sb_svc_msg m;
        if (decode_hex(v->hex, &m) != SB_OK)
            fail_msg("%s: decode failed", v->name);
        assert_int_equal(m.type, v->type);
        assert_int_equal(m.legacy_layout, 1); /* every one is shorter than the writer's layout */
        /* Re-encoding yields a message the decoder reads back as the same type. */
        sb_buf out;
        sb_buf_init(&out);
        sb_svc_encode(&m, &out);
        sb_slice body = unframe(&out);
        sb_svc_msg again;
        assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &again, NULL), SB_OK);
        assert_int_equal(again.type, v->type);
        sb_svc_msg_clear(&again);
        sb_svc_msg_clear(&m);
        sb_buf_free(&out);
    }
}

static void test_vector_fields(void **state) {
    sb_svc_msg m;

    assert_int_equal(decode_hex("96 01 01 01 a3 'abc' 00 80", &m), SB_OK);
    assert_int_equal(m.version, 1);
    assert_int_equal(m.connection_type, SB_SVC_CONN_ON_DEMAND);
    assert_string_equal(m.target, "abc");
    assert_int_equal(m.migration_level, 0);
    assert_int_equal(m.legacy_layout, 1);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("97 01 01 00 a0 00 80 c3", &m), SB_OK);
    assert_int_equal(m.allow_stateful_reconnects, 1);
    assert_int_equal(m.legacy_layout, 0);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("94 02 b1 'Version mismatch.' 80 c0", &m), SB_OK);
    assert_string_equal(m.error, "Version mismatch.");
    assert_null(m.connection_id);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("96 04 a5 'conn2' 81 d9 44 "
                                "'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier' "
                                "a5 'user1' 80 a0 80",
                                &m),
                     SB_OK);
    assert_string_equal(m.connection_id, "conn2");
    assert_int_equal(m.claims.n, 1);
    assert_string_equal(m.claims.v[0].type,
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier");
    assert_string_equal(m.claims.v[0].value, "user1");
    assert_string_equal(m.query_string, "");
    assert_int_equal(m.has_tracing_id, 0);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("96 04 a5 'conn1' 80 80 a0 81 01 cd 03 78", &m), SB_OK);
    assert_int_equal(m.has_tracing_id, 1);
    assert_int_equal(m.tracing_id, 888);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("96 04 a5 'conn1' 80 80 a0 81 03 a4 'json'", &m), SB_OK);
    assert_string_equal(m.protocol, "json");
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("94 06 a5 'conn6' c4 07 01 02 03 04 05 06 07 82 05 02 06 c3", &m), SB_OK);
    assert_int_equal(m.payload.len, 7);
    assert_int_equal(m.payload.data[6], 7);
    assert_int_equal(m.has_data_message_type, 1);
    assert_int_equal(m.data_message_type, SB_SVC_DATA_INVOCATION);
    assert_int_equal(m.has_is_partial, 1);
    assert_int_equal(m.is_partial, 1);
    assert_int_equal(m.has_tracing_id, 0);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("95 1a a6 'conn14' a6 'group1' 01 82 01 cd 04 d2 02 cd 02 9a", &m), SB_OK);
    assert_string_equal(m.user_id, "conn14");
    assert_string_equal(m.group, "group1");
    assert_int_equal(m.ack_id, 1);
    assert_int_equal(m.tracing_id, 1234);
    assert_int_equal(m.has_ttl, 1);
    assert_int_equal(m.ttl, 666);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("97 0d a6 'group3' 92 a6 'conn12' a6 'conn13' " PJ_6
                                " 80 92 a5 'user1' a5 'user2' a5 'user3'",
                                &m),
                     SB_OK);
    assert_int_equal(m.excluded.n, 2);
    assert_string_equal(m.excluded.v[1], "conn13");
    assert_int_equal(m.excluded_user_ids.n, 2);
    assert_string_equal(m.excluded_user_ids.v[0], "user1");
    assert_string_equal(m.caller_user_id, "user3");
    assert_int_equal(m.payloads.n, 2);
    assert_string_equal(m.payloads.v[1].protocol, "messagepack");
    assert_ptr_equal(sb_svc_payload_find(&m, "JSON"), &m.payloads.v[0]);
    assert_ptr_equal(sb_svc_payload_find(&m, "MessagePack"), &m.payloads.v[1]);
    assert_null(sb_svc_payload_find(&m, "blazorpack"));
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("96 14 02 00 a0 80 c4 03 01 02 03", &m), SB_OK);
    assert_int_equal(m.ack_id, 2);
    assert_int_equal(m.status, 0);
    assert_string_equal(m.message, "");
    assert_int_equal(m.payload.len, 3);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("95 14 01 64 a0 80", &m), SB_OK);
    assert_int_equal(m.status, 100);
    assert_null(m.payload.data);
    assert_int_equal(m.legacy_layout, 1);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("96 16 02 a3 'abc' 02 b8 'User abc is not existed.' 80", &m), SB_OK);
    assert_int_equal(m.object_type, SB_SVC_EVENT_OBJ_USER);
    assert_string_equal(m.object_id, "abc");
    assert_int_equal(m.kind, SB_SVC_EVENT_NOT_EXISTED);
    assert_string_equal(m.message, "User abc is not existed.");
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("95 27 a5 'conn2' d2 00 00 00 02 d2 00 00 00 04 80", &m), SB_OK);
    assert_int_equal(m.connection_type, SB_SVC_FLOW_SERVER);
    assert_int_equal(m.operation, SB_SVC_FLOW_OFFLINE);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("96 28 81 01 cd 04 d2 a5 'group' 01 0a a5 'token'", &m), SB_OK);
    assert_string_equal(m.group, "group");
    assert_int_equal(m.ack_id, 1);
    assert_int_equal(m.max_count, 10);
    assert_string_equal(m.continuation_token, "token");
    assert_int_equal(m.tracing_id, 1234);
    sb_svc_msg_clear(&m);

    assert_int_equal(
        decode_hex(
            "97 23 ac 'invocationId' a5 'conn1' a7 'server1' a4 'json' c4 07 02 03 04 05 06 07 01 81 03 a4 "
            "'json'",
            &m),
        SB_OK);
    assert_string_equal(m.invocation_id, "invocationId");
    assert_string_equal(m.caller_server_id, "server1");
    assert_string_equal(m.protocol, "json");
    sb_svc_msg_clear(&m);

    /* The ext value of the protocol wins over the positional one. */
    assert_int_equal(decode_hex("97 23 a1 'i' a1 'c' a1 's' a4 'json' c4 00 81 03 ab 'messagepack'", &m),
                     SB_OK);
    assert_string_equal(m.protocol, "messagepack");
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("92 0f d9 2b 'Maximum message count limit reached: 100000'", &m), SB_OK);
    assert_string_equal(m.error, "Maximum message count limit reached: 100000");
    sb_svc_msg_clear(&m);
}

static void test_parse_only_fields(void **state) {
    sb_svc_msg m;

    assert_int_equal(decode_hex("92 01 01", &m), SB_OK);
    assert_int_equal(m.version, 1);
    assert_null(m.target);
    assert_int_equal(m.connection_type, 0);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("93 01 01 02", &m), SB_OK); /* connectionType needs len >= 4 */
    assert_int_equal(m.connection_type, 0);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("94 01 01 01 a3 'abc'", &m), SB_OK);
    assert_int_equal(m.connection_type, 1);
    assert_string_equal(m.target, "abc");
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("94 05 a5 'conn4' ae 'Error message.' 81 a3 'foo' 91 a3 'bar'", &m), SB_OK);
    assert_string_equal(m.error, "Error message.");
    assert_int_equal(m.headers.n, 1);
    const sb_svc_header *h = sb_svc_header_find(&m, "FOO");
    assert_non_null(h);
    assert_int_equal(h->values.n, 1);
    assert_string_equal(h->values.v[0], "bar");
    assert_null(sb_svc_header_find(&m, "bar"));
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("93 05 a5 'conn3' c0", &m), SB_OK);
    assert_null(m.error);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("95 04 a5 'conn1' 80 80 a0", &m), SB_OK);
    assert_string_equal(m.query_string, "");
    sb_svc_msg_clear(&m);

    /* Headers and query are read together from len 5 on: len 4 has neither. */
    assert_int_equal(decode_hex("94 04 a5 'conn1' 80 81 a1 'h' 90", &m), SB_OK);
    assert_int_equal(m.headers.n, 0);
    sb_svc_msg_clear(&m);

    /* GroupBroadcast reads the two tail fields only from len 7. */
    assert_int_equal(decode_hex("96 0d a1 'g' 90 80 80 91 a1 'u'", &m), SB_OK);
    assert_int_equal(m.excluded_user_ids.n, 0);
    assert_int_equal(m.legacy_layout, 1);
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("95 0d a6 'group3' 90 80 81 01 05", &m), SB_OK);
    assert_int_equal(m.tracing_id, 5);
    sb_svc_msg_clear(&m);
}

/* Section 4 framed ping examples, both written directly and via build + encode. */
static void test_ping_vectors(void **state) {
    static const struct {
        const char *kv[4];
        size_t n;
        const char *framed;
    } pings[] = {
        {{0}, 0, "02 91 03"},
        {{"d-m", "1"}, 2, "08 93 03 a3 64 2d 6d a1 31"},
        {{"d-m", "0"}, 2, "08 93 03 a3 64 2d 6d a1 30"},
        {{"status", "1"}, 2, "0b 93 03 a6 73 74 61 74 75 73 a1 31"},
        {{"shutdown", "finack"}, 2, "12 93 03 a8 73 68 75 74 64 6f 77 6e a6 66 69 6e 61 63 6b"},
        {{"#clientInHub", "0", "#client", "0"},
         4,
         "1b 95 03 ac 23 63 6c 69 65 6e 74 49 6e 48 75 62 a1 30 a7 23 63 6c 69 65 6e 74 a1 30"},
        {{"offline", "inst1"}, 2, "10 93 03 a7 6f 66 66 6c 69 6e 65 a5 69 6e 73 74 31"},
    };
    for (size_t i = 0; i < sizeof pings / sizeof pings[0]; i++) {
        sb_buf exp = hexbuf(pings[i].framed), out;
        sb_buf_init(&out);
        sb_svc_ping_write(&out, pings[i].kv, pings[i].n);
        assert_bytes(pings[i].framed, out.data, out.len, exp.data, exp.len);
        sb_buf_reset(&out);
        sb_svc_msg m;
        sb_svc_ping_build(&m, pings[i].kv, pings[i].n);
        sb_svc_encode(&m, &out);
        assert_bytes(pings[i].framed, out.data, out.len, exp.data, exp.len);
        sb_svc_msg_clear(&m);
        sb_buf_free(&out);
        sb_buf_free(&exp);
    }
    /* The constants are the spellings above. */
    assert_string_equal(SB_SVC_PING_MESSAGING_LOGS, "d-m");
    assert_string_equal(SB_SVC_PING_SHUTDOWN_FIN_ACK, "finack");
    assert_string_equal(SB_SVC_PING_CLIENT_IN_HUB, "#clientInHub");
}

static void test_ping_get(void **state) {
    sb_svc_msg m;
    const char *v = NULL;
    const char *kv[] = {"status", "1", "target", "inst9", "status", "0", "echo"};
    sb_svc_ping_build(&m, kv, 7);
    assert_int_equal(sb_svc_ping_get(&m, SB_SVC_PING_STATUS, &v), 1);
    assert_string_equal(v, "1"); /* first match wins */
    assert_int_equal(sb_svc_ping_get(&m, SB_SVC_PING_TARGET, &v), 1);
    assert_string_equal(v, "inst9");
    assert_int_equal(sb_svc_ping_get(&m, "1", &v), 0);              /* values are not keys */
    assert_int_equal(sb_svc_ping_get(&m, SB_SVC_PING_ECHO, &v), 0); /* trailing key, no value */
    assert_int_equal(sb_svc_ping_get(&m, SB_SVC_PING_OFFLINE, NULL), 0);
    assert_int_equal(sb_svc_ping_get(&m, "STATUS", NULL), 0); /* keys are case-sensitive */
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("95 03 a3 'd-m' a1 '1' a6 'status' c0", &m), SB_OK);
    assert_int_equal(sb_svc_ping_get(&m, SB_SVC_PING_MESSAGING_LOGS, &v), 1);
    assert_string_equal(v, SB_SVC_PING_MESSAGING_LOGS_ON);
    assert_int_equal(sb_svc_ping_get(&m, SB_SVC_PING_STATUS, &v), 1);
    assert_string_equal(v, ""); /* nil inside the list reads as "" */
    sb_svc_msg_clear(&m);

    assert_int_equal(decode_hex("94 0b a1 'c' a1 'g' 80", &m), SB_OK);
    assert_int_equal(sb_svc_ping_get(&m, "c", &v), 0); /* not a ping */
    sb_svc_msg_clear(&m);

    /* A built ping may hold NULL, which is written as nil. */
    const char *withnull[] = {"k", NULL};
    sb_svc_ping_build(&m, withnull, 2);
    encode_equals(&m, "93 03 a1 'k' c0", "ping with NULL");
    sb_svc_msg_clear(&m);
}

/* ---- every type round trip ----------------------------------------------- */

enum {
    T_STR,
    T_STRV,
    T_I32,
    T_INT,
    T_BYTES,
    T_PAYLOADS,
    T_HEADERS,
    T_CLAIMS,
    T_TRACING,
    T_TTL,
    T_DMT,
    T_PARTIAL
};

typedef struct fdesc {
    const char *name;
    int kind;
    size_t off;
    int32_t ival;
} fdesc;

#define FD(n, k)                                                                                             \
    { #n, k, offsetof(sb_svc_msg, n), 0 }
#define FI(n, v)                                                                                             \
    { #n, T_I32, offsetof(sb_svc_msg, n), v }

static const fdesc fields[] = {
    FD(connection_id, T_STR),
    FD(user_id, T_STR),
    FD(group, T_STR),
    FD(invocation_id, T_STR),
    FD(caller_server_id, T_STR),
    FD(instance_id, T_STR),
    FD(caller_user_id, T_STR),
    FD(target, T_STR),
    FD(query_string, T_STR),
    FD(error, T_STR),
    FD(message, T_STR),
    FD(reason, T_STR),
    FD(object_id, T_STR),
    FD(aad_token, T_STR),
    FD(kid, T_STR),
    FD(access_key, T_STR),
    FD(error_type, T_STR),
    FD(continuation_token, T_STR),
    FD(protocol, T_STR),
    FD(filter, T_STR),
    FD(strings, T_STRV),
    FD(connection_ids, T_STRV),
    FD(user_ids, T_STRV),
    FD(groups, T_STRV),
    FD(excluded, T_STRV),
    FD(excluded_user_ids, T_STRV),
    FD(payloads, T_PAYLOADS),
    FD(headers, T_HEADERS),
    FD(claims, T_CLAIMS),
    FD(payload, T_BYTES),
    FI(version, 1),
    FI(connection_type, 2),
    FI(migration_level, 1),
    FI(ack_id, 77),
    FI(status, 4),
    FI(object_type, 3),
    FI(kind, 2),
    FI(operation, 3),
    FI(max_count, 300),
    {"allow_stateful_reconnects", T_INT, offsetof(sb_svc_msg, allow_stateful_reconnects), 1},
    {"tracing_id", T_TRACING, 0, 0},
    {"ttl", T_TTL, 0, 0},
    {"data_message_type", T_DMT, 0, 0},
    {"is_partial", T_PARTIAL, 0, 0},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])
#define TRACING_VALUE 0x0ABCDEF000000005ull

/* The fields each type carries, restated from the catalogue independently of the codec's table. */
static const char *const expected_fields[SB_SVC_TYPE_MAX + 1] = {
    [1] = "version connection_type target migration_level allow_stateful_reconnects",
    [2] = "error connection_id",
    [3] = "strings",
    [4] = "connection_id claims headers query_string tracing_id protocol",
    [5] = "connection_id error headers tracing_id",
    [6] = "connection_id payload tracing_id data_message_type is_partial",
    [7] = "connection_ids payloads tracing_id filter",
    [8] = "user_id payloads tracing_id filter",
    [9] = "user_ids payloads tracing_id filter",
    [10] = "excluded payloads tracing_id filter",
    [11] = "connection_id group tracing_id",
    [12] = "connection_id group tracing_id",
    [13] = "group excluded payloads tracing_id filter excluded_user_ids caller_user_id",
    [14] = "groups payloads tracing_id filter",
    [15] = "error",
    [16] = "user_id group tracing_id ttl",
    [17] = "user_id group tracing_id",
    [18] = "connection_id group ack_id tracing_id",
    [19] = "connection_id group ack_id tracing_id",
    [20] = "ack_id status message payload",
    [21] = "user_id group ack_id tracing_id",
    [22] = "object_type object_id kind message",
    [23] = "group ack_id tracing_id",
    [24] = "connection_id ack_id tracing_id",
    [25] = "user_id ack_id tracing_id",
    [26] = "user_id group ack_id tracing_id ttl",
    [27] = "user_id group ack_id tracing_id",
    [28] = "aad_token kid",
    [29] = "kid access_key error_type error",
    [30] = "connection_id reason ack_id tracing_id",
    [31] = "reason ack_id excluded tracing_id",
    [32] = "user_id reason ack_id excluded tracing_id",
    [33] = "group reason ack_id excluded tracing_id",
    [34] = "invocation_id connection_id caller_server_id payloads tracing_id",
    [35] = "invocation_id connection_id caller_server_id protocol payload tracing_id",
    [36] = "invocation_id connection_id caller_server_id error tracing_id",
    [37] = "invocation_id connection_id instance_id",
    [38] = "connection_id",
    [39] = "connection_id connection_type operation",
    [40] = "group ack_id max_count continuation_token tracing_id",
};

static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
    return 0;
}

static char *valfor(const char *name, int i) {
    return sb_asprintf("%s-%d", name, i);
}

static void fill_all(sb_svc_msg *m, int type) {
    memset(m, 0, sizeof *m);
    m->type = type;
    for (size_t i = 0; i < N_FIELDS; i++) {
        const fdesc *f = &fields[i];
        char *base = (char *)m + f->off;
        switch (f->kind) {
        case T_STR:
            *(char **)base = valfor(f->name, 0);
            break;
        case T_STRV: {
            sb_svc_strv *v = (sb_svc_strv *)base;
            v->n = 2;
            v->v = sb_calloc(2, sizeof *v->v);
            v->v[0] = valfor(f->name, 0);
            v->v[1] = valfor(f->name, 1);
            break;
        }
        case T_I32:
            *(int32_t *)base = f->ival;
            break;
        case T_INT:
            *(int *)base = f->ival;
            break;
        case T_BYTES:
            m->payload.data = sb_malloc(4);
            memcpy(m->payload.data, "\x01\x02\x03\x04", 4);
            m->payload.len = 4;
            break;
        case T_PAYLOADS:
            m->payloads.n = 2;
            m->payloads.v = sb_calloc(2, sizeof *m->payloads.v);
            m->payloads.v[0].protocol = sb_strdup("json");
            m->payloads.v[0].bytes.data = (uint8_t *)sb_strdup("{}\x1e");
            m->payloads.v[0].bytes.len = 3;
            m->payloads.v[1].protocol = sb_strdup("messagepack");
            m->payloads.v[1].bytes.data = (uint8_t *)sb_strdup("\x01\x90");
            m->payloads.v[1].bytes.len = 2;
            break;
        case T_HEADERS:
            m->headers.n = 2;
            m->headers.v = sb_calloc(2, sizeof *m->headers.v);
            m->headers.v[0].name = sb_strdup(SB_SVC_HEADER_INSTANCE_ID);
            m->headers.v[0].values.n = 2;
            m->headers.v[0].values.v = sb_calloc(2, sizeof(char *));
            m->headers.v[0].values.v[0] = sb_strdup("a");
            m->headers.v[0].values.v[1] = sb_strdup("b");
            m->headers.v[1].name = sb_strdup("X-Empty");
            break;
        case T_CLAIMS:
            m->claims.n = 2;
            m->claims.v = sb_calloc(2, sizeof *m->claims.v);
            m->claims.v[0].type = sb_strdup("role");
            m->claims.v[0].value = sb_strdup("admin");
            m->claims.v[1].type = sb_strdup("role"); /* repeated types are kept */
            m->claims.v[1].value = sb_strdup("user");
            break;
        case T_TRACING:
            m->has_tracing_id = 1;
            m->tracing_id = TRACING_VALUE;
            break;
        case T_TTL:
            m->has_ttl = 1;
            m->ttl = 666;
            break;
        case T_DMT:
            m->has_data_message_type = 1;
            m->data_message_type = SB_SVC_DATA_INVOCATION;
            break;
        case T_PARTIAL:
            m->has_is_partial = 1;
            m->is_partial = 1;
            break;
        }
    }
}

/* Whether field f of m is exactly as fill_all set it (set=1) or zero/empty (set=0). */
static void check_field(const sb_svc_msg *m, const fdesc *f, int set, int type) {
    const char *base = (const char *)m + f->off;
    int ok = 1;
    switch (f->kind) {
    case T_STR: {
        const char *s = *(char *const *)base;
        char *want = valfor(f->name, 0);
        ok = set ? s && strcmp(s, want) == 0 : s == NULL;
        sb_free(want);
        break;
    }
    case T_STRV: {
        const sb_svc_strv *v = (const sb_svc_strv *)base;
        if (!set) {
            ok = v->n == 0 && v->v == NULL;
            break;
        }
        ok = v->n == 2;
        for (size_t i = 0; ok && i < 2; i++) {
            char *want = valfor(f->name, (int)i);
            ok = strcmp(v->v[i], want) == 0;
            sb_free(want);
        }
        break;
    }
    case T_I32:
        ok = *(const int32_t *)base == (set ? f->ival : 0);
        break;
    case T_INT:
        ok = *(const int *)base == (set ? f->ival : 0);
        break;
    case T_BYTES:
        ok = set ? m->payload.len == 4 && memcmp(m->payload.data, "\x01\x02\x03\x04", 4) == 0
                 : m->payload.data == NULL && m->payload.len == 0;
        break;
    case T_PAYLOADS:
        ok = set ? m->payloads.n == 2 && strcmp(m->payloads.v[0].protocol, "json") == 0 &&
                       m->payloads.v[0].bytes.len == 3 &&
                       memcmp(m->payloads.v[0].bytes.data, "{}\x1e", 3) == 0 &&
                       strcmp(m->payloads.v[1].protocol, "messagepack") == 0 &&
                       m->payloads.v[1].bytes.len == 2
                 : m->payloads.n == 0;
        break;
    case T_HEADERS:
        ok = set ? m->headers.n == 2 && m->headers.v[0].values.n == 2 &&
                       strcmp(m->headers.v[0].values.v[1], "b") == 0 && m->headers.v[1].values.n == 0 &&
                       strcmp(m->headers.v[1].name, "X-Empty") == 0
                 : m->headers.n == 0;
        break;
    case T_CLAIMS:
        ok = set ? m->claims.n == 2 && strcmp(m->claims.v[1].type, "role") == 0 &&
                       strcmp(m->claims.v[1].value, "user") == 0
                 : m->claims.n == 0;
        break;
    case T_TRACING:
        ok = set ? m->has_tracing_id && m->tracing_id == TRACING_VALUE : !m->has_tracing_id && !m->tracing_id;
        break;
    case T_TTL:
        ok = set ? m->has_ttl && m->ttl == 666 : !m->has_ttl && !m->ttl;
        break;
    case T_DMT:
        ok = set ? m->has_data_message_type && m->data_message_type == SB_SVC_DATA_INVOCATION
                 : !m->has_data_message_type && !m->data_message_type;
        break;
    case T_PARTIAL:
        ok = set ? m->has_is_partial && m->is_partial : !m->has_is_partial && !m->is_partial;
        break;
    }
    if (!ok)
        fail_msg("type %d (%s): field %s should be %s", type, sb_svc_type_name(type), f->name,
                 set ? "carried" : "absent");
}

static void test_every_type_roundtrip(void **state) {
    for (int type = 1; type <= SB_SVC_TYPE_MAX; type++) {
        sb_svc_msg full, dec, dec2;
        sb_buf out1, out2;
        const char *err = NULL;
        fill_all(&full, type);
        sb_buf_init(&out1);
        sb_buf_init(&out2);
        sb_svc_encode(&full, &out1);
        sb_slice body = unframe(&out1);
        if (sb_svc_decode((const uint8_t *)body.base, body.len, &dec, &err) != SB_OK)
            fail_msg("type %d: decode of own encoding failed: %s", type, err);
        assert_int_equal(dec.type, type);
        assert_int_equal(dec.unknown, 0);
        assert_int_equal(dec.legacy_layout, 0);
        for (size_t i = 0; i < N_FIELDS; i++)
            check_field(&dec, &fields[i], listed(expected_fields[type], fields[i].name), type);
        /* Encoding the decoded message is stable. */
        sb_svc_encode(&dec, &out2);
        assert_bytes(sb_svc_type_name(type), out2.data, out2.len, out1.data, out1.len);
        assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &dec2, NULL), SB_OK);
        sb_svc_msg_clear(&dec2);
        sb_svc_msg_clear(&dec);
        sb_svc_msg_clear(&full);
        sb_buf_free(&out1);
        sb_buf_free(&out2);
    }
}

static void test_type_names_and_ext_table(void **state) {
    assert_string_equal(sb_svc_type_name(SB_SVC_BROADCAST_DATA), "BroadcastDataMessage");
    assert_string_equal(sb_svc_type_name(SB_SVC_JOIN_GROUP_WITH_ACK), "JoinGroupWithAckMessage");
    assert_string_equal(sb_svc_type_name(SB_SVC_GROUP_MEMBER_QUERY), "GroupMemberQueryMessage");
    assert_string_equal(sb_svc_type_name(41), "UnknownMessage");
    assert_string_equal(sb_svc_type_name(0), "UnknownMessage");
    for (int t = 1; t <= SB_SVC_TYPE_MAX; t++) {
        unsigned x = sb_svc_ext_allowed(t);
        assert_int_equal(!!(x & SB_SVC_EXT_BIT(SB_SVC_EXT_TRACING_ID)),
                         listed(expected_fields[t], "tracing_id"));
        assert_int_equal(!!(x & SB_SVC_EXT_BIT(SB_SVC_EXT_TTL)), listed(expected_fields[t], "ttl"));
        assert_int_equal(!!(x & SB_SVC_EXT_BIT(SB_SVC_EXT_FILTER)), listed(expected_fields[t], "filter"));
        assert_int_equal(!!(x & SB_SVC_EXT_BIT(SB_SVC_EXT_IS_PARTIAL)), t == SB_SVC_CONNECTION_DATA);
    }
    assert_int_equal(sb_svc_ext_allowed(SB_SVC_PING), 0);
    assert_int_equal(sb_svc_ext_allowed(99), 0);
}

/* ---- framing ------------------------------------------------------------- */

static void test_split(void **state) {
    sb_slice body;
    size_t used = 0;
    uint8_t buf[70010] = {0};

    /* Section 2 examples: 2 -> 02, 200 -> c8 01, 70000 -> f0 a2 04. */
    buf[0] = 0x02;
    assert_int_equal(sb_svc_split(buf, 3, 1 << 20, &body, &used), SB_OK);
    assert_int_equal(body.len, 2);
    assert_ptr_equal(body.base, (char *)buf + 1);
    assert_int_equal(used, 3);
    assert_int_equal(sb_svc_split(buf, 2, 1 << 20, &body, &used), SB_EAGAIN);

    buf[0] = 0xc8, buf[1] = 0x01;
    assert_int_equal(sb_svc_split(buf, 202, 1 << 20, &body, &used), SB_OK);
    assert_int_equal(body.len, 200);
    assert_int_equal(used, 202);
    assert_int_equal(sb_svc_split(buf, 201, 1 << 20, &body, &used), SB_EAGAIN);
    assert_int_equal(sb_svc_split(buf, 1, 1 << 20, &body, &used), SB_EAGAIN);

    buf[0] = 0xf0, buf[1] = 0xa2, buf[2] = 0x04;
    assert_int_equal(sb_svc_split(buf, 70003, 1 << 20, &body, &used), SB_OK);
    assert_int_equal(body.len, 70000);
    assert_int_equal(used, 70003);
    /* Over the limit is reported from the prefix alone. */
    assert_int_equal(sb_svc_split(buf, 3, 69999, &body, &used), SB_E2BIG);
    assert_int_equal(sb_svc_split(buf, 70003, 70000, &body, &used), SB_OK);

    assert_int_equal(sb_svc_split(buf, 0, 1 << 20, &body, &used), SB_EAGAIN);

    /* Zero-length body frames fine (decoding it then fails). */
    buf[0] = 0x00;
    assert_int_equal(sb_svc_split(buf, 1, 1 << 20, &body, &used), SB_OK);
    assert_int_equal(body.len, 0);
    assert_int_equal(used, 1);
    sb_svc_msg m;
    assert_int_equal(sb_svc_decode((const uint8_t *)body.base, 0, &m, NULL), SB_EPROTO);

    /* Non-minimal prefixes are accepted, as the SDK does. */
    static const uint8_t nonmin[] = {0x82, 0x00, 0x91, 0x03};
    assert_int_equal(sb_svc_split(nonmin, 4, 16, &body, &used), SB_OK);
    assert_int_equal(body.len, 2);

    /* Five-byte prefixes: 5th byte <= 7 ok (2 GB - 1), > 7 or with a continuation bit is an error. */
    static const uint8_t max5[] = {0xff, 0xff, 0xff, 0xff, 0x07};
    assert_int_equal(sb_svc_split(max5, 5, SIZE_MAX, &body, &used), SB_EAGAIN);
    assert_int_equal(sb_svc_split(max5, 5, 1 << 20, &body, &used), SB_E2BIG);
    static const uint8_t over5[] = {0xff, 0xff, 0xff, 0xff, 0x08};
    assert_int_equal(sb_svc_split(over5, 5, SIZE_MAX, &body, &used), SB_EPROTO);
    static const uint8_t cont5[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_int_equal(sb_svc_split(cont5, 6, SIZE_MAX, &body, &used), SB_EPROTO);
    assert_int_equal(sb_svc_split(cont5, 4, SIZE_MAX, &body, &used), SB_EAGAIN);

    /* Two frames back to back: split returns the first only. */
    static const uint8_t two[] = {0x02, 0x91, 0x03, 0x02, 0x91, 0x03};
    assert_int_equal(sb_svc_split(two, 6, 16, &body, &used), SB_OK);
    assert_int_equal(used, 3);
    assert_int_equal(sb_svc_split(two + used, 3, 16, &body, &used), SB_OK);
}

static void test_stream_byte_at_a_time(void **state) {
    sb_buf stream, acc;
    sb_buf_init(&stream);
    sb_buf_init(&acc);
    for (size_t i = 0; i < N_ROUNDTRIP; i++) {
        sb_svc_msg m;
        assert_int_equal(decode_hex(roundtrip_vectors[i].hex, &m), SB_OK);
        sb_svc_encode(&m, &stream); /* appends */
        sb_svc_msg_clear(&m);
    }
    size_t got = 0;
    for (size_t i = 0; i < stream.len; i++) {
        sb_buf_appendc(&acc, stream.data[i]);
        for (;;) {
            sb_slice body;
            size_t used;
            int rc = sb_svc_split((const uint8_t *)acc.data, acc.len, 1 << 20, &body, &used);
            if (rc == SB_EAGAIN)
                break;
            assert_int_equal(rc, SB_OK);
            assert_true(got < N_ROUNDTRIP);
            sb_buf exp = hexbuf(roundtrip_vectors[got].hex);
            assert_bytes(roundtrip_vectors[got].name, body.base, body.len, exp.data, exp.len);
            sb_svc_msg m;
            assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &m, NULL), SB_OK);
            assert_int_equal(m.type, roundtrip_vectors[got].type);
            sb_svc_msg_clear(&m);
            sb_buf_free(&exp);
            sb_buf_consume(&acc, used);
            got++;
        }
    }
    assert_int_equal(got, N_ROUNDTRIP);
    assert_int_equal(acc.len, 0);
    sb_buf_free(&stream);
    sb_buf_free(&acc);
}

static void test_large_connection_data(void **state) {
    sb_svc_msg m = {0}, d;
    m.type = SB_SVC_CONNECTION_DATA;
    m.connection_id = "big";
    m.payload.len = 70000;
    m.payload.data = sb_malloc(m.payload.len);
    for (size_t i = 0; i < m.payload.len; i++)
        m.payload.data[i] = (uint8_t)(i * 7);
    sb_buf out;
    sb_buf_init(&out);
    sb_svc_encode(&m, &out);
    /* 3-byte prefix, then 94 06 a3 'big' c6 00 01 11 70 */
    assert_true((uint8_t)out.data[0] & 0x80);
    assert_true((uint8_t)out.data[1] & 0x80);
    assert_false((uint8_t)out.data[2] & 0x80);
    static const uint8_t head[] = {0x94, 0x06, 0xa3, 'b', 'i', 'g', 0xc6, 0x00, 0x01, 0x11, 0x70};
    assert_memory_equal(out.data + 3, head, sizeof head);
    sb_slice body = unframe(&out);
    assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &d, NULL), SB_OK);
    assert_int_equal(d.payload.len, 70000);
    assert_memory_equal(d.payload.data, m.payload.data, 70000);
    sb_svc_msg_clear(&d);
    sb_free(m.payload.data);
    sb_buf_free(&out);
}

/* ---- robustness ---------------------------------------------------------- */

static void truncations_fail(const uint8_t *p, size_t len, int type, const char *what) {
    for (size_t k = 0; k < len; k++) {
        sb_svc_msg m;
        const char *err = NULL;
        int rc = sb_svc_decode(p, k, &m, &err);
        /* The flow-control ext is written but never read, so dropping just it still decodes. */
        if (type == SB_SVC_CONNECTION_FLOW_CONTROL && k == len - 1) {
            assert_int_equal(rc, SB_OK);
            sb_svc_msg_clear(&m);
            continue;
        }
        if (rc != SB_EPROTO)
            fail_msg("%s truncated to %zu of %zu bytes: rc %d", what, k, len, rc);
        assert_non_null(err);
        assert_null(m.connection_id);
        assert_int_equal(m.payloads.n, 0);
    }
}

static void test_truncated_everywhere(void **state) {
    for (size_t i = 0; i < N_ROUNDTRIP; i++) {
        sb_buf b = hexbuf(roundtrip_vectors[i].hex);
        truncations_fail((const uint8_t *)b.data, b.len, roundtrip_vectors[i].type,
                         roundtrip_vectors[i].name);
        sb_buf_free(&b);
    }
    for (int type = 1; type <= SB_SVC_TYPE_MAX; type++) {
        sb_svc_msg full;
        sb_buf out;
        fill_all(&full, type);
        sb_buf_init(&out);
        sb_svc_encode(&full, &out);
        sb_slice body = unframe(&out);
        truncations_fail((const uint8_t *)body.base, body.len, type, sb_svc_type_name(type));
        /* Every truncated frame is incomplete, never an error. */
        for (size_t k = 0; k < out.len; k++) {
            sb_slice b2;
            size_t used;
            assert_int_equal(sb_svc_split((const uint8_t *)out.data, k, 1 << 20, &b2, &used), SB_EAGAIN);
        }
        sb_svc_msg_clear(&full);
        sb_buf_free(&out);
    }
}

static void test_unknown_types(void **state) {
    static const char *const unknown[] = {
        "91 29",                             /* 41 RefreshAuth: layout not known */
        "91 00",                             /* 0 */
        "91 ff",                             /* -1 */
        "93 cd 03 e8 a1 'x' 82 01 02 03 04", /* 1000 with fields */
        "92 d2 7f ff ff ff c1",              /* INT32_MAX, garbage after is not read */
    };
    static const int types[] = {41, 0, -1, 1000, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        sb_svc_msg m;
        assert_int_equal(decode_hex(unknown[i], &m), SB_OK);
        assert_int_equal(m.unknown, 1);
        assert_int_equal(m.type, types[i]);
        assert_null(m.connection_id);
        /* Encodes as [type] so tests and fuzzing can round-trip it. */
        sb_buf out;
        sb_buf_init(&out);
        sb_svc_encode(&m, &out);
        sb_slice body = unframe(&out);
        sb_svc_msg again;
        assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &again, NULL), SB_OK);
        assert_int_equal(again.unknown, 1);
        assert_int_equal(again.type, types[i]);
        sb_svc_msg_clear(&m);
        sb_buf_free(&out);
    }
}

static void test_malformed(void **state) {
    static const struct {
        const char *hex;
        int type_after; /* out->type kept on error */
        const char *why;
    } bad[] = {
        {"", 0, "empty body"},
        {"90", 0, "empty array"},
        {"80", 0, "map, not array"},
        {"c0", 0, "nil"},
        {"91 a1 'x'", 0, "string type"},
        {"91 ce 80 00 00 00", 0, "type over int32"},
        {"91 d3 ff ff ff ff 7f ff ff ff", 0, "type under int32"},
        {"dd ff ff ff ff 03", 0, "array count larger than the input"},
        {"92 06 a1 'c'", 6, "ConnectionData with 2 elements"},
        {"93 06 c0 c4 00", 6, "nil connection id"},
        {"93 06 a3 63 00 64 c4 00", 6, "connection id with a NUL byte"},
        {"93 06 a1 'c' a1 'x'", 6, "string where bytes belong"},
        {"93 06 a1 'c' c4 05 01", 6, "bin longer than the input"},
        {"93 06 a1 'c' c5 ff", 6, "bin16 header cut short"},
        {"93 06 a1 'c' cb 00 00 00 00 00 00 00 00", 6, "float where bytes belong"},
        {"94 06 a1 'c' c4 00 81 01 ff", 6, "negative tracing id"},
        {"94 06 a1 'c' c4 00 81 01 a1 'x'", 6, "string tracing id"},
        {"94 06 a1 'c' c4 00 81 06 01", 6, "is_partial not a bool"},
        {"94 06 a1 'c' c4 00 81 05 ce 80 00 00 00", 6, "data message type over int32"},
        {"94 06 a1 'c' c4 00 81 a1 'k' 01", 6, "string ext key"},
        {"94 06 a1 'c' c4 00 81 09 c1", 6, "unknown key with never-used byte 0xc1"},
        {"94 06 a1 'c' c4 00 81 09 dd ff ff ff ff", 6, "unknown key with a huge array"},
        {"94 06 a1 'c' c4 00 81 09 db 00 00 01 00 'x'", 6, "unknown key with a long string"},
        {"94 06 a1 'c' c4 00 91 01", 6, "ext is an array"},
        {"94 06 a1 'c' c4 00 82 01 01", 6, "ext map cut short"},
        {"93 0b a1 'c' c0", 11, "nil group in JoinGroup"},
        {"94 12 a1 'c' a1 'g' ce 80 00 00 00", 18, "ack id over int32"},
        {"94 12 a1 'c' a1 'g' d3 ff ff ff ff 7f ff ff ff", 18, "ack id under int32"},
        {"94 12 a1 'c' a1 'g' c2", 18, "bool ack id"},
        {"94 17 a1 'g' 01", 23, "ext is required for CheckGroupExistence"},
        {"93 17 a1 'g' 01", 23, "too short for CheckGroupExistence"},
        {"95 16 02 a3 'abc' 02 a1 'm'", 22, "ServiceEvent without ext"},
        {"95 27 a1 'c' d2 00 00 00 03 d2 00 00 00 01 80", 39, "flow control connection type 3"},
        {"95 27 a1 'c' d2 00 00 00 00 d2 00 00 00 01 80", 39, "flow control connection type 0"},
        {"95 27 a1 'c' 01 05 80", 39, "flow control operation 5"},
        {"95 27 a1 'c' 01 00 80", 39, "flow control operation 0"},
        {"92 03 c3", 3, "ping with a bool"},
        {"94 03 a1 'a' a1 'b'", 3, "ping shorter than its count"},
        {"94 0a 91 c3 80 80", 10, "bool inside a string list"},
        {"94 0a 90 81 a4 'json' a1 'x' 80", 10, "string payload value"},
        {"94 0a 90 81 01 c4 00 80", 10, "integer payload key"},
        {"96 04 a1 'c' 80 81 a1 'h' a1 'v' a0 80", 4, "header value not an array"},
        {"96 04 a1 'c' 81 a1 't' 01 80 a0 80", 4, "claim value an integer"},
        {"97 01 01 00 a0 00 80 01", 1, "allowStatefulReconnects not a bool"},
        {"96 14 01 01 a0 80 a1 'x'", 20, "ack payload a string"},
        {"96 28 a1 'g' a1 'g' 01 0a c0", 40, "GroupMemberQuery without ext first"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_svc_msg m;
        const char *err = NULL;
        sb_buf b = hexbuf(bad[i].hex);
        int rc = sb_svc_decode((const uint8_t *)b.data, b.len, &m, &err);
        if (rc != SB_EPROTO)
            fail_msg("%s: expected SB_EPROTO, got %d", bad[i].why, rc);
        assert_non_null(err);
        assert_int_equal(m.type, bad[i].type_after);
        assert_null(m.connection_id);
        assert_null(m.payload.data);
        assert_int_equal(m.strings.n, 0);
        sb_svc_msg_clear(&m); /* harmless after an error */
        sb_buf_free(&b);
    }
    /* err may be NULL. */
    sb_svc_msg m;
    assert_int_equal(sb_svc_decode((const uint8_t *)"\x90", 1, &m, NULL), SB_EPROTO);
}

static void test_field_error_names(void **state) {
    sb_svc_msg m;
    const char *err = NULL;
    sb_buf b = hexbuf("93 06 c0 c4 00");
    assert_int_equal(sb_svc_decode((const uint8_t *)b.data, b.len, &m, &err), SB_EPROTO);
    assert_string_equal(err, "invalid field connection_id");
    sb_buf_free(&b);
    b = hexbuf("94 06 a1 'c' c4 00 81 01 ff");
    assert_int_equal(sb_svc_decode((const uint8_t *)b.data, b.len, &m, &err), SB_EPROTO);
    assert_string_equal(err, "invalid extension map");
    sb_buf_free(&b);
}

/* ---- widths, nil, ext filtering ------------------------------------------ */

static void test_integer_widths(void **state) {
    static const struct {
        const char *enc;
        int32_t v;
    } ok[] = {
        {"01", 1},
        {"7f", 127},
        {"cc 01", 1},
        {"cc ff", 255},
        {"cd 00 01", 1},
        {"ce 00 00 00 01", 1},
        {"cf 00 00 00 00 00 00 00 01", 1},
        {"d0 01", 1},
        {"d1 00 01", 1},
        {"d2 00 00 00 01", 1},
        {"d3 00 00 00 00 00 00 00 01", 1},
        {"ff", -1},
        {"e0", -32},
        {"d0 80", -128},
        {"d1 80 00", -32768},
        {"d2 80 00 00 00", INT32_MIN},
        {"ce 7f ff ff ff", INT32_MAX},
        {"d3 ff ff ff ff 80 00 00 00", INT32_MIN},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char hex[128];
        snprintf(hex, sizeof hex, "95 12 a1 'c' a1 'g' %s 80", ok[i].enc);
        sb_svc_msg m;
        if (decode_hex(hex, &m) != SB_OK)
            fail_msg("ack id %s rejected", ok[i].enc);
        assert_int_equal(m.ack_id, ok[i].v);
        sb_svc_msg_clear(&m);
    }
    /* uint64 tracing ids in every width, including above INT64_MAX. */
    static const struct {
        const char *enc;
        uint64_t v;
    } u[] = {
        {"05", 5},
        {"cc c8", 200},
        {"cd 01 00", 256},
        {"ce 00 01 00 00", 65536},
        {"cf ff ff ff ff ff ff ff ff", UINT64_MAX},
        {"d2 00 00 00 07", 7},
        {"cf 0a bc de f0 00 00 00 05", TRACING_VALUE},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        char hex[128];
        snprintf(hex, sizeof hex, "94 0b a1 'c' a1 'g' 81 01 %s", u[i].enc);
        sb_svc_msg m;
        assert_int_equal(decode_hex(hex, &m), SB_OK);
        assert_int_equal(m.has_tracing_id, 1);
        assert_true(m.tracing_id == u[i].v);
        sb_svc_msg_clear(&m);
    }
}

static void test_string_bin_container_widths(void **state) {
    sb_svc_msg m;
    static const char *const strs[] = {"d9 01 'c'", "da 00 01 'c'", "db 00 00 00 01 'c'", "a1 'c'"};
    for (size_t i = 0; i < 4; i++) {
        char hex[128];
        snprintf(hex, sizeof hex, "94 06 %s c4 00 80", strs[i]);
        assert_int_equal(decode_hex(hex, &m), SB_OK);
        assert_string_equal(m.connection_id, "c");
        assert_non_null(m.payload.data); /* empty bin, not nil */
        assert_int_equal(m.payload.len, 0);
        sb_svc_msg_clear(&m);
    }
    static const char *const bins[] = {"c4 01 09", "c5 00 01 09", "c6 00 00 00 01 09"};
    for (size_t i = 0; i < 3; i++) {
        char hex[128];
        snprintf(hex, sizeof hex, "94 06 a1 'c' %s 80", bins[i]);
        assert_int_equal(decode_hex(hex, &m), SB_OK);
        assert_int_equal(m.payload.len, 1);
        assert_int_equal(m.payload.data[0], 9);
        sb_svc_msg_clear(&m);
    }
    /* nil bytes read as empty; nil scalar strings as NULL. */
    assert_int_equal(decode_hex("94 06 a1 'c' c0 80", &m), SB_OK);
    assert_null(m.payload.data);
    assert_int_equal(m.payload.len, 0);
    sb_svc_msg_clear(&m);
    /* ...and a ConnectionData written from it carries an empty bin, as the SDK never writes nil there. */
    m.type = SB_SVC_CONNECTION_DATA;
    m.connection_id = "c";
    encode_equals(&m, "94 06 a1 'c' c4 00 80", "nil payload");

    /* 16/32-bit arrays and maps; nil lists and maps read as empty. */
    assert_int_equal(decode_hex("94 0a dc 00 01 a1 'x' de 00 01 a4 'json' c4 01 07 80", &m), SB_OK);
    assert_int_equal(m.excluded.n, 1);
    assert_int_equal(m.payloads.n, 1);
    sb_svc_msg_clear(&m);
    assert_int_equal(decode_hex("94 0a dd 00 00 00 01 a1 'x' df 00 00 00 01 a4 'json' c0 df 00 00 00 00", &m),
                     SB_OK);
    assert_int_equal(m.excluded.n, 1);
    assert_null(m.payloads.v[0].bytes.data);
    sb_svc_msg_clear(&m);
    assert_int_equal(decode_hex("94 0a c0 c0 c0", &m), SB_OK);
    assert_int_equal(m.excluded.n, 0);
    assert_null(m.excluded.v);
    assert_int_equal(m.payloads.n, 0);
    sb_svc_msg_clear(&m);
    /* nil inside lists and map keys reads as "", never NULL. */
    assert_int_equal(decode_hex("94 0a 92 c0 a1 'y' 81 c0 c4 00 80", &m), SB_OK);
    assert_string_equal(m.excluded.v[0], "");
    assert_string_equal(m.payloads.v[0].protocol, "");
    sb_svc_msg_clear(&m);
    assert_int_equal(decode_hex("96 04 a1 'c' 81 c0 c0 81 a1 'h' 91 c0 c0 80", &m), SB_OK);
    assert_string_equal(m.claims.v[0].type, "");
    assert_string_equal(m.claims.v[0].value, "");
    assert_string_equal(m.headers.v[0].values.v[0], "");
    assert_null(m.query_string);
    sb_svc_msg_clear(&m);
}

static void test_ext_filtering_on_decode(void **state) {
    sb_svc_msg m;
    /* JoinGroup carries only the tracing id: ttl, protocol, data type and partial are skipped. */
    assert_int_equal(decode_hex("94 0b a1 'c' a1 'g' 85 02 64 03 a4 'json' 05 02 06 c3 01 7b", &m), SB_OK);
    assert_int_equal(m.has_tracing_id, 1);
    assert_int_equal(m.tracing_id, 123);
    assert_int_equal(m.has_ttl, 0);
    assert_null(m.protocol);
    assert_int_equal(m.has_data_message_type, 0);
    assert_int_equal(m.has_is_partial, 0);
    sb_svc_msg_clear(&m);

    /* Unknown keys (newer peers) are skipped whatever their value, including deep nesting. */
    sb_buf b = hexbuf("94 06 a1 'c' c4 00 88");
    sb_buf_append(&b, "\x09", 1);
    for (int i = 0; i < 5000; i++)
        sb_buf_append(&b, "\x91", 1);
    sb_buf_append(&b, "\xc0", 1);
    sb_buf tail = hexbuf("0a cb 00 00 00 00 00 00 00 00 0b d4 01 02 0c c7 02 05 aa bb ff 01 "
                         "0d 82 a1 'x' 92 c2 c3 a1 'y' de 00 01 01 ca 00 00 00 00 "
                         "0e d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 cd 04 d2");
    sb_buf_append(&b, tail.data, tail.len);
    const char *err = NULL;
    assert_int_equal(sb_svc_decode((const uint8_t *)b.data, b.len, &m, &err), SB_OK);
    assert_int_equal(m.tracing_id, 1234);
    sb_svc_msg_clear(&m);
    sb_buf_free(&b);
    sb_buf_free(&tail);

    /* Duplicate keys: the last value wins. */
    assert_int_equal(decode_hex("94 08 a1 'u' 80 82 04 a1 'a' 04 a1 'b'", &m), SB_OK);
    assert_string_equal(m.filter, "b");
    sb_svc_msg_clear(&m);

    /* Trailing elements and trailing bytes are ignored; so are declared-but-unread elements. */
    assert_int_equal(decode_hex("96 0b a1 'c' a1 'g' 80 c1 c1", &m), SB_OK);
    sb_svc_msg_clear(&m);
    assert_int_equal(decode_hex("96 0b a1 'c' a1 'g' 80 01 02", &m), SB_OK);
    sb_svc_msg_clear(&m);
    assert_int_equal(decode_hex("92 0f a1 'e' ff ff", &m), SB_OK);
    sb_svc_msg_clear(&m);
}

static void test_ext_filtering_on_encode(void **state) {
    sb_svc_msg m = {0};
    m.has_tracing_id = 1;
    m.tracing_id = 1234;
    m.has_ttl = 1;
    m.ttl = 100;
    m.protocol = "json";
    m.filter = "f";
    m.has_data_message_type = 1;
    m.data_message_type = 2;
    m.has_is_partial = 1;
    m.is_partial = 1;
    m.connection_id = "c";
    m.user_id = "u";
    m.group = "g";

    m.type = SB_SVC_JOIN_GROUP;
    encode_equals(&m, "94 0b a1 'c' a1 'g' 81 01 cd 04 d2", "JoinGroup: tracing only");
    m.type = SB_SVC_USER_JOIN_GROUP;
    encode_equals(&m, "94 10 a1 'u' a1 'g' 82 01 cd 04 d2 02 64", "UserJoinGroup: tracing, ttl");
    m.type = SB_SVC_USER_DATA;
    encode_equals(&m, "94 08 a1 'u' 80 82 01 cd 04 d2 04 a1 'f'", "UserData: tracing, filter");
    m.type = SB_SVC_OPEN_CONNECTION;
    encode_equals(&m, "96 04 a1 'c' 80 80 c0 82 01 cd 04 d2 03 a4 'json'",
                  "OpenConnection: tracing, protocol");
    m.type = SB_SVC_CONNECTION_DATA;
    encode_equals(&m, "94 06 a1 'c' c4 00 83 01 cd 04 d2 05 02 06 c3", "ConnectionData: 1, 5, 6");
    m.type = SB_SVC_CONNECTION_RECONNECT;
    encode_equals(&m, "93 26 a1 'c' 80", "ConnectionReconnect: none");
    m.type = SB_SVC_ACK;
    encode_equals(&m, "96 14 00 00 c0 80 c0", "Ack: none, nil payload");
    m.type = SB_SVC_HANDSHAKE_REQUEST;
    encode_equals(&m, "97 01 00 00 a0 00 80 c2", "HandshakeRequest: none");
    m.type = SB_SVC_SERVICE_ERROR;
    encode_equals(&m, "92 0f c0", "ServiceError: no map");
    m.type = SB_SVC_CONNECTION_FLOW_CONTROL;
    m.connection_type = 1;
    m.operation = 3;
    encode_equals(&m, "95 27 a1 'c' d2 00 00 00 01 d2 00 00 00 03 80", "FlowControl: fixed ints, no keys");

    /* Defaults are not written even when flagged as present. */
    m.type = SB_SVC_CONNECTION_DATA;
    m.has_tracing_id = 0;
    m.data_message_type = SB_SVC_DATA_UNKNOWN;
    m.is_partial = 0;
    encode_equals(&m, "94 06 a1 'c' c4 00 80", "ConnectionData: default ext values");

    /* A real tracing id (prefix 0x0ABCDEF0, index 5). */
    m.has_tracing_id = 1;
    m.tracing_id = TRACING_VALUE;
    encode_equals(&m, "94 06 a1 'c' c4 00 81 01 cf 0a bc de f0 00 00 00 05",
                  "ConnectionData: uint64 tracing id");
}

static void test_encoder_special_cases(void **state) {
    sb_svc_msg m = {0};

    /* HandshakeRequest: target is "" for Default connections whatever it holds. */
    m.type = SB_SVC_HANDSHAKE_REQUEST;
    m.version = 1;
    m.target = "abc";
    encode_equals(&m, "97 01 01 00 a0 00 80 c2", "default connection drops target");
    m.connection_type = SB_SVC_CONN_ON_DEMAND;
    encode_equals(&m, "97 01 01 01 a3 'abc' 00 80 c2", "on-demand keeps target");
    m.target = NULL;
    encode_equals(&m, "97 01 01 01 a0 00 80 c2", "NULL target is \"\"");
    /* legacy_layout writes len 6 unless the newer field is set. */
    m.legacy_layout = 1;
    encode_equals(&m, "96 01 01 01 a0 00 80", "legacy handshake");
    m.allow_stateful_reconnects = 1;
    encode_equals(&m, "97 01 01 01 a0 00 80 c3", "legacy handshake with stateful reconnect");

    /* Ack: nil payload at len 6; legacy len 5 only without a payload. */
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_ACK;
    m.ack_id = 1;
    m.status = SB_SVC_ACK_OK;
    encode_equals(&m, "96 14 01 01 c0 80 c0", "ack default len 6");
    uint8_t three[] = {1, 2, 3};
    m.payload.data = three;
    m.payload.len = 3;
    m.legacy_layout = 1;
    encode_equals(&m, "96 14 01 01 c0 80 c4 03 01 02 03", "legacy ack with payload");
    m.payload.len = 0;
    encode_equals(&m, "96 14 01 01 c0 80 c4 00", "empty (non-nil) ack payload");
    m.payload.data = NULL;
    encode_equals(&m, "95 14 01 01 c0 80", "legacy ack");

    /* CloseConnection: NULL error is written as "" (the SDK model never holds null). */
    memset(&m, 0, sizeof m);
    m.type = SB_SVC_CLOSE_CONNECTION;
    m.connection_id = "c";
    encode_equals(&m, "95 05 a1 'c' a0 80 80", "close NULL error");
    /* Other scalar NULL strings are nil. */
    m.type = SB_SVC_HANDSHAKE_RESPONSE;
    m.connection_id = NULL;
    encode_equals(&m, "94 02 c0 80 c0", "handshake response nils");

    /* Encoding appends to what the buffer already holds. */
    sb_buf out;
    sb_buf_init(&out);
    sb_buf_appends(&out, "xyz");
    m.type = SB_SVC_SERVICE_ERROR;
    m.error = "e";
    sb_svc_encode(&m, &out);
    assert_bytes("append", out.data, out.len,
                 "xyz\x04\x92\x0f\xa1"
                 "e",
                 8);
    assert_int_equal(out.data[out.len], '\0');
    sb_buf_free(&out);
}

static void test_encoder_widths(void **state) {
    sb_svc_msg m = {0};
    char hex[160];

    /* Signed ack ids: smallest form. */
    static const struct {
        int32_t v;
        const char *enc;
    } ints[] = {
        {0, "00"},
        {127, "7f"},
        {128, "cc 80"},
        {255, "cc ff"},
        {256, "cd 01 00"},
        {65535, "cd ff ff"},
        {65536, "ce 00 01 00 00"},
        {INT32_MAX, "ce 7f ff ff ff"},
        {-1, "ff"},
        {-32, "e0"},
        {-33, "d0 df"},
        {-128, "d0 80"},
        {-129, "d1 ff 7f"},
        {-32768, "d1 80 00"},
        {-32769, "d2 ff ff 7f ff"},
        {INT32_MIN, "d2 80 00 00 00"},
    };
    m.type = SB_SVC_JOIN_GROUP_WITH_ACK;
    m.connection_id = "c";
    m.group = "g";
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        m.ack_id = ints[i].v;
        snprintf(hex, sizeof hex, "95 12 a1 'c' a1 'g' %s 80", ints[i].enc);
        encode_equals(&m, hex, ints[i].enc);
    }
    /* Unsigned tracing ids. */
    static const struct {
        uint64_t v;
        const char *enc;
    } uints[] = {
        {127, "7f"},
        {255, "cc ff"},
        {65535, "cd ff ff"},
        {4294967295u, "ce ff ff ff ff"},
        {4294967296u, "cf 00 00 00 01 00 00 00 00"},
        {UINT64_MAX, "cf ff ff ff ff ff ff ff ff"},
    };
    m.type = SB_SVC_JOIN_GROUP;
    m.has_tracing_id = 1;
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        m.tracing_id = uints[i].v;
        snprintf(hex, sizeof hex, "94 0b a1 'c' a1 'g' 81 01 %s", uints[i].enc);
        encode_equals(&m, hex, uints[i].enc);
    }
    m.has_tracing_id = 0;

    /* String, bin, array and map headers at each boundary. */
    static const struct {
        size_t n;
        uint8_t hdr[5];
        size_t hlen;
    } strw[] = {{31, {0xbf}, 1},
                {32, {0xd9, 32}, 2},
                {255, {0xd9, 0xff}, 2},
                {256, {0xda, 1, 0}, 3},
                {65535, {0xda, 0xff, 0xff}, 3},
                {65536, {0xdb, 0, 1, 0, 0}, 5}},
      binw[] = {{0, {0xc4, 0}, 2},
                {255, {0xc4, 0xff}, 2},
                {256, {0xc5, 1, 0}, 3},
                {65535, {0xc5, 0xff, 0xff}, 3},
                {65536, {0xc6, 0, 1, 0, 0}, 5}},
      arrw[] = {{15, {0x9f}, 1},
                {16, {0xdc, 0, 16}, 3},
                {65535, {0xdc, 0xff, 0xff}, 3},
                {65536, {0xdd, 0, 1, 0, 0}, 5}},
      mapw[] = {{15, {0x8f}, 1}, {16, {0xde, 0, 16}, 3}};
    sb_buf out;
    sb_buf_init(&out);
    for (size_t i = 0; i < sizeof strw / sizeof strw[0]; i++) {
        memset(&m, 0, sizeof m);
        m.type = SB_SVC_CONNECTION_RECONNECT;
        m.connection_id = sb_malloc(strw[i].n + 1);
        memset(m.connection_id, 'x', strw[i].n);
        m.connection_id[strw[i].n] = '\0';
        sb_buf_reset(&out);
        sb_svc_encode(&m, &out);
        sb_slice body = unframe(&out);
        assert_memory_equal(body.base, "\x93\x26", 2);
        assert_memory_equal(body.base + 2, strw[i].hdr, strw[i].hlen);
        assert_int_equal(body.len, 2 + strw[i].hlen + strw[i].n + 1);
        sb_svc_msg d;
        assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &d, NULL), SB_OK);
        assert_string_equal(d.connection_id, m.connection_id);
        sb_svc_msg_clear(&d);
        sb_free(m.connection_id);
    }
    for (size_t i = 0; i < sizeof binw / sizeof binw[0]; i++) {
        memset(&m, 0, sizeof m);
        m.type = SB_SVC_CONNECTION_DATA;
        m.connection_id = "c";
        m.payload.data = sb_calloc(binw[i].n + 1, 1);
        m.payload.len = binw[i].n;
        sb_buf_reset(&out);
        sb_svc_encode(&m, &out);
        sb_slice body = unframe(&out);
        assert_memory_equal(body.base + 4, binw[i].hdr, binw[i].hlen);
        assert_int_equal(body.len, 4 + binw[i].hlen + binw[i].n + 1);
        sb_free(m.payload.data);
    }
    for (size_t i = 0; i < sizeof arrw / sizeof arrw[0]; i++) {
        memset(&m, 0, sizeof m);
        m.type = SB_SVC_BROADCAST_DATA;
        m.excluded.n = arrw[i].n;
        m.excluded.v = sb_malloc(arrw[i].n * sizeof(char *));
        for (size_t k = 0; k < arrw[i].n; k++)
            m.excluded.v[k] = "";
        sb_buf_reset(&out);
        sb_svc_encode(&m, &out);
        sb_slice body = unframe(&out);
        assert_memory_equal(body.base + 2, arrw[i].hdr, arrw[i].hlen);
        sb_svc_msg d;
        assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &d, NULL), SB_OK);
        assert_int_equal(d.excluded.n, arrw[i].n);
        sb_svc_msg_clear(&d);
        sb_free(m.excluded.v);
    }
    for (size_t i = 0; i < sizeof mapw / sizeof mapw[0]; i++) {
        memset(&m, 0, sizeof m);
        m.type = SB_SVC_CLOSE_CONNECTION;
        m.connection_id = "c";
        m.error = "";
        sb_svc_header hs[16];
        memset(hs, 0, sizeof hs);
        for (size_t k = 0; k < mapw[i].n; k++)
            hs[k].name = "h";
        m.headers.v = hs;
        m.headers.n = mapw[i].n;
        sb_buf_reset(&out);
        sb_svc_encode(&m, &out);
        sb_slice body = unframe(&out);
        assert_memory_equal(body.base + 5, mapw[i].hdr, mapw[i].hlen);
        sb_svc_msg d;
        assert_int_equal(sb_svc_decode((const uint8_t *)body.base, body.len, &d, NULL), SB_OK);
        assert_int_equal(d.headers.n, mapw[i].n);
        sb_svc_msg_clear(&d);
    }
    sb_buf_free(&out);
}

static void test_clear_is_idempotent(void **state) {
    sb_svc_msg m;
    memset(&m, 0, sizeof m);
    sb_svc_msg_clear(&m);
    fill_all(&m, SB_SVC_OPEN_CONNECTION);
    sb_svc_msg_clear(&m);
    assert_null(m.connection_id);
    assert_int_equal(m.type, 0);
    sb_svc_msg_clear(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_roundtrip),
        cmocka_unit_test(test_vectors_parse_only),
        cmocka_unit_test(test_vector_fields),
        cmocka_unit_test(test_parse_only_fields),
        cmocka_unit_test(test_ping_vectors),
        cmocka_unit_test(test_ping_get),
        cmocka_unit_test(test_every_type_roundtrip),
        cmocka_unit_test(test_type_names_and_ext_table),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_stream_byte_at_a_time),
        cmocka_unit_test(test_large_connection_data),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_field_error_names),
        cmocka_unit_test(test_integer_widths),
        cmocka_unit_test(test_string_bin_container_widths),
        cmocka_unit_test(test_ext_filtering_on_decode),
        cmocka_unit_test(test_ext_filtering_on_encode),
        cmocka_unit_test(test_encoder_special_cases),
        cmocka_unit_test(test_encoder_widths),
        cmocka_unit_test(test_clear_is_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
