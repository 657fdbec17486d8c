/*
 * The engine's conservation equation (design statement, src/core/cache.c, I1),
 * checked from one statistics snapshot of a cache:
 *
 *   in_slabs + in_magazines + in_depot + deferred + in_use == constructed
 *
 * Exact whenever no other thread is using the cache.  On a mismatch, one
 * line on stderr with every term.  Shared by the unit tests.
 */
#ifndef MAGPOOL_TESTS_CONSERVE_H
#define MAGPOOL_TESTS_CONSERVE_H
#include <stdint.h>
#include <stdio.h>

#include "magpool/magpool.h"

/* 1 if the equation holds for c (the snapshot goes to *out if out is not
 * NULL), 0 if it does not or the stats call failed. */
static inline int conserved(magpool_cache_t *c, struct magpool_stats *out)
{
    struct magpool_stats st;
    if (magpool_cache_stats(c, &st) != 0)
        return 0;
    if (out)
        *out = st;
    uint64_t sum = st.in_slabs + st.in_magazines + st.in_depot + st.deferred + st.in_use;
    if (sum != st.constructed)
        fprintf(stderr, "%s: slabs %llu + mags %llu + depot %llu + deferred %llu + in_use %llu != constructed %llu\n",
                st.name, (unsigned long long)st.in_slabs, (unsigned long long)st.in_magazines,
                (unsigned long long)st.in_depot, (unsigned long long)st.deferred,
                (unsigned long long)st.in_use, (unsigned long long)st.constructed);
    return sum == st.constructed;
}
#endif
