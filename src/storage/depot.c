/*
 * Depot: lock-free stacks of full and empty magazines, and the magazine area.
 *
 * What this layer guarantees
 * --------------------------
 *  - mp_mag_alloc/mp_mag_retire: magazines of any capacity 1..MAGPOOL_MAG_MAX
 *    in ONE reserved magazine area split into nine slot classes (capacity
 *    13, 21, 37, 69, 101, 157, 261, 389, 517 rounds; strides 128 .. 4160
 *    bytes, whole cache lines).  A magazine takes the smallest class that
 *    holds its cap, so a 143-round magazine costs 1280 bytes, not 4160, and a
 *    15-round one 192.  A magazine is named by a 32-bit index, class << 28 | slot, so
 *    index <-> pointer stays arithmetic (one table load) and the depot keeps
 *    its tagged 64-bit CAS.  Each class's sub-area is reserved (NORESERVE,
 *    512 MiB of address space at most) on its first use.
 *    A retired magazine's slot is reused only after a grace period of the
 *    default reclamation domain (mp_mag_retire hands it to the domain; the
 *    callback returns the slot).  Since depot pops no longer run in read-side
 *    sections (A4), this protects no depot reader; it is kept because it is
 *    free (magazines are retired rarely: reaping, resizing, thread exit) and
 *    it keeps a recycled slot away from any code that still held a stale
 *    pointer for a moment.
 *    The area is never unmapped, so a stale read of a slot can never fault;
 *    pages of free slots go back to the system (MADV_DONTNEED) in batches
 *    (see mag_reclaimed) and on mp_mag_area_trim() (shrink, reap.c).
 *  - mp_depot_push_* / mp_depot_pop_*: lock-free (one 64-bit CAS per attempt,
 *    lock-free with clang and gcc: no 16-byte CAS), linearizable LIFO stacks,
 *    ABA-safe, with every access visible to ThreadSanitizer (C11 atomics only).
 *  - Counters nfull, nempty, rounds_full, pushes_full, pops_full and
 *    contention are relaxed: approximate while operations are in flight,
 *    exact at quiescence (summed over the shards: mp_depot_counts).  nfull
 *    and nempty never underflow (see below).
 *  - Home shards: the full and empty stacks are MP_DEPOT_SHARDS pairs of
 *    stacks; a thread pushes onto its home shard's and pops from its home
 *    shard first, then from the others in order (see "Home shards").  One
 *    thread alone sees one LIFO depot.
 *  - mp_depot_push_freed: full magazines from free paths pass through a
 *    bounded FIFO backlog before the full stack (see "Backlog"): wait-free,
 *    nothing stranded, released by shrink, drain and idle reaping.
 *
 * Representation
 * --------------
 *  head = tag << 32 | (index + 1); 0 in the low half = empty stack.
 *  m->mag_next holds index + 1 of the magazine below m (0 = bottom).
 *  Push:  next = low half of head; CAS(head, h, tag(h) << 32 | idx + 1).
 *  Pop:   i = low(h); n = slot(i)->mag_next; CAS(head, h, (tag(h) + 1) << 32 | n).
 *  The same code runs each class's free-slot stacks (dirty/clean_head).
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
 *      link of the top (the owner of a magazine writes m->mag_next only before
 *      the CAS that pushes it, and a magazine on a stack has no owner).
 *  A4. A stale popper (load, then preempted) may read m->mag_next while the
 *      magazine has since been popped and is being pushed elsewhere by its new
 *      owner, or its slot is on the free-slot stack: that is a concurrent read
 *      and write of m->mag_next, hence `_Atomic uint32_t` with relaxed
 *      accesses.
 *      By A2 its CAS then fails, so the value it read is never used.  The slot
 *      stays mapped (the area is never unmapped), so the read cannot fault
 *      (a trimmed page reads 0).  That is all a stale popper can do: it
 *      reads no other field of the slot before its CAS succeeds.
 *      So depot pops need NO read-side section: they used to run inside one
 *      (a ck_epoch_begin/end, a locked instruction, per pop) as a second line
 *      of defence, which A2-A4 make redundant.  A slot's class never changes
 *      (the index says it), so a stale index always names a slot of the size
 *      its class says, recycled or not.
 *      The clean free-slot stacks keep their links in a side array per class
 *      (mag_class.links) instead of m->mag_next; the same argument applies.
 *  A5. Tag wrap: a popper would have to stall between its load and its CAS
 *      while exactly 2^32 pops (a multiple of 2^32) happen on that stack and
 *      the same index is on top again.  Accepted, as in every tagged design.
 *
 * Home shards
 * -----------
 *  Why.  With one pair of stacks, the full magazine a thread pushes is the
 *  one the next thread to run dry pops (LIFO), and the empty magazine a
 *  thread fills next is the one another just emptied: two threads that
 *  each cycle a large batch through the depot allocate objects, and fill
 *  magazine slots, whose lines sit in the other core's cache, and bounce
 *  the stack heads between cores at every exchange.  bench/README.md,
 *  "batch100000 at two threads": two threads sharing a cache ran slower
 *  than one (158 against 178-246 Mpairs/s) while a cache per thread gave
 *  248-286.  With home shards the shared cache gives 226-236 (177-180
 *  without, same sitting); one thread is unchanged.
 *  What.  Each thread gets a home shard at its first depot operation, round
 *  robin over MP_DEPOT_SHARDS (t_home), and keeps it.  A push goes to the
 *  home shard; a pop takes the home shard's top, else the first non-empty
 *  other shard's (home + 1, home + 2, ...), so nothing a thread can use is
 *  ever out of its reach and "NULL" still means every shard looked empty
 *  at the moment it was read (a relaxed peek skips an empty-looking shard
 *  without touching its line for writing).  Each shard's stacks are the
 *  stacks described above (A1-A5, O1-O3 per shard); its counters (nfull,
 *  nempty, rounds_full, pops_full, the working-set minima) are its own and
 *  mp_depot_counts sums them.  pushes_full (the backlog's count, DB1) and
 *  contention stay depot-wide.
 *  Working set: mp_depot_ws_close sums the shards' unused counts; the
 *  reaper's teardown pops that many from its own home first, so it may take
 *  a magazine from a busier shard than the idle one: the count is what the
 *  working-set rule bounds, not which magazines go.
 *
 * Backlog
 * -------
 *  Why.  A full magazine from a free path holds objects whose cache lines the
 *  freeing thread has just touched.  Taken at once by another thread (the
 *  LIFO full stack hands a producer the consumer's newest magazine), every
 *  object costs a transfer of a line still in the freer's L1/L2.  DPDK's
 *  mempool ring is FIFO and hands out the objects released longest ago.  The
 *  backlog does the same for a bounded number of magazines: a ring of
 *  bl_slots magazine pointers; a push takes slot bl_pos++ % bl_slots and
 *  exchanges its magazine in; the one it displaces, the oldest, goes to the
 *  full stack.  A magazine thus reaches the stack only after bl_slots later
 *  pushes, i.e. after ~bl_slots magazines of objects went through the
 *  freeing core's caches.  Bench spsc (64 B, 1 producer + 1 consumer,
 *  32 KiB magazines, 1 MiB L2): 54-57 Mops/s without, 65-85 with 32 slots,
 *  85-89 with 64 (DPDK 79-93 in the same runs).
 *  Price: up to bl_slots magazines of free objects that allocating threads
 *  do not see (they build new objects meanwhile).  cache.c sizes bl_slots
 *  from the config's backlog bytes (default: twice the L2 cache, at most
 *  MP_BACKLOG_SLOTS_MAX magazines) and counts them in the statistics
 *  (in_depot, backlog_mags).
 *  DB1. Engagement: only after bl_engage_span full pushes since creation or
 *      the last release: engaged <=> pushes_full >= bl_engage_at (no flag:
 *      the count only grows, and only a release moves the mark).  cache.c sets the span to twice
 *      the backlog's bytes of flow (and at least 2 * bl_slots magazines), so
 *      a cache that trades a few magazines between threads (or a test with
 *      1-round magazines) reuses them at once and builds no surplus; a
 *      steady flow engages within a few ms.
 *  DB2. Release (shrink, drain, an idle reaper interval, an alloc that found
 *      the slab layer exhausted): re-arm DB1 (move bl_engage_at), then exchange
 *      every slot with NULL and push what was there onto the full stack.
 *      Every release scans every slot, so a push that read the old mark
 *      before it moved and left a magazine in the ring strands
 *      nothing: the magazine is counted (bl_mags, bl_rounds) and the next
 *      release takes it.  Thread exit and deferred batches push straight to
 *      the stack (their objects are not hot in a freer's cache).
 *  DB3. Ordering: the slot exchange is ACQ_REL.  Its release publishes the
 *      contents (rounds, objs) the pusher wrote; its acquire makes visible
 *      the contents of the magazine it displaces (pairs with the release of
 *      the exchange that put that one in).  A release's exchange is ACQUIRE
 *      for the same pairing.  A slot holds a magazine until exactly one
 *      exchange takes it out, so a magazine stays in one place (I6).
 *  DB4. bl_mags and bl_rounds are relaxed counters, raised before the
 *      exchange that puts a magazine in and lowered after the one that takes
 *      it out (as O3: never below zero).  bl_engage_at and bl_idle_seen
 *      are relaxed hints: a stale value moves engagement by a few pushes and
 *      never loses a magazine (DB2).
 *  DB5. Progress: a push is one fetch_add and one exchange (wait-free, no
 *      compare, hence no ABA); a release is bl_slots exchanges.
 *
 * Slot classes (memory ordering of the lazy reservation)
 * ------------
 *  DC1. class_reserve writes nslots and links, then stores base with RELEASE
 *      under g_area.lock; mp_mag_alloc loads base with ACQUIRE.  Any other
 *      use of a class (slot(), a depot or free-stack pop) starts from an
 *      index that some thread obtained after its own acquire of base and
 *      published by a release CAS, so those loads may be relaxed.
 *  DC2. slot_index() reads m->mag_cap to find the class: only for a live,
 *      owned magazine (a push, mag_reclaimed).  A trim works from the
 *      indices it popped and never reads a free slot, whose page may be 0.
 *
 * Memory ordering (each non-relaxed atomic also has a local comment)
 * ---------------
 *  O1. Push CAS succeeds with RELEASE: it publishes m->mag_next and the
 *      magazine's contents (mag_cap, mag_rounds, mag_batch_cap, mag_objs)
 *      written by the owner.
 *  O2. Pop loads head with ACQUIRE (also on CAS failure, which reloads h):
 *      every head value is in the release sequence of every earlier push
 *      (all later modifications are RMWs), so the popper synchronizes with
 *      the push of the magazine it sees on top.  This is what makes the
 *      relaxed read of m->mag_next return THAT push's value and not an older
 *      one (coherence: the push's write happens-before the read); with a
 *      relaxed head load, the read could return a previous life's `mag_next`
 *      and the CAS (which compares head only) would install a wrong link.  The
 *      successful pop CAS is ACQUIRE for the same reason (it is the value the
 *      popper owns from then on).
 *  O3. Counters: a push increments nfull before its CAS; a pop decrements
 *      after its CAS.  The increment is sequenced before the push's release,
 *      the decrement after the pop's acquire of that push, so in the
 *      counter's modification order every decrement follows its increment:
 *      the counter is >= the true depth and never wraps below zero.
 */
