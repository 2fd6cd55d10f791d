/*
 * Attached one-off jobs (`flynn run`, flynn-api.md §7.2): POST
 * /apps/:app/jobs with "Upgrade: flynn-attach/0".
 *
 *  1. the job is placed as a detached one is, with config.stdin and
 *     config.tty (scheduler_run_attached); the host's shim holds it back
 *     until its client attaches;
 *  2. once the host took it, POST /attach on the host (flynn-api.md §11)
 *     with the client's window size, on a connection of our own;
 *  3. when the host answers 101 and the state byte ATTACH_SUCCESS, the
 *     client gets its 101 (httpd_upgrade) and from then on bytes are relayed
 *     both ways unchanged. The host side is only watched for its last frame
 *     (EXIT or ERROR), so that the client leaving after it is not taken for
 *     a client that went away;
 *  4. a client that goes away before the job's end stops the job (as
 *     Flynn's controller kills it); the host closing ends the relay once
 *     the client has everything.
 *
 * Failures before the 101 answer the client with a JSON error (the job, if
 * placed, is stopped). Each attach in progress is on c->attaches, so
 * shutdown can end them (api_attach_free_all).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "api.h"
#include "log.h"
#include "scheduler.h"
#include "strbuf.h"
#include "xalloc.h"

#define ATTACH_PROTOCOL "flynn-attach/0"
#define SETUP_TIMEOUT_SECS 30
#define RELAY_HIGH (1 << 20) /* queued towards one side: stop reading the other */
#define HOST_HEADER_MAX (64 << 10)

enum attach_step { PLACING, HOST_HEADERS, HOST_STATE, RELAYING };

struct api_attach {
    struct api_attach *next;
    struct controller *c;
    struct httpd_req *req; /* the client's request until its 101 */
    enum attach_step step;
    char uuid[37];
    char *job_id, *host_id;
    json_t *attach_req; /* AttachReq for the host */
    struct bufferevent *host, *cli;
    struct event *timer;
    /* the host's frames, followed to see the last one */
    unsigned char hdr[6];
    int hlen;
    uint32_t skip;
    bool ended;   /* EXIT or ERROR went by: the job is over */
    bool closing; /* flushing to the client, then free */
};

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void attach_free(struct api_attach *a)
{
    struct api_attach **pp = &a->c->attaches;
    while (*pp && *pp != a)
        pp = &(*pp)->next;
    if (*pp)
        *pp = a->next;
    if (a->step == PLACING)
        scheduler_run_cancel(a->c->sched, a->uuid);
    if (a->host)
        bufferevent_free(a->host);
    if (a->cli)
        bufferevent_free(a->cli);
    if (a->timer)
        event_free(a->timer);
    json_decref(a->attach_req);
    free(a->job_id);
    free(a->host_id);
    free(a);
}

static void stop_job(struct api_attach *a)
{
    json_t *j = json_pack("{s:s}", "uuid", a->uuid);
    struct err *e = NULL;
    if (scheduler_stop_job(a->c->sched, j, &e) < 0) {
        log_debug("attach %s: stop: %s", a->job_id, e->msg);
        err_free(e);
    }
    json_decref(j);
}

/* Before the 101: answers the client with an error, stops the job. */
static void setup_failed(struct api_attach *a, bool placed, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void setup_failed(struct api_attach *a, bool placed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    log_warn("attach to job %s: %s", a->job_id, msg);
    httpd_reply_error(a->req, 500, "unknown_error", "attach to job %s failed: %s", a->job_id, msg);
    a->req = NULL;
    if (placed)
        stop_job(a);
    attach_free(a);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct api_attach *a = arg;
    setup_failed(a, true, "the host did not answer in %d s", SETUP_TIMEOUT_SECS);
}

/* Follows the frames going to the client (attach.h in src/host). */
static void track(struct api_attach *a, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in), pos = 0;
    while (pos < len && !a->ended) {
        if (a->skip) {
            size_t k = len - pos < a->skip ? len - pos : a->skip;
            pos += k;
            a->skip -= (uint32_t)k;
            continue;
        }
        struct evbuffer_ptr p;
        evbuffer_ptr_set(in, &p, pos, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(in, &p, &a->hdr[a->hlen++], 1);
        pos++;
        int type = a->hdr[0], need = type == 3 ? 6 : type >= 2 && type <= 6 ? 5 : 1;
        if (a->hlen < need)
            continue;
        if (type == 3) {
            a->skip = get32(a->hdr + 2);
        } else if (type == 2) {
            a->skip = get32(a->hdr + 1);
            a->ended = true;
        } else if (type == 5) {
            a->ended = true;
        }
        a->hlen = 0;
    }
}

static void relay_event(struct bufferevent *bev, short what, void *arg);

static void discard(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void lingered(struct bufferevent *bev, short what, void *arg)
{
    attach_free(arg);
}

/* All is written: a lingering close, since closing with unread bytes from
 * the client would reset the connection, and a reset can drop what is still
 * in flight. The client closes once it has the last frame (or in 2 s). */
static void flushed(struct bufferevent *bev, void *arg)
{
    struct api_attach *a = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)))
        return;
    if (shutdown(bufferevent_getfd(bev), SHUT_WR) < 0) {
        attach_free(a);
        return;
    }
    struct timeval tv = {2, 0};
    bufferevent_set_timeouts(bev, &tv, NULL);
    bufferevent_setcb(bev, discard, NULL, lingered, a);
    bufferevent_enable(bev, EV_READ);
}

