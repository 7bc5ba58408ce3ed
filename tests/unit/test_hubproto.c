/*
 * test_hubproto.c - the JSON and MessagePack hub protocols: the spec's byte
 * vectors, every encoder round-tripped through split + decode, exact encoder
 * output, VarInt edges, splitting whole, in pieces and byte by byte, every
 * validation error of both decoders, hostile MessagePack sizes and nesting,
 * and the handshake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "signalr/hubproto.h"
#include "util/alloc.h"
#include "util/error.h"

#define MAXMSG (1u << 20)

typedef struct bytes {
    const char *data;
    size_t len;
} bytes;
#define B(lit) ((bytes){(lit), sizeof(lit) - 1})

static void assert_bytes(const void *got, size_t got_len, bytes want) {
    if (got_len != want.len || memcmp(got, want.data, want.len) != 0) {
        for (size_t i = 0; i < got_len; i++)
            print_message("%02x ", ((const uint8_t *)got)[i]);
        print_message(" (got, %zu bytes)\n", got_len);
        for (size_t i = 0; i < want.len; i++)
            print_message("%02x ", (uint8_t)want.data[i]);
        print_message(" (want, %zu bytes)\n", want.len);
        fail_msg("bytes differ");
    }
}

/* Split exactly one message that must fill data, then decode it; fails the test on any error. */
static void decode_one(sb_hub_protocol p, const void *data, size_t len, sb_hub_msg *m) {
    sb_slice body;
    size_t consumed = 0;
    const char *err = NULL;
    assert_int_equal(sb_hubproto_split(p, data, len, MAXMSG, &body, &consumed), SB_OK);
    assert_int_equal(consumed, len);
    int rc = sb_hubproto_decode(p, body, m, &err);
    if (rc != SB_OK)
        fail_msg("decode failed: %s", err ? err : "(no text)");
    assert_null(err);
    assert_ptr_equal(m->raw.base, body.base);
    assert_int_equal(m->raw.len, body.len);
}

/* Decode an unframed body that must fail with exactly want_err. */
static void expect_decode_error(sb_hub_protocol p, bytes body, const char *want_err) {
    sb_hub_msg m;
    const char *err = NULL;
    int rc = sb_hubproto_decode(p, sb_slice_make(body.data, body.len), &m, &err);
    if (rc != SB_EPROTO || !err || strcmp(err, want_err) != 0) {
        print_message("input: %.*s\n", (int)body.len, body.data);
        fail_msg("rc %d, error '%s', want '%s'", rc, err ? err : "(null)", want_err);
    }
    sb_hub_msg_clear(&m);
}

static void decode_body(sb_hub_protocol p, bytes body, sb_hub_msg *m) {
    const char *err = NULL;
    int rc = sb_hubproto_decode(p, sb_slice_make(body.data, body.len), m, &err);
    if (rc != SB_OK)
        fail_msg("decode failed: %s", err ? err : "(no text)");
    assert_ptr_equal(m->raw.base, body.data);
    assert_int_equal(m->raw.len, body.len);
}

/* ---- names and VarInt ---------------------------------------------------- */

static void test_names(void **state) {
    assert_string_equal(sb_hubproto_name(SB_HUBPROTO_JSON), "json");
    assert_string_equal(sb_hubproto_name(SB_HUBPROTO_MSGPACK), "messagepack");
}

static void test_varint_values(void **state) {
    static const struct {
        size_t value;
        bytes enc;
    } cases[] = {
        {0, B("\x00")},
        {53, B("\x35")},
        {127, B("\x7f")},
        {128, B("\x80\x01")},
        {5248, B("\x80\x29")},
        {16383, B("\xff\x7f")},
        {16384, B("\x80\x80\x01")},
        {268435455, B("\xff\xff\xff\x7f")},
        {268435456, B("\x80\x80\x80\x80\x01")},
        {2147483647, B("\xff\xff\xff\xff\x07")},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint8_t out[5];
        size_t n = sb_varint_write(out, cases[c].value);
        assert_bytes(out, n, cases[c].enc);

        size_t value = 0, nbytes = 0;
        assert_int_equal(sb_varint_read(out, n, &value, &nbytes), SB_OK);
        assert_int_equal(value, cases[c].value);
        assert_int_equal(nbytes, n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(sb_varint_read(out, k, &value, &nbytes), SB_EAGAIN);
    }
}

static void test_varint_invalid(void **state) {
    size_t value, nbytes;
    /* 2^31: the 5th byte would be 8 */
    assert_int_equal(sb_varint_read((const uint8_t *)"\x80\x80\x80\x80\x08", 5, &value, &nbytes), SB_EPROTO);
    /* a 5th byte with the continuation bit asks for a 6th */
    assert_int_equal(sb_varint_read((const uint8_t *)"\xff\xff\xff\xff\x87\x00", 6, &value, &nbytes),
                     SB_EPROTO);
    assert_int_equal(sb_varint_read((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 6, &value, &nbytes),
                     SB_EPROTO);
    /* ...rejected as soon as the 5th byte is seen, not after waiting for more */
    assert_int_equal(sb_varint_read((const uint8_t *)"\xff\xff\xff\xff\x7f", 5, &value, &nbytes), SB_EPROTO);
    assert_int_equal(sb_varint_read((const uint8_t *)"\xff\xff\xff\xff", 4, &value, &nbytes), SB_EAGAIN);
    assert_int_equal(sb_varint_read(NULL, 0, &value, &nbytes), SB_EAGAIN);
}

/* ---- splitting ------------------------------------------------------------ */

static void test_split_json(void **state) {
    const uint8_t *in = (const uint8_t *)"{\"type\":6}\x1e{}\x1e\x1e{\"ty";
    size_t len = strlen((const char *)in);
    sb_slice body;
    size_t consumed, off = 0;

    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in, len, MAXMSG, &body, &consumed), SB_OK);
    assert_true(sb_slice_eq(body, "{\"type\":6}"));
    assert_int_equal(consumed, 11);
    off += consumed;
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in + off, len - off, MAXMSG, &body, &consumed),
                     SB_OK);
    assert_true(sb_slice_eq(body, "{}"));
    off += consumed;
    /* an empty message splits; the decoder is what rejects it */
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in + off, len - off, MAXMSG, &body, &consumed),
                     SB_OK);
    assert_int_equal(body.len, 0);
    assert_int_equal(consumed, 1);
    off += consumed;
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in + off, len - off, MAXMSG, &body, &consumed),
                     SB_EAGAIN);
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in, 0, MAXMSG, &body, &consumed), SB_EAGAIN);
}

/* An sb_buf that never held data hands over (NULL, 0). */
static void test_empty_input(void **state) {
    sb_slice body;
    size_t consumed;
    sb_handshake_req req;
    const char *err;
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, NULL, 0, MAXMSG, &body, &consumed), SB_EAGAIN);
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_MSGPACK, NULL, 0, MAXMSG, &body, &consumed), SB_EAGAIN);
    assert_int_equal(sb_handshake_parse(NULL, 0, 4096, &consumed, &req, &err), SB_EAGAIN);
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, NULL, 0, 0, &body, &consumed), SB_EAGAIN);
    assert_int_equal(sb_handshake_parse(NULL, 0, 0, &consumed, &req, &err), SB_EAGAIN);
    expect_decode_error(SB_HUBPROTO_JSON, (bytes){NULL, 0}, "Error reading JSON.");
    expect_decode_error(SB_HUBPROTO_MSGPACK, (bytes){NULL, 0}, "Invalid payload.");
}

