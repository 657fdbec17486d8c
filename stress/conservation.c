/*
 * stress/conservation.c — conservation torture.
 *
 * Claim under test: across any interleaving, magpool never hands out an
 * object that is still live, never loses one, never damages one, keeps the
 * constructed state of ctor caches, and its statistics obey, exactly,
 *     in_slabs + in_magazines + in_depot + deferred + in_use == constructed
 * for every cache, with in_use == 0 once everything is freed.
 *
 * Design.  Many threads (default 16; --long 64, on a 2-core machine that is
 * heavy oversubscription, where preemption lands inside every window) share
 * a set of pools of mixed sizes served by all three APIs at once:
 *   core caches (16..4096 bytes, two with constructors, one cache-aligned),
 *   mem_pools (GlusterFS front end), kmem_caches (one with a constructor),
 *   kmalloc of several sizes (one above KMALLOC_MAX_CACHE_SIZE: page spans).
 * Each iteration of a thread draws an action from a deterministic PRNG:
 *   - alloc one object, write its cookie (address, thread, pool, sequence),
 *     then either keep it in a small private array or hand it to another
 *     thread by atomic exchange into a random shared slot (whatever the slot
 *     held comes back and is verified and freed here: objects are freed by
 *     threads that did not allocate them, through whichever API owns them);
 *   - free a random private object;
 *   - bulk-allocate 1..16 objects (magpool_alloc_bulk / kmem_cache_alloc_bulk)
 *     and bulk-free half of them;
 *   - empty a random slot;
 *   - rarely, magpool_thread_flush() (magazines back to the depot mid-run).
 * Every alloc marks the address live in a global table (compare-and-swap on
 * the address's entry; finding it live already is a failure) and every free
 * verifies the cookie and clears it first.  At the end the main thread
 * drains the slots and checks, for every cache (magpool_cache_foreach), the
 * conservation equation and in_use == 0, and for each core cache that its
 * stats.allocs equals the allocations the threads counted.
 *
 * --libc runs the same workload on malloc/free (no statistics to check).
 * Knobs: --slots N (shared slots), --keep N (private objects per thread).
 */
#include "stress/stress_common.h"

ST_KMEM_CTOR(96)

struct spec {
    enum st_kind kind;
    size_t size;
    bool ctor;
    unsigned flags;
    unsigned weight;
};

static const struct spec specs[] = {
    {ST_CORE, 16, false, 0, 10},
    {ST_CORE, 48, true, 0, 10},
    {ST_CORE, 64, false, 0, 10},
    {ST_CORE, 200, false, 0, 8},
    {ST_CORE, 1024, true, MAGPOOL_HWCACHE_ALIGN, 5},
    {ST_CORE, 4096, false, 0, 2},
    {ST_MEMPOOL, 24, false, 0, 8},
    {ST_MEMPOOL, 136, false, 0, 6},
    {ST_KMEM, 96, true, SLAB_HWCACHE_ALIGN, 8},
    {ST_KMEM, 512, false, 0, 5},
    {ST_KMALLOC, 40, false, 0, 8},
    {ST_KMALLOC, 300, false, 0, 5},
    {ST_KMALLOC, 3000, false, 0, 2},
    {ST_KMALLOC, 20000, false, 0, 1},
};
#define NPOOLS (sizeof specs / sizeof specs[0])

static struct st_pool pools[NPOOLS];
static unsigned weight_total;
static _Atomic(void *) *slots;
static uint64_t nslots = 4096, keep = 64;
static struct st_opts opts = {.threads = 16, .ops = 6000000, .seed = 1};

struct worker {
    unsigned id;
    uint64_t rng, seq;
    uint64_t allocs[NPOOLS], frees;
    void **mine;
    size_t nmine;
};

static unsigned pick_pool(uint64_t *rng)
{
    uint64_t w = st_below(rng, weight_total);
    for (unsigned i = 0; i < NPOOLS; i++) {
        if (w < specs[i].weight)
            return i;
        w -= specs[i].weight;
    }
    return 0;
}

