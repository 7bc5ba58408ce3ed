/*
 * arena.c - the query arena; see arena.h.
 *
 * Blocks of at least 8 KiB are chained newest first; a request larger than
 * a block gets a block of its own.  sb_kql_push keeps arrays at power-of-two
 * capacities so appending is amortised O(1) even though old copies are only
 * reclaimed with the arena.
 */
#include "kql/arena.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

#define BLOCK_BYTES 8192

struct sb_kql_arena_block {
    sb_kql_arena_block *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

void sb_kql_arena_init(sb_kql_arena *a) {
    a->head = NULL;
}

void sb_kql_arena_free(sb_kql_arena *a) {
    sb_kql_arena_block *b = a->head;
    while (b) {
        sb_kql_arena_block *next = b->next;
        sb_free(b);
        b = next;
    }
    a->head = NULL;
}

void *sb_kql_alloc(sb_kql_arena *a, size_t n) {
    size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (n == 0)
        n = align;
    sb_kql_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > BLOCK_BYTES ? n : BLOCK_BYTES;
        b = sb_malloc(sizeof *b + cap);
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *sb_kql_strndup(sb_kql_arena *a, const char *s, size_t n) {
    char *p = sb_kql_alloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sb_kql_strdup(sb_kql_arena *a, const char *s) {
    return sb_kql_strndup(a, s, strlen(s));
}

char *sb_kql_sprintf(sb_kql_arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = sb_kql_alloc(a, (size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    return p;
}

void sb_kql_push(sb_kql_arena *a, void *arr, size_t *n, const void *elem, size_t sz) {
    unsigned char **pa = arr;
    /* capacity is max(4, the next power of two >= n): full exactly when n is 4, 8, 16, ... */
    if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) {
        size_t cap = *n ? *n * 2 : 4;
        unsigned char *fresh = sb_kql_alloc(a, cap * sz);
        if (*n)
            memcpy(fresh, *pa, *n * sz);
        *pa = fresh;
    }
    memcpy(*pa + *n * sz, elem, sz);
    (*n)++;
}