static void test_split_json_limit(void **state) {
    const uint8_t *in = (const uint8_t *)"0123456789\x1e";
    sb_slice body;
    size_t consumed;
    /* a body of exactly the limit is fine, even with the separator past it */
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in, 11, 10, &body, &consumed), SB_OK);
    assert_int_equal(body.len, 10);
    /* one byte over: rejected whether or not the separator has arrived */
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in, 11, 9, &body, &consumed), SB_E2BIG);
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in, 10, 9, &body, &consumed), SB_E2BIG);
    /* at the limit without a separator we cannot know yet */
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in, 10, 10, &body, &consumed), SB_EAGAIN);
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_JSON, in, 9, 9, &body, &consumed), SB_EAGAIN);
}

static void test_split_msgpack(void **state) {
    bytes in = B("\x02\x91\x06\x04\x92\x08\xcc\x24\x00\x03\x92\x09");
    const uint8_t *d = (const uint8_t *)in.data;
    sb_slice body;
    size_t consumed, off = 0;

    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_MSGPACK, d, in.len, MAXMSG, &body, &consumed), SB_OK);
    assert_bytes(body.base, body.len, B("\x91\x06"));
    assert_int_equal(consumed, 3);
    off += consumed;
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_MSGPACK, d + off, in.len - off, MAXMSG, &body, &consumed),
                     SB_OK);
    assert_bytes(body.base, body.len, B("\x92\x08\xcc\x24"));
    off += consumed;
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_MSGPACK, d + off, in.len - off, MAXMSG, &body, &consumed),
                     SB_OK);
    assert_int_equal(body.len, 0);
    assert_int_equal(consumed, 1);
    off += consumed;
    /* length 3 announced, 2 present */
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_MSGPACK, d + off, in.len - off, MAXMSG, &body, &consumed),
                     SB_EAGAIN);
}

static void test_split_msgpack_limits(void **state) {
    sb_slice body;
    size_t consumed;
    /* 5248 announced: over a 5000 limit as soon as the length is read, before any body byte */
    assert_int_equal(
        sb_hubproto_split(SB_HUBPROTO_MSGPACK, (const uint8_t *)"\x80\x29", 2, 5000, &body, &consumed),
        SB_E2BIG);
    assert_int_equal(
        sb_hubproto_split(SB_HUBPROTO_MSGPACK, (const uint8_t *)"\x80\x29", 2, 5248, &body, &consumed),
        SB_EAGAIN);
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_MSGPACK, (const uint8_t *)"\xff\xff\xff\xff\x08", 5,
                                       MAXMSG, &body, &consumed),
                     SB_EPROTO);
    assert_int_equal(
        sb_hubproto_split(SB_HUBPROTO_MSGPACK, (const uint8_t *)"\x80", 1, MAXMSG, &body, &consumed),
        SB_EAGAIN);
    assert_int_equal(
        sb_hubproto_split(SB_HUBPROTO_MSGPACK, (const uint8_t *)"\x02\x91\x06", 3, 2, &body, &consumed),
        SB_OK);
    assert_int_equal(
        sb_hubproto_split(SB_HUBPROTO_MSGPACK, (const uint8_t *)"\x02\x91\x06", 3, 1, &body, &consumed),
        SB_E2BIG);
}

static void test_bad_protocol(void **state) {
    sb_hub_msg m;
    const char *err;
    sb_slice body;
    size_t consumed;
    assert_string_equal(sb_hubproto_name(SB_HUBPROTO_COUNT), "unknown");
    assert_int_equal(sb_hubproto_split(SB_HUBPROTO_COUNT, (const uint8_t *)"x", 1, 10, &body, &consumed),
                     SB_EINVAL);
    assert_int_equal(sb_hubproto_decode(SB_HUBPROTO_COUNT, SB_SLICE("x"), &m, &err), SB_EINVAL);
    assert_non_null(err);
    sb_hub_msg_clear(&m);
}

/* ---- MessagePack vectors from the spec ---------------------------------- */

static void test_msgpack_vectors(void **state) {
    sb_hub_msg m;
    decode_body(SB_HUBPROTO_MSGPACK, B("\x96\x01\x80\xa3xyz\xa6method\x91\x2a\x90"), &m);
    assert_int_equal(m.type, SB_HUBMSG_INVOCATION);
    assert_string_equal(m.invocation_id, "xyz");
    assert_string_equal(m.target, "method");
    assert_int_equal(m.nargs, 1);
    sb_hub_msg_clear(&m);
    assert_null(m.target);

    decode_body(SB_HUBPROTO_MSGPACK, B("\x91\x06"), &m);
    assert_int_equal(m.type, SB_HUBMSG_PING);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_MSGPACK, B("\x92\x08\xcc\x24"), &m);
    assert_int_equal(m.type, SB_HUBMSG_ACK);
    assert_int_equal(m.sequence_id, 36);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_MSGPACK, B("\x92\x09\xcc\x13"), &m);
    assert_int_equal(m.type, SB_HUBMSG_SEQUENCE);
    assert_int_equal(m.sequence_id, 19);
    sb_hub_msg_clear(&m);
}

/* ---- encoders: exact output ---------------------------------------------- */

static json_t *load(const char *text) {
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v)
        fail_msg("bad test JSON '%s': %s", text, e.text);
    return v;
}

