/* The aggregator's HTTP API: ingest from hosts, history and follow for
 * readers (the controller's GET /apps/:app/log), status. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "ingest.h"
#include "log.h"
#include "logagg.h"
#include "render.h"
#include "strbuf.h"
#include "xalloc.h"

/* Output a follower may have queued before its lines are dropped (and
 * counted, and announced once it catches up). */
#define FOLLOW_MAX_PENDING (8u << 20)
#define INGEST_MAX_BODY (64u << 20)

struct follower {
    struct logagg *ag;
    struct logapp *app;
    struct httpd_stream *s;
    char *job_id, *type; /* NULL: any */
    unsigned streams;    /* 1 << enum log_stream */
    bool sse;
    bool dirty;
    uint64_t dropped; /* lines not sent since the last notice */
    struct strbuf pend;
    struct follower *next, *prev; /* the app's watchers */
    struct follower *dnext;       /* ag->dirty */
};

struct filter {
    const char *job_id, *type; /* NULL: any */
    unsigned streams;
};

static bool matches(const struct filter *f, const struct logline *l)
{
    return (f->streams & (1u << l->stream)) && (!f->job_id || !strcmp(f->job_id, l->job->id)) &&
           (!f->type || !strcmp(f->type, l->job->type));
}

/* "stdout,stderr" -> bits; unknown names are ignored. */
static unsigned parse_streams(const char *s)
{
    if (!s || !*s)
        return (1u << LOG_STDOUT) | (1u << LOG_STDERR);
    unsigned bits = 0;
    cleanup_free char *copy = xstrdup(s);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "stdout"))
            bits |= 1u << LOG_STDOUT;
        else if (!strcmp(t, "stderr"))
            bits |= 1u << LOG_STDERR;
        else if (!strcmp(t, "init"))
            bits |= 1u << LOG_INIT;
    }
    return bits;
}

/* ---- followers ---- */

static void follower_unlink(struct follower *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        f->app->watchers = f->next;
    if (f->next)
        f->next->prev = f->prev;
    if (f->dirty) {
        struct follower **pp = &f->ag->dirty;
        while (*pp && *pp != f)
            pp = &(*pp)->dnext;
        if (*pp)
            *pp = f->dnext;
    }
    f->ag->followers--;
}

static void follower_free(struct follower *f)
{
    strbuf_release(&f->pend);
    free(f->job_id);
    free(f->type);
    free(f);
}

static void on_follower_closed(struct httpd_stream *s, void *arg)
{
    struct follower *f = arg;
    follower_unlink(f);
    follower_free(f);
}

/* A new line of f's app. */
static void follower_line(struct follower *f, const struct logline *l)
{
    struct filter flt = {f->job_id, f->type, f->streams};
    if (!matches(&flt, l))
        return;
    if (httpd_stream_pending(f->s) + f->pend.len > FOLLOW_MAX_PENDING) {
        if (!f->dropped)
            log_warn("a follower of app %s is too slow: dropping its lines until it catches up",
                     f->app->id);
        f->dropped++;
        return;
    }
    if (f->dropped) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%llu lines dropped: this reader fell behind",
                 (unsigned long long)f->dropped);
        render_notice(&f->pend, f->app->id, msg, f->sse);
        f->dropped = 0;
    }
    render_message(&f->pend, l, f->sse);
    if (!f->dirty) {
        f->dirty = true;
        f->dnext = f->ag->dirty;
        f->ag->dirty = f;
    }
}

static void on_line(struct logline *l, void *arg)
{
    for (struct follower *f = l->job->app->watchers; f; f = f->next)
        follower_line(f, l);
}

static void flush_followers(struct logagg *ag)
{
    while (ag->dirty) {
        struct follower *f = ag->dirty;
        ag->dirty = f->dnext;
        f->dirty = false;
        if (f->pend.len)
            httpd_stream_write(f->s, f->pend.buf, f->pend.len);
        strbuf_reset(&f->pend);
        /* a big burst leaves a big buffer: give it back */
        if (f->pend.alloc > (1u << 20)) {
            strbuf_release(&f->pend);
            strbuf_init(&f->pend, 0);
        }
    }
}

/* ---- handlers ---- */

static void h_ingest(struct httpd_req *r, void *arg)
{
    struct logagg *ag = arg;
    size_t len;
    const char *body = httpd_body(r, &len);
    struct ingest_result res;
    struct err *e = NULL;
    struct ingest_cbs cbs = {.on_line = on_line, .arg = ag};
    if (ingest_batch(ag->buf, body, len, &cbs, &res, &e) < 0) {
        flush_followers(ag);
        httpd_reply_err(r, e);
        return;
    }
    ag->batches++;
    ag->malformed += res.malformed;
    flush_followers(ag);
    if (ag->sinks)
        sinks_kick(ag->sinks);
    httpd_reply_json(r, 200,
                     json_pack("{s:s,s:I,s:I,s:I}", "instance", ag->instance, "lines",
                               (json_int_t)res.lines, "duplicates", (json_int_t)res.duplicates,
                               "malformed", (json_int_t)res.malformed));
}