/* An object from a slot: trust its pool index only after its address word. */
static void put_any(struct worker *w, void *o)
{
    if (((uint64_t *)o)[0] != ((uint64_t)(uintptr_t)o ^ ST_MAGIC)) {
        st_fail("object %p from a slot: address word damaged (%#" PRIx64 ")", o, ((uint64_t *)o)[0]);
        return; /* leaked on purpose: freeing a damaged object would hide the bug */
    }
    unsigned pi = st_cookie_pool(o);
    if (pi >= NPOOLS) {
        st_fail("object %p from a slot: pool %u out of range", o, pi);
        return;
    }
    st_put(&pools[pi], o);
    w->frees++;
}

static void *get(struct worker *w, unsigned pi)
{
    void *o = st_get(&pools[pi], pi, w->id, ++w->seq);
    if (!o)
        st_fail("%s: allocation failed: %s", pools[pi].name, strerror(errno));
    else
        w->allocs[pi]++;
    return o;
}

static void give(struct worker *w, void *o)
{
    uint64_t s = st_below(&w->rng, nslots);
    /* acq_rel: release publishes the cookie we wrote into o to the thread
     * that takes it out of the slot; acquire makes the cookie of the object
     * we receive visible to us.  Relaxed would let the receiver read a
     * half-written cookie (a false failure) and TSan would flag a race. */
    void *old = atomic_exchange_explicit(&slots[s], o, memory_order_acq_rel);
    if (old)
        put_any(w, old);
}

static void keep_or_give(struct worker *w, void *o)
{
    if (st_below(&w->rng, 2) == 0 && w->nmine < keep) {
        w->mine[w->nmine++] = o;
        return;
    }
    give(w, o);
}

static void bulk(struct worker *w)
{
    void *objs[16];
    size_t n = 1 + st_below(&w->rng, 16);
    unsigned pi = pick_pool(&w->rng);
    struct st_pool *p = &pools[pi];
    size_t got;
    if (p->kind == ST_CORE)
        got = magpool_alloc_bulk(p->core, n, objs, 0);
    else if (p->kind == ST_KMEM)
        got = (size_t)kmem_cache_alloc_bulk(p->km, GFP_KERNEL, n, objs);
    else
        return;
    if (got != n) {
        st_fail("%s: bulk alloc of %zu returned %zu (%s)", p->name, n, got, strerror(errno));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (p->ctor && ((uint64_t *)objs[i])[p->size / 8 - 1] != ST_CTOR_MAGIC)
            st_fail("%s: bulk object %p not constructed", p->name, objs[i]);
        st_live_set(objs[i]);
        st_cookie_write(objs[i], p->size, p->ctor, w->id, pi, ++w->seq);
    }
    w->allocs[pi] += n;
    size_t half = n / 2;
    for (size_t i = 0; i < half; i++) {
        const char *why = st_cookie_check(objs[i], p->size, p->ctor);
        if (why)
            st_fail("%s: bulk object %p: %s", p->name, objs[i], why);
        st_cookie_kill(objs[i]);
        st_live_clear(objs[i]);
    }
    if (p->kind == ST_CORE)
        magpool_free_bulk(p->core, half, objs);
    else
        kmem_cache_free_bulk(p->km, half, objs);
    w->frees += half;
    for (size_t i = half; i < n; i++)
        keep_or_give(w, objs[i]);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct st_budget b;
    st_budget_init(&b, &opts, opts.threads);
    w->mine = calloc(keep ? keep : 1, sizeof(void *));
    while (st_more(&b)) {
        b.ops++;
        uint64_t r = st_below(&w->rng, 1000);
        if (r < 600) {
            void *o = get(w, pick_pool(&w->rng));
            if (o)
                keep_or_give(w, o);
        } else if (r < 780) {
            if (w->nmine) {
                size_t i = st_below(&w->rng, w->nmine);
                put_any(w, w->mine[i]);
                w->mine[i] = w->mine[--w->nmine];
            }
        } else if (r < 850) {
            if (!opts.libc)
                bulk(w);
        } else if (r < 999) {
            uint64_t s = st_below(&w->rng, nslots);
            /* acquire: pairs with the acq_rel exchange that stored it (see give). */
            void *o = atomic_exchange_explicit(&slots[s], NULL, memory_order_acquire);
            if (o)
                put_any(w, o);
        } else if (!opts.libc) {
            magpool_thread_flush();
        }
    }
    while (w->nmine)
        put_any(w, w->mine[--w->nmine]);
    free(w->mine);
    return NULL;
}

