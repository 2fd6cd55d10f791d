#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "pin.h"
#include "xalloc.h"

struct client {
    char *url;
    char *auth; /* "Authorization: Basic ..." */
    int pinned;
    struct pin_check pin;
};

struct resp {
    long status;
    char *ctype;
    char *location;
    int headers_done;
    struct strbuf body;
};

/* Frees what r holds and leaves it empty and ready for reuse. */
static void resp_release(struct resp *r)
{
    free(r->ctype);
    free(r->location);
    strbuf_release(&r->body);
    memset(r, 0, sizeof(*r));
    strbuf_init(&r->body, 0);
}

static int curl_ready;

struct client *client_new(const char *url, const char *key, const char *pin, struct err **err)
{
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    struct client *c = xcalloc(1, sizeof(*c));
    if (pin && *pin) {
        if (pin_decode(pin, c->pin.want, &c->pin.want_len, err) < 0) {
            free(c);
            return NULL;
        }
        c->pinned = 1;
    }
    c->url = xstrdup(url);
    size_t n = strlen(c->url);
    while (n && c->url[n - 1] == '/')
        c->url[--n] = '\0';
    cleanup_free char *up = xasprintf(":%s", key ? key : "");
    cleanup_free char *b64 = base64_encode(up, strlen(up));
    c->auth = xasprintf("Authorization: Basic %s", b64);
    return c;
}

void client_free(struct client *c)
{
    if (!c)
        return;
    free(c->url);
    free(c->auth);
    free(c);
}

char *client_escape(const char *s)
{
    struct strbuf sb = STRBUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            strbuf_addch(&sb, *p);
        else
            strbuf_addf(&sb, "%%%02X", *p);
    }
    return strbuf_detach(&sb, NULL);
}

int client_is_not_found(const struct err *e)
{
    return e && e->errnum == ENOENT;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    strbuf_add(&((struct resp *)arg)->body, data, size * n);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;
    if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
        const char *sp = memchr(data, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->headers_done = 0;
        return len;
    }
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (r->status >= 200)
            r->headers_done = 1;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t klen = (size_t)(colon - data);
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char **slot = NULL;
    if (klen == 12 && !strncasecmp(data, "Content-Type", 12))
        slot = &r->ctype;
    else if (klen == 8 && !strncasecmp(data, "Location", 8))
        slot = &r->location;
    if (slot) {
        free(*slot);
        *slot = xstrndup(v, (size_t)(end - v));
    }
    return len;
}

static CURLcode on_ssl_ctx(CURL *h, void *ssl_ctx, void *arg)
{
    (void)h;
    pin_install(ssl_ctx, arg);
    return CURLE_OK;
}

/* Go's url.Error names the method like this: "Get", "Post". */
static const char *op_name(const char *method)
{
    static const char *const names[][2] = {
        {"GET", "Get"}, {"POST", "Post"}, {"PUT", "Put"}, {"DELETE", "Delete"}, {"PATCH", "Patch"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (!strcmp(names[i][0], method))
            return names[i][1];
    return method;
}

static CURL *easy_new(struct client *c, const char *method, const char *url, struct curl_slist *hdrs,
                      struct resp *r, char *errbuf)
{
    CURL *h = curl_easy_init();
    if (!h)
        abort();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* Flynn's client uses no proxy */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "flynn-cli-c/dev");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* as Flynn's client; the attach upgrade needs HTTP/1.1 on the wire */
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (c->pinned) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, &c->pin);
        /* a resumed session skips the certificate, and so the pin check */
        curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    }
    errbuf[0] = '\0';
    return h;
}

/* The host part of url, for hints. Caller frees. */
static char *url_host(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    return xstrndup(p, n);
}

