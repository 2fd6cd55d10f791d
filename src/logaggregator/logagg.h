/*
 * logagg: the one context of flynn-logaggregator (built by main.c) and the
 * parts that share it: the HTTP API (server.c), log sinks (sinks.c) and the
 * snapshot kept across restarts (snapshot.c). See
 * docs/internals/logaggregator.md for the wire formats.
 *
 * Order of teardown: sinks (their connections), then the HTTP server (its
 * streams' close callbacks free the followers), then the buffer.
 */
#ifndef LOGAGG_LOGAGG_H
#define LOGAGG_LOGAGG_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "logbuf.h"

struct event_base;
struct evdns_base;
struct httpd;
struct sinks;
struct follower;

/* A sink position read from a snapshot, applied when the sink shows up. */
struct sink_cursor {
    char *id;
    uint64_t gseq;
    struct sink_cursor *next;
};

struct logagg {
    struct event_base *base;
    struct evdns_base *dns;
    struct logbuf *buf;
    struct httpd *http;
    struct sinks *sinks;          /* NULL without --controller */
    struct follower *dirty;       /* followers with output to flush */
    struct sink_cursor *restored; /* from the snapshot, taken by sinks_new */
    char instance[37];            /* random per process: tells hosts we restarted */
    uint64_t batches, malformed;
    size_t followers;
};

/* server.c: the HTTP API. */
int server_start(struct logagg *ag, const char *listen, struct err **err);
void server_free(struct logagg *ag);

/* sinks.c: deliver every app's lines to the sinks stored in the controller
 * (GET CONTROLLER/sinks, polled every 2 s with the cluster key). */
struct sinks *sinks_new(struct logagg *ag, const char *controller_url, const char *key);
/* New lines are in the buffer: let every sink send what it can. */
void sinks_kick(struct sinks *s);
json_t *sinks_status(struct sinks *s);
/* Calls fn with every sink's ID and next gseq (for the snapshot). */
void sinks_cursors(struct sinks *s, void (*fn)(const char *id, uint64_t gseq, void *arg),
                   void *arg);
void sinks_free(struct sinks *s);

/* snapshot.c: the buffer (and sink positions) written on shutdown and read
 * back at start, in the ingest batch format. */
int snapshot_write(struct logagg *ag, const char *path, struct err **err);
/* Loads path into ag->buf (empty) and ag->restored; a missing file is not
 * an error. The file is removed once read. */
int snapshot_load(struct logagg *ag, const char *path, struct err **err);

#endif
