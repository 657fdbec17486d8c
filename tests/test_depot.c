/*
 * Depot and magazine area (src/storage/depot.c).
 *
 *  - the stack head is a lock-free 64-bit atomic (runtime check);
 *  - magazine alloc: bounds, EINVAL, fresh state;
 *  - single thread: LIFO order, empty pops, counters, working-set minima;
 *  - a retired magazine's slot is reused only after a grace period: not while
 *    a reader in another thread holds a section, and right after a
 *    synchronize (the free-slot stack is LIFO);
 *  - free slots give their pages back (mincore) and are reused;
 *  - slot classes: every capacity fits its slot, classes are strided
 *    arithmetically, one depot stack carries magazines of every class;
 *  - hammer (96 magazines, then 3 so that heads repeat often): 6 threads move magazines between the four stacks of two depots,
 *    rewriting their rounds on the way (checksums); an owner flag per
 *    magazine catches a magazine popped by two threads at once; at the end
 *    every magazine is found exactly once, contents intact, counters exact;
 *  - backlog (FIFO hold-back of freed full magazines): engages only after
 *    2 * slots pushes, hands magazines to the full stack oldest first, counts
 *    what it holds, release moves everything and re-arms; the hammer again
 *    with backlogs, full pushes through them and releases racing the pushes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "depot.h"
#include "reclaim.h"
#include "sanitize.h"

#ifdef MP_TSAN
#define OPS 20000
#else
#define OPS 200000
#endif

/* The depot's counters summed over its shards. */
static struct mp_depot_counts dcount(struct mp_depot *d)
{
    struct mp_depot_counts c;
    mp_depot_counts(d, &c);
    return c;
}

static void test_lock_free(void)
{
    struct mp_depot d;
    mp_depot_init(&d, 0, 0);
    CHECK(atomic_is_lock_free(&d.sh[0].full));
    CHECK(atomic_is_lock_free(&d.sh[0].empty));
    CHECK(ATOMIC_LLONG_LOCK_FREE == 2);
}

