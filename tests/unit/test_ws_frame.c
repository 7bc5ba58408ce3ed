/*
 * test_ws_frame.c - RFC 6455 server-side framing (net/ws_frame.c).
 *
 * Frames are built here the way a client masks them, then fed whole, in odd
 * chunk sizes and one byte at a time; every run must yield the same events.
 * Each protocol rule has a test that breaks it and checks the close code the
 * server must send, and that the error is reported at the byte that breaks it
 * (oversized messages before their payload arrives).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws_frame.h"
#include "util/alloc.h"
#include "util/error.h"

static const uint8_t MASK_A[4] = {0x37, 0xFA, 0x21, 0x3D};
static const uint8_t MASK_B[4] = {0x01, 0x80, 0xFE, 0x7F};

/* Append a client frame.  mask NULL sends it unmasked; len_form 16 or 64 forces that length encoding. */
static void put_frame(sb_buf *b, int fin, int rsv, int opcode, const uint8_t *mask, const void *payload,
                      size_t len, int len_form) {
    uint8_t h[14];
    size_t n = 0;
    h[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (opcode & 0x0F));
    uint8_t mbit = mask ? 0x80 : 0;
    if (len_form == 64 || len > 0xFFFF) {
        h[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    } else if (len_form == 16 || len > 125) {
        h[n++] = mbit | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = mbit | (uint8_t)len;
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    sb_buf_append(b, h, n);
    const uint8_t *s = payload;
    for (size_t i = 0; i < len; i++)
        sb_buf_appendc(b, (char)(mask ? s[i] ^ mask[i & 3] : s[i]));
}

static void put(sb_buf *b, int fin, int opcode, const char *text) {
    put_frame(b, fin, 0, opcode, MASK_A, text, strlen(text), 0);
}

typedef struct rec {
    int opcode;
    sb_buf payload;
    uint16_t close_code;
    sb_buf reason;
} rec;

typedef struct run_result {
    rec ev[16];
    int n;
    int rc;              /* SB_EAGAIN when everything was consumed without an error */
    size_t consumed;     /* bytes consumed in total */
    uint16_t close_code; /* p->error_close_code after an error */
} run_result;

static void result_free(run_result *r) {
    for (int i = 0; i < r->n; i++) {
        sb_buf_free(&r->ev[i].payload);
        sb_buf_free(&r->ev[i].reason);
    }
}

/* Feed data in chunks of step bytes (0 = all at once), collecting every event. */
static void run(sb_ws_parser *p, const sb_buf *in, size_t step, run_result *r) {
    memset(r, 0, sizeof(*r));
    const uint8_t *d = (const uint8_t *)in->data;
    size_t off = 0;
    r->rc = SB_EAGAIN;
    while (off < in->len) {
        size_t end = step && off + step < in->len ? off + step : in->len;
        while (off < end) {
            size_t used = 0;
            sb_ws_event ev;
            int rc = sb_ws_parse(p, d + off, end - off, &used, &ev);
            assert_true(used <= end - off);
            off += used;
            r->consumed = off;
            if (rc == SB_EAGAIN) {
                assert_int_equal(off, end);
                break;
            }
            if (rc != SB_OK) {
                r->rc = rc;
                r->close_code = p->error_close_code;
                assert_non_null(p->error);
                return;
            }
            assert_true(r->n < 16);
            rec *e = &r->ev[r->n++];
            e->opcode = ev.opcode;
            sb_buf_init(&e->payload);
            sb_buf_init(&e->reason);
            assert_non_null(ev.payload.base);
            sb_buf_append(&e->payload, ev.payload.base, ev.payload.len);
            sb_buf_append(&e->reason, ev.close_reason.base, ev.close_reason.len);
            e->close_code = ev.close_code;
        }
    }
}

/* Run in every chunking that matters and check they agree; leaves the whole-buffer result in r. */
static void run_all_ways(const sb_buf *in, size_t max_message, run_result *r) {
    static const size_t steps[] = {1, 2, 3, 5, 7, 13, 64};
    sb_ws_parser p;
    sb_ws_parser_init(&p, max_message);
    run(&p, in, 0, r);
    sb_ws_parser_free(&p);
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        run_result o;
        sb_ws_parser_init(&p, max_message);
        run(&p, in, steps[s], &o);
        sb_ws_parser_free(&p);
        assert_int_equal(o.rc, r->rc);
        assert_int_equal(o.close_code, r->close_code);
        assert_int_equal(o.n, r->n);
        for (int i = 0; i < r->n; i++) {
            assert_int_equal(o.ev[i].opcode, r->ev[i].opcode);
            assert_int_equal(o.ev[i].payload.len, r->ev[i].payload.len);
            assert_memory_equal(o.ev[i].payload.data, r->ev[i].payload.data, r->ev[i].payload.len);
            assert_int_equal(o.ev[i].close_code, r->ev[i].close_code);
        }
        result_free(&o);
    }
}

/* Expect exactly one error with this code and close code, whatever the chunking. */
static void expect_error(const sb_buf *in, size_t max_message, int rc, uint16_t close_code) {
    run_result r;
    run_all_ways(in, max_message, &r);
    assert_int_equal(r.rc, rc);
    assert_int_equal(r.close_code, close_code);
    result_free(&r);
}

static void expect_protocol_error(const sb_buf *in) {
    expect_error(in, 1 << 20, SB_EPROTO, SB_WS_CLOSE_PROTOCOL_ERROR);
}

/* ---- handshake ---------------------------------------------------------- */

static void test_accept_key_rfc_vector(void **state) {
    (void)state;
    char out[29];
    sb_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* A key too long for the stack buffer takes the heap path and still hashes all of it. */
    char key[200];
    memset(key, 'k', sizeof(key));
    char a[29], b[29];
    sb_ws_accept_key(key, sizeof(key), a);
    key[199] = 'x';
    sb_ws_accept_key(key, sizeof(key), b);
    assert_int_equal(strlen(a), 28);
    assert_string_not_equal(a, b);
}

/* ---- well-formed input -------------------------------------------------- */

static void test_rfc_masked_hello(void **state) {
    (void)state;
    /* RFC 6455 5.7: a single-frame masked text message containing "Hello". */
    static const uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    sb_ws_parser p;
    sb_ws_parser_init(&p, 1024);
    size_t used;
    sb_ws_event ev;
    assert_int_equal(sb_ws_parse(&p, f, sizeof(f), &used, &ev), SB_OK);
    assert_int_equal(used, sizeof(f));
    assert_int_equal(ev.opcode, SB_WS_OP_TEXT);
    assert_int_equal(ev.payload.len, 5);
    assert_memory_equal(ev.payload.base, "Hello", 5);
    assert_int_equal(sb_ws_parse(&p, f, 0, &used, &ev), SB_EAGAIN);
    assert_int_equal(used, 0);
    sb_ws_parser_free(&p);
}

static void test_consumed_stops_at_each_event(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put(&in, 1, SB_WS_OP_TEXT, "first");
    size_t first_len = in.len;
    put(&in, 1, SB_WS_OP_BINARY, "second");
    sb_ws_parser p;
    sb_ws_parser_init(&p, 1024);
    size_t used;
    sb_ws_event ev;
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, in.len, &used, &ev), SB_OK);
    assert_int_equal(used, first_len);
    assert_int_equal(ev.opcode, SB_WS_OP_TEXT);
    assert_true(sb_slice_eq(ev.payload, "first"));
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data + used, in.len - used, &used, &ev), SB_OK);
    assert_int_equal(used, in.len - first_len);
    assert_int_equal(ev.opcode, SB_WS_OP_BINARY);
    assert_true(sb_slice_eq(ev.payload, "second"));
    sb_ws_parser_free(&p);
    sb_buf_free(&in);
}

