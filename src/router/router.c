/* router: the context, its listeners and route reloads (see router.h). */
#include "router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

struct listener_ctx {
    struct router *r;
    int port;
    bool tls;
};

static int parse_hostport(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    char host[128];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -1;
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[' && hl > 2) {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return -1;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a);
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    if (hl == 0)
        a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *len = sizeof(*a);
    return 0;
}

int router_bind(const char *addr, int backlog, struct err **err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_hostport(addr, &ss, &len) < 0)
        return err_makex(err, EINVAL, "bad listen address '%s' (want HOST:PORT)", addr);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_make(err, errno, "socket for '%s'", addr);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* worker processes each bind the same addresses; the kernel spreads
     * connections over them */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* accepted sockets inherit it: one setsockopt per listener, not per client */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        int e = errno;
        close(fd);
        return err_make(err, e, "bind '%s'", addr);
    }
    if (listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return err_make(err, e, "listen on '%s'", addr);
    }
    return fd;
}

void router_sockname(int fd, char out[64], int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    out[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    char host[INET6_ADDRSTRLEN];
    int p = 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        p = ntohs(a->sin6_port);
        snprintf(out, 64, "[%s]:%d", host, p);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        p = ntohs(a->sin_port);
        snprintf(out, 64, "%s:%d", host, p);
    }
    if (port)
        *port = p;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct router *r = arg;
    if (r->access)
        fflush(r->access);
}

static int load_sticky_key(struct router *r, struct err **err)
{
    if (!r->opts.sticky_key_file) {
        if (getrandom(r->sticky_key, sizeof(r->sticky_key), 0) != sizeof(r->sticky_key))
            return err_make(err, errno, "getrandom");
        return 0;
    }
    FILE *f = fopen(r->opts.sticky_key_file, "re");
    if (!f)
        return err_make(err, errno, "open '%s'", r->opts.sticky_key_file);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n < 16)
        return err_makex(err, EINVAL, "sticky key '%s' is shorter than 16 bytes",
                         r->opts.sticky_key_file);
    /* fold the file into 32 bytes */
    memset(r->sticky_key, 0, sizeof(r->sticky_key));
    for (size_t i = 0; i < n; i++)
        r->sticky_key[i % sizeof(r->sticky_key)] ^= buf[i];
    return 0;
}