static void test_alloc_bounds(void)
{
    errno = 0;
    CHECK(mp_mag_alloc(0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mp_mag_alloc(MAGPOOL_MAG_MAX + 1) == NULL && errno == EINVAL);
    struct mp_mag *m = mp_mag_alloc(MAGPOOL_MAG_MAX);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    CHECK(m->mag_cap == MAGPOOL_MAG_MAX && m->mag_rounds == 0 && m->mag_guard == NULL);
    CHECK(((uintptr_t)m & 63) == 0);
    for (unsigned i = 0; i < m->mag_cap; i++)   /* the whole capacity is usable */
        m->mag_objs[i] = (void *)(uintptr_t)(i + 1);
    CHECK(m->mag_objs[MAGPOOL_MAG_MAX - 1] == (void *)(uintptr_t)MAGPOOL_MAG_MAX);
    struct mp_mag *m1 = mp_mag_alloc(1);
    CHECK(m1 != NULL && m1 != m && m1->mag_cap == 1);
    CHECK(m1 == NULL || (char *)m1 >= (char *)&m->mag_objs[MAGPOOL_MAG_MAX] ||
          (char *)m1 + MP_MAG_STRIDE <= (char *)m);   /* slots do not overlap */
    mp_mag_retire(m);
    mp_mag_retire(m1);
    mp_mag_retire(NULL);
    mp_domain_synchronize(NULL);
}

static void test_lifo_counters(void)
{
    struct mp_depot d;
    mp_depot_init(&d, 0, 0);
    CHECK(mp_depot_pop_full(&d) == NULL);
    CHECK(mp_depot_pop_empty(&d) == NULL);
    struct mp_mag *m[3];
    for (int i = 0; i < 3; i++) {
        m[i] = mp_mag_alloc(15);
        CHECK(m[i] != NULL);
        if (m[i] == NULL)
            return;
        m[i]->mag_rounds = (uint32_t)(i + 1);
        mp_depot_push_full(&d, m[i]);
    }
    CHECK(dcount(&d).nfull == 3);
    CHECK(dcount(&d).rounds_full == 6);
    CHECK(atomic_load(&d.pushes_full) == 3);
    uint64_t uf = 99, ue = 99;
    mp_depot_ws_close(&d, &uf, &ue);
    CHECK(uf == 0 && ue == 0);          /* all pushed during the interval */
    mp_depot_ws_close(&d, &uf, &ue);
    CHECK(uf == 3 && ue == 0);          /* untouched through the interval */

    CHECK(mp_depot_pop_full(&d) == m[2]);
    CHECK(mp_depot_pop_full(&d) == m[1]);
    mp_depot_push_full(&d, m[1]);
    mp_depot_ws_close(&d, &uf, &ue);
    CHECK(uf == 1);                     /* the depth went down to 1 */
    CHECK(mp_depot_pop_full(&d) == m[1]);
    CHECK(mp_depot_pop_full(&d) == m[0]);
    CHECK(mp_depot_pop_full(&d) == NULL);
    CHECK(dcount(&d).nfull == 0);
    CHECK(dcount(&d).rounds_full == 0);
    CHECK(dcount(&d).pops_full == 4);
    CHECK(atomic_load(&d.pushes_full) == 4);

    for (int i = 0; i < 3; i++) {
        m[i]->mag_rounds = 0;
        mp_depot_push_empty(&d, m[i]);
    }
    CHECK(dcount(&d).nempty == 3);
    CHECK(dcount(&d).nfull == 0);
    CHECK(mp_depot_pop_full(&d) == NULL);   /* stacks are separate */
    CHECK(mp_depot_pop_empty(&d) == m[2]);
    CHECK(mp_depot_pop_empty(&d) == m[1]);
    CHECK(mp_depot_pop_empty(&d) == m[0]);
    CHECK(mp_depot_pop_empty(&d) == NULL);
    CHECK(dcount(&d).nempty == 0);
    CHECK(atomic_load(&d.contention) == 0); /* single thread: no failed CAS */
    for (int i = 0; i < 3; i++)
        mp_mag_retire(m[i]);
    mp_domain_synchronize(NULL);
}

/* ---- recycling only after a grace period --------------------------------- */

static atomic_int g_inside, g_go;

static void *holder(void *arg)
{
    (void)arg;
    magpool_read_enter(NULL);
    atomic_store(&g_inside, 1);
    while (!atomic_load(&g_go))
        usleep(1000);
    magpool_read_leave(NULL);
    return NULL;
}

static void test_recycle_after_grace(void)
{
    mp_domain_synchronize(NULL);
    struct mp_mag *m = mp_mag_alloc(7);
    CHECK(m != NULL);
    if (m == NULL)
        return;
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    while (!atomic_load(&g_inside))
        usleep(1000);
    uint64_t p0 = mp_domain_pending(NULL);
    mp_mag_retire(m);
    CHECK(mp_domain_pending(NULL) == p0 + 1);
    for (int i = 0; i < 10; i++)
        mp_domain_poll(NULL);
    struct mp_mag *m2 = mp_mag_alloc(7);
    CHECK(m2 != NULL && m2 != m);           /* reader still inside: not reused */
    atomic_store(&g_go, 1);
    pthread_join(t, NULL);
    mp_domain_synchronize(NULL);
    CHECK(mp_domain_pending(NULL) == 0);
    struct mp_mag *m3 = mp_mag_alloc(3);
    CHECK(m3 == m);                          /* now recycled (LIFO free slots) */
    CHECK(m3 != NULL && m3->mag_cap == 3 && m3->mag_rounds == 0 && m3->mag_guard == NULL);
    mp_mag_retire(m2);
    mp_mag_retire(m3);
    mp_domain_synchronize(NULL);
}

/* ---- free slots give their pages back ------------------------------------ */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

static void test_trim(void)
{
    enum { N = 512 };
    static struct mp_mag *m[N];
    for (int i = 0; i < N; i++) {
        m[i] = mp_mag_alloc(MAGPOOL_MAG_MAX);
        if (m[i] == NULL) {
            CHECK(m[i] != NULL);
            return;
        }
        memset(m[i]->mag_objs, 0xab, MAGPOOL_MAG_MAX * sizeof(void *));  /* resident */
    }
    qsort(m, N, sizeof m[0], cmp_ptr);
    /* The longest run of consecutive slots among them. */
    int best = 0, best_len = 1;
    for (int a = 0, b; a < N; a = b + 1) {
        for (b = a; b + 1 < N && (char *)m[b + 1] == (char *)m[b] + MP_MAG_STRIDE; b++)
            ;
        if (b - a + 1 > best_len)
            best = a, best_len = b - a + 1;
    }
    CHECK(best_len >= 64);
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)m[best] + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t hi = ((uintptr_t)m[best + best_len - 1] + MP_MAG_STRIDE) & ~((uintptr_t)pg - 1);
    size_t npages = (hi - lo) / (size_t)pg;
    unsigned char *vec = malloc(npages);
    CHECK(mincore((void *)lo, hi - lo, vec) == 0);
    size_t resident = 0;
    for (size_t i = 0; i < npages; i++)
        resident += vec[i] & 1;
    CHECK(resident == npages);              /* touched: all resident */
    for (int i = 0; i < N; i++)
        mp_mag_retire(m[i]);
    mp_domain_synchronize(NULL);
    mp_mag_area_trim();                     /* the remainder below TRIM_BATCH */
    CHECK(mincore((void *)lo, hi - lo, vec) == 0);
    resident = 0;
    for (size_t i = 0; i < npages; i++)
        resident += vec[i] & 1;
    CHECK_MSG(resident * 10 <= npages, "%zu of %zu pages still resident", resident, npages);
    free(vec);
    /* Trimmed slots are reusable and come back zeroed-then-initialised. */
    struct mp_mag *r = mp_mag_alloc(5);
    CHECK(r != NULL && r->mag_cap == 5 && r->mag_rounds == 0 && atomic_load(&r->mag_next) == 0);
    mp_mag_retire(r);
    mp_domain_synchronize(NULL);
}

