/*
 * Per-thread state and thread exit (design: top of src/core/cache.c, "Threads").
 *
 * GUARANTEES
 *  - A thread starts with mp_tcs pointing at a static tcache array on which
 *    every hit misses (mp_empty_tcs), so its first alloc/free of any cache
 *    misses the fast path with no "initialised?" test; the first slow path
 *    creates its struct mp_thread (tcache array mmap'd MAP_NORESERVE:
 *    untouched entries cost nothing), registers a pthread key destructor
 *    and links it into mp_threads.
 *  - At thread exit (the key destructor; re-armed by pthread itself if a later
 *    destructor allocates again, since the slow path sets the key anew) every
 *    magazine the thread holds is put (to its depot, as a rule: magazine.c,
 *    MAGAZINE VERBS), its deferred batches are sealed, its counters are folded into the caches, and its state is
 *    unlinked and freed.  Nothing is stranded: objects it freed that other
 *    threads allocated are simply rounds of those magazines.
 *  - Tcache arrays are recycled: an exiting thread zeroes the entries it
 *    ever used (ids 0 .. th_max_id; flushing has already emptied them) and
 *    parks the array on a small spare stack (MP_SPARE_TCS, under
 *    mp_threads_lock) that the next new thread takes, so thread churn costs
 *    no mmap/munmap (a munmap is a TLB shootdown on every CPU).  A small
 *    used range (MP_TCS_MEMSET_MAX) is zeroed with memset and parked
 *    resident ("dirty"), not madvise'd: madvise(MADV_DONTNEED) is a TLB
 *    shootdown too, and with threads that live a few milliseconds it was a
 *    third of the run (bench larson, T=64).  The reaper's tick and
 *    mp_release_unused give the dirty pages back (mp_thread_spares_trim),
 *    so parked arrays hold memory for one reap interval at most.
 *  - Readers of other threads' tcaches (stats.c, mp_cache_live) walk
 *    mp_threads under mp_threads_lock, so an exiting thread may unmap its
 *    tcache array right after unlinking itself under that lock: no grace
 *    period is needed (a choice: stats are rare and short, exit is rare).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache_impl.h"
#include "fork.h"
#include "meta.h"
#include "page.h"

/* The tcache array of every thread that has none of its own.  Its states
 * are shared, so a hit may read another thread's in-hit mark in top
 * (magpool.h: top + 1), and overlapping hits may leave a small number
 * there (each stores what it loaded, or that plus 1); low = 2^62 makes
 * every hit miss whatever number top holds (alloc: top > low, bulk alloc:
 * top >= low + n, free: top < high == NULL, deferred: low < high).  256 KiB
 * of data, of which only the pages holding states that first calls index
 * are touched. */
#define MP_EMPTY_LOW ((void **)((uintptr_t)1 << 62))
static struct mp_tcache mp_empty_tcs[MAGPOOL_MAX_CACHES] = {
    [0 ... MAGPOOL_MAX_CACHES - 1] = { .tc_hit = { .low = MP_EMPTY_LOW } }
};
__thread void *magpool_tcs_ __attribute__((tls_model("initial-exec"), visibility("default"))) = mp_empty_tcs;
/* Not static: GNU ld (gcc -O0, shared library) resolved the initial-exec
 * TPOFF64 relocation of a *static* TLS variable in .tbss against the wrong
 * section offset (mp_self read mp_tcs); a hidden global avoids it. */
__thread struct mp_thread *mp_self __attribute__((tls_model("initial-exec")));

pthread_mutex_t mp_threads_lock = PTHREAD_MUTEX_INITIALIZER;
struct mp_thread *mp_threads;

/* Parked tcache arrays of exited threads, all-zero (see GUARANTEES), and
 * for each the bytes from its start that are resident (0: none, madvise'd
 * or never touched). */
#define MP_SPARE_TCS 64u
#define MP_TCS_MEMSET_MAX ((size_t)4 * MP_PAGE_SIZE)
static struct mp_tcache *mp_spare_tcs[MP_SPARE_TCS];
static size_t mp_spare_dirty[MP_SPARE_TCS];
static unsigned mp_nspare_tcs;

