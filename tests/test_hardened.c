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
#ifndef MP_ASAN /* ASan: the foreign block's free() after the pool saw it is fine, but keep the child simple */
    char out[4096];
    int status = check_run_child(unchecked, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(out, "no report") &&
                  !strstr(out, "magpool:"),
              "[%s]", out);
#endif
    return check_done();
}
