/*
 * idle.c — the "idle" memory workload (issue 15, item 6): what a pool or an
 * allocator keeps resident for threads that are alive but asleep, with no
 * live object at all.
 *
 * One measurement, in one process:
 *   1. rss_start: the process before any benchmark thread exists.
 *   2. T threads start (small stacks, 64 KiB by default, each touched whole
 *      so stacks weigh the same for every contender) and block on a
 *      condition variable.  rss_base: the baseline, before the first cache.
 *   3. C caches are created (rss_created).  Every thread then runs its burst:
 *      for each cache in turn, allocate B objects (each written whole), then
 *      free them all again, in reverse order, from the same thread; then it
 *      blocks on the condition variable again, alive and idle.  rss_burst.
 *   4. mode "shrink": the main thread shrinks every cache (rss_shrink1),
 *      waits --gap-ms (1 s) and shrinks every cache again (rss_held).
 *      mode "reap": no explicit shrink; the main thread sleeps --reap-wait-ms
 *      (by default 250 ms: magpool's periodic reap runs at most every
 *      MP_REAP_MS = 100 ms per cache, src/cache/reap.c, and tears down what
 *      went unused through one whole interval, so two intervals plus slack);
 *      rss_held.
 *   5. Every cache is destroyed (rss_destroy), the threads are told to exit
 *      and joined, their burst arrays unmapped (rss_exit); then one more
 *      shrink with no thread left (magpool: magpool_synchronize(NULL), where
 *      destroyed caches and retired magazines wait, then magpool_reap; the
 *      peers: their shrink): rss_exit_shrink.
 * Output: one CSV line per measurement (header first, unless --no-header),
 * sizes in bytes; held and after_destroy are relative to rss_base,
 * after_exit_vs_start and after_exit_shrink_vs_start to rss_start (glibc returns most of an exited
 * thread's stack with MADV_DONTNEED and keeps the rest, about 16 KiB plus
 * its TLS, in its stack cache: the same for every contender).
 *
 * Contenders: magpool's core API (magpool_cache_create, magpool_alloc /
 * magpool_free; shrink: magpool_cache_shrink of every cache, then
 * magpool_reap), its kmem_cache front end (kmem_cache_shrink of every cache),
 * and the malloc peers with one size class, malloc(size), standing in for
 * every "cache" (not identical work: their C caches are one size class),
 * each with its own shrink (see contenders[] below, and the "shrink" column).
 *
 * Several values of --threads/--caches/--mode/--contender (or --quick /
 * --full) make a sweep: this process then runs every measurement as a fresh
 * process (fork + exec of itself), so no measurement inherits another's heap.
 *
 * RSS: /proc/self/smaps_rollup's Rss (walks the page tables: exact with
 * hundreds of threads, where statm's per-thread counters may lag), statm as
 * a fallback.
 *
 * As in bench.c, every allocator is called through its own prefixed entry
 * points and plain malloc must stay glibc's (checked at start; see
 * bench/README.md, "One process, many allocators").
 */
#include <alloca.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gperftools/malloc_extension_c.h>
#include <gperftools/tcmalloc.h>
#include <jemalloc/jemalloc.h>
#include <mimalloc.h>

#ifndef IDLE_NO_MAGPOOL
#include <magpool/kmem_cache.h>
#include <magpool/magpool.h>
#endif

#include "rss.h"

#define MIB (1024.0 * 1024.0)
#define MAX_LIST 32

/* ---- options ------------------------------------------------------------- */
static struct {
    unsigned threads[MAX_LIST], nthreads;
    unsigned caches[MAX_LIST], ncaches;
    const char *modes[4];
    unsigned nmodes;
    const char *cts[16];
    unsigned ncts;
    unsigned burst;
    size_t size;
    unsigned gap_ms;
    unsigned reap_wait_ms;
    unsigned stack_kib;
    unsigned max_rss_mib; /* 0: 3/4 of MemAvailable */
    bool busy_main;
    bool no_header;
    bool reap_c32_only; /* --quick: the reap mode only at the largest C */
    const char *table;
} opt = {
    .burst = 2000,
    .size = 64,
    .gap_ms = 1000,
    .reap_wait_ms = 250,
    .stack_kib = 64,
};

/* ---- RSS ----------------------------------------------------------------- */
static long long rss_statm(void)
{
    return (long long)bench_statm_rss();
}

/* Read with plain read(2) into a stack buffer: no malloc (stdio would
 * allocate a buffer with glibc's malloc in the middle of the measurement). */
static long long rss_bytes(void)
{
    char buf[4096];
    int fd = open("/proc/self/smaps_rollup", O_RDONLY);
    if (fd < 0)
        return rss_statm();
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return rss_statm();
    buf[n] = '\0';
    const char *p = strstr(buf, "\nRss:");
    if (!p)
        return rss_statm();
    return strtoll(p + 5, NULL, 10) * 1024;
}

