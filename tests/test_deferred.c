/*
 * Deferred frees.  Readers inside read-side sections hold an object read
 * from a shared pointer and check it is not reused under them while writers
 * replace it, free the old one deferred, and allocate heavily (scribbling on
 * every object they get, so a premature reuse is seen).  Both the default
 * (ck_epoch) domain and a liburcu (urcu-memb) domain.  Also: stats count
 * deferred objects, and magpool_synchronize makes them reusable.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "magpool/magpool.h"
#include "check.h"
#include "conserve.h"
#include "depot.h"

#ifdef CHECK_SANITIZED
#define ITERS 3000
#else
#define ITERS 30000
#endif

#define MAGIC 0x5AFE5AFE5AFE5AFEull

struct node {
    _Atomic uint64_t magic; /* MAGIC while published or awaiting reclamation */
    _Atomic uint64_t gen;
    char pad[48];
};

/* ---- readers vs writers -------------------------------------------------------- */

static magpool_cache_t *g_c;
static magpool_domain_t *g_d;
static int g_urcu;
static _Atomic(struct node *) g_shared;
static _Atomic int g_stop, g_bad, g_reads;

static void *reader(void *arg)
{
    (void)arg;
    if (g_urcu)
        urcu_memb_register_thread();
    while (!atomic_load(&g_stop)) {
        magpool_read_enter(g_d);
        /* Acquire: pairs with the writer's release store of the pointer. */
        struct node *n = atomic_load_explicit(&g_shared, memory_order_acquire);
        uint64_t g = atomic_load_explicit(&n->gen, memory_order_relaxed);
        for (int k = 0; k < 50; k++) {
            if (atomic_load_explicit(&n->magic, memory_order_relaxed) != MAGIC ||
                atomic_load_explicit(&n->gen, memory_order_relaxed) != g) {
                atomic_fetch_add(&g_bad, 1);
                break;
            }
        }
        magpool_read_leave(g_d);
        atomic_fetch_add_explicit(&g_reads, 1, memory_order_relaxed);
    }
    if (g_urcu)
        urcu_memb_unregister_thread();
    return NULL;
}

static void *writer(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    struct node *junk[32];
    /* Start once a reader is reading: on a loaded machine the writers could
     * otherwise finish before any reader ran, and the test would check
     * nothing. */
    while (atomic_load(&g_reads) == 0)
        sched_yield();
    for (int i = 0; i < ITERS; i++) {
        struct node *n = magpool_alloc(g_c);
        atomic_store_explicit(&n->magic, MAGIC, memory_order_relaxed);
        atomic_store_explicit(&n->gen, id << 32 | (uint64_t)i, memory_order_relaxed);
        /* Release: publishes the node's fields to readers. */
        struct node *old = atomic_exchange_explicit(&g_shared, n, memory_order_acq_rel);
        magpool_free_deferred(g_c, old);
        /* heavy allocation: any object we get is scribbled on */
        int m = 1 + i % 32;
        for (int k = 0; k < m; k++) {
            junk[k] = magpool_alloc(g_c);
            atomic_store_explicit(&junk[k]->magic, 0xDEAD, memory_order_relaxed);
            atomic_store_explicit(&junk[k]->gen, ~0ull, memory_order_relaxed);
        }
        for (int k = 0; k < m; k++)
            magpool_free(g_c, junk[k]);
    }
    return NULL;
}

