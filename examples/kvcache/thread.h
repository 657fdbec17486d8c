/*
 * thread.h — worker threads (memcached's thread.c model): each owns an
 * epoll loop over non-blocking sockets; the listener hands each accepted
 * socket to one worker, round robin, and the connection stays there.  Plus
 * the maintainer: the clock, the crawler of dead items, the idle reap.
 */
#ifndef KVCACHE_THREAD_H
#define KVCACHE_THREAD_H

#include "stats.h"

#include <stdbool.h>

int workers_start(int n);
/* Give an accepted, non-blocking socket to the next worker; false if the
 * worker could not take it (the caller closes it). */
bool worker_dispatch(int fd);
/* Stop every worker: each closes its connections and leaves. */
void workers_stop(void);
int workers_count(void);
struct thread_stats *worker_stats(int i);
/* Connections open now (all workers). */
long conns_open(void);

int maintainer_start(void);
void maintainer_stop(void);

#endif
