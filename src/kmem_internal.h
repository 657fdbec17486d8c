/*
 * Shared between the Linux front-end files (owner: src/kmem_cache.c,
 * src/kmalloc.c).  Hidden; not part of any public header.
 */
#ifndef MP_KMEM_INTERNAL_H
#define MP_KMEM_INTERNAL_H
#include <stdint.h>
#include "magpool/kmem_cache.h"
#include "magpool/magpool.h"

#define KMEM_CACHE_MAGIC 0x6b6d656du /* "kmem" */

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
    else if (!(gfp & __GFP_DIRECT_RECLAIM))
        a |= MAGPOOL_NOWAIT; /* Linux: no direct reclaim = may not block */
    return a;
}
#endif
