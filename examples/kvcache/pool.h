/*
 * pool.h — the allocator switch: every object kvcache allocates goes through
 * these calls, and only these.
 *
 * Two implementations, one per Bazel target:
 *   pool_magpool.c  (//examples/kvcache:kvcache)        magpool: connection
 *                   state and buffers from GlusterFS-style mem_pools, items
 *                   from core magpool caches in liburcu's urcu-memb domain;
 *   pool_malloc.c   (//examples/kvcache:kvcache_malloc) malloc/free, and
 *                   deferred frees through urcu_memb_call_rcu + free, so
 *                   glibc, jemalloc, tcmalloc or mimalloc can be compared by
 *                   LD_PRELOAD with identical data structures above.
 *
 * Guarantees (both implementations):
 *  - kv_buf_*: fixed-size objects (connections, read buffers, output blocks);
 *    get may fail (NULL), put takes any object of the pool from any thread.
 *  - kv_items_*: one cache per size class.  kv_items_free_deferred(obj)
 *    makes obj reusable only after every urcu-memb read-side section open at
 *    the call has ended (readers of the lock-free index may still be looking
 *    at it).  The caller must be a thread registered with urcu-memb.
 *  - kv_pool_quiesce(): every deferred free issued before it (by any thread
 *    that has exited or flushed) has completed; not inside a read section.
 *  - Each destroy returns the number of objects still out (0 when clean).
 */
#ifndef KVCACHE_POOL_H
#define KVCACHE_POOL_H

#include <stddef.h>
#include <stdint.h>

/* Statistics of one pool, as `stats slabs` shows them (zeros where the
 * implementation has no such notion, e.g. magazines under malloc). */
struct kv_pool_stats {
    uint64_t in_use;       /* objects handed out and not yet put back */
    uint64_t in_magazines; /* cached in threads' magazines */
    uint64_t in_depot;     /* cached in full magazines in the depot */
    uint64_t in_slabs;     /* free in slabs */
    uint64_t deferred;     /* freed deferred, awaiting a grace period */
    uint64_t constructed;  /* objects built */
    uint64_t bytes;        /* memory under the pool (pages) */
    uint64_t stride;       /* bytes an object takes */
    uint64_t exchanges;    /* full magazines taken from + given to the depot */
    uint64_t reaps;        /* magazines torn down by reaping or shrink */
    uint64_t allocs, frees, alloc_failures;
};

/* ---- fixed-size buffers: connections, read buffers, output blocks -------- */
struct kv_buf_pool;
struct kv_buf_pool *kv_buf_pool_create(const char *name, size_t size, size_t ready);
void *kv_buf_get(struct kv_buf_pool *p);
void kv_buf_put(struct kv_buf_pool *p, void *obj);
/* Objects of p still out. */
uint64_t kv_buf_in_use(struct kv_buf_pool *p);
/* Destroy p; returns objects still out (0 when clean). */
long kv_buf_pool_destroy(struct kv_buf_pool *p);

/* ---- item caches (one per size class) ------------------------------------ */
struct kv_item_cache;
struct kv_item_cache *kv_items_create(const char *name, size_t size);
void *kv_items_alloc(struct kv_item_cache *c);
/* An object never published to readers. */
void kv_items_free(struct kv_item_cache *c, void *obj);
/* An object readers may still see: reused only after a grace period. */
void kv_items_free_deferred(struct kv_item_cache *c, void *obj);
int kv_items_stats(struct kv_item_cache *c, struct kv_pool_stats *st);
/* Give back cached memory beyond live objects (idle reap). */
void kv_items_shrink(struct kv_item_cache *c);
long kv_items_destroy(struct kv_item_cache *c);

/* Wait until deferred frees issued so far have completed (see above). */
void kv_pool_quiesce(void);
/* Called by a worker thread before it exits (returns its cached objects). */
void kv_pool_thread_exit(void);
/* "magpool" or "malloc". */
const char *kv_pool_impl(void);

#endif
