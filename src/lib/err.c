#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static int make(struct err **err, int errnum, int with_strerror, const char *fmt, va_list ap)
{
    char *m = xvasprintf(fmt, ap);
    struct err *e = xmalloc(sizeof(*e));
    e->errnum = errnum;
    if (with_strerror && errnum) {
        e->msg = xasprintf("%s: %s", m, strerror(errnum));
        free(m);
    } else {
        e->msg = m;
    }
    if (err)
        *err = e;
    else
        err_free(e);
    return -1;
}

int err_make(struct err **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    make(err, errnum, 1, fmt, ap);
    va_end(ap);
    return -1;
}

int err_makex(struct err **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    make(err, errnum, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int err_wrap(struct err **err, const char *fmt, ...)
{
    if (!err || !*err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = xvasprintf(fmt, ap);
    va_end(ap);
    char *m = xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = m;
    return -1;
}

void err_free(struct err *e)
{
    if (!e)
        return;
    free(e->msg);
    free(e);
}

void err_freep(struct err **e)
{
    err_free(*e);
    *e = NULL;
}

int err_http_status(const struct err *e)
{
    switch (e ? e->errnum : 0) {
    case ENOENT: return 404;
    case EEXIST: return 409;
    case EINVAL: return 400;
    case EPERM:
    case EACCES: return 403;
    case EAGAIN:
    case EBUSY: return 503;
    case E2BIG: return 413;
    default: return 500;
    }
}
