/*
 * The one internal header of the front ends (mem_pool.c, kmem_cache.c,
 * kmalloc.c): what a front end may use of the engine, as a kernel driver
 * includes <linux/slab.h> and not the allocator's private structs.  Owner:
 * the core layer (src/core).  Everything here is hidden (not exported).
 *
 * A front end gets:
 *  - the core API (magpool.h) and mp_cache_create_priv, which hangs the front
 *    end's own struct on a cache (mp_cache_priv / mp_fast_priv find it again);
 *  - the magazine hits and their slow paths, inline (fastpath.h), so
 *    kmem_cache_alloc or mem_get cost what magpool_alloc costs;
 *  - object lookups from an address alone (mp_slab_owner_inline,
 *    mp_obj_check, the MP_OBJ_* reasons) and large blocks (mp_large_*) from
 *    the slab layer (slab.h);
 *  - the order-named atomics (atomics.h), the diagnostic reporter (report.h), metadata memory for its own structs
 *    (meta.h), and the debug layer's kmalloc red-zone hooks (debug.h).
 * The Bazel target //src:frontend depends on //src:frontend_api only, so a
 * front end that includes anything else does not build (layering_check).
 */
#ifndef MP_FRONTEND_H
#define MP_FRONTEND_H
#include <stdbool.h>

#include "magpool/magpool.h"

#include "atomics.h"
#include "debug.h"
#include "fastpath.h"
#include "meta.h"
#include "report.h"
#include "slab.h"

/* magpool_cache_create plus a front-end private pointer (mp_cache_priv) and
 * the front-end-only flags (MP_FE_FLAGS). */
magpool_cache_t *mp_cache_create_priv(const struct magpool_config *cfg, void *priv);

/* The owner check of the validating frees (kmem_cache_free, kfree,
 * mem_put): a slab memo (slab.h) per front end and thread, which remembers
 * the slab of the last object freed through that front end, so a free into
 * the same slab costs no page-map lookup (mp_slab_memo_hit).  A front end's memo only ever
 * holds slabs of caches carrying its tag (mp_fast_fe_tag), so a hit is an
 * object start of a live slab of such a cache, m->owner: the caller tests what its
 * call adds (kmem_cache_free: the cache it was given; mem_put: a destroyed
 * pool's tag). */
/* The miss, out of line in the caller: obj's owner if obj is an object
 * start of a cache carrying tag, whose slab then becomes the memo; else
 * NULL (the caller's misuse path says why). */
static inline magpool_cache_t *mp_fe_memo_learn(const void *obj, uint32_t tag, struct mp_slab_memo *m)
{
    struct mp_slab_memo t;
    if (!mp_slab_memo_take(obj, &t) || mp_fast_fe_tag(t.owner) != tag)
        return NULL;
    if (t.span != 0)
        *m = t;
    return t.owner;
}

/* NULL with errno = EINVAL, for a NULL pool/cache argument: a call the
 * front ends' hit paths make as a tail call, so they need no stack frame. */
void *mp_null_einval(void);
#endif
