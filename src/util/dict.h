/*
 * dict.h - a string-keyed hash table (separate chaining, power-of-two buckets).
 *
 * Keys are byte strings (shorter than 4 GiB) copied into the entry: the dict
 * owns its key copies.  An index of objects by a key the object itself
 * carries can skip the copy with sb_dict_set_ref() (a connection's id: one
 * such entry per connection, so the copy would be paid tens of thousands of
 * times).  Values are opaque pointers the dict never frees.  The hash is
 * seeded per process so remote peers cannot aim many names at one bucket
 * cheaply.
 *
 * Used for the router's indexes: hubs by name, connections by id, groups by
 * name, users by id (the largest, connections by token, is intrusive:
 * util/ihash.h).  Lookups and deletes are O(1) expected.
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
    const char *key; /* NUL-terminated: copy below, or the caller's own (sb_dict_set_ref) */
    uint32_t hash;   /* low half of the key's hash: picks the bucket, screens comparisons */
    uint32_t klen;
    char copy[];     /* the key copy; empty for sb_dict_set_ref entries */
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
/* The entry for key, or NULL: its key copy and value stay in place until it is deleted. */
sb_dict_entry *sb_dict_find(const sb_dict *d, const char *key, size_t klen);
static inline void *sb_dict_gets(const sb_dict *d, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *sb_dict_set(sb_dict *d, const char *key, size_t klen, void *value);
/*
 * Insert or replace without copying the key: the entry points at key, which
 * the caller keeps unchanged, NUL-terminated and alive until the entry is
 * deleted (typically a key stored in the value object itself).  Replacing an
 * entry made this way points it at the new key; replacing a copied one keeps
 * the copy.
 */
void *sb_dict_set_ref(sb_dict *d, const char *key, size_t klen, void *value);
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
