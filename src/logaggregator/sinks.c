/* Log sinks: every app's lines, in order, to syslog servers (RFC 5424 over
 * TCP or TLS) and HTTP endpoints (POSTed NDJSON batches).
 *
 * The sinks are the controller's (POST /sinks): polled every 2 s. Each sink
 * reads the buffer's global sequence with its own cursor, so a sink that is
 * down or slow only falls behind; once the lines it has not sent leave the
 * buffer they are counted as dropped. A new sink starts at the first
 * buffered line written at or after its created_at.
 *
 * Delivery: syslog lines count as delivered when the kernel took them (the
 * connection's output buffer emptied); after a connection error the sink
 * sends again from there. HTTP batches count when the endpoint answers 2xx;
 * any other answer or a transport error sends the same lines again. Both
 * retry after a back-off of 0.5 s doubling to 30 s. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "jsonflat.h"
#include "log.h"
#include "logagg.h"
#include "render.h"
#include "strbuf.h"
#include "xalloc.h"

#define POLL_SECS 2
#define SYSLOG_MAX_QUEUED (256u << 10)
#define HTTP_BATCH_LINES 1000
#define HTTP_BATCH_BYTES (1u << 20)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

enum sink_kind { SINK_SYSLOG, SINK_HTTP };

struct sink {
    struct sinks *ss;
    char *id, *cfg_text; /* cfg_text: kind + config, to notice changes */
    enum sink_kind kind;
    char *host, *path;
    int port;
    bool tls, insecure;
    struct syslog_opts so;
    char *prefix;
    uint64_t cursor;    /* next line to send */
    uint64_t committed; /* syslog: next line the kernel has not taken */
    uint64_t delivered, dropped, pending;
    char *error; /* the last failure, NULL when working */
    int backoff_ms;
    struct event *retry;
    struct bufferevent *bev; /* syslog */
    bool connected;
    struct evhttp_connection *hconn; /* http */
    bool in_flight;
    uint64_t batch_end, batch_lines;
    struct sink *next;
};

struct sinks {
    struct logagg *ag;
    char *ctl_host, *auth;
    int ctl_port;
    struct evhttp_connection *ctl;
    struct event *poll;
    bool polling;
    SSL_CTX *ssl;
    struct sink *list;
};

/* ---- small helpers ---- */

/* Splits "SCHEME://HOST:PORT/PATH"; the port defaults to defport. */
static int parse_url(const char *url, const char *scheme, int defport, char **host, int *port,
                     char **path)
{
    size_t sl = strlen(scheme);
    if (strncmp(url, scheme, sl) || strncmp(url + sl, "://", 3))
        return -1;
    const char *h = url + sl + 3;
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    cleanup_free char *hp = xstrndup(h, hl);
    char *colon = strrchr(hp, ':');
    *port = defport;
    if (colon && !strchr(colon, ']')) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p <= 0 || p > 65535)
            return -1;
        *port = (int)p;
        *colon = '\0';
    }
    if (!*hp)
        return -1;
    char *hs = hp;
    if (hs[0] == '[' && hs[strlen(hs) - 1] == ']') {
        hs[strlen(hs) - 1] = '\0';
        hs++;
    }
    *host = xstrdup(hs);
    if (path)
        *path = xstrdup(slash ? slash : "/");
    return 0;
}

static void set_error(struct sink *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct sink *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = xvasprintf(fmt, ap);
    va_end(ap);
    if (!k->error || strcmp(k->error, m))
        log_warn("sink %s: %s; retrying", k->id, m);
    free(k->error);
    k->error = m;
}

static void clear_error(struct sink *k)
{
    if (k->error)
        log_info("sink %s: delivering again", k->id);
    free(k->error);
    k->error = NULL;
    k->backoff_ms = 0;
}

static void schedule_retry(struct sink *k)
{
    k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (k->backoff_ms > BACKOFF_MAX_MS)
        k->backoff_ms = BACKOFF_MAX_MS;
    struct timeval tv = {k->backoff_ms / 1000, (k->backoff_ms % 1000) * 1000};
    evtimer_add(k->retry, &tv);
}

