/*
 * magpool core: caches, and the design statement of the whole engine.
 *
 * ==========================================================================
 * DESIGN STATEMENT
 * ==========================================================================
 *
 * GOALS.  Fixed-size, constructed objects at the cost of a thread-local array
 * pop/push in the common case (Bonwick & Adams, "Magazines and Vmem", USENIX
 * 2001), lock-free where the paper takes a lock (the depot), safe under every
 * interleaving, visible to ThreadSanitizer (C11 atomics only, no stand-alone
 * fences), with no thread registration, and memory that goes back to the
 * system.  Deferred frees on epochs (Fraser, "Practical lock-freedom", 2004,
 * via Concurrency Kit's ck_epoch) or on the application's liburcu flavour.
 * NON-GOALS: variable-size allocation (front ends map sizes to caches), NUMA
 * placement, per-CPU (rather than per-thread) magazines, a background thread.
 *
 * LAYERS (Bazel packages under src/; each cc_library depends only on the
 * layers below it and is visible only to those above, and layering_check
 * makes an upward #include a build error; `bazel query 'deps(//src/frontend)'`):
 *
 *   frontend  mem_pool.c kmem_cache.c kmalloc.c   include frontend.h only
 *      |
 *   core      cache.c stats.c frontend.h          create, destroy, stats;
 *      |                                          this statement
 *   cache     magazine.c thread.c lifecycle.c     per-thread magazines and
 *      |      reap.c debug.c fork.c               slow paths, thread state,
 *      |      fastpath.h cache_impl.h             caches' lifecycle, working
 *      |                                          set, debug hooks, fork
 *   storage   slab.c depot.c                      slabs, lookups, large
 *      |                                          blocks; magazine area, depot
 *   memory    page.c meta.c reclaim.c             arena and buddy pages,
 *      |                                          metadata memory, epochs
 *   base      sanitize.c report.c                 sanitizer hooks, reporter
 *
 * Calls go down only, never up or sideways between packages; within a
 * package, files call each other.  Some calls skip a layer (core creates a
 * slab cache; the cache layer polls reclamation domains): the rule is
 * direction, not adjacency.
 *
 * HOW AN OBJECT TRAVELS
 *   (inline hits)           magpool.h   optimised C callers pop/push the
 *        |  miss                        loaded magazine themselves
 *   magpool_alloc/free      magazine.c  per-thread loaded/prev magazines
 *        |  miss                        (tcache, one cache line per cache)
 *   depot                   depot.c     lock-free stacks of full/empty mags
 *        |  miss
 *   slab layer              slab.c      constructs objects, tracks slabs
 *        |
 *   page layer              page.c      buddy blocks in an mmap'd arena
 * (The depot and the slab layer sit side by side in the storage layer: the
 * magazine layer calls each; the depot never calls the slab layer.)
 * Alloc: loaded mag -> swap with a full prev -> exchange the empty prev for a
 * full depot magazine -> fill the loaded magazine from the slab layer (one
 * lock trip for up to a magazine of objects).  Free mirrors it: loaded ->
 * swap with an empty prev -> push the full prev to the depot and take an
 * empty one (depot, else mp_mag_alloc) -> the slab layer.  Under a steady
 * flow of full magazines from free paths (producer/consumer), the depot
 * passes them through a bounded FIFO backlog first, so the objects an
 * allocating thread gets were freed long enough ago that their cache lines
 * left the freeing core (depot.c, "Backlog").  Reaping moves
 * unused depot magazines back to slabs and empty slabs back to the system.
 * Bulk calls move runs of rounds with one tcache update per run and cross
 * magazine boundaries through the same slow paths.
 * Other threads' magazines come back without their owners' help when they
 * are idle: magpool_cache_shrink, magpool_reap, an allocation that finds no
 * memory, and the reaper thread (for threads quiet through a whole reap
 * interval) take the loaded/previous magazines of every thread that is not
 * inside a hit or a slow path, through a membarrier handshake that adds one
 * plain store to the hit, its in-hit mark in top (idle.c).
 * Deferred frees go to a per-thread batch that, sealed, waits a grace period
 * and then becomes a full depot magazine.  The batch is an empty depot
 * magazine of the cache's size (its tail slots hold the retire node), so
 * batches cycle through the depot and steady-state deferred frees allocate
 * no magazine.  Per-thread state: thread.c; holders, zombies and
 * finalisation: lifecycle.c; reaping and magazine sizing: reap.c;
 * statistics: stats.c.
 *
 * OBJECT STATES (each constructed object is in exactly one):
 *   IN_SLAB -> (mp_slab_alloc) IN_MAGAZINE (a thread's loaded/prev)
 *   IN_MAGAZINE <-> IN_USE (fast paths)       IN_MAGAZINE <-> IN_DEPOT
 *   IN_USE -> (free_deferred) DEFERRED -> (grace period) IN_DEPOT
 *   IN_MAGAZINE / IN_DEPOT -> (reap, shrink, zombie) IN_SLAB
 *   IN_SLAB -> (slab teardown, dtor) destroyed.
 *
 * INVARIANTS (per cache; exact at quiescence, checked by the tests):
 *   (I1) in_slabs + in_magazines + in_depot + deferred + in_use == constructed
 *   (I2) in_use == allocs - frees, where allocs and frees are summed over
 *        the holders' tcaches plus the cache's folded totals; a tcache counts
 *        allocs and net = objects into its holdings (loaded/prev magazines,
 *        deferred batch) from outside - objects out, so frees = allocs - net
 *        + rounds + prev_rounds + def_rounds and no free hit counts anything
 *        (each hit moves the terms of I1 with one store: cache_impl.h, tc_net).
 *   (I3) tcache[id] of a thread is all zero  <=>  the thread is not a holder
 *        of cache id  (holder <=> a loaded magazine, mp_tc_loaded != NULL); tcache[0] is always
 *        zero, so a fast id of 0 always misses.
 *   (I4) c_holders == number of threads that are holders of c.
 *   (I5) a cache is finalised (id freed, struct retired) only when destroyed
 *        and c_holders == 0 and in_use == 0 and c_deferred_sealed == 0; so an
 *        id is never reused while any tcache[id] holds a magazine (I3, I4).
 *        c_holders also counts pseudo-holders: destroy itself while it runs,
 *        and magpool_reap while it shrinks a cache (mp_cache_pin), so a reap
 *        racing a destroy never touches a finalised cache.
 *   (I6) a magazine is in exactly one place: a tcache (loaded, prev or
 *        deferred), a depot stack or backlog slot, a sealed batch awaiting its grace period,
 *        or in transit in exactly one thread's slow path.
 *
 * SHARED FIELDS (who writes / who reads / ordering)
 *   tc_top, tc_prev_rounds, tc_def_rounds, tc_allocs, tc_net
 *       owner thread (relaxed stores, but a hit's last store of top is a
 *       release; counters by load+store, never RMW) /
 *       stats and mp_cache_live under mp_threads_lock (relaxed loads: at
 *       quiescence exact, otherwise a snapshot).  The inline hits of
 *       magpool.h, compiled into the application, are the same code as the
 *       library's (one definition, on the same C11 atomics): the same single
 *       writer.  Exactness at quiescence needs the reader ordered after the
 *       writer's last store (a join, a lock, any release/acquire).
 *   bit 0 of tc_top  the owner's hits (set by their first store, cleared
 *       by their release store of the new top) / idle.c's reclaimer
 *       (acquire), the handshake proved at the top of idle.c; other
 *       readers mask it (mp_tc_top).
 *   tc_low, tc_high (so the loaded magazine), tc_prev, tc_deferred, magazine contents
 *       the owner thread, or a reclaimer holding the owner's gate after the
 *       handshake (idle.c); swapped, the bounds are the reclaimer's stop mark.
 *   c_fast_off  create (before the handle is published by the caller) and
 *       destroy (store 0) / every fast path, relaxed: destroy is ordered
 *       after the cache's other uses by the caller (synchronization table),
 *       and a stale non-zero value can only be seen by a thread holding
 *       magazines for c, which keeps c alive (I5) until it flushes.
 *   c_destroyed written under mp_registry_lock; read relaxed as a hint in
 *       slow paths; decisions (hold, zombie free, finalise) re-read it under
 *       the lock.
 *   mp_destroy_gen  destroy (release increment) / slow paths (acquire load):
 *       a thread that sees the new generation sees c_destroyed and flushes
 *       its tcaches of zombies.
 *   mp_caches[id]  create (release store, publishes the struct) and
 *       finalise (store NULL) under mp_registry_lock / foreach, thread
 *       flushes (acquire loads; structs freed only after a grace period).
 *   c_holders, c_finalized, zombie list: under mp_registry_lock.
 *   c_allocs, c_frees, c_deferred_sealed, c_reaps, ...: atomic adds on slow
 *       paths.  What a finaliser needs to see is ordered by mp_registry_lock
 *       (folds, zombie frees, deferred callbacks) or, for a non-holder's free
 *       to the slab layer, by a release add paired with mp_cache_live's
 *       acquire load.
 *   depot heads and counters: depot.c (its design comment).
 *   c_mag_size: relaxed (a sizing hint; magazines carry their own cap).
 *
 * WHY THE DEPOT HAS NO ABA: depot.c.  Its stack heads are (tag << 32 | index)
 * in one 64-bit word; every pop bumps the tag, so a head popped and pushed
 * back never compares equal, and a stale popper reads nothing but an atomic
 * link of a slot that stays mapped, so pops need no read-side section (one
 * CAS and relaxed counters per pop/push).  A retired magazine's slot is still
 * recycled only after a grace period.
 *
 * MAGAZINE SIZES AND MEMORY.  Magazine sizes follow one ladder, described
 * where it is implemented (reap.c, "The magazine ladder": why a cache starts
 * at about 32 KiB of objects per magazine, and how it moves).  The price is
 * per-thread holding: at most two magazines per thread and cache (~64 KiB of
 * objects at the start size), plus, for a cache with a steady
 * producer/consumer flow, the depot's backlog (default twice the L2 cache,
 * at most 64 magazines; depot.c).  Magazines take size-classed slots
 * (depot.c), ~8-9 bytes per round.  Shrink drains the depot, polls the
 * default domain so the magazines' slots come back, trims the magazine area
 * and gives empty slabs (pages and free stacks, none of it malloc'd: meta.h)
 * back: RSS returns to its level before a burst.
 *
 * RECLAMATION: reclaim.c holds the proof (epochs after Fraser 2004 /
 * ck_epoch; liburcu for the application's flavour).  The core retires
 * through it: magazine slots (mp_mag_retire), deferred batches (one
 * mp_retire per magazine, Kim, Brown & Singh 2024), typesafe slab pages, and cache structs
 * (magpool_cache_foreach runs its loop in a read-side section; a caller of
 * magpool_cache_of holds a live object, which keeps its cache alive).  Grace
 * periods advance without a dedicated thread: slow paths poll (every 16th).
 *
 * THREAD EXIT (thread.c): a pthread key destructor flushes every cache the
 * thread holds (loaded/prev to the depot, deferred batch sealed, counters
 * folded under mp_threads_lock), then mp_reclaim_thread_exit, then unlinks
 * and frees the state.  magpool_thread_flush does the same without exiting.
 *
 * DESTROY AND ZOMBIES: destroy marks the cache (fast id 0, c_destroyed,
 * mp_destroy_gen++), flushes the caller's tcache, drains the depot into the
 * slab layer and reaps empty slabs.  If nothing is live and no other thread
 * holds magazines, the cache is finalised now; else it stays on the zombie
 * list and destroy returns the live count.  Holders notice at their next
 * slow path (generation) or exit and flush to the slab layer; frees into a
 * zombie take the slow path (fast id 0) and go straight to the slab layer;
 * the last one out finalises (I5).  Finalisation drains the depot once more,
 * tears down every slab (dtors, pages) and retires the struct: the struct and
 * the now-empty slab cache are freed after a grace period of the default
 * domain, because a magpool_cache_foreach stats walk that loaded c before it
 * was unregistered may still read c->c_slab (TSan found this race).
 *
 * TUNABLES (few): magazine bounds per cache (mag_min/mag_max, clamping the
 * ladder of reap.c); max_objects; backlog bytes (default twice the L2
 * cache, at most 64 magazines; MAGPOOL_NO_BACKLOG turns it off);
 * reap interval 100 ms (MP_REAP_MS, reap.c); MAGPOOL_DEBUG and
 * MAGPOOL_FAULT_PPM in the environment.
 *
 * LOCKS (slow paths only; the complete order is in fork.c): a thread's
 * slow-path gate (fork safety), mp_registry_lock (ids, zombies, holders,
 * finalisation), then mp_threads_lock (thread list, counter folds, stats
 * sums), then a slab cache's lock.  Becoming a holder of a cache takes the
 * registry lock once per thread and cache (and again after a flush).
 *
 * OBSERVABILITY: magpool_cache_stats (stats.c) sums per-thread counters at
 * read time: no shared counter is touched on a fast path.  Every tunable has
 * a statistic (mag_size, mag_resizes, reaps, max_objects, ...).
 *
 * DEBUG CACHES: fast id 0, so every call takes the slow path, which uses the
 * thread's magazines (under the real id) AFTER the debug.c checks: a freed
 * object is verified, poisoned, then cached; an allocated object is taken
 * from a magazine, then verified.  A deferred free is verified at once and
 * poisoned only when its grace period ends (mp_debug_on_free_deferred, then
 * mp_debug_on_reclaim in the batch callback).  Objects are initialised
 * for debug.c by wrapping the constructor, which the slab layer runs
 * exactly once per object construction.
 *
 * CHECKED CACHES (sanitize.h): the library is usually uninstrumented while
 * the application is built with ASan or TSan, so the runtimes are detected
 * at run time (weak references to their interface).  A cache created while
 * ASan, or TSan with an uninstrumented library, is in the process is
 * checked: fast id 0 like a debug cache, so every call takes the slow path,
 * whose hooks poison every object at rest (slabs, magazines, depot; the
 * page layer poisons free pages, so kmalloc's spans too) and announce every
 * hand-off to TSan (release at free, acquire at alloc; deferred objects
 * released again after the grace period's acquire).  Deferred objects stay
 * readable until their grace period ends.  ASan's report is followed by a
 * line naming the pool (mp_describe_addr).  LSan scans the arena and the
 * descriptor pool as root regions.  The hits carry no sanitizer code.
 * ==========================================================================
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_impl.h"
#include "debug.h"
#include "fork.h"
#include "frontend.h"
#include "meta.h"
#include "page.h"

/* ---- create ---------------------------------------------------------------- */

