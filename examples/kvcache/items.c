/*
 * items.c — item life (see items.h for the calling rules).
 *
 * Guarantees:
 *  G1 A get takes no lock: a lookup in liburcu's lock-free hash table
 *     (cds_lfht) inside a urcu-memb read-side section, then a reference
 *     taken with a compare-and-swap that fails on a count of 0.
 *  G2 An item is freed only when its count reaches 0: the index holds one
 *     reference from publication until the thread that removed it from the
 *     index (the one whose cds_lfht_del / _replace / _add_replace succeeded:
 *     exactly one) drops it; each connection writing it holds one.  The
 *     memory goes back through kv_items_free_deferred (magpool_free_deferred
 *     in the urcu-memb domain), so a reader that found the item in the index
 *     just before its removal may still read it, and its failing CAS on the
 *     count is safe.
 *  G3 Updates are compare-and-swap on the index: a store that depends on
 *     the old item (add over a dead one, replace, cas, append, prepend,
 *     incr/decr) publishes with cds_lfht_replace(old -> new), which fails if
 *     another thread replaced or removed old first; it then starts over.
 *     So two updates never both win against the same old item.
 *  G4 Memory: an item is charged its class size from item_alloc to its
 *     free (slabs.c); item_alloc evicts until the charge fits or nothing
 *     evictable is left, so the bytes of items never exceed -m and
 *     "out of memory" is answered only when nothing could be evicted.
 *
 * Eviction is CLOCK (second chance) over a per-class list in insertion
 * order, memcached's per-class LRU without its bump: a get only sets the
 * item's `referenced` bit (a relaxed store, no lock, G1), and the evictor,
 * holding the class lock, gives a referenced tail item a second chance
 * (clears the bit, moves it to the head) and evicts the first unreferenced
 * one.  memcached bumps under a lock at most once a minute per item; CLOCK
 * gets the same effect with no lock on the read path.
 *
 * Locks: one mutex per class (LRU links, in_lru, counts), never two at a
 * time, never held across an item_release.
 */
#include "items.h"

#include "proto_text.h"
#include "slabs.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REALTIME_MAXDELTA (60 * 60 * 24 * 30)

_Atomic rel_time_t kv_current_time;
int64_t kv_process_started;

static struct cds_lfht *g_index;
static _Atomic uint64_t g_next_cas = 1;
static _Atomic rel_time_t g_oldest_live; /* flush_all */
static _Atomic uint64_t g_oldest_cas;
static _Atomic int g_crawl_wanted;
static _Atomic uint64_t g_total_items, g_evictions, g_reclaimed, g_expired;

struct lru {
    pthread_mutex_t lock;
    struct item *head, *tail;
    _Atomic uint64_t number; /* written under lock, read without */
    _Atomic uint64_t evicted, reclaimed, expired_unfetched, outofmemory, total;
} __attribute__((aligned(64)));
static struct lru g_lru[KV_MAX_CLASSES + 1];

/* ---- time ------------------------------------------------------------------ */

void clock_tick(void)
{
    int64_t now = (int64_t)time(NULL);
    if (kv_process_started == 0)
        kv_process_started = now - 62; /* memcached: ITEM_UPDATE_INTERVAL + 2 */
    atomic_store_explicit(&kv_current_time, (rel_time_t)(now - kv_process_started),
                          memory_order_relaxed);
}

static rel_time_t now_rel(void)
{
    return atomic_load_explicit(&kv_current_time, memory_order_relaxed);
}

rel_time_t exptime_to_rel(int32_t exptime)
{
    int64_t e = exptime < 0 ? REALTIME_MAXDELTA + 1 : exptime;
    if (e == 0)
        return 0;
    if (e > REALTIME_MAXDELTA) {
        if (e <= kv_process_started)
            return 1;
        return (rel_time_t)(e - kv_process_started);
    }
    return (rel_time_t)(e + now_rel());
}

/* ---- index ---------------------------------------------------------------- */

static unsigned long hash_key(const char *key, size_t nkey)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a 64-bit finaliser */
    for (size_t i = 0; i < nkey; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (unsigned long)h;
}

