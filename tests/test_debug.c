/*
 * Debug layer (src/cache/debug.c): MAGPOOL_DEBUG parsing, memcheck detection, the
 * trailer size, the one-line report, and each debug check through the core
 * (poison, red zone, full double free, wrong cache, owner records, continue
 * mode) and through kmem_cache's SLAB_* flags.  Scenarios that need a fresh
 * environment re-execute this binary with "--child <scenario>".
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug.h"
#include "magpool/kmem_cache.h"
#include "magpool/magpool.h"
#include "magpool/mem_pool.h"
#include "sanitize.h"
#include "tests/check.h"

/* Memcheck's own client requests: the test asks memcheck whether it is there
 * (see memcheck_probe), independently of the LD_PRELOAD test the library
 * uses. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HAVE_MEMCHECK_H 1
#endif
#endif

#define DBG_ALL (MAGPOOL_POISON | MAGPOOL_RED_ZONE | MAGPOOL_STORE_USER | MAGPOOL_VERIFY)

static const char *self_path;

struct self_run {
    const char *debug_env, *preload, *scenario;
};

/* In the child: set the environment, then become this binary's scenario. */
static void exec_self(void *arg)
{
    const struct self_run *r = arg;
    if (r->debug_env)
        setenv("MAGPOOL_DEBUG", r->debug_env, 1);
    else
        unsetenv("MAGPOOL_DEBUG");
    if (r->preload)
        setenv("LD_PRELOAD", r->preload, 1);
    else
        unsetenv("LD_PRELOAD");
    execl(self_path, self_path, "--child", r->scenario, (char *)NULL);
    _exit(127);
}

/* Re-run this binary with MAGPOOL_DEBUG (NULL: unset) and LD_PRELOAD (NULL:
 * unset); out gets its stdout+stderr.  Returns the wait status. */
static int run_self(const char *debug_env, const char *preload, const char *scenario, char *out,
                    size_t cap)
{
    struct self_run r = { debug_env, preload, scenario };
    return check_run_child(exec_self, &r, out, cap);
}

static magpool_cache_t *mk(const char *name, size_t size, unsigned flags)
{
    struct magpool_config cfg = {.name = name, .size = size, .flags = flags};
    return magpool_cache_create(&cfg);
}

/* The path a cache's calls take, as magpool.h's inline hits see it: the
 * offset in the public cache head locates the thread's magazines; 0 sends
 * every call to the library's checked (debug) path. */
static unsigned fast_id(magpool_cache_t *c)
{
    return atomic_load_explicit(&((const struct magpool_cache_head_ *)c)->fast_off, memory_order_relaxed);
}

/* 1 if this process runs under Valgrind's memcheck tool, 0 if not, -1 if
 * this build cannot tell (no <valgrind/memcheck.h>).  Asked of memcheck
 * itself, not read from LD_PRELOAD: GET_VBITS returns 1 only when memcheck
 * answers it (0 outside Valgrind, and under other tools, which leave the
 * request unhandled), and reports nothing. */
static int memcheck_probe(void)
{
#ifdef HAVE_MEMCHECK_H
    if (!RUNNING_ON_VALGRIND)
        return 0;
    static char probe[8], vbits[8];
    return VALGRIND_GET_VBITS(probe, vbits, sizeof probe) == 1;
#else
    return -1;
#endif
}

/* ---- child scenarios (fresh environment) -------------------------------------- */
static int child(const char *sc)
{
    if (strcmp(sc, "env") == 0) {
        printf("flags=%#x memcheck=%d\n", mp_debug_env_flags(), (int)mp_under_memcheck());
        return 0;
    }
    if (strcmp(sc, "path") == 0) { /* the path a cache with no debug flag takes */
        magpool_cache_t *c = mk("plain", 64, 0);
        unsigned id = fast_id(c);
        magpool_free(c, magpool_alloc(c)); /* usable either way */
        printf("path=%s\n", id == 0 ? "checked" : "fast");
        return magpool_cache_destroy(c) == 0 ? 0 : 1;
    }
    if (strcmp(sc, "env_poison_uaf") == 0) { /* MAGPOOL_DEBUG=poison for every cache */
        magpool_cache_t *c = mk("envpoison", 64, 0);
        unsigned char *a = magpool_alloc(c);
        magpool_free(c, a);
        a[10] = 1; /* write after free */
        for (int i = 0; i < 100; i++)
            magpool_alloc(c);
        printf("not caught\n");
        return 0;
    }
    if (strcmp(sc, "continue_double") == 0) { /* verify,continue */
        magpool_cache_t *c = mk("cont", 32, 0);
        void *a = magpool_alloc(c), *b = magpool_alloc(c);
        magpool_free(c, a);
        magpool_free(c, b);
        magpool_free(c, a); /* reported, dropped */
        void *x = magpool_alloc(c), *y = magpool_alloc(c);
        printf("survived distinct=%d\n", x != y);
        return 0;
    }
    if (strcmp(sc, "continue_frontends") == 0) { /* continue, default checks */
        long stack[4] = {0};
        mem_put(stack);
        kfree(stack);
        struct kmem_cache *s = kmem_cache_create("kc", 64, 0, 0, NULL);
        char *o = kmem_cache_alloc(s, GFP_KERNEL);
        kmem_cache_free(s, o + 1);
        kmem_cache_free(s, o);
        printf("survived\n");
        return 0;
    }
    return 2;
}

