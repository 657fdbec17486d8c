/*
 * bench.c — the thread-scaling benchmark driver.
 *
 * Method.  A *point* is (workload, parameters, object size, threads).  For
 * each point the driver runs every contender once per repetition, in an
 * order rotated by one each repetition, all in this one process, so a noisy
 * machine slows everyone alike and ratios hold.  A run creates the
 * contender's pool, starts the threads, lets them warm up, releases them
 * together, stops them after a fixed time (or, with --callgrind, after a
 * fixed op count) and destroys the pool.  Reported: the median over
 * repetitions of aggregate Mops/s (one op = one object allocated and freed),
 * min and max, ns/op = 1000 / Mops, and ratios to the floor and to the best
 * peer (the fastest non-magpool, non-floor contender of the point).
 *
 * RSS is process-wide, so the memory and churn workloads run each contender
 * in a forked child (the parent has not started DPDK's EAL or any helper
 * thread yet, which is why they run first).
 *
 * One process, many allocators: every allocator is called through its own
 * prefixed entry points; plain malloc must stay glibc's.  main() checks that
 * the process's malloc is the one in libc.so.6 and refuses to run otherwise.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "rss.h"
#include "bench_aux.h"

/* ---- configuration ------------------------------------------------------ */
enum mode { MODE_QUICK, MODE_FULL, MODE_CG_WORKER };

static struct {
    enum mode mode;
    unsigned reps;
    unsigned run_ms;
    const char *out_dir;
    const char *cg_csv;    /* callgrind results to fold into "targets" */
    const char *only_wl;   /* run only workloads whose label starts so */
    const char *only_ct;   /* run only contenders whose name starts so */
    const char *only_thr;  /* run only these thread counts ("1,64"; NULL: all) */
    int pin_cpu;           /* single-thread points run on this CPU (-1: not pinned) */
    bool report;           /* --report: print from <out>/results.csv, run nothing */
} cfg = { .mode = MODE_QUICK, .reps = 5, .run_ms = 30, .out_dir = "bench/out", .pin_cpu = -2 };

static const struct contender *all_ct[] = {
    &ct_floor, &ct_glibc, &ct_jemalloc, &ct_tcmalloc, &ct_mimalloc, &ct_tbb,
#ifndef BENCH_NO_DPDK
    &ct_dpdk,
#endif
    &ct_gluster, &ct_mutexlist,
#ifndef BENCH_NO_MAGPOOL
    &ct_magpool, &ct_magpool_call, &ct_mempool, &ct_kmem, &ct_kmalloc,
#endif
    &ct_glibc_urcu, &ct_glibc_ckepoch,
};
#define NCT (sizeof(all_ct) / sizeof(all_ct[0]))

/* ---- helpers shared with the contenders --------------------------------- */
uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t bench_rss_bytes(void)
{
    return bench_statm_rss();
}

void bench_wait_go(struct tctx *t)
{
    unsigned spins = 0;
    atomic_fetch_add_explicit(&t->r->ready, 1, memory_order_release);
    if (t->r->fixed_ops)
        return;
    /* acquire: pairs with the driver's release of go (start of timing) */
    while (!atomic_load_explicit(&t->r->go, memory_order_acquire))
        bench_relax(&spins);
}

#ifdef BENCH_NO_DPDK
int bench_eal_up(void)
{
    return 0;
}
#endif

static int ct_usable(const struct contender *ct)
{
    return !ct->available || ct->available();
}

/* ---- one timed run ------------------------------------------------------ */
static void *worker(void *arg)
{
    struct tctx *t = arg;
    const struct contender *ct = t->r->ct;
    int hooks = t->r->kind != WL_LARSON; /* larson: each generation hooks itself */
    if (hooks && ct->thread_enter)
        ct->thread_enter(t);
    ct->wl->fn[t->r->kind](t);
    t->t_end = bench_now_ns();
    if (hooks && ct->thread_leave)
        ct->thread_leave(t);
    return NULL;
}

static void *aux_create(struct run *r)
{
    switch (r->kind) {
    case WL_SPSC: {
        struct spsc_ring *rings;
        size_t n = r->threads / 2 ? r->threads / 2 : 1;
        if (posix_memalign((void **)&rings, 64, n * sizeof(*rings)))
            return NULL;
        memset(rings, 0, n * sizeof(*rings));
        return rings;
    }
    case WL_XMALLOC: {
        struct xm_shared *x = calloc(1, sizeof(*x));
        x->cap = 2 * r->threads + 4;
        x->full = calloc(x->cap, sizeof(void **));
        x->empty = calloc(x->cap, sizeof(void **));
        for (unsigned i = 0; i < x->cap; i++)
            x->empty[x->nempty++] = malloc(XM_BATCH * sizeof(void *));
        pthread_mutex_init(&x->lock, NULL);
        atomic_init(&x->producers_left, r->threads / 2);
        return x;
    }
    case WL_DEFERRED:
        return calloc(1, sizeof(struct defer_shared));
    default:
        return NULL;
    }
}

/* spsc check totals: objects checked, rings that failed the check. */
static uint64_t spsc_checked, spsc_failed;
/* ctor check totals: objects used, uses that found an object not in
 * constructed state (bench_obj_use). */
static uint64_t ctor_checked, ctor_failed;

static void aux_destroy(struct run *r)
{
    if (r->kind == WL_XMALLOC && r->aux) {
        struct xm_shared *x = r->aux;
        for (unsigned i = 0; i < x->nempty; i++)
            free(x->empty[i]);
        free(x->full);
        free(x->empty);
        pthread_mutex_destroy(&x->lock);
    }
    if (r->kind == WL_SPSC && r->aux) {
        /* Every object handed over must have been freed exactly once, in
         * order (rings without a consumer, odd thread counts, are skipped). */
        struct spsc_ring *rings = r->aux;
        for (unsigned i = 0; i < r->threads / 2; i++) {
            if (rings[i].produced != rings[i].consumed || rings[i].misordered)
                fprintf(stderr,
                        "bench: %s: spsc: ring %u: produced %llu, consumed %llu, "
                        "%llu with a wrong sequence number\n",
                        r->ct->name, i, (unsigned long long)rings[i].produced,
                        (unsigned long long)rings[i].consumed,
                        (unsigned long long)rings[i].misordered);
            spsc_checked += rings[i].consumed;
            spsc_failed += rings[i].produced != rings[i].consumed || rings[i].misordered;
        }
    }
    if (r->kind == WL_CTOR) {
        uint64_t bad = atomic_load_explicit(&r->bad, memory_order_relaxed);
        if (bad)
            fprintf(stderr, "bench: %s: ctor: %llu objects not in constructed state\n",
                    r->ct->name, (unsigned long long)bad);
        ctor_failed += bad;
    }
    if (r->kind == WL_DEFERRED && r->aux) {
        struct defer_shared *d = r->aux;
        if (atomic_load(&d->bad))
            fprintf(stderr, "bench: %s: deferred: %llu reads saw a reused object\n", r->ct->name,
                    (unsigned long long)atomic_load(&d->bad));
    }
    free(r->aux);
    r->aux = NULL;
}

