#include "attach.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static void frames(void)
{
    struct strbuf b = STRBUF_INIT;
    attach_put_data(&b, 1, "hello", 5);
    attach_put_data(&b, 0, NULL, 0);
    attach_put_error(&b, "boom");
    attach_put_exit(&b, 300);
    static const unsigned char want[] = {3, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 3, 0, 0, 0, 0,
                                         0, 2, 0, 0, 0, 4, 'b', 'o', 'o', 'm', 5,   0, 0, 1, 44};
    ok(b.len == sizeof(want) && !memcmp(b.buf, want, sizeof(want)), "frames are Flynn's bytes");

    struct attach_frame f;
    size_t off = 0;
    long n = attach_parse(b.buf, b.len, &f);
    ok(n == 11 && f.type == ATTACH_DATA && f.stream == 1 && f.len == 5 &&
           !memcmp(f.data, "hello", 5),
       "data frame parsed");
    off += (size_t)n;
    n = attach_parse(b.buf + off, b.len - off, &f);
    ok(n == 6 && f.type == ATTACH_DATA && f.stream == 0 && f.len == 0, "empty data frame: EOF");
    off += (size_t)n;
    n = attach_parse(b.buf + off, b.len - off, &f);
    ok(n == 9 && f.type == ATTACH_ERROR && f.len == 4 && !memcmp(f.data, "boom", 4),
       "error frame parsed");
    off += (size_t)n;
    n = attach_parse(b.buf + off, b.len - off, &f);
    ok(n == 5 && f.type == ATTACH_EXIT && f.num == 300, "exit frame parsed");
    is_int(off + (size_t)n, b.len, "all consumed");

    for (size_t cut = 0; cut < 11; cut++)
        if (attach_parse(b.buf, cut, &f) != 0)
            ok(0, "a frame cut at %zu needs more bytes", cut);
    ok(1, "cut frames need more bytes");

    static const char sig[] = {4, 0, 0, 0, 28}, rs[] = {6, 0, 40, 0, 120}, bad[] = {9, 1};
    ok(attach_parse(sig, 5, &f) == 5 && f.type == ATTACH_SIGNAL && f.num == 28, "signal frame");
    ok(attach_parse(rs, 5, &f) == 5 && f.type == ATTACH_RESIZE && f.rows == 40 && f.cols == 120,
       "resize frame");
    is_int(attach_parse(bad, 2, &f), -1, "unknown frame type");
    strbuf_release(&b);
}

static void handoff(void)
{
    int sv[2], pass[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    socketpair(AF_UNIX, SOCK_STREAM, 0, pass);
    struct attach_handoff h = {.flags = 23, .height = 30, .width = 100}, got = {0};
    struct err *e = NULL;
    is_int(attach_handoff_send(sv[0], pass[0], &h, "early", 5, &e), 0, "hand-off sent");
    struct strbuf early = STRBUF_INIT;
    int fd = attach_handoff_recv(sv[1], &got, &early, &e);
    ok(fd >= 0, "hand-off received");
    ok(got.flags == 23 && got.height == 30 && got.width == 100, "hand-off header");
    is_str(early.buf, "early", "early bytes");
    ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "received fd is close-on-exec");
    ok(fcntl(fd, F_GETFL) & O_NONBLOCK, "received fd is non-blocking");
    ssize_t w = write(fd, "x", 1);
    char c = 0;
    ssize_t r = read(pass[1], &c, 1);
    ok(w == 1 && r == 1 && c == 'x', "received fd is the passed connection");
    close(fd);

    /* garbage instead of a hand-off */
    ssize_t gw = write(sv[0], "GARBAGE-GARBAGE!", 16);
    (void)gw;
    fd = attach_handoff_recv(sv[1], &got, &early, &e);
    ok(fd < 0 && e && strstr(e->msg, "malformed"), "malformed hand-off refused");
    err_free(e);
    e = NULL;
    ok(attach_handoff_send(sv[0], pass[0], &h, "", 100 << 10, &e) < 0, "too many early bytes");
    err_free(e);
    strbuf_release(&early);
    close(sv[0]);
    close(sv[1]);
    close(pass[0]);
    close(pass[1]);
}

int main(void)
{
    frames();
    handoff();
    return test_done();
}
