#include "jobs.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "cgroups.h"
#include "fsutil.h"
#include "ids.h"
#include "log.h"
#include "net.h"
#include "oci.h"
#include "slug.h"
#include "stack.h"
#include "strbuf.h"
#include "xalloc.h"

#define MAX_SUBS 64

struct job {
    struct jobs *tab;
    char *id;
    char *dir;
    json_t *spec;
    enum job_status status;
    pid_t pid, shim_pid;
    int pidfd;     /* the job's init, for signals */
    int shim_pidfd;
    struct event *shim_ev;
    int status_fd;
    struct event *status_ev;
    struct strbuf status_buf;
    struct event *kill_timer;
    struct event *poll_timer; /* adopted job still starting: wait for its pid file */
    char ip[INET_ADDRSTRLEN];
    uint32_t ip_host; /* host part index, 0 for none */
    char created_at[40], started_at[40], ended_at[40];
    int exit_status, signal, oom, force_stop, stop_sent;
    int restarts;             /* resurrected jobs: quick failures in a row */
    long long started_us;
    struct event *restart_timer;
    char *error;
    struct job *next;
};

struct sub {
    jobs_event_cb cb;
    void *arg;
};

struct jobs {
    struct event_base *base;
    struct jobs_cfg cfg;
    char *jobs_dir, *crun_root, *netns_dir, *stack, *resurrect_dir, *slug_cache;
    char *init_path; /* flynn-init, next to the shim: PID 1 of attached jobs */
    struct job *head;
    struct sub subs[MAX_SUBS];
    int nsubs;
    uint32_t net_base, net_size; /* network address (host order) and size */
    uint32_t next_ip;
    char gw[INET_ADDRSTRLEN];
    int prefix;
};

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_send(int fd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

static struct job *find(struct jobs *t, const char *id)
{
    for (struct job *j = t->head; j; j = j->next)
        if (!strcmp(j->id, id))
            return j;
    return NULL;
}

static json_t *active_json(struct jobs *t, struct job *j)
{
    json_t *o = json_pack("{s:s,s:O,s:s,s:i,s:b,s:i,s:s}", "id", j->id, "job", j->spec, "host_id",
                          t->cfg.host_id, "pid", (int)j->pid, "force_stop", j->force_stop,
                          "status", (int)j->status, "created_at", j->created_at);
    json_object_set_new(o, "internal_ip", j->ip[0] ? json_string(j->ip) : json_null());
    json_object_set_new(o, "started_at", j->started_at[0] ? json_string(j->started_at) : json_null());
    json_object_set_new(o, "ended_at", j->ended_at[0] ? json_string(j->ended_at) : json_null());
    if (j->status >= JOB_DONE) {
        json_object_set_new(o, "exit_status", json_integer(j->exit_status));
        json_object_set_new(o, "signal", json_integer(j->signal));
        json_object_set_new(o, "oom_killed", json_boolean(j->oom));
    } else {
        json_object_set_new(o, "exit_status", json_null());
    }
    json_object_set_new(o, "error", j->error ? json_string(j->error) : json_null());
    return o;
}

static void emit(struct jobs *t, struct job *j, const char *event)
{
    json_t *ev = json_pack("{s:s,s:s,s:o}", "event", event, "job_id", j->id, "job",
                           active_json(t, j));
    /* a callback may unsubscribe itself: iterate over a copy */
    struct sub subs[MAX_SUBS];
    int n = t->nsubs;
    memcpy(subs, t->subs, sizeof(subs[0]) * (size_t)n);
    for (int i = 0; i < n; i++)
        subs[i].cb(ev, subs[i].arg);
    json_decref(ev);
}

void jobs_subscribe(struct jobs *t, jobs_event_cb cb, void *arg)
{
    if (t->nsubs == MAX_SUBS) {
        log_warn("too many event subscribers; dropping one");
        return;
    }
    t->subs[t->nsubs++] = (struct sub){cb, arg};
}

void jobs_unsubscribe(struct jobs *t, jobs_event_cb cb, void *arg)
{
    for (int i = 0; i < t->nsubs; i++) {
        if (t->subs[i].cb == cb && t->subs[i].arg == arg) {
            memmove(&t->subs[i], &t->subs[i + 1], sizeof(t->subs[0]) * (size_t)(t->nsubs - i - 1));
            t->nsubs--;
            return;
        }
    }
}

/* ---- addresses ---- */

static int parse_subnet(struct jobs *t, const char *cidr, struct err **err)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", cidr);
    char *slash = strchr(buf, '/');
    if (!slash)
        return err_makex(err, EINVAL, "subnet '%s' is not in CIDR form", cidr);
    *slash = '\0';
    int prefix = atoi(slash + 1);
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1 || prefix < 8 || prefix > 29)
        return err_makex(err, EINVAL, "subnet '%s' is invalid (need IPv4 /8../29)", cidr);
    uint32_t size = 1u << (32 - prefix);
    t->net_base = ntohl(a.s_addr) & ~(size - 1);
    t->net_size = size;
    t->prefix = prefix;
    struct in_addr g = {htonl(t->net_base + 1)};
    inet_ntop(AF_INET, &g, t->gw, sizeof(t->gw));
    t->next_ip = 2;
    return 0;
}

