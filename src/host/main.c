/*
 * flynn-host: the host daemon and its command-line client.
 *
 *   flynn-host daemon [flags]      run the daemon (root)
 *   flynn-host run [-d] -- CMD...  run a job and stream its output
 *   flynn-host ps|inspect|log|stop|signal|status   talk to a running daemon
 *
 * Commands live in one table below; to add one, write cmd_<name>() and add
 * a row. The client finds the daemon at $FLYNN_HOST_URL or --url, default
 * http://127.0.0.1:1113.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "err.h"
#include "fsutil.h"
#include "httpc.h"
#include "ids.h"
#include "jobs.h"
#include "log.h"
#include "logship.h"
#include "notify.h"
#include "slug.h"
#include "xalloc.h"

#define VERSION "dev"
#define DEFAULT_URL "http://127.0.0.1:1113"

static const char *host_url = DEFAULT_URL;

/* ---- daemon ---- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    log_info("signal %d: shutting down (jobs keep running)", (int)sig);
    event_base_loopbreak(arg);
}

static char *default_host_id(void)
{
    char h[HOST_NAME_MAX + 1] = "host";
    gethostname(h, sizeof(h));
    char *out = xstrdup(h), *o = out;
    for (char *p = h; *p; p++)
        if (*p != '-' && *p != '.')
            *o++ = *p;
    *o = '\0';
    if (!*out) {
        free(out);
        out = xstrdup("host");
    }
    return out;
}

static char *sibling_path(const char *name)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return xstrdup(name);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    return xasprintf("%s/%s", self, name);
}

static void daemon_usage(FILE *f)
{
    fprintf(f,
            "usage: flynn-host daemon [flags]\n"
            "  --listen ADDR        host API address, repeatable (default 127.0.0.1:1113)\n"
            "  --id ID              host ID, no dashes (default: hostname)\n"
            "  --run-dir DIR        per-boot job state (default /run/flynn)\n"
            "  --state-dir DIR      stacks and durable state (default /var/lib/flynn)\n"
            "  --bridge NAME        job bridge, 'none' for host networking only (default flynnbr0)\n"
            "  --subnet CIDR        job addresses (default 100.100.1.0/24)\n"
            "  --mtu N              MTU of bridge and job links (default: kernel's)\n"
            "  --stop-timeout SECS  SIGTERM to SIGKILL grace (default 10)\n"
            "  --shim PATH          flynn-shim binary (default: next to flynn-host)\n"
            "  --crun PATH          crun binary (default crun)\n"
            "  --runner-dir DIR     bound read-only at /runner in jobs with a slug\n"
            "                       (default /usr/local/lib/flynn/runner)\n"
            "  --slug-cache-keep N  cached slugs kept; older unused ones are evicted (default 20)\n"
            "  --no-favordynmods    leave the cgroup2 mount as it is (by default it is remounted\n"
            "                       with favordynmods: ~10 ms faster job starts, see cgroups.h)\n"
            "  --log-aggregator ADDR  ship jobs' log lines to this aggregator (HOST:PORT or\n"
            "                       http://HOST:PORT); PUT /host/config changes it at run time\n"
            "  --log-level LEVEL    debug, info, warn, error (default info)\n"
            "  --log-format json    JSON log lines\n"
            "  --pid-file FILE      write the daemon's pid\n");
}

static int cmd_daemon(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},   {"id", required_argument, 0, 'i'},
        {"run-dir", required_argument, 0, 'r'},  {"state-dir", required_argument, 0, 's'},
        {"bridge", required_argument, 0, 'b'},   {"subnet", required_argument, 0, 'n'},
        {"mtu", required_argument, 0, 'm'},      {"stop-timeout", required_argument, 0, 't'},
        {"shim", required_argument, 0, 'S'},     {"crun", required_argument, 0, 'C'},
        {"log-level", required_argument, 0, 'L'}, {"log-format", required_argument, 0, 'F'},
        {"pid-file", required_argument, 0, 'P'}, {"help", no_argument, 0, 'h'},
        {"runner-dir", required_argument, 0, 'R'}, {"slug-cache-keep", required_argument, 0, 'K'},
        {"log-aggregator", required_argument, 0, 'A'},
        {"no-favordynmods", no_argument, 0, 'D'},
        {0, 0, 0, 0}};
    const char *listen[8];
    int nlisten = 0;
    cleanup_free char *id = default_host_id();
    cleanup_free char *shim = sibling_path("flynn-shim");
    cleanup_free char *self = sibling_path("flynn-host");
    struct jobs_cfg cfg = {.run_dir = "/run/flynn", .state_dir = "/var/lib/flynn",
                           .bridge = "flynnbr0", .subnet = "100.100.1.0/24", .stop_timeout = 10,
                           .crun = "crun", .runner_dir = "/usr/local/lib/flynn/runner",
                           .slug_keep = 20, .favor_dynmods = 1};
    const char *pidfile = NULL, *log_aggregator = NULL;
    int lvl = LOG_LVL_INFO, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (nlisten == 8) {
                fprintf(stderr, "flynn-host: at most 8 --listen addresses\n");
                return 2;
            }
            listen[nlisten++] = optarg;
            break;
        case 'i':
            if (!*optarg || strchr(optarg, '-')) {
                fprintf(stderr, "flynn-host: --id must be non-empty and contain no '-'\n");
                return 2;
            }
            free(id);
            id = xstrdup(optarg);
            break;
        case 'r': cfg.run_dir = optarg; break;
        case 's': cfg.state_dir = optarg; break;
        case 'b': cfg.bridge = strcmp(optarg, "none") ? optarg : ""; break;
        case 'n': cfg.subnet = optarg; break;
        case 'm': cfg.mtu = atoi(optarg); break;
        case 't': cfg.stop_timeout = atoi(optarg); break;
        case 'S': free(shim); shim = xstrdup(optarg); break;
        case 'C': cfg.crun = optarg; break;
        case 'R':
            if (optarg[0] != '/') {
                fprintf(stderr, "flynn-host: --runner-dir must be an absolute path\n");
                return 2;
            }
            cfg.runner_dir = optarg;
            break;
        case 'K': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (!*optarg || *end || n < 0 || n > 100000) {
                fprintf(stderr, "flynn-host: --slug-cache-keep wants a number 0-100000\n");
                return 2;
            }
            cfg.slug_keep = (int)n;
            break;
        }
        case 'L':
            lvl = log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "flynn-host: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'F': json = !strcmp(optarg, "json"); break;
        case 'P': pidfile = optarg; break;
        case 'A': log_aggregator = optarg; break;
        case 'D': cfg.favor_dynmods = 0; break;
        case 'h': daemon_usage(stdout); return 0;
        default: daemon_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "flynn-host daemon: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!nlisten)
        listen[nlisten++] = "127.0.0.1:1113";
    for (int i = 0; i < nlisten; i++) {
        if (!strncmp(listen[i], "0.0.0.0:", 8) || !strncmp(listen[i], "[::]:", 5) ||
            listen[i][0] == ':') {
            fprintf(stderr, "flynn-host: refusing to listen on every interface (%s): the host API "
                            "has no authentication; give loopback or a cluster address\n",
                    listen[i]);
            return 2;
        }
    }
    log_init("host", (enum log_level)lvl, json);
    cfg.host_id = id;
    cfg.shim_path = shim;
    cfg.host_path = self;
    signal(SIGPIPE, SIG_IGN);

    struct event_base *base = event_base_new();
    struct err *e = NULL;
    struct jobs *jobs = jobs_new(base, &cfg, &e);
    if (!jobs) {
        log_error("start: %s", e->msg);
        err_free(e);
        event_base_free(base);
        return 1;
    }
    struct host_api *api = host_api_new(base, jobs, id, VERSION);
    struct logship *ship = logship_new(base, jobs, cfg.run_dir, cfg.state_dir, id);
    if (logship_start(ship, log_aggregator, &e) < 0) {
        log_error("--log-aggregator: %s", e->msg);
        err_free(e);
        logship_free(ship);
        host_api_free(api);
        jobs_free(jobs);
        event_base_free(base);
        return 2;
    }
    host_api_set_logship(api, ship);
    char bound[128] = "";
    for (int i = 0; i < nlisten; i++) {
        int port = host_api_listen(api, listen[i], &e);
        if (port < 0) {
            log_error("%s", e->msg);
            err_free(e);
            logship_free(ship);
            host_api_free(api);
            jobs_free(jobs);
            event_base_free(base);
            return 1;
        }
        if (!i) {
            snprintf(bound, sizeof(bound), "%.*s:%d",
                     (int)(strrchr(listen[i], ':') - listen[i]), listen[i], port);
        }
        log_info("host API listening on %s (port %d)", listen[i], port);
    }
    if (pidfile) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
        if (fs_write_file(pidfile, buf, (size_t)n, 0644, 0, &e) < 0) {
            log_warn("%s", e->msg);
            err_free(e);
            e = NULL;
        }
    }
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    log_info("flynn-host %s ready: id %s, cgroups %s", VERSION, id, "ok");
    notify_ready(bound);
    /* crun proxies $NOTIFY_SOCKET into containers and then waits for them
     * to send READY=1: our jobs must never inherit the daemon's socket */
    unsetenv("NOTIFY_SOCKET");
    event_base_dispatch(base);
    event_free(sigterm);
    event_free(sigint);
    logship_free(ship);
    host_api_free(api);
    jobs_free(jobs);
    event_base_free(base);
    if (pidfile)
        unlink(pidfile);
    return 0;
}

