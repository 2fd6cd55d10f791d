/* GET /apps/:app/log (flynn-api.md §6). With --log-aggregator, the log
 * aggregator answers (from_aggregator, below). Without: the history of the
 * app's jobs, fetched from their hosts (GET /host/jobs/ID/log?format=json) in parallel
 * and merged by time into Flynn's NDJSON lines. With follow=true the answer
 * is a stream: the history when `lines` is given, then the new lines of every
 * running job of the app (GET ...&follow=true&lines=0 on a connection of its
 * own per job), including jobs that start later (looked for every second). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "ids.h"
#include "log.h"
#include "scheduler.h"
#include "store.h"
#include "strbuf.h"
#include "xalloc.h"

#define MAX_LINES 10000

struct logtail;

struct logfetch {
    struct httpd_req *r;
    struct logtail *tail; /* follow=true: where the history goes */
    bool gone;            /* follow=true and the client left meanwhile */
    bool sse;             /* Accept: text/event-stream: SSELogChunk framing */
    int pending;
    long lines;       /* 0: all */
    char *streams;    /* ",stdout,stderr," */
    json_t *out;      /* [line] */
    bool failed;
};

struct logpart {
    struct logfetch *lf;
    char *job_id, *host_id, *type;
};

static int cmp_line(const void *a, const void *b)
{
    double x = time_parse_rfc3339(jstr(*(json_t *const *)a, "timestamp"));
    double y = time_parse_rfc3339(jstr(*(json_t *const *)b, "timestamp"));
    return x < y ? -1 : x > y;
}

/* Flynn's log line from a host line {"time","stream","msg"}; NULL when the
 * line is malformed or its stream is not wanted. */
static json_t *convert(const char *data, size_t len, const char *streams, const char *host_id,
                       const char *job_id, const char *type)
{
    json_t *l = json_loadb(data, len, 0, NULL);
    const char *stream = jstr(l, "stream");
    char key[32];
    snprintf(key, sizeof(key), ",%s,", stream ? stream : "");
    json_t *o = NULL;
    /* the host's line saying why the job ended ("system") has source "host" */
    const char *source = json_is_true(json_object_get(l, "system")) ? "host" : "app";
    if (l && stream && strstr(streams, key))
        o = json_pack("{s:s,s:s,s:O,s:s,s:s,s:O}", "host_id", host_id, "job_id", job_id, "msg",
                      json_object_get(l, "msg"), "source", source, "stream", stream, "timestamp",
                      json_object_get(l, "time"));
    if (o && *type)
        json_object_set_new(o, "process_type", json_string(type));
    json_decref(l);
    return o;
}

/* ---------- follow ---------- */

struct follow {
    struct follow *next;
    struct logtail *t;
    char *job_id, *host_id, *type;
    struct evhttp_connection *conn; /* NULL once the job's stream ended and was reaped */
    struct strbuf buf;
    bool done;
};

struct logtail {
    struct controller *c;
    struct httpd_stream *out;
    char *app_id, *want_job, *want_type, *streams;
    struct follow *follows;
    struct event *tick;
    struct logfetch *lf; /* the history fetch, while it runs */
    bool sse;
};

/* One output line: NDJSON, or an SSE SSELogChunk {"event":"message","data":L}. */
static void frame_line(struct strbuf *sb, const json_t *o, bool sse)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (sse)
        strbuf_addf(sb, "data: {\"event\":\"message\",\"data\":%s}\n\n", s);
    else
        strbuf_addf(sb, "%s\n", s);
    free(s);
}

static void write_line(struct logtail *t, json_t *o)
{
    struct strbuf sb = STRBUF_INIT;
    frame_line(&sb, o, t->sse);
    httpd_stream_write(t->out, sb.buf, sb.len);
    strbuf_release(&sb);
}

