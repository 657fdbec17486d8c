/*
 * Valgrind memcheck proof (run by tests/valgrind_test.sh, not a unit test).
 *
 *   vg_uaf clean   correct use of a mem_pool: memcheck must report nothing.
 *   vg_uaf         reads and writes a mem_pool object after mem_put.
 *
 * Under memcheck the debug layer marks every pooled object with the mempool
 * client requests (the pool's cache is a memcheck mempool; mem_get is
 * VALGRIND_MEMPOOL_ALLOC, mem_put VALGRIND_MEMPOOL_FREE), so the second run
 * must produce, for the write and the read after mem_put:
 *
 *   Invalid write of size 8
 *      at main (vg_uaf.c:52)
 *    Address 0x... is N bytes after a block of size 48 free'd
 *      at vg_free (debug.c) / mp_debug_on_free / mp_free_slow / ...
 *   Invalid read of size 8
 *      at main (vg_uaf.c:53)
 *   ...
 *   ERROR SUMMARY: 2 errors from 2 contexts
 *
 * (memcheck names the nearest block it knows was freed, hence "after a
 * block"; what matters is the Invalid write/read.)  valgrind 3.19 cannot read
 * clang 14's default DWARF 5: build this program with -gdwarf-4 (or gcc).
 *
 * and `valgrind --error-exitcode=99` exits 99.  The program itself exits 0.
 */
#include <stdio.h>
#include <string.h>

#include "magpool/mem_pool.h"

struct conn {
    long fd;
    long state;
    char buf[32];
};

int main(int argc, char **argv)
{
    int clean = argc > 1 && strcmp(argv[1], "clean") == 0;
    struct mem_pool *pool = mem_pool_new(struct conn, 16);
    if (pool == NULL)
        return 1;
    struct conn *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = mem_get0(pool);
        if (c[i] == NULL)
            return 1;
        c[i]->fd = i;
    }
    long sum = 0;
    for (int i = 0; i < 4; i++)
        sum += c[i]->fd;
    for (int i = 0; i < 4; i++)
        mem_put(c[i]);
    if (!clean) {
        volatile struct conn *dead = c[2];
        dead->state = 7;   /* use after mem_put: write */
        sum += dead->fd;   /* and read */
    }
    mem_pool_destroy(pool);
    printf("sum=%ld\n", sum);
    return 0;
}
