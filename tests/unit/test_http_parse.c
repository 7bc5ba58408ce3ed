/*
 * test_http_parse.c - HTTP/1.1 request parsing and URL helpers (net/http_parse.c).
 *
 * Every request is fed whole, in small odd chunks and one byte at a time, and
 * must parse the same way.  Each limit is tested at the exact boundary (the
 * limit passes, one more byte fails) and each failure checks the status the
 * client will get.  Pipelining and Upgrade check that *consumed stops at the
 * last byte of the request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/http_parse.h"
#include "util/error.h"

#define BIG ((size_t)1 << 20)

/* Feed s in chunks of step bytes (0 = whole) until a request completes or fails. */
static int feed(sb_http_parser *p, const char *s, size_t len, size_t step, size_t *used) {
    size_t off = 0;
    *used = 0;
    while (off < len) {
        size_t n = step && step < len - off ? step : len - off;
        size_t c = 0;
        int rc = sb_http_parser_feed(p, s + off, n, &c);
        assert_true(c <= n);
        *used = off + c;
        if (rc != SB_EAGAIN)
            return rc;
        assert_int_equal(c, n);
        off += n;
    }
    return SB_EAGAIN;
}

static const size_t steps[] = {1, 2, 3, 7, 16, 0}; /* whole buffer last */
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* Parse one complete request every way; leaves the whole-buffer parse in p for inspection. */
static void parse_ok(sb_http_parser *p, const char *s, size_t max_hdr, size_t max_url, size_t max_body) {
    size_t len = strlen(s), used;
    for (size_t i = 0; i < NSTEPS; i++) {
        sb_http_parser_init(p, max_hdr, max_url, max_body);
        int rc = feed(p, s, len, steps[i], &used);
        if (rc != SB_OK)
            print_error("step %zu: rc %d status %d (%s)\n", steps[i], rc, p->status,
                        p->error ? p->error : "");
        assert_int_equal(rc, SB_OK);
        assert_int_equal(used, len);
        if (i + 1 < NSTEPS)
            sb_http_parser_free(p);
    }
}

/* Expect a failure with this status every way the input can be chunked. */
static void expect_status(const char *s, size_t len, size_t max_hdr, size_t max_url, size_t max_body,
                          int status) {
    for (size_t i = 0; i < NSTEPS; i++) {
        sb_http_parser p;
        size_t used;
        sb_http_parser_init(&p, max_hdr, max_url, max_body);
        int rc = feed(&p, s, len, steps[i], &used);
        if (p.status != status)
            print_error("step %zu: rc %d status %d (%s)\n", steps[i], rc, p.status, p.error ? p.error : "");
        assert_int_equal(p.status, status);
        assert_int_equal(rc, status == 400 || status == 501 ? SB_EPROTO : SB_E2BIG);
        assert_non_null(p.error);
        /* Sticky until reset. */
        assert_int_equal(sb_http_parser_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18, &used), rc);
        assert_int_equal(used, 0);
        sb_http_parser_free(&p);
    }
}

#define EXPECT_STATUS(s, status) expect_status((s), strlen(s), BIG, BIG, BIG, (status))

