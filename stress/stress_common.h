/*
 * Shared harness of the stress programs (the programs in stress/).
 *
 * What it gives every program, so each one reads as its workload only:
 *  - Arguments: --threads N, --ops N (total over all threads), --seconds S
 *    (run by time instead of by count), --seed N, --libc (run the same
 *    workload on malloc/free: a comparison, and a way to debug a harness
 *    without the engine), --long (the long-mode defaults), --quiet, plus
 *    program-specific `--name N` knobs declared in a table.
 *  - Scaling under sanitizers: defaults (never values given on the command
 *    line) are divided by 8 under ThreadSanitizer and by 4 under
 *    AddressSanitizer, which are that much slower.
 *  - A deterministic PRNG (splitmix64 to seed, xorshift64* to draw): a run
 *    is a function of its seed and the thread interleaving.
 *  - Cookies: every object carries (address, thread, pool, sequence) in its
 *    first words and a check word in its last, written at alloc and verified
 *    at free, so an object handed out twice, moved, or overwritten shows.
 *  - A live set keyed by address (one 64-bit word per entry: address | live
 *    bit, open addressing, insert by compare-and-swap, never deleted): set on
 *    alloc, cleared before free.  Finding the bit already set on alloc means
 *    the pool handed out an object that was still live.
 *  - A pool abstraction (st_pool): one fixed object size served by a core
 *    cache, a mem_pool, a kmem_cache, kmalloc, or (--libc) malloc.
 *  - Failure counting safe from any thread (tests/check.h's counters are
 *    plain ints: only the main thread may CHECK), reported by st_finish()
 *    through CHECK and check_done(): the last line is `N passed, N failed`.
 */
#ifndef MAGPOOL_STRESS_COMMON_H
#define MAGPOOL_STRESS_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "magpool/kmem_cache.h"
#include "magpool/magpool.h"
#include "magpool/mem_pool.h"
#include "tests/check.h"
#include "tests/conserve.h"

/* ---- sanitizer detection (same tests as src/base/sanitize.h) ---------------- */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ST_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define ST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(ST_ASAN)
#define ST_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(ST_TSAN)
#define ST_TSAN 1
#endif

#if defined(ST_TSAN)
#define ST_SCALE 8
#define ST_SANITIZER "tsan"
#elif defined(ST_ASAN)
#define ST_SCALE 4
#define ST_SANITIZER "asan"
#else
#define ST_SCALE 1
#define ST_SANITIZER "none"
#endif

#define ST_UNUSED __attribute__((unused))

/* Main-thread reads of counters after pthread_join, and flags set before
 * pthread_create or polled as plain stop signals: the join/create orders
 * the data, so these loads and stores are relaxed. */
#define ST_LOAD(p) atomic_load_explicit((p), memory_order_relaxed)
#define ST_STORE(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)

/* ---- failures from any thread ------------------------------------------- */
static _Atomic long st_failures;

/* Count a failure and print the first 20 of them.  Relaxed: a counter read
 * by the main thread after pthread_join, which orders it. */
