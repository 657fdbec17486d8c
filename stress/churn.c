/*
 * stress/churn.c — thread churn.
 *
 * Claim under test: threads are never registered by hand, so a thread's exit
 * must hand everything it holds back to the pool — its loaded and previous
 * magazines (full of objects, many of them allocated by other threads) and
 * its per-thread state — with nothing stranded and nothing leaked, while
 * other threads keep allocating and freeing.  After the run and a reap, the
 * pool's own statistics show no object in use and none parked in magazines
 * or the depot, and RSS is back near where it was before the burst.
 *
 * Design (the shape of mimalloc's test-stress).  A global array of transfer
 * slots carries objects across thread generations.  The main thread keeps
 * --threads workers running and, for --gens generations, joins the oldest
 * and starts a new one, so threads are created and exit continuously and
 * overlap.  Each worker, for a random number of steps, allocates objects of
 * random pools (core caches with and without constructor, a mem_pool, a
 * kmem_cache) into a private array of up to --hold objects, frees random
 * ones, and exchanges random ones with transfer slots (the object received,
 * allocated by some earlier thread, joins the private array: survivors cross
 * generations).  Before exiting it frees half of what it holds — filling its
 * magazines with other threads' objects — and leaves the rest in transfer
 * slots.  Every object carries a cookie checked at free, and a live table
 * catches any object handed out twice.
 *
 * At the end: drain the slots, magpool_reap(), then per cache in_use == 0,
 * in_depot == 0, in_magazines <= 2 magazines (the main thread's at most),
 * conservation exact; and (magpool mode, no sanitizer: ASan/TSan shadow
 * memory does not shrink) RSS after <= RSS before + 10% of the burst + 4 MiB
 * (RSS measured without the harness's live table, via mincore).
 */
#include "stress/stress_common.h"

ST_KMEM_CTOR(256)

#define NPOOLS 6
static struct st_pool pools[NPOOLS];
static _Atomic(void *) *transfer;
static uint64_t ntransfer = 4096, hold = 1024, gens = 200;
static struct st_opts opts = {.threads = 16, .ops = 6000000, .seed = 7};
static _Atomic uint64_t total_ops;

struct gen {
    unsigned id;
    uint64_t rng, steps;
};

static void put_any(void *o)
{
    if (((uint64_t *)o)[0] != ((uint64_t)(uintptr_t)o ^ ST_MAGIC)) {
        st_fail("object %p: address word damaged", o);
        return;
    }
    unsigned pi = st_cookie_pool(o);
    if (pi >= NPOOLS) {
        st_fail("object %p: pool %u out of range", o, pi);
        return;
    }
    st_put(&pools[pi], o);
}

/* acq_rel: release publishes the cookie written into o to whichever later
 * generation takes it; acquire makes the received object's cookie visible.
 * Weakened, a receiver could read a stale cookie (false failure, TSan race). */
static void *swap_slot(uint64_t i, void *o)
{
    return atomic_exchange_explicit(&transfer[i], o, memory_order_acq_rel);
}

static void *gen_main(void *arg)
{
    struct gen *g = arg;
    void **mine = calloc(hold, sizeof *mine);
    size_t n = 0;
    uint64_t ops = 0, seq = 0;
    for (uint64_t s = 0; s < g->steps; s++) {
        uint64_t r = st_below(&g->rng, 100);
        if (r < 55 && n < hold) {
            unsigned pi = (unsigned)st_below(&g->rng, NPOOLS);
            void *o = st_get(&pools[pi], pi, g->id & 0xfff, ++seq);
            if (!o) {
                st_fail("%s: allocation failed: %s", pools[pi].name, strerror(errno));
                continue;
            }
            mine[n++] = o;
            ops++;
        } else if (r < 85 && n) {
            size_t i = st_below(&g->rng, n);
            put_any(mine[i]);
            mine[i] = mine[--n];
            ops++;
        } else if (n) {
            size_t i = st_below(&g->rng, n);
            void *o = swap_slot(st_below(&g->rng, ntransfer), mine[i]);
            if (o)
                mine[i] = o;
            else
                mine[i] = mine[--n];
            ops++;
        }
    }
    /* Exit holding full magazines of others' objects and leaving survivors. */
    size_t half = n / 2;
    while (n > half) {
        put_any(mine[--n]);
        ops++;
    }
    while (n) {
        void *o = swap_slot(st_below(&g->rng, ntransfer), mine[--n]);
        if (o)
            put_any(o);
        ops++;
    }
    free(mine);
    atomic_fetch_add_explicit(&total_ops, ops, memory_order_relaxed);
    return NULL;
}

static void start(pthread_t *t, struct gen *g, unsigned id, uint64_t mean_steps)
{
    g->id = id;
    g->rng = st_rng_seed(opts.seed, id);
    g->steps = mean_steps / 2 + st_below(&g->rng, mean_steps + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(t, &attr, gen_main, g) != 0) {
        perror("pthread_create");
        exit(2);
    }
    pthread_attr_destroy(&attr);
}