/* ---- client ---- */

static int die_err(struct err *e)
{
    fprintf(stderr, "flynn-host: %s\n", e->msg);
    if (e->errnum == ECONNREFUSED)
        fprintf(stderr, "is the daemon running? start it with `flynn-host daemon` (or `make "
                        "up`), or point --url / FLYNN_HOST_URL at it\n");
    err_free(e);
    return 1;
}

/* Calls the host API; returns the parsed JSON body of a 200, or prints the
 * error and returns NULL. */
static json_t *call(const char *method, const char *path, json_t *body)
{
    cleanup_free char *url = xasprintf("%s%s", host_url, path);
    cleanup_free char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct httpc_req r = {.method = method, .url = url, .body = b, .body_len = b ? strlen(b) : 0,
                          .timeout_secs = 60};
    struct strbuf out = STRBUF_INIT;
    struct err *e = NULL;
    int st = httpc_do(&r, &out, &e);
    if (st < 0) {
        strbuf_release(&out);
        die_err(e);
        return NULL;
    }
    json_t *j = json_loadb(out.buf, out.len, 0, NULL);
    if (st != 200) {
        const char *m = json_string_value(json_object_get(j, "message"));
        fprintf(stderr, "flynn-host: %s %s: %s\n", method, path,
                m ? m : (st == 404 ? "not found" : out.buf));
        json_decref(j);
        strbuf_release(&out);
        return NULL;
    }
    strbuf_release(&out);
    if (!j)
        j = json_object();
    return j;
}

