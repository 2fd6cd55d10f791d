/* blobstore: the context and its listeners (see blobstore.h). */
#include "blobstore.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#include "blobstore_internal.h"

struct blobstore *blobstore_new(struct event_base *base, const struct blobstore_opts *o,
                                struct err **err)
{
    struct blobstore *bs = xcalloc(1, sizeof(*bs));
    bs->base = base;
    bs->opts = *o;
    if (disk_open(&bs->disk, o->dir, err) < 0) {
        free(bs);
        return NULL;
    }
    bs->iobuf = xmalloc(BLOBSTORE_IOBUF);
    return bs;
}

void blobstore_free(struct blobstore *bs)
{
    if (!bs)
        return;
    for (size_t i = 0; i < bs->nlisteners; i++)
        evconnlistener_free(bs->listeners[i]);
    bs->nlisteners = 0;
    conn_close_all(bs);
    if (bs->resume_ev)
        event_free(bs->resume_ev);
    disk_close(&bs->disk);
    free(bs->iobuf);
    free(bs);
}

/* Parses "A.B.C.D:PORT" or "[V6]:PORT"; refuses wildcards and names. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len,
                      struct err **err)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || hl == 0 || hl >= sizeof(host) || !colon[1] || *end || port < 0 || port > 65535)
        return err_makex(err, EINVAL, "bad listen address '%s' (want IP:PORT, such as %s)", addr,
                         "127.0.0.1:5002");
    memcpy(host, addr, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof(*ss));
    bool wildcard;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return err_makex(err, EINVAL, "bad IPv6 address in '%s'", addr);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a);
        static const unsigned char mapped_any[16] = {[10] = 0xff, [11] = 0xff};
        wildcard = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) ||
                   !memcmp(&a->sin6_addr, mapped_any, sizeof(mapped_any));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return err_makex(err, EINVAL,
                             "bad listen address '%s' (want an IP address, not a name)", addr);
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *len = sizeof(*a);
        wildcard = a->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (wildcard)
        return err_makex(err, EINVAL,
                         "refusing to listen on the wildcard address '%s': the blob store has no "
                         "authentication, so name the address it should serve (such as "
                         "127.0.0.1:5002 or the host's cluster address)",
                         addr);
    return 0;
}

static void sockname(int fd, char out[64])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    out[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, 64, "[%s]:%d", host, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, 64, "%s:%d", host, ntohs(a->sin_port));
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    conn_accept(arg, fd, sa);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct blobstore *bs = arg;
    for (size_t i = 0; i < bs->nlisteners; i++)
        evconnlistener_enable(bs->listeners[i]);
}

/* accept failed (EMFILE, ENFILE, ENOMEM): pause the listeners for a second
 * rather than spin on a socket that stays readable */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct blobstore *bs = arg;
    log_warn("accept: %s (pausing new connections for 1s)", strerror(errno));
    for (size_t i = 0; i < bs->nlisteners; i++)
        evconnlistener_disable(bs->listeners[i]);
    if (!bs->resume_ev)
        bs->resume_ev = evtimer_new(bs->base, on_resume, bs);
    struct timeval tv = {1, 0};
    evtimer_add(bs->resume_ev, &tv);
}

int blobstore_listen(struct blobstore *bs, const char *addr, char out[64], struct err **err)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (bs->nlisteners == sizeof(bs->listeners) / sizeof(bs->listeners[0]))
        return err_makex(err, ENOSPC, "too many listen addresses");
    if (parse_addr(addr, &ss, &len, err) < 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_make(err, errno, "socket for '%s'", addr);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 511) < 0) {
        int e = errno;
        close(fd);
        return err_make(err, e, "listen on '%s'", addr);
    }
    struct evconnlistener *l = evconnlistener_new(
        bs->base, on_accept, bs, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (!l) {
        close(fd);
        return err_makex(err, EIO, "listen on '%s'", addr);
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    bs->listeners[bs->nlisteners++] = l;
    sockname(fd, out);
    return 0;
}
