/* Unit tests for req.c: request heads, body framing, ranges. */
#include "req.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static int head_status(const char *s, struct req_head *h)
{
    size_t n = strlen(s);
    size_t end = req_head_end(s, n, 0);
    if (end != n)
        return -1;
    return req_head_parse(s, n, h);
}

struct sink {
    char buf[256];
    size_t n;
    size_t limit;
};

static int collect(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    if (s->n + n > s->limit)
        return -1;
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    return 0;
}

/* Feeds body one byte at a time; returns bytes used, payload in s. */
static size_t feed_bytes(struct h1body *b, const char *data, struct sink *s)
{
    size_t used = 0, n = strlen(data);
    for (size_t i = 0; i < n; i++) {
        size_t u = h1body_feed(b, data + i, 1, collect, s);
        used += u;
        if (u == 0)
            break;
    }
    return used;
}

static void chunked(const char *name, const char *body, const char *want, enum h1body_state end)
{
    struct req_head h = {.flags = REQ_CHUNKED | REQ_HAS_BODY};
    struct h1body b;
    struct sink s = {.limit = sizeof(s.buf)};
    req_body_init(&b, &h);
    h1body_feed(&b, body, strlen(body), collect, &s);
    ok(b.state == end, "chunked %s: ends in state %d (got %d)", name, end, b.state);
    if (want) {
        s.buf[s.n] = '\0';
        is_str(s.buf, want, "chunked %s: payload", name);
    }
    /* the same one byte at a time */
    struct sink s2 = {.limit = sizeof(s2.buf)};
    req_body_init(&b, &h);
    feed_bytes(&b, body, &s2);
    ok(b.state == end && s2.n == s.n, "chunked %s: bytewise feed agrees", name);
}

