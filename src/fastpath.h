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
#include <string.h>

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

/* Zero a popped object, out of line so the callers' hit path needs no stack
 * frame (a tail call).  The empty asm hides that the result is `obj`, which
 * would otherwise let the compiler keep obj live across a non-tail call. */
static __attribute__((noinline, unused)) void *mp_fast_zero(struct magpool_cache *c, void *obj)
{
    memset(obj, 0, c->c_size);
    __asm__("" : "+r"(obj));
    return obj;
}

/* The slow path a miss calls: mp_alloc_slow, or a front end's own that
 * translates its flags first (so the translation is off the hit path). */
typedef void *mp_alloc_miss_fn(struct magpool_cache *c, unsigned flags, const void *caller);

/* Pop the loaded magazine; a miss returns miss(c, miss_flags, caller) (may be
 * NULL).  A hit never blocks, so of the caller's flags only `zero` matters
 * there.  miss is a constant at every call site, so after inlining this is
 * a direct call.  (Addition for the front ends; mp_fast_alloc is this with
 * mp_alloc_slow and no flags: the same code as before.) */
static inline __attribute__((always_inline)) void *mp_fast_alloc_zf(struct magpool_cache *c, bool zero,
                                                                    mp_alloc_miss_fn *miss, unsigned miss_flags,
                                                                    const void *caller)
{
    struct mp_tcache *tc = mp_fast_tc(c);
    uint32_t n = mp_load_relaxed32(&tc->tc_rounds);
    if (__builtin_expect(n == 0, 0))
        return miss(c, miss_flags, caller);
    mp_store_relaxed32(&tc->tc_rounds, n - 1);
    mp_owner_add64(&tc->tc_allocs, 1);
    void *obj = tc->tc_objs[n - 1];
    mp_asan_unpoison(obj, c->c_size);
    if (zero)
        return mp_fast_zero(c, obj);
    return obj;
}

/* Pop the loaded magazine; on a miss, the slow path (which may return NULL). */
static inline __attribute__((always_inline)) void *mp_fast_alloc(struct magpool_cache *c, const void *caller)
{
    return mp_fast_alloc_zf(c, false, mp_alloc_slow, 0, caller);
}

/* mp_fast_alloc with MAGPOOL_* allocation flags (addition). */
static inline __attribute__((always_inline)) void *mp_fast_alloc_flags(struct magpool_cache *c, unsigned aflags,
                                                                       const void *caller)
{
    return mp_fast_alloc_zf(c, (aflags & MAGPOOL_ZERO) != 0, mp_alloc_slow, aflags, caller);
}

/* The front-end private pointer of c (mp_cache_priv, inline; addition for the
 * front ends' validating frees).  Immutable after create. */
static inline __attribute__((always_inline)) void *mp_fast_priv(const struct magpool_cache *c)
{
    return c->c_priv;
}

/* Add obj as round n (< tc_cap) of the loaded magazine: the one place a
 * round is pushed, by the free fast path and by the slow path after it made
 * room.  Resting in a magazine, the object is poisoned for ASan. */
static inline __attribute__((always_inline)) void mp_tc_push(struct magpool_cache *c, struct mp_tcache *tc,
                                                             uint32_t n, void *obj)
{
    mp_asan_poison(obj, c->c_size);
    tc->tc_objs[n] = obj;
    mp_store_relaxed32(&tc->tc_rounds, n + 1); /* counted by tc_net, see cache_impl.h */
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
    if (__builtin_expect(tc->tc_objs[(long)n - 1] == obj, 0))
        return mp_double_free(c, obj);
    mp_tc_push(c, tc, n, obj);
}
#endif
