/*
 * stress/reclaim.c — idle-thread reclaim racing busy and idle owners.
 *
 * Claim under test (src/cache/idle.c): magpool_cache_shrink, magpool_reap
 * and kmem_cache_shrink take back other threads' magazines and deferred
 * batches with the membarrier handshake while those threads run hits of
 * every kind or sit idle, and never take a magazine from under a hit in
 * flight: no object is handed out twice (duplicated) and none goes missing
 * (lost), and a cache's statistics stay exact (conservation at destroy).
 *
 * Design.  Owners (--threads, default 12) run tight loops of hits, one kind
 * per owner (its role), with a working set of up to --keep live objects per
 * pool kept across iterations, so their magazines hold a mix of rounds:
 *   inline   magpool_alloc / magpool_free expanded from magpool.h (this file
 *            is built with -O2: MAGPOOL_INLINE_HITS, printed in the banner;
 *            the sanitizer builds call the library instead);
 *   library  the same calls through function pointers (the library's
 *            exported magpool_alloc / magpool_free);
 *   bulk     magpool_alloc_bulk / magpool_free_bulk, runs of 1..16 (the
 *            inline bulk hits) and up to 24, now and then with MAGPOOL_ZERO;
 *   deferred magpool_free_deferred inside magpool_read_enter / _leave (the
 *            deferred-batch hit), magpool_synchronize every 256 of them;
 *   kmem     kmem_cache_alloc / _free, now and then the bulk calls and
 *            kmem_cache_free_rcu inside kmem_cache_rcu_read_lock;
 *   mem_pool mem_get / mem_get0 / mem_put.
 * One burst in six of every owner is a burst of single calls on a random
 * pool (inline for the core caches), so every thread holds several caches
 * (magpool_reap's all-caches pass).  Two of the four core caches have a
 * mag_min (32, 8): the reclaimers' shrinks resize magazines down, and these
 * keep runs of hits long whatever the shrinks do.
 * Half of the owners (the second half of the ids) go idle after one burst in
 * 16, still holding their working set and magazines: for 50 us .. 2 ms (one
 * time in 8 up to 20 ms), blocked either in pthread_cond_timedwait on a
 * condition variable that the reclaimers broadcast now and then (so some
 * wake right after a reclaim, into stopped or emptied state) or in
 * nanosleep.  The other half never stop.
 *
 * Reclaimers (--reclaimers, default 2) loop with short random pauses:
 * magpool_cache_shrink of a random cache (the program's core caches and the
 * core caches under its kmem_caches and mem_pool, found by name),
 * kmem_cache_shrink, magpool_reap, magpool_cache_stats.
 *
 * Detection.  Every object gets a cookie at alloc (stress_common.h: address,
 * owner id, pool, sequence number, two check words); the owner keeps the
 * exact id/sequence word it wrote next to the pointer and verifies it before
 * every free, and verifies its whole working set after every idle period: an
 * object handed to two owners at once is overwritten by the second and shows
 * as a damaged stamp.  The live table (stress_common.h) catches an object
 * handed out while it is still live.  Both count as duplicated.  Per owner
 * and pool the allocs and frees are counted.
 *
 * End.  At the deadline every owner frees its whole working set and parks on
 * a condition variable, alive.  The reclaimers stop; the main thread runs
 * magpool_reap() and checks that nothing is left in any thread's magazines
 * (every owner is idle: the reclaim must have taken all of it), then lets
 * the owners exit.  Checks: counted allocs == frees per pool, nothing marked
 * live, no duplicate, stats.allocs == counted allocs for each core cache,
 * conservation with in_use == 0 for every cache, magpool_cache_destroy
 * returns 0 (kmem_cache_destroy and mem_pool_destroy after in_use == 0 was
 * checked on their caches), and idle_reclaims > 0 summed over the caches
 * (idle_asked > 0 instead when MAGPOOL_MEMBARRIER=0).  The line
 * `reclaim: N lost, N duplicated objects` sums the failures of each kind;
 * the per-cache idle_reclaims / idle_busy / idle_asked are printed.
 *
 * Runs by time: 4 s by default, --long 120 s with 48 owners; --ops N runs
 * N operations instead (split over the owners), --seconds S sets the time.
 * --libc runs the owners on malloc/free (no reclaimers, no statistics).
 * Knobs: --keep N (working set per owner and pool), --reclaimers N, and to
 * narrow down a failure --roles MASK (inline 1, library 2, bulk 4, deferred
 * 8, kmem 16, mem_pool 32) and --mixed 0 (no bursts outside the role).
 *
 * It can fail: with the in-hit check of idle.c (R3) skipped (always take), every
 * run failed within 4 s (objects handed out while live, stamps of another
 * owner, a crash in the inline hit on a taken magazine); and it found that
 * mp_alloc_bulk_run ignored a hit that a reclaim had stopped (fixed).  With
 * layout 4 (the mark in top) and R3 skipped: 2 lost and 2 duplicated objects
 * in one of three runs, a foreign-pointer report in another.
 */
