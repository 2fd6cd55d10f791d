#include "units.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* docker/go-units RAMInBytes (binary) and FromHumanSize (decimal). */
int units_parse_size(const char *s, int binary, long long *out)
{
    const char *p = s;
    while (isdigit((unsigned char)*p))
        p++;
    if (p == s)
        return -1;
    if (*p == '.') { /* one fraction at most, as ParseFloat takes it */
        const char *f = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        if (p == f)
            return -1;
    }
    double v = strtod(s, NULL);
    if (*p == ' ')
        p++;
    double unit = binary ? 1024 : 1000, mult = 1;
    const char *units = "kmgtp";
    if (*p) {
        const char *u = strchr(units, tolower((unsigned char)*p));
        if (u) {
            for (const char *q = units; q <= u; q++)
                mult *= unit;
            p++;
        }
    }
    if (*p == 'i' || *p == 'I')
        p++;
    if (*p == 'b' || *p == 'B')
        p++;
    if (*p)
        return -1;
    *out = (long long)(v * mult);
    return 0;
}

/* Flynn's FormatLimit: byte sizes as "%.4g" + binary unit, else a number. */
char *units_format_limit(const char *type, long long v)
{
    if (strcmp(type, "memory") && strcmp(type, "temp_disk"))
        return xasprintf("%lld", v);
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    double size = (double)v;
    int i = 0;
    while (size >= 1024 && i < 8) {
        size /= 1024;
        i++;
    }
    return xasprintf("%.4g%s", size, units[i]);
}

/* Go's time.Duration String for a non-negative duration. */
char *units_go_duration(long long ns)
{
    if (ns < 1000)
        return xasprintf("%lldns", ns);
    char num[64];
    const char *unit;
    if (ns < 1000000) {
        snprintf(num, sizeof(num), "%.3f", (double)ns / 1e3);
        unit = "µs";
    } else if (ns < 1000000000) {
        snprintf(num, sizeof(num), "%.6f", (double)ns / 1e6);
        unit = "ms";
    } else {
        long long s = ns / 1000000000, frac = ns % 1000000000;
        long long h = s / 3600, m = (s % 3600) / 60;
        char sec[40];
        snprintf(sec, sizeof(sec), "%lld.%09lld", s % 60, frac);
        size_t n = strlen(sec);
        while (sec[n - 1] == '0')
            sec[--n] = '\0';
        if (sec[n - 1] == '.')
            sec[--n] = '\0';
        if (h)
            return xasprintf("%lldh%lldm%ss", h, m, sec);
        if (m)
            return xasprintf("%lldm%ss", m, sec);
        return xasprintf("%ss", sec);
    }
    size_t n = strlen(num);
    while (num[n - 1] == '0')
        num[--n] = '\0';
    if (num[n - 1] == '.')
        num[--n] = '\0';
    return xasprintf("%s%s", num, unit);
}

/* Go's "2006-01-02T15:04:05.000000Z07:00" of an RFC 3339 time: exactly six
 * fraction digits, the zone kept. */
char *units_micro_time(const char *ts)
{
    const char *dot = strchr(ts, '.');
    const char *zone = ts + strcspn(ts, "Zz+-");
    if (zone - ts < 19) /* the '-' of the date is not the zone */
        zone = ts + 19 + strcspn(ts + 19, "Zz+-");
    char frac[7] = "000000";
    if (dot && dot < zone)
        for (int i = 0; i < 6 && dot + 1 + i < zone; i++)
            frac[i] = dot[1 + i];
    size_t base = (size_t)((dot && dot < zone ? dot : zone) - ts);
    const char *z = (*zone == 'z' || *zone == 'Z' || !*zone || !strcmp(zone + 1, "00:00"))
                        ? "Z"
                        : zone;
    return xasprintf("%.*s.%s%s", (int)base, ts, frac, z);
}
