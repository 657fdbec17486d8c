/*
 * Multi-threaded core tests: threads exiting with full magazines strand
 * nothing; objects freed by threads that did not allocate them; caches
 * destroyed while other (idle) threads still hold magazines for them; and
 * 16 threads trading objects through shared slots, with a per-object owner
 * word proving no object is ever live twice.  The conservation equation (I1)
 * is checked after every scenario, at quiescence (after join).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "magpool/magpool.h"
#include "check.h"
#include "conserve.h"

#ifdef CHECK_SANITIZED
#define SCALE 4
#else
#define SCALE 1
#endif

static magpool_cache_t *mk(const char *name, size_t size)
{
    struct magpool_config cfg = { .name = name, .size = size };
    return magpool_cache_create(&cfg);
}

static void run(int n, void *(*fn)(void *), void *args, size_t argsz)
{
    pthread_t t[64];
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, fn, args ? (char *)args + (size_t)i * argsz : NULL);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* ---- 1: threads exit with full magazines ----------------------------------------- */

static magpool_cache_t *g_exit_cache;
static void *exit_full(void *arg)
{
    (void)arg;
    enum { N = 2000 };
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = magpool_alloc(g_exit_cache);
    for (int i = 0; i < N; i++)
        magpool_free(g_exit_cache, p[i]);
    return NULL; /* exits holding a full loaded and previous magazine */
}

static void test_exit_flush(void)
{
    g_exit_cache = mk("exit", 64);
    run(8, exit_full, NULL, 0);
    struct magpool_stats st;
    CHECK(conserved(g_exit_cache, &st));
    CHECK(st.in_magazines == 0); /* nothing stranded with the dead threads */
    CHECK(st.in_use == 0);
    CHECK(st.allocs == 8 * 2000 && st.frees == 8 * 2000); /* counters survive exit */
    CHECK(st.in_depot + st.in_slabs == st.constructed);
    CHECK(magpool_cache_shrink(g_exit_cache) == 0);
    CHECK(conserved(g_exit_cache, &st));
    CHECK(st.in_depot == 0 && st.constructed == st.in_slabs);
    CHECK(magpool_cache_destroy(g_exit_cache) == 0);
}

/* ---- 2: cross-thread frees -------------------------------------------------------- */

enum { XN = 4000 };
static magpool_cache_t *g_x;
static void *g_xobjs[4][XN];
static void *x_alloc(void *arg)
{
    void **p = arg;
    for (int i = 0; i < XN; i++) {
        p[i] = magpool_alloc(g_x);
        memset(p[i], 0x5a, 32);
    }
    return NULL;
}
static void *x_free(void *arg)
{
    void **p = arg;
    for (int i = 0; i < XN; i++)
        magpool_free(g_x, p[i]);
    return NULL;
}

static void test_cross_thread(void)
{
    g_x = mk("cross", 32);
    run(4, x_alloc, g_xobjs, sizeof g_xobjs[0]);
    struct magpool_stats st;
    CHECK(conserved(g_x, &st));
    CHECK(st.in_use == 4 * XN);
    /* free everything from other threads (array i freed by thread i, which
     * never allocated these objects: the allocators are gone) */
    run(4, x_free, g_xobjs, sizeof g_xobjs[0]);
    CHECK(conserved(g_x, &st));
    CHECK(st.in_use == 0 && st.in_magazines == 0);
    CHECK(magpool_cache_destroy(g_x) == 0);
}

/* ---- 3: destroy while idle threads hold magazines -------------------------------- */

static magpool_cache_t *g_dc, *g_other;
static pthread_barrier_t g_bar;
static void *g_keep[4];
static int g_main_frees; /* scenario 2: main frees the kept objects */
static void *holder(void *arg)
{
    long i = (long)(intptr_t)arg;
    void *p[100];
    for (int k = 0; k < 100; k++)
        p[k] = magpool_alloc(g_dc);
    for (int k = 1; k < 100; k++)
        magpool_free(g_dc, p[k]);
    g_keep[i] = p[0];           /* one live object each */
    pthread_barrier_wait(&g_bar); /* holding magazines for g_dc */
    pthread_barrier_wait(&g_bar); /* main destroyed g_dc */
    if (!g_main_frees)
        magpool_free(g_dc, p[0]); /* a free into the zombie */
    /* slow paths on another cache notice the destroy generation */
    for (int k = 0; k < 100; k++)
        p[k] = magpool_alloc(g_other);
    for (int k = 0; k < 100; k++)
        magpool_free(g_other, p[k]);
    pthread_barrier_wait(&g_bar);
    return NULL;
}

