/*
 * jsonflat: a fast reader of flat JSON objects, such as every line the
 * log aggregator receives ({"time":"...","stream":"stdout","msg":"..."}, its
 * job headers) and every line `flynn log` reads (Flynn's log messages).
 *
 * jsonflat_parse scans one object whose members are strings, numbers,
 * true, false or null (no nested objects or arrays) and hands back slices
 * into the input: no allocation, no copy. String values are still escaped;
 * jsonflat_unescape decodes one into a buffer at least as long as the
 * slice (decoding never grows a string). Anything else is rejected.
 */
#ifndef LIB_JSONFLAT_H
#define LIB_JSONFLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jsonflat_type { JF_STRING, JF_NUMBER, JF_TRUE, JF_FALSE, JF_NULL };

struct jsonflat_member {
    const char *key; /* escaped, without quotes */
    size_t key_len;
    const char *val; /* strings: escaped, without quotes; others: the literal */
    size_t val_len;
    enum jsonflat_type type;
    bool escaped; /* the string value holds a backslash */
};

/* Parses s[0..len) (surrounding whitespace allowed). Returns the number of
 * members (at most max; more is an error), or -1 when s is not a flat
 * object. */
int jsonflat_parse(const char *s, size_t len, struct jsonflat_member *out, int max);

/* The member named key (plain ASCII, compared with the escaped key), or NULL. */
const struct jsonflat_member *jsonflat_get(const struct jsonflat_member *m, int n, const char *key);

/* Decodes the escaped string s[0..len) into out (room for len bytes);
 * returns the decoded length, or -1 on a bad escape. \u escapes become
 * UTF-8 (surrogate pairs joined; a lone surrogate becomes U+FFFD). */
long jsonflat_unescape(const char *s, size_t len, char *out);

/* Parses an RFC 3339 time ("2021-01-02T03:04:05.123456Z", any fraction,
 * Z or +hh:mm) into microseconds since the epoch; returns false if it is
 * not one. */
bool jsonflat_time_us(const char *s, size_t len, int64_t *out);

#endif
