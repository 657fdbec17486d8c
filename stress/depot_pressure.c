/*
 * stress/depot_pressure.c — depot and magazine pressure.
 *
 * Claim under test: the lock-free depot and the magazine layer stay correct
 * when every operation goes through them — tiny magazines, constant
 * full/empty exchanges, magazines resized under contention, caches created
 * and destroyed next to busy ones, and shrink/reap tearing magazines and
 * slabs down while other threads allocate.
 *
 * Design.  Four shared core caches:
 *   "mag1"      mag_min = mag_max = 1   (every 2nd alloc/free hits the depot)
 *   "mag3"      mag_min = mag_max = 3
 *   "mag1-ctor" mag_min = mag_max = 1, with a constructor (state checked)
 *   "grow"      mag_min = 1, mag_max = 143: starts at 1 and must grow when
 *               the depot sees contention
 * --threads workers run batches against a random cache: allocate k objects
 * (k up to twice the magazine size plus 3, so magazines run dry and overflow
 * in one batch), write cookies, free them in random order; a quarter of the
 * objects go through shared slots and are freed by another thread.
 * At the same time:
 *   - a creator thread creates a fresh cache (random size and magazine
 *     bounds), publishes it to two helper threads, which allocate and free
 *     on it (leaving their magazines loaded), waits for them, and destroys
 *     it: destroy must report 0 live objects while other threads still hold
 *     magazines for it, over and over;
 *   - a reaper thread loops magpool_reap(), magpool_cache_shrink() of a
 *     random shared cache and a magpool_cache_foreach() stats walk; the
 *     shrinks release the depots' backlogs (depot.c) while workers push
 *     through them, and the walk checks no backlog exceeds its slots (plus
 *     one per push in flight).
 * Workers keep going until at least --cycles ephemeral caches have come and
 * gone (20; --long 200), so the side threads overlap them on 2 cores.
 * Afterwards: conservation exact and in_use == 0 for every cache; the tiny
 * caches did depot exchanges; "grow" resized (if the main run produced no
 * resize, extra rounds of contention on "grow" alone are run, up to 20,
 * before the check).  Cookies and the live table are checked throughout.
 * --libc runs the worker part on malloc (creator/reaper have no equivalent).
 */
#include <sched.h>

#include "stress/stress_common.h"

#define NCACHES 4
#define NHELP 2
static struct st_pool pools[NCACHES];
static struct st_opts opts = {.threads = 16, .ops = 8000000, .seed = 3};
static uint64_t min_cycles = 20;
static _Atomic bool creator_done;
static _Atomic(void *) slots[1024];
static _Atomic bool stop;
static _Atomic uint64_t total_ops, eph_cycles;
static _Atomic(magpool_cache_t *) eph;
static _Atomic unsigned eph_gen, eph_done;
static size_t eph_size;
static bool only_grow;

struct worker {
    unsigned id;
    uint64_t rng, seq;
};

static void put_any(void *o)
{
    if (((uint64_t *)o)[0] != ((uint64_t)(uintptr_t)o ^ ST_MAGIC)) {
        st_fail("object %p: address word damaged", o);
        return;
    }
    unsigned pi = st_cookie_pool(o);
    if (pi >= NCACHES) {
        st_fail("object %p: pool %u out of range", o, pi);
        return;
    }
    st_put(&pools[pi], o);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct st_budget b;
    st_budget_init(&b, &opts, opts.threads);
    void *batch[300];
    uint64_t ops = 0;
    /* Keep going until the side threads have overlapped with us for a
     * while: on 2 cores, 16 busy workers can starve them. */
    while (st_more(&b) ||
           (!opts.libc && !only_grow && atomic_load_explicit(&eph_cycles, memory_order_relaxed) < min_cycles &&
            !atomic_load_explicit(&creator_done, memory_order_relaxed))) {
        unsigned pi = only_grow ? 3 : (unsigned)st_below(&w->rng, NCACHES);
        struct st_pool *p = &pools[pi];
        struct magpool_stats s = {.mag_size = 8};
        if (p->core && st_below(&w->rng, 64) == 0)
            magpool_cache_stats(p->core, &s);
        size_t k = 1 + st_below(&w->rng, 2 * (s.mag_size < 143 ? s.mag_size : 143) + 3);
        for (size_t i = 0; i < k; i++) {
            batch[i] = st_get(p, pi, w->id, ++w->seq);
            if (!batch[i]) {
                st_fail("%s: alloc failed: %s", p->name, strerror(errno));
                k = i;
                break;
            }
        }
        for (size_t i = k; i > 0; i--) {
            size_t j = st_below(&w->rng, i);
            void *o = batch[j];
            batch[j] = batch[i - 1];
            if (st_below(&w->rng, 4) == 0) {
                /* acq_rel: publishes o's cookie to the taker, and makes the
                 * cookie of what we take visible (weakened: stale reads). */
                o = atomic_exchange_explicit(&slots[st_below(&w->rng, 1024)], o,
                                             memory_order_acq_rel);
                if (!o)
                    continue;
            }
            put_any(o);
        }
        b.ops += 2 * k;
        ops += 2 * k;
    }
    atomic_fetch_add_explicit(&total_ops, ops, memory_order_relaxed);
    return NULL;
}

