/*
 * flynn-logaggregator: receives every job's output lines from the hosts,
 * keeps each app's recent lines in memory and serves them, as history and
 * live, to the controller's GET /apps/:app/log; delivers them to the log
 * sinks stored in the controller. See docs/internals/logaggregator.md.
 *
 *   flynn-logaggregator [--listen 127.0.0.1:1115] [--snapshot FILE]
 *                       [--controller URL --controller-key-file FILE] ...
 *
 * SIGTERM and SIGINT write the snapshot (when --snapshot is given) and stop.
 */
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "ids.h"
#include "log.h"
#include "logagg.h"
#include "notify.h"
#include "xalloc.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: flynn-logaggregator [flags]\n"
               "  --listen HOST:PORT        HTTP API: ingest, GET /log/APP, /status (default\n"
               "                            127.0.0.1:1115; port 0 picks one)\n"
               "  --snapshot FILE           keep the buffer across restarts: written on SIGTERM,\n"
               "                            read (and removed) at start\n"
               "  --controller URL          read log sinks from this controller (http://H:P)\n"
               "  --controller-key-file F   its key (or $CONTROLLER_KEY)\n"
               "  --app-lines N             lines kept per app (default 10000)\n"
               "  --app-bytes N             bytes kept per app (default 16M; K, M, G suffixes)\n"
               "  --total-bytes N           bytes kept in all (default 256M)\n"
               "  --log-level LEVEL         debug, info, warn, error (default info)\n"
               "  --log-format json         JSON log lines\n");
}

/* "16M" -> 16777216; 0 on error. */
static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return 0;
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'g':
    case 'G':
        v <<= 30;
        end++;
        break;
    default: break;
    }
    return *end ? 0 : (size_t)v;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    log_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, 0, 'l'},
                                         {"snapshot", required_argument, 0, 's'},
                                         {"controller", required_argument, 0, 'c'},
                                         {"controller-key-file", required_argument, 0, 'k'},
                                         {"app-lines", required_argument, 0, 'n'},
                                         {"app-bytes", required_argument, 0, 'b'},
                                         {"total-bytes", required_argument, 0, 't'},
                                         {"log-level", required_argument, 0, 'L'},
                                         {"log-format", required_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *listen = "127.0.0.1:1115", *snapshot = NULL, *controller = NULL, *key_file = NULL;
    struct logbuf_limits lim = {0};
    int lvl = LOG_LVL_INFO, json = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 's': snapshot = optarg; break;
        case 'c': controller = optarg; break;
        case 'k': key_file = optarg; break;
        case 'n':
        case 'b':
        case 't': {
            size_t v = parse_size(optarg);
            if (!v) {
                fprintf(stderr, "flynn-logaggregator: bad size '%s'\n", optarg);
                return 2;
            }
            if (c == 'n')
                lim.app_lines = v;
            else if (c == 'b')
                lim.app_bytes = v;
            else
                lim.total_bytes = v;
            break;
        }
        case 'L':
            lvl = log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "flynn-logaggregator: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'F': json = !strcmp(optarg, "json"); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    log_init("logaggregator", (enum log_level)lvl, json);
    signal(SIGPIPE, SIG_IGN);
    /* batches and follow bursts are megabytes that live for one request:
     * keep them in their own mappings, so the memory goes back once they are
     * freed instead of staying in the heap (glibc's threshold would grow) */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);

    int rc = 1;
    struct err *e = NULL;
    cleanup_free char *key = NULL;
    if (key_file) {
        key = fs_read_file(key_file, NULL, &e);
        if (!key) {
            log_error("--controller-key-file: %s", e->msg);
            err_free(e);
            return 1;
        }
        key[strcspn(key, "\r\n")] = '\0';
    } else if (getenv("CONTROLLER_KEY")) {
        key = xstrdup(getenv("CONTROLLER_KEY"));
    }
    struct logagg ag = {0};
    id_uuid(ag.instance);
    ag.base = event_base_new();
    if (!ag.base)
        BUG("event_base_new failed");
    ag.dns = evdns_base_new(ag.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!ag.dns) /* no resolv.conf: addresses still work */
        ag.dns = evdns_base_new(ag.base, 0);
    ag.buf = logbuf_new(&lim);
    struct event *sigterm = NULL, *sigint = NULL;
    char *bound = NULL;
    /* bind first: a replacement started while its predecessor still holds
     * the port fails here and leaves the snapshot to the one that can run */
    int port = server_start(&ag, listen, &e);
    if (port < 0)
        goto out;
    if (snapshot && snapshot_load(&ag, snapshot, &e) < 0) {
        log_warn("%s; starting empty", e->msg);
        err_free(e);
        e = NULL;
        logbuf_free(ag.buf);
        ag.buf = logbuf_new(&lim);
    }
    if (controller) {
        ag.sinks = sinks_new(&ag, controller, key);
        if (!ag.sinks) {
            err_makex(&e, EINVAL, "--controller '%s' is not an http:// URL", controller);
            goto out;
        }
    }
    sigterm = evsignal_new(ag.base, SIGTERM, on_signal, ag.base);
    sigint = evsignal_new(ag.base, SIGINT, on_signal, ag.base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    bound = xasprintf("%.*s:%d", (int)(strrchr(listen, ':') - listen), listen, port);
    log_info("listening on %s (instance %s)", bound, ag.instance);
    notify_ready(bound);
    event_base_dispatch(ag.base);
    rc = 0;
    if (snapshot && snapshot_write(&ag, snapshot, &e) < 0)
        rc = 1;
out:
    if (e) {
        log_error("%s", e->msg);
        err_free(e);
    }
    sinks_free(ag.sinks);
    server_free(&ag);
    while (ag.restored) {
        struct sink_cursor *sc = ag.restored;
        ag.restored = sc->next;
        free(sc->id);
        free(sc);
    }
    logbuf_free(ag.buf);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    evdns_base_free(ag.dns, 0);
    free(bound);
    event_base_free(ag.base);
    return rc;
}