struct key_ref {
    const char *key;
    size_t nkey;
};

static int match_key(struct cds_lfht_node *node, const void *arg)
{
    const struct key_ref *k = arg;
    const struct item *it = caa_container_of(node, struct item, hnode);
    return it->nkey == k->nkey && memcmp(ITEM_key(it), k->key, k->nkey) == 0;
}

/* The index's size is kept by the maintainer thread (items_index_grow), as
 * memcached's assoc_maintenance_thread keeps its table: grown to the next
 * power of two once the items pass KV_INDEX_LOAD_MAX per bucket, never
 * shrunk.  Not liburcu's own resizing (CDS_LFHT_AUTO_RESIZE with
 * CDS_LFHT_ACCOUNTING): that grows only when the items reach eight per
 * bucket, so a lookup walked up to eight other items' nodes (each its own
 * cache miss) in a table of a few hundred thousand items, and it costs an
 * atomic add on a shared counter per insert and per delete.  At three per
 * bucket a lookup walks three other nodes at most on average (a burst of
 * stores between two ticks can go past that until the next one), and the
 * index costs per item what memcached's costs at its 1.5 (a liburcu
 * bucket is a 16-byte node, memcached's an 8-byte pointer): 1 M items,
 * 2^19 buckets, 8 MiB, either way. */
#define KV_INDEX_MIN_POWER 16
#define KV_INDEX_LOAD_MAX 3
/* Written by the maintainer only, read by `stats`: relaxed, figures for a
 * report (the resize's own synchronisation is liburcu's). */
static _Atomic unsigned g_index_power = KV_INDEX_MIN_POWER;
static _Atomic int g_index_growing;

int items_init(void)
{
    clock_tick();
    for (unsigned i = 0; i <= KV_MAX_CLASSES; i++)
        pthread_mutex_init(&g_lru[i].lock, NULL);
    g_index = cds_lfht_new_flavor(1ul << KV_INDEX_MIN_POWER, 1ul << KV_INDEX_MIN_POWER, 0, 0, &urcu_memb_flavor,
                                  NULL);
    return g_index ? 0 : -1;
}

unsigned items_index_grow(void)
{
    struct items_totals t;
    items_totals(&t);
    unsigned p = atomic_load_explicit(&g_index_power, memory_order_relaxed);
    unsigned want = p;
    while (want < 8 * sizeof(unsigned long) - 2 && t.curr_items > (uint64_t)KV_INDEX_LOAD_MAX << want)
        want++;
    if (want == p)
        return 0;
    atomic_store_explicit(&g_index_growing, 1, memory_order_relaxed);
    cds_lfht_resize(g_index, 1ul << want); /* (readers and writers go on meanwhile) */
    atomic_store_explicit(&g_index_power, want, memory_order_relaxed);
    atomic_store_explicit(&g_index_growing, 0, memory_order_relaxed);
    return want;
}

void items_index_stats(unsigned *power, bool *growing)
{
    *power = atomic_load_explicit(&g_index_power, memory_order_relaxed);
    *growing = atomic_load_explicit(&g_index_growing, memory_order_relaxed) != 0;
}

/* Dead: expired, or flushed (memcached's item_is_flushed). */
static bool item_dead(const struct item *it, rel_time_t now)
{
    rel_time_t exp = atomic_load_explicit(&it->exptime, memory_order_relaxed);
    if (exp != 0 && exp <= now)
        return true;
    rel_time_t oldest = atomic_load_explicit(&g_oldest_live, memory_order_relaxed);
    if (oldest == 0 || oldest > now)
        return false;
    uint64_t ocas = atomic_load_explicit(&g_oldest_cas, memory_order_relaxed);
    return it->time <= oldest || (ocas != 0 && it->cas != 0 && it->cas < ocas);
}

static struct item *lookup(const char *key, size_t nkey, unsigned long hv,
                           struct cds_lfht_iter *iter)
{
    struct key_ref k = {key, nkey};
    cds_lfht_lookup(g_index, hv, match_key, &k, iter);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(iter);
    return n ? caa_container_of(n, struct item, hnode) : NULL;
}

