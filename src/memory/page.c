/*
 * Page layer: one reserved arena, 4 MiB regions committed on demand, a buddy
 * allocator over the committed regions, a lock-free page -> owner map, and
 * multi-region spans.
 *
 * GUARANTEES (see page.h for the calls)
 *  - Every block of 2^k pages is aligned to 2^k * 4 KiB; every address the
 *    layer hands out lies in one arena, so mp_page_owner(p) is one bounds
 *    check and one load, and never faults for any p (NULL, stack, freed...).
 *  - Freed memory goes back to the system: buddy blocks are madvise(DONTNEED)'d
 *    before they re-enter the free lists, large spans are re-mapped PROT_NONE.
 *  - A failed mmap/madvise (real or injected) leaves every structure as it
 *    was; the caller gets ENOMEM and the next call may succeed.
 *  - MAGPOOL_NOWAIT never waits on the page lock (trylock) and never makes a
 *    system call: it is served from the free lists or fails with EAGAIN.
 *
 * THE ARENA.  At init we reserve A bytes of address space, A = 64 GiB, halved
 * until the reservation succeeds (>= 1 GiB; sanitizers and valgrind limit the
 * address space), PROT_NONE | MAP_NORESERVE, so it costs no memory.  We map
 * A + R (R = 4 MiB, the region size) and trim both ends so that the base is
 * R-aligned.  The arena is cut into A/R regions, each in one state (rstate[]):
 *     R_FREE  reserved PROT_NONE (or, after a failed decommit, mapped but
 *             unused: committing it again maps over it with MAP_FIXED);
 *     R_BUSY  being committed or decommitted by a thread that dropped the lock;
 *     R_BUDDY committed read-write, its 1024 pages belong to the buddy system;
 *     R_SPAN  committed read-write as part of a span of > 1024 pages.
 * A region enters the buddy system the first time the free lists run dry and
 * stays there while anything runs: its free pages hold no memory (they were
 * madvise'd), so giving the mapping back would buy nothing but a later mmap.
 * Only mp_page_trim (an explicit reap, the last cache gone) takes wholly free
 * regions out again, for the sake of their page-map and pinfo[] slices.  Spans of more than one
 * region take the first run of enough R_FREE regions (first fit over rstate[],
 * which is a few KiB even for 64 GiB) and give it back with
 * mmap(PROT_NONE, MAP_FIXED | MAP_NORESERVE) when freed.
 *
 * THE BUDDY SYSTEM (after Knuth and Linux's zone allocator).  Page indices i
 * are relative to the arena base.  A block is (i, k): pages [i, i + 2^k).
 *     (PB1) i mod 2^k == 0                      (blocks are aligned to size)
 *     (PB2) 0 <= k <= MP_MAX_ORDER = 10          (a block never crosses a region)
 *     (PB3) buddy(i, k) = i XOR 2^k; merging (i, k) with its buddy gives
 *          (i AND NOT 2^k, k + 1)
 *     (PB4) after every free: no block (i, k) in the free lists has its buddy
 *          (i XOR 2^k, k) also in the free lists (merging is eager)
 *     (PB5) sum over free blocks of 2^k == pages_free, and
 *          pages_free + pages_in_use(buddy) == 1024 * regions in R_BUDDY
 * Free blocks are kept OFF the memory (nothing is ever written into a free
 * block, so it stays non-resident): pinfo[] has one record per page, and the
 * record of a free block's first page holds its order, a FREE flag and the
 * doubly linked list links (page indices), so a buddy is found and unlinked in
 * O(1).  Only first pages ("heads") carry meaning; a head that stops being a
 * free head (allocated or absorbed by a merge) has its FREE flag cleared, so no
 * stale FREE flag survives on an interior page.  Allocated heads carry USED and
 * their order, which lets mp_pages_free catch a double or mismatched free.
 *
 * RESIDENCY.  We do not track resident free blocks: every free is madvise'd
 * (outside the lock, before the block is merged), so every block in the free
 * lists is non-resident and can be handed out with no system call; this is
 * exactly what NOWAIT may take.  If madvise fails (injected), the block still
 * enters the lists - it is a valid free block whose memory is merely still
 * resident - and madvise_failed counts it.
 *
 * THE PAGE MAP.  pmap[] has one _Atomic(void *) per arena page, in its own
 * PROT_READ|WRITE, MAP_NORESERVE mapping: untouched parts read as zero (the
 * kernel's zero page), so only the map of pages in use costs memory.
 * Ordering: mp_page_set_owner stores with memory_order_release and
 * mp_page_owner loads with memory_order_acquire, so a thread that reads an
 * owner pointer also sees every write the setter made to *owner before
 * publishing it (the slab layer fills its descriptor, then publishes).  The
 * arena bounds themselves are published once at init: mp_pmap.size is stored with
 * release after base/pmap/pinfo are set and loaded with acquire by every
 * lock-free reader, which then reads the plain fields race-free.
 *
 * LOCKING.  One pthread mutex (g_page.lock) guards rstate[], pinfo[] (non-atomic
 * parts), the free lists and the page counters.  It is never held across a
 * system call: region commit/decommit drop it with the region marked R_BUSY,
 * madvise runs on a block the caller still owns.  The syscall counters are
 * relaxed atomics (statistics only).
 */
