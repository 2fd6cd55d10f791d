/*
 * ahttp: one-shot asynchronous HTTP/1.1 requests on the event loop (evhttp
 * client), for calls to services such as resource providers.
 *
 * Each request gets its own connection, freed after its callback. The
 * callback runs exactly once: with the status and body (status 0: no
 * answer), or with status -1 from ahttp_free when the controller shuts down
 * first, so its owner can release what it holds. Only http:// URLs with a
 * numeric or /etc/hosts-resolvable host (resolution is synchronous).
 */
#ifndef CONTROLLER_AHTTP_H
#define CONTROLLER_AHTTP_H

#include <stddef.h>

#include "err.h"

struct ahttp;
struct event_base;

typedef void (*ahttp_cb)(int status, const char *body, size_t len, void *arg);

struct ahttp *ahttp_new(struct event_base *base);
/* Ends every request still in flight (callbacks get -1) and frees a. */
void ahttp_free(struct ahttp *a);
/* method "GET"/"POST"/"DELETE"; body may be NULL (then no Content-Type). */
int ahttp_request(struct ahttp *a, const char *method, const char *url, const char *body,
                  int timeout_secs, ahttp_cb cb, void *arg, struct err **err);

#endif