/* ---- in-process death scenarios --------------------------------------------- */
static void d_report(void *a)
{
    (void)a;
    mp_report("mycache", (void *)0x1000, "some kind", "(detail)", false);
}
static void d_redzone(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("rz", 24, MAGPOOL_RED_ZONE);
    unsigned char *o = magpool_alloc(c);
    o[24] = 0; /* one byte past the end */
    magpool_free(c, o);
}
static void d_double_far(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("dfar", 40, MAGPOOL_VERIFY);
    void *x = magpool_alloc(c), *y = magpool_alloc(c);
    magpool_free(c, x);
    magpool_free(c, y);
    magpool_free(c, x); /* not immediate: only the state word sees it */
}
static void d_user(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("owner", 40, MAGPOOL_STORE_USER);
    void *x = magpool_alloc(c), *y = magpool_alloc(c);
    magpool_free(c, x);
    magpool_free(c, y);
    magpool_free(c, x);
}
/* The callers MAGPOOL_STORE_USER records are the application's: the
 * return addresses of magpool_alloc / magpool_free, however their misses
 * reach the slow path (a tail jump: magazine.c, MP_MUSTTAIL).  The child
 * prints the two functions' addresses; the report names its callers. */
static __attribute__((noinline)) void *user_alloc(magpool_cache_t *c)
{
    void *p = magpool_alloc(c);
    __asm__ volatile("" ::: "memory"); /* no tail call: the return address is in here */
    return p;
}
static __attribute__((noinline)) void user_free(magpool_cache_t *c, void *p)
{
    magpool_free(c, p);
    __asm__ volatile("" ::: "memory");
}
static void d_user_callers(void *a)
{
    (void)a;
    fprintf(stderr, "user_alloc=%p user_free=%p\n", (void *)user_alloc, (void *)user_free);
    magpool_cache_t *c = mk("callers", 40, MAGPOOL_STORE_USER);
    void *x = user_alloc(c), *y = user_alloc(c);
    user_free(c, x);
    user_free(c, y);
    user_free(c, x);
}
static void test_user_callers(void)
{
    char buf[4096];
    int st = check_run_child(d_user_callers, NULL, buf, sizeof buf);
    CHECK(WIFSIGNALED(st));
    void *fa = NULL, *ff = NULL, *ca = NULL, *cf = NULL;
    const char *at = strstr(buf, "user_alloc=");
    CHECK(at != NULL && sscanf(at, "user_alloc=%p user_free=%p", &fa, &ff) == 2);
    at = strstr(buf, "[last alloc: thread ");
    CHECK_MSG(at != NULL, "[%s]", buf);
    if (at != NULL) {
        unsigned long long t1, t2;
        CHECK(sscanf(at, "[last alloc: thread %llu caller %p; last free: thread %llu caller %p]", &t1, &ca, &t2, &cf) ==
              4);
    }
    /* Inside the small function (its prologue and the call come first: up
     * to ~100 bytes at -O2 with the stack protector), not in the library. */
    CHECK_MSG((char *)ca > (char *)fa && (char *)ca < (char *)fa + 256, "alloc caller %p, user_alloc %p", ca, fa);
    CHECK_MSG((char *)cf > (char *)ff && (char *)cf < (char *)ff + 256, "free caller %p, user_free %p", cf, ff);
}

