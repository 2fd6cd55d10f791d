/*
 * h1body: the strict HTTP/1.1 message-body framing decoder that the router
 * and the blobstore share. It follows RFC 9112: a Content-Length body, a
 * chunked body (chunk sizes of at most 15 hex digits, extensions and
 * trailer lines free of control bytes, at most 64 KiB of trailers, CRLF
 * line ends only), or a body that runs until the connection closes. Bad
 * framing ends in H1B_FAILED; nothing is buffered: payload bytes go to a
 * sink as they are found.
 */
#ifndef FLYNN_H1BODY_H
#define FLYNN_H1BODY_H

#include <stddef.h>
#include <stdint.h>

enum h1body_state {
    H1B_DONE,
    H1B_LENGTH, /* Content-Length: `remaining` bytes to go */
    H1B_EOF,    /* until the connection closes (feed 0 bytes then) */
    H1B_SIZE,   /* chunked, from here on */
    H1B_EXT,
    H1B_SIZE_LF,
    H1B_DATA,
    H1B_DATA_CR,
    H1B_DATA_LF,
    H1B_TRAILER_START,
    H1B_TRAILER,
    H1B_TRAILER_LF,
    H1B_END_LF,
    H1B_FAILED,  /* bad chunk framing */
    H1B_ABORTED, /* the sink refused data */
};

struct h1body {
    enum h1body_state state;
    uint64_t remaining; /* H1B_LENGTH and H1B_DATA */
    int digits;         /* hex digits of the current chunk size */
    size_t trailer_bytes;
};

/* Receives payload bytes; returns 0 to go on, -1 to stop (the body then
 * ends in H1B_ABORTED). */
typedef int (*h1body_sink)(void *arg, const char *p, size_t n);

/* A body of `length` bytes (none: H1B_DONE at once). */
void h1body_init_length(struct h1body *b, uint64_t length);
/* A chunked body. */
void h1body_init_chunked(struct h1body *b);
/* A body that ends when the connection closes. */
void h1body_init_eof(struct h1body *b);

/* Feeds bytes that follow the head (or the bytes fed before); hands the
 * payload to sink (NULL: dropped) and returns how many of the len bytes
 * belong to this body (what follows is the next message). For H1B_EOF,
 * feeding 0 bytes says the connection closed: the body is then done. */
size_t h1body_feed(struct h1body *b, const char *data, size_t len, h1body_sink sink, void *arg);

#endif
