/*
 * Reclamation domains: epoch-based (Concurrency Kit ck_epoch, the default)
 * and liburcu-backed (the application's flavour).
 *
 * What this layer guarantees
 * --------------------------
 *  mp_retire(d, node, fn) runs fn(node) exactly once, after every read-side
 *  section of d that could have obtained a reference to the retired memory
 *  (i.e. that was open when the caller unlinked it) has been left.  Retire is
 *  lock-free and costs no epoch operation; grace periods are detected in
 *  batches by mp_domain_poll (non-blocking, from slow paths) and
 *  mp_domain_synchronize (blocking).  After mp_domain_synchronize(d) returns,
 *  every node retired before the call (by any thread) has run.  Callbacks
 *  must not call mp_domain_synchronize (they may retire and poll).
 *
 * The ck_epoch domain
 * -------------------
 *  Read side: each thread owns a ck_epoch_record_t, made lazily on its first
 *  section (ck_epoch_recycle, else mp_meta_alloc + ck_epoch_register) and
 *  released when the thread exits.  Sections nest; ck_epoch_begin/end are
 *  called only at the outermost level (per-thread nesting count).
 *
 *  Write side: the domain keeps its own lists (C11 atomics and a mutex, all
 *  visible to TSan; never ck_epoch_call, so ck_epoch_unregister can never
 *  drop a callback):
 *    incoming  lock-free LIFO (Treiber push; the only removal is an exchange
 *              of the whole list, so there is no ABA),
 *    limbo     FIFO of nodes stamped with a global epoch, under `lock`.
 *  poll:        trylock; detach incoming (one exchange); stamp the batch with
 *               the global epoch G read after the exchange; append to limbo;
 *               if limbo has nodes that are not ripe and this thread is not
 *               inside a section, one ck_epoch_poll() to advance G; run the
 *               ripe prefix; unlock.
 *  synchronize: lock; detach and append as poll; ck_epoch_synchronize();
 *               run all of limbo; unlock.
 *
 * Proof, under the C11 memory model (not only x86-TSO).  Every operation the
 * argument orders is sequentially consistent, so it holds in the single total
 * order S of those operations, which agrees with sequenced-before and with
 * each object's modification order: on the reader's side ck_epoch_begin
 * stores active, executes a full fence (ck_pr_fence_memory: a seq_cst fence)
 * and then loads G, and ck moves G only by a locked CAS (seq_cst RMW); on
 * ours, the push of a node is a seq_cst CAS made by the retiring thread right
 * after its unlink, the exchange that detaches incoming is seq_cst, and the
 * stamp is a seq_cst load of G (epoch_now).  On x86-64 each is the
 * instruction it was before (a locked RMW or a plain load), so this costs
 * nothing there; on weaker machines it is what the argument needs: an unlink
 * (a store) must be ordered before a later load of G as a third thread sees
 * it, which release/acquire alone does not give.
 *  R1 (ck).  Let a section S have recorded epoch r (the global value it read
 *      after publishing active = 1).  While S is open, the global epoch
 *      G <= r + 1: G moves from x to x + 1 only after a scan, started after
 *      reading G = x, sees every active record at epoch x; S is seen active
 *      by any scan that read G > r (S's active store precedes its load of r,
 *      which precedes the store of r + 1 in the total store order), so G can
 *      not move past r + 1 until S ends.  (ck_epoch.c's invariant "active
 *      threads are at e_g or e_g - 1".)
 *  R2 (stamp).  Let node n be retired after its memory was unlinked, and s
 *      the stamp of its batch (n->epoch: G, read after the exchange that
 *      detached the batch).  For any section S that obtained a reference
 *      to n's memory, r(S) <= s: in S (the total order above), S's fence
 *      precedes its load of G, which precedes its reference load; that load
 *      did not see the unlink, so S's fence precedes the retirer's push
 *      (store buffering: of two threads that each store then fence or SC-RMW
 *      then load, at least one load sees the other's store), the push
 *      precedes the seq_cst exchange that detached it (it read the push or a
 *      later value of incoming), and the exchange precedes the seq_cst load
 *      of s; G only grows in S; so r <= s.  A stamp read too late is only
 *      conservative (it delays the run).
 *  R3 (ripe).  If G >= s + 2 then every such S has ended: by R1 an open S
 *      would give G <= r(S) + 1 <= s + 1.  Ripe is computed as
 *      (int)(G - s) >= 2, safe across wrap for any node younger than 2^31
 *      epochs.
 *  R4 (quiescent shortcut).  ck_epoch_poll() returns true without moving G
 *      only when its scan found every record inactive (if any record was
 *      active at G it either moves G by CAS or sees it moved).  That scan
 *      started after every stamp in limbo was read, so every section that
 *      could reference a limbo node had ended (it would have been seen
 *      active): all of limbo is ripe.  We test this as: poll returned true
 *      and G read before equals G read after.
 *  R5 (order).  Stamps are read under `lock` from a monotone G and appended
 *      in that order, so the ripe nodes of limbo are always a prefix.
 *  R6 (synchronize).  ck_epoch_synchronize returns after every section open
 *      at its start has ended.  Every node in limbo was unlinked before the
 *      exchange, which precedes the call: all of limbo is ripe, and it is run
 *      before `lock` is released.  Callbacks of a concurrent poll run under
 *      `lock` too, so when synchronize returns none is still running, and a
 *      node retired before the call is either in incoming (detached by our
 *      exchange), in limbo, or already run.
 *  R7 (synchronize inside a section) would wait for itself: diagnosed as a
 *      misuse (one line, abort; MAGPOOL_DEBUG=continue: refused, returning
 *      with no grace period).  A liburcu domain asks its flavour
 *      (read_ongoing).  poll inside a section never calls ck_epoch_poll (it would
 *      overwrite this thread's recorded epoch while active, breaking R1 for
 *      this thread); it only runs what is already ripe.
 *  R8 (thread exit).  Nothing is ever kept in a thread's record, so nothing
 *      can be stranded there.  A thread that retired nodes synchronizes on
 *      exit (its nodes have run when it is gone), then its record is
 *      unregistered for recycling (records are never freed, as ck requires).
 *      Exiting while a joiner holds a read-side section of the default domain
 *      therefore deadlocks, as synchronize inside a section would.
 *  R9 (batching, Kim, Brown & Singh PPoPP 2024).  Retire does no epoch
 *      operation; a poll does at most one (ck_epoch_poll) for its whole
 *      backlog, and only when something in limbo is unripe.
 *  R10 (TSan).  ck's ck_pr_* are inline asm, invisible to TSan, so grace
 *      periods are annotated: __tsan_release(domain) just before a section's
 *      outermost end, __tsan_acquire(domain) at the start of every callback,
 *      so a reader's accesses happen-before the callback that frees them.
 *      A recycled record is handed over with release/acquire on the record.
 *
 * The liburcu domain
 * ------------------
 *  One domain per flavour (a small table under a mutex).  enter/leave are the
 *  flavour's read_lock/read_unlock (nesting is liburcu's); retire is the
 *  flavour's call_rcu with the rcu_head inside the node's impl[] and a
 *  trampoline; synchronize is synchronize_rcu then rcu_barrier (which waits
 *  for every queued callback).  Only function pointers of the flavour are
 *  called: the library does not link liburcu.  liburcu is not instrumented,
 *  so TSan sees: release(node) before call_rcu / acquire(node) and
 *  acquire(domain) in the trampoline, release(&d->cb_done) after the
 *  callback / acquire(&d->cb_done) after rcu_barrier, and the thread that
 *  calls rcu_barrier ignores its own accesses during it (liburcu allocates
 *  there and frees in its own thread).  The retiring thread,
 *  like every reader, must be registered with the flavour (liburcu's rule:
 *  call_rcu takes a read-side lock).
 */
