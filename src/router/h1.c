#include "h1.h"

#include <string.h>
#include <strings.h>

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct h1_msg *m = p->data;
    if (m->head_done || !m->head)
        return 0;
    if (m->head->url.p) { /* only one run in a contiguous head */
        m->head->url.n = (size_t)(at + n - m->head->url.p);
        return 0;
    }
    m->head->url = (struct h1_slice){at, n};
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t n)
{
    struct h1_msg *m = p->data;
    if (!m->head_done && m->head)
        m->head->reason = (struct h1_slice){at, n};
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    struct h1_msg *m = p->data;
    if (m->head_done || !m->head) /* trailers: forwarded verbatim, not parsed */
        return 0;
    struct h1_head *h = m->head;
    if (m->last_cb == 1) { /* cannot happen with a contiguous head */
        h->headers[h->nheaders - 1].name.n += n;
        return 0;
    }
    if (h->nheaders == H1_MAX_HEADERS) {
        m->error_status = 431;
        m->error = "too many header fields";
        return 1;
    }
    struct h1_header *hd = &h->headers[h->nheaders++];
    hd->name = (struct h1_slice){at, n};
    hd->value = (struct h1_slice){at + n, 0};
    m->last_cb = 1;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    struct h1_msg *m = p->data;
    if (m->head_done || !m->head)
        return 0;
    if (m->last_cb != 1) {
        m->error_status = 400;
        m->error = "folded header line";
        return 1;
    }
    struct h1_header *hd = &m->head->headers[m->head->nheaders - 1];
    while (n && (at[n - 1] == ' ' || at[n - 1] == '\t'))
        n--;
    hd->value = (struct h1_slice){at, n};
    m->last_cb = 2;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct h1_msg *m = p->data;
    if (m->head_done)
        return 0;
    m->head_done = true;
    struct h1_head *h = m->head;
    if (h) {
        h->major = p->http_major;
        h->minor = p->http_minor;
        h->status = (int)p->status_code;
        h->method_id = (int)p->method;
        h->flags = 0;
        if (p->flags & F_CHUNKED)
            h->flags |= H1_CHUNKED;
        if (p->flags & F_CONTENTLENGTH) {
            h->flags |= H1_HAS_CL;
            h->length = p->content_length;
        }
        if (http_should_keep_alive(p))
            h->flags |= H1_KEEP_ALIVE;
        if (p->upgrade)
            h->flags |= H1_UPGRADE;
        if (p->type == HTTP_REQUEST) {
            if ((h->flags & H1_CHUNKED) || ((h->flags & H1_HAS_CL) && h->length > 0))
                h->flags |= H1_HAS_BODY;
        } else {
            int s = h->status;
            bool none = m->skip_body || s / 100 == 1 || s == 204 || s == 304;
            if (!none) {
                if (h->flags & H1_CHUNKED)
                    h->flags |= H1_HAS_BODY;
                else if (h->flags & H1_HAS_CL)
                    h->flags |= h->length > 0 ? H1_HAS_BODY : 0;
                else
                    h->flags |= H1_HAS_BODY | H1_BODY_TO_EOF;
            }
        }
    }
    return m->skip_body ? 1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct h1_msg *m = p->data;
    m->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void h1_msg_init(struct h1_msg *m, enum h1_type type)
{
    memset(m, 0, sizeof(*m));
    http_parser_init(&m->p, (enum http_parser_type)type);
    m->p.data = m;
}

void h1_msg_set_skip_body(struct h1_msg *m)
{
    m->skip_body = true;
}

size_t h1_head_end(const char *buf, size_t len)
{
    return h1_head_end_from(buf, len, 0);
}

size_t h1_head_end_from(const char *buf, size_t len, size_t from)
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
        if (nl + 2 >= end && nl + 1 < end && nl[1] == '\r')
            return 0; /* "\n\r" at the end: wait for the rest */
        p = nl + 1;
    }
    return 0;
}

bool h1_slice_eq(struct h1_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && !strncasecmp(s.p, lit, n);
}

const struct h1_header *h1_head_find(const struct h1_head *h, const char *name)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (h1_slice_eq(h->headers[i].name, name))
            return &h->headers[i];
    return NULL;
}

bool h1_list_has(struct h1_slice v, const char *token)
{
    size_t tn = strlen(token);
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tn && !strncasecmp(s, token, tn))
            return true;
    }
    return false;
}

static int fail(struct h1_msg *m, int status, const char *why)
{
    m->error_status = status;
    m->error = why;
    return status;
}

