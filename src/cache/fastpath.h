/*
 * The magazine fast paths, inline (design: top of src/core/cache.c; slow paths in
 * src/cache/magazine.c).  The hit itself is magpool.h's magpool_hit_pop_ /
 * magpool_hit_push_, the one definition that the application's inline
 * magpool_alloc / magpool_free expand too; this header wraps it for the
 * core API in magazine.c and for the front ends, so kmem_cache_alloc or
 * mem_get cost the same pop as magpool_alloc and nothing is written twice.
 * No hit has a sanitizer hook: a cache created while a sanitizer runtime is
 * in the process is a checked cache (sanitize.h), whose fast id 0 makes
 * every hit miss.  tests/test_inline.c mixes inline and library calls on
 * one cache.
 *
 * A hit touches only the calling thread's tcache line for the cache: no lock,
 * no atomic read-modify-write, no fence, no "initialised?" branch (a debug
 * cache and a destroyed cache index the all-zero tcache[0], and a thread
 * with no state the shared array of thread.c, and miss).  Its relaxed
 * atomics compile to plain moves; they are atomic because statistics readers and the idle-thread reclaim (idle.c)
 * read them from other threads.  The bulk hits below bracket their runs
 * with the same in-hit mark (magpool_hit_enter_ / _leave_).
 */
#ifndef MP_FASTPATH_H
#define MP_FASTPATH_H
#include <string.h>

#include "cache_impl.h"
#include "cpu.h"
#include "sanitize.h"

void *mp_alloc_slow(struct magpool_cache *c, unsigned aflags, const void *caller);
void mp_free_slow(struct magpool_cache *c, void *obj, const void *caller);
void mp_double_free(struct magpool_cache *c, void *obj);
/* magpool_alloc_bulk / magpool_free_bulk past their inline hit, for runs of
 * any length (magazine.c), with the caller to record; the front ends' bulk
 * calls enter here directly. */
size_t mp_alloc_bulk_run(struct magpool_cache *c, size_t n, void **objs, unsigned aflags, const void *caller);
void mp_free_bulk_run(struct magpool_cache *c, size_t n, void *const *objs, const void *caller);
/* What a validating bulk free does with a run it refuses (the front end's
 * diagnostics): called with the ctx given, nothing of the run freed. */
typedef void mp_run_refused_fn(void *ctx, size_t n, void *const *objs, const void *caller);
/* The validating bulk free (kmem_cache_free_bulk): if every non-NULL objs[i]
 * of the n > 0 is an object of c (mp_slab_owned_by), frees the run as
 * magpool_free_bulk does; else frees nothing and ends in refused(ctx, n,
 * objs, caller).  A run whose objects share one slab, with no NULL and no
 * repeat, that fits the loaded magazine is checked in its copy's pass (AVX2
 * or masked kernels, n >= 8); any other run is checked first
 * (mp_slab_run_owned_by), then freed.  Every step is a tail call, so the
 * front end's entry needs no stack frame. */
void mp_free_bulk_owned(struct magpool_cache *c, size_t n, void *const *objs, const void *caller,
                        mp_run_refused_fn *refused, void *ctx);

/* Public entry points whose hit is a few instructions start on a cache
 * line: where the linker happens to place them otherwise decides whether a
 * 40-byte hit spans two fetch lines, and an unrelated change elsewhere in
 * the file moved magpool_alloc from offset 0 to 48 of a line and cost the
 * 1-thread alloc+free pair 15-25% (bench pair, A/B of identical code). */
#define MP_HOT_ENTRY __attribute__((aligned(64)))

/* A public entry's miss entered by a guaranteed tail jump (clang's
 * musttail, at every optimisation level): the miss function's
 * __builtin_return_address(0) is then the entry's caller, so the hit need
 * not load it (one instruction of magpool_alloc's and magpool_free's).
 * Without musttail (gcc 12) the entries pass the caller as before. */
#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(musttail)
#define MP_MUSTTAIL __attribute__((musttail))
#endif
#endif

static inline __attribute__((always_inline)) struct mp_tcache *mp_fast_tc(struct magpool_cache *c)
{
    return (struct mp_tcache *)magpool_hit_of_(c);
}

