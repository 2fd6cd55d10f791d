#include "logbuf.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

static struct logline *add(struct logbuf *b, struct logjob *j, const char *msg, long long seq)
{
    return logbuf_add(b, j, "2021-01-02T03:04:05Z", 20, 1609556645000000LL, LOG_STDOUT, 0, seq, msg,
                      strlen(msg));
}

static void test_order_and_app_lines(void)
{
    struct logbuf_limits lim = {.app_lines = 3};
    struct logbuf *b = logbuf_new(&lim);
    struct logjob_meta m = {.id = "h-1", .app_id = "A", .type = "web", .host_id = "h"};
    struct logjob *j = logbuf_job(b, &m);
    char msg[16];
    for (int i = 0; i < 5; i++) {
        snprintf(msg, sizeof(msg), "l%d", i);
        ok(add(b, j, msg, i) != NULL, "line %d stored", i);
    }
    struct logapp *a = logbuf_app(b, "A", false);
    is_int(logapp_count(a), 3, "app keeps 3 lines");
    is_str(logline_msg(logapp_line(a, 0)), "l2", "oldest kept is l2");
    is_str(logline_msg(logapp_line(a, 2)), "l4", "newest is l4");
    is_int(a->evicted, 2, "2 evicted");
    is_int(logbuf_first_gseq(b), 3, "global sequence starts at 3");
    is_int(logbuf_next_gseq(b), 6, "next gseq 6");
    ok(logbuf_at(b, 2) == NULL, "evicted line is gone");
    is_str(logline_msg(logbuf_at(b, 4)), "l3", "gseq 4 is l3");
    is_str(logline_ts(logapp_line(a, 0)), "2021-01-02T03:04:05Z", "timestamp kept");
    logbuf_free(b);
}

static void test_duplicates(void)
{
    struct logbuf *b = logbuf_new(NULL);
    struct logjob_meta m = {.id = "h-1", .app_id = "A"};
    struct logjob *j = logbuf_job(b, &m);
    ok(add(b, j, "a", 10) != NULL, "seq 10 stored");
    ok(add(b, j, "b", 11) != NULL, "seq 11 stored");
    ok(add(b, j, "a", 10) == NULL, "seq 10 again is a duplicate");
    ok(add(b, j, "b", 11) == NULL, "seq 11 again is a duplicate");
    ok(add(b, j, "c", 12) != NULL, "seq 12 stored");
    ok(add(b, j, "x", -1) != NULL, "no seq: always stored");
    struct logbuf_stats st;
    logbuf_stats(b, &st);
    is_int(st.duplicates, 2, "2 duplicates counted");
    is_int(st.lines, 4, "4 lines");
    logbuf_free(b);
}

