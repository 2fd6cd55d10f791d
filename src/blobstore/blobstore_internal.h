/*
 * blobstore_internal: what blobstore.c (context, listeners) and conn.c
 * (HTTP connections and the API) share.
 */
#ifndef BLOBSTORE_BLOBSTORE_INTERNAL_H
#define BLOBSTORE_BLOBSTORE_INTERNAL_H

#include <stddef.h>

#include "blobstore.h"
#include "disk.h"

struct conn;
struct event;
struct evconnlistener;
struct sockaddr;

/* PUT bodies are read into this one buffer (one loop, one buffer): no
 * allocation per read, so memory stays flat however large the body. */
#define BLOBSTORE_IOBUF (256 * 1024)

struct blobstore {
    struct event_base *base;
    struct blobstore_opts opts;
    struct disk disk;
    struct evconnlistener *listeners[8];
    size_t nlisteners;
    struct event *resume_ev; /* re-enables the listeners after accept errors */
    struct conn *conns;      /* every connection (doubly linked) */
    size_t nconns;
    char *iobuf;
};

/* conn.c: serves a new client socket (takes ownership of fd). */
void conn_accept(struct blobstore *bs, int fd, const struct sockaddr *sa);
/* Closes every connection, dropping uploads in flight. */
void conn_close_all(struct blobstore *bs);

#endif
