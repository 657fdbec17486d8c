/*
 * thread.c — workers and the maintainer (see thread.h).
 *
 * Guarantees:
 *  - A connection is touched only by its worker: the listener passes the
 *    socket through the worker's queue (mutex + eventfd, as memcached's
 *    pipe + CQ); the worker builds the struct conn itself.
 *  - Workers are registered urcu-memb readers; a connection's turn
 *    (conn_drive) runs inside one read-side section, never across
 *    epoll_wait, so grace periods always end.
 *  - At stop, every worker frees all its connections (items, buffers back
 *    to their pools), flushes its magazines and unregisters.
 */
#include "thread.h"

#include "conn.h"
#include "items.h"
#include "pool.h"
#include "settings.h"
#include "slabs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_SIZE 4096

struct worker {
    pthread_t tid;
    int id;
    int epfd;
    int evfd;
    pthread_mutex_t qlock;
    int queue[QUEUE_SIZE];
    unsigned qhead, qlen;
    _Atomic int stop;
    struct thread_stats stats;
    struct conn *conns;   /* all of this worker's connections */
    struct conn *pending; /* connections that yielded with work left */
};

static struct worker *g_workers;
static int g_nworkers;
static _Atomic unsigned g_next;
static _Atomic long g_open;

int workers_count(void)
{
    return g_nworkers;
}

struct thread_stats *worker_stats(int i)
{
    return &g_workers[i].stats;
}

long conns_open(void)
{
    return atomic_load_explicit(&g_open, memory_order_relaxed);
}

void stats_sum(struct thread_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < g_nworkers; i++) {
        struct thread_stats *s = &g_workers[i].stats;
#define X(f) STAT_ADD(out, f, atomic_load_explicit(&s->f, memory_order_relaxed));
        THREAD_STATS_FIELDS(X)
#undef X
    }
}

static void pending_remove(struct worker *w, struct conn *c)
{
    for (struct conn **pp = &w->pending; *pp; pp = &(*pp)->next_pending)
        if (*pp == c) {
            *pp = c->next_pending;
            break;
        }
    c->pending = false;
}

static void conn_close(struct worker *w, struct conn *c)
{
    if (c->pending)
        pending_remove(w, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    conn_free(c); /* closes the socket */
    STAT_ADD(&w->stats, curr_connections, (uint64_t)-1);
    atomic_fetch_sub_explicit(&g_open, 1, memory_order_relaxed);
}

static void conn_turn(struct worker *w, struct conn *c)
{
    bool more;
    urcu_memb_read_lock();
    uint32_t want = conn_drive(c, &more);
    urcu_memb_read_unlock();
    if (want == 0) {
        conn_close(w, c);
        return;
    }
    if (want != c->epoll_events) {
        struct epoll_event ev = {.events = want, .data.ptr = c};
        epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->epoll_events = want;
    }
    if (more && !c->pending) {
        c->pending = true;
        c->next_pending = w->pending;
        w->pending = c;
    }
}

static void accept_queued(struct worker *w)
{
    uint64_t v;
    if (read(w->evfd, &v, sizeof v) < 0 && errno != EAGAIN)
        return;
    for (;;) {
        pthread_mutex_lock(&w->qlock);
        if (w->qlen == 0) {
            pthread_mutex_unlock(&w->qlock);
            return;
        }
        int fd = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % QUEUE_SIZE;
        w->qlen--;
        pthread_mutex_unlock(&w->qlock);
        struct conn *c = conn_new(fd, w, &w->stats);
        if (c == NULL) {
            close(fd);
            atomic_fetch_sub_explicit(&g_open, 1, memory_order_relaxed);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            conn_free(c);
            atomic_fetch_sub_explicit(&g_open, 1, memory_order_relaxed);
            continue;
        }
        c->epoll_events = EPOLLIN;
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        STAT_INC(&w->stats, curr_connections);
        STAT_INC(&w->stats, total_connections);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[64];
    urcu_memb_register_thread();
    while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
        int n = epoll_wait(w->epfd, evs, 64, w->pending ? 0 : 1000);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                accept_queued(w);
                continue;
            }
            conn_turn(w, evs[i].data.ptr);
        }
        /* connections that yielded: one more turn each */
        struct conn *p = w->pending;
        w->pending = NULL;
        while (p) {
            struct conn *next = p->next_pending;
            p->pending = false;
            p->next_pending = NULL;
            conn_turn(w, p);
            p = next;
        }
    }
    /* stop: give everything back */
    accept_queued(w);
    while (w->conns)
        conn_close(w, w->conns);
    kv_pool_thread_exit();
    urcu_memb_unregister_thread();
    return NULL;
}

