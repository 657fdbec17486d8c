/*
 * peer_dpdk.c — DPDK rte_mempool as its users drive it for fixed-size
 * objects: a pool on the default ops (lock-free "ring_mp_mc"), a 512-object
 * per-lcore cache, rte_mempool_get/put (and _get_bulk/_put_bulk), every
 * benchmark thread registered as an lcore with rte_thread_register() so it
 * gets its cache.  EAL starts once per process, lazily, without hugepages or
 * PCI and entirely in memory.  A pool is sized for the run's live set plus
 * every lcore's cache (1.5 x 512 each), as DPDK's documentation asks.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

#include "bench.h"
#include "bench_aux.h"

#define DPDK_CACHE 512u

static int eal_state; /* 0 not tried, 1 up, -1 failed */

int bench_eal_up(void)
{
    if (eal_state)
        return eal_state > 0;
    char *argv[] = { "bench", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                     "-l", "0", "-m", "3072", "--log-level", "*:error", NULL };
    int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
    /* EAL pins the calling thread to lcore 0's CPU; every thread created
     * afterwards would inherit that.  Put the whole machine back. */
    cpu_set_t all;
    int have = sched_getaffinity(0, sizeof(all), &all) == 0;
    int rc = rte_eal_init(argc, argv);
    if (have)
        sched_setaffinity(0, sizeof(all), &all);
    if (rc < 0) {
        fprintf(stderr, "bench: dpdk: rte_eal_init failed: %s\n", rte_strerror(rte_errno));
        eal_state = -1;
        return 0;
    }
    eal_state = 1;
    return 1;
}

static int dpdk_available(void)
{
    return bench_eal_up();
}

/* The ctor workload (issue 16): rte_mempool_create's obj_init constructs
 * every object once, when the pool is populated; teardown destroys them with
 * rte_mempool_obj_iter before rte_mempool_free. */
static void dpdk_obj_init(struct rte_mempool *mp, void *arg, void *obj, unsigned idx)
{
    (void)mp;
    (void)idx;
    bench_obj_ctor(obj, arg);
}

static void dpdk_obj_fini(struct rte_mempool *mp, void *arg, void *obj, unsigned idx)
{
    (void)mp;
    (void)idx;
    bench_obj_dtor(obj, arg);
}

static int dpdk_setup(struct run *r)
{
    static unsigned seq;
    char name[RTE_MEMPOOL_NAMESIZE];
    size_t n = r->max_live + (size_t)(r->threads + 2) * DPDK_CACHE * 2 + 4096;
    snprintf(name, sizeof(name), "bench%u", seq++);
    struct rte_mempool *mp = rte_mempool_create(name, (unsigned)n, (unsigned)r->size, DPDK_CACHE, 0,
                                                NULL, NULL,
                                                r->kind == WL_CTOR ? dpdk_obj_init : NULL, NULL,
                                                SOCKET_ID_ANY, 0);
    if (!mp) {
        fprintf(stderr, "bench: dpdk: rte_mempool_create(%zu x %zu): %s\n", n, r->size,
                rte_strerror(rte_errno));
        return -1;
    }
    r->pool = mp;
    return 0;
}

static void dpdk_teardown(struct run *r)
{
    if (r->kind == WL_CTOR)
        rte_mempool_obj_iter(r->pool, dpdk_obj_fini, NULL);
    rte_mempool_free(r->pool);
    r->pool = NULL;
}

static void dpdk_enter(struct tctx *t)
{
    (void)t;
    if (rte_thread_register() != 0) {
        fprintf(stderr, "bench: dpdk: rte_thread_register: %s\n", rte_strerror(rte_errno));
        abort();
    }
}

static void dpdk_leave(struct tctx *t)
{
    /* Give this lcore's cached objects back before its id is reused. */
    struct rte_mempool_cache *c = rte_mempool_default_cache(t->pool, rte_lcore_id());
    if (c)
        rte_mempool_cache_flush(c, t->pool);
    rte_thread_unregister();
}

static inline void *dpdk_alloc(struct tctx *t)
{
    void *p;
    return rte_mempool_get(t->pool, &p) == 0 ? p : NULL;
}

static inline void dpdk_free(struct tctx *t, void *p)
{
    rte_mempool_put(t->pool, p);
}

static inline int dpdk_alloc_bulk(struct tctx *t, void **v, unsigned n)
{
    return rte_mempool_get_bulk(t->pool, v, n);
}

static inline void dpdk_free_bulk(struct tctx *t, void **v, unsigned n)
{
    rte_mempool_put_bulk(t->pool, v, n);
}

#define CT dpdk
#define CT_HAS_BULK 1
#define CT_HAS_CTOR 1
#include "bench_tmpl.h"
const struct contender ct_dpdk = {
    .name = "dpdk-mempool",
    .how = "rte_mempool_create(n = live set + lcores*1024, cache 512, ring_mp_mc); "
           "rte_mempool_get/put (bulk: _get_bulk/_put_bulk); threads rte_thread_register'ed; "
           "ctor: obj_init, rte_mempool_obj_iter(dtor) before free",
    .caps = CT_FIXED | CT_BULK | CT_NEEDS_EAL,
    .setup = dpdk_setup,
    .teardown = dpdk_teardown,
    .thread_enter = dpdk_enter,
    .thread_leave = dpdk_leave,
    .wl = &dpdk_wl,
    .available = dpdk_available,
};