static void test_json_writers_exact(void **state) {
    sb_buf b;
    sb_buf_init(&b);
    json_t *args = load("[1,\"two\",{\"k\":[true,null]},1.5]");
    json_t *result = load("{\"a\":1}");

    sb_hubproto_write_invocation(SB_HUBPROTO_JSON, &b, "7", "Send", args);
    assert_string_equal(b.data, "{\"type\":1,\"invocationId\":\"7\",\"target\":\"Send\",\"arguments\":[1,"
                                "\"two\",{\"k\":[true,null]},1.5]}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_invocation(SB_HUBPROTO_JSON, &b, NULL, "Send", NULL);
    assert_string_equal(b.data, "{\"type\":1,\"target\":\"Send\",\"arguments\":[]}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_ping(SB_HUBPROTO_JSON, &b);
    assert_string_equal(b.data, "{\"type\":6}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_close(SB_HUBPROTO_JSON, &b, NULL, 0);
    assert_string_equal(b.data, "{\"type\":7}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_close(SB_HUBPROTO_JSON, &b, "Connection closed with an error.", 0);
    assert_string_equal(b.data, "{\"type\":7,\"error\":\"Connection closed with an error.\"}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_close(SB_HUBPROTO_JSON, &b, "x", 1);
    assert_string_equal(b.data, "{\"type\":7,\"error\":\"x\",\"allowReconnect\":true}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_completion(SB_HUBPROTO_JSON, &b, "1", NULL, NULL);
    assert_string_equal(b.data, "{\"type\":3,\"invocationId\":\"1\"}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_completion(SB_HUBPROTO_JSON, &b, "1", NULL, result);
    assert_string_equal(b.data, "{\"type\":3,\"invocationId\":\"1\",\"result\":{\"a\":1}}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_completion(SB_HUBPROTO_JSON, &b, "1", "boom", NULL);
    assert_string_equal(b.data, "{\"type\":3,\"invocationId\":\"1\",\"error\":\"boom\"}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_ack(SB_HUBPROTO_JSON, &b, 36);
    assert_string_equal(b.data, "{\"type\":8,\"sequenceId\":36}\x1e");
    sb_buf_reset(&b);
    sb_hubproto_write_sequence(SB_HUBPROTO_JSON, &b, 9007199254740993LL);
    assert_string_equal(b.data, "{\"type\":9,\"sequenceId\":9007199254740993}\x1e");
    sb_buf_reset(&b);
    /* strings are escaped: quotes, backslashes and control characters; UTF-8 passes through */
    sb_hubproto_write_close(SB_HUBPROTO_JSON, &b, "a\"b\\c\nd\x01\x1f \x7f\xc3\xa9", 0);
    assert_string_equal(b.data,
                        "{\"type\":7,\"error\":\"a\\\"b\\\\c\\u000ad\\u0001\\u001f \x7f\xc3\xa9\"}\x1e");

    /* writers append: two messages in one buffer */
    sb_buf_reset(&b);
    sb_hubproto_write_ping(SB_HUBPROTO_JSON, &b);
    sb_hubproto_write_ping(SB_HUBPROTO_JSON, &b);
    assert_string_equal(b.data, "{\"type\":6}\x1e{\"type\":6}\x1e");

    json_decref(args);
    json_decref(result);
    sb_buf_free(&b);
}

static void test_msgpack_writers(void **state) {
    sb_buf b;
    sb_buf_init(&b);
    json_t *args = load("[42]");
    json_t *result = load("\"ok\"");

    sb_hubproto_write_invocation(SB_HUBPROTO_MSGPACK, &b, "xyz", "method", args);
    assert_bytes(b.data, b.len, B("\x10\x95\x01\x80\xa3xyz\xa6method\x91\x2a"));
    sb_buf_reset(&b);
    sb_hubproto_write_invocation(SB_HUBPROTO_MSGPACK, &b, NULL, "m", NULL);
    assert_bytes(b.data, b.len, B("\x07\x95\x01\x80\xc0\xa1m\x90"));
    sb_buf_reset(&b);
    sb_hubproto_write_ping(SB_HUBPROTO_MSGPACK, &b);
    assert_bytes(b.data, b.len, B("\x02\x91\x06"));
    sb_buf_reset(&b);
    sb_hubproto_write_close(SB_HUBPROTO_MSGPACK, &b, NULL, 0);
    assert_bytes(b.data, b.len, B("\x04\x93\x07\xc0\xc2"));
    sb_buf_reset(&b);
    sb_hubproto_write_close(SB_HUBPROTO_MSGPACK, &b, "e", 1);
    assert_bytes(b.data, b.len,
                 B("\x05\x93\x07\xa1"
                   "e\xc3"));
    sb_buf_reset(&b);
    sb_hubproto_write_completion(SB_HUBPROTO_MSGPACK, &b, "1", NULL, NULL);
    assert_bytes(b.data, b.len,
                 B("\x06\x94\x03\x80\xa1"
                   "1\x02"));
    sb_buf_reset(&b);
    sb_hubproto_write_completion(SB_HUBPROTO_MSGPACK, &b, "1", NULL, result);
    assert_bytes(b.data, b.len,
                 B("\x09\x95\x03\x80\xa1"
                   "1\x03\xa2ok"));
    sb_buf_reset(&b);
    sb_hubproto_write_completion(SB_HUBPROTO_MSGPACK, &b, "1", "bad", NULL);
    assert_bytes(b.data, b.len,
                 B("\x0a\x95\x03\x80\xa1"
                   "1\x01\xa3"
                   "bad"));
    sb_buf_reset(&b);
    sb_hubproto_write_ack(SB_HUBPROTO_MSGPACK, &b, 36);
    assert_bytes(b.data, b.len, B("\x03\x92\x08\x24"));
    sb_buf_reset(&b);
    sb_hubproto_write_ack(SB_HUBPROTO_MSGPACK, &b, 200);
    assert_bytes(b.data, b.len, B("\x04\x92\x08\xcc\xc8"));
    sb_buf_reset(&b);
    sb_hubproto_write_sequence(SB_HUBPROTO_MSGPACK, &b, 19);
    assert_bytes(b.data, b.len, B("\x03\x92\x09\x13"));
    sb_buf_reset(&b);
    sb_hubproto_write_sequence(SB_HUBPROTO_MSGPACK, &b, 1LL << 40);
    assert_bytes(b.data, b.len, B("\x0b\x92\x09\xcf\x00\x00\x01\x00\x00\x00\x00\x00"));

    /* writers append after what is already there; the length prefix goes in the right place */
    sb_buf_reset(&b);
    sb_buf_appends(&b, "AB");
    sb_hubproto_write_ack(SB_HUBPROTO_MSGPACK, &b, 1);
    assert_bytes(b.data, b.len, B("AB\x03\x92\x08\x01"));

    json_decref(args);
    json_decref(result);
    sb_buf_free(&b);
}

/* JSON arguments become the smallest MessagePack encodings. */
static void test_msgpack_argument_conversion(void **state) {
    json_t *args = load("[0,-1,127,128,-33,-129,65536,4294967296,-2147483649,1.5,true,false,null,"
                        "\"hi\",[1,2],{\"k\":\"v\"}]");
    sb_buf b;
    sb_buf_init(&b);
    sb_hubproto_write_invocation(SB_HUBPROTO_MSGPACK, &b, NULL, "m", args);
    static const char want[] = "\x95\x01\x80\xc0\xa1m\xdc\x00\x10"
                               "\x00\xff\x7f\xcc\x80\xd0\xdf\xd1\xff\x7f"
                               "\xce\x00\x01\x00\x00"
                               "\xcf\x00\x00\x00\x01\x00\x00\x00\x00"
                               "\xd3\xff\xff\xff\xff\x7f\xff\xff\xff"
                               "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"
                               "\xc3\xc2\xc0\xa2hi\x92\x01\x02\x81\xa1k\xa1v";
    assert_int_equal((uint8_t)b.data[0], sizeof(want) - 1);
    assert_bytes(b.data + 1, b.len - 1, (bytes){want, sizeof(want) - 1});

    sb_hub_msg m;
    decode_one(SB_HUBPROTO_MSGPACK, b.data, b.len, &m);
    assert_int_equal(m.nargs, 16);
    assert_null(m.invocation_id);
    sb_hub_msg_clear(&m);
    json_decref(args);
    sb_buf_free(&b);
}

/* A body over 127 bytes needs a two-byte length. */
static void test_msgpack_long_message(void **state) {
    char text[300];
    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    json_t *args = json_pack("[s]", text);
    sb_buf b;
    sb_buf_init(&b);
    sb_hubproto_write_invocation(SB_HUBPROTO_MSGPACK, &b, "1", "t", args);
    /* 95 01 80 a1 31 a1 74 91 da 01 2b + 299 bytes = 310 = 0xb6 0x02 */
    assert_int_equal(b.len, 2 + 310);
    assert_int_equal((uint8_t)b.data[0], 0xb6);
    assert_int_equal((uint8_t)b.data[1], 0x02);
    sb_hub_msg m;
    decode_one(SB_HUBPROTO_MSGPACK, b.data, b.len, &m);
    assert_string_equal(m.target, "t");
    sb_hub_msg_clear(&m);
    json_decref(args);
    sb_buf_free(&b);
}

/* ---- encoders: round trips through split + decode ------------------------ */

static void roundtrip(sb_hub_protocol p) {
    sb_buf b;
    sb_hub_msg m;
    sb_buf_init(&b);
    json_t *args = load("[1,\"a\",{\"x\":[null,2.5]}]");
    json_t *result = load("[1,2]");
    json_t *null_result = load("null");

    sb_hubproto_write_invocation(p, &b, "42", "Broadcast", args);
    decode_one(p, b.data, b.len, &m);
    assert_int_equal(m.type, SB_HUBMSG_INVOCATION);
    assert_string_equal(m.invocation_id, "42");
    assert_string_equal(m.target, "Broadcast");
    assert_int_equal(m.nargs, 3);
    sb_hub_msg_clear(&m);

    sb_buf_reset(&b);
    sb_hubproto_write_invocation(p, &b, NULL, "x", NULL);
    decode_one(p, b.data, b.len, &m);
    assert_int_equal(m.type, SB_HUBMSG_INVOCATION);
    assert_null(m.invocation_id);
    assert_string_equal(m.target, "x");
    assert_int_equal(m.nargs, 0);
    sb_hub_msg_clear(&m);

    sb_buf_reset(&b);
    sb_hubproto_write_ping(p, &b);
    decode_one(p, b.data, b.len, &m);
    assert_int_equal(m.type, SB_HUBMSG_PING);
    sb_hub_msg_clear(&m);

    static const struct {
        const char *error;
        int allow;
    } closes[] = {{NULL, 0}, {"Connection closed with an error.", 0}, {"e\"\n", 1}, {NULL, 1}};
    for (size_t i = 0; i < sizeof(closes) / sizeof(closes[0]); i++) {
        sb_buf_reset(&b);
        sb_hubproto_write_close(p, &b, closes[i].error, closes[i].allow);
        decode_one(p, b.data, b.len, &m);
        assert_int_equal(m.type, SB_HUBMSG_CLOSE);
        if (closes[i].error)
            assert_string_equal(m.error, closes[i].error);
        else
            assert_null(m.error);
        assert_int_equal(m.allow_reconnect, closes[i].allow);
        sb_hub_msg_clear(&m);
    }

    sb_buf_reset(&b);
    sb_hubproto_write_completion(p, &b, "c1", NULL, NULL);
    decode_one(p, b.data, b.len, &m);
    assert_int_equal(m.type, SB_HUBMSG_COMPLETION);
    assert_string_equal(m.invocation_id, "c1");
    assert_false(m.has_result);
    assert_null(m.error);
    sb_hub_msg_clear(&m);

    sb_buf_reset(&b);
    sb_hubproto_write_completion(p, &b, "c2", NULL, result);
    decode_one(p, b.data, b.len, &m);
    assert_string_equal(m.invocation_id, "c2");
    assert_true(m.has_result);
    assert_null(m.error);
    sb_hub_msg_clear(&m);

    /* a null result is still a result, not void */
    sb_buf_reset(&b);
    sb_hubproto_write_completion(p, &b, "c3", NULL, null_result);
    decode_one(p, b.data, b.len, &m);
    assert_true(m.has_result);
    sb_hub_msg_clear(&m);

    sb_buf_reset(&b);
    sb_hubproto_write_completion(p, &b, "c4", "Client didn't provide a result.", NULL);
    decode_one(p, b.data, b.len, &m);
    assert_string_equal(m.invocation_id, "c4");
    assert_false(m.has_result);
    assert_string_equal(m.error, "Client didn't provide a result.");
    sb_hub_msg_clear(&m);

    static const int64_t seqs[] = {0, 1, 127, 128, 65535, 65536, 4294967296LL, INT64_MAX, -1, INT64_MIN};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        sb_buf_reset(&b);
        sb_hubproto_write_ack(p, &b, seqs[i]);
        decode_one(p, b.data, b.len, &m);
        assert_int_equal(m.type, SB_HUBMSG_ACK);
        assert_true(m.sequence_id == seqs[i]);
        sb_hub_msg_clear(&m);
        sb_buf_reset(&b);
        sb_hubproto_write_sequence(p, &b, seqs[i]);
        decode_one(p, b.data, b.len, &m);
        assert_int_equal(m.type, SB_HUBMSG_SEQUENCE);
        assert_true(m.sequence_id == seqs[i]);
        sb_hub_msg_clear(&m);
    }

    json_decref(args);
    json_decref(result);
    json_decref(null_result);
    sb_buf_free(&b);
}

static void test_roundtrip_json(void **state) {
    roundtrip(SB_HUBPROTO_JSON);
}
static void test_roundtrip_msgpack(void **state) {
    roundtrip(SB_HUBPROTO_MSGPACK);
}

/* Every writer's output in one stream, delivered one byte at a time, and all at once. */
static void stream(sb_hub_protocol p, int byte_at_a_time) {
    static const int want[] = {SB_HUBMSG_INVOCATION, SB_HUBMSG_PING, SB_HUBMSG_CLOSE,   SB_HUBMSG_COMPLETION,
                               SB_HUBMSG_COMPLETION, SB_HUBMSG_ACK,  SB_HUBMSG_SEQUENCE};
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    sb_buf all, in;
    sb_buf_init(&all);
    sb_buf_init(&in);
    json_t *args =
        json_pack("[s,i]", "\x1e-looking text is escaped in JSON and length-prefixed in MessagePack", 5);
    sb_hubproto_write_invocation(p, &all, "1", "t", args);
    sb_hubproto_write_ping(p, &all);
    sb_hubproto_write_close(p, &all, "bye", 1);
    sb_hubproto_write_completion(p, &all, "1", NULL, args);
    sb_hubproto_write_completion(p, &all, "2", "no", NULL);
    sb_hubproto_write_ack(p, &all, 300);
    sb_hubproto_write_sequence(p, &all, 7);

    size_t got = 0, fed = 0;
    while (fed < all.len) {
        size_t n = byte_at_a_time ? 1 : all.len;
        sb_buf_append(&in, all.data + fed, n);
        fed += n;
        for (;;) {
            sb_slice body;
            size_t consumed;
            int rc = sb_hubproto_split(p, (const uint8_t *)in.data, in.len, MAXMSG, &body, &consumed);
            if (rc == SB_EAGAIN)
                break;
            assert_int_equal(rc, SB_OK);
            sb_hub_msg m;
            const char *err;
            assert_int_equal(sb_hubproto_decode(p, body, &m, &err), SB_OK);
            assert_true(got < nwant);
            assert_int_equal(m.type, want[got]);
            got++;
            /* the last byte of a message was just added: nothing completes early */
            if (byte_at_a_time)
                assert_int_equal(consumed, in.len);
            sb_hub_msg_clear(&m);
            sb_buf_consume(&in, consumed);
        }
    }
    assert_int_equal(got, nwant);
    assert_int_equal(in.len, 0);
    json_decref(args);
    sb_buf_free(&all);
    sb_buf_free(&in);
}

static void test_stream_json_bytewise(void **state) {
    stream(SB_HUBPROTO_JSON, 1);
}
static void test_stream_msgpack_bytewise(void **state) {
    stream(SB_HUBPROTO_MSGPACK, 1);
}
static void test_stream_json_whole(void **state) {
    stream(SB_HUBPROTO_JSON, 0);
}
static void test_stream_msgpack_whole(void **state) {
    stream(SB_HUBPROTO_MSGPACK, 0);
}

/* ---- JSON decoding -------------------------------------------------------- */

static void test_json_decode_accepts(void **state) {
    sb_hub_msg m;

    /* the JS client writes type last; headers are allowed */
    decode_body(SB_HUBPROTO_JSON,
                B("{\"target\":\"Send\",\"arguments\":[1,2],\"invocationId\":\"0\",\"headers\":{\"a\":\"b\"},"
                  "\"type\":1}"),
                &m);
    assert_int_equal(m.type, SB_HUBMSG_INVOCATION);
    assert_string_equal(m.invocation_id, "0");
    assert_string_equal(m.target, "Send");
    assert_int_equal(m.nargs, 2);
    sb_hub_msg_clear(&m);

    /* empty and null invocation ids mean non-blocking */
    decode_body(SB_HUBPROTO_JSON, B("{\"type\":1,\"invocationId\":\"\",\"target\":\"a\",\"arguments\":[]}"),
                &m);
    assert_null(m.invocation_id);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_JSON, B("{\"type\":1,\"invocationId\":null,\"target\":\"a\",\"arguments\":[]}"),
                &m);
    assert_null(m.invocation_id);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON,
                B("{\"type\":4,\"invocationId\":\"3\",\"target\":\"Counter\",\"arguments\":[10],"
                  "\"streamIds\":[\"4\"]}"),
                &m);
    assert_int_equal(m.type, SB_HUBMSG_STREAM_INVOCATION);
    assert_string_equal(m.invocation_id, "3");
    assert_string_equal(m.target, "Counter");
    assert_int_equal(m.nargs, 1);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON, B("{\"type\":2,\"invocationId\":\"4\",\"item\":null}"), &m);
    assert_int_equal(m.type, SB_HUBMSG_STREAM_ITEM);
    assert_string_equal(m.invocation_id, "4");
    sb_hub_msg_clear(&m);

    /* a null error is no error, so a result may accompany it */
    decode_body(SB_HUBPROTO_JSON, B("{\"type\":3,\"invocationId\":\"1\",\"error\":null,\"result\":null}"),
                &m);
    assert_true(m.has_result);
    assert_null(m.error);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON, B("{\"type\":5,\"invocationId\":\"9\"}"), &m);
    assert_int_equal(m.type, SB_HUBMSG_CANCEL_INVOCATION);
    assert_string_equal(m.invocation_id, "9");
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON, B(" {\"type\":7,\"allowReconnect\":false} \n"), &m);
    assert_int_equal(m.type, SB_HUBMSG_CLOSE);
    assert_false(m.allow_reconnect);
    assert_null(m.error);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON, B("{\"type\":7,\"error\":null}"), &m);
    assert_null(m.error);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON, B("{\"type\":8,\"sequenceId\":5.0}"), &m);
    assert_int_equal(m.sequence_id, 5);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON, B("{\"type\":9,\"sequenceId\":-9223372036854775808}"), &m);
    assert_true(m.sequence_id == INT64_MIN);
    sb_hub_msg_clear(&m);

    /* unknown types are returned, with nothing but the type and raw bytes */
    decode_body(SB_HUBPROTO_JSON, B("{\"type\":42,\"target\":5,\"headers\":7}"), &m);
    assert_int_equal(m.type, 42);
    assert_null(m.target);
    assert_null(m.invocation_id);
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_JSON, B("{\"type\":-3}"), &m);
    assert_int_equal(m.type, -3);
    sb_hub_msg_clear(&m);
}

