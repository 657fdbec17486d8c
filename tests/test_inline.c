/*
 * magpool.h's inline magazine hits (built with -O2 in every configuration;
 * the sanitizer builds call the library instead, MAGPOOL_INLINE_HITS == 0,
 * and these tests then check the library path).
 *
 *  - inline and library calls mix on one cache and one thread, across many
 *    magazine boundaries, in every combination (alloc inline / free through
 *    a function pointer, and the reverse): no object handed out twice,
 *    statistics exact (allocs, frees, in_use), conservation;
 *  - the inline free sends an object equal to the top round to the library,
 *    which reports the double free (death test);
 *  - NULL cache: NULL + EINVAL from alloc, free(NULL cache, obj) does not
 *    crash; free of NULL does nothing;
 *  - a destroyed cache (fast id 0): an inline free of a live object goes to
 *    the zombie path, and the zombie goes when the last object is back;
 *  - a new thread's first inline calls (its state is the library's shared
 *    array) miss into the library and then hit, whatever number other
 *    threads' in-hit marks left in that array's top;
 *  - a debug cache (fast id 0): every inline call misses; its checks run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "magpool/magpool.h"
#include "tests/check.h"
#include "tests/conserve.h"

static void *(*volatile lib_alloc)(magpool_cache_t *) = magpool_alloc;
static void (*volatile lib_free)(magpool_cache_t *, void *) = magpool_free;

static int seen_add(uintptr_t *set, size_t cap, const void *p) /* 0 if already there */
{
    size_t i = (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) & (cap - 1);
    while (set[i] != 0) {
        if (set[i] == (uintptr_t)p)
            return 0;
        i = (i + 1) & (cap - 1);
    }
    set[i] = (uintptr_t)p;
    return 1;
}

