/* The scheduler: host sync (list + SSE), formation reconcile, job start/stop
 * with crash backoff, TCP health checks, and the deployment state machine.
 * Everything runs on the controller's libevent loop with evhttp client
 * requests; nothing here blocks. See scheduler.h. */
#include "scheduler.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "controller.h"
#include "ids.h"
#include "log.h"
#include "store.h"
#include "strbuf.h"
#include "xalloc.h"

#define TICK_MS 500
#define CHECK_RETRY_MS 50
/* A SYN sent before the job's veth is up gets no answer, and the kernel
 * would retransmit it only after a second: give each attempt this long. */
#define CHECK_CONNECT_MS 150
#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 30000
#define BACKOFF_RESET_US (10LL * 1000000) /* up this long: the crash loop is over */
#define HOST_RETRY_MAX_MS 5000
#define MAX_DEPLOY_DOWNS 5
#define DRAIN_MS 250 /* a routed job leaves the routers this long before SIGTERM */
#define HOST_LOST_US (10LL * 1000000) /* unreachable this long: its jobs are gone */

enum jstate { JS_STARTING, JS_UP, JS_STOPPING };

struct host;
struct scheduler;

struct sjob {
    struct sjob *next;
    struct scheduler *s;
    struct host *h;
    char uuid[37];
    char *id; /* HOSTID-UUID */
    char *app, *release, *type;
    char *service; /* discovery service name (routes), NULL: none */
    enum jstate st;
    bool stop_requested;
    bool recorded_running;
    bool oneoff; /* POST /apps/:app/jobs: never restarted or reconciled */
    char *ip;
    int port; /* health check port, 0: none */
    struct bufferevent *check;
    struct event *check_timer;
    long long up_us;
    unsigned mark;
    json_t *rec; /* the Job record as stored */
    scheduler_placed_cb placed; /* attached one-off jobs: told once the host answered */
    void *placed_arg;
};

enum hstate { H_NEW, H_SYNCING, H_READY, H_RETRY };

struct host {
    struct host *next;
    struct scheduler *s;
    char *url, *addr;
    int port;
    char *id;
    struct evhttp_connection *conn, *sconn;
    struct strbuf sbuf;
    enum hstate st;
    struct event *retry;
    int backoff_ms;
    long long lost_since_us; /* when it stopped answering; 0 while fine */
    bool jobs_dropped;       /* its jobs were given up after HOST_LOST_US */
    unsigned gen; /* bumps on every (re)sync; stale callbacks compare it */
};

struct backoff {
    struct backoff *next;
    char *key; /* app:release:type */
    int crashes;
    long long not_before_us;
};

struct deploy {
    struct deploy *next;
    char id[37];
    long long deadline_us;
    int downs;
    bool scaled_new; /* all-at-once: the new formation is set */
};

/* An HTTP call in flight; kept in a list so shutdown can free them. */
typedef void (*call_cb)(struct host *h, int status, json_t *body, void *arg);
struct call {
    struct call *next, **pprev;
    struct host *h;
    call_cb cb;
    scheduler_raw_cb raw_cb; /* instead of cb: the body as bytes */
    void *arg;
    unsigned gen;
};

struct scheduler {
    struct controller *c;
    struct host *hosts;
    struct sjob *jobs;
    struct backoff *backoffs;
    struct deploy *deploys;
    struct call *calls;
    struct event *poke_ev, *tick_ev;
    unsigned long ticks;
    unsigned pass;
};

static void reconcile(struct scheduler *s);
static void host_sync(struct host *h);

/* ---------- small helpers ---------- */

static long long now_us(void)
{
    return time_now_us();
}

static void timer_ms(struct event *ev, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(ev, &tv);
}

void scheduler_poke(struct scheduler *s)
{
    if (s && !event_pending(s->poke_ev, EV_TIMEOUT, NULL))
        timer_ms(s->poke_ev, 0);
}

static json_t *jdup_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---------- host HTTP ---------- */

static void call_unlink(struct call *c)
{
    if (c->next)
        c->next->pprev = c->pprev;
    *c->pprev = c->next;
}

static void call_done(struct evhttp_request *req, void *arg)
{
    struct call *c = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    json_t *body = NULL;
    if (c->raw_cb) {
        struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
        size_t n = in ? evbuffer_get_length(in) : 0;
        const char *data = n ? (const char *)evbuffer_pullup(in, (ev_ssize_t)n) : "";
        call_unlink(c);
        c->raw_cb(status, data, n, c->arg);
        free(c);
        return;
    }
    if (req) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        if (n)
            body = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, 0, NULL);
    }
    call_unlink(c);
    if (c->gen == c->h->gen || !c->h->gen)
        c->cb(c->h, status, body, c->arg);
    else
        c->cb(c->h, -1, NULL, c->arg); /* the host resynced meanwhile */
    json_decref(body);
    free(c);
}

/* Sends METHOD path with body (stolen, may be NULL) on the host's request
 * connection; cb runs once with the status (0: no response). */
static void host_call(struct host *h, enum evhttp_cmd_type method, const char *path, json_t *body,
                      call_cb cb, void *arg)
{
    struct call *c = xcalloc(1, sizeof(*c));
    c->h = h;
    c->cb = cb;
    c->arg = arg;
    c->gen = h->gen;
    c->next = h->s->calls;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &h->s->calls;
    h->s->calls = c;
    struct evhttp_request *req = evhttp_request_new(call_done, c);
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_add_header(hd, "Host", h->addr);
    evhttp_add_header(hd, "Accept", "application/json");
    if (body) {
        char *s = json_dumps(body, JSON_COMPACT);
        evhttp_add_header(hd, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), s, strlen(s));
        free(s);
        json_decref(body);
    }
    if (evhttp_make_request(h->conn, req, method, path) < 0) {
        /* libevent freed req; report the failure from the loop, not re-entrantly */
        call_unlink(c);
        cb(h, 0, NULL, arg);
        free(c);
    }
}

int scheduler_host_get(struct scheduler *s, const char *host_id, const char *path,
                       scheduler_raw_cb cb, void *arg, struct err **err)
{
    struct host *h = s ? s->hosts : NULL;
    while (h && (!h->id || strcmp(h->id, host_id)))
        h = h->next;
    if (!h)
        return err_makex(err, ENOENT, "host '%s' is not known", host_id);
    struct call *c = xcalloc(1, sizeof(*c));
    c->h = h;
    c->raw_cb = cb;
    c->arg = arg;
    c->gen = h->gen;
    c->next = s->calls;
    if (c->next)
        c->next->pprev = &c->next;
    c->pprev = &s->calls;
    s->calls = c;
    struct evhttp_request *req = evhttp_request_new(call_done, c);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", h->addr);
    if (evhttp_make_request(h->conn, req, EVHTTP_REQ_GET, path) < 0) {
        call_unlink(c);
        free(c);
        return err_makex(err, EIO, "request to host '%s' failed", host_id);
    }
    return 0;
}

int scheduler_host_addr(struct scheduler *s, const char *host_id, const char **addr, int *port)
{
    for (struct host *h = s ? s->hosts : NULL; h; h = h->next) {
        if (h->id && !strcmp(h->id, host_id)) {
            *addr = h->addr;
            *port = h->port;
            return 0;
        }
    }
    return -1;
}

/* ---------- job records ---------- */

