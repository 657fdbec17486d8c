/*
 * Taking back the magazines of other threads (design: top of src/core/cache.c,
 * "Threads"; contract: cache_impl.h, "idle.c").
 *
 * GUARANTEES
 *  - mp_idle_reclaim(c) gives back, for every other live thread that is not
 *    inside a slow path (its gate is free) and not inside a hit on c at the
 *    moment of the handshake below, everything that thread holds for c:
 *    loaded and previous magazines (to the depot, objects counted; the
 *    reaper's pass, mp_idle_reclaim_quiet, sends their objects to the slabs
 *    instead), its deferred batch (sealed), its holder status.  The owner finds its state
 *    empty at its next call and loads a new magazine, exactly as after
 *    magpool_thread_flush.  c == NULL: every cache each thread holds.
 *  - The magazine hit gains no lock, no read-modify-write and no fence: its
 *    in-hit mark is one store (top with bit 0 set, magpool.h) whose end is
 *    the hit's own commit store of top, and the cap doubles as the stop
 *    mark.  All the cost is the reclaimer's: one membarrier(2) per batch of
 *    threads.
 *  - A thread inside a hit or a slow path is skipped (counted as busy) and
 *    left exactly as it was; nothing is ever half taken.  In a fork child,
 *    the parent's other threads are never touched (thread.c: their state
 *    may be mid-hit).
 *  - The reclaimer never writes top, so no hit, whatever it read, meets a
 *    top the reclaimer made.  A taken state keeps its old top and its stop
 *    mark's low (every hit misses) until the owner installs over it at its
 *    next slow path, or the cache's finalisation zeroes it
 *    (mp_tcs_clear_taken); a thread's array pages go back only once every
 *    state in them is zero (mp_tcs_release_if_clear).
 *  - Without membarrier (kernel without it, or seccomp, or
 *    MAGPOOL_MEMBARRIER=0), the reclaim degrades: each thread is asked, and
 *    gives back its magazines of every cache at its next slow path
 *    (counted as asked); an idle thread keeps them until then.
 *
 * THE HANDSHAKE (liburcu-memb's asymmetric Dekker, the flag in top itself).
 * The owner O's hit on cache c, in program order (magpool.h):
 *     H0 load top (t: bit 0 clear, only O writes its top)
 *     H1 store top = t + 1     (bit 0 set; relaxed, then a compiler-only
 *                              signal fence)
 *     H2 load one bound (low or high), ...; maybe store a slot, allocs
 *     H3 store top = t - 1, t + 1 or t   (release: commit and unmark)
 * The reclaimer R, holding O's gate (so O is in no slow path, and every
 * other field of O's state is R's to change), for each cache O holds:
 *     R1 swap the bounds: high = base, then low = base + cap (relaxed);
 *        now no top of the loaded magazine satisfies an alloc's top > low
 *        or a free's top < high
 * then, once for all of them:
 *     R2 membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
 * then for each:
 *     R3 load top              (acquire)
 *     R4 bit 0 clear: take everything (mp_tc_take), leaving the state
 *        taken: high = NULL (no longer a holder), low and top as they are
 *        (magazine.c, mp_tc_install_taken); bit 0 set: store the old
 *        bounds back, leave the rest.
 * Claim: when R3 reads bit 0 clear, no hit of O on c that read an unswapped
 * bound is in flight, every access of those that ran is visible, and every
 * later hit misses.  membarrier returns only after every thread of the
 * process that was running executed a full barrier (and a thread not
 * running passes one in the scheduler before it runs again): call F_O the
 * point in O's instruction stream where that barrier falls, and take any
 * hit of O.
 *  (a) Its H2 load comes after F_O: it is ordered after R1 (R1 precedes
 *      R2's own barrier, which precedes F_O), so the hit reads a swapped
 *      bound (or R4's high = NULL) and misses, whatever top it read: its
 *      H3 stores the t it loaded, so top keeps its value.
 *  (b) Its H1 comes before F_O: H1 is visible to R3 (F_O makes it visible
 *      before membarrier returns), so R3 reads it (bit 0 set), or a later
 *      store of top: that hit's own H3 or a later hit's H1/H3.  A value
 *      with bit 0 clear is an H3 (release), read by the acquire R3, so
 *      every access of the hit that stored it, and of every hit before it,
 *      happens before R4.
 *  (c) H1 after F_O implies H2 after F_O (the signal fence keeps the
 *      compiler from hoisting H2 above H1; the CPU may execute H2 before H1
 *      becomes visible, which is why the case split is on the loads): case
 *      (a).
 * So R3 reading bit 0 clear means every hit that read an unswapped bound
 * finished and is visible (b), and every other one misses (a), before and
 * after R4: R4 writes only bounds, and only to values no top of the old
 * magazine passes (low stays base + cap; high goes from base to NULL).
 * The top R4 reads may meanwhile carry the mark of a missing hit (a): it
 * masks bit 0 (mp_tc_top); the value under it is the one R3 saw.  R3
 * reading bit 0 set means a hit may be in flight (or O was preempted inside
 * one): R stores the old bounds back and O's hit goes on as if nothing
 * happened (at worst it read a swapped bound and missed; its slow path
 * waits for O's gate).
 * Why R never writes top, nor zeroes a taken state while O runs (the
 * design before layout 4 did, and stress/reclaim caught it): an alloc hit
 * loads top (H0) and low (H2) at two moments; a top of the old magazine read
 * before a store and a low of 0 read after it passes top > low, and takes a
 * round R gave back (an object handed out twice).  So low stays the stop
 * mark's until no hit on c can run at all (the cache finalised: no call on
 * it is legal) or O itself installs, and madvising an array, which stores
 * zeros, waits until every state in it is zero already.
 * This is the argument of liburcu's memb flavour, where the reader's store
 * of its nesting count is H1 and synchronize_rcu's membarrier is R2; C11
 * has no membarrier, so the step "R2 puts a seq_cst fence into every other
 * thread" is the kernel's guarantee (membarrier(2)), not the language's.
 * ThreadSanitizer sees (b)'s release/acquire pair; (a)'s hits touch only
 * atomics, so it needs no annotation.  A hit from a signal handler that
 * interrupted a hit on the same cache is not supported (magpool.h).
 *
 * Lock order: R takes other threads' gates only with trylock, under
 * mp_threads_lock (as fork.c's prepare does), and releases mp_threads_lock
 * before mp_tc_flush takes mp_registry_lock then mp_threads_lock: gate ->
 * registry -> threads, the library's order.
 */
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cache_impl.h"
#include "meta.h"

