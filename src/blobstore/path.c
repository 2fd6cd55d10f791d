#include "path.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hex.h"
#include "xalloc.h"

/* Length of the UTF-8 sequence at p[0..n), or 0 when it is not one
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

/* Checks the decoded path d[0..n) (leading '/' included). */
static int check(const unsigned char *d, size_t n, const char **why)
{
    if (n > PATH_MAX_BLOB)
        return fail(why, "path longer than 1024 bytes");
    if (n < 2 || d[0] != '/')
        return fail(why, "empty path");
    size_t seg = 1; /* start of the current segment */
    for (size_t i = 1; i <= n; i++) {
        if (i == n || d[i] == '/') {
            size_t len = i - seg;
            if (len == 0)
                return fail(why, "empty path segment");
            if (len > 255)
                return fail(why, "path segment longer than 255 bytes");
            if (d[seg] == '.' && (len == 1 || (len == 2 && d[seg + 1] == '.')))
                return fail(why, "'.' or '..' path segment");
            seg = i + 1;
            continue;
        }
        if (d[i] < 0x20 || d[i] == 0x7f)
            return fail(why, "control character in path");
        if (d[i] >= 0x80) {
            size_t l = utf8_len(d + i, n - i);
            if (!l)
                return fail(why, "path is not valid UTF-8");
            i += l - 1;
        }
    }
    return 0;
}

int path_parse(const char *target, size_t n, char **out, const char **why)
{
    const char *end = target + n;
    for (const char *p = target; p < end; p++)
        if (*p == '?' || *p == '#') {
            end = p;
            break;
        }
    n = (size_t)(end - target);
    if (n > 3 * PATH_MAX_BLOB) /* cannot decode to 1024 bytes or fewer */
        return fail(why, "path longer than 1024 bytes");
    cleanup_free unsigned char *d = xmalloc(n + 1);
    size_t dn = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_digit((unsigned char)target[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit((unsigned char)target[i + 2]) : -1;
            if (lo < 0)
                return fail(why, "bad percent-escape in path");
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        d[dn++] = c;
    }
    d[dn] = '\0';
    if (check(d, dn, why) < 0)
        return -1;
    *out = xstrdup((char *)d + 1);
    return 0;
}