static void test_json_decode_errors(void **state) {
    static const struct {
        bytes in;
        const char *err;
    } cases[] = {
        {B(""), "Error reading JSON."},
        {B("not json"), "Error reading JSON."},
        {B("{\"type\":6} x"), "Error reading JSON."},
        {B("{\"type\":6}{\"type\":6}"), "Error reading JSON."},
        {B("{\"type\":1,\"target\":\"\xff\",\"arguments\":[]}"), "Error reading JSON."},
        {B("{\"type\":1,\"target\":\"a\\u0000b\",\"arguments\":[]}"), "Error reading JSON."},
        {B("[1]"), "Message is not a JSON object."},
        {B("\"type\""), "Error reading JSON."}, /* jansson takes only objects and arrays */
        {B("{}"), "Missing required property 'type'."},
        {B("{\"type\":\"1\"}"), "Expected 'type' to be of type Integer."},
        {B("{\"type\":1.0}"), "Expected 'type' to be of type Integer."},
        {B("{\"type\":null}"), "Expected 'type' to be of type Integer."},
        {B("{\"type\":4294967297}"), "Property 'type' is out of range."},
        {B("{\"type\":-4294967297}"), "Property 'type' is out of range."},
        {B("{\"type\":1,\"arguments\":[]}"), "Missing required property 'target'."},
        {B("{\"type\":1,\"target\":\"\",\"arguments\":[]}"), "Missing required property 'target'."},
        {B("{\"type\":1,\"target\":5,\"arguments\":[]}"), "Expected 'target' to be of type String."},
        {B("{\"type\":1,\"target\":null,\"arguments\":[]}"), "Expected 'target' to be of type String."},
        {B("{\"type\":1,\"target\":\"a\"}"), "Missing required property 'arguments'."},
        {B("{\"type\":1,\"target\":\"a\",\"arguments\":{}}"), "Expected 'arguments' to be of type Array."},
        {B("{\"type\":1,\"invocationId\":5,\"target\":\"a\",\"arguments\":[]}"),
         "Expected 'invocationId' to be of type String."},
        {B("{\"type\":1,\"target\":\"a\",\"arguments\":[],\"streamIds\":\"1\"}"),
         "Expected 'streamIds' to be of type Array."},
        {B("{\"type\":1,\"target\":\"a\",\"arguments\":[],\"streamIds\":[\"1\",2]}"),
         "Expected 'streamIds' to contain only strings."},
        {B("{\"type\":1,\"target\":\"a\",\"arguments\":[],\"headers\":[]}"),
         "Expected 'headers' to be of type Object."},
        {B("{\"type\":1,\"target\":\"a\",\"arguments\":[],\"headers\":{\"a\":1}}"),
         "Expected header values to be of type String."},
        {B("{\"type\":4,\"target\":\"a\",\"arguments\":[]}"), "Missing required property 'invocationId'."},
        {B("{\"type\":4,\"invocationId\":\"\",\"target\":\"a\",\"arguments\":[]}"),
         "Missing required property 'invocationId'."},
        {B("{\"type\":4,\"invocationId\":\"1\",\"arguments\":[]}"), "Missing required property 'target'."},
        {B("{\"type\":2,\"item\":1}"), "Missing required property 'invocationId'."},
        {B("{\"type\":2,\"invocationId\":null,\"item\":1}"), "Missing required property 'invocationId'."},
        {B("{\"type\":2,\"invocationId\":\"1\"}"), "Missing required property 'item'."},
        {B("{\"type\":3}"), "Missing required property 'invocationId'."},
        {B("{\"type\":3,\"invocationId\":[]}"), "Expected 'invocationId' to be of type String."},
        {B("{\"type\":3,\"invocationId\":\"1\",\"error\":\"e\",\"result\":1}"),
         "The 'error' and 'result' properties are mutually exclusive."},
        {B("{\"type\":3,\"invocationId\":\"1\",\"error\":5}"), "Expected 'error' to be of type String."},
        {B("{\"type\":5}"), "Missing required property 'invocationId'."},
        {B("{\"type\":5,\"invocationId\":\"1\",\"headers\":\"h\"}"),
         "Expected 'headers' to be of type Object."},
        {B("{\"type\":7,\"error\":1}"), "Expected 'error' to be of type String."},
        {B("{\"type\":7,\"allowReconnect\":\"yes\"}"), "Expected 'allowReconnect' to be of type Boolean."},
        {B("{\"type\":7,\"allowReconnect\":1}"), "Expected 'allowReconnect' to be of type Boolean."},
        {B("{\"type\":8}"), "Missing required property 'sequenceId'."},
        {B("{\"type\":9,\"sequenceId\":\"1\"}"), "Expected 'sequenceId' to be an integer."},
        {B("{\"type\":9,\"sequenceId\":1.5}"), "Expected 'sequenceId' to be an integer."},
        {B("{\"type\":9,\"sequenceId\":1e300}"), "Expected 'sequenceId' to be an integer."},
        {B("{\"type\":9,\"sequenceId\":9223372036854775808.0}"), "Expected 'sequenceId' to be an integer."},
        {B("{\"type\":8,\"sequenceId\":null}"), "Expected 'sequenceId' to be an integer."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decode_error(SB_HUBPROTO_JSON, cases[i].in, cases[i].err);
}

/* ---- MessagePack decoding ------------------------------------------------- */

static void test_msgpack_decode_accepts(void **state) {
    sb_hub_msg m;

    /* 5 elements, nil id; and 6 with stream ids; extra elements are ignored */
    decode_body(SB_HUBPROTO_MSGPACK, B("\x95\x01\x80\xc0\xa4Send\x92\x01\xa1x"), &m);
    assert_null(m.invocation_id);
    assert_string_equal(m.target, "Send");
    assert_int_equal(m.nargs, 2);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x96\x01\x81\xa1k\xa1v\xa0\xa1t\x90\x91\xa1"
                  "5"),
                &m);
    assert_null(m.invocation_id); /* empty = non-blocking */
    assert_string_equal(m.target, "t");
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x97\x04\x80\xa1"
                  "1\xa1t\x90\x90\xc0"),
                &m);
    assert_int_equal(m.type, SB_HUBMSG_STREAM_INVOCATION);
    assert_string_equal(m.invocation_id, "1");
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x94\x02\x80\xa1"
                  "1\xc0"),
                &m);
    assert_int_equal(m.type, SB_HUBMSG_STREAM_ITEM);
    assert_string_equal(m.invocation_id, "1");
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x94\x03\x80\xa1"
                  "1\x02"),
                &m);
    assert_int_equal(m.type, SB_HUBMSG_COMPLETION);
    assert_false(m.has_result);
    assert_null(m.error);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x95\x03\x80\xa1"
                  "1\x03\xc0"),
                &m);
    assert_true(m.has_result);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x95\x03\x80\xa1"
                  "1\x01\xa1"
                  "e"),
                &m);
    assert_false(m.has_result);
    assert_string_equal(m.error, "e");
    sb_hub_msg_clear(&m);

    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x93\x05\x80\xa1"
                  "1"),
                &m);
    assert_int_equal(m.type, SB_HUBMSG_CANCEL_INVOCATION);
    assert_string_equal(m.invocation_id, "1");
    sb_hub_msg_clear(&m);

    /* Close as the JS client writes it, and as .NET does */
    decode_body(SB_HUBPROTO_MSGPACK, B("\x92\x07\xc0"), &m);
    assert_int_equal(m.type, SB_HUBMSG_CLOSE);
    assert_null(m.error);
    assert_false(m.allow_reconnect);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK,
                B("\x93\x07\xa1"
                  "e\xc3"),
                &m);
    assert_string_equal(m.error, "e");
    assert_true(m.allow_reconnect);
    sb_hub_msg_clear(&m);

    /* any integer width, for the type and the sequence id */
    static const bytes acks[] = {B("\x92\x08\x24"),
                                 B("\x92\x08\xcd\x00\x24"),
                                 B("\x92\x08\xce\x00\x00\x00\x24"),
                                 B("\x92\x08\xcf\x00\x00\x00\x00\x00\x00\x00\x24"),
                                 B("\x92\x08\xd0\x24"),
                                 B("\x92\x08\xd1\x00\x24"),
                                 B("\x92\x08\xd2\x00\x00\x00\x24"),
                                 B("\x92\x08\xd3\x00\x00\x00\x00\x00\x00\x00\x24"),
                                 B("\x92\xcc\x08\x24"),
                                 B("\x92\xd1\x00\x08\x24")};
    for (size_t i = 0; i < sizeof(acks) / sizeof(acks[0]); i++) {
        decode_body(SB_HUBPROTO_MSGPACK, acks[i], &m);
        assert_int_equal(m.type, SB_HUBMSG_ACK);
        assert_int_equal(m.sequence_id, 36);
        sb_hub_msg_clear(&m);
    }
    decode_body(SB_HUBPROTO_MSGPACK, B("\x92\x09\xd0\xfe"), &m);
    assert_int_equal(m.sequence_id, -2);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK, B("\x92\x09\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), &m);
    assert_true(m.sequence_id == INT64_MAX);
    sb_hub_msg_clear(&m);

    /* unknown types are returned whatever follows them; the ping's type in a wider encoding */
    decode_body(SB_HUBPROTO_MSGPACK, B("\x93\x2a\xa1x\x90"), &m);
    assert_int_equal(m.type, 42);
    assert_null(m.target);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK, B("\x91\xff"), &m);
    assert_int_equal(m.type, -1);
    sb_hub_msg_clear(&m);
    decode_body(SB_HUBPROTO_MSGPACK, B("\x91\xcc\x06"), &m);
    assert_int_equal(m.type, SB_HUBMSG_PING);
    sb_hub_msg_clear(&m);
}