static int ip_used(struct jobs *t, uint32_t host)
{
    for (struct job *j = t->head; j; j = j->next)
        if (j->ip_host == host)
            return 1;
    return 0;
}

/* Next free address after the last one given out, so a stopped job's
 * address is not reused at once. */
static int ip_alloc(struct jobs *t, struct job *j)
{
    uint32_t n = t->net_size - 3; /* network, gateway, broadcast */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t h = 2 + (t->next_ip - 2 + k) % n;
        if (ip_used(t, h))
            continue;
        t->next_ip = h + 1;
        j->ip_host = h;
        struct in_addr a = {htonl(t->net_base + h)};
        inet_ntop(AF_INET, &a, j->ip, sizeof(j->ip));
        return 0;
    }
    return -1;
}

/* ---- lifecycle ---- */

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->shim_ev)
        event_free(j->shim_ev);
    if (j->status_ev)
        event_free(j->status_ev);
    if (j->kill_timer)
        event_free(j->kill_timer);
    if (j->poll_timer)
        event_free(j->poll_timer);
    if (j->restart_timer)
        event_free(j->restart_timer);
    if (j->shim_pidfd >= 0)
        close(j->shim_pidfd);
    if (j->status_fd >= 0)
        close(j->status_fd);
    if (j->pidfd >= 0)
        close(j->pidfd);
    strbuf_release(&j->status_buf);
    json_decref(j->spec);
    free(j->error);
    free(j->dir);
    free(j->id);
    free(j);
}

static struct job *job_new(struct jobs *t, const char *id)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->tab = t;
    j->id = xstrdup(id);
    j->dir = xasprintf("%s/%s", t->jobs_dir, id);
    j->pidfd = j->shim_pidfd = j->status_fd = -1;
    strbuf_init(&j->status_buf, 0);
    return j;
}

/* Drops the oldest finished jobs beyond the configured number. */
static void prune(struct jobs *t)
{
    int finished = 0;
    for (struct job *j = t->head; j; j = j->next)
        if (j->status >= JOB_DONE)
            finished++;
    /* the list is newest-first; drop from the tail */
    while (finished > t->cfg.max_finished) {
        struct job **pp = &t->head, **last = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->status >= JOB_DONE &&
                !((*pp)->restart_timer && evtimer_pending((*pp)->restart_timer, NULL)))
                last = pp;
        if (!last)
            break;
        struct job *old = *last;
        *last = old->next;
        fs_rm_rf(old->dir, NULL);
        job_free(old);
        finished--;
    }
}

static void job_started(struct job *j, pid_t pid)
{
    if (j->status != JOB_STARTING)
        return;
    j->started_us = time_now_us();
    j->pid = pid;
    j->pidfd = pidfd_open_(pid);
    j->status = JOB_RUNNING;
    time_now_rfc3339(j->started_at);
    log_info("job %s started, pid %d, ip %s", j->id, (int)pid, j->ip[0] ? j->ip : "host");
    emit(j->tab, j, "start");
    if (j->force_stop) /* stop was asked while it was starting */
        jobs_stop(j->tab, j->id, NULL);
}

/* ---- resurrection: jobs with "resurrect": true come back ---- */

static int is_resurrect(struct job *j)
{
    return json_is_true(json_object_get(j->spec, "resurrect"));
}

static char *resurrect_path(struct jobs *t, const char *id)
{
    return xasprintf("%s/%s.json", t->resurrect_dir, id);
}

static json_t *start_with(struct jobs *t, json_t *spec, int restarts, struct err **err);
static json_t *start_job(struct jobs *t, const char *id, json_t *spec, int restarts,
                         struct err **err);

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    struct err *e = NULL;
    json_t *aj = start_with(j->tab, j->spec, j->restarts, &e);
    if (!aj) {
        log_error("resurrect job %s: %s", j->id, e->msg);
        err_free(e);
        return;
    }
    log_info("job %s resurrected as %s", j->id, json_string_value(json_object_get(aj, "id")));
    json_decref(aj);
    cleanup_free char *p = resurrect_path(j->tab, j->id);
    unlink(p);
}

/* A resurrect job that ended without being asked to: start it again under
 * a new ID, after a back-off that grows while it keeps failing fast. */
