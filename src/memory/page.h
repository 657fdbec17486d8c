/*
 * Page layer (owner: src/memory/page.c).  CONTRACT — see page.c for the design.
 *
 * One large virtual arena is reserved at start (PROT_NONE, MAP_NORESERVE);
 * 4 MiB regions inside it are committed on demand with mmap(MAP_FIXED) and
 * split by a buddy allocator into blocks of 2^order 4 KiB pages, each block
 * aligned to its size.  A page map (one word per 4 KiB page, in its own
 * lazily-touched NORESERVE mapping) records an owner pointer per page, so the
 * owner of any address is found in O(1) with no per-object header, and
 * mp_page_owner() never faults whatever address it is given.  Freed blocks are
 * returned to the system with madvise(MADV_DONTNEED) before they re-enter the
 * free lists.  Spans larger than a region take whole contiguous regions and go
 * back with mmap(PROT_NONE, MAP_FIXED) when freed.
 *
 * All functions are thread-safe.  The page lock is a pthread mutex (slow path
 * only); MAGPOOL_NOWAIT callers only try-lock it and never make a system call.
 */
#ifndef MP_PAGE_H
#define MP_PAGE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"

#define MP_PAGE_SHIFT 12
#define MP_PAGE_SIZE ((size_t)1 << MP_PAGE_SHIFT)
#define MP_MAX_ORDER 10 /* largest buddy block: 2^10 pages = 4 MiB = one region */

/* Idempotent; called by every entry point that needs it.  0 or -1 + errno. */
int mp_page_init(void);

/* 2^order pages, aligned to their size, owner set to NULL.  Contents are
 * unspecified (zero when fresh from the system).  aflags: MAGPOOL_NOWAIT.
 * NULL + ENOMEM (system refused / fault injected) or EAGAIN (NOWAIT could not
 * be served without a lock wait or system call). */
void *mp_pages_alloc(unsigned order, unsigned aflags);
void mp_pages_free(void *p, unsigned order);

/* Give wholly free regions back to the system with their page-map and
 * page-record slices (page.c, "trim").  Returns the regions given back. */
size_t mp_page_trim(void);

/* Any number of pages (npages >= 1), page aligned; served from the buddy
 * allocator when it fits a block, else whole regions.  Freed by mp_span_free
 * with the start address alone; mp_span_pages tells its size in pages.
 * NULL + EINVAL when no retry could ever serve it (npages 0, more than a
 * span describes, or more than the whole arena); else as mp_pages_alloc. */
void *mp_span_alloc(size_t npages, unsigned aflags);
void mp_span_free(void *p);
size_t mp_span_pages(const void *p); /* 0 if p is not the start of a span */

/* Owner word of the page holding p: set for every page of a block/span by its
 * user (the slab layer stores its slab descriptor).  mp_page_owner returns
 * NULL for any address outside the arena or not set.  Readers use an acquire
 * load, writers a release store, so a reader that sees the owner sees the
 * owner's initialised fields. */
void mp_page_set_owner(void *p, size_t npages, void *owner);
void *mp_page_owner(const void *p);
/* p is the page-aligned start of a page of the arena that no block
 * or span owns now: an address only a block freed before can have handed
 * out (kfree tells a second free of a large block from a foreign pointer). */
bool mp_page_unowned(const void *p);

/* Fault injection (MAGPOOL_FAULT_PPM, magpool_fault_inject): true when the
 * caller is to fail now, as if memory could not be had (counted in
 * faults_injected).  The page layer's system calls ask it, and so do the
 * internal allocations of the layers above that can fail cleanly (metadata,
 * magazines), as illumos kmem's cache_mtbf reaches every allocation. */
bool mp_fault_now(void);

/* fork.c: hold / release the page layer's locks around fork (both sides). */
void mp_page_fork_lock(void);
void mp_page_fork_unlock(void);

/* The arena bounds and page map, so validating frees can look an
 * owner up inline (a few instructions, no call).  Written once by page.c at
 * init: base and map are plain fields set before `size` is stored with
 * release; every reader loads `size` with acquire first.  Hidden; read only
 * through mp_page_owner_inline. */
struct mp_page_map {
    _Atomic size_t size;     /* arena bytes, 0 before init */
    char *base;              /* arena start */
    _Atomic(void *) *map;    /* owner word per page */
};
extern struct mp_page_map mp_pmap;

/* mp_page_owner, inline.  Never faults, whatever p is. */
static inline __attribute__((always_inline)) void *mp_page_owner_inline(const void *p)
{
    /* Acquire: pairs with the release of size at init, so base and map are
     * the published ones (relaxed could read a NULL map with a non-zero size). */
    size_t size = mp_load_acquire(&mp_pmap.size);
    uintptr_t off = (uintptr_t)p - (uintptr_t)mp_pmap.base;
    if (off >= size)
        return NULL;
    /* Acquire: pairs with the release in mp_page_set_owner, so the owner's
     * fields written before it was published are visible.  Weakened, the
     * caller could read the owner's descriptor before its initialisation. */
    return mp_load_acquire(&mp_pmap.map[off >> MP_PAGE_SHIFT]);
}

struct mp_page_stats {
    uint64_t regions_committed; /* regions mapped read-write now */
    uint64_t pages_in_use;      /* handed out and not freed */
    uint64_t pages_free;        /* in buddy free lists (not resident) */
    uint64_t madvise_calls, mmap_calls, faults_injected;
    /* page.c's own counters: */
    uint64_t madvise_failed;    /* frees whose madvise/decommit failed (memory stayed resident) */
    uint64_t arena_bytes;       /* size of the reserved arena (0 before init) */
};
void mp_page_stats(struct mp_page_stats *st);

/* Check the buddy invariants (PB1)-(PB5) of page.c under the page
 * lock; 0 when they hold, -1 if not.  Meaningful when no region is being
 * committed or decommitted at the same moment (tests call it at quiescence). */
int mp_page_validate(void);

/* Fault injection: mmap/madvise fail with probability ppm/1e6. */
void mp_page_fault_inject(unsigned ppm);
#endif
