/* buf.c - slices, growable buffers and shared buffers; see buf.h. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "util/alloc.h"

int sb_slice_ieq(sb_slice a, const char *s) {
    size_t n = strlen(s);
    return a.len == n && strncasecmp(a.base, s, n) == 0;
}

void sb_buf_init(sb_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void sb_buf_free(sb_buf *b) {
    sb_free(b->data);
    sb_buf_init(b);
}

void sb_buf_reserve(sb_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = sb_realloc(b->data, cap);
    b->cap = cap;
}

void sb_buf_append(sb_buf *b, const void *p, size_t n) {
    sb_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sb_buf_appends(sb_buf *b, const char *s) { sb_buf_append(b, s, strlen(s)); }

void sb_buf_appendc(sb_buf *b, char c) { sb_buf_append(b, &c, 1); }

void sb_buf_appendf(sb_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    sb_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_buf_consume(sb_buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void sb_buf_reset(sb_buf *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *sb_buf_steal(sb_buf *b, size_t *len) {
    if (!b->data)
        sb_buf_reserve(b, 0), b->data[0] = '\0';
    char *p = b->data;
    if (len)
        *len = b->len;
    sb_buf_init(b);
    return p;
}

sb_shbuf *sb_shbuf_new(size_t len) {
    sb_shbuf *s = sb_malloc(sizeof(*s) + len + 1);
    s->refs = 1;
    s->len = len;
    s->data[len] = '\0';
    return s;
}

sb_shbuf *sb_shbuf_from(const void *p, size_t len) {
    sb_shbuf *s = sb_shbuf_new(len);
    if (len)
        memcpy(s->data, p, len);
    return s;
}

void sb_shbuf_unref(sb_shbuf *s) {
    if (s && --s->refs == 0)
        sb_free(s);
}
