/*
 * dict.h - a string-keyed hash table (separate chaining, power-of-two buckets).
 *
 * Keys are byte strings copied into the entry (the dict owns its key copies);
 * values are opaque pointers the dict never frees.  The hash is seeded per
 * process so remote peers cannot aim many names at one bucket cheaply.
 *
 * Used for every index of the router: hubs by name, connections by id and
 * token, groups by name, users by id.  Lookups and deletes are O(1) expected.
 *
 * Iteration: sb_dict_next() tolerates deleting the entry it just returned.
 */
#ifndef SB_DICT_H
#define SB_DICT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_dict_entry {
    struct sb_dict_entry *next;
    void *value;
    uint64_t hash;
    size_t klen;
    char key[]; /* NUL-terminated copy */
} sb_dict_entry;

typedef struct sb_dict {
    sb_dict_entry **buckets;
    size_t nbuckets; /* power of two, 0 before first insert */
    size_t count;
} sb_dict;

typedef struct sb_dict_iter {
    const sb_dict *d;
    size_t bucket;
    sb_dict_entry *next;
} sb_dict_iter;

void sb_dict_init(sb_dict *d);
/* Frees the table and entries, not the values. */
void sb_dict_free(sb_dict *d);
void *sb_dict_get(const sb_dict *d, const char *key, size_t klen);
static inline void *sb_dict_gets(const sb_dict *d, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *sb_dict_set(sb_dict *d, const char *key, size_t klen, void *value);
/* Remove; returns the removed value or NULL. */
void *sb_dict_del(sb_dict *d, const char *key, size_t klen);
static inline size_t sb_dict_count(const sb_dict *d) { return d->count; }

void sb_dict_iter_init(sb_dict_iter *it, const sb_dict *d);
/* Next entry or NULL at the end. */
sb_dict_entry *sb_dict_next(sb_dict_iter *it);

uint64_t sb_hash_bytes(const void *p, size_t n);

#include <string.h>
static inline void *sb_dict_gets(const sb_dict *d, const char *key) { return sb_dict_get(d, key, strlen(key)); }

#endif