static const char *state_name(int host_status)
{
    switch (host_status) {
    case 0: return "starting";
    case 1: return "up";
    case 2: return "down";
    case 3: return "crashed";
    default: return "failed";
    }
}

static void record(struct scheduler *s, json_t *rec, const char *state)
{
    json_object_set_new(rec, "state", json_string(state));
    struct err *e = NULL;
    json_t *copy = json_deep_copy(rec);
    if (api_job_save(s->c, copy, &e) < 0) {
        log_error("scheduler: record job %s: %s", jstr(rec, "uuid"), e->msg);
        err_free(e);
    }
    json_decref(copy);
    api_router_changed(s->c);
}

static void job_unlink_free(struct sjob *j)
{
    struct sjob **pp = &j->s->jobs;
    while (*pp && *pp != j)
        pp = &(*pp)->next;
    if (*pp)
        *pp = j->next;
    if (j->check)
        bufferevent_free(j->check);
    if (j->check_timer)
        event_free(j->check_timer);
    free(j->id);
    free(j->app);
    free(j->release);
    free(j->type);
    free(j->service);
    free(j->ip);
    json_decref(j->rec);
    free(j);
}

static struct sjob *job_find(struct scheduler *s, const char *uuid)
{
    for (struct sjob *j = s->jobs; j; j = j->next)
        if (!strcmp(j->uuid, uuid))
            return j;
    return NULL;
}

static char *backoff_key(const char *app, const char *rel, const char *type)
{
    return xasprintf("%s:%s:%s", app, rel, type);
}

static struct backoff *backoff_get(struct scheduler *s, const char *key, bool create)
{
    for (struct backoff *b = s->backoffs; b; b = b->next)
        if (!strcmp(b->key, key))
            return b;
    if (!create)
        return NULL;
    struct backoff *b = xcalloc(1, sizeof(*b));
    b->key = xstrdup(key);
    b->next = s->backoffs;
    s->backoffs = b;
    return b;
}

static void note_crash(struct scheduler *s, struct sjob *j)
{
    cleanup_free char *key = backoff_key(j->app, j->release, j->type);
    struct backoff *b = backoff_get(s, key, true);
    b->crashes++;
    long long ms = BACKOFF_BASE_MS;
    for (int i = 1; i < b->crashes && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    b->not_before_us = now_us() + ms * 1000;
    log_info("scheduler: job %s (%s) crashed; restart in %lld ms", j->id, j->type, ms);
    for (struct deploy *d = s->deploys; d; d = d->next) {
        json_t *dep = store_get(s->c->store, STORE_DEPLOYMENT, d->id, NULL);
        if (dep && !strcmp(jstr(dep, "new_release"), j->release))
            d->downs++;
        json_decref(dep);
    }
}

/* ---------- health checks ---------- */

static void job_is_up(struct sjob *j)
{
    if (j->st != JS_STARTING)
        return;
    j->st = JS_UP;
    j->up_us = now_us();
    const char *was = jstr(j->rec, "state");
    double since = time_parse_rfc3339(jstr(j->rec, "updated_at"));
    if (was && !strcmp(was, "up") && since > 0) {
        /* up since before this controller started (its record says so and
         * was last written then): it keeps its age, so the service's
         * leader stays the same across controller restarts */
        j->up_us = (long long)(since * 1e6);
        api_router_changed(j->s->c);
    } else {
        record(j->s, j->rec, "up");
    }
    scheduler_poke(j->s);
}

static void check_start(struct sjob *j);

static void check_event(struct bufferevent *bev, short what, void *arg)
{
    struct sjob *j = arg;
    bufferevent_free(j->check);
    j->check = NULL;
    if (what & BEV_EVENT_CONNECTED)
        job_is_up(j);
    else
        timer_ms(j->check_timer, CHECK_RETRY_MS);
}

static void check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    check_start(arg);
}

/* TCP connect to internal_ip:port; up on success, retried while the job runs. */
static void check_start(struct sjob *j)
{
    if (j->st != JS_STARTING)
        return;
    if (!j->port || !j->ip) {
        job_is_up(j);
        return;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)j->port)};
    if (inet_pton(AF_INET, j->ip, &sa.sin_addr) != 1) {
        job_is_up(j);
        return;
    }
    if (!j->check_timer)
        j->check_timer = evtimer_new(j->s->c->base, check_timer_cb, j);
    j->check = bufferevent_socket_new(j->s->c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(j->check, NULL, NULL, check_event, j);
    struct timeval cto = {0, CHECK_CONNECT_MS * 1000};
    bufferevent_set_timeouts(j->check, NULL, &cto);
    if (bufferevent_socket_connect(j->check, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        bufferevent_free(j->check);
        j->check = NULL;
        timer_ms(j->check_timer, CHECK_RETRY_MS);
    }
}

/* ---------- host events ---------- */

/* The address a job is reached at: its own, or its host's for host-network
 * jobs. Borrowed; NULL when it has none yet. */
static const char *job_ip(const struct host *h, const json_t *active_job)
{
    const char *ip = jstr(active_job, "internal_ip");
    if (ip && *ip)
        return ip;
    json_t *cfg = json_object_get(json_object_get(active_job, "job"), "config");
    return json_is_true(json_object_get(cfg, "host_network")) ? h->addr : NULL;
}

static int first_port(const json_t *active_job)
{
    json_t *ports = json_object_get(json_object_get(json_object_get(active_job, "job"), "config"),
                                    "ports");
    return (int)json_integer_value(json_object_get(json_array_get(ports, 0), "port"));
}

static void send_delete(struct sjob *j);

/* Adopts a formation job found on a host that we do not track yet. */
static struct sjob *adopt(struct host *h, const char *job_id, const json_t *aj)
{
    json_t *md = json_object_get(json_object_get(aj, "job"), "metadata");
    const char *f = jstr(md, "flynn-controller.formation");
    const char *app = jstr(md, "flynn-controller.app");
    const char *rel = jstr(md, "flynn-controller.release");
    const char *type = jstr(md, "flynn-controller.type");
    const char *dash = strchr(job_id, '-');
    char uuid[37];
    bool oneoff = !f || strcmp(f, "true");
    if (oneoff && !type)
        type = "";
    if (!app || !rel || !type || !dash ||
        (size_t)(dash - job_id) != strlen(h->id) || strncmp(job_id, h->id, strlen(h->id)) ||
        strlen(dash + 1) != 36)
        return NULL;
    snprintf(uuid, sizeof(uuid), "%s", dash + 1);
    struct sjob *j = xcalloc(1, sizeof(*j));
    j->s = h->s;
    j->h = h;
    memcpy(j->uuid, uuid, sizeof(uuid));
    j->id = xstrdup(job_id);
    j->app = xstrdup(app);
    j->release = xstrdup(rel);
    j->type = xstrdup(type);
    if (jstr(md, "flynn-controller.service"))
        j->service = xstrdup(jstr(md, "flynn-controller.service"));
    j->oneoff = oneoff;
    j->st = JS_STARTING;
    if (json_is_true(json_object_get(aj, "force_stop"))) {
        /* already being stopped (by us, before a restart) */
        j->st = JS_STOPPING;
        j->stop_requested = true;
    }
    json_t *old = store_get(h->s->c->store, STORE_JOB, uuid, NULL);
    j->rec = old ? old
                 : json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O*,s:O*}", "id", job_id, "uuid", uuid,
                             "host_id", h->id, "app", app, "release", rel, "type", type, "args",
                             json_object_get(json_object_get(json_object_get(aj, "job"), "config"),
                                             "args"),
                             "meta", md);
    j->next = h->s->jobs;
    h->s->jobs = j;
    const char *was = old ? jstr(old, "state") : NULL;
    if (was && !strcmp(was, "stopping") && !j->stop_requested) {
        /* we were stopping it (a deploy, a scale-down, a kill) when this
         * controller went away, before the host was told: tell it now */
        j->st = JS_STOPPING;
        j->stop_requested = true;
        log_info("scheduler: job %s was being stopped; stopping it", j->id);
        send_delete(j);
    }
    return j;
}

