/*
 * Depot: lock-free stacks of full and empty magazines, and the magazine area.
 *
 * What this layer guarantees
 * --------------------------
 *  - mp_mag_alloc/mp_mag_free: magazines of any capacity 1..MAGPOOL_MAG_MAX,
 *    each in a fixed MP_MAG_STRIDE slot of ONE reserved magazine area, so a
 *    magazine is named by a 32-bit index and index <-> pointer is arithmetic.
 *    A freed magazine's slot is reused only after a grace period of the
 *    default reclamation domain (mp_mag_free retires it; the callback returns
 *    the slot).  The area is never unmapped, so a stale read of a slot can
 *    never fault; pages of free slots go back to the system (MADV_DONTNEED)
 *    in batches (see mag_reclaimed) and on mp_mag_area_trim().
 *  - mp_depot_push_* / mp_depot_pop_*: lock-free (one 64-bit CAS per attempt,
 *    lock-free with clang and gcc: no 16-byte CAS), linearizable LIFO stacks,
 *    ABA-safe, with every access visible to ThreadSanitizer (C11 atomics only).
 *  - Counters nfull, nempty, rounds_full, pushes_full, pops_full and
 *    contention are relaxed: approximate while operations are in flight,
 *    exact at quiescence.  nfull and nempty never underflow (see below).
 *
 * Representation
 * --------------
 *  head = tag << 32 | (index + 1); 0 in the low half = empty stack.
 *  m->next holds index + 1 of the magazine below m (0 = bottom).
 *  Push:  next = low half of head; CAS(head, h, tag(h) << 32 | idx + 1).
 *  Pop:   i = low(h); n = slot(i)->next; CAS(head, h, (tag(h) + 1) << 32 | n).
 *  The same code runs the area's free-slot stacks (g_area.dirty/clean_head).
 *
 * ABA proof
 * ---------
 *  A1. Every modification of a head is a successful CAS, and every successful
 *      pop increments the tag; a push keeps it.
 *  A2. Claim: a head value never repeats (until the 32-bit tag wraps).  The
 *      values between two pops all carry the same tag t and are the distinct
 *      sequence of pushed indices on top of each other: a push makes the new
 *      top a magazine that was not on the stack (its owner had popped or
 *      allocated it), so within one tag no (t, i) is written twice (i would
 *      have to leave the stack, which needs a pop, which changes the tag).
 *      Across pops the tag strictly grows.
 *  A3. A popper that loaded h and later succeeds with CAS(head, h, ...) thus
 *      knows head did not change between its load and its CAS: the magazine
 *      it read, and the `next` it read from it, are still the top and the
 *      link of the top (the owner of a magazine writes m->next only before
 *      the CAS that pushes it, and a magazine on a stack has no owner).
 *  A4. A stale popper (load, then preempted) may read m->next while the
 *      magazine has since been popped and is being pushed elsewhere by its new
 *      owner, or its slot is on the free-slot stack: that is a concurrent read
 *      and write of m->next, hence `_Atomic uint32_t` with relaxed accesses.
 *      By A2 its CAS then fails, so the value it read is never used.  The slot
 *      stays mapped (the area is never unmapped), so the read cannot fault;
 *      beyond that, depot pops run inside a read-side section of the default
 *      domain and mp_mag_free only recycles a slot after a grace period, so a
 *      popper never even reads a slot that was recycled under it.
 *      The clean free-slot stack keeps its links in a side array
 *      (g_area.links) instead of m->next; the same argument applies to them.
 *  A5. Tag wrap: a popper would have to stall between its load and its CAS
 *      while exactly 2^32 pops (a multiple of 2^32) happen on that stack and
 *      the same index is on top again.  Accepted, as in every tagged design.
 *
 * Memory ordering (each non-relaxed atomic also has a local comment)
 * ---------------
 *  O1. Push CAS succeeds with RELEASE: it publishes m->next and the
 *      magazine's contents (cap, rounds, objs, stamp) written by the owner.
 *  O2. Pop loads head with ACQUIRE (also on CAS failure, which reloads h):
 *      every head value is in the release sequence of every earlier push
 *      (all later modifications are RMWs), so the popper synchronizes with
 *      the push of the magazine it sees on top.  This is what makes the
 *      relaxed read of m->next return THAT push's value and not an older one
 *      (coherence: the push's write happens-before the read); with a relaxed
 *      head load, the read could return a previous life's `next` and the CAS
 *      (which compares head only) would install a wrong link.  The successful
 *      pop CAS is ACQUIRE for the same reason (it is the value the popper
 *      owns from then on).
 *  O3. Counters: a push increments nfull before its CAS; a pop decrements
 *      after its CAS.  The increment is sequenced before the push's release,
 *      the decrement after the pop's acquire of that push, so in the
 *      counter's modification order every decrement follows its increment:
 *      the counter is >= the true depth and never wraps below zero.
 */
