/* flynn-controller: parses flags, builds the context, runs the loop. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ahttp.h"
#include "api.h"
#include "controller.h"
#include "events.h"
#include "fsutil.h"
#include "httpd.h"
#include "log.h"
#include "notify.h"
#include "scheduler.h"
#include "store.h"
#include "tls.h"
#include "xalloc.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: flynn-controller [--listen HOST:PORT] [--data-dir DIR] [--key KEY[,KEY...]]\n"
               "       [--domain DOMAIN] [--tls-listen HOST:PORT --tls-cert F --tls-key F]\n"
               "       [--ca-cert F] [--host URL]... [--log-level L] [--log-json]\n"
               "       [--log-aggregator HOST:PORT]   app logs from the log aggregator\n"
               "The key may also come from --key-file FILE or $AUTH_KEY (comma-separated list).\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    log_info("signal %d: shutting down", (int)sig);
    event_base_loopexit(arg, NULL);
}

static void split_keys(struct controller *c, const char *list)
{
    cleanup_free char *copy = xstrdup(list);
    char *save = NULL;
    for (char *k = strtok_r(copy, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
        c->keys = xrealloc(c->keys, (c->nkeys + 1) * sizeof(*c->keys));
        c->keys[c->nkeys++] = xstrdup(k);
    }
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:1111", *data_dir = ".", *key = NULL, *domain = NULL;
    const char *tls_addr = NULL, *tls_cert = NULL, *tls_key = NULL, *ca_cert = NULL;
    const char *level = "info", *key_file = NULL, *logagg = NULL;
    char *key_buf = NULL;
    int log_json = 0;
    const char **hosts = NULL;
    size_t nhosts = 0;
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},   {"data-dir", required_argument, 0, 'd'},
        {"key", required_argument, 0, 'k'},      {"domain", required_argument, 0, 'D'},
        {"tls-listen", required_argument, 0, 'T'}, {"tls-cert", required_argument, 0, 'C'},
        {"tls-key", required_argument, 0, 'K'},  {"ca-cert", required_argument, 0, 'A'},
        {"host", required_argument, 0, 'H'},     {"log-level", required_argument, 0, 'L'},
        {"log-json", no_argument, 0, 'J'},       {"help", no_argument, 0, 'h'},
        {"key-file", required_argument, 0, 'F'}, {"log-aggregator", required_argument, 0, 'G'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l': listen = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'k': key = optarg; break;
        case 'F': key_file = optarg; break;
        case 'D': domain = optarg; break;
        case 'T': tls_addr = optarg; break;
        case 'C': tls_cert = optarg; break;
        case 'K': tls_key = optarg; break;
        case 'A': ca_cert = optarg; break;
        case 'H':
            hosts = xrealloc(hosts, (nhosts + 1) * sizeof(*hosts));
            hosts[nhosts++] = optarg;
            break;
        case 'L': level = optarg; break;
        case 'J': log_json = 1; break;
        case 'G': logagg = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    int lvl = log_level_parse(level);
    if (lvl < 0) {
        fprintf(stderr, "flynn-controller: unknown log level '%s'\n", level);
        return 2;
    }
    log_init("controller", (enum log_level)lvl, log_json);
    if (tls_addr && (!tls_cert || !tls_key)) {
        log_error("--tls-listen needs --tls-cert and --tls-key");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    struct err *e = NULL;
    struct controller c = {.domain = domain, .ca_cert_path = ca_cert};
    if (logagg && *logagg) {
        /* HOST:PORT or http://HOST:PORT */
        const char *a = !strncmp(logagg, "http://", 7) ? logagg + 7 : logagg;
        c.logagg_host = xstrndup(a, strcspn(a, "/"));
        char *colon = strrchr(c.logagg_host, ':');
        char *end = NULL;
        long p = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == c.logagg_host || *end || p <= 0 || p > 65535) {
            log_error("--log-aggregator '%s' is not HOST:PORT or http://HOST:PORT", logagg);
            free(c.logagg_host);
            return 2;
        }
        *colon = '\0';
        c.logagg_port = (int)p;
    }
    if (!key && key_file) { /* keeps the key out of /proc/PID/cmdline and job env */
        key_buf = fs_read_file(key_file, NULL, &e);
        if (!key_buf) {
            log_error("--key-file: %s", e->msg);
            err_free(e);
            return 1;
        }
        key_buf[strcspn(key_buf, "\r\n")] = '\0';
        key = key_buf;
    }
    if (!key)
        key = getenv("AUTH_KEY");
    if (key)
        split_keys(&c, key);
    if (c.nkeys == 0)
        log_warn("no --key or AUTH_KEY: the API is open to anyone who can reach it");
    struct httpd *h = NULL;
    struct tls_listener *tls = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    char *bound = NULL;
    c.base = event_base_new();
    if (!c.base)
        BUG("event_base_new failed");
    if (fs_mkdir_p(data_dir, 0700, &e) < 0)
        goto out;
    c.store = store_sqlite_open(data_dir, &e);
    if (!c.store)
        goto out;
    c.events = events_new(&c);
    c.http = ahttp_new(c.base);
    struct httpd_opts hopts = {.max_body = 8 << 20, .timeout_secs = 3600};
    h = httpd_new(c.base, controller_routes, controller_nroutes, &hopts, &c);
    int port = httpd_listen(h, listen, &e);
    if (port < 0)
        goto out;
    bound = xasprintf("%.*s:%d", (int)(strrchr(listen, ':') - listen), listen, port);
    c.self_addr = bound;
    if (tls_addr) {
        int tport;
        tls = tls_listen(c.base, tls_addr, tls_cert, tls_key, port, &tport, &e);
        if (!tls)
            goto out;
        log_info("tls: listening on %.*s:%d", (int)(strrchr(tls_addr, ':') - tls_addr), tls_addr,
                 tport);
    }
    if (nhosts) {
        c.sched = scheduler_new(&c);
        for (size_t i = 0; i < nhosts; i++)
            if (scheduler_add_host(c.sched, hosts[i], &e) < 0)
                goto out;
        scheduler_start(c.sched);
    }
    sigterm = evsignal_new(c.base, SIGTERM, on_signal, c.base);
    sigint = evsignal_new(c.base, SIGINT, on_signal, c.base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    log_info("listening on %s", bound);
    notify_ready(bound);
    event_base_dispatch(c.base);
    rc = 0;
out:
    if (e) {
        log_error("%s", e->msg);
        err_free(e);
    }
    api_attach_free_all(&c); /* before the scheduler: they wait on it */
    scheduler_free(c.sched);
    ahttp_free(c.http); /* answers waiting requests before the server goes */
    tls_listener_free(tls);
    api_router_free(&c);
    api_logs_free(&c); /* before the server: it answers waiting requests */
    httpd_free(h); /* closes streams first: their close callbacks free subscribers */
    events_free(c.events);
    store_close(c.store);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    event_base_free(c.base);
    for (size_t i = 0; i < c.nkeys; i++)
        free(c.keys[i]);
    free(c.keys);
    free(hosts);
    free(bound);
    free(key_buf);
    free(c.logagg_host);
    return rc;
}
