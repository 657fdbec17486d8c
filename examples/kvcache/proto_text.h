/*
 * proto_text.h — memcached's text protocol: tokenizer, number parsing and
 * the commands (memcached 1.6 proto_text.c semantics, our own code).
 */
#ifndef KVCACHE_PROTO_TEXT_H
#define KVCACHE_PROTO_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_TOKENS 24

struct token {
    char *value;
    size_t length;
};

/* memcached's tokenize_command: split at ' ' (runs count as one), write
 * NULs, at most max_tokens - 1 tokens, then a terminal token whose value
 * is the unprocessed rest (or NULL) and length 0.  Returns the count,
 * terminal token included. */
size_t tokenize_command(char *command, struct token *tokens, size_t max_tokens);

/* memcached's safe_strto*: decimal, the whole token, trailing whitespace
 * allowed; strtol's long is narrowed to 32 bits as memcached does. */
bool safe_strtoull(const char *str, uint64_t *out);
bool safe_strtoul(const char *str, uint32_t *out);
bool safe_strtol(const char *str, int32_t *out);

struct conn;
/* One request line (NUL-terminated, "\r\n" stripped). */
void proto_process_command(struct conn *c, char *line, size_t len);
/* The value of a storage command has been read into c->nread_it. */
void proto_complete_nread(struct conn *c);

/* VERSION reply text. */
#define KVCACHE_VERSION "1.6.18-kvcache"

#endif
