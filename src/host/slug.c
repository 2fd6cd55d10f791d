#include "slug.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "ids.h"
#include "proc.h"
#include "strbuf.h"
#include "xalloc.h"

#define SHA_HEX 64
#define LOCK_BUSY (-2)

int slug_sha256_is_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return 0;
    return n == SHA_HEX;
}

static void sha_lower(char out[SHA_HEX + 1], const char *sha)
{
    snprintf(out, SHA_HEX + 1, "%s", sha);
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

char *slug_dir(const char *cache, const char *sha256)
{
    char sha[SHA_HEX + 1];
    sha_lower(sha, sha256);
    return xasprintf("%s/%s", cache, sha);
}

/* ---- locks ---- */

static int lock_is_current(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Opens and flocks path (op: LOCK_SH or LOCK_EX, maybe | LOCK_NB). Returns
 * the fd, LOCK_BUSY when LOCK_NB found it held, or -1 with *err. */
static int lock_take(const char *path, int op, struct err **err)
{
    for (;;) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return err_make(err, errno, "open '%s'", path);
        int r;
        while ((r = flock(fd, op)) < 0 && errno == EINTR)
            ;
        if (r < 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return LOCK_BUSY;
            return err_make(err, e, "lock '%s'", path);
        }
        if (lock_is_current(fd, path))
            return fd;
        close(fd); /* an eviction removed it while we waited: lock the new one */
    }
}

static void touch(const char *path)
{
    utimensat(AT_FDCWD, path, NULL, 0);
}

/* ---- fetch ---- */

/* Runs `FETCHER fetch-slug URL SHA256 SIZE OUT` (flynn-host, see
 * slug_download): the download lives in a process of its own so that the
 * shim, started for every job, does not load libcurl and OpenSSL. */
static int download(const char *fetcher, const struct slug_ref *s, const char *sha, const char *out,
                    struct err **err)
{
    char size[32];
    snprintf(size, sizeof(size), "%lld", s->size > 0 ? s->size : 0);
    const char *argv[] = {fetcher, "fetch-slug", s->url, sha, size, out, NULL};
    struct strbuf msg = STRBUF_INIT;
    int rc = proc_run(argv, &msg, err);
    if (rc < 0) {
        strbuf_release(&msg);
        return err_wrap(err, "fetch slug '%s'", s->url);
    }
    while (msg.len && (msg.buf[msg.len - 1] == '\n' || msg.buf[msg.len - 1] == ' '))
        msg.buf[--msg.len] = '\0';
    if (rc) {
        if (msg.len)
            err_makex(err, EIO, "%.500s", msg.buf);
        else if (rc == 127)
            err_makex(err, ENOENT, "fetch slug '%s': cannot run '%s'", s->url, fetcher);
        else
            err_makex(err, EIO, "fetch slug '%s': '%s' exited with status %d", s->url, fetcher, rc);
        strbuf_release(&msg);
        return -1;
    }
    strbuf_release(&msg);
    return 0;
}

static int unpack(const char *url, const char *tgz, const char *app, struct err **err)
{
    if (fs_mkdir_p(app, 0755, err) < 0)
        return err_wrap(err, "unpack slug '%s'", url);
    /* as root, tar keeps the archive's owners and modes; GNU tar refuses
     * members outside the directory (absolute names, "..", symlink tricks) */
    const char *argv[] = {"tar", "-xzf", tgz, "-C", app, "--numeric-owner", NULL};
    struct strbuf out = STRBUF_INIT;
    int rc = proc_run(argv, &out, err);
    if (rc < 0) {
        strbuf_release(&out);
        return err_wrap(err, "unpack slug '%s'", url);
    }
    if (rc) {
        while (out.len && (out.buf[out.len - 1] == '\n' || out.buf[out.len - 1] == ' '))
            out.buf[--out.len] = '\0';
        err_makex(err, EIO, "unpack slug '%s': tar exited with status %d: %.300s", url, rc,
                  out.buf);
        strbuf_release(&out);
        return -1;
    }
    strbuf_release(&out);
    return 0;
}

/* Fetches, checks and unpacks the slug into CACHE/SHA; the caller holds the
 * exclusive lock. */
static int fetch(const char *cache, const struct slug_ref *s, const char *sha, const char *fetcher,
                 struct err **err)
{
    cleanup_free char *dir = xasprintf("%s/%s", cache, sha);
    cleanup_free char *tmp = xasprintf("%s/.tmp-%s", cache, sha);
    cleanup_free char *tgz = xasprintf("%s/.tmp-%s.tgz", cache, sha);
    cleanup_free char *app = xasprintf("%s/root/app", tmp);
    cleanup_free char *ready = xasprintf("%s/ready", tmp);
    /* leftovers of a fetch that died, or a slug that lost its ready mark */
    if (fs_rm_rf(tmp, err) < 0 || fs_rm_rf(dir, err) < 0)
        return -1;
    if (unlink(tgz) < 0 && errno != ENOENT)
        return err_make(err, errno, "remove '%s'", tgz);
    int ret = download(fetcher, s, sha, tgz, err);
    if (ret == 0)
        ret = unpack(s->url, tgz, app, err);
    unlink(tgz);
    if (ret == 0) {
        char ts[40];
        time_now_rfc3339(ts);
        cleanup_free char *txt = xasprintf("url %s\nsha256 %s\nfetched_at %s\n", s->url, sha, ts);
        ret = fs_write_file(ready, txt, strlen(txt), 0644, 0, err);
    }
    if (ret == 0) {
        /* the tree is on disk before its name says it is complete */
        int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            syncfs(dfd);
            close(dfd);
        }
        if (rename(tmp, dir) < 0)
            ret = err_make(err, errno, "rename '%s' to '%s'", tmp, dir);
    }
    if (ret < 0)
        fs_rm_rf(tmp, NULL);
    return ret;
}

