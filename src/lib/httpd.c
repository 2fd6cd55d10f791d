#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define MAX_PARAMS 8
#define MAX_SEGS 32

struct detached;

struct httpd {
    struct evhttp *http;
    struct event_base *base;
    const struct httpd_route *routes;
    size_t nroutes;
    void *arg;
    struct detached *detached; /* upgraded connections evhttp still holds */
};

/* An upgraded connection's husk: evhttp's connection object, now on a
 * placeholder socket, freed from the loop (not from inside evhttp's own
 * callbacks) or by httpd_free. */
struct detached {
    struct detached *next;
    struct httpd *srv;
    struct evhttp_connection *conn;
    struct event *ev;
};

struct httpd_req {
    struct evhttp_request *ev;
    struct httpd *srv;
    char *path; /* decoded path */
    char *segs_buf;
    const char *pnames[MAX_PARAMS];
    char *pvals[MAX_PARAMS];
    int nparams;
    struct evkeyvalq query;
    int have_query;
    char *body;
    size_t body_len;
    int body_read;
};

struct httpd_stream {
    struct httpd_req *req;
    struct evhttp_connection *conn;
    httpd_stream_close_cb on_close;
    void *arg;
};

static void req_free(struct httpd_req *r)
{
    if (!r)
        return;
    free(r->path);
    for (int i = 0; i < r->nparams; i++)
        free(r->pvals[i]);
    if (r->have_query)
        evhttp_clear_headers(&r->query);
    free(r->body);
    free(r);
}

/* Splits a path into at most MAX_SEGS segments, in place. */
static int split(char *p, char **segs)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(p, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (n == MAX_SEGS)
            return -1;
        segs[n++] = s;
    }
    return n;
}

/* Matches pattern against the request's raw (encoded) path segments; on a
 * match fills the request's params with decoded values. */
static int match(struct httpd_req *r, const char *pattern, char **segs, int nsegs)
{
    char pat[256];
    snprintf(pat, sizeof(pat), "%s", pattern);
    char *psegs[MAX_SEGS];
    int np = split(pat, psegs);
    if (np != nsegs)
        return 0;
    for (int i = 0; i < np; i++) {
        if (psegs[i][0] == ':')
            continue;
        if (strcmp(psegs[i], segs[i]))
            return 0;
    }
    /* matched: record params (decoded) */
    r->nparams = 0;
    for (int i = 0; i < np && r->nparams < MAX_PARAMS; i++) {
        if (psegs[i][0] != ':')
            continue;
        const char *name = pattern + (psegs[i] - pat) + 1;
        r->pnames[r->nparams] = name; /* points into the static pattern */
        r->pvals[r->nparams] = evhttp_uridecode(segs[i], 0, NULL);
        r->nparams++;
    }
    return 1;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "?";
}

static size_t pname_len(const char *n)
{
    size_t l = 0;
    while (n[l] && n[l] != '/')
        l++;
    return l;
}

static void dispatch(struct evhttp_request *ev, void *arg)
{
    struct httpd *h = arg;
    struct httpd_req *r = xcalloc(1, sizeof(*r));
    r->ev = ev;
    r->srv = h;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!raw || raw[0] != '/') {
        httpd_reply_error(r, 400, "validation_error", "invalid request path");
        return;
    }
    r->path = evhttp_uridecode(raw, 0, NULL);
    char *copy = xstrdup(raw);
    char *segs[MAX_SEGS];
    int nsegs = split(copy, segs);
    const char *m = method_name(evhttp_request_get_command(ev));
    const struct httpd_route *found = NULL;
    int path_known = 0;
    if (nsegs >= 0) {
        for (size_t i = 0; i < h->nroutes; i++) {
            if (!match(r, h->routes[i].pattern, segs, nsegs))
                continue;
            path_known = 1;
            if (!strcmp(h->routes[i].method, m) ||
                (!strcmp(m, "HEAD") && !strcmp(h->routes[i].method, "GET"))) {
                found = &h->routes[i];
                break;
            }
            for (int k = 0; k < r->nparams; k++)
                free(r->pvals[k]);
            r->nparams = 0;
        }
    }
    free(copy);
    if (!found) {
        if (path_known)
            httpd_reply_error(r, 405, "method_not_allowed", "method %s not allowed", m);
        else
            httpd_reply_empty(r, 404);
        return;
    }
    found->fn(r, h->arg);
}

struct httpd *httpd_new(struct event_base *base, const struct httpd_route *routes, size_t nroutes,
                        const struct httpd_opts *opts, void *arg)
{
    struct httpd *h = xcalloc(1, sizeof(*h));
    h->base = base;
    h->http = evhttp_new(base);
    if (!h->http)
        BUG("evhttp_new failed");
    h->routes = routes;
    h->nroutes = nroutes;
    h->arg = arg;
    size_t max_body = opts && opts->max_body ? opts->max_body : 1 << 20;
    size_t max_headers = opts && opts->max_headers ? opts->max_headers : 16 << 10;
    int timeout = opts && opts->timeout_secs ? opts->timeout_secs : 60;
    evhttp_set_max_body_size(h->http, (ev_ssize_t)max_body);
    evhttp_set_max_headers_size(h->http, (ev_ssize_t)max_headers);
    evhttp_set_timeout(h->http, timeout);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(h->http, dispatch, h);
    return h;
}

