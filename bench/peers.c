/*
 * peers.c — the contenders that are not magpool and not DPDK: the floor,
 * glibc, jemalloc, tcmalloc, mimalloc, TBB's scalable allocator, a
 * GlusterFS classic pool (seed 002), a mutex-protected free list, and the
 * deferred-free peers (glibc + liburcu call_rcu, glibc + ck_epoch).
 *
 * Every allocator is called through its own prefixed entry points (mallocx,
 * tc_malloc, mi_malloc_small, scalable_malloc), so plain malloc stays
 * glibc's in the whole process; bench.c checks that at start-up (see
 * README.md, "One process, many allocators").
 */
#define _LGPL_SOURCE 1
#include <ck_epoch.h>
#include <dlfcn.h>
#include <gperftools/malloc_extension_c.h>
#include <gperftools/tcmalloc.h>
#include <jemalloc/jemalloc.h>
#include <malloc.h>
#include <mimalloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <tbb/scalable_allocator.h>
#include <urcu/urcu-memb.h>

#include "bench.h"
#include "bench_aux.h"

/* ===== the floor: an inline thread-local array stack ====================== */
/* Objects come from glibc the first time; afterwards alloc pops and free
 * pushes a per-thread array.  No pool can do less work than this.  In the
 * ctor workload the stack keeps constructed objects: an object is
 * constructed when it comes from glibc and destroyed when it goes back. */
static __thread void **fl_v;
static __thread unsigned fl_n, fl_cap;
#define FLOOR_MAX_CAP (1u << 17)

static __attribute__((noinline)) void *floor_slow_alloc(const struct tctx *t)
{
    void *p = malloc(t->size);
    if (p && t->r->kind == WL_CTOR)
        bench_obj_ctor(p, NULL);
    return p;
}

static __attribute__((noinline)) void floor_slow_free(const struct tctx *t, void *p)
{
    if (fl_cap < FLOOR_MAX_CAP) {
        unsigned cap = fl_cap ? fl_cap * 2 : 256;
        void **v = realloc(fl_v, sizeof(void *) * cap);
        if (v) {
            fl_v = v;
            fl_cap = cap;
            fl_v[fl_n++] = p;
            return;
        }
    }
    if (t->r->kind == WL_CTOR)
        bench_obj_dtor(p, NULL);
    free(p);
}

static inline void *floor_alloc(struct tctx *t)
{
    if (__builtin_expect(fl_n != 0, 1))
        return fl_v[--fl_n];
    return floor_slow_alloc(t);
}

static inline void floor_free(struct tctx *t, void *p)
{
    if (__builtin_expect(fl_n < fl_cap, 1))
        fl_v[fl_n++] = p;
    else
        floor_slow_free(t, p);
}

static void floor_leave(struct tctx *t)
{
    int ctor = t->r->kind == WL_CTOR;
    while (fl_n) {
        void *p = fl_v[--fl_n];
        if (ctor)
            bench_obj_dtor(p, NULL);
        free(p);
    }
    free(fl_v);
    fl_v = NULL;
    fl_cap = 0;
}

static void glibc_trim(struct run *r)
{
    (void)r;
    malloc_trim(0);
}

static int nop_setup(struct run *r)
{
    (void)r;
    return 0;
}

static void nop_teardown(struct run *r)
{
    (void)r;
}

#define CT floor
#define CT_HAS_CTOR 1
#include "bench_tmpl.h"
const struct contender ct_floor = {
    .name = "floor",
    .how = "inline __thread array stack (pop/push), glibc malloc when empty; ctor: the stack keeps "
           "constructed objects",
    .caps = CT_FLOOR,
    .setup = nop_setup,
    .teardown = nop_teardown,
    .thread_leave = floor_leave,
    .shrink = glibc_trim,
    .wl = &floor_wl,
};

/* ===== glibc ============================================================== */
static inline void *glibc_alloc(struct tctx *t)
{
    return malloc(t->size);
}

static inline void glibc_free(struct tctx *t, void *p)
{
    (void)t;
    free(p);
}

#define CT glibc
#include "bench_tmpl.h"
const struct contender ct_glibc = {
    .name = "glibc",
    .how = "malloc(size) / free(p); shrink: malloc_trim(0)",
    .caps = CT_PEER | CT_MALLOC,
    .setup = nop_setup,
    .teardown = nop_teardown,
    .shrink = glibc_trim,
    .wl = &glibc_wl,
};

/* ===== jemalloc =========================================================== */
/* jemalloc's fast path is its malloc (mallocx takes the general path), but its
 * malloc must not become the process's: take it from the library's own
 * symbol table with dlsym and call it through a pointer, as a PLT call would. */
static void *(*je_malloc)(size_t);

