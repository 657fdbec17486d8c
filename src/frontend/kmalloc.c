/*
 * kmalloc family over kmem_cache size classes and page spans.
 *
 * What this layer guarantees
 *  - Sizes 1..8192 are served by thirteen kmem caches "kmalloc-<n>" (8, 16,
 *    32, 64, 96, 128, 192, 256, 512, 1k, 2k, 4k, 8k), all created together on
 *    first use (under a lock, fork-safe: classes_ensure).  Power-of-two classes ask the core for
 *    align = size (capped at 4096, the core's largest alignment); 96 and 192
 *    for 16.  Class lookup: a table for <= 192 bytes, a bit scan above.
 *  - Larger sizes are large blocks (mp_large_alloc, slab.h): page aligned, and aligned
 *    to their size when it is a power of two up to 4 MiB (spans that fit a
 *    buddy block are such a block).  Every page of a span carries the owner
 *    mp_large_tag in the page map: a slab lookup record that matches no
 *    address (slab.h's rule), so kfree/ksize tell spans from slab objects
 *    with the one page-map lookup they need anyway.
 *  - kmalloc's fast path: a size test, a table load (the class caches are
 *    published with release once all exist; readers acquire, a plain load on
 *    x86) and the core's inline pop.  No pthread_once per call.
 *  - With red zones on the classes (MAGPOOL_DEBUG=redzone), each object
 *    records the size asked for and the bytes past it to the class size are
 *    a red zone, checked at kfree (debug.c, mp_debug_set_request); such
 *    classes are not published in class_cache, so their kmallocs take
 *    kmalloc_slow, which records the size, and the hit path checks nothing.
 *  - kfree's fast path: one inline page-map + slab-descriptor lookup
 *    (validates foreign / misaligned) compared with the cache this thread
 *    last kfree'd to (mp_fe_owner_memo), then the core's inline push
 *    (immediate double free).  A new owner is checked out of line for the
 *    kmem caches' front-end tag (MP_TAG_KMEM: any kmem cache, Linux >= 6.4
 *    allows that too) and remembered.  NULL, ZERO_SIZE_PTR, large spans and
 *    every misuse go out of line.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "frontend.h"
#include "kmem_internal.h"

#define NCLASSES 13
static const unsigned class_size[NCLASSES] = {8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192};
/* (size - 1) / 8 -> class, for sizes 1..192 */
static const uint8_t small_class[24] = {0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
                                        5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6};
static struct kmem_cache *classes[NCLASSES];
/* The classes' core caches, published with release by classes_init once all
 * exist (NULL before, or for ever if creating one failed).  Acquire in
 * kmalloc pairs with it: a reader that sees a cache sees it initialised.
 * Weakened, kmalloc could pop from a cache whose fields it cannot see yet. */
static _Atomic(magpool_cache_t *) class_cache[NCLASSES];
/* The same caches by (size - 1) / 8 for sizes 1..192 (Linux's size_index):
 * kmalloc's hit for a small size is one load here, no class number in
 * between.  Published and read exactly as class_cache. */
#define SMALL_MAX 192
static _Atomic(magpool_cache_t *) small_cache[SMALL_MAX / 8];
static bool classes_ok;
/* The classes are made once, by the first kmalloc, under classes_lock; then
 * classes_state is CLASSES_DONE (release, with classes[] and classes_ok).
 * Not pthread_once: a fork while another thread runs the initialisation
 * would leave the child's once-control "in progress" for ever, and the
 * child's first kmalloc would hang (stress/fork found it).  The child
 * handler below starts over instead. */
enum { CLASSES_NONE, CLASSES_DONE };
static pthread_mutex_t classes_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int classes_state;



