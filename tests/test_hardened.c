/*
 * magpool_free's default check (include/magpool/magpool.h): a pointer that is
 * not an object of the cache is reported before the magazine holding it
 * leaves the thread (flush, depot exchange, thread exit, a deferred batch's
 * seal), and dropped in continue mode, so no other thread is ever handed it;
 * MAGPOOL_UNCHECKED turns the check off.  Under ASan (every cache checked,
 * src/base/sanitize.h) the same pointers are caught at the free itself.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_impl.h" /* white-box: mp_mag_check_rounds on a magazine laid out by hand */
#include "magpool/magpool.h"
#include "sanitize.h"
#include "tests/check.h"
#include "tests/conserve.h"

static magpool_cache_t *mk(const char *name, size_t size, unsigned flags)
{
    struct magpool_config cfg = { .name = name, .size = size, .flags = flags };
    return magpool_cache_create(&cfg);
}

static void free_malloced(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-malloc", 64, 0);
    void *p = malloc(64);
    magpool_free(c, p);
    magpool_thread_flush(); /* the magazine leaves the thread */
}

static void free_stack(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-stack", 32, 0);
    char buf[64];
    magpool_free(c, buf);
    magpool_thread_flush();
}

static void free_interior(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-interior", 64, 0);
    char *p = magpool_alloc(c);
    magpool_free(c, p + 8);
    magpool_thread_flush();
}

static void free_other_cache(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-mine", 64, 0), *o = mk("hard-other", 64, 0);
    void *p = magpool_alloc(o);
    magpool_free(c, p);
    magpool_thread_flush();
}

/* Frees fill magazines that go to the depot: the check runs at the
 * exchange, with no flush. */
static void free_at_exchange(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-exchange", 64, 0);
    enum { N = 4000 };
    void **objs = malloc(N * sizeof *objs);
    for (int i = 0; i < N; i++)
        objs[i] = magpool_alloc(c);
    char *bad = malloc(64);
    for (int i = 0; i < N; i++) {
        magpool_free(c, objs[i]);
        if (i == 10)
            magpool_free(c, bad);
    }
}

static void free_deferred_foreign(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-deferred", 64, 0);
    magpool_free_deferred(c, malloc(64));
    magpool_synchronize(NULL); /* seals the batch */
}

static void *exit_thread(void *arg)
{
    magpool_free(arg, malloc(64)); /* the thread's exit flushes it */
    return NULL;
}

static void free_then_exit(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-exit", 64, 0);
    pthread_t t;
    pthread_create(&t, NULL, exit_thread, c);
    pthread_join(t, NULL);
}

/* Continue mode: reported, dropped; the pool never hands the pointer out and
 * its counts stay exact. */
static void test_continue(void)
{
    magpool_cache_t *c = mk("hard-continue", 64, MAGPOOL_DEBUG_CONTINUE);
    char *bad = malloc(64);
    enum { N = 3000 };
    void **objs = malloc(N * sizeof *objs);
    for (int i = 0; i < N; i++)
        objs[i] = magpool_alloc(c);
    for (int i = 0; i < N; i++) {
        magpool_free(c, objs[i]);
        if (i % 1000 == 0)
            magpool_free(c, bad);
    }
    magpool_thread_flush();
    int handed = 0;
    for (int i = 0; i < N; i++) {
        objs[i] = magpool_alloc(c);
        handed += objs[i] == bad;
    }
    CHECK_MSG(handed == 0, "the dropped pointer was handed out %d times", handed);
    for (int i = 0; i < N; i++)
        magpool_free(c, objs[i]);
    magpool_thread_flush();
    CHECK(conserved(c, NULL));
    struct magpool_stats st;
    CHECK(magpool_cache_stats(c, &st) == 0 && st.in_use == 0);
    CHECK(magpool_cache_destroy(c) == 0);
    free(objs);
    free(bad);
}

/* The check takes a magazine 64 rounds at a time and passes a chunk whose
 * rounds all lie in the slab the previous chunk ended in with one group
 * step (magazine.c, mp_mag_check_rounds).  Bad pointers placed in such
 * runs, at chunk edges, inside a group and at the magazine's end, and of
 * each kind the group step could mistake for a slot of the kept slab (an
 * interior pointer into it, another cache's object, a foreign block): every
 * one must be reported once and dropped, and no good round lost.  In a child
 * (continue mode; the parent counts the report lines). */
