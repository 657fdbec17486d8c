/*
 * conn.c — a connection's buffers, state machine and output queue.
 *
 * Guarantees:
 *  - Every byte a connection holds comes from a pool (pool.h): the struct
 *    (conn pool), its read buffer (conn-rbuf, 16 KiB; a multiget line that
 *    outgrows it moves to a conn-bigline object of 1 MiB), response text
 *    (conn-text blocks of 16 KiB) and the output queue (conn-segs blocks).
 *    conn_free gives all of it back, with every item reference it holds.
 *  - Values are never copied on the way out: a hit queues a segment that
 *    points into the item and holds a reference until written (memcached's
 *    iovecs).  Values are read straight into the new item.
 *  - Input rules are memcached's (proto_text.c try_read_command_ascii): a
 *    line ends at '\n' (a '\r' before it is dropped); 2 KiB without one and
 *    not a get/gets line closes the connection; a get line may grow to
 *    1 MiB, past that the connection is closed.
 *  - Fairness: a connection processes at most `budget` commands per turn
 *    (memcached's reqs_per_event), then yields to the worker's others.
 */
#include "conn.h"

#include "pool.h"
#include "proto_text.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static struct kv_buf_pool *p_conn, *p_rbuf, *p_bigline, *p_text, *p_segs;

int conn_pools_init(void)
{
    p_conn = kv_buf_pool_create("conn", sizeof(struct conn), 64);
    p_rbuf = kv_buf_pool_create("conn-rbuf", RBUF_SIZE, 64);
    p_bigline = kv_buf_pool_create("conn-bigline", BIGLINE_SIZE, 1);
    p_text = kv_buf_pool_create("conn-text", sizeof(struct text_block), 64);
    p_segs = kv_buf_pool_create("conn-segs", sizeof(struct seg_block), 64);
    return p_conn && p_rbuf && p_bigline && p_text && p_segs ? 0 : -1;
}

long conn_pools_destroy(void)
{
    long n = kv_buf_pool_destroy(p_conn) + kv_buf_pool_destroy(p_rbuf) +
             kv_buf_pool_destroy(p_bigline) + kv_buf_pool_destroy(p_text) +
             kv_buf_pool_destroy(p_segs);
    p_conn = p_rbuf = p_bigline = p_text = p_segs = NULL;
    return n;
}

void conn_pools_report(char *buf, size_t n)
{
    snprintf(buf, n, "conn=%llu conn-rbuf=%llu conn-bigline=%llu conn-text=%llu conn-segs=%llu",
             (unsigned long long)kv_buf_in_use(p_conn), (unsigned long long)kv_buf_in_use(p_rbuf),
             (unsigned long long)kv_buf_in_use(p_bigline), (unsigned long long)kv_buf_in_use(p_text),
             (unsigned long long)kv_buf_in_use(p_segs));
}

struct conn *conn_new(int fd, struct worker *w, struct thread_stats *st)
{
    struct conn *c = kv_buf_get(p_conn);
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof *c);
    c->rbuf = kv_buf_get(p_rbuf);
    if (c->rbuf == NULL) {
        kv_buf_put(p_conn, c);
        return NULL;
    }
    c->fd = fd;
    c->worker = w;
    c->stats = st;
    c->rsize = RBUF_SIZE;
    c->state = CONN_PARSE;
    return c;
}

/* ---- output ---------------------------------------------------------------- */

static void text_unref(struct conn *c, struct text_block *t)
{
    if (--t->refs == 0 && t != c->text)
        kv_buf_put(p_text, t);
}

static void seg_done(struct conn *c, struct out_seg *s)
{
    if (s->owner_item)
        item_release(s->owner_item);
    if (s->owner_text)
        text_unref(c, s->owner_text);
    s->owner_item = NULL;
    s->owner_text = NULL;
}

static struct out_seg *seg_append(struct conn *c)
{
    struct seg_block *b = c->oq_tail;
    if (b == NULL || b->n == SEGS_PER_BLOCK) {
        struct seg_block *nb = kv_buf_get(p_segs);
        if (nb == NULL) {
            c->state = CONN_CLOSING;
            return NULL;
        }
        nb->next = NULL;
        nb->head = nb->n = 0;
        if (b)
            b->next = nb;
        else
            c->oq_head = nb;
        c->oq_tail = b = nb;
    }
    struct out_seg *s = &b->seg[b->n++];
    memset(s, 0, sizeof *s);
    return s;
}

static struct out_seg *seg_last(struct conn *c)
{
    struct seg_block *b = c->oq_tail;
    return b && b->n > b->head ? &b->seg[b->n - 1] : NULL;
}

