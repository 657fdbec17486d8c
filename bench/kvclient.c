/*
 * kvclient — the server benchmark's own small memcached text-protocol client
 * (bench/server.py, issue 17).  memcaslap drives the load; this measures what
 * memcaslap cannot: per-request latency percentiles, a fast bounded fill,
 * `stats`, and single commands.  Every loop is bounded in time and count,
 * every socket has a receive/send timeout, and it talks only to the address
 * given (server.py passes 127.0.0.1).
 *
 *   kvclient probe --port P [--host H] [--conns 4] [--seconds 10] [--warmup-ms 1000]
 *                  [--keys 200] [--min 100] [--max 1000] [--set-ratio 0.1] [--seed 1]
 *                  [--rate 1000]
 *       C connections, each its own thread with one request in flight: first
 *       sets its own K keys, then until the deadline sends `get` (90 %) or
 *       `set` (10 %) of one of them, values of MIN..MAX bytes (uniform),
 *       RATE requests per second per connection (gaps uniform in 0.5-1.5 x
 *       1/RATE, so the probe samples the server at random moments and adds
 *       little load; --rate 0: back to back), and records each request's
 *       latency (send to last reply byte, CLOCK_MONOTONIC) in a 1 us
 *       histogram up to 100 ms (+ overflow, exact max).  Prints one line:
 *       probe ops=N seconds=S ops_per_s=R mean_us= p50_us= p90_us= p99_us=
 *             p999_us= max_us= misses= errors=
 *
 *   kvclient fill --port P [--items 1000000] [--size 100] [--conns 2]
 *                 [--batch 100] [--max-seconds 300] [--prefix f:]
 *       stores keys PREFIX0..PREFIX(N-1) (`set KEY 0 0 SIZE`), pipelined in
 *       batches, each batch's STORED replies read before the next: prints
 *       fill items=N stored=N errors=N seconds=S
 *
 *   kvclient stats --port P      `stats`: one "NAME VALUE" line per STAT
 *   kvclient cmd --port P LINE   sends LINE, prints the reply's first line
 *
 * Exit status: 0 ok; 1 errors (a reply not as expected, a timeout, a refused
 * connection); 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 100000 /* 1 us buckets up to 100 ms; above: overflow */

static const char *g_host = "127.0.0.1";
static int g_port;
static int g_conns = 4;
static double g_seconds = 10;
static int g_warmup_ms = 1000;
static int g_keys = 200;
static int g_vmin = 100, g_vmax = 1000;
static double g_set_ratio = 0.1;
static double g_rate = 1000; /* probe: requests per second per connection; 0: closed loop */
static unsigned g_seed = 1;
static long g_items = 1000000;
static int g_size = 100;
static int g_batch = 100;
static double g_max_seconds = 300;
static const char *g_prefix = "f:";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- a connection with a read buffer ------------------------------------- */

struct conn {
    int fd;
    char *buf;
    size_t cap, start, end; /* unread bytes are buf[start..end) */
};

