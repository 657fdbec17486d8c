/*
 * magpool — a lock-free concurrent object pool (core API).
 *
 * Shape: Bonwick & Adams, "Magazines and Vmem" (USENIX 2001).  A cache hands
 * out fixed-size, constructed objects.  Almost every alloc/free is served by
 * the calling thread's magazines with no lock and no atomic read-modify-write;
 * misses go to a lock-free per-cache depot of full/empty magazines, and only
 * then to the slab layer.  Epoch-based reclamation (Concurrency Kit ck_epoch,
 * or the application's liburcu flavour) backs deferred frees.
 *
 * Threads are never registered by hand: state is created on a thread's first
 * slow path and flushed back to the depot when the thread exits.
 *
 * Errors: functions returning a pointer return NULL and set errno (EINVAL for
 * bad arguments, ENOMEM when memory cannot be had); functions returning int
 * return -1 and set errno.  Misuse that cannot be reported through a return
 * value (a double free, say) prints one line on stderr naming cache, address
 * and kind, then aborts (or continues, see MAGPOOL_DEBUG in README):
 *   `magpool: <cache>: <kind> at <address> [detail]`
 *
 * Misuse table (default mode; kind in quotes):
 *   magpool_free / _free_deferred / _free_bulk  | "NULL cache" (named after the
 *     of an object with a NULL cache            | call: `magpool: magpool_free: ...`)
 *   the object just freed, freed again in a row  | "double free"
 *     (magpool_free, _free_bulk, _free_deferred  |
 *     in any order, except deferred then         |
 *     magpool_free: MAGPOOL_VERIFY only)         |
 *   magpool_synchronize inside the caller's own  | "synchronize inside a read-side
 *     read-side section of that domain           | section" (cache `reclaim`)
 *   magpool_free / _free_bulk / _free_deferred  | "foreign pointer", "misaligned
 *     of a pointer that is not an object of c    | pointer" or "wrong cache", when the
 *     (malloc'd, stack, interior, another        | magazine holding it leaves the
 *     cache's object)                            | thread (magpool_free says when);
 *                                                | not with MAGPOOL_UNCHECKED
 * With MAGPOOL_VERIFY (or MAGPOOL_DEBUG=verify) every free, deferred or
 * not, is checked: "double free" (any earlier free), "foreign pointer",
 * "misaligned pointer", "wrong cache"; MAGPOOL_RED_ZONE / MAGPOOL_POISON add
 * "red zone overwritten" and "use after free".  Continue mode
 * (MAGPOOL_DEBUG_CONTINUE, MAGPOOL_DEBUG=continue) prints the line and drops
 * the call; a free with a NULL cache also sets EINVAL; a synchronize inside
 * a section returns without a grace period (it cannot wait for itself).
 *
 * Synchronization table ("safe" = may run concurrently with no outside lock):
 *
 *   call                          | vs. same cache     | vs. other caches
 *   ------------------------------+--------------------+-----------------
 *   magpool_alloc / _flags / bulk | safe               | safe
 *   magpool_free / bulk / deferred| safe               | safe
 *   magpool_read_enter / _leave   | safe (per thread, nestable)
 *   magpool_synchronize           | safe; NOT inside a read-side section (diagnosed)
 *   magpool_cache_shrink          | safe               | safe
 *   magpool_cache_stats / foreach | safe               | safe
 *   magpool_thread_flush          | safe (acts on the calling thread only)
 *   magpool_cache_create          | -                  | safe
 *   magpool_cache_destroy         | NOT with alloc/free/shrink of the same
 *                                 | cache in flight (like free(): the caller
 *                                 | orders it after every other use); other
 *                                 | threads may still HOLD magazines for it.
 *   magpool_free on a destroyed   | safe: the object is released and the
 *   cache's object                | cache's memory goes back with the last one
 *   any other use of a destroyed  | undefined, like memory after free()
 *   cache's handle                | (magpool_cache_destroy says why)
 *   fork()                        | safe while other threads are in any call:
 *                                 | the child may use every call (and start
 *                                 | threads).  Objects and magazines of the
 *                                 | parent's other threads stay theirs in the
 *                                 | child (counted, never reused).  A liburcu
 *                                 | domain follows liburcu's fork rules.
 */
#ifndef MAGPOOL_MAGPOOL_H
#define MAGPOOL_MAGPOOL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAGPOOL_API __attribute__((visibility("default")))

