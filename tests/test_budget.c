/*
 * The thread budget (magpool.h, thread_budget): the more threads use a
 * cache, the smaller each one's magazines, so that together they keep about
 * the budget in free objects; when the threads are gone, a lone thread's
 * magazines grow back to the ladder's size.  The reaper is off (it would
 * take idle threads' magazines, which is not what is measured here).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cache_impl.h"
#include "tests/check.h"
#include "tests/conserve.h"

#define NTHREADS 64
#define BUDGET ((size_t)256 << 10)

static magpool_cache_t *c;
static pthread_barrier_t joined, done, leave;

static void burst(int n)
{
    void **o = malloc((size_t)n * sizeof *o);
    for (int i = 0; i < n; i++)
        o[i] = magpool_alloc(c);
    for (int i = 0; i < n; i++)
        magpool_free(c, o[i]);
    free(o);
}

static void *worker(void *arg)
{
    (void)arg;
    magpool_free(c, magpool_alloc(c)); /* a holder: every thread counts from now on */
    pthread_barrier_wait(&joined);
    burst(2000);
    burst(2000); /* magazines of the old size have gone by now */
    pthread_barrier_wait(&done);
    pthread_barrier_wait(&leave);
    return NULL;
}

int main(void)
{
    setenv("MAGPOOL_REAPER", "0", 1);
    struct magpool_config cfg = { .name = "budget", .size = 64, .thread_budget = BUDGET };
    c = magpool_cache_create(&cfg);
    pthread_barrier_init(&joined, NULL, NTHREADS);
    pthread_barrier_init(&done, NULL, NTHREADS + 1);
    pthread_barrier_init(&leave, NULL, NTHREADS + 1);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    pthread_barrier_wait(&done);
    struct magpool_stats st;
    magpool_cache_stats(c, &st);
    /* Two magazines of the step at most BUDGET / (2 * 65 * stride) each
     * (31 rounds for 64-byte objects): 64 * 62 objects, within the budget;
     * without a budget they would hold up to 64 * 1022. */
    CHECK_MSG(st.threads_bytes <= BUDGET, "%d threads hold %llu bytes of free objects, budget %zu", NTHREADS,
              (unsigned long long)st.threads_bytes, BUDGET);
    CHECK_MSG(st.threads_bytes >= BUDGET / 4, "%d threads hold only %llu bytes (budget %zu): too small", NTHREADS,
              (unsigned long long)st.threads_bytes, BUDGET);
    pthread_barrier_wait(&leave);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);

    /* Alone again: this thread's magazines grow back (2 x 511 at 64 B). */
    burst(4000);
    burst(4000);
    struct mp_tcache *tc = &mp_self->th_tc[c->c_id];
    struct mp_mag *loaded = mp_tc_loaded(tc);
    CHECK_MSG(loaded != NULL && loaded->mag_cap == 511 && tc->tc_prev != NULL && tc->tc_prev->mag_cap == 511,
              "a lone thread's magazines hold %u and %u rounds: they did not grow back to 511",
              loaded ? loaded->mag_cap : 0, tc->tc_prev ? tc->tc_prev->mag_cap : 0);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);

    /* No budget (SIZE_MAX): the process budget alone. */
    struct magpool_config big = { .name = "budget-none", .size = 64, .thread_budget = SIZE_MAX };
    c = magpool_cache_create(&big);
    burst(4000);
    magpool_cache_stats(c, &st);
    CHECK(st.in_magazines >= 1000);
    CHECK(magpool_cache_destroy(c) == 0);
    return check_done();
}
