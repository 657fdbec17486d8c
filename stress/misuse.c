/*
 * stress/misuse.c — the misuse table.
 *
 * Claim under test: every misuse of the three APIs has a defined outcome —
 * a one-line diagnostic `magpool: <cache>: <kind> at <addr>` and abort (or a
 * warning and continuing, where that is the documented outcome), or NULL/-1
 * with errno for bad arguments — never silent corruption or a crash
 * elsewhere.
 *
 * Design.  One case per misuse, run as a death test: the program re-executes
 * itself (`misuse --case NAME`, so environment switches such as
 * MAGPOOL_DEBUG=poison are read fresh at start) in a child whose stderr is
 * captured; the parent checks how the child ended (killed / exited 0) and
 * that stderr holds the expected words (alternatives separated by '|').
 *   double free           core, kmem_cache, mem_put, kfree   "double free"
 *                         (kmalloc large blocks too), deferred frees:
 *                         free_deferred twice, free then free_deferred,
 *                         kmem_cache_free_rcu twice
 *   NULL cache            magpool_free(NULL, obj), kmem_cache_free(NULL,
 *                         obj)                               "NULL cache"
 *   synchronize inside    magpool_synchronize in a read-side section
 *   a read-side section                   "synchronize inside a read-side section"
 *   kmalloc red zone      MAGPOOL_DEBUG=redzone: a write past the size asked
 *                         for, inside the class   "kmalloc red zone overwritten"
 *   bad MAGPOOL_FAULT_PPM "-1": one line, ignored (exit 0)  "invalid value"
 *   foreign pointer       stack and malloc'd addresses       "foreign pointer"
 *   misaligned pointer    obj + 1 through every free call    "misaligned pointer"
 *                         (the core's magpool_free promises these only with
 *                         verification, MAGPOOL_DEBUG=verify; in its default
 *                         mode the case passes whether diagnosed or not)
 *   wrong cache           kmem_cache_free(other, obj) default and with
 *                         SLAB_CONSISTENCY_CHECKS; mem_put of a kmem object;
 *                         magpool_free(other, obj) with MAGPOOL_VERIFY and with
 *                         MAGPOOL_DEBUG=verify                "wrong cache"
 *   use after free, ASan  (ASan builds only) read a freed pooled object
 *                         "heap-use-after-free|use-after-poison"
 *   use after free,       MAGPOOL_DEBUG=poison, MAGPOOL_POISON, SLAB_POISON
 *   poisoning             (ctor-less caches): write after free, the next
 *                         allocation of that object reports "use after free"
 *   red zone overrun      SLAB_RED_ZONE / MAGPOOL_RED_ZONE: write one byte
 *                         past the object, free reports "red zone"
 *   destroy with live     kmem_cache_destroy prints the count and continues;
 *   objects               magpool_cache_destroy returns it; mem_pool_destroy
 *                         is silent; the later frees are safe (exit 0)
 *   invalid arguments     every create/alloc entry point: NULL/0/-1 + EINVAL
 *                         (unknown config flags, names over 63 characters, a
 *                         NULL bulk array on a warm cache), checked
 *                         in-process; SLAB_PANIC dies with its reason
 * Under ASan, damage that ASan sees first (a write into a freed, poisoned
 * object) may be reported by ASan instead: those cases accept either text.
 * --libc runs glibc's own double-free and invalid-pointer checks for
 * comparison.
 */
#include <sys/wait.h>

#include "stress/stress_common.h"

enum outcome { DIES, LIVES, EITHER };

struct mcase {
    const char *name;
    void (*fn)(void);
    const char *env;      /* "NAME=value" or NULL */
    enum outcome outcome;
    const char *needle;   /* alternatives separated by '|'; NULL: none required */
};

static magpool_cache_t *core(const char *name, size_t size, unsigned flags)
{
    struct magpool_config cfg = {.name = name, .size = size, .flags = flags};
    magpool_cache_t *c = magpool_cache_create(&cfg);
    if (!c) {
        perror("magpool_cache_create");
        _exit(90);
    }
    return c;
}