static void d_wrong(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("verA", 40, MAGPOOL_VERIFY);
    magpool_cache_t *d = mk("verB", 40, 0);
    magpool_free(c, magpool_alloc(d));
}
static void d_poison(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("pois", 64, MAGPOOL_POISON);
    unsigned char *o = magpool_alloc(c);
    magpool_free(c, o);
    o[63] = 0; /* write after free */
    for (int i = 0; i < 100; i++)
        magpool_alloc(c);
}
static void d_slab_poison(void *a)
{
    (void)a;
    struct kmem_cache *s = kmem_cache_create("kpois", 48, 0, SLAB_POISON, NULL);
    long *o = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free(s, o);
    o[2] = 7;
    for (int i = 0; i < 100; i++)
        kmem_cache_alloc(s, GFP_KERNEL);
}
static void d_slab_redzone(void *a)
{
    (void)a;
    struct kmem_cache *s = kmem_cache_create("krz", 20, 0, SLAB_RED_ZONE | SLAB_STORE_USER, NULL);
    char *o = kmem_cache_alloc(s, GFP_KERNEL);
    memset(o, 'x', 22);
    kmem_cache_free(s, o);
}
static void d_corrupt_state(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("corrupt", 24, MAGPOOL_VERIFY);
    long *o = magpool_alloc(c);
    o[3] = 0; /* bytes 24..31: the trailer's state word */
    magpool_free(c, o);
}
static void d_slab_checks(void *a)
{
    (void)a;
    struct kmem_cache *s = kmem_cache_create("kchk", 20, 0, SLAB_CONSISTENCY_CHECKS, NULL);
    void *x = kmem_cache_alloc(s, GFP_KERNEL), *y = kmem_cache_alloc(s, GFP_KERNEL);
    kmem_cache_free(s, x);
    kmem_cache_free(s, y);
    kmem_cache_free(s, x);
}

static void test_env(void)
{
    char out[4096];
    struct {
        const char *env;
        unsigned want;
    } t[] = {
        {NULL, 0},
        {"", 0},
        {"poison", MAGPOOL_POISON},
        {"poison,redzone", MAGPOOL_POISON | MAGPOOL_RED_ZONE},
        {"user,verify", MAGPOOL_STORE_USER | MAGPOOL_VERIFY},
        {"continue", MAGPOOL_DEBUG_CONTINUE},
        {"all", DBG_ALL},
        {"all,continue", DBG_ALL | MAGPOOL_DEBUG_CONTINUE},
        {"redzone,,bogus", MAGPOOL_RED_ZONE},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int st = run_self(t[i].env, NULL, "env", out, sizeof out);
        char want[64];
        snprintf(want, sizeof want, "flags=%#x memcheck=0", t[i].want);
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, want) != NULL,
                  "MAGPOOL_DEBUG=%s: [%s]", t[i].env ? t[i].env : "(unset)", out);
    }
    run_self("bogus", NULL, "env", out, sizeof out);
    CHECK(strstr(out, "MAGPOOL_DEBUG: unknown option 'bogus'") != NULL);
#ifndef MP_ASAN /* ASan refuses foreign LD_PRELOAD entries */
    /* memcheck is recognised from its preload library (a missing file: ld.so
     * warns and goes on); any other preload is not memcheck (callgrind) */
    run_self(NULL, "/nonexistent/vgpreload_memcheck-amd64-linux.so", "env", out, sizeof out);
    CHECK_MSG(strstr(out, "memcheck=1") != NULL, "[%s]", out);
    run_self(NULL, "/nonexistent/vgpreload_core-amd64-linux.so", "env", out, sizeof out);
    CHECK_MSG(strstr(out, "memcheck=0") != NULL, "[%s]", out);
    /* ... and what recognising it does: under memcheck a cache with no debug
     * flag still takes the checked path (fast id 0), so its objects go
     * through the mempool client requests; under any other preload, or none,
     * it keeps the magazine fast path.  The memcheck run uses the preload
     * list valgrind itself sets (core first, then the tool). */
    run_self(NULL,
             "/nonexistent/vgpreload_core-amd64-linux.so:/nonexistent/vgpreload_memcheck-amd64-linux.so",
             "path", out, sizeof out);
    CHECK_MSG(strstr(out, "path=checked") != NULL, "memcheck preload: [%s]", out);
    run_self(NULL, "/nonexistent/vgpreload_core-amd64-linux.so", "path", out, sizeof out);
    CHECK_MSG(strstr(out, "path=fast") != NULL, "core preload: [%s]", out);