int workers_start(int n)
{
    g_workers = calloc((size_t)n, sizeof *g_workers);
    if (g_workers == NULL)
        return -1;
    g_nworkers = n;
    for (int i = 0; i < n; i++) {
        struct worker *w = &g_workers[i];
        w->id = i;
        pthread_mutex_init(&w->qlock, NULL);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->epfd < 0 || w->evfd < 0)
            return -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0)
            return -1;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
            return -1;
    }
    return 0;
}

bool worker_dispatch(int fd)
{
    if (conns_open() >= kv_settings.maxconns)
        return false;
    struct worker *w = &g_workers[atomic_fetch_add(&g_next, 1) % (unsigned)g_nworkers];
    pthread_mutex_lock(&w->qlock);
    bool ok = w->qlen < QUEUE_SIZE;
    if (ok) {
        w->queue[(w->qhead + w->qlen) % QUEUE_SIZE] = fd;
        w->qlen++;
        atomic_fetch_add_explicit(&g_open, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&w->qlock);
    if (ok) {
        uint64_t one = 1;
        if (write(w->evfd, &one, sizeof one) < 0) {
            /* the counter is full: the worker is awake already */
        }
    }
    return ok;
}

void workers_stop(void)
{
    for (int i = 0; i < g_nworkers; i++) {
        atomic_store_explicit(&g_workers[i].stop, 1, memory_order_release);
        uint64_t one = 1;
        if (write(g_workers[i].evfd, &one, sizeof one) < 0) {
            /* awake already */
        }
    }
    for (int i = 0; i < g_nworkers; i++) {
        pthread_join(g_workers[i].tid, NULL);
        close(g_workers[i].epfd);
        close(g_workers[i].evfd);
        pthread_mutex_destroy(&g_workers[i].qlock);
    }
    free(g_workers);
    g_workers = NULL;
    g_nworkers = 0;
}

/* ---- maintainer ------------------------------------------------------------ */

static pthread_t g_maint;
static _Atomic int g_maint_stop;
static pthread_mutex_t g_maint_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_maint_cond = PTHREAD_COND_INITIALIZER;

static void *maintainer_main(void *arg)
{
    (void)arg;
    urcu_memb_register_thread();
    unsigned tick = 0;
    pthread_mutex_lock(&g_maint_lock);
    while (!atomic_load_explicit(&g_maint_stop, memory_order_relaxed)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&g_maint_cond, &g_maint_lock, &ts);
        if (atomic_load_explicit(&g_maint_stop, memory_order_relaxed))
            break;
        pthread_mutex_unlock(&g_maint_lock);
        clock_tick();
        tick++;
        items_index_grow();
        /* crawl after a flush_all, and every 10 s for expired items */
        if (items_crawl_wanted() || tick % 10 == 0) {
            urcu_memb_read_lock();
            uint64_t n = items_crawl();
            urcu_memb_read_unlock();
            if (n > 0) {
                /* idle reap: deferred frees done, then cached memory back */
                kv_pool_quiesce();
                for (unsigned i = 1; i <= kv_nclasses; i++)
                    kv_items_shrink(kv_classes[i].cache);
            }
        }
        pthread_mutex_lock(&g_maint_lock);
    }
    pthread_mutex_unlock(&g_maint_lock);
    kv_pool_thread_exit();
    urcu_memb_unregister_thread();
    return NULL;
}

int maintainer_start(void)
{
    return pthread_create(&g_maint, NULL, maintainer_main, NULL) == 0 ? 0 : -1;
}

void maintainer_stop(void)
{
    pthread_mutex_lock(&g_maint_lock);
    atomic_store_explicit(&g_maint_stop, 1, memory_order_relaxed);
    pthread_cond_signal(&g_maint_cond);
    pthread_mutex_unlock(&g_maint_lock);
    pthread_join(g_maint, NULL);
}
