/*
 * Nothing stays after destroy (issue "bounded memory", item 3): after a
 * burst on many caches and their destruction, the library's metadata goes
 * back to the system -- the block pools madvise chunks whose blocks all came
 * back (meta.c), and the last destroy gives back the chunks kept against
 * thrashing, the magazine area's free slots and every page region with its
 * page-map slice (mp_release_unused) -- so the metadata still resident is
 * what it was before the first cache, and the process's RSS is back within
 * 1 MiB of it, right after the destroy and after a reap.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache_impl.h"
#include "meta.h"
#include "page.h"
#include "tests/check.h"

#define NCACHES 32
#define BURST 20000

/* Resident pages of the 64 KiB chunk at c (mincore). */
static unsigned chunk_resident_pages(const void *c)
{
    unsigned char vec[MP_POOL_CHUNK / 4096];
    if (mincore((void *)c, MP_POOL_CHUNK, vec) != 0)
        return ~0u;
    unsigned n = 0;
    for (size_t i = 0; i < sizeof vec; i++)
        n += vec[i] & 1;
    return n;
}

/* A block pool's released chunks keep no page at all: not even the header's
 * (it used to be rewritten after the madvise, one page per chunk). */
static void test_released_chunks_hold_nothing(void)
{
    static struct mp_pool pool = MP_POOL_INIT(1024, 0);
    enum { PER_CHUNK = MP_POOL_CHUNK / 1024, N = 16 * PER_CHUNK };
    void **b = malloc(N * sizeof *b);
    for (int i = 0; i < N; i++)
        CHECK((b[i] = mp_pool_get(&pool)) != NULL);
    for (int i = 0; i < N; i++)
        mp_pool_put(&pool, b[i]);
    unsigned chunks = 0, resident = 0;
    for (int i = 0; i < N; i += PER_CHUNK / 2) {
        const void *c = (const void *)((uintptr_t)b[i] & ~(uintptr_t)(MP_POOL_CHUNK - 1));
        if (i > 0 && c == (const void *)((uintptr_t)b[i - PER_CHUNK / 2] & ~(uintptr_t)(MP_POOL_CHUNK - 1)))
            continue;
        chunks++;
        unsigned r = chunk_resident_pages(c);
        CHECK(r != ~0u);
        resident += r;
    }
    /* one empty chunk is kept whole against thrashing (16 pages) */
    CHECK_MSG(chunks >= 15 && resident <= MP_POOL_CHUNK / 4096, "%u chunks released, %u pages still resident",
              chunks, resident);
    mp_pool_trim(&pool);
    free(b);
}

/* Blocks that live as long as threads come from chunks of their own: after
 * a burst of short-lived blocks of the same size interleaved with them is
 * freed, the lasting ones sit in as few chunks as they fill. */
static void test_lasting_blocks_pack(void)
{
    enum { N = 256, BLOCK = 1024 };
    void **keep = malloc(N * sizeof *keep), **tmp = malloc(64 * N * sizeof *tmp);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 64; k++)
            CHECK((tmp[i * 64 + k] = mp_meta_alloc(BLOCK)) != NULL);
        CHECK((keep[i] = mp_meta_alloc_lasting(BLOCK)) != NULL);
    }
    for (int i = 0; i < 64 * N; i++)
        mp_meta_free(tmp[i], BLOCK);
    unsigned distinct = 0;
    for (int i = 0; i < N; i++) {
        uintptr_t c = (uintptr_t)keep[i] & ~(uintptr_t)(MP_POOL_CHUNK - 1);
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = ((uintptr_t)keep[j] & ~(uintptr_t)(MP_POOL_CHUNK - 1)) == c;
        distinct += !seen;
    }
    /* 63 blocks of 1 KiB per chunk (the header takes the first): 5 chunks */
    CHECK_MSG(distinct <= (N * BLOCK) / (MP_POOL_CHUNK - BLOCK) + 1, "%d lasting blocks in %u chunks", N, distinct);
    for (int i = 0; i < N; i++)
        mp_meta_free_lasting(keep[i], BLOCK);
    free(keep);
    free(tmp);
}

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
    /* The last destroy itself gave back what the caches used (no reap, no
     * synchronize: core/cache.c, mp_release_unused): every page region with
     * its page-map slice, and every metadata chunk but the ones still in use
     * (the thread's record, the domain's). */
    struct mp_page_stats pst;
    mp_page_stats(&pst);
    CHECK_MSG(pst.regions_committed == 0 && pst.pages_in_use == 0, "%llu regions, %llu pages after destroy",
              (unsigned long long)pst.regions_committed, (unsigned long long)pst.pages_in_use);
    uint64_t meta_destroy = mp_meta_resident_bytes();
    CHECK_MSG(meta_destroy <= meta0 + MP_POOL_CHUNK, "metadata resident: %llu before, %llu at the peak, %llu after destroy",
              (unsigned long long)meta0, (unsigned long long)meta_peak, (unsigned long long)meta_destroy);
    size_t rss_destroy = check_rss_bytes();
    magpool_thread_flush();
    magpool_synchronize(NULL);
    magpool_reap();
    uint64_t meta1 = mp_meta_resident_bytes();
    size_t rss1 = check_rss_bytes();
    CHECK_MSG(meta_peak > meta0 + 4 * MP_POOL_CHUNK, "the burst took only %llu bytes of metadata (test too small)",
              (unsigned long long)(meta_peak - meta0));
    CHECK_MSG(meta1 <= meta0, "metadata resident: %llu before, %llu at the peak, %llu after destroy",
              (unsigned long long)meta0, (unsigned long long)meta_peak, (unsigned long long)meta1);
    /* RSS only without a sanitizer or Valgrind: their shadow memory and
     * quarantines move with every poisoned page. */
    if ((mp_san() & (MP_SAN_ASAN | MP_SAN_TSAN | MP_SAN_LSAN)) == 0 && !mp_under_memcheck())
        CHECK_MSG(rss_destroy <= rss0 + (1u << 20) && rss1 <= rss0 + (1u << 20),
                  "RSS %zu KiB before the caches, %zu KiB after destroying them, %zu after a reap",
                  rss0 >> 10, rss_destroy >> 10, rss1 >> 10);
    free(o);
    test_released_chunks_hold_nothing();
    test_lasting_blocks_pack();
    return check_done();
}