static struct kmem_cache *kmem(const char *name, unsigned size, slab_flags_t flags)
{
    struct kmem_cache *s = kmem_cache_create(name, size, 0, flags, NULL);
    if (!s) {
        perror("kmem_cache_create");
        _exit(91);
    }
    return s;
}

static void *volatile sink;

/* Hide a pointer's origin from the compiler, whose own misuse warnings
 * (gcc's -Wuse-after-free, -Wfree-nonheap-object) would otherwise fire on
 * the deliberate misuse below. */
static void *launder(void *p)
{
    sink = p;
    return sink;
}

/* ---- double free ---- */
static void c_core_double_free(void)
{
    magpool_cache_t *c = core("mis-core", 64, 0);
    void *o = magpool_alloc(c);
    magpool_free(c, o);
    magpool_free(c, o);
}
static void c_kmem_double_free(void)
{
    struct kmem_cache *s = kmem("mis-kmem", 64, 0);
    void *o = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free(s, o);
    kmem_cache_free(s, o);
}
static void c_mem_put_double(void)
{
    struct mem_pool *p = mem_pool_new_fn(48, 8, "mis-pool");
    void *o = mem_get(p);
    mem_put(o);
    mem_put(o);
}
static void c_kfree_double(void)
{
    void *o = kmalloc(100, GFP_KERNEL);
    kfree(o);
    kfree(o);
}
static void c_verify_double_free_later(void)
{
    /* Not in a row: only full verification catches it. */
    magpool_cache_t *c = core("mis-verify", 64, MAGPOOL_VERIFY);
    void *a = magpool_alloc(c), *b = magpool_alloc(c);
    magpool_free(c, a);
    magpool_free(c, b);
    magpool_free(c, a);
}

static void c_kfree_large_double(void)
{
    void *o = kmalloc(40000, GFP_KERNEL);
    kfree(o);
    kfree(o);
}
static void c_deferred_double(void)
{
    magpool_cache_t *c = core("mis-deferred", 64, 0);
    void *o = magpool_alloc(c);
    magpool_free_deferred(c, o);
    magpool_free_deferred(c, o);
}
static void c_free_then_deferred(void)
{
    magpool_cache_t *c = core("mis-deferred", 64, 0);
    void *o = magpool_alloc(c);
    magpool_free(c, o);
    magpool_free_deferred(c, o);
}
static void c_free_rcu_double(void)
{
    struct kmem_cache *s = kmem("mis-rcu", 64, 0);
    void *o = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free_rcu(s, o);
    kmem_cache_free_rcu(s, o);
}

/* ---- NULL cache, synchronize, kmalloc red zone, environment ---- */
static void c_core_null_cache(void)
{
    magpool_free(NULL, magpool_alloc(core("mis-core", 64, 0)));
}
static void c_kmem_null_cache(void)
{
    kmem_cache_free(NULL, kmem_cache_alloc(kmem("mis-kmem", 64, 0), GFP_KERNEL));
}
static void c_sync_in_section(void)
{
    magpool_read_enter(NULL);
    magpool_synchronize(NULL);
}
static void c_kmalloc_redzone(void)
{
    char *p = kmalloc(100, GFP_KERNEL);
    ((volatile char *)p)[100] = 1;
    kfree(p);
}
static void c_fault_ppm_bad(void)
{
    kfree(kmalloc(40000, GFP_KERNEL)); /* fault injection stays off */
}

/* ---- foreign ---- */
static void c_core_foreign_stack(void)
{
    char local[64] = {0};
    magpool_cache_t *c = core("mis-core", 64, 0);
    magpool_free(c, launder(local));
}
static void c_core_foreign_malloc(void)
{
    magpool_cache_t *c = core("mis-core", 64, 0);
    magpool_free(c, launder(calloc(1, 64)));
}
static void c_kmem_foreign_stack(void)
{
    char local[64] = {0};
    kmem_cache_free(kmem("mis-kmem", 64, 0), launder(local));
}
static void c_kfree_foreign_malloc(void)
{
    kfree(launder(calloc(1, 64)));
}
static void c_mem_put_foreign_malloc(void)
{
    mem_put(launder(calloc(1, 64)));
}
static void c_mem_put_foreign_stack(void)
{
    char local[64] = {0};
    mem_put(launder(local));
}