static void schedule_resurrect(struct job *j)
{
    int quick = !j->started_us || time_now_us() - j->started_us < 10 * 1000000LL;
    j->restarts = quick ? j->restarts + 1 : 0;
    long ms = 250L << (j->restarts < 7 ? j->restarts : 7);
    if (ms > 30000)
        ms = 30000;
    if (!j->restart_timer)
        j->restart_timer = evtimer_new(j->tab->base, on_restart, j);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(j->restart_timer, &tv);
    log_info("job %s will be resurrected in %ld ms", j->id, ms);
}

/* Says in the job's log why it ended when it crashed or failed: one last
 * stderr line marked "system" (shipped to the log aggregator like the rest).
 * Runs once per job: exit.logged records that it was written, so finalising
 * the job again after a daemon restart adds nothing. */
static void log_exit_reason(struct job *j)
{
    cleanup_free char *marker = xasprintf("%s/exit.logged", j->dir);
    if (fs_exists(marker) || !fs_exists(j->dir))
        return;
    cleanup_free char *msg = NULL;
    if (j->status == JOB_FAILED) {
        msg = xasprintf("job failed to start: %s", j->error ? j->error : "unknown error");
    } else if (j->oom) {
        json_int_t lim = json_integer_value(json_object_get(
            json_object_get(json_object_get(j->spec, "resources"), "memory"), "limit"));
        msg = lim > 0 ? xasprintf("out of memory (limit %lld MB): killed by the kernel's OOM killer",
                                  (long long)(lim >> 20))
                      : xstrdup("out of memory: killed by the kernel's OOM killer");
    } else if (j->force_stop) {
        return; /* stopped on request */
    } else if (j->signal) {
        const char *name = sigabbrev_np(j->signal);
        msg = name ? xasprintf("job killed by signal %d (SIG%s)", j->signal, name)
                   : xasprintf("job killed by signal %d", j->signal);
    } else if (j->exit_status) {
        msg = xasprintf("job exited with status %d", j->exit_status);
    } else {
        return;
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "time", j->ended_at, "stream", "stderr", "msg", msg,
                          "system", 1);
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    cleanup_free char *p = xasprintf("%s/log", j->dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0) {
        struct strbuf sb = STRBUF_INIT;
        strbuf_addf(&sb, "%s\n", line);
        ssize_t w = write(fd, sb.buf, sb.len);
        (void)w;
        strbuf_release(&sb);
        close(fd);
    }
    free(line);
    fs_write_file(marker, "", 0, 0644, 0, NULL);
}

/* The shim has exited: read what it left and finalise the job. */
static void job_finished(struct job *j)
{
    if (j->status >= JOB_DONE)
        return;
    cleanup_free char *p = xasprintf("%s/exit.json", j->dir);
    json_t *ex = json_load_file(p, 0, NULL);
    const char *err = json_string_value(json_object_get(ex, "error"));
    const char *ended = json_string_value(json_object_get(ex, "ended_at"));
    if (ended)
        snprintf(j->ended_at, sizeof(j->ended_at), "%s", ended);
    else
        time_now_rfc3339(j->ended_at);
    if (!ex || err) {
        j->status = JOB_FAILED;
        free(j->error);
        j->error = xstrdup(err ? err : "the job's shim exited without a status");
        j->exit_status = -1;
    } else {
        j->exit_status = (int)json_integer_value(json_object_get(ex, "exit_status"));
        j->signal = (int)json_integer_value(json_object_get(ex, "signal"));
        j->oom = json_is_true(json_object_get(ex, "oom_killed"));
        j->status = (j->exit_status == 0 || j->force_stop) && !j->oom ? JOB_DONE : JOB_CRASHED;
        if (j->oom) {
            free(j->error);
            j->error = xstrdup("out of memory: killed by the kernel's OOM killer");
        }
    }
    json_decref(ex);
    if (j->kill_timer)
        event_del(j->kill_timer);
    if (j->shim_ev)
        event_del(j->shim_ev);
    if (j->pidfd >= 0) {
        close(j->pidfd);
        j->pidfd = -1;
    }
    j->ip_host = 0; /* address free again */
    log_info("job %s %s: exit %d%s%s%s", j->id, j->status == JOB_FAILED ? "failed" : "stopped",
             j->exit_status, j->oom ? " (OOM)" : "", j->error ? ": " : "", j->error ? j->error : "");
    log_exit_reason(j);
    emit(j->tab, j, j->status == JOB_FAILED ? "error" : "stop");
    /* the record is gone once the job was resurrected or stopped on
     * purpose: a job finalised again after a daemon restart stays down */
    cleanup_free char *rp = is_resurrect(j) ? resurrect_path(j->tab, j->id) : NULL;
    if (rp && !j->force_stop && fs_exists(rp))
        schedule_resurrect(j);
    else
        prune(j->tab);
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        strbuf_add(&j->status_buf, buf, (size_t)n);
        char *nl;
        while ((nl = memchr(j->status_buf.buf, '\n', j->status_buf.len))) {
            *nl = '\0';
            const char *line = j->status_buf.buf;
            if (!strncmp(line, "start ", 6)) {
                job_started(j, (pid_t)atoi(line + 6));
            } else if (!strncmp(line, "error ", 6)) {
                free(j->error);
                j->error = xstrdup(line + 6);
            }
            strbuf_remove_prefix(&j->status_buf, (size_t)(nl - j->status_buf.buf) + 1);
        }
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    event_del(j->status_ev);
    close(j->status_fd);
    j->status_fd = -1;
}