/* Applies one ActiveJob state (from a listing or an event). */
static void apply_active(struct host *h, const char *job_id, const json_t *aj)
{
    struct scheduler *s = h->s;
    const char *dash = strchr(job_id, '-');
    struct sjob *j = dash ? job_find(s, dash + 1) : NULL;
    int status = (int)json_integer_value(json_object_get(aj, "status"));
    if (!j) {
        if (status >= 2)
            return;
        j = adopt(h, job_id, aj);
        if (!j)
            return;
    }
    if (status == 0) {
        /* the host may report "starting" for a while after the process
         * runs: a passing health check is proof enough */
        const char *ip = job_ip(h, aj);
        int port = first_port(aj);
        if (ip && *ip && port && !j->ip && j->st == JS_STARTING) {
            j->ip = xstrdup(ip);
            j->port = port;
            check_start(j);
        }
        return;
    }
    if (status == 1) {
        if (!j->recorded_running) {
            j->recorded_running = true;
            bool checking = j->check || (j->check_timer && evtimer_pending(j->check_timer, NULL));
            free(j->ip);
            j->ip = job_ip(h, aj) ? xstrdup(job_ip(h, aj)) : NULL;
            j->port = first_port(aj);
            if (j->st == JS_STARTING && !checking)
                check_start(j);
        }
        return;
    }
    /* done, crashed or failed */
    json_t *es = json_object_get(aj, "exit_status");
    if (json_is_integer(es))
        json_object_set(j->rec, "exit_status", es);
    const char *herr = jstr(aj, "error");
    if (herr && *herr)
        json_object_set_new(j->rec, "host_error", json_string(herr));
    bool requested = j->stop_requested;
    record(s, j->rec, requested ? "down" : state_name(status));
    if (!requested && !j->oneoff)
        note_crash(s, j);
    job_unlink_free(j);
    scheduler_poke(s);
}

static void handle_host_event(struct host *h, json_t *ev)
{
    const char *job_id = jstr(ev, "job_id");
    json_t *aj = json_object_get(ev, "job");
    if (job_id && json_is_object(aj))
        apply_active(h, job_id, aj);
}

/* ---------- host sync ---------- */

static void host_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    host_sync(arg);
}

static void host_lost(struct host *h, const char *why)
{
    if (h->st == H_RETRY)
        return;
    log_warn("scheduler: host %s: %s; retrying", h->url, why);
    h->st = H_RETRY;
    if (!h->lost_since_us)
        h->lost_since_us = now_us();
    h->gen++;
    /* h->sconn may be the caller's own connection: free it from the timer */
    h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : 100;
    if (h->backoff_ms > HOST_RETRY_MAX_MS)
        h->backoff_ms = HOST_RETRY_MAX_MS;
    timer_ms(h->retry, h->backoff_ms);
}

/* Job records that say a job is alive on h although h does not run it (the
 * controller stopped between recording and placing it, or the host lost it
 * while we were away) are closed. */
static void forget_stale_records(struct host *h, const json_t *listing)
{
    json_t *l = store_list(h->s->c->store, STORE_JOB, NULL, NULL, NULL);
    size_t i;
    json_t *rec;
    json_array_foreach(l, i, rec)
    {
        const char *st = jstr(rec, "state"), *hid = jstr(rec, "host_id"), *id = jstr(rec, "id");
        if (!st || !hid || !id || strcmp(hid, h->id) || job_find(h->s, jstr(rec, "uuid")) ||
            (strcmp(st, "pending") && strcmp(st, "starting") && strcmp(st, "up") &&
             strcmp(st, "stopping")))
            continue;
        json_t *aj = json_object_get(listing, id);
        if (aj && json_integer_value(json_object_get(aj, "status")) < 2)
            continue; /* running but not ours to track (not a controller job) */
        bool stopping = !strcmp(st, "stopping");
        if (aj) {
            json_t *es = json_object_get(aj, "exit_status");
            if (json_is_integer(es))
                json_object_set(rec, "exit_status", es);
        } else {
            json_object_set_new(rec, "host_error", json_string("not found on its host"));
        }
        int hs = aj ? (int)json_integer_value(json_object_get(aj, "status")) : 3;
        record(h->s, rec, stopping ? "down" : state_name(hs));
    }
    json_decref(l);
}

static void on_listing(struct host *h, int status, json_t *body, void *arg)
{
    if (status < 0)
        return;
    if (status != 200 || !json_is_object(body))
        return host_lost(h, "listing jobs failed");
    /* jobs we think run there but the host does not know are gone */
    for (struct sjob *j = h->s->jobs, *next; j; j = next) {
        next = j->next;
        if (j->h != h || json_object_get(body, j->id))
            continue;
        json_object_set_new(j->rec, "host_error", json_string("job lost by its host"));
        record(h->s, j->rec, j->stop_requested ? "down" : "crashed");
        job_unlink_free(j);
    }
    const char *id;
    json_t *aj;
    json_object_foreach(body, id, aj) apply_active(h, id, aj);
    forget_stale_records(h, body);
    h->st = H_READY;
    h->backoff_ms = 0;
    h->lost_since_us = 0;
    h->jobs_dropped = false;
    log_info("scheduler: host %s (%s) synced, %zu jobs", h->id, h->url, json_object_size(body));
    scheduler_poke(h->s);
}

/* Periodic listing: events are the fast path, this heals a stop event that
 * a stream missed. Only final states of jobs we track are applied (a final
 * state cannot be stale), so a listing older than an event changes nothing. */
static void on_relist(struct host *h, int status, json_t *body, void *arg)
{
    if (status != 200 || !json_is_object(body))
        return;
    const char *id;
    json_t *aj;
    json_object_foreach(body, id, aj)
    {
        const char *dash = strchr(id, '-');
        if (json_integer_value(json_object_get(aj, "status")) >= 2 && dash &&
            job_find(h->s, dash + 1))
            apply_active(h, id, aj);
    }
}

static void stream_chunk(struct evhttp_request *req, void *arg)
{
    struct host *h = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    strbuf_grow(&h->sbuf, n);
    evbuffer_remove(in, h->sbuf.buf + h->sbuf.len, n);
    h->sbuf.len += n;
    h->sbuf.buf[h->sbuf.len] = '\0';
    char *end;
    while ((end = strstr(h->sbuf.buf, "\n\n"))) {
        *end = '\0';
        for (char *line = h->sbuf.buf, *nl; line && *line; line = nl) {
            nl = strchr(line, '\n');
            if (nl)
                *nl++ = '\0';
            if (!strncmp(line, "data:", 5)) {
                json_t *ev = json_loads(line + 5 + (line[5] == ' '), 0, NULL);
                if (ev)
                    handle_host_event(h, ev);
                json_decref(ev);
            }
        }
        strbuf_remove_prefix(&h->sbuf, (size_t)(end - h->sbuf.buf) + 2);
    }
}