void conn_out(struct conn *c, const char *p, size_t len)
{
    while (len > 0) {
        if (c->text == NULL || c->text->used == sizeof c->text->data) {
            struct text_block *old = c->text;
            c->text = kv_buf_get(p_text);
            if (old && old->refs == 0)
                kv_buf_put(p_text, old);
            if (c->text == NULL) {
                c->state = CONN_CLOSING;
                return;
            }
            c->text->refs = 0;
            c->text->used = 0;
        }
        struct text_block *t = c->text;
        size_t n = sizeof t->data - t->used;
        if (n > len)
            n = len;
        char *dst = t->data + t->used;
        memcpy(dst, p, n);
        struct out_seg *last = seg_last(c);
        if (last && last->owner_text == t && last->p + last->len == dst) {
            last->len += (uint32_t)n;
        } else {
            struct out_seg *s = seg_append(c);
            if (s == NULL)
                return;
            s->p = dst;
            s->len = (uint32_t)n;
            s->owner_text = t;
            t->refs++;
        }
        t->used += (uint32_t)n;
        c->out_bytes += n;
        p += n;
        len -= n;
    }
}

void out_string(struct conn *c, const char *s)
{
    if (c->noreply) {
        c->noreply = false; /* memcached: noreply swallows this one reply */
        return;
    }
    conn_out(c, s, strlen(s));
    conn_out(c, "\r\n", 2);
}

void conn_out_item_value(struct conn *c, struct item *it)
{
    struct out_seg *s = seg_append(c);
    if (s == NULL) {
        item_release(it);
        return;
    }
    s->p = ITEM_value(it);
    s->len = it->nbytes;
    s->owner_item = it;
    c->out_bytes += it->nbytes;
}

uint32_t conn_item_refs(void *arg, const struct item *it)
{
    const struct conn *c = arg;
    uint32_t n = 0;
    for (const struct seg_block *b = c->oq_head; b; b = b->next)
        for (uint32_t i = b->head; i < b->n; i++)
            n += b->seg[i].owner_item == it;
    return n;
}

/* Drop n bytes from the front of the queue. */
static void out_advance(struct conn *c, size_t n)
{
    c->out_bytes -= n;
    while (n > 0 || (c->oq_head && c->oq_head->head == c->oq_head->n)) {
        struct seg_block *b = c->oq_head;
        if (b == NULL)
            break;
        if (b->head == b->n) {
            c->oq_head = b->next;
            if (c->oq_head == NULL)
                c->oq_tail = NULL;
            kv_buf_put(p_segs, b);
            continue;
        }
        struct out_seg *s = &b->seg[b->head];
        if (n < s->len) {
            s->p += n;
            s->len -= (uint32_t)n;
            return;
        }
        n -= s->len;
        seg_done(c, s);
        b->head++;
    }
    if (c->out_bytes == 0 && c->text && c->text->refs == 0)
        c->text->used = 0; /* reuse the block from its start */
}

void conn_drain_output(struct conn *c, void (*f)(void *arg, const char *p, size_t len), void *arg)
{
    for (struct seg_block *b = c->oq_head; b; b = b->next)
        for (uint32_t i = b->head; i < b->n; i++)
            if (f)
                f(arg, b->seg[i].p, b->seg[i].len);
    out_advance(c, c->out_bytes);
}

/* 1: all written, 0: would block, -1: error. */
static int conn_write(struct conn *c)
{
    while (c->out_bytes > 0) {
        struct iovec iov[64];
        int n = 0;
        for (struct seg_block *b = c->oq_head; b && n < 64; b = b->next)
            for (uint32_t i = b->head; i < b->n && n < 64; i++) {
                iov[n].iov_base = (void *)b->seg[i].p;
                iov[n].iov_len = b->seg[i].len;
                n++;
            }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        STAT_ADD(c->stats, bytes_written, (uint64_t)w);
        out_advance(c, (size_t)w);
    }
    return 1;
}

/* ---- input ----------------------------------------------------------------- */

/* Make room to read more: compact, or move a long get line to a big buffer.
 * false: the line can grow no further (close the connection). */
static bool conn_make_room(struct conn *c)
{
    if (c->rpos == c->rlen) {
        c->rpos = c->rlen = 0;
        if (c->rbig) { /* back to a small buffer once the big line is done */
            char *small = kv_buf_get(p_rbuf);
            if (small != NULL) {
                kv_buf_put(p_bigline, c->rbuf);
                c->rbuf = small;
                c->rsize = RBUF_SIZE;
                c->rbig = false;
            }
        }
    }
    if (c->rlen < c->rsize)
        return true;
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
        return true;
    }
    if (c->rbig || c->state != CONN_PARSE)
        return false;
    char *big = kv_buf_get(p_bigline);
    if (big == NULL)
        return false;
    memcpy(big, c->rbuf, c->rlen);
    kv_buf_put(p_rbuf, c->rbuf);
    c->rbuf = big;
    c->rsize = BIGLINE_SIZE;
    c->rbig = true;
    return true;
}

