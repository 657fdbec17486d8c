/*
 * Reclamation domains (src/memory/reclaim.c): grace periods in the ck_epoch domain
 * and in a liburcu (urcu-memb) domain.
 *
 *  - quiescent: with no reader anywhere, one poll runs a retired node (R4);
 *  - a reader holding a section (plain or nested) keeps a retired node from
 *    running through polls, and a synchronize in a third thread stays blocked
 *    until the reader leaves (checked by the reader before it leaves);
 *  - poll and synchronize from inside the caller's own section;
 *  - torture: writers replace objects in shared slots and retire the old
 *    ones (the callback marks them dead and frees them), readers check inside
 *    their sections that what they see is not dead (ASan sees a premature
 *    free, TSan a missing happens-before);
 *  - thread exit with pending retires runs them (explicit call and the
 *    thread-exit key);
 *  - the urcu domain: one domain per flavour, EINVAL for NULL, a deferred
 *    callback waits for a reader holding urcu_memb_read_lock or a nested
 *    magpool_read_enter, and synchronize waits for it too;
 *  - synchronize inside the caller's own section (R7): one line and abort
 *    (both domains, and kmem_cache_synchronize_rcu); MAGPOOL_DEBUG=continue
 *    returns at once without a grace period.
 * No timing assertions: sleeps only give a broken implementation the chance
 * to run early; the assertions are on flags.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "magpool/kmem_cache.h"

#include "check.h"
#include "reclaim.h"
#include "sanitize.h"

#ifdef MP_TSAN
#define SCALE 1
#else
#define SCALE 4
#endif

struct tnode {
    struct mp_retire_node node;
    atomic_int ran;
};

static void tnode_cb(struct mp_retire_node *n)
{
    struct tnode *t = (struct tnode *)n;
    atomic_fetch_add(&t->ran, 1);
}

/* ---- a reader that holds a section until told to leave ------------------- */

struct holder {
    magpool_domain_t *dom;
    int depth;              /* nesting: enter this many times */
    int urcu_direct;        /* use urcu_memb_read_lock instead of magpool_read_enter */
    atomic_int inside;      /* 1 once the section is open */
    atomic_int go;          /* 1: leave now */
    struct tnode *watch;    /* must not have run while inside */
    atomic_int *sync_done;  /* the synchronizer must still be blocked */
    int ok_before_leave;
};

static void *holder_main(void *arg)
{
    struct holder *h = arg;
    if (h->urcu_direct || h->dom != magpool_domain_default())
        urcu_memb_register_thread();
    for (int i = 0; i < h->depth; i++) {
        if (h->urcu_direct)
            urcu_memb_read_lock();
        else
            magpool_read_enter(h->dom);
    }
    if (h->depth > 1 && !h->urcu_direct)
        magpool_read_leave(h->dom); /* inner leave: must stay protected */
    atomic_store(&h->inside, 1);
    while (!atomic_load(&h->go))
        usleep(1000);
    h->ok_before_leave = atomic_load(&h->watch->ran) == 0 &&
                         (h->sync_done == NULL || atomic_load(h->sync_done) == 0);
    int leaves = h->urcu_direct ? h->depth : (h->depth > 1 ? h->depth - 1 : h->depth);
    for (int i = 0; i < leaves; i++) {
        if (h->urcu_direct)
            urcu_memb_read_unlock();
        else
            magpool_read_leave(h->dom);
    }
    if (h->urcu_direct || h->dom != magpool_domain_default())
        urcu_memb_unregister_thread();
    mp_reclaim_thread_exit();
    return NULL;
}

struct syncer {
    magpool_domain_t *dom;
    atomic_int done;
};

static void *syncer_main(void *arg)
{
    struct syncer *s = arg;
    if (s->dom != magpool_domain_default())
        urcu_memb_register_thread();
    mp_domain_synchronize(s->dom);
    atomic_store(&s->done, 1);
    if (s->dom != magpool_domain_default())
        urcu_memb_unregister_thread();
    mp_reclaim_thread_exit();
    return NULL;
}

/* A reader holds a (possibly nested) section; a node retired now must not
 * run before it leaves, through polls or a synchronize in a third thread. */
