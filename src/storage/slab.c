/*
 * Slab layer: carves page blocks into constructed objects (Bonwick 1994,
 * "The Slab Allocator"; Bonwick & Adams 2001).  The slow path of magpool.
 *
 * GUARANTEES (see slab.h for the calls)
 *  - Objects carry 0 bytes of overhead: the slab descriptor lives off-slab and
 *    the free objects of a slab are kept as a stack of 16-bit indices in
 *    separate memory, so the layer never writes into an object.  An object's
 *    constructed state therefore survives any number of free/alloc cycles.
 *  - The ctor runs exactly once per object, lazily, when the object is first
 *    taken from its slab (outside the cache lock); the dtor runs exactly once
 *    per built object, when its slab is torn down.
 *  - mp_slab_owner(p) is O(1), takes no lock and never faults.
 *
 * GEOMETRY (fixed at cache creation)
 *   align  = params.align, raised to 64 for HWCACHE_ALIGN caches of size >= 64
 *   stride = round_up(size + extra, align)
 *   order  = the smallest order k >= k0 (k0 = 2, i.e. 16 KiB, for strides of
 *            at most 2 KiB so one slab-layer trip serves many objects; else 0)
 *            with n = floor(4096 * 2^k / stride) >= 8 objects and waste
 *            4096 * 2^k - n * stride <= 1/8 of the slab.  If no order up to
 *            MP_MAX_ORDER qualifies (huge objects), the largest order with
 *            waste <= 1/8, else the order of least waste ratio.  n <= 65535.
 * COLOURING (Bonwick 1994, seed 001): the leftover L = slab - n * stride is
 * split into ncolours = L / step + 1 offsets, step = max(align, 64) (a cache
 * line at least); slab number j starts its objects at (j mod ncolours) * step
 * from the block start, so equal-index objects of successive slabs fall on
 * different cache lines.  The offset is a multiple of align, and a block is
 * aligned to its size (>= 4 KiB >= align), so every object is aligned.
 *
 * SLAB STATES AND INVARIANTS.  Objects [0, nbuilt) of a slab have been
 * constructed; of those, nfree are on the free stack and inuse are handed out.
 *   (SL1) nfree + inuse == nbuilt <= n                      per slab
 *   (SL2) the free stack holds nfree distinct indices, each < nbuilt
 *   (SL3) list(s) = EMPTY if inuse == 0, FULL if inuse == n, else PARTIAL
 *   (SC1) constructed   == sum over linked slabs of nbuilt   per cache
 *   (SC2) free_in_slabs == sum over linked slabs of nfree
 *   (SC3) constructed <= max_objects when a limit is set
 *   (SL4) the lookup fields describe the slab: base, span = n * stride,
 *         magic, and inv * (stride >> rot) == 1 mod 2^32 with nobjs == n
 * Allocation prefers PARTIAL slabs, then EMPTY ones, and only then makes a
 * new slab (so empty slabs can be released); within a slab it pops the free
 * stack before building unbuilt objects.  When the limit is reached it looks
 * for any slab with a free built object.
 *
 * EMPTY SLABS.  The free path keeps at most one EMPTY slab per cache (a
 * cushion against alloc/free oscillation at a slab boundary); a further slab
 * that becomes empty is torn down at once, outside the lock.  TYPESAFE caches
 * never tear down in the free path, because their pages may only go back
 * after a grace period: their empty slabs wait for mp_slab_reap, which
 * releases every EMPTY slab (or, with `defer`, unlinks them at once and hands
 * one continuation to the caller that tears them down later).  Teardown needs
 * nothing from the cache (dtor, arg, geometry are copied into the descriptor),
 * so a deferred teardown may run after mp_slab_cache_delete.
 *
 * LOOKUP.  Every page of a slab has its descriptor as page owner word
 * (mp_page_set_owner, a release store, after the descriptor's lookup fields
 * are written; mp_page_owner is the pairing acquire load).  Descriptors are
 * type-stable: they come from a pool that is never returned to the system, so
 * a lookup racing with a teardown (a caller's misuse) reads a valid, perhaps
 * recycled, descriptor and never faults; the lookup fields are relaxed
 * atomics so such a race is not a data race either.  The slot test avoids a
 * division: with M = ceil(2^64 / stride), a 32-bit offset x is a multiple of
 * stride iff x * M mod 2^64 <= M - 1 (Lemire, Kaser & Kurz 2019).
 *
 * LOCKING.  One pthread mutex per cache guards its lists, counters and every
 * non-atomic descriptor field of its linked slabs.  It is never held while
 * running a ctor/dtor or calling the page layer, so no lock is ever nested:
 * the descriptor-pool lock and the page lock are leaves taken with no other
 * lock held.  MAGPOOL_NOWAIT only try-locks the cache and never makes a new
 * slab (that needs metadata memory for the free stack, and a descriptor): it is served
 * from existing slabs or fails with EAGAIN.
 */
