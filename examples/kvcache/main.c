/*
 * main.c — kvcache: start-up, settings, the listener, shutdown.
 *
 *   kvcache -p PORT -l ADDR -t THREADS -m MEGABYTES [-c MAXCONNS] [-f FACTOR]
 *           [-n MINSIZE] [-v]
 *
 * Guarantees: prints nothing on a successful start; serves until SIGTERM or
 * SIGINT; then stops accepting, stops the workers (each frees its
 * connections), unlinks every item, waits for the deferred frees, destroys
 * every pool and prints one conservation line on stderr:
 *   kvcache: shutdown: items 0 live in N classes, connection objects 0 live: clean
 * and exits 0 only when every object went back to its pool.
 */
#include "conn.h"
#include "items.h"
#include "pool.h"
#include "settings.h"
#include "slabs.h"
#include "thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct kv_settings kv_settings = {
    .port = 11211,
    .listen = "127.0.0.1",
    .threads = 4,
    .maxbytes = 64ull << 20,
    .maxconns = 1024,
    .factor = 1.25,
    .chunk_size = 48,
    .item_size_max = KV_ITEM_SIZE_MAX,
};

static void usage(void)
{
    fprintf(stderr, "usage: kvcache -p PORT -l ADDR -t THREADS -m MEGABYTES [-c MAXCONNS] "
                    "[-f FACTOR] [-n MINSIZE] [-v]\n");
    exit(2);
}

static int listen_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)kv_settings.port)};
    if (inet_pton(AF_INET, kv_settings.listen, &a.sin_addr) != 1) {
        fprintf(stderr, "kvcache: bad listen address %s\n", kv_settings.listen);
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) {
        fprintf(stderr, "kvcache: cannot listen on %s:%d: %s\n", kv_settings.listen,
                kv_settings.port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)kv_settings.maxconns + 64;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (rl.rlim_max < want)
            rl.rlim_max = want; /* works as root */
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
}

/* Accept until EAGAIN; false when accepting must pause (out of fds). */
static bool accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return !(errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!worker_dispatch(fd)) {
            static const char msg[] = "ERROR Too many open connections\r\n";
            if (write(fd, msg, sizeof msg - 1) < 0) {
                /* the client is gone: nothing to tell */
            }
            close(fd);
        }
    }
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:l:t:m:c:f:n:vU:")) != -1) {
        switch (opt) {
        case 'p': kv_settings.port = atoi(optarg); break;
        case 'l': kv_settings.listen = optarg; break;
        case 't': kv_settings.threads = atoi(optarg); break;
        case 'm': kv_settings.maxbytes = strtoull(optarg, NULL, 10) << 20; break;
        case 'c': kv_settings.maxconns = atoi(optarg); break;
        case 'f': kv_settings.factor = strtod(optarg, NULL); break;
        case 'n': kv_settings.chunk_size = atoi(optarg); break;
        case 'v': kv_settings.verbose++; break;
        case 'U': break; /* memcached's UDP port: there is no UDP here */
        default: usage();
        }
    }
    if (kv_settings.threads < 1 || kv_settings.threads > 256 || kv_settings.maxbytes == 0 ||
        kv_settings.maxconns < 1 || kv_settings.factor <= 1.0 || kv_settings.chunk_size < 1 ||
        kv_settings.port <= 0 || kv_settings.port > 65535)
        usage();
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread */
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

    urcu_memb_register_thread();
    if (slabs_init(sizeof(struct item), kv_settings.factor, (size_t)kv_settings.chunk_size,
                   kv_settings.maxbytes) != 0 ||
        items_init() != 0 || conn_pools_init() != 0) {
        fprintf(stderr, "kvcache: cannot set up pools\n");
        return 1;
    }
    int lfd = listen_socket();
    if (lfd < 0 || sfd < 0)
        return 1;
    if (workers_start(kv_settings.threads) != 0 || maintainer_start() != 0) {
        fprintf(stderr, "kvcache: cannot start threads\n");
        return 1;
    }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = sfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    bool accepting = true;
    for (bool stop = false; !stop;) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, accepting ? -1 : 10);
        if (!accepting) { /* out of file descriptors a moment ago */
            ev.data.fd = lfd;
            epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
            accepting = true;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == sfd) {
                stop = true;
            } else if (!accept_all(lfd)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
                accepting = false;
            }
        }
    }

    close(lfd);
    close(ep);
    workers_stop();
    maintainer_stop();
    items_unlink_all();
    kv_pool_quiesce();
    items_destroy_index();
    kv_pool_quiesce();
    long conn_live = conn_pools_destroy();
    long item_live = slabs_destroy();
    urcu_memb_unregister_thread();
    fprintf(stderr,
            "kvcache: shutdown: items %ld live in %u classes, connection objects %ld live: %s\n",
            item_live, kv_nclasses, conn_live, item_live == 0 && conn_live == 0 ? "clean" : "LEAK");
    return item_live == 0 && conn_live == 0 ? 0 : 1;
}
