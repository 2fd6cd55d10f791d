/*
 * pin: Flynn's TLS pin, the standard padded base64 of the SHA-256 of the
 * DER bytes of the server's leaf certificate (docs/flynn-api.md §1.3).
 *
 * pin_install plugs a check into an OpenSSL SSL_CTX (libcurl hands one over
 * through CURLOPT_SSL_CTX_FUNCTION): the chain and host-name checks are
 * replaced by one comparison of the leaf's pin, done during the handshake,
 * before any request byte (or the key) is sent.
 */
#ifndef CLI_PIN_H
#define CLI_PIN_H

#include <stddef.h>

#include "err.h"

#define PIN_LEN 32 /* SHA-256 */

/* Standard base64 with padding. Caller frees. */
char *base64_encode(const void *data, size_t len);
/* Strict standard base64 decode into out (capacity cap); returns the
 * decoded length, or -1 with the offset of the first bad byte in *bad. */
long base64_decode(const char *s, unsigned char *out, size_t cap, size_t *bad);

/* The pin of a DER certificate, as base64. Caller frees. */
char *pin_of_der(const void *der, size_t len);
/* Decodes a configured pin; -1 with Go's message when it is not base64. */
int pin_decode(const char *b64, unsigned char out[PIN_LEN], size_t *outlen, struct err **err);

struct pin_check {
    unsigned char want[PIN_LEN];
    size_t want_len;
    int mismatch; /* set when a handshake saw another leaf */
};

/* Installs the check in ssl_ctx (a SSL_CTX *); pc must outlive it. */
void pin_install(void *ssl_ctx, struct pin_check *pc);

#endif