#define MAGPOOL_VERSION_MAJOR 1
#define MAGPOOL_VERSION_MINOR 1 /* 1.1: the rest of the kmalloc family (kmem_cache.h), mem_pools_init/fini */

/** Opaque cache handle. */
typedef struct magpool_cache magpool_cache_t;
/** Opaque reclamation domain (ck_epoch or a liburcu flavour). */
typedef struct magpool_domain magpool_domain_t;

/** Largest object a cache accepts (bigger: EINVAL). */
#define MAGPOOL_MAX_OBJECT_SIZE (1u << 20)
/** Size of the cache id space.  Id 0 is reserved (the all-zero state the
 *  inline hits of a debug or destroyed cache read), so at most
 *  MAGPOOL_MAX_CACHES - 1 = 4095 caches exist at once, the front ends'
 *  (kmalloc's 13 classes included) and destroyed caches whose objects are
 *  still out counted; past that, create fails with ENOMEM. */
#define MAGPOOL_MAX_CACHES 4096u
/** Magazine size bounds (rounds per magazine).  Within a cache's bounds the
 *  library moves its magazine size along a fixed ladder of sizes (described
 *  in src/cache/reap.c, "The magazine ladder"). */
#define MAGPOOL_MAG_MIN 1u
#define MAGPOOL_MAG_MAX 511u

/* ---- cache flags (struct magpool_config.flags) ---------------------------- */
/** Objects of a cache line or more start on cache-line boundaries. */
#define MAGPOOL_HWCACHE_ALIGN  0x0001u
/** Debug: fill free objects with a pattern, verify it on reuse. */
#define MAGPOOL_POISON         0x0002u
/** Debug: guard bytes after each object, verified on free. */
#define MAGPOOL_RED_ZONE       0x0004u
/** Debug: remember thread and caller of the last alloc and free. */
#define MAGPOOL_STORE_USER     0x0008u
/** Debug: full double-free and wrong-cache detection on every free. */
#define MAGPOOL_VERIFY         0x0010u
/** Object memory stays type-stable: slab pages go back to the system only
 *  after a grace period of the cache's reclamation domain. */
#define MAGPOOL_TYPESAFE       0x0020u
/** Debug problems print their diagnostic and continue instead of abort. */
#define MAGPOOL_DEBUG_CONTINUE 0x0040u
/** No backlog: full magazines that free paths give to the depot are
 *  reusable at once (see struct magpool_config.backlog). */
#define MAGPOOL_NO_BACKLOG     0x0080u
/** Skip the default check of magpool_free (see there): a pointer that is not
 *  an object of the cache corrupts it silently. */
#define MAGPOOL_UNCHECKED      0x0100u

/* ---- allocation flags ----------------------------------------------------- */
/** Zero the object's `size` bytes before returning it. */
#define MAGPOOL_ZERO    0x1u
/** Never make a system call or take a blocking lock: served from magazines,
 *  depot or partial slabs, else NULL with errno = EAGAIN. */
#define MAGPOOL_NOWAIT  0x2u
/** Never return NULL for want of memory: retry (reaping every cache,
 *  sleeping 1 ms) while the failure is ENOMEM.  That includes the cache's
 *  max_objects: the call waits until another thread frees an object (a
 *  program whose every object stays live waits for ever, as a Linux
 *  __GFP_NOFAIL allocation waits for reclaim).  A failure no retry can
 *  mend (EINVAL: NULL or destroyed cache, unknown flags) still returns NULL.
 *  Wins over MAGPOOL_NOWAIT (it may block). */
#define MAGPOOL_NOFAIL  0x4u

