/*
 * Lifecycle of caches: the registry of ids, holders, pins, zombies and
 * finalisation (design: top of src/core/cache.c, "Destroy and zombies",
 * invariants I3-I5).  Part of the per-thread cache layer: the magazine slow
 * paths, thread flushes and deferred callbacks call down into it, and the
 * core API's create and destroy use it; it calls only the layers below
 * (depot, slab, reclamation) and the thread sums of this layer.
 *
 * GUARANTEES
 *  - A cache is registered (id, mp_caches[id]) from create until it is
 *    finalised; ids are reused only after finalisation, which needs (I5): the
 *    cache destroyed, no holder (threads with magazines for it, destroy
 *    itself while it runs, pins of magpool_reap), no live object (the folded
 *    counters: every holder has folded, so c_allocs - c_frees is exact), and
 *    no sealed deferred batch.
 *  - Everything here runs under mp_registry_lock; mp_cache_release, which
 *    tears a finalised cache down, runs with no lock held.
 *  - A finalised cache's struct is freed after a grace period of the default
 *    domain (stats walks may still read it); a TYPESAFE cache's slabs wait a
 *    grace period of its own domain first.
 *  - Destroy's count of objects still out is taken with no move of the
 *    cache in flight (cache_impl.h, mp_moves_begin): exact when no other
 *    thread uses the cache, whatever the reaper thread is doing.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "cache_impl.h"
#include "meta.h"

pthread_mutex_t mp_registry_lock = PTHREAD_MUTEX_INITIALIZER;
_Atomic(struct magpool_cache *) mp_caches[MAGPOOL_MAX_CACHES];
_Atomic uint64_t mp_destroy_gen;

/* Under mp_registry_lock: free ids (a stack), the next never-used id, zombies. */
static unsigned mp_free_ids[MAGPOOL_MAX_CACHES];
static unsigned mp_nfree_ids;
static unsigned mp_next_id = 1; /* id 0 is never given to a cache */
static struct magpool_cache *mp_zombies;

/* ---- registration -------------------------------------------------------- */

_Atomic unsigned mp_live_caches; /* written under mp_registry_lock */

unsigned mp_cache_register(struct magpool_cache *c)
{
    pthread_mutex_lock(&mp_registry_lock);
    unsigned id = 0;
    if (mp_nfree_ids > 0)
        id = mp_free_ids[--mp_nfree_ids];
    else if (mp_next_id < MAGPOOL_MAX_CACHES)
        id = mp_next_id++;
    if (id != 0) {
        c->c_id = id;
        atomic_init(&c->c_fast_off, c->c_debug || c->c_checked ? 0 : id * MAGPOOL_HIT_STRIDE_);
        /* Release: publishes the initialised struct to foreach / flush
         * readers (acquire loads).  Weakened, a reader could see a
         * half-initialised cache. */
        mp_store_release(&mp_caches[id], c);
        mp_store_relaxed(&mp_live_caches, mp_load_relaxed(&mp_live_caches) + 1); /* under the lock */
    }
    pthread_mutex_unlock(&mp_registry_lock);
    return id;
}

/* Objects out, from the counters folded into the cache.  Exact once no
 * thread holds c (every holder folds when it lets go).  Registry lock held. */
static long mp_cache_folded_live(struct magpool_cache *c)
{
    /* Acquire: pairs with the release add to c_frees in mp_free_slow (a
     * non-holder's free, not under any lock), so a finaliser that sees that
     * free counted also sees its mp_slab_free before it.  Weakened, the slab
     * cache could be deleted while that free is not yet visible to it. */
    uint64_t frees = mp_load_acquire(&c->c_frees);
    return (long)(mp_load_relaxed(&c->c_allocs) - frees);
}

/* ---- destroy, zombies, finalisation ---------------------------------------- */

bool mp_cache_mark_destroyed(struct magpool_cache *c)
{
    pthread_mutex_lock(&mp_registry_lock);
    bool was = mp_load_relaxed(&c->c_destroyed);
    if (!was) {
        mp_store_relaxed(&c->c_destroyed, true);
        /* Relaxed: the caller orders destroy after its own uses of c; other
         * threads' stale fast offset is covered by (I5), see the statement. */
        mp_store_relaxed(&c->c_fast_off, 0);
        /* Release: pairs with the acquire load in mp_thread_housekeeping; a
         * thread that sees the new generation sees c_destroyed.  Weakened,
         * it might skip flushing and keep the zombie alive until it exits. */
        mp_fetch_add_release(&mp_destroy_gen, 1);
        c->c_holders++; /* destroy itself holds c until it is done with it */
    }
    pthread_mutex_unlock(&mp_registry_lock);
    return !was;
}

void mp_moves_backoff(unsigned i)
{
    if (i < 16) {
        sched_yield();
        return;
    }
    unsigned doublings = (i - 16) / 8;
    long ns = doublings >= 6 ? 1000000 : 25000L << doublings; /* 25 us .. 800 us, then 1 ms */
    nanosleep(&(struct timespec){ .tv_nsec = ns }, NULL);
}

long mp_cache_destroy_done(struct magpool_cache *c)
{
    /* Objects still out, counted with no move of c in flight (cache_impl.h,
     * mp_moves_begin): the reaper taking another thread's magazines moves
     * their rounds out of that thread's tcache before it folds the thread's
     * counters under this lock, and a count in between would report those
     * rounds as objects still out. */
    long live;
    struct mp_moves_reading r = { 0 };
    for (;;) {
        mp_moves_settle(c, &r);
        pthread_mutex_lock(&mp_registry_lock);
        live = mp_cache_live(c);
        if (mp_moves_whole(c, &r))
            break;
        pthread_mutex_unlock(&mp_registry_lock);
    }
    c->c_holders--;
    bool fin = mp_cache_maybe_finalize(c);
    if (!fin) {
        c->c_znext = mp_zombies;
        mp_zombies = c;
    }
    pthread_mutex_unlock(&mp_registry_lock);
    if (fin)
        mp_cache_release(c);
    return live;
}

/* After a grace period of the default domain: no magpool_cache_foreach
 * section (stats walks read c->c_slab) can still see c.  Its slabs are
 * already gone (mp_cache_release), so deleting the slab cache only frees its
 * struct. */
static void mp_cache_free_struct(struct mp_retire_node *node)
{
    struct magpool_cache *c =
        (struct magpool_cache *)((char *)node - offsetof(struct magpool_cache, c_free_node));
    mp_slab_cache_delete(c->c_slab);
    mp_meta_free(c, sizeof *c);
}

bool mp_cache_maybe_finalize(struct magpool_cache *c)
{
    /* Relaxed loads: every change that can make these zero for a destroyed
     * cache happens under mp_registry_lock, which we hold (holders fold and
     * release under it, zombie frees and deferred callbacks run under it). */
    if (!mp_load_relaxed(&c->c_destroyed) || c->c_finalized ||
        c->c_holders != 0 ||
        mp_load_relaxed(&c->c_deferred_sealed) != 0 || mp_cache_folded_live(c) != 0)
        return false;
    c->c_finalized = true;
    for (struct magpool_cache **pp = &mp_zombies; *pp; pp = &(*pp)->c_znext) {
        if (*pp == c) {
            *pp = c->c_znext;
            break;
        }
    }
    mp_store_relaxed(&mp_caches[c->c_id], NULL);
    mp_store_relaxed(&mp_live_caches, mp_load_relaxed(&mp_live_caches) - 1); /* under the lock */
    /* No thread holds magazines for c (I5), and no call on it is legal:
     * the states reclaims took can go (and, with them, the array pages of
     * idle threads that hold nothing else), then the id. */
    mp_tcs_clear_taken(c->c_id);
    mp_free_ids[mp_nfree_ids++] = c->c_id;
    return true;
}

/* Typesafe caches: after a grace period of the cache's domain, the slabs go
 * back, then the structs wait a grace period of the default domain. */
static void mp_cache_release_typesafe(struct mp_retire_node *node)
{
    struct magpool_cache *c =
        (struct magpool_cache *)((char *)node - offsetof(struct magpool_cache, c_slab_node));
    mp_slab_reap(c->c_slab, NULL, NULL); /* every slab is empty: all go */
    mp_retire(mp_domain_default(), &c->c_free_node, mp_cache_free_struct);
}

