/*
 * h2: HTTP/2 to clients over TLS (ALPN "h2"), proxied to HTTP/1.1 backends.
 *
 * nghttp2 runs the session. Each stream becomes an HTTP/1.1 request on an
 * in-process bufferevent pair: the stream writes the request (head, then
 * the body chunked unless the client gave a content-length) into one end,
 * and proxy.c serves the other end exactly like a client connection, so
 * routing, headers, retries, pools and logs are the HTTP/1.1 code's. The
 * stream reads the HTTP/1.1 response back, turns the head into a HEADERS
 * frame and the body (de-chunked) into DATA frames.
 *
 * Backpressure: a stream stops reading its pair while more than H2_HIGH
 * bytes wait for nghttp2 to send; nghttp2 is asked for frames only while
 * the TLS output holds less than H2_HIGH. Request bodies: window updates
 * are manual; received bytes are given back (nghttp2_session_consume) only
 * once the pair has passed them on (its output under H2_LOW), so a slow
 * backend throttles the client instead of filling memory.
 *
 * Lifetimes: struct h2_conn owns the nghttp2 session, its TLS bufferevent
 * and every stream; a stream owns its pair end (the proxy's end belongs to
 * proxy.c and closes when the exchange ends). A stream is freed by
 * nghttp2's on_stream_close; h2_conn_free frees what remains.
 */
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"
#include "log.h"
#include "router.h"
#include "strbuf.h"
#include "xalloc.h"

#define H2_HIGH (256 * 1024)
#define H2_LOW (64 * 1024)
#define H2_WINDOW (256 * 1024)

struct h2_stream {
    struct h2_conn *h;
    int32_t id;
    struct h2_stream *next, *prev;
    struct bufferevent *pair; /* our end */
    struct strbuf head;       /* HTTP/1.1 request head being built */
    struct strbuf cookie;
    char *method, *path, *authority;
    bool has_cl, chunked_req, req_started, req_ended;
    size_t unconsumed; /* request body bytes not yet given back to the window */
    struct h1_msg resp;
    bool resp_head, resp_eof, submitted;
    struct evbuffer *out; /* response body waiting for DATA frames */
};

struct h2_conn {
    struct router *r;
    struct h2_conn *next, *prev;
    struct bufferevent *bev;
    nghttp2_session *s;
    struct h2_stream *streams;
    char peer[64];
    int port;
    struct event *close_ev; /* frees the connection on the next loop turn */
    struct event *flush_ev; /* runs flush outside the pairs' callbacks */
};

static void h2_conn_free(struct h2_conn *h);
static void flush(struct h2_conn *h);

/* Pair callbacks must not run nghttp2 (its on_stream_close frees the stream
 * they are using): they ask for a flush on the next callback round. */
static void flush_soon(struct h2_conn *h)
{
    event_active(h->flush_ev, EV_TIMEOUT, 1);
}

static void stream_free(struct h2_stream *st)
{
    if (st->pair)
        bufferevent_free(st->pair);
    strbuf_release(&st->head);
    strbuf_release(&st->cookie);
    free(st->method);
    free(st->path);
    free(st->authority);
    if (st->out)
        evbuffer_free(st->out);
    struct h2_conn *h = st->h;
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    free(st);
}

/* ---- response: pair -> nghttp2 ---- */

static ssize_t data_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *arg)
{
    struct h2_stream *st = src->ptr;
    size_t have = evbuffer_get_length(st->out);
    if (have == 0) {
        if (st->resp_eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        return NGHTTP2_ERR_DEFERRED;
    }
    int n = evbuffer_remove(st->out, buf, len);
    if (st->resp_eof && evbuffer_get_length(st->out) == 0)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->pair && evbuffer_get_length(st->out) < H2_HIGH / 2)
        bufferevent_enable(st->pair, EV_READ);
    st->h->r->m->bytes_out += (uint64_t)n;
    return n;
}

static int body_sink(void *arg, const char *p, size_t n)
{
    struct h2_stream *st = arg;
    evbuffer_add(st->out, p, n);
    return 0;
}