static long long mem_available(void)
{
    char line[256];
    long long kb = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- contenders ---------------------------------------------------------- */
struct contender {
    const char *name;
    const char *shrink_how; /* "none" when it has no shrink */
    int (*init)(void);      /* may be NULL; non-zero: unavailable */
    void *(*create)(unsigned i, size_t size);
    void *(*alloc)(void *cache);
    void (*free)(void *cache, void *p);
    void (*shrink_cache)(void *cache); /* per cache, may be NULL */
    void (*shrink_all)(void);          /* once per shrink round, may be NULL */
    void (*destroy)(void *cache);      /* NULL: nothing to destroy */
    bool is_magpool;
};

static size_t obj_size;

/* malloc peers: one size class, a dummy handle per "cache" */
static void *peer_create(unsigned i, size_t size)
{
    (void)size;
    return (void *)(uintptr_t)(i + 1);
}

static void *glibc_alloc(void *c)
{
    (void)c;
    return malloc(obj_size);
}
static void glibc_free(void *c, void *p)
{
    (void)c;
    free(p);
}
static void glibc_shrink(void)
{
    malloc_trim(0);
}

/* jemalloc's malloc must not become the process's: take it from the
 * library's own symbol table, as bench/peers.c does. */
static void *(*jem_malloc)(size_t);
static int jemalloc_init(void)
{
    void *h = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
    jem_malloc = h ? (void *(*)(size_t))dlsym(h, "malloc") : NULL;
    if (jem_malloc == malloc)
        jem_malloc = NULL;
    return jem_malloc ? 0 : -1;
}
static void *jemalloc_alloc(void *c)
{
    (void)c;
    return jem_malloc(obj_size);
}
static void jemalloc_free(void *c, void *p)
{
    (void)c;
    sdallocx(p, obj_size, 0);
}
static void jemalloc_shrink(void)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
    mallctl(cmd, NULL, NULL, NULL, 0);
}

static void *tcmalloc_alloc(void *c)
{
    (void)c;
    return tc_malloc(obj_size);
}
static void tcmalloc_free(void *c, void *p)
{
    (void)c;
    tc_free_sized(p, obj_size);
}
static void tcmalloc_shrink(void)
{
    MallocExtension_ReleaseFreeMemory();
}

static void *mimalloc_alloc(void *c)
{
    (void)c;
    return obj_size <= MI_SMALL_SIZE_MAX ? mi_malloc_small(obj_size) : mi_malloc(obj_size);
}
static void mimalloc_free(void *c, void *p)
{
    (void)c;
    mi_free(p);
}
static void mimalloc_shrink(void)
{
    mi_collect(true);
}

#ifndef IDLE_NO_MAGPOOL
static void *magpool_create_(unsigned i, size_t size)
{
    char name[32];
    snprintf(name, sizeof(name), "idle-%u", i);
    struct magpool_config cfg = { .name = name, .size = size };
    return magpool_cache_create(&cfg);
}
static void *magpool_alloc_(void *c)
{
    return magpool_alloc(c); /* the inline hit of magpool.h */
}
static void magpool_free_(void *c, void *p)
{
    magpool_free(c, p);
}
static void magpool_shrink_(void *c)
{
    magpool_cache_shrink(c);
}
static void magpool_destroy_(void *c)
{
    long live = magpool_cache_destroy(c);
    if (live != 0)
        fprintf(stderr, "idle: magpool: %ld objects live at destroy\n", live);
}

static void *kmem_create_(unsigned i, size_t size)
{
    char name[32];
    snprintf(name, sizeof(name), "idle-%u", i);
    return kmem_cache_create(name, (unsigned)size, 0, 0, NULL);
}
static void *kmem_alloc_(void *c)
{
    return kmem_cache_alloc(c, GFP_KERNEL);
}
static void kmem_free_(void *c, void *p)
{
    kmem_cache_free(c, p);
}
static void kmem_shrink_(void *c)
{
    kmem_cache_shrink(c);
}
static void kmem_destroy_(void *c)
{
    kmem_cache_destroy(c);
}
#endif

static const struct contender contenders[] = {
#ifndef IDLE_NO_MAGPOOL
    { "magpool", "magpool_cache_shrink(every cache) + magpool_reap()", NULL, magpool_create_,
      magpool_alloc_, magpool_free_, magpool_shrink_, magpool_reap, magpool_destroy_, true },
    { "magpool-kmem_cache", "kmem_cache_shrink(every cache)", NULL, kmem_create_, kmem_alloc_,
      kmem_free_, kmem_shrink_, NULL, kmem_destroy_, true },
#endif
    { "glibc", "malloc_trim(0)", NULL, peer_create, glibc_alloc, glibc_free, NULL, glibc_shrink,
      NULL, false },
    { "jemalloc",
      "mallctl arena.<MALLCTL_ARENAS_ALL>.purge (idle threads' tcaches unreachable: "
      "thread.tcache.flush acts on the calling thread only)",
      jemalloc_init, peer_create, jemalloc_alloc, jemalloc_free, NULL, jemalloc_shrink, NULL,
      false },
    { "tcmalloc",
      "MallocExtension_ReleaseFreeMemory() (page heap only; idle threads' caches unreachable: "
      "MarkThreadIdle acts on the calling thread only)",
      NULL, peer_create, tcmalloc_alloc, tcmalloc_free, NULL, tcmalloc_shrink, NULL, false },
    { "mimalloc",
      "mi_collect(true) (the calling thread's heap and the shared segments; idle threads' heaps "
      "unreachable)",
      NULL, peer_create, mimalloc_alloc, mimalloc_free, NULL, mimalloc_shrink, NULL, false },
};
#define NCT (sizeof(contenders) / sizeof(contenders[0]))

static const struct contender *find_ct(const char *name)
{
    for (size_t i = 0; i < NCT; i++)
        if (!strcmp(contenders[i].name, name))
            return &contenders[i];
    if (!strcmp(name, "kmem") || !strcmp(name, "kmem_cache"))
        return find_ct("magpool-kmem_cache");
    return NULL;
}

static bool has_shrink(const struct contender *ct)
{
    return ct->shrink_cache || ct->shrink_all;
}

