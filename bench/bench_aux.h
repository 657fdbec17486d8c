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

/*
 * One single-producer single-consumer ring per producer/consumer pair, the
 * same for every contender, built so the spsc workload measures the
 * allocators, not the hand-off (FastForward / MCRingBuffer style):
 *  - head (consumer) and tail (producer) each sit alone on a cache line;
 *  - each side keeps the other's index in a local copy and re-reads the
 *    shared one only when its local view says full (producer) / empty
 *    (consumer);
 *  - each side publishes its index once per SPSC_BATCH elements, at absolute
 *    indices that are multiples of SPSC_BATCH, so a published batch is whole
 *    cache lines of slots and the two sides never write/read the same slot
 *    line at the same time; before waiting (ring full / empty) and at the
 *    end a side publishes what it has not yet, so nothing stays invisible
 *    to the other side (no deadlock, nothing stuck);
 *  - a waiting side spins with pause, then sched_yield()s (bench_relax).
 * The loops are in bench_tmpl.h (BT(spsc)).  Check: the producer records how
 * many objects it handed over, the consumer how many it freed and how many
 * did not carry the sequence number the producer wrote into them; the
 * driver compares them after the run (aux_destroy in bench.c).
 */
#define SPSC_BATCH 32u          /* elements per index publication */
#define SPSC_LINE 64u
_Static_assert(SPSC_CAP % SPSC_BATCH == 0, "a ring holds whole batches");
_Static_assert((SPSC_BATCH * sizeof(void *)) % SPSC_LINE == 0,
               "a batch of slots fills whole cache lines");

struct spsc_ring {
    _Alignas(SPSC_LINE) atomic_uint_fast64_t head; /* published by the consumer */
    _Alignas(SPSC_LINE) atomic_uint_fast64_t tail; /* published by the producer */
    _Alignas(SPSC_LINE) atomic_int done;           /* producer finished */
    /* Results for the check, each written once by its side at its end and
     * read by the driver after pthread_join. */
    _Alignas(SPSC_LINE) uint64_t produced;         /* producer: objects handed over */
    _Alignas(SPSC_LINE) uint64_t consumed;         /* consumer: objects freed */
    uint64_t misordered;                           /* consumer: wrong sequence number */
    _Alignas(SPSC_LINE) void *slot[SPSC_CAP];      /* batch-aligned cache lines */
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
