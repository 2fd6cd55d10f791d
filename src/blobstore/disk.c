#include "disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

/* Writeback is started every this many bytes, so the final fsync of a big
 * upload has little left to do and dirty pages do not pile up. */
#define SYNC_EVERY (8u << 20)

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static void close_fd(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* Opens DIR/name (a directory), creating it. */
static int open_subdir(int root, const char *name, struct err **err)
{
    if (mkdirat(root, name, 0755) < 0 && errno != EEXIST)
        return err_make(err, errno, "create '%s'", name);
    int fd = openat(root, name, DIR_FLAGS);
    if (fd < 0)
        return err_make(err, errno, "open '%s'", name);
    return fd;
}

static int empty_tmp(int tmp_fd, struct err **err)
{
    int fd = fcntl(tmp_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return err_make(err, errno, "dup");
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int e = errno;
        close(fd);
        return err_make(err, e, "read 'tmp'");
    }
    rewinddir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (unlinkat(tmp_fd, de->d_name, 0) == 0)
            n++;
    }
    closedir(dir);
    if (n)
        log_info("removed %d unfinished upload file(s) from an earlier run", n);
    return 0;
}

int disk_open(struct disk *d, const char *dir, struct err **err)
{
    d->root_fd = d->lock_fd = d->data_fd = d->meta_fd = d->tmp_fd = -1;
    d->seq = 0;
    if (fs_mkdir_p(dir, 0700, err) < 0)
        return -1;
    d->root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->root_fd < 0)
        return err_make(err, errno, "open '%s'", dir);
    d->lock_fd = openat(d->root_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (d->lock_fd < 0) {
        err_make(err, errno, "open '%s/lock'", dir);
        goto fail;
    }
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e == EWOULDBLOCK)
            err_makex(err, EBUSY, "'%s' is in use by another flynn-blobstore", dir);
        else
            err_make(err, e, "lock '%s/lock'", dir);
        goto fail;
    }
    if ((d->data_fd = open_subdir(d->root_fd, "data", err)) < 0 ||
        (d->meta_fd = open_subdir(d->root_fd, "meta", err)) < 0 ||
        (d->tmp_fd = open_subdir(d->root_fd, "tmp", err)) < 0 || empty_tmp(d->tmp_fd, err) < 0) {
        err_wrap(err, "'%s'", dir);
        goto fail;
    }
    return 0;
fail:
    disk_close(d);
    return -1;
}

void disk_close(struct disk *d)
{
    close_fd(d->data_fd);
    close_fd(d->meta_fd);
    close_fd(d->tmp_fd);
    close_fd(d->root_fd);
    close_fd(d->lock_fd); /* releases the lock */
    d->root_fd = d->lock_fd = d->data_fd = d->meta_fd = d->tmp_fd = -1;
}

/*
 * Opens the directory that holds the last segment of path under root,
 * one segment at a time without following symlinks; *base points at the
 * last segment. create: make missing directories. Returns an fd, or -1 with
 * errno: ENOENT (missing), ENOTDIR (a prefix is not a directory).
 */
static int walk(int root, const char *path, bool create, const char **base)
{
    int cur = fcntl(root, F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
        return -1;
    const char *s = path, *slash;
    while ((slash = strchr(s, '/'))) {
        char name[256];
        size_t n = (size_t)(slash - s);
        if (n == 0 || n >= sizeof(name)) {
            close(cur);
            errno = EINVAL;
            return -1;
        }
        memcpy(name, s, n);
        name[n] = '\0';
        int next = openat(cur, name, DIR_FLAGS);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, name, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                close(cur);
                errno = e;
                return -1;
            }
            next = openat(cur, name, DIR_FLAGS);
        }
        int e = errno;
        close(cur);
        if (next < 0) {
            errno = e == ELOOP ? ENOTDIR : e; /* a symlink is not our directory */
            return -1;
        }
        cur = next;
        s = slash + 1;
    }
    *base = s;
    return cur;
}

int disk_check_put(struct disk *d, const char *path, struct err **err)
{
    const char *base;
    int dir = walk(d->data_fd, path, false, &base);
    if (dir < 0) {
        if (errno == ENOENT)
            return 0; /* created at commit */
        return err_make(err, errno, "'%s'", path);
    }
    struct stat st;
    int r = fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW);
    close(dir);
    if (r == 0 && !S_ISREG(st.st_mode))
        return err_makex(err, ENOTDIR, "'%s' is a directory", path);
    return 0;
}