/* ---- one measurement --------------------------------------------------- */
enum phase { PH_PARK, PH_BURST, PH_EXIT };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* workers wait on it */
    pthread_cond_t done_cv; /* the main thread waits on it */
    enum phase phase;
    unsigned parked, finished;
    const struct contender *ct;
    void **caches;
    unsigned ncaches, burst;
    atomic_int abort_burst; /* RSS over the limit: remaining caches skipped */
    atomic_ulong alloc_failures;
} W = { .mu = PTHREAD_MUTEX_INITIALIZER,
        .cv = PTHREAD_COND_INITIALIZER,
        .done_cv = PTHREAD_COND_INITIALIZER };

struct worker {
    pthread_t th;
    void **v; /* the burst's pointers: mmap'd, populated before the baseline */
};

static size_t stack_touch;

static __attribute__((noinline)) void touch_stack(size_t n)
{
    char *p = alloca(n);
    memset(p, 0x5a, n);
    __asm__ volatile("" : : "r"(p) : "memory");
}

static void wait_phase_change(enum phase from)
{
    while (W.phase == from)
        pthread_cond_wait(&W.cv, &W.mu);
}

static void burst(void **v, void *cache)
{
    const struct contender *ct = W.ct;
    unsigned b = W.burst;
    for (unsigned i = 0; i < b; i++) {
        void *p = ct->alloc(cache);
        if (!p) {
            atomic_fetch_add(&W.alloc_failures, 1);
            b = i;
            break;
        }
        memset(p, (int)i, obj_size);
        v[i] = p;
    }
    while (b-- > 0)
        ct->free(cache, v[b]);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (stack_touch)
        touch_stack(stack_touch);
    pthread_mutex_lock(&W.mu);
    W.parked++;
    pthread_cond_signal(&W.done_cv);
    wait_phase_change(PH_PARK);
    enum phase ph = W.phase;
    pthread_mutex_unlock(&W.mu);
    if (ph == PH_EXIT)
        return NULL;
    for (unsigned c = 0; c < W.ncaches && !atomic_load(&W.abort_burst); c++)
        burst(w->v, W.caches[c]);
    pthread_mutex_lock(&W.mu);
    W.finished++;
    pthread_cond_signal(&W.done_cv);
    wait_phase_change(PH_BURST); /* idle: blocked, alive */
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

static void set_phase(enum phase ph)
{
    pthread_mutex_lock(&W.mu);
    W.phase = ph;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

struct result {
    char mode[16], contender[32], status[48];
    unsigned threads, caches, burst, stack_kib, wait_ms;
    size_t size;
    long long rss_start, rss_base, rss_created, rss_burst, rss_shrink1, rss_held, rss_destroy,
        rss_exit, rss_exit_shrink;
    double burst_ms;
    long long mp_in_magazines, mp_in_depot, mp_slab_bytes; /* -1: not magpool */
    char shrink[256];
};

#ifndef IDLE_NO_MAGPOOL
struct mp_sum {
    long long mags, depot, bytes;
};
static int mp_sum_fn(magpool_cache_t *c, void *arg)
{
    struct mp_sum *s = arg;
    struct magpool_stats st;
    if (magpool_cache_stats(c, &st) == 0 && !strncmp(st.name, "idle-", 5)) {
        s->mags += (long long)st.in_magazines;
        s->depot += (long long)st.in_depot;
        s->bytes += (long long)st.bytes;
    }
    return 0;
}
#endif

static void shrink_round(const struct contender *ct)
{
    if (ct->shrink_cache)
        for (unsigned c = 0; c < W.ncaches; c++)
            ct->shrink_cache(W.caches[c]);
    if (ct->shrink_all)
        ct->shrink_all();
}

/* The main thread as the one busy thread of a server: every 10 ms a burst in
 * every cache (drives the slow paths on which a contender without a reaper
 * thread runs its periodic reap). */
static void busy_wait(unsigned ms, void **v)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    while (now_ns() < end) {
        for (unsigned c = 0; c < W.ncaches; c++)
            burst(v, W.caches[c]);
        sleep_ms(10);
    }
}

static void measure(const struct contender *ct, const char *mode, unsigned T, unsigned C,
                    struct result *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->mode, sizeof(r->mode), "%s", mode);
    snprintf(r->contender, sizeof(r->contender), "%s", ct->name);
    snprintf(r->status, sizeof(r->status), "ok");
    snprintf(r->shrink, sizeof(r->shrink), "%s", has_shrink(ct) ? ct->shrink_how : "none");
    r->threads = T;
    r->caches = C;
    r->burst = opt.burst;
    r->size = opt.size;
    r->stack_kib = opt.stack_kib;
    bool reap = !strcmp(mode, "reap");
    r->wait_ms = reap ? opt.reap_wait_ms : opt.gap_ms;
    r->rss_shrink1 = -1;
    r->mp_in_magazines = r->mp_in_depot = r->mp_slab_bytes = -1;
    obj_size = opt.size;
    if (ct->init && ct->init() != 0) {
        snprintf(r->status, sizeof(r->status), "unavailable");
        return;
    }
    long long limit = opt.max_rss_mib ? (long long)opt.max_rss_mib << 20 : mem_available() / 4 * 3;

    r->rss_start = rss_bytes();
    W.ct = ct;
    W.ncaches = C;
    W.burst = opt.burst;
    W.caches = calloc(C ? C : 1, sizeof(void *));
    struct worker *w = calloc(T, sizeof(*w));
    size_t vbytes = (size_t)opt.burst * sizeof(void *);
    void **mainv = mmap(NULL, vbytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (opt.stack_kib) {
        size_t st = (size_t)opt.stack_kib << 10;
        int e = pthread_attr_setstacksize(&attr, st);
        if (e) {
            snprintf(r->status, sizeof(r->status), "stacksize: %s", strerror(e));
            return;
        }
        if (opt.stack_kib <= 1024 && st > (16u << 10))
            stack_touch = st - (16u << 10); /* TLS, thread descriptor, frames above */
    }
    unsigned started = 0;
    for (; started < T; started++) {
        w[started].v = mmap(NULL, vbytes, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (w[started].v == MAP_FAILED) {
            snprintf(r->status, sizeof(r->status), "mmap: %s", strerror(errno));
            break;
        }
        int e = pthread_create(&w[started].th, &attr, worker_main, &w[started]);
        if (e) {
            snprintf(r->status, sizeof(r->status), "pthread_create #%u: %s", started + 1,
                     strerror(e));
            break;
        }
    }
    pthread_mutex_lock(&W.mu);
    while (W.parked < started)
        pthread_cond_wait(&W.done_cv, &W.mu);
    pthread_mutex_unlock(&W.mu);
    if (started < T) {
        set_phase(PH_EXIT);
        for (unsigned i = 0; i < started; i++)
            pthread_join(w[i].th, NULL);
        return;
    }
    r->rss_base = rss_bytes();

    for (unsigned c = 0; c < C; c++) {
        W.caches[c] = ct->create(c, opt.size);
        if (!W.caches[c]) {
            snprintf(r->status, sizeof(r->status), "create: %s", strerror(errno));
            C = W.ncaches = c;
            break;
        }
    }
    r->rss_created = rss_bytes();

    uint64_t t0 = now_ns();
    set_phase(PH_BURST);
    pthread_mutex_lock(&W.mu);
    while (W.finished < T) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&W.done_cv, &W.mu, &ts);
        if (!atomic_load(&W.abort_burst) && rss_statm() > limit) {
            atomic_store(&W.abort_burst, 1);
            snprintf(r->status, sizeof(r->status), "over_limit_%lldMiB", limit >> 20);
        }
    }
    pthread_mutex_unlock(&W.mu);
    r->burst_ms = (double)(now_ns() - t0) / 1e6;
    r->rss_burst = rss_bytes();
    if (atomic_load(&W.alloc_failures))
        snprintf(r->status, sizeof(r->status), "alloc_failed_%lu", atomic_load(&W.alloc_failures));

    if (reap) {
        if (opt.busy_main && mainv != MAP_FAILED)
            busy_wait(opt.reap_wait_ms, mainv);
        else
            sleep_ms(opt.reap_wait_ms);
    } else {
        shrink_round(ct);
        r->rss_shrink1 = rss_bytes();
        sleep_ms(opt.gap_ms);
        shrink_round(ct);
    }
    r->rss_held = rss_bytes();
#ifndef IDLE_NO_MAGPOOL
    if (ct->is_magpool) {
        struct mp_sum s = { 0, 0, 0 };
        magpool_cache_foreach(mp_sum_fn, &s);
        r->mp_in_magazines = s.mags;
        r->mp_in_depot = s.depot;
        r->mp_slab_bytes = s.bytes;
    }
#endif

    /* destroy; the malloc peers have nothing to destroy: their shrink once
     * more, the nearest thing to giving everything back */
    if (ct->destroy) {
        for (unsigned c = 0; c < C; c++)
            ct->destroy(W.caches[c]);
    } else if (ct->shrink_all) {
        ct->shrink_all();
    }
    r->rss_destroy = rss_bytes();
    set_phase(PH_EXIT);
    for (unsigned i = 0; i < T; i++) {
        pthread_join(w[i].th, NULL);
        munmap(w[i].v, vbytes);
    }
    r->rss_exit = rss_bytes();
    /* what of that is only waiting: one more shrink once no thread is left
     * (magpool: a grace period of the default domain, where destroyed caches
     * and retired magazines wait, then magpool_reap) */
#ifndef IDLE_NO_MAGPOOL
    if (ct->is_magpool) {
        magpool_synchronize(NULL);
        magpool_reap();
    }
#endif
    if (ct->shrink_all && !ct->is_magpool)
        ct->shrink_all();
    r->rss_exit_shrink = rss_bytes();
}

