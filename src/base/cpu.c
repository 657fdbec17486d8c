/* cpu.h: the CPU features, read once at load. */
#include "cpu.h"

bool mp_bulk_wide;

#ifdef MP_HAVE_AVX2
__attribute__((constructor)) static void mp_cpu_init(void)
{
    __builtin_cpu_init();
    mp_bulk_wide = __builtin_cpu_supports("avx2");
}
#endif