static ST_UNUSED __attribute__((format(printf, 1, 2))) void st_fail(const char *fmt, ...)
{
    long n = atomic_fetch_add_explicit(&st_failures, 1, memory_order_relaxed);
    if (n >= 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "STRESS FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- options ------------------------------------------------------------ */
struct st_knob {
    const char *name;   /* "--name N" or "--name=N" */
    uint64_t *val;
    uint64_t long_val;  /* value with --long (0: unchanged) */
    const char *help;
    bool scale;         /* divide the default by ST_SCALE under sanitizers */
};

struct st_opts {
    unsigned threads;
    uint64_t ops;       /* total over all threads (0 with --seconds) */
    double seconds;     /* > 0: run by time */
    uint64_t seed;
    bool libc, long_mode, quiet;
};

static ST_UNUSED void st_usage(const char *prog, const struct st_opts *o, const struct st_knob *k)
{
    fprintf(stderr,
            "usage: %s [--threads N] [--ops N | --seconds S] [--seed N] [--libc] [--long] [--quiet]\n"
            "  defaults: --threads %u --ops %" PRIu64 " --seed %" PRIu64 " (sanitizer: %s)\n",
            prog, o->threads, o->ops, o->seed, ST_SANITIZER);
    for (; k && k->name; k++)
        fprintf(stderr, "  --%-12s %s (default %" PRIu64 ")\n", k->name, k->help, *k->val);
}

static ST_UNUSED int st_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end); /* accepts 1e9 */
    if (errno || end == s || *end || d < 0)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

/*
 * Parse argv into *o (holding the program's short-mode defaults on entry)
 * and the knobs.  long_threads / long_ops: the --long defaults.  Defaults not
 * given on the command line are scaled down under sanitizers.
 */
static ST_UNUSED void st_parse(int argc, char **argv, struct st_opts *o, unsigned long_threads,
                               uint64_t long_ops, struct st_knob *knobs)
{
    bool set_ops = false;
    bool set_knob[32] = {false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--long") == 0)
            o->long_mode = true;
    }
    if (o->long_mode) {
        o->threads = long_threads;
        o->ops = long_ops;
        for (struct st_knob *k = knobs; k && k->name; k++)
            if (k->long_val)
                *k->val = k->long_val;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            goto bad;
        a += 2;
        char name[64];
        const char *val = strchr(a, '=');
        size_t nl = val ? (size_t)(val - a) : strlen(a);
        if (nl >= sizeof name)
            goto bad;
        memcpy(name, a, nl);
        name[nl] = 0;
        if (val)
            val++;
        if (!strcmp(name, "long") || !strcmp(name, "libc") || !strcmp(name, "quiet")) {
            if (!strcmp(name, "libc"))
                o->libc = true;
            if (!strcmp(name, "quiet"))
                o->quiet = true;
            continue;
        }
        if (!strcmp(name, "help"))
            goto bad;
        if (!val) {
            if (i + 1 >= argc)
                goto bad;
            val = argv[++i];
        }
        uint64_t v;
        if (!strcmp(name, "seconds")) {
            char *end;
            o->seconds = strtod(val, &end);
            if (*end || o->seconds <= 0)
                goto bad;
            continue;
        }
        if (st_parse_u64(val, &v) != 0)
            goto bad;
        if (!strcmp(name, "threads")) {
            if (v < 1 || v > 1024)
                goto bad;
            o->threads = (unsigned)v;
        } else if (!strcmp(name, "ops")) {
            o->ops = v;
            set_ops = true;
        } else if (!strcmp(name, "seed")) {
            o->seed = v;
        } else {
            int j = 0;
            struct st_knob *k = knobs;
            for (; k && k->name; k++, j++)
                if (!strcmp(k->name, name))
                    break;
            if (!k || !k->name)
                goto bad;
            *k->val = v;
            if (j < 32)
                set_knob[j] = true;
        }
    }
    if (!set_ops && o->seconds <= 0)
        o->ops = o->ops / ST_SCALE ? o->ops / ST_SCALE : 1;
    int j = 0;
    for (struct st_knob *k = knobs; k && k->name; k++, j++)
        if (k->scale && !(j < 32 && set_knob[j]))
            *k->val = *k->val / ST_SCALE ? *k->val / ST_SCALE : 1;
    return;
bad:
    st_usage(argv[0], o, knobs);
    exit(2);
}

static ST_UNUSED double st_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Per-thread budget: by count (ops split over threads) or by time. */
struct st_budget {
    uint64_t ops;      /* this thread's operation count so far */
    uint64_t limit;    /* 0 with a deadline */
    double deadline;
    unsigned tick;     /* calls since the clock was last read */
};

static ST_UNUSED void st_budget_init(struct st_budget *b, const struct st_opts *o, unsigned nthreads)
{
    b->ops = 0;
    b->limit = o->seconds > 0 ? 0 : (o->ops + nthreads - 1) / nthreads;
    b->deadline = o->seconds > 0 ? st_now() + o->seconds : 0;
    b->tick = 0;
}

static inline bool st_more(struct st_budget *b)
{
    if (b->limit)
        return b->ops < b->limit;
    if (b->deadline == 0)
        return false;
    if (++b->tick < 256)
        return true;
    b->tick = 0;
    if (st_now() < b->deadline)
        return true;
    b->deadline = 0; /* expired: stay expired */
    return false;
}

/* ---- PRNG --------------------------------------------------------------- */
static inline uint64_t st_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* State for thread `stream` of a run seeded with seed (never 0). */
static inline uint64_t st_rng_seed(uint64_t seed, uint64_t stream)
{
    uint64_t s = seed * 0x2545f4914f6cdd1dull + stream;
    uint64_t r = st_splitmix(&s);
    return r ? r : 1;
}

static inline uint64_t st_rand(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n) (n > 0), without division bias that matters here. */
static inline uint64_t st_below(uint64_t *x, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)st_rand(x) * n) >> 64);
}