#include "atomics.h"
#include "depot.h"
#include "meta.h"
#include "page.h"
#include "reclaim.h"
#include "sanitize.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MP_DEPOT_COLD __attribute__((noinline, cold))

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the depot needs a lock-free 64-bit CAS");
_Static_assert(sizeof(uint64_t) == sizeof(unsigned long long), "64-bit heads");
_Static_assert(sizeof(struct mp_mag) == 24, "magazine header layout");
_Static_assert(MP_MAG_STRIDE % 64 == 0, "slots are cache-line aligned");
_Static_assert((24 + 13 * 8) % 64 == 0 && (24 + 21 * 8) % 64 == 0 && (24 + 37 * 8) % 64 == 0 &&
                   (24 + 69 * 8) % 64 == 0 && (24 + 101 * 8) % 64 == 0 &&
                   (24 + 157 * 8) % 64 == 0 && (24 + 261 * 8) % 64 == 0 &&
                   (24 + 389 * 8) % 64 == 0 && (24 + 517 * 8) % 64 == 0,
               "every class stride (class_cap below) is whole cache lines");
_Static_assert(MP_MAG_STRIDE == sizeof(struct mp_mag) + 517 * sizeof(void *), "largest class");
_Static_assert(offsetof(struct mp_mag, mag_objs) + sizeof(struct mp_retire_node) <=
                   sizeof(struct mp_mag) + 13 * sizeof(void *),
               "a retired magazine's retire node fits the smallest slot");
