/* env, limit: release configuration changes, each a new release + deploy. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tabw.h"
#include "units.h"
#include "units.h"
#include "xalloc.h"

/* GET /apps/APP/release; *rel NULL without error on a bare 404. */
static int current_release(struct client *c, const char *app, json_t **rel, struct err **err)
{
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s/release", ea);
    struct err *e = NULL;
    *rel = NULL;
    if (client_json(c, "GET", path, NULL, rel, &e) < 0) {
        if (client_is_not_found(e)) {
            err_free(e);
            return 0;
        }
        *err = e;
        return -1;
    }
    return 0;
}

/* The app (GET /apps/APP) and its current release, or an empty release. */
static int app_and_release(struct client *c, const char *app, json_t **japp, json_t **rel,
                           struct err **err)
{
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s", ea);
    if (client_json(c, "GET", path, NULL, japp, err) < 0)
        return -1;
    const char *id = json_string_value(json_object_get(*japp, "id"));
    if (current_release(c, id ? id : app, rel, err) < 0)
        return -1;
    return 0;
}

/* POST /releases with the release (id cleared, app_id set), then deploy
 * it; *new_id gets the new release ID (caller frees). */
static int create_and_deploy(struct client *c, json_t *japp, json_t *rel, char **new_id,
                             struct err **err)
{
    const char *app_id = json_string_value(json_object_get(japp, "id"));
    json_object_del(rel, "id");
    json_object_set_new(rel, "app_id", json_string(app_id ? app_id : ""));
    json_t *created = NULL;
    if (client_json(c, "POST", "/releases", rel, &created, err) < 0)
        return -1;
    const char *rid = json_string_value(json_object_get(created, "id"));
    *new_id = xstrdup(rid ? rid : "");
    json_decref(created);
    return deploy_release(c, app_id ? app_id : "", *new_id, err);
}

static json_t *ensure_object(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(parent, key, o);
    }
    return o;
}

int env_update(struct cli *cli, const char *proc, char *const *names, char *const *values, int n,
               char **new_id, struct err **err)
{
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        return -1;
    json_t *japp = NULL, *rel = NULL;
    int ret = -1;
    *new_id = NULL;
    if (app_and_release(c, app, &japp, &rel, err) < 0)
        goto out;
    if (!rel) {
        rel = json_object();
        if (proc)
            json_object_set_new(ensure_object(rel, "processes"), proc, json_object());
    }
    json_t *dest;
    if (proc) {
        json_t *p = json_object_get(json_object_get(rel, "processes"), proc);
        if (!p) {
            cleanup_free char *q = go_quote(proc);
            const char *rid = json_string_value(json_object_get(rel, "id"));
            ret = err_makex(err, ENOENT, "process %s in release %s not found", q, rid ? rid : "");
            goto out;
        }
        dest = ensure_object(p, "env");
    } else {
        dest = ensure_object(rel, "env");
    }
    for (int i = 0; i < n; i++) {
        if (values)
            json_object_set_new(dest, names[i], json_string(values[i]));
        else
            json_object_del(dest, names[i]);
    }
    if (create_and_deploy(c, japp, rel, new_id, err) < 0)
        goto out;
    ret = 0;
out:
    json_decref(japp);
    json_decref(rel);
    return ret;
}

/* names[i] set to values[i], or removed when values is NULL. */
static int set_env(struct cli *cli, const char *proc, char **names, char **values, int n,
                   struct err **err)
{
    cleanup_free char *id = NULL;
    if (env_update(cli, proc, names, values, n, &id, err) < 0)
        return -1;
    fprintf(stderr, "Created release %s.\n", id);
    return 0;
}

static int env_show(struct cli *cli, const char *proc, struct err **err)
{
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    json_t *rel = NULL;
    if (!c || current_release(c, app, &rel, err) < 0)
        return -1;
    if (!rel)
        return 0;
    json_t *env = json_deep_copy(json_object_get(rel, "env"));
    if (!json_is_object(env)) {
        json_decref(env);
        env = json_object();
    }
    if (proc)
        json_object_update(env, json_object_get(
                                    json_object_get(json_object_get(rel, "processes"), proc),
                                    "env"));
    size_t n;
    const char **keys = json_sorted_keys(env, &n);
    for (size_t i = 0; i < n; i++)
        printf("%s=%s\n", keys[i], json_string_value(json_object_get(env, keys[i])));
    free(keys);
    json_decref(env);
    json_decref(rel);
    return 0;
}

