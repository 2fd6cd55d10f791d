/* export: an app's config and data as a tar that Flynn's `import` reads
 * (app.json, routes.json, release.json, artifacts.json, LAYER.layer,
 * formation.json, slug.tar.gz, postgres.dump, mysql.dump). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tarw.h"
#include "xalloc.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* MarshalIndent-style JSON plus a newline, as Flynn's tar writer stores it. */
static int tar_json(struct tar *t, const char *name, json_t *v, struct err **err)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    char *data = xasprintf("%s\n", s);
    free(s);
    int rc = tar_file(t, name, data, strlen(data), err);
    free(data);
    return rc;
}

static json_t *get(struct client *c, const char *fmt, const char *arg, struct err **err)
{
    char *e = client_escape(arg);
    char *path = xasprintf(fmt, e);
    json_t *out = NULL;
    client_json(c, "GET", path, NULL, &out, err);
    free(path);
    free(e);
    return out;
}

/* Finds the body of the last response in `curl --include --location` output:
 * skips 302 responses; 200 with a Content-Length is required. */
static int parse_download(const char *name, const char *buf, size_t len, size_t *off,
                          long long *body_len, struct err **err)
{
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        const char *end = memmem(buf + pos, len - pos, "\r\n\r\n", 4);
        if (!end || len - pos < 12)
            return err_makex(err, EPROTO, "error reading HTTP response: malformed HTTP response");
        int status = atoi(buf + pos + 9);
        size_t hend = (size_t)(end - buf) + 4;
        if (status == 302) {
            pos = hend;
            continue;
        }
        if (status != 200)
            return err_makex(err, EIO, "unexpected status downloading %s: %d", name, status);
        *body_len = -1;
        for (const char *l = buf + pos; l < end;) {
            const char *nl = memmem(l, (size_t)(end - l) + 2, "\r\n", 2);
            if (!nl)
                break;
            if ((size_t)(nl - l) > 15 && !strncasecmp(l, "Content-Length:", 15))
                *body_len = strtoll(l + 15, NULL, 10);
            l = nl + 2;
        }
        if (*body_len < 0 || hend + (size_t)*body_len > len)
            return err_makex(err, EPROTO, "download of %s has missing or malformed Content-Length",
                             name);
        *off = hend;
        return 0;
    }
    return err_makex(err, EPROTO, "error reading HTTP response: too many redirects");
}

/* Fetches url with curl in a job of app under release (its first
 * artifact), and adds the body to the tar as name. */
static int download(struct tar *t, struct client *c, const char *app, json_t *release,
                    const char *name, const char *url, struct err **err)
{
    char tmpl[] = "/tmp/flynn-export-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return err_make(err, errno, "error creating temp file");
    unlink(tmpl);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    json_t *arts = json_object_get(release, "artifacts");
    json_t *first = json_pack("[O]", json_array_get(arts, 0) ? json_array_get(arts, 0) : json_null());
    json_t *args = json_pack("[ssssss]", "curl", "--include", "--http1.1", "--location", "--raw", url);
    struct run_config rc = {.app = app,
                            .release = jstr(release, "id"),
                            .args = args,
                            .artifacts = first,
                            .artifact = json_string_value(json_array_get(arts, 0)),
                            .disable_log = 1,
                            .in_fd = devnull,
                            .out_fd = fd,
                            .discard_stderr = 1};
    int status = 0, ret = -1;
    char *buf = NULL;
    if (run_job(c, &rc, &status, err) < 0) {
        err_wrap(err, "error downloading %s", name);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        err_make(err, errno, "stat");
        goto out;
    }
    buf = xmalloc((size_t)st.st_size + 1);
    if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
        err_make(err, errno, "read");
        goto out;
    }
    size_t off = 0;
    long long blen = 0;
    if (parse_download(name, buf, (size_t)st.st_size, &off, &blen, err) < 0)
        goto out;
    if (tar_header(t, name, (unsigned long long)blen, err) < 0 ||
        tar_write(t->fd, buf + off, (size_t)blen, err) < 0 ||
        tar_pad(t, (unsigned long long)blen, err) < 0)
        goto out;
    ret = 0;
out:
    free(buf);
    json_decref(args);
    json_decref(first);
    close(devnull);
    close(fd);
    return ret;
}

/* layer_url_template with {id} expanded (RFC 6570 level 1). */
static char *layer_url(const char *tmpl, const char *id)
{
    const char *p = strstr(tmpl, "{id}");
    if (!p)
        return xstrdup(tmpl);
    return xasprintf("%.*s%s%s", (int)(p - tmpl), tmpl, id, p + 4);
}

