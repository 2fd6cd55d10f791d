/* cluster backup: a tar of the key apps' config and database dumps, made by
 * the client as Flynn's does (flynn.json, postgres.sql.gz, and when those
 * apps run, mysql.sql.gz and mongodb.archive.gz). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tarw.h"
#include "xalloc.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Runs job under app with its stdout in a temp file, then adds the file. */
int tar_job_output(struct tar *t, struct client *c, const char *name, const char *app,
                   json_t *job, struct err **err)
{
    char tmpl[] = "/tmp/flynn-backup-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return err_make(err, errno, "error creating temp file");
    unlink(tmpl);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    json_t *args = json_object_get(job, "args");
    json_t *cmd = json_array();
    for (size_t i = 1; i < json_array_size(args); i++)
        json_array_append(cmd, json_array_get(args, i));
    json_object_set_new(job, "cmd", cmd);
    json_object_set_new(job, "entrypoint", json_pack("[O]", json_array_get(args, 0)));
    int status = 0, ret = -1;
    if (job_attach(c, app, job, devnull, fd, 2, 0, &status, err) < 0) {
        err_wrap(err, "error running %s export", app);
        goto out;
    }
    if (status != 0) {
        err_makex(err, EIO, "error running %s export: unexpected command exit status %d", app,
                  status);
        goto out;
    }
    ret = tar_fd(t, name, fd, err);
out:
    close(devnull);
    close(fd);
    return ret;
}

/* The key apps: app, release, processes, as Flynn's getApps collects them. */
static json_t *get_apps(struct client *c, struct err **err)
{
    static const struct {
        const char *name;
        int required;
    } apps[] = {{"controller", 1}, {"discoverd", 1}, {"flannel", 1},
                {"mariadb", 0},    {"mongodb", 0},   {"postgres", 1}};
    json_t *data = json_object();
    for (size_t i = 0; i < ARRAY_SIZE(apps); i++) {
        const char *name = apps[i].name;
        json_t *app = NULL, *rel = NULL, *form = NULL;
        char *path = xasprintf("/apps/%s", name);
        struct err *e = NULL;
        int rc = client_json(c, "GET", path, NULL, &app, &e);
        free(path);
        if (rc < 0) {
            if (!apps[i].required) {
                err_free(e);
                continue;
            }
            *err = e;
            err_wrap(err, "error getting %s app details", name);
            goto fail;
        }
        char *eid = client_escape(jstr(app, "id"));
        path = xasprintf("/apps/%s/release", eid);
        rc = client_json(c, "GET", path, NULL, &rel, err);
        free(path);
        if (rc < 0) {
            free(eid);
            json_decref(app);
            err_wrap(err, "error getting %s app release", name);
            goto fail;
        }
        char *erid = client_escape(jstr(rel, "id"));
        path = xasprintf("/apps/%s/formations/%s", eid, erid);
        rc = client_json(c, "GET", path, NULL, &form, err);
        free(path);
        free(eid);
        free(erid);
        if (rc < 0) {
            json_decref(app);
            json_decref(rel);
            err_wrap(err, "error getting %s app formation", name);
            goto fail;
        }
        json_t *procs = json_object_get(form, "processes");
        json_t *ef = json_pack("{s:o,s:o}", "app", app, "release", rel);
        if (json_object_size(procs))
            json_object_set(ef, "processes", procs);
        json_object_set_new(ef, "updated_at", json_string("0001-01-01T00:00:00Z"));
        json_object_set_new(ef, "artifact", json_pack("{s:s}", "type", "docker"));
        json_object_set_new(data, name, ef);
        json_decref(form);
    }
    return data;
fail:
    json_decref(data);
    return NULL;
}

static long long procs_of(json_t *data, const char *app, const char *type)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(data, app), "processes"), type));
}