/* Thread creation vs fork: held while a state is made and linked, and by
 * fork's prepare handler, so no state appears between the moment fork.c
 * holds every gate and the fork. */
static pthread_mutex_t mp_thread_create_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_key_t mp_thread_key;
static bool mp_thread_key_made; /* under mp_thread_create_lock, which fork's
                                 * prepare handler holds: no fork can find the
                                 * key half made (pthread_once could be) */

static void mp_thread_exit(void *arg);
static void mp_thread_key_init(void)
{
    if (pthread_key_create(&mp_thread_key, mp_thread_exit) != 0)
        abort(); /* out of keys at start: nothing sensible to do */
}

struct mp_thread *mp_thread_self(void)
{
    return mp_self;
}

static MP_COLD struct mp_thread *mp_thread_create(void)
{
    size_t bytes = sizeof(struct mp_tcache) * MAGPOOL_MAX_CACHES;
    struct mp_thread *t = mp_meta_alloc_lasting(sizeof *t);
    if (t == NULL)
        return NULL;
    mp_fork_init();
    pthread_mutex_init(&t->th_gate, NULL);
    pthread_mutex_lock(&mp_thread_create_lock);
    void *tc = NULL;
    pthread_mutex_lock(&mp_threads_lock);
    if (mp_nspare_tcs > 0) /* dirty or not, all-zero */
        tc = mp_spare_tcs[--mp_nspare_tcs];
    pthread_mutex_unlock(&mp_threads_lock);
    if (tc == NULL) {
        /* fault injection reaches the per-thread arrays too (page.h) */
        tc = mp_fault_now() ? MAP_FAILED
                            : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                                   -1, 0);
        if (tc == MAP_FAILED) {
            pthread_mutex_unlock(&mp_thread_create_lock);
            pthread_mutex_destroy(&t->th_gate);
            mp_meta_free_lasting(t, sizeof *t);
            errno = ENOMEM;
            return NULL;
        }
    }
    t->th_tc = tc;
    if (!mp_thread_key_made) {
        mp_thread_key_init();
        mp_thread_key_made = true;
    }
    if (pthread_setspecific(mp_thread_key, t) != 0) {
        munmap(tc, bytes);
        pthread_mutex_unlock(&mp_thread_create_lock);
        pthread_mutex_destroy(&t->th_gate);
        mp_meta_free_lasting(t, sizeof *t);
        errno = ENOMEM;
        return NULL;
    }
    /* Acquire: pairs with the release increment in magpool_cache_destroy
     * (lifecycle.c), like the load in mp_thread_housekeeping.  We start with
     * no magazines, so any gen seen is fine as a baseline: weakened to
     * relaxed nothing breaks here (an older baseline only costs one extra
     * flush walk in housekeeping); acquire keeps the two loads alike. */
    t->th_seen_gen = mp_load_acquire(&mp_destroy_gen);
    pthread_mutex_lock(&mp_threads_lock);
    t->th_next = mp_threads;
    bool second = mp_threads != NULL;
    if (mp_threads)
        mp_threads->th_prevt = t;
    mp_threads = t;
    pthread_mutex_unlock(&mp_threads_lock);
    pthread_mutex_unlock(&mp_thread_create_lock);
    mp_self = t;
    magpool_tcs_ = t->th_tc;
    if (second)
        mp_reaper_start(); /* reap.c: from the second thread on */
    return t;
}

struct mp_thread *mp_thread_get(bool nowait)
{
    if (mp_self != NULL)
        return mp_self;
    if (nowait) /* creating state mmaps and takes locks */
        return NULL;
    return mp_thread_create();
}

