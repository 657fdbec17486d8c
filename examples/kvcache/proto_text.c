/*
 * proto_text.c — memcached's text protocol, request by request.
 *
 * Guarantees: every reply, error included, is the line memcached 1.6 sends
 * for the same request (protocol.txt, proto_text.c semantics), with two
 * documented exceptions: VERSION names this server; `stats` replies carry
 * our own figures (magpool's in `stats slabs`).  Meta commands (mg, ms, ...) and the
 * binary protocol are not implemented: ERROR.
 *
 * noreply: as in memcached, a trailing "noreply" token suppresses the next
 * reply line, errors included (out_string in conn.c).
 */
#include "proto_text.h"

#include "conn.h"
#include "items.h"
#include "settings.h"
#include "stats.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t tokenize_command(char *command, struct token *tokens, size_t max_tokens)
{
    size_t ntokens = 0;
    size_t len = strlen(command);
    char *s = command, *e = command;
    for (size_t i = 0; i < len; i++) {
        if (*e == ' ') {
            if (s != e) {
                tokens[ntokens].value = s;
                tokens[ntokens].length = (size_t)(e - s);
                ntokens++;
                *e = '\0';
                if (ntokens == max_tokens - 1) {
                    e++;
                    s = e;
                    break;
                }
            }
            s = e + 1;
        }
        e++;
    }
    if (s != e) {
        tokens[ntokens].value = s;
        tokens[ntokens].length = (size_t)(e - s);
        ntokens++;
    }
    tokens[ntokens].value = *e == '\0' ? NULL : e;
    tokens[ntokens].length = 0;
    ntokens++;
    return ntokens;
}

static bool end_ok(const char *str, const char *end)
{
    return isspace((unsigned char)*end) || (*end == '\0' && end != str);
}

bool safe_strtoull(const char *str, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = 0;
    unsigned long long v = strtoull(str, &end, 10);
    if (errno == ERANGE || str == end || !end_ok(str, end))
        return false;
    if ((long long)v < 0 && memchr(str, '-', (size_t)(end - str)) != NULL)
        return false;
    *out = v;
    return true;
}

bool safe_strtoul(const char *str, uint32_t *out)
{
    char *end;
    errno = 0;
    *out = 0;
    unsigned long v = strtoul(str, &end, 10);
    if (errno == ERANGE || str == end || !end_ok(str, end))
        return false;
    if ((long)v < 0 && strchr(str, '-') != NULL)
        return false;
    *out = (uint32_t)v; /* narrowed, as memcached's does */
    return true;
}

bool safe_strtol(const char *str, int32_t *out)
{
    char *end;
    errno = 0;
    *out = 0;
    long v = strtol(str, &end, 10);
    if (errno == ERANGE || str == end || !end_ok(str, end))
        return false;
    *out = (int32_t)v; /* narrowed, as memcached's does */
    return true;
}

/* memcached's set_noreply_maybe: the last real token is "noreply". */
static bool set_noreply_maybe(struct conn *c, struct token *tokens, size_t ntokens)
{
    struct token *t = &tokens[ntokens - 2];
    if (t->value && strcmp(t->value, "noreply") == 0)
        c->noreply = true;
    return c->noreply;
}

/* ---- retrieval ------------------------------------------------------------- */

static void out_value_header(struct conn *c, struct item *it, bool return_cas)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "VALUE %.*s %u %u", (int)it->nkey, ITEM_key(it), it->flags,
                     it->nbytes - 2);
    if (return_cas)
        n += snprintf(buf + n, sizeof buf - (size_t)n, " %llu", (unsigned long long)it->cas);
    buf[n++] = '\r';
    buf[n++] = '\n';
    conn_out(c, buf, (size_t)n);
}

/* Apply f to every key of the get line, across memcached's 24-token
 * batches.  Returns false at the first key over KEY_MAX_LENGTH. */
static bool for_each_key(struct token *tokens, size_t first, size_t ntokens,
                         bool (*f)(void *arg, char *key, size_t nkey), void *arg)
{
    struct token *kt = &tokens[first];
    (void)ntokens;
    for (;;) {
        while (kt->length != 0) {
            if (!f(arg, kt->value, kt->length))
                return false;
            kt++;
        }
        if (kt->value == NULL)
            return true;
        tokenize_command(kt->value, tokens, MAX_TOKENS);
        kt = tokens;
    }
}

/* Every key of the line is at most KEY_MAX_LENGTH: the first batch from
 * its tokens, the rest of the line (not tokenized yet) by scanning. */