int disk_put_begin(struct disk *d, struct disk_put *p, uint64_t expect, struct err **err)
{
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    snprintf(p->name, sizeof(p->name), "put.%" PRIu64, ++d->seq);
    int fd = openat(d->tmp_fd, p->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return err_make(err, errno, "create 'tmp/%s'", p->name);
    if (expect > 0) {
        int r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)expect);
        if (r < 0 && (errno == ENOSPC || errno == EDQUOT || errno == EFBIG)) {
            int e = errno;
            close(fd);
            unlinkat(d->tmp_fd, p->name, 0);
            return err_make(err, e == EFBIG ? ENOSPC : e, "reserve %" PRIu64 " bytes", expect);
        }
        /* other errors (EOPNOTSUPP on some file systems): write as we go */
    }
    p->sha = EVP_MD_CTX_new();
    if (!p->sha || EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1)
        BUG("cannot initialise SHA-256");
    p->fd = fd;
    return 0;
}

int disk_put_write(struct disk_put *p, const void *buf, size_t n, struct err **err)
{
    if (EVP_DigestUpdate(p->sha, buf, n) != 1)
        BUG("SHA-256 update failed");
    const char *s = buf;
    while (n) {
        ssize_t w = write(p->fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return err_make(err, errno, "write 'tmp/%s'", p->name);
        s += w;
        n -= (size_t)w;
        p->size += (uint64_t)w;
    }
    if (p->size - p->synced >= SYNC_EVERY) {
        sync_file_range(p->fd, (off_t)p->synced, (off_t)(p->size - p->synced),
                        SYNC_FILE_RANGE_WRITE);
        p->synced = p->size;
    }
    return 0;
}

void disk_put_finish(struct disk_put *p)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(p->sha, md, &mdlen) != 1 || mdlen != 32)
        BUG("SHA-256 final failed");
    for (unsigned i = 0; i < 32; i++)
        snprintf(p->sha256 + 2 * i, 3, "%02x", md[i]);
}

