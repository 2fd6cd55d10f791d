/* scale: show or change the formation (docs/flynn-api.md §10.3). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "units.h"
#include "xalloc.h"

#define SCALE_TIMEOUT_MS 30000 /* Flynn's DefaultScaleTimeout */


static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static json_t *get_release(struct client *c, const char *app, const char *release_id,
                           struct err **err)
{
    json_t *r = NULL;
    if (release_id && *release_id) {
        cleanup_free char *er = client_escape(release_id);
        cleanup_free char *path = xasprintf("/releases/%s", er);
        client_json(c, "GET", path, NULL, &r, err);
        return r;
    }
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s/release", ea);
    struct err *e = NULL;
    if (client_json(c, "GET", path, NULL, &r, &e) < 0) {
        if (client_is_not_found(e)) {
            err_free(e);
            err_makex(err, ENOENT, "No app release, specify a release with --release");
        } else {
            *err = e;
        }
        return NULL;
    }
    return r;
}

/* GET the formation of a release; NULL without error on a bare 404. */
static int get_formation(struct client *c, const char *app, const char *rid, json_t **out,
                         struct err **err)
{
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *er = client_escape(rid);
    cleanup_free char *path = xasprintf("/apps/%s/formations/%s", ea, er);
    struct err *e = NULL;
    if (client_json(c, "GET", path, NULL, out, &e) < 0) {
        if (client_is_not_found(e)) {
            err_free(e);
            *out = NULL;
            return 0;
        }
        *err = e;
        return -1;
    }
    return 0;
}

static void print_formation(json_t *release, json_t *formation, int skip_zero)
{
    json_t *procs = json_object_get(formation, "processes");
    size_t n;
    const char **types = json_sorted_keys(json_object_get(release, "processes"), &n);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        long long count = json_integer_value(json_object_get(procs, types[i]));
        if (skip_zero && count == 0)
            continue;
        printf("%s%s=%lld", first ? "" : " ", types[i], count);
        first = 0;
    }
    printf("\n");
    free(types);
}

static int show_formations(struct client *c, const char *app, const char *release_id, int all,
                           struct err **err)
{
    json_t *release = get_release(c, app, release_id, err);
    if (!release)
        return -1;
    json_t *releases = NULL;
    int ret = -1;
    if (all) {
        cleanup_free char *ea = client_escape(app);
        cleanup_free char *path = xasprintf("/apps/%s/releases", ea);
        if (client_json(c, "GET", path, NULL, &releases, err) < 0)
            goto out;
    } else {
        releases = json_pack("[O]", release);
    }
    const char *cur = json_string_value(json_object_get(release, "id"));
    size_t i;
    json_t *r;
    json_array_foreach(releases, i, r)
    {
        const char *rid = json_string_value(json_object_get(r, "id"));
        json_t *f = NULL;
        if (get_formation(c, app, rid ? rid : "", &f, err) < 0)
            goto out;
        json_t *procs = json_object_get(f, "processes");
        if (!f || !json_object_size(procs)) {
            json_decref(f);
            continue;
        }
        if (all) {
            if (i > 0)
                printf("\n");
            printf("%s%s\n", rid, cur && rid && !strcmp(cur, rid) ? " (current)" : "");
        }
        print_formation(r, f, all);
        json_decref(f);
    }
    ret = 0;
out:
    json_decref(releases);
    json_decref(release);
    return ret;
}

/* Flynn's version check: "dev" or anything not like vYYYYMMDD.N is new. */
static int version_before(const char *v, const char *min)
{
    if (!v || v[0] != 'v' || strlen(v) < 11)
        return 0;
    return strcmp(v, min) < 0;
}

