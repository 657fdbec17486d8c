/*
 * magpool — GlusterFS-style memory pools (libglusterfs mem-pool.h names).
 *
 * A mem_pool hands out fixed-size objects of one type.  It is a thin layer
 * over a magpool cache: mem_get/mem_put are the cache's per-thread magazine
 * fast path (no lock, no atomic read-modify-write), so unlike the classic
 * GlusterFS pool there is no pool lock and no calloc fallback: the pool
 * simply grows past `count` on demand, and GlusterFS's counters keep their
 * meaning (see struct mem_pool_stats).
 *
 *   struct mem_pool *p = mem_pool_new(struct my_req, 512);
 *   struct my_req *r = mem_get0(p);      // zeroed
 *   ...
 *   mem_put(r);                          // pool found from the pointer
 *   mem_pool_destroy(p);
 *
 * Objects are aligned like malloc's (_Alignof(max_align_t)) when the type is
 * 16 bytes or more, to 8 bytes below that.  Objects of a pool carry no
 * header: the pool is found from the address alone.
 *
 * Misuse (each prints one line `magpool: <pool>: <kind> at <addr>` on stderr
 * and aborts; with MAGPOOL_DEBUG=continue it prints and drops the call):
 *   mem_put of a pointer no pool owns           -> "foreign pointer"
 *   mem_put of a pointer inside an object       -> "misaligned pointer"
 *   mem_put of an object of a kmem_cache / core  -> "wrong cache"
 *   mem_put of the object just put (twice in a row) -> "double free"
 *   (MAGPOOL_DEBUG=verify catches every double free, not only immediate ones)
 *
 * Synchronization table ("safe" = may run concurrently with no outside lock):
 *
 *   call                     | vs. same pool             | vs. other pools
 *   -------------------------+---------------------------+----------------
 *   mem_get / mem_get0       | safe                      | safe
 *   mem_put                  | safe (any thread may put  | safe
 *                            | an object another got)    |
 *   mem_pool_get_stats       | safe (a snapshot)         | safe
 *   mem_pool_dump            | safe                      | safe
 *   mem_pool_new             | -                         | safe
 *   mem_pools_init / _fini   | safe                      | safe
 *   mem_pool_destroy         | NOT with mem_get/mem_put  | safe
 *                            | of this pool in flight;   |
 *                            | objects still out may be  |
 *                            | mem_put afterwards (safe) |
 */
#ifndef MAGPOOL_MEM_POOL_H
#define MAGPOOL_MEM_POOL_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef MAGPOOL_API
#define MAGPOOL_API __attribute__((visibility("default")))
#endif

/** Opaque pool handle. */
struct mem_pool;

/**
 * Create a pool of objects of sizeof_type bytes with `count` objects ready at
 * once: they are built and parked in the pool at creation, so the first
 * `count` gets need no slab work.  The pool grows past count on demand.
 * `name` is copied (NULL gives "mem_pool"); a name of any length is taken,
 * as GlusterFS does, and its first 63 characters are kept.
 * NULL + errno: EINVAL when sizeof_type or count is 0 or sizeof_type exceeds
 * MAGPOOL_MAX_OBJECT_SIZE (1 MiB); ENOMEM when the memory cannot be had.
 */
MAGPOOL_API struct mem_pool *mem_pool_new_fn(unsigned long sizeof_type, unsigned long count,
                                             const char *name);
#define mem_pool_new(type, count) mem_pool_new_fn(sizeof(type), count, #type)

/** One object (contents: whatever the last user left).  NULL + errno:
 *  EINVAL for a NULL pool, ENOMEM when the system is out of memory. */
MAGPOOL_API void *mem_get(struct mem_pool *pool);
/** One object with its sizeof_type bytes zeroed.  Errors as mem_get. */
MAGPOOL_API void *mem_get0(struct mem_pool *pool);

/** Give an object back to its pool (found from the pointer).  NULL does
 *  nothing.  Safe after mem_pool_destroy of its pool: the object is
 *  released, and the pool's memory goes back with the last one. */
MAGPOOL_API void mem_put(void *ptr);

