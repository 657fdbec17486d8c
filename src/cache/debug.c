/*
 * Debug layer (contract: src/cache/debug.h).
 *
 * What this layer guarantees
 *  - Off by default and free when off: the engine asks mp_debug_extra() at
 *    cache creation; a cache with no debug flag gets 0 extra bytes and never
 *    calls the hooks below (its objects carry no overhead), and nothing here
 *    runs on the magazine fast path.  MAGPOOL_DEBUG and mp_under_memcheck()
 *    are read once (pthread_once) and cached.
 *  - A debug cache's objects carry a trailer placed right after the object's
 *    `size` bytes (the slab layer lays out stride = round_up(size + extra)):
 *
 *      obj          obj+size        obj+rec                                 obj+size+extra
 *      | object ... | red zone .... | state | request | alloc owner | free owner |
 *                    (0xbb bytes;    (8 B)   (8 B,     (tid, caller) (tid, caller)
 *                     >= 8 with              kmalloc    only with MAGPOOL_STORE_USER
 *                     MAGPOOL_RED_ZONE,      classes
 *                     else padding to 8)     with red zones)
 *
 *    rec = round_up(size, 8) + (RED_ZONE ? 8 : 0); the trailer is 8-aligned
 *    because objects are.  The state word is MP_DBG_FREE or MP_DBG_ALLOC, so
 *    every double free is caught (not only the immediate one), and a state
 *    that is neither means the trailer was overwritten.
 *  - Poisoning (MAGPOOL_POISON): a free object's `size` bytes are 0x6b with a
 *    last byte 0xa5 (Linux's POISON_FREE / POISON_END); checked when the
 *    object is handed out again, so a write after free is reported at the
 *    next allocation.  Objects of caches with a constructor are NEVER
 *    poisoned (Linux does the same): their free state is the constructed
 *    state, which poison would destroy (cache_dflags() drops the flag).
 *  - Sanitizers: under ASan a freed debug object's bytes are poisoned after
 *    the checks and unpoisoned before the next ones; under Valgrind memcheck
 *    each cache is a memcheck mempool (VALGRIND_CREATE_MEMPOOL on the cache
 *    address, lazily) and objects are VALGRIND_MEMPOOL_ALLOC'd / _FREE'd, so
 *    memcheck reports a use after free.  Those client requests are issued
 *    only when mp_under_memcheck(): LD_PRELOAD names memcheck's preload
 *    library, so callgrind and plain runs pay nothing.
 *  - kmalloc classes (MP_KMALLOC_CACHE) with red zones record the size
 *    kmalloc was asked for (mp_debug_set_request) and fill the bytes from it
 *    to the class size with the red-zone byte (poisoned for ASan too); the
 *    free checks them: "kmalloc red zone overwritten" (SLUB does the same
 *    since Linux 6.1).  ksize() widens the request to the class size, as
 *    Linux's does.
 *  - Deferred frees: mp_debug_on_free_deferred does the checks at once (so a
 *    double free is caught at the call) but leaves the object readable;
 *    mp_debug_on_reclaim poisons it when its grace period has passed.
 *    mp_debug_on_free is the two back to back.
 *  - Every problem is ONE line on stderr, written with a single write(2):
 *      magpool: <cache>: <kind> at <addr> [detail]
 *    then abort(), unless the cache or MAGPOOL_DEBUG says "continue"; then
 *    the faulty free is dropped (mp_debug_on_free returns false).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cache_impl.h" /* the hooks read the cache's flags, ctor and size */
#include "debug.h"
#include "slab.h" /* only for the MP_OBJ_* codes mp_obj_check returns */
#include "report.h"
#include "sanitize.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define MP_HAVE_VALGRIND 1
#endif
#endif

#define MP_DBG_FREE 0x46524545d00dfeedull  /* state word of a free object */
#define MP_DBG_ALLOC 0x414c4c4f0badcafeull /* state word of an allocated object */
#define POISON_FREE 0x6b
#define POISON_END 0xa5
#define RED_BYTE 0xbb


struct owner {
    uint64_t tid;
    const void *caller;
};

