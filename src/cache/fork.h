/*
 * Fork safety (owner: src/cache/fork.c).  CONTRACT.
 *
 * pthread_atfork handlers are registered when the library is loaded (a
 * constructor; mp_fork_init, called before the first thread state exists,
 * only keeps fork.c in static links).  Before fork they take every lock of
 * the library in its order and every thread's slow-path gate, so no lock is
 * held and no magazine is in transit in another thread at the fork; after
 * it, the parent releases them all; the child releases them and forgets the
 * threads that do not exist in it (their epoch records; their magazines stay
 * with their states, counted but never reused: thread.c).  In the child,
 * allocation, frees, deferred frees, magpool_synchronize, shrink, destroy and
 * thread creation all work.
 */
#ifndef MP_FORK_H
#define MP_FORK_H
void mp_fork_init(void);
#endif