/* memcached: without a '\n' in the first 2 KiB, only a get/gets line may
 * keep growing (leading spaces allowed, up to 100). */
static bool long_line_allowed(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    if (i > 100)
        return false;
    return (n - i >= 4 && memcmp(p + i, "get ", 4) == 0) ||
           (n - i >= 5 && memcmp(p + i, "gets ", 5) == 0);
}

unsigned conn_consume(struct conn *c, unsigned budget)
{
    unsigned done = 0;
    while (done < budget) {
        uint32_t avail = c->rlen - c->rpos;
        switch (c->state) {
        case CONN_CLOSING:
            return done;
        case CONN_NREAD: {
            struct item *it = c->nread_it;
            uint32_t need = it->nbytes - c->nread_done;
            uint32_t n = avail < need ? avail : need;
            memcpy(ITEM_value(it) + c->nread_done, c->rbuf + c->rpos, n);
            c->rpos += n;
            c->nread_done += n;
            if (c->nread_done < it->nbytes)
                return done;
            proto_complete_nread(c);
            done++;
            break;
        }
        case CONN_SWALLOW: {
            uint64_t n = avail < c->swallow_left ? avail : c->swallow_left;
            c->rpos += (uint32_t)n;
            c->swallow_left -= n;
            if (c->swallow_left > 0)
                return done;
            c->state = CONN_PARSE;
            break;
        }
        case CONN_PARSE: {
            if (avail == 0)
                return done;
            char *line = c->rbuf + c->rpos;
            char *el = memchr(line, '\n', avail);
            if (el == NULL) {
                if (avail > LINE_SLACK && !long_line_allowed(line, avail))
                    c->state = CONN_CLOSING;
                return done;
            }
            char *cont = el + 1;
            if (el - line > 1 && el[-1] == '\r')
                el--;
            *el = '\0';
            c->rpos = (uint32_t)(cont - c->rbuf);
            proto_process_command(c, line, (size_t)(el - line));
            done++;
            break;
        }
        }
    }
    return done;
}

void conn_feed(struct conn *c, const char *data, size_t len)
{
    while (c->state != CONN_CLOSING) {
        if (!conn_make_room(c)) {
            c->state = CONN_CLOSING;
            return;
        }
        size_t n = c->rsize - c->rlen;
        if (n > len)
            n = len;
        memcpy(c->rbuf + c->rlen, data, n);
        c->rlen += (uint32_t)n;
        data += n;
        len -= n;
        conn_consume(c, UINT_MAX);
        if (len == 0)
            return;
    }
}

uint32_t conn_drive(struct conn *c, bool *more)
{
    unsigned budget = 20; /* memcached's -R default */
    /* A read that returned less than it asked for emptied the socket: the
     * next read would return EAGAIN, so after handling what came the turn
     * ends and the (level-triggered) epoll says when more arrives, one
     * system call fewer per request (memcached's try_read_network stops
     * the same way). */
    bool drained = false;
    *more = false;
    for (;;) {
        unsigned n = conn_consume(c, budget);
        budget -= n;
        if (c->state == CONN_CLOSING)
            return 0;
        if (c->out_bytes > 0) {
            int w = conn_write(c);
            if (w < 0)
                return 0;
            if (w == 0)
                return EPOLLOUT;
        }
        if (c->close_after_write)
            return 0;
        if (budget == 0) {
            *more = true;
            return EPOLLIN;
        }
        if (drained) /* (consume stops short of its budget only for want of bytes) */
            return EPOLLIN;
        ssize_t r;
        size_t want;
        if (c->state == CONN_NREAD && c->rpos == c->rlen) {
            /* straight into the item */
            struct item *it = c->nread_it;
            want = it->nbytes - c->nread_done;
            r = read(c->fd, ITEM_value(it) + c->nread_done, want);
            if (r > 0) {
                c->nread_done += (uint32_t)r;
                STAT_ADD(c->stats, bytes_read, (uint64_t)r);
                drained = (size_t)r < want;
                continue;
            }
        } else {
            if (!conn_make_room(c))
                return 0;
            want = c->rsize - c->rlen;
            r = read(c->fd, c->rbuf + c->rlen, want);
            if (r > 0) {
                c->rlen += (uint32_t)r;
                STAT_ADD(c->stats, bytes_read, (uint64_t)r);
                drained = (size_t)r < want;
                continue;
            }
        }
        if (r == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return EPOLLIN;
        return 0;
    }
}

void conn_free(struct conn *c)
{
    if (c->nread_it) {
        item_release(c->nread_it);
        c->nread_it = NULL;
    }
    out_advance(c, c->out_bytes);
    if (c->text) {
        kv_buf_put(p_text, c->text);
        c->text = NULL;
    }
    kv_buf_put(c->rbig ? p_bigline : p_rbuf, c->rbuf);
    if (c->fd >= 0)
        close(c->fd);
    kv_buf_put(p_conn, c);
}
