/*
 * buf.h - byte slices, growable buffers and refcounted shared buffers.
 *
 * sb_slice   a borrowed view {base, len}; layout-compatible with uv_buf_t so a
 *            slice array can be handed to uv_write() directly.
 * sb_buf     an owned, growable byte buffer (always NUL-terminated past len so
 *            text can be passed to C string functions).
 * sb_shbuf   an immutable, refcounted byte block.  Fan-out encodes and frames a
 *            message once into an sb_shbuf and every recipient's output queue
 *            holds a reference (h2o shared chunks).  Refcounts are plain ints:
 *            a shbuf never crosses threads (each event loop owns its own).
 *
 * Ownership: sb_buf_free releases the storage; sb_shbuf_unref frees at zero.
 */
#ifndef SB_BUF_H
#define SB_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sb_slice {
    char *base;
    size_t len;
} sb_slice;

#define SB_SLICE(s) ((sb_slice){(char *)(s), sizeof(s) - 1})

static inline sb_slice sb_slice_make(const void *p, size_t n) { return (sb_slice){(char *)p, n}; }
static inline int sb_slice_eq(sb_slice a, const char *s) {
    size_t n = strlen(s);
    return a.len == n && memcmp(a.base, s, n) == 0;
}
int sb_slice_ieq(sb_slice a, const char *s);

typedef struct sb_buf {
    char *data;
    size_t len;
    size_t cap;
} sb_buf;

void sb_buf_init(sb_buf *b);
void sb_buf_free(sb_buf *b);
void sb_buf_reserve(sb_buf *b, size_t extra);
void sb_buf_append(sb_buf *b, const void *p, size_t n);
void sb_buf_appends(sb_buf *b, const char *s);
void sb_buf_appendc(sb_buf *b, char c);
void sb_buf_appendf(sb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Remove the first n bytes. */
void sb_buf_consume(sb_buf *b, size_t n);
void sb_buf_reset(sb_buf *b);
/* Hand the storage to the caller (NUL-terminated); b is left empty. */
char *sb_buf_steal(sb_buf *b, size_t *len);

typedef struct sb_shbuf {
    int refs;
    size_t len;
    char data[];
} sb_shbuf;

/* New shared buffer with refs == 1 and len bytes of uninitialised storage. */
sb_shbuf *sb_shbuf_new(size_t len);
sb_shbuf *sb_shbuf_from(const void *p, size_t len);
static inline sb_shbuf *sb_shbuf_ref(sb_shbuf *s) {
    s->refs++;
    return s;
}
void sb_shbuf_unref(sb_shbuf *s);

#endif
