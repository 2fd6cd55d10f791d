/* log: an app's log lines (GET /apps/APP/log, NDJSON; docs/flynn-api.md §6). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"
#include "xalloc.h"

struct log_out {
    int raw, split_stderr, init;
};


static int on_line(const char *line, size_t len, void *arg)
{
    struct log_out *o = arg;
    json_error_t je;
    json_t *m = json_loadb(line, len, 0, &je);
    if (!m)
        return 0;
    const char *stream = json_string_value(json_object_get(m, "stream"));
    FILE *out = NULL;
    if (stream && !strcmp(stream, "stdout"))
        out = stdout;
    else if (stream && !strcmp(stream, "stderr"))
        out = o->split_stderr ? stderr : stdout;
    else if (stream && !strcmp(stream, "init"))
        out = o->init ? stderr : NULL;
    const char *msg = json_string_value(json_object_get(m, "msg"));
    if (out && o->raw) {
        fprintf(out, "%s\n", msg ? msg : "");
    } else if (out) {
        const char *ts = json_string_value(json_object_get(m, "timestamp"));
        cleanup_free char *t = units_micro_time(ts ? ts : "0001-01-01T00:00:00Z");
        const char *src = json_string_value(json_object_get(m, "source"));
        const char *pt = json_string_value(json_object_get(m, "process_type"));
        const char *job = json_string_value(json_object_get(m, "job_id"));
        fprintf(out, "%s %s[%s.%s]: %s\n", t, src ? src : "", pt ? pt : "", job ? job : "",
                msg ? msg : "");
    }
    if (out)
        fflush(out);
    json_decref(m);
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
                         opts_has(&o, "init")};
    ret = client_lines(c, path, on_line, &lo, err);
    free(path);
out:
    strbuf_release(&q);
    opts_release(&o);
    return ret;
}