static void classes_init(void)
{
    for (int i = 0; i < NCLASSES; i++) {
        char name[32];
        unsigned sz = class_size[i];
        unsigned align = (sz & (sz - 1)) == 0 ? (sz < 4096 ? sz : 4096) : 16;
        snprintf(name, sizeof name, "kmalloc-%u%s", sz >= 1024 ? sz / 1024 : sz, sz >= 1024 ? "k" : "");
        classes[i] = mp_kmem_cache_create(name, sz, align, 0, NULL, MP_KMALLOC_CACHE);
        if (classes[i] == NULL)
            return; /* classes_ok stays false: every kmalloc fails with ENOMEM */
    }
    classes_ok = true;
    /* A class that records requested sizes (red zones on: debug.c) is not
     * published, so its kmallocs all take kmalloc_slow, which records them;
     * the hit path carries no check for it. */
    for (int i = 0; i < NCLASSES; i++)
        if (!mp_debug_tracks_request(classes[i]->c))
            /* Release: publishes the initialised cache; pairs with the
             * acquire load in kmalloc_inline (class_cache above).  Weakened,
             * kmalloc could pop from a cache whose fields it cannot see. */
            mp_store_release(&class_cache[i], classes[i]->c);
    for (unsigned k = 0; k < SMALL_MAX / 8; k++) {
        unsigned i = small_class[k];
        if (!mp_debug_tracks_request(classes[i]->c))
            /* Release: as class_cache's, paired with kmalloc_inline's acquire. */
            mp_store_release(&small_cache[k], classes[i]->c);
    }
}

static void classes_ensure(void)
{
    /* Acquire: pairs with the release store of CLASSES_DONE, so classes[]
     * and classes_ok are visible.  Weakened, a thread could see DONE and
     * read a NULL class. */
    if (mp_load_acquire(&classes_state) == CLASSES_DONE)
        return;
    pthread_mutex_lock(&classes_lock);
    if (mp_load_relaxed(&classes_state) != CLASSES_DONE) {
        classes_init();
        /* Release: publishes classes[] and classes_ok (see above). */
        mp_store_release(&classes_state, CLASSES_DONE);
    }
    pthread_mutex_unlock(&classes_lock);
}

/* In a fork child: if another thread of the parent was making the classes,
 * start over (the caches it had made stay, unused: a few kilobytes), with a
 * fresh lock, since that thread does not exist here.  Registered at load,
 * so no once-control is involved. */
static void classes_fork_child(void)
{
    if (mp_load_relaxed(&classes_state) != CLASSES_DONE) {
        pthread_mutex_init(&classes_lock, NULL);
        classes_ok = false;
        mp_store_relaxed(&classes_state, CLASSES_NONE);
    }
}

__attribute__((constructor)) static void classes_fork_register(void)
{
    if (pthread_atfork(NULL, NULL, classes_fork_child) != 0)
        fprintf(stderr, "magpool: kmalloc: pthread_atfork failed at %p\n", (void *)&classes_lock);
}

static inline unsigned size_to_class(size_t size)
{
    if (size <= 192)
        return small_class[(size - 1) >> 3];
    return (unsigned)(64 - __builtin_clzll((unsigned long long)(size - 1))) - 1; /* ceil log2 - 1 */
}

/* A size no retry can ever serve (larger than the arena, or than a span can
 * describe).  __GFP_NOFAIL cannot keep its promise, so, as Linux warns and
 * fails such a request, one line (unless __GFP_NOWARN), then NULL + ENOMEM. */
static __attribute__((noinline, cold)) void *kmalloc_impossible(size_t size, gfp_t gfp)
{
    if ((gfp & __GFP_NOFAIL) && !(gfp & __GFP_NOWARN)) {
        char detail[128];
        snprintf(detail, sizeof detail, "(%zu bytes; the arena holds %llu): failing", size,
                 (unsigned long long)mp_large_limit());
        mp_report("kmalloc-large", NULL, "__GFP_NOFAIL allocation larger than the arena", detail, true);
    }
    errno = ENOMEM;
    return NULL;
}

