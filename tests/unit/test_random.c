/*
 * test_random.c - sb_random_bytes: draws of every size, across pool refills
 * and above the pool's direct-read threshold, are filled and distinct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/random.h"

/* 16 random bytes are all zero with probability 2^-128: treat it as "not filled". */
static int filled(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 1;
    return 0;
}

static void test_ids_are_distinct_across_refills(void **state) {
    enum { N = 200 }; /* 200 x 16 bytes: several refills of the pool */
    static unsigned char ids[N][16];
    for (int i = 0; i < N; i++) {
        sb_random_bytes(ids[i], sizeof ids[i]);
        assert_true(filled(ids[i], sizeof ids[i]));
        for (int j = 0; j < i; j++)
            assert_memory_not_equal(ids[i], ids[j], sizeof ids[i]);
    }
}

static void test_odd_and_large_sizes(void **state) {
    unsigned char a[4096], b[4096];
    for (size_t n = 16; n <= sizeof a; n = n * 2 + 3) {
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        sb_random_bytes(a, n);
        sb_random_bytes(b, n);
        assert_true(filled(a, n));
        assert_memory_not_equal(a, b, n);
        assert_false(filled(a + n, sizeof a - n)); /* nothing written past n */
    }
    sb_random_bytes(a, 0); /* a no-op */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_distinct_across_refills),
        cmocka_unit_test(test_odd_and_large_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
