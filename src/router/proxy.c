/*
 * proxy: the HTTP/1.1 reverse proxy state machine.
 *
 * One struct conn per client connection, one struct upstream per backend
 * connection. A conn reads a request head (C_HEAD), picks a route and a
 * backend, writes the rewritten head to an upstream and streams the body
 * (C_PROXY); it parses the response head, rewrites it, streams the body
 * back, then returns the upstream to its backend's pool and waits for the
 * next request. A 101 answer turns both into a byte tunnel (C_TUNNEL).
 * Bodies are never decoded: the parser only finds where they end, and
 * evbuffer chains move between the two bufferevents without copies.
 *
 * Backpressure: a side's output over HIGH_WATER stops reading the other
 * side; its write callback (low-water mark) starts it again. One read takes
 * at most HIGH_WATER (sock_read_cb), so memory per connection stays bounded
 * by the head limit plus twice HIGH_WATER per direction.
 *
 * Lifetimes: conn owns its upstream while attached (up->c == conn); an idle
 * upstream belongs to its backend's pool (up->c == NULL). conn_free frees
 * the attached upstream (never pooled there), its timer and its references
 * on the route table and backend. Callbacks only run on live objects: every
 * free path frees the bufferevent (which cancels its callbacks) first.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "h1.h"
#include "log.h"
#include "router.h"
#include "strbuf.h"
#include "xalloc.h"

#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)
#define STICKY_COOKIE "_backend"

enum cstate { C_HEAD, C_PROXY, C_TUNNEL, C_CLOSING };

struct upstream {
    struct bufferevent *bev;
    struct backend *b; /* one reference */
    struct conn *c;    /* NULL while idle in the pool */
    struct upstream *next, *prev;
    bool connected, reused, got_bytes, eof;
};

struct backend_pool {
    struct upstream *head;
    size_t n;
};

struct conn {
    struct router *r;
    struct conn *next, *prev;
    struct bufferevent *bev;
    struct event *timer;
    bool timer_head; /* the head timer (not the idle one) is armed */
    bool tls;
    bool plain; /* a TCP socket we write to directly (not TLS, not a pair) */
    int local_port;
    char peer[64];
    enum cstate state;
    struct upstream *up;
    struct route_table *table; /* reference while a request is in flight */
    struct route *route;
    struct backend *backend;
    struct h1_msg req, resp;
    struct strbuf head;  /* rewritten request head, kept for a retry */
    struct strbuf rhead; /* rewritten response head (buffer reused) */
    bool req_done, resp_head_done, resp_done, client_ka, close_after;
    bool upgrade_req, head_method, retryable, set_sticky, client_eof, resp_ka;
    int attempts, status, minor;
    size_t scanned; /* bytes of the pending head already searched for its end */
    uint64_t bytes_in, bytes_out;
    long long t0_us;
    char reqid[64];
    char method[16];
    char host[128];
    char path[256];
};

static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void process_head(struct conn *c);
static void conn_free(struct conn *c);
static bool maybe_h2(struct conn *c);

/* A TLS client's reading resumed or its input was consumed: records OpenSSL
 * read ahead are read now (tls_read_pending). */
