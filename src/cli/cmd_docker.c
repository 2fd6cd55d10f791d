/* docker push: deploy a local Docker image through the cluster's image
 * service (docs/flynn-api.md §12, §13). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* Go's JSON decoding matches field names case-insensitively. */
static json_t *jget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (v)
        return v;
    const char *key;
    json_object_foreach(o, key, v) if (!strcasecmp(key, k)) return v;
    return NULL;
}

static json_t *load_json(const char *dir, const char *name, struct err **err)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, name);
    cleanup_free char *text = fs_read_file(path, NULL, err);
    if (!text)
        return NULL;
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        err_makex(err, EINVAL, "%s: %s", name, je.text);
    return j;
}

/* `docker save TAG` unpacked into dir. */
static int docker_save(const char *tag, const char *dir, struct err **err)
{
    cleanup_free char *tar = xasprintf("%s.tar", dir);
    cleanup_strbuf struct strbuf out = STRBUF_INIT;
    const char *save[] = {"docker", "save", "-o", tar, tag, NULL};
    int rc = proc_run(save, &out, err);
    if (rc < 0)
        return err_wrap(err, "Executable 'docker' was not found");
    if (rc != 0) {
        unlink(tar);
        return err_makex(err, EIO, "docker save %s: exit status %d: %s", tag, rc, out.buf);
    }
    strbuf_reset(&out);
    const char *untar[] = {"tar", "-xf", tar, "-C", dir, NULL};
    rc = proc_run(untar, &out, err);
    unlink(tar);
    if (rc != 0) {
        if (rc > 0)
            err_makex(err, EIO, "tar: %s", out.buf);
        return err_wrap(err, "error extracting docker save output");
    }
    return 0;
}

/* GET /layer/ID on the image service, else POST the layer tar. */
static json_t *upload_layer(struct client *img, const char *dir, const char *file, const char *id,
                            struct err **err)
{
    fprintf(stderr, "uploading layer %s\n", id);
    cleanup_free char *path = xasprintf("/layer/%s", id);
    json_t *layer = NULL;
    struct err *e = NULL;
    if (client_json(img, "GET", path, NULL, &layer, &e) == 0)
        return layer;
    if (!client_is_not_found(e)) {
        *err = e;
        return NULL;
    }
    err_free(e);
    cleanup_free char *fpath = xasprintf("%s/%s", dir, file);
    int fd = open(fpath, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        err_make(err, errno, "open %s", fpath);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    int rc = client_post_fd(img, path, fd, (long long)st.st_size, &layer, err);
    close(fd);
    return rc < 0 ? NULL : layer;
}

/* The entrypoint of the image manifest from the Docker config. */
static json_t *entrypoint_of(json_t *cfg)
{
    json_t *ep = json_object();
    json_t *env = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(jget(cfg, "Env"), i, v)
    {
        const char *kv = json_string_value(v);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq)
            continue;
        /* Flynn escapes tabs in image env values */
        struct strbuf val = STRBUF_INIT;
        for (const char *p = eq + 1; *p; p++)
            strbuf_adds(&val, *p == '\t' ? "\\t" : (char[2]){*p, 0});
        char *k = xstrndup(kv, (size_t)(eq - kv));
        json_object_set_new(env, k, json_string(val.buf));
        free(k);
        strbuf_release(&val);
    }
    if (json_object_size(env))
        json_object_set_new(ep, "env", env);
    else
        json_decref(env);
    const char *wd = json_string_value(jget(cfg, "WorkingDir"));
    if (wd && *wd)
        json_object_set_new(ep, "cwd", json_string(wd));
    json_t *args = json_array();
    json_array_extend(args, json_is_array(jget(cfg, "Entrypoint")) ? jget(cfg, "Entrypoint")
                                                                   : json_array());
    if (json_is_array(jget(cfg, "Cmd")))
        json_array_extend(args, jget(cfg, "Cmd"));
    if (json_array_size(args))
        json_object_set_new(ep, "args", args);
    else
        json_decref(args);
    return ep;
}

static json_t *ensure(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(o, k, v);
    }
    return v;
}

/* The image of the unpacked `docker save` in dir, its layers uploaded to
 * the image service: returns the image manifest and *cfg the Docker config. */
