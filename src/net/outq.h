/*
 * outq.h - a bounded queue of shared buffers waiting to be written.
 *
 * Each entry holds one reference to an sb_shbuf (usually a message framed once
 * and shared by every recipient of a fan-out); `off` is how much of the first
 * entry was already written.  `bytes` counts what is still queued so the owner
 * can enforce its limit (a slow consumer is closed, never allowed to grow
 * memory).  Push takes a new reference; pop/clear drop them.
 */
#ifndef SB_OUTQ_H
#define SB_OUTQ_H

#include <stddef.h>

#include "util/buf.h"

typedef struct sb_outq {
    sb_shbuf **items;
    size_t head, count, cap;
    size_t off;   /* bytes of items[head] already written */
    size_t bytes; /* unwritten bytes in the queue */
} sb_outq;

void sb_outq_init(sb_outq *q);
void sb_outq_clear(sb_outq *q);
/* Queue b (takes a new reference). */
void sb_outq_push(sb_outq *q, sb_shbuf *b);
/* The i-th queued entry (0 = head). */
static inline sb_shbuf *sb_outq_at(const sb_outq *q, size_t i) { return q->items[(q->head + i) % q->cap]; }
/* Forget n written bytes from the front, dropping references of finished entries. */
void sb_outq_consume(sb_outq *q, size_t n);

#endif