static void test_reader_blocks(magpool_domain_t *dom, int depth, int urcu_direct)
{
    struct tnode t = { .ran = 0 };
    struct holder h = { .dom = dom, .depth = depth, .urcu_direct = urcu_direct, .watch = &t };
    struct syncer s = { .dom = dom };
    h.sync_done = &s.done;
    pthread_t rt, st;
    pthread_create(&rt, NULL, holder_main, &h);
    while (!atomic_load(&h.inside))
        usleep(1000);

    mp_retire(dom, &t.node, tnode_cb);
    CHECK(mp_domain_pending(dom) >= 1);
    for (int i = 0; i < 20; i++) {
        mp_domain_poll(dom);
        usleep(500);
    }
    CHECK_MSG(atomic_load(&t.ran) == 0, "depth %d urcu_direct %d", depth, urcu_direct);

    pthread_create(&st, NULL, syncer_main, &s);
    usleep(20000);
    CHECK(atomic_load(&s.done) == 0);
    CHECK(atomic_load(&t.ran) == 0);

    atomic_store(&h.go, 1);
    pthread_join(rt, NULL);
    pthread_join(st, NULL);
    CHECK_MSG(h.ok_before_leave, "callback or synchronize ran while the reader was inside");
    CHECK(atomic_load(&s.done) == 1);
    CHECK(atomic_load(&t.ran) == 1);
}

/* ---- ck domain, single thread -------------------------------------------- */

static void test_quiescent_poll(void)
{
    magpool_domain_t *d = magpool_domain_default();
    CHECK(d != NULL);
    CHECK(d == mp_domain_default());
    uint64_t p0 = mp_domain_pending(d);
    struct tnode t = { .ran = 0 };
    mp_retire(NULL, &t.node, tnode_cb);   /* NULL = default */
    CHECK(mp_domain_pending(d) == p0 + 1);
    mp_domain_poll(d);                     /* no reader anywhere: R4 */
    CHECK(atomic_load(&t.ran) == 1);
    CHECK(mp_domain_pending(d) == p0);
    mp_domain_poll(d);
    CHECK(atomic_load(&t.ran) == 1);       /* exactly once */
}

static void test_own_section(void)
{
    magpool_domain_t *d = magpool_domain_default();
    struct tnode t = { .ran = 0 };
    magpool_read_enter(NULL);
    magpool_read_enter(d);                 /* nested */
    mp_retire(d, &t.node, tnode_cb);
    for (int i = 0; i < 10; i++)
        mp_domain_poll(d);                 /* own section protects */
    CHECK(atomic_load(&t.ran) == 0);
    magpool_read_leave(d);
    mp_domain_poll(d);
    CHECK(atomic_load(&t.ran) == 0);       /* outer still open */
    magpool_read_leave(NULL);
    mp_domain_synchronize(d);
    CHECK(atomic_load(&t.ran) == 1);
    CHECK(mp_domain_pending(d) == 0);
}

static void test_many_retires_batch(void)
{
    enum { N = 1000 };
    static struct tnode t[N];
    for (int i = 0; i < N; i++) {
        atomic_init(&t[i].ran, 0);
        mp_retire(NULL, &t[i].node, tnode_cb);
    }
    CHECK(mp_domain_pending(NULL) == N);
    mp_domain_synchronize(NULL);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok &= atomic_load(&t[i].ran) == 1;
    CHECK(ok);
    CHECK(mp_domain_pending(NULL) == 0);
}

/* ---- torture: readers never see a dead object ---------------------------- */

#define SLOTS 16
#define MAGIC 0x5eed5eedu

struct obj {
    struct mp_retire_node node;
    unsigned magic;
    int dead;                 /* plain: ordered by the grace period (R10) */
    unsigned value;
};

static _Atomic(struct obj *) g_slots[SLOTS];
static atomic_int g_stop;
static atomic_long g_freed, g_retired, g_bad;

static void obj_cb(struct mp_retire_node *n)
{
    struct obj *o = (struct obj *)n;
    if (o->dead)
        atomic_fetch_add(&g_bad, 1);
    o->dead = 1;
    o->magic = 0;
    atomic_fetch_add(&g_freed, 1);
    free(o);
}

static struct obj *obj_new(unsigned v)
{
    struct obj *o = malloc(sizeof *o);
    o->magic = MAGIC;
    o->dead = 0;
    o->value = v;
    return o;
}