static void print_job(json_t *job)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    const char *id = json_string_value(json_object_get(job, "id"));
    if (!id || !*id)
        id = json_string_value(json_object_get(job, "uuid"));
    const char *type = json_string_value(json_object_get(job, "type"));
    const char *state = json_string_value(json_object_get(job, "state"));
    printf("%02d:%02d:%02d.%03ld ==> %s %s %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
           (long)(tv.tv_usec / 1000), type ? type : "", id ? id : "", state ? state : "");
    fflush(stdout);
}

/* Waits for the scale request's completion, printing job events. */
static int wait_scale(struct client_stream *s, const char *req_id, const char *release_id,
                      struct err **err)
{
    long long deadline = now_ns() + (long long)SCALE_TIMEOUT_MS * 1000000LL;
    for (;;) {
        long long left = (deadline - now_ns()) / 1000000;
        if (left <= 0)
            return err_makex(err, ETIMEDOUT,
                             "timed out waiting for scale to complete (waited %d seconds)",
                             SCALE_TIMEOUT_MS / 1000);
        json_t *ev = NULL;
        int rc = client_stream_next(s, (int)left, &ev, err);
        if (rc < 0)
            return err_wrap(err, "event stream closed unexpectedly");
        if (rc == 0)
            continue;
        const char *type = json_string_value(json_object_get(ev, "object_type"));
        json_t *data = json_object_get(ev, "data");
        if (type && !strcmp(type, "job")) {
            const char *rel = json_string_value(json_object_get(data, "release"));
            if (rel && !strcmp(rel, release_id))
                print_job(data);
        } else if (type && !strcmp(type, "scale_request")) {
            const char *id = json_string_value(json_object_get(data, "id"));
            const char *state = json_string_value(json_object_get(data, "state"));
            if (id && !strcmp(id, req_id) && state) {
                if (!strcmp(state, "cancelled")) {
                    json_decref(ev);
                    return err_makex(err, ECANCELED, "scale request cancelled");
                }
                if (!strcmp(state, "complete")) {
                    json_decref(ev);
                    return 0;
                }
            }
        }
        json_decref(ev);
    }
}