/* ---- LRU ------------------------------------------------------------------ */

static void lru_unlink_locked(struct lru *l, struct item *it)
{
    if (it->lru_prev)
        it->lru_prev->lru_next = it->lru_next;
    else
        l->head = it->lru_next;
    if (it->lru_next)
        it->lru_next->lru_prev = it->lru_prev;
    else
        l->tail = it->lru_prev;
    it->lru_prev = it->lru_next = NULL;
    it->in_lru = 0;
    atomic_fetch_sub_explicit(&l->number, 1, memory_order_relaxed);
}

static void lru_push_head_locked(struct lru *l, struct item *it)
{
    it->lru_prev = NULL;
    it->lru_next = l->head;
    if (l->head)
        l->head->lru_prev = it;
    l->head = it;
    if (l->tail == NULL)
        l->tail = it;
    it->in_lru = 1;
    atomic_fetch_add_explicit(&l->number, 1, memory_order_relaxed);
}

/* After publication: enter the class list unless already removed again. */
static void lru_link(struct item *it)
{
    struct lru *l = &g_lru[it->clsid];
    pthread_mutex_lock(&l->lock);
    if (!cds_lfht_is_node_deleted(&it->hnode))
        lru_push_head_locked(l, it);
    pthread_mutex_unlock(&l->lock);
}

/* The caller removed it from the index (G2): take it off the list, drop
 * the index's reference. */
static void after_removal(struct item *it)
{
    struct lru *l = &g_lru[it->clsid];
    pthread_mutex_lock(&l->lock);
    if (it->in_lru)
        lru_unlink_locked(l, it);
    pthread_mutex_unlock(&l->lock);
    item_release(it);
}

/* Remove a dead item found by a lookup (if nobody else did). */
static void unlink_dead(struct item *it)
{
    if (cds_lfht_del(g_index, &it->hnode) == 0) {
        atomic_fetch_add_explicit(&g_reclaimed, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_lru[it->clsid].reclaimed, 1, memory_order_relaxed);
        after_removal(it);
    }
}

/* ---- references and memory ------------------------------------------------ */

