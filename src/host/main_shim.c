/*
 * flynn-shim: one per job; owns the job's network, root file system, output
 * and exit, so that flynn-host can restart without touching running jobs.
 *
 *   flynn-shim JOB_DIR [STATUS_FD [ATTACH_FD]]
 *
 * Reads JOB_DIR/shim.json (written by flynn-host), then:
 *  0. for a job with a slug, fetches and unpacks it into the host's slug
 *     cache unless it is there (slug.h), and holds a shared lock on it
 *     while the job runs;
 *  1. makes the job's network namespace and veth (unless host network) and
 *     mounts the overlay root;
 *  2. becomes a child subreaper and runs `crun run --detach`, so the job's
 *     init is re-parented to the shim and its exact wait status is ours;
 *  3. writes "start PID\n" (or "error MESSAGE\n") to STATUS_FD;
 *  4. copies the job's stdout/stderr to JOB_DIR/log as JSON lines
 *     {"time","stream","msg"} until the job's init exits and the pipes close;
 *  5. records an OOM kill from the job's memory cgroup, deletes the
 *     container, unmounts and removes the namespace, and writes
 *     JOB_DIR/exit.json {"exit_status","signal","oom_killed","ended_at","error"}
 *     last, so its presence means the job is finished and cleaned up;
 *  6. releases the slug and leaves a child behind that evicts cached slugs
 *     beyond the configured number, so the daemon hears of the exit at once.
 *
 * ATTACH_FD is the listening socket JOB_DIR/attach.sock the daemon made:
 * clients attach there (shim_attach.h). A job with "attach" in shim.json
 * (config.stdin or config.tty) waits for its first client before step 2,
 * gets a stdin pipe, or with a tty the pty crun hands over on a console
 * socket, and its exit status goes to the client before step 5.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach.h"
#include "cgroups.h"
#include "err.h"
#include "fsutil.h"
#include "ids.h"
#include "net.h"
#include "oci.h"
#include "shim_attach.h"
#include "slug.h"
#include "strbuf.h"
#include "xalloc.h"

#define LINE_MAX_BYTES (64 * 1024)
#define ATTACH_WAIT_MS 30000 /* an attached job starts without its client after this */
#define ATTACH_FLUSH_MS 10000

struct shim {
    const char *dir;
    json_t *cfg;
    const char *id;
    int status_fd;
    int log_fd;
    int slug_fd; /* shared lock on the job's cached slug, or -1 */
    size_t log_size, log_max;
    struct strbuf partial[2];
    struct shim_attach *att; /* clients of the job, NULL without ATTACH_FD */
    int interactive;         /* "attach" in shim.json: a client is expected */
};