static void submit_head(struct h2_stream *st, const char *buf, size_t n)
{
    struct h1_head hd;
    h1_msg_init(&st->resp, H1_RESPONSE);
    if (st->method && !strcmp(st->method, "HEAD"))
        h1_msg_set_skip_body(&st->resp);
    if (h1_msg_head(&st->resp, buf, n, &hd)) {
        nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (hd.status / 100 == 1) /* interim responses: nothing for the h2 client */
        return;
    nghttp2_nv nv[H1_MAX_HEADERS + 1];
    char status[4];
    snprintf(status, sizeof(status), "%03d", hd.status);
    size_t k = 0;
    nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
    char *lower = xmalloc(n + 1), *lp = lower;
    for (size_t i = 0; i < hd.nheaders; i++) {
        struct h1_header *x = &hd.headers[i];
        static const char *drop[] = {"connection", "keep-alive", "proxy-connection",
                                     "transfer-encoding", "upgrade"};
        bool skip = false;
        for (size_t d = 0; d < ARRAY_SIZE(drop) && !skip; d++)
            skip = h1_slice_eq(x->name, drop[d]);
        if (skip)
            continue;
        for (size_t c = 0; c < x->name.n; c++)
            lp[c] = (char)tolower((unsigned char)x->name.p[c]);
        nv[k++] = (nghttp2_nv){(uint8_t *)lp, (uint8_t *)x->value.p, x->name.n, x->value.n,
                               NGHTTP2_NV_FLAG_NONE};
        lp += x->name.n;
    }
    bool body = !h1_msg_done(&st->resp);
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = data_read};
    nghttp2_submit_response(st->h->s, st->id, nv, k, body ? &dp : NULL);
    free(lower);
    st->resp_head = true;
    st->submitted = true;
    if (!body)
        st->resp_eof = true;
}

static void pair_read(struct bufferevent *bev, void *arg)
{
    struct h2_stream *st = arg;
    struct h2_conn *h = st->h;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!st->resp_head && evbuffer_get_length(in)) {
        size_t len = evbuffer_get_length(in);
        const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
        size_t n = h1_head_end(buf, len);
        if (!n)
            return;
        submit_head(st, buf, n);
        evbuffer_drain(in, n);
        if (!st->submitted) { /* a 1xx, or a bad head */
            if (st->resp.error)
                return;
            continue;
        }
    }
    if (!st->resp_head)
        return;
    while (!st->resp_eof && evbuffer_get_length(in)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t n = h1_msg_body_data(&st->resp, v.iov_base, v.iov_len, body_sink, st);
        evbuffer_drain(in, n);
        if (h1_msg_failed(&st->resp)) {
            nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
            break;
        }
        if (h1_msg_done(&st->resp))
            st->resp_eof = true;
        else if (n < v.iov_len)
            break;
    }
    if (evbuffer_get_length(st->out) >= H2_HIGH)
        bufferevent_disable(bev, EV_READ);
    nghttp2_session_resume_data(h->s, st->id);
    flush_soon(h);
}

/* Gives the stream's received body bytes back to the flow-control windows
 * once the pair has passed them on. */
static void give_back(struct h2_stream *st)
{
    if (!st->unconsumed || !st->pair ||
        evbuffer_get_length(bufferevent_get_output(st->pair)) > H2_LOW)
        return;
    nghttp2_session_consume(st->h->s, st->id, st->unconsumed);
    st->unconsumed = 0;
}

static void pair_write(struct bufferevent *bev, void *arg)
{
    struct h2_stream *st = arg;
    give_back(st);
    flush_soon(st->h);
}

static void pair_event(struct bufferevent *bev, short what, void *arg)
{
    struct h2_stream *st = arg;
    struct h2_conn *h = st->h;
    pair_read(bev, st);
    if (!st->resp_eof && st->resp_head) {
        h1_msg_body_data(&st->resp, NULL, 0, body_sink, st);
        if (h1_msg_done(&st->resp))
            st->resp_eof = true;
    }
    bufferevent_free(st->pair);
    st->pair = NULL;
    if (st->unconsumed) { /* what the backend will never read */
        nghttp2_session_consume(h->s, st->id, st->unconsumed);
        st->unconsumed = 0;
    }
    if (!st->resp_eof)
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    else
        nghttp2_session_resume_data(h->s, st->id);
    flush_soon(h);
}

