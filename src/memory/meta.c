/*
 * Metadata memory: the library's own structures, without malloc (contract:
 * meta.h).
 *
 * DESIGN.  Blocks of up to META_SMALL_MAX bytes are rounded up to a power of
 * two (64 B .. 2 KiB: six classes) and carved from 64 KiB chunks mapped with
 * mmap; a freed block goes on its class's free list (the link lives in the
 * block) and is reused by the next request of its class.  Chunks are never
 * unmapped: metadata of this size is a few structs per cache and thread, so
 * what stays after every cache is destroyed is a few chunks (a documented
 * constant, not a function of the load).  Larger blocks (slab free stacks of
 * slabs with thousands of objects, stats walks) are mapped and unmapped
 * whole.  Every mapping is an LSan root region: structures here point to
 * application memory (a cache's ctor argument, say), and LeakSanitizer does
 * not scan private mappings otherwise.
 *
 * INVARIANTS.
 *   (M1) a small block is on at most one free list, and only while free;
 *   (M2) mapped == META_CHUNK * chunks + sum of live large blocks' mappings.
 *
 * LOCKING.  One mutex, a leaf: nothing else is locked while it is held, and
 * nothing is called with it held but mmap for a new chunk (rare: once per
 * 64 KiB of small metadata).
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
#define META_CHUNK ((size_t)64 << 10)
#define META_PAGE ((size_t)4096)

struct meta_free {
    struct meta_free *next;
};

static struct {
    pthread_mutex_t lock;
    struct meta_free *free[META_CLASSES]; /* (M1) */
    char *bump;                           /* carving point in the newest chunk */
    size_t bump_left;
} meta = { .lock = PTHREAD_MUTEX_INITIALIZER };

static _Atomic uint64_t meta_mapped; /* (M2); relaxed: statistics only */

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
    mp_fetch_add_relaxed(&meta_mapped, len);
    return p;
}

void *mp_meta_alloc_critical(size_t size)
{
    if (size == 0)
        size = 1;
    if (size > META_SMALL_MAX) {
        if (size > SIZE_MAX - META_PAGE) {
            errno = ENOMEM;
            return NULL;
        }
        return map_block((size + META_PAGE - 1) & ~(META_PAGE - 1)); /* fresh: zero */
    }
    unsigned k = class_of(size);
    size_t bytes = (size_t)1 << (META_MIN_SHIFT + k);
    pthread_mutex_lock(&meta.lock);
    struct meta_free *b = meta.free[k];
    if (b != NULL) {
        meta.free[k] = b->next;
    } else {
        /* A block of 2^k bytes starts at a multiple of 2^k (chunks are page
         * aligned), so it is aligned to its size.  The padding to that, and
         * the tail of a chunk too small for the request, are never carved:
         * bounded by the chunk, and chunks are few. */
        size_t pad = (size_t)(-(uintptr_t)meta.bump & (bytes - 1));
        if (meta.bump == NULL || meta.bump_left < pad + bytes) {
            char *chunk = map_block(META_CHUNK);
            if (chunk == NULL) {
                pthread_mutex_unlock(&meta.lock);
                return NULL;
            }
            meta.bump = chunk;
            meta.bump_left = META_CHUNK;
            pad = 0;
        }
        b = (struct meta_free *)(void *)(meta.bump + pad);
        meta.bump += pad + bytes;
        meta.bump_left -= pad + bytes;
    }
    pthread_mutex_unlock(&meta.lock);
    memset(b, 0, bytes);
    return b;
}

void mp_meta_free(void *p, size_t size)
{
    if (p == NULL)
        return;
    if (size == 0)
        size = 1;
    if (size > META_SMALL_MAX) {
        size_t len = (size + META_PAGE - 1) & ~(META_PAGE - 1);
        mp_lsan_unroot(p, len);
        munmap(p, len);
        mp_fetch_sub_relaxed(&meta_mapped, len);
        return;
    }
    unsigned k = class_of(size);
    struct meta_free *b = p;
    pthread_mutex_lock(&meta.lock);
    b->next = meta.free[k];
    meta.free[k] = b;
    pthread_mutex_unlock(&meta.lock);
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

uint64_t mp_meta_mapped_bytes(void)
{
    return mp_load_relaxed(&meta_mapped);
}

void mp_meta_fork_lock(void)
{
    pthread_mutex_lock(&meta.lock);
}

void mp_meta_fork_unlock(void)
{
    pthread_mutex_unlock(&meta.lock);
}