static size_t max_live_of(enum wl_kind k, unsigned thr, unsigned p1, unsigned p2)
{
    (void)p2;
    switch (k) {
    case WL_PAIR: return thr;
    case WL_BATCH: return (size_t)thr * p1;
    case WL_BULK: return (size_t)thr * p1;
    case WL_SPSC: return (size_t)(thr / 2 + 1) * (SPSC_CAP + 1);
    case WL_XMALLOC: return (size_t)(2 * thr + 4) * XM_BATCH;
    case WL_LARSON: return (size_t)thr * p1;
    case WL_CHURN: return (size_t)thr * p1;
    case WL_DEFERRED: return DEFER_SLOTS + (size_t)thr * 4096;
    case WL_MEMORY: return p1;
    case WL_CTOR: return (size_t)thr * (p1 ? p1 : 1);
    default: return 0;
    }
}

/* Returns aggregate Mops/s, or -1 when the contender could not run. */
static double run_once(const struct contender *ct, enum wl_kind kind, unsigned p1, unsigned p2,
                       size_t size, unsigned thr)
{
    struct run r;
    memset(&r, 0, sizeof(r));
    r.ct = ct;
    r.size = size;
    r.threads = thr;
    r.kind = kind;
    r.p1 = p1;
    r.p2 = p2;
    r.max_live = max_live_of(kind, thr, p1, p2);
    if (ct->setup(&r) != 0)
        return -1;
    r.aux = aux_create(&r);
    struct tctx *t = calloc(thr, sizeof(*t));
    pthread_t *th = calloc(thr, sizeof(*th));
    for (unsigned i = 0; i < thr; i++) {
        t[i].r = &r;
        t[i].pool = r.pool;
        t[i].size = size;
        t[i].id = i;
        t[i].rng = 0x9e3779b97f4a7c15ULL * (i + 1);
        /* A single-thread point runs on one fixed CPU (--pin-cpu): left to
         * the scheduler, it lands on whichever CPU is free, and on a shared
         * machine one CPU can run every allocator at 0.65x for seconds
         * (bench/README.md, "Spread across processes"). */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (thr == 1 && cfg.pin_cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cfg.pin_cpu, &set);
            pthread_attr_setaffinity_np(&attr, sizeof set, &set);
        }
        int rc = pthread_create(&th[i], &attr, worker, &t[i]);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            fprintf(stderr, "bench: pthread_create failed: %s\n", strerror(rc));
            exit(2);
        }
    }
    unsigned spins = 0;
    while (atomic_load_explicit(&r.ready, memory_order_acquire) < thr)
        bench_relax(&spins);
    uint64_t t0 = bench_now_ns();
    /* release: starts the clock for threads spinning in bench_wait_go */
    atomic_store_explicit(&r.go, 1, memory_order_release);
    struct timespec d = { cfg.run_ms / 1000, (long)(cfg.run_ms % 1000) * 1000000L };
    nanosleep(&d, NULL);
    atomic_store_explicit(&r.stop, 1, memory_order_relaxed);
    uint64_t ops = 0, t1 = t0;
    for (unsigned i = 0; i < thr; i++) {
        pthread_join(th[i], NULL);
        ops += t[i].ops;
        if (kind == WL_CTOR)
            ctor_checked += t[i].ops;
        if (t[i].t_end > t1)
            t1 = t[i].t_end;
    }
    aux_destroy(&r);
    ct->teardown(&r);
    free(t);
    free(th);
    return t1 > t0 ? (double)ops * 1e3 / (double)(t1 - t0) : 0.0;
}

/* ---- results ------------------------------------------------------------ */
struct result {
    char wl[40];
    enum wl_kind kind;
    unsigned p1, p2, threads;
    size_t size;
    const struct contender *ct;
    int ok;
    double med, mn, mx;
    double extra[3]; /* memory: bytes/obj, rss after shrink; churn: peak, final */
    double r_floor, r_peer;
};

static struct result *res;
static size_t nres, capres;

static struct result *res_add(void)
{
    if (nres == capres) {
        capres = capres ? capres * 2 : 256;
        res = realloc(res, capres * sizeof(*res));
    }
    memset(&res[nres], 0, sizeof(*res));
    return &res[nres++];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A peer: neither a magpool row nor the floor. */
#define CT_NOT_PEER (CT_MAGPOOL | CT_FLOOR)
static int is_peer(const struct contender *ct)
{
    return !(ct->caps & CT_NOT_PEER);
}

/* Fill ratio columns for the last n results (one point). */
static void point_ratios(struct result *r, size_t n)
{
    double floor = 0, peer = 0;
    for (size_t i = 0; i < n; i++) {
        if (!r[i].ok)
            continue;
        if (r[i].ct->caps & CT_FLOOR)
            floor = r[i].med;
        else if (is_peer(r[i].ct) && r[i].med > peer)
            peer = r[i].med;
    }
    for (size_t i = 0; i < n; i++) {
        r[i].r_floor = floor > 0 && r[i].med > 0 ? floor / r[i].med : 0; /* time ratio */
        r[i].r_peer = peer > 0 && r[i].med > 0 ? r[i].med / peer : 0;     /* speedup */
    }
}

static int wl_applies(const struct contender *ct, enum wl_kind k)
{
    if (k == WL_DEFERRED)
        return (ct->caps & CT_DEFERRED) != 0;
    return !(ct->caps & CT_DEFERRED) || (ct->caps & CT_MAGPOOL);
}

static int too_big(enum wl_kind k, unsigned thr, unsigned p1, unsigned p2, size_t size)
{
    double bytes = (double)max_live_of(k, thr, p1, p2) * (double)(size + 64);
    return bytes > 1.5e9;
}


/* Whether name starts with one of a comma-separated list of prefixes (a
 * NULL list selects everything). */
static bool prefix_listed(const char *list, const char *name)
{
    if (list == NULL)
        return true;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0 && strncmp(name, p, n) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* --only: workload labels; --contenders: contender names. */
static bool wl_selected(const char *label)
{
    return prefix_listed(cfg.only_wl, label);
}

/* Whether thread count thr is in --threads (every count without it). */
static bool thr_selected(unsigned thr)
{
    if (cfg.only_thr == NULL)
        return true;
    for (const char *p = cfg.only_thr; *p;) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end != p && v == thr)
            return true;
        p = end + strcspn(end, ",");
        p += *p == ',';
    }
    return false;
}
static void run_point(const char *label, enum wl_kind kind, unsigned p1, unsigned p2, size_t size,
                      unsigned thr)
{
    const struct contender *cts[NCT];
    unsigned n = 0;
    if (!wl_selected(label) || !thr_selected(thr))
        return;
    if (too_big(kind, thr, p1, p2, size)) {
        printf("  (%s size=%zu threads=%u skipped: live set over 1.5 GB)\n", label, size, thr);
        return;
    }
    for (unsigned i = 0; i < NCT; i++)
        if (wl_applies(all_ct[i], kind) && ct_usable(all_ct[i]) && prefix_listed(cfg.only_ct, all_ct[i]->name))
            cts[n++] = all_ct[i];
    double v[NCT][16];
    int bad[NCT] = { 0 };
    unsigned reps = cfg.reps > 16 ? 16 : cfg.reps;
    for (unsigned rep = 0; rep < reps; rep++) {
        for (unsigned j = 0; j < n; j++) {
            unsigned c = (j + rep) % n; /* rotate the order every repetition */
            v[c][rep] = bad[c] ? -1 : run_once(cts[c], kind, p1, p2, size, thr);
            if (v[c][rep] < 0)
                bad[c] = 1;
        }
    }
    size_t first = nres; /* an index: res_add() may move the array */
    for (unsigned c = 0; c < n; c++) {
        struct result *r = res_add();
        snprintf(r->wl, sizeof(r->wl), "%s", label);
        r->kind = kind;
        r->p1 = p1;
        r->p2 = p2;
        r->size = size;
        r->threads = thr;
        r->ct = cts[c];
        r->ok = !bad[c];
        if (r->ok) {
            qsort(v[c], reps, sizeof(double), cmp_double);
            r->med = reps % 2 ? v[c][reps / 2] : (v[c][reps / 2 - 1] + v[c][reps / 2]) / 2;
            r->mn = v[c][0];
            r->mx = v[c][reps - 1];
        }
    }
    point_ratios(res + first, n);
    fprintf(stderr, "  %-22s size=%-5zu threads=%-3u done\n", label, size, thr);
}