static int env_get(struct cli *cli, const char *proc, const char *name, struct err **err)
{
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    json_t *rel = NULL;
    if (!c || current_release(c, app, &rel, err) < 0)
        return -1;
    if (!rel)
        return err_makex(err, ENOENT, "no app release found");
    int ret = -1;
    const char *rid = json_string_value(json_object_get(rel, "id"));
    json_t *p = json_object_get(json_object_get(rel, "processes"), proc ? proc : "");
    if (proc && !p) {
        cleanup_free char *q = go_quote(proc);
        ret = err_makex(err, ENOENT, "process type %s not found in release %s", q, rid ? rid : "");
        goto out;
    }
    const char *v = json_string_value(json_object_get(json_object_get(p, "env"), name));
    if (!v)
        v = json_string_value(json_object_get(json_object_get(rel, "env"), name));
    if (!v) {
        cleanup_free char *qn = go_quote(name);
        cleanup_free char *qr = go_quote(rid ? rid : "");
        ret = err_makex(err, ENOENT, "var %s not found in release %s", qn, qr);
        goto out;
    }
    printf("%s\n", v);
    ret = 0;
out:
    json_decref(rel);
    return ret;
}

int cmd_env(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {{'t', "process-type", 1}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, -1) < 0)
        return CLI_USAGE;
    const char *proc = opts_get(&o, "process-type", NULL);
    if (proc && !*proc)
        proc = NULL;
    const char *sub = o.npos ? o.pos[0] : NULL;
    int ret;
    if (!sub) {
        ret = env_show(cli, proc, err);
    } else if (!strcmp(sub, "get")) {
        ret = o.npos == 2 ? env_get(cli, proc, o.pos[1], err) : cli_usage(cli);
    } else if (!strcmp(sub, "set") && o.npos >= 2) {
        int n = o.npos - 1;
        char **names = xcalloc((size_t)n, sizeof(char *)), **vals = xcalloc((size_t)n, sizeof(char *));
        ret = 0;
        for (int i = 0; i < n && ret == 0; i++) {
            char *eq = strchr(o.pos[i + 1], '=');
            if (!eq) {
                cleanup_free char *q = go_quote(o.pos[i + 1]);
                ret = err_makex(err, EINVAL, "invalid var format: %s", q);
                break;
            }
            names[i] = xstrndup(o.pos[i + 1], (size_t)(eq - o.pos[i + 1]));
            vals[i] = xstrdup(eq + 1);
        }
        if (ret == 0)
            ret = set_env(cli, proc, names, vals, n, err);
        for (int i = 0; i < n; i++) {
            free(names[i]);
            free(vals[i]);
        }
        free(names);
        free(vals);
    } else if (!strcmp(sub, "unset") && o.npos >= 2) {
        ret = set_env(cli, proc, o.pos + 1, NULL, o.npos - 1, err);
    } else {
        ret = cli_usage(cli);
    }
    opts_release(&o);
    return ret;
}

/* ---- limit ---- */

static const char *const limit_types[] = {"memory", "cpu", "temp_disk", "max_fd"};



static void format_limits(struct tabw *w, const char *proc, json_t *res)
{
    size_t n;
    const char **keys = json_sorted_keys(res, &n);
    tabw_addf(w, "%s:\t", proc);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *limit = json_object_get(json_object_get(res, keys[i]), "limit");
        if (!json_is_integer(limit))
            continue;
        cleanup_free char *f = units_format_limit(keys[i], json_integer_value(limit));
        tabw_addf(w, "%s%s=%s", first ? "" : "\t", keys[i], f);
        first = 0;
    }
    tabw_addf(w, "\n");
    free(keys);
}

void resources_set_defaults(json_t *res)
{
    static const struct {
        const char *type;
        long long v;
    } defs[] = {{"memory", 1073741824LL}, {"cpu", 1000}, {"temp_disk", 104857600LL},
                {"max_fd", 10000}};
    for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
        json_t *spec = ensure_object(res, defs[i].type);
        json_t *limit = json_object_get(spec, "limit");
        if (!json_is_integer(limit))
            json_object_set_new(spec, "limit", json_integer(defs[i].v));
        if (!json_is_integer(json_object_get(spec, "request")))
            json_object_set(spec, "request", json_object_get(spec, "limit"));
    }
}