static int jemalloc_setup(struct run *r)
{
    (void)r;
    if (!je_malloc) {
        void *h = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
        je_malloc = h ? (void *(*)(size_t))dlsym(h, "malloc") : NULL;
        if (!je_malloc || je_malloc == malloc)
            je_malloc = NULL;
    }
    return je_malloc ? 0 : -1;
}

static inline void *jemalloc_alloc(struct tctx *t)
{
    return je_malloc(t->size);
}

static inline void jemalloc_free(struct tctx *t, void *p)
{
    sdallocx(p, t->size, 0);
}

static void jemalloc_shrink(struct run *r)
{
    (void)r;
    mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* MALLCTL_ARENAS_ALL */
}

#define CT jemalloc
#include "bench_tmpl.h"
const struct contender ct_jemalloc = {
    .name = "jemalloc",
    .how = "jemalloc's malloc(size) (dlsym'd from libjemalloc) / sdallocx(p,size,0); shrink: arena.<all>.purge",
    .caps = CT_PEER | CT_MALLOC,
    .setup = jemalloc_setup,
    .teardown = nop_teardown,
    .shrink = jemalloc_shrink,
    .wl = &jemalloc_wl,
};

/* ===== tcmalloc (gperftools, minimal) ===================================== */
static inline void *tcmalloc_alloc(struct tctx *t)
{
    return tc_malloc(t->size);
}

static inline void tcmalloc_free(struct tctx *t, void *p)
{
    tc_free_sized(p, t->size);
}

static void tcmalloc_shrink(struct run *r)
{
    (void)r;
    MallocExtension_ReleaseFreeMemory();
}

#define CT tcmalloc
#include "bench_tmpl.h"
const struct contender ct_tcmalloc = {
    .name = "tcmalloc",
    .how = "tc_malloc(size) / tc_free_sized(p,size); shrink: ReleaseFreeMemory",
    .caps = CT_PEER | CT_MALLOC,
    .setup = nop_setup,
    .teardown = nop_teardown,
    .shrink = tcmalloc_shrink,
    .wl = &tcmalloc_wl,
};

/* ===== mimalloc =========================================================== */
static inline void *mimalloc_alloc(struct tctx *t)
{
    if (t->size <= MI_SMALL_SIZE_MAX)
        return mi_malloc_small(t->size);
    return mi_malloc(t->size);
}

static inline void mimalloc_free(struct tctx *t, void *p)
{
    (void)t;
    mi_free(p);
}

static void mimalloc_shrink(struct run *r)
{
    (void)r;
    mi_collect(true);
}

#define CT mimalloc
#include "bench_tmpl.h"
const struct contender ct_mimalloc = {
    .name = "mimalloc",
    .how = "mi_malloc_small(size) (mi_malloc > 1 KiB) / mi_free(p); shrink: mi_collect(true)",
    .caps = CT_PEER | CT_MALLOC,
    .setup = nop_setup,
    .teardown = nop_teardown,
    .shrink = mimalloc_shrink,
    .wl = &mimalloc_wl,
};

/* ===== TBB scalable allocator ============================================= */
static inline void *tbb_alloc(struct tctx *t)
{
    return scalable_malloc(t->size);
}

static inline void tbb_free(struct tctx *t, void *p)
{
    (void)t;
    scalable_free(p);
}

static void tbb_shrink(struct run *r)
{
    (void)r;
    scalable_allocation_command(TBBMALLOC_CLEAN_ALL_BUFFERS, NULL);
}

#define CT tbb
#include "bench_tmpl.h"
const struct contender ct_tbb = {
    .name = "tbbmalloc",
    .how = "scalable_malloc(size) / scalable_free(p); shrink: TBBMALLOC_CLEAN_ALL_BUFFERS",
    .caps = CT_MALLOC,
    .setup = nop_setup,
    .teardown = nop_teardown,
    .shrink = tbb_shrink,
    .wl = &tbb_wl,
};

/* ===== GlusterFS classic mem-pool (seed 002), rewritten as a baseline ===== */
/* One lock per pool guards a list of chunks preallocated in one calloc;
 * every chunk carries a header (list link, owning pool, in-use flag) before
 * the object.  When the list is empty, mem_get callocs a chunk (pool_misses);
 * mem_put finds the pool in the header and, if the chunk lies outside the
 * preallocated range, frees it. */
struct gf_chunk {
    struct gf_chunk *next;
    void *pad;
    struct gf_pool *pool;
    int in_use;
    int pad2;
};

struct gf_pool {
    pthread_mutex_t lock;
    struct gf_chunk *list;
    char *base, *end;
    size_t padded;
    unsigned long hot_count, cold_count, alloc_count, max_alloc;
    unsigned long pool_misses, curr_stdalloc, max_stdalloc;
};