#endif
    /* With no preload a plain cache keeps the fast path, unless a sanitizer
     * runtime is in the process: ASan makes every cache a checked one
     * (sanitize.h); an instrumented library under TSan needs no routing. */
#ifdef MP_ASAN
    const bool routed = true;
#else
    const bool routed = false;
#endif
    run_self(NULL, NULL, "path", out, sizeof out);
    CHECK_MSG(strstr(out, routed ? "path=checked" : "path=fast") != NULL, "no preload: [%s]", out);
    /* This process: the library's answer must agree with memcheck's own
     * (memcheck_probe asks memcheck, not LD_PRELOAD), and so must the path of
     * a plain cache (unless MAGPOOL_DEBUG makes every cache a debug one).
     * Under `bazel test` that is "not memcheck, fast path"; run by hand as
     * `valgrind bazel-bin/tests/test_debug` it is "memcheck, checked path". */
    int mc = memcheck_probe();
    if (mc >= 0) {
        CHECK_MSG((int)mp_under_memcheck() == mc, "mp_under_memcheck() %d, memcheck says %d",
                  (int)mp_under_memcheck(), mc);
        magpool_cache_t *c = mk("self", 64, 0);
        if (getenv("MAGPOOL_DEBUG") == NULL)
            CHECK_MSG((fast_id(c) == 0) == (mc == 1 || routed), "memcheck %d but fast id %u", mc, fast_id(c));
        CHECK(magpool_cache_destroy(c) == 0);
    }
}

static void test_extra(void)
{
    CHECK(mp_debug_extra(0, 24) == 0);
    CHECK(mp_debug_extra(MAGPOOL_HWCACHE_ALIGN | MAGPOOL_TYPESAFE, 24) == 0);
    CHECK(mp_debug_extra(MAGPOOL_VERIFY, 24) == 8);                   /* state word */
    CHECK(mp_debug_extra(MAGPOOL_VERIFY, 20) == 12);                  /* pad to 8, state */
    CHECK(mp_debug_extra(MAGPOOL_RED_ZONE, 24) == 16);                /* 8 red, state */
    CHECK(mp_debug_extra(MAGPOOL_RED_ZONE, 21) == 19);                /* 3+8 red, state */
    CHECK(mp_debug_extra(MAGPOOL_STORE_USER, 24) == 8 + 32);          /* state, 2 owners */
    CHECK(mp_debug_extra(DBG_ALL, 24) == 8 + 8 + 32);
}

static void test_report(void)
{
    CHECK(check_death(d_report, NULL, "magpool: mycache: some kind at 0x1000 (detail)\n"));
    /* continue: prints and returns */
    char out[256];
    int fds[2];
    CHECK(pipe(fds) == 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    mp_report("c2", NULL, "a warning", NULL, true);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = 0;
    CHECK_MSG(strcmp(out, "magpool: c2: a warning\n") == 0, "[%s]", out);
}

static void test_checks(void)
{
#ifdef MP_ASAN /* ASan itself reports the overrun / write after free first */
    CHECK(check_death(d_redzone, NULL, NULL));
    CHECK(check_death(d_poison, NULL, NULL));
    CHECK(check_death(d_slab_poison, NULL, NULL));
    CHECK(check_death(d_slab_redzone, NULL, NULL));
#else
    CHECK(check_death(d_redzone, NULL, "magpool: rz: red zone overwritten at 0x"));
    CHECK(check_death(d_poison, NULL, "magpool: pois: use after free at 0x"));
    CHECK(check_death(d_poison, NULL, "poison overwritten at offset 63"));
    CHECK(check_death(d_slab_poison, NULL, "magpool: kpois: use after free"));
    CHECK(check_death(d_slab_redzone, NULL, "magpool: krz: red zone overwritten"));
    CHECK(check_death(d_slab_redzone, NULL, "last alloc: thread"));
#endif
    CHECK(check_death(d_double_far, NULL, "magpool: dfar: double free at 0x"));
    CHECK(check_death(d_user, NULL, "double free"));
    CHECK(check_death(d_user, NULL, "last free: thread"));
    CHECK(check_death(d_wrong, NULL, "wrong cache"));
    test_user_callers();
    CHECK(check_death(d_slab_checks, NULL, "magpool: kchk: double free"));
    CHECK(check_death(d_corrupt_state, NULL, "magpool: corrupt: corrupted object at 0x"));
}

static void test_continue(void)
{
    char out[8192];
    int st = run_self("verify,continue", NULL, "continue_double", out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "[%s]", out);
    CHECK(strstr(out, "magpool: cont: double free at 0x") != NULL);
    CHECK(strstr(out, "survived distinct=1") != NULL);
    st = run_self("continue", NULL, "continue_frontends", out, sizeof out);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "[%s]", out);
    CHECK(strstr(out, "magpool: mem_pool: foreign pointer at 0x") != NULL);
    CHECK(strstr(out, "magpool: kmalloc: foreign pointer at 0x") != NULL);
    CHECK(strstr(out, "magpool: kc: misaligned pointer at 0x") != NULL);
    CHECK(strstr(out, "survived") != NULL);
#ifndef MP_ASAN
    st = run_self("poison", NULL, "env_poison_uaf", out, sizeof out);
    CHECK_MSG(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "[%s]", out);
    CHECK_MSG(strstr(out, "magpool: envpoison: use after free at 0x") != NULL, "[%s]", out);
#endif
}