static void tls_more(struct conn *c)
{
    if (c->tls && c->bev)
        tls_read_pending(c->bev);
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct timeval ms_tv(int ms)
{
    return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/* Writes a plain socket's output now instead of waiting for the next loop
 * turn: saves two epoll_ctl calls and a wakeup per write. EV_WRITE stays
 * off while the output is empty and goes on only when the kernel pushes
 * back (then libevent writes the rest and calls our write callback). */
void sock_write_now(struct bufferevent *bev)
{
    struct evbuffer *o = bufferevent_get_output(bev);
    if (!evbuffer_get_length(o))
        return;
    /* bufferevents keep their output's front frozen; thaw it for the
     * write, as libevent's own write callback does */
    evutil_socket_t fd = bufferevent_getfd(bev);
    evbuffer_unfreeze(o, 1);
    while (evbuffer_get_length(o) > 0)
        if (evbuffer_write(o, fd) <= 0)
            break;
    evbuffer_freeze(o, 1);
}

static void out_flush(struct bufferevent *bev, bool plain)
{
    struct evbuffer *o = bufferevent_get_output(bev);
    if (plain)
        sock_write_now(bev);
    size_t len = evbuffer_get_length(o);
    if (!plain && len > 0 && len <= 16384)
        evbuffer_pullup(o, -1); /* TLS: one record and one write, not one per chain */
    if (len)
        bufferevent_enable(bev, EV_WRITE);
    /* A socket-backed TLS bufferevent writes only when epoll reports the
     * socket writable: an epoll_ctl to add EPOLLOUT, a wakeup, and another
     * to remove it, per response. Running its write callback in this loop
     * turn instead writes now, and the add and remove then cancel out in
     * epoll's changelist. (Pairs, used by h2, have no write event.) */
    if (!plain && len && bufferevent_openssl_get_ssl(bev) && bufferevent_getfd(bev) >= 0)
        event_active(&bev->ev_write, EV_WRITE, 1);
}

/* Reads for plain socket bufferevents. libevent's own read callback asks
 * the kernel how much is waiting (ioctl FIONREAD) before every read and
 * reads at most 4 KiB (EVBUFFER_MAX_READ): a syscall per read for nothing,
 * and a wakeup per 4 KiB of a body. sock_read_cb replaces it (sock_own_reads
 * puts it in the bufferevent's read event) with the same contract: it reads
 * up to the bufferevent's max single read and below its read high-water
 * mark, runs the read callback once if bytes came (watermarks honoured),
 * and reports EOF, errors and the read timeout to the event callback with
 * reading disabled, as libevent does. EOF or an error right after some
 * bytes is found on the next wakeup (the socket stays readable). */
static void sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bufferevent *bev = arg;
    if (what == EV_TIMEOUT) {
        bufferevent_disable(bev, EV_READ);
        bufferevent_trigger_event(bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
        return;
    }
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t have = evbuffer_get_length(in), hi = 0;
    size_t max = (size_t)bufferevent_get_max_single_read(bev);
    bufferevent_getwatermark(bev, EV_READ, NULL, &hi);
    if (hi) {
        if (have >= hi)
            return; /* libevent suspends reading; draining resumes it */
        if (hi - have < max)
            max = hi - have;
    }
    /* a first read fits one 16 KiB chain; a full one means more is waiting */
    size_t got = 0, want = max < 16000 ? max : 16000;
    int err = 0;
    evbuffer_unfreeze(in, 0);
    while (want > 0) {
        struct evbuffer_iovec v[2];
        int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
        if (nv <= 0) {
            err = ENOMEM;
            break;
        }
        struct iovec iov[2];
        size_t room = 0;
        for (int i = 0; i < nv; i++) {
            size_t k = v[i].iov_len < want - room ? v[i].iov_len : want - room;
            iov[i] = (struct iovec){v[i].iov_base, k};
            room += k;
        }
        ssize_t n = readv(fd, iov, nv);
        if (n <= 0) {
            err = n == 0 ? -1 : errno; /* -1: EOF */
            evbuffer_commit_space(in, v, 0);
            if (err == EINTR)
                continue;
            break;
        }
        size_t left = (size_t)n;
        for (int i = 0; i < nv; i++) {
            v[i].iov_len = left < iov[i].iov_len ? left : iov[i].iov_len;
            left -= v[i].iov_len;
        }
        evbuffer_commit_space(in, v, nv);
        got += (size_t)n;
        if ((size_t)n < room)
            break;
        want = max - got;
    }
    evbuffer_freeze(in, 0);
    if (got) {
        /* may free the bufferevent: libevent defers that, but nothing of
         * it is touched after this */
        bufferevent_trigger(bev, EV_READ, 0);
        return;
    }
    if (err == EAGAIN || err == EWOULDBLOCK || err == 0)
        return;
    /* A refused connect is reported here: the read took the socket's error,
     * so libevent's connect check would now see none. */
    bufferevent_disable(bev, err == ECONNREFUSED ? EV_READ | EV_WRITE : EV_READ);
    bufferevent_trigger_event(bev,
                              BEV_EVENT_READING | (err == -1 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), 0);
}

void sock_own_reads(struct bufferevent *bev)
{
    event_del(&bev->ev_read);
    event_assign(&bev->ev_read, bufferevent_get_base(bev), bufferevent_getfd(bev),
                 EV_READ | EV_PERSIST | EV_FINALIZE, sock_read_cb, bev);
}

/* Write callbacks: once a plain socket's output is empty, EV_WRITE goes off
 * so that the next write is direct again. */
static void out_idle(struct bufferevent *bev, bool plain)
{
    if (plain && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
}

/* xoroshiro128+: request ids need uniqueness, not secrecy */
static uint64_t rng_next(struct router *r)
{
    uint64_t s0 = r->rng[0], s1 = r->rng[1], res = s0 + s1;
    s1 ^= s0;
    r->rng[0] = ((s0 << 55) | (s0 >> 9)) ^ s1 ^ (s1 << 14);
    r->rng[1] = (s1 << 36) | (s1 >> 28);
    return res;
}

/* A v4-UUID-shaped id, formatted by hand (this runs once per request). */
static void make_reqid(struct router *r, char out[64])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t w[2] = {rng_next(r), rng_next(r)};
    unsigned char b[16];
    memcpy(b, w, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

/* Appends the decimal form of v. */
static void add_num(struct strbuf *sb, long long v)
{
    char buf[24], *p = buf + sizeof(buf);
    bool neg = v < 0;
    unsigned long long u = neg ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        *--p = '-';
    strbuf_add(sb, p, (size_t)(buf + sizeof(buf) - p));
}

/* ---- upstream pool ---- */

static void up_free(struct upstream *u)
{
    if (!u)
        return;
    if (u->bev)
        bufferevent_free(u->bev);
    if (u->b)
        u->b->active -= u->c ? 1 : 0;
    backend_unref(u->b);
    free(u);
}

static void pool_remove(struct upstream *u)
{
    struct backend_pool *p = u->b->pool;
    if (u->prev)
        u->prev->next = u->next;
    else
        p->head = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    p->n--;
}

static void idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *u = arg;
    pool_remove(u);
    up_free(u);
}

static void idle_read_cb(struct bufferevent *bev, void *arg)
{
    idle_event_cb(bev, 0, arg); /* unsolicited bytes: the connection is unusable */
}

/* Hook for the backend's last reference: its pool is empty by then (every
 * pooled upstream holds a reference). */
void proxy_backend_release(struct backend *b)
{
    free(b->pool);
    b->pool = NULL;
}

void proxy_backend_close_idle(struct backend *b)
{
    struct backend_pool *p = b->pool;
    if (!p)
        return;
    backend_ref(b); /* the last pooled upstream must not free b under us */
    while (p->head) {
        struct upstream *u = p->head;
        pool_remove(u);
        up_free(u);
    }
    backend_unref(b);
}

/* Puts an upstream whose exchange ended cleanly back into its pool. */
static void pool_put(struct router *r, struct upstream *u)
{
    struct backend *b = u->b;
    u->c = NULL;
    b->active--;
    if (b->draining || !b->pool || (int)b->pool->n >= r->opts.max_idle_per_backend) {
        up_free(u);
        return;
    }
    bufferevent_setcb(u->bev, idle_read_cb, NULL, idle_event_cb, u);
    bufferevent_disable(u->bev, EV_WRITE);
    bufferevent_setwatermark(u->bev, EV_READ, 0, 0);
    bufferevent_setwatermark(u->bev, EV_WRITE, 0, 0);
    struct timeval idle = ms_tv(r->opts.idle_timeout_ms);
    bufferevent_set_timeouts(u->bev, &idle, NULL);
    bufferevent_enable(u->bev, EV_READ);
    u->next = b->pool->head;
    u->prev = NULL;
    if (u->next)
        u->next->prev = u;
    b->pool->head = u;
    b->pool->n++;
}

/* An upstream to b for c: a pooled one, or a new connection under way. */
static struct upstream *up_get(struct conn *c, struct backend *b, bool fresh)
{
    struct router *r = c->r;
    if (!b->pool)
        b->pool = xcalloc(1, sizeof(*b->pool));
    struct upstream *u = NULL;
    if (!fresh && b->pool->head) {
        u = b->pool->head;
        pool_remove(u);
        u->reused = true;
        r->m->upstream_reuses++;
    } else {
        u = xcalloc(1, sizeof(*u));
        u->b = b;
        backend_ref(b);
        int fd = socket(b->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            free(u);
            backend_unref(b);
            return NULL;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        u->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
        /* libevent's default 16 KiB per read/write costs a wakeup per 16 KiB */
        bufferevent_set_max_single_read(u->bev, HIGH_WATER);
        bufferevent_set_max_single_write(u->bev, HIGH_WATER);
        if (bufferevent_socket_connect(u->bev, (struct sockaddr *)&b->sa, (int)b->salen) < 0) {
            /* immediate failure: report through the event callback path */
            u->eof = true;
        }
        sock_own_reads(u->bev);
        r->m->upstream_connects++;
    }
    u->c = c;
    b->active++;
    u->got_bytes = false;
    bufferevent_setcb(u->bev, up_read_cb, up_write_cb, up_event_cb, u);
    bufferevent_setwatermark(u->bev, EV_WRITE, LOW_WATER, 0);
    /* a backend that went away without a word (its host or network gone)
     * does not answer a connect: it gets connect_timeout, not the idle one */
    int ms = r->opts.upstream_timeout_ms;
    if (!u->connected && r->opts.connect_timeout_ms > 0 && r->opts.connect_timeout_ms < ms)
        ms = r->opts.connect_timeout_ms;
    struct timeval t = ms_tv(ms);
    bufferevent_set_timeouts(u->bev, &t, &t);
    /* a connecting socket needs EV_WRITE to learn it is up */
    bufferevent_enable(u->bev, u->connected ? EV_READ : EV_READ | EV_WRITE);
    return u;
}

/* ---- access log and replies ---- */

static void access_line(struct conn *c)
{
    struct router *r = c->r;
    int cls = c->status / 100;
    if (cls >= 1 && cls <= 5)
        r->m->responses[cls]++;
    if (!r->access)
        return;
    char ts[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(r->access, "%s router access: id=%s client=%s method=%s host=%s path=%s status=%d "
                       "bytes_in=%llu bytes_out=%llu ms=%.3f backend=%s route=%s\n",
            ts, c->reqid, c->peer, c->method, c->host[0] ? c->host : "-", c->path, c->status,
            (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
            (double)(now_us() - c->t0_us) / 1000.0, c->backend ? c->backend->addr : "-",
            c->route && c->route->id[0] ? c->route->id : "-");
}

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static void enter_closing(struct conn *c);

/* Answers the current request with a small page made by the router itself.
 * close: the connection ends after it. */
static void reply_page(struct conn *c, int status, const char *detail, bool close)
{
    char body[512];
    int bl = snprintf(body, sizeof(body),
                      "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"
                      "<body><h1>%d %s</h1><p>%s</p></body></html>\n",
                      status, reason(status), status, reason(status), detail);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                        "Content-Length: %d\r\nCache-Control: no-store\r\n"
                        "X-Request-Id: %s\r\n%s\r\n",
                        status, reason(status), bl, c->reqid[0] ? c->reqid : "-",
                        close ? "Connection: close\r\n" : "");
    if (!c->head_method)
        evbuffer_add(out, body, (size_t)bl);
    out_flush(c->bev, c->plain);
    c->status = status;
    c->bytes_out += (uint64_t)bl;
    c->r->m->bytes_out += (uint64_t)bl;
    access_line(c);
    if (close)
        enter_closing(c);
}

/* ---- connection lifecycle ---- */

static void conn_end_request(struct conn *c)
{
    if (c->up) {
        up_free(c->up);
        c->up = NULL;
    }
    c->route = NULL;
    c->backend = NULL;
    if (c->table) {
        route_table_unref(c->table);
        c->table = NULL;
    }
}

static void conn_free(struct conn *c)
{
    struct router *r = c->r;
    conn_end_request(c);
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->timer)
        event_free(c->timer);
    strbuf_release(&c->head);
    strbuf_release(&c->rhead);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->m->conns_active--;
    free(c);
}

void proxy_close_all(struct router *r)
{
    while (r->conns)
        conn_free(r->conns);
}

/* Output flushed (low-water 0): the conn ends. */
static void closing_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c);
}

static void enter_closing(struct conn *c)
{
    conn_end_request(c);
    c->state = C_CLOSING;
    if (c->timer)
        evtimer_del(c->timer);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_setcb(c->bev, NULL, closing_write_cb, NULL, c);
    struct timeval t = ms_tv(c->r->opts.idle_timeout_ms);
    bufferevent_set_timeouts(c->bev, NULL, &t);
    out_flush(c->bev, c->plain);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        /* never free under the caller: the timer ends the conn next turn */
        struct timeval zero = {0, 0};
        evtimer_add(c->timer, &zero);
    }
}

/* Drops the conn without flushing (a cut-short response): freed on the next
 * loop turn, so callers up the stack may still look at it. */
static void conn_abort(struct conn *c)
{
    conn_end_request(c);
    c->state = C_CLOSING;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    struct timeval zero = {0, 0};
    evtimer_add(c->timer, &zero);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->state == C_CLOSING) {
        conn_free(c);
        return;
    }
    if (c->state != C_HEAD)
        return;
    if (!c->timer_head) { /* idle keep-alive connection */
        conn_free(c);
        return;
    }
    c->r->m->timeouts++;
    reply_page(c, 408, "The request head did not arrive in time.", true);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) { /* TLS handshake done */
        c->r->m->tls_handshakes++;
        if (!maybe_h2(c))
            tls_more(c); /* the request may have come with the handshake's end */
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && c->state == C_PROXY &&
        c->req_done) {
        /* the client is quiet because it waits for the backend (long polls):
         * the backend's own timeout applies, not the client's idle one */
        bufferevent_enable(bev, EV_READ);
        tls_more(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        c->r->m->timeouts++;
    if (c->tls && (what & BEV_EVENT_ERROR) && c->state == C_HEAD && !c->t0_us)
        c->r->m->tls_errors++;
    if (c->state == C_TUNNEL && (what & BEV_EVENT_EOF) && c->up) {
        /* half close: pass the client's EOF on once its bytes are out */
        c->client_eof = true;
        bufferevent_disable(c->bev, EV_READ);
        struct evbuffer *o = bufferevent_get_output(c->up->bev);
        if (evbuffer_get_length(o) == 0)
            shutdown(bufferevent_getfd(c->up->bev), SHUT_WR);
        if (c->up->eof)
            conn_free(c);
        return;
    }
    conn_free(c);
}

/* A new plain connection's first bytes, read at once rather than after an
 * epoll round by its bufferevent, which would also precede the read with an
 * ioctl(FIONREAD). The HTTP listener defers accept until the client has sent
 * something (TCP_DEFER_ACCEPT, router.c), so the request is usually there.
 * Returns false when the conn was freed. */
static bool first_read(struct conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v[1];
    size_t want = c->r->opts.max_head + 1 < 16384 ? c->r->opts.max_head + 1 : 16384;
    evbuffer_unfreeze(in, 0);
    int nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 1);
    ssize_t n = -1;
    int e = EAGAIN;
    if (nv == 1) {
        size_t len = v[0].iov_len < want ? v[0].iov_len : want;
        while ((n = read(fd, v[0].iov_base, len)) < 0 && errno == EINTR)
            ;
        e = errno;
        v[0].iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(in, v, n > 0 ? 1 : 0);
    }
    evbuffer_freeze(in, 0);
    if (n == 0 || (n < 0 && e != EAGAIN && e != EWOULDBLOCK)) {
        conn_free(c); /* EOF or an error before any request */
        return false;
    }
    bufferevent_enable(c->bev, EV_READ);
    if (n > 0)
        client_read_cb(c->bev, c);
    return true;
}

