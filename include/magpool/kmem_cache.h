/*
 * magpool — the Linux kernel slab API in user space: kmem_cache_* (legacy
 * 5-argument create) and kmalloc/kfree, over magpool caches.
 *
 *   struct kmem_cache *c = KMEM_CACHE(inode, SLAB_HWCACHE_ALIGN);
 *   struct inode *i = kmem_cache_alloc(c, GFP_KERNEL);
 *   kmem_cache_free(c, i);
 *   char *buf = kmalloc(300, GFP_KERNEL);   // from the kmalloc-512 cache
 *   kfree(buf);
 *
 * Semantics follow Linux where they can:
 *  - A constructor runs once when an object is first built, never on reuse;
 *    objects must be freed in constructed state.  Caches with a constructor
 *    are never poisoned (SLAB_POISON / MAGPOOL_DEBUG=poison are ignored for
 *    them, as Linux does), since poisoning would destroy that state.
 *  - gfp: an allocation may block (take a lock, call mmap) only when gfp has
 *    __GFP_DIRECT_RECLAIM (GFP_KERNEL) or __GFP_HIGH (GFP_ATOMIC: Linux
 *    serves it from its atomic reserves so that it succeeds while memory
 *    exists; here it may take the library's short locks and map memory, and
 *    never waits for a grace period or for another thread's free).
 *    GFP_NOWAIT and 0 never block: served from magazines, depot or partial
 *    slabs, else NULL (errno EAGAIN).  __GFP_NOFAIL never returns
 *    NULL (and implies it may block; see MAGPOOL_NOFAIL for what it waits
 *    for), except for a kmalloc size larger than the arena (see kmalloc).  __GFP_ZERO zeroes the object.
 *  - SLAB_TYPESAFE_BY_RCU: object memory stays type-stable, not returned to
 *    the system until a grace period of the default domain has passed.
 *  - kmalloc size classes: 8, 16, 32, 64, 96, 128, 192, 256, 512, 1k, 2k, 4k,
 *    8k (caches "kmalloc-<n>", created on first use); power-of-two classes
 *    are naturally aligned (align = size), 96 and 192 to 16 bytes.  Larger
 *    requests are page-backed spans, page aligned (and aligned to their size
 *    when that is a power of two up to 4 MiB).  kfree of any kmem_cache
 *    object is allowed (as in Linux >= 6.4).
 *
 * Misuse: each prints one line `magpool: <cache>: <kind> at <addr>` on stderr
 * and aborts (MAGPOOL_DEBUG=continue: prints and drops the call):
 *  kmem_cache_free / kfree / ksize of a pointer no cache owns ("foreign
 *  pointer"), inside an object ("misaligned pointer"), of another cache
 *  ("wrong cache": kmem_cache_free with the wrong s; kfree of a mem_pool or
 *  core object), the same object twice in a row ("double free": by
 *  kmem_cache_free, kfree, the bulk free or kmem_cache_free_rcu in any
 *  order, except free_rcu then a plain free: debug flags only), a large
 *  kmalloc block kfree'd again ("double free", cache kmalloc-large),
 *  kmem_cache_free / free_rcu with a NULL s ("NULL cache", named after the
 *  call); krealloc's reports name krealloc; with MAGPOOL_DEBUG / SLAB_*
 *  debug flags also poison and red-zone damage ("use after free", "red zone
 *  overwritten"), every double free, and, for kmalloc with red zones
 *  (MAGPOOL_DEBUG=redzone), a write past the size asked for but inside the
 *  size class ("kmalloc red zone overwritten", as SLUB since Linux 6.1;
 *  ksize() makes the whole class size usable, as in Linux).
 *  kmem_cache_synchronize_rcu inside kmem_cache_rcu_read_lock: "magpool:
 *  reclaim: synchronize inside a read-side section" and abort (continue
 *  mode: returns without a grace period).  kmem_cache_create with SLAB_PANIC and bad arguments:
 *  "kmem_cache_create <name>: <reason>" and abort.  kmem_cache_destroy with
 *  live objects: "magpool: kmem_cache_destroy <name>: Slab cache still has
 *  objects (<n>)" and continues (the cache is leaked, as in Linux).
 *
 * Synchronization table ("safe" = may run concurrently with no outside lock):
 *
 *   call                                | vs. same cache      | vs. others
 *   ------------------------------------+---------------------+-----------
 *   kmem_cache_alloc/zalloc/alloc_bulk  | safe                | safe
 *   kmem_cache_free/free_bulk/free_rcu  | safe (any thread)   | safe
 *   kmalloc/kzalloc/kcalloc/krealloc    | safe                | safe
 *   (and the _array, _node, kv*, dup)   | safe                | safe
 *   kfree/ksize/kvfree/kfree_sensitive  | safe (any thread)   | safe
 *   kmem_cache_shrink / kmem_cache_size | safe                | safe
 *   kmem_cache_rcu_read_lock/unlock     | safe (per thread, nestable)
 *   kmem_cache_synchronize_rcu          | safe; never inside a read-side section (diagnosed)
 *   kmem_cache_dump_slabinfo            | safe                | safe
 *   kmem_cache_create                   | -                   | safe
 *   kmem_cache_destroy                  | NOT with any other call on the same
 *                                       | cache in flight, nor after it, except
 *                                       | kfree/ksize of objects still live
 */
