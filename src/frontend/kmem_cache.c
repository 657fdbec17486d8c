/*
 * Linux kmem_cache front end over the core API (include/magpool/kmem_cache.h).
 *
 * What this layer guarantees
 *  - A struct kmem_cache is the private pointer of one magpool cache
 *    (mp_cache_create_priv), so kfree and the validators find it from an
 *    object's address alone.  Linux's 5-argument create maps onto a
 *    struct magpool_config: SLAB_* debug flags onto MAGPOOL_* flags,
 *    the 1-argument ctor through a trampoline taking the wrapper as its arg.
 *  - Constructor semantics are the core's: ctor once per construction, never
 *    on reuse.  SLAB_POISON is dropped for caches with a ctor (as Linux does);
 *    the debug layer also skips env-requested poisoning for them.
 *  - Every free is validated before it reaches the core: one inline page-map
 *    and slab-descriptor lookup (mp_slab_owner_inline: a bounds test, two
 *    loads and one multiply by the slab's precomputed reciprocal) must give
 *    the cache's own magpool cache; anything else (NULL, foreign, misaligned,
 *    wrong cache) goes out of line, where mp_obj_check says which.  The
 *    core's inline free (mp_fast_free) catches the immediate double free
 *    (and, in debug mode, the slow path catches every double free).  A
 *    destroyed (zombie) cache needs no check here: its fast id is 0, so the
 *    inline paths miss and the core's slow path handles it.
 *  - Allocation is the core's inline pop (mp_fast_alloc_flags); gfp is
 *    translated only on a miss (a hit never blocks, whatever gfp says), and
 *    __GFP_ZERO zeroes on a hit.
 *  - kmem_cache_destroy with live objects reports them and leaks the wrapper
 *    and the zombie cache's memory stays until those objects come back
 *    (they stay valid), as Linux leaks such a cache.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "kmem_internal.h"

#define SLAB_KNOWN_FLAGS                                                                         \
    (SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_HWCACHE_ALIGN | SLAB_STORE_USER | \
     SLAB_PANIC | SLAB_TYPESAFE_BY_RCU | SLAB_ACCOUNT)

static void kc_ctor(void *obj, void *arg)
{
    const struct kmem_cache *s = arg;
    s->ctor(obj);
}

static __attribute__((noinline, cold)) struct kmem_cache *
create_failed(const char *name, slab_flags_t flags, int err, const char *reason)
{
    if (flags & SLAB_PANIC) {
        char label[96];
        snprintf(label, sizeof label, "kmem_cache_create %s", name != NULL ? name : "(null)");
        mp_report(label, NULL, reason, NULL, false); /* SLAB_PANIC never continues */
        abort();
    }
    errno = err;
    return NULL;
}

struct kmem_cache *kmem_cache_create(const char *name, unsigned int size, unsigned int align,
                                     slab_flags_t flags, void (*ctor)(void *))
{
    return mp_kmem_cache_create(name, size, align, flags, ctor, 0);
}

/* Hardened usercopy's whitelist has nothing to guard in user space: checked
 * as Linux checks it (a region outside the object is dropped, with one
 * line, and the cache still made), then not used. */
struct kmem_cache *kmem_cache_create_usercopy(const char *name, unsigned int size, unsigned int align,
                                              slab_flags_t flags, unsigned int useroffset,
                                              unsigned int usersize, void (*ctor)(void *))
{
    if (name != NULL && size != 0 && (usersize > size || useroffset > size - usersize)) {
        char label[96], detail[96];
        snprintf(label, sizeof label, "kmem_cache_create_usercopy %s", name);
        snprintf(detail, sizeof detail, "(offset %u, size %u, object %u: ignored)", useroffset, usersize,
                 size);
        mp_report(label, NULL, "usercopy region outside the object", detail, true);
    }
    return mp_kmem_cache_create(name, size, align, flags, ctor, 0);
}