/* Zero a popped object, out of line so the callers' hit path needs no stack
 * frame (a tail call).  The empty asm hides that the result is `obj`, which
 * would otherwise let the compiler keep obj live across a non-tail call. */
static __attribute__((noinline, unused)) void *mp_fast_zero(struct magpool_cache *c, void *obj)
{
    memset(obj, 0, c->c_size);
    __asm__("" : "+r"(obj));
    return obj;
}

/* The slow path a miss calls: mp_alloc_slow, or a front end's own that
 * translates its flags first (so the translation is off the hit path). */
typedef void *mp_alloc_miss_fn(struct magpool_cache *c, unsigned flags, const void *caller);

/* Pop the loaded magazine; a miss returns miss(c, miss_flags, caller) (may be
 * NULL).  A hit never blocks, so of the caller's flags only `zero` matters
 * there.  miss is a constant at every call site, so after inlining this is
 * a direct call.  (For the front ends; mp_fast_alloc is this with
 * mp_alloc_slow and no flags: the same code as before.) */
static inline __attribute__((always_inline)) void *mp_fast_alloc_zf(struct magpool_cache *c, bool zero,
                                                                    mp_alloc_miss_fn *miss, unsigned miss_flags,
                                                                    const void *caller)
{
    void *obj;
    if (__builtin_expect(!magpool_hit_pop_(magpool_hit_of_(c), &obj), 0))
        return miss(c, miss_flags, caller);
    if (zero)
        return mp_fast_zero(c, obj);
    return obj;
}

/* Pop the loaded magazine; on a miss, the slow path (which may return NULL). */
static inline __attribute__((always_inline)) void *mp_fast_alloc(struct magpool_cache *c, const void *caller)
{
    return mp_fast_alloc_zf(c, false, mp_alloc_slow, 0, caller);
}

/* mp_fast_alloc with MAGPOOL_* allocation flags. */
static inline __attribute__((always_inline)) void *mp_fast_alloc_flags(struct magpool_cache *c, unsigned aflags,
                                                                       const void *caller)
{
    return mp_fast_alloc_zf(c, (aflags & MAGPOOL_ZERO) != 0, mp_alloc_slow, aflags, caller);
}

/* A front end's tag on c (0 unless it set one with mp_fast_set_fe_tag):
 * what a validating free with no cache argument (mem_put) tests, on the
 * line the hit reads anyway.  Relaxed: set at creation, before the handle
 * is published, and at destroy, which the caller orders after every use
 * (magpool.h's synchronization table). */
static inline __attribute__((always_inline)) uint32_t mp_fast_fe_tag(const struct magpool_cache *c)
{
    return mp_load_relaxed(&c->c_fe_tag);
}

static inline void mp_fast_set_fe_tag(struct magpool_cache *c, uint32_t tag)
{
    mp_store_relaxed(&c->c_fe_tag, tag);
}

/* The front-end private pointer of c (mp_cache_priv, inline; for the
 * front ends' validating frees).  Immutable after create. */
static inline __attribute__((always_inline)) void *mp_fast_priv(const struct magpool_cache *c)
{
    return c->c_priv;
}

/* Add obj as the top round of the loaded magazine (not full), on a slow
 * path (the owner's gate held, so no reclaim runs: idle.c).  (A checked
 * cache's objects are poisoned by the slow path before they get here:
 * mp_san_rest.) */
static inline __attribute__((always_inline)) void mp_tc_push(struct mp_tcache *tc, void *obj)
{
    void **top = mp_load_relaxed(&tc->tc_top);
    *top = obj;
    mp_store_relaxed(&tc->tc_top, top + 1); /* counted by tc_net, see cache_impl.h */
}

/* Take the top round of the loaded magazine (not empty), on a slow path. */
static inline __attribute__((always_inline)) void *mp_tc_pop(struct mp_tcache *tc)
{
    void **top = mp_load_relaxed(&tc->tc_top) - 1;
    mp_store_relaxed(&tc->tc_top, top);
    return *top;
}

/* Push onto the loaded magazine; a miss (full, nothing loaded, or obj equal
 * to the top round: an immediate double free, which mp_free_slow reports)
 * goes to the slow path. */
