/*
 * Shared between the Linux front-end files (owner: src/frontend/kmem_cache.c,
 * src/frontend/kmalloc.c).  Hidden; not part of any public header.
 *
 * The hot calls (kmem_cache_alloc/free, kmalloc/kfree) are the core's inline
 * magazine fast paths (fastpath.h) plus, for a free, one inline page-map and
 * slab-descriptor lookup (slab.h): no call, no lock, no atomic RMW, nothing
 * shared written.  Everything else is out of line.
 */
#ifndef MP_KMEM_INTERNAL_H
#define MP_KMEM_INTERNAL_H
#include <stdbool.h>
#include <stdint.h>

#include "frontend.h"
#include "magpool/kmem_cache.h"
#include "magpool/magpool.h"

#define KMEM_CACHE_MAGIC 0x6b6d656du /* "kmem" */
/* Every kmem cache's front-end tag on its core cache (mp_fast_fe_tag), set
 * before the cache is returned: what kfree tests for a new owner, on the
 * line the hit reads anyway, instead of loading the wrapper's magic. */
#define MP_TAG_KMEM KMEM_CACHE_MAGIC

/* The cache's private pointer (mp_cache_priv).  Starts with a uint32_t magic
 * like every front-end priv (mem_pool.c relies on it). */
struct kmem_cache {
    uint32_t magic;            /* KMEM_CACHE_MAGIC */
    unsigned int size;         /* object size given at create */
    magpool_cache_t *c;
    slab_flags_t flags;
    void (*ctor)(void *);
    char name[64];
};

/* kmem_cache_create with front-end-only core flags (core.h: MP_KMALLOC_CACHE
 * for the kmalloc classes) added to the cache's. */
struct kmem_cache *mp_kmem_cache_create(const char *name, unsigned int size, unsigned int align,
                                        slab_flags_t flags, void (*ctor)(void *), unsigned core_flags);

/* The kmem_cache owning obj (any kmem cache, kmalloc classes included).  On
 * a foreign, misaligned or non-kmem object: one-line diagnostic naming `op`,
 * abort, or (continue mode) NULL. */
struct kmem_cache *mp_kmem_owner(const void *obj, const char *op);

/* gfp_t -> MAGPOOL_* allocation flags. */
static inline unsigned mp_gfp_to_aflags(gfp_t gfp)
{
    unsigned a = 0;
    if (gfp & __GFP_ZERO)
        a |= MAGPOOL_ZERO;
    if (gfp & __GFP_NOFAIL)
        a |= MAGPOOL_NOFAIL; /* may block, whatever else gfp says */
    else if (!(gfp & (__GFP_DIRECT_RECLAIM | __GFP_HIGH)))
        a |= MAGPOOL_NOWAIT; /* Linux: no direct reclaim = may not block */
    /* __GFP_HIGH (GFP_ATOMIC): Linux serves it from the atomic reserves, so
     * it succeeds while memory exists.  User space has no reclaim to wait
     * for and no interrupt context: such a call may take the library's
     * short locks and map memory (its reserve), never waits for a grace
     * period or for another thread's free (kmem_cache.h). */
    return a;
}

/* A magazine miss of a kmem allocation: translate gfp, then the core's slow
 * path (kmem_cache.c). */
void *mp_kmem_alloc_miss(magpool_cache_t *c, unsigned gfp, const void *caller);

/* One object of c with gfp: a magazine hit never blocks and makes no system
 * call, so it serves every gfp; gfp is translated only on a miss. */
static inline __attribute__((always_inline)) void *mp_kmem_alloc(magpool_cache_t *c, gfp_t gfp,
                                                                 const void *caller)
{
    return mp_fast_alloc_zf(c, (gfp & __GFP_ZERO) != 0, mp_kmem_alloc_miss, gfp, caller);
}

/* Out of line: obj failed the inline check of kmem_cache_free-like call `op`
 * on s (NULL obj: nothing; else the one-line diagnostic).  Returns true only
 * if a re-check finds obj valid after all (then the caller frees it). */
bool mp_kmem_free_bad(struct kmem_cache *s, const void *obj, const char *op);
#endif