static void conn_start(struct router *r, struct conn *c)
{
    c->next = r->conns;
    if (c->next)
        c->next->prev = c;
    r->conns = c;
    r->m->conns_active++;
    c->timer = evtimer_new(r->base, timer_cb, c);
    c->state = C_HEAD;
    bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, r->opts.max_head + 1);
    bufferevent_setwatermark(c->bev, EV_WRITE, LOW_WATER, 0);
    struct timeval t = ms_tv(r->opts.idle_timeout_ms);
    bufferevent_set_timeouts(c->bev, &t, &t);
    if (c->plain) { /* libevent starts a bufferevent with EV_WRITE on */
        bufferevent_disable(c->bev, EV_WRITE);
        first_read(c);
        return;
    }
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

void proxy_accept(struct router *r, int fd, const struct sockaddr *sa, int local_port, bool tls)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->tls = tls;
    c->local_port = local_port;
    strbuf_init(&c->head, 1024);
    strbuf_init(&c->rhead, 0);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof(c->peer));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer,
                  sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "unknown");
    /* TCP_NODELAY comes from the listening socket (router_bind) */
    if (tls) {
        SSL *ssl = SSL_new(r->ssl_default);
        c->bev = bufferevent_openssl_socket_new(r->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    } else {
        c->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
        c->plain = true;
        if (c->bev)
            sock_own_reads(c->bev);
    }
    if (!c->bev) {
        close(fd);
        strbuf_release(&c->head);
        free(c);
        return;
    }
    r->m->conns_accepted++;
    bufferevent_set_max_single_read(c->bev, HIGH_WATER);
    bufferevent_set_max_single_write(c->bev, HIGH_WATER);
    conn_start(r, c);
}