/* ---- request: nghttp2 -> pair ---- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct h2_conn *h = arg;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *st = xcalloc(1, sizeof(*st));
    st->h = h;
    st->id = f->hd.stream_id;
    strbuf_init(&st->head, 512);
    strbuf_init(&st->cookie, 0);
    st->out = evbuffer_new();
    st->next = h->streams;
    if (st->next)
        st->next->prev = st;
    h->streams = st;
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *arg)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st || st->req_started)
        return 0; /* trailers are dropped */
    const char *n = (const char *)name, *v = (const char *)value;
    if (nlen && n[0] == ':') {
        char **dst = NULL;
        if (nlen == 7 && !memcmp(n, ":method", 7))
            dst = &st->method;
        else if (nlen == 5 && !memcmp(n, ":path", 5))
            dst = &st->path;
        else if (nlen == 10 && !memcmp(n, ":authority", 10))
            dst = &st->authority;
        if (dst && !*dst)
            *dst = xstrndup(v, vlen);
        return 0;
    }
    if (nlen == 4 && !memcmp(n, "host", 4)) {
        if (!st->authority)
            st->authority = xstrndup(v, vlen);
        return 0;
    }
    if (nlen == 6 && !memcmp(n, "cookie", 6)) { /* crumbs join into one header */
        if (st->cookie.len)
            strbuf_add(&st->cookie, "; ", 2);
        strbuf_add(&st->cookie, v, vlen);
        return 0;
    }
    if (nlen == 2 && !memcmp(n, "te", 2))
        return 0;
    if (nlen == 14 && !memcmp(n, "content-length", 14))
        st->has_cl = true;
    strbuf_add(&st->head, n, nlen);
    strbuf_add(&st->head, ": ", 2);
    strbuf_add(&st->head, v, vlen);
    strbuf_add(&st->head, "\r\n", 2);
    return 0;
}

static void start_request(struct h2_stream *st, bool end_stream)
{
    struct h2_conn *h = st->h;
    struct router *r = h->r;
    st->req_started = true;
    if (!st->method || !st->path || st->path[0] != '/' || !strcmp(st->method, "CONNECT")) {
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
        return;
    }
    r->m->requests_h2++;
    struct bufferevent *pair[2];
    if (bufferevent_pair_new(r->base, BEV_OPT_DEFER_CALLBACKS, pair) < 0) {
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->pair = pair[0];
    bufferevent_setcb(st->pair, pair_read, pair_write, pair_event, st);
    bufferevent_setwatermark(st->pair, EV_WRITE, H2_LOW, 0);
    bufferevent_enable(st->pair, EV_READ | EV_WRITE);
    struct strbuf req = STRBUF_INIT;
    strbuf_addf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n", st->method, st->path,
                st->authority ? st->authority : "");
    strbuf_add(&req, st->head.buf, st->head.len);
    if (st->cookie.len)
        strbuf_addf(&req, "Cookie: %s\r\n", st->cookie.buf);
    st->chunked_req = !end_stream && !st->has_cl;
    if (st->chunked_req)
        strbuf_adds(&req, "Transfer-Encoding: chunked\r\n");
    strbuf_adds(&req, "Connection: close\r\n\r\n");
    bufferevent_write(st->pair, req.buf, req.len);
    strbuf_release(&req);
    st->req_ended = end_stream;
    proxy_accept_bev(r, pair[1], h->peer, h->port, true);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st)
        return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && !st->req_started)
        start_request(st, end);
    else if (end && !st->req_ended && st->pair) {
        st->req_ended = true;
        if (st->chunked_req)
            bufferevent_write(st->pair, "0\r\n\r\n", 5);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *arg)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st || !st->pair || !len) {
        nghttp2_session_consume(s, id, len); /* nobody reads it: do not stall */
        return 0;
    }
    st->h->r->m->bytes_in += len;
    st->unconsumed += len;
    if (st->chunked_req) {
        char hdr[24];
        int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        bufferevent_write(st->pair, hdr, (size_t)hl);
        bufferevent_write(st->pair, data, len);
        bufferevent_write(st->pair, "\r\n", 2);
    } else {
        bufferevent_write(st->pair, data, len);
    }
    give_back(st);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *arg)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (st) {
        if (st->unconsumed)
            nghttp2_session_consume_connection(s, st->unconsumed);
        nghttp2_session_set_stream_user_data(s, id, NULL);
        stream_free(st);
    }
    return 0;
}

