/*
 * proto_test.c — parser and protocol unit tests over in-memory connections:
 * the tokenizer and number parsing against memcached's rules, then request
 * -> exact reply bytes for every command and error line, split input
 * (a value arriving a byte at a time), eviction under a small -m, and
 * conservation (every object back in its pool at the end).
 */
#include "conn.h"
#include "items.h"
#include "pool.h"
#include "proto_text.h"
#include "slabs.h"
#include "test_settings.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out[1 << 20];

static void expect(struct conn *c, const char *in, const char *want)
{
    kvt_request(c, in, strlen(in), out, sizeof out);
    CHECK_MSG(strcmp(out, want) == 0, "request %.60s\n  got  %.200s\n  want %.200s", in, out, want);
}

static void test_tokenizer(void)
{
    struct token t[MAX_TOKENS];
    char a[] = "set  key 0  0 5";
    size_t n = tokenize_command(a, t, MAX_TOKENS);
    CHECK(n == 6);
    CHECK(strcmp(t[0].value, "set") == 0 && strcmp(t[1].value, "key") == 0);
    CHECK(t[5].length == 0 && t[5].value == NULL);
    char b[200];
    strcpy(b, "get");
    for (int i = 0; i < 30; i++)
        strcat(b, " k");
    n = tokenize_command(b, t, MAX_TOKENS);
    CHECK(n == MAX_TOKENS);
    CHECK(t[MAX_TOKENS - 1].value != NULL); /* the rest of the line */
    char e[] = "";
    CHECK(tokenize_command(e, t, MAX_TOKENS) == 1);
}

static void test_numbers(void)
{
    uint64_t u;
    uint32_t u32;
    int32_t i;
    CHECK(safe_strtoull("123", &u) && u == 123);
    CHECK(!safe_strtoull("-1", &u));
    CHECK(!safe_strtoull("12a", &u));
    CHECK(!safe_strtoull("", &u));
    CHECK(!safe_strtoull("18446744073709551616", &u));
    CHECK(safe_strtoull("18446744073709551615", &u) && u == UINT64_MAX);
    CHECK(safe_strtoul("4294967295", &u32) && u32 == 4294967295u);
    CHECK(!safe_strtoul("-5", &u32) || u32 == (uint32_t)-5); /* memcached's rule, narrowed */
    CHECK(safe_strtol("-1", &i) && i == -1);
    CHECK(safe_strtol("4294967297", &i) && i == 1); /* narrowed like memcached */
    CHECK(!safe_strtol("1x", &i));
}

