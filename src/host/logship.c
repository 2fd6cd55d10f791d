#include "logship.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#define BATCH_MAX (2u << 20)     /* bytes of lines per request */
#define LINE_MAX_READ (1u << 20) /* a single line may be this long (escaped) */
#define TICK_MS 50               /* look for new lines this often when idle */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define REQUEST_TIMEOUT_SECS 30

struct sjob {
    char *id, *dir, *app, *app_name, *release, *type;
    int fd; /* the file being read, -1 when not open yet */
    ino_t ino;
    off_t off;     /* next byte to ship in fd's file */
    uint64_t seq;  /* lines shipped */
    bool ended;    /* the job finished: no line will be added */
    bool in_batch; /* lines of it are in the request in flight */
    off_t p_off;   /* ... up to here */
    uint64_t p_lines;
    struct sjob *next;
};

struct logship {
    struct event_base *base;
    struct jobs *jobs;
    char *jobs_dir, *host_id, *conf_path;
    char *target, *host; /* target as given; host and port parsed */
    int port;
    struct evhttp_connection *conn;
    struct evhttp_request *req; /* in flight, NULL when none */
    struct event *timer;
    struct sjob *head;
    struct sjob *rr; /* where the next batch starts */
    int backoff_ms;
    bool failing;
    uint64_t lines_shipped, batches;
    char *last_error, *instance;
};

/* ---- jobs ---- */

static void sjob_free(struct sjob *j)
{
    if (j->fd >= 0)
        close(j->fd);
    free(j->id);
    free(j->dir);
    free(j->app);
    free(j->app_name);
    free(j->release);
    free(j->type);
    free(j);
}

static struct sjob *find(struct logship *s, const char *id)
{
    for (struct sjob *j = s->head; j; j = j->next)
        if (!strcmp(j->id, id))
            return j;
    return NULL;
}

static const char *meta(json_t *md, const char *k)
{
    const char *v = json_string_value(json_object_get(md, k));
    return v ? v : "";
}

/* Adds the job of an ActiveJob when it belongs to an app. */
static void add_job(struct logship *s, json_t *aj)
{
    const char *id = json_string_value(json_object_get(aj, "id"));
    json_t *md = json_object_get(json_object_get(aj, "job"), "metadata");
    if (!id || !*meta(md, "flynn-controller.app") || find(s, id))
        return;
    /* config.disable_log: the job's output stays on the host (a one-off
     * `flynn run` without --enable-log, as in Flynn) */
    json_t *cfg = json_object_get(json_object_get(aj, "job"), "config");
    if (json_is_true(json_object_get(cfg, "disable_log")))
        return;
    struct sjob *j = xcalloc(1, sizeof(*j));
    j->id = xstrdup(id);
    j->dir = xasprintf("%s/%s", s->jobs_dir, id);
    j->app = xstrdup(meta(md, "flynn-controller.app"));
    j->app_name = xstrdup(meta(md, "flynn-controller.app_name"));
    j->release = xstrdup(meta(md, "flynn-controller.release"));
    j->type = xstrdup(meta(md, "flynn-controller.type"));
    j->fd = -1;
    j->ended = json_integer_value(json_object_get(aj, "status")) >= 2;
    j->next = s->head;
    s->head = j;
}

static void drop_job(struct logship *s, struct sjob *j)
{
    struct sjob **pp = &s->head;
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp)
        *pp = j->next;
    if (s->rr == j)
        s->rr = j->next;
    sjob_free(j);
}

