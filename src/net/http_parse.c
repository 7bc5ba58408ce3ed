/*
 * http_parse.c - incremental HTTP/1.1 request parsing on top of http-parser;
 * see http_parse.h for the contract.
 *
 * Owns: the http-parser callbacks that copy the request line target and the
 * header bytes into req.raw, the limit checks, and the mapping from a failure
 * to the status the client gets.  Also the small URL helpers (header lookup,
 * query parameters, percent coding) every HTTP handler needs.
 *
 * Invariants:
 *  - The http_parser is paused in two places.  At headers-complete, so the
 *    exact number of request-line + header bytes is known (execute returns
 *    the offset of the final LF) and checked against max_header_bytes; it is
 *    then resumed at that LF.  At message-complete, so *consumed ends exactly
 *    at the last byte of the request: pipelined requests and the first
 *    WebSocket bytes after an Upgrade stay with the caller.
 *  - req.raw only grows while headers are parsed and never beyond
 *    max_header_bytes; slices into it are computed once, at headers-complete,
 *    after the last append, so a realloc can never leave one dangling.
 *  - Body limits are checked before the bytes are buffered: Content-Length at
 *    headers-complete, each chunk at its chunk header.
 *  - A callback that rejects the request sets p->status first; any other
 *    http-parser error is mapped afterwards (header overflow 431, else 400).
 *    Errors are sticky until sb_http_parser_reset().
 *
 * http-parser's own compile-time limit of 80 KiB of header bytes still
 * applies, so a max_header_bytes above it behaves as 80 KiB (answered 431).
 *
 * Called by net/http.c for every read on a connection that has not upgraded.
 * Not here: routing, responses, keep-alive policy, 100-continue.
 */
#include "net/http_parse.h"

#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

enum { ST_START, ST_FIELD, ST_VALUE, ST_BODY, ST_DONE, ST_ERROR };

/* A body buffer larger than this is freed on reset instead of kept for the
 * next request, so a keep-alive connection does not pin its largest upload. */
#define BODY_KEEP_CAP (64 * 1024)

static sb_http_parser *self(http_parser *hp) {
    return hp->data;
}

static int reject(sb_http_parser *p, int status, const char *why) {
    p->status = status;
    p->error = why;
    return -1;
}

static int method_supported(unsigned m) {
    switch (m) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_POST:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_OPTIONS:
    case HTTP_PATCH:
        return 1;
    default:
        return 0;
    }
}

/* Header-section bytes go to raw; raw can never outgrow the header limit. */
static int append_raw(sb_http_parser *p, const char *at, size_t len) {
    if (len > p->max_header_bytes - p->req.raw.len)
        return reject(p, 431, "request header fields too large");
    sb_buf_append(&p->req.raw, at, len);
    return 0;
}

static void commit_header(sb_http_parser *p) {
    /* all four are within raw, which append_raw keeps below max_header_bytes */
    uint32_t *h = p->hdr_off[p->req.nheaders++];
    h[0] = (uint32_t)p->cur_name_off;
    h[1] = (uint32_t)p->cur_name_len;
    h[2] = (uint32_t)p->cur_value_off;
    h[3] = (uint32_t)p->cur_value_len;
}

static int on_url(http_parser *hp, const char *at, size_t len) {
    sb_http_parser *p = self(hp);
    if (!method_supported(hp->method))
        return reject(p, 501, "this method is not supported");
    if (len > p->max_url_bytes - p->url_len)
        return reject(p, 414, "URI too long");
    if (p->url_len == 0)
        p->url_off = p->req.raw.len;
    p->url_len += len;
    return append_raw(p, at, len);
}

/* Trailer fields of a chunked body: not kept (slices into raw are final by
 * now), but their names and values count against max_header_bytes too. */