static void *creator_main(void *arg)
{
    uint64_t rng = st_rng_seed(opts.seed, 1000);
    (void)arg;
    unsigned cycle = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned mmin = 1 + (unsigned)st_below(&rng, 15);
        struct magpool_config cfg = {
            .name = "ephemeral",
            .size = 16 + 8 * st_below(&rng, 256),
            .mag_min = mmin,
            .mag_max = mmin + (unsigned)st_below(&rng, 30),
        };
        magpool_cache_t *c = magpool_cache_create(&cfg);
        if (!c) {
            st_fail("ephemeral cache create failed: %s", strerror(errno));
            break;
        }
        eph_size = cfg.size;
        atomic_store_explicit(&eph, c, memory_order_relaxed);
        /* release: publishes c (and eph_size) to the helpers' acquire load
         * of eph_gen; weakened, a helper could use a cache not yet created. */
        atomic_fetch_add_explicit(&eph_gen, 1, memory_order_release);
        cycle++;
        /* acquire: pairs with the helpers' release increment of eph_done, so
         * their allocs and frees happen before the destroy (the contract:
         * destroy only after every other use). */
        while (atomic_load_explicit(&eph_done, memory_order_acquire) < NHELP * cycle) {
            if (atomic_load_explicit(&stop, memory_order_relaxed) &&
                atomic_load_explicit(&eph_done, memory_order_acquire) >= NHELP * cycle)
                break;
            sched_yield();
        }
        long live = magpool_cache_destroy(c);
        if (live != 0)
            st_fail("ephemeral cache destroy: %ld live objects", live);
        atomic_fetch_add_explicit(&eph_cycles, 1, memory_order_relaxed);
    }
    atomic_store_explicit(&creator_done, true, memory_order_relaxed);
    atomic_store_explicit(&eph, NULL, memory_order_relaxed);
    atomic_fetch_add_explicit(&eph_gen, 1, memory_order_release); /* wake helpers */
    return NULL;
}

static void *helper_main(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = st_rng_seed(opts.seed, 2000 + id);
    unsigned last = 0;
    void *objs[64];
    for (;;) {
        /* acquire: pairs with the creator's release of eph_gen. */
        unsigned g = atomic_load_explicit(&eph_gen, memory_order_acquire);
        if (g == last) {
            sched_yield();
            continue;
        }
        last = g;
        magpool_cache_t *c = atomic_load_explicit(&eph, memory_order_relaxed);
        if (!c)
            return NULL;
        size_t n = 1 + st_below(&rng, 64);
        for (size_t i = 0; i < n; i++) {
            objs[i] = magpool_alloc(c);
            if (!objs[i]) {
                st_fail("ephemeral alloc failed: %s", strerror(errno));
                n = i;
                break;
            }
            st_cookie_write(objs[i], eph_size, false, 60 + id, 0, i);
        }
        for (size_t i = 0; i < n; i++) {
            const char *why = st_cookie_check(objs[i], eph_size, false);
            if (why)
                st_fail("ephemeral object %p: %s", objs[i], why);
            magpool_free(c, objs[i]);
        }
        /* release: our uses of c happen before the creator's destroy. */
        atomic_fetch_add_explicit(&eph_done, 1, memory_order_release);
    }
}

static uint64_t backlog_peak; /* reaper thread only: most backlog magazines seen in one cache */

static int stats_each(magpool_cache_t *c, void *arg)
{
    struct magpool_stats s;
    (void)arg;
    if (magpool_cache_stats(c, &s) != 0)
        st_fail("stats of a live cache failed: %s", strerror(errno));
    /* The count is raised before a push's exchange and lowered after the
     * displaced magazine is out (depot.c, DB4): pushes in flight add one each. */
    if (s.backlog_mags > s.backlog_slots + opts.threads + NHELP + 1)
        st_fail("%s: backlog holds %llu magazines, more than its %u slots and the pushes in flight",
                s.name, (unsigned long long)s.backlog_mags, s.backlog_slots);
    if (s.backlog_mags > backlog_peak)
        backlog_peak = s.backlog_mags;
    return 0;
}

static void *reaper_main(void *arg)
{
    uint64_t rng = st_rng_seed(opts.seed, 3000);
    uint64_t n = 0;
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        switch (st_below(&rng, 3)) {
        case 0:
            magpool_reap();
            break;
        case 1:
            if (magpool_cache_shrink(pools[st_below(&rng, NCACHES)].core) != 0)
                st_fail("shrink failed: %s", strerror(errno));
            break;
        default:
            magpool_cache_foreach(stats_each, NULL);
        }
        n++;
        sched_yield();
    }
    printf("depot_pressure: reaper ran %" PRIu64 " shrink/reap/stats calls; backlog peak %" PRIu64
           " magazines\n", n, backlog_peak);
    return NULL;
}

