/*
 * Fault injection reaches the library's own allocations (metadata and
 * magazines, memory/page.h mp_fault_now), as illumos kmem's cache_mtbf
 * does, and every path that meets such a failure fails cleanly:
 *  - a thread whose state cannot be made, or that cannot get a magazine,
 *    allocates and frees through the slab layer, counted;
 *  - a deferred free with no memory for even a batch of one waits for the
 *    grace period and frees at once (nothing leaked, nothing reused early);
 *    inside a read-side section it cannot wait: one diagnostic line, the
 *    object is left out (continue mode);
 *  - conservation holds and everything comes back once faults stop.
 */
#include <pthread.h>
#include <string.h>

#include "magpool/magpool.h"
#include "page.h"
#include "tests/check.h"
#include "tests/conserve.h"

static magpool_cache_t *mk(const char *name, unsigned flags)
{
    struct magpool_config cfg = { .name = name, .size = 64, .flags = flags };
    return magpool_cache_create(&cfg);
}

static void *fresh_thread(void *arg)
{
    /* A new thread: its state (metadata) cannot be made. */
    void *o[100];
    int got = 0;
    for (int i = 0; i < 100; i++)
        got += (o[i] = magpool_alloc(arg)) != NULL;
    for (int i = 0; i < 100; i++)
        magpool_free(arg, o[i]);
    return (void *)(long)got;
}

/* A cache whose slab keeps free objects (one object held makes it partial:
 * shrink cannot take it back), so allocations can be served without any new
 * memory. */
static magpool_cache_t *mk_warm(const char *name, void **held)
{
    magpool_cache_t *c = mk(name, 0);
    void *o[200];
    for (int i = 0; i < 200; i++)
        o[i] = magpool_alloc(c);
    *held = o[0];
    for (int i = 1; i < 200; i++)
        magpool_free(c, o[i]);
    magpool_cache_shrink(c); /* every free object back in the slab */
    return c;
}

static void test_no_state_no_magazine(void)
{
    void *hc, *hd;
    magpool_cache_t *c = mk_warm("fi-state", &hc), *d = mk_warm("fi-nomag", &hd);
    struct mp_page_stats ps0, ps1;
    mp_page_stats(&ps0);
    magpool_fault_inject(1000000);
    pthread_t t;
    void *got;
    pthread_create(&t, NULL, fresh_thread, c); /* no state: the slab layer serves it */
    pthread_join(t, &got);
    void *o[50];
    int ok = 0;
    for (int i = 0; i < 50; i++) /* this thread has state, but no magazine for d */
        ok += (o[i] = magpool_alloc(d)) != NULL;
    for (int i = 0; i < 50; i++)
        magpool_free(d, o[i]);
    mp_page_stats(&ps1);
    magpool_fault_inject(0);
    CHECK_MSG(ps1.faults_injected > ps0.faults_injected, "no fault was injected");
    CHECK_MSG((long)got == 100, "a thread with no state allocated %ld of 100", (long)got);
    CHECK_MSG(ok == 50, "a thread with no magazine allocated %d of 50", ok);
    magpool_free(c, hc);
    magpool_free(d, hd);
    CHECK(conserved(c, NULL) && conserved(d, NULL));
    struct magpool_stats st;
    CHECK(magpool_cache_stats(c, &st) == 0 && st.in_use == 0);
    CHECK(magpool_cache_stats(d, &st) == 0 && st.in_use == 0);
    CHECK(magpool_cache_destroy(c) == 0 && magpool_cache_destroy(d) == 0);
}

static void test_deferred_without_memory(void)
{
    magpool_cache_t *c = mk("fi-deferred", 0);
    void *o[200];
    for (int i = 0; i < 200; i++)
        o[i] = magpool_alloc(c);
    magpool_fault_inject(1000000); /* no batch magazine, not even one of one */
    for (int i = 0; i < 200; i++)
        magpool_free_deferred(c, o[i]);
    magpool_fault_inject(0);
    struct magpool_stats st;
    CHECK(magpool_cache_stats(c, &st) == 0);
    CHECK_MSG(st.in_use == 0 && st.deferred == 0, "in_use %llu deferred %llu", (unsigned long long)st.in_use,
              (unsigned long long)st.deferred);
    CHECK(conserved(c, NULL));
    CHECK(magpool_cache_destroy(c) == 0);
}

static void deferred_in_section(void *arg)
{
    (void)arg;
    magpool_cache_t *c = mk("fi-section", MAGPOOL_DEBUG_CONTINUE);
    void *a = magpool_alloc(c);
    magpool_fault_inject(1000000);
    magpool_read_enter(NULL);
    magpool_free_deferred(c, a);
    magpool_read_leave(NULL);
    magpool_fault_inject(0);
}

int main(void)
{
    test_no_state_no_magazine();
    test_deferred_without_memory();
    char out[4096];
    int status = check_run_child(deferred_in_section, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                  strstr(out, "magpool: fi-section: deferred free dropped at 0x") != NULL,
              "[%s]", out);
    return check_done();
}