static inline size_t rec_offset(unsigned flags, size_t size)
{
    return ((size + 7) & ~(size_t)7) + ((flags & MAGPOOL_RED_ZONE) ? 8 : 0);
}

/* A kmalloc class with red zones: each object's trailer also holds the size
 * kmalloc was asked for (after the state word), and the bytes between it and
 * the class size are a red zone too (as SLUB's kmalloc redzone, Linux 6.1). */
static inline bool tracks_request(unsigned flags)
{
    return (flags & MAGPOOL_RED_ZONE) && (flags & MP_KMALLOC_CACHE);
}

size_t mp_debug_extra(unsigned flags, size_t size)
{
    if (!(flags & MP_DEBUG_FLAGS))
        return 0;
    return rec_offset(flags, size) - size + sizeof(uint64_t) + (tracks_request(flags) ? sizeof(uint64_t) : 0) +
           ((flags & MAGPOOL_STORE_USER) ? 2 * sizeof(struct owner) : 0);
}

/* The flags that shape c's debug behaviour: the core's effective flags
 * (config | MAGPOOL_DEBUG), minus poisoning when c has a constructor. */
static inline unsigned cache_dflags(const magpool_cache_t *c)
{
    unsigned f = c->c_flags;
    if (c->c_ctor != NULL)
        f &= ~MAGPOOL_POISON;
    return f;
}

static inline uint64_t *state_of(unsigned flags, size_t size, void *obj)
{
    return (uint64_t *)((char *)obj + rec_offset(flags, size));
}

/* The requested size (tracks_request(flags) only). */
static inline uint64_t *request_of(unsigned flags, size_t size, void *obj)
{
    return state_of(flags, size, obj) + 1;
}

static inline struct owner *owners_of(unsigned flags, size_t size, void *obj)
{
    /* [0] alloc, [1] free */
    return (struct owner *)(state_of(flags, size, obj) + 1 + (tracks_request(flags) ? 1 : 0));
}

static uint64_t my_tid(void)
{
    static _Thread_local uint64_t tid __attribute__((tls_model("initial-exec")));
    if (tid == 0)
        tid = (uint64_t)syscall(SYS_gettid);
    return tid;
}

static __attribute__((noinline, cold)) void problem(magpool_cache_t *c, unsigned flags, size_t size,
                                                    void *obj, const char *kind, const char *fmt, ...)
{
    char detail[256];
    size_t len = 0;
    detail[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        len = n < 0 ? 0 : (size_t)n < sizeof detail ? (size_t)n : sizeof detail - 1;
    }
    if ((flags & MAGPOOL_STORE_USER) && len < sizeof detail) {
        const struct owner *o = owners_of(flags, size, obj);
        snprintf(detail + len, sizeof detail - len,
                 "%s[last alloc: thread %llu caller %p; last free: thread %llu caller %p]",
                 len ? " " : "", (unsigned long long)o[0].tid, o[0].caller,
                 (unsigned long long)o[1].tid, o[1].caller);
    }
    mp_report(magpool_cache_name(c), obj, kind, detail[0] ? detail : NULL, mp_continues(flags));
}

/* ---- valgrind memcheck ----------------------------------------------------- */

#ifdef MP_HAVE_VALGRIND
static pthread_mutex_t vg_lock = PTHREAD_MUTEX_INITIALIZER;
static void vg_pool(magpool_cache_t *c)
{
    pthread_mutex_lock(&vg_lock);
    if (!VALGRIND_MEMPOOL_EXISTS(c))
        VALGRIND_CREATE_MEMPOOL(c, 0, 0);
    pthread_mutex_unlock(&vg_lock);
}
static void vg_alloc(magpool_cache_t *c, void *obj, size_t size)
{
    if (!mp_under_memcheck())
        return;
    vg_pool(c);
    VALGRIND_MEMPOOL_ALLOC(c, obj, size);
    /* objects are handed out in constructed state: defined, not "undefined" */
    VALGRIND_MAKE_MEM_DEFINED(obj, size);
}
static void vg_free(magpool_cache_t *c, void *obj)
{
    if (!mp_under_memcheck())
        return;
    vg_pool(c);
    VALGRIND_MEMPOOL_FREE(c, obj);
}
#else
static void vg_alloc(magpool_cache_t *c, void *obj, size_t size)
{
    (void)c, (void)obj, (void)size;
}
static void vg_free(magpool_cache_t *c, void *obj)
{
    (void)c, (void)obj;
}
#endif