#include <sched.h>

#include "stress/stress_common.h"

ST_KMEM_CTOR(96)

/* The library's exported functions, never inlined: taking the address of a
 * gnu_inline function names the external definition (magpool.h). */
static void *(*volatile lib_alloc)(magpool_cache_t *) = magpool_alloc;
static void (*volatile lib_free)(magpool_cache_t *, void *) = magpool_free;

enum { P_C32, P_C64, P_C256, P_C1024, P_K96, P_K512, P_M48, NPOOLS };
#define NCORE 4 /* P_C32 .. P_C1024 */

static const struct spec {
    enum st_kind kind;
    size_t size;
    bool ctor;
    unsigned flags;
    unsigned mag_min; /* core caches: every shrink resizes magazines down, so
                       * two keep them large enough for runs of hits */
    const char *name;
} specs[NPOOLS] = {
    {ST_CORE, 32, false, 0, 32, "rs-core-32"},
    {ST_CORE, 64, true, 0, 0, "rs-core-64-ctor"},
    {ST_CORE, 256, false, 0, 8, "rs-core-256"},
    {ST_CORE, 1024, false, MAGPOOL_HWCACHE_ALIGN, 0, "rs-core-1024"},
    {ST_KMEM, 96, true, SLAB_HWCACHE_ALIGN, 0, "rs-kmem-96-ctor"},
    {ST_KMEM, 512, false, 0, 0, "rs-kmem-512"},
    {ST_MEMPOOL, 48, false, 0, 0, "rs-mem_pool-48"},
};

enum role { R_INLINE, R_LIB, R_BULK, R_DEFER, R_KMEM, R_MEMPOOL, NROLES };
static const char *const role_name[NROLES] = {"inline", "library", "bulk", "deferred", "kmem", "mem_pool"};

static struct st_pool pools[NPOOLS];
/* Every core cache of the program, the front ends' included (shrink targets
 * and statistics). */
static magpool_cache_t *cores[NPOOLS];
static struct st_opts opts = {.threads = 12, .seed = 11};
static uint64_t keep = 48, nreclaimers = 2, roles = (1u << NROLES) - 1, mixed = 1;

/* Idle owners block here; reclaimers broadcast it now and then. */
static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv;
/* End of run: owners park here (alive, idle) until `released`. */
static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static unsigned parked;
static bool released;
static _Atomic bool stop_reclaim;
static _Atomic long damaged; /* stamps found overwritten (duplicates) */
static _Atomic long leaked;  /* of those, objects not freed (see release) */

struct item {
    void *o;
    uint64_t w1; /* the cookie's id/sequence word as written */
};

struct owner {
    unsigned id;
    enum role role;
    bool idler;
    uint64_t rng, seq;
    struct item *ws[NPOOLS];
    size_t n[NPOOLS];
    uint64_t allocs[NPOOLS], frees[NPOOLS];
    uint64_t ops, idles, deferred, checked;
};

struct reclaimer {
    unsigned id;
    uint64_t rng;
    uint64_t shrinks, kshrinks, reaps, stats;
};

