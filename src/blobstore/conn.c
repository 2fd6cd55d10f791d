/*
 * conn: one client connection, its HTTP/1.1 state machine and the API.
 *
 *   C_HEAD    reading a request head through the bufferevent (limit
 *             --max-head, deadline --header-timeout from its first byte)
 *   C_BODY    a PUT body: read straight from the socket into the shared
 *             buffer (bs->iobuf), decoded (req.h), hashed and written to
 *             the temp file (disk.h), so memory stays flat for any size
 *   C_SEND    a GET body: file segments queued on the output 512 KiB at
 *             a time while less than OUT_HIGH is waiting; libevent sends
 *             them with sendfile, so no file data passes through memory
 *   C_CLOSING the last response is flushing
 *   C_LINGER  our side is shut down; what the client still sends is read
 *             and dropped for up to LINGER_MS, so it gets our response
 *             rather than a reset
 *
 * Each request ends in request_done, once its whole response is queued:
 * back to C_HEAD on keep-alive, to C_CLOSING otherwise. Requests that arrive
 * pipelined wait in the input until then.
 *
 * Freeing: code below a libevent callback never frees the connection; it
 * sets c->dead, and every callback ends in settle(), which frees it.
 */
#include "blobstore_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#include "path.h"
#include "req.h"

#define OUT_LOW (256 * 1024)
#define OUT_HIGH (1024 * 1024)
#define SEND_CHUNK (512 * 1024)
#define LINGER_MS 2000

enum conn_state { C_HEAD, C_BODY, C_SEND, C_CLOSING, C_LINGER };

struct conn {
    struct blobstore *bs;
    struct conn *prev, *next;
    struct bufferevent *bev;
    int fd;
    enum conn_state state;
    struct event *timer;   /* head deadline, keep-alive idle, linger */
    struct event *body_ev; /* raw reads in C_BODY and C_LINGER */
    size_t head_scanned;   /* input already searched for the head's end */
    bool head_started;     /* bytes of the current head arrived */
    bool dead, in_process, peer_eof, paused_out;
    char peer[64];

    /* the current request */
    int method; /* enum http_method, -1 before a head parsed */
    bool keep_alive, head_only, http10, expect_continue;
    char *path;             /* decoded, without the leading '/' */
    char *range, *if_range; /* copies of those headers */
    char *if_none_match;
    char want_sha[65]; /* X-Checksum-Sha256, lowercase; "" when absent */
    int status;        /* of the response */
    uint64_t bytes;    /* body bytes received (PUT) or queued (GET) */
    struct timespec t0;

    /* PUT */
    struct h1body body;
    struct disk_put put;
    int body_status; /* why the sink refused data */
    char *body_msg;

    /* GET */
    struct evbuffer_file_segment *seg;
    uint64_t send_off, send_end;
};

static void process(struct conn *c);