static inline uint64_t st_mix(uint64_t z)
{
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return z ^ (z >> 33);
}

/* ---- cookies ------------------------------------------------------------ */
/*
 * Layout (objects are >= 16 bytes and 8-aligned):
 *   word 0: address ^ ST_MAGIC
 *   word 1: thread (12 bits) | pool (8 bits) | sequence (44 bits)
 *   word 2 (size >= 24): st_mix(word0 ^ word1)
 *   last word (size >= 32, unless the pool's ctor owns it): ~st_mix(word1)
 * A ctor pool keeps ST_CTOR_MAGIC in its last word: constructed state the
 * workload never touches, checked at every alloc.
 */
#define ST_MAGIC 0x6d61677000c0ffeeull
#define ST_DEAD 0xdeadbeefdeadbeefull
#define ST_CTOR_MAGIC 0xc7012345c7012345ull

static inline uint64_t st_cookie_w1(unsigned tid, unsigned pool, uint64_t seq)
{
    return ((uint64_t)(tid & 0xfff) << 52) | ((uint64_t)(pool & 0xff) << 44) |
           (seq & ((1ull << 44) - 1));
}

static inline void st_cookie_write(void *obj, size_t size, bool ctor_tail, unsigned tid,
                                   unsigned pool, uint64_t seq)
{
    uint64_t *w = obj;
    size_t n = size / 8;
    w[0] = (uint64_t)(uintptr_t)obj ^ ST_MAGIC;
    w[1] = st_cookie_w1(tid, pool, seq);
    if (n >= 3)
        w[2] = st_mix(w[0] ^ w[1]);
    if (n >= 4 && !ctor_tail)
        w[n - 1] = ~st_mix(w[1]);
}

/* Pool index recorded in obj's cookie (only meaningful once verified). */
static inline unsigned st_cookie_pool(const void *obj)
{
    return (unsigned)((((const uint64_t *)obj)[1] >> 44) & 0xff);
}

/* 0 when obj carries a consistent cookie; else a short reason. */
static inline const char *st_cookie_check(const void *obj, size_t size, bool ctor_tail)
{
    const uint64_t *w = obj;
    size_t n = size / 8;
    if (w[0] != ((uint64_t)(uintptr_t)obj ^ ST_MAGIC))
        return w[0] == ((uint64_t)(uintptr_t)obj ^ ST_DEAD) ? "cookie of a freed object"
                                                             : "address word damaged";
    if (n >= 3 && w[2] != st_mix(w[0] ^ w[1]))
        return "check word damaged";
    if (n >= 4 && !ctor_tail && w[n - 1] != ~st_mix(w[1]))
        return "tail word damaged";
    if (ctor_tail && w[n - 1] != ST_CTOR_MAGIC)
        return "constructed state lost";
    return NULL;
}

/* Mark a verified object as freed (catches a second owner verifying it). */
static inline void st_cookie_kill(void *obj)
{
    ((uint64_t *)obj)[0] = (uint64_t)(uintptr_t)obj ^ ST_DEAD;
}

/* ---- live set ----------------------------------------------------------- */
/*
 * Entries are address | 1 (live) or address (was live once), 0 = empty.
 * Keys are never removed, so a probe sequence never breaks; the table holds
 * every distinct address ever allocated, which the pools bound by their
 * footprint.  Sized at start; a full table is reported as a harness failure.
 */
static _Atomic uint64_t *st_live_tab;
static uint64_t st_live_mask;
static _Atomic long st_live_count; /* currently live (sum of +1/-1) */
static _Atomic long st_live_dups;  /* objects handed out while still live */

static ST_UNUSED void st_live_init(unsigned log2_entries)
{
    size_t n = (size_t)1 << log2_entries;
    void *p = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        perror("st_live_init mmap");
        exit(2);
    }
    st_live_tab = p;
    st_live_mask = n - 1;
}

