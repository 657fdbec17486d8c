/*
 * GlusterFS mem_pool front end over the core API (include/magpool/mem_pool.h).
 *
 * What this layer guarantees
 *  - A pool is one magpool cache whose private pointer (mp_cache_priv) is the
 *    struct mem_pool below, so mem_put finds the pool from the object's
 *    address alone and objects carry no header.
 *  - mem_get / mem_get0 are the core's inline pop (fastpath.h); mem_put is
 *    one inline page-map + slab-descriptor lookup (mp_slab_owner_inline:
 *    catches foreign and misaligned pointers), one compare of the pool's
 *    magic (catches objects of other caches, and routes puts to a destroyed
 *    pool out of line), then the core's inline push (catches the immediate
 *    double free).  No call, lock, counter or atomic RMW on a hit.  The
 *    magic is written once at creation and once at destroy (ordered by the
 *    caller before any later put, mem_pool.h's synchronization table).
 *  - The ready set: `count` objects are built and parked in the depot at
 *    creation (no header, no separate list: the memory they cost is the
 *    objects' and their magazines', ~8 B per object in magazine slots).
 *  - GlusterFS's counters are derived when read from magpool_cache_stats
 *    plus three numbers this file keeps: the warm-up's allocs and slab takes
 *    (subtracted so the counters start at zero) and a sampled max_alloc.
 *  - Destroy with objects out: the cache becomes a core zombie; this wrapper
 *    stays alive as its priv with `zombie_left` = objects still out; each
 *    later mem_put releases its object to the zombie and counts down; the put
 *    that reaches zero frees the wrapper (the core has then freed the cache).
 *  - mem_pools_init / mem_pools_fini (GlusterFS's process set-up) are a
 *    count under the registry lock; the last fini reaps (magpool_reap), so
 *    pools work without them and after them.
 *
 * Convention shared with kmem_cache.c: every front-end priv starts with a
 * uint32_t magic, so a pool can tell its own objects from other caches'.
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "magpool/mem_pool.h"

#define MEM_POOL_MAGIC 0x6d706f6fu      /* "mpoo" */
#define MEM_POOL_DEAD_MAGIC 0x64656164u /* "dead": destroyed, objects still out */
/* The same marks as the pool's cache's front-end tag (mp_fast_fe_tag). */
#define MP_TAG_MEM_POOL MEM_POOL_MAGIC
#define MP_TAG_MEM_POOL_DEAD MEM_POOL_DEAD_MAGIC

