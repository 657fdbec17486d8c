/*
 * Internal structures of the core (owner: src/core/cache.c and friends).  The
 * design statement is at the top of src/core/cache.c; this header only lays the
 * structs out and names the cross-file functions.
 *
 * LOCK ORDER: the whole library's order is stated once, in src/cache/fork.c (its
 * fork handlers take every lock in it).  Here: a thread's slow-path gate,
 * then mp_registry_lock, then mp_threads_lock, then a slab cache's own lock
 * (inside slab.c).  No core lock is ever held on a fast path.
 */
#ifndef MP_CACHE_IMPL_H
#define MP_CACHE_IMPL_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "depot.h"
#include "magpool/magpool.h"
#include "reclaim.h"
#include "report.h"
#include "sanitize.h"
#include "slab.h"

/* Atomics: the order-named wrappers of base/atomics.h. */
/* Objects crossing the boundary of a thread's loaded/prev magazines. */
#define mp_tc_flow(tc, delta) mp_owner_add_relaxed_u64(&(tc)->tc_net, (uint64_t)(int64_t)(delta))

/* ---- per-thread, per-cache magazine state: one cache line ---------------- *
 * Written only by its owner thread (and by an idle-thread reclaim holding
 * its gate: idle.c).  Stats readers (under mp_threads_lock) read top, the
 * bounds, prev_rounds, def_rounds, allocs and net with relaxed loads.  A
 * thread that is not a holder of cache id (see cache.c) has tc[id] all zero,
 * so both hits miss (top == low == high == NULL) -- but for a state an
 * idle-thread reclaim took (idle.c): high NULL, low above every top of the
 * magazine it took and top that magazine's, so both hits miss just as
 * well, until the owner's next install there or the cache's finalisation
 * (mp_tcs_clear_taken) zeroes it (th_taken counts them). */
struct mp_tcache {
    struct magpool_hit_ tc_hit;      /* what a hit touches (magpool.h): top, the next free
                                      * slot of the loaded magazine (authoritative while
                                      * loaded: rounds = top - base), the bounds low and
                                      * high (base and base + cap, swapped while stopped,
                                      * NULL when nothing is loaded; the smaller is always
                                      * base), allocs by this thread; bit 0 of top is the
                                      * owner's in-hit mark (magpool.h); and two of
                                      * ours: tc_prev_rounds, mirror of prev->mag_rounds for
                                      * stats readers, tc_def_rounds, objects in tc_deferred.
                                      * The loaded magazine is the one whose mag_objs is
                                      * base (mp_tc_loaded): non-NULL <=> this thread is a
                                      * holder of the cache */
    struct mp_mag *tc_prev;          /* previous magazine (prev->mag_rounds authoritative) */
    _Atomic uint64_t tc_net;         /* objects that entered this thread's holdings
                                      * (loaded and prev magazines, deferred batch) from
                                      * outside (depot, slab) minus those that left them
                                      * (depot, slab, sealed batches), mod 2^64.  Slow
                                      * paths only.  Since every free adds a round or a
                                      * batch slot and every alloc removes a round,
                                      *   frees = allocs - net + rounds + prev_rounds
                                      *           + def_rounds,
                                      * so no free hit counts anything but the round it
                                      * adds: each hit changes the conservation terms
                                      * with one store (rounds, or def_rounds), and a
                                      * snapshot -- a fork child's of a thread inside a
                                      * hit included -- never sees half a hit.  Both are
                                      * folded into the cache when the thread stops
                                      * holding it. */
    struct mp_mag *tc_deferred;      /* deferred-free batch being filled */
};
_Static_assert(sizeof(struct mp_tcache) == MAGPOOL_HIT_STRIDE_, "struct mp_tcache is one cache line, the public stride");
_Static_assert(offsetof(struct mp_tcache, tc_hit) == 0, "the hit's fields head the state (magpool.h)");
_Static_assert(MAGPOOL_MAG_MAX <= UINT16_MAX, "a magazine's rounds fit tc_prev_rounds");
/* Shorthands for the hit's fields (magpool.h's struct magpool_hit_). */
#define tc_top tc_hit.top
#define tc_low tc_hit.low
#define tc_high tc_hit.high
#define tc_allocs tc_hit.allocs
#define tc_prev_rounds tc_hit.lib_prev_rounds_
#define tc_def_rounds tc_hit.lib_def_rounds_

