/*
 * Sanitizer and Valgrind annotations, compiled to nothing when unused.
 *  - ASan: objects resting in magazines, depot or slabs are poisoned, so a
 *    use after free of a pooled object is reported.
 *  - TSan: grace periods expressed as release/acquire on the domain address.
 *  - Valgrind memcheck: mempool client requests (only when mp_under_memcheck,
 *    detected at start; caches then take the checked slow path).
 */
#ifndef MP_SANITIZE_H
#define MP_SANITIZE_H
#include <stddef.h>

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

#ifdef MP_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define mp_asan_poison(p, n) __asan_poison_memory_region((p), (n))
#define mp_asan_unpoison(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define mp_asan_poison(p, n) ((void)(p), (void)(n))
#define mp_asan_unpoison(p, n) ((void)(p), (void)(n))
#endif

#ifdef MP_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define mp_tsan_acquire(p) __tsan_acquire((void *)(p))
#define mp_tsan_release(p) __tsan_release((void *)(p))
#else
#define mp_tsan_acquire(p) ((void)(p))
#define mp_tsan_release(p) ((void)(p))
#endif
#endif