/* ---- CSV ------------------------------------------------------------------- */
static const char CSV_HEADER[] =
    "workload,mode,contender,threads,caches,burst,size,stack_kib,wait_ms,status,"
    "rss_start,rss_base,rss_created,rss_burst,rss_shrink1,rss_held,rss_destroy,rss_exit,"
    "rss_exit_shrink,held,after_destroy,after_exit_vs_start,after_exit_shrink_vs_start,burst_ms,"
    "mp_in_magazines,mp_in_depot,mp_slab_bytes,shrink";

static void opt_ll(FILE *f, long long v)
{
    if (v >= 0)
        fprintf(f, "%lld", v);
    fputc(',', f);
}

static void print_csv(FILE *f, const struct result *r)
{
    bool ok = r->rss_base > 0;
    fprintf(f, "idle,%s,%s,%u,%u,%u,%zu,%u,%u,%s,", r->mode, r->contender, r->threads, r->caches,
            r->burst, r->size, r->stack_kib, r->wait_ms, r->status);
    fprintf(f, "%lld,%lld,%lld,%lld,", r->rss_start, r->rss_base, r->rss_created, r->rss_burst);
    opt_ll(f, r->rss_shrink1);
    fprintf(f, "%lld,%lld,%lld,%lld,", r->rss_held, r->rss_destroy, r->rss_exit, r->rss_exit_shrink);
    if (ok)
        fprintf(f, "%lld,%lld,%lld,%lld,%.1f,", r->rss_held - r->rss_base,
                r->rss_destroy - r->rss_base, r->rss_exit - r->rss_start,
                r->rss_exit_shrink - r->rss_start, r->burst_ms);
    else
        fprintf(f, ",,,,,");
    opt_ll(f, r->mp_in_magazines);
    opt_ll(f, r->mp_in_depot);
    opt_ll(f, r->mp_slab_bytes);
    fprintf(f, "\"%s\"\n", r->shrink);
}

