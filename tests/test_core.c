/*
 * Core API unit tests (single thread): every call, each bad argument with its
 * errno, round trips with no object handed out twice, constructor semantics,
 * the allocation flags, limits, bulk all-or-nothing, the immediate double-free
 * diagnostic, shrink returning RSS, destroy with live objects (zombie), foreach
 * and magpool_cache_of, the depot's backlog (engages on a flow, counted,
 * bounded, released by shrink, by an idle interval and at an object limit).
 * The conservation equation (I1) is checked after every scenario.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "magpool/magpool.h"
#include "check.h"
#include "conserve.h"
#include "fastpath.h" /* mp_bulk_wide, mp_bulk_masked: the long bulk runs' kernel switches */


/* ---- helpers ---------------------------------------------------------------- */

/* The long bulk runs' kernels, best first: pass 0 leaves the CPU's choice
 * (masked, AVX2 or baseline), pass 1 turns the masked kernels off, pass 2
 * the AVX2 ones (cpu.h); kernel_pass(3) restores the choice.  Death-test
 * children inherit the switches. */
static void kernel_pass(int pass)
{
    static bool wide, masked, saved;
    if (!saved) {
        wide = mp_bulk_wide;
        masked = mp_bulk_masked;
        saved = true;
    }
    mp_bulk_wide = wide && pass < 2;
    mp_bulk_masked = masked && pass < 1;
}
#define KERNEL_PASSES 3
#define KERNEL_NOW ((int)mp_bulk_wide + (int)mp_bulk_masked) /* 2 masked, 1 AVX2, 0 baseline */

static uint64_t stat_in_use(magpool_cache_t *c)
{
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    return st.in_use;
}

