/*
 * Page layer tests: block alignment of every order, buddy merging back to
 * whole regions, the owner map (inside/outside the arena, NULL, stack, heap),
 * spans of more than one region, RSS falling after free, fault injection
 * (ENOMEM, then recovery), NOWAIT, and threads allocating and freeing blocks
 * of random orders.  Every phase ends with mp_page_validate(), which checks
 * the buddy invariants (PB1)-(PB5) of page.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "magpool/magpool.h"
#include "page.h"

#define REGION_BYTES (MP_PAGE_SIZE << MP_MAX_ORDER)
#define REGION_PAGES ((size_t)1 << MP_MAX_ORDER)

static struct mp_page_stats stats(void)
{
    struct mp_page_stats st;
    mp_page_stats(&st);
    return st;
}

static uint64_t rng_state = 0x1234567;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static void test_init(void)
{
    CHECK(mp_page_init() == 0);
    CHECK(mp_page_init() == 0); /* idempotent */
    struct mp_page_stats st = stats();
    CHECK(st.arena_bytes >= ((size_t)1 << 30));
    CHECK(st.arena_bytes % REGION_BYTES == 0);
    CHECK(mp_page_validate() == 0);
    errno = 0;
    CHECK(mp_pages_alloc(MP_MAX_ORDER + 1, 0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mp_span_alloc(0, 0) == NULL && errno == EINVAL);
}

static void test_alignment(void)
{
    for (unsigned k = 0; k <= MP_MAX_ORDER; k++) {
        void *p[5];
        size_t len = MP_PAGE_SIZE << k;
        for (int j = 0; j < 5; j++) {
            p[j] = mp_pages_alloc(k, 0);
            CHECK_MSG(p[j] != NULL, "order %u", k);
            if (!p[j])
                continue;
            CHECK_MSG((uintptr_t)p[j] % len == 0, "order %u at %p", k, p[j]);
            CHECK(mp_page_owner(p[j]) == NULL);
            CHECK(mp_span_pages(p[j]) == 0); /* a block is not a span */
            memset(p[j], 0xA5, len);          /* the whole block is usable */
            for (int i = 0; i < j; i++)       /* no overlap with earlier blocks */
                CHECK(p[i] == NULL || (char *)p[i] + len <= (char *)p[j] ||
                      (char *)p[j] + len <= (char *)p[i]);
        }
        for (int j = 0; j < 5; j++)
            mp_pages_free(p[j], k);
        CHECK(mp_page_validate() == 0);
    }
    CHECK(stats().pages_in_use == 0);
}

/* Split whole regions into single pages, free them in random order: they
 * must merge back so that every committed region is one free order-10
 * block again, which is then allocatable with no new mapping. */
static void test_merge(void)
{
    size_t n = 3 * REGION_PAGES;
    void **p = calloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i] = mp_pages_alloc(0, 0);
        CHECK(p[i] != NULL);
    }
    CHECK(mp_page_validate() == 0);
    for (size_t i = n - 1; i > 0; i--) { /* shuffle */
        size_t j = rnd() % (i + 1);
        void *t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        mp_pages_free(p[i], 0);
    CHECK(mp_page_validate() == 0);
    struct mp_page_stats st = stats();
    CHECK(st.pages_in_use == 0);
    CHECK(st.pages_free == st.regions_committed * REGION_PAGES);
    CHECK(st.regions_committed >= 3);
    /* Every region is an order-10 block again. */
    size_t nreg = st.regions_committed;
    for (size_t i = 0; i < nreg; i++) {
        p[i] = mp_pages_alloc(MP_MAX_ORDER, MAGPOOL_NOWAIT);
        CHECK_MSG(p[i] != NULL, "region %zu of %zu not merged", i, nreg);
    }
    CHECK(stats().mmap_calls == st.mmap_calls);
    CHECK(stats().pages_free == 0);
    for (size_t i = 0; i < nreg; i++)
        mp_pages_free(p[i], MP_MAX_ORDER);
    CHECK(mp_page_validate() == 0);
    free(p);
}

/* mp_page_trim gives back wholly free regions and only those: a region with
 * one page in use stays (its page keeps its owner); the others go, the
 * buddy invariants hold, and allocation commits regions again. */