/* ---- the loaded magazine through the hit's fields ------------------------ *
 * Relaxed loads throughout: the owner reads its own stores; a stats reader
 * (under mp_threads_lock, racing the owner) gets a snapshot, exact at
 * quiescence, clamped to a magazine's size otherwise; a reclaimer holds the
 * owner's gate (idle.c), so only a hit can race it.  Addresses compare as
 * uintptr_t: NULL and the swapped bounds are numbers here, not pointers
 * into one array. */

/* The slot base of the loaded magazine (mag_objs), or NULL: the smaller
 * bound in every state (magpool.h). */
static inline void **mp_tc_base(const struct mp_tcache *tc)
{
    void **lo = mp_load_relaxed(&tc->tc_low), **hi = mp_load_relaxed(&tc->tc_high);
    return (uintptr_t)lo < (uintptr_t)hi ? lo : hi;
}

/* The loaded magazine (NULL: the thread does not hold the cache). */
static inline struct mp_mag *mp_tc_loaded(const struct mp_tcache *tc)
{
    void **base = mp_tc_base(tc);
    return base != NULL ? (struct mp_mag *)(void *)((char *)base - offsetof(struct mp_mag, mag_objs)) : NULL;
}

/* top without the owner's in-hit mark (magpool.h): what another thread
 * reads (the owner itself never sees the mark). */
static inline void **mp_tc_top(const struct mp_tcache *tc)
{
    return (void **)((uintptr_t)mp_load_relaxed(&tc->tc_top) & ~(uintptr_t)1);
}

/* Rounds in the loaded magazine (0 if none). */
static inline uint32_t mp_tc_rounds(const struct mp_tcache *tc)
{
    uintptr_t base = (uintptr_t)mp_tc_base(tc), top = (uintptr_t)mp_tc_top(tc);
    uintptr_t n = (top - base) / sizeof(void *);
    return base != 0 && top >= base && n <= MAGPOOL_MAG_MAX ? (uint32_t)n : 0;
}

/* Whether tc is a state an idle-thread reclaim took (idle.c): not loaded,
 * low still its stop mark. */
static inline bool mp_tc_taken(const struct mp_tcache *tc)
{
    return mp_tc_loaded(tc) == NULL && mp_load_relaxed(&tc->tc_low) != NULL;
}

/* Whether a magazine is loaded and not stopped (idle.c). */
static inline bool mp_tc_running(const struct mp_tcache *tc)
{
    return (uintptr_t)mp_load_relaxed(&tc->tc_low) < (uintptr_t)mp_load_relaxed(&tc->tc_high);
}

/* Owner (or a reclaimer holding its gate): rounds of the loaded magazine
 * become n (<= its cap). */
static inline void mp_tc_set_rounds(struct mp_tcache *tc, uint32_t n)
{
    mp_store_relaxed(&tc->tc_top, mp_tc_base(tc) + n);
}

#define MP_HELD_WORDS (MAGPOOL_MAX_CACHES / 64)