_Static_assert(offsetof(struct mp_mag, mag_objs) % _Alignof(struct mp_retire_node) == 0,
               "retire node alignment");

#define LOW(h) ((uint32_t)(h))
#define TAG(h) ((h) >> 32)

#define TRIM_BATCH 64u          /* dirty free slots that always trigger a trim... */
#define TRIM_IDLE 16u           /* ...or fewer, once no retired magazine is pending */

/* Slot classes: a magazine of capacity cap lives in the first class whose
 * capacity is >= cap.  Every stride (24-byte header + 8 * capacity) is a
 * whole number of cache lines; the capacities are chosen so that the
 * ladder's sizes (reap.c) and the deferred batches of sizes too small for a tail
 * (size + MP_DEFER_SLOTS, magazine.c) waste little: 511 -> 517, 383 -> 389, 143 -> 157, 63 -> 69,
 * 15 -> 21, ...  */
#define NCLASS 9
static const uint32_t class_cap[NCLASS] = { 13, 21, 37, 69, 101, 157, 261, 389, 517 };
#define CLASS_STRIDE(k) (sizeof(struct mp_mag) + (size_t)class_cap[k] * sizeof(void *))
#define CLASS_SHIFT 28                       /* index = class << 28 | slot */
#define SLOT_MASK ((1u << CLASS_SHIFT) - 1)
#define CLASS_BYTES_MAX ((size_t)512 << 20)  /* virtual reservation per class, at most */
#define CLASS_BYTES_MIN ((size_t)1 << 20)    /* smallest reservation tried */

_Static_assert(NCLASS <= (1u << (32 - CLASS_SHIFT)) - 1, "class fits the index (index + 1 != 0)");

/* One class of the magazine area: reserved on first use, never unmapped.
 * Free slots are on one of two stacks (tagged like depot heads): `dirty`
 * slots are resident and reused first; when a trim is due (policy at
 * mag_reclaimed) it pops every free slot of the class (owning them), gives
 * back with MADV_DONTNEED every page that lies wholly inside runs of
 * consecutive owned slots, and moves them to `clean` (whose links live in a
 * side array, so the push does not fault the page back in).  Only owned
 * slots' pages are ever zapped, so no lock is needed; a stale depot popper
 * reading a zapped slot's `next` reads 0 and fails its CAS (A4). */
