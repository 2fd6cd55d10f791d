/*
 * tcp: TCP routes. One listener per route port (on opts.tcp_host); each
 * connection goes to the next backend of the route (round robin, the next
 * one when a connect fails) and bytes are pumped both ways with the same
 * backpressure as HTTP bodies. Both sockets read and write as HTTP
 * connections do (proxy.c): one readv of up to 256 KiB per wakeup
 * (sock_own_reads) and a write in the same turn (sock_write_now), with
 * EV_WRITE on only while bytes wait. A listener whose route went away
 * closes; its connections live on until either side closes.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

#define TCP_HIGH_WATER (256 * 1024)

struct tcp_listener {
    struct router *r;
    int port;
    struct evconnlistener *l;
    struct tcp_listener *next;
};

struct tcp_conn {
    struct router *r;
    struct tcp_conn *next, *prev;
    struct bufferevent *a, *b; /* client, backend */
    struct backend *backend;
    struct route_table *table;
    struct route *route;
    int attempts;
    bool a_eof, b_eof, connected;
};

static void tconn_free(struct tcp_conn *t)
{
    if (t->a)
        bufferevent_free(t->a);
    if (t->b)
        bufferevent_free(t->b);
    if (t->backend)
        t->backend->active--;
    backend_unref(t->backend);
    route_table_unref(t->table);
    if (t->prev)
        t->prev->next = t->next;
    else
        t->r->tcp_conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

/* Moves from's input to to's output and writes it at once when to is
 * connected (a backend still connecting gets it from libevent when the
 * connect completes). EV_WRITE is on only while bytes wait. */
static void tpump(struct tcp_conn *t, struct bufferevent *from, struct bufferevent *to)
{
    struct evbuffer *o = bufferevent_get_output(to);
    evbuffer_add_buffer(o, bufferevent_get_input(from));
    if (to != t->b || t->connected) {
        sock_write_now(to);
        if (evbuffer_get_length(o))
            bufferevent_enable(to, EV_WRITE);
        else
            bufferevent_disable(to, EV_WRITE);
    }
    if (evbuffer_get_length(o) >= TCP_HIGH_WATER)
        bufferevent_disable(from, EV_READ);
}

static void t_read(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *t = arg;
    if (bev == t->a)
        tpump(t, t->a, t->b);
    else
        tpump(t, t->b, t->a);
}

static void t_write(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *t = arg;
    struct bufferevent *other = bev == t->a ? t->b : t->a;
    bool other_eof = bev == t->a ? t->b_eof : t->a_eof;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && other_eof) {
        shutdown(bufferevent_getfd(bev), SHUT_WR);
        if (t->a_eof && t->b_eof && evbuffer_get_length(bufferevent_get_output(other)) == 0)
            tconn_free(t);
        return;
    }
    if (bev != t->b || t->connected) {
        if (!other_eof)
            bufferevent_enable(other, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            bufferevent_disable(bev, EV_WRITE); /* the next write is direct */
    }
}

static bool t_connect(struct tcp_conn *t);

static void t_event(struct bufferevent *bev, short what, void *arg)
{
    struct tcp_conn *t = arg;
    if (what & BEV_EVENT_CONNECTED) {
        t->connected = true;
        bufferevent_set_timeouts(t->b, NULL, NULL);
        bufferevent_enable(t->a, EV_READ);
        return;
    }
    if (bev == t->b && !t->connected) {
        t->r->m->upstream_errors++;
        bufferevent_free(t->b);
        t->b = NULL;
        t->backend->active--;
        backend_unref(t->backend);
        t->backend = NULL;
        if (!t_connect(t))
            tconn_free(t);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        struct bufferevent *other = bev == t->a ? t->b : t->a;
        if (bev == t->a)
            t->a_eof = true;
        else
            t->b_eof = true;
        tpump(t, bev, other);
        bufferevent_disable(bev, EV_READ);
        bufferevent_enable(other, EV_WRITE);
        if (evbuffer_get_length(bufferevent_get_output(other)) == 0) {
            shutdown(bufferevent_getfd(other), SHUT_WR);
            if (t->a_eof && t->b_eof &&
                evbuffer_get_length(bufferevent_get_output(bev)) == 0)
                tconn_free(t);
        }
        return;
    }
    tconn_free(t);
}

static bool t_connect(struct tcp_conn *t)
{
    struct route *rt = t->route;
    if (!rt->nbackends || t->attempts >= t->r->opts.max_attempts ||
        t->attempts >= (int)rt->nbackends)
        return false;
    struct backend *b = rt->backends[rt->rr++ % rt->nbackends];
    t->attempts++;
    if (t->attempts > 1)
        t->r->m->retries++;
    t->backend = b;
    backend_ref(b);
    b->active++;
    int fd = socket(b->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    t->b = bufferevent_socket_new(t->r->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(t->b, t_read, t_write, t_event, t);
    bufferevent_setwatermark(t->b, EV_WRITE, TCP_HIGH_WATER / 4, 0);
    bufferevent_set_max_single_read(t->b, TCP_HIGH_WATER);
    bufferevent_set_max_single_write(t->b, TCP_HIGH_WATER);
    t->r->m->upstream_connects++;
    if (bufferevent_socket_connect(t->b, (struct sockaddr *)&b->sa, (int)b->salen) < 0)
        bufferevent_trigger_event(t->b, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
    sock_own_reads(t->b);
    if (t->r->opts.connect_timeout_ms > 0) {
        /* a backend that went away without a word: the next one after this */
        struct timeval ct = {t->r->opts.connect_timeout_ms / 1000,
                             (t->r->opts.connect_timeout_ms % 1000) * 1000};
        bufferevent_set_timeouts(t->b, NULL, &ct);
    }
    bufferevent_enable(t->b, EV_READ | EV_WRITE);
    return true;
}

static struct route *tcp_route(struct route_table *tab, int port)
{
    for (size_t i = 0; tab && i < tab->nroutes; i++)
        if (tab->routes[i].type == ROUTE_TCP && tab->routes[i].port == port)
            return &tab->routes[i];
    return NULL;
}

static void t_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                     int salen, void *arg)
{
    struct tcp_listener *tl = arg;
    struct router *r = tl->r;
    struct route *rt = tcp_route(r->table, tl->port);
    if (!rt) {
        close(fd);
        return;
    }
    r->m->tcp_conns++;
    struct tcp_conn *t = xcalloc(1, sizeof(*t));
    t->r = r;
    t->table = r->table;
    route_table_ref(t->table);
    t->route = rt;
    t->a = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(t->a, t_read, t_write, t_event, t);
    bufferevent_setwatermark(t->a, EV_WRITE, TCP_HIGH_WATER / 4, 0);
    bufferevent_set_max_single_read(t->a, TCP_HIGH_WATER);
    bufferevent_set_max_single_write(t->a, TCP_HIGH_WATER);
    sock_own_reads(t->a);
    bufferevent_enable(t->a, EV_WRITE);
    t->next = r->tcp_conns;
    if (t->next)
        t->next->prev = t;
    r->tcp_conns = t;
    if (!t_connect(t))
        tconn_free(t);
}

static void listener_free(struct tcp_listener *tl)
{
    evconnlistener_free(tl->l); /* its connections live on */
    free(tl);
}

void tcp_routes_sync(struct router *r)
{
    struct tcp_listener **pp = &r->tcp;
    while (*pp) { /* close listeners whose route went */
        struct tcp_listener *tl = *pp;
        if (!tcp_route(r->table, tl->port)) {
            *pp = tl->next;
            log_info("tcp route on port %d removed", tl->port);
            listener_free(tl);
        } else {
            pp = &tl->next;
        }
    }
    for (size_t i = 0; r->table && i < r->table->nroutes; i++) {
        struct route *rt = &r->table->routes[i];
        if (rt->type != ROUTE_TCP)
            continue;
        bool have = false;
        for (struct tcp_listener *tl = r->tcp; tl && !have; tl = tl->next)
            have = tl->port == rt->port;
        if (have)
            continue;
        if (rt->port < r->opts.tcp_min || rt->port > r->opts.tcp_max) {
            log_warn("tcp route '%s': port %d outside %d-%d", rt->id, rt->port, r->opts.tcp_min,
                     r->opts.tcp_max);
            continue;
        }
        char addr[128];
        snprintf(addr, sizeof(addr), "%s:%d", r->opts.tcp_host, rt->port);
        struct err *e = NULL;
        int fd = router_bind(addr, 1024, &e);
        if (fd < 0) {
            log_warn("tcp route '%s': %s", rt->id, e->msg);
            err_free(e);
            continue;
        }
        struct tcp_listener *tl = xcalloc(1, sizeof(*tl));
        tl->r = r;
        tl->port = rt->port;
        tl->l = evconnlistener_new(r->base, t_accept, tl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
        tl->next = r->tcp;
        r->tcp = tl;
        log_info("tcp route '%s' listening on %s", rt->id, addr);
    }
}

void tcp_routes_free(struct router *r)
{
    while (r->tcp_conns)
        tconn_free(r->tcp_conns);
    while (r->tcp) {
        struct tcp_listener *tl = r->tcp;
        r->tcp = tl->next;
        listener_free(tl);
    }
}
