/*
 * selftest.c - `loadgen --self-test`: checks the I/O-free parts the numbers
 * depend on (stamp scanner, frame parser, response parser, histogram) before a
 * benchmark trusts them.  bench/run.sh --smoke runs it first.
 *
 * Each input is fed whole, then split at every position, then one byte at a
 * time: splits are where streaming parsers break.  A failed check prints both
 * sides and the run exits non-zero.
 */
#include <stdio.h>
#include <string.h>

#include "loadgen.h"
#include "net/ws_frame.h"
#include "util/error.h"

static int failures;

#define CHECK_EQ(what, got, want)                                                                            \
    do {                                                                                                     \
        unsigned long long g_ = (unsigned long long)(got), w_ = (unsigned long long)(want);                  \
        if (g_ != w_) {                                                                                      \
            fprintf(stderr, "self-test: %s:%d %s: got %llu, want %llu\n", __FILE__, __LINE__, what, g_, w_); \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* ---- stamps ----------------------------------------------------------------------------------- */

typedef struct stamps {
    int n;
    uint64_t ts[8];
    uint32_t seq[8];
} stamps;

static void on_stamp(void *arg, uint64_t ts, uint32_t seq) {
    stamps *s = arg;
    if (s->n < 8) {
        s->ts[s->n] = ts;
        s->seq[s->n] = seq;
    }
    s->n++;
}

static void scan_split(const uint8_t *p, size_t n, size_t step, stamps *out) {
    sb_lg_scan sc = {0};
    memset(out, 0, sizeof *out);
    for (size_t off = 0; off < n; off += step)
        sb_lg_scan_feed(&sc, p + off, off + step <= n ? step : n - off, on_stamp, out);
}

static void test_stamps(void) {
    char pay[64];
    sb_lg_payload_init(pay, sizeof pay);
    CHECK_EQ("padding", pay[63], 'x');
    sb_lg_payload_stamp(pay, 0x0123456789abcdefull, 0xfedcba98u);
    char msg[256];
    /* a JSON invocation carrying two stamps, with decoys: a lone '~', "~L" then non-hex, "~LG" short */
    int len = snprintf(msg, sizeof msg, "{\"a\":\"~x~L~LGzz\",\"arguments\":[\"%.64s\",\"~~LG%.*s\"]}\x1e",
                       pay, 24, pay + 3);
    for (size_t step = 1; step <= (size_t)len; step++) {
        stamps s;
        scan_split((const uint8_t *)msg, (size_t)len, step, &s);
        CHECK_EQ("stamps found", s.n, 2);
        CHECK_EQ("ts", s.ts[0], 0x0123456789abcdefull);
        CHECK_EQ("seq", s.seq[0], 0xfedcba98u);
        CHECK_EQ("second ts", s.ts[1], 0x0123456789abcdefull);
    }
    /* a stamp cut short by the end of a message does not leak into the next one's digits */
    const char *cut = "~LG0123\"]}~LG00000000000000010000000a";
    stamps s;
    scan_split((const uint8_t *)cut, strlen(cut), 1, &s);
    CHECK_EQ("cut stamp dropped", s.n, 1);
    CHECK_EQ("next ts", s.ts[0], 1);
    CHECK_EQ("next seq", s.seq[0], 10);
}

/* ---- frames ----------------------------------------------------------------------------------- */

typedef struct frames {
    size_t data;
    int controls, last_control;
    uint8_t ctl[125];
    size_t ctl_len;
    stamps st;
    sb_lg_scan sc;
} frames;

static void f_data(void *arg, const uint8_t *p, size_t n) {
    frames *f = arg;
    f->data += n;
    sb_lg_scan_feed(&f->sc, p, n, on_stamp, &f->st);
}

static void f_control(void *arg, int opcode, const uint8_t *p, size_t n) {
    frames *f = arg;
    f->controls++;
    f->last_control = opcode;
    memcpy(f->ctl, p, n);
    f->ctl_len = n;
}

static size_t server_frame(uint8_t *out, int opcode, int fin, const void *p, size_t n) {
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[h++] = (uint8_t)n;
    } else if (n < 65536) {
        out[h++] = 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    memcpy(out + h, p, n);
    return h + n;
}

static void test_frames(void) {
    static uint8_t stream[200000];
    static char big[70000];
    sb_lg_payload_init(big, sizeof big);
    sb_lg_payload_stamp(big, 77, 5);
    char small[40];
    sb_lg_payload_init(small, sizeof small);
    sb_lg_payload_stamp(small, 1, 2);
    size_t n = 0;
    n += server_frame(stream + n, SB_WS_OP_TEXT, 1, small, sizeof small); /* 7-bit length */
    n += server_frame(stream + n, SB_WS_OP_PING, 1, "hi", 2);             /* control between data */
    n += server_frame(stream + n, SB_WS_OP_BINARY, 0, big, 300);          /* 16-bit, fragmented */
    n += server_frame(stream + n, SB_WS_OP_CONT, 1, big + 300, 1000);
    n += server_frame(stream + n, SB_WS_OP_TEXT, 1, big, sizeof big); /* 64-bit length */
    n += server_frame(stream + n, SB_WS_OP_TEXT, 1, "", 0);           /* empty */
    n += server_frame(stream + n, SB_WS_OP_CLOSE, 1,
                      "\x03\xe8"
                      "bye",
                      5);
    size_t steps[] = {n, 1, 2, 3, 7, 125, 4096};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        sb_lg_wsrx rx;
        memset(&rx, 0, sizeof rx);
        frames f;
        memset(&f, 0, sizeof f);
        sb_lg_ws_handler h = {f_data, f_control};
        int rc = SB_OK;
        for (size_t off = 0; off < n && rc == SB_OK; off += steps[k])
            rc = sb_lg_ws_feed(&rx, stream + off, off + steps[k] <= n ? steps[k] : n - off, &h, &f);
        CHECK_EQ("feed", rc, SB_OK);
        CHECK_EQ("data bytes", f.data, sizeof small + 1300 + sizeof big);
        CHECK_EQ("controls", f.controls, 2);
        CHECK_EQ("last control", f.last_control, SB_WS_OP_CLOSE);
        CHECK_EQ("close payload", f.ctl_len, 5);
        CHECK_EQ("stamps", f.st.n, 3);
        CHECK_EQ("stamp 2 seq", f.st.seq[2], 5);
        CHECK_EQ("no block left", rx.ctl == NULL, 1);
        sb_lg_ws_free(&rx);
    }
    /* frames no server may send */
    static const uint8_t bad[][4] = {
        {0x81, 0x80, 0, 0},   /* masked */
        {0xc1, 0x00, 0, 0},   /* reserved bit */
        {0x83, 0x00, 0, 0},   /* opcode 3 */
        {0x09, 0x00, 0, 0},   /* fragmented ping */
        {0x89, 0x7e, 0, 126}, /* ping of 126 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_lg_wsrx rx;
        memset(&rx, 0, sizeof rx);
        frames f;
        memset(&f, 0, sizeof f);
        sb_lg_ws_handler h = {f_data, f_control};
        CHECK_EQ("bad frame refused", sb_lg_ws_feed(&rx, bad[i], 4, &h, &f), SB_EPROTO);
    }
    /* our own masked frame: header bits and the mask round trip */
    uint8_t out[300];
    size_t fl = sb_lg_ws_frame(out, SB_WS_OP_TEXT, small, sizeof small, 0x11223344u);
    CHECK_EQ("frame length", fl, 2 + 4 + sizeof small);
    CHECK_EQ("fin+text", out[0], 0x81);
    CHECK_EQ("mask bit", out[1], 0x80 | sizeof small);
    CHECK_EQ("unmasked", out[6] ^ 0x11, (uint8_t)small[0]);
    CHECK_EQ("16-bit form", sb_lg_ws_frame(out, SB_WS_OP_BINARY, big, 200, 0), 2 + 2 + 4 + 200);
}

/* ---- HTTP responses --------------------------------------------------------------------------- */

static void test_http(void) {
    static const char first[] =
        "HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
    static const char second[] = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    static const char third[] = "HTTP/1.1 101 Switching\r\nConnection: close\r\n\r\n";
    char all[512];
    size_t len = (size_t)snprintf(all, sizeof all, "%s%s%s", first, second, third);
    size_t n1 = sizeof first - 1, n2 = sizeof second - 1;
    /* every prefix is either incomplete or parses to the same first answer */
    for (size_t cut = 0; cut <= len; cut++) {
        sb_lg_http_resp r;
        size_t total = 0;
        int rc = sb_lg_http_parse_head(all, cut, &r);
        if (rc == SB_OK)
            rc = sb_lg_http_complete(all, cut, &r, &total);
        if (cut < n1) {
            CHECK_EQ("incomplete", rc, SB_EAGAIN);
        } else {
            CHECK_EQ("complete", rc, SB_OK);
            CHECK_EQ("status", r.status, 202);
            CHECK_EQ("total", total, n1);
        }
    }
    sb_lg_http_resp r;
    size_t total;
    const char *b = all + n1;
    CHECK_EQ("chunked head", sb_lg_http_parse_head(b, len - n1, &r), SB_OK);
    CHECK_EQ("chunked", r.chunked, 1);
    CHECK_EQ("chunked body", sb_lg_http_complete(b, len - n1, &r, &total), SB_OK);
    CHECK_EQ("chunked total", total, n2);
    for (size_t cut = r.head_len; cut < n2; cut++)
        CHECK_EQ("chunked partial", sb_lg_http_complete(b, cut, &r, &total), SB_EAGAIN);
    const char *c = b + n2;
    CHECK_EQ("101 head", sb_lg_http_parse_head(c, strlen(c), &r), SB_OK);
    CHECK_EQ("101", r.status, 101);
    CHECK_EQ("close", r.close, 1);
    CHECK_EQ("no length", r.content_length, (unsigned long long)-1);
    CHECK_EQ("not http", sb_lg_http_parse_head("SSH-2.0 x\r\n\r\n", 13, &r), SB_EPROTO);
    /* bare CRs inside the head are bytes of a line, not line ends (a fuzzer found the overread) */
    static const char bare_cr[] = "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\r\nContent-Length: 2\r\n\r\nok";
    CHECK_EQ("bare CR head", sb_lg_http_parse_head(bare_cr, sizeof bare_cr - 1, &r), SB_OK);
    CHECK_EQ("bare CR length", r.content_length, 2);
    CHECK_EQ("bare CR total", sb_lg_http_complete(bare_cr, sizeof bare_cr - 1, &r, &total), SB_OK);
    CHECK_EQ("bare CR total", total, sizeof bare_cr - 1);
    static const char neg[] = "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n";
    CHECK_EQ("bad length", sb_lg_http_parse_head(neg, sizeof neg - 1, &r), SB_EPROTO);
    static const char badchunk[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    CHECK_EQ("bad chunk head", sb_lg_http_parse_head(badchunk, sizeof badchunk - 1, &r), SB_OK);
    CHECK_EQ("bad chunk", sb_lg_http_complete(badchunk, sizeof badchunk - 1, &r, &total), SB_EPROTO);
}

/* ---- histogram -------------------------------------------------------------------------------- */

static void test_hist(void) {
    static sb_lg_hist h;
    sb_lg_hist_reset(&h);
    CHECK_EQ("empty", sb_lg_hist_quantile(&h, 0.5), 0);
    for (uint64_t v = 1; v <= 100000; v++)
        sb_lg_hist_record(&h, v * 1000);
    uint64_t p50 = sb_lg_hist_quantile(&h, 0.5), p99 = sb_lg_hist_quantile(&h, 0.99);
    CHECK_EQ("p50 within 1.6%", p50 > 50000000 * 0.984 && p50 < 50000000 * 1.016, 1);
    CHECK_EQ("p99 within 1.6%", p99 > 99000000 * 0.984 && p99 < 99000000 * 1.016, 1);
    CHECK_EQ("max exact", sb_lg_hist_quantile(&h, 1.0), 100000000);
    sb_lg_hist_reset(&h);
    sb_lg_hist_record(&h, 5);
    sb_lg_hist_record(&h, UINT64_MAX);
    CHECK_EQ("small exact", sb_lg_hist_quantile(&h, 0.5), 5);
    CHECK_EQ("huge kept", h.max, UINT64_MAX);
    CHECK_EQ("count", h.count, 2);
}

int sb_lg_selftest(void) {
    failures = 0;
    test_stamps();
    test_frames();
    test_http();
    test_hist();
    printf("loadgen self-test: %s\n", failures ? "FAILED" : "ok");
    return failures ? SB_EINVAL : SB_OK;
}