static void on_shim_exit(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    /* reap it when it is our child (it is not after a daemon restart) */
    waitpid(j->shim_pid, NULL, WNOHANG);
    /* the status pipe may still hold "start"/"error": drain it first */
    while (j->status_fd >= 0)
        on_status(j->status_fd, EV_READ, j);
    job_finished(j);
}

static void on_poll_pid(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    cleanup_free char *p = xasprintf("%s/pid", j->dir);
    cleanup_free char *s = fs_read_file(p, NULL, NULL);
    if (s && atoi(s) > 0) {
        job_started(j, (pid_t)atoi(s));
        return;
    }
    struct timeval tv = {0, 50000};
    event_add(j->poll_timer, &tv);
}

static void watch_shim(struct jobs *t, struct job *j)
{
    j->shim_ev = event_new(t->base, j->shim_pidfd, EV_READ, on_shim_exit, j);
    event_add(j->shim_ev, NULL);
}

static int write_job_files(struct jobs *t, struct job *j, struct err **err)
{
    if (fs_mkdir_p(j->dir, 0700, err) < 0)
        return -1;
    json_t *root = json_object_get(j->spec, "root");
    const char *stack_name = json_string_value(json_object_get(root, "stack"));
    cleanup_free char *stack = NULL;
    if (stack_name && strcmp(stack_name, "default")) {
        stack = stack_path(t->cfg.state_dir, stack_name, err);
        if (!stack)
            return -1;
    } else {
        stack = xstrdup(t->stack);
    }
    static const char *sub[] = {"rootfs", "upper", "work"};
    for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
        cleanup_free char *p = xasprintf("%s/%s", j->dir, sub[i]);
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return err_make(err, errno, "mkdir '%s'", p);
    }
    /* the hostname is the UUID part, short enough for uts (64) */
    const char *dash = strchr(j->id, '-');
    char hostname[64];
    snprintf(hostname, sizeof(hostname), "%s", dash ? dash + 1 : j->id);
    cleanup_free char *hosts = xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n%s\t%s\n",
                                         j->ip[0] ? j->ip : "127.0.1.1", hostname);
    cleanup_free char *hostsp = xasprintf("%s/hosts", j->dir);
    cleanup_free char *hnp = xasprintf("%s/hostname", j->dir);
    cleanup_free char *hn = xasprintf("%s\n", hostname);
    cleanup_free char *resolvp = xasprintf("%s/resolv.conf", j->dir);
    cleanup_free char *resolv = fs_read_file("/etc/resolv.conf", NULL, NULL);
    if (fs_write_file(hostsp, hosts, strlen(hosts), 0644, 0, err) < 0 ||
        fs_write_file(hnp, hn, strlen(hn), 0644, 0, err) < 0 ||
        fs_write_file(resolvp, resolv ? resolv : "", resolv ? strlen(resolv) : 0, 0644, 0, err) < 0)
        return -1;

    int host_net = !t->cfg.bridge || !*t->cfg.bridge ||
                   json_is_true(json_object_get(json_object_get(j->spec, "config"), "host_network"));
    cleanup_free char *netns = host_net ? NULL : xasprintf("%s/%s", t->netns_dir, j->id);
    cleanup_free char *rootfs = xasprintf("%s/rootfs", j->dir);
    cleanup_free char *cgpath = xasprintf("/flynn/%s", j->id);
    /* a slug is one more read-only layer, above the stack */
    json_t *slug = json_object_get(root, "slug");
    if (json_is_null(slug))
        slug = NULL;
    const char *sha = json_string_value(json_object_get(slug, "sha256"));
    cleanup_free char *slugdir = slug ? slug_dir(t->slug_cache, sha) : NULL;
    cleanup_free char *lower = slug ? xasprintf("%s/root:%s", slugdir, stack) : xstrdup(stack);
    /* a job a client attaches to (stdin or a tty) runs under flynn-init */
    json_t *jcfg = json_object_get(j->spec, "config");
    int tty = json_is_true(json_object_get(jcfg, "tty"));
    int with_stdin = json_is_true(json_object_get(jcfg, "stdin"));
    struct oci_job oj = {.id = j->id, .spec = j->spec, .rootfs = rootfs, .netns_path = netns,
                         .job_dir = j->dir, .ip = j->ip, .hostname = hostname,
                         .cgroups_path = cgpath, .runner_dir = slug ? t->cfg.runner_dir : NULL,
                         .init_path = tty || with_stdin ? t->init_path : NULL};
    json_t *cfg = oci_config(&oj, err);
    if (!cfg)
        return -1;
    cleanup_free char *cfgp = xasprintf("%s/config.json", j->dir);
    int rc = json_dump_file(cfg, cfgp, JSON_COMPACT);
    json_decref(cfg);
    if (rc < 0)
        return err_make(err, EIO, "write '%s'", cfgp);

    json_t *shim = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "id", j->id, "crun",
                             t->cfg.crun, "crun_root", t->crun_root, "cgroups_path", cgpath,
                             "rootfs", "lower", lower, "upper", "", "work", "", "merged", rootfs);
    json_t *r = json_object_get(shim, "rootfs");
    json_object_set_new(r, "upper", json_sprintf("%s/upper", j->dir));
    if (tty || with_stdin)
        json_object_set_new(shim, "attach", json_pack("{s:b,s:b}", "stdin", with_stdin, "tty", tty));
    json_object_set_new(r, "work", json_sprintf("%s/work", j->dir));
    if (slug) {
        json_t *size = json_object_get(slug, "size");
        json_object_set_new(shim, "slug",
                            json_pack("{s:O,s:s,s:I,s:s,s:i}", "url", json_object_get(slug, "url"),
                                      "sha256", sha, "size",
                                      json_is_integer(size) ? json_integer_value(size) : 0,
                                      "cache", t->slug_cache, "keep", t->cfg.slug_keep));
        json_object_set_new(json_object_get(shim, "slug"), "fetcher",
                            json_string(t->cfg.host_path ? t->cfg.host_path : "flynn-host"));
        json_object_set_new(shim, "runner_dir", json_string(t->cfg.runner_dir));
    }
    if (!host_net) {
        char hostif[16];
        snprintf(hostif, sizeof(hostif), "flv%08x", t->net_base + j->ip_host);
        json_object_set_new(shim, "net",
                            json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "netns", netns, "bridge",
                                      t->cfg.bridge, "host_if", hostif, "addr", "", "gw", t->gw,
                                      "mtu", t->cfg.mtu));
        json_object_set_new(json_object_get(shim, "net"), "addr",
                            json_sprintf("%s/%d", j->ip, t->prefix));
    }
    cleanup_free char *shimp = xasprintf("%s/shim.json", j->dir);
    rc = json_dump_file(shim, shimp, JSON_COMPACT);
    json_decref(shim);
    if (rc < 0)
        return err_make(err, EIO, "write '%s'", shimp);

    json_t *rec = json_pack("{s:O,s:s,s:s}", "spec", j->spec, "ip", j->ip, "created_at",
                            j->created_at);
    cleanup_free char *recp = xasprintf("%s/job.json", j->dir);
    rc = json_dump_file(rec, recp, JSON_COMPACT);
    json_decref(rec);
    if (rc < 0)
        return err_make(err, EIO, "write '%s'", recp);
    return 0;
}

