/*
 * blobstore: the context of flynn-blobstore, the cluster's blob store.
 *
 * Plain HTTP/1.1, no authentication (so it only listens on addresses the
 * operator names, never on a wildcard): PUT, GET, HEAD and DELETE of
 * arbitrary paths, bodies streamed to and from disk (docs/internals/
 * blobstore.md has the API, the limits and the files under DIR).
 *
 * main.c fills struct blobstore_opts from flags, blobstore_new() opens DIR,
 * blobstore_listen() binds the listeners, event_base_dispatch runs it.
 *
 * Lifetimes: the context owns its listeners and every connection;
 * blobstore_free closes them all, dropping uploads in flight (their temp
 * files are removed, nothing partial is ever stored).
 */
#ifndef BLOBSTORE_BLOBSTORE_H
#define BLOBSTORE_BLOBSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct event_base;

struct blobstore_opts {
    const char *dir;       /* the store's directory (created when missing) */
    uint64_t max_size;     /* largest body a PUT may store, bytes */
    size_t max_head;       /* request head limit, bytes (431 beyond) */
    int header_timeout_ms; /* a request head must arrive within (408) */
    int idle_timeout_ms;   /* keep-alive idle, stalled bodies and readers */
    size_t max_conns;      /* connections beyond are closed at once */
};

/* Opens o->dir (see disk.h); EBUSY when another daemon uses it. */
struct blobstore *blobstore_new(struct event_base *base, const struct blobstore_opts *o,
                                struct err **err);
void blobstore_free(struct blobstore *bs);

/* Listens on "HOST:PORT" (an IPv4 address or a bracketed IPv6 one; port 0
 * picks a free port) and writes the bound address into out. A wildcard
 * address (0.0.0.0, [::]) or an empty host is refused with EINVAL. */
int blobstore_listen(struct blobstore *bs, const char *addr, char out[64], struct err **err);

#endif
