/*
 * stress/fuzz_api.c — API fuzzing against a model.
 *
 * Claim under test: any sequence of calls on the core API and both front
 * ends, in any order, keeps magpool in agreement with a trivially correct
 * model: every live object keeps the bytes its owner wrote, no object is
 * handed out twice, magpool_cache_of() names the right cache, stats.in_use
 * equals the model's count, the conservation equation holds after every
 * stats call (a single thread is always quiescent), and destroy reports
 * exactly the objects the model still holds.
 *
 * Design.  The input bytes are a program: each step reads an opcode byte and
 * a few argument bytes (reading past the end gives zeros, so every input is
 * valid).  State: up to 4 core caches (sizes 8..4096, optional constructor,
 * magazine bounds from the input), one mem_pool, one kmem_cache, and kmalloc
 * objects; the model keeps, per object, its size and the fill byte written
 * over it.  Operations: create/destroy cache (destroy with live objects,
 * then free them: the documented-safe order), alloc, NOWAIT alloc, free,
 * bulk alloc/free, deferred free, shrink, stats check, thread flush,
 * synchronize, reap; mem_get/mem_get0/mem_put/mem_pool_destroy;
 * kmem_cache_alloc/zalloc/free/bulk; kmalloc/kzalloc/krealloc/kfree/ksize.
 * At the end of an input everything is freed and destroyed, so inputs are
 * independent.  Any disagreement prints what differed; then the libFuzzer
 * build abort()s (what libFuzzer needs: it saves the input), and the
 * standalone build abandons that input and counts it as a failed CHECK, so
 * its run still ends with the `N passed, N failed` line.
 *
 * Builds:
 *  - libFuzzer (clang -fsanitize=fuzzer,address -DMAGPOOL_LIBFUZZER): entry
 *    LLVMFuzzerTestOneInput; CI runs it with -runs=N on stress/corpus/fuzz_api.
 *  - standalone (default): main() runs every file of --corpus DIR (default
 *    stress/corpus/fuzz_api) and then --ops N random inputs from --seed, and
 *    prints `N passed, N failed`: one CHECK per corpus file (it agreed with
 *    the model) and one for the random inputs (all of them agreed; the first
 *    that does not ends the random phase, so FUZZ_API_DUMP holds it).
 *    --libc maps core caches and kmalloc onto malloc (the front-end-only
 *    steps and statistics are skipped).
 */
#include <dirent.h>
#include <setjmp.h>

#include "stress/stress_common.h"

#define NC 4
#define NOBJ 64
#define FZ_CTOR_MAGIC 0x5a5a5a5a12345678ull

#define FZ_CHECK(cond, ...)                                                    \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_api: %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            fz_disagree();                                                     \
        }                                                                      \
    } while (0)

#ifdef MAGPOOL_LIBFUZZER
/* libFuzzer: a disagreement is a crash, so the fuzzer keeps the input. */
static _Noreturn void fz_disagree(void)
{
    abort();
}
#else
/* Standalone: back to run_input, which reports the input as failed.  The
 * input's caches and objects are abandoned (leaked) as they are: after a
 * disagreement the model no longer says what is safe to free.  FZ_CHECK is
 * only used in the harness's own code, never inside a magpool call or
 * callback, so no library lock is held across the jump. */
static jmp_buf fz_bail;

static _Noreturn void fz_disagree(void)
{
    longjmp(fz_bail, 1);
}
#endif

struct tab {
    void *obj[NOBJ];
    size_t size[NOBJ];
    uint8_t fill[NOBJ];
    int n;
};

struct mcache {
    magpool_cache_t *c;
    size_t size;
    bool ctor;
    struct tab t;
};

static struct {
    const uint8_t *p;
    size_t len, pos;
    bool libc;
    struct mcache core[NC];
    struct mem_pool *mp;
    size_t mp_size;
    struct tab mpt;
    struct kmem_cache *km;
    size_t km_size;
    struct tab kmt;
    struct tab kmalloc_t;
    uint8_t next_fill;
} F;

