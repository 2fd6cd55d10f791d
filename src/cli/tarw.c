#include "tarw.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

int tar_write(int fd, const void *p, size_t n, struct err **err)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return err_make(err, errno, "write");
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* An octal number in width-1 digits plus NUL, as tar fields are. */
static void octal(unsigned char *field, size_t width, unsigned long long v)
{
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0; v >>= 3)
        field[i] = (unsigned char)('0' + (v & 7));
}

/* One ustar header for a regular file of size bytes. */
int tar_header(struct tar *t, const char *name, unsigned long long size, struct err **err)
{
    unsigned char h[512] = {0};
    size_t dl = strlen(t->dir), nl = strlen(name);
    if (dl + 1 + nl < 100) {
        memcpy(h, t->dir, dl);
        h[dl] = '/';
        memcpy(h + dl + 1, name, nl);
    } else { /* ustar: the directory goes in the prefix field */
        if (strlen(name) >= 100 || strlen(t->dir) >= 155)
            return err_makex(err, ENAMETOOLONG, "tar: name too long: %s/%s", t->dir, name);
        memcpy(h, name, strlen(name));
        memcpy(h + 345, t->dir, strlen(t->dir));
    }
    unsigned uid = (unsigned)getuid();
    octal(h + 100, 8, 0644);
    octal(h + 108, 8, uid);
    octal(h + 116, 8, uid);
    octal(h + 124, 12, size);
    octal(h + 136, 12, (unsigned long long)t->now);
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar\0" "00", 8);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        sum += h[i];
    octal(h + 148, 7, sum);
    h[155] = ' ';
    return tar_write(t->fd, h, sizeof(h), err);
}

int tar_pad(struct tar *t, unsigned long long size, struct err **err)
{
    static const unsigned char zero[512];
    size_t pad = (size_t)((512 - size % 512) % 512);
    return pad ? tar_write(t->fd, zero, pad, err) : 0;
}

int tar_file(struct tar *t, const char *name, const void *data, size_t len,
                    struct err **err)
{
    if (tar_header(t, name, len, err) < 0 || tar_write(t->fd, data, len, err) < 0)
        return -1;
    return tar_pad(t, len, err);
}

int tar_fd(struct tar *t, const char *name, int fd, struct err **err)
{
    off_t size = lseek(fd, 0, SEEK_CUR);
    if (size < 0 || lseek(fd, 0, SEEK_SET) < 0)
        return err_make(err, errno, "error getting size");
    if (tar_header(t, name, (unsigned long long)size, err) < 0)
        return -1;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (tar_write(t->fd, buf, (size_t)n, err) < 0)
            return -1;
    if (n < 0)
        return err_make(err, errno, "read");
    return tar_pad(t, (unsigned long long)size, err);
}

int tar_end(struct tar *t, struct err **err)
{
    static const unsigned char end[1024];
    return tar_write(t->fd, end, sizeof(end), err);
}