int slug_acquire(const char *cache, const struct slug_ref *s, const char *fetcher, struct err **err)
{
    if (!slug_sha256_is_valid(s->sha256))
        return err_makex(err, EINVAL, "slug sha256 '%s' is not 64 hex digits", s->sha256);
    char sha[SHA_HEX + 1];
    sha_lower(sha, s->sha256);
    if (fs_mkdir_p(cache, 0700, err) < 0)
        return -1;
    cleanup_free char *lockp = xasprintf("%s/%s.lock", cache, sha);
    cleanup_free char *ready = xasprintf("%s/%s/ready", cache, sha);
    /* a few rounds: only an eviction between two flocks sends us round */
    for (int round = 0; round < 8; round++) {
        int fd = lock_take(lockp, LOCK_SH, err);
        if (fd < 0)
            return -1;
        if (fs_exists(ready)) {
            touch(ready);
            return fd;
        }
        close(fd);
        fd = lock_take(lockp, LOCK_EX, err);
        if (fd < 0)
            return -1;
        if (!fs_exists(ready) && fetch(cache, s, sha, fetcher, err) < 0) {
            unlink(lockp); /* nothing to lock; waiters re-check and try themselves */
            close(fd);
            return -1;
        }
        /* flock converts by dropping and retaking, so check again */
        int r;
        while ((r = flock(fd, LOCK_SH)) < 0 && errno == EINTR)
            ;
        if (r == 0 && lock_is_current(fd, lockp) && fs_exists(ready)) {
            touch(ready);
            return fd;
        }
        close(fd);
    }
    return err_makex(err, EAGAIN, "fetch slug '%s': evicted again while it was being started",
                     s->url);
}

void slug_release(const char *cache, const char *sha256, int fd)
{
    if (fd < 0)
        return;
    char sha[SHA_HEX + 1];
    sha_lower(sha, sha256);
    cleanup_free char *ready = xasprintf("%s/%s/ready", cache, sha);
    touch(ready);
    close(fd);
}

/* ---- eviction ---- */

struct entry {
    char sha[SHA_HEX + 1];
    struct timespec used;
};