/* ---- allocation and free by API ------------------------------------------ */

static void *pool_alloc(struct owner *w, unsigned p, bool lib)
{
    struct st_pool *sp = &pools[p];
    switch (sp->kind) {
    case ST_CORE:
        return lib ? lib_alloc(sp->core) : magpool_alloc(sp->core);
    case ST_KMEM:
        return kmem_cache_alloc(sp->km, GFP_KERNEL);
    case ST_MEMPOOL:
        return st_below(&w->rng, 8) == 0 ? mem_get0(sp->mp) : mem_get(sp->mp);
    default:
        return st_alloc(sp);
    }
}

static void pool_free(unsigned p, void *o, bool lib)
{
    struct st_pool *sp = &pools[p];
    if (sp->kind == ST_CORE && lib)
        lib_free(sp->core, o);
    else
        st_free(sp, o); /* magpool_free (inline), kmem_cache_free, mem_put, free */
}

/* A new object o of pool p: constructed state, live mark, stamp, into the
 * working set (the caller made room). */
static void took(struct owner *w, unsigned p, void *o)
{
    struct st_pool *sp = &pools[p];
    if (sp->ctor && ((uint64_t *)o)[sp->size / 8 - 1] != ST_CTOR_MAGIC)
        st_fail("%s: object %p not in constructed state at alloc", sp->name, o);
    st_live_set(o);
    uint64_t seq = ++w->seq;
    st_cookie_write(o, sp->size, sp->ctor, w->id, p, seq);
    w->ws[p][w->n[p]++] = (struct item){o, st_cookie_w1(w->id, p, seq)};
    w->allocs[p]++;
}

/* Whether it is still ours, exactly as we stamped it. */
static bool intact(struct owner *w, unsigned p, const struct item *it)
{
    struct st_pool *sp = &pools[p];
    const char *why = st_cookie_check(it->o, sp->size, sp->ctor);
    uint64_t w1 = ((const uint64_t *)it->o)[1];
    if (why == NULL && w1 == it->w1)
        return true;
    atomic_fetch_add_explicit(&damaged, 1, memory_order_relaxed);
    st_fail("%s: owner %u: object %p: %s (stamp %#" PRIx64 ", ours %#" PRIx64 "): held by two owners?",
            sp->name, w->id, it->o, why ? why : "another owner's stamp", w1, it->w1);
    return false;
}

/* Take item i out of the working set of p, verified and unmarked: the object
 * to free, or NULL (damaged: leaked on purpose, since another owner holds it
 * too; counted as freed, and left out of the lost count). */
static void *release(struct owner *w, unsigned p, size_t i)
{
    struct item it = w->ws[p][i];
    w->ws[p][i] = w->ws[p][--w->n[p]];
    w->frees[p]++;
    if (!intact(w, p, &it)) {
        atomic_fetch_add_explicit(&leaked, 1, memory_order_relaxed);
        return NULL;
    }
    st_cookie_kill(it.o);
    st_live_clear(it.o);
    return it.o;
}

static void put_one(struct owner *w, unsigned p, size_t i, bool lib)
{
    void *o = release(w, p, i);
    if (o)
        pool_free(p, o, lib);
}

static bool get_one(struct owner *w, unsigned p, bool lib)
{
    void *o = pool_alloc(w, p, lib);
    if (o == NULL) {
        st_fail("%s: allocation failed: %s", pools[p].name, strerror(errno));
        return false;
    }
    took(w, p, o);
    return true;
}

/* ---- bursts ---------------------------------------------------------------- */

/* Single alloc/free hits on p (inline, library, kmem or mem_pool): the
 * working set drifts between empty and keep. */
static uint64_t burst_single(struct owner *w, unsigned p, bool lib)
{
    unsigned len = 1 + (unsigned)st_below(&w->rng, 96);
    for (unsigned i = 0; i < len; i++) {
        if (w->n[p] < keep && (w->n[p] == 0 || st_below(&w->rng, 100) < 55))
            get_one(w, p, lib);
        else
            put_one(w, p, st_below(&w->rng, w->n[p]), lib);
    }
    return len;
}

