/* release, deployment: release history, rollback and deploy settings. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "tabw.h"
#include "xalloc.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int release_list(struct client *c, const char *app, int quiet, struct err **err)
{
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s/releases", ea);
    json_t *list = NULL;
    if (client_json(c, "GET", path, NULL, &list, err) < 0)
        return -1;
    struct tabw w = TABW_INIT;
    if (!quiet)
        tabw_addf(&w, "ID\tCreated\n");
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        if (quiet) {
            printf("%s\n", jstr(r, "id"));
            continue;
        }
        cleanup_free char *h = human_time(jstr(r, "created_at"));
        tabw_addf(&w, "%s\t%s\n", jstr(r, "id"), h);
    }
    tabw_flush(&w);
    json_decref(list);
    return 0;
}

static json_t *fetch_release(struct client *c, const char *app, const char *id, struct err **err)
{
    json_t *rel = NULL;
    cleanup_free char *path = NULL;
    if (id) {
        cleanup_free char *ei = client_escape(id);
        path = xasprintf("/releases/%s", ei);
    } else {
        cleanup_free char *ea = client_escape(app);
        path = xasprintf("/apps/%s/release", ea);
    }
    if (client_json(c, "GET", path, NULL, &rel, err) < 0)
        return NULL;
    return rel;
}

static int release_show(struct client *c, const char *app, const char *id, int as_json,
                        struct err **err)
{
    cleanup_free char *ct = NULL;
    json_t *rel = fetch_release(c, app, id, err);
    if (!rel)
        return -1;
    int ret = -1;
    if (as_json) {
        char *s = json_dumps(rel, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        ret = 0;
        goto out;
    }
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "ID:\t%s\n", jstr(rel, "id"));
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(rel, "artifacts"), i, a)
    {
        cleanup_free char *ei = client_escape(json_string_value(a) ? json_string_value(a) : "");
        cleanup_free char *path = xasprintf("/artifacts/%s", ei);
        json_t *art = NULL;
        if (client_json(c, "GET", path, NULL, &art, err) < 0) {
            strbuf_release(&w.text);
            goto out;
        }
        tabw_addf(&w, "Artifact[%zu]:\t%s+%s\n", i, jstr(art, "type"), jstr(art, "uri"));
        json_decref(art);
    }
    size_t n;
    const char **keys = json_sorted_keys(json_object_get(rel, "processes"), &n);
    tabw_addf(&w, "Process Types:\t");
    for (size_t k = 0; k < n; k++)
        tabw_addf(&w, "%s%s", k ? ", " : "", keys[k]);
    tabw_addf(&w, "\n");
    free(keys);
    const char *created = json_string_value(json_object_get(rel, "created_at"));
    ct = created ? go_time_string(created) : xstrdup("<nil>");
    tabw_addf(&w, "Created At:\t%s\n", ct);
    static const char *const maps[][2] = {{"env", "ENV"}, {"meta", "META"}};
    for (size_t m = 0; m < 2; m++) {
        json_t *obj = json_object_get(rel, maps[m][0]);
        keys = json_sorted_keys(obj, &n);
        for (size_t k = 0; k < n; k++)
            tabw_addf(&w, "%s[%s]\t%s\n", maps[m][1], keys[k], jstr(obj, keys[k]));
        free(keys);
    }
    tabw_flush(&w);
    ret = 0;
out:
    json_decref(rel);
    return ret;
}

/* Flynn's merge of an update file into a release (release update). */
static void merge_release(json_t *rel, json_t *upd)
{
    static const char *const maps[] = {"env", "meta"};
    for (size_t m = 0; m < 2; m++) {
        json_t *u = json_object_get(upd, maps[m]);
        if (!json_object_size(u))
            continue;
        json_t *d = json_object_get(rel, maps[m]);
        if (!json_is_object(d)) {
            d = json_object();
            json_object_set_new(rel, maps[m], d);
        }
        json_object_update(d, u);
    }
    json_t *up = json_object_get(upd, "processes");
    if (!json_object_size(up))
        return;
    json_t *procs = json_object_get(rel, "processes");
    if (!json_is_object(procs)) {
        procs = json_object();
        json_object_set_new(rel, "processes", procs);
    }
    const char *k;
    json_t *pu;
    json_object_foreach(up, k, pu)
    {
        json_t *pr = json_object_get(procs, k);
        if (!pr) {
            json_object_set(procs, k, pu);
            continue;
        }
        const char *v;
        json_t *x;
        json_object_foreach(pu, v, x)
        {
            if (!strcmp(v, "env") || !strcmp(v, "resources")) {
                json_t *d = json_object_get(pr, v);
                if (!json_is_object(d)) {
                    d = json_object();
                    json_object_set_new(pr, v, d);
                }
                json_object_update(d, x);
            } else if (json_is_array(x) ? json_array_size(x) > 0
                                        : (json_is_true(x) || (json_is_string(x) &&
                                                               *json_string_value(x)))) {
                /* non-empty lists, true flags and strings override */
                json_object_set(pr, v, x);
            }
        }
    }
}