static const char *reason(int st)
{
    switch (st) {
    case 100: return "Continue";
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

/* The error code of a status when nothing more precise applies. */
static const char *status_code(int st)
{
    switch (st) {
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 411: return "length_required";
    case 413: return "too_large";
    case 416: return "range_not_satisfiable";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 505: return "version_not_supported";
    case 507: return "insufficient_storage";
    default: return st >= 500 ? "internal" : "bad_request";
    }
}

static void arm_timer(struct conn *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void clear_request(struct conn *c)
{
    free(c->path);
    free(c->range);
    free(c->if_range);
    free(c->if_none_match);
    free(c->body_msg);
    c->path = c->range = c->if_range = c->if_none_match = c->body_msg = NULL;
    c->want_sha[0] = '\0';
    c->method = -1;
    c->status = 0;
    c->bytes = 0;
    c->body_status = 0;
    c->expect_continue = false;
}

static void access_log(struct conn *c)
{
    if (log_min_level > LOG_LVL_INFO)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - c->t0.tv_sec) + (double)(t1.tv_nsec - c->t0.tv_nsec) / 1e9;
    const char *m = c->method >= 0 ? http_method_str((enum http_method)c->method) : "-";
    log_info("%s %s %s%s %d %" PRIu64 " %.3fs", c->peer, m, c->path ? "/" : "",
             c->path ? c->path : "-", c->status, c->bytes, secs);
}

static void linger(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->state = C_LINGER;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    evbuffer_drain(in, evbuffer_get_length(in));
    shutdown(c->fd, SHUT_WR);
    if (c->peer_eof) {
        c->dead = true;
        return;
    }
    arm_timer(c, LINGER_MS);
    event_add(c->body_ev, NULL);
}

static void start_closing(struct conn *c)
{
    c->state = C_CLOSING;
    c->keep_alive = false;
    bufferevent_disable(c->bev, EV_READ);
    event_del(c->body_ev);
    evtimer_del(c->timer);
    /* the write callback then runs once everything is sent */
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        linger(c);
}

/* The whole response is queued. */
static void request_done(struct conn *c)
{
    access_log(c);
    clear_request(c);
    if (!c->keep_alive || c->peer_eof) {
        start_closing(c);
        return;
    }
    c->state = C_HEAD;
    c->head_scanned = 0;
    c->head_started = false;
    arm_timer(c, c->bs->opts.idle_timeout_ms);
    bufferevent_enable(c->bev, EV_READ);
}

/* Queues a response head. length: Content-Length, or -1 for none (304).
 * extra: more header lines, each ending in CRLF, or NULL. */
static void send_head(struct conn *c, int status, const char *ctype, int64_t length,
                      const char *extra)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->status = status;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nServer: flynn-blobstore\r\n", status,
                        reason(status));
    if (ctype)
        evbuffer_add_printf(out, "Content-Type: %s\r\n", ctype);
    if (length >= 0)
        evbuffer_add_printf(out, "Content-Length: %" PRId64 "\r\n", length);
    if (extra)
        evbuffer_add(out, extra, strlen(extra));
    if (!c->keep_alive)
        evbuffer_add(out, "Connection: close\r\n", 19);
    else if (c->http10)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(out, "\r\n", 2);
}

/* Sends j (consumed) as the whole response. */
static void reply_json(struct conn *c, int status, json_t *j, const char *extra)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        s = xasprintf("{\"code\":\"%s\",\"message\":\"%s\"}", status_code(status), reason(status));
    size_t n = strlen(s);
    send_head(c, status, "application/json", (int64_t)n + 1, extra);
    if (!c->head_only) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evbuffer_add(out, s, n);
        evbuffer_add(out, "\n", 1);
    }
    free(s);
    request_done(c);
}

/* {"code": code, "message": ...}; json_pack fails on a message that is not
 * UTF-8 (then reply_json falls back to the status text). */
