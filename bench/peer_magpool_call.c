/*
 * peer_magpool_call.c -- the core API contender that calls the library on
 * every alloc and free (setup, teardown and shrink: peer_magpool.c).
 */
#define MAGPOOL_NO_INLINE 1
#include <magpool/magpool.h>

#include "bench.h"

/* ===== core API, every call into the library ================================
 * magpool.h inlines the magazine hit of magpool_alloc / magpool_free into
 * optimised C callers (the "magpool" rows).  This contender calls the
 * library's exported functions instead (this file defines MAGPOOL_NO_INLINE
 * before including magpool.h), which is what
 * unoptimised, sanitized and C++ builds, and calls through a pointer, get.
 * Its callgrind kernels give the fast path's own instruction count. */
static inline void *magpool_call_alloc(struct tctx *t)
{
    return magpool_alloc(t->pool);
}

static inline void magpool_call_free(struct tctx *t, void *p)
{
    magpool_free(t->pool, p);
}

/* The bulk calls are library calls whatever the caller (magpool.h inlines
 * no bulk hit): the same calls as the "magpool" rows. */
static inline int magpool_call_alloc_bulk(struct tctx *t, void **v, unsigned n)
{
    return magpool_alloc_bulk(t->pool, n, v, 0) == n ? 0 : -1;
}

static inline void magpool_call_free_bulk(struct tctx *t, void **v, unsigned n)
{
    magpool_free_bulk(t->pool, n, v);
}

#define CT magpool_call
#define CT_HAS_CTOR 1 /* magpool_bench_setup gives the cache the ctor/dtor */
#define CT_HAS_BULK 1
#include "bench_tmpl.h"
const struct contender ct_magpool_call = {
    .name = "magpool-call",
    .how = "magpool_alloc(c) / magpool_free(c,p) called in the library (not inlined); "
           "bulk: magpool_alloc_bulk/free_bulk (library calls for every caller); ctor: magpool_config.ctor/dtor",
    .caps = CT_MAGPOOL,
    .setup = magpool_bench_setup,
    .teardown = magpool_bench_teardown,
    .shrink = magpool_bench_shrink,
    .wl = &magpool_call_wl,
};
