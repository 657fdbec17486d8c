/*
 * Depot and magazines (owner: src/storage/depot.c).  CONTRACT — see depot.c.
 *
 * Magazines live in one reserved magazine area, split into size classes
 * (slot strides 128 .. 4160 bytes, see depot.c), and are addressed by a
 * 32-bit index (class << 28 | slot), so a depot stack head is
 * (tag << 32 | index + 1) in one 64-bit word and every push/pop is a single
 * 64-bit compare-and-swap (lock-free with clang and gcc alike; no 16-byte
 * CAS).  The tag is bumped by every successful pop, so a head that was popped
 * and pushed back never compares equal (no ABA).  Depot pops need no
 * read-side section (depot.c, A4); a retired magazine's slot is still reused
 * only after a grace period of the default domain (mp_mag_retire).
 * All depot state is C11 <stdatomic.h>, visible to ThreadSanitizer.
 */
#ifndef MP_DEPOT_H
#define MP_DEPOT_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "magpool/magpool.h"

struct mp_mag {
    _Atomic uint32_t mag_next; /* depot link: index + 1 of the next magazine, 0 = end (depot-
                                * owned; atomic because a stale popper may read it while its
                                * new owner rewrites it, see depot.c) */
    uint32_t mag_cap;          /* rounds it can hold, 1 .. MAGPOOL_MAG_MAX */
    uint32_t mag_rounds;       /* the magazine's own count of the rounds it holds; stale
                                * while it is a thread's loaded magazine (the count is
                                * its tcache's top, written back on unload) or unsealed deferred
                                * batch (tc_def_rounds, written at the seal) */
    uint32_t mag_batch_cap;    /* set while it is a deferred-free batch (magazine.c): the
                                * objects it takes before it is sealed (cap less its
                                * tail); 0 when new */
    void *mag_guard;           /* always NULL: mag_objs[-1], so the free fast path can read
                                * top[-1] of an empty magazine */
    void *mag_objs[];          /* mag_cap slots */
};

/* Most magazines a depot's backlog holds (depot.c, "Backlog"). */
#define MP_BACKLOG_SLOTS_MAX 64u

/* Shards of the full and empty stacks (depot.c, "Home shards"): a thread
 * pushes to its home shard and pops from it first. */
#define MP_DEPOT_SHARDS 4u

/* One shard: one cache line per stack, holding the head and every counter
 * an operation on that stack updates, so an exchange (pop one stack, push
 * the other) brings each line over once. */
struct mp_depot_shard {
    _Alignas(64) _Atomic uint64_t full; /* stack heads: tag << 32 | (index + 1) */
    _Atomic uint64_t nfull;               /* magazines on this full stack */
    _Atomic uint64_t rounds_full;         /* objects in its magazines */
    _Atomic uint64_t pops_full;
    _Atomic uint64_t ws_min_full;         /* working-set low-water mark this interval */
    _Alignas(64) _Atomic uint64_t empty;
    _Atomic uint64_t nempty;
    _Atomic uint64_t ws_min_empty;
};

struct mp_depot {
    struct mp_depot_shard sh[MP_DEPOT_SHARDS];
    /* The rare CAS-failure counter, and full pushes (the backlog's
     * engagement count, DB1), on a line of their own. */
    _Alignas(64) _Atomic uint64_t contention; /* failed CASes */
    _Atomic uint64_t pushes_full;
    /* Backlog (depot.c, "Backlog"): full magazines from free paths, held
     * back in FIFO order before they reach the full stack. */
    _Alignas(64) _Atomic uint64_t bl_pos;   /* backlog pushes so far (slot = pos % bl_slots) */
    _Atomic uint64_t bl_mags;               /* magazines in the backlog */
    _Atomic uint64_t bl_rounds;             /* objects in the backlog's magazines */
    _Atomic uint64_t bl_engage_at;          /* pushes_full count at which it engages */
    _Atomic uint64_t bl_idle_seen;          /* pushes_full at the last idle check */
    unsigned bl_slots;                      /* ring size, 0 = no backlog; fixed at init */
    uint64_t bl_engage_span;                /* full pushes from a release to engagement; fixed */
    _Alignas(64) _Atomic(struct mp_mag *) bl_ring[MP_BACKLOG_SLOTS_MAX];
};

