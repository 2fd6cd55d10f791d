/*
 * disk: the blob store's files under DIR.
 *
 *   DIR/lock       flock()ed by the one daemon that uses DIR
 *   DIR/data/PATH  the blob, a plain file with exactly the bytes PUT
 *   DIR/meta/PATH  "v1 SHA256HEX SIZE MTIME_NS\n" for the blob at PATH
 *   DIR/tmp/       uploads in progress; emptied at start
 *
 * A PUT writes DIR/tmp/put.N while the body arrives, hashing it as it
 * goes; disk_put_commit fsyncs it, writes the metadata the same way, and
 * renames both into place (data first), then fsyncs the directories. So a
 * blob is either absent or complete, never partial. Metadata names the size
 * and mtime of the data file it describes; after a crash between the two
 * renames it describes an older file, disk_get notices and reports no
 * checksum rather than a wrong one. DELETE removes the metadata first, then
 * the data, then the directories left empty in both trees.
 *
 * Paths are the decoded, checked blob paths of path.h ("a/b/c"). Every
 * operation walks them one directory at a time with O_NOFOLLOW, so a
 * symlink planted under DIR is never followed.
 *
 * Errors carry errno: ENOENT (no such blob), ENOTDIR (the path conflicts
 * with another blob: a prefix is a blob, or the path is a directory),
 * ENOSPC/EDQUOT (disk full), anything else is an I/O failure.
 */
#ifndef BLOBSTORE_DISK_H
#define BLOBSTORE_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct evp_md_ctx_st;

struct disk {
    int root_fd, lock_fd, data_fd, meta_fd, tmp_fd; /* -1 when closed */
    uint64_t seq;                                   /* names temp files */
};

/* A PUT in progress. Embedded by the caller; idle when fd is -1. */
struct disk_put {
    int fd;
    char name[32]; /* in DIR/tmp */
    struct evp_md_ctx_st *sha;
    uint64_t size;
    uint64_t synced; /* bytes handed to writeback so far */
    char sha256[65]; /* hex, set by disk_put_finish */
};

/* A blob opened for reading; the caller owns fd. */
struct disk_blob {
    int fd;
    uint64_t size;
    int64_t mtime; /* seconds */
    bool has_sha;
    char sha256[65];
};

/* Creates DIR and its subdirectories, takes the lock (EBUSY when another
 * process holds it), empties DIR/tmp. */
int disk_open(struct disk *d, const char *dir, struct err **err);
void disk_close(struct disk *d);

/* Fails with ENOTDIR when a PUT to path could never be committed (a
 * prefix of path is a blob, or path is a directory). A cheap early check;
 * disk_put_commit checks again. */
int disk_check_put(struct disk *d, const char *path, struct err **err);

/* Starts an upload into a new temp file. expect, when not 0, is the size
 * announced by Content-Length: the space is reserved now so a full disk is
 * found before the body is read (ENOSPC). */
int disk_put_begin(struct disk *d, struct disk_put *p, uint64_t expect, struct err **err);
/* Appends n bytes and hashes them. */
int disk_put_write(struct disk_put *p, const void *buf, size_t n, struct err **err);
/* Finishes the hash into p->sha256. */
void disk_put_finish(struct disk_put *p);
/* Makes the upload the blob at path (see above). p is idle afterwards,
 * whether it succeeded or not. */
int disk_put_commit(struct disk *d, struct disk_put *p, const char *path, struct err **err);
/* Drops the upload; a no-op on an idle p. */
void disk_put_abort(struct disk *d, struct disk_put *p);

/* Opens the blob at path; ENOENT when there is none (or path names a
 * directory). */
int disk_get(struct disk *d, const char *path, struct disk_blob *b, struct err **err);
/* Removes the blob at path; ENOENT when there is none. */
int disk_delete(struct disk *d, const char *path, struct err **err);

#endif
