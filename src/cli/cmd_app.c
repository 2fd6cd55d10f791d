/* create, delete, apps, info: app lifecycle. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "git.h"
#include "tabw.h"
#include "xalloc.h"

int cmd_create(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {{'r', "remote", 1}, {'y', "yes", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 1) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *app = NULL;
    const char *remote = opts_get(&o, "remote", "flynn");
    struct client *c = cli_client(cli, err);
    if (!c)
        goto out;
    int in_repo = git_in_repo();
    if (in_repo && !opts_has(&o, "yes") && *remote && git_remote_exists(remote)) {
        printf("There is already a git remote called %s\n", remote);
        if (!prompt_yes_no("Are you sure you want to replace it?")) {
            fprintf(stderr, "The remote was not created. Please declare the desired local git "
                            "remote name with --remote flag.\n");
            ret = 0;
            goto out;
        }
    }
    json_t *body = o.npos ? json_pack("{s:s,s:n}", "name", o.pos[0], "meta")
                          : json_pack("{s:n}", "meta");
    ret = client_json(c, "POST", "/apps", body, &app, err);
    json_decref(body);
    if (ret < 0)
        goto out;
    const char *name = json_string_value(json_object_get(app, "name"));
    if (!name)
        name = o.npos ? o.pos[0] : "";
    if (in_repo && *remote) {
        cleanup_free char *url = xasprintf("%s/%s.git", cli->cluster->git_url, name);
        git_remote_remove(remote);
        git_remote_add(remote, url);
        git_warn_cluster_ca_env(cli->cluster);
    }
    fprintf(stderr, "Created %s\n", name);
out:
    json_decref(app);
    opts_release(&o);
    return ret;
}

static size_t array_len(json_t *obj, const char *key)
{
    json_t *a = json_object_get(obj, key);
    return json_is_array(a) ? json_array_size(a) : 0;
}

/* DELETE /apps/APP and wait (60 s) for its app_deletion event. */
static json_t *delete_app(struct client *c, const char *app, struct err **err)
{
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *spath = xasprintf("/events?app_id=%s&object_types=app_deletion", ea);
    struct client_stream *s = client_stream_open(c, spath, err);
    if (!s)
        return NULL;
    cleanup_free char *path = xasprintf("/apps/%s", ea);
    json_t *res = NULL;
    if (client_json(c, "DELETE", path, NULL, NULL, err) < 0)
        goto out;
    json_t *ev = NULL;
    int rc = client_stream_next(s, 60000, &ev, err);
    if (rc == 0) {
        err_makex(err, ETIMEDOUT, "timed out waiting for app deletion");
        goto out;
    }
    if (rc < 0)
        goto out;
    json_t *data = json_object_get(ev, "data");
    const char *e = json_string_value(json_object_get(data, "error"));
    if (e && *e) {
        err_makex(err, EIO, "%s", e);
    } else {
        res = json_object_get(data, "app_deletion");
        res = res ? json_incref(res) : json_object();
    }
    json_decref(ev);
out:
    client_stream_close(s);
    return res;
}

int cmd_delete(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {{'r', "remote", 1}, {'y', "yes", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 0) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *res = NULL;
    const char *remote = opts_get(&o, "remote", "flynn");
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    if (!opts_has(&o, "yes")) {
        cleanup_free char *q = go_quote(app);
        cleanup_free char *msg = xasprintf("Are you sure you want to delete the app %s?", q);
        if (!prompt_yes_no(msg)) {
            ret = 0;
            goto out;
        }
    }
    res = delete_app(c, app, err);
    if (!res)
        goto out;
    if (*remote) {
        char **names = git_app_remotes(cli->rc, cli->flag_cluster, app);
        for (char **n = names; *n; n++) {
            if (!strcmp(*n, remote))
                git_remote_remove(remote);
            free(*n);
        }
        free(names);
    }
    fprintf(stderr,
            "Deleted %s (removed %zu routes, deleted %zu releases, deprovisioned %zu resources)\n",
            app, array_len(res, "deleted_routes"), array_len(res, "deleted_releases"),
            array_len(res, "deleted_resources"));
    ret = 0;
out:
    json_decref(res);
    opts_release(&o);
    return ret;
}

int cmd_apps(struct cli *cli, int argc, char **argv, struct err **err)
{
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 0, 0) < 0)
        return CLI_USAGE;
    opts_release(&o);
    struct client *c = cli_client(cli, err);
    json_t *apps = NULL;
    if (!c || client_json(c, "GET", "/apps", NULL, &apps, err) < 0)
        return -1;
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "ID\tNAME\n");
    size_t i;
    json_t *a;
    json_array_foreach(apps, i, a)
    {
        const char *cells[] = {json_string_value(json_object_get(a, "id")),
                               json_string_value(json_object_get(a, "name"))};
        tabw_row(&w, 2, cells);
    }
    tabw_flush(&w);
    json_decref(apps);
    return 0;
}