int resources_parse(char *const *pairs, int n, json_t *out, struct err **err)
{
    for (int i = 0; i < n; i++) {
        char *eq = strchr(pairs[i], '=');
        if (!eq) {
            cleanup_free char *q = go_quote(pairs[i]);
            return err_makex(err, EINVAL, "invalid resource limit: %s", q);
        }
        cleanup_free char *type = xstrndup(pairs[i], (size_t)(eq - pairs[i]));
        int known = 0;
        for (size_t k = 0; k < ARRAY_SIZE(limit_types); k++)
            known |= !strcmp(limit_types[k], type);
        if (!known) {
            cleanup_free char *q1 = go_quote(type);
            cleanup_free char *q2 = go_quote(eq + 1);
            return err_makex(err, EINVAL, "invalid resource limit type: [%s %s]", q1, q2);
        }
        long long v;
        int binary = !strcmp(type, "memory") || !strcmp(type, "temp_disk");
        if (units_parse_size(eq + 1, binary, &v) < 0) {
            cleanup_free char *q = go_quote(eq + 1);
            return err_makex(err, EINVAL, "invalid resource limit value: %s", q);
        }
        json_object_set_new(out, type, json_pack("{s:n,s:I}", "request", "limit", (json_int_t)v));
    }
    return 0;
}

static int limit_set(struct cli *cli, const char *proc, char **pairs, int n, struct err **err)
{
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        return -1;
    json_t *japp = NULL, *rel = NULL, *parsed = json_object();
    cleanup_free char *new_id = NULL;
    int ret = -1;
    if (app_and_release(c, app, &japp, &rel, err) < 0)
        goto out;
    if (!rel)
        rel = json_object();
    json_t *procs = ensure_object(rel, "processes");
    json_t *t = json_object_get(procs, proc);
    if (!t) {
        if (strcmp(proc, "slugbuilder")) {
            cleanup_free char *q = go_quote(proc);
            fprintf(stderr, "Warning: %s is not an existing process type, setting anyway\n", q);
        }
        t = json_object();
        json_object_set_new(procs, proc, t);
    }
    json_t *res = json_object_get(t, "resources");
    if (!json_is_object(res)) {
        res = json_object();
        json_object_set_new(t, "resources", res);
        resources_set_defaults(res);
    }
    if (resources_parse(pairs, n, parsed, err) < 0)
        goto out;
    json_object_update(res, parsed);
    if (create_and_deploy(c, japp, rel, &new_id, err) < 0)
        goto out;
    printf("Created release %s\n", new_id);
    ret = 0;
out:
    json_decref(parsed);
    json_decref(japp);
    json_decref(rel);
    return ret;
}

int cmd_limit(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {{'t', "process-type", 1}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, -1) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *rel = NULL;
    if (o.npos) {
        ret = o.npos >= 3 && !strcmp(o.pos[0], "set") && !opts_has(&o, "process-type")
                  ? limit_set(cli, o.pos[1], o.pos + 2, o.npos - 2, err)
                  : cli_usage(cli);
        goto out;
    }
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c || current_release(c, app, &rel, err) < 0)
        goto out;
    ret = 0;
    if (!rel)
        goto out;
    json_t *procs = json_object_get(rel, "processes");
    struct tabw w = TABW_INIT;
    const char *only = opts_get(&o, "process-type", NULL);
    if (only && *only) {
        json_t *t = json_object_get(procs, only);
        if (!t) {
            cleanup_free char *q = go_quote(only);
            ret = err_makex(err, ENOENT, "unknown process type %s", q);
            goto out;
        }
        format_limits(&w, only, json_object_get(t, "resources"));
    } else {
        size_t n;
        const char **keys = json_sorted_keys(procs, &n);
        for (size_t i = 0; i < n; i++)
            format_limits(&w, keys[i], json_object_get(json_object_get(procs, keys[i]), "resources"));
        free(keys);
    }
    tabw_flush(&w);
out:
    json_decref(rel);
    opts_release(&o);
    return ret;
}
