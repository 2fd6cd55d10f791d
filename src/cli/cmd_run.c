/* run: one-off jobs, detached or attached (docs/flynn-api.md §7). */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

enum {
    FRAME_ERROR = 2,
    FRAME_DATA = 3,
    FRAME_SIGNAL = 4,
    FRAME_EXIT = 5,
    FRAME_RESIZE = 6,
};

static volatile sig_atomic_t got_signal, got_winch;

static void on_signal(int sig)
{
    got_signal = sig;
}

static void on_winch(int sig)
{
    (void)sig;
    got_winch = 1;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int send_signal(struct client_conn *k, int sig, struct err **err)
{
    unsigned char f[5] = {FRAME_SIGNAL};
    put32(f + 1, (uint32_t)sig);
    return client_conn_write(k, f, sizeof(f), err);
}

static int send_resize(struct client_conn *k, struct err **err)
{
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) < 0)
        return 0;
    unsigned char f[5] = {FRAME_RESIZE, (unsigned char)(ws.ws_row >> 8), (unsigned char)ws.ws_row,
                          (unsigned char)(ws.ws_col >> 8), (unsigned char)ws.ws_col};
    if (client_conn_write(k, f, sizeof(f), err) < 0)
        return -1;
    return send_signal(k, SIGWINCH, err);
}

static void write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Consumes whole frames from buf; 1 with *status on the exit frame, -1 on
 * an error frame, 0 when more bytes are needed. */
static int take_frames(struct strbuf *buf, int out_fd, int err_fd, int *status, struct err **err)
{
    for (;;) {
        const unsigned char *p = (const unsigned char *)buf->buf;
        if (!buf->len)
            return 0;
        switch (p[0]) {
        case FRAME_DATA: {
            if (buf->len < 6)
                return 0;
            uint32_t len = get32(p + 2);
            if (buf->len < 6 + (size_t)len)
                return 0;
            if (p[1] == 1)
                write_all(out_fd, p + 6, len);
            else if ((p[1] == 2 || p[1] == 3) && err_fd >= 0)
                write_all(err_fd, p + 6, len);
            else if (p[1] != 2 && p[1] != 3)
                return err_makex(err, EPROTO, "attach: unknown stream %d", p[1]);
            strbuf_remove_prefix(buf, 6 + (size_t)len);
            break;
        }
        case FRAME_EXIT:
            if (buf->len < 5)
                return 0;
            *status = (int)get32(p + 1);
            return 1;
        case FRAME_ERROR: {
            if (buf->len < 5)
                return 0;
            uint32_t len = get32(p + 1);
            if (buf->len < 5 + (size_t)len)
                return 0;
            return err_makex(err, EIO, "%.*s", (int)len, (const char *)p + 5);
        }
        default:
            strbuf_remove_prefix(buf, 1); /* Flynn's client skips unknown bytes */
        }
    }
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Relays stdin and signals to the job and its output back, until the exit
 * frame; returns the job's exit status, or -1 with *err. */
static int attach_loop(struct client_conn *k, int in_fd, int out_fd, int err_fd, struct err **err)
{
    struct strbuf in = STRBUF_INIT;
    int status = -1, stdin_open = 1;
    long long kill_at = 0;
    for (;;) {
        if (got_signal) {
            int sig = got_signal;
            got_signal = 0;
            if (send_signal(k, sig, err) < 0)
                goto out;
            if (!kill_at)
                kill_at = now_ms() + 10000;
        }
        if (kill_at > 0 && now_ms() >= kill_at) {
            kill_at = -1;
            if (send_signal(k, SIGKILL, err) < 0)
                goto out;
        }
        if (got_winch) {
            got_winch = 0;
            if (send_resize(k, err) < 0)
                goto out;
        }
        /* drain what the connection (and TLS) holds */
        int closed = 0;
        for (;;) {
            unsigned char buf[16384];
            long n = client_conn_read(k, buf, sizeof(buf), err);
            if (n < 0) {
                if (*err)
                    goto out;
                closed = 1;
                break;
            }
            if (n == 0)
                break;
            strbuf_add(&in, buf, (size_t)n);
        }
        int rc = take_frames(&in, out_fd, err_fd, &status, err);
        if (rc < 0)
            goto out;
        if (rc > 0)
            break;
        if (closed) {
            err_makex(err, EIO, "EOF"); /* what Flynn's client says */
            goto out;
        }
        struct pollfd pfd[2] = {{.fd = client_conn_fd(k), .events = POLLIN},
                                {.fd = in_fd, .events = POLLIN}};
        if (poll(pfd, stdin_open ? 2 : 1, 200) < 0 && errno != EINTR) {
            err_make(err, errno, "poll");
            goto out;
        }
        if (stdin_open && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            unsigned char buf[6 + 32768] = {FRAME_DATA, 0};
            ssize_t n = read(in_fd, buf + 6, sizeof(buf) - 6);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                n = 0;
                stdin_open = 0; /* a zero-length frame: stdin's EOF */
            }
            put32(buf + 2, (uint32_t)n);
            if (client_conn_write(k, buf, 6 + (size_t)n, err) < 0)
                goto out;
        }
    }
out:
    strbuf_release(&in);
    return *err ? -1 : status;
}

