/*
 * test_dict.c - the string-keyed hash table (util/dict.c).
 *
 * Copied and caller-owned (sb_dict_set_ref) keys side by side through many
 * growths; replacement, deletion, lookups of absent keys and of keys that
 * differ only in length or after a NUL; iteration that deletes as it goes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/alloc.h"
#include "util/dict.h"

typedef struct item {
    char id[24]; /* the key an sb_dict_set_ref entry points at */
    int n;
} item;

static void test_copied_keys(void **state) {
    (void)state;
    sb_dict d;
    sb_dict_init(&d);
    int a = 1, b = 2;
    assert_null(sb_dict_gets(&d, "x")); /* empty */
    char key[] = "alpha";
    assert_null(sb_dict_set(&d, key, 5, &a));
    key[0] = 'X'; /* the dict kept its own copy */
    assert_ptr_equal(sb_dict_gets(&d, "alpha"), &a);
    assert_null(sb_dict_gets(&d, "Xlpha"));
    sb_dict_entry *e = sb_dict_find(&d, "alpha", 5);
    assert_non_null(e);
    assert_string_equal(e->key, "alpha");
    assert_int_equal(e->klen, 5);
    assert_ptr_equal(sb_dict_set(&d, "alpha", 5, &b), &a); /* replace: the old value comes back */
    assert_ptr_equal(sb_dict_gets(&d, "alpha"), &b);
    assert_ptr_equal(sb_dict_find(&d, "alpha", 5), e); /* same entry */
    assert_int_equal(sb_dict_count(&d), 1);
    assert_null(sb_dict_get(&d, "alph", 4));
    assert_null(sb_dict_get(&d, "alphab", 6));
    /* binary keys: a NUL inside, and the empty key */
    assert_null(sb_dict_set(&d, "a\0b", 3, &a));
    assert_null(sb_dict_set(&d, "", 0, &b));
    assert_ptr_equal(sb_dict_get(&d, "a\0b", 3), &a);
    assert_null(sb_dict_get(&d, "a\0c", 3));
    assert_null(sb_dict_get(&d, "a", 1));
    assert_ptr_equal(sb_dict_get(&d, "", 0), &b);
    assert_ptr_equal(sb_dict_del(&d, "a\0b", 3), &a);
    assert_null(sb_dict_del(&d, "a\0b", 3));
    assert_int_equal(sb_dict_count(&d), 2);
    sb_dict_free(&d);
    assert_int_equal(sb_dict_count(&d), 0);
    assert_null(sb_dict_gets(&d, "alpha"));
}

static void test_ref_keys(void **state) {
    (void)state;
    enum { N = 3000 };
    item *items = sb_calloc(N, sizeof *items);
    sb_dict d;
    sb_dict_init(&d);
    for (int i = 0; i < N; i++) {
        snprintf(items[i].id, sizeof items[i].id, "conn-%d", i);
        items[i].n = i;
        /* every other entry owns a copy: both kinds live in one table */
        if (i % 2)
            assert_null(sb_dict_set_ref(&d, items[i].id, strlen(items[i].id), &items[i]));
        else
            assert_null(sb_dict_set(&d, items[i].id, strlen(items[i].id), &items[i]));
    }
    assert_int_equal(sb_dict_count(&d), N);
    char k[24];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "conn-%d", i);
        sb_dict_entry *e = sb_dict_find(&d, k, strlen(k));
        assert_non_null(e);
        assert_ptr_equal(e->value, &items[i]);
        assert_string_equal(e->key, k);
        if (i % 2)
            assert_ptr_equal(e->key, items[i].id); /* no copy */
        else
            assert_ptr_not_equal(e->key, items[i].id);
    }
    assert_null(sb_dict_gets(&d, "conn-3000"));
    /* replacing a ref entry with another object's key points it there */
    item twin = {.n = -1};
    memcpy(twin.id, "conn-1", 7);
    assert_ptr_equal(sb_dict_set_ref(&d, twin.id, 6, &twin), &items[1]);
    assert_ptr_equal(sb_dict_find(&d, "conn-1", 6)->key, twin.id);
    /* replacing a copied entry by reference keeps the copy */
    item twin0 = {.n = -1};
    memcpy(twin0.id, "conn-0", 7);
    assert_ptr_equal(sb_dict_set_ref(&d, twin0.id, 6, &twin0), &items[0]);
    assert_ptr_not_equal(sb_dict_find(&d, "conn-0", 6)->key, twin0.id);
    assert_int_equal(sb_dict_count(&d), N);
    for (int i = 0; i < N; i += 3)
        assert_non_null(sb_dict_del(&d, items[i].id, strlen(items[i].id)));
    for (int i = 0; i < N; i++) {
        void *v = sb_dict_get(&d, items[i].id, strlen(items[i].id));
        if (i % 3 == 0)
            assert_null(v);
        else
            assert_non_null(v);
    }
    sb_dict_free(&d);
    sb_free(items);
}

static void test_iteration_deleting_as_it_goes(void **state) {
    (void)state;
    enum { N = 500 };
    sb_dict d;
    sb_dict_init(&d);
    static int values[N];
    char k[24];
    for (int i = 0; i < N; i++) {
        values[i] = i;
        snprintf(k, sizeof k, "k%d", i);
        sb_dict_set(&d, k, strlen(k), &values[i]);
    }
    int seen[N] = {0}, visited = 0;
    sb_dict_iter it;
    sb_dict_iter_init(&it, &d);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));) {
        int i = *(int *)e->value;
        seen[i]++;
        visited++;
        if (i % 2)
            assert_ptr_equal(sb_dict_del(&d, e->key, e->klen), &values[i]);
    }
    assert_int_equal(visited, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(sb_dict_count(&d), N / 2);
    sb_dict_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copied_keys),
        cmocka_unit_test(test_ref_keys),
        cmocka_unit_test(test_iteration_deleting_as_it_goes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