/* ---- the TLS connection ---- */

/* Ends the connection on the next loop turn: flush runs inside stream
 * callbacks that still use their stream afterwards. */
static void close_later(struct h2_conn *h)
{
    struct timeval zero = {0, 0};
    bufferevent_disable(h->bev, EV_READ);
    evtimer_add(h->close_ev, &zero);
}

static void close_cb(evutil_socket_t fd, short what, void *arg)
{
    h2_conn_free(arg);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    flush(arg);
}

static void flush(struct h2_conn *h)
{
    struct evbuffer *out = bufferevent_get_output(h->bev);
    if (evtimer_pending(h->close_ev, NULL))
        return;
    while (evbuffer_get_length(out) < H2_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->s, &data);
        if (n < 0) {
            close_later(h);
            return;
        }
        if (n == 0)
            break;
        evbuffer_add(out, data, (size_t)n);
    }
    if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s) &&
        evbuffer_get_length(out) == 0)
        close_later(h);
}

static void h2_read(struct bufferevent *bev, void *arg)
{
    struct h2_conn *h = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)len);
    ssize_t n = nghttp2_session_mem_recv(h->s, data, len);
    if (n < 0) {
        log_debug("h2 from %s: %s", h->peer, nghttp2_strerror((int)n));
        h2_conn_free(h);
        return;
    }
    evbuffer_drain(in, (size_t)n);
    flush(h);
    tls_read_pending(bev); /* records OpenSSL read ahead */
}

static void h2_write(struct bufferevent *bev, void *arg)
{
    flush(arg);
}

static void h2_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        h2_conn_free(arg);
}

static void h2_conn_free(struct h2_conn *h)
{
    struct router *r = h->r;
    event_free(h->close_ev);
    event_free(h->flush_ev);
    nghttp2_session_del(h->s); /* does not call on_stream_close */
    while (h->streams)
        stream_free(h->streams);
    bufferevent_free(h->bev);
    if (h->prev)
        h->prev->next = h->next;
    else
        r->h2_conns = h->next;
    if (h->next)
        h->next->prev = h->prev;
    r->m->conns_active--;
    free(h);
}

void h2_close_all(struct router *r)
{
    while (r->h2_conns)
        h2_conn_free(r->h2_conns);
}

void h2_conn_start(struct router *r, struct bufferevent *bev, const char *peer, int port)
{
    struct h2_conn *h = xcalloc(1, sizeof(*h));
    h->r = r;
    h->bev = bev;
    h->port = port;
    h->close_ev = evtimer_new(r->base, close_cb, h);
    h->flush_ev = event_new(r->base, -1, 0, flush_cb, h);
    snprintf(h->peer, sizeof(h->peer), "%s", peer);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session_server_new2(&h->s, cb, h, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 128},
                                   {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 65536},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW}};
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
    /* the connection window: room for a few streams' windows */
    nghttp2_submit_window_update(h->s, NGHTTP2_FLAG_NONE, 0, 4 * H2_WINDOW - 65535);
    h->next = r->h2_conns;
    if (h->next)
        h->next->prev = h;
    r->h2_conns = h;
    bufferevent_setcb(bev, h2_read, h2_write, h2_event, h);
    bufferevent_setwatermark(bev, EV_READ, 0, 0);
    bufferevent_setwatermark(bev, EV_WRITE, H2_HIGH / 4, 0);
    struct timeval t = {r->opts.idle_timeout_ms / 1000, (r->opts.idle_timeout_ms % 1000) * 1000};
    bufferevent_set_timeouts(bev, &t, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_input(bev))) {
        h2_read(bev, h);
    } else {
        flush(h);
        tls_read_pending(bev); /* the client's preface may be in OpenSSL's buffer */
    }
}