static int to_stdout(const char *data, size_t len, void *arg)
{
    return fwrite(data, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -1;
}

static int stream_log(const char *id, int follow, long lines)
{
    cleanup_free char *url = xasprintf("%s/host/jobs/%s/log?follow=%s%s%ld", host_url, id,
                                       follow ? "true" : "false", lines >= 0 ? "&lines=" : "",
                                       lines >= 0 ? lines : 0L);
    if (lines < 0)
        url[strlen(url) - 1] = '\0'; /* drop the placeholder 0 */
    struct httpc_req r = {.url = url, .on_data = to_stdout};
    struct err *e = NULL;
    int st = httpc_do(&r, NULL, &e);
    if (st < 0)
        return die_err(e);
    if (st != 200) {
        fprintf(stderr, "flynn-host: job '%s' not found\n", id);
        return 1;
    }
    return 0;
}

static void run_usage(FILE *f)
{
    fprintf(f, "usage: flynn-host run [-d] [--id ID] [-e K=V]... [--host-network] [-m|--memory BYTES]\n"
               "                      [-p|--port N] [--stop-timeout SECS] [-w|--workdir DIR]\n"
               "                      [--slug URL --slug-sha256 HEX [--slug-size BYTES]] -- CMD [ARG...]\n"
               "Runs CMD in a new job on the default stack (with --slug, the slug's tree at\n"
               "/app and the runner at /runner). Without -d, streams its output and exits\n"
               "with its exit status; with -d, prints the job ID.\n");
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"detach", no_argument, 0, 'd'},       {"id", required_argument, 0, 'i'},
        {"env", required_argument, 0, 'e'},    {"host-network", no_argument, 0, 'H'},
        {"memory", required_argument, 0, 'm'}, {"port", required_argument, 0, 'p'},
        {"stop-timeout", required_argument, 0, 't'}, {"workdir", required_argument, 0, 'w'},
        {"slug", required_argument, 0, 'U'},   {"slug-sha256", required_argument, 0, 'X'},
        {"slug-size", required_argument, 0, 'Z'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    int detach = 0, c;
    const char *slug_url = NULL, *slug_sha = NULL;
    long long slug_size = 0;
    char idbuf[200] = "";
    json_t *env = json_object(), *cfg = json_object(), *spec = json_object();
    json_object_set_new(spec, "config", cfg);
    json_object_set_new(cfg, "env", env);
    optind = 1;
    while ((c = getopt_long(argc, argv, "+de:hi:m:p:w:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': detach = 1; break;
        case 'i': snprintf(idbuf, sizeof(idbuf), "%s", optarg); break;
        case 'e': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "flynn-host run: -e wants KEY=VALUE, got '%s'\n", optarg);
                json_decref(spec);
                return 2;
            }
            *eq = '\0';
            json_object_set_new(env, optarg, json_string(eq + 1));
            break;
        }
        case 'H': json_object_set_new(cfg, "host_network", json_true()); break;
        case 'm':
            json_object_set_new(spec, "resources",
                                json_pack("{s:{s:I}}", "memory", "limit", (json_int_t)atoll(optarg)));
            break;
        case 'p':
            json_object_set_new(cfg, "ports", json_pack("[{s:i,s:s}]", "port", atoi(optarg),
                                                        "proto", "tcp"));
            break;
        case 't': json_object_set_new(spec, "stop_timeout", json_integer(atoi(optarg))); break;
        case 'w': json_object_set_new(cfg, "working_dir", json_string(optarg)); break;
        case 'U': slug_url = optarg; break;
        case 'X': slug_sha = optarg; break;
        case 'Z': slug_size = atoll(optarg); break;
        case 'h': run_usage(stdout); json_decref(spec); return 0;
        default: run_usage(stderr); json_decref(spec); return 2;
        }
    }
    if (optind >= argc) {
        run_usage(stderr);
        json_decref(spec);
        return 2;
    }
    if (!slug_url != !slug_sha) {
        fprintf(stderr, "flynn-host run: --slug and --slug-sha256 go together\n");
        json_decref(spec);
        return 2;
    }
    if (slug_url) {
        json_t *slug = json_pack("{s:s,s:s}", "url", slug_url, "sha256", slug_sha);
        if (slug_size > 0)
            json_object_set_new(slug, "size", json_integer(slug_size));
        json_object_set_new(spec, "root", json_pack("{s:s,s:o}", "stack", "default", "slug", slug));
    }
    json_t *args = json_array();
    for (int i = optind; i < argc; i++)
        json_array_append_new(args, json_string(argv[i]));
    json_object_set_new(cfg, "args", args);
    if (!idbuf[0]) {
        json_t *st = call("GET", "/host/status", NULL);
        if (!st) {
            json_decref(spec);
            return 1;
        }
        char u[37];
        id_uuid(u);
        snprintf(idbuf, sizeof(idbuf), "%s-%s", json_string_value(json_object_get(st, "id")), u);
        json_decref(st);
    }
    cleanup_free char *path = xasprintf("/host/jobs/%s", idbuf);
    json_t *res = call("PUT", path, spec);
    json_decref(spec);
    if (!res)
        return 1;
    json_decref(res);
    if (detach) {
        printf("%s\n", idbuf);
        return 0;
    }
    int rc = stream_log(idbuf, 1, -1);
    if (rc)
        return rc;
    json_t *j = call("GET", path, NULL);
    if (!j)
        return 1;
    int status = (int)json_integer_value(json_object_get(j, "status"));
    const char *err = json_string_value(json_object_get(j, "error"));
    int exit_status = (int)json_integer_value(json_object_get(j, "exit_status"));
    if (status == JOB_FAILED) {
        fprintf(stderr, "flynn-host: job failed: %s\n", err ? err : "unknown error");
        exit_status = 1;
    } else if (json_is_true(json_object_get(j, "oom_killed"))) {
        fprintf(stderr, "flynn-host: job was killed: out of memory\n");
    }
    json_decref(j);
    return exit_status;
}

