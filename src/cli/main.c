/*
 * flynn: the command-line client of a Flynn cluster.
 *
 * Same commands, flags, output and errors as Flynn's Go CLI, so users,
 * scripts and docs written for it keep working. This file is the whole
 * command surface: the table below, global flags, and how the cluster and
 * app of a run are chosen.
 *
 * How to add a command:
 *   1. Write `int cmd_<name>(struct cli *, int argc, char **argv,
 *      struct err **)` in cmd_<noun>.c (one file per group of commands).
 *      argv holds the arguments after the command name. Parse them with
 *      cli_parse() (it prints the usage and returns CLI_USAGE on a bad
 *      command line); use cli_app()/cli_client() for the app and the
 *      controller client; print results to stdout, messages to stderr.
 *      Return 0, or -1 with *err set to what Flynn prints ("CODE: MESSAGE"
 *      for controller errors comes from client.c as is).
 *   2. Add its usage text to usage.c (Flynn's, word for word) and declare
 *      both in cli.h.
 *   3. Add a row to `commands` below; `flynn help NAME` then works.
 *   4. Cover it in tests/t5000-cli.py and list it in docs/internals/cli.md.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "git.h"
#include "xalloc.h"

static const struct cli_command commands[] = {
    {"cluster", cmd_cluster, cli_usage_cluster},
    {"git-credentials", cmd_git_credentials, cli_usage_git_credentials},
    {"create", cmd_create, cli_usage_create},
    {"delete", cmd_delete, cli_usage_delete},
    {"apps", cmd_apps, cli_usage_apps},
    {"info", cmd_info, cli_usage_info},
    {"ps", cmd_ps, cli_usage_ps},
    {"kill", cmd_kill, cli_usage_kill},
    {"scale", cmd_scale, cli_usage_scale},
    {"env", cmd_env, cli_usage_env},
    {"limit", cmd_limit, cli_usage_limit},
    {"meta", cmd_meta, cli_usage_meta},
    {"release", cmd_release, cli_usage_release},
    {"deployment", cmd_deployment, cli_usage_deployment},
    {"version", cmd_version, cli_usage_version},
    {"remote", cmd_remote, cli_usage_remote},
    {"import", cmd_import, cli_usage_import},
    {"export", cmd_export, cli_usage_export},
    {"docker", cmd_docker, cli_usage_docker},
    {"redis", cmd_redis, cli_usage_redis},
    {"mongodb", cmd_mongodb, cli_usage_mongodb},
    {"mysql", cmd_mysql, cli_usage_mysql},
    {"pg", cmd_pg, cli_usage_pg},
    {"volume", cmd_volume, cli_usage_volume},
    {"resource", cmd_resource, cli_usage_resource},
    {"provider", cmd_provider, cli_usage_provider},
    {"run", cmd_run, cli_usage_run},
    {"log", cmd_log, cli_usage_log},
    {"route", cmd_route, cli_usage_route},
};

static const char main_usage[] =
    "usage: flynn [-a <app>] [-c <cluster>] <command> [<args>...]\n"
    "\n"
    "Options:\n"
    "\t-a <app>\n"
    "\t-c <cluster>\n"
    "\t-h, --help\n"
    "\n"
    "Commands:\n"
    "\thelp        show usage for a specific command\n"
    "\tcluster     manage clusters\n"
    "\tcreate      create an app\n"
    "\tdelete      delete an app\n"
    "\tapps        list apps\n"
    "\tinfo        show app information\n"
    "\tps          list jobs\n"
    "\tkill        kill jobs\n"
    "\tlog         get app log\n"
    "\tscale       change formation\n"
    "\trun         run a job\n"
    "\tenv         manage env variables\n"
    "\tlimit       manage resource limits\n"
    "\tmeta        manage app metadata\n"
    "\troute       manage routes\n"
    "\tpg          manage postgres database\n"
    "\tmysql       manage mysql database\n"
    "\tmongodb     manage mongodb database\n"
    "\tredis       manage redis database\n"
    "\tprovider    manage resource providers\n"
    "\tdocker      deploy Docker images to a Flynn cluster\n"
    "\tremote      manage git remotes\n"
    "\tresource    provision a new resource\n"
    "\trelease     manage app releases\n"
    "\tdeployment  list deployments\n"
    "\tvolume      manage volumes\n"
    "\texport      export app data\n"
    "\timport      create app from exported data\n"
    "\tversion     show flynn version\n"
    "\n"
    "See 'flynn help <command>' for more information on a specific command.\n";

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static const char *missing_usage(const char *name)
{
    for (size_t i = 0; i < cli_nunimplemented; i++)
        if (!strcmp(cli_unimplemented[i].name, name))
            return cli_unimplemented[i].usage;
    return NULL;
}

/* A usage text as `help` prints it: trailing blank space dropped, one newline. */
static void print_usage(const char *usage)
{
    size_t n = strlen(usage);
    while (n && (usage[n - 1] == '\n' || usage[n - 1] == ' ' || usage[n - 1] == '\t'))
        n--;
    printf("%.*s\n", (int)n, usage);
}

