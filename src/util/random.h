/*
 * random.h - cryptographically strong random bytes, cheaply.
 *
 * sb_random_bytes() serves bytes from a small per-thread pool filled from the
 * kernel's CSPRNG (getrandom), so a caller that needs 16 bytes per connection
 * does not pay one system call for each: one refill serves 32 connection ids.
 * Served bytes are wiped from the pool.  It aborts if the kernel refuses:
 * there is no weaker fallback by design.
 */
#ifndef SB_UTIL_RANDOM_H
#define SB_UTIL_RANDOM_H

#include <stddef.h>

void sb_random_bytes(void *p, size_t n);

#endif