/* The socket clients' connections reach the job's shim through (attach.h):
 * made here, so it accepts connections as soon as the job exists, and held
 * by the shim, so it outlives a restart of the daemon. -1 when it cannot be
 * made (the job then runs without attach). */
static int attach_listen(struct job *j)
{
    cleanup_free char *path = xasprintf("%s/%s", j->dir, ATTACH_SOCKET);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_warn("job %s: no attach: socket path '%s' is too long", j->id, path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || (unlink(path) < 0 && errno != ENOENT) ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
        listen(fd, 16) < 0) {
        log_warn("job %s: no attach: socket '%s': %s", j->id, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int spawn_shim(struct jobs *t, struct job *j, struct err **err)
{
    int sp[2];
    if (pipe2(sp, O_CLOEXEC) < 0)
        return err_make(err, errno, "pipe for job '%s'", j->id);
    int lsock = attach_listen(j);
    pid_t pid = fork();
    if (pid < 0) {
        close(sp[0]);
        close(sp[1]);
        if (lsock >= 0)
            close(lsock);
        return err_make(err, errno, "fork the shim of job '%s'", j->id);
    }
    if (pid == 0) {
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        /* stderr stays the daemon's so shim failures are in its log; the
         * status pipe becomes fd 3, the attach socket fd 4 (moved up first
         * so neither lands on the other's number) */
        int st = fcntl(sp[1], F_DUPFD_CLOEXEC, 10);
        int ls = lsock >= 0 ? fcntl(lsock, F_DUPFD_CLOEXEC, 10) : -1;
        dup2(st, 3);
        if (ls >= 0) {
            dup2(ls, 4);
            execl(t->cfg.shim_path, "flynn-shim", j->dir, "3", "4", (char *)NULL);
        }
        execl(t->cfg.shim_path, "flynn-shim", j->dir, "3", (char *)NULL);
        _exit(127);
    }
    close(sp[1]);
    if (lsock >= 0)
        close(lsock);
    j->shim_pid = pid;
    j->shim_pidfd = pidfd_open_(pid);
    j->status_fd = sp[0];
    fcntl(j->status_fd, F_SETFL, O_NONBLOCK);
    j->status_ev = event_new(t->base, j->status_fd, EV_READ | EV_PERSIST, on_status, j);
    event_add(j->status_ev, NULL);
    watch_shim(t, j);
    return 0;
}

json_t *jobs_add(struct jobs *t, const char *id, json_t *spec, struct err **err)
{
    if (oci_validate_job(spec, id, err) < 0)
        return NULL;
    return start_job(t, id, spec, 0, err);
}

static json_t *start_with(struct jobs *t, json_t *spec, int restarts, struct err **err)
{
    char u[37];
    id_uuid(u);
    cleanup_free char *id = xasprintf("%s-%s", t->cfg.host_id, u);
    json_t *copy = json_deep_copy(spec);
    json_object_set_new(copy, "id", json_string(id));
    json_t *aj = start_job(t, id, copy, restarts, err);
    json_decref(copy);
    return aj;
}

static json_t *start_job(struct jobs *t, const char *id, json_t *spec, int restarts,
                         struct err **err)
{
    struct job *old = find(t, id);
    if (old) {
        err_makex(err, EEXIST, "job '%s' already exists", id);
        return NULL;
    }
    struct job *j = job_new(t, id);
    j->spec = json_deep_copy(spec);
    json_object_set_new(j->spec, "id", json_string(id));
    time_now_rfc3339(j->created_at);
    int host_net = !t->cfg.bridge || !*t->cfg.bridge ||
                   json_is_true(json_object_get(json_object_get(spec, "config"), "host_network"));
    if (!host_net && ip_alloc(t, j) < 0) {
        err_makex(err, EAGAIN, "no free address left in subnet %s", t->cfg.subnet);
        job_free(j);
        return NULL;
    }
    j->restarts = restarts;
    cleanup_free char *rp = is_resurrect(j) ? resurrect_path(t, id) : NULL;
    cleanup_free char *txt = rp ? json_dumps(j->spec, JSON_COMPACT) : NULL;
    if ((rp && fs_write_file(rp, txt, strlen(txt), 0600, 1, err) < 0) ||
        write_job_files(t, j, err) < 0 || spawn_shim(t, j, err) < 0) {
        if (rp)
            unlink(rp);
        fs_rm_rf(j->dir, NULL);
        job_free(j);
        return NULL;
    }
    j->next = t->head;
    t->head = j;
    emit(t, j, "create");
    return active_json(t, j);
}

json_t *jobs_list(struct jobs *t, int active_only)
{
    json_t *o = json_object();
    for (struct job *j = t->head; j; j = j->next)
        if (!active_only || j->status <= JOB_RUNNING)
            json_object_set_new(o, j->id, active_json(t, j));
    return o;
}

json_t *jobs_get(struct jobs *t, const char *id, struct err **err)
{
    struct job *j = find(t, id);
    if (!j) {
        err_makex(err, ENOENT, "job '%s' not found", id);
        return NULL;
    }
    return active_json(t, j);
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    if (j->status == JOB_RUNNING && j->pidfd >= 0) {
        log_info("job %s did not stop in time: SIGKILL", j->id);
        pidfd_send(j->pidfd, SIGKILL);
    }
}

int jobs_stop(struct jobs *t, const char *id, struct err **err)
{
    struct job *j = find(t, id);
    if (!j)
        return err_makex(err, ENOENT, "job '%s' not found", id);
    if (is_resurrect(j)) { /* stopped on purpose: it stays down */
        cleanup_free char *p = resurrect_path(t, id);
        unlink(p);
        if (j->restart_timer)
            evtimer_del(j->restart_timer);
    }
    if (j->status >= JOB_DONE)
        return 0;
    j->force_stop = 1;
    if (j->status == JOB_STARTING || j->stop_sent)
        return 0; /* job_started stops it */
    j->stop_sent = 1;
    if (j->pidfd >= 0 && pidfd_send(j->pidfd, SIGTERM) < 0 && errno != ESRCH)
        return err_make(err, errno, "signal job '%s'", id);
    json_t *to = json_object_get(j->spec, "stop_timeout");
    int secs = json_is_integer(to) ? (int)json_integer_value(to) : t->cfg.stop_timeout;
    if (!j->kill_timer)
        j->kill_timer = evtimer_new(t->base, on_kill_timer, j);
    struct timeval tv = {secs, 0};
    evtimer_add(j->kill_timer, &tv);
    return 0;
}

int jobs_signal(struct jobs *t, const char *id, int sig, struct err **err)
{
    struct job *j = find(t, id);
    if (!j)
        return err_makex(err, ENOENT, "job '%s' not found", id);
    if (j->status != JOB_RUNNING || j->pidfd < 0)
        return err_makex(err, EINVAL, "job '%s' is not running", id);
    if (pidfd_send(j->pidfd, sig) < 0)
        return err_make(err, errno, "signal job '%s'", id);
    return 0;
}

char *jobs_log_path(struct jobs *t, const char *id, int *ended, struct err **err)
{
    struct job *j = find(t, id);
    if (!j) {
        err_makex(err, ENOENT, "job '%s' not found", id);
        return NULL;
    }
    *ended = j->status >= JOB_DONE;
    return xasprintf("%s/log", j->dir);
}

char *jobs_dir(struct jobs *t, const char *id, struct err **err)
{
    struct job *j = find(t, id);
    if (!j) {
        err_makex(err, ENOENT, "job '%s' not found", id);
        return NULL;
    }
    return xstrdup(j->dir);
}

void jobs_stop_all(struct jobs *t)
{
    for (struct job *j = t->head; j; j = j->next)
        jobs_stop(t, j->id, NULL);
    for (;;) {
        int live = 0;
        for (struct job *j = t->head; j; j = j->next)
            if (j->status < JOB_DONE)
                live++;
        if (!live)
            break;
        event_base_loop(t->base, EVLOOP_ONCE);
    }
}

json_t *jobs_status(struct jobs *t)
{
    int n = 0, live = 0;
    for (struct job *j = t->head; j; j = j->next) {
        n++;
        if (j->status <= JOB_RUNNING)
            live++;
    }
    char subnet[64];
    struct in_addr a = {htonl(t->net_base)};
    char net[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, net, sizeof(net));
    snprintf(subnet, sizeof(subnet), "%s/%d", net, t->prefix);
    return json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:i},s:i,s:i}", "cgroup_mode", cgroups_mode(), "stack",
                     t->stack, "network", "bridge", t->cfg.bridge ? t->cfg.bridge : "", "subnet",
                     subnet, "gateway", t->gw, "mtu", t->cfg.mtu, "jobs", n, "active_jobs", live);
}

