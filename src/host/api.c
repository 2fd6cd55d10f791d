#include "api.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach.h"
#include "httpd.h"
#include "log.h"
#include "logship.h"
#include "strbuf.h"
#include "xalloc.h"

#define STREAM_MAX_PENDING (4 << 20)

struct host_api {
    struct event_base *base;
    struct jobs *jobs;
    struct httpd *http;
    char *host_id, *version, *url;
    struct logship *ship; /* GET/PUT /host/config */
};

/* ---- event streams ---- */

struct ev_stream {
    struct host_api *api;
    struct httpd_stream *s;
    char *job_id; /* NULL: every job */
};

static void ev_stream_free(struct ev_stream *es)
{
    free(es->job_id);
    free(es);
}

static void on_job_event(json_t *ev, void *arg);

static void ev_stream_closed(struct httpd_stream *s, void *arg)
{
    struct ev_stream *es = arg;
    jobs_unsubscribe(es->api->jobs, on_job_event, es);
    ev_stream_free(es);
}

static void on_job_event(json_t *ev, void *arg)
{
    struct ev_stream *es = arg;
    const char *id = json_string_value(json_object_get(ev, "job_id"));
    if (es->job_id && strcmp(es->job_id, id))
        return;
    if (httpd_stream_pending(es->s) > STREAM_MAX_PENDING) {
        log_warn("event stream client too slow; closing it");
        jobs_unsubscribe(es->api->jobs, on_job_event, es);
        httpd_stream_end(es->s);
        ev_stream_free(es);
        return;
    }
    char *j = json_dumps(ev, JSON_COMPACT);
    struct strbuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "data: %s\n\n", j);
    free(j);
    httpd_stream_write(es->s, sb.buf, sb.len);
    strbuf_release(&sb);
}

static int wants_sse(struct httpd_req *r)
{
    const char *acc = httpd_header(r, "Accept");
    return acc && strstr(acc, "text/event-stream");
}

static void start_events(struct host_api *a, struct httpd_req *r, const char *job_id)
{
    struct ev_stream *es = xcalloc(1, sizeof(*es));
    es->api = a;
    es->job_id = job_id ? xstrdup(job_id) : NULL;
    es->s = httpd_stream_start(r, "text/event-stream", ev_stream_closed, es);
    httpd_stream_write(es->s, ": connected\n\n", 13);
    jobs_subscribe(a->jobs, on_job_event, es);
}

/* ---- handlers ---- */

static void h_status(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    json_t *st = jobs_status(a->jobs);
    json_object_set_new(st, "id", json_string(a->host_id));
    json_object_set_new(st, "pid", json_integer(getpid()));
    json_object_set_new(st, "version", json_string(a->version));
    json_object_set_new(st, "url", json_string(a->url ? a->url : ""));
    json_object_set_new(st, "tags", json_object());
    httpd_reply_json(r, 200, st);
}

static void h_list(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    if (wants_sse(r)) {
        start_events(a, r, NULL);
        return;
    }
    const char *act = httpd_query(r, "active");
    httpd_reply_json(r, 200, jobs_list(a->jobs, act && !strcmp(act, "true")));
}

static void h_get(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    struct err *e = NULL;
    json_t *j = jobs_get(a->jobs, httpd_param(r, "id"), &e);
    if (!j) {
        httpd_reply_err(r, e);
        return;
    }
    if (wants_sse(r)) {
        json_decref(j);
        start_events(a, r, httpd_param(r, "id"));
        return;
    }
    httpd_reply_json(r, 200, j);
}

static void h_put(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    json_t *spec = httpd_body_json(r);
    if (!spec)
        return;
    struct err *e = NULL;
    json_t *j = jobs_add(a->jobs, httpd_param(r, "id"), spec, &e);
    json_decref(spec);
    if (!j) {
        httpd_reply_err(r, e);
        return;
    }
    httpd_reply_json(r, 200, j);
}

static void h_delete(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    struct err *e = NULL;
    if (jobs_stop(a->jobs, httpd_param(r, "id"), &e) < 0) {
        httpd_reply_err(r, e);
        return;
    }
    httpd_reply_json(r, 200, jobs_get(a->jobs, httpd_param(r, "id"), NULL));
}

static const struct {
    const char *name;
    int sig;
} signames[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
                {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
                {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH}, {"ALRM", SIGALRM}};

/* Accepts "15", "TERM" or "SIGTERM"; returns -1 when unknown. */
static int parse_signal(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    long n = strtol(s, &end, 10);
    if (!*end)
        return n > 0 && n < 65 ? (int)n : -1;
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signames); i++)
        if (!strcasecmp(s, signames[i].name))
            return signames[i].sig;
    return -1;
}

