/* dict.c - seeded chained hash table; see dict.h. */
#include "util/dict.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/alloc.h"

static uint64_t hash_seed;
static int hash_seeded;

/*
 * A small seeded multiply-xorshift hash over 8-byte words.  Hand-written
 * because it is on every router lookup and none of our libraries exports a
 * general-purpose keyed hash; it is not a cryptographic MAC, only a cheap guard
 * against trivially colliding names.
 */
uint64_t sb_hash_bytes(const void *p, size_t n) {
    if (!hash_seeded) {
        if (getrandom(&hash_seed, sizeof hash_seed, 0) != sizeof hash_seed)
            hash_seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&hash_seed;
        hash_seeded = 1;
    }
    const unsigned char *s = p;
    uint64_t h = hash_seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h ^= w * 0xbf58476d1ce4e5b9ULL;
        h = (h << 27 | h >> 37) * 0x94d049bb133111ebULL;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h ^= w * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    return h;
}

void sb_dict_init(sb_dict *d) {
    d->buckets = NULL;
    d->nbuckets = 0;
    d->count = 0;
}

void sb_dict_free(sb_dict *d) {
    for (size_t i = 0; i < d->nbuckets; i++) {
        sb_dict_entry *e = d->buckets[i];
        while (e) {
            sb_dict_entry *n = e->next;
            sb_free(e);
            e = n;
        }
    }
    sb_free(d->buckets);
    sb_dict_init(d);
}

static sb_dict_entry **find(const sb_dict *d, const char *key, size_t klen, uint32_t h) {
    sb_dict_entry **pp = &d->buckets[h & (d->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
    return pp;
}

static uint32_t hash32(const char *key, size_t klen) { return (uint32_t)sb_hash_bytes(key, klen); }

sb_dict_entry *sb_dict_find(const sb_dict *d, const char *key, size_t klen) {
    if (!d->count)
        return NULL;
    return *find(d, key, klen, hash32(key, klen));
}

void *sb_dict_get(const sb_dict *d, const char *key, size_t klen) {
    sb_dict_entry *e = sb_dict_find(d, key, klen);
    return e ? e->value : NULL;
}

static void grow(sb_dict *d) {
    size_t n = d->nbuckets ? d->nbuckets * 2 : 16;
    sb_dict_entry **b = sb_calloc(n, sizeof(*b));
    for (size_t i = 0; i < d->nbuckets; i++) {
        sb_dict_entry *e = d->buckets[i];
        while (e) {
            sb_dict_entry *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    sb_free(d->buckets);
    d->buckets = b;
    d->nbuckets = n;
}

static void *set(sb_dict *d, const char *key, size_t klen, void *value, int copy) {
    if (d->count >= d->nbuckets)
        grow(d);
    uint32_t h = hash32(key, klen);
    sb_dict_entry **pp = find(d, key, klen, h);
    if (*pp) {
        sb_dict_entry *e = *pp;
        void *old = e->value;
        e->value = value;
        if (e->key != e->copy)
            e->key = key;
        return old;
    }
    sb_dict_entry *e = sb_malloc(sizeof(*e) + (copy ? klen + 1 : 0));
    e->next = NULL;
    e->value = value;
    e->hash = h;
    e->klen = (uint32_t)klen;
    if (copy) {
        memcpy(e->copy, key, klen);
        e->copy[klen] = '\0';
        e->key = e->copy;
    } else {
        e->key = key;
    }
    *pp = e;
    d->count++;
    return NULL;
}

void *sb_dict_set(sb_dict *d, const char *key, size_t klen, void *value) { return set(d, key, klen, value, 1); }

void *sb_dict_set_ref(sb_dict *d, const char *key, size_t klen, void *value) { return set(d, key, klen, value, 0); }

void *sb_dict_del(sb_dict *d, const char *key, size_t klen) {
    if (!d->count)
        return NULL;
    sb_dict_entry **pp = find(d, key, klen, hash32(key, klen));
    sb_dict_entry *e = *pp;
    if (!e)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    sb_free(e);
    d->count--;
    return v;
}

void sb_dict_iter_init(sb_dict_iter *it, const sb_dict *d) {
    it->d = d;
    it->bucket = 0;
    it->next = NULL;
}

sb_dict_entry *sb_dict_next(sb_dict_iter *it) {
    const sb_dict *d = it->d;
    for (;;) {
        if (it->next) {
            sb_dict_entry *e = it->next;
            it->next = e->next;
            return e;
        }
        if (it->bucket >= d->nbuckets)
            return NULL;
        it->next = d->buckets[it->bucket++];
    }
}
