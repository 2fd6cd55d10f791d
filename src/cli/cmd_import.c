/* import: create an app from an export tar (cmd_export.c, or Flynn's). */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "proc.h"
#include "xalloc.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Where the export's files were unpacked: entries by base name. */
struct unpacked {
    char *root;
    char *sub; /* the directory holding the files (root or root/APP) */
};

static char *file_path(struct unpacked *u, const char *name)
{
    char *p = xasprintf("%s/%s", u->sub, name);
    if (fs_exists(p))
        return p;
    free(p);
    return NULL;
}

static json_t *load(struct unpacked *u, const char *name, const char *what, struct err **err)
{
    cleanup_free char *p = file_path(u, name);
    if (!p)
        return NULL;
    cleanup_free char *text = fs_read_file(p, NULL, err);
    if (!text)
        return NULL;
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        err_makex(err, EINVAL, "error decoding %s: %s", what, je.text);
    return j;
}

/* Unpacks the tar (a file, or stdin copied to one) with tar(1). */
static int unpack(const char *file, struct unpacked *u, struct err **err)
{
    char tmpl[] = "/tmp/flynn-import-XXXXXX";
    if (!mkdtemp(tmpl))
        return err_make(err, errno, "error creating temporary directory");
    u->root = xstrdup(tmpl);
    cleanup_free char *tarfile = NULL;
    if (!file || !*file) {
        tarfile = xasprintf("%s.tar", u->root);
        int fd = open(tarfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return err_make(err, errno, "error opening export file");
        char buf[65536];
        ssize_t n;
        while ((n = read(0, buf, sizeof(buf))) > 0)
            if (write(fd, buf, (size_t)n) != n) {
                close(fd);
                return err_make(err, errno, "error reading export tar");
            }
        close(fd);
    } else if (!fs_exists(file)) {
        return err_makex(err, ENOENT, "error opening export file: open %s: no such file or "
                                      "directory", file);
    }
    const char *src = tarfile ? tarfile : file;
    cleanup_strbuf struct strbuf out = STRBUF_INIT;
    const char *argv[] = {"tar", "-xf", src, "-C", u->root, NULL};
    int rc = proc_run(argv, &out, err);
    if (tarfile)
        unlink(tarfile);
    if (rc != 0) {
        if (rc > 0)
            err_makex(err, EIO, "error reading export tar: %s", out.buf);
        return -1;
    }
    /* exports hold one directory (the app name) */
    u->sub = xstrdup(u->root);
    DIR *d = opendir(u->root);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *p = xasprintf("%s/%s", u->root, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            free(u->sub);
            u->sub = p;
        } else {
            free(p);
        }
    }
    if (d)
        closedir(d);
    return 0;
}

/* POST /providers/P/resources for the app; merges its env into env. */
static int provision(struct client *c, const char *provider, const char *app_id, json_t *env,
                     struct err **err)
{
    char *path = xasprintf("/providers/%s/resources", provider);
    json_t *req = json_pack("{s:[s],s:n}", "apps", app_id, "config"), *res = NULL;
    int rc = client_json(c, "POST", path, req, &res, err);
    free(path);
    json_decref(req);
    if (rc < 0)
        return err_wrap(err, "error provisioning %s resource", provider);
    json_object_update(env, json_object_get(res, "env"));
    json_decref(res);
    return 0;
}

/* A job that PUTs one layer into the blobstore (stdin: the layer file). */
static int upload_layer(struct client *c, const char *app_id, const char *blob_release,
                        const char *path, const char *url, struct err **err)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return err_make(err, errno, "open %s", path);
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    json_t *args = json_pack("[sssss]", "curl", "--request", "PUT", "--upload-file", "-");
    json_array_append_new(args, json_string(url));
    struct run_config rc = {.app = app_id, .release = blob_release, .args = args,
                            .disable_log = 1, .in_fd = in, .out_fd = out, .discard_stderr = 1};
    int status = 0, ret = run_job(c, &rc, &status, err);
    if (ret == 0 && status != 0)
        ret = err_makex(err, EIO, "remote job exited with status %d", status);
    if (ret < 0)
        err_wrap(err, "error uploading layer");
    json_decref(args);
    close(in);
    close(out);
    return ret;
}