static void h_signal(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    int sig = parse_signal(httpd_param(r, "sig"));
    if (sig < 0) {
        httpd_reply_error(r, 400, "validation_error", "unknown signal '%s'", httpd_param(r, "sig"));
        return;
    }
    struct err *e = NULL;
    if (jobs_signal(a->jobs, httpd_param(r, "id"), sig, &e) < 0) {
        httpd_reply_err(r, e);
        return;
    }
    httpd_reply_json(r, 200, json_object());
}

/* ---- logs ---- */

struct log_follow {
    struct host_api *api;
    struct httpd_stream *s;
    char *id, *path;
    int json;
    int fd;
    ino_t ino;
    struct strbuf partial;
    struct event *timer;
};

static void follow_free(struct log_follow *f)
{
    if (f->timer)
        event_free(f->timer);
    if (f->fd >= 0)
        close(f->fd);
    strbuf_release(&f->partial);
    free(f->id);
    free(f->path);
    free(f);
}

/* Appends one stored JSON log line to out in the requested format. */
static void format_line(const char *line, size_t len, int as_json, struct strbuf *out)
{
    if (as_json) {
        strbuf_add(out, line, len);
        strbuf_addch(out, '\n');
        return;
    }
    json_t *o = json_loadb(line, len, 0, NULL);
    const char *m = json_string_value(json_object_get(o, "msg"));
    /* raw output is what the job wrote: the host's exit line is JSON-only */
    if (m && !json_is_true(json_object_get(o, "system"))) {
        strbuf_adds(out, m);
        strbuf_addch(out, '\n');
    }
    json_decref(o);
}

/* Reads what is new in the file; emits complete lines into out. */
static void follow_read(struct log_follow *f, struct strbuf *out)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(f->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        strbuf_add(&f->partial, buf, (size_t)n);
    }
    size_t start = 0;
    for (size_t i = 0; i < f->partial.len; i++) {
        if (f->partial.buf[i] == '\n') {
            format_line(f->partial.buf + start, i - start, f->json, out);
            start = i + 1;
        }
    }
    strbuf_remove_prefix(&f->partial, start);
}

static void follow_closed(struct httpd_stream *s, void *arg)
{
    follow_free(arg);
}

static void on_follow_tick(evutil_socket_t fd, short what, void *arg)
{
    struct log_follow *f = arg;
    int ended = 0;
    cleanup_free char *p = jobs_log_path(f->api->jobs, f->id, &ended, NULL);
    struct strbuf out = STRBUF_INIT;
    follow_read(f, &out);
    struct stat st;
    if (stat(f->path, &st) == 0 && st.st_ino != f->ino) { /* rotated */
        close(f->fd);
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        f->ino = st.st_ino;
        follow_read(f, &out);
    }
    if (out.len)
        httpd_stream_write(f->s, out.buf, out.len);
    strbuf_release(&out);
    if (!p || ended) {
        /* one more read after the end so the last lines are not lost */
        struct strbuf last = STRBUF_INIT;
        follow_read(f, &last);
        if (last.len)
            httpd_stream_write(f->s, last.buf, last.len);
        strbuf_release(&last);
        httpd_stream_end(f->s);
        follow_free(f);
        return;
    }
    struct timeval tv = {0, 100000};
    evtimer_add(f->timer, &tv);
}

