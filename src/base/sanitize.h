/*
 * Sanitizer and Valgrind hooks, decided at run time (owner: src/base/sanitize.c).
 *
 * CONTRACT.  The library is usually NOT built with a sanitizer: it is the
 * system library an application links through pkg-config, and the
 * application is the one built with -fsanitize=address or =thread.  So the
 * library finds out at run time: an instrumented executable exports the
 * sanitizer interface, and sanitize.c references it through weak symbols
 * (NULL when the runtime is absent).  mp_san_detect() reads them once;
 * after that, mp_san_mode says which runtimes are in the process.
 *
 *  - ASan: objects resting in magazines, depot or slabs are poisoned, so a
 *    use after free or an overflow into a free neighbour is reported; the
 *    report is followed by one line naming the pool the address belongs to.
 *  - LSan: the arena and the library's metadata mappings are root regions,
 *    so what an object in a pool points to is never a "leak", and memory the
 *    library holds at exit is not reported either.
 *  - TSan: every hand-off the uninstrumented library makes is announced:
 *    __tsan_release(obj) when an object is freed, __tsan_acquire(obj) when
 *    it is handed out again, and the grace periods as release/acquire on the
 *    domain (reclaim.c, R10).
 *  - Valgrind memcheck: mempool client requests (debug.c).
 *
 * The hot paths pay nothing: a cache created while ASan, or TSan with an
 * uninstrumented library, is in the process is a CHECKED cache (c_checked):
 * its fast id is 0, so every alloc and free misses the inline hit (the
 * library's and magpool.h's alike) and takes the slow path, which calls the
 * hooks below.  The hooks themselves test mp_san_mode, one predictable
 * branch on a slow path.
 */
#ifndef MP_SANITIZE_H
#define MP_SANITIZE_H
#include <stdbool.h>
#include <stddef.h>

#include "atomics.h"

/* Whether this translation unit is compiled with a sanitizer (Bazel's
 * --config=asan / tsan; tests use these to pick their proofs).  Only
 * MP_TSAN changes the library's behaviour: an instrumented library's own
 * atomics are visible to TSan, so its caches need no routing. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define MP_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MP_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define MP_TSAN 1
#endif

enum {
    MP_SAN_ASAN = 1u << 0,  /* AddressSanitizer: poison resting objects */
    MP_SAN_LSAN = 1u << 1,  /* LeakSanitizer: register root regions */
    MP_SAN_TSAN = 1u << 2,  /* ThreadSanitizer: announce hand-offs */
    MP_SAN_ROUTE = 1u << 3, /* caches must take the checked path */
    MP_SAN_DONE = 1u << 7,  /* detection ran */
};
/* Written once by mp_san_detect (idempotent: every thread computes the same
 * value from the same weak symbols), read with relaxed loads. */
extern _Atomic unsigned mp_san_mode;

/* Detect the runtimes; returns mp_san_mode.  Called by every layer's init
 * (page arena, cache creation) before it needs the answer. */
unsigned mp_san_detect(void);

static inline unsigned mp_san(void)
{
    unsigned m = mp_load_relaxed(&mp_san_mode);
    return __builtin_expect(m & MP_SAN_DONE, 1) ? m : mp_san_detect();
}

/* Whether a runtime (MP_SAN_*) is in the process; detection must have run
 * (true once any cache or the arena exists). */
static inline bool mp_san_on(unsigned bit)
{
    return __builtin_expect((mp_load_relaxed(&mp_san_mode) & bit) != 0, 0);
}

/* Out of line: only reached when the runtime is there. */
void mp_san_poison_(const volatile void *p, size_t n);
void mp_san_unpoison_(const volatile void *p, size_t n);
void mp_san_acquire_(const volatile void *p);
void mp_san_release_(const volatile void *p);
void mp_san_ignore_begin_(void);
void mp_san_ignore_end_(void);

/* ASan: [p, p + n) is unusable (poison) / usable (unpoison). */
static inline void mp_asan_poison(const volatile void *p, size_t n)
{
    if (mp_san_on(MP_SAN_ASAN))
        mp_san_poison_(p, n);
}
static inline void mp_asan_unpoison(const volatile void *p, size_t n)
{
    if (mp_san_on(MP_SAN_ASAN))
        mp_san_unpoison_(p, n);
}
/* TSan: a happens-before edge from every release on p to later acquires. */
static inline void mp_tsan_acquire(const volatile void *p)
{
    if (mp_san_on(MP_SAN_TSAN))
        mp_san_acquire_(p);
}
static inline void mp_tsan_release(const volatile void *p)
{
    if (mp_san_on(MP_SAN_TSAN))
        mp_san_release_(p);
}
/* TSan: ignore this thread's plain accesses between begin and end. */
static inline void mp_tsan_ignore_begin(void)
{
    if (mp_san_on(MP_SAN_TSAN))
        mp_san_ignore_begin_();
}
static inline void mp_tsan_ignore_end(void)
{
    if (mp_san_on(MP_SAN_TSAN))
        mp_san_ignore_end_();
}

/* LSan: [p, p + n) holds pointers to live memory; scan it (only its
 * readable parts: LSan intersects a root region with the process's
 * mappings, so a PROT_NONE reservation costs nothing).  No-ops without LSan. */
void mp_lsan_root(const void *p, size_t n);
void mp_lsan_unroot(const void *p, size_t n);

/* ASan: after a report, say which pool the address belongs to.  The core
 * registers the function that describes an address (one line on stderr, or
 * nothing if the address is not the library's). */
void mp_san_set_describer(void (*describe)(const void *addr));
#endif