enum { CHUNKED_N = 1500 };
static const int chunked_at[] = { 0,   1,   2,   3,   60,  61,  61,  62,  63,  64,   64,   64,  65,
                                  126, 127, 128, 129, 130, 300, 300, 301, 302, 302,  302,  303, 509,
                                  510, 511, 512, 513, 800, 801, 802, 803, 804, 1000, 1000, 1001, 1499 };
/* (A position twice or three times: bad rounds next to each other, so they
 * land at every offset inside a group of four.) */
#define CHUNKED_BAD ((int)(sizeof chunked_at / sizeof chunked_at[0]))

static void chunked(void *a)
{
    (void)a;
    /* Magazines of 255 rounds: four chunks each, three after a kept slab. */
    struct magpool_config cfg = {
        .name = "hard-chunked", .size = 64, .flags = MAGPOOL_DEBUG_CONTINUE, .mag_min = 255, .mag_max = 255
    };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    magpool_cache_t *o = mk("hard-chunked-other", 64, 0);
    void **objs = malloc(CHUNKED_N * sizeof *objs), *bad[CHUNKED_BAD];
    for (int i = 0; i < CHUNKED_N; i++)
        objs[i] = magpool_alloc(c);
    for (int b = 0; b < CHUNKED_BAD; b++) /* interior (of an object freed too), other cache, foreign */
        bad[b] = b % 3 == 0 ? (char *)objs[chunked_at[b]] + 8 : b % 3 == 1 ? magpool_alloc(o) : malloc(64);
    for (int i = CHUNKED_N - 1, b = CHUNKED_BAD - 1; i >= 0; i--) { /* LIFO: runs through few slabs */
        magpool_free(c, objs[i]);
        for (; b >= 0 && chunked_at[b] == i; b--)
            magpool_free(c, bad[b]);
    }
    magpool_thread_flush();
    int handed = 0, missing = 0;
    for (int i = 0; i < CHUNKED_N; i++) {
        void *p = magpool_alloc(c);
        for (int b = 0; b < CHUNKED_BAD; b++)
            handed += p == bad[b];
        objs[i] = p;
    }
    struct magpool_stats st;
    missing = magpool_cache_stats(c, &st) == 0 && st.in_use == CHUNKED_N ? 0 : 1;
    for (int i = 0; i < CHUNKED_N; i++)
        magpool_free(c, objs[i]);
    magpool_thread_flush();
    printf("handed %d missing %d conserved %d destroyed %ld\n", handed, missing, conserved(c, NULL) ? 1 : 0,
           magpool_cache_destroy(c));
    fflush(stdout);
}