/* Split one CSV line (the last field quoted) into fields; empty fields stay. */
static unsigned split_csv(char *line, char **f, unsigned max)
{
    unsigned n = 0;
    char *p = line;
    while (n < max) {
        if (*p == '"') {
            f[n++] = ++p;
            char *q = strchr(p, '"');
            if (q)
                *q = '\0';
            break;
        }
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) {
            p[strcspn(p, "\n")] = '\0';
            break;
        }
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static long long ll_or(const char *s, long long dflt)
{
    return *s ? strtoll(s, NULL, 10) : dflt;
}

static int parse_csv(char *line, struct result *r)
{
    char *f[32];
    if (split_csv(line, f, 32) < 28 || strcmp(f[0], "idle"))
        return -1;
    memset(r, 0, sizeof(*r));
    snprintf(r->mode, sizeof(r->mode), "%s", f[1]);
    snprintf(r->contender, sizeof(r->contender), "%s", f[2]);
    r->threads = (unsigned)atoi(f[3]);
    r->caches = (unsigned)atoi(f[4]);
    r->burst = (unsigned)atoi(f[5]);
    r->size = (size_t)atoll(f[6]);
    r->stack_kib = (unsigned)atoi(f[7]);
    r->wait_ms = (unsigned)atoi(f[8]);
    snprintf(r->status, sizeof(r->status), "%s", f[9]);
    r->rss_start = ll_or(f[10], 0);
    r->rss_base = ll_or(f[11], 0);
    r->rss_created = ll_or(f[12], 0);
    r->rss_burst = ll_or(f[13], 0);
    r->rss_shrink1 = ll_or(f[14], -1);
    r->rss_held = ll_or(f[15], 0);
    r->rss_destroy = ll_or(f[16], 0);
    r->rss_exit = ll_or(f[17], 0);
    r->rss_exit_shrink = ll_or(f[18], 0);
    r->burst_ms = *f[23] ? atof(f[23]) : 0;
    r->mp_in_magazines = ll_or(f[24], -1);
    r->mp_in_depot = ll_or(f[25], -1);
    r->mp_slab_bytes = ll_or(f[26], -1);
    snprintf(r->shrink, sizeof(r->shrink), "%s", f[27]);
    return 0;
}

static void progress(const struct result *r)
{
    if (r->rss_base <= 0) {
        fprintf(stderr, "  idle %-6s %-19s T=%-4u C=%-3u %s\n", r->mode, r->contender, r->threads,
                r->caches, r->status);
        return;
    }
    fprintf(stderr,
            "  idle %-6s %-19s T=%-4u C=%-3u base %7.1f MiB; above it: burst %8.1f, %s %8.1f, "
            "destroy %7.1f; threads gone: %+.1f MiB vs start, %+.1f after one more shrink "
            "(burst %.0f ms)%s%s\n",
            r->mode, r->contender, r->threads, r->caches, r->rss_base / MIB,
            (r->rss_burst - r->rss_base) / MIB, !strcmp(r->mode, "reap") ? "reap  " : "shrink",
            (r->rss_held - r->rss_base) / MIB, (r->rss_destroy - r->rss_base) / MIB,
            (r->rss_exit - r->rss_start) / MIB, (r->rss_exit_shrink - r->rss_start) / MIB, r->burst_ms, strcmp(r->status, "ok") ? " " : "",
            strcmp(r->status, "ok") ? r->status : "");
}

/* ---- sweep: one child process per measurement ----------------------------- */
static struct result *res;
static size_t nres, capres;

static int run_child(const char *ct, const char *mode, unsigned T, unsigned C, struct result *r)
{
    char a[16][32];
    char *argv[40];
    int n = 0, na = 0;
    argv[n++] = "idle";
#define ARG(flag, fmt, v)                                  \
    do {                                                   \
        argv[n++] = flag;                                  \
        snprintf(a[na], sizeof(a[na]), fmt, v);            \
        argv[n++] = a[na++];                               \
    } while (0)
    argv[n++] = "--contender";
    argv[n++] = (char *)ct;
    argv[n++] = "--mode";
    argv[n++] = (char *)mode;
    ARG("--threads", "%u", T);
    ARG("--caches", "%u", C);
    ARG("--burst", "%u", opt.burst);
    ARG("--size", "%zu", opt.size);
    ARG("--gap-ms", "%u", opt.gap_ms);
    ARG("--reap-wait-ms", "%u", opt.reap_wait_ms);
    ARG("--stack-kib", "%u", opt.stack_kib);
    ARG("--max-rss-mib", "%u", opt.max_rss_mib);
#undef ARG
    if (opt.busy_main)
        argv[n++] = "--busy-main";
    argv[n++] = "--no-header";
    argv[n] = NULL;

    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd[1]);
    char line[2048];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof(line) - 1 && (k = read(fd[0], line + got, sizeof(line) - 1 - got)) > 0)
        got += (size_t)k;
    line[got] = '\0';
    close(fd[0]);
    int st = 0;
    if (pid > 0)
        waitpid(pid, &st, 0);
    if (pid < 0 || got == 0 || parse_csv(line, r) != 0) {
        memset(r, 0, sizeof(*r));
        snprintf(r->mode, sizeof(r->mode), "%s", mode);
        snprintf(r->contender, sizeof(r->contender), "%s", ct);
        r->threads = T;
        r->caches = C;
        r->burst = opt.burst;
        r->size = opt.size;
        r->stack_kib = opt.stack_kib;
        r->rss_shrink1 = r->mp_in_magazines = r->mp_in_depot = r->mp_slab_bytes = -1;
        snprintf(r->status, sizeof(r->status), "child_failed_%s_%d",
                 WIFSIGNALED(st) ? "signal" : "exit",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        snprintf(r->shrink, sizeof(r->shrink), "-");
    }
    return 0;
}

