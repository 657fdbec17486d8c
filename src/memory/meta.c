/*
 * Metadata memory: the library's own structures, without malloc (contract:
 * meta.h).
 *
 * DESIGN.  Blocks of up to META_SMALL_MAX bytes are rounded up to a power of
 * two (64 B .. 2 KiB: six classes), each class a block pool (struct
 * mp_pool, below): 64 KiB chunks mapped with mmap, aligned to their size,
 * each holding blocks of one class, with its own free list and count of
 * blocks out.  A chunk whose blocks all came back is emptied with
 * madvise(MADV_DONTNEED) (one empty chunk per pool is kept as it is,
 * against thrashing, until mp_pool_trim: magpool_reap and the last cache's
 * destroy), so what stays resident after every cache is destroyed is the
 * blocks still in use (thread records, say) and their chunks.  Chunks are never unmapped: every
 * metadata block stays readable for ever (zeros once released), so a lookup
 * racing a misuse (a free of an object whose cache is being finalised, say)
 * reads stale or zero memory, never faults.  Larger blocks
 * (slab free stacks of slabs with thousands of objects, stats walks) are
 * mapped and unmapped whole.  Every mapping is an LSan root region:
 * structures here point to application memory (a cache's ctor argument,
 * say), and LeakSanitizer does not scan private mappings otherwise.
 *
 * The same pool serves the slab layer's descriptors (slab.c), whose
 * lock-free lookups rely on that: a released descriptor reads as zeros,
 * which every lookup rejects.
 *
 * INVARIANTS (per pool, under its lock).
 *   (M1) a free block is on exactly its chunk's free list;
 *   (M2) a chunk is on the partial list iff it has a free block and blocks
 *        out; on the empty list iff it has no block out and its pages are
 *        kept (at most one, unless the released stack could not grow); on
 *        the released stack iff it has no block out and was madvised,
 *        header included (on no list, its header zero); else on no list
 *        (full);
 *   (M3) resident == META_CHUNK * chunks not released + live large blocks.
 *
 * LOCKING.  One mutex per pool, a leaf: nothing else is locked while it is
 * held but mmap/munmap/madvise of a chunk.
 */
#include "meta.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "atomics.h"
#include "page.h"
#include "sanitize.h"

#define META_MIN_SHIFT 6                        /* 64 B: a cache line */
#define META_SMALL_SHIFT 11                     /* 2 KiB */
#define META_SMALL_MAX ((size_t)1 << META_SMALL_SHIFT)
#define META_CLASSES (META_SMALL_SHIFT - META_MIN_SHIFT + 1)
#define META_CHUNK MP_POOL_CHUNK

static _Atomic uint64_t meta_resident; /* (M3); relaxed: statistics only */

/* ---- block pools ---------------------------------------------------------- */

/* A free block's link: the pointer at the pool's link_off. */
static void **free_link(const struct mp_pool *p, void *b)
{
    return (void **)(void *)((char *)b + p->link_off);
}

/* At the start of every chunk (chunks are META_CHUNK-aligned, so a block's
 * chunk is its address rounded down). */
struct mp_pool_chunk {
    struct mp_pool_chunk *next, *prev; /* partial / empty list */
    void *free;                        /* (M1), linked through free_link */
    uint32_t out;                      /* blocks handed out */
    uint32_t uncarved;                 /* blocks never handed out, from `first` on */
    char *first;                       /* next never-used block */
    uint8_t where;                     /* CH_* */
};
enum { CH_FULL, CH_PARTIAL, CH_EMPTY }; /* a released chunk's header is zero: CH_FULL, on no list */

static size_t pool_first_offset(const struct mp_pool *p)
{
    size_t a = p->block >= 64 ? p->block : 64;
    if (a > MP_PAGE_SIZE)
        a = MP_PAGE_SIZE;
    return (sizeof(struct mp_pool_chunk) + a - 1) / a * a;
}

static struct mp_pool_chunk **pool_list(struct mp_pool *p, uint8_t where)
{
    return where == CH_PARTIAL ? &p->partial : &p->empty;
}

