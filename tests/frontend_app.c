/*
 * A program written only against the two front-end headers, the way their
 * users write code: kernel-style (KMEM_CACHE with a constructor, kmalloc'd
 * payloads, kmem_cache_free_rcu with readers) and GlusterFS-style
 * (mem_pool_new / mem_get0 / mem_put, statedump).  Several threads; every
 * object crosses threads: producers allocate and fill it with a cookie
 * (address, producer, sequence), consumers verify the cookie and free it.
 * Meant to pass under ThreadSanitizer and AddressSanitizer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "magpool/kmem_cache.h"
#include "magpool/mem_pool.h"
#include "tests/check.h"

#ifdef CHECK_SANITIZED
enum { PER_PRODUCER = 4000 };
#else
enum { PER_PRODUCER = 40000 };
#endif
enum { PRODUCERS = 3, CONSUMERS = 2, QCAP = 256 };

/* ---- kernel-style objects ---- */
struct request {
    unsigned long magic; /* set by the constructor, kept across reuse */
    const void *self;
    int producer;
    long seq;
    size_t len;
    unsigned char *payload; /* kmalloc'd */
};
#define REQ_MAGIC 0x52455155ul
static struct kmem_cache *req_cache;
static atomic_long req_ctor_runs;
static void request_ctor(void *p)
{
    struct request *r = p;
    r->magic = REQ_MAGIC;
    atomic_fetch_add_explicit(&req_ctor_runs, 1, memory_order_relaxed);
}

/* ---- GlusterFS-style objects ---- */
struct call_stub {
    const void *self;
    int producer;
    long seq;
    char fop[24];
};
static struct mem_pool *stub_pool;

/* ---- the application's own hand-off queue (mutex + condvars) ---- */
struct item {
    int kind; /* 0 request, 1 stub, -1 stop */
    void *obj;
};
static struct item q[QCAP];
static int qhead, qtail, qlen;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnotfull = PTHREAD_COND_INITIALIZER, qnotempty = PTHREAD_COND_INITIALIZER;

static void qpush(struct item it)
{
    pthread_mutex_lock(&qlock);
    while (qlen == QCAP)
        pthread_cond_wait(&qnotfull, &qlock);
    q[qtail] = it;
    qtail = (qtail + 1) % QCAP;
    qlen++;
    pthread_cond_signal(&qnotempty);
    pthread_mutex_unlock(&qlock);
}
static struct item qpop(void)
{
    pthread_mutex_lock(&qlock);
    while (qlen == 0)
        pthread_cond_wait(&qnotempty, &qlock);
    struct item it = q[qhead];
    qhead = (qhead + 1) % QCAP;
    qlen--;
    pthread_cond_signal(&qnotfull);
    pthread_mutex_unlock(&qlock);
    return it;
}

static atomic_long consumed_req, consumed_stub, bad_cookies, alloc_failures;

static void *producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (long s = 0; s < PER_PRODUCER; s++) {
        if (s % 2 == 0) {
            struct request *r = kmem_cache_alloc(req_cache, GFP_KERNEL);
            size_t len = (size_t)((s * 131 + id * 7) % 12000) + 1; /* classes and large spans */
            unsigned char *pl = r ? kmalloc(len, GFP_KERNEL) : NULL;
            if (r == NULL || pl == NULL) {
                atomic_fetch_add(&alloc_failures, 1);
                continue;
            }
            if (r->magic != REQ_MAGIC)
                atomic_fetch_add(&bad_cookies, 1);
            r->self = r;
            r->producer = id;
            r->seq = s;
            r->len = len;
            memset(pl, (int)(s & 0xff), len);
            r->payload = pl;
            qpush((struct item){0, r});
        } else {
            struct call_stub *st = mem_get0(stub_pool);
            if (st == NULL) {
                atomic_fetch_add(&alloc_failures, 1);
                continue;
            }
            if (st->self != NULL || st->seq != 0)
                atomic_fetch_add(&bad_cookies, 1); /* mem_get0 must zero */
            st->self = st;
            st->producer = id;
            st->seq = s;
            snprintf(st->fop, sizeof st->fop, "WRITE-%d", id);
            qpush((struct item){1, st});
        }
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        struct item it = qpop();
        if (it.kind < 0)
            return NULL;
        if (it.kind == 0) {
            struct request *r = it.obj;
            int ok = r->self == r && r->magic == REQ_MAGIC && r->payload[0] == (r->seq & 0xff) &&
                     r->payload[r->len - 1] == (r->seq & 0xff) && ksize(r->payload) >= r->len;
            if (!ok)
                atomic_fetch_add(&bad_cookies, 1);
            kfree(r->payload);
            r->payload = NULL; /* back in constructed state: magic untouched */
            kmem_cache_free(req_cache, r);
            atomic_fetch_add(&consumed_req, 1);
        } else {
            struct call_stub *st = it.obj;
            char want[24];
            snprintf(want, sizeof want, "WRITE-%d", st->producer);
            if (st->self != st || strcmp(st->fop, want) != 0)
                atomic_fetch_add(&bad_cookies, 1);
            mem_put(st);
            atomic_fetch_add(&consumed_stub, 1);
        }
    }
}

