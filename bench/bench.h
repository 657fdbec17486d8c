/*
 * bench.h — shared types of the thread-scaling benchmark (bench/bench.c).
 *
 * A *contender* is one way a program can get fixed-size objects: an allocator
 * (glibc, jemalloc, ...), a pool (DPDK rte_mempool, a GlusterFS classic pool,
 * magpool), or the floor (an inline thread-local array stack).  Each contender
 * file defines static inline <ct>_alloc()/<ct>_free() and then includes
 * bench_tmpl.h, which instantiates every workload loop with those calls
 * inlined (no function pointer per operation: each loop calls the contender's
 * API exactly as its users would).  The driver only sees struct contender.
 *
 * Unit: one "op" is one object allocated and freed (a pair), in every
 * workload, so numbers compare across workloads.  Mops/s is aggregate over
 * all threads; ns/op is 1000 / Mops/s (wall time per op, all threads).
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Workload identifiers (bench.c names them). */
/* An opaque barrier: the compiler must assume any memory changed, so it can
 * keep no allocator state in registers from one call to the next, as real
 * code between an alloc and its free forces (issue: "what users get"). */
#define BENCH_OPAQUE() __asm__ volatile("" ::: "memory")
#define BATCH_FIFO 1u   /* free in allocation order */
#define BATCH_OPAQUE 2u /* BENCH_OPAQUE after each alloc and each free (LIFO) */

enum wl_kind {
    WL_PAIR,     /* alloc, touch, free; p1 = 1: BENCH_OPAQUE after each alloc and free */
    WL_BATCH,    /* B allocs then B frees; p1 = B, p2 = BATCH_* bits (0: LIFO) */
    WL_BULK,     /* keep p1 objects, moved in bulks of p2 */
    WL_SPSC,     /* producer/consumer pairs over SPSC rings */
    WL_XMALLOC,  /* producers fill batches of 4096, consumers free them */
    WL_LARSON,   /* random slot replacement, arrays handed to new threads */
    WL_CHURN,    /* generations of threads exiting with objects live */
    WL_DEFERRED, /* readers in sections, writers retire with deferred free */
    WL_MEMORY,   /* RSS per live object at 1M, RSS after free + shrink */
    WL_CTOR,     /* constructed objects (struct bench_obj, bench_aux.h): p1 = B,
                    B allocs (each used), then B frees in reverse; 1 = a pair */
    WL_NKINDS
};

struct contender;

/* One timed run of one contender (shared by its threads). */
struct run {
    const struct contender *ct;
    size_t size;          /* object size in bytes */
    unsigned threads;
    enum wl_kind kind;
    unsigned p1, p2;      /* workload parameters (see enum wl_kind) */
    size_t max_live;      /* most objects live at once, all threads */
    void *pool;           /* contender's per-run handle (cache, mempool...) */
    void *aux;            /* workload-private shared state */
    atomic_int stop;      /* set by the driver when the run's time is up */
    atomic_uint ready;    /* threads warmed up and waiting */
    atomic_int go;        /* released by the driver */
    uint64_t fixed_ops;   /* >0: each thread does this many ops, no timer */
    atomic_uint_fast64_t bad; /* WL_CTOR: objects not in constructed state */
};

/* Per-thread state passed to workload loops. */
struct tctx {
    struct run *r;
    void *pool;           /* copy of r->pool, kept in a register */
    size_t size;
    unsigned id;          /* 0 .. threads-1 */
    uint64_t rng;
    uint64_t ops;         /* ops done (result) */
    uint64_t t_end;       /* ns timestamp when this thread finished */
    uint64_t checksum;    /* keeps touches observable */
    void *local;          /* contender's per-thread state (e.g. ck record) */
};

typedef void (*wl_fn)(struct tctx *t);

struct wl_set {
    wl_fn fn[WL_NKINDS];
    void (*cg_alloc)(struct tctx *t, void **v, unsigned n); /* callgrind kernels */
    void (*cg_free)(struct tctx *t, void **v, unsigned n);
    const char *prefix;  /* CT of bench_tmpl.h: kernels are <prefix>_cg_* */
    void (*cg_balloc)(struct tctx *t, void **v, unsigned n);
    void (*cg_bfree)(struct tctx *t, void **v, unsigned n);
    void (*mem_fill)(struct tctx *t, void **v, size_t n);  /* WL_MEMORY */
    void (*mem_free)(struct tctx *t, void **v, size_t n);
    void *(*churn_gen)(void *tctx);                         /* WL_CHURN */
    void (*churn_free_all)(struct tctx *t);
};

/* Contender capabilities. */
#define CT_BULK      0x01u /* has a native bulk API */
#define CT_DEFERRED  0x02u /* supports WL_DEFERRED */
#define CT_FIXED     0x04u /* pool has a fixed capacity sized per run */
#define CT_NEEDS_EAL 0x08u /* DPDK: EAL must be up */
#define CT_MAGPOOL   0x10u /* a magpool row */
#define CT_FLOOR     0x20u /* the floor */
#define CT_PEER      0x40u /* a general-purpose allocator (issue 3 peer set) */
#define CT_MALLOC    0x80u /* a malloc (issue 16's set: glibc, jemalloc, tcmalloc,
                              mimalloc, tbbmalloc) */

struct contender {
    const char *name;
    const char *how;      /* how it is driven, printed in the output */
    unsigned caps;
    /* Per run (driver thread): create the pool for r->size, r->max_live. */
    int (*setup)(struct run *r);
    void (*teardown)(struct run *r);
    /* Per benchmark thread, around its work (may be NULL). */
    void (*thread_enter)(struct tctx *t);
    void (*thread_leave)(struct tctx *t);
    /* Give memory back to the system after frees (may be NULL). */
    void (*shrink)(struct run *r);
    const struct wl_set *wl;
    int (*available)(void); /* NULL = always */
};

/* Shared helpers from bench.c. */
uint64_t bench_now_ns(void);
size_t bench_rss_bytes(void);
void bench_wait_go(struct tctx *t);
void bench_spawn_join(struct run *r, void *(*fn)(void *), void *arg);
int bench_eal_up(void);

static inline uint64_t bench_rand(uint64_t *s)
{
    /* xorshift64*: deterministic per thread, cheap. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline int bench_stopped(const struct tctx *t, uint64_t done)
{
    if (t->r->fixed_ops)
        return done >= t->r->fixed_ops;
    return atomic_load_explicit(&t->r->stop, memory_order_relaxed);
}

/* Contenders, each defined in its own file. */
extern const struct contender ct_floor, ct_glibc, ct_jemalloc, ct_tcmalloc,
    ct_mimalloc, ct_tbb, ct_dpdk, ct_gluster, ct_mutexlist, ct_magpool,
    ct_magpool_call, ct_mempool, ct_kmem, ct_kmalloc, ct_glibc_urcu, ct_glibc_ckepoch, ct_magpool_urcu;
/* The core API's setup/teardown/shrink (peer_magpool.c), shared by the
 * inline and the library-call contenders. */
int magpool_bench_setup(struct run *r);
void magpool_bench_teardown(struct run *r);
void magpool_bench_shrink(struct run *r);

/* Deferred workload hooks: read-side section and retire (bench_tmpl.h calls
 * <ct>_read_enter/leave and <ct>_retire when CT_HAS_DEFERRED is defined). */

#endif /* BENCH_BENCH_H */
