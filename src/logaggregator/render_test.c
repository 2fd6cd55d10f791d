#include "render.h"

#include <string.h>

#include "test.h"

static struct logline *line(struct logbuf *b, struct logjob *j, enum log_stream st, unsigned flags,
                            const char *msg, size_t len)
{
    const char *ts = "2021-01-02T03:04:05.123456Z";
    return logbuf_add(b, j, ts, strlen(ts), 0, st, flags, -1, msg, len);
}

static void test_json(void)
{
    struct strbuf sb = STRBUF_INIT;
    render_json_string(&sb, "a\"b\\c\n\x01\x7f", 8);
    is_str(sb.buf, "\"a\\\"b\\\\c\\n\\u0001\x7f\"", "escapes");
    strbuf_reset(&sb);
    render_json_string(&sb, "\xc3\xa9\xff\xe2\x82", 5);
    is_str(sb.buf, "\"\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", "bad UTF-8 becomes U+FFFD");
    strbuf_reset(&sb);
    render_json_string(&sb, "\xf0\x9f\x98\x80", 4);
    is_str(sb.buf, "\"\xf0\x9f\x98\x80\"", "4-byte UTF-8 kept");
    strbuf_reset(&sb);
    render_json_string(&sb, "\xed\xa0\x80", 3);
    is_str(sb.buf, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", "encoded surrogate rejected");
    strbuf_release(&sb);
}

static void test_message(void)
{
    struct logbuf *b = logbuf_new(NULL);
    struct logjob_meta m = {.id = "host0-1",
                            .app_id = "A",
                            .app_name = "web app",
                            .type = "web",
                            .host_id = "host0",
                            .release = "R"};
    struct logjob *j = logbuf_job(b, &m);
    struct strbuf sb = STRBUF_INIT;
    render_message(&sb, line(b, j, LOG_STDOUT, 0, "hello", 5), false);
    is_str(
        sb.buf,
        "{\"host_id\":\"host0\",\"job_id\":\"host0-1\",\"msg\":\"hello\",\"process_type\":\"web\","
        "\"source\":\"app\",\"stream\":\"stdout\",\"timestamp\":\"2021-01-02T03:04:05.123456Z\"}\n",
        "Flynn's message");
    strbuf_reset(&sb);
    render_message(&sb, line(b, j, LOG_STDERR, LOGLINE_SYSTEM, "job exited with status 3", 24),
                   true);
    is_str(sb.buf,
           "data: {\"event\":\"message\",\"data\":{\"host_id\":\"host0\",\"job_id\":\"host0-1\","
           "\"msg\":\"job exited with status 3\",\"process_type\":\"web\",\"source\":\"host\","
           "\"stream\":\"stderr\",\"timestamp\":\"2021-01-02T03:04:05.123456Z\"}}\n\n",
           "SSE form of a host line");
    struct logjob_meta m2 = {.id = "host0-2", .app_id = "A", .host_id = "host0"};
    struct logjob *j2 = logbuf_job(b, &m2);
    strbuf_reset(&sb);
    render_message(&sb, line(b, j2, LOG_STDOUT, 0, "a\0b", 3), false);
    ok(strstr(sb.buf, "\"msg\":\"a\\u0000b\"") != NULL, "NUL escaped");
    ok(!strstr(sb.buf, "process_type"), "no process_type for one-off jobs");

    /* syslog */
    struct syslog_opts o = {.framing = SYSLOG_OCTET_COUNTED};
    strbuf_reset(&sb);
    render_syslog(&sb, line(b, j, LOG_STDOUT, 0, "hello", 5), &o);
    const char *want = "<14>1 2021-01-02T03:04:05.123456Z host0 web_app web.host0-1 - - hello";
    char framed[200];
    snprintf(framed, sizeof(framed), "%zu %s", strlen(want), want);
    is_str(sb.buf, framed, "RFC 5424, octet counted");
    o.framing = SYSLOG_NEWLINE;
    o.use_ids = true;
    o.prefix = "[x] ";
    strbuf_reset(&sb);
    render_syslog(&sb, line(b, j, LOG_STDERR, 0, "oops", 4), &o);
    is_str(sb.buf, "<11>1 2021-01-02T03:04:05.123456Z host0 A web.host0-1 - - [x] oops\n",
           "newline framing, app ID, prefix, stderr severity");
    o.structured_data = true;
    o.prefix = NULL;
    strbuf_reset(&sb);
    render_syslog(&sb, line(b, j2, LOG_STDOUT, 0, "x", 1), &o);
    is_str(sb.buf,
           "<14>1 2021-01-02T03:04:05.123456Z host0 A host0-2 - [flynn@32473 app_id=\"A\" "
           "job=\"host0-2\" stream=\"stdout\"] x\n",
           "structured data");
    enum syslog_framing f;
    ok(render_syslog_framing(NULL, &f) && f == SYSLOG_OCTET_COUNTED, "default framing");
    ok(render_syslog_framing("newline", &f) && f == SYSLOG_NEWLINE, "newline framing");
    ok(!render_syslog_framing("bogus", &f), "unknown framing");
    strbuf_release(&sb);
    logbuf_free(b);
}

int main(void)
{
    test_json();
    test_message();
    return test_done();
}