static bool ref_get(struct item *it)
{
    uint32_t n = atomic_load_explicit(&it->refcount, memory_order_relaxed);
    while (n != 0) {
        if (atomic_compare_exchange_weak_explicit(&it->refcount, &n, n + 1,
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    }
    return false;
}

void item_release(struct item *it)
{
    if (atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel) != 1)
        return;
    unsigned cls = it->clsid;
    slabs_uncharge(cls);
    /* Readers may still hold a pointer from the index (G2). */
    kv_items_free_deferred(kv_classes[cls].cache, it);
}

/* Evict one item of class cls (CLOCK).  Returns true if an item was taken
 * out of the index (its memory comes back when its last holder lets go). */
static bool evict_one(unsigned cls)
{
    struct lru *l = &g_lru[cls];
    struct item *victim = NULL;
    rel_time_t now = now_rel();
    pthread_mutex_lock(&l->lock);
    unsigned chances = 0;
    for (struct item *it = l->tail; it != NULL;) {
        struct item *prev = it->lru_prev;
        bool dead = item_dead(it, now);
        if (!dead && atomic_load_explicit(&it->referenced, memory_order_relaxed) &&
            chances < atomic_load_explicit(&l->number, memory_order_relaxed)) {
            atomic_store_explicit(&it->referenced, 0, memory_order_relaxed);
            lru_unlink_locked(l, it);
            lru_push_head_locked(l, it);
            chances++;
            it = prev ? prev : l->tail;
            continue;
        }
        if (cds_lfht_del(g_index, &it->hnode) == 0) {
            lru_unlink_locked(l, it);
            victim = it;
            if (dead) {
                atomic_fetch_add_explicit(&l->reclaimed, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&g_reclaimed, 1, memory_order_relaxed);
            } else {
                atomic_fetch_add_explicit(&l->evicted, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&g_evictions, 1, memory_order_relaxed);
            }
            break;
        }
        /* removed by another thread, which will unlink it: look further */
        it = prev;
    }
    pthread_mutex_unlock(&l->lock);
    if (victim == NULL)
        return false;
    item_release(victim);
    return true;
}

/* Bytes of class cls's items in its LRU. */
static uint64_t class_bytes(unsigned cls)
{
    return atomic_load_explicit(&g_lru[cls].number, memory_order_relaxed) * kv_classes[cls].size;
}

/* The class holding the most bytes, other than cls (0: none has items). */
static unsigned fattest_class(unsigned except)
{
    unsigned best = 0;
    uint64_t best_bytes = 0;
    for (unsigned i = 1; i <= kv_nclasses; i++) {
        if (i == except)
            continue;
        uint64_t b = class_bytes(i);
        if (b > best_bytes) {
            best_bytes = b;
            best = i;
        }
    }
    return best;
}

/* The class to evict from first for a charge of class cls that does not
 * fit.  memcached hands a class whole pages (KV_SLAB_PAGE_SIZE) and evicts
 * inside a class only once its pages are full, so a class holding less than
 * a page never loses its own items to a store of its size: a few small items
 * stored after a flood of large ones stay put (memccapable's mget sets five
 * keys and gets them back with -m full of 10 KB values).  So: cls itself once
 * it holds a page's worth, else the class holding the most bytes, else cls. */
static unsigned first_victim_class(unsigned cls)
{
    if (class_bytes(cls) >= KV_SLAB_PAGE_SIZE)
        return cls;
    unsigned fattest = fattest_class(cls);
    return fattest != 0 ? fattest : cls;
}

struct item *item_alloc(const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                        size_t nbytes, enum alloc_error *err)
{
    /* memcached's size rule (48-byte header, key + NUL, CAS, flags), and
     * ours; the stricter of the two decides. */
    size_t mc_total = 48 + nkey + 1 + nbytes + 8 + (flags ? 4 : 0);
    size_t ntotal = sizeof(struct item) + nkey + nbytes;
    unsigned cls = mc_total > KV_ITEM_SIZE_MAX ? 0 : slabs_clsid(ntotal);
    if (cls == 0) {
        *err = ALLOC_TOO_LARGE;
        return NULL;
    }
    /* G4: evict from first_victim_class, then from the other of cls and
     * the class holding most, until the charge fits or nothing is left. */
    while (!slabs_charge(cls)) {
        unsigned first = first_victim_class(cls);
        if (evict_one(first))
            continue;
        unsigned other = first != cls ? cls : fattest_class(cls);
        if (other == 0 || !evict_one(other)) {
            /* Nothing evictable right now.  Items evicted but still held by
             * a writing connection come back when it lets go: one retry. */
            if (slabs_charge(cls))
                break;
            atomic_fetch_add_explicit(&g_lru[cls].outofmemory, 1, memory_order_relaxed);
            *err = ALLOC_NO_MEMORY;
            return NULL;
        }
    }
    struct item *it = kv_items_alloc(kv_classes[cls].cache);
    if (it == NULL) {
        slabs_uncharge(cls);
        *err = ALLOC_NO_MEMORY;
        return NULL;
    }
    memset(it, 0, sizeof *it);
    atomic_init(&it->refcount, 1);
    atomic_init(&it->exptime, exptime);
    it->flags = flags;
    it->nbytes = (uint32_t)nbytes;
    it->nkey = (uint8_t)nkey;
    it->clsid = (uint8_t)cls;
    memcpy(ITEM_key(it), key, nkey);
    *err = ALLOC_OK;
    return it;
}

/* ---- operations ----------------------------------------------------------- */

struct item *item_get(const char *key, size_t nkey, bool touch, rel_time_t exptime)
{
    struct cds_lfht_iter iter;
    struct item *it = lookup(key, nkey, hash_key(key, nkey), &iter);
    if (it == NULL)
        return NULL;
    if (item_dead(it, now_rel())) {
        unlink_dead(it);
        return NULL;
    }
    if (!ref_get(it))
        return NULL;
    if (touch)
        atomic_store_explicit(&it->exptime, exptime, memory_order_relaxed);
    if (!atomic_load_explicit(&it->referenced, memory_order_relaxed))
        atomic_store_explicit(&it->referenced, 1, memory_order_relaxed);
    return it;
}

static void prepare_publish(struct item *it)
{
    it->cas = atomic_fetch_add_explicit(&g_next_cas, 1, memory_order_relaxed);
    it->time = now_rel();
    atomic_store_explicit(&it->refcount, 2, memory_order_relaxed); /* + the index's */
}

static void published(struct item *it, struct item *old)
{
    atomic_fetch_add_explicit(&g_total_items, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_lru[it->clsid].total, 1, memory_order_relaxed);
    lru_link(it);
    if (old != NULL)
        after_removal(old);
}

/* Replace old by it in the index (G3): false when old is gone already. */
static bool publish_replace(struct item *it, struct item *old, struct cds_lfht_iter *iter,
                            unsigned long hv)
{
    struct key_ref k = {ITEM_key(it), it->nkey};
    prepare_publish(it);
    if (cds_lfht_replace(g_index, iter, hv, match_key, &k, &it->hnode) != 0) {
        atomic_store_explicit(&it->refcount, 1, memory_order_relaxed);
        return false;
    }
    published(it, old);
    return true;
}

/* A new item with old's key, flags, exptime and the given value bytes. */
static struct item *item_with_value(struct item *old, size_t nbytes)
{
    enum alloc_error err;
    return item_alloc(ITEM_key(old), old->nkey, old->flags,
                      atomic_load_explicit(&old->exptime, memory_order_relaxed), nbytes, &err);
}

enum store_result item_store(struct item *it, enum store_cmd cmd, uint64_t req_cas)
{
    unsigned long hv = hash_key(ITEM_key(it), it->nkey);
    struct key_ref k = {ITEM_key(it), it->nkey};
    for (;;) {
        struct cds_lfht_iter iter;
        struct item *old = lookup(ITEM_key(it), it->nkey, hv, &iter);
        bool live = old != NULL && !item_dead(old, now_rel());
        switch (cmd) {
        case CMD_SET: {
            prepare_publish(it);
            struct cds_lfht_node *o = cds_lfht_add_replace(g_index, hv, match_key, &k, &it->hnode);
            published(it, o ? caa_container_of(o, struct item, hnode) : NULL);
            return STORED;
        }
        case CMD_ADD:
            if (live) {
                atomic_store_explicit(&old->referenced, 1, memory_order_relaxed);
                return NOT_STORED;
            }
            if (old != NULL) {
                if (publish_replace(it, old, &iter, hv))
                    return STORED;
                continue;
            }
            prepare_publish(it);
            if (cds_lfht_add_unique(g_index, hv, match_key, &k, &it->hnode) == &it->hnode) {
                published(it, NULL);
                return STORED;
            }
            atomic_store_explicit(&it->refcount, 1, memory_order_relaxed);
            continue;
        case CMD_REPLACE:
        case CMD_CAS:
            if (!live) {
                if (old != NULL)
                    unlink_dead(old);
                return cmd == CMD_CAS ? NOT_FOUND : NOT_STORED;
            }
            if (cmd == CMD_CAS && old->cas != req_cas)
                return EXISTS;
            if (publish_replace(it, old, &iter, hv))
                return STORED;
            continue;
        case CMD_APPEND:
        case CMD_PREPEND: {
            if (!live) {
                if (old != NULL)
                    unlink_dead(old);
                return NOT_STORED;
            }
            size_t n = old->nbytes - 2 + it->nbytes; /* one "\r\n" */
            struct item *nw = item_with_value(old, n);
            if (nw == NULL)
                return NOT_STORED;
            char *v = ITEM_value(nw);
            if (cmd == CMD_APPEND) {
                memcpy(v, ITEM_value(old), old->nbytes - 2);
                memcpy(v + old->nbytes - 2, ITEM_value(it), it->nbytes);
            } else {
                memcpy(v, ITEM_value(it), it->nbytes - 2);
                memcpy(v + it->nbytes - 2, ITEM_value(old), old->nbytes);
            }
            bool ok = publish_replace(nw, old, &iter, hv);
            item_release(nw);
            if (ok)
                return STORED;
            continue;
        }
        }
        return NOT_STORED;
    }
}

bool item_delete(const char *key, size_t nkey)
{
    unsigned long hv = hash_key(key, nkey);
    for (;;) {
        struct cds_lfht_iter iter;
        struct item *it = lookup(key, nkey, hv, &iter);
        if (it == NULL)
            return false;
        if (item_dead(it, now_rel())) {
            unlink_dead(it);
            return false;
        }
        if (cds_lfht_del(g_index, &it->hnode) == 0) {
            after_removal(it);
            return true;
        }
    }
}

bool item_touch(const char *key, size_t nkey, rel_time_t exptime)
{
    struct item *it = item_get(key, nkey, true, exptime);
    if (it == NULL)
        return false;
    item_release(it);
    return true;
}

/* The number incr/decr reads from a value: memcached's safe_strtoull on
 * ITEM_data, which is not NUL-terminated but ends in "\r\n".  strtoull
 * skips leading whitespace, "\r\n" included, so on a value of nothing but
 * whitespace memcached reads on past the value into whatever the slab
 * chunk held before (a fresh chunk is zeroed: "non-numeric"; a reused one
 * can yield a stale number).  We stop at the value's end and answer what a
 * fresh chunk gives; any other value has a non-space byte before its '\r',
 * where strtoull stops, so it is parsed in place exactly as memcached does
 * (trailing text after a space, a NUL after the digits, leading zeros). */
static bool value_to_u64(const struct item *it, uint64_t *out)
{
    const char *v = ITEM_value(it);
    size_t i = 0;
    if (it->nbytes <= 2) /* memcached: no delta on an empty value */
        return false;
    while (i < it->nbytes && isspace((unsigned char)v[i]))
        i++;
    return i < it->nbytes && safe_strtoull(v, out);
}

/* memcached's do_add_delta rewrites the item in place (its length kept,
 * the number space-padded, a new CAS) when the number fits and nobody else
 * holds the item (refcount 2: the index's and its own), and otherwise
 * links a new item of the number's exact length.  The other holders are
 * connections still sending the item; the requesting connection's own
 * earlier replies never count, since memcached writes a get's reply out
 * before it reads the next command.  We always publish a new item (G3),
 * with the length memcached's rule gives. */
enum delta_result item_delta(const char *key, size_t nkey, bool incr, uint64_t delta,
                             char buf[24], uint32_t (*own_refs)(void *arg, const struct item *it),
                             void *arg)
{
    unsigned long hv = hash_key(key, nkey);
    for (;;) {
        struct cds_lfht_iter iter;
        struct item *old = lookup(key, nkey, hv, &iter);
        if (old == NULL)
            return DELTA_NOT_FOUND;
        if (item_dead(old, now_rel())) {
            unlink_dead(old);
            return DELTA_NOT_FOUND;
        }
        uint64_t value;
        if (!value_to_u64(old, &value))
            return DELTA_NON_NUMERIC;
        if (incr)
            value += delta;
        else
            value = delta > value ? 0 : value - delta;
        int res = snprintf(buf, 24, "%llu", (unsigned long long)value);
        /* holders besides the index; if old has left it (0 references),
         * publish_replace fails below and we start over */
        int64_t others = (int64_t)atomic_load_explicit(&old->refcount, memory_order_acquire) - 1 -
                         own_refs(arg, old);
        bool in_place = (size_t)res + 2 <= old->nbytes && others == 0;
        size_t nbytes = in_place ? old->nbytes : (size_t)res + 2;
        struct item *nw = item_with_value(old, nbytes);
        if (nw == NULL)
            return DELTA_EOM;
        char *nv = ITEM_value(nw);
        memcpy(nv, buf, (size_t)res);
        memset(nv + res, ' ', nbytes - 2 - (size_t)res);
        memcpy(nv + nbytes - 2, "\r\n", 2);
        bool ok = publish_replace(nw, old, &iter, hv);
        item_release(nw);
        if (ok)
            return DELTA_OK;
    }
}

void items_flush(int32_t delay)
{
    rel_time_t new_oldest = delay > 0 ? exptime_to_rel(delay) : now_rel();
    rel_time_t oldest = new_oldest - 1;
    atomic_store_explicit(&g_oldest_live, oldest, memory_order_relaxed);
    if (oldest <= now_rel())
        atomic_store_explicit(&g_oldest_cas,
                              atomic_fetch_add_explicit(&g_next_cas, 1, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_store_explicit(&g_crawl_wanted, 1, memory_order_relaxed);
}

bool items_crawl_wanted(void)
{
    return atomic_exchange_explicit(&g_crawl_wanted, 0, memory_order_relaxed) != 0;
}

uint64_t items_crawl(void)
{
    uint64_t n = 0;
    rel_time_t now = now_rel();
    for (unsigned c = 1; c <= kv_nclasses; c++) {
        struct lru *l = &g_lru[c];
        struct item *dead = NULL;
        pthread_mutex_lock(&l->lock);
        for (struct item *it = l->tail; it != NULL;) {
            struct item *prev = it->lru_prev;
            if (item_dead(it, now) && cds_lfht_del(g_index, &it->hnode) == 0) {
                lru_unlink_locked(l, it);
                it->lru_next = dead; /* off the list: its links are ours */
                dead = it;
                atomic_fetch_add_explicit(&l->reclaimed, 1, memory_order_relaxed);
                n++;
            }
            it = prev;
        }
        pthread_mutex_unlock(&l->lock);
        while (dead != NULL) {
            struct item *next = dead->lru_next;
            dead->lru_next = NULL;
            item_release(dead);
            dead = next;
        }
    }
    atomic_fetch_add_explicit(&g_expired, n, memory_order_relaxed);
    return n;
}

void items_unlink_all(void)
{
    struct cds_lfht_iter iter;
    struct cds_lfht_node *node;
    urcu_memb_read_lock();
    cds_lfht_first(g_index, &iter);
    while ((node = cds_lfht_iter_get_node(&iter)) != NULL) {
        struct item *it = caa_container_of(node, struct item, hnode);
        cds_lfht_next(g_index, &iter);
        if (cds_lfht_del(g_index, node) == 0)
            after_removal(it);
    }
    urcu_memb_read_unlock();
}

void items_destroy_index(void)
{
    if (g_index != NULL)
        cds_lfht_destroy(g_index, NULL);
    g_index = NULL;
}

void items_class_stats(unsigned clsid, struct item_class_stats *st)
{
    struct lru *l = &g_lru[clsid];
    pthread_mutex_lock(&l->lock);
    st->number = atomic_load_explicit(&l->number, memory_order_relaxed);
    st->oldest = l->tail ? now_rel() - l->tail->time : 0;
    pthread_mutex_unlock(&l->lock);
    st->evicted = atomic_load_explicit(&l->evicted, memory_order_relaxed);
    st->reclaimed = atomic_load_explicit(&l->reclaimed, memory_order_relaxed);
    st->expired_unfetched = atomic_load_explicit(&l->expired_unfetched, memory_order_relaxed);
    st->outofmemory = atomic_load_explicit(&l->outofmemory, memory_order_relaxed);
    st->total = atomic_load_explicit(&l->total, memory_order_relaxed);
}

void items_totals(struct items_totals *t)
{
    t->curr_items = 0;
    for (unsigned c = 1; c <= kv_nclasses; c++)
        t->curr_items += atomic_load_explicit(&g_lru[c].number, memory_order_relaxed);
    t->total_items = atomic_load_explicit(&g_total_items, memory_order_relaxed);
    t->evictions = atomic_load_explicit(&g_evictions, memory_order_relaxed);
    t->reclaimed = atomic_load_explicit(&g_reclaimed, memory_order_relaxed);
    t->expired = atomic_load_explicit(&g_expired, memory_order_relaxed);
    t->bytes = slabs_bytes_charged();
}
