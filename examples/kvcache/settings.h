/*
 * settings.h — the server's settings (memcached's `settings`), set once by
 * main.c before any thread starts; `verbose` may change at run time.
 */
#ifndef KVCACHE_SETTINGS_H
#define KVCACHE_SETTINGS_H

#include <stdint.h>

struct kv_settings {
    int port;             /* -p, 11211 */
    const char *listen;   /* -l, 127.0.0.1 */
    int threads;          /* -t, 4 */
    uint64_t maxbytes;    /* -m MEGABYTES, 64 */
    int maxconns;         /* -c, 1024 */
    double factor;        /* -f, 1.25 */
    int chunk_size;       /* -n, 48 */
    int verbose;          /* -v (repeatable); `verbosity` */
    int item_size_max;    /* 1 MiB */
};
extern struct kv_settings kv_settings;

#endif
