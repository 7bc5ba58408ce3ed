/*
 * httpresp.c - just enough HTTP/1.1 response parsing for a load generator:
 * the status, where the head ends, and how long the body is (Content-Length or
 * chunked), plus "Connection: close".  I/O-free and stateless: callers keep the
 * bytes and call again when more arrive (responses are small and few per
 * connection, so re-scanning a partial head costs nothing that matters).
 *
 * Called by: conn.c (negotiate, upgrade), publish.c (pipelined publish
 * answers), control.c (blocking set-up calls), selftest.c.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"
#include "util/error.h"

#define MAX_HEAD (64 * 1024)

static int header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen) {
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return 0;
    const char *v = line + n + 1, *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return 1;
}

int sb_lg_http_parse_head(const char *p, size_t len, sb_lg_http_resp *r) {
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    if (!end)
        return len > MAX_HEAD ? SB_EPROTO : SB_EAGAIN;
    r->head_len = (size_t)(end - p) + 4;
    if (r->head_len > MAX_HEAD || r->head_len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return SB_EPROTO;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return SB_EPROTO;
        status = status * 10 + (p[i] - '0');
    }
    r->status = status;
    /* lines end with CRLF; the head's last line ends at `end`, so the search below always finds one
     * (a bare CR or LF inside a line is just a byte of that line) */
    const char *line = (const char *)memmem(p, r->head_len, "\r\n", 2) + 2;
    while (line < end) {
        const char *nl = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        size_t ll = (size_t)(nl - line);
        const char *v;
        size_t vl;
        if (header_is(line, ll, "Content-Length", &v, &vl)) {
            char num[24];
            if (!vl || vl >= sizeof num)
                return SB_EPROTO;
            memcpy(num, v, vl);
            num[vl] = '\0';
            char *stop;
            long long cl = strtoll(num, &stop, 10);
            if (*stop || cl < 0)
                return SB_EPROTO;
            r->content_length = cl;
        } else if (header_is(line, ll, "Transfer-Encoding", &v, &vl)) {
            r->chunked = vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0;
        } else if (header_is(line, ll, "Connection", &v, &vl)) {
            r->close = vl == 5 && strncasecmp(v, "close", 5) == 0;
        }
        line = nl + 2;
    }
    return SB_OK;
}

/* Chunked body starting at p: SB_OK with *used = bytes through the last chunk's CRLF. */
static int chunked_length(const char *p, size_t len, size_t *used) {
    size_t off = 0;
    for (;;) {
        const char *nl = memmem(p + off, len - off, "\r\n", 2);
        if (!nl)
            return len - off > 1024 ? SB_EPROTO : SB_EAGAIN;
        size_t size = 0;
        const char *q = p + off;
        int digits = 0;
        for (; q < nl && *q != ';'; q++, digits++) {
            int v = (*q >= '0' && *q <= '9')   ? *q - '0'
                    : (*q >= 'a' && *q <= 'f') ? *q - 'a' + 10
                    : (*q >= 'A' && *q <= 'F') ? *q - 'A' + 10
                                               : -1;
            if (v < 0 || digits >= 15)
                return SB_EPROTO;
            size = size * 16 + (size_t)v;
        }
        if (!digits)
            return SB_EPROTO;
        off = (size_t)(nl - p) + 2;
        if (size == 0) {
            /* trailers are not used by our servers: the terminal chunk is followed by CRLF */
            if (len - off < 2)
                return SB_EAGAIN;
            if (memcmp(p + off, "\r\n", 2) != 0)
                return SB_EPROTO;
            *used = off + 2;
            return SB_OK;
        }
        if (len - off < size + 2)
            return SB_EAGAIN;
        if (memcmp(p + off + size, "\r\n", 2) != 0)
            return SB_EPROTO;
        off += size + 2;
    }
}

int sb_lg_http_complete(const char *p, size_t len, const sb_lg_http_resp *r, size_t *total) {
    if (len < r->head_len)
        return SB_EAGAIN;
    if (r->chunked) {
        size_t used;
        int rc = chunked_length(p + r->head_len, len - r->head_len, &used);
        if (rc == SB_OK)
            *total = r->head_len + used;
        return rc;
    }
    size_t body = r->content_length > 0 ? (size_t)r->content_length : 0;
    if (len - r->head_len < body)
        return SB_EAGAIN;
    *total = r->head_len + body;
    return SB_OK;
}