struct kmem_cache *mp_kmem_cache_create(const char *name, unsigned int size, unsigned int align,
                                        slab_flags_t flags, void (*ctor)(void *), unsigned core_flags)
{
    if (name == NULL)
        return create_failed(name, flags, EINVAL, "NULL name");
    if (size == 0 || size > MAGPOOL_MAX_OBJECT_SIZE)
        return create_failed(name, flags, EINVAL, "unsupported size");
    if ((align & (align - 1)) != 0 || align > 4096)
        return create_failed(name, flags, EINVAL, "alignment not a power of two <= 4096");
    if (flags & ~SLAB_KNOWN_FLAGS)
        return create_failed(name, flags, EINVAL, "unknown flags");

    struct kmem_cache *s = mp_meta_alloc(sizeof *s);
    if (s == NULL)
        return create_failed(name, flags, ENOMEM, "out of memory");
    s->magic = KMEM_CACHE_MAGIC;
    s->size = size;
    s->flags = flags;
    s->ctor = ctor;
    snprintf(s->name, sizeof s->name, "%s", name);

    unsigned mf = core_flags;
    if (flags & SLAB_HWCACHE_ALIGN)
        mf |= MAGPOOL_HWCACHE_ALIGN;
    if ((flags & SLAB_POISON) && ctor == NULL) /* poison would destroy constructed state */
        mf |= MAGPOOL_POISON;
    if (flags & SLAB_RED_ZONE)
        mf |= MAGPOOL_RED_ZONE;
    if (flags & SLAB_STORE_USER)
        mf |= MAGPOOL_STORE_USER;
    if (flags & SLAB_CONSISTENCY_CHECKS)
        mf |= MAGPOOL_VERIFY;
    if (flags & SLAB_TYPESAFE_BY_RCU)
        mf |= MAGPOOL_TYPESAFE;
    struct magpool_config cfg = {
        .name = s->name,
        .size = size,
        .align = align,
        .ctor = ctor != NULL ? kc_ctor : NULL,
        .arg = s,
        .flags = mf,
    };
    s->c = mp_cache_create_priv(&cfg, s);
    if (s->c == NULL) {
        int e = errno;
        mp_meta_free(s, sizeof *s);
        return create_failed(name, flags, e, e == ENOMEM ? "out of memory" : "rejected by the core");
    }
    /* Before the handle is returned: whoever gets s (and so frees its
     * objects) is ordered after this by however s reached it. */
    mp_fast_set_fe_tag(s->c, MP_TAG_KMEM);
    return s;
}

void kmem_cache_destroy(struct kmem_cache *s)
{
    if (s == NULL)
        return;
    long live = magpool_cache_destroy(s->c);
    if (live > 0) {
        char label[96], kind[64];
        snprintf(label, sizeof label, "kmem_cache_destroy %s", s->name);
        snprintf(kind, sizeof kind, "Slab cache still has objects (%ld)", live);
        mp_report(label, NULL, kind, NULL, true); /* a warning in Linux: continue */
        return;                                   /* wrapper stays: its objects may still be kfree'd */
    }
    if (live == 0)
        mp_meta_free(s, sizeof *s);
}

void *mp_kmem_alloc_miss(magpool_cache_t *c, unsigned gfp, const void *caller)
{
    return mp_alloc_slow(c, mp_gfp_to_aflags(gfp), caller);
}

MP_HOT_ENTRY void *kmem_cache_alloc(struct kmem_cache *s, gfp_t gfp)
{
    if (__builtin_expect(s == NULL, 0))
        return mp_null_einval();
    return mp_kmem_alloc(s->c, gfp, __builtin_return_address(0));
}

MP_HOT_ENTRY void *kmem_cache_zalloc(struct kmem_cache *s, gfp_t gfp)
{
    if (__builtin_expect(s == NULL, 0))
        return mp_null_einval();
    return mp_kmem_alloc(s->c, gfp | __GFP_ZERO, __builtin_return_address(0));
}

/* One memory node here: node is accepted and ignored (as for NUMA_NO_NODE). */
void *kmem_cache_alloc_node(struct kmem_cache *s, gfp_t gfp, int node)
{
    (void)node;
    if (__builtin_expect(s == NULL, 0))
        return mp_null_einval();
    return mp_kmem_alloc(s->c, gfp, __builtin_return_address(0));
}

/* Diagnose a bad free of obj to s (c and why from mp_obj_check). */
static __attribute__((noinline, cold)) void bad_free(const char *name, const void *obj,
                                                     magpool_cache_t *c, int why, const char *op)
{
    char detail[128];
    if (c != NULL && why == MP_OBJ_WRONG_CACHE) {
        snprintf(detail, sizeof detail, "(%s: object belongs to %s)", op, magpool_cache_name(c));
        mp_report(name, obj, "wrong cache", detail, mp_continues(0));
        return;
    }
    snprintf(detail, sizeof detail, "(%s)", op);
    mp_report(name, obj, mp_obj_problem(why), detail,
              mp_continues(0));
}

bool mp_kmem_free_bad(struct kmem_cache *s, const void *obj, const char *op)
{
    if (obj == NULL)
        return false;
    int why = 0;
    magpool_cache_t *c = mp_obj_check(obj, s->c, &why);
    if (c == s->c && why == 0)
        return true; /* (only a racing misuse elsewhere can get here) */
    bad_free(s->name, obj, c, why, op);
    return false;
}