#ifndef MAGPOOL_KMEM_CACHE_H
#define MAGPOOL_KMEM_CACHE_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef MAGPOOL_API
#define MAGPOOL_API __attribute__((visibility("default")))
#endif

typedef unsigned int gfp_t;
typedef unsigned int slab_flags_t;

/* ---- gfp flags (Linux's bit values) ---------------------------------------- */
#define __GFP_HIGH            0x20u
#define __GFP_IO              0x40u
#define __GFP_FS              0x80u
#define __GFP_ZERO            0x100u   /**< zero the object */
#define __GFP_DIRECT_RECLAIM  0x400u   /**< may block: lock waits, mmap */
#define __GFP_KSWAPD_RECLAIM  0x800u   /**< accepted, no effect */
#define __GFP_NOWARN          0x2000u  /**< no warning for an impossible __GFP_NOFAIL size (the only failure magpool warns about) */
#define __GFP_NOFAIL          0x8000u  /**< never return NULL, except for an impossible size (see kmalloc) */
#define __GFP_RECLAIM         (__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM)

#define GFP_ATOMIC   (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)           /**< never sleeps; succeeds while memory exists (see gfp above) */
#define GFP_NOWAIT   (__GFP_KSWAPD_RECLAIM)                        /**< never blocks */
#define GFP_KERNEL   (__GFP_RECLAIM | __GFP_IO | __GFP_FS)         /**< may block */

/* ---- kmem_cache_create flags (Linux's bit values) -------------------------- */
#define SLAB_CONSISTENCY_CHECKS 0x00000100u /**< full free checks (MAGPOOL_VERIFY) */
#define SLAB_RED_ZONE           0x00000400u /**< guard bytes after objects, checked on free */
#define SLAB_POISON             0x00000800u /**< poison free objects, checked on reuse (no ctor) */
#define SLAB_HWCACHE_ALIGN      0x00002000u /**< cache-line align objects of a line or more */
#define SLAB_STORE_USER         0x00010000u /**< remember thread + caller of alloc and free */
#define SLAB_PANIC              0x00040000u /**< abort with a diagnostic if create fails */
#define SLAB_TYPESAFE_BY_RCU    0x00080000u /**< memory type-stable across a grace period */
#define SLAB_ACCOUNT            0x04000000u /**< accepted, no effect */
/* Any other bit: kmem_cache_create fails with EINVAL (as Linux does). */

/** Opaque cache handle. */
struct kmem_cache;

/**
 * Create a cache of `size`-byte objects.  align: 0 (default: 8, or 16 for
 * sizes of 16 or more) or a power of two up to 4096.  ctor (may be NULL) runs
 * once per object construction.  name is copied.
 * NULL + EINVAL: NULL name, size 0, size > 1 MiB (MAGPOOL_MAX_OBJECT_SIZE),
 * align not a power of two or > 4096, unknown flags.  NULL + ENOMEM.  A name
 * of any length is taken (as Linux does); its first 63 characters are kept
 * for slabinfo and diagnostics.
 * With SLAB_PANIC, any failure prints a diagnostic and aborts instead.
 */
MAGPOOL_API struct kmem_cache *kmem_cache_create(const char *name, unsigned int size,
                                                 unsigned int align, slab_flags_t flags,
                                                 void (*ctor)(void *));
#define KMEM_CACHE(__struct, __flags)                                                     \
    kmem_cache_create(#__struct, sizeof(struct __struct), __alignof__(struct __struct), \
                      (__flags), NULL)

/** kmem_cache_create with a hardened-usercopy region (Linux >= 4.16).  User
 *  space has no copy_to_user to guard, so the region is checked and then
 *  unused: one outside the object prints one line and is dropped (Linux
 *  warns and drops it too); the cache is made either way. */
MAGPOOL_API struct kmem_cache *kmem_cache_create_usercopy(const char *name, unsigned int size,
                                                          unsigned int align, slab_flags_t flags,
                                                          unsigned int useroffset, unsigned int usersize,
                                                          void (*ctor)(void *));
