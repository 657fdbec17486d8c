/*
 * slabs.h — size classes and the memory budget (memcached's slabs.c, minus
 * the allocator: each class is a magpool cache, see pool.h).
 */
#ifndef KVCACHE_SLABS_H
#define KVCACHE_SLABS_H

#include "pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_MAX_CLASSES 64
/* Largest item (header + key + value + "\r\n"), as memcached's -I default;
 * also magpool's largest object (MAGPOOL_MAX_OBJECT_SIZE). */
#define KV_ITEM_SIZE_MAX (1024u * 1024u)
/* memcached's slab page (-o slab_page_size default): the memory a class is
 * given at a time; items.c evicts inside a class only once it holds this
 * much. */
#define KV_SLAB_PAGE_SIZE (1024u * 1024u)

struct kv_class {
    unsigned id;                 /* 1 .. kv_nclasses */
    size_t size;                 /* object size of the class's cache */
    struct kv_item_cache *cache; /* its pool */
    char name[32];               /* "kv-item-<size>" */
};

extern struct kv_class kv_classes[KV_MAX_CLASSES + 1];
extern unsigned kv_nclasses;

/* Build the classes: first size = header + minsize, each next one factor
 * times larger (8-byte aligned), the last KV_ITEM_SIZE_MAX.  0, or -1. */
int slabs_init(size_t header, double factor, size_t minsize, uint64_t maxbytes);
/* The smallest class holding ntotal bytes, or 0 when none does. */
unsigned slabs_clsid(size_t ntotal);
/* Charge one object of class id against the -m budget: false when it would
 * exceed it (nothing charged). */
bool slabs_charge(unsigned id);
void slabs_uncharge(unsigned id);
uint64_t slabs_bytes_charged(void);
uint64_t slabs_limit(void);
/* Destroy every class cache; returns the sum of objects still live. */
long slabs_destroy(void);

#endif
