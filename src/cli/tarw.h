/*
 * tarw: writing a tar stream the way Flynn's backup and export do: one
 * top directory (flynn-backup-DATE or the app name), ustar headers with
 * mode 0644 and the user's uid/gid, regular files only.
 */
#ifndef CLI_TARW_H
#define CLI_TARW_H

#include <stddef.h>
#include <time.h>

#include "err.h"

struct tar {
    int fd;
    char *dir; /* the top directory of every entry */
    time_t now;
};

/* A header for dir/name of size bytes; the caller writes them, then tar_pad. */
int tar_header(struct tar *t, const char *name, unsigned long long size, struct err **err);
int tar_pad(struct tar *t, unsigned long long size, struct err **err);
/* A whole file from memory. */
int tar_file(struct tar *t, const char *name, const void *data, size_t len, struct err **err);
/* The file of fd from its start to its current offset (a temp file just written). */
int tar_fd(struct tar *t, const char *name, int fd, struct err **err);
/* The end-of-archive blocks. */
int tar_end(struct tar *t, struct err **err);
/* write(2) until done. */
int tar_write(int fd, const void *p, size_t n, struct err **err);

#endif
