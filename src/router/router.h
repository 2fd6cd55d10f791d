/*
 * router: the context of flynn-router (one per process, one event loop).
 *
 * main.c fills struct router_opts from flags, router_new() builds the
 * context, router_listen_*() bind the listeners, event_base_dispatch runs
 * it. proxy.c holds the HTTP/1.1 proxy (client and upstream connections,
 * upstream pools), tcp.c TCP routes, tls.c the TLS contexts and SNI,
 * metrics.c the counters and their endpoint.
 *
 * Lifetimes: the router owns the route table (reference counted: every
 * request in flight holds a reference, so a reload never frees a route
 * under a request), the listeners and every connection. router_free closes
 * all of them.
 */
#ifndef ROUTER_ROUTER_H
#define ROUTER_ROUTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "route_table.h"

struct event_base;
struct evconnlistener;
struct evhttp;
struct bufferevent;
struct ssl_ctx_st;
struct strbuf;
struct sockaddr;

struct router_opts {
    const char *routes_file;
    const char *cert_file, *key_file; /* cluster wildcard certificate */
    size_t max_head;                  /* request/response head limit, bytes */
    int header_timeout_ms;            /* whole request head must arrive within */
    int idle_timeout_ms;              /* keep-alive idle and read/write idle */
    int upstream_timeout_ms;          /* backend response idle */
    int connect_timeout_ms;           /* backend connect; then the next backend */
    int max_idle_per_backend;         /* pooled upstream connections */
    int max_attempts;                 /* backends tried for one request */
    const char *access_log;           /* path, "-" stderr, "off" */
    const char *sticky_key_file;      /* 32+ bytes; random when NULL */
    const char *tcp_host;             /* address TCP routes bind on */
    int tcp_min, tcp_max;             /* allowed TCP route ports */
};

/* Counters served by /metrics (metrics.c names them). */
struct router_metrics {
    uint64_t conns_accepted, conns_active, tls_handshakes, tls_errors;
    uint64_t requests, requests_h2, responses[6]; /* [1]..[5]: by class */
    uint64_t no_route, bad_requests, head_too_large, timeouts, smuggling;
    uint64_t upstream_connects, upstream_reuses, upstream_errors, retries, bad_gateway;
    uint64_t upgrades, bytes_in, bytes_out, tcp_conns, reloads, reload_errors;
};

struct router {
    struct event_base *base;
    struct router_opts opts;
    struct route_table *table;
    struct router_metrics *m;     /* this worker's counters: one slot of m_all */
    struct router_metrics *m_all; /* shared by the worker processes */
    int nworkers;
    bool own_metrics;
    FILE *access; /* NULL: off */
    struct event *flush_ev;
    unsigned char sticky_key[32];
    struct ssl_ctx_st *ssl_default; /* NULL when no --cert */
    struct evconnlistener *listeners[8];
    struct evhttp *http; /* metrics endpoint */
    void *listener_ctx[8];
    size_t nlisteners;
    struct tcp_listener *tcp; /* tcp.c */
    struct tcp_conn *tcp_conns;
    struct conn *conns;       /* every client connection */
    struct h2_conn *h2_conns; /* h2.c */
    uint64_t rng[2];          /* request ids */
};

/* metrics: nworkers slots shared with the other worker processes (from
 * router_metrics_shared), or NULL for a private one. */
struct router *router_new(struct event_base *base, const struct router_opts *opts,
                          struct router_metrics *metrics, int worker, int nworkers,
                          struct err **err);
/* Counters for n worker processes in memory they share (MAP_SHARED). */
struct router_metrics *router_metrics_shared(int n);
void router_free(struct router *r);
/* Reloads opts.routes_file; on failure keeps the current table. */
int router_reload(struct router *r, struct err **err);
/* Installs a table from JSON text (route_table_parse's format); on failure
 * keeps the current one. */
int router_set_table_json(struct router *r, const char *json, size_t len, struct err **err);

/* feed.c: follows GET URL/router/table of the controller (long polls with
 * ?wait=GENERATION, flynn-api routes plus "backends") and installs every
 * new table; retries with back-off while the controller is away, keeping
 * the last table. key: the controller's auth key (Basic), may be NULL. */
struct feed;
struct feed *router_feed_start(struct router *r, const char *url, const char *key,
                               struct err **err);
void router_feed_free(struct feed *f);

/* Listens on "HOST:PORT" for HTTP (tls false) or HTTPS; writes the bound
 * address (HOST:PORT) into out. */
int router_listen_http(struct router *r, const char *addr, bool tls, char out[64],
                       struct err **err);
/* Serves GET /metrics on addr. */
int router_listen_metrics(struct router *r, const char *addr, char out[64], struct err **err);

/* proxy.c */
void proxy_accept(struct router *r, int fd, const struct sockaddr *sa, int local_port, bool tls);
/* A client connection on a ready bufferevent (an HTTP/2 stream's pair end);
 * takes ownership of bev. */
void proxy_accept_bev(struct router *r, struct bufferevent *bev, const char *peer, int local_port,
                      bool tls);
void proxy_close_all(struct router *r);
/* h2.c: serves an HTTP/2 connection on a TLS bufferevent (takes ownership). */
void h2_conn_start(struct router *r, struct bufferevent *bev, const char *peer, int local_port);
void h2_close_all(struct router *r);
void proxy_backend_release(struct backend *b);
/* Closes b's idle pooled connections (drain, shutdown). */
void proxy_backend_close_idle(struct backend *b);

/* tls.c */
struct ssl_ctx_st *tls_ctx_new(const char *cert_pem, const char *key_pem, bool from_files,
                               struct err **err);
void tls_ctx_free(struct ssl_ctx_st *ctx);
/* Installs the SNI callback on r->ssl_default. */
void tls_default_set_sni(struct router *r);
extern bool tls_h2_enabled;
/* With read-ahead, OpenSSL may hold whole records it read past the one
 * libevent asked for; libevent's TLS bufferevent only reads again when the
 * socket is readable, which it may never be again. Call this wherever a
 * TLS client connection's input was consumed or its reading re-enabled:
 * it makes the bufferevent read what OpenSSL holds in this loop turn. */
void tls_read_pending(struct bufferevent *bev);
/* Builds the SSL_CTX of every route with a certificate. */
int tls_table_prepare(struct router *r, struct route_table *t, struct err **err);

/* proxy.c: makes a plain socket bufferevent read with one readv per wakeup
 * (up to its max single read, below its read high-water mark) instead of
 * libevent's ioctl(FIONREAD) and 4 KiB read. Call it before reading is
 * first enabled and after any bufferevent_setfd (which
 * bufferevent_socket_connect does). */
void sock_own_reads(struct bufferevent *bev);
/* proxy.c: writes a plain, connected socket bufferevent's output now, as
 * much as the socket takes, instead of in a later loop turn after epoll
 * reports it writable. What is left stays queued; the caller keeps EV_WRITE
 * enabled while output is queued and disables it once it is empty (else
 * the next write costs an epoll round again). */
void sock_write_now(struct bufferevent *bev);

/* tcp.c: listens for the table's TCP routes (adds, keeps, closes). */
void tcp_routes_sync(struct router *r);
void tcp_routes_free(struct router *r);

/* metrics.c */
void metrics_format(const struct router *r, struct strbuf *out);

/* bind helper: "HOST:PORT" -> listening non-blocking fd, or -1 */
int router_bind(const char *addr, int backlog, struct err **err);
/* "HOST:PORT" of a bound socket */
void router_sockname(int fd, char out[64], int *port);

#endif