static int on_trailer(sb_http_parser *p, size_t len) {
    if (len > p->max_header_bytes - p->header_bytes)
        return reject(p, 431, "request header fields too large");
    p->header_bytes += len;
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len) {
    sb_http_parser *p = self(hp);
    if (p->state == ST_BODY)
        return on_trailer(p, len);
    if (p->state != ST_FIELD) {
        if (p->state == ST_VALUE)
            commit_header(p);
        if (p->req.nheaders == SB_HTTP_MAX_HEADERS)
            return reject(p, 431, "too many header fields");
        p->state = ST_FIELD;
        p->cur_name_off = p->cur_value_off = p->req.raw.len;
        p->cur_name_len = p->cur_value_len = 0;
    }
    p->cur_name_len += len;
    return append_raw(p, at, len);
}

static int on_header_value(http_parser *hp, const char *at, size_t len) {
    sb_http_parser *p = self(hp);
    if (p->state == ST_BODY)
        return on_trailer(p, len);
    if (p->state == ST_FIELD) {
        p->state = ST_VALUE;
        p->cur_value_off = p->req.raw.len;
        p->cur_value_len = 0;
    }
    p->cur_value_len += len;
    return append_raw(p, at, len);
}

static void split_target(sb_http_request *r) {
    size_t n = r->url.len;
    const char *hash = memchr(r->url.base, '#', n);
    if (hash) /* a fragment is never sent on purpose; do not let it into the query */
        n = (size_t)(hash - r->url.base);
    const char *q = memchr(r->url.base, '?', n);
    if (q) {
        r->path = sb_slice_make(r->url.base, (size_t)(q - r->url.base));
        r->query = sb_slice_make(q + 1, n - r->path.len - 1);
    } else {
        r->path = sb_slice_make(r->url.base, n);
        r->query = sb_slice_make(r->url.base + n, 0);
    }
}