static inline __attribute__((always_inline)) void mp_fast_free(struct magpool_cache *c, void *obj, const void *caller)
{
    if (__builtin_expect(!magpool_hit_push_(magpool_hit_of_(c), obj), 0))
        mp_free_slow(c, obj, caller);
}

/* ---- sanitizer hooks of checked caches (sanitize.h) ----------------------- *
 * Only the slow paths call these: a checked cache (c_checked) never hits.
 * Handed out: usable for ASan, and for TSan the object's last free happens
 * before this alloc.  At rest (a free, or a run entering a magazine):
 * poisoned, and this thread's use of it happens before its next alloc. */
static inline void mp_san_handout(const struct magpool_cache *c, void *obj)
{
    if (__builtin_expect(c->c_checked, 0)) {
        mp_asan_unpoison(obj, c->c_size);
        mp_tsan_acquire(obj);
    }
}

static inline void mp_san_rest(const struct magpool_cache *c, void *const *objs, size_t n)
{
    if (__builtin_expect(c->c_checked, 0))
        for (size_t i = 0; i < n; i++) {
            mp_tsan_release(objs[i]);
            mp_asan_poison(objs[i], c->c_size);
        }
}

/* ---- bulk runs (design: magazine.c, "bulk") ------------------------------- */

/* Runs of at most this many objects are moved inline. */
#define MP_BULK_INLINE 16

/* Copy k pointers: a plain loop for short runs (no libc call, so the inline
 * hit needs no stack frame; not unrolled, so a run of one costs a few
 * instructions), memcpy for long ones (libc's wide moves beat any loop here
 * when the next call reads the copy back: a bulk free right after a bulk
 * alloc). */
static inline __attribute__((always_inline)) void mp_copy_ptrs(void **dst, void *const *src, size_t k, bool small)
{
    if (small) {
#ifdef __clang__
#pragma clang loop vectorize(disable) unroll(disable)
#endif
        for (size_t j = 0; j < k; j++)
            dst[j] = src[j];
    } else {
        memcpy(dst, src, k * sizeof(void *));
    }
}

/* A long run's copy out of the magazine, for mp_alloc_bulk_hit_k:
 * magazine.c has a wide one for CPUs with AVX2 (NULL: mp_copy_ptrs). */
typedef void mp_copy_out_fn(void **restrict dst, void *const *restrict src, size_t k);

/* If n > 0 rounds are loaded, move the top n into objs (unpoisoned), with
 * copy_out, or mp_copy_ptrs(small) when it is NULL. */
static inline __attribute__((always_inline)) bool mp_alloc_bulk_hit_k(struct magpool_cache *c, size_t n,
                                                                      void **objs, bool small,
                                                                      mp_copy_out_fn *copy_out)
{
    struct mp_tcache *tc = mp_fast_tc(c);
    uintptr_t top = (uintptr_t)magpool_hit_enter_(&tc->tc_hit);
    /* top >= low + n (n > 0; no wrap: addresses and n are small): n rounds
     * are loaded and the state is not stopped (stopped, low is above every
     * top: idle.c; nothing loaded, low == top == 0; the shared state of a
     * thread with none, low == 2^62 > top: thread.c) */
    if (__builtin_expect(top >= (uintptr_t)mp_load_relaxed(&tc->tc_low) + n * sizeof(void *), 1)) {
        void **from = (void **)top - n;
        mp_owner_add_relaxed_u64(&tc->tc_allocs, n);
        if (copy_out != NULL)
            copy_out(objs, from, n);
        else
            mp_copy_ptrs(objs, from, n, small);
        magpool_hit_leave_(&tc->tc_hit, from);
        return true;
    }
    magpool_hit_leave_(&tc->tc_hit, (void **)top);
    return false;
}

static inline __attribute__((always_inline)) bool mp_alloc_bulk_hit(struct magpool_cache *c, size_t n, void **objs,
                                                                    bool small)
{
    return mp_alloc_bulk_hit_k(c, n, objs, small, NULL);
}