static void test_fragmented_message_with_different_masks(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put_frame(&in, 0, 0, SB_WS_OP_TEXT, MASK_A, "Hel", 3, 0);
    put_frame(&in, 0, 0, SB_WS_OP_CONT, MASK_B, "lo, ", 4, 16);
    put_frame(&in, 0, 0, SB_WS_OP_CONT, MASK_A, "", 0, 0);
    put_frame(&in, 1, 0, SB_WS_OP_CONT, MASK_B, "world", 5, 64);
    run_result r;
    run_all_ways(&in, 1024, &r);
    assert_int_equal(r.rc, SB_EAGAIN);
    assert_int_equal(r.consumed, in.len);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].opcode, SB_WS_OP_TEXT);
    assert_string_equal(r.ev[0].payload.data, "Hello, world");
    result_free(&r);
    sb_buf_free(&in);
}

static void test_control_frames_interleaved(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put(&in, 0, SB_WS_OP_BINARY, "ab");
    put(&in, 1, SB_WS_OP_PING, "ping!");
    put(&in, 0, SB_WS_OP_CONT, "cd");
    put(&in, 1, SB_WS_OP_PONG, "");
    put(&in, 1, SB_WS_OP_CONT, "ef");
    put(&in, 1, SB_WS_OP_TEXT, "next");
    run_result r;
    run_all_ways(&in, 1024, &r);
    assert_int_equal(r.rc, SB_EAGAIN);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.ev[0].opcode, SB_WS_OP_PING);
    assert_string_equal(r.ev[0].payload.data, "ping!");
    assert_int_equal(r.ev[1].opcode, SB_WS_OP_PONG);
    assert_int_equal(r.ev[1].payload.len, 0);
    assert_int_equal(r.ev[2].opcode, SB_WS_OP_BINARY);
    assert_string_equal(r.ev[2].payload.data, "abcdef");
    assert_int_equal(r.ev[3].opcode, SB_WS_OP_TEXT);
    assert_string_equal(r.ev[3].payload.data, "next");
    result_free(&r);
    sb_buf_free(&in);
}