/* The line at the cursor, skipping (and counting) lines that left the
 * buffer before they were sent; NULL when the sink is at the end. */
static struct logline *next_line(struct sink *k)
{
    struct logbuf *b = k->ss->ag->buf;
    uint64_t first = logbuf_first_gseq(b), next = logbuf_next_gseq(b);
    if (k->cursor < first) {
        uint64_t lost = first - k->cursor;
        if (!k->dropped || lost > 1000)
            log_warn("sink %s fell behind: %llu lines left the buffer before they were sent", k->id,
                     (unsigned long long)lost);
        k->dropped += lost;
        k->cursor = first;
        if (k->committed < first)
            k->committed = first;
    }
    while (k->cursor < next) {
        struct logline *l = logbuf_at(b, k->cursor);
        if (l)
            return l;
        k->dropped++; /* a hole: dropped by its app's bound before we sent it */
        k->cursor++;
    }
    return NULL;
}

/* ---- syslog ---- */

static void syslog_connect(struct sink *k);

static void syslog_pump(struct sink *k)
{
    if (!k->connected)
        return;
    struct evbuffer *out = bufferevent_get_output(k->bev);
    struct strbuf sb = STRBUF_INIT;
    struct logline *l;
    while (evbuffer_get_length(out) + sb.len < SYSLOG_MAX_QUEUED && (l = next_line(k))) {
        render_syslog(&sb, l, &k->so);
        k->cursor++;
        k->pending++;
    }
    if (sb.len)
        bufferevent_write(k->bev, sb.buf, sb.len);
    strbuf_release(&sb);
}

static void syslog_drop_conn(struct sink *k)
{
    if (k->bev)
        bufferevent_free(k->bev);
    k->bev = NULL;
    k->connected = false;
    k->cursor = k->committed; /* what the kernel did not take goes again */
    k->pending = 0;
}

static void on_syslog_write(struct bufferevent *bev, void *arg)
{
    struct sink *k = arg;
    /* the output buffer is empty: the kernel has everything sent so far */
    k->committed = k->cursor;
    k->delivered += k->pending;
    k->pending = 0;
    syslog_pump(k);
}

