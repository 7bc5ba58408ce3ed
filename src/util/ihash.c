/* ihash.c - intrusive hash index; see ihash.h.  Hashes with the seeded sb_hash_bytes of util/dict.h. */
#include "util/ihash.h"

#include <string.h>

#include "util/alloc.h"
#include "util/dict.h"

static const char *key_of(const sb_ihash *h, const sb_ihash_node *n) {
    return (const char *)n + h->key_off;
}

static sb_ihash_node **bucket_of(const sb_ihash *h, const char *key) {
    return &h->buckets[sb_hash_bytes(key, h->klen) & (h->nbuckets - 1)];
}

void sb_ihash_init(sb_ihash *h, ptrdiff_t key_off, size_t klen) {
    h->buckets = NULL;
    h->nbuckets = 0;
    h->count = 0;
    h->key_off = key_off;
    h->klen = klen;
}

void sb_ihash_free(sb_ihash *h) {
    sb_free(h->buckets);
    sb_ihash_init(h, h->key_off, h->klen);
}

static void grow(sb_ihash *h) {
    sb_ihash_node **old = h->buckets;
    uint32_t nold = h->nbuckets;
    h->nbuckets = nold ? nold * 2 : 16;
    h->buckets = sb_calloc(h->nbuckets, sizeof(*h->buckets));
    for (uint32_t i = 0; i < nold; i++) {
        sb_ihash_node *n = old[i];
        while (n) {
            sb_ihash_node *next = n->next;
            sb_ihash_node **b = bucket_of(h, key_of(h, n));
            n->next = *b;
            *b = n;
            n = next;
        }
    }
    sb_free(old);
}

void sb_ihash_insert(sb_ihash *h, sb_ihash_node *n) {
    if (h->count >= h->nbuckets)
        grow(h);
    sb_ihash_node **b = bucket_of(h, key_of(h, n));
    n->next = *b;
    *b = n;
    h->count++;
}

sb_ihash_node *sb_ihash_find(const sb_ihash *h, const char *key, size_t klen) {
    if (!h->count || klen != h->klen)
        return NULL;
    for (sb_ihash_node *n = *bucket_of(h, key); n; n = n->next)
        if (memcmp(key_of(h, n), key, klen) == 0)
            return n;
    return NULL;
}

int sb_ihash_remove(sb_ihash *h, sb_ihash_node *n) {
    if (!h->count)
        return 0;
    for (sb_ihash_node **pp = bucket_of(h, key_of(h, n)); *pp; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            n->next = NULL;
            h->count--;
            return 1;
        }
    }
    return 0;
}

void sb_ihash_iter_init(sb_ihash_iter *it, const sb_ihash *h) {
    it->h = h;
    it->bucket = 0;
    it->next = NULL;
}

sb_ihash_node *sb_ihash_next(sb_ihash_iter *it) {
    for (;;) {
        if (it->next) {
            sb_ihash_node *n = it->next;
            it->next = n->next;
            return n;
        }
        if (it->bucket >= it->h->nbuckets)
            return NULL;
        it->next = it->h->buckets[it->bucket++];
    }
}