static int gluster_setup(struct run *r)
{
    struct gf_pool *gp = calloc(1, sizeof(*gp));
    if (!gp)
        return -1;
    size_t count = r->max_live + r->threads;
    if (count > (1u << 20))
        count = 1u << 20;
    gp->padded = sizeof(struct gf_chunk) + ((r->size + 15) & ~(size_t)15);
    gp->base = calloc(count, gp->padded);
    if (!gp->base) {
        free(gp);
        return -1;
    }
    gp->end = gp->base + count * gp->padded;
    pthread_mutex_init(&gp->lock, NULL);
    for (size_t i = count; i-- > 0;) {
        struct gf_chunk *c = (struct gf_chunk *)(gp->base + i * gp->padded);
        c->next = gp->list;
        gp->list = c;
    }
    gp->cold_count = count;
    r->pool = gp;
    return 0;
}

static void gluster_teardown(struct run *r)
{
    struct gf_pool *gp = r->pool;
    pthread_mutex_destroy(&gp->lock);
    free(gp->base);
    free(gp);
    r->pool = NULL;
}

static inline void *gluster_alloc(struct tctx *t)
{
    struct gf_pool *gp = t->pool;
    struct gf_chunk *c;
    pthread_mutex_lock(&gp->lock);
    gp->alloc_count++;
    c = gp->list;
    if (c) {
        gp->list = c->next;
        gp->hot_count++;
        gp->cold_count--;
        if (gp->max_alloc < gp->hot_count)
            gp->max_alloc = gp->hot_count;
    } else {
        gp->pool_misses++;
        if (++gp->curr_stdalloc > gp->max_stdalloc)
            gp->max_stdalloc = gp->curr_stdalloc;
        c = calloc(1, gp->padded);
        if (!c) {
            pthread_mutex_unlock(&gp->lock);
            return NULL;
        }
    }
    c->pool = gp;
    c->in_use = 1;
    pthread_mutex_unlock(&gp->lock);
    return c + 1;
}

static inline void gluster_free(struct tctx *t, void *p)
{
    (void)t;
    struct gf_chunk *c = (struct gf_chunk *)p - 1;
    struct gf_pool *gp = c->pool;
    pthread_mutex_lock(&gp->lock);
    c->in_use = 0;
    if ((char *)c >= gp->base && (char *)c < gp->end) {
        c->next = gp->list;
        gp->list = c;
        gp->hot_count--;
        gp->cold_count++;
        pthread_mutex_unlock(&gp->lock);
    } else {
        gp->curr_stdalloc--;
        pthread_mutex_unlock(&gp->lock);
        free(c);
    }
}

#define CT gluster
#include "bench_tmpl.h"
const struct contender ct_gluster = {
    .name = "gluster-classic",
    .how = "seed-002 mem_get/mem_put: one mutex, list preallocated to the live set (cap 1M), calloc past it",
    .caps = CT_FIXED,
    .setup = gluster_setup,
    .teardown = gluster_teardown,
    .shrink = glibc_trim,
    .wl = &gluster_wl,
};

/* ===== mutex-protected free list ========================================== */
struct mx_list {
    pthread_mutex_t lock;
    void *head;
};

static int mutexlist_setup(struct run *r)
{
    struct mx_list *m = calloc(1, sizeof(*m));
    if (!m)
        return -1;
    pthread_mutex_init(&m->lock, NULL);
    r->pool = m;
    return 0;
}

static void mutexlist_drain(struct mx_list *m)
{
    while (m->head) {
        void *p = m->head;
        m->head = *(void **)p;
        free(p);
    }
}

static void mutexlist_teardown(struct run *r)
{
    struct mx_list *m = r->pool;
    mutexlist_drain(m);
    pthread_mutex_destroy(&m->lock);
    free(m);
    r->pool = NULL;
}

static void mutexlist_shrink(struct run *r)
{
    mutexlist_drain(r->pool);
    malloc_trim(0);
}

static inline void *mutexlist_alloc(struct tctx *t)
{
    struct mx_list *m = t->pool;
    pthread_mutex_lock(&m->lock);
    void *p = m->head;
    if (p)
        m->head = *(void **)p;
    pthread_mutex_unlock(&m->lock);
    return p ? p : malloc(t->size < sizeof(void *) ? sizeof(void *) : t->size);
}

static inline void mutexlist_free(struct tctx *t, void *p)
{
    struct mx_list *m = t->pool;
    pthread_mutex_lock(&m->lock);
    *(void **)p = m->head;
    m->head = p;
    pthread_mutex_unlock(&m->lock);
}

#define CT mutexlist
#include "bench_tmpl.h"
const struct contender ct_mutexlist = {
    .name = "mutex-list",
    .how = "pthread_mutex + singly linked free list, glibc malloc when empty",
    .caps = 0,
    .setup = mutexlist_setup,
    .teardown = mutexlist_teardown,
    .shrink = mutexlist_shrink,
    .wl = &mutexlist_wl,
};

