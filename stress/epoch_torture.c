/*
 * stress/epoch_torture.c — deferred frees against live readers, both domains.
 *
 * Claim under test (src/memory/reclaim.c, invariants R1..R10): an object freed with
 * magpool_free_deferred is not reused while any read-side section that was
 * open at the free is still open (R2 + R3 for the ck_epoch domain; the same
 * guarantee through call_rcu for a liburcu domain), grace periods are seen
 * by ThreadSanitizer (R10), magpool_synchronize leaves nothing pending that
 * was retired before it (R6), and a thread that exits leaves nothing of its
 * own pending (R8).
 *
 * Design.  Two core caches of 64-byte objects, one in the default domain
 * (ck_epoch), one in magpool_domain_urcu(&urcu_memb_flavor).  Each domain
 * has K published pointers (_Atomic, one per slot).  Every thread registers
 * with urcu-memb (liburcu requires it of readers and of call_rcu callers).
 *   Writers (a quarter of --threads, at least one per domain) loop: allocate
 *   an object, stamp it with a fresh generation (a global counter: the
 *   "allocator-side" cookie, written only when an object is handed out
 *   again) and a payload derived from it, publish it by exchange into a
 *   random slot, and retire the old occupant with magpool_free_deferred.
 *   Now and then a writer calls magpool_synchronize (never inside a section).
 *   Readers loop: enter a section, load a slot, read the generation g1,
 *   verify the payload matches g1, linger (re-reading; one section in 64
 *   yields the CPU inside the section so writers run many cycles meanwhile),
 *   read the generation again: if it changed, the object was reused while a
 *   section that could see it was open — a reclamation bug (R3 violated).
 *   The payload is plain memory: if the grace period were not annotated for
 *   TSan (R10) the allocator's reuse would show as a data race.
 * A sampler thread reads stats.deferred of both caches every millisecond
 * and reports the peak number of unreclaimed objects per domain.
 * After the run: writers have exited, so for the ck domain deferred == 0
 * already (R8); after magpool_synchronize of each domain deferred == 0 for
 * both (R6); conservation exact and in_use == K published objects, then 0
 * once the main thread retires them and synchronizes again.
 *
 * --libc: the same readers and writers on malloc, retiring with
 * urcu_memb_call_rcu(free) — what an application without magpool writes.
 * (liburcu is not instrumented for TSan: run --libc without TSan.)
 */
#include <sched.h>
#include <urcu/urcu-memb.h>

#include "stress/stress_common.h"

#define K 64
#define PAYLOAD 6

struct tobj {
    _Atomic uint64_t gen;       /* set when handed out; changes only on reuse */
    uint64_t payload[PAYLOAD];  /* st_mix(gen + i): plain memory */
    struct rcu_head head;       /* --libc only: call_rcu */
};

struct domain {
    const char *name;
    magpool_domain_t *d;
    magpool_cache_t *c;
    _Atomic(struct tobj *) slot[K];
    _Atomic uint64_t peak_deferred, sections, retired;
};

static struct domain doms[2];
static struct st_opts opts = {.threads = 16, .ops = 1000000, .seed = 11};
static _Atomic uint64_t next_gen = 1;
static _Atomic unsigned writers_left;
static unsigned nwriters;

struct worker {
    unsigned id;
    uint64_t rng;
    bool writer;
    struct domain *dom;
};

static void enter(struct domain *m)
{
    if (opts.libc)
        urcu_memb_read_lock();
    else
        magpool_read_enter(m->d);
}

static void leave(struct domain *m)
{
    if (opts.libc)
        urcu_memb_read_unlock();
    else
        magpool_read_leave(m->d);
}

static void libc_free_cb(struct rcu_head *h)
{
    free((char *)h - offsetof(struct tobj, head));
}

static struct tobj *make(struct domain *m)
{
    struct tobj *o = opts.libc ? malloc(sizeof *o) : magpool_alloc(m->c);
    if (!o)
        return NULL;
    uint64_t g = atomic_fetch_add_explicit(&next_gen, 1, memory_order_relaxed);
    for (int i = 0; i < PAYLOAD; i++)
        o->payload[i] = st_mix(g + (uint64_t)i);
    atomic_store_explicit(&o->gen, g, memory_order_relaxed);
    return o;
}

