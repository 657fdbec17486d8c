/*
 * mem_pool front end: every call, every bad input, the GlusterFS counters,
 * the statedump form, destroy with objects out, and a death test for every
 * diagnostic of mem_put.
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

struct req {
    long id;
    char payload[40];
};

static void test_new_bad_args(void)
{
    errno = 0;
    CHECK(mem_pool_new_fn(0, 10, "zero-size") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_pool_new_fn(16, 0, "zero-count") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_pool_new_fn(MAGPOOL_MAX_OBJECT_SIZE + 1ul, 1, "huge") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_get(NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_get0(NULL) == NULL && errno == EINVAL);
    mem_put(NULL);           /* nothing */
    mem_pool_destroy(NULL);  /* nothing */
    struct mem_pool_stats st;
    errno = 0;
    CHECK(mem_pool_get_stats(NULL, &st) == -1 && errno == EINVAL);
    struct mem_pool *p = mem_pool_new(struct req, 4);
    CHECK(p != NULL);
    errno = 0;
    CHECK(mem_pool_get_stats(p, NULL) == -1 && errno == EINVAL);
    mem_pool_destroy(p);
    /* GlusterFS takes a name of any length: so does mem_pool_new_fn,
     * keeping its first 63 characters (the core rejects longer names). */
    char name[100];
    memset(name, 'g', sizeof name - 1);
    name[sizeof name - 1] = 0;
    p = mem_pool_new_fn(32, 2, name);
    CHECK(p != NULL && mem_pool_get_stats(p, &st) == 0 && strlen(st.name) == 63 && strncmp(st.name, name, 63) == 0);
    mem_pool_destroy(p);
}

static void test_macro_and_alignment(void)
{
    struct mem_pool *p = mem_pool_new(struct req, 8);
    CHECK(p != NULL);
    struct mem_pool_stats st;
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK(strcmp(st.name, "struct req") == 0);
    CHECK(st.count == 8);
    CHECK(st.real_sizeof_type == sizeof(struct req));
    CHECK(st.padded_sizeof >= sizeof(struct req));
    struct req *r = mem_get(p);
    CHECK(r != NULL && (uintptr_t)r % _Alignof(max_align_t) == 0);
    r->id = 42;
    memset(r->payload, 'x', sizeof r->payload);
    mem_put(r);
    mem_pool_destroy(p);

    /* sizes below 16: 8-byte aligned; 16 and up: malloc's alignment */
    unsigned long sizes[] = {1, 7, 8, 12, 16, 17, 100, 4096, 5000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct mem_pool *q = mem_pool_new_fn(sizes[i], 3, "align");
        CHECK(q != NULL);
        size_t want = sizes[i] >= 16 ? _Alignof(max_align_t) : 8;
        void *o[5];
        for (int k = 0; k < 5; k++) {
            o[k] = mem_get(q);
            CHECK_MSG(o[k] != NULL && (uintptr_t)o[k] % want == 0, "size %lu", sizes[i]);
            if (o[k] != NULL)
                memset(o[k], 0xab, sizes[i]);
        }
        for (int k = 0; k < 5; k++)
            mem_put(o[k]);
        mem_pool_destroy(q);
    }
}

static void test_get0_zeroes(void)
{
    struct mem_pool *p = mem_pool_new_fn(200, 2, "zero");
    CHECK(p != NULL);
    for (int round = 0; round < 4; round++) {
        unsigned char *a = mem_get(p);
        CHECK(a != NULL);
        memset(a, 0xff, 200);
        mem_put(a);
        unsigned char *b = mem_get0(p);
        CHECK(b != NULL);
        int zero = 1;
        for (int i = 0; i < 200; i++)
            zero &= b[i] == 0;
        CHECK(zero);
        mem_put(b);
    }
    mem_pool_destroy(p);
}

