/*
 * Run-time detection of the sanitizer runtimes (contract: sanitize.h).
 *
 * An executable built with -fsanitize=address, =leak or =thread carries the
 * runtime and exports its interface (__asan_*, __lsan_*, __tsan_*,
 * __sanitizer_*) to the shared libraries it loads; a static archive linked
 * into it resolves them at link time.  Here they are weak references: each is
 * NULL when no runtime defines it, so the same libmagpool.so and libmagpool.a
 * serve plain and instrumented applications alike.
 */
#include "sanitize.h"

#include <stdint.h>
#include <stdio.h>

/* The runtimes' interface (compiler-rt's sanitizer/{asan,lsan,tsan,common}
 * _interface.h), declared weak. */
extern void __asan_poison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));
extern void __asan_unpoison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));
extern int __asan_report_present(void) __attribute__((weak));
extern void *__asan_get_report_address(void) __attribute__((weak));
extern void __lsan_register_root_region(const void *p, size_t size) __attribute__((weak));
extern void __lsan_unregister_root_region(const void *p, size_t size) __attribute__((weak));
extern void __tsan_acquire(void *addr) __attribute__((weak));
extern void __tsan_release(void *addr) __attribute__((weak));
extern void __tsan_ignore_thread_begin(void) __attribute__((weak));
extern void __tsan_ignore_thread_end(void) __attribute__((weak));
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

_Atomic unsigned mp_san_mode;

/* Set once by mp_san_set_describer (release), read by the death callback
 * (acquire). */
static void (*_Atomic describer)(const void *addr);

/* ASan's death callback: runs after the report is printed, before the
 * process exits.  If the report is about an address of ours, name its pool. */
static void death_callback(void)
{
    /* ACQUIRE: pairs with the release store in mp_san_set_describer, so the
     * describer's globals (the registry it walks) are visible before we call
     * it; relaxed could call it on a registry whose set-up we do not see. */
    void (*d)(const void *) = mp_load_acquire(&describer);
    if (d != NULL && __asan_report_present != NULL && __asan_get_report_address != NULL &&
        __asan_report_present())
        d(__asan_get_report_address());
}

unsigned mp_san_detect(void)
{
    unsigned m = MP_SAN_DONE;
    if (__asan_poison_memory_region != NULL && __asan_unpoison_memory_region != NULL)
        m |= MP_SAN_ASAN | MP_SAN_ROUTE; /* poisoning needs a hook on every alloc/free */
    if (__lsan_register_root_region != NULL && __lsan_unregister_root_region != NULL)
        m |= MP_SAN_LSAN;
    if (__tsan_acquire != NULL && __tsan_release != NULL) {
        m |= MP_SAN_TSAN;
#ifndef MP_TSAN
        /* The library's own atomics are invisible to TSan: every hand-off of
         * an object must be announced, so caches take the checked path. */
        m |= MP_SAN_ROUTE;
#endif
    }
    /* Every thread computes the same m; the first store wins nothing. */
    unsigned old = 0;
    if (mp_cas_strong_relaxed(&mp_san_mode, &old, m) &&
        (m & MP_SAN_ASAN) && __sanitizer_set_death_callback != NULL)
        __sanitizer_set_death_callback(death_callback);
    return m;
}

/* Detect before main: a constructor of the library (or of the application's
 * copy of the archive), so mp_san_mode is set before any thread runs.  The
 * layers that can run earlier (another constructor creating a cache) call
 * mp_san_detect themselves. */
__attribute__((constructor)) static void detect_at_load(void)
{
    (void)mp_san_detect();
}

void mp_san_poison_(const volatile void *p, size_t n)
{
    __asan_poison_memory_region(p, n);
}

void mp_san_unpoison_(const volatile void *p, size_t n)
{
    __asan_unpoison_memory_region(p, n);
}

void mp_san_acquire_(const volatile void *p)
{
    __tsan_acquire((void *)(uintptr_t)p);
}

void mp_san_release_(const volatile void *p)
{
    __tsan_release((void *)(uintptr_t)p);
}

void mp_san_ignore_begin_(void)
{
    if (__tsan_ignore_thread_begin != NULL)
        __tsan_ignore_thread_begin();
}

void mp_san_ignore_end_(void)
{
    if (__tsan_ignore_thread_end != NULL)
        __tsan_ignore_thread_end();
}

void mp_lsan_root(const void *p, size_t n)
{
    if (mp_san() & MP_SAN_LSAN)
        __lsan_register_root_region(p, n);
}

void mp_lsan_unroot(const void *p, size_t n)
{
    if (mp_san() & MP_SAN_LSAN)
        __lsan_unregister_root_region(p, n);
}

void mp_san_set_describer(void (*describe)(const void *addr))
{
    /* RELEASE: orders the describer's own globals (set up by the caller)
     * before its address; pairs with the acquire load in death_callback.
     * Relaxed could let the callback run the function on state it does not
     * see yet. */
    mp_store_release(&describer, describe);
}