/* The host is done: the client gets what is queued, then the end. */
static void host_closed(struct api_attach *a)
{
    bufferevent_free(a->host);
    a->host = NULL;
    a->closing = true;
    bufferevent_disable(a->cli, EV_READ);
    bufferevent_setwatermark(a->cli, EV_WRITE, 0, 0);
    bufferevent_setcb(a->cli, NULL, flushed, relay_event, a);
    flushed(a->cli, a);
}

static void relay_read(struct bufferevent *bev, void *arg)
{
    struct api_attach *a = arg;
    bool from_host = bev == a->host;
    struct bufferevent *to = from_host ? a->cli : a->host;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (from_host)
        track(a, in);
    bufferevent_write_buffer(to, in);
    if (evbuffer_get_length(bufferevent_get_output(to)) > RELAY_HIGH)
        bufferevent_disable(bev, EV_READ);
}

/* The other side drained below its low mark: read again. */
static void relay_write(struct bufferevent *bev, void *arg)
{
    struct api_attach *a = arg;
    if (a->closing)
        return;
    bufferevent_enable(bev == a->host ? a->cli : a->host, EV_READ);
}

static void relay_event(struct bufferevent *bev, short what, void *arg)
{
    struct api_attach *a = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (bev == a->host && !a->closing) {
        host_closed(a);
        return;
    }
    if (bev == a->cli && !a->ended) {
        log_info("attach %s: the client went away: stopping the job", a->job_id);
        stop_job(a);
    }
    attach_free(a);
}

/* The host says the attach is live: the client gets its 101. */
static void go_live(struct api_attach *a)
{
    struct strbuf early = STRBUF_INIT;
    struct err *e = NULL;
    int fd = httpd_upgrade(a->req, ATTACH_PROTOCOL, &early, &e);
    a->req = NULL;
    if (fd < 0) {
        log_warn("attach %s: %s: stopping the job", a->job_id, e->msg);
        err_free(e);
        strbuf_release(&early);
        stop_job(a);
        attach_free(a);
        return;
    }
    event_del(a->timer);
    a->step = RELAYING;
    a->cli = bufferevent_socket_new(a->c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setwatermark(a->cli, EV_WRITE, RELAY_HIGH / 2, 0);
    bufferevent_setwatermark(a->host, EV_WRITE, RELAY_HIGH / 2, 0);
    bufferevent_setcb(a->cli, relay_read, relay_write, relay_event, a);
    bufferevent_setcb(a->host, relay_read, relay_write, relay_event, a);
    if (early.len)
        bufferevent_write(a->host, early.buf, early.len);
    strbuf_release(&early);
    bufferevent_enable(a->cli, EV_READ | EV_WRITE);
    bufferevent_enable(a->host, EV_READ | EV_WRITE);
    log_info("attach %s: live", a->job_id);
    /* frames that came with the state byte */
    if (evbuffer_get_length(bufferevent_get_input(a->host)))
        relay_read(a->host, a);
}

/* The host's answer to POST /attach: headers, then state bytes. */
static void host_read(struct bufferevent *bev, void *arg)
{
    struct api_attach *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (a->step == HOST_HEADERS) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
            if (evbuffer_get_length(in) > HOST_HEADER_MAX)
                setup_failed(a, true, "the host's answer is too long");
            return;
        }
        size_t hl = (size_t)end.pos + 4;
        cleanup_free char *head = xstrndup((const char *)evbuffer_pullup(in, (ev_ssize_t)hl), hl);
        int status = 0;
        if (sscanf(head, "HTTP/1.%*d %d", &status) != 1)
            status = 0;
        if (status != 101) {
            /* an HTTP error: its JSON message, once the body is in */
            const char *cl = strcasestr(head, "\r\nContent-Length:");
            size_t want = cl ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
            if (evbuffer_get_length(in) < hl + want)
                return;
            evbuffer_drain(in, hl);
            cleanup_free char *body =
                xstrndup((const char *)evbuffer_pullup(in, (ev_ssize_t)want), want);
            json_t *j = json_loads(body, 0, NULL);
            const char *m = jstr(j, "message");
            setup_failed(a, true, "host answered %d: %s", status, m ? m : body);
            json_decref(j);
            return;
        }
        evbuffer_drain(in, hl);
        a->step = HOST_STATE;
    }
    while (a->step == HOST_STATE && evbuffer_get_length(in)) {
        unsigned char *p = evbuffer_pullup(in, -1);
        size_t n = evbuffer_get_length(in);
        if (p[0] == 0) { /* success */
            evbuffer_drain(in, 1);
            go_live(a);
            return;
        }
        if (p[0] == 1) { /* waiting for the job to start */
            evbuffer_drain(in, 1);
            continue;
        }
        if (p[0] == 2 && n >= 5 && n >= 5 + (size_t)get32(p + 1)) {
            setup_failed(a, true, "%.*s", (int)get32(p + 1), (const char *)p + 5);
            return;
        }
        if (p[0] > 2) {
            setup_failed(a, true, "the host sent attach state %d", p[0]);
            return;
        }
        return; /* more of the error message to come */
    }
}

