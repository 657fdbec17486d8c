/*
 * test_settings.c — the settings and set-up shared by the in-process tests
 * and the fuzz harness: pools, classes and index as main() builds them, and
 * in-memory connections (fd -1) driven by conn_feed.
 */
#include "test_settings.h"

#include "conn.h"
#include "items.h"
#include "pool.h"
#include "settings.h"
#include "slabs.h"

#include <string.h>

struct kv_settings kv_settings = {
    .port = 0,
    .listen = "127.0.0.1",
    .threads = 1,
    .maxbytes = 8ull << 20,
    .maxconns = 16,
    .factor = 1.25,
    .chunk_size = 48,
    .item_size_max = KV_ITEM_SIZE_MAX,
};

static struct thread_stats g_stats;

int kvt_setup(uint64_t maxbytes)
{
    kv_settings.maxbytes = maxbytes;
    urcu_memb_register_thread();
    if (slabs_init(sizeof(struct item), kv_settings.factor, (size_t)kv_settings.chunk_size,
                   maxbytes) != 0)
        return -1;
    if (items_init() != 0 || conn_pools_init() != 0)
        return -1;
    return 0;
}

struct conn *kvt_conn(void)
{
    return conn_new(-1, NULL, &g_stats);
}

struct sink {
    char *out;
    size_t cap, len;
};

static void to_sink(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    if (s->out == NULL)
        return;
    size_t room = s->cap - 1 - s->len;
    if (n > room)
        n = room;
    memcpy(s->out + s->len, p, n);
    s->len += n;
    s->out[s->len] = '\0';
}

size_t kvt_request(struct conn *c, const char *in, size_t n, char *out, size_t cap)
{
    struct sink s = {out, cap, 0};
    if (out)
        out[0] = '\0';
    urcu_memb_read_lock();
    conn_feed(c, in, n);
    urcu_memb_read_unlock();
    conn_drain_output(c, to_sink, &s);
    return s.len;
}

long kvt_teardown(void)
{
    items_unlink_all();
    kv_pool_quiesce();
    items_destroy_index();
    kv_pool_quiesce();
    long n = conn_pools_destroy() + slabs_destroy();
    urcu_memb_unregister_thread();
    return n;
}

/* The test programs' built-in ThreadSanitizer suppressions (TSan calls this
 * if the program defines it): the same one as tsan.supp, for `bazel test
 * --config=tsan`.  liburcu-cds is not built with TSan: its resize/destroy
 * workqueue hands a calloc'd completion to its worker through futexes TSan
 * cannot see (reported at cds_lfht_destroy).  Only calls made from inside
 * that library are ignored; the test's and magpool's accesses are checked. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:liburcu-cds.so.8\n";
}
#endif
#endif