static int count_lines(const char *out, const char *needle)
{
    int n = 0;
    for (const char *p = out; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_chunked(void)
{
    static char out[65536];
    int status = check_run_child(chunked, NULL, out, sizeof out);
    int mis = count_lines(out, "hard-chunked: misaligned pointer"), wrong = count_lines(out, "hard-chunked: wrong cache"),
        foreign = count_lines(out, "hard-chunked: foreign pointer");
    int want_mis = (CHUNKED_BAD + 2) / 3, want_wrong = (CHUNKED_BAD + 1) / 3, want_foreign = CHUNKED_BAD / 3;
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0 && mis == want_mis && wrong == want_wrong &&
                  foreign == want_foreign && strstr(out, "handed 0 missing 0 conserved 1 destroyed 0"),
              "misaligned %d/%d wrong %d/%d foreign %d/%d [%.600s]", mis, want_mis, wrong, want_wrong, foreign,
              want_foreign, out);
}

/* The same check on a magazine laid out by hand, so bad rounds sit at exact
 * places: the first round of a chunk checked by the group step (64, where
 * a skipped round would go unseen), other offsets of groups (70, 135), the
 * second group of a chunk (196), the tail shorter than a group (250) and the
 * last round (254), besides one in the first chunk (5, round by round).
 * Each kind once or more: an interior pointer into the kept slab (the slot
 * test must reject it), another cache's object, a foreign block.  The
 * check must drop exactly the bad rounds and keep every good one. */
static void test_check_layout(void)
{
    enum { CAP = 255 };
    static const uint32_t at[] = { 5, 64, 70, 135, 196, 250, 254 };
    enum { NBAD = sizeof at / sizeof at[0] };
    magpool_cache_t *c = mk("hard-layout", 64, MAGPOOL_DEBUG_CONTINUE), *o = mk("hard-layout-other", 64, 0);
    struct mp_mag *m = mp_mag_alloc(CAP);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    void *good[CAP], *bad[NBAD], *blocks[NBAD];
    for (uint32_t i = 0; i < CAP; i++)
        m->mag_objs[i] = good[i] = magpool_alloc(c);
    m->mag_rounds = CAP;
    CHECK(mp_mag_check_rounds(c, m) == CAP); /* all good: nothing dropped */
    for (uint32_t b = 0; b < NBAD; b++) {
        blocks[b] = b % 3 == 2 ? malloc(64) : b % 3 == 1 ? magpool_alloc(o) : NULL;
        bad[b] = b % 3 == 0 ? (char *)good[at[b] - 1] + 8 : blocks[b]; /* (at[b] >= 1) */
        m->mag_objs[at[b]] = bad[b];
    }
    uint32_t left = mp_mag_check_rounds(c, m);
    int kept_bad = 0, kept_good = 0;
    for (uint32_t i = 0; i < left; i++) {
        for (uint32_t b = 0; b < NBAD; b++)
            kept_bad += m->mag_objs[i] == bad[b];
        for (uint32_t g = 0; g < CAP; g++)
            kept_good += m->mag_objs[i] == good[g];
    }
    CHECK_MSG(left == CAP - NBAD && kept_bad == 0 && kept_good == CAP - NBAD,
              "%u rounds left of %u, %d bad kept, %d good kept", left, CAP - NBAD, kept_bad, kept_good);
    for (uint32_t i = 0; i < CAP; i++)
        magpool_free(c, good[i]); /* the magazine held copies only */
    m->mag_rounds = 0;
    mp_mag_retire(m);
    for (uint32_t b = 0; b < NBAD; b++)
        if (b % 3 == 1)
            magpool_free(o, blocks[b]);
        else
            free(blocks[b]);
    magpool_thread_flush();
    CHECK(magpool_cache_destroy(c) == 0 && magpool_cache_destroy(o) == 0);
}

/* MAGPOOL_UNCHECKED: nothing is looked up (the caller's promise); in a child,
 * since the pool then holds a pointer that is not its own. */
static __attribute__((unused)) void unchecked(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("hard-unchecked", 64, MAGPOOL_UNCHECKED);
    magpool_free(c, malloc(64));
    magpool_thread_flush();
    puts("no report");
    fflush(stdout);
}

int main(void)
{
    CHECK(check_death(free_malloced, NULL, "magpool: hard-malloc: foreign pointer at 0x"));
    CHECK(check_death(free_stack, NULL, "magpool: hard-stack: foreign pointer at 0x"));
    CHECK(check_death(free_interior, NULL, "magpool: hard-interior: misaligned pointer at 0x"));
    CHECK(check_death(free_other_cache, NULL, "magpool: hard-mine: wrong cache at 0x"));
    CHECK(check_death(free_at_exchange, NULL, "magpool: hard-exchange: foreign pointer at 0x"));
    CHECK(check_death(free_deferred_foreign, NULL, "magpool: hard-deferred: foreign pointer at 0x"));
    CHECK(check_death(free_then_exit, NULL, "magpool: hard-exit: foreign pointer at 0x"));
    test_continue();
    test_check_layout();
    test_chunked();
#ifndef MP_ASAN /* ASan: the foreign block's free() after the pool saw it is fine, but keep the child simple */
    char out[4096];
    int status = check_run_child(unchecked, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(out, "no report") &&
                  !strstr(out, "magpool:"),
              "[%s]", out);
#endif
    return check_done();
}
