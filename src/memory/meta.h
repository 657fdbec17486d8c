/*
 * Metadata memory (owner: src/memory/meta.c).  CONTRACT.
 *
 * Every structure of the library itself (caches, slab caches and their free
 * stacks, thread states, epoch records, domains, front-end wrappers,
 * temporary arrays of the stats walks) comes from here, never from malloc:
 * a pool library is what applications build their own allocators on, and it
 * must not recurse into the malloc it may be replacing, nor leave its
 * metadata where LeakSanitizer would call it a leak (the mappings are LSan
 * root regions, sanitize.h).
 *
 * mp_meta_alloc returns zeroed memory aligned to 64 bytes (to the block's
 * power-of-two size up to 4 KiB), or NULL with errno = ENOMEM.  The caller
 * gives the same size back to mp_meta_free.  Thread-safe; one leaf lock.
 */
#ifndef MP_META_H
#define MP_META_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *mp_meta_alloc(size_t size);
/* mp_meta_alloc that fault injection never fails: for the one caller with no
 * clean way to fail (a thread's epoch record, reclaim.c). */
void *mp_meta_alloc_critical(size_t size);
void mp_meta_free(void *p, size_t size);
/* The same for blocks that outlive caches (a thread's record, its epoch
 * record): kept in chunks of their own, so that they pack together instead
 * of each pinning a page of a chunk that short-lived blocks left.  A block
 * goes back with the free of the kind it came from. */
void *mp_meta_alloc_lasting(size_t size);
void *mp_meta_alloc_lasting_critical(size_t size);
void mp_meta_free_lasting(void *p, size_t size);
/* A block of new_size holding the first old_size bytes of p, which is freed;
 * on failure NULL + ENOMEM and p is untouched.  (Growing arrays.) */
void *mp_meta_grow(void *p, size_t old_size, size_t new_size);

/* Bytes of metadata memory resident or about to be (small-block chunks not
 * released + large blocks live). */
uint64_t mp_meta_resident_bytes(void);
/* mp_pool_trim of every metadata class. */
void mp_meta_trim(void);
/* fork.c: hold / release the leaf locks around fork. */
void mp_meta_fork_lock(void);
void mp_meta_fork_unlock(void);

/* A pool of fixed-size blocks in 64 KiB chunks (meta.c, DESIGN): the small
 * metadata classes, and the slab layer's descriptors.  A chunk whose blocks
 * all came back gives its pages back (madvise; one empty chunk kept), and is
 * never unmapped, so a block pointer stays readable for ever (zeros once
 * released).  block: 16 .. 4096 bytes, a
 * multiple of 8; blocks are aligned to min(block, 64) at least.  Not
 * zeroed.  A free block's free-list link is the pointer at link_off (users
 * whose blocks lock-free readers may see pick a field those do not trust).  Thread-safe; one leaf lock per pool. */
#define MP_POOL_CHUNK ((size_t)64 << 10)
struct mp_pool_chunk;
struct mp_pool {
    pthread_mutex_t lock;
    size_t block;
    size_t link_off; /* where a free block keeps its free-list link */
    unsigned nempty;
    struct mp_pool_chunk *partial, *empty;
    /* Released chunks, by address: a stack apart from the chunks, whose
     * every page, header included, went back (meta.c, chunk_release). */
    struct mp_pool_chunk **released;
    size_t nreleased, released_cap;
};
#define MP_POOL_INIT(block_, link_off_) \
    { .lock = PTHREAD_MUTEX_INITIALIZER, .block = (block_), .link_off = (link_off_) }
void *mp_pool_get(struct mp_pool *p); /* NULL + ENOMEM */
void mp_pool_put(struct mp_pool *p, void *b);
/* Give back the pages of the empty chunk kept against thrashing, if any
 * (magpool_reap, the last cache gone: reap.c). */
void mp_pool_trim(struct mp_pool *p);
void mp_pool_fork_lock(struct mp_pool *p);
void mp_pool_fork_unlock(struct mp_pool *p);

#endif