/* Become a holder of c: load a first (empty) magazine into t's tcache. */
bool mp_tc_hold(struct mp_thread *t, struct magpool_cache *c, unsigned aflags)
{
    struct mp_tcache *tc = &t->th_tc[c->c_id];
    if (mp_tc_loaded(tc) != NULL)
        return true;
    if (aflags & MAGPOOL_NOWAIT) /* the registry lock may block */
        return false;
    struct mp_mag *m = mp_mag_alloc(mp_mag_size(c));
    if (m == NULL)
        return false;
    pthread_mutex_lock(&mp_registry_lock);
    bool ok = !mp_load_relaxed(&c->c_destroyed);
    if (ok) {
        c->c_holders++;
        mp_store_relaxed(&c->c_threads, mp_load_relaxed(&c->c_threads) + 1); /* under the lock */
    }
    pthread_mutex_unlock(&mp_registry_lock);
    if (!ok) {
        mp_mag_retire(m);
        return false;
    }
    t->th_held[c->c_id / 64] |= (uint64_t)1 << (c->c_id % 64);
    if (c->c_id > t->th_max_id)
        t->th_max_id = c->c_id;
    if (mp_tc_taken(tc))
        t->th_taken--; /* installing over a state a reclaim took (idle.c) */
    mp_tc_install(tc, m, NULL);
    return true;
}

/* The pages of t's tcache array it ever used (ids 0 .. th_max_id). */
static size_t mp_tcs_used_bytes(const struct mp_thread *t)
{
    size_t bytes = sizeof(struct mp_tcache) * ((size_t)t->th_max_id + 1);
    return (bytes + MP_PAGE_SIZE - 1) & ~(MP_PAGE_SIZE - 1);
}

static bool mp_holds_none(const struct mp_thread *t)
{
    for (unsigned w = 0; w < MP_HELD_WORDS; w++)
        if (t->th_held[w] != 0)
            return false;
    return true;
}

/* t holds no cache any more (t's gate held, and t is the caller or runs no
 * hit): its tcache array is all zero (I3) but for states a reclaim took,
 * which no hit of t is in flight to read, so give its pages back; the
 * mapping stays (MAP_NORESERVE), and the pages come back zero-filled when
 * t holds a cache again. */
void mp_tcs_release_if_idle(struct mp_thread *t)
{
    /* th_taken counts taken states left only once they are zero: a failed
     * madvise leaves them (mp_tcs_release_if_clear relies on the count) */
    if (t->th_exiting)
        return; /* mp_thread_exit zeroes the array and parks it (GUARANTEES) */
    if (mp_holds_none(t) && madvise(t->th_tc, mp_tcs_used_bytes(t), MADV_DONTNEED) == 0)
        t->th_taken = 0;
}

/* As mp_tcs_release_if_idle, by a thread holding t's gate while t may run
 * hits: only if no state was taken either, so every state is zero (I3),
 * top's in-hit mark aside.  Then every hit in flight loaded top == 0 and
 * misses whatever bound it reads, before or after the pages go (idle.c); a
 * mark stored to a dropped page is lost, and the hit's own H3 stores 0
 * anyway.  A taken state (its old top and stop mark) keeps the pages:
 * dropped, its low would read 0 beside an old top. */
void mp_tcs_release_if_clear(struct mp_thread *t)
{
    if (mp_holds_none(t) && t->th_taken == 0)
        madvise(t->th_tc, mp_tcs_used_bytes(t), MADV_DONTNEED);
}

void mp_tcs_clear_taken(unsigned id)
{
    pthread_mutex_lock(&mp_threads_lock);
    for (struct mp_thread *t = mp_threads; t != NULL; t = t->th_next) {
        /* trylock: the gate comes before the registry and thread locks
         * (idle.c, "Lock order"); a thread whose gate is held keeps its
         * taken state, which every hit misses, until its next install */
        if (t->th_orphan || pthread_mutex_trylock(&t->th_gate) != 0)
            continue;
        struct mp_tcache *tc = &t->th_tc[id];
        /* A taken state (not loaded, low the stop mark's): no thread holds
         * the cache and no call on it is legal, so no hit reads it.
         * Relaxed: stats readers take mp_threads_lock, which we hold; the
         * owner's next install there is under its gate. */
        if (t->th_taken != 0 && mp_tc_taken(tc)) {
            mp_store_relaxed(&tc->tc_low, NULL);
            mp_store_relaxed(&tc->tc_top, NULL);
            t->th_taken--;
            mp_tcs_release_if_clear(t);
        }
        pthread_mutex_unlock(&t->th_gate);
    }
    pthread_mutex_unlock(&mp_threads_lock);
}