int main(int argc, char **argv)
{
    struct st_knob knobs[] = {
        {"slots", &nslots, 16384, "shared transfer slots", false},
        {"keep", &keep, 0, "objects each thread keeps privately", false},
        {0},
    };
    st_parse(argc, argv, &opts, 64, 200000000, knobs);
    if (nslots == 0)
        nslots = 1;
    st_banner("conservation", &opts);
    st_live_init(22);
    slots = calloc(nslots, sizeof *slots);
    for (unsigned i = 0; i < NPOOLS; i++) {
        const struct spec *s = &specs[i];
        struct magpool_config cfg = {.flags = s->flags, .ctor = s->ctor ? st_ctor_core : NULL};
        void (*kctor)(void *) = s->kind == ST_KMEM && s->ctor ? st_kctor_96 : NULL;
        if (s->kind == ST_KMEM)
            cfg.ctor = NULL;
        int r = st_pool_init(&pools[i], s->kind, s->size, opts.libc, &cfg, kctor, "cons-%s-%zu",
                             st_kind_name[s->kind], s->size);
        CHECK_MSG(r == 0, "create pool %u: %s", i, strerror(errno));
        if (r != 0)
            return check_done();
        weight_total += s->weight;
    }

    struct worker *ws = calloc(opts.threads, sizeof *ws);
    for (unsigned i = 0; i < opts.threads; i++) {
        ws[i].id = i;
        ws[i].rng = st_rng_seed(opts.seed, i);
    }
    double t0 = st_now();
    st_run_threads(opts.threads, worker_main, ws, sizeof *ws);
    struct worker drain = {.id = opts.threads, .rng = 1};
    for (uint64_t s = 0; s < nslots; s++) {
        /* acquire: pairs with the acq_rel exchange that stored it (the join
         * orders it too; kept so the drain reads like every other take). */
        void *o = atomic_exchange_explicit(&slots[s], NULL, memory_order_acquire);
        if (o)
            put_any(&drain, o);
    }
    double secs = st_now() - t0;

    uint64_t allocs[NPOOLS] = {0}, total_allocs = 0, frees = drain.frees;
    for (unsigned i = 0; i < opts.threads; i++) {
        for (unsigned p = 0; p < NPOOLS; p++)
            allocs[p] += ws[i].allocs[p];
        frees += ws[i].frees;
    }
    for (unsigned p = 0; p < NPOOLS; p++)
        total_allocs += allocs[p];
    CHECK_MSG(total_allocs == frees, "allocs %" PRIu64 " != frees %" PRIu64, total_allocs, frees);
    CHECK_MSG(ST_LOAD(&st_live_count) == 0, "%ld objects still marked live",
              ST_LOAD(&st_live_count));
    if (!opts.libc) {
        /* Exact equation for every cache (core, mem_pool, kmem, kmalloc). */
        st_check_all_caches(0, !opts.quiet);
        for (unsigned p = 0; p < NPOOLS; p++) {
            struct magpool_stats s;
            if (pools[p].kind != ST_CORE || magpool_cache_stats(pools[p].core, &s) != 0)
                continue;
            CHECK_MSG(s.allocs == allocs[p], "%s: stats.allocs %" PRIu64 " != %" PRIu64 " counted",
                      pools[p].name, s.allocs, allocs[p]);
        }
    }
    for (unsigned p = 0; p < NPOOLS; p++)
        st_pool_fini(&pools[p]);
    free(ws);
    free(slots);
    st_live_fini();
    return st_finish("conservation", total_allocs + frees, secs);
}
