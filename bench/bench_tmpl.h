/*
 * bench_tmpl.h — the workload loops, instantiated once per contender.
 *
 * Before including, a contender file defines CT (its prefix) and
 *   static inline void *CT_alloc(struct tctx *t);
 *   static inline void  CT_free(struct tctx *t, void *p);
 * and optionally
 *   CT_HAS_BULK:     CT_alloc_bulk(t, v, n) -> 0 on success, CT_free_bulk(t, v, n)
 *   CT_HAS_DEFERRED: CT_read_enter(t), CT_read_leave(t), CT_retire(t, p),
 *                    CT_sync(t)  (all retired objects reusable afterwards)
 *   CT_HAS_CTOR:     in the ctor workload (WL_CTOR) the contender's pool
 *                    constructs its objects (its setup gave it bench_obj_ctor
 *                    and, where it has one, bench_obj_dtor): CT_alloc returns
 *                    a constructed object and CT_free takes one back.
 *                    Without it, the loop constructs after each alloc and
 *                    destroys before each free.
 * Every loop below then calls those directly, so the compiler inlines what
 * the contender's header inlines and calls what it exports: the loop is the
 * same code for everyone, the only difference is the allocator.
 *
 * The file defines static functions and `static const struct wl_set CT_wl`,
 * then undefines its helpers so the next contender can include it again.
 */
#ifndef CT
#error "define CT before including bench_tmpl.h"
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_aux.h"

#define BT_CAT2(a, b) a##b
#define BT_CAT(a, b) BT_CAT2(a, b)
#define BT(x) BT_CAT(CT, BT_CAT(_, x))
#define BT_STR2(x) #x
#define BT_STR(x) BT_STR2(x)

#define BT_ALLOC(t) BT(alloc)(t)
#define BT_FREE(t, p) BT(free)(t, p)
#define BT_TOUCH(p, v) (*(volatile uint64_t *)(p) = (uint64_t)(v))

static __attribute__((noinline, cold)) void BT(oom)(const char *where)
{
    fprintf(stderr, "bench: %s: allocation failed in %s\n", BT_STR(CT), where);
    abort();
}

static inline void *BT(get)(struct tctx *t, const char *where)
{
    void *p = BT_ALLOC(t);
    if (__builtin_expect(p == NULL, 0))
        BT(oom)(where);
    return p;
}

#ifdef CT_HAS_BULK
static inline void BT(get_bulk)(struct tctx *t, void **v, unsigned n)
{
    if (__builtin_expect(BT(alloc_bulk)(t, v, n) != 0, 0))
        BT(oom)("bulk");
}
#define BT_PUT_BULK(t, v, n) BT(free_bulk)(t, v, n)
#else
static inline void BT(get_bulk)(struct tctx *t, void **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        v[i] = BT(get)(t, "bulk");
}
static inline void BT(put_bulk)(struct tctx *t, void **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        BT_FREE(t, v[i]);
}
#define BT_PUT_BULK(t, v, n) BT(put_bulk)(t, v, n)
#endif

/* ---- pair: alloc, touch, free ------------------------------------------- */
/* The single-thread loops (pair, batch) run on a local copy of the thread
 * context, as a caller holds its pool handle in a variable: through t, any
 * store of a pointer in the loop (the batch's array, a contender's free
 * list) may alias t->pool, and the compiler reloads the handle, and every
 * address derived from it, after each one, for every contender.  The
 * alloc/free paths only read the context. */
static void BT(pair)(struct tctx *t)
{
    struct tctx tl = *t;
    const unsigned opaque = t->r->p1; /* BENCH_OPAQUE after each alloc and free */
    for (unsigned i = 0; i < 4 * BENCH_CHUNK; i++) { /* warm-up */
        void *p = BT(get)(&tl, "pair");
        BT_TOUCH(p, i);
        BT_FREE(&tl, p);
    }
    bench_wait_go(t);
    uint64_t n = 0;
    if (opaque)
        do {
            for (unsigned i = 0; i < BENCH_CHUNK; i++) {
                void *p = BT(get)(&tl, "pair");
                BENCH_OPAQUE();
                BT_TOUCH(p, n + i);
                BT_FREE(&tl, p);
                BENCH_OPAQUE();
            }
            n += BENCH_CHUNK;
        } while (!bench_stopped(t, n));
    else
        do {
            for (unsigned i = 0; i < BENCH_CHUNK; i++) {
                void *p = BT(get)(&tl, "pair");
                BT_TOUCH(p, n + i);
                BT_FREE(&tl, p);
            }
            n += BENCH_CHUNK;
        } while (!bench_stopped(t, n));
    t->ops = n;
}