/* ---- hooks ----------------------------------------------------------------- */

static void fill_poison(void *obj, size_t size)
{
    memset(obj, POISON_FREE, size);
    ((unsigned char *)obj)[size - 1] = POISON_END;
}

/* Offset of the first byte that breaks the poison pattern, or -1. */
static long check_poison(const void *obj, size_t size)
{
    const unsigned char *p = obj;
    for (size_t i = 0; i + 1 < size; i++)
        if (p[i] != POISON_FREE)
            return (long)i;
    return p[size - 1] == POISON_END ? -1 : (long)(size - 1);
}

/* Offset of the first byte of obj[from, end) that is not RED_BYTE, or -1. */
static long check_red_from(const void *obj, size_t from, size_t end)
{
    const unsigned char *p = obj;
    for (size_t i = from; i < end; i++)
        if (p[i] != RED_BYTE)
            return (long)i;
    return -1;
}

static long check_red(unsigned flags, size_t size, const void *obj)
{
    return check_red_from(obj, size, rec_offset(flags, size));
}

void mp_debug_init_object(magpool_cache_t *c, void *obj)
{
    unsigned flags = cache_dflags(c);
    if (!(flags & MP_DEBUG_FLAGS))
        return;
    size_t size = c->c_size;
    mp_asan_unpoison(obj, size + mp_debug_extra(flags, size));
    if (flags & MAGPOOL_RED_ZONE)
        memset((char *)obj + size, RED_BYTE, rec_offset(flags, size) - size);
    *state_of(flags, size, obj) = MP_DBG_FREE;
    if (tracks_request(flags))
        *request_of(flags, size, obj) = size;
    if (flags & MAGPOOL_STORE_USER)
        memset(owners_of(flags, size, obj), 0, 2 * sizeof(struct owner));
    if (flags & MAGPOOL_POISON)
        fill_poison(obj, size);
}

void mp_debug_on_alloc(magpool_cache_t *c, void *obj, const void *caller)
{
    unsigned flags = cache_dflags(c);
    size_t size = c->c_size;
    if (flags & MP_DEBUG_FLAGS) {
        mp_asan_unpoison(obj, size + mp_debug_extra(flags, size));
        uint64_t *st = state_of(flags, size, obj);
        if (*st != MP_DBG_FREE)
            problem(c, flags, size, obj, "corrupted free object",
                    "(state word %#llx: written past the object's end?)", (unsigned long long)*st);
        long off;
        if ((flags & MAGPOOL_POISON) && (off = check_poison(obj, size)) >= 0)
            problem(c, flags, size, obj, "use after free",
                    "(poison overwritten at offset %ld: byte %#x)", off, ((unsigned char *)obj)[off]);
        if ((flags & MAGPOOL_RED_ZONE) && (off = check_red(flags, size, obj)) >= 0)
            problem(c, flags, size, obj, "red zone overwritten",
                    "(while free, at offset %ld)", off);
        *st = MP_DBG_ALLOC;
        if (tracks_request(flags))
            *request_of(flags, size, obj) = size; /* kmalloc narrows it: mp_debug_set_request */
        if (flags & MAGPOOL_STORE_USER) {
            struct owner *o = owners_of(flags, size, obj);
            o[0].tid = my_tid();
            o[0].caller = caller;
        }
    }
    vg_alloc(c, obj, size);
}

bool mp_debug_tracks_request(const magpool_cache_t *c)
{
    return tracks_request(cache_dflags(c));
}

