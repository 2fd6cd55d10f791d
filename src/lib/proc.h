/*
 * proc: run a subprocess and wait for it (git's run-command, reduced).
 *
 * No module calls fork itself except the container runtime (the shim).
 */
#ifndef LIB_PROC_H
#define LIB_PROC_H

#include "err.h"
#include "strbuf.h"

/* Runs argv (argv[0] looked up in PATH) with stdin from /dev/null, and
 * waits. When out is non-NULL, stdout and stderr are captured into it;
 * otherwise they go to /dev/null. Returns the exit status (0..255), or
 * 128+signal, or -1 with *err set when it could not be started. */
int proc_run(const char *const argv[], struct strbuf *out, struct err **err);

#endif