/* Extra checks on a request head, beyond what http-parser enforces:
 * what a front proxy must refuse so that no backend sees an ambiguous
 * message (request smuggling). */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int check_request(struct h1_msg *m, const char *buf, struct h1_head *h)
{
    int nhost = 0, nte = 0, ncl = 0;
    /* exactly "METHOD SP target SP HTTP/x.y": no extra spaces to disagree on */
    while (*buf == '\r' || *buf == '\n')
        buf++;
    if (h->url.p != buf + h->method.n + 1 || h->url.p[h->url.n] != ' ' ||
        h->url.p[h->url.n + 1] != 'H')
        return fail(m, 400, "malformed request line");
    for (size_t i = 0; i < h->nheaders; i++) {
        struct h1_header *hd = &h->headers[i];
        if (hd->name.n == 0)
            return fail(m, 400, "empty header name");
        for (size_t k = 0; k < hd->name.n; k++)
            if (!is_tchar((unsigned char)hd->name.p[k]))
                return fail(m, 400, "bad character in header name");
        if (h1_slice_eq(hd->name, "host"))
            nhost++;
        else if (h1_slice_eq(hd->name, "transfer-encoding")) {
            nte++;
            if (!h1_slice_eq(hd->value, "chunked"))
                return fail(m, 400, "unsupported transfer-encoding");
        } else if (h1_slice_eq(hd->name, "content-length"))
            ncl++;
        for (size_t k = 0; k < hd->value.n; k++) {
            unsigned char c = (unsigned char)hd->value.p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail(m, 400, "control character in header value");
        }
    }
    if (nhost > 1)
        return fail(m, 400, "repeated host header");
    if (nhost == 0 && h->major == 1 && h->minor >= 1)
        return fail(m, 400, "missing host header");
    if (nte > 1 || ncl > 1)
        return fail(m, 400, "repeated framing header");
    if (nte && ncl)
        return fail(m, 400, "content-length with transfer-encoding");
    if (nte && !(h->major == 1 && h->minor >= 1))
        return fail(m, 400, "transfer-encoding in http/1.0");
    if (h->method_id == HTTP_CONNECT)
        return fail(m, 405, "connect not supported");
    if (h->url.n == 0)
        return fail(m, 400, "empty request target");
    if (h->url.p[0] != '/' && !(h->url.n == 1 && h->url.p[0] == '*'))
        return fail(m, 400, "request target not in origin form");
    if (h->major != 1)
        return fail(m, 505, "http version not supported");
    return 0;
}

int h1_msg_head(struct h1_msg *m, const char *buf, size_t len, struct h1_head *head)
{
    head->nheaders = 0;
    head->method = head->url = head->reason = (struct h1_slice){NULL, 0};
    head->flags = 0;
    head->length = 0;
    m->head = head;
    m->last_cb = 0;
    size_t n = http_parser_execute(&m->p, &settings, buf, len);
    m->head = NULL;
    enum http_errno e = HTTP_PARSER_ERRNO(&m->p);
    if (m->error_status)
        return m->error_status;
    if (e != HPE_OK && e != HPE_PAUSED) {
        if (e == HPE_INVALID_METHOD)
            return fail(m, 400, "invalid method");
        if (e == HPE_HEADER_OVERFLOW)
            return fail(m, 431, "header too large");
        return fail(m, 400, http_errno_description(e));
    }
    if (!m->head_done || n != len)
        return fail(m, 400, "malformed head");
    if (!(head->flags & H1_HAS_BODY))
        h1body_init_length(&m->body, 0);
    else if (head->flags & H1_CHUNKED)
        h1body_init_chunked(&m->body);
    else if (head->flags & H1_BODY_TO_EOF)
        h1body_init_eof(&m->body);
    else
        h1body_init_length(&m->body, head->length);
    m->done = m->body.state == H1B_DONE;
    if (m->p.type == HTTP_RESPONSE) {
        for (size_t i = 0; i < head->nheaders; i++)
            for (size_t k = 0; k < head->headers[i].name.n; k++)
                if (!is_tchar((unsigned char)head->headers[i].name.p[k]))
                    return fail(m, 400, "bad character in header name");
    }
    if (m->p.type == HTTP_REQUEST) {
        const char *ms = http_method_str((enum http_method)m->p.method);
        head->method = (struct h1_slice){ms, strlen(ms)};
        return check_request(m, buf, head);
    }
    return 0;
}

/* The strict body decoder: returns bytes of data[0..len) that belong to
 * the message; sets H1B_DONE at its end or H1B_FAILED on bad framing. */
size_t h1_msg_body(struct h1_msg *m, const char *data, size_t len)
{
    return h1_msg_body_data(m, data, len, NULL, NULL);
}

size_t h1_msg_body_data(struct h1_msg *m, const char *data, size_t len, h1body_sink sink, void *arg)
{
    size_t used = h1body_feed(&m->body, data, len, sink, arg);
    if (m->body.state == H1B_DONE)
        m->done = true;
    return used;
}

bool h1_msg_failed(const struct h1_msg *m)
{
    return m->body.state == H1B_FAILED || m->body.state == H1B_ABORTED;
}