/* ---- batch: B allocs, then B frees (p2: 0 LIFO, 1 FIFO) ----------------- */
static void BT(batch_round)(struct tctx *t, void **v, unsigned b, unsigned mode)
{
    struct tctx tl = *t; /* see BT(pair) */
    const unsigned fifo = mode & BATCH_FIFO, opaque = mode & BATCH_OPAQUE;
    for (unsigned i = 0; i < b; i++) {
        v[i] = BT(get)(&tl, "batch");
        if (opaque)
            BENCH_OPAQUE();
        BT_TOUCH(v[i], i);
    }
    if (fifo) {
        for (unsigned i = 0; i < b; i++)
            BT_FREE(&tl, v[i]);
    } else if (opaque) {
        for (unsigned i = b; i-- > 0;) {
            BT_FREE(&tl, v[i]);
            BENCH_OPAQUE();
        }
    } else {
        for (unsigned i = b; i-- > 0;)
            BT_FREE(&tl, v[i]);
    }
}

static void BT(batch)(struct tctx *t)
{
    unsigned b = t->r->p1, mode = t->r->p2;
    void **v = malloc(sizeof(void *) * b);
    if (!v)
        abort();
    BT(batch_round)(t, v, b, mode); /* warm-up */
    bench_wait_go(t);
    uint64_t n = 0;
    do {
        uint64_t goal = n + BENCH_CHUNK;
        while (n < goal) {
            BT(batch_round)(t, v, b, mode);
            n += b;
        }
    } while (!bench_stopped(t, n));
    t->ops = n;
    free(v);
}

/* ---- bulk: keep p1 objects, get/put them in bulks of p2 ---------------- */
static void BT(bulk_round)(struct tctx *t, void **v, unsigned keep, unsigned bulk)
{
    for (unsigned i = 0; i < keep; i += bulk)
        BT(get_bulk)(t, v + i, bulk);
    for (unsigned i = 0; i < keep; i += bulk)
        BT_PUT_BULK(t, v + i, bulk);
}

static void BT(bulk)(struct tctx *t)
{
    unsigned keep = t->r->p1, bulk = t->r->p2;
    void **v = malloc(sizeof(void *) * keep);
    if (!v)
        abort();
    BT(bulk_round)(t, v, keep, bulk);
    bench_wait_go(t);
    uint64_t n = 0;
    do {
        uint64_t goal = n + BENCH_CHUNK;
        while (n < goal) {
            BT(bulk_round)(t, v, keep, bulk);
            n += keep;
        }
    } while (!bench_stopped(t, n));
    t->ops = n;
    free(v);
}

/* ---- producer/consumer over SPSC rings (even id produces, odd consumes) -
 * The ring (struct spsc_ring, bench_aux.h) is the same for every contender:
 * local copies of the other side's index, publication once per SPSC_BATCH
 * elements at batch-aligned indices, a flush before every wait and at the
 * end.  The producer writes each object's sequence number into it; the
 * consumer checks it, then frees the object. */
