/*
 * Slab layer (owner: src/storage/slab.c).  CONTRACT — see slab.c for the design.
 *
 * One struct mp_slab_cache per magpool cache.  Carves page blocks from the
 * page layer into objects honouring size, alignment, and cache colouring;
 * slab descriptors live off-slab, so object memory carries 0 bytes of
 * overhead, and every page of a slab has the descriptor as its owner word.
 * The constructor runs once when an object is first built (lazily, as it is
 * first taken from its slab); the destructor only when its slab is torn down.
 * Objects returned with mp_slab_free are in constructed state.
 * Partial/full/empty bookkeeping is under a per-cache pthread mutex (this is
 * the slow path); MAGPOOL_NOWAIT callers only try-lock and never ask the page
 * layer for new pages.
 */
#ifndef MP_SLAB_H
#define MP_SLAB_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "atomics.h"
#include "cpu.h"
#include "page.h"

struct mp_slab_cache;

struct mp_slab_params {
    size_t size;          /* object size asked for (>= 1) */
    size_t align;         /* power of two, already resolved by the caller */
    size_t extra;         /* debug bytes placed after each object (red zone, owner record) */
    unsigned flags;       /* MAGPOOL_* cache flags (HWCACHE_ALIGN honoured here) */
    void (*ctor)(void *, void *);
    void (*dtor)(void *, void *);
    void *arg;
    void *owner;          /* the magpool_cache_t *, returned by mp_slab_owner */
    size_t max_objects;   /* 0 = no limit on constructed objects */
};

/* NULL + errno (EINVAL: impossible geometry, ENOMEM). */
struct mp_slab_cache *mp_slab_cache_new(const struct mp_slab_params *p);
/* Tears down every slab (dtor on each built object) and frees everything.
 * The caller guarantees every object is back in its slab. */
void mp_slab_cache_delete(struct mp_slab_cache *sc);

size_t mp_slab_stride(const struct mp_slab_cache *sc); /* bytes between objects */
size_t mp_slab_align(const struct mp_slab_cache *sc);

/* Up to n constructed objects into out; returns how many (0 + errno ENOMEM,
 * EAGAIN for NOWAIT, or ENOMEM when max_objects is reached). */
size_t mp_slab_alloc(struct mp_slab_cache *sc, void **out, size_t n, unsigned aflags);
/* Give n objects (constructed) back to their slabs. */
void mp_slab_free(struct mp_slab_cache *sc, void *const *objs, size_t n);

/* Tear down empty slabs: dtor on their built objects, pages back to the
 * system.  Returns pages released.  If defer is non-NULL the empty slabs are
 * unlinked now and defer(fn, arg, ctx) is called once with a continuation
 * that releases them later (used for MAGPOOL_TYPESAFE: after a grace period). */
size_t mp_slab_reap(struct mp_slab_cache *sc,
                    void (*defer)(void (*fn)(void *), void *arg, void *ctx), void *ctx);

/* Lookup from an address alone.  Returns the owner (params.owner) when p is
 * the start of an object slot in a live slab, else NULL with *why set to
 * MP_OBJ_FOREIGN (no slab holds p) or MP_OBJ_MISALIGNED (inside a slab, not
 * at an object start).  Never faults. */
enum {
    MP_OBJ_OK = 0,
    MP_OBJ_FOREIGN = 1,     /* no slab holds p */
    MP_OBJ_MISALIGNED = 2,  /* inside a slab, not at an object's start */
    MP_OBJ_WRONG_CACHE = 3, /* an object of another cache (mp_obj_check, cache layer) */
};
void *mp_slab_owner(const void *p, int *why);

/* The lookup part of a slab descriptor, so the validating frees of
 * the front ends can run mp_slab_owner inline.  RULE: every non-NULL page
 * owner word (mp_page_set_owner) points at a struct mp_slab_lookup; a page
 * user that is not a slab (kmalloc's large spans) points at one with
 * lk_span == lk_nobjs == 0, which no address matches.  The fields are
 * written (relaxed) before the owner words are published with release, and
 * read (relaxed) after the acquire load of the owner word
 * (mp_page_owner_inline). */
struct mp_slab_lookup {
    _Atomic uintptr_t lk_base;     /* address of object 0 */
    _Atomic uint32_t lk_span;      /* n * stride (0: matches nothing) */
    _Atomic uint32_t lk_stride;
    _Atomic uint64_t lk_magic;     /* ceil(2^64 / stride): off % stride == 0 <=> off * magic < magic */
    _Atomic(void *) lk_owner;      /* params.owner */
    /* The same test for slab.c's 256-bit run check, in 32-bit lanes: with
     * stride = odd << rot and inv = odd^-1 mod 2^32, ror32(off * inv, rot) is
     * off / stride when stride divides off < 2^32, and above
     * (2^32 - 1) / stride >= n when it does not (Granlund & Montgomery 1994,
     * section 9): one compare with n tests alignment and bounds. */
    _Atomic uint32_t lk_inv;
    _Atomic uint16_t lk_rot;
    _Atomic uint16_t lk_nobjs;     /* n (0: matches nothing) */
};

