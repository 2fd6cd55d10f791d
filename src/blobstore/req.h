/*
 * req: HTTP/1.x request heads and request body framing for the blob store.
 *
 * Heads are parsed by Debian's http-parser (libhttp-parser) once the whole
 * head is in one contiguous buffer; bodies are decoded by the strict decoder
 * of src/lib/h1body.h, shared with the router (Debian builds http-parser
 * non-strict, which would take bad chunk framing for data). Nothing but
 * the head is ever held in memory: the caller feeds body bytes as they
 * arrive and gets the payload bytes back through a callback, without the
 * chunk framing.
 *
 * Use:
 *   n = req_head_end(buf, len, from);  0: need more, >0: head length
 *   st = req_head_parse(buf, n, &head); 0, or the status to answer with;
 *                                       head's slices point into buf
 *   req_body_init(&b, &head);
 *   used = h1body_feed(&b, data, len, sink, arg);  until b.state == H1B_DONE
 *
 * Rejected heads (status): malformed request line or header line, header
 * names that are not tokens, control characters in values, obs-fold,
 * repeated or bad Content-Length, Content-Length with Transfer-Encoding,
 * Transfer-Encoding on HTTP/1.0, a missing or repeated Host on HTTP/1.1,
 * a request target not in origin form (400); a method http-parser does not
 * know (405); more than REQ_MAX_HEADERS fields (431); Transfer-Encoding
 * other than "chunked" (501); HTTP major version other than 1 (505).
 *
 * Chunked bodies: as h1body.h says; trailers are ignored.
 */
#ifndef BLOBSTORE_REQ_H
#define BLOBSTORE_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h1body.h"

#define REQ_MAX_HEADERS 100

/* A byte range inside the caller's buffer (not NUL-terminated). */
struct req_slice {
    const char *p;
    size_t n;
};

struct req_header {
    struct req_slice name, value;
};

enum req_flags {
    REQ_CHUNKED = 1 << 0,
    REQ_HAS_LENGTH = 1 << 1,
    REQ_KEEP_ALIVE = 1 << 2, /* the connection may carry another request */
    REQ_HAS_BODY = 1 << 3,   /* chunked, or Content-Length > 0 */
};

struct req_head {
    int method;              /* enum http_method */
    struct req_slice target; /* starts with '/' once parsed */
    int major, minor;
    unsigned flags;    /* enum req_flags */
    uint64_t length;   /* Content-Length when REQ_HAS_LENGTH */
    const char *error; /* static reason when req_head_parse fails */
    size_t nheaders;
    struct req_header headers[REQ_MAX_HEADERS];
};

/* Length of the head at the start of buf (through the empty line), or 0
 * when buf holds no complete head yet. The caller may pass from, the
 * length it already searched minus 3, to keep a head that arrives in many
 * small pieces linear to scan. */
size_t req_head_end(const char *buf, size_t len, size_t from);

/* Parses the complete head buf[0..len) into *h. Returns 0, or the status
 * to answer with (see above) with h->error set. */
int req_head_parse(const char *buf, size_t len, struct req_head *h);

/* First header named name (any case), or NULL; *count, when not NULL, is
 * set to how many headers have that name. */
const struct req_header *req_head_find(const struct req_head *h, const char *name, int *count);
/* Case-insensitive compare of a slice with a NUL-terminated string. */
bool req_slice_eq(struct req_slice s, const char *lit);

/* Starts the body decoder (src/lib/h1body) for the request head h: chunked,
 * Content-Length, or none. Feed it with h1body_feed. */
void req_body_init(struct h1body *b, const struct req_head *h);

enum req_range {
    REQ_RANGE_NONE,          /* absent, invalid or several ranges: send all */
    REQ_RANGE_OK,            /* *first..*last (inclusive) */
    REQ_RANGE_UNSATISFIABLE, /* answer 416 */
};

/* Parses a Range header value ("bytes=A-B", "bytes=A-", "bytes=-N") for
 * a representation of size bytes. Several ranges are not served as one
 * multipart body: they give REQ_RANGE_NONE, as RFC 9110 allows. */
enum req_range req_range_parse(struct req_slice v, uint64_t size, uint64_t *first, uint64_t *last);

#endif