static void stream_done(struct evhttp_request *req, void *arg)
{
    struct host *h = arg;
    host_lost(h, "event stream ended");
}

static int stream_headers(struct evhttp_request *req, void *arg)
{
    struct host *h = arg;
    if (evhttp_request_get_response_code(req) != 200)
        return -1; /* stream_done follows */
    host_call(h, EVHTTP_REQ_GET, "/host/jobs", NULL, on_listing, NULL);
    return 0;
}

static void on_status(struct host *h, int status, json_t *body, void *arg)
{
    if (status < 0)
        return;
    const char *id = jstr(body, "id");
    if (status != 200 || !id || !*id || strchr(id, '-'))
        return host_lost(h, "GET /host/status failed");
    if (h->id && strcmp(h->id, id))
        log_warn("scheduler: host %s changed id from %s to %s", h->url, h->id, id);
    free(h->id);
    h->id = xstrdup(id);
    /* stream first, then list (from stream_headers), so no event falls between */
    h->sconn = evhttp_connection_base_new(h->s->c->base, NULL, h->addr, (ev_uint16_t)h->port);
    evhttp_connection_set_timeout(h->sconn, 365 * 86400);
    strbuf_reset(&h->sbuf);
    struct evhttp_request *req = evhttp_request_new(stream_done, h);
    evhttp_request_set_chunked_cb(req, stream_chunk);
    evhttp_request_set_header_cb(req, stream_headers);
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    evhttp_add_header(hd, "Host", h->addr);
    evhttp_add_header(hd, "Accept", "text/event-stream");
    if (evhttp_make_request(h->sconn, req, EVHTTP_REQ_GET, "/host/jobs") < 0)
        host_lost(h, "cannot open the event stream");
}

static void host_sync(struct host *h)
{
    if (h->sconn) {
        evhttp_connection_free(h->sconn);
        h->sconn = NULL;
    }
    h->st = H_SYNCING;
    h->gen++;
    host_call(h, EVHTTP_REQ_GET, "/host/status", NULL, on_status, NULL);
}

/* ---------- starting and stopping ---------- */

static struct host *least_loaded(struct scheduler *s)
{
    struct host *best = NULL;
    size_t best_n = 0;
    for (struct host *h = s->hosts; h; h = h->next) {
        if (h->st != H_READY)
            continue;
        size_t n = 0;
        for (struct sjob *j = s->jobs; j; j = j->next)
            n += j->h == h;
        if (!best || n < best_n) {
            best = h;
            best_n = n;
        }
    }
    return best;
}

static void on_put(struct host *h, int status, json_t *body, void *arg)
{
    struct scheduler *s = h->s;
    const char *uuid = arg;
    struct sjob *j = job_find(s, uuid);
    free(arg);
    /* whoever waits for the placement (api_attach.c) hears of it once, last */
    scheduler_placed_cb placed = j ? j->placed : NULL;
    void *placed_arg = j ? j->placed_arg : NULL;
    if (j)
        j->placed = NULL;
    if (!j || status == 200) {
        if (placed)
            placed(NULL, placed_arg);
        return;
    }
    const char *msg = jstr(body, "message");
    cleanup_free char *why = xasprintf("the host did not start the job (%d): %s", status,
                                       msg ? msg : "no response");
    if (status >= 0) { /* else the host resynced: the listing says what happened */
        json_object_set_new(j->rec, "host_error",
                            json_sprintf("start failed (%d): %s", status, msg ? msg : "no response"));
        record(s, j->rec, "failed");
        if (!j->oneoff)
            note_crash(s, j);
        job_unlink_free(j);
        scheduler_poke(s);
    }
    if (placed)
        placed(why, placed_arg);
}

/* Starts one job of the type on host h (NULL: the least-loaded host). */
/* The job root for a release: the default stack, plus the slug when one of
 * the release's artifacts is a slug tarball (type "file" with a sha256 in
 * its meta, made by the receiver). */
static json_t *release_root(struct scheduler *s, const json_t *rel)
{
    json_t *root = json_pack("{s:s}", "stack", "default");
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(rel, "artifacts"), i, id)
    {
        if (!json_is_string(id))
            continue;
        json_t *a = store_get(s->c->store, STORE_ARTIFACT, json_string_value(id), NULL);
        const char *type = jstr(a, "type"), *uri = jstr(a, "uri");
        const char *sum = jstr(json_object_get(a, "meta"), "sha256");
        if (type && !strcmp(type, "file") && uri && sum) {
            json_t *slug = json_pack("{s:s,s:s}", "url", uri, "sha256", sum);
            json_t *size = json_object_get(a, "size");
            if (json_is_integer(size) && json_integer_value(size) > 0)
                json_object_set(slug, "size", size);
            json_object_set_new(root, "slug", slug);
        }
        json_decref(a);
    }
    return root;
}

/* The discovery service of a process type: its own, its first port's, or
 * APPNAME-web for the web type (the default route's service). */
static char *process_service(const json_t *app, const json_t *proc, const char *type)
{
    const char *svc = jstr(proc, "service");
    if (!svc || !*svc)
        svc = jstr(json_object_get(json_array_get(json_object_get(proc, "ports"), 0), "service"),
                   "name");
    if (svc && *svc)
        return xstrdup(svc);
    if (!strcmp(type, "web") && jstr(app, "name"))
        return xasprintf("%s-web", jstr(app, "name"));
    return NULL;
}

static void start_job(struct scheduler *s, const json_t *app, const json_t *rel, const char *type,
                      struct host *h)
{
    if (!h)
        h = least_loaded(s);
    if (!h)
        return;
    const json_t *proc = json_object_get(json_object_get(rel, "processes"), type);
    const char *app_id = jstr(app, "id"), *rel_id = jstr(rel, "id");
    struct sjob *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->h = h;
    id_uuid(j->uuid);
    j->id = xasprintf("%s-%s", h->id, j->uuid);
    j->app = xstrdup(app_id);
    j->release = xstrdup(rel_id);
    j->type = xstrdup(type);
    j->service = process_service(app, proc, type);
    j->st = JS_STARTING;
    j->mark = s->pass;
    j->next = s->jobs;
    s->jobs = j;