/* ---- recovery after a restart ---- */

static int is_our_shim(pid_t pid)
{
    char p[64], buf[256] = {0};
    snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n > 0 && strstr(buf, "flynn-shim") != NULL;
}

static void recover_one(struct jobs *t, const char *id)
{
    struct job *j = job_new(t, id);
    cleanup_free char *recp = xasprintf("%s/job.json", j->dir);
    json_t *rec = json_load_file(recp, 0, NULL);
    if (!rec) { /* half-created: nothing ran */
        fs_rm_rf(j->dir, NULL);
        job_free(j);
        return;
    }
    j->spec = json_incref(json_object_get(rec, "spec"));
    snprintf(j->ip, sizeof(j->ip), "%s", json_string_value(json_object_get(rec, "ip")) ?: "");
    snprintf(j->created_at, sizeof(j->created_at), "%s",
             json_string_value(json_object_get(rec, "created_at")) ?: "");
    json_decref(rec);
    struct in_addr a;
    if (j->ip[0] && inet_pton(AF_INET, j->ip, &a) == 1)
        j->ip_host = ntohl(a.s_addr) - t->net_base;
    j->next = t->head;
    t->head = j;

    cleanup_free char *exitp = xasprintf("%s/exit.json", j->dir);
    cleanup_free char *shimp = xasprintf("%s/shim.pid", j->dir);
    cleanup_free char *pidp = xasprintf("%s/pid", j->dir);
    cleanup_free char *shimtxt = fs_read_file(shimp, NULL, NULL);
    cleanup_free char *pidtxt = fs_read_file(pidp, NULL, NULL);
    if (pidtxt && atoi(pidtxt) > 0) {
        j->pid = (pid_t)atoi(pidtxt);
        j->status = JOB_RUNNING;
        snprintf(j->started_at, sizeof(j->started_at), "%s", j->created_at);
    }
    pid_t shim = shimtxt ? (pid_t)atoi(shimtxt) : 0;
    if (!fs_exists(exitp) && shim > 0 && is_our_shim(shim)) {
        j->shim_pid = shim;
        j->shim_pidfd = pidfd_open_(shim);
        if (j->shim_pidfd >= 0) {
            if (j->status == JOB_RUNNING)
                j->pidfd = pidfd_open_(j->pid);
            else {
                j->poll_timer = evtimer_new(t->base, on_poll_pid, j);
                on_poll_pid(-1, 0, j);
            }
            watch_shim(t, j);
            log_info("re-adopted job %s (shim %d, pid %d)", id, (int)shim, (int)j->pid);
            return;
        }
    }
    /* ended while we were away (or its shim vanished) */
    job_finished(j);
}