static void run_domain(magpool_domain_t *d, int urcu, const char *name)
{
    struct magpool_config cfg = { .name = name, .size = sizeof(struct node), .domain = d };
    g_c = magpool_cache_create(&cfg);
    CHECK(g_c != NULL);
    g_d = d;
    g_urcu = urcu;
    atomic_store(&g_stop, 0);
    atomic_store(&g_bad, 0);
    atomic_store(&g_reads, 0);
    struct node *first = magpool_alloc(g_c);
    atomic_store(&first->magic, MAGIC);
    atomic_store(&first->gen, 0);
    atomic_store(&g_shared, first);
    pthread_t r[2], w[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, reader, NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    CHECK_MSG(atomic_load(&g_bad) == 0, "%s: %d reads saw a reused object", name, atomic_load(&g_bad));
    CHECK(atomic_load(&g_reads) > 0);

    /* Not quiescent yet: a liburcu call_rcu thread may be running a batch's
     * callback right now, so (I1) is checked only after synchronize. */
    struct magpool_stats st;
    magpool_cache_stats(g_c, &st);
    CHECK(st.in_use == 1);
    magpool_free(g_c, atomic_exchange(&g_shared, NULL));
    magpool_synchronize(d); /* every batch sealed by the exited writers runs */
    CHECK(conserved(g_c, &st));
    CHECK_MSG(st.deferred == 0, "%s: deferred %llu after synchronize", name, (unsigned long long)st.deferred);
    CHECK(st.in_use == 0);
    CHECK(magpool_cache_destroy(g_c) == 0);
}

/* ---- stats and synchronize ------------------------------------------------------- */

static void test_counts(magpool_domain_t *d, const char *name)
{
    enum { N = 10 };
    struct magpool_config cfg = { .name = name, .size = 64, .domain = d };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = magpool_alloc(c);
    magpool_read_enter(d);
    for (int i = 0; i < N; i++)
        magpool_free_deferred(c, p[i]);
    magpool_read_leave(d);
    struct magpool_stats st;
    CHECK(conserved(c, &st));
    CHECK(st.deferred == N);
    CHECK(st.in_use == 0);
    magpool_synchronize(d);
    CHECK(conserved(c, &st));
    CHECK(st.deferred == 0);
    /* they are reusable: allocating enough finds every one of them */
    enum { M = 2000 };
    static void *q[M];
    int found = 0;
    for (int i = 0; i < M; i++) {
        q[i] = magpool_alloc(c);
        for (int k = 0; k < N; k++)
            found += q[i] == p[k];
    }
    CHECK_MSG(found == N, "%s: %d of %d deferred objects came back", name, found, N);
    for (int i = 0; i < M; i++)
        magpool_free(c, q[i]);
    /* a full batch seals itself (one retire per magazine) */
    for (int i = 0; i < M; i++)
        q[i] = magpool_alloc(c);
    /* Inside a read-side section no grace period can end, so no batch
     * callback runs (not even liburcu's call_rcu thread): stats are exact. */
    magpool_read_enter(d);
    for (int i = 0; i < M; i++)
        magpool_free_deferred(c, q[i]);
    CHECK(conserved(c, &st));
    CHECK(st.deferred == M);
    magpool_read_leave(d);
    magpool_thread_flush(); /* seals the partial batch */
    magpool_synchronize(d);
    CHECK(conserved(c, &st));
    CHECK(st.deferred == 0 && st.in_use == 0);
    /* destroy with deferred objects pending: clean once they pass */
    void *x = magpool_alloc(c);
    magpool_free_deferred(c, x);
    CHECK(magpool_cache_destroy(c) == 0);
    magpool_synchronize(d);
    CHECK(magpool_cache_of(x) == NULL);
}

/* TYPESAFE: shrink hands the empty slabs' release to the domain. */
static void test_typesafe(magpool_domain_t *d)
{
    struct magpool_config cfg = { .name = "typesafe", .size = 200, .flags = MAGPOOL_TYPESAFE,
                                  .domain = d };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    CHECK(c != NULL);
    static void *p[3000];
    for (int i = 0; i < 3000; i++)
        p[i] = magpool_alloc(c);
    for (int i = 0; i < 3000; i++)
        magpool_free(c, p[i]);
    struct magpool_stats st;
    CHECK(conserved(c, &st));
    magpool_read_enter(d); /* the deferred slab release cannot run yet */
    CHECK(magpool_cache_shrink(c) == 0);
    CHECK(conserved(c, &st));
    CHECK(st.in_use == 0 && st.in_depot == 0 && st.in_magazines == 0);
    magpool_read_leave(d);
    magpool_synchronize(d);
    CHECK(conserved(c, &st));
    CHECK(st.slabs == 0 && st.pages == 0);
    void *o = magpool_alloc(c); /* the cache still works */
    CHECK(o != NULL);
    magpool_free(c, o);
    CHECK(magpool_cache_destroy(c) == 0);
    magpool_synchronize(d);
    magpool_synchronize(magpool_domain_default());
}

/* A fresh thread's deferred frees: the first goes through the slow path
 * (batch magazine allocated), the rest append inline and a full batch seals
 * itself; thread exit seals the partial one.  Inside the freeing thread's
 * read-side section no batch can pass, so its count there is exact. */
enum { FRESH_N = 300 };
static magpool_cache_t *g_fresh;
static void *g_fresh_objs[FRESH_N];
static struct magpool_stats g_fresh_st;
static int g_fresh_ok;

static void *fresh_freer(void *arg)
{
    (void)arg;
    magpool_read_enter(NULL);
    for (int i = 0; i < FRESH_N; i++)
        magpool_free_deferred(g_fresh, g_fresh_objs[i]);
    g_fresh_ok = conserved(g_fresh, &g_fresh_st);
    magpool_read_leave(NULL);
    return NULL;
}

static void test_fresh_thread(void)
{
    struct magpool_config cfg = { .name = "fresh", .size = 64 };
    g_fresh = magpool_cache_create(&cfg);
    for (int i = 0; i < FRESH_N; i++)
        g_fresh_objs[i] = magpool_alloc(g_fresh);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fresh_freer, NULL) == 0);
    pthread_join(th, NULL);
    CHECK(g_fresh_ok);
    CHECK_MSG(g_fresh_st.deferred == FRESH_N && g_fresh_st.in_use == 0, "deferred %llu in_use %llu",
              (unsigned long long)g_fresh_st.deferred, (unsigned long long)g_fresh_st.in_use);
    struct magpool_stats st;
    magpool_synchronize(NULL);
    CHECK(conserved(g_fresh, &st));
    CHECK(st.deferred == 0 && st.in_use == 0);
    CHECK(magpool_cache_destroy(g_fresh) == 0);
}