void proxy_accept_bev(struct router *r, struct bufferevent *bev, const char *peer, int local_port,
                      bool tls)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->r = r;
    c->tls = tls;
    c->local_port = local_port;
    c->bev = bev;
    strbuf_init(&c->head, 1024);
    strbuf_init(&c->rhead, 0);
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    conn_start(r, c);
}

/* Called by the client side once TLS chose h2: hands the connection to h2.c. */
static bool maybe_h2(struct conn *c)
{
    if (!c->tls || c->t0_us)
        return false;
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    const unsigned char *proto = NULL;
    unsigned len = 0;
    if (ssl)
        SSL_get0_alpn_selected(ssl, &proto, &len);
    if (len != 2 || memcmp(proto, "h2", 2))
        return false;
    struct bufferevent *bev = c->bev;
    c->bev = NULL;
    char peer[64];
    snprintf(peer, sizeof(peer), "%s", c->peer);
    struct router *r = c->r;
    int port = c->local_port;
    conn_free(c);
    r->m->conns_active++; /* still the same client connection */
    h2_conn_start(r, bev, peer, port);
    return true;
}

/* ---- request head ---- */

static bool is_hop_header(struct h1_slice name, struct h1_slice conn_hdr)
{
    static const char *hop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                "upgrade",    "x-forwarded-proto", "x-forwarded-port",
                                "x-request-start", "x-request-id", "x-forwarded-for"};
    for (size_t i = 0; i < ARRAY_SIZE(hop); i++)
        if (h1_slice_eq(name, hop[i]))
            return true;
    if (conn_hdr.n) { /* headers named by Connection are hop-by-hop too */
        char tok[64];
        if (name.n < sizeof(tok)) {
            memcpy(tok, name.p, name.n);
            tok[name.n] = '\0';
            if (h1_list_has(conn_hdr, tok))
                return true;
        }
    }
    return false;
}