/* Replaces the first occurrence of old in *s with new. */
static void replace_first(json_t *obj, const char *key, const char *old, const char *new)
{
    const char *s = json_string_value(json_object_get(obj, key));
    const char *p = s && *old ? strstr(s, old) : NULL;
    if (!p)
        return;
    char *r = xasprintf("%.*s%s%s", (int)(p - s), s, new, p + strlen(old));
    json_object_set_new(obj, key, json_string(r));
    free(r);
}

/* What the export holds, decoded. */
struct import {
    struct client *c;
    json_t *app, *rel, *arts, *form, *routes;
    const char *app_id, *app_name; /* of the created app */
    char *old_name;
    int nres, nroutes;
};

/* Provisions the databases the export has dumps of (and redis) and
 * restores the dumps; their env goes into the release env. */
static int import_databases(struct import *im, struct unpacked *u, int jobs, struct err **err)
{
    json_t *env = json_object_get(im->rel, "env");
    if (!json_is_object(env)) {
        env = json_object();
        json_object_set_new(im->rel, "env", env);
    }
    static const struct {
        const char *dump, *kind, *provider;
    } dbs[] = {{"postgres.dump", "pg", "postgres"}, {"mysql.dump", "mysql", "mysql"}};
    for (size_t k = 0; k < ARRAY_SIZE(dbs); k++) {
        cleanup_free char *dump = file_path(u, dbs[k].dump);
        if (!dump)
            continue;
        if (provision(im->c, dbs[k].provider, im->app_id, env, err) < 0)
            return -1;
        im->nres++;
        int fd = open(dump, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return err_make(err, errno, "open %s", dump);
        int rc = db_restore(dbs[k].kind, im->c, im->app_id, env, fd, jobs, err);
        close(fd);
        if (rc < 0)
            return err_wrap(err, "error restoring %s database", dbs[k].provider);
    }
    if (*jstr(env, "FLYNN_REDIS")) {
        if (provision(im->c, "redis", im->app_id, env, err) < 0)
            return -1;
        im->nres++;
    }
    return 0;
}

/* Uploads the layers of one blobstore artifact and recreates it; *id
 * gets the new artifact ID (caller frees). */
static int import_artifact(struct import *im, struct unpacked *u, const char *blob_release,
                           json_t *a, char **id, struct err **err)
{
    size_t r, l;
    json_t *rootfs, *layer;
    json_array_foreach(json_object_get(json_object_get(a, "manifest"), "rootfs"), r, rootfs)
        json_array_foreach(json_object_get(rootfs, "layers"), l, layer)
    {
        cleanup_free char *lname = xasprintf("%s.layer", jstr(layer, "id"));
        cleanup_free char *lpath = file_path(u, lname);
        if (!lpath)
            return err_makex(err, ENOENT, "missing layer in export: %s", jstr(layer, "id"));
        const char *tmpl = jstr(a, "layer_url_template");
        const char *p = strstr(tmpl, "{id}");
        cleanup_free char *url = p ? xasprintf("%.*s%s%s", (int)(p - tmpl), tmpl,
                                               jstr(layer, "id"), p + 4)
                                   : xstrdup(tmpl);
        if (upload_layer(im->c, im->app_id, blob_release, lpath, url, err) < 0)
            return -1;
    }
    json_object_del(a, "id");
    json_t *na = NULL;
    if (client_json(im->c, "POST", "/artifacts", a, &na, err) < 0)
        return err_wrap(err, "error creating artifact");
    *id = xstrdup(jstr(na, "id"));
    json_decref(na);
    return 0;
}

/* The slugrunner of gitreceive's release for the release's stack. */
static int current_slugrunner(struct import *im, char **id, struct err **err)
{
    json_t *git = NULL;
    if (client_json(im->c, "GET", "/apps/gitreceive/release", NULL, &git, err) < 0)
        return err_wrap(err, "unable to retrieve gitreceive release");
    json_t *genv = json_object_get(git, "env");
    const char *stack = jstr(json_object_get(im->rel, "meta"), "slugrunner.stack");
    const char *runner = NULL;
    if (!strcmp(stack, "heroku-18")) {
        runner = jstr(genv, "SLUGRUNNER_18_IMAGE_ID");
    } else if (!strcmp(stack, "cedar-14") || !*stack) {
        runner = jstr(genv, "SLUGRUNNER_14_IMAGE_ID");
        if (!*runner)
            runner = jstr(genv, "SLUGRUNNER_IMAGE_ID");
    }
    cleanup_free char *q = go_quote(stack);
    int ret = 0;
    if (!runner)
        ret = err_makex(err, EINVAL, "unknown slugrunner stack %s", q);
    else if (!*runner)
        ret = err_makex(err, EINVAL, "gitreceive env missing slugrunner image for stack %s", q);
    else
        *id = xstrdup(runner);
    json_decref(git);
    return ret;
}

/* Recreates the blobstore artifacts and sets the release's artifact IDs
 * ("" for others, the current slugrunner first for slug releases). */
static int import_artifacts(struct import *im, struct unpacked *u, struct err **err)
{
    json_t *blob = NULL;
    if (client_json(im->c, "GET", "/apps/blobstore/release", NULL, &blob, err) < 0)
        return err_wrap(err, "unable to retrieve blobstore release");
    json_t *ids = json_array();
    json_object_set_new(im->rel, "artifacts", ids);
    int ret = -1;
    size_t i;
    json_t *a;
    json_array_foreach(im->arts, i, a)
    {
        char *id = NULL;
        if (!strcmp(jstr(a, "type"), "flynn") &&
            !strcmp(jstr(json_object_get(a, "meta"), "blobstore"), "true") &&
            import_artifact(im, u, jstr(blob, "id"), a, &id, err) < 0)
            goto out;
        json_array_append_new(ids, json_string(id ? id : ""));
        free(id);
    }
    if (!strcmp(jstr(json_object_get(im->rel, "meta"), "git"), "true")) {
        char *runner = NULL;
        if (current_slugrunner(im, &runner, err) < 0)
            goto out;
        json_array_set_new(ids, 0, json_string(runner));
        free(runner);
    }
    ret = 0;
out:
    json_decref(blob);
    return ret;
}

/* Args for old slug processes; services renamed from the old app name. */
static void fix_processes(struct import *im)
{
    int isgit = !strcmp(jstr(json_object_get(im->rel, "meta"), "git"), "true");
    const char *t;
    json_t *proc;
    json_object_foreach(json_object_get(im->rel, "processes"), t, proc)
    {
        if (isgit && !json_array_size(json_object_get(proc, "args"))) {
            json_t *args = json_pack("[s]", "/runner/init");
            json_t *cmd = json_object_get(proc, "cmd");
            if (json_is_array(cmd))
                json_array_extend(args, cmd);
            json_object_set_new(proc, "args", args);
            json_object_del(proc, "cmd");
        }
        size_t i;
        json_t *port;
        json_array_foreach(json_object_get(proc, "ports"), i, port)
        {
            json_t *svc = json_object_get(port, "service");
            if (!strncmp(jstr(svc, "name"), im->old_name, strlen(im->old_name)))
                replace_first(svc, "name", im->old_name, im->app_name);
        }
        replace_first(proc, "service", im->old_name, im->app_name);
    }
}

/* POST the release, make it current, and put the formation. */
static int import_release(struct import *im, struct err **err)
{
    json_object_set_new(im->rel, "app_id", json_string(im->app_id));
    json_t *out = NULL, *r2 = NULL, *body = NULL;
    cleanup_free char *ea = client_escape(im->app_id);
    cleanup_free char *path = xasprintf("/apps/%s/release", ea);
    char *fpath = NULL;
    int ret = -1;
    if (client_json(im->c, "POST", "/releases", im->rel, &out, err) < 0) {
        err_wrap(err, "error creating release");
        goto out;
    }
    body = json_pack("{s:s}", "id", jstr(out, "id"));
    if (client_json(im->c, "PUT", path, body, &r2, err) < 0) {
        err_wrap(err, "error setting app release");
        goto out;
    }
    if (im->form) {
        json_object_set_new(im->form, "app", json_string(im->app_id));
        json_object_set_new(im->form, "release", json_string(jstr(out, "id")));
        char *er = client_escape(jstr(out, "id"));
        fpath = xasprintf("/apps/%s/formations/%s", ea, er);
        free(er);
        json_decref(r2);
        r2 = NULL;
        if (client_json(im->c, "PUT", fpath, im->form, &r2, err) < 0) {
            err_wrap(err, "error creating formation");
            goto out;
        }
    }
    ret = 0;
out:
    free(fpath);
    json_decref(body);
    json_decref(r2);
    json_decref(out);
    return ret;
}

static int import_routes(struct import *im, struct err **err)
{
    cleanup_free char *ea = client_escape(im->app_id);
    cleanup_free char *path = xasprintf("/apps/%s/routes", ea);
    size_t i;
    json_t *route;
    json_array_foreach(im->routes, i, route)
    {
        json_object_del(route, "id");
        json_object_del(route, "parent_ref");
        json_t *r2 = NULL;
        struct err *e = NULL;
        if (client_json(im->c, "POST", path, route, &r2, &e) < 0) {
            if (e->errnum == EEXIST && !strncmp(e->msg, "conflict: ", 10)) {
                err_free(e); /* the default route of the same domain */
                continue;
            }
            *err = e;
            return err_wrap(err, "error creating route");
        }
        json_decref(r2);
        im->nroutes++;
    }
    return 0;
}

static int import_app(struct cli *cli, struct unpacked *u, struct opts *o, int jobs,
                      struct err **err)
{
    struct import im = {.nroutes = 1};
    if (!(im.c = cli_client(cli, err)))
        return -1;
    int ret = -1;
    json_t *created = NULL;
    char *slug = NULL, *dimg = NULL;
    if (!(im.app = load(u, "app.json", "app", err))) {
        if (!*err)
            err_makex(err, ENOENT, "missing app.json");
        goto out;
    }
    if ((!(im.rel = load(u, "release.json", "release", err)) && *err) ||
        (!(im.arts = load(u, "artifacts.json", "artifacts", err)) && *err) ||
        (!(im.form = load(u, "formation.json", "formation", err)) && *err) ||
        (!(im.routes = load(u, "routes.json", "routes", err)) && *err))
        goto out;
    slug = file_path(u, "slug.tar.gz");
    dimg = file_path(u, "docker-image.json");
    if (slug || dimg) {
        err_makex(err, ENOTSUP, "importing %s is not implemented in this client",
                  slug ? "a legacy slug (slug.tar.gz)" : "a docker-receive image");
        goto out;
    }
    json_object_del(im.app, "id");
    im.old_name = xstrdup(jstr(im.app, "name"));
    const char *name = opts_get(o, "name", "");
    if (*name)
        json_object_set_new(im.app, "name", json_string(name));
    if (client_json(im.c, "POST", "/apps", im.app, &created, err) < 0) {
        err_wrap(err, "error creating app");
        goto out;
    }
    im.app_id = jstr(created, "id");
    im.app_name = jstr(created, "name");
    if (im.rel) {
        json_object_del(im.rel, "id");
        json_object_del(im.rel, "artifacts");
        json_object_del(im.rel, "artifact");
        if (import_databases(&im, u, jobs, err) < 0)
            goto out;
        if (json_array_size(im.arts) && import_artifacts(&im, u, err) < 0)
            goto out;
        fix_processes(&im);
        if (import_release(&im, err) < 0)
            goto out;
    }
    if (opts_has(o, "routes") && import_routes(&im, err) < 0)
        goto out;
    printf("Imported %s (added %d routes, provisioned %d resources)\n", im.app_name, im.nroutes,
           im.nres);
    ret = 0;
out:
    free(slug);
    free(dimg);
    free(im.old_name);
    json_decref(created);
    json_decref(im.routes);
    json_decref(im.form);
    json_decref(im.arts);
    json_decref(im.rel);
    json_decref(im.app);
    return ret;
}

int cmd_import(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {
        {'f', "file", 1}, {'n', "name", 1}, {'q', "quiet", 0}, {'r', "routes", 0}, {'j', "jobs", 1}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 0) < 0)
        return CLI_USAGE;
    int ret = -1;
    struct unpacked u = {0};
    const char *j = opts_get(&o, "jobs", "4");
    char *end;
    long jobs = strtol(j, &end, 10);
    if (!*j || *end) {
        char *q = go_quote(j);
        err_makex(err, EINVAL, "strconv.Atoi: parsing %s: invalid syntax", q);
        free(q);
        goto out;
    }
    if (unpack(opts_get(&o, "file", NULL), &u, err) < 0)
        goto out;
    ret = import_app(cli, &u, &o, (int)jobs, err);
out:
    if (u.root) {
        struct err *e = NULL;
        if (fs_rm_rf(u.root, &e) < 0)
            err_free(e);
    }
    free(u.root);
    free(u.sub);
    opts_release(&o);
    return ret;
}
