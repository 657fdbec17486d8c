/*
 * kmalloc family: size classes, ksize, natural alignment, zeroing, kcalloc
 * overflow, krealloc's rules, page-backed large allocations, and a death
 * test for every kfree/ksize diagnostic.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "magpool/kmem_cache.h"
#include "magpool/magpool.h"
#include "magpool/mem_pool.h"
#include "tests/check.h"


static int all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0)
            return 0;
    return 1;
}

static void test_zero_and_null(void)
{
    CHECK(kmalloc(0, GFP_KERNEL) == ZERO_SIZE_PTR);
    CHECK(kzalloc(0, GFP_KERNEL) == ZERO_SIZE_PTR);
    CHECK(kcalloc(0, 8, GFP_KERNEL) == ZERO_SIZE_PTR);
    kfree(NULL);
    kfree(ZERO_SIZE_PTR);
    CHECK(ksize(NULL) == 0);
    CHECK(ksize(ZERO_SIZE_PTR) == 0);
    CHECK(ZERO_OR_NULL_PTR(NULL) && ZERO_OR_NULL_PTR(ZERO_SIZE_PTR));
}

static void test_classes(void)
{
    static const struct {
        size_t ask, want;
    } t[] = {{1, 8},       {8, 8},       {9, 16},      {16, 16},     {17, 32},   {33, 64},
             {64, 64},     {65, 96},     {96, 96},     {97, 128},    {128, 128}, {129, 192},
             {192, 192},   {193, 256},   {256, 256},   {257, 512},   {513, 1024}, {1025, 2048},
             {2049, 4096}, {4096, 4096}, {4097, 8192}, {8192, 8192}, {8193, 12288},
             {100000, 102400}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        unsigned char *p = kmalloc(t[i].ask, GFP_KERNEL);
        CHECK_MSG(p != NULL, "kmalloc(%zu)", t[i].ask);
        if (p == NULL)
            continue;
        CHECK_MSG(ksize(p) == t[i].want, "ksize(kmalloc(%zu)) = %zu, want %zu", t[i].ask, ksize(p),
                  t[i].want);
        memset(p, 0xcd, ksize(p)); /* the whole ksize is usable */
        kfree(p);
    }
}

static void test_alignment(void)
{
    for (size_t sz = 8; sz <= ((size_t)1 << 20); sz <<= 1) {
        void *p[3];
        for (int k = 0; k < 3; k++) {
            p[k] = kmalloc(sz, GFP_KERNEL);
            size_t want = sz <= 4096 || sz > 8192 ? sz : 4096; /* 8k: the core's largest align */
            CHECK_MSG(p[k] != NULL && (uintptr_t)p[k] % want == 0, "kmalloc(%zu) = %p", sz, p[k]);
        }
        for (int k = 0; k < 3; k++)
            kfree(p[k]);
    }
    /* non-power-of-two classes: malloc's alignment */
    void *a = kmalloc(96, GFP_KERNEL), *b = kmalloc(150, GFP_KERNEL);
    CHECK((uintptr_t)a % 16 == 0 && (uintptr_t)b % 16 == 0);
    kfree(a);
    kfree(b);
    /* large, not a power of two: page aligned */
    void *c = kmalloc(3 * 4096 + 5, GFP_KERNEL);
    CHECK(c != NULL && (uintptr_t)c % 4096 == 0);
    kfree(c);
}