/* The depot's counters summed over its shards (relaxed: approximate while
 * operations are in flight, exact at quiescence). */
struct mp_depot_counts {
    uint64_t nfull, rounds_full, pops_full, nempty;
};
void mp_depot_counts(struct mp_depot *d, struct mp_depot_counts *out);

/* Stride of the largest slot class (magazines of more than 389 rounds, up to
 * MAGPOOL_MAG_MAX): the header plus MAGPOOL_MAG_MAX rounds, rounded up to a
 * cache line (4160 bytes).  Smaller magazines take smaller slots (depot.c). */
#define MP_MAG_STRIDE ((sizeof(struct mp_mag) + MAGPOOL_MAG_MAX * sizeof(void *) + 63) & ~(size_t)63)

/* backlog_slots: size of the backlog ring, 0 .. MP_BACKLOG_SLOTS_MAX (0 = none);
 * engage_span: full pushes (since creation or the last release) before it
 * engages, at least 2 * backlog_slots. */
void mp_depot_init(struct mp_depot *d, unsigned backlog_slots, uint64_t engage_span);
/* Magazine with cap slots and 0 rounds; NULL + ENOMEM. */
struct mp_mag *mp_mag_alloc(unsigned cap);
/* Retire a magazine (not in any depot, not loaded; rounds it still holds are
 * not freed): its slot goes back to the magazine area after a grace period of
 * the default domain.  The counterpart of mp_mag_alloc. */
void mp_mag_retire(struct mp_mag *m);
/* Give back to the system the pages of magazine slots that are free and past
 * their grace period (they are also trimmed automatically in batches).
 * Lock-free; for shrink and reap. */
/* fork.c: hold / release the magazine area's class-reservation lock (a
 * leaf) around fork. */
void mp_mag_area_fork_lock(void);
void mp_mag_area_fork_unlock(void);
void mp_mag_area_trim(void);
/* Magazines handed out by mp_mag_alloc so far, all classes (a statistic, for
 * tests: steady-state traffic should recycle magazines, not allocate them). */
uint64_t mp_mag_area_allocs(void);

/* A full magazine onto the full stack (thread exit, deferred batches). */
void mp_depot_push_full(struct mp_depot *d, struct mp_mag *m);
/* A full magazine that a free path filled: through the backlog when it is
 * engaged (the oldest backlog magazine then goes to the full stack). */
void mp_depot_push_freed(struct mp_depot *d, struct mp_mag *m);
/* Move every backlog magazine to the full stack and disengage the backlog
 * until another bl_engage_span full pushes.  Returns how many moved.
 * For shrink, drain, and an alloc that found the slab layer exhausted. */
size_t mp_depot_backlog_release(struct mp_depot *d);
/* Reaper: release the backlog if no full magazine was pushed since the
 * previous call (the flow that engaged it has stopped). */
void mp_depot_backlog_tick(struct mp_depot *d);
void mp_depot_push_empty(struct mp_depot *d, struct mp_mag *m);
struct mp_mag *mp_depot_pop_full(struct mp_depot *d);   /* NULL if none */
struct mp_mag *mp_depot_pop_empty(struct mp_depot *d);  /* NULL if none */

/* Working set (Bonwick 2001 sec. 3.3 / UMA trim): close the interval and
 * return how many full (resp. empty) magazines went unused through all of it;
 * the caller pops and tears down that many. */
void mp_depot_ws_close(struct mp_depot *d, uint64_t *unused_full, uint64_t *unused_empty);
#endif