/* GET /log/:app?lines=N&follow=true&job_id=&process_type=&stream_types= */
static void h_log(struct httpd_req *r, void *arg)
{
    struct logagg *ag = arg;
    const char *app_id = httpd_param(r, "app");
    const char *ls = httpd_query(r, "lines");
    char *end = NULL;
    long lines = ls && *ls ? strtol(ls, &end, 10) : 0;
    if ((ls && *ls && *end) || lines < 0) {
        httpd_reply_error(r, 400, "validation_error", "lines must be a non-negative integer");
        return;
    }
    const char *fq = httpd_query(r, "follow");
    bool follow = fq && !strcmp(fq, "true");
    const char *jq = httpd_query(r, "job_id"), *tq = httpd_query(r, "process_type");
    struct filter flt = {jq && *jq ? jq : NULL, tq && *tq ? tq : NULL,
                         parse_streams(httpd_query(r, "stream_types"))};
    const char *accept = httpd_header(r, "Accept");
    bool sse = accept && strstr(accept, "text/event-stream");
    struct logapp *app = logbuf_app(ag->buf, app_id, follow);

    /* history: the last `lines` matching lines (all when 0), unless following
     * without `lines`, which means new lines only */
    struct strbuf out = STRBUF_INIT;
    if (app && (!follow || (ls && *ls && lines > 0))) {
        size_t n = logapp_count(app), from = n, found = 0;
        while (from > 0 && (lines == 0 || found < (size_t)lines)) {
            if (matches(&flt, logapp_line(app, from - 1)))
                found++;
            from--;
        }
        strbuf_grow(&out, found * 200);
        for (size_t i = from; i < n; i++) {
            const struct logline *l = logapp_line(app, i);
            if (matches(&flt, l))
                render_message(&out, l, sse);
        }
    }
    const char *ctype = sse ? "text/event-stream; charset=utf-8" : "text/plain; charset=utf-8";
    if (!follow) {
        if (sse)
            strbuf_adds(&out, "data: {\"event\":\"eof\"}\n\n");
        httpd_reply_text(r, 200, ctype, out.buf, out.len);
        strbuf_release(&out);
        return;
    }
    struct follower *f = xcalloc(1, sizeof(*f));
    f->ag = ag;
    f->app = app;
    f->job_id = flt.job_id ? xstrdup(flt.job_id) : NULL;
    f->type = flt.type ? xstrdup(flt.type) : NULL;
    f->streams = flt.streams;
    f->sse = sse;
    strbuf_init(&f->pend, 0);
    f->s = httpd_stream_start(r, ctype, on_follower_closed, f);
    if (out.len)
        httpd_stream_write(f->s, out.buf, out.len);
    strbuf_release(&out);
    f->next = app->watchers;
    if (f->next)
        f->next->prev = f;
    app->watchers = f;
    ag->followers++;
}

static void app_stats(struct logapp *a, void *arg)
{
    json_object_set_new(arg, a->id,
                        json_pack("{s:I,s:I,s:I,s:I}", "lines", (json_int_t)logapp_count(a),
                                  "bytes", (json_int_t)a->bytes, "received",
                                  (json_int_t)a->received, "evicted", (json_int_t)a->evicted));
}

static void h_status(struct httpd_req *r, void *arg)
{
    struct logagg *ag = arg;
    struct logbuf_stats st;
    logbuf_stats(ag->buf, &st);
    const struct logbuf_limits *lim = logbuf_limits(ag->buf);
    json_t *apps = json_object();
    logbuf_apps(ag->buf, app_stats, apps);
    json_t *o = json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I},s:o}", "instance",
        ag->instance, "lines", (json_int_t)st.lines, "bytes", (json_int_t)st.bytes, "apps",
        (json_int_t)st.apps, "jobs", (json_int_t)st.jobs, "received", (json_int_t)st.received,
        "evicted", (json_int_t)st.evicted, "duplicates", (json_int_t)st.duplicates, "malformed",
        (json_int_t)ag->malformed, "batches", (json_int_t)ag->batches, "followers",
        (json_int_t)ag->followers, "limits", "app_lines", (json_int_t)lim->app_lines, "app_bytes",
        (json_int_t)lim->app_bytes, "total_bytes", (json_int_t)lim->total_bytes, "per_app", apps);
    json_object_set_new(o, "sinks", ag->sinks ? sinks_status(ag->sinks) : json_array());
    httpd_reply_json(r, 200, o);
}

static void h_ping(struct httpd_req *r, void *arg)
{
    httpd_reply_empty(r, 200);
}

static const struct httpd_route routes[] = {
    {"POST", "/v1/ingest", h_ingest},
    {"GET", "/log/:app", h_log},
    {"GET", "/status", h_status},
    {"GET", "/ping", h_ping},
};

int server_start(struct logagg *ag, const char *listen, struct err **err)
{
    struct httpd_opts o = {.max_body = INGEST_MAX_BODY, .timeout_secs = 120};
    ag->http = httpd_new(ag->base, routes, ARRAY_SIZE(routes), &o, ag);
    return httpd_listen(ag->http, listen, err);
}

void server_free(struct logagg *ag)
{
    httpd_free(ag->http);
    ag->http = NULL;
}