/* ---- memory and churn: one forked child per contender ------------------- */
struct child_out {
    int ok;
    double mops, a, b, c;
};

static struct child_out child_memory(const struct contender *ct, size_t size, size_t nobj)
{
    struct child_out o = { 0 };
    struct run r;
    memset(&r, 0, sizeof(r));
    r.ct = ct;
    r.size = size;
    r.threads = 1;
    r.kind = WL_MEMORY;
    r.max_live = nobj;
    struct tctx t = { .r = &r, .size = size, .rng = 1 };
    void **v = mmap(NULL, nobj * sizeof(void *), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (v == MAP_FAILED || !ct_usable(ct))
        return o;
    size_t rss0 = bench_rss_bytes();
    if (ct->setup(&r) != 0)
        return o;
    t.pool = r.pool;
    int hooks = !(ct->caps & CT_NEEDS_EAL); /* EAL's main thread is lcore 0 already */
    if (hooks && ct->thread_enter)
        ct->thread_enter(&t);
    uint64_t t0 = bench_now_ns();
    ct->wl->mem_fill(&t, v, nobj);
    uint64_t t1 = bench_now_ns();
    size_t rss1 = bench_rss_bytes();
    uint64_t t2 = bench_now_ns();
    ct->wl->mem_free(&t, v, nobj);
    uint64_t t3 = bench_now_ns();
    if (hooks && ct->thread_leave)
        ct->thread_leave(&t);
    if (ct->shrink)
        ct->shrink(&r);
    size_t rss2 = bench_rss_bytes();
    o.ok = 1;
    o.mops = (double)nobj * 1e3 / (double)((t1 - t0) + (t3 - t2));
    o.a = ((double)rss1 - (double)rss0) / (double)nobj;
    o.b = (double)rss2 - (double)rss0;
    o.c = (double)rss1 - (double)rss0;
    return o;
}

static struct child_out child_churn(const struct contender *ct, size_t size, unsigned thr,
                                    unsigned per_thread, unsigned gens)
{
    struct child_out o = { 0 };
    struct run r;
    memset(&r, 0, sizeof(r));
    r.ct = ct;
    r.size = size;
    r.threads = thr;
    r.kind = WL_CHURN;
    r.p1 = per_thread;
    r.max_live = (size_t)thr * per_thread;
    struct churn_shared cs = { .per_thread = per_thread };
    cs.slot = calloc((size_t)thr * per_thread, sizeof(void *));
    r.aux = &cs;
    if (!cs.slot || !ct_usable(ct))
        return o;
    size_t rss0 = bench_rss_bytes(), peak = rss0;
    if (ct->setup(&r) != 0)
        return o;
    struct tctx *t = calloc(thr, sizeof(*t));
    pthread_t *th = calloc(thr, sizeof(*th));
    uint64_t ops = 0, t0 = bench_now_ns();
    for (unsigned g = 0; g < gens; g++) {
        cs.gen = g;
        for (unsigned i = 0; i < thr; i++) {
            t[i] = (struct tctx){ .r = &r, .pool = r.pool, .size = size, .id = i, .rng = i + 1 };
            if (pthread_create(&th[i], NULL, ct->wl->churn_gen, &t[i]) != 0)
                abort();
        }
        for (unsigned i = 0; i < thr; i++) {
            pthread_join(th[i], NULL);
            ops += t[i].ops;
        }
        size_t rss = bench_rss_bytes();
        if (rss > peak)
            peak = rss;
    }
    uint64_t t1 = bench_now_ns();
    struct tctx m = { .r = &r, .pool = r.pool, .size = size, .rng = 7 };
    int hooks = !(ct->caps & CT_NEEDS_EAL);
    if (hooks && ct->thread_enter)
        ct->thread_enter(&m);
    ct->wl->churn_free_all(&m);
    if (hooks && ct->thread_leave)
        ct->thread_leave(&m);
    if (ct->shrink)
        ct->shrink(&r);
    size_t fin = bench_rss_bytes();
    o.ok = 1;
    o.mops = (double)ops * 1e3 / (double)(t1 - t0);
    o.a = (double)peak - (double)rss0;
    o.b = (double)fin - (double)rss0;
    return o;
}

static struct child_out in_child(int churn, const struct contender *ct, size_t size, unsigned thr,
                                 unsigned p1, unsigned p2)
{
    struct child_out o = { 0 };
    int fd[2];
    if (pipe(fd) != 0)
        return o;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        o = churn ? child_churn(ct, size, thr, p1, p2) : child_memory(ct, size, p1);
        if (write(fd[1], &o, sizeof(o)) != (ssize_t)sizeof(o))
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    if (pid < 0 || read(fd[0], &o, sizeof(o)) != (ssize_t)sizeof(o))
        o.ok = 0;
    close(fd[0]);
    int st;
    if (pid > 0)
        waitpid(pid, &st, 0);
    return o;
}

static void run_forked_point(const char *label, int churn, size_t size, unsigned thr, unsigned p1,
                             unsigned p2)
{
    if (!wl_selected(label) || !thr_selected(thr))
        return;
    size_t first = nres, n = 0; /* an index: res_add() may move the array */
    for (unsigned i = 0; i < NCT; i++) {
        const struct contender *ct = all_ct[i];
        if (!wl_applies(ct, churn ? WL_CHURN : WL_MEMORY))
            continue;
        double m[16], a = 0, b = 0, c = 0;
        unsigned reps = churn ? (cfg.reps > 16 ? 16 : cfg.reps) : 1, okc = 0;
        for (unsigned rep = 0; rep < reps; rep++) {
            struct child_out o = in_child(churn, ct, size, thr, p1, p2);
            if (!o.ok)
                break;
            m[okc++] = o.mops;
            a = o.a > a ? o.a : a; /* report the worst footprint seen */
            b = o.b > b ? o.b : b;
            c = o.c;
        }
        struct result *r = res_add();
        n++;
        snprintf(r->wl, sizeof(r->wl), "%s", label);
        r->kind = churn ? WL_CHURN : WL_MEMORY;
        r->p1 = p1;
        r->p2 = p2;
        r->size = size;
        r->threads = thr;
        r->ct = ct;
        r->ok = okc == reps;
        if (r->ok) {
            qsort(m, okc, sizeof(double), cmp_double);
            r->med = m[okc / 2];
            r->mn = m[0];
            r->mx = m[okc - 1];
            r->extra[0] = a;
            r->extra[1] = b;
            r->extra[2] = c;
        }
    }
    if (n)
        point_ratios(res + first, n);
    fprintf(stderr, "  %-22s size=%-5zu threads=%-3u done\n", label, size, thr);
}

/* ---- output ------------------------------------------------------------- */
static const char *short_name(const struct contender *ct)
{
    return ct->name;
}

static void print_tables(FILE *f)
{
    /* One table per (workload label, size): contenders x thread counts. */
    for (size_t i = 0; i < nres; i++) {
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(res[j].wl, res[i].wl) && res[j].size == res[i].size)
                seen = 1;
        if (seen)
            continue;
        unsigned thr[16], nt = 0;
        for (size_t j = i; j < nres; j++) {
            if (strcmp(res[j].wl, res[i].wl) || res[j].size != res[i].size)
                continue;
            int have = 0;
            for (unsigned k = 0; k < nt; k++)
                have |= thr[k] == res[j].threads;
            if (!have && nt < 16)
                thr[nt++] = res[j].threads;
        }
        int mem = res[i].kind == WL_MEMORY, churn = res[i].kind == WL_CHURN;
        fprintf(f, "\n== %s, %zu B objects: %s ==\n", res[i].wl, res[i].size,
                mem ? "RSS bytes per live object (1M objects) / RSS kept after free+shrink / Mops"
                    : churn ? "Mops/s median; peak and final RSS (MiB, final after free+shrink)"
                            : "aggregate Mops/s, median [min-max] of runs; x = time vs floor, "
                              "p = speed vs best peer");
        fprintf(f, "%-19s", "contender");
        for (unsigned k = 0; k < nt; k++)
            fprintf(f, mem ? " %26s" : " %21s%-3u", mem ? "" : "T=", thr[k]);
        fprintf(f, "\n");
        const struct contender *rows[64];
        unsigned nr = 0;
        for (size_t j = i; j < nres; j++) {
            if (strcmp(res[j].wl, res[i].wl) || res[j].size != res[i].size)
                continue;
            int have = 0;
            for (unsigned k = 0; k < nr; k++)
                have |= rows[k] == res[j].ct;
            if (!have && nr < 64)
                rows[nr++] = res[j].ct;
        }
        for (unsigned k = 0; k < nr; k++) {
            fprintf(f, "%-19s", short_name(rows[k]));
            for (unsigned q = 0; q < nt; q++) {
                const struct result *r = NULL;
                for (size_t j = i; j < nres; j++)
                    if (!strcmp(res[j].wl, res[i].wl) && res[j].size == res[i].size &&
                        res[j].ct == rows[k] && res[j].threads == thr[q])
                        r = &res[j];
                char cell[64];
                if (!r)
                    snprintf(cell, sizeof(cell), "-");
                else if (!r->ok)
                    snprintf(cell, sizeof(cell), "n/a");
                else if (mem)
                    snprintf(cell, sizeof(cell), "%6.1f B/obj %6.1f MiB %5.1f", r->extra[0],
                             r->extra[1] / 1048576.0, r->med);
                else if (churn)
                    snprintf(cell, sizeof(cell), "%6.2f %5.0f/%-5.0f", r->med,
                             r->extra[0] / 1048576.0, r->extra[1] / 1048576.0);
                else if (r->r_floor > 0)
                    snprintf(cell, sizeof(cell), "%7.2f x%-4.2g p%-4.2g", r->med, r->r_floor,
                             r->r_peer);
                else /* no floor at this point (deferred) */
                    snprintf(cell, sizeof(cell), "%7.2f x-    p%-4.2g", r->med, r->r_peer);
                fprintf(f, " %24s", cell);
            }
            fprintf(f, "\n");
        }
    }
}