static void copy_slice(char *dst, size_t cap, struct h1_slice s)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        dst[i] = (ch > 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[n] = '\0';
}

static bool reqid_ok(struct h1_slice s)
{
    if (s.n == 0 || s.n > 60)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (!(isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == ':' || ch == '+' ||
              ch == '/' || ch == '='))
            return false;
    }
    return true;
}

/* ---- sticky sessions: "_backend=HEXADDR.HEXMAC" ---- */

static void sticky_mac(struct router *r, const char *addr, char out[33])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), r->sticky_key, sizeof(r->sticky_key), (const unsigned char *)addr,
         strlen(addr), mac, &ml);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static struct backend *sticky_pick(struct conn *c, const struct h1_head *h)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!h1_slice_eq(h->headers[i].name, "cookie"))
            continue;
        struct h1_slice v = h->headers[i].value;
        const char *p = v.p, *end = v.p + v.n;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *s = p;
            while (p < end && *p != ';')
                p++;
            size_t kl = strlen(STICKY_COOKIE);
            if ((size_t)(p - s) <= kl + 1 || memcmp(s, STICKY_COOKIE "=", kl + 1))
                continue;
            s += kl + 1;
            const char *dot = memchr(s, '.', (size_t)(p - s));
            if (!dot || (size_t)(dot - s) % 2 || (size_t)(dot - s) >= 2 * 64 ||
                p - dot - 1 != 32)
                continue;
            char addr[64];
            size_t al = (size_t)(dot - s) / 2;
            bool bad = false;
            for (size_t k = 0; k < al; k++) {
                unsigned x;
                if (sscanf(s + 2 * k, "%2x", &x) != 1) {
                    bad = true;
                    break;
                }
                addr[k] = (char)x;
            }
            if (bad)
                continue;
            addr[al] = '\0';
            char mac[33];
            sticky_mac(c->r, addr, mac);
            if (CRYPTO_memcmp(mac, dot + 1, 32))
                continue;
            for (size_t k = 0; k < c->route->nbackends; k++)
                if (!strcmp(c->route->backends[k]->addr, addr))
                    return c->route->backends[k];
        }
    }
    return NULL;
}

static struct backend *pick_backend(struct conn *c)
{
    struct route *rt = c->route;
    if (!rt->nbackends)
        return NULL;
    return rt->backends[rt->rr++ % rt->nbackends];
}

static void build_head(struct conn *c, const struct h1_head *h)
{
    struct strbuf *sb = &c->head;
    strbuf_reset(sb);
    strbuf_add(sb, h->method.p, h->method.n);
    strbuf_addch(sb, ' ');
    strbuf_add(sb, h->url.p, h->url.n);
    strbuf_adds(sb, h->minor >= 1 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    const struct h1_header *ch = h1_head_find(h, "connection");
    struct h1_slice conn_hdr = ch ? ch->value : (struct h1_slice){NULL, 0};
    const struct h1_header *xff = NULL, *up = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct h1_header *hd = &h->headers[i];
        if (is_hop_header(hd->name, conn_hdr)) {
            if (h1_slice_eq(hd->name, "x-forwarded-for"))
                xff = hd;
            else if (h1_slice_eq(hd->name, "upgrade"))
                up = hd;
            continue;
        }
        strbuf_add(sb, hd->name.p, hd->name.n);
        strbuf_add(sb, ": ", 2);
        strbuf_add(sb, hd->value.p, hd->value.n);
        strbuf_add(sb, "\r\n", 2);
    }
    if (c->upgrade_req && up) {
        strbuf_adds(sb, "Connection: upgrade\r\nUpgrade: ");
        strbuf_add(sb, up->value.p, up->value.n);
        strbuf_add(sb, "\r\n", 2);
    } else if (c->route->disable_keep_alives) {
        strbuf_adds(sb, "Connection: close\r\n");
    } else if (h->minor == 0) {
        strbuf_adds(sb, "Connection: keep-alive\r\n");
    }
    strbuf_adds(sb, "X-Forwarded-For: ");
    if (xff && xff->value.n) {
        strbuf_add(sb, xff->value.p, xff->value.n);
        strbuf_add(sb, ", ", 2);
    }
    strbuf_adds(sb, c->peer);
    strbuf_adds(sb, c->tls ? "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: "
                           : "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ");
    add_num(sb, c->local_port);
    strbuf_adds(sb, "\r\nX-Request-Id: ");
    strbuf_adds(sb, c->reqid);
    strbuf_adds(sb, "\r\nX-Request-Start: ");
    add_num(sb, c->t0_us / 1000);
    strbuf_add(sb, "\r\n\r\n", 4);
}

static void forward_req_body(struct conn *c);
static void start_upstream(struct conn *c, bool fresh);

static bool idempotent(int m)
{
    return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_PUT ||
           m == HTTP_DELETE || m == HTTP_TRACE;
}

/* Reads request heads while the conn is in C_HEAD; answers the router's own
 * pages inline, starts the proxying otherwise. */