static int by_newest(const void *a, const void *b)
{
    const struct timespec *x = &((const struct entry *)a)->used;
    const struct timespec *y = &((const struct entry *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return x->tv_sec < y->tv_sec ? 1 : -1;
    if (x->tv_nsec != y->tv_nsec)
        return x->tv_nsec < y->tv_nsec ? 1 : -1;
    return 0;
}

/* Removes CACHE/SHA unless a job uses it, it is being fetched, or it was
 * used since e->used was read. Returns 1 removed, 0 left alone, -1 with *err. */
static int evict_one(const char *cache, const struct entry *e, struct err **err)
{
    const char *sha = e->sha;
    cleanup_free char *lockp = xasprintf("%s/%s.lock", cache, sha);
    cleanup_free char *ready = xasprintf("%s/%s/ready", cache, sha);
    int fd = lock_take(lockp, LOCK_EX | LOCK_NB, err);
    if (fd == LOCK_BUSY)
        return 0;
    if (fd < 0)
        return -1;
    struct stat st;
    if (stat(ready, &st) == 0 &&
        (st.st_mtim.tv_sec != e->used.tv_sec || st.st_mtim.tv_nsec != e->used.tv_nsec)) {
        close(fd);
        return 0;
    }
    char rnd[17];
    id_hex(rnd, 8);
    cleanup_free char *dir = xasprintf("%s/%s", cache, sha);
    cleanup_free char *trash = xasprintf("%s/.trash-%s", cache, rnd);
    int gone = rename(dir, trash) == 0;
    int rename_errno = errno;
    /* a slug or a leftover of a failed fetch: either way the lock goes */
    unlink(lockp);
    close(fd);
    if (!gone)
        return rename_errno == ENOENT
                   ? 0
                   : err_make(err, rename_errno, "rename '%s' to '%s'", dir, trash);
    return fs_rm_rf(trash, err) < 0 ? -1 : 1;
}

/* Removes what an interrupted fetch of sha left, unless one is running. */
static void clean_tmp(const char *cache, const char *sha)
{
    cleanup_free char *lockp = xasprintf("%s/%s.lock", cache, sha);
    int fd = lock_take(lockp, LOCK_EX | LOCK_NB, NULL);
    if (fd < 0)
        return;
    cleanup_free char *tmp = xasprintf("%s/.tmp-%s", cache, sha);
    cleanup_free char *tgz = xasprintf("%s/.tmp-%s.tgz", cache, sha);
    cleanup_free char *dir = xasprintf("%s/%s", cache, sha);
    fs_rm_rf(tmp, NULL);
    unlink(tgz);
    if (!fs_exists(dir))
        unlink(lockp);
    close(fd);
}

int slug_cache_evict(const char *cache, int keep, struct err **err)
{
    DIR *d = opendir(cache);
    if (!d)
        return errno == ENOENT ? 0 : err_make(err, errno, "open '%s'", cache);
    struct entry *v = NULL;
    size_t n = 0, cap = 0;
    struct strbuf trash = STRBUF_INIT, tmp = STRBUF_INIT; /* NUL-separated names */
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (!strncmp(name, ".trash-", 7)) {
            strbuf_add(&trash, name, len + 1);
        } else if (!strncmp(name, ".tmp-", 5) && len >= 5 + SHA_HEX) {
            strbuf_add(&tmp, name + 5, SHA_HEX);
            strbuf_add(&tmp, "", 1);
        } else if (len == SHA_HEX + 5 && !strcmp(name + SHA_HEX, ".lock")) {
            /* a lock without its slug (a failed fetch): clean_tmp drops it */
            cleanup_free char *dir = xasprintf("%s/%.*s", cache, SHA_HEX, name);
            if (!fs_exists(dir)) {
                strbuf_add(&tmp, name, SHA_HEX);
                strbuf_add(&tmp, "", 1);
            }
        } else if (slug_sha256_is_valid(name)) {
            if (n == cap)
                v = xrealloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
            snprintf(v[n].sha, sizeof(v[n].sha), "%s", name);
            cleanup_free char *ready = xasprintf("%s/%s/ready", cache, name);
            struct stat st;
            /* no ready mark: broken, the first to go */
            v[n].used = stat(ready, &st) == 0 ? st.st_mtim : (struct timespec){0, 0};
            n++;
        }
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof(*v), by_newest);
    struct err *first = NULL;
    int removed = 0;
    for (size_t i = keep > 0 ? (size_t)keep : 0; i < n; i++) {
        int r = evict_one(cache, &v[i], first ? NULL : &first);
        if (r > 0)
            removed++;
    }
    for (size_t off = 0; off < tmp.len; off += strlen(tmp.buf + off) + 1)
        if (slug_sha256_is_valid(tmp.buf + off))
            clean_tmp(cache, tmp.buf + off);
    /* another evictor may be removing the same trash: not an error */
    for (size_t off = 0; off < trash.len; off += strlen(trash.buf + off) + 1) {
        cleanup_free char *p = xasprintf("%s/%s", cache, trash.buf + off);
        fs_rm_rf(p, NULL);
    }
    strbuf_release(&trash);
    strbuf_release(&tmp);
    free(v);
    if (first) {
        if (err)
            *err = first;
        else
            err_free(first);
        return -1;
    }
    return removed;
}
