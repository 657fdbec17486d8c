/* test_settings.h — in-process fixture for proto_test.c and fuzz_proto.c. */
#ifndef KVCACHE_TEST_SETTINGS_H
#define KVCACHE_TEST_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

struct conn;
/* Pools, classes and index with a -m of maxbytes; this thread registered. */
int kvt_setup(uint64_t maxbytes);
/* An in-memory connection (conn_free it). */
struct conn *kvt_conn(void);
/* Feed n bytes, collect the replies into out (NUL-terminated, truncated
 * to cap - 1; out may be NULL to drop them).  Returns the bytes kept. */
size_t kvt_request(struct conn *c, const char *in, size_t n, char *out, size_t cap);
/* Unlink everything, destroy the pools: returns objects still live. */
long kvt_teardown(void);

#endif