static int transport_error(struct client *c, CURLcode rc, const char *method, const char *url,
                           const char *errbuf, struct err **err)
{
    cleanup_free char *host = url_host(url);
    const char *what = *errbuf ? errbuf : curl_easy_strerror(rc);
    if (c->pinned && c->pin.mismatch)
        return err_makex(err, EPROTO,
                         "%s \"%s\": pinned: the peer leaf certificate did not match the provided "
                         "pin\ncheck the cluster's TLSPin (flynn cluster add -p PIN): the server "
                         "at %s presents another certificate",
                         op_name(method), url, host);
    const char *hint;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        host[strcspn(host, ":")] = '\0';
        hint = "check the cluster's domain: the name %s does not resolve";
        break;
    case CURLE_COULDNT_CONNECT:
        hint = "check that the controller is running and listening at %s, and the cluster's "
               "ControllerURL in ~/.flynnrc (flynn cluster)";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        hint = "check that %s is reachable from here";
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        hint = "check TLS: the server at %s speaks HTTPS with a certificate this client trusts, "
               "or add the cluster with its pin (flynn cluster add -p PIN)";
        break;
    default:
        hint = "check that the controller at %s is up and the cluster configuration (flynn "
               "cluster) is right";
    }
    cleanup_free char *h = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    h = xasprintf(hint, host);
#pragma GCC diagnostic pop
    return err_makex(err, EIO, "%s \"%s\": %s\n%s", op_name(method), url, what, h);
}

static int status_errnum(long status)
{
    switch (status) {
    case 400: return EINVAL;
    case 401: return EACCES;
    case 403: return EPERM;
    case 404: return ENOENT;
    case 409: return EEXIST;
    case 429:
    case 503: return EAGAIN;
    default: return EIO;
    }
}

/* A non-200 answer, the way Flynn's httpclient turns it into an error. */
static int status_error(const char *method, const char *url, struct resp *r, int *retry,
                        struct err **err)
{
    *retry = 0;
    if (r->ctype && strstr(r->ctype, "application/json")) {
        json_error_t je;
        json_t *j = json_loadb(r->body.buf, r->body.len, 0, &je); /* objects only */
        if (j) {
            const char *code = json_string_value(json_object_get(j, "code"));
            const char *msg = json_string_value(json_object_get(j, "message"));
            *retry = json_is_true(json_object_get(j, "retry"));
            err_makex(err, status_errnum(r->status), "%s: %s", code ? code : "", msg ? msg : "");
            json_decref(j);
            return -1;
        }
    }
    if (r->status == 404)
        return err_makex(err, ENOENT, "controller: resource not found");
    if (r->status == 401)
        return err_makex(err, EACCES,
                         "%s \"%s\": httpclient: raw req: unexpected status 401\ncheck the "
                         "cluster's key in ~/.flynnrc: the controller refused it",
                         method, url);
    return err_makex(err, status_errnum(r->status),
                     "%s \"%s\": httpclient: raw req: unexpected status %ld", method, url,
                     r->status);
}

static struct curl_slist *base_headers(struct client *c, const char *accept)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, c->auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, accept ? accept : "Accept:");
    h = curl_slist_append(h, "Expect:");
    return h;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One call, following 307s and retrying "retry": true errors. */
static int do_request(struct client *c, const char *method, const char *path, const char *body,
                      const char *accept, struct resp *r, struct err **err)
{
    cleanup_free char *url = xasprintf("%s%s", c->url, path);
    long long deadline = now_ms() + 10000;
    int redirects = 0;
    for (;;) {
        struct curl_slist *hdrs = base_headers(c, accept);
        char errbuf[CURL_ERROR_SIZE];
        resp_release(r);
        CURL *h = easy_new(c, method, url, hdrs, r, errbuf);
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        } else if (!strcmp(method, "GET")) {
            curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        } else {
            curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
        }
        c->pin.mismatch = 0;
        CURLcode rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_cleanup(h);
        curl_slist_free_all(hdrs);
        if (rc != CURLE_OK)
            return transport_error(c, rc, method, url, errbuf, err);
        if (r->status == 307 && r->location && redirects++ < 10) {
            char *next = r->location[0] == '/' ? xasprintf("%s%s", c->url, r->location)
                                                : xstrdup(r->location);
            free(url);
            url = next;
            continue;
        }
        if (r->status == 200)
            return 0;
        int retry;
        struct err *e = NULL;
        status_error(method, url, r, &retry, &e);
        if (retry && now_ms() < deadline) {
            err_free(e);
            sleep_ms(100);
            continue;
        }
        *err = e;
        return -1;
    }
}

