/*
 * stress/fault.c — fault injection in the page layer.
 *
 * Claim under test: when the system refuses memory (mmap / madvise fail),
 * magpool fails cleanly — allocations return NULL with errno == ENOMEM —
 * corrupts nothing, loses nothing, and recovers as soon as memory comes
 * back.
 *
 * Design.  magpool_fault_inject(ppm) makes the page layer's mmap/madvise fail
 * with probability ppm / 1e6 (--ppm, default 200000 = 20%).  Fresh pools of
 * large objects need new memory often: a core cache of 256 KiB objects with
 * magazines of at most 2 (its slabs need new 4 MiB regions while the working
 * set grows), a mem_pool of 32 KiB objects, and kmalloc(5 MiB), a span of
 * whole regions mapped at every allocation and unmapped at every free (the
 * page layer keeps buddy regions committed once mapped).  --threads
 * threads (default 4) each hold up to 16 objects: allocate (a NULL must
 * come with ENOMEM; anything else is a failure), write a cookie, free a
 * random held object after verifying its cookie, and every 32 steps shrink
 * the core cache so its empty slabs go back.  Before them, the main thread
 * grows the core cache to 64 MiB held at once (new regions to commit).
 * Then faults are switched off (fault_inject(0)) and the run checks:
 *   - some allocations did fail (the knob works) and every failure said
 *     ENOMEM; the core cache counted at least as many alloc_failures;
 *   - cookies were intact throughout; no object was ever live twice;
 *   - conservation holds exactly and in_use == 0 on every cache;
 *   - recovery: 64 allocations from each pool now all succeed.
 * A second check runs this program again as a child with
 * MAGPOOL_FAULT_PPM=1000000 in its environment (the knob read at start):
 * cache creation or allocation fails with ENOMEM, and the child exits
 * normally.
 * --libc runs the same workload on malloc without faults (a comparison).
 */
#include <sys/wait.h>

#include "stress/stress_common.h"

#define NPOOLS 3
#define HOLD 16
static struct st_pool pools[NPOOLS];
static struct st_opts opts = {.threads = 4, .ops = 100000, .seed = 5};
static uint64_t ppm = 200000;
static _Atomic uint64_t nulls[NPOOLS], total_ops;

struct worker {
    unsigned id;
    uint64_t rng, seq;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct st_budget b;
    st_budget_init(&b, &opts, opts.threads);
    void *held[HOLD];
    unsigned held_pool[HOLD];
    size_t n = 0;
    while (st_more(&b)) {
        b.ops++;
        if (n < HOLD && st_below(&w->rng, 2) == 0) {
            unsigned pi = (unsigned)st_below(&w->rng, NPOOLS);
            errno = 0;
            void *o = st_get(&pools[pi], pi, w->id, ++w->seq);
            if (!o) {
                if (errno != ENOMEM)
                    st_fail("%s: NULL with errno %d (%s), expected ENOMEM", pools[pi].name, errno,
                            strerror(errno));
                atomic_fetch_add_explicit(&nulls[pi], 1, memory_order_relaxed);
                continue;
            }
            held[n] = o;
            held_pool[n++] = pi;
        } else if (n) {
            size_t i = st_below(&w->rng, n);
            st_put(&pools[held_pool[i]], held[i]);
            held[i] = held[--n];
            held_pool[i] = held_pool[n];
        }
        if (!opts.libc && (b.ops & 31) == 0 && magpool_cache_shrink(pools[0].core) != 0)
            st_fail("shrink failed: %s", strerror(errno));
    }
    while (n) {
        n--;
        st_put(&pools[held_pool[n]], held[n]);
    }
    atomic_fetch_add_explicit(&total_ops, b.ops, memory_order_relaxed);
    return NULL;
}

/* Child of the environment test: MAGPOOL_FAULT_PPM=1000000 is set. */
static int env_child(void)
{
    struct magpool_config cfg = {.name = "fault-env", .size = 65536};
    errno = 0;
    magpool_cache_t *c = magpool_cache_create(&cfg);
    if (!c)
        return errno == ENOMEM ? 0 : 3;
    int bad = 0, failed = 0;
    void *objs[64];
    for (int i = 0; i < 64; i++) {
        errno = 0;
        objs[i] = magpool_alloc(c);
        if (!objs[i]) {
            failed++;
            bad |= errno != ENOMEM;
        }
    }
    for (int i = 0; i < 64; i++)
        magpool_free(c, objs[i]);
    magpool_cache_destroy(c);
    return failed > 0 && !bad ? 0 : 4;
}