#include "depot.h"
#include "reclaim.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the depot needs a lock-free 64-bit CAS");
_Static_assert(sizeof(uint64_t) == sizeof(unsigned long long), "64-bit heads");
_Static_assert(sizeof(struct mp_mag) == 24, "magazine header layout");
_Static_assert(MP_MAG_STRIDE % 64 == 0, "slots are cache-line aligned");
_Static_assert(offsetof(struct mp_mag, objs) + sizeof(struct mp_retire_node) <= MP_MAG_STRIDE,
               "a retired magazine's retire node fits its slot");
_Static_assert(offsetof(struct mp_mag, objs) % _Alignof(struct mp_retire_node) == 0,
               "retire node alignment");

#define MAG_AREA_MAX (1u << 20)   /* slots reserved at most (~2 GiB virtual) */
#define MAG_AREA_MIN (1u << 12)   /* smallest reservation tried */
#define LOW(h) ((uint32_t)(h))
#define TAG(h) ((h) >> 32)

#define TRIM_BATCH 64u          /* dirty free slots that always trigger a trim... */
#define TRIM_IDLE 16u           /* ...or fewer, once no retired magazine is pending */

/* The magazine area: reserved once, never unmapped.  Free slots are on one of
 * two stacks (tagged like depot heads): `dirty` slots are resident and reused
 * first; when a trim is due (policy at mag_reclaimed) it pops every free
 * slot (owning them), gives back with MADV_DONTNEED every page that lies
 * wholly inside runs of consecutive owned slots, and moves them to `clean` (whose links live in a
 * side array, so the push does not fault the page back in).  Only owned slots'
 * pages are ever zapped, so no lock is needed; a stale depot popper reading
 * a zapped slot's `next` reads 0 and fails its CAS (A4). */
static struct {
    pthread_once_t once;
    char *base;                  /* written once under `once`, read after it */
    uint32_t nslots;
    size_t page;
    _Atomic uint32_t bump;       /* slots ever handed out */
    _Atomic uint64_t dirty_head; /* free, resident */
    _Atomic uint64_t clean_head; /* free, pages given back where possible */
    _Atomic uint32_t ndirty;     /* approximate size of dirty (relaxed) */
    _Atomic uint32_t nclean;     /* clean slots at the last trim (relaxed) */
    _Atomic uint32_t nretired;   /* magazines retired, slot not yet back (relaxed) */
    _Atomic uint32_t *links;     /* clean stack's links, outside the slots so
                                  * that pushing a trimmed slot does not touch
                                  * (re-fault) its page */
} g_area = { .once = PTHREAD_ONCE_INIT };

