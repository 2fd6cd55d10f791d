#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "test.h"

static void time_is(const char *in, const char *want)
{
    char *got = go_time_string(in);
    is_str(got, want, "Go String() of %s", in);
    free(got);
}

static void ago_is(long secs_ago, const char *want)
{
    time_t t = time(NULL) - secs_ago;
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[40];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *got = human_time(ts);
    is_str(got, want, "%ld seconds ago", secs_ago);
    free(got);
}

int main(void)
{
    time_is("2015-05-06T21:58:12.751741Z", "2015-05-06 21:58:12.751741 +0000 UTC");
    time_is("2015-05-06T21:58:12.750000Z", "2015-05-06 21:58:12.75 +0000 UTC");
    time_is("2015-05-06T21:58:12Z", "2015-05-06 21:58:12 +0000 UTC");
    time_is("2015-05-06T23:58:12.5+02:00", "2015-05-06 23:58:12.5 +0200 +0200");
    ago_is(5, "5 seconds ago");
    ago_is(61, "About a minute ago");
    ago_is(60 * 7 + 3, "7 minutes ago");
    ago_is(3600 + 100, "About an hour ago");
    ago_is(3600 * 5, "5 hours ago");
    ago_is(3600 * 24 * 3, "3 days ago");
    ago_is(3600 * 24 * 7 * 3, "3 weeks ago");
    ago_is(3600 * 24 * 100, "3 months ago");
    ago_is(3600L * 24 * 365 * 3, "3 years ago");
    char *empty = human_time("");
    is_str(empty, "", "no time: empty");
    free(empty);
    empty = human_time("0001-01-01T00:00:00Z");
    is_str(empty, "", "Go's zero time: empty");
    free(empty);
    return test_done();
}