static void test_trim(void)
{
    void *keep = mp_pages_alloc(0, 0);
    CHECK(keep != NULL);
    static int owner_tag;
    mp_page_set_owner(keep, 1, &owner_tag);
    void *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = mp_pages_alloc(MP_MAX_ORDER, 0);
        CHECK(r[i] != NULL);
        memset(r[i], 1, MP_PAGE_SIZE);
        mp_page_set_owner(r[i], REGION_PAGES, &owner_tag);
    }
    for (int i = 0; i < 3; i++)
        mp_pages_free(r[i], MP_MAX_ORDER);
    struct mp_page_stats before = stats();
    size_t n = mp_page_trim();
    struct mp_page_stats after = stats();
    CHECK_MSG(n >= 3 && n == before.regions_committed - 1, "trimmed %zu of %llu regions", n,
              (unsigned long long)before.regions_committed);
    CHECK(after.regions_committed == 1); /* the one holding `keep` */
    CHECK(after.pages_in_use == 1);
    CHECK(after.pages_free == REGION_PAGES - 1);
    CHECK(mp_page_validate() == 0);
    CHECK(mp_page_owner(keep) == &owner_tag);
    for (int i = 0; i < 3; i++)
        CHECK(mp_page_owner(r[i]) == NULL && mp_span_pages(r[i]) == 0);
    CHECK(mp_page_trim() == 0); /* nothing more to give */
    /* allocation commits fresh regions; their records start clean */
    for (int i = 0; i < 3; i++) {
        r[i] = mp_pages_alloc(MP_MAX_ORDER, 0);
        CHECK(r[i] != NULL);
    }
    CHECK(stats().regions_committed == 4);
    CHECK(mp_page_validate() == 0);
    for (int i = 0; i < 3; i++)
        mp_pages_free(r[i], MP_MAX_ORDER);
    mp_pages_free(keep, 0);
    CHECK(mp_page_trim() == 4);
    CHECK(stats().regions_committed == 0 && stats().pages_free == 0);
    CHECK(mp_page_validate() == 0);
}

static int a_static;

static void test_owner(void)
{
    int on_stack;
    void *heap = malloc(64);
    void *p = mp_pages_alloc(3, 0);
    CHECK(p != NULL);
    size_t arena = stats().arena_bytes;
    mp_page_set_owner(p, 8, &on_stack);
    for (size_t off = 0; off < 8 * MP_PAGE_SIZE; off += 1021)
        CHECK(mp_page_owner((char *)p + off) == &on_stack);
    CHECK(mp_page_owner((char *)p + 8 * MP_PAGE_SIZE - 1) == &on_stack);
    CHECK(mp_page_owner((char *)p + 8 * MP_PAGE_SIZE) != &on_stack);
    CHECK(mp_page_owner(NULL) == NULL);
    CHECK(mp_page_owner(&on_stack) == NULL);
    CHECK(mp_page_owner(heap) == NULL);
    CHECK(mp_page_owner(&a_static) == NULL);
    CHECK(mp_page_owner((void *)(uintptr_t)-1) == NULL);
    CHECK(mp_page_owner((char *)p + arena) == NULL);  /* past the arena's end */
    CHECK(mp_page_owner((char *)p - arena) == NULL);  /* below its start */
    mp_page_set_owner(p, 1, NULL);                    /* one page only */
    CHECK(mp_page_owner(p) == NULL);
    CHECK(mp_page_owner((char *)p + MP_PAGE_SIZE) == &on_stack);
    mp_pages_free(p, 3);
    CHECK(mp_page_owner((char *)p + MP_PAGE_SIZE) == NULL); /* cleared on free */
    void *q = mp_pages_alloc(3, 0);
    CHECK(q != NULL && mp_page_owner((char *)q + 2 * MP_PAGE_SIZE) == NULL);
    mp_pages_free(q, 3);
    free(heap);
    CHECK(mp_page_validate() == 0);
}

