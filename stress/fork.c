/*
 * stress/fork.c — fork while every API is busy.
 *
 * Claim under test (src/cache/fork.h): a process may fork while other threads are
 * inside any call of the library — allocating and freeing through the core,
 * mem_pool, kmem_cache and kmalloc, bulk calls, deferred frees, read-side
 * sections, magpool_synchronize, shrink, and cache create/destroy — and the
 * child can then allocate, free, free deferred, synchronize, create and
 * destroy caches, start a thread of its own, and exit, within a deadline;
 * every cache's conservation equation holds in the child (objects held by the
 * parent's other threads stay counted, never reused).
 *
 * Design.  --threads workers run a mixed loop over shared pools (each op
 * picked by a per-thread PRNG), some of them inside read-side sections
 * (objects published in a shared slot are read there, replaced ones freed
 * deferred).  The main thread forks --forks times, at random short intervals.
 * Each child arms alarm(--deadline) (a hang kills it with SIGALRM), does the
 * child's work, checks conservation of every shared cache, and exits 0 (1
 * with a line on stderr if a check failed).  The parent waits for each child
 * with its own deadline (then SIGKILL) and counts hangs, crashes and failed
 * checks; all three must be zero.  Short mode (the default, run by the test
 * command) forks 100 times; --long forks 1000 times.  Under the sanitizers a
 * child does not start a thread: TSan forbids it after a multi-threaded fork
 * (die_after_fork), and under ASan a child's pthread_create allocates through
 * the ASan allocator, whose lock another parent thread may have held at the
 * fork (one child in ~100 hung there, in the runtime, not in magpool).
 */
#include <signal.h>
#include <sys/wait.h>

#include "stress/stress_common.h"

#define NSLOTS 64

static magpool_cache_t *core, *deferred_cache;
static struct mem_pool *gpool;
static struct kmem_cache *kcache;
static _Atomic(long *) published[NSLOTS];
static _Atomic int stop;
static unsigned nthreads = 4;
static unsigned long nforks = 100 / ST_SCALE; /* short mode; --long: 1000 */
static unsigned deadline_s = 20;
static bool quiet;

static void *worker(void *arg)
{
    uint64_t rng = st_rng_seed(42, (uint64_t)(uintptr_t)arg);
    void *held[64];
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        switch (st_below(&rng, 10)) {
        case 0: { /* core, across magazine boundaries */
            size_t n = magpool_alloc_bulk(core, 64, held, 0);
            for (size_t i = 0; i < n; i++)
                memset(held[i], 1, 64);
            magpool_free_bulk(core, n, held);
            break;
        }
        case 1:
            for (int i = 0; i < 64; i++)
                held[i] = mem_get0(gpool);
            for (int i = 0; i < 64; i++)
                mem_put(held[i]);
            break;
        case 2:
            for (int i = 0; i < 64; i++)
                held[i] = kmem_cache_alloc(kcache, GFP_KERNEL);
            for (int i = 0; i < 64; i++)
                kmem_cache_free(kcache, held[i]);
            break;
        case 3:
            for (int i = 0; i < 32; i++)
                held[i] = kmalloc(8 + st_below(&rng, 2000), GFP_KERNEL);
            for (int i = 0; i < 32; i++)
                kfree(held[i]);
            break;
        case 4: { /* replace a published object; the old one freed deferred */
            long *n = magpool_alloc(deferred_cache);
            if (n == NULL)
                break;
            n[0] = (long)st_below(&rng, 1000);
            long *old = atomic_exchange_explicit(&published[st_below(&rng, NSLOTS)], n, memory_order_acq_rel);
            if (old != NULL)
                magpool_free_deferred(deferred_cache, old);
            break;
        }
        case 5: { /* readers */
            long sum = 0;
            magpool_read_enter(NULL);
            for (int i = 0; i < NSLOTS; i++) {
                long *p = atomic_load_explicit(&published[i], memory_order_acquire);
                if (p != NULL)
                    sum += p[0];
            }
            if (st_below(&rng, 4) == 0) /* a slow path inside the section */
                magpool_free(core, magpool_alloc(core));
            magpool_read_leave(NULL);
            (void)sum;
            break;
        }
        case 6:
            if (st_below(&rng, 8) == 0)
                magpool_synchronize(NULL);
            break;
        case 7:
            if (st_below(&rng, 16) == 0)
                magpool_cache_shrink(core);
            break;
        case 8: { /* a cache's whole life */
            struct magpool_config cfg = { .name = "fork-tmp", .size = 48 };
            magpool_cache_t *c = magpool_cache_create(&cfg);
            if (c != NULL) {
                for (int i = 0; i < 16; i++)
                    held[i] = magpool_alloc(c);
                for (int i = 0; i < 16; i++)
                    magpool_free(c, held[i]);
                magpool_cache_destroy(c);
            }
            break;
        }
        default:
            magpool_free(core, magpool_alloc(core));
            break;
        }
    }
    magpool_thread_flush();
    return NULL;
}

static void *child_thread(void *arg)
{
    void *o[100];
    for (int i = 0; i < 100; i++)
        o[i] = magpool_alloc(arg);
    for (int i = 0; i < 100; i++)
        magpool_free(arg, o[i]);
    return NULL;
}

static int child_fail(const char *what)
{
    fprintf(stderr, "fork child %d: %s\n", (int)getpid(), what);
    return 1;
}

