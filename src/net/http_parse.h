/*
 * http_parse.h - I/O-free HTTP/1.1 request parser (wraps Node's http-parser).
 *
 * Owns: turning a byte stream into complete sb_http_request values, enforcing
 * the configured limits (header bytes, URL length, body bytes) and choosing the
 * status a bad request deserves.  Does no I/O, so it is unit-tested and fuzzed
 * directly (fuzz/fuzz_http.c).
 *
 * Not here: routing, responses, keep-alive policy, upgrades (net/http.c).
 *
 * Usage: feed bytes with sb_http_parser_feed(); when it returns SB_OK a whole
 * request (headers + body) is in p->req and *consumed says how many input bytes
 * it used (the rest belongs to the next request or, after an Upgrade, to the
 * WebSocket).  Handle it, then call sb_http_parser_reset() before feeding more.
 * On an error return p->status is the HTTP status to answer with (400, 413,
 * 414, 431, 501) and p->error a short reason; the connection must be closed.
 */
#ifndef SB_HTTP_PARSE_H
#define SB_HTTP_PARSE_H

#include <http_parser.h>
#include <stddef.h>

#include "util/buf.h"

#define SB_HTTP_MAX_HEADERS 64

typedef struct sb_http_header {
    sb_slice name; /* points into sb_http_request.raw */
    sb_slice value;
} sb_http_header;

typedef struct sb_http_request {
    enum http_method method;
    const char *method_name; /* "GET", ... */
    sb_slice url;            /* raw request target, e.g. "/client/?hub=chat" */
    sb_slice path;           /* url up to '?', not decoded */
    sb_slice query;          /* after '?' (without it), may be empty */
    sb_http_header headers[SB_HTTP_MAX_HEADERS];
    size_t nheaders;
    sb_buf body;
    int upgrade;    /* Connection: Upgrade + Upgrade header present */
    int keep_alive; /* http_should_keep_alive() */
    unsigned short http_major, http_minor;
    sb_buf raw; /* storage for url and header bytes; slices point here */
} sb_http_request;

typedef struct sb_http_parser {
    http_parser hp;
    sb_http_request req;
    size_t max_header_bytes; /* request line + headers */
    size_t max_url_bytes;
    size_t max_body_bytes;
    size_t header_bytes; /* counted so far for this request */
    int state;           /* private */
    int status;          /* HTTP status to answer with after an error */
    const char *error;   /* short reason after an error */
    /* private: offsets of the header being assembled */
    size_t cur_name_off, cur_name_len, cur_value_off, cur_value_len;
    size_t url_off, url_len;
    uint32_t hdr_off[SB_HTTP_MAX_HEADERS][4]; /* name off, len, value off, len (within raw: < 4 GiB) */
} sb_http_parser;

void sb_http_parser_init(sb_http_parser *p, size_t max_header_bytes, size_t max_url_bytes, size_t max_body_bytes);
void sb_http_parser_free(sb_http_parser *p);
/* Forget the finished request and get ready for the next one on the same connection. */
void sb_http_parser_reset(sb_http_parser *p);
/* SB_OK: a full request is in p->req.  SB_EAGAIN: all input consumed, need more.
 * Other negative: bad request, see p->status / p->error. */
int sb_http_parser_feed(sb_http_parser *p, const char *data, size_t len, size_t *consumed);

/* Case-insensitive header lookup; NULL slice base when absent. */
sb_slice sb_http_header_get(const sb_http_request *r, const char *name);
/* Does a comma-separated header (e.g. Connection) contain token (case-insensitive)? */
int sb_http_header_has_token(const sb_http_request *r, const char *name, const char *token);

/*
 * Query strings.  sb_http_query_get finds the first parameter `name` (exact,
 * case-sensitive unless icase) in `query`, percent- and '+'-decodes its value
 * into out (reset first) and returns the number of occurrences of the name
 * (0 = absent).  Used for "more than one hub parameter is 400".
 */
int sb_http_query_get(sb_slice query, const char *name, int icase, sb_buf *out);
/* Percent-decode (and '+' -> ' ' when plus is set) into out (appends).  SB_EINVAL on a bad escape. */
int sb_url_decode(sb_slice in, int plus, sb_buf *out);
/*
 * Split a URL path into its non-empty, percent-decoded segments (ARM-style
 * routes: "//a/b%2Fc/" -> "a", "b/c").  seg[] must hold max initialised
 * sb_bufs (each is reset and refilled).  SB_EINVAL on a bad escape, a NUL or
 * invalid UTF-8 in a segment; SB_E2BIG for more than max segments.
 */
int sb_url_path_split(sb_slice path, sb_buf *seg, size_t max, size_t *nseg);
/* Append path with every run of '/' collapsed to one ("//a///b" -> "/a/b"), as it was sent otherwise. */
void sb_url_path_collapse(sb_slice path, sb_buf *out);
/* Percent-encode everything but unreserved characters (RFC 3986) into out (appends). */
void sb_url_encode(const char *s, size_t n, sb_buf *out);

#endif