/* ---- misaligned ---- */
static void c_core_misaligned(void)
{
    magpool_cache_t *c = core("mis-core", 64, 0);
    magpool_free(c, (char *)magpool_alloc(c) + 1);
}
static void c_kmem_misaligned(void)
{
    struct kmem_cache *s = kmem("mis-kmem", 64, 0);
    kmem_cache_free(s, (char *)kmem_cache_alloc(s, GFP_KERNEL) + 1);
}
static void c_mem_put_misaligned(void)
{
    mem_put((char *)mem_get(mem_pool_new_fn(48, 8, "mis-pool")) + 1);
}
static void c_kfree_misaligned(void)
{
    kfree((char *)kmalloc(64, GFP_KERNEL) + 1);
}

/* ---- wrong cache ---- */
static void c_kmem_wrong_cache(void)
{
    struct kmem_cache *a = kmem("mis-kmem-a", 64, 0), *b = kmem("mis-kmem-b", 64, 0);
    kmem_cache_free(b, kmem_cache_alloc(a, GFP_KERNEL));
}
static void c_kmem_wrong_cache_checks(void)
{
    struct kmem_cache *a = kmem("mis-kmem-a", 64, SLAB_CONSISTENCY_CHECKS);
    struct kmem_cache *b = kmem("mis-kmem-b", 64, SLAB_CONSISTENCY_CHECKS);
    kmem_cache_free(b, kmem_cache_alloc(a, GFP_KERNEL));
}
static void c_mem_put_kmem_object(void)
{
    mem_put(kmem_cache_alloc(kmem("mis-kmem", 64, 0), GFP_KERNEL));
}
static void c_core_wrong_cache_verify(void)
{
    magpool_cache_t *a = core("mis-core-a", 64, MAGPOOL_VERIFY), *b = core("mis-core-b", 64, MAGPOOL_VERIFY);
    magpool_free(b, magpool_alloc(a));
}
static void c_core_wrong_cache_plain(void)
{
    magpool_cache_t *a = core("mis-core-a", 64, 0), *b = core("mis-core-b", 64, 0);
    magpool_free(b, magpool_alloc(a));
}

/* ---- use after free ---- */
static ST_UNUSED void c_asan_uaf_core(void)
{
    magpool_cache_t *c = core("mis-core", 64, 0);
    volatile char *o = magpool_alloc(c);
    magpool_free(c, (void *)o);
    sink = (void *)(uintptr_t)o[8];
}
static ST_UNUSED void c_asan_uaf_kmem(void)
{
    struct kmem_cache *s = kmem("mis-kmem", 96, 0);
    volatile char *o = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free(s, (void *)o);
    o[0] = 1;
}
static ST_UNUSED void c_asan_uaf_mem_pool(void)
{
    volatile char *o = mem_get(mem_pool_new_fn(48, 8, "mis-pool"));
    mem_put((void *)o);
    sink = (void *)(uintptr_t)o[0];
}
/* Write after free, then allocate until that object comes back. */
static void poison_core(unsigned flags)
{
    magpool_cache_t *c = core("mis-poison", 64, flags);
    char *o = magpool_alloc(c);
    magpool_free(c, o);
    ((volatile char *)o)[5] = 0x11;
    for (int i = 0; i < 10000; i++)
        if (magpool_alloc(c) == o)
            break;
}
static void c_poison_env(void)
{
    poison_core(0);
}
static void c_poison_flag(void)
{
    poison_core(MAGPOOL_POISON);
}
static void c_poison_slab(void)
{
    struct kmem_cache *s = kmem("mis-slab-poison", 80, SLAB_POISON);
    char *o = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free(s, o);
    ((volatile char *)o)[70] = 0x22;
    for (int i = 0; i < 10000; i++)
        if (kmem_cache_alloc(s, GFP_KERNEL) == o)
            break;
}

