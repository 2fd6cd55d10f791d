/* pg, mysql, mongodb, redis: consoles, dumps and restores as one-off jobs running
 * the database app's release under the user's app (docs/flynn-api.md §9.2). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc.h"

struct db_kind {
    const char *cmd;     /* flynn CMD ... */
    const char *console; /* its console subcommand */
    const char *app_var; /* env var naming the database app */
    const char *what;    /* "postgres": for messages */
    const char *vars[4]; /* env vars the job needs (none for redis) */
    const char *thing;   /* "database", or "server" for redis */
};

static const struct db_kind kinds[] = {
    {"pg", "psql", "FLYNN_POSTGRES", "postgres", {"PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE"},
     "database"},
    {"mysql", "console", "FLYNN_MYSQL", "mysql",
     {"MYSQL_HOST", "MYSQL_USER", "MYSQL_PWD", "MYSQL_DATABASE"}, "database"},
    {"mongodb", "mongo", "FLYNN_MONGO", "mongodb",
     {"MONGO_HOST", "MONGO_USER", "MONGO_PWD", "MONGO_DATABASE"}, "database"},
    {"redis", "redis-cli", "FLYNN_REDIS", "redis", {NULL}, "server"},
};

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *get_release(struct client *c, const char *app, const char *what, struct err **err)
{
    char *ea = client_escape(app);
    char *path = xasprintf("/apps/%s/release", ea);
    json_t *r = NULL;
    if (client_json(c, "GET", path, NULL, &r, err) < 0)
        err_wrap(err, "error getting %s release", what);
    free(path);
    free(ea);
    return r;
}

/* The release to run and the job env, as Flynn's get*RunConfig. */
static int db_config(const struct db_kind *k, struct client *c, const char *app, char **release,
                     json_t **env, char **dbapp_out, char **password, struct err **err)
{
    json_t *rel = get_release(c, app, "app", err);
    if (!rel)
        return -1;
    int ret = -1;
    json_t *dbrel = NULL;
    json_t *aenv = json_object_get(rel, "env");
    const char *dbapp = jstr(aenv, k->app_var);
    if (!*dbapp) {
        err_makex(err, ENOENT, "No %s %s found. Provision one with `flynn resource add %s`",
                  k->what, k->thing, k->what);
        goto out;
    }
    dbrel = get_release(c, dbapp, k->what, err);
    if (!dbrel)
        goto out;
    if (!strcmp(k->cmd, "mysql") && !*jstr(aenv, "MYSQL_USER")) {
        err_makex(err, ENOENT, "missing MYSQL_USER in app environment");
        goto out;
    }
    *env = json_object();
    for (size_t i = 0; i < 4 && k->vars[i]; i++) {
        const char *v = jstr(aenv, k->vars[i]);
        if (!*v) {
            json_decref(*env);
            *env = NULL;
            err_makex(err, ENOENT, "missing %s in app environment", k->vars[i]);
            goto out;
        }
        json_object_set_new(*env, k->vars[i], json_string(v));
    }
    *release = xstrdup(jstr(dbrel, "id"));
    *dbapp_out = xstrdup(dbapp);
    *password = xstrdup(jstr(aenv, "REDIS_PASSWORD"));
    ret = 0;
out:
    json_decref(dbrel);
    json_decref(rel);
    return ret;
}

static const char *ev(json_t *env, const char *k)
{
    return jstr(env, k);
}