static void process_head(struct conn *c)
{
    struct router *r = c->r;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->state == C_HEAD) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            return;
        if (!c->timer_head) { /* first bytes of a head: the head clock starts */
            struct timeval t = ms_tv(r->opts.header_timeout_ms);
            c->timer_head = true;
            evtimer_add(c->timer, &t);
        }
        size_t lim = len < r->opts.max_head ? len : r->opts.max_head;
        const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)lim);
        size_t n = h1_head_end_from(buf, lim, c->scanned > 3 ? c->scanned - 3 : 0);
        c->scanned = n ? 0 : lim;
        c->t0_us = now_us();
        c->reqid[0] = '\0';
        c->head_method = false;
        if (n == 0) {
            if (len >= r->opts.max_head) {
                r->m->head_too_large++;
                snprintf(c->method, sizeof(c->method), "-");
                snprintf(c->path, sizeof(c->path), "-");
                c->host[0] = '\0';
                reply_page(c, 431, "The request head is too large.", true);
            }
            return;
        }
        struct h1_head h;
        h1_msg_init(&c->req, H1_REQUEST);
        int st = h1_msg_head(&c->req, buf, n, &h);
        make_reqid(r, c->reqid);
        c->bytes_in = n;
        c->bytes_out = 0;
        c->status = 0;
        r->m->requests++;
        r->m->bytes_in += n;
        if (st) {
            if (st == 431)
                r->m->head_too_large++;
            else
                r->m->bad_requests++;
            if (c->req.error && strstr(c->req.error, "content-length"))
                r->m->smuggling++;
            snprintf(c->method, sizeof(c->method), "-");
            snprintf(c->path, sizeof(c->path), "-");
            c->host[0] = '\0';
            log_debug("bad request from %s: %s", c->peer, c->req.error);
            reply_page(c, st, "The request could not be understood.", true);
            return;
        }
        evtimer_del(c->timer);
        c->timer_head = false;
        copy_slice(c->method, sizeof(c->method), h.method);
        copy_slice(c->path, sizeof(c->path), h.url);
        const struct h1_header *host = h1_head_find(&h, "host");
        struct h1_slice hs = host ? host->value : (struct h1_slice){"", 0};
        copy_slice(c->host, sizeof(c->host), hs);
        const struct h1_header *rid = h1_head_find(&h, "x-request-id");
        if (rid && reqid_ok(rid->value))
            copy_slice(c->reqid, sizeof(c->reqid), rid->value);
        c->head_method = h.method_id == HTTP_HEAD;
        c->client_ka = (h.flags & H1_KEEP_ALIVE) != 0;
        c->minor = h.minor;
        c->upgrade_req = (h.flags & H1_UPGRADE) != 0;
        c->req_done = h1_msg_done(&c->req);
        bool has_body = (h.flags & H1_HAS_BODY) != 0;

        c->table = r->table;
        route_table_ref(c->table);
        c->route = route_table_lookup(c->table, hs.p, hs.n, h.url.p, h.url.n);
        if (!c->route) {
            r->m->no_route++;
            evbuffer_drain(in, n);
            reply_page(c, 404, "No application is served at this address.",
                       has_body || !c->client_ka);
            if (c->state == C_HEAD)
                conn_end_request(c);
            continue;
        }
        c->set_sticky = false;
        c->backend = NULL;
        if (c->route->sticky) {
            c->backend = sticky_pick(c, &h);
            c->set_sticky = c->backend == NULL;
        }
        if (!c->backend)
            c->backend = pick_backend(c);
        if (!c->backend) {
            evbuffer_drain(in, n);
            reply_page(c, 503, "No backend is available for this application.",
                       has_body || !c->client_ka);
            if (c->state == C_HEAD)
                conn_end_request(c);
            continue;
        }
        build_head(c, &h);
        evbuffer_drain(in, n);
        c->retryable = idempotent(h.method_id) && !has_body;
        c->attempts = 1;
        c->resp_head_done = c->resp_done = false;
        c->close_after = false;
        c->client_eof = false;
        c->state = C_PROXY;
        start_upstream(c, false);
        return;
    }
}

static void start_upstream(struct conn *c, bool fresh)
{
    c->up = up_get(c, c->backend, fresh);
    if (!c->up) {
        c->r->m->upstream_errors++;
        reply_page(c, 502, "The application could not be reached.", true);
        return;
    }
    bufferevent_write(c->up->bev, c->head.buf, c->head.len);
    if (c->up->connected && c->req_done)
        out_flush(c->up->bev, true);
    if (c->up->eof) { /* connect failed at once: let the event loop report it */
        bufferevent_trigger_event(c->up->bev, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
        return;
    }
    if (!c->req_done)
        forward_req_body(c);
}

/* Moves request body bytes (as many as this message has) to the upstream. */
static void forward_req_body(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->up->bev);
    while (!c->req_done && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t n = h1_msg_body(&c->req, v.iov_base, v.iov_len);
        if (h1_msg_failed(&c->req)) {
            c->r->m->bad_requests++;
            if (!c->resp_head_done)
                reply_page(c, 400, "The request body is malformed.", true);
            else
                conn_abort(c);
            return;
        }
        if (n) {
            evbuffer_remove_buffer(in, out, n);
            c->bytes_in += n;
            c->r->m->bytes_in += n;
        }
        if (h1_msg_done(&c->req))
            c->req_done = true;
        else if (n < v.iov_len)
            break; /* cannot happen: the parser takes all or ends the message */
    }
    if (c->up->connected)
        out_flush(c->up->bev, true);
    if (!c->req_done && evbuffer_get_length(out) >= HIGH_WATER) {
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    bufferevent_enable(c->bev, EV_READ);
    tls_more(c);
}

/* ---- response ---- */

static void finish_exchange(struct conn *c)
{
    struct router *r = c->r;
    struct upstream *u = c->up;
    bool up_reusable = (c->resp.p.flags & F_CONNECTION_CLOSE) == 0 && c->resp_ka && c->req_done &&
                       !c->route->disable_keep_alives && u && !u->eof &&
                       evbuffer_get_length(bufferevent_get_input(u->bev)) == 0;
    access_line(c);
    if (u) {
        c->up = NULL;
        if (up_reusable)
            pool_put(r, u);
        else
            up_free(u);
    }
    conn_end_request(c);
    if (!c->client_ka || !c->req_done || c->close_after) {
        enter_closing(c);
        return;
    }
    c->state = C_HEAD; /* the read timeout (idle_timeout) ends idle keep-alives */
    c->timer_head = false;
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)))
        process_head(c);
    tls_more(c);
}