/* Bulk runs on a core cache (or, for kmem, the kmem bulk calls). */
static uint64_t burst_bulk(struct owner *w, unsigned p)
{
    struct st_pool *sp = &pools[p];
    void *objs[24];
    uint64_t ops = 0;
    for (unsigned round = 0; round < 4; round++) {
        size_t n = 1 + st_below(&w->rng, st_below(&w->rng, 4) ? 16 : 24);
        if (w->n[p] + n <= keep && st_below(&w->rng, 2)) {
            size_t got;
            if (sp->kind == ST_CORE) {
                /* ZERO takes the run path; not on a ctor cache (it would
                 * zero the constructed state). */
                unsigned fl = !sp->ctor && st_below(&w->rng, 16) == 0 ? MAGPOOL_ZERO : 0;
                got = magpool_alloc_bulk(sp->core, n, objs, fl);
            } else if (sp->kind == ST_KMEM) {
                got = (size_t)kmem_cache_alloc_bulk(sp->km, GFP_KERNEL, n, objs);
            } else {
                for (got = 0; got < n && (objs[got] = st_alloc(sp)) != NULL; got++)
                    ;
            }
            if (got != n) {
                st_fail("%s: bulk alloc of %zu returned %zu (%s)", sp->name, n, got, strerror(errno));
                for (size_t i = 0; i < got; i++)
                    st_free(sp, objs[i]);
                continue;
            }
            for (size_t i = 0; i < n; i++)
                took(w, p, objs[i]);
        } else {
            if (n > w->n[p])
                n = w->n[p];
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                void *o = release(w, p, st_below(&w->rng, w->n[p]));
                if (o)
                    objs[k++] = o;
            }
            if (sp->kind == ST_CORE)
                magpool_free_bulk(sp->core, k, objs);
            else if (sp->kind == ST_KMEM)
                kmem_cache_free_bulk(sp->km, k, objs);
            else
                for (size_t i = 0; i < k; i++)
                    st_free(sp, objs[i]);
        }
        ops += n;
    }
    return ops;
}

/* Allocate (inline), then free some deferred inside a read-side section of
 * the default domain (core caches; kmem_cache_free_rcu for kmem). */
static uint64_t burst_deferred(struct owner *w, unsigned p)
{
    struct st_pool *sp = &pools[p];
    unsigned a = 1 + (unsigned)st_below(&w->rng, 32);
    uint64_t ops = 0;
    for (unsigned i = 0; i < a && w->n[p] < keep; i++, ops++)
        get_one(w, p, false);
    unsigned f = 1 + (unsigned)st_below(&w->rng, 32);
    bool rcu = sp->kind == ST_KMEM;
    if (sp->kind == ST_CORE)
        magpool_read_enter(NULL);
    else if (rcu)
        kmem_cache_rcu_read_lock();
    for (unsigned i = 0; i < f && w->n[p] > 0; i++, ops++) {
        void *o = release(w, p, st_below(&w->rng, w->n[p]));
        if (o == NULL)
            continue;
        if (sp->kind == ST_CORE)
            magpool_free_deferred(sp->core, o);
        else if (rcu)
            kmem_cache_free_rcu(sp->km, o);
        else
            st_free(sp, o);
        w->deferred++;
    }
    if (sp->kind == ST_CORE)
        magpool_read_leave(NULL);
    else if (rcu)
        kmem_cache_rcu_read_unlock();
    if (w->deferred >= 256) {
        w->deferred = 0;
        if (rcu)
            kmem_cache_synchronize_rcu();
        else if (sp->kind == ST_CORE)
            magpool_synchronize(NULL);
    }
    return ops;
}