static int conn_open(struct conn *c)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    if (inet_pton(AF_INET, g_host, &a.sin_addr) != 1 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
    return c->buf ? 0 : -1;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    c->fd = -1;
    c->buf = NULL;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* at least `want` unread bytes, or -1 (timeout, EOF, error) */
static int fill_to(struct conn *c, size_t want)
{
    while (c->end - c->start < want) {
        if (c->start == c->end)
            c->start = c->end = 0;
        if (c->cap - c->end < 4096 || c->start + want > c->cap) {
            /* compact, then grow until want + 4 KiB fit from offset 0 */
            size_t n = c->end - c->start;
            memmove(c->buf, c->buf + c->start, n);
            c->start = 0;
            c->end = n;
            while (c->cap < want + 4096) {
                char *nb = realloc(c->buf, c->cap * 2);
                if (nb == NULL)
                    return -1;
                c->buf = nb;
                c->cap *= 2;
            }
        }
        ssize_t r = recv(c->fd, c->buf + c->end, c->cap - c->end, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c->end += (size_t)r;
    }
    return 0;
}

/* the next line without its \r\n (NUL-terminated in the buffer), or NULL */
static char *read_line(struct conn *c)
{
    for (;;) {
        char *s = c->buf + c->start;
        char *nl = memchr(s, '\n', c->end - c->start);
        if (nl != NULL) {
            *nl = '\0';
            if (nl > s && nl[-1] == '\r')
                nl[-1] = '\0';
            c->start = (size_t)(nl + 1 - c->buf);
            return s;
        }
        if (fill_to(c, c->end - c->start + 1) != 0)
            return NULL;
    }
}

/* a get's reply: 1 hit, 0 miss, -1 error */
static int read_get_reply(struct conn *c)
{
    char *l = read_line(c);
    if (l == NULL)
        return -1;
    if (strcmp(l, "END") == 0)
        return 0;
    if (strncmp(l, "VALUE ", 6) != 0)
        return -1;
    char *sp = strrchr(l, ' ');
    long n = strtol(sp + 1, NULL, 10);
    if (n < 0 || fill_to(c, (size_t)n + 2) != 0)
        return -1;
    c->start += (size_t)n + 2;
    l = read_line(c);
    return l != NULL && strcmp(l, "END") == 0 ? 1 : -1;
}

/* ---- probe ------------------------------------------------------------------ */

struct probe {
    pthread_t th;
    int id;
    uint32_t *hist;
    uint64_t over, ops, misses, errors, sum_ns, max_ns;
    double t_begin, t_end;
};

static double g_deadline, g_record_from;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    struct conn c;
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)g_seed << 32) ^ (uint64_t)(p->id + 1) * 0x2545f4914f6cdd1dull;
    char *req = malloc((size_t)g_vmax + 256);
    char *val = malloc((size_t)g_vmax);
    if (req == NULL || val == NULL || conn_open(&c) != 0) {
        p->errors++;
        free(req);
        free(val);
        return NULL;
    }
    for (int i = 0; i < g_vmax; i++)
        val[i] = (char)('a' + i % 26);
    uint64_t mean_gap = g_rate > 0 ? (uint64_t)(1e9 / g_rate) : 0, next = 0;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: store every key once (untimed); pass 1: the timed loop */
        long i = 0;
        for (;;) {
            int k, set, len;
            if (pass == 0) {
                if (i >= g_keys)
                    break;
                k = (int)i++;
                set = 1;
            } else {
                if (mean_gap > 0) {
                    /* paced: gaps uniform in [0.5, 1.5] x the mean; a slot
                     * missed (a slow reply) is skipped, not caught up */
                    uint64_t t = now_ns();
                    if (next == 0 || next < t)
                        next = t;
                    next += mean_gap / 2 + rng_next(&rng) % (mean_gap + 1);
                    struct timespec ts = {.tv_sec = (time_t)(next / 1000000000u),
                                          .tv_nsec = (long)(next % 1000000000u)};
                    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                        ;
                }
                if (now_s() >= g_deadline)
                    break;
                uint64_t r = rng_next(&rng);
                k = (int)(r % (uint64_t)g_keys);
                set = (double)((r >> 32) & 0xffffff) / 16777216.0 < g_set_ratio;
            }
            len = g_vmin + (int)(rng_next(&rng) % (uint64_t)(g_vmax - g_vmin + 1));
            int n;
            if (set) {
                n = snprintf(req, 256, "set probe:%d:%d 0 0 %d\r\n", p->id, k, len);
                memcpy(req + n, val, (size_t)len);
                memcpy(req + n + len, "\r\n", 2);
                n += len + 2;
            } else {
                n = snprintf(req, 256, "get probe:%d:%d\r\n", p->id, k);
            }
            double t = now_s();
            uint64_t t0 = now_ns();
            int ok;
            if (send_all(&c, req, (size_t)n) != 0) {
                ok = -1;
            } else if (set) {
                char *l = read_line(&c);
                ok = l != NULL && strcmp(l, "STORED") == 0 ? 1 : -1;
            } else {
                ok = read_get_reply(&c);
            }
            uint64_t dt = now_ns() - t0;
            if (ok < 0) {
                p->errors++;
                if (pass == 0 || p->errors > 100)
                    goto out;
                /* the stream may be out of step: start a new connection */
                conn_close(&c);
                if (conn_open(&c) != 0)
                    goto out;
                continue;
            }
            if (pass == 0 || t < g_record_from)
                continue;
            if (p->ops == 0)
                p->t_begin = t;
            p->ops++;
            p->misses += ok == 0;
            p->sum_ns += dt;
            if (dt > p->max_ns)
                p->max_ns = dt;
            uint64_t us = dt / 1000;
            if (us < HIST_US)
                p->hist[us]++;
            else
                p->over++;
        }
    }
