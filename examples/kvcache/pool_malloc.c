/*
 * pool_malloc.c — kvcache's allocator switch on the C library's malloc (see
 * pool.h), for comparing allocators by LD_PRELOAD with every data structure
 * above unchanged.  Fixed-size objects are malloc'd one by one; deferred
 * frees go through urcu_memb_call_rcu and free() in liburcu's call_rcu
 * thread.  Counters are relaxed atomics (in_use, allocs, frees) so the
 * conservation summary and `stats slabs` still say something.
 */
#include "pool.h"

#include <urcu/urcu-memb.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct counters {
    _Atomic uint64_t allocs, frees, deferred_done, deferred;
    size_t size;
};

static void count_alloc(struct counters *k)
{
    atomic_fetch_add_explicit(&k->allocs, 1, memory_order_relaxed);
}

static void count_free(struct counters *k)
{
    atomic_fetch_add_explicit(&k->frees, 1, memory_order_relaxed);
}

static uint64_t live(struct counters *k)
{
    return atomic_load_explicit(&k->allocs, memory_order_relaxed) -
           atomic_load_explicit(&k->frees, memory_order_relaxed);
}

struct kv_buf_pool {
    struct counters k;
};

struct kv_buf_pool *kv_buf_pool_create(const char *name, size_t size, size_t ready)
{
    (void)name;
    (void)ready;
    struct kv_buf_pool *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->k.size = size;
    return p;
}

void *kv_buf_get(struct kv_buf_pool *p)
{
    void *o = malloc(p->k.size);
    if (o != NULL)
        count_alloc(&p->k);
    return o;
}

void kv_buf_put(struct kv_buf_pool *p, void *obj)
{
    if (obj == NULL)
        return;
    free(obj);
    count_free(&p->k);
}

uint64_t kv_buf_in_use(struct kv_buf_pool *p)
{
    return live(&p->k);
}

long kv_buf_pool_destroy(struct kv_buf_pool *p)
{
    if (p == NULL)
        return 0;
    long n = (long)live(&p->k);
    free(p);
    return n;
}

struct kv_item_cache {
    struct counters k;
};

/* A deferred free needs an rcu_head, and readers may still read any byte of
 * the item until the grace period ends: the head lives in a hidden prefix
 * in front of each item (16 bytes; the magpool build needs none). */
struct prefix {
    struct rcu_head head;
    struct counters *k;
    void *pad_; /* keeps the item 16-byte aligned like malloc's */
};

static void deferred_free_cb(struct rcu_head *h)
{
    struct prefix *pre = caa_container_of(h, struct prefix, head);
    struct counters *k = pre->k;
    free(pre);
    count_free(k);
    atomic_fetch_sub_explicit(&k->deferred, 1, memory_order_relaxed);
}

struct kv_item_cache *kv_items_create(const char *name, size_t size)
{
    (void)name;
    struct kv_item_cache *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->k.size = size;
    return c;
}

void *kv_items_alloc(struct kv_item_cache *c)
{
    struct prefix *pre = malloc(sizeof *pre + c->k.size);
    if (pre == NULL)
        return NULL;
    pre->k = &c->k;
    count_alloc(&c->k);
    return pre + 1;
}

void kv_items_free(struct kv_item_cache *c, void *obj)
{
    if (obj == NULL)
        return;
    free((struct prefix *)obj - 1);
    count_free(&c->k);
}

void kv_items_free_deferred(struct kv_item_cache *c, void *obj)
{
    struct prefix *pre = (struct prefix *)obj - 1;
    atomic_fetch_add_explicit(&c->k.deferred, 1, memory_order_relaxed);
    urcu_memb_call_rcu(&pre->head, deferred_free_cb);
}

int kv_items_stats(struct kv_item_cache *c, struct kv_pool_stats *st)
{
    memset(st, 0, sizeof *st);
    uint64_t d = atomic_load_explicit(&c->k.deferred, memory_order_relaxed);
    st->allocs = atomic_load_explicit(&c->k.allocs, memory_order_relaxed);
    st->frees = atomic_load_explicit(&c->k.frees, memory_order_relaxed);
    st->constructed = st->allocs - st->frees;
    st->deferred = d;
    st->in_use = st->constructed - d;
    st->stride = c->k.size;
    st->bytes = st->constructed * c->k.size;
    return 0;
}

void kv_items_shrink(struct kv_item_cache *c)
{
    (void)c;
}

long kv_items_destroy(struct kv_item_cache *c)
{
    if (c == NULL)
        return 0;
    long n = (long)live(&c->k);
    free(c);
    return n;
}

void kv_pool_quiesce(void)
{
    urcu_memb_barrier(); /* every queued call_rcu callback has run */
}

void kv_pool_thread_exit(void)
{
}

const char *kv_pool_impl(void)
{
    return "malloc";
}