#include "reclaim.h"
#include "atomics.h"
#include "report.h"
#include "meta.h"
#include "sanitize.h"

#include <ck_epoch.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/call-rcu.h>   /* struct rcu_head only; no _LGPL_SOURCE */
#include <urcu/flavor.h>     /* struct rcu_flavor_struct only */

/* TSan: rcu_barrier() callocs a completion in the caller and liburcu's
 * call_rcu thread frees it, synchronized only by liburcu's own uninstrumented
 * atomics and futexes.  Accesses (not synchronization) are ignored in the
 * calling thread for the duration of that one call, so the allocation resets
 * the shadow instead of counting as a write; our own happens-before edges
 * (cb_done) are untouched.  An annotation, not a suppression. */

_Static_assert(sizeof(struct rcu_head) <= sizeof(((struct mp_retire_node *)0)->impl),
               "struct rcu_head fits mp_retire_node.impl");
_Static_assert(_Alignof(struct rcu_head) <= _Alignof(void *), "rcu_head alignment");

enum { DOM_CK, DOM_URCU };

struct magpool_domain {
    int kind;                                  /* DOM_CK / DOM_URCU, fixed */
    const struct rcu_flavor_struct *flavor;    /* DOM_URCU: fixed at creation */
    _Atomic uint64_t pending;                  /* retired, not yet run (relaxed) */
    /* DOM_CK write side */
    _Atomic(struct mp_retire_node *) incoming; /* lock-free LIFO of new retires */
    pthread_mutex_t lock;                      /* guards limbo; held while callbacks run */
    struct mp_retire_node *limbo_head, *limbo_tail; /* stamped FIFO (R5) */
    /* TSan: release after a urcu callback, acquire after rcu_barrier */
    char cb_done;
};