static void follow_chunk(struct evhttp_request *req, void *arg)
{
    struct follow *f = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    strbuf_grow(&f->buf, n);
    evbuffer_remove(in, f->buf.buf + f->buf.len, n);
    f->buf.len += n;
    f->buf.buf[f->buf.len] = '\0';
    char *nl;
    while ((nl = strchr(f->buf.buf, '\n'))) {
        json_t *o = convert(f->buf.buf, (size_t)(nl - f->buf.buf), f->t->streams, f->host_id,
                            f->job_id, f->type);
        if (o)
            write_line(f->t, o);
        json_decref(o);
        strbuf_remove_prefix(&f->buf, (size_t)(nl - f->buf.buf) + 1);
    }
}

static void follow_done(struct evhttp_request *req, void *arg)
{
    struct follow *f = arg;
    f->done = true; /* the connection is freed from the tick, not from here */
}

static void follow_start(struct logtail *t, const char *job_id, const char *host_id,
                         const char *type)
{
    struct follow *f = xcalloc(1, sizeof(*f));
    f->t = t;
    f->job_id = xstrdup(job_id);
    f->host_id = xstrdup(host_id);
    f->type = xstrdup(type);
    strbuf_init(&f->buf, 0);
    f->next = t->follows;
    t->follows = f;
    const char *addr;
    int port;
    if (scheduler_host_addr(t->c->sched, host_id, &addr, &port) < 0) {
        f->done = true;
        return;
    }
    f->conn = evhttp_connection_base_new(t->c->base, NULL, addr, (ev_uint16_t)port);
    evhttp_connection_set_timeout(f->conn, 365 * 86400);
    struct evhttp_request *req = evhttp_request_new(follow_done, f);
    evhttp_request_set_chunked_cb(req, follow_chunk);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", addr);
    cleanup_free char *path = xasprintf("/host/jobs/%s/log?format=json&follow=true&lines=0", job_id);
    if (evhttp_make_request(f->conn, req, EVHTTP_REQ_GET, path) < 0)
        f->done = true;
}

static bool wanted(struct logtail *t, const json_t *j)
{
    const char *id = jstr(j, "id"), *host = jstr(j, "host_id"), *st = jstr(j, "state");
    const char *type = jstr(j, "type") ? jstr(j, "type") : "";
    return id && host && st && (!strcmp(st, "starting") || !strcmp(st, "up")) &&
           (!t->want_job || !strcmp(t->want_job, id)) &&
           (!t->want_type || !strcmp(t->want_type, type));
}

static void tail_tick(evutil_socket_t fd, short what, void *arg)
{
    struct logtail *t = arg;
    for (struct follow *f = t->follows; f; f = f->next) {
        if (f->done && f->conn) {
            evhttp_connection_free(f->conn);
            f->conn = NULL;
        }
    }
    json_t *jobs = store_list(t->c->store, STORE_JOB, t->app_id, NULL, NULL);
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        if (!wanted(t, j))
            continue;
        bool known = false;
        for (struct follow *f = t->follows; f && !known; f = f->next)
            known = !strcmp(f->job_id, jstr(j, "id"));
        if (!known)
            follow_start(t, jstr(j, "id"), jstr(j, "host_id"),
                         jstr(j, "type") ? jstr(j, "type") : "");
    }
    json_decref(jobs);
}

static void tail_closed(struct httpd_stream *s, void *arg)
{
    struct logtail *t = arg;
    while (t->follows) {
        struct follow *f = t->follows;
        t->follows = f->next;
        if (f->conn)
            evhttp_connection_free(f->conn); /* its request goes too, without callbacks */
        strbuf_release(&f->buf);
        free(f->job_id);
        free(f->host_id);
        free(f->type);
        free(f);
    }
    if (t->lf) { /* history still on its way: let it free itself */
        t->lf->gone = true;
        t->lf->tail = NULL;
    }
    if (t->tick)
        event_free(t->tick);
    free(t->app_id);
    free(t->want_job);
    free(t->want_type);
    free(t->streams);
    free(t);
}

