/* GET /events (list and SSE stream, flynn-api.md §5) and the event hub that
 * pushes committed events to open streams. */
#include "events.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "ids.h"
#include "log.h"
#include "store.h"
#include "strbuf.h"
#include "xalloc.h"

#define MAX_TYPES 32
#define MAX_PENDING (8u << 20) /* drop a subscriber that stops reading */

struct sub {
    struct sub *next, **pprev;
    struct events *hub;
    struct httpd_stream *stream;
    char *app_id, *object_id;
    char *types_buf;
    const char *types[MAX_TYPES + 1];
    int64_t last_id;
    bool formations; /* sends ExpandedFormations for `scale` events */
};

struct events {
    struct controller *c;
    struct sub *subs;
    int64_t flushed;
    struct event *keepalive;
};

static bool sub_match(const struct sub *s, const json_t *ev)
{
    if (s->app_id && (!jstr(ev, "app") || strcmp(s->app_id, jstr(ev, "app"))))
        return false;
    if (s->object_id && (!jstr(ev, "object_id") || strcmp(s->object_id, jstr(ev, "object_id"))))
        return false;
    if (s->types[0]) {
        const char *t = jstr(ev, "object_type");
        bool any = false;
        for (int i = 0; s->types[i] && !any; i++)
            any = !strcmp(s->types[i], t);
        if (!any)
            return false;
    }
    return true;
}

static void sub_free(struct sub *s)
{
    if (s->next)
        s->next->pprev = s->pprev;
    *s->pprev = s->next;
    free(s->app_id);
    free(s->object_id);
    free(s->types_buf);
    free(s);
}

static void sub_send(struct sub *s, const json_t *ev)
{
    json_int_t id = json_integer_value(json_object_get(ev, "id"));
    json_t *xf = NULL;
    if (s->formations) {
        /* object_id is APP:RELEASE; the formation is gone when deleted */
        json_t *f = store_get(s->hub->c->store, STORE_FORMATION, jstr(ev, "object_id"), NULL);
        if (f) {
            xf = api_formation_expand(s->hub->c, f);
        } else {
            const char *rel = jstr(json_object_get(ev, "data"), "release");
            json_t *app = store_get(s->hub->c->store, STORE_APP, jstr(ev, "app"), NULL);
            json_t *r = rel ? store_get(s->hub->c->store, STORE_RELEASE, rel, NULL) : NULL;
            xf = json_pack("{s:o*,s:o*,s:{},s:O,s:b}", "app", app, "release", r, "processes",
                           "updated_at", json_object_get(ev, "created_at"), "deleted", 1);
        }
        json_decref(f);
        ev = xf;
    }
    char *j = json_dumps(ev, JSON_COMPACT);
    struct strbuf sb = STRBUF_INIT;
    strbuf_addf(&sb, "data: %s\n\n", j);
    free(j);
    httpd_stream_write(s->stream, sb.buf, sb.len);
    strbuf_release(&sb);
    if (id > s->last_id)
        s->last_id = id;
    json_decref(xf);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct events *hub = arg;
    for (struct sub *s = hub->subs; s; s = s->next)
        httpd_stream_write(s->stream, ":\n", 2);
}

static int64_t max_event_id(struct controller *c)
{
    struct store_event_filter f = {.count = 1};
    json_t *l = store_events_list(c->store, &f, NULL);
    int64_t id = json_integer_value(json_object_get(json_array_get(l, 0), "id"));
    json_decref(l);
    return id;
}

struct events *events_new(struct controller *c)
{
    struct events *hub = xcalloc(1, sizeof(*hub));
    hub->c = c;
    hub->flushed = max_event_id(c);
    hub->keepalive = event_new(c->base, -1, EV_PERSIST, on_keepalive, hub);
    struct timeval tv = {30, 0};
    event_add(hub->keepalive, &tv);
    return hub;
}

void events_free(struct events *hub)
{
    if (!hub)
        return;
    while (hub->subs) {
        struct sub *s = hub->subs;
        httpd_stream_end(s->stream);
        sub_free(s);
    }
    /* normally empty: main frees the httpd (closing every stream) first */
    event_free(hub->keepalive);
    free(hub);
}