static __attribute__((noinline)) void *kmalloc_large(size_t size, gfp_t gfp)
{
    if (size > SIZE_MAX - (MP_PAGE_SIZE - 1))
        return kmalloc_impossible(size, gfp);
    size_t npages = (size + MP_PAGE_SIZE - 1) >> MP_PAGE_SHIFT;
    unsigned aflags = mp_gfp_to_aflags(gfp);
    void *p;
    for (;;) {
        p = mp_large_alloc(npages, aflags & MAGPOOL_NOWAIT);
        if (p != NULL || !(aflags & MAGPOOL_NOFAIL) || errno == EINVAL)
            break;
        mp_nofail_wait(); /* __GFP_NOFAIL */
    }
    if (p == NULL)
        return errno == EINVAL ? kmalloc_impossible(size, gfp) : NULL; /* EINVAL: never (page.h) */
    if (aflags & MAGPOOL_ZERO)
        memset(p, 0, size);
    return p;
}

/* Everything but a class-cache allocation after init: size 0, large sizes,
 * the first call (creates the classes). */
static __attribute__((noinline, cold)) void *kmalloc_slow(size_t size, gfp_t gfp, const void *caller)
{
    if (size == 0)
        return ZERO_SIZE_PTR;
    if (size > KMALLOC_MAX_CACHE_SIZE)
        return kmalloc_large(size, gfp);
    classes_ensure();
    if (!classes_ok) {
        errno = ENOMEM;
        return NULL;
    }
    magpool_cache_t *c = classes[size_to_class(size)]->c;
    void *p = mp_kmem_alloc(c, gfp, caller);
    if (p != NULL)
        mp_debug_set_request(c, p, size); /* red zones: the bytes past size are one */
    return p;
}

static inline __attribute__((always_inline)) void *kmalloc_inline(size_t size, gfp_t gfp, const void *caller)
{
    /* Acquire (both tables): pairs with the release in classes_init, so the
     * cache's fields are initialised.  Weakened, the inline pop could read a
     * cache whose fields it cannot see yet.  Size 0 wraps to the slow path. */
    magpool_cache_t *c;
    if (__builtin_expect(size - 1 < SMALL_MAX, 1))
        c = mp_load_acquire(&small_cache[(size - 1) >> 3]);
    else if (__builtin_expect(size - 1 < KMALLOC_MAX_CACHE_SIZE, 1))
        c = mp_load_acquire(&class_cache[size_to_class(size)]);
    else
        return kmalloc_slow(size, gfp, caller);
    if (__builtin_expect(c == NULL, 0))
        return kmalloc_slow(size, gfp, caller);
    return mp_kmem_alloc(c, gfp, caller);
}

MP_HOT_ENTRY void *kmalloc(size_t size, gfp_t gfp)
{
    return kmalloc_inline(size, gfp, __builtin_return_address(0));
}

void *kzalloc(size_t size, gfp_t gfp)
{
    return kmalloc_inline(size, gfp | __GFP_ZERO, __builtin_return_address(0));
}

/* n * size in *bytes; false + ENOMEM when it overflows (the array calls). */
static inline bool array_bytes(size_t n, size_t size, size_t *bytes)
{
    if (__builtin_expect(__builtin_mul_overflow(n, size, bytes), 0)) {
        errno = ENOMEM;
        return false;
    }
    return true;
}

void *kcalloc(size_t n, size_t size, gfp_t gfp)
{
    size_t bytes;
    if (!array_bytes(n, size, &bytes))
        return NULL;
    return kmalloc_inline(bytes, gfp | __GFP_ZERO, __builtin_return_address(0));
}


/* One diagnostic about a large (page span) kmalloc block. */
static __attribute__((noinline, cold)) void large_misuse(const void *p, const char *kind, const char *detail)
{
    mp_report("kmalloc-large", p, kind, detail, mp_continues(0));
}

static __attribute__((noinline, cold)) void large_misaligned(const void *p, const char *op)
{
    char detail[64];
    snprintf(detail, sizeof detail, "(%s: inside a large kmalloc)", op);
    large_misuse(p, "misaligned pointer", detail);
}

