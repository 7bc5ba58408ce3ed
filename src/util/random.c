/*
 * random.c - the per-thread pool behind sb_random_bytes; see random.h.
 *
 * Why a pool: accepting a connection draws two 16-byte ids, and on this kind
 * of virtual machine a getrandom() call costs about as much as parsing the
 * negotiate request.  The pool lives in thread-local storage (no heap, no
 * lock); requests larger than the pool go to the kernel directly.
 */
#include "util/random.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define POOL_SIZE 512

static _Thread_local unsigned char pool[POOL_SIZE];
static _Thread_local size_t avail; /* unread bytes at the end of pool */

static void fill(void *p, size_t n) {
    unsigned char *o = p;
    while (n) {
        ssize_t got = getrandom(o, n, 0);
        if (got < 0 && errno == EINTR) /* possible for reads over 256 bytes */
            continue;
        if (got <= 0)
            abort(); /* the kernel's CSPRNG is not optional */
        o += got;
        n -= (size_t)got;
    }
}

void sb_random_bytes(void *p, size_t n) {
    if (n > POOL_SIZE / 4) {
        fill(p, n);
        return;
    }
    if (avail < n) {
        fill(pool, POOL_SIZE);
        avail = POOL_SIZE;
    }
    unsigned char *src = pool + (POOL_SIZE - avail);
    memcpy(p, src, n);
    explicit_bzero(src, n);
    avail -= n;
}
