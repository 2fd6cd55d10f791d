/*
 * client: the controller's HTTP/JSON API over libcurl, as Flynn's Go client
 * speaks it (docs/flynn-api.md §1.2, §1.6, §5).
 *
 * Every request carries Basic auth with an empty user and the cluster key,
 * Content-Type and Accept application/json. With a pin the TLS chain and
 * host name are not checked; the leaf's pin is (pin.h). Only status 200 is
 * success. Errors come back as struct err whose msg is what Flynn prints:
 *   JSON error body          "CODE: MESSAGE" (errnum from the status)
 *   bare 404                 "controller: resource not found", errnum ENOENT
 *   other status             "Get \"URL\": unexpected status N"
 *   transport failure        "Get \"URL\": WHAT", plus a hint what to check
 * Errors with "retry": true are retried every 100 ms for 10 s, and 307
 * redirects are followed, as Flynn's client does.
 */
#ifndef CLI_CLIENT_H
#define CLI_CLIENT_H

#include <jansson.h>

#include "err.h"
#include "strbuf.h"

struct client;
struct client_stream;

/* url: base URL without trailing slash; key: Basic password ("" none);
 * pin: base64 TLS pin or NULL/"" for ordinary TLS verification. */
struct client *client_new(const char *url, const char *key, const char *pin, struct err **err);
void client_free(struct client *c);

/* Sends a JSON request (in may be NULL; it is not stolen). When out is
 * non-NULL it receives the decoded body (NULL when the body is empty). */
int client_json(struct client *c, const char *method, const char *path, json_t *in, json_t **out,
                struct err **err);
/* Same, but the raw body goes to out (for GET /ca-cert). */
int client_raw(struct client *c, const char *method, const char *path, struct strbuf *out,
               struct err **err);
int client_is_not_found(const struct err *e);
/* POSTs size bytes read from fd as the body (labelled application/json,
 * as Flynn's image client does), e.g. a layer tar to the image service. */
int client_post_fd(struct client *c, const char *path, int fd, long long size, json_t **out,
                   struct err **err);
/* GET path with no Accept header (Flynn's log fetch) and hands each body
 * line (without its newline) to cb as it arrives, then cb(NULL, 0) after
 * the lines of each piece received (a chance to flush); a non-zero return
 * from cb stops the transfer. */
typedef int (*client_line_cb)(const char *line, size_t len, void *arg);
int client_lines(struct client *c, const char *path, client_line_cb cb, void *arg,
                 struct err **err);

/* Opens an event stream (GET path, Accept: text/event-stream,
 * Last-Event-Id: 0) and returns once the server answered 200. */
struct client_stream *client_stream_open(struct client *c, const char *path, struct err **err);
/* Next event's decoded JSON: 1 with *ev set, 0 when timeout_ms passed
 * (-1 waits forever), -1 with *err when the stream failed or ended. A
 * stream the server closes is reopened with Last-Event-Id set to the last
 * event id seen, for up to 20 s, as Flynn's resuming client does. */
int client_stream_next(struct client_stream *s, int timeout_ms, json_t **ev, struct err **err);
void client_stream_close(struct client_stream *s);

/* A connection taken over after "101 Switching Protocols" (flynn run's
 * attach, docs/flynn-api.md §7.2). client_upgrade sends METHOD path with
 * the JSON body and "Upgrade: protocol" on its own connection (pinned like
 * every call); any other status than 101 becomes the usual error. */
struct client_conn;
struct client_conn *client_upgrade(struct client *c, const char *method, const char *path,
                                   json_t *body, const char *protocol, struct err **err);
/* The socket, to poll for reading (data may also wait inside TLS: read
 * until client_conn_read returns 0). */
int client_conn_fd(struct client_conn *k);
/* Reads up to len bytes: >0 read, 0 nothing now, -1 closed (*err NULL) or
 * failed (*err set). */
long client_conn_read(struct client_conn *k, void *buf, size_t len, struct err **err);
/* Writes all of buf; -1 with *err on failure. */
int client_conn_write(struct client_conn *k, const void *buf, size_t len, struct err **err);
void client_conn_close(struct client_conn *k);

/* Percent-escapes s for a URL path segment or query value. Caller frees. */
char *client_escape(const char *s);

#endif
