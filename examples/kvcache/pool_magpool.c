/*
 * pool_magpool.c — kvcache's allocator switch on magpool (see pool.h).
 *
 * Buffers and connection state come from GlusterFS-style mem_pools
 * (<magpool/mem_pool.h>): fixed-size, per-thread magazines, no lock on
 * get/put.  Items come from core magpool caches (<magpool/magpool.h>), one
 * per size class, in the reclamation domain magpool_domain_urcu(
 * &urcu_memb_flavor): magpool_free_deferred batches an item into a deferred
 * magazine that goes back to the cache only after a urcu-memb grace period,
 * so a reader still walking the lock-free index never sees the memory
 * reused.
 *
 * Why core caches and not kmem_cache for items: kmem_cache_free_rcu defers
 * through magpool's default (ck_epoch) domain, and kmem_cache_create takes
 * no domain argument, so a kmem_cache cannot wait for urcu-memb readers.
 * (Nor does it take an object limit; kvcache bounds memory itself, see
 * slabs.c.)  Both are findings reported in README.md.
 */
#include "pool.h"

#include <magpool/magpool.h>
#include <magpool/mem_pool.h>
#include <urcu/urcu-memb.h>

#include <stdlib.h>

struct kv_buf_pool {
    struct mem_pool *mp;
};

struct kv_buf_pool *kv_buf_pool_create(const char *name, size_t size, size_t ready)
{
    struct kv_buf_pool *p = calloc(1, sizeof *p); /* one per pool, at start */
    if (p == NULL)
        return NULL;
    p->mp = mem_pool_new_fn(size, ready ? ready : 1, name);
    if (p->mp == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void *kv_buf_get(struct kv_buf_pool *p)
{
    return mem_get(p->mp);
}

void kv_buf_put(struct kv_buf_pool *p, void *obj)
{
    (void)p; /* mem_put finds the pool from the pointer */
    mem_put(obj);
}

uint64_t kv_buf_in_use(struct kv_buf_pool *p)
{
    struct mem_pool_stats st;
    if (mem_pool_get_stats(p->mp, &st) != 0)
        return 0;
    /* mem_pool's counters split "in use" at `count`: the sum is the total */
    return (uint64_t)st.hot_count + st.cur_stdalloc;
}

long kv_buf_pool_destroy(struct kv_buf_pool *p)
{
    if (p == NULL)
        return 0;
    /* mem_pool_destroy returns nothing: read the live count first */
    long live = (long)kv_buf_in_use(p);
    mem_pool_destroy(p->mp);
    free(p);
    return live;
}

struct kv_item_cache {
    magpool_cache_t *mc;
};

struct kv_item_cache *kv_items_create(const char *name, size_t size)
{
    struct kv_item_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    struct magpool_config cfg = {
        .name = name,
        .size = size,
        /* 8, not the natural 16: an item needs no more (pointers, a
         * uint64_t, and cds_lfht's three flag bits in its node's next), and
         * classes are multiples of 8 (slabs.c), so an object takes exactly
         * its class size, as a memcached chunk does.  At 16 the 184-byte
         * class of a 100-byte value took 192 bytes a slot. */
        .align = 8,
        .domain = magpool_domain_urcu(&urcu_memb_flavor),
    };
    c->mc = magpool_cache_create(&cfg);
    if (c->mc == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void *kv_items_alloc(struct kv_item_cache *c)
{
    return magpool_alloc(c->mc);
}

void kv_items_free(struct kv_item_cache *c, void *obj)
{
    magpool_free(c->mc, obj);
}

void kv_items_free_deferred(struct kv_item_cache *c, void *obj)
{
    magpool_free_deferred(c->mc, obj);
}

int kv_items_stats(struct kv_item_cache *c, struct kv_pool_stats *st)
{
    struct magpool_stats ms;
    if (magpool_cache_stats(c->mc, &ms) != 0)
        return -1;
    st->in_use = ms.in_use;
    st->in_magazines = ms.in_magazines;
    st->in_depot = ms.in_depot;
    st->in_slabs = ms.in_slabs;
    st->deferred = ms.deferred;
    st->constructed = ms.constructed;
    st->bytes = ms.bytes;
    st->stride = ms.stride;
    st->exchanges = ms.depot_allocs + ms.depot_frees;
    st->reaps = ms.reaps;
    st->allocs = ms.allocs;
    st->frees = ms.frees;
    st->alloc_failures = ms.alloc_failures;
    return 0;
}

void kv_items_shrink(struct kv_item_cache *c)
{
    magpool_cache_shrink(c->mc);
}

long kv_items_destroy(struct kv_item_cache *c)
{
    if (c == NULL)
        return 0;
    long live = magpool_cache_destroy(c->mc);
    free(c);
    return live;
}

void kv_pool_quiesce(void)
{
    magpool_thread_flush();
    magpool_synchronize(magpool_domain_urcu(&urcu_memb_flavor));
}

void kv_pool_thread_exit(void)
{
    magpool_thread_flush();
}

const char *kv_pool_impl(void)
{
    return "magpool";
}