static uint64_t burst(struct owner *w)
{
    if (mixed && st_below(&w->rng, 6) == 0) /* every owner holds several caches */
        return burst_single(w, (unsigned)st_below(&w->rng, NPOOLS), false);
    unsigned core = (unsigned)st_below(&w->rng, NCORE);
    unsigned kmem = P_K96 + (unsigned)st_below(&w->rng, 2);
    switch (w->role) {
    case R_INLINE:
        return burst_single(w, core, false);
    case R_LIB:
        return burst_single(w, core, true);
    case R_BULK:
        return burst_bulk(w, core);
    case R_DEFER:
        return burst_deferred(w, core);
    case R_KMEM: {
        uint64_t r = st_below(&w->rng, 8);
        if (r == 0)
            return burst_bulk(w, kmem);
        if (r == 1)
            return burst_deferred(w, kmem);
        return burst_single(w, kmem, false);
    }
    default:
        return burst_single(w, P_M48, false);
    }
}

/* Verify the whole working set (after an idle period: a reclaim that took a
 * magazine under a hit would have handed one of these out again). */
static void verify_all(struct owner *w)
{
    for (unsigned p = 0; p < NPOOLS; p++)
        for (size_t i = 0; i < w->n[p];) {
            w->checked++;
            if (intact(w, p, &w->ws[p][i])) {
                i++;
                continue;
            }
            w->ws[p][i] = w->ws[p][--w->n[p]]; /* leaked, as in release */
            w->frees[p]++;
            atomic_fetch_add_explicit(&leaked, 1, memory_order_relaxed);
        }
}

static void go_idle(struct owner *w)
{
    uint64_t us = 50 + st_below(&w->rng, 1950);
    if (st_below(&w->rng, 8) == 0)
        us = 2000 + st_below(&w->rng, 18000);
    if (st_below(&w->rng, 2)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + us * 1000;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&idle_mu);
        pthread_cond_timedwait(&idle_cv, &idle_mu, &ts); /* a wake-up or the timeout: either */
        pthread_mutex_unlock(&idle_mu);
    } else {
        struct timespec d = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
        nanosleep(&d, NULL);
    }
    w->idles++;
    verify_all(w);
}

static void *owner_main(void *arg)
{
    struct owner *w = arg;
    for (unsigned p = 0; p < NPOOLS; p++)
        w->ws[p] = calloc(keep, sizeof(struct item));
    struct st_budget b;
    st_budget_init(&b, &opts, opts.threads);
    while (st_more(&b)) {
        b.ops += burst(w);
        if (w->idler && st_below(&w->rng, 16) == 0)
            go_idle(w);
    }
    /* Free everything, through the owner's own API. */
    verify_all(w);
    for (unsigned p = 0; p < NPOOLS; p++) {
        bool lib = w->role == R_LIB && pools[p].kind == ST_CORE;
        while (w->n[p])
            put_one(w, p, w->n[p] - 1, lib);
    }
    if (w->role == R_DEFER && !opts.libc)
        magpool_synchronize(NULL);
    w->ops = b.ops;
    /* Park, alive and idle, holding magazines: the main thread's final reap
     * must take them all. */
    pthread_mutex_lock(&park_mu);
    parked++;
    pthread_cond_broadcast(&park_cv);
    while (!released)
        pthread_cond_wait(&park_cv, &park_mu);
    pthread_mutex_unlock(&park_mu);
    for (unsigned p = 0; p < NPOOLS; p++)
        free(w->ws[p]);
    return NULL;
}

/* ---- reclaimers ------------------------------------------------------------- */

