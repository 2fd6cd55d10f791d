#include "req.h"

#include <http_parser.h>
#include <string.h>
#include <strings.h>

/* http-parser's callbacks write here while req_head_parse runs. */
struct parse_ctx {
    struct req_head *h;
    int last_cb; /* 0 none, 1 field, 2 value */
    int status;
    bool head_done;
};

static int perr(struct parse_ctx *x, int status, const char *why)
{
    x->status = status;
    x->h->error = why;
    return 1;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct parse_ctx *x = p->data;
    if (x->h->target.p) /* one run in a contiguous head; extend in any case */
        x->h->target.n = (size_t)(at + n - x->h->target.p);
    else
        x->h->target = (struct req_slice){at, n};
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    struct parse_ctx *x = p->data;
    struct req_head *h = x->h;
    if (x->head_done)
        return 0;
    if (x->last_cb == 1) { /* cannot happen with a contiguous head */
        h->headers[h->nheaders - 1].name.n += n;
        return 0;
    }
    if (h->nheaders == REQ_MAX_HEADERS)
        return perr(x, 431, "too many header fields");
    struct req_header *hd = &h->headers[h->nheaders++];
    hd->name = (struct req_slice){at, n};
    hd->value = (struct req_slice){at + n, 0};
    x->last_cb = 1;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    struct parse_ctx *x = p->data;
    if (x->head_done)
        return 0;
    if (x->last_cb != 1)
        return perr(x, 400, "folded header line");
    struct req_header *hd = &x->h->headers[x->h->nheaders - 1];
    while (n && (at[n - 1] == ' ' || at[n - 1] == '\t'))
        n--;
    hd->value = (struct req_slice){at, n};
    x->last_cb = 2;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct parse_ctx *x = p->data;
    struct req_head *h = x->h;
    x->head_done = true;
    h->major = p->http_major;
    h->minor = p->http_minor;
    h->method = (int)p->method;
    if (p->flags & F_CHUNKED)
        h->flags |= REQ_CHUNKED;
    if (p->flags & F_CONTENTLENGTH) {
        h->flags |= REQ_HAS_LENGTH;
        h->length = p->content_length;
    }
    if (http_should_keep_alive(p))
        h->flags |= REQ_KEEP_ALIVE;
    if ((h->flags & REQ_CHUNKED) || ((h->flags & REQ_HAS_LENGTH) && h->length > 0))
        h->flags |= REQ_HAS_BODY;
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

size_t req_head_end(const char *buf, size_t len, size_t from)
{
    const char *p = buf + (from < len ? from : len), *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return 0;
        if (nl + 1 < end && nl[1] == '\n')
            return (size_t)(nl + 2 - buf);
        if (nl + 2 < end && nl[1] == '\r' && nl[2] == '\n')
            return (size_t)(nl + 3 - buf);
        p = nl + 1;
    }
    return 0;
}

bool req_slice_eq(struct req_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && !strncasecmp(s.p, lit, n);
}

const struct req_header *req_head_find(const struct req_head *h, const char *name, int *count)
{
    const struct req_header *first = NULL;
    int n = 0;
    for (size_t i = 0; i < h->nheaders; i++)
        if (req_slice_eq(h->headers[i].name, name)) {
            if (!first)
                first = &h->headers[i];
            n++;
        }
    if (count)
        *count = n;
    return first;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int fail(struct req_head *h, int status, const char *why)
{
    h->error = why;
    return status;
}

/* http-parser rejects a method it does not know as it reads it; tell an
 * unknown but well-formed method (405) from garbage (400). */
static int bad_method(const char *buf, size_t len, struct req_head *h)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    size_t start = i;
    while (i < len && buf[i] >= 'A' && buf[i] <= 'Z')
        i++;
    if (i > start && i + 1 < len && buf[i] == ' ' && buf[i + 1] == '/')
        return fail(h, 405, "method not allowed");
    return fail(h, 400, "malformed request line");
}

