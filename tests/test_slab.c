/*
 * Slab layer tests: geometry over sizes 1 B .. 1 MiB and alignments 8 ..
 * 4096, HWCACHE_ALIGN, no two objects overlapping, ctor once per object and
 * dtor once per built object on reap, constructed state kept across
 * free/alloc, colour offsets across slabs, mp_slab_owner for objects,
 * interior and foreign pointers, max_objects, NOWAIT, reap (plain and
 * deferred) giving pages back, and threads hammering one cache.  Each phase
 * ends with mp_slab_validate(), which checks the invariants of slab.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu.h"
#include "magpool/magpool.h"
#include "page.h"
#include "slab.h"

static int owner_token; /* stands in for the magpool_cache_t */
#define OWNER ((void *)&owner_token)

static struct mp_slab_cache *mk(size_t size, size_t align, unsigned flags)
{
    struct mp_slab_params p = { .size = size, .align = align, .flags = flags, .owner = OWNER };
    struct mp_slab_cache *sc = mp_slab_cache_new(&p);
    CHECK_MSG(sc != NULL, "cache of size %zu align %zu", size, align);
    return sc;
}

static struct mp_slab_stats sstats(struct mp_slab_cache *sc)
{
    struct mp_slab_stats st;
    mp_slab_stats(sc, &st);
    return st;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Sort the objects and check that [obj, obj + size) never overlap and each
 * is a distinct pointer: the "set" of handed-out objects. */
static int overlap(void **objs, size_t n, size_t size)
{
    void **s = malloc(n * sizeof *s);
    memcpy(s, objs, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_ptr);
    int bad = 0;
    for (size_t i = 1; i < n; i++)
        bad += (char *)s[i - 1] + size > (char *)s[i];
    free(s);
    return bad;
}

static void test_params(void)
{
    struct mp_slab_params p = { .size = 0, .align = 8 };
    errno = 0;
    CHECK(mp_slab_cache_new(&p) == NULL && errno == EINVAL);
    p.size = 16;
    p.align = 24; /* not a power of two */
    errno = 0;
    CHECK(mp_slab_cache_new(&p) == NULL && errno == EINVAL);
    p.align = 8;
    p.size = (size_t)8 << 20; /* bigger than any slab */
    errno = 0;
    CHECK(mp_slab_cache_new(&p) == NULL && errno == EINVAL);
    CHECK(mp_slab_cache_new(NULL) == NULL);
}

static const size_t sizes[] = {
    1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 33, 48, 63, 64, 65, 96, 100, 127, 128, 129, 200,
    255, 256, 257, 384, 500, 640, 1000, 1023, 1024, 1025, 1500, 2047, 2048, 2049, 3000,
    4095, 4096, 4097, 5000, 8191, 8192, 10000, 16384, 30000, 65536, 100000, 262144,
    300000, 524288, 700001, 1048576,
};

static void test_sizes(void)
{
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t size = sizes[si], align = size >= 16 ? 16 : 8;
        struct mp_slab_cache *sc = mk(size, align, 0);
        if (!sc)
            continue;
        size_t stride = mp_slab_stride(sc);
        struct mp_slab_stats st = sstats(sc);
        size_t slab = MP_PAGE_SIZE << st.slab_order;
        CHECK(stride >= size && stride % align == 0 && stride < size + align);
        CHECK(mp_slab_align(sc) == align);
        CHECK(st.slab_order <= MP_MAX_ORDER && st.objs_per_slab >= 1);
        CHECK(st.objs_per_slab * stride <= slab);
        if (stride <= slab / 8 * 1 && stride <= (MP_PAGE_SIZE << MP_MAX_ORDER) / 8) {
            CHECK_MSG(st.objs_per_slab >= 8, "size %zu: %llu per slab", size,
                      (unsigned long long)st.objs_per_slab);
            CHECK_MSG((slab - st.objs_per_slab * stride) * 8 <= slab, "size %zu wastes", size);
        }
        if (stride <= 2048)
            CHECK(slab >= 16384);
        size_t n = 2 * st.objs_per_slab + 1;
        void **o = calloc(n, sizeof *o);
        size_t got = mp_slab_alloc(sc, o, n, 0);
        CHECK_MSG(got == n, "size %zu: got %zu of %zu", size, got, n);
        int bad = 0;
        for (size_t i = 0; i < got; i++) {
            int why = -1;
            bad += (uintptr_t)o[i] % align != 0;
            bad += mp_slab_owner(o[i], &why) != OWNER || why != MP_OBJ_OK;
            memset(o[i], (int)i, size); /* all of it is usable (ASan checks) */
        }
        CHECK_MSG(bad == 0, "size %zu", size);
        CHECK(overlap(o, got, size) == 0);
        CHECK(sstats(sc).slabs == 3);
        CHECK(mp_slab_validate(sc) == 0);
        mp_slab_free(sc, o, got);
        CHECK(mp_slab_validate(sc) == 0);
        CHECK(sstats(sc).free_in_slabs == sstats(sc).constructed);
        mp_slab_reap(sc, NULL, NULL);
        CHECK(sstats(sc).pages == 0 && sstats(sc).constructed == 0);
        mp_slab_cache_delete(sc);
        free(o);
    }
}

