#include "shim_attach.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "strbuf.h"
#include "xalloc.h"

#define STDIN_QUEUE_MAX (1 << 20)
#define READ_CHUNK (64 << 10)

struct shim_attach {
    char *job_id;
    int listen_fd;
    bool keep_first;
    bool ever_attached;
    int client;            /* -1: none */
    struct strbuf in, out; /* from and to the client */
    struct strbuf stdin_q; /* for the job's stdin */
    bool stdin_eof;        /* the client sent stdin's EOF */
    pid_t init;
    int stdin_pipe, pty;
    unsigned rows, cols;
};

static void warn(struct shim_attach *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct shim_attach *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "flynn-shim: job %s: attach: ", a->job_id);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

struct shim_attach *shim_attach_new(const char *job_id, int listen_fd, bool keep_first)
{
    struct shim_attach *a = xcalloc(1, sizeof(*a));
    a->job_id = xstrdup(job_id);
    a->listen_fd = listen_fd;
    a->keep_first = keep_first;
    a->client = a->stdin_pipe = a->pty = -1;
    strbuf_init(&a->in, 0);
    strbuf_init(&a->out, 0);
    strbuf_init(&a->stdin_q, 0);
    return a;
}

void shim_attach_free(struct shim_attach *a)
{
    if (!a)
        return;
    if (a->client >= 0)
        close(a->client);
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    if (a->stdin_pipe >= 0)
        close(a->stdin_pipe);
    strbuf_release(&a->in);
    strbuf_release(&a->out);
    strbuf_release(&a->stdin_q);
    free(a->job_id);
    free(a);
}

static void close_stdin(struct shim_attach *a)
{
    if (a->stdin_pipe >= 0)
        close(a->stdin_pipe);
    a->stdin_pipe = -1;
    strbuf_reset(&a->stdin_q);
}

static void apply_size(struct shim_attach *a)
{
    if (a->pty < 0 || !a->rows || !a->cols)
        return;
    struct winsize ws = {.ws_row = (unsigned short)a->rows, .ws_col = (unsigned short)a->cols};
    ioctl(a->pty, TIOCSWINSZ, &ws);
}

static void client_gone(struct shim_attach *a)
{
    close(a->client);
    a->client = -1;
    strbuf_reset(&a->in);
    strbuf_reset(&a->out);
    if (a->pty >= 0) {
        strbuf_reset(&a->stdin_q);
        if (a->init > 0)
            kill(a->init, SIGHUP);
    } else {
        close_stdin(a);
    }
}

/* Acts on the complete frames the client sent. */
static void take_frames(struct shim_attach *a)
{
    size_t off = 0;
    for (;;) {
        struct attach_frame f;
        long n = attach_parse(a->in.buf + off, a->in.len - off, &f);
        if (n == 0)
            break;
        if (n < 0) {
            off++;
            continue;
        }
        off += (size_t)n;
        switch (f.type) {
        case ATTACH_DATA:
            if (f.stream != 0 || a->stdin_eof)
                break;
            if (f.len == 0)
                a->stdin_eof = true;
            else if (a->stdin_pipe >= 0 || a->pty >= 0 || !a->init)
                strbuf_add(&a->stdin_q, f.data, f.len);
            break;
        case ATTACH_SIGNAL:
            if (a->init > 0 && f.num > 0 && f.num < 65)
                kill(a->init, (int)f.num);
            break;
        case ATTACH_RESIZE:
            a->rows = f.rows;
            a->cols = f.cols;
            apply_size(a);
            break;
        default: break;
        }
    }
    strbuf_remove_prefix(&a->in, off);
}