static void test_lengths_16_and_64_bit(void **state) {
    (void)state;
    size_t sizes[] = {0, 1, 125, 126, 127, 300, 65535, 65536, 70001};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *payload = sb_malloc(n + 1);
        for (size_t j = 0; j < n; j++)
            payload[j] = (uint8_t)(j * 31 + 7);
        for (int form = 0; form <= 64; form += form ? 48 : 16) {
            sb_buf in;
            sb_buf_init(&in);
            put_frame(&in, 1, 0, SB_WS_OP_BINARY, MASK_B, payload, n, form);
            sb_ws_parser p;
            sb_ws_parser_init(&p, 1 << 20);
            run_result r;
            run(&p, &in, n > 1000 ? 0 : 1, &r); /* byte-at-a-time for the small ones */
            assert_int_equal(r.rc, SB_EAGAIN);
            assert_int_equal(r.n, 1);
            assert_int_equal(r.ev[0].payload.len, n);
            assert_memory_equal(r.ev[0].payload.data, payload, n);
            result_free(&r);
            sb_ws_parser_free(&p);
            sb_buf_free(&in);
        }
        sb_free(payload);
    }
}

static void test_unmask_every_alignment(void **state) {
    (void)state;
    /* Split a frame at every payload offset so the word-at-a-time unmask starts at each mask phase. */
    uint8_t payload[100];
    for (size_t j = 0; j < sizeof(payload); j++)
        payload[j] = (uint8_t)(255 - j);
    sb_buf in;
    sb_buf_init(&in);
    put_frame(&in, 1, 0, SB_WS_OP_BINARY, MASK_A, payload, sizeof(payload), 0);
    size_t hdr = in.len - sizeof(payload);
    for (size_t cut = hdr; cut <= in.len; cut++) {
        sb_ws_parser p;
        sb_ws_parser_init(&p, 1024);
        size_t used;
        sb_ws_event ev;
        if (cut < in.len) {
            assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, cut, &used, &ev), SB_EAGAIN);
            assert_int_equal(used, cut);
        }
        size_t rest = cut < in.len ? cut : 0;
        assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data + rest, in.len - rest, &used, &ev), SB_OK);
        assert_int_equal(ev.payload.len, sizeof(payload));
        assert_memory_equal(ev.payload.base, payload, sizeof(payload));
        sb_ws_parser_free(&p);
    }
    sb_buf_free(&in);
}