void httpd_free(struct httpd *h)
{
    if (!h)
        return;
    /* evhttp_free frees the connections of upgraded requests too */
    while (h->detached) {
        struct detached *d = h->detached;
        h->detached = d->next;
        event_free(d->ev);
        free(d);
    }
    evhttp_free(h->http);
    free(h);
}

int httpd_listen(struct httpd *h, const char *addr, struct err **err)
{
    cleanup_free char *host = xstrdup(addr);
    char *colon = strrchr(host, ':');
    if (!colon)
        return err_makex(err, EINVAL, "listen address '%s' has no port", addr);
    *colon = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return err_makex(err, EINVAL, "listen address '%s' has a bad port", addr);
    const char *hh = host;
    if (hh[0] == '[') { /* [::1]:port */
        hh++;
        host[strlen(host) - 1] = '\0';
    }
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(h->http, hh, (ev_uint16_t)port);
    if (!bs)
        return err_make(err, errno ? errno : EADDRINUSE, "listen on '%s'", addr);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return err_make(err, errno, "getsockname for '%s'", addr);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

const char *httpd_method(struct httpd_req *r)
{
    return method_name(evhttp_request_get_command(r->ev));
}

const char *httpd_path(struct httpd_req *r)
{
    return r->path;
}

const char *httpd_param(struct httpd_req *r, const char *name)
{
    size_t nl = strlen(name);
    for (int i = 0; i < r->nparams; i++)
        if (pname_len(r->pnames[i]) == nl && !strncmp(r->pnames[i], name, nl))
            return r->pvals[i];
    return NULL;
}

const char *httpd_query(struct httpd_req *r, const char *name)
{
    if (!r->have_query) {
        TAILQ_INIT(&r->query);
        r->have_query = 1;
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->ev);
        const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
        if (q && evhttp_parse_query_str(q, &r->query) < 0) {
            evhttp_clear_headers(&r->query);
            TAILQ_INIT(&r->query);
        }
    }
    return evhttp_find_header(&r->query, name);
}

const char *httpd_header(struct httpd_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const void *httpd_body(struct httpd_req *r, size_t *len)
{
    if (!r->body_read) {
        struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
        r->body_len = evbuffer_get_length(in);
        r->body = xmalloc(r->body_len + 1);
        evbuffer_remove(in, r->body, r->body_len);
        r->body[r->body_len] = '\0';
        r->body_read = 1;
    }
    *len = r->body_len;
    return r->body;
}

json_t *httpd_body_json(struct httpd_req *r)
{
    size_t len;
    const char *b = httpd_body(r, &len);
    if (len == 0) {
        httpd_reply_error(r, 400, "syntax_error", "request body is empty: expected a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(b, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        httpd_reply_error(r, 400, "syntax_error", "invalid JSON at line %d column %d: %s",
                          je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        httpd_reply_error(r, 400, "syntax_error", "request body must be a JSON object");
        return NULL;
    }
    return j;
}

struct evhttp_request *httpd_evreq(struct httpd_req *r)
{
    return r->ev;
}

void httpd_set_header(struct httpd_req *r, const char *name, const char *value)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_remove_header(h, name);
    evhttp_add_header(h, name, value);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

void httpd_reply_text(struct httpd_req *r, int status, const char *ctype, const char *body,
                      size_t len)
{
    struct evbuffer *out = evbuffer_new();
    if (len)
        evbuffer_add(out, body, len);
    if (ctype)
        httpd_set_header(r, "Content-Type", ctype);
    evhttp_send_reply(r->ev, status, reason(status), out);
    evbuffer_free(out);
    req_free(r);
}

void httpd_reply_empty(struct httpd_req *r, int status)
{
    httpd_reply_text(r, status, NULL, NULL, 0);
}

void httpd_reply_json(struct httpd_req *r, int status, json_t *json)
{
    char *s = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(json);
    if (!s)
        BUG("json_dumps failed");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    httpd_reply_text(r, status, "application/json", s, n);
    free(s);
}

void httpd_reply_error(struct httpd_req *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s,s:s,s:b}", "code", code, "message", msg, "retry",
                          status == 503 || status == 429);
    httpd_reply_json(r, status, j);
}

void httpd_reply_err(struct httpd_req *r, struct err *e)
{
    int st = err_http_status(e);
    const char *code = st == 400   ? "validation_error"
                       : st == 404 ? "object_not_found"
                       : st == 409 ? "object_exists"
                       : st == 413 ? "request_body_too_big"
                       : st == 503 ? "service_unavailable"
                       : st == 403 ? "forbidden"
                                   : "unknown_error";
    httpd_reply_error(r, st, code, "%s", e->msg);
    err_free(e);
}

