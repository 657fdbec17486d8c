/*
 * bench_aux.h — shared state of the cross-thread workloads (allocated by the
 * driver in bench.c, used by the loops in bench_tmpl.h).
 *
 * All hand-offs between benchmark threads go through C11 atomics with
 * release/acquire pairs, so every contender sees the same synchronisation.
 * Waiting threads spin a little, then sched_yield(): on 2 cores with 64
 * threads a pure spin would measure the scheduler, not the allocator.
 */
#ifndef BENCH_AUX_H
#define BENCH_AUX_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#define BENCH_CHUNK 256u       /* ops between checks of the stop flag */
#define SPSC_CAP 1024u         /* slots per producer/consumer ring */
#define XM_BATCH 4096u         /* xmalloc-test batch size */
#define DEFER_SLOTS 256u       /* shared slots of the deferred workload */
#define DEFER_READS 4u         /* read-side sections per retire */

static inline void bench_relax(unsigned *spins)
{
    if (++*spins < 64) {
        __builtin_ia32_pause();
    } else {
        *spins = 0;
        sched_yield();
    }
}

/* One single-producer single-consumer ring per producer/consumer pair. */
struct spsc_ring {
    _Alignas(64) atomic_uint_fast64_t head; /* written by the consumer */
    _Alignas(64) atomic_uint_fast64_t tail; /* written by the producer */
    _Alignas(64) atomic_int done;           /* producer finished */
    void *slot[SPSC_CAP];
};

/* xmalloc-test: full batches on a shared stack, empty ones on another. */
struct xm_shared {
    pthread_mutex_t lock;
    unsigned nfull, nempty, cap;
    void ***full;          /* stack of full batches */
    void ***empty;         /* stack of empty batch buffers */
    atomic_uint producers_left;
};

/* Larson: one lineage of threads per benchmark thread. */
struct larson_line {
    struct tctx *t;
    void **slot;
    unsigned nslots;
    uint64_t lifetime;     /* replacements per thread before it hands over */
    uint64_t ops;
};

/* Churn: objects left live by one generation for the next. */
struct churn_shared {
    void **slot;           /* threads * per_thread */
    unsigned per_thread;
    unsigned gen;
};

/* Deferred: shared slots readers dereference and writers replace. */
struct defer_shared {
    _Atomic(void *) slot[DEFER_SLOTS];
    atomic_uint left;      /* threads that have finished */
    atomic_uint_fast64_t bad; /* readers that saw a reused object */
};

#define DEFER_COOKIE 0x6d61677030303031ULL

#endif /* BENCH_AUX_H */
