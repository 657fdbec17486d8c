/*
 * Base layer: the CPU features the library picks kernels by, read once at
 * load.  The library is built for baseline x86-64 (Debian's target); the
 * bulk runs have 256-bit kernels (magazine.c's copies, slab.c's ownership
 * check) compiled with target("avx2") and used only when the CPU has AVX2.
 * Guarantees: mp_bulk_wide is set by a load-time constructor, before any
 * cache exists, and never changes afterwards (white-box tests clear it to
 * run the baseline kernels and restore it).  A plain bool: written before
 * any thread of the library runs.
 */
#ifndef MP_CPU_H
#define MP_CPU_H
#include <stdbool.h>

/* The compilers that take target("avx2") on one function of a baseline
 * build and give it the AVX2 intrinsics (clang; gcc 12). */
#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 12)
#define MP_HAVE_AVX2 1
#endif

/* True when MP_HAVE_AVX2 and this CPU has AVX2: the bulk runs' wide kernels
 * are used. */
extern bool mp_bulk_wide;
#endif