static void area_reserve(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    g_area.page = pg > 0 ? (size_t)pg : 4096;
    for (uint32_t n = MAG_AREA_MAX; n >= MAG_AREA_MIN; n >>= 1) {
        void *p = mmap(NULL, (size_t)n * MP_MAG_STRIDE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        void *l = mmap(NULL, (size_t)n * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED && l != MAP_FAILED) {
            g_area.base = p;
            g_area.links = l;
            g_area.nslots = n;
            return;
        }
        if (p != MAP_FAILED)
            munmap(p, (size_t)n * MP_MAG_STRIDE);
        if (l != MAP_FAILED)
            munmap(l, (size_t)n * sizeof(uint32_t));
    }
}

static inline struct mp_mag *slot(uint32_t idx)
{
    return (struct mp_mag *)(void *)(g_area.base + (size_t)idx * MP_MAG_STRIDE);
}

static inline uint32_t slot_index(const struct mp_mag *m)
{
    return (uint32_t)(((const char *)m - g_area.base) / MP_MAG_STRIDE);
}

/* ---- the tagged stack, shared by the depot and the free-slot stacks ------
 * links == NULL: the link of slot i is slot(i)->next; else links[i]. */

static inline _Atomic uint32_t *link_of(_Atomic uint32_t *links, uint32_t idx)
{
    return links != NULL ? &links[idx] : &slot(idx)->next;
}

static void stack_push(_Atomic uint64_t *head, _Atomic uint32_t *links, struct mp_mag *m,
                       _Atomic uint64_t *contention)
{
    uint32_t idx = slot_index(m);
    _Atomic uint32_t *link = link_of(links, idx);
    uint64_t idx1 = (uint64_t)idx + 1;
    uint64_t h = atomic_load_explicit(head, memory_order_relaxed);
    for (;;) {
        atomic_store_explicit(link, LOW(h), memory_order_relaxed);
        /* RELEASE on success (O1): publishes m->next and the magazine's
         * contents to the thread that pops it (pairs with the acquire load /
         * CAS in stack_pop).  Weakened, a popper could read an old `next`
         * and corrupt the stack, or read stale rounds/objs.  Failure only
         * reloads h, which this thread does not dereference: relaxed. */
        if (atomic_compare_exchange_weak_explicit(head, &h, (h & ~(uint64_t)UINT32_MAX) | idx1,
                                                  memory_order_release, memory_order_relaxed))
            return;
        if (contention)
            atomic_fetch_add_explicit(contention, 1, memory_order_relaxed);
    }
}

static struct mp_mag *stack_pop(_Atomic uint64_t *head, _Atomic uint32_t *links,
                                _Atomic uint64_t *contention)
{
    /* ACQUIRE (O2): pairs with the release CAS of the push that put the
     * top magazine there, so the relaxed read of its `next` below and the
     * magazine's contents are that push's.  Weakened: stale link installed. */
    uint64_t h = atomic_load_explicit(head, memory_order_acquire);
    for (;;) {
        uint32_t i1 = LOW(h);
        if (i1 == 0)
            return NULL;
        struct mp_mag *m = slot(i1 - 1);
        uint32_t next = atomic_load_explicit(link_of(links, i1 - 1), memory_order_relaxed); /* A4 */
        /* Success ACQUIRE: the popped magazine's contents are ours (O2).
         * Failure ACQUIRE: h is reloaded and dereferenced on the next turn,
         * same argument as the first load. */
        if (atomic_compare_exchange_weak_explicit(head, &h, ((TAG(h) + 1) << 32) | next,
                                                  memory_order_acquire, memory_order_acquire))
            return m;
        if (contention)
            atomic_fetch_add_explicit(contention, 1, memory_order_relaxed);
    }
}

/* ---- magazines ----------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Own every free slot (pop both stacks), give back the pages that lie wholly
 * inside runs of consecutive free slots, push them all to `clean`, lowest
 * index on top (so reuse packs into low pages).  Allocations meanwhile bump
 * fresh slots.  O(F log F) for F free slots. */
void mp_mag_area_trim(void)
{
    if (g_area.base == NULL)
        return;
    size_t cap = 256, n = 0;
    uint32_t *idx = malloc(cap * sizeof *idx);
    if (idx == NULL)
        return;
    struct mp_mag *m;
    uint32_t took_dirty = 0;
    for (;;) {
        m = stack_pop(&g_area.dirty_head, NULL, NULL);
        if (m != NULL)
            took_dirty++;
        else if ((m = stack_pop(&g_area.clean_head, g_area.links, NULL)) == NULL)
            break;
        if (n == cap) {
            uint32_t *bigger = realloc(idx, 2 * cap * sizeof *idx);
            if (bigger == NULL) {
                stack_push(&g_area.dirty_head, NULL, m, NULL);  /* trim what we have */
                took_dirty--;
                break;
            }
            idx = bigger;
            cap *= 2;
        }
        idx[n++] = slot_index(m);
    }
    atomic_fetch_sub_explicit(&g_area.ndirty, took_dirty, memory_order_relaxed);
    qsort(idx, n, sizeof *idx, cmp_u32);
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b + 1 < n && idx[b + 1] == idx[b] + 1)
            b++;
        size_t lo = ((size_t)idx[a] * MP_MAG_STRIDE + g_area.page - 1) & ~(g_area.page - 1);
        size_t hi = ((size_t)idx[b] + 1) * MP_MAG_STRIDE & ~(g_area.page - 1);
        if (hi > lo)
            (void)madvise(g_area.base + lo, hi - lo, MADV_DONTNEED);
        a = b + 1;
    }
    atomic_store_explicit(&g_area.nclean, (uint32_t)n, memory_order_relaxed);
    for (size_t i = n; i-- > 0;)
        stack_push(&g_area.clean_head, g_area.links, slot(idx[i]), NULL);
    free(idx);
}

