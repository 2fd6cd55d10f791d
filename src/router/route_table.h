/*
 * route_table: the routes the router serves, loaded from a JSON file.
 *
 * The file is a JSON list of Flynn route objects (docs/flynn-api.md §4.8),
 * or an object {"routes": [...]}, where each route also carries
 * "backends": ["IP:PORT", ...] (until discovery feeds them):
 *
 *   {"type": "http", "id": "...", "domain": "app.example.com", "path": "/",
 *    "service": "app-web", "sticky": false, "backends": ["127.0.0.1:8080"],
 *    "certificate": {"cert": "PEM", "key": "PEM"}}
 *   {"type": "tcp", "port": 3000, "service": "db", "backends": [...]}
 *
 * "backends" lists the service's instances oldest first (the controller's
 * feed orders them so); a route with "leader": true goes to the first one
 * alone, the service's leader, as Flynn's leader routes do.
 *
 * HTTP lookup: exact domain first, then "*.suffix" wildcards from the
 * longest suffix; within a domain the longest path prefix wins ("/api/"
 * matches "/api", "/api/" and "/api/x"). Domains compare without case and
 * without a ":port".
 *
 * Lifetimes: a table is immutable once loaded and reference counted
 * (single-threaded: the event loop's thread only). A reload builds a new
 * table and re-uses the backend objects of the old one whose address is
 * unchanged, so their idle connection pools survive; backends that vanish
 * are marked draining: no new request picks them, requests in flight
 * finish, and their pooled connections close.
 */
#ifndef ROUTER_ROUTE_TABLE_H
#define ROUTER_ROUTE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "err.h"

struct backend_pool; /* proxy.c: idle upstream connections */
struct ssl_ctx_st;

struct backend {
    char addr[64]; /* "IP:PORT" */
    struct sockaddr_storage sa;
    socklen_t salen;
    int refs;
    bool draining;
    unsigned long active;      /* requests in flight on it */
    struct backend_pool *pool; /* owned by proxy.c; freed by its hook */
};

enum route_type { ROUTE_HTTP, ROUTE_TCP };

struct route {
    enum route_type type;
    char *id, *domain, *path, *service;
    size_t path_len;
    int port; /* tcp */
    bool sticky, disable_keep_alives;
    bool leader; /* backends holds the leader (the first listed) alone */
    struct backend **backends;
    size_t nbackends;
    size_t rr;                /* round-robin cursor (mutable, by design) */
    char *cert_pem, *key_pem; /* NULL: the cluster's wildcard certificate */
    struct ssl_ctx_st *ssl;   /* built by tls.c when cert_pem is set */
};

struct route_table {
    int refs;
    unsigned long generation;
    struct route *routes;
    size_t nroutes;
    /* HTTP routes grouped by domain, sorted by domain; within a domain,
     * longest path first. */
    struct domain_entry {
        const char *domain;
        struct route **routes;
        size_t n;
    } *domains;
    size_t ndomains;
    struct backend **backends; /* every distinct backend, one ref each */
    size_t nbackends;
};

/* Called when a backend's last reference goes: frees backend->pool. */
extern void (*route_table_backend_release)(struct backend *b);
/* Frees a route's SSL_CTX (set by tls.c). */
extern void (*route_table_ssl_free)(struct ssl_ctx_st *ctx);

/* Loads path; re-uses old's backends (old may be NULL). Caller unrefs. */
struct route_table *route_table_load(const char *path, struct route_table *old,
                                     struct err **err);
/* Same from a JSON text (for tests). */
struct route_table *route_table_parse(const char *json, size_t len, struct route_table *old,
                                      struct err **err);
void route_table_ref(struct route_table *t);
void route_table_unref(struct route_table *t);

/* HTTP route for host (may carry ":port") and path (may carry "?query"),
 * or NULL. */
struct route *route_table_lookup(const struct route_table *t, const char *host, size_t host_len,
                                 const char *path, size_t path_len);
/* The route whose domain serves SNI name host (path "/" preferred), or NULL. */
struct route *route_table_lookup_domain(const struct route_table *t, const char *host,
                                        size_t host_len);

void backend_ref(struct backend *b);
void backend_unref(struct backend *b);

#endif