static void tail_begin(struct logtail *t)
{
    t->tick = event_new(t->c->base, -1, EV_PERSIST, tail_tick, t);
    struct timeval tv = {1, 0};
    event_add(t->tick, &tv);
    tail_tick(-1, 0, t);
}

static void finish(struct logfetch *lf)
{
    if (lf->gone) {
        json_decref(lf->out);
        free(lf->streams);
        free(lf);
        return;
    }
    if (lf->tail) {
        lf->tail->lf = NULL;
        /* follow: the sorted history goes first, then the live tail */
        size_t n = json_array_size(lf->out);
        json_t **v = xcalloc(n ? n : 1, sizeof(*v));
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(lf->out, i);
        qsort(v, n, sizeof(*v), cmp_line);
        size_t from = lf->lines > 0 && (size_t)lf->lines < n ? n - (size_t)lf->lines : 0;
        for (size_t i = from; i < n && !lf->failed; i++)
            write_line(lf->tail, v[i]);
        free(v);
        if (!lf->failed)
            tail_begin(lf->tail);
        json_decref(lf->out);
        free(lf->streams);
        free(lf);
        return;
    }
    if (lf->failed) {
        api_error(lf->r, 503, "service_unavailable", NULL, "the controller is shutting down");
    } else {
        size_t n = json_array_size(lf->out);
        json_t **v = xcalloc(n ? n : 1, sizeof(*v));
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(lf->out, i);
        qsort(v, n, sizeof(*v), cmp_line);
        size_t from = lf->lines > 0 && (size_t)lf->lines < n ? n - (size_t)lf->lines : 0;
        struct strbuf sb = STRBUF_INIT;
        for (size_t i = from; i < n; i++)
            frame_line(&sb, v[i], lf->sse);
        if (lf->sse)
            strbuf_adds(&sb, "data: {\"event\":\"eof\"}\n\n");
        free(v);
        httpd_reply_text(lf->r, 200, lf->sse ? "text/event-stream; charset=utf-8" : "text/plain",
                         sb.buf, sb.len);
        strbuf_release(&sb);
    }
    json_decref(lf->out);
    free(lf->streams);
    free(lf);
}

static void on_log(int status, const char *data, size_t len, void *arg)
{
    struct logpart *p = arg;
    struct logfetch *lf = p->lf;
    if (status < 0)
        lf->failed = true;
    for (size_t off = 0; status == 200 && off < len;) {
        const char *nl = memchr(data + off, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - (data + off)) : len - off;
        json_t *o = convert(data + off, ll, lf->streams, p->host_id, p->job_id, p->type);
        off += ll + 1;
        if (o)
            json_array_append_new(lf->out, o);
    }
    free(p->job_id);
    free(p->host_id);
    free(p->type);
    free(p);
    if (--lf->pending == 0)
        finish(lf);
}

/* The history (and with follow=true the live lines) of the app's jobs,
 * read from their hosts. */
