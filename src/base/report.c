/*
 * The one diagnostic reporter, and the environment it reads (contract:
 * report.h).  The base layer: every other layer may call it.
 */
#include "magpool/magpool.h" /* before report.h: MP_DEBUG_FLAGS names its flags */
#include "report.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- environment -------------------------------------------------------- */

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static unsigned env_flags;
static bool under_memcheck;

static void env_parse(void)
{
    const char *pre = getenv("LD_PRELOAD");
    under_memcheck = pre != NULL && strstr(pre, "vgpreload_memcheck") != NULL;
    const char *s = getenv("MAGPOOL_DEBUG");
    if (s == NULL)
        return;
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
        else if (n > 0)
            fprintf(stderr, "magpool: MAGPOOL_DEBUG: unknown option '%.*s' ignored\n", (int)n, s);
        s += n;
        if (*s == ',')
            s++;
    }
    env_flags = f;
}

unsigned mp_debug_env_flags(void)
{
    pthread_once(&env_once, env_parse);
    return env_flags;
}

bool mp_under_memcheck(void)
{
    pthread_once(&env_once, env_parse);
    return under_memcheck;
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
