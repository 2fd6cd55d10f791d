/*
 * The routers' feed: GET /router/table (see api.h). The table is every route
 * plus, per route, the addresses of the jobs of its service that are up.
 * api_router_changed() is called after every commit and job state change; it
 * rebuilds the table a moment later (coalesced) and only when the text
 * differs does the generation move and the waiting routers get an answer.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "controller.h"
#include "httpd.h"
#include "log.h"
#include "scheduler.h"
#include "store.h"
#include "xalloc.h"

#define WAIT_MAX_MS 25000
#define COALESCE_MS 10

struct waiter {
    struct waiter *next, **pprev;
    struct httpd_stream *stream;
    struct event *timeout;
    struct router_feed *f;
};

struct router_feed {
    struct controller *c;
    unsigned long gen;
    char *text; /* the current table, without the generation */
    struct event *rebuild;
    struct waiter *waiters;
};

static const char *const route_fields[] = {"type",   "id",   "domain", "path", "service",
                                           "sticky", "port", "leader", "drain_backends",
                                           "disable_keep_alives"};

/* The table as JSON text: routes sorted by the store, each with backends. */
static char *build(struct router_feed *f)
{
    struct controller *c = f->c;
    struct err *e = NULL;
    json_t *routes = store_list(c->store, STORE_ROUTE, NULL, NULL, &e);
    if (!routes) {
        log_error("router feed: %s", e->msg);
        err_free(e);
        return NULL;
    }
    json_t *backends = scheduler_service_backends(c->sched);
    if (c->self_addr)
        json_object_set_new(backends, "controller", json_pack("[s]", c->self_addr));
    json_t *out = json_array();
    size_t i;
    json_t *rt;
    json_array_foreach(routes, i, rt)
    {
        json_t *o = json_object();
        for (size_t k = 0; k < ARRAY_SIZE(route_fields); k++) {
            json_t *v = json_object_get(rt, route_fields[k]);
            if (v && !json_is_null(v))
                json_object_set(o, route_fields[k], v);
        }
        json_t *cert = json_object_get(rt, "certificate");
        if (jstr(cert, "cert") && jstr(cert, "key") && *jstr(cert, "cert"))
            json_object_set_new(o, "certificate", json_pack("{s:s,s:s}", "cert", jstr(cert, "cert"),
                                                            "key", jstr(cert, "key")));
        json_t *b = json_object_get(backends, jstr(rt, "service") ? jstr(rt, "service") : "");
        json_object_set_new(o, "backends", b ? json_incref(b) : json_array());
        json_array_append_new(out, o);
    }
    char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(out);
    json_decref(routes);
    json_decref(backends);
    return text;
}

static char *reply_text(struct router_feed *f)
{
    return xasprintf("{\"generation\":%lu,\"routes\":%s}", f->gen, f->text ? f->text : "[]");
}

static void waiter_free(struct waiter *w)
{
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    event_free(w->timeout);
    free(w);
}

static void waiter_answer(struct waiter *w)
{
    char *t = reply_text(w->f);
    httpd_stream_write(w->stream, t, strlen(t));
    free(t);
    httpd_stream_end(w->stream);
    waiter_free(w);
}

static void rebuild_cb(evutil_socket_t fd, short what, void *arg)
{
    struct router_feed *f = arg;
    char *text = build(f);
    if (!text)
        return;
    if (f->text && !strcmp(text, f->text)) {
        free(text);
        return;
    }
    free(f->text);
    f->text = text;
    f->gen++;
    while (f->waiters)
        waiter_answer(f->waiters);
}

static struct router_feed *feed(struct controller *c)
{
    if (!c->feed) {
        struct router_feed *f = xcalloc(1, sizeof(*f));
        f->c = c;
        f->rebuild = evtimer_new(c->base, rebuild_cb, f);
        c->feed = f;
        rebuild_cb(-1, 0, f);
    }
    return c->feed;
}

void api_router_changed(struct controller *c)
{
    if (!c->feed || evtimer_pending(c->feed->rebuild, NULL))
        return;
    struct timeval tv = {0, COALESCE_MS * 1000};
    evtimer_add(c->feed->rebuild, &tv);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    waiter_answer(arg);
}

static void on_close(struct httpd_stream *s, void *arg)
{
    waiter_free(arg);
}

void api_router_table(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    struct router_feed *f = feed(c);
    const char *wait = httpd_query(r, "wait");
    char *end = NULL;
    unsigned long want = wait ? strtoul(wait, &end, 10) : 0;
    if (wait && (!*wait || *end)) {
        api_error(r, 400, "validation_error", "wait", "wait must be a generation number");
        return;
    }
    if (!wait || want != f->gen) {
        char *t = reply_text(f);
        httpd_reply_text(r, 200, "application/json", t, strlen(t));
        free(t);
        return;
    }
    struct waiter *w = xcalloc(1, sizeof(*w));
    w->f = f;
    w->timeout = evtimer_new(c->base, on_timeout, w);
    w->stream = httpd_stream_start(r, "application/json", on_close, w);
    w->next = f->waiters;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = &f->waiters;
    f->waiters = w;
    struct timeval tv = {WAIT_MAX_MS / 1000, 0};
    evtimer_add(w->timeout, &tv);
}

void api_router_free(struct controller *c)
{
    struct router_feed *f = c->feed;
    if (!f)
        return;
    while (f->waiters) {
        httpd_stream_end(f->waiters->stream);
        waiter_free(f->waiters);
    }
    event_free(f->rebuild);
    free(f->text);
    free(f);
    c->feed = NULL;
}
