/*
 * ihash.h - an intrusive hash index over objects that carry their own key.
 *
 * sb_dict allocates an entry with a copy of the key for everything it
 * indexes.  For the largest index of small objects - every client by its
 * connection token, tens of thousands of them - that entry costs more than a
 * fifth of the client itself.  Here the object embeds an sb_ihash_node (one
 * pointer) and keeps its fixed-length key at a fixed offset from that node,
 * so the index allocates nothing but its bucket array.
 *
 * Rules: every key of an index has the same length (klen); keys are unique
 * and must not change while the object is indexed; the object outlives its
 * membership.  Lookups and removals are O(1) expected.  Iteration tolerates
 * removing the node it just returned, nothing else.  Buckets double when
 * the count reaches their number and are never shrunk (like sb_dict).
 *
 * Not here: variable-length or owned keys (util/dict.h).
 */
#ifndef SB_IHASH_H
#define SB_IHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_ihash_node {
    struct sb_ihash_node *next;
} sb_ihash_node;

typedef struct sb_ihash {
    sb_ihash_node **buckets;
    uint32_t nbuckets; /* power of two, 0 before the first insert */
    uint32_t count;
    ptrdiff_t key_off; /* key address minus node address */
    size_t klen;
} sb_ihash;

/* key_off for objects of `type` indexed through `node_member` by `key_member`. */
#define SB_IHASH_KEY_OFF(type, node_member, key_member)                                                      \
    ((ptrdiff_t)offsetof(type, key_member) - (ptrdiff_t)offsetof(type, node_member))

typedef struct sb_ihash_iter {
    const sb_ihash *h;
    uint32_t bucket;
    sb_ihash_node *next;
} sb_ihash_iter;

void sb_ihash_init(sb_ihash *h, ptrdiff_t key_off, size_t klen);
/* Frees the bucket array; the indexed objects are the caller's. */
void sb_ihash_free(sb_ihash *h);
/* Index n under the key it carries. */
void sb_ihash_insert(sb_ihash *h, sb_ihash_node *n);
/* The node whose key is key (NULL if none, or if klen is not the index's key length). */
sb_ihash_node *sb_ihash_find(const sb_ihash *h, const char *key, size_t klen);
/* Take n out of the index; 0 if it was not in it. */
int sb_ihash_remove(sb_ihash *h, sb_ihash_node *n);
static inline size_t sb_ihash_count(const sb_ihash *h) {
    return h->count;
}

void sb_ihash_iter_init(sb_ihash_iter *it, const sb_ihash *h);
/* Next node or NULL at the end. */
sb_ihash_node *sb_ihash_next(sb_ihash_iter *it);

#endif