/** How to build a cache.  Zero-initialise and set what you need. */
struct magpool_config {
    const char *name;          /**< copied; NULL gives "anonymous"; at most 63 characters (longer: EINVAL) */
    size_t size;               /**< object size, 1 .. MAGPOOL_MAX_OBJECT_SIZE */
    size_t align;              /**< 0 = natural (8, or 16 for sizes >= 16); else a power of two <= 4096 */
    void (*ctor)(void *obj, void *arg); /**< run once when an object is first built */
    void (*dtor)(void *obj, void *arg); /**< run when its slab is torn down */
    void *arg;                 /**< private argument for ctor/dtor */
    unsigned flags;            /**< MAGPOOL_* cache flags (any other bit: EINVAL) */
    unsigned mag_min;          /**< smallest magazine size, 0 = default */
    unsigned mag_max;          /**< largest magazine size, 0 = default (511) */
    size_t max_objects;        /**< limit on constructed objects, 0 = none (past it: NULL, ENOMEM) */
    magpool_domain_t *domain;  /**< reclamation domain, NULL = magpool_domain_default() */
    /** Backlog, in bytes of objects.  When threads free what other threads
     *  allocate (producer/consumer) at a steady rate, the depot holds full
     *  magazines from free paths back in FIFO order, so an object is reused
     *  only after about this many bytes of other objects were freed: its
     *  cache lines have left the freeing core by then, and reuse costs no
     *  core-to-core transfer (DPDK's FIFO mempool ring works the same way).
     *  It engages after a flow of twice its size, holds at most 64
     *  magazines, and goes back on shrink, when the flow stops for a reap
     *  interval, or when the object limit or memory runs out.  Counted in
     *  in_depot (stats.backlog_mags).  0 = default: twice the L2 cache
     *  (sysconf), or 2 MiB.  MAGPOOL_NO_BACKLOG turns it off. */
    size_t backlog;
    /** Thread budget, in bytes of free objects: what all threads together
     *  may keep in their magazines of this cache.  The more threads use
     *  the cache, the smaller each one's new magazines (down the ladder
     *  described in src/cache/reap.c, not below mag_min), and they grow
     *  back when fewer do.  The cache's share of the process budget
     *  (MAGPOOL_PROCESS_BUDGET_MB in the environment, default 64 MiB,
     *  divided among the live caches) caps it too.  0 = default 4 MiB;
     *  SIZE_MAX = no budget (the process budget still applies). */
    size_t thread_budget;
};

/** Statistics of one cache.  Counters are kept per thread and summed here.
 *  At quiescence (no application thread allocating, freeing or shrinking
 *  in the cache): in_slabs + in_magazines + in_depot + deferred + in_use
 *  == constructed, exactly, even while the library's reaper thread or a
 *  domain's callbacks move objects between those places (the snapshot is
 *  read again if such a move overlapped it).  While threads run, an
 *  estimate. */
struct magpool_stats {
    char name[64];
    size_t object_size;        /**< size asked for */
    size_t stride;             /**< bytes an object takes in its slab */
    size_t align;
    uint64_t constructed;      /**< objects built (ctor run) and not yet destroyed */
    uint64_t in_use;           /**< handed out to the application */
    uint64_t in_magazines;     /**< in threads' loaded/previous magazines */
    uint64_t in_depot;         /**< in full magazines in the depot */
    uint64_t in_slabs;         /**< free in slabs */
    uint64_t deferred;         /**< freed deferred, awaiting a grace period */
    uint64_t slabs;            /**< slabs (partial + full + empty) */
    uint64_t slabs_empty;
    uint64_t pages;            /**< 4 KiB pages under the slabs */
    uint64_t bytes;            /**< pages * 4096 */
    uint64_t allocs;           /**< successful allocations (all paths) */
    uint64_t frees;
    uint64_t depot_allocs;     /**< full magazines taken from the depot */
    uint64_t depot_frees;      /**< full magazines given to the depot */
    uint64_t depot_contention; /**< failed depot compare-and-swaps */
    uint64_t depot_full_mags;  /**< full magazines in the depot, backlog included */
    uint64_t depot_empty_mags;
    uint64_t slab_allocs;      /**< objects taken from the slab layer */
    unsigned mag_size;         /**< current magazine size */
    uint64_t mag_resizes;
    uint64_t reaps;            /**< magazines torn down by working-set reaping or shrink */
    uint64_t alloc_failures;
    uint64_t max_objects;      /**< the limit, 0 = none */
    uint64_t backlog_mags;     /**< full magazines held back in the depot's backlog */
    unsigned backlog_slots;    /**< most magazines the backlog holds, 0 = none */
    /* Memory held for later allocations, by place (objects * stride;
     * magazine arrays not counted). */
    uint64_t threads_bytes;    /**< in threads' magazines (in_magazines) */
    uint64_t threads_idle_bytes; /**< of threads_bytes: in the magazines of threads
                                  *   that made no allocation or free at all
                                  *   between the reaper's last two passes (100 ms
                                  *   apart; 0 with the reaper off).  The reaper
                                  *   takes them back at its next pass. */
    uint64_t depot_bytes;      /**< in the depot (in_depot) */
    uint64_t slabs_free_bytes; /**< free in slabs (in_slabs) */
    /* Other threads' magazines taken back by magpool_cache_shrink,
     * magpool_reap and allocations that found no memory (a thread inside a
     * slow path or a hit at that moment keeps its own; see README). */
    uint64_t idle_reclaims;    /**< (thread, cache) states emptied */
    uint64_t idle_busy;        /**< left alone: the owner was inside a hit */
    uint64_t idle_asked;       /**< reclaims without membarrier(2): every owner was asked to
                                *   give back at its next slow path instead */
};