/* raw is final from here on, so the slices into it are stable. */
static void fix_slices(sb_http_parser *p) {
    sb_http_request *r = &p->req;
    sb_buf_append(&r->raw, "", 0); /* a non-NULL base even for an empty raw */
    char *base = r->raw.data;
    r->url = sb_slice_make(base + p->url_off, p->url_len);
    split_target(r);
    for (size_t i = 0; i < r->nheaders; i++) {
        const uint32_t *h = p->hdr_off[i];
        sb_slice v = sb_slice_make(base + h[2], h[3]);
        /* http-parser drops leading whitespace of a value but keeps trailing. */
        while (v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
            v.len--;
        r->headers[i].name = sb_slice_make(base + h[0], h[1]);
        r->headers[i].value = v;
    }
}

static int on_headers_complete(http_parser *hp) {
    sb_http_parser *p = self(hp);
    sb_http_request *r = &p->req;
    if (p->state == ST_FIELD || p->state == ST_VALUE)
        commit_header(p);
    p->state = ST_BODY;
    fix_slices(p);
    r->method = (enum http_method)hp->method;
    r->method_name = http_method_str(r->method);
    r->http_major = hp->http_major;
    r->http_minor = hp->http_minor;
    r->upgrade = hp->upgrade;
    if (!(hp->flags & F_CHUNKED) && hp->content_length != UINT64_MAX &&
        hp->content_length > p->max_body_bytes)
        return reject(p, 413, "payload too large");
    http_parser_pause(hp, 1);
    return 0;
}

static int on_chunk_header(http_parser *hp) {
    sb_http_parser *p = self(hp);
    if (hp->content_length > p->max_body_bytes - p->req.body.len)
        return reject(p, 413, "payload too large");
    return 0;
}

/* Within the limit by construction: Content-Length was checked at
 * headers-complete and every chunk at its size line. */
static int on_body(http_parser *hp, const char *at, size_t len) {
    sb_buf_append(&self(hp)->req.body, at, len);
    return 0;
}

static int on_message_complete(http_parser *hp) {
    sb_http_parser *p = self(hp);
    p->req.keep_alive = http_should_keep_alive(hp);
    sb_buf_append(&p->req.body, "", 0); /* a NUL-terminated body even when empty */
    p->state = ST_DONE;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

void sb_http_parser_init(sb_http_parser *p, size_t max_header_bytes, size_t max_url_bytes,
                         size_t max_body_bytes) {
    memset(p, 0, sizeof(*p));
    p->max_header_bytes = max_header_bytes;
    p->max_url_bytes = max_url_bytes;
    p->max_body_bytes = max_body_bytes;
    sb_buf_init(&p->req.raw);
    sb_buf_init(&p->req.body);
    sb_http_parser_reset(p);
}

void sb_http_parser_free(sb_http_parser *p) {
    sb_buf_free(&p->req.raw);
    sb_buf_free(&p->req.body);
}

void sb_http_parser_reset(sb_http_parser *p) {
    sb_http_request *r = &p->req;
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    sb_buf_reset(&r->raw);
    if (r->body.cap > BODY_KEEP_CAP)
        sb_buf_free(&r->body);
    else
        sb_buf_reset(&r->body);
    r->method = HTTP_GET;
    r->method_name = NULL;
    r->url = r->path = r->query = sb_slice_make(NULL, 0);
    r->nheaders = 0;
    r->upgrade = r->keep_alive = 0;
    r->http_major = r->http_minor = 0;
    p->header_bytes = 0;
    p->state = ST_START;
    p->status = 0;
    p->error = NULL;
    p->cur_name_off = p->cur_name_len = p->cur_value_off = p->cur_value_len = 0;
    p->url_off = p->url_len = 0;
}

static int status_code_to_error(int status) {
    return status == 413 || status == 414 || status == 431 ? SB_E2BIG : SB_EPROTO;
}

static int fail(sb_http_parser *p) {
    if (!p->status) {
        enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
        if (e == HPE_HEADER_OVERFLOW) {
            p->status = 431;
            p->error = "request header fields too large";
        } else {
            p->status = 400;
            p->error = e == HPE_OK ? "bad request" : http_errno_description(e);
        }
    }
    p->state = ST_ERROR;
    return status_code_to_error(p->status);
}

int sb_http_parser_feed(sb_http_parser *p, const char *data, size_t len, size_t *consumed) {
    size_t off = 0;
    *consumed = 0;
    if (p->state == ST_ERROR)
        return status_code_to_error(p->status);
    if (p->state == ST_DONE)
        return SB_OK;
    /* len 0 would mean EOF to http-parser; here it only means "nothing yet". */
    while (off < len) {
        int in_headers = p->state < ST_BODY;
        size_t n = http_parser_execute(&p->hp, &settings, data + off, len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
        if (e == HPE_PAUSED && p->state == ST_BODY && in_headers) {
            /* Stopped on the final LF of the header section (not consumed). */
            p->header_bytes += n + 1;
            if (p->header_bytes > p->max_header_bytes) {
                *consumed = off + n;
                reject(p, 431, "request header fields too large");
                return fail(p);
            }
            http_parser_pause(&p->hp, 0);
            off += n;
            continue;
        }
        *consumed = off + n;
        if (e == HPE_PAUSED && p->state == ST_DONE)
            return SB_OK;
        if (e != HPE_OK || n != len - off)
            return fail(p);
        if (in_headers) {
            p->header_bytes += n;
            if (p->header_bytes > p->max_header_bytes) {
                reject(p, 431, "request header fields too large");
                return fail(p);
            }
        }
        off += n;
    }
    return SB_EAGAIN;
}

sb_slice sb_http_header_get(const sb_http_request *r, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++) {
        const sb_http_header *h = &r->headers[i];
        if (h->name.len == n && strncasecmp(h->name.base, name, n) == 0)
            return h->value;
    }
    return sb_slice_make(NULL, 0);
}

static int is_ows(char c) {
    return c == ' ' || c == '\t';
}

int sb_http_header_has_token(const sb_http_request *r, const char *name, const char *token) {
    size_t n = strlen(name), tn = strlen(token);
    for (size_t i = 0; i < r->nheaders; i++) {
        const sb_http_header *h = &r->headers[i];
        if (h->name.len != n || strncasecmp(h->name.base, name, n) != 0)
            continue;
        const char *s = h->value.base, *end = s + h->value.len;
        while (s < end) {
            const char *comma = memchr(s, ',', (size_t)(end - s));
            const char *e = comma ? comma : end;
            const char *a = s, *b = e;
            while (a < b && is_ows(*a))
                a++;
            while (b > a && is_ows(b[-1]))
                b--;
            if ((size_t)(b - a) == tn && strncasecmp(a, token, tn) == 0)
                return 1;
            if (!comma)
                break;
            s = comma + 1;
        }
    }
    return 0;
}

/* Keys are compared decoded (a client may escape any byte); one that does
 * not decode is compared as sent. */
static int key_matches(sb_slice k, const char *name, size_t nlen, int icase, sb_buf *tmp) {
    if (memchr(k.base, '%', k.len) || memchr(k.base, '+', k.len)) {
        sb_buf_reset(tmp);
        if (sb_url_decode(k, 1, tmp) == SB_OK)
            k = sb_slice_make(tmp->data, tmp->len);
    }
    if (k.len != nlen)
        return 0;
    return icase ? strncasecmp(k.base, name, nlen) == 0 : memcmp(k.base, name, nlen) == 0;
}

int sb_http_query_get(sb_slice query, const char *name, int icase, sb_buf *out) {
    size_t nlen = strlen(name);
    int count = 0, rc = SB_OK;
    sb_buf_reset(out);
    if (!query.len)
        return 0;
    sb_buf tmp;
    sb_buf_init(&tmp);
    const char *s = query.base, *end = query.base + query.len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        sb_slice k = sb_slice_make(s, (size_t)((eq ? eq : stop) - s));
        sb_slice v = eq ? sb_slice_make(eq + 1, (size_t)(stop - eq - 1)) : sb_slice_make(stop, 0);
        if (k.len && key_matches(k, name, nlen, icase, &tmp) && count++ == 0)
            rc = sb_url_decode(v, 1, out);
        if (!amp)
            break;
        s = amp + 1;
    }
    sb_buf_free(&tmp);
    return rc < 0 ? rc : count;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sb_url_decode(sb_slice in, int plus, sb_buf *out) {
    sb_buf_reserve(out, in.len); /* decoding never grows the text */
    char *d = out->data + out->len;
    const unsigned char *s = (const unsigned char *)in.base;
    for (size_t i = 0; i < in.len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < in.len ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                out->data[out->len] = '\0';
                return SB_EINVAL;
            }
            *d++ = (char)(hi << 4 | lo);
            i += 2;
        } else if (plus && s[i] == '+') {
            *d++ = ' ';
        } else {
            *d++ = (char)s[i];
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
    return SB_OK;
}

void sb_url_encode(const char *s, size_t n, sb_buf *out) {
    static const char hex[] = "0123456789ABCDEF";
    sb_buf_reserve(out, 3 * n);
    char *d = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~') {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
}

void sb_url_path_collapse(sb_slice path, sb_buf *out) {
    for (size_t i = 0; i < path.len; i++)
        if (path.base[i] != '/' || !out->len || out->data[out->len - 1] != '/')
            sb_buf_appendc(out, path.base[i]);
}

int sb_url_path_split(sb_slice path, sb_buf *seg, size_t max, size_t *nseg) {
    const char *p = path.base, *end = path.base + path.len;
    *nseg = 0;
    while (p < end) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (!e)
            e = end;
        if (e > p) {
            if (*nseg == max)
                return SB_E2BIG;
            sb_buf *s = &seg[(*nseg)++];
            sb_buf_reset(s);
            if (sb_url_decode(sb_slice_make(p, (size_t)(e - p)), 0, s) != SB_OK || memchr(s->data, 0, s->len) ||
                !sb_utf8_valid(s->data, s->len))
                return SB_EINVAL;
        }
        p = e + 1;
    }
    return SB_OK;
}