static void *reader_main(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    long reads = 0;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        magpool_read_enter(NULL);
        for (int k = 0; k < 8; k++) {
            seed = seed * 1103515245u + 12345u;
            /* acquire: pairs with the writer's release exchange, so the
             * object's initialisation is visible */
            struct obj *o = atomic_load_explicit(&g_slots[(seed >> 8) % SLOTS],
                                                 memory_order_acquire);
            if (o->dead || o->magic != MAGIC)
                atomic_fetch_add(&g_bad, 1);
            reads++;
        }
        if (reads % 64 == 0)
            magpool_read_enter(NULL), magpool_read_leave(NULL); /* nested */
        magpool_read_leave(NULL);
    }
    mp_reclaim_thread_exit();
    return NULL;
}

static void *writer_main(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 4000 * SCALE; i++) {
        seed = seed * 1103515245u + 12345u;
        struct obj *o = obj_new(seed);
        /* acq_rel: release publishes o's fields to readers; acquire makes
         * the old object's fields ours before retiring it */
        struct obj *old = atomic_exchange_explicit(&g_slots[(seed >> 8) % SLOTS], o,
                                                   memory_order_acq_rel);
        mp_retire(NULL, &old->node, obj_cb);
        atomic_fetch_add(&g_retired, 1);
        if (i % 16 == 0)
            mp_domain_poll(NULL);
    }
    if ((uintptr_t)arg & 1)
        mp_reclaim_thread_exit();   /* the others rely on the thread-exit key */
    return NULL;
}

static void test_torture(void)
{
    enum { R = 3, W = 3 };
    for (int i = 0; i < SLOTS; i++)
        atomic_store(&g_slots[i], obj_new((unsigned)i));
    pthread_t rt[R], wt[W];
    for (uintptr_t i = 0; i < R; i++)
        pthread_create(&rt[i], NULL, reader_main, (void *)(i + 1));
    for (uintptr_t i = 0; i < W; i++)
        pthread_create(&wt[i], NULL, writer_main, (void *)(i + 100));
    for (int i = 0; i < W; i++)
        pthread_join(wt[i], NULL);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < R; i++)
        pthread_join(rt[i], NULL);
    mp_domain_synchronize(NULL);
    CHECK(atomic_load(&g_bad) == 0);
    CHECK(atomic_load(&g_retired) == 4000L * SCALE * W);
    CHECK_MSG(atomic_load(&g_freed) == atomic_load(&g_retired), "freed %ld retired %ld",
              atomic_load(&g_freed), atomic_load(&g_retired));
    CHECK(mp_domain_pending(NULL) == 0);
    for (int i = 0; i < SLOTS; i++)
        free(atomic_load(&g_slots[i]));
}

/* ---- thread exit --------------------------------------------------------- */

static struct tnode g_exit_nodes[2][64];

static void *exiter_main(void *arg)
{
    int explicit_exit = (int)(uintptr_t)arg;
    for (int i = 0; i < 64; i++)
        mp_retire(NULL, &g_exit_nodes[explicit_exit][i].node, tnode_cb);
    if (explicit_exit)
        mp_reclaim_thread_exit();
    return NULL;
}

static void test_thread_exit(void)
{
    for (uintptr_t e = 0; e < 2; e++) {
        for (int i = 0; i < 64; i++)
            atomic_init(&g_exit_nodes[e][i].ran, 0);
        pthread_t t;
        pthread_create(&t, NULL, exiter_main, (void *)e);
        pthread_join(t, NULL);
        int ok = 1;
        for (int i = 0; i < 64; i++)
            ok &= atomic_load(&g_exit_nodes[e][i].ran) == 1;
        CHECK_MSG(ok, "pending retires stranded at thread exit (explicit=%d)", (int)e);
    }
    mp_reclaim_thread_exit();   /* main too; then it must work again */
    struct tnode t = { .ran = 0 };
    mp_retire(NULL, &t.node, tnode_cb);
    mp_domain_synchronize(NULL);
    CHECK(atomic_load(&t.ran) == 1);
}

/* ---- urcu domain --------------------------------------------------------- */