/* Debug caches used correctly never complain, across threads, and keep a
 * constructor's state (no poisoning with a ctor). */
static void ctor_fn(void *obj, void *arg)
{
    (void)arg;
    memset(obj, 0x3c, 56);
}
struct xarg {
    magpool_cache_t *c;
    void **objs;
    int n;
};
static void *xfree(void *p)
{
    struct xarg *a = p;
    for (int i = 0; i < a->n; i++)
        magpool_free(a->c, a->objs[i]);
    return NULL;
}
static void test_clean_use(void)
{
    enum { N = 500 };
    magpool_cache_t *c = mk("clean_all", 56, DBG_ALL);
    CHECK(c != NULL);
    static void *o[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            o[i] = magpool_alloc(c);
            memset(o[i], i, 56); /* every byte of the object is the user's */
        }
        struct xarg a = {c, o, N};
        pthread_t t;
        pthread_create(&t, NULL, xfree, &a);
        pthread_join(t, NULL);
    }
    struct magpool_stats st;
    CHECK(magpool_cache_stats(c, &st) == 0 && st.in_use == 0);
    CHECK(magpool_cache_destroy(c) == 0);

    struct magpool_config cfg = {.name = "ctor_poison", .size = 56, .ctor = ctor_fn,
                                 .flags = MAGPOOL_POISON | MAGPOOL_VERIFY};
    c = magpool_cache_create(&cfg);
    int ok = 1;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++) {
            o[i] = magpool_alloc(c);
            ok &= ((unsigned char *)o[i])[0] == 0x3c && ((unsigned char *)o[i])[55] == 0x3c;
        }
        for (int i = 0; i < 50; i++)
            magpool_free(c, o[i]);
    }
    CHECK(ok);
    magpool_cache_destroy(c);
}

/* A deferred free of a debug cache object is checked at once (double free)
 * but poisoned only after the grace period: readers may still read it. */
static void d_deferred_double(void *a)
{
    (void)a;
    magpool_cache_t *c = mk("defdbl", 32, MAGPOOL_VERIFY);
    void *x = magpool_alloc(c);
    magpool_free_deferred(c, x);
    magpool_free_deferred(c, x);
}
static void test_deferred(void)
{
    magpool_cache_t *c = mk("defpois", 64, MAGPOOL_POISON | MAGPOOL_RED_ZONE);
    long *o = magpool_alloc(c);
    o[0] = 4242;
    magpool_read_enter(NULL); /* a reader that saw o */
    magpool_free_deferred(c, o);
    CHECK_MSG(o[0] == 4242, "deferred-freed object poisoned before its grace period");
    magpool_read_leave(NULL);
    magpool_synchronize(NULL);
    for (int i = 0; i < 10; i++)
        magpool_free(c, magpool_alloc(c)); /* its poison is intact: no report */
    CHECK(check_death(d_deferred_double, NULL, "magpool: defdbl: double free at 0x"));
    magpool_cache_destroy(c);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return child(argv[2]);
    self_path = "/proc/self/exe";
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        path[n] = 0;
        self_path = path;
    }
    test_env();
    test_extra();
    test_report();
    test_checks();
    test_continue();
    test_clean_use();
    test_deferred();
    return check_done();
}