static void BT(spsc_produce)(struct tctx *t, struct spsc_ring *ring)
{
    unsigned spins = 0;
    uint64_t n = 0;
    /* relaxed: the ring is fresh (zeroed before the threads started) */
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t pub = tail; /* last tail value published */
    /* acquire: pairs with the consumer's release stores of head (none yet;
     * kept for symmetry with the reloads below) */
    uint64_t limit = atomic_load_explicit(&ring->head, memory_order_acquire) + SPSC_CAP;
    for (;;) {
        if ((n & (BENCH_CHUNK - 1)) == 0 && bench_stopped(t, n))
            break;
        if (__builtin_expect(tail == limit, 0)) { /* full in our local view */
            /* acquire: pairs with the consumer's release of head, so its
             * reads of the slots below head happen before we overwrite them */
            limit = atomic_load_explicit(&ring->head, memory_order_acquire) + SPSC_CAP;
            while (tail == limit) {
                if (pub != tail) {
                    /* release: flush before waiting — publishes the slots
                     * written so far (and their objects' contents) to the
                     * consumer's acquire of tail; without it a consumer
                     * waiting on an empty view and a producer on a full one
                     * would wait for each other */
                    atomic_store_explicit(&ring->tail, tail, memory_order_release);
                    pub = tail;
                }
                bench_relax(&spins);
                /* acquire: as above */
                limit = atomic_load_explicit(&ring->head, memory_order_acquire) + SPSC_CAP;
            }
            spins = 0;
        }
        void *p = BT(get)(t, "producer");
        BT_TOUCH(p, tail); /* sequence number, checked by the consumer */
        ring->slot[tail % SPSC_CAP] = p;
        tail++;
        n++;
        if ((tail & (SPSC_BATCH - 1)) == 0) {
            /* release: publishes the batch's slots and the objects' contents
             * to the consumer's acquire of tail; a relaxed store would let
             * the consumer read a slot before our write of it */
            atomic_store_explicit(&ring->tail, tail, memory_order_release);
            pub = tail;
        }
    }
    /* release: final flush, as above, so no object stays unpublished */
    atomic_store_explicit(&ring->tail, tail, memory_order_release);
    ring->produced = n; /* read by the driver after join */
    /* release: orders the final tail (and produced) before done; pairs with
     * the consumer's acquire of done, after which its load of tail sees the
     * final value */
    atomic_store_explicit(&ring->done, 1, memory_order_release);
    t->ops = 0; /* the consumer counts completed hand-offs */
}

static void BT(spsc_consume)(struct tctx *t, struct spsc_ring *ring)
{
    unsigned spins = 0;
    /* Counters stay in registers until the end: struct tctx of neighbouring
     * threads share cache lines (a per-element write to t->checksum would
     * bounce the line holding the next producer's t->pool). */
    uint64_t n = 0, bad = 0, sum = 0;
    /* relaxed: the ring is fresh; only we write head */
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t pub = head;   /* last head value published */
    uint64_t avail = head; /* local copy of tail */
    for (;;) {
        if (head == avail) { /* empty in our local view */
            /* acquire: pairs with the producer's release of tail, so its
             * writes of the slots below tail (and of the objects) are
             * visible before we read them */
            avail = atomic_load_explicit(&ring->tail, memory_order_acquire);
            if (head == avail) {
                if (pub != head) {
                    /* release: flush before waiting — our reads of the
                     * slots happen before the producer reuses them (pairs
                     * with its acquire of head); without the flush a
                     * producer waiting on a full view would wait forever */
                    atomic_store_explicit(&ring->head, head, memory_order_release);
                    pub = head;
                }
                /* acquire: pairs with the producer's release of done, which
                 * follows its final tail store; the reload of tail (acquire,
                 * as above) then sees every object it handed over */
                if (atomic_load_explicit(&ring->done, memory_order_acquire)) {
                    avail = atomic_load_explicit(&ring->tail, memory_order_acquire);
                    if (head == avail)
                        break;
                    continue;
                }
                bench_relax(&spins);
                continue;
            }
            spins = 0;
        }
        do {
            void *p = ring->slot[head % SPSC_CAP];
            uint64_t v = *(volatile uint64_t *)p;
            bad += v != head;
            sum += v;
            BT_FREE(t, p);
            head++;
            n++;
            if ((head & (SPSC_BATCH - 1)) == 0) {
                /* release: our reads of the batch's slots happen before the
                 * producer overwrites them (pairs with its acquire of head);
                 * relaxed would let it reuse a slot we have not read yet */
                atomic_store_explicit(&ring->head, head, memory_order_release);
                pub = head;
            }
        } while (head != avail);
    }
    ring->consumed = n; /* read by the driver after join */
    ring->misordered = bad;
    t->checksum += sum;
    t->ops = n;
}

static void BT(spsc)(struct tctx *t)
{
    struct spsc_ring *ring = (struct spsc_ring *)t->r->aux + t->id / 2;
    bench_wait_go(t);
    if ((t->id & 1) == 0)
        BT(spsc_produce)(t, ring);
    else
        BT(spsc_consume)(t, ring);
}