/* True when obj may be freed to s (the inline check); otherwise the out of
 * line diagnosis (NULL obj: false, silently). */
static inline __attribute__((always_inline)) bool kc_valid(struct kmem_cache *s, const void *obj,
                                                          const char *op)
{
    if (__builtin_expect(mp_slab_owned_by(obj, s->c), 1))
        return true;
    return mp_kmem_free_bad(s, obj, op);
}

struct kmem_cache *mp_kmem_owner(const void *obj, const char *op)
{
    int why = 0;
    magpool_cache_t *c = mp_obj_check(obj, NULL, &why);
    struct kmem_cache *s = c != NULL ? mp_cache_priv(c) : NULL;
    if (__builtin_expect(s != NULL && s->magic == KMEM_CACHE_MAGIC, 1))
        return s;
    if (c != NULL) {
        char detail[128];
        snprintf(detail, sizeof detail, "(%s of an object not from a kmem_cache)", op);
        mp_report(magpool_cache_name(c), obj, "wrong cache", detail, mp_continues(0));
    } else {
        bad_free("kmalloc", obj, NULL, why, op);
    }
    return NULL;
}

static __attribute__((noinline, cold)) void null_cache(const void *obj, const char *op)
{
    mp_report(op, obj, "NULL cache", NULL, mp_continues(0));
}

/* kmem_cache_free past the inline check: NULL s or obj, or a misuse. */
static __attribute__((noinline, cold)) void free_slow(struct kmem_cache *s, void *obj, const void *caller)
{
    if (s == NULL) {
        if (obj != NULL)
            null_cache(obj, "kmem_cache_free");
        return;
    }
    if (mp_kmem_free_bad(s, obj, "kmem_cache_free"))
        mp_fast_free(s->c, obj, caller);
}

MP_HOT_ENTRY void kmem_cache_free(struct kmem_cache *s, void *obj)
{
    const void *caller = __builtin_return_address(0);
    if (__builtin_expect(s == NULL, 0))
        return free_slow(s, obj, caller);
    magpool_cache_t *c = s->c;
    if (__builtin_expect(!mp_slab_owned_by(obj, c), 0))
        return free_slow(s, obj, caller);
    mp_fast_free(c, obj, caller);
}

/* 0 with errno = EINVAL, out of line (the caller keeps no stack frame). */
static __attribute__((noinline, cold)) size_t bulk_einval(void)
{
    errno = EINVAL;
    return 0;
}

/* kmem_cache_alloc_bulk past its inline hit: argument errors, __GFP_ZERO,
 * long runs and misses, gfp translated once. */
static __attribute__((noinline)) size_t alloc_bulk_run(struct kmem_cache *s, gfp_t gfp, size_t n, void **p,
                                                       const void *caller)
{
    if (n == 0)
        return 0;
    if (s == NULL || p == NULL || n > INT_MAX)
        return bulk_einval();
    /* magpool_alloc_bulk's path past its inline hit (the entry tried that):
     * whole runs out of the magazine, all or nothing (n or 0, errno kept),
     * by a tail call. */
    return mp_alloc_bulk_run(s->c, n, p, mp_gfp_to_aflags(gfp), caller);
}

/* A short run the loaded magazine holds is a hit whatever gfp says but
 * __GFP_ZERO (a hit never blocks, as kmem_cache_alloc's): gfp is not
 * translated on it, and the entry needs no stack frame. */
MP_HOT_ENTRY int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t gfp, size_t n, void **p)
{
    if (__builtin_expect(s != NULL && p != NULL && n - 1 < MP_BULK_INLINE && !(gfp & __GFP_ZERO), 1) &&
        mp_alloc_bulk_hit(s->c, n, p, true))
        return (int)n;
    return (int)alloc_bulk_run(s, gfp, n, p, __builtin_return_address(0)); /* (n <= INT_MAX, or 0) */
}

/* A run mp_free_bulk_owned refused (nothing of it freed): object by object,
 * every misuse named (with MAGPOOL_DEBUG's continue, the good objects
 * freed). */
static __attribute__((noinline, cold)) void free_bulk_refused(void *ctx, size_t n, void *const *p,
                                                              const void *caller)
{
    struct kmem_cache *s = ctx;
    for (size_t i = 0; i < n; i++)
        if (kc_valid(s, p[i], "kmem_cache_free_bulk"))
            mp_fast_free(s->c, p[i], caller);
}