/* kfree of anything but a valid kmem object: NULL, ZERO_SIZE_PTR, a large
 * span, or a misuse (diagnosed by mp_kmem_owner). */
static __attribute__((noinline, cold)) void kfree_slow(const void *p, const void *caller)
{
    if (ZERO_OR_NULL_PTR(p))
        return;
    if (mp_large_owns(p)) {
        if (mp_large_pages(p) == 0) {
            large_misaligned(p, "kfree");
            return;
        }
        mp_large_free((void *)p);
        return;
    }
    /* A page start in the arena that nothing owns: what a large block's
     * first kfree leaves (a foreign pointer lies outside the arena). */
    if (mp_large_was_freed(p)) {
        large_misuse(p, "double free", "(kfree: no block starts here any more)");
        return;
    }
    struct kmem_cache *s = mp_kmem_owner(p, "kfree");
    if (s != NULL) /* (only a racing misuse elsewhere gets here) */
        mp_fast_free(s->c, (void *)p, caller);
}

/* The kmem cache this thread last kfree'd to (mp_fe_owner_memo). */
static __thread magpool_cache_t *kfree_memo __attribute__((tls_model("initial-exec"))) = MP_FE_MEMO_INIT;

/* kfree when the owner is not the remembered cache: any kmem cache's object
 * (its tag) is remembered and freed; the rest goes to kfree_slow. */
static __attribute__((noinline)) void kfree_new_owner(const void *p, const void *caller)
{
    magpool_cache_t *c = mp_fe_owner_learn(p, MP_TAG_KMEM, &kfree_memo);
    if (c == NULL)
        return kfree_slow(p, caller);
    mp_fast_free(c, (void *)p, caller);
}

static inline __attribute__((always_inline)) void kfree_inline(const void *p, const void *caller)
{
    magpool_cache_t *c = kfree_memo;
    if (__builtin_expect(!mp_fe_owner_memo(p, &c), 0))
        return kfree_new_owner(p, caller);
    mp_fast_free(c, (void *)p, caller);
}

MP_HOT_ENTRY void kfree(const void *p)
{
    kfree_inline(p, __builtin_return_address(0));
}

/* ksize of p for the call `op` (ksize, krealloc), which names a misuse. */
static size_t ksize_op(const void *p, const char *op)
{
    if (ZERO_OR_NULL_PTR(p))
        return 0;
    if (mp_large_owns(p)) {
        size_t npages = mp_large_pages(p);
        if (npages == 0)
            large_misaligned(p, op);
        return npages << MP_PAGE_SHIFT;
    }
    struct kmem_cache *s = mp_kmem_owner(p, op);
    if (s == NULL)
        return 0;
    mp_debug_set_request(s->c, (void *)p, s->size); /* all of it is usable now, as in Linux */
    return s->size;
}

size_t ksize(const void *p)
{
    return ksize_op(p, "ksize");
}

void *krealloc(const void *p, size_t new_size, gfp_t gfp)
{
    if (ZERO_OR_NULL_PTR(p))
        return kmalloc(new_size, gfp);
    if (new_size == 0) {
        kfree(p);
        return ZERO_SIZE_PTR;
    }
    size_t old = ksize_op(p, "krealloc");
    if (old == 0) /* misuse diagnosed (continue mode): leave p alone */
        return NULL;
    if (old >= new_size) {
        /* In place: new_size is the request now (red zones: the rest is one). */
        mp_debug_set_request(mp_slab_owner_inline(p), (void *)p, new_size);
        return (void *)p;
    }
    void *q = kmalloc(new_size, gfp & ~(gfp_t)__GFP_ZERO);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old);
    if (gfp & __GFP_ZERO)
        memset((char *)q + old, 0, new_size - old);
    kfree(p);
    return q;
}

/* ---- the rest of Linux's kmalloc family -------------------------------------
 * Each is the kmalloc/kfree above with Linux's arithmetic around it; the
 * caller recorded (SLAB_STORE_USER) is the application's call site. */

