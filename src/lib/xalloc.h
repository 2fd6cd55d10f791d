/*
 * xalloc: allocation that never returns NULL, and cleanup helpers.
 *
 * Every daemon aborts on out-of-memory (as crun, Redis and h2o do), so no
 * caller checks for NULL from these. Cleanup macros free a local on every
 * path out of its scope: declare `cleanup_free char *s = NULL;`.
 */
#ifndef LIB_XALLOC_H
#define LIB_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formats into a new string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

void cleanup_freep(void *p);
void cleanup_closep(int *fd);

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

/* Returns *fdp and sets it to -1: hand an fd over and clear your copy. */
static inline int fd_take(int *fdp)
{
    int fd = *fdp;
    *fdp = -1;
    return fd;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