/* The child's work; 0 when every check held. */
static int child_main(void)
{
    alarm(deadline_s);
    void *o[600];
    for (int i = 0; i < 600; i++)
        if ((o[i] = magpool_alloc(core)) == NULL)
            return child_fail("magpool_alloc failed");
    for (int i = 0; i < 600; i++)
        magpool_free(core, o[i]);
    for (int i = 0; i < 200; i++)
        o[i] = mem_get0(gpool);
    for (int i = 0; i < 200; i++)
        mem_put(o[i]);
    for (int i = 0; i < 200; i++)
        o[i] = kmem_cache_alloc(kcache, GFP_KERNEL);
    for (int i = 0; i < 200; i++)
        kmem_cache_free(kcache, o[i]);
    for (int i = 0; i < 200; i++)
        o[i] = kmalloc(100, GFP_KERNEL);
    for (int i = 0; i < 200; i++)
        kfree(o[i]);
    /* Deferred frees, then a grace period: the parent's readers are gone. */
    for (int i = 0; i < 600; i++)
        magpool_free_deferred(deferred_cache, magpool_alloc(deferred_cache));
    magpool_read_enter(NULL);
    magpool_read_leave(NULL);
    magpool_synchronize(NULL);
    struct magpool_stats st;
    if (magpool_cache_stats(deferred_cache, &st) != 0)
        return child_fail("stats failed");
    /* A new cache lives and dies entirely in the child. */
    struct magpool_config cfg = { .name = "fork-child", .size = 200 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    if (c == NULL)
        return child_fail("create failed");
    for (int i = 0; i < 600; i++)
        o[i] = magpool_alloc(c);
    for (int i = 0; i < 600; i++)
        magpool_free(c, o[i]);
#if !defined(ST_TSAN) && !defined(ST_ASAN)
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, c) != 0)
        return child_fail("pthread_create failed");
    pthread_join(t, NULL);
#else
    (void)child_thread;
#endif
    if (magpool_cache_destroy(c) != 0)
        return child_fail("destroy of the child's cache found live objects");
    magpool_cache_shrink(core);
    magpool_reap();
    /* Conservation of every shared cache (parent's threads' magazines are
     * still counted). */
    magpool_cache_t *caches[] = { core, deferred_cache };
    for (size_t i = 0; i < sizeof caches / sizeof *caches; i++)
        if (!conserved(caches[i], NULL))
            return child_fail("conservation does not hold");
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--long"))
            nforks = 1000;
        else if (!strcmp(argv[i], "--forks") && i + 1 < argc)
            nforks = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nthreads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--deadline") && i + 1 < argc)
            deadline_s = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = true;
        else {
            fprintf(stderr, "usage: %s [--long] [--forks N] [--threads N] [--deadline S] [--quiet]\n", argv[0]);
            return 2;
        }
    }
    struct magpool_config cfg = { .name = "fork-core", .size = 64 };
    core = magpool_cache_create(&cfg);
    struct magpool_config dcfg = { .name = "fork-deferred", .size = 64 };
    deferred_cache = magpool_cache_create(&dcfg);
    gpool = mem_pool_new_fn(96, 64, "fork-mem-pool");
    kcache = kmem_cache_create("fork-kmem", 128, 0, 0, NULL);
    CHECK(core && deferred_cache && gpool && kcache);

    pthread_t *th = calloc(nthreads, sizeof *th);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));

    unsigned long hangs = 0, crashes = 0, failed = 0, forked = 0;
    uint64_t rng = st_rng_seed(7, 0);
    double t0 = st_now();
    for (unsigned long f = 0; f < nforks; f++) {
        nanosleep(&(struct timespec){ .tv_nsec = (long)st_below(&rng, 2000000) }, NULL);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            crashes++;
            continue;
        }
        if (pid == 0)
            _exit(child_main());
        forked++;
        int status = 0;
        double start = st_now();
        pid_t r;
        while ((r = waitpid(pid, &status, WNOHANG)) == 0 && st_now() - start < deadline_s + 5)
            nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            hangs++;
        } else if (WIFSIGNALED(status)) {
            if (WTERMSIG(status) == SIGALRM)
                hangs++;
            else
                crashes++;
        } else if (WEXITSTATUS(status) != 0) {
            failed++;
        }
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    free(th);
    if (!quiet || hangs || crashes || failed)
        printf("fork: %lu forks in %.1f s with %u busy threads: %lu hangs, %lu crashes, %lu failed checks\n",
               forked, st_now() - t0, nthreads, hangs, crashes, failed);
    CHECK(forked == nforks);
    CHECK_MSG(hangs == 0, "%lu children hung", hangs);
    CHECK_MSG(crashes == 0, "%lu children crashed", crashes);
    CHECK_MSG(failed == 0, "%lu children failed a check", failed);

    /* The parent is intact too. */
    for (int i = 0; i < NSLOTS; i++) {
        long *p = atomic_exchange(&published[i], NULL);
        if (p != NULL)
            magpool_free_deferred(deferred_cache, p);
    }
    magpool_synchronize(NULL);
    CHECK(conserved(core, NULL));
    CHECK(conserved(deferred_cache, NULL));
    kmem_cache_destroy(kcache);
    mem_pool_destroy(gpool);
    CHECK(magpool_cache_destroy(deferred_cache) == 0);
    CHECK(magpool_cache_destroy(core) == 0);
    return check_done();
}