static const char *cfg_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void status_write(struct shim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void status_write(struct shim *s, const char *fmt, ...)
{
    if (s->status_fd < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *m = xvasprintf(fmt, ap);
    va_end(ap);
    /* one line; newlines in messages would split the protocol */
    for (char *p = m; *p; p++)
        if (*p == '\n')
            *p = ' ';
    char *line = xasprintf("%s\n", m);
    ssize_t w = write(s->status_fd, line, strlen(line));
    (void)w;
    free(line);
    free(m);
}

static void log_open(struct shim *s)
{
    cleanup_free char *p = xasprintf("%s/log", s->dir);
    s->log_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat st;
    s->log_size = (s->log_fd >= 0 && fstat(s->log_fd, &st) == 0) ? (size_t)st.st_size : 0;
}

/* Writes one log line; keeps at most two files of log_max bytes. */
static void log_line(struct shim *s, int stream, const char *msg, size_t len)
{
    char ts[40];
    time_now_rfc3339(ts);
    json_t *o = json_pack("{s:s,s:s,s:s%}", "time", ts, "stream", stream ? "stderr" : "stdout",
                          "msg", msg, len);
    if (!o) /* invalid UTF-8: keep the bytes readable rather than drop the line */
        o = json_pack("{s:s,s:s,s:s}", "time", ts, "stream", stream ? "stderr" : "stdout",
                      "msg", "[binary output]");
    char *j = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    size_t jl = strlen(j);
    j = xrealloc(j, jl + 2);
    j[jl++] = '\n';
    if (s->log_fd >= 0) {
        if (s->log_size + jl > s->log_max) {
            cleanup_free char *p = xasprintf("%s/log", s->dir);
            cleanup_free char *old = xasprintf("%s/log.1", s->dir);
            rename(p, old);
            close(s->log_fd);
            log_open(s);
        }
        ssize_t w = write(s->log_fd, j, jl);
        if (w > 0)
            s->log_size += (size_t)w;
    }
    free(j);
}

/* Splits what arrived on a pipe into lines. */
static void log_data(struct shim *s, int stream, const char *buf, size_t n, int eof)
{
    struct strbuf *sb = &s->partial[stream];
    strbuf_add(sb, buf, n);
    size_t start = 0;
    for (size_t i = 0; i < sb->len; i++) {
        if (sb->buf[i] == '\n' || i - start >= LINE_MAX_BYTES) {
            size_t end = i;
            if (end > start && sb->buf[end - 1] == '\r')
                end--;
            log_line(s, stream, sb->buf + start, end - start);
            start = i + (sb->buf[i] == '\n' ? 1 : 0);
            if (sb->buf[i] != '\n')
                i--;
        }
    }
    strbuf_remove_prefix(sb, start);
    if (eof && sb->len) {
        log_line(s, stream, sb->buf, sb->len);
        strbuf_reset(sb);
    }
}

static int setup_rootfs(json_t *r, struct err **err)
{
    const char *merged = cfg_str(r, "merged");
    cleanup_free char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", cfg_str(r, "lower"),
                                        cfg_str(r, "upper"), cfg_str(r, "work"));
    if (mount("overlay", merged, "overlay", 0, opts) < 0)
        return err_make(err, errno, "mount the job's overlay root on '%s'", merged);
    return 0;
}

/* Makes sure the job's slug is in the cache and locks it there. */
static int setup_slug(struct shim *s, json_t *sl, struct err **err)
{
    const char *runner = cfg_str(s->cfg, "runner_dir");
    struct stat st;
    if (stat(runner, &st) < 0 || !S_ISDIR(st.st_mode))
        return err_makex(err, ENOENT,
                         "jobs with a slug need the runner, but '%s' is not a directory (see "
                         "flynn-host daemon --runner-dir)",
                         runner);
    struct slug_ref ref = {.url = cfg_str(sl, "url"),
                           .sha256 = cfg_str(sl, "sha256"),
                           .size = (long long)json_integer_value(json_object_get(sl, "size"))};
    s->slug_fd = slug_acquire(cfg_str(sl, "cache"), &ref,
                              *cfg_str(sl, "fetcher") ? cfg_str(sl, "fetcher") : "flynn-host", err);
    return s->slug_fd < 0 ? -1 : 0;
}

/* Drops the slug's lock and evicts in a child of its own, which nothing
 * waits for: the daemon learns the job ended when this process exits. */
static void release_slug(struct shim *s)
{
    json_t *sl = json_object_get(s->cfg, "slug");
    if (!json_is_object(sl))
        return;
    const char *cache = cfg_str(sl, "cache");
    slug_release(cache, cfg_str(sl, "sha256"), fd_take(&s->slug_fd));
    pid_t p = fork();
    if (p != 0)
        return;
    /* the status pipe must see EOF when the shim exits, not when we do */
    close_range(3, ~0U, 0);
    struct err *e = NULL;
    int n = slug_cache_evict(cache, (int)json_integer_value(json_object_get(sl, "keep")), &e);
    if (n < 0) {
        fprintf(stderr, "flynn-shim: evict cached slugs: %s\n", e->msg);
        err_free(e);
    }
    _exit(0);
}

static int setup_net(json_t *n, struct err **err)
{
    const char *ns = cfg_str(n, "netns");
    if (net_netns_create(ns, err) < 0)
        return -1;
    if (net_job_attach(ns, cfg_str(n, "bridge"), cfg_str(n, "host_if"), cfg_str(n, "addr"),
                       cfg_str(n, "gw"), (int)json_integer_value(json_object_get(n, "mtu")),
                       err) < 0) {
        net_netns_delete(ns, NULL);
        return -1;
    }
    return 0;
}

static void crun_delete(struct shim *s)
{
    pid_t p = fork();
    if (p == 0) {
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp(cfg_str(s->cfg, "crun"), "crun", "--root", cfg_str(s->cfg, "crun_root"), "delete",
               "-f", s->id, (char *)NULL);
        _exit(127);
    }
    if (p > 0)
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
            ;
}

static void teardown(struct shim *s)
{
    json_t *r = json_object_get(s->cfg, "rootfs");
    if (r && umount2(cfg_str(r, "merged"), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        fprintf(stderr, "flynn-shim: unmount root of %s: %s\n", s->id, strerror(errno));
    json_t *n = json_object_get(s->cfg, "net");
    if (json_is_object(n)) {
        net_netns_delete(cfg_str(n, "netns"), NULL);
    }
}

static void write_exit(struct shim *s, int exit_status, int sig, int oom, const char *error)
{
    char ts[40];
    time_now_rfc3339(ts);
    json_t *o = json_pack("{s:i,s:i,s:b,s:s,s:s?}", "exit_status", exit_status, "signal", sig,
                          "oom_killed", oom, "ended_at", ts, "error", error);
    char *j = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    cleanup_free char *p = xasprintf("%s/exit.json", s->dir);
    fs_write_file(p, j, strlen(j), 0644, 0, NULL);
    free(j);
}

static void fail(struct shim *s, const char *msg)
{
    if (s->att) { /* the client coming for this job hears why it ends */
        shim_attach_wait(s->att, s->interactive ? 1000 : 0);
        shim_attach_finish(s->att, -1, msg, 2000);
    }
    teardown(s);
    write_exit(s, -1, 0, 0, msg);
    status_write(s, "error %s", msg);
    exit(1);
}

static char *read_crun_error(struct shim *s, const char *stderr_text)
{
    /* crun --log writes JSON lines {"msg": ...}; prefer its last message */
    cleanup_free char *p = xasprintf("%s/crun.log", s->dir);
    cleanup_free char *txt = fs_read_file(p, NULL, NULL);
    char *best = NULL;
    if (txt) {
        for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
            json_t *o = json_loads(line, 0, NULL);
            const char *m = json_string_value(json_object_get(o, "msg"));
            if (m) {
                free(best);
                best = xstrdup(m);
            }
            json_decref(o);
        }
    }
    if (!best && stderr_text && *stderr_text)
        best = xstrdup(stderr_text);
    return best ? best : xstrdup("crun failed without a message");
}

/* The socket crun hands a tty job's pty master to (--console-socket). */
static int console_listen(struct shim *s, char **path)
{
    *path = xasprintf("%s/console.sock", s->dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(*path) >= sizeof(sa.sun_path))
        fail(s, "the job's console socket path is too long");
    memcpy(sa.sun_path, *path, strlen(*path) + 1);
    unlink(*path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
        fail(s, "console socket for the job's terminal");
    return fd;
}

/* crun has sent the pty master by the time `crun run --detach` returns. */
static int console_recv(int lsock)
{
    struct pollfd p = {lsock, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0)
        return -1;
    int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return -1;
    struct timeval tv = {5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char data[256];
    struct iovec iov = {data, sizeof(data)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof(u.buf)};
    int fd = -1;
    if (recvmsg(c, &m, MSG_CMSG_CLOEXEC) >= 0)
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
                memcpy(&fd, CMSG_DATA(h), sizeof(int));
    close(c);
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: flynn-shim JOB_DIR [STATUS_FD]\n");
        return 2;
    }
    struct shim s = {.dir = argv[1], .status_fd = argc > 2 ? atoi(argv[2]) : -1, .log_fd = -1,
                     .slug_fd = -1};
    strbuf_init(&s.partial[0], 0);
    strbuf_init(&s.partial[1], 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    unsetenv("NOTIFY_SOCKET"); /* else crun run --detach waits for READY=1 */

    cleanup_free char *cfgp = xasprintf("%s/shim.json", s.dir);
    json_error_t je;
    s.cfg = json_load_file(cfgp, 0, &je);
    if (!s.cfg) {
        fprintf(stderr, "flynn-shim: read %s: %s\n", cfgp, je.text);
        status_write(&s, "error read shim config: %s", je.text);
        return 1;
    }
    s.id = cfg_str(s.cfg, "id");
    json_int_t lm = json_integer_value(json_object_get(s.cfg, "log_max"));
    s.log_max = lm > 0 ? (size_t)lm : 8 << 20;
    cleanup_free char *pidp = xasprintf("%s/shim.pid", s.dir);
    char pidbuf[32];
    int pl = snprintf(pidbuf, sizeof(pidbuf), "%d\n", (int)getpid());
    fs_write_file(pidp, pidbuf, (size_t)pl, 0644, 0, NULL);
    log_open(&s);
    json_t *attach = json_object_get(s.cfg, "attach");
    int tty = json_is_true(json_object_get(attach, "tty"));
    int with_stdin = json_is_true(json_object_get(attach, "stdin"));
    s.interactive = json_is_object(attach);
    if (argc > 3 && atoi(argv[3]) > 2)
        s.att = shim_attach_new(s.id, atoi(argv[3]), s.interactive);

    struct err *e = NULL;
    json_t *slug = json_object_get(s.cfg, "slug");
    if (json_is_object(slug) && setup_slug(&s, slug, &e) < 0)
        fail(&s, e->msg);
    json_t *net = json_object_get(s.cfg, "net");
    if (json_is_object(net) && setup_net(net, &e) < 0)
        fail(&s, e->msg);
    json_t *rootfs = json_object_get(s.cfg, "rootfs");
    if (rootfs && setup_rootfs(rootfs, &e) < 0)
        fail(&s, e->msg);
    /* the client sees the job from its first byte, in its window size */
    if (s.interactive && s.att) {
        if (!shim_attach_wait(s.att, ATTACH_WAIT_MS))
            fprintf(stderr, "flynn-shim: job %s: no client attached in %d s, starting anyway\n",
                    s.id, ATTACH_WAIT_MS / 1000);
        unsigned rows, cols;
        shim_attach_size(s.att, &rows, &cols);
        cleanup_free char *ocip = xasprintf("%s/config.json", s.dir);
        if (tty && rows && cols && oci_set_console_size(ocip, rows, cols, &e) < 0)
            fail(&s, e->msg);
    }

    prctl(PR_SET_CHILD_SUBREAPER, 1);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    int out[2], errp[2], crun_err[2], in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(crun_err, O_CLOEXEC) < 0)
        fail(&s, "pipe for the job's output");
    if (with_stdin && !tty && pipe2(in, O_CLOEXEC) < 0)
        fail(&s, "pipe for the job's stdin");
    cleanup_free char *console = NULL;
    int csock = tty ? console_listen(&s, &console) : -1;
    cleanup_free char *bundle = xstrdup(s.dir);
    cleanup_free char *pidfile = xasprintf("%s/pid", s.dir);
    cleanup_free char *crunlog = xasprintf("file:%s/crun.log", s.dir);
    pid_t crun = fork();
    if (crun < 0)
        fail(&s, "fork crun");
    if (crun == 0) {
        sigprocmask(SIG_UNBLOCK, &mask, NULL);
        int nul = open("/dev/null", O_RDONLY);
        dup2(in[0] >= 0 ? in[0] : nul, 0);
        dup2(out[1], 1);
        dup2(errp[1], 2);
        const char *cargv[24];
        int k = 0;
        cargv[k++] = "crun";
        cargv[k++] = "--root";
        cargv[k++] = cfg_str(s.cfg, "crun_root");
        cargv[k++] = "--log";
        cargv[k++] = crunlog;
        cargv[k++] = "--log-format";
        cargv[k++] = "json";
        cargv[k++] = "run";
        cargv[k++] = "--detach";
        cargv[k++] = "--no-new-keyring";
        if (console) {
            cargv[k++] = "--console-socket";
            cargv[k++] = console;
        }
        cargv[k++] = "--bundle";
        cargv[k++] = bundle;
        cargv[k++] = "--pid-file";
        cargv[k++] = pidfile;
        cargv[k++] = s.id;
        cargv[k] = NULL;
        execvp(cfg_str(s.cfg, "crun"), (char **)cargv);
        _exit(127);
    }
    if (in[0] >= 0)
        close(in[0]);
    if (in[1] >= 0)
        fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    close(out[1]);
    close(errp[1]);
    close(crun_err[0]);
    close(crun_err[1]);

    /* crun run --detach returns once the job's process runs (or failed) */
    int st;
    while (waitpid(crun, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char buf[4096];
        int fl = fcntl(errp[0], F_GETFL);
        fcntl(errp[0], F_SETFL, fl | O_NONBLOCK);
        ssize_t n = read(errp[0], buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        char *msg = read_crun_error(&s, buf);
        crun_delete(&s);
        fail(&s, msg);
    }
    cleanup_free char *pidtxt = fs_read_file(pidfile, NULL, NULL);
    pid_t init = pidtxt ? (pid_t)atoi(pidtxt) : 0;
    if (init <= 0) {
        crun_delete(&s);
        fail(&s, "crun did not report the job's pid");
    }
    int pty = -1;
    if (csock >= 0) {
        pty = console_recv(csock);
        close(csock);
        unlink(console);
        if (pty < 0) {
            crun_delete(&s);
            fail(&s, "crun did not hand over the job's terminal");
        }
    }
    if (s.att)
        shim_attach_started(s.att, init, fd_take(&in[1]), pty);
    else if (in[1] >= 0)
        close(in[1]);
    status_write(&s, "start %d", (int)init);

    /* a tty job's output is its terminal's: crun's own stdout is done */
    int ofd[2] = {out[0], errp[0]};
    if (pty >= 0) {
        close(out[0]);
        ofd[0] = pty;
    }
    int open_pipes = 2, exited = 0, exit_status = 0, sig = 0;
    char buf[65536];
    while (open_pipes > 0 || !exited) {
        /* a client that lags stops the reading of the job's output (once
         * the job is gone, what is left in the pipes is read regardless) */
        int take = !s.att || exited || shim_attach_output_ok(s.att);
        struct pollfd pfd[3 + SHIM_ATTACH_NFDS] = {
            {take ? ofd[0] : -1, POLLIN, 0}, {take ? ofd[1] : -1, POLLIN, 0}, {sfd, POLLIN, 0}};
        int na = s.att ? shim_attach_poll(s.att, pfd + 3) : 0;
        /* once init is gone, every process of the job is gone; give
         * descendants that escaped a short grace to close the pipes */
        int r = poll(pfd, 3 + (nfds_t)na, exited ? 2000 : -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 && exited)
            break;
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(pfd[i].fd, buf, sizeof(buf));
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) { /* a pty says EIO once its last process is gone */
                log_data(&s, i, "", 0, 1);
                if (ofd[i] != pty)
                    close(ofd[i]);
                ofd[i] = -1;
                open_pipes--;
            } else {
                log_data(&s, i, buf, (size_t)n, 0);
                if (s.att)
                    shim_attach_output(s.att, i + 1, buf, (size_t)n);
            }
        }
        if (s.att)
            shim_attach_handle(s.att, pfd + 3, na);
        if (pfd[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == sizeof(si))
                ;
            pid_t p;
            while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
                if (p != init)
                    continue;
                exited = 1;
                if (WIFEXITED(st))
                    exit_status = WEXITSTATUS(st);
                else if (WIFSIGNALED(st)) {
                    sig = WTERMSIG(st);
                    exit_status = 128 + sig;
                }
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (s.partial[i].len)
            log_data(&s, i, "", 0, 1);
    /* the client hears the end first; the cleanup below takes a while */
    if (s.att)
        shim_attach_finish(s.att, exit_status, NULL, ATTACH_FLUSH_MS);
    if (pty >= 0)
        close(pty);
    int oom = cgroups_oom_killed(cfg_str(s.cfg, "cgroups_path"));
    crun_delete(&s);
    teardown(&s);
    write_exit(&s, exit_status, sig, oom, NULL);
    status_write(&s, "exit %d", exit_status);
    release_slug(&s);
    strbuf_release(&s.partial[0]);
    strbuf_release(&s.partial[1]);
    shim_attach_free(s.att);
    json_decref(s.cfg);
    return 0;
}