static const struct result *find_res(const char *mode, const char *ct, unsigned T, unsigned C)
{
    for (size_t i = 0; i < nres; i++)
        if (!strcmp(res[i].mode, mode) && !strcmp(res[i].contender, ct) && res[i].threads == T &&
            res[i].caches == C && res[i].burst == 2000 && res[i].size == 64 &&
            res[i].rss_base > 0)
            return &res[i];
    return NULL;
}

static void target(FILE *f, const char *what, const struct result *r, long long v, double lim_mib)
{
    fprintf(f, "  %-4s  %-64s %s", !r ? "n/a" : v <= lim_mib * MIB ? "PASS" : "MISS", what,
            r ? "" : "(not measured in this run)\n");
    if (r)
        fprintf(f, "%.1f MiB\n", v / MIB);
}

static void print_table(FILE *f)
{
    static const char *modes[] = { "shrink", "reap" };
    fprintf(f, "\n== idle: %u-object burst of %zu B objects per thread and cache, then idle; "
               "MiB resident above the baseline (threads parked, no cache yet) ==\n",
            opt.burst, opt.size);
    fprintf(f, "cell: held (after the 2nd shrink / after the reap wait) | after destroy | "
               "after the threads exit (vs the start, before any thread)\n");
    for (int m = 0; m < 2; m++)
        for (unsigned ci = 0; ci < opt.ncaches; ci++) {
            unsigned C = opt.caches[ci];
            bool any = false;
            for (size_t i = 0; i < nres; i++)
                any |= !strcmp(res[i].mode, modes[m]) && res[i].caches == C;
            if (!any)
                continue;
            fprintf(f, "\n-- mode %s, C = %u cache%s --\n%-19s", modes[m], C, C == 1 ? "" : "s",
                    "contender");
            for (unsigned ti = 0; ti < opt.nthreads; ti++)
                fprintf(f, " %20s%-4u", "T=", opt.threads[ti]);
            fprintf(f, "\n");
            for (unsigned k = 0; k < opt.ncts; k++) {
                fprintf(f, "%-19s", opt.cts[k]);
                for (unsigned ti = 0; ti < opt.nthreads; ti++) {
                    const struct result *r = NULL;
                    for (size_t i = 0; i < nres; i++)
                        if (!strcmp(res[i].mode, modes[m]) && !strcmp(res[i].contender, opt.cts[k]) &&
                            res[i].threads == opt.threads[ti] && res[i].caches == C)
                            r = &res[i];
                    char cell[64];
                    if (!r)
                        snprintf(cell, sizeof(cell), "-");
                    else if (r->rss_base <= 0)
                        snprintf(cell, sizeof(cell), "%.23s", r->status);
                    else
                        snprintf(cell, sizeof(cell), "%s%.1f|%.1f|%.1f",
                                 strcmp(r->status, "ok") ? "!" : "",
                                 (r->rss_held - r->rss_base) / MIB,
                                 (r->rss_destroy - r->rss_base) / MIB,
                                 (r->rss_exit - r->rss_start) / MIB);
                    fprintf(f, " %24s", cell);
                }
                fprintf(f, "\n");
            }
        }
    fprintf(f, "(! = status not ok, see the CSV; the malloc peers' C caches are one size class, "
               "so not identical work)\n");
    fprintf(f, "\nshrink calls:\n");
    for (unsigned k = 0; k < opt.ncts; k++) {
        const struct contender *ct = find_ct(opt.cts[k]);
        if (ct)
            fprintf(f, "  %-19s %s\n", ct->name, has_shrink(ct) ? ct->shrink_how : "none (no shrink)");
    }
    fprintf(f, "\n== targets (issue 15), 256 idle threads x 32 caches, 64 B, burst 2000; MiB above "
               "the baseline ==\n");
    static const char *mp[] = { "magpool", "magpool-kmem_cache" };
    for (int k = 0; k < 2; k++) {
        char what[96];
        const struct result *s = find_res("shrink", mp[k], 256, 32);
        const struct result *p = find_res("reap", mp[k], 256, 32);
        snprintf(what, sizeof(what), "%s: after shrink <= 64 MiB", mp[k]);
        target(f, what, s, s ? s->rss_held - s->rss_base : 0, 64);
        snprintf(what, sizeof(what), "%s: after one reap interval, no shrink <= 128 MiB", mp[k]);
        target(f, what, p, p ? p->rss_held - p->rss_base : 0, 128);
        snprintf(what, sizeof(what), "%s: after destroying every cache <= 1 MiB", mp[k]);
        if (!s)
            s = p;
        target(f, what, s, s ? s->rss_destroy - s->rss_base : 0, 1);
    }
}

