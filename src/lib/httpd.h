/*
 * httpd: an HTTP/1.1 JSON API server on libevent's evhttp.
 *
 * A daemon gives a route table (method, pattern, handler); patterns are
 * paths whose ":name" segments capture one path segment ("/host/jobs/:id").
 * Unknown paths get 404, a known path with another method gets 405, bodies
 * over the limit get 413, malformed requests are rejected by evhttp before
 * any handler runs. Handlers must answer exactly once, with one of the
 * httpd_reply_* calls or by starting a stream.
 *
 * Lifetimes: a struct httpd_req lives until its reply is sent (or, for a
 * stream, until httpd_stream_end or the peer closes). The on_close callback
 * of a stream runs once when the peer goes away; the stream must not be
 * used after it.
 */
#ifndef LIB_HTTPD_H
#define LIB_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "strbuf.h"

struct event_base;
struct evhttp_request;
struct httpd;
struct httpd_req;

typedef void (*httpd_handler_cb)(struct httpd_req *req, void *arg);

struct httpd_route {
    const char *method;  /* "GET", "PUT", "POST", "DELETE", "PATCH" */
    const char *pattern; /* "/host/jobs/:id" */
    httpd_handler_cb fn;
};

struct httpd_opts {
    size_t max_body;    /* default 1 MiB */
    size_t max_headers; /* default 16 KiB */
    int timeout_secs;   /* idle read/write timeout, default 60 */
};

/* Routes must outlive the server; arg is passed to every handler. */
struct httpd *httpd_new(struct event_base *base, const struct httpd_route *routes, size_t nroutes,
                        const struct httpd_opts *opts, void *arg);
void httpd_free(struct httpd *h);
/* Listens on "HOST:PORT" (port 0 picks a free one); returns the bound port. */
int httpd_listen(struct httpd *h, const char *addr, struct err **err);

/* Request accessors. Strings are borrowed until the reply. */
const char *httpd_method(struct httpd_req *r);
const char *httpd_path(struct httpd_req *r);
const char *httpd_param(struct httpd_req *r, const char *name); /* path capture */
/* Query parameter (decoded), NULL when absent. */
const char *httpd_query(struct httpd_req *r, const char *name);
const char *httpd_header(struct httpd_req *r, const char *name);
/* Whole body; *len set. Not NUL-terminated in general: use httpd_body_json. */
const void *httpd_body(struct httpd_req *r, size_t *len);
/* Parses the body as a JSON object. On failure answers 400 itself and
 * returns NULL; the caller just returns. Caller owns the result. */
json_t *httpd_body_json(struct httpd_req *r);
struct evhttp_request *httpd_evreq(struct httpd_req *r);

/* Replies. json is stolen (decref'd). */
void httpd_reply_json(struct httpd_req *r, int status, json_t *json);
void httpd_reply_text(struct httpd_req *r, int status, const char *ctype, const char *body,
                      size_t len);
void httpd_reply_empty(struct httpd_req *r, int status);
/* {"code": code, "message": msg} with the given status. */
void httpd_reply_error(struct httpd_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Consumes e: status from err_http_status, code from the status. */
void httpd_reply_err(struct httpd_req *r, struct err *e);
void httpd_set_header(struct httpd_req *r, const char *name, const char *value);

/* Streaming (SSE, log follow). Sends status 200 and the headers now. */
struct httpd_stream;
typedef void (*httpd_stream_close_cb)(struct httpd_stream *s, void *arg);
struct httpd_stream *httpd_stream_start(struct httpd_req *r, const char *content_type,
                                        httpd_stream_close_cb on_close, void *arg);
void httpd_stream_write(struct httpd_stream *s, const void *data, size_t len);
/* Bytes queued and not yet written to the socket. */
size_t httpd_stream_pending(struct httpd_stream *s);
/* Finishes the response and frees s (on_close is not called). */
void httpd_stream_end(struct httpd_stream *s);

/*
 * Protocol upgrades (RFC 9110 §7.8), for connections that stop being HTTP
 * after the request (Flynn's `flynn-attach/0`). evhttp cannot do this, so the
 * connection is taken away from it:
 *
 *  1. the handler checks httpd_wants_upgrade() and validates the request as
 *     usual; it may answer with an ordinary reply instead, or keep the
 *     request pending while it does asynchronous work;
 *  2. httpd_upgrade() writes "HTTP/1.1 101 Switching Protocols" with
 *     "Connection: Upgrade" and "Upgrade: PROTOCOL" on the socket, detaches
 *     the socket from evhttp and hands it to the caller, who then owns it
 *     (an fd to wrap in a bufferevent, or to pass to another process).
 *
 * Only plain TCP connections can be upgraded (the controller's TLS listener
 * relays plaintext to its plain one, so its requests qualify).
 */

/* True when the request carries "Upgrade: protocol" (case-insensitive;
 * the first token of a list counts). */
bool httpd_wants_upgrade(struct httpd_req *r, const char *protocol);
/* Answers 101 and returns the connection's socket (non-blocking,
 * close-on-exec); the caller owns it and closes it. Bytes the client sent
 * after the request are appended to early (NULL: dropped). The request is
 * finished either way: r must not be used after the call. On failure
 * (the peer is gone) the connection is closed, *err set and -1 returned. */
int httpd_upgrade(struct httpd_req *r, const char *protocol, struct strbuf *early,
                  struct err **err);

#endif
