/*
 * fuzz_proto.c — fuzz harness over the request parser and the whole
 * protocol engine (in-memory connections, no sockets).  Each input is cut
 * into chunks at the positions its first bytes choose and fed to one
 * connection, as a network would deliver it; replies are dropped.  The
 * harness checks that nothing crashes (ASan/UBSan under --config=fuzz),
 * that the -m budget holds, and, at the end of a standalone run, that every
 * item and buffer went back to its pool.
 *
 * libFuzzer: --config=fuzz defines MAGPOOL_LIBFUZZER (no main here).
 * Standalone: its own driver of seeded random inputs built from protocol
 * fragments:  fuzz_proto [--runs=N] [--seed=S]; ends "N passed, N failed".
 */
#include "conn.h"
#include "slabs.h"
#include "test_settings.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_ready;

static void setup_once(void)
{
    if (!g_ready) {
        if (kvt_setup(2u << 20) != 0)
            abort();
        g_ready = 1;
    }
}

static int one_input(const uint8_t *data, size_t size)
{
    setup_once();
    struct conn *c = kvt_conn();
    if (c == NULL)
        return 0;
    size_t pos = 0;
    unsigned chunk = size > 0 ? (data[0] % 64) + 1 : 1;
    while (pos < size && c->state != CONN_CLOSING) {
        size_t n = size - pos < chunk ? size - pos : chunk;
        kvt_request(c, (const char *)data + pos, n, NULL, 0);
        pos += n;
        chunk = (unsigned)((chunk * 7 + data[pos - 1]) % 97) + 1;
    }
    conn_free(c);
    if (slabs_bytes_charged() > slabs_limit())
        abort();
    return 0;
}

#ifdef MAGPOOL_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return one_input(data, size);
}
#else
static const char *const frags[] = {
    "get ", "gets ", "gat ", "gats ", "set ", "add ", "replace ", "append ", "prepend ",
    "cas ", "incr ", "decr ", "delete ", "touch ", "flush_all", "version", "verbosity ",
    "stats", " slabs", " items", " settings", "quit", "noreply", " ", "  ", "\r\n", "\n",
    "\r", "k", "key", "0", "1", "5", "-1", "100", "4294967296", "18446744073709551616",
    "abc", "\0", "0 0 5\r\nhello\r\n", "0 0 3\r\nabcdef\r\n", "0 0 1000000\r\n",
    "0 0 2\r\n10\r\n", "x",
};

int main(int argc, char **argv)
{
    unsigned long runs = 3000, seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--runs=", 7) == 0)
            runs = strtoul(argv[i] + 7, NULL, 10);
        else if (strncmp(argv[i], "--seed=", 7) == 0)
            seed = strtoul(argv[i] + 7, NULL, 10);
    }
    srandom((unsigned)seed);
    static uint8_t buf[1 << 16];
    for (unsigned long r = 0; r < runs; r++) {
        size_t n = 0;
        buf[n++] = (uint8_t)random();
        unsigned nf = (unsigned)(random() % 60);
        for (unsigned f = 0; f < nf; f++) {
            if (random() % 8 == 0) { /* raw bytes */
                unsigned k = (unsigned)(random() % 16);
                for (unsigned j = 0; j < k && n < sizeof buf; j++)
                    buf[n++] = (uint8_t)random();
                continue;
            }
            const char *s = frags[random() % (sizeof frags / sizeof frags[0])];
            size_t len = s[0] ? strlen(s) : 1;
            if (n + len > sizeof buf)
                break;
            memcpy(buf + n, s, len);
            n += len;
        }
        one_input(buf, n);
    }
    long live = kvt_teardown();
    int ok = live == 0;
    printf("%s fuzz_proto: %lu inputs, %ld objects live at teardown\n", ok ? "ok  " : "FAIL", runs,
           live);
    printf("%d passed, %d failed\n", ok, !ok);
    return ok ? 0 : 1;
}
#endif