/** Create a cache.  NULL + EINVAL for a bad config (NULL cfg; size 0 or
 *  above MAGPOOL_MAX_OBJECT_SIZE; align not 0 or a power of two <= 4096;
 *  mag_max above MAGPOOL_MAG_MAX or below mag_min; a flag bit that is not a
 *  MAGPOOL_* cache flag; a name longer than 63 characters), ENOMEM for no
 *  memory or no free cache id (MAGPOOL_MAX_CACHES). */
MAGPOOL_API magpool_cache_t *magpool_cache_create(const struct magpool_config *cfg);

/** Allocate one constructed object.  NULL + errno on failure (EINVAL for a
 *  NULL cache, ENOMEM).  Using a handle after magpool_cache_destroy returned
 *  is undefined, as using memory after free() is (see there). */
MAGPOOL_API void *magpool_alloc(magpool_cache_t *c);

/** Allocate with MAGPOOL_ZERO / MAGPOOL_NOWAIT / MAGPOOL_NOFAIL. */
MAGPOOL_API void *magpool_alloc_flags(magpool_cache_t *c, unsigned aflags);

/** Free an object obtained from c, in constructed state.  NULL does nothing.
 *  What is caught, and where (each: one diagnostic line, then abort unless
 *  MAGPOOL_DEBUG=continue, which drops the pointer):
 *   - at the free itself: freeing the object just freed (an immediate
 *     double free);
 *   - before a magazine of freed objects leaves the thread (to the depot,
 *     at a flush or thread exit), every round is checked once against the
 *     slab layer (looked up, or found in the slab of the rounds before
 *     it): a pointer that is not the start of an object of c (malloc'd
 *     memory, a stack buffer, an interior pointer, another cache's object)
 *     is reported and dropped, so it never reaches another thread.  Not with
 *     MAGPOOL_UNCHECKED.  (The inline hit itself stays unchecked: a bad
 *     pointer may be handed out again by the same thread before its
 *     magazine leaves.)
 *   - caches with debug flags (or MAGPOOL_DEBUG in the environment) verify
 *     every free at once, including delayed double frees (A, B, A), which
 *     the default mode does not catch.
 *  The front ends (kmem_cache_free, mem_put, kfree) look every pointer up at
 *  the free itself. */
MAGPOOL_API void magpool_free(magpool_cache_t *c, void *obj);

/** Allocate n objects into objs: returns n, or 0 (nothing allocated, errno
 *  set: EINVAL for a NULL c, a NULL objs with n > 0, unknown flags).  n = 0
 *  returns 0. */
MAGPOOL_API size_t magpool_alloc_bulk(magpool_cache_t *c, size_t n, void **objs, unsigned aflags);

/** Free n objects of c (NULL entries skipped), each as magpool_free.  A NULL
 *  objs frees nothing (errno EINVAL); a NULL c with objects is a misuse
 *  ("NULL cache", naming the first). */
MAGPOOL_API void magpool_free_bulk(magpool_cache_t *c, size_t n, void *const *objs);

/** Free obj so that it is not reused until every read-side section of the
 *  cache's domain that was open at this call has been left.  Batched: one
 *  epoch operation per magazine of deferred objects.  Checked as magpool_free
 *  is: obj equal to the thread's last deferred free or to the object it just
 *  freed with magpool_free is a "double free"; MAGPOOL_VERIFY catches every
 *  double free (a deferred object is a freed one). */
MAGPOOL_API void magpool_free_deferred(magpool_cache_t *c, void *obj);

/** The cache that owns obj, or NULL (errno = EINVAL) if no live or zombie
 *  cache does or obj is not at an object's start. */
MAGPOOL_API magpool_cache_t *magpool_cache_of(const void *obj);

/** Enter / leave a read-side section of domain d (NULL = default).  Nestable.
 *  For a liburcu domain, the calling thread must be registered with that
 *  flavour, as liburcu requires. */