static const size_t sizes[8] = {8, 16, 24, 64, 100, 256, 1000, 4096};

static uint8_t next(void)
{
    return F.pos < F.len ? F.p[F.pos++] : 0;
}

static void fz_ctor(void *obj, void *arg)
{
    size_t size = (size_t)(uintptr_t)arg;
    memcpy((char *)obj + size - 8, &(uint64_t){FZ_CTOR_MAGIC}, 8);
}

/* Bytes of an object the model owns (a ctor cache keeps its last 8). */
static size_t body(size_t size, bool ctor)
{
    return ctor ? size - 8 : size;
}

static bool in_any(const struct tab *t, const void *o)
{
    for (int i = 0; i < t->n; i++)
        if (t->obj[i] == o)
            return true;
    return false;
}

static void no_duplicate(const void *o)
{
    bool dup = in_any(&F.mpt, o) || in_any(&F.kmt, o) || in_any(&F.kmalloc_t, o);
    for (int i = 0; i < NC; i++)
        dup |= in_any(&F.core[i].t, o);
    FZ_CHECK(!dup, "object %p handed out while live in the model", o);
}

static void add(struct tab *t, void *o, size_t size, bool ctor)
{
    FZ_CHECK(((uintptr_t)o & 7) == 0, "object %p misaligned", o);
    no_duplicate(o);
    uint8_t f = ++F.next_fill;
    memset(o, f, body(size, ctor));
    t->obj[t->n] = o;
    t->size[t->n] = size;
    t->fill[t->n++] = f;
}

static void verify(const struct tab *t, int i, bool ctor)
{
    const uint8_t *b = t->obj[i];
    size_t n = body(t->size[i], ctor);
    for (size_t k = 0; k < n; k++)
        FZ_CHECK(b[k] == t->fill[i], "object %p byte %zu is %#x, expected %#x", (void *)b, k, b[k],
                 t->fill[i]);
    if (ctor) {
        uint64_t m;
        memcpy(&m, b + n, 8);
        FZ_CHECK(m == FZ_CTOR_MAGIC, "object %p lost its constructed state", (void *)b);
    }
}

/* Remove entry i (after verifying it); returns the object. */
static void *take(struct tab *t, int i, bool ctor)
{
    verify(t, i, ctor);
    void *o = t->obj[i];
    t->n--;
    t->obj[i] = t->obj[t->n];
    t->size[i] = t->size[t->n];
    t->fill[i] = t->fill[t->n];
    return o;
}

/* ---- core caches ---- */
static void check_stats(struct mcache *m)
{
    if (F.libc || !m->c)
        return;
    struct magpool_stats s;
    FZ_CHECK(magpool_cache_stats(m->c, &s) == 0, "stats failed");
    FZ_CHECK(s.in_use == (uint64_t)m->t.n, "%s: in_use %" PRIu64 " but the model holds %d", s.name,
             s.in_use, m->t.n);
    FZ_CHECK(conserved(m->c, NULL), "%s: conservation broken (terms on the line above)", s.name);
    FZ_CHECK(s.object_size == m->size, "object_size %zu != %zu", s.object_size, m->size);
}

static void core_got(struct mcache *m, void *o)
{
    if (!F.libc) {
        FZ_CHECK(magpool_cache_of(o) == m->c, "magpool_cache_of(%p) is not its cache", o);
        if (m->ctor) {
            uint64_t v;
            memcpy(&v, (char *)o + m->size - 8, 8);
            FZ_CHECK(v == FZ_CTOR_MAGIC, "fresh object %p not constructed", o);
        }
    }
    add(&m->t, o, m->size, m->ctor);
}

static void core_free_obj(struct mcache *m, void *o)
{
    if (F.libc)
        free(o);
    else
        magpool_free(m->c, o);
}

