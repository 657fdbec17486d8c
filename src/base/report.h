/*
 * The diagnostic reporter (owner: src/base/report.c).  CONTRACT.
 *
 * Misuse that a return value cannot report is ONE line on stderr, written
 * with a single write(2):
 *     magpool: <cache or layer>: <kind> at <address> [detail]
 * then abort(), unless continuing was asked for: by the cache's
 * MAGPOOL_DEBUG_CONTINUE flag or by MAGPOOL_DEBUG=continue in the
 * environment (mp_continues).  The environment (MAGPOOL_DEBUG, and whether
 * Valgrind memcheck is preloaded) is read once.  Every layer may call this;
 * it calls nothing of the library.
 */
#ifndef MP_REPORT_H
#define MP_REPORT_H
#include <stdbool.h>

/* Every debug feature flag; MAGPOOL_DEBUG=all means these. */
#define MP_DEBUG_FLAGS (MAGPOOL_POISON | MAGPOOL_RED_ZONE | MAGPOOL_STORE_USER | MAGPOOL_VERIFY)

/* MAGPOOL_DEBUG=check (internal bit of the environment's flags, never a
 * cache flag): the engine's invariants are validated at slow-path exits
 * (cache/check.c). */
#define MP_DEBUG_CHECK 0x40000000u

/* One diagnostic line; abort() unless cont. */
void mp_report(const char *cache, const void *addr, const char *kind, const char *detail, bool cont);
/* Whether a problem of a cache with these flags (0: no cache) continues. */
bool mp_continues(unsigned cache_flags);
/* Flags from MAGPOOL_DEBUG (parsed once), OR-ed into every cache's flags. */
unsigned mp_debug_env_flags(void);
/* True when running under Valgrind memcheck (its preload library). */
bool mp_under_memcheck(void);
#endif