static json_t *image_manifest(struct client *img, const char *dir, json_t **cfg,
                              struct err **err)
{
    json_t *manifests = load_json(dir, "manifest.json", err), *image = NULL;
    if (!manifests) {
        err_wrap(err, "error loading docker manifest");
        return NULL;
    }
    if (json_array_size(manifests) != 1) {
        err_makex(err, EINVAL, "error loading docker manifest: expected 1 docker manifest, got %zu",
                  json_array_size(manifests));
        goto fail;
    }
    json_t *m = json_array_get(manifests, 0);
    const char *cfgname = json_string_value(jget(m, "Config"));
    *cfg = load_json(dir, cfgname ? cfgname : "", err);
    if (!*cfg) {
        err_wrap(err, "error loading docker image config");
        goto fail;
    }
    json_t *diffs = jget(jget(*cfg, "rootfs"), "diff_ids");
    json_t *layers = json_array();
    image = json_pack("{s:s,s:{s:o},s:[{s:{s:s,s:s},s:o}]}", "_type",
                      "application/vnd.flynn.image.manifest.v1+json", "entrypoints", "_default",
                      entrypoint_of(jget(*cfg, "config")), "rootfs", "platform", "architecture",
                      "amd64", "os", "linux", "layers", layers);
    size_t i;
    json_t *lp;
    json_array_foreach(jget(m, "Layers"), i, lp)
    {
        const char *diff = json_string_value(json_array_get(diffs, i));
        const char *colon = diff ? strchr(diff, ':') : NULL;
        if (!colon) {
            err_makex(err, EINVAL, "invalid diff ID: %s", diff ? diff : "");
            goto fail;
        }
        json_t *layer = upload_layer(img, dir, json_string_value(lp), colon + 1, err);
        if (!layer)
            goto fail;
        json_array_append_new(layers, layer);
    }
    json_decref(manifests);
    return image;
fail:
    json_decref(image);
    json_decref(*cfg);
    *cfg = NULL;
    json_decref(manifests);
    return NULL;
}

/* Flynn's release for a pushed image: the previous release's processes,
 * env and meta; process "app" runs the image entrypoint on port 8080. */
static json_t *image_release(json_t *app, json_t *prev, json_t *image, json_t *artifact,
                             json_t *cfg)
{
    json_t *release = json_pack("{s:[s]}", "artifacts", jstr(artifact, "id"));
    static const char *const keep[] = {"processes", "env", "meta"};
    for (size_t k = 0; k < ARRAY_SIZE(keep); k++)
        if (json_object_get(prev, keep[k]))
            json_object_set(release, keep[k], json_object_get(prev, keep[k]));
    json_t *proc = ensure(ensure(release, "processes"), "app");
    json_t *ep = json_object_get(json_object_get(json_object_get(image, "entrypoints"), "_default"),
                                 "args");
    if (ep)
        json_object_set(proc, "args", ep);
    else
        json_object_del(proc, "args");
    if (!json_array_size(json_object_get(proc, "ports"))) {
        cleanup_free char *svc = xasprintf("%s-web", jstr(app, "name"));
        json_object_set_new(proc, "service", json_string(svc));
        json_object_set_new(proc, "ports",
                            json_pack("[{s:i,s:s,s:{s:s,s:b}}]", "port", 8080, "proto", "tcp",
                                      "service", "name", svc, "create", 1));
    }
    size_t i;
    json_t *lp;
    json_array_foreach(jget(jget(cfg, "config"), "Env"), i, lp)
    {
        const char *kv = json_string_value(lp);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq)
            continue;
        json_t *env = ensure(release, "env");
        char *k = xstrndup(kv, (size_t)(eq - kv));
        if (!json_object_get(env, k)) /* keep what `flynn env set` set */
            json_object_set_new(env, k, json_string(eq + 1));
        free(k);
    }
    json_object_set_new(release, "app_id", json_string(jstr(app, "id")));
    return release;
}

/* GET /apps/APP and its current release (an empty one on a 404). */
static int app_and_release(struct client *c, const char *name, json_t **app, json_t **prev,
                           struct err **err)
{
    cleanup_free char *ea = client_escape(name);
    cleanup_free char *path = xasprintf("/apps/%s", ea);
    if (client_json(c, "GET", path, NULL, app, err) < 0)
        return -1;
    cleanup_free char *eid = client_escape(jstr(*app, "id"));
    cleanup_free char *rpath = xasprintf("/apps/%s/release", eid);
    struct err *e = NULL;
    if (client_json(c, "GET", rpath, NULL, prev, &e) < 0) {
        if (!client_is_not_found(e)) {
            *err = e;
            return err_wrap(err, "error getting current app release");
        }
        err_free(e);
        *prev = json_object();
    }
    return 0;
}

