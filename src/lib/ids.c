#include "ids.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"

static void rnd(void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)buf + got, n - got, 0);
        if (r < 0)
            BUG("getrandom failed");
        got += (size_t)r;
    }
}

void id_uuid(char out[37])
{
    unsigned char b[16];
    rnd(b, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

void id_hex(char *out, size_t n)
{
    unsigned char b[64];
    if (n > sizeof(b))
        n = sizeof(b);
    rnd(b, n);
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void time_rfc3339(const struct timespec *ts, char out[40])
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    long us = (ts->tv_nsec / 1000) % 1000000;
    if (us) {
        char frac[24];
        snprintf(frac, sizeof(frac), "%06ld", us);
        size_t fl = 6;
        while (fl > 0 && frac[fl - 1] == '0')
            frac[--fl] = '\0';
        n += (size_t)snprintf(out + n, 40 - n, ".%s", frac);
    }
    snprintf(out + n, 40 - n, "Z");
}

void time_now_rfc3339(char out[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_rfc3339(&ts, out);
}

double time_parse_rfc3339(const char *t)
{
    struct tm tm = {0};
    const char *rest = t ? strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return -1;
    double v = (double)timegm(&tm);
    if (*rest == '.')
        v += strtod(rest, NULL);
    return v;
}

long long time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int id_is_uuid(const char *s)
{
    static const int groups[] = {8, 4, 4, 4, 12};
    for (size_t g = 0; g < 5; g++) {
        for (int i = 0; i < groups[g]; i++, s++)
            if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
                return 0;
        if (g < 4 && *s == '-')
            s++;
    }
    return *s == '\0';
}
