/*
 * stats.c — the `stats` replies, in memcached's `STAT <name> <value>` form.
 * `stats slabs` shows magpool's view of each class cache (magpool_cache_stats
 * through pool.h): objects in use, in magazines, in the depot, in slabs,
 * awaiting a grace period; bytes under the cache; depot exchanges; reaps.
 */
#include "stats.h"

#include "conn.h"
#include "items.h"
#include "pool.h"
#include "proto_text.h"
#include "settings.h"
#include "slabs.h"
#include "thread.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void stat_line(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stat_line(struct conn *c, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 3)
        n = (int)sizeof buf - 3;
    buf[n++] = '\r';
    buf[n++] = '\n';
    conn_out(c, "STAT ", 5);
    conn_out(c, buf, (size_t)n);
}

#define U(x) ((unsigned long long)(x))

void stats_general(struct conn *c)
{
    struct thread_stats t;
    struct items_totals it;
    struct rusage ru;
    stats_sum(&t);
    items_totals(&it);
    getrusage(RUSAGE_SELF, &ru);
    rel_time_t now = atomic_load_explicit(&kv_current_time, memory_order_relaxed);
    stat_line(c, "pid %d", (int)getpid());
    stat_line(c, "uptime %u", now - 2);
    stat_line(c, "time %lld", (long long)(kv_process_started + now));
    stat_line(c, "version %s", KVCACHE_VERSION);
    stat_line(c, "libevent none");
    stat_line(c, "pointer_size %d", (int)(8 * sizeof(void *)));
    stat_line(c, "rusage_user %ld.%06ld", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    stat_line(c, "rusage_system %ld.%06ld", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    stat_line(c, "max_connections %d", kv_settings.maxconns);
    stat_line(c, "curr_connections %llu", U(t.curr_connections));
    stat_line(c, "total_connections %llu", U(t.total_connections));
#define X(f) stat_line(c, #f " %llu", U(t.f));
    X(cmd_get) X(cmd_set) X(cmd_flush) X(cmd_touch) X(get_hits) X(get_misses) X(get_expired)
    X(delete_misses) X(delete_hits) X(incr_misses) X(incr_hits) X(decr_misses) X(decr_hits)
    X(cas_misses) X(cas_hits) X(cas_badval) X(touch_hits) X(touch_misses) X(store_too_large)
    X(store_no_memory) X(bytes_read) X(bytes_written)
#undef X
    stat_line(c, "limit_maxbytes %llu", U(kv_settings.maxbytes));
    stat_line(c, "threads %d", kv_settings.threads);
    stat_line(c, "bytes %llu", U(it.bytes));
    stat_line(c, "curr_items %llu", U(it.curr_items));
    unsigned hpower;
    bool hgrowing;
    items_index_stats(&hpower, &hgrowing);
    stat_line(c, "hash_power_level %u", hpower);
    stat_line(c, "hash_bytes %llu", U((1ull << hpower) * sizeof(struct cds_lfht_node)));
    stat_line(c, "hash_is_expanding %d", hgrowing ? 1 : 0);
    stat_line(c, "total_items %llu", U(it.total_items));
    stat_line(c, "expired_unfetched 0");
    stat_line(c, "evicted_unfetched 0");
    stat_line(c, "evictions %llu", U(it.evictions));
    stat_line(c, "reclaimed %llu", U(it.reclaimed));
    stat_line(c, "crawler_reclaimed %llu", U(it.expired));
    stat_line(c, "allocator %s", kv_pool_impl());
}

void stats_settings(struct conn *c)
{
    stat_line(c, "maxbytes %llu", U(kv_settings.maxbytes));
    stat_line(c, "maxconns %d", kv_settings.maxconns);
    stat_line(c, "tcpport %d", kv_settings.port);
    stat_line(c, "udpport 0");
    stat_line(c, "inter %s", kv_settings.listen);
    stat_line(c, "verbosity %d", kv_settings.verbose);
    stat_line(c, "evictions on");
    stat_line(c, "growth_factor %.2f", kv_settings.factor);
    stat_line(c, "chunk_size %d", kv_settings.chunk_size);
    stat_line(c, "num_threads %d", kv_settings.threads);
    stat_line(c, "cas_enabled yes");
    stat_line(c, "reqs_per_event 20");
    stat_line(c, "item_size_max %d", kv_settings.item_size_max);
    stat_line(c, "binding_protocol ascii");
    stat_line(c, "lru_policy clock");
    stat_line(c, "allocator %s", kv_pool_impl());
}

void stats_slabs(struct conn *c)
{
    unsigned active = 0;
    uint64_t total_bytes = 0;
    for (unsigned i = 1; i <= kv_nclasses; i++) {
        struct kv_pool_stats ps;
        struct item_class_stats is;
        if (kv_items_stats(kv_classes[i].cache, &ps) != 0)
            continue;
        items_class_stats(i, &is);
        if (ps.constructed == 0 && ps.in_use == 0 && is.number == 0)
            continue;
        active++;
        total_bytes += ps.bytes;
        stat_line(c, "%u:chunk_size %zu", i, kv_classes[i].size);
        stat_line(c, "%u:used_chunks %llu", i, U(is.number));
        stat_line(c, "%u:in_use %llu", i, U(ps.in_use));
        stat_line(c, "%u:in_magazines %llu", i, U(ps.in_magazines));
        stat_line(c, "%u:in_depot %llu", i, U(ps.in_depot));
        stat_line(c, "%u:in_slabs %llu", i, U(ps.in_slabs));
        stat_line(c, "%u:deferred %llu", i, U(ps.deferred));
        stat_line(c, "%u:constructed %llu", i, U(ps.constructed));
        stat_line(c, "%u:stride %llu", i, U(ps.stride));
        stat_line(c, "%u:bytes %llu", i, U(ps.bytes));
        stat_line(c, "%u:exchanges %llu", i, U(ps.exchanges));
        stat_line(c, "%u:reaps %llu", i, U(ps.reaps));
        stat_line(c, "%u:alloc_failures %llu", i, U(ps.alloc_failures));
    }
    stat_line(c, "active_slabs %u", active);
    stat_line(c, "total_malloced %llu", U(total_bytes));
}

void stats_items(struct conn *c)
{
    for (unsigned i = 1; i <= kv_nclasses; i++) {
        struct item_class_stats is;
        items_class_stats(i, &is);
        if (is.number == 0 && is.total == 0)
            continue;
        stat_line(c, "items:%u:number %llu", i, U(is.number));
        stat_line(c, "items:%u:age %u", i, is.oldest);
        stat_line(c, "items:%u:evicted %llu", i, U(is.evicted));
        stat_line(c, "items:%u:reclaimed %llu", i, U(is.reclaimed));
        stat_line(c, "items:%u:outofmemory %llu", i, U(is.outofmemory));
        stat_line(c, "items:%u:total_items %llu", i, U(is.total));
    }
}
