/*
 * Other threads' magazines come back (src/cache/idle.c): threads that used a
 * cache and went idle (blocked on a condition variable, still alive) keep
 * nothing after magpool_cache_shrink / magpool_reap; they work normally when
 * they wake up; conservation holds throughout.  Without membarrier
 * (MAGPOOL_MEMBARRIER=0, in a child process) the owners are asked and give
 * back at their next slow path instead.  Reclaimers racing busy owners:
 * stress/reclaim.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache_impl.h"
#include "tests/check.h"
#include "tests/conserve.h"

#define NTHREADS 8
#define BURST 2000

static magpool_cache_t *mk(const char *name, size_t size)
{
    struct magpool_config cfg = { .name = name, .size = size };
    return magpool_cache_create(&cfg);
}

/* Workers: a burst on every cache, then idle until told to go on; then
 * another burst (they must find their state emptied and work), then exit. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase, parked;
static magpool_cache_t *caches[3];
static magpool_cache_t *other; /* a cache the workers touch only after waking */
static _Atomic int bad;

static void burst(magpool_cache_t *c)
{
    void **o = malloc(BURST * sizeof *o);
    for (int i = 0; i < BURST; i++) {
        o[i] = magpool_alloc(c);
        if (o[i] == NULL)
            atomic_fetch_add(&bad, 1);
        else
            memset(o[i], 0x5a, 64);
    }
    for (int i = 0; i < BURST; i++)
        magpool_free(c, o[i]);
    free(o);
}

static void wait_phase(int p)
{
    pthread_mutex_lock(&mu);
    parked++;
    pthread_cond_broadcast(&cv);
    while (phase < p)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        burst(caches[i]);
    wait_phase(1);
    void *x = magpool_alloc(other); /* a slow path: the degraded reclaim gives back here */
    magpool_free(other, x);
    wait_phase(2);
    for (int i = 0; i < 3; i++)
        burst(caches[i]);
    return NULL;
}