struct router_metrics *router_metrics_shared(int n)
{
    void *p = mmap(NULL, sizeof(struct router_metrics) * (size_t)n, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        BUG("mmap shared metrics");
    return p;
}

struct router *router_new(struct event_base *base, const struct router_opts *opts,
                          struct router_metrics *metrics, int worker, int nworkers,
                          struct err **err)
{
    struct router *r = xcalloc(1, sizeof(*r));
    r->base = base;
    r->opts = *opts;
    if (metrics) {
        r->m_all = metrics;
        r->nworkers = nworkers;
        r->m = &metrics[worker];
    } else {
        r->m_all = r->m = xcalloc(1, sizeof(*r->m));
        r->nworkers = 1;
        r->own_metrics = true;
    }
    route_table_backend_release = proxy_backend_release;
    route_table_ssl_free = tls_ctx_free;
    if (getrandom(r->rng, sizeof(r->rng), 0) != sizeof(r->rng))
        r->rng[0] = 0x9e3779b97f4a7c15ULL, r->rng[1] = (uint64_t)getpid();
    if (load_sticky_key(r, err) < 0)
        goto fail;
    const char *al = opts->access_log ? opts->access_log : "-";
    if (!strcmp(al, "-")) {
        r->access = stderr;
    } else if (strcmp(al, "off")) {
        r->access = fopen(al, "ae");
        if (!r->access) {
            err_make(err, errno, "open access log '%s'", al);
            goto fail;
        }
        setvbuf(r->access, NULL, _IOFBF, 1 << 16);
    }
    r->flush_ev = event_new(base, -1, EV_PERSIST, flush_cb, r);
    struct timeval tv = {0, 200000};
    event_add(r->flush_ev, &tv);
    if (opts->cert_file) {
        r->ssl_default = tls_ctx_new(opts->cert_file, opts->key_file, true, err);
        if (!r->ssl_default) {
            err_wrap(err, "cluster certificate");
            goto fail;
        }
        tls_default_set_sni(r);
    }
    if (opts->routes_file) {
        if (router_reload(r, err) < 0)
            goto fail;
    } else {
        r->table = route_table_parse("[]", 2, NULL, err);
    }
    return r;
fail:
    router_free(r);
    return NULL;
}

static int install(struct router *r, struct route_table *t, struct err **err);

int router_reload(struct router *r, struct err **err)
{
    r->m->reloads++;
    return install(r, route_table_load(r->opts.routes_file, r->table, err), err);
}

int router_set_table_json(struct router *r, const char *json, size_t len, struct err **err)
{
    r->m->reloads++;
    return install(r, route_table_parse(json, len, r->table, err), err);
}

static int install(struct router *r, struct route_table *t, struct err **err)
{
    if (!t || tls_table_prepare(r, t, err) < 0) {
        r->m->reload_errors++;
        route_table_unref(t);
        return -1;
    }
    struct route_table *old = r->table;
    r->table = t;
    tcp_routes_sync(r);
    /* backends that left: close their idle connections now */
    for (size_t i = 0; old && i < old->nbackends; i++) {
        struct backend *b = old->backends[i];
        if (b->draining)
            proxy_backend_close_idle(b);
    }
    route_table_unref(old);
    log_info("routes loaded: %zu routes, %zu backends", t->nroutes, t->nbackends);
    return 0;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    h2_close_all(r);
    proxy_close_all(r);
    tcp_routes_free(r);
    for (size_t i = 0; r->table && i < r->table->nbackends; i++)
        proxy_backend_close_idle(r->table->backends[i]);
    for (size_t i = 0; i < r->nlisteners; i++) {
        evconnlistener_free(r->listeners[i]);
        free(r->listener_ctx[i]);
        r->listener_ctx[i] = NULL;
    }
    if (r->http)
        evhttp_free(r->http);
    route_table_unref(r->table);
    if (r->ssl_default)
        tls_ctx_free(r->ssl_default);
    if (r->flush_ev)
        event_free(r->flush_ev);
    if (r->access && r->access != stderr)
        fclose(r->access);
    else if (r->access)
        fflush(r->access);
    if (r->own_metrics)
        free(r->m);
    free(r);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct listener_ctx *lc = arg;
    proxy_accept(lc->r, fd, sa, lc->port, lc->tls);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("accept: %s", evutil_socket_error_to_string(e));
}

int router_listen_http(struct router *r, const char *addr, bool tls, char out[64],
                       struct err **err)
{
    if (tls && !r->ssl_default)
        return err_makex(err, EINVAL, "--https-listen needs --cert and --key");
    if (r->nlisteners == ARRAY_SIZE(r->listeners))
        return err_makex(err, ENOSPC, "too many listeners");
    int fd = router_bind(addr, 4096, err);
    if (fd < 0)
        return -1;
    /* plain HTTP: accept once the request's first bytes are in, which
     * proxy.c then reads without waiting for epoll (1 s: a client that
     * connects and says nothing is accepted after that, as before) */
    int defer = 1;
    if (!tls)
        setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    struct listener_ctx *lc = xcalloc(1, sizeof(*lc));
    lc->r = r;
    lc->tls = tls;
    router_sockname(fd, out, &lc->port);
    struct evconnlistener *l =
        evconnlistener_new(r->base, accept_cb, lc, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!l) {
        close(fd);
        free(lc);
        return err_makex(err, EIO, "listen on '%s'", addr);
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    r->listener_ctx[r->nlisteners] = lc;
    r->listeners[r->nlisteners++] = l;
    return 0;
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
    struct router *r = arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *b = evbuffer_new();
    if (strcmp(uri, "/metrics") && strncmp(uri, "/metrics?", 9)) {
        evbuffer_add_printf(b, "not found\n");
        evhttp_send_reply(req, 404, "Not Found", b);
        evbuffer_free(b);
        return;
    }
    struct strbuf sb = STRBUF_INIT;
    metrics_format(r, &sb);
    evbuffer_add(b, sb.buf, sb.len);
    strbuf_release(&sb);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

int router_listen_metrics(struct router *r, const char *addr, char out[64], struct err **err)
{
    int fd = router_bind(addr, 128, err);
    if (fd < 0)
        return -1;
    router_sockname(fd, out, NULL);
    if (!r->http) {
        r->http = evhttp_new(r->base);
        evhttp_set_gencb(r->http, metrics_cb, r);
        evhttp_set_allowed_methods(r->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    }
    if (!evhttp_accept_socket_with_handle(r->http, fd)) {
        close(fd);
        return err_makex(err, EIO, "serve metrics on '%s'", addr);
    }
    return 0;
}