struct mp_thread {
    struct mp_tcache *th_tc;           /* MAGPOOL_MAX_CACHES entries, mmap NORESERVE */
    pthread_mutex_t th_gate;           /* held by the owner across every slow path that
                                        * moves magazines or objects between places, and by
                                        * fork's prepare handler (fork.c): at fork no
                                        * magazine is in transit in another thread */
    unsigned th_gate_depth;            /* owner only: nesting of mp_gate_enter */
    struct mp_thread *th_next, *th_prevt; /* global thread list (mp_threads_lock) */
    uint64_t th_held[MP_HELD_WORDS];   /* bit id set <=> holder of cache id (owner only) */
    uint64_t th_seen_gen;              /* mp_destroy_gen when last checked */
    _Atomic uint32_t th_slow;          /* slow paths taken (housekeeping rate limit; the
                                        * reaper's idleness test reads it) */
    uint32_t th_max_id;                /* highest cache id this thread ever held */
    bool th_exiting;                   /* in mp_thread_exit: its flushes leave the
                                        * tcache pages to the exit (thread.c); set by
                                        * the thread under its gate, read under the
                                        * gate (mp_tcs_release_if_idle) */
    uint64_t th_idle_sig;              /* the reaper's: activity signature at its last
                                        * pass (idle.c), under this gate */
    bool th_orphan;                    /* in a fork child: a thread of the parent, which does
                                        * not exist here (its state is left alone: thread.c) */
    _Atomic bool th_idle;              /* the reaper's last pass found it quiet (idle.c);
                                        * relaxed: statistics read it (threads_idle_bytes) */
    uint32_t th_taken;                 /* states a reclaim took (idle.c) that nothing zeroed
                                        * since; under this gate */
    _Atomic bool th_flush_asked;       /* a reclaim without membarrier asked this thread to
                                        * give back every magazine at its next slow path
                                        * (idle.c) */
};

/* ---- the cache: grouped by layer, as kmem_impl.h does -------------------- */
struct magpool_cache {
    /* fast path (read by every alloc/free) */
    struct magpool_cache_head_ c_head; /* fast_off: id * MAGPOOL_HIT_STRIDE_, or 0 for debug /
                                        * checked / destroyed caches (magpool.h's hit adds it
                                        * to the thread's array) */
    _Atomic uint32_t c_fe_tag;         /* a front end's mark (mp_fast_fe_tag), on the fast
                                        * id's line: mem_put's owner test costs no load
                                        * of its own */
    unsigned c_id;                     /* 1 .. MAGPOOL_MAX_CACHES-1, fixed */
    size_t c_size;                     /* object size asked for */

    /* configuration (immutable after create) */
    char c_name[64];
    unsigned c_flags;                  /* cfg flags | MAGPOOL_DEBUG env flags */
    bool c_debug;                      /* debug hooks on every alloc/free */
    bool c_checked;                    /* a sanitizer runtime is in the process: every
                                        * alloc/free takes the slow path and its hooks
                                        * (sanitize.h) */
    size_t c_align, c_max_objects;
    void (*c_ctor)(void *, void *);
    void *c_arg;
    void *c_priv;                      /* front-end pointer (mp_cache_priv) */
    magpool_domain_t *c_domain;        /* deferred frees and TYPESAFE pages */
    unsigned c_mag_min, c_mag_max;
    size_t c_thread_budget;            /* bytes (magpool.h, thread_budget) */
    size_t c_stride;                   /* bytes an object takes in its slab */

    /* magazine layer */
    _Atomic unsigned c_mag_size;       /* size of new magazines (relaxed: a hint) */
    _Atomic uint64_t c_mag_resizes;

    /* depot and slab layers */
    struct mp_depot c_depot;
    struct mp_slab_cache *c_slab;

    /* counters folded from threads that stopped holding the cache, and the
     * slow paths that served a non-holder */
    _Atomic uint64_t c_allocs, c_frees;
    _Atomic uint64_t c_deferred_sealed;  /* objects in sealed deferred batches */
    _Atomic uint64_t c_reaps, c_alloc_failures;
    /* other threads' magazines (idle.c): sets taken, sets left because the
     * owner was inside a hit, degraded reclaims (owners asked) */
    _Atomic uint64_t c_idle_reclaims, c_idle_busy, c_idle_asked;

    /* moves a statistics snapshot retries across (mp_moves_begin) */
    _Atomic uint64_t c_moves_begun, c_moves_ended;

    /* reaping (reap.c) */
    _Atomic uint64_t c_last_reap_ms;
    _Atomic uint64_t c_last_contention;
    _Atomic uint64_t c_last_pressure_ms; /* mp_pressure_reclaim's rate limit */

