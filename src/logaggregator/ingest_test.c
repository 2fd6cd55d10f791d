#include "ingest.h"

#include <string.h>

#include "test.h"

static int n_lines;
static void count(struct logline *l, void *arg)
{
    n_lines++;
}

static int ingest(struct logbuf *b, const char *body, struct ingest_result *res)
{
    struct err *e = NULL;
    struct ingest_cbs cbs = {.on_line = count};
    int rc = ingest_batch(b, body, strlen(body), &cbs, res, &e);
    err_free(e);
    return rc;
}

int main(void)
{
    struct logbuf *b = logbuf_new(NULL);
    struct ingest_result r;
    const char *batch =
        "{\"job\":\"h0-1\",\"app\":\"A\",\"app_name\":\"a\",\"release\":\"R\",\"type\":\"web\","
        "\"host\":\"h0\",\"seq\":5}\n"
        "{\"time\":\"2021-01-02T03:04:05.1Z\",\"stream\":\"stdout\",\"msg\":\"one\"}\n"
        "{\"time\":\"2021-01-02T03:04:05.2Z\",\"stream\":\"stderr\",\"msg\":\"t\\u00e9\\n\"}\n"
        "not json\n"
        "\n"
        "{\"job\":\"h0-2\",\"app\":\"A\",\"host\":\"h0\"}\n"
        "{\"time\":\"bogus\",\"stream\":\"stdout\",\"msg\":\"no time\"}\n"
        "{\"time\":\"2021-01-02T03:04:05Z\",\"stream\":\"stderr\",\"msg\":\"bye\",\"system\":true}"
        "\n"
        "{\"time\":\"2021-01-02T03:04:05Z\",\"stream\":\"weird\",\"msg\":\"?\"}\n";
    is_int(ingest(b, batch, &r), 0, "batch accepted");
    is_int(r.lines, 4, "4 lines stored");
    is_int(r.malformed, 2, "bad JSON and unknown stream are malformed");
    is_int(n_lines, 4, "callback per line");
    struct logapp *a = logbuf_app(b, "A", false);
    ok(a && logapp_count(a) == 4, "app A has them");
    struct logline *l = logapp_line(a, 1);
    is_str(logline_msg(l), "t\xc3\xa9\n", "message decoded");
    is_int(l->stream, LOG_STDERR, "stderr");
    is_int(l->seq, 6, "second line has seq 6");
    is_str(l->job->type, "web", "type from the header");
    is_str(l->job->release, "R", "release from the header");
    is_int(l->ts_us, 1609556645200000LL, "time parsed");
    ok(logapp_line(a, 2)->ts_len > 0, "a bad time is replaced by now");
    ok(logapp_line(a, 3)->flags & LOGLINE_SYSTEM, "system flag");
    /* the same batch again: the first job's lines are duplicates */
    is_int(ingest(b, batch, &r), 0, "batch accepted again");
    is_int(r.duplicates, 2, "seq'd lines skipped");
    is_int(r.lines, 2, "lines without seq stored again");
    /* a batch must start with a header */
    is_int(ingest(b, "{\"time\":\"x\",\"stream\":\"stdout\",\"msg\":\"x\"}\n", &r), -1,
           "lines without a header rejected");
    /* no app: skipped */
    is_int(ingest(b, "{\"job\":\"h0-3\"}\n{\"stream\":\"stdout\",\"msg\":\"x\"}\n", &r), 0,
           "header without app");
    is_int(r.malformed, 1, "its lines are skipped");
    is_int(
        ingest(b, "{\"job\":\"h0-4\",\"app\":\"B\"}\n{\"stream\":\"stdout\",\"msg\":\"last\"}", &r),
        0, "no trailing newline");
    is_int(r.lines, 1, "last line without newline stored");
    logbuf_free(b);
    return test_done();
}