/* The contender called name in this binary, or NULL. */
static const struct contender *ct_named(const char *name)
{
    for (unsigned i = 0; i < NCT; i++)
        if (!strcmp(all_ct[i]->name, name))
            return all_ct[i];
    return NULL;
}

/* --report: the results of an earlier run, from its results.csv, so that
 * the tables and targets can be printed again without running anything.
 * Rows of contenders this binary does not have are skipped.  Returns the
 * number of rows read, -1 if the file cannot be read. */
static long read_csv(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1024];
    long n = 0;
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        char wl[40], ct[64];
        int kind, ok;
        unsigned p1, p2, thr;
        size_t size;
        double med, mn, mx, nsop, rf, rp, e1, e2;
        if (sscanf(line, "%39[^,],%d,%u,%u,%zu,%u,%63[^,],%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", wl,
                   &kind, &p1, &p2, &size, &thr, ct, &ok, &med, &mn, &mx, &nsop, &rf, &rp, &e1,
                   &e2) != 16)
            continue;
        const struct contender *c = ct_named(ct);
        if (c == NULL)
            continue;
        struct result *r = res_add();
        snprintf(r->wl, sizeof(r->wl), "%s", wl);
        r->kind = (enum wl_kind)kind;
        r->p1 = p1;
        r->p2 = p2;
        r->size = size;
        r->threads = thr;
        r->ct = c;
        r->ok = ok;
        r->med = med;
        r->mn = mn;
        r->mx = mx;
        r->r_floor = rf;
        r->r_peer = rp;
        r->extra[0] = e1;
        r->extra[1] = e2;
        n++;
    }
    fclose(f);
    return n;
}