static void from_hosts(struct httpd_req *r, struct controller *c, const char *app_id, long lines)
{
    const char *ls = httpd_query(r, "lines");
    const char *st = httpd_query(r, "stream_types");
    const char *want_job = httpd_query(r, "job_id");
    const char *want_type = httpd_query(r, "process_type");
    struct err *e = NULL;
    json_t *jobs = store_list(c->store, STORE_JOB, app_id, NULL, &e);
    if (!jobs)
        return api_reply_err(r, e, NULL);
    struct logfetch *lf = xcalloc(1, sizeof(*lf));
    lf->r = r;
    lf->lines = lines;
    lf->streams = xasprintf(",%s,", st && *st ? st : "stdout,stderr");
    lf->out = json_array();
    lf->pending = 1; /* held until every request is sent */
    const char *accept = httpd_header(r, "Accept");
    lf->sse = accept && strstr(accept, "text/event-stream");
    const char *follow = httpd_query(r, "follow");
    if (follow && !strcmp(follow, "true")) {
        struct logtail *t = xcalloc(1, sizeof(*t));
        t->c = c;
        t->app_id = xstrdup(app_id);
        t->want_job = want_job && *want_job ? xstrdup(want_job) : NULL;
        t->want_type = want_type && *want_type ? xstrdup(want_type) : NULL;
        t->streams = xstrdup(lf->streams);
        t->sse = lf->sse;
        lf->tail = t;
        t->lf = lf;
        t->out = httpd_stream_start(r, t->sse ? "text/event-stream; charset=utf-8" : "text/plain",
                                    tail_closed, t);
        if (!ls || !*ls) {
            /* following without `lines`: new lines only */
            json_decref(jobs);
            jobs = json_array();
        }
    }
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        const char *id = jstr(j, "id"), *host = jstr(j, "host_id");
        const char *type = jstr(j, "type") ? jstr(j, "type") : "";
        if (!id || !host || (want_job && *want_job && strcmp(want_job, id)) ||
            (want_type && *want_type && strcmp(want_type, type)))
            continue;
        struct logpart *p = xcalloc(1, sizeof(*p));
        p->lf = lf;
        p->job_id = xstrdup(id);
        p->host_id = xstrdup(host);
        p->type = xstrdup(type);
        cleanup_free char *path = xasprintf("/host/jobs/%s/log?format=json", id);
        lf->pending++;
        struct err *he = NULL;
        if (scheduler_host_get(c->sched, host, path, on_log, p, &he) < 0) {
            err_free(he);
            lf->pending--;
            free(p->job_id);
            free(p->host_id);
            free(p->type);
            free(p);
        }
    }
    json_decref(jobs);
    if (--lf->pending == 0)
        finish(lf);
}

/* ---------- from the log aggregator ---------- */

/* GET /apps/:app/log is GET AGGREGATOR/log/APPID with the same query and
 * Accept: the aggregator answers in Flynn's shapes (NDJSON or SSE), and its
 * answer is passed through as it arrives. While the client reads slower
 * than the aggregator writes, reading from the aggregator pauses. When the
 * aggregator cannot be reached (it is restarting), the hosts answer. */

#define PROXY_HIGH (4u << 20)
#define PROXY_LOW (1u << 20)

struct logproxy {
    struct controller *c;
    struct httpd_req *r;      /* until answered */
    struct httpd_stream *out; /* once the aggregator said 200 */
    struct evhttp_connection *conn;
    struct event *resume; /* flow control, and the deferred free */
    char app_id[37];
    long lines;
    int status;
    bool paused, finished;
    struct logproxy *next, *prev;
};

static void proxy_unlink(struct logproxy *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->c->logproxies = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void proxy_free(struct logproxy *p)
{
    proxy_unlink(p);
    if (p->conn)
        evhttp_connection_free(p->conn); /* a request still in flight goes too, silently */
    event_free(p->resume);
    free(p);
}

static void proxy_tick(evutil_socket_t fd, short what, void *arg)
{
    struct logproxy *p = arg;
    if (p->finished) { /* deferred: the connection cannot be freed in its own callback */
        proxy_free(p);
        return;
    }
    if (p->paused && httpd_stream_pending(p->out) < PROXY_LOW) {
        p->paused = false;
        bufferevent_enable(evhttp_connection_get_bufferevent(p->conn), EV_READ);
        return;
    }
    struct timeval tv = {0, 20000};
    event_add(p->resume, &tv);
}

static void proxy_finish(struct logproxy *p)
{
    p->finished = true;
    event_del(p->resume);
    struct timeval tv = {0, 0};
    event_add(p->resume, &tv);
}

static void proxy_out_closed(struct httpd_stream *s, void *arg)
{
    struct logproxy *p = arg;
    p->out = NULL;
    if (!p->finished)
        proxy_free(p);
}

static int proxy_headers(struct evhttp_request *req, void *arg)
{
    struct logproxy *p = arg;
    p->status = evhttp_request_get_response_code(req);
    if (p->status != 200)
        return 0;
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    p->out = httpd_stream_start(p->r, ct ? ct : "text/plain", proxy_out_closed, p);
    p->r = NULL;
    return 0;
}

static void proxy_chunk(struct evhttp_request *req, void *arg)
{
    struct logproxy *p = arg;
    if (!p->out)
        return; /* an error body: kept in the input buffer for proxy_done */
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n) {
        httpd_stream_write(p->out, evbuffer_pullup(in, (ev_ssize_t)n), n);
        evbuffer_drain(in, n);
    }
    if (!p->paused && httpd_stream_pending(p->out) > PROXY_HIGH) {
        p->paused = true;
        bufferevent_disable(evhttp_connection_get_bufferevent(p->conn), EV_READ);
        struct timeval tv = {0, 20000};
        event_add(p->resume, &tv);
    }
}