static void test_mix(void)
{
    enum { N = 3000, CAP = 8192 };
    struct magpool_config cfg = { .name = "inline-mix", .size = 48 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    static void *p[N];
    static uintptr_t live[CAP];
    int dup = 0, null = 0;
    uint64_t allocs = 0;
    for (int round = 0; round < 8; round++) {
        memset(live, 0, sizeof live);
        for (int i = 0; i < N; i++) {
            /* rounds 0-3: alternate per object; 4-7: per half */
            int inl = round < 4 ? ((i ^ round) & 1) : (i < N / 2) == (round & 1);
            p[i] = inl ? magpool_alloc(c) : lib_alloc(c);
            null += p[i] == NULL;
            dup += !seen_add(live, CAP, p[i]);
            *(volatile uint64_t *)p[i] = (uint64_t)i;
        }
        allocs += N;
        int bad = 0;
        for (int i = N; i-- > 0;) {
            bad += *(volatile uint64_t *)p[i] != (uint64_t)i;
            int inl = round < 4 ? ((i ^ round) & 2) != 0 : (i < N / 2) != (round & 1);
            if (inl)
                magpool_free(c, p[i]);
            else
                lib_free(c, p[i]);
        }
        CHECK(bad == 0);
    }
    CHECK(null == 0 && dup == 0);
    struct magpool_stats st;
    CHECK(conserved(c, &st));
    CHECK_MSG(st.allocs == allocs && st.frees == allocs && st.in_use == 0,
              "allocs %llu frees %llu in_use %llu, expected %llu", (unsigned long long)st.allocs,
              (unsigned long long)st.frees, (unsigned long long)st.in_use, (unsigned long long)allocs);
    /* in_use counts objects out, whichever path took them */
    void *a = magpool_alloc(c), *b = lib_alloc(c);
    CHECK(conserved(c, &st) && st.in_use == 2 && st.allocs == allocs + 2);
    lib_free(c, a);
    magpool_free(c, b);
    CHECK(magpool_cache_destroy(c) == 0);
}

static void double_free_inline_child(void *arg)
{
    (void)arg;
    struct magpool_config cfg = { .name = "inline-dfree", .size = 64 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    void *p = magpool_alloc(c);
    magpool_free(c, p);
    magpool_free(c, p);
}

static void test_double_free(void)
{
    CHECK(check_death(double_free_inline_child, NULL, "magpool: inline-dfree: double free at"));
}

/* An object freed with no cache: the inline free hands it to the library,
 * which reports the misuse (it would leak the object) and aborts. */
static void null_cache_inline_child(void *arg)
{
    (void)arg;
    struct magpool_config cfg = { .name = "inline-nullc", .size = 32 };
    magpool_free(NULL, magpool_alloc(magpool_cache_create(&cfg)));
}

static void test_null(void)
{
    errno = 0;
    CHECK(magpool_alloc(NULL) == NULL && errno == EINVAL);
    struct magpool_config cfg = { .name = "inline-null", .size = 32 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    magpool_free(c, NULL);
    struct magpool_stats st;
    CHECK(conserved(c, &st) && st.frees == 0);
    magpool_free(NULL, NULL); /* no object: nothing */
    CHECK(check_death(null_cache_inline_child, NULL, "magpool: magpool_free: NULL cache at 0x"));
    CHECK(magpool_cache_destroy(c) == 0);
}

static void test_destroyed(void)
{
    struct magpool_config cfg = { .name = "inline-zombie", .size = 64 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    void *keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = magpool_alloc(c);
    CHECK(magpool_cache_destroy(c) == 3);
    errno = 0;
    CHECK(magpool_alloc(c) == NULL && errno == EINVAL); /* fast id 0: the library says no */
    for (int i = 0; i < 3; i++)
        magpool_free(c, keep[i]); /* the last one finalises the zombie */
    magpool_synchronize(NULL);
}

static magpool_cache_t *g_shared;

static void *fresh_thread(void *arg)
{
    (void)arg;
    int ok = 1;
    void *v[600];
    for (int i = 0; i < 600; i++) /* more than a magazine: misses, then hits */
        ok &= (v[i] = magpool_alloc(g_shared)) != NULL;
    for (int i = 0; i < 600; i++)
        magpool_free(g_shared, v[i]);
    return (void *)(intptr_t)ok;
}

static void test_new_thread(void)
{
    struct magpool_config cfg = { .name = "inline-thread", .size = 64 };
    g_shared = magpool_cache_create(&cfg);
    for (int k = 0; k < 4; k++) {
        pthread_t t;
        void *ok = NULL;
        pthread_create(&t, NULL, fresh_thread, NULL);
        pthread_join(t, &ok);
        CHECK(ok == (void *)1);
    }
    struct magpool_stats st;
    CHECK(conserved(g_shared, &st) && st.in_use == 0 && st.allocs == 2400);
    CHECK(magpool_cache_destroy(g_shared) == 0);
}

/* A thread with no state of its own hits on the library's shared array,
 * whose top other threads' hits mark (magpool.h: top + 1 while inside a
 * hit; overlapping hits can leave any small number).  Whatever number top
 * holds there, every hit must miss into the library: a new thread plants
 * such a number, then makes its first call (alloc, free, bulk alloc, bulk
 * free or deferred free).  With bounds that do not exclude them (an
 * all-zero shared state, as before layout 4), the first alloc pops from
 * address top - 8 and crashes. */
struct marked_arg {
    uintptr_t planted;
    int api;
    void *obj[4];
    int ok;
};

static void *marked_shared_thread(void *p)
{
    struct marked_arg *m = p;
    void *got[4] = { NULL, NULL, NULL, NULL };
#ifdef MAGPOOL_HIT_DEFINED_
    uint32_t off = atomic_load_explicit(&((struct magpool_cache_head_ *)g_shared)->fast_off, memory_order_relaxed);
    struct magpool_hit_ *h = (struct magpool_hit_ *)((char *)magpool_tcs_ + off);
    atomic_store_explicit(&h->top, (void **)m->planted, memory_order_relaxed);
#endif
    switch (m->api) {
    case 0:
        m->ok = (got[0] = magpool_alloc(g_shared)) != NULL;
        magpool_free(g_shared, got[0]);
        break;
    case 1:
        magpool_free(g_shared, m->obj[0]);
        m->ok = 1;
        break;
    case 2:
        m->ok = magpool_alloc_bulk(g_shared, 4, got, 0) == 4;
        magpool_free_bulk(g_shared, 4, got);
        break;
    case 3:
        magpool_free_bulk(g_shared, 4, m->obj);
        m->ok = 1;
        break;
    default:
        magpool_free_deferred(g_shared, m->obj[0]);
        m->ok = 1;
        break;
    }
#ifdef MAGPOOL_HIT_DEFINED_
    atomic_store_explicit(&h->top, NULL, memory_order_relaxed); /* h is the shared state */
#endif
    return NULL;
}

static void test_marked_shared_state(void)
{
    struct magpool_config cfg = { .name = "inline-marked", .size = 64 };
    g_shared = magpool_cache_create(&cfg);
    static const uintptr_t planted[] = { 1, 2, 9, 64, 4097 };
    for (size_t i = 0; i < sizeof planted / sizeof planted[0]; i++) {
        for (int api = 0; api < 5; api++) {
            struct marked_arg m = { .planted = planted[i], .api = api };
            if (api == 1 || api == 4)
                m.obj[0] = magpool_alloc(g_shared);
            if (api == 3)
                CHECK(magpool_alloc_bulk(g_shared, 4, m.obj, 0) == 4);
            pthread_t t;
            pthread_create(&t, NULL, marked_shared_thread, &m);
            pthread_join(t, NULL);
            CHECK(m.ok == 1);
        }
    }
    magpool_synchronize(NULL);
    struct magpool_stats st;
    CHECK(conserved(g_shared, &st) && st.in_use == 0);
    CHECK(magpool_cache_destroy(g_shared) == 0);
}

static void debug_wrong_free_child(void *arg)
{
    (void)arg;
    struct magpool_config cfg = { .name = "inline-verify", .size = 64, .flags = MAGPOOL_VERIFY };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    void *a = magpool_alloc(c), *b = magpool_alloc(c);
    magpool_free(c, a);
    magpool_free(c, b);
    magpool_free(c, a); /* not the top round: only the debug checks see it */
}

static void test_debug_cache(void)
{
    CHECK(check_death(debug_wrong_free_child, NULL, "magpool: inline-verify: double free"));
}

/* A program whose magpool.h lays the hit out differently: its first miss
 * stops it with one line (magpool.h, "One definition"), whether it passes
 * another layout number or predates the number (layout 1's entry points). */
static void miss_other_layout(void *arg)
{
    magpool_cache_t *c = arg;
    magpool_hit_alloc_miss_(c, MAGPOOL_HIT_LAYOUT_ + 1);
}

static void miss_layout_one(void *arg)
{
    magpool_alloc_miss_(arg);
}

static void test_layout_mismatch(void)
{
    struct magpool_config cfg = { .name = "inline-layout", .size = 32 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    CHECK(check_death(miss_other_layout, c, "inline hit layout mismatch"));
    CHECK(check_death(miss_layout_one, c, "use layout 1, libmagpool uses 4"));
    /* the right number is the plain library call */
    void *o = magpool_hit_alloc_miss_(c, MAGPOOL_HIT_LAYOUT_);
    CHECK(o != NULL);
    magpool_hit_free_miss_(c, o, MAGPOOL_HIT_LAYOUT_);
    CHECK(magpool_cache_destroy(c) == 0);
}

int main(void)
{
    printf("inline hits: %s\n", MAGPOOL_INLINE_HITS ? "in use" : "not in use (library calls)");
    test_mix();
    test_double_free();
    test_null();
    test_destroyed();
    test_new_thread();
    test_marked_shared_state();
    test_debug_cache();
    test_layout_mismatch();
    magpool_synchronize(NULL);
    return check_done();
}
