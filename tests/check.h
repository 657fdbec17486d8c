/*
 * Minimal test harness shared by tests/ and stress/: CHECK() counts, and
 * check_done() prints "N passed, N failed" and returns the exit status.
 * Death tests run a function in a child process and match its stderr.
 * check_rss_bytes() reads the process's resident set (RSS tests).
 */
#ifndef MAGPOOL_TESTS_CHECK_H
#define MAGPOOL_TESTS_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* CHECK_SANITIZED: defined in an ASan or TSan build (clang or gcc), where
 * shadow memory and delayed reuse change sizes and addresses. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CHECK_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CHECK_SANITIZED 1
#endif

static int check_passed, check_failed;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) {                                                          \
            check_passed++;                                                  \
        } else {                                                             \
            check_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                 \
    do {                                                                     \
        if (cond) {                                                          \
            check_passed++;                                                  \
        } else {                                                             \
            check_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* Resident set of this process in bytes (/proc/self/statm), 0 if unreadable. */
static inline size_t check_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    fflush(stdout);
    return check_failed ? 1 : 0;
}

/* Run fn(arg) in a child process whose stdout and stderr go to buf (NUL
 * terminated, at most cap - 1 bytes kept); returns its wait status, or -1 if
 * no child could be started. */
static inline int check_run_child(void (*fn)(void *), void *arg, char *buf, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(fds[0], buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

/* Death test: 1 if fn(arg), run in a child, died by a signal or exited
 * non-zero and its output contains needle (NULL: anything). */
static inline int check_death(void (*fn)(void *), void *arg, const char *needle)
{
    char buf[8192];
    int status = check_run_child(fn, arg, buf, sizeof buf);
    int died = status != -1 && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
    int found = needle == NULL || strstr(buf, needle) != NULL;
    if (!died || !found)
        fprintf(stderr, "death test: died=%d found=%d output=[%s]\n", died, found, buf);
    return died && found;
}
#endif
