/* outq.c - bounded shared-buffer write queue; see outq.h. */
#include "net/outq.h"

#include "util/alloc.h"

void sb_outq_init(sb_outq *q) {
    q->items = NULL;
    q->head = q->count = q->cap = 0;
    q->off = q->bytes = 0;
}

void sb_outq_clear(sb_outq *q) {
    for (size_t i = 0; i < q->count; i++)
        sb_shbuf_unref(sb_outq_at(q, i));
    sb_free(q->items);
    sb_outq_init(q);
}

void sb_outq_push(sb_outq *q, sb_shbuf *b) {
    if (q->count == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 4;
        sb_shbuf **n = sb_malloc(ncap * sizeof(*n));
        for (size_t i = 0; i < q->count; i++)
            n[i] = sb_outq_at(q, i);
        sb_free(q->items);
        q->items = n;
        q->cap = ncap;
        q->head = 0;
    }
    q->items[(q->head + q->count) % q->cap] = sb_shbuf_ref(b);
    q->count++;
    q->bytes += b->len;
}

void sb_outq_consume(sb_outq *q, size_t n) {
    q->bytes -= n;
    while (n && q->count) {
        sb_shbuf *b = q->items[q->head];
        size_t left = b->len - q->off;
        if (n < left) {
            q->off += n;
            return;
        }
        n -= left;
        sb_shbuf_unref(b);
        q->off = 0;
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    /* zero-length entries at the front are finished too */
    while (q->count && q->items[q->head]->len == 0) {
        sb_shbuf_unref(q->items[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
}