static void test_zeroing(void)
{
    size_t sizes[] = {5, 64, 100, 3000, 8192, 20000, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = kmalloc(sizes[i], GFP_KERNEL);
        memset(p, 0x77, sizes[i]);
        kfree(p);
        p = kzalloc(sizes[i], GFP_KERNEL);
        CHECK_MSG(p != NULL && all_zero(p, sizes[i]), "kzalloc(%zu)", sizes[i]);
        kfree(p);
        p = kcalloc(sizes[i], 1, GFP_KERNEL);
        CHECK(p != NULL && all_zero(p, sizes[i]));
        kfree(p);
    }
    errno = 0;
    CHECK(kcalloc(SIZE_MAX / 2, 3, GFP_KERNEL) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(kcalloc((size_t)1 << 33, (size_t)1 << 33, GFP_KERNEL) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(kmalloc(SIZE_MAX, GFP_KERNEL) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(kmalloc(SIZE_MAX - 4000, GFP_KERNEL) == NULL && errno == ENOMEM);
}

static void test_krealloc(void)
{
    char *p = krealloc(NULL, 20, GFP_KERNEL); /* NULL: kmalloc */
    CHECK(p != NULL && ksize(p) == 32);
    memcpy(p, "0123456789abcdefghi", 20);
    char *q = krealloc(p, 30, GFP_KERNEL); /* fits in its class: same object */
    CHECK(q == p);
    q = krealloc(p, 10, GFP_KERNEL); /* shrink: same object */
    CHECK(q == p);
    q = krealloc(p, 5000, GFP_KERNEL); /* grow: moved, content kept */
    CHECK(q != NULL && q != p && memcmp(q, "0123456789abcdefghi", 20) == 0);
    char *r = krealloc(q, 50000, GFP_KERNEL | __GFP_ZERO); /* to a large span, tail zeroed */
    CHECK(r != NULL && memcmp(r, "0123456789abcdefghi", 20) == 0 && all_zero(r + 8192, 50000 - 8192));
    char *z = krealloc(r, 0, GFP_KERNEL); /* 0: kfree */
    CHECK(z == ZERO_SIZE_PTR);
    p = krealloc(ZERO_SIZE_PTR, 40, GFP_KERNEL);
    CHECK(p != NULL && ksize(p) == 64);
    kfree(p);
    CHECK(krealloc(NULL, 0, GFP_KERNEL) == ZERO_SIZE_PTR);
    p = kmalloc(100, GFP_KERNEL);
    errno = 0;
    CHECK(krealloc(p, SIZE_MAX, GFP_KERNEL) == NULL && errno == ENOMEM); /* p untouched */
    kfree(p);
}

static void test_large(void)
{
    size_t sizes[] = {8193, 65536, 1 << 20, (5u << 20) + 3}; /* the last spans regions */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = kmalloc(sizes[i], GFP_KERNEL);
        CHECK(p != NULL && (uintptr_t)p % 4096 == 0);
        if (p == NULL)
            continue;
        CHECK(ksize(p) >= sizes[i] && ksize(p) % 4096 == 0);
        memset(p, 0x42, sizes[i]);
        CHECK(p[sizes[i] - 1] == 0x42);
        kfree(p);
    }
    void *n = kmalloc(100000, GFP_KERNEL | __GFP_NOFAIL);
    CHECK(n != NULL);
    kfree(n);
}

/* A size larger than the arena can never be served (issue #14 B): NULL +
 * ENOMEM at once, and with __GFP_NOFAIL (which used to retry for ever) one
 * line too, unless __GFP_NOWARN.  alarm() turns a hang into a failure. */
static void nofail_huge_child(void *arg)
{
    gfp_t extra = (gfp_t)(uintptr_t)arg;
    alarm(10);
    errno = 0;
    void *p = kmalloc((size_t)128 << 30, GFP_KERNEL | __GFP_NOFAIL | extra);
    int e = errno;
    errno = 0;
    void *q = krealloc(kmalloc(64, GFP_KERNEL), (size_t)128 << 30, GFP_KERNEL | __GFP_NOFAIL | extra);
    printf("p %p errno %d q %p errno %d\n", p, e, q, errno);
    fflush(stdout);
    _exit(p == NULL && e == ENOMEM && q == NULL && errno == ENOMEM ? 0 : 1);
}
static void test_impossible_sizes(void)
{
    char out[4096];
    int st = check_run_child(nofail_huge_child, (void *)0, out, sizeof out);
    const char *line = "magpool: kmalloc-large: __GFP_NOFAIL allocation larger than the arena (137438953472 bytes";
    const char *l1 = strstr(out, line), *l2 = l1 ? strstr(l1 + 1, line) : NULL;
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && l1 != NULL && l2 != NULL && strstr(l2 + 1, line) == NULL,
              "NOFAIL 128 GiB: status %#x [%s]", st, out);
    st = check_run_child(nofail_huge_child, (void *)(uintptr_t)__GFP_NOWARN, out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "magpool:") == NULL,
              "NOFAIL|NOWARN 128 GiB: status %#x [%s]", st, out);
    errno = 0;
    CHECK(kmalloc((size_t)128 << 30, GFP_KERNEL) == NULL && errno == ENOMEM); /* no NOFAIL: no line */
}