int main(int argc, char **argv)
{
    struct st_knob knobs[] = {
        {"gens", &gens, 20000, "thread generations (threads created in total)", true},
        {"hold", &hold, 0, "objects a thread may hold", false},
        {"transfer", &ntransfer, 16384, "transfer slots", false},
        {0},
    };
    st_parse(argc, argv, &opts, 64, 200000000, knobs);
    if (gens < opts.threads)
        gens = opts.threads;
    if (!ntransfer)
        ntransfer = 1;
    if (!hold)
        hold = 1;
    st_banner("churn", &opts);
    st_live_init(22);
    transfer = calloc(ntransfer, sizeof *transfer);
    struct magpool_config ctor = {.ctor = st_ctor_core};
    int r = st_pool_init(&pools[0], ST_CORE, 32, opts.libc, NULL, NULL, "churn-core-32");
    r |= st_pool_init(&pools[1], ST_CORE, 128, opts.libc, &ctor, NULL, "churn-core-128");
    r |= st_pool_init(&pools[2], ST_CORE, 1024, opts.libc, NULL, NULL, "churn-core-1024");
    r |= st_pool_init(&pools[3], ST_CORE, 4096, opts.libc, NULL, NULL, "churn-core-4096");
    r |= st_pool_init(&pools[4], ST_MEMPOOL, 64, opts.libc, NULL, NULL, "churn-mem_pool-64");
    r |= st_pool_init(&pools[5], ST_KMEM, 256, opts.libc, NULL, st_kctor_256, "churn-kmem-256");
    CHECK_MSG(r == 0, "pool creation failed: %s", strerror(errno));
    if (r)
        return check_done();

    size_t rss0 = check_rss_bytes(), peak = rss0;
    uint64_t mean_steps = opts.ops / gens ? opts.ops / gens : 1;
    if (opts.seconds > 0)
        mean_steps = 20000; /* by time: generations of ~20k steps until the deadline */
    pthread_t *t = calloc(opts.threads, sizeof *t);
    struct gen *g = calloc(opts.threads, sizeof *g);
    double t0 = st_now();
    unsigned id = 0;
    for (unsigned i = 0; i < opts.threads; i++)
        start(&t[i], &g[i], id++, mean_steps);
    uint64_t created = opts.threads;
    for (;;) {
        bool more = opts.seconds > 0 ? st_now() < t0 + opts.seconds : created < gens;
        unsigned i = (unsigned)(created % opts.threads);
        pthread_join(t[i], NULL);
        size_t rss = check_rss_bytes() - st_live_resident();
        if (rss > peak)
            peak = rss;
        if (!more)
            break;
        start(&t[i], &g[i], id++, mean_steps);
        created++;
    }
    for (unsigned k = 1; k < opts.threads; k++)
        pthread_join(t[(created + k) % opts.threads], NULL);
    for (uint64_t s = 0; s < ntransfer; s++) {
        /* acquire: pairs with the acq_rel exchange that stored it (the join
         * orders it too; kept so the drain reads like every other take). */
        void *o = atomic_exchange_explicit(&transfer[s], NULL, memory_order_acquire);
        if (o)
            put_any(o);
    }
    double secs = st_now() - t0;
    CHECK_MSG(ST_LOAD(&st_live_count) == 0, "%ld objects still live", ST_LOAD(&st_live_count));

    if (!opts.libc) {
        magpool_reap();
        for (unsigned p = 0; p < NPOOLS; p++) {
            magpool_cache_t *c = pools[p].core;
            if (!c) /* front ends: find the core cache by name through foreach below */
                continue;
            struct magpool_stats s;
            if (magpool_cache_stats(c, &s) != 0)
                continue;
            CHECK_MSG(s.in_magazines <= 2u * s.mag_size, "%s: %" PRIu64 " objects in magazines after reap",
                      s.name, s.in_magazines);
            CHECK_MSG(s.in_depot == 0, "%s: %" PRIu64 " objects in the depot after reap", s.name, s.in_depot);
            CHECK_MSG(s.slabs_empty == 0, "%s: %" PRIu64 " empty slabs kept after reap", s.name,
                      s.slabs_empty);
        }
        st_check_all_caches(0, !opts.quiet);
    }
    size_t rss1 = check_rss_bytes() - st_live_resident();
    printf("churn: %" PRIu64 " threads created; RSS start %.1f MiB, peak %.1f MiB, after reap %.1f MiB\n",
           created, rss0 / 1048576.0, peak / 1048576.0, rss1 / 1048576.0);
#if !defined(ST_ASAN) && !defined(ST_TSAN)
    if (!opts.libc) {
        size_t allowed = rss0 + (peak - rss0) / 10 + (4u << 20);
        CHECK_MSG(rss1 <= allowed, "RSS after reap %zu > allowed %zu (start %zu, peak %zu)", rss1,
                  allowed, rss0, peak);
    }
#endif
    for (unsigned p = 0; p < NPOOLS; p++)
        st_pool_fini(&pools[p]);
    free(t);
    free(g);
    free(transfer);
    st_live_fini();
    return st_finish("churn", ST_LOAD(&total_ops), secs);
}