/* ---- slot classes --------------------------------------------------------- */

/* Every capacity gets a whole, cache-aligned slot of its class: filling every
 * magazine completely disturbs no other; magazines of one class lie a
 * multiple of the class stride apart; a 143-round magazine (the default for
 * small objects) takes a 1280-byte slot, not MP_MAG_STRIDE. */
static void test_classes(void)
{
    static const unsigned caps[] = { 1, 3, 7, 13, 14, 15, 21, 22, 31, 37, 38, 47, 63, 69,
                                     70, 95, 101, 102, 143, 151, 157, 158, 200, 255 };
    enum { NC = sizeof caps / sizeof caps[0], PER = 3 };
    struct mp_mag *m[NC][PER];
    for (unsigned i = 0; i < NC; i++)
        for (unsigned j = 0; j < PER; j++) {
            m[i][j] = mp_mag_alloc(caps[i]);
            CHECK(m[i][j] != NULL);
            if (m[i][j] == NULL)
                return;
            CHECK(((uintptr_t)m[i][j] & 63) == 0 && m[i][j]->mag_cap == caps[i]);
            for (unsigned k = 0; k < caps[i]; k++)
                m[i][j]->mag_objs[k] = (void *)(uintptr_t)(i << 16 | j << 8 | (k & 255));
        }
    int bad = 0;
    for (unsigned i = 0; i < NC; i++)
        for (unsigned j = 0; j < PER; j++) {
            bad += m[i][j]->mag_cap != caps[i] || m[i][j]->mag_guard != NULL;
            for (unsigned k = 0; k < caps[i]; k++)
                bad += m[i][j]->mag_objs[k] != (void *)(uintptr_t)(i << 16 | j << 8 | (k & 255));
        }
    CHECK(bad == 0);
    /* cap 143 is caps[18]: class stride 1280 */
    CHECK(caps[18] == 143);
    ptrdiff_t d1 = (char *)m[18][1] - (char *)m[18][0], d2 = (char *)m[18][2] - (char *)m[18][0];
    CHECK(d1 % 1280 == 0 && d2 % 1280 == 0);
    CHECK(d1 % (ptrdiff_t)MP_MAG_STRIDE != 0 || d2 % (ptrdiff_t)MP_MAG_STRIDE != 0);
    /* caps 3 and 13 share the smallest class (128-byte slots) */
    CHECK(((char *)m[1][0] - (char *)m[3][0]) % 128 == 0);
    /* depot pushes and pops work across classes in one stack */
    struct mp_depot d;
    mp_depot_init(&d, 0, 0);
    for (unsigned i = 0; i < NC; i++) {
        m[i][0]->mag_rounds = 1;
        mp_depot_push_full(&d, m[i][0]);
    }
    for (unsigned i = NC; i-- > 0;)
        CHECK(mp_depot_pop_full(&d) == m[i][0]);
    CHECK(mp_depot_pop_full(&d) == NULL);
    for (unsigned i = 0; i < NC; i++)
        for (unsigned j = 0; j < PER; j++)
            mp_mag_retire(m[i][j]);
    mp_domain_synchronize(NULL);
}

