/*
 * hist.c - a fixed-memory latency histogram in the spirit of HdrHistogram:
 * log-linear buckets, 64 per power of two, so any value from 1 ns to hours is
 * recorded in O(1) with under 1.6 % relative error and no allocation.
 *
 * Index layout: v < 128 maps to itself (exact); otherwise with m = the index of
 * v's highest set bit and g = m - 6, the bucket is 64 * g + (v >> g), whose
 * second term lies in [64, 128).  The largest index (v = 2^64 - 1) is 57 * 64 + 127,
 * hence 59 * 64 buckets.
 */
#include <string.h>

#include "loadgen.h"

static unsigned bucket_of(uint64_t v) {
    if (v < 128)
        return (unsigned)v;
    unsigned g = (unsigned)(63 - __builtin_clzll(v)) - 6;
    return 64 * g + (unsigned)(v >> g);
}

/* The midpoint of bucket i's value range. */
static uint64_t bucket_value(unsigned i) {
    if (i < 128)
        return i;
    unsigned g = i / 64 - 1;
    uint64_t lo = (uint64_t)(i - 64 * g) << g;
    return lo + (((uint64_t)1 << g) >> 1);
}

void sb_lg_hist_reset(sb_lg_hist *h) {
    memset(h, 0, sizeof *h);
}

void sb_lg_hist_record(sb_lg_hist *h, uint64_t value) {
    h->buckets[bucket_of(value)]++;
    h->count++;
    if (value > h->max)
        h->max = value;
}

uint64_t sb_lg_hist_quantile(const sb_lg_hist *h, double q) {
    if (!h->count)
        return 0;
    if (q >= 1.0)
        return h->max;
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++; /* ceiling: the smallest value at least a fraction q of the samples do not exceed */
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SB_LG_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bucket_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
