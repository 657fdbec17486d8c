/*
 * The one diagnostic reporter, and the environment it reads (contract:
 * report.h).  The base layer: every other layer may call it.
 */
#include "magpool/magpool.h" /* before report.h: MP_DEBUG_FLAGS names its flags */
#include "report.h"

#include "atomics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- environment -------------------------------------------------------- */

/* The environment is parsed at the first call that needs it (a program may
 * setenv before its first cache), without pthread_once: a fork while another
 * thread ran the once-routine would leave the child's once-control in
 * progress for ever.  Parsing twice is harmless (the same answer); the
 * thread whose compare-and-swap publishes the answer prints the warnings.
 * env_state: 0 = not parsed; else ENV_PARSED | flags | ENV_MEMCHECK. */
#define ENV_PARSED 0x80000000u
#define ENV_MEMCHECK 0x20000000u
_Static_assert(((MP_DEBUG_FLAGS | MP_DEBUG_CHECK | MAGPOOL_DEBUG_CONTINUE) & (ENV_PARSED | ENV_MEMCHECK)) == 0,
               "the state's own bits are free");
static _Atomic unsigned env_state;

/* MAGPOOL_DEBUG's flags; unknown options are reported if `warn`. */
static unsigned env_debug_flags(bool warn)
{
    const char *s = getenv("MAGPOOL_DEBUG");
    if (s == NULL)
        return 0;
    unsigned f = 0;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        if (n == 6 && strncmp(s, "poison", n) == 0)
            f |= MAGPOOL_POISON;
        else if (n == 7 && strncmp(s, "redzone", n) == 0)
            f |= MAGPOOL_RED_ZONE;
        else if (n == 4 && strncmp(s, "user", n) == 0)
            f |= MAGPOOL_STORE_USER;
        else if (n == 6 && strncmp(s, "verify", n) == 0)
            f |= MAGPOOL_VERIFY;
        else if (n == 8 && strncmp(s, "continue", n) == 0)
            f |= MAGPOOL_DEBUG_CONTINUE;
        else if (n == 5 && strncmp(s, "check", n) == 0)
            f |= MP_DEBUG_CHECK;
        else if (n == 3 && strncmp(s, "all", n) == 0)
            f |= MP_DEBUG_FLAGS;
        else if (n > 0 && warn)
            fprintf(stderr, "magpool: MAGPOOL_DEBUG: unknown option '%.*s' ignored\n", (int)n, s);
        s += n;
        if (*s == ',')
            s++;
    }
    return f;
}

static unsigned env_get(void)
{
    /* Relaxed, here and in the CAS: the answer is the word itself; nothing
     * else is published with it. */
    unsigned st = mp_load_relaxed(&env_state);
    if (__builtin_expect(st != 0, 1))
        return st;
    const char *pre = getenv("LD_PRELOAD");
    unsigned mine = ENV_PARSED | env_debug_flags(false) |
                    (pre != NULL && strstr(pre, "vgpreload_memcheck") != NULL ? ENV_MEMCHECK : 0);
    unsigned expected = 0;
    if (mp_cas_strong_relaxed(&env_state, &expected, mine)) { /* the winner warns */
        (void)env_debug_flags(true);
        return mine;
    }
    return expected;
}

unsigned mp_debug_env_flags(void)
{
    return env_get() & ~(ENV_PARSED | ENV_MEMCHECK);
}

bool mp_under_memcheck(void)
{
    return (env_get() & ENV_MEMCHECK) != 0;
}

/* ---- trailer layout -------------------------------------------------------- */

/* ---- reporting ----------------------------------------------------------- */

void mp_report(const char *cache, const void *addr, const char *kind, const char *detail, bool cont)
{
    char line[512];
    int n;
    if (addr != NULL)
        n = snprintf(line, sizeof line, "magpool: %s: %s at %p%s%s\n", cache ? cache : "?", kind,
                     addr, detail ? " " : "", detail ? detail : "");
    else
        n = snprintf(line, sizeof line, "magpool: %s: %s%s%s\n", cache ? cache : "?", kind,
                     detail ? " " : "", detail ? detail : "");
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(2, line, (size_t)n);
    (void)w;
    if (!cont)
        abort();
}

bool mp_continues(unsigned cache_flags)
{
    return ((cache_flags | mp_debug_env_flags()) & MAGPOOL_DEBUG_CONTINUE) != 0;
}