/* ---- options ------------------------------------------------------------- */
static void usage(FILE *f)
{
    fprintf(f,
        "usage: idle [options]      (bazel run --config=opt //bench:idle -- [options])\n"
        "\n"
        "The idle memory workload (issue 15): T threads x C caches; every thread allocates a\n"
        "burst of B objects in each cache and frees them again, then all threads block on a\n"
        "condition variable (alive, idle); the main thread shrinks every cache twice, a second\n"
        "apart (mode shrink), or only waits (mode reap), then destroys every cache; the threads\n"
        "exit.  One CSV line per measurement on stdout (RSS in bytes; held and after_destroy\n"
        "relative to rss_base: the threads parked, before the first cache; after_exit_vs_start\n"
        "to rss_start, before any thread).\n"
        "\n"
        "  --contender LIST   comma-separated, or all (default magpool):\n"
        "                     ");
    for (size_t i = 0; i < NCT; i++)
        fprintf(f, "%s%s", contenders[i].name, i + 1 < NCT ? ", " : "\n");
    fprintf(f,
        "  --threads LIST     thread counts, e.g. 1,16,256 (default 256)\n"
        "  --caches LIST      caches per run (default 32); the malloc peers use one size\n"
        "                     class, malloc(size), for every cache\n"
        "  --burst B          objects per thread and cache (default 2000)\n"
        "  --size S           object size in bytes (default 64)\n"
        "  --mode LIST        shrink, reap, or shrink,reap (default shrink)\n"
        "  --gap-ms N         shrink mode: wait between the two shrinks (default 1000)\n"
        "  --reap-wait-ms N   reap mode: wait with no shrink (default 250: magpool's periodic\n"
        "                     reap runs at most every 100 ms per cache, MP_REAP_MS in\n"
        "                     src/cache/reap.c, on slow paths, and tears down what went unused\n"
        "                     through a whole interval)\n"
        "  --busy-main        reap mode: the main thread allocates and frees a burst in every\n"
        "                     cache every 10 ms while it waits (one busy thread among the\n"
        "                     idle ones drives slow-path reaping)\n"
        "  --stack-kib N      thread stack size (default 64; 0 = the system's default); stacks\n"
        "                     up to 1 MiB are touched whole before the baseline\n"
        "  --max-rss-mib N    stop the burst (status over_limit_*) past this RSS (default 3/4\n"
        "                     of MemAvailable)\n"
        "  --quick            sweep: every contender, T 1,16,64,256, C 1,32, mode shrink,\n"
        "                     and mode reap at C 32\n"
        "  --full             sweep: every contender, T 1,2,4,..,1024, C 1,8,32, both modes\n"
        "  --table FILE       write the summary table and the issue-15 targets to FILE\n"
        "                     (also printed on stderr after a sweep)\n"
        "  --no-header        no CSV header line\n"
        "  --list             list the contenders and their shrink calls\n"
        "  --help\n"
        "\n"
        "More than one measurement (several values, --quick, --full): each runs in a fresh\n"
        "process (this binary re-executed), one after the other.\n");
}

static void parse_list_u(const char *s, unsigned *v, unsigned *n)
{
    *n = 0;
    while (*s && *n < MAX_LIST) {
        char *end;
        unsigned long x = strtoul(s, &end, 10);
        if (end == s) {
            fprintf(stderr, "idle: bad number list '%s'\n", s);
            exit(2);
        }
        v[(*n)++] = (unsigned)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            fprintf(stderr, "idle: bad number list\n");
            exit(2);
        }
    }
}

static void parse_list_s(char *s, const char **v, unsigned *n, unsigned max)
{
    *n = 0;
    for (char *tok = strtok(s, ","); tok && *n < max; tok = strtok(NULL, ","))
        v[(*n)++] = tok;
}

static const char *out_path(const char *p)
{
    /* bazel run: relative paths are the caller's, not the runfiles tree's */
    const char *wd = getenv("BUILD_WORKING_DIRECTORY");
    if (!wd || p[0] == '/')
        return p;
    char *full = malloc(strlen(wd) + strlen(p) + 2);
    sprintf(full, "%s/%s", wd, p);
    return full;
}

static int malloc_is_glibc(void)
{
    Dl_info di;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (!m || !dladdr(m, &di) || !di.dli_fname || !strstr(di.dli_fname, "libc.so")) {
        fprintf(stderr, "idle: malloc does not resolve to glibc's: fix the link order "
                        "(bench/README.md)\n");
        return 0;
    }
    void *p = malloc(64);
    int ok = p && malloc_usable_size(p) == 72;
    free(p);
    if (!ok)
        fprintf(stderr, "idle: malloc_usable_size(malloc(64)) is not glibc's 72\n");
    return ok;
}

