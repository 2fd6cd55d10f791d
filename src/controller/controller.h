/*
 * controller: the one context object of flynn-controller, built by main.c
 * and passed to every handler, the event hub and the scheduler. No globals.
 */
#ifndef CONTROLLER_CONTROLLER_H
#define CONTROLLER_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

struct ahttp;
struct api_attach;
struct event_base;
struct events;
struct httpd;
struct scheduler;
struct store;
struct router_feed;
struct logproxy;

struct controller {
    struct event_base *base;
    struct store *store;
    struct events *events;   /* SSE subscribers of GET /events */
    struct scheduler *sched; /* NULL when no --host was given */
    struct ahttp *http;      /* outgoing calls (resource providers) */
    char **keys;             /* accepted auth keys; nkeys == 0 means auth disabled */
    size_t nkeys;
    const char *domain;       /* default route domain, may be NULL */
    const char *ca_cert_path; /* PEM served by GET /ca-cert, may be NULL */
    const char *self_addr;    /* HOST:PORT of the API: service "controller" */
    struct router_feed *feed; /* api_router.c, made on first use */
    /* --log-aggregator: GET /apps/:app/log reads from it; NULL: from the hosts */
    char *logagg_host;
    int logagg_port;
    struct logproxy *logproxies; /* api_logs.c: its requests in flight */
    struct api_attach *attaches; /* api_attach.c: attached jobs in progress */
};

/* The route table (routes.c). */
struct httpd_route;
extern const struct httpd_route *const controller_routes;
extern const size_t controller_nroutes;

#endif