static void core_destroy(struct mcache *m)
{
    if (!m->c && !(F.libc && m->size))
        return;
    if (!F.libc) {
        long live = magpool_cache_destroy(m->c);
        FZ_CHECK(live == m->t.n, "destroy reported %ld live, the model holds %d", live, m->t.n);
    }
    while (m->t.n) /* safe after destroy: the memory goes back with the last */
        core_free_obj(m, take(&m->t, m->t.n - 1, m->ctor));
    memset(m, 0, sizeof *m);
}

static void op_core(uint8_t op)
{
    struct mcache *m = &F.core[next() % NC];
    uint8_t a = next();
    bool exists = F.libc ? m->size != 0 : m->c != NULL;
    if (op == 0) { /* create */
        if (exists)
            return;
        struct magpool_config cfg = {.name = "fuzz", .size = sizes[a & 7]};
        cfg.ctor = (a & 8) && cfg.size >= 16 ? fz_ctor : NULL;
        cfg.arg = (void *)(uintptr_t)cfg.size;
        if (a & 16) {
            cfg.mag_min = 1 + (a >> 5);
            cfg.mag_max = cfg.mag_min + (next() & 7);
        }
        if (!F.libc) {
            m->c = magpool_cache_create(&cfg);
            FZ_CHECK(m->c != NULL, "create size %zu failed: %s", cfg.size, strerror(errno));
        }
        m->size = cfg.size;
        m->ctor = !F.libc && cfg.ctor != NULL;
        return;
    }
    if (!exists)
        return;
    void *objs[8];
    switch (op) {
    case 1:
        core_destroy(m);
        break;
    case 2: /* alloc */
    case 3:
        if (m->t.n < NOBJ) {
            void *o = F.libc ? malloc(m->size) : magpool_alloc(m->c);
            FZ_CHECK(o != NULL, "alloc failed: %s", strerror(errno));
            core_got(m, o);
        }
        break;
    case 4: /* free */
    case 5:
        if (m->t.n)
            core_free_obj(m, take(&m->t, a % m->t.n, m->ctor));
        break;
    case 6: { /* bulk alloc */
        size_t k = 1 + (a & 7);
        if (F.libc || m->t.n + (int)k > NOBJ)
            break;
        FZ_CHECK(magpool_alloc_bulk(m->c, k, objs, (a & 8) ? MAGPOOL_ZERO : 0) == k, "bulk alloc");
        for (size_t i = 0; i < k; i++) {
            if (a & 8)
                for (size_t b = 0; b < m->size; b++)
                    FZ_CHECK(((uint8_t *)objs[i])[b] == 0, "MAGPOOL_ZERO object not zeroed");
            if ((a & 8) && m->ctor) /* zeroing wipes the ctor's word: restore our model's view */
                fz_ctor(objs[i], (void *)(uintptr_t)m->size);
            core_got(m, objs[i]);
        }
        break;
    }
    case 7: { /* bulk free */
        size_t k = 1 + (a & 7);
        if (F.libc || (size_t)m->t.n < k)
            break;
        for (size_t i = 0; i < k; i++)
            objs[i] = take(&m->t, m->t.n - 1, m->ctor);
        magpool_free_bulk(m->c, k, objs);
        break;
    }
    case 8: /* deferred free */
        if (m->t.n) {
            void *o = take(&m->t, a % m->t.n, m->ctor);
            if (F.libc)
                free(o);
            else
                magpool_free_deferred(m->c, o);
        }
        break;
    case 9:
        if (!F.libc)
            FZ_CHECK(magpool_cache_shrink(m->c) == 0, "shrink failed");
        break;
    case 10:
        check_stats(m);
        break;
    case 15: /* NOWAIT alloc: an object or NULL/EAGAIN */
        if (m->t.n < NOBJ && !F.libc) {
            errno = 0;
            void *o = magpool_alloc_flags(m->c, MAGPOOL_NOWAIT);
            FZ_CHECK(o || errno == EAGAIN || errno == ENOMEM, "NOWAIT NULL with errno %d", errno);
            if (o)
                core_got(m, o);
        }
        break;
    default:
        break;
    }
}