static void on_syslog_read(struct bufferevent *bev, void *arg)
{
    /* servers do not talk; discard anything they say */
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void on_syslog_event(struct bufferevent *bev, short what, void *arg)
{
    struct sink *k = arg;
    if (what & BEV_EVENT_CONNECTED) {
        k->connected = true;
        clear_error(k);
        syslog_pump(k);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        int dns_err = bufferevent_socket_get_dns_error(bev);
        unsigned long ssl_err = k->tls ? bufferevent_get_openssl_error(bev) : 0;
        char ebuf[256] = "";
        if (ssl_err)
            ERR_error_string_n(ssl_err, ebuf, sizeof(ebuf));
        set_error(k, "syslog %s:%d: %s", k->host, k->port,
                  dns_err                  ? evutil_gai_strerror(dns_err)
                  : ssl_err                ? ebuf
                  : (what & BEV_EVENT_EOF) ? "connection closed"
                                           : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        syslog_drop_conn(k);
        schedule_retry(k);
    }
}

static void syslog_connect(struct sink *k)
{
    struct sinks *ss = k->ss;
    if (k->tls) {
        SSL *ssl = SSL_new(ss->ssl);
        SSL_set_tlsext_host_name(ssl, k->host);
        if (!k->insecure) {
            SSL_set1_host(ssl, k->host);
            SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        }
        k->bev = bufferevent_openssl_socket_new(ss->ag->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    } else {
        k->bev = bufferevent_socket_new(ss->ag->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    bufferevent_setcb(k->bev, on_syslog_read, on_syslog_write, on_syslog_event, k);
    bufferevent_setwatermark(k->bev, EV_WRITE, 0, 0);
    bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect_hostname(k->bev, ss->ag->dns, AF_UNSPEC, k->host, k->port) < 0) {
        set_error(k, "syslog %s:%d: cannot connect", k->host, k->port);
        syslog_drop_conn(k);
        schedule_retry(k);
    }
}

/* ---- http ---- */

static void http_pump(struct sink *k);

static void on_http_done(struct evhttp_request *req, void *arg)
{
    struct sink *k = arg;
    k->in_flight = false;
    int st = req ? evhttp_request_get_response_code(req) : 0;
    if (st >= 200 && st < 300) {
        /* holes in the batch were lines dropped by their app's bound */
        k->dropped += k->batch_end - k->cursor - k->batch_lines;
        k->cursor = k->batch_end;
        k->delivered += k->batch_lines;
        clear_error(k);
        http_pump(k);
        return;
    }
    if (st)
        set_error(k, "POST http://%s:%d%s: status %d", k->host, k->port, k->path, st);
    else
        set_error(k, "POST http://%s:%d%s: no response", k->host, k->port, k->path);
    schedule_retry(k);
}

static void http_pump(struct sink *k)
{
    if (k->in_flight || evtimer_pending(k->retry, NULL) || !next_line(k))
        return;
    /* next_line moved the cursor past lines that left the buffer */
    struct logbuf *b = k->ss->ag->buf;
    uint64_t g = k->cursor, next = logbuf_next_gseq(b), n = 0;
    struct strbuf sb = STRBUF_INIT;
    for (; g < next && n < HTTP_BATCH_LINES && sb.len < HTTP_BATCH_BYTES; g++) {
        struct logline *l = logbuf_at(b, g);
        if (l) {
            render_message(&sb, l, false);
            n++;
        }
    }
    k->batch_end = g;
    k->batch_lines = n;
    if (!k->hconn) {
        k->hconn = evhttp_connection_base_new(k->ss->ag->base, k->ss->ag->dns, k->host,
                                              (ev_uint16_t)k->port);
        evhttp_connection_set_timeout(k->hconn, 30);
    }
    struct evhttp_request *req = evhttp_request_new(on_http_done, k);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hosthdr[300];
    snprintf(hosthdr, sizeof(hosthdr), "%s:%d", k->host, k->port);
    evhttp_add_header(h, "Host", hosthdr);
    evhttp_add_header(h, "Content-Type", "application/x-ndjson");
    evbuffer_add(evhttp_request_get_output_buffer(req), sb.buf, sb.len);
    strbuf_release(&sb);
    if (evhttp_make_request(k->hconn, req, EVHTTP_REQ_POST, k->path) < 0) {
        set_error(k, "POST http://%s:%d%s: cannot send", k->host, k->port, k->path);
        schedule_retry(k);
        return;
    }
    k->in_flight = true;
}

/* ---- sink lifecycle ---- */

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct sink *k = arg;
    if (k->kind == SINK_SYSLOG)
        syslog_connect(k);
    else
        http_pump(k);
}

static void sink_pump(struct sink *k)
{
    if (k->kind == SINK_SYSLOG)
        syslog_pump(k);
    else
        http_pump(k);
}

static void sink_free(struct sink *k)
{
    if (k->bev)
        bufferevent_free(k->bev);
    if (k->hconn)
        evhttp_connection_free(k->hconn); /* its request goes too, without callbacks */
    event_free(k->retry);
    free(k->id);
    free(k->cfg_text);
    free(k->host);
    free(k->path);
    free(k->prefix);
    free(k->error);
    free(k);
}

/* Where a new sink starts: a restored position, else the first line
 * written at or after the sink was made. */
static uint64_t start_cursor(struct sinks *ss, const char *id, const char *created_at)
{
    struct logagg *ag = ss->ag;
    for (struct sink_cursor **pp = &ag->restored; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->id, id)) {
            struct sink_cursor *c = *pp;
            uint64_t g = c->gseq;
            *pp = c->next;
            free(c->id);
            free(c);
            return g;
        }
    }
    int64_t created;
    uint64_t g = logbuf_first_gseq(ag->buf), next = logbuf_next_gseq(ag->buf);
    if (!created_at || !jsonflat_time_us(created_at, strlen(created_at), &created))
        return next;
    for (; g < next; g++) {
        struct logline *l = logbuf_at(ag->buf, g);
        if (l && l->ts_us >= created)
            break;
    }
    return g;
}

static struct sink *sink_new(struct sinks *ss, json_t *obj, const char *cfg_text, char **why)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    json_t *cfg = json_object_get(obj, "config");
    const char *url = json_string_value(json_object_get(cfg, "url"));
    struct sink *k = xcalloc(1, sizeof(*k));
    k->ss = ss;
    k->id = xstrdup(json_string_value(json_object_get(obj, "id")));
    k->cfg_text = xstrdup(cfg_text);
    k->retry = evtimer_new(ss->ag->base, on_retry, k);
    *why = NULL;
    if (kind && !strcmp(kind, "syslog") && url) {
        k->kind = SINK_SYSLOG;
        k->tls = !strncmp(url, "syslog+tls://", 13);
        if (parse_url(url, k->tls ? "syslog+tls" : "syslog", k->tls ? 6514 : 514, &k->host,
                      &k->port, NULL) < 0)
            *why = xasprintf("bad url '%s'", url);
        const char *fmt = json_string_value(json_object_get(cfg, "format"));
        if (!render_syslog_framing(fmt, &k->so.framing))
            *why = xasprintf("unknown format '%s'", fmt);
        const char *tmpl = json_string_value(json_object_get(cfg, "template"));
        k->prefix = tmpl && *tmpl ? xstrdup(tmpl) : NULL;
        k->so.prefix = k->prefix;
        k->so.use_ids = json_is_true(json_object_get(cfg, "use_ids"));
        k->so.structured_data = json_is_true(json_object_get(cfg, "structured_data"));
        k->insecure = json_is_true(json_object_get(cfg, "insecure"));
    } else if (kind && !strcmp(kind, "http") && url) {
        k->kind = SINK_HTTP;
        if (parse_url(url, "http", 80, &k->host, &k->port, &k->path) < 0)
            *why = xasprintf("bad url '%s' (http:// only)", url);
    } else {
        *why = xasprintf("kind '%s' is not delivered by this aggregator", kind ? kind : "");
    }
    if (*why) {
        sink_free(k);
        return NULL;
    }
    k->cursor = k->committed =
        start_cursor(ss, k->id, json_string_value(json_object_get(obj, "created_at")));
    log_info("sink %s: %s to %s:%d from line %llu", k->id, kind, k->host, k->port,
             (unsigned long long)k->cursor);
    if (k->kind == SINK_SYSLOG)
        syslog_connect(k);
    else
        http_pump(k);
    return k;
}

