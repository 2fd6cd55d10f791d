/* Helpers shared by the commands: times, JSON maps, deploy, prompts. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xalloc.h"

/* Parses RFC 3339; returns 0 with *secs (UTC) and the fraction digits. */
static int parse_rfc3339(const char *s, time_t *secs, char frac[16], int *off_min)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    frac[0] = '\0';
    if (*p == '.') {
        size_t n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (n < 15)
                frac[n++] = *p;
        frac[n] = '\0';
    }
    *off_min = 0;
    if (*p == '+' || *p == '-') {
        int h = 0, m = 0;
        if (sscanf(p + 1, "%2d:%2d", &h, &m) != 2)
            return -1;
        *off_min = (*p == '-' ? -1 : 1) * (h * 60 + m);
    } else if (*p != 'Z' && *p != 'z') {
        return -1;
    }
    *secs = timegm(&tm) - (time_t)*off_min * 60;
    return 0;
}

/* docker/go-units HumanDuration, as Flynn prints ages. */
static char *human_duration(double secs)
{
    long long s = (long long)secs;
    if (s < 1)
        return xstrdup("Less than a second");
    if (s == 1)
        return xstrdup("1 second");
    if (s < 60)
        return xasprintf("%lld seconds", s);
    long long minutes = (long long)(secs / 60);
    if (minutes == 1)
        return xstrdup("About a minute");
    if (minutes < 60)
        return xasprintf("%lld minutes", minutes);
    long long hours = (long long)(secs / 3600 + 0.5);
    if (hours == 1)
        return xstrdup("About an hour");
    if (hours < 48)
        return xasprintf("%lld hours", hours);
    if (hours < 24 * 7 * 2)
        return xasprintf("%lld days", hours / 24);
    if (hours < 24 * 30 * 2)
        return xasprintf("%lld weeks", hours / 24 / 7);
    if (hours < 24 * 365 * 2)
        return xasprintf("%lld months", hours / 24 / 30);
    return xasprintf("%lld years", (long long)(secs / 3600) / 24 / 365);
}

char *human_time(const char *rfc3339)
{
    time_t t;
    char frac[16];
    int off;
    if (!rfc3339 || !*rfc3339 || parse_rfc3339(rfc3339, &t, frac, &off) < 0)
        return xstrdup("");
    if (t <= -62135596800LL) /* Go's zero time */
        return xstrdup("");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double f = 0;
    if (frac[0]) {
        char buf[24];
        snprintf(buf, sizeof(buf), "0.%s", frac);
        f = strtod(buf, NULL);
    }
    double d = (double)(now.tv_sec - t) + (double)now.tv_nsec / 1e9 - f;
    cleanup_free char *h = human_duration(d);
    return xasprintf("%s ago", h);
}

char *go_time_string(const char *rfc3339)
{
    time_t t;
    char frac[16];
    int off;
    if (!rfc3339 || parse_rfc3339(rfc3339, &t, frac, &off) < 0)
        return xstrdup("0001-01-01 00:00:00 +0000 UTC");
    size_t n = strlen(frac);
    while (n && frac[n - 1] == '0')
        frac[--n] = '\0';
    time_t local = t + (time_t)off * 60;
    struct tm tm;
    gmtime_r(&local, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    int a = off < 0 ? -off : off;
    char zone[32];
    if (off == 0)
        snprintf(zone, sizeof(zone), "+0000 UTC");
    else
        snprintf(zone, sizeof(zone), "%c%02d%02d %c%02d%02d", off < 0 ? '-' : '+', a / 60, a % 60,
                 off < 0 ? '-' : '+', a / 60, a % 60);
    return xasprintf("%s%s%s %s", date, n ? "." : "", frac, zone);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **json_sorted_keys(json_t *obj, size_t *n)
{
    *n = json_is_object(obj) ? json_object_size(obj) : 0;
    const char **keys = xcalloc(*n + 1, sizeof(char *));
    if (!*n)
        return keys;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) keys[i++] = k;
    qsort(keys, *n, sizeof(char *), cmp_str);
    return keys;
}

int deploy_release(struct client *c, const char *app, const char *release_id, struct err **err)
{
    cleanup_free char *eapp = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s/deploy", eapp);
    json_t *body = json_pack("{s:s}", "id", release_id);
    json_t *d = NULL;
    int rc = client_json(c, "POST", path, body, &d, err);
    json_decref(body);
    if (rc < 0)
        return -1;
    if (json_string_value(json_object_get(d, "finished_at"))) {
        json_decref(d);
        return 0; /* the first deploy finishes at once */
    }
    const char *dapp = json_string_value(json_object_get(d, "app"));
    const char *did = json_string_value(json_object_get(d, "id"));
    cleanup_free char *qa = client_escape(dapp ? dapp : app);
    cleanup_free char *qi = client_escape(did ? did : "");
    cleanup_free char *spath = xasprintf(
        "/events?app_id=%s&object_id=%s&object_types=deployment&past=true", qa, qi);
    json_decref(d);
    struct client_stream *s = client_stream_open(c, spath, err);
    if (!s)
        return -1;
    rc = -1;
    for (;;) {
        json_t *ev = NULL;
        if (client_stream_next(s, -1, &ev, err) < 0) {
            err_wrap(err, "unexpected close of deployment event stream");
            break;
        }
        json_t *data = json_object_get(ev, "data");
        const char *status = json_string_value(json_object_get(data, "status"));
        if (status && !strcmp(status, "complete")) {
            json_decref(ev);
            rc = 0;
            break;
        }
        if (status && !strcmp(status, "failed")) {
            const char *e = json_string_value(json_object_get(data, "error"));
            err_makex(err, EIO, "%s", e && *e ? e : "deployment failed");
            json_decref(ev);
            break;
        }
        json_decref(ev);
    }
    client_stream_close(s);
    return rc;
}

int prompt_yes_no(const char *msg)
{
    printf("%s (yes/no): ", msg);
    fflush(stdout);
    char line[256];
    for (;;) {
        if (!fgets(line, sizeof(line), stdin))
            return 0;
        line[strcspn(line, "\r\n")] = '\0';
        if (!strcmp(line, "y") || !strcmp(line, "yes"))
            return 1;
        if (!strcmp(line, "n") || !strcmp(line, "no"))
            return 0;
        printf("Please type 'yes' or 'no': ");
        fflush(stdout);
    }
}