#include "slab.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "atomics.h"
#include "cpu.h"
#include "magpool/magpool.h"
#include "meta.h"
#include "page.h"
#include "sanitize.h"

#define SLAB_MAX_OBJS 65535u
#define SMALL_STRIDE 2048u
#define SMALL_MIN_ORDER 2u
#define MIN_OBJS 8u

enum { L_PARTIAL, L_FULL, L_EMPTY, L_COUNT, L_NONE = L_COUNT };

struct mp_slab {
    /* Lookup fields (slab.h): written before the page owner words are
     * published, read lock-free (relaxed) by mp_slab_owner_inline /
     * mp_slab_index.  First member: a page owner word points at it. */
    struct mp_slab_lookup lk;
    _Atomic(struct mp_slab_cache *) lk_cache;
    /* Under the cache lock while linked. */
    struct mp_slab *next, *prev;   /* list links (next also: pool / dead lists) */
    uint16_t *stack;               /* free built objects, nfree entries */
    uint32_t nfree, nbuilt, inuse;
    uint8_t list;                  /* L_* */
    /* Immutable while the slab lives; teardown reads only these. */
    char *mem;                     /* the page block */
    char *base;                    /* mem + colour */
    uint32_t stride, nobjs, colour;
    uint8_t order;
    void (*dtor)(void *, void *);
    void *arg;
};

struct mp_slab_cache {
    pthread_mutex_t lock;
    struct mp_slab *lists[L_COUNT]; /* doubly linked, NULL-terminated */
    uint64_t nslabs[L_COUNT];
    uint64_t constructed;          /* (SC1) */
    uint64_t free_in_slabs;        /* (SC2) */
    uint64_t slab_allocs;
    _Atomic uint32_t colour_seq;   /* slabs made so far (relaxed: only spreads colours) */
    /* Geometry and parameters, immutable after creation. */
    struct mp_slab_params p;
    size_t align, stride;
    uint32_t nobjs, ncolours, colour_step;
    unsigned order;
    uint64_t magic;
    uint32_t inv, rot; /* the run check's (slab.h) */
};

/* ---- descriptor pool (type-stable) -------------------------------------- */

/* A block pool (meta.h), type-stable: a descriptor's memory stays readable
 * for ever, so a lock-free lookup through a stale page owner word never
 * faults; chunks whose descriptors are all free are madvised (they read as
 * zeros, which no lookup accepts).  A free descriptor's link is its `next`,
 * not its lookup fields. */
static struct mp_pool desc_pool = MP_POOL_INIT(sizeof(struct mp_slab), offsetof(struct mp_slab, next));

static struct mp_slab *desc_get(void)
{
    return mp_pool_get(&desc_pool);
}

static void desc_put(struct mp_slab *s)
{
    mp_pool_put(&desc_pool, s);
}

/* ---- geometry ------------------------------------------------------------- */