struct mag_class {
    _Atomic(char *) base;        /* NULL until reserved (release store under g_area.lock) */
    uint32_t nslots;             /* written before base's release store */
    _Atomic uint32_t *links;     /* clean stack's links (idem) */
    _Atomic uint32_t bump;       /* slots ever handed out */
    _Atomic uint64_t dirty_head; /* free, resident */
    _Atomic uint64_t clean_head; /* free, pages given back where possible */
    _Atomic uint32_t ndirty;     /* approximate size of dirty (relaxed) */
    _Atomic uint32_t nclean;     /* clean slots at the last trim (relaxed) */
} __attribute__((aligned(64)));

static struct {
    pthread_mutex_t lock;        /* reservation of a class only */
    _Atomic size_t page;         /* page size, set with the first class (relaxed) */
    _Atomic uint32_t nretired;   /* magazines retired, slot not yet back (relaxed) */
    _Atomic uint64_t nallocs;    /* mp_mag_alloc successes (relaxed: a statistic) */
    struct mag_class cls[NCLASS];
} g_area = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline unsigned class_of_cap(uint32_t cap)
{
    unsigned k = 0;
    while (class_cap[k] < cap)
        k++;
    return k;
}

/* Reserve class k (once; later callers see base set).  NULL: no memory. */
static MP_DEPOT_COLD char *class_reserve(unsigned k)
{
    struct mag_class *cl = &g_area.cls[k];
    pthread_mutex_lock(&g_area.lock);
    char *b = mp_load_relaxed(&cl->base); /* under the lock */
    if (b == NULL) {
        long pg = sysconf(_SC_PAGESIZE);
        mp_store_relaxed(&g_area.page, pg > 0 ? (size_t)pg : 4096);
        size_t stride = CLASS_STRIDE(k);
        for (size_t bytes = CLASS_BYTES_MAX; bytes >= CLASS_BYTES_MIN; bytes >>= 1) {
            size_t n = bytes / stride;
            if (n > SLOT_MASK)
                n = SLOT_MASK;
            void *p = mmap(NULL, n * stride, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            void *l = mmap(NULL, n * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p != MAP_FAILED && l != MAP_FAILED) {
                cl->links = l;
                cl->nslots = (uint32_t)n;
                b = p;
                /* RELEASE: publishes nslots and links with base; pairs with
                 * the acquire load in mp_mag_alloc.  Every other reader of a
                 * class got a slot index from a thread that passed there (a
                 * chain of acquire/release through depot or free stacks).
                 * Weakened: a first allocator could read nslots == 0. */
                mp_store_release(&cl->base, b);
                break;
            }
            if (p != MAP_FAILED)
                munmap(p, n * stride);
            if (l != MAP_FAILED)
                munmap(l, n * sizeof(uint32_t));
        }
    }
    pthread_mutex_unlock(&g_area.lock);
    return b;
}

static inline struct mp_mag *slot(uint32_t idx)
{
    unsigned k = idx >> CLASS_SHIFT;
    /* Relaxed: see class_reserve (the index itself was published after base). */
    char *b = mp_load_relaxed(&g_area.cls[k].base);
    return (struct mp_mag *)(void *)(b + (size_t)(idx & SLOT_MASK) * CLASS_STRIDE(k));
}

/* Index of a live magazine (its cap names its class; never called on a
 * free slot, whose page may have been zeroed by a trim). */
static inline uint32_t slot_index(const struct mp_mag *m)
{
    unsigned k = class_of_cap(m->mag_cap);
    char *b = mp_load_relaxed(&g_area.cls[k].base);
    return (uint32_t)k << CLASS_SHIFT | (uint32_t)(((const char *)m - b) / CLASS_STRIDE(k));
}

/* ---- the tagged stack, shared by the depot and the free-slot stacks ------
 * links == NULL: the link of slot i is slot(i)->mag_next; else links[i & SLOT_MASK]
 * (a class's side array). */

static inline _Atomic uint32_t *link_of(_Atomic uint32_t *links, uint32_t idx)
{
    return links != NULL ? &links[idx & SLOT_MASK] : &slot(idx)->mag_next;
}

/* Push slot idx (owned by the caller). */
static void stack_push(_Atomic uint64_t *head, _Atomic uint32_t *links, uint32_t idx,
                       _Atomic uint64_t *contention)
{
    _Atomic uint32_t *link = link_of(links, idx);
    uint64_t idx1 = (uint64_t)idx + 1;
    uint64_t h = mp_load_relaxed(head);
    for (;;) {
        mp_store_relaxed(link, LOW(h));
        /* RELEASE on success (O1): publishes m->mag_next and the magazine's
         * contents to the thread that pops it (pairs with the acquire load /
         * CAS in stack_pop).  Weakened, a popper could read an old `next`
         * and corrupt the stack, or read stale rounds/objs.  Failure only
         * reloads h, which this thread does not dereference: relaxed. */
        if (mp_cas_weak_release_relaxed(head, &h, (h & ~(uint64_t)UINT32_MAX) | idx1))
            return;
        if (contention)
            mp_fetch_add_relaxed(contention, 1);
    }
}

/* Pop: the slot, and its index in *idx if idx != NULL. */
static struct mp_mag *stack_pop(_Atomic uint64_t *head, _Atomic uint32_t *links,
                                _Atomic uint64_t *contention, uint32_t *idx)
{
    /* ACQUIRE (O2): pairs with the release CAS of the push that put the
     * top magazine there, so the relaxed read of its `next` below and the
     * magazine's contents are that push's.  Weakened: stale link installed. */
    uint64_t h = mp_load_acquire(head);
    for (;;) {
        uint32_t i1 = LOW(h);
        if (i1 == 0)
            return NULL;
        struct mp_mag *m = slot(i1 - 1);
        uint32_t next = mp_load_relaxed(link_of(links, i1 - 1)); /* A4 */
        /* Success ACQUIRE: pairs with the release CAS of the push that put
         * m there, so the popped magazine's contents are ours (O2); relaxed
         * could hand out stale rounds/objs.
         * Failure ACQUIRE: h is reloaded and dereferenced on the next turn,
         * same argument as the first load. */
        if (mp_cas_weak_acquire_acquire(head, &h, ((TAG(h) + 1) << 32) | next)) {
            if (idx != NULL)
                *idx = i1 - 1;
            return m;
        }
        if (contention)
            mp_fetch_add_relaxed(contention, 1);
    }
}

/* ---- magazines ----------------------------------------------------------- */

/* Sort a[0..n) ascending in place: heapsort, O(n log n) with no memory
 * of its own (glibc's qsort may malloc a merge buffer, and the engine calls
 * no malloc: meta.h). */
static void sift_down(uint32_t *a, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && a[child + 1] > a[child])
            child++;
        if (a[root] >= a[child])
            return;
        uint32_t t = a[root];
        a[root] = a[child];
        a[child] = t;
    }
}