/** Destroy a pool.  NULL does nothing.  Objects still out stay valid; each
 *  later mem_put releases one, and the memory goes back with the last. */
MAGPOOL_API void mem_pool_destroy(struct mem_pool *pool);

/**
 * GlusterFS counters of one pool, derived when read from the engine's
 * per-thread statistics (nothing shared is written on the mem_get/mem_put
 * path).  `count` is the count given to mem_pool_new; "in use" is objects
 * handed out by mem_get/mem_get0 and not yet put back.
 */
struct mem_pool_stats {
    char name[64];
    unsigned long count;          /**< objects to have ready at once (mem_pool_new's count) */
    unsigned long real_sizeof_type; /**< sizeof_type asked for */
    unsigned long padded_sizeof;  /**< bytes each object takes in its slab (the stride) */
    unsigned long hot_count;      /**< objects in use that the ready set covers: min(in use, count) */
    unsigned long cold_count;     /**< built objects not in use (thread magazines, depot, slabs) */
    uint64_t alloc_count;         /**< successful mem_get/mem_get0 calls since creation */
    unsigned long max_alloc;      /**< most objects seen in use at once (see below) */
    uint64_t pool_misses;         /**< work past the ready set: objects the pool took from its
                                       slab layer after creation's warm-up (a miss refills a whole
                                       magazine, so this counts objects fetched, not calls) */
    unsigned long cur_stdalloc;   /**< objects in use beyond count: in use - count, or 0
                                       (GlusterFS's calloc-fallback objects) */
    unsigned long max_stdalloc;   /**< max_alloc - count, or 0 */
    /* Where the cold objects are, in bytes (magpool_stats' fields of the same
     * names), and how many idle threads' magazines were taken back. */
    uint64_t thread_bytes;        /**< in threads' magazines */
    uint64_t thread_idle_bytes;   /**< of thread_bytes: in idle threads' (magpool_stats.threads_idle_bytes) */
    uint64_t depot_bytes;         /**< in the shared depot */
    uint64_t slabs_free_bytes;    /**< free in slabs */
    uint64_t idle_reclaims;       /**< magpool_stats.idle_reclaims */
};
/*
 * max_alloc is a sampled high-water mark: the in-use count is sampled at every
 * mem_pool_get_stats and mem_pool_dump, and bounded below by hot_count +
 * cur_stdalloc at those points.  A peak that comes and goes between two reads
 * is therefore not seen; reading the stats more often narrows the gap.  (An
 * exact peak would need a shared counter on every get and put.)
 */

/**
 * GlusterFS's process-wide set-up: mem_pools_init (or, as GlusterFS 3.12
 * named it, mem_pools_init_early then mem_pools_init_late) before the pools
 * are used, mem_pools_fini at the end, in pairs (a count).  magpool needs
 * neither: pools work without them and after them.  The last
 * mem_pools_fini gives back the memory no pool is using (the calling
 * thread's cached objects and every cache's free slabs, magpool_reap);
 * a mem_pools_fini without an init does nothing.
 */
MAGPOOL_API void mem_pools_init(void);
MAGPOOL_API void mem_pools_init_early(void);
MAGPOOL_API void mem_pools_init_late(void);
MAGPOOL_API void mem_pools_fini(void);

/** Fill *st for pool.  0, or -1 + EINVAL (NULL pool or st). */
MAGPOOL_API int mem_pool_get_stats(struct mem_pool *pool, struct mem_pool_stats *st);

/** Write every live pool to f (NULL = stdout) in GlusterFS statedump form:
 *    [mempool]
 *    -----=-----
 *    pool-name=<name>
 *    hot-count=...  cold-count=...  padded_sizeof=...  alloc-count=...
 *    max-alloc=...  pool-misses=...  cur-stdalloc=...  max-stdalloc=...
 *    thread-bytes=...  depot-bytes=...  slabs-free-bytes=...  idle-reclaims=...
 *  (one key=value per line, a `-----=-----` separator before each pool; the
 *  last four are magpool's, after GlusterFS's own keys). */
MAGPOOL_API void mem_pool_dump(FILE *f);

#ifdef __cplusplus
}
#endif
#endif /* MAGPOOL_MEM_POOL_H */