/* Threads handled per membarrier: their gates are held meanwhile. */
#define MP_IDLE_BATCH 64u

/* 1: membarrier PRIVATE_EXPEDITED registered; -1: unavailable; 0: unknown. */
static _Atomic int mp_membarrier_state;

static bool mp_membarrier_ready(void)
{
    int st = mp_load_relaxed(&mp_membarrier_state);
    if (st != 0)
        return st > 0;
    st = -1;
    const char *env = getenv("MAGPOOL_MEMBARRIER");
    if (env == NULL || strcmp(env, "0") != 0) {
        long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
            syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
            st = 1;
    }
    /* Relaxed: every thread computes the same answer; registering twice is
     * harmless. */
    mp_store_relaxed(&mp_membarrier_state, st);
    return st > 0;
}

bool mp_idle_reclaim_available(void)
{
    return mp_membarrier_ready();
}

/* One (thread, cache) pair marked in R1, with the bounds to put back. */
struct mp_idle_mark {
    struct mp_thread *t;
    struct magpool_cache *c;
    void **low, **high;
};

/* The reaper thread's marks, kept from one pass to the next (quiet passes
 * only; freed by mp_idle_release when the reaper exits). */
static __thread struct mp_idle_mark *mp_idle_kept;

struct mp_idle_pass {
    struct magpool_cache *only;
    struct mp_idle_mark *marks;
    size_t nmarks;
};

/* R1 for t's state of c, if it holds one (marks has room: see
 * mp_idle_lock_batch). */
static void mp_idle_mark_one(struct mp_thread *t, struct magpool_cache *c, void *arg)
{
    struct mp_idle_pass *p = arg;
    if (p->only != NULL && c != p->only)
        return;
    struct mp_tcache *tc = &t->th_tc[c->c_id];
    /* Only hits run beside us (we hold t's gate), and they never write the
     * bounds: these are the loaded magazine's, low < high. */
    void **low = mp_load_relaxed(&tc->tc_low), **high = mp_load_relaxed(&tc->tc_high);
    if (low == NULL)
        return; /* not a holder */
    /* R1: swap the bounds.  Relaxed: R2 orders both stores (see the top of
     * this file).  high first, so a stats reader's smaller bound is the
     * base at every step (mp_tc_base). */
    mp_store_relaxed(&tc->tc_high, low);
    mp_store_relaxed(&tc->tc_low, high);
    p->marks[p->nmarks++] = (struct mp_idle_mark){ .t = t, .c = c, .low = low, .high = high };
}