/* Where the command starts: options come first (docopt's options-first). */
static int split_options(int argc, char **argv)
{
    static const char *const with_value[] = {"-r", "-e", "--limits", "--profiles",
                                             "--mounts-from"};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            return i + 1;
        if (a[0] != '-' || !a[1])
            return i;
        for (size_t k = 0; k < ARRAY_SIZE(with_value); k++)
            if (!strcmp(a, with_value[k]))
                i++;
    }
    return argc;
}

int job_attach(struct client *c, const char *app, json_t *body, int in_fd, int out_fd, int err_fd,
               int tty, int *status, struct err **err)
{
    /* signals that come while connecting are forwarded once attached */
    struct sigaction sa = {0}, old_int, old_term, old_winch;
    got_signal = got_winch = 0;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sa.sa_handler = tty ? on_winch : SIG_IGN;
    sigaction(SIGWINCH, &sa, &old_winch);
    char *ea = client_escape(app);
    char *path = xasprintf("/apps/%s/jobs", ea);
    struct client_conn *conn = client_upgrade(c, "POST", path, body, "flynn-attach/0", err);
    free(path);
    free(ea);
    int st = -1;
    if (conn) {
        struct termios saved;
        int raw = tty && tcgetattr(0, &saved) == 0;
        if (raw) {
            struct termios t = saved;
            cfmakeraw(&t);
            tcsetattr(0, TCSANOW, &t);
        }
        st = attach_loop(conn, in_fd, out_fd, err_fd, err);
        if (raw)
            tcsetattr(0, TCSANOW, &saved);
        client_conn_close(conn);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    if (st < 0)
        return -1;
    *status = st;
    return 0;
}

int run_job(struct client *c, const struct run_config *rc, int *status, struct err **err)
{
    int ret = -1;
    json_t *body = json_object(), *job = NULL, *rel = NULL;
    json_t *args = json_deep_copy(rc->args ? rc->args : json_array());
    char *ea = client_escape(rc->app);
    char *er = client_escape(rc->release);
    char *path = xasprintf("/releases/%s", er);
    *status = 0;
    /* slug apps run through /runner/init */
    if (client_json(c, "GET", path, NULL, &rel, err) < 0)
        goto out;
    const char *git = json_string_value(json_object_get(json_object_get(rel, "meta"), "git"));
    const char *a0 = json_string_value(json_array_get(args, 0));
    if (git && !strcmp(git, "true") && (!a0 || strcmp(a0, "/runner/init")))
        json_array_insert_new(args, 0, json_string("/runner/init"));
    json_object_set_new(body, "release", json_string(rc->release));
    if (rc->artifacts)
        json_object_set(body, "artifacts", rc->artifacts);
    if (rc->release_env)
        json_object_set_new(body, "release_env", json_true());
    if (json_array_size(args))
        json_object_set(body, "args", args);
    int tty = !rc->detached && rc->in_fd < 0 && rc->out_fd < 0 && isatty(0) && isatty(1);
    json_t *env = rc->env ? json_deep_copy(rc->env) : json_object();
    if (tty) {
        struct winsize ws = {0};
        ioctl(0, TIOCGWINSZ, &ws);
        const char *term = getenv("TERM");
        json_object_set_new(env, "COLUMNS", json_sprintf("%d", ws.ws_col));
        json_object_set_new(env, "LINES", json_sprintf("%d", ws.ws_row));
        json_object_set_new(env, "TERM", json_string(term ? term : ""));
        json_object_set_new(body, "env", env);
        json_object_set_new(body, "tty", json_true());
        if (ws.ws_col)
            json_object_set_new(body, "tty_columns", json_integer(ws.ws_col));
        if (ws.ws_row)
            json_object_set_new(body, "tty_lines", json_integer(ws.ws_row));
    } else if (json_object_size(env)) {
        json_object_set_new(body, "env", env);
    } else {
        json_decref(env);
    }
    if (rc->disable_log)
        json_object_set_new(body, "disable_log", json_true());
    if (rc->resources)
        json_object_set(body, "resources", rc->resources);
    if (rc->data)
        json_object_set_new(body, "data", json_true());
    if (rc->profiles)
        json_object_set(body, "profiles", rc->profiles);
    if (rc->mounts_from && *rc->mounts_from)
        json_object_set_new(body, "mounts_from", json_string(rc->mounts_from));
    /* deprecated mirrors for old clusters, as Flynn still sends them */
    if (json_array_size(args) > 1) {
        json_t *cmd = json_array();
        for (size_t i = 1; i < json_array_size(args); i++)
            json_array_append(cmd, json_array_get(args, i));
        json_object_set_new(body, "cmd", cmd);
    }
    if (json_array_size(args) > 0)
        json_object_set_new(body, "entrypoint", json_pack("[O]", json_array_get(args, 0)));
    if (rc->artifact)
        json_object_set_new(body, "artifact", json_string(rc->artifact));

    free(path);
    path = xasprintf("/apps/%s/jobs", ea);
    if (rc->detached) {
        if (client_json(c, "POST", path, body, &job, err) < 0)
            goto out;
        const char *id = json_string_value(json_object_get(job, "id"));
        fprintf(stderr, "%s\n", id ? id : "");
        ret = 0;
        goto out;
    }
    if (job_attach(c, rc->app, body, rc->in_fd < 0 ? 0 : rc->in_fd,
                   rc->out_fd < 0 ? 1 : rc->out_fd, rc->discard_stderr ? -1 : 2, tty, status,
                   err) < 0)
        goto out;
    ret = 0;
out:
    free(path);
    free(ea);
    free(er);
    json_decref(rel);
    json_decref(job);
    json_decref(body);
    json_decref(args);
    return ret;
}

int cmd_run(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {
        {'d', "detached", 0}, {'r', NULL, 1},         {'e', NULL, 1},           {'l', "enable-log", 0},
        {0, "limits", 1},     {0, "profiles", 1},     {0, "mounts-from", 1}};
    int k = split_options(argc, argv);
    int nopt = k > 0 && !strcmp(argv[k - 1], "--") ? k - 1 : k;
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), nopt, argv, 0, 0) < 0)
        return CLI_USAGE;
    if (k >= argc) {
        opts_release(&o);
        return cli_usage(cli);
    }
    int ret = -1, detached = opts_has(&o, "detached");
    json_t *release = NULL, *args = json_array(), *resources = NULL, *profiles = NULL;
    char *path = NULL;
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    const char *entry = opts_get(&o, "e", NULL);
    if (entry && *entry) {
        fprintf(stderr, "WARN: The -e flag is deprecated and will be removed in future versions, "
                        "use <command> as the entrypoint\n");
        json_array_append_new(args, json_string(entry));
    }
    for (int i = k; i < argc; i++)
        json_array_append_new(args, json_string(argv[i]));
    const char *rid = opts_get(&o, "r", "");
    if (!*rid) {
        cleanup_free char *ea = client_escape(app);
        path = xasprintf("/apps/%s/release", ea);
        struct err *e = NULL;
        if (client_json(c, "GET", path, NULL, &release, &e) < 0) {
            if (client_is_not_found(e)) {
                /* Flynn says "No app release" for an unknown app too: say which */
                err_free(e);
                e = NULL;
                char *ap = xasprintf("/apps/%s", ea);
                json_t *a = NULL;
                int known = client_json(c, "GET", ap, NULL, &a, &e) == 0 || !client_is_not_found(e);
                err_free(e);
                json_decref(a);
                free(ap);
                if (known)
                    err_makex(err, ENOENT, "No app release, specify a release with -release");
                else
                    err_makex(err, ENOENT, "app '%s' not found", app);
            } else {
                *err = e;
            }
            goto out;
        }
        if (!json_array_size(json_object_get(release, "artifacts"))) {
            err_makex(err, EINVAL, "App release has no image, push a release first");
            goto out;
        }
        rid = json_string_value(json_object_get(release, "id"));
        rid = rid ? rid : "";
    }
    const char *limits = opts_get(&o, "limits", "");
    if (*limits) {
        resources = json_object();
        resources_set_defaults(resources);
        char *copy = xstrdup(limits);
        char *parts[32];
        int n = 0;
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && n < 32; t = strtok_r(NULL, ",", &save))
            parts[n++] = t;
        json_t *parsed = json_object();
        int prc = resources_parse(parts, n, parsed, err);
        json_object_update(resources, parsed);
        json_decref(parsed);
        free(copy);
        if (prc < 0)
            goto out;
    }
    const char *pl = opts_get(&o, "profiles", "");
    if (*pl) {
        profiles = json_array();
        char *copy = xstrdup(pl);
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            json_array_append_new(profiles, json_string(t));
        free(copy);
    }
    struct run_config rc = {
        .app = app,
        .release = rid,
        .args = args,
        .detached = detached,
        .release_env = 1,
        .disable_log = !detached && !opts_has(&o, "enable-log"),
        .resources = resources,
        .profiles = profiles,
        .mounts_from = opts_get(&o, "mounts-from", NULL),
        .in_fd = -1,
        .out_fd = -1,
    };
    int status = 0;
    if (run_job(c, &rc, &status, err) < 0)
        goto out;
    cli->exit_code = status > 255 ? 255 : status;
    ret = 0;
out:
    free(path);
    json_decref(release);
    json_decref(args);
    json_decref(resources);
    json_decref(profiles);
    opts_release(&o);
    return ret;
}