static int release_update(struct client *c, const char *app, const char *file, const char *id,
                          int clean, struct err **err)
{
    cleanup_free char *text = NULL;
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *apath = xasprintf("/apps/%s", ea);
    json_t *japp = NULL, *rel = NULL, *upd = NULL, *created = NULL;
    int ret = -1;
    if (client_json(c, "GET", apath, NULL, &japp, err) < 0)
        goto out;
    rel = fetch_release(c, jstr(japp, "id"), id, err);
    if (!rel)
        goto out;
    text = fs_read_file(file, NULL, err);
    if (!text)
        goto out;
    json_error_t je;
    upd = json_loads(text, 0, &je);
    if (!json_is_object(upd)) {
        ret = err_makex(err, EINVAL, "%s: %s", file, upd ? "not a JSON object" : je.text);
        goto out;
    }
    if (clean) {
        json_object_set(upd, "artifacts", json_object_get(rel, "artifacts"));
        json_decref(rel);
        rel = json_incref(upd);
    } else {
        merge_release(rel, upd);
    }
    json_object_del(rel, "id");
    json_object_set_new(rel, "app_id", json_string(jstr(japp, "id")));
    if (client_json(c, "POST", "/releases", rel, &created, err) < 0)
        goto out;
    if (deploy_release(c, jstr(japp, "id"), jstr(created, "id"), err) < 0)
        goto out;
    fprintf(stderr, "Created release %s.\n", jstr(created, "id"));
    ret = 0;
out:
    json_decref(created);
    json_decref(upd);
    json_decref(rel);
    json_decref(japp);
    return ret;
}

static int release_delete(struct client *c, const char *app, const char *id, int yes,
                          struct err **err)
{
    if (!yes) {
        cleanup_free char *q = go_quote(id);
        cleanup_free char *msg = xasprintf("Are you sure you want to delete release %s?", q);
        if (!prompt_yes_no(msg))
            return 0;
    }
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *ei = client_escape(id);
    cleanup_free char *spath =
        xasprintf("/events?app_id=%s&object_id=%s&object_types=release_deletion", ea, ei);
    struct client_stream *s = client_stream_open(c, spath, err);
    if (!s)
        return -1;
    int ret = -1;
    json_t *ev = NULL;
    cleanup_free char *path = xasprintf("/apps/%s/releases/%s", ea, ei);
    if (client_json(c, "DELETE", path, NULL, NULL, err) < 0)
        goto out;
    int rc = client_stream_next(s, 60000, &ev, err);
    if (rc == 0)
        err_makex(err, ETIMEDOUT, "timed out waiting for release deletion");
    if (rc <= 0)
        goto out;
    json_t *data = json_object_get(ev, "data");
    if (*jstr(data, "error")) {
        err_makex(err, EIO, "%s", jstr(data, "error"));
        goto out;
    }
    json_t *rd = json_object_get(data, "release_deletion");
    size_t remaining = json_array_size(json_object_get(rd, "remaining_apps"));
    if (remaining)
        fprintf(stderr,
                "Release scaled down for app but not fully deleted (still associated with %zu "
                "other apps)\n",
                remaining);
    else
        fprintf(stderr, "Deleted release %s (deleted %zu files)\n", id,
                json_array_size(json_object_get(rd, "deleted_files")));
    ret = 0;
out:
    json_decref(ev);
    client_stream_close(s);
    return ret;
}