/* Debug caches: the slab layer runs this once per construction. */
static void mp_ctor_debug(void *obj, void *arg)
{
    struct magpool_cache *c = arg;
    if (c->c_ctor)
        c->c_ctor(obj, c->c_arg);
    mp_debug_init_object(c, obj);
}

/* cfg is valid for a cache whose flags may hold `known` bits.  Names must fit
 * c_name whole (63 characters): a cut name would silently merge two caches'
 * statistics and diagnostics. */
static bool mp_config_ok(const struct magpool_config *cfg, unsigned known)
{
    if (cfg == NULL || cfg->size == 0 || cfg->size > MAGPOOL_MAX_OBJECT_SIZE)
        return false;
    if ((cfg->flags & ~known) != 0)
        return false;
    if (cfg->name != NULL && strnlen(cfg->name, sizeof ((struct magpool_cache *)0)->c_name) >=
                                 sizeof ((struct magpool_cache *)0)->c_name)
        return false;
    if (cfg->align != 0 && ((cfg->align & (cfg->align - 1)) != 0 || cfg->align > 4096))
        return false;
    if (cfg->mag_max > MAGPOOL_MAG_MAX)
        return false;
    unsigned lo = cfg->mag_min ? cfg->mag_min : MAGPOOL_MAG_MIN;
    unsigned hi = cfg->mag_max ? cfg->mag_max : MP_MAG_MAX_DEFAULT;
    return lo <= hi;
}