#define KMEM_CACHE_USERCOPY(__struct, __flags, __field)                                    \
    kmem_cache_create_usercopy(#__struct, sizeof(struct __struct), __alignof__(struct __struct), \
                               (__flags), __builtin_offsetof(struct __struct, __field),      \
                               sizeof(((struct __struct *)0)->__field), NULL)

/** Destroy s.  NULL does nothing.  Live objects: diagnostic (see above), the
 *  cache memory is kept so they stay valid. */
MAGPOOL_API void kmem_cache_destroy(struct kmem_cache *s);

/** One object.  NULL + errno: EINVAL (NULL s), ENOMEM, EAGAIN (non-blocking
 *  gfp and nothing cached).  Never NULL with __GFP_NOFAIL. */
MAGPOOL_API void *kmem_cache_alloc(struct kmem_cache *s, gfp_t gfp);
/** kmem_cache_alloc(s, gfp | __GFP_ZERO). */
MAGPOOL_API void *kmem_cache_zalloc(struct kmem_cache *s, gfp_t gfp);
/** One memory node: kmem_cache_alloc(s, gfp), node ignored (NUMA_NO_NODE
 *  or any other). */
MAGPOOL_API void *kmem_cache_alloc_node(struct kmem_cache *s, gfp_t gfp, int node);
/** Free obj to s.  NULL obj does nothing.  Misuse diagnosed (see above). */
MAGPOOL_API void kmem_cache_free(struct kmem_cache *s, void *obj);
/** Allocate n objects into p: returns n, or 0 with nothing allocated (errno;
 *  EINVAL for NULL s / NULL p / n > INT_MAX).  n = 0 returns 0. */
MAGPOOL_API int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t gfp, size_t n, void **p);
/** Free n objects (NULL entries skipped), each validated as kmem_cache_free.
 *  NULL s (as Linux): each object freed as kfree frees it, to its own cache
 *  (kmalloc memory of any size, large spans too, and kmem_cache objects). */
MAGPOOL_API void kmem_cache_free_bulk(struct kmem_cache *s, size_t n, void **p);
/** Give back cached memory beyond live objects.  0, or -1 + EINVAL (NULL s). */
MAGPOOL_API int kmem_cache_shrink(struct kmem_cache *s);
/** Object size given at create (0 for NULL). */
MAGPOOL_API unsigned int kmem_cache_size(struct kmem_cache *s);

/* ---- deferred free (RCU style, on magpool's default epoch domain) ---------- */
/** Free obj after a grace period: it is not reused until every reader that
 *  was inside kmem_cache_rcu_read_lock() when this was called has unlocked.
 *  Validated like kmem_cache_free.  Batched (one epoch operation per magazine). */
MAGPOOL_API void kmem_cache_free_rcu(struct kmem_cache *s, void *obj);
/** Enter / leave a read-side section (nestable, per thread). */
MAGPOOL_API void kmem_cache_rcu_read_lock(void);
MAGPOOL_API void kmem_cache_rcu_read_unlock(void);
/** Wait until every deferred free this thread issued before the call is
 *  reusable (see magpool_synchronize).  Not inside a read-side section. */
MAGPOOL_API void kmem_cache_synchronize_rcu(void);

/* ---- kmalloc --------------------------------------------------------------- */
/** kmalloc(0) returns ZERO_SIZE_PTR: not NULL, never to be dereferenced. */
#define ZERO_SIZE_PTR ((void *)16)
#define ZERO_OR_NULL_PTR(x) ((unsigned long)(x) <= (unsigned long)ZERO_SIZE_PTR)
/** Largest kmalloc size served by a slab cache; larger ones are page spans. */
#define KMALLOC_MAX_CACHE_SIZE 8192u

/** size bytes (ZERO_SIZE_PTR for 0).  NULL + errno ENOMEM / EAGAIN.  A size
 *  larger than the page arena (up to 64 GiB, smaller where address space is
 *  limited) can never be served: NULL + ENOMEM at once, even with
 *  __GFP_NOFAIL, which then prints one line (as Linux warns and fails an
 *  impossible __GFP_NOFAIL size; __GFP_NOWARN silences it):
 *  `magpool: kmalloc-large: __GFP_NOFAIL allocation larger than the arena
 *  (<size> bytes; the arena holds <n>): failing`. */