int cmd_info(struct cli *cli, int argc, char **argv, struct err **err)
{
    cleanup_free char *path = NULL;
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 0, 0) < 0)
        return CLI_USAGE;
    opts_release(&o);
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        return -1;
    printf("=== %s\n", app);
    struct tabw w = TABW_INIT;
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *rpath = xasprintf("/apps/%s/release", ea);
    json_t *release = NULL;
    struct err *e = NULL;
    int ret = 0;
    if (client_json(c, "GET", rpath, NULL, &release, &e) < 0 && !client_is_not_found(e)) {
        *err = e;
        ret = -1;
        goto out;
    }
    const char *git = json_string_value(json_object_get(json_object_get(release, "meta"), "git"));
    if (e || (git && !strcmp(git, "true"))) {
        cleanup_free char *url = xasprintf("%s/%s.git", cli->cluster->git_url, app);
        tabw_addf(&w, "Git URL:\t%s\n", url);
    }
    err_free(e);
    path = xasprintf("/apps/%s/routes", ea);
    json_t *routes = NULL;
    e = NULL;
    if (client_json(c, "GET", path, NULL, &routes, &e) == 0) {
        size_t i;
        json_t *r;
        json_array_foreach(routes, i, r)
        {
            const char *type = json_string_value(json_object_get(r, "type"));
            if (!type || strcmp(type, "http"))
                continue;
            const char *legacy = json_string_value(json_object_get(r, "tls_cert"));
            json_t *cert = json_object_get(r, "certificate");
            int tls = (cert && !json_is_null(cert)) || (legacy && *legacy);
            tabw_addf(&w, "Web URL:\t%s://%s\n", tls ? "https" : "http",
                      json_string_value(json_object_get(r, "domain")));
            break;
        }
    }
    err_free(e);
    json_decref(routes);
out:
    tabw_flush(&w);
    json_decref(release);
    return ret;
}

int cmd_remote(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {{'y', "yes", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 1, 2) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *japp = NULL;
    char *url = NULL;
    if (strcmp(o.pos[0], "add")) {
        ret = cli_usage(cli);
        goto out;
    }
    const char *remote = o.npos > 1 && *o.pos[1] ? o.pos[1] : "flynn";
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    char *ea = client_escape(app);
    char *path = xasprintf("/apps/%s", ea);
    ret = client_json(c, "GET", path, NULL, &japp, err);
    free(path);
    free(ea);
    if (ret < 0)
        goto out;
    ret = 0;
    if (!git_in_repo()) {
        fprintf(stderr, "Must be executed within a git repository.\n");
        goto out;
    }
    if (!opts_has(&o, "yes") && git_remote_exists(remote)) {
        printf("There is already a git remote called %s\n", remote);
        if (!prompt_yes_no("Are you sure you want to replace it?")) {
            fprintf(stderr, "The remote was not created. Please declare the desired local git "
                            "remote name with --remote flag.\n");
            goto out;
        }
    }
    const char *name = json_string_value(json_object_get(japp, "name"));
    url = xasprintf("%s/%s.git", cli->cluster->git_url, name ? name : app);
    git_remote_remove(remote);
    git_remote_add(remote, url);
    fprintf(stderr, "Created remote %s with url %s.\n", remote, url);
    git_warn_cluster_ca_env(cli->cluster);
out:
    free(url);
    json_decref(japp);
    opts_release(&o);
    return ret;
}