/* Whether a short run of n > 0 objects holds a NULL or an object equal to
 * the one before it (objs[0] is compared with `top`): compares and branches,
 * each object against its neighbour reloaded, no value carried round the
 * loop (carried, clang peels the first round and the inline hit saves two
 * registers: bulk-n32-b1 about 10% slower). */
static inline __attribute__((always_inline)) bool mp_run_bad_short(void *const *objs, size_t n, void *top)
{
    if (objs[0] == NULL || objs[0] == top)
        return true;
#ifdef __clang__
#pragma clang loop vectorize(disable) unroll(disable)
#endif
    for (size_t j = 1; j < n; j++)
        if (objs[j] == NULL || objs[j] == objs[j - 1])
            return true;
    return false;
}

/* Pairs of pointers in 16-byte vectors (GCC/clang vector extensions: SSE2
 * on x86-64, NEON on AArch64), for mp_copy_run_bad.  MP_VKEEP hides a
 * loaded pair from the optimiser, so the fused copy stays in the loop
 * instead of being split out as a memcpy call that reads the run again. */
typedef uintptr_t mp_ptr2 __attribute__((vector_size(2 * sizeof(uintptr_t)), aligned(sizeof(uintptr_t)), may_alias));
#if defined(__x86_64__) && defined(__SSE2__)
#define MP_VKEEP(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define MP_VKEEP(v) __asm__("" : "+w"(v))
#else
#define MP_VKEEP(v) ((void)0)
#endif

static inline __attribute__((always_inline)) mp_ptr2 mp_load2(void *const *p)
{
    return *(const mp_ptr2 *)(const void *)p;
}

static inline __attribute__((always_inline)) void mp_store2(void **p, mp_ptr2 v)
{
    *(mp_ptr2 *)(void *)p = v;
}

/* The vector kernels' last step: objects j .. n - 1 one by one (prev: the
 * one before j), the same test, folded into the kernel's accumulated bad
 * bits; true if the run is bad. */
static inline __attribute__((always_inline)) bool mp_copy_run_tail(void **restrict dst, void *const *restrict objs,
                                                                  size_t j, size_t n, uintptr_t prev, uintptr_t bad)
{
    for (; j < n; j++) {
        uintptr_t v = (uintptr_t)objs[j];
        /* (opaque: the compiler would split the copy out as a memcpy call,
         * and the kernels would need a stack frame for it) */
        __asm__("" : "+r"(v));
        dst[j] = (void *)v;
        bad |= (v - 1) | ((v ^ prev) - 1);
        prev = v;
    }
    return bad >> (sizeof bad * 8 - 1);
}

/* A long run's copy into dst and its check in one pass: false when the n
 * > 0 objects hold no NULL and no object equal to the one before it
 * (objs[0] against `top`).  The test is conservative, never lenient: v - 1
 * has its top bit set when v == 0, and (v ^ prev) - 1 when v == prev, so
 * no bad run passes; a good run fails only with an address whose top bit
 * is set or differs from its neighbour's (never on x86-64 or AArch64 user
 * addresses), and then goes object by object, which is merely slower.
 * Four pointers per step as two pairs, each pair against the pair one slot
 * back (a shuffle of registers already loaded, not a second load that
 * would straddle two recent stores and miss store forwarding), OR-reduced
 * into two accumulators with no branch.  Against the exact test
 * ((v - 1) & ~v, and the same for v ^ prev) followed by memcpy, a
 * 128-object bulk round (4 x 32 in, 4 x 32 out) went from 97 to 74 ns
 * (bench/README.md, "Bulk runs").  The slots written past the magazine's top
 * are free ones; on failure the top is not moved, so they stay free. */
static inline __attribute__((always_inline)) bool mp_copy_run_bad(void **restrict dst, void *const *restrict objs,
                                                                 size_t n, void *top, const void *ctx)
{
    (void)ctx;
    mp_ptr2 last = { 0, (uintptr_t)top }, b1 = { 0, 0 }, b2 = { 0, 0 };
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        mp_ptr2 v = mp_load2(objs + j), w = mp_load2(objs + j + 2);
        MP_VKEEP(v);
        MP_VKEEP(w);
        mp_store2(dst + j, v);
        mp_store2(dst + j + 2, w);
        mp_ptr2 pv = __builtin_shufflevector(last, v, 1, 2), pw = __builtin_shufflevector(v, w, 1, 2);
        b1 |= (v - 1) | (w - 1);
        b2 |= ((v ^ pv) - 1) | ((w ^ pw) - 1);
        last = w;
    }
    return mp_copy_run_tail(dst, objs, j, n, last[1], b1[0] | b1[1] | b2[0] | b2[1]);
}

