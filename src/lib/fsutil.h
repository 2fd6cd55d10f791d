/*
 * fsutil: small file-system helpers used by every daemon.
 */
#ifndef LIB_FSUTIL_H
#define LIB_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Reads a whole file (NUL-terminated); caller frees. *len may be NULL. */
char *fs_read_file(const char *path, size_t *len, struct err **err);
/* Writes data to path through a temp file and rename; fsyncs when durable. */
int fs_write_file(const char *path, const void *data, size_t len, mode_t mode, int durable,
                  struct err **err);
/* mkdir -p with mode for the created directories. */
int fs_mkdir_p(const char *path, mode_t mode, struct err **err);
/* rm -rf that stays on one file system and never follows symlinks. */
int fs_rm_rf(const char *path, struct err **err);
int fs_exists(const char *path);

#endif
