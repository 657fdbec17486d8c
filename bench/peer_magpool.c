/*
 * peer_magpool.c — the magpool contenders: the core API (magpool_alloc /
 * magpool_free, bulk, deferred free on the default ck_epoch domain), and
 * the front ends exactly as their users call them: GlusterFS-style
 * mem_get / mem_put, Linux-style kmem_cache_alloc / kmem_cache_free, and
 * kmalloc / kfree (the shared size-class caches, no cache argument).
 * Each run creates its own cache and destroys it afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <magpool/kmem_cache.h>
#include <magpool/magpool.h>
#include <magpool/mem_pool.h>

#include "bench.h"
#include "bench_aux.h"

/* ===== core API ============================================================ */
int magpool_bench_setup(struct run *r)
{
    struct magpool_config cfg = { .name = "bench", .size = r->size };
    if (r->kind == WL_CTOR) { /* the cache constructs (issue 16) */
        cfg.ctor = bench_obj_ctor;
        cfg.dtor = bench_obj_dtor;
    }
    r->pool = magpool_cache_create(&cfg);
    return r->pool ? 0 : -1;
}

void magpool_bench_teardown(struct run *r)
{
    long live = magpool_cache_destroy(r->pool);
    if (live != 0)
        fprintf(stderr, "bench: magpool: %ld objects live at destroy\n", live);
    r->pool = NULL;
}

void magpool_bench_shrink(struct run *r)
{
    magpool_thread_flush();
    magpool_cache_shrink(r->pool);
}

static inline void *magpool_alloc_(struct tctx *t)
{
    return magpool_alloc(t->pool);
}

static inline void magpool_free_(struct tctx *t, void *p)
{
    magpool_free(t->pool, p);
}

/* The template calls <CT>_alloc; map the prefix onto the real names. */
#define magpool_core_alloc magpool_alloc_
#define magpool_core_free magpool_free_

static inline int magpool_core_alloc_bulk(struct tctx *t, void **v, unsigned n)
{
    return magpool_alloc_bulk(t->pool, n, v, 0) == n ? 0 : -1;
}

static inline void magpool_core_free_bulk(struct tctx *t, void **v, unsigned n)
{
    magpool_free_bulk(t->pool, n, v);
}

static inline void magpool_core_read_enter(struct tctx *t)
{
    (void)t;
    magpool_read_enter(NULL);
}

static inline void magpool_core_read_leave(struct tctx *t)
{
    (void)t;
    magpool_read_leave(NULL);
}

static inline void magpool_core_retire(struct tctx *t, void *p)
{
    magpool_free_deferred(t->pool, p);
}

static inline void magpool_core_sync(struct tctx *t)
{
    (void)t;
    magpool_thread_flush();
    magpool_synchronize(NULL);
}

#define CT magpool_core
#define CT_HAS_BULK 1
#define CT_HAS_DEFERRED 1
#define CT_HAS_CTOR 1
#include "bench_tmpl.h"
const struct contender ct_magpool = {
    .name = "magpool",
    .how = "magpool_alloc(c) / magpool_free(c,p); bulk: magpool_alloc_bulk/free_bulk; "
           "deferred: magpool_read_enter/leave + magpool_free_deferred; shrink: magpool_cache_shrink; "
           "ctor: magpool_config.ctor/dtor",
    .caps = CT_MAGPOOL | CT_BULK | CT_DEFERRED,
    .setup = magpool_bench_setup,
    .teardown = magpool_bench_teardown,
    .shrink = magpool_bench_shrink,
    .wl = &magpool_core_wl,
};


/* ===== GlusterFS front end ================================================= */
static int mempool_setup(struct run *r)
{
    size_t count = r->max_live + r->threads;
    if (count > (1u << 20))
        count = 1u << 20;
    r->pool = mem_pool_new_fn(r->size, count, "bench");
    return r->pool ? 0 : -1;
}

static void mempool_teardown(struct run *r)
{
    mem_pool_destroy(r->pool);
    r->pool = NULL;
}

static void mempool_shrink(struct run *r)
{
    (void)r;
    magpool_thread_flush();
    magpool_reap();
}

static inline void *mempool_alloc(struct tctx *t)
{
    return mem_get(t->pool);
}

static inline void mempool_free(struct tctx *t, void *p)
{
    (void)t;
    mem_put(p);
}