static void reply_error(struct conn *c, int status, const char *code, const char *extra,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reply_error(struct conn *c, int status, const char *code, const char *extra,
                        const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(c, status,
               json_pack("{s:s,s:s}", "code", code ? code : status_code(status), "message", msg),
               extra);
}

/* Answers a request whose body will not be read: the connection closes
 * after the response. */
static void refuse(struct conn *c, bool body_unread, int status, const char *code, const char *msg)
{
    if (body_unread)
        c->keep_alive = false;
    reply_error(c, status, code, NULL, "%s", msg);
}

static int errno_status(int e)
{
    switch (e) {
    case ENOENT: return 404;
    case ENOTDIR: return 400;
    case ENOSPC:
    case EDQUOT: return 507;
    default: return 500;
    }
}

static const char *errno_code(int e)
{
    return e == ENOTDIR ? "path_conflict" : status_code(errno_status(e));
}

/* Replies with e (consumed), logging the ones that are our failures. */
static void reply_err(struct conn *c, struct err *e, bool body_unread)
{
    int st = errno_status(e->errnum);
    if (st >= 500)
        log_error("%s /%s: %s", http_method_str((enum http_method)c->method),
                  c->path ? c->path : "", e->msg);
    if (body_unread)
        c->keep_alive = false;
    reply_error(c, st, errno_code(e->errnum), NULL, "%s", e->msg);
    err_free(e);
}

/* ---- PUT ---- */

static int put_sink(void *arg, const char *p, size_t n)
{
    struct conn *c = arg;
    if (c->put.size + n > c->bs->opts.max_size) {
        c->body_status = 413;
        c->body_msg = xasprintf("body larger than %" PRIu64 " bytes", c->bs->opts.max_size);
        return -1;
    }
    struct err *e = NULL;
    if (disk_put_write(&c->put, p, n, &e) < 0) {
        c->body_status = errno_status(e->errnum) == 507 ? 507 : 500;
        c->body_msg = xstrdup(e->msg);
        log_error("PUT /%s: %s", c->path, e->msg);
        err_free(e);
        return -1;
    }
    c->bytes += n;
    return 0;
}

static void leave_body(struct conn *c)
{
    event_del(c->body_ev);
}

/* The whole body arrived: check it, store it, answer. */
static void put_finish(struct conn *c)
{
    struct blobstore *bs = c->bs;
    leave_body(c);
    disk_put_finish(&c->put);
    uint64_t size = c->put.size;
    char sha[65];
    memcpy(sha, c->put.sha256, sizeof(sha));
    if (c->want_sha[0] && strcmp(c->want_sha, sha)) {
        disk_put_abort(&bs->disk, &c->put);
        reply_error(c, 400, "checksum_mismatch", NULL,
                    "sha256 of the body is %s but X-Checksum-Sha256 says %s; nothing stored", sha,
                    c->want_sha);
        return;
    }
    struct err *e = NULL;
    if (disk_put_commit(&bs->disk, &c->put, c->path, &e) < 0) {
        reply_err(c, e, false);
        return;
    }
    char *p = xasprintf("/%s", c->path);
    json_t *j = json_pack("{s:s,s:I,s:s}", "path", p, "size", (json_int_t)size, "sha256", sha);
    free(p);
    char extra[160];
    snprintf(extra, sizeof(extra), "ETag: \"%s\"\r\nX-Checksum-Sha256: %s\r\n", sha, sha);
    reply_json(c, 200, j, extra);
}

/* Acts on the body decoder's state after a feed. */
static void body_check(struct conn *c)
{
    if (c->state != C_BODY)
        return;
    switch (c->body.state) {
    case H1B_DONE: put_finish(c); break;
    case H1B_FAILED:
        leave_body(c);
        disk_put_abort(&c->bs->disk, &c->put);
        refuse(c, true, 400, "bad_request", "bad chunked body framing; nothing stored");
        break;
    case H1B_ABORTED:
        leave_body(c);
        disk_put_abort(&c->bs->disk, &c->put);
        refuse(c, true, c->body_status, status_code(c->body_status), c->body_msg);
        break;
    default: break;
    }
}

/* Feeds what the bufferevent already read past the head. */
static void feed_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->state == C_BODY && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used = h1body_feed(&c->body, v.iov_base, v.iov_len, put_sink, c);
        evbuffer_drain(in, used);
        body_check(c);
    }
}

static void on_body_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct blobstore *bs = c->bs;
    if (what & EV_TIMEOUT) {
        if (c->state == C_BODY)
            log_info("%s PUT /%s: no body bytes for %d ms after %" PRIu64 "; nothing stored",
                     c->peer, c->path, bs->opts.idle_timeout_ms, c->bytes);
        c->dead = true;
    }
    /* a few reads per wakeup, so one fast upload does not starve the rest */
    for (int i = 0; i < 8 && !c->dead && (c->state == C_BODY || c->state == C_LINGER); i++) {
        ssize_t n = read(fd, bs->iobuf, BLOBSTORE_IOBUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (c->state == C_BODY)
                log_info("%s PUT /%s: client went away after %" PRIu64
                         " body bytes; nothing stored",
                         c->peer, c->path, c->bytes);
            c->dead = true;
            break;
        }
        if (c->state == C_LINGER)
            continue;
        size_t used = h1body_feed(&c->body, bs->iobuf, (size_t)n, put_sink, c);
        body_check(c);
        /* the rest is the next request (or dropped when closing) */
        if (c->state == C_HEAD && used < (size_t)n)
            evbuffer_add(bufferevent_get_input(c->bev), bs->iobuf + used, (size_t)n - used);
    }
}