/* Caches t holds (t's gate held: th_held is its owner's, written under it). */
static size_t mp_idle_held_count(const struct mp_thread *t)
{
    size_t n = 0;
    for (unsigned w = 0; w < MP_HELD_WORDS; w++)
        n += (size_t)__builtin_popcountll(t->th_held[w]);
    return n;
}

/* What changes whenever t makes an alloc, a free or a slow path: every hit
 * either adds to a held cache's allocs (+2^20, which no fall of that
 * cache's at most 511 rounds can cancel) or only adds rounds.  t's gate
 * held (th_held); relaxed loads of the owner's counters. */
static uint64_t mp_idle_signature(const struct mp_thread *t)
{
    uint64_t sig = mp_load_relaxed(&t->th_slow);
    for (unsigned w = 0; w < MP_HELD_WORDS; w++) {
        uint64_t bits = t->th_held[w];
        while (bits) {
            const struct mp_tcache *tc = &t->th_tc[w * 64 + (unsigned)__builtin_ctzll(bits)];
            bits &= bits - 1;
            sig += (mp_load_relaxed(&tc->tc_allocs) << 20) + mp_tc_rounds(tc) +
                   ((uint64_t)mp_load_relaxed(&tc->tc_def_rounds) << 10);
        }
    }
    return sig;
}

/* Take the gates of up to MP_IDLE_BATCH threads other than self, from the
 * *skip-th of the list on, while their marks fit `room`; *skip advances past
 * the threads looked at.  Returns how many are locked; *more: threads left. */
static unsigned mp_idle_lock_batch(struct mp_thread *self, struct magpool_cache *only, bool quiet_only,
                                   size_t room, struct mp_thread **out, unsigned *skip, bool *more)
{
    unsigned n = 0, i = 0;
    size_t used = 0;
    *more = false;
    pthread_mutex_lock(&mp_threads_lock);
    for (struct mp_thread *t = mp_threads; t != NULL; t = t->th_next, i++) {
        if (i < *skip)
            continue;
        if (n == MP_IDLE_BATCH) {
            *more = true;
            break;
        }
        /* A held gate: that thread is inside a slow path, so not idle; or
         * it is exiting and gives everything back itself. */
        if (t == self || t->th_orphan || pthread_mutex_trylock(&t->th_gate) != 0)
            continue;
        size_t need = only != NULL ? 1 : mp_idle_held_count(t);
        if (quiet_only) {
            /* Only a thread that did nothing since the last pass: a busy
             * one keeps its magazines (it will use them; its own slow
             * paths and the depot's working set bound them). */
            uint64_t sig = mp_idle_signature(t);
            bool quiet = sig == t->th_idle_sig;
            t->th_idle_sig = sig;
            /* Relaxed: statistics only (threads_idle_bytes); no data is
             * handed over with it, and the owner's slow path clears it. */
            mp_store_relaxed(&t->th_idle, quiet);
            if (!quiet || need == 0) {
                pthread_mutex_unlock(&t->th_gate);
                continue;
            }
        }
        if (used + need > room) {
            pthread_mutex_unlock(&t->th_gate);
            *more = true;
            break; /* t starts the next batch */
        }
        used += need;
        out[n++] = t;
    }
    *skip = i;
    pthread_mutex_unlock(&mp_threads_lock);
    return n;
}

/* The degraded reclaim: ask every other thread to give back at its next
 * slow path (mp_thread_housekeeping). */
static void mp_idle_ask_all(struct magpool_cache *only)
{
    struct mp_thread *self = mp_self;
    pthread_mutex_lock(&mp_threads_lock);
    for (struct mp_thread *t = mp_threads; t != NULL; t = t->th_next)
        if (t != self && !t->th_orphan)
            mp_store_relaxed(&t->th_flush_asked, true);
    pthread_mutex_unlock(&mp_threads_lock);
    if (only != NULL)
        mp_fetch_add_relaxed(&only->c_idle_asked, 1);
}

