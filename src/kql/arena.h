/*
 * arena.h - a bump allocator for one query's lifetime.
 *
 * The parser and the translator allocate every AST node, string and scratch
 * array here and free the whole arena once, which is what makes their error
 * paths (a longjmp out of deep recursion) leak-free by construction.
 * Allocation never fails (sb_malloc's policy); memory is bounded by the
 * caller, which limits the query text length and the nesting depth.
 *
 * Not thread-safe; one arena belongs to one query on one thread.
 */
#ifndef SB_KQL_ARENA_H
#define SB_KQL_ARENA_H

#include <stddef.h>

typedef struct sb_kql_arena_block sb_kql_arena_block;

typedef struct sb_kql_arena {
    sb_kql_arena_block *head;
} sb_kql_arena;

void sb_kql_arena_init(sb_kql_arena *a);
/* Release every allocation at once. */
void sb_kql_arena_free(sb_kql_arena *a);
/* Zeroed, max_align_t-aligned memory. */
void *sb_kql_alloc(sb_kql_arena *a, size_t n);
/* A NUL-terminated copy of n bytes. */
char *sb_kql_strndup(sb_kql_arena *a, const char *s, size_t n);
char *sb_kql_strdup(sb_kql_arena *a, const char *s);
char *sb_kql_sprintf(sb_kql_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append one element of size sz to the array *arr holding *n elements (doubling capacity in the arena). */
void sb_kql_push(sb_kql_arena *a, void *arr, size_t *n, const void *elem, size_t sz);

#endif
