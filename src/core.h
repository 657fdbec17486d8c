/*
 * Internal core API for the front ends (owner: src/cache.c and friends).
 * CONTRACT.  Everything here is hidden (not exported).
 */
#ifndef MP_CORE_H
#define MP_CORE_H
#include "magpool/magpool.h"

/* Cache flags only front ends may set (through mp_cache_create_priv):
 * MP_KMALLOC_CACHE marks a kmalloc size class, whose objects debug.c gives
 * a requested size under red zones (mp_debug_set_request). */
#define MP_KMALLOC_CACHE 0x80000000u
#define MP_FE_FLAGS MP_KMALLOC_CACHE

/* magpool_cache_create plus a front-end private pointer (mp_cache_priv). */
magpool_cache_t *mp_cache_create_priv(const struct magpool_config *cfg, void *priv);
void *mp_cache_priv(const magpool_cache_t *c);

/* Validate obj as the start of an object (live or in a zombie cache).
 * Returns its cache, or NULL with *why = MP_OBJ_FOREIGN / MP_OBJ_MISALIGNED
 * (see slab.h).  If expected is non-NULL and the owner differs, returns the
 * real owner with *why = MP_OBJ_WRONG_CACHE.  Never faults. */
enum { MP_OBJ_WRONG_CACHE = 3 };
magpool_cache_t *mp_obj_check(const void *obj, magpool_cache_t *expected, int *why);

/* Objects currently handed out (allocs - frees, summed over threads). */
long mp_cache_live(magpool_cache_t *c);
/* The cache's reclamation domain. */
magpool_domain_t *mp_cache_domain(const magpool_cache_t *c);

/* NULL with errno = EINVAL, for a NULL pool/cache argument: a call the
 * front ends' hit paths make as a tail call, so they need no stack frame. */
void *mp_null_einval(void);
#endif