static void test_destroy_with_holders(void)
{
    g_dc = mk("held", 96);
    g_other = mk("other", 96);
    pthread_barrier_init(&g_bar, NULL, 5);
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, holder, (void *)(intptr_t)i);
    pthread_barrier_wait(&g_bar);
    struct magpool_stats st;
    CHECK(conserved(g_dc, &st));
    CHECK(st.in_use == 4);
    CHECK(st.in_magazines > 0);
    CHECK(magpool_cache_destroy(g_dc) == 4); /* zombie: 4 live, holders */
    CHECK(magpool_cache_of(g_keep[0]) == g_dc);
    pthread_barrier_wait(&g_bar);
    pthread_barrier_wait(&g_bar);
    /* every holder flushed (generation) and freed its object: finalised */
    CHECK(magpool_cache_of(g_keep[0]) != g_dc); /* its pages may serve "other" now */
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&g_bar);
    CHECK(conserved(g_other, &st));
    CHECK(st.in_use == 0);

    /* idle holders that simply exit: the exit flush finalises the zombie */
    g_dc = mk("held2", 96);
    g_main_frees = 1;
    pthread_barrier_init(&g_bar, NULL, 5);
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, holder, (void *)(intptr_t)i);
    pthread_barrier_wait(&g_bar);
    for (int i = 0; i < 4; i++) /* main frees their live objects */
        magpool_free(g_dc, g_keep[i]);
    /* Nothing live, but held by idle threads: with membarrier the destroy
     * takes their magazines itself (test_idle), without it the cache stays a
     * zombie until they exit; either way it is gone after the exits. */
    CHECK(magpool_cache_destroy(g_dc) == 0);
    pthread_barrier_wait(&g_bar);
    pthread_barrier_wait(&g_bar);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&g_bar);
    CHECK(magpool_cache_of(g_keep[1]) != g_dc);
    CHECK(magpool_cache_destroy(g_other) == 0);
}

/* ---- 4: 16 threads trading objects ------------------------------------------------ */

#define TN 16
#define SLOTS 64
struct tobj {
    _Atomic uint64_t owner; /* 0 = free; else thread id + 1 */
    uint64_t seq;
    char pad[40];
};
static magpool_cache_t *g_tc[2];
static _Atomic(struct tobj *) g_slots[SLOTS];
static _Atomic int g_twice;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void tput(int c, struct tobj *o, uint64_t me)
{
    if (atomic_exchange_explicit(&o->owner, 0, memory_order_relaxed) == 0)
        atomic_fetch_add(&g_twice, 1);
    (void)me;
    magpool_free(g_tc[c], o);
}

static struct tobj *tget(int c, uint64_t me)
{
    struct tobj *o = magpool_alloc(g_tc[c]);
    if (o == NULL)
        return NULL;
    if (atomic_exchange_explicit(&o->owner, me, memory_order_relaxed) != 0)
        atomic_fetch_add(&g_twice, 1); /* handed out while live */
    o->seq++;
    return o;
}

static void ctor_t(void *p, void *arg)
{
    (void)arg;
    struct tobj *o = p;
    atomic_init(&o->owner, 0);
    o->seq = 0;
}

struct targ {
    uint64_t id;
};
static void *trader(void *arg)
{
    struct targ *a = arg;
    uint64_t me = a->id + 1, s = 0x9E3779B97F4A7C15ull * me;
    enum { LOCAL = 256 };
    struct tobj *mine[2][LOCAL] = { { 0 } };
    int ops = 200000 / SCALE / (TN / 4);
    for (int i = 0; i < ops; i++) {
        uint64_t r = rnd(&s);
        int c = (int)(r & 1);
        int k = (int)((r >> 8) % LOCAL);
        if (mine[c][k] == NULL) {
            mine[c][k] = tget(c, me);
        } else if ((r >> 20) % 4 == 0 && c == 0) {
            /* hand it to whoever takes the slot; free what was there */
            struct tobj *old = atomic_exchange_explicit(&g_slots[(r >> 24) % SLOTS], mine[c][k],
                                                        memory_order_acq_rel);
            mine[c][k] = NULL;
            if (old != NULL)
                tput(0, old, me);
        } else {
            tput(c, mine[c][k], me);
            mine[c][k] = NULL;
        }
        if ((r >> 40) % 5000 == 0)
            magpool_thread_flush();
    }
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < LOCAL; k++)
            if (mine[c][k])
                tput(c, mine[c][k], me);
    return NULL;
}

static void test_trading(void)
{
    for (int c = 0; c < 2; c++) {
        struct magpool_config cfg = { .name = c ? "trade-b" : "trade-a", .size = sizeof(struct tobj),
                                      .ctor = ctor_t, .mag_max = c ? 3 : 0 };
        g_tc[c] = magpool_cache_create(&cfg);
    }
    struct targ args[TN];
    for (int i = 0; i < TN; i++)
        args[i].id = (uint64_t)i;
    run(TN, trader, args, sizeof args[0]);
    for (int i = 0; i < SLOTS; i++) {
        struct tobj *o = atomic_exchange(&g_slots[i], NULL);
        if (o)
            tput(0, o, 99);
    }
    CHECK(atomic_load(&g_twice) == 0);
    struct magpool_stats st;
    for (int c = 0; c < 2; c++) {
        CHECK(conserved(g_tc[c], &st));
        CHECK(st.in_use == 0);
        CHECK(st.allocs == st.frees && st.allocs > 0);
    }
    CHECK(magpool_cache_shrink(g_tc[0]) == 0);
    CHECK(conserved(g_tc[0], &st));
    CHECK(magpool_cache_destroy(g_tc[0]) == 0);
    CHECK(magpool_cache_destroy(g_tc[1]) == 0);
}