/* ---- RCU-style: readers dereference a published config; the writer
 *      replaces it and frees the old one with kmem_cache_free_rcu ---- */
struct config {
    long version;
    long check; /* == version * 3 while live */
};
static struct kmem_cache *cfg_cache;
static _Atomic(struct config *) current_cfg;
static atomic_int stop_readers;
static atomic_long reader_errors, reads;

static void *rcu_reader(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop_readers, memory_order_acquire)) {
        kmem_cache_rcu_read_lock();
        struct config *c = atomic_load_explicit(&current_cfg, memory_order_acquire);
        if (c->check != c->version * 3)
            atomic_fetch_add(&reader_errors, 1);
        kmem_cache_rcu_read_unlock();
        atomic_fetch_add_explicit(&reads, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *rcu_writer(void *arg)
{
    (void)arg;
    for (long v = 1; v <= PER_PRODUCER / 4; v++) {
        struct config *n = kmem_cache_alloc(cfg_cache, GFP_KERNEL);
        n->version = v;
        n->check = v * 3;
        struct config *old = atomic_exchange_explicit(&current_cfg, n, memory_order_acq_rel);
        kmem_cache_free_rcu(cfg_cache, old);
        if (v % 256 == 0)
            kmem_cache_synchronize_rcu();
    }
    return NULL;
}

static int dump_contains(void (*dump)(FILE *), const char *needle)
{
    FILE *f = tmpfile();
    if (f == NULL)
        return 0;
    dump(f);
    rewind(f);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

int main(void)
{
    req_cache = kmem_cache_create("request", sizeof(struct request), 0, SLAB_HWCACHE_ALIGN, request_ctor);
    CHECK(req_cache != NULL);
    stub_pool = mem_pool_new(struct call_stub, 128);
    CHECK(stub_pool != NULL);
    cfg_cache = kmem_cache_create("config", sizeof(struct config), 0, SLAB_TYPESAFE_BY_RCU, NULL);
    CHECK(cfg_cache != NULL);
    struct config *c0 = kmem_cache_zalloc(cfg_cache, GFP_KERNEL);
    atomic_store(&current_cfg, c0);

    pthread_t prod[PRODUCERS], cons[CONSUMERS], rd[2], wr;
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&cons[i], NULL, consumer, NULL);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&prod[i], NULL, producer, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++)
        pthread_create(&rd[i], NULL, rcu_reader, NULL);
    pthread_create(&wr, NULL, rcu_writer, NULL);

    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(prod[i], NULL);
    pthread_join(wr, NULL);
    atomic_store_explicit(&stop_readers, 1, memory_order_release);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);

    /* statedumps while consumers still run */
    CHECK(dump_contains(mem_pool_dump, "pool-name=struct call_stub\n"));
    CHECK(dump_contains(kmem_cache_dump_slabinfo, "\nrequest "));
    CHECK(dump_contains(kmem_cache_dump_slabinfo, "\nkmalloc-64 "));

    for (int i = 0; i < CONSUMERS; i++)
        qpush((struct item){-1, NULL});
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(cons[i], NULL);

    long total = (long)PRODUCERS * PER_PRODUCER;
    CHECK(atomic_load(&alloc_failures) == 0);
    CHECK(atomic_load(&bad_cookies) == 0);
    CHECK(atomic_load(&consumed_req) + atomic_load(&consumed_stub) == total);
    CHECK(atomic_load(&consumed_req) == total / 2);
    CHECK(atomic_load(&reader_errors) == 0);
    CHECK(atomic_load(&req_ctor_runs) <= total / 2); /* never once per allocation */

    struct mem_pool_stats st;
    CHECK(mem_pool_get_stats(stub_pool, &st) == 0);
    CHECK(st.hot_count == 0 && st.cur_stdalloc == 0);
    CHECK(st.alloc_count == (uint64_t)(total / 2));
    CHECK(st.max_alloc <= (unsigned long)QCAP + PRODUCERS + CONSUMERS);

    kmem_cache_free_rcu(cfg_cache, atomic_load(&current_cfg));
    kmem_cache_synchronize_rcu();
    CHECK(kmem_cache_shrink(req_cache) == 0);
    kmem_cache_destroy(req_cache);
    kmem_cache_destroy(cfg_cache);
    mem_pool_destroy(stub_pool);
    printf("reads=%ld\n", atomic_load(&reads));
    return check_done();
}