static void write_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    fprintf(f, "workload,kind,p1,p2,size,threads,contender,ok,mops_median,mops_min,mops_max,"
               "ns_per_op,time_vs_floor,speed_vs_best_peer,extra1,extra2,how\n");
    for (size_t i = 0; i < nres; i++) {
        const struct result *r = &res[i];
        fprintf(f, "%s,%d,%u,%u,%zu,%u,%s,%d,%.4f,%.4f,%.4f,%.3f,%.3f,%.3f,%.1f,%.1f,\"%s\"\n",
                r->wl, (int)r->kind, r->p1, r->p2, r->size, r->threads, r->ct->name, r->ok, r->med,
                r->mn, r->mx, r->med > 0 ? 1e3 / r->med : 0, r->r_floor, r->r_peer, r->extra[0],
                r->extra[1], r->ct->how);
    }
    fclose(f);
}

static __attribute__((unused)) const struct result *find(const char *wl, size_t size, unsigned thr,
                                 const struct contender *ct)
{
    for (size_t i = 0; i < nres; i++)
        if (!strcmp(res[i].wl, wl) && res[i].size == size && res[i].threads == thr &&
            res[i].ct == ct && res[i].ok)
            return &res[i];
    return NULL;
}

/* Fastest contender at a point with a cap of `want` (any contender if 0)
 * and none of `avoid`. */
static __attribute__((unused)) double best_matching(const char *wl, size_t size, unsigned thr,
                                                    unsigned want, unsigned avoid, const char **who)
{
    double best = 0;
    for (size_t i = 0; i < nres; i++) {
        unsigned caps = res[i].ct->caps;
        if (!strcmp(res[i].wl, wl) && res[i].size == size && res[i].threads == thr && res[i].ok &&
            (want == 0 || (caps & want)) && !(caps & avoid) && res[i].med > best) {
            best = res[i].med;
            *who = res[i].ct->name;
        }
    }
    return best;
}

/* Fastest contender with a cap of `caps` at a point. */
static __attribute__((unused)) double best_of(const char *wl, size_t size, unsigned thr,
                                              unsigned caps, const char **who)
{
    return best_matching(wl, size, thr, caps, 0, who);
}

/* Fastest of glibc, jemalloc, tcmalloc, mimalloc at a point (issue 3's set). */
static __attribute__((unused)) double best_malloc(const char *wl, size_t size, unsigned thr, const char **who)
{
    return best_of(wl, size, thr, CT_PEER, who);
}

static __attribute__((unused)) void target(FILE *f, const char *what, int known, int pass, const char *fmt, double a,
                   double b)
{
    char detail[160];
    snprintf(detail, sizeof(detail), fmt, a, b);
    fprintf(f, "  %-4s  %-58s %s\n", !known ? "n/a" : pass ? "PASS" : "MISS", what, detail);
}

static __attribute__((unused)) void cg_lookup(const char *ct, const char *op, double *ir)
{
    *ir = -1;
    if (!cfg.cg_csv)
        return;
    FILE *f = fopen(cfg.cg_csv, "r");
    if (!f)
        return;
    char line[256], c[64], o[32];
    double v;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%63[^,],%31[^,],%lf", c, o, &v) == 3 && !strcmp(c, ct) && !strcmp(o, op))
            *ir = v;
    fclose(f);
}

#ifndef BENCH_NO_MAGPOOL
/* Fastest contender that is neither magpool nor the floor at a point (the
 * issue-16 "best peer": the mallocs, DPDK, the pools of raw memory). */
static double best_peer(const char *wl, size_t size, unsigned thr, const char **who)
{
    return best_matching(wl, size, thr, 0, CT_NOT_PEER, who);
}

/* Issue 16's "Done when", at 64 B, as far as one process's run can check it
 * (the spread across process runs is run.sh's --spread step).  A line per
 * point; n/a where the run did not measure it. */
static void print_targets_frontends(FILE *f)
{
    const char *who = "?";
    const struct contender *fe[] = { &ct_kmem, &ct_mempool, &ct_kmalloc };
    const unsigned T3[] = { 1, 2, 64 };
    const char *rows[] = { "pair", "batch1000-lifo" };
    fprintf(f, "\n== targets (issue 16), the front ends by library call, 64 B: >= 1.4x the best "
               "peer and >= 1/1.15 of magpool-call ==\n");
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < 3; q++) {
            double bp = best_peer(rows[k], 64, T3[q], &who);
            const struct result *call = find(rows[k], 64, T3[q], &ct_magpool_call);
            for (int j = 0; j < 3; j++) {
                const struct result *r = find(rows[k], 64, T3[q], fe[j]);
                char what[96];
                snprintf(what, sizeof(what), "%s T=%u %s", rows[k], T3[q], fe[j]->name + 8);
                bool known = r && bp > 0 && call;
                target(f, what, known, known && r->med >= 1.4 * bp && r->med * 1.15 >= call->med,
                       "%.2fx best peer, %.2fx magpool-call", known ? r->med / bp : 0,
                       known ? r->med / call->med : 0);
            }
            if (bp > 0)
                fprintf(f, "        (best peer %s %.1f Mops/s, magpool-call %.1f)\n", who, bp,
                        call ? call->med : 0);
        }

    const struct contender *api[] = { &ct_magpool, &ct_magpool_call, &ct_kmem, &ct_mempool, &ct_kmalloc };
    fprintf(f, "\n== targets (issue 16), opaque barrier: pair at or below the best peer's time, "
               "batch-1000 <= 1.15x the floor's ==\n");
    for (int q = 0; q < 3; q++) {
        double bp = best_peer("pair-opaque", 64, T3[q], &who);
        const struct result *fl = find("batch1000-opaque", 64, T3[q], &ct_floor);
        for (int j = 0; j < 5; j++) {
            char what[96];
            const struct result *r = find("pair-opaque", 64, T3[q], api[j]);
            snprintf(what, sizeof(what), "pair-opaque T=%u %s", T3[q], api[j]->name);
            target(f, what, r && bp > 0, r && bp > 0 && r->med >= bp, "%.2fx best peer",
                   r && bp > 0 ? r->med / bp : 0, 0);
            r = find("batch1000-opaque", 64, T3[q], api[j]);
            snprintf(what, sizeof(what), "batch1000-opaque T=%u %s", T3[q], api[j]->name);
            target(f, what, r && fl, r && fl && fl->med <= 1.15 * r->med, "%.2fx the floor's time",
                   r && fl ? fl->med / r->med : 0, 0);
        }
        if (bp > 0)
            fprintf(f, "        (pair-opaque best peer at T=%u: %s %.1f Mops/s)\n", T3[q], who, bp);
    }

    fprintf(f, "\n== targets (issue 16), bulk: magpool and kmem_cache >= 1.0x DPDK's cache-512 "
               "mempool ==\n");
    const char *bulk[] = { "bulk-n128-b32", "bulk-n32-b1" };
    const unsigned TB[] = { 1, 2, 8, 64 };
    const struct contender *bct[] = { &ct_magpool, &ct_kmem };
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < 4; q++) {
            const struct contender *dpdk = ct_named("dpdk-mempool"); /* (none with BENCH_NO_DPDK) */
            const struct result *d = dpdk ? find(bulk[k], 64, TB[q], dpdk) : NULL;
            for (int j = 0; j < 2; j++) {
                const struct result *r = find(bulk[k], 64, TB[q], bct[j]);
                if (!r && !d)
                    continue;
                char what[96];
                snprintf(what, sizeof(what), "%s T=%u %s", bulk[k], TB[q], bct[j]->name);
                target(f, what, r && d, r && d && r->med >= d->med, "%.2fx DPDK",
                       r && d ? r->med / d->med : 0, 0);
            }
        }

    /* Every point of this run where the core API (inline or by call) is
     * below the best peer: the rows bench/README.md must explain. */
    fprintf(f, "\n== targets (issue 16), points where magpool or magpool-call < 1.0x the best peer ==\n");
    unsigned below = 0, points = 0;
    for (size_t i = 0; i < nres; i++) {
        const struct result *r = &res[i];
        if (!r->ok || (r->ct != &ct_magpool && r->ct != &ct_magpool_call) || r->kind == WL_CTOR ||
            r->kind == WL_MEMORY || r->kind == WL_CHURN)
            continue;
        double bp = best_peer(r->wl, r->size, r->threads, &who);
        if (bp <= 0)
            continue;
        points++;
        if (r->med < bp) {
            below++;
            fprintf(f, "  below  %-20s %4zu B T=%-3u %-13s %.2fx (%s %.1f Mops/s)\n", r->wl, r->size,
                    r->threads, r->ct->name, r->med / bp, who, bp);
        }
    }
    fprintf(f, "  %u of %u points below 1.0x\n", below, points);

    fprintf(f, "\n== targets (issue 16), callgrind: each front end's hit within 4 instructions of "
               "magpool-call's ==\n");
    const char *ops[] = { "alloc", "free" };
    for (int j = 2; j < 5; j++)
        for (int o = 0; o < 2; o++) {
            double base, v;
            cg_lookup("magpool-call", ops[o], &base);
            cg_lookup(api[j]->name, ops[o], &v);
            char what[96];
            snprintf(what, sizeof(what), "callgrind %s %s", api[j]->name + 8, ops[o]);
            target(f, what, base >= 0 && v >= 0, base >= 0 && v >= 0 && v <= base + 4,
                   "%.1f instructions (magpool-call %.1f)", v, base);
        }
}
#endif

