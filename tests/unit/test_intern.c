/*
 * test_intern.c - shared string copies (util/intern.c).
 *
 * Equal strings share one copy, distinct ones do not; a copy lives exactly
 * as long as it has holders and stays put while the table grows around it;
 * lengths, embedded NULs and NULL puts behave as intern.h says.  Run under
 * ASan, a copy freed too early or never freed is a failure too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/intern.h"

static void test_equal_strings_share_one_copy(void **state) {
    (void)state;
    sb_intern t;
    sb_intern_init(&t);
    char a[] = "user-1", b[] = "user-1";
    const char *x = sb_intern_gets(&t, a);
    const char *y = sb_intern_gets(&t, b);
    assert_ptr_equal(x, y);
    assert_ptr_not_equal(x, a); /* a copy, not the caller's storage */
    a[0] = 'X';
    assert_string_equal(x, "user-1");
    const char *z = sb_intern_gets(&t, "user-2");
    assert_ptr_not_equal(x, z);
    assert_string_equal(z, "user-2");
    assert_int_equal(sb_intern_count(&t), 2);
    sb_intern_put(&t, x);
    sb_intern_put(&t, y);
    sb_intern_put(&t, z);
    assert_int_equal(sb_intern_count(&t), 0);
    sb_intern_free(&t);
}

static void test_copy_lives_while_held(void **state) {
    (void)state;
    sb_intern t;
    sb_intern_init(&t);
    const char *first = sb_intern_gets(&t, "hub=chat");
    const char *second = sb_intern_gets(&t, "hub=chat");
    const char *third = sb_intern_gets(&t, "hub=chat");
    sb_intern_put(&t, second);
    sb_intern_put(&t, third);
    assert_int_equal(sb_intern_count(&t), 1);
    assert_string_equal(first, "hub=chat"); /* still held once */
    /* the table grows (rehashes) many times around it: the copy does not move */
    char name[32];
    const char *held[2000];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "s%d", i);
        held[i] = sb_intern_gets(&t, name);
    }
    assert_ptr_equal(sb_intern_gets(&t, "hub=chat"), first);
    sb_intern_put(&t, first);
    assert_string_equal(first, "hub=chat");
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "s%d", i);
        assert_string_equal(held[i], name);
        sb_intern_put(&t, held[i]);
    }
    assert_int_equal(sb_intern_count(&t), 1);
    sb_intern_put(&t, first); /* the last holder frees it (ASan reports a leak otherwise) */
    assert_int_equal(sb_intern_count(&t), 0);
    /* a string interned again after its last put is a fresh copy with one holder */
    const char *again = sb_intern_gets(&t, "hub=chat");
    assert_int_equal(sb_intern_count(&t), 1);
    sb_intern_put(&t, again);
    assert_int_equal(sb_intern_count(&t), 0);
    sb_intern_free(&t);
}

static void test_lengths_and_nul(void **state) {
    (void)state;
    sb_intern t;
    sb_intern_init(&t);
    const char *prefix = sb_intern_get(&t, "abcdef", 3);
    assert_string_equal(prefix, "abc");
    assert_ptr_equal(sb_intern_gets(&t, "abc"), prefix);
    /* an embedded NUL ends the string */
    assert_ptr_equal(sb_intern_get(&t, "abc\0def", 7), prefix);
    const char *empty = sb_intern_get(&t, "", 0);
    assert_string_equal(empty, "");
    assert_ptr_equal(sb_intern_get(&t, "\0x", 2), empty);
    assert_int_equal(sb_intern_count(&t), 2);
    sb_intern_put(&t, NULL); /* ignored */
    for (int i = 0; i < 3; i++)
        sb_intern_put(&t, prefix);
    sb_intern_put(&t, empty);
    sb_intern_put(&t, empty);
    assert_int_equal(sb_intern_count(&t), 0);
    sb_intern_free(&t);
}

static void test_free_with_strings_held(void **state) {
    (void)state;
    sb_intern t;
    sb_intern_init(&t);
    sb_intern_gets(&t, "one");
    sb_intern_gets(&t, "two");
    sb_intern_free(&t); /* frees every copy (nothing leaks), the table is empty and reusable */
    assert_int_equal(sb_intern_count(&t), 0);
    const char *s = sb_intern_gets(&t, "three");
    sb_intern_put(&t, s);
    sb_intern_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_strings_share_one_copy),
        cmocka_unit_test(test_copy_lives_while_held),
        cmocka_unit_test(test_lengths_and_nul),
        cmocka_unit_test(test_free_with_strings_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