/* t lets go of c: its deferred batch is sealed, its magazines are put
 * (magazine.c, MAGAZINE VERBS), its counters are folded, and it stops being
 * a holder. */
void mp_tc_flush(struct mp_thread *t, struct magpool_cache *c)
{
    mp_tc_flush_to(t, c, false);
}

/* mp_tc_flush_to, or mp_tc_take (take: t may be inside a hit). */
static void mp_tc_flush_impl(struct mp_thread *t, struct magpool_cache *c, bool to_slabs, bool take)
{
    struct mp_tcache *tc = &t->th_tc[c->c_id];
    if (mp_tc_loaded(tc) == NULL)
        return;
    mp_moves_begin(c); /* rounds leave the tcache before the counters fold */
    mp_deferred_seal(c, tc);
    mp_tc_save(tc);
    struct mp_mag *loaded = mp_tc_loaded(tc), *prev = tc->tc_prev;
    if (take) {
        mp_tc_install_taken(tc);
        t->th_taken++;
    } else
        mp_tc_install(tc, NULL, NULL);
    mp_tc_flow(tc, -(int64_t)mp_mag_check_rounds(c, loaded) - (prev ? (int64_t)mp_mag_check_rounds(c, prev) : 0));
    void (*put)(struct magpool_cache *, struct mp_mag *) = to_slabs ? mp_mag_teardown : mp_mag_put;
    put(c, loaded);
    if (prev != NULL)
        put(c, prev);

    pthread_mutex_lock(&mp_registry_lock);
    /* Fold the counters under mp_threads_lock so a stats reader sees them
     * either here or in the cache, never both, never neither. */
    pthread_mutex_lock(&mp_threads_lock);
    uint64_t allocs = mp_load_relaxed(&tc->tc_allocs);
    mp_fetch_add_relaxed(&c->c_allocs, allocs);
    /* With no rounds left, net == allocs - frees (cache_impl.h).  Relaxed:
     * a finaliser reads it under mp_registry_lock, which we hold. */
    mp_fetch_add_relaxed(&c->c_frees, allocs - mp_load_relaxed(&tc->tc_net));
    mp_store_relaxed(&tc->tc_allocs, 0);
    mp_store_relaxed(&tc->tc_net, 0);
    pthread_mutex_unlock(&mp_threads_lock);
    t->th_held[c->c_id / 64] &= ~((uint64_t)1 << (c->c_id % 64));
    c->c_holders--;
    mp_store_relaxed(&c->c_threads, mp_load_relaxed(&c->c_threads) - 1); /* under the lock */
    mp_moves_end(c); /* before c may be finalised */
    bool fin = mp_cache_maybe_finalize(c);
    pthread_mutex_unlock(&mp_registry_lock);
    if (fin)
        mp_cache_release(c);
    if (!take)
        mp_tcs_release_if_idle(t); /* t's own flush, or a thread that does not run */
}

void mp_tc_flush_to(struct mp_thread *t, struct magpool_cache *c, bool to_slabs)
{
    mp_tc_flush_impl(t, c, to_slabs, false);
}

void mp_tc_take(struct mp_thread *t, struct magpool_cache *c, bool to_slabs)
{
    mp_tc_flush_impl(t, c, to_slabs, true);
}