static void test_commands(void)
{
    struct conn *c = kvt_conn();
    expect(c, "set a 0 0 1\r\nx\r\n", "STORED\r\n");
    expect(c, "get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
    expect(c, "get a b a\r\n", "VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    expect(c, "set f 4294967295 0 0\r\n\r\nget f\r\n", "STORED\r\nVALUE f 4294967295 0\r\n\r\nEND\r\n");
    expect(c, "add a 0 0 1\r\ny\r\n", "NOT_STORED\r\n");
    expect(c, "add b 0 0 1\r\ny\r\n", "STORED\r\n");
    expect(c, "replace zz 0 0 1\r\ny\r\n", "NOT_STORED\r\n");
    expect(c, "replace b 3 0 2\r\nyy\r\nget b\r\n", "STORED\r\nVALUE b 3 2\r\nyy\r\nEND\r\n");
    expect(c, "append b 9 0 1\r\n!\r\nprepend b 9 0 1\r\n<\r\nget b\r\n",
           "STORED\r\nSTORED\r\nVALUE b 3 4\r\n<yy!\r\nEND\r\n");
    expect(c, "append nope 0 0 1\r\n!\r\n", "NOT_STORED\r\n");
    expect(c, "delete b\r\ndelete b\r\n", "DELETED\r\nNOT_FOUND\r\n");
    expect(c, "delete a 0\r\n", "DELETED\r\n");
    expect(c, "delete a 1\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    expect(c, "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nget n\r\n",
           "STORED\r\n15\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n");
    expect(c, "incr n 18446744073709551615\r\n", "18446744073709551615\r\n");
    expect(c, "incr n 1\r\n", "0\r\n");
    expect(c, "incr n -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
    expect(c, "set s 0 0 3\r\nabc\r\nincr s 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    expect(c, "incr nope 1\r\n", "NOT_FOUND\r\n");
    expect(c, "touch s 100\r\ntouch nope 1\r\n", "TOUCHED\r\nNOT_FOUND\r\n");
    expect(c, "touch s abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    expect(c, "gat 0 s\r\n", "VALUE s 0 3\r\nabc\r\nEND\r\n");
    expect(c, "gat x s\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    expect(c, "set e 0 -1 1\r\nx\r\nget e\r\n", "STORED\r\nEND\r\n");
    expect(c, "set e 0 1000 1\r\nx\r\nget e\r\n", "STORED\r\nVALUE e 0 1\r\nx\r\nEND\r\n");
    expect(c, "set e 0 100 1\r\nx\r\nget e\r\n", "STORED\r\nVALUE e 0 1\r\nx\r\nEND\r\n");
    expect(c, "set e 0 2592001 1\r\nx\r\nget e\r\n", "STORED\r\nEND\r\n"); /* absolute, past */
    /* cas */
    kvt_request(c, "gets s\r\n", 8, out, sizeof out);
    unsigned long long cas = 0;
    CHECK(sscanf(out, "VALUE s 0 3 %llu", &cas) == 1);
    char req[600];
    snprintf(req, sizeof req, "cas s 0 0 1 %llu\r\nz\r\n", cas + 1000);
    expect(c, req, "EXISTS\r\n");
    snprintf(req, sizeof req, "cas s 0 0 1 %llu\r\nz\r\n", cas);
    expect(c, req, "STORED\r\n");
    expect(c, req, "EXISTS\r\n");
    expect(c, "cas nope 0 0 1 1\r\nz\r\n", "NOT_FOUND\r\n");
    /* noreply */
    expect(c, "set q 0 0 1 noreply\r\nx\r\nget q\r\n", "VALUE q 0 1\r\nx\r\nEND\r\n");
    expect(c, "delete q noreply\r\nincr q 1 noreply\r\nget q\r\n", "END\r\n");
    expect(c, "set q 0 0 x noreply\r\n", ""); /* errors are swallowed too */
    /* flush_all */
    expect(c, "flush_all\r\nget s\r\n", "OK\r\nEND\r\n");
    expect(c, "flush_all noreply\r\n", "");
    expect(c, "flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    expect(c, "set s 0 0 1\r\n1\r\nget s\r\n", "STORED\r\nVALUE s 0 1\r\n1\r\nEND\r\n");
    /* misc */
    expect(c, "version\r\n", "VERSION " KVCACHE_VERSION "\r\n");
    expect(c, "verbosity 1\r\nverbosity\r\n", "OK\r\nERROR\r\n");
    expect(c, "bogus\r\n\r\nx\r\nget\r\nset a 0 0\r\n", "ERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\n");
    expect(c, "stats nope\r\n", "ERROR\r\n");
    /* bad data */
    expect(c, "set a 0 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
    expect(c, "set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n");
    expect(c, "set a x 0 1\r\n", "CLIENT_ERROR bad command line format\r\n");
    expect(c, "set a 0 0 2000000\r\n", "SERVER_ERROR object too large for cache\r\n");
    /* the swallowed value */
    char *big = malloc(2000010);
    memset(big, 'v', 2000010);
    memcpy(big + 2000000, "\r\nget a\r\n", 9);
    kvt_request(c, big, 2000009, out, sizeof out);
    CHECK(strcmp(out, "END\r\n") == 0);
    free(big);
    /* keys */
    char key[300];
    memset(key, 'k', 251);
    key[251] = 0;
    snprintf(req, sizeof req, "get a %s\r\n", key);
    expect(c, req, "CLIENT_ERROR bad command line format\r\n");
    snprintf(req, sizeof req, "set %s 0 0 1\r\nx\r\n", key);
    expect(c, req, "CLIENT_ERROR bad command line format\r\nERROR\r\n");
    key[250] = 0;
    snprintf(req, sizeof req, "set %s 0 0 1\r\nx\r\n", key);
    expect(c, req, "STORED\r\n");
    /* a value a byte at a time */
    const char *slow = "set slow 0 0 5\r\nhello\r\nget slow\r\n";
    for (size_t i = 0; slow[i]; i++)
        kvt_request(c, slow + i, 1, i == strlen(slow) - 1 ? out : NULL, sizeof out);
    CHECK_MSG(strstr(out, "hello") != NULL, "got %.80s", out);
    /* many keys in one get (past the 24-token batch) */
    char line[4096] = "get";
    for (int i = 0; i < 100; i++)
        strcat(line, " a");
    strcat(line, "\r\n");
    kvt_request(c, "set a 0 0 1\r\nx\r\n", 16, NULL, 0);
    kvt_request(c, line, strlen(line), out, sizeof out);
    int hits = 0;
    for (char *p = out; (p = strstr(p, "VALUE a")) != NULL; p++)
        hits++;
    CHECK(hits == 100);
    /* a line of 2 KiB without '\n' that is not a get: closed */
    char junk[3000];
    memset(junk, 'j', sizeof junk);
    kvt_request(c, junk, sizeof junk, out, sizeof out);
    CHECK(c->state == CONN_CLOSING);
    conn_free(c);
}

/* incr/decr against memcached 1.6's do_add_delta (see item_delta). */
static void test_delta(void)
{
    struct conn *c = kvt_conn();
    char req[200];
    /* A value of nothing but whitespace: memcached's strtoull runs past
     * it into the slab chunk; we answer what a zeroed chunk gives.  Free
     * objects of the class are first left holding digits just past where
     * the value will end, so reading on would find a number. */
    for (int i = 0; i < 300; i++) {
        snprintf(req, sizeof req, "set d%d 0 0 19 noreply\r\n1234567890123456789\r\n", i);
        kvt_request(c, req, strlen(req), NULL, 0);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(req, sizeof req, "delete d%d noreply\r\n", i);
        kvt_request(c, req, strlen(req), NULL, 0);
    }
    kv_pool_quiesce();
    expect(c, "set w 0 0 1\r\n \r\nincr w 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    expect(c, "set w 0 0 3\r\n \t \r\ndecr w 1\r\n",
           "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    /* memcached's safe_strtoull: leading whitespace, then digits ending at
     * whitespace or a NUL; what follows does not matter */
    static const char nul[] = "set w 0 0 4\r\n12\0x\r\nincr w 1\r\nget w\r\n";
    kvt_request(c, nul, sizeof nul - 1, out, sizeof out);
    CHECK_MSG(strcmp(out, "STORED\r\n13\r\nVALUE w 0 4\r\n13  \r\nEND\r\n") == 0, "got %.80s", out);
    expect(c, "set w 0 0 6\r\n\t 7 ab\r\nincr w 1\r\nget w\r\n",
           "STORED\r\n8\r\nVALUE w 0 6\r\n8     \r\nEND\r\n");
    /* In place (length kept) only when no other connection holds the item:
     * while a reply of it is still queued on connection a, the incr makes
     * an item of the number's exact length ... */
    struct conn *a = kvt_conn();
    expect(c, "set n 0 0 5\r\n100  \r\n", "STORED\r\n");
    urcu_memb_read_lock();
    conn_feed(a, "get n\r\n", 7);
    urcu_memb_read_unlock();
    expect(c, "incr n 1\r\nget n\r\n", "101\r\nVALUE n 0 3\r\n101\r\nEND\r\n");
    kvt_request(a, "", 0, out, sizeof out);
    CHECK_MSG(strcmp(out, "VALUE n 0 5\r\n100  \r\nEND\r\n") == 0, "got %.80s", out);
    conn_free(a);
    /* ... but the requesting connection's own queued replies do not count
     * (memcached writes a get's reply before reading the next command) */
    expect(c, "set n 0 0 5\r\n100  \r\nget n n\r\nincr n 1\r\nget n\r\n",
           "STORED\r\nVALUE n 0 5\r\n100  \r\nVALUE n 0 5\r\n100  \r\nEND\r\n101\r\n"
           "VALUE n 0 5\r\n101  \r\nEND\r\n");
    conn_free(c);
}

static void test_eviction(void)
{
    /* 1 MiB budget, 100 KiB values: stores keep succeeding, memory stays bounded */
    struct conn *c = kvt_conn();
    char *req = malloc(110000);
    int stored = 0;
    for (int i = 0; i < 200; i++) {
        int n = snprintf(req, 100, "set big%d 0 0 100000\r\n", i);
        memset(req + n, 'b', 100000);
        memcpy(req + n + 100000, "\r\n", 2);
        kvt_request(c, req, (size_t)n + 100002, out, sizeof out);
        stored += strcmp(out, "STORED\r\n") == 0;
    }
    CHECK_MSG(stored == 200, "stored %d of 200", stored);
    CHECK(slabs_bytes_charged() <= slabs_limit());
    kvt_request(c, "get big199\r\n", 12, out, sizeof out);
    CHECK_MSG(strncmp(out, "VALUE big199 0 100000\r\n", 23) == 0, "got %.40s", out);
    kvt_request(c, "get big0\r\n", 10, out, sizeof out);
    CHECK(strcmp(out, "END\r\n") == 0); /* evicted */
    /* -m is full of big values: five 30 KB items stored now (more than the
     * budget has left) evict big ones, not each other, as their class holds
     * less than a slab page (memccapable's ascii mget after integration.py's
     * fill) */
    for (int i = 0; i < 5; i++) {
        int n = snprintf(req, 100, "set mid%d 0 0 30000\r\n", i);
        memset(req + n, 'm', 30000);
        memcpy(req + n + 30000, "\r\n", 2);
        kvt_request(c, req, (size_t)n + 30002, out, sizeof out);
        CHECK_MSG(strcmp(out, "STORED\r\n") == 0, "set mid%d: %s", i, out);
    }
    const char *mget = "get mid0 mid1 mid2 mid3 mid4\r\n";
    kvt_request(c, mget, strlen(mget), out, sizeof out);
    int found = 0;
    for (const char *v = out; (v = strstr(v, "VALUE mid")) != NULL; v++)
        found++;
    CHECK_MSG(found == 5, "mget after the fill: %d of 5 values", found);
    CHECK(slabs_bytes_charged() <= slabs_limit());
    free(req);
    conn_free(c);
}

int main(void)
{
    if (kvt_setup(1 << 20) != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    test_tokenizer();
    test_numbers();
    test_commands();
    test_delta();
    test_eviction();
    long live = kvt_teardown();
    CHECK_MSG(live == 0, "%ld objects still live at teardown", live);
    return check_done();
}