/* kmalloc red zone (issue #14 E): with MAGPOOL_DEBUG=redzone the bytes
 * between the requested size and the class size are checked at kfree (an
 * overflow that stays inside the class used to pass).  Run in a fresh
 * process per scenario, MAGPOOL_DEBUG being read once. */
static int redzone_scenario(const char *sc)
{
    if (strcmp(sc, "overflow") == 0) {
        char *p = kmalloc(100, GFP_KERNEL); /* kmalloc-128 */
        ((volatile char *)p)[100] = 'x';
        kfree(p);
    } else if (strcmp(sc, "shrunk") == 0) { /* krealloc in place: the new size is the request */
        char *p = kmalloc(120, GFP_KERNEL);
        p = krealloc(p, 40, GFP_KERNEL);
        ((volatile char *)p)[60] = 'x';
        kfree(p);
    } else if (strcmp(sc, "clean") == 0) { /* no report for legal use */
        char *p = kmalloc(100, GFP_KERNEL);
        memset(p, 0x11, 100);
        char *z = kzalloc(13, GFP_KERNEL);
        int zero = 1;
        for (int i = 0; i < 13; i++)
            zero &= z[i] == 0;
        size_t k = ksize(z); /* all of it usable now, as Linux's ksize */
        memset(z, 0x22, k);
        char *g = krealloc(p, 128, GFP_KERNEL); /* in place, grown to the class */
        memset(g, 0x33, 128);
        char *m = krealloc(g, 300, GFP_KERNEL); /* moved: the 128 bytes come along */
        int kept = m != NULL && (unsigned char)m[127] == 0x33;
        memset(m, 0x44, 300);
        kfree(m);
        kfree(z);
        printf("clean zero %d kept %d k %zu\n", zero, kept, k);
        return zero && kept && k == 16 ? 0 : 1;
    }
    return 0;
}
static void exec_redzone(void *arg)
{
    setenv("MAGPOOL_DEBUG", "redzone", 1);
    execl("/proc/self/exe", "test_kmalloc", "--redzone", (const char *)arg, (char *)NULL);
    _exit(2);
}
static void test_kmalloc_redzone(void)
{
    const char *alt = NULL;
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
    alt = "use-after-poison"; /* the bytes past the request are poisoned too */
#endif
#endif
#ifdef __SANITIZE_ADDRESS__
    alt = "use-after-poison";
#endif
    char out[8192];
    const char *sc[] = {"overflow", "shrunk"};
    const char *want[] = {"magpool: kmalloc-128: kmalloc red zone overwritten at 0x",
                          "magpool: kmalloc-128: kmalloc red zone overwritten at 0x"};
    const char *detail[] = {"(at offset 100, byte 0x78; 100 bytes requested of 128)",
                            "(at offset 60, byte 0x78; 40 bytes requested of 128)"};
    for (int i = 0; i < 2; i++) {
        int st = check_run_child(exec_redzone, (void *)sc[i], out, sizeof out);
        int died = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
        int said = (strstr(out, want[i]) && strstr(out, detail[i])) || (alt && strstr(out, alt));
        CHECK_MSG(died && said, "redzone %s: status %#x [%s]", sc[i], st, out);
    }
    int st = check_run_child(exec_redzone, (void *)"clean", out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "magpool:") == NULL, "redzone clean: status %#x [%s]",
              st, out);
}

/* kfree of any kmem_cache object is allowed (Linux >= 6.4) */
static void test_kfree_cache_object(void)
{
    struct kmem_cache *s = kmem_cache_create("kfree_me", 40, 0, 0, NULL);
    void *o = kmem_cache_alloc(s, GFP_KERNEL);
    CHECK(ksize(o) == 40);
    kfree(o);
    kmem_cache_destroy(s); /* no live objects: no diagnostic */
}