static void sort_u32(uint32_t *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n; end-- > 1;) {
        uint32_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}

/* Own every free slot of class k (pop both stacks), give back the pages
 * that lie wholly inside runs of consecutive free slots, push them all to
 * `clean`, lowest index on top (so reuse packs into low pages).
 * Allocations meanwhile bump fresh slots.  O(F log F) for F free slots, so
 * only when a slot came back dirty since the last trim: clean slots' pages
 * were given back then (a clean slot that is reused comes back dirty).
 * Without that test every shrink sorted them all again: a reap of 30 caches
 * (a fork child of a long-running parent, 180,000 free slots) took seconds. */
static void class_trim(unsigned k)
{
    struct mag_class *cl = &g_area.cls[k];
    /* Relaxed: a hint; a slot pushed dirty right after this read is trimmed
     * by the next call (its own mag_reclaimed, or a later shrink). */
    if (mp_load_relaxed(&cl->ndirty) == 0)
        return;
    /* Acquire: pairs with the release store of base in class_reserve, so
     * nslots and links are the published ones (DC1).  Weakened, the trim
     * could read nslots == 0 or a NULL links array for a reserved class. */
    char *base = mp_load_acquire(&cl->base);
    if (base == NULL)
        return;
    size_t stride = CLASS_STRIDE(k), page = mp_load_relaxed(&g_area.page);
    size_t cap = 256, n = 0;
    uint32_t *idx = mp_meta_alloc(cap * sizeof *idx);
    if (idx == NULL)
        return;
    uint32_t took_dirty = 0, i;
    for (;;) {
        /* Indices come from the stacks: a clean slot's contents may be
         * zeroed pages, so nothing is read from the slots themselves. */
        if (stack_pop(&cl->dirty_head, NULL, NULL, &i) != NULL)
            took_dirty++;
        else if (stack_pop(&cl->clean_head, cl->links, NULL, &i) == NULL)
            break;
        if (n == cap) {
            uint32_t *bigger = mp_meta_grow(idx, cap * sizeof *idx, 2 * cap * sizeof *idx);
            if (bigger == NULL) {
                stack_push(&cl->dirty_head, NULL, i, NULL);  /* trim what we have */
                took_dirty--;
                break;
            }
            idx = bigger;
            cap *= 2;
        }
        idx[n++] = i & SLOT_MASK;
    }
    mp_fetch_sub_relaxed(&cl->ndirty, took_dirty);
    sort_u32(idx, n);
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b + 1 < n && idx[b + 1] == idx[b] + 1)
            b++;
        size_t lo = ((size_t)idx[a] * stride + page - 1) & ~(page - 1);
        size_t hi = ((size_t)idx[b] + 1) * stride & ~(page - 1);
        if (hi > lo)
            (void)madvise(base + lo, hi - lo, MADV_DONTNEED);
        a = b + 1;
    }
    mp_store_relaxed(&cl->nclean, (uint32_t)n);
    for (size_t i = n; i-- > 0;)
        stack_push(&cl->clean_head, cl->links, (uint32_t)k << CLASS_SHIFT | idx[i], NULL);
    mp_meta_free(idx, cap * sizeof *idx);
}

void mp_mag_area_trim(void)
{
    for (unsigned k = 0; k < NCLASS; k++)
        class_trim(k);
}