static void test_align(void)
{
    for (size_t align = 8; align <= 4096; align *= 2) {
        size_t osz[] = { 1, 13, 100, 4097 };
        for (int k = 0; k < 4; k++) {
            struct mp_slab_cache *sc = mk(osz[k], align, 0);
            if (!sc)
                continue;
            CHECK(mp_slab_stride(sc) % align == 0);
            void *o[40];
            size_t got = mp_slab_alloc(sc, o, 40, 0);
            CHECK(got == 40);
            int bad = 0;
            for (size_t i = 0; i < got; i++)
                bad += (uintptr_t)o[i] % align != 0;
            CHECK_MSG(bad == 0, "align %zu size %zu", align, osz[k]);
            CHECK(overlap(o, got, osz[k]) == 0);
            mp_slab_free(sc, o, got);
            mp_slab_cache_delete(sc);
        }
    }
    /* HWCACHE_ALIGN: 64-byte alignment for objects of a line or more. */
    struct mp_slab_cache *a = mk(65, 8, MAGPOOL_HWCACHE_ALIGN);
    struct mp_slab_cache *b = mk(40, 8, MAGPOOL_HWCACHE_ALIGN);
    struct mp_slab_cache *c = mk(64, 128, MAGPOOL_HWCACHE_ALIGN);
    CHECK(mp_slab_align(a) == 64 && mp_slab_stride(a) == 128);
    CHECK(mp_slab_align(b) == 8 && mp_slab_stride(b) == 40);
    CHECK(mp_slab_align(c) == 128 && mp_slab_stride(c) == 128);
    void *o[20];
    CHECK(mp_slab_alloc(a, o, 20, 0) == 20);
    for (int i = 0; i < 20; i++)
        CHECK((uintptr_t)o[i] % 64 == 0);
    mp_slab_free(a, o, 20);
    mp_slab_cache_delete(a);
    mp_slab_cache_delete(b);
    mp_slab_cache_delete(c);
    /* extra bytes lengthen the stride. */
    struct mp_slab_params p = { .size = 24, .align = 8, .extra = 16, .owner = OWNER };
    struct mp_slab_cache *e = mp_slab_cache_new(&p);
    CHECK(e != NULL && mp_slab_stride(e) == 40);
    mp_slab_cache_delete(e);
}

/* ---- ctor / dtor ---------------------------------------------------------- */

struct obj {
    uint64_t magic;    /* set by the ctor */
    uint64_t uses;     /* changed by the user, must survive free/alloc */
    _Atomic int held;  /* 1 while handed out (threads test) */
    char pad[40];
};
#define MAGIC 0xC0FFEE1234567890u

