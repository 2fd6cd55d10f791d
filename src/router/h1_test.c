/* Unit tests of h1.c: head end, head parsing, request checks, body framing. */
#include "h1.h"

#include <string.h>

#include "test.h"

static int head_status(const char *s, struct h1_head *h, struct h1_msg *m)
{
    size_t n = h1_head_end(s, strlen(s));
    if (!n)
        return -1;
    h1_msg_init(m, H1_REQUEST);
    return h1_msg_head(m, s, n, h);
}

static size_t feed(struct h1_msg *m, const char *s, size_t step)
{
    size_t off = 0, n = strlen(s);
    while (off < n && !h1_msg_done(m) && !h1_msg_failed(m)) {
        size_t k = n - off < step ? n - off : step;
        size_t got = h1_msg_body(m, s + off, k);
        off += got;
        if (got < k)
            break;
    }
    return off;
}

int main(void)
{
    struct h1_head h;
    struct h1_msg m;

    is_int(h1_head_end("GET / HTTP/1.1\r\nHost: a\r\n", 25), 0, "incomplete head");
    is_int(h1_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r\nxyz", 30), 27, "head end with CRLF");
    is_int(h1_head_end("GET / HTTP/1.1\nHost: a\n\nxyz", 27), 24, "head end with bare LF");

    is_int(head_status("GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nX-A:  v \r\n\r\n", &h, &m), 0,
           "simple GET");
    ok(h1_slice_eq(h.method, "GET") && h.url.n == 6 && !memcmp(h.url.p, "/p?q=1", 6),
       "method and url");
    is_int((int)h.nheaders, 2, "two headers");
    ok(h1_slice_eq(h.headers[1].value, "v"), "value trimmed");
    ok(h.flags & H1_KEEP_ALIVE, "1.1 keeps alive");
    ok(h1_msg_done(&m), "no body: done after the head");

    is_int(head_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n", &h, &m), 400, "CL + TE");
    is_int(head_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                       &h, &m), 400, "two CL");
    is_int(head_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &h, &m),
           400, "TE not chunked");
    is_int(head_status("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", &h, &m), 400,
           "space in a header name");
    is_int(head_status("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n y\r\n\r\n", &h, &m), 400, "obs-fold");
    is_int(head_status("GET / HTTP/1.1\r\n\r\n", &h, &m), 400, "1.1 without Host");
    is_int(head_status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", &h, &m), 400, "double space");
    is_int(head_status("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &h, &m), 505, "version 2 in h1");

    is_int(head_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &m),
           0, "chunked POST");
    is_int((int)feed(&m, "5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\nGET", 1), 25, "chunked body by bytes");
    ok(h1_msg_done(&m), "chunked done");
    head_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &m);
    feed(&m, "5\r\nhelloXX", 64);
    ok(h1_msg_failed(&m), "missing CRLF after chunk data fails");
    head_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &m);
    feed(&m, " 5\r\nhello\r\n", 64);
    ok(h1_msg_failed(&m), "space before a chunk size fails");
    head_status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &h, &m);
    feed(&m, "fffffffffffffffff\r\n", 64);
    ok(h1_msg_failed(&m), "chunk size overflow fails");

    is_int(head_status("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n", &h, &m), 0, "CL");
    is_int((int)feed(&m, "abcdGET /", 3), 4, "CL body stops at its length");
    ok(h1_msg_done(&m), "CL done");

    struct h1_msg r;
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    h1_msg_init(&r, H1_RESPONSE);
    h1_msg_set_skip_body(&r);
    is_int(h1_msg_head(&r, resp, strlen(resp), &h), 0, "response to HEAD");
    ok(h1_msg_done(&r), "HEAD response has no body");
    resp = "HTTP/1.0 200 OK\r\n\r\n";
    h1_msg_init(&r, H1_RESPONSE);
    h1_msg_head(&r, resp, strlen(resp), &h);
    ok(h.flags & H1_BODY_TO_EOF, "no length: body to EOF");
    h1_msg_body(&r, "abc", 3);
    ok(!h1_msg_done(&r), "not done before EOF");
    h1_msg_body(&r, NULL, 0);
    ok(h1_msg_done(&r), "done at EOF");

    struct h1_slice v = {"keep-alive, Upgrade", 19};
    ok(h1_list_has(v, "upgrade") && h1_list_has(v, "keep-alive") && !h1_list_has(v, "close"),
       "token lists");
    return test_done();
}