static void test_distinct_and_growth(void)
{
    enum { N = 3000 };
    struct mem_pool *p = mem_pool_new_fn(24, 100, "grow");
    CHECK(p != NULL);
    static long *o[N];
    for (long i = 0; i < N; i++) {
        o[i] = mem_get(p);
        CHECK(o[i] != NULL);
        o[i][0] = i;
        o[i][2] = ~i;
    }
    int ok = 1;
    for (long i = 0; i < N; i++)
        ok &= o[i][0] == i && o[i][2] == ~i; /* distinct: nobody overwrote anybody */
    CHECK(ok);
    for (long i = 0; i < N; i++)
        mem_put(o[i]);
    mem_pool_destroy(p);
}

static void test_counters(void)
{
    enum { MORE_MAX = 4096 };
    struct mem_pool *p = mem_pool_new_fn(64, 8, "counters");
    CHECK(p != NULL);
    struct mem_pool_stats st;
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK(st.hot_count == 0);
    CHECK(st.cold_count >= 8); /* the warm-up built count objects */
    unsigned long cold0 = st.cold_count;
    /* past everything the warm-up built (it may build a whole magazine
     * more than count), so the slab layer must serve some */
    const unsigned long more = cold0 + 100;
    CHECK(more <= MORE_MAX);
    CHECK(st.alloc_count == 0);
    CHECK(st.max_alloc == 0);
    CHECK(st.pool_misses == 0);
    CHECK(st.cur_stdalloc == 0 && st.max_stdalloc == 0);
    CHECK(st.padded_sizeof >= 64);

    static void *o[MORE_MAX];
    for (int i = 0; i < 8; i++)
        o[i] = mem_get(p);
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK(st.hot_count == 8);
    CHECK(st.alloc_count == 8);
    CHECK(st.pool_misses == 0); /* served by the ready set */
    CHECK(st.cur_stdalloc == 0);
    CHECK(st.cold_count == cold0 - 8);
    for (int i = 8; i < 15; i++)
        o[i] = mem_get0(p);
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK(st.hot_count == 8);
    CHECK(st.cur_stdalloc == 7);
    CHECK(st.alloc_count == 15);
    CHECK(st.max_alloc == 15);
    CHECK(st.max_stdalloc == 7);
    for (unsigned long i = 15; i < more; i++)
        o[i] = mem_get(p);
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK(st.cur_stdalloc == more - 8 && st.max_alloc == more);
    CHECK_MSG(st.pool_misses >= more - cold0, "misses %llu cold0 %lu",
              (unsigned long long)st.pool_misses, cold0); /* the slab layer had to serve the rest */
    for (unsigned long i = 0; i < more; i++)
        mem_put(o[i]);
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK(st.hot_count == 0 && st.cur_stdalloc == 0);
    CHECK(st.max_alloc == more && st.max_stdalloc == more - 8); /* high-water marks stay */
    CHECK(st.cold_count >= more);
    CHECK(st.alloc_count == more);
    mem_pool_destroy(p);
}