static _Atomic long n_ctor, n_dtor, n_cd_errors; /* ctor/dtor run in any thread */
static void ctor(void *p, void *arg)
{
    struct obj *o = p;
    if (arg != &n_ctor)
        atomic_fetch_add(&n_cd_errors, 1);
    o->magic = MAGIC;
    o->uses = 0;
    atomic_init(&o->held, 0);
    atomic_fetch_add(&n_ctor, 1);
}
static void dtor(void *p, void *arg)
{
    struct obj *o = p;
    if (arg != &n_ctor || o->magic != MAGIC)
        atomic_fetch_add(&n_cd_errors, 1);
    o->magic = 0;
    atomic_fetch_add(&n_dtor, 1);
}

static struct mp_slab_cache *mk_obj(unsigned flags, size_t max)
{
    struct mp_slab_params p = { .size = sizeof(struct obj), .align = 8, .flags = flags,
                                .ctor = ctor, .dtor = dtor, .arg = &n_ctor, .owner = OWNER,
                                .max_objects = max };
    struct mp_slab_cache *sc = mp_slab_cache_new(&p);
    CHECK(sc != NULL);
    return sc;
}

static void test_ctor(void)
{
    atomic_store(&n_ctor, 0);
    atomic_store(&n_dtor, 0);
    struct mp_slab_cache *sc = mk_obj(0, 0);
    uint64_t per = sstats(sc).objs_per_slab;
    void *one;
    CHECK(mp_slab_alloc(sc, &one, 1, 0) == 1);
    CHECK(atomic_load(&n_ctor) == 1); /* lazily: not the whole slab */
    CHECK(sstats(sc).constructed == 1);
    size_t n = 3 * per;
    struct obj **o = calloc(n, sizeof *o);
    CHECK(mp_slab_alloc(sc, (void **)o, n, 0) == n);
    CHECK(atomic_load(&n_ctor) == (long)n + 1);
    for (size_t i = 0; i < n; i++) {
        CHECK(o[i]->magic == MAGIC && o[i]->uses == 0);
        o[i]->uses = (uint64_t)(uintptr_t)o[i]; /* state the layer must keep */
    }
    mp_slab_free(sc, (void **)o, n);
    CHECK(mp_slab_validate(sc) == 0);
    CHECK(sstats(sc).slabs_empty <= 1); /* the free path keeps at most one */
    long built = (long)sstats(sc).constructed;
    CHECK(atomic_load(&n_dtor) == (long)n + 1 - built); /* surplus slabs torn down */
    /* Realloc what is left: no ctor, and the state is intact. */
    size_t again = (size_t)built - 1;
    long ctors = atomic_load(&n_ctor);
    CHECK(mp_slab_alloc(sc, (void **)o, again, 0) == again);
    CHECK(atomic_load(&n_ctor) == ctors);
    int bad = 0;
    for (size_t i = 0; i < again; i++)
        bad += o[i]->magic != MAGIC || o[i]->uses != (uint64_t)(uintptr_t)o[i];
    CHECK(bad == 0);
    mp_slab_free(sc, (void **)o, again);
    mp_slab_free(sc, &one, 1);
    CHECK(sstats(sc).slabs_empty <= 1);
    CHECK((long)sstats(sc).constructed == atomic_load(&n_ctor) - atomic_load(&n_dtor));
    size_t pages = mp_slab_reap(sc, NULL, NULL);
    CHECK(pages > 0);
    CHECK(atomic_load(&n_dtor) == atomic_load(&n_ctor)); /* every built object destroyed */
    struct mp_slab_stats st = sstats(sc);
    CHECK(st.constructed == 0 && st.slabs == 0 && st.pages == 0 && st.free_in_slabs == 0);
    CHECK(mp_slab_owner(one, NULL) == NULL); /* its slab is gone */
    mp_slab_cache_delete(sc);
    free(o);
}

/* ---- colouring ------------------------------------------------------------ */