struct mem_pool {
    uint32_t magic;              /* MEM_POOL_MAGIC, or MEM_POOL_DEAD_MAGIC after destroy
                                    with objects out; first field (see above) */
    magpool_cache_t *cache;
    unsigned long count;         /* objects to have ready at once */
    unsigned long size;          /* sizeof_type */
    uint64_t warm_allocs;        /* core allocs done by the warm-up */
    uint64_t warm_slab_allocs;   /* core slab takes at the end of the warm-up */
    _Atomic unsigned long max_alloc; /* sampled peak in use (relaxed: a statistic) */
    _Atomic long zombie_left;    /* objects out at destroy, not yet put back */
    struct mem_pool *next, **pprev; /* registry of live pools, under registry_lock */
    char name[64];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mem_pool *registry;

/* Fork: the registry lock is taken before the core's locks (statedump holds
 * it while reading stats), so its handler is registered after the core's
 * (pthread_atfork runs prepare handlers in reverse order of registration):
 * registry_add runs after the pool's core cache exists. */
static void registry_fork_lock(void)
{
    pthread_mutex_lock(&registry_lock);
}

static void registry_fork_unlock(void)
{
    pthread_mutex_unlock(&registry_lock);
}

/* At load, after the core's (fork.c: constructor 101), never lazily: a fork
 * during a lazy registration left the child's once-control in progress. */
__attribute__((constructor(102))) static void registry_fork_register(void)
{
    if (pthread_atfork(registry_fork_lock, registry_fork_unlock, registry_fork_unlock) != 0)
        fprintf(stderr, "magpool: mem_pool: pthread_atfork failed at %p\n", (void *)&registry_lock);
}

static void registry_add(struct mem_pool *p)
{
    pthread_mutex_lock(&registry_lock);
    p->next = registry;
    if (registry != NULL)
        registry->pprev = &p->next;
    p->pprev = &registry;
    registry = p;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_del(struct mem_pool *p)
{
    pthread_mutex_lock(&registry_lock);
    *p->pprev = p->next;
    if (p->next != NULL)
        p->next->pprev = p->pprev;
    pthread_mutex_unlock(&registry_lock);
}

/* Build `count` objects and park them in the pool: alloc them all at once
 * (so they are distinct), then free them all to the magazines and depot. */
static int warm_up(magpool_cache_t *c, unsigned long count)
{
    if (count > SIZE_MAX / sizeof(void *)) {
        errno = ENOMEM;
        return -1;
    }
    void **objs = mp_meta_alloc(count * sizeof(void *));
    if (objs == NULL)
        return -1;
    size_t got = magpool_alloc_bulk(c, count, objs, 0);
    if (got != count) {
        int e = errno;
        mp_meta_free(objs, count * sizeof(void *));
        errno = e ? e : ENOMEM;
        return -1;
    }
    magpool_free_bulk(c, count, objs);
    mp_meta_free(objs, count * sizeof(void *));
    return 0;
}

struct mem_pool *mem_pool_new_fn(unsigned long sizeof_type, unsigned long count, const char *name)
{
    if (sizeof_type == 0 || count == 0 || sizeof_type > MAGPOOL_MAX_OBJECT_SIZE) {
        errno = EINVAL;
        return NULL;
    }
    struct mem_pool *p = mp_meta_alloc(sizeof *p);
    if (p == NULL)
        return NULL;
    p->magic = MEM_POOL_MAGIC;
    p->count = count;
    p->size = sizeof_type;
    snprintf(p->name, sizeof p->name, "%s", name != NULL ? name : "mem_pool");
    struct magpool_config cfg = {
        .name = p->name,
        .size = sizeof_type,
        /* malloc's alignment for 16 bytes and up, 8 below */
        .align = sizeof_type >= 16 ? _Alignof(max_align_t) : 8,
    };
    p->cache = mp_cache_create_priv(&cfg, p);
    if (p->cache == NULL) {
        int e = errno;
        mp_meta_free(p, sizeof *p);
        errno = e;
        return NULL;
    }
    mp_fast_set_fe_tag(p->cache, MP_TAG_MEM_POOL);
    if (warm_up(p->cache, count) != 0) {
        int e = errno;
        magpool_cache_destroy(p->cache);
        mp_meta_free(p, sizeof *p);
        errno = e;
        return NULL;
    }
    struct magpool_stats st;
    if (magpool_cache_stats(p->cache, &st) == 0) {
        p->warm_allocs = st.allocs;
        p->warm_slab_allocs = st.slab_allocs;
    }
    registry_add(p);
    return p;
}

MP_HOT_ENTRY void *mem_get(struct mem_pool *pool)
{
    if (__builtin_expect(pool == NULL, 0))
        return mp_null_einval();
    return mp_fast_alloc(pool->cache, __builtin_return_address(0));
}

MP_HOT_ENTRY void *mem_get0(struct mem_pool *pool)
{
    if (__builtin_expect(pool == NULL, 0))
        return mp_null_einval();
    return mp_fast_alloc_flags(pool->cache, MAGPOOL_ZERO, __builtin_return_address(0));
}

/* mem_put of an object whose pool was destroyed: release it to the zombie;
 * the put that returns the last object frees the wrapper. */
static __attribute__((noinline, cold)) void put_to_dead_pool(struct mem_pool *p, void *ptr)
{
    magpool_free(p->cache, ptr);
    /* acq_rel: release orders this thread's reads of *p before the count
     * reaches zero; acquire (in the thread that reaches zero) makes every
     * other putter's reads happen before the free below.  Weakened, the
     * wrapper could be freed while another putter still reads it. */
    if (mp_fetch_sub_acqrel(&p->zombie_left, 1) == 1)
        mp_meta_free(p, sizeof *p);
}

/* Every put that failed the inline checks: NULL (nothing), a destroyed
 * pool's object, or a misuse (diagnosed; mp_obj_check says which). */
static __attribute__((noinline, cold)) void put_slow(void *ptr, const void *caller)
{
    if (ptr == NULL)
        return;
    int why = 0;
    magpool_cache_t *c = mp_obj_check(ptr, NULL, &why);
    struct mem_pool *p = c != NULL ? mp_cache_priv(c) : NULL;
    if (p != NULL && p->magic == MEM_POOL_DEAD_MAGIC) {
        put_to_dead_pool(p, ptr);
    } else if (p != NULL && p->magic == MEM_POOL_MAGIC) {
        mp_fast_free(c, ptr, caller); /* (only a racing misuse elsewhere gets here) */
    } else if (c == NULL) {
        mp_report("mem_pool", ptr, mp_obj_problem(why),
                  "(mem_put)", mp_continues(0));
    } else {
        mp_report(magpool_cache_name(c), ptr, "wrong cache", "(mem_put of an object not from a mem_pool)",
                  mp_continues(0));
    }
}

/* The cache of the pool this thread last put to (mp_fe_owner_memo: without
 * it the hit waited for the whole owner lookup, and a mem_get/mem_put pair
 * took twice as long as kmem_cache_alloc/free, whose cache is an argument).
 */
static __thread magpool_cache_t *mp_put_memo __attribute__((tls_model("initial-exec"))) = MP_FE_MEMO_INIT;

/* mem_put when the owner is not the remembered cache: look it up, validate
 * the tag, remember it, free. */
static __attribute__((noinline)) void put_new_owner(void *ptr, const void *caller)
{
    magpool_cache_t *c = mp_fe_owner_learn(ptr, MP_TAG_MEM_POOL, &mp_put_memo);
    if (c == NULL)
        return put_slow(ptr, caller);
    mp_fast_free(c, ptr, caller);
}

MP_HOT_ENTRY void mem_put(void *ptr)
{
    const void *caller = __builtin_return_address(0);
    magpool_cache_t *c = mp_put_memo;
    if (__builtin_expect(!mp_fe_owner_memo(ptr, &c), 0))
        return put_new_owner(ptr, caller);
    /* The pool's tag on its cache, next to the fast id the hit reads (a
     * destroyed pool's is MP_TAG_MEM_POOL_DEAD: put_slow). */
    if (__builtin_expect(mp_fast_fe_tag(c) != MP_TAG_MEM_POOL, 0))
        return put_slow(ptr, caller);
    mp_fast_free(c, ptr, caller);
}

void mem_pool_destroy(struct mem_pool *pool)
{
    if (pool == NULL)
        return;
    registry_del(pool);
    long live = magpool_cache_destroy(pool->cache);
    if (live <= 0) {
        /* clean (or the core refused: then nothing can reach the wrapper
         * except a misuse the core diagnoses) */
        if (live == 0)
            mp_meta_free(pool, sizeof *pool);
        return;
    }
    mp_store_relaxed(&pool->zombie_left, live);
    pool->magic = MEM_POOL_DEAD_MAGIC; /* later puts: put_to_dead_pool */
    mp_fast_set_fe_tag(pool->cache, MP_TAG_MEM_POOL_DEAD);
}

/* GlusterFS's process-wide set-up calls.  magpool needs no set-up (its
 * reaper starts with the first cache), so they keep GlusterFS's pairing
 * count and nothing else: the last mem_pools_fini gives the memory the pools
 * are not using back, as GlusterFS's does when it stops its sweeper. */
static unsigned long pools_init_count; /* under registry_lock */

void mem_pools_init(void)
{
    pthread_mutex_lock(&registry_lock);
    pools_init_count++;
    pthread_mutex_unlock(&registry_lock);
}

/* GlusterFS 3.12's split: _early set up its lists, _late started the
 * sweeper and counted. */
void mem_pools_init_early(void)
{
}

void mem_pools_init_late(void)
{
    mem_pools_init();
}

void mem_pools_fini(void)
{
    pthread_mutex_lock(&registry_lock);
    bool last = pools_init_count == 1;
    if (pools_init_count > 0) /* (a fini without an init: nothing, as GlusterFS) */
        pools_init_count--;
    pthread_mutex_unlock(&registry_lock);
    if (last) {
        magpool_thread_flush();
        magpool_reap();
    }
}

static void sample_max(struct mem_pool *p, unsigned long in_use)
{
    unsigned long m = mp_load_relaxed(&p->max_alloc);
    while (in_use > m &&
           !mp_cas_weak_relaxed(&p->max_alloc, &m, in_use)) {
    }
}

int mem_pool_get_stats(struct mem_pool *pool, struct mem_pool_stats *out)
{
    struct magpool_stats st;
    if (pool == NULL || out == NULL || pool->magic != MEM_POOL_MAGIC ||
        magpool_cache_stats(pool->cache, &st) != 0) {
        errno = EINVAL;
        return -1;
    }
    /* per-thread sums read while others run may be momentarily skewed:
     * clamp so no counter goes negative */
    unsigned long in_use = st.in_use > st.constructed ? (unsigned long)st.constructed
                                                      : (unsigned long)st.in_use;
    sample_max(pool, in_use);
    unsigned long max = mp_load_relaxed(&pool->max_alloc);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", pool->name);
    out->count = pool->count;
    out->real_sizeof_type = pool->size;
    out->padded_sizeof = (unsigned long)st.stride;
    out->hot_count = in_use < pool->count ? in_use : pool->count;
    out->cold_count = (unsigned long)st.constructed - in_use;
    out->alloc_count = st.allocs >= pool->warm_allocs ? st.allocs - pool->warm_allocs : 0;
    out->max_alloc = max;
    out->pool_misses =
        st.slab_allocs >= pool->warm_slab_allocs ? st.slab_allocs - pool->warm_slab_allocs : 0;
    out->cur_stdalloc = in_use > pool->count ? in_use - pool->count : 0;
    out->max_stdalloc = max > pool->count ? max - pool->count : 0;
    out->thread_bytes = st.threads_bytes;
    out->thread_idle_bytes = st.threads_idle_bytes;
    out->depot_bytes = st.depot_bytes;
    out->slabs_free_bytes = st.slabs_free_bytes;
    out->idle_reclaims = st.idle_reclaims;
    return 0;
}

void mem_pool_dump(FILE *f)
{
    if (f == NULL)
        f = stdout;
    pthread_mutex_lock(&registry_lock);
    fprintf(f, "[mempool]\n");
    for (struct mem_pool *p = registry; p != NULL; p = p->next) {
        struct mem_pool_stats s;
        if (mem_pool_get_stats(p, &s) != 0)
            continue;
        fprintf(f,
                "-----=-----\n"
                "pool-name=%s\n"
                "hot-count=%lu\n"
                "cold-count=%lu\n"
                "padded_sizeof=%lu\n"
                "alloc-count=%llu\n"
                "max-alloc=%lu\n"
                "pool-misses=%llu\n"
                "cur-stdalloc=%lu\n"
                "max-stdalloc=%lu\n"
                "thread-bytes=%llu\n"
                "thread-idle-bytes=%llu\n"
                "depot-bytes=%llu\n"
                "slabs-free-bytes=%llu\n"
                "idle-reclaims=%llu\n",
                s.name, s.hot_count, s.cold_count, s.padded_sizeof,
                (unsigned long long)s.alloc_count, s.max_alloc,
                (unsigned long long)s.pool_misses, s.cur_stdalloc, s.max_stdalloc,
                (unsigned long long)s.thread_bytes, (unsigned long long)s.thread_idle_bytes,
                (unsigned long long)s.depot_bytes,
                (unsigned long long)s.slabs_free_bytes, (unsigned long long)s.idle_reclaims);
    }
    pthread_mutex_unlock(&registry_lock);
    fflush(f);
}
