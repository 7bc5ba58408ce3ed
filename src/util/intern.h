/*
 * intern.h - shared, counted copies of strings that many holders carry.
 *
 * Tens of thousands of client connections carry a handful of distinct
 * strings: every connection of a user has its user id, and most clients of
 * an application connect with the same query string.  An intern table keeps
 * one copy of each distinct string with the number of its holders, so each
 * holder keeps a pointer instead of an allocation of its own (memory per
 * idle connection is what limits how many a server holds).
 *
 * sb_intern_get() returns the shared copy and counts one more holder;
 * sb_intern_put() counts one fewer and frees the copy with its last holder.
 * A returned pointer stays valid, and its text unchanged, while it is held.
 * Strings are NUL-terminated text (an embedded NUL ends them).  One table
 * per event loop: no locking.
 *
 * Not here: interning of structured values (the router shares equal claim
 * sets itself, hub/router.c).
 */
#ifndef SB_INTERN_H
#define SB_INTERN_H

#include <stddef.h>

#include "util/dict.h"

typedef struct sb_intern {
    sb_dict strings; /* text -> number of holders; the entry's key copy is the shared string */
} sb_intern;

void sb_intern_init(sb_intern *t);
/* Frees the table; every string still held becomes invalid. */
void sb_intern_free(sb_intern *t);
/* The shared copy of the first n bytes of s (up to a NUL), held once more. */
const char *sb_intern_get(sb_intern *t, const char *s, size_t n);
static inline const char *sb_intern_gets(sb_intern *t, const char *s);
/* Stop holding s (a pointer sb_intern_get returned); NULL is ignored. */
void sb_intern_put(sb_intern *t, const char *s);
/* Distinct strings held. */
static inline size_t sb_intern_count(const sb_intern *t) {
    return sb_dict_count(&t->strings);
}

#include <string.h>
static inline const char *sb_intern_gets(sb_intern *t, const char *s) {
    return sb_intern_get(t, s, strlen(s));
}

#endif