static struct magpool_domain g_default = {
    .kind = DOM_CK,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};
static ck_epoch_t g_epoch;                     /* initialised at load (global_init) */
static pthread_key_t g_exit_key;               /* safety net: thread exit */

/* Per-thread state of the default domain.  Zero = no record yet. */
struct rthread {
    ck_epoch_record_t *rec;
    unsigned nest;        /* open sections of the default domain */
    unsigned retired;     /* nodes retired since this thread last synchronized */
};
/* initial-exec like mp_tcs (thread.c): one %fs-relative access, not a
 * __tls_get_addr call per read-side section. */
static __thread struct rthread t_rt __attribute__((tls_model("initial-exec")));

static void key_exit(void *unused)
{
    (void)unused;
    mp_reclaim_thread_exit();
}

/* At load, not lazily under pthread_once: a fork while another thread ran
 * the once-routine would leave the child's once-control in progress for
 * ever (its first read-side section would hang). */
__attribute__((constructor)) static void global_init(void)
{
    ck_epoch_init(&g_epoch);
    if (pthread_key_create(&g_exit_key, key_exit) != 0)
        fprintf(stderr, "magpool: reclaim: thread-exit key unavailable at %p\n", (void *)&g_epoch);
}

__attribute__((noinline, cold)) static ck_epoch_record_t *record_slow(void)
{
    ck_epoch_record_t *rec = ck_epoch_recycle(&g_epoch, NULL);
    if (rec != NULL) {
        mp_tsan_acquire(rec);  /* pairs with the release before unregister (R10) */
    } else {
        rec = mp_meta_alloc_lasting_critical(sizeof *rec); /* zeroed, 64-byte aligned; never freed (recycled) */
        if (rec == NULL) {
            /* Cannot even enter a section safely: nothing sane to return. */
            fprintf(stderr, "magpool: reclaim: out of memory for epoch record at %p\n",
                    (void *)&g_epoch);
            abort();
        }
        ck_epoch_register(&g_epoch, rec, NULL);
    }
    t_rt.rec = rec;
    (void)pthread_setspecific(g_exit_key, rec);
    return rec;
}

static inline ck_epoch_record_t *record(void)
{
    ck_epoch_record_t *rec = t_rt.rec;
    return rec != NULL ? rec : record_slow();
}

static inline magpool_domain_t *dom_or_default(magpool_domain_t *d)
{
    return d != NULL ? d : &g_default;
}

magpool_domain_t *mp_domain_default(void)
{
    return &g_default;
}

/* ---- read side ----------------------------------------------------------- */

void mp_domain_enter(magpool_domain_t *d)
{
    d = dom_or_default(d);
    if (d->kind == DOM_URCU) {
        d->flavor->read_lock();
        return;
    }
    ck_epoch_record_t *rec = record();
    if (t_rt.nest++ == 0)
        ck_epoch_begin(rec, NULL);
}

void mp_domain_leave(magpool_domain_t *d)
{
    d = dom_or_default(d);
    if (d->kind == DOM_URCU) {
        mp_tsan_release(d); /* R10: this section's reads before the callback */
        d->flavor->read_unlock();
        return;
    }
    if (t_rt.nest == 0) {
        fprintf(stderr, "magpool: reclaim: read_leave without read_enter at %p\n", (void *)d);
        return;
    }
    if (--t_rt.nest == 0) {
        mp_tsan_release(d); /* R10: just before the end, never after */
        ck_epoch_end(t_rt.rec, NULL);
    }
}