static bool parse_sha(struct req_slice v, char out[65])
{
    if (v.n != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char ch = (char)(v.p[i] | 0x20);
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        out[i] = ch;
    }
    out[64] = '\0';
    return true;
}

static void do_put(struct conn *c, const struct req_head *h, int nsha, bool sha_ok)
{
    struct blobstore *bs = c->bs;
    bool body = h->flags & REQ_HAS_BODY;
    if (!(h->flags & (REQ_CHUNKED | REQ_HAS_LENGTH))) {
        refuse(c, false, 411, "length_required",
               "PUT needs Content-Length or Transfer-Encoding: chunked");
        return;
    }
    if ((h->flags & REQ_HAS_LENGTH) && h->length > bs->opts.max_size) {
        char msg[96];
        snprintf(msg, sizeof(msg), "body larger than %" PRIu64 " bytes", bs->opts.max_size);
        refuse(c, body, 413, "too_large", msg);
        return;
    }
    if (nsha > 1 || (nsha == 1 && !sha_ok)) {
        refuse(c, body, 400, "bad_checksum",
               "X-Checksum-Sha256 must be one SHA-256 in 64 hex digits");
        return;
    }
    struct err *e = NULL;
    if (disk_check_put(&bs->disk, c->path, &e) < 0 ||
        disk_put_begin(&bs->disk, &c->put, (h->flags & REQ_HAS_LENGTH) ? h->length : 0, &e) < 0) {
        reply_err(c, e, body);
        return;
    }
    if (c->expect_continue && body)
        evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    req_body_init(&c->body, h);
    c->state = C_BODY;
    /* the caller drained the head; what follows in the input is body */
}

/* Starts reading the body once do_put set C_BODY. */
static void start_body(struct conn *c)
{
    body_check(c); /* an empty body is done already */
    feed_input(c);
    if (c->state != C_BODY)
        return;
    bufferevent_disable(c->bev, EV_READ);
    int ms = c->bs->opts.idle_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(c->body_ev, &tv);
}

/* ---- GET, HEAD ---- */

