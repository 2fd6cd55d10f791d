#include "jsonflat.h"

#include <string.h>

#include "hex.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p is just past the opening quote; returns the closing quote or NULL. */
static const char *scan_string(const char *p, const char *end, bool *escaped)
{
    *escaped = false;
    for (;;) {
        const char *q = p;
        while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
            q++;
        if (q >= end || (unsigned char)*q < 0x20)
            return NULL;
        if (*q == '"')
            return q;
        /* backslash: skip the escaped character; \u's digits are checked on decode */
        *escaped = true;
        if (q + 1 >= end)
            return NULL;
        p = q + 2;
    }
}

static const char *scan_number(const char *p, const char *end)
{
    const char *s = p;
    if (p < end && *p == '-')
        p++;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    if (p == digits)
        return NULL;
    if (p < end && *p == '.') {
        const char *f = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == f)
            return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *e = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == e)
            return NULL;
    }
    return p > s ? p : NULL;
}

static bool literal(const char **pp, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - *pp) < n || memcmp(*pp, word, n))
        return false;
    *pp += n;
    return true;
}

int jsonflat_parse(const char *s, size_t len, struct jsonflat_member *out, int max)
{
    const char *p = s, *end = s + len;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return -1;
    int n = 0;
    p = skip_ws(p, end);
    if (p < end && *p == '}')
        return skip_ws(p + 1, end) == end ? 0 : -1;
    for (;;) {
        if (n == max)
            return -1;
        struct jsonflat_member *m = &out[n];
        p = skip_ws(p, end);
        if (p >= end || *p++ != '"')
            return -1;
        bool esc;
        const char *q = scan_string(p, end, &esc);
        if (!q)
            return -1;
        m->key = p;
        m->key_len = (size_t)(q - p);
        p = skip_ws(q + 1, end);
        if (p >= end || *p++ != ':')
            return -1;
        p = skip_ws(p, end);
        if (p >= end)
            return -1;
        m->escaped = false;
        if (*p == '"') {
            q = scan_string(p + 1, end, &m->escaped);
            if (!q)
                return -1;
            m->type = JF_STRING;
            m->val = p + 1;
            m->val_len = (size_t)(q - p - 1);
            p = q + 1;
        } else if (*p == 't' || *p == 'f' || *p == 'n') {
            m->val = p;
            if (literal(&p, end, "true"))
                m->type = JF_TRUE;
            else if (literal(&p, end, "false"))
                m->type = JF_FALSE;
            else if (literal(&p, end, "null"))
                m->type = JF_NULL;
            else
                return -1;
            m->val_len = (size_t)(p - m->val);
        } else {
            q = scan_number(p, end);
            if (!q)
                return -1;
            m->type = JF_NUMBER;
            m->val = p;
            m->val_len = (size_t)(q - p);
            p = q;
        }
        n++;
        p = skip_ws(p, end);
        if (p >= end)
            return -1;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p != '}')
            return -1;
        return skip_ws(p + 1, end) == end ? n : -1;
    }
}

const struct jsonflat_member *jsonflat_get(const struct jsonflat_member *m, int n, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++)
        if (m[i].key_len == kl && !memcmp(m[i].key, key, kl))
            return &m[i];
    return NULL;
}

static long hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

long jsonflat_unescape(const char *s, size_t len, char *out)
{
    const char *p = s, *end = s + len;
    char *o = out;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (!bs) {
            memmove(o, p, (size_t)(end - p));
            o += end - p;
            break;
        }
        memmove(o, p, (size_t)(bs - p));
        o += bs - p;
        p = bs + 1;
        if (p >= end)
            return -1;
        char c = *p++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            long cp = hex4(p, end);
            if (cp < 0)
                return -1;
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2, end) : -1;
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                } else {
                    cp = 0xfffd;
                }
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                cp = 0xfffd;
            }
            o += put_utf8(o, (unsigned long)cp);
            break;
        }
        default: return -1;
        }
    }
    return o - out;
}

static bool digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool jsonflat_time_us(const char *s, size_t len, int64_t *out)
{
    int y, mo, d, h, mi, sec;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec) || mo < 1 ||
        mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    size_t i = 19;
    int64_t us = 0;
    if (i < len && s[i] == '.') {
        i++;
        int nd = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (nd < 6)
                us = us * 10 + (s[i] - '0');
            nd++;
            i++;
        }
        if (!nd)
            return false;
        for (; nd < 6; nd++)
            us *= 10;
    }
    int64_t off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om))
            return false;
        off = (oh * 60 + om) * 60;
        if (s[i] == '-')
            off = -off;
        i += 6;
    } else {
        return false;
    }
    if (i != len)
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    *out = secs * 1000000 + us;
    return true;
}