    json_t *env = json_object();
    json_object_update(env, json_object_get(rel, "env"));
    json_object_update(env, json_object_get(proc, "env"));
    json_object_set_new(env, "FLYNN_APP_ID", json_string(app_id));
    json_object_set_new(env, "FLYNN_APP_NAME", jdup_str(jstr(app, "name")));
    json_object_set_new(env, "FLYNN_RELEASE_ID", json_string(rel_id));
    json_object_set_new(env, "FLYNN_PROCESS_TYPE", json_string(type));
    json_object_set_new(env, "FLYNN_JOB_ID", json_string(j->id));
    json_t *md = json_pack("{s:s,s:O,s:s,s:s,s:s}", "flynn-controller.app", app_id,
                           "flynn-controller.app_name", json_object_get(app, "name"),
                           "flynn-controller.release", rel_id, "flynn-controller.type", type,
                           "flynn-controller.formation", "true");
    if (j->service)
        json_object_set_new(md, "flynn-controller.service", json_string(j->service));
    json_t *args = json_object_get(proc, "args");
    json_t *config = json_pack("{s:o,s:o}", "args", args ? json_incref(args) : json_array(),
                               "env", env);
    if (json_is_true(json_object_get(proc, "host_network")))
        json_object_set_new(config, "host_network", json_true());
    json_t *mounts = json_object_get(proc, "mounts");
    if (json_array_size(mounts)) {
        json_t *ml = json_array();
        size_t mi;
        json_t *m;
        json_array_foreach(mounts, mi, m)
            json_array_append_new(ml, json_pack("{s:O,s:O,s:b}", "location",
                                                json_object_get(m, "location"), "target",
                                                json_object_get(m, "target"), "writeable",
                                                json_is_true(json_object_get(m, "writeable"))));
        json_object_set_new(config, "mounts", ml);
    }
    json_t *ports = json_object_get(proc, "ports");
    if (json_array_size(ports)) {
        json_t *pl = json_array();
        size_t i;
        json_t *p;
        json_array_foreach(ports, i, p)
            json_array_append_new(pl, json_pack("{s:O,s:O}", "port", json_object_get(p, "port"),
                                                "proto", json_object_get(p, "proto")));
        json_object_set_new(config, "ports", pl);
    }
    json_t *spec = json_pack("{s:s,s:O,s:o,s:o}", "id", j->id, "metadata", md, "config",
                             config, "root", release_root(s, rel));
    json_t *res = json_object_get(proc, "resources");
    if (json_is_object(res))
        json_object_set(spec, "resources", res);
    j->rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:o}", "id", j->id, "uuid", j->uuid,
                       "host_id", h->id, "app", app_id, "release", rel_id, "type", type, "args",
                       json_object_get(config, "args"), "meta", md);
    record(s, j->rec, "starting");
    log_info("scheduler: starting %s job %s on %s", type, j->id, h->id);
    cleanup_free char *path = xasprintf("/host/jobs/%s", j->id);
    host_call(h, EVHTTP_REQ_PUT, path, spec, on_put, xstrdup(j->uuid));
}

static json_t *run_job(struct scheduler *s, const json_t *app, const json_t *rel,
                       const json_t *req, bool attach, scheduler_placed_cb cb, void *arg,
                       struct err **err);

json_t *scheduler_run_job(struct scheduler *s, const json_t *app, const json_t *rel,
                          const json_t *req, struct err **err)
{
    return run_job(s, app, rel, req, false, NULL, NULL, err);
}

json_t *scheduler_run_attached(struct scheduler *s, const json_t *app, const json_t *rel,
                               const json_t *req, scheduler_placed_cb cb, void *arg,
                               struct err **err)
{
    return run_job(s, app, rel, req, true, cb, arg, err);
}

void scheduler_run_cancel(struct scheduler *s, const char *uuid)
{
    struct sjob *j = s ? job_find(s, uuid) : NULL;
    if (j)
        j->placed = NULL;
}

static json_t *run_job(struct scheduler *s, const json_t *app, const json_t *rel,
                       const json_t *req, bool attach, scheduler_placed_cb cb, void *arg,
                       struct err **err)
{
    struct host *h = s ? least_loaded(s) : NULL;
    if (!h) {
        err_makex(err, EBUSY, "no host is available to run the job");
        return NULL;
    }
    const char *app_id = jstr(app, "id"), *rel_id = jstr(rel, "id");
    json_t *args = json_object_get(req, "args");
    if (!json_array_size(args)) {
        err_makex(err, EINVAL, "args are required (images have no default command yet)");
        return NULL;
    }
    struct sjob *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->h = h;
    id_uuid(j->uuid);
    j->id = xasprintf("%s-%s", h->id, j->uuid);
    j->app = xstrdup(app_id);
    j->release = xstrdup(rel_id);
    j->type = xstrdup("");
    j->oneoff = true;
    j->placed = cb;
    j->placed_arg = arg;
    j->st = JS_STARTING;
    j->next = s->jobs;
    s->jobs = j;
    json_t *env = json_object();
    json_object_set_new(env, "FLYNN_APP_ID", json_string(app_id));
    json_object_set_new(env, "FLYNN_RELEASE_ID", json_string(rel_id));
    json_object_set_new(env, "FLYNN_PROCESS_TYPE", json_string(""));
    json_object_set_new(env, "FLYNN_JOB_ID", json_string(j->id));
    if (json_is_true(json_object_get(req, "release_env")))
        json_object_update(env, json_object_get(rel, "env"));
    json_object_update(env, json_object_get(req, "env"));
    json_t *md = json_pack("{s:s,s:O,s:s}", "flynn-controller.app", app_id,
                           "flynn-controller.app_name", json_object_get(app, "name"),
                           "flynn-controller.release", rel_id);
    json_object_update(md, json_object_get(req, "meta"));
    json_t *root = release_root(s, rel);
    const char *a0 = json_string_value(json_array_get(args, 0));
    if (json_object_get(root, "slug") && (!a0 || strcmp(a0, "/runner/init"))) {
        /* slug releases run commands through the slug runner, as Flynn's
         * image entrypoint does (`flynn run bash` is /runner/init bash);
         * the CLIs prefix it themselves for releases with meta.git */
        json_t *full = json_pack("[s]", "/runner/init");
        json_array_extend(full, args);
        args = full;
    } else {
        json_incref(args);
    }
    json_t *spec = json_pack("{s:s,s:O,s:{s:O,s:o},s:o}", "id", j->id, "metadata", md,
                             "config", "args", args, "env", env, "root", root);
    json_t *res = json_object_get(req, "resources");
    if (json_is_object(res))
        json_object_set(spec, "resources", res);
    if (json_is_true(json_object_get(req, "disable_log"))) /* `flynn run` without -d/-l */
        json_object_set_new(json_object_get(spec, "config"), "disable_log", json_true());
    if (attach) { /* the client's stdin, and its terminal when it has one */
        json_t *cfg = json_object_get(spec, "config");
        json_object_set_new(cfg, "stdin", json_true());
        json_object_set_new(cfg, "tty", json_boolean(json_is_true(json_object_get(req, "tty"))));
    }
    j->rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:o}", "id", j->id, "uuid", j->uuid,
                       "host_id", h->id, "app", app_id, "release", rel_id, "type", "", "args",
                       args, "meta", md);
    record(s, j->rec, "starting");
    log_info("scheduler: running one-off job %s on %s", j->id, h->id);
    cleanup_free char *path = xasprintf("/host/jobs/%s", j->id);
    host_call(h, EVHTTP_REQ_PUT, path, spec, on_put, xstrdup(j->uuid));
    json_t *stub = json_pack("{s:s,s:s,s:s,s:s,s:O}", "id", j->id, "uuid", j->uuid, "host_id",
                             h->id, "release", rel_id, "args", args);
    json_decref(args);
    return stub;
}

static void on_delete(struct host *h, int status, json_t *body, void *arg)
{
    struct sjob *j = job_find(h->s, arg);
    free(arg);
    if (!j || status == 200 || status < 0)
        return;
    if (status == 404) {
        /* the host no longer has it */
        record(h->s, j->rec, "down");
        job_unlink_free(j);
    } else {
        /* the stop did not get through: the next reconcile decides again */
        log_warn("scheduler: stopping %s failed (%d)", j->id, status);
        j->stop_requested = false;
        j->st = j->up_us ? JS_UP : JS_STARTING;
    }
    scheduler_poke(h->s);
}