static void *reclaimer_main(void *arg)
{
    struct reclaimer *r = arg;
    while (!atomic_load_explicit(&stop_reclaim, memory_order_relaxed)) {
        uint64_t x = st_below(&r->rng, 100);
        if (x < 50) {
            magpool_cache_t *c = cores[st_below(&r->rng, NPOOLS)];
            if (magpool_cache_shrink(c) != 0)
                st_fail("magpool_cache_shrink(%s) failed: %s", magpool_cache_name(c), strerror(errno));
            r->shrinks++;
        } else if (x < 65) {
            struct kmem_cache *k = pools[P_K96 + st_below(&r->rng, 2)].km;
            if (kmem_cache_shrink(k) != 0)
                st_fail("kmem_cache_shrink failed: %s", strerror(errno));
            r->kshrinks++;
        } else if (x < 80) {
            magpool_reap();
            r->reaps++;
        } else if (x < 90) {
            struct magpool_stats s;
            if (magpool_cache_stats(cores[st_below(&r->rng, NPOOLS)], &s) != 0)
                st_fail("magpool_cache_stats failed: %s", strerror(errno));
            r->stats++;
        } else {
            pthread_mutex_lock(&idle_mu);
            pthread_cond_broadcast(&idle_cv); /* wake idle owners right after a reclaim */
            pthread_mutex_unlock(&idle_mu);
        }
        if (st_below(&r->rng, 4) == 0) {
            sched_yield();
        } else {
            struct timespec d = {0, (long)(st_below(&r->rng, 300) * 1000)};
            nanosleep(&d, NULL);
        }
    }
    return NULL;
}

/* ---- statistics -------------------------------------------------------------- */

struct idle_sum {
    uint64_t reclaims, busy, asked, in_magazines;
    bool print;
};

static int idle_each(magpool_cache_t *c, void *arg)
{
    struct idle_sum *a = arg;
    struct magpool_stats s;
    if (magpool_cache_stats(c, &s) != 0)
        return 0;
    a->reclaims += s.idle_reclaims;
    a->busy += s.idle_busy;
    a->asked += s.idle_asked;
    a->in_magazines += s.in_magazines;
    if (a->print && (s.idle_reclaims || s.idle_busy || s.idle_asked || s.in_magazines))
        printf("  %-18s idle_reclaims %8" PRIu64 "  idle_busy %6" PRIu64 "  idle_asked %6" PRIu64
               "  in_magazines %" PRIu64 "\n",
               s.name, s.idle_reclaims, s.idle_busy, s.idle_asked, s.in_magazines);
    return 0;
}

static int find_core(magpool_cache_t *c, void *arg)
{
    (void)arg;
    for (unsigned p = 0; p < NPOOLS; p++)
        if (strcmp(magpool_cache_name(c), specs[p].name) == 0)
            cores[p] = c;
    return 0;
}