static void test_colour(void)
{
    struct mp_slab_cache *sc = mk(200, 8, 0); /* 16 KiB: 81 objects, 184 bytes left */
    struct mp_slab_stats st = sstats(sc);
    size_t stride = mp_slab_stride(sc), slab = MP_PAGE_SIZE << st.slab_order;
    size_t leftover = slab - st.objs_per_slab * stride;
    CHECK(leftover >= 128);
    size_t nslabs = 4, n = nslabs * st.objs_per_slab;
    void **o = calloc(n, sizeof *o);
    CHECK(mp_slab_alloc(sc, o, n, 0) == n);
    size_t colours[8];
    int ncol = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nobjs = 0, idx = mp_slab_index(o[i], &nobjs);
        bad += idx >= nobjs || nobjs != st.objs_per_slab;
        uintptr_t block = (uintptr_t)o[i] & ~(uintptr_t)(slab - 1);
        size_t colour = (uintptr_t)o[i] - block - idx * stride;
        bad += colour % 64 != 0 || colour > leftover;
        int seen = 0;
        for (int c = 0; c < ncol; c++)
            seen |= colours[c] == colour;
        if (!seen && ncol < 8)
            colours[ncol++] = (size_t)colour;
    }
    CHECK(bad == 0);
    CHECK_MSG(ncol >= 2, "%d distinct colours over %zu slabs", ncol, nslabs);
    /* The colour area and the tail are inside the slab but not objects. */
    int misaligned = 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t block = (uintptr_t)o[i] & ~(uintptr_t)(slab - 1);
        int why = -1;
        void *r = mp_slab_owner((void *)(block + slab - 1), &why);
        misaligned += r == NULL && why == MP_OBJ_MISALIGNED;
        if ((uintptr_t)o[i] != block) { /* coloured slab: its first byte is padding */
            r = mp_slab_owner((void *)block, &why);
            ok += r == NULL && why == MP_OBJ_MISALIGNED;
        }
    }
    CHECK(misaligned == (int)n);
    CHECK(ok > 0);
    mp_slab_free(sc, o, n);
    mp_slab_cache_delete(sc);
    free(o);
}

/* ---- owner lookup --------------------------------------------------------- */

static void test_owner(void)
{
    size_t szs[] = { 1, 8, 24, 100, 4096, 5000 };
    for (int k = 0; k < 6; k++) {
        struct mp_slab_cache *sc = mk(szs[k], 8, 0);
        size_t stride = mp_slab_stride(sc), n = sstats(sc).objs_per_slab + 3;
        void **o = calloc(n, sizeof *o);
        CHECK(mp_slab_alloc(sc, o, n, 0) == n);
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            int why = -1;
            bad += mp_slab_owner(o[i], &why) != OWNER || why != MP_OBJ_OK;
            for (size_t d = 1; d < stride; d += (stride > 64 ? stride / 7 : 1)) {
                why = -1;
                bad += mp_slab_owner((char *)o[i] + d, &why) != NULL || why != MP_OBJ_MISALIGNED;
            }
        }
        CHECK_MSG(bad == 0, "size %zu", szs[k]);
        mp_slab_free(sc, o, n);
        mp_slab_cache_delete(sc);
        free(o);
    }
    int local, why = -1;
    void *heap = malloc(32);
    CHECK(mp_slab_owner(&local, &why) == NULL && why == MP_OBJ_FOREIGN);
    why = -1;
    CHECK(mp_slab_owner(heap, &why) == NULL && why == MP_OBJ_FOREIGN);
    why = -1;
    CHECK(mp_slab_owner(NULL, &why) == NULL && why == MP_OBJ_FOREIGN);
    why = -1;
    CHECK(mp_slab_owner((void *)(uintptr_t)-8, &why) == NULL && why == MP_OBJ_FOREIGN);
    /* Pages of the arena that are not a slab's. */
    void *pg = mp_pages_alloc(0, 0);
    why = -1;
    CHECK(pg != NULL && mp_slab_owner(pg, &why) == NULL && why == MP_OBJ_FOREIGN);
    mp_pages_free(pg, 0);
    free(heap);
}

/* The bulk frees' run check (mp_slab_run_owned_by: four objects per step
 * against the kept slab's bounds): one bad object at every position of
 * runs of every length up to 13 is found, whatever lane of a step it falls
 * in; NULLs anywhere and objects of two slabs interleaved pass. */