/* ---- 5: NOWAIT from a thread with no state yet ----------------------------------- */

static magpool_cache_t *g_nw;
static void *nowait_fresh(void *arg)
{
    int *res = arg;
    errno = 0;
    void *o = magpool_alloc_flags(g_nw, MAGPOOL_NOWAIT);
    /* served from a partial slab (try-lock), or EAGAIN: never a system call */
    res[0] = o != NULL || errno == EAGAIN;
    if (o != NULL)
        magpool_free(g_nw, o);
    return NULL;
}

static void test_nowait_fresh(void)
{
    g_nw = mk("nowait", 64);
    void *o = magpool_alloc(g_nw); /* a partial slab exists now */
    int res[1] = { 0 };
    run(1, nowait_fresh, res, sizeof res);
    CHECK(res[0] == 1);
    magpool_free(g_nw, o);
    struct magpool_stats st;
    CHECK(conserved(g_nw, &st));
    CHECK(st.in_use == 0);
    CHECK(magpool_cache_destroy(g_nw) == 0);
}

/* ---- 6: magpool_reap (as NOFAIL retries do) racing with create/destroy ---------- */

static _Atomic int g_reap_stop;
static void *reaper(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_reap_stop))
        magpool_reap();
    return NULL;
}

static void test_reap_vs_destroy(void)
{
    pthread_t r;
    pthread_create(&r, NULL, reaper, NULL);
    int bad = 0;
    for (int i = 0; i < 200 / SCALE; i++) {
        magpool_cache_t *c = mk("churn", 48 + (size_t)(i % 4) * 16);
        void *p[64];
        for (int k = 0; k < 64; k++)
            p[k] = magpool_alloc(c);
        for (int k = 0; k < 64; k++)
            magpool_free(c, p[k]);
        long live = magpool_cache_destroy(c);
        bad += live != 0;
    }
    atomic_store(&g_reap_stop, 1);
    pthread_join(r, NULL);
    CHECK(bad == 0);
}

/* Thread churn recycles tcache arrays (thread.c): a new thread may get the
 * array of one that exited.  Its first calls must still miss (all-zero
 * entries), every object it gets must belong to the cache it asked, and
 * nothing may be left in magazines once all threads are gone, for caches
 * with low and high ids alike. */
enum { RC_CACHES = 24, RC_THREADS = 150, RC_OBJS = 40 };
static magpool_cache_t *g_rc[RC_CACHES];
static _Atomic int g_rc_bad;

static void *recycle_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *v[RC_OBJS];
    for (int k = 0; k < 3; k++) {
        magpool_cache_t *c = g_rc[(seed * 7 + (unsigned)k * 5) % RC_CACHES];
        for (int i = 0; i < RC_OBJS; i++) {
            v[i] = magpool_alloc(c);
            if (v[i] == NULL || magpool_cache_of(v[i]) != c)
                atomic_fetch_add(&g_rc_bad, 1);
            else
                memset(v[i], (int)seed, 32);
        }
        for (int i = 0; i < RC_OBJS; i++)
            magpool_free(c, v[i]);
    }
    return NULL;
}

static void test_recycled_tcaches(void)
{
    magpool_cache_t *filler[40];
    for (int i = 0; i < 40; i++) /* push later ids up */
        filler[i] = mk("rc-filler", 32);
    for (int i = 0; i < RC_CACHES; i++)
        g_rc[i] = mk("rc", 32 + 16 * (size_t)(i % 4));
    for (int i = 0; i < 40; i++)
        CHECK(magpool_cache_destroy(filler[i]) == 0);
    for (int i = 0; i < RC_THREADS / SCALE; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, recycle_worker, (void *)(uintptr_t)i) == 0);
        pthread_join(t, NULL);
    }
    CHECK(atomic_load(&g_rc_bad) == 0);
    for (int i = 0; i < RC_CACHES; i++) {
        struct magpool_stats st;
        CHECK(conserved(g_rc[i], &st));
        CHECK_MSG(st.in_use == 0 && st.in_magazines == 0, "%s: in_use %llu in_magazines %llu", st.name,
                  (unsigned long long)st.in_use, (unsigned long long)st.in_magazines);
        CHECK(magpool_cache_destroy(g_rc[i]) == 0);
    }
}

int main(void)
{
    test_exit_flush();
    test_cross_thread();
    test_destroy_with_holders();
    test_trading();
    test_nowait_fresh();
    test_reap_vs_destroy();
    test_recycled_tcaches();
    magpool_synchronize(NULL);
    return check_done();
}
