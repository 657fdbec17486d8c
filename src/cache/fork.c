/*
 * Fork safety: pthread_atfork handlers for the whole library (contract:
 * fork.h).
 *
 * LOCK ORDER (the one order of the library; "A -> B": B may be taken while
 * A is held, never A while B is held).  Prepare takes them top to bottom;
 * parent and child release them bottom to top.
 *   1. the default domain's lock (reclaim.c; held while callbacks run, which
 *      take the registry lock and slab locks)      -> everything below
 *   2. thread creation, then every thread's slow-path gate (thread.c; a gate
 *      holder only ever try-locks a domain lock)     -> 3 .. 6
 *   3. mp_registry_lock (cache.c)                    -> 4 .. 6
 *   4. mp_threads_lock (thread.c)                    -> 5, 6
 *   5. each slab cache's lock (slab.c)               -> 6
 *   6. leaves, never nested with each other: the slab descriptor pool, the
 *      magazine area's reservation lock (depot.c), the page layer's init and
 *      page locks (page.c), metadata (meta.c), valgrind's pool registry
 *      (debug.c), the urcu domain list (reclaim.c), the reaper thread's
 *      start/stop lock (reap.c).
 * Front ends take their own locks before any of these (mem_pool.c registers
 * its handler after the core's, so its prepare runs first).
 *
 * WHY THE GATES.  The depot is lock-free: a thread exchanging magazines holds
 * one in a local variable between its pop and its push.  Were the process to
 * fork then, the child would have lost that magazine and its objects.  Every
 * slow path that moves magazines or objects between places runs under its
 * thread's gate (an uncontended mutex of its own: two atomic operations per
 * slow path, none on a hit), so holding every gate means no move is in
 * flight.  The hits need no gate: they touch only their own thread's tcache,
 * whose state the child leaves alone (thread.c, mp_threads_fork_child).
 */
#include "fork.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "cache_impl.h"
#include "debug.h"
#include "meta.h"

/* Slab caches locked by prepare, released by parent/child: the registry is
 * locked in between, so mp_caches cannot change. */
static void slab_locks(bool lock)
{
    for (unsigned id = 1; id < MAGPOOL_MAX_CACHES; id++) {
        /* Relaxed: under mp_registry_lock, which every store holds. */
        struct magpool_cache *c = mp_load_relaxed(&mp_caches[id]);
        if (c == NULL)
            continue;
        if (lock)
            mp_slab_fork_lock(c->c_slab);
        else
            mp_slab_fork_unlock(c->c_slab);
    }
}

/* The child: no move of another thread is in flight any more (those
 * threads are gone), so every cache's moves are settled (cache_impl.h,
 * mp_moves_begin); else one the fork split would keep every snapshot in
 * the child waiting.  Only the reaper's tick can be split, after its depot
 * trim (under its gate, so whole) in its slab reap, whose every change is
 * made under the slab's lock, held by prepare: what the child sees is
 * consistent.  Relaxed: the child runs one thread. */
static void moves_settle(void)
{
    for (unsigned id = 1; id < MAGPOOL_MAX_CACHES; id++) {
        /* Relaxed: under mp_registry_lock, as in slab_locks. */
        struct magpool_cache *c = mp_load_relaxed(&mp_caches[id]);
        if (c != NULL)
            mp_store_relaxed(&c->c_moves_ended, mp_load_relaxed(&c->c_moves_begun));
    }
}

static void leaves_lock(void)
{
    mp_slab_pool_fork_lock();
    mp_mag_area_fork_lock();
    mp_page_fork_lock();
    mp_meta_fork_lock();
    mp_debug_fork_lock();
    mp_reaper_fork_lock();
}

static void leaves_unlock(void)
{
    mp_debug_fork_unlock();
    mp_meta_fork_unlock();
    mp_page_fork_unlock();
    mp_mag_area_fork_unlock();
    mp_slab_pool_fork_unlock();
}

static void prepare(void)
{
    mp_reclaim_fork_lock();
    mp_threads_fork_prepare();
    pthread_mutex_lock(&mp_registry_lock);
    pthread_mutex_lock(&mp_threads_lock);
    slab_locks(true);
    leaves_lock();
}

static void parent(void)
{
    mp_reaper_fork_unlock();
    leaves_unlock();
    slab_locks(false);
    pthread_mutex_unlock(&mp_threads_lock);
    pthread_mutex_unlock(&mp_registry_lock);
    mp_threads_fork_parent(); /* gates before mp_threads_lock is needed again */
    mp_reclaim_fork_unlock();
}

/* The locks were taken by this very thread before the fork, so it may
 * release them here (the child's copy of each is locked by "us"). */
static void child(void)
{
    mp_reaper_fork_child();
    moves_settle();
    leaves_unlock();
    slab_locks(false);
    pthread_mutex_unlock(&mp_threads_lock);
    pthread_mutex_unlock(&mp_registry_lock);
    mp_threads_fork_child();
    mp_reclaim_fork_child();
}

/* Registered when the library is loaded, before any thread can use it:
 * registered lazily (pthread_once, as it once was), a fork while another
 * thread was registering left the child's once-control "in progress" for
 * ever, and the child's first cache hung (kmalloc's classes had the same
 * bug: kmalloc.c).  Priority 101: before mem_pool's (102), whose prepare
 * handler must run first (pthread_atfork runs them in reverse order). */
__attribute__((constructor(101))) static void fork_register(void)
{
    if (pthread_atfork(prepare, parent, child) != 0)
        fprintf(stderr, "magpool: fork: pthread_atfork failed at %p\n", (void *)prepare);
}

/* Nothing to do at run time: the reference keeps this object, and so its
 * constructor, in every static link that creates a cache. */
void mp_fork_init(void)
{
}