/* A long run's fused copy and check (mp_copy_run_bad's contract, ctx unused;
 * magazine.c also has wider ones for CPUs that have them, one of which adds
 * an ownership test against the slab ctx describes), for mp_free_bulk_hit_k. */
typedef bool mp_copy_run_fn(void **restrict dst, void *const *restrict objs, size_t n, void *top,
                            const void *ctx);
/* (mp_free_bulk_run uses that wider kernel when mp_bulk_wide, cpu.h.) */

/* If the n > 0 objects fit the loaded magazine and hold no NULL and no object
 * equal to the one pushed before it (mp_fast_free's check), push them all
 * with one tcache update; else change nothing.  copy_run NULL: a short run
 * (checked, then copied: the inline hit's shape); else the long run's fused
 * copy and check, given ctx. */
static inline __attribute__((always_inline)) bool mp_free_bulk_hit_k(struct magpool_cache *c, size_t n,
                                                                     void *const *objs, mp_copy_run_fn *copy_run,
                                                                     const void *ctx)
{
    struct mp_tcache *tc = mp_fast_tc(c);
    bool hit = false;
    uintptr_t top = (uintptr_t)magpool_hit_enter_(&tc->tc_hit), high = (uintptr_t)mp_load_relaxed(&tc->tc_high);
    /* n more fit: top < high (loaded, not stopped: stopped, high is below
     * every top, idle.c) and n slots up to high */
    if (__builtin_expect(top < high && n <= (high - top) / sizeof(void *), 1)) {
        void **dst = (void **)top;
        /* dst[-1]: the top round, or the magazine's NULL guard. */
        if (copy_run == NULL ? __builtin_expect(!mp_run_bad_short(objs, n, dst[-1]), 1)
                             : __builtin_expect(!copy_run(dst, objs, n, dst[-1], ctx), 1)) {
            if (copy_run == NULL)
                mp_copy_ptrs(dst, objs, n, true);
            top = (uintptr_t)(dst + n); /* counted by tc_net, see cache_impl.h */
            hit = true;
        }
    }
    magpool_hit_leave_(&tc->tc_hit, (void **)top);
    return hit;
}

/* mp_free_bulk_hit_k with the short form (small) or mp_copy_run_bad. */
static inline __attribute__((always_inline)) bool mp_free_bulk_hit(struct magpool_cache *c, size_t n,
                                                                   void *const *objs, bool small)
{
    return mp_free_bulk_hit_k(c, n, objs, small ? NULL : mp_copy_run_bad, NULL);
}

/* Bulk alloc: a short run inline, else mp_alloc_bulk_run (n - 1 wraps for
 * n == 0, which goes there with the argument errors, as does a NULL objs:
 * EINVAL whether or not rounds are loaded). */
static inline __attribute__((always_inline)) size_t mp_fast_alloc_bulk(struct magpool_cache *c, size_t n,
                                                                       void **objs, unsigned aflags,
                                                                       const void *caller)
{
    if (__builtin_expect(c != NULL && objs != NULL && n - 1 < MP_BULK_INLINE && aflags == 0, 1) &&
        mp_alloc_bulk_hit(c, n, objs, true))
        return n;
    return mp_alloc_bulk_run(c, n, objs, aflags, caller);
}

/* Bulk free: a short clean run inline, else mp_free_bulk_run. */
static inline __attribute__((always_inline)) void mp_fast_free_bulk(struct magpool_cache *c, size_t n,
                                                                    void *const *objs, const void *caller)
{
    if (__builtin_expect(c != NULL && objs != NULL && n - 1 < MP_BULK_INLINE, 1) &&
        mp_free_bulk_hit(c, n, objs, true))
        return;
    mp_free_bulk_run(c, n, objs, caller);
}
#endif