static size_t mp_idle_reclaim_some(struct magpool_cache *only, bool quiet_only)
{
    if (!mp_membarrier_ready()) {
        mp_idle_ask_all(only);
        return 0;
    }
    /* Room for one batch's marks: a thread may hold every cache. */
    size_t room = only != NULL ? MP_IDLE_BATCH : MAGPOOL_MAX_CACHES;
    size_t marks_bytes = sizeof(struct mp_idle_mark) * room;
    struct mp_idle_mark *marks = NULL;
    struct mp_thread *self = mp_self, *locked[MP_IDLE_BATCH];
    size_t taken = 0;
    unsigned skip = 0;
    bool more = true;
    while (more) {
        unsigned n = mp_idle_lock_batch(self, only, quiet_only, room, locked, &skip, &more);
        if (n > 0 && marks == NULL) {
            /* Only once a thread is locked: the reaper's pass usually finds
             * none, and allocating 128 KiB per pass meant an mmap and a
             * munmap (a TLB shootdown of every running thread) ten times
             * a second.  The reaper keeps its buffer (mp_idle_release). */
            marks = quiet_only ? mp_idle_kept : NULL;
            if (marks == NULL && (marks = mp_meta_alloc(marks_bytes)) == NULL) {
                for (unsigned i = 0; i < n; i++)
                    pthread_mutex_unlock(&locked[i]->th_gate);
                break; /* nothing more taken: a later reclaim tries again */
            }
            if (quiet_only)
                mp_idle_kept = marks;
        }
        struct mp_idle_pass p = { .only = only, .marks = marks };
        for (unsigned i = 0; i < n; i++)
            mp_thread_for_each_held(locked[i], mp_idle_mark_one, &p);
        /* R2.  Cannot fail once registered; if it did, undo R1. */
        bool fenced = p.nmarks == 0 || syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
        for (size_t i = 0; i < p.nmarks; i++) {
            struct mp_idle_mark *m = &marks[i];
            struct mp_tcache *tc = &m->t->th_tc[m->c->c_id];
            /* R3.  Acquire: pairs with the release H3 of the owner's last
             * hit, so that hit's stores (rounds, slots, allocs) happen
             * before mp_tc_flush reads them.  Weakened, R could give back
             * a magazine without the round a hit had just pushed, or with
             * one it had just popped. */
            if (!fenced || ((uintptr_t)mp_load_acquire(&tc->tc_top) & 1u) != 0) {
                /* R4: left as it was (low first: the base stays the
                 * smaller bound throughout) */
                mp_store_relaxed(&tc->tc_low, m->low);
                mp_store_relaxed(&tc->tc_high, m->high);
                mp_fetch_add_relaxed(&m->c->c_idle_busy, 1);
                continue;
            }
            mp_fetch_add_relaxed(&m->c->c_idle_reclaims, 1);
            /* R4; may finalise a zombie c: the last use of c.  The reaper's
             * (quiet owners) go straight to the slabs: reap.c gives the
             * empty ones back at once. */
            mp_tc_take(m->t, m->c, quiet_only);
            taken++;
        }
        for (unsigned i = 0; i < n; i++) {
            /* a thread left with nothing but zero states (its taken ones
             * zeroed by a finalisation inside R4) */
            mp_tcs_release_if_clear(locked[i]);
            /* what the flushes changed is not activity */
            locked[i]->th_idle_sig = mp_idle_signature(locked[i]);
            pthread_mutex_unlock(&locked[i]->th_gate);
        }
    }
    if (marks != NULL && marks != mp_idle_kept)
        mp_meta_free(marks, marks_bytes);
    return taken;
}

void mp_idle_release(void)
{
    if (mp_idle_kept != NULL) {
        mp_meta_free(mp_idle_kept, sizeof(struct mp_idle_mark) * MAGPOOL_MAX_CACHES);
        mp_idle_kept = NULL;
    }
}

size_t mp_idle_reclaim(struct magpool_cache *only)
{
    return mp_idle_reclaim_some(only, false);
}

size_t mp_idle_reclaim_quiet(void)
{
    if (!mp_membarrier_ready()) {
        /* Asking every owner each pass would flush busy threads too: only
         * tell which threads are idle (th_idle, the stats'
         * threads_idle_bytes: what stays stranded in this mode). */
        struct mp_thread *locked[MP_IDLE_BATCH];
        unsigned skip = 0;
        bool more = true;
        while (more) {
            /* Room for every mark of a batch: no mark is made here. */
            unsigned n = mp_idle_lock_batch(mp_self, NULL, true, MAGPOOL_MAX_CACHES * (size_t)MP_IDLE_BATCH,
                                            locked, &skip, &more);
            for (unsigned i = 0; i < n; i++)
                pthread_mutex_unlock(&locked[i]->th_gate);
        }
        return 0;
    }
    return mp_idle_reclaim_some(NULL, true);
}
