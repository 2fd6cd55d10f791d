#include "render.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"

static const char *const stream_names[LOG_NSTREAMS] = {"stdout", "stderr", "init"};

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    uint32_t cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void render_json_string(struct strbuf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* worst case: every byte becomes \u00XX */
    strbuf_grow(out, len * 6 + 2);
    char *o = out->buf + out->len;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    *o++ = '"';
    while (p < end) {
        /* copy the plain run in one go */
        const unsigned char *q = p;
        while (q < end && *q >= 0x20 && *q != '"' && *q != '\\' && *q < 0x80)
            q++;
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        p = q;
        if (p >= end)
            break;
        unsigned char c = *p;
        if (c >= 0x80) {
            size_t n = utf8_seq(p, end);
            if (n) {
                memcpy(o, p, n);
                o += n;
                p += n;
            } else { /* U+FFFD */
                *o++ = (char)0xef;
                *o++ = (char)0xbf;
                *o++ = (char)0xbd;
                p++;
            }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        p++;
    }
    *o++ = '"';
    out->len = (size_t)(o - out->buf);
    out->buf[out->len] = '\0';
}

static void add_lit(struct strbuf *out, const char *s)
{
    strbuf_add(out, s, strlen(s));
}

void render_message(struct strbuf *out, const struct logline *l, bool sse)
{
    const struct logjob *j = l->job;
    if (sse)
        add_lit(out, "data: {\"event\":\"message\",\"data\":");
    add_lit(out, "{\"host_id\":");
    render_json_string(out, j->host_id, strlen(j->host_id));
    add_lit(out, ",\"job_id\":");
    render_json_string(out, j->id, strlen(j->id));
    add_lit(out, ",\"msg\":");
    render_json_string(out, logline_msg(l), l->msg_len);
    if (j->type[0]) {
        add_lit(out, ",\"process_type\":");
        render_json_string(out, j->type, strlen(j->type));
    }
    add_lit(out, (l->flags & LOGLINE_SYSTEM) ? ",\"source\":\"host\",\"stream\":\""
                                             : ",\"source\":\"app\",\"stream\":\"");
    add_lit(out, stream_names[l->stream < LOG_NSTREAMS ? l->stream : 0]);
    add_lit(out, "\",\"timestamp\":");
    render_json_string(out, logline_ts(l), l->ts_len);
    add_lit(out, sse ? "}}\n\n" : "}\n");
}

void render_notice(struct strbuf *out, const char *app_id, const char *msg, bool sse)
{
    (void)app_id;
    if (sse)
        add_lit(out, "data: {\"event\":\"message\",\"data\":");
    add_lit(out, "{\"host_id\":\"\",\"job_id\":\"\",\"msg\":");
    render_json_string(out, msg, strlen(msg));
    add_lit(out, ",\"source\":\"logaggregator\",\"stream\":\"stderr\",\"timestamp\":\"");
    char ts[40];
    time_now_rfc3339(ts);
    add_lit(out, ts);
    add_lit(out, sse ? "\"}}\n\n" : "\"}\n");
}

/* Appends a header field of at most max printable ASCII bytes; "-" if empty. */
static void add_field(struct strbuf *out, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n) {
        strbuf_addch(out, '-');
        return;
    }
    if (n > max)
        n = max;
    strbuf_grow(out, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out->buf[out->len++] = c > 32 && c < 127 ? (char)c : '_';
    }
    out->buf[out->len] = '\0';
}

/* An SD-PARAM value: '"', '\' and ']' are escaped (RFC 5424 6.3.3). */
static void add_sd_value(struct strbuf *out, const char *name, const char *v)
{
    strbuf_addf(out, " %s=\"", name);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\' || *v == ']')
            strbuf_addch(out, '\\');
        strbuf_addch(out, *v);
    }
    strbuf_addch(out, '"');
}

void render_syslog(struct strbuf *out, const struct logline *l, const struct syslog_opts *o)
{
    const struct logjob *j = l->job;
    size_t start = out->len;
    if (o->framing != SYSLOG_NEWLINE)
        add_lit(out, "0000000000 "); /* room for the length, fixed below */
    size_t msg_start = out->len;
    int severity = l->stream == LOG_STDERR ? 3 : 6;
    strbuf_addf(out, "<%d>1 ", 1 * 8 + severity);
    if (l->ts_len)
        add_field(out, logline_ts(l), 48);
    else
        strbuf_addch(out, '-');
    strbuf_addch(out, ' ');
    add_field(out, j->host_id, 255);
    strbuf_addch(out, ' ');
    add_field(out, o->use_ids || !j->app_name[0] ? j->app_id : j->app_name, 48);
    strbuf_addch(out, ' ');
    char procid[300];
    snprintf(procid, sizeof(procid), "%s%s%s", j->type, j->type[0] ? "." : "", j->id);
    add_field(out, procid, 128);
    add_lit(out, " - ");
    if (o->structured_data) {
        add_lit(out, "[flynn@32473");
        add_sd_value(out, "app_id", j->app_id);
        if (j->app_name[0])
            add_sd_value(out, "app_name", j->app_name);
        if (j->release[0])
            add_sd_value(out, "release", j->release);
        if (j->type[0])
            add_sd_value(out, "type", j->type);
        add_sd_value(out, "job", j->id);
        add_sd_value(out, "stream", stream_names[l->stream < LOG_NSTREAMS ? l->stream : 0]);
        add_lit(out, "]");
    } else {
        strbuf_addch(out, '-');
    }
    strbuf_addch(out, ' ');
    if (o->prefix)
        add_lit(out, o->prefix);
    strbuf_add(out, logline_msg(l), l->msg_len);
    if (o->framing != SYSLOG_OCTET_COUNTED)
        strbuf_addch(out, '\n');
    if (o->framing != SYSLOG_NEWLINE) {
        /* octet count of the message, then drop the unused room before it */
        char num[16];
        int nl = snprintf(num, sizeof(num), "%zu ", out->len - msg_start);
        size_t room = msg_start - start;
        memmove(out->buf + start + (size_t)nl, out->buf + msg_start, out->len - msg_start);
        memcpy(out->buf + start, num, (size_t)nl);
        out->len -= room - (size_t)nl;
        out->buf[out->len] = '\0';
    }
}

bool render_syslog_framing(const char *name, enum syslog_framing *out)
{
    if (!name || !*name || !strcmp(name, "rfc6587"))
        *out = SYSLOG_OCTET_COUNTED;
    else if (!strcmp(name, "newline"))
        *out = SYSLOG_NEWLINE;
    else if (!strcmp(name, "prefixed_newline"))
        *out = SYSLOG_PREFIXED_NEWLINE;
    else
        return false;
    return true;
}