static bool keys_ok(const struct token *tokens, size_t first)
{
    const struct token *kt = &tokens[first];
    for (; kt->length != 0; kt++)
        if (kt->length > KEY_MAX_LENGTH)
            return false;
    if (kt->value == NULL)
        return true;
    size_t run = 0;
    for (const char *p = kt->value; *p; p++) {
        if (*p == ' ') {
            run = 0;
        } else if (++run > KEY_MAX_LENGTH) {
            return false;
        }
    }
    return true;
}

struct get_ctx {
    struct conn *c;
    bool return_cas, touch;
    rel_time_t exptime;
};

static bool get_one(void *arg, char *key, size_t nkey)
{
    struct get_ctx *g = arg;
    struct conn *c = g->c;
    struct item *it = item_get(key, nkey, g->touch, g->exptime);
    if (g->touch)
        STAT_INC(c->stats, cmd_touch);
    else
        STAT_INC(c->stats, cmd_get);
    if (it == NULL) {
        if (g->touch)
            STAT_INC(c->stats, touch_misses);
        else
            STAT_INC(c->stats, get_misses);
        return true;
    }
    if (g->touch)
        STAT_INC(c->stats, touch_hits);
    else
        STAT_INC(c->stats, get_hits);
    out_value_header(c, it, g->return_cas);
    conn_out_item_value(c, it); /* the reference goes with the segment */
    return true;
}

static bool touch_until_bad(void *arg, char *key, size_t nkey)
{
    struct get_ctx *g = arg;
    if (nkey > KEY_MAX_LENGTH)
        return false;
    item_touch(key, nkey, g->exptime);
    return true;
}