MAGPOOL_API void magpool_read_enter(magpool_domain_t *d);
MAGPOOL_API void magpool_read_leave(magpool_domain_t *d);

/** Wait for a grace period of d.  When it returns, every deferred free the
 *  calling thread issued before the call is reusable, and so is every batch
 *  other threads had already sealed (a batch is sealed when its magazine
 *  fills, or its thread flushes, shrinks, synchronizes or exits).  Not inside
 *  a read-side section of d: that would wait for itself, and is a misuse
 *  (see the table above; continue mode returns without a grace period).
 *  Destroyed caches are freed after a grace period of
 *  the default domain too: under LeakSanitizer, call
 *  magpool_synchronize(NULL) before exit, or caches destroyed just before it
 *  are reported as (indirect) leaks. */
MAGPOOL_API void magpool_synchronize(magpool_domain_t *d);

/** The default domain (Concurrency Kit ck_epoch). */
MAGPOOL_API magpool_domain_t *magpool_domain_default(void);

struct rcu_flavor_struct;
/** A domain backed by the application's liburcu flavour, e.g.
 *  magpool_domain_urcu(&urcu_memb_flavor).  Deferred frees of caches in it
 *  wait for that flavour's readers (call_rcu / synchronize_rcu).  Returns the
 *  same domain for the same flavour.  NULL + EINVAL for a NULL flavour. */
MAGPOOL_API magpool_domain_t *magpool_domain_urcu(const struct rcu_flavor_struct *flavor);

/** Give back what c holds beyond its live objects: the caller's magazines,
 *  the depot, empty slabs (pages back to the system).  0, or -1 + EINVAL. */
MAGPOOL_API int magpool_cache_shrink(magpool_cache_t *c);

/** Shrink every cache. */
MAGPOOL_API void magpool_reap(void);

/** Destroy c.  Returns the number of objects still live (0 when clean; they
 *  stay valid and a later magpool_free(c, obj) of each is safe, the memory
 *  going back with the last one), or -1 + EINVAL for a NULL cache.
 *  Afterwards c is dead, like a pointer passed to free(): every other use of
 *  it (alloc, shrink, stats, a second destroy) is undefined.  A best-effort
 *  aid, not a promise: while the destroyed cache's memory has not been
 *  reused such calls fail with EINVAL (a second destroy: -1 + EINVAL), but
 *  once its live objects are back and a grace period has passed, a new cache
 *  may be created at the same address and c would then name it.
 *
 *  Memory: the magazines other threads hold for c come back at once from
 *  threads that are idle (a membarrier handshake; without membarrier, at
 *  each thread's next allocation or free of any cache, or its exit), and
 *  c's pages go back to the system.  When the last cache is destroyed the
 *  library also gives back what it kept for reuse (free magazine slots,
 *  metadata chunks, page-map slices): what stays is a constant per live
 *  thread that ever used a cache (its record and epoch record, packed in
 *  chunks of their own, about 2 KiB measured, until it exits) and about
 *  60 KiB besides (bench/idle.c measures it: 56 KiB with one thread,
 *  0.54 MiB with 256, 2026-12-04). */
MAGPOOL_API long magpool_cache_destroy(magpool_cache_t *c);

/** Snapshot c's statistics.  0, or -1 + EINVAL. */
MAGPOOL_API int magpool_cache_stats(magpool_cache_t *c, struct magpool_stats *st);

/** Write every live cache's statistics to f (NULL = stdout) as one JSON
 *  object, {"caches": [{"name": ..., <every struct magpool_stats field by
 *  its name>: number, ...}, ...]}, and a newline.  Names are escaped as
 *  JSON strings.  0, or -1 + errno from the stream. */
MAGPOOL_API int magpool_stats_dump_json(FILE *f);

/** Return the calling thread's magazines (all caches) to the depots. */
MAGPOOL_API void magpool_thread_flush(void);

/** Call fn on every live cache until it returns non-zero (that value is
 *  returned; 0 when all were visited).  fn must not create or destroy caches. */
MAGPOOL_API int magpool_cache_foreach(int (*fn)(magpool_cache_t *c, void *arg), void *arg);

/** Name and object size of a cache (NULL / 0 for NULL). */
MAGPOOL_API const char *magpool_cache_name(const magpool_cache_t *c);
MAGPOOL_API size_t magpool_cache_object_size(const magpool_cache_t *c);