static void run_owned_by_once(void)
{
    static int other_token;
    struct mp_slab_cache *sc = mk(64, 8, 0);
    struct mp_slab_params op = { .size = 64, .align = 8, .owner = &other_token };
    struct mp_slab_cache *oc = mp_slab_cache_new(&op);
    CHECK(oc != NULL);
    size_t per = sstats(sc).objs_per_slab;
    size_t total = per + 16; /* the last 16 are in a second slab */
    void **o = calloc(total, sizeof *o);
    CHECK(o != NULL && mp_slab_alloc(sc, o, total, 0) == total);
    void *foreign_obj = NULL;
    CHECK(mp_slab_alloc(oc, &foreign_obj, 1, 0) == 1);
    static long local;
    void *run[13];
    int bad = 0;
    for (size_t n = 1; n <= 13; n++) {
        for (size_t i = 0; i < n; i++)
            run[i] = o[i];
        bad += !mp_slab_run_owned_by(run, n, OWNER);
        for (size_t at = 0; at < n; at++) {
            void *keep = run[at];
            void *wrong[3] = { (char *)keep + 8, foreign_obj, &local };
            for (int w = 0; w < 3; w++) {
                run[at] = wrong[w];
                bad += mp_slab_run_owned_by(run, n, OWNER); /* must be false */
            }
            run[at] = NULL;
            bad += !mp_slab_run_owned_by(run, n, OWNER); /* NULL: skipped */
            run[at] = keep;
        }
        /* two slabs, alternating */
        for (size_t i = 0; i < n; i++)
            run[i] = (i & 1) ? o[per + i] : o[i];
        bad += !mp_slab_run_owned_by(run, n, OWNER);
    }
    CHECK_MSG(bad == 0, "%d wrong answers", bad);
    mp_slab_free(oc, &foreign_obj, 1);
    mp_slab_free(sc, o, total);
    mp_slab_cache_delete(oc);
    mp_slab_cache_delete(sc);
    free(o);
}

/* Both group steps: the 256-bit one (if this CPU has it) and the baseline. */
static void test_run_owned_by(void)
{
    bool wide = mp_bulk_wide;
    for (int pass = 0; pass < 2; pass++, mp_bulk_wide = false)
        run_owned_by_once();
    mp_bulk_wide = wide;
}

/* The slot tests (mp_slab_slot_at; the run check's group steps, the 256-bit
 * one with lk_inv) against division, on real slabs of strides 1 B .. 256 KiB, odd, even and powers of
 * two: every offset around the slab's first and last objects, offsets below
 * the base, multiples of the stride past the end and 2^32 away (where a
 * 32-bit test would alias), and random 64-bit offsets. */
static uint64_t slot_rng = 0x9e3779b97f4a7c15ULL;

static uint64_t slot_rand(void)
{
    slot_rng ^= slot_rng << 13;
    slot_rng ^= slot_rng >> 7;
    slot_rng ^= slot_rng << 17;
    return slot_rng;
}

static void slot_check(const struct mp_slab_lookup *lk, void *good, uintptr_t off, int *bad)
{
    uintptr_t base = mp_load_relaxed(&lk->lk_base);
    uint32_t span = mp_load_relaxed(&lk->lk_span), stride = mp_load_relaxed(&lk->lk_stride);
    bool truth = off < span && off % stride == 0;
    unsigned got = mp_slab_slot_at(off, span, mp_load_relaxed(&lk->lk_magic));
    /* the group step, with the candidate in each lane in turn */
    void *grp[4] = { good, good, good, good };
    size_t lane = off % 4;
    grp[lane] = (void *)(base + off);
    size_t in = mp_slab_run_groups(grp, 4, lk);
    if (got != truth || in != (truth ? 4u : 0u)) {
        if (*bad < 5)
            fprintf(stderr, "stride %u span %u off %#zx: truth %d scalar %u group %zu\n", stride, span, (size_t)off,
                    (int)truth, got, in);
        ++*bad;
    }
}