/* Call fn(t, c) for every cache t holds.  Safe against fn clearing bits. */
void mp_thread_for_each_held(struct mp_thread *t, void (*fn)(struct mp_thread *t, struct magpool_cache *c, void *arg),
                             void *arg)
{
    for (unsigned w = 0; w < MP_HELD_WORDS; w++) {
        uint64_t bits = t->th_held[w];
        while (bits) {
            unsigned id = w * 64 + (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            /* Acquire: pairs with the release store in mp_cache_register
             * (lifecycle.c), so we see the cache's fields.  A held id's cache
             * cannot be finalised.  Weakened, fn could read a half-initialised
             * cache (its domain, slab, depot, magazine size). */
            struct magpool_cache *c = mp_load_acquire(&mp_caches[id]);
            if (c != NULL)
                fn(t, c, arg);
        }
    }
}

/* Flush t's magazines of c; with a non-NULL arg, only if c is destroyed. */
static void mp_thread_flush_one(struct mp_thread *t, struct magpool_cache *c, void *only_destroyed)
{
    if (only_destroyed == NULL || mp_load_relaxed(&c->c_destroyed))
        mp_tc_flush(t, c);
}

static void mp_thread_each_held(struct mp_thread *t, bool only_destroyed)
{
    mp_thread_for_each_held(t, mp_thread_flush_one, only_destroyed ? (void *)t : NULL);
}

void mp_thread_housekeeping(struct mp_thread *t, struct magpool_cache *c)
{
    /* Acquire: pairs with the release increment in magpool_cache_destroy, so
     * after seeing the new generation we see c_destroyed set.  Weakened, we
     * could record the new generation, miss c_destroyed, skip the flush and
     * keep the zombie's magazines until this thread exits. */
    uint64_t g = mp_load_acquire(&mp_destroy_gen);
    if (g != t->th_seen_gen) {
        t->th_seen_gen = g;
        mp_thread_each_held(t, true);
    }
    /* Relaxed: a request, not a hand-over; what it asks for is done under
     * our own gate (idle.c, the degraded reclaim). */
    if (__builtin_expect(mp_load_relaxed(&t->th_flush_asked), 0)) {
        mp_store_relaxed(&t->th_flush_asked, false);
        mp_thread_each_held(t, false);
    }
    /* Active again: what it holds from now on is not idle (the stats'
     * threads_idle_bytes).  Relaxed: statistics only. */
    if (__builtin_expect(mp_load_relaxed(&t->th_idle), 0))
        mp_store_relaxed(&t->th_idle, false);
    uint32_t slow = mp_load_relaxed(&t->th_slow) + 1;
    mp_store_relaxed(&t->th_slow, slow); /* single writer */
    if ((slow & 15u) == 0) {
        magpool_domain_t *d = mp_domain_default();
        mp_domain_poll(d);
        if (c->c_domain != d)
            mp_domain_poll(c->c_domain);
        mp_reap_tick(c);
    }
}

MAGPOOL_API void magpool_thread_flush(void)
{
    struct mp_thread *t = mp_self;
    if (t != NULL) {
        mp_gate_enter(t);
        mp_thread_each_held(t, false);
        mp_gate_leave(t);
    }
}

/* ---- sums over threads (stats, destroy) ------------------------------------ */

/* Caller holds mp_threads_lock. */
void mp_thread_sums(struct magpool_cache *c, struct mp_thread_sums *s)
{
    memset(s, 0, sizeof *s);
    for (struct mp_thread *t = mp_threads; t != NULL; t = t->th_next) {
        struct mp_tcache *tc = &t->th_tc[c->c_id];
        uint64_t allocs = mp_load_relaxed(&tc->tc_allocs);
        uint64_t rounds = mp_tc_rounds(tc) + mp_load_relaxed(&tc->tc_prev_rounds);
        uint64_t def = mp_load_relaxed(&tc->tc_def_rounds);
        s->allocs += allocs;
        s->frees += allocs - mp_load_relaxed(&tc->tc_net) + rounds + def; /* cache_impl.h */
        s->in_mags += rounds;
        if (mp_load_relaxed(&t->th_idle))
            s->in_mags_idle += rounds;
        s->deferred += def;
    }
}

long mp_cache_live(magpool_cache_t *c)
{
    if (c == NULL)
        return 0;
    struct mp_thread_sums s;
    pthread_mutex_lock(&mp_threads_lock);
    mp_thread_sums(c, &s);
    /* Acquire: pairs with the release add to c_frees in mp_free_slow (a
     * non-holder's free, not under any lock), so a finaliser that sees that
     * free counted also sees its mp_slab_free before it.  Weakened, the slab
     * cache could be deleted while that free is not yet visible to it. */
    uint64_t frees = s.frees + mp_load_acquire(&c->c_frees);
    uint64_t allocs = s.allocs + mp_load_relaxed(&c->c_allocs);
    pthread_mutex_unlock(&mp_threads_lock);
    return (long)(allocs - frees);
}

/* ---- the slow-path gate (fork.c) ------------------------------------------ */

void mp_gate_enter(struct mp_thread *t)
{
    if (t->th_gate_depth++ == 0)
        pthread_mutex_lock(&t->th_gate);
}

bool mp_gate_try_enter(struct mp_thread *t)
{
    if (t->th_gate_depth == 0 && pthread_mutex_trylock(&t->th_gate) != 0)
        return false;
    t->th_gate_depth++;
    return true;
}

void mp_gate_leave(struct mp_thread *t)
{
    if (--t->th_gate_depth == 0)
        pthread_mutex_unlock(&t->th_gate);
}

struct mp_thread *mp_gate_enter_self(void)
{
    struct mp_thread *t = mp_thread_get(false);
    if (t != NULL)
        mp_gate_enter(t);
    return t;
}

void mp_gate_leave_self(struct mp_thread *t)
{
    if (t != NULL)
        mp_gate_leave(t);
}

/* Hold every thread's gate, so no thread is between taking a magazine or an
 * object from one place and putting it in another when the process forks.
 * A gate's owner may be waiting for mp_threads_lock (flush folds under it),
 * which we hold while walking the list: so we only try each gate, and on a
 * busy one let go of everything and start again. */
void mp_threads_fork_prepare(void)
{
    pthread_mutex_lock(&mp_thread_create_lock);
    for (;;) {
        pthread_mutex_lock(&mp_threads_lock);
        struct mp_thread *t, *busy = NULL;
        for (t = mp_threads; t != NULL && busy == NULL; t = t->th_next)
            if (pthread_mutex_trylock(&t->th_gate) != 0)
                busy = t;
        if (busy == NULL) {
            pthread_mutex_unlock(&mp_threads_lock);
            return; /* the list cannot change now: see mp_thread_exit */
        }
        for (t = mp_threads; t != busy; t = t->th_next)
            pthread_mutex_unlock(&t->th_gate);
        pthread_mutex_unlock(&mp_threads_lock);
        nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
    }
}

/* Every listed thread's gate is ours, so none of them can unlink itself
 * (mp_thread_exit unlinks under its gate) and none can be created. */
void mp_threads_fork_parent(void)
{
    for (struct mp_thread *t = mp_threads; t != NULL; t = t->th_next)
        pthread_mutex_unlock(&t->th_gate);
    pthread_mutex_unlock(&mp_thread_create_lock);
}

/* In the child only the forking thread exists.  The other threads' states
 * stay linked, with their magazines: such a thread may have been inside its
 * inline hit when the process forked, and fork copies memory page by page
 * while the other threads run, so the child cannot trust the contents of
 * their loaded magazines or deferred batches.  Left alone, they are never
 * reused and are still counted (stats: in_magazines, deferred), so every
 * cache's conservation holds in the child; a cache they hold becomes a zombie
 * at destroy instead of being finalised. */
void mp_threads_fork_child(void)
{
    for (struct mp_thread *t = mp_threads; t != NULL; t = t->th_next) {
        pthread_mutex_unlock(&t->th_gate); /* locked by this thread before fork */
        t->th_orphan = t != mp_self;       /* never reclaimed from (idle.c) */
    }
    pthread_mutex_unlock(&mp_thread_create_lock);
}

void *mp_thread_spare_peek(unsigned i, size_t *dirty)
{
    void *tc = NULL;
    pthread_mutex_lock(&mp_threads_lock);
    if (i < mp_nspare_tcs) {
        tc = mp_spare_tcs[i];
        *dirty = mp_spare_dirty[i];
    }
    pthread_mutex_unlock(&mp_threads_lock);
    return tc;
}

void mp_thread_spares_trim(void)
{
    /* The dirty arrays leave the stack while their pages go (a new thread
     * could take one meanwhile and use it), then come back. */
    struct mp_tcache *tc[MP_SPARE_TCS];
    size_t bytes[MP_SPARE_TCS];
    unsigned n = 0;
    pthread_mutex_lock(&mp_threads_lock);
    for (unsigned i = 0; i < mp_nspare_tcs;) {
        if (mp_spare_dirty[i] == 0) {
            i++;
            continue;
        }
        tc[n] = mp_spare_tcs[i];
        bytes[n++] = mp_spare_dirty[i];
        mp_nspare_tcs--;
        mp_spare_tcs[i] = mp_spare_tcs[mp_nspare_tcs];
        mp_spare_dirty[i] = mp_spare_dirty[mp_nspare_tcs];
    }
    pthread_mutex_unlock(&mp_threads_lock);
    if (n == 0)
        return;
    for (unsigned j = 0; j < n; j++)
        if (madvise(tc[j], bytes[j], MADV_DONTNEED) == 0)
            bytes[j] = 0; /* (on failure still resident, still zero: stays dirty) */
    pthread_mutex_lock(&mp_threads_lock);
    unsigned j = 0;
    for (; j < n && mp_nspare_tcs < MP_SPARE_TCS; j++) {
        mp_spare_dirty[mp_nspare_tcs] = bytes[j];
        mp_spare_tcs[mp_nspare_tcs++] = tc[j];
    }
    pthread_mutex_unlock(&mp_threads_lock);
    for (; j < n; j++) /* the stack refilled meanwhile */
        munmap(tc[j], sizeof(struct mp_tcache) * MAGPOOL_MAX_CACHES);
}

static void mp_thread_exit(void *arg)
{
    struct mp_thread *t = arg;
    mp_gate_enter(t);
    t->th_exiting = true;
    mp_thread_each_held(t, false);
    mp_gate_leave(t);
    mp_self = NULL;
    magpool_tcs_ = mp_empty_tcs;
    mp_reclaim_thread_exit(); /* may wait for a grace period: not under the gate */
    mp_gate_enter(t);         /* unlinking: see mp_threads_fork_parent */
    pthread_mutex_lock(&mp_threads_lock);
    if (t->th_prevt)
        t->th_prevt->th_next = t->th_next;
    else
        mp_threads = t->th_next;
    if (t->th_next)
        t->th_next->th_prevt = t->th_prevt;
    pthread_mutex_unlock(&mp_threads_lock);
    mp_gate_leave(t); /* unlinked: fork.c can no longer find the gate */
    pthread_mutex_destroy(&t->th_gate);
    /* Unlinked: no stats reader can reach the array any more.  Every held
     * cache was flushed above, leaving its entry zero; zero the used range
     * anyway so a parked array is all-zero whatever a path left behind. */
    size_t used = mp_tcs_used_bytes(t), dirty = used;
    if (used <= MP_TCS_MEMSET_MAX || madvise(t->th_tc, used, MADV_DONTNEED) != 0)
        memset(t->th_tc, 0, used); /* parked resident: mp_thread_spares_trim */
    else
        dirty = 0; /* zero, and no resident page */
    bool parked = false;
    pthread_mutex_lock(&mp_threads_lock);
    if (mp_nspare_tcs < MP_SPARE_TCS) {
        mp_spare_dirty[mp_nspare_tcs] = dirty;
        mp_spare_tcs[mp_nspare_tcs++] = t->th_tc;
        parked = true;
    }
    pthread_mutex_unlock(&mp_threads_lock);
    if (!parked)
        munmap(t->th_tc, sizeof(struct mp_tcache) * MAGPOOL_MAX_CACHES);
    mp_meta_free_lasting(t, sizeof *t);
}
