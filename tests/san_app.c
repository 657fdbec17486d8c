/*
 * An application built with -fsanitize=address or -fsanitize=thread against
 * the INSTALLED library (tests/sanitizer_app_test.sh), the way servers build
 * their sanitizer test builds: the application is instrumented, the system
 * library is not.  One scenario per run, named by argv[1]:
 *
 *   clean        every API: create, alloc, use, free, destroy; exit 0 with no
 *                report (ASan, LSan, TSan)
 *   keep         caches never destroyed, objects live at exit, one of them
 *                holding the only pointer to a malloc'd block: no leak report
 *   leak         a malloc'd block nobody points to: LSan must report it (the
 *                root regions hide only what is reachable)
 *   uaf-core     read of an object after magpool_free        (ASan reports)
 *   uaf-kmem     read after kmem_cache_free                  (ASan reports)
 *   uaf-mempool  read after mem_put                          (ASan reports)
 *   uaf-kmalloc  read after kfree (a size-class object)      (ASan reports)
 *   uaf-large    read after kfree of a page-span allocation  (ASan reports)
 *   uaf-deferred read after the grace period of a deferred free (ASan)
 *   overflow     write past an object into its free neighbour (ASan reports)
 *   handoff      objects written by one thread, freed, handed to others
 *                through magazines and the depot, written again (TSan: no
 *                report), plus deferred frees read inside read-side sections
 *   race         two threads write one live object with no synchronisation:
 *                TSan must still report it (the annotations order hand-offs
 *                only, not everything)
 */
#include <magpool/kmem_cache.h>
#include <magpool/magpool.h>
#include <magpool/mem_pool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item {
    long key;
    char *name;
    char pad[48];
};

static volatile long sink;