/* ---- write side, ck domain ----------------------------------------------- */

static inline bool ripe(unsigned g, unsigned epoch)
{
    return (int)(g - epoch) >= 2; /* R3 */
}

/* The global epoch G, as a seq_cst load (R2: the stamp must not be read
 * before a retirer's unlink in the total order S).  It pairs, in S, with the
 * seq_cst CAS of mp_retire's push and the seq_cst exchange of
 * absorb_incoming.  Weakened to acquire, the load could be satisfied before
 * the exchange in absorb_incoming (C11 allows it), the stamp could be older
 * than the unlinks it must follow, and a node could be freed a grace period
 * early, under a reader that still holds it.  ck_epoch_value is a
 * plain ck_pr load; G is an unsigned int that ck only changes by CAS, so a
 * C11 seq_cst load of the same word is what R2 needs (a plain mov on x86). */
static inline unsigned epoch_now(void)
{
    return mp_load_seqcst_uint(&g_epoch.epoch);
}

/* Under d->lock: move incoming to limbo, stamped with the epoch read after
 * the exchange (R2, R5). */
static void absorb_incoming(magpool_domain_t *d)
{
    /* SEQ_CST exchange: acquire pairs with the CAS of every push, so the
     * nodes' fields (fn, next) are visible; sequentially consistent because
     * R2 orders the retirers' unlinks before the stamp's load of G through
     * it.  Weakened to acq_rel, R2 holds on x86 only (the same instruction
     * there); to relaxed, node fields may be stale. */
    struct mp_retire_node *n = mp_xchg_seqcst(&d->incoming, NULL);
    if (n == NULL)
        return;
    unsigned g = epoch_now();
    /* incoming is LIFO; reverse so limbo keeps retire order (not required
     * for safety: the batch shares one stamp). */
    struct mp_retire_node *rev = NULL, *first = n;
    while (n != NULL) {
        struct mp_retire_node *next = n->next;
        n->epoch = g;
        n->next = rev;
        rev = n;
        n = next;
    }
    first->next = NULL;
    if (d->limbo_tail != NULL)
        d->limbo_tail->next = rev;
    else
        d->limbo_head = rev;
    d->limbo_tail = first;
}

/* Under d->lock: run the limbo prefix that is ripe at g (all of it if all). */
static void run_limbo(magpool_domain_t *d, unsigned g, bool all)
{
    struct mp_retire_node *n = d->limbo_head;
    uint64_t ran = 0;
    while (n != NULL && (all || ripe(g, n->epoch))) {
        struct mp_retire_node *next = n->next;
        mp_tsan_acquire(d); /* R10: every reader's section before this callback */
        n->fn(n);
        ran++;
        n = next;
    }
    d->limbo_head = n;
    if (n == NULL)
        d->limbo_tail = NULL;
    if (ran)
        mp_fetch_sub_relaxed(&d->pending, ran);
}

__attribute__((noinline)) static void dom_ck_poll(magpool_domain_t *d)
{
    ck_epoch_record_t *rec = record();
    if (pthread_mutex_trylock(&d->lock) != 0)
        return; /* someone else is polling: non-blocking */
    absorb_incoming(d);
    unsigned g = epoch_now();
    bool all = false;
    if (d->limbo_tail != NULL && !ripe(g, d->limbo_tail->epoch) && t_rt.nest == 0) {
        bool ok = ck_epoch_poll(rec);
        unsigned g2 = epoch_now();
        all = ok && g2 == g; /* R4 */
        g = g2;
    }
    run_limbo(d, g, all);
    pthread_mutex_unlock(&d->lock);
}

/* R7: a synchronize of d inside one of the calling thread's read-side
 * sections of d.  One line, then abort, or (MAGPOOL_DEBUG=continue) the
 * caller returns without a grace period: it cannot wait for itself. */
static __attribute__((noinline, cold)) void sync_in_section(magpool_domain_t *d)
{
    bool cont = mp_continues(0);
    mp_report("reclaim", d, "synchronize inside a read-side section",
              cont ? "(it would wait for itself; returning without a grace period)"
                   : "(it would wait for itself)",
              cont);
}

