/*
 * MAGPOOL_DEBUG=check: the engine's invariants validated while it runs
 * (design statement, src/core/cache.c, INVARIANTS; mimalloc's graded
 * MI_DEBUG is the model).  Part of the per-thread cache layer.
 *
 * GUARANTEES
 *  - Off unless MAGPOOL_DEBUG names "check" (or "all"); then every slow-path
 *    exit of every cache (mp_alloc_slow, mp_free_slow) checks the calling
 *    thread's state for that cache, and every 64th exit of a thread also
 *    runs the slab layer's validator for the cache (SL1-SL3, SC1-SC3) and
 *    the page layer's (PB1-PB5).  The hits are untouched: a broken
 *    invariant is found at the next miss.
 *  - What the per-thread check covers, from the owner's side (no lock: the
 *    tcache is single-writer):
 *      (I3) tcache[0] is all zero; tcache[id] is all zero <=> the thread is
 *           not a holder (its held bit clear) <=> nothing is loaded;
 *      (I6, this thread's part) the loaded magazine is the one the tcache
 *           mirrors (objs, cap), 0 <= rounds <= cap <= MAGPOOL_MAG_MAX, its
 *           NULL guard is intact and its rounds are objects (non-NULL);
 *           prev's rounds are within its cap and mirrored in tc_prev_rounds;
 *           a deferred batch holds fewer objects than it takes.
 *  - A broken invariant is one line, `magpool: <cache>: invariant broken
 *    at <address> (<which>)`, then abort(): the engine's own state is wrong,
 *    so continue mode does not apply.
 */
#include <string.h>

#include "cache_impl.h"
#include "page.h"

static __attribute__((noinline, cold)) void broken(const struct magpool_cache *c, const void *where,
                                                   const char *which)
{
    mp_report(c->c_name, where, "invariant broken", which, false);
}

static void check_tcache(struct magpool_cache *c, struct mp_thread *t)
{
    static const struct mp_tcache zero;
    if (memcmp(&t->th_tc[0], &zero, sizeof zero) != 0)
        broken(c, &t->th_tc[0], "(I3: tcache[0] is not all zero)");
    struct mp_tcache *tc = &t->th_tc[c->c_id];
    bool held = (t->th_held[c->c_id / 64] >> (c->c_id % 64)) & 1;
    if (held != (mp_tc_loaded(tc) != NULL))
        broken(c, tc, "(I3: held bit and loaded magazine disagree)");
    if (!held) {
        /* all zero, but for a taken state's low and top (idle.c) */
        struct mp_tcache copy;
        memcpy(&copy, tc, sizeof copy);
        mp_store_relaxed(&copy.tc_low, NULL);
        mp_store_relaxed(&copy.tc_top, NULL);
        if (memcmp(&copy, &zero, sizeof zero) != 0)
            broken(c, tc, "(I3: a non-holder's tcache is not all zero)");
        return;
    }
    struct mp_mag *m = mp_tc_loaded(tc);
    void **top = mp_load_relaxed(&tc->tc_top);
    if (mp_load_relaxed(&tc->tc_low) != m->mag_objs || mp_load_relaxed(&tc->tc_high) != m->mag_objs + m->mag_cap)
        broken(c, m, "(I6: the tcache's bounds are not its loaded magazine's)");
    if (m->mag_cap < 1 || m->mag_cap > MAGPOOL_MAG_MAX || top < m->mag_objs || top > m->mag_objs + m->mag_cap)
        broken(c, m, "(I6: top or cap out of range)");
    uint32_t rounds = (uint32_t)(top - m->mag_objs);
    if (m->mag_guard != NULL) /* mag_objs[-1], which the free hit reads */
        broken(c, m, "(I6: the loaded magazine's NULL guard is overwritten)");
    for (uint32_t i = 0; i < rounds; i++)
        if (m->mag_objs[i] == NULL)
            broken(c, m, "(I6: a NULL round in the loaded magazine)");
    struct mp_mag *p = tc->tc_prev;
    if (p != NULL && (p->mag_rounds > p->mag_cap || mp_load_relaxed(&tc->tc_prev_rounds) != p->mag_rounds))
        broken(c, p, "(I6: the previous magazine's rounds)");
    if (p == NULL && mp_load_relaxed(&tc->tc_prev_rounds) != 0)
        broken(c, tc, "(I6: prev rounds with no previous magazine)");
    struct mp_mag *d = tc->tc_deferred;
    if (d != NULL && mp_load_relaxed(&tc->tc_def_rounds) >= d->mag_batch_cap)
        broken(c, d, "(I6: a deferred batch past its size)");
}

void mp_check_slow_exit(struct magpool_cache *c)
{
    struct mp_thread *t = mp_thread_self();
    if (t != NULL) {
        /* Under the gate (it nests): a reclaim of this thread's magazines
         * (idle.c) holds it while the state is in between. */
        mp_gate_enter(t);
        check_tcache(c, t);
        mp_gate_leave(t);
    }
    static _Thread_local unsigned exits;
    if ((++exits & 63u) == 0) {
        if (mp_slab_validate(c->c_slab) != 0)
            broken(c, c->c_slab, "(slab layer: SL1-SL3 / SC1-SC3)");
        if (mp_page_validate() != 0)
            broken(c, NULL, "(page layer: PB1-PB5)");
    }
}