/* Whether off (an address minus a slab's lk_base) is the start of one of
 * its object slots, given its lk_span and lk_magic: the slot test every
 * lookup below uses.  One multiply, no division, no call, and the bounds
 * compare independent of the multiply (the hit does not wait for it); 1 or
 * 0, so that several can be combined with & (mp_slab_run_owned_by). */
static inline __attribute__((always_inline)) unsigned mp_slab_slot_at(uintptr_t off, uintptr_t span,
                                                                      uint64_t magic)
{
    return (unsigned)(off < span) & (unsigned)((uint64_t)off * magic < magic); /* 1: a slot */
}

/* Whether p is the start of an object slot of the slab s describes. */
static inline __attribute__((always_inline)) bool mp_slab_lookup_slot(const struct mp_slab_lookup *s,
                                                                      const void *p)
{
    return mp_slab_slot_at((uintptr_t)p - mp_load_relaxed(&s->lk_base), mp_load_relaxed(&s->lk_span),
                           mp_load_relaxed(&s->lk_magic));
}

/* The owner if p is the start of an object slot of the slab s describes,
 * else NULL. */
static inline __attribute__((always_inline)) void *mp_slab_lookup_owner(const struct mp_slab_lookup *s,
                                                                        const void *p)
{
    return mp_slab_lookup_slot(s, p) ? mp_load_relaxed(&s->lk_owner) : NULL;
}

/* mp_slab_owner without the reason: the owner, or NULL for a foreign or
 * misaligned p (call mp_slab_owner to tell which).  Never faults. */
static inline __attribute__((always_inline)) void *mp_slab_owner_inline(const void *p)
{
    const struct mp_slab_lookup *s = mp_page_owner_inline(p);
    return s != NULL ? mp_slab_lookup_owner(s, p) : NULL;
}
/* mp_slab_owner_inline(p) == owner for a non-NULL owner, written so that
 * each failed test branches out on its own (no NULL result merged and
 * compared again): the validating frees' inline check. */
static inline __attribute__((always_inline)) bool mp_slab_owned_by(const void *p, const void *owner)
{
    const struct mp_slab_lookup *s = mp_page_owner_inline(p);
    return s != NULL && mp_slab_lookup_slot(s, p) && mp_load_relaxed(&s->lk_owner) == owner;
}
#ifdef MP_HAVE_AVX2
#include <immintrin.h>
/* The 32-bit slot test (lk_inv above) four objects at a time, for the
 * 256-bit kernels (slab.c's run check, magazine.c's validating bulk free):
 * one slab's fields broadcast once per run. */
struct mp_slab_wide {
    __m256i base; /* lk_base + 2^63 (off arrives sign-biased: no separate xor) */
    __m256i inv;
    __m256i limit; /* lk_nobjs, sign-biased */
    __m128i right, left; /* lk_rot, 32 - lk_rot */
    __m256i rot;         /* lk_rot in every 32-bit lane (the AVX-512 rotate's count) */
};

/* Relaxed loads: s came from mp_page_owner_inline, whose acquire load of
 * the page's owner word pairs with the release that published these fields;
 * they cannot change while the caller owns an object of the slab. */
static inline __attribute__((target("avx2"), always_inline)) struct mp_slab_wide
mp_slab_wide_of(const struct mp_slab_lookup *s)
{
    uint32_t rot = mp_load_relaxed(&s->lk_rot);
    return (struct mp_slab_wide){
        _mm256_set1_epi64x((long long)(mp_load_relaxed(&s->lk_base) + (1ULL << 63))),
        _mm256_set1_epi64x((long long)mp_load_relaxed(&s->lk_inv)),
        _mm256_set1_epi64x((long long)(mp_load_relaxed(&s->lk_nobjs) ^ (1ULL << 63))),
        _mm_cvtsi32_si128((int)rot), _mm_cvtsi32_si128(32 - (int)rot), _mm256_set1_epi32((int)rot) };
}

/* All-ones in each 64-bit lane of p that is the start of an object slot of
 * the slab w describes, zero in the others: mp_slab_slot_at's answer for
 * every 64-bit address.  off = p - base, sign-biased by the subtraction;
 * vpmuludq multiplies its low half by inv, and the product's low half
 * rotated right by rot within its 32-bit lane is off / stride when stride
 * divides off < 2^32, and at least n otherwise (a slab's span fits 32
 * bits).  Blended under off's (biased) high half and compared with n as a
 * signed 64-bit, it is below n exactly when off < 2^32 and off is a slot.
 * Seven instructions; NULL is never a slot (its off has a high half). */
static inline __attribute__((target("avx2"), always_inline)) __m256i mp_slab_slots4(__m256i p,
                                                                                   const struct mp_slab_wide *w)
{
    __m256i off = _mm256_sub_epi64(p, w->base);
    __m256i q = _mm256_mul_epu32(off, w->inv);
    /* (a shift by 32 gives 0 in vpslld: rot 0 is off * inv itself) */
    q = _mm256_or_si256(_mm256_srl_epi32(q, w->right), _mm256_sll_epi32(q, w->left));
    q = _mm256_blend_epi32(q, off, 0xAA); /* odd 32-bit lanes: off's high halves */
    return _mm256_cmpgt_epi64(w->limit, q);
}

