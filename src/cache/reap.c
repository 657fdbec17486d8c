/*
 * Reaping, shrinking and magazine sizing (design: top of src/core/cache.c).
 *
 * GUARANTEES
 *  - Slow paths call mp_reap_tick (every 16th slow path of a thread); at
 *    most once per MP_REAP_MS per cache (a CAS on the last reap time,
 *    CLOCK_MONOTONIC_COARSE) one thread closes the depot's working-set
 *    interval and tears down the magazines that went unused through all of
 *    it (Bonwick & Adams 2001 sec. 3.3, UMA's trim): their objects go back to
 *    the slab layer, the magazines are retired, then empty slabs go back to
 *    the system (mp_slab_reap).
 *  - The reaper thread does the same when no thread takes slow paths (a
 *    server whose threads all sleep): while at least one cache exists it
 *    wakes every MP_REAP_MS, ticks every cache, and takes back the
 *    magazines of every thread that made no call at all since its previous
 *    pass (idle.c, mp_idle_reclaim_quiet), so an idle thread's magazines
 *    are back within two intervals.  It is started once a cache exists and
 *    a second thread has called the library (a single-threaded process
 *    never gets one), exits when the last cache is gone, and is started
 *    again in a fork child by its next creation or reap tick (not under
 *    TSan or ASan).  MAGPOOL_REAPER=0 in
 *    the environment turns it off (then only shrink, magpool_reap and the
 *    slow paths reclaim).
 *  - magpool_cache_shrink gives back everything but live objects and other
 *    threads' loaded/previous magazines: the caller's magazines, its deferred
 *    batch (sealed), every depot magazine, every empty slab.  For TYPESAFE
 *    caches the slab pages go back only after a grace period of the cache's
 *    domain.  It also shrinks the magazine size one step.  The torn-down
 *    magazines' slots are returned and trimmed before it returns when no
 *    reader is inside a section (non-blocking polls; else on the last
 *    callback), and the slabs' pages and free stacks go back (neither is
 *    malloc'd: meta.h): the RSS of a burst really goes back (test_core:
 *    test_shrink_rss_nosync).
 *  - Magazine sizes follow the ladder described below ("The magazine
 *    ladder").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache_impl.h"
#include "fork.h"
#include "meta.h"

#define MP_REAP_MS 100u
#define MP_GROW_CONTENTION 64u
#define MP_MAG_BYTES (32u << 10) /* initial magazine size: objects per magazine, in bytes */

/*
 * The magazine ladder: the sizes a cache's magazines take, and how a cache
 * moves between them.  (The design statement, cache_impl.h, magpool.h and
 * bench/README.md refer here.)
 *
 *  Steps.  kmem's 1, 3, 7, 15, 31, 47, 63, 95, 143, extended by 191, 255, 383
 *  and 511 for small objects, whose magazines would otherwise hold far less
 *  than MP_MAG_BYTES: 511 rounds take about one 4 KiB page of pointers (DPDK
 *  allows per-lcore caches of up to 512 objects).  Every size is clamped to
 *  the cache's mag_min .. mag_max (by default 1 .. MP_MAG_MAX_DEFAULT, the
 *  top step).  The magazine area's slot classes fit these steps (depot.c).
 *
 *  Start (mp_mag_initial).  The largest step whose magazine holds at most
 *  MP_MAG_BYTES (32 KiB) of objects: 511 rounds up to 64-byte objects, 255 at
 *  96 and 128, 95 at 256, 63 at 512, 31 at 1 KiB, 15 at 2 KiB, 7 at 4 KiB, 3
 *  at 8 KiB, 1 at 16 KiB and above.  Not Bonwick's small start: every
 *  exchange costs a few atomic RMWs (~6 per magazine each way) and a
 *  slow-path call, which at 15 rounds dominated batch work (20 ns/op), and
 *  the bench starts a fresh cache per run, so growth on contention (which
 *  does trigger: 15 -> 143 within one 100 ms reap interval at 64 threads)
 *  comes too late for short-lived caches.  Two magazines of 511 hold a 1000-object batch, so a
 *  thread that allocates and frees batches of up to ~1000 never meets the
 *  depot in steady state.  With 255 rounds each such batch took four depot
 *  exchanges, and two threads trading magazines through one LIFO depot were
 *  bimodal (one thread reallocating the other's just-freed objects, each a
 *  cache-line transfer): bench batch1000, 2 threads, 318 -> 490 Mops/s,
 *  1 thread 193 -> 260.
 *
 *  Moves (mp_mag_resize).  One step up when the depot saw more than
 *  MP_GROW_CONTENTION failed CASes in a reap interval (mp_reap_tick); one
 *  step down under memory pressure (the slab layer's ENOMEM, magazine.c) and
 *  on shrink.  The size is a hint read when a magazine is made (c_mag_size,
 *  relaxed); magazines carry their own cap, and those of an old size die out
 *  as they empty (magazine.c retires an empty of another size it meets).
 *
 *  Price.  A thread holds at most two magazines per cache (loaded and
 *  previous; a deferred batch besides), ~64 KiB of objects at the start
 *  size; a magazine costs ~8-9 bytes per round in the magazine area (1280
 *  bytes for 143, 4160 for 511: depot.c's slot classes).
 */