static void recover(struct jobs *t)
{
    DIR *d = opendir(t->jobs_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            recover_one(t, de->d_name);
    closedir(d);
    /* resurrect jobs whose run state is gone: the machine restarted */
    d = opendir(t->resurrect_dir);
    if (!d)
        return;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".json"))
            continue;
        cleanup_free char *id = xstrndup(de->d_name, n - 5);
        cleanup_free char *p = resurrect_path(t, id);
        if (find(t, id))
            continue;
        json_t *spec = json_load_file(p, 0, NULL);
        struct err *e = NULL;
        json_t *aj = spec ? start_with(t, spec, 0, &e) : NULL;
        if (aj)
            log_info("resurrected job %s as %s after a restart", id,
                     json_string_value(json_object_get(aj, "id")));
        else
            log_error("resurrect job %s: %s", id, e ? e->msg : "unreadable record");
        err_free(e);
        json_decref(aj);
        json_decref(spec);
        unlink(p);
    }
    closedir(d);
}

/* Runs before the event loop does (it blocks on the disk); the slugs of
 * running jobs are safe: their shims hold locks on them. */
static void evict_slugs(struct jobs *t)
{
    struct err *e = NULL;
    int evicted = slug_cache_evict(t->slug_cache, t->cfg.slug_keep, &e);
    if (evicted < 0) {
        log_warn("evict cached slugs: %s", e->msg);
        err_free(e);
    } else if (evicted > 0) {
        log_info("evicted %d cached slug%s from %s", evicted, evicted == 1 ? "" : "s",
                 t->slug_cache);
    }
}