static void test_slot_exact(void)
{
    static const size_t sizes[] = { 1, 2, 3, 5, 7, 8, 12, 24, 40, 48, 56, 64, 72, 96, 100, 127, 128, 192,
                                    200, 256, 384, 500, 1000, 1024, 3000, 4096, 5000, 12288, 40000, 65536,
                                    100000, 262144 };
    bool wide = mp_bulk_wide;
    int bad = 0;
    for (int pass = 0; pass < 2; pass++, mp_bulk_wide = false)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t align = sizes[k] % 8 == 0 ? 8 : 1;
            struct mp_slab_cache *sc = mk(sizes[k], align, 0);
            void *o = NULL;
            CHECK(mp_slab_alloc(sc, &o, 1, 0) == 1);
            const struct mp_slab_lookup *lk = mp_page_owner_inline(o);
            CHECK(lk != NULL && mp_load_relaxed(&lk->lk_owner) == OWNER);
            uintptr_t stride = mp_load_relaxed(&lk->lk_stride), span = mp_load_relaxed(&lk->lk_span);
            CHECK(span / stride == mp_load_relaxed(&lk->lk_nobjs) && span % stride == 0);
            for (uintptr_t d = 0; d < 3 * stride + 80; d++) {
                slot_check(lk, o, d, &bad);
                slot_check(lk, o, -d, &bad);            /* below the base */
                slot_check(lk, o, span + 2 * stride - d, &bad); /* around the end */
            }
            for (uintptr_t j = 0; j < 64; j++) {
                slot_check(lk, o, span + j * stride, &bad);
                slot_check(lk, o, ((uintptr_t)1 << 32) + j * stride, &bad);
                slot_check(lk, o, ((uintptr_t)1 << 32) * (j + 1), &bad);
                slot_check(lk, o, -(j + 1) * stride, &bad);
                slot_check(lk, o, (UINTPTR_MAX / stride - j) * stride, &bad);
            }
            for (int r = 0; r < 20000; r++) {
                uint64_t x = slot_rand();
                slot_check(lk, o, x, &bad);
                slot_check(lk, o, x % span, &bad);
                slot_check(lk, o, x % span / stride * stride, &bad);
            }
            mp_slab_free(sc, &o, 1);
            mp_slab_cache_delete(sc);
        }
    mp_bulk_wide = wide;
    CHECK_MSG(bad == 0, "%d wrong slot answers", bad);
}

/* ---- max_objects, NOWAIT, reap -------------------------------------------- */

static void test_max_objects(void)
{
    atomic_store(&n_ctor, 0);
    atomic_store(&n_dtor, 0);
    struct mp_slab_cache *sc = mk_obj(0, 10);
    void *o[16];
    CHECK(mp_slab_alloc(sc, o, 16, 0) == 10); /* bulk stops at the limit */
    errno = 0;
    void *x;
    CHECK(mp_slab_alloc(sc, &x, 1, 0) == 0 && errno == ENOMEM);
    mp_slab_free(sc, &o[3], 1);
    CHECK(mp_slab_alloc(sc, &x, 1, 0) == 1 && x == o[3]);
    CHECK(sstats(sc).constructed == 10 && atomic_load(&n_ctor) == 10);
    mp_slab_free(sc, o, 10);
    CHECK(mp_slab_validate(sc) == 0);
    mp_slab_cache_delete(sc);
    CHECK(atomic_load(&n_dtor) == 10);

    /* A limit across several slabs: freed objects anywhere are found. */
    struct mp_slab_params p = { .size = 3000, .align = 8, .owner = OWNER, .max_objects = 25 };
    sc = mp_slab_cache_new(&p);
    uint64_t per = sstats(sc).objs_per_slab;
    CHECK(per < 25);
    void *b[40];
    CHECK(mp_slab_alloc(sc, b, 40, 0) == 25);
    mp_slab_free(sc, &b[0], 1); /* from the first slab */
    mp_slab_free(sc, &b[24], 1);
    CHECK(mp_slab_alloc(sc, b + 30, 3, 0) == 2);
    CHECK(sstats(sc).constructed == 25);
    CHECK(mp_slab_validate(sc) == 0);
    mp_slab_free(sc, b + 1, 23);
    mp_slab_free(sc, b + 30, 2);
    CHECK(mp_slab_validate(sc) == 0);
    mp_slab_cache_delete(sc);
}