static void adopt_client(struct shim_attach *a)
{
    int c = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    struct timeval tv = {2, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct attach_handoff h;
    struct strbuf early = STRBUF_INIT;
    struct err *e = NULL;
    int fd = attach_handoff_recv(c, &h, &early, &e);
    close(c);
    if (fd < 0) {
        warn(a, "%s", e->msg);
        err_free(e);
        strbuf_release(&early);
        return;
    }
    if (a->client >= 0) {
        struct strbuf msg = STRBUF_INIT;
        attach_put_error(&msg, "another client is attached to this job");
        ssize_t n = send(fd, msg.buf, msg.len, MSG_NOSIGNAL);
        (void)n;
        strbuf_release(&msg);
        strbuf_release(&early);
        close(fd);
        return;
    }
    a->client = fd;
    if (!a->ever_attached && h.height && h.width) {
        a->rows = h.height;
        a->cols = h.width;
        apply_size(a);
    }
    a->ever_attached = true;
    strbuf_add(&a->in, early.buf, early.len);
    strbuf_release(&early);
    take_frames(a);
}

static long ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

bool shim_attach_wait(struct shim_attach *a, int timeout_ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* at least one look, so timeout 0 still adopts a client already queued */
    while (a->client < 0 && a->listen_fd >= 0) {
        long left = timeout_ms - ms_since(&t0);
        struct pollfd p = {a->listen_fd, POLLIN, 0};
        if (poll(&p, 1, left > 0 ? (int)left : 0) > 0)
            adopt_client(a);
        else if (left <= 0)
            break;
    }
    return a->client >= 0;
}

void shim_attach_size(const struct shim_attach *a, unsigned *rows, unsigned *cols)
{
    *rows = a->rows;
    *cols = a->cols;
}

void shim_attach_started(struct shim_attach *a, pid_t init, int stdin_pipe, int pty)
{
    a->init = init;
    a->stdin_pipe = stdin_pipe;
    a->pty = pty;
    apply_size(a);
    if (a->stdin_pipe < 0 && a->pty < 0)
        strbuf_reset(&a->stdin_q);
    /* a client that is gone already took stdin with it */
    if (a->ever_attached && a->client < 0)
        close_stdin(a);
}

static int stdin_target(const struct shim_attach *a)
{
    return a->pty >= 0 ? a->pty : a->stdin_pipe;
}

int shim_attach_poll(struct shim_attach *a, struct pollfd *p)
{
    int n = 0;
    if (a->listen_fd >= 0)
        p[n++] = (struct pollfd){a->listen_fd, POLLIN, 0};
    if (a->client >= 0) {
        short ev = 0;
        if (a->stdin_q.len < STDIN_QUEUE_MAX)
            ev |= POLLIN;
        if (a->out.len)
            ev |= POLLOUT;
        p[n++] = (struct pollfd){a->client, ev, 0};
    }
    if (stdin_target(a) >= 0 && (a->stdin_q.len || (a->stdin_eof && a->stdin_pipe >= 0)))
        p[n++] = (struct pollfd){stdin_target(a), POLLOUT, 0};
    return n;
}

static void client_read(struct shim_attach *a)
{
    strbuf_grow(&a->in, READ_CHUNK);
    ssize_t n = read(a->client, a->in.buf + a->in.len, READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_gone(a);
        return;
    }
    a->in.len += (size_t)n;
    a->in.buf[a->in.len] = '\0';
    take_frames(a);
}

/* Returns -1 when the client is gone. */
static int client_write(struct shim_attach *a)
{
    ssize_t n = send(a->client, a->out.buf, a->out.len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0) {
        client_gone(a);
        return -1;
    }
    strbuf_remove_prefix(&a->out, (size_t)n);
    return 0;
}

static void stdin_write(struct shim_attach *a)
{
    int fd = stdin_target(a);
    if (a->stdin_q.len) {
        ssize_t n = write(fd, a->stdin_q.buf, a->stdin_q.len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) { /* the job closed its stdin */
            if (a->pty < 0)
                close_stdin(a);
            strbuf_reset(&a->stdin_q);
            return;
        }
        strbuf_remove_prefix(&a->stdin_q, (size_t)n);
    }
    if (!a->stdin_q.len && a->stdin_eof && a->pty < 0)
        close_stdin(a);
}

void shim_attach_handle(struct shim_attach *a, const struct pollfd *p, int n)
{
    for (int i = 0; i < n; i++) {
        if (!p[i].revents)
            continue;
        if (p[i].fd == a->listen_fd)
            adopt_client(a);
        else if (p[i].fd == a->client && p[i].fd >= 0) {
            if ((p[i].revents & POLLOUT) && client_write(a) < 0)
                continue;
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                client_read(a);
        } else if (p[i].fd == stdin_target(a) && p[i].fd >= 0) {
            if (p[i].revents & POLLOUT)
                stdin_write(a);
            else if ((p[i].revents & POLLERR) && a->pty < 0)
                close_stdin(a);
        }
    }
}

void shim_attach_output(struct shim_attach *a, int stream, const void *buf, size_t len)
{
    if (a->client < 0 &&
        (a->ever_attached || !a->keep_first || a->out.len + len > SHIM_ATTACH_QUEUE_MAX))
        return; /* nobody to show it to: the log has it */
    attach_put_data(&a->out, stream, buf, len);
    if (a->client >= 0)
        client_write(a);
}

bool shim_attach_output_ok(const struct shim_attach *a)
{
    return a->client < 0 || a->out.len < SHIM_ATTACH_QUEUE_MAX;
}

void shim_attach_finish(struct shim_attach *a, int status, const char *msg, int timeout_ms)
{
    if (a->listen_fd >= 0) { /* nobody else gets in now */
        close(a->listen_fd);
        a->listen_fd = -1;
    }
    if (a->client < 0)
        return;
    if (msg)
        attach_put_error(&a->out, msg);
    else
        attach_put_exit(&a->out, (uint32_t)status);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (a->client >= 0 && a->out.len) {
        if (client_write(a) < 0 || !a->out.len)
            break;
        long left = timeout_ms - ms_since(&t0);
        if (left <= 0)
            break;
        struct pollfd p = {a->client, POLLOUT, 0};
        poll(&p, 1, (int)left);
    }
    if (a->client < 0)
        return;
    /* A lingering close: closing with unread bytes from the client would
     * reset the connection, and a reset can drop frames still in flight.
     * The client closes once it has the last frame. */
    if (!a->out.len && shutdown(a->client, SHUT_WR) == 0) {
        char buf[4096];
        struct pollfd p = {a->client, POLLIN, 0};
        while (ms_since(&t0) < timeout_ms && poll(&p, 1, 1000) > 0) {
            ssize_t n = read(a->client, buf, sizeof(buf));
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break;
        }
    }
    close(a->client);
    a->client = -1;
}