static int geometry(struct mp_slab_cache *sc)
{
    const struct mp_slab_params *p = &sc->p;
    size_t align = p->align ? p->align : 8;
    if (p->size == 0 || (align & (align - 1)) != 0 || align > MP_PAGE_SIZE)
        return -1;
    if ((p->flags & MAGPOOL_HWCACHE_ALIGN) && p->size >= 64 && align < 64)
        align = 64;
    size_t max = MP_PAGE_SIZE << MP_MAX_ORDER;
    if (p->size > max || p->extra > max)
        return -1;
    size_t stride = (p->size + p->extra + align - 1) & ~(align - 1);
    /* At least 2: the slot test's magic (slab.h) is 2^64 / stride rounded
     * up, which does not fit 64 bits for a stride of 1 (1-byte objects at
     * alignment 1 take 2 bytes each). */
    if (stride < 2)
        stride = 2;
    if (stride > max)
        return -1;
    unsigned k0 = stride <= SMALL_STRIDE ? SMALL_MIN_ORDER : 0;
    int chosen = -1, fit = -1, best = -1;
    size_t best_waste = 0, best_bytes = 1;
    for (unsigned k = k0; k <= MP_MAX_ORDER; k++) {
        size_t bytes = MP_PAGE_SIZE << k, n = bytes / stride;
        if (n > SLAB_MAX_OBJS)
            n = SLAB_MAX_OBJS;
        if (n == 0)
            continue;
        size_t waste = bytes - n * stride;
        if (waste * 8 <= bytes) {
            if (n >= MIN_OBJS) {
                chosen = (int)k;
                break;
            }
            fit = (int)k; /* keep the largest order that fits the waste bound */
        }
        if (best < 0 || waste * best_bytes < best_waste * bytes) {
            best = (int)k;
            best_waste = waste;
            best_bytes = bytes;
        }
    }
    if (chosen < 0)
        chosen = fit >= 0 ? fit : best;
    if (chosen < 0)
        return -1;
    size_t bytes = MP_PAGE_SIZE << chosen, n = bytes / stride;
    if (n > SLAB_MAX_OBJS)
        n = SLAB_MAX_OBJS;
    size_t step = align > 64 ? align : 64;
    sc->align = align;
    sc->stride = stride;
    sc->order = (unsigned)chosen;
    sc->nobjs = (uint32_t)n;
    sc->colour_step = (uint32_t)step;
    sc->ncolours = (uint32_t)((bytes - n * stride) / step + 1);
    sc->magic = UINT64_MAX / stride + 1;
    /* stride = odd << rot; inv = odd^-1 mod 2^32 by Newton's iteration
     * (inv = odd is right to 3 bits, each step doubles them: 6, 12, 24, 48). */
    sc->rot = (uint32_t)__builtin_ctzll(stride);
    uint32_t odd = (uint32_t)(stride >> sc->rot), inv = odd;
    for (int i = 0; i < 4; i++)
        inv *= 2 - odd * inv;
    sc->inv = inv;
    return 0;
}

