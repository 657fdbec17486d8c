/*
 * magpool_stats_dump_json (issue 15, item 5: dumps carry where the memory
 * is): one JSON object, every live cache with every field of struct
 * magpool_stats under its own name, names escaped; values as
 * magpool_cache_stats reports them at quiescence.  The document is checked
 * with a small strict parser (objects, arrays, strings, unsigned numbers:
 * everything the dump may contain).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "magpool/magpool.h"
#include "tests/check.h"

static char *dump(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f == NULL)
        return NULL;
    CHECK(magpool_stats_dump_json(f) == 0);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    CHECK(fread(s, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    return s;
}

/* ---- a strict JSON subset parser: returns the end, or NULL on an error --- */
static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *value(const char *p, int depth);

static const char *string(const char *p)
{
    if (*p != '"')
        return NULL;
    for (p++; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i]))
                        return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || *p == 0) {
                return NULL;
            }
        }
    }
    return p + 1;
}

static const char *value(const char *p, int depth)
{
    p = ws(p);
    if (depth > 8)
        return NULL;
    if (*p == '"')
        return string(p);
    if (isdigit((unsigned char)*p)) {
        if (*p == '0' && isdigit((unsigned char)p[1]))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
        return p;
    }
    char close = *p == '{' ? '}' : *p == '[' ? ']' : 0;
    if (close == 0)
        return NULL;
    p = ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (close == '}') {
            p = string(ws(p));
            if (p == NULL || *(p = ws(p)) != ':')
                return NULL;
            p++;
        }
        p = value(p, depth + 1);
        if (p == NULL)
            return NULL;
        p = ws(p);
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return NULL;
        p++;
    }
}

static unsigned long long field(const char *obj, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\": ", name);
    const char *at = strstr(obj, key);
    CHECK_MSG(at != NULL, "no field %s", name);
    return at ? strtoull(at + strlen(key), NULL, 10) : ~0ull;
}

int main(void)
{
    setenv("MAGPOOL_REAPER", "0", 1);
    char *s = dump();
    CHECK(s != NULL && strcmp(s, "{\"caches\": []}\n") == 0); /* no cache yet */
    free(s);

    struct magpool_config a = { .name = "json \"quoted\" \\ back\tslash", .size = 100 };
    struct magpool_config b = { .name = "json-b", .size = 24 };
    magpool_cache_t *ca = magpool_cache_create(&a), *cb = magpool_cache_create(&b);
    CHECK(ca != NULL && cb != NULL);
    void *keep[7];
    for (int i = 0; i < 7; i++)
        keep[i] = magpool_alloc(ca);
    magpool_free(cb, magpool_alloc(cb));

    s = dump();
    CHECK(s != NULL);
    if (s != NULL) {
        const char *end = value(s, 0);
        CHECK_MSG(end != NULL && strcmp(end, "\n") == 0, "not one JSON value: %s", s);
        const char *oa = strstr(s, "{\"name\": \"json \\\"quoted\\\" \\\\ back\\u0009slash\"");
        const char *ob = strstr(s, "{\"name\": \"json-b\"");
        CHECK_MSG(oa != NULL && ob != NULL, "%s", s);
        if (oa != NULL && ob != NULL) {
            struct magpool_stats st;
            CHECK(magpool_cache_stats(ca, &st) == 0);
            CHECK(field(oa, "in_use") == 7 && st.in_use == 7);
            CHECK(field(oa, "object_size") == 100);
            CHECK(field(oa, "stride") == st.stride);
            CHECK(field(oa, "constructed") == st.constructed);
            CHECK(field(oa, "threads_bytes") == st.threads_bytes);
            CHECK(field(oa, "threads_idle_bytes") == 0);
            CHECK(field(oa, "idle_asked") == st.idle_asked); /* the last field */
            CHECK(field(ob, "in_use") == 0 && field(ob, "allocs") == 1 && field(ob, "frees") == 1);
        }
    }
    free(s);
    for (int i = 0; i < 7; i++)
        magpool_free(ca, keep[i]);
    CHECK(magpool_cache_destroy(ca) == 0);
    CHECK(magpool_cache_destroy(cb) == 0);
    s = dump();
    CHECK(s != NULL && strcmp(s, "{\"caches\": []}\n") == 0);
    free(s);
    CHECK(magpool_stats_dump_json(NULL) == 0); /* stdout */
    return check_done();
}