static void send_delete(struct sjob *j)
{
    cleanup_free char *path = xasprintf("/host/jobs/%s", j->id);
    host_call(j->h, EVHTTP_REQ_DELETE, path, NULL, on_delete, xstrdup(j->uuid));
}

static void drain_done(evutil_socket_t fd, short what, void *arg)
{
    send_delete(arg);
}

/* A job that serves a route leaves the routers' tables first (recording
 * "stopping" updates the feed at once) and is sent SIGTERM DRAIN_MS later,
 * so no new request reaches a process that is going away. */
static void stop_job(struct sjob *j)
{
    if (j->stop_requested)
        return;
    bool routed = j->st == JS_UP && j->service;
    j->stop_requested = true;
    j->st = JS_STOPPING;
    record(j->s, j->rec, "stopping");
    log_info("scheduler: stopping job %s", j->id);
    if (routed) {
        if (!j->check_timer)
            j->check_timer = evtimer_new(j->s->c->base, drain_done, j);
        else {
            event_del(j->check_timer);
            event_assign(j->check_timer, j->s->c->base, -1, 0, drain_done, j);
        }
        timer_ms(j->check_timer, DRAIN_MS);
        return;
    }
    send_delete(j);
}

int scheduler_stop_job(struct scheduler *s, const json_t *job, struct err **err)
{
    if (!s)
        return err_makex(err, EINVAL, "no hosts are configured");
    struct sjob *j = job_find(s, jstr(job, "uuid"));
    if (!j)
        return err_makex(err, ENOENT, "job is not running");
    /* a killed formation job is replaced by the next reconcile, as in Flynn;
     * one that serves a route leaves the routers first, as in a deploy (a
     * second kill of a job on its way out stops it at once) */
    if (j->stop_requested)
        send_delete(j);
    else
        stop_job(j);
    scheduler_poke(s);
    return 0;
}

/* Up longest first (ties: by UUID). */
static int cmp_job_age(const void *a, const void *b)
{
    const struct sjob *x = *(struct sjob *const *)a, *y = *(struct sjob *const *)b;
    if (x->up_us != y->up_us)
        return x->up_us < y->up_us ? -1 : 1;
    return strcmp(x->uuid, y->uuid);
}

json_t *scheduler_service_backends(struct scheduler *s)
{
    json_t *m = json_object();
    size_t n = 0, k = 0;
    for (struct sjob *j = s ? s->jobs : NULL; j; j = j->next)
        n++;
    struct sjob **up = xcalloc(n ? n : 1, sizeof(*up));
    for (struct sjob *j = s ? s->jobs : NULL; j; j = j->next)
        if (j->st == JS_UP && j->service && j->ip && j->port)
            up[k++] = j;
    qsort(up, k, sizeof(*up), cmp_job_age);
    for (size_t i = 0; i < k; i++) {
        json_t *l = json_object_get(m, up[i]->service);
        if (!l)
            json_object_set_new(m, up[i]->service, l = json_array());
        json_array_append_new(l, json_sprintf("%s:%d", up[i]->ip, up[i]->port));
    }
    free(up);
    return m;
}

/* ---------- reconcile ---------- */

static int count_jobs(struct scheduler *s, const char *app, const char *rel, const char *type,
                      bool up_only)
{
    int n = 0;
    for (struct sjob *j = s->jobs; j; j = j->next)
        if (!j->oneoff && !strcmp(j->app, app) && !strcmp(j->release, rel) &&
            (!type || !strcmp(j->type, type)) && !j->stop_requested &&
            (!up_only || j->st == JS_UP))
            n++;
    return n;
}

static bool any_host_ready(struct scheduler *s)
{
    for (struct host *h = s->hosts; h; h = h->next)
        if (h->st == H_READY)
            return true;
    return false;
}

/* Marks pending scale requests of a converged formation complete. */
static void complete_scale_requests(struct scheduler *s, const char *app, const char *rel)
{
    json_t *l = store_list(s->c->store, STORE_SCALE_REQUEST, app, rel, NULL);
    size_t i;
    json_t *sr;
    json_array_foreach(l, i, sr)
    {
        const char *st = jstr(sr, "state");
        if (!st || strcmp(st, "pending"))
            continue;
        json_object_set_new(sr, "state", json_string("complete"));
        json_object_set_new(sr, "updated_at", jnow());
        struct err *e = NULL;
        if (api_save(s->c, STORE_SCALE_REQUEST, jstr(sr, "id"), sr, app, "scale_request", &e) < 0) {
            log_error("scheduler: scale request: %s", e->msg);
            err_free(e);
        }
    }
    json_decref(l);
}

static void reconcile_formation(struct scheduler *s, const json_t *f)
{
    const char *app_id = jstr(f, "app"), *rel_id = jstr(f, "release");
    json_t *app = store_get(s->c->store, STORE_APP, app_id, NULL);
    json_t *rel = store_get(s->c->store, STORE_RELEASE, rel_id, NULL);
    if (!app || !rel)
        goto out;
    json_t *procs = json_object_get(f, "processes");
    json_t *rprocs = json_object_get(rel, "processes");
    bool converged = true;
    const char *type;
    json_t *n;
    json_object_foreach(procs, type, n)
    {
        int want = (int)json_integer_value(n);
        if (!json_object_get(rprocs, type))
            want = 0;
        bool omni = json_is_true(
            json_object_get(json_object_get(rprocs, type), "omni"));
        /* an omni type runs its count on every host: reconcile host by host */
        int nready = 0;
        for (struct host *h = s->hosts; h; h = h->next)
            nready += h->st == H_READY;
        for (struct host *h = omni ? s->hosts : NULL;; h = h ? h->next : NULL) {
            if (omni && !h)
                break;
            if (omni && h->st != H_READY) {
                /* keep what runs there until the host is back or given up */
                for (struct sjob *j = s->jobs; j; j = j->next)
                    if (j->h == h && !j->oneoff && !strcmp(j->app, app_id) &&
                        !strcmp(j->release, rel_id) && !strcmp(j->type, type))
                        j->mark = s->pass;
                continue;
            }
            int have = 0;
            /* claim the jobs of this formation type, newest first in the list */
            for (struct sjob *j = s->jobs; j; j = j->next) {
                if (j->oneoff || strcmp(j->app, app_id) || strcmp(j->release, rel_id) ||
                    strcmp(j->type, type) || (omni && j->h != h))
                    continue;
                j->mark = s->pass;
                if (j->stop_requested)
                    continue;
                if (have < want)
                    have++;
                else
                    stop_job(j);
            }
            if (have < want) {
                cleanup_free char *key = backoff_key(app_id, rel_id, type);
                struct backoff *b = backoff_get(s, key, false);
                if (!b || b->not_before_us <= now_us())
                    for (int i = have; i < want; i++)
                        start_job(s, app, rel, type, h);
            }
            if (!omni)
                break;
        }
        if (count_jobs(s, app_id, rel_id, type, true) != want * (omni ? nready : 1))
            converged = false;
    }
    /* jobs of types the formation no longer lists are claimed by nobody and
     * stopped by the caller */
    if (converged)
        complete_scale_requests(s, app_id, rel_id);
out:
    json_decref(app);
    json_decref(rel);
}