/* kfree_bulk (kmem_cache_free_bulk with a NULL cache): every kind of
 * kmalloc memory and a kmem_cache object in one run, NULL and ZERO_SIZE_PTR
 * entries skipped; each object back in its own cache (the next allocation
 * of its size gets it back: LIFO), the large spans given back (kfree'ing one
 * again is a double free: die_bulk_large_double). */
static void test_kfree_bulk(void)
{
    static const size_t sizes[] = { 8, 100, 3000, 8192, 20000, 1 << 20 };
    enum { NS = sizeof sizes / sizeof sizes[0] };
    struct kmem_cache *s = kmem_cache_create("kfree_bulk", 72, 0, 0, NULL);
    for (int round = 0; round < 3; round++) {
        void *p[NS + 4];
        size_t n = 0;
        for (size_t i = 0; i < NS; i++) {
            p[n++] = kmalloc(sizes[i], GFP_KERNEL);
            CHECK(p[n - 1] != NULL);
            if (i == 1)
                p[n++] = NULL;
        }
        void *obj = kmem_cache_alloc(s, GFP_KERNEL);
        p[n++] = obj;
        p[n++] = kmalloc(0, GFP_KERNEL); /* ZERO_SIZE_PTR */
        CHECK(p[n - 1] == ZERO_SIZE_PTR);
        void *class_obj[4] = { p[0], p[1], p[3], p[4] }; /* 8, 100, 3000, 8192 (p[2]: NULL) */
        kfree_bulk(n, p);
        CHECK(kmem_cache_alloc(s, GFP_KERNEL) == obj);
        kmem_cache_free(s, obj);
        for (int k = 0; k < 4; k++) {
            size_t size = sizes[k];
            void *again = kmalloc(size, GFP_KERNEL);
            CHECK_MSG(again == class_obj[k], "size %zu: not back in its class", size);
            kfree(again);
        }
    }
    kmem_cache_destroy(s); /* no live objects: no diagnostic */
}

/* kfree remembers the cache it last freed to (kfree_memo): frees that
 * alternate between classes, and between a class and a kmem cache, each
 * reach their own cache (the next allocation of each gets its object back,
 * LIFO), whatever the memo held before. */
static void test_kfree_alternating_owners(void)
{
    struct kmem_cache *s = kmem_cache_create("kfree_alt", 64, 0, 0, NULL);
    CHECK(s != NULL);
    for (int round = 0; round < 200; round++) {
        void *a = kmalloc(64, GFP_KERNEL), *b = kmalloc(128, GFP_KERNEL);
        void *c = kmem_cache_alloc(s, GFP_KERNEL), *d = kmalloc(64, GFP_KERNEL);
        CHECK(a != NULL && b != NULL && c != NULL && d != NULL);
        kfree(a);
        kfree(b);
        kfree(c); /* a kmem_cache object through kfree: allowed */
        kfree(d);
        void *d2 = kmalloc(64, GFP_KERNEL), *b2 = kmalloc(128, GFP_KERNEL);
        void *c2 = kmem_cache_alloc(s, GFP_KERNEL), *a2 = kmalloc(64, GFP_KERNEL);
        CHECK_MSG(d2 == d && a2 == a, "round %d: kmalloc-64 gave %p %p, freed %p %p", round, d2, a2, d, a);
        CHECK_MSG(b2 == b, "round %d: kmalloc-128 gave %p, freed %p", round, b2, b);
        CHECK_MSG(c2 == c, "round %d: kfree_alt gave %p, freed %p", round, c2, c);
        kfree(a2);
        kfree(b2);
        kmem_cache_free(s, c2);
        kfree(d2);
    }
    kmem_cache_destroy(s); /* no live objects: no diagnostic */
}

static void *worker(void *arg)
{
    void **slots = arg;
    for (int i = 0; i < 1000; i++) {
        size_t sz = (size_t)(i * 37 % 9000) + 1;
        slots[i] = kmalloc(sz, GFP_KERNEL);
        if (slots[i])
            memset(slots[i], i & 0xff, sz);
    }
    return NULL;
}
static void test_threads(void)
{
    static void *slots[2][1000];
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, slots[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    int ok = 1;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 1000; k++) {
            size_t sz = (size_t)(k * 37 % 9000) + 1;
            ok &= slots[i][k] != NULL && ((unsigned char *)slots[i][k])[sz - 1] == (k & 0xff);
            kfree(slots[i][k]); /* freed by a thread that did not allocate */
        }
    CHECK(ok);
}

