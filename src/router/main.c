/*
 * flynn-router: the cluster's HTTP, HTTPS and TCP reverse proxy.
 *
 *   flynn-router --http-listen 127.0.0.1:80 --routes-file routes.json [flags]
 *
 * SIGHUP reloads the routes file; SIGTERM and SIGINT stop the router.
 * Once listening it notifies $NOTIFY_SOCKET (LISTEN= the first listener)
 * and, with --listen-file, writes "NAME=HOST:PORT" lines for every one.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "log.h"
#include "notify.h"
#include "router.h"
#include "xalloc.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: flynn-router [flags]\n"
            "  --http-listen ADDR      HTTP listener, HOST:PORT (default 127.0.0.1:8080)\n"
            "  --https-listen ADDR     HTTPS listener (needs --cert and --key)\n"
            "  --metrics-listen ADDR   serves GET /metrics\n"
            "  --routes-file FILE      JSON routes with their backends; SIGHUP reloads\n"
            "  --controller URL        follow the controller's routes and backends instead\n"
            "                          (http://127.0.0.1:1111; key from --controller-key-file\n"
            "                          FILE or $CONTROLLER_KEY)\n"
            "  --cert FILE --key FILE  the cluster's wildcard certificate (PEM)\n"
            "  --tcp-host HOST         address TCP routes bind on (default 127.0.0.1)\n"
            "  --tcp-range MIN-MAX     ports TCP routes may use (default 3000-3500)\n"
            "  --access-log PATH       access log file, '-' for stderr, 'off' (default -)\n"
            "  --header-timeout SECS   request head deadline (default 10)\n"
            "  --idle-timeout SECS     keep-alive and idle read/write timeout (default 60)\n"
            "  --upstream-timeout SECS backend idle timeout (default 300)\n"
            "  --connect-timeout SECS  backend connect deadline; then the next backend\n"
            "                          (default 5)\n"
            "  --max-head BYTES        request and response head limit (default 65536)\n"
            "  --max-idle N            pooled connections per backend (default 256)\n"
            "  --sticky-key-file FILE  key for sticky-session cookies (default random)\n"
            "  --listen-file FILE      write NAME=HOST:PORT of every listener\n"
            "  --no-h2                 do not offer HTTP/2 over TLS\n"
            "  --workers N             worker processes sharing the listeners with\n"
            "                          SO_REUSEPORT (default 1; N > 1 needs fixed ports)\n"
            "  --log-level LEVEL       debug, info, warn, error (default info)\n"
            "  --log-format FMT        text or json\n");
}

static int secs_ms(const char *s)
{
    char *end;
    double d = strtod(s, &end);
    if (*end || d <= 0 || d > 86400)
        return -1;
    return (int)(d * 1000);
}

static pid_t children[64];
static int nchildren;

static void signal_children(int sig)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0)
            kill(children[i], sig);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    log_info("signal %d: stopping", (int)sig);
    signal_children(SIGTERM);
    event_base_loopbreak(arg);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct router *r = arg;
    struct err *e = NULL;
    signal_children(SIGHUP);
    if (router_reload(r, &e) < 0) {
        log_error("reload: %s (keeping the old routes)", e->msg);
        err_free(e);
    }
}

int main(int argc, char **argv)
{
    struct router_opts o = {
        .max_head = 65536,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .upstream_timeout_ms = 300000,
        .connect_timeout_ms = 5000,
        .max_idle_per_backend = 256,
        .max_attempts = 3,
        .access_log = "-",
        .tcp_host = "127.0.0.1",
        .tcp_min = 3000,
        .tcp_max = 3500,
    };
    const char *http_addr[4] = {0}, *https_addr[4] = {0}, *metrics_addr = NULL,
               *listen_file = NULL, *controller = NULL, *ckey_file = NULL;
    size_t nhttp = 0, nhttps = 0;
    int lvl = LOG_LVL_INFO, json = 0, workers = 1;
    enum { O_HTTP = 256, O_HTTPS, O_METRICS, O_ROUTES, O_CERT, O_KEY, O_TCPHOST, O_TCPRANGE,
           O_ACCESS, O_HTO, O_ITO, O_UTO, O_MAXHEAD, O_MAXIDLE, O_STICKY, O_LFILE, O_NOH2,
           O_LVL, O_FMT, O_HELP, O_WORKERS, O_CONTROLLER, O_CKEYFILE, O_CTO };
    static const struct option lo[] = {
        {"http-listen", 1, 0, O_HTTP},     {"https-listen", 1, 0, O_HTTPS},
        {"metrics-listen", 1, 0, O_METRICS}, {"routes-file", 1, 0, O_ROUTES},
        {"cert", 1, 0, O_CERT},            {"key", 1, 0, O_KEY},
        {"tcp-host", 1, 0, O_TCPHOST},     {"tcp-range", 1, 0, O_TCPRANGE},
        {"access-log", 1, 0, O_ACCESS},    {"header-timeout", 1, 0, O_HTO},
        {"idle-timeout", 1, 0, O_ITO},     {"upstream-timeout", 1, 0, O_UTO},
        {"connect-timeout", 1, 0, O_CTO},
        {"max-head", 1, 0, O_MAXHEAD},     {"max-idle", 1, 0, O_MAXIDLE},
        {"sticky-key-file", 1, 0, O_STICKY}, {"listen-file", 1, 0, O_LFILE},
        {"no-h2", 0, 0, O_NOH2},           {"log-level", 1, 0, O_LVL},
        {"log-format", 1, 0, O_FMT},       {"help", 0, 0, O_HELP},
        {"workers", 1, 0, O_WORKERS},
        {"controller", 1, 0, O_CONTROLLER}, {"controller-key-file", 1, 0, O_CKEYFILE},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_HTTP:
            if (nhttp < ARRAY_SIZE(http_addr))
                http_addr[nhttp++] = optarg;
            break;
        case O_HTTPS:
            if (nhttps < ARRAY_SIZE(https_addr))
                https_addr[nhttps++] = optarg;
            break;
        case O_METRICS: metrics_addr = optarg; break;
        case O_ROUTES: o.routes_file = optarg; break;
        case O_CERT: o.cert_file = optarg; break;
        case O_KEY: o.key_file = optarg; break;
        case O_TCPHOST: o.tcp_host = optarg; break;
        case O_TCPRANGE:
            if (sscanf(optarg, "%d-%d", &o.tcp_min, &o.tcp_max) != 2 || o.tcp_min < 1 ||
                o.tcp_max > 65535 || o.tcp_min > o.tcp_max) {
                fprintf(stderr, "flynn-router: bad --tcp-range '%s'\n", optarg);
                return 2;
            }
            break;
        case O_ACCESS: o.access_log = optarg; break;
        case O_HTO:
        case O_ITO:
        case O_UTO:
        case O_CTO: {
            int ms = secs_ms(optarg);
            if (ms < 0) {
                fprintf(stderr, "flynn-router: bad timeout '%s'\n", optarg);
                return 2;
            }
            *(ch == O_HTO   ? &o.header_timeout_ms
              : ch == O_ITO ? &o.idle_timeout_ms
              : ch == O_CTO ? &o.connect_timeout_ms
                            : &o.upstream_timeout_ms) = ms;
            break;
        }
        case O_MAXHEAD:
            o.max_head = (size_t)strtoul(optarg, NULL, 10);
            if (o.max_head < 1024 || o.max_head > (1 << 20)) {
                fprintf(stderr, "flynn-router: --max-head must be 1024..1048576\n");
                return 2;
            }
            break;
        case O_MAXIDLE: o.max_idle_per_backend = atoi(optarg); break;
        case O_STICKY: o.sticky_key_file = optarg; break;
        case O_LFILE: listen_file = optarg; break;
        case O_CONTROLLER: controller = optarg; break;
        case O_CKEYFILE: ckey_file = optarg; break;
        case O_NOH2: tls_h2_enabled = false; break;
        case O_LVL:
            lvl = log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "flynn-router: bad --log-level '%s'\n", optarg);
                return 2;
            }
            break;
        case O_FMT: json = !strcmp(optarg, "json"); break;
        case O_WORKERS:
            workers = atoi(optarg);
            if (workers < 1 || workers > (int)ARRAY_SIZE(children)) {
                fprintf(stderr, "flynn-router: --workers must be 1..%zu\n", ARRAY_SIZE(children));
                return 2;
            }
            break;
        case O_HELP:
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!nhttp && !nhttps)
        http_addr[nhttp++] = "127.0.0.1:8080";
    if (controller && o.routes_file) {
        fprintf(stderr, "flynn-router: --controller and --routes-file exclude each other\n");
        return 2;
    }
    char *ckey = NULL;
    if (ckey_file) {
        struct err *ke = NULL;
        size_t kl;
        ckey = fs_read_file(ckey_file, &kl, &ke);
        if (!ckey) {
            fprintf(stderr, "flynn-router: %s\n", ke->msg);
            err_free(ke);
            return 2;
        }
        ckey[strcspn(ckey, "\r\n")] = '\0';
    } else if (getenv("CONTROLLER_KEY")) {
        ckey = xstrdup(getenv("CONTROLLER_KEY"));
    }
    if ((o.cert_file == NULL) != (o.key_file == NULL)) {
        fprintf(stderr, "flynn-router: --cert and --key go together\n");
        return 2;
    }
    log_init("router", (enum log_level)lvl, json);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (workers > 1) {
        for (size_t i = 0; i < nhttp + nhttps; i++) {
            const char *a = i < nhttp ? http_addr[i] : https_addr[i - nhttp];
            if (strlen(a) < 2 || !strcmp(strrchr(a, ':') ? strrchr(a, ':') : ":0", ":0")) {
                fprintf(stderr, "flynn-router: --workers > 1 needs fixed ports ('%s')\n", a);
                return 2;
            }
        }
    }
    /* worker processes: forked before any event base exists; each binds the
     * same addresses (SO_REUSEPORT) and counts in its own shared slot */
    struct router_metrics *shared = workers > 1 ? router_metrics_shared(workers) : NULL;
    int worker = 0;
    for (int i = 1; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            log_error("fork: %s", strerror(errno));
            signal_children(SIGTERM);
            return 1;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            worker = i;
            nchildren = 0;
            listen_file = NULL;
            break;
        }
        children[nchildren++] = pid;
    }
    /* epoll changelist: an event added and removed within one loop turn (the
     * TLS bufferevent's write event around each response) costs no syscall */
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (!base) {
        log_error("cannot create the event loop");
        return 1;
    }
    struct err *e = NULL;
    struct router *r = router_new(base, &o, shared, worker, workers, &e);
    if (!r) {
        log_error("%s", e->msg);
        err_free(e);
        event_base_free(base);
        return 1;
    }
    char first[64] = "", addr[64];
    FILE *lf = listen_file ? fopen(listen_file, "we") : NULL;
    if (listen_file && !lf) {
        log_error("open '%s': %s", listen_file, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < nhttp + nhttps; i++) {
        bool tls = i >= nhttp;
        const char *a = tls ? https_addr[i - nhttp] : http_addr[i];
        if (router_listen_http(r, a, tls, addr, &e) < 0) {
            log_error("%s", e->msg);
            err_free(e);
            goto fail;
        }
        if (!first[0])
            snprintf(first, sizeof(first), "%s", addr);
        if (lf)
            fprintf(lf, "%s=%s\n", tls ? "https" : "http", addr);
        log_info("listening for %s on %s", tls ? "https" : "http", addr);
    }
    if (metrics_addr) {
        if (router_listen_metrics(r, metrics_addr, addr, &e) < 0) {
            log_error("%s", e->msg);
            err_free(e);
            goto fail;
        }
        if (lf)
            fprintf(lf, "metrics=%s\n", addr);
        log_info("metrics on %s", addr);
    }
    if (lf) {
        fclose(lf);
        lf = NULL;
    }
    struct event *sig_term = evsignal_new(base, SIGTERM, on_stop, base);
    struct event *sig_int = evsignal_new(base, SIGINT, on_stop, base);
    struct event *sig_hup = evsignal_new(base, SIGHUP, on_hup, r);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    event_add(sig_hup, NULL);
    if (worker == 0)
        notify_ready(first);
    struct feed *feed = NULL;
    if (controller) {
        feed = router_feed_start(r, controller, ckey, &e);
        if (!feed) {
            log_error("%s", e->msg);
            err_free(e);
            goto fail;
        }
    }
    event_base_dispatch(base);
    router_feed_free(feed);
    free(ckey);
    for (int i = 0; i < nchildren; i++)
        waitpid(children[i], NULL, 0);
    event_free(sig_term);
    event_free(sig_int);
    event_free(sig_hup);
    router_free(r);
    event_base_free(base);
    return 0;
fail:
    free(ckey);
    signal_children(SIGTERM);
    if (lf)
        fclose(lf);
    router_free(r);
    event_base_free(base);
    return 1;
}