/** Fault injection for tests: make the page layer's mmap/madvise fail with
 *  probability ppm / 1e6 (0 turns it off; above 1000000: 1000000).  Also
 *  read from the environment variable MAGPOOL_FAULT_PPM at start, which must
 *  be a decimal number 0..1000000: any other value prints one line
 *  `magpool: MAGPOOL_FAULT_PPM: invalid value '<v>' ignored (...)` and is
 *  ignored. */
MAGPOOL_API void magpool_fault_inject(unsigned ppm);

/* ---- the magazine hit, inline ---------------------------------------------
 * magpool_alloc and magpool_free are also defined here, for the compiler to
 * inline into the caller: a hit pops or pushes the calling thread's loaded
 * magazine in a few instructions, with no call; only a miss (and every call
 * with a NULL cache, a debug, checked or destroyed cache) calls the library.
 *
 * One definition.  The hit below (magpool_hit_pop_ / magpool_hit_push_) is
 * the only one: the library's own magpool_alloc / magpool_free, the front
 * ends (kmem_cache_alloc, mem_get, kmalloc, ...) and these inline versions
 * all expand it, on the same structure (struct magpool_hit_ is the first
 * member of the library's per-thread cache state, and struct
 * magpool_cache_head_ the first member of a cache).  Every field it shares
 * with other threads is a C11 atomic accessed with relaxed or release order
 * (plain moves on x86-64 and arm64), so there is no data race and no type
 * punning, in the library or in the application.
 *
 * Opt-out, not opt-in.  The inline hit is on by default because it is what
 * the pool is for (the hit is the whole cost of an alloc/free pair that
 * hits); the price is that the fields above are part of the ABI of
 * libmagpool.so.1.  The header and the library each carry a layout number
 * (MAGPOOL_HIT_LAYOUT_); every miss passes the header's, and a library that
 * finds another one prints
 *   `magpool: this program's inline hits use layout N, libmagpool uses M: rebuild it against the installed magpool.h`
 * and aborts, at the first miss of the first call (every thread's first
 * call misses).  Every change of layout bumps the number (layout 3: top
 * and bounds as pointers, the cache head's byte offset; layout 4: the
 * in-hit mark is bit 0 of top, not a busy byte), so a program
 * built against an older magpool.h stops instead of corrupting.  Define
 * MAGPOOL_NO_INLINE before including this header to always call the
 * library (no layout dependence at all).
 *
 * Used by C11 compilers that define __GNUC__ (gcc, clang) when optimising,
 * and not under AddressSanitizer or ThreadSanitizer, whose builds call the
 * library; taking the functions' address, calling them through a pointer,
 * C++ and unoptimised code reach the library's exported functions (GNU
 * `extern inline`).  Behaviour is the same either way (same checks, same
 * errors, the same immediate double-free diagnostic).
 *
 * The in-hit mark: a hit loads top, stores it back with bit 0 set (top
 * is a slot address, so that bit is otherwise 0) before it reads a bound,
 * and ends with a release store of the new top (or of the same top, on a
 * miss), with no fence and no read-modify-write: the store that commits a
 * hit is the one that clears the mark.  It lets the library take the
 * magazines of a thread that is alive but idle (a shrink or reap, issue
 * "bounded memory"): the reclaimer swaps the bounds low and high, runs
 * membarrier(2), and finds the owner either outside any hit (bit 0 clear:
 * its next hit reads the swapped bounds and misses) or inside one (bit 0
 * set: it swaps them back and leaves that cache alone).  The reclaimer
 * never writes top.  The proof is at the top of src/cache/idle.c.
 * Calling magpool from a signal handler that interrupted a magpool call on
 * the same cache is not supported (it never was: the two hits would share
 * one top). */

/** Layout number of the hit's shared fields (internal; ABI). */
#define MAGPOOL_HIT_LAYOUT_ 4u

/** Out-of-line continuations of the inline hits (internal; ABI): the whole
 *  library call, after checking the caller's layout number. */
MAGPOOL_API void *magpool_hit_alloc_miss_(magpool_cache_t *c, unsigned layout);
MAGPOOL_API void magpool_hit_free_miss_(magpool_cache_t *c, void *obj, unsigned layout);
/** The continuations of layout 1, before the layout number (internal; ABI):
 *  a program built against that magpool.h calls them; they report the
 *  mismatch and abort. */
MAGPOOL_API void *magpool_alloc_miss_(magpool_cache_t *c);
MAGPOOL_API void magpool_free_miss_(magpool_cache_t *c, void *obj);