/* The command of each operation, as Flynn builds it. */
static json_t *db_args(const struct db_kind *k, const char *op, json_t *env, int jobs,
                       const char *dbapp, const char *password)
{
    if (!strcmp(k->cmd, "redis")) {
        const char *bin = !strcmp(op, "console") ? "redis-cli"
                          : !strcmp(op, "dump")  ? "/bin/dump-flynn-redis"
                                                 : "/bin/restore-flynn-redis";
        char *host = xasprintf("%s.discoverd", dbapp);
        json_t *a = json_pack("[sssss]", bin, "-h", host, "-a", password);
        free(host);
        return a;
    }
    if (!strcmp(k->cmd, "pg")) {
        if (!strcmp(op, "console"))
            return json_pack("[s]", "psql");
        if (!strcmp(op, "dump"))
            return json_pack("[ssss]", "pg_dump", "--format=custom", "--no-owner", "--no-acl");
        if (jobs > 1) {
            char *script = xasprintf("set -o pipefail; cat > /data/temp.dump && pg_restore -d %s "
                                     "-n public --clean --if-exists --no-owner --no-acl --jobs %d "
                                     "/data/temp.dump",
                                     ev(env, "PGDATABASE"), jobs);
            json_t *a = json_pack("[sss]", "bash", "-c", script);
            free(script);
            return a;
        }
        return json_pack("[ssssssss]", "pg_restore", "-d", ev(env, "PGDATABASE"), "-n", "public",
                         "--clean", "--if-exists", "--no-owner");
    }
    if (!strcmp(k->cmd, "mysql")) {
        if (!strcmp(op, "dump"))
            return json_pack("[ssssss]", "mysqldump", "-h", ev(env, "MYSQL_HOST"), "-u",
                             ev(env, "MYSQL_USER"), ev(env, "MYSQL_DATABASE"));
        return json_pack("[sssss]", "mysql", "-u", ev(env, "MYSQL_USER"), "-D",
                         ev(env, "MYSQL_DATABASE"));
    }
    const char *bin = !strcmp(op, "console") ? "mongo"
                      : !strcmp(op, "dump")  ? "/bin/dump-flynn-mongodb"
                                             : "/bin/restore-flynn-mongodb";
    if (!strcmp(op, "console"))
        return json_pack("[ssssssss]", bin, "--host", ev(env, "MONGO_HOST"), "-u",
                         ev(env, "MONGO_USER"), "-p", ev(env, "MONGO_PWD"),
                         ev(env, "MONGO_DATABASE"));
    return json_pack("[sssssssss]", bin, "--host", ev(env, "MONGO_HOST"), "-u",
                     ev(env, "MONGO_USER"), "-p", ev(env, "MONGO_PWD"), "--db",
                     ev(env, "MONGO_DATABASE"));
}

static int cmd_db(const struct db_kind *k, struct cli *cli, int argc, char **argv,
                  struct err **err)
{
    static const struct opt_spec specs[] = {{'q', "quiet", 0}, {'f', "file", 1}, {'j', "jobs", 1}};
    const char *sub = argc ? argv[0] : "";
    int console = !strcmp(sub, k->console);
    int dump = !strcmp(sub, "dump"), restore = !strcmp(sub, "restore");
    struct opts o = {0};
    if (!console && !dump && !restore)
        return cli_usage(cli);
    if (!console) {
        if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs) - !restore, argc - 1, argv + 1, 0, 0) < 0)
            return CLI_USAGE;
        if (strcmp(k->cmd, "pg") && opts_has(&o, "jobs")) {
            opts_release(&o);
            return cli_usage(cli);
        }
    }
    int ret = -1, fd = -1;
    char *release = NULL, *dbapp = NULL, *password = NULL;
    json_t *env = NULL, *args = NULL, *status_json = NULL;
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c || db_config(k, c, app, &release, &env, &dbapp, &password, err) < 0)
        goto out;
    int jobs = 1;
    if (restore && !strcmp(k->cmd, "pg")) {
        const char *j = opts_get(&o, "jobs", "1");
        char *end;
        jobs = (int)strtol(j, &end, 10);
        if (!*j || *end) {
            char *q = go_quote(j);
            err_makex(err, EINVAL, "strconv.Atoi: parsing %s: invalid syntax", q);
            free(q);
            goto out;
        }
        if (jobs > 1) {
            if (client_json(c, "GET", "/.well-known/status", NULL, &status_json, err) < 0)
                goto out;
            const char *v = jstr(json_object_get(status_json, "data"), "version");
            if (v[0] == 'v' && strlen(v) >= 11 && strcmp(v, "v20161018.0") < 0) {
                fprintf(stderr, "WARN: cluster versions prior to v20161018.0 don't support the "
                                "--jobs argument for parallel restore, falling back to "
                                "--jobs=1\n");
                jobs = 1;
            }
        }
    }
    args = db_args(k, console ? "console" : sub, env, jobs, dbapp, password);
    if (restore && !strcmp(k->cmd, "pg") && jobs <= 1)
        json_array_append_new(args, json_string("--no-acl"));
    struct run_config rc = {.app = app, .release = release, .args = args, .env = env,
                            .disable_log = 1, .in_fd = -1, .out_fd = -1};
    if (console) {
        for (int i = 1; i < argc; i++)
            if (i > 1 || strcmp(argv[i], "--"))
                json_array_append_new(args, json_string(argv[i]));
        json_object_set_new(env, "PAGER", json_string("less"));
        json_object_set_new(env, "LESS", json_string("--ignore-case --LONG-PROMPT --SILENT "
                                                     "--tabs=4 --quit-if-one-screen --no-init "
                                                     "--quit-at-eof"));
    }
    const char *file = opts_get(&o, "file", "");
    if (dump) {
        rc.out_fd = 1;
        if (*file) {
            fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
            if (fd < 0) {
                err_make(err, errno, "open %s", file);
                goto out;
            }
            rc.out_fd = fd;
        }
    } else if (restore) {
        rc.in_fd = 0;
        rc.data = (!strcmp(k->cmd, "pg") && jobs > 1) || !strcmp(k->cmd, "mongodb");
        if (*file) {
            fd = open(file, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                err_make(err, errno, "open %s", file);
                goto out;
            }
            rc.in_fd = fd;
        }
    }
    int status = 0;
    if (run_job(c, &rc, &status, err) < 0)
        goto out;
    cli->exit_code = status > 255 ? 255 : status;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    free(release);
    free(dbapp);
    free(password);
    json_decref(status_json);
    json_decref(env);
    json_decref(args);
    opts_release(&o);
    return ret;
}