out:
    p->t_end = now_s();
    conn_close(&c);
    free(req);
    free(val);
    return NULL;
}

static int run_probe(void)
{
    struct probe *ps = calloc((size_t)g_conns, sizeof *ps);
    if (ps == NULL)
        return 1;
    double t0 = now_s();
    g_record_from = t0 + g_warmup_ms / 1000.0;
    g_deadline = t0 + g_seconds;
    for (int i = 0; i < g_conns; i++) {
        ps[i].id = i;
        ps[i].hist = calloc(HIST_US, sizeof(uint32_t));
        if (ps[i].hist == NULL || pthread_create(&ps[i].th, NULL, probe_main, &ps[i]) != 0) {
            fprintf(stderr, "kvclient: cannot start probe thread %d\n", i);
            return 1;
        }
    }
    uint64_t *hist = calloc(HIST_US, sizeof(uint64_t));
    uint64_t ops = 0, over = 0, misses = 0, errors = 0, sum = 0, mx = 0;
    double tb = 1e300, te = 0;
    for (int i = 0; i < g_conns; i++) {
        pthread_join(ps[i].th, NULL);
        for (int j = 0; j < HIST_US; j++)
            hist[j] += ps[i].hist[j];
        ops += ps[i].ops;
        over += ps[i].over;
        misses += ps[i].misses;
        errors += ps[i].errors;
        sum += ps[i].sum_ns;
        if (ps[i].max_ns > mx)
            mx = ps[i].max_ns;
        if (ps[i].ops > 0 && ps[i].t_begin < tb)
            tb = ps[i].t_begin;
        if (ps[i].t_end > te)
            te = ps[i].t_end;
        free(ps[i].hist);
    }
    double q[4] = {0.5, 0.9, 0.99, 0.999}, v[4];
    for (int k = 0; k < 4; k++) {
        uint64_t want = (uint64_t)((double)ops * q[k]), acc = 0;
        int j = 0;
        for (; j < HIST_US; j++) {
            acc += hist[j];
            if (acc > want)
                break;
        }
        /* the bucket [j, j+1) us: report its middle; overflow: the max */
        v[k] = j < HIST_US ? j + 0.5 : (double)mx / 1000.0;
    }
    double secs = te > tb ? te - tb : 0;
    printf("probe ops=%llu seconds=%.3f ops_per_s=%.1f mean_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "p999_us=%.1f max_us=%.1f over_100ms=%llu misses=%llu errors=%llu conns=%d\n",
           (unsigned long long)ops, secs, secs > 0 ? (double)ops / secs : 0, ops ? (double)sum / (double)ops / 1000.0 : 0,
           v[0], v[1], v[2], v[3], (double)mx / 1000.0, (unsigned long long)over, (unsigned long long)misses,
           (unsigned long long)errors, g_conns);
    free(hist);
    free(ps);
    return errors > 0 || ops == 0;
}

/* ---- fill ------------------------------------------------------------------- */

struct filler {
    pthread_t th;
    int id;
    long stored, errors;
};

static void *fill_main(void *arg)
{
    struct filler *f = arg;
    struct conn c;
    size_t cap = (size_t)g_batch * ((size_t)g_size + 96);
    char *out = malloc(cap);
    if (out == NULL || conn_open(&c) != 0) {
        f->errors++;
        free(out);
        return NULL;
    }
    char *val = malloc((size_t)g_size + 1);
    memset(val, 'v', (size_t)g_size);
    double stop = now_s() + g_max_seconds;
    long k = f->id;
    while (k < g_items && now_s() < stop) {
        size_t n = 0;
        int inflight = 0;
        for (; inflight < g_batch && k < g_items; inflight++, k += g_conns) {
            n += (size_t)snprintf(out + n, 96, "set %s%ld 0 0 %d\r\n", g_prefix, k, g_size);
            memcpy(out + n, val, (size_t)g_size);
            n += (size_t)g_size;
            memcpy(out + n, "\r\n", 2);
            n += 2;
        }
        if (send_all(&c, out, n) != 0) {
            f->errors += inflight;
            break;
        }
        for (int i = 0; i < inflight; i++) {
            char *l = read_line(&c);
            if (l == NULL) {
                f->errors += inflight - i;
                goto out;
            }
            if (strcmp(l, "STORED") == 0)
                f->stored++;
            else
                f->errors++;
        }
    }
out:
    conn_close(&c);
    free(out);
    free(val);
    return NULL;
}

