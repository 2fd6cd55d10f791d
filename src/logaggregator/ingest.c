#include "ingest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "strbuf.h"

#define MAX_MEMBERS 16

/* Decoded string member into sb (reset first); "" when absent or not a string. */
static const char *member_str(const struct jsonflat_member *m, int n, const char *key,
                              struct strbuf *sb)
{
    strbuf_reset(sb);
    const struct jsonflat_member *f = jsonflat_get(m, n, key);
    if (!f || f->type != JF_STRING)
        return sb->buf;
    strbuf_grow(sb, f->val_len);
    long dl = jsonflat_unescape(f->val, f->val_len, sb->buf);
    if (dl < 0)
        dl = 0;
    sb->len = (size_t)dl;
    sb->buf[sb->len] = '\0';
    return sb->buf;
}

static enum log_stream stream_of(const struct jsonflat_member *f, bool *ok)
{
    *ok = true;
    if (!f || f->type != JF_STRING)
        return LOG_STDOUT;
    if (f->val_len == 6 && !memcmp(f->val, "stdout", 6))
        return LOG_STDOUT;
    if (f->val_len == 6 && !memcmp(f->val, "stderr", 6))
        return LOG_STDERR;
    if (f->val_len == 4 && !memcmp(f->val, "init", 4))
        return LOG_INIT;
    *ok = false;
    return LOG_STDOUT;
}

struct hdr {
    struct strbuf id, app, app_name, release, type, host;
};

int ingest_batch(struct logbuf *b, const char *body, size_t len, const struct ingest_cbs *cbs,
                 struct ingest_result *res, struct err **err)
{
    *res = (struct ingest_result){0};
    struct jsonflat_member m[MAX_MEMBERS];
    struct hdr h = {STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT};
    struct strbuf msgbuf = STRBUF_INIT;
    struct logjob *job = NULL;
    bool have_header = false, skip_job = false;
    int64_t seq = -1;
    int ret = 0;
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *line = p;
        p = nl ? nl + 1 : end;
        if (le == line || (le - line == 1 && *line == '\r'))
            continue;
        int n = jsonflat_parse(line, (size_t)(le - line), m, MAX_MEMBERS);
        if (n < 0) {
            res->malformed++;
            continue;
        }
        const struct jsonflat_member *f;
        if ((f = jsonflat_get(m, n, "job"))) {
            logbuf_job_release(b, job);
            job = NULL;
            have_header = true;
            struct logjob_meta meta = {
                .id = member_str(m, n, "job", &h.id),
                .app_id = member_str(m, n, "app", &h.app),
                .app_name = member_str(m, n, "app_name", &h.app_name),
                .release = member_str(m, n, "release", &h.release),
                .type = member_str(m, n, "type", &h.type),
                .host_id = member_str(m, n, "host", &h.host),
            };
            skip_job = !*meta.id || !*meta.app_id;
            if (!skip_job)
                job = logbuf_job(b, &meta);
            const struct jsonflat_member *s = jsonflat_get(m, n, "seq");
            seq = -1;
            if (s && s->type == JF_NUMBER) {
                char num[32];
                size_t nl2 = s->val_len < sizeof(num) - 1 ? s->val_len : sizeof(num) - 1;
                memcpy(num, s->val, nl2);
                num[nl2] = '\0';
                char *e;
                long long v = strtoll(num, &e, 10);
                if (!*e && v >= 0)
                    seq = v;
            }
            continue;
        }
        const struct jsonflat_member *msg = jsonflat_get(m, n, "msg");
        if (!msg || msg->type != JF_STRING) {
            if (cbs && cbs->on_other && cbs->on_other(m, n, cbs->arg) >= 0)
                continue;
            res->malformed++;
            continue;
        }
        if (!have_header) {
            ret = err_makex(err, EINVAL, "a batch must start with a job header");
            break;
        }
        int64_t this_seq = seq;
        if (seq >= 0)
            seq++;
        bool ok;
        enum log_stream st = stream_of(jsonflat_get(m, n, "stream"), &ok);
        if (skip_job || !ok) {
            res->malformed++;
            continue;
        }
        const char *mtext = msg->val;
        size_t mlen = msg->val_len;
        if (msg->escaped) {
            strbuf_grow(&msgbuf, msg->val_len);
            long dl = jsonflat_unescape(msg->val, msg->val_len, msgbuf.buf);
            if (dl < 0) {
                res->malformed++;
                continue;
            }
            mtext = msgbuf.buf;
            mlen = (size_t)dl;
        }
        const struct jsonflat_member *t = jsonflat_get(m, n, "time");
        char now[40];
        const char *ts;
        size_t tl;
        int64_t ts_us;
        if (t && t->type == JF_STRING && !t->escaped &&
            jsonflat_time_us(t->val, t->val_len, &ts_us)) {
            ts = t->val;
            tl = t->val_len;
        } else {
            time_now_rfc3339(now);
            ts = now;
            tl = strlen(now);
            ts_us = time_now_us();
        }
        const struct jsonflat_member *sys = jsonflat_get(m, n, "system");
        unsigned flags = sys && sys->type == JF_TRUE ? LOGLINE_SYSTEM : 0;
        struct logline *l = logbuf_add(b, job, ts, tl, ts_us, st, flags, this_seq, mtext, mlen);
        if (!l) {
            res->duplicates++;
            continue;
        }
        res->lines++;
        if (cbs && cbs->on_line)
            cbs->on_line(l, cbs->arg);
    }
    logbuf_job_release(b, job);
    strbuf_release(&h.id);
    strbuf_release(&h.app);
    strbuf_release(&h.app_name);
    strbuf_release(&h.release);
    strbuf_release(&h.type);
    strbuf_release(&h.host);
    strbuf_release(&msgbuf);
    return ret;
}