/* ---- mem_pool ---- */
static void op_mem_pool(void)
{
    uint8_t a = next();
    if (!F.mp) {
        F.mp_size = 1 + (a & 127) * 3;
        F.mp = mem_pool_new_fn(F.mp_size, 1 + (next() & 31), "fuzz-pool");
        FZ_CHECK(F.mp != NULL, "mem_pool_new failed: %s", strerror(errno));
        return;
    }
    switch (a & 3) {
    case 0:
    case 1:
        if (F.mpt.n < NOBJ) {
            void *o = (a & 1) ? mem_get0(F.mp) : mem_get(F.mp);
            FZ_CHECK(o != NULL, "mem_get failed");
            if (a & 1)
                for (size_t b = 0; b < F.mp_size; b++)
                    FZ_CHECK(((uint8_t *)o)[b] == 0, "mem_get0 not zeroed");
            FZ_CHECK(F.mp_size < 16 || ((uintptr_t)o & (_Alignof(max_align_t) - 1)) == 0,
                     "mem_get object %p not malloc-aligned", o);
            if (F.mp_size >= 8)
                add(&F.mpt, o, F.mp_size & ~(size_t)7, false);
            else
                mem_put(o);
        }
        break;
    case 2:
        if (F.mpt.n)
            mem_put(take(&F.mpt, a % F.mpt.n, false));
        break;
    case 3: /* destroy with objects out, then put them back: documented safe */
        mem_pool_destroy(F.mp);
        F.mp = NULL;
        while (F.mpt.n)
            mem_put(take(&F.mpt, F.mpt.n - 1, false));
        break;
    }
}

/* ---- kmem_cache ---- */
static void op_kmem(void)
{
    uint8_t a = next();
    if (!F.km) {
        F.km_size = sizes[a & 7];
        F.km = kmem_cache_create("fuzz-kmem", (unsigned)F.km_size, 0,
                                 (a & 8) ? SLAB_HWCACHE_ALIGN : 0, NULL);
        FZ_CHECK(F.km != NULL, "kmem_cache_create failed: %s", strerror(errno));
        return;
    }
    void *objs[8];
    switch (a & 7) {
    case 0:
    case 1:
        if (F.kmt.n < NOBJ) {
            void *o = (a & 1) ? kmem_cache_zalloc(F.km, GFP_KERNEL) : kmem_cache_alloc(F.km, GFP_KERNEL);
            FZ_CHECK(o != NULL, "kmem_cache_alloc failed");
            if (a & 1)
                for (size_t b = 0; b < F.km_size; b++)
                    FZ_CHECK(((uint8_t *)o)[b] == 0, "zalloc not zeroed");
            add(&F.kmt, o, F.km_size, false);
        }
        break;
    case 2:
    case 3:
        if (F.kmt.n)
            kmem_cache_free(F.km, take(&F.kmt, a % F.kmt.n, false));
        break;
    case 4: {
        size_t k = 1 + (a >> 5);
        if (F.kmt.n + (int)k > NOBJ)
            break;
        FZ_CHECK(kmem_cache_alloc_bulk(F.km, GFP_KERNEL, k, objs) == (int)k, "kmem bulk alloc");
        for (size_t i = 0; i < k; i++)
            add(&F.kmt, objs[i], F.km_size, false);
        break;
    }
    case 5: {
        size_t k = 1 + (a >> 5);
        if ((size_t)F.kmt.n < k)
            break;
        for (size_t i = 0; i < k; i++)
            objs[i] = take(&F.kmt, F.kmt.n - 1, false);
        kmem_cache_free_bulk(F.km, k, objs);
        break;
    }
    case 6:
        FZ_CHECK(kmem_cache_shrink(F.km) == 0, "kmem_cache_shrink");
        FZ_CHECK(kmem_cache_size(F.km) == F.km_size, "kmem_cache_size");
        break;
    case 7: /* destroy: only empty (a live destroy leaks the cache, as Linux) */
        while (F.kmt.n)
            kmem_cache_free(F.km, take(&F.kmt, F.kmt.n - 1, false));
        kmem_cache_destroy(F.km);
        F.km = NULL;
        break;
    }
}