static void h_log(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    struct err *e = NULL;
    int ended = 0;
    const char *id = httpd_param(r, "id");
    cleanup_free char *path = jobs_log_path(a->jobs, id, &ended, &e);
    if (!path) {
        httpd_reply_err(r, e);
        return;
    }
    const char *fmt = httpd_query(r, "format");
    int as_json = fmt && !strcmp(fmt, "json");
    const char *lq = httpd_query(r, "lines");
    long lines = -1;
    if (lq) {
        char *end;
        lines = strtol(lq, &end, 10);
        if (*end || lines < 0) {
            httpd_reply_error(r, 400, "validation_error", "lines must be a non-negative integer");
            return;
        }
    }
    const char *fq = httpd_query(r, "follow");
    int follow = fq && !strcmp(fq, "true");

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct strbuf all = STRBUF_INIT;
    struct log_follow *f = xcalloc(1, sizeof(*f));
    f->api = a;
    f->json = as_json;
    f->fd = fd;
    f->id = xstrdup(id);
    f->path = xstrdup(path);
    strbuf_init(&f->partial, 0);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0)
        f->ino = st.st_ino;
    if (fd >= 0)
        follow_read(f, &all);
    if (lines >= 0) { /* keep the last N lines */
        size_t cnt = 0, i = all.len;
        while (i > 0) {
            if (all.buf[i - 1] == '\n' && i != all.len && ++cnt == (size_t)lines)
                break;
            i--;
        }
        if (lines == 0)
            i = all.len;
        strbuf_remove_prefix(&all, i);
    }
    if (!follow || ended) {
        httpd_reply_text(r, 200, as_json ? "application/x-ndjson" : "text/plain; charset=utf-8",
                         all.buf, all.len);
        strbuf_release(&all);
        follow_free(f);
        return;
    }
    if (f->fd < 0) { /* not written yet: the shim appends to the file we make */
        f->fd = open(path, O_RDONLY | O_CLOEXEC | O_CREAT, 0640);
        if (f->fd >= 0 && fstat(f->fd, &st) == 0)
            f->ino = st.st_ino;
    }
    f->s = httpd_stream_start(r, as_json ? "application/x-ndjson" : "text/plain; charset=utf-8",
                              follow_closed, f);
    if (all.len)
        httpd_stream_write(f->s, all.buf, all.len);
    strbuf_release(&all);
    f->timer = evtimer_new(a->base, on_follow_tick, f);
    struct timeval tv = {0, 100000};
    evtimer_add(f->timer, &tv);
}

/* POST /attach (Flynn's AttachReq, upgrade to flynn-attach/0): attach_api.c */
static void h_attach(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    attach_api_handle(r, a->jobs, a->base);
}

/* ---- config: where job logs go (logship.h) ---- */

static void h_config_get(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    if (!a->ship) {
        httpd_reply_empty(r, 404);
        return;
    }
    httpd_reply_json(r, 200, json_pack("{s:s,s:o}", "log_aggregator", logship_target(a->ship),
                                       "log_shipping", logship_status(a->ship)));
}

/* {"log_aggregator": "HOST:PORT"} ("" stops shipping); remembered in STATE_DIR */
static void h_config_put(struct httpd_req *r, void *arg)
{
    struct host_api *a = arg;
    if (!a->ship) {
        httpd_reply_empty(r, 404);
        return;
    }
    json_t *b = httpd_body_json(r);
    if (!b)
        return;
    json_t *la = json_object_get(b, "log_aggregator");
    struct err *e = NULL;
    if (!json_is_string(la) && !json_is_null(la)) {
        httpd_reply_error(r, 400, "validation_error", "log_aggregator must be a string");
    } else if (logship_set_target(a->ship, json_string_value(la), true, &e) < 0) {
        httpd_reply_err(r, e);
    } else {
        h_config_get(r, a);
    }
    json_decref(b);
}

static const struct httpd_route routes[] = {
    {"GET", "/host/status", h_status},
    {"GET", "/host/jobs", h_list},
    {"GET", "/host/jobs/:id", h_get},
    {"PUT", "/host/jobs/:id", h_put},
    {"DELETE", "/host/jobs/:id", h_delete},
    {"PUT", "/host/jobs/:id/signal/:sig", h_signal},
    {"GET", "/host/jobs/:id/log", h_log},
    {"GET", "/host/config", h_config_get},
    {"PUT", "/host/config", h_config_put},
    {"POST", "/attach", h_attach},
};

struct host_api *host_api_new(struct event_base *base, struct jobs *jobs, const char *host_id,
                              const char *version)
{
    struct host_api *a = xcalloc(1, sizeof(*a));
    a->base = base;
    a->jobs = jobs;
    a->host_id = xstrdup(host_id);
    a->version = xstrdup(version);
    struct httpd_opts o = {.max_body = 1 << 20, .max_headers = 16 << 10, .timeout_secs = 0};
    a->http = httpd_new(base, routes, ARRAY_SIZE(routes), &o, a);
    return a;
}

int host_api_listen(struct host_api *a, const char *addr, struct err **err)
{
    int port = httpd_listen(a->http, addr, err);
    if (port >= 0 && !a->url) {
        cleanup_free char *host = xstrdup(addr);
        char *c = strrchr(host, ':');
        if (c)
            *c = '\0';
        a->url = xasprintf("http://%s:%d", host, port);
    }
    return port;
}

void host_api_set_logship(struct host_api *a, struct logship *ship)
{
    a->ship = ship;
}

void host_api_free(struct host_api *a)
{
    if (!a)
        return;
    httpd_free(a->http);
    free(a->host_id);
    free(a->version);
    free(a->url);
    free(a);
}
