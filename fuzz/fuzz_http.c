/*
 * fuzz_http.c - libFuzzer target for the HTTP request parser (net/http_parse.c)
 * and the URL helpers it feeds.
 *
 * The first input byte picks the chunk size the rest is fed in (so requests
 * and limits are split at arbitrary points) and which set of limits applies;
 * the rest is a connection's byte stream, parsed as pipelined requests with a
 * reset after each.  Every completed request is checked against the
 * invariants callers rely on (slices inside raw, limits respected, progress
 * on every request) and run through the header and query helpers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parse.h"
#include "util/error.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            abort();                                                                                         \
    } while (0)

static int inside(sb_slice s, const sb_buf *raw) {
    return s.len == 0 || (s.base >= raw->data && s.base + s.len <= raw->data + raw->len);
}

static void check_request(const sb_http_parser *p) {
    const sb_http_request *r = &p->req;
    CHECK(r->raw.len <= p->max_header_bytes);
    CHECK(r->url.len <= p->max_url_bytes);
    CHECK(r->body.len <= p->max_body_bytes);
    CHECK(r->nheaders <= SB_HTTP_MAX_HEADERS);
    CHECK(r->method_name != NULL);
    CHECK(inside(r->url, &r->raw) && inside(r->path, &r->raw) && inside(r->query, &r->raw));
    for (size_t i = 0; i < r->nheaders; i++)
        CHECK(inside(r->headers[i].name, &r->raw) && inside(r->headers[i].value, &r->raw));

    sb_buf out;
    sb_buf_init(&out);
    int n = sb_http_query_get(r->query, "hub", 0, &out);
    CHECK(n >= 0 || n == SB_EINVAL);
    sb_http_query_get(r->query, "access_token", 1, &out);
    sb_buf_reset(&out);
    if (sb_url_decode(r->path, 0, &out) == SB_OK) {
        /* Encoding then decoding gives back exactly the decoded bytes. */
        sb_buf enc, back;
        sb_buf_init(&enc);
        sb_buf_init(&back);
        sb_url_encode(out.data, out.len, &enc);
        CHECK(sb_url_decode(sb_slice_make(enc.data, enc.len), 0, &back) == SB_OK);
        CHECK(back.len == out.len && memcmp(back.data, out.data, out.len) == 0);
        sb_buf_free(&enc);
        sb_buf_free(&back);
    }
    sb_buf_free(&out);
    sb_http_header_get(r, "host");
    sb_http_header_has_token(r, "connection", "upgrade");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] & 0x1F) + 1;
    int big = data[0] & 0x80;
    data++, size--;

    sb_http_parser p;
    sb_http_parser_init(&p, big ? 8192 : 256, big ? 4096 : 64, big ? 65536 : 128);
    size_t off = 0;
    while (off < size) {
        size_t n = step < size - off ? step : size - off;
        size_t used = 0;
        int rc = sb_http_parser_feed(&p, (const char *)data + off, n, &used);
        CHECK(used <= n);
        off += used;
        if (rc == SB_OK) {
            CHECK(used > 0); /* every request ends in this call, on at least its final LF */
            check_request(&p);
            sb_http_parser_reset(&p);
        } else if (rc != SB_EAGAIN) {
            CHECK(p.status == 400 || p.status == 413 || p.status == 414 || p.status == 431 ||
                  p.status == 501);
            CHECK(p.error != NULL);
            break;
        } else {
            CHECK(used == n);
        }
    }
    sb_http_parser_free(&p);
    return 0;
}