/* ===== glibc + liburcu (memb flavour) call_rcu ============================ */
/* What a liburcu user writes: an rcu_head at the start of the object,
 * call_rcu() to retire it, the call_rcu worker thread frees it. */
static void urcu_free_cb(struct rcu_head *h)
{
    free(h);
}

static inline void *glibc_urcu_alloc(struct tctx *t)
{
    return malloc(t->size);
}

static inline void glibc_urcu_free(struct tctx *t, void *p)
{
    (void)t;
    free(p);
}

static inline void glibc_urcu_read_enter(struct tctx *t)
{
    (void)t;
    urcu_memb_read_lock();
}

static inline void glibc_urcu_read_leave(struct tctx *t)
{
    (void)t;
    urcu_memb_read_unlock();
}

static inline void glibc_urcu_retire(struct tctx *t, void *p)
{
    (void)t;
    urcu_memb_call_rcu((struct rcu_head *)p, urcu_free_cb);
}

static inline void glibc_urcu_sync(struct tctx *t)
{
    (void)t;
    urcu_memb_barrier();
}

static void urcu_enter(struct tctx *t)
{
    (void)t;
    urcu_memb_register_thread();
}

static void urcu_leave(struct tctx *t)
{
    (void)t;
    urcu_memb_unregister_thread();
}

#define CT glibc_urcu
#define CT_HAS_DEFERRED 1
#include "bench_tmpl.h"
const struct contender ct_glibc_urcu = {
    .name = "glibc+urcu",
    .how = "malloc; urcu_memb_read_lock/unlock; retire = urcu_memb_call_rcu(head, free)",
    .caps = CT_DEFERRED,
    .setup = nop_setup,
    .teardown = nop_teardown,
    .thread_enter = urcu_enter,
    .thread_leave = urcu_leave,
    .shrink = glibc_trim,
    .wl = &glibc_urcu_wl,
};

/* ===== glibc + Concurrency Kit ck_epoch =================================== */
/* A ck_epoch_entry at the start of the object, ck_epoch_call to retire,
 * ck_epoch_poll every 32 retires to run what has become safe. */
static ck_epoch_t bench_epoch;
static pthread_once_t bench_epoch_once = PTHREAD_ONCE_INIT;

struct ck_local {
    ck_epoch_record_t *rec;
    unsigned pending;
};

static void ck_init_once(void)
{
    ck_epoch_init(&bench_epoch);
}

static void ck_free_cb(ck_epoch_entry_t *e)
{
    free(e);
}

static inline void *glibc_ckepoch_alloc(struct tctx *t)
{
    return malloc(t->size);
}

static inline void glibc_ckepoch_free(struct tctx *t, void *p)
{
    (void)t;
    free(p);
}

static inline void glibc_ckepoch_read_enter(struct tctx *t)
{
    ck_epoch_begin(((struct ck_local *)t->local)->rec, NULL);
}

static inline void glibc_ckepoch_read_leave(struct tctx *t)
{
    ck_epoch_end(((struct ck_local *)t->local)->rec, NULL);
}

static inline void glibc_ckepoch_retire(struct tctx *t, void *p)
{
    struct ck_local *l = t->local;
    ck_epoch_call(l->rec, (ck_epoch_entry_t *)p, ck_free_cb);
    if (++l->pending % 32 == 0)
        ck_epoch_poll(l->rec);
}

static inline void glibc_ckepoch_sync(struct tctx *t)
{
    ck_epoch_barrier(((struct ck_local *)t->local)->rec);
}

static void ckepoch_enter(struct tctx *t)
{
    pthread_once(&bench_epoch_once, ck_init_once);
    struct ck_local *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    l->rec = ck_epoch_recycle(&bench_epoch, NULL);
    if (!l->rec) {
        l->rec = calloc(1, sizeof(*l->rec));
        if (!l->rec)
            abort();
        ck_epoch_register(&bench_epoch, l->rec, NULL);
    }
    t->local = l;
}

static void ckepoch_leave(struct tctx *t)
{
    struct ck_local *l = t->local;
    ck_epoch_barrier(l->rec);
    ck_epoch_unregister(l->rec); /* recycled by a later thread, never freed */
    free(l);
    t->local = NULL;
}

#define CT glibc_ckepoch
#define CT_HAS_DEFERRED 1
#include "bench_tmpl.h"
const struct contender ct_glibc_ckepoch = {
    .name = "glibc+ck_epoch",
    .how = "malloc; ck_epoch_begin/end; retire = ck_epoch_call(free) + ck_epoch_poll every 32",
    .caps = CT_DEFERRED,
    .setup = nop_setup,
    .teardown = nop_teardown,
    .thread_enter = ckepoch_enter,
    .thread_leave = ckepoch_leave,
    .shrink = glibc_trim,
    .wl = &glibc_ckepoch_wl,
};