static const char *status_name(int s)
{
    static const char *n[] = {"starting", "running", "done", "crashed", "failed"};
    return s >= 0 && s < 5 ? n[s] : "unknown";
}

static int cmd_ps(int argc, char **argv)
{
    int all = argc > 1 && (!strcmp(argv[1], "-a") || !strcmp(argv[1], "--all"));
    json_t *jobs = call("GET", all ? "/host/jobs" : "/host/jobs?active=true", NULL);
    if (!jobs)
        return 1;
    printf("%-50s %-9s %-16s %-28s %s\n", "ID", "STATE", "IP", "CREATED", "CMD");
    const char *id;
    json_t *aj;
    json_object_foreach(jobs, id, aj)
    {
        struct strbuf cmd = STRBUF_INIT;
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(json_object_get(json_object_get(aj, "job"), "config"),
                                           "args"),
                           i, a) strbuf_addf(&cmd, "%s%s", i ? " " : "", json_string_value(a));
        const char *ip = json_string_value(json_object_get(aj, "internal_ip"));
        printf("%-50s %-9s %-16s %-28s %s\n", id,
               status_name((int)json_integer_value(json_object_get(aj, "status"))),
               ip ? ip : "host", json_string_value(json_object_get(aj, "created_at")), cmd.buf);
        strbuf_release(&cmd);
    }
    json_decref(jobs);
    return 0;
}

