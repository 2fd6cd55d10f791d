/*
 * tls: the HTTPS listener of flynn-controller.
 *
 * src/lib/httpd does not expose its evhttp, so evhttp_set_bevcb cannot be
 * used on it; instead this module terminates TLS itself (libevent's
 * bufferevent_openssl) and relays the plaintext to the controller's own
 * plain listener on loopback. Every request therefore goes through the same
 * httpd, route table and auth. One relay per connection, freed when either
 * side closes.
 */
#ifndef CONTROLLER_TLS_H
#define CONTROLLER_TLS_H

#include "err.h"

struct event_base;
struct tls_listener;

/* Listens on addr ("HOST:PORT", port 0 allowed) with cert/key (PEM files)
 * and relays to 127.0.0.1:backend_port. *bound gets the bound port. */
struct tls_listener *tls_listen(struct event_base *base, const char *addr, const char *cert,
                                const char *key, int backend_port, int *bound, struct err **err);
void tls_listener_free(struct tls_listener *t);

#endif