static void dom_ck_synchronize(magpool_domain_t *d)
{
    ck_epoch_record_t *rec = record();
    if (t_rt.nest != 0) { /* R7 */
        sync_in_section(d);
        return;
    }
    pthread_mutex_lock(&d->lock);
    absorb_incoming(d);
    if (d->limbo_head != NULL)
        ck_epoch_synchronize(rec); /* R6 */
    run_limbo(d, 0, true);
    pthread_mutex_unlock(&d->lock);
    t_rt.retired = 0;
}

/* ---- write side, urcu domain --------------------------------------------- */

static void urcu_trampoline(struct rcu_head *head)
{
    struct mp_retire_node *n = (struct mp_retire_node *)(void *)
        ((char *)head - offsetof(struct mp_retire_node, impl));
    mp_tsan_acquire(n);                 /* the retirer's writes to n (R10) */
    magpool_domain_t *d = n->domain;
    mp_tsan_acquire(d);                 /* readers' sections (R10) */
    n->fn(n);                           /* may free n: not touched after */
    mp_fetch_sub_relaxed(&d->pending, 1);
    mp_tsan_release(&d->cb_done);       /* to mp_domain_synchronize's waiter */
}

/* ---- dispatch ------------------------------------------------------------ */

void mp_retire(magpool_domain_t *d, struct mp_retire_node *node, void (*fn)(struct mp_retire_node *))
{
    d = dom_or_default(d);
    node->fn = fn;
    mp_fetch_add_relaxed(&d->pending, 1);
    if (d->kind == DOM_URCU) {
        node->domain = d;
        mp_tsan_release(node);
        d->flavor->update_call_rcu((struct rcu_head *)(void *)node->impl, urcu_trampoline);
        return;
    }
    (void)record();  /* registers the thread-exit hook (R8) */
    t_rt.retired++;
    struct mp_retire_node *h = mp_load_relaxed(&d->incoming);
    do {
        node->next = h;
        /* SEQ_CST on success: its release half publishes node->next/fn to
         * the exchange in absorb_incoming; sequentially consistent because
         * it is the retirer's fence between its unlink and the stamp (R2).
         * Weakened to release: R2 holds on x86 only (a locked cmpxchg
         * either way); to relaxed, the poller may follow a stale next or
         * call a stale fn.  Failure reloads h, which is not dereferenced:
         * relaxed. */
    } while (!mp_cas_weak_seqcst_relaxed(&d->incoming, &h, node));
}

bool mp_domain_in_section(magpool_domain_t *d)
{
    d = dom_or_default(d);
    if (d->kind == DOM_URCU) /* a flavour that cannot tell: assume inside */
        return d->flavor->read_ongoing == NULL || d->flavor->read_ongoing();
    return t_rt.nest != 0;
}

void mp_domain_poll(magpool_domain_t *d)
{
    d = dom_or_default(d);
    if (d->kind == DOM_URCU)
        return; /* liburcu's call_rcu thread runs the callbacks */
    if (mp_load_relaxed(&d->pending) == 0)
        return;
    dom_ck_poll(d);
}

void mp_domain_synchronize(magpool_domain_t *d)
{
    d = dom_or_default(d);
    if (d->kind == DOM_URCU) {
        if (d->flavor->read_ongoing != NULL && d->flavor->read_ongoing()) { /* R7 */
            sync_in_section(d);
            return;
        }
        d->flavor->update_synchronize_rcu();
        mp_tsan_ignore_begin();
        d->flavor->barrier();           /* every queued callback has run */
        mp_tsan_ignore_end();
        mp_tsan_acquire(&d->cb_done);   /* R10 */
        return;
    }
    dom_ck_synchronize(d);
}

uint64_t mp_domain_pending(magpool_domain_t *d)
{
    return mp_load_relaxed(&dom_or_default(d)->pending);
}

