/*
 * Statistics (design: top of src/core/cache.c, "Observability").
 *
 * GUARANTEES
 *  - No shared counter is written on a fast path: each thread counts its
 *    allocs/frees in its own tcache line (single writer, relaxed), and the
 *    rounds of its magazines are read from the same line.  A snapshot sums,
 *    under mp_threads_lock, every live thread's line for the cache plus the
 *    totals folded in by threads that stopped holding it.
 *  - At quiescence (no application thread using the cache) the snapshot is
 *    exact and satisfies (I1):
 *      in_slabs + in_magazines + in_depot + deferred + in_use == constructed,
 *    also while the library's own reaper thread or a domain's callbacks move
 *    objects: those moves are bracketed (cache_impl.h, mp_moves_begin) and a
 *    reading that overlapped one is taken again (at most MP_MOVES_READINGS
 *    times, about a second).  While threads run it is a consistent-enough
 *    estimate (each term is read once, relaxed), never a crash.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cache_impl.h"

/* One reading of every term (each read once, relaxed). */
static void mp_stats_read(struct magpool_cache *c, struct magpool_stats *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", c->c_name);
    st->object_size = c->c_size;
    st->stride = mp_slab_stride(c->c_slab);
    st->align = mp_slab_align(c->c_slab);

    struct mp_thread_sums s;
    pthread_mutex_lock(&mp_threads_lock);
    mp_thread_sums(c, &s);
    st->allocs = s.allocs + mp_load_relaxed(&c->c_allocs);
    st->frees = s.frees + mp_load_relaxed(&c->c_frees);
    pthread_mutex_unlock(&mp_threads_lock);
    st->in_use = st->allocs - st->frees;
    st->in_magazines = s.in_mags;
    st->threads_idle_bytes = s.in_mags_idle * mp_slab_stride(c->c_slab);
    st->deferred = s.deferred + mp_load_relaxed(&c->c_deferred_sealed);

    struct mp_depot *d = &c->c_depot;
    struct mp_depot_counts dc;
    mp_depot_counts(d, &dc);
    st->in_depot = dc.rounds_full + mp_load_relaxed(&d->bl_rounds);
    st->depot_allocs = dc.pops_full;
    st->depot_frees = mp_load_relaxed(&d->pushes_full);
    st->depot_contention = mp_load_relaxed(&d->contention);
    st->backlog_mags = mp_load_relaxed(&d->bl_mags);
    st->backlog_slots = d->bl_slots;
    st->depot_full_mags = dc.nfull + st->backlog_mags;
    st->depot_empty_mags = dc.nempty;

    struct mp_slab_stats ss;
    mp_slab_stats(c->c_slab, &ss);
    st->constructed = ss.constructed;
    st->in_slabs = ss.free_in_slabs;
    st->slabs = ss.slabs;
    st->slabs_empty = ss.slabs_empty;
    st->pages = ss.pages;
    st->bytes = ss.pages * MP_PAGE_SIZE;
    st->slab_allocs = ss.slab_allocs;

    st->mag_size = mp_load_relaxed(&c->c_mag_size);
    st->mag_resizes = mp_load_relaxed(&c->c_mag_resizes);
    st->reaps = mp_load_relaxed(&c->c_reaps);
    st->alloc_failures = mp_load_relaxed(&c->c_alloc_failures);
    st->max_objects = c->c_max_objects;
    st->threads_bytes = st->in_magazines * st->stride;
    st->depot_bytes = st->in_depot * st->stride;
    st->slabs_free_bytes = st->in_slabs * st->stride;
    st->idle_reclaims = mp_load_relaxed(&c->c_idle_reclaims);
    st->idle_busy = mp_load_relaxed(&c->c_idle_busy);
    st->idle_asked = mp_load_relaxed(&c->c_idle_asked);
}

MAGPOOL_API int magpool_cache_stats(magpool_cache_t *c, struct magpool_stats *st)
{
    if (c == NULL || st == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* Read again while a background move (cache_impl.h, mp_moves_begin)
     * was in flight or began meanwhile: the reaper's pass over a cache takes
     * microseconds to a few milliseconds, so at quiescence a reading comes
     * out whole within the bound; while application threads run, their own
     * moves are not waited for and the reading is an estimate anyway. */
    struct mp_moves_reading r = { 0 };
    do {
        mp_moves_settle(c, &r);
        mp_stats_read(c, st);
    } while (!mp_moves_whole(c, &r));
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Every numeric field of struct magpool_stats, once: the dump writes them
 * in this order under their own names. */
#define MP_STATS_FIELDS(X)                                                                       \
    X(object_size) X(stride) X(align) X(constructed) X(in_use) X(in_magazines) X(in_depot)       \
    X(in_slabs) X(deferred) X(slabs) X(slabs_empty) X(pages) X(bytes) X(allocs) X(frees)         \
    X(depot_allocs) X(depot_frees) X(depot_contention) X(depot_full_mags) X(depot_empty_mags)    \
    X(slab_allocs) X(mag_size) X(mag_resizes) X(reaps) X(alloc_failures) X(max_objects)          \
    X(backlog_mags) X(backlog_slots) X(threads_bytes) X(threads_idle_bytes) X(depot_bytes)       \
    X(slabs_free_bytes) X(idle_reclaims) X(idle_busy) X(idle_asked)

static void mp_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

struct mp_json_walk {
    FILE *f;
    unsigned n;
};

static int mp_json_cache(magpool_cache_t *c, void *arg)
{
    struct mp_json_walk *w = arg;
    struct magpool_stats st;
    if (magpool_cache_stats(c, &st) != 0)
        return 0;
    fputs(w->n++ ? ",\n  {\"name\": " : "\n  {\"name\": ", w->f);
    mp_json_string(w->f, st.name);
#define X(field) fprintf(w->f, ", \"" #field "\": %" PRIu64, (uint64_t)st.field);
    MP_STATS_FIELDS(X)
#undef X
    fputc('}', w->f);
    return 0;
}

MAGPOOL_API int magpool_stats_dump_json(FILE *f)
{
    if (f == NULL)
        f = stdout;
    struct mp_json_walk w = { .f = f };
    fputs("{\"caches\": [", f);
    magpool_cache_foreach(mp_json_cache, &w);
    fputs(w.n ? "\n]}\n" : "]}\n", f);
    if (fflush(f) != 0 || ferror(f))
        return -1;
    return 0;
}