int main(int argc, char **argv)
{
    char *ct_arg = NULL, *mode_arg = NULL;
    int preset = 0; /* 1 quick, 2 full */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL()                                                          \
    do {                                                               \
        if (!v) {                                                      \
            fprintf(stderr, "idle: %s needs a value (--help)\n", a);   \
            return 2;                                                  \
        }                                                              \
        i++;                                                           \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            for (size_t k = 0; k < NCT; k++)
                printf("%-19s shrink: %s\n", contenders[k].name,
                       has_shrink(&contenders[k]) ? contenders[k].shrink_how : "none");
            return 0;
        } else if (!strcmp(a, "--contender") || !strcmp(a, "--contenders")) {
            VAL();
            ct_arg = argv[i];
        } else if (!strcmp(a, "--threads")) {
            VAL();
            parse_list_u(v, opt.threads, &opt.nthreads);
        } else if (!strcmp(a, "--caches")) {
            VAL();
            parse_list_u(v, opt.caches, &opt.ncaches);
        } else if (!strcmp(a, "--mode")) {
            VAL();
            mode_arg = argv[i];
        } else if (!strcmp(a, "--burst")) {
            VAL();
            opt.burst = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--size")) {
            VAL();
            opt.size = (size_t)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--gap-ms")) {
            VAL();
            opt.gap_ms = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--reap-wait-ms")) {
            VAL();
            opt.reap_wait_ms = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--stack-kib")) {
            VAL();
            opt.stack_kib = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--max-rss-mib")) {
            VAL();
            opt.max_rss_mib = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(a, "--table")) {
            VAL();
            opt.table = out_path(v);
        } else if (!strcmp(a, "--busy-main")) {
            opt.busy_main = true;
        } else if (!strcmp(a, "--no-header")) {
            opt.no_header = true;
        } else if (!strcmp(a, "--quick")) {
            preset = 1;
        } else if (!strcmp(a, "--full")) {
            preset = 2;
        } else {
            fprintf(stderr, "idle: unknown option '%s' (--help)\n", a);
            return 2;
        }
#undef VAL
    }
    if (preset) {
        static const unsigned tq[] = { 1, 16, 64, 256 }, tf[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
        static const unsigned cq[] = { 1, 32 }, cf[] = { 1, 8, 32 };
        const unsigned *t = preset == 1 ? tq : tf, *c = preset == 1 ? cq : cf;
        unsigned nt = preset == 1 ? 4 : 11, nc = preset == 1 ? 2 : 3;
        if (!opt.nthreads) {
            memcpy(opt.threads, t, nt * sizeof(*t));
            opt.nthreads = nt;
        }
        if (!opt.ncaches) {
            memcpy(opt.caches, c, nc * sizeof(*c));
            opt.ncaches = nc;
        }
        if (!ct_arg)
            ct_arg = "all";
        if (!mode_arg) {
            mode_arg = "shrink,reap";
            opt.reap_c32_only = preset == 1;
        }
    }
    if (!opt.nthreads)
        opt.threads[opt.nthreads++] = 256;
    if (!opt.ncaches)
        opt.caches[opt.ncaches++] = 32;
    if (opt.burst == 0 || opt.size == 0) {
        fprintf(stderr, "idle: --burst and --size must be positive\n");
        return 2;
    }
    char ctbuf[256], modebuf[64];
    snprintf(ctbuf, sizeof(ctbuf), "%s", ct_arg ? ct_arg : "magpool");
    snprintf(modebuf, sizeof(modebuf), "%s", mode_arg ? mode_arg : "shrink");
    if (!strcmp(ctbuf, "all")) {
        opt.ncts = 0;
        for (size_t k = 0; k < NCT; k++)
            opt.cts[opt.ncts++] = contenders[k].name;
    } else {
        parse_list_s(ctbuf, opt.cts, &opt.ncts, 16);
    }
    for (unsigned k = 0; k < opt.ncts; k++) {
        const struct contender *ct = find_ct(opt.cts[k]);
        if (!ct) {
            fprintf(stderr, "idle: unknown contender '%s' (--list)\n", opt.cts[k]);
            return 2;
        }
        opt.cts[k] = ct->name;
    }
    parse_list_s(modebuf, opt.modes, &opt.nmodes, 4);
    for (unsigned k = 0; k < opt.nmodes; k++)
        if (strcmp(opt.modes[k], "shrink") && strcmp(opt.modes[k], "reap")) {
            fprintf(stderr, "idle: unknown mode '%s' (shrink or reap)\n", opt.modes[k]);
            return 2;
        }
    if (!malloc_is_glibc())
        return 1;

    size_t npoints = (size_t)opt.ncts * opt.nthreads * opt.ncaches * opt.nmodes;
    if (!opt.no_header)
        printf("%s\n", CSV_HEADER);
    fflush(stdout);
    if (npoints == 1) {
        struct result r;
        measure(find_ct(opt.cts[0]), opt.modes[0], opt.threads[0], opt.caches[0], &r);
        print_csv(stdout, &r);
        fflush(stdout);
        progress(&r);
        if (opt.table) {
            res = &r;
            nres = 1;
            FILE *f = fopen(opt.table, "w");
            if (f) {
                print_table(f);
                fclose(f);
            }
        }
        return r.rss_base > 0 ? 0 : 1;
    }

    /* A sweep: modes, then caches, then threads, contenders innermost (so
     * the contenders of one point run close together in time). */
    unsigned cmax = 0;
    for (unsigned ci = 0; ci < opt.ncaches; ci++)
        cmax = opt.caches[ci] > cmax ? opt.caches[ci] : cmax;
    fprintf(stderr, "idle: %zu measurements, one process each\n", npoints);
    for (unsigned m = 0; m < opt.nmodes; m++)
        for (unsigned ci = 0; ci < opt.ncaches; ci++) {
            if (opt.reap_c32_only && !strcmp(opt.modes[m], "reap") && opt.caches[ci] != cmax)
                continue;
            for (unsigned ti = 0; ti < opt.nthreads; ti++)
                for (unsigned k = 0; k < opt.ncts; k++) {
                    if (nres == capres) {
                        capres = capres ? 2 * capres : 64;
                        res = realloc(res, capres * sizeof(*res));
                    }
                    struct result *r = &res[nres];
                    run_child(opt.cts[k], opt.modes[m], opt.threads[ti], opt.caches[ci], r);
                    nres++;
                    print_csv(stdout, r);
                    fflush(stdout);
                    if (r->rss_base <= 0)
                        progress(r); /* else the child printed it */
                }
        }
    print_table(stderr);
    if (opt.table) {
        FILE *f = fopen(opt.table, "w");
        if (f) {
            print_table(f);
            fclose(f);
        } else {
            perror(opt.table);
        }
    }
    return 0;
}