/* ---- backlog (depot.c, "Backlog") ----------------------------------------- */

static void test_backlog_fifo(void)
{
    enum { SLOTS = 4, N = 3 * SLOTS + 2 };
    struct mp_depot d;
    mp_depot_init(&d, SLOTS, 0); /* span: the minimum, 2 * SLOTS */
    CHECK(d.bl_slots == SLOTS);
    struct mp_mag *m[N];
    for (unsigned i = 0; i < N; i++) {
        m[i] = mp_mag_alloc(15);
        CHECK(m[i] != NULL);
        if (m[i] == NULL)
            return;
        m[i]->mag_rounds = 1 + i;
    }
    /* DB1: the first 2 * SLOTS pushes go straight to the stack (LIFO). */
    for (unsigned i = 0; i < 2 * SLOTS; i++)
        mp_depot_push_freed(&d, m[i]);
    CHECK(atomic_load(&d.bl_mags) == 0 && dcount(&d).nfull == 2 * SLOTS);
    for (unsigned i = 2 * SLOTS; i-- > 0;)
        CHECK(mp_depot_pop_full(&d) == m[i]);
    CHECK(mp_depot_pop_full(&d) == NULL);
    /* Engaged: the next SLOTS pushes stay in the backlog... */
    for (unsigned i = 0; i < SLOTS; i++)
        mp_depot_push_freed(&d, m[i]);
    CHECK(mp_depot_pop_full(&d) == NULL);
    CHECK(atomic_load(&d.bl_mags) == SLOTS);
    uint64_t held = 0;
    for (unsigned i = 0; i < SLOTS; i++)
        held += m[i]->mag_rounds;
    CHECK(atomic_load(&d.bl_rounds) == held);
    /* ...and each later push sends the oldest one to the stack. */
    for (unsigned i = SLOTS; i < N; i++) {
        mp_depot_push_freed(&d, m[i]);
        CHECK(mp_depot_pop_full(&d) == m[i - SLOTS]);
        CHECK(mp_depot_pop_full(&d) == NULL);
    }
    CHECK(atomic_load(&d.bl_mags) == SLOTS);
    CHECK(dcount(&d).nfull == 0 && dcount(&d).rounds_full == 0);
    /* Release: every held magazine to the stack, counters to zero. */
    CHECK(mp_depot_backlog_release(&d) == SLOTS);
    CHECK(atomic_load(&d.bl_mags) == 0 && atomic_load(&d.bl_rounds) == 0);
    CHECK(dcount(&d).nfull == SLOTS);
    unsigned seen = 0;
    struct mp_mag *p;
    while ((p = mp_depot_pop_full(&d)) != NULL)
        for (unsigned i = N - SLOTS; i < N; i++)
            seen += p == m[i];
    CHECK(seen == SLOTS);
    CHECK(mp_depot_backlog_release(&d) == 0);
    /* Re-armed: 2 * SLOTS more pushes before it engages again. */
    for (unsigned i = 0; i < 2 * SLOTS; i++)
        mp_depot_push_freed(&d, m[i]);
    CHECK(atomic_load(&d.bl_mags) == 0);
    mp_depot_push_freed(&d, m[2 * SLOTS]);
    CHECK(atomic_load(&d.bl_mags) == 1);
    /* The idle tick releases only after an interval with no push. */
    mp_depot_backlog_tick(&d);
    CHECK(atomic_load(&d.bl_mags) == 1);
    mp_depot_backlog_tick(&d);
    CHECK(atomic_load(&d.bl_mags) == 0);
    CHECK(dcount(&d).nfull == 2 * SLOTS + 1);
    while (mp_depot_pop_full(&d) != NULL)
        ;
    /* No backlog: push_freed is push_full. */
    struct mp_depot z;
    mp_depot_init(&z, 0, 0);
    for (unsigned i = 0; i < N; i++)
        mp_depot_push_freed(&z, m[i]);
    CHECK(atomic_load(&z.bl_mags) == 0 && dcount(&z).nfull == N);
    CHECK(mp_depot_backlog_release(&z) == 0);
    for (unsigned i = N; i-- > 0;)
        CHECK(mp_depot_pop_full(&z) == m[i]);
    for (unsigned i = 0; i < N; i++)
        mp_mag_retire(m[i]);
    mp_domain_synchronize(NULL);
}

