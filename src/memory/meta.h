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
#include <stddef.h>
#include <stdint.h>

void *mp_meta_alloc(size_t size);
/* mp_meta_alloc that fault injection never fails: for the one caller with no
 * clean way to fail (a thread's epoch record, reclaim.c). */
void *mp_meta_alloc_critical(size_t size);
void mp_meta_free(void *p, size_t size);
/* A block of new_size holding the first old_size bytes of p, which is freed;
 * on failure NULL + ENOMEM and p is untouched.  (Growing arrays.) */
void *mp_meta_grow(void *p, size_t old_size, size_t new_size);

/* Bytes mapped for metadata (small-block chunks + large blocks live). */
uint64_t mp_meta_mapped_bytes(void);
/* fork.c: hold / release the leaf lock around fork. */
void mp_meta_fork_lock(void);
void mp_meta_fork_unlock(void);

#endif