#include "page.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "atomics.h"
#include "report.h"
#include "magpool/magpool.h"
#include "sanitize.h"

#define REGION_SHIFT (MP_PAGE_SHIFT + MP_MAX_ORDER)
#define REGION_SIZE ((size_t)1 << REGION_SHIFT)
#define REGION_PAGES ((uint32_t)1 << MP_MAX_ORDER)
#define ARENA_MAX ((size_t)64 << 30)
#define ARENA_MIN ((size_t)1 << 30)
#define NIL UINT32_MAX

enum { R_FREE = 0, R_BUSY, R_BUDDY, R_SPAN };
enum { PI_FREE = 1, PI_USED = 2, PI_SPAN = 4, PI_BIGSPAN = 8 };

struct pinfo {
    uint32_t next, prev;   /* free-list links (page indices), valid on FREE heads */
    uint8_t order;         /* FREE and USED heads */
    uint8_t flags;         /* PI_* */
    uint16_t pad;
    _Atomic uint32_t span; /* pages of the span starting here, 0 = not a span head */
};

static struct {
    pthread_mutex_t lock;
    uint32_t npages, nregions;
    struct pinfo *pinfo;         /* per page, only heads meaningful */
    uint8_t *rstate;             /* per region, R_* */
    uint32_t head[MP_MAX_ORDER + 1];
    uint64_t regions_committed, pages_in_use, pages_free;
} g_page = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Arena bounds and page map (page.h: read inline by mp_page_owner_inline).
 * size is published with release once base/map/pinfo are set; 0 before. */
struct mp_page_map mp_pmap;
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned g_fault_ppm;
static _Atomic uint64_t g_madvise_calls, g_mmap_calls, g_faults, g_madvise_failed;

/* ---- fault-injecting system call wrapper --------------------------------- */

enum sysop { SYS_COMMIT, SYS_DECOMMIT, SYS_DONTNEED };

static _Thread_local uint64_t tl_rng __attribute__((tls_model("initial-exec")));

static bool fault_now(void)
{
    unsigned ppm = mp_load_relaxed(&g_fault_ppm);
    if (ppm == 0)
        return false;
    if (tl_rng == 0)
        tl_rng = ((uint64_t)(uintptr_t)&tl_rng ^ (uint64_t)time(NULL) * 0x9E3779B97F4A7C15u) | 1;
    tl_rng ^= tl_rng >> 12; /* xorshift64* */
    tl_rng ^= tl_rng << 25;
    tl_rng ^= tl_rng >> 27;
    uint64_t r = (tl_rng * 0x2545F4914F6CDD1Du) >> 32;
    return r % 1000000u < ppm;
}

bool mp_fault_now(void)
{
    if (!fault_now())
        return false;
    mp_fetch_add_relaxed(&g_faults, 1);
    return true;
}

/* The only place the layer maps or advises memory after init.  0, or -1 with
 * errno = ENOMEM (an injected failure, or the system's). */