static void test_spans(void)
{
    struct mp_page_stats before = stats();
    /* Small spans come from the buddy system. */
    void *s3 = mp_span_alloc(3, 0);
    CHECK(s3 != NULL && (uintptr_t)s3 % MP_PAGE_SIZE == 0);
    CHECK(mp_span_pages(s3) == 3);
    CHECK(mp_span_pages((char *)s3 + MP_PAGE_SIZE) == 0);
    CHECK(mp_span_pages(NULL) == 0);
    int local;
    CHECK(mp_span_pages(&local) == 0);
    mp_span_free(s3);
    CHECK(mp_span_pages(s3) == 0);
    /* Spans of more than one region. */
    size_t sizes[] = { REGION_PAGES, REGION_PAGES + 1, 2500, 4 * REGION_PAGES };
    void *sp[4];
    for (int i = 0; i < 4; i++) {
        sp[i] = mp_span_alloc(sizes[i], 0);
        CHECK_MSG(sp[i] != NULL, "span of %zu pages", sizes[i]);
        if (!sp[i])
            continue;
        CHECK(mp_span_pages(sp[i]) == sizes[i]);
        size_t len = sizes[i] * MP_PAGE_SIZE;
        memset(sp[i], 0x5A, len);
        mp_page_set_owner(sp[i], sizes[i], &sp[i]);
        CHECK(mp_page_owner((char *)sp[i] + len - 1) == &sp[i]);
        for (int j = 0; j < i; j++)
            CHECK(sp[j] == NULL || (char *)sp[j] + sizes[j] * MP_PAGE_SIZE <= (char *)sp[i] ||
                  (char *)sp[i] + len <= (char *)sp[j]);
    }
    CHECK(mp_page_validate() == 0);
    CHECK(((char *)sp[3])[4 * REGION_BYTES - 1] == 0x5A);
    for (int i = 0; i < 4; i++) {
        mp_span_free(sp[i]);
        if (sp[i]) {
            CHECK(mp_span_pages(sp[i]) == 0);
            CHECK(mp_page_owner(sp[i]) == NULL);
        }
    }
    struct mp_page_stats after = stats();
    /* Multi-region spans go back: only the buddy region for s3 may remain. */
    CHECK(after.regions_committed <= before.regions_committed + 1);
    CHECK(after.pages_in_use == before.pages_in_use);
    CHECK(mp_page_validate() == 0);
}

static void test_rss(void)
{
    enum { N = 8 };
    void *p[N];
    size_t base = check_rss_bytes();
    for (int i = 0; i < N; i++) {
        p[i] = mp_pages_alloc(MP_MAX_ORDER, 0);
        CHECK(p[i] != NULL);
        if (p[i])
            memset(p[i], 1, REGION_BYTES);
    }
    size_t full = check_rss_bytes();
    CHECK_MSG(full >= base + (N - 1) * REGION_BYTES, "rss %zu -> %zu", base, full);
    for (int i = 0; i < N; i++)
        mp_pages_free(p[i], MP_MAX_ORDER);
    size_t freed = check_rss_bytes();
    /* Relative to the peak: sanitizer shadow memory may stay behind. */
    CHECK_MSG(freed + (N - 1) * REGION_BYTES <= full, "rss %zu -> %zu -> %zu", base, full, freed);
    /* The same for a multi-region span. */
    void *s = mp_span_alloc(3 * REGION_PAGES, 0);
    CHECK(s != NULL);
    if (s) {
        memset(s, 1, 3 * REGION_BYTES);
        size_t peak = check_rss_bytes();
        CHECK(peak >= freed + 2 * REGION_BYTES);
        mp_span_free(s);
        CHECK(check_rss_bytes() + 2 * REGION_BYTES <= peak);
    }
    CHECK(mp_page_validate() == 0);
}

static void test_nowait(void)
{
    /* Drain every free order-10 block with NOWAIT: it must then fail with
     * EAGAIN, having made no system call. */
    void *held[256];
    size_t n = 0;
    uint64_t mmaps = stats().mmap_calls;
    while (n < 256 && (held[n] = mp_pages_alloc(MP_MAX_ORDER, MAGPOOL_NOWAIT)) != NULL)
        n++;
    CHECK(n < 256);
    CHECK(errno == EAGAIN);
    CHECK(stats().mmap_calls == mmaps);
    errno = 0;
    CHECK(mp_span_alloc(2 * REGION_PAGES, MAGPOOL_NOWAIT) == NULL && errno == EAGAIN);
    /* A blocking alloc commits a region; NOWAIT may then split it. */
    void *r = mp_pages_alloc(MP_MAX_ORDER - 1, 0);
    CHECK(r != NULL);
    void *q = mp_pages_alloc(MP_MAX_ORDER - 1, MAGPOOL_NOWAIT);
    CHECK(q != NULL);
    mp_pages_free(q, MP_MAX_ORDER - 1);
    mp_pages_free(r, MP_MAX_ORDER - 1);
    while (n > 0)
        mp_pages_free(held[--n], MP_MAX_ORDER);
    CHECK(mp_page_validate() == 0);
}