#ifdef MP_HAVE_AVX512
/* mp_slab_slots4 as a mask (bit i: lane i is a slot), with AVX-512F/VL's
 * rotate and compare-into-mask: five instructions. */
static inline __attribute__((target("avx2,avx512f,avx512vl"), always_inline)) __mmask8
mp_slab_slots4_mask(__m256i p, const struct mp_slab_wide *w)
{
    __m256i off = _mm256_sub_epi64(p, w->base);
    __m256i q = _mm256_rorv_epi32(_mm256_mul_epu32(off, w->inv), w->rot);
    return _mm256_cmpgt_epi64_mask(w->limit, _mm256_blend_epi32(q, off, 0xAA));
}
#endif
#endif

/* Whether every non-NULL p[i] passes mp_slab_owned_by(p[i], owner): the
 * validating bulk frees' check (slab.c).  A run's objects mostly share a
 * few slabs, so the last matching slab's bounds are kept and objects are
 * tested against them four at a time (one 256-bit step with AVX2,
 * mp_bulk_wide; else four slot tests combined with &, 7 instructions an
 * object); only a group with an
 * object outside them goes object by object, and only such an object goes
 * to the page map.  (The kept bounds are those of a slab holding an object
 * the caller still owns, so it cannot be torn down meanwhile: exactly as
 * valid as a fresh lookup.) */
bool mp_slab_run_owned_by(void *const *p, size_t n, const void *owner);
/* The run check's group step alone, against the slab s describes: how
 * many leading objects of p[0..n), in whole groups of four, are all slots
 * of it (the 256-bit step when mp_bulk_wide).  s must describe a slab the
 * caller holds an object of (the magazine check, magazine.c; tests). */
size_t mp_slab_run_groups(void *const *p, size_t n, const struct mp_slab_lookup *s);
/* Index of p in its slab and the slab's object count, for debug metadata.
 * (slab.c.)  p must be inside a live slab's object area, else
 * SIZE_MAX.  O(1), lock-free, never faults.  nobjs may be NULL. */
size_t mp_slab_index(const void *p, size_t *nobjs);

/* The owner of the object slot p points into (interior pointers too), with
 * the slot's start in *obj; NULL if no live slab's object area holds p.
 * O(1), lock-free, never faults (for diagnostics: ASan's report). */
void *mp_slab_locate(const void *p, void **obj);

/* fork.c: hold / release a slab cache's lock, and the descriptor pool's
 * (a leaf), around fork. */
void mp_slab_fork_lock(struct mp_slab_cache *sc);
void mp_slab_fork_unlock(struct mp_slab_cache *sc);
/* Give back the descriptor pool's kept empty chunk (mp_pool_trim). */
void mp_slab_pool_trim(void);
void mp_slab_pool_fork_lock(void);
void mp_slab_pool_fork_unlock(void);

/* Large blocks (kmalloc beyond its size classes): page spans whose page
 * owner is a lookup record matching no address, so every object lookup
 * (mp_slab_owner*, mp_obj_check) calls a large block foreign.
 *  mp_large_alloc   npages >= 1 pages, page aligned; NULL + ENOMEM, EAGAIN
 *                   (MAGPOOL_NOWAIT), EINVAL (more pages than a span can
 *                   describe: no retry can help)
 *  mp_large_owns    p lies in a live large block (inline: one page-map load)
 *  mp_large_pages   the block's pages if p is its start, else 0
 *  mp_large_free    p is the start of a live large block
 *  mp_large_was_freed  p is a page start in the arena that no block or slab
 *                   owns any more (a large block's second free)
 *  mp_large_limit   the most bytes a large block can ever have (the arena) */
void *mp_large_alloc(size_t npages, unsigned aflags);
extern struct mp_slab_lookup mp_large_tag;
static inline __attribute__((always_inline)) bool mp_large_owns(const void *p)
{
    return mp_page_owner_inline(p) == (const void *)&mp_large_tag;
}
size_t mp_large_pages(const void *p);
void mp_large_free(void *p);
bool mp_large_was_freed(const void *p);
uint64_t mp_large_limit(void);

struct mp_slab_stats {
    uint64_t constructed;  /* built and not yet destroyed */
    uint64_t free_in_slabs;
    uint64_t slabs, slabs_partial, slabs_full, slabs_empty;
    uint64_t pages;
    uint64_t objs_per_slab;
    uint64_t slab_order;
    uint64_t slab_allocs;  /* objects handed out by mp_slab_alloc */
};
void mp_slab_stats(struct mp_slab_cache *sc, struct mp_slab_stats *st);

/* Check the invariants (SL1)-(SL3), (SC1)-(SC3) of slab.c under the
 * cache lock; 0 when they hold, -1 if not. */
int mp_slab_validate(struct mp_slab_cache *sc);
#endif
