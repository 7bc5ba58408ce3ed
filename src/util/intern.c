/*
 * intern.c - shared string copies; see intern.h.
 *
 * The table is a plain sb_dict whose entry's key copy IS the shared string
 * and whose value is the holder count (as an integer, not a pointer): one
 * allocation per distinct string, and sb_intern_put() finds the entry from
 * the string itself without hashing it.
 */
#include "util/intern.h"

#include <stdint.h>
#include <string.h>

#include "util/list.h"

static size_t holders(const sb_dict_entry *e) {
    return (size_t)(uintptr_t)e->value;
}

void sb_intern_init(sb_intern *t) {
    sb_dict_init(&t->strings);
}

void sb_intern_free(sb_intern *t) {
    sb_dict_free(&t->strings);
}

const char *sb_intern_get(sb_intern *t, const char *s, size_t n) {
    const char *nul = memchr(s, '\0', n);
    if (nul)
        n = (size_t)(nul - s);
    sb_dict_entry *e = sb_dict_find(&t->strings, s, n);
    if (!e) {
        sb_dict_set(&t->strings, s, n, (void *)(uintptr_t)0);
        e = sb_dict_find(&t->strings, s, n);
    }
    e->value = (void *)(uintptr_t)(holders(e) + 1);
    return e->key;
}

void sb_intern_put(sb_intern *t, const char *s) {
    if (!s)
        return;
    sb_dict_entry *e = sb_container_of(s, sb_dict_entry, copy);
    size_t n = holders(e) - 1;
    if (n)
        e->value = (void *)(uintptr_t)n;
    else
        sb_dict_del(&t->strings, e->key, e->klen);
}
