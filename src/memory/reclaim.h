/*
 * Reclamation domains (owner: src/memory/reclaim.c).  CONTRACT — see reclaim.c for
 * the proof.
 *
 * A domain is either the Concurrency Kit epoch domain (ck_epoch; one record
 * per thread, registered lazily, recycled at thread exit after a barrier) or
 * a liburcu flavour supplied by the application (call_rcu/synchronize_rcu).
 * mp_retire() hands an embedded node to the domain; its callback runs once
 * after a grace period (every read-side section open at the retire has been
 * left), in some thread that polls or synchronizes, or in liburcu's call_rcu
 * thread.  Grace periods are annotated for ThreadSanitizer:
 * __tsan_release(domain) just before a section's end, __tsan_acquire(domain)
 * at the start of every callback.
 * ck domain: callbacks run with the domain's internal lock held, so a
 * callback may retire and poll but must never synchronize, and nobody may
 * call mp_domain_synchronize while holding a lock that a callback takes.
 * urcu domain: the retiring thread must be registered with the flavour
 * (liburcu's call_rcu takes a read-side lock).
 */
#ifndef MP_RECLAIM_H
#define MP_RECLAIM_H
#include <stdint.h>
#include <stdbool.h>

#include "magpool/magpool.h"

struct mp_retire_node {
    struct mp_retire_node *next;
    void (*fn)(struct mp_retire_node *);
    union {                  /* set by mp_retire's domain, one meaning per kind: */
        unsigned epoch;            /* ck: the global epoch its batch was stamped with (reclaim.c, R2) */
        magpool_domain_t *domain;  /* urcu: its domain, for the call_rcu trampoline */
    };
    void *impl[3];           /* room for ck_epoch_entry_t / struct rcu_head */
};

magpool_domain_t *mp_domain_default(void);
void mp_domain_enter(magpool_domain_t *d);
void mp_domain_leave(magpool_domain_t *d);
/* Run fn(node) after a grace period of d. */
void mp_retire(magpool_domain_t *d, struct mp_retire_node *node, void (*fn)(struct mp_retire_node *));
/* Non-blocking: advance the epoch if possible and run what is ready. */
void mp_domain_poll(magpool_domain_t *d);
/* Blocking: every node retired (by any thread) before the call has run when it returns. */
void mp_domain_synchronize(magpool_domain_t *d);
/* Called by the thread layer when a thread exits: barrier, then release its record. */
void mp_reclaim_thread_exit(void);
/* Nodes retired and not yet run, for statistics. */
uint64_t mp_domain_pending(magpool_domain_t *d);
/* Whether the calling thread is inside a read-side section of d (a liburcu
 * flavour that cannot tell counts as inside). */
bool mp_domain_in_section(magpool_domain_t *d);
/* fork.c: the default domain's lock and the urcu domain list's, held and
 * released around fork; in the child also forget the other threads' epoch
 * records (they do not exist there). */
void mp_reclaim_fork_lock(void);
void mp_reclaim_fork_unlock(void);
void mp_reclaim_fork_child(void);
#endif