static int release_rollback(struct client *c, const char *app, const char *id, int yes,
                            struct err **err)
{
    json_t *cur = fetch_release(c, app, NULL, err), *list = NULL;
    if (!cur)
        return -1;
    int ret = -1;
    cleanup_free char *target = NULL;
    if (!id) {
        cleanup_free char *ea = client_escape(app);
        cleanup_free char *path = xasprintf("/apps/%s/releases", ea);
        if (client_json(c, "GET", path, NULL, &list, err) < 0)
            goto out;
        if (json_array_size(list) < 2) {
            err_makex(err, EINVAL, "Not enough releases to perform a rollback.");
            goto out;
        }
        target = xstrdup(jstr(json_array_get(list, 1), "id"));
    } else if (!strcmp(id, jstr(cur, "id"))) {
        err_makex(err, EINVAL, "Release id given is the current release.");
        goto out;
    } else {
        target = xstrdup(id);
    }
    if (!yes) {
        cleanup_free char *q = go_quote(target);
        cleanup_free char *msg = xasprintf("Are you sure you want to rollback to release %s?", q);
        if (!prompt_yes_no(msg)) {
            ret = 0;
            goto out;
        }
    }
    fprintf(stderr, "Rolling back to release %s from %s.\n", target, jstr(cur, "id"));
    if (deploy_release(c, app, target, err) < 0)
        goto out;
    fprintf(stderr, "Successfully rolled back to release %s.\n", target);
    ret = 0;
out:
    json_decref(list);
    json_decref(cur);
    return ret;
}

/* Deprecated upstream (legacy Docker clusters), kept for parity. */
static int release_add(struct client *c, const char *app, const char *uri, const char *file,
                       struct err **err)
{
    fprintf(stderr, "WARN: The 'release add' command is deprecated and only works on legacy "
                    "clusters, use 'docker push' to push Docker images\n");
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *apath = xasprintf("/apps/%s", ea);
    cleanup_free char *text = NULL;
    json_t *japp = NULL, *rel = NULL, *art = NULL, *created = NULL, *abody = NULL;
    int ret = -1;
    if (client_json(c, "GET", apath, NULL, &japp, err) < 0)
        goto out;
    if (file && *file) {
        text = fs_read_file(file, NULL, err);
        if (!text)
            goto out;
        json_error_t je;
        rel = json_loads(text, 0, &je);
        if (!json_is_object(rel)) {
            err_makex(err, EINVAL, "%s: %s", file, rel ? "not a JSON object" : je.text);
            goto out;
        }
    } else {
        rel = json_object();
    }
    abody = json_pack("{s:s,s:s}", "type", "docker", "uri", uri);
    if (client_json(c, "POST", "/artifacts", abody, &art, err) < 0)
        goto out;
    json_object_set_new(rel, "artifacts", json_pack("[s]", jstr(art, "id")));
    json_object_set_new(rel, "app_id", json_string(jstr(japp, "id")));
    if (client_json(c, "POST", "/releases", rel, &created, err) < 0)
        goto out;
    if (deploy_release(c, jstr(japp, "id"), jstr(created, "id"), err) < 0)
        goto out;
    fprintf(stderr, "Created release %s.\n", jstr(created, "id"));
    ret = 0;
out:
    json_decref(abody);
    json_decref(created);
    json_decref(art);
    json_decref(rel);
    json_decref(japp);
    return ret;
}

int cmd_release(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {
        {'q', "quiet", 0}, {'t', NULL, 1},   {'f', "file", 1},
        {0, "json", 0},    {0, "clean", 0}, {'y', "yes", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 3) < 0)
        return CLI_USAGE;
    int ret = -1;
    const char *sub = o.npos ? o.pos[0] : NULL;
    int ok = !sub || (!strcmp(sub, "show") && o.npos <= 2) ||
             (!strcmp(sub, "update") && (o.npos == 2 || o.npos == 3)) ||
             (!strcmp(sub, "delete") && o.npos == 2) ||
             (!strcmp(sub, "rollback") && o.npos <= 2) || (!strcmp(sub, "add") && o.npos == 2);
    if (!ok) {
        ret = cli_usage(cli);
        goto out;
    }
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    const char *arg1 = o.npos > 1 ? o.pos[1] : NULL;
    if (!sub)
        ret = release_list(c, app, opts_has(&o, "quiet"), err);
    else if (!strcmp(sub, "show"))
        ret = release_show(c, app, arg1, opts_has(&o, "json"), err);
    else if (!strcmp(sub, "update"))
        ret = release_update(c, app, arg1, o.npos > 2 ? o.pos[2] : NULL, opts_has(&o, "clean"),
                             err);
    else if (!strcmp(sub, "delete"))
        ret = release_delete(c, app, arg1, opts_has(&o, "yes"), err);
    else if (!strcmp(sub, "rollback"))
        ret = release_rollback(c, app, arg1, opts_has(&o, "yes"), err);
    else if (strcmp(opts_get(&o, "t", "docker"), "docker"))
        ret = err_makex(err, EINVAL, "Release type %s not supported.", opts_get(&o, "t", ""));
    else
        ret = release_add(c, app, arg1, opts_get(&o, "file", NULL), err);
out:
    opts_release(&o);
    return ret;
}

