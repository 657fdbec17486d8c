/*
 * rss.h — the process's resident set, in bytes (/proc/self/statm), for the
 * benchmark driver (bench.c) and the idle workload (idle.c).  0 if unknown.
 */
#ifndef BENCH_RSS_H
#define BENCH_RSS_H

#include <stdio.h>
#include <unistd.h>

static inline size_t bench_statm_rss(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}
#endif