/* Default backlog: twice the L2 cache, so an object is reused only after
 * the freeing core's L2 has turned over (depot.c, "Backlog"). */
static size_t mp_backlog_default(void)
{
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? 2 * (size_t)l2 : (size_t)2 << 20;
}

/* The depot's backlog for cfg (depot.c, "Backlog"): cfg->backlog bytes
 * (0 = default) in magazines of mag rounds of stride bytes, at most
 * MP_BACKLOG_SLOTS_MAX and at most a quarter of an object limit (objects
 * held back are objects the limit does not let others build).  It engages
 * after a flow of twice its bytes (depot.c, DB1), counted in magazine pushes. */
static void mp_backlog_init(struct mp_depot *d, const struct magpool_config *cfg, unsigned flags,
                            size_t stride, unsigned mag)
{
    size_t bytes = cfg->backlog ? cfg->backlog : mp_backlog_default();
    size_t span = bytes / ((size_t)mag * stride); /* magazines in `bytes` */
    size_t slots = span < MP_BACKLOG_SLOTS_MAX ? span : MP_BACKLOG_SLOTS_MAX;
    if (cfg->max_objects != 0 && slots > cfg->max_objects / (4u * (size_t)mag))
        slots = cfg->max_objects / (4u * (size_t)mag);
    if (flags & MAGPOOL_NO_BACKLOG)
        slots = 0;
    mp_depot_init(d, (unsigned)slots, 2u * (uint64_t)span);
}

