/*
 * err: the one error object, passed as `struct err **err` last.
 *
 * Contract (crun's): a function that can fail returns <0 (or NULL) and sets
 * *err exactly once; on success it leaves *err alone. Whoever receives an
 * error owns it and does one thing with it: returns it (maybe wrapped with
 * err_wrap), or consumes it (logs it and calls err_free, turns it into an
 * HTTP response or an exit code).
 */
#ifndef LIB_ERR_H
#define LIB_ERR_H

struct err {
    int errnum;  /* errno-style code, 0 when none applies */
    char *msg;   /* lowercase, no full stop, context first */
};

/* Sets *err to a new error; returns -1 so a failure path is one line.
 * When errnum is non-zero, ": strerror(errnum)" is appended. */
int err_make(struct err **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same as err_make, without appending strerror. */
int err_makex(struct err **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes "CONTEXT: " to (*err)->msg; returns -1. */
int err_wrap(struct err **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_free(struct err *e);
/* Maps errnum to an HTTP status: ENOENT 404, EEXIST 409, EINVAL 400,
 * EPERM/EACCES 403, EAGAIN/EBUSY 503, E2BIG 413, else 500. */
int err_http_status(const struct err *e);

#define cleanup_err __attribute__((cleanup(err_freep)))
void err_freep(struct err **e);

#endif