static void test_message_buffer_reused_after_delivery(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put(&in, 1, SB_WS_OP_TEXT, "a fairly long first message");
    put(&in, 1, SB_WS_OP_TEXT, "short");
    put(&in, 1, SB_WS_OP_TEXT, "");
    run_result r;
    run_all_ways(&in, 64, &r);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.ev[1].payload.data, "short");
    assert_int_equal(r.ev[2].payload.len, 0);
    result_free(&r);
    sb_buf_free(&in);

    /* A large message's buffer is not kept once the next call starts. */
    size_t big = 200 * 1024;
    char *payload = sb_calloc(1, big);
    sb_buf_init(&in);
    put_frame(&in, 1, 0, SB_WS_OP_BINARY, MASK_A, payload, big, 0);
    sb_ws_parser p;
    sb_ws_parser_init(&p, big);
    size_t used;
    sb_ws_event ev;
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, in.len, &used, &ev), SB_OK);
    assert_int_equal(ev.payload.len, big);
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, 0, &used, &ev), SB_EAGAIN);
    assert_true(p.msg.cap < big);
    sb_ws_parser_free(&p);
    sb_free(payload);
    sb_buf_free(&in);
}

/* ---- protocol errors ---------------------------------------------------- */

static void test_unmasked_frame(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put_frame(&in, 1, 0, SB_WS_OP_TEXT, NULL, "Hello", 5, 0);
    expect_protocol_error(&in);
    /* Detected at the second byte, before the payload. */
    sb_ws_parser p;
    sb_ws_parser_init(&p, 1024);
    size_t used;
    sb_ws_event ev;
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, 2, &used, &ev), SB_EPROTO);
    /* Errors are sticky. */
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, in.len, &used, &ev), SB_EPROTO);
    assert_int_equal(used, 0);
    sb_ws_parser_free(&p);
    sb_buf_free(&in);
}

static void test_reserved_bits(void **state) {
    (void)state;
    for (int rsv = 1; rsv < 8; rsv++) {
        sb_buf in;
        sb_buf_init(&in);
        put_frame(&in, 1, rsv, SB_WS_OP_TEXT, MASK_A, "x", 1, 0);
        expect_protocol_error(&in);
        sb_buf_free(&in);
    }
}

static void test_unknown_opcodes(void **state) {
    (void)state;
    static const int ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        sb_buf in;
        sb_buf_init(&in);
        put_frame(&in, 1, 0, ops[i], MASK_A, "x", 1, 0);
        expect_protocol_error(&in);
        sb_buf_free(&in);
    }
}

static void test_control_frame_rules(void **state) {
    (void)state;
    static const int ops[] = {SB_WS_OP_CLOSE, SB_WS_OP_PING, SB_WS_OP_PONG};
    char big[126];
    memset(big, 'p', sizeof(big));
    for (size_t i = 0; i < 3; i++) {
        sb_buf in;
        sb_buf_init(&in);
        put_frame(&in, 0, 0, ops[i], MASK_A, "", 0, 0); /* not FIN */
        expect_protocol_error(&in);
        sb_buf_reset(&in);
        put_frame(&in, 1, 0, ops[i], MASK_A, big, 126, 0); /* > 125 bytes */
        expect_protocol_error(&in);
        sb_buf_reset(&in);
        put_frame(&in, 1, 0, ops[i], MASK_A, big, 5, 16); /* short, but in the 16-bit form */
        expect_protocol_error(&in);
        sb_buf_free(&in);
    }
    /* 125 bytes is the largest allowed. */
    sb_buf in;
    sb_buf_init(&in);
    put_frame(&in, 1, 0, SB_WS_OP_PING, MASK_A, big, 125, 0);
    run_result r;
    run_all_ways(&in, 16, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].payload.len, 125);
    result_free(&r);
    sb_buf_free(&in);
}

static void test_fragmentation_errors(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put(&in, 1, SB_WS_OP_CONT, "orphan");
    expect_protocol_error(&in);

    sb_buf_reset(&in);
    put(&in, 0, SB_WS_OP_TEXT, "start");
    put(&in, 1, SB_WS_OP_TEXT, "again");
    expect_protocol_error(&in);

    sb_buf_reset(&in);
    put(&in, 0, SB_WS_OP_BINARY, "start");
    put(&in, 1, SB_WS_OP_CONT, "end");
    put(&in, 1, SB_WS_OP_CONT, "one too many");
    run_result r;
    run_all_ways(&in, 1024, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.rc, SB_EPROTO);
    assert_int_equal(r.close_code, SB_WS_CLOSE_PROTOCOL_ERROR);
    result_free(&r);
    sb_buf_free(&in);
}

