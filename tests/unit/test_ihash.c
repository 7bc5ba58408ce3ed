/*
 * test_ihash.c - the intrusive hash index (util/ihash.c).
 *
 * Objects carry their node and their key at either side of it (the offset is
 * negative for one layout, positive for the other).  Thousands of inserts
 * across many growths, lookups of present, absent and wrong-length keys,
 * removal of members and non-members, and iteration that removes as it goes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/alloc.h"
#include "util/ihash.h"
#include "util/list.h"

#define KLEN 8

typedef struct key_first {
    char key[KLEN + 1];
    int value;
    sb_ihash_node link;
} key_first;

typedef struct node_first {
    sb_ihash_node link;
    int value;
    char key[KLEN + 1];
} node_first;

static void key_for(int i, char out[KLEN + 1]) {
    snprintf(out, KLEN + 1, "k%07u", (unsigned)i % 10000000u);
}

static key_first *find(const sb_ihash *h, const char *key, size_t len) {
    sb_ihash_node *n = sb_ihash_find(h, key, len);
    return n ? sb_container_of(n, key_first, link) : NULL;
}

static void test_insert_find_remove(void **state) {
    (void)state;
    enum { N = 5000 };
    key_first *objs = sb_calloc(N, sizeof *objs);
    sb_ihash h;
    sb_ihash_init(&h, SB_IHASH_KEY_OFF(key_first, link, key), KLEN);
    assert_true(SB_IHASH_KEY_OFF(key_first, link, key) < 0);
    char k[KLEN + 1];
    assert_null(find(&h, "k0000000", KLEN)); /* empty index */
    for (int i = 0; i < N; i++) {
        key_for(i, objs[i].key);
        objs[i].value = i;
        sb_ihash_insert(&h, &objs[i].link);
    }
    assert_int_equal(sb_ihash_count(&h), N);
    for (int i = 0; i < N; i++) {
        key_for(i, k);
        key_first *o = find(&h, k, KLEN);
        assert_non_null(o);
        assert_int_equal(o->value, i);
    }
    key_for(N, k);
    assert_null(find(&h, k, KLEN));        /* absent */
    assert_null(find(&h, "k0000001x", 9)); /* longer than every key */
    assert_null(find(&h, "k000000", 7));   /* a prefix of a key */
    for (int i = 0; i < N; i += 2)
        assert_int_equal(sb_ihash_remove(&h, &objs[i].link), 1);
    assert_int_equal(sb_ihash_count(&h), N / 2);
    assert_int_equal(sb_ihash_remove(&h, &objs[0].link), 0); /* removed already */
    for (int i = 0; i < N; i++) {
        key_for(i, k);
        key_first *o = find(&h, k, KLEN);
        if (i % 2)
            assert_ptr_equal(o, &objs[i]);
        else
            assert_null(o);
    }
    /* re-insert a removed object */
    sb_ihash_insert(&h, &objs[0].link);
    assert_ptr_equal(find(&h, "k0000000", KLEN), &objs[0]);
    sb_ihash_free(&h);
    assert_int_equal(sb_ihash_count(&h), 0);
    assert_null(find(&h, "k0000000", KLEN));
    sb_free(objs);
}

static void test_key_after_node(void **state) {
    (void)state;
    node_first a = {.value = 1}, b = {.value = 2};
    memcpy(a.key, "aaaaaaaa", KLEN + 1);
    memcpy(b.key, "bbbbbbbb", KLEN + 1);
    sb_ihash h;
    sb_ihash_init(&h, SB_IHASH_KEY_OFF(node_first, link, key), KLEN);
    assert_true(SB_IHASH_KEY_OFF(node_first, link, key) > 0);
    sb_ihash_insert(&h, &a.link);
    sb_ihash_insert(&h, &b.link);
    assert_ptr_equal(sb_ihash_find(&h, "bbbbbbbb", KLEN), &b.link);
    assert_ptr_equal(sb_ihash_find(&h, "aaaaaaaa", KLEN), &a.link);
    assert_int_equal(sb_ihash_remove(&h, &a.link), 1);
    assert_null(sb_ihash_find(&h, "aaaaaaaa", KLEN));
    sb_ihash_free(&h);
}

static void test_iteration_removing_as_it_goes(void **state) {
    (void)state;
    enum { N = 1000 };
    key_first *objs = sb_calloc(N, sizeof *objs);
    sb_ihash h;
    sb_ihash_init(&h, SB_IHASH_KEY_OFF(key_first, link, key), KLEN);
    sb_ihash_iter it;
    sb_ihash_iter_init(&it, &h);
    assert_null(sb_ihash_next(&it)); /* never grown: no buckets */
    for (int i = 0; i < N; i++) {
        key_for(i, objs[i].key);
        sb_ihash_insert(&h, &objs[i].link);
    }
    /* every node exactly once; removing the one just returned (as closing a client does) is allowed */
    int *seen = sb_calloc(N, sizeof *seen);
    int visited = 0;
    sb_ihash_iter_init(&it, &h);
    for (sb_ihash_node *n; (n = sb_ihash_next(&it));) {
        key_first *o = sb_container_of(n, key_first, link);
        seen[o - objs]++;
        visited++;
        if ((o - objs) % 3 == 0)
            assert_int_equal(sb_ihash_remove(&h, n), 1);
    }
    assert_int_equal(visited, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(sb_ihash_count(&h), N - (N + 2) / 3);
    int left = 0;
    sb_ihash_iter_init(&it, &h);
    for (sb_ihash_node *n; (n = sb_ihash_next(&it));) {
        assert_int_not_equal((sb_container_of(n, key_first, link) - objs) % 3, 0);
        left++;
    }
    assert_int_equal(left, (int)sb_ihash_count(&h));
    sb_ihash_free(&h);
    sb_free(seen);
    sb_free(objs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_key_after_node),
        cmocka_unit_test(test_iteration_removing_as_it_goes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
