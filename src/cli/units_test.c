#include "units.h"

#include <stdlib.h>

#include "test.h"

static void size_is(const char *in, int binary, long long want)
{
    long long got = -42;
    int rc = units_parse_size(in, binary, &got);
    ok(rc == 0 && got == want, "%s parses to %lld (got %lld, rc %d)", in, want, got, rc);
}

static void str_is(char *got, const char *want, const char *what)
{
    is_str(got, want, "%s", what);
    free(got);
}

int main(void)
{
    size_is("512MB", 1, 512LL << 20);
    size_is("1GB", 1, 1LL << 30);
    size_is("1.5g", 1, 3LL << 29);
    size_is("200 mib", 1, 200LL << 20);
    size_is("100", 1, 100);
    size_is("500", 0, 500);
    size_is("2k", 0, 2000);
    long long v;
    ok(units_parse_size("1e5", 1, &v) < 0, "exponents rejected");
    ok(units_parse_size("-1", 1, &v) < 0, "negative rejected");
    ok(units_parse_size("12QB", 1, &v) < 0, "unknown unit rejected");
    ok(units_parse_size("1.", 1, &v) < 0, "bare dot rejected");

    str_is(units_format_limit("memory", 1LL << 30), "1GB", "1 GiB");
    str_is(units_format_limit("memory", 512LL << 20), "512MB", "512 MiB");
    str_is(units_format_limit("temp_disk", 104857600), "100MB", "default temp disk");
    str_is(units_format_limit("memory", 1536LL << 20), "1.5GB", "fractional");
    str_is(units_format_limit("cpu", 1000), "1000", "cpu is a number");
    str_is(units_format_limit("memory", 100), "100B", "bytes");

    str_is(units_go_duration(3944629056LL), "3.944629056s", "seconds");
    str_is(units_go_duration(2000000000LL), "2s", "whole seconds");
    str_is(units_go_duration(12500000LL), "12.5ms", "milliseconds");
    str_is(units_go_duration(1500LL), "1.5µs", "microseconds");
    str_is(units_go_duration(999LL), "999ns", "nanoseconds");
    str_is(units_go_duration(62500000000LL), "1m2.5s", "minutes");
    str_is(units_go_duration(3600000000000LL), "1h0m0s", "hours");

    str_is(units_micro_time("2021-01-02T03:04:05.123456789Z"), "2021-01-02T03:04:05.123456Z",
           "nanoseconds truncated");
    str_is(units_micro_time("2021-01-02T03:04:05Z"), "2021-01-02T03:04:05.000000Z",
           "no fraction");
    str_is(units_micro_time("2021-01-02T03:04:05.5+00:00"), "2021-01-02T03:04:05.500000Z",
           "+00:00 is Z");
    str_is(units_micro_time("2021-01-02T03:04:05.5-07:00"), "2021-01-02T03:04:05.500000-07:00",
           "zone kept");
    return test_done();
}
