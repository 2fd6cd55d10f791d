/* Unit tests for disk.c: uploads appear whole or not at all, conflicts,
 * metadata, deletes prune, the lock and the temp directory. */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "test.h"

static char root[256];

static int exists(const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    struct stat st;
    return lstat(p, &st) == 0;
}

static int put(struct disk *d, const char *path, const char *data, int *errnum)
{
    struct disk_put p;
    struct err *e = NULL;
    int r = disk_put_begin(d, &p, strlen(data), &e);
    if (r == 0)
        r = disk_put_write(&p, data, strlen(data), &e);
    if (r == 0) {
        disk_put_finish(&p);
        r = disk_put_commit(d, &p, path, &e);
    } else {
        disk_put_abort(d, &p);
    }
    if (errnum)
        *errnum = e ? e->errnum : 0;
    err_free(e);
    return r;
}

static char *get(struct disk *d, const char *path, struct disk_blob *b)
{
    struct err *e = NULL;
    if (disk_get(d, path, b, &e) < 0) {
        err_free(e);
        return NULL;
    }
    char *buf = calloc(1, b->size + 1);
    ssize_t n = pread(b->fd, buf, b->size, 0);
    close(b->fd);
    if (n != (ssize_t)b->size) {
        free(buf);
        return NULL;
    }
    return buf;
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/blobstore-disk-test-%d", (int)getpid());
    struct disk d, d2;
    struct err *e = NULL;
    ok(disk_open(&d, root, &e) == 0, "open '%s'", root);
    ok(exists("data") && exists("meta") && exists("tmp") && exists("lock"), "layout");
    ok(disk_open(&d2, root, &e) < 0 && e && e->errnum == EBUSY, "second open is refused");
    err_free(e);
    e = NULL;

    int en = 0;
    ok(put(&d, "a/b/c", "hello", &en) == 0, "put a/b/c");
    struct disk_blob b;
    char *got = get(&d, "a/b/c", &b);
    is_str(got, "hello", "read back");
    free(got);
    ok(b.has_sha &&
           !strcmp(b.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
       "sha256 from the metadata");
    ok(!exists("tmp/put.1") && !exists("tmp/put.1.meta"), "temp files moved away");

    /* an upload is invisible until committed, and abort leaves nothing */
    struct disk_put p;
    ok(disk_put_begin(&d, &p, 0, &e) == 0, "begin");
    disk_put_write(&p, "partial", 7, &e);
    ok(get(&d, "x", &b) == NULL, "nothing at x while uploading");
    disk_put_abort(&d, &p);
    ok(get(&d, "x", &b) == NULL, "nothing at x after abort");
    ok(!exists("tmp/put.2"), "abort removes the temp file");

    /* conflicts: a blob as a prefix, a directory as the path */
    ok(disk_check_put(&d, "a/b/c/d", &e) < 0 && e->errnum == ENOTDIR, "check: prefix is a blob");
    err_free(e);
    e = NULL;
    ok(put(&d, "a/b/c/d", "x", &en) < 0 && en == ENOTDIR, "put under a blob: ENOTDIR");
    ok(disk_check_put(&d, "a/b", &e) < 0 && e->errnum == ENOTDIR, "check: path is a directory");
    err_free(e);
    e = NULL;
    ok(put(&d, "a/b", "x", &en) < 0 && en == ENOTDIR, "put onto a directory: ENOTDIR");
    ok(get(&d, "a/b", &b) == NULL, "a directory is no blob");
    ok(disk_delete(&d, "a/b", &e) < 0 && e->errnum == ENOENT, "deleting a directory: ENOENT");
    err_free(e);
    e = NULL;

    /* overwrite, then stale metadata is not trusted */
    ok(put(&d, "a/b/c", "world!", &en) == 0, "overwrite");
    got = get(&d, "a/b/c", &b);
    is_str(got, "world!", "new content");
    free(got);
    char mp[512], dp[512];
    snprintf(mp, sizeof(mp), "%s/meta/a/b/c", root);
    snprintf(dp, sizeof(dp), "%s/data/a/b/c", root);
    fs_write_file(dp, "other!", 6, 0644, 0, NULL); /* same size, newer mtime */
    got = get(&d, "a/b/c", &b);
    ok(got && !b.has_sha, "metadata of an older file is ignored");
    free(got);

    /* symlinks are not followed */
    char lp[512];
    snprintf(lp, sizeof(lp), "%s/data/link", root);
    ok(symlink("/etc", lp) == 0, "plant a symlink");
    ok(get(&d, "link/passwd", &b) == NULL, "no read through a symlinked directory");
    ok(get(&d, "link", &b) == NULL, "a symlink is no blob");
    ok(put(&d, "link/x", "x", &en) < 0 && en == ENOTDIR, "no write through a symlink");
    unlink(lp);

    /* delete prunes empty directories in both trees, not the roots */
    ok(put(&d, "a/other", "o", &en) == 0, "put a/other");
    ok(disk_delete(&d, "a/b/c", &e) == 0, "delete a/b/c");
    ok(!exists("data/a/b") && !exists("meta/a/b"), "a/b pruned");
    ok(exists("data/a/other"), "a kept: not empty");
    ok(disk_delete(&d, "a/b/c", &e) < 0 && e->errnum == ENOENT, "second delete: ENOENT");
    err_free(e);
    e = NULL;
    ok(disk_delete(&d, "a/other", &e) == 0, "delete a/other");
    ok(!exists("data/a") && exists("data") && exists("meta"), "roots stay");

    /* leftovers in tmp are removed at open */
    disk_close(&d);
    char tp[512];
    snprintf(tp, sizeof(tp), "%s/tmp/put.77", root);
    fs_write_file(tp, "junk", 4, 0644, 0, NULL);
    ok(disk_open(&d, root, &e) == 0, "reopen after close (lock released)");
    ok(!exists("tmp/put.77"), "leftover upload removed");
    disk_close(&d);
    fs_rm_rf(root, NULL);
    return test_done();
}