/* ---- kmalloc ---- */
static void op_kmalloc(void)
{
    uint8_t a = next();
    size_t size = 8 + (((size_t)next() << 8 | next()) % 20000);
    struct tab *t = &F.kmalloc_t;
    switch (a & 3) {
    case 0:
    case 1:
        if (t->n < NOBJ) {
            void *o = F.libc ? malloc(size) : (a & 1) ? kzalloc(size, GFP_KERNEL) : kmalloc(size, GFP_KERNEL);
            FZ_CHECK(o != NULL, "kmalloc(%zu) failed", size);
            if (!F.libc) {
                FZ_CHECK(ksize(o) >= size, "ksize %zu < %zu", ksize(o), size);
                if ((size & (size - 1)) == 0 && size <= 4096)
                    FZ_CHECK(((uintptr_t)o & (size - 1)) == 0, "kmalloc(%zu) not naturally aligned", size);
            }
            add(t, o, size & ~(size_t)7, false);
        }
        break;
    case 2:
        if (t->n) {
            void *o = take(t, a % t->n, false);
            if (F.libc)
                free(o);
            else
                kfree(o);
        }
        break;
    case 3: /* krealloc keeps the old bytes */
        if (t->n && !F.libc) {
            int i = a % t->n;
            size_t keep = size < t->size[i] ? size & ~(size_t)7 : t->size[i];
            verify(t, i, false);
            void *o = krealloc(t->obj[i], size, GFP_KERNEL);
            FZ_CHECK(o != NULL, "krealloc failed");
            for (size_t b = 0; b < keep; b++)
                FZ_CHECK(((uint8_t *)o)[b] == t->fill[i], "krealloc lost byte %zu", b);
            /* the old entry goes (krealloc freed it unless o == old); o
             * comes back in with a new fill */
            t->n--;
            t->obj[i] = t->obj[t->n];
            t->size[i] = t->size[t->n];
            t->fill[i] = t->fill[t->n];
            add(t, o, size & ~(size_t)7, false);
        }
        break;
    }
}

/* Run one input; true if magpool agreed with the model all through it (the
 * libFuzzer build never returns false: it aborts). */
static bool run_input(const uint8_t *data, size_t len, bool libc)
{
#ifndef MAGPOOL_LIBFUZZER
    if (setjmp(fz_bail) != 0)
        return false; /* an FZ_CHECK failed; it printed the difference */
#endif
    memset(&F, 0, sizeof F);
    F.p = data;
    F.len = len;
    F.libc = libc;
    for (int steps = 0; F.pos < F.len && steps < 4096; steps++) {
        uint8_t op = next();
        switch (op % 20) {
        case 16:
            if (!libc)
                op_mem_pool();
            break;
        case 17:
            if (!libc)
                op_kmem();
            break;
        case 18:
            op_kmalloc();
            break;
        case 19:
            if (libc)
                break;
            switch (next() % 3) {
            case 0:
                magpool_thread_flush();
                break;
            case 1:
                magpool_synchronize(NULL);
                break;
            default:
                magpool_reap();
            }
            break;
        default:
            op_core(op % 20 < 16 ? op % 16 : 0);
        }
    }
    /* Everything back; each cache's books must balance. */
    for (int i = 0; i < NC; i++) {
        struct mcache *m = &F.core[i];
        if (m->c) {
            while (m->t.n)
                core_free_obj(m, take(&m->t, m->t.n - 1, m->ctor));
            check_stats(m);
        }
        core_destroy(m);
    }
    if (F.mp) {
        while (F.mpt.n)
            mem_put(take(&F.mpt, F.mpt.n - 1, false));
        mem_pool_destroy(F.mp);
    }
    if (F.km) {
        while (F.kmt.n)
            kmem_cache_free(F.km, take(&F.kmt, F.kmt.n - 1, false));
        kmem_cache_destroy(F.km);
    }
    while (F.kmalloc_t.n) {
        void *o = take(&F.kmalloc_t, F.kmalloc_t.n - 1, false);
        if (libc)
            free(o);
        else
            kfree(o);
    }
    /* A destroyed cache's memory goes back after a grace period: let it, so
     * LeakSanitizer (libFuzzer checks every input) sees a clean slate. */
    if (!libc)
        magpool_synchronize(NULL);
    return true;
}