#define CT mempool
#include "bench_tmpl.h"
const struct contender ct_mempool = {
    .name = "magpool-mem_pool",
    .how = "mem_pool_new_fn(size, live set, ..) ; mem_get(pool) / mem_put(p); shrink: magpool_reap; "
           "ctor: by hand (mem_pool has no constructor)",
    .caps = CT_MAGPOOL,
    .setup = mempool_setup,
    .teardown = mempool_teardown,
    .shrink = mempool_shrink,
    .wl = &mempool_wl,
};

/* ===== Linux front end ===================================================== */
/* kmem_cache_create takes a constructor and, as in Linux, no destructor:
 * the objects' mutex and condition variable are never destroyed (on glibc
 * both destroys only check that nothing waits, nothing is released). */
static void kmem_obj_ctor(void *obj)
{
    bench_obj_ctor(obj, NULL);
}

static int kmem_setup(struct run *r)
{
    r->pool = kmem_cache_create("bench", (unsigned)r->size, 0, 0,
                                r->kind == WL_CTOR ? kmem_obj_ctor : NULL);
    return r->pool ? 0 : -1;
}

static void kmem_teardown(struct run *r)
{
    kmem_cache_destroy(r->pool);
    r->pool = NULL;
}

static void kmem_shrink(struct run *r)
{
    magpool_thread_flush();
    kmem_cache_shrink(r->pool);
}

static inline void *kmem_alloc(struct tctx *t)
{
    return kmem_cache_alloc(t->pool, GFP_KERNEL);
}

static inline void kmem_free(struct tctx *t, void *p)
{
    kmem_cache_free(t->pool, p);
}

static inline int kmem_alloc_bulk(struct tctx *t, void **v, unsigned n)
{
    return kmem_cache_alloc_bulk(t->pool, GFP_KERNEL, n, v) == (int)n ? 0 : -1;
}

static inline void kmem_free_bulk(struct tctx *t, void **v, unsigned n)
{
    kmem_cache_free_bulk(t->pool, n, v);
}

#define CT kmem
#define CT_HAS_BULK 1
#define CT_HAS_CTOR 1
#include "bench_tmpl.h"
const struct contender ct_kmem = {
    .name = "magpool-kmem_cache",
    .how = "kmem_cache_create(..,size,0,0,NULL); kmem_cache_alloc(s,GFP_KERNEL) / kmem_cache_free(s,p); "
           "bulk: kmem_cache_alloc_bulk/free_bulk; shrink: kmem_cache_shrink; ctor: kmem_cache_create's "
           "ctor (no dtor in this API)",
    .caps = CT_MAGPOOL | CT_BULK,
    .setup = kmem_setup,
    .teardown = kmem_teardown,
    .shrink = kmem_shrink,
    .wl = &kmem_wl,
};

/* ===== kmalloc ============================================================= */
/* kmalloc(size, GFP_KERNEL) / kfree(p): the shared "kmalloc-<n>" cache of the
 * size's class (created on first use, kept across runs, as in Linux), so
 * setup and teardown have nothing to do.  kfree finds the cache from the
 * pointer alone, like mem_put.  No constructor, no bulk call in this API. */
static int kmalloc_setup(struct run *r)
{
    (void)r;
    return 0;
}

static void kmalloc_teardown(struct run *r)
{
    (void)r;
}

static void kmalloc_shrink(struct run *r)
{
    (void)r;
    magpool_thread_flush();
    magpool_reap();
}

static inline void *kmalloc_alloc(struct tctx *t)
{
    return kmalloc(t->size, GFP_KERNEL);
}

static inline void kmalloc_free(struct tctx *t, void *p)
{
    (void)t;
    kfree(p);
}

#define CT kmalloc
#include "bench_tmpl.h"
const struct contender ct_kmalloc = {
    .name = "magpool-kmalloc",
    .how = "kmalloc(size, GFP_KERNEL) / kfree(p) (the kmalloc-<n> cache of the size's class); "
           "shrink: magpool_reap; ctor: by hand (no constructor)",
    .caps = CT_MAGPOOL,
    .setup = kmalloc_setup,
    .teardown = kmalloc_teardown,
    .shrink = kmalloc_shrink,
    .wl = &kmalloc_wl,
};
