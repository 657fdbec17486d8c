/*
 * stats.h — counters and the `stats` replies.  Each worker owns one
 * struct thread_stats and is its only writer (a relaxed load and store, no
 * read-modify-write); `stats` sums every worker's with relaxed loads.
 */
#ifndef KVCACHE_STATS_H
#define KVCACHE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define THREAD_STATS_FIELDS(X)                                                       \
    X(cmd_get) X(get_hits) X(get_misses) X(get_expired) X(cmd_set) X(cmd_touch)      \
    X(touch_hits) X(touch_misses) X(delete_hits) X(delete_misses) X(incr_hits)       \
    X(incr_misses) X(decr_hits) X(decr_misses) X(cas_hits) X(cas_misses)             \
    X(cas_badval) X(cmd_flush) X(bytes_read) X(bytes_written) X(curr_connections)    \
    X(total_connections) X(rejected_connections) X(store_too_large)                  \
    X(store_no_memory)

struct thread_stats {
#define X(f) _Atomic uint64_t f;
    THREAD_STATS_FIELDS(X)
#undef X
};

#define STAT_ADD(st, field, n)                                                       \
    atomic_store_explicit(&(st)->field,                                              \
                          atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n), \
                          memory_order_relaxed)
#define STAT_INC(st, field) STAT_ADD(st, field, 1)

struct conn;
void stats_general(struct conn *c);
void stats_settings(struct conn *c);
void stats_slabs(struct conn *c);
void stats_items(struct conn *c);
/* Sum of every worker's counters (thread.c provides the workers). */
void stats_sum(struct thread_stats *out);

#endif