static char *dump_to_string(void)
{
    static char buf[1 << 16];
    FILE *f = tmpfile();
    if (f == NULL)
        return NULL;
    mem_pool_dump(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_dump(void)
{
    struct mem_pool *p = mem_pool_new_fn(48, 4, "dump_me");
    CHECK(p != NULL);
    void *a = mem_get(p), *b = mem_get(p);
    char *s = dump_to_string();
    CHECK(s != NULL && strncmp(s, "[mempool]\n", 10) == 0);
    char *at = s ? strstr(s, "-----=-----\npool-name=dump_me\n") : NULL;
    CHECK(at != NULL);
    if (at != NULL) {
        unsigned long hot, cold, padded, alloc, max, miss, cur, maxstd;
        unsigned long long tbytes, tidle, dbytes, sbytes, reclaims;
        int n = sscanf(at,
                       "-----=-----\npool-name=dump_me\nhot-count=%lu\ncold-count=%lu\n"
                       "padded_sizeof=%lu\nalloc-count=%lu\nmax-alloc=%lu\npool-misses=%lu\n"
                       "cur-stdalloc=%lu\nmax-stdalloc=%lu\nthread-bytes=%llu\nthread-idle-bytes=%llu\n"
                       "depot-bytes=%llu\nslabs-free-bytes=%llu\nidle-reclaims=%llu\n",
                       &hot, &cold, &padded, &alloc, &max, &miss, &cur, &maxstd, &tbytes, &tidle, &dbytes,
                       &sbytes, &reclaims);
        CHECK(n == 13);
        CHECK(tidle <= tbytes);
        CHECK(hot == 2 && alloc == 2 && max == 2 && cur == 0 && maxstd == 0 && padded >= 48);
        /* the cold objects are somewhere: the bytes add up to cold * padded */
        CHECK_MSG(tbytes + dbytes + sbytes == cold * padded, "%llu + %llu + %llu != %lu * %lu", tbytes, dbytes,
                  sbytes, cold, padded);
    }
    mem_put(a);
    mem_put(b);
    mem_pool_destroy(p);
    s = dump_to_string();
    CHECK(s != NULL && strstr(s, "pool-name=dump_me") == NULL); /* only live pools */
    mem_pool_dump(NULL); /* stdout: must not crash */
}

/* Destroy with objects out: they stay valid; later puts (from any thread)
 * release them; LeakSanitizer checks the wrapper is freed with the last. */
struct put_arg {
    void **objs;
    int n;
    int bad;
};
static void *put_thread(void *arg)
{
    struct put_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        long *o = a->objs[i];
        a->bad += o[0] != i || o[1] != i; /* intact until put */
        mem_put(o);
    }
    return NULL;
}

static void test_destroy_with_objects_out(void)
{
    enum { N = 200 };
    struct mem_pool *p = mem_pool_new_fn(32, 16, "zombie");
    CHECK(p != NULL);
    void *o[N];
    for (int i = 0; i < N; i++) {
        o[i] = mem_get(p);
        CHECK(o[i] != NULL);
        ((long *)o[i])[0] = i;
    }
    mem_pool_destroy(p);
    int ok = 1;
    for (int i = 0; i < N; i++) {
        ok &= ((long *)o[i])[0] == i; /* still valid and intact */
        ((long *)o[i])[1] = i;        /* and writable */
    }
    CHECK(ok);
    /* half from another thread, half from here */
    struct put_arg a = {o, N / 2, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, put_thread, &a) == 0);
    pthread_join(t, NULL);
    CHECK(a.bad == 0);
    for (int i = N / 2; i < N; i++)
        mem_put(o[i]);
    char *s = dump_to_string();
    CHECK(s != NULL && strstr(s, "pool-name=zombie") == NULL);

    /* destroy with exactly one object out */
    p = mem_pool_new_fn(8, 1, "one_out");
    void *x = mem_get(p);
    mem_pool_destroy(p);
    mem_put(x);
}

/* Puts that alternate between pools, a put to a pool destroyed just after
 * the same thread put to it, and a new pool that may sit where the dead one
 * was. */
static void test_put_across_pools(void)
{
    enum { N = 64 };
    struct mem_pool *a = mem_pool_new_fn(48, 8, "across_a"), *b = mem_pool_new_fn(48, 8, "across_b");
    CHECK(a != NULL && b != NULL);
    void *oa[N], *ob[N];
    for (int i = 0; i < N; i++) {
        oa[i] = mem_get(a);
        ob[i] = mem_get(b);
    }
    for (int i = 0; i < N; i++) {
        mem_put(oa[i]);
        mem_put(ob[i]);
    }
    struct mem_pool_stats sa, sb;
    CHECK(mem_pool_get_stats(a, &sa) == 0 && mem_pool_get_stats(b, &sb) == 0);
    CHECK(sa.hot_count == 0 && sb.hot_count == 0);
    CHECK(sa.alloc_count == N && sb.alloc_count == N);

    void *x = mem_get(a), *y = mem_get(a);
    mem_put(x);
    mem_pool_destroy(a);
    mem_put(y); /* the pool is dead: released to the zombie, the wrapper freed */
    char *s = dump_to_string();
    CHECK(s != NULL && strstr(s, "pool-name=across_a") == NULL && strstr(s, "pool-name=across_b") != NULL);

    struct mem_pool *c = mem_pool_new_fn(48, 8, "across_c");
    void *z = mem_get(c);
    mem_put(z);
    struct mem_pool_stats sc;
    CHECK(mem_pool_get_stats(c, &sc) == 0 && sc.hot_count == 0 && sc.alloc_count == 1);
    mem_pool_destroy(b);
    mem_pool_destroy(c);
    magpool_synchronize(NULL); /* the caches are freed after a grace period (LSan) */
}