static void test_simple_get(void **state) {
    (void)state;
    sb_http_parser p;
    parse_ok(&p,
             "GET /client/?hub=chat&id=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\n"
             "User-Agent:  tester/1.0  \r\n\r\n",
             BIG, BIG, BIG);
    sb_http_request *r = &p.req;
    assert_int_equal(r->method, HTTP_GET);
    assert_string_equal(r->method_name, "GET");
    assert_true(sb_slice_eq(r->url, "/client/?hub=chat&id=1"));
    assert_true(sb_slice_eq(r->path, "/client/"));
    assert_true(sb_slice_eq(r->query, "hub=chat&id=1"));
    assert_int_equal(r->nheaders, 3);
    assert_true(sb_slice_eq(r->headers[0].name, "Host"));
    assert_true(sb_slice_eq(r->headers[0].value, "example.com"));
    assert_true(sb_slice_eq(r->headers[1].name, "X-Empty"));
    assert_int_equal(r->headers[1].value.len, 0);
    assert_true(sb_slice_eq(r->headers[2].value, "tester/1.0")); /* surrounding whitespace dropped */
    assert_int_equal(r->body.len, 0);
    assert_int_equal(r->upgrade, 0);
    assert_int_equal(r->keep_alive, 1);
    assert_int_equal(r->http_major, 1);
    assert_int_equal(r->http_minor, 1);

    /* Another feed without a reset keeps the request and consumes nothing. */
    size_t used = 99;
    assert_int_equal(sb_http_parser_feed(&p, "GET", 3, &used), SB_OK);
    assert_int_equal(used, 0);
    sb_http_parser_free(&p);
}

static void test_target_forms(void **state) {
    (void)state;
    sb_http_parser p;
    parse_ok(&p, "GET /plain HTTP/1.1\r\n\r\n", BIG, BIG, BIG);
    assert_true(sb_slice_eq(p.req.path, "/plain"));
    assert_int_equal(p.req.query.len, 0);
    assert_non_null(p.req.query.base);
    assert_int_equal(p.req.nheaders, 0);
    sb_http_parser_free(&p);

    parse_ok(&p, "GET /a?x=1#frag HTTP/1.1\r\n\r\n", BIG, BIG, BIG);
    assert_true(sb_slice_eq(p.req.path, "/a"));
    assert_true(sb_slice_eq(p.req.query, "x=1"));
    sb_http_parser_free(&p);

    parse_ok(&p, "OPTIONS /a? HTTP/1.1\r\n\r\n", BIG, BIG, BIG);
    assert_int_equal(p.req.method, HTTP_OPTIONS);
    assert_true(sb_slice_eq(p.req.path, "/a"));
    assert_int_equal(p.req.query.len, 0);
    sb_http_parser_free(&p);
}

static void test_post_with_body(void **state) {
    (void)state;
    sb_http_parser p;
    parse_ok(&p,
             "POST /api/v1/hubs/chat HTTP/1.1\r\nContent-Type: application/json\r\n"
             "Content-Length: 13\r\n\r\n{\"a\":\"hello\"}",
             BIG, BIG, BIG);
    assert_int_equal(p.req.method, HTTP_POST);
    assert_int_equal(p.req.body.len, 13);
    assert_string_equal(p.req.body.data, "{\"a\":\"hello\"}");
    sb_http_parser_free(&p);

    /* A zero-length body still has a NUL-terminated buffer. */
    parse_ok(&p, "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", BIG, BIG, BIG);
    assert_int_equal(p.req.body.len, 0);
    assert_non_null(p.req.body.data);
    assert_string_equal(p.req.body.data, "");
    sb_http_parser_free(&p);
}

static const char CHUNKED[] = "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";

static void test_chunked_body(void **state) {
    (void)state;
    sb_http_parser p;
    parse_ok(&p, CHUNKED, BIG, BIG, 11);
    assert_int_equal(p.req.method, HTTP_PUT);
    assert_string_equal(p.req.body.data, "hello world");
    /* Trailer fields are not headers. */
    assert_int_equal(p.req.nheaders, 1);
    assert_true(sb_slice_ieq(p.req.headers[0].name, "transfer-encoding"));
    sb_http_parser_free(&p);
}