/* ---- red zone ---- */
static void c_redzone_slab(void)
{
    struct kmem_cache *s = kmem("mis-redzone", 40, SLAB_RED_ZONE);
    char *o = kmem_cache_alloc(s, GFP_KERNEL);
    ((volatile char *)o)[40] = 0x5a;
    kmem_cache_free(s, o);
}
static void c_redzone_core(void)
{
    magpool_cache_t *c = core("mis-redzone", 24, MAGPOOL_RED_ZONE);
    char *o = magpool_alloc(c);
    ((volatile char *)o)[24] = 0x5a;
    magpool_free(c, o);
}

/* ---- destroy with live objects ---- */
static void c_destroy_live_kmem(void)
{
    struct kmem_cache *s = kmem("mis-live-kmem", 64, 0);
    void *o[3];
    for (int i = 0; i < 3; i++)
        o[i] = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_destroy(s);
    kmem_cache_free(s, o[0]);
    kfree(o[1]);
    kfree(o[2]);
}
static void c_destroy_live_core(void)
{
    magpool_cache_t *c = core("mis-live-core", 64, 0);
    void *o[3];
    for (int i = 0; i < 3; i++) {
        o[i] = magpool_alloc(c);
        memset(o[i], 0x33, 64);
    }
    long n = magpool_cache_destroy(c);
    fprintf(stderr, "destroy returned %ld\n", n);
    for (int i = 0; i < 3; i++)
        magpool_free(c, o[i]);
    if (n != 3)
        _exit(7);
}
static void c_destroy_live_mem_pool(void)
{
    struct mem_pool *p = mem_pool_new_fn(32, 4, "mis-live-pool");
    void *a = mem_get(p), *b = mem_get(p);
    mem_pool_destroy(p);
    mem_put(a);
    mem_put(b);
}
static void c_slab_panic(void)
{
    kmem_cache_create("mis-panic", 0, 0, SLAB_PANIC, NULL);
}

/* ---- libc comparison ---- */
static void c_libc_double_free(void)
{
    void *p = malloc(64);
    free(launder(p));
    free(launder(p));
}
static void c_libc_invalid(void)
{
    char *p = malloc(64);
    free(launder(p + 1));
}

