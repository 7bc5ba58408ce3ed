/*
 * list.h - intrusive doubly-linked lists (circular, with a sentinel head).
 *
 * Used where an object must leave a collection in O(1) without a lookup:
 * group memberships (a node sits in both the group's and the connection's
 * list), a user's connections, connections with pending output.
 */
#ifndef SB_LIST_H
#define SB_LIST_H

#include <stddef.h>

typedef struct sb_list {
    struct sb_list *prev, *next;
} sb_list;

static inline void sb_list_init(sb_list *h) { h->prev = h->next = h; }
static inline int sb_list_empty(const sb_list *h) { return h->next == h; }
/* A node that was initialised and removed (or never added) is "unlinked". */
static inline int sb_list_linked(const sb_list *n) { return n->next != n && n->next != NULL; }
static inline void sb_list_insert_tail(sb_list *h, sb_list *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void sb_list_remove(sb_list *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define sb_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define sb_list_foreach_safe(pos, tmp, head)                                                                     \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif
