/*
 * Magazine layer: the alloc/free fast paths and their slow paths, bulk calls,
 * deferred frees, magpool_synchronize (design: top of src/core/cache.c).
 *
 * GUARANTEES
 *  - magpool_alloc / magpool_free: on a hit, a handful of instructions on the
 *    calling thread's tcache line: no lock, no atomic read-modify-write, no
 *    epoch, no "initialised?" branch.  A debug cache and a destroyed cache
 *    read the all-zero tcache[0], a thread with no state the shared array
 *    of thread.c (mp_empty_tcs), and miss.
 *  - The slow paths read like Bonwick & Adams (2001) sec. 3.1: alloc swaps
 *    with a full previous magazine, else exchanges an empty for a full one at
 *    the depot, else fills the loaded magazine from the slab layer in one
 *    trip, else (slab layer at its limit or out of memory) releases the
 *    depot's backlog and takes from it; free mirrors it (its full magazines
 *    enter the depot through the backlog, depot.c) and falls back to the
 *    slab layer when no empty magazine can be had.  Housekeeping (zombie flushes, epoch polls, reaping)
 *    rides on the slow paths.
 *  - magpool_alloc_bulk / magpool_free_bulk move runs of rounds between the
 *    caller's array and the loaded magazine (one tcache update per run) and
 *    take the ordinary slow path once per magazine boundary.
 *  - Deferred frees fill a per-thread batch magazine; a full (or flushed)
 *    batch is sealed with ONE mp_retire on the cache's domain, and its
 *    callback puts the magazine on the depot's full list (Kim, Brown & Singh,
 *    PPoPP 2024: amortise reclamation per batch, not per object).
 *
 * MAGAZINE VERBS (one action each; objects are freed, magazines never are):
 *   alloc      a new, empty magazine from the magazine area (mp_mag_alloc,
 *              depot.c);
 *   retire     the magazine itself, holding no rounds that still count: its
 *              slot goes back to the magazine area after a grace period
 *              (mp_mag_retire, depot.c);
 *   get        an empty magazine for a thread: the depot's, else a new one
 *              (mp_mag_get_empty);
 *   put        a magazine that leaves a thread: a full one to the depot, an
 *              empty one to the depot if it has the cache's current size,
 *              else retired; a zombie's is torn down (mp_mag_put for
 *              flushes, mp_mag_put_empty; the free path's exchange pushes
 *              its full magazine through the backlog, mp_depot_push_freed);
 *   tear down  its rounds back to the slab layer, then retire it (reaping,
 *              draining the depot, zombies: mp_mag_teardown).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_impl.h"
#include "debug.h"
#include "fastpath.h"

/* ---- tcache bookkeeping -------------------------------------------------- */

void mp_tc_install(struct mp_tcache *tc, struct mp_mag *loaded, struct mp_mag *prev)
{
    tc->tc_prev = prev;
    void **base = loaded != NULL ? loaded->mag_objs : NULL;
    /* ORDER: high, top, low.  Every caller is the owner under its gate, or
     * a flush of a thread that does not run: no hit beside it.  (A
     * reclaimer, with hits beside it, installs nothing with
     * mp_tc_install_taken and never writes top: idle.c.)  The order keeps
     * the smaller bound the base at each step, so a stats reader that
     * meets a mix gets a clamped count (mp_tc_rounds), never a fault. */
    mp_store_relaxed(&tc->tc_high, loaded != NULL ? base + loaded->mag_cap : NULL);
    mp_store_relaxed(&tc->tc_top, loaded != NULL ? base + loaded->mag_rounds : NULL);
    mp_store_relaxed(&tc->tc_low, base);
    mp_store_relaxed(&tc->tc_prev_rounds, (uint16_t)(prev ? prev->mag_rounds : 0));
}

/* A reclaimer's install of nothing (idle.c, R4), on a stopped state (low =
 * base + cap, high = base): high = NULL, so the state is no holder's any
 * more (its smaller bound is NULL), and nothing else of the hit's: low
 * keeps the stop mark and top the old magazine's top, so a hit misses
 * whichever of the old and new values it reads (an alloc tests top > low,
 * a free top < high).  Storing NULL to top or low could let an alloc hit
 * pair an old top with a low of NULL (idle.c). */
void mp_tc_install_taken(struct mp_tcache *tc)
{
    tc->tc_prev = NULL;
    mp_store_relaxed(&tc->tc_high, NULL);
    mp_store_relaxed(&tc->tc_prev_rounds, 0);
}

/* Write the loaded magazine's round count back before it is unloaded. */
void mp_tc_save(struct mp_tcache *tc)
{
    struct mp_mag *m = mp_tc_loaded(tc);
    if (m != NULL)
        m->mag_rounds = mp_tc_rounds(tc);
}

static void mp_tc_swap(struct mp_tcache *tc)
{
    mp_tc_save(tc);
    mp_tc_install(tc, tc->tc_prev, mp_tc_loaded(tc));
}

/* The process budget (magpool.h, thread_budget): bytes, read once. */
static size_t mp_process_budget(void)
{
    static _Atomic size_t cached;
    size_t b = mp_load_relaxed(&cached);
    if (b == 0) {
        const char *env = getenv("MAGPOOL_PROCESS_BUDGET_MB");
        char *end = NULL;
        unsigned long long mb = env != NULL ? strtoull(env, &end, 10) : 0;
        b = (env != NULL && end != env && *end == '\0' && mb > 0 && mb < (1ull << 40)) ? (size_t)mb << 20
                                                                                    : (size_t)64 << 20;
        mp_store_relaxed(&cached, b); /* every thread computes the same */
    }
    return b;
}

unsigned mp_mag_size(struct magpool_cache *c)
{
    unsigned size = mp_load_relaxed(&c->c_mag_size);
    /* Relaxed: both counts are hints; a size a little off the budget for a
     * moment is only that. */
    size_t caches = mp_load_relaxed(&mp_live_caches);
    size_t share = mp_process_budget() / (caches ? caches : 1);
    size_t budget = c->c_thread_budget < share ? c->c_thread_budget : share;
    size_t holders = (size_t)mp_load_relaxed(&c->c_threads) + 1; /* the caller too */
    size_t rounds = budget / (2 * holders * c->c_stride);    /* loaded + previous */
    return rounds < size ? mp_mag_step_at_most(rounds, c->c_mag_min) : size;
}

static inline bool mp_destroyed(struct magpool_cache *c)
{
    /* Relaxed: a hint; every decision that matters is re-made under
     * mp_registry_lock (mp_tc_hold, mp_zombie_free, finalisation). */
    return mp_load_relaxed(&c->c_destroyed);
}

/* Put an empty magazine: to the depot if it has the current size, else
 * retired (old sizes die out as they empty). */
static void mp_mag_put_empty(struct magpool_cache *c, struct mp_mag *m)
{
    if (m->mag_cap == mp_mag_size(c))
        mp_depot_push_empty(&c->c_depot, m);
    else
        mp_mag_retire(m);
}

/* Tear m down: its rounds go back to the slab layer, then m is retired.  The
 * one teardown, for reaping and draining the depot (reap.c) and a zombie's
 * magazines (mp_mag_put, mp_deferred_ready); the caller keeps c's slab cache
 * alive meanwhile (it holds or pins c, holds mp_registry_lock, or is the one
 * finalising c). */
void mp_mag_teardown(struct magpool_cache *c, struct mp_mag *m)
{
    if (m->mag_rounds)
        mp_slab_free(c->c_slab, m->mag_objs, m->mag_rounds);
    m->mag_rounds = 0;
    mp_mag_retire(m);
}

/* Put a magazine that leaves the calling thread (a flush). */
void mp_mag_put(struct magpool_cache *c, struct mp_mag *m)
{
    if (mp_destroyed(c)) {
        /* Zombie: objects straight to the slab layer.  The caller is still a
         * holder, so the slab cache cannot be finalised under us. */
        mp_mag_teardown(c, m);
    } else if (m->mag_rounds) {
        mp_depot_push_full(&c->c_depot, m);
    } else {
        mp_mag_put_empty(c, m);
    }
}

/* Get an empty magazine of `size` rounds (the cache's current size, read
 * once by the caller): one from the depot, else a new one (NULL + ENOMEM).
 * An empty of another size met on the way is retired, so old sizes die out. */
static struct mp_mag *mp_mag_get_empty(struct magpool_cache *c, unsigned size)
{
    struct mp_mag *m = mp_depot_pop_empty(&c->c_depot);
    if (m != NULL && m->mag_cap != size) {
        mp_mag_retire(m);
        m = NULL;
    }
    return m != NULL ? m : mp_mag_alloc(size);
}

/* ---- alloc ---------------------------------------------------------------- */

/* Load a full depot magazine; the empty previous one goes back. */
static void mp_tc_exchange_full(struct magpool_cache *c, struct mp_tcache *tc, struct mp_mag *full)
{
    mp_tc_save(tc);
    mp_tc_flow(tc, full->mag_rounds);
    if (tc->tc_prev != NULL)
        mp_mag_put_empty(c, tc->tc_prev);
    mp_tc_install(tc, full, mp_tc_loaded(tc));
}

/* Fill the (empty) loaded magazine from the slab layer; false + errno if
 * the slab layer has nothing (object limit, ENOMEM, NOWAIT). */
static bool mp_tc_fill_from_slab(struct magpool_cache *c, struct mp_tcache *tc, unsigned aflags)
{
    struct mp_mag *m = mp_tc_loaded(tc);
    unsigned want = mp_mag_size(c);
    if (m->mag_cap != want && !(aflags & MAGPOOL_NOWAIT)) {
        struct mp_mag *nm = mp_mag_alloc(want);
        if (nm != NULL) {
            mp_mag_retire(m);
            mp_tc_install(tc, nm, tc->tc_prev);
            m = nm;
        }
    }
    size_t got = mp_slab_alloc(c->c_slab, m->mag_objs, m->mag_cap, aflags);
    if (got == 0) {
        if (errno == ENOMEM)
            mp_mag_resize(c, -1);                         /* memory pressure */
        return false;
    }
    mp_san_rest(c, m->mag_objs, got);
    mp_tc_flow(tc, got);
    mp_tc_set_rounds(tc, (uint32_t)got);
    return true;
}

/* No round loaded and the thread holds c: get a full magazine loaded. */
static void *mp_tc_refill_pop(struct magpool_cache *c, struct mp_tcache *tc, unsigned aflags)
{
    struct mp_mag *full;
    if (tc->tc_prev != NULL && tc->tc_prev->mag_rounds > 0) {
        mp_tc_swap(tc);                                   /* 1: previous is full */
    } else if ((full = mp_depot_pop_full(&c->c_depot)) != NULL) {
        mp_tc_exchange_full(c, tc, full);                 /* 2: depot exchange */
    } else if (!mp_tc_fill_from_slab(c, tc, aflags)) {    /* 3: slab layer */
        /* 4: the slab layer is out, but the depot's backlog may hold free
         * objects: release it rather than fail (depot.c, DB2). */
        int err = errno;
        if (mp_depot_backlog_release(&c->c_depot) == 0 ||
            (full = mp_depot_pop_full(&c->c_depot)) == NULL) {
            errno = err;
            return NULL;
        }
        mp_tc_exchange_full(c, tc, full);
    }
    return mp_tc_pop(tc);
}

static void *mp_alloc_try(struct magpool_cache *c, unsigned aflags)
{
    if (mp_destroyed(c)) {
        errno = EINVAL;
        return NULL;
    }
    struct mp_thread *t = mp_thread_get(aflags & MAGPOOL_NOWAIT);
    if (t != NULL && (aflags & MAGPOOL_NOWAIT) && !mp_gate_try_enter(t)) {
        errno = EAGAIN; /* a fork is being prepared */
        return NULL;
    }
    if (t != NULL) {
        if (!(aflags & MAGPOOL_NOWAIT)) {
            mp_gate_enter(t);
            mp_thread_housekeeping(t, c);
        }
        struct mp_tcache *tc = &t->th_tc[c->c_id];
        if (mp_tc_loaded(tc) != NULL || mp_tc_hold(t, c, aflags)) {
            void *obj = mp_tc_rounds(tc) > 0 ? mp_tc_pop(tc) : mp_tc_refill_pop(c, tc, aflags);
            if (obj != NULL)
                mp_owner_add_relaxed_u64(&tc->tc_allocs, 1);
            int err = errno;
            mp_gate_leave(t);
            errno = err;
            return obj;
        }
        mp_gate_leave(t);
    }
    void *obj; /* no thread state (NOWAIT, ENOMEM) or no magazine: slab layer */
    if (mp_slab_alloc(c->c_slab, &obj, 1, aflags) != 1)
        return NULL;
    mp_fetch_add_relaxed(&c->c_allocs, 1);
    return obj;
}

MP_COLD void *mp_alloc_slow(struct magpool_cache *c, unsigned aflags, const void *caller)
{
    if (c == NULL || (aflags & ~(MAGPOOL_ZERO | MAGPOOL_NOWAIT | MAGPOOL_NOFAIL))) {
        errno = EINVAL;
        return NULL;
    }
    /* NOFAIL wins over NOWAIT (as __GFP_NOFAIL does): a retry that may not
     * block could wait for ever on a cache that has nothing built. */
    if (aflags & MAGPOOL_NOFAIL)
        aflags &= ~MAGPOOL_NOWAIT;
    void *obj;
    bool reclaimed = false;
    while ((obj = mp_alloc_try(c, aflags)) == NULL) {
        int err = errno;
        /* Memory pressure (no memory, or the object limit): first take
         * back what idle threads hold for c, then try once more. */
        if (err == ENOMEM && !reclaimed && !(aflags & MAGPOOL_NOWAIT) && !mp_destroyed(c)) {
            reclaimed = true;
            if (mp_pressure_reclaim(c))
                continue;
        }
        mp_fetch_add_relaxed(&c->c_alloc_failures, 1);
        /* NOFAIL retries only what can pass: ENOMEM (memory, or the
         * object limit, which another thread's free lifts; magpool.h).
         * Anything else (a destroyed cache: EINVAL) never will. */
        if (!(aflags & MAGPOOL_NOFAIL) || err != ENOMEM || mp_destroyed(c)) {
            errno = err;
            return NULL;
        }
        mp_nofail_wait();
    }
    mp_san_handout(c, obj);
    if (__builtin_expect(c->c_flags & MP_DEBUG_CHECK, 0))
        mp_check_slow_exit(c);
    if (c->c_debug)
        mp_debug_on_alloc(c, obj, caller);
    if (aflags & MAGPOOL_ZERO)
        memset(obj, 0, c->c_size);
    return obj;
}

/* A miss from an application whose magpool.h lays the hit out differently
 * (magpool.h, "One definition"): its hits until now were wrong, so stop. */
static MP_COLD __attribute__((noreturn)) void mp_hit_layout_mismatch(const void *c, unsigned layout)
{
    char detail[160];
    snprintf(detail, sizeof detail,
             "(this program's inline hits use layout %u, libmagpool uses %u: rebuild it against the installed "
             "magpool.h)",
             layout, MAGPOOL_HIT_LAYOUT_);
    mp_report("magpool.h", c, "inline hit layout mismatch", detail, false);
    abort();
}

static inline __attribute__((always_inline)) void *mp_alloc_entry(magpool_cache_t *c, const void *caller)
{
    if (__builtin_expect(c == NULL, 0))
        return mp_alloc_slow(c, 0, caller);
    return mp_fast_alloc(c, caller);
}

#ifdef MP_MUSTTAIL
/* Entered only by magpool_alloc's tail jump (MP_MUSTTAIL). */
static MP_COLD __attribute__((noinline)) void *mp_alloc_miss_tail(magpool_cache_t *c)
{
    return mp_alloc_slow(c, 0, __builtin_return_address(0));
}
#endif

MP_HOT_ENTRY MAGPOOL_API void *magpool_alloc(magpool_cache_t *c)
{
#ifdef MP_MUSTTAIL
    void *obj;
    if (__builtin_expect(c != NULL && magpool_hit_pop_(magpool_hit_of_(c), &obj), 1))
        return obj;
    MP_MUSTTAIL return mp_alloc_miss_tail(c); /* a NULL c too: EINVAL there */
#else
    return mp_alloc_entry(c, __builtin_return_address(0));
#endif
}

/* magpool.h's inline magpool_alloc after it missed or had no cache: the
 * whole library call, once the caller's layout is known to be ours. */
MAGPOOL_API void *magpool_hit_alloc_miss_(magpool_cache_t *c, unsigned layout)
{
    if (__builtin_expect(layout != MAGPOOL_HIT_LAYOUT_, 0))
        mp_hit_layout_mismatch(c, layout);
    return mp_alloc_entry(c, __builtin_return_address(0));
}

/* The continuations of layout 1's inline hits (before the layout number):
 * only a program built against that older magpool.h calls them. */
MAGPOOL_API void *magpool_alloc_miss_(magpool_cache_t *c)
{
    mp_hit_layout_mismatch(c, 1);
}

MAGPOOL_API void *magpool_alloc_flags(magpool_cache_t *c, unsigned aflags)
{
    if (c == NULL || (aflags & ~MAGPOOL_ZERO) != 0)
        return mp_alloc_slow(c, aflags, __builtin_return_address(0));
    void *obj = mp_fast_alloc(c, __builtin_return_address(0));
    if (obj != NULL && (aflags & MAGPOOL_ZERO))
        memset(obj, 0, c->c_size);
    return obj;
}

/* ---- free ----------------------------------------------------------------- */

/* A free of obj (not NULL) with a NULL cache: the object would leak
 * silently, so it is a misuse, as kmem_cache_free(NULL, obj) is: one line
 * naming the call and the address, then abort (MAGPOOL_DEBUG=continue:
 * dropped, errno EINVAL). */
static MP_COLD void mp_free_null_cache(const void *obj, const char *op)
{
    errno = EINVAL;
    mp_report(op, obj, "NULL cache", NULL, mp_continues(0));
}

MP_COLD void mp_double_free(struct magpool_cache *c, void *obj)
{
    mp_report(c->c_name, obj, "double free", "(immediate)", mp_continues(c->c_flags));
}

/* Whether magpool_free's default check applies to c (magpool.h). */
static inline bool mp_free_checked(const struct magpool_cache *c)
{
    return c->c_priv == NULL && !c->c_debug && !(c->c_flags & MAGPOOL_UNCHECKED);
}

/* obj, given to c's free, is not an object of c: say what it is. */
static MP_COLD void mp_free_bad(struct magpool_cache *c, void *obj, const char *detail)
{
    int why = MP_OBJ_FOREIGN;
    struct magpool_cache *owner = obj != NULL ? mp_slab_owner(obj, &why) : NULL;
    const char *kind = mp_obj_problem(owner != NULL ? MP_OBJ_WRONG_CACHE : why);
    mp_report(c->c_name, obj, kind, detail, mp_continues(c->c_flags));
}

/* Report round i of m and remove it (the last round takes its place). */
static MP_COLD void mp_mag_round_bad(struct magpool_cache *c, struct mp_mag *m, uint32_t i)
{
    mp_free_bad(c, m->mag_objs[i], "(magpool_free; found when its magazine left the thread)");
    m->mag_objs[i] = m->mag_objs[--m->mag_rounds];
}

/* The default check of magpool_free (magpool.h): before a magazine of
 * freed objects leaves the thread, each round is checked once against the
 * slab layer (page map and slab descriptor, no lock); a round that is not
 * an object of c is reported and removed, so the magazine's other rounds
 * and the counts stay right (the dropped free is as if it had not happened:
 * the caller's tc_flow of the magazine counts only what is left).
 * Front-end caches (c_priv) check every free at the free; debug caches
 * check in debug.c; MAGPOOL_UNCHECKED caches asked for no check.  Returns
 * m->mag_rounds.
 *
 * The rounds are taken MP_CHECK_CHUNK at a time.  The leading groups of
 * four of a chunk that lie in the slab the previous chunk ended in pass in
 * one group step (mp_slab_run_groups: 256-bit tests with AVX2); the rest of
 * the chunk, from the first group that does not, is looked up round by
 * round with no retry of the group step inside it.  A thread freeing what
 * it allocated frees in runs through a few slabs, and most of its chunks
 * pass whole (bench batch100000-lifo T=1: the check went from 8.8-8.9% of
 * the samples to 4.4-4.8%).  A magazine of objects from many slabs (a
 * consumer's, freeing what other threads allocated: xmalloc T=8) fails
 * the group step at its first group, chunk after chunk; after each such
 * failure the next 1, 3, then 7 chunks go round by round without trying
 * it, and a chunk that passes whole starts the count again.  So such a
 * magazine costs what the plain lookups cost (xmalloc T=8: 2.8-4.5% of the
 * samples before, 3.0-3.3% after; trying every chunk: 3.4-5.2%; retrying
 * after every slab change, mp_slab_run_owned_by's way: 6.6-7.1%).  The kept
 * slab is as valid as a fresh lookup: it holds a round that passed the full
 * check, an object of c the caller still owns, so it cannot be torn down or
 * change owner meanwhile.  A bad round is replaced by the last one, which
 * is looked at in its turn; no position below mag_rounds is passed over.
 * Not inlined: its callers' slow paths keep their layout (measured: inlined,
 * unrelated single-thread rows moved by 5-10% either way). */
#define MP_CHECK_CHUNK 64u
__attribute__((noinline)) uint32_t mp_mag_check_rounds(struct magpool_cache *c, struct mp_mag *m)
{
    if (!mp_free_checked(c))
        return m->mag_rounds;
    const struct mp_slab_lookup *kept = NULL;
    unsigned skip = 0, backoff = 0;
    for (uint32_t i = 0; i < m->mag_rounds;) {
        uint32_t end = i + (m->mag_rounds - i < MP_CHECK_CHUNK ? m->mag_rounds - i : MP_CHECK_CHUNK);
        if (skip > 0) {
            skip--;
        } else if (kept != NULL) {
            uint32_t from = i;
            i += (uint32_t)mp_slab_run_groups(m->mag_objs + i, end - i, kept);
            if (i == end) {
                backoff = 0;
                continue;
            }
            if (i == from) { /* (not at a slab change inside the chunk) */
                backoff += backoff < 3;
                skip = (1u << backoff) - 1;
            }
        }
        /* Round by round, every branch taken the same way for good rounds;
         * a bad one is removed (the last round moves to i: look again). */
        for (; i < end && i < m->mag_rounds;) {
            if (__builtin_expect(mp_slab_owned_by(m->mag_objs[i], c), 1))
                i++;
            else
                mp_mag_round_bad(c, m, i);
        }
        kept = i > 0 ? mp_page_owner_inline(m->mag_objs[i - 1]) : NULL; /* (rounds before i passed) */
    }
    return m->mag_rounds;
}

/* The loaded magazine is full: make room for one more round. */
static bool mp_tc_make_room(struct magpool_cache *c, struct mp_tcache *tc)
{
    if (tc->tc_prev != NULL && tc->tc_prev->mag_rounds == 0) {
        mp_tc_swap(tc);                                   /* 1: previous is empty */
        return true;
    }
    struct mp_mag *e = mp_mag_get_empty(c, mp_mag_size(c)); /* 2: depot exchange */
    if (e == NULL)
        return false;                                     /* 3: caller uses the slab layer */
    mp_tc_save(tc);
    if (tc->tc_prev != NULL) {
        mp_tc_flow(tc, -(int64_t)mp_mag_check_rounds(c, tc->tc_prev));
        mp_depot_push_freed(&c->c_depot, tc->tc_prev);
    }
    mp_tc_install(tc, e, mp_tc_loaded(tc));
    return true;
}

/* The part of mp_free_slow that uses the calling thread's magazines, under
 * its gate.  False: obj still to be freed to the slab layer, uncounted (the
 * thread could not become a holder). */
static bool mp_free_held(struct magpool_cache *c, struct mp_thread *t, void *obj)
{
    if (mp_destroyed(c)) {
        mp_tc_flush(t, c);
        mp_zombie_free(c, &obj, 1);
        return true;
    }
    mp_thread_housekeeping(t, c);
    struct mp_tcache *tc = &t->th_tc[c->c_id];
    if (mp_tc_loaded(tc) == NULL && !mp_tc_hold(t, c, 0))
        return false;
    if (mp_load_relaxed(&tc->tc_top)[-1] == obj) { /* an empty magazine's top[-1] is its NULL guard */
        mp_double_free(c, obj);
        return true;
    }
    if (mp_tc_rounds(tc) < mp_tc_loaded(tc)->mag_cap || mp_tc_make_room(c, tc)) {
        mp_tc_push(tc, obj);
        return true;
    }
    mp_slab_free(c->c_slab, &obj, 1);
    mp_tc_flow(tc, -1); /* a free that bypassed the magazines */
    return true;
}

/* A free that no magazine takes (a thread with no state or no magazine, a
 * zombie, a deferred free with no memory for its batch): straight to the
 * slab layer, counted in the cache.  live: the caller knows c is not a
 * zombie (else: decided here). */
static void mp_free_unheld(struct magpool_cache *c, void *obj, bool live)
{
    if (!live && mp_destroyed(c)) {
        mp_zombie_free(c, &obj, 1);
        return;
    }
    mp_slab_free(c->c_slab, &obj, 1);
    /* Release: orders the mp_slab_free above (a non-holder's free, under no
     * lock of the cache) before the count; pairs with the acquire loads of
     * c_frees in mp_cache_folded_live (lifecycle.c) and the live count of
     * thread.c, so a finaliser that sees this free counted sees the object
     * back in its slab.  Weakened, the slab cache could be deleted while
     * this free is not yet visible to it. */
    mp_fetch_add_release(&c->c_frees, 1);
}

MP_COLD void mp_free_slow(struct magpool_cache *c, void *obj, const void *caller)
{
    if (c == NULL) {
        mp_free_null_cache(obj, "magpool_free");
        return;
    }
    if (c->c_debug && !mp_debug_on_free(c, obj, caller))
        return;
    /* A checked cache (sanitizers) checks every free at once, before the
     * object is poisoned: a foreign pointer's memory is not ours to poison. */
    if (c->c_checked && mp_free_checked(c) && mp_slab_owner_inline(obj) != c) {
        mp_free_bad(c, obj, "(magpool_free)");
        return;
    }
    mp_san_rest(c, &obj, 1); /* wherever it rests: magazine, slab, zombie */
    struct mp_thread *t = mp_thread_get(false);
    if (t != NULL) {
        mp_gate_enter(t);
        bool done = mp_free_held(c, t, obj);
        if (__builtin_expect(c->c_flags & MP_DEBUG_CHECK, 0))
            mp_check_slow_exit(c);
        mp_gate_leave(t);
        if (done)
            return;
        mp_free_unheld(c, obj, false);
        return;
    }
    mp_free_unheld(c, obj, true);
}

static inline __attribute__((always_inline)) void mp_free_entry(magpool_cache_t *c, void *obj, const void *caller)
{
    if (__builtin_expect(obj == NULL, 0))
        return;
    if (__builtin_expect(c == NULL, 0))
        return mp_free_slow(c, obj, caller);
    mp_fast_free(c, obj, caller);
}

#ifdef MP_MUSTTAIL
/* Entered only by magpool_free's tail jump (MP_MUSTTAIL). */
static MP_COLD __attribute__((noinline)) void mp_free_miss_tail(magpool_cache_t *c, void *obj)
{
    mp_free_slow(c, obj, __builtin_return_address(0));
}
#endif

MP_HOT_ENTRY MAGPOOL_API void magpool_free(magpool_cache_t *c, void *obj)
{
#ifdef MP_MUSTTAIL
    if (__builtin_expect(obj == NULL, 0))
        return;
    if (__builtin_expect(c != NULL && magpool_hit_push_(magpool_hit_of_(c), obj), 1))
        return;
    MP_MUSTTAIL return mp_free_miss_tail(c, obj); /* a NULL c too: reported there */
#else
    mp_free_entry(c, obj, __builtin_return_address(0));
#endif
}

/* magpool.h's inline magpool_free after it missed: as magpool_hit_alloc_miss_. */
MAGPOOL_API void magpool_hit_free_miss_(magpool_cache_t *c, void *obj, unsigned layout)
{
    if (__builtin_expect(layout != MAGPOOL_HIT_LAYOUT_, 0))
        mp_hit_layout_mismatch(c, layout);
    mp_free_entry(c, obj, __builtin_return_address(0));
}

MAGPOOL_API void magpool_free_miss_(magpool_cache_t *c, void *obj)
{
    (void)obj;
    mp_hit_layout_mismatch(c, 1);
}

/* ---- bulk ----------------------------------------------------------------- */

/* The long free run's fused copy and check in 256-bit vectors, for x86-64
 * CPUs with AVX2 (chosen at load time; the library itself is built for
 * baseline x86-64): mp_copy_run_bad's contract and test, eight pointers per
 * step as two quads, each against the quad one slot back (a cross-lane
 * shuffle of registers already loaded).  A 128-object bulk round (4 x 32
 * in, 4 x 32 out) costs about 15% less than with the 128-bit kernel (70 -> 60 ns)
 * (bench/README.md, "Bulk runs"). */
#ifdef MP_HAVE_AVX2
typedef uintptr_t mp_ptr4 __attribute__((vector_size(4 * sizeof(uintptr_t)), aligned(sizeof(uintptr_t)), may_alias));

static inline __attribute__((target("avx2"), always_inline)) bool mp_copy_run_avx2_k(void **restrict dst,
                                                                           void *const *restrict objs, size_t n,
                                                                           void *top,
                                                                           const struct mp_slab_wide *slots)
{
    mp_ptr4 last = { 0, 0, 0, (uintptr_t)top }, b1 = { 0, 0, 0, 0 }, b2 = { 0, 0, 0, 0 };
    mp_ptr4 in = { UINTPTR_MAX, UINTPTR_MAX, UINTPTR_MAX, UINTPTR_MAX };
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        mp_ptr4 v = *(const mp_ptr4 *)(const void *)(objs + j), w = *(const mp_ptr4 *)(const void *)(objs + j + 4);
        MP_VKEEP(v);
        MP_VKEEP(w);
        *(mp_ptr4 *)(void *)(dst + j) = v;
        *(mp_ptr4 *)(void *)(dst + j + 4) = w;
        mp_ptr4 pv = __builtin_shufflevector(last, v, 3, 4, 5, 6), pw = __builtin_shufflevector(v, w, 3, 4, 5, 6);
        if (slots == NULL)
            b1 |= (v - 1) | (w - 1);
        else /* (a slot is never NULL) */
            in &= (mp_ptr4)mp_slab_slots4((__m256i)v, slots) & (mp_ptr4)mp_slab_slots4((__m256i)w, slots);
        b2 |= ((v ^ pv) - 1) | ((w ^ pw) - 1);
        last = w;
    }
    if (slots != NULL && j < n) {
        /* The tail's slots: the last four (and the four before them), again
         * overlapping objects already tested (n >= 8). */
        in &= (mp_ptr4)mp_slab_slots4(_mm256_loadu_si256((const __m256i *)(const void *)(objs + n - 4)), slots);
        if (n - j > 4)
            in &= (mp_ptr4)mp_slab_slots4(_mm256_loadu_si256((const __m256i *)(const void *)(objs + n - 8)), slots);
    }
    b1 |= b2 | ~in;
    return mp_copy_run_tail(dst, objs, j, n, last[3], b1[0] | b1[1] | b1[2] | b1[3]);
}

/* mp_copy_run_bad's contract. */
static inline __attribute__((target("avx2"), always_inline)) bool mp_copy_run_bad_avx2(void **restrict dst,
                                                                           void *const *restrict objs, size_t n,
                                                                           void *top, const void *ctx)
{
    (void)ctx;
    return mp_copy_run_avx2_k(dst, objs, n, top, NULL);
}

/* mp_copy_run_bad_avx2, and also bad if an object is not the start of an
 * object slot of the slab ctx (a struct mp_slab_wide) describes; n >= 8. */
static inline __attribute__((target("avx2"), always_inline)) bool mp_copy_run_unowned_avx2(void **restrict dst,
                                                                               void *const *restrict objs,
                                                                               size_t n, void *top,
                                                                               const void *ctx)
{
    return mp_copy_run_avx2_k(dst, objs, n, top, ctx);
}

#ifdef MP_HAVE_AVX512
/* The same contracts with AVX-512F/VL's mask registers, still in 256-bit
 * vectors (mp_bulk_masked): per four pointers a load, a store, one valignq
 * for the quad one slot back, and compares straight into masks (the repeat
 * test, the NULL test or the slot test), where the AVX2 kernels spend
 * nine to fifteen instructions; the tail is one masked load and store, no
 * scalar loop.  Each step's masks are ANDed into a plain register: no
 * compare waits for an earlier step's. */
static inline __attribute__((target("avx2,avx512f,avx512vl"), always_inline)) __mmask8
mp_run_good_mask(__m256i v, __m256i pv, const struct mp_slab_wide *slots)
{
    __mmask8 k = _mm256_cmpneq_epu64_mask(v, pv);
    return k & (slots != NULL ? mp_slab_slots4_mask(v, slots) : _mm256_test_epi64_mask(v, v));
}

static inline __attribute__((target("avx2,avx512f,avx512vl"), always_inline)) bool mp_copy_run_masked_k(
    void **restrict dst, void *const *restrict objs, size_t n, void *top, const struct mp_slab_wide *slots)
{
    __m256i last = _mm256_set1_epi64x((long long)(uintptr_t)top);
    unsigned ok = 0xF;
    size_t j = 0;
    for (; j + 8 <= n; j += 8) { /* (two quads a step: half the loop's own instructions) */
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(objs + j));
        __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(objs + j + 4));
        MP_VKEEP(v);
        MP_VKEEP(w);
        _mm256_storeu_si256((__m256i *)(void *)(dst + j), v);
        _mm256_storeu_si256((__m256i *)(void *)(dst + j + 4), w);
        ok &= mp_run_good_mask(v, _mm256_alignr_epi64(v, last, 3), slots) & /* [last[3], v0, v1, v2] */
              mp_run_good_mask(w, _mm256_alignr_epi64(w, v, 3), slots);
        last = w;
    }
    if (j + 4 <= n) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(objs + j));
        MP_VKEEP(v);
        _mm256_storeu_si256((__m256i *)(void *)(dst + j), v);
        ok &= mp_run_good_mask(v, _mm256_alignr_epi64(v, last, 3), slots);
        last = v;
        j += 4;
    }
    if (j < n) {
        __mmask8 m = (__mmask8)((1u << (n - j)) - 1); /* lanes past n: not loaded, not stored, not tested */
        __m256i v = _mm256_maskz_loadu_epi64(m, objs + j);
        _mm256_mask_storeu_epi64(dst + j, m, v);
        ok &= mp_run_good_mask(v, _mm256_alignr_epi64(v, last, 3), slots) | (unsigned)(__mmask8)~m;
    }
    return ok != 0xF;
}

/* mp_copy_run_bad's contract. */
static inline __attribute__((target("avx2,avx512f,avx512vl"), always_inline)) bool mp_copy_run_bad_masked(
    void **restrict dst, void *const *restrict objs, size_t n, void *top, const void *ctx)
{
    (void)ctx;
    return mp_copy_run_masked_k(dst, objs, n, top, NULL);
}

/* mp_copy_run_unowned_avx2's contract (any n > 0). */
static inline __attribute__((target("avx2,avx512f,avx512vl"), always_inline)) bool mp_copy_run_unowned_masked(
    void **restrict dst, void *const *restrict objs, size_t n, void *top, const void *ctx)
{
    return mp_copy_run_masked_k(dst, objs, n, top, ctx);
}
#endif

/* The long alloc run's copy out of the magazine in 256-bit moves (no libc
 * call: its dispatch cost more than the copy of a 32-pointer run). */
static inline __attribute__((target("avx2"), always_inline)) void mp_copy_out_avx2(void **restrict dst,
                                                                                   void *const *restrict src, size_t k)
{
    size_t j = 0;
    for (; j + 4 <= k; j += 4) {
        mp_ptr4 v = *(const mp_ptr4 *)(const void *)(src + j);
        MP_VKEEP(v);
        *(mp_ptr4 *)(void *)(dst + j) = v;
    }
    for (; j < k; j++) {
        void *v = src[j];
        __asm__("" : "+r"(v)); /* (no memcpy call: the caller stays a leaf) */
        dst[j] = v;
    }
}
#endif

/* Bulk calls move whole runs of rounds between the caller's array and the
 * loaded magazine: one copy and one tcache update per run, no call per
 * object (a free run's NULL/repeat test rides along with its copy:
 * mp_copy_run_bad, or the AVX2 or masked kernels above, picked at load by
 * cpu.h's switches; the validating free of the kmem_cache front end,
 * mp_free_bulk_owned, adds its ownership test to the same pass).  A short
 * run (<= MP_BULK_INLINE) that fits the loaded
 * magazine is the whole call, with no call at all (a bulk of one costs about
 * one magpool_alloc; the inline hits are in fastpath.h, shared with the
 * kmem_cache bulk calls); a longer one is one pass in mp_*_bulk_run.  Runs
 * that do not fit take the ordinary slow path once per magazine boundary:
 * that call exchanges or refills the magazine and moves one object; the next
 * run takes the rest.  A debug or destroyed cache (tcache[0]: rounds == cap
 * == 0) goes object by object through the slow paths, with their checks.
 * Runs keep magazine order: a bulk alloc followed by a bulk free of the same
 * array leaves the magazine as it was. */
static MP_COLD void mp_zero_objs(struct magpool_cache *c, void *const *objs, size_t n)
{
    for (size_t j = 0; j < n; j++)
        memset(objs[j], 0, c->c_size);
}

/* mp_alloc_bulk_run past the wide hit: argument errors, zeroing, runs
 * across magazine boundaries, CPUs without AVX2. */
static __attribute__((noinline)) size_t mp_alloc_bulk_loop(struct magpool_cache *c, size_t n, void **objs,
                                                           unsigned aflags, const void *caller)
{
    if (c == NULL || (objs == NULL && n > 0) ||
        (aflags & ~(MAGPOOL_ZERO | MAGPOOL_NOWAIT | MAGPOOL_NOFAIL))) {
        errno = EINVAL;
        return 0;
    }
    if (mp_load_relaxed(&c->c_fast_off) == 0) {
        /* A debug, checked or destroyed cache: object by object through the
         * slow path, filled from the back, so the run keeps magazine order as
         * a hit's copy does (objs[n - 1] is the top round). */
        for (size_t j = n; j-- > 0;)
            if ((objs[j] = mp_alloc_slow(c, aflags, caller)) == NULL) {
                int err = errno;
                mp_free_bulk_run(c, n - 1 - j, objs + j + 1, caller); /* all or nothing */
                errno = err;
                return 0;
            }
        return n;
    }
    size_t i = 0;
    while (i < n) {
        /* A hint: the hit decides (a reclaim may have stopped the state
         * since: idle.c), and a miss takes the slow path below. */
        uint32_t r = mp_tc_rounds(mp_fast_tc(c));
        size_t k = n - i < r ? n - i : r;
        if (k > 0 && mp_alloc_bulk_hit(c, k, objs + i, k <= MP_BULK_INLINE)) {
            if (aflags & MAGPOOL_ZERO)
                mp_zero_objs(c, objs + i, k);
            i += k;
            continue;
        }
        /* A boundary (or a stopped magazine): the slow path refills
         * (unpoisons and zeroes itself). */
        if ((objs[i] = mp_alloc_slow(c, aflags, caller)) == NULL) {
            int err = errno;
            mp_free_bulk_run(c, i, objs, caller); /* all or nothing */
            errno = err;
            return 0;
        }
        i++;
    }
    return n;
}

#ifdef MP_HAVE_AVX2
/* A long run's hit with the 256-bit copy, whole, or the loop by a tail
 * call: a leaf, with no stack frame. */
static __attribute__((target("avx2"), noinline)) size_t mp_alloc_bulk_wide(struct magpool_cache *c, size_t n,
                                                                          void **objs, unsigned aflags,
                                                                          const void *caller)
{
    if (__builtin_expect(mp_alloc_bulk_hit_k(c, n, objs, false, mp_copy_out_avx2), 1))
        return n;
    return mp_alloc_bulk_loop(c, n, objs, aflags, caller);
}
#endif

__attribute__((noinline)) size_t mp_alloc_bulk_run(struct magpool_cache *c, size_t n, void **objs,
                                                  unsigned aflags, const void *caller)
{
#ifdef MP_HAVE_AVX2
    /* A hit never blocks, so NOWAIT and NOFAIL do not matter to it; ZERO
     * and unknown flags go to the loop.  (A debug, checked or destroyed
     * cache misses its hit: fastpath.h.) */
    if (__builtin_expect(c != NULL && objs != NULL && n > MP_BULK_INLINE &&
                             (aflags & ~(unsigned)(MAGPOOL_NOWAIT | MAGPOOL_NOFAIL)) == 0 && mp_bulk_wide,
                         1))
        return mp_alloc_bulk_wide(c, n, objs, aflags, caller);
#endif
    return mp_alloc_bulk_loop(c, n, objs, aflags, caller);
}

MAGPOOL_API size_t magpool_alloc_bulk(magpool_cache_t *c, size_t n, void **objs, unsigned aflags)
{
    return mp_fast_alloc_bulk(c, n, objs, aflags, __builtin_return_address(0));
}

/* A run that missed the hit (it does not fit, or holds NULLs or a repeat):
 * object by object, through the single free (NULLs skipped, its immediate
 * double-free check, its slow path at every magazine boundary). */
static __attribute__((noinline)) void mp_free_bulk_objects(struct magpool_cache *c, size_t n, void *const *objs,
                                                           const void *caller)
{
    for (size_t i = 0; i < n; i++)
        if (objs[i] != NULL)
            mp_fast_free(c, objs[i], caller);
}

#ifdef MP_HAVE_AVX2
/* A long run's hit with the 256-bit fused copy and check, or the objects
 * one by one by a tail call: a leaf, with no stack frame. */
static __attribute__((target("avx2"), noinline)) void mp_free_bulk_wide(struct magpool_cache *c, size_t n,
                                                                       void *const *objs, const void *caller)
{
    if (__builtin_expect(mp_free_bulk_hit_k(c, n, objs, mp_copy_run_bad_avx2, NULL), 1))
        return;
    mp_free_bulk_objects(c, n, objs, caller);
}
#endif

#ifdef MP_HAVE_AVX512
/* The same with the masked kernel. */
static __attribute__((target("avx2,avx512f,avx512vl"), noinline)) void mp_free_bulk_masked(struct magpool_cache *c,
                                                                                         size_t n,
                                                                                         void *const *objs,
                                                                                         const void *caller)
{
    if (__builtin_expect(mp_free_bulk_hit_k(c, n, objs, mp_copy_run_bad_masked, NULL), 1))
        return;
    mp_free_bulk_objects(c, n, objs, caller);
}
#endif

/* mp_free_bulk_run past the wide hit. */
static __attribute__((noinline)) void mp_free_bulk_base(struct magpool_cache *c, size_t n, void *const *objs,
                                                        const void *caller)
{
    if (c == NULL || objs == NULL) {
        /* NULL objs: nothing to free.  NULL c: its first object is named. */
        for (size_t i = 0; c == NULL && objs != NULL && i < n; i++)
            if (objs[i] != NULL) {
                mp_free_null_cache(objs[i], "magpool_free_bulk");
                return;
            }
        errno = EINVAL;
        return;
    }
    if (n == 0)
        return;
    if (!mp_free_bulk_hit(c, n, objs, n <= MP_BULK_INLINE))
        mp_free_bulk_objects(c, n, objs, caller);
}

/* A long run in one fused copy and check if it fits; else object by object. */
__attribute__((noinline)) void mp_free_bulk_run(struct magpool_cache *c, size_t n, void *const *objs,
                                                const void *caller)
{
#ifdef MP_HAVE_AVX2
    if (__builtin_expect(c != NULL && objs != NULL && n > MP_BULK_INLINE && mp_bulk_wide, 1)) {
#ifdef MP_HAVE_AVX512
        if (mp_bulk_masked)
            return mp_free_bulk_masked(c, n, objs, caller);
#endif
        return mp_free_bulk_wide(c, n, objs, caller);
    }
#endif
    mp_free_bulk_base(c, n, objs, caller);
}

/* mp_free_bulk_owned past its fused hit: the general check (any slabs,
 * NULLs skipped), then the run freed as magpool_free_bulk frees it, or
 * refused. */
static __attribute__((noinline)) void mp_free_bulk_owned_slow(struct magpool_cache *c, size_t n, void *const *objs,
                                                              const void *caller, mp_run_refused_fn *refused,
                                                              void *ctx)
{
    if (!mp_slab_run_owned_by(objs, n, c))
        return refused(ctx, n, objs, caller);
    mp_fast_free_bulk(c, n, objs, caller);
}