static ST_UNUSED void st_live_fini(void)
{
    if (st_live_tab)
        munmap((void *)st_live_tab, (st_live_mask + 1) * 8);
    st_live_tab = NULL;
}

/* Bytes of the live table that are resident (to keep RSS checks about the
 * pool, not the harness). */
static ST_UNUSED size_t st_live_resident(void)
{
    if (!st_live_tab)
        return 0;
    size_t len = (st_live_mask + 1) * 8, pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t npages = (len + pg - 1) / pg, n = 0;
    unsigned char *vec = malloc(npages);
    if (vec && mincore((void *)st_live_tab, len, vec) == 0)
        for (size_t i = 0; i < npages; i++)
            n += vec[i] & 1;
    free(vec);
    return n * pg;
}

/* Relaxed throughout: the bit itself is the whole protocol (a CAS on one
 * word is atomic whatever the order); the object's contents travel with the
 * pool's own ordering and the slot exchanges, not through this table. */
static ST_UNUSED void st_live_set(const void *obj)
{
    if (!st_live_tab)
        return;
    uint64_t a = (uint64_t)(uintptr_t)obj;
    uint64_t i = st_mix(a) & st_live_mask;
    for (uint64_t probes = 0; probes <= st_live_mask; probes++, i = (i + 1) & st_live_mask) {
        uint64_t e = atomic_load_explicit(&st_live_tab[i], memory_order_relaxed);
        for (;;) {
            if (e == 0) {
                if (atomic_compare_exchange_weak_explicit(&st_live_tab[i], &e, a | 1,
                                                          memory_order_relaxed,
                                                          memory_order_relaxed))
                    goto done;
                continue; /* e reloaded */
            }
            if ((e & ~1ull) != a)
                break; /* another key: probe on */
            if (e & 1) {
                atomic_fetch_add_explicit(&st_live_dups, 1, memory_order_relaxed);
                st_fail("object %p handed out while still live", obj);
                return;
            }
            if (atomic_compare_exchange_weak_explicit(&st_live_tab[i], &e, a | 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                goto done;
        }
    }
    st_fail("live table full (harness limit)");
    return;
done:
    atomic_fetch_add_explicit(&st_live_count, 1, memory_order_relaxed);
}

static ST_UNUSED void st_live_clear(const void *obj)
{
    if (!st_live_tab)
        return;
    uint64_t a = (uint64_t)(uintptr_t)obj;
    uint64_t i = st_mix(a) & st_live_mask;
    for (uint64_t probes = 0; probes <= st_live_mask; probes++, i = (i + 1) & st_live_mask) {
        uint64_t e = atomic_load_explicit(&st_live_tab[i], memory_order_relaxed);
        if (e == 0)
            break;
        if ((e & ~1ull) != a)
            continue;
        e = atomic_exchange_explicit(&st_live_tab[i], a, memory_order_relaxed);
        if (!(e & 1))
            st_fail("object %p freed while not live", obj);
        else
            atomic_fetch_sub_explicit(&st_live_count, 1, memory_order_relaxed);
        return;
    }
    st_fail("object %p freed but never allocated", obj);
}

/* ---- pools -------------------------------------------------------------- */
enum st_kind { ST_CORE, ST_MEMPOOL, ST_KMEM, ST_KMALLOC, ST_LIBC };
static const char *const st_kind_name[] = {"core", "mem_pool", "kmem_cache", "kmalloc", "libc"};

struct st_pool {
    enum st_kind kind;   /* ST_LIBC when running --libc, whatever was asked */
    size_t size;
    bool ctor;           /* objects keep ST_CTOR_MAGIC in their last word */
    char name[48];
    magpool_cache_t *core;
    struct mem_pool *mp;
    struct kmem_cache *km;
};

static ST_UNUSED void st_ctor_core(void *obj, void *arg)
{
    size_t size = (size_t)(uintptr_t)arg;
    ((uint64_t *)obj)[size / 8 - 1] = ST_CTOR_MAGIC;
}

/* kmem_cache ctors take no argument: one per size used with a ctor. */
#define ST_KMEM_CTOR(sz)                                                      \
    static ST_UNUSED void st_kctor_##sz(void *obj)                            \
    {                                                                         \
        ((uint64_t *)obj)[(sz) / 8 - 1] = ST_CTOR_MAGIC;                      \
    }

/*
 * Set up a pool.  cfg (may be NULL) supplies extra core-cache settings
 * (mag_min/mag_max, flags) for ST_CORE.  kmem ctor: kctor (NULL = none).
 * Returns 0, or -1 (creation failed: errno).
 */
static ST_UNUSED int st_pool_init(struct st_pool *p, enum st_kind kind, size_t size, bool libc,
                                  const struct magpool_config *cfg, void (*kctor)(void *),
                                  const char *fmt, ...)
{
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->kind = libc ? ST_LIBC : kind;
    p->size = size;
    switch (p->kind) {
    case ST_CORE: {
        struct magpool_config c = {0};
        if (cfg)
            c = *cfg;
        c.name = p->name;
        c.size = size;
        if (c.ctor == st_ctor_core)
            c.arg = (void *)(uintptr_t)size;
        p->ctor = c.ctor == st_ctor_core;
        p->core = magpool_cache_create(&c);
        return p->core ? 0 : -1;
    }
    case ST_MEMPOOL:
        p->mp = mem_pool_new_fn(size, 64, p->name);
        return p->mp ? 0 : -1;
    case ST_KMEM:
        p->ctor = kctor != NULL;
        p->km = kmem_cache_create(p->name, (unsigned)size, 0, cfg ? cfg->flags : 0, kctor);
        return p->km ? 0 : -1;
    case ST_KMALLOC:
    case ST_LIBC:
        if (libc && ((cfg && cfg->ctor == st_ctor_core) || kctor))
            p->ctor = true; /* emulated: st_alloc of a fresh malloc block runs it */
        return 0;
    }
    return -1;
}

static inline void *st_alloc(struct st_pool *p)
{
    void *o = NULL;
    switch (p->kind) {
    case ST_CORE:
        o = magpool_alloc(p->core);
        break;
    case ST_MEMPOOL:
        o = mem_get(p->mp);
        break;
    case ST_KMEM:
        o = kmem_cache_alloc(p->km, GFP_KERNEL);
        break;
    case ST_KMALLOC:
        o = kmalloc(p->size, GFP_KERNEL);
        break;
    case ST_LIBC:
        o = malloc(p->size);
        if (o && p->ctor)
            ((uint64_t *)o)[p->size / 8 - 1] = ST_CTOR_MAGIC;
        break;
    }
    return o;
}

static inline void st_free(struct st_pool *p, void *o)
{
    switch (p->kind) {
    case ST_CORE:
        magpool_free(p->core, o);
        break;
    case ST_MEMPOOL:
        mem_put(o);
        break;
    case ST_KMEM:
        kmem_cache_free(p->km, o);
        break;
    case ST_KMALLOC:
        kfree(o);
        break;
    case ST_LIBC:
        free(o);
        break;
    }
}

static ST_UNUSED void st_pool_fini(struct st_pool *p)
{
    switch (p->kind) {
    case ST_CORE: {
        long live = magpool_cache_destroy(p->core);
        if (live != 0)
            st_fail("%s: destroy reports %ld live objects", p->name, live);
        break;
    }
    case ST_MEMPOOL:
        mem_pool_destroy(p->mp);
        break;
    case ST_KMEM:
        kmem_cache_destroy(p->km);
        break;
    default:
        break;
    }
    p->core = NULL;
    p->mp = NULL;
    p->km = NULL;
}

/* Alloc from p, verify constructed state, mark live, write the cookie. */
static inline void *st_get(struct st_pool *p, unsigned pool_idx, unsigned tid, uint64_t seq)
{
    void *o = st_alloc(p);
    if (!o)
        return NULL;
    if (((uintptr_t)o & 7) != 0) {
        st_fail("%s: misaligned object %p", p->name, o);
        return o;
    }
    if (p->ctor && ((uint64_t *)o)[p->size / 8 - 1] != ST_CTOR_MAGIC)
        st_fail("%s: object %p not in constructed state at alloc", p->name, o);
    st_live_set(o);
    st_cookie_write(o, p->size, p->ctor, tid, pool_idx, seq);
    return o;
}

/* Verify the cookie, kill it, clear live, free. */
static inline void st_put(struct st_pool *p, void *o)
{
    const char *why = st_cookie_check(o, p->size, p->ctor);
    if (why)
        st_fail("%s: object %p: %s", p->name, o, why);
    st_cookie_kill(o);
    st_live_clear(o);
    st_free(p, o);
}

/* ---- statistics --------------------------------------------------------- */
/* Check the conservation equation of c at quiescence, and in_use == want_in_use
 * (negative: not checked).  Main thread only (uses CHECK). */
static ST_UNUSED int st_check_conservation(magpool_cache_t *c, long want_in_use, bool verbose)
{
    struct magpool_stats s;
    int r = magpool_cache_stats(c, &s);
    CHECK_MSG(r == 0, "magpool_cache_stats failed (%d)", errno);
    if (r != 0)
        return -1;
    /* conserved() takes its own snapshot; it prints every term on a mismatch. */
    CHECK_MSG(conserved(c, &s), "%s: conservation equation broken", s.name);
    if (want_in_use >= 0)
        CHECK_MSG(s.in_use == (uint64_t)want_in_use, "%s: in_use %" PRIu64 " != %ld", s.name,
                  s.in_use, want_in_use);
    if (verbose)
        printf("  %-22s constructed %8" PRIu64 " in_use %6" PRIu64 " mags %6" PRIu64
               " depot %6" PRIu64 " slabs %8" PRIu64 " deferred %4" PRIu64 " | allocs %10" PRIu64
               " depot x %8" PRIu64 "/%-8" PRIu64 " contention %6" PRIu64 " mag %3u (resized %" PRIu64
               ") reaps %" PRIu64 "\n",
               s.name, s.constructed, s.in_use, s.in_magazines, s.in_depot, s.in_slabs, s.deferred,
               s.allocs, s.depot_allocs, s.depot_frees, s.depot_contention, s.mag_size,
               s.mag_resizes, s.reaps);
    return 0;
}

struct st_cons_arg {
    bool verbose;
    long want_in_use;
};

static ST_UNUSED int st_cons_each(magpool_cache_t *c, void *arg)
{
    struct st_cons_arg *a = arg;
    st_check_conservation(c, a->want_in_use, a->verbose);
    return 0;
}

/* Conservation (and in_use == want, if >= 0) for every live core cache,
 * front ends' included. */
static ST_UNUSED void st_check_all_caches(long want_in_use, bool verbose)
{
    struct st_cons_arg a = {verbose, want_in_use};
    magpool_cache_foreach(st_cons_each, &a);
}

/* ---- threads, RSS, reporting -------------------------------------------- */
/* Start n threads on fn (args[i] = base + i * stride), small stacks, join all. */
static ST_UNUSED void st_run_threads(unsigned n, void *(*fn)(void *), void *base, size_t stride)
{
    pthread_t *t = calloc(n, sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (unsigned i = 0; i < n; i++)
        if (pthread_create(&t[i], &attr, fn, (char *)base + i * stride) != 0) {
            perror("pthread_create");
            exit(2);
        }
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_attr_destroy(&attr);
    free(t);
}

static ST_UNUSED void st_banner(const char *prog, const struct st_opts *o)
{
    printf("%s: %s, %u threads, %s%" PRIu64 "%s, seed %" PRIu64 ", %s mode, sanitizer %s\n", prog,
           o->libc ? "libc malloc" : "magpool", o->threads, o->seconds > 0 ? "" : "ops ",
           o->seconds > 0 ? (uint64_t)o->seconds : o->ops, o->seconds > 0 ? " s" : "", o->seed,
           o->long_mode ? "long" : "short", ST_SANITIZER);
    fflush(stdout);
}

/* Fold the thread-side failures into CHECK and print the summary line. */
static ST_UNUSED int st_finish(const char *prog, uint64_t ops, double secs)
{
    long f = atomic_load_explicit(&st_failures, memory_order_relaxed);
    CHECK_MSG(f == 0, "%ld failures in worker threads (first ones above)", f);
    printf("%s: %" PRIu64 " operations in %.2f s (%.2f Mops/s)\n", prog, ops, secs,
           secs > 0 ? (double)ops / secs / 1e6 : 0.0);
    return check_done();
}
#endif /* MAGPOOL_STRESS_COMMON_H */
