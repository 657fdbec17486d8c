/*
 * Nothing stays after destroy (issue "bounded memory", item 3): after a
 * burst on many caches and their destruction, the library's metadata goes
 * back to the system -- the block pools madvise chunks whose blocks all came
 * back (meta.c) -- so the metadata still resident is a constant (an empty chunk kept per pool), not a
 * function of the burst; and the process's RSS is back within 1.5 MiB of
 * what it was before the first cache (the figure the benchmark reports is
 * tighter; a test allows for the runtime's own noise).
 */
#include <stdlib.h>
#include <string.h>

#include "cache_impl.h"
#include "meta.h"
#include "tests/check.h"

#define NCACHES 32
#define BURST 20000

int main(void)
{
    setenv("MAGPOOL_REAPER", "0", 1);
    void **o = malloc(BURST * sizeof *o);
    /* warm the runtime (stdio, the page arena's reservation) first */
    struct magpool_config w = { .name = "warm", .size = 8 };
    magpool_cache_t *warm = magpool_cache_create(&w);
    magpool_free(warm, magpool_alloc(warm));
    magpool_cache_destroy(warm);
    magpool_synchronize(NULL);
    magpool_reap();
    size_t rss0 = check_rss_bytes();
    uint64_t meta0 = mp_meta_resident_bytes();

    magpool_cache_t *cs[NCACHES];
    for (int c = 0; c < NCACHES; c++) {
        struct magpool_config cfg = { .name = "destroy-mem", .size = 64 };
        cs[c] = magpool_cache_create(&cfg);
        for (int i = 0; i < BURST; i++)
            o[i] = magpool_alloc(cs[c]);
        for (int i = 0; i < BURST; i++)
            magpool_free(cs[c], o[i]);
    }
    uint64_t meta_peak = mp_meta_resident_bytes();
    for (int c = 0; c < NCACHES; c++)
        CHECK(magpool_cache_destroy(cs[c]) == 0);
    magpool_thread_flush();
    magpool_synchronize(NULL);
    magpool_reap();
    uint64_t meta1 = mp_meta_resident_bytes();
    size_t rss1 = check_rss_bytes();
    CHECK_MSG(meta_peak > meta0 + 4 * MP_POOL_CHUNK, "the burst took only %llu bytes of metadata (test too small)",
              (unsigned long long)(meta_peak - meta0));
    /* at most one kept empty chunk per pool (six small classes) */
    CHECK_MSG(meta1 <= meta0 + 6 * MP_POOL_CHUNK, "metadata resident: %llu before, %llu at the peak, %llu after destroy",
              (unsigned long long)meta0, (unsigned long long)meta_peak, (unsigned long long)meta1);
    /* RSS only without a sanitizer or Valgrind: their shadow memory and
     * quarantines move with every poisoned page. */
    if ((mp_san() & (MP_SAN_ASAN | MP_SAN_TSAN | MP_SAN_LSAN)) == 0 && !mp_under_memcheck())
        CHECK_MSG(rss1 <= rss0 + (3u << 19), "RSS %zu KiB before the caches, %zu KiB after destroying them",
                  rss0 >> 10, rss1 >> 10);
    free(o);
    return check_done();
}
