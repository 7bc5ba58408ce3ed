/*
 * parfor.h - run one function over an array on the calling thread and a few
 * helper threads together ("parallel for"), returning when every item is done.
 *
 * Why: the service's hot loop turn ends with one write syscall per socket
 * that has output (conn.c).  On loopback and in virtual machines a write
 * costs several microseconds, so a broadcast to 10,000 subscribers is tens
 * of milliseconds of syscalls on one core while the other cores idle.  The
 * event loop stays single-threaded for all state; only the syscall phase,
 * which touches nothing but each socket's own fd and read-only queue, is
 * spread over the cores.
 *
 * Work is claimed in small chunks through one atomic counter, so the caller
 * never waits long for a helper that was slow to wake or was preempted: it
 * keeps claiming chunks itself and at the end waits only for chunks already
 * claimed.  Helpers sleep on a condition variable between runs (no spinning
 * that would steal a core from other work on a small machine).
 *
 * Threading contract: sb_parfor_run() is called from one thread at a time
 * (the event loop).  fn must be safe to run concurrently for different
 * items and must not touch shared state without its own synchronisation.
 * Ownership: the pool owns its threads; items belong to the caller and are
 * only borrowed for the duration of the run.
 */
#ifndef SB_UTIL_PARFOR_H
#define SB_UTIL_PARFOR_H

#include <stddef.h>

typedef struct sb_parfor sb_parfor;
typedef void (*sb_parfor_fn)(void *item);

/* Start a pool with nthreads helpers (0 is valid: runs are then plain loops).  Returns a negative errno if a
 * thread cannot be created (the helpers already started are stopped, nothing is left behind). */
int sb_parfor_start(sb_parfor **out, int nthreads);
/* Stop and join the helpers, free the pool.  NULL is fine. */
void sb_parfor_stop(sb_parfor *p);
/* Number of helper threads. */
int sb_parfor_threads(const sb_parfor *p);
/* fn(items[i]) for every i < n, in chunks of `chunk` items; returns when all are done. */
void sb_parfor_run(sb_parfor *p, void *const *items, size_t n, size_t chunk, sb_parfor_fn fn);

#endif