#ifdef ST_TSAN
#define LIBC_DIES EITHER
#else
#define LIBC_DIES DIES
#endif
#define UAF_ASAN "heap-use-after-free|use-after-poison"
static const struct mcase cases[] = {
    {"core_double_free", c_core_double_free, NULL, DIES, "double free"},
    {"kmem_double_free", c_kmem_double_free, NULL, DIES, "double free"},
    {"mem_put_double", c_mem_put_double, NULL, DIES, "double free"},
    {"kfree_double", c_kfree_double, NULL, DIES, "double free"},
    {"verify_double_free_later", c_verify_double_free_later, NULL, DIES, "double free"},
    {"env_verify_double_free", c_verify_double_free_later, "MAGPOOL_DEBUG=verify", DIES, "double free"},
    {"kfree_large_double", c_kfree_large_double, NULL, DIES, "kmalloc-large: double free"},
    {"deferred_double", c_deferred_double, NULL, DIES, "double free"},
    {"free_then_deferred", c_free_then_deferred, NULL, DIES, "double free"},
    {"free_rcu_double", c_free_rcu_double, NULL, DIES, "double free"},
    {"core_null_cache", c_core_null_cache, NULL, DIES, "magpool_free: NULL cache"},
    {"kmem_null_cache", c_kmem_null_cache, NULL, DIES, "kmem_cache_free: NULL cache"},
    {"sync_in_section", c_sync_in_section, NULL, DIES, "synchronize inside a read-side section"},
    {"sync_in_section_continue", c_sync_in_section, "MAGPOOL_DEBUG=continue", LIVES,
     "returning without a grace period"},
    {"fault_ppm_bad", c_fault_ppm_bad, "MAGPOOL_FAULT_PPM=-1", LIVES, "MAGPOOL_FAULT_PPM: invalid value '-1' ignored"},
    /* magpool.h promises only the immediate double free in the core's
     * default mode: foreign/misaligned are caught there with verification. */
    {"core_foreign_stack", c_core_foreign_stack, NULL, EITHER, "foreign pointer"},
    {"core_foreign_malloc", c_core_foreign_malloc, NULL, EITHER, "foreign pointer"},
    {"core_foreign_stack_env", c_core_foreign_stack, "MAGPOOL_DEBUG=verify", DIES, "foreign pointer"},
    {"core_foreign_malloc_env", c_core_foreign_malloc, "MAGPOOL_DEBUG=verify", DIES, "foreign pointer"},
    {"kmem_foreign_stack", c_kmem_foreign_stack, NULL, DIES, "foreign pointer"},
    {"kfree_foreign_malloc", c_kfree_foreign_malloc, NULL, DIES, "foreign pointer"},
    {"mem_put_foreign_malloc", c_mem_put_foreign_malloc, NULL, DIES, "foreign pointer"},
    {"mem_put_foreign_stack", c_mem_put_foreign_stack, NULL, DIES, "foreign pointer"},
    {"core_misaligned", c_core_misaligned, NULL, EITHER, "misaligned pointer"},
    {"core_misaligned_env", c_core_misaligned, "MAGPOOL_DEBUG=verify", DIES, "misaligned pointer"},
    {"kmem_misaligned", c_kmem_misaligned, NULL, DIES, "misaligned pointer"},
    {"mem_put_misaligned", c_mem_put_misaligned, NULL, DIES, "misaligned pointer"},
    {"kfree_misaligned", c_kfree_misaligned, NULL, DIES, "misaligned pointer"},
    {"kmem_wrong_cache", c_kmem_wrong_cache, NULL, DIES, "wrong cache"},
    {"kmem_wrong_cache_checks", c_kmem_wrong_cache_checks, NULL, DIES, "wrong cache"},
    {"kmem_wrong_cache_env", c_kmem_wrong_cache, "MAGPOOL_DEBUG=verify", DIES, "wrong cache"},
    {"mem_put_kmem_object", c_mem_put_kmem_object, NULL, DIES, "wrong cache"},
    {"core_wrong_cache_verify", c_core_wrong_cache_verify, NULL, DIES, "wrong cache"},
    {"core_wrong_cache_env", c_core_wrong_cache_plain, "MAGPOOL_DEBUG=verify", DIES, "wrong cache"},
    {"core_wrong_cache_default", c_core_wrong_cache_plain, NULL, EITHER, "wrong cache"},
#ifdef ST_ASAN
    {"asan_uaf_core", c_asan_uaf_core, NULL, DIES, UAF_ASAN},
    {"asan_uaf_kmem", c_asan_uaf_kmem, NULL, DIES, UAF_ASAN},
    {"asan_uaf_mem_pool", c_asan_uaf_mem_pool, NULL, DIES, UAF_ASAN},
#define OR_ASAN "|" UAF_ASAN
#else
#define OR_ASAN ""
#endif
    {"poison_env", c_poison_env, "MAGPOOL_DEBUG=poison", DIES, "use after free" OR_ASAN},
    {"poison_flag", c_poison_flag, NULL, DIES, "use after free" OR_ASAN},
    {"poison_slab", c_poison_slab, NULL, DIES, "use after free" OR_ASAN},
    {"redzone_slab", c_redzone_slab, NULL, DIES, "red zone"},
    {"redzone_core", c_redzone_core, NULL, DIES, "red zone"},
    {"redzone_env", c_redzone_core, "MAGPOOL_DEBUG=redzone", DIES, "red zone"},
    {"kmalloc_redzone_env", c_kmalloc_redzone, "MAGPOOL_DEBUG=redzone", DIES, "kmalloc red zone overwritten" OR_ASAN},
    {"destroy_live_kmem", c_destroy_live_kmem, NULL, LIVES, "still has objects (3)"},
    {"destroy_live_core", c_destroy_live_core, NULL, LIVES, "destroy returned 3"},
    {"destroy_live_mem_pool", c_destroy_live_mem_pool, NULL, LIVES, NULL},
    {"slab_panic", c_slab_panic, NULL, DIES, "kmem_cache_create mis-panic"},
    /* glibc and ASan diagnose these; TSan's allocator does not (EITHER). */
    {"libc_double_free", c_libc_double_free, NULL, LIBC_DIES, "double free|double-free"},
    {"libc_invalid_pointer", c_libc_invalid, NULL, LIBC_DIES, "invalid pointer|not malloc()-ed"},
};
#define NCASES (sizeof cases / sizeof cases[0])