#ifdef MP_HAVE_AVX2
/* The slab of objs[0] if c owns it, else NULL (NULL for a NULL objs[0]). */
static inline __attribute__((always_inline)) const struct mp_slab_lookup *mp_run_first_slab(struct magpool_cache *c,
                                                                                          void *const *objs)
{
    /* Relaxed: after mp_page_owner_inline's acquire load of the page's
     * owner word, which pairs with the release that published the slab's
     * lookup fields (slab.h); a caller that owns objs[0] keeps them fixed,
     * one that does not gets what any lookup would (mp_slab_run_owned_by). */
    const struct mp_slab_lookup *s = mp_page_owner_inline(objs[0]);
    return s != NULL && mp_load_relaxed(&s->lk_owner) == c ? s : NULL;
}

/* mp_free_bulk_owned's hit: the run checked against the slab of objs[0]
 * (when c owns it) in the copy's own pass by `copy_run`, no branch per
 * object, else the general path by a tail call.  Inlined into each leaf
 * below. */
static inline __attribute__((target("avx2"), always_inline)) void mp_free_bulk_owned_k(
    struct magpool_cache *c, size_t n, void *const *objs, const void *caller, mp_run_refused_fn *refused, void *ctx,
    mp_copy_run_fn *copy_run)
{
    const struct mp_slab_lookup *s = mp_run_first_slab(c, objs);
    if (__builtin_expect(s != NULL, 1)) {
        const struct mp_slab_wide w = mp_slab_wide_of(s);
        if (__builtin_expect(mp_free_bulk_hit_k(c, n, objs, copy_run, &w), 1))
            return;
    }
    mp_free_bulk_owned_slow(c, n, objs, caller, refused, ctx);
}

/* With the AVX2 kernel (about 30 vector instructions for eight objects). */
static __attribute__((target("avx2"), noinline)) void mp_free_bulk_owned_wide(struct magpool_cache *c, size_t n,
                                                                             void *const *objs, const void *caller,
                                                                             mp_run_refused_fn *refused, void *ctx)
{
    mp_free_bulk_owned_k(c, n, objs, caller, refused, ctx, mp_copy_run_unowned_avx2);
}
#endif
#ifdef MP_HAVE_AVX512
/* With the masked kernel (about 18). */
static __attribute__((target("avx2,avx512f,avx512vl"), noinline)) void mp_free_bulk_owned_masked(
    struct magpool_cache *c, size_t n, void *const *objs, const void *caller, mp_run_refused_fn *refused, void *ctx)
{
    mp_free_bulk_owned_k(c, n, objs, caller, refused, ctx, mp_copy_run_unowned_masked);
}
#endif

/* Tail calls all the way: no stack frame between the front end's entry and
 * the kernel. */
void mp_free_bulk_owned(struct magpool_cache *c, size_t n, void *const *objs, const void *caller,
                        mp_run_refused_fn *refused, void *ctx)
{
#ifdef MP_HAVE_AVX2
    if (__builtin_expect(n >= 8 && mp_bulk_wide, 1)) {
#ifdef MP_HAVE_AVX512
        if (mp_bulk_masked)
            return mp_free_bulk_owned_masked(c, n, objs, caller, refused, ctx);
#endif
        return mp_free_bulk_owned_wide(c, n, objs, caller, refused, ctx);
    }
#endif
    mp_free_bulk_owned_slow(c, n, objs, caller, refused, ctx);
}

MAGPOOL_API void magpool_free_bulk(magpool_cache_t *c, size_t n, void *const *objs)
{
    mp_fast_free_bulk(c, n, objs, __builtin_return_address(0));
}

/* ---- deferred frees ------------------------------------------------------- */

/* The tail of a deferred batch magazine: its retire node lives in the last
 * MP_DEFER_SLOTS slots, so sealing needs no allocation. */
struct mp_defer_tail {
    struct mp_retire_node node;
    struct magpool_cache *c;
    struct mp_mag *m;
};
#define MP_DEFER_SLOTS (sizeof(struct mp_defer_tail) / sizeof(void *))
_Static_assert(sizeof(struct mp_defer_tail) % sizeof(void *) == 0, "tail fills whole slots");

static struct mp_mag *mp_defer_mag_alloc(unsigned batch)
{
    if (batch > MAGPOOL_MAG_MAX - MP_DEFER_SLOTS)
        batch = MAGPOOL_MAG_MAX - MP_DEFER_SLOTS;
    struct mp_mag *m = mp_mag_alloc(batch + MP_DEFER_SLOTS);
    if (m != NULL)
        m->mag_batch_cap = batch;
    return m;
}

/* The batch magazine of a thread: an empty magazine of the depot (or a new
 * one of the cache's size) whose last MP_DEFER_SLOTS slots hold the tail, so
 * it takes cap - MP_DEFER_SLOTS objects.  Once its grace period has passed it
 * goes to the depot as an ordinary full magazine, and when emptied comes back
 * as an ordinary empty one: in steady state deferred frees allocate no
 * magazine (a fresh slot per batch would mean a page fault per batch once the
 * magazine area has been trimmed).  Sizes too small for a tail get a
 * dedicated magazine of size + MP_DEFER_SLOTS slots. */
static struct mp_mag *mp_defer_batch_get(struct magpool_cache *c)
{
    unsigned size = mp_mag_size(c);
    if (size <= MP_DEFER_SLOTS)
        return mp_defer_mag_alloc(size);
    struct mp_mag *m = mp_mag_get_empty(c, size); /* cap == size > MP_DEFER_SLOTS */
    if (m != NULL)
        m->mag_batch_cap = m->mag_cap - MP_DEFER_SLOTS;
    return m;
}

/* After a grace period: the batch's objects become reusable (depot full list,
 * or the slab layer for a zombie). */
static void mp_deferred_ready(struct mp_retire_node *node)
{
    struct mp_defer_tail *tail = (struct mp_defer_tail *)node;
    struct magpool_cache *c = tail->c;
    struct mp_mag *m = tail->m;
    uint32_t n = m->mag_rounds;
    bool fin = false;
    if (c->c_debug)
        for (uint32_t i = 0; i < n; i++)
            mp_debug_on_reclaim(c, m->mag_objs[i]);
    /* Now resting in a magazine: for TSan, after the domain's acquire in
     * the reclaimer (readers' sections, and the freer's release below). */
    mp_san_rest(c, m->mag_objs, n);
    /* Under the registry lock: a zombie cannot be finalised between our
     * check of c_destroyed and our decrement of c_deferred_sealed.  m (whose
     * tail is the node that got us here) is not touched after it is put or
     * torn down. */
    pthread_mutex_lock(&mp_registry_lock);
    bool zombie = mp_destroyed(c);
    mp_moves_begin(c); /* deferred -> depot (stats.c) */
    if (zombie)
        mp_mag_teardown(c, m);
    else
        mp_depot_push_full(&c->c_depot, m);
    mp_fetch_sub_relaxed(&c->c_deferred_sealed, n);
    mp_moves_end(c); /* before c may be finalised */
    if (zombie)
        fin = mp_cache_maybe_finalize(c);
    pthread_mutex_unlock(&mp_registry_lock);
    if (fin)
        mp_cache_release(c);
}

/* Hand a batch of n objects to the cache's domain.  The caller has already
 * added n to c_deferred_sealed (so c cannot be finalised meanwhile). */
static void mp_seal_mag(struct magpool_cache *c, struct mp_mag *m, uint32_t n)
{
    struct mp_defer_tail *tail = (struct mp_defer_tail *)(void *)&m->mag_objs[m->mag_cap - MP_DEFER_SLOTS];
    m->mag_rounds = n;
    tail->c = c;
    tail->m = m;
    mp_retire(c->c_domain, &tail->node, mp_deferred_ready);
}