static int cmd_inspect(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: flynn-host inspect ID\n");
        return 2;
    }
    cleanup_free char *p = xasprintf("/host/jobs/%s", argv[1]);
    json_t *j = call("GET", p, NULL);
    if (!j)
        return 1;
    json_dumpf(j, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(j);
    return 0;
}

static int cmd_log(int argc, char **argv)
{
    int follow = 0, c;
    long lines = -1;
    optind = 1;
    while ((c = getopt(argc, argv, "fn:")) != -1) {
        switch (c) {
        case 'f': follow = 1; break;
        case 'n': lines = atol(optarg); break;
        default: fprintf(stderr, "usage: flynn-host log [-f] [-n LINES] ID\n"); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: flynn-host log [-f] [-n LINES] ID\n");
        return 2;
    }
    return stream_log(argv[optind], follow, lines);
}

static int cmd_stop(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: flynn-host stop ID...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        cleanup_free char *p = xasprintf("/host/jobs/%s", argv[i]);
        json_t *j = call("DELETE", p, NULL);
        if (!j)
            rc = 1;
        json_decref(j);
    }
    return rc;
}

static int cmd_signal(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: flynn-host signal ID SIGNAL\n");
        return 2;
    }
    cleanup_free char *p = xasprintf("/host/jobs/%s/signal/%s", argv[1], argv[2]);
    json_t *j = call("PUT", p, NULL);
    json_decref(j);
    return j ? 0 : 1;
}

static int cmd_status(int argc, char **argv)
{
    json_t *j = call("GET", "/host/status", NULL);
    if (!j)
        return 1;
    json_dumpf(j, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(j);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    printf("flynn-host %s\n", VERSION);
    return 0;
}

static int cmd_help(int argc, char **argv);

/* flynn-host fetch-slug URL SHA256 SIZE OUT: the shim's slug download (see
 * slug.h), a process of its own so the shim need not load libcurl. OUT is
 * created (it must not exist); on failure it is removed and the error is
 * printed on one line. Not listed in help: an internal command. */
static int cmd_fetch_slug(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: flynn-host fetch-slug URL SHA256 SIZE OUT\n");
        return 2;
    }
    struct slug_ref ref = {.url = argv[1], .sha256 = argv[2], .size = atoll(argv[3])};
    int fd = open(argv[4], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fetch slug '%s': create '%s': %s\n", argv[1], argv[4], strerror(errno));
        return 1;
    }
    struct err *e = NULL;
    int rc = slug_download(&ref, fd, &e);
    close(fd);
    if (rc < 0) {
        unlink(argv[4]);
        fprintf(stderr, "%s\n", e->msg);
        err_free(e);
        return 1;
    }
    return 0;
}

/* The command table: to add a command, write cmd_<name>(argc, argv) (argv[0]
 * is the command name) and add a row here. */
static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"daemon", cmd_daemon, "run the host daemon"},
    {"run", cmd_run, "run a job and stream its output"},
    {"ps", cmd_ps, "list jobs (-a: finished ones too)"},
    {"inspect", cmd_inspect, "show a job as JSON"},
    {"log", cmd_log, "show a job's output (-f follow, -n N last lines)"},
    {"stop", cmd_stop, "stop jobs (SIGTERM, then SIGKILL)"},
    {"signal", cmd_signal, "send a signal to a job"},
    {"status", cmd_status, "show the host's status"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "show this help"},
    {"fetch-slug", cmd_fetch_slug, NULL},
};

static int cmd_help(int argc, char **argv)
{
    printf("usage: flynn-host [--url URL] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (commands[i].help)
            printf("  %-8s %s\n", commands[i].name, commands[i].help);
    printf("\nThe client talks to $FLYNN_HOST_URL (default %s).\n", DEFAULT_URL);
    return 0;
}

int main(int argc, char **argv)
{
    const char *env = getenv("FLYNN_HOST_URL");
    if (env && *env)
        host_url = env;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--url")) {
        host_url = argv[i + 1];
        i += 2;
    }
    if (i >= argc) {
        cmd_help(0, NULL);
        return 2;
    }
    for (size_t k = 0; k < ARRAY_SIZE(commands); k++)
        if (!strcmp(argv[i], commands[k].name))
            return commands[k].fn(argc - i, argv + i);
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
        return cmd_help(0, NULL);
    fprintf(stderr, "flynn-host: unknown command '%s' (see `flynn-host help`)\n", argv[i]);
    return 2;
}