int client_json(struct client *c, const char *method, const char *path, json_t *in, json_t **out,
                struct err **err)
{
    cleanup_free char *body = in ? json_dumps(in, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    struct resp r = {0};
    strbuf_init(&r.body, 0);
    if (out)
        *out = NULL;
    int rc = do_request(c, method, path, body, "Accept: application/json", &r, err);
    if (rc == 0 && out && r.body.len) {
        json_error_t je;
        *out = json_loadb(r.body.buf, r.body.len, JSON_DECODE_ANY, &je);
        if (!*out)
            rc = err_makex(err, EPROTO, "%s %s: invalid JSON in response: %s", method, path,
                           je.text);
    }
    resp_release(&r);
    return rc;
}

int client_raw(struct client *c, const char *method, const char *path, struct strbuf *out,
               struct err **err)
{
    struct resp r = {0};
    strbuf_init(&r.body, 0);
    int rc = do_request(c, method, path, NULL, "Accept: application/json", &r, err);
    if (rc == 0)
        strbuf_add(out, r.body.buf, r.body.len);
    resp_release(&r);
    return rc;
}

static size_t read_fd(char *buf, size_t size, size_t n, void *arg)
{
    ssize_t r;
    do
        r = read(*(int *)arg, buf, size * n);
    while (r < 0 && errno == EINTR);
    return r < 0 ? CURL_READFUNC_ABORT : (size_t)r;
}

int client_post_fd(struct client *c, const char *path, int fd, long long size, json_t **out,
                   struct err **err)
{
    cleanup_free char *url = xasprintf("%s%s", c->url, path);
    struct resp r = {0};
    strbuf_init(&r.body, 0);
    struct curl_slist *hdrs = base_headers(c, "Accept: application/json");
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = easy_new(c, "POST", url, hdrs, &r, errbuf);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_fd);
    curl_easy_setopt(h, CURLOPT_READDATA, &fd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    c->pin.mismatch = 0;
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc != CURLE_OK) {
        ret = transport_error(c, rc, "POST", url, errbuf, err);
    } else if (r.status != 200) {
        int retry;
        ret = status_error("POST", url, &r, &retry, err);
    } else if (out) {
        json_error_t je;
        *out = r.body.len ? json_loadb(r.body.buf, r.body.len, 0, &je) : NULL;
        if (r.body.len && !*out)
            ret = err_makex(err, EPROTO, "POST %s: invalid JSON in response: %s", path, je.text);
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    resp_release(&r);
    return ret;
}

struct lines {
    CURL *h;
    struct resp *r;
    struct strbuf pending;
    client_line_cb cb;
    void *arg;
};

static size_t on_lines(char *data, size_t size, size_t n, void *arg)
{
    struct lines *l = arg;
    size_t len = size * n;
    if (l->r->status != 200) {
        strbuf_add(&l->r->body, data, len); /* an error body */
        return len;
    }
    strbuf_add(&l->pending, data, len);
    size_t off = 0;
    char *nl;
    while ((nl = memchr(l->pending.buf + off, '\n', l->pending.len - off))) {
        size_t ll = (size_t)(nl - (l->pending.buf + off));
        if (l->cb(l->pending.buf + off, ll, l->arg))
            return 0; /* aborts the transfer */
        off += ll + 1;
    }
    strbuf_remove_prefix(&l->pending, off);
    /* the end of what arrived: a chance to flush */
    if (off && l->cb(NULL, 0, l->arg))
        return 0;
    return len;
}

int client_lines(struct client *c, const char *path, client_line_cb cb, void *arg,
                 struct err **err)
{
    cleanup_free char *url = xasprintf("%s%s", c->url, path);
    struct resp r = {0};
    strbuf_init(&r.body, 0);
    struct lines l = {.r = &r, .cb = cb, .arg = arg};
    strbuf_init(&l.pending, 0);
    struct curl_slist *hdrs = base_headers(c, NULL);
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = easy_new(c, "GET", url, hdrs, &r, errbuf);
    l.h = h;
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_lines);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &l);
    c->pin.mismatch = 0;
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (rc == CURLE_WRITE_ERROR && r.status == 200) {
        ret = 0; /* the callback stopped it */
    } else if (rc != CURLE_OK) {
        ret = transport_error(c, rc, "GET", url, errbuf, err);
    } else if (r.status != 200) {
        int retry;
        ret = status_error("GET", url, &r, &retry, err);
    } else if (l.pending.len) {
        cb(l.pending.buf, l.pending.len, arg);
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    strbuf_release(&l.pending);
    resp_release(&r);
    return ret;
}