    /* lifecycle: under mp_registry_lock (c_destroyed also read relaxed as a hint) */
    _Atomic bool c_destroyed;
    bool c_finalized;
    unsigned c_holders;                /* threads with magazines for this cache */
    _Atomic unsigned c_threads;        /* of them, real threads (not pins): the thread
                                        * budget's divisor, written under the lock,
                                        * read relaxed */
    struct magpool_cache *c_znext;     /* zombie list */
    struct mp_retire_node c_free_node; /* frees the struct after a grace period */
    struct mp_retire_node c_slab_node; /* TYPESAFE: slabs go after a grace period */
};

_Static_assert(offsetof(struct magpool_cache, c_head) == 0, "the public cache head is the first member");

/*
 * Moves the statistics must not see half done (stats.c, I1).  A move of
 * objects between a cache's places that is not a thread's own alloc, free or
 * slow path -- a thread's magazines flushed or taken (thread.c), the
 * reaper's tick (reap.c), a shrink, a deferred batch coming back after its
 * grace period (magazine.c) -- runs between mp_moves_begin and mp_moves_end,
 * so that a snapshot taken while no application thread uses the cache is
 * exact although the reaper thread and the domain's callbacks may be moving
 * objects meanwhile: the snapshot is taken again if a move overlapped it.
 *
 * Ordering (C11, no fence): begin is an acquire RMW of c_moves_begun, so no
 * store of the move is ordered before it; the reader's check
 * (mp_moves_unchanged) is a release RMW of the same counter, so none of its
 * loads is ordered after it.  If one of the reader's loads read a store of a
 * move whose begin came after the check in c_moves_begun's modification
 * order, the check would synchronize with the begin (the begin reads the
 * check's value or a later one), and the load would happen before the store
 * it read: impossible.  So a load that saw part of a move means the check
 * sees that move begun, and the snapshot is retaken.  End is a release RMW
 * of c_moves_ended: a reader whose acquire load of it counts a move sees
 * all of that move's stores.
 */
static inline void mp_moves_begin(struct magpool_cache *c)
{
    atomic_fetch_add_explicit(&c->c_moves_begun, 1, memory_order_acquire);
}

static inline void mp_moves_end(struct magpool_cache *c)
{
    atomic_fetch_add_explicit(&c->c_moves_ended, 1, memory_order_release);
}

/* Reader, before its loads: the number of moves begun, and whether every
 * move begun has ended (acquire loads: see above). */
static inline uint64_t mp_moves_enter(struct magpool_cache *c, bool *settled)
{
    uint64_t begun = mp_load_acquire(&c->c_moves_begun);
    *settled = mp_load_acquire(&c->c_moves_ended) == begun;
    return begun;
}

/* Reader, after its loads: no move began since mp_moves_enter returned
 * `begun` (a release RMW that changes nothing: see above). */
static inline bool mp_moves_unchanged(struct magpool_cache *c, uint64_t begun)
{
    return atomic_fetch_add_explicit(&c->c_moves_begun, 0, memory_order_release) == begun;
}

/* Readings a reader makes before it stops waiting for the moves to pause
 * (it then takes the last one as it is), and the pause before reading
 * again the i-th time: 16 yields, then sleeps from 25 us doubling every 8
 * readings up to 1 ms, about a second in all.  A reaper's pass over one
 * cache takes microseconds to a few ms, but on a loaded machine the reaper
 * can be preempted inside one for tens of ms. */
#define MP_MOVES_READINGS 1000u
void mp_moves_backoff(unsigned i);

/* A reader's loop over the two calls below, shared by the statistics and
 * destroy:
 *     struct mp_moves_reading r = { 0 };
 *     do { mp_moves_settle(c, &r); ...loads... } while (!mp_moves_whole(c, &r));
 * Each reading starts with no move in flight and counts as whole if none
 * began during it; after MP_MOVES_READINGS tries the last one is taken as
 * it is. */
struct mp_moves_reading {
    uint64_t begun;
    unsigned tries;
};

/* Before the loads: wait (bounded; after a failed reading, a pause first)
 * until no move of c is in flight.  Call it holding no lock. */
static inline void mp_moves_settle(struct magpool_cache *c, struct mp_moves_reading *r)
{
    for (;;) {
        if (r->tries > 0)
            mp_moves_backoff(r->tries);
        bool settled;
        r->begun = mp_moves_enter(c, &settled);
        if (settled || ++r->tries >= MP_MOVES_READINGS)
            return;
    }
}