static void test_nowait(void)
{
    struct mp_slab_cache *sc = mk(64, 8, 0);
    void *o[512];
    errno = 0;
    CHECK(mp_slab_alloc(sc, o, 1, MAGPOOL_NOWAIT) == 0 && errno == EAGAIN); /* no slab yet */
    CHECK(sstats(sc).slabs == 0);
    uint64_t per = sstats(sc).objs_per_slab;
    CHECK(per <= 512);
    CHECK(mp_slab_alloc(sc, o, per, 0) == per); /* exactly one full slab */
    errno = 0;
    void *x;
    CHECK(mp_slab_alloc(sc, &x, 1, MAGPOOL_NOWAIT) == 0 && errno == EAGAIN);
    CHECK(sstats(sc).slabs == 1);
    mp_slab_free(sc, o, 5);
    CHECK(mp_slab_alloc(sc, o, 8, MAGPOOL_NOWAIT) == 5); /* what the slab has */
    mp_slab_free(sc, o, per);
    CHECK(mp_slab_alloc(sc, &x, 1, MAGPOOL_NOWAIT) == 1);
    mp_slab_free(sc, &x, 1);
    mp_slab_cache_delete(sc);
}

struct deferred {
    void (*fn)(void *);
    void *arg;
    void *ctx;
    int calls;
};
static void defer_cb(void (*fn)(void *), void *arg, void *ctx)
{
    struct deferred *d = ctx;
    d->fn = fn;
    d->arg = arg;
    d->calls++;
}

static void test_reap(void)
{
    struct mp_page_stats p0, p1, p2;
    atomic_store(&n_ctor, 0);
    atomic_store(&n_dtor, 0);
    /* TYPESAFE: empty slabs stay until reap, which may defer the teardown. */
    struct mp_slab_cache *sc = mk_obj(MAGPOOL_TYPESAFE, 0);
    uint64_t per = sstats(sc).objs_per_slab;
    size_t n = 6 * per;
    void **o = calloc(n, sizeof *o);
    mp_page_stats(&p0);
    CHECK(mp_slab_alloc(sc, o, n, 0) == n);
    mp_slab_free(sc, o, n);
    struct mp_slab_stats st = sstats(sc);
    CHECK(st.slabs_empty == 6 && st.slabs == 6);
    CHECK(atomic_load(&n_dtor) == 0);
    struct deferred d = { 0 };
    size_t pages = mp_slab_reap(sc, defer_cb, &d);
    CHECK(d.calls == 1 && pages == st.pages);
    CHECK(sstats(sc).slabs == 0 && sstats(sc).constructed == 0);
    CHECK(atomic_load(&n_dtor) == 0);               /* not yet */
    CHECK(mp_slab_owner(o[0], NULL) == OWNER);      /* type-stable until then */
    mp_page_stats(&p1);
    CHECK(p1.pages_in_use == p0.pages_in_use + pages);
    if (d.fn)
        d.fn(d.arg);
    CHECK(atomic_load(&n_dtor) == (long)n);
    CHECK(mp_slab_owner(o[0], NULL) == NULL);
    mp_page_stats(&p2);
    CHECK(p2.pages_in_use == p0.pages_in_use);
    CHECK(mp_slab_reap(sc, defer_cb, &d) == 0 && d.calls == 1); /* nothing left */
    mp_slab_cache_delete(sc);

    /* Plain cache: reap hands the pages straight back.  The free path tears
     * down every empty slab but one (its cushion), so exactly one empty slab
     * is left for the reap to release: require that it is there, that the
     * reap released it (pages > 0, every page the cache held) and that those
     * pages went back to the page layer at once (no deferral asked for).  A
     * reap with nothing to release would prove nothing. */
    sc = mk(1000, 8, 0);
    CHECK(mp_slab_alloc(sc, o, n, 0) == n);
    CHECK(sstats(sc).slabs > 1); /* several slabs: the free path has some to tear down */
    mp_slab_free(sc, o, n);
    st = sstats(sc);
    CHECK_MSG(st.slabs_empty == 1 && st.slabs == 1, "after freeing all: %llu empty of %llu slabs",
              (unsigned long long)st.slabs_empty, (unsigned long long)st.slabs);
    CHECK(st.pages == ((uint64_t)1 << st.slab_order));
    mp_page_stats(&p1);
    pages = mp_slab_reap(sc, NULL, NULL);
    CHECK_MSG(pages > 0 && pages == st.pages, "reap released %zu pages, the cache held %llu", pages,
              (unsigned long long)st.pages);
    CHECK(sstats(sc).pages == 0 && sstats(sc).slabs == 0 && sstats(sc).constructed == 0);
    mp_page_stats(&p2);
    CHECK_MSG(p1.pages_in_use - p2.pages_in_use == pages,
              "page layer: %llu pages in use before the reap, %llu after, reap says %zu",
              (unsigned long long)p1.pages_in_use, (unsigned long long)p2.pages_in_use, pages);
    CHECK(p2.pages_in_use == p0.pages_in_use);
    CHECK(mp_slab_reap(sc, NULL, NULL) == 0); /* nothing left */
    mp_slab_cache_delete(sc);
    free(o);
}