MAGPOOL_API void *kmalloc(size_t size, gfp_t gfp);
MAGPOOL_API void *kzalloc(size_t size, gfp_t gfp);
/** n * size zeroed bytes; n * size overflowing: NULL + ENOMEM. */
MAGPOOL_API void *kcalloc(size_t n, size_t size, gfp_t gfp);
/** Resize p (NULL p: kmalloc; new_size 0: kfree and return ZERO_SIZE_PTR).
 *  Returns p itself when it is already big enough (ksize(p) >= new_size);
 *  on failure NULL and p is untouched. */
MAGPOOL_API void *krealloc(const void *p, size_t new_size, gfp_t gfp);
/** Free a kmalloc (or any kmem_cache) object.  NULL / ZERO_SIZE_PTR: nothing. */
MAGPOOL_API void kfree(const void *p);
/** kfree each of p[0..n) (Linux's kfree_bulk: kmem_cache_free_bulk with a
 *  NULL cache). */
static inline void kfree_bulk(size_t n, void **p)
{
    kmem_cache_free_bulk(NULL, n, p);
}
/** Usable size of p (its class or span size); 0 for NULL / ZERO_SIZE_PTR. */
MAGPOOL_API size_t ksize(const void *p);

/* The rest of Linux's kmalloc family.  Misuse of a pointer argument is
 * diagnosed as for kfree / krealloc, under the call's own name. */
/** "Any node": the _node calls accept it (and any other node: one here). */
#ifndef NUMA_NO_NODE
#define NUMA_NO_NODE (-1)
#endif
/** kmalloc(n * size); n * size overflowing: NULL + ENOMEM. */
MAGPOOL_API void *kmalloc_array(size_t n, size_t size, gfp_t gfp);
/** krealloc(p, new_n * new_size); overflowing: NULL + ENOMEM, p untouched. */
MAGPOOL_API void *krealloc_array(void *p, size_t new_n, size_t new_size, gfp_t gfp);
/** kmalloc / kzalloc; node ignored. */
MAGPOOL_API void *kmalloc_node(size_t size, gfp_t gfp, int node);
MAGPOOL_API void *kzalloc_node(size_t size, gfp_t gfp, int node);
/** A kmalloc copy of len bytes of src (len 0: ZERO_SIZE_PTR).  NULL src with
 *  len > 0: NULL + EINVAL. */
MAGPOOL_API void *kmemdup(const void *src, size_t len, gfp_t gfp);
/** A kmalloc copy of string s / of at most max bytes of it / of exactly
 *  len bytes of it, NUL-terminated.  NULL s: NULL (errno untouched, as
 *  Linux returns NULL for it). */
MAGPOOL_API char *kstrdup(const char *s, gfp_t gfp);
MAGPOOL_API char *kstrndup(const char *s, size_t max, gfp_t gfp);
MAGPOOL_API char *kmemdup_nul(const char *s, size_t len, gfp_t gfp);
/** Clear all ksize(p) bytes of p, then kfree it (NULL / ZERO_SIZE_PTR:
 *  nothing).  For kmalloc memory and caches without a constructor (an
 *  object of a cache with one would go back unconstructed). */
MAGPOOL_API void kfree_sensitive(const void *p);
/** kmalloc serves every size (large ones as page spans), so these are
 *  kmalloc, kzalloc, kmalloc_array, kcalloc and kfree under Linux's kv*
 *  names; kvfree frees memory from either family. */
MAGPOOL_API void *kvmalloc(size_t size, gfp_t gfp);
MAGPOOL_API void *kvzalloc(size_t size, gfp_t gfp);
MAGPOOL_API void *kvmalloc_array(size_t n, size_t size, gfp_t gfp);
MAGPOOL_API void *kvcalloc(size_t n, size_t size, gfp_t gfp);
MAGPOOL_API void kvfree(const void *p);
/** The size kmalloc(size) really provides (its ksize): the class size, or
 *  the size rounded up to pages for a large one; 0 for 0; a size kmalloc
 *  can never serve is returned unchanged. */
MAGPOOL_API size_t kmalloc_size_roundup(size_t size);

/** Write a /proc/slabinfo (version 2.1) table of every magpool cache to f
 *  (NULL = stdout).  Columns: name active_objs num_objs objsize objperslab
 *  pagesperslab : tunables limit batchcount sharedfactor : slabdata
 *  active_slabs num_slabs sharedavail.  active_objs = objects taken out of
 *  slabs (in use, in magazines, depot, deferred); num_objs = slot capacity
 *  of the cache's slabs; limit = batchcount = current magazine size;
 *  sharedfactor = 0; sharedavail = objects in the depot (the shared layer). */
MAGPOOL_API void kmem_cache_dump_slabinfo(FILE *f);

#ifdef __cplusplus
}
#endif
#endif /* MAGPOOL_KMEM_CACHE_H */