/* ---- event streams ---- */

struct client_stream {
    struct client *c;
    char *url;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    struct resp r;
    int done;
    CURLcode result;
    long long last_id;
    char errbuf[CURL_ERROR_SIZE];
};

static void stream_drop(struct client_stream *s)
{
    if (s->easy) {
        curl_multi_remove_handle(s->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
}

/* Runs the transfer for up to timeout_ms; returns when data arrived. */
static void stream_pump(struct client_stream *s, int timeout_ms)
{
    int running = 0;
    if (timeout_ms > 0)
        curl_multi_poll(s->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(s->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left)))
        if (m->msg == CURLMSG_DONE) {
            s->done = 1;
            s->result = m->data.result;
        }
}

/* Starts (or restarts) the request and waits for the status line. */
static int stream_connect(struct client_stream *s, struct err **err)
{
    stream_drop(s);
    resp_release(&s->r);
    strbuf_init(&s->r.body, 0);
    s->done = 0;
    s->hdrs = base_headers(s->c, "Accept: text/event-stream");
    cleanup_free char *lei = xasprintf("Last-Event-Id: %lld", s->last_id);
    s->hdrs = curl_slist_append(s->hdrs, lei);
    s->easy = easy_new(s->c, "GET", s->url, s->hdrs, &s->r, s->errbuf);
    curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
    curl_multi_add_handle(s->multi, s->easy);
    s->c->pin.mismatch = 0;
    stream_pump(s, 0);
    long long give_up = now_ms() + 30000;
    while (!s->done && !s->r.headers_done) {
        if (now_ms() >= give_up)
            return err_makex(err, ETIMEDOUT,
                             "GET \"%s\": no answer in 30 s\ncheck that the controller at %s is "
                             "healthy",
                             s->url, s->c->url);
        stream_pump(s, 1000);
    }
    if (s->done && s->result != CURLE_OK)
        return transport_error(s->c, s->result, "GET", s->url, s->errbuf, err);
    if (s->r.status != 200) {
        while (!s->done)
            stream_pump(s, 1000);
        int retry;
        return status_error("GET", s->url, &s->r, &retry, err);
    }
    return 0;
}

struct client_stream *client_stream_open(struct client *c, const char *path, struct err **err)
{
    struct client_stream *s = xcalloc(1, sizeof(*s));
    s->c = c;
    s->url = xasprintf("%s%s", c->url, path);
    s->multi = curl_multi_init();
    strbuf_init(&s->r.body, 0);
    if (stream_connect(s, err) < 0) {
        client_stream_close(s);
        return NULL;
    }
    return s;
}

void client_stream_close(struct client_stream *s)
{
    if (!s)
        return;
    stream_drop(s);
    curl_multi_cleanup(s->multi);
    resp_release(&s->r);
    free(s->url);
    free(s);
}

/* Takes one complete SSE event out of the buffer: 1 event, 0 need more. */
static int take_event(struct client_stream *s, json_t **ev, struct err **err)
{
    struct strbuf *b = &s->r.body;
    for (;;) {
        char *end = strstr(b->buf, "\n\n");
        if (!end)
            return 0;
        size_t blen = (size_t)(end - b->buf) + 2;
        cleanup_strbuf struct strbuf data = STRBUF_INIT;
        int is_error = 0;
        for (char *l = b->buf; l < end;) {
            char *nl = memchr(l, '\n', (size_t)(end - l));
            size_t len = nl ? (size_t)(nl - l) : (size_t)(end - l);
            if (len >= 5 && !strncmp(l, "data:", 5)) {
                size_t off = len > 5 && l[5] == ' ' ? 6 : 5;
                strbuf_add(&data, l + off, len - off);
            } else if (len >= 6 && !strncmp(l, "event:", 6)) {
                const char *v = l + 6;
                while (*v == ' ')
                    v++;
                is_error = !strncmp(v, "error", 5);
            }
            l = nl ? nl + 1 : end;
        }
        strbuf_remove_prefix(b, blen);
        if (is_error)
            return err_makex(err, EIO, "Server error: %s", data.buf);
        if (!data.len)
            continue;
        json_error_t je;
        json_t *j = json_loadb(data.buf, data.len, 0, &je);
        if (!j)
            return err_makex(err, EPROTO, "invalid event JSON: %s", je.text);
        json_t *id = json_object_get(j, "id");
        if (json_is_integer(id))
            s->last_id = json_integer_value(id);
        *ev = j;
        return 1;
    }
}

int client_stream_next(struct client_stream *s, int timeout_ms, json_t **ev, struct err **err)
{
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    *ev = NULL;
    for (;;) {
        int rc = take_event(s, ev, err);
        if (rc != 0)
            return rc;
        if (s->done) {
            /* resume as Flynn's client does: same query, Last-Event-Id */
            long long give_up = now_ms() + 20000;
            struct err *e = NULL;
            while (stream_connect(s, &e) < 0) {
                if (client_is_not_found(e) || now_ms() >= give_up) {
                    err_wrap(&e, "event stream closed unexpectedly");
                    *err = e;
                    return -1;
                }
                err_free(e);
                e = NULL;
                sleep_ms(100);
            }
            continue;
        }
        long long left = deadline < 0 ? 1000 : deadline - now_ms();
        if (left <= 0)
            return 0;
        stream_pump(s, (int)(left > 1000 ? 1000 : left));
    }
}

/* ---- upgraded connections ---- */

struct client_conn {
    CURL *h;
    int fd;
    struct strbuf early; /* bytes read past the response header */
};

static int conn_wait(int fd, short ev, int ms)
{
    struct pollfd p = {.fd = fd, .events = ev};
    return poll(&p, 1, ms);
}

int client_conn_fd(struct client_conn *k)
{
    return k->fd;
}

long client_conn_read(struct client_conn *k, void *buf, size_t len, struct err **err)
{
    if (k->early.len) {
        size_t n = k->early.len < len ? k->early.len : len;
        memcpy(buf, k->early.buf, n);
        strbuf_remove_prefix(&k->early, n);
        return (long)n;
    }
    size_t n = 0;
    CURLcode rc = curl_easy_recv(k->h, buf, len, &n);
    if (rc == CURLE_AGAIN)
        return 0;
    if (rc != CURLE_OK) {
        err_makex(err, EIO, "attach: %s", curl_easy_strerror(rc));
        return -1;
    }
    return n ? (long)n : -1;
}

int client_conn_write(struct client_conn *k, const void *buf, size_t len, struct err **err)
{
    const char *p = buf;
    while (len) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(k->h, p, len, &n);
        if (rc == CURLE_AGAIN) {
            conn_wait(k->fd, POLLOUT, 1000);
            continue;
        }
        if (rc != CURLE_OK)
            return err_makex(err, EIO, "attach: %s", curl_easy_strerror(rc));
        p += n;
        len -= n;
    }
    return 0;
}

