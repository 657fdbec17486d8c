/*
 * Debug layer (owner: src/cache/debug.c).  CONTRACT.
 *
 * Switched on per cache by MAGPOOL_POISON / RED_ZONE / STORE_USER / VERIFY
 * flags, or for every cache by the environment variable MAGPOOL_DEBUG
 * (e.g. MAGPOOL_DEBUG=poison,redzone,user,verify,continue or =all), or when
 * running under Valgrind memcheck.  A debug cache never takes the magazine
 * fast path: every alloc/free goes through the core's slow path, which calls
 * these hooks.  Each problem prints ONE line on stderr:
 *   magpool: <cache>: <kind> at <address> [detail]
 * then aborts, unless MAGPOOL_DEBUG_CONTINUE (or "continue") is set.
 */
#ifndef MP_DEBUG_H
#define MP_DEBUG_H
#include <stdbool.h>
#include <stddef.h>
#include "magpool/magpool.h"
#include "report.h"

/* Bytes the debug record needs after each object for these flags (0 if none). */
size_t mp_debug_extra(unsigned flags, size_t size);
/* Initialise a freshly constructed object's debug record (state = free). */
void mp_debug_init_object(magpool_cache_t *c, void *obj);
/* An object is being handed out: verify poison and red zone, mark allocated,
 * record owner, unpoison for ASan/memcheck. */
void mp_debug_on_alloc(magpool_cache_t *c, void *obj, const void *caller);
/* An object is being freed: verify it is owned by c, allocated (not a double
 * free), red zone intact; mark free, poison.  Returns false when the free
 * must be dropped (problem diagnosed and configured to continue). */
bool mp_debug_on_free(magpool_cache_t *c, void *obj, const void *caller);
/* For deferred frees: the checks of mp_debug_on_free (owner,
 * double free, red zone; mark free, record owner) WITHOUT poisoning, since
 * readers may still read the object until the grace period ends.  Returns
 * false when the free must be dropped. */
bool mp_debug_on_free_deferred(magpool_cache_t *c, void *obj, const void *caller);
/* A deferred-freed object became reusable (grace period over):
 * poison it (pattern, ASan, memcheck).  mp_debug_on_free = the checks + this. */
void mp_debug_on_reclaim(magpool_cache_t *c, void *obj);
/* kmalloc: whether c records requested sizes (a kmalloc class,
 * MP_KMALLOC_CACHE, with red zones on), and record one: obj (handed out)
 * was asked for with req <= its size bytes; the rest becomes red zone,
 * checked at free.  No-op for other caches (and NULL). */
bool mp_debug_tracks_request(const magpool_cache_t *c);
void mp_debug_set_request(magpool_cache_t *c, void *obj, size_t req);
/* fork.c: hold / release the debug layer's lock (a leaf) around fork. */
void mp_debug_fork_lock(void);
void mp_debug_fork_unlock(void);
#endif
