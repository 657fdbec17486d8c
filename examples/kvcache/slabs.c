/*
 * slabs.c — size classes and the -m budget.
 *
 * Classes are memcached's: the first holds the item header plus -n bytes,
 * each next one is -f times larger (8-byte aligned), the last is exactly
 * KV_ITEM_SIZE_MAX.  Each class is one pool.h item cache (a magpool cache).
 *
 * Budget: every live item is charged its class size (internal fragmentation
 * included) against -m MEGABYTES from the moment it is allocated until its
 * memory is handed back to the pool; slabs_charge refuses a charge that
 * would go over, and items.c then evicts (see there).  So the bytes of items
 * never exceed -m.  What the budget does not count, as in memcached: the
 * pools' own caches (magazines, depot, free slab slots), the hash index and
 * connection buffers.
 *
 * Why a byte budget and not magpool's max_objects: max_objects bounds
 * constructed objects, which include objects resting in any thread's
 * magazines and deferred batches awaiting a grace period, so an allocation
 * could fail while nothing is live and nothing evictable frees a slot now;
 * and kmem_cache has no limit at all.  A charge taken at alloc and given
 * back at free is exact and needs no grace period.
 */
#include "slabs.h"

#include <stdatomic.h>
#include <stdio.h>

struct kv_class kv_classes[KV_MAX_CLASSES + 1];
unsigned kv_nclasses;

static _Atomic uint64_t g_charged; /* bytes of live items, by class size */
static uint64_t g_limit;

int slabs_init(size_t header, double factor, size_t minsize, uint64_t maxbytes)
{
    if (factor <= 1.0 || minsize == 0)
        return -1;
    g_limit = maxbytes;
    size_t size = (header + minsize + 7) & ~(size_t)7;
    unsigned n = 0;
    while (n < KV_MAX_CLASSES - 1 && size < KV_ITEM_SIZE_MAX) {
        kv_classes[++n].size = size;
        size_t next = (size_t)((double)size * factor);
        next = (next + 7) & ~(size_t)7;
        if (next <= size)
            next = size + 8;
        size = next;
    }
    kv_classes[++n].size = KV_ITEM_SIZE_MAX;
    kv_nclasses = n;
    for (unsigned i = 1; i <= n; i++) {
        struct kv_class *k = &kv_classes[i];
        k->id = i;
        snprintf(k->name, sizeof k->name, "kv-item-%zu", k->size);
        k->cache = kv_items_create(k->name, k->size);
        if (k->cache == NULL)
            return -1;
    }
    return 0;
}

unsigned slabs_clsid(size_t ntotal)
{
    if (ntotal == 0 || ntotal > KV_ITEM_SIZE_MAX)
        return 0;
    /* binary search: classes are increasing */
    unsigned lo = 1, hi = kv_nclasses;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (kv_classes[mid].size >= ntotal)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

bool slabs_charge(unsigned id)
{
    uint64_t sz = kv_classes[id].size;
    uint64_t now = atomic_fetch_add_explicit(&g_charged, sz, memory_order_relaxed) + sz;
    if (now > g_limit) {
        atomic_fetch_sub_explicit(&g_charged, sz, memory_order_relaxed);
        return false;
    }
    return true;
}

void slabs_uncharge(unsigned id)
{
    atomic_fetch_sub_explicit(&g_charged, kv_classes[id].size, memory_order_relaxed);
}

uint64_t slabs_bytes_charged(void)
{
    return atomic_load_explicit(&g_charged, memory_order_relaxed);
}

uint64_t slabs_limit(void)
{
    return g_limit;
}

long slabs_destroy(void)
{
    long live = 0;
    for (unsigned i = 1; i <= kv_nclasses; i++) {
        long n = kv_items_destroy(kv_classes[i].cache);
        if (n > 0)
            live += n;
        kv_classes[i].cache = NULL;
    }
    return live;
}
