/* log: an app's log lines (GET /apps/APP/log, NDJSON; docs/flynn-api.md §6). */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonflat.h"
#include "strbuf.h"
#include "units.h"
#include "xalloc.h"

struct log_out {
    int raw, split_stderr, init;
    struct strbuf dec; /* decoded strings of the current line */
};

/* A string member of the line: a slice of it, decoded into o->dec when
 * escaped (then valid until the next line). */
struct field {
    const char *s;
    size_t len;
};

static bool get_field(struct log_out *o, const struct jsonflat_member *m, int n, const char *key,
                      struct field *out)
{
    const struct jsonflat_member *f = jsonflat_get(m, n, key);
    *out = (struct field){"", 0};
    if (!f || f->type != JF_STRING)
        return false;
    if (!f->escaped) {
        *out = (struct field){f->val, f->val_len};
        return true;
    }
    /* decoded strings are appended; the slices must not move: room first */
    strbuf_grow(&o->dec, f->val_len + 1);
    long dl = jsonflat_unescape(f->val, f->val_len, o->dec.buf + o->dec.len);
    if (dl < 0)
        return false;
    *out = (struct field){o->dec.buf + o->dec.len, (size_t)dl};
    o->dec.len += (size_t)dl;
    return true;
}

static bool field_is(const struct field *f, const char *s)
{
    return f->len == strlen(s) && !memcmp(f->s, s, f->len);
}

/* Prints one of Flynn's log messages: TIMESTAMP SOURCE[TYPE.JOB]: MSG. The
 * lines are flat JSON objects, read without building a tree: following a
 * busy app prints some 100k lines a second. */
static int on_line(const char *line, size_t len, void *arg)
{
    struct log_out *o = arg;
    if (!line) { /* the end of what arrived: out it goes (follow shows lines at once) */
        fflush(stdout);
        fflush(stderr);
        return 0;
    }
    struct jsonflat_member m[16];
    int n = jsonflat_parse(line, len, m, ARRAY_SIZE(m));
    if (n < 0)
        return 0;
    /* every field is decoded before any is used: growing dec moves it */
    size_t need = 0;
    for (int i = 0; i < n; i++)
        if (m[i].escaped)
            need += m[i].val_len + 1;
    strbuf_reset(&o->dec);
    strbuf_grow(&o->dec, need);
    struct field stream, msg, ts, src, pt, job;
    get_field(o, m, n, "stream", &stream);
    FILE *out = NULL;
    if (field_is(&stream, "stdout"))
        out = stdout;
    else if (field_is(&stream, "stderr"))
        out = o->split_stderr ? stderr : stdout;
    else if (field_is(&stream, "init"))
        out = o->init ? stderr : NULL;
    if (!out)
        return 0;
    get_field(o, m, n, "msg", &msg);
    if (!o->raw) {
        get_field(o, m, n, "timestamp", &ts);
        get_field(o, m, n, "source", &src);
        get_field(o, m, n, "process_type", &pt);
        get_field(o, m, n, "job_id", &job);
        char tbuf[64];
        snprintf(tbuf, sizeof(tbuf), "%.*s", (int)ts.len, ts.len ? ts.s : "0001-01-01T00:00:00Z");
        cleanup_free char *t = units_micro_time(tbuf);
        fprintf(out, "%s %.*s[%.*s.%.*s]: ", t, (int)src.len, src.s, (int)pt.len, pt.s,
                (int)job.len, job.s);
    }
    fwrite(msg.s, 1, msg.len, out);
    fputc('\n', out);
    return 0;
}

int cmd_log(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {
        {'f', "follow", 0},     {'j', "job", 1},          {'n', "number", 1}, {'r', "raw-output", 0},
        {'s', "split-stderr", 0}, {'t', "process-type", 1}, {'i', "init", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 0) < 0)
        return CLI_USAGE;
    int ret = -1;
    struct strbuf q = STRBUF_INIT;
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    /* url.Values.Encode: keys sorted */
    if (opts_has(&o, "follow"))
        strbuf_adds(&q, "&follow=true");
    const char *job = opts_get(&o, "job", "");
    if (*job) {
        char *e = client_escape(job);
        strbuf_addf(&q, "&job_id=%s", e);
        free(e);
    }
    const char *n = opts_get(&o, "number", NULL);
    if (n) {
        char *end;
        long lines = strtol(n, &end, 10);
        if (!*n || *end) {
            char *qn = go_quote(n);
            err_makex(err, EINVAL, "strconv.Atoi: parsing %s: invalid syntax", qn);
            free(qn);
            goto out;
        }
        if (lines >= 0)
            strbuf_addf(&q, "&lines=%ld", lines);
    }
    const char *pt = opts_get(&o, "process-type", NULL);
    if (pt) {
        char *e = client_escape(pt);
        strbuf_addf(&q, "&process_type=%s", e);
        free(e);
    }
    strbuf_addf(&q, "&stream_types=stdout%%2Cstderr%s", opts_has(&o, "init") ? "%2Cinit" : "");
    char *ea = client_escape(app);
    char *path = xasprintf("/apps/%s/log?%s", ea, q.buf + 1);
    free(ea);
    struct log_out lo = {opts_has(&o, "raw-output"), opts_has(&o, "split-stderr"),
                         opts_has(&o, "init"), STRBUF_INIT};
    /* lines go out in big writes, flushed when a piece of the stream ends */
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
    ret = client_lines(c, path, on_line, &lo, err);
    fflush(stdout);
    strbuf_release(&lo.dec);
    free(path);
out:
    strbuf_release(&q);
    opts_release(&o);
    return ret;
}