static void test_64bit_length_msb(void **state) {
    (void)state;
    static const uint8_t f[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    sb_buf in;
    sb_buf_init(&in);
    sb_buf_append(&in, f, sizeof(f));
    expect_protocol_error(&in);
    sb_buf_free(&in);
}

static void test_message_too_big(void **state) {
    (void)state;
    char payload[101];
    memset(payload, 'a', sizeof(payload));
    sb_buf in;
    sb_buf_init(&in);
    put_frame(&in, 1, 0, SB_WS_OP_TEXT, MASK_A, payload, 100, 0);
    run_result r;
    run_all_ways(&in, 100, &r); /* exactly the limit is fine */
    assert_int_equal(r.n, 1);
    result_free(&r);

    sb_buf_reset(&in);
    put_frame(&in, 1, 0, SB_WS_OP_TEXT, MASK_A, payload, 101, 0);
    expect_error(&in, 100, SB_E2BIG, SB_WS_CLOSE_TOO_BIG);
    /* Announced in the header: refused before a single payload byte is fed. */
    sb_ws_parser p;
    sb_ws_parser_init(&p, 100);
    size_t used;
    sb_ws_event ev;
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, 6, &used, &ev), SB_E2BIG);
    assert_int_equal(p.error_close_code, SB_WS_CLOSE_TOO_BIG);
    assert_int_equal(p.msg.len, 0);
    sb_ws_parser_free(&p);

    /* A huge 64-bit announcement, without the data. */
    static const uint8_t huge[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4};
    sb_ws_parser_init(&p, 1 << 20);
    assert_int_equal(sb_ws_parse(&p, huge, sizeof(huge), &used, &ev), SB_E2BIG);
    sb_ws_parser_free(&p);

    /* Fragments that only add up to too much: caught at the header of the one that crosses. */
    sb_buf_reset(&in);
    put_frame(&in, 0, 0, SB_WS_OP_BINARY, MASK_A, payload, 60, 0);
    size_t first = in.len;
    put_frame(&in, 1, 0, SB_WS_OP_CONT, MASK_B, payload, 41, 0);
    expect_error(&in, 100, SB_E2BIG, SB_WS_CLOSE_TOO_BIG);
    sb_ws_parser_init(&p, 100);
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, first + 6, &used, &ev), SB_E2BIG);
    sb_ws_parser_free(&p);

    /* Control frames do not count against the message being reassembled. */
    sb_buf_reset(&in);
    put_frame(&in, 0, 0, SB_WS_OP_BINARY, MASK_A, payload, 60, 0);
    put_frame(&in, 1, 0, SB_WS_OP_PING, MASK_A, payload, 100, 0);
    put_frame(&in, 1, 0, SB_WS_OP_CONT, MASK_B, payload, 40, 0);
    run_all_ways(&in, 100, &r);
    assert_int_equal(r.rc, SB_EAGAIN);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[1].payload.len, 100);
    result_free(&r);
    sb_buf_free(&in);
}

/* ---- UTF-8 -------------------------------------------------------------- */

static void test_text_must_be_utf8(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put(&in, 1, SB_WS_OP_TEXT, "bad \xC0\xAF here");
    expect_error(&in, 1024, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA);

    /* Binary messages are not text. */
    sb_buf_reset(&in);
    put(&in, 1, SB_WS_OP_BINARY, "bad \xC0\xAF here");
    run_result r;
    run_all_ways(&in, 1024, &r);
    assert_int_equal(r.n, 1);
    result_free(&r);

    /* A character split across fragments (with a ping in between) is fine. */
    sb_buf_reset(&in);
    put(&in, 0, SB_WS_OP_TEXT, "euro \xE2");
    put(&in, 1, SB_WS_OP_PING, "\xFF not text");
    put(&in, 0, SB_WS_OP_CONT, "\x82");
    put(&in, 1, SB_WS_OP_CONT, "\xAC!");
    run_all_ways(&in, 1024, &r);
    assert_int_equal(r.rc, SB_EAGAIN);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.ev[1].payload.data, "euro \xE2\x82\xAC!");
    result_free(&r);

    /* Ending inside a character is invalid even though every byte so far was acceptable. */
    sb_buf_reset(&in);
    put(&in, 0, SB_WS_OP_TEXT, "cut ");
    put(&in, 1, SB_WS_OP_CONT, "\xF0\x9F\x98");
    expect_error(&in, 1024, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA);
    sb_buf_free(&in);
}