static void deploy_step(struct scheduler *s, struct deploy *d);

static void reconcile(struct scheduler *s)
{
    if (!any_host_ready(s))
        return;
    s->pass++;
    json_t *fs = store_list(s->c->store, STORE_FORMATION, NULL, NULL, NULL);
    size_t i;
    json_t *f;
    json_array_foreach(fs, i, f) reconcile_formation(s, f);
    json_decref(fs);
    for (struct sjob *j = s->jobs; j; j = j->next)
        if (j->mark != s->pass && !j->oneoff && !j->stop_requested && j->h->st == H_READY)
            stop_job(j);
    for (struct deploy *d = s->deploys, *next; d; d = next) {
        next = d->next;
        deploy_step(s, d);
    }
}

static void poke_cb(evutil_socket_t fd, short what, void *arg)
{
    reconcile(arg);
}

/* A host that stays unreachable loses its jobs: they are recorded as
 * crashed and the reconcile places replacements on the other hosts. If it
 * comes back, its listing re-adopts them and the extras are stopped. */
static void drop_lost_hosts(struct scheduler *s, long long now)
{
    for (struct host *h = s->hosts; h; h = h->next) {
        if (h->st == H_READY || !h->lost_since_us || h->jobs_dropped ||
            now - h->lost_since_us < HOST_LOST_US)
            continue;
        h->jobs_dropped = true;
        log_warn("scheduler: host %s unreachable for %llds: giving up its jobs",
                 h->id ? h->id : h->url, (now - h->lost_since_us) / 1000000);
        for (struct sjob *j = s->jobs, *next; j; j = next) {
            next = j->next;
            if (j->h != h)
                continue;
            json_object_set_new(j->rec, "host_error", json_string("host unreachable"));
            record(s, j->rec, j->stop_requested ? "down" : "crashed");
            job_unlink_free(j);
        }
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct scheduler *s = arg;
    long long now = now_us();
    drop_lost_hosts(s, now);
    if (++s->ticks % 6 == 0) /* every 3 s */
        for (struct host *h = s->hosts; h; h = h->next)
            if (h->st == H_READY)
                host_call(h, EVHTTP_REQ_GET, "/host/jobs", NULL, on_relist, NULL);
    for (struct sjob *j = s->jobs; j; j = j->next) {
        if (j->st != JS_UP || now - j->up_us < BACKOFF_RESET_US)
            continue;
        cleanup_free char *key = backoff_key(j->app, j->release, j->type);
        struct backoff *b = backoff_get(s, key, false);
        if (b)
            b->crashes = 0;
    }
    reconcile(s);
}

/* ---------- deployments ---------- */

static void deploy_remove(struct scheduler *s, struct deploy *d)
{
    struct deploy **pp = &s->deploys;
    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp)
        *pp = d->next;
    free(d);
}

/* Sets a formation's processes in its own transaction. */
static int set_formation(struct scheduler *s, const char *app, const char *rel,
                         const json_t *procs)
{
    struct err *e = NULL;
    json_t *f = NULL;
    if (api_begin(s->c, &e) == 0) {
        f = api_formation_set(s->c, app, rel, procs, NULL, &e);
        if (!f)
            api_rollback(s->c);
        else if (api_commit(s->c, &e) < 0) {
            json_decref(f);
            f = NULL;
        }
    }
    if (!f) {
        log_error("scheduler: set formation: %s", e->msg);
        err_free(e);
        return -1;
    }
    json_decref(f);
    scheduler_poke(s); /* the next pass starts or stops its jobs */
    return 0;
}

static void deploy_finish(struct scheduler *s, struct deploy *d, json_t *dep, const char *status,
                          const char *error)
{
    struct err *e = NULL;
    const char *app = jstr(dep, "app"), *old = jstr(dep, "old_release"),
               *new = jstr(dep, "new_release");
    if (!strcmp(status, "failed")) {
        /* restore the old formation, drop the new one */
        if (old)
            set_formation(s, app, old, json_object_get(dep, "processes"));
        cleanup_free char *fid = xasprintf("%s:%s", app, new);
        if (api_begin(s->c, &e) == 0) {
            if (store_del(s->c->store, STORE_FORMATION, fid, &e) < 0 && e->errnum != ENOENT) {
                api_rollback(s->c);
            } else {
                err_free(e);
                e = NULL;
                json_t *ev = json_pack("{s:{},s:s}", "processes", "release", new);
                api_event(s->c, app, "scale", fid, ev, NULL);
                json_decref(ev);
                api_commit(s->c, &e);
            }
        }
        err_free(e);
        e = NULL;
    } else if (old) {
        json_t *zero = json_object();
        const char *t;
        json_t *n;
        json_object_foreach(json_object_get(dep, "processes"), t, n)
            json_object_set_new(zero, t, json_integer(0));
        set_formation(s, app, old, zero);
        json_decref(zero);
    }
    if (api_deployment_status(s->c, dep, status, error, &e) < 0) {
        log_error("scheduler: deployment %s: %s", d->id, e->msg);
        err_free(e);
    }
    log_info("scheduler: deployment %s %s%s%s", d->id, status, error ? ": " : "",
             error ? error : "");
    deploy_remove(s, d);
    scheduler_poke(s);
}

