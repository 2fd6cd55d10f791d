/*
 * httpc: a blocking HTTP client for command-line tools (libcurl).
 *
 * Daemons must not use it on their event loop.
 */
#ifndef LIB_HTTPC_H
#define LIB_HTTPC_H

#include <stddef.h>

#include "err.h"
#include "strbuf.h"

/* Called with each piece of the response body; return 0 to go on, -1 to stop. */
typedef int (*httpc_data_cb)(const char *data, size_t len, void *arg);

struct httpc_req {
    const char *method;  /* default GET */
    const char *url;
    const char *body;    /* NULL: none */
    size_t body_len;
    const char *content_type; /* default application/json when body is set */
    const char *accept;
    long timeout_secs;   /* 0: none (streams) */
    httpc_data_cb on_data; /* when set, the body is streamed to it instead of out */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    void *arg;
};

/* Performs the request; returns the HTTP status, or -1 with *err set when
 * no response came (the message names the URL). out (may be NULL) gets the
 * body unless on_data is set. */
int httpc_do(const struct httpc_req *r, struct strbuf *out, struct err **err);

#endif