int main(void)
{
    struct req_head h;

    /* heads */
    is_int(head_status("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", &h), 0, "simple GET");
    ok(h.method == HTTP_GET && h.target.n == 2 && !memcmp(h.target.p, "/a", 2), "method, target");
    ok(h.flags & REQ_KEEP_ALIVE, "1.1 keeps alive");
    ok(!(h.flags & REQ_HAS_BODY), "no body");
    is_int(head_status("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", &h), 0, "PUT");
    ok((h.flags & REQ_HAS_LENGTH) && h.length == 10 && (h.flags & REQ_HAS_BODY), "length 10");
    is_int(head_status("PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &h), 0,
           "chunked PUT");
    ok((h.flags & REQ_CHUNKED) && (h.flags & REQ_HAS_BODY), "chunked flag");
    is_int(head_status("GET / HTTP/1.0\r\n\r\n", &h), 0, "1.0 without Host");
    ok(!(h.flags & REQ_KEEP_ALIVE), "1.0 closes");
    is_int(head_status("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &h), 0, "close");
    ok(!(h.flags & REQ_KEEP_ALIVE), "Connection: close");
    is_int(head_status("GET /a HTTP/1.1\nHost: x\n\n", &h), 0, "bare LF lines");
    is_int(head_status("\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", &h), 0, "leading CRLF");
    const struct req_header *hd;
    int count;
    head_status("GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1 \r\nx-a: 2\r\n\r\n", &h);
    hd = req_head_find(&h, "X-a", &count);
    ok(hd && hd->value.n == 1 && hd->value.p[0] == '1' && count == 2, "find, count, trim");

    is_int(head_status("FOO /a HTTP/1.1\r\nHost: x\r\n\r\n", &h), 405, "unknown method");
    is_int(head_status("POST /a HTTP/1.1\r\nHost: x\r\n\r\n", &h), 0, "known method parses");
    is_int(head_status("GARBAGE\r\n\r\n", &h), 400, "garbage");
    is_int(head_status("G@T /a HTTP/1.1\r\nHost: x\r\n\r\n", &h), 400, "bad method chars");
    is_int(head_status("GET  /a HTTP/1.1\r\nHost: x\r\n\r\n", &h), 400, "two spaces");
    is_int(head_status("GET /a HTTP/2.0\r\nHost: x\r\n\r\n", &h), 505, "http/2.0");
    is_int(head_status("GET /a HTTP/1.1\r\n\r\n", &h), 400, "missing host");
    is_int(head_status("GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", &h), 400, "two hosts");
    is_int(head_status("GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", &h), 400, "absolute form");
    is_int(head_status("GET * HTTP/1.1\r\nHost: x\r\n\r\n", &h), 400, "asterisk form");
    is_int(head_status("GET /a HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", &h), 400,
           "space in header name");
    is_int(head_status("GET /a HTTP/1.1\r\nHost: x\r\nX: a\x01"
                       "b\r\n\r\n",
                       &h),
           400, "control char in value");
    is_int(head_status("GET /a HTTP/1.1\r\nHost: x\r\nX: 1\r\n folded\r\n\r\n", &h), 400,
           "obs-fold");
    is_int(head_status(
               "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &h),
           400, "two lengths");
    is_int(head_status(
               "PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", &h),
           400, "two equal lengths");
    is_int(head_status("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", &h), 400,
           "negative length");
    is_int(head_status("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
                       &h),
           400, "overflowing length");
    is_int(head_status("PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n",
                       &h),
           400, "length and chunked");
    is_int(head_status("PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", &h), 501,
           "gzip coding");
    is_int(head_status("PUT /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                       &h),
           501, "coding list");
    is_int(head_status("PUT /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &h), 400,
           "chunked on 1.0");
    {
        char big[8192];
        strcpy(big, "GET /a HTTP/1.1\r\nHost: x\r\n");
        for (int i = 0; i < REQ_MAX_HEADERS + 1; i++)
            sprintf(big + strlen(big), "X-%d: y\r\n", i);
        strcat(big, "\r\n");
        is_int(head_status(big, &h), 431, "too many headers");
    }
    is_int(req_head_end("GET / HTTP/1.1\r\nHost: x\r\n", 26, 0), 0, "no end yet");
    is_int(req_head_end("GET / HTTP/1.1\r\n\r\nrest", 22, 0), 18, "end before the body");

    /* bodies */
    {
        struct req_head lh = {.flags = REQ_HAS_LENGTH | REQ_HAS_BODY, .length = 5};
        struct h1body b;
        struct sink s = {.limit = sizeof(s.buf)};
        req_body_init(&b, &lh);
        size_t used = h1body_feed(&b, "helloGET /", 10, collect, &s);
        ok(used == 5 && (b.state == H1B_DONE) && s.n == 5, "length body stops at its end");
        struct req_head zero = {.flags = REQ_HAS_LENGTH};
        req_body_init(&b, &zero);
        ok((b.state == H1B_DONE), "empty body is done at once");
        struct sink small = {.limit = 3};
        req_body_init(&b, &lh);
        h1body_feed(&b, "hello", 5, collect, &small);
        ok(b.state == H1B_ABORTED, "sink refusal aborts");
    }
    chunked("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", H1B_DONE);
    chunked("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", H1B_DONE);
    chunked("extension", "5;ext=1\r\nhello\r\n0\r\n\r\n", "hello", H1B_DONE);
    chunked("trailer", "A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", "0123456789", H1B_DONE);
    chunked("bad data CRLF", "5\r\nhelloXX0\r\n\r\n", NULL, H1B_FAILED);
    chunked("bad size", "zz\r\nhello\r\n0\r\n\r\n", NULL, H1B_FAILED);
    chunked("space before size", " 5\r\nhello\r\n0\r\n\r\n", NULL, H1B_FAILED);
    chunked("space after size", "5 \r\nhello\r\n0\r\n\r\n", NULL, H1B_FAILED);
    chunked("bare LF", "5\nhello\r\n0\r\n\r\n", NULL, H1B_FAILED);
    chunked("size overflow", "1000000000000000\r\n", NULL, H1B_FAILED);
    chunked("unfinished", "5\r\nhel", "hel", H1B_DATA);
    {
        struct req_head ch = {.flags = REQ_CHUNKED | REQ_HAS_BODY};
        struct h1body b;
        struct sink s = {.limit = sizeof(s.buf)};
        req_body_init(&b, &ch);
        const char *two = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        size_t used = h1body_feed(&b, two, strlen(two), collect, &s);
        is_int(used, 13, "chunked body stops at its end");
    }

    /* ranges */
    uint64_t a, b;
    struct req_slice v;
#define RANGE(s, size) (v = (struct req_slice){s, strlen(s)}, req_range_parse(v, size, &a, &b))
    ok(RANGE("bytes=0-9", 100) == REQ_RANGE_OK && a == 0 && b == 9, "0-9");
    ok(RANGE("bytes=90-", 100) == REQ_RANGE_OK && a == 90 && b == 99, "90-");
    ok(RANGE("bytes=-10", 100) == REQ_RANGE_OK && a == 90 && b == 99, "-10");
    ok(RANGE("bytes=-1000", 100) == REQ_RANGE_OK && a == 0 && b == 99, "-1000");
    ok(RANGE("bytes=50-1000", 100) == REQ_RANGE_OK && a == 50 && b == 99, "clamped end");
    ok(RANGE("Bytes=1-1", 100) == REQ_RANGE_OK && a == 1 && b == 1, "unit any case");
    ok(RANGE("bytes=100-", 100) == REQ_RANGE_UNSATISFIABLE, "start at size");
    ok(RANGE("bytes=-0", 100) == REQ_RANGE_UNSATISFIABLE, "-0");
    ok(RANGE("bytes=0-", 0) == REQ_RANGE_UNSATISFIABLE, "empty blob");
    ok(RANGE("bytes=99999999999999999999999-", 100) == REQ_RANGE_UNSATISFIABLE, "huge start");
    ok(RANGE("bytes=5-1", 100) == REQ_RANGE_NONE, "reversed: ignored");
    ok(RANGE("bytes=0-1,5-6", 100) == REQ_RANGE_NONE, "several: ignored");
    ok(RANGE("items=0-1", 100) == REQ_RANGE_NONE, "other unit: ignored");
    ok(RANGE("bytes=", 100) == REQ_RANGE_NONE, "empty spec: ignored");
    ok(RANGE("bytes=a-b", 100) == REQ_RANGE_NONE, "garbage: ignored");
    ok(RANGE("bytes=-", 100) == REQ_RANGE_NONE, "dash only: ignored");
    return test_done();
}