int main(int argc, char **argv)
{
    struct st_knob knobs[] = {
        {"keep", &keep, 0, "live objects an owner keeps per pool", false},
        {"reclaimers", &nreclaimers, 0, "threads looping shrink / reap", false},
        {"roles", &roles, 0, "owner roles to run, a bit mask of inline 1, library 2, bulk 4, deferred 8, kmem 16, mem_pool 32", false},
        {"mixed", &mixed, 0, "1: one burst in six on a random pool; 0: each owner sticks to its role's pools", false},
        {0},
    };
    bool by_count = false;
    for (int i = 1; i < argc; i++)
        by_count |= strncmp(argv[i], "--ops", 5) == 0 || strncmp(argv[i], "--seconds", 9) == 0;
    st_parse(argc, argv, &opts, 48, 0, knobs);
    if (!by_count)
        opts.seconds = opts.long_mode ? 120 : 4;
    if (keep == 0)
        keep = 1;
    st_banner("reclaim", &opts);
    printf("reclaim: %u owners (%u idle now and then), %" PRIu64 " reclaimers, keep %" PRIu64
           ", inline hits %s\n",
           opts.threads, opts.threads / 2, opts.libc ? 0 : nreclaimers, keep,
           MAGPOOL_INLINE_HITS ? "on" : "off (library calls)");
    st_live_init(22);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&idle_cv, &ca);
    pthread_condattr_destroy(&ca);

    for (unsigned p = 0; p < NPOOLS; p++) {
        const struct spec *s = &specs[p];
        struct magpool_config cfg = {.flags = s->flags, .mag_min = s->mag_min,
                                     .ctor = s->ctor && s->kind == ST_CORE ? st_ctor_core : NULL};
        int r = st_pool_init(&pools[p], s->kind, s->size, opts.libc, &cfg,
                             s->ctor && s->kind == ST_KMEM ? st_kctor_96 : NULL, "%s", s->name);
        CHECK_MSG(r == 0, "create %s: %s", s->name, strerror(errno));
        if (r)
            return check_done();
    }
    if (!opts.libc) {
        magpool_cache_foreach(find_core, NULL);
        for (unsigned p = 0; p < NPOOLS; p++)
            CHECK_MSG(cores[p] != NULL, "no core cache named %s", specs[p].name);
        if (check_failed)
            return check_done();
    }

    unsigned role_list[NROLES], nroles = 0;
    for (unsigned r = 0; r < NROLES; r++)
        if (roles & (1u << r))
            role_list[nroles++] = r;
    if (nroles == 0)
        role_list[nroles++] = R_INLINE;
    struct owner *ws = calloc(opts.threads, sizeof *ws);
    for (unsigned i = 0; i < opts.threads; i++)
        ws[i] = (struct owner){.id = i, .role = (enum role)role_list[i % nroles], .idler = i >= opts.threads / 2,
                               .rng = st_rng_seed(opts.seed, i)};
    unsigned nrec = opts.libc ? 0 : (unsigned)nreclaimers;
    struct reclaimer *rs = calloc(nrec ? nrec : 1, sizeof *rs);
    pthread_t *ot = calloc(opts.threads, sizeof *ot), *rt = calloc(nrec ? nrec : 1, sizeof *rt);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    double t0 = st_now();
    for (unsigned i = 0; i < nrec; i++) {
        rs[i] = (struct reclaimer){.id = i, .rng = st_rng_seed(opts.seed, 1000 + i)};
        if (pthread_create(&rt[i], &attr, reclaimer_main, &rs[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    for (unsigned i = 0; i < opts.threads; i++)
        if (pthread_create(&ot[i], &attr, owner_main, &ws[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    pthread_attr_destroy(&attr);

    /* Every owner done and parked (reclaimers race the final frees too). */
    pthread_mutex_lock(&park_mu);
    while (parked < opts.threads)
        pthread_cond_wait(&park_cv, &park_mu);
    pthread_mutex_unlock(&park_mu);
    atomic_store_explicit(&stop_reclaim, true, memory_order_relaxed);
    for (unsigned i = 0; i < nrec; i++)
        pthread_join(rt[i], NULL);
    double secs = st_now() - t0;

    struct idle_sum before = {0}, after = {0};
    if (!opts.libc) {
        /* The owners are alive and idle: one reap takes everything they hold. */
        magpool_cache_foreach(idle_each, &before);
        magpool_reap();
        after.print = !opts.quiet;
        if (after.print)
            printf("reclaim: after the final reap (owners parked):\n");
        magpool_cache_foreach(idle_each, &after);
        CHECK_MSG(after.in_magazines == 0 || after.asked > 0,
                  "%" PRIu64 " objects still in idle owners' magazines after magpool_reap", after.in_magazines);
    }
    pthread_mutex_lock(&park_mu);
    released = true;
    pthread_cond_broadcast(&park_cv);
    pthread_mutex_unlock(&park_mu);
    for (unsigned i = 0; i < opts.threads; i++)
        pthread_join(ot[i], NULL);

    uint64_t allocs[NPOOLS] = {0}, frees[NPOOLS] = {0}, ops = 0, idles = 0, checked = 0;
    uint64_t role_ops[NROLES] = {0};
    for (unsigned i = 0; i < opts.threads; i++) {
        for (unsigned p = 0; p < NPOOLS; p++) {
            allocs[p] += ws[i].allocs[p];
            frees[p] += ws[i].frees[p];
        }
        ops += ws[i].ops;
        role_ops[ws[i].role] += ws[i].ops;
        idles += ws[i].idles;
        checked += ws[i].checked;
    }
    uint64_t shrinks = 0, kshrinks = 0, reaps = 0, stats = 0;
    for (unsigned i = 0; i < nrec; i++) {
        shrinks += rs[i].shrinks;
        kshrinks += rs[i].kshrinks;
        reaps += rs[i].reaps;
        stats += rs[i].stats;
    }
    printf("reclaim: owners: %" PRIu64 " idle periods, %" PRIu64 " stamps verified after idling; ops by role:",
           idles, checked);
    for (unsigned r = 0; r < NROLES; r++)
        printf(" %s %" PRIu64, role_name[r], role_ops[r]);
    printf("\nreclaim: reclaimers: %" PRIu64 " magpool_cache_shrink, %" PRIu64 " kmem_cache_shrink, %" PRIu64
           " magpool_reap, %" PRIu64 " stats\n",
           shrinks, kshrinks, reaps, stats);

    /* Lost: objects allocated and not freed by the count, or that the cache
     * still counts in use, or that its equation misses.  Duplicated: stamps
     * overwritten, or handed out while live. */
    uint64_t lost = 0, in_use = 0;
    for (unsigned p = 0; p < NPOOLS; p++) {
        CHECK_MSG(allocs[p] == frees[p], "%s: %" PRIu64 " allocs != %" PRIu64 " frees", specs[p].name, allocs[p],
                  frees[p]);
        lost += allocs[p] > frees[p] ? allocs[p] - frees[p] : frees[p] - allocs[p];
    }
    CHECK_MSG(ST_LOAD(&st_live_count) == 0, "%ld objects still marked live", ST_LOAD(&st_live_count));
    if (!opts.libc) {
        magpool_synchronize(NULL);
        for (unsigned p = 0; p < NPOOLS; p++) {
            struct magpool_stats s;
            if (magpool_cache_stats(cores[p], &s) != 0) {
                CHECK_MSG(false, "%s: stats failed", specs[p].name);
                continue;
            }
            uint64_t sum = s.in_slabs + s.in_magazines + s.in_depot + s.deferred + s.in_use;
            in_use += s.in_use;
            lost += sum > s.constructed ? sum - s.constructed : s.constructed - sum;
            if (specs[p].kind == ST_CORE)
                CHECK_MSG(s.allocs == allocs[p], "%s: stats.allocs %" PRIu64 " != %" PRIu64 " counted", s.name,
                          s.allocs, allocs[p]);
        }
        /* Damaged objects were not freed: in use, but counted as duplicated. */
        uint64_t kept = (uint64_t)ST_LOAD(&leaked);
        lost += in_use > kept ? in_use - kept : 0;
        st_check_all_caches(0, !opts.quiet);
        printf("reclaim: idle_reclaims %" PRIu64 ", idle_busy %" PRIu64 ", idle_asked %" PRIu64
               " during the run (all caches); the final reap took %" PRIu64 " more\n",
               before.reclaims, before.busy, before.asked, after.reclaims - before.reclaims);
        const char *mb = getenv("MAGPOOL_MEMBARRIER");
        if (mb != NULL && strcmp(mb, "0") == 0)
            CHECK_MSG(before.asked > 0, "no reclaim asked the owners (degraded mode)");
        else
            CHECK_MSG(before.reclaims > 0, "no idle-thread reclaim took anything during the run");
        if (before.busy == 0)
            printf("reclaim: note: no reclaim found an owner inside a hit this run\n");
    }
    long dups = ST_LOAD(&st_live_dups) + ST_LOAD(&damaged);
    printf("reclaim: %" PRIu64 " lost, %ld duplicated objects\n", lost, dups);
    CHECK(lost == 0);
    CHECK(dups == 0);

    for (unsigned p = 0; p < NPOOLS; p++) {
        if (pools[p].kind == ST_CORE) {
            long live = magpool_cache_destroy(pools[p].core);
            CHECK_MSG(live == 0, "%s: magpool_cache_destroy reports %ld live", specs[p].name, live);
            pools[p].core = NULL;
        } else {
            st_pool_fini(&pools[p]); /* in_use == 0 checked above on their caches */
        }
    }
    free(ws);
    free(rs);
    free(ot);
    free(rt);
    st_live_fini();
    return st_finish("reclaim", ops, secs);
}