static int update_app(struct client *c, const char *app, json_t *body, struct err **err)
{
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s", ea);
    json_t *out = NULL;
    int rc = client_json(c, "POST", path, body, &out, err);
    json_decref(out);
    return rc;
}

static int parse_int(const char *what, const char *s, long *out, struct err **err)
{
    char *end;
    errno = 0;
    *out = strtol(s, &end, 10);
    if (!*s || *end || errno) {
        cleanup_free char *q = go_quote(s);
        return err_makex(err, EINVAL, "error parsing %s %s: strconv.Atoi: parsing %s: invalid syntax",
                         what, q, q);
    }
    return 0;
}

int cmd_deployment(struct cli *cli, int argc, char **argv, struct err **err)
{
    cleanup_free char *ea = NULL;
    cleanup_free char *apath = NULL;
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 0, 2) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *japp = NULL, *list = NULL;
    const char *sub = o.npos ? o.pos[0] : NULL;
    if ((sub && strcmp(sub, "timeout") && strcmp(sub, "batch-size")) || (!sub && o.npos)) {
        ret = cli_usage(cli);
        goto out;
    }
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    ea = client_escape(app);
    if (!sub) {
        cleanup_free char *path = xasprintf("/apps/%s/deployments", ea);
        if (client_json(c, "GET", path, NULL, &list, err) < 0)
            goto out;
        struct tabw w = TABW_INIT;
        tabw_addf(&w, "ID\tSTATUS\tCREATED\tFINISHED\n");
        size_t i;
        json_t *d;
        json_array_foreach(list, i, d)
        {
            cleanup_free char *cr = human_time(jstr(d, "created_at"));
            cleanup_free char *fi = human_time(jstr(d, "finished_at"));
            tabw_addf(&w, "%s\t%s\t%s\t%s\n", jstr(d, "id"), jstr(d, "status"), cr, fi);
        }
        tabw_flush(&w);
        ret = 0;
        goto out;
    }
    int timeout = !strcmp(sub, "timeout");
    apath = xasprintf("/apps/%s", ea);
    if (o.npos == 1) {
        if (client_json(c, "GET", apath, NULL, &japp, err) < 0)
            goto out;
        if (timeout) {
            printf("%lld\n", (long long)json_integer_value(json_object_get(japp, "deploy_timeout")));
        } else {
            const char *bs = jstr(json_object_get(japp, "meta"), "flynn-deploy-batch-size");
            char *end;
            long v = strtol(bs, &end, 10);
            if (!*bs || *end)
                printf("not set\n");
            else
                printf("%ld\n", v);
        }
        ret = 0;
        goto out;
    }
    long v;
    if (parse_int(timeout ? "timeout" : "batch-size", o.pos[1], &v, err) < 0)
        goto out;
    json_t *body;
    if (timeout) {
        body = json_pack("{s:s,s:n,s:I}", "id", app, "meta", "deploy_timeout", (json_int_t)v);
    } else {
        /* Flynn sends a meta with only this key (the server replaces the
         * whole map); send the app's meta with the key set, so the other
         * keys survive on any server. */
        if (client_json(c, "GET", apath, NULL, &japp, err) < 0)
            goto out;
        json_t *meta = json_deep_copy(json_object_get(japp, "meta"));
        if (!json_is_object(meta)) {
            json_decref(meta);
            meta = json_object();
        }
        json_object_set_new(meta, "flynn-deploy-batch-size", json_sprintf("%ld", v));
        body = json_pack("{s:s,s:o}", "id", app, "meta", meta);
    }
    ret = update_app(c, app, body, err);
    json_decref(body);
out:
    json_decref(list);
    json_decref(japp);
    opts_release(&o);
    return ret;
}