/* ---- xmalloc-test: batches of 4096 on a shared stack -------------------- */
static void BT(xm_fill)(struct tctx *t, void **b)
{
    for (unsigned i = 0; i < XM_BATCH; i++) {
        b[i] = BT(get)(t, "xmalloc");
        BT_TOUCH(b[i], i);
    }
}

static void BT(xm_drain)(struct tctx *t, void **b)
{
    for (unsigned i = 0; i < XM_BATCH; i++)
        BT_FREE(t, b[i]);
}

static void BT(xmalloc)(struct tctx *t)
{
    struct xm_shared *x = t->r->aux;
    unsigned spins = 0;
    uint64_t n = 0;
    bench_wait_go(t);
    if (t->r->threads == 1) {
        void **b = x->empty[0];
        do {
            BT(xm_fill)(t, b);
            BT(xm_drain)(t, b);
            n += XM_BATCH;
        } while (!bench_stopped(t, n));
        t->ops = n;
        return;
    }
    if ((t->id & 1) == 0) { /* producer */
        while (!bench_stopped(t, n)) {
            pthread_mutex_lock(&x->lock);
            void **b = x->nempty ? x->empty[--x->nempty] : NULL;
            pthread_mutex_unlock(&x->lock);
            if (!b) {
                bench_relax(&spins);
                continue;
            }
            BT(xm_fill)(t, b);
            pthread_mutex_lock(&x->lock);
            x->full[x->nfull++] = b;
            pthread_mutex_unlock(&x->lock);
            n += XM_BATCH;
        }
        atomic_fetch_sub_explicit(&x->producers_left, 1, memory_order_release);
        t->ops = 0;
    } else { /* consumer */
        for (;;) {
            pthread_mutex_lock(&x->lock);
            void **b = x->nfull ? x->full[--x->nfull] : NULL;
            pthread_mutex_unlock(&x->lock);
            if (!b) {
                if (atomic_load_explicit(&x->producers_left, memory_order_acquire) == 0) {
                    pthread_mutex_lock(&x->lock);
                    unsigned left = x->nfull;
                    pthread_mutex_unlock(&x->lock);
                    if (left == 0)
                        break;
                }
                bench_relax(&spins);
                continue;
            }
            BT(xm_drain)(t, b);
            pthread_mutex_lock(&x->lock);
            x->empty[x->nempty++] = b;
            pthread_mutex_unlock(&x->lock);
            n += XM_BATCH;
        }
        t->ops = n;
    }
}

/* ---- larson: a lineage of threads replacing random slots ---------------- */
static void *BT(larson_gen)(void *arg)
{
    struct larson_line *L = arg;
    struct tctx *t = L->t;
    const struct contender *ct = t->r->ct;
    if (ct->thread_enter)
        ct->thread_enter(t);
    if (!L->slot[0]) {
        for (unsigned i = 0; i < L->nslots; i++)
            L->slot[i] = BT(get)(t, "larson");
    }
    uint64_t k = 0;
    while (k < L->lifetime) {
        for (unsigned j = 0; j < BENCH_CHUNK; j++) {
            unsigned i = (unsigned)(bench_rand(&t->rng) % L->nslots);
            BT_FREE(t, L->slot[i]);
            L->slot[i] = BT(get)(t, "larson");
            BT_TOUCH(L->slot[i], k + j);
        }
        k += BENCH_CHUNK;
        if (bench_stopped(t, L->ops + k))
            break;
    }
    L->ops += k;
    if (bench_stopped(t, L->ops)) { /* last generation frees the array */
        for (unsigned i = 0; i < L->nslots; i++)
            BT_FREE(t, L->slot[i]);
        L->slot[0] = NULL;
    }
    if (ct->thread_leave)
        ct->thread_leave(t);
    return NULL;
}

static void BT(larson)(struct tctx *t)
{
    struct larson_line L = { .t = t, .nslots = t->r->p1, .lifetime = t->r->p2 };
    L.slot = calloc(L.nslots, sizeof(void *));
    if (!L.slot)
        abort();
    bench_wait_go(t);
    do { /* each generation inherits the previous one's objects */
        pthread_t th;
        if (pthread_create(&th, NULL, BT(larson_gen), &L) != 0)
            abort();
        pthread_join(th, NULL);
    } while (L.slot[0]);
    t->ops = L.ops;
    free(L.slot);
}