/* A JSON string as Go's encoding/json writes it (<, >, & escaped). */
static void print_go_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '<':
        case '>':
        case '&': printf("\\u%04x", *p); break;
        default:
            if (*p < 0x20)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
    }
    putchar('"');
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct cli_usage_entry *)a)->name,
                  ((const struct cli_usage_entry *)b)->name);
}

/* `flynn help --json`: every command's usage, as Flynn's MarshalIndent. */
static int help_json(void)
{
    size_t n = ARRAY_SIZE(commands) + cli_nunimplemented;
    struct cli_usage_entry *all = xcalloc(n, sizeof(*all));
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        all[k++] = (struct cli_usage_entry){commands[i].name, commands[i].usage};
    for (size_t i = 0; i < cli_nunimplemented; i++)
        all[k++] = cli_unimplemented[i];
    qsort(all, n, sizeof(*all), cmp_entry);
    printf("{\n");
    for (size_t i = 0; i < n; i++) {
        printf("\t");
        print_go_json_string(all[i].name);
        printf(": ");
        print_go_json_string(all[i].usage);
        printf("%s\n", i + 1 < n ? "," : "");
    }
    printf("}\n");
    free(all);
    return 0;
}

static void print_usage_lines(const char *usage)
{
    const char *end = strstr(usage, "\n\n");
    size_t n = end ? (size_t)(end - usage) : strlen(usage);
    printf("%.*s\n", (int)n, usage);
}

int cli_usage(struct cli *cli)
{
    print_usage_lines(cli->cmd ? cli->cmd->usage : main_usage);
    return CLI_USAGE;
}

int cli_parse(struct cli *cli, struct opts *o, const struct opt_spec *specs, size_t nspecs,
              int argc, char **argv, int minpos, int maxpos)
{
    struct err *e = NULL;
    if (opts_parse(o, specs, nspecs, argc, argv, &e) < 0) {
        err_free(e);
        opts_release(o);
        return cli_usage(cli);
    }
    if (o->npos < minpos || (maxpos >= 0 && o->npos > maxpos)) {
        opts_release(o);
        return cli_usage(cli);
    }
    return 0;
}

struct flynnrc *cli_config(struct cli *cli, struct err **err)
{
    if (cli->rc)
        return cli->rc;
    if (!cli->rc_path)
        cli->rc_path = flynnrc_path();
    cli->rc = flynnrc_load(cli->rc_path, err);
    return cli->rc;
}

/* Flynn's app(): -a, $FLYNN_APP, then the git remote (which also picks the
 * cluster). */
const char *cli_app(struct cli *cli, struct err **err)
{
    if (cli->app)
        return cli->app;
    const char *env = getenv("FLYNN_APP");
    if (env && *env) {
        cli->app = xstrdup(env);
        return cli->app;
    }
    struct flynnrc *rc = cli_config(cli, err);
    if (!rc)
        return NULL;
    cleanup_free char *remote = git_config_get("flynn.remote");
    struct flynnrc_cluster *c = NULL;
    struct err *e = NULL;
    char *app = git_app_from_remote(rc, cli->flag_cluster, remote, &c, &e);
    if (!app) {
        if (e) {
            *err = e;
            return NULL;
        }
        err_makex(err, ENOENT, "no app found, run from a repo with a flynn remote or specify one "
                               "with -a");
        return NULL;
    }
    cli->cluster = c;
    cli->app = app;
    return app;
}

