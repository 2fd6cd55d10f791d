/* HTTPS listener: TLS termination with bufferevent_openssl, relayed to the
 * plain listener on loopback (see tls.h for why). */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "xalloc.h"

#define MAX_BUFFERED (4u << 20) /* per direction, before we stop reading */

struct relay;

struct tls_listener {
    struct event_base *base;
    struct evconnlistener *lis;
    SSL_CTX *ctx;
    struct sockaddr_in backend;
    struct relay *relays;
};

/* One client connection: tls <-> plain. */
struct relay {
    struct relay *next, **pprev;
    struct tls_listener *t;
    struct bufferevent *tls, *plain;
    int closing; /* one side hung up; free once the other has drained */
};

static void relay_free(struct relay *r)
{
    if (r->next)
        r->next->pprev = r->pprev;
    *r->pprev = r->next;
    if (r->tls)
        bufferevent_free(r->tls);
    if (r->plain)
        bufferevent_free(r->plain);
    free(r);
}

static struct bufferevent *other(struct relay *r, struct bufferevent *bev)
{
    return bev == r->tls ? r->plain : r->tls;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct relay *r = arg;
    struct bufferevent *o = other(r, bev);
    bufferevent_write_buffer(o, bufferevent_get_input(bev));
    if (evbuffer_get_length(bufferevent_get_output(o)) > MAX_BUFFERED)
        bufferevent_disable(bev, EV_READ); /* resumed by on_write of o */
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct relay *r = arg;
    if (r->closing) {
        relay_free(r);
        return;
    }
    bufferevent_enable(other(r, bev), EV_READ);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct relay *r = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        struct bufferevent *o = other(r, bev);
        /* pass on what is left, then close once it is written */
        if (evbuffer_get_length(bufferevent_get_input(bev)))
            bufferevent_write_buffer(o, bufferevent_get_input(bev));
        if (r->closing || (what & BEV_EVENT_ERROR && bev == o) ||
            evbuffer_get_length(bufferevent_get_output(o)) == 0) {
            relay_free(r);
            return;
        }
        r->closing = 1;
        bufferevent_disable(bev, EV_READ);
        bufferevent_setcb(bev, NULL, NULL, on_event, r);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int slen,
                      void *arg)
{
    struct tls_listener *t = arg;
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    struct relay *r = xcalloc(1, sizeof(*r));
    r->t = t;
    r->tls = bufferevent_openssl_socket_new(t->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    r->plain = bufferevent_socket_new(t->base, -1, BEV_OPT_CLOSE_ON_FREE);
    r->next = t->relays;
    if (r->next)
        r->next->pprev = &r->next;
    r->pprev = &t->relays;
    t->relays = r;
    if (!r->tls || !r->plain) {
        if (!r->tls)
            SSL_free(ssl);
        relay_free(r);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(r->tls, 1);
    bufferevent_setcb(r->tls, on_read, on_write, on_event, r);
    bufferevent_setcb(r->plain, on_read, on_write, on_event, r);
    if (bufferevent_socket_connect(r->plain, (struct sockaddr *)&t->backend,
                                   sizeof(t->backend)) < 0) {
        relay_free(r);
        return;
    }
    bufferevent_enable(r->tls, EV_READ | EV_WRITE);
    bufferevent_enable(r->plain, EV_READ | EV_WRITE);
}

/* "HOST:PORT" or "[V6]:PORT" with a numeric host; port 0 allowed. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, int *sl)
{
    cleanup_free char *host = xstrdup(addr);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535)
        return -1;
    memset(ss, 0, sizeof(*ss));
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*s6);
        return inet_pton(AF_INET6, h, &s6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *sl = sizeof(*s4);
    if (!*h)
        return 0; /* any address */
    return inet_pton(AF_INET, h, &s4->sin_addr) == 1 ? 0 : -1;
}

struct tls_listener *tls_listen(struct event_base *base, const char *addr, const char *cert,
                                const char *key, int backend_port, int *bound, struct err **err)
{
    struct sockaddr_storage ss;
    int sl;
    if (parse_addr(addr, &ss, &sl) < 0) {
        err_makex(err, EINVAL, "tls listen address '%s' is invalid", addr);
        return NULL;
    }
    struct tls_listener *t = xcalloc(1, sizeof(*t));
    t->base = base;
    t->backend.sin_family = AF_INET;
    t->backend.sin_port = htons((uint16_t)backend_port);
    t->backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ctx)
        BUG("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
        err_makex(err, EINVAL, "load tls certificate '%s': %s", cert,
                  ERR_reason_error_string(ERR_get_error()));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(t->ctx) != 1) {
        err_makex(err, EINVAL, "load tls key '%s': %s", key,
                  ERR_reason_error_string(ERR_get_error()));
        goto fail;
    }
    t->lis = evconnlistener_new_bind(base, on_accept, t,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                         LEV_OPT_CLOSE_ON_EXEC,
                                     128, (struct sockaddr *)&ss, sl);
    if (!t->lis) {
        err_make(err, errno, "tls listen on '%s'", addr);
        goto fail;
    }
    struct sockaddr_storage b;
    socklen_t bl = sizeof(b);
    getsockname(evconnlistener_get_fd(t->lis), (struct sockaddr *)&b, &bl);
    *bound = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                           : ((struct sockaddr_in *)&b)->sin_port);
    return t;
fail:
    tls_listener_free(t);
    return NULL;
}

void tls_listener_free(struct tls_listener *t)
{
    if (!t)
        return;
    while (t->relays)
        relay_free(t->relays);
    if (t->lis)
        evconnlistener_free(t->lis);
    SSL_CTX_free(t->ctx);
    free(t);
}
