/*
 * Statistics (design: top of src/core/cache.c, "Observability").
 *
 * GUARANTEES
 *  - No shared counter is written on a fast path: each thread counts its
 *    allocs/frees in its own tcache line (single writer, relaxed), and the
 *    rounds of its magazines are read from the same line.  A snapshot sums,
 *    under mp_threads_lock, every live thread's line for the cache plus the
 *    totals folded in by threads that stopped holding it.
 *  - At quiescence the snapshot is exact and satisfies (I1):
 *      in_slabs + in_magazines + in_depot + deferred + in_use == constructed.
 *    While threads run it is a consistent-enough estimate (each term is read
 *    once, relaxed), never a crash.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cache_impl.h"

MAGPOOL_API int magpool_cache_stats(magpool_cache_t *c, struct magpool_stats *st)
{
    if (c == NULL || st == NULL) {
        errno = EINVAL;
        return -1;
    }
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
    st->deferred = s.deferred + mp_load_relaxed(&c->c_deferred_sealed);

    struct mp_depot *d = &c->c_depot;
    st->in_depot = mp_load_relaxed(&d->rounds_full) + mp_load_relaxed(&d->bl_rounds);
    st->depot_allocs = mp_load_relaxed(&d->pops_full);
    st->depot_frees = mp_load_relaxed(&d->pushes_full);
    st->depot_contention = mp_load_relaxed(&d->contention);
    st->backlog_mags = mp_load_relaxed(&d->bl_mags);
    st->backlog_slots = d->bl_slots;
    st->depot_full_mags = mp_load_relaxed(&d->nfull) + st->backlog_mags;
    st->depot_empty_mags = mp_load_relaxed(&d->nempty);

    struct mp_slab_stats ss;
    mp_slab_stats(c->c_slab, &ss);
    st->constructed = ss.constructed;
    st->in_slabs = ss.free_in_slabs;
    st->slabs = ss.slabs;
    st->slabs_empty = ss.slabs_empty;
    st->pages = ss.pages;
    st->bytes = ss.pages * 4096u;
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
    return 0;
}