static int docker_push(struct cli *cli, const char *tag, struct err **err)
{
    const char *appname = cli_app(cli, err);
    struct client *c = appname ? cli_client(cli, err) : NULL;
    if (!c)
        return -1;
    int ret = -1;
    json_t *status = NULL, *app = NULL, *prev = NULL, *cfg = NULL;
    json_t *image = NULL, *artifact = NULL, *release = NULL, *created = NULL;
    struct client *img = NULL;
    char *dir = NULL;
    if (client_json(c, "GET", "/.well-known/status", NULL, &status, err) < 0)
        goto out;
    const char *v = jstr(json_object_get(status, "data"), "version");
    if (v[0] == 'v' && strlen(v) >= 11 && strcmp(v, "v20190425.0") < 0) {
        err_makex(err, ENOTSUP, "the cluster (version %s) only takes Docker registry pushes, "
                                "which this client does not support; use Flynn's Go CLI",
                  v);
        goto out;
    }
    fprintf(stderr, "deploying Docker image: %s\n", tag);
    if (!*cli->cluster->image_url) {
        err_makex(err, EINVAL, "cluster: missing ImageURL .flynnrc config");
        goto out;
    }
    img = client_new(cli->cluster->image_url, cli->cluster->key, cli->cluster->tls_pin, err);
    if (!img || app_and_release(c, appname, &app, &prev, err) < 0)
        goto out;
    fprintf(stderr, "exporting image with 'docker save %s'\n", tag);
    char tmpl[] = "/tmp/flynn-docker-push-XXXXXX";
    if (!mkdtemp(tmpl)) {
        err_make(err, errno, "error creating temporary directory");
        goto out;
    }
    dir = xstrdup(tmpl);
    if (docker_save(tag, dir, err) < 0 || !(image = image_manifest(img, dir, &cfg, err)))
        goto out;
    if (client_json(img, "POST", "/artifact", image, &artifact, err) < 0)
        goto out;
    release = image_release(app, prev, image, artifact, cfg);
    if (client_json(c, "POST", "/releases", release, &created, err) < 0)
        goto out;
    if (deploy_release(c, jstr(app, "id"), jstr(created, "id"), err) < 0)
        goto out;
    fprintf(stderr, "Docker image deployed, scale it with 'flynn scale app=N'\n");
    ret = 0;
out:
    if (dir) {
        struct err *re = NULL;
        if (fs_rm_rf(dir, &re) < 0)
            err_free(re);
    }
    free(dir);
    client_free(img);
    json_decref(created);
    json_decref(release);
    json_decref(artifact);
    json_decref(image);
    json_decref(cfg);
    json_decref(prev);
    json_decref(app);
    json_decref(status);
    return ret;
}

static void deprecated(void)
{
    fprintf(stderr, "DEPRECATED: Pushing via a Docker registry has been deprecated in favour of "
                    "pushing via the Flynn image service.\nIf the cluster is newer than "
                    "v20190425.0 then just run 'flynn docker push' directly.\n");
}

/* The host of the cluster's DockerPushURL. Caller frees. */
static char *push_host(const struct flynnrc_cluster *cl, struct err **err)
{
    if (!*cl->docker_push_url) {
        err_makex(err, ENOENT, "ERROR: Docker push URL not configured, set it with 'flynn "
                               "docker set-push-url'");
        return NULL;
    }
    const char *p = strstr(cl->docker_push_url, "://");
    p = p ? p + 3 : cl->docker_push_url;
    return xstrndup(p, strcspn(p, "/?#"));
}

static void tls_warning(const char *host, const char *ca)
{
    printf("WARN: docker configuration failed with a TLS error.\nWARN:\n"
           "WARN: Copy the TLS CA certificate %s\nWARN: to /etc/docker/certs.d/%s/ca.crt\n"
           "WARN: on the docker daemon's host and restart docker.\nWARN:\n"
           "WARN: If using Docker for Mac, go to Docker -> Preferences\n"
           "WARN: -> Advanced, add \"%s\" as an\n"
           "WARN: Insecure Registry and hit \"Apply & Restart\".\n\n",
           ca, host, host);
}