static void test_urcu(void)
{
    errno = 0;
    CHECK(magpool_domain_urcu(NULL) == NULL && errno == EINVAL);
    magpool_domain_t *d = magpool_domain_urcu(&urcu_memb_flavor);
    CHECK(d != NULL);
    CHECK(d == magpool_domain_urcu(&urcu_memb_flavor));
    CHECK(d != magpool_domain_default());
    if (d == NULL)
        return;
    urcu_memb_register_thread();

    /* simple retire + synchronize */
    struct tnode t = { .ran = 0 };
    mp_retire(d, &t.node, tnode_cb);
    mp_domain_poll(d);                     /* a no-op for urcu, must not crash */
    mp_domain_synchronize(d);
    CHECK(atomic_load(&t.ran) == 1);
    CHECK(mp_domain_pending(d) == 0);

    /* nested magpool_read_enter in our own thread */
    magpool_read_enter(d);
    magpool_read_enter(d);
    CHECK(urcu_memb_read_ongoing());
    magpool_read_leave(d);
    CHECK(urcu_memb_read_ongoing());
    magpool_read_leave(d);
    CHECK(!urcu_memb_read_ongoing());

    test_reader_blocks(d, 1, 1);           /* urcu_memb_read_lock held */
    test_reader_blocks(d, 2, 0);           /* nested magpool_read_enter */

    /* many retires, one barrier */
    enum { N = 256 };
    static struct tnode many[N];
    for (int i = 0; i < N; i++) {
        atomic_init(&many[i].ran, 0);
        mp_retire(d, &many[i].node, tnode_cb);
    }
    mp_domain_synchronize(d);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok &= atomic_load(&many[i].ran) == 1;
    CHECK(ok);
    CHECK(mp_domain_pending(d) == 0);
    urcu_memb_unregister_thread();
}

/* ---- synchronize inside a read-side section (R7) -------------------------- *
 * Each child would wait for itself (or, before R7 was a misuse, print and
 * carry on without a grace period): it must die with the line.  alarm()
 * turns a hang into a death without the line. */
static void sync_in_section_child(void *arg)
{
    int which = (int)(intptr_t)arg;
    alarm(10);
    if (which == 0) {
        magpool_read_enter(NULL);
        magpool_synchronize(NULL);
    } else if (which == 1) {
        kmem_cache_rcu_read_lock();
        kmem_cache_synchronize_rcu();
    } else {
        urcu_memb_register_thread();
        magpool_domain_t *d = magpool_domain_urcu(&urcu_memb_flavor);
        urcu_memb_read_lock();
        magpool_synchronize(d);
    }
    printf("synchronize returned\n");
}

/* Continue mode: the line, then synchronize returns with no grace period
 * (a node retired inside the section has not run), and the program goes on. */
static void sync_in_section_continue(void *arg)
{
    (void)arg;
    alarm(10);
    setenv("MAGPOOL_DEBUG", "continue", 1);
    struct tnode t = { .ran = 0 };
    magpool_read_enter(NULL);
    mp_retire(NULL, &t.node, tnode_cb);
    magpool_synchronize(NULL);
    int early = atomic_load(&t.ran);
    magpool_read_leave(NULL);
    magpool_synchronize(NULL);
    printf("ran inside: %d, after: %d\n", early, atomic_load(&t.ran));
    fflush(stdout);
    _exit(early == 0 && atomic_load(&t.ran) == 1 ? 0 : 1);
}

static void test_sync_in_section(void)
{
    const char *line = "magpool: reclaim: synchronize inside a read-side section at 0x";
    CHECK(check_death(sync_in_section_child, (void *)0, line));
    CHECK(check_death(sync_in_section_child, (void *)1, line));
    CHECK(check_death(sync_in_section_child, (void *)2, line));
    char out[4096];
    int st = check_run_child(sync_in_section_continue, NULL, out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, line) &&
                  strstr(out, "returning without a grace period") && strstr(out, "ran inside: 0, after: 1"),
              "continue mode: status %#x [%s]", st, out);
}

int main(void)
{
    test_sync_in_section(); /* first: its children read MAGPOOL_DEBUG fresh */
    test_quiescent_poll();
    test_own_section();
    test_many_retires_batch();
    test_reader_blocks(magpool_domain_default(), 1, 0);
    test_reader_blocks(magpool_domain_default(), 3, 0);
    test_torture();
    test_thread_exit();
    test_urcu();
    mp_reclaim_thread_exit();
    return check_done();
}