/* Finalise a cache that mp_cache_maybe_finalize unregistered (no lock held). */
void mp_cache_release(struct magpool_cache *c)
{
    mp_depot_drain(c); /* magazines pushed by flushes that raced with destroy */
    if (c->c_flags & MAGPOOL_TYPESAFE) {
        mp_retire(c->c_domain, &c->c_slab_node, mp_cache_release_typesafe);
        return;
    }
    /* Every object is back in its slab: dtors run and pages go back now;
     * the slab cache struct itself waits with c (a foreach stats walk that
     * loaded c before it was unregistered may still read it). */
    mp_slab_reap(c->c_slab, NULL, NULL);
    mp_retire(mp_domain_default(), &c->c_free_node, mp_cache_free_struct);
}

bool mp_cache_pin(struct magpool_cache *c)
{
    pthread_mutex_lock(&mp_registry_lock);
    bool ok = !mp_load_relaxed(&c->c_destroyed);
    if (ok)
        c->c_holders++;
    pthread_mutex_unlock(&mp_registry_lock);
    return ok;
}

size_t mp_cache_pin_some(unsigned *from, struct magpool_cache **out, size_t cap)
{
    size_t n = 0;
    /* Cache structs are freed only after a grace period of the default
     * domain: the pointers loaded inside the section stay valid until each
     * is pinned, and a pin keeps its cache from being finalised after. */
    magpool_domain_t *d = mp_domain_default();
    mp_domain_enter(d);
    unsigned id = *from;
    for (; id < MAGPOOL_MAX_CACHES && n < cap; id++) {
        /* Acquire: pairs with the release store in mp_cache_register, so
         * the cache's fields are initialised before we pin it and hand it
         * out.  Weakened, the caller could get a half-initialised cache. */
        struct magpool_cache *c = mp_load_acquire(&mp_caches[id]);
        if (c != NULL && mp_cache_pin(c))
            out[n++] = c;
    }
    mp_domain_leave(d);
    *from = id;
    return n;
}

void mp_cache_unpin(struct magpool_cache *c)
{
    pthread_mutex_lock(&mp_registry_lock);
    c->c_holders--;
    bool fin = mp_cache_maybe_finalize(c);
    pthread_mutex_unlock(&mp_registry_lock);
    if (fin)
        mp_cache_release(c);
}

void mp_zombie_free(struct magpool_cache *c, void *const *objs, size_t n)
{
    pthread_mutex_lock(&mp_registry_lock);
    mp_slab_free(c->c_slab, objs, n);
    mp_fetch_add_relaxed(&c->c_frees, n); /* under the lock */
    bool fin = mp_cache_maybe_finalize(c);
    pthread_mutex_unlock(&mp_registry_lock);
    if (fin)
        mp_cache_release(c);
}

/* ---- lookup and accessors -------------------------------------------------- */

const char *mp_obj_problem(int why)
{
    return why == MP_OBJ_WRONG_CACHE ? "wrong cache" : why == MP_OBJ_MISALIGNED ? "misaligned pointer" : "foreign pointer";
}

magpool_cache_t *mp_obj_check(const void *obj, magpool_cache_t *expected, int *why)
{
    int w = MP_OBJ_FOREIGN;
    struct magpool_cache *c = obj ? mp_slab_owner(obj, &w) : NULL;
    if (c != NULL)
        w = (expected != NULL && c != expected) ? MP_OBJ_WRONG_CACHE : MP_OBJ_OK;
    if (why != NULL)
        *why = w;
    return c;
}

MAGPOOL_API const char *magpool_cache_name(const magpool_cache_t *c)
{
    return c ? c->c_name : NULL;
}

MAGPOOL_API size_t magpool_cache_object_size(const magpool_cache_t *c)
{
    return c ? c->c_size : 0;
}

void *mp_cache_priv(const magpool_cache_t *c)
{
    return c ? c->c_priv : NULL;
}

magpool_domain_t *mp_cache_domain(const magpool_cache_t *c)
{
    return c ? c->c_domain : mp_domain_default();
}