/* ---- churn: generations of threads exiting with objects live ------------ */
static void *BT(churn_gen)(void *arg)
{
    struct tctx *t = arg;
    struct churn_shared *c = t->r->aux;
    const struct contender *ct = t->r->ct;
    if (ct->thread_enter)
        ct->thread_enter(t);
    /* free the slice another thread of the previous generation left */
    unsigned slice = (t->id + c->gen) % t->r->threads;
    void **s = c->slot + (size_t)slice * c->per_thread;
    for (unsigned i = 0; i < c->per_thread; i++) {
        if (s[i])
            BT_FREE(t, s[i]);
        s[i] = BT(get)(t, "churn");
        BT_TOUCH(s[i], i);
    }
    t->ops += c->per_thread;
    if (ct->thread_leave)
        ct->thread_leave(t);
    return NULL;
}

static void BT(churn_free_all)(struct tctx *t)
{
    struct churn_shared *c = t->r->aux;
    size_t total = (size_t)c->per_thread * t->r->threads;
    for (size_t i = 0; i < total; i++) {
        if (c->slot[i])
            BT_FREE(t, c->slot[i]);
        c->slot[i] = NULL;
    }
}

/* ---- memory: 1M live objects, then free all ----------------------------- */
static void BT(mem_fill)(struct tctx *t, void **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = BT(get)(t, "memory");
        memset(v[i], 0x5a, t->size);
    }
}

static void BT(mem_free)(struct tctx *t, void **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        BT_FREE(t, v[i]);
}

/* ---- deferred: readers in sections, writers retire ---------------------- */
#ifdef CT_HAS_DEFERRED
static void BT(deferred)(struct tctx *t)
{
    struct defer_shared *d = t->r->aux;
    uint64_t n = 0;
    bench_wait_go(t);
    do {
        for (unsigned j = 0; j < BENCH_CHUNK / 8; j++) {
            uint64_t *p = BT(get)(t, "deferred");
            p[2] = DEFER_COOKIE;
            p[3] = (uint64_t)(uintptr_t)p;
            unsigned k = (unsigned)(bench_rand(&t->rng) % DEFER_SLOTS);
            /* acq_rel: release publishes p's cookie to readers' acquire
             * loads; acquire orders our retire after the previous owner's
             * publication of old */
            void *old = atomic_exchange_explicit(&d->slot[k], p, memory_order_acq_rel);
            if (old)
                BT(retire)(t, old);
            for (unsigned r = 0; r < DEFER_READS; r++) {
                BT(read_enter)(t);
                unsigned s = (unsigned)(bench_rand(&t->rng) % DEFER_SLOTS);
                /* acquire: pairs with the writer's acq_rel exchange */
                uint64_t *q = atomic_load_explicit(&d->slot[s], memory_order_acquire);
                if (q && (((volatile uint64_t *)q)[2] != DEFER_COOKIE ||
                          ((volatile uint64_t *)q)[3] != (uint64_t)(uintptr_t)q))
                    atomic_fetch_add_explicit(&d->bad, 1, memory_order_relaxed);
                BT(read_leave)(t);
            }
        }
        n += BENCH_CHUNK / 8;
    } while (!bench_stopped(t, n));
    t->ops = n;
    /* acq_rel: the last thread out sees every other thread's retires */
    if (atomic_fetch_add_explicit(&d->left, 1, memory_order_acq_rel) + 1 == t->r->threads) {
        BT(sync)(t);
        for (unsigned k = 0; k < DEFER_SLOTS; k++) {
            void *p = atomic_exchange_explicit(&d->slot[k], NULL, memory_order_acq_rel);
            if (p)
                BT_FREE(t, p);
        }
        BT(sync)(t);
    }
}
#define BT_DEFERRED BT(deferred)
#else
#define BT_DEFERRED NULL
#endif

/* ---- ctor: constructed objects (issue 16; struct bench_obj, bench_aux.h) --
 * p1 = B: B objects allocated (each used once), then freed in reverse
 * order; B = 1 is a pair.  An opaque barrier after each alloc (and its
 * construction) and after each free, as in pair-opaque, so no compiler can
 * drop or merge any of the construction's stores or carry the allocator's
 * state across the use. */
