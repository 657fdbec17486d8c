/*
 * conn.h — one client connection: its buffers, its state machine (memcached's
 * conn_parse / conn_nread / conn_swallow / conn_closing), and its output
 * queue.  A connection belongs to one worker thread for its whole life;
 * nothing in it is shared.
 */
#ifndef KVCACHE_CONN_H
#define KVCACHE_CONN_H

#include "items.h"
#include "stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RBUF_SIZE 16384u           /* read buffer (from the conn-rbuf pool) */
#define BIGLINE_SIZE (1u << 20)    /* a multiget line past RBUF_SIZE (conn-bigline pool) */
#define TEXT_BLOCK_SIZE 16384u     /* response text (conn-text pool) */
#define SEGS_PER_BLOCK 254u        /* output segments per conn-segs object */
#define LINE_SLACK 2048u           /* memcached: no '\n' in 2 KiB and not a get: close */

enum conn_state { CONN_PARSE, CONN_NREAD, CONN_SWALLOW, CONN_CLOSING };

/* A piece of output: bytes in a text block (owner_text) or an item's value
 * (owner_item, one reference held until written). */
struct out_seg {
    const char *p;
    uint32_t len;
    struct text_block *owner_text;
    struct item *owner_item;
};

struct seg_block {
    struct seg_block *next;
    uint32_t head, n;              /* segments [head, n) are pending */
    struct out_seg seg[SEGS_PER_BLOCK];
};

struct text_block {
    uint32_t refs;                 /* segments pointing into it */
    uint32_t used;
    char data[TEXT_BLOCK_SIZE - 8];
};

struct worker;

struct conn {
    int fd;                        /* -1 for in-memory connections (tests, fuzzing) */
    enum conn_state state;
    struct worker *worker;
    struct thread_stats *stats;
    /* input */
    char *rbuf;                    /* RBUF_SIZE, or BIGLINE_SIZE when big */
    uint32_t rsize, rpos, rlen;    /* bytes [rpos, rlen) unread */
    bool rbig;
    /* a value being read (CONN_NREAD) */
    struct item *nread_it;
    uint32_t nread_done;
    enum store_cmd nread_cmd;
    uint64_t nread_cas;
    bool nread_noreply;
    uint64_t swallow_left;         /* CONN_SWALLOW */
    bool noreply;                  /* the command being processed */
    bool close_after_write;
    /* output */
    struct seg_block *oq_head, *oq_tail;
    struct text_block *text;       /* block being filled */
    uint64_t out_bytes;            /* pending */
    /* the worker's bookkeeping */
    uint32_t epoll_events;
    bool pending;                  /* on the worker's to-revisit list */
    struct conn *prev, *next;      /* the worker's connections */
    struct conn *next_pending;
};

/* Pools for connections and their buffers (conn_pools_init once). */
int conn_pools_init(void);
/* Destroy the pools; returns the objects still out (0 when clean). */
long conn_pools_destroy(void);
/* Summary "name=in_use ..." of the pools into buf. */
void conn_pools_report(char *buf, size_t n);

struct conn *conn_new(int fd, struct worker *w, struct thread_stats *st);
/* Release everything the connection holds (items, buffers) and the
 * connection itself; closes fd if >= 0. */
void conn_free(struct conn *c);

/* Process the bytes buffered in rbuf, up to `budget` commands.  Returns the
 * number of commands processed. */
unsigned conn_consume(struct conn *c, unsigned budget);
/* In-memory input (tests, fuzzing): append and process all of it. */
void conn_feed(struct conn *c, const char *data, size_t len);
/* Socket I/O: read, process, write until it would block.  Returns the
 * epoll events wanted next (EPOLLIN / EPOLLOUT), or 0 when the connection
 * must be freed.  *more set when it stopped with work left (fairness). */
uint32_t conn_drive(struct conn *c, bool *more);

/* Output (used by proto_text.c). */
void conn_out(struct conn *c, const char *p, size_t len);
void out_string(struct conn *c, const char *s); /* + "\r\n"; honours noreply */
void conn_out_item_value(struct conn *c, struct item *it); /* takes the reference */
/* References to it held by c's output queue (replies not yet written). */
uint32_t conn_item_refs(void *c, const struct item *it);
/* Move pending output to f(arg, bytes, len) and drop it (in-memory conns). */
void conn_drain_output(struct conn *c, void (*f)(void *arg, const char *p, size_t len), void *arg);

#endif