static void host_event(struct bufferevent *bev, short what, void *arg)
{
    struct api_attach *a = arg;
    if (what & BEV_EVENT_CONNECTED) {
        cleanup_free char *body = json_dumps(a->attach_req, JSON_COMPACT);
        const char *addr = NULL;
        int port = 0;
        scheduler_host_addr(a->c->sched, a->host_id, &addr, &port);
        evbuffer_add_printf(bufferevent_get_output(bev),
                            "POST /attach HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: %s\r\n"
                            "Connection: Upgrade\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            addr ? addr : "", port, ATTACH_PROTOCOL, strlen(body), body);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        setup_failed(a, true, "the connection to the host %s",
                     what & BEV_EVENT_EOF ? "closed" : "failed");
}

static void on_placed(const char *err, void *arg)
{
    struct api_attach *a = arg;
    if (err) {
        setup_failed(a, true, "%s", err);
        return;
    }
    const char *addr = NULL;
    int port = 0;
    if (scheduler_host_addr(a->c->sched, a->host_id, &addr, &port) < 0) {
        setup_failed(a, true, "host '%s' is gone", a->host_id);
        return;
    }
    a->step = HOST_HEADERS;
    a->host = bufferevent_socket_new(a->c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(a->host, host_read, NULL, host_event, a);
    bufferevent_enable(a->host, EV_READ | EV_WRITE);
    /* host addresses are literal IPs or /etc/hosts names: no DNS on the loop */
    if (bufferevent_socket_connect_hostname(a->host, NULL, AF_UNSPEC, addr, port) < 0)
        setup_failed(a, true, "connect to host %s:%d failed", addr, port);
}

void api_jobs_attach(struct httpd_req *r, struct controller *c, const json_t *app,
                     const json_t *rel, json_t *body)
{
    struct api_attach *a = xcalloc(1, sizeof(*a));
    a->c = c;
    a->req = r;
    a->next = c->attaches;
    c->attaches = a;
    a->timer = evtimer_new(c->base, on_timeout, a);
    struct err *e = NULL;
    json_t *job = scheduler_run_attached(c->sched, app, rel, body, on_placed, a, &e);
    if (!job) {
        a->req = NULL;
        attach_free(a);
        api_reply_err(r, e, "args");
        return;
    }
    snprintf(a->uuid, sizeof(a->uuid), "%s", jstr(job, "uuid"));
    a->job_id = xstrdup(jstr(job, "id"));
    a->host_id = xstrdup(jstr(job, "host_id"));
    json_decref(job);
    json_int_t rows = 0, cols = 0;
    if (json_is_true(json_object_get(body, "tty"))) {
        rows = json_integer_value(json_object_get(body, "tty_lines"));
        cols = json_integer_value(json_object_get(body, "tty_columns"));
    }
    a->attach_req = json_pack("{s:s,s:i,s:I,s:I}", "job_id", a->job_id, "flags",
                              1 | 2 | 4 | 16, /* stdout, stderr, stdin, stream */
                              "height", rows > 0 && rows < 65536 ? rows : 0, "width",
                              cols > 0 && cols < 65536 ? cols : 0);
    struct timeval tv = {SETUP_TIMEOUT_SECS, 0};
    evtimer_add(a->timer, &tv);
    log_info("attach %s: placing the job", a->job_id);
}

void api_attach_free_all(struct controller *c)
{
    while (c->attaches) {
        struct api_attach *a = c->attaches;
        if (a->req) { /* still HTTP: answer it */
            httpd_reply_error(a->req, 503, "service_unavailable", "the controller is stopping");
            a->req = NULL;
        }
        attach_free(a);
    }
}
