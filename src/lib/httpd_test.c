#include "httpd.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static int upgraded_fd = -1;
static struct strbuf early = STRBUF_INIT;

static void h_up(struct httpd_req *r, void *arg)
{
    if (!httpd_wants_upgrade(r, "test-proto/1")) {
        httpd_reply_error(r, 400, "validation_error", "no upgrade");
        return;
    }
    upgraded_fd = httpd_upgrade(r, "test-proto/1", &early, NULL);
}

static const struct httpd_route routes[] = {{"POST", "/up", h_up}};

static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    return fd;
}

/* Reads what fd has within ms, while the server's loop runs. */
static void take(struct event_base *base, int fd, struct strbuf *into, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10) > 0) {
            char buf[4096];
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0)
                return;
            strbuf_add(into, buf, (size_t)n);
        }
    }
}

int main(void)
{
    struct event_base *base = event_base_new();
    struct httpd *h = httpd_new(base, routes, 1, NULL, NULL);
    int port = httpd_listen(h, "127.0.0.1:0", NULL);
    ok(port > 0, "listening");

    int c = dial(port);
    static const char req[] = "POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                              "Upgrade: TEST-proto/1\r\nContent-Length: 2\r\n\r\n{}EARLY";
    ssize_t w = write(c, req, sizeof(req) - 1);
    ok(w == (ssize_t)sizeof(req) - 1, "request sent");
    struct strbuf got = STRBUF_INIT;
    take(base, c, &got, 300);
    is_str(got.buf,
           "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test-proto/1\r\n\r\n",
           "101 with the protocol");
    ok(upgraded_fd >= 0, "the handler got the socket");
    is_str(early.buf, "EARLY", "bytes sent after the request are handed over");

    /* the socket is the caller's now: evhttp closed only its placeholder */
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    w = write(upgraded_fd, "pong", 4);
    strbuf_reset(&got);
    take(base, c, &got, 200);
    is_str(got.buf, "pong", "the upgraded connection is alive after evhttp let go");
    w = write(c, "ping", 4);
    char buf[8] = {0};
    struct pollfd p = {upgraded_fd, POLLIN, 0};
    ok(poll(&p, 1, 1000) == 1 && read(upgraded_fd, buf, sizeof(buf)) == 4 && !strcmp(buf, "ping"),
       "and both ways");
    close(upgraded_fd);
    strbuf_reset(&got);
    take(base, c, &got, 200);
    is_int(got.len, 0, "closing it closes the connection");
    close(c);

    /* a request without the header is an ordinary one */
    c = dial(port);
    static const char plain[] = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    w = write(c, plain, sizeof(plain) - 1);
    strbuf_reset(&got);
    take(base, c, &got, 300);
    ok(!strncmp(got.buf, "HTTP/1.1 400", 12), "no upgrade without the header");
    close(c);

    /* a connection upgraded and not yet let go by evhttp is freed with the server */
    c = dial(port);
    w = write(c, req, sizeof(req) - 1);
    upgraded_fd = -1;
    for (int i = 0; i < 50 && upgraded_fd < 0; i++) {
        struct pollfd q = {c, POLLIN, 0};
        poll(&q, 1, 5);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    ok(upgraded_fd >= 0, "second upgrade");
    httpd_free(h);
    close(upgraded_fd);
    close(c);
    strbuf_release(&got);
    strbuf_release(&early);
    event_base_free(base);
    return test_done();
}