/* ---- death tests ------------------------------------------------------------ */
static void die_foreign(void *a)
{
    (void)a;
    kfree(calloc(1, 32));
}
static void die_stack(void *a)
{
    (void)a;
    int x = 0;
    kfree(&x);
}
static void die_misaligned(void *a)
{
    (void)a;
    char *p = kmalloc(64, GFP_KERNEL);
    kfree(p + 8);
}
/* The same misuses once kfree remembers a cache (a valid kfree first): the
 * remembered owner must not let them through. */
static void die_misaligned_after_memo(void *a)
{
    (void)a;
    char *p = kmalloc(64, GFP_KERNEL), *q = kmalloc(64, GFP_KERNEL);
    kfree(p);
    kfree(q + 8);
}
static void die_mem_pool_after_memo(void *a)
{
    (void)a;
    struct mem_pool *p = mem_pool_new_fn(64, 1, "mpm");
    kfree(kmalloc(64, GFP_KERNEL));
    kfree(mem_get(p));
}
static void die_foreign_after_memo(void *a)
{
    (void)a;
    kfree(kmalloc(64, GFP_KERNEL));
    kfree(malloc(64));
}
static void die_large_misaligned(void *a)
{
    (void)a;
    char *p = kmalloc(40000, GFP_KERNEL);
    kfree(p + 4096);
}
static void die_large_ksize(void *a)
{
    (void)a;
    char *p = kmalloc(40000, GFP_KERNEL);
    ksize(p + 8192);
}
static void die_double(void *a)
{
    (void)a;
    void *p = kmalloc(64, GFP_KERNEL);
    kfree(p);
    kfree(p);
}
static void die_large_double(void *a)
{
    (void)a;
    void *p = kmalloc(40000, GFP_KERNEL);
    kfree(p);
    kfree(p);
}
static void die_mem_pool(void *a)
{
    (void)a;
    struct mem_pool *p = mem_pool_new_fn(64, 1, "mpk");
    kfree(mem_get(p));
}
static void die_core_object(void *a)
{
    (void)a;
    struct magpool_config cfg = {.name = "rawk", .size = 64};
    kfree(magpool_alloc(magpool_cache_create(&cfg))); /* a cache with no front end */
}
static void die_ksize_foreign(void *a)
{
    (void)a;
    ksize(calloc(1, 16));
}

/* krealloc names itself in its misuse reports (it used to say "ksize"). */
static void die_krealloc_foreign(void *a)
{
    (void)a;
    krealloc(calloc(1, 16), 100, GFP_KERNEL);
}
static void die_krealloc_large_misaligned(void *a)
{
    (void)a;
    krealloc((char *)kmalloc(40000, GFP_KERNEL) + 4096, 50000, GFP_KERNEL);
}