static void test_bad_utf8_reported_before_message_ends(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    put(&in, 0, SB_WS_OP_TEXT, "fine");
    put(&in, 0, SB_WS_OP_CONT, "\xED\xA0\x80"); /* a surrogate */
    sb_ws_parser p;
    sb_ws_parser_init(&p, 1024);
    size_t used;
    sb_ws_event ev;
    /* No final fragment has been sent, yet the error is already reported. */
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, in.len, &used, &ev), SB_EUTF8);
    assert_int_equal(p.error_close_code, SB_WS_CLOSE_INVALID_DATA);
    assert_int_equal(sb_ws_parse(&p, (uint8_t *)in.data, in.len, &used, &ev), SB_EUTF8);
    sb_ws_parser_free(&p);
    sb_buf_free(&in);
}

/* ---- close frames ------------------------------------------------------- */

static void put_close(sb_buf *in, unsigned code, const char *reason) {
    uint8_t body[125] = {(uint8_t)(code >> 8), (uint8_t)code};
    size_t n = strlen(reason);
    memcpy(body + 2, reason, n);
    put_frame(in, 1, 0, SB_WS_OP_CLOSE, MASK_B, body, n + 2, 0);
}

static void test_close_frames(void **state) {
    (void)state;
    sb_buf in;
    sb_buf_init(&in);
    run_result r;

    put_frame(&in, 1, 0, SB_WS_OP_CLOSE, MASK_A, "", 0, 0);
    run_all_ways(&in, 1024, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].opcode, SB_WS_OP_CLOSE);
    assert_int_equal(r.ev[0].close_code, SB_WS_CLOSE_NO_STATUS);
    assert_int_equal(r.ev[0].reason.len, 0);
    result_free(&r);

    sb_buf_reset(&in);
    put_close(&in, 1000, "bye \xC3\xA9");
    run_all_ways(&in, 1024, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].close_code, 1000);
    assert_string_equal(r.ev[0].reason.data, "bye \xC3\xA9");
    assert_int_equal(r.ev[0].payload.len, 2 + 6);
    result_free(&r);

    sb_buf_reset(&in);
    /* 0x0F would read as code 3840 (valid) if the missing second byte were taken as 0. */
    put_frame(&in, 1, 0, SB_WS_OP_CLOSE, MASK_A, "\x0F", 1, 0);
    expect_protocol_error(&in);

    sb_buf_reset(&in);
    put_close(&in, 1000, "\xFF");
    expect_error(&in, 1024, SB_EUTF8, SB_WS_CLOSE_INVALID_DATA);
    sb_buf_free(&in);
}

static void test_close_codes(void **state) {
    (void)state;
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                     1010, 1011, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1012,
                                       1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        sb_buf in;
        sb_buf_init(&in);
        put_close(&in, valid[i], "");
        run_result r;
        run_all_ways(&in, 1024, &r);
        assert_int_equal(r.rc, SB_EAGAIN);
        assert_int_equal(r.n, 1);
        assert_int_equal(r.ev[0].close_code, valid[i]);
        result_free(&r);
        sb_buf_free(&in);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        sb_buf in;
        sb_buf_init(&in);
        put_close(&in, invalid[i], "why");
        expect_protocol_error(&in);
        sb_buf_free(&in);
    }
}

/* ---- encoder ------------------------------------------------------------ */