static void test_chunked_trailers(void **state) {
    (void)state;
    /* 47 bytes of header section; trailers add their names and values to that. */
    static const char head[] = "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: ";
    char req[512];
    for (int vlen = 40; vlen <= 60; vlen += 20) {
        size_t n = (size_t)snprintf(req, sizeof(req), "%s", head);
        memset(req + n, 'v', (size_t)vlen);
        n += (size_t)vlen;
        n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n\r\n");
        if (vlen == 40) {
            sb_http_parser p;
            parse_ok(&p, req, 100, BIG, BIG);
            assert_string_equal(p.req.body.data, "hi");
            sb_http_parser_free(&p);
        } else {
            expect_status(req, n, 100, BIG, BIG, 431);
        }
    }
    /* Large trailers must not move raw under the header slices. */
    size_t n = (size_t)snprintf(req, sizeof(req), "%s", head);
    memset(req + n, 't', 300);
    n += 300;
    snprintf(req + n, sizeof(req) - n, "\r\n\r\n");
    sb_http_parser p;
    parse_ok(&p, req, BIG, BIG, BIG);
    assert_int_equal(p.req.nheaders, 1);
    assert_true(sb_slice_eq(p.req.headers[0].value, "chunked"));
    assert_true(sb_slice_eq(p.req.url, "/c"));
    sb_http_parser_free(&p);
}