/* Trim policy: when the last retired magazine comes back (a shrink or reap
 * has finished) and a few are dirty, or when dirty slots reach half the
 * clean ones (geometric: amortised O(log F) per slot). */
static void mag_reclaimed(struct mp_retire_node *node)
{
    struct mp_mag *m = (struct mp_mag *)(void *)((char *)node - offsetof(struct mp_mag, objs));
    stack_push(&g_area.dirty_head, NULL, m, NULL);
    uint32_t nd = atomic_fetch_add_explicit(&g_area.ndirty, 1, memory_order_relaxed) + 1;
    uint32_t nr = atomic_fetch_sub_explicit(&g_area.nretired, 1, memory_order_relaxed) - 1;
    uint32_t nc = atomic_load_explicit(&g_area.nclean, memory_order_relaxed);
    if ((nr == 0 && nd >= TRIM_IDLE) || (nd >= TRIM_BATCH && nd >= nc / 2))
        mp_mag_area_trim();
}

static struct mp_mag *slot_pop_free(void)
{
    struct mp_mag *m = stack_pop(&g_area.dirty_head, NULL, NULL);
    if (m != NULL) {
        atomic_fetch_sub_explicit(&g_area.ndirty, 1, memory_order_relaxed);
        return m;
    }
    return stack_pop(&g_area.clean_head, g_area.links, NULL);
}