static inline struct bench_obj *BT(ctor_get)(struct tctx *t)
{
    struct bench_obj *o = BT(get)(t, "ctor");
#ifndef CT_HAS_CTOR
    bench_obj_ctor(o, NULL);
#endif
    BENCH_OPAQUE();
    return o;
}

static inline void BT(ctor_put)(struct tctx *t, struct bench_obj *o)
{
#ifndef CT_HAS_CTOR
    bench_obj_dtor(o, NULL);
#endif
    BT_FREE(t, o);
    BENCH_OPAQUE();
}

static void BT(ctor_round)(struct tctx *t, struct bench_obj **v, unsigned b, uint64_t n,
                           uint64_t *sum, uint64_t *bad)
{
    struct tctx tl = *t; /* see BT(pair) */
    if (b == 1) {
        struct bench_obj *o = BT(ctor_get)(&tl);
        *sum += bench_obj_use(o, n, bad);
        BT(ctor_put)(&tl, o);
        return;
    }
    for (unsigned i = 0; i < b; i++) {
        v[i] = BT(ctor_get)(&tl);
        *sum += bench_obj_use(v[i], n + i, bad);
    }
    for (unsigned i = b; i-- > 0;)
        BT(ctor_put)(&tl, v[i]);
}

static void BT(ctor)(struct tctx *t)
{
    unsigned b = t->r->p1 ? t->r->p1 : 1;
    struct bench_obj **v = malloc(sizeof(*v) * b);
    uint64_t sum = 0, bad = 0, n = 0;
    if (!v)
        abort();
    for (unsigned i = 0; i < 4 * BENCH_CHUNK; i += b) /* warm-up */
        BT(ctor_round)(t, v, b, i + 1, &sum, &bad);
    bench_wait_go(t);
    do {
        uint64_t goal = n + BENCH_CHUNK;
        while (n < goal) {
            BT(ctor_round)(t, v, b, n + 1, &sum, &bad);
            n += b;
        }
    } while (!bench_stopped(t, n));
    t->ops = n;
    t->checksum += sum;
    if (bad)
        atomic_fetch_add_explicit(&t->r->bad, bad, memory_order_relaxed);
    free(v);
}

/* ---- callgrind kernels: n allocs into v, n frees from v ------------------ */
static __attribute__((noinline, used)) void BT(cg_alloc)(struct tctx *t, void **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        v[i] = BT_ALLOC(t);
}

static __attribute__((noinline, used)) void BT(cg_free)(struct tctx *t, void **v, unsigned n)
{
    for (unsigned i = n; i-- > 0;)
        BT_FREE(t, v[i]);
}

/* Same kernels, a second copy, for the amortised (1000-object) count. */
static __attribute__((noinline, used)) void BT(cg_balloc)(struct tctx *t, void **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        v[i] = BT_ALLOC(t);
}

static __attribute__((noinline, used)) void BT(cg_bfree)(struct tctx *t, void **v, unsigned n)
{
    for (unsigned i = n; i-- > 0;)
        BT_FREE(t, v[i]);
}

static const struct wl_set BT(wl) = {
    .fn = {
        [WL_PAIR] = BT(pair),
        [WL_BATCH] = BT(batch),
        [WL_BULK] = BT(bulk),
        [WL_SPSC] = BT(spsc),
        [WL_XMALLOC] = BT(xmalloc),
        [WL_LARSON] = BT(larson),
        [WL_DEFERRED] = BT_DEFERRED,
        [WL_CTOR] = BT(ctor),
    },
    .cg_alloc = BT(cg_alloc),
    .cg_free = BT(cg_free),
    .prefix = BT_STR(CT),
    .cg_balloc = BT(cg_balloc),
    .cg_bfree = BT(cg_bfree),
    .mem_fill = BT(mem_fill),
    .mem_free = BT(mem_free),
    .churn_gen = BT(churn_gen),
    .churn_free_all = BT(churn_free_all),
};

#undef BT_DEFERRED
#undef BT_PUT_BULK
#undef BT_TOUCH
#undef BT_FREE
#undef BT_ALLOC
#undef BT
#undef BT_STR
#undef BT_STR2
#undef BT_CAT
#undef BT_CAT2
#undef CT_HAS_BULK
#undef CT_HAS_DEFERRED
#undef CT_HAS_CTOR
#undef CT