static void test_faults(void)
{
    void *held[256];
    size_t n = 0;
    struct mp_page_stats st0 = stats();
    mp_page_fault_inject(1000000); /* every mmap/madvise fails */
    /* Free blocks still come out (no system call needed) ... */
    while (n < 256 && (held[n] = mp_pages_alloc(MP_MAX_ORDER, 0)) != NULL)
        n++;
    /* ... but a new region cannot be committed. */
    CHECK(n < 256);
    CHECK(errno == ENOMEM);
    errno = 0;
    CHECK(mp_span_alloc(2 * REGION_PAGES, 0) == NULL && errno == ENOMEM);
    CHECK(mp_page_validate() == 0);
    struct mp_page_stats st1 = stats();
    CHECK(st1.faults_injected >= st0.faults_injected + 2);
    CHECK(st1.regions_committed == st0.regions_committed);
    /* A free whose madvise fails still returns the block. */
    if (n > 0) {
        mp_pages_free(held[--n], MP_MAX_ORDER);
        CHECK(stats().madvise_failed > st1.madvise_failed);
        CHECK(stats().pages_free == REGION_PAGES);
        CHECK(mp_page_validate() == 0);
    }
    /* Recovery once failures stop. */
    mp_page_fault_inject(0);
    void *a = mp_pages_alloc(MP_MAX_ORDER, 0), *b = mp_pages_alloc(MP_MAX_ORDER, 0);
    CHECK(a != NULL && b != NULL);
    void *s = mp_span_alloc(2 * REGION_PAGES, 0);
    CHECK(s != NULL);
    mp_span_free(s);
    mp_pages_free(a, MP_MAX_ORDER);
    mp_pages_free(b, MP_MAX_ORDER);
    while (n > 0)
        mp_pages_free(held[--n], MP_MAX_ORDER);
    CHECK(mp_page_validate() == 0);

    /* A partial failure rate: every failure is ENOMEM, state stays valid. */
    mp_page_fault_inject(300000);
    void *live[64] = { 0 };
    unsigned ord[64];
    int fails = 0, other = 0;
    for (int it = 0; it < 2000; it++) {
        int slot = (int)(rnd() % 64);
        if (live[slot]) {
            if (ord[slot] > MP_MAX_ORDER)
                mp_span_free(live[slot]);
            else
                mp_pages_free(live[slot], ord[slot]);
            live[slot] = NULL;
            continue;
        }
        ord[slot] = rnd() % 13;
        errno = 0;
        live[slot] = ord[slot] > MP_MAX_ORDER ? mp_span_alloc(REGION_PAGES * 2 + 1, 0)
                                              : mp_pages_alloc(ord[slot], 0);
        if (live[slot] == NULL) {
            fails++;
            other += errno != ENOMEM;
        }
    }
    mp_page_fault_inject(0);
    CHECK(fails > 0);
    CHECK(other == 0);
    CHECK(mp_page_validate() == 0);
    for (int i = 0; i < 64; i++)
        if (live[i]) {
            if (ord[i] > MP_MAX_ORDER)
                mp_span_free(live[i]);
            else
                mp_pages_free(live[i], ord[i]);
        }
    CHECK(mp_page_validate() == 0);
    CHECK(stats().pages_in_use == 0);
}

/* Threads: random orders, stamp each block at both ends with (thread, seq),
 * set the owner word to the thread's token, verify both before freeing. */
enum { THREADS = 4, LIVE = 32 };
static int iters = 3000;
static _Atomic int mt_errors;