/* Parses TYPE=COUNT[,KEY=VAL...] arguments into processes and tags. */
static int parse_specs(json_t *release, char **specs, int n, json_t *procs, json_t *tags,
                       struct err **err)
{
    json_t *types = json_object_get(release, "processes");
    cleanup_strbuf struct strbuf invalid = STRBUF_INIT;
    for (int i = 0; i < n; i++) {
        const char *arg = specs[i];
        const char *eq = strchr(arg, '=');
        if (!eq)
            return err_makex(err, EINVAL, "ERROR: scale args must be of the form <typ>=<spec>");
        cleanup_free char *type = xstrndup(arg, (size_t)(eq - arg));
        cleanup_free char *rest = xstrdup(eq + 1);
        char *save = NULL;
        char *count_s = strtok_r(rest, ",", &save);
        char *end = NULL;
        long count = count_s ? strtol(count_s, &end, 10) : 0;
        if (!count_s || !*count_s || *end) {
            cleanup_free char *q = go_quote(arg);
            return err_makex(err, EINVAL, "ERROR: could not parse quantity in %s", q);
        }
        if (count < 0) {
            cleanup_free char *q = go_quote(arg);
            return err_makex(err, EINVAL, "ERROR: process quantities cannot be negative in %s", q);
        }
        if (!json_object_get(types, type)) {
            cleanup_free char *q = go_quote(type);
            strbuf_addf(&invalid, "%s%s", invalid.len ? ", " : "", q);
            continue;
        }
        json_object_set_new(procs, type, json_integer(count));
        if (!strchr(eq + 1, ','))
            continue;
        json_t *t = json_object();
        for (char *kv = strtok_r(NULL, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *e2 = strchr(kv, '=');
            if (!e2) {
                if (*kv)
                    json_object_set_new(t, kv, json_string("true"));
                continue;
            }
            *e2 = '\0';
            json_object_set_new(t, kv, json_string(e2 + 1));
        }
        json_object_set_new(tags, type, t);
    }
    if (invalid.len)
        return err_makex(err, EINVAL, "ERROR: unknown process types: %s", invalid.buf);
    return 0;
}

int cmd_scale(struct cli *cli, int argc, char **argv, struct err **err)
{
    cleanup_free char *ea = NULL;
    cleanup_free char *er = NULL;
    cleanup_free char *path = NULL;
    cleanup_free char *took = NULL;
    static const struct opt_spec specs[] = {
        {'n', "no-wait", 0}, {'r', "release", 1}, {'a', "all", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, -1) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *release = NULL, *status = NULL, *req = NULL, *resp = NULL;
    struct client_stream *s = NULL;
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    int all = opts_has(&o, "all");
    const char *release_id = opts_get(&o, "release", "");
    if (o.npos && all) {
        ret = err_makex(err, EINVAL, "ERROR: Can't use --all when scaling");
        goto out;
    }
    if (*release_id && all) {
        ret = err_makex(err, EINVAL, "ERROR: Can't use --all in combination with --release");
        goto out;
    }
    if (!o.npos) {
        ret = show_formations(c, app, release_id, all, err);
        goto out;
    }
    release = get_release(c, app, release_id, err);
    if (!release)
        goto out;
    const char *rid = json_string_value(json_object_get(release, "id"));
    json_t *procs = json_object(), *tags = json_object();
    req = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:n,s:n}", "id", "", "app", app, "release",
                    rid ? rid : "", "state", "pending", "new_processes", procs, "new_tags", tags,
                    "created_at", "updated_at");
    if (parse_specs(release, o.pos, o.npos, procs, tags, err) < 0)
        goto out;
    if (client_json(c, "GET", "/.well-known/status", NULL, &status, err) < 0)
        goto out;
    const char *version =
        json_string_value(json_object_get(json_object_get(status, "data"), "version"));
    if (version_before(version, "v20170309.0")) {
        ret = err_makex(err, ENOTSUP,
                        "the controller (version %s) is too old for scale requests; use Flynn's "
                        "Go CLI",
                        version);
        goto out;
    }
    int no_wait = opts_has(&o, "no-wait");
    ea = client_escape(app);
    if (!no_wait) {
        cleanup_free char *spath =
            xasprintf("/events?app_id=%s&object_types=job%%2Cscale_request", ea);
        s = client_stream_open(c, spath, err);
        if (!s)
            goto out;
    }
    er = client_escape(rid ? rid : "");
    path = xasprintf("/apps/%s/scale/%s", ea, er);
    if (client_json(c, "PUT", path, req, &resp, err) < 0)
        goto out;
    json_t *newp = json_object_get(resp, "new_processes");
    if (json_is_object(newp)) {
        json_t *oldp = json_object_get(resp, "old_processes");
        size_t n;
        const char **types = json_sorted_keys(json_object_get(release, "processes"), &n);
        printf("scaling ");
        int first = 1;
        for (size_t i = 0; i < n; i++) {
            json_t *cnt = json_object_get(newp, types[i]);
            long long was = json_integer_value(json_object_get(oldp, types[i]));
            if (!cnt || json_integer_value(cnt) == was)
                continue;
            printf("%s%s: %lld=>%lld", first ? "" : ", ", types[i], was, json_integer_value(cnt));
            first = 0;
        }
        printf("\n\n");
        fflush(stdout);
        free(types);
    }
    if (no_wait) {
        ret = 0;
        goto out;
    }
    long long start = now_ns();
    const char *req_id = json_string_value(json_object_get(resp, "id"));
    if (wait_scale(s, req_id ? req_id : "", rid ? rid : "", err) < 0)
        goto out;
    took = units_go_duration(now_ns() - start);
    printf("\nscale completed in %s\n", took);
    ret = 0;
out:
    client_stream_close(s);
    json_decref(resp);
    json_decref(req);
    json_decref(status);
    json_decref(release);
    opts_release(&o);
    return ret;
}