/* What http-parser lets through but we refuse. */
static int check(const char *buf, struct req_head *h)
{
    int nhost = 0, nte = 0, ncl = 0;
    while (*buf == '\r' || *buf == '\n')
        buf++;
    const char *method = http_method_str((enum http_method)h->method);
    size_t ml = strlen(method);
    /* exactly "METHOD SP target SP HTTP/x.y" */
    if (h->target.p != buf + ml + 1 || h->target.p[h->target.n] != ' ' ||
        h->target.p[h->target.n + 1] != 'H')
        return fail(h, 400, "malformed request line");
    for (size_t i = 0; i < h->nheaders; i++) {
        struct req_header *hd = &h->headers[i];
        if (hd->name.n == 0)
            return fail(h, 400, "empty header name");
        for (size_t k = 0; k < hd->name.n; k++)
            if (!is_tchar((unsigned char)hd->name.p[k]))
                return fail(h, 400, "bad character in header name");
        for (size_t k = 0; k < hd->value.n; k++) {
            unsigned char c = (unsigned char)hd->value.p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail(h, 400, "control character in header value");
        }
        if (req_slice_eq(hd->name, "host"))
            nhost++;
        else if (req_slice_eq(hd->name, "content-length"))
            ncl++;
        else if (req_slice_eq(hd->name, "transfer-encoding")) {
            nte++;
            if (!req_slice_eq(hd->value, "chunked"))
                return fail(h, 501, "unsupported transfer-encoding");
        }
    }
    if (h->major != 1)
        return fail(h, 505, "http version not supported");
    if (nte > 1 || ncl > 1)
        return fail(h, 400, "repeated framing header");
    if (nte && ncl)
        return fail(h, 400, "content-length with transfer-encoding");
    if (nte && h->minor == 0)
        return fail(h, 400, "transfer-encoding in http/1.0");
    if (nhost > 1)
        return fail(h, 400, "repeated host header");
    if (nhost == 0 && h->minor >= 1)
        return fail(h, 400, "missing host header");
    if (h->target.n == 0 || h->target.p[0] != '/')
        return fail(h, 400, "request target not in origin form");
    if (h->method == HTTP_CONNECT)
        return fail(h, 405, "method not allowed");
    return 0;
}

int req_head_parse(const char *buf, size_t len, struct req_head *h)
{
    memset(h, 0, offsetof(struct req_head, headers));
    struct parse_ctx x = {.h = h};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &x;
    size_t n = http_parser_execute(&p, &settings, buf, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    if (x.status)
        return x.status;
    if (e != HPE_OK) {
        if (e == HPE_INVALID_METHOD)
            return bad_method(buf, len, h);
        if (e == HPE_HEADER_OVERFLOW)
            return fail(h, 431, "header too large");
        if (e == HPE_INVALID_TRANSFER_ENCODING)
            return fail(h, 501, "unsupported transfer-encoding");
        if (e == HPE_INVALID_VERSION)
            return fail(h, 505, "http version not supported");
        return fail(h, 400, http_errno_description(e));
    }
    /* buf ends with the head, so the parser stops right after it, in the
     * body state (which we never feed it) or ready for the next message */
    if (!x.head_done || n != len || !h->target.p)
        return fail(h, 400, "malformed head");
    return check(buf, h);
}

void req_body_init(struct h1body *b, const struct req_head *h)
{
    if (h->flags & REQ_CHUNKED)
        h1body_init_chunked(b);
    else
        h1body_init_length(b, (h->flags & REQ_HAS_LENGTH) ? h->length : 0);
}

/* Reads decimal digits at *pp; saturates at UINT64_MAX. Returns false when
 * there are none. */
static bool digits(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        p++;
    }
    if (p == *pp)
        return false;
    *pp = p;
    *out = v;
    return true;
}

enum req_range req_range_parse(struct req_slice v, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = v.p, *end = v.p + v.n;
    if (v.n < 6 || strncasecmp(p, "bytes=", 6))
        return REQ_RANGE_NONE;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    uint64_t a = 0, b = UINT64_MAX;
    bool suffix = false;
    if (p < end && *p == '-') {
        suffix = true;
        p++;
        if (!digits(&p, end, &b))
            return REQ_RANGE_NONE;
    } else {
        if (!digits(&p, end, &a) || p == end || *p++ != '-')
            return REQ_RANGE_NONE;
        if (p < end && *p >= '0' && *p <= '9')
            digits(&p, end, &b);
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p != end) /* a second range, or garbage */
        return REQ_RANGE_NONE;
    if (suffix) {
        if (b == 0 || size == 0)
            return REQ_RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return REQ_RANGE_OK;
    }
    if (b < a)
        return REQ_RANGE_NONE;
    if (a >= size)
        return REQ_RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return REQ_RANGE_OK;
}