/* Trim policy, per class: when the last retired magazine comes back (a
 * shrink or reap has finished) and a few are dirty, or when dirty slots
 * reach half the clean ones (geometric: amortised O(log F) per slot). */
static void mag_reclaimed(struct mp_retire_node *node)
{
    struct mp_mag *m = (struct mp_mag *)(void *)((char *)node - offsetof(struct mp_mag, mag_objs));
    unsigned k = class_of_cap(m->mag_cap);
    struct mag_class *cl = &g_area.cls[k];
    stack_push(&cl->dirty_head, NULL, slot_index(m), NULL);
    uint32_t nd = mp_fetch_add_relaxed(&cl->ndirty, 1) + 1;
    uint32_t nr = mp_fetch_sub_relaxed(&g_area.nretired, 1) - 1;
    uint32_t nc = mp_load_relaxed(&cl->nclean);
    if ((nr == 0 && nd >= TRIM_IDLE) || (nd >= TRIM_BATCH && nd >= nc / 2))
        class_trim(k);
}

static struct mp_mag *slot_pop_free(struct mag_class *cl)
{
    struct mp_mag *m = stack_pop(&cl->dirty_head, NULL, NULL, NULL);
    if (m != NULL) {
        mp_fetch_sub_relaxed(&cl->ndirty, 1);
        return m;
    }
    return stack_pop(&cl->clean_head, cl->links, NULL, NULL);
}

static bool slot_bump(struct mag_class *cl, uint32_t *n)
{
    uint32_t v = mp_load_relaxed(&cl->bump);
    do {
        if (v >= cl->nslots)
            return false;
    } while (!mp_cas_weak_relaxed(&cl->bump, &v, v + 1));
    *n = v;
    return true;
}