static bool is_resp_hop(struct h1_slice name, struct h1_slice conn_hdr)
{
    static const char *hop[] = {"connection", "keep-alive", "proxy-connection", "upgrade"};
    for (size_t i = 0; i < ARRAY_SIZE(hop); i++)
        if (h1_slice_eq(name, hop[i]))
            return true;
    if (conn_hdr.n && name.n < 64) {
        char tok[64];
        memcpy(tok, name.p, name.n);
        tok[name.n] = '\0';
        if (h1_list_has(conn_hdr, tok) && !h1_slice_eq(name, "transfer-encoding"))
            return true;
    }
    return false;
}

static void bad_gateway(struct conn *c, int status, const char *why)
{
    c->r->m->bad_gateway++;
    log_warn("request %s to %s: %s", c->reqid, c->backend ? c->backend->addr : "-", why);
    if (c->resp_head_done) {
        conn_abort(c); /* the response is cut short: the client sees the close */
        return;
    }
    reply_page(c, status,
               status == 504 ? "The application did not answer in time."
                             : "The application could not be reached.",
               true);
}

static void pump(struct bufferevent *from, struct bufferevent *to, uint64_t *count)
{
    struct evbuffer *in = bufferevent_get_input(from);
    size_t n = evbuffer_get_length(in);
    if (n) {
        *count += n;
        evbuffer_add_buffer(bufferevent_get_output(to), in);
        bufferevent_enable(to, EV_WRITE); /* tunnels: libevent writes */
    }
    if (evbuffer_get_length(bufferevent_get_output(to)) >= HIGH_WATER)
        bufferevent_disable(from, EV_READ);
}

static void enter_tunnel(struct conn *c)
{
    c->state = C_TUNNEL;
    c->r->m->upgrades++;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    bufferevent_set_timeouts(c->up->bev, NULL, NULL);
    evtimer_del(c->timer);
    out_flush(c->bev, c->plain); /* the 101 head */
    pump(c->up->bev, c->bev, &c->bytes_out);
    bufferevent_enable(c->bev, EV_READ);
    pump(c->bev, c->up->bev, &c->bytes_in);
    tls_more(c);
}

/* Response bytes from the backend: the head, then the body. */
static void process_resp(struct conn *c)
{
    struct router *r = c->r;
    struct upstream *u = c->up;
    struct evbuffer *in = bufferevent_get_input(u->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (!c->resp_head_done) {
        size_t len = evbuffer_get_length(in);
        if (len == 0) {
            out_flush(c->bev, c->plain); /* a 1xx may be waiting */
            return;
        }
        size_t lim = len < r->opts.max_head ? len : r->opts.max_head;
        const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)lim);
        size_t n = h1_head_end(buf, lim);
        if (n == 0) {
            if (len >= r->opts.max_head)
                bad_gateway(c, 502, "response head too large");
            return;
        }
        struct h1_head h;
        h1_msg_init(&c->resp, H1_RESPONSE);
        if (c->head_method)
            h1_msg_set_skip_body(&c->resp);
        if (h1_msg_head(&c->resp, buf, n, &h)) {
            bad_gateway(c, 502, c->resp.error);
            return;
        }
        c->status = h.status;
        if (h.status == 101) {
            if (!c->upgrade_req) {
                bad_gateway(c, 502, "101 without an upgrade request");
                return;
            }
            evbuffer_remove_buffer(in, out, n);
            c->bytes_out += n;
            c->resp_head_done = true;
            access_line(c);
            enter_tunnel(c);
            return;
        }
        if (h.status / 100 == 1) { /* 100 Continue and friends: pass on, read on */
            evbuffer_remove_buffer(in, out, n);
            c->bytes_out += n;
            continue;
        }
        const struct h1_header *ch = h1_head_find(&h, "connection");
        struct h1_slice conn_hdr = ch ? ch->value : (struct h1_slice){NULL, 0};
        c->resp_ka = (h.flags & H1_KEEP_ALIVE) != 0;
        if (h.flags & H1_BODY_TO_EOF)
            c->close_after = true;
        if (!c->req_done) /* answered before the whole body came: close after */
            c->close_after = true;
        struct strbuf sb = c->rhead; /* reused from response to response */
        strbuf_reset(&sb);
        strbuf_grow(&sb, n + 128);
        strbuf_adds(&sb, c->minor >= 1 ? "HTTP/1.1 " : "HTTP/1.0 ");
        add_num(&sb, h.status);
        strbuf_addch(&sb, ' ');
        strbuf_add(&sb, h.reason.p, h.reason.n);
        strbuf_add(&sb, "\r\n", 2);
        for (size_t i = 0; i < h.nheaders; i++) {
            const struct h1_header *hd = &h.headers[i];
            if (is_resp_hop(hd->name, conn_hdr))
                continue;
            strbuf_add(&sb, hd->name.p, hd->name.n);
            strbuf_add(&sb, ": ", 2);
            strbuf_add(&sb, hd->value.p, hd->value.n);
            strbuf_add(&sb, "\r\n", 2);
        }
        if (c->set_sticky && c->backend) {
            char mac[33];
            sticky_mac(r, c->backend->addr, mac);
            strbuf_adds(&sb, "Set-Cookie: " STICKY_COOKIE "=");
            for (const char *p = c->backend->addr; *p; p++)
                strbuf_addf(&sb, "%02x", (unsigned char)*p);
            strbuf_addf(&sb, ".%s; Path=/; HttpOnly\r\n", mac);
        }
        if (c->close_after || !c->client_ka)
            strbuf_adds(&sb, "Connection: close\r\n");
        else if (c->minor == 0)
            strbuf_adds(&sb, "Connection: keep-alive\r\n");
        strbuf_add(&sb, "\r\n", 2);
        evbuffer_add(out, sb.buf, sb.len);
        c->bytes_out += sb.len;
        r->m->bytes_out += sb.len;
        c->rhead = sb;
        evbuffer_drain(in, n);
        c->resp_head_done = true;
        c->resp_done = h1_msg_done(&c->resp);
    }
    while (!c->resp_done && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t n = h1_msg_body(&c->resp, v.iov_base, v.iov_len);
        if (h1_msg_failed(&c->resp)) {
            bad_gateway(c, 502, "malformed response body");
            return;
        }
        if (n) {
            evbuffer_remove_buffer(in, out, n);
            c->bytes_out += n;
            r->m->bytes_out += n;
        }
        if (h1_msg_done(&c->resp))
            c->resp_done = true;
        else if (n < v.iov_len)
            break;
    }
    out_flush(c->bev, c->plain);
    if (c->resp_done) {
        finish_exchange(c);
        return;
    }
    if (evbuffer_get_length(out) >= HIGH_WATER)
        bufferevent_disable(u->bev, EV_READ);
}