struct jobs *jobs_new(struct event_base *base, const struct jobs_cfg *cfg, struct err **err)
{
    struct jobs *t = xcalloc(1, sizeof(*t));
    t->base = base;
    t->cfg = *cfg;
    if (t->cfg.max_finished <= 0)
        t->cfg.max_finished = 500;
    t->jobs_dir = xasprintf("%s/jobs", cfg->run_dir);
    t->crun_root = xasprintf("%s/crun", cfg->run_dir);
    t->netns_dir = xasprintf("%s/netns", cfg->run_dir);
    t->resurrect_dir = xasprintf("%s/resurrect", cfg->state_dir);
    t->slug_cache = xasprintf("%s/slugs", cfg->state_dir);
    const char *shim = cfg->shim_path ? cfg->shim_path : "flynn-shim";
    const char *slash = strrchr(shim, '/');
    t->init_path = slash ? xasprintf("%.*s/flynn-init", (int)(slash - shim), shim)
                         : xstrdup("flynn-init");
    if (access(t->init_path, X_OK) < 0) {
        log_warn("no %s: attached jobs run their command as PID 1 (no Ctrl-C, no 127)",
                 t->init_path);
        free(t->init_path);
        t->init_path = NULL;
    }
    if (t->cfg.slug_keep < 0)
        t->cfg.slug_keep = 20;
    if (!t->cfg.runner_dir)
        t->cfg.runner_dir = "/usr/local/lib/flynn/runner";
    if (parse_subnet(t, cfg->subnet, err) < 0)
        goto fail;
    if (fs_mkdir_p(t->jobs_dir, 0700, err) < 0 || fs_mkdir_p(t->crun_root, 0700, err) < 0 ||
        fs_mkdir_p(t->netns_dir, 0755, err) < 0 || fs_mkdir_p(t->resurrect_dir, 0700, err) < 0 ||
        fs_mkdir_p(t->slug_cache, 0700, err) < 0)
        goto fail;
    if (cgroups_setup(err) < 0) {
        err_wrap(err, "prepare cgroups");
        goto fail;
    }
    struct err *fe = NULL;
    if (cfg->favor_dynmods && cgroups_favor_dynmods(&fe) < 0) {
        log_warn("cgroups: %s (jobs start, ~10 ms slower)", fe->msg);
        err_free(fe);
    }
    t->stack = stack_ensure_default(cfg->state_dir, err);
    if (!t->stack) {
        err_wrap(err, "default stack");
        goto fail;
    }
    if (cfg->bridge && *cfg->bridge) {
        cleanup_free char *gwcidr = xasprintf("%s/%d", t->gw, t->prefix);
        if (net_bridge_setup(cfg->bridge, gwcidr, cfg->mtu, err) < 0 ||
            net_nat_setup(cfg->subnet, cfg->bridge, err) < 0) {
            err_wrap(err, "job network on bridge '%s'", cfg->bridge);
            goto fail;
        }
    }
    /* before recover() starts resurrected jobs, which would only fetch again */
    evict_slugs(t);
    recover(t);
    return t;
fail:
    jobs_free(t);
    return NULL;
}

void jobs_free(struct jobs *t)
{
    if (!t)
        return;
    while (t->head) {
        struct job *j = t->head;
        t->head = j->next;
        job_free(j);
    }
    free(t->jobs_dir);
    free(t->crun_root);
    free(t->netns_dir);
    free(t->stack);
    free(t->resurrect_dir);
    free(t->slug_cache);
    free(t->init_path);
    free(t);
}