static int proc_count(const json_t *f, const char *type)
{
    return (int)json_integer_value(json_object_get(json_object_get(f, "processes"), type));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* How many jobs a count of 1 means: the number of synced hosts for an omni
 * process type, else 1. */
static int per_host_factor(struct scheduler *s, const json_t *rel, const char *type)
{
    if (!json_is_true(json_object_get(json_object_get(json_object_get(rel, "processes"), type),
                                      "omni")))
        return 1;
    int n = 0;
    for (struct host *h = s->hosts; h; h = h->next)
        n += h->st == H_READY;
    return n;
}

static void deploy_step(struct scheduler *s, struct deploy *d)
{
    json_t *dep = store_get(s->c->store, STORE_DEPLOYMENT, d->id, NULL);
    if (!dep || json_object_get(dep, "finished_at")) {
        json_decref(dep);
        deploy_remove(s, d);
        return;
    }
    const char *app = jstr(dep, "app"), *old = jstr(dep, "old_release"),
               *new = jstr(dep, "new_release");
    json_t *rel = store_get(s->c->store, STORE_RELEASE, new, NULL);
    json_t *target = json_object(); /* old counts of the types the new release has */
    json_t *newf = NULL, *oldf = NULL;
    const char **types = NULL;
    if (!rel) {
        deploy_finish(s, d, dep, "failed", "release not found");
        goto out;
    }
    long long timeout = json_integer_value(json_object_get(dep, "deploy_timeout"));
    if (timeout <= 0)
        timeout = 120;
    if (!d->deadline_us) {
        d->deadline_us = now_us() + timeout * 1000000;
        struct err *e = NULL;
        if (api_deployment_status(s->c, dep, "running", NULL, &e) < 0) {
            log_error("scheduler: deployment %s: %s", d->id, e->msg);
            err_free(e);
        }
    }
    if (d->downs > MAX_DEPLOY_DOWNS) {
        deploy_finish(s, d, dep, "failed", "too many jobs of the new release went down");
        goto out;
    }
    if (now_us() > d->deadline_us) {
        deploy_finish(s, d, dep, "failed", "timed out waiting for the new jobs to come up");
        goto out;
    }
    const char *t;
    json_t *n;
    size_t nt = 0;
    json_object_foreach(json_object_get(dep, "processes"), t, n)
    {
        if (json_object_get(json_object_get(rel, "processes"), t)) {
            json_object_set(target, t, n);
            types = xrealloc(types, (nt + 1) * sizeof(*types));
            types[nt++] = t;
        }
    }
    if (nt)
        qsort(types, nt, sizeof(*types), cmp_str);
    const char *strategy = jstr(dep, "strategy");
    bool any_omni = false;
    for (size_t i = 0; i < nt; i++)
        any_omni |= per_host_factor(s, rel, types[i]) != 1;
    bool stepwise = !any_omni && strategy && (!strcmp(strategy, "one-by-one") ||
                                 !strcmp(strategy, "in-batches") ||
                                 !strcmp(strategy, "discoverd-meta") ||
                                 !strcmp(strategy, "one-down-one-up"));
    bool down_first = strategy && !strcmp(strategy, "one-down-one-up");
    int batch = 1;
    if (strategy && !strcmp(strategy, "in-batches")) {
        batch = (int)json_integer_value(json_object_get(dep, "deploy_batch_size"));
        if (batch <= 0) /* default: the number of hosts */
            for (struct host *h = s->hosts; h; h = h->next)
                batch++;
    }
    if (!stepwise) {
        if (!d->scaled_new) {
            if (set_formation(s, app, new, target) == 0)
                d->scaled_new = true;
            goto out;
        }
        for (size_t i = 0; i < nt; i++)
            if (count_jobs(s, app, new, types[i], true) <
                (int)json_integer_value(json_object_get(target, types[i])) *
                    per_host_factor(s, rel, types[i]))
                goto out; /* still waiting */
        deploy_finish(s, d, dep, "complete", NULL);
        goto out;
    }
    /* stepwise, per type in sorted order: new +batch (wait until up), old -batch
     * (wait until stopped), alternating so the total stays at the target
     * (one-down-one-up goes one below it instead of one above) */
    newf = api_formation_get(s->c, app, new, NULL);
    oldf = old ? api_formation_get(s->c, app, old, NULL) : NULL;
    for (size_t i = 0; i < nt; i++) {
        const char *ty = types[i];
        int want = (int)json_integer_value(json_object_get(target, ty));
        int cur_new = newf ? proc_count(newf, ty) : 0;
        int cur_old = oldf ? proc_count(oldf, ty) : 0;
        if (count_jobs(s, app, new, ty, true) < cur_new)
            goto out; /* wait for the new jobs */
        if (old && count_jobs(s, app, old, ty, false) > cur_old)
            goto out; /* wait for the old ones to stop */
        json_t *p = NULL;
        const char *which = NULL;
        bool surplus = down_first ? cur_new + cur_old >= want : cur_new + cur_old > want;
        if (old && cur_old > 0 && (surplus || cur_new >= want)) {
            int n = cur_old < batch ? cur_old : batch;
            p = json_deep_copy(json_object_get(oldf, "processes"));
            json_object_set_new(p, ty, json_integer(cur_old - n));
            which = old;
        } else if (cur_new < want) {
            int n = want - cur_new < batch ? want - cur_new : batch;
            p = newf ? json_deep_copy(json_object_get(newf, "processes")) : json_object();
            json_object_set_new(p, ty, json_integer(cur_new + n));
            which = new;
        }
        if (p) {
            set_formation(s, app, which, p);
            json_decref(p);
            d->deadline_us = now_us() + timeout * 1000000; /* each step has its own timeout */
            goto out;
        }
    }
    deploy_finish(s, d, dep, "complete", NULL);
out:
    free(types);
    json_decref(newf);
    json_decref(oldf);
    json_decref(target);
    json_decref(rel);
    json_decref(dep);
}

void scheduler_deploy(struct scheduler *s, const char *deployment_id)
{
    if (!s)
        return;
    for (struct deploy *d = s->deploys; d; d = d->next)
        if (!strcmp(d->id, deployment_id))
            return;
    struct deploy *d = xcalloc(1, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", deployment_id);
    d->next = s->deploys;
    s->deploys = d;
    scheduler_poke(s);
}

/* ---------- lifecycle ---------- */

struct scheduler *scheduler_new(struct controller *c)
{
    struct scheduler *s = xcalloc(1, sizeof(*s));
    s->c = c;
    s->poke_ev = evtimer_new(c->base, poke_cb, s);
    s->tick_ev = event_new(c->base, -1, EV_PERSIST, tick_cb, s);
    return s;
}

int scheduler_add_host(struct scheduler *s, const char *url, struct err **err)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    if (!u || !scheme || strcmp(scheme, "http") || !host) {
        if (u)
            evhttp_uri_free(u);
        return err_makex(err, EINVAL, "host URL '%s' must be http://HOST:PORT", url);
    }
    struct host *h = xcalloc(1, sizeof(*h));
    h->s = s;
    h->url = xstrdup(url);
    h->addr = xstrdup(host);
    h->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 1113;
    evhttp_uri_free(u);
    strbuf_init(&h->sbuf, 0);
    h->conn = evhttp_connection_base_new(s->c->base, NULL, h->addr, (ev_uint16_t)h->port);
    evhttp_connection_set_timeout(h->conn, 30);
    evhttp_connection_set_retries(h->conn, 0);
    h->retry = evtimer_new(s->c->base, host_retry_cb, h);
    struct host **pp = &s->hosts;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    return 0;
}

void scheduler_start(struct scheduler *s)
{
    if (!s)
        return;
    /* resume deployments a previous run left unfinished */
    json_t *l = store_list(s->c->store, STORE_DEPLOYMENT, NULL, NULL, NULL);
    size_t i;
    json_t *d;
    json_array_foreach(l, i, d) if (!json_object_get(d, "finished_at"))
        scheduler_deploy(s, jstr(d, "id"));
    json_decref(l);
    for (struct host *h = s->hosts; h; h = h->next)
        host_sync(h);
    timer_ms(s->tick_ev, TICK_MS);
}

void scheduler_free(struct scheduler *s)
{
    if (!s)
        return;
    while (s->jobs)
        job_unlink_free(s->jobs);
    for (struct host *h = s->hosts, *next; h; h = next) {
        next = h->next;
        if (h->sconn)
            evhttp_connection_free(h->sconn);
        evhttp_connection_free(h->conn);
        event_free(h->retry);
        strbuf_release(&h->sbuf);
        free(h->url);
        free(h->addr);
        free(h->id);
        free(h);
    }
    while (s->calls) {
        struct call *c = s->calls;
        call_unlink(c);
        if (c->cb == on_put || c->cb == on_delete)
            free(c->arg);
        else if (c->raw_cb)
            c->raw_cb(-1, NULL, 0, c->arg); /* lets the owner free its state */
        free(c);
    }
    while (s->backoffs) {
        struct backoff *b = s->backoffs;
        s->backoffs = b->next;
        free(b->key);
        free(b);
    }
    while (s->deploys)
        deploy_remove(s, s->deploys);
    event_free(s->poke_ev);
    event_free(s->tick_ev);
    free(s);
}