static void print_targets(FILE *f)
{
#ifndef BENCH_NO_MAGPOOL
    const struct contender *m = &ct_magpool;
    const char *who = "?";
    fprintf(f, "\n== targets (issue 3), magpool core API, 64 B objects ==\n");
    const struct result *p1 = find("pair", 64, 1, m), *fl = find("pair", 64, 1, &ct_floor);
    double bm = best_malloc("pair", 64, 1, &who);
    target(f, "1T pair <= 1.5x floor time", p1 && fl, p1 && fl && fl->med / p1->med <= 1.5,
           "magpool %.2f ns/op, floor %.2f ns/op", p1 ? 1e3 / p1->med : 0, fl ? 1e3 / fl->med : 0);
    target(f, "1T pair >= 2x fastest of glibc/jemalloc/tcmalloc/mimalloc", p1 && bm > 0,
           p1 && p1->med >= 2 * bm, "speedup %.2fx (best malloc %.2f Mops/s)",
           p1 && bm > 0 ? p1->med / bm : 0, bm);
    fprintf(f, "        (best malloc: %s)\n", who);
    const struct result *b1 = find("batch1000-lifo", 64, 1, m);
    const struct result *bf = find("batch1000-lifo", 64, 1, &ct_floor);
    target(f, "1T batch-1000 <= 2x floor time", b1 && bf, b1 && bf && bf->med / b1->med <= 2,
           "magpool %.2f ns/op, floor %.2f ns/op", b1 ? 1e3 / b1->med : 0, bf ? 1e3 / bf->med : 0);
    const struct result *pc = find("spsc", 64, 2, m);
    double bpc = best_malloc("spsc", 64, 2, &who);
    target(f, "1 producer + 1 consumer >= 2x best malloc", pc && bpc > 0, pc && pc->med >= 2 * bpc,
           "speedup %.2fx (best malloc %.2f Mops/s)", pc && bpc > 0 ? pc->med / bpc : 0, bpc);
    fprintf(f, "        (best malloc: %s)\n", who);
    const char *wls[] = { "pair", "batch1000-lifo" };
    for (int k = 0; k < 2; k++) {
        const struct result *a = find(wls[k], 64, 64, m), *b = find(wls[k], 64, 2, m);
        char what[80];
        snprintf(what, sizeof(what), "%s: 64 threads >= 0.8x 2 threads aggregate", wls[k]);
        target(f, what, a && b, a && b && a->med >= 0.8 * b->med, "64T %.2f / 2T %.2f Mops/s",
               a ? a->med : 0, b ? b->med : 0);
    }
    /* The target is the fast path itself: magpool_alloc/magpool_free's own
     * instructions per call (run.sh's "magpool-fastpath" rows); the kernel
     * figures (caller's loop included, refills amortised) are shown beside. */
    double ia, ifr, ka, kfr, ba, bfr;
    cg_lookup("magpool-fastpath", "alloc", &ia);
    cg_lookup("magpool-fastpath", "free", &ifr);
    cg_lookup("magpool", "alloc", &ka);
    cg_lookup("magpool", "free", &kfr);
    cg_lookup("magpool", "alloc1000", &ba);
    cg_lookup("magpool", "free1000", &bfr);
    target(f, "callgrind fast-path alloc <= 20 instructions", ia >= 0, ia >= 0 && ia <= 20,
           "%.1f instr/call (amortised over 1000, loop included: %.1f)", ia, ba);
    fprintf(f, "        (16-object kernel, loop included: %.1f alloc, %.1f free)\n", ka, kfr);
    target(f, "callgrind fast-path free <= 20 instructions", ifr >= 0, ifr >= 0 && ifr <= 20,
           "%.1f instr/call (amortised over 1000, loop included: %.1f)", ifr, bfr);
    if (ia < 0)
        fprintf(f, "        (callgrind: run ./bench/run.sh --callgrind, or quick mode with valgrind)\n");

    /* Issue 16: constructed objects.  The magpool contenders construct once
     * (the cache's ctor); every malloc constructs after each malloc and
     * destroys before each free.  "Best malloc" here: the fastest of glibc,
     * jemalloc, tcmalloc, mimalloc and tbbmalloc (CT_MALLOC). */
    fprintf(f, "\n== targets (issue 16), constructed %zu B objects: magpool >= 3x the best "
               "malloc ==\n", sizeof(struct bench_obj));
    const char *cwl[] = { "ctor-pair", "ctor-batch100" };
    const unsigned cthr[] = { 1, 64 };
    const struct contender *cmp[] = { &ct_magpool_call, &ct_kmem };
    for (int k = 0; k < 2; k++)
        for (int q = 0; q < 2; q++) {
            const size_t osz = sizeof(struct bench_obj);
            const struct result *c = find(cwl[k], osz, cthr[q], m);
            double bc = best_of(cwl[k], osz, cthr[q], CT_MALLOC, &who);
            char what[80];
            snprintf(what, sizeof(what), "%s T=%u: magpool >= 3x best malloc", cwl[k], cthr[q]);
            target(f, what, c && bc > 0, c && c->med >= 3 * bc,
                   "speedup %.2fx (magpool %.2f Mops/s)", c && bc > 0 ? c->med / bc : 0,
                   c ? c->med : 0);
            fprintf(f, "        (best malloc: %s %.2f Mops/s;", bc > 0 ? who : "-", bc);
            for (int j = 0; j < 2; j++) {
                const struct result *o = find(cwl[k], osz, cthr[q], cmp[j]);
                if (o && bc > 0)
                    fprintf(f, " %s %.2fx", cmp[j]->name, o->med / bc);
                else
                    fprintf(f, " %s n/a", cmp[j]->name);
            }
            fprintf(f, ")\n");
        }

    print_targets_frontends(f);
#else
    fprintf(f, "\n== targets (issue 3): n/a, built without magpool ==\n");
#endif
}

