#include "attach.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HANDOFF_MAGIC "FLA1"
#define HANDOFF_SIZE 16 /* magic, flags, height, width, early length */
#define HANDOFF_EARLY_MAX (64 << 10)

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void attach_put_data(struct strbuf *out, int stream, const void *data, size_t len)
{
    unsigned char h[6] = {ATTACH_DATA, (unsigned char)stream};
    put32(h + 2, (uint32_t)len);
    strbuf_add(out, h, sizeof(h));
    if (len)
        strbuf_add(out, data, len);
}

void attach_put_exit(struct strbuf *out, uint32_t status)
{
    unsigned char h[5] = {ATTACH_EXIT};
    put32(h + 1, status);
    strbuf_add(out, h, sizeof(h));
}

void attach_put_error(struct strbuf *out, const char *msg)
{
    unsigned char h[5] = {ATTACH_ERROR};
    size_t n = strlen(msg);
    put32(h + 1, (uint32_t)n);
    strbuf_add(out, h, sizeof(h));
    strbuf_add(out, msg, n);
}

long attach_parse(const char *buf, size_t len, struct attach_frame *f)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (!len)
        return 0;
    memset(f, 0, sizeof(*f));
    f->type = (enum attach_frame_type)p[0];
    switch (p[0]) {
    case ATTACH_DATA:
        if (len < 6)
            return 0;
        f->stream = p[1];
        f->len = get32(p + 2);
        if (len - 6 < f->len)
            return 0;
        f->data = buf + 6;
        return 6 + (long)f->len;
    case ATTACH_ERROR:
        if (len < 5)
            return 0;
        f->len = get32(p + 1);
        if (len - 5 < f->len)
            return 0;
        f->data = buf + 5;
        return 5 + (long)f->len;
    case ATTACH_SIGNAL:
    case ATTACH_EXIT:
        if (len < 5)
            return 0;
        f->num = get32(p + 1);
        return 5;
    case ATTACH_RESIZE:
        if (len < 5)
            return 0;
        f->rows = get16(p + 1);
        f->cols = get16(p + 3);
        return 5;
    default: return -1;
    }
}

int attach_handoff_send(int sock, int fd, const struct attach_handoff *h, const void *early,
                        size_t early_len, struct err **err)
{
    if (early_len > HANDOFF_EARLY_MAX)
        return err_makex(err, E2BIG, "the client sent %zu bytes before the upgrade", early_len);
    unsigned char hdr[HANDOFF_SIZE];
    memcpy(hdr, HANDOFF_MAGIC, 4);
    put32(hdr + 4, h->flags);
    put16(hdr + 8, h->height);
    put16(hdr + 10, h->width);
    put32(hdr + 12, (uint32_t)early_len);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)early, early_len}};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = {.msg_iov = iov,
                       .msg_iovlen = early_len ? 2 : 1,
                       .msg_control = u.buf,
                       .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    size_t total = sizeof(hdr) + early_len;
    ssize_t n;
    do
        n = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return err_make(err, errno, "pass the client to the job's shim");
    if ((size_t)n != total) /* a unix socket takes a small message whole */
        return err_makex(err, EIO, "pass the client to the job's shim: short write");
    return 0;
}

/* Reads exactly len bytes, waiting for each part up to the socket's timeout. */
static int read_full(int sock, void *buf, size_t len, struct err **err)
{
    char *p = buf;
    while (len) {
        ssize_t n = read(sock, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_make(err, errno, "read the attach hand-off");
        if (n == 0)
            return err_makex(err, EPROTO, "read the attach hand-off: unexpected end");
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int attach_handoff_recv(int sock, struct attach_handoff *h, struct strbuf *early, struct err **err)
{
    unsigned char hdr[HANDOFF_SIZE];
    struct iovec iov = {hdr, sizeof(hdr)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t n;
    do
        n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    while (n < 0 && errno == EINTR);
    int fd = -1;
    for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&fd, CMSG_DATA(c), sizeof(int));
    if (n < 0)
        return err_make(err, errno, "read the attach hand-off");
    if (fd < 0 || n != sizeof(hdr) || memcmp(hdr, HANDOFF_MAGIC, 4)) {
        if (fd >= 0)
            close(fd);
        return err_makex(err, EPROTO, "read the attach hand-off: malformed message");
    }
    h->flags = get32(hdr + 4);
    h->height = get16(hdr + 8);
    h->width = get16(hdr + 10);
    uint32_t elen = get32(hdr + 12);
    if (elen > HANDOFF_EARLY_MAX) {
        close(fd);
        return err_makex(err, EPROTO, "read the attach hand-off: %u early bytes", elen);
    }
    if (elen) {
        strbuf_grow(early, elen);
        if (read_full(sock, early->buf + early->len, elen, err) < 0) {
            close(fd);
            return -1;
        }
        early->len += elen;
        early->buf[early->len] = '\0';
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    return fd;
}