/* After the loads: true when no move began since mp_moves_settle, or the
 * bound is reached (never waits: the caller may hold a lock). */
static inline bool mp_moves_whole(struct magpool_cache *c, struct mp_moves_reading *r)
{
    return mp_moves_unchanged(c, r->begun) || ++r->tries >= MP_MOVES_READINGS;
}
#define c_fast_off c_head.fast_off

/* ---- shared state (cache.c / thread.c) ------------------------------------ */
extern pthread_mutex_t mp_registry_lock;
extern pthread_mutex_t mp_threads_lock;
extern struct mp_thread *mp_threads;             /* under mp_threads_lock */
extern _Atomic(struct magpool_cache *) mp_caches[MAGPOOL_MAX_CACHES];
extern _Atomic uint64_t mp_destroy_gen;
/* The calling thread's tcache array: magpool.h's magpool_tcs_ (thread.c
 * defines it), written only by its own thread. */
#define mp_tcs ((struct mp_tcache *)magpool_tcs_)
extern __thread struct mp_thread *mp_self __attribute__((tls_model("initial-exec")));

/* Every public cache flag: magpool_cache_create rejects any other bit. */
#define MP_CACHE_FLAGS                                                                        \
    (MAGPOOL_HWCACHE_ALIGN | MP_DEBUG_FLAGS | MAGPOOL_TYPESAFE | MAGPOOL_DEBUG_CONTINUE | \
     MAGPOOL_NO_BACKLOG | MAGPOOL_UNCHECKED)
#define MP_COLD __attribute__((noinline, cold))

/* Cache flags only front ends may set (through mp_cache_create_priv):
 * MP_KMALLOC_CACHE marks a kmalloc size class, whose objects debug.c gives
 * a requested size under red zones (mp_debug_set_request). */
#define MP_KMALLOC_CACHE 0x80000000u
#define MP_FE_FLAGS MP_KMALLOC_CACHE

/* lifecycle.c */
/* Give c an id and publish it (mp_caches[id]); 0 when every id is taken. */
unsigned mp_cache_register(struct magpool_cache *c);
/* Destroy's two halves: mark c destroyed (false if it already was), and,
 * after the caller gave back what it could, count what is live, then
 * finalise c or put it on the zombie list.  Returns the live count. */
bool mp_cache_mark_destroyed(struct magpool_cache *c);
long mp_cache_destroy_done(struct magpool_cache *c);
/* Validate obj as the start of an object (live or in a zombie cache).
 * Returns its cache, or NULL with *why = MP_OBJ_FOREIGN / MP_OBJ_MISALIGNED
 * (slab.h).  If expected is non-NULL and the owner differs, returns the real
 * owner with *why = MP_OBJ_WRONG_CACHE.  Never faults. */
magpool_cache_t *mp_obj_check(const void *obj, magpool_cache_t *expected, int *why);
/* The diagnostic's kind for a reason mp_obj_check gave (not MP_OBJ_OK):
 * "foreign pointer", "misaligned pointer" or "wrong cache". */
const char *mp_obj_problem(int why);
void *mp_cache_priv(const magpool_cache_t *c);
magpool_domain_t *mp_cache_domain(const magpool_cache_t *c);
/* Registry lock held: if c is a zombie with nothing left (no holder, no live
 * object, no sealed deferred batch), unregister it and return true; the
 * caller then calls mp_cache_release(c) after dropping the lock. */
bool mp_cache_maybe_finalize(struct magpool_cache *c) __attribute__((warn_unused_result));
void mp_cache_release(struct magpool_cache *c);
/* Keep a live cache from being finalised across a call that did not come
 * from its user (magpool_reap may race with a destroy): a pseudo-holder. */
bool mp_cache_pin(struct magpool_cache *c);
void mp_cache_unpin(struct magpool_cache *c);
/* Pin up to cap live caches with ids from *from on (id order) into out;
 * *from becomes the next id to look at.  The pins outlive the read-side
 * section the walk needs, so the caller can work on the caches (shrink:
 * wait for grace periods) outside any section. */