struct mp_slab_cache *mp_slab_cache_new(const struct mp_slab_params *p)
{
    if (p == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct mp_slab_cache *sc = mp_meta_alloc(sizeof *sc);
    if (sc == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    sc->p = *p;
    if (geometry(sc) != 0) {
        mp_meta_free(sc, sizeof *sc);
        errno = EINVAL;
        return NULL;
    }
    if (pthread_mutex_init(&sc->lock, NULL) != 0) {
        mp_meta_free(sc, sizeof *sc);
        errno = ENOMEM;
        return NULL;
    }
    return sc;
}

size_t mp_slab_stride(const struct mp_slab_cache *sc) { return sc->stride; }
size_t mp_slab_align(const struct mp_slab_cache *sc) { return sc->align; }

/* ---- slab lists (under sc->lock) ------------------------------------------ */

static void list_del(struct mp_slab_cache *sc, struct mp_slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        sc->lists[s->list] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    sc->nslabs[s->list]--;
    s->list = L_NONE;
}

static void list_add(struct mp_slab_cache *sc, struct mp_slab *s, uint8_t l)
{
    s->list = l;
    s->prev = NULL;
    s->next = sc->lists[l];
    if (s->next)
        s->next->prev = s;
    sc->lists[l] = s;
    sc->nslabs[l]++;
}

/* Move s to the list its counts call for (SL3). */
static void relink(struct mp_slab_cache *sc, struct mp_slab *s)
{
    uint8_t l = s->inuse == 0 ? L_EMPTY : s->inuse == s->nobjs ? L_FULL : L_PARTIAL;
    if (l != s->list) {
        list_del(sc, s);
        list_add(sc, s, l);
    }
}

/* Unlink s for teardown and take its objects out of the cache counts. */
static void detach(struct mp_slab_cache *sc, struct mp_slab *s)
{
    list_del(sc, s);
    sc->constructed -= s->nbuilt;
    sc->free_in_slabs -= s->nfree;
}

/* ---- making and tearing down slabs (no lock held) ------------------------- */

static __attribute__((noinline)) struct mp_slab *slab_create(struct mp_slab_cache *sc)
{
    char *mem = mp_pages_alloc(sc->order, 0);
    if (mem == NULL)
        return NULL;
    uint16_t *stack = mp_meta_alloc(sizeof *stack * sc->nobjs);
    struct mp_slab *s = stack ? desc_get() : NULL;
    if (s == NULL) {
        mp_meta_free(stack, sizeof *stack * sc->nobjs);
        mp_pages_free(mem, sc->order);
        errno = ENOMEM;
        return NULL;
    }
    size_t bytes = MP_PAGE_SIZE << sc->order;
    /* ASan: nothing in a slab is usable until mp_slab_alloc hands it out
     * (unbuilt objects, colour and tail waste stay poisoned). */
    mp_asan_poison(mem, bytes);
    uint32_t seq = mp_fetch_add_relaxed(&sc->colour_seq, 1);
    s->next = s->prev = NULL;
    s->stack = stack;
    s->nfree = s->nbuilt = s->inuse = 0;
    s->list = L_NONE;
    s->mem = mem;
    s->colour = (seq % sc->ncolours) * sc->colour_step;
    s->base = mem + s->colour;
    s->stride = (uint32_t)sc->stride;
    s->nobjs = sc->nobjs;
    s->order = (uint8_t)sc->order;
    s->dtor = sc->p.dtor;
    s->arg = sc->p.arg;
    mp_store_relaxed(&s->lk.lk_base, (uintptr_t)s->base);
    mp_store_relaxed(&s->lk.lk_span, s->nobjs * s->stride);
    mp_store_relaxed(&s->lk.lk_stride, s->stride);
    mp_store_relaxed(&s->lk.lk_magic, sc->magic);
    mp_store_relaxed(&s->lk.lk_inv, sc->inv);
    mp_store_relaxed(&s->lk.lk_rot, (uint16_t)sc->rot);
    _Static_assert(SLAB_MAX_OBJS <= UINT16_MAX, "lk_nobjs holds n");
    mp_store_relaxed(&s->lk.lk_nobjs, (uint16_t)s->nobjs);
    mp_store_relaxed(&s->lk.lk_owner, sc->p.owner);
    mp_store_relaxed(&s->lk_cache, sc);
    /* Publishes the fields above (release store per page, see page.c). */
    mp_page_set_owner(mem, (size_t)1 << sc->order, s);
    return s;
}

/* Destroy s: dtor on each built object, pages back, descriptor to the pool. */
static size_t slab_teardown(struct mp_slab *s)
{
    size_t pages = (size_t)1 << s->order;
    mp_asan_unpoison(s->mem, pages * MP_PAGE_SIZE);
    if (s->dtor)
        for (uint32_t i = 0; i < s->nbuilt; i++)
            s->dtor(s->base + (size_t)i * s->stride, s->arg);
    mp_meta_free(s->stack, sizeof *s->stack * s->nobjs);
    s->stack = NULL;
    mp_pages_free(s->mem, s->order); /* clears the owner words first */
    desc_put(s);
    return pages;
}

/* Tear down a list of detached slabs linked by next (a defer continuation). */
static void slab_teardown_list(void *arg)
{
    struct mp_slab *s = arg;
    while (s) {
        struct mp_slab *next = s->next;
        slab_teardown(s);
        s = next;
    }
}

/* ---- allocation ----------------------------------------------------------- */

static inline bool can_build(const struct mp_slab_cache *sc)
{
    return sc->p.max_objects == 0 || sc->constructed < sc->p.max_objects;
}

/* A slab that can give at least one object now, or NULL.  Under sc->lock. */
static struct mp_slab *pick(struct mp_slab_cache *sc)
{
    if (can_build(sc))
        return sc->lists[L_PARTIAL] ? sc->lists[L_PARTIAL] : sc->lists[L_EMPTY];
    if (sc->free_in_slabs == 0)
        return NULL;
    for (int l = L_PARTIAL; l <= L_EMPTY; l += L_EMPTY - L_PARTIAL)
        for (struct mp_slab *s = sc->lists[l]; s; s = s->next)
            if (s->nfree)
                return s;
    return NULL;
}

size_t mp_slab_alloc(struct mp_slab_cache *sc, void **out, size_t n, unsigned aflags)
{
    if (n == 0)
        return 0;
    if (aflags & MAGPOOL_NOWAIT) {
        if (pthread_mutex_trylock(&sc->lock) != 0) {
            errno = EAGAIN;
            return 0;
        }
    } else {
        pthread_mutex_lock(&sc->lock);
    }
    /* Popped (constructed) objects fill out[] from the front, newly built
     * ones (ctor still to run) from the back. */
    size_t front = 0, back = n;
    int err = 0;
    while (front < back) {
        struct mp_slab *s = pick(sc);
        if (s == NULL) {
            if (!can_build(sc)) {
                err = ENOMEM;
                break;
            }
            if (aflags & MAGPOOL_NOWAIT) {
                err = EAGAIN;
                break;
            }
            pthread_mutex_unlock(&sc->lock);
            s = slab_create(sc);
            err = errno;
            pthread_mutex_lock(&sc->lock);
            if (s == NULL)
                break;
            err = 0;
            list_add(sc, s, L_EMPTY);
            continue;
        }
        while (front < back && s->nfree) {
            out[front++] = s->base + (size_t)s->stack[--s->nfree] * s->stride;
            s->inuse++;
            sc->free_in_slabs--;
        }
        while (front < back && s->nbuilt < s->nobjs && can_build(sc)) {
            out[--back] = s->base + (size_t)s->nbuilt * s->stride;
            s->nbuilt++;
            s->inuse++;
            sc->constructed++;
        }
        relink(sc, s);
    }
    size_t nnew = n - back;
    sc->slab_allocs += front + nnew;
    pthread_mutex_unlock(&sc->lock);
    if (mp_san_on(MP_SAN_ASAN)) /* handed out: usable (ctor included) */
        for (size_t i = 0; i < front; i++)
            mp_asan_unpoison(out[i], sc->p.size + sc->p.extra);
    if (nnew) {
        memmove(&out[front], &out[back], nnew * sizeof *out);
        if (mp_san_on(MP_SAN_ASAN))
            for (size_t i = front; i < front + nnew; i++)
                mp_asan_unpoison(out[i], sc->p.size + sc->p.extra);
        if (sc->p.ctor)
            for (size_t i = front; i < front + nnew; i++)
                sc->p.ctor(out[i], sc->p.arg);
    }
    if (front + nnew == 0)
        errno = err ? err : ENOMEM;
    return front + nnew;
}

/* ---- free ----------------------------------------------------------------- */

static __attribute__((noinline, cold)) void bad_free(const void *p, const char *kind)
{
    fprintf(stderr, "magpool: slab: %s at %p\n", kind, p);
}

void mp_slab_free(struct mp_slab_cache *sc, void *const *objs, size_t n)
{
    struct mp_slab *dead = NULL;
    bool keep_empties = (sc->p.flags & MAGPOOL_TYPESAFE) != 0;
    pthread_mutex_lock(&sc->lock);
    for (size_t i = 0; i < n; i++) {
        char *p = objs[i];
        struct mp_slab *s = mp_page_owner(p);
        if (s == NULL || mp_load_relaxed(&s->lk_cache) != sc ||
            s->list == L_NONE) {
            bad_free(p, "free of foreign object");
            continue;
        }
        size_t off = (size_t)(p - s->base);
        if (p < s->base || off % s->stride != 0 || off / s->stride >= s->nbuilt) {
            bad_free(p, "free of misaligned object");
            continue;
        }
        if (s->inuse == 0) {
            bad_free(p, "double free");
            continue;
        }
        s->stack[s->nfree++] = (uint16_t)(off / s->stride);
        s->inuse--;
        sc->free_in_slabs++;
        relink(sc, s);
        if (s->inuse == 0 && !keep_empties && sc->nslabs[L_EMPTY] > 1) {
            detach(sc, s);
            s->next = dead;
            dead = s;
        }
    }
    pthread_mutex_unlock(&sc->lock);
    slab_teardown_list(dead);
}

/* ---- reap and delete ------------------------------------------------------ */

size_t mp_slab_reap(struct mp_slab_cache *sc,
                    void (*defer)(void (*fn)(void *), void *arg, void *ctx), void *ctx)
{
    struct mp_slab *dead = NULL;
    size_t pages = 0;
    pthread_mutex_lock(&sc->lock);
    while (sc->lists[L_EMPTY]) {
        struct mp_slab *s = sc->lists[L_EMPTY];
        detach(sc, s);
        s->next = dead;
        dead = s;
        pages += (size_t)1 << s->order;
    }
    pthread_mutex_unlock(&sc->lock);
    if (dead == NULL)
        return 0;
    if (defer)
        defer(slab_teardown_list, dead, ctx);
    else
        slab_teardown_list(dead);
    return pages;
}

void mp_slab_cache_delete(struct mp_slab_cache *sc)
{
    if (sc == NULL)
        return;
    struct mp_slab *dead = NULL;
    pthread_mutex_lock(&sc->lock);
    for (int l = 0; l < L_COUNT; l++)
        while (sc->lists[l]) {
            struct mp_slab *s = sc->lists[l];
            detach(sc, s);
            s->next = dead;
            dead = s;
        }
    pthread_mutex_unlock(&sc->lock);
    slab_teardown_list(dead);
    pthread_mutex_destroy(&sc->lock);
    mp_meta_free(sc, sizeof *sc);
}

/* ---- lookup ----------------------------------------------------------------- */

void *mp_slab_owner(const void *p, int *why)
{
    const struct mp_slab_lookup *s = mp_page_owner_inline(p); /* acquire: see the design comment */
    void *owner = s != NULL ? mp_slab_lookup_owner(s, p) : NULL;
    if (why != NULL)
        *why = owner != NULL ? MP_OBJ_OK
               : s == NULL || mp_load_relaxed(&s->lk_span) == 0
                   ? MP_OBJ_FOREIGN /* no slab (or a page user that is not one) */
                   : MP_OBJ_MISALIGNED;
    return owner;
}

/* One slab's slot tests, their fields in registers, for the run check (the
 * 256-bit step broadcasts its own from lk). */
struct run_slab {
    const struct mp_slab_lookup *lk;
    uintptr_t base, span;
    uint64_t magic;
};

/* Relaxed: s came from mp_page_owner_inline, whose acquire load of the page
 * owner word pairs with the release that published these fields (slab.h);
 * they cannot change while the caller owns an object of the slab. */
static inline __attribute__((always_inline)) struct run_slab run_slab_of(const struct mp_slab_lookup *s)
{
    return (struct run_slab){ s, mp_load_relaxed(&s->lk_base), mp_load_relaxed(&s->lk_span),
                              mp_load_relaxed(&s->lk_magic) };
}

/* A group step: how far from p[i], in whole groups of four, every object is
 * a slot of rs (i itself if the group at i is not). */
typedef size_t run_groups_fn(void *const *p, size_t i, size_t n, const struct run_slab *rs);

/* The baseline step: four slot tests combined with & (every branch falling
 * through). */
static inline __attribute__((always_inline)) size_t run_groups_base(void *const *p, size_t i, size_t n,
                                                                    const struct run_slab *rs)
{
    for (; i + 4 <= n; i += 4) {
        unsigned in = mp_slab_slot_at((uintptr_t)p[i] - rs->base, rs->span, rs->magic) &
                      mp_slab_slot_at((uintptr_t)p[i + 1] - rs->base, rs->span, rs->magic) &
                      mp_slab_slot_at((uintptr_t)p[i + 2] - rs->base, rs->span, rs->magic) &
                      mp_slab_slot_at((uintptr_t)p[i + 3] - rs->base, rs->span, rs->magic);
        if (__builtin_expect(!in, 0))
            break;
    }
    return i;
}

/* mp_slab_run_owned_by with the group step `groups` (inlined into each
 * kernel below).  The kept slab starts as the first non-NULL object's. */
static inline __attribute__((always_inline)) bool run_owned_by(void *const *p, size_t n, const void *owner,
                                                               run_groups_fn *groups)
{
    struct run_slab rs = run_slab_of(&mp_large_tag); /* matches no address */
    size_t i = 0;
    for (;;) {
        /* p[i] alone (the first, the one a group failed at, or the tail). */
        if (i == n)
            return true;
        void *q = p[i++];
        if (!mp_slab_slot_at((uintptr_t)q - rs.base, rs.span, rs.magic) && q != NULL) {
            const struct mp_slab_lookup *s = mp_page_owner_inline(q);
            if (s == NULL || !mp_slab_lookup_slot(s, q) || mp_load_relaxed(&s->lk_owner) != owner)
                return false;
            rs = run_slab_of(s);
        }
        i = groups(p, i, n, &rs);
        /* A tail shorter than a group: the last four again, overlapping
         * (testing an object twice changes nothing). */
        if (i + 4 > n && i < n && n >= 4 && groups(p, n - 4, n, &rs) == n)
            return true;
    }
}

static bool run_owned_by_base(void *const *p, size_t n, const void *owner)
{
    return run_owned_by(p, n, owner, run_groups_base);
}

#ifdef MP_HAVE_AVX2
/* run_groups_base in one 256-bit step per group: slab.h's mp_slab_slots4
 * (the kept slab's fields broadcast once per call of the step). */
static inline __attribute__((target("avx2"), always_inline)) size_t run_groups_avx2(void *const *p, size_t i,
                                                                                   size_t n,
                                                                                   const struct run_slab *rs)
{
    const struct mp_slab_wide w = mp_slab_wide_of(rs->lk);
    for (; i + 4 <= n; i += 4) {
        __m256i in = mp_slab_slots4(_mm256_loadu_si256((const __m256i *)(const void *)(p + i)), &w);
        if (__builtin_expect(_mm256_movemask_pd(_mm256_castsi256_pd(in)) != 0xF, 0))
            break;
    }
    return i;
}

static __attribute__((target("avx2"), noinline)) bool run_owned_by_avx2(void *const *p, size_t n, const void *owner)
{
    return run_owned_by(p, n, owner, run_groups_avx2);
}

static __attribute__((target("avx2"), noinline)) size_t run_groups_wide(void *const *p, size_t n,
                                                                       const struct run_slab *rs)
{
    return run_groups_avx2(p, 0, n, rs);
}
#endif

bool mp_slab_run_owned_by(void *const *p, size_t n, const void *owner)
{
#ifdef MP_HAVE_AVX2
    if (mp_bulk_wide)
        return run_owned_by_avx2(p, n, owner);
#endif
    return run_owned_by_base(p, n, owner);
}

/* The group step alone (slab.h). */
size_t mp_slab_run_groups(void *const *p, size_t n, const struct mp_slab_lookup *s)
{
    struct run_slab rs = run_slab_of(s);
#ifdef MP_HAVE_AVX2
    if (mp_bulk_wide)
        return run_groups_wide(p, n, &rs);
#endif
    return run_groups_base(p, 0, n, &rs);
}

size_t mp_slab_index(const void *p, size_t *nobjs)
{
    struct mp_slab *s = mp_page_owner(p);
    if (s == NULL)
        return SIZE_MAX;
    uintptr_t off = (uintptr_t)p - mp_load_relaxed(&s->lk.lk_base);
    uint32_t stride = mp_load_relaxed(&s->lk.lk_stride);
    uint32_t span = mp_load_relaxed(&s->lk.lk_span);
    if (stride == 0 || off >= span)
        return SIZE_MAX;
    if (nobjs)
        *nobjs = span / stride;
    return off / stride;
}

void *mp_slab_locate(const void *p, void **obj)
{
    struct mp_slab *s = mp_page_owner(p);
    if (s == NULL)
        return NULL;
    uintptr_t base = mp_load_relaxed(&s->lk.lk_base);
    uintptr_t off = (uintptr_t)p - base;
    uint32_t stride = mp_load_relaxed(&s->lk.lk_stride);
    uint32_t span = mp_load_relaxed(&s->lk.lk_span);
    if (stride == 0 || off >= span)
        return NULL;
    *obj = (void *)(base + off / stride * stride);
    return mp_load_relaxed(&s->lk.lk_owner);
}

/* ---- large blocks (slab.h) ------------------------------------------------- */

struct mp_slab_lookup mp_large_tag; /* lk_span and lk_nobjs 0: matches no address */

void *mp_large_alloc(size_t npages, unsigned aflags)
{
    void *p = mp_span_alloc(npages, aflags & MAGPOOL_NOWAIT);
    if (p != NULL)
        mp_page_set_owner(p, npages, &mp_large_tag);
    return p;
}

size_t mp_large_pages(const void *p)
{
    return mp_large_owns(p) ? mp_span_pages(p) : 0;
}

void mp_large_free(void *p)
{
    mp_page_set_owner(p, mp_span_pages(p), NULL);
    mp_span_free(p);
}

bool mp_large_was_freed(const void *p)
{
    return mp_page_unowned(p);
}

uint64_t mp_large_limit(void)
{
    struct mp_page_stats ps;
    mp_page_stats(&ps);
    return ps.arena_bytes;
}

/* ---- statistics and self-check -------------------------------------------- */

void mp_slab_stats(struct mp_slab_cache *sc, struct mp_slab_stats *st)
{
    pthread_mutex_lock(&sc->lock);
    st->constructed = sc->constructed;
    st->free_in_slabs = sc->free_in_slabs;
    st->slabs_partial = sc->nslabs[L_PARTIAL];
    st->slabs_full = sc->nslabs[L_FULL];
    st->slabs_empty = sc->nslabs[L_EMPTY];
    st->slabs = st->slabs_partial + st->slabs_full + st->slabs_empty;
    st->pages = st->slabs << sc->order;
    st->slab_allocs = sc->slab_allocs;
    pthread_mutex_unlock(&sc->lock);
    st->objs_per_slab = sc->nobjs;
    st->slab_order = sc->order;
}

int mp_slab_validate(struct mp_slab_cache *sc)
{
    int bad = 0;
    uint64_t built = 0, nfree = 0;
    uint8_t *seen = mp_meta_alloc_critical(SLAB_MAX_OBJS + 1); /* a checker: not fault-injected */
    if (seen == NULL)
        return -1;
    pthread_mutex_lock(&sc->lock);
    for (int l = 0; l < L_COUNT; l++) {
        uint64_t count = 0;
        for (struct mp_slab *s = sc->lists[l]; s; s = s->next, count++) {
            bad |= s->list != l || s->nbuilt > s->nobjs;                   /* (SL1) */
            bad |= s->nfree + s->inuse != s->nbuilt;
            uint8_t want = s->inuse == 0 ? L_EMPTY : s->inuse == s->nobjs ? L_FULL : L_PARTIAL;
            bad |= want != l;                                               /* (SL3) */
            bad |= mp_page_owner(s->mem) != s ||
                   mp_page_owner(s->mem + (MP_PAGE_SIZE << s->order) - 1) != s;
            const struct mp_slab_lookup *lk = &s->lk;                       /* (SL4) */
            bad |= mp_load_relaxed(&lk->lk_base) != (uintptr_t)s->base ||
                   mp_load_relaxed(&lk->lk_span) != s->nobjs * s->stride ||
                   mp_load_relaxed(&lk->lk_magic) != sc->magic || mp_load_relaxed(&lk->lk_nobjs) != s->nobjs ||
                   (uint32_t)(mp_load_relaxed(&lk->lk_inv) * (s->stride >> mp_load_relaxed(&lk->lk_rot))) != 1 ||
                   (s->stride >> mp_load_relaxed(&lk->lk_rot) & 1) == 0;
            memset(seen, 0, s->nobjs);
            for (uint32_t i = 0; i < s->nfree && !bad; i++) {              /* (SL2) */
                uint16_t x = s->stack[i];
                bad |= x >= s->nbuilt || seen[x];
                if (x < s->nobjs)
                    seen[x] = 1;
            }
            built += s->nbuilt;
            nfree += s->nfree;
        }
        bad |= count != sc->nslabs[l];
    }
    bad |= built != sc->constructed || nfree != sc->free_in_slabs;         /* (SC1), (SC2) */
    bad |= sc->p.max_objects && sc->constructed > sc->p.max_objects;       /* (SC3) */
    pthread_mutex_unlock(&sc->lock);
    mp_meta_free(seen, SLAB_MAX_OBJS + 1);
    return bad ? -1 : 0;
}

/* ---- fork (fork.c) ---------------------------------------------------------- */

void mp_slab_fork_lock(struct mp_slab_cache *sc)
{
    pthread_mutex_lock(&sc->lock);
}

void mp_slab_fork_unlock(struct mp_slab_cache *sc)
{
    pthread_mutex_unlock(&sc->lock);
}

void mp_slab_pool_trim(void)
{
    mp_pool_trim(&desc_pool);
}

void mp_slab_pool_fork_lock(void)
{
    mp_pool_fork_lock(&desc_pool);
}

void mp_slab_pool_fork_unlock(void)
{
    mp_pool_fork_unlock(&desc_pool);
}