/* ---- the controller's list ---- */

static void poll_later(struct sinks *ss)
{
    struct timeval tv = {POLL_SECS, 0};
    evtimer_add(ss->poll, &tv);
}

static void reconcile(struct sinks *ss, json_t *list)
{
    /* keep unchanged sinks, drop the others */
    struct sink *keep = NULL, **kt = &keep;
    while (ss->list) {
        struct sink *k = ss->list;
        ss->list = k->next;
        k->next = NULL;
        bool found = false;
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o)
        {
            const char *id = json_string_value(json_object_get(o, "id"));
            json_t *pair = json_pack("{s:O?,s:O?}", "kind", json_object_get(o, "kind"), "config",
                                     json_object_get(o, "config"));
            char *txt = json_dumps(pair, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(pair);
            found = id && !strcmp(id, k->id) && txt && !strcmp(txt, k->cfg_text);
            free(txt);
            if (found)
                break;
        }
        if (found) {
            *kt = k;
            kt = &k->next;
        } else {
            log_info("sink %s: removed or changed", k->id);
            sink_free(k);
        }
    }
    ss->list = keep;
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        const char *id = json_string_value(json_object_get(o, "id"));
        if (!id)
            continue;
        bool have = false;
        for (struct sink *k = ss->list; k && !have; k = k->next)
            have = !strcmp(k->id, id);
        if (have)
            continue;
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (kind && !strcmp(kind, "logaggregator"))
            continue; /* Flynn's aggregator-to-aggregator sinks: not ours to deliver */
        json_t *pair = json_pack("{s:O?,s:O?}", "kind", json_object_get(o, "kind"), "config",
                                 json_object_get(o, "config"));
        char *txt = json_dumps(pair, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(pair);
        char *why = NULL;
        struct sink *k = sink_new(ss, o, txt ? txt : "", &why);
        free(txt);
        if (!k) {
            log_warn("sink %s: %s", id, why);
            free(why);
            continue;
        }
        k->next = ss->list;
        ss->list = k;
    }
}