/* artifacts.json (into arts), and the layers of blobstore images. */
static int export_artifacts(struct tar *t, struct client *c, const char *name, json_t *rel,
                            json_t *blob, json_t *arts, struct err **err)
{
    struct err *e = NULL;
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(rel, "artifacts"), i, id)
    {
        json_t *a = get(c, "/artifacts/%s", json_string_value(id) ? json_string_value(id) : "", &e);
        if (!a) {
            if (!client_is_not_found(e)) {
                *err = e;
                return err_wrap(err, "error retrieving artifact %s", json_string_value(id));
            }
            err_free(e);
            e = NULL;
            continue;
        }
        json_array_append_new(arts, a);
    }
    if (json_array_size(arts) && tar_json(t, "artifacts.json", arts, err) < 0)
        return -1;
    json_t *a;
    json_array_foreach(arts, i, a)
    {
        if (strcmp(jstr(a, "type"), "flynn") ||
            strcmp(jstr(json_object_get(a, "meta"), "blobstore"), "true"))
            continue;
        size_t r, l;
        json_t *rootfs, *layer;
        json_array_foreach(json_object_get(json_object_get(a, "manifest"), "rootfs"), r, rootfs)
            json_array_foreach(json_object_get(rootfs, "layers"), l, layer)
        {
            cleanup_free char *lname = xasprintf("%s.layer", jstr(layer, "id"));
            cleanup_free char *url = layer_url(jstr(a, "layer_url_template"), jstr(layer, "id"));
            if (download(t, c, name, blob, lname, url, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* postgres.dump and mysql.dump, when the app has those databases. */
static int export_dumps(struct tar *t, struct client *c, const char *name, struct err **err)
{
    static const char *const dbs[][3] = {{"pg", "postgres.dump", "postgres"},
                                         {"mysql", "mysql.dump", "mysql"}};
    for (size_t k = 0; k < ARRAY_SIZE(dbs); k++) {
        struct err *e = NULL;
        json_t *job = db_dump_job(dbs[k][0], c, name, &e);
        if (!job) { /* no such database: nothing to dump */
            err_free(e);
            continue;
        }
        int rc = tar_job_output(t, c, dbs[k][1], name, job, err);
        json_decref(job);
        if (rc < 0)
            return err_wrap(err, "error creating %s dump", dbs[k][2]);
    }
    return 0;
}

static int export_app(struct cli *cli, struct tar *t, struct err **err)
{
    const char *name = cli_app(cli, err);
    struct client *c = name ? cli_client(cli, err) : NULL;
    if (!c)
        return -1;
    int ret = -1;
    json_t *app = NULL, *routes = NULL, *rel = NULL, *blob = NULL, *arts = json_array();
    json_t *form = NULL;
    struct err *e = NULL;
    app = get(c, "/apps/%s", name, err);
    if (!app) {
        err_wrap(err, "error getting app");
        goto out;
    }
    t->dir = xstrdup(jstr(app, "name"));
    if (tar_json(t, "app.json", app, err) < 0)
        goto out;
    routes = get(c, "/apps/%s/routes", name, err);
    if (!routes) {
        err_wrap(err, "error getting routes");
        goto out;
    }
    if (tar_json(t, "routes.json", routes, err) < 0)
        goto out;
    rel = get(c, "/apps/%s/release", name, &e);
    if (!rel) {
        if (client_is_not_found(e)) { /* nothing more to export */
            err_free(e);
            ret = 0;
        } else {
            *err = e;
            err_wrap(err, "error retrieving app");
        }
        goto out;
    }
    json_object_del(json_object_get(rel, "env"), "REDIS_PASSWORD"); /* no passwords */
    if (tar_json(t, "release.json", rel, err) < 0)
        goto out;
    blob = get(c, "/apps/%s/release", "blobstore", err);
    if (!blob) {
        err_wrap(err, "error getting blobstore release");
        goto out;
    }
    if (export_artifacts(t, c, name, rel, blob, arts, err) < 0)
        goto out;
    char *fpath = NULL;
    {
        char *ea = client_escape(name), *er = client_escape(jstr(rel, "id"));
        fpath = xasprintf("/apps/%s/formations/%s", ea, er);
        free(ea);
        free(er);
    }
    int frc = client_json(c, "GET", fpath, NULL, &form, &e);
    free(fpath);
    if (frc < 0 && !client_is_not_found(e)) {
        *err = e;
        err_wrap(err, "error retrieving formation");
        goto out;
    }
    err_free(e);
    e = NULL;
    if (form && tar_json(t, "formation.json", form, err) < 0)
        goto out;
    json_t *meta = json_object_get(rel, "meta");
    json_t *a0 = json_array_get(arts, 0);
    if (!strcmp(jstr(meta, "docker-receive"), "true") && a0 && !strcmp(jstr(a0, "type"), "docker")) {
        err_makex(err, ENOTSUP, "exporting a release pushed to the Docker registry "
                                "(docker-receive) is not implemented in this client");
        goto out;
    }
    const char *slug = NULL;
    json_t *a1 = json_array_get(arts, 1);
    if (!strcmp(jstr(meta, "git"), "true") && a1 && !strcmp(jstr(a1, "type"), "file"))
        slug = jstr(a1, "uri");
    else if (json_object_get(json_object_get(rel, "env"), "SLUG_URL"))
        slug = jstr(json_object_get(rel, "env"), "SLUG_URL");
    if (slug && download(t, c, name, rel, "slug.tar.gz", slug, err) < 0)
        goto out;
    if (export_dumps(t, c, name, err) < 0)
        goto out;
    ret = 0;
out:
    json_decref(form);
    json_decref(arts);
    json_decref(blob);
    json_decref(rel);
    json_decref(routes);
    json_decref(app);
    return ret;
}

int cmd_export(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {{'f', "file", 1}, {'q', "quiet", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 0) < 0)
        return CLI_USAGE;
    struct tar t = {.fd = 1, .now = time(NULL)};
    const char *file = opts_get(&o, "file", NULL);
    int ret = -1;
    if (file && *file) {
        t.fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (t.fd < 0) {
            err_make(err, errno, "error creating export file");
            goto out;
        }
    }
    ret = export_app(cli, &t, err);
    /* Flynn closes the tar (end blocks) on every path once it was started */
    if (t.dir) {
        struct err *e = NULL;
        if (tar_end(&t, ret == 0 ? err : &e) < 0)
            ret = -1;
        err_free(e);
    }
out:
    if (t.fd > 1)
        close(t.fd);
    free(t.dir);
    opts_release(&o);
    return ret;
}