/* A NULL cache (kfree_bulk's shape): each object kfree'd; a NULL array or
 * empty run frees nothing. */
static __attribute__((noinline)) void free_bulk_args(size_t n, void **p)
{
    for (size_t i = 0; p != NULL && i < n; i++)
        kfree(p[i]); /* as Linux's kfree_bulk */
}

/* A run of one (DPDK's put_bulk(1) shape) is kmem_cache_free's check and
 * push; longer runs are checked as a whole (NULLs skipped, double frees
 * caught), by tail calls: no stack frame either way. */
MP_HOT_ENTRY void kmem_cache_free_bulk(struct kmem_cache *s, size_t n, void **p)
{
    const void *caller = __builtin_return_address(0);
    if (__builtin_expect(s != NULL && p != NULL && n != 0, 1)) {
        magpool_cache_t *c = s->c;
        if (n == 1 && __builtin_expect(mp_slab_owned_by(p[0], c), 1))
            return mp_fast_free(c, p[0], caller);
        return mp_free_bulk_owned(c, n, p, caller, free_bulk_refused, s);
    }
    if (s == NULL)
        free_bulk_args(n, p);
}

int kmem_cache_shrink(struct kmem_cache *s)
{
    if (s == NULL) {
        errno = EINVAL;
        return -1;
    }
    return magpool_cache_shrink(s->c);
}

unsigned int kmem_cache_size(struct kmem_cache *s)
{
    return s != NULL ? s->size : 0;
}

void kmem_cache_free_rcu(struct kmem_cache *s, void *obj)
{
    if (obj == NULL)
        return;
    if (s == NULL) {
        null_cache(obj, "kmem_cache_free_rcu");
        return;
    }
    if (kc_valid(s, obj, "kmem_cache_free_rcu"))
        magpool_free_deferred(s->c, obj);
}

void kmem_cache_rcu_read_lock(void)
{
    magpool_read_enter(NULL);
}

void kmem_cache_rcu_read_unlock(void)
{
    magpool_read_leave(NULL);
}

void kmem_cache_synchronize_rcu(void)
{
    magpool_synchronize(NULL);
}

/* ---- /proc/slabinfo ------------------------------------------------------- */

static int slabinfo_row(magpool_cache_t *c, void *arg)
{
    FILE *f = arg;
    struct magpool_stats st;
    if (magpool_cache_stats(c, &st) != 0)
        return 0;
    unsigned long pages_per_slab = st.slabs ? (unsigned long)(st.pages / st.slabs) : 0;
    unsigned long stride = st.stride ? (unsigned long)st.stride : 1;
    /* the core does not report objects per slab; a slab's pages over the
     * stride is exact without colouring and at most one high with it */
    unsigned long per_slab = pages_per_slab * 4096ul / stride;
    unsigned long num_objs = (unsigned long)st.slabs * per_slab;
    unsigned long active = st.constructed > st.in_slabs ? (unsigned long)(st.constructed - st.in_slabs) : 0;
    if (num_objs < st.constructed)
        num_objs = (unsigned long)st.constructed;
    /* After Linux's own fields, a section of magpool's (as CONFIG_DEBUG_SLAB
     * appends ": globalstat" and ": cpustat"; parsers such as slabtop read
     * the leading fields): where the free memory is, in bytes, and the idle
     * threads' magazines taken back. */
    fprintf(f,
            "%-17s %6lu %6lu %6lu %4lu %4lu : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu"
            " : magpool %llu %llu %llu %llu %llu\n",
            st.name, active, num_objs, (unsigned long)st.object_size, per_slab, pages_per_slab,
            st.mag_size, st.mag_size, 0u, (unsigned long)(st.slabs - st.slabs_empty),
            (unsigned long)st.slabs, (unsigned long)st.in_depot, (unsigned long long)st.threads_bytes,
            (unsigned long long)st.threads_idle_bytes, (unsigned long long)st.depot_bytes,
            (unsigned long long)st.slabs_free_bytes, (unsigned long long)st.idle_reclaims);
    return 0;
}

void kmem_cache_dump_slabinfo(FILE *f)
{
    if (f == NULL)
        f = stdout;
    fprintf(f, "slabinfo - version: 2.1\n");
    fprintf(f, "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
               " : tunables <limit> <batchcount> <sharedfactor>"
               " : slabdata <active_slabs> <num_slabs> <sharedavail>"
               " : magpool <thread_bytes> <thread_idle_bytes> <depot_bytes> <slabs_free_bytes> <idle_reclaims>\n");
    magpool_cache_foreach(slabinfo_row, f);
    fflush(f);
}