static void on_sinks(struct evhttp_request *req, void *arg)
{
    struct sinks *ss = arg;
    ss->polling = false;
    int st = req ? evhttp_request_get_response_code(req) : 0;
    if (st == 200) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        json_t *list = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, 0, NULL);
        if (json_is_array(list))
            reconcile(ss, list);
        json_decref(list);
    } else {
        log_debug("GET /sinks from the controller: status %d", st);
    }
    poll_later(ss);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct sinks *ss = arg;
    if (ss->polling)
        return;
    if (!ss->ctl) {
        ss->ctl = evhttp_connection_base_new(ss->ag->base, ss->ag->dns, ss->ctl_host,
                                             (ev_uint16_t)ss->ctl_port);
        evhttp_connection_set_timeout(ss->ctl, 10);
    }
    struct evhttp_request *req = evhttp_request_new(on_sinks, ss);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", ss->ctl_host);
    evhttp_add_header(h, "Accept", "application/json");
    if (ss->auth)
        evhttp_add_header(h, "Authorization", ss->auth);
    if (evhttp_make_request(ss->ctl, req, EVHTTP_REQ_GET, "/sinks") < 0) {
        poll_later(ss);
        return;
    }
    ss->polling = true;
}

struct sinks *sinks_new(struct logagg *ag, const char *controller_url, const char *key)
{
    struct sinks *ss = xcalloc(1, sizeof(*ss));
    ss->ag = ag;
    if (parse_url(controller_url, "http", 80, &ss->ctl_host, &ss->ctl_port, NULL) < 0) {
        free(ss);
        return NULL;
    }
    if (key && *key) {
        cleanup_free char *cred = xasprintf(":%s", key);
        size_t cl = strlen(cred);
        cleanup_free unsigned char *b64 = xmalloc(4 * ((cl + 2) / 3) + 1);
        EVP_EncodeBlock(b64, (const unsigned char *)cred, (int)cl);
        ss->auth = xasprintf("Basic %s", b64);
    }
    ss->ssl = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_default_verify_paths(ss->ssl);
    ss->poll = evtimer_new(ag->base, on_poll, ss);
    on_poll(-1, 0, ss);
    return ss;
}

void sinks_kick(struct sinks *ss)
{
    for (struct sink *k = ss->list; k; k = k->next)
        sink_pump(k);
}

json_t *sinks_status(struct sinks *ss)
{
    json_t *a = json_array();
    for (struct sink *k = ss->list; k; k = k->next) {
        uint64_t next = logbuf_next_gseq(ss->ag->buf);
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:s?}", "id", k->id, "kind",
                         k->kind == SINK_SYSLOG ? (k->tls ? "syslog+tls" : "syslog") : "http",
                         "host", k->host, "port", k->port, "delivered", (json_int_t)k->delivered,
                         "dropped", (json_int_t)k->dropped, "behind",
                         (json_int_t)(next > k->cursor ? next - k->cursor : 0), "error", k->error));
    }
    return a;
}

void sinks_cursors(struct sinks *ss, void (*fn)(const char *id, uint64_t gseq, void *arg),
                   void *arg)
{
    for (struct sink *k = ss->list; k; k = k->next)
        fn(k->id, k->kind == SINK_SYSLOG ? k->committed : k->cursor, arg);
}

void sinks_free(struct sinks *ss)
{
    if (!ss)
        return;
    while (ss->list) {
        struct sink *k = ss->list;
        ss->list = k->next;
        sink_free(k);
    }
    if (ss->ctl)
        evhttp_connection_free(ss->ctl);
    event_free(ss->poll);
    SSL_CTX_free(ss->ssl);
    free(ss->ctl_host);
    free(ss->auth);
    free(ss);
}