static bool has_any(const char *buf, const char *needles)
{
    if (!needles)
        return true;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", needles);
    for (char *save, *t = strtok_r(tmp, "|", &save); t; t = strtok_r(NULL, "|", &save))
        if (strstr(buf, t))
            return true;
    return false;
}

/* In the child: become this program's case m, with its environment. */
static void exec_case(void *arg)
{
    const struct mcase *m = arg;
    if (m->env)
        putenv((char *)m->env);
    execl("/proc/self/exe", "misuse", "--case", m->name, (char *)NULL);
    _exit(99);
}

/* Run a case in a fresh process; check how it ended and what it said. */
static void run_case(const struct mcase *m)
{
    static char buf[65536];
    int status = check_run_child(exec_case, (void *)m, buf, sizeof buf);
    if (status == -1) {
        CHECK_MSG(0, "could not start case %s: %s", m->name, strerror(errno));
        return;
    }
    bool died = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
    bool found = has_any(buf, m->needle);
    bool ok;
    const char *got;
    if (m->outcome == DIES)
        ok = died && found, got = died ? "died" : "lived";
    else if (m->outcome == LIVES)
        ok = !died && found, got = died ? "died" : "lived";
    else /* either diagnosed and dead, or silently fine */
        ok = died ? found : true, got = died ? "diagnosed" : "not diagnosed (allowed in default mode)";
    char first[160] = "";
    sscanf(buf, "%159[^\n]", first);
    printf("  %-26s %-8s %s: %s\n", m->name, ok ? "ok" : "FAILED", got, first);
    CHECK_MSG(ok, "case %s: status %#x, expected %s with [%s]; stderr:\n%s", m->name, status,
              m->outcome == DIES ? "death" : "normal exit", m->needle ? m->needle : "", buf);
}