static int sys_mem(enum sysop op, void *addr, size_t len)
{
    if (op == SYS_DONTNEED)
        mp_fetch_add_relaxed(&g_madvise_calls, 1);
    else
        mp_fetch_add_relaxed(&g_mmap_calls, 1);
    if (mp_fault_now()) {
        errno = ENOMEM;
        return -1;
    }
    if (op == SYS_DONTNEED)
        return madvise(addr, len, MADV_DONTNEED) == 0 ? 0 : (errno = ENOMEM, -1);
    int prot = op == SYS_COMMIT ? PROT_READ | PROT_WRITE : PROT_NONE;
    void *q = mmap(addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (q == MAP_FAILED) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

void mp_page_fault_inject(unsigned ppm)
{
    mp_store_relaxed(&g_fault_ppm, ppm > 1000000u ? 1000000u : ppm);
}

/* ---- init ----------------------------------------------------------------- */

static void *map_anon(size_t len, int prot)
{
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static bool try_reserve(size_t size)
{
    char *raw = map_anon(size + REGION_SIZE, PROT_NONE);
    if (raw == NULL)
        return false;
    uintptr_t aligned = ((uintptr_t)raw + REGION_SIZE - 1) & ~(uintptr_t)(REGION_SIZE - 1);
    size_t head = aligned - (uintptr_t)raw;
    if (head)
        munmap(raw, head);
    if (REGION_SIZE - head)
        munmap((char *)aligned + size, REGION_SIZE - head);
    size_t npages = size >> MP_PAGE_SHIFT, nregions = size >> REGION_SHIFT;
    void *pmap = map_anon(npages * sizeof(void *), PROT_READ | PROT_WRITE);
    void *pinfo = map_anon(npages * sizeof(struct pinfo), PROT_READ | PROT_WRITE);
    void *rstate = map_anon(nregions, PROT_READ | PROT_WRITE);
    if (pmap == NULL || pinfo == NULL || rstate == NULL) {
        if (pmap)
            munmap(pmap, npages * sizeof(void *));
        if (pinfo)
            munmap(pinfo, npages * sizeof(struct pinfo));
        if (rstate)
            munmap(rstate, nregions);
        munmap((void *)aligned, size);
        return false;
    }
    mp_pmap.base = (char *)aligned;
    g_page.npages = (uint32_t)npages;
    g_page.nregions = (uint32_t)nregions;
    mp_pmap.map = pmap;
    g_page.pinfo = pinfo;
    g_page.rstate = rstate;
    for (unsigned k = 0; k <= MP_MAX_ORDER; k++)
        g_page.head[k] = NIL;
    return true;
}

/* MAGPOOL_FAULT_PPM, read at init: a decimal number 0..1000000.  Anything
 * else (a sign, other characters, out of range: strtoul took "-1" for
 * 100%) is one line and ignored. */
static void fault_env(void)
{
    const char *env = getenv("MAGPOOL_FAULT_PPM");
    if (env == NULL || *env == '\0')
        return;
    unsigned long v = 0;
    const char *q = env;
    while (*q >= '0' && *q <= '9' && v <= 1000000)
        v = v * 10 + (unsigned long)(*q++ - '0');
    if (*q != '\0' || v > 1000000) {
        char kind[80];
        snprintf(kind, sizeof kind, "invalid value '%.32s' ignored", env);
        mp_report("MAGPOOL_FAULT_PPM", NULL, kind, "(want a decimal number 0..1000000)", true);
        return;
    }
    mp_page_fault_inject((unsigned)v);
}

static __attribute__((noinline, cold)) int page_init_slow(void)
{
    pthread_mutex_lock(&g_init_lock);
    if (mp_load_relaxed(&mp_pmap.size) == 0) {
        size_t size = ARENA_MAX;
        while (size >= ARENA_MIN && !try_reserve(size))
            size /= 2;
        if (size < ARENA_MIN) {
            pthread_mutex_unlock(&g_init_lock);
            errno = ENOMEM;
            return -1;
        }
        /* LSan: objects in the arena may hold the only pointer to a block the
         * application malloc'd; only the arena's committed (readable) parts
         * are ever scanned (sanitize.h). */
        mp_lsan_root(mp_pmap.base, size);
        fault_env();
        /* Release: publishes mp_pmap.base/pmap/pinfo/rstate/npages.  Pairs with the
         * acquire loads in mp_page_init and mp_page_owner; if relaxed, a
         * reader could see the size and a stale (NULL) pmap. */
        mp_store_release(&mp_pmap.size, size);
    }
    pthread_mutex_unlock(&g_init_lock);
    return 0;
}

int mp_page_init(void)
{
    /* Acquire: pairs with the release store of size in page_init_slow, so
     * base, map and the region state are the published ones.  Weakened, a
     * caller could see the arena initialised and use a NULL map. */
    if (mp_load_acquire(&mp_pmap.size) != 0)
        return 0;
    return page_init_slow();
}

/* ---- helpers -------------------------------------------------------------- */

static inline uint32_t page_index(const void *p)
{
    return (uint32_t)(((uintptr_t)p - (uintptr_t)mp_pmap.base) >> MP_PAGE_SHIFT);
}

static inline void *page_addr(uint32_t i)
{
    return mp_pmap.base + ((size_t)i << MP_PAGE_SHIFT);
}

/* True if [p, p + npages pages) lies inside the arena and p is page aligned. */
static bool in_arena(const void *p, size_t npages)
{
    /* Acquire: pairs with the release store of size in page_init_slow, so
     * base is the published one.  Weakened, a non-zero size could come with
     * a stale base and the bounds check would test the wrong range. */
    size_t size = mp_load_acquire(&mp_pmap.size);
    uintptr_t off = (uintptr_t)p - (uintptr_t)mp_pmap.base;
    return off < size && (off & (MP_PAGE_SIZE - 1)) == 0 && npages <= (size - off) >> MP_PAGE_SHIFT;
}

static void misuse(const char *kind, const void *p)
{
    fprintf(stderr, "magpool: pages: %s at %p\n", kind, p);
}

static void list_push(uint32_t i, unsigned k)
{
    struct pinfo *pi = &g_page.pinfo[i];
    pi->order = (uint8_t)k;
    pi->flags = PI_FREE;
    pi->prev = NIL;
    pi->next = g_page.head[k];
    if (pi->next != NIL)
        g_page.pinfo[pi->next].prev = i;
    g_page.head[k] = i;
    g_page.pages_free += (uint64_t)1 << k;
}

static void list_unlink(uint32_t i, unsigned k)
{
    struct pinfo *pi = &g_page.pinfo[i];
    if (pi->prev != NIL)
        g_page.pinfo[pi->prev].next = pi->next;
    else
        g_page.head[k] = pi->next;
    if (pi->next != NIL)
        g_page.pinfo[pi->next].prev = pi->prev;
    pi->flags = 0;
    g_page.pages_free -= (uint64_t)1 << k;
}

/* Split free-list-less block (i, from) down to order k: the upper halves go
 * to the free lists, (i, k) is marked USED and returned.  Under g_page.lock. */
static uint32_t split_take(uint32_t i, unsigned from, unsigned k)
{
    while (from > k) {
        from--;
        list_push(i + ((uint32_t)1 << from), from);
    }
    g_page.pinfo[i].order = (uint8_t)k;
    g_page.pinfo[i].flags = PI_USED;
    g_page.pages_in_use += (uint64_t)1 << k;
    return i;
}

/* Take a block of order k from the free lists, or NIL.  Under g_page.lock. */
static uint32_t buddy_take(unsigned k)
{
    for (unsigned o = k; o <= MP_MAX_ORDER; o++) {
        uint32_t i = g_page.head[o];
        if (i != NIL) {
            list_unlink(i, o);
            return split_take(i, o, k);
        }
    }
    return NIL;
}

/* First run of n R_FREE regions, marked R_BUSY; NIL if none.  Under g_page.lock. */
static uint32_t regions_reserve(uint32_t n)
{
    uint32_t run = 0;
    for (uint32_t r = 0; r < g_page.nregions; r++) {
        run = g_page.rstate[r] == R_FREE ? run + 1 : 0;
        if (run == n) {
            uint32_t first = r + 1 - n;
            for (uint32_t j = first; j <= r; j++)
                g_page.rstate[j] = R_BUSY;
            return first;
        }
    }
    return NIL;
}

/* Commit the n regions from r (marked R_BUSY by the caller), with the lock
 * dropped.  On success the regions are in state `to`; on failure back to
 * R_FREE.  Called and returns with g_page.lock held. */
static int regions_commit(uint32_t r, uint32_t n, uint8_t to)
{
    pthread_mutex_unlock(&g_page.lock);
    int rc = sys_mem(SYS_COMMIT, page_addr(r * REGION_PAGES), (size_t)n * REGION_SIZE);
    int err = errno;
    pthread_mutex_lock(&g_page.lock);
    for (uint32_t j = r; j < r + n; j++)
        g_page.rstate[j] = rc == 0 ? to : R_FREE;
    if (rc == 0)
        g_page.regions_committed += n;
    errno = err;
    return rc;
}

/* ---- blocks --------------------------------------------------------------- */

static __attribute__((noinline)) void *pages_alloc_locked(unsigned order, unsigned aflags)
{
    uint32_t i = buddy_take(order);
    if (i != NIL)
        return page_addr(i);
    if (aflags & MAGPOOL_NOWAIT) {
        errno = EAGAIN;
        return NULL;
    }
    uint32_t r = regions_reserve(1);
    if (r == NIL) {
        errno = ENOMEM;
        return NULL;
    }
    if (regions_commit(r, 1, R_BUDDY) != 0)
        return NULL;
    return page_addr(split_take(r * REGION_PAGES, MP_MAX_ORDER, order));
}

void *mp_pages_alloc(unsigned order, unsigned aflags)
{
    if (order > MP_MAX_ORDER) {
        errno = EINVAL;
        return NULL;
    }
    /* Acquire: pairs with the release store of size in page_init_slow, so
     * the arena's maps are visible before we allocate from them.  Weakened,
     * the allocation could run on a NULL map or stale region state. */
    if (mp_load_acquire(&mp_pmap.size) == 0) {
        if (aflags & MAGPOOL_NOWAIT) {
            errno = EAGAIN;
            return NULL;
        }
        if (mp_page_init() != 0)
            return NULL;
    }
    if (aflags & MAGPOOL_NOWAIT) {
        if (pthread_mutex_trylock(&g_page.lock) != 0) {
            errno = EAGAIN;
            return NULL;
        }
    } else {
        pthread_mutex_lock(&g_page.lock);
    }
    void *p = pages_alloc_locked(order, aflags);
    int err = errno;
    pthread_mutex_unlock(&g_page.lock);
    if (p != NULL)
        mp_asan_unpoison(p, MP_PAGE_SIZE << order); /* poisoned while free */
    errno = err;
    return p;
}

/* Return block (i, k), already madvise'd, merging with free buddies. */
static void buddy_put(uint32_t i, unsigned k)
{
    g_page.pages_in_use -= (uint64_t)1 << k;
    g_page.pinfo[i].flags = 0;
    while (k < MP_MAX_ORDER) {
        uint32_t b = i ^ ((uint32_t)1 << k);
        struct pinfo *bp = &g_page.pinfo[b];
        if (!(bp->flags & PI_FREE) || bp->order != k)
            break;
        list_unlink(b, k);
        i &= ~((uint32_t)1 << k);
        k++;
    }
    list_push(i, k);
}

void mp_pages_free(void *p, unsigned order)
{
    if (p == NULL)
        return;
    if (order > MP_MAX_ORDER || !in_arena(p, (size_t)1 << order) ||
        (page_index(p) & (((uint32_t)1 << order) - 1)) != 0) {
        misuse("bad page free", p);
        return;
    }
    uint32_t i = page_index(p);
    pthread_mutex_lock(&g_page.lock);
    struct pinfo *pi = &g_page.pinfo[i];
    bool ok = g_page.rstate[i / REGION_PAGES] == R_BUDDY && (pi->flags & PI_USED) && pi->order == order;
    if (ok) {
        pi->flags = PI_USED; /* drops PI_SPAN: the block is no longer a span */
        mp_store_relaxed(&pi->span, 0);
    }
    pthread_mutex_unlock(&g_page.lock);
    if (!ok) {
        misuse("double or mismatched page free", p);
        return;
    }
    size_t len = MP_PAGE_SIZE << order;
    mp_asan_poison(p, len); /* a use after free of the block is reported */
    mp_page_set_owner(p, (size_t)1 << order, NULL);
    /* The caller still owns the block, so madvise needs no lock.  On failure
     * the block stays resident but is otherwise an ordinary free block. */
    if (sys_mem(SYS_DONTNEED, p, len) != 0)
        mp_fetch_add_relaxed(&g_madvise_failed, 1);
    pthread_mutex_lock(&g_page.lock);
    buddy_put(i, order);
    pthread_mutex_unlock(&g_page.lock);
}

/* ---- spans ---------------------------------------------------------------- */

void *mp_span_alloc(size_t npages, unsigned aflags)
{
    if (npages == 0 || npages > UINT32_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (npages <= REGION_PAGES) {
        unsigned k = 0;
        while (((size_t)1 << k) < npages)
            k++;
        void *p = mp_pages_alloc(k, aflags);
        if (p != NULL) {
            pthread_mutex_lock(&g_page.lock);
            g_page.pinfo[page_index(p)].flags |= PI_SPAN;
            mp_store_relaxed(&g_page.pinfo[page_index(p)].span, (uint32_t)npages);
            pthread_mutex_unlock(&g_page.lock);
        }
        return p;
    }
    if (aflags & MAGPOOL_NOWAIT) {
        errno = EAGAIN;
        return NULL;
    }
    if (mp_page_init() != 0)
        return NULL;
    uint32_t n = (uint32_t)((npages + REGION_PAGES - 1) / REGION_PAGES);
    if (n > g_page.nregions) { /* more than the whole arena: no retry can serve it */
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&g_page.lock);
    uint32_t r = regions_reserve(n);
    void *p = NULL;
    int err = ENOMEM;
    if (r != NIL) {
        if (regions_commit(r, n, R_SPAN) == 0) {
            uint32_t i = r * REGION_PAGES;
            g_page.pinfo[i].flags = PI_BIGSPAN;
            mp_store_relaxed(&g_page.pinfo[i].span, (uint32_t)npages);
            g_page.pages_in_use += (uint64_t)n * REGION_PAGES;
            p = page_addr(i);
            mp_asan_unpoison(p, (size_t)n * REGION_SIZE);
        } else {
            err = errno;
        }
    }
    pthread_mutex_unlock(&g_page.lock);
    if (p == NULL)
        errno = err;
    return p;
}

size_t mp_span_pages(const void *p)
{
    if (!in_arena(p, 1))
        return 0;
    return mp_load_relaxed(&g_page.pinfo[page_index(p)].span);
}

void mp_span_free(void *p)
{
    if (p == NULL)
        return;
    if (!in_arena(p, 1)) {
        misuse("bad span free", p);
        return;
    }
    uint32_t i = page_index(p);
    pthread_mutex_lock(&g_page.lock);
    uint8_t flags = g_page.pinfo[i].flags;
    uint8_t order = g_page.pinfo[i].order;
    uint32_t npages = mp_load_relaxed(&g_page.pinfo[i].span);
    uint32_t r = i / REGION_PAGES, n = (npages + REGION_PAGES - 1) / REGION_PAGES;
    bool big = (flags & PI_BIGSPAN) && npages > 0 && i % REGION_PAGES == 0 &&
               g_page.rstate[r] == R_SPAN;
    if (big) {
        for (uint32_t j = r; j < r + n; j++)
            g_page.rstate[j] = R_BUSY;
        g_page.pinfo[i].flags = 0;
        mp_store_relaxed(&g_page.pinfo[i].span, 0);
    }
    pthread_mutex_unlock(&g_page.lock);
    if (!big) {
        if ((flags & (PI_SPAN | PI_USED)) == (PI_SPAN | PI_USED))
            mp_pages_free(p, order);
        else
            misuse("bad span free", p);
        return;
    }
    mp_page_set_owner(p, (size_t)n * REGION_PAGES, NULL);
    mp_asan_poison(p, (size_t)n * REGION_SIZE);
    /* If the decommit fails the regions stay mapped read-write but unused;
     * R_FREE is still right: the next commit maps over them with MAP_FIXED. */
    if (sys_mem(SYS_DECOMMIT, p, (size_t)n * REGION_SIZE) != 0)
        mp_fetch_add_relaxed(&g_madvise_failed, 1);
    pthread_mutex_lock(&g_page.lock);
    for (uint32_t j = r; j < r + n; j++)
        g_page.rstate[j] = R_FREE;
    g_page.regions_committed -= n;
    g_page.pages_in_use -= (uint64_t)n * REGION_PAGES;
    pthread_mutex_unlock(&g_page.lock);
}

/* ---- trim ------------------------------------------------------------------ */

/* Give back the regions that lie wholly free (one order-MP_MAX_ORDER block
 * in the free lists) with their share of the page map and of pinfo[]: 8 and
 * 16 KiB per 4 MiB region, which otherwise stay resident for every region the
 * process ever committed.  Regions in use are left alone.  Each region found
 * leaves the free lists and goes R_BUSY under the lock, so no allocation
 * reaches its memory or pinfo records while the lock is dropped for the
 * system calls; mp_page_owner and mp_span_pages read its map and span words
 * lock-free meanwhile and see zeros, which is what a free page holds anyway.
 * Then it is R_FREE: a later commit maps over it (MAP_FIXED) and starts its
 * records afresh.  Called by magpool_reap and when the last cache goes
 * (reap.c), never on a hot path: the next use of the region costs an mmap. */
#define TRIM_BATCH 64u
size_t mp_page_trim(void)
{
    if (mp_load_acquire(&mp_pmap.size) == 0) /* pairs with page_init_slow's release */
        return 0;
    size_t trimmed = 0;
    uint32_t from = 0;
    for (;;) {
        uint32_t batch[TRIM_BATCH], n = 0;
        pthread_mutex_lock(&g_page.lock);
        for (; from < g_page.nregions && n < TRIM_BATCH; from++) {
            uint32_t i = from * REGION_PAGES;
            const struct pinfo *pi = &g_page.pinfo[i];
            if (g_page.rstate[from] != R_BUDDY || !(pi->flags & PI_FREE) || pi->order != MP_MAX_ORDER)
                continue;
            list_unlink(i, MP_MAX_ORDER);
            g_page.rstate[from] = R_BUSY;
            g_page.regions_committed--;
            batch[n++] = from;
        }
        pthread_mutex_unlock(&g_page.lock);
        if (n == 0)
            break;
        const size_t map_slice = REGION_PAGES * sizeof *mp_pmap.map;
        const size_t info_slice = REGION_PAGES * sizeof *g_page.pinfo;
        _Static_assert((REGION_PAGES * sizeof(void *)) % MP_PAGE_SIZE == 0, "a region's map slice is whole pages");
        _Static_assert((REGION_PAGES * sizeof(struct pinfo)) % MP_PAGE_SIZE == 0, "a region's pinfo slice is whole pages");
        for (uint32_t j = 0; j < n; j++) {
            uint32_t r = batch[j];
            /* A failed decommit leaves the region mapped but unused: R_FREE
             * is still right (see R_FREE above). */
            if (sys_mem(SYS_DECOMMIT, page_addr(r * REGION_PAGES), REGION_SIZE) != 0)
                mp_fetch_add_relaxed(&g_madvise_failed, 1);
            (void)madvise((char *)mp_pmap.map + (size_t)r * map_slice, map_slice, MADV_DONTNEED);
            (void)madvise((char *)g_page.pinfo + (size_t)r * info_slice, info_slice, MADV_DONTNEED);
        }
        pthread_mutex_lock(&g_page.lock);
        for (uint32_t j = 0; j < n; j++)
            g_page.rstate[batch[j]] = R_FREE;
        pthread_mutex_unlock(&g_page.lock);
        trimmed += n;
    }
    return trimmed;
}

/* ---- page map ------------------------------------------------------------- */

void mp_page_set_owner(void *p, size_t npages, void *owner)
{
    if (!in_arena(p, npages)) {
        misuse("owner outside the arena", p);
        return;
    }
    uint32_t i = page_index(p);
    for (size_t j = 0; j < npages; j++)
        /* Release: makes the owner's initialisation visible to whoever
         * acquires this word in mp_page_owner.  Relaxed would let a reader see
         * the pointer before the descriptor's fields. */
        mp_store_release(&mp_pmap.map[i + j], owner);
}

void *mp_page_owner(const void *p)
{
    return mp_page_owner_inline(p);
}

bool mp_page_unowned(const void *p)
{
    return in_arena(p, 1) && mp_page_owner(p) == NULL;
}

/* ---- statistics and self-check -------------------------------------------- */

void mp_page_stats(struct mp_page_stats *st)
{
    pthread_mutex_lock(&g_page.lock);
    st->regions_committed = g_page.regions_committed;
    st->pages_in_use = g_page.pages_in_use;
    st->pages_free = g_page.pages_free;
    pthread_mutex_unlock(&g_page.lock);
    st->madvise_calls = mp_load_relaxed(&g_madvise_calls);
    st->mmap_calls = mp_load_relaxed(&g_mmap_calls);
    st->faults_injected = mp_load_relaxed(&g_faults);
    st->madvise_failed = mp_load_relaxed(&g_madvise_failed);
    st->arena_bytes = mp_load_relaxed(&mp_pmap.size);
}

int mp_page_validate(void)
{
    if (mp_page_init() != 0)
        return -1;
    int bad = 0;
    uint64_t free_pages = 0, buddy_regions = 0, span_regions = 0;
    pthread_mutex_lock(&g_page.lock);
    for (unsigned k = 0; k <= MP_MAX_ORDER; k++) {
        uint32_t prev = NIL;
        for (uint32_t i = g_page.head[k]; i != NIL; prev = i, i = g_page.pinfo[i].next) {
            struct pinfo *pi = &g_page.pinfo[i];
            bad |= i >= g_page.npages;                                     /* in the arena */
            if (bad)
                break;
            bad |= (i & (((uint32_t)1 << k) - 1)) != 0;               /* (PB1) */
            bad |= pi->flags != PI_FREE || pi->order != k || pi->prev != prev;
            bad |= g_page.rstate[i / REGION_PAGES] != R_BUDDY;
            if (k < MP_MAX_ORDER) {                                    /* (PB4) */
                struct pinfo *b = &g_page.pinfo[i ^ ((uint32_t)1 << k)];
                bad |= (b->flags & PI_FREE) && b->order == k;
            }
            free_pages += (uint64_t)1 << k;
        }
    }
    uint64_t busy_regions = 0;
    for (uint32_t r = 0; r < g_page.nregions; r++) {
        buddy_regions += g_page.rstate[r] == R_BUDDY;
        span_regions += g_page.rstate[r] == R_SPAN;
        busy_regions += g_page.rstate[r] == R_BUSY;
    }
    bad |= free_pages != g_page.pages_free;                                 /* (PB5) */
    /* A region in R_BUSY is being committed or decommitted by a thread that
     * dropped the lock (MAGPOOL_DEBUG=check validates while others run): the
     * region counts are exact only when none is. */
    if (busy_regions == 0) {
        bad |= buddy_regions + span_regions != g_page.regions_committed;
        bad |= g_page.pages_free + g_page.pages_in_use != (buddy_regions + span_regions) * REGION_PAGES;
    }
    pthread_mutex_unlock(&g_page.lock);
    return bad ? -1 : 0;
}

/* ---- fork (fork.c) ---------------------------------------------------------- */

void mp_page_fork_lock(void)
{
    pthread_mutex_lock(&g_init_lock);
    pthread_mutex_lock(&g_page.lock);
}

void mp_page_fork_unlock(void)
{
    pthread_mutex_unlock(&g_page.lock);
    pthread_mutex_unlock(&g_init_lock);
}
