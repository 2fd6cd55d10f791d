/*
 * strbuf: a growable byte buffer that is always NUL-terminated (git's).
 *
 * Invariants: buf is never NULL after strbuf_init; buf[len] == '\0';
 * len < alloc. strbuf_detach hands the string to the caller, who frees it.
 */
#ifndef LIB_STRBUF_H
#define LIB_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    size_t alloc;
    size_t len;
    char *buf;
};

#define STRBUF_INIT {0, 0, strbuf_slopbuf}
extern char strbuf_slopbuf[];

void strbuf_init(struct strbuf *sb, size_t hint);
void strbuf_release(struct strbuf *sb);
/* Returns the buffer (caller frees) and re-inits sb. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_adds(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, int c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void strbuf_reset(struct strbuf *sb);
/* Drops the first n bytes. */
void strbuf_remove_prefix(struct strbuf *sb, size_t n);

#define cleanup_strbuf __attribute__((cleanup(strbuf_release)))

#endif