static int open_at(struct sjob *j, const char *name, off_t off)
{
    cleanup_free char *p = xasprintf("%s/%s", j->dir, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (j->fd >= 0)
        close(j->fd);
    j->fd = fd;
    j->ino = st.st_ino;
    j->off = off <= st.st_size ? off : st.st_size;
    return 0;
}

static ino_t ino_of(struct sjob *j, const char *name)
{
    cleanup_free char *p = xasprintf("%s/%s", j->dir, name);
    struct stat st;
    return stat(p, &st) == 0 ? st.st_ino : 0;
}

/* Opens the job's file at its saved position (log.ship), or at the start
 * of the oldest file when there is none. */
static int resume(struct sjob *j)
{
    cleanup_free char *sp = xasprintf("%s/log.ship", j->dir);
    cleanup_free char *txt = fs_read_file(sp, NULL, NULL);
    unsigned long long ino = 0, off = 0, seq = 0;
    if (txt && sscanf(txt, "%llu %llu %llu", &ino, &off, &seq) == 3) {
        j->seq = seq;
        if (ino_of(j, "log") == (ino_t)ino)
            return open_at(j, "log", (off_t)off);
        if (ino_of(j, "log.1") == (ino_t)ino)
            return open_at(j, "log.1", (off_t)off);
        log_warn("job %s: its log rotated past the shipped position while the daemon was away; "
                 "some lines were not shipped",
                 j->id);
    }
    if (open_at(j, "log.1", 0) == 0)
        return 0;
    return open_at(j, "log", 0);
}

static void save(struct sjob *j)
{
    char buf[96];
    int n = snprintf(buf, sizeof(buf), "%llu %llu %llu\n", (unsigned long long)j->ino,
                     (unsigned long long)j->off, (unsigned long long)j->seq);
    cleanup_free char *sp = xasprintf("%s/log.ship", j->dir);
    struct err *e = NULL;
    if (fs_write_file(sp, buf, (size_t)n, 0644, 0, &e) < 0) {
        log_debug("%s", e->msg);
        err_free(e);
    }
}

/* Bytes ready to ship from j's current file, after following a rotation
 * (the shim renames log to log.1 and starts a new log). 0: nothing now;
 * -1: the job is finished and shipped (or its files are gone). */
static off_t ready(struct sjob *j)
{
    if (j->fd < 0 && resume(j) < 0) {
        /* not written yet, or pruned */
        if (!fs_exists(j->dir) || j->ended)
            return -1;
        return 0;
    }
    struct stat st;
    if (fstat(j->fd, &st) < 0)
        return -1;
    if (j->off < st.st_size)
        return st.st_size - j->off;
    ino_t cur = ino_of(j, "log");
    if (cur == j->ino || !cur) {
        if (cur || !fs_exists(j->dir))
            return j->ended || !cur ? -1 : 0;
        return 0;
    }
    /* rotated: the old file gets no more lines once renamed, but one may
     * have landed between our last read and the rename */
    if (fstat(j->fd, &st) == 0 && j->off < st.st_size)
        return st.st_size - j->off;
    ino_t one = ino_of(j, "log.1");
    if (one == j->ino) {
        open_at(j, "log", 0);
    } else {
        /* our file was rotated away twice: log.1 is the one after it */
        if (one)
            open_at(j, "log.1", 0);
        else
            open_at(j, "log", 0);
    }
    if (fstat(j->fd, &st) < 0)
        return -1;
    return st.st_size - j->off;
}

/* ---- shipping ---- */

static void schedule(struct logship *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

static void add_header(struct strbuf *sb, struct logship *s, struct sjob *j)
{
    json_t *h = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "job", j->id, "app", j->app, "app_name",
                          j->app_name, "release", j->release, "type", j->type, "host", s->host_id,
                          "seq", (json_int_t)j->seq);
    char *t = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    strbuf_adds(sb, t);
    strbuf_addch(sb, '\n');
    free(t);
}

/* Appends j's complete lines (up to room bytes, at least one line) to sb. */
static void take_lines(struct logship *s, struct sjob *j, off_t avail, struct strbuf *sb,
                       size_t room)
{
    size_t want = (size_t)avail < room ? (size_t)avail : room;
    struct strbuf data = STRBUF_INIT;
    strbuf_grow(&data, want);
    ssize_t n = pread(j->fd, data.buf, want, j->off);
    if (n <= 0) {
        strbuf_release(&data);
        return;
    }
    const char *last = memrchr(data.buf, '\n', (size_t)n);
    if (!last) {
        if (!sb->len && (size_t)n >= LINE_MAX_READ) { /* no line the shim wrote: skip it */
            log_warn("job %s: a log line over %u bytes; skipped", j->id, LINE_MAX_READ);
            j->off += n;
        }
        strbuf_release(&data);
        return;
    }
    size_t len = (size_t)(last - data.buf) + 1;
    uint64_t lines = 0;
    for (const char *p = data.buf; (p = memchr(p, '\n', (size_t)(last + 1 - p))); p++)
        lines++;
    add_header(sb, s, j);
    strbuf_add(sb, data.buf, len);
    strbuf_release(&data);
    j->in_batch = true;
    j->p_off = j->off + (off_t)len;
    j->p_lines = lines;
}

static void on_response(struct evhttp_request *req, void *arg);

static void ship(struct logship *s)
{
    if (!s->target || s->req)
        return;
    size_t n = 0;
    for (struct sjob *j = s->head; j; j = j->next)
        n++;
    struct sjob **v = xmalloc((n ? n : 1) * sizeof(*v));
    size_t start = 0, i = 0;
    for (struct sjob *j = s->head; j; j = j->next, i++) {
        v[i] = j;
        if (j == s->rr)
            start = i;
    }
    /* round robin from where the last full batch stopped, so a chatty job
     * does not keep the others waiting */
    struct strbuf body = STRBUF_INIT;
    s->rr = NULL;
    for (size_t k = 0; k < n; k++) {
        struct sjob *j = v[(start + k) % n];
        if (body.len >= BATCH_MAX) {
            s->rr = j;
            break;
        }
        off_t avail = ready(j);
        if (avail < 0) {
            drop_job(s, j);
            v[(start + k) % n] = NULL;
        } else if (avail > 0) {
            take_lines(s, j, avail, &body, BATCH_MAX - body.len);
        }
    }
    free(v);
    if (!body.len) {
        strbuf_release(&body);
        schedule(s, TICK_MS);
        return;
    }
    if (!s->conn) {
        s->conn = evhttp_connection_base_new(s->base, NULL, s->host, (ev_uint16_t)s->port);
        evhttp_connection_set_timeout(s->conn, REQUEST_TIMEOUT_SECS);
    }
    s->req = evhttp_request_new(on_response, s);
    struct evkeyvalq *h = evhttp_request_get_output_headers(s->req);
    evhttp_add_header(h, "Host", s->host);
    evhttp_add_header(h, "Content-Type", "application/x-ndjson");
    evbuffer_add(evhttp_request_get_output_buffer(s->req), body.buf, body.len);
    strbuf_release(&body);
    if (evhttp_make_request(s->conn, s->req, EVHTTP_REQ_POST, "/v1/ingest") < 0) {
        s->req = NULL; /* freed by evhttp on failure */
        for (struct sjob *k = s->head; k; k = k->next)
            k->in_batch = false;
        schedule(s, BACKOFF_MAX_MS);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    ship(arg);
}

static void failed(struct logship *s, const char *why)
{
    if (!s->failing || !s->last_error || strcmp(s->last_error, why))
        log_warn("log aggregator at %s: %s; lines stay in the jobs' log files until it is back",
                 s->target, why);
    free(s->last_error);
    s->last_error = xstrdup(why);
    s->failing = true;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    schedule(s, s->backoff_ms);
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct logship *s = arg;
    s->req = NULL;
    int st = req ? evhttp_request_get_response_code(req) : 0;
    if (st != 200) {
        for (struct sjob *j = s->head; j; j = j->next)
            j->in_batch = false;
        char why[64];
        if (st)
            snprintf(why, sizeof(why), "POST /v1/ingest: status %d", st);
        else
            snprintf(why, sizeof(why), "no answer");
        failed(s, why);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    json_t *o = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, 0, NULL);
    const char *inst = json_string_value(json_object_get(o, "instance"));
    if (inst && (!s->instance || strcmp(inst, s->instance))) {
        log_info("log aggregator at %s: instance %s", s->target, inst);
        free(s->instance);
        s->instance = xstrdup(inst);
    }
    json_decref(o);
    if (s->failing)
        log_info("log aggregator at %s: reachable again, shipping", s->target);
    s->failing = false;
    s->backoff_ms = 0;
    free(s->last_error);
    s->last_error = NULL;
    s->batches++;
    for (struct sjob *j = s->head; j; j = j->next) {
        if (!j->in_batch)
            continue;
        j->in_batch = false;
        j->off = j->p_off;
        j->seq += j->p_lines;
        s->lines_shipped += j->p_lines;
        save(j);
    }
    /* more may be waiting: look again now rather than after a tick */
    ship(s);
}

/* ---- job events ---- */

static void on_job_event(json_t *ev, void *arg)
{
    struct logship *s = arg;
    const char *what = json_string_value(json_object_get(ev, "event"));
    json_t *aj = json_object_get(ev, "job");
    if (!what || !aj)
        return;
    if (!strcmp(what, "create")) {
        add_job(s, aj);
    } else if (!strcmp(what, "stop") || !strcmp(what, "error")) {
        struct sjob *j = find(s, json_string_value(json_object_get(ev, "job_id")));
        if (j && !s->target && !j->in_batch)
            drop_job(s, j); /* nowhere to ship: a later target lists the jobs again */
        else if (j)
            j->ended = true;
    }
}

struct logship *logship_new(struct event_base *base, struct jobs *jobs, const char *run_dir,
                            const char *state_dir, const char *host_id)
{
    struct logship *s = xcalloc(1, sizeof(*s));
    s->base = base;
    s->jobs = jobs;
    s->jobs_dir = xasprintf("%s/jobs", run_dir);
    s->conf_path = xasprintf("%s/log-aggregator", state_dir);
    s->host_id = xstrdup(host_id);
    s->timer = evtimer_new(base, on_tick, s);
    jobs_subscribe(jobs, on_job_event, s);
    return s;
}

static void drop_conn(struct logship *s)
{
    if (s->conn)
        evhttp_connection_free(s->conn); /* a request in flight goes too, without callback */
    s->conn = NULL;
    s->req = NULL;
    for (struct sjob *j = s->head; j; j = j->next)
        j->in_batch = false;
}

int logship_set_target(struct logship *s, const char *addr, bool remember, struct err **err)
{
    char *host = NULL;
    int port = 0;
    if (addr && *addr) {
        const char *a = !strncmp(addr, "http://", 7) ? addr + 7 : addr;
        size_t al = strcspn(a, "/");
        cleanup_free char *hp = xstrndup(a, al);
        char *colon = strrchr(hp, ':');
        char *end = NULL;
        long p = colon ? strtol(colon + 1, &end, 10) : 0;
        bool other_scheme = a == addr && strstr(addr, "://");
        if (!colon || colon == hp || *end || p <= 0 || p > 65535 || other_scheme)
            return err_makex(err, EINVAL,
                             "log aggregator '%s' is not HOST:PORT or http://HOST:PORT", addr);
        *colon = '\0';
        host = xstrdup(hp);
        port = (int)p;
    }
    if (remember) {
        const char *v = addr ? addr : "";
        if (fs_write_file(s->conf_path, v, strlen(v), 0644, 1, err) < 0) {
            free(host);
            return -1;
        }
    }
    drop_conn(s);
    free(s->target);
    free(s->host);
    s->target = host ? xstrdup(addr) : NULL;
    s->host = host;
    s->port = port;
    s->failing = false;
    s->backoff_ms = 0;
    evtimer_del(s->timer);
    if (s->target) {
        /* every job the host has, including finished ones not shipped yet */
        json_t *all = jobs_list(s->jobs, 0);
        const char *id;
        json_t *aj;
        json_object_foreach(all, id, aj)
        {
            add_job(s, aj);
        }
        json_decref(all);
        log_info("shipping job logs to the log aggregator at %s", s->target);
        schedule(s, 0);
    } else {
        log_info("not shipping job logs");
    }
    return 0;
}

int logship_start(struct logship *s, const char *flag, struct err **err)
{
    if (flag)
        return logship_set_target(s, flag, false, err);
    cleanup_free char *saved = fs_read_file(s->conf_path, NULL, NULL);
    if (!saved)
        return 0;
    saved[strcspn(saved, "\r\n")] = '\0';
    if (logship_set_target(s, saved, false, err) < 0)
        return err_wrap(err, "'%s'", s->conf_path);
    return 0;
}

const char *logship_target(const struct logship *s)
{
    return s->target ? s->target : "";
}

json_t *logship_status(const struct logship *s)
{
    int n = 0;
    for (struct sjob *j = s->head; j; j = j->next)
        n++;
    return json_pack("{s:s,s:b,s:i,s:I,s:I,s:s?}", "target", logship_target(s), "connected",
                     s->target && !s->failing && s->batches > 0, "jobs", n, "lines_shipped",
                     (json_int_t)s->lines_shipped, "batches", (json_int_t)s->batches, "last_error",
                     s->last_error);
}

void logship_free(struct logship *s)
{
    if (!s)
        return;
    jobs_unsubscribe(s->jobs, on_job_event, s);
    drop_conn(s);
    event_free(s->timer);
    while (s->head) {
        struct sjob *j = s->head;
        s->head = j->next;
        sjob_free(j);
    }
    free(s->jobs_dir);
    free(s->conf_path);
    free(s->host_id);
    free(s->target);
    free(s->host);
    free(s->last_error);
    free(s->instance);
    free(s);
}