size_t mp_cache_pin_some(unsigned *from, struct magpool_cache **out, size_t cap);
void mp_zombie_free(struct magpool_cache *c, void *const *objs, size_t n); /* takes the lock */

/* thread.c */
struct mp_thread *mp_thread_get(bool nowait);   /* NULL: no state and nowait / ENOMEM */
/* Every live thread's counts for c, summed (caller holds mp_threads_lock). */
struct mp_thread_sums {
    uint64_t allocs, frees, in_mags, deferred;
    uint64_t in_mags_idle; /* of in_mags: in threads th_idle marks */
};
void mp_thread_sums(struct magpool_cache *c, struct mp_thread_sums *s);
/* fn(t, c, arg) for every cache t holds (t's own thread, or fork's child
 * for a thread that is gone); fn may stop t holding c. */
void mp_thread_for_each_held(struct mp_thread *t, void (*fn)(struct mp_thread *t, struct magpool_cache *c, void *arg),
                             void *arg);
/* Objects currently handed out (allocs - frees, summed over threads and
 * the cache's folded totals). */
long mp_cache_live(magpool_cache_t *c);
/* The slow-path gate of the calling thread's state t (see th_gate).  Nests.
 * mp_gate_try_enter (NOWAIT callers) fails only while a fork is being
 * prepared.  Never held while waiting for a grace period or sleeping. */
void mp_gate_enter(struct mp_thread *t);
bool mp_gate_try_enter(struct mp_thread *t);
void mp_gate_leave(struct mp_thread *t);
/* The calling thread's gate around work that moves magazines or objects
 * outside its own slow paths (a reap tick, shrink, destroy; the reaper
 * thread's too): its state is made if it has none.  NULL only if no state
 * can be made (ENOMEM): the work then runs ungated, and a fork at that
 * moment may lose what is in transit in the child, never in the parent.
 * mp_gate_leave_self(NULL) does nothing. */
struct mp_thread *mp_gate_enter_self(void);
void mp_gate_leave_self(struct mp_thread *t);
/* fork.c's helpers: every thread's gate (and thread creation) held, or
 * released; in the child, states of threads that do not exist there. */
void mp_threads_fork_prepare(void);
void mp_threads_fork_parent(void);
void mp_threads_fork_child(void);
bool mp_tc_hold(struct mp_thread *t, struct magpool_cache *c, unsigned aflags);
void mp_tc_flush(struct mp_thread *t, struct magpool_cache *c);
/* mp_tc_flush with the magazines' objects straight back to the slab layer
 * (to_slabs: an idle thread's, which the reaper gives back to the system)
 * instead of to the depot. */
void mp_tc_flush_to(struct mp_thread *t, struct magpool_cache *c, bool to_slabs);
/* mp_tc_flush_to by a reclaimer holding t's gate while t may run hits on
 * the state (idle.c, R4): everything is taken, but the state is left taken
 * (magazine.c, mp_tc_install_taken: top untouched, every hit misses) and
 * t's array pages stay. */
void mp_tc_take(struct mp_thread *t, struct magpool_cache *c, bool to_slabs);
/* t holds no cache: give its array's pages back (t's gate held, and t is
 * the caller or runs no hit). */
void mp_tcs_release_if_idle(struct mp_thread *t);
/* The same by a holder of t's gate while t may run hits (idle.c): only if t
 * holds nothing and no state of t is taken (all zero). */
void mp_tcs_release_if_clear(struct mp_thread *t);
/* Cache id is being finalised (no thread holds it, and no hit on it is
 * legal any more): zero every thread's state taken there (idle.c), and give
 * back the array pages of threads that hold nothing and, with that, have
 * only zero states left (mp_threads_lock not held). */
void mp_tcs_clear_taken(unsigned id);
void mp_thread_housekeeping(struct mp_thread *t, struct magpool_cache *c);
struct mp_thread *mp_thread_self(void);         /* NULL if the thread has no state */