static void stream_closed(struct evhttp_connection *conn, void *arg)
{
    struct httpd_stream *s = arg;
    httpd_stream_close_cb cb = s->on_close;
    void *a = s->arg;
    /* When the peer went away mid-reply, evhttp has detached the request
     * from the connection and leaves it to us; otherwise (server shutdown)
     * the connection frees it right after this callback. */
    struct evhttp_request *ev = s->req->ev;
    if (!evhttp_request_get_connection(ev))
        evhttp_request_free(ev);
    req_free(s->req);
    free(s);
    if (cb)
        cb(NULL, a);
}

struct httpd_stream *httpd_stream_start(struct httpd_req *r, const char *content_type,
                                        httpd_stream_close_cb on_close, void *arg)
{
    struct httpd_stream *s = xcalloc(1, sizeof(*s));
    s->req = r;
    s->on_close = on_close;
    s->arg = arg;
    s->conn = evhttp_request_get_connection(r->ev);
    httpd_set_header(r, "Content-Type", content_type);
    httpd_set_header(r, "Cache-Control", "no-cache");
    evhttp_send_reply_start(r->ev, 200, "OK");
    /* a stream may stay quiet for long: only a dead peer ends it */
    evhttp_connection_set_timeout(s->conn, 24 * 3600);
    evhttp_connection_set_closecb(s->conn, stream_closed, s);
    return s;
}

void httpd_stream_write(struct httpd_stream *s, const void *data, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, data, len);
    evhttp_send_reply_chunk(s->req->ev, b);
    evbuffer_free(b);
}

size_t httpd_stream_pending(struct httpd_stream *s)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->conn);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

void httpd_stream_end(struct httpd_stream *s)
{
    evhttp_connection_set_closecb(s->conn, NULL, NULL);
    evhttp_send_reply_end(s->req->ev);
    req_free(s->req);
    free(s);
}

/* ---- upgrades ---- */

bool httpd_wants_upgrade(struct httpd_req *r, const char *protocol)
{
    const char *up = httpd_header(r, "Upgrade");
    if (!up)
        return false;
    while (*up == ' ' || *up == '\t')
        up++;
    size_t n = strlen(protocol);
    return !strncasecmp(up, protocol, n) &&
           (up[n] == '\0' || up[n] == ',' || up[n] == ' ' || up[n] == '\t');
}

static void on_detached(evutil_socket_t fd, short what, void *arg)
{
    struct detached *d = arg;
    struct detached **pp = &d->srv->detached;
    while (*pp != d)
        pp = &(*pp)->next;
    *pp = d->next;
    evhttp_connection_free(d->conn); /* closes the placeholder, frees the request */
    event_free(d->ev);
    free(d);
}

/* Writes all of buf to a non-blocking socket, waiting up to 5 s. */
static int send_all(int fd, const char *buf, size_t len, struct err **err)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {fd, POLLOUT, 0};
            if (poll(&p, 1, 5000) == 0)
                return err_makex(err, ETIMEDOUT, "send the 101 response: timed out");
            continue;
        }
        if (n < 0)
            return err_make(err, errno, "send the 101 response");
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int httpd_upgrade(struct httpd_req *r, const char *protocol, struct strbuf *early,
                  struct err **err)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(r->ev);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    int fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0) {
        httpd_reply_empty(r, 500);
        return err_makex(err, ENOTCONN, "upgrade to '%s': the connection is gone", protocol);
    }
    /* The socket leaves evhttp: stop its events first, keep our own copy,
     * and put a placeholder under evhttp's fd number, so the shutdown() and
     * close() evhttp does when it frees the connection hit the placeholder
     * and not the socket we keep. */
    int mine = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int dummy = mine >= 0 ? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
    if (dummy < 0) {
        int e = errno;
        if (mine >= 0)
            close(mine);
        httpd_reply_error(r, 500, "unknown_error", "upgrade failed: %s", strerror(e));
        return err_make(err, e, "upgrade to '%s'", protocol);
    }
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t pending = evbuffer_get_length(in);
    if (early && pending)
        strbuf_add(early, evbuffer_pullup(in, -1), pending);
    if (dup3(dummy, fd, O_CLOEXEC) < 0)
        BUG("dup3 over an open descriptor failed");
    close(dummy);
    evhttp_connection_set_closecb(conn, NULL, NULL);
    struct detached *d = xcalloc(1, sizeof(*d));
    d->srv = r->srv;
    d->conn = conn;
    d->ev = evtimer_new(r->srv->base, on_detached, d);
    d->next = r->srv->detached;
    r->srv->detached = d;
    struct timeval now = {0, 0};
    evtimer_add(d->ev, &now);
    req_free(r);

    cleanup_free char *head = xasprintf("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                        "Upgrade: %s\r\n\r\n",
                                        protocol);
    if (send_all(mine, head, strlen(head), err) < 0) {
        close(mine);
        return -1;
    }
    return mine;
}
