/*
 * stack: the read-only base file systems that jobs run on.
 *
 * The "default" stack is built from the host's own Debian, so a fresh machine
 * needs no image download: a skeleton directory with the merged-/usr symlinks
 * (bin, lib, lib64, sbin -> usr/...), empty mount points, and a copy of /etc
 * without secrets (shadow, ssh keys, sudoers, private TLS keys). The job's
 * config binds the host's /usr read-only over the skeleton's usr.
 */
#ifndef HOST_STACK_H
#define HOST_STACK_H

#include "err.h"

/* Builds (once; kept when present and complete) the default stack under
 * STATE_DIR/stacks/default and returns its path; caller frees. */
char *stack_ensure_default(const char *state_dir, struct err **err);
/* Returns the path of a named stack (caller frees), or NULL with ENOENT. */
char *stack_path(const char *state_dir, const char *name, struct err **err);

#endif