static json_t *job_for(json_t *data, const char *app, const char *script, const char *const *vars)
{
    json_t *renv = json_object_get(json_object_get(json_object_get(data, app), "release"), "env");
    json_t *env = json_object();
    for (; *vars; vars++)
        json_object_set_new(env, *vars, json_string(jstr(renv, *vars)));
    const char *rid = jstr(json_object_get(json_object_get(data, app), "release"), "id");
    return json_pack("{s:s,s:[sss],s:o,s:b,s:s}", "release", rid, "args", "bash", "-c", script,
                     "env", env, "disable_log", 1, "partition", "background");
}

int cluster_backup(struct cli *cli, const char *file, struct err **err)
{
    struct client *c = cli_client(cli, err);
    if (!c)
        return -1;
    struct tar t = {.fd = 1, .now = time(NULL)};
    struct tm tm;
    gmtime_r(&t.now, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%d_%H%M%S", &tm);
    t.dir = xasprintf("flynn-backup-%s", stamp);
    json_t *data = NULL, *job = NULL;
    char *text = NULL, *script = NULL;
    int ret = -1;
    if (file && *file) {
        t.fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (t.fd < 0) {
            err_make(err, errno, "open %s", file);
            goto out;
        }
    }
    fprintf(stderr, "Creating cluster backup...\n");
    data = get_apps(c, err);
    if (!data)
        goto out;
    char *json = json_dumps(data, JSON_INDENT(2) | JSON_SORT_KEYS);
    text = xasprintf("%s\n", json);
    free(json);
    if (tar_file(&t, "flynn.json", text, strlen(text), err) < 0)
        goto out;
    static const char *const pg_vars[] = {"PGHOST", "PGUSER", "PGPASSWORD", NULL};
    job = job_for(data, "postgres", "set -o pipefail; pg_dumpall --clean --if-exists | gzip -9",
                  pg_vars);
    if (tar_job_output(&t, c, "postgres.sql.gz", "postgres", job, err) < 0) {
        err_wrap(err, "error dumping postgres database");
        goto out;
    }
    json_decref(job);
    job = NULL;
    json_t *renv;
    if (procs_of(data, "mariadb", "mariadb") > 0) {
        static const char *const vars[] = {"MYSQL_PWD", NULL};
        renv = json_object_get(json_object_get(json_object_get(data, "mariadb"), "release"), "env");
        script = xasprintf("set -o pipefail; /usr/bin/mysqldump -h %s -u %s --all-databases "
                           "--flush-privileges | gzip -9",
                           jstr(renv, "MYSQL_HOST"), jstr(renv, "MYSQL_USER"));
        job = job_for(data, "mariadb", script, vars);
        if (tar_job_output(&t, c, "mysql.sql.gz", "mariadb", job, err) < 0) {
            err_wrap(err, "error dumping mariadb database");
            goto out;
        }
        json_decref(job);
        job = NULL;
        free(script);
        script = NULL;
    }
    if (procs_of(data, "mongodb", "mongodb") > 0) {
        static const char *const vars[] = {"MONGO_PWD", NULL};
        renv = json_object_get(json_object_get(json_object_get(data, "mongodb"), "release"), "env");
        script = xasprintf("set -o pipefail; /usr/bin/mongodump --host %s -u %s -p $MONGO_PWD "
                           "--authenticationDatabase admin --archive | gzip -9",
                           jstr(renv, "MONGO_HOST"), jstr(renv, "MONGO_USER"));
        job = job_for(data, "mongodb", script, vars);
        if (tar_job_output(&t, c, "mongodb.archive.gz", "mongodb", job, err) < 0) {
            err_wrap(err, "error dumping mongodb database");
            goto out;
        }
    }
    if (tar_end(&t, err) < 0)
        goto out;
    fprintf(stderr, "Backup complete.\n");
    ret = 0;
out:
    if (t.fd > 1)
        close(t.fd);
    free(t.dir);
    free(text);
    free(script);
    json_decref(job);
    json_decref(data);
    return ret;
}