#ifdef MAGPOOL_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_input(data, size, false);
    return 0;
}
#else
static int run_corpus(const char *dir, bool libc)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    static uint8_t buf[1 << 16];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (len == 0 && strstr(e->d_name, ".sh"))
            continue;
        fprintf(stderr, "fuzz_api: corpus %s\n", e->d_name);
        /* every step of the input, and the final teardown, agreed with the
         * model (the first difference is printed above) */
        CHECK_MSG(run_input(buf, len, libc), "corpus input %s disagreed with the model", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    const char *corpus = "stress/corpus/fuzz_api";
    char *args[64];
    int nargs = 0;
    for (int i = 0; i < argc && nargs < 63; i++) {
        if (strcmp(argv[i], "--corpus") == 0 && i + 1 < argc)
            corpus = argv[++i];
        else
            args[nargs++] = argv[i];
    }
    args[nargs] = NULL;
    struct st_opts o = {.threads = 1, .ops = 4000, .seed = 1};
    st_parse(nargs, args, &o, 1, 100000, NULL);
    st_banner("fuzz_api", &o);
    double t0 = st_now();
    int files = run_corpus(corpus, o.libc);
    CHECK_MSG(files > 0, "no corpus files in %s (--corpus DIR)", corpus);
    uint64_t rng = st_rng_seed(o.seed, 0), bytes = 0, ran = 0, agreed = 0;
    static uint8_t buf[2048];
    const char *dump = getenv("FUZZ_API_DUMP");
    for (uint64_t i = 0; i < o.ops; i++) {
        size_t len = 1 + st_below(&rng, sizeof buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)st_rand(&rng);
        if (dump) { /* FUZZ_API_DUMP=file: each random input, to reproduce a failure */
            FILE *f = fopen(dump, "wb");
            if (f) {
                fwrite(buf, 1, len, f);
                fclose(f);
            }
        }
        bytes += len;
        ran++;
        if (!run_input(buf, len, o.libc)) {
            fprintf(stderr, "fuzz_api: random input %" PRIu64 " (--seed %" PRIu64 ", %zu bytes) disagreed%s\n",
                    i, o.seed, len, dump ? "; it is in $FUZZ_API_DUMP" : "; FUZZ_API_DUMP=file saves it");
            break; /* the first failure ends the phase: the dump file keeps it */
        }
        agreed++;
    }
    /* every random input agreed with the model */
    CHECK_MSG(agreed == o.ops, "%" PRIu64 " of %" PRIu64 " random inputs agreed with the model, then one did not",
              agreed, o.ops);
    /* Let retired caches and magazines finish their grace periods. */
    magpool_synchronize(NULL);
    magpool_reap();
    printf("fuzz_api: %d corpus inputs, %" PRIu64 " random inputs (%" PRIu64 " bytes)\n", files, ran,
           bytes);
    return st_finish("fuzz_api", ran + (uint64_t)(files > 0 ? files : 0), st_now() - t0);
}
#endif
