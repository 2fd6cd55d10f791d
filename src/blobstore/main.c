/*
 * flynn-blobstore: the cluster's blob store (slugs, repositories, ...).
 *
 *   flynn-blobstore --dir DIR [--listen 127.0.0.1:5002 ...] [flags]
 *
 * Plain HTTP PUT, GET, HEAD and DELETE of arbitrary paths, streamed to and
 * from disk (docs/internals/blobstore.md). It has no authentication, so it
 * refuses wildcard listen addresses. Once listening it notifies
 * $NOTIFY_SOCKET (LISTEN= the first listener); SIGTERM and SIGINT stop it.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "blobstore.h"
#include "err.h"
#include "log.h"
#include "notify.h"
#include "xalloc.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: flynn-blobstore --dir DIR [flags]\n"
            "  --dir DIR               where blobs live (created when missing)\n"
            "  --listen ADDR           IP:PORT to serve, repeatable (default 127.0.0.1:5002);\n"
            "                          never a wildcard: there is no authentication\n"
            "  --max-size BYTES        largest blob, K/M/G/T suffixes (default 2G)\n"
            "  --max-head BYTES        request head limit (default 16384)\n"
            "  --header-timeout SECS   request head deadline (default 10)\n"
            "  --idle-timeout SECS     keep-alive idle, stalled bodies and readers (default 60)\n"
            "  --max-conns N           connections at once (default 1024)\n"
            "  --log-level LEVEL       debug, info, warn, error (default info)\n"
            "  --log-format FMT        text or json\n");
}

/* "2G", "512M", "1000": bytes, binary suffixes. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    int shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    case 't':
    case 'T': shift = 40; break;
    default: return -1;
    }
    if (*end && end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
        return -1;
    if (v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int secs_ms(const char *s)
{
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !(d > 0) || d > 86400)
        return -1;
    return (int)(d * 1000);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    log_info("signal %d: stopping", (int)sig);
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct blobstore_opts o = {
        .max_size = 2ULL << 30,
        .max_head = 16384,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .max_conns = 1024,
    };
    const char *listen[8];
    size_t nlisten = 0;
    int lvl = LOG_LVL_INFO, json = 0;
    enum {
        O_DIR = 256,
        O_LISTEN,
        O_MAXSIZE,
        O_MAXHEAD,
        O_HTO,
        O_ITO,
        O_MAXCONNS,
        O_LVL,
        O_FMT,
        O_HELP
    };
    static const struct option lo[] = {
        {"dir", 1, 0, O_DIR},
        {"listen", 1, 0, O_LISTEN},
        {"max-size", 1, 0, O_MAXSIZE},
        {"max-head", 1, 0, O_MAXHEAD},
        {"header-timeout", 1, 0, O_HTO},
        {"idle-timeout", 1, 0, O_ITO},
        {"max-conns", 1, 0, O_MAXCONNS},
        {"log-level", 1, 0, O_LVL},
        {"log-format", 1, 0, O_FMT},
        {"help", 0, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case O_DIR: o.dir = optarg; break;
        case O_LISTEN:
            if (nlisten == ARRAY_SIZE(listen)) {
                fprintf(stderr, "flynn-blobstore: at most %zu --listen\n", ARRAY_SIZE(listen));
                return 2;
            }
            listen[nlisten++] = optarg;
            break;
        case O_MAXSIZE:
            if (parse_size(optarg, &o.max_size) < 0) {
                fprintf(stderr, "flynn-blobstore: bad --max-size '%s'\n", optarg);
                return 2;
            }
            break;
        case O_MAXHEAD: {
            uint64_t v;
            if (parse_size(optarg, &v) < 0 || v < 1024 || v > (1 << 20)) {
                fprintf(stderr, "flynn-blobstore: --max-head must be 1024..1048576\n");
                return 2;
            }
            o.max_head = (size_t)v;
            break;
        }
        case O_HTO:
        case O_ITO: {
            int ms = secs_ms(optarg);
            if (ms <= 0) {
                fprintf(stderr, "flynn-blobstore: bad timeout '%s'\n", optarg);
                return 2;
            }
            *(ch == O_HTO ? &o.header_timeout_ms : &o.idle_timeout_ms) = ms;
            break;
        }
        case O_MAXCONNS: {
            uint64_t v;
            if (parse_size(optarg, &v) < 0 || v < 1 || v > 1000000) {
                fprintf(stderr, "flynn-blobstore: --max-conns must be 1..1000000\n");
                return 2;
            }
            o.max_conns = (size_t)v;
            break;
        }
        case O_LVL:
            lvl = log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "flynn-blobstore: bad --log-level '%s'\n", optarg);
                return 2;
            }
            break;
        case O_FMT:
            if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
                fprintf(stderr, "flynn-blobstore: bad --log-format '%s'\n", optarg);
                return 2;
            }
            json = !strcmp(optarg, "json");
            break;
        case O_HELP:
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !o.dir) {
        if (!o.dir)
            fprintf(stderr, "flynn-blobstore: --dir is required\n");
        usage(stderr);
        return 2;
    }
    if (!nlisten)
        listen[nlisten++] = "127.0.0.1:5002";
    log_init("blobstore", (enum log_level)lvl, json);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct event_base *base = event_base_new();
    if (!base) {
        log_error("cannot create the event loop");
        return 1;
    }
    struct err *e = NULL;
    struct blobstore *bs = blobstore_new(base, &o, &e);
    if (!bs) {
        log_error("%s", e->msg);
        err_free(e);
        event_base_free(base);
        return 1;
    }
    char first[64] = "", addr[64];
    for (size_t i = 0; i < nlisten; i++) {
        if (blobstore_listen(bs, listen[i], addr, &e) < 0) {
            log_error("%s", e->msg);
            err_free(e);
            blobstore_free(bs);
            event_base_free(base);
            return 1;
        }
        if (!first[0])
            snprintf(first, sizeof(first), "%s", addr);
        log_info("listening on %s", addr);
    }
    log_info("serving '%s' (largest blob %" PRIu64 " bytes)", o.dir, o.max_size);
    struct event *sig_term = evsignal_new(base, SIGTERM, on_stop, base);
    struct event *sig_int = evsignal_new(base, SIGINT, on_stop, base);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    notify_ready(first);
    event_base_dispatch(base);
    event_free(sig_term);
    event_free(sig_int);
    blobstore_free(bs);
    event_base_free(base);
    return 0;
}