static void print_how(FILE *f)
{
    fprintf(f, "\n== how each contender is driven ==\n");
    for (unsigned i = 0; i < NCT; i++)
        fprintf(f, "  %-19s %s\n", all_ct[i]->name, all_ct[i]->how);
}

/* ---- callgrind worker ----------------------------------------------------- */
/* Runs each contender's kernels a fixed number of times, single thread, 64 B.
 * run.sh runs this under callgrind with collection toggled on the kernels and
 * divides each kernel's inclusive instruction count by the ops printed here.
 * Fast path: 16 objects allocated then freed (they stay in the thread's cache);
 * amortised: 1000 then 1000. */
static void cg_worker(void)
{
    enum { ROUNDS = 2000, FAST = 16, WIDE = 1000, WROUNDS = 50 };
    static void *v[WIDE];
    for (unsigned i = 0; i < NCT; i++) {
        const struct contender *ct = all_ct[i];
        if ((ct->caps & (CT_NEEDS_EAL | CT_DEFERRED)) && !(ct->caps & CT_MAGPOOL))
            continue; /* DPDK's EAL does not start under valgrind; deferred peers = glibc */
        struct run r;
        memset(&r, 0, sizeof(r));
        r.ct = ct;
        r.size = 64;
        r.threads = 1;
        r.max_live = WIDE;
        r.fixed_ops = 1;
        if (ct->setup(&r) != 0)
            continue;
        struct tctx t = { .r = &r, .pool = r.pool, .size = 64, .rng = 1 };
        if (ct->thread_enter)
            ct->thread_enter(&t);
        for (unsigned k = 0; k < 8; k++) { /* warm the caches outside collection */
            ct->wl->mem_fill(&t, v, WIDE);
            ct->wl->mem_free(&t, v, WIDE);
        }
        for (unsigned k = 0; k < ROUNDS; k++) {
            ct->wl->cg_alloc(&t, v, FAST);
            ct->wl->cg_free(&t, v, FAST);
        }
        for (unsigned k = 0; k < WROUNDS; k++) {
            ct->wl->cg_balloc(&t, v, WIDE);
            ct->wl->cg_bfree(&t, v, WIDE);
        }
        if (ct->thread_leave)
            ct->thread_leave(&t);
        ct->teardown(&r);
        printf("cgops %s %s %u %u\n", ct->name, ct->wl->prefix, ROUNDS * FAST, WROUNDS * WIDE);
    }
}

/* ---- the plan ------------------------------------------------------------- */
static void plan(void)
{
    int full = cfg.mode == MODE_FULL;
    static const unsigned T_ALL[] = { 1, 2, 4, 8, 16, 32, 64 };
    static const size_t SZ_FULL[] = { 16, 64, 256, 2048 };
    const size_t *sizes = full ? SZ_FULL : (const size_t[]){ 64 };
    unsigned nsz = full ? 4 : 1;
#define FOR_T(list)                                                                              \
    for (const unsigned *tp = (list), *te = (list) + sizeof(list) / sizeof(unsigned); tp < te; \
         tp++)

    /* Memory and churn first, in forked children, before EAL or helper threads. */
    for (unsigned s = 0; s < nsz; s++)
        run_forked_point("memory", 0, sizes[s], 1, 1000000, 0);
    {
        static const unsigned TQ[] = { 2, 8, 64 };
        for (unsigned s = 0; s < nsz; s++) {
            if (full) {
                FOR_T(T_ALL) run_forked_point("churn", 1, sizes[s], *tp, 1000, 20);
            } else {
                FOR_T(TQ) run_forked_point("churn", 1, sizes[s], *tp, 1000, 10);
            }
        }
    }
    if (!cfg.only_wl || !strncmp(cfg.only_wl, "dpdk", 4))
        bench_eal_up();

    for (unsigned s = 0; s < nsz; s++) {
        size_t sz = sizes[s];
        FOR_T(T_ALL) run_point("pair", WL_PAIR, 0, 0, sz, *tp);
        FOR_T(T_ALL) run_point("batch1000-lifo", WL_BATCH, 1000, 0, sz, *tp);
        FOR_T(T_ALL) run_point("pair-opaque", WL_PAIR, 1, 0, sz, *tp);
        FOR_T(T_ALL) run_point("batch1000-opaque", WL_BATCH, 1000, BATCH_OPAQUE, sz, *tp);
        if (full) {
            static const unsigned B[] = { 32, 1000, 100000 };
            for (unsigned b = 0; b < 3; b++)
                for (unsigned fifo = 0; fifo < 2; fifo++) {
                    if (B[b] == 1000 && !fifo)
                        continue;
                    char l[40];
                    snprintf(l, sizeof(l), "batch%u-%s", B[b], fifo ? "fifo" : "lifo");
                    FOR_T(T_ALL) run_point(l, WL_BATCH, B[b], fifo, sz, *tp);
                }
            static const unsigned KEEP[] = { 32, 128, 512 }, BULK[] = { 1, 4, 8, 32 };
            for (unsigned k = 0; k < 3; k++)
                for (unsigned b = 0; b < 4; b++) {
                    char l[40];
                    snprintf(l, sizeof(l), "bulk-n%u-b%u", KEEP[k], BULK[b]);
                    FOR_T(T_ALL) run_point(l, WL_BULK, KEEP[k], BULK[b], sz, *tp);
                }
            static const unsigned TP[] = { 2, 4, 8, 16, 32, 64 };
            FOR_T(TP) run_point("spsc", WL_SPSC, 0, 0, sz, *tp);
            FOR_T(T_ALL) run_point("xmalloc", WL_XMALLOC, 0, 0, sz, *tp);
            FOR_T(T_ALL) run_point("larson", WL_LARSON, 1000, 100000, sz, *tp);
            if (sz == 64)
                FOR_T(T_ALL) run_point("deferred", WL_DEFERRED, 0, 0, sz, *tp);
        } else {
            static const unsigned TQ[] = { 1, 2, 8, 64 }, TF[] = { 1, 8, 64 },
                                  TB[] = { 1, 2, 8 }, TP[] = { 2, 4, 16, 64 }, TX[] = { 2, 8, 64 };
            FOR_T(TQ) run_point("batch32-lifo", WL_BATCH, 32, 0, sz, *tp);
            FOR_T(TF) run_point("batch1000-fifo", WL_BATCH, 1000, 1, sz, *tp);
            FOR_T(TB) run_point("batch100000-lifo", WL_BATCH, 100000, 0, sz, *tp);
            FOR_T(TQ) run_point("bulk-n128-b32", WL_BULK, 128, 32, sz, *tp);
            FOR_T(TF) run_point("bulk-n32-b1", WL_BULK, 32, 1, sz, *tp);
            FOR_T(TP) run_point("spsc", WL_SPSC, 0, 0, sz, *tp);
            FOR_T(TX) run_point("xmalloc", WL_XMALLOC, 0, 0, sz, *tp);
            FOR_T(TQ) run_point("larson", WL_LARSON, 1000, 20000, sz, *tp);
            FOR_T(TQ) run_point("deferred", WL_DEFERRED, 0, 0, sz, *tp);
        }
    }

    /* Constructed objects (issue 16): one size, the struct's own. */
    {
        static const unsigned TC[] = { 1, 2, 4, 8, 16, 32, 64 };
        FOR_T(TC) run_point("ctor-pair", WL_CTOR, 1, 0, sizeof(struct bench_obj), *tp);
        FOR_T(TC) run_point("ctor-batch100", WL_CTOR, 100, 0, sizeof(struct bench_obj), *tp);
    }
#undef FOR_T
}

