/*
 * magpool atomics: every atomic access of the library, named by its order.
 *
 * What this header guarantees:
 *  - Every atomic operation in src/ goes through one of the wrappers below,
 *    and the wrapper's name carries the operation and its memory order
 *    (mp_load_acquire, mp_xchg_acqrel, mp_cas_weak_release_relaxed, ...),
 *    so the order is named at the call and a grep for "_acquire", "_release",
 *    "_acqrel" or "_seqcst" lists every ordering argument of the engine.
 *  - Relaxed operations need no comment beyond the name: they order nothing,
 *    they are counters, hints or single-writer values.  Every NON-relaxed one
 *    carries its argument at the call site: what it orders, what it pairs
 *    with, what breaks if it is weakened.
 *  - Plain C11 <stdatomic.h> only, on _Atomic objects, with no stand-alone
 *    fences: ThreadSanitizer models every one of these operations (it does
 *    not model atomic_thread_fence).  The one exception, mp_load_seqcst_uint,
 *    reads a word another library owns as a plain unsigned (see there).
 *
 * The macros are generic over the _Atomic type (integers, pointers, function
 * pointers), as the atomic_*_explicit they expand to; they add nothing but
 * the order.  A CAS names its success order then its failure order
 * (mp_cas_weak_release_relaxed), or one word when both are relaxed.
 * atomic_init (initialisation before publication) is not wrapped: it is not
 * an atomic operation and has no order.
 */
#ifndef MAGPOOL_BASE_ATOMICS_H
#define MAGPOOL_BASE_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

/* ---- loads ------------------------------------------------------------- */
#define mp_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define mp_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)

/* ---- stores ------------------------------------------------------------ */
#define mp_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define mp_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

/* ---- read-modify-write --------------------------------------------------- */
#define mp_fetch_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define mp_fetch_add_release(p, v) atomic_fetch_add_explicit((p), (v), memory_order_release)
#define mp_fetch_sub_relaxed(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)
#define mp_fetch_sub_acqrel(p, v)  atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)

#define mp_xchg_relaxed(p, v) atomic_exchange_explicit((p), (v), memory_order_relaxed)
#define mp_xchg_acquire(p, v) atomic_exchange_explicit((p), (v), memory_order_acquire)
#define mp_xchg_acqrel(p, v)  atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define mp_xchg_seqcst(p, v)  atomic_exchange_explicit((p), (v), memory_order_seq_cst)

/* Compare-and-swap: *expected is updated on failure, as in C11. */
#define mp_cas_strong_relaxed(p, expected, desired)                                                \
    atomic_compare_exchange_strong_explicit((p), (expected), (desired), memory_order_relaxed,      \
                                            memory_order_relaxed)
#define mp_cas_weak_relaxed(p, expected, desired)                                                  \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_relaxed,        \
                                          memory_order_relaxed)
#define mp_cas_weak_release_relaxed(p, expected, desired)                                          \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_release,        \
                                          memory_order_relaxed)
#define mp_cas_weak_acquire_acquire(p, expected, desired)                                          \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_acquire,        \
                                          memory_order_acquire)
#define mp_cas_weak_seqcst_relaxed(p, expected, desired)                                           \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_seq_cst,        \
                                          memory_order_relaxed)

/* ---- single-writer counters ---------------------------------------------- */
/* Add v to a counter only the calling thread writes (others read it with
 * mp_load_relaxed): a relaxed load and a relaxed store, NOT a read-modify-
 * write, so no lock prefix on the owner's path; a concurrent reader sees the
 * old or the new value, never a torn one. */
static inline void mp_owner_add_relaxed_u64(_Atomic uint64_t *p, uint64_t v)
{
    mp_store_relaxed(p, mp_load_relaxed(p) + v);
}

/* ---- a word owned by another library ------------------------------------- */
/* A sequentially consistent load of an unsigned that another library (ck's
 * epoch counter) declares as a plain unsigned and changes only by its own
 * atomic RMWs: the one non-<stdatomic.h> access of the engine (a GNU
 * __atomic builtin, which gcc, clang and TSan all model as a C11 seq_cst
 * load).  Callers give the argument for seq_cst at the call. */
static inline unsigned mp_load_seqcst_uint(const unsigned *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

#endif /* MAGPOOL_BASE_ATOMICS_H */