/* If-None-Match: "*" or a list of entity tags, weak ones included. */
static bool etag_matches(const char *list, const char *sha)
{
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (!strncmp(p, "W/", 2))
            p += 2;
        if (*p == '"' && !strncmp(p + 1, sha, 64) && p[65] == '"')
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

static void pump(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (c->send_off < c->send_end && evbuffer_get_length(out) < OUT_HIGH) {
        uint64_t n = c->send_end - c->send_off;
        if (n > SEND_CHUNK)
            n = SEND_CHUNK;
        if (evbuffer_add_file_segment(out, c->seg, (ev_off_t)c->send_off, (ev_off_t)n) < 0) {
            log_error("GET /%s: cannot queue file data", c->path);
            c->dead = true;
            return;
        }
        c->send_off += n;
        c->bytes += n;
    }
    if (c->send_off == c->send_end) {
        evbuffer_file_segment_free(c->seg);
        c->seg = NULL;
        request_done(c);
    }
}

static void do_get(struct conn *c)
{
    struct disk_blob b;
    struct err *e = NULL;
    if (disk_get(&c->bs->disk, c->path, &b, &e) < 0) {
        if (e->errnum == ENOENT) {
            err_free(e);
            reply_error(c, 404, "not_found", NULL, "no blob at '/%s'", c->path);
            return;
        }
        reply_err(c, e, false);
        return;
    }
    char extra[512], date[64];
    struct tm tm;
    time_t mt = (time_t)b.mtime;
    gmtime_r(&mt, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(extra, sizeof(extra), "Accept-Ranges: bytes\r\nLast-Modified: %s\r\n", date);
    if (b.has_sha)
        snprintf(extra + n, sizeof(extra) - (size_t)n, "ETag: \"%s\"\r\nX-Checksum-Sha256: %s\r\n",
                 b.sha256, b.sha256);
    if (c->if_none_match && b.has_sha && etag_matches(c->if_none_match, b.sha256)) {
        close(b.fd);
        send_head(c, 304, NULL, -1, extra);
        request_done(c);
        return;
    }
    int status = 200;
    uint64_t first = 0, last = b.size ? b.size - 1 : 0;
    /* If-Range: the range only applies to the representation the client has */
    bool range_ok = !c->if_range ||
                    (b.has_sha && etag_matches(c->if_range, b.sha256) && strcmp(c->if_range, "*"));
    if (c->range && range_ok) {
        struct req_slice v = {c->range, strlen(c->range)};
        switch (req_range_parse(v, b.size, &first, &last)) {
        case REQ_RANGE_OK:
            status = 206;
            n = (int)strlen(extra);
            snprintf(extra + n, sizeof(extra) - (size_t)n,
                     "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n", first, last,
                     b.size);
            break;
        case REQ_RANGE_UNSATISFIABLE: {
            close(b.fd);
            char cr[64];
            snprintf(cr, sizeof(cr), "Content-Range: bytes */%" PRIu64 "\r\n", b.size);
            reply_error(c, 416, "range_not_satisfiable", cr,
                        "range '%s' is outside the blob's %" PRIu64 " bytes", c->range, b.size);
            return;
        }
        case REQ_RANGE_NONE: break;
        }
    }
    uint64_t len = b.size ? last - first + 1 : 0;
    if (c->head_only || len == 0) {
        close(b.fd);
        send_head(c, status, "application/octet-stream", (int64_t)len, extra);
        request_done(c);
        return;
    }
    /* the segment owns the fd from here (sendfile reads it as it goes) */
    c->seg = evbuffer_file_segment_new(b.fd, 0, (ev_off_t)b.size, EVBUF_FS_CLOSE_ON_FREE);
    if (!c->seg) {
        close(b.fd);
        reply_error(c, 500, "internal", NULL, "cannot read '/%s'", c->path);
        return;
    }
    send_head(c, status, "application/octet-stream", (int64_t)len, extra);
    c->send_off = first;
    c->send_end = last + 1;
    c->state = C_SEND;
    pump(c);
}

static void do_delete(struct conn *c)
{
    struct err *e = NULL;
    if (disk_delete(&c->bs->disk, c->path, &e) < 0) {
        if (e->errnum == ENOENT) {
            err_free(e);
            reply_error(c, 404, "not_found", NULL, "no blob at '/%s'", c->path);
            return;
        }
        reply_err(c, e, false);
        return;
    }
    char *p = xasprintf("/%s", c->path);
    reply_json(c, 200, json_pack("{s:s,s:b}", "path", p, "deleted", 1), NULL);
    free(p);
}

/* ---- heads ---- */

static char *header_copy(const struct req_head *h, const char *name)
{
    const struct req_header *hd = req_head_find(h, name, NULL);
    return hd ? xstrndup(hd->value.p, hd->value.n) : NULL;
}

/* Serves a request whose head is parsed and drained. */
static void dispatch(struct conn *c, const struct req_head *h, int path_st, const char *why,
                     bool status_path, int nsha, bool sha_ok)
{
    bool body = h->flags & REQ_HAS_BODY;
    if (status_path) {
        if (h->method == HTTP_GET || h->method == HTTP_HEAD)
            reply_json(c, 200, json_pack("{s:s}", "status", "ok"), NULL);
        else
            reply_error(c, 405, "method_not_allowed", "Allow: GET, HEAD\r\n",
                        "'/' and '/_status' answer GET and HEAD");
        return;
    }
    switch (h->method) {
    case HTTP_PUT:
        if (path_st) {
            refuse(c, body, 400, "bad_path", why);
            return;
        }
        do_put(c, h, nsha, sha_ok);
        if (c->state == C_BODY)
            start_body(c);
        return;
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_DELETE:
        if (path_st == 404)
            reply_error(c, 404, "not_found", NULL, "a path ending in '/' names no blob");
        else if (path_st)
            reply_error(c, 400, "bad_path", NULL, "%s", why);
        else if (h->method == HTTP_DELETE)
            do_delete(c);
        else
            do_get(c);
        return;
    default:
        reply_error(c, 405, "method_not_allowed", "Allow: GET, HEAD, PUT, DELETE\r\n",
                    "method %s not allowed", http_method_str((enum http_method)h->method));
        return;
    }
}

/* Parses the head buf[0..len) (still in the input), copies what the
 * request needs, drains it and serves the request. */
static void handle_head(struct conn *c, const char *buf, size_t len)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct req_head h;
    int st = req_head_parse(buf, len, &h);
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    evtimer_del(c->timer);
    if (st) {
        evbuffer_drain(in, len);
        c->keep_alive = false;
        c->head_only = false;
        reply_error(c, st, status_code(st), NULL, "%s", h.error);
        return;
    }
    c->method = h.method;
    c->head_only = h.method == HTTP_HEAD;
    c->http10 = h.minor == 0;
    c->keep_alive = h.flags & REQ_KEEP_ALIVE;
    /* only a PUT gets its body read; after any other request with a body,
     * the connection closes */
    if ((h.flags & REQ_HAS_BODY) && h.method != HTTP_PUT)
        c->keep_alive = false;

    size_t tn = 0; /* the path part of the target */
    while (tn < h.target.n && h.target.p[tn] != '?' && h.target.p[tn] != '#')
        tn++;
    bool status_path = tn == 1 || (tn == 8 && !memcmp(h.target.p, "/_status", 8));
    const char *why = NULL;
    int path_st = 0;
    if (!status_path && path_parse(h.target.p, h.target.n, &c->path, &why) < 0) {
        path_st = 400;
        /* "/a/b/" names a directory, never a blob: 404 to readers */
        char *trimmed = NULL;
        const char *w2;
        if (tn > 1 && h.target.p[tn - 1] == '/' &&
            path_parse(h.target.p, tn - 1, &trimmed, &w2) == 0)
            path_st = 404;
        free(trimmed);
    }
    int nsha = 0;
    const struct req_header *sha = req_head_find(&h, "x-checksum-sha256", &nsha);
    bool sha_ok = sha && parse_sha(sha->value, c->want_sha);
    const struct req_header *exp = req_head_find(&h, "expect", NULL);
    c->expect_continue = exp && req_slice_eq(exp->value, "100-continue");
    if (h.method == HTTP_GET || h.method == HTTP_HEAD) {
        c->range = header_copy(&h, "range");
        c->if_range = header_copy(&h, "if-range");
        c->if_none_match = header_copy(&h, "if-none-match");
    }
    /* h's slices point into these bytes: only its numbers are used below */
    evbuffer_drain(in, len);
    h.target = (struct req_slice){NULL, 0};
    h.nheaders = 0;
    dispatch(c, &h, path_st, why, status_path, nsha, sha_ok);
}

/* Serves the requests waiting in the input while in C_HEAD. */
static void process(struct conn *c)
{
    if (c->in_process)
        return;
    c->in_process = true;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t max = c->bs->opts.max_head;
    while (c->state == C_HEAD && !c->dead) {
        size_t len = evbuffer_get_length(in);
        if (len == 0)
            break;
        if (evbuffer_get_length(out) > OUT_HIGH) {
            /* pipelined requests from a client that does not read: wait */
            bufferevent_disable(c->bev, EV_READ);
            evtimer_del(c->timer);
            c->head_started = false;
            c->paused_out = true;
            break;
        }
        if (!c->head_started) {
            c->head_started = true;
            arm_timer(c, c->bs->opts.header_timeout_ms);
        }
        size_t avail = len < max ? len : max;
        const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
        size_t end = buf ? req_head_end(buf, avail, c->head_scanned) : 0;
        if (!end) {
            if (len >= max) {
                c->keep_alive = false;
                c->head_only = false;
                evbuffer_drain(in, len);
                reply_error(c, 431, "headers_too_large", NULL, "request head over %zu bytes", max);
                break;
            }
            c->head_scanned = avail > 3 ? avail - 3 : 0;
            break;
        }
        handle_head(c, buf, end);
    }
    c->in_process = false;
}

/* ---- callbacks ---- */

static void conn_free(struct conn *c)
{
    struct blobstore *bs = c->bs;
    if (c->prev)
        c->prev->next = c->next;
    else
        bs->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bs->nconns--;
    disk_put_abort(&bs->disk, &c->put);
    if (c->seg)
        evbuffer_file_segment_free(c->seg);
    event_free(c->timer);
    event_free(c->body_ev);
    bufferevent_free(c->bev); /* closes the socket */
    clear_request(c);
    free(c);
}

/* Every callback ends here: serves requests that waited in the input,
 * frees a connection that died. */
static void settle(struct conn *c)
{
    if (!c->dead && c->state == C_HEAD)
        process(c);
    if (c->dead)
        conn_free(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    settle(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
    switch (c->state) {
    case C_SEND: pump(c); break;
    case C_HEAD:
        if (c->paused_out && pending <= OUT_LOW) {
            c->paused_out = false;
            bufferevent_enable(bev, EV_READ);
        }
        break;
    case C_CLOSING:
        if (pending == 0)
            linger(c);
        break;
    default: break;
    }
    settle(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))) {
        c->peer_eof = true;
        c->keep_alive = false;
        if (c->state == C_HEAD) {
            /* what is left in the input is an unfinished head */
            if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
                c->dead = true;
            else
                start_closing(c);
        }
    } else {
        if (what & BEV_EVENT_TIMEOUT)
            log_info("%s: no progress sending for %d ms, closing", c->peer,
                     c->bs->opts.idle_timeout_ms);
        c->dead = true;
    }
    settle(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->state == C_HEAD && c->head_started) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        clock_gettime(CLOCK_MONOTONIC, &c->t0);
        c->keep_alive = false;
        c->head_only = false;
        reply_error(c, 408, "request_timeout", NULL, "request head not received within %d ms",
                    c->bs->opts.header_timeout_ms);
    } else if (c->state == C_HEAD || c->state == C_LINGER) {
        c->dead = true; /* idle keep-alive connection, or done lingering */
    }
    settle(c);
}