/* ---- hammer -------------------------------------------------------------- */

#define NMAG 96
#define NTHR 6
#define CAP 31
#define ID_SLOT CAP /* one slot past the rounds holds the magazine's id */

static struct mp_depot g_d[2];
static struct mp_mag *g_mags[NMAG];
static atomic_int g_owner[NMAG];
static atomic_long g_bad, g_moves;
static uint32_t g_nmag;     /* magazines in this run (few = heads repeat often: ABA bait) */
static bool g_backlog;      /* full pushes go through the depots' backlogs */

/* Contents are a function of (id, rounds): objs[k] = id << 16 | rounds << 8 | k,
 * and objs[ID_SLOT] = id. */
static uint32_t mag_id(const struct mp_mag *m)
{
    return (uint32_t)(uintptr_t)m->mag_objs[ID_SLOT];
}

static void fill(struct mp_mag *m, uint32_t id, uint32_t rounds)
{
    m->mag_objs[ID_SLOT] = (void *)(uintptr_t)id;
    m->mag_rounds = rounds;
    for (uint32_t k = 0; k < rounds; k++)
        m->mag_objs[k] = (void *)(uintptr_t)(id << 16 | rounds << 8 | k);
}

static int intact(const struct mp_mag *m)
{
    uint32_t id = mag_id(m);
    if (id >= g_nmag || m->mag_rounds > CAP || g_mags[id] != m)
        return 0;
    for (uint32_t k = 0; k < m->mag_rounds; k++)
        if (m->mag_objs[k] != (void *)(uintptr_t)(id << 16 | m->mag_rounds << 8 | k))
            return 0;
    return 1;
}

static struct mp_mag *pop_any(unsigned which)
{
    struct mp_depot *d = &g_d[which & 1];
    return (which & 2) ? mp_depot_pop_empty(d) : mp_depot_pop_full(d);
}