void mp_reclaim_thread_exit(void)
{
    if (t_rt.rec == NULL && t_rt.retired == 0)
        return;
    /* A record may be made here again when a later thread-exit hook (the
     * core's flush) retired after ours ran; the key then re-runs us. */
    ck_epoch_record_t *rec = record();
    if (t_rt.nest != 0) {
        fprintf(stderr, "magpool: reclaim: thread exit inside a read-side section at %p\n",
                (void *)&g_default);
        t_rt.nest = 0;
        mp_tsan_release(&g_default);
        ck_epoch_end(rec, NULL);
    }
    if (t_rt.retired != 0)
        dom_ck_synchronize(&g_default); /* R8 */
    else
        mp_domain_poll(&g_default);
    mp_tsan_release(rec); /* to the thread that recycles it (R10) */
    ck_epoch_unregister(rec);
    t_rt.rec = NULL;
    t_rt.retired = 0;
    (void)pthread_setspecific(g_exit_key, NULL);
}

/* ---- public -------------------------------------------------------------- */

#define URCU_DOMAINS_MAX 16
static struct {
    pthread_mutex_t lock;
    unsigned n;
    struct magpool_domain *dom[URCU_DOMAINS_MAX];
} g_urcu = { .lock = PTHREAD_MUTEX_INITIALIZER };

MAGPOOL_API magpool_domain_t *magpool_domain_default(void)
{
    return &g_default;
}

MAGPOOL_API magpool_domain_t *magpool_domain_urcu(const struct rcu_flavor_struct *flavor)
{
    if (flavor == NULL || flavor->read_lock == NULL || flavor->read_unlock == NULL ||
        flavor->update_call_rcu == NULL || flavor->update_synchronize_rcu == NULL ||
        flavor->barrier == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct magpool_domain *d = NULL;
    pthread_mutex_lock(&g_urcu.lock);
    for (unsigned i = 0; i < g_urcu.n; i++)
        if (g_urcu.dom[i]->flavor == flavor)
            d = g_urcu.dom[i];
    if (d == NULL && g_urcu.n < URCU_DOMAINS_MAX) {
        d = mp_meta_alloc(sizeof *d); /* never freed: one per flavour */
        if (d != NULL) {
            d->kind = DOM_URCU;
            d->flavor = flavor;
            atomic_init(&d->pending, 0);
            g_urcu.dom[g_urcu.n++] = d;
        }
    } else if (d == NULL) {
        fprintf(stderr, "magpool: reclaim: too many urcu domains at %p\n", (const void *)flavor);
    }
    pthread_mutex_unlock(&g_urcu.lock);
    if (d == NULL)
        errno = ENOMEM;
    return d;
}

MAGPOOL_API void magpool_read_enter(magpool_domain_t *d)
{
    mp_domain_enter(d);
}

MAGPOOL_API void magpool_read_leave(magpool_domain_t *d)
{
    mp_domain_leave(d);
}

/* ---- fork (fork.c) ---------------------------------------------------------- */

/* The default domain's lock first (fork.c's order), then the urcu domain
 * list's (a leaf). */
void mp_reclaim_fork_lock(void)
{
    pthread_mutex_lock(&g_default.lock);
    pthread_mutex_lock(&g_urcu.lock);
}

void mp_reclaim_fork_unlock(void)
{
    pthread_mutex_unlock(&g_urcu.lock);
    pthread_mutex_unlock(&g_default.lock);
}

/* ck_epoch keeps a record's state in a private enum (ck_epoch.c): USED = 0,
 * FREE = 1. */
#define MP_CK_RECORD_USED 0u
CK_STACK_CONTAINER(struct ck_epoch_record, record_next, mp_record_of)

/* In the child only this thread exists, but the epoch records of the
 * parent's other threads are still registered, some perhaps inside a
 * read-side section (active): ck_epoch_synchronize would wait for them for
 * ever.  Those threads will never read again, so their records are
 * unregistered (free to recycle); the domain's own limbo list is intact, so
 * deferred frees retired before the fork are reclaimed by the child's next
 * grace period.  (Records carry no ck_epoch_call callbacks, R4, so
 * unregistering drops nothing.)  liburcu domains follow liburcu's own fork
 * rules, which the application owns. */
void mp_reclaim_fork_child(void)
{
    mp_reclaim_fork_unlock();
    ck_stack_entry_t *e;
    CK_STACK_FOREACH(&g_epoch.records, e) {
        ck_epoch_record_t *rec = mp_record_of(e);
        if (rec != t_rt.rec && ck_pr_load_uint(&rec->state) == MP_CK_RECORD_USED)
            ck_epoch_unregister(rec);
    }
}