/* ---- malloc must be glibc's --------------------------------------------- */
static int malloc_is_glibc(void)
{
    Dl_info di;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (!m || !dladdr(m, &di) || !di.dli_fname)
        return 0;
    if (!strstr(di.dli_fname, "libc.so")) {
        fprintf(stderr, "bench: malloc resolves to %s, not glibc: fix the link order "
                        "(see bench/README.md)\n", di.dli_fname);
        return 0;
    }
    void *p = malloc(64);
    int ok = p && malloc_usable_size(p) == 72; /* glibc: 64 B request -> 72 usable */
    free(p);
    if (!ok)
        fprintf(stderr, "bench: malloc_usable_size(malloc(64)) is not glibc's 72\n");
    return ok;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench [--quick|--full|--cg-worker] [--reps N] [--ms N] [--out DIR]\n"
                    "             [--only WORKLOAD-PREFIX,...] [--contenders NAME-PREFIX,...]\n"
                    "             [--threads N,...] [--pin-cpu CPU|-1]\n"
                    "       bench --report [--out DIR] [--cg-csv FILE]   (tables and targets of DIR/results.csv)\n"
                    "             [--cg-csv FILE] [--check-malloc]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            cfg.mode = MODE_QUICK;
        } else if (!strcmp(argv[i], "--full")) {
            cfg.mode = MODE_FULL;
            cfg.reps = 5;
            cfg.run_ms = 100;
        } else if (!strcmp(argv[i], "--cg-worker")) {
            cfg.mode = MODE_CG_WORKER;
        } else if (!strcmp(argv[i], "--check-malloc")) {
            return malloc_is_glibc() ? 0 : 1;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            cfg.reps = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--ms") && i + 1 < argc) {
            cfg.run_ms = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            cfg.out_dir = argv[++i];
        } else if (!strcmp(argv[i], "--cg-csv") && i + 1 < argc) {
            cfg.cg_csv = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            cfg.only_wl = argv[++i];
        } else if (!strcmp(argv[i], "--contenders") && i + 1 < argc) {
            cfg.only_ct = argv[++i];
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            cfg.only_thr = argv[++i];
        } else if (!strcmp(argv[i], "--report")) {
            cfg.report = true;
        } else if (!strcmp(argv[i], "--pin-cpu") && i + 1 < argc) {
            cfg.pin_cpu = atoi(argv[++i]);
        } else {
            usage();
        }
    }
    if (cfg.reps < 1)
        cfg.reps = 1;
    if (cfg.pin_cpu == -2) { /* default: the last CPU this process may run on (not CPU 0, */
        cpu_set_t set;       /* which takes most interrupts) */
        cfg.pin_cpu = -1;
        if (sched_getaffinity(0, sizeof set, &set) == 0)
            for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &set))
                    cfg.pin_cpu = c;
    }
    if (!malloc_is_glibc())
        return 1;
    if (cfg.mode == MODE_CG_WORKER) {
        cg_worker();
        return 0;
    }
    mkdir(cfg.out_dir, 0755);
    printf("magpool thread-scaling benchmark: %s mode, %u runs x %u ms per contender per point, "
           "%ld CPUs\n", cfg.mode == MODE_FULL ? "full" : "quick", cfg.reps, cfg.run_ms,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("op = one object allocated and freed; Mops/s aggregate over threads; "
           "ns/op = 1000/Mops (in CSV)\n");
    if (cfg.pin_cpu >= 0)
        printf("single-thread points run on CPU %d (--pin-cpu)\n", cfg.pin_cpu);
    fflush(stdout);
    char path[512];
    snprintf(path, sizeof(path), "%s/results.csv", cfg.out_dir);
    if (cfg.report) {
        if (read_csv(path) < 0)
            return 2;
    } else {
        plan();
        write_csv(path);
    }
    print_tables(stdout);
    print_how(stdout);
    print_targets(stdout);
    snprintf(path, sizeof(path), "%s/table.txt", cfg.out_dir);
    FILE *f = fopen(path, "w");
    if (f) {
        print_tables(f);
        print_how(f);
        print_targets(f);
        fclose(f);
    }
    printf("\nCSV: %s/results.csv  table: %s/table.txt\n", cfg.out_dir, cfg.out_dir);
    if (spsc_checked || spsc_failed)
        printf("spsc check: %llu objects handed over and freed once, in order; %llu rings failed\n",
               (unsigned long long)spsc_checked, (unsigned long long)spsc_failed);
    if (ctor_checked || ctor_failed)
        printf("ctor check: %llu objects used; %llu were not in constructed state\n",
               (unsigned long long)ctor_checked, (unsigned long long)ctor_failed);
    return spsc_failed || ctor_failed ? 1 : 0;
}
