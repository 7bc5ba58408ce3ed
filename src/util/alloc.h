/*
 * alloc.h - the one allocation wrapper and out-of-memory policy.
 *
 * Policy (set once, here): Switchboard does not try to limp on after malloc
 * fails.  Memory is bounded by configuration (queue sizes, message sizes,
 * connection quotas), so an allocation failure means the machine is out of
 * memory; we print one line and abort.  Callers therefore never check the
 * result of sb_malloc()/sb_calloc()/sb_realloc()/sb_strdup().
 */
#ifndef SB_ALLOC_H
#define SB_ALLOC_H

#include <stddef.h>

void *sb_malloc(size_t n);
void *sb_calloc(size_t count, size_t size);
void *sb_realloc(void *p, size_t n);
char *sb_strdup(const char *s);
char *sb_strndup(const char *s, size_t n);
/* printf into a new heap string. */
char *sb_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define sb_free free

#include <stdlib.h>

#endif