static void test_frame_header_lengths(void **state) {
    (void)state;
    uint8_t h[10];
    assert_int_equal(sb_ws_frame_header(h, SB_WS_OP_TEXT, 0), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 0);
    assert_int_equal(sb_ws_frame_header(h, SB_WS_OP_BINARY, 125), 2);
    assert_int_equal(h[0], 0x82);
    assert_int_equal(h[1], 125);
    assert_int_equal(sb_ws_frame_header(h, SB_WS_OP_TEXT, 126), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2], 0);
    assert_int_equal(h[3], 126);
    assert_int_equal(sb_ws_frame_header(h, SB_WS_OP_TEXT, 65535), 4);
    assert_int_equal(h[2], 0xFF);
    assert_int_equal(h[3], 0xFF);
    assert_int_equal(sb_ws_frame_header(h, SB_WS_OP_TEXT, 65536), 10);
    assert_int_equal(h[1], 127);
    static const uint8_t l65536[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(h + 2, l65536, 8);
    assert_int_equal(sb_ws_frame_header(h, SB_WS_OP_PONG, 0x0102030405060708ull), 10);
    assert_int_equal(h[0], 0x8A);
    static const uint8_t lbig[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(h + 2, lbig, 8);
}

static void test_frame_build(void **state) {
    (void)state;
    sb_shbuf *s = sb_ws_frame_build(SB_WS_OP_TEXT, "hi", 2);
    assert_int_equal(s->refs, 1);
    assert_int_equal(s->len, 4);
    assert_memory_equal(s->data, "\x81\x02hi", 4);
    sb_shbuf_unref(s);

    char *big = sb_malloc(300);
    memset(big, 'z', 300);
    s = sb_ws_frame_build(SB_WS_OP_BINARY, big, 300);
    assert_int_equal(s->len, 304);
    assert_memory_equal(s->data, "\x82\x7E\x01\x2C", 4);
    assert_memory_equal(s->data + 4, big, 300);
    sb_shbuf_unref(s);
    sb_free(big);

    s = sb_ws_frame_build(SB_WS_OP_PING, NULL, 0);
    assert_int_equal(s->len, 2);
    assert_memory_equal(s->data, "\x89\x00", 2);
    sb_shbuf_unref(s);
}

static void test_close_frame_encoder(void **state) {
    (void)state;
    sb_shbuf *s = sb_ws_close_frame(1000, "bye");
    assert_int_equal(s->len, 7);
    static const uint8_t bye[] = {0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'};
    assert_memory_equal(s->data, bye, sizeof(bye));
    sb_shbuf_unref(s);

    s = sb_ws_close_frame(SB_WS_CLOSE_POLICY, NULL);
    assert_int_equal(s->len, 4);
    assert_memory_equal(s->data, "\x88\x02\x03\xF0", 4);
    sb_shbuf_unref(s);

    s = sb_ws_close_frame(SB_WS_CLOSE_NO_STATUS, "ignored");
    assert_int_equal(s->len, 2);
    assert_memory_equal(s->data, "\x88\x00", 2);
    sb_shbuf_unref(s);

    /* ASCII reason longer than 123 bytes: cut to exactly 125 bytes of payload. */
    char reason[200];
    memset(reason, 'r', 199);
    reason[199] = '\0';
    s = sb_ws_close_frame(1011, reason);
    assert_int_equal(s->len, 2 + 125);
    assert_int_equal((uint8_t)s->data[1], 125);
    sb_shbuf_unref(s);

    /* A 2-byte character straddling the 123-byte cut is dropped whole. */
    memset(reason, 'r', 122);
    strcpy(reason + 122, "\xC3\xA9 and more text");
    s = sb_ws_close_frame(1011, reason);
    assert_int_equal((uint8_t)s->data[1], 2 + 122);
    assert_int_equal(s->len, 2 + 2 + 122);
    sb_shbuf_unref(s);

    /* A 4-byte character ending exactly at the cut is kept. */
    memset(reason, 'r', 119);
    strcpy(reason + 119, "\xF0\x9F\x98\x80tail");
    s = sb_ws_close_frame(1011, reason);
    assert_int_equal((uint8_t)s->data[1], 125);
    assert_memory_equal(s->data + 2 + 2 + 119, "\xF0\x9F\x98\x80", 4);
    sb_shbuf_unref(s);

    /* Whatever is produced parses back as a valid close frame once masked. */
    memset(reason, 'r', 121);
    strcpy(reason + 121, "\xE2\x82\xAC\xE2\x82\xAC");
    s = sb_ws_close_frame(4000, reason);
    size_t n = (uint8_t)s->data[1];
    sb_buf in;
    sb_buf_init(&in);
    put_frame(&in, 1, 0, SB_WS_OP_CLOSE, MASK_A, s->data + 2, n, 0);
    run_result r;
    run_all_ways(&in, 16, &r);
    assert_int_equal(r.rc, SB_EAGAIN);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].close_code, 4000);
    assert_int_equal(r.ev[0].reason.len, 121);
    result_free(&r);
    sb_buf_free(&in);
    sb_shbuf_unref(s);
}