static void env_test(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MAGPOOL_FAULT_PPM", "1000000", 1);
        execl("/proc/self/exe", "fault", "--env-child", (char *)NULL);
        _exit(5);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "MAGPOOL_FAULT_PPM=1000000 child: status %#x (3: create errno, 4: no ENOMEM failure, "
              "5: exec)", status);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--env-child") == 0)
        return env_child();
    struct st_knob knobs[] = {{"ppm", &ppm, 0, "injected failure rate, per million", false}, {0}};
    st_parse(argc, argv, &opts, 64, 20000000, knobs);
    st_banner("fault", &opts);
    st_live_init(20);
    struct magpool_config big = {.mag_min = 1, .mag_max = 2};
    int r = st_pool_init(&pools[0], ST_CORE, 256u << 10, opts.libc, &big, NULL, "fault-core-256k");
    r |= st_pool_init(&pools[1], ST_MEMPOOL, 32768, opts.libc, NULL, NULL, "fault-mem_pool-32k");
    r |= st_pool_init(&pools[2], ST_KMALLOC, 5u << 20, opts.libc, NULL, NULL, "fault-kmalloc-5M");
    CHECK_MSG(r == 0, "pool creation: %s", strerror(errno));
    if (r)
        return check_done();

    if (!opts.libc)
        magpool_fault_inject((unsigned)ppm);
    struct worker *ws = calloc(opts.threads, sizeof *ws);
    for (unsigned i = 0; i < opts.threads; i++)
        ws[i] = (struct worker){.id = i, .rng = st_rng_seed(opts.seed, i)};
    double t0 = st_now();
    /* Growth: 256 objects of 256 KiB (64 MiB, 16 regions to commit) held at
     * once, so the core cache's slabs need fresh mmaps under faults. */
    static void *grow[256];
    for (int i = 0; i < 256; i++) {
        errno = 0;
        grow[i] = st_get(&pools[0], 0, 63, (uint64_t)i);
        if (!grow[i]) {
            CHECK_MSG(errno == ENOMEM, "growth: NULL with errno %d", errno);
            atomic_fetch_add_explicit(&nulls[0], 1, memory_order_relaxed);
        }
    }
    for (int i = 0; i < 256; i++)
        if (grow[i])
            st_put(&pools[0], grow[i]);
    st_run_threads(opts.threads, worker_main, ws, sizeof *ws);
    double secs = st_now() - t0;
    if (!opts.libc)
        magpool_fault_inject(0);

    uint64_t total_nulls = 0;
    for (int i = 0; i < NPOOLS; i++)
        total_nulls += ST_LOAD(&nulls[i]);
    printf("fault: %" PRIu64 " NULL returns (core %" PRIu64 ", mem_pool %" PRIu64 ", kmalloc %" PRIu64
           ") at %" PRIu64 " ppm\n",
           total_nulls, ST_LOAD(&nulls[0]), ST_LOAD(&nulls[1]), ST_LOAD(&nulls[2]),
           opts.libc ? 0 : ppm);
    CHECK_MSG(ST_LOAD(&st_live_count) == 0, "%ld objects still live", ST_LOAD(&st_live_count));
    if (!opts.libc) {
        if (ppm > 0)
            CHECK_MSG(total_nulls > 0, "no allocation failed at %" PRIu64 " ppm", ppm);
        struct magpool_stats s;
        magpool_cache_stats(pools[0].core, &s);
        CHECK_MSG(s.alloc_failures >= ST_LOAD(&nulls[0]),
                  "core alloc_failures %" PRIu64 " < %" PRIu64 " NULLs seen", s.alloc_failures,
                  ST_LOAD(&nulls[0]));
        magpool_reap();
        st_check_all_caches(0, !opts.quiet);
    } else {
        CHECK(total_nulls == 0);
    }
    /* Recovery: everything succeeds again. */
    for (int p = 0; p < NPOOLS; p++) {
        void *objs[64];
        int ok = 0;
        for (int i = 0; i < 64; i++) {
            objs[i] = st_get(&pools[p], (unsigned)p, 0, (uint64_t)i);
            ok += objs[i] != NULL;
        }
        CHECK_MSG(ok == 64, "%s: only %d of 64 allocations after faults stopped", pools[p].name, ok);
        for (int i = 0; i < 64; i++)
            if (objs[i])
                st_put(&pools[p], objs[i]);
    }
    if (!opts.libc) {
        st_check_all_caches(0, false);
        env_test();
    }
    for (int p = 0; p < NPOOLS; p++)
        st_pool_fini(&pools[p]);
    free(ws);
    st_live_fini();
    return st_finish("fault", ST_LOAD(&total_ops), secs);
}
