/*
 * The magazine fast paths, inline (design: top of src/cache.c; slow paths in
 * src/magazine.c).  One copy, used by the core API in magazine.c and by the
 * front ends, so kmem_cache_alloc or mem_get cost the same pop as
 * magpool_alloc and nothing is written twice.
 *
 * A hit touches only the calling thread's tcache line for the cache: no lock,
 * no atomic read-modify-write, no epoch, no "initialised?" branch (a thread
 * with no state, a debug cache and a destroyed cache all index the all-zero
 * tcache[0] and miss).  The relaxed atomics compile to plain moves; they are
 * atomic only because statistics readers on other threads read the counts.
 */
#ifndef MP_FASTPATH_H
#define MP_FASTPATH_H
#include "cache_impl.h"
#include "sanitize.h"

void *mp_alloc_slow(struct magpool_cache *c, unsigned aflags, const void *caller);
void mp_free_slow(struct magpool_cache *c, void *obj, const void *caller);
void mp_double_free(struct magpool_cache *c, void *obj);

static inline __attribute__((always_inline)) struct mp_tcache *mp_fast_tc(struct magpool_cache *c)
{
    /* Relaxed: fast_id only changes at create and destroy, which the caller
     * orders against its own alloc/free (magpool.h's synchronization table). */
    return &mp_tcs[atomic_load_explicit(&c->c_fast_id, memory_order_relaxed)];
}

/* Pop the loaded magazine; on a miss, the slow path (which may return NULL). */
static inline __attribute__((always_inline)) void *mp_fast_alloc(struct magpool_cache *c, const void *caller)
{
    struct mp_tcache *tc = mp_fast_tc(c);
    uint32_t n = mp_load_relaxed32(&tc->tc_rounds);
    if (__builtin_expect(n == 0, 0))
        return mp_alloc_slow(c, 0, caller);
    mp_store_relaxed32(&tc->tc_rounds, n - 1);
    mp_owner_add64(&tc->tc_allocs, 1);
    void *obj = tc->tc_objs[n - 1];
    mp_asan_unpoison(obj, c->c_size);
    return obj;
}

/* Push onto the loaded magazine; a full magazine goes to the slow path.  An
 * object equal to the top round is an immediate double free (objs[-1] is the
 * magazine's NULL guard, so n == 0 reads it safely). */
static inline __attribute__((always_inline)) void mp_fast_free(struct magpool_cache *c, void *obj, const void *caller)
{
    struct mp_tcache *tc = mp_fast_tc(c);
    uint32_t n = mp_load_relaxed32(&tc->tc_rounds);
    if (__builtin_expect(n == tc->tc_cap, 0))
        return mp_free_slow(c, obj, caller);
    void **objs = tc->tc_objs;
    if (__builtin_expect(objs[(long)n - 1] == obj, 0))
        return mp_double_free(c, obj);
    mp_asan_poison(obj, c->c_size);
    objs[n] = obj;
    mp_store_relaxed32(&tc->tc_rounds, n + 1); /* counted by tc_net, see cache_impl.h */
}
#endif
