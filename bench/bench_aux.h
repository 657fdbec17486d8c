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
#include <string.h>

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

/*
 * The ctor workload (issue 16): the objects object caches exist for
 * (Bonwick 1994) -- a struct whose construction is real work.  Constructed
 * state: magic set, the mutex and the condition variable initialised,
 * refcount 0, the list head pointing at itself, the 256-byte buffer all zero.
 *
 * A contender with a constructor facility keeps objects in that state
 * (magpool_config.ctor/dtor, kmem_cache_create's ctor, rte_mempool's obj_init,
 * the floor's thread stack): its alloc returns a constructed object and the
 * object is freed constructed.  Every other contender (the mallocs, mem_pool,
 * gluster-classic, mutex-list) runs bench_obj_ctor after each alloc and
 * bench_obj_dtor before each free, as its users must.  The use between is
 * the same for all (bench_obj_use): it checks the constructed state, changes
 * fields under the mutex and restores them before unlocking, so the object
 * leaves the use constructed (the buffer need not be cleared again).
 */
#define BENCH_OBJ_MAGIC 0x6f626a6374307231ULL
#define BENCH_OBJ_BUF 256u

struct bench_obj_link {
    struct bench_obj_link *next, *prev;
};

struct bench_obj {
    uint64_t magic;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct bench_obj_link list;  /* empty: points at itself */
    uint32_t refcount;
    uint32_t flags;
    uint64_t seq;                /* last user's stamp (not part of the invariant) */
    unsigned char buf[BENCH_OBJ_BUF];
};
_Static_assert(sizeof(struct bench_obj) == 384, "the ctor workload's object is 384 bytes");

/* The constructor (magpool_config.ctor's signature).  Hand-initialising
 * contenders call this very function after each alloc. */
static inline void bench_obj_ctor(void *obj, void *arg)
{
    struct bench_obj *o = obj;
    (void)arg;
    o->magic = BENCH_OBJ_MAGIC;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, NULL);
    o->list.next = o->list.prev = &o->list;
    o->refcount = 0;
    o->flags = 0;
    o->seq = 0;
    memset(o->buf, 0, sizeof(o->buf));
}

/* The destructor (magpool_config.dtor's signature). */
static inline void bench_obj_dtor(void *obj, void *arg)
{
    struct bench_obj *o = obj;
    (void)arg;
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->lock);
}

/* The use, identical for every contender: under the mutex, check the
 * constructed state (a failure counts in *bad), take a reference, stamp seq,
 * flags and the first buffer word; then, past an opaque barrier (the stores
 * must happen), read the stamp back, drop the reference and clear what was
 * changed.  Returns the stamp read back (for the checksum). */
static inline uint64_t bench_obj_use(struct bench_obj *o, uint64_t v, uint64_t *bad)
{
    uint64_t w;
    pthread_mutex_lock(&o->lock);
    memcpy(&w, o->buf, sizeof(w));
    *bad += (o->magic != BENCH_OBJ_MAGIC) | (o->refcount != 0) | (o->flags != 0) |
            (o->list.next != &o->list) | (o->list.prev != &o->list) | (w != 0);
    o->refcount++;
    o->flags = 1;
    o->seq = v;
    memcpy(o->buf, &v, sizeof(v));
    __asm__ volatile("" ::: "memory"); /* BENCH_OPAQUE (bench.h) */
    memcpy(&w, o->buf, sizeof(w));
    memset(o->buf, 0, sizeof(w));
    o->flags = 0;
    o->refcount--;
    pthread_mutex_unlock(&o->lock);
    return w;
}

#endif /* BENCH_AUX_H */
