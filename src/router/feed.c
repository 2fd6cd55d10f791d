/* feed: routes and backends from the controller (see router.h). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

#define WAIT_TIMEOUT_S 40 /* the controller answers within 25 s */
#define RETRY_MAX_MS 5000

struct feed {
    struct router *r;
    char *host, *auth, *path_base;
    int port;
    unsigned long gen;
    bool have_gen;
    int backoff_ms;
    struct evhttp_connection *conn;
    struct event *retry;
};

static void feed_poll(struct feed *f);

static void retry_later(struct feed *f)
{
    f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : 250;
    if (f->backoff_ms > RETRY_MAX_MS)
        f->backoff_ms = RETRY_MAX_MS;
    struct timeval tv = {f->backoff_ms / 1000, (f->backoff_ms % 1000) * 1000};
    evtimer_add(f->retry, &tv);
}

static void on_reply(struct evhttp_request *req, void *arg)
{
    struct feed *f = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code != 200) {
        if (f->backoff_ms >= RETRY_MAX_MS || !f->backoff_ms)
            log_warn("feed: controller answered %d; retrying", code);
        retry_later(f);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    json_error_t je;
    json_t *root = body ? json_loadb(body, n, 0, &je) : NULL;
    json_t *gen = json_object_get(root, "generation");
    if (!json_is_integer(gen)) {
        log_warn("feed: the controller's table is not understood");
        json_decref(root);
        retry_later(f);
        return;
    }
    unsigned long g = (unsigned long)json_integer_value(gen);
    json_decref(root);
    f->backoff_ms = 0;
    if (!f->have_gen || g != f->gen) {
        struct err *e = NULL;
        if (router_set_table_json(f->r, body, n, &e) < 0) {
            log_error("feed: %s", e->msg);
            err_free(e);
            retry_later(f);
            return;
        }
        f->gen = g;
        f->have_gen = true;
    }
    feed_poll(f);
}

static void feed_poll(struct feed *f)
{
    if (!f->conn) {
        f->conn = evhttp_connection_base_new(f->r->base, NULL, f->host, (unsigned short)f->port);
        evhttp_connection_set_timeout(f->conn, WAIT_TIMEOUT_S);
    }
    struct evhttp_request *req = evhttp_request_new(on_reply, f);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", f->host);
    evhttp_add_header(h, "Accept", "application/json");
    if (f->auth)
        evhttp_add_header(h, "Authorization", f->auth);
    char path[256];
    if (f->have_gen)
        snprintf(path, sizeof(path), "%s/router/table?wait=%lu", f->path_base, f->gen);
    else
        snprintf(path, sizeof(path), "%s/router/table", f->path_base);
    if (evhttp_make_request(f->conn, req, EVHTTP_REQ_GET, path) < 0)
        retry_later(f);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    feed_poll(arg);
}

struct feed *router_feed_start(struct router *r, const char *url, const char *key, struct err **err)
{
    if (strncmp(url, "http://", 7)) {
        err_makex(err, EINVAL, "--controller must be an http:// URL (got '%s')", url);
        return NULL;
    }
    const char *hp = url + 7, *slash = strchr(hp, '/');
    size_t hl = slash ? (size_t)(slash - hp) : strlen(hp);
    char *hostport = xstrndup(hp, hl);
    char *colon = strrchr(hostport, ':');
    int port = 80;
    if (colon) {
        port = atoi(colon + 1);
        *colon = '\0';
    }
    if (!*hostport || port <= 0 || port > 65535) {
        free(hostport);
        err_makex(err, EINVAL, "bad --controller URL '%s'", url);
        return NULL;
    }
    struct feed *f = xcalloc(1, sizeof(*f));
    f->r = r;
    f->host = hostport;
    f->port = port;
    f->path_base = xstrdup(slash ? slash : "");
    size_t bl = strlen(f->path_base);
    if (bl && f->path_base[bl - 1] == '/')
        f->path_base[bl - 1] = '\0';
    if (key && *key) {
        char *cred = xasprintf(":%s", key);
        size_t cl = strlen(cred);
        char *b64 = xmalloc(4 * ((cl + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, (int)cl);
        f->auth = xasprintf("Basic %s", b64);
        free(b64);
        free(cred);
    }
    f->retry = evtimer_new(r->base, retry_cb, f);
    feed_poll(f);
    return f;
}

void router_feed_free(struct feed *f)
{
    if (!f)
        return;
    if (f->conn)
        evhttp_connection_free(f->conn);
    event_free(f->retry);
    free(f->host);
    free(f->auth);
    free(f->path_base);
    free(f);
}