/* Steady state: a deferred batch is an ordinary magazine of the cache's size
 * (its tail holds the retire node), so after its grace period it serves
 * allocations from the depot and, emptied, comes back as the next batch.
 * Rounds of "alloc a batch, free it deferred, synchronize" must then
 * allocate no magazine at all. */
static void test_batch_recycling(void)
{
    struct magpool_config cfg = { .name = "recycle", .size = 64 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    struct magpool_stats st;
    CHECK(magpool_cache_stats(c, &st) == 0);
    unsigned batch = st.mag_size > 8 ? st.mag_size - 8 : 1;
    void **v = calloc(batch, sizeof(void *));
    uint64_t before = 0;
    for (int round = 0; round < 60; round++) {
        if (round == 10)
            before = mp_mag_area_allocs();
        for (unsigned i = 0; i < batch; i++)
            v[i] = magpool_alloc(c);
        for (unsigned i = 0; i < batch; i++)
            magpool_free_deferred(c, v[i]);
        magpool_synchronize(NULL);
    }
    uint64_t grown = mp_mag_area_allocs() - before;
    CHECK_MSG(grown <= 2, "50 steady rounds of %u deferred frees allocated %llu magazines", batch,
              (unsigned long long)grown);
    CHECK(conserved(c, &st) && st.in_use == 0);
    free(v);
    magpool_thread_flush();
    CHECK(magpool_cache_destroy(c) == 0);
}

/* ---- deferred double frees (issue #14 A) ---------------------------------------- *
 * The deferred path catches the immediate double free as magpool_free does:
 * obj equal to the batch's last entry, or to the loaded magazine's top round
 * (just freed by magpool_free).  MAGPOOL_VERIFY catches every one.  Each
 * child would otherwise hand the object out twice: the check is that it
 * dies with the one-line report. */
static magpool_cache_t *df_cache(const char *name, unsigned flags)
{
    struct magpool_config cfg = { .name = name, .size = 64, .flags = flags };
    return magpool_cache_create(&cfg);
}
static void df_deferred_twice(void *arg) /* first free of a batch, then its repeat */
{
    magpool_cache_t *c = df_cache("df-twice", (unsigned)(uintptr_t)arg);
    void *a = magpool_alloc(c);
    magpool_free_deferred(c, a);
    magpool_free_deferred(c, a);
}
static void df_deferred_twice_warm(void *arg) /* the append fast path */
{
    magpool_cache_t *c = df_cache("df-warm", (unsigned)(uintptr_t)arg);
    void *v[4];
    for (int i = 0; i < 4; i++)
        v[i] = magpool_alloc(c);
    for (int i = 0; i < 4; i++)
        magpool_free_deferred(c, v[i]);
    magpool_free_deferred(c, v[3]);
}
static void df_free_then_deferred(void *arg)
{
    magpool_cache_t *c = df_cache("df-free-def", (unsigned)(uintptr_t)arg);
    void *a = magpool_alloc(c), *b = magpool_alloc(c);
    magpool_free_deferred(c, b); /* a batch exists: the fast path */
    magpool_free(c, a);
    magpool_free_deferred(c, a);
}
static void df_free_then_deferred_cold(void *arg)
{
    magpool_cache_t *c = df_cache("df-free-cold", (unsigned)(uintptr_t)arg);
    void *a = magpool_alloc(c);
    magpool_free(c, a);
    magpool_free_deferred(c, a); /* no batch yet: the slow path */
}
/* Not in a row, or deferred then magpool_free: only MAGPOOL_VERIFY. */
static void df_verify_later(void *arg)
{
    (void)arg;
    magpool_cache_t *c = df_cache("df-verify", MAGPOOL_VERIFY);
    void *a = magpool_alloc(c), *b = magpool_alloc(c);
    magpool_free_deferred(c, a);
    magpool_free_deferred(c, b);
    magpool_free_deferred(c, a);
}
static void df_verify_deferred_then_free(void *arg)
{
    (void)arg;
    magpool_cache_t *c = df_cache("df-verify-free", MAGPOOL_VERIFY);
    void *a = magpool_alloc(c);
    magpool_free_deferred(c, a);
    magpool_free(c, a);
}
/* Continue mode: the repeat is reported and dropped, so the object is handed
 * out once after the grace period, not twice. */
static void df_continue(void *arg)
{
    (void)arg;
    magpool_cache_t *c = df_cache("df-cont", MAGPOOL_DEBUG_CONTINUE);
    void *a = magpool_alloc(c);
    magpool_free_deferred(c, a);
    magpool_free_deferred(c, a);
    magpool_synchronize(NULL);
    int seen = 0;
    for (int i = 0; i < 4096; i++) /* past the loaded magazines, into the depot */
        seen += magpool_alloc(c) == a;
    printf("handed out %d time(s)\n", seen);
    fflush(stdout);
    _exit(seen == 1 ? 0 : 1);
}

static void test_deferred_double_free(void)
{
    void *plain = (void *)(uintptr_t)0, *verify = (void *)(uintptr_t)MAGPOOL_VERIFY;
    CHECK(check_death(df_deferred_twice, plain, "magpool: df-twice: double free at 0x"));
    CHECK(check_death(df_deferred_twice_warm, plain, "magpool: df-warm: double free at 0x"));
    CHECK(check_death(df_free_then_deferred, plain, "magpool: df-free-def: double free at 0x"));
    CHECK(check_death(df_free_then_deferred_cold, plain, "magpool: df-free-cold: double free at 0x"));
    CHECK(check_death(df_deferred_twice, verify, "magpool: df-twice: double free at 0x"));
    CHECK(check_death(df_deferred_twice_warm, verify, "magpool: df-warm: double free at 0x"));
    CHECK(check_death(df_free_then_deferred, verify, "magpool: df-free-def: double free at 0x"));
    CHECK(check_death(df_verify_later, NULL, "magpool: df-verify: double free at 0x"));
    CHECK(check_death(df_verify_deferred_then_free, NULL, "magpool: df-verify-free: double free at 0x"));
    char out[4096];
    int st = check_run_child(df_continue, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "magpool: df-cont: double free at 0x"),
              "continue mode: status %#x [%s]", st, out);
}

int main(void)
{
    magpool_domain_t *def = magpool_domain_default();
    urcu_memb_register_thread();
    magpool_domain_t *ud = magpool_domain_urcu(&urcu_memb_flavor);
    CHECK(ud != NULL);
    errno = 0;
    CHECK(magpool_domain_urcu(NULL) == NULL && errno == EINVAL);
    CHECK(magpool_domain_urcu(&urcu_memb_flavor) == ud);
    test_counts(def, "count-default");
    test_counts(ud, "count-urcu");
    run_domain(def, 0, "deferred-default");
    run_domain(ud, 1, "deferred-urcu");
    test_typesafe(def);
    test_typesafe(ud);
    test_fresh_thread();
    test_batch_recycling();
    test_deferred_double_free();
    magpool_synchronize(def);
    urcu_memb_unregister_thread();
    return check_done();
}