static void test_keep_alive(void **state) {
    (void)state;
    sb_http_parser p;
    parse_ok(&p, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", BIG, BIG, BIG);
    assert_int_equal(p.req.keep_alive, 0);
    sb_http_parser_free(&p);
    parse_ok(&p, "GET / HTTP/1.0\r\n\r\n", BIG, BIG, BIG);
    assert_int_equal(p.req.keep_alive, 0);
    assert_int_equal(p.req.http_minor, 0);
    sb_http_parser_free(&p);
    parse_ok(&p, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", BIG, BIG, BIG);
    assert_int_equal(p.req.keep_alive, 1);
    sb_http_parser_free(&p);
}

static void test_pipelined_requests(void **state) {
    (void)state;
    static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                             "\r\nDELETE /c HTTP/1.1\r\n\r\n";
    static const char *paths[] = {"/a", "/b", "/c"};
    for (size_t s = 0; s < NSTEPS; s++) {
        sb_http_parser p;
        sb_http_parser_init(&p, 1024, 1024, 1024);
        size_t off = 0, len = sizeof(in) - 1;
        for (int i = 0; i < 3; i++) {
            size_t used;
            assert_int_equal(feed(&p, in + off, len - off, steps[s], &used), SB_OK);
            assert_true(sb_slice_eq(p.req.path, paths[i]));
            off += used;
            if (i == 1)
                assert_string_equal(p.req.body.data, "abc");
            sb_http_parser_reset(&p);
            assert_int_equal(p.req.nheaders, 0);
            assert_int_equal(p.req.body.len, 0);
        }
        assert_int_equal(off, sizeof(in) - 1);
        sb_http_parser_free(&p);
    }
}

static void test_upgrade_leaves_following_bytes_to_websocket(void **state) {
    (void)state;
    static const char req[] =
        "GET /client/?hub=chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    static const char ws[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    char in[sizeof(req) + sizeof(ws)];
    memcpy(in, req, sizeof(req) - 1);
    memcpy(in + sizeof(req) - 1, ws, sizeof(ws) - 1);
    size_t len = sizeof(req) - 1 + sizeof(ws) - 1;
    for (size_t s = 0; s < NSTEPS; s++) {
        sb_http_parser p;
        size_t used;
        sb_http_parser_init(&p, 4096, 1024, 1024);
        assert_int_equal(feed(&p, in, len, steps[s], &used), SB_OK);
        assert_int_equal(used, sizeof(req) - 1);
        assert_int_equal(p.req.upgrade, 1);
        assert_true(sb_http_header_has_token(&p.req, "connection", "upgrade"));
        assert_true(sb_slice_ieq(sb_http_header_get(&p.req, "UPGRADE"), "WebSocket"));
        sb_http_parser_free(&p);
    }
    /* Upgrade without Connection: upgrade is an ordinary request. */
    sb_http_parser p;
    parse_ok(&p, "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", BIG, BIG, BIG);
    assert_int_equal(p.req.upgrade, 0);
    sb_http_parser_free(&p);
}

static void test_header_lookup(void **state) {
    (void)state;
    sb_http_parser p;
    parse_ok(&p,
             "GET / HTTP/1.1\r\nX-Dup: one\r\nConnection: keep-alive\r\nx-dup: two\r\n"
             "Connection: Upgrade ,\tfoo\r\nAccept: text/event-stream\r\n\r\n",
             BIG, BIG, BIG);
    sb_http_request *r = &p.req;
    assert_int_equal(r->nheaders, 5);
    assert_true(sb_slice_eq(sb_http_header_get(r, "x-DUP"), "one"));
    assert_true(sb_slice_eq(r->headers[2].value, "two"));
    sb_slice none = sb_http_header_get(r, "Authorization");
    assert_null(none.base);
    assert_int_equal(none.len, 0);
    assert_null(sb_http_header_get(r, "X-Du").base);
    /* Tokens are found in any instance of a repeated header, ignoring case and whitespace. */
    assert_true(sb_http_header_has_token(r, "Connection", "keep-alive"));
    assert_true(sb_http_header_has_token(r, "Connection", "upgrade"));
    assert_true(sb_http_header_has_token(r, "Connection", "FOO"));
    assert_false(sb_http_header_has_token(r, "Connection", "fo"));
    assert_false(sb_http_header_has_token(r, "Connection", "close"));
    assert_false(sb_http_header_has_token(r, "Accept", "text"));
    assert_true(sb_http_header_has_token(r, "Accept", "text/event-stream"));
    assert_false(sb_http_header_has_token(r, "Missing", "x"));
    sb_http_parser_free(&p);
}

/* ---- limits ------------------------------------------------------------- */

static void test_header_bytes_limit(void **state) {
    (void)state;
    static const char req[] = "GET /x HTTP/1.1\r\nHost: example\r\nX-A: 0123456789\r\n\r\n";
    size_t n = sizeof(req) - 1; /* all of it is header section */
    sb_http_parser p;
    parse_ok(&p, req, n, BIG, BIG);
    sb_http_parser_free(&p);
    expect_status(req, n, n - 1, BIG, BIG, 431);
    /* Far too much: caught while the headers stream in, long before the end. */
    char big[8192];
    int k = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Long: ");
    memset(big + k, 'v', sizeof(big) - (size_t)k);
    expect_status(big, sizeof(big), 1000, BIG, BIG, 431);
    sb_http_parser_init(&p, 1000, BIG, BIG);
    size_t used;
    assert_int_equal(sb_http_parser_feed(&p, big, sizeof(big), &used), SB_E2BIG);
    assert_true(p.req.raw.len <= 1000);
    sb_http_parser_free(&p);
}

static void test_url_limit(void **state) {
    (void)state;
    static const char req[] = "GET /abcdefgh?q=1 HTTP/1.1\r\n\r\n";
    sb_http_parser p;
    parse_ok(&p, req, BIG, 13, BIG);
    sb_http_parser_free(&p);
    expect_status(req, sizeof(req) - 1, BIG, 12, BIG, 414);
}

static void test_body_limit(void **state) {
    (void)state;
    static const char req[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
    sb_http_parser p;
    parse_ok(&p, req, BIG, BIG, 11);
    sb_http_parser_free(&p);
    expect_status(req, sizeof(req) - 1, BIG, BIG, 10, 413);
    /* Refused from the header alone, before any body byte is sent. */
    size_t used;
    sb_http_parser_init(&p, BIG, BIG, 10);
    assert_int_equal(sb_http_parser_feed(&p, req, sizeof(req) - 1 - 11, &used), SB_E2BIG);
    assert_int_equal(p.status, 413);
    sb_http_parser_free(&p);

    /* Chunked: the second chunk's size line is enough to refuse it. */
    expect_status(CHUNKED, sizeof(CHUNKED) - 1, BIG, BIG, 10, 413);
    const char *second = strstr(CHUNKED, "6;ext");
    size_t upto = (size_t)(strstr(second, "\r\n") + 2 - CHUNKED);
    sb_http_parser_init(&p, BIG, BIG, 10);
    assert_int_equal(sb_http_parser_feed(&p, CHUNKED, upto, &used), SB_E2BIG);
    assert_int_equal(p.status, 413);
    assert_int_equal(p.req.body.len, 5);
    sb_http_parser_free(&p);
}

static void test_too_many_headers(void **state) {
    (void)state;
    char req[4096];
    for (int count = SB_HTTP_MAX_HEADERS; count <= SB_HTTP_MAX_HEADERS + 1; count++) {
        size_t n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n");
        for (int i = 0; i < count; i++)
            n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: value-%d\r\n", i, i * 7);
        n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
        if (count == SB_HTTP_MAX_HEADERS) {
            sb_http_parser p;
            parse_ok(&p, req, BIG, BIG, BIG);
            assert_int_equal(p.req.nheaders, SB_HTTP_MAX_HEADERS);
            /* Every slice still points at the right bytes after raw grew many times. */
            for (int i = 0; i < count; i++) {
                char name[16], value[32];
                snprintf(name, sizeof(name), "X-H%d", i);
                snprintf(value, sizeof(value), "value-%d", i * 7);
                assert_true(sb_slice_eq(p.req.headers[i].name, name));
                assert_true(sb_slice_eq(p.req.headers[i].value, value));
            }
            sb_http_parser_free(&p);
        } else {
            expect_status(req, n, BIG, BIG, BIG, 431);
        }
    }
}

/* ---- bad requests ------------------------------------------------------- */

static void test_malformed(void **state) {
    (void)state;
    EXPECT_STATUS("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400);
    EXPECT_STATUS("GET / HTTP/x.1\r\n\r\n", 400);
    EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);
    EXPECT_STATUS("GET /\x7f HTTP/1.1\r\n\r\n", 400);
    EXPECT_STATUS("POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400);
    EXPECT_STATUS("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400);
    EXPECT_STATUS("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    EXPECT_STATUS("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    EXPECT_STATUS("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400);
    EXPECT_STATUS("FOO / HTTP/1.1\r\n\r\n", 400);
    expect_status("\x00\x01\x02\xff junk", 9, BIG, BIG, BIG, 400);
}

static void test_unsupported_methods(void **state) {
    (void)state;
    EXPECT_STATUS("TRACE / HTTP/1.1\r\n\r\n", 501);
    EXPECT_STATUS("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 501);
    EXPECT_STATUS("PROPFIND /x HTTP/1.1\r\n\r\n", 501);
    static const char *ok[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char req[64];
        snprintf(req, sizeof(req), "%s /x HTTP/1.1\r\n\r\n", ok[i]);
        sb_http_parser p;
        parse_ok(&p, req, BIG, BIG, BIG);
        assert_string_equal(p.req.method_name, ok[i]);
        sb_http_parser_free(&p);
    }
}

static void test_empty_feed(void **state) {
    (void)state;
    sb_http_parser p;
    size_t used = 7;
    sb_http_parser_init(&p, BIG, BIG, BIG);
    assert_int_equal(sb_http_parser_feed(&p, "", 0, &used), SB_EAGAIN);
    assert_int_equal(used, 0);
    assert_int_equal(sb_http_parser_feed(&p, "GET / HT", 8, &used), SB_EAGAIN);
    assert_int_equal(sb_http_parser_feed(&p, "", 0, &used), SB_EAGAIN);
    assert_int_equal(sb_http_parser_feed(&p, "TP/1.1\r\n\r\n", 10, &used), SB_OK);
    assert_int_equal(used, 10);
    sb_http_parser_free(&p);
}

/* ---- query strings and percent coding ------------------------------------ */

static sb_slice S(const char *s) {
    return sb_slice_make(s, strlen(s));
}

static void test_query_get(void **state) {
    (void)state;
    sb_buf out;
    sb_buf_init(&out);
    assert_int_equal(sb_http_query_get(S("hub=chat&id=1"), "hub", 0, &out), 1);
    assert_string_equal(out.data, "chat");
    assert_int_equal(sb_http_query_get(S("hub=chat&id=1"), "id", 0, &out), 1);
    assert_string_equal(out.data, "1");
    /* Duplicates are counted; the first value wins. */
    assert_int_equal(sb_http_query_get(S("hub=a&x=&hub=b&hub"), "hub", 0, &out), 3);
    assert_string_equal(out.data, "a");
    /* Absent: 0 and an emptied output. */
    assert_int_equal(sb_http_query_get(S("hubx=a&xhub=b&hu=c"), "hub", 0, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(sb_http_query_get(sb_slice_make(NULL, 0), "hub", 0, &out), 0);
    assert_int_equal(sb_http_query_get(S("&&=x&"), "hub", 0, &out), 0);
    /* Case: exact unless asked. */
    assert_int_equal(sb_http_query_get(S("Hub=A"), "hub", 0, &out), 0);
    assert_int_equal(sb_http_query_get(S("Hub=A&HUB=B"), "hub", 1, &out), 2);
    assert_string_equal(out.data, "A");
    /* Values and keys are decoded. */
    assert_int_equal(sb_http_query_get(S("access_token=a%2Bb+c%3D%3d&x=1"), "access_token", 0, &out), 1);
    assert_string_equal(out.data, "a+b c==");
    assert_int_equal(sb_http_query_get(S("h%75b=x&hub=y"), "hub", 0, &out), 2);
    assert_string_equal(out.data, "x");
    assert_int_equal(sb_http_query_get(S("flag"), "flag", 0, &out), 1);
    assert_int_equal(out.len, 0);
    /* A bad escape in the value asked for is an error; elsewhere it is not. */
    assert_int_equal(sb_http_query_get(S("hub=%zz"), "hub", 0, &out), SB_EINVAL);
    assert_int_equal(sb_http_query_get(S("hub=abc%4"), "hub", 0, &out), SB_EINVAL);
    assert_int_equal(sb_http_query_get(S("hub=%"), "hub", 0, &out), SB_EINVAL);
    assert_int_equal(sb_http_query_get(S("x=%zz&hub=ok&hub=%q"), "hub", 0, &out), 2);
    assert_string_equal(out.data, "ok");
    assert_int_equal(sb_http_query_get(S("h%zzb=1&hub=2"), "hub", 0, &out), 1);
    assert_string_equal(out.data, "2");
    sb_buf_free(&out);
}

static void test_url_decode(void **state) {
    (void)state;
    sb_buf out;
    sb_buf_init(&out);
    assert_int_equal(sb_url_decode(S("a+b%20c%2fd%2F"), 0, &out), SB_OK);
    assert_string_equal(out.data, "a+b c/d/");
    assert_int_equal(sb_url_decode(S("+%C3%A9"), 1, &out), SB_OK); /* appends */
    assert_string_equal(out.data, "a+b c/d/ \xC3\xA9");
    size_t before = out.len;
    assert_int_equal(sb_url_decode(S("ok%g1"), 1, &out), SB_EINVAL);
    assert_int_equal(sb_url_decode(S("%1"), 1, &out), SB_EINVAL);
    /* An escape cut short by the end of the slice, whatever follows in memory. */
    assert_int_equal(sb_url_decode(sb_slice_make("%41", 2), 1, &out), SB_EINVAL);
    assert_int_equal(out.len, before); /* nothing appended on failure */
    assert_int_equal(strlen(out.data), before);
    sb_buf_reset(&out);
    assert_int_equal(sb_url_decode(S("%00%ff"), 0, &out), SB_OK);
    assert_int_equal(out.len, 2);
    assert_int_equal((unsigned char)out.data[1], 0xFF);
    sb_buf_free(&out);
}

static void test_url_encode(void **state) {
    (void)state;
    sb_buf out;
    sb_buf_init(&out);
    sb_url_encode("AZaz09-._~", 10, &out);
    assert_string_equal(out.data, "AZaz09-._~");
    sb_buf_reset(&out);
    sb_url_encode("a b/\xC3\xA9+&=?%", 11, &out);
    assert_string_equal(out.data, "a%20b%2F%C3%A9%2B%26%3D%3F%25");
    sb_buf_reset(&out);
    sb_url_encode("\0x", 2, &out);
    assert_string_equal(out.data, "%00x");
    /* Round trip through the decoder. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    sb_buf_reset(&out);
    sb_url_encode(all, sizeof(all), &out);
    sb_buf back;
    sb_buf_init(&back);
    assert_int_equal(sb_url_decode(sb_slice_make(out.data, out.len), 1, &back), SB_OK);
    assert_int_equal(back.len, 256);
    assert_memory_equal(back.data, all, 256);
    sb_buf_free(&back);
    sb_buf_free(&out);
}

static void test_url_path_split(void **state) {
    (void)state;
    sb_buf seg[4];
    for (int i = 0; i < 4; i++)
        sb_buf_init(&seg[i]);
    size_t n = 99;
    assert_int_equal(sb_url_path_split(SB_SLICE("//a/b%2Fc//d/"), seg, 4, &n), SB_OK);
    assert_int_equal(n, 3);
    assert_string_equal(seg[0].data, "a");
    assert_string_equal(seg[1].data, "b/c");
    assert_string_equal(seg[2].data, "d");
    /* reuse resets the buffers */
    assert_int_equal(sb_url_path_split(SB_SLICE("/x"), seg, 4, &n), SB_OK);
    assert_int_equal(n, 1);
    assert_string_equal(seg[0].data, "x");
    assert_int_equal(sb_url_path_split(SB_SLICE(""), seg, 4, &n), SB_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sb_url_path_split(SB_SLICE("/a/b/c/d/e"), seg, 4, &n), SB_E2BIG);
    assert_int_equal(sb_url_path_split(SB_SLICE("/a/%zz"), seg, 4, &n), SB_EINVAL);
    assert_int_equal(sb_url_path_split(SB_SLICE("/a%00b"), seg, 4, &n), SB_EINVAL);
    assert_int_equal(sb_url_path_split(SB_SLICE("/%ff%fe"), seg, 4, &n), SB_EINVAL);
    for (int i = 0; i < 4; i++)
        sb_buf_free(&seg[i]);
}

static void expect_collapsed(const char *in, const char *want) {
    sb_buf b;
    sb_buf_init(&b);
    sb_url_path_collapse(sb_slice_make(in, strlen(in)), &b);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.len ? b.data : "", want, b.len);
    sb_buf_free(&b);
}

static void test_url_path_collapse(void **state) {
    expect_collapsed("", "");
    expect_collapsed("/", "/");
    expect_collapsed("///", "/");
    expect_collapsed("//subscriptions//s/x///", "/subscriptions/s/x/");
    expect_collapsed("a//b", "a/b");
    expect_collapsed("/a%2F%2Fb", "/a%2F%2Fb"); /* escaped slashes are not slashes */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_target_forms),
        cmocka_unit_test(test_post_with_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelined_requests),
        cmocka_unit_test(test_upgrade_leaves_following_bytes_to_websocket),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_header_bytes_limit),
        cmocka_unit_test(test_url_limit),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_unsupported_methods),
        cmocka_unit_test(test_empty_feed),
        cmocka_unit_test(test_query_get),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_url_encode),
        cmocka_unit_test(test_url_path_split),
        cmocka_unit_test(test_url_path_collapse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