/* ---- threads -------------------------------------------------------------- */

enum { THREADS = 4 };
static int iters = 20000;
static struct mp_slab_cache *shared;
static _Atomic int mt_errors;

static void *hammer(void *arg)
{
    uint64_t r = 0x2545F4914F6CDD1Du * ((uintptr_t)arg + 1);
    struct obj *held[64];
    size_t nheld = 0;
    int errors = 0;
    for (int it = 0; it < iters; it++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        if (nheld < 48 && (r & 1)) {
            size_t want = 1 + (r >> 8) % 16, got;
            got = mp_slab_alloc(shared, (void **)&held[nheld], want, 0);
            errors += got != want;
            for (size_t i = nheld; i < nheld + got; i++) {
                errors += held[i]->magic != MAGIC;
                errors += atomic_exchange(&held[i]->held, 1) != 0; /* handed out twice */
                errors += mp_slab_owner(held[i], NULL) != OWNER;
                held[i]->uses++;
            }
            nheld += got;
        } else if (nheld > 0) {
            size_t k = 1 + (r >> 8) % nheld;
            for (size_t i = nheld - k; i < nheld; i++)
                atomic_store(&held[i]->held, 0);
            mp_slab_free(shared, (void **)&held[nheld - k], k);
            nheld -= k;
        }
        if ((r >> 40) % 512 == 0)
            mp_slab_reap(shared, NULL, NULL);
    }
    for (size_t i = 0; i < nheld; i++)
        atomic_store(&held[i]->held, 0);
    mp_slab_free(shared, (void **)held, nheld);
    atomic_fetch_add(&mt_errors, errors);
    return NULL;
}

static void test_threads(void)
{
    atomic_store(&n_ctor, 0);
    atomic_store(&n_dtor, 0);
    shared = mk_obj(0, 0);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, hammer, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&mt_errors) == 0);
    CHECK(mp_slab_validate(shared) == 0);
    struct mp_slab_stats st = sstats(shared);
    CHECK(st.constructed == st.free_in_slabs);
    CHECK((long)st.constructed == atomic_load(&n_ctor) - atomic_load(&n_dtor));
    mp_slab_reap(shared, NULL, NULL);
    CHECK(atomic_load(&n_ctor) == atomic_load(&n_dtor));
    mp_slab_cache_delete(shared);
    CHECK(mp_page_validate() == 0);
}

int main(void)
{
    if (getenv("MAGPOOL_TEST_SCALE"))
        iters = atoi(getenv("MAGPOOL_TEST_SCALE"));
    test_params();
    test_sizes();
    test_align();
    test_ctor();
    test_colour();
    test_owner();
    test_run_owned_by();
    test_slot_exact();
    test_max_objects();
    test_nowait();
    test_reap();
    test_threads();
    CHECK(atomic_load(&n_cd_errors) == 0);
    return check_done();
}
