#include "shim_attach.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach.h"
#include "test.h"

static char sock_path[108];

static char dir[64];

static void cleanup_dir(void)
{
    unlink(sock_path);
    rmdir(dir);
}

static int listen_at(void)
{
    if (dir[0])
        cleanup_dir();
    snprintf(dir, sizeof(dir), "/tmp/shim-attach-test-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(sock_path, sizeof(sock_path), "%s/a.sock", dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, sock_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
        abort();
    return fd;
}

/* Hands one end of a new socketpair to the shim, as the daemon does;
 * returns the client's end. */
static int attach_client(uint16_t rows, uint16_t cols, const struct strbuf *early)
{
    int cs[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cs);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, sock_path);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        abort();
    struct attach_handoff h = {.height = rows, .width = cols};
    struct err *e = NULL;
    if (attach_handoff_send(c, cs[1], &h, early ? early->buf : "", early ? early->len : 0, &e) < 0)
        abort();
    close(c);
    close(cs[1]);
    return cs[0];
}

/* Runs the shim's side for a while. */
static void pump(struct shim_attach *a, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        struct pollfd p[SHIM_ATTACH_NFDS];
        int n = shim_attach_poll(a, p);
        if (poll(p, (nfds_t)n, 10) > 0)
            shim_attach_handle(a, p, n);
    }
}

/* What the client has received so far (waits up to 200 ms for a first byte). */
static void take(int fd, struct strbuf *into)
{
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, into->len ? 20 : 200) > 0) {
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        strbuf_add(into, buf, (size_t)n);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct shim_attach *a = shim_attach_new("t", listen_at(), true);
    shim_attach_output(a, 1, "before", 6); /* kept for the first client */

    struct strbuf early = STRBUF_INIT;
    attach_put_data(&early, 0, "abc", 3);
    int cl = attach_client(24, 80, &early);
    ok(shim_attach_wait(a, 1000), "the first client is attached");
    unsigned rows, cols;
    shim_attach_size(a, &rows, &cols);
    ok(rows == 24 && cols == 80, "its window size is known");

    int in[2];
    if (pipe(in) < 0)
        abort();
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    shim_attach_started(a, child, in[1], -1);
    pump(a, 50);
    struct strbuf got = STRBUF_INIT, want = STRBUF_INIT;
    take(cl, &got);
    attach_put_data(&want, 1, "before", 6);
    ok(got.len == want.len && !memcmp(got.buf, want.buf, want.len), "kept output arrives first");

    /* stdin, its EOF and a signal */
    struct strbuf msg = STRBUF_INIT;
    attach_put_data(&msg, 0, "def", 3);
    attach_put_data(&msg, 0, NULL, 0);
    unsigned char sig[5] = {ATTACH_SIGNAL, 0, 0, 0, SIGTERM};
    strbuf_add(&msg, sig, sizeof(sig));
    ssize_t w = write(cl, msg.buf, msg.len);
    ok(w == (ssize_t)msg.len, "client frames sent");
    pump(a, 100);
    char buf[64] = {0};
    ssize_t n = read(in[0], buf, sizeof(buf) - 1);
    is_str(n > 0 ? buf : "", "abcdef", "stdin frames reach the job, early ones first");
    is_int(read(in[0], buf, sizeof(buf)), 0, "stdin's EOF closes the job's stdin");
    int st;
    waitpid(child, &st, 0);
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "a signal frame reaches init");

    /* a second client is turned away */
    int cl2 = attach_client(0, 0, NULL);
    pump(a, 50);
    struct strbuf got2 = STRBUF_INIT;
    take(cl2, &got2);
    ok(got2.len > 5 && got2.buf[0] == ATTACH_ERROR && strstr(got2.buf + 5, "another client"),
       "a second client gets an error");
    close(cl2);

    /* output, then the exit status last */
    shim_attach_output(a, 2, "oops", 4);
    ok(shim_attach_output_ok(a), "a reading client does not hold the job back");
    shim_attach_finish(a, 7, NULL, 1000);
    strbuf_reset(&got);
    strbuf_reset(&want);
    take(cl, &got);
    attach_put_data(&want, 2, "oops", 4);
    attach_put_exit(&want, 7);
    ok(got.len == want.len && !memcmp(got.buf, want.buf, want.len), "stderr, then the exit");
    is_int(read(cl, buf, sizeof(buf)), 0, "then the connection closes");
    close(cl);
    shim_attach_free(a);

    /* a client that lags holds the job's output back */
    a = shim_attach_new("t2", listen_at(), false);
    shim_attach_output(a, 1, "dropped", 7); /* nobody asked to keep it */
    cl = attach_client(0, 0, NULL);
    ok(shim_attach_wait(a, 1000), "attached");
    static char big[256 << 10];
    int full = 0;
    for (int i = 0; i < 64 && !full; i++) {
        shim_attach_output(a, 1, big, sizeof(big));
        full = !shim_attach_output_ok(a);
    }
    ok(full, "output stops being taken while the client does not read");
    close(cl);
    pump(a, 30);
    ok(shim_attach_output_ok(a), "a client that left does not hold the job");
    shim_attach_finish(a, 0, NULL, 100);
    shim_attach_free(a);

    strbuf_release(&early);
    strbuf_release(&got);
    strbuf_release(&got2);
    strbuf_release(&want);
    strbuf_release(&msg);
    cleanup_dir();
    return test_done();
}
