/*
 * Sanitizer proofs.
 *  - Built with ASan: a use after free of a pooled object (mem_pool,
 *    kmem_cache, kmalloc and core objects resting in a magazine) must be
 *    reported by ASan.  The pool poisons resting objects with
 *    ASAN_POISON_MEMORY_REGION (src/base/sanitize.h), which ASan reports as
 *    "use-after-poison" (its "use-after-free" is reserved for malloc's own
 *    freed chunks; no public interface sets that shadow kind), so the tests
 *    accept either; the report is followed by a line naming the pool.  The
 *    library detects the ASan runtime at run time (sanitize.h), so the same
 *    holds for an instrumented application linking an uninstrumented
 *    library: tests/sanitizer_app_test.sh proves that against the install.
 *    Death tests: the misuse runs in a child process.
 *  - Built without ASan: the same misuse on a MAGPOOL_POISON cache is caught
 *    by the debug layer's poison check at the next allocation.
 * Valgrind memcheck has its own proof: tests/vg_uaf.c run by
 * tests/valgrind_test.sh.
 */
#include <stdio.h>
#include <string.h>

#include "magpool/kmem_cache.h"
#include "magpool/magpool.h"
#include "magpool/mem_pool.h"
#include "sanitize.h"
#include "tests/check.h"

#ifdef MP_ASAN
static volatile long sink;

static void uaf_mem_pool(void *a)
{
    (void)a;
    struct mem_pool *p = mem_pool_new_fn(64, 4, "asan_pool");
    long *o = mem_get(p);
    o[0] = 1;
    mem_put(o);
    sink = o[0]; /* read after put */
}
static void uaf_mem_pool_write(void *a)
{
    (void)a;
    struct mem_pool *p = mem_pool_new_fn(24, 4, "asan_pool_w");
    long *o = mem_get(p);
    mem_put(o);
    o[2] = 5; /* write after put */
}
static void uaf_kmem(void *a)
{
    (void)a;
    struct kmem_cache *s = kmem_cache_create("asan_kmem", 128, 0, 0, NULL);
    char *o = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free(s, o);
    sink = o[100];
}
static void uaf_kmalloc(void *a)
{
    (void)a;
    char *o = kmalloc(200, GFP_KERNEL);
    kfree(o);
    sink = o[5];
}
static void uaf_core_after_flush(void *a)
{
    (void)a;
    struct magpool_config cfg = {.name = "asan_core", .size = 32};
    magpool_cache_t *c = magpool_cache_create(&cfg);
    long *o = magpool_alloc(c);
    magpool_free(c, o);
    magpool_thread_flush(); /* now resting in the depot */
    sink = o[1];
}
static void clean_use(void *a)
{
    (void)a;
    struct mem_pool *p = mem_pool_new_fn(64, 4, "asan_clean");
    for (int i = 0; i < 100; i++) {
        long *o = mem_get(p);
        memset(o, i, 64);
        mem_put(o);
    }
    mem_pool_destroy(p);
}
#else
static void uaf_poisoned(void *a)
{
    (void)a;
    struct magpool_config cfg = {.name = "poison_uaf", .size = 64, .flags = MAGPOOL_POISON};
    magpool_cache_t *c = magpool_cache_create(&cfg);
    long *o = magpool_alloc(c);
    magpool_free(c, o);
    o[3] = 1; /* write after free */
    for (int i = 0; i < 64; i++)
        magpool_alloc(c);
}
static void uaf_slab_poison(void *a)
{
    (void)a;
    struct kmem_cache *s = kmem_cache_create("slab_poison_uaf", 64, 0, SLAB_POISON, NULL);
    long *o = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free(s, o);
    o[0] = 1;
    for (int i = 0; i < 64; i++)
        kmem_cache_alloc(s, GFP_KERNEL);
}
#endif

int main(void)
{
#ifdef MP_ASAN
    CHECK(check_death(uaf_mem_pool, NULL, "use-after-poison") ||
          check_death(uaf_mem_pool, NULL, "use-after-free"));
    CHECK(check_death(uaf_mem_pool, NULL, "AddressSanitizer"));
    CHECK(check_death(uaf_mem_pool_write, NULL, "WRITE of size 8"));
    CHECK(check_death(uaf_kmem, NULL, "READ of size 1"));
    /* After ASan's report, the library names the pool (sanitize.c). */
    CHECK(check_death(uaf_kmem, NULL, "bytes into object 0x"));
    CHECK(check_death(uaf_kmem, NULL, "of cache 'asan_kmem' (object size 128)"));
    CHECK(check_death(uaf_kmalloc, NULL, "AddressSanitizer"));
    CHECK(check_death(uaf_core_after_flush, NULL, "AddressSanitizer"));
    CHECK(!check_death(clean_use, NULL, NULL)); /* correct use: no report */
#else
    CHECK(check_death(uaf_poisoned, NULL, "magpool: poison_uaf: use after free at 0x"));
    CHECK(check_death(uaf_slab_poison, NULL, "magpool: slab_poison_uaf: use after free"));
#endif
    return check_done();
}