#if defined(__GNUC__) && !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && \
    !defined(__STDC_NO_ATOMICS__)
#include <stdatomic.h>
/** 1 where the hit's definition below is available. */
#define MAGPOOL_HIT_DEFINED_ 1

/** The fields a hit touches: the head of a thread's 64-byte state for one
 *  cache (internal; ABI).  The loaded magazine's rounds are the slots
 *  [base, top), base[-1] is always NULL; an alloc hits while top > low, a
 *  free while top < high.  Loaded: low = base, high = base + capacity.
 *  Nothing loaded: all three NULL.  Stopped by an idle-thread reclaim
 *  (src/cache/idle.c): low and high swapped, so both hits miss whatever top
 *  of that magazine they read.  Bit 0 of top is set while the owner is
 *  inside a hit.  Written by the owner thread only, except low and high,
 *  which the reclaim swaps (and, once it took the magazines, high = NULL). */
struct magpool_hit_ {
    void **_Atomic top;      /* the loaded magazine's next free slot */
    void **_Atomic low;      /* an alloc hits while top > low */
    void **_Atomic high;     /* a free hits while top < high */
    _Atomic uint64_t allocs; /* allocations by this thread */
    uint16_t pad_;
    /* the library's statistics mirrors (no hit touches them) */
    _Atomic uint16_t lib_prev_rounds_;
    _Atomic uint32_t lib_def_rounds_;
};
/* The helpers below are GNU extern inline, like magpool_alloc / magpool_free
 * further down, not static: an inline definition with external linkage may
 * not refer to an identifier with internal linkage (C11 6.7.4p3), and gcc
 * says so at every inline magpool_alloc / magpool_free ("is static but used
 * in inline function ... which is not static", an error with -Werror).
 * always_inline: they are never called, so no TU and not the library needs
 * an external definition (there is none). */
#define MAGPOOL_HIT_FN_ extern __inline__ __attribute__((gnu_inline, always_inline))

/** First member of a cache (internal; ABI): the byte offset of its state
 *  in each thread's array (its index times MAGPOOL_HIT_STRIDE_); 0 (an
 *  all-zero state) sends every call to the library. */
struct magpool_cache_head_ {
    _Atomic uint32_t fast_off;
};
/** Bytes between two caches' states in a thread's array (internal; ABI). */
#define MAGPOOL_HIT_STRIDE_ 64u
/** The calling thread's array of states (internal; ABI).  Written only by
 *  its own thread. */
extern __thread void *magpool_tcs_ __attribute__((tls_model("initial-exec")));

/* The calling thread's state for cache c (not NULL). */
MAGPOOL_HIT_FN_ struct magpool_hit_ *magpool_hit_of_(const void *c)
{
    /* Relaxed: the offset changes only at create and destroy, which the
     * caller orders against its own calls (synchronization table above).
     * A byte offset, not an index: no multiply on the hit. */
    uint32_t off = atomic_load_explicit(&((const struct magpool_cache_head_ *)c)->fast_off, memory_order_relaxed);
    struct magpool_hit_ *h = (struct magpool_hit_ *)((char *)magpool_tcs_ + off);
    /* The state's address in a register of its own (the empty asm emits
     * nothing): clang otherwise addresses every field as array + offset, a
     * base + index mode, and on the Intel Xeon we measure on an alloc/free
     * loop whose loads and stores of top are all indexed ran 3x slower
     * (5.5 ns a pair against 1.8, same instructions otherwise; gcc already
     * computed the address once). */
    __asm__("" : "+r"(h));
    return h;
}

/* Enter a hit on h: load top, store it back marked (bit 0; src/cache/
 * idle.c), and return it as loaded.  The marking store is relaxed: what
 * orders it before the hit's loads of a bound, as seen by a reclaimer, is
 * the reclaimer's membarrier(2) (idle.c, case (b)), not the language; the
 * signal fence only keeps the compiler from moving those loads above it (it
 * emits nothing; without it a compiler could read the bound before the
 * mark, and a reclaimer could take a magazine the hit then uses).  Only the
 * owner writes its own top, so it loads it
 * unmarked; the one exception is the library's shared state of threads
 * that have none of their own, where other threads' marks add up to small
 * numbers and whose bounds make every hit miss whatever top is (src/cache/
 * thread.c). */