/* magazine.c */
void mp_tc_install(struct mp_tcache *tc, struct mp_mag *loaded, struct mp_mag *prev);
void mp_tc_install_taken(struct mp_tcache *tc);
void mp_tc_save(struct mp_tcache *tc);
void mp_deferred_seal(struct magpool_cache *c, struct mp_tcache *tc);
/* A magazine leaves the calling thread: to the depot, retired, or (zombie)
 * torn down (magazine.c, MAGAZINE VERBS). */
void mp_mag_put(struct magpool_cache *c, struct mp_mag *m);
/* Its rounds to the slab layer, then the magazine retired (MAGAZINE VERBS). */
void mp_mag_teardown(struct magpool_cache *c, struct mp_mag *m);
/* magpool_free's default check on a magazine about to leave its thread
 * (magpool.h): drops rounds that are not objects of c, each reported.
 * Returns the rounds left. */
uint32_t mp_mag_check_rounds(struct magpool_cache *c, struct mp_mag *m);

/* idle.c: give back what other threads hold for c (NULL: for every cache)
 * unless they are inside a hit or a slow path; returns the (thread, cache)
 * states emptied.  Never call it holding mp_threads_lock or mp_registry_lock.
 * Without membarrier, asks the threads instead (th_flush_asked) and
 * returns 0. */
size_t mp_idle_reclaim(struct magpool_cache *c);
/* The reaper's pass: mp_idle_reclaim(NULL) for the threads that made no
 * alloc, free or slow path since the previous pass. */
size_t mp_idle_reclaim_quiet(void);
/* The calling thread lets go of the marks buffer its quiet passes keep. */
void mp_idle_release(void);
/* Whether mp_idle_reclaim can take magazines itself (membarrier works). */
bool mp_idle_reclaim_available(void);

/* check.c: MAGPOOL_DEBUG=check's validators at a slow-path exit of c. */
void mp_check_slow_exit(struct magpool_cache *c);

/* reap.c */
size_t mp_depot_drain(struct magpool_cache *c);
void mp_reap_tick(struct magpool_cache *c);
void mp_mag_resize(struct magpool_cache *c, int dir);
unsigned mp_mag_initial(size_t size, unsigned lo, unsigned hi);
/* Between two tries of a NOFAIL allocation: reap every cache, then wait. */
void mp_nofail_wait(void);
/* Start the reaper thread if it should run and does not (cache creation);
 * fork.c's child handler forgets the parent's. */
void mp_reaper_start(void);
/* What the library keeps resident that no cache uses: the magazine area's
 * free slots, the metadata pools' kept chunks, wholly free page regions with
 * their page-map slices (magpool_reap; the last cache's destroy). */
void mp_release_unused(void);
/* thread.c: give back the resident pages of parked tcache arrays (the
 * reaper's tick, mp_release_unused). */
void mp_thread_spares_trim(void);
/* Tests: parked array i (NULL past the last) and its resident bytes. */
void *mp_thread_spare_peek(unsigned i, size_t *dirty);
/* An allocation of c failed with ENOMEM: take back other threads'
 * magazines of c (rate-limited); true if something came back. */
bool mp_pressure_reclaim(struct magpool_cache *c);
void mp_reaper_fork_lock(void);
void mp_reaper_fork_unlock(void);
void mp_reaper_fork_child(void); /* also unlocks */
/* The size of a new magazine of c: the ladder's (c_mag_size), within the
 * thread budget for one more holder (magazine.c). */
unsigned mp_mag_size(struct magpool_cache *c);
/* The largest ladder step <= n, not below lo (reap.c). */
unsigned mp_mag_step_at_most(size_t n, unsigned lo);
/* Caches registered (lifecycle.c): the process budget's divisor. */
extern _Atomic unsigned mp_live_caches;

/* Default largest magazine size (the config's mag_max = 0): the top of the
 * ladder (reap.c), where objects of up to 64 bytes start. */
#define MP_MAG_MAX_DEFAULT 511u
/* Default thread budget of a cache (magpool.h, thread_budget). */
#define MP_THREAD_BUDGET_DEFAULT ((size_t)4 << 20)
size_t mp_slab_reap_cache(struct magpool_cache *c);
#endif