/* The rest of Linux's kmalloc family: each call's arithmetic and results. */
static void test_linux_family(void)
{
    /* _array: the product, and overflow refused without touching p. */
    int *a = kmalloc_array(10, sizeof(int), GFP_KERNEL);
    CHECK(a != NULL && ksize(a) == 64);
    for (int i = 0; i < 10; i++)
        a[i] = i;
    errno = 0;
    CHECK(kmalloc_array(SIZE_MAX / 4, 8, GFP_KERNEL) == NULL && errno == ENOMEM);
    CHECK(kvmalloc_array(SIZE_MAX / 4, 8, GFP_KERNEL) == NULL && errno == ENOMEM);
    CHECK(kvcalloc((size_t)1 << 40, (size_t)1 << 40, GFP_KERNEL) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(krealloc_array(a, SIZE_MAX / 2, 4, GFP_KERNEL) == NULL && errno == ENOMEM);
    CHECK(a[9] == 9 && ksize(a) == 64); /* untouched, still live */
    int *b = krealloc_array(a, 100, sizeof(int), GFP_KERNEL);
    CHECK(b != NULL && ksize(b) == 512 && b[0] == 0 && b[9] == 9);
    kfree(b);

    /* _node: any node, one memory; kzalloc_node zeroes. */
    unsigned char *n = kzalloc_node(200, GFP_KERNEL, NUMA_NO_NODE);
    CHECK(n != NULL && ksize(n) == 256 && all_zero(n, 200));
    void *m = kmalloc_node(24, GFP_KERNEL, 0);
    CHECK(m != NULL && ksize(m) == 32);
    kvfree(n);
    kfree(m);
    struct kmem_cache *kc = kmem_cache_create("nodec", 48, 0, 0, NULL);
    void *o = kmem_cache_alloc_node(kc, GFP_KERNEL, 3);
    CHECK(o != NULL && ksize(o) == 48);
    kmem_cache_free(kc, o);
    errno = 0;
    CHECK(kmem_cache_alloc_node(NULL, GFP_KERNEL, 0) == NULL && errno == EINVAL);

    /* dup: contents, lengths, the terminating NUL, NULL in. */
    static const char text[] = "magazines and vmem";
    char *d = kmemdup(text, 9, GFP_KERNEL);
    CHECK(d != NULL && memcmp(d, "magazines", 9) == 0 && ksize(d) == 16);
    kfree(d);
    CHECK(kmemdup(text, 0, GFP_KERNEL) == ZERO_SIZE_PTR);
    errno = 0;
    CHECK(kmemdup(NULL, 4, GFP_KERNEL) == NULL && errno == EINVAL);
    char *s1 = kstrdup(text, GFP_KERNEL);
    CHECK(s1 != NULL && strcmp(s1, text) == 0 && s1 != text);
    char *s2 = kstrndup(text, 4, GFP_KERNEL);
    CHECK(s2 != NULL && strcmp(s2, "maga") == 0);
    char *s3 = kstrndup("ab", 100, GFP_KERNEL);
    CHECK(s3 != NULL && strcmp(s3, "ab") == 0 && ksize(s3) == 8);
    char *s4 = kmemdup_nul("abcdef", 3, GFP_KERNEL);
    CHECK(s4 != NULL && memcmp(s4, "abc", 4) == 0);
    char *s5 = kstrdup("", GFP_KERNEL);
    CHECK(s5 != NULL && s5 != ZERO_SIZE_PTR && s5[0] == '\0');
    CHECK(kstrdup(NULL, GFP_KERNEL) == NULL && kstrndup(NULL, 3, GFP_KERNEL) == NULL);
    kfree(s1);
    kfree(s2);
    kfree(s3);
    kfree(s4);
    kfree(s5);

    /* kv*: kmalloc's memory under other names, large sizes included. */
    unsigned char *big = kvzalloc(100000, GFP_KERNEL);
    CHECK(big != NULL && ksize(big) == 102400 && all_zero(big, 100000));
    kvfree(big);
    void *kv = kvmalloc(64, GFP_KERNEL);
    CHECK(kv != NULL && ksize(kv) == 64);
    kfree(kv); /* either free takes either */
    kvfree(NULL);
    kvfree(ZERO_SIZE_PTR);

    /* kmalloc_size_roundup = the ksize kmalloc gives. */
    static const size_t sizes[] = {1, 8, 9, 65, 96, 97, 129, 200, 4096, 4097, 8192, 8193, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = kmalloc(sizes[i], GFP_KERNEL);
        CHECK_MSG(p != NULL && kmalloc_size_roundup(sizes[i]) == ksize(p), "roundup(%zu) = %zu, ksize %zu",
                  sizes[i], kmalloc_size_roundup(sizes[i]), p != NULL ? ksize(p) : 0);
        kfree(p);
    }
    CHECK(kmalloc_size_roundup(0) == 0);
    CHECK(kmalloc_size_roundup(SIZE_MAX - 5) == SIZE_MAX - 5);

    /* kfree_sensitive clears all ksize bytes before the object is reused
     * (the thread's magazine hands the same object back next, except where a
     * sanitizer delays reuse). */
    struct kmem_cache *sc = kmem_cache_create("sensitive", 100, 0, 0, NULL);
    unsigned char *secret = kmem_cache_alloc(sc, GFP_KERNEL);
    CHECK(secret != NULL);
    memset(secret, 0xa5, ksize(secret));
    kfree_sensitive(secret);
    unsigned char *again = kmem_cache_alloc(sc, GFP_KERNEL);
#ifndef CHECK_SANITIZED
    CHECK(again == secret);
#endif
    if (again == secret)
        CHECK(all_zero(again, 100));
    kmem_cache_free(sc, again);
    unsigned char *ks = kmalloc(40, GFP_KERNEL);
    memset(ks, 0x5a, 40);
    kfree_sensitive(ks);
    unsigned char *ks2 = kmalloc(40, GFP_KERNEL);
#ifndef CHECK_SANITIZED
    CHECK(ks2 == ks);
#endif
    if (ks2 == ks)
        CHECK(all_zero(ks2, 64)); /* the whole class, past the 40 asked for */
    kfree(ks2);
    kfree_sensitive(NULL);
    kfree_sensitive(ZERO_SIZE_PTR);
    kfree_sensitive(kmalloc(50000, GFP_KERNEL)); /* a large span */
    kmem_cache_destroy(sc);
    kmem_cache_destroy(kc);
}

static void die_sensitive_foreign(void *a)
{
    (void)a;
    kfree_sensitive(calloc(1, 16));
}
static void die_kvfree_double(void *a)
{
    (void)a;
    void *p = kvmalloc(64, GFP_KERNEL);
    kvfree(p);
    kvfree(p);
}

static void die_bulk_large_double(void *a)
{
    (void)a;
    void *p[2] = { kmalloc(20000, GFP_KERNEL), kmalloc(64, GFP_KERNEL) };
    void *large = p[0];
    kfree_bulk(2, p);
    kfree(large);
}

static void test_deaths(void)
{
    CHECK(check_death(die_bulk_large_double, NULL, "magpool: kmalloc-large: double free at 0x"));
    CHECK(check_death(die_sensitive_foreign, NULL, "magpool: kmalloc: foreign pointer at 0x"));
    CHECK(check_death(die_sensitive_foreign, NULL, "(kfree_sensitive)"));
    CHECK(check_death(die_kvfree_double, NULL, "double free"));
    CHECK(check_death(die_foreign, NULL, "magpool: kmalloc: foreign pointer at 0x"));
    CHECK(check_death(die_stack, NULL, "foreign pointer"));
    CHECK(check_death(die_misaligned, NULL, "magpool: kmalloc: misaligned pointer at 0x"));
    CHECK(check_death(die_large_misaligned, NULL, "magpool: kmalloc-large: misaligned pointer at 0x"));
    CHECK(check_death(die_large_ksize, NULL, "misaligned pointer"));
    CHECK(check_death(die_double, NULL, "double free"));
    CHECK(check_death(die_large_double, NULL, "magpool: kmalloc-large: double free at 0x"));
    CHECK(check_death(die_krealloc_foreign, NULL, "magpool: kmalloc: foreign pointer at 0x"));
    CHECK(check_death(die_krealloc_foreign, NULL, "(krealloc)"));
    CHECK(check_death(die_krealloc_large_misaligned, NULL, "(krealloc: inside a large kmalloc)"));
    CHECK(check_death(die_mem_pool, NULL, "magpool: mpk: wrong cache at 0x"));
    CHECK(check_death(die_core_object, NULL, "magpool: rawk: wrong cache at 0x"));
    CHECK(check_death(die_ksize_foreign, NULL, "(ksize)"));
    CHECK(check_death(die_misaligned_after_memo, NULL, "magpool: kmalloc: misaligned pointer at 0x"));
    CHECK(check_death(die_mem_pool_after_memo, NULL, "magpool: mpm: wrong cache at 0x"));
    CHECK(check_death(die_foreign_after_memo, NULL, "magpool: kmalloc: foreign pointer at 0x"));
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--redzone") == 0)
        return redzone_scenario(argv[2]);
    test_zero_and_null();
    test_classes();
    test_alignment();
    test_zeroing();
    test_krealloc();
    test_large();
    test_impossible_sizes();
    test_kmalloc_redzone();
    test_kfree_cache_object();
    test_kfree_alternating_owners();
    test_kfree_bulk();
    test_threads();
    test_linux_family();
    test_deaths();
    return check_done();
}