int docker_login(const char *host, const char *key, const char *ca_path, struct err **err)
{
    cleanup_free char *pw = xasprintf("--password=%s", key);
    cleanup_free char *email = xasprintf("--email=user@%s", host);
    for (int with_email = 0; with_email < 2; with_email++) {
        cleanup_strbuf struct strbuf out = STRBUF_INIT;
        const char *argv[] = {"docker", "login", "--username=user", pw,
                              with_email ? email : host, with_email ? host : NULL, NULL};
        struct err *e = NULL;
        int rc = proc_run(argv, &out, &e);
        if (rc < 0) {
            err_free(e);
            return err_makex(err, ENOENT, "Executable 'docker' was not found.");
        }
        if (!with_email && strstr(out.buf, "Email: EOF"))
            continue;
        if (strstr(out.buf, "certificate signed by unknown authority")) {
            tls_warning(host, ca_path);
            return err_makex(err, EIO, "Error configuring docker, follow the above instructions "
                                       "and try again.");
        }
        if (rc != 0) {
            cleanup_free char *q = go_quote(out.buf);
            return err_makex(err, EIO, "error running `docker login`: exit status %d - output: %s",
                             rc, q);
        }
        return 0;
    }
    return 0;
}

static int docker_set_push_url(struct cli *cli, const char *url, struct err **err)
{
    deprecated();
    struct flynnrc_cluster *cl = cli_cluster(cli, err);
    if (!cl)
        return -1;
    cleanup_free char *u = NULL;
    if (!url || !*url) {
        if (*cl->docker_push_url) {
            cleanup_free char *q = go_quote(cl->docker_push_url);
            return err_makex(err, EEXIST,
                             "ERROR: refusing to overwrite current Docker push URL %s with a "
                             "default one. To overwrite the existing URL, set one explicitly with "
                             "'flynn docker set-push-url URL'",
                             q);
        }
        const char *p = strstr(cl->controller_url, "controller");
        if (!p)
            return err_makex(err, EINVAL, "ERROR: unable to determine default Docker push URL, "
                                          "set one explicitly with 'flynn docker set-push-url "
                                          "URL'");
        u = xasprintf("%.*sdocker%s", (int)(p - cl->controller_url), cl->controller_url, p + 10);
    } else {
        u = xstrdup(url);
    }
    free(cl->docker_push_url);
    cl->docker_push_url = strncmp(u, "https://", 8) ? xasprintf("https://%s", u) : xstrdup(u);
    return flynnrc_save(cli->rc, cli->rc_path, err);
}

static int docker_login_cmd(struct cli *cli, int logout, struct err **err)
{
    deprecated();
    struct flynnrc_cluster *cl = cli_cluster(cli, err);
    if (!cl)
        return -1;
    cleanup_free char *host = push_host(cl, err);
    if (!host)
        return -1;
    if (!logout) {
        cleanup_free char *dir = flynnrc_dir();
        cleanup_free char *ca = xasprintf("%s/ca-certs/%s.pem", dir, cl->name);
        return docker_login(host, cl->key, ca, err);
    }
    cleanup_strbuf struct strbuf out = STRBUF_INIT;
    const char *argv[] = {"docker", "logout", host, NULL};
    int rc = proc_run(argv, &out, err);
    fwrite(out.buf, 1, out.len, stdout);
    if (rc < 0)
        return -1;
    return rc ? err_makex(err, EIO, "exit status %d", rc) : 0;
}

int cmd_docker(struct cli *cli, int argc, char **argv, struct err **err)
{
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 1, 2) < 0)
        return CLI_USAGE;
    int ret;
    const char *sub = o.pos[0];
    if (!strcmp(sub, "push") && o.npos == 2)
        ret = docker_push(cli, o.pos[1], err);
    else if (!strcmp(sub, "set-push-url"))
        ret = docker_set_push_url(cli, o.npos == 2 ? o.pos[1] : NULL, err);
    else if ((!strcmp(sub, "login") || !strcmp(sub, "logout")) && o.npos == 1)
        ret = docker_login_cmd(cli, !strcmp(sub, "logout"), err);
    else
        ret = cli_usage(cli);
    opts_release(&o);
    return ret;
}