static void proxy_done(struct evhttp_request *req, void *arg)
{
    struct logproxy *p = arg;
    if (p->out) { /* the aggregator ended the stream (or went away): so do we */
        httpd_stream_end(p->out);
        p->out = NULL;
    } else if (p->r && (!req || !p->status)) {
        log_warn("log aggregator unreachable: reading app %s's log from the hosts", p->app_id);
        from_hosts(p->r, p->c, p->app_id, p->lines);
        p->r = NULL;
    } else if (p->r) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
        httpd_reply_text(p->r, p->status, ct, (const char *)evbuffer_pullup(in, (ev_ssize_t)n), n);
        p->r = NULL;
    }
    proxy_finish(p);
}

static void from_aggregator(struct httpd_req *r, struct controller *c, const char *app_id,
                            long lines)
{
    struct logproxy *p = xcalloc(1, sizeof(*p));
    p->c = c;
    p->r = r;
    p->lines = lines;
    snprintf(p->app_id, sizeof(p->app_id), "%s", app_id);
    p->resume = evtimer_new(c->base, proxy_tick, p);
    p->next = c->logproxies;
    if (p->next)
        p->next->prev = p;
    c->logproxies = p;
    const char *follow = httpd_query(r, "follow");
    p->conn = evhttp_connection_base_new(c->base, NULL, c->logagg_host, (ev_uint16_t)c->logagg_port);
    evhttp_connection_set_timeout(p->conn, follow && !strcmp(follow, "true") ? 365 * 86400 : 60);
    struct evhttp_request *req = evhttp_request_new(proxy_done, p);
    evhttp_request_set_header_cb(req, proxy_headers);
    evhttp_request_set_chunked_cb(req, proxy_chunk);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", c->logagg_host);
    const char *accept = httpd_header(r, "Accept");
    if (accept)
        evhttp_add_header(h, "Accept", accept);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(httpd_evreq(r));
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    cleanup_free char *path = xasprintf("/log/%s%s%s", app_id, q && *q ? "?" : "", q ? q : "");
    if (evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, path) < 0) {
        from_hosts(r, c, app_id, lines);
        p->r = NULL;
        proxy_finish(p);
    }
}

void api_app_log(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    const char *ls = httpd_query(r, "lines");
    char *end = NULL;
    long lines = ls && *ls ? strtol(ls, &end, 10) : 0;
    if ((ls && *ls && *end) || lines < 0 || lines > MAX_LINES) {
        json_decref(app);
        return api_error(r, 400, "validation_error", "lines", "lines must be 0-%d", MAX_LINES);
    }
    char app_id[37];
    snprintf(app_id, sizeof(app_id), "%s", jstr(app, "id"));
    json_decref(app);
    if (c->logagg_host)
        from_aggregator(r, c, app_id, lines);
    else
        from_hosts(r, c, app_id, lines);
}

void api_logs_free(struct controller *c)
{
    while (c->logproxies) {
        struct logproxy *p = c->logproxies;
        if (p->out)
            httpd_stream_end(p->out);
        else if (p->r)
            api_error(p->r, 503, "service_unavailable", NULL, "the controller is shutting down");
        proxy_free(p);
    }
}