/* After an ASan report about addr (sanitize.h): one line naming the pool
 * whose object slot holds it, so a use after free in a pooled object reads
 * as one.  Runs in ASan's death callback: no lock, no allocation. */
static void mp_describe_addr(const void *addr)
{
    void *obj = NULL;
    struct magpool_cache *c = mp_slab_locate(addr, &obj);
    if (c == NULL)
        return;
    size_t off = (size_t)((const char *)addr - (const char *)obj);
    fprintf(stderr, "magpool: %p is %zu bytes into object %p of cache '%s' (object size %zu%s)\n", addr,
            off, obj, c->c_name, c->c_size, off >= c->c_size ? ", past its end" : "");
}

/* magpool_cache_create, with the front ends' internal flags (core.h) allowed
 * when `known` says so. */
static magpool_cache_t *mp_cache_create_flags(const struct magpool_config *cfg, void *priv, unsigned known)
{
    if (!mp_config_ok(cfg, known)) {
        errno = EINVAL;
        return NULL;
    }
    mp_fork_init();
    struct magpool_cache *c = mp_meta_alloc(sizeof *c); /* zeroed, 64-byte aligned */
    if (c == NULL)
        return NULL;
    snprintf(c->c_name, sizeof c->c_name, "%s", cfg->name ? cfg->name : "anonymous");
    c->c_size = cfg->size;
    c->c_flags = cfg->flags | mp_debug_env_flags();
    c->c_debug = (c->c_flags & MP_DEBUG_FLAGS) != 0 || mp_under_memcheck();
    unsigned san = mp_san();
    c->c_checked = (san & MP_SAN_ROUTE) != 0;
    if (san & MP_SAN_ASAN)
        mp_san_set_describer(mp_describe_addr);
    c->c_align = cfg->align ? cfg->align : (cfg->size >= 16 ? 16 : 8);
    c->c_max_objects = cfg->max_objects;
    c->c_ctor = cfg->ctor;
    c->c_arg = cfg->arg;
    c->c_priv = priv;
    c->c_domain = cfg->domain ? cfg->domain : mp_domain_default();
    c->c_mag_min = cfg->mag_min ? cfg->mag_min : MAGPOOL_MAG_MIN;
    c->c_mag_max = cfg->mag_max ? cfg->mag_max : MP_MAG_MAX_DEFAULT;
    c->c_thread_budget = cfg->thread_budget ? cfg->thread_budget : MP_THREAD_BUDGET_DEFAULT;
    atomic_init(&c->c_mag_size, mp_mag_initial(cfg->size, c->c_mag_min, c->c_mag_max));

    struct mp_slab_params p = {
        .size = cfg->size,
        .align = c->c_align,
        .extra = c->c_debug ? mp_debug_extra(c->c_flags, cfg->size) : 0,
        .flags = c->c_flags,
        .ctor = c->c_debug ? mp_ctor_debug : cfg->ctor,
        .dtor = cfg->dtor,
        .arg = c->c_debug ? (void *)c : cfg->arg,
        .owner = c,
        .max_objects = cfg->max_objects,
    };
    c->c_slab = mp_slab_cache_new(&p);
    if (c->c_slab == NULL) {
        mp_meta_free(c, sizeof *c);
        return NULL;
    }
    c->c_stride = mp_slab_stride(c->c_slab);
    mp_backlog_init(&c->c_depot, cfg, c->c_flags, c->c_stride,
                    mp_load_relaxed(&c->c_mag_size));

    unsigned id = mp_cache_register(c);
    if (id == 0) {
        mp_slab_cache_delete(c->c_slab);
        mp_meta_free(c, sizeof *c);
        errno = ENOMEM;
        return NULL;
    }
    mp_reaper_start(); /* reap.c: idle threads' magazines, depots of quiet caches */
    return c;
}

