/*
 * test_parfor.c - the parallel-for pool: every item runs exactly once, on
 * more than one thread when helpers exist, across many back-to-back runs
 * (the event loop's pattern), with odd sizes and chunks, and with no helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "util/alloc.h"
#include "util/parfor.h"

typedef struct item {
    _Atomic int runs;
    pthread_t who;
} item;

static void bump(void *arg) {
    item *it = arg;
    atomic_fetch_add(&it->runs, 1);
    it->who = pthread_self();
    /* a little work, so helpers get a share even of small runs */
    for (volatile int i = 0; i < 2000; i++)
        ;
}

static void check_run(sb_parfor *p, size_t n, size_t chunk, int *saw_other_thread) {
    item *items = sb_calloc(n ? n : 1, sizeof *items);
    void **ptrs = sb_calloc(n ? n : 1, sizeof *ptrs);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &items[i];
    sb_parfor_run(p, ptrs, n, chunk, bump);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&items[i].runs), 1);
        if (!pthread_equal(items[i].who, pthread_self()))
            *saw_other_thread = 1;
    }
    sb_free(ptrs);
    sb_free(items);
}

static void test_every_item_once(void **state) {
    sb_parfor *p = NULL;
    assert_int_equal(sb_parfor_start(&p, 2), 0);
    assert_int_equal(sb_parfor_threads(p), 2);
    int other = 0;
    static const size_t sizes[] = {0, 1, 2, 7, 8, 9, 63, 64, 65, 1000, 4097};
    static const size_t chunks[] = {0, 1, 3, 8, 64, 5000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++)
            check_run(p, sizes[s], chunks[c], &other);
    sb_parfor_stop(p);
}

static void test_helpers_take_work(void **state) {
    sb_parfor *p = NULL;
    assert_int_equal(sb_parfor_start(&p, 1), 0);
    int other = 0;
    /* over many large runs a helper must claim chunks at least once */
    for (int round = 0; round < 200 && !other; round++)
        check_run(p, 2000, 4, &other);
    assert_true(other);
    sb_parfor_stop(p);
}

static void test_back_to_back_runs(void **state) {
    sb_parfor *p = NULL;
    assert_int_equal(sb_parfor_start(&p, 3), 0);
    int other = 0;
    for (int round = 0; round < 3000; round++)
        check_run(p, (size_t)(round % 97) + 1, 2, &other);
    sb_parfor_stop(p);
}

static void test_no_helpers(void **state) {
    sb_parfor *p = NULL;
    assert_int_equal(sb_parfor_start(&p, 0), 0);
    assert_int_equal(sb_parfor_threads(p), 0);
    int other = 0;
    check_run(p, 1000, 8, &other);
    assert_false(other);
    check_run(NULL, 10, 1, &other); /* no pool at all: a plain loop */
    assert_false(other);
    sb_parfor_stop(p);
    sb_parfor_stop(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_item_once),
        cmocka_unit_test(test_helpers_take_work),
        cmocka_unit_test(test_back_to_back_runs),
        cmocka_unit_test(test_no_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