static void *hammer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < OPS; i++) {
        seed = seed * 1103515245u + 12345u;
        struct mp_mag *m = pop_any(seed >> 12);
        if (m == NULL)
            continue;
        if (!intact(m)) {
            atomic_fetch_add(&g_bad, 1);
            continue;           /* lost on purpose: the final count fails */
        }
        uint32_t id = mag_id(m);
        if (atomic_exchange(&g_owner[id], 1) != 0)
            atomic_fetch_add(&g_bad, 1);            /* popped twice */
        seed = seed * 1103515245u + 12345u;
        unsigned dst = seed >> 12;
        uint32_t rounds = (dst & 2) ? 0 : 1 + (seed >> 20) % CAP;
        fill(m, id, rounds);
        atomic_store(&g_owner[id], 0);
        struct mp_depot *d = &g_d[dst & 1];
        if (dst & 2)
            mp_depot_push_empty(d, m);
        else if (g_backlog)
            mp_depot_push_freed(d, m);
        else
            mp_depot_push_full(d, m);
        if (g_backlog && (seed >> 24) % 64 == 0)
            mp_depot_backlog_release(d); /* races pushes into the same ring (DB2) */
        atomic_fetch_add_explicit(&g_moves, 1, memory_order_relaxed);
    }
    return NULL;    /* the thread-exit key releases the epoch record */
}

static void test_hammer(uint32_t nmag, unsigned backlog_slots)
{
    g_nmag = nmag;
    g_backlog = backlog_slots != 0;
    atomic_store(&g_moves, 0);
    mp_depot_init(&g_d[0], backlog_slots, 0);
    mp_depot_init(&g_d[1], backlog_slots, 0);
    for (uint32_t i = 0; i < nmag; i++) {
        g_mags[i] = mp_mag_alloc(CAP + 1);
        CHECK(g_mags[i] != NULL);
        if (g_mags[i] == NULL)
            return;
        if (i % 2) {
            fill(g_mags[i], i, 0);
            mp_depot_push_empty(&g_d[i % 4 / 2], g_mags[i]);
        } else {
            fill(g_mags[i], i, 1 + i % CAP);
            mp_depot_push_full(&g_d[i % 4 / 2], g_mags[i]);
        }
    }
    pthread_t t[NTHR];
    for (uintptr_t i = 0; i < NTHR; i++)
        pthread_create(&t[i], NULL, hammer, (void *)(i * 7919 + 1));
    for (int i = 0; i < NTHR; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&g_bad) == 0);
    CHECK(atomic_load(&g_moves) > 0);

    /* Quiescent: counters exact, then drain and count every magazine once. */
    uint64_t nmags = 0, rounds = 0;
    for (int k = 0; k < 2; k++) {
        nmags += dcount(&g_d[k]).nfull + dcount(&g_d[k]).nempty;
        nmags += atomic_load(&g_d[k].bl_mags);
        rounds += dcount(&g_d[k]).rounds_full + atomic_load(&g_d[k].bl_rounds);
    }
    CHECK_MSG(nmags == nmag, "counters say %llu magazines", (unsigned long long)nmags);
    for (int k = 0; k < 2; k++) {
        uint64_t held = atomic_load(&g_d[k].bl_mags);
        CHECK(mp_depot_backlog_release(&g_d[k]) == held);
        CHECK(atomic_load(&g_d[k].bl_mags) == 0 && atomic_load(&g_d[k].bl_rounds) == 0);
    }
    int seen[NMAG] = { 0 };
    uint64_t found = 0, found_rounds = 0;
    int bad = 0;
    for (unsigned w = 0; w < 4; w++) {
        struct mp_mag *m;
        int guard = 0;  /* a corrupted (cyclic) stack must not hang the test */
        while (guard++ < 4 * NMAG && (m = pop_any(w)) != NULL) {
            if (!intact(m) || ((w & 2) && m->mag_rounds != 0) || (!(w & 2) && m->mag_rounds == 0)) {
                bad++;
                continue;
            }
            seen[mag_id(m)]++;
            found++;
            if (!(w & 2))
                found_rounds += m->mag_rounds;
        }
    }
    CHECK(bad == 0);
    CHECK_MSG(found == nmag, "found %llu of %u magazines", (unsigned long long)found, nmag);
    int once = 1;
    for (uint32_t i = 0; i < nmag; i++)
        once &= seen[i] == 1;
    CHECK(once);
    CHECK(found_rounds == rounds);
    for (int k = 0; k < 2; k++) {
        CHECK(dcount(&g_d[k]).nfull == 0 && dcount(&g_d[k]).nempty == 0);
        CHECK(dcount(&g_d[k]).rounds_full == 0);
        CHECK(atomic_load(&g_d[k].pushes_full) == dcount(&g_d[k]).pops_full);
    }
    printf("hammer(%u magazines, backlog %u): %ld moves, contention %llu + %llu failed CAS\n",
           nmag, backlog_slots,
           atomic_load(&g_moves),
           (unsigned long long)atomic_load(&g_d[0].contention),
           (unsigned long long)atomic_load(&g_d[1].contention));
    for (uint32_t i = 0; i < nmag; i++)
        mp_mag_retire(g_mags[i]);
    mp_domain_synchronize(NULL);
    CHECK(mp_domain_pending(NULL) == 0);
}