static void *mt_worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t r = 0x9E3779B97F4A7C15u * (id + 1);
    struct { uint64_t *p; unsigned k; uint64_t stamp; } live[LIVE] = { { 0 } };
    int errors = 0;
    for (int it = 0; it < iters; it++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        int s = (int)(r % LIVE);
        if (live[s].p) {
            size_t words = (MP_PAGE_SIZE << live[s].k) / 8;
            errors += live[s].p[0] != live[s].stamp || live[s].p[words - 1] != live[s].stamp;
            errors += mp_page_owner(live[s].p + words - 1) != &live[s];
            mp_pages_free(live[s].p, live[s].k);
            live[s].p = NULL;
            continue;
        }
        unsigned k = (unsigned)((r >> 20) % 100 == 0 ? MP_MAX_ORDER : (r >> 24) % 6);
        uint64_t *p = mp_pages_alloc(k, 0);
        if (p == NULL) {
            errors++;
            continue;
        }
        errors += ((uintptr_t)p % (MP_PAGE_SIZE << k)) != 0;
        errors += mp_page_owner(p) != NULL;
        size_t words = (MP_PAGE_SIZE << k) / 8;
        live[s].p = p;
        live[s].k = k;
        live[s].stamp = id << 32 | (uint64_t)it;
        p[0] = p[words - 1] = live[s].stamp;
        mp_page_set_owner(p, (size_t)1 << k, &live[s]);
    }
    for (int s = 0; s < LIVE; s++)
        if (live[s].p)
            mp_pages_free(live[s].p, live[s].k);
    atomic_fetch_add(&mt_errors, errors);
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    uint64_t in_use = stats().pages_in_use;
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, mt_worker, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&mt_errors) == 0);
    CHECK(stats().pages_in_use == in_use);
    CHECK(mp_page_validate() == 0);
}

/* MAGPOOL_FAULT_PPM is read at init: run this program again with it set to
 * 1000000 and the argument "env-child"; the child must see every commit fail
 * with ENOMEM and the injection counted. */
static int env_child(void)
{
    errno = 0;
    void *s = mp_span_alloc(2 * REGION_PAGES, 0);
    int ok = s == NULL && errno == ENOMEM && stats().faults_injected == 1;
    mp_page_fault_inject(0);
    s = mp_span_alloc(2 * REGION_PAGES, 0);
    ok &= s != NULL;
    return ok ? 0 : 1;
}

static void test_env(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MAGPOOL_FAULT_PPM", "1000000", 1);
        execl("/proc/self/exe", "test_page", "env-child", (char *)NULL);
        _exit(2);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

/* A MAGPOOL_FAULT_PPM that is not a decimal number in 0..1000000 is one
 * line at init and ignored ("-1" used to mean every call fails): the child
 * commits regions with no fault injected. */
static int env_bad_child(void)
{
    void *s = mp_span_alloc(2 * REGION_PAGES, 0);
    void *b = mp_pages_alloc(3, 0);
    int ok = s != NULL && b != NULL && stats().faults_injected == 0;
    printf("faults %llu\n", (unsigned long long)stats().faults_injected);
    return ok ? 0 : 1;
}

static void exec_env_bad(void *arg)
{
    setenv("MAGPOOL_FAULT_PPM", arg, 1);
    execl("/proc/self/exe", "test_page", "env-bad-child", (char *)NULL);
    _exit(2);
}

static void test_env_bad(void)
{
    const char *bad[] = {"-1", "abc", "1000001", "12x", "+5", "99999999999999999999"};
    char out[4096], want[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = check_run_child(exec_env_bad, (void *)bad[i], out, sizeof out);
        snprintf(want, sizeof want, "magpool: MAGPOOL_FAULT_PPM: invalid value '%s' ignored", bad[i]);
        const char *l = strstr(out, want);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && l != NULL && strstr(l + 1, "magpool:") == NULL,
                  "MAGPOOL_FAULT_PPM=%s: status %#x [%s]", bad[i], st, out);
    }
    int st = check_run_child(exec_env_bad, (void *)"0", out, sizeof out); /* valid: no line */
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "magpool:") == NULL, "=0: [%s]", out);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "env-child") == 0)
        return env_child();
    if (argc > 1 && strcmp(argv[1], "env-bad-child") == 0)
        return env_bad_child();
    if (getenv("MAGPOOL_TEST_SCALE"))
        iters = atoi(getenv("MAGPOOL_TEST_SCALE"));
    test_init();
    test_alignment();
    test_merge();
    test_owner();
    test_spans();
    test_rss();
    test_trim();
    test_nowait();
    test_faults();
    test_threads();
    test_env();
    test_env_bad();
    return check_done();
}
