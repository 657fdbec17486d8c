/* cpu.h: the CPU features, read once at load. */
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

bool mp_bulk_wide;
bool mp_bulk_masked;

#ifdef MP_HAVE_AVX2
__attribute__((constructor)) static void mp_cpu_init(void)
{
    __builtin_cpu_init();
    const char *cap = getenv("MAGPOOL_BULK_KERNELS"); /* baseline | avx2 | (unset: the best the CPU has) */
    bool baseline = cap != NULL && strcmp(cap, "baseline") == 0, avx2 = cap != NULL && strcmp(cap, "avx2") == 0;
    if (cap != NULL && *cap != '\0' && !baseline && !avx2) {
        char kind[80];
        snprintf(kind, sizeof kind, "invalid value '%.32s' ignored", cap);
        mp_report("MAGPOOL_BULK_KERNELS", NULL, kind, "(want baseline or avx2)", true);
    }
    mp_bulk_wide = !baseline && __builtin_cpu_supports("avx2");
    mp_bulk_masked = mp_bulk_wide && !avx2 && __builtin_cpu_supports("avx512f") &&
                     __builtin_cpu_supports("avx512vl");
}
#endif