static bool slot_bump(uint32_t *idx)
{
    uint32_t v = atomic_load_explicit(&g_area.bump, memory_order_relaxed);
    do {
        if (v >= g_area.nslots)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&g_area.bump, &v, v + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    *idx = v;
    return true;
}

struct mp_mag *mp_mag_alloc(unsigned cap)
{
    if (cap < 1 || cap > MAGPOOL_MAG_MAX) {
        errno = EINVAL;
        return NULL;
    }
    pthread_once(&g_area.once, area_reserve);
    if (g_area.base == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    struct mp_mag *m = slot_pop_free();
    if (m == NULL) {
        uint32_t idx;
        if (slot_bump(&idx)) {
            m = slot(idx);
        } else {
            /* Area exhausted: recycle what has passed its grace period. */
            mp_domain_poll(mp_domain_default());
            m = slot_pop_free();
            if (m == NULL) {
                errno = ENOMEM;
                return NULL;
            }
        }
    }
    atomic_store_explicit(&m->next, 0, memory_order_relaxed);
    m->cap = cap;
    m->rounds = 0;
    m->stamp = 0;
    m->guard = NULL;
    return m;
}

void mp_mag_free(struct mp_mag *m)
{
    if (m == NULL)
        return;
    /* The node lives in the dead magazine's rounds area (always room in a
     * slot, static-asserted above); `next` stays the stack link. */
    struct mp_retire_node *node = (struct mp_retire_node *)(void *)m->objs;
    atomic_fetch_add_explicit(&g_area.nretired, 1, memory_order_relaxed);
    mp_retire(mp_domain_default(), node, mag_reclaimed);
}

/* ---- depot --------------------------------------------------------------- */

void mp_depot_init(struct mp_depot *d)
{
    atomic_init(&d->full, 0);
    atomic_init(&d->empty, 0);
    atomic_init(&d->nfull, 0);
    atomic_init(&d->nempty, 0);
    atomic_init(&d->rounds_full, 0);
    atomic_init(&d->contention, 0);
    atomic_init(&d->pops_full, 0);
    atomic_init(&d->pushes_full, 0);
    atomic_init(&d->ws_min_full, 0);
    atomic_init(&d->ws_min_empty, 0);
}

/* Lower the working-set low-water mark to depth.  A relaxed CAS-min loop that
 * only writes when the depth is a new minimum: pops that do not set a new
 * minimum cost one load.  Approximate like the counters it reads. */
static inline void ws_lower(_Atomic uint64_t *min, uint64_t depth)
{
    uint64_t v = atomic_load_explicit(min, memory_order_relaxed);
    while (depth < v && !atomic_compare_exchange_weak_explicit(min, &v, depth,
                                                               memory_order_relaxed,
                                                               memory_order_relaxed))
        ;
}

void mp_depot_push_full(struct mp_depot *d, struct mp_mag *m)
{
    atomic_fetch_add_explicit(&d->nfull, 1, memory_order_relaxed); /* before the CAS: O3 */
    atomic_fetch_add_explicit(&d->rounds_full, m->rounds, memory_order_relaxed);
    atomic_fetch_add_explicit(&d->pushes_full, 1, memory_order_relaxed);
    stack_push(&d->full, NULL, m, &d->contention);
}

void mp_depot_push_empty(struct mp_depot *d, struct mp_mag *m)
{
    atomic_fetch_add_explicit(&d->nempty, 1, memory_order_relaxed); /* before the CAS: O3 */
    stack_push(&d->empty, NULL, m, &d->contention);
}

static struct mp_mag *depot_pop(struct mp_depot *d, _Atomic uint64_t *head,
                                _Atomic uint64_t *count, _Atomic uint64_t *ws_min)
{
    magpool_domain_t *dom = mp_domain_default();
    mp_domain_enter(dom);
    struct mp_mag *m = stack_pop(head, NULL, &d->contention);
    mp_domain_leave(dom);
    if (m != NULL) {
        uint64_t depth = atomic_fetch_sub_explicit(count, 1, memory_order_relaxed) - 1;
        ws_lower(ws_min, depth);
    }
    return m;
}

struct mp_mag *mp_depot_pop_full(struct mp_depot *d)
{
    struct mp_mag *m = depot_pop(d, &d->full, &d->nfull, &d->ws_min_full);
    if (m != NULL) {
        atomic_fetch_sub_explicit(&d->rounds_full, m->rounds, memory_order_relaxed);
        atomic_fetch_add_explicit(&d->pops_full, 1, memory_order_relaxed);
    }
    return m;
}

struct mp_mag *mp_depot_pop_empty(struct mp_depot *d)
{
    return depot_pop(d, &d->empty, &d->nempty, &d->ws_min_empty);
}

/* Close the interval: the minimum depth seen is how many magazines nobody
 * touched during it; the next interval starts from the current depth. */
static uint64_t ws_close_one(_Atomic uint64_t *min, _Atomic uint64_t *count)
{
    uint64_t cur = atomic_load_explicit(count, memory_order_relaxed);
    uint64_t seen = atomic_exchange_explicit(min, cur, memory_order_relaxed);
    return seen < cur ? seen : cur;
}

void mp_depot_ws_close(struct mp_depot *d, uint64_t *unused_full, uint64_t *unused_empty)
{
    uint64_t f = ws_close_one(&d->ws_min_full, &d->nfull);
    uint64_t e = ws_close_one(&d->ws_min_empty, &d->nempty);
    if (unused_full)
        *unused_full = f;
    if (unused_empty)
        *unused_empty = e;
}