static void retire(struct domain *m, struct tobj *o)
{
    if (opts.libc)
        urcu_memb_call_rcu(&o->head, libc_free_cb);
    else
        magpool_free_deferred(m->c, o);
}

static void *writer_main(struct worker *w)
{
    struct domain *m = w->dom;
    struct st_budget b;
    st_budget_init(&b, &opts, opts.threads);
    while (st_more(&b)) {
        b.ops++;
        struct tobj *o = make(m);
        if (!o) {
            st_fail("%s: alloc failed: %s", m->name, strerror(errno));
            break;
        }
        /* acq_rel: release publishes gen and payload to readers' acquire
         * load of the slot; acquire orders our later retire of the old
         * object after the unlink (R2 needs unlink-before-retire).  Weakened,
         * a reader could see the pointer before the payload. */
        struct tobj *old = atomic_exchange_explicit(&m->slot[st_below(&w->rng, K)], o,
                                                    memory_order_acq_rel);
        if (old) {
            retire(m, old);
            atomic_fetch_add_explicit(&m->retired, 1, memory_order_relaxed);
        }
        if (!opts.libc && st_below(&w->rng, 4096) == 0)
            magpool_synchronize(m->d);
    }
    /* release: pairs with the readers' acquire load; nothing but "the
     * writers are done" travels through it (weakened: still correct). */
    atomic_fetch_sub_explicit(&writers_left, 1, memory_order_release);
    return NULL;
}

static void *reader_main(struct worker *w)
{
    struct domain *m = w->dom;
    uint64_t n = 0;
    /* acquire: pairs with the writers' final release, so the readers stop
     * only after the last retire (nothing ordered through it but exit). */
    while (atomic_load_explicit(&writers_left, memory_order_acquire) > 0) {
        enter(m);
        /* acquire: pairs with the writer's acq_rel exchange (payload visible). */
        struct tobj *o = atomic_load_explicit(&m->slot[st_below(&w->rng, K)], memory_order_acquire);
        if (o) {
            uint64_t g1 = atomic_load_explicit(&o->gen, memory_order_relaxed);
            unsigned linger = 1 + (unsigned)st_below(&w->rng, 32);
            for (unsigned r = 0; r < linger; r++)
                for (int i = 0; i < PAYLOAD; i++)
                    if (o->payload[i] != st_mix(g1 + (uint64_t)i)) {
                        st_fail("%s: object %p payload changed inside a section (R3)", m->name,
                                (void *)o);
                        r = linger;
                        break;
                    }
            if (st_below(&w->rng, 64) == 0)
                sched_yield(); /* let writers cycle while we hold o */
            uint64_t g2 = atomic_load_explicit(&o->gen, memory_order_relaxed);
            if (g1 != g2)
                st_fail("%s: object %p reused inside a read-side section: gen %" PRIu64 " -> %" PRIu64
                        " (R2/R3)", m->name, (void *)o, g1, g2);
        }
        leave(m);
        n++;
    }
    atomic_fetch_add_explicit(&m->sections, n, memory_order_relaxed);
    return NULL;
}

static void *thread_main(void *arg)
{
    struct worker *w = arg;
    urcu_memb_register_thread();
    if (w->writer)
        writer_main(w);
    else
        reader_main(w);
    urcu_memb_unregister_thread();
    return NULL;
}

static _Atomic bool sampling;

static void *sampler_main(void *arg)
{
    (void)arg;
    while (atomic_load_explicit(&sampling, memory_order_relaxed)) {
        for (int i = 0; i < 2; i++) {
            struct magpool_stats s;
            if (magpool_cache_stats(doms[i].c, &s) == 0 &&
                s.deferred > atomic_load_explicit(&doms[i].peak_deferred, memory_order_relaxed))
                atomic_store_explicit(&doms[i].peak_deferred, s.deferred, memory_order_relaxed);
        }
        usleep(1000);
    }
    return NULL;
}

static uint64_t deferred_of(struct domain *m)
{
    struct magpool_stats s = {0};
    magpool_cache_stats(m->c, &s);
    return s.deferred;
}