void mp_deferred_seal(struct magpool_cache *c, struct mp_tcache *tc)
{
    struct mp_mag *m = tc->tc_deferred;
    if (m == NULL)
        return;
    uint32_t n = mp_load_relaxed(&tc->tc_def_rounds);
    tc->tc_deferred = NULL;
    if (n > 0) {
        /* magpool_free's default check, for deferred frees too.  The kept
         * rounds leave the thread's holdings for the sealed count; a
         * dropped round leaves them uncounted, which takes back the free
         * its append counted (cache_impl.h, tc_net). */
        m->mag_rounds = n;
        uint32_t kept = mp_mag_check_rounds(c, m);
        mp_tc_flow(tc, -(int64_t)kept);
        n = kept;
    }
    if (n > 0) {
        mp_fetch_add_relaxed(&c->c_deferred_sealed, n); /* we hold c: no finaliser races */
        mp_seal_mag(c, m, n);
    } else
        mp_mag_retire(m);
    mp_store_relaxed(&tc->tc_def_rounds, 0);
}

/* An immediate double free on the deferred path (obj not yet appended): obj
 * is the last object of the thread's batch m (n objects, m may be NULL), or
 * the top round of its loaded magazine, i.e. what the thread just freed
 * (deferred or not).  The same two cheap checks as magpool_free's
 * (mag_objs[-1] is each magazine's NULL guard, so n == 0 reads it); every
 * double free is caught with MAGPOOL_VERIFY (debug.c).  tc is a holder's
 * (top set). */
static inline bool mp_deferred_repeat(struct mp_tcache *tc, const struct mp_mag *m, uint32_t n, const void *obj)
{
    return (m != NULL && m->mag_objs[(long)n - 1] == obj) ||
           mp_tc_top(tc)[-1] == obj; /* inside the deferred hit, top carries its mark */
}

/* Everything but an append to a batch with room: the first deferred free
 * (the batch magazine is allocated here), sealing a full batch, debug caches
 * (checked now), destroyed caches and threads with no state. */
static MP_COLD void mp_free_deferred_slow(struct magpool_cache *c, void *obj, const void *caller)
{
    if (obj == NULL)
        return;
    if (c == NULL) {
        mp_free_null_cache(obj, "magpool_free_deferred");
        return;
    }
    /* Debug: checked now, poisoned only after the grace period. */
    if (c->c_debug && !mp_debug_on_free_deferred(c, obj, caller))
        return;
    /* TSan: the freer's writes happen before the reuse (the object is
     * poisoned only after the grace period, by mp_deferred_ready). */
    if (c->c_checked)
        mp_tsan_release(obj);
    struct mp_thread *t = mp_thread_get(false);
    if (t != NULL && !mp_destroyed(c)) {
        mp_gate_enter(t);
        struct mp_tcache *tc = &t->th_tc[c->c_id];
        if (mp_tc_loaded(tc) != NULL || mp_tc_hold(t, c, 0)) {
            if (mp_deferred_repeat(tc, tc->tc_deferred, mp_load_relaxed(&tc->tc_def_rounds), obj)) {
                mp_double_free(c, obj);
                return;
            }
            if (tc->tc_deferred == NULL)
                tc->tc_deferred = mp_defer_batch_get(c);
            struct mp_mag *m = tc->tc_deferred;
            if (m != NULL) {
                /* Not poisoned for ASan yet: readers may use it until the
                 * grace period ends (mp_deferred_ready poisons). */
                uint32_t n = mp_load_relaxed(&tc->tc_def_rounds);
                m->mag_objs[n] = obj;
                mp_store_relaxed(&tc->tc_def_rounds, n + 1); /* counted by tc_def_rounds alone */
                if (n + 1 >= m->mag_batch_cap)
                    mp_deferred_seal(c, tc);
                mp_gate_leave(t);
                return;
            }
        }
        mp_gate_leave(t);
    }
    /* No thread state, a zombie, or no batch magazine: a batch of one. */
    struct mp_mag *m = mp_defer_mag_alloc(1);
    if (m == NULL) {
        /* Not even a batch of one: wait for the grace period here, then free
         * obj at once -- unless this thread is inside a read-side section
         * of the domain, where the wait would wait for itself. */
        if (mp_domain_in_section(c->c_domain)) {
            mp_report(c->c_name, obj, "deferred free dropped",
                      "(out of memory inside a read-side section; object leaked)", true);
            return;
        }
        mp_domain_synchronize(c->c_domain);
        if (c->c_debug)
            mp_debug_on_reclaim(c, obj);
        mp_san_rest(c, &obj, 1);
        mp_free_unheld(c, obj, false);
        return;
    }
    m->mag_objs[0] = obj;
    /* Under the registry lock: a finaliser of a zombie c must not see the
     * free without the pending batch. */
    pthread_mutex_lock(&mp_registry_lock);
    mp_fetch_add_relaxed(&c->c_deferred_sealed, 1);
    mp_fetch_add_relaxed(&c->c_frees, 1);
    pthread_mutex_unlock(&mp_registry_lock);
    mp_seal_mag(c, m, 1);
}

/* The per-object part of a deferred free: append to the thread's batch.  A
 * debug or destroyed cache (fast id 0) and a thread with no state read a
 * state that is not running (I3; thread.c, mp_empty_tcs), and go slow, as
 * do the first free of a batch, the one that fills it (sealing is per batch) and
 * an immediate double free (diagnosed there). */
MAGPOOL_API void magpool_free_deferred(magpool_cache_t *c, void *obj)
{
    if (__builtin_expect(c != NULL && obj != NULL, 1)) {
        struct mp_tcache *tc = mp_fast_tc(c);
        bool hit = false;
        /* A hit like magpool_free's (the in-hit mark, idle.c): the bounds
         * (nothing loaded, or stopped by a reclaim) are tested before the
         * batch pointer, which only the owner or a reclaim holding its gate
         * write. */
        void **top = magpool_hit_enter_(&tc->tc_hit);
        struct mp_mag *m = mp_tc_running(tc) ? tc->tc_deferred : NULL;
        if (__builtin_expect(m != NULL, 1)) {
            uint32_t n = mp_load_relaxed(&tc->tc_def_rounds);
            if (__builtin_expect(n + 1 < m->mag_batch_cap && !mp_deferred_repeat(tc, m, n, obj), 1)) {
                /* Not poisoned for ASan: readers may use it until the grace
                 * period ends (mp_deferred_ready poisons). */
                m->mag_objs[n] = obj;
                /* The hit's one counted store: the free and the round in
                 * the batch at once (cache_impl.h, tc_net), so no snapshot
                 * -- not even a fork child's of a thread inside this hit --
                 * sees one without the other. */
                mp_store_relaxed(&tc->tc_def_rounds, n + 1);
                hit = true;
            }
        }
        magpool_hit_leave_(&tc->tc_hit, top);
        if (__builtin_expect(hit, 1))
            return;
    }
    mp_free_deferred_slow(c, obj, __builtin_return_address(0));
}

/* Seal t's deferred batch of c if c's domain is d. */
static void mp_seal_if_domain(struct mp_thread *t, struct magpool_cache *c, void *d)
{
    if (c->c_domain == d)
        mp_deferred_seal(c, &t->th_tc[c->c_id]);
}

MAGPOOL_API void magpool_synchronize(magpool_domain_t *d)
{
    if (d == NULL)
        d = mp_domain_default();
    struct mp_thread *t = mp_thread_self();
    if (t != NULL) {
        mp_gate_enter(t); /* not across the wait below: fork.c */
        mp_thread_for_each_held(t, mp_seal_if_domain, d);
        mp_gate_leave(t);
    }
    mp_domain_synchronize(d);
}
