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

/* The owner check of the frees that take no cache (mem_put, kfree), with
 * the memo that keeps it off the hit's critical path.  *memo is the cache
 * this thread last freed to through that front end: a thread-local the
 * caller keeps, never NULL (initialised to MP_FE_MEMO_INIT).  Returns true when obj is an object start of a live slab
 * of *memo (mp_slab_owned_by); the caller then pushes onto *memo, which it
 * had before the lookup's dependent loads finished, so the push does not
 * wait for them.  On false the caller's out-of-line path looks the owner up
 * again, validates it and remembers it (mp_fe_owner_learn).  A memo is only ever used after a
 * lookup agreed with it, so a stale one (its cache destroyed and gone) is
 * never read. */
/* A memo's initial value (MP_FE_MEMO_INIT): an address no slab names as
 * its owner (cache.c). */
extern const char mp_fe_no_owner;
#define MP_FE_MEMO_INIT ((magpool_cache_t *)&mp_fe_no_owner)

static inline __attribute__((always_inline)) bool mp_fe_owner_memo(const void *obj, magpool_cache_t **memo)
{
    magpool_cache_t *m = *memo;
    if (__builtin_expect(!mp_slab_owned_by(obj, m), 0))
        return false;
    /* The caller goes on with m (known early), not the owner word it was
     * just compared with: the compiler must not make the hit wait for it. */
    __asm__("" : "+r"(m));
    *memo = m;
    return true;
}

/* The out-of-line half of mp_fe_owner_memo: obj's owner if it is an object
 * start of a cache carrying the front end's tag (mp_fast_fe_tag), which then
 * becomes the memo; else NULL (the caller's misuse path says why). */
static inline magpool_cache_t *mp_fe_owner_learn(const void *obj, uint32_t tag, magpool_cache_t **memo)
{
    magpool_cache_t *c = mp_slab_owner_inline(obj);
    if (c == NULL || mp_fast_fe_tag(c) != tag)
        return NULL;
    *memo = c;
    return c;
}

/* NULL with errno = EINVAL, for a NULL pool/cache argument: a call the
 * front ends' hit paths make as a tail call, so they need no stack frame. */
void *mp_null_einval(void);
#endif