struct flynnrc_cluster *cli_cluster(struct cli *cli, struct err **err)
{
    if (!cli->app) {
        struct err *ignored = NULL;
        cli_app(cli, &ignored); /* the app's git remote may choose the cluster */
        err_free(ignored);
    }
    if (cli->cluster)
        return cli->cluster;
    struct flynnrc *rc = cli_config(cli, err);
    if (!rc)
        return NULL;
    if (!rc->nclusters) {
        err_makex(err, ENOENT, "no clusters configured");
        return NULL;
    }
    const char *name = cli->flag_cluster;
    if (!name || !*name)
        name = rc->default_name;
    if (!*name) {
        cli->cluster = rc->clusters[0];
        return cli->cluster;
    }
    cli->cluster = flynnrc_find(rc, name);
    if (!cli->cluster) {
        cleanup_free char *q = go_quote(name);
        err_makex(err, ENOENT, "unknown cluster %s", q);
    }
    return cli->cluster;
}

struct client *cli_client(struct cli *cli, struct err **err)
{
    if (cli->client)
        return cli->client;
    struct flynnrc_cluster *c = cli_cluster(cli, err);
    if (!c)
        return NULL;
    cli->client = client_new(c->controller_url, c->key, c->tls_pin, err);
    return cli->client;
}

static char *self_path(const char *argv0)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n > 0) {
        buf[n] = '\0';
        return xstrdup(buf);
    }
    return xstrdup(argv0);
}

static int help(int argc, char **argv)
{
    if (argc == 0) {
        printf("%s\n", main_usage);
        return 0;
    }
    if (!strcmp(argv[0], "--json"))
        return help_json();
    const struct cli_command *cmd = find_command(argv[0]);
    const char *usage = cmd ? cmd->usage : missing_usage(argv[0]);
    if (!usage) {
        fprintf(stderr, "%s is not a flynn command. See 'flynn help'\n", argv[0]);
        return 1;
    }
    print_usage(usage);
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    const char *env_cluster = getenv("FLYNN_CLUSTER");
    cli.flag_cluster = env_cluster && *env_cluster ? env_cluster : NULL;

    /* Global options come before the command (docopt's options-first). */
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", main_usage);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("dev\n");
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (a[1] == 'a' || a[1] == 'c') {
            const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                print_usage_lines(main_usage);
                return 1;
            }
            if (a[1] == 'a')
                cli.flag_app = v;
            else
                cli.flag_cluster = v;
        } else {
            print_usage_lines(main_usage);
            return 1;
        }
    }
    if (i >= argc) {
        print_usage_lines(main_usage);
        return 1;
    }
    const char *name = argv[i++];
    if (!strcmp(name, "help"))
        return help(argc - i, argv + i);
    cli.cmd = find_command(name);
    const char *usage = cli.cmd ? cli.cmd->usage : missing_usage(name);
    /* -h/--help anywhere before "--" shows the usage, as docopt does; for
     * run (options first) only before the command it runs. */
    int opts_first = !strcmp(name, "run");
    for (int j = i; usage && j < argc && strcmp(argv[j], "--"); j++) {
        if (!strcmp(argv[j], "-h") || !strcmp(argv[j], "--help")) {
            print_usage(usage);
            return 0;
        }
        if (opts_first && argv[j][0] != '-')
            break;
    }
    if (!cli.cmd) {
        if (usage)
            fprintf(stderr, "%s is not implemented in this client yet; use Flynn's Go CLI for "
                            "it\n", name);
        else
            fprintf(stderr, "%s is not a flynn command. See 'flynn help'\n", name);
        return 1;
    }
    cli.self = self_path(argv[0]);

    struct err *e = NULL;
    if (cli.flag_app) {
        /* -a may name a git remote, as in Flynn */
        struct flynnrc *rc = cli_config(&cli, &e);
        if (!rc) {
            fprintf(stderr, "%s\n", e->msg);
            err_free(e);
            return 1;
        }
        struct flynnrc_cluster *c = NULL;
        char *app = NULL;
        if (git_in_repo())
            app = git_app_from_remote(rc, cli.flag_cluster, cli.flag_app, &c, &e);
        err_free(e);
        e = NULL;
        if (app) {
            cli.app = app;
            cli.cluster = c;
        } else {
            cli.app = xstrdup(cli.flag_app);
        }
    }

    int rc = cli.cmd->run(&cli, argc - i, argv + i, &e);
    if (rc == -1) {
        fprintf(stderr, "%s\n", e ? e->msg : "unknown error");
        err_free(e);
    }
    client_free(cli.client);
    flynnrc_free(cli.rc);
    free(cli.rc_path);
    free(cli.app);
    free((char *)cli.self);
    return rc == 0 ? cli.exit_code : 1;
}