static void await_parked(int n)
{
    pthread_mutex_lock(&mu);
    while (parked < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void set_phase(int p)
{
    pthread_mutex_lock(&mu);
    phase = p;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static uint64_t held(magpool_cache_t *c, struct magpool_stats *st)
{
    magpool_cache_stats(c, st);
    return st->in_magazines;
}

/* degraded: no membarrier, so the idle owners are only asked. */
static void scenario(bool degraded)
{
    phase = parked = 0;
    for (int i = 0; i < 3; i++)
        caches[i] = mk(i == 0 ? "idle-a" : i == 1 ? "idle-b" : "idle-c", i == 0 ? 64 : i == 1 ? 128 : 1000);
    other = mk("idle-other", 32);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    await_parked(NTHREADS);

    struct magpool_stats st;
    CHECK_MSG(held(caches[0], &st) >= NTHREADS * 100u, "idle threads hold %llu objects before shrink",
              (unsigned long long)st.in_magazines);
    CHECK(st.threads_bytes == st.in_magazines * st.stride);
    CHECK(magpool_cache_shrink(caches[0]) == 0);
    uint64_t after = held(caches[0], &st);
    if (!degraded) {
        CHECK_MSG(after == 0, "shrink left %llu objects in idle threads' magazines", (unsigned long long)after);
        CHECK_MSG(st.idle_reclaims >= NTHREADS, "idle_reclaims %llu", (unsigned long long)st.idle_reclaims);
        CHECK(st.in_depot == 0 && st.idle_asked == 0);
        /* magpool_reap takes the rest, from every cache */
        magpool_reap();
        CHECK(held(caches[1], &st) == 0 && st.idle_reclaims >= NTHREADS);
        CHECK(held(caches[2], &st) == 0);
    } else {
        CHECK_MSG(after >= NTHREADS * 100u, "degraded shrink took %llu objects it cannot reach",
                  (unsigned long long)after);
        CHECK(st.idle_asked >= 1 && st.idle_reclaims == 0);
        magpool_reap();
    }
    for (int i = 0; i < 3; i++)
        CHECK(conserved(caches[i], NULL));

    /* Wake them: one slow path each (on `other`); in degraded mode that is
     * where they give back. */
    parked = 0;
    set_phase(1);
    await_parked(NTHREADS);
    if (degraded) {
        CHECK_MSG(held(caches[0], &st) == 0, "asked owners still hold %llu objects after a slow path",
                  (unsigned long long)st.in_magazines);
        CHECK(held(caches[1], &st) == 0);
    }
    set_phase(2);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    CHECK(atomic_load(&bad) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(conserved(caches[i], NULL));
        CHECK(magpool_cache_destroy(caches[i]) == 0);
    }
    CHECK(magpool_cache_destroy(other) == 0);
}

/* Destroyed caches still registered (kept by a holder). */
static int count_zombies(void)
{
    int zombies = 0;
    pthread_mutex_lock(&mp_registry_lock);
    for (unsigned id = 1; id < MAGPOOL_MAX_CACHES; id++) {
        struct magpool_cache *c = mp_load_relaxed(&mp_caches[id]);
        zombies += c != NULL && mp_load_relaxed(&c->c_destroyed);
    }
    pthread_mutex_unlock(&mp_registry_lock);
    return zombies;
}

/* One cache `name` (in all three slots) and `other`; one worker bursts in it
 * and parks, holding magazines of it. */
static pthread_t start_one_holder(const char *name, const char *other_name)
{
    phase = parked = 0;
    caches[0] = caches[1] = caches[2] = mk(name, 64);
    other = mk(other_name, 32);
    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    await_parked(1);
    return th;
}

/* An idle thread holding magazines of a cache being destroyed: the destroy
 * takes them itself (the handshake), so the cache is finalised at once, not
 * left a zombie until that thread's next slow path or exit.  Without
 * membarrier (the child test below) the zombie stays until then. */
static void test_zombie_released(void)
{
    pthread_t th = start_one_holder("idle-zombie", "idle-other2");
    struct magpool_stats st;
    CHECK(magpool_cache_stats(caches[0], &st) == 0);
    CHECK_MSG(st.in_magazines > 0, "the worker holds %llu rounds", (unsigned long long)st.in_magazines);
    long live = magpool_cache_destroy(caches[0]); /* the worker still holds magazines */
    CHECK(live == 0);
    int zombies = count_zombies();
    CHECK_MSG(zombies == 0, "%d zombies after destroy", zombies);
    magpool_reap();
    zombies = count_zombies();
    CHECK_MSG(zombies == 0, "%d zombies after reap", zombies);
    /* the worker must not touch the destroyed cache again: end it here */
    pthread_cancel(th);
    pthread_join(th, NULL);
    CHECK(magpool_cache_destroy(other) == 0);
}

/* A bulk alloc whose loaded magazine is stopped (bounds swapped: a reclaim's R1,
 * idle.c) after the run read its rounds: the run's hit misses, and the run
 * must take the slow path instead of counting the objects as copied (it used
 * to return whatever the caller's array held).  A second thread plays the
 * reclaimer exactly: it holds the owner's gate, swaps the bounds, and later
 * puts them back (R4 for an owner found busy) and lets the gate go; the
 * owner's slow path waits at the gate meanwhile, as it would. */
struct fake_reclaim {
    struct mp_thread *owner;
    struct mp_tcache *tc;
    void **low, **high;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopped;
};

static void *fake_reclaimer(void *arg)
{
    struct fake_reclaim *r = arg;
    pthread_mutex_lock(&r->owner->th_gate);
    r->low = mp_load_relaxed(&r->tc->tc_low);
    r->high = mp_load_relaxed(&r->tc->tc_high);
    mp_store_relaxed(&r->tc->tc_high, r->low);
    mp_store_relaxed(&r->tc->tc_low, r->high);
    pthread_mutex_lock(&r->mu);
    r->stopped = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    usleep(20000); /* the owner runs into the stopped magazine meanwhile */
    mp_store_relaxed(&r->tc->tc_low, r->low);
    mp_store_relaxed(&r->tc->tc_high, r->high);
    pthread_mutex_unlock(&r->owner->th_gate);
    return NULL;
}

static void test_bulk_stopped(void)
{
    magpool_cache_t *c = mk("idle-bulk", 64);
    void *objs[40];
    CHECK(magpool_alloc_bulk(c, 40, objs, 0) == 40);
    magpool_free_bulk(c, 40, objs);
    struct fake_reclaim r = { .owner = mp_self, .tc = &mp_self->th_tc[c->c_id] };
    CHECK_MSG(mp_tc_rounds(r.tc) >= 20, "rounds %u", (unsigned)mp_tc_rounds(r.tc));
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    for (size_t n = 1; n <= 20; n += 19) { /* the inline run and the long one */
        r.stopped = false;
        pthread_t th;
        pthread_create(&th, NULL, fake_reclaimer, &r);
        pthread_mutex_lock(&r.mu);
        while (!r.stopped)
            pthread_cond_wait(&r.cv, &r.mu);
        pthread_mutex_unlock(&r.mu);
        void *got[20];
        for (size_t i = 0; i < n; i++)
            got[i] = (void *)&got; /* not an object */
        CHECK(magpool_alloc_bulk(c, n, got, 0) == n);
        pthread_join(th, NULL);
        int bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += got[i] == (void *)&got || magpool_cache_of(got[i]) != c;
        CHECK_MSG(bad == 0, "bulk alloc of %zu from a stopped magazine returned %d non-objects", n, bad);
        if (bad == 0)
            magpool_free_bulk(c, n, got);
    }
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

/* An object limit reached while an idle thread holds free objects: the
 * allocation takes them back instead of failing. */
static void test_limit_pressure(void)
{
    phase = parked = 0;
    struct magpool_config cfg = { .name = "idle-limit", .size = 64, .max_objects = BURST };
    caches[0] = caches[1] = caches[2] = magpool_cache_create(&cfg);
    other = mk("idle-other3", 32);
    pthread_t th;
    pthread_create(&th, NULL, worker, NULL);
    await_parked(1);
    struct magpool_stats st;
    CHECK(held(caches[0], &st) > 0);
    void **o = malloc(BURST * sizeof *o);
    int got = 0;
    for (int i = 0; i < BURST; i++)
        if ((o[got] = magpool_alloc(caches[0])) != NULL)
            got++;
    CHECK_MSG(got == BURST, "only %d of %d objects under a limit of %d while a thread idles", got, BURST, BURST);
    CHECK(magpool_cache_stats(caches[0], &st) == 0 && st.idle_reclaims >= 1);
    for (int i = 0; i < got; i++)
        magpool_free(caches[0], o[i]);
    free(o);
    parked = 0;
    set_phase(1);
    await_parked(1);
    set_phase(2);
    pthread_join(th, NULL);
    CHECK(conserved(caches[0], NULL));
    CHECK(magpool_cache_destroy(caches[0]) == 0);
    CHECK(magpool_cache_destroy(other) == 0);
}

/* Three caches of 64, 128 and 256 bytes named `name` and `other`; NTHREADS
 * workers burst in them and park (phase 0). */
static void start_parked(const char *name, const char *other_name, pthread_t *th)
{
    phase = parked = 0;
    for (int i = 0; i < 3; i++)
        caches[i] = mk(name, 64 << i);
    other = mk(other_name, 32);
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    await_parked(NTHREADS);
}

/* Phase 2 (their last bursts), join them, check and destroy the caches. */
static void finish_parked(pthread_t *th)
{
    set_phase(2);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) {
        CHECK(conserved(caches[i], NULL));
        CHECK(magpool_cache_destroy(caches[i]) == 0);
    }
    CHECK(magpool_cache_destroy(other) == 0);
}

/* With the reaper on (the default) and no shrink at all, idle threads'
 * magazines come back on their own: polled for up to 10 s (a loaded
 * machine), expected within a few reap intervals (100 ms). */
static void test_reaper(void)
{
    pthread_t th[NTHREADS];
    start_parked("reaper", "reaper-other", th);
    struct magpool_stats st;
    uint64_t left = 0;
    for (int ms = 0; ms < 10000; ms += 10) {
        left = held(caches[0], &st) + held(caches[1], &st) + held(caches[2], &st);
        if (left == 0)
            break;
        usleep(10000);
    }
    CHECK_MSG(left == 0, "the reaper left %llu objects in idle threads' magazines after 10 s",
              (unsigned long long)left);
    CHECK(held(caches[0], &st) == 0 && st.idle_reclaims >= NTHREADS);
    parked = 0;
    set_phase(1);
    await_parked(NTHREADS);
    finish_parked(th);
}

/* The stats' idle share, where it matters (no membarrier: the reaper can
 * only tell, not take): parked threads' magazines become threads_idle_bytes
 * after two reaper passes; one slow path each makes them active again. */
static void test_idle_bytes_degraded(void)
{
    pthread_t th[NTHREADS];
    start_parked("idle-bytes", "idle-bytes-other", th);
    struct magpool_stats st;
    CHECK(held(caches[0], &st) >= NTHREADS * 100u);
    for (int ms = 0; ms < 10000 && st.threads_idle_bytes < st.threads_bytes; ms += 10) {
        usleep(10000);
        held(caches[0], &st);
    }
    CHECK_MSG(st.threads_bytes > 0 && st.threads_idle_bytes == st.threads_bytes,
              "parked threads: %llu bytes held, %llu of them idle", (unsigned long long)st.threads_bytes,
              (unsigned long long)st.threads_idle_bytes);
    parked = 0;
    set_phase(1); /* a slow path each, on `other`: active again */
    await_parked(NTHREADS);
    held(caches[0], &st);
    CHECK_MSG(st.threads_bytes > 0 && st.threads_idle_bytes < st.threads_bytes,
              "woken threads: %llu bytes held, %llu of them idle", (unsigned long long)st.threads_bytes,
              (unsigned long long)st.threads_idle_bytes);
    finish_parked(th);
}

static void degraded_reaper(void)
{
    setenv("MAGPOOL_MEMBARRIER", "0", 1);
    test_idle_bytes_degraded();
}

/* Without membarrier the destroy cannot reach an idle holder: the cache is
 * a zombie until the holder's next slow path or its exit. */
static void test_zombie_degraded(void)
{
    pthread_t th = start_one_holder("idle-zombie-degraded", "idle-other3");
    CHECK(magpool_cache_destroy(caches[0]) == 0);
    int zombies = count_zombies();
    CHECK_MSG(zombies == 1, "%d zombies after destroy, degraded", zombies);
    pthread_cancel(th); /* its exit gives the magazines back */
    pthread_join(th, NULL);
    zombies = count_zombies();
    CHECK_MSG(zombies == 0, "%d zombies after the holder's exit", zombies);
    CHECK(magpool_cache_destroy(other) == 0);
}

static void in_child(void (*fn)(void), const char *what)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(check_done());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s child: status %#x", what, status);
}

static void degraded(void)
{
    setenv("MAGPOOL_MEMBARRIER", "0", 1);
    setenv("MAGPOOL_REAPER", "0", 1);
    scenario(true);
    CHECK(!mp_idle_reclaim_available());
    test_zombie_degraded();
}

/* Thread churn: an exiting thread parks its tcache array zeroed with
 * memset, resident (no madvise at exit: a TLB shootdown per exit), and
 * magpool_reap gives those pages back. */
static pthread_barrier_t churn_bar;
static void *churn_worker(void *arg)
{
    burst(arg);
    pthread_barrier_wait(&churn_bar); /* all four hold an array at once */
    return NULL;
}

static void test_parked_arrays(void)
{
    magpool_cache_t *c = mk("parked", 64);
    magpool_free(c, magpool_alloc(c)); /* this thread's state first: it takes no parked array later */
    pthread_t ths[4];
    pthread_barrier_init(&churn_bar, NULL, 4);
    for (int i = 0; i < 4; i++) /* at once: four arrays */
        CHECK(pthread_create(&ths[i], NULL, churn_worker, c) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(ths[i], NULL);
    CHECK(bad == 0);
    size_t dirty = 0, d;
    void *tc;
    for (unsigned i = 0; (tc = mp_thread_spare_peek(i, &d)) != NULL; i++)
        dirty += d;
    CHECK(dirty >= 4 * 4096); /* parked resident */
    magpool_reap();
    unsigned n = 0;
    for (unsigned i = 0; (tc = mp_thread_spare_peek(i, &d)) != NULL; i++, n++) {
        unsigned char vec[1] = { 1 };
        CHECK(d == 0);
        CHECK(mincore(tc, 4096, vec) == 0 && (vec[0] & 1) == 0); /* not resident */
    }
    CHECK(n >= 4);
    /* new threads take parked arrays and work */
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&ths[i], NULL, churn_worker, c) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(ths[i], NULL);
    pthread_barrier_destroy(&churn_bar);
    CHECK(bad == 0);
    magpool_thread_flush();
    CHECK(magpool_cache_destroy(c) == 0);
}

int main(void)
{
    /* Each environment is read once per process (at the first cache or
     * reclaim): the degraded mode and the reaper each in a child, then the
     * explicit reclaims here with the reaper off, so that what they take is
     * theirs to count. */
    in_child(degraded, "degraded-mode");
    in_child(test_reaper, "reaper");
    in_child(degraded_reaper, "degraded-reaper");
    setenv("MAGPOOL_REAPER", "0", 1);
    CHECK(mp_idle_reclaim_available());
    test_parked_arrays();
    scenario(false);
    test_bulk_stopped();
    test_limit_pressure();
    test_zombie_released();
    return check_done();
}