int main(int argc, char **argv)
{
    struct st_knob knobs[] = {
        {"cycles", &min_cycles, 200, "ephemeral create/destroy cycles to overlap at least", false},
        {0},
    };
    st_parse(argc, argv, &opts, 64, 200000000, knobs);
    st_banner("depot_pressure", &opts);
    st_live_init(21);
    static const struct {
        const char *name;
        size_t size;
        unsigned mmin, mmax;
        bool ctor;
    } spec[NCACHES] = {
        {"mag1", 64, 1, 1, false},
        {"mag3", 128, 3, 3, false},
        {"mag1-ctor", 256, 1, 1, true},
        {"grow", 32, 1, 143, false},
    };
    for (unsigned i = 0; i < NCACHES; i++) {
        struct magpool_config cfg = {.mag_min = spec[i].mmin, .mag_max = spec[i].mmax,
                                     .ctor = spec[i].ctor ? st_ctor_core : NULL};
        int r = st_pool_init(&pools[i], ST_CORE, spec[i].size, opts.libc, &cfg, NULL, "depot-%s",
                             spec[i].name);
        CHECK_MSG(r == 0, "create %s: %s", spec[i].name, strerror(errno));
        if (r)
            return check_done();
    }
    pthread_t side[2 + NHELP];
    double t0 = st_now();
    if (!opts.libc) {
        pthread_create(&side[0], NULL, creator_main, NULL);
        pthread_create(&side[1], NULL, reaper_main, NULL);
        for (unsigned i = 0; i < NHELP; i++)
            pthread_create(&side[2 + i], NULL, helper_main, (void *)(uintptr_t)i);
    }
    struct worker *ws = calloc(opts.threads, sizeof *ws);
    for (unsigned i = 0; i < opts.threads; i++)
        ws[i] = (struct worker){.id = i, .rng = st_rng_seed(opts.seed, i)};
    st_run_threads(opts.threads, worker_main, ws, sizeof *ws);
    ST_STORE(&stop, true);
    if (!opts.libc)
        for (unsigned i = 0; i < 2 + NHELP; i++)
            pthread_join(side[i], NULL);

    /* Resizing: force contention on "grow" alone until it resizes. */
    struct magpool_stats g = {0};
    unsigned extra = 0;
    if (!opts.libc) {
        magpool_cache_stats(pools[3].core, &g);
        only_grow = true;
        struct st_opts save = opts;
        opts.seconds = 0;
        opts.ops = 200000 / ST_SCALE;
        while (g.mag_resizes == 0 && extra < 20) {
            st_run_threads(opts.threads, worker_main, ws, sizeof *ws);
            magpool_cache_stats(pools[3].core, &g);
            extra++;
        }
        opts = save;
    }
    for (uint64_t s = 0; s < 1024; s++) {
        /* acquire: pairs with the acq_rel exchange that stored it (the join
         * orders it too; kept so the drain reads like every other take). */
        void *o = atomic_exchange_explicit(&slots[s], NULL, memory_order_acquire);
        if (o)
            put_any(o);
    }
    double secs = st_now() - t0;
    CHECK_MSG(ST_LOAD(&st_live_count) == 0, "%ld objects still live", ST_LOAD(&st_live_count));
    if (!opts.libc) {
        st_check_all_caches(0, !opts.quiet);
        for (unsigned i = 0; i < 3; i++) {
            struct magpool_stats s;
            magpool_cache_stats(pools[i].core, &s);
            CHECK_MSG(s.depot_allocs > 0 && s.depot_frees > 0,
                      "%s: no depot exchanges (%" PRIu64 "/%" PRIu64 ")", s.name, s.depot_allocs,
                      s.depot_frees);
            CHECK_MSG(s.mag_size == spec[i].mmin, "%s: magazine size %u outside [%u,%u]", s.name,
                      s.mag_size, spec[i].mmin, spec[i].mmax);
        }
        CHECK_MSG(g.mag_resizes > 0, "grow: no magazine resize (contention %" PRIu64 ", %u extra rounds)",
                  g.depot_contention, extra);
        CHECK_MSG(g.mag_size >= 1 && g.mag_size <= 143, "grow: magazine size %u", g.mag_size);
        CHECK_MSG(ST_LOAD(&eph_cycles) > 0, "no ephemeral cache cycle completed");
        printf("depot_pressure: %" PRIu64 " ephemeral caches created and destroyed; grow: mag_size %u, "
               "%" PRIu64 " resizes, contention %" PRIu64 " (%u extra rounds)\n",
               ST_LOAD(&eph_cycles), g.mag_size, g.mag_resizes, g.depot_contention, extra);
    }
    for (unsigned i = 0; i < NCACHES; i++)
        st_pool_fini(&pools[i]);
    free(ws);
    st_live_fini();
    return st_finish("depot_pressure", ST_LOAD(&total_ops), secs);
}