MAGPOOL_HIT_FN_ void **magpool_hit_enter_(struct magpool_hit_ *h)
{
    void **top = atomic_load_explicit(&h->top, memory_order_relaxed);
    /* + 1, not | 1: the same on an unmarked top, and one instruction */
    atomic_store_explicit(&h->top, (void **)((__UINTPTR_TYPE__)top + 1u), memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    return top;
}
/* Leave a hit on h: top becomes `top` (the hit's new top, or the one enter
 * returned), unmarked.  Release (a plain store on x86-64): pairs with the
 * reclaimer's acquire load of top (idle.c, R3), so every access of the hit
 * (the slot it read or wrote, allocs) happens before the reclaimer takes
 * the magazine.  Relaxed, a reclaimer could give back a magazine without
 * the round this hit just pushed, or with the one it just popped. */
MAGPOOL_HIT_FN_ void magpool_hit_leave_(struct magpool_hit_ *h, void **top)
{
    atomic_store_explicit(&h->top, top, memory_order_release);
}

/* The alloc hit: 1 with *objp the top round of h's loaded magazine, or 0
 * (a miss: nothing loaded, empty, or stopped).  Each branch leaves the hit
 * itself, so a caller's test of the result folds into the branch. */
MAGPOOL_HIT_FN_ int magpool_hit_pop_(struct magpool_hit_ *h, void **objp)
{
    void **top = magpool_hit_enter_(h);
    /* top > low: a round is loaded and the state is not stopped (uintptr_t:
     * NULL and the swapped bounds compare as numbers) */
    if (__builtin_expect((__UINTPTR_TYPE__)top > (__UINTPTR_TYPE__)atomic_load_explicit(&h->low, memory_order_relaxed),
                         1)) {
        top--;
        atomic_store_explicit(&h->allocs, atomic_load_explicit(&h->allocs, memory_order_relaxed) + 1u,
                              memory_order_relaxed);
        *objp = *top;
        magpool_hit_leave_(h, top);
        return 1;
    }
    magpool_hit_leave_(h, top);
    return 0;
}

/* The free hit: push obj (not NULL) onto h's loaded magazine: 1, or 0 (a
 * miss) if it is full, nothing is loaded or stopped, or obj is the top round
 * (an immediate double free, which the library diagnoses). */
MAGPOOL_HIT_FN_ int magpool_hit_push_(struct magpool_hit_ *h, void *obj)
{
    void **top = magpool_hit_enter_(h);
    /* top < high: room, and the state is loaded and not stopped */
    if (__builtin_expect((__UINTPTR_TYPE__)top < (__UINTPTR_TYPE__)atomic_load_explicit(&h->high, memory_order_relaxed),
                         1)) {
        if (__builtin_expect(top[-1] != obj, 1)) { /* an empty magazine's top[-1] is its NULL guard */
            *top = obj;
            magpool_hit_leave_(h, top + 1);
            return 1;
        }
    }
    magpool_hit_leave_(h, top);
    return 0;
}
#endif /* MAGPOOL_HIT_DEFINED_ */

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MAGPOOL_SANITIZED_ 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MAGPOOL_SANITIZED_ 1
#endif

#if defined(MAGPOOL_HIT_DEFINED_) && defined(__OPTIMIZE__) && !defined(MAGPOOL_NO_INLINE) && \
    !defined(MAGPOOL_SANITIZED_) && !defined(MAGPOOL_BUILDING_LIBRARY_)
/** 1 where this header's inline hits are in use, else 0. */
#define MAGPOOL_INLINE_HITS 1

extern __inline __attribute__((gnu_inline, always_inline)) void *magpool_alloc(magpool_cache_t *c)
{
    void *obj;
    if (__builtin_expect(c != NULL && magpool_hit_pop_(magpool_hit_of_(c), &obj), 1))
        return obj;
    return magpool_hit_alloc_miss_(c, MAGPOOL_HIT_LAYOUT_);
}

extern __inline __attribute__((gnu_inline, always_inline)) void magpool_free(magpool_cache_t *c, void *obj)
{
    if (__builtin_expect(obj == NULL, 0))
        return;
    if (__builtin_expect(c != NULL && magpool_hit_push_(magpool_hit_of_(c), obj), 1))
        return;
    magpool_hit_free_miss_(c, obj, MAGPOOL_HIT_LAYOUT_);
}
#else
#define MAGPOOL_INLINE_HITS 0
#endif

#ifdef __cplusplus
}
#endif
#endif /* MAGPOOL_MAGPOOL_H */