void disk_put_abort(struct disk *d, struct disk_put *p)
{
    if (p->fd < 0)
        return;
    close(p->fd);
    p->fd = -1;
    unlinkat(d->tmp_fd, p->name, 0);
    EVP_MD_CTX_free(p->sha);
    p->sha = NULL;
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes tmp/NAME.meta for the finished upload p. */
static int write_meta(struct disk *d, struct disk_put *p, char *meta_name, size_t cap,
                      struct err **err)
{
    struct stat st;
    if (fstat(p->fd, &st) < 0)
        return err_make(err, errno, "stat 'tmp/%s'", p->name);
    char line[160];
    int n = snprintf(line, sizeof(line), "v1 %s %" PRIu64 " %" PRId64 "\n", p->sha256, p->size,
                     mtime_ns(&st));
    snprintf(meta_name, cap, "%s.meta", p->name);
    int fd =
        openat(d->tmp_fd, meta_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return err_make(err, errno, "create 'tmp/%s'", meta_name);
    if (write_all(fd, line, (size_t)n) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlinkat(d->tmp_fd, meta_name, 0);
        return err_make(err, e, "write 'tmp/%s'", meta_name);
    }
    close(fd);
    return 0;
}

/* Moves tmp/NAME to the metadata of path; best effort (see disk.h: a blob
 * without metadata is served without a checksum). */
static void place_meta(struct disk *d, const char *meta_name, const char *path)
{
    const char *base;
    int dir = walk(d->meta_fd, path, true, &base);
    if (dir < 0) {
        log_warn("metadata of '%s': %s (served without checksum)", path, strerror(errno));
        unlinkat(d->tmp_fd, meta_name, 0);
        return;
    }
    int r = renameat(d->tmp_fd, meta_name, dir, base);
    if (r < 0 && (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)) {
        /* an empty directory left by a crash in the middle of a delete */
        unlinkat(dir, base, AT_REMOVEDIR);
        r = renameat(d->tmp_fd, meta_name, dir, base);
    }
    if (r < 0) {
        log_warn("metadata of '%s': %s (served without checksum)", path, strerror(errno));
        unlinkat(d->tmp_fd, meta_name, 0);
    } else {
        fsync(dir);
    }
    close(dir);
}

int disk_put_commit(struct disk *d, struct disk_put *p, const char *path, struct err **err)
{
    char meta_name[48];
    int ret = -1, dir = -1;
    const char *base;
    if (fsync(p->fd) < 0) {
        err_make(err, errno, "fsync 'tmp/%s'", p->name);
        goto out;
    }
    if (write_meta(d, p, meta_name, sizeof(meta_name), err) < 0)
        goto out;
    dir = walk(d->data_fd, path, true, &base);
    if (dir < 0) {
        err_make(err, errno, "'%s'", path);
        unlinkat(d->tmp_fd, meta_name, 0);
        goto out;
    }
    if (renameat(d->tmp_fd, p->name, dir, base) < 0) {
        int e = errno;
        unlinkat(d->tmp_fd, meta_name, 0);
        if (e == EISDIR || e == ENOTEMPTY || e == EEXIST)
            err_makex(err, ENOTDIR, "'%s' is a directory", path);
        else
            err_make(err, e, "rename to '%s'", path);
        goto out;
    }
    if (fsync(dir) < 0)
        log_warn("fsync the directory of '%s': %s", path, strerror(errno));
    place_meta(d, meta_name, path);
    ret = 0;
out:
    if (dir >= 0)
        close(dir);
    if (ret == 0) {
        close(p->fd);
        p->fd = -1;
        EVP_MD_CTX_free(p->sha);
        p->sha = NULL;
    } else {
        disk_put_abort(d, p);
    }
    return ret;
}

/* Reads the metadata of path into b when it describes the file st. */
static void read_meta(struct disk *d, const char *path, const struct stat *st, struct disk_blob *b)
{
    const char *base;
    int dir = walk(d->meta_fd, path, false, &base);
    if (dir < 0)
        return;
    int fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    close(dir);
    if (fd < 0)
        return;
    char line[160];
    ssize_t n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n <= 0)
        return;
    line[n] = '\0';
    char hex[65];
    uint64_t size;
    int64_t mt;
    if (sscanf(line, "v1 %64[0-9a-f] %" SCNu64 " %" SCNd64, hex, &size, &mt) != 3 ||
        strlen(hex) != 64)
        return;
    if (size != (uint64_t)st->st_size || mt != mtime_ns(st))
        return; /* describes an older file (see disk.h) */
    memcpy(b->sha256, hex, sizeof(hex));
    b->has_sha = true;
}

int disk_get(struct disk *d, const char *path, struct disk_blob *b, struct err **err)
{
    const char *base;
    memset(b, 0, sizeof(*b));
    b->fd = -1;
    int dir = walk(d->data_fd, path, false, &base);
    if (dir < 0) {
        int e = errno;
        if (e == ENOTDIR)
            e = ENOENT;
        return err_make(err, e, "'%s'", path);
    }
    /* O_NONBLOCK: a FIFO planted under DIR must not block the daemon */
    int fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    close(dir);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP || e == ENOTDIR || e == ENXIO)
            e = ENOENT;
        return err_make(err, e, "open '%s'", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return err_make(err, e, "stat '%s'", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_makex(err, ENOENT, "'%s' is not a blob", path);
    }
    read_meta(d, path, &st, b);
    b->fd = fd;
    b->size = (uint64_t)st.st_size;
    b->mtime = (int64_t)st.st_mtim.tv_sec;
    return 0;
}

/* Removes the directories of path left empty under root, deepest first;
 * dir (consumed) is the directory that held its last segment. */
static void prune(int dir, const char *path)
{
    size_t depth = 0;
    for (const char *s = path; *s; s++)
        depth += *s == '/';
    const char *end = strrchr(path, '/'); /* end of the segment to remove */
    while (depth-- > 0 && end) {
        const char *start = end;
        while (start > path && start[-1] != '/')
            start--;
        char name[256];
        size_t n = (size_t)(end - start);
        if (n >= sizeof(name))
            break;
        memcpy(name, start, n);
        name[n] = '\0';
        int up = openat(dir, "..", DIR_FLAGS);
        if (up < 0)
            break;
        close(dir);
        dir = up;
        if (unlinkat(dir, name, AT_REMOVEDIR) < 0)
            break;
        end = start > path ? start - 1 : NULL;
    }
    close(dir);
}

int disk_delete(struct disk *d, const char *path, struct err **err)
{
    const char *base;
    int dir = walk(d->data_fd, path, false, &base);
    if (dir < 0) {
        int e = errno;
        return err_make(err, e == ENOTDIR ? ENOENT : e, "'%s'", path);
    }
    struct stat st;
    int r = fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW);
    if (r < 0 || !S_ISREG(st.st_mode)) {
        int e = r < 0 ? errno : ENOENT;
        close(dir);
        return err_make(err, e == ENOTDIR ? ENOENT : e, "'%s'", path);
    }
    const char *mbase;
    int mdir = walk(d->meta_fd, path, false, &mbase);
    if (mdir >= 0) {
        unlinkat(mdir, mbase, 0);
        prune(mdir, path);
    }
    if (unlinkat(dir, base, 0) < 0) {
        int e = errno;
        close(dir);
        return err_make(err, e, "remove '%s'", path);
    }
    fsync(dir);
    prune(dir, path);
    return 0;
}
