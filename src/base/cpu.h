/*
 * Base layer: the CPU features the library picks kernels by, read once at
 * load.  The library is built for baseline x86-64 (Debian's target); the
 * bulk runs have 256-bit kernels (magazine.c's copies, slab.c's ownership
 * check) compiled with target("avx2") and used only when the CPU has AVX2,
 * and the long free runs' copy-and-check kernels have a second 256-bit form
 * with AVX-512's mask registers (AVX-512F and VL, still 256-bit vectors:
 * no frequency penalty), used when the CPU has those too.
 * MAGPOOL_BULK_KERNELS=baseline or avx2 caps the choice (for comparisons).
 * Guarantees: the flags are set by a load-time constructor, before any
 * cache exists, and never change afterwards (white-box tests clear them to
 * run the other kernels and restore them); mp_bulk_masked implies
 * mp_bulk_wide.  Plain bools: written before any thread of the library
 * runs.
 */
#ifndef MP_CPU_H
#define MP_CPU_H
#include <stdbool.h>

/* The compilers that take target("avx2") on one function of a baseline
 * build and give it the AVX2 intrinsics (clang; gcc 12). */
#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 12)
#define MP_HAVE_AVX2 1
#define MP_HAVE_AVX512 1 /* (the same compilers: AVX-512F/VL intrinsics too) */
#endif

/* True when MP_HAVE_AVX2 and this CPU has AVX2: the bulk runs' wide kernels
 * are used. */
extern bool mp_bulk_wide;
/* True when MP_HAVE_AVX512, mp_bulk_wide and this CPU has AVX-512F and VL:
 * the long free runs use the masked kernels. */
extern bool mp_bulk_masked;
#endif