/* Home shards: a thread pops the magazines it pushed before anyone
 * else's, and another thread's once its own shard is empty; the counters
 * sum over the shards. */
struct home_arg {
    struct mp_depot *d;
    struct mp_mag **m;
    struct mp_mag *popped[4];
};

static void *home_pusher(void *arg)
{
    struct home_arg *a = arg;
    mp_depot_push_full(a->d, a->m[0]);
    mp_depot_push_full(a->d, a->m[1]);
    return NULL;
}

static void *home_popper(void *arg)
{
    struct home_arg *a = arg;
    for (int i = 0; i < 4; i++)
        a->popped[i] = mp_depot_pop_full(a->d);
    return NULL;
}

static void test_home_shards(void)
{
    struct mp_depot d;
    mp_depot_init(&d, 0, 0);
    struct mp_mag *ma[2], *mb[2];
    for (int i = 0; i < 2; i++) {
        ma[i] = mp_mag_alloc(15);
        mb[i] = mp_mag_alloc(15);
        CHECK(ma[i] != NULL && mb[i] != NULL);
        if (ma[i] == NULL || mb[i] == NULL)
            return;
        ma[i]->mag_rounds = 1;
        mb[i]->mag_rounds = 2;
    }
    mp_depot_push_full(&d, ma[0]);
    mp_depot_push_full(&d, ma[1]);
    /* Another thread (another home shard) pushes later: this thread still
     * gets its own first. */
    struct home_arg b = { &d, mb, { NULL } };
    pthread_t t;
    CHECK(pthread_create(&t, NULL, home_pusher, &b) == 0);
    pthread_join(t, NULL);
    CHECK(dcount(&d).nfull == 4 && dcount(&d).rounds_full == 6);
    CHECK(mp_depot_pop_full(&d) == ma[1]);
    CHECK(mp_depot_pop_full(&d) == ma[0]);
    /* Own shard empty: the other's, in its LIFO order. */
    CHECK(mp_depot_pop_full(&d) == mb[1]);
    mp_depot_push_full(&d, mb[1]); /* now on this thread's shard */
    /* A third thread finds both through its empty home shard. */
    struct home_arg c = { &d, NULL, { NULL } };
    CHECK(pthread_create(&t, NULL, home_popper, &c) == 0);
    pthread_join(t, NULL);
    CHECK(c.popped[3] == NULL && c.popped[2] == NULL);
    CHECK((c.popped[0] == mb[0] && c.popped[1] == mb[1]) || (c.popped[0] == mb[1] && c.popped[1] == mb[0]));
    CHECK(dcount(&d).nfull == 0 && dcount(&d).rounds_full == 0 && dcount(&d).pops_full == 5);
    CHECK(atomic_load(&d.pushes_full) == 5);
    for (int i = 0; i < 2; i++) {
        mp_mag_retire(ma[i]);
        mp_mag_retire(mb[i]);
    }
}

int main(void)
{
    test_lock_free();
    test_alloc_bounds();
    test_lifo_counters();
    test_home_shards();
    test_recycle_after_grace();
    test_trim();
    test_classes();
    test_backlog_fifo();
    test_hammer(NMAG, 0);
    test_hammer(3, 0);
    test_hammer(NMAG, 8);
    test_hammer(5, 2);
    mp_reclaim_thread_exit();
    return check_done();
}