void *kmalloc_array(size_t n, size_t size, gfp_t gfp)
{
    size_t bytes;
    if (!array_bytes(n, size, &bytes))
        return NULL;
    return kmalloc_inline(bytes, gfp, __builtin_return_address(0));
}

void *krealloc_array(void *p, size_t new_n, size_t new_size, gfp_t gfp)
{
    size_t bytes;
    if (!array_bytes(new_n, new_size, &bytes))
        return NULL; /* p untouched, as krealloc's failure leaves it */
    return krealloc(p, bytes, gfp);
}

/* One memory node here: node is accepted and ignored, as Linux does for
 * NUMA_NO_NODE. */
void *kmalloc_node(size_t size, gfp_t gfp, int node)
{
    (void)node;
    return kmalloc_inline(size, gfp, __builtin_return_address(0));
}

void *kzalloc_node(size_t size, gfp_t gfp, int node)
{
    (void)node;
    return kmalloc_inline(size, gfp | __GFP_ZERO, __builtin_return_address(0));
}

void *kmemdup(const void *src, size_t len, gfp_t gfp)
{
    if (src == NULL && len != 0) {
        errno = EINVAL;
        return NULL;
    }
    void *p = kmalloc_inline(len, gfp & ~(gfp_t)__GFP_ZERO, __builtin_return_address(0));
    if (p != NULL && len != 0)
        memcpy(p, src, len);
    return p;
}

/* kmemdup of len bytes of s and a NUL after them. */
static char *dup_chars(const char *s, size_t len, gfp_t gfp, const void *caller)
{
    if (len == SIZE_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = kmalloc_inline(len + 1, gfp & ~(gfp_t)__GFP_ZERO, caller);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *kstrdup(const char *s, gfp_t gfp)
{
    if (s == NULL)
        return NULL; /* as Linux: NULL in, NULL out (errno untouched) */
    return dup_chars(s, strlen(s), gfp, __builtin_return_address(0));
}

char *kstrndup(const char *s, size_t max, gfp_t gfp)
{
    if (s == NULL)
        return NULL;
    return dup_chars(s, strnlen(s, max), gfp, __builtin_return_address(0));
}

char *kmemdup_nul(const char *s, size_t len, gfp_t gfp)
{
    if (s == NULL)
        return NULL;
    return dup_chars(s, len, gfp, __builtin_return_address(0));
}

void kfree_sensitive(const void *p)
{
    size_t n = ksize_op(p, "kfree_sensitive"); /* 0: NULL, ZERO_SIZE_PTR or a misuse (diagnosed) */
    if (n == 0)
        return;
    memset((void *)p, 0, n);
    /* The compiler must not drop the clearing as a store to memory about
     * to be freed: make it observable. */
    __asm__ volatile("" : : "r"(p) : "memory");
    kfree_inline(p, __builtin_return_address(0));
}

/* kmalloc serves every size (large ones as page spans), so each kv* call is
 * its kmalloc-family twin under a second name (an alias: one function, so
 * the recorded caller stays the application's); kvfree frees either. */
void *kvmalloc(size_t size, gfp_t gfp) __attribute__((alias("kmalloc")));
void *kvzalloc(size_t size, gfp_t gfp) __attribute__((alias("kzalloc")));
void *kvmalloc_array(size_t n, size_t size, gfp_t gfp) __attribute__((alias("kmalloc_array")));
void *kvcalloc(size_t n, size_t size, gfp_t gfp) __attribute__((alias("kcalloc")));
void kvfree(const void *p) __attribute__((alias("kfree")));

size_t kmalloc_size_roundup(size_t size)
{
    if (size == 0)
        return 0;
    if (size <= KMALLOC_MAX_CACHE_SIZE)
        return class_size[size_to_class(size)];
    if (size > mp_large_limit())
        return size; /* kmalloc(size) fails: the size is returned unchanged, as Linux does */
    return (size + MP_PAGE_SIZE - 1) & ~(size_t)(MP_PAGE_SIZE - 1);
}
