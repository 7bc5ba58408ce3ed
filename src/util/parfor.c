/*
 * parfor.c - the parallel-for pool; see parfor.h.
 *
 * A run is published as a generation number under the mutex; helpers wake on
 * the condition variable, claim chunks with an atomic fetch-add on `next`
 * until the array is exhausted, and count finished items in `done`.  The
 * caller claims chunks the same way, then waits until done == n: a short spin
 * first (helpers that are running finish within microseconds), then a sleep
 * on `done_cv`, which the helper finishing the last item signals under the
 * mutex so the wake-up cannot be lost.
 */
#include "util/parfor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

#define WAIT_SPINS 2000

struct sb_parfor {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pthread_t *threads;
    int nthreads;
    int stop;
    unsigned long gen; /* bumped for every run (under mu) */
    int caller_waiting;
    /* the current run */
    void *const *items;
    size_t n, chunk;
    sb_parfor_fn fn;
    _Atomic size_t next; /* first unclaimed item */
    _Atomic size_t done; /* items finished */
    _Atomic int active;  /* helpers inside the current run */
};

/* Claim and run chunks until none are left. */
static void work(sb_parfor *p) {
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&p->next, p->chunk, memory_order_relaxed);
        if (i >= p->n)
            return;
        size_t end = i + p->chunk < p->n ? i + p->chunk : p->n;
        for (size_t k = i; k < end; k++)
            p->fn(p->items[k]);
        if (atomic_fetch_add_explicit(&p->done, end - i, memory_order_acq_rel) + (end - i) == p->n) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_waiting)
                pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *helper_main(void *arg) {
    sb_parfor *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        p->active++;
        pthread_mutex_unlock(&p->mu);
        work(p);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0 && p->caller_waiting)
            pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int sb_parfor_start(sb_parfor **out, int nthreads) {
    sb_parfor *p = sb_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->threads = sb_calloc(nthreads > 0 ? (size_t)nthreads : 1, sizeof *p->threads);
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, helper_main, p);
        if (rc != 0) {
            sb_parfor_stop(p);
            return -rc;
        }
        p->nthreads++;
    }
    *out = p;
    return SB_OK;
}

void sb_parfor_stop(sb_parfor *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_mutex_destroy(&p->mu);
    sb_free(p->threads);
    sb_free(p);
}

int sb_parfor_threads(const sb_parfor *p) { return p ? p->nthreads : 0; }

void sb_parfor_run(sb_parfor *p, void *const *items, size_t n, size_t chunk, sb_parfor_fn fn) {
    if (!n)
        return;
    if (!chunk)
        chunk = 1;
    if (!p || !p->nthreads || n <= chunk) {
        for (size_t i = 0; i < n; i++)
            fn(items[i]);
        return;
    }
    pthread_mutex_lock(&p->mu);
    /* a helper still leaving the previous run must not see this one's fields change under it */
    p->caller_waiting = 1;
    while (p->active)
        pthread_cond_wait(&p->done_cv, &p->mu);
    p->caller_waiting = 0;
    p->items = items;
    p->n = n;
    p->chunk = chunk;
    p->fn = fn;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    p->gen++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    work(p);

    for (int spin = 0; spin < WAIT_SPINS; spin++)
        if (atomic_load_explicit(&p->done, memory_order_acquire) == n)
            return;
    pthread_mutex_lock(&p->mu);
    p->caller_waiting = 1;
    while (atomic_load_explicit(&p->done, memory_order_acquire) != n)
        pthread_cond_wait(&p->done_cv, &p->mu);
    p->caller_waiting = 0;
    pthread_mutex_unlock(&p->mu);
}
