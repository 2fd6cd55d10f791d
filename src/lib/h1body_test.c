#include "h1body.h"

#include <string.h>

#include "test.h"

struct sink {
    char buf[256];
    size_t n, limit; /* limit: refuse past this many bytes (0: never) */
};

static int collect(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    if (s->limit && s->n + n > s->limit)
        return -1;
    if (s->n + n < sizeof(s->buf)) {
        memcpy(s->buf + s->n, p, n);
        s->n += n;
        s->buf[s->n] = '\0';
    }
    return 0;
}

/* Feeds data one byte at a time; returns the bytes the body took. */
static size_t feed_bytes(struct h1body *b, const char *data, struct sink *s)
{
    size_t used = 0;
    for (size_t i = 0; data[i]; i++) {
        size_t u = h1body_feed(b, data + i, 1, collect, s);
        used += u;
        if (u == 0)
            break;
    }
    return used;
}

int main(void)
{
    struct h1body b;
    struct sink s = {0};

    h1body_init_length(&b, 5);
    is_int(h1body_feed(&b, "helloGET /", 10, collect, &s), 5, "a length body ends at its length");
    ok(b.state == H1B_DONE && !strcmp(s.buf, "hello"), "and hands over its bytes");

    h1body_init_length(&b, 0);
    ok(b.state == H1B_DONE, "an empty body is done at once");

    const char *chunked = "5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    memset(&s, 0, sizeof(s));
    h1body_init_chunked(&b);
    is_int(h1body_feed(&b, chunked, strlen(chunked), collect, &s), strlen(chunked) - 4,
           "a chunked body ends after its trailers");
    ok(b.state == H1B_DONE && !strcmp(s.buf, "hello world"), "payload without the framing");

    memset(&s, 0, sizeof(s));
    h1body_init_chunked(&b);
    is_int(feed_bytes(&b, chunked, &s), strlen(chunked) - 4, "the same, a byte at a time");
    ok(b.state == H1B_DONE && !strcmp(s.buf, "hello world"), "same payload a byte at a time");

    const char *bad[] = {
        "5\nhello\r\n0\r\n\r\n", " 5\r\nhello\r\n", "5 \r\nhello\r\n", "5\r\nhelloXX",
        "1000000000000000\r\n",  "5;\x01\r\n",      "zz\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h1body_init_chunked(&b);
        h1body_feed(&b, bad[i], strlen(bad[i]), NULL, NULL);
        ok(b.state == H1B_FAILED, "bad framing %zu fails", i);
    }

    char trailers[70000 + 16];
    memcpy(trailers, "0\r\n", 3);
    memset(trailers + 3, 'x', 70000);
    trailers[70003] = '\0';
    h1body_init_chunked(&b);
    h1body_feed(&b, trailers, strlen(trailers), NULL, NULL);
    ok(b.state == H1B_FAILED, "more than 64 KiB of trailers fails");

    memset(&s, 0, sizeof(s));
    h1body_init_eof(&b);
    is_int(h1body_feed(&b, "abc", 3, collect, &s), 3, "a body to EOF takes everything");
    ok(b.state == H1B_EOF, "and goes on");
    h1body_feed(&b, NULL, 0, collect, &s);
    ok(b.state == H1B_DONE && !strcmp(s.buf, "abc"), "until the close (0 bytes)");

    struct sink small = {.limit = 3};
    h1body_init_length(&b, 5);
    h1body_feed(&b, "hello", 5, collect, &small);
    ok(b.state == H1B_ABORTED, "a sink's refusal aborts the body");
    is_int(h1body_feed(&b, "more", 4, collect, &small), 0, "and nothing more is taken");
    return test_done();
}
