/*
 * magpool_reap works outside any read-side section (issue: it used to shrink
 * from inside magpool_cache_foreach's section, where the default domain's
 * epoch cannot advance): after it returns, with no reader anywhere, the
 * magazines it tore down have gone through their grace period (nothing is
 * pending on the default domain) and the depot is empty; a cache destroyed by
 * another thread while reap runs is never touched after its end.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache_impl.h"
#include "tests/check.h"
#include "tests/conserve.h"

static magpool_cache_t *mk(const char *name, size_t size)
{
    struct magpool_config cfg = { .name = name, .size = size };
    return magpool_cache_create(&cfg);
}

static void burst(magpool_cache_t *c, int n)
{
    void **o = malloc((size_t)n * sizeof *o);
    for (int i = 0; i < n; i++)
        o[i] = magpool_alloc(c);
    for (int i = 0; i < n; i++)
        magpool_free(c, o[i]);
    free(o);
}

static void test_reap_ends_grace_periods(void)
{
    magpool_cache_t *a = mk("reap-a", 64), *b = mk("reap-b", 256);
    burst(a, 20000);
    burst(b, 5000);
    magpool_thread_flush(); /* everything into the depots */
    magpool_reap();
    CHECK_MSG(mp_domain_pending(mp_domain_default()) == 0, "%llu retirements still pending after reap",
              (unsigned long long)mp_domain_pending(mp_domain_default()));
    struct magpool_stats st;
    CHECK(magpool_cache_stats(a, &st) == 0 && st.in_depot == 0 && st.in_magazines == 0);
    CHECK(conserved(a, NULL) && conserved(b, NULL));
    CHECK(magpool_cache_destroy(a) == 0 && magpool_cache_destroy(b) == 0);
}

static _Atomic int stop;
static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        magpool_cache_t *c = mk("reap-churn", 96);
        burst(c, 600);
        magpool_cache_destroy(c);
    }
    return NULL;
}

/* Reaps racing creates and destroys (pins keep every cache alive while it is
 * shrunk). */
static void test_reap_races_destroy(void)
{
    pthread_t t;
    pthread_create(&t, NULL, churn, NULL);
    for (int i = 0; i < 200; i++)
        magpool_reap();
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    /* Every churned cache was finalised: no pin was left behind (a zombie
     * still registered would keep its id). */
    int left = 0;
    for (unsigned id = 1; id < MAGPOOL_MAX_CACHES; id++) {
        struct magpool_cache *c = atomic_load(&mp_caches[id]);
        left += c != NULL && strcmp(magpool_cache_name(c), "reap-churn") == 0;
    }
    CHECK_MSG(left == 0, "%d destroyed caches still registered", left);
}

int main(void)
{
    test_reap_ends_grace_periods();
    test_reap_races_destroy();
    return check_done();
}