int main(int argc, char **argv)
{
    st_parse(argc, argv, &opts, 64, 100000000, NULL);
    if (opts.threads < 4)
        opts.threads = 4;
    st_banner("epoch_torture", &opts);
    urcu_memb_register_thread();
    doms[0].name = "ck_epoch";
    doms[0].d = magpool_domain_default();
    doms[1].name = "urcu-memb";
    doms[1].d = opts.libc ? NULL : magpool_domain_urcu(&urcu_memb_flavor);
    CHECK_MSG(opts.libc || (doms[0].d && doms[1].d), "domains: %s", strerror(errno));
    CHECK(opts.libc || magpool_domain_urcu(&urcu_memb_flavor) == doms[1].d);
    for (int i = 0; i < 2 && !opts.libc; i++) {
        struct magpool_config cfg = {.name = i ? "epoch-urcu" : "epoch-ck",
                                     .size = sizeof(struct tobj), .domain = doms[i].d};
        doms[i].c = magpool_cache_create(&cfg);
        CHECK_MSG(doms[i].c != NULL, "create %s: %s", cfg.name, strerror(errno));
        if (!doms[i].c)
            return check_done();
    }
    nwriters = opts.threads / 4 < 2 ? 2 : opts.threads / 4;
    ST_STORE(&writers_left, nwriters);
    struct worker *ws = calloc(opts.threads, sizeof *ws);
    for (unsigned i = 0; i < opts.threads; i++)
        ws[i] = (struct worker){.id = i, .rng = st_rng_seed(opts.seed, i), .writer = i < nwriters,
                                .dom = &doms[i & 1]};
    /* writers' ops budget: opts.ops is split over the writers only */
    unsigned save_threads = opts.threads;
    opts.threads = nwriters;
    pthread_t sampler;
    ST_STORE(&sampling, !opts.libc);
    if (!opts.libc)
        pthread_create(&sampler, NULL, sampler_main, NULL);
    double t0 = st_now();
    pthread_t *t = calloc(save_threads, sizeof *t);
    for (unsigned i = 0; i < save_threads; i++)
        pthread_create(&t[i], NULL, thread_main, &ws[i]);
    for (unsigned i = 0; i < save_threads; i++)
        pthread_join(t[i], NULL);
    double secs = st_now() - t0;
    opts.threads = save_threads;
    ST_STORE(&sampling, false);
    if (!opts.libc)
        pthread_join(sampler, NULL);

    uint64_t ops = 0;
    for (int i = 0; i < 2; i++)
        ops += ST_LOAD(&doms[i].sections) + ST_LOAD(&doms[i].retired);
    if (!opts.libc) {
        /* R8: every writer has exited; its deferred frees have run. */
        uint64_t ck_left = deferred_of(&doms[0]);
        CHECK_MSG(ck_left == 0, "R8: %" PRIu64 " deferred objects of exited threads still pending (ck)",
                  ck_left);
        for (int i = 0; i < 2; i++) {
            magpool_synchronize(doms[i].d);
            uint64_t left = deferred_of(&doms[i]);
            CHECK_MSG(left == 0, "R6: %" PRIu64 " deferred after magpool_synchronize (%s)", left,
                      doms[i].name);
            st_check_conservation(doms[i].c, K, !opts.quiet);
        }
    }
    /* Retire what is still published, wait, and everything is back. */
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < K; k++) {
            struct tobj *o = atomic_exchange_explicit(&doms[i].slot[k], NULL, memory_order_acq_rel);
            if (o)
                retire(&doms[i], o);
        }
        if (!opts.libc) {
            magpool_synchronize(doms[i].d);
            CHECK(deferred_of(&doms[i]) == 0);
            st_check_conservation(doms[i].c, 0, false);
        }
    }
    if (opts.libc)
        urcu_memb_barrier();
    for (int i = 0; i < 2; i++) {
        printf("epoch_torture: %-9s %10" PRIu64 " read sections, %10" PRIu64
               " deferred frees, peak unreclaimed %" PRIu64 "\n",
               doms[i].name, ST_LOAD(&doms[i].sections), ST_LOAD(&doms[i].retired),
               ST_LOAD(&doms[i].peak_deferred));
        if (!opts.libc)
            CHECK(magpool_cache_destroy(doms[i].c) == 0);
    }
    CHECK(ST_LOAD(&doms[0].sections) > 0 && ST_LOAD(&doms[1].sections) > 0);
    free(ws);
    free(t);
    urcu_memb_unregister_thread();
    return st_finish("epoch_torture", ops, secs);
}