static void invalid_arguments(void)
{
    struct magpool_config cfg = {.name = "x", .size = 64};
    errno = 0;
    CHECK(magpool_cache_create(NULL) == NULL && errno == EINVAL);
    struct magpool_config bad[] = {
        {.size = 0},
        {.size = MAGPOOL_MAX_OBJECT_SIZE + 1},
        {.size = 64, .align = 3},
        {.size = 64, .align = 8192},
        {.size = 64, .mag_min = 10, .mag_max = 5},
        {.size = 64, .mag_max = MAGPOOL_MAG_MAX + 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        magpool_cache_t *c = magpool_cache_create(&bad[i]);
        CHECK_MSG(c == NULL && errno == EINVAL, "bad config %zu accepted (errno %d)", i, errno);
        if (c)
            magpool_cache_destroy(c);
    }
    void *objs[4];
    errno = 0;
    CHECK(magpool_alloc(NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(magpool_alloc_flags(NULL, MAGPOOL_ZERO) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(magpool_alloc_bulk(NULL, 4, objs, 0) == 0 && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_shrink(NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(magpool_cache_destroy(NULL) == -1 && errno == EINVAL);
    struct magpool_stats st;
    errno = 0;
    CHECK(magpool_cache_stats(NULL, &st) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(magpool_domain_urcu(NULL) == NULL && errno == EINVAL);
    magpool_free(NULL, NULL); /* NULL object: nothing */
    magpool_cache_t *c = magpool_cache_create(&cfg);
    CHECK(c != NULL);
    errno = 0;
    CHECK(magpool_cache_stats(c, NULL) == -1 && errno == EINVAL);
    magpool_free(c, NULL);
    CHECK(magpool_alloc_bulk(c, 0, objs, 0) == 0);
    magpool_free(c, magpool_alloc(c)); /* warm: rounds loaded */
    errno = 0;
    CHECK(magpool_alloc_bulk(c, 4, NULL, 0) == 0 && errno == EINVAL);
    errno = 0;
    magpool_free_bulk(c, 4, NULL);
    CHECK(errno == EINVAL);
    CHECK(magpool_cache_destroy(c) == 0);
    struct magpool_config bad_flags = {.name = "x", .size = 64, .flags = 0xffffffffu};
    errno = 0;
    CHECK(magpool_cache_create(&bad_flags) == NULL && errno == EINVAL);
    char name64[65];
    memset(name64, 'n', 64);
    name64[64] = 0;
    struct magpool_config long_name = {.name = name64, .size = 64};
    errno = 0;
    CHECK(magpool_cache_create(&long_name) == NULL && errno == EINVAL); /* 63 characters at most */

    errno = 0;
    CHECK(mem_pool_new_fn(0, 10, "x") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_pool_new_fn(16, 0, "x") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_pool_new_fn(MAGPOOL_MAX_OBJECT_SIZE + 1ul, 1, "x") == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_get(NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(mem_get0(NULL) == NULL && errno == EINVAL);
    mem_put(NULL);
    mem_pool_destroy(NULL);
    struct mem_pool_stats ms;
    errno = 0;
    CHECK(mem_pool_get_stats(NULL, &ms) == -1 && errno == EINVAL);

    errno = 0;
    CHECK(kmem_cache_create("x", 0, 0, 0, NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(kmem_cache_create("x", 64, 3, 0, NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(kmem_cache_create(NULL, 64, 0, 0, NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(kmem_cache_create("x", 64, 0, 0x80000000u, NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(kmem_cache_create("x", MAGPOOL_MAX_OBJECT_SIZE + 1u, 0, 0, NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(kmem_cache_alloc(NULL, GFP_KERNEL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(kmem_cache_alloc_bulk(NULL, GFP_KERNEL, 4, objs) == 0 && errno == EINVAL);
    errno = 0;
    CHECK(kmem_cache_shrink(NULL) == -1 && errno == EINVAL);
    CHECK(kmem_cache_size(NULL) == 0);
    kmem_cache_destroy(NULL);
    CHECK(kmalloc(0, GFP_KERNEL) == ZERO_SIZE_PTR);
    kfree(NULL);
    kfree(ZERO_SIZE_PTR);
    CHECK(ksize(NULL) == 0);
    errno = 0;
    CHECK(kcalloc(SIZE_MAX / 2, 4, GFP_KERNEL) == NULL && errno == ENOMEM);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--case") == 0) {
        for (size_t i = 0; i < NCASES; i++)
            if (strcmp(cases[i].name, argv[2]) == 0) {
                cases[i].fn();
                fflush(stderr);
                _exit(0); /* no atexit: LeakSanitizer would count the cases' leaks */
            }
        fprintf(stderr, "misuse: no case %s\n", argv[2]);
        return 98;
    }
    struct st_opts opts = {.threads = 1, .ops = 0, .seed = 1};
    st_parse(argc, argv, &opts, 1, 0, NULL);
    st_banner("misuse", &opts);
    double t0 = st_now();
    unsigned n = 0;
    for (size_t i = 0; i < NCASES; i++) {
        bool libc_case = strncmp(cases[i].name, "libc_", 5) == 0;
        if (opts.libc && !libc_case)
            continue;
        run_case(&cases[i]);
        n++;
    }
    if (!opts.libc)
        invalid_arguments();
    return st_finish("misuse", n, st_now() - t0);
}