/* Feed in one byte at a time; idle[i] is sb_ws_parser_idle() after byte i (and at the start). */
static void idle_trace(sb_ws_parser *p, const sb_buf *in, int *idle, int *last_rc) {
    idle[0] = sb_ws_parser_idle(p);
    for (size_t i = 0; i < in->len; i++) {
        size_t used = 0;
        sb_ws_event ev;
        *last_rc = sb_ws_parse(p, (const uint8_t *)in->data + i, 1, &used, &ev);
        assert_int_equal(used, 1);
        idle[i + 1] = sb_ws_parser_idle(p);
    }
}

static void test_idle_only_between_frames_without_a_message(void **state) {
    (void)state;
    /* A whole message, a fragmented one with a ping inside it, then a pong. */
    sb_buf in;
    sb_buf_init(&in);
    put(&in, 1, SB_WS_OP_TEXT, "whole");
    size_t end_whole = in.len;
    put(&in, 0, SB_WS_OP_TEXT, "frag");
    size_t end_first = in.len;
    put(&in, 1, SB_WS_OP_PING, "p");
    size_t end_ping = in.len;
    put(&in, 1, SB_WS_OP_CONT, "ment");
    size_t end_message = in.len;
    put(&in, 1, SB_WS_OP_PONG, "");
    int *idle = sb_calloc(in.len + 1, sizeof(int));
    sb_ws_parser p;
    sb_ws_parser_init(&p, 1024);
    int rc = 0;
    idle_trace(&p, &in, idle, &rc);
    assert_int_equal(rc, SB_OK); /* the pong */
    for (size_t i = 0; i <= in.len; i++) {
        int boundary = i == 0 || i == end_whole || i == end_message || i == in.len;
        if (idle[i] != boundary)
            fail_msg("after byte %zu: idle %d, expected %d", i, idle[i], boundary);
    }
    /* inside the fragmented message, even at frame boundaries, the parser holds the message */
    assert_int_equal(idle[end_first], 0);
    assert_int_equal(idle[end_ping], 0);
    sb_ws_parser_free(&p);
    sb_free(idle);
    sb_buf_free(&in);
}

static void test_not_idle_after_an_error(void **state) {
    (void)state;
    static const uint8_t unmasked[] = {0x81, 0x01, 'x'};
    sb_ws_parser p;
    sb_ws_parser_init(&p, 1024);
    size_t used;
    sb_ws_event ev;
    assert_int_equal(sb_ws_parse(&p, unmasked, sizeof unmasked, &used, &ev), SB_EPROTO);
    /* the error must survive until the caller has read the close code: never freed as idle */
    assert_int_equal(sb_ws_parser_idle(&p), 0);
    sb_ws_parser_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_rfc_vector),
        cmocka_unit_test(test_rfc_masked_hello),
        cmocka_unit_test(test_consumed_stops_at_each_event),
        cmocka_unit_test(test_fragmented_message_with_different_masks),
        cmocka_unit_test(test_control_frames_interleaved),
        cmocka_unit_test(test_lengths_16_and_64_bit),
        cmocka_unit_test(test_unmask_every_alignment),
        cmocka_unit_test(test_message_buffer_reused_after_delivery),
        cmocka_unit_test(test_unmasked_frame),
        cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_unknown_opcodes),
        cmocka_unit_test(test_control_frame_rules),
        cmocka_unit_test(test_fragmentation_errors),
        cmocka_unit_test(test_64bit_length_msb),
        cmocka_unit_test(test_message_too_big),
        cmocka_unit_test(test_text_must_be_utf8),
        cmocka_unit_test(test_bad_utf8_reported_before_message_ends),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_frame_header_lengths),
        cmocka_unit_test(test_frame_build),
        cmocka_unit_test(test_close_frame_encoder),
        cmocka_unit_test(test_idle_only_between_frames_without_a_message),
        cmocka_unit_test(test_not_idle_after_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
