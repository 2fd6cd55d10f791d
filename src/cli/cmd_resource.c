/* provider, resource: resource providers and app resources (docs/flynn-api.md §9). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tabw.h"
#include "xalloc.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

int cmd_provider(struct cli *cli, int argc, char **argv, struct err **err)
{
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 0, 3) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *list = NULL, *body = NULL, *out = NULL;
    int add = o.npos == 3 && !strcmp(o.pos[0], "add");
    if (o.npos && !add) {
        ret = cli_usage(cli);
        goto out;
    }
    struct client *c = cli_client(cli, err);
    if (!c)
        goto out;
    if (add) {
        body = json_pack("{s:s,s:s}", "name", o.pos[1], "url", o.pos[2]);
        if (client_json(c, "POST", "/providers", body, &out, err) < 0)
            goto out;
        fprintf(stderr, "Created provider %s.\n", o.pos[1]);
        ret = 0;
        goto out;
    }
    if (client_json(c, "GET", "/providers", NULL, &list, err) < 0)
        goto out;
    ret = 0;
    if (!json_array_size(list))
        goto out;
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "ID\tNAME\tURL\n");
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
        tabw_addf(&w, "%s\t%s\t%s\n", jstr(p, "id"), jstr(p, "name"), jstr(p, "url"));
    tabw_flush(&w);
out:
    json_decref(out);
    json_decref(body);
    json_decref(list);
    opts_release(&o);
    return ret;
}

/* GET /providers/ID (for its name). */
static json_t *get_provider(struct client *c, const char *id, struct err **err)
{
    char *e = client_escape(id);
    char *path = xasprintf("/providers/%s", e);
    json_t *p = NULL;
    client_json(c, "GET", path, NULL, &p, err);
    free(path);
    free(e);
    return p;
}

static json_t *app_resources(struct client *c, const char *app, struct err **err)
{
    char *e = client_escape(app);
    char *path = xasprintf("/apps/%s/resources", e);
    json_t *list = NULL;
    client_json(c, "GET", path, NULL, &list, err);
    free(path);
    free(e);
    return list;
}

static int resource_list(struct client *c, const char *app, struct err **err)
{
    json_t *list = app_resources(c, app, err);
    if (!list)
        return -1;
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "ID\tProvider ID\tProvider Name\n");
    int ret = 0;
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        json_t *p = get_provider(c, jstr(r, "provider"), err);
        if (!p) {
            ret = -1;
            break;
        }
        tabw_addf(&w, "%s\t%s\t%s\n", jstr(r, "id"), jstr(r, "provider"), jstr(p, "name"));
        json_decref(p);
    }
    tabw_flush(&w); /* Flynn flushes what it has even on an error */
    json_decref(list);
    return ret;
}

/* The env keys of a resource, as names/values arrays for env_update. */
static int env_arrays(json_t *env, char ***names, char ***values)
{
    size_t n;
    const char **keys = json_sorted_keys(env, &n);
    *names = xcalloc(n + 1, sizeof(char *));
    *values = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        (*names)[i] = xstrdup(keys[i]);
        (*values)[i] = xstrdup(jstr(env, keys[i]));
    }
    free(keys);
    return (int)n;
}

static void free_arrays(char **names, char **values, int n)
{
    for (int i = 0; i < n; i++) {
        free(names[i]);
        free(values[i]);
    }
    free(names);
    free(values);
}

static int resource_add(struct cli *cli, struct client *c, const char *app, const char *provider,
                        struct err **err)
{
    char *ep = client_escape(provider);
    char *path = xasprintf("/providers/%s/resources", ep);
    json_t *req = json_pack("{s:[s],s:n}", "apps", app, "config");
    json_t *res = NULL;
    int rc = client_json(c, "POST", path, req, &res, err);
    free(path);
    free(ep);
    json_decref(req);
    if (rc < 0)
        return -1;
    char **names, **values;
    int n = env_arrays(json_object_get(res, "env"), &names, &values);
    char *id = NULL;
    rc = env_update(cli, NULL, names, values, n, &id, err);
    if (rc == 0)
        fprintf(stderr, "Created resource %s and release %s.\n", jstr(res, "id"), id);
    free(id);
    free_arrays(names, values, n);
    json_decref(res);
    return rc;
}

/* Flynn's resolveResource: the one resource of the app from provider. */
static char *resolve_resource(struct client *c, const char *app, const char *provider,
                              struct err **err)
{
    json_t *list = app_resources(c, app, err);
    if (!list)
        return NULL;
    char *found = NULL;
    int matched = 0;
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        json_t *p = get_provider(c, jstr(r, "provider"), err);
        if (!p) {
            free(found);
            json_decref(list);
            return NULL;
        }
        if (!strcmp(jstr(r, "provider"), provider) || !strcmp(jstr(p, "name"), provider)) {
            matched++;
            free(found);
            found = xstrdup(jstr(r, "id"));
        }
        json_decref(p);
    }
    json_decref(list);
    if (matched != 1) {
        free(found);
        err_makex(err, EINVAL, "App has more than one resource for %s, specify resource ID",
                  provider);
        return NULL;
    }
    return found;
}

static int resource_remove(struct cli *cli, struct client *c, const char *app,
                           const char *provider, const char *resource, struct err **err)
{
    char *rid = resource ? xstrdup(resource) : resolve_resource(c, app, provider, err);
    if (!rid)
        return -1;
    int ret = -1;
    json_t *res = NULL, *rel = NULL;
    char **names = NULL, **values = NULL;
    int n = 0, k = 0;
    char *id = NULL;
    char *ep = client_escape(provider), *er = client_escape(rid), *ea = client_escape(app);
    char *path = xasprintf("/providers/%s/resources/%s", ep, er);
    char *rpath = xasprintf("/apps/%s/release", ea);
    if (client_json(c, "DELETE", path, NULL, &res, err) < 0)
        goto out;
    if (client_json(c, "GET", rpath, NULL, &rel, err) < 0)
        goto out;
    /* unset only the keys whose value is still the resource's */
    json_t *renv = json_object_get(rel, "env");
    n = env_arrays(json_object_get(res, "env"), &names, &values);
    for (int i = 0; i < n; i++) {
        const char *cur = json_string_value(json_object_get(renv, names[i]));
        if (!strcmp(cur ? cur : "", values[i])) {
            char *t = names[k];
            names[k++] = names[i];
            names[i] = t;
        }
    }
    if (env_update(cli, NULL, names, NULL, k, &id, err) < 0)
        goto out;
    fprintf(stderr, "Deleted resource %s, created release %s.\n", jstr(res, "id"), id);
    ret = 0;
out:
    free(id);
    if (names)
        free_arrays(names, values, n);
    free(path);
    free(rpath);
    free(ep);
    free(er);
    free(ea);
    free(rid);
    json_decref(res);
    json_decref(rel);
    return ret;
}

int cmd_resource(struct cli *cli, int argc, char **argv, struct err **err)
{
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 0, 3) < 0)
        return CLI_USAGE;
    int ret = -1;
    const char *sub = o.npos ? o.pos[0] : NULL;
    int add = sub && !strcmp(sub, "add") && o.npos == 2;
    int rm = sub && !strcmp(sub, "remove") && o.npos >= 2;
    if (sub && !add && !rm) {
        ret = cli_usage(cli);
        goto out;
    }
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    if (add)
        ret = resource_add(cli, c, app, o.pos[1], err);
    else if (rm)
        ret = resource_remove(cli, c, app, o.pos[1], o.npos > 2 ? o.pos[2] : NULL, err);
    else
        ret = resource_list(c, app, err);
out:
    opts_release(&o);
    return ret;
}