static void process_get(struct conn *c, struct token *tokens, size_t ntokens, bool return_cas,
                        bool touch)
{
    struct get_ctx g = {c, return_cas, touch, 0};
    size_t first = 1;
    if (touch) {
        int32_t e;
        if (!safe_strtol(tokens[1].value, &e)) {
            out_string(c, "CLIENT_ERROR invalid exptime argument");
            return;
        }
        g.exptime = exptime_to_rel(e);
        first = 2;
    }
    if (!keys_ok(tokens, first)) {
        /* memcached looks up (and for gat, touches) every key before the
         * bad one, then drops the hits: do the same, minus the output */
        if (touch)
            for_each_key(tokens, first, ntokens, touch_until_bad, &g);
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    for_each_key(tokens, first, ntokens, get_one, &g);
    conn_out(c, "END\r\n", 5);
}

/* ---- storage --------------------------------------------------------------- */

static void process_update(struct conn *c, struct token *tokens, size_t ntokens,
                           enum store_cmd cmd, bool handle_cas)
{
    uint32_t flags;
    int32_t exptime, vlen;
    uint64_t req_cas = 0;
    set_noreply_maybe(c, tokens, ntokens);
    if (tokens[1].length > KEY_MAX_LENGTH) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (!(safe_strtoul(tokens[2].value, &flags) && safe_strtol(tokens[3].value, &exptime) &&
          safe_strtol(tokens[4].value, &vlen))) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (handle_cas && !safe_strtoull(tokens[5].value, &req_cas)) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (vlen < 0 || vlen > INT_MAX - 2) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    size_t nbytes = (size_t)vlen + 2;
    enum alloc_error err;
    struct item *it = item_alloc(tokens[1].value, tokens[1].length, flags,
                                 exptime_to_rel(exptime), nbytes, &err);
    if (it == NULL) {
        if (err == ALLOC_TOO_LARGE) {
            out_string(c, "SERVER_ERROR object too large for cache");
            STAT_INC(c->stats, store_too_large);
        } else {
            out_string(c, "SERVER_ERROR out of memory storing object");
            STAT_INC(c->stats, store_no_memory);
        }
        c->state = CONN_SWALLOW;
        c->swallow_left = nbytes;
        /* memcached: a failed set must not leave the old value visible */
        if (cmd == CMD_SET)
            item_delete(tokens[1].value, tokens[1].length);
        return;
    }
    c->nread_it = it;
    c->nread_done = 0;
    c->nread_cmd = cmd;
    c->nread_cas = req_cas;
    c->nread_noreply = c->noreply;
    c->noreply = false;
    c->state = CONN_NREAD;
}

void proto_complete_nread(struct conn *c)
{
    struct item *it = c->nread_it;
    c->nread_it = NULL;
    c->state = CONN_PARSE;
    c->noreply = c->nread_noreply;
    STAT_INC(c->stats, cmd_set);
    if (memcmp(ITEM_value(it) + it->nbytes - 2, "\r\n", 2) != 0) {
        out_string(c, "CLIENT_ERROR bad data chunk");
    } else {
        enum store_result r = item_store(it, c->nread_cmd, c->nread_cas);
        if (c->nread_cmd == CMD_CAS) {
            if (r == STORED)
                STAT_INC(c->stats, cas_hits);
            else if (r == EXISTS)
                STAT_INC(c->stats, cas_badval);
            else
                STAT_INC(c->stats, cas_misses);
        }
        static const char *const reply[] = {"STORED", "NOT_STORED", "EXISTS", "NOT_FOUND"};
        out_string(c, reply[r]);
    }
    item_release(it);
    c->noreply = false;
}

/* ---- the rest -------------------------------------------------------------- */

static void process_touch(struct conn *c, struct token *tokens, size_t ntokens)
{
    int32_t e;
    set_noreply_maybe(c, tokens, ntokens);
    if (tokens[1].length > KEY_MAX_LENGTH) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (!safe_strtol(tokens[2].value, &e)) {
        out_string(c, "CLIENT_ERROR invalid exptime argument");
        return;
    }
    STAT_INC(c->stats, cmd_touch);
    if (item_touch(tokens[1].value, tokens[1].length, exptime_to_rel(e))) {
        STAT_INC(c->stats, touch_hits);
        out_string(c, "TOUCHED");
    } else {
        STAT_INC(c->stats, touch_misses);
        out_string(c, "NOT_FOUND");
    }
}

static void process_arithmetic(struct conn *c, struct token *tokens, size_t ntokens, bool incr)
{
    uint64_t delta;
    char buf[24];
    set_noreply_maybe(c, tokens, ntokens);
    if (tokens[1].length > KEY_MAX_LENGTH) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (!safe_strtoull(tokens[2].value, &delta)) {
        out_string(c, "CLIENT_ERROR invalid numeric delta argument");
        return;
    }
    switch (item_delta(tokens[1].value, tokens[1].length, incr, delta, buf, conn_item_refs, c)) {
    case DELTA_OK:
        if (incr)
            STAT_INC(c->stats, incr_hits);
        else
            STAT_INC(c->stats, decr_hits);
        out_string(c, buf);
        break;
    case DELTA_NON_NUMERIC:
        out_string(c, "CLIENT_ERROR cannot increment or decrement non-numeric value");
        break;
    case DELTA_EOM:
        out_string(c, "SERVER_ERROR out of memory");
        break;
    case DELTA_NOT_FOUND:
        if (incr)
            STAT_INC(c->stats, incr_misses);
        else
            STAT_INC(c->stats, decr_misses);
        out_string(c, "NOT_FOUND");
        break;
    }
}

static void process_delete(struct conn *c, struct token *tokens, size_t ntokens)
{
    if (ntokens > 3) {
        bool hold_is_zero = strcmp(tokens[2].value, "0") == 0;
        bool sets_noreply = set_noreply_maybe(c, tokens, ntokens);
        bool valid = (ntokens == 4 && (hold_is_zero || sets_noreply)) ||
                     (ntokens == 5 && hold_is_zero && sets_noreply);
        if (!valid) {
            out_string(c, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]");
            return;
        }
    }
    if (tokens[1].length > KEY_MAX_LENGTH) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    if (item_delete(tokens[1].value, tokens[1].length)) {
        STAT_INC(c->stats, delete_hits);
        out_string(c, "DELETED");
    } else {
        STAT_INC(c->stats, delete_misses);
        out_string(c, "NOT_FOUND");
    }
}

static void process_flush_all(struct conn *c, struct token *tokens, size_t ntokens)
{
    int32_t delay = 0;
    set_noreply_maybe(c, tokens, ntokens);
    STAT_INC(c->stats, cmd_flush);
    if (ntokens != (c->noreply ? 3u : 2u)) {
        if (!safe_strtol(tokens[1].value, &delay)) {
            out_string(c, "CLIENT_ERROR invalid exptime argument");
            return;
        }
    }
    items_flush(delay);
    out_string(c, "OK");
}

static void process_verbosity(struct conn *c, struct token *tokens, size_t ntokens)
{
    uint32_t level;
    set_noreply_maybe(c, tokens, ntokens);
    if (!safe_strtoul(tokens[1].value, &level)) {
        out_string(c, "CLIENT_ERROR bad command line format");
        return;
    }
    kv_settings.verbose = level > 2 ? 2 : (int)level;
    out_string(c, "OK");
}

static void process_stats(struct conn *c, struct token *tokens, size_t ntokens)
{
    if (ntokens == 2) {
        stats_general(c);
    } else if (strcmp(tokens[1].value, "settings") == 0) {
        stats_settings(c);
    } else if (strcmp(tokens[1].value, "slabs") == 0) {
        stats_slabs(c);
    } else if (strcmp(tokens[1].value, "items") == 0) {
        stats_items(c);
    } else if (strcmp(tokens[1].value, "reset") == 0) {
        out_string(c, "RESET");
        return;
    } else {
        out_string(c, "ERROR");
        return;
    }
    conn_out(c, "END\r\n", 5);
}

#define WANT_TOKENS(lo, hi)                                                            \
    do {                                                                               \
        if (ntokens < (lo) || ntokens > (hi)) {                                        \
            out_string(c, "ERROR");                                                    \
            return;                                                                    \
        }                                                                              \
    } while (0)

void proto_process_command(struct conn *c, char *line, size_t len)
{
    struct token tokens[MAX_TOKENS];
    (void)len;
    c->noreply = false;
    size_t ntokens = tokenize_command(line, tokens, MAX_TOKENS);
    if (ntokens < 2 || tokens[0].length < 2) {
        out_string(c, "ERROR");
        return;
    }
    const char *cmd = tokens[0].value;
    if (strcmp(cmd, "get") == 0 || strcmp(cmd, "bget") == 0) {
        WANT_TOKENS(3, MAX_TOKENS);
        process_get(c, tokens, ntokens, false, false);
    } else if (strcmp(cmd, "gets") == 0) {
        WANT_TOKENS(3, MAX_TOKENS);
        process_get(c, tokens, ntokens, true, false);
    } else if (strcmp(cmd, "gat") == 0) {
        WANT_TOKENS(3, MAX_TOKENS);
        process_get(c, tokens, ntokens, false, true);
    } else if (strcmp(cmd, "gats") == 0) {
        WANT_TOKENS(3, MAX_TOKENS);
        process_get(c, tokens, ntokens, true, true);
    } else if (strcmp(cmd, "set") == 0) {
        WANT_TOKENS(6, 7);
        process_update(c, tokens, ntokens, CMD_SET, false);
    } else if (strcmp(cmd, "add") == 0) {
        WANT_TOKENS(6, 7);
        process_update(c, tokens, ntokens, CMD_ADD, false);
    } else if (strcmp(cmd, "replace") == 0) {
        WANT_TOKENS(6, 7);
        process_update(c, tokens, ntokens, CMD_REPLACE, false);
    } else if (strcmp(cmd, "append") == 0) {
        WANT_TOKENS(6, 7);
        process_update(c, tokens, ntokens, CMD_APPEND, false);
    } else if (strcmp(cmd, "prepend") == 0) {
        WANT_TOKENS(6, 7);
        process_update(c, tokens, ntokens, CMD_PREPEND, false);
    } else if (strcmp(cmd, "cas") == 0) {
        WANT_TOKENS(7, 8);
        process_update(c, tokens, ntokens, CMD_CAS, true);
    } else if (strcmp(cmd, "incr") == 0) {
        WANT_TOKENS(4, 5);
        process_arithmetic(c, tokens, ntokens, true);
    } else if (strcmp(cmd, "decr") == 0) {
        WANT_TOKENS(4, 5);
        process_arithmetic(c, tokens, ntokens, false);
    } else if (strcmp(cmd, "delete") == 0) {
        WANT_TOKENS(3, 5);
        process_delete(c, tokens, ntokens);
    } else if (strcmp(cmd, "touch") == 0) {
        WANT_TOKENS(4, 5);
        process_touch(c, tokens, ntokens);
    } else if (strcmp(cmd, "stats") == 0) {
        process_stats(c, tokens, ntokens);
    } else if (strcmp(cmd, "flush_all") == 0) {
        WANT_TOKENS(2, 4);
        process_flush_all(c, tokens, ntokens);
    } else if (strcmp(cmd, "version") == 0) {
        out_string(c, "VERSION " KVCACHE_VERSION);
    } else if (strcmp(cmd, "verbosity") == 0) {
        WANT_TOKENS(3, 4);
        process_verbosity(c, tokens, ntokens);
    } else if (strcmp(cmd, "quit") == 0) {
        c->close_after_write = true;
    } else {
        out_string(c, "ERROR");
    }
}