/* Objects cross threads: got in workers, put in main and vice versa. */
enum { XN = 2000 };
static void *xget_thread(void *arg)
{
    struct mem_pool *p = arg;
    void **out = malloc(XN * sizeof(void *));
    for (int i = 0; i < XN; i++) {
        out[i] = mem_get(p);
        if (out[i] != NULL)
            memset(out[i], 0x5a, 56);
    }
    return out;
}

static void test_cross_thread(void)
{
    struct mem_pool *p = mem_pool_new_fn(56, 64, "cross");
    pthread_t t[2];
    void *res[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, xget_thread, p) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], &res[i]);
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        void **o = res[i];
        for (int k = 0; k < XN; k++) {
            ok &= o[k] != NULL && ((unsigned char *)o[k])[55] == 0x5a;
            mem_put(o[k]);
        }
        free(o);
    }
    CHECK(ok);
    struct mem_pool_stats st;
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK(st.hot_count == 0 && st.alloc_count == 2 * XN);
    mem_pool_destroy(p);
}

/* ---- death tests: every mem_put diagnostic ---------------------------------- */
static void die_foreign_heap(void *arg)
{
    (void)arg;
    void *m = malloc(64);
    mem_put(m);
}
static void die_foreign_stack(void *arg)
{
    (void)arg;
    long x[4];
    mem_put(x);
}
static void die_misaligned(void *arg)
{
    (void)arg;
    struct mem_pool *p = mem_pool_new_fn(64, 2, "mis");
    char *o = mem_get(p);
    mem_put(o + 8);
}
/* The same misuses once mem_put remembers a pool's cache (a valid put
 * first): the remembered owner must not let them through. */
static void die_misaligned_after_memo(void *arg)
{
    (void)arg;
    struct mem_pool *p = mem_pool_new_fn(64, 2, "mism");
    char *o = mem_get(p), *q = mem_get(p);
    mem_put(o);
    mem_put(q + 8);
}
static void die_kmem_object_after_memo(void *arg)
{
    (void)arg;
    struct mem_pool *p = mem_pool_new_fn(64, 2, "kpm");
    struct kmem_cache *k = kmem_cache_create("kobjm", 64, 0, 0, NULL);
    mem_put(mem_get(p));
    mem_put(kmem_cache_alloc(k, GFP_KERNEL));
}
/* The slab mem_put last put to was torn down (its pool's cache shrunk) and
 * its pages went to a kmem cache: the put must be looked up and reported,
 * not pushed to the pool mem_put remembers.  arg: 1 to destroy the pool
 * instead. */
static void die_stale_memo(void *arg)
{
    struct mem_pool *p = mem_pool_new_fn(64, 1, "stale");
    char *x = mem_get(p);
    magpool_cache_t *c = magpool_cache_of(x);
    mem_put(x); /* mem_put's memo: this pool */
    if (arg != NULL)
        mem_pool_destroy(p);
    else
        magpool_cache_shrink(c);
    struct kmem_cache *k = kmem_cache_create("kstale", 64, 0, 0, NULL);
    void *y = NULL;
    for (int i = 0; i < 100000 && y != x; i++)
        y = kmem_cache_alloc(k, GFP_KERNEL);
    if (y != x) {
        fprintf(stderr, "precondition: x's pages were not reused\n");
        return;
    }
    mem_put(y);
    fprintf(stderr, "not reported\n");
}
static void die_double_put(void *arg)
{
    (void)arg;
    struct mem_pool *p = mem_pool_new_fn(64, 2, "dbl");
    void *o = mem_get(p);
    mem_put(o);
    mem_put(o);
}
static void die_kmem_object(void *arg)
{
    (void)arg;
    struct kmem_cache *k = kmem_cache_create("kobj", 64, 0, 0, NULL);
    void *o = kmem_cache_alloc(k, GFP_KERNEL);
    mem_put(o);
}
static void die_kmalloc_object(void *arg)
{
    (void)arg;
    mem_put(kmalloc(40, GFP_KERNEL));
}
static void die_kmalloc_large(void *arg)
{
    (void)arg;
    mem_put(kmalloc(20000, GFP_KERNEL)); /* a page span, not a slab object */
}
static void die_core_object(void *arg)
{
    (void)arg;
    struct magpool_config cfg = {.name = "raw", .size = 32};
    magpool_cache_t *c = magpool_cache_create(&cfg);
    mem_put(magpool_alloc(c));
}