/* ---- callbacks ---- */

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    switch (c->state) {
    case C_HEAD:
        if (maybe_h2(c))
            return;
        process_head(c);
        break;
    case C_PROXY:
        /* a pipelined request waits in the input (capped by the read
         * high-water mark) until this exchange ends */
        if (!c->req_done && c->up)
            forward_req_body(c);
        break;
    case C_TUNNEL:
        pump(c->bev, c->up->bev, &c->bytes_in);
        break;
    case C_CLOSING:
        break;
    }
    tls_more(c);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    out_idle(bev, c->plain);
    if (c->state == C_PROXY && c->up && c->resp_head_done && !c->resp_done) {
        bufferevent_enable(c->up->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_input(c->up->bev)))
            process_resp(c);
    } else if (c->state == C_TUNNEL && c->up) {
        if (c->up->eof && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
            conn_free(c);
            return;
        }
        bufferevent_enable(c->up->bev, EV_READ);
        pump(c->up->bev, c->bev, &c->bytes_out);
    }
}

static void up_read_cb(struct bufferevent *bev, void *arg)
{
    struct upstream *u = arg;
    struct conn *c = u->c;
    u->got_bytes = true;
    if (c->state == C_PROXY)
        process_resp(c);
    else if (c->state == C_TUNNEL)
        pump(u->bev, c->bev, &c->bytes_out);
}

static void up_write_cb(struct bufferevent *bev, void *arg)
{
    struct upstream *u = arg;
    struct conn *c = u->c;
    out_idle(bev, true);
    if (c->state == C_PROXY && !c->req_done)
        forward_req_body(c);
    else if (c->state == C_TUNNEL) {
        if (c->client_eof) {
            if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
                shutdown(bufferevent_getfd(bev), SHUT_WR);
            return;
        }
        bufferevent_enable(c->bev, EV_READ);
        pump(c->bev, u->bev, &c->bytes_in);
        tls_more(c);
    }
}

/* Moves what was queued for a failed upstream to a new one (nothing of it
 * was sent: the connection never came up). */
static bool retry_connect(struct conn *c)
{
    struct route *rt = c->route;
    if (c->attempts >= c->r->opts.max_attempts || rt->nbackends < 2)
        return false;
    struct upstream *old = c->up;
    struct backend *b = NULL;
    for (size_t i = 0; i < rt->nbackends && !b; i++) {
        struct backend *cand = pick_backend(c);
        if (cand != old->b && !cand->draining)
            b = cand;
    }
    if (!b)
        return false;
    c->attempts++;
    c->r->m->retries++;
    c->backend = b;
    c->up = NULL;
    struct upstream *u = up_get(c, b, true);
    if (!u) {
        c->up = old;
        return false;
    }
    evbuffer_add_buffer(bufferevent_get_output(u->bev), bufferevent_get_output(old->bev));
    up_free(old);
    c->up = u;
    if (u->eof)
        bufferevent_trigger_event(u->bev, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
    return true;
}

static void up_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct upstream *u = arg;
    struct conn *c = u->c;
    if (what & BEV_EVENT_CONNECTED) {
        u->connected = true;
        struct timeval t = ms_tv(c->r->opts.upstream_timeout_ms);
        bufferevent_set_timeouts(bev, &t, &t);
        return;
    }
    if (c->state == C_TUNNEL) {
        if (what & BEV_EVENT_EOF) {
            u->eof = true;
            pump(u->bev, c->bev, &c->bytes_out);
            bufferevent_disable(u->bev, EV_READ);
            if (c->client_eof || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
                conn_free(c);
            return;
        }
        conn_free(c);
        return;
    }
    if (c->state != C_PROXY) {
        conn_free(c);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        u->eof = true;
        if (c->resp_head_done) {
            if (evbuffer_get_length(bufferevent_get_input(bev)))
                process_resp(c);
            if (c->state != C_PROXY || c->up != u)
                return;
            if (!c->resp_done) {
                h1_msg_body(&c->resp, NULL, 0);
                if (h1_msg_done(&c->resp)) {
                    c->resp_done = true;
                    finish_exchange(c);
                    return;
                }
            }
            bad_gateway(c, 502, "backend closed mid-response");
            return;
        }
    }
    if (!u->connected) {
        bool timed_out = what & BEV_EVENT_TIMEOUT;
        c->r->m->upstream_errors++;
        if (timed_out)
            c->r->m->timeouts++;
        log_info("request %s: connect to %s %s", c->reqid, u->b->addr,
                 timed_out ? "timed out" : "failed");
        if (retry_connect(c))
            return;
        bad_gateway(c, timed_out ? 504 : 502, timed_out ? "connect timed out" : "connect failed");
        return;
    }
    if (u->reused && !u->got_bytes && c->retryable && c->attempts < c->r->opts.max_attempts) {
        /* a pooled connection the backend had closed: try a fresh one */
        c->attempts++;
        c->r->m->retries++;
        up_free(u);
        c->up = NULL;
        start_upstream(c, true);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        c->r->m->timeouts++;
        bad_gateway(c, 504, "backend timed out");
        return;
    }
    bad_gateway(c, 502, "backend connection failed");
}