static const char bad_text[] = "Strings must be valid UTF-8 without NUL characters.";

static void test_msgpack_decode_errors(void **state) {
    static const char too_few[] = "The message has too few elements for its type.";
    static const char not_int[] = "Expected the message type to be an integer.";
    static const char no_id[] = "Missing required property 'invocationId'.";
    static const struct {
        bytes in;
        const char *err;
    } cases[] = {
        /* not one well-formed value */
        {B(""), "Invalid payload."},
        {B("\xc1"), "Invalid payload."},
        {B("\x91"), "Invalid payload."},
        {B("\x91\x06\x00"), "Invalid payload."},
        {B("\x92\x01\xcf\x00"), "Invalid payload."},
        {B("\x92\x01\xd8\x01"), "Invalid payload."},
        {B("\x92\x01\xd2\x00"), "Invalid payload."},
        {B("\x92\x01\xda\x00"), "Invalid payload."},
        /* declared sizes beyond what the input holds */
        {B("\xdd\xff\xff\xff\xff\x06"), "Invalid payload."},
        {B("\xdf\xff\xff\xff\xff\x06\x06"), "Invalid payload."},
        {B("\xdc\x00\x03\x06\x06"), "Invalid payload."},
        {B("\x95\x01\xdf\x7f\xff\xff\xff\xc0\xa1m\x90"), "Invalid payload."},
        {B("\x95\x01\x80\xc0\xa1m\x91\xdd\xff\xff\xff\xff"), "Invalid payload."},
        {B("\x92\x01\xdb\xff\xff\xff\xff"
           "a"),
         "Invalid payload."},
        {B("\x92\x01\xc6\xff\xff\xff\xff"), "Invalid payload."},
        {B("\x92\x01\xc9\xff\xff\xff\xff\x01"), "Invalid payload."},
        /* the envelope */
        {B("\x06"), "Message is not a non-empty MessagePack array."},
        {B("\x90"), "Message is not a non-empty MessagePack array."},
        {B("\x80"), "Message is not a non-empty MessagePack array."},
        {B("\x91\xa1"
           "1"),
         not_int},
        {B("\x91\xc0"), not_int},
        {B("\x91\xcb\x40\x18\x00\x00\x00\x00\x00\x00"), not_int},
        {B("\x91\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), not_int},
        {B("\x91\xce\x80\x00\x00\x00"), "The message type is out of range."},
        {B("\x91\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), "The message type is out of range."},
        {B("\x94\x01\x80\xc0\xa1m"), too_few},
        {B("\x94\x04\x80\xa1"
           "1\xa1m"),
         too_few},
        {B("\x93\x02\x80\xa1"
           "1"),
         too_few},
        {B("\x93\x03\x80\xa1"
           "1"),
         too_few},
        {B("\x92\x05\x80"), too_few},
        {B("\x91\x07"), too_few},
        {B("\x91\x08"), too_few},
        {B("\x91\x09"), too_few},
        /* Invocation / StreamInvocation */
        {B("\x95\x01\x90\xc0\xa1m\x90"), "Invalid headers."},
        {B("\x95\x01\xc0\xc0\xa1m\x90"), "Invalid headers."},
        {B("\x95\x01\x81\xa1k\x01\xc0\xa1m\x90"), "Invalid headers."},
        {B("\x95\x01\x81\x01\xa1v\xc0\xa1m\x90"), "Invalid headers."},
        {B("\x95\x01\x80\x01\xa1m\x90"), "Expected 'invocationId' to be of type String."},
        {B("\x95\x01\x80\xc0\xc0\x90"), "Missing required property 'target'."},
        {B("\x95\x01\x80\xc0\xa0\x90"), "Missing required property 'target'."},
        {B("\x95\x01\x80\xc0\x01\x90"), "Expected 'target' to be of type String."},
        {B("\x95\x01\x80\xc0\xa1m\x80"), "Expected 'arguments' to be of type Array."},
        {B("\x95\x01\x80\xc0\xa1m\xc0"), "Expected 'arguments' to be of type Array."},
        {B("\x96\x01\x80\xc0\xa1m\x90\x80"), "Expected 'streamIds' to be of type Array."},
        {B("\x96\x01\x80\xc0\xa1m\x90\x91\x01"), "Expected 'streamIds' to contain only strings."},
        {B("\x95\x04\x80\xc0\xa1m\x90"), no_id},
        {B("\x95\x04\x80\xa0\xa1m\x90"), no_id},
        {B("\x95\x01\x80\xc0\xa2m\x00\x90"), bad_text},
        {B("\x95\x01\x80\xc0\xa1\xff\x90"), bad_text},
        {B("\x95\x01\x80\xa3\xed\xa0\x80\xa1m\x90"), bad_text}, /* a UTF-16 surrogate */
        /* StreamItem, Completion, CancelInvocation */
        {B("\x94\x02\x80\xc0\x01"), no_id},
        {B("\x94\x02\x80\x01\x01"), "Expected 'invocationId' to be of type String."},
        {B("\x94\x02\x90\xa1"
           "1\x01"),
         "Invalid headers."},
        {B("\x94\x03\x80\xa1"
           "1\x04"),
         "Invalid invocation result kind."},
        {B("\x94\x03\x80\xa1"
           "1\x00"),
         "Invalid invocation result kind."},
        {B("\x94\x03\x80\xa1"
           "1\xa1x"),
         "Invalid invocation result kind."},
        {B("\x94\x03\x80\xa1"
           "1\x01"),
         "Missing the result of a Completion message."},
        {B("\x94\x03\x80\xa1"
           "1\x03"),
         "Missing the result of a Completion message."},
        {B("\x95\x03\x80\xa1"
           "1\x01\xc0"),
         "Expected 'error' to be of type String."},
        {B("\x95\x03\x80\xa1"
           "1\x01\x01"),
         "Expected 'error' to be of type String."},
        {B("\x95\x03\x80\xa1"
           "1\x01\xa1\xff"),
         bad_text},
        {B("\x94\x03\x80\xc0\x02"), no_id},
        {B("\x93\x05\x80\xc0"), no_id},
        {B("\x93\x05\x80\xa0"), no_id},
        {B("\x93\x05\x80\xa1\x00"), bad_text},
        /* Close, Ack, Sequence */
        {B("\x92\x07\x01"), "Expected 'error' to be of type String."},
        {B("\x93\x07\xc0\xc0"), "Expected 'allowReconnect' to be of type Boolean."},
        {B("\x93\x07\xc0\x01"), "Expected 'allowReconnect' to be of type Boolean."},
        {B("\x92\x08\xa1"
           "1"),
         "Expected 'sequenceId' to be an integer."},
        {B("\x92\x09\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), "Expected 'sequenceId' to be an integer."},
        {B("\x92\x09\xca\x00\x00\x00\x00"), "Expected 'sequenceId' to be an integer."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decode_error(SB_HUBPROTO_MSGPACK, cases[i].in, cases[i].err);
}

/* Arguments are skipped, not interpreted: every MessagePack format must be walked correctly. */
static void test_msgpack_every_format(void **state) {
    static const char body[] = "\x95\x01\x80\xc0\xa1m\xdc\x00\x18"
                               "\xc4\x01\xaa"
                               "\xc5\x00\x01\xaa"
                               "\xc6\x00\x00\x00\x01\xaa"
                               "\xc7\x01\x05\xaa"
                               "\xc8\x00\x01\x05\xaa"
                               "\xc9\x00\x00\x00\x01\x05\xaa"
                               "\xca\x00\x00\x00\x00"
                               "\xcb\x00\x00\x00\x00\x00\x00\x00\x00"
                               "\xd4\x05\xaa"
                               "\xd5\x05\xaa\xaa"
                               "\xd6\x05\x01\x02\x03\x04"
                               "\xd7\x05\x01\x02\x03\x04\x05\x06\x07\x08"
                               "\xd8\x05\x01\x02\x03\x04\x05\x06\x07\x08\x01\x02\x03\x04\x05\x06\x07\x08"
                               "\xd9\x01"
                               "a"
                               "\xda\x00\x01"
                               "a"
                               "\xdb\x00\x00\x00\x01"
                               "a"
                               "\xde\x00\x01\x01\x02"
                               "\xdf\x00\x00\x00\x01\x01\x02"
                               "\xdc\x00\x01\xc0"
                               "\xdd\x00\x00\x00\x01\xc0"
                               "\xc2\xc3\xc0"
                               "\xcd\xff\xff";
    sb_hub_msg m;
    decode_body(SB_HUBPROTO_MSGPACK, (bytes){body, sizeof(body) - 1}, &m);
    assert_int_equal(m.nargs, 24);
    sb_hub_msg_clear(&m);
    /* cut anywhere, it is no longer one whole value */
    for (size_t n = 0; n < sizeof(body) - 1; n++)
        expect_decode_error(SB_HUBPROTO_MSGPACK, (bytes){body, n}, "Invalid payload.");
}

/* Nesting depth costs nothing: no recursion, no allocation per level. */
static void test_msgpack_deep_nesting(void **state) {
    const size_t depth = 200000;
    static const char head[] = "\x95\x01\x80\xc0\xa1m\x91";
    size_t len = sizeof(head) - 1 + depth + 1;
    char *body = sb_malloc(len);
    memcpy(body, head, sizeof(head) - 1);
    memset(body + sizeof(head) - 1, 0x91, depth);
    body[len - 1] = (char)0x90;
    sb_hub_msg m;
    decode_body(SB_HUBPROTO_MSGPACK, (bytes){body, len}, &m);
    assert_int_equal(m.nargs, 1);
    sb_hub_msg_clear(&m);
    /* one level short of closing */
    expect_decode_error(SB_HUBPROTO_MSGPACK, (bytes){body, len - 1}, "Invalid payload.");
    sb_free(body);
}

/* A large but honest array: every element is present. */
static void test_msgpack_many_arguments(void **state) {
    static const char head[] = "\x95\x01\x80\xc0\xa1m\xdc\xff\xff";
    size_t len = sizeof(head) - 1 + 65535;
    char *body = sb_malloc(len);
    memcpy(body, head, sizeof(head) - 1);
    memset(body + sizeof(head) - 1, 0xc0, 65535);
    sb_hub_msg m;
    decode_body(SB_HUBPROTO_MSGPACK, (bytes){body, len}, &m);
    assert_int_equal(m.nargs, 65535);
    sb_hub_msg_clear(&m);
    sb_free(body);
}

/* ---- handshake ------------------------------------------------------------ */

static int parse_handshake(const char *data, size_t len, size_t max_len, size_t *consumed,
                           sb_handshake_req *req, const char **err) {
    return sb_handshake_parse((const uint8_t *)data, len, max_len, consumed, req, err);
}

static void test_handshake_ok(void **state) {
    sb_handshake_req req;
    size_t consumed;
    const char *err;
    static const char json[] = "{\"protocol\":\"json\",\"version\":1}\x1e";
    assert_int_equal(parse_handshake(json, sizeof(json) - 1, 4096, &consumed, &req, &err), SB_OK);
    assert_string_equal(req.protocol, "json");
    assert_int_equal(req.version, 1);
    assert_int_equal(consumed, sizeof(json) - 1);
    assert_null(err);

    /* the first messages may follow in the same read: they are left for the hub protocol */
    static const char mp[] = "{\"version\":2,\"extra\":[1],\"protocol\":\"messagepack\"}\x1e\x02\x91\x06";
    assert_int_equal(parse_handshake(mp, sizeof(mp) - 1, 4096, &consumed, &req, &err), SB_OK);
    assert_string_equal(req.protocol, "messagepack");
    assert_int_equal(req.version, 2);
    assert_int_equal(consumed, sizeof(mp) - 4);

    /* names and versions are the caller's to judge */
    static const char other[] = "{\"protocol\":\"blazorpack\",\"version\":0}\x1e";
    assert_int_equal(parse_handshake(other, sizeof(other) - 1, 4096, &consumed, &req, &err), SB_OK);
    assert_string_equal(req.protocol, "blazorpack");
    assert_int_equal(req.version, 0);
    static const char longest[] = "{\"protocol\":\"0123456789012345678901234567890\",\"version\":1}\x1e";
    assert_int_equal(parse_handshake(longest, sizeof(longest) - 1, 4096, &consumed, &req, &err), SB_OK);
    assert_string_equal(req.protocol, "0123456789012345678901234567890");
}

static void test_handshake_bytewise(void **state) {
    static const char in[] = "{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e";
    const size_t hs_len = strlen("{\"protocol\":\"json\",\"version\":1}\x1e");
    sb_handshake_req req;
    size_t consumed;
    const char *err;
    for (size_t n = 0; n < hs_len; n++) {
        assert_int_equal(parse_handshake(in, n, 4096, &consumed, &req, &err), SB_EAGAIN);
        assert_null(err);
    }
    for (size_t n = hs_len; n < sizeof(in); n++) {
        assert_int_equal(parse_handshake(in, n, 4096, &consumed, &req, &err), SB_OK);
        assert_int_equal(consumed, hs_len);
    }
}

static void test_handshake_invalid(void **state) {
    static const char *const bad[] = {
        "\x1e",
        "not json\x1e",
        "[\"json\",1]\x1e",
        "{\"version\":1}\x1e",
        "{\"protocol\":\"json\"}\x1e",
        "{\"protocol\":null,\"version\":1}\x1e",
        "{\"protocol\":1,\"version\":1}\x1e",
        "{\"protocol\":\"json\",\"version\":\"1\"}\x1e",
        "{\"protocol\":\"json\",\"version\":1.5}\x1e",
        "{\"protocol\":\"json\",\"version\":-1}\x1e",
        "{\"protocol\":\"json\",\"version\":2147483648}\x1e",
        "{\"protocol\":\"01234567890123456789012345678901\",\"version\":1}\x1e",
        "{\"protocol\":\"json\",\"version\":1} trailing\x1e",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sb_handshake_req req;
        size_t consumed = 99;
        const char *err = NULL;
        int rc = parse_handshake(bad[i], strlen(bad[i]), 4096, &consumed, &req, &err);
        if (rc != SB_EPROTO)
            fail_msg("'%s': rc %d", bad[i], rc);
        assert_string_equal(err, "An unexpected error occurred during connection handshake.");
        assert_int_equal(consumed, 0);
    }
}

static void test_handshake_limit(void **state) {
    static const char in[] = "{\"protocol\":\"json\",\"version\":1}\x1e";
    const size_t json_len = sizeof(in) - 2;
    sb_handshake_req req;
    size_t consumed;
    const char *err = NULL;
    /* JSON of exactly max_len bytes is fine */
    assert_int_equal(parse_handshake(in, sizeof(in) - 1, json_len, &consumed, &req, &err), SB_OK);
    /* one byte over, with or without the separator */
    assert_int_equal(parse_handshake(in, sizeof(in) - 1, json_len - 1, &consumed, &req, &err), SB_E2BIG);
    assert_string_equal(err, "An unexpected error occurred during connection handshake.");
    assert_int_equal(parse_handshake(in, json_len, json_len - 1, &consumed, &req, &err), SB_E2BIG);
    /* at the limit without a separator: still waiting */
    err = NULL;
    assert_int_equal(parse_handshake(in, json_len, json_len, &consumed, &req, &err), SB_EAGAIN);
    assert_null(err);
}

static void test_handshake_response(void **state) {
    sb_buf b;
    sb_buf_init(&b);
    sb_handshake_write_response(&b, NULL);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "{}\x1e", 3);
    sb_buf_reset(&b);
    sb_handshake_write_response(&b, "The protocol 'x\"y\\z' is not supported.");
    assert_string_equal(b.data, "{\"error\":\"The protocol 'x\\\"y\\\\z' is not supported.\"}\x1e");
    /* and it is valid JSON that says the same thing */
    json_t *v = json_loadb(b.data, b.len - 1, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "error")),
                        "The protocol 'x\"y\\z' is not supported.");
    json_decref(v);
    sb_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_varint_values),
        cmocka_unit_test(test_varint_invalid),
        cmocka_unit_test(test_split_json),
        cmocka_unit_test(test_split_json_limit),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_split_msgpack),
        cmocka_unit_test(test_split_msgpack_limits),
        cmocka_unit_test(test_bad_protocol),
        cmocka_unit_test(test_msgpack_vectors),
        cmocka_unit_test(test_json_writers_exact),
        cmocka_unit_test(test_msgpack_writers),
        cmocka_unit_test(test_msgpack_argument_conversion),
        cmocka_unit_test(test_msgpack_long_message),
        cmocka_unit_test(test_roundtrip_json),
        cmocka_unit_test(test_roundtrip_msgpack),
        cmocka_unit_test(test_stream_json_bytewise),
        cmocka_unit_test(test_stream_msgpack_bytewise),
        cmocka_unit_test(test_stream_json_whole),
        cmocka_unit_test(test_stream_msgpack_whole),
        cmocka_unit_test(test_json_decode_accepts),
        cmocka_unit_test(test_json_decode_errors),
        cmocka_unit_test(test_msgpack_decode_accepts),
        cmocka_unit_test(test_msgpack_decode_errors),
        cmocka_unit_test(test_msgpack_every_format),
        cmocka_unit_test(test_msgpack_deep_nesting),
        cmocka_unit_test(test_msgpack_many_arguments),
        cmocka_unit_test(test_handshake_ok),
        cmocka_unit_test(test_handshake_bytewise),
        cmocka_unit_test(test_handshake_invalid),
        cmocka_unit_test(test_handshake_limit),
        cmocka_unit_test(test_handshake_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