void client_conn_close(struct client_conn *k)
{
    if (!k)
        return;
    curl_easy_cleanup(k->h);
    strbuf_release(&k->early);
    free(k);
}

/* Reads into sb until it holds "\r\n\r\n" (or the peer closes). */
static int read_header(struct client_conn *k, struct strbuf *sb, struct err **err)
{
    while (!strstr(sb->buf, "\r\n\r\n")) {
        char buf[4096];
        long n = client_conn_read(k, buf, sizeof(buf), err);
        if (n < 0)
            return -1;
        if (n == 0) {
            conn_wait(k->fd, POLLIN, 1000);
            continue;
        }
        strbuf_add(sb, buf, (size_t)n);
    }
    return 0;
}

struct client_conn *client_upgrade(struct client *c, const char *method, const char *path,
                                   json_t *body, const char *protocol, struct err **err)
{
    cleanup_free char *url = xasprintf("%s%s", c->url, path);
    cleanup_free char *host = url_host(url);
    cleanup_free char *json = body ? json_dumps(body, JSON_COMPACT) : xstrdup("");
    cleanup_strbuf struct strbuf req = STRBUF_INIT;
    cleanup_strbuf struct strbuf head = STRBUF_INIT;
    struct client_conn *k = xcalloc(1, sizeof(*k));
    strbuf_init(&k->early, 0);
    struct resp r = {0};
    strbuf_init(&r.body, 0);
    char errbuf[CURL_ERROR_SIZE];
    k->h = easy_new(c, method, url, NULL, &r, errbuf);
    curl_easy_setopt(k->h, CURLOPT_CONNECT_ONLY, 1L);
    c->pin.mismatch = 0;
    CURLcode rc = curl_easy_perform(k->h);
    if (rc != CURLE_OK) {
        transport_error(c, rc, method, url, errbuf, err);
        goto fail;
    }
    curl_socket_t fd;
    curl_easy_getinfo(k->h, CURLINFO_ACTIVESOCKET, &fd);
    k->fd = (int)fd;
    strbuf_addf(&req,
                "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: flynn-cli-c/dev\r\n%s\r\n"
                "Connection: upgrade\r\nContent-Type: application/json\r\nUpgrade: %s\r\n"
                "Content-Length: %zu\r\n\r\n%s",
                method, path, host, c->auth, protocol, strlen(json), json);
    if (client_conn_write(k, req.buf, req.len, err) < 0)
        goto fail;
    if (read_header(k, &head, err) < 0) {
        if (!*err)
            err_makex(err, EIO, "%s \"%s\": the server closed the connection", op_name(method),
                      url);
        goto fail;
    }
    char *end = strstr(head.buf, "\r\n\r\n") + 4;
    size_t hlen = (size_t)(end - head.buf);
    /* hand every header line to the normal parser */
    for (char *l = head.buf; l < end;) {
        char *nl = strstr(l, "\r\n");
        on_header(l, 1, (size_t)(nl + 2 - l), &r);
        l = nl + 2;
    }
    strbuf_add(&k->early, head.buf + hlen, head.len - hlen);
    if (r.status == 101) {
        resp_release(&r);
        return k;
    }
    /* an error: read the body (Content-Length or until close) */
    long want = -1;
    const char *cl = strcasestr(head.buf, "\r\nContent-Length:");
    if (cl && cl < end)
        want = strtol(cl + 17, NULL, 10);
    strbuf_add(&r.body, k->early.buf, k->early.len);
    strbuf_reset(&k->early);
    while (want < 0 || (long)r.body.len < want) {
        char buf[4096];
        struct err *e = NULL;
        long n = client_conn_read(k, buf, sizeof(buf), &e);
        if (n < 0) {
            err_free(e);
            break;
        }
        if (n == 0) {
            if (conn_wait(k->fd, POLLIN, 10000) <= 0)
                break;
            continue;
        }
        strbuf_add(&r.body, buf, (size_t)n);
    }
    int retry;
    status_error(method, url, &r, &retry, err);
fail:
    resp_release(&r);
    client_conn_close(k);
    return NULL;
}