static void on_body_ev(evutil_socket_t fd, short what, void *arg)
{
    on_body_read(fd, what, arg);
    settle(arg);
}

void conn_accept(struct blobstore *bs, int fd, const struct sockaddr *sa)
{
    if (bs->nconns >= bs->opts.max_conns) {
        static time_t last;
        time_t now = time(NULL);
        if (now != last)
            log_warn("%zu connections open (--max-conns): refusing new ones", bs->nconns);
        last = now;
        close(fd);
        return;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->bs = bs;
    c->fd = fd;
    c->put.fd = -1;
    c->method = -1;
    c->bev = bufferevent_socket_new(bs->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        free(c);
        return;
    }
    c->timer = evtimer_new(bs->base, on_timer, c);
    c->body_ev = event_new(bs->base, fd, EV_READ | EV_PERSIST, on_body_ev, c);
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", host, ntohs(a->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(c->peer, sizeof(c->peer), "%s:%d", host, ntohs(a->sin_port));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* heads only: bodies bypass the bufferevent (on_body_read) */
    bufferevent_set_max_single_read(c->bev, 64 * 1024);
    bufferevent_set_max_single_write(c->bev, 1024 * 1024);
    bufferevent_setwatermark(c->bev, EV_READ, 0, bs->opts.max_head + 1);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
    int ms = bs->opts.idle_timeout_ms;
    struct timeval wt = {ms / 1000, (ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    c->next = bs->conns;
    if (bs->conns)
        bs->conns->prev = c;
    bs->conns = c;
    bs->nconns++;
    c->state = C_HEAD;
    arm_timer(c, bs->opts.header_timeout_ms);
    bufferevent_enable(c->bev, EV_READ);
}

void conn_close_all(struct blobstore *bs)
{
    while (bs->conns)
        conn_free(bs->conns);
}