int cmd_pg(struct cli *cli, int argc, char **argv, struct err **err)
{
    return cmd_db(&kinds[0], cli, argc, argv, err);
}

int cmd_mysql(struct cli *cli, int argc, char **argv, struct err **err)
{
    return cmd_db(&kinds[1], cli, argc, argv, err);
}

int cmd_mongodb(struct cli *cli, int argc, char **argv, struct err **err)
{
    return cmd_db(&kinds[2], cli, argc, argv, err);
}

int cmd_redis(struct cli *cli, int argc, char **argv, struct err **err)
{
    return cmd_db(&kinds[3], cli, argc, argv, err);
}

json_t *db_dump_job(const char *kind, struct client *c, const char *app, struct err **err)
{
    const struct db_kind *k = !strcmp(kind, "pg") ? &kinds[0] : &kinds[1];
    char *release = NULL, *dbapp = NULL, *password = NULL;
    json_t *env = NULL;
    if (db_config(k, c, app, &release, &env, &dbapp, &password, err) < 0)
        return NULL;
    json_t *job = json_pack("{s:s,s:o,s:o,s:b}", "release", release, "args",
                            db_args(k, "dump", env, 1, dbapp, password), "env", env, "disable_log",
                            1);
    free(release);
    free(dbapp);
    free(password);
    return job;
}

int db_restore(const char *kind, struct client *c, const char *app, json_t *app_env, int in_fd,
               int jobs, struct err **err)
{
    const struct db_kind *k = !strcmp(kind, "pg") ? &kinds[0] : &kinds[1];
    json_t *aenv = app_env;
    const char *dbapp = json_string_value(json_object_get(aenv, k->app_var));
    if (!dbapp || !*dbapp)
        return err_makex(err, ENOENT, "No %s %s found. Provision one with `flynn resource add %s`",
                         k->what, k->thing, k->what);
    json_t *dbrel = get_release(c, dbapp, k->what, err);
    if (!dbrel)
        return -1;
    int ret = -1;
    json_t *env = json_object(), *args = NULL, *status_json = NULL;
    for (size_t i = 0; i < 4 && k->vars[i]; i++) {
        const char *v = jstr(aenv, k->vars[i]);
        if (!*v) {
            err_makex(err, ENOENT, "missing %s in app environment", k->vars[i]);
            goto out;
        }
        json_object_set_new(env, k->vars[i], json_string(v));
    }
    if (!strcmp(kind, "pg") && jobs > 1) {
        if (client_json(c, "GET", "/.well-known/status", NULL, &status_json, err) < 0)
            goto out;
        const char *v = jstr(json_object_get(status_json, "data"), "version");
        if (v[0] == 'v' && strlen(v) >= 11 && strcmp(v, "v20161018.0") < 0) {
            fprintf(stderr, "WARN: cluster versions prior to v20161018.0 don't support the "
                            "--jobs argument for parallel restore, falling back to --jobs=1\n");
            jobs = 1;
        }
    }
    args = db_args(k, "restore", env, jobs, dbapp, "");
    if (!strcmp(kind, "pg") && jobs <= 1)
        json_array_append_new(args, json_string("--no-acl"));
    struct run_config rc = {.app = app, .release = jstr(dbrel, "id"), .args = args, .env = env,
                            .disable_log = 1, .in_fd = in_fd, .out_fd = 1,
                            .data = !strcmp(kind, "pg") && jobs > 1};
    int status = 0;
    if (run_job(c, &rc, &status, err) < 0)
        goto out;
    if (status != 0 && status != 1) { /* 1: restore warnings, fine for Flynn */
        err_makex(err, EIO, "remote job exited with status %d", status);
        goto out;
    }
    ret = 0;
out:
    json_decref(status_json);
    json_decref(args);
    json_decref(env);
    json_decref(dbrel);
    return ret;
}
