/* h1body: HTTP/1.1 body framing (see h1body.h). */
#include "h1body.h"

#include <string.h>

#include "hex.h"

void h1body_init_length(struct h1body *b, uint64_t length)
{
    memset(b, 0, sizeof(*b));
    b->state = length ? H1B_LENGTH : H1B_DONE;
    b->remaining = length;
}

void h1body_init_chunked(struct h1body *b)
{
    memset(b, 0, sizeof(*b));
    b->state = H1B_SIZE;
}

void h1body_init_eof(struct h1body *b)
{
    memset(b, 0, sizeof(*b));
    b->state = H1B_EOF;
}

size_t h1body_feed(struct h1body *b, const char *data, size_t len, h1body_sink sink, void *arg)
{
    const unsigned char *p = (const unsigned char *)data, *end = p + len;
    if (len == 0 && b->state == H1B_EOF)
        b->state = H1B_DONE;
    while (p < end) {
        switch (b->state) {
        case H1B_DONE:
        case H1B_FAILED:
        case H1B_ABORTED: goto out;
        case H1B_EOF:
            if (sink && sink(arg, (const char *)p, (size_t)(end - p)) < 0) {
                b->state = H1B_ABORTED;
                goto out;
            }
            p = end;
            break;
        case H1B_LENGTH:
        case H1B_DATA: {
            uint64_t avail = (uint64_t)(end - p);
            size_t take = (size_t)(avail < b->remaining ? avail : b->remaining);
            if (sink && sink(arg, (const char *)p, take) < 0) {
                b->state = H1B_ABORTED;
                goto out;
            }
            p += take;
            b->remaining -= take;
            if (b->remaining == 0)
                b->state = b->state == H1B_LENGTH ? H1B_DONE : H1B_DATA_CR;
            break;
        }
        case H1B_SIZE: {
            int v = hex_digit((unsigned char)*p);
            if (v >= 0) {
                if (++b->digits > 15)
                    goto fail;
                b->remaining = b->remaining * 16 + (uint64_t)v;
            } else if (b->digits == 0) {
                goto fail;
            } else if (*p == ';') {
                b->state = H1B_EXT;
            } else if (*p == '\r') {
                b->state = H1B_SIZE_LF;
            } else {
                goto fail;
            }
            p++;
            break;
        }
        case H1B_EXT:
            if (*p == '\r')
                b->state = H1B_SIZE_LF;
            else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                goto fail;
            p++;
            break;
        case H1B_SIZE_LF:
            if (*p++ != '\n')
                goto fail;
            b->state = b->remaining ? H1B_DATA : H1B_TRAILER_START;
            break;
        case H1B_DATA_CR:
            if (*p++ != '\r')
                goto fail;
            b->state = H1B_DATA_LF;
            break;
        case H1B_DATA_LF:
            if (*p++ != '\n')
                goto fail;
            b->state = H1B_SIZE;
            b->digits = 0;
            b->remaining = 0;
            break;
        case H1B_TRAILER_START:
            if (*p == '\r') {
                b->state = H1B_END_LF;
                p++;
                break;
            }
            b->state = H1B_TRAILER;
            /* fall through */
        case H1B_TRAILER:
            if (++b->trailer_bytes > 65536)
                goto fail;
            if (*p == '\r')
                b->state = H1B_TRAILER_LF;
            else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                goto fail;
            p++;
            break;
        case H1B_TRAILER_LF:
            if (*p++ != '\n')
                goto fail;
            b->state = H1B_TRAILER_START;
            break;
        case H1B_END_LF:
            if (*p++ != '\n')
                goto fail;
            b->state = H1B_DONE;
            break;
        }
    }
out:
    return (size_t)(p - (const unsigned char *)data);
fail:
    b->state = H1B_FAILED;
    return (size_t)(p - (const unsigned char *)data);
}