static void chunk_unlink(struct mp_pool *p, struct mp_pool_chunk *c)
{
    if (c->where == CH_FULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        *pool_list(p, c->where) = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    if (c->where == CH_EMPTY)
        p->nempty--;
    c->where = CH_FULL;
}

static void chunk_link(struct mp_pool *p, struct mp_pool_chunk *c, uint8_t where)
{
    c->where = where;
    if (where == CH_FULL)
        return;
    struct mp_pool_chunk **head = pool_list(p, where);
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
    if (where == CH_EMPTY)
        p->nempty++;
}

/* Start (or restart, after a release) a chunk's carving: every block is
 * uncarved, none is out. */
static void chunk_reset(struct mp_pool *p, struct mp_pool_chunk *c)
{
    size_t first = pool_first_offset(p);
    c->free = NULL;
    c->out = 0;
    c->first = (char *)c + first;
    c->uncarved = (uint32_t)((META_CHUNK - first) / p->block);
}

static struct mp_pool_chunk *chunk_map(struct mp_pool *p)
{
    /* Twice the size, trimmed to an aligned chunk. */
    char *raw = mmap(NULL, 2 * META_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t at = ((uintptr_t)raw + META_CHUNK - 1) & ~(uintptr_t)(META_CHUNK - 1);
    if (at > (uintptr_t)raw)
        munmap(raw, at - (uintptr_t)raw);
    if ((uintptr_t)raw + 2 * META_CHUNK > at + META_CHUNK)
        munmap((char *)at + META_CHUNK, (uintptr_t)raw + 2 * META_CHUNK - (at + META_CHUNK));
    struct mp_pool_chunk *c = (struct mp_pool_chunk *)at;
    mp_lsan_root(c, META_CHUNK);
    mp_fetch_add_relaxed(&meta_resident, META_CHUNK);
    chunk_reset(p, c);
    return c;
}

/* Room for one more address on p's released stack (under p->lock): false
 * if the stack cannot grow (ENOMEM). */
static bool released_room(struct mp_pool *p)
{
    if (p->nreleased < p->released_cap)
        return true;
    size_t cap = p->released_cap ? 2 * p->released_cap : MP_PAGE_SIZE / sizeof(void *);
    struct mp_pool_chunk **a = mmap(NULL, cap * sizeof *a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return false;
    if (p->released != NULL) {
        memcpy(a, p->released, p->nreleased * sizeof *a);
        munmap(p->released, p->released_cap * sizeof *a);
    }
    p->released = a;
    p->released_cap = cap;
    return true;
}

/* Empty chunk c (on no list) gives its pages back, all of them: its address
 * goes on the released stack, so nothing writes its header until it is
 * reused (a released chunk on a list of headers kept a page resident each:
 * 0.44 MiB over 256 threads' metadata).  The mapping stays, and reads see
 * zeros.  If the stack cannot grow, c stays mapped as an empty chunk.
 * Under p->lock. */
static void chunk_release(struct mp_pool *p, struct mp_pool_chunk *c)
{
    if (!released_room(p)) {
        chunk_link(p, c, CH_EMPTY);
        return;
    }
    madvise(c, META_CHUNK, MADV_DONTNEED);
    p->released[p->nreleased++] = c;
    mp_fetch_sub_relaxed(&meta_resident, META_CHUNK);
}

void *mp_pool_get(struct mp_pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct mp_pool_chunk *c = p->partial;
    if (c == NULL && (c = p->empty) == NULL) {
        if (p->nreleased > 0) {
            c = p->released[--p->nreleased];
            chunk_reset(p, c); /* its pages, header too, read zero since the madvise */
            mp_fetch_add_relaxed(&meta_resident, META_CHUNK);
        } else if ((c = chunk_map(p)) == NULL) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        chunk_link(p, c, CH_EMPTY);
    }
    void *b;
    if (c->free != NULL) {
        b = c->free;
        c->free = *free_link(p, b);
    } else {
        b = c->first;
        c->first += p->block;
        c->uncarved--;
    }
    c->out++;
    chunk_unlink(p, c);
    chunk_link(p, c, c->free == NULL && c->uncarved == 0 ? CH_FULL : CH_PARTIAL);
    pthread_mutex_unlock(&p->lock);
    return b;
}

void mp_pool_put(struct mp_pool *p, void *b)
{
    struct mp_pool_chunk *c = (struct mp_pool_chunk *)((uintptr_t)b & ~(uintptr_t)(META_CHUNK - 1));
    pthread_mutex_lock(&p->lock);
    *free_link(p, b) = c->free;
    c->free = b;
    c->out--;
    chunk_unlink(p, c);
    if (c->out > 0) {
        chunk_link(p, c, CH_PARTIAL);
    } else if (p->nempty == 0) {
        chunk_link(p, c, CH_EMPTY); /* kept mapped against thrashing */
    } else {
        chunk_release(p, c);
    }
    pthread_mutex_unlock(&p->lock);
}

void mp_pool_trim(struct mp_pool *p)
{
    pthread_mutex_lock(&p->lock);
    struct mp_pool_chunk *c = p->empty;
    if (c != NULL) {
        chunk_unlink(p, c);
        chunk_release(p, c);
    }
    pthread_mutex_unlock(&p->lock);
}

void mp_pool_fork_lock(struct mp_pool *p)
{
    pthread_mutex_lock(&p->lock);
}

void mp_pool_fork_unlock(struct mp_pool *p)
{
    pthread_mutex_unlock(&p->lock);
}

/* ---- metadata blocks -------------------------------------------------------- */

#define META_POOL(k) MP_POOL_INIT((size_t)1 << (META_MIN_SHIFT + (k)), 0)
#define META_POOLS { META_POOL(0), META_POOL(1), META_POOL(2), META_POOL(3), META_POOL(4), META_POOL(5) }
_Static_assert(META_CLASSES == 6, "one initialiser per class");
/* Two sets of the same classes: blocks freed within a cache's life, and
 * the lasting ones (meta.h: a thread's record and epoch record).  Apart, the
 * lasting blocks pack into few chunks; mixed, each pinned a page of a chunk
 * that short-lived blocks of its class (slab free stacks, say) had filled and
 * left: 256 thread records held 111 chunk pages after every cache was
 * destroyed, 0.44 MiB for 0.16 of records. */
static struct mp_pool meta_pools[META_CLASSES] = META_POOLS;
static struct mp_pool meta_lasting_pools[META_CLASSES] = META_POOLS;
#undef META_POOLS
#undef META_POOL

static unsigned class_of(size_t size)
{
    unsigned k = 0;
    while (((size_t)1 << (META_MIN_SHIFT + k)) < size)
        k++;
    return k;
}

static void *map_block(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    mp_lsan_root(p, len);
    mp_fetch_add_relaxed(&meta_resident, len);
    return p;
}

static void *meta_alloc_from(struct mp_pool *pools, size_t size)
{
    if (size == 0)
        size = 1;
    if (size > META_SMALL_MAX) {
        if (size > SIZE_MAX - MP_PAGE_SIZE) {
            errno = ENOMEM;
            return NULL;
        }
        return map_block((size + MP_PAGE_SIZE - 1) & ~(MP_PAGE_SIZE - 1)); /* fresh: zero */
    }
    unsigned k = class_of(size);
    void *b = mp_pool_get(&pools[k]);
    if (b != NULL)
        memset(b, 0, pools[k].block);
    return b;
}

static void meta_free_to(struct mp_pool *pools, void *p, size_t size)
{
    if (p == NULL)
        return;
    if (size == 0)
        size = 1;
    if (size > META_SMALL_MAX) {
        size_t len = (size + MP_PAGE_SIZE - 1) & ~(MP_PAGE_SIZE - 1);
        mp_lsan_unroot(p, len);
        munmap(p, len);
        mp_fetch_sub_relaxed(&meta_resident, len);
        return;
    }
    mp_pool_put(&pools[class_of(size)], p);
}

void *mp_meta_alloc_critical(size_t size)
{
    return meta_alloc_from(meta_pools, size);
}

void mp_meta_free(void *p, size_t size)
{
    meta_free_to(meta_pools, p, size);
}

void *mp_meta_alloc_lasting_critical(size_t size)
{
    return meta_alloc_from(meta_lasting_pools, size);
}

void *mp_meta_alloc_lasting(size_t size)
{
    if (mp_fault_now()) { /* as mp_meta_alloc */
        errno = ENOMEM;
        return NULL;
    }
    return mp_meta_alloc_lasting_critical(size);
}

void mp_meta_free_lasting(void *p, size_t size)
{
    meta_free_to(meta_lasting_pools, p, size);
}

void *mp_meta_grow(void *p, size_t old_size, size_t new_size)
{
    void *q = mp_meta_alloc(new_size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    mp_meta_free(p, old_size);
    return q;
}

void *mp_meta_alloc(size_t size)
{
    if (mp_fault_now()) { /* fault injection reaches metadata too (page.h) */
        errno = ENOMEM;
        return NULL;
    }
    return mp_meta_alloc_critical(size);
}

uint64_t mp_meta_resident_bytes(void)
{
    return mp_load_relaxed(&meta_resident);
}

void mp_meta_fork_lock(void)
{
    for (unsigned k = 0; k < META_CLASSES; k++)
        mp_pool_fork_lock(&meta_pools[k]);
    for (unsigned k = 0; k < META_CLASSES; k++)
        mp_pool_fork_lock(&meta_lasting_pools[k]);
}

void mp_meta_fork_unlock(void)
{
    for (unsigned k = META_CLASSES; k-- > 0;)
        mp_pool_fork_unlock(&meta_lasting_pools[k]);
    for (unsigned k = META_CLASSES; k-- > 0;)
        mp_pool_fork_unlock(&meta_pools[k]);
}

void mp_meta_trim(void)
{
    for (unsigned k = 0; k < META_CLASSES; k++) {
        mp_pool_trim(&meta_pools[k]);
        mp_pool_trim(&meta_lasting_pools[k]);
    }
}
