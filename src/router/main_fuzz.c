/*
 * libFuzzer target for the router's HTTP/1 parser (h1.c): request and
 * response heads, then body framing fed in pieces of varying size. Checks
 * the parser's promises, not only that it does not crash:
 *   - a head it accepts has no ambiguous framing (CL with TE, two CL),
 *     header names are tokens, and the head length is within the input;
 *   - the body decoder never claims more bytes than it was given, consumes
 *     nothing once done or failed, and ends the same way however the bytes
 *     are split.
 * Build: make B=build/fuzz CC=clang build/fuzz/bin/router-fuzz (clang only);
 * run: build/fuzz/bin/router-fuzz -max_total_time=20
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static int body_run(struct h1_msg *m0, const char *p, size_t n, size_t step, size_t *used)
{
    struct h1_msg m = *m0;
    size_t off = 0;
    while (off < n && !h1_msg_done(&m) && !h1_msg_failed(&m)) {
        size_t k = n - off < step ? n - off : step;
        size_t got = h1_msg_body(&m, p + off, k);
        CHECK(got <= k);
        off += got;
        if (got < k)
            break;
    }
    if (h1_msg_done(&m) || h1_msg_failed(&m))
        CHECK(h1_msg_body(&m, p, n) == 0);
    *used = off;
    return h1_msg_done(&m) ? 1 : h1_msg_failed(&m) ? 2 : 0;
}

static void one(const char *p, size_t n, enum h1_type type, bool skip, size_t step)
{
    size_t hl = h1_head_end(p, n);
    CHECK(hl <= n);
    /* resuming a search where an earlier one stopped finds the same end */
    size_t from = step * 7 % (n + 1);
    if (!hl)
        CHECK(h1_head_end_from(p, n, from) == 0);
    else if (from + 3 <= hl)
        CHECK(h1_head_end_from(p, n, from) == hl);
    if (!hl)
        return;
    struct h1_msg m;
    struct h1_head h;
    h1_msg_init(&m, type);
    if (skip)
        h1_msg_set_skip_body(&m);
    if (h1_msg_head(&m, p, hl, &h))
        return;
    CHECK(h.nheaders <= H1_MAX_HEADERS);
    int ncl = 0, nte = 0;
    for (size_t i = 0; i < h.nheaders; i++) {
        CHECK(h.headers[i].name.p >= p && h.headers[i].name.p + h.headers[i].name.n <= p + hl);
        CHECK(h.headers[i].value.n == 0 ||
              (h.headers[i].value.p >= p && h.headers[i].value.p + h.headers[i].value.n <= p + hl));
        ncl += h1_slice_eq(h.headers[i].name, "content-length");
        nte += h1_slice_eq(h.headers[i].name, "transfer-encoding");
    }
    if (type == H1_REQUEST) {
        CHECK(!(ncl && nte));
        CHECK(ncl <= 1 && nte <= 1);
        CHECK(h.url.n > 0);
    }
    if (h.nheaders)
        h1_list_has(h.headers[0].value, "chunked");
    size_t u1, u2;
    int r1 = body_run(&m, p + hl, n - hl, step, &u1);
    int r2 = body_run(&m, p + hl, n - hl, n, &u2);
    CHECK(r1 == r2);
    if (r1 == 1)
        CHECK(u1 == u2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    one(p, n, H1_REQUEST, false, step);
    one(p, n, H1_RESPONSE, false, step);
    one(p, n, H1_RESPONSE, true, step);
    return 0;
}