static int run_fill(void)
{
    struct filler *fs = calloc((size_t)g_conns, sizeof *fs);
    double t0 = now_s();
    for (int i = 0; i < g_conns; i++) {
        fs[i].id = i;
        if (pthread_create(&fs[i].th, NULL, fill_main, &fs[i]) != 0)
            return 1;
    }
    long stored = 0, errors = 0;
    for (int i = 0; i < g_conns; i++) {
        pthread_join(fs[i].th, NULL);
        stored += fs[i].stored;
        errors += fs[i].errors;
    }
    printf("fill items=%ld stored=%ld errors=%ld seconds=%.3f\n", g_items, stored, errors, now_s() - t0);
    free(fs);
    return errors > 0 || stored != g_items;
}

/* ---- stats / cmd ------------------------------------------------------------- */

static int run_stats(void)
{
    struct conn c;
    if (conn_open(&c) != 0 || send_all(&c, "stats\r\n", 7) != 0)
        return 1;
    for (int n = 0; n < 1000; n++) {
        char *l = read_line(&c);
        if (l == NULL)
            break;
        if (strcmp(l, "END") == 0) {
            conn_close(&c);
            return 0;
        }
        if (strncmp(l, "STAT ", 5) == 0)
            printf("%s\n", l + 5);
    }
    conn_close(&c);
    return 1;
}

static int run_cmd(const char *line)
{
    struct conn c;
    if (conn_open(&c) != 0)
        return 1;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\r\n", line);
    if (n <= 0 || (size_t)n >= sizeof buf || send_all(&c, buf, (size_t)n) != 0)
        return 1;
    char *l = read_line(&c);
    if (l == NULL)
        return 1;
    printf("%s\n", l);
    conn_close(&c);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: kvclient probe|fill|stats|cmd --port P [options] (see the comment in bench/kvclient.c)\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *mode = argv[1];
    const char *line = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, stmt)                   \
    if (strcmp(a, name) == 0 && v) {      \
        stmt;                             \
        i++;                              \
        continue;                         \
    }
        OPT("--port", g_port = atoi(v));
        OPT("--host", g_host = v);
        OPT("--conns", g_conns = atoi(v));
        OPT("--seconds", g_seconds = atof(v));
        OPT("--warmup-ms", g_warmup_ms = atoi(v));
        OPT("--keys", g_keys = atoi(v));
        OPT("--min", g_vmin = atoi(v));
        OPT("--max", g_vmax = atoi(v));
        OPT("--set-ratio", g_set_ratio = atof(v));
        OPT("--rate", g_rate = atof(v));
        OPT("--seed", g_seed = (unsigned)strtoul(v, NULL, 10));
        OPT("--items", g_items = atol(v));
        OPT("--size", g_size = atoi(v));
        OPT("--batch", g_batch = atoi(v));
        OPT("--max-seconds", g_max_seconds = atof(v));
        OPT("--prefix", g_prefix = v);
#undef OPT
        if (a[0] != '-' && line == NULL) {
            line = a;
            continue;
        }
        return usage();
    }
    if (g_port <= 0 || g_port > 65535 || g_conns < 1 || g_conns > 256 || g_keys < 1 || g_vmin < 1 ||
        g_vmax < g_vmin || g_vmax > (1 << 20) || g_seconds <= 0 || g_seconds > 3600 || g_batch < 1 || g_rate < 0 || g_rate > 1e6 ||
        g_size < 1 || g_size > (1 << 20) || g_items < 0 || g_max_seconds <= 0 || strlen(g_prefix) > 40)
        return usage();
    if (strcmp(mode, "probe") == 0)
        return run_probe();
    if (strcmp(mode, "fill") == 0)
        return run_fill();
    if (strcmp(mode, "stats") == 0)
        return run_stats();
    if (strcmp(mode, "cmd") == 0 && line != NULL)
        return run_cmd(line);
    return usage();
}