static void test_deaths(void)
{
    CHECK(check_death(die_foreign_heap, NULL, "magpool: mem_pool: foreign pointer at 0x"));
    CHECK(check_death(die_foreign_stack, NULL, "foreign pointer"));
    CHECK(check_death(die_misaligned, NULL, "misaligned pointer at 0x"));
    CHECK(check_death(die_misaligned_after_memo, NULL, "magpool: mem_pool: misaligned pointer at 0x"));
    CHECK(check_death(die_kmem_object_after_memo, NULL, "magpool: kobjm: wrong cache at 0x"));
    CHECK(check_death(die_stale_memo, NULL, "magpool: kstale: wrong cache at 0x"));
    CHECK(check_death(die_stale_memo, (void *)1, "magpool: kstale: wrong cache at 0x"));
    CHECK(check_death(die_double_put, NULL, "double free"));
    CHECK(check_death(die_double_put, NULL, "magpool: dbl:"));
    CHECK(check_death(die_kmem_object, NULL, "magpool: kobj: wrong cache at 0x"));
    CHECK(check_death(die_kmalloc_object, NULL, "wrong cache"));
    CHECK(check_death(die_core_object, NULL, "magpool: raw: wrong cache"));
    CHECK(check_death(die_kmalloc_large, NULL, "magpool: mem_pool: foreign pointer at 0x"));
}

/* mem_pools_init / mem_pools_fini pair up; the last fini gives back what
 * no pool is using (the thread's cached objects, free slabs), and the pools
 * keep working before, between and after. */
static void test_pools_init_fini(void)
{
    enum { N = 2000 };
    static void *o[N];
    mem_pools_fini(); /* without an init: nothing (below: the memory stays) */
    mem_pools_init();
    mem_pools_init_early();
    mem_pools_init_late();
    struct mem_pool *p = mem_pool_new_fn(256, 16, "initfini");
    CHECK(p != NULL);
    for (int i = 0; i < N; i++)
        o[i] = mem_get(p);
    for (int i = 0; i < N; i++)
        mem_put(o[i]);
    struct mem_pool_stats st;
    CHECK(mem_pool_get_stats(p, &st) == 0 && st.thread_bytes > 0);
    uint64_t cached = st.thread_bytes + st.depot_bytes + st.slabs_free_bytes;
    mem_pools_fini(); /* one of two inits left: nothing given back */
    CHECK(mem_pool_get_stats(p, &st) == 0 && st.thread_bytes > 0);
    CHECK(st.thread_bytes + st.depot_bytes + st.slabs_free_bytes == cached);
    mem_pools_fini(); /* the last */
    CHECK(mem_pool_get_stats(p, &st) == 0);
    CHECK_MSG(st.thread_bytes == 0 && st.depot_bytes == 0, "thread %llu depot %llu",
              (unsigned long long)st.thread_bytes, (unsigned long long)st.depot_bytes);
    CHECK(st.thread_bytes + st.depot_bytes + st.slabs_free_bytes < cached / 2);
    void *a = mem_get0(p); /* still a working pool */
    CHECK(a != NULL);
    mem_put(a);
    mem_pools_fini(); /* more finis than inits: nothing */
    mem_pool_destroy(p);
}

int main(void)
{
    test_new_bad_args();
    test_macro_and_alignment();
    test_get0_zeroes();
    test_distinct_and_growth();
    test_counters();
    test_dump();
    test_destroy_with_objects_out();
    test_put_across_pools();
    test_cross_thread();
    test_pools_init_fini();
    test_deaths();
    return check_done();
}