void events_flush(struct events *hub)
{
    if (!hub)
        return;
    struct store_event_filter f = {.since_id = hub->flushed, .oldest_first = 1};
    struct err *e = NULL;
    json_t *l = store_events_list(hub->c->store, &f, &e);
    if (!l) {
        log_error("events: %s", e->msg);
        err_free(e);
        return;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(l, i, ev)
    {
        json_int_t id = json_integer_value(json_object_get(ev, "id"));
        if (id > hub->flushed)
            hub->flushed = id;
        for (struct sub *s = hub->subs, *next; s; s = next) {
            next = s->next;
            if (id <= s->last_id || !sub_match(s, ev))
                continue;
            sub_send(s, ev);
            if (httpd_stream_pending(s->stream) > MAX_PENDING) {
                log_warn("events: dropping a subscriber that does not read");
                httpd_stream_end(s->stream);
                sub_free(s);
            }
        }
    }
    json_decref(l);
}

static void on_close(struct httpd_stream *st, void *arg)
{
    sub_free(arg);
}

/* Parses a non-negative integer query value; -1 when malformed. */
static long long qint(struct httpd_req *r, const char *name, long long def)
{
    const char *v = httpd_query(r, name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*end || errno || n < 0)
        return -1;
    return n;
}

void api_events_get(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    struct store_event_filter f = {0};
    json_t *app = NULL;
    const char *app_ref = httpd_query(r, "app_id");
    if (app_ref && *app_ref) {
        app = api_app_find(c, app_ref, NULL);
        if (!app)
            return httpd_reply_empty(r, 404);
        f.app_id = jstr(app, "id");
    }
    const char *oid = httpd_query(r, "object_id");
    if (oid && *oid)
        f.object_id = oid;
    cleanup_free char *types_buf = NULL;
    const char *types[MAX_TYPES + 1] = {0};
    const char *ot = httpd_query(r, "object_types");
    if (ot && *ot) {
        types_buf = xstrdup(ot);
        int n = 0;
        char *save = NULL;
        for (char *t = strtok_r(types_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n == MAX_TYPES) {
                json_decref(app);
                return api_error(r, 400, "validation_error", "object_types",
                                 "too many object types");
            }
            types[n++] = t;
        }
        f.object_types = types;
    }
    long long count = qint(r, "count", 0), before = qint(r, "before_id", 0),
              since = qint(r, "since_id", 0);
    if (count < 0 || before < 0 || since < 0 || count > 100000) {
        json_decref(app);
        return api_error(r, 400, "validation_error", NULL, "invalid query parameter");
    }
    f.count = (int)count;
    f.before_id = before;
    f.since_id = since;
    const char *accept = httpd_header(r, "Accept");
    struct err *e = NULL;
    if (accept && !strcmp(accept, "application/json")) {
        json_t *l = store_events_list(c->store, &f, &e);
        json_decref(app);
        if (!l)
            return api_reply_err(r, e, NULL);
        return httpd_reply_json(r, 200, l);
    }

    /* SSE: replay (Last-Event-Id resume, past=true, or the last `count`), then live */
    const char *lei = httpd_header(r, "Last-Event-Id");
    long long last = lei && *lei ? strtoll(lei, NULL, 10) : 0;
    const char *past = httpd_query(r, "past");
    json_t *replay = NULL;
    f.oldest_first = 1;
    f.before_id = 0;
    if (last > 0) {
        f.since_id = last;
        replay = store_events_list(c->store, &f, &e);
    } else if ((past && !strcmp(past, "true")) || count > 0) {
        replay = store_events_list(c->store, &f, &e);
    }
    if (!replay && e) {
        json_decref(app);
        return api_reply_err(r, e, NULL);
    }
    struct sub *s = xcalloc(1, sizeof(*s));
    s->hub = c->events;
    s->app_id = f.app_id ? xstrdup(f.app_id) : NULL;
    s->object_id = f.object_id ? xstrdup(f.object_id) : NULL;
    if (types_buf) {
        /* re-point the type list into the subscriber's own copy */
        s->types_buf = xmalloc(strlen(ot) + 1);
        memcpy(s->types_buf, types_buf, strlen(ot) + 1);
        for (int i = 0; types[i]; i++)
            s->types[i] = s->types_buf + (types[i] - types_buf);
    }
    s->last_id = c->events->flushed;
    s->next = c->events->subs;
    if (s->next)
        s->next->pprev = &s->next;
    s->pprev = &c->events->subs;
    c->events->subs = s;
    json_decref(app);
    s->stream = httpd_stream_start(r, "text/event-stream; charset=utf-8", on_close, s);
    size_t i;
    json_t *ev;
    json_array_foreach(replay, i, ev)
    {
        int64_t keep = s->last_id;
        sub_send(s, ev);
        s->last_id = keep > s->last_id ? keep : s->last_id;
    }
    json_decref(replay);
}

void api_event_get(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    char *end;
    const char *ids = httpd_param(r, "id");
    long long id = strtoll(ids, &end, 10);
    if (*end || id <= 0)
        return httpd_reply_empty(r, 404);
    struct store_event_filter f = {.since_id = id - 1, .before_id = id + 1};
    struct err *e = NULL;
    json_t *l = store_events_list(c->store, &f, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    json_t *ev = json_array_get(l, 0);
    if (ev)
        httpd_reply_json(r, 200, json_incref(ev));
    else
        httpd_reply_empty(r, 404);
    json_decref(l);
}

void events_formations_stream(struct httpd_req *r, struct controller *c, const char *since)
{
    double t0 = time_parse_rfc3339(since);
    if (t0 < 0)
        return api_error(r, 400, "validation_error", "since", "since must be an RFC 3339 time");
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_FORMATION, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    struct sub *s = xcalloc(1, sizeof(*s));
    s->hub = c->events;
    s->formations = true;
    s->types_buf = xstrdup("scale");
    s->types[0] = s->types_buf;
    s->last_id = c->events->flushed;
    s->next = c->events->subs;
    if (s->next)
        s->next->pprev = &s->next;
    s->pprev = &c->events->subs;
    c->events->subs = s;
    s->stream = httpd_stream_start(r, "text/event-stream; charset=utf-8", on_close, s);
    struct strbuf sb = STRBUF_INIT;
    size_t i;
    json_t *f;
    json_array_foreach(l, i, f)
    {
        if (time_parse_rfc3339(jstr(f, "updated_at")) < t0)
            continue;
        json_t *x = api_formation_expand(c, f);
        char *js = json_dumps(x, JSON_COMPACT);
        strbuf_addf(&sb, "data: %s\n\n", js);
        free(js);
        json_decref(x);
    }
    strbuf_adds(&sb, "data: {}\n\n");
    httpd_stream_write(s->stream, sb.buf, sb.len);
    strbuf_release(&sb);
    json_decref(l);
}