void mp_debug_set_request(magpool_cache_t *c, void *obj, size_t req)
{
    unsigned flags = c != NULL ? cache_dflags(c) : 0;
    if (!tracks_request(flags) || req > c->c_size)
        return;
    size_t size = c->c_size;
    *request_of(flags, size, obj) = req;
    mp_asan_unpoison(obj, size);
    memset((char *)obj + req, RED_BYTE, size - req);
    mp_asan_poison((char *)obj + req, size - req); /* ASan reports the overflow at once */
}

/* The checks of a free, then mark the object free.  false: the free must be
 * dropped (problem diagnosed, continuing). */
static bool free_checks(magpool_cache_t *c, unsigned flags, size_t size, void *obj, const void *caller)
{
    int why = 0;
    magpool_cache_t *owner = mp_obj_check(obj, c, &why);
    if (owner != c || why != 0) {
        const char *kind = mp_obj_problem(why);
        char detail[128] = "";
        if (owner != NULL)
            snprintf(detail, sizeof detail, "(object belongs to %s)", magpool_cache_name(owner));
        mp_report(magpool_cache_name(c), obj, kind, detail[0] ? detail : NULL, mp_continues(flags));
        return false;
    }
    mp_asan_unpoison(obj, size + mp_debug_extra(flags, size)); /* the core may have poisoned the stride */
    uint64_t *st = state_of(flags, size, obj);
    if (*st == MP_DBG_FREE) {
        problem(c, flags, size, obj, "double free", NULL);
        return false;
    }
    if (*st != MP_DBG_ALLOC) {
        problem(c, flags, size, obj, "corrupted object",
                "(state word %#llx: written past the object's end?)", (unsigned long long)*st);
        return false;
    }
    long off;
    if ((flags & MAGPOOL_RED_ZONE) && (off = check_red(flags, size, obj)) >= 0) {
        problem(c, flags, size, obj, "red zone overwritten", "(at offset %ld, byte %#x)", off,
                ((unsigned char *)obj)[off]);
        /* continuing: repair it so the next check reports a new overrun only */
        memset((char *)obj + size, RED_BYTE, rec_offset(flags, size) - size);
    }
    if (tracks_request(flags)) {
        uint64_t *req = request_of(flags, size, obj);
        if (*req < size && (off = check_red_from(obj, (size_t)*req, size)) >= 0)
            problem(c, flags, size, obj, "kmalloc red zone overwritten",
                    "(at offset %ld, byte %#x; %llu bytes requested of %zu)", off, ((unsigned char *)obj)[off],
                    (unsigned long long)*req, size);
        *req = size;
    }
    *st = MP_DBG_FREE;
    if (flags & MAGPOOL_STORE_USER) {
        struct owner *o = owners_of(flags, size, obj);
        o[1].tid = my_tid();
        o[1].caller = caller;
    }
    return true;
}

bool mp_debug_on_free(magpool_cache_t *c, void *obj, const void *caller)
{
    unsigned flags = cache_dflags(c);
    if ((flags & MP_DEBUG_FLAGS) && !free_checks(c, flags, c->c_size, obj, caller))
        return false;
    mp_debug_on_reclaim(c, obj);
    return true;
}

bool mp_debug_on_free_deferred(magpool_cache_t *c, void *obj, const void *caller)
{
    unsigned flags = cache_dflags(c);
    return !(flags & MP_DEBUG_FLAGS) || free_checks(c, flags, c->c_size, obj, caller);
}

void mp_debug_on_reclaim(magpool_cache_t *c, void *obj)
{
    unsigned flags = cache_dflags(c);
    size_t size = c->c_size;
    if (flags & MAGPOOL_POISON)
        fill_poison(obj, size);
    if (flags & MP_DEBUG_FLAGS)
        mp_asan_poison(obj, size);
    vg_free(c, obj);
}

/* ---- fork (fork.c) ---------------------------------------------------------- */

void mp_debug_fork_lock(void)
{
#ifdef MP_HAVE_VALGRIND
    pthread_mutex_lock(&vg_lock);
#endif
}

void mp_debug_fork_unlock(void)
{
#ifdef MP_HAVE_VALGRIND
    pthread_mutex_unlock(&vg_lock);
#endif
}