static const unsigned mp_mag_steps[] = { 1, 3, 7, 15, 31, 47, 63, 95, 143, 191, 255, 383, 511 };
#define MP_NSTEPS (sizeof mp_mag_steps / sizeof mp_mag_steps[0])

static unsigned mp_clamp(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The ladder's start for objects of `size` bytes, within lo .. hi. */
unsigned mp_mag_initial(size_t size, unsigned lo, unsigned hi)
{
    size_t fit = MP_MAG_BYTES / (size ? size : 1);
    unsigned start = mp_mag_steps[0];
    for (size_t i = 0; i < MP_NSTEPS && mp_mag_steps[i] <= fit; i++)
        start = mp_mag_steps[i];
    return mp_clamp(start, lo, hi);
}

unsigned mp_mag_step_at_most(size_t n, unsigned lo)
{
    unsigned step = mp_mag_steps[0];
    for (size_t i = 0; i < MP_NSTEPS && mp_mag_steps[i] <= n; i++)
        step = mp_mag_steps[i];
    return step < lo ? lo : step;
}

/* One step up (dir > 0) or down (dir < 0) the ladder, within the cache's bounds. */
void mp_mag_resize(struct magpool_cache *c, int dir)
{
    unsigned cur = mp_load_relaxed(&c->c_mag_size);
    unsigned next = cur;
    if (dir > 0) {
        for (size_t i = 0; i < MP_NSTEPS; i++)
            if (mp_mag_steps[i] > cur) {
                next = mp_mag_steps[i];
                break;
            }
    } else {
        for (size_t i = MP_NSTEPS; i-- > 0;)
            if (mp_mag_steps[i] < cur) {
                next = mp_mag_steps[i];
                break;
            }
    }
    next = mp_clamp(next, c->c_mag_min, c->c_mag_max);
    /* Relaxed CAS: the size is a hint; a lost race just skips one resize. */
    if (next != cur && mp_cas_strong_relaxed(&c->c_mag_size, &cur, next))
        mp_fetch_add_relaxed(&c->c_mag_resizes, 1);
}

/* Tear down up to nfull full and nempty empty depot magazines (counted in
 * c_reaps). */
static size_t mp_depot_trim(struct magpool_cache *c, uint64_t nfull, uint64_t nempty)
{
    size_t done = 0;
    struct mp_mag *m;
    while (nfull-- > 0 && (m = mp_depot_pop_full(&c->c_depot)) != NULL) {
        mp_mag_teardown(c, m);
        done++;
    }
    while (nempty-- > 0 && (m = mp_depot_pop_empty(&c->c_depot)) != NULL) {
        mp_mag_teardown(c, m);
        done++;
    }
    if (done)
        mp_fetch_add_relaxed(&c->c_reaps, done);
    return done;
}

size_t mp_depot_drain(struct magpool_cache *c)
{
    mp_depot_backlog_release(&c->c_depot);
    return mp_depot_trim(c, UINT64_MAX, UINT64_MAX);
}

/* TYPESAFE: mp_slab_reap's continuation runs after a grace period. */
struct mp_reap_defer {
    struct mp_retire_node node;
    void (*fn)(void *);
    void *arg;
    magpool_domain_t *domain;
    bool used;
};

static void mp_reap_deferred_run(struct mp_retire_node *node)
{
    struct mp_reap_defer *rd = (struct mp_reap_defer *)node;
    rd->fn(rd->arg);
    mp_meta_free(rd, sizeof *rd);
}

static void mp_reap_defer(void (*fn)(void *), void *arg, void *ctx)
{
    struct mp_reap_defer *rd = ctx;
    rd->fn = fn;
    rd->arg = arg;
    rd->used = true;
    mp_retire(rd->domain, &rd->node, mp_reap_deferred_run);
}

size_t mp_slab_reap_cache(struct magpool_cache *c)
{
    if (!(c->c_flags & MAGPOOL_TYPESAFE))
        return mp_slab_reap(c->c_slab, NULL, NULL);
    struct mp_reap_defer *rd = mp_meta_alloc(sizeof *rd);
    if (rd == NULL)
        return 0; /* keep the empty slabs: better than releasing them early */
    rd->domain = c->c_domain;
    size_t pages = mp_slab_reap(c->c_slab, mp_reap_defer, rd);
    if (!rd->used)
        mp_meta_free(rd, sizeof *rd);
    return pages;
}

static uint64_t mp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void mp_reap_tick(struct magpool_cache *c)
{
    uint64_t now = mp_now_ms();
    uint64_t last = mp_load_relaxed(&c->c_last_reap_ms);
    if (now - last < MP_REAP_MS)
        return;
    /* Relaxed CAS: only elects one reaper per interval; the depot and slab
     * layers order their own data. */
    if (!mp_cas_strong_relaxed(&c->c_last_reap_ms, &last, now))
        return;
    mp_reaper_start(); /* after a fork, or if its creation failed */
    /* Magazines are in transit below (popped, then torn down): under the
     * caller's gate (fork.c).  A slow path already holds it (it nests); the
     * reaper thread takes its own, so a fork cannot fall between the pop
     * and the teardown and leave the child short of the magazine's objects
     * (stress/fork: conservation). */
    struct mp_thread *t = mp_gate_enter_self();
    uint64_t unused_full, unused_empty;
    mp_moves_begin(c); /* depot -> slabs -> system (stats.c) */
    mp_depot_backlog_tick(&c->c_depot); /* a stopped flow's backlog joins the working set */
    mp_depot_ws_close(&c->c_depot, &unused_full, &unused_empty);
    mp_depot_trim(c, unused_full, unused_empty);
    mp_gate_leave_self(t);
    uint64_t cont = mp_load_relaxed(&c->c_depot.contention);
    uint64_t seen = mp_load_relaxed(&c->c_last_contention);
    mp_store_relaxed(&c->c_last_contention, cont);
    if (cont - seen > MP_GROW_CONTENTION)
        mp_mag_resize(c, +1);
    mp_slab_reap_cache(c);
    mp_moves_end(c);
}

/* The magazines just torn down were retired (their slots come back after a
 * grace period).  Poll the default domain a few times -- non-blocking, so
 * shrink stays callable inside a read-side section and from NOFAIL retries:
 * with no reader inside a section, two or three polls end the grace period
 * (reclaim.c, R3/R4) -- then give the free slots' pages back.  With readers
 * inside, the slots come back later and the last one triggers the trim
 * (depot.c, mag_reclaimed). */
static void mp_mag_area_release(void)
{
    magpool_domain_t *d = mp_domain_default();
    for (int i = 0; i < 3 && mp_domain_pending(d) != 0; i++)
        mp_domain_poll(d);
    mp_mag_area_trim();
}

void mp_release_unused(void)
{
    mp_mag_area_release(); /* polls the default domain first: callbacks free metadata */
    mp_slab_pool_trim();
    mp_meta_trim();
    mp_page_trim();
    mp_thread_spares_trim();
}

/* magpool_cache_shrink but for other threads' magazines. */
static void mp_cache_shrink(struct magpool_cache *c)
{
    /* Magazines are in transit below: under the caller's gate (fork.c). */
    struct mp_thread *t = mp_gate_enter_self();
    if (t != NULL)
        mp_tc_flush(t, c); /* also seals the caller's deferred batch */
    mp_domain_poll(c->c_domain);
    mp_moves_begin(c); /* depot -> slabs -> system (stats.c) */
    mp_depot_drain(c);
    mp_slab_reap_cache(c);
    mp_moves_end(c);
    mp_mag_resize(c, -1);
    mp_mag_area_release();
    mp_gate_leave_self(t);
}

MAGPOOL_API int magpool_cache_shrink(magpool_cache_t *c)
{
    if (c == NULL || mp_load_relaxed(&c->c_destroyed)) {
        errno = EINVAL;
        return -1;
    }
    mp_idle_reclaim(c); /* other threads' magazines first: they go to the depot */
    mp_cache_shrink(c);
    return 0;
}

/* Shrink every cache, outside any read-side section: first every other
 * thread's magazines of every cache (idle.c), then the caches, pinned a batch
 * at a time inside the walk's section (another thread may destroy one
 * meanwhile: magpool_reap is called from NOFAIL retries, not ordered with
 * anyone's destroy), and shrunk after it, so the default domain's grace
 * periods can end and the torn-down magazines' slots come back before
 * magpool_reap returns (mp_mag_area_release). */
MAGPOOL_API void magpool_reap(void)
{
    mp_idle_reclaim(NULL);
    struct magpool_cache *batch[32];
    unsigned from = 1;
    while (from < MAGPOOL_MAX_CACHES) {
        size_t n = mp_cache_pin_some(&from, batch, sizeof batch / sizeof *batch);
        for (size_t i = 0; i < n; i++) {
            mp_cache_shrink(batch[i]);
            mp_cache_unpin(batch[i]);
        }
    }
    mp_release_unused();
}

/* An allocation of c found no memory: take back other threads' magazines of
 * c, at most once per clock tick of CLOCK_MONOTONIC_COARSE (a few ms) per
 * cache, so a caller spinning on the object limit does not run a membarrier
 * per attempt.  True if something came back. */
bool mp_pressure_reclaim(struct magpool_cache *c)
{
    uint64_t now = mp_now_ms(), last = mp_load_relaxed(&c->c_last_pressure_ms);
    /* Relaxed CAS: only elects one reclaimer per tick. */
    if (now == last || !mp_cas_strong_relaxed(&c->c_last_pressure_ms, &last, now))
        return false;
    return mp_idle_reclaim(c) > 0;
}

/* ---- the reaper thread ---------------------------------------------------- */

static pthread_mutex_t mp_reaper_lock = PTHREAD_MUTEX_INITIALIZER; /* a leaf (fork.c) */
static _Atomic bool mp_reaper_running; /* written under mp_reaper_lock */
static _Atomic int mp_reaper_enabled = -1; /* -1: environment not read yet; written under mp_reaper_lock */

/* One pass: tick every live cache (pinned, outside any read-side section),
 * then idle threads' magazines.  Returns the caches seen. */
static size_t mp_reaper_pass(void)
{
    struct magpool_cache *batch[32];
    unsigned from = 1;
    size_t seen = 0;
    while (from < MAGPOOL_MAX_CACHES) {
        size_t n = mp_cache_pin_some(&from, batch, sizeof batch / sizeof *batch);
        for (size_t i = 0; i < n; i++) {
            mp_domain_poll(batch[i]->c_domain);
            mp_reap_tick(batch[i]);
            mp_cache_unpin(batch[i]);
        }
        seen += n;
    }
    if (seen > 0 && mp_idle_reclaim_quiet() > 0) {
        /* The objects went to the slabs: give the empty ones back now. */
        for (from = 1; from < MAGPOOL_MAX_CACHES;) {
            size_t n = mp_cache_pin_some(&from, batch, sizeof batch / sizeof *batch);
            for (size_t i = 0; i < n; i++) {
                mp_slab_reap_cache(batch[i]);
                mp_cache_unpin(batch[i]);
            }
        }
        mp_mag_area_release();
    }
    return seen;
}

static void *mp_reaper_main(void *arg)
{
    (void)arg;
    for (;;) {
        nanosleep(&(struct timespec){ .tv_nsec = MP_REAP_MS * 1000000L }, NULL);
        size_t seen = mp_reaper_pass();
        mp_thread_spares_trim(); /* arrays parked by exited threads: resident one tick at most */
        pthread_mutex_lock(&mp_reaper_lock);
        if (seen == 0) {
            /* No cache left: exit; a creation starts a new reaper. */
            mp_store_relaxed(&mp_reaper_running, false);
            pthread_mutex_unlock(&mp_reaper_lock);
            mp_idle_release();
            magpool_thread_flush();
            return NULL;
        }
        pthread_mutex_unlock(&mp_reaper_lock);
    }
}

void mp_reaper_start(void)
{
    /* Relaxed: a hint; the decision is made under the lock. */
    if (mp_load_relaxed(&mp_reaper_running) || mp_load_relaxed(&mp_reaper_enabled) == 0)
        return;
    /* Only once two threads have state: a single-threaded process reaches
     * all its magazines through its own calls, and stays single-threaded
     * (fork, and sanitizers' rules for fork children, depend on it).  Read
     * before mp_reaper_lock, a leaf. */
    pthread_mutex_lock(&mp_threads_lock);
    bool threads = mp_threads != NULL && mp_threads->th_next != NULL;
    pthread_mutex_unlock(&mp_threads_lock);
    if (!threads)
        return;
    mp_fork_init(); /* fork.c takes mp_reaper_lock in its prepare */
    pthread_mutex_lock(&mp_reaper_lock);
    if (mp_load_relaxed(&mp_reaper_enabled) < 0) {
        const char *env = getenv("MAGPOOL_REAPER");
        mp_store_relaxed(&mp_reaper_enabled, env == NULL || strcmp(env, "0") != 0);
    }
    if (mp_load_relaxed(&mp_reaper_enabled) > 0 && !mp_load_relaxed(&mp_reaper_running)) {
        pthread_attr_t attr;
        pthread_t tid;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256u << 10); /* sanitizers' frames are large */
        /* Every signal blocked in the reaper (it inherits this mask), so
         * none of the application's is delivered to it. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        bool ok = pthread_create(&tid, &attr, mp_reaper_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (ok)
            pthread_setname_np(tid, "magpool-reaper");
        mp_store_relaxed(&mp_reaper_running, ok);
    }
    pthread_mutex_unlock(&mp_reaper_lock);
}

/* Threads in this process (/proc/self/stat, field 20), 0 if unknown.  No
 * allocation: it runs in fork's prepare handler. */
static unsigned mp_process_threads(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return 0;
    /* field 3 (state) follows ") "; num_threads is field 20 */
    for (int field = 2; field < 20 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    return p != NULL ? (unsigned)strtoul(p + 1, NULL, 10) : 0;
}

/* Set by fork's prepare handler under a sanitizer: the parent had other
 * threads at the fork (see mp_reaper_fork_child). */
static bool mp_reaper_fork_multi;

void mp_reaper_fork_lock(void)
{
    pthread_mutex_lock(&mp_reaper_lock);
    if (mp_san() & (MP_SAN_TSAN | MP_SAN_ASAN))
        mp_reaper_fork_multi = mp_process_threads() != 1;
}

void mp_reaper_fork_unlock(void)
{
    pthread_mutex_unlock(&mp_reaper_lock);
}

void mp_reaper_fork_child(void)
{
    /* No reaper in the child: the next creation or reap tick starts one --
     * except under ThreadSanitizer or AddressSanitizer, whose runtimes
     * forbid (TSan's die_after_fork) or may hang (ASan's allocator lock,
     * held by another parent thread at the fork) a thread created in the
     * child of a multi-threaded process.  The child of a single-threaded
     * parent may start one (the handlers are registered at load now, so
     * they run at every fork, not only after the parent's first cache). */
    mp_store_relaxed(&mp_reaper_running, false);
    if ((mp_san() & (MP_SAN_TSAN | MP_SAN_ASAN)) && mp_reaper_fork_multi)
        mp_store_relaxed(&mp_reaper_enabled, 0);
    pthread_mutex_unlock(&mp_reaper_lock);
}

/* The wait between two tries of a MAGPOOL_NOFAIL / __GFP_NOFAIL allocation:
 * give back what every cache holds (magpool_reap: outside any read-side
 * section, so grace periods can end), then sleep a millisecond for other
 * threads to free. */
void mp_nofail_wait(void)
{
    magpool_reap();
    nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
}