static void test_total_bound_and_holes(void)
{
    /* each line is sizeof(struct logline) + 20 + 1 + 2 bytes */
    size_t one = sizeof(struct logline) + 20 + 1 + 2;
    struct logbuf_limits lim = {.app_lines = 2, .total_bytes = one * 4};
    struct logbuf *b = logbuf_new(&lim);
    struct logjob_meta ma = {.id = "h-a", .app_id = "A"}, mb = {.id = "h-b", .app_id = "B"};
    struct logjob *ja = logbuf_job(b, &ma);
    add(b, ja, "1", -1); /* gseq 1 */
    struct logjob *jb = logbuf_job(b, &mb);
    add(b, jb, "2", -1); /* 2 */
    add(b, ja, "3", -1); /* 3 */
    add(b, ja, "4", -1); /* 4: A over 2 lines, gseq 1 goes */
    is_int(logbuf_first_gseq(b), 2, "hole at the front is skipped");
    add(b, jb, "5", -1); /* 5 */
    add(b, ja, "6", -1); /* 6: A drops 3 -> hole at 3 */
    ok(logbuf_at(b, 3) == NULL, "gseq 3 is a hole");
    is_str(logline_msg(logbuf_at(b, 2)), "2", "gseq 2 still there");
    struct logbuf_stats st;
    logbuf_stats(b, &st);
    is_int(st.lines, 4, "4 lines");
    add(b, jb, "7", -1); /* B over 2 lines: 2 goes, then total ok */
    logbuf_stats(b, &st);
    is_int(st.lines, 4, "still 4 lines");
    is_int(st.bytes, one * 4, "bytes accounted");
    /* the total bound: a bigger line pushes the oldest out across apps */
    struct logbuf_limits lim2 = {.total_bytes = one * 3};
    struct logbuf *c = logbuf_new(&lim2);
    struct logjob *ca = logbuf_job(c, &ma), *cb = logbuf_job(c, &mb);
    add(c, ca, "1", -1);
    add(c, cb, "2", -1);
    add(c, ca, "3", -1);
    add(c, cb, "4", -1);
    is_int(logbuf_first_gseq(c), 2, "total bound dropped the oldest of all");
    is_int(logapp_count(logbuf_app(c, "A", false)), 1, "A has one line left");
    is_str(logline_msg(logapp_line(logbuf_app(c, "A", false), 0)), "3", "A's line is 3");
    is_int(logbuf_app(c, "A", false)->evicted, 1, "A counts its dropped line");
    logbuf_free(c);
    logbuf_free(b);
}

static void test_job_lifetime(void)
{
    struct logbuf_limits lim = {.app_lines = 1};
    struct logbuf *b = logbuf_new(&lim);
    struct logjob_meta m1 = {.id = "h-1", .app_id = "A"}, m2 = {.id = "h-2", .app_id = "A"};
    struct logjob *j1 = logbuf_job(b, &m1);
    add(b, j1, "a", 1);
    logbuf_job_release(b, j1); /* still referenced: kept */
    struct logbuf_stats st;
    logbuf_stats(b, &st);
    is_int(st.jobs, 1, "job kept while it has lines");
    struct logjob *j2 = logbuf_job(b, &m2);
    add(b, j2, "b", 1); /* evicts j1's only line: j1 freed */
    logbuf_stats(b, &st);
    is_int(st.jobs, 1, "job freed with its last line");
    struct logjob *j3 = logbuf_job(b, &m1);
    ok(!j3->has_seq, "a job made again starts without a seq");
    logbuf_job_release(b, j3);
    logbuf_stats(b, &st);
    is_int(st.jobs, 1, "a job without lines is released");
    logbuf_free(b);
}

static void test_many(void)
{
    struct logbuf_limits lim = {.app_lines = 1000, .total_bytes = 1 << 20};
    struct logbuf *b = logbuf_new(&lim);
    char id[16];
    for (int i = 0; i < 50000; i++) {
        snprintf(id, sizeof(id), "h-%d", i % 37);
        char app[8];
        snprintf(app, sizeof(app), "%d", i % 7);
        struct logjob_meta m = {.id = id, .app_id = app};
        struct logjob *j = logbuf_job(b, &m);
        add(b, j, "some text of a line", i / 37);
        logbuf_job_release(b, j);
    }
    struct logbuf_stats st;
    logbuf_stats(b, &st);
    ok(st.bytes <= (1 << 20), "total bound holds (%zu bytes)", st.bytes);
    ok(st.lines <= 7000, "per-app bound holds (%zu lines)", st.lines);
    is_int(st.received, 50000, "every line received");
    is_int(st.received - st.evicted, st.lines, "received - evicted = kept");
    size_t live = 0;
    for (uint64_t g = logbuf_first_gseq(b); g < logbuf_next_gseq(b); g++)
        live += logbuf_at(b, g) != NULL;
    is_int(live, st.lines, "global sequence holds every kept line");
    logbuf_free(b);
}

int main(void)
{
    test_order_and_app_lines();
    test_duplicates();
    test_total_bound_and_holes();
    test_job_lifetime();
    test_many();
    return test_done();
}
