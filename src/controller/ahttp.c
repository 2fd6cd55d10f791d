#include "ahttp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "xalloc.h"

struct areq {
    struct areq *next, **pprev;
    struct ahttp *a;
    struct evhttp_connection *conn;
    ahttp_cb cb;
    void *arg;
};

struct ahttp {
    struct event_base *base;
    struct areq *reqs;
};

struct ahttp *ahttp_new(struct event_base *base)
{
    struct ahttp *a = xcalloc(1, sizeof(*a));
    a->base = base;
    return a;
}

static void unlink_req(struct areq *q)
{
    if (q->next)
        q->next->pprev = q->pprev;
    *q->pprev = q->next;
}

static void free_conn(evutil_socket_t fd, short what, void *arg)
{
    evhttp_connection_free(arg);
}

static void on_done(struct evhttp_request *req, void *arg)
{
    struct areq *q = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
    size_t n = in ? evbuffer_get_length(in) : 0;
    char *body = xmalloc(n + 1);
    if (n)
        evbuffer_remove(in, body, n);
    body[n] = '\0';
    unlink_req(q);
    /* the connection cannot be freed from inside its own callback */
    event_base_once(q->a->base, -1, EV_TIMEOUT, free_conn, q->conn, NULL);
    q->cb(status, body, n, q->arg);
    free(body);
    free(q);
}

void ahttp_free(struct ahttp *a)
{
    if (!a)
        return;
    while (a->reqs) {
        struct areq *q = a->reqs;
        unlink_req(q);
        evhttp_connection_free(q->conn); /* frees the request without callbacks */
        q->cb(-1, NULL, 0, q->arg);
        free(q);
    }
    free(a);
}

int ahttp_request(struct ahttp *a, const char *method, const char *url, const char *body,
                  int timeout_secs, ahttp_cb cb, void *arg, struct err **err)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    if (!u || !scheme || strcmp(scheme, "http") || !host || !*host) {
        if (u)
            evhttp_uri_free(u);
        return err_makex(err, EINVAL, "url '%s' must be http://HOST[:PORT]/PATH", url);
    }
    enum evhttp_cmd_type t = !strcmp(method, "POST")     ? EVHTTP_REQ_POST
                             : !strcmp(method, "DELETE") ? EVHTTP_REQ_DELETE
                             : !strcmp(method, "PUT")    ? EVHTTP_REQ_PUT
                                                         : EVHTTP_REQ_GET;
    int port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    struct strbuf path = STRBUF_INIT;
    const char *p = evhttp_uri_get_path(u);
    strbuf_adds(&path, p && *p ? p : "/");
    const char *query = evhttp_uri_get_query(u);
    if (query)
        strbuf_addf(&path, "?%s", query);
    struct areq *q = xcalloc(1, sizeof(*q));
    q->a = a;
    q->cb = cb;
    q->arg = arg;
    q->conn = evhttp_connection_base_new(a->base, NULL, host, (ev_uint16_t)port);
    evhttp_connection_set_timeout(q->conn, timeout_secs > 0 ? timeout_secs : 30);
    evhttp_connection_set_retries(q->conn, 0);
    struct evhttp_request *req = evhttp_request_new(on_done, q);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Accept", "application/json");
    if (body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    evhttp_uri_free(u);
    int rc = evhttp_make_request(q->conn, req, t, path.buf);
    strbuf_release(&path);
    if (rc < 0) {
        evhttp_connection_free(q->conn);
        free(q);
        return err_makex(err, EIO, "request to '%s' could not be sent", url);
    }
    q->next = a->reqs;
    if (q->next)
        q->next->pprev = &q->next;
    q->pprev = &a->reqs;
    a->reqs = q;
    return 0;
}