static int clean(void)
{
    struct magpool_config cfg = { .name = "san-core", .size = 64 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    struct mem_pool *mp = mem_pool_new(struct item, 64);
    struct kmem_cache *kc = kmem_cache_create("san-kmem", sizeof(struct item), 0, 0, NULL);
    if (!c || !mp || !kc)
        return 2;
    for (int round = 0; round < 3; round++) {
        void *objs[2000];
        for (int i = 0; i < 2000; i++) {
            objs[i] = magpool_alloc(c);
            memset(objs[i], i, 64);
        }
        for (int i = 0; i < 2000; i++)
            magpool_free(c, objs[i]);
        struct item *a = mem_get0(mp), *b = kmem_cache_zalloc(kc, GFP_KERNEL);
        char *s = kmalloc(100, GFP_KERNEL), *big = kmalloc(100000, GFP_KERNEL);
        a->name = strdup("kept in a pooled object");
        b->key = a->key + 1;
        memset(s, 1, 100);
        memset(big, 2, 100000);
        free(a->name);
        mem_put(a);
        kmem_cache_free(kc, b);
        kfree(s);
        kfree(big);
        void *d = magpool_alloc(c);
        magpool_free_deferred(c, d);
        magpool_synchronize(NULL);
    }
    kmem_cache_destroy(kc);
    mem_pool_destroy(mp);
    return magpool_cache_destroy(c) == 0 ? 0 : 3;
}

static int keep(void)
{
    struct kmem_cache *kc = kmem_cache_create("san-keep", sizeof(struct item), 0, 0, NULL);
    struct mem_pool *mp = mem_pool_new(struct item, 16);
    if (!kc || !mp)
        return 2;
    struct item *a = kmem_cache_alloc(kc, GFP_KERNEL), *b = mem_get(mp);
    a->name = malloc(100); /* reachable only through the pooled object */
    strcpy(a->name, "only the pool points here");
    b->name = malloc(50);
    static struct item *root;
    root = a;
    (void)root;
    sink = (long)b; /* b is reachable through sink's value only as an integer: still a root word */
    return 0;
}

/* In a thread of its own, so no stale copy of the pointer survives on a
 * stack LSan scans (a joined thread's stack is not scanned). */
static void *leak_thread(void *arg)
{
    struct kmem_cache *kc = arg;
    for (int i = 0; i < 16; i++) {
        struct item *a = kmem_cache_alloc(kc, GFP_KERNEL);
        a->name = malloc(77);
        a->name[0] = 'x';
        a->name = NULL; /* the block is now unreachable */
        kmem_cache_free(kc, a);
    }
    return NULL;
}

static int leak(void)
{
    struct kmem_cache *kc = kmem_cache_create("san-leak", sizeof(struct item), 0, 0, NULL);
    if (!kc)
        return 2;
    pthread_t t;
    pthread_create(&t, NULL, leak_thread, kc);
    pthread_join(t, NULL);
    return 0;
}

/* Frees obj through the API, then reads it: ASan must stop here. */
static int uaf(const char *which)
{
    char *p = NULL;
    if (!strcmp(which, "uaf-core")) {
        struct magpool_config cfg = { .name = "uaf-core-cache", .size = 40 };
        magpool_cache_t *c = magpool_cache_create(&cfg);
        p = magpool_alloc(c);
        magpool_free(c, p);
    } else if (!strcmp(which, "uaf-kmem")) {
        struct kmem_cache *kc = kmem_cache_create("uaf-kmem-cache", 96, 0, 0, NULL);
        p = kmem_cache_alloc(kc, GFP_KERNEL);
        kmem_cache_free(kc, p);
    } else if (!strcmp(which, "uaf-mempool")) {
        struct mem_pool *mp = mem_pool_new_fn(120, 8, "uaf-mempool-pool");
        p = mem_get(mp);
        mem_put(p);
    } else if (!strcmp(which, "uaf-kmalloc")) {
        p = kmalloc(200, GFP_KERNEL);
        kfree(p);
    } else if (!strcmp(which, "uaf-large")) {
        p = kmalloc(1 << 20, GFP_KERNEL);
        kfree(p);
    } else if (!strcmp(which, "uaf-deferred")) {
        struct magpool_config cfg = { .name = "uaf-deferred-cache", .size = 64 };
        magpool_cache_t *c = magpool_cache_create(&cfg);
        p = magpool_alloc(c);
        magpool_free_deferred(c, p);
        sink = p[3]; /* still fine: a reader may use it until the grace period ends */
        magpool_synchronize(NULL);
    } else if (!strcmp(which, "overflow")) {
        struct kmem_cache *kc = kmem_cache_create("overflow-cache", 64, 0, 0, NULL);
        p = kmem_cache_alloc(kc, GFP_KERNEL);
        /* The next slot is free (never handed out): writing past the end of
         * this 64-byte object is reported. */
        p[64 + 8] = 1;
        return 0;
    }
    if (p == NULL)
        return 2;
    fprintf(stderr, "reading %p after free\n", (void *)p);
    sink = p[5];
    return 0;
}

/* ---- TSan ------------------------------------------------------------------ */

#define HANDOFF_OBJS 4000
static magpool_cache_t *hc;
static struct kmem_cache *hk;
static struct mem_pool *hm;

static void *handoff_thread(void *arg)
{
    long seed = (long)arg;
    void *objs[HANDOFF_OBJS];
    for (int round = 0; round < 20; round++) {
        /* Each object is written by this thread, then freed: the magazines it
         * fills go to the depot, where the other threads pick them up. */
        for (int i = 0; i < HANDOFF_OBJS; i++) {
            objs[i] = magpool_alloc(hc);
            memset(objs[i], (int)(seed + i), 64);
        }
        for (int i = 0; i < HANDOFF_OBJS; i++)
            magpool_free(hc, objs[i]);
        for (int i = 0; i < HANDOFF_OBJS / 4; i++) {
            struct item *k = kmem_cache_alloc(hk, GFP_KERNEL);
            k->key = seed;
            objs[i] = k;
        }
        for (int i = 0; i < HANDOFF_OBJS / 4; i++)
            kmem_cache_free(hk, objs[i]);
        for (int i = 0; i < HANDOFF_OBJS / 4; i++) {
            struct item *m = mem_get(hm);
            m->key = seed;
            objs[i] = m;
        }
        for (int i = 0; i < HANDOFF_OBJS / 4; i++)
            mem_put(objs[i]);
        for (int i = 0; i < HANDOFF_OBJS / 4; i++) {
            char *s = kmalloc(64, GFP_KERNEL);
            s[0] = (char)seed;
            objs[i] = s;
        }
        for (int i = 0; i < HANDOFF_OBJS / 4; i++)
            kfree(objs[i]);
    }
    return NULL;
}

/* Deferred frees: a writer replaces the published object and frees the old
 * one deferred; readers read the published one inside read-side sections. */
static _Atomic(long *) published;
static _Atomic int stop;

static void *reader_thread(void *arg)
{
    long sum = 0;
    while (!atomic_load(&stop)) {
        magpool_read_enter(NULL);
        long *p = atomic_load_explicit(&published, memory_order_acquire);
        if (p != NULL)
            sum += p[0] + p[7];
        magpool_read_leave(NULL);
    }
    *(long *)arg = sum;
    return NULL;
}

static int handoff(void)
{
    struct magpool_config cfg = { .name = "handoff", .size = 64 };
    hc = magpool_cache_create(&cfg);
    hk = kmem_cache_create("handoff-kmem", sizeof(struct item), 0, 0, NULL);
    hm = mem_pool_new(struct item, 64);
    if (!hc || !hk || !hm)
        return 2;
    pthread_t t[4], r[2];
    long sums[2];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, handoff_thread, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, reader_thread, &sums[i]);
    for (int i = 0; i < 20000; i++) {
        long *n = magpool_alloc(hc);
        for (int j = 0; j < 8; j++)
            n[j] = i;
        long *old = atomic_exchange_explicit(&published, n, memory_order_acq_rel);
        if (old != NULL)
            magpool_free_deferred(hc, old);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    magpool_free_deferred(hc, atomic_exchange(&published, NULL));
    magpool_synchronize(NULL);
    kmem_cache_destroy(hk);
    mem_pool_destroy(hm);
    return magpool_cache_destroy(hc) == 0 ? 0 : 3;
}

static long *shared_obj;
static void *racer(void *arg)
{
    for (int i = 0; i < 1000; i++)
        shared_obj[0] += (long)arg; /* unsynchronised: a real race */
    return NULL;
}

static int race(void)
{
    struct magpool_config cfg = { .name = "race", .size = 64 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    shared_obj = magpool_alloc(c);
    pthread_t a, b;
    pthread_create(&a, NULL, racer, (void *)1L);
    pthread_create(&b, NULL, racer, (void *)2L);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    magpool_free(c, shared_obj);
    return 0;
}

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "clean";
    if (!strcmp(m, "clean"))
        return clean();
    if (!strcmp(m, "keep"))
        return keep();
    if (!strcmp(m, "leak"))
        return leak();
    if (!strncmp(m, "uaf-", 4) || !strcmp(m, "overflow"))
        return uaf(m);
    if (!strcmp(m, "handoff"))
        return handoff();
    if (!strcmp(m, "race"))
        return race();
    fprintf(stderr, "unknown scenario %s\n", m);
    return 2;
}
