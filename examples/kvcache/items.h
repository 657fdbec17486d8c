/*
 * items.h — item life: the lock-free key index, CLOCK eviction per class,
 * expiry, flush_all, CAS (memcached's items.c + assoc.c).
 *
 * Every call that takes a key or an item, except item_release, must run
 * inside a urcu-memb read-side section (urcu_memb_read_lock) of a thread
 * registered with urcu-memb; none may be called with a lock held.
 */
#ifndef KVCACHE_ITEMS_H
#define KVCACHE_ITEMS_H

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_MAX_LENGTH 250

typedef uint32_t rel_time_t; /* seconds since process_started */

/* One key/value pair: header, key and value ("\r\n"-terminated) inline, in
 * one object of its class's cache.  Immutable once published, except
 * exptime (touch) and the CLOCK bit; a change is a new item replacing the
 * old one in the index. */
struct item {
    struct cds_lfht_node hnode;        /* in the index */
    struct item *lru_prev, *lru_next;  /* class LRU (class lock) */
    uint64_t cas;
    _Atomic uint32_t refcount;         /* index's ref + one per holder; 0 = freed */
    _Atomic uint32_t exptime;          /* rel_time_t, 0 = never */
    rel_time_t time;                   /* when stored */
    uint32_t flags;                    /* client flags */
    uint32_t nbytes;                   /* value bytes, "\r\n" included */
    uint8_t nkey;
    uint8_t clsid;
    _Atomic uint8_t referenced;        /* CLOCK bit, set by readers */
    uint8_t in_lru;                    /* class lock */
    char data[];                       /* key, then value */
};
#define ITEM_key(it) ((it)->data)
#define ITEM_value(it) ((it)->data + (it)->nkey)

enum store_cmd { CMD_SET = 1, CMD_ADD, CMD_REPLACE, CMD_APPEND, CMD_PREPEND, CMD_CAS };
enum store_result { STORED, NOT_STORED, EXISTS, NOT_FOUND };
enum alloc_error { ALLOC_OK, ALLOC_TOO_LARGE, ALLOC_NO_MEMORY };
enum delta_result { DELTA_OK, DELTA_NON_NUMERIC, DELTA_EOM, DELTA_NOT_FOUND };

/* Clock (memcached's): current_time is rel_time_t, ticked once a second. */
extern _Atomic rel_time_t kv_current_time;
extern int64_t kv_process_started;
void clock_tick(void);
/* memcached's realtime(EXPTIME_TO_POSITIVE_TIME(e)): 0 never; negative:
 * already expired; > 30 days: unix time; else relative. */
rel_time_t exptime_to_rel(int32_t exptime);

int items_init(void);
/* Remove every item (read section held inside); then the caller quiesces
 * the pools and calls items_destroy_index (outside any read section). */
void items_unlink_all(void);
void items_destroy_index(void);

/* A new private item with refcount 1, or NULL and *err set.  May evict. */
struct item *item_alloc(const char *key, size_t nkey, uint32_t flags, rel_time_t exptime,
                        size_t nbytes, enum alloc_error *err);
/* Drop one reference; the last one frees the item. */
void item_release(struct item *it);
/* The live item for key with a reference taken, or NULL (expired or
 * flushed items are unlinked on the way).  touch: set exptime first. */
struct item *item_get(const char *key, size_t nkey, bool touch, rel_time_t exptime);
/* Store it (refcount 1, owned by the caller, who still releases it). */
enum store_result item_store(struct item *it, enum store_cmd cmd, uint64_t req_cas);
bool item_delete(const char *key, size_t nkey);
bool item_touch(const char *key, size_t nkey, rel_time_t exptime);
/* incr/decr; on DELTA_OK buf holds the new value (NUL-terminated).
 * own_refs(arg, it): the references the caller itself holds on it (its
 * connection's replies not yet written); see item_delta. */
enum delta_result item_delta(const char *key, size_t nkey, bool incr, uint64_t delta,
                             char buf[24], uint32_t (*own_refs)(void *arg, const struct item *it),
                             void *arg);
/* flush_all [delay]: memcached's oldest_live/oldest_cas rule. */
void items_flush(int32_t delay);
/* Unlink expired and flushed items (crawler); returns how many. */
uint64_t items_crawl(void);
/* Whether a flush or expiry may have left dead items to crawl. */
bool items_crawl_wanted(void);

/* Per-class figures for `stats items` / `stats slabs`. */
struct item_class_stats {
    uint64_t number;   /* items in the class LRU */
    uint64_t evicted, reclaimed, expired_unfetched, outofmemory, total;
    rel_time_t oldest; /* age of the LRU tail */
};
void items_class_stats(unsigned clsid, struct item_class_stats *st);
struct items_totals {
    uint64_t curr_items, total_items, evictions, reclaimed, expired, bytes;
};
void items_totals(struct items_totals *t);

/* The maintainer's step: grow the key index to a power of two of buckets
 * holding at most 3 items each (memcached's hash expansion; items.c says
 * why 3).  From a thread registered with urcu-memb, outside a read-side
 * section.  Returns the new power, or 0 if the size stays. */
unsigned items_index_grow(void);
/* `stats`: the index's power of two of buckets, and whether it is growing. */
void items_index_stats(unsigned *power, bool *growing);

#endif
