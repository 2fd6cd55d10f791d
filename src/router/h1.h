/*
 * h1: HTTP/1.x message heads and body framing for the router, on top of
 * Debian's http-parser (libhttp-parser).
 *
 * The router never decodes bodies: it finds where a message's head ends,
 * parses the head into borrowed slices (struct h1_head), then feeds the body
 * bytes through the same parser only to learn where the message ends, and
 * forwards those bytes verbatim. So chunked bodies stay chunked and nothing
 * but the head is ever held in memory.
 *
 * Use:
 *   struct h1_msg m; h1_msg_init(&m, H1_REQUEST);
 *   n = h1_head_end(buf, len);            0: need more, >0: head length
 *   h1_msg_head(&m, buf, n, &head)        parse; buf must stay put while
 *                                          head's slices are used
 *   h1_msg_body(&m, data, len)            bytes of this message in data
 *   h1_msg_done(&m)                       the message is complete
 *
 * Body framing (Content-Length, chunked, until-EOF) is tracked by a
 * strict decoder of our own, not by http-parser: Debian builds it
 * non-strict, which would accept chunk framing a backend reads otherwise.
 * A chunk size is hex digits (no spaces), optional ";ext", CRLF; data is
 * followed by CRLF; trailers are header-like lines up to 64 KiB.
 *
 * Rejected (status 400): malformed request line or header, obs-fold,
 * Content-Length together with Transfer-Encoding, repeated or bad
 * Content-Length, Transfer-Encoding other than "chunked" on a request, a
 * repeated Host, NUL or bare CR in the head. Too many headers: 431.
 */
#ifndef ROUTER_H1_H
#define ROUTER_H1_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h1body.h"

#define H1_MAX_HEADERS 100

enum h1_type { H1_REQUEST = HTTP_REQUEST, H1_RESPONSE = HTTP_RESPONSE };

/* A byte range inside the caller's buffer (not NUL-terminated). */
struct h1_slice {
    const char *p;
    size_t n;
};

struct h1_header {
    struct h1_slice name, value;
};

enum h1_flags {
    H1_CHUNKED = 1 << 0,
    H1_HAS_CL = 1 << 1,
    H1_KEEP_ALIVE = 1 << 2, /* the connection may carry another message */
    H1_UPGRADE = 1 << 3,    /* request: Upgrade + Connection: upgrade */
    H1_HAS_BODY = 1 << 4,   /* body bytes follow the head (maybe until EOF) */
    H1_BODY_TO_EOF = 1 << 5 /* response body delimited by the close */
};

struct h1_head {
    struct h1_slice method, url, reason; /* url: requests; reason: responses */
    int major, minor;
    int status;      /* responses */
    int method_id;   /* enum http_method, requests */
    uint64_t length; /* Content-Length when H1_HAS_CL */
    unsigned flags;  /* enum h1_flags */
    size_t nheaders;
    struct h1_header headers[H1_MAX_HEADERS];
};

struct h1_msg {
    http_parser p;
    bool head_done, done, skip_body;
    struct h1body body; /* body framing: our own strict decoder (src/lib/h1body) */
    int error_status; /* status to answer a bad head with (400, 431) */
    const char *error; /* static text */
    struct h1_head *head; /* during h1_msg_head only */
    int last_cb;          /* 0 none, 1 field, 2 value */
};

void h1_msg_init(struct h1_msg *m, enum h1_type type);
/* Responses to HEAD (and 1xx/204/304) have no body: call before the head. */
void h1_msg_set_skip_body(struct h1_msg *m);

/* Length of the head at the start of buf (through the empty line), or 0
 * when buf holds no complete head yet. */
size_t h1_head_end(const char *buf, size_t len);
/* Same, searching from offset from on (the caller already searched
 * buf[0..from+3) without finding the end): keeps a head that arrives in many
 * small pieces linear to scan. */
size_t h1_head_end_from(const char *buf, size_t len, size_t from);

/* Parses the complete head buf[0..len) (len from h1_head_end) into *head,
 * whose slices point into buf. Returns 0, or the HTTP status to answer with
 * (400, 431, 501) with m->error set. */
int h1_msg_head(struct h1_msg *m, const char *buf, size_t len, struct h1_head *head);

/* Feeds body bytes; returns how many belong to this message (the rest is
 * the next message, or an error when the parser failed: check
 * h1_msg_failed). len 0 signals EOF (ends a BODY_TO_EOF body). */
size_t h1_msg_body(struct h1_msg *m, const char *data, size_t len);
/* Same, and hands the payload bytes (without chunk framing) to sink. */
size_t h1_msg_body_data(struct h1_msg *m, const char *data, size_t len, h1body_sink sink,
                        void *arg);
static inline bool h1_msg_done(const struct h1_msg *m) { return m->done; }
bool h1_msg_failed(const struct h1_msg *m);

/* Case-insensitive compare of a slice with a NUL-terminated string. */
bool h1_slice_eq(struct h1_slice s, const char *lit);
/* First header named name, or NULL. */
const struct h1_header *h1_head_find(const struct h1_head *h, const char *name);
/* True when the comma-separated list in value contains token (any case). */
bool h1_list_has(struct h1_slice value, const char *token);

#endif