struct mp_mag *mp_mag_alloc(unsigned cap)
{
    if (cap < 1 || cap > MAGPOOL_MAG_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (mp_fault_now()) { /* fault injection reaches magazines (page.h) */
        errno = ENOMEM;
        return NULL;
    }
    unsigned k = class_of_cap(cap);
    struct mag_class *cl = &g_area.cls[k];
    /* Acquire: pairs with the release store of base in class_reserve, so
     * nslots and links are the published ones (DC1).  Weakened, a first
     * allocator in another thread could read nslots == 0 (and fail) or a
     * NULL links array. */
    char *base = mp_load_acquire(&cl->base);
    if (base == NULL && (base = class_reserve(k)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    struct mp_mag *m = slot_pop_free(cl);
    if (m == NULL) {
        uint32_t n;
        if (slot_bump(cl, &n)) {
            m = (struct mp_mag *)(void *)(base + (size_t)n * CLASS_STRIDE(k));
        } else {
            /* Class exhausted: recycle what has passed its grace period. */
            mp_domain_poll(mp_domain_default());
            m = slot_pop_free(cl);
            if (m == NULL) {
                errno = ENOMEM;
                return NULL;
            }
        }
    }
    mp_tsan_acquire(m); /* pairs with mp_mag_retire's release by the slot's last owner */
    mp_store_relaxed(&m->mag_next, 0);
    m->mag_cap = cap;
    m->mag_rounds = 0;
    m->mag_batch_cap = 0;
    m->mag_guard = NULL;
    mp_fetch_add_relaxed(&g_area.nallocs, 1);
    return m;
}

uint64_t mp_mag_area_allocs(void)
{
    return mp_load_relaxed(&g_area.nallocs);
}

void mp_mag_retire(struct mp_mag *m)
{
    if (m == NULL)
        return;
    mp_tsan_release(m); /* the slot's next owner (mp_mag_alloc) */
    /* The node lives in the dead magazine's rounds area (always room in a
     * slot, static-asserted above); mag_next stays the stack link, and
     * mag_cap still names the slot's class when the callback runs. */
    struct mp_retire_node *node = (struct mp_retire_node *)(void *)m->mag_objs;
    mp_fetch_add_relaxed(&g_area.nretired, 1);
    mp_retire(mp_domain_default(), node, mag_reclaimed);
}

/* ---- depot --------------------------------------------------------------- */

void mp_depot_init(struct mp_depot *d, unsigned backlog_slots, uint64_t engage_span)
{
    d->bl_slots = backlog_slots < MP_BACKLOG_SLOTS_MAX ? backlog_slots : MP_BACKLOG_SLOTS_MAX;
    d->bl_engage_span = engage_span > 2u * (uint64_t)d->bl_slots ? engage_span
                                                                 : 2u * (uint64_t)d->bl_slots;
    atomic_init(&d->bl_pos, 0);
    atomic_init(&d->bl_mags, 0);
    atomic_init(&d->bl_rounds, 0);
    atomic_init(&d->bl_engage_at, d->bl_engage_span);
    atomic_init(&d->bl_idle_seen, 0);
    for (unsigned i = 0; i < MP_BACKLOG_SLOTS_MAX; i++)
        atomic_init(&d->bl_ring[i], NULL);
    for (unsigned k = 0; k < MP_DEPOT_SHARDS; k++) {
        struct mp_depot_shard *sh = &d->sh[k];
        atomic_init(&sh->full, 0);
        atomic_init(&sh->empty, 0);
        atomic_init(&sh->nfull, 0);
        atomic_init(&sh->nempty, 0);
        atomic_init(&sh->rounds_full, 0);
        atomic_init(&sh->pops_full, 0);
        atomic_init(&sh->ws_min_full, 0);
        atomic_init(&sh->ws_min_empty, 0);
    }
    atomic_init(&d->contention, 0);
    atomic_init(&d->pushes_full, 0);
}

/* The calling thread's home shard (see "Home shards"): given out round
 * robin at a thread's first depot operation, so concurrent threads mostly
 * get distinct shards; fixed for the thread's life, so one thread's depot
 * is an ordinary LIFO. */
static _Atomic unsigned g_next_home;
static __thread unsigned t_home __attribute__((tls_model("initial-exec")));

static inline unsigned home_shard(void)
{
    unsigned h = t_home;
    if (__builtin_expect(h == 0, 0)) {
        /* Relaxed: a counter, no data hangs on it. */
        h = mp_fetch_add_relaxed(&g_next_home, 1) % MP_DEPOT_SHARDS + 1;
        t_home = h;
    }
    return h - 1;
}

void mp_depot_counts(struct mp_depot *d, struct mp_depot_counts *out)
{
    struct mp_depot_counts t = { 0, 0, 0, 0 };
    for (unsigned k = 0; k < MP_DEPOT_SHARDS; k++) {
        t.nfull += mp_load_relaxed(&d->sh[k].nfull);
        t.rounds_full += mp_load_relaxed(&d->sh[k].rounds_full);
        t.pops_full += mp_load_relaxed(&d->sh[k].pops_full);
        t.nempty += mp_load_relaxed(&d->sh[k].nempty);
    }
    *out = t;
}

/* Lower the working-set low-water mark to depth.  A relaxed CAS-min loop that
 * only writes when the depth is a new minimum: pops that do not set a new
 * minimum cost one load.  Approximate like the counters it reads. */
static inline void ws_lower(_Atomic uint64_t *min, uint64_t depth)
{
    uint64_t v = mp_load_relaxed(min);
    while (depth < v && !mp_cas_weak_relaxed(min, &v, depth))
        ;
}

static void full_stack_push(struct mp_depot *d, struct mp_mag *m)
{
    struct mp_depot_shard *sh = &d->sh[home_shard()];
    mp_fetch_add_relaxed(&sh->nfull, 1); /* before the CAS: O3 */
    mp_fetch_add_relaxed(&sh->rounds_full, m->mag_rounds);
    stack_push(&sh->full, NULL, slot_index(m), &d->contention);
}

void mp_depot_push_full(struct mp_depot *d, struct mp_mag *m)
{
    mp_tsan_release(m); /* TSan with an uninstrumented library: a magazine's hand-off (sanitize.h) */
    mp_fetch_add_relaxed(&d->pushes_full, 1);
    full_stack_push(d, m);
}

/* Is the backlog engaged, after `pushes` full pushes (DB1)?  Relaxed: a
 * hint (DB4). */
static bool backlog_engaged(struct mp_depot *d, uint64_t pushes)
{
    return d->bl_slots != 0 && pushes >= mp_load_relaxed(&d->bl_engage_at);
}

/* A magazine some exchange took out of a backlog slot goes to the full
 * stack; the counters drop after the exchange (DB4). */
static void backlog_evict(struct mp_depot *d, struct mp_mag *m)
{
    mp_fetch_sub_relaxed(&d->bl_rounds, m->mag_rounds);
    mp_fetch_sub_relaxed(&d->bl_mags, 1);
    full_stack_push(d, m);
}

void mp_depot_push_freed(struct mp_depot *d, struct mp_mag *m)
{
    mp_tsan_release(m); /* TSan with an uninstrumented library: a magazine's hand-off (sanitize.h) */
    uint64_t pushes = mp_fetch_add_relaxed(&d->pushes_full, 1);
    if (!backlog_engaged(d, pushes)) {
        full_stack_push(d, m);
        return;
    }
    uint64_t pos = mp_fetch_add_relaxed(&d->bl_pos, 1);
    mp_fetch_add_relaxed(&d->bl_mags, 1); /* before the exchange: DB4 */
    mp_fetch_add_relaxed(&d->bl_rounds, m->mag_rounds);
    /* ACQ_REL (DB3): release publishes m's contents to whoever takes it out;
     * acquire pairs with the exchange that put `old` in, so old->mag_rounds and
     * old->mag_objs below are that pusher's values.  Relaxed would let the full
     * stack (and a popper) see a stale round count or stale object pointers. */
    struct mp_mag *old = mp_xchg_acqrel(&d->bl_ring[pos % d->bl_slots], m);
    if (old != NULL)
        backlog_evict(d, old);
}

size_t mp_depot_backlog_release(struct mp_depot *d)
{
    if (d->bl_slots == 0)
        return 0;
    /* Relaxed hint (DB4): re-arm engagement, then scan every slot (DB2). */
    mp_store_relaxed(&d->bl_engage_at, mp_load_relaxed(&d->pushes_full) + d->bl_engage_span);
    size_t moved = 0;
    for (unsigned i = 0; i < d->bl_slots; i++) {
        if (mp_load_relaxed(&d->bl_ring[i]) == NULL)
            continue; /* an empty slot costs no write (its line stays shared) */
        /* ACQUIRE (DB3): pairs with the release of the exchange that put the
         * magazine in, so its rounds and objs are visible; relaxed would
         * push a magazine whose contents we may not see yet. */
        struct mp_mag *m = mp_xchg_acquire(&d->bl_ring[i], NULL);
        if (m == NULL)
            continue; /* a concurrent push's displacement took it */
        backlog_evict(d, m);
        moved++;
    }
    return moved;
}

void mp_depot_backlog_tick(struct mp_depot *d)
{
    uint64_t now = mp_load_relaxed(&d->pushes_full);
    uint64_t seen = mp_xchg_relaxed(&d->bl_idle_seen, now);
    if (now == seen && (backlog_engaged(d, now) ||
                        mp_load_relaxed(&d->bl_mags) != 0))
        mp_depot_backlog_release(d);
}

void mp_depot_push_empty(struct mp_depot *d, struct mp_mag *m)
{
    mp_tsan_release(m); /* TSan with an uninstrumented library: a magazine's hand-off (sanitize.h) */
    struct mp_depot_shard *sh = &d->sh[home_shard()];
    mp_fetch_add_relaxed(&sh->nempty, 1); /* before the CAS: O3 */
    stack_push(&sh->empty, NULL, slot_index(m), &d->contention);
}

static struct mp_mag *depot_pop(struct mp_depot *d, _Atomic uint64_t *head,
                                _Atomic uint64_t *count, _Atomic uint64_t *ws_min)
{
    struct mp_mag *m = stack_pop(head, NULL, &d->contention, NULL); /* no section needed: A4 */
    if (m != NULL) {
        uint64_t depth = mp_fetch_sub_relaxed(count, 1) - 1;
        ws_lower(ws_min, depth);
    }
    return m;
}

/* Pop the full (full != 0) or empty stack of the home shard, else of the
 * first other shard with a magazine; *shp gets the shard popped. */
static struct mp_mag *shard_pop(struct mp_depot *d, bool full, struct mp_depot_shard **shp)
{
    unsigned home = home_shard();
    for (unsigned i = 0; i < MP_DEPOT_SHARDS; i++) {
        struct mp_depot_shard *sh = &d->sh[(home + i) % MP_DEPOT_SHARDS];
        _Atomic uint64_t *head = full ? &sh->full : &sh->empty;
        /* Relaxed peek: an empty-looking shard is skipped without a CAS on
         * its line (the pop itself re-reads the head with acquire, O2). */
        if (LOW(mp_load_relaxed(head)) == 0)
            continue;
        struct mp_mag *m = full ? depot_pop(d, head, &sh->nfull, &sh->ws_min_full)
                                : depot_pop(d, head, &sh->nempty, &sh->ws_min_empty);
        if (m != NULL) {
            mp_tsan_acquire(m); /* pairs with the push's mp_tsan_release */
            *shp = sh;
            return m;
        }
    }
    return NULL;
}

struct mp_mag *mp_depot_pop_full(struct mp_depot *d)
{
    struct mp_depot_shard *sh;
    struct mp_mag *m = shard_pop(d, true, &sh);
    if (m != NULL) {
        mp_fetch_sub_relaxed(&sh->rounds_full, m->mag_rounds);
        mp_fetch_add_relaxed(&sh->pops_full, 1);
    }
    return m;
}

struct mp_mag *mp_depot_pop_empty(struct mp_depot *d)
{
    struct mp_depot_shard *sh;
    return shard_pop(d, false, &sh);
}

/* Close the interval: the minimum depth seen is how many magazines nobody
 * touched during it; the next interval starts from the current depth. */
static uint64_t ws_close_one(_Atomic uint64_t *min, _Atomic uint64_t *count)
{
    uint64_t cur = mp_load_relaxed(count);
    uint64_t seen = mp_xchg_relaxed(min, cur);
    return seen < cur ? seen : cur;
}

void mp_depot_ws_close(struct mp_depot *d, uint64_t *unused_full, uint64_t *unused_empty)
{
    uint64_t f = 0, e = 0;
    for (unsigned k = 0; k < MP_DEPOT_SHARDS; k++) {
        f += ws_close_one(&d->sh[k].ws_min_full, &d->sh[k].nfull);
        e += ws_close_one(&d->sh[k].ws_min_empty, &d->sh[k].nempty);
    }
    if (unused_full)
        *unused_full = f;
    if (unused_empty)
        *unused_empty = e;
}

/* ---- fork (fork.c) ---------------------------------------------------------- */

void mp_mag_area_fork_lock(void)
{
    pthread_mutex_lock(&g_area.lock);
}

void mp_mag_area_fork_unlock(void)
{
    pthread_mutex_unlock(&g_area.lock);
}
