/*
 * cli: what every command of the flynn client shares.
 *
 * main.c holds the command table and builds one struct cli per run. A
 * command gets it plus its own arguments (argv[0] is the first argument
 * after the command name) and returns 0, CLI_USAGE after printing its
 * usage, or -1 with *err set; main prints err's message and exits 1, as
 * Flynn's CLI does. The cluster, app and client are looked up lazily, in
 * Flynn's order (docs/internals/cli.md).
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <jansson.h>
#include <stddef.h>

#include "client.h"
#include "err.h"
#include "flynnrc.h"
#include "opts.h"

#define CLI_USAGE (-2)

struct cli;

typedef int (*cli_run_fn)(struct cli *cli, int argc, char **argv, struct err **err);

struct cli_command {
    const char *name;
    cli_run_fn run;
    const char *usage; /* word for word Flynn's; see usage.c */
};

struct cli {
    const char *flag_app;     /* -a, or NULL */
    const char *flag_cluster; /* -c, else $FLYNN_CLUSTER, or NULL */
    const char *self;         /* absolute path of this binary */
    const struct cli_command *cmd;
    char *rc_path;
    struct flynnrc *rc;
    struct flynnrc_cluster *cluster; /* borrowed from rc */
    char *app;
    struct client *client;
    int exit_code; /* on success: the process exit status (flynn run) */
};

/* Prints the command's "usage:" lines to stdout; returns CLI_USAGE. */
int cli_usage(struct cli *cli);
/* Parses options and checks the positional count (maxpos -1: any). */
int cli_parse(struct cli *cli, struct opts *o, const struct opt_spec *specs, size_t nspecs,
              int argc, char **argv, int minpos, int maxpos);

/* The loaded ~/.flynnrc (an empty one when missing). */
struct flynnrc *cli_config(struct cli *cli, struct err **err);
/* The selected cluster: git remote's, -c, $FLYNN_CLUSTER, default, first. */
struct flynnrc_cluster *cli_cluster(struct cli *cli, struct err **err);
/* The selected app: -a, $FLYNN_APP, git remote. */
const char *cli_app(struct cli *cli, struct err **err);
/* A client for the selected cluster's controller. */
struct client *cli_client(struct cli *cli, struct err **err);

/* Shared helpers (cmd_util.c). */
/* Flynn's humanTime: "5 seconds ago", "" for a missing time. */
char *human_time(const char *rfc3339);
/* Go's time.Time String() of an RFC 3339 UTC time. */
char *go_time_string(const char *rfc3339);
/* Sorted keys of a JSON object; free the array, not the strings. */
const char **json_sorted_keys(json_t *obj, size_t *n);
/* POST /apps/APP/deploy and wait for it as Flynn does (§10.1). */
int deploy_release(struct client *c, const char *app, const char *release_id, struct err **err);
/* Flynn's setEnv: a new release with names[i] set to values[i] (removed
 * when values is NULL) in the app env, or process proc's env, deployed.
 * *new_id gets the release ID (caller frees). */
int env_update(struct cli *cli, const char *proc, char *const *names, char *const *values, int n,
               char **new_id, struct err **err);
/* Flynn's resource limits "TYPE=VALUE" (memory=512MB, cpu=500, ...) into
 * out as {TYPE: {"request": null, "limit": N}}; Flynn's messages. */
int resources_parse(char *const *pairs, int n, json_t *out, struct err **err);
/* Fills in Flynn's default memory, cpu, temp_disk and max_fd specs. */
void resources_set_defaults(json_t *res);
/* A one-off job as Flynn's runJob runs it (cmd_run.c). */
struct run_config {
    const char *app;
    const char *release;
    json_t *args;      /* array of strings (borrowed) */
    json_t *env;       /* object or NULL (borrowed) */
    json_t *resources; /* or NULL (borrowed) */
    json_t *profiles;  /* or NULL (borrowed) */
    const char *mounts_from;
    json_t *artifacts;    /* or NULL (borrowed): override the release's */
    const char *artifact; /* deprecated single artifact, or NULL */
    int detached, release_env, disable_log, data;
    int in_fd, out_fd; /* -1: the terminal's stdin/stdout, and a TTY when both are one */
    int discard_stderr;
};
/* Runs it; attached jobs relay I/O and signals and set *status to the job's
 * exit status; detached ones print the job ID on stderr. */
int run_job(struct client *c, const struct run_config *rc, int *status, struct err **err);
/* POST /apps/APP/jobs with body as an attached job and relays in_fd to it
 * and its stdout to out_fd, stderr to err_fd (-1: dropped) until it exits;
 * tty: raw mode. */
int job_attach(struct client *c, const char *app, json_t *body, int in_fd, int out_fd, int err_fd,
               int tty, int *status, struct err **err);
struct tar;
/* Runs job (a NewJob body) under app, stdin closed, and adds its stdout to
 * the tar as name (cmd_backup.c). */
int tar_job_output(struct tar *t, struct client *c, const char *name, const char *app,
                   json_t *job, struct err **err);
/* The NewJob body of `flynn pg dump` ("pg") or `flynn mysql dump` ("mysql")
 * for app (cmd_db.c). */
json_t *db_dump_job(const char *kind, struct client *c, const char *app, struct err **err);
/* Restores a dump read from in_fd into the database that app_env (a
 * release env) names, as `flynn pg/mysql restore` (cmd_db.c). */
int db_restore(const char *kind, struct client *c, const char *app, json_t *app_env, int in_fd,
               int jobs, struct err **err);
/* cluster backup (cmd_backup.c): the tar to file, or stdout when NULL. */
int cluster_backup(struct cli *cli, const char *file, struct err **err);
/* `docker login` to a cluster's Docker push host (deprecated registry
 * pushes, cmd_docker.c); ca_path is named in the TLS help text. */
int docker_login(const char *host, const char *key, const char *ca_path, struct err **err);
/* Asks "MSG (yes/no): " on stdin; 1 for yes. */
int prompt_yes_no(const char *msg);

/* Command entry points, one file per group (cmd_<noun>.c). */
int cmd_cluster(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_git_credentials(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_create(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_delete(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_apps(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_info(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_ps(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_kill(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_scale(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_env(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_limit(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_meta(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_release(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_deployment(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_version(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_remote(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_import(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_export(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_docker(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_redis(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_mongodb(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_mysql(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_pg(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_volume(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_resource(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_provider(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_run(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_log(struct cli *cli, int argc, char **argv, struct err **err);
int cmd_route(struct cli *cli, int argc, char **argv, struct err **err);

extern const char cli_usage_cluster[], cli_usage_git_credentials[], cli_usage_create[],
    cli_usage_delete[], cli_usage_apps[], cli_usage_info[], cli_usage_ps[], cli_usage_kill[],
    cli_usage_scale[], cli_usage_env[], cli_usage_meta[], cli_usage_limit[], cli_usage_release[],
    cli_usage_deployment[], cli_usage_version[], cli_usage_remote[], cli_usage_import[], cli_usage_export[], cli_usage_docker[], cli_usage_redis[], cli_usage_mongodb[], cli_usage_mysql[], cli_usage_pg[], cli_usage_volume[], cli_usage_resource[], cli_usage_provider[], cli_usage_run[], cli_usage_log[], cli_usage_route[];

struct cli_usage_entry {
    const char *name;
    const char *usage;
};
/* Flynn's commands this client lacks, with their usage texts for `help`. */
extern const struct cli_usage_entry cli_unimplemented[];
extern const size_t cli_nunimplemented;

#endif