/* frontend.h's MP_FE_MEMO_INIT: an object no slab names as its owner. */
const char mp_fe_no_owner;

magpool_cache_t *mp_cache_create_priv(const struct magpool_config *cfg, void *priv)
{
    return mp_cache_create_flags(cfg, priv, MP_CACHE_FLAGS | MP_FE_FLAGS);
}

MAGPOOL_API magpool_cache_t *magpool_cache_create(const struct magpool_config *cfg)
{
    return mp_cache_create_flags(cfg, NULL, MP_CACHE_FLAGS);
}

/* ---- destroy, zombies, finalisation ---------------------------------------- */

MAGPOOL_API long magpool_cache_destroy(magpool_cache_t *c)
{
    if (c == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (!mp_cache_mark_destroyed(c)) {
        errno = EINVAL;
        return -1;
    }
    /* Other threads' magazines of c: an idle holder's come back now
     * (idle.c), a busy one's at its next slow path (it sees the destroy
     * generation).  Without membarrier, that slow path is the only way. */
    if (mp_idle_reclaim_available())
        mp_idle_reclaim(c);
    struct mp_thread *t = mp_gate_enter_self(); /* magazines in transit (fork.c) */
    if (t != NULL)
        mp_tc_flush(t, c);
    mp_depot_drain(c);
    mp_slab_reap_cache(c);
    mp_gate_leave_self(t);

    long live = mp_cache_destroy_done(c);
    /* The last cache gone: what the library kept for caches goes too, but
     * for the per-thread constants (issue 15, "nothing stays after
     * destroy"; magpool.h, magpool_cache_destroy). */
    if (mp_load_relaxed(&mp_live_caches) == 0)
        mp_release_unused();
    return live;
}

/* ---- lookup and iteration ------------------------------------------------- */

MAGPOOL_API magpool_cache_t *magpool_cache_of(const void *obj)
{
    int why;
    magpool_cache_t *c = mp_obj_check(obj, NULL, &why);
    if (c == NULL)
        errno = EINVAL;
    return c;
}

MAGPOOL_API int magpool_cache_foreach(int (*fn)(magpool_cache_t *c, void *arg), void *arg)
{
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    int r = 0;
    /* Cache structs are freed only after a grace period of the default
     * domain, so the pointers loaded here stay valid inside the section. */
    magpool_domain_t *d = mp_domain_default();
    mp_domain_enter(d);
    for (unsigned id = 1; id < MAGPOOL_MAX_CACHES && r == 0; id++) {
        /* Acquire: pairs with the release store in mp_cache_register
         * (lifecycle.c), so c_destroyed and the fields fn reads are
         * initialised.  Weakened, fn could see a half-initialised cache. */
        struct magpool_cache *c = mp_load_acquire(&mp_caches[id]);
        if (c != NULL && !mp_load_relaxed(&c->c_destroyed))
            r = fn(c, arg);
    }
    mp_domain_leave(d);
    return r;
}

/* The empty asm hides that the result is always NULL: knowing it (LTO), the
 * compiler would turn the callers' tail call into call + zero, which costs
 * their hit path a stack frame. */
MP_COLD void *mp_null_einval(void)
{
    void *none = NULL;
    __asm__("" : "+r"(none));
    errno = EINVAL;
    return none;
}

MAGPOOL_API void magpool_fault_inject(unsigned ppm)
{
    mp_page_fault_inject(ppm);
}