/* Open-addressing pointer set: detects an object handed out twice. */
struct pset {
    uintptr_t *slot;
    size_t cap;
};
static void pset_init(struct pset *s, size_t n)
{
    s->cap = 1;
    while (s->cap < 2 * n)
        s->cap <<= 1;
    s->slot = calloc(s->cap, sizeof *s->slot);
}
static int pset_add(struct pset *s, const void *p) /* 0 if already there */
{
    uintptr_t k = (uintptr_t)p;
    size_t i = (size_t)((k >> 4) * 0x9E3779B97F4A7C15ull) & (s->cap - 1);
    while (s->slot[i] != 0) {
        if (s->slot[i] == k)
            return 0;
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = k;
    return 1;
}

static long rss_pages(void)
{
    return (long)(check_rss_bytes() / 4096);
}

static magpool_cache_t *mk(const char *name, size_t size)
{
    struct magpool_config cfg = { .name = name, .size = size };
    return magpool_cache_create(&cfg);
}

/* ---- bad arguments -------------------------------------------------------------- */

static void test_bad_args(void)
{
    struct magpool_config cfg = { .name = "bad", .size = 64 };
    errno = 0;
    CHECK(magpool_cache_create(NULL) == NULL && errno == EINVAL);
    cfg.size = 0;
    errno = 0;
    CHECK(magpool_cache_create(&cfg) == NULL && errno == EINVAL);
    cfg.size = MAGPOOL_MAX_OBJECT_SIZE + 1;
    errno = 0;
    CHECK(magpool_cache_create(&cfg) == NULL && errno == EINVAL);
    cfg.size = 64;
    cfg.align = 24;
    errno = 0;
    CHECK(magpool_cache_create(&cfg) == NULL && errno == EINVAL);
    cfg.align = 8192;
    errno = 0;
    CHECK(magpool_cache_create(&cfg) == NULL && errno == EINVAL);
    cfg.align = 0;
    cfg.mag_min = 20;
    cfg.mag_max = 10;
    errno = 0;
    CHECK(magpool_cache_create(&cfg) == NULL && errno == EINVAL);
    cfg.mag_min = 0;
    cfg.mag_max = MAGPOOL_MAG_MAX + 1;
    errno = 0;
    CHECK(magpool_cache_create(&cfg) == NULL && errno == EINVAL);

    /* Unknown cache flags (0xffffffff used to turn on debug, typesafe and
     * continue) and names longer than 63 characters (used to be cut). */
    cfg.mag_max = 0;
    unsigned bad_flags[] = { 0xffffffffu, 0x200u, 0x80000000u, MAGPOOL_VERIFY | 0x1000u };
    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        cfg.flags = bad_flags[i];
        errno = 0;
        CHECK_MSG(magpool_cache_create(&cfg) == NULL && errno == EINVAL, "flags %#x", bad_flags[i]);
    }
    for (unsigned f = 1; f <= MAGPOOL_UNCHECKED; f <<= 1) { /* each known flag alone */
        cfg.flags = f;
        magpool_cache_t *ok = magpool_cache_create(&cfg);
        CHECK_MSG(ok != NULL, "flag %#x rejected", f);
        if (ok != NULL)
            CHECK(magpool_cache_destroy(ok) == 0);
    }
    cfg.flags = 0;
    char name[80];
    memset(name, 'n', sizeof name);
    name[64] = 0;
    cfg.name = name;
    errno = 0;
    CHECK(magpool_cache_create(&cfg) == NULL && errno == EINVAL); /* 64 characters */
    name[63] = 0;
    magpool_cache_t *named = magpool_cache_create(&cfg);        /* 63: kept whole */
    CHECK(named != NULL && strcmp(magpool_cache_name(named), name) == 0);
    if (named != NULL)
        CHECK(magpool_cache_destroy(named) == 0);
    cfg.name = "bad";

    errno = 0;
    CHECK(magpool_alloc(NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(magpool_alloc_flags(NULL, 0) == NULL && errno == EINVAL);
    void *objs[2];
    errno = 0;
    CHECK(magpool_alloc_bulk(NULL, 2, objs, 0) == 0 && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_shrink(NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_destroy(NULL) == -1 && errno == EINVAL);
    struct magpool_stats st;
    errno = 0;
    CHECK(magpool_cache_stats(NULL, &st) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_of(NULL) == NULL && errno == EINVAL);
    int local;
    errno = 0;
    CHECK(magpool_cache_of(&local) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_foreach(NULL, NULL) == -1 && errno == EINVAL);
    CHECK(magpool_cache_name(NULL) == NULL);
    CHECK(magpool_cache_object_size(NULL) == 0);
    magpool_free(NULL, NULL); /* no crash */
    magpool_free_deferred(NULL, NULL);
    errno = 0;
    magpool_free_bulk(NULL, 0, NULL);
    CHECK(errno == EINVAL);

    magpool_cache_t *c = mk("bad-args", 32);
    CHECK(c != NULL);
    errno = 0;
    CHECK(magpool_alloc_flags(c, 0x100) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_stats(c, NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(magpool_alloc_bulk(c, 3, NULL, 0) == 0 && errno == EINVAL);
    magpool_free(c, NULL); /* no-op */
    CHECK(magpool_alloc_bulk(c, 0, objs, 0) == 0);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

/* A free with a NULL cache of a real object is a misuse (it would leak the
 * object silently): one line naming the call and the address, abort. */
static void null_cache_child(void *arg)
{
    magpool_cache_t *c = mk("nullc", 32);
    void *o = magpool_alloc(c);
    switch ((int)(intptr_t)arg) {
    case 0: magpool_free(NULL, o); break;
    case 1: magpool_free_deferred(NULL, o); break;
    default: {
        void *v[3] = {NULL, o, NULL};
        magpool_free_bulk(NULL, 3, v);
    }
    }
}
/* MAGPOOL_DEBUG=continue: reported and dropped (errno EINVAL); the program
 * goes on and the object is still live. */
static void null_cache_continue(void *arg)
{
    (void)arg;
    setenv("MAGPOOL_DEBUG", "continue", 1);
    magpool_cache_t *c = mk("nullc-cont", 32);
    void *o = magpool_alloc(c);
    errno = 0;
    magpool_free(NULL, o);
    int e = errno;
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    printf("errno %d in_use %llu\n", e, (unsigned long long)st.in_use);
    fflush(stdout);
    _exit(e == EINVAL && st.in_use == 1 ? 0 : 1);
}

static void test_null_cache_free(void)
{
    CHECK(check_death(null_cache_child, (void *)0, "magpool: magpool_free: NULL cache at 0x"));
    CHECK(check_death(null_cache_child, (void *)1, "magpool: magpool_free_deferred: NULL cache at 0x"));
    CHECK(check_death(null_cache_child, (void *)2, "magpool: magpool_free_bulk: NULL cache at 0x"));
    char out[4096];
    int st = check_run_child(null_cache_continue, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "magpool: magpool_free: NULL cache at 0x"),
              "continue mode: status %#x [%s]", st, out);
}

/* Bulk calls with a NULL array (issue #14 D): alloc gives 0 + EINVAL whether
 * or not the thread has rounds loaded (a warm cache used to take the inline
 * copy into NULL; kmem_cache_alloc_bulk: test_kmem_cache.c);
 * free frees nothing and sets EINVAL. */
static void test_bulk_null_array(void)
{
    magpool_cache_t *c = mk("bulk-null", 48);
    for (int warm = 0; warm < 2; warm++) {
        if (warm)
            magpool_free(c, magpool_alloc(c)); /* rounds loaded now */
        for (size_t n = 1; n <= 40; n += 13) {
            errno = 0;
            CHECK_MSG(magpool_alloc_bulk(c, n, NULL, 0) == 0 && errno == EINVAL, "warm %d n %zu", warm, n);
            errno = 0;
            CHECK(magpool_alloc_bulk(c, n, NULL, MAGPOOL_ZERO) == 0 && errno == EINVAL);
            errno = 0;
            magpool_free_bulk(c, n, NULL);
            CHECK(errno == EINVAL);
        }
    }
    struct magpool_stats st;
    CHECK(conserved(c, &st) && st.in_use == 0);
    errno = 0;
    void *objs[2];
    CHECK(magpool_alloc_bulk(c, 2, objs, 0x100) == 0 && errno == EINVAL); /* unknown alloc flag */
    CHECK(magpool_cache_destroy(c) == 0);
}

/* ---- round trips -------------------------------------------------------------- */

static void test_round_trip(void)
{
    enum { N = 20000 };
    magpool_cache_t *c = mk("roundtrip", 48);
    CHECK(c != NULL);
    CHECK(strcmp(magpool_cache_name(c), "roundtrip") == 0);
    CHECK(magpool_cache_object_size(c) == 48);
    void **p = malloc(N * sizeof *p);
    for (int round = 0; round < 3; round++) {
        struct pset set;
        pset_init(&set, N);
        int dup = 0, misaligned = 0, owner = 0;
        for (int i = 0; i < N; i++) {
            p[i] = magpool_alloc(c);
            if (p[i] == NULL)
                break;
            dup += !pset_add(&set, p[i]);
            misaligned += ((uintptr_t)p[i] & 15) != 0;
            owner += magpool_cache_of(p[i]) != c;
            memset(p[i], round + 1, 48);
        }
        CHECK(dup == 0);
        CHECK(misaligned == 0);
        CHECK(owner == 0);
        CHECK(stat_in_use(c) == N);
        CHECK(conserved(c, NULL));
        int bad = 0;
        for (int i = 0; i < N; i++) /* verify no one else wrote */
            for (int b = 0; b < 48; b++)
                bad += ((unsigned char *)p[i])[b] != round + 1;
        CHECK(bad == 0);
        /* free in a scrambled order */
        for (int i = 0; i < N; i++) {
            int j = (int)(((unsigned)i * 7919u) % N);
            void *t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        for (int i = 0; i < N; i++)
            magpool_free(c, p[i]);
        CHECK(stat_in_use(c) == 0);
        CHECK(conserved(c, NULL));
        free(set.slot);
    }
    /* cache_of: interior pointers and foreign memory */
    void *o = magpool_alloc(c);
    errno = 0;
    CHECK(magpool_cache_of((char *)o + 1) == NULL && errno == EINVAL);
    CHECK(magpool_cache_of(p) == NULL);
    magpool_free(c, o);
    free(p);
    magpool_thread_flush();
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(st.in_magazines == 0);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

/* ---- constructor ------------------------------------------------------------------ */

struct obj {
    uint64_t cookie;
    uint64_t uses;
    char pad[48];
};
static long ctor_calls, dtor_calls;
static void ctor(void *p, void *arg)
{
    struct obj *o = p;
    o->cookie = (uint64_t)(uintptr_t)arg;
    o->uses = 0;
    ctor_calls++;
}
static void dtor(void *p, void *arg)
{
    struct obj *o = p;
    if (o->cookie == (uint64_t)(uintptr_t)arg)
        dtor_calls++;
}

static void test_ctor(void)
{
    enum { N = 5000 };
    struct magpool_config cfg = { .name = "ctor", .size = sizeof(struct obj), .ctor = ctor,
                                  .dtor = dtor, .arg = (void *)(uintptr_t)0xC0FFEE };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    CHECK(c != NULL);
    static struct obj *p[N];
    for (int round = 0; round < 4; round++) {
        int bad = 0;
        for (int i = 0; i < N; i++) {
            p[i] = magpool_alloc(c);
            bad += p[i]->cookie != 0xC0FFEE;
            p[i]->uses++; /* state the pool must preserve across free/alloc */
        }
        CHECK(bad == 0);
        for (int i = 0; i < N; i++)
            magpool_free(c, p[i]);
    }
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(ctor_calls == (long)st.constructed);
    CHECK(ctor_calls >= N);
    /* Every use of every object is counted in the object itself: the sum of
     * uses equals the number of allocations, so state survived reuse. */
    uint64_t uses = 0;
    for (int i = 0; i < N; i++)
        p[i] = magpool_alloc(c);
    for (int i = 0; i < N; i++)
        uses += p[i]->uses;
    for (int i = 0; i < N; i++)
        magpool_free(c, p[i]);
    CHECK(uses <= 4u * N && uses >= (uint64_t)N); /* each alloc returned a used object */
    CHECK(conserved(c, NULL));
    long built = ctor_calls;
    CHECK(magpool_cache_shrink(c) == 0);
    CHECK(magpool_cache_destroy(c) == 0);
    CHECK(dtor_calls == built);
}

/* ---- flags -------------------------------------------------------------------------- */

static void test_flags(void)
{
    magpool_cache_t *c = mk("flags", 100);
    void *p = magpool_alloc(c);
    memset(p, 0xff, 100);
    magpool_free(c, p);
    unsigned char *z = magpool_alloc_flags(c, MAGPOOL_ZERO);
    CHECK(z != NULL);
    int nz = 0;
    for (int i = 0; i < 100; i++)
        nz += z[i] != 0;
    CHECK(nz == 0);
    magpool_free(c, z);
    /* NOWAIT: the thread has magazines for c now, so it is served. */
    void *w = magpool_alloc_flags(c, MAGPOOL_NOWAIT);
    CHECK(w != NULL);
    magpool_free(c, w);
    void *f = magpool_alloc_flags(c, MAGPOOL_NOFAIL | MAGPOOL_ZERO);
    CHECK(f != NULL);
    magpool_free(c, f);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

/* MAGPOOL_MAX_CACHES: id 0 is reserved, so 4095 caches exist at once (the
 * header says so); one more gets ENOMEM, and a destroy makes room again.
 * In a child, so this process's caches are counted exactly. */
static int count_cache(magpool_cache_t *c, void *arg)
{
    (void)c;
    ++*(unsigned *)arg;
    return 0;
}
static void max_caches_child(void *arg)
{
    (void)arg;
    static magpool_cache_t *v[MAGPOOL_MAX_CACHES];
    unsigned before = 0, n = 0;
    magpool_cache_foreach(count_cache, &before);
    struct magpool_config cfg = { .name = "max", .size = 16 };
    errno = 0;
    while (n < MAGPOOL_MAX_CACHES && (v[n] = magpool_cache_create(&cfg)) != NULL)
        n++;
    int e = errno;
    int again = -1;
    if (n > 0 && magpool_cache_destroy(v[--n]) == 0) {
        v[n] = magpool_cache_create(&cfg);
        again = v[n] != NULL;
    }
    printf("before %u created %u errno %d again %d\n", before, before + n + (again == 1), e, again);
    fflush(stdout);
    _exit(before + n + (again == 1) == MAGPOOL_MAX_CACHES - 1 && e == ENOMEM && again == 1 ? 0 : 1);
}
static void test_max_caches(void)
{
    char out[4096];
    int st = check_run_child(max_caches_child, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "max caches: status %#x [%s]", st, out);
}

/* MAGPOOL_NOFAIL (issue #14 B).  With MAGPOOL_NOWAIT too it may block (NOFAIL
 * wins): on a cache with nothing built, a retry that may not block used to
 * spin for ever.  At the object limit it waits for a free: here a thread
 * frees one and exits (its magazines go to the depot).  alarm() turns a
 * spin into a failure. */
static void *nofail_freer(void *arg)
{
    nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
    void **pair = arg;
    magpool_free(pair[0], pair[1]);
    return NULL;
}
static void nofail_child(void *arg)
{
    (void)arg;
    alarm(10);
    struct magpool_config cfg = { .name = "nofail-nowait", .size = 64 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    void *o = magpool_alloc_flags(c, MAGPOOL_NOWAIT | MAGPOOL_NOFAIL);
    if (o == NULL)
        _exit(2);
    struct magpool_config lim = { .name = "nofail-limit", .size = 64, .max_objects = 4, .mag_max = 1 };
    magpool_cache_t *l = magpool_cache_create(&lim);
    void *v[4];
    int n = 0;
    while (n < 4 && (v[n] = magpool_alloc(l)) != NULL)
        n++;
    if (n == 0 || magpool_alloc(l) != NULL) /* at the limit, every object live */
        _exit(3);
    void *pair[2] = { l, v[0] };
    pthread_t t;
    pthread_create(&t, NULL, nofail_freer, pair);
    void *w = magpool_alloc_flags(l, MAGPOOL_NOFAIL); /* waits for the free */
    pthread_join(t, NULL);
    _exit(w == v[0] ? 0 : 4);
}
static void test_nofail(void)
{
    char out[4096];
    int st = check_run_child(nofail_child, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "NOFAIL child: status %#x [%s]", st, out);
}

/* ---- limits and bulk ------------------------------------------------------------- */

static void test_limits_bulk(void)
{
    struct magpool_config cfg = { .name = "limit", .size = 64, .max_objects = 100 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    CHECK(c != NULL);
    static void *p[200];
    int n = 0;
    errno = 0;
    while (n < 200 && (p[n] = magpool_alloc(c)) != NULL)
        n++;
    CHECK(n == 100);
    CHECK(errno == ENOMEM);
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(st.alloc_failures >= 1);
    CHECK(st.max_objects == 100);
    CHECK(st.constructed <= 100);
    magpool_free(c, p[--n]);
    CHECK((p[n] = magpool_alloc(c)) != NULL);
    n++;
    magpool_free_bulk(c, (size_t)n, p);
    CHECK(stat_in_use(c) == 0);

    /* bulk is all or nothing */
    static void *b[150];
    errno = 0;
    CHECK(magpool_alloc_bulk(c, 150, b, 0) == 0);
    CHECK(errno == ENOMEM);
    CHECK(stat_in_use(c) == 0);
    CHECK(magpool_alloc_bulk(c, 60, b, MAGPOOL_ZERO) == 60);
    CHECK(stat_in_use(c) == 60);
    struct pset set;
    pset_init(&set, 60);
    int dup = 0;
    for (int i = 0; i < 60; i++)
        dup += !pset_add(&set, b[i]);
    CHECK(dup == 0);
    free(set.slot);
    magpool_free_bulk(c, 60, b);
    CHECK(stat_in_use(c) == 0);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

static void test_mag_bounds(void)
{
    struct magpool_config cfg = { .name = "bounds", .size = 64, .mag_min = 3, .mag_max = 3 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(st.mag_size == 3);
    void *p[50];
    for (int i = 0; i < 50; i++)
        p[i] = magpool_alloc(c);
    for (int i = 0; i < 50; i++)
        magpool_free(c, p[i]);
    magpool_cache_stats(c, &st);
    CHECK(st.in_magazines <= 6);  /* loaded + previous of 3 rounds each */
    CHECK(st.depot_frees > 0);    /* full magazines went to the depot */
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_shrink(c) == 0);
    magpool_cache_stats(c, &st);
    CHECK(st.mag_size == 3);      /* clamped: shrink cannot go below mag_min */
    CHECK(st.in_depot == 0 && st.in_magazines == 0);
    CHECK(st.reaps > 0);
    CHECK(conserved(c, NULL));
    magpool_cache_destroy(c);

    struct magpool_config big = { .name = "resize", .size = 64 };
    c = magpool_cache_create(&big);
    magpool_cache_stats(c, &st);
    CHECK(st.mag_size == 511);    /* default for 64 B: 32 KiB of objects, the ladder's top (reap.c) */
    magpool_cache_shrink(c);
    magpool_cache_stats(c, &st);
    CHECK(st.mag_size == 383);    /* one step down */
    CHECK(st.mag_resizes == 1);
    magpool_cache_destroy(c);

    /* Initial size by object size: the largest ladder step holding <= 32 KiB. */
    static const struct { size_t size; unsigned mag; } want[] = {
        { 8, 511 }, { 64, 511 }, { 65, 383 }, { 96, 255 }, { 128, 255 }, { 256, 95 }, { 512, 63 },
        { 1024, 31 }, { 2048, 15 }, { 4096, 7 }, { 8192, 3 }, { 16384, 1 }, { 65536, 1 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        c = mk("initial", want[i].size);
        magpool_cache_stats(c, &st);
        CHECK_MSG(st.mag_size == want[i].mag, "size %zu: mag_size %llu", want[i].size,
                  (unsigned long long)st.mag_size);
        magpool_cache_destroy(c);
    }
    /* mag_max still bounds the default. */
    struct magpool_config capped = { .name = "capped", .size = 64, .mag_max = 31 };
    c = magpool_cache_create(&capped);
    magpool_cache_stats(c, &st);
    CHECK(st.mag_size == 31);
    magpool_cache_destroy(c);
}

/* Bulk calls move runs of rounds and cross magazine boundaries through the
 * slow paths: many magazines' worth in one call, NULLs skipped on free,
 * MAGPOOL_ZERO applied to rounds taken from the magazine, nothing handed
 * out twice, conservation throughout. */
static void test_bulk_runs(void)
{
    enum { N = 2000 }; /* more than two 511-round magazines hold */
    magpool_cache_t *c = mk("bulk", 64);
    static void *b[N], *b2[N];
    CHECK(magpool_alloc_bulk(c, N, b, 0) == N);
    CHECK(stat_in_use(c) == N);
    struct pset set;
    pset_init(&set, 2 * N);
    int dup = 0;
    for (int i = 0; i < N; i++) {
        dup += !pset_add(&set, b[i]);
        memset(b[i], 0x5a, 64);
    }
    CHECK(dup == 0);
    CHECK(conserved(c, NULL));
    /* Free with holes: NULLs are skipped, every object comes back. */
    for (int i = 0; i < N; i++)
        b2[i] = (i % 7 == 3) ? NULL : b[i];
    magpool_free_bulk(c, N, b2);
    CHECK(stat_in_use(c) == (uint64_t)(N / 7 + (N % 7 > 3)));
    for (int i = 3; i < N; i += 7)
        magpool_free(c, b[i]);
    CHECK(stat_in_use(c) == 0);
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(st.depot_frees > 0);          /* the free crossed magazine boundaries */
    CHECK(conserved(c, NULL));
    /* The objects just freed (dirty) come back zeroed with MAGPOOL_ZERO. */
    CHECK(magpool_alloc_bulk(c, N, b, MAGPOOL_ZERO) == N);
    int nonzero = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 64; k++)
            nonzero += ((unsigned char *)b[i])[k] != 0;
    CHECK(nonzero == 0);
    CHECK(magpool_alloc_bulk(c, 1, b2, 0x80000) == 0 && errno == EINVAL);
    CHECK(magpool_alloc_bulk(c, 0, b2, 0) == 0);
    /* A long run the loaded magazine holds: an unknown flag is refused with
     * nothing taken; NOWAIT and NOFAIL are served by the hit, in magazine
     * order (the run just freed comes back as it was). */
    for (int pass = 0; pass < 2; pass++) {
        unsigned fl = pass ? MAGPOOL_NOFAIL : MAGPOOL_NOWAIT;
        magpool_free_bulk(c, 40, b);
        uint64_t before = stat_in_use(c);
        errno = 0;
        CHECK(magpool_alloc_bulk(c, 40, b2, 0x80000 | fl) == 0 && errno == EINVAL && stat_in_use(c) == before);
        CHECK(magpool_alloc_bulk(c, 40, b2, fl) == 40 && stat_in_use(c) == before + 40);
        int same = 0;
        for (int i = 0; i < 40; i++)
            same += b2[i] == b[i];
        CHECK_MSG(same == 40, "flags %#x: %d of 40 back in place", fl, same);
    }
    magpool_free_bulk(c, N, b);
    CHECK(stat_in_use(c) == 0);
    CHECK(conserved(c, NULL));
    free(set.slot);
    CHECK(magpool_cache_destroy(c) == 0);
}

/* Bulk hits: a run that fits the loaded magazine moves as one copy, in
 * magazine order, so a bulk free followed by a bulk alloc of the same size
 * gives back the same objects in the same slots; a bulk of one is LIFO with
 * the single-object calls; NULLs inside a run that fits are still skipped. */
static void test_bulk_hit(void)
{
    enum { B = 32 };
    magpool_cache_t *c = mk("bulk-hit", 64);
    void *a[B], *b[B];
    void *w = magpool_alloc(c); /* the thread now holds a loaded magazine */
    magpool_free(c, w);
    CHECK(magpool_alloc_bulk(c, B, a, 0) == B);
    magpool_free_bulk(c, B, a);
    CHECK(magpool_alloc_bulk(c, B, b, 0) == B);
    int same = 0;
    for (int i = 0; i < B; i++)
        same += a[i] == b[i];
    CHECK_MSG(same == B, "%d of %d slots came back", same, B);
    magpool_free_bulk(c, B, b);
    void *p = magpool_alloc(c), *q = NULL;
    magpool_free(c, p);
    CHECK(magpool_alloc_bulk(c, 1, &q, 0) == 1 && q == p);
    magpool_free_bulk(c, 1, &q);
    CHECK(magpool_alloc(c) == p);
    magpool_free(c, p);
    CHECK(magpool_alloc_bulk(c, 4, a, MAGPOOL_ZERO) == 4);
    int nonzero = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 64; k++)
            nonzero += ((unsigned char *)a[i])[k] != 0;
    CHECK(nonzero == 0);
    void *holes[5] = { a[0], NULL, a[1], a[2], NULL };
    magpool_free_bulk(c, 5, holes);
    CHECK(stat_in_use(c) == 1);
    magpool_free(c, a[3]);
    CHECK(stat_in_use(c) == 0);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

/* The immediate double-free check of mp_fast_free holds for bulk runs:
 * the same object twice in a row, or the top round freed again. */
static void bulk_df_pair_child(void *arg)
{
    (void)arg;
    magpool_cache_t *c = mk("bdf-pair", 64);
    void *p[2];
    p[0] = magpool_alloc(c);
    p[1] = p[0];
    magpool_free_bulk(c, 2, p);
}

static void bulk_df_top_child(void *arg)
{
    (void)arg;
    magpool_cache_t *c = mk("bdf-top", 64);
    void *p[2] = { magpool_alloc(c), magpool_alloc(c) };
    magpool_free(c, p[1]);
    p[0] = p[1];
    magpool_free_bulk(c, 2, p);
}

/* The same two cases in runs long enough for the fused copy and check of
 * mp_copy_run_bad (arg: the index of the repeat, 0 = the top round again,
 * plus the run's length << 8): every lane of its four-pointer step and
 * the tail of a length that is not a multiple of four. */
static void bulk_df_long_child(void *arg)
{
    size_t at = (uintptr_t)arg & 0xff, n = (uintptr_t)arg >> 8;
    magpool_cache_t *c = mk("bdf-long", 64);
    void *p[64], *top = magpool_alloc(c);
    for (size_t i = 0; i < n; i++)
        p[i] = magpool_alloc(c);
    magpool_free(c, top);
    p[at] = at == 0 ? top : p[at - 1];
    magpool_free_bulk(c, n, p);
}

static void test_bulk_double_free(void)
{
    CHECK(check_death(bulk_df_pair_child, NULL, "magpool: bdf-pair: double free at"));
    CHECK(check_death(bulk_df_top_child, NULL, "magpool: bdf-top: double free at"));
    static const uintptr_t cases[][2] = { { 40, 0 },  { 40, 1 },  { 40, 2 },  { 40, 3 },  { 40, 4 },
                                          { 40, 5 },  { 40, 6 },  { 40, 7 },  { 40, 13 }, { 40, 26 },
                                          { 40, 39 }, { 43, 40 }, { 43, 41 }, { 43, 42 }, { 17, 16 },
                                          { 42, 41 }, { 41, 40 }, { 18, 17 } };
    /* Every long-run kernel the CPU has (the children inherit the switch). */
    for (int pass = 0; pass < KERNEL_PASSES; pass++) {
        kernel_pass(pass);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            CHECK_MSG(check_death(bulk_df_long_child, (void *)(cases[i][1] | cases[i][0] << 8),
                                  "magpool: bdf-long: double free at"),
                      "kernel %d n %zu at %zu", KERNEL_NOW, (size_t)cases[i][0], (size_t)cases[i][1]);
    }
    kernel_pass(KERNEL_PASSES);
}

/* A NULL anywhere in a long bulk free is skipped and the rest freed (the
 * fused check sends the run object by object): every position of runs of
 * 17, 32, 42 and 43, the count and conservation exact after each; with
 * every long-run kernel. */
static void bulk_free_null_anywhere(magpool_cache_t *c)
{
    static const size_t lens[] = { 17, 32, 42, 43 };
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (size_t at = 0; at < lens[l]; at++) {
            void *p[43];
            CHECK(magpool_alloc_bulk(c, lens[l], p, 0) == lens[l]);
            void *kept = p[at];
            p[at] = NULL;
            magpool_free_bulk(c, lens[l], p);
            CHECK_MSG(stat_in_use(c) == 1, "kernel %d n %zu at %zu", KERNEL_NOW, lens[l], at);
            magpool_free(c, kept);
            CHECK(stat_in_use(c) == 0);
        }
}

static void test_bulk_free_null_anywhere(void)
{
    magpool_cache_t *c = mk("bnull", 64);
    for (int pass = 0; pass < KERNEL_PASSES; pass++) {
        kernel_pass(pass);
        bulk_free_null_anywhere(c);
    }
    kernel_pass(KERNEL_PASSES);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

/* mp_free_bulk_owned's refusal: counted, with the run it was given. */
static void *refused_run, *refused_ctx;
static size_t refused_n, refused_calls;
static void count_refused(void *ctx, size_t n, void *const *objs, const void *caller)
{
    (void)caller;
    refused_ctx = ctx; /* (free_owned checks what was refused) */
    refused_calls++;
    refused_n = n;
    refused_run = (void *)objs;
}

/* Whether mp_free_bulk_owned took the run (else it was refused, whole);
 * a refusal of anything but the run given counts in *bad. */
static bool free_owned(magpool_cache_t *c, size_t n, void **p, int *bad)
{
    size_t before = refused_calls;
    mp_free_bulk_owned(c, n, p, NULL, count_refused, &refused_calls);
    if (!(refused_calls == before || (refused_calls == before + 1 && refused_n == n && refused_run == (void *)p &&
                                          refused_ctx == &refused_calls)))
        ++*bad;
    return refused_calls == before;
}

/* One case's answers against the contract (the first few wrong ones
 * printed; the caller checks the count once). */
static void owned_case(magpool_cache_t *c, magpool_cache_t *d, size_t size, size_t n, size_t at, int kind,
                       int *bad)
{
    static long local;
    void *p[43], *other = NULL;
    if (magpool_alloc_bulk(c, n, p, 0) != n) {
        ++*bad;
        return;
    }
    void *kept = p[at];
    switch (kind) {
    case 0: p[at] = (char *)kept + 8; break; /* misaligned */
    case 1: p[at] = other = magpool_alloc(d); break;
    case 2: p[at] = &local; break;
    case 3: p[at] = NULL; break;
    default: break;
    }
    int was = *bad;
    bool ok = free_owned(c, n, p, bad);
    if (ok != (kind >= 3) || stat_in_use(c) != (ok ? (kind == 3) : n))
        ++*bad;
    if (kind == 3) {
        magpool_free(c, kept);
    } else if (!ok) {
        p[at] = kept;
        magpool_free_bulk(c, n, p);
    }
    if (other != NULL)
        magpool_free(d, other);
    if (stat_in_use(c) != 0)
        ++*bad;
    if (*bad != was && *bad <= 5)
        fprintf(stderr, "kernel %d size %zu n %zu at %zu kind %d: freed %d\n", KERNEL_NOW, size, n, at, kind,
                (int)ok);
}

/* The validating bulk free (mp_free_bulk_owned, kmem_cache_free_bulk's):
 * a run of c's objects is freed; one misaligned, foreign or other-cache
 * object anywhere refuses the run with nothing freed; a NULL is skipped.
 * Every position of runs on both sides of the fused kernels' lengths (8,
 * their four- and eight-object steps, their tails), object sizes with
 * power-of-two and odd strides, every kernel. */
static void owned_runs(size_t size)
{
    magpool_cache_t *c = mk("owned", size), *d = mk("owned-other", size);
    static const size_t lens[] = { 2, 3, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 40, 43 };
    int bad = 0;
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (size_t at = 0; at < lens[l]; at++)
            for (int kind = 0; kind < 5; kind++)
                owned_case(c, d, size, lens[l], at, kind, &bad);
    CHECK_MSG(bad == 0, "kernel %d size %zu: %d wrong answers", KERNEL_NOW, size, bad);
    /* Runs drawn from across several slabs (the kernel's slab is the first
     * object's: the others take the general check). */
    enum { M = 3000 };
    void **all = malloc(M * sizeof *all);
    CHECK(all != NULL && magpool_alloc_bulk(c, M, all, 0) == M);
    for (size_t n = 8; n <= 40; n += 8) {
        void *p[40];
        for (size_t i = 0; i < n; i++) {
            p[i] = all[i * (M / n) + n];
            all[i * (M / n) + n] = NULL;
        }
        CHECK(mp_page_owner_inline(p[0]) != mp_page_owner_inline(p[n - 1])); /* the precondition */
        uint64_t before = stat_in_use(c);
        int bad2 = 0;
        CHECK(free_owned(c, n, p, &bad2) && bad2 == 0);
        CHECK(stat_in_use(c) == before - n);
    }
    for (size_t i = 0; i < M; i++)
        if (all[i] != NULL)
            magpool_free(c, all[i]);
    free(all);
    CHECK(conserved(c, NULL) && conserved(d, NULL));
    CHECK(magpool_cache_destroy(c) == 0 && magpool_cache_destroy(d) == 0);
}

static void test_bulk_owned(void)
{
    for (int pass = 0; pass < KERNEL_PASSES; pass++) {
        kernel_pass(pass);
        owned_runs(24);
        owned_runs(40);
        owned_runs(64);
        owned_runs(100);
    }
    kernel_pass(KERNEL_PASSES);
}

/* ---- double free (death test) ------------------------------------------------------ */

static void double_free_child(void *arg)
{
    (void)arg;
    magpool_cache_t *c = mk("dfree", 64);
    void *p = magpool_alloc(c);
    magpool_free(c, p);
    magpool_free(c, p);
}

static void double_free_full_child(void *arg)
{
    (void)arg;
    struct magpool_config cfg = { .name = "dfree-full", .size = 64, .mag_min = 1, .mag_max = 1 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    void *p = magpool_alloc(c);
    magpool_free(c, p); /* fills the 1-round magazine: the next free takes the slow path */
    magpool_free(c, p);
}

static void test_double_free(void)
{
    CHECK(check_death(double_free_child, NULL, "magpool: dfree: double free at"));
    CHECK(check_death(double_free_full_child, NULL, "magpool: dfree-full: double free at"));
}

/* ---- shrink returns memory ------------------------------------------------------------- */

/* The burst of the shrink tests: warm c up (everything but the burst
 * itself, p included, is resident), allocate and touch n 64-byte objects
 * into p, free them all.  RSS in pages before the burst and at its peak. */
static void rss_burst(magpool_cache_t *c, void **p, int n, long *before, long *peak)
{
    memset(p, 0xff, (size_t)n * sizeof *p); /* resident (gcc turns malloc + memset 0 into calloc) */
    p[0] = magpool_alloc(c);
    magpool_free(c, p[0]);
    *before = rss_pages();
    for (int i = 0; i < n; i++)
        p[i] = magpool_alloc(c);
    for (int i = 0; i < n; i++)
        memset(p[i], 1, 64);
    *peak = rss_pages();
    for (int i = 0; i < n; i++)
        magpool_free(c, p[i]);
}

/* After the burst of n objects went back: RSS at most before + slack pages
 * (not under sanitizers: their shadow memory for the burst stays resident,
 * not ours), and the burst was real (its peak grew by half its pages). */
static void rss_check_back(int n, long before, long peak, long slack)
{
    long after = rss_pages();
#ifndef CHECK_SANITIZED
    CHECK_MSG(after <= before + slack, "rss before %ld peak %ld after %ld pages", before, peak, after);
#else
    (void)slack, (void)after;
#endif
    CHECK(peak > before + (long)n * 64 / 4096 / 2);
}

static void test_shrink_rss(void)
{
    enum { N = 200000 };
    magpool_cache_t *c = mk("rss", 64);
    void **p = malloc(N * sizeof *p);
    long before, peak;
    rss_burst(c, p, N, &before, &peak);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_shrink(c) == 0);
    magpool_synchronize(NULL); /* retired magazines go back too */
    rss_check_back(N, before, peak, before / 10 + 512); /* 10% plus 2 MiB */
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(st.in_use == 0 && st.in_depot == 0 && st.in_magazines == 0);
    CHECK(st.slabs_empty == 0);
    CHECK(conserved(c, NULL));
    free(p);
    CHECK(magpool_cache_destroy(c) == 0);
}

/* Shrink alone (no synchronize) gives the burst back: the depot's magazines
 * are torn down, their slots' grace period ends within shrink when no reader
 * is inside a section, and the magazine area, the slabs and the slabs' free
 * stacks are trimmed. */
static void test_shrink_rss_nosync(void)
{
    enum { N = 200000 };
    magpool_cache_t *c = mk("rss2", 64);
    void **p = malloc(N * sizeof *p);
    long before, peak;
    rss_burst(c, p, N, &before, &peak);
    magpool_thread_flush();
    CHECK(magpool_cache_shrink(c) == 0);
    rss_check_back(N, before, peak, before / 10 + 256);
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(st.in_depot == 0 && st.in_magazines == 0 && st.pages == 0);
    CHECK(conserved(c, NULL));
    free(p);
    CHECK(magpool_cache_destroy(c) == 0);
}

/* ---- destroy with live objects (zombie) ---------------------------------------------- */

static void test_zombie(void)
{
    enum { N = 300 };
    magpool_cache_t *c = mk("zombie", 128);
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = magpool_alloc(c);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == N);
    errno = 0;
    CHECK(magpool_alloc(c) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_destroy(c) == -1 && errno == EINVAL); /* already destroyed */
    errno = 0;
    CHECK(magpool_cache_shrink(c) == -1 && errno == EINVAL);
    CHECK(magpool_cache_of(p[0]) == c); /* objects of a zombie stay owned */
    for (int i = 0; i < N - 1; i++) {
        memset(p[i], 0, 128); /* still valid memory */
        magpool_free(c, p[i]);
    }
    CHECK(magpool_cache_of(p[N - 1]) == c);
    magpool_free(c, p[N - 1]); /* the last one finalises the zombie */
    CHECK(magpool_cache_of(p[0]) == NULL);

    /* destroy when clean: memory gone at once */
    c = mk("clean", 32);
    void *o = magpool_alloc(c);
    magpool_free(c, o);
    CHECK(magpool_cache_destroy(c) == 0);
    CHECK(magpool_cache_of(o) == NULL);
}

/* ---- foreach ---------------------------------------------------------------------------- */

static int count_fe(magpool_cache_t *c, void *arg)
{
    if (strncmp(magpool_cache_name(c), "fe-", 3) == 0)
        ++*(int *)arg;
    return 0;
}
static int stop_fe(magpool_cache_t *c, void *arg)
{
    (void)arg;
    return strcmp(magpool_cache_name(c), "fe-2") == 0 ? 42 : 0;
}

static void test_foreach(void)
{
    magpool_cache_t *a = mk("fe-1", 8), *b = mk("fe-2", 16), *d = mk("fe-3", 24);
    int n = 0;
    CHECK(magpool_cache_foreach(count_fe, &n) == 0);
    CHECK(n == 3);
    CHECK(magpool_cache_foreach(stop_fe, NULL) == 42);
    magpool_cache_destroy(b);
    n = 0;
    magpool_cache_foreach(count_fe, &n);
    CHECK(n == 2);
    void *x = magpool_alloc(a), *y = magpool_alloc(d);
    CHECK(magpool_cache_of(x) == a && magpool_cache_of(y) == d);
    magpool_free(a, x);
    magpool_free(d, y);
    magpool_reap();
    CHECK(conserved(a, NULL) && conserved(d, NULL));
    magpool_cache_destroy(a);
    magpool_cache_destroy(d);
}

/* ---- debug cache ---------------------------------------------------------------------- */

static void debug_df_child(void *arg)
{
    (void)arg;
    struct magpool_config cfg = { .name = "verify", .size = 40, .flags = MAGPOOL_VERIFY };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    void *a = magpool_alloc(c), *b = magpool_alloc(c);
    magpool_free(c, a);
    magpool_free(c, b);
    magpool_free(c, a); /* not immediate: only the debug layer catches it */
}

static void test_debug_cache(void)
{
    struct magpool_config cfg = { .name = "dbg", .size = 40,
                                  .flags = MAGPOOL_VERIFY | MAGPOOL_RED_ZONE | MAGPOOL_POISON };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    CHECK(c != NULL);
    static void *p[500];
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 500; i++) {
            p[i] = magpool_alloc_flags(c, r == 2 ? MAGPOOL_ZERO : 0);
            memset(p[i], 7, 40);
        }
        for (int i = 0; i < 500; i++)
            magpool_free(c, p[i]);
    }
    CHECK(conserved(c, NULL));
    CHECK(stat_in_use(c) == 0);
    CHECK(magpool_cache_destroy(c) == 0);
    CHECK(check_death(debug_df_child, NULL, "double free"));
}

static void test_fault_inject(void)
{
    magpool_fault_inject(1000000);
    struct magpool_config cfg = { .name = "fault", .size = 512 * 1024 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    int failed = 0, wrong_errno = 0;
    static void *p[64];
    int n = 0;
    for (int i = 0; i < 64 && c != NULL; i++) {
        errno = 0;
        void *o = magpool_alloc(c);
        if (o == NULL) {
            failed++;
            wrong_errno += errno != ENOMEM;
        } else {
            p[n++] = o;
        }
    }
    magpool_fault_inject(0);
    CHECK(wrong_errno == 0);
    if (c != NULL) {
        void *o = magpool_alloc(c); /* recovers */
        CHECK(o != NULL);
        magpool_free(c, o);
        for (int i = 0; i < n; i++)
            magpool_free(c, p[i]);
        CHECK(conserved(c, NULL));
        CHECK(magpool_cache_destroy(c) == 0);
    }
    (void)failed;
}

/* Working-set reaping runs from slow paths, with no shrink call: depot
 * magazines unused through a whole interval go back to the slabs. */
static void test_ws_reap(void)
{
    enum { N = 3000 };
    struct magpool_config cfg = { .name = "ws", .size = 64, .mag_min = 1, .mag_max = 1 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = magpool_alloc(c);
    for (int i = 0; i < N; i++)
        magpool_free(c, p[i]);
    struct magpool_stats st0, st;
    magpool_cache_stats(c, &st0);
    /* (Unless a tick already trimmed inside the fill loop: N slow paths can
     * outlast two reap intervals under TSan on a slow machine.) */
    CHECK_MSG(st0.in_depot >= N - 4 || st0.reaps > 0, "depot %llu of %d, no reap yet",
              (unsigned long long)st0.in_depot, N);
    /* Three reap intervals (100 ms each) with a trickle of slow paths: a
     * 1-round magazine makes most of these calls slow paths. */
    for (int round = 0; round < 4; round++) {
        nanosleep(&(struct timespec){ .tv_nsec = 120 * 1000 * 1000 }, NULL);
        for (int i = 0; i < 64; i++) {
            void *a = magpool_alloc(c), *b = magpool_alloc(c);
            magpool_free(c, a);
            magpool_free(c, b);
        }
    }
    magpool_cache_stats(c, &st);
    CHECK_MSG(st.reaps > 0 && st.in_depot < N / 2, "reaps %llu depot %llu -> %llu",
              (unsigned long long)st.reaps, (unsigned long long)st0.in_depot,
              (unsigned long long)st.in_depot);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

/* ---- backlog (depot.c, "Backlog") ------------------------------------------ */

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 }, NULL);
}

/* A 64-byte cache with a backlog of 1 MiB (32 magazines of 511), whatever
 * this machine's L2 cache: engages after 64 full magazine pushes. */
static magpool_cache_t *mk_backlog(const char *name)
{
    struct magpool_config cfg = { .name = name, .size = 64, .backlog = 1u << 20 };
    return magpool_cache_create(&cfg);
}

/* A flow of full magazines engages the backlog; what it holds is counted,
 * builds at most its own size of new objects, and goes back on shrink. */
static void test_backlog_flow(void)
{
    magpool_cache_t *c = mk_backlog("backlog");
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    unsigned slots = st.backlog_slots, mag = st.mag_size;
    uint64_t reaps0 = st.reaps;
    CHECK_MSG(slots == (1u << 20) / (64 * mag), "backlog slots %u of %u", slots, mag);
    size_t n = (size_t)(3 * slots + 4) * mag; /* 2 * slots pushes engage it, slots more fill it */
    void **p = malloc(n * sizeof *p);
    struct pset seen;
    pset_init(&seen, 2 * n);
    int dup = 0, null = 0;
    for (size_t i = 0; i < n; i++) {
        null += (p[i] = magpool_alloc(c)) == NULL;
        dup += !pset_add(&seen, p[i]);
    }
    for (size_t i = 0; i < n; i++)
        magpool_free(c, p[i]);
    CHECK(conserved(c, &st));
    CHECK_MSG(st.backlog_mags == slots, "backlog holds %llu of %u magazines",
              (unsigned long long)st.backlog_mags, slots);
    CHECK(st.depot_full_mags >= st.backlog_mags && st.in_depot >= st.backlog_mags * mag);
    uint64_t built = st.constructed;
    /* Reallocating builds new objects in place of those held back, no more. */
    for (size_t i = 0; i < n; i++) {
        null += (p[i] = magpool_alloc(c)) == NULL;
        pset_add(&seen, p[i]);
    }
    CHECK(null == 0 && dup == 0);
    magpool_cache_stats(c, &st);
    /* (Unless a reap tick tore depot magazines down meanwhile -- two ticks
     * inside the free loop trim what the first interval pushed (reap.c):
     * a slow machine, or TSan -- and so the objects they held: the count of
     * torn-down magazines shows it.) */
    CHECK_MSG(st.constructed <= built + (uint64_t)(slots + 2) * mag || st.reaps != reaps0,
              "constructed %llu -> %llu with %u backlog magazines of %u",
              (unsigned long long)built, (unsigned long long)st.constructed, slots, mag);
    /* The held-back objects were not reused -- unless two reap ticks fell
     * inside the loop (a slow machine: 100 ms with no full push releases a
     * stopped flow's backlog, reap.c), which the backlog's count shows. */
    CHECK_MSG(st.constructed > built || st.backlog_mags < slots,
              "constructed %llu -> %llu with the backlog still holding %llu magazines",
              (unsigned long long)built, (unsigned long long)st.constructed,
              (unsigned long long)st.backlog_mags);
    /* Every object in use is distinct. */
    struct pset now;
    pset_init(&now, n);
    for (size_t i = 0; i < n; i++)
        dup += !pset_add(&now, p[i]);
    CHECK(dup == 0);
    free(now.slot);
    for (size_t i = 0; i < n; i++)
        magpool_free(c, p[i]);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_shrink(c) == 0);
    CHECK(conserved(c, &st));
    CHECK(st.backlog_mags == 0 && st.in_depot == 0 && st.depot_full_mags == 0);
    CHECK(magpool_cache_destroy(c) == 0);
    free(seen.slot);
    free(p);
}

/* MAGPOOL_NO_BACKLOG: a flow is reused at once, nothing held back; and a
 * small flow never engages a backlog. */
static void test_backlog_off(void)
{
    struct magpool_config cfg = { .name = "nobacklog", .size = 64, .flags = MAGPOOL_NO_BACKLOG };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    CHECK(st.backlog_slots == 0);
    size_t n = (size_t)200 * st.mag_size;
    void **p = malloc(n * sizeof *p);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++)
            p[i] = magpool_alloc(c);
        for (size_t i = 0; i < n; i++)
            magpool_free(c, p[i]);
    }
    CHECK(conserved(c, &st));
    CHECK(st.backlog_mags == 0);
    CHECK_MSG(st.constructed <= n + st.mag_size, "constructed %llu for %zu",
              (unsigned long long)st.constructed, n);
    CHECK(magpool_cache_destroy(c) == 0);

    /* Engagement counts bytes of flow, not magazines: with 1-round
     * magazines, 2000 objects through the depot (2000 pushes, far more
     * than 2 * 64 slots) stay far below twice the backlog's bytes, so every
     * one is reused and nothing is built twice. */
    struct magpool_config one = { .name = "backlog-mag1", .size = 64, .mag_min = 1, .mag_max = 1 };
    c = magpool_cache_create(&one);
    magpool_cache_stats(c, &st);
    CHECK(st.backlog_slots == 64 && st.mag_size == 1);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 2000; i++)
            p[i] = magpool_alloc(c);
        for (size_t i = 0; i < 2000; i++)
            magpool_free(c, p[i]);
    }
    CHECK(conserved(c, &st));
    CHECK(st.backlog_mags == 0 && st.depot_frees >= 2 * 1990);
    CHECK_MSG(st.constructed <= 2000 + 2, "constructed %llu", (unsigned long long)st.constructed);
    CHECK(magpool_cache_destroy(c) == 0);
    free(p);
}

/* Under an object limit, objects held back are never a reason to fail: an
 * alloc that finds the slab layer at the limit releases the backlog. */
static void test_backlog_limit(void)
{
    enum { LIMIT = 40000 };
    struct magpool_config cfg = { .name = "backlog-limit", .size = 64, .max_objects = LIMIT,
                                  .backlog = 2u << 20 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    /* 2 MiB would be 64 magazines of 511; the limit caps it at a quarter */
    CHECK_MSG(st.backlog_slots == LIMIT / (4 * st.mag_size), "backlog slots %u of %u",
              st.backlog_slots, st.mag_size);
    static void *p[LIMIT];
    int fails = 0;
    uint64_t held_max = 0;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < LIMIT; i++)
            fails += (p[i] = magpool_alloc(c)) == NULL;
        for (int i = 0; i < LIMIT; i++)
            magpool_free(c, p[i]);
        magpool_cache_stats(c, &st);
        held_max = st.backlog_mags > held_max ? st.backlog_mags : held_max;
    }
    CHECK_MSG(fails == 0, "%d allocations failed under the limit", fails);
    CHECK(held_max > 0); /* it did engage */
    CHECK(conserved(c, &st));
    CHECK(st.constructed <= LIMIT && st.alloc_failures == 0);
    CHECK(magpool_cache_destroy(c) == 0);
}

/* A backlog whose flow stopped goes back to the depot after a reap interval
 * with no full push (driven by slow paths, no thread of its own). */
static void test_backlog_idle(void)
{
    magpool_cache_t *c = mk_backlog("backlog-idle");
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    unsigned mag = st.mag_size;
    size_t n = (size_t)(3 * st.backlog_slots + 48) * mag;
    void **p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = magpool_alloc(c);
    for (size_t i = 0; i < n; i++)
        magpool_free(c, p[i]);
    magpool_cache_stats(c, &st);
    CHECK(st.backlog_mags > 0);
    /* Two reap intervals of alloc-only slow paths (a free could push). */
    size_t k = 0;
    for (int round = 0; round < 3 && st.backlog_mags > 0; round++) {
        sleep_ms(120);
        for (size_t i = 0; i < (size_t)20 * mag && k < n; i++)
            p[k++] = magpool_alloc(c);
        magpool_cache_stats(c, &st);
    }
    CHECK_MSG(st.backlog_mags == 0, "backlog still holds %llu magazines",
              (unsigned long long)st.backlog_mags);
    CHECK(conserved(c, NULL));
    for (size_t i = 0; i < k; i++)
        magpool_free(c, p[i]);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
    free(p);
}

/* MAGPOOL_BULK_KERNELS caps the kernels at load (cpu.h): this program run
 * again with it set and the argument "kernels-child" prints its switches.
 * baseline turns both off, avx2 the masked ones; anything else is one line
 * and the CPU's choice. */
static void exec_kernels(void *arg)
{
    setenv("MAGPOOL_BULK_KERNELS", arg, 1);
    execl("/proc/self/exe", "test_core", "kernels-child", (char *)NULL);
    _exit(2);
}

static void test_kernel_env(void)
{
    static const struct {
        const char *value;
        bool wide, masked, line;
    } cases[] = { { "baseline", false, false, false }, { "avx2", true, false, false },
                  { "", true, true, false },          { "avx512", true, true, true },
                  { "AVX2", true, true, true } };
    char out[4096], want[160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = check_run_child(exec_kernels, (void *)cases[i].value, out, sizeof out);
        snprintf(want, sizeof want, "kernels %d %d\n", (int)(cases[i].wide && mp_bulk_wide),
                 (int)(cases[i].masked && mp_bulk_masked));
        snprintf(want + 64, sizeof want - 64, "magpool: MAGPOOL_BULK_KERNELS: invalid value '%s' ignored",
                 cases[i].value);
        const char *l = strstr(out, want + 64);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, want) != NULL &&
                      (cases[i].line ? l != NULL && strstr(l + 1, "magpool:") == NULL
                                     : strstr(out, "magpool:") == NULL),
                  "MAGPOOL_BULK_KERNELS=%s: status %#x [%s]", cases[i].value, st, out);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "kernels-child") == 0) {
        printf("kernels %d %d\n", (int)mp_bulk_wide, (int)mp_bulk_masked);
        return 0;
    }
    test_null_cache_free(); /* first: its children read MAGPOOL_DEBUG fresh */
    test_kernel_env();
    test_bad_args();
    test_bulk_null_array();
    test_nofail();
    test_max_caches();
    test_round_trip();
    test_ctor();
    test_flags();
    test_limits_bulk();
    test_mag_bounds();
    test_double_free();
    test_shrink_rss();
    test_shrink_rss_nosync();
    test_bulk_runs();
    test_bulk_hit();
    test_bulk_double_free();
    test_bulk_free_null_anywhere();
    test_bulk_owned();
    test_zombie();
    test_foreach();
    test_debug_cache();
    test_fault_inject();
    test_ws_reap();
    test_backlog_flow();
    test_backlog_off();
    test_backlog_limit();
    test_backlog_idle();
    magpool_synchronize(NULL);
    return check_done();
}
