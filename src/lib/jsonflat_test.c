#include "jsonflat.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

static int parse(const char *s, struct jsonflat_member *m)
{
    return jsonflat_parse(s, strlen(s), m, 8);
}

static void test_parse(void)
{
    struct jsonflat_member m[8];
    const char *s =
        "{\"time\":\"2021-01-02T03:04:05.5Z\",\"stream\":\"stdout\",\"msg\":\"hi \\\"x\\\"\"}";
    is_int(parse(s, m), 3, "three members");
    const struct jsonflat_member *msg = jsonflat_get(m, 3, "msg");
    ok(msg && msg->type == JF_STRING && msg->escaped, "msg is an escaped string");
    char out[64];
    long n = jsonflat_unescape(msg->val, msg->val_len, out);
    out[n > 0 ? n : 0] = '\0';
    is_str(out, "hi \"x\"", "msg decoded");
    ok(!jsonflat_get(m, 3, "stream")->escaped, "stream is plain");
    is_int(parse(" { \"a\" : 1 , \"b\":-2.5e3,\"c\":true,\"d\":false,\"e\":null } ", m), 5,
           "numbers, literals and spaces");
    is_int(m[1].type, JF_NUMBER, "b is a number");
    is_int(m[1].val_len, 6, "b's literal");
    is_int(m[2].type, JF_TRUE, "c is true");
    is_int(m[4].type, JF_NULL, "e is null");
    is_int(parse("{}", m), 0, "empty object");
    is_int(parse("{\"a\":{}}", m), -1, "nested object rejected");
    is_int(parse("{\"a\":[1]}", m), -1, "array rejected");
    is_int(parse("{\"a\":\"x}", m), -1, "unterminated string");
    is_int(parse("{\"a\":\"x\"", m), -1, "unterminated object");
    is_int(parse("{\"a\":\"x\"}x", m), -1, "trailing bytes");
    is_int(parse("{\"a\":\"x\",}", m), -1, "trailing comma");
    is_int(parse("{\"a\":tru}", m), -1, "bad literal");
    is_int(parse("{\"a\":-}", m), -1, "bad number");
    is_int(parse("{\"a\":\"\x01\"}", m), -1, "raw control character");
    is_int(parse("[1]", m), -1, "not an object");
    is_int(parse("", m), -1, "empty input");
    is_int(jsonflat_parse("{\"a\":1,\"b\":2,\"c\":3}", 19, m, 2), -1, "too many members");
    is_int(parse("{\"a\":\"\\\\\"}", m), 1, "escaped backslash before the quote");
}

static void test_unescape(void)
{
    char out[64];
    const char *in = "a\\n\\t\\u00e9\\ud83d\\ude00\\/\\u0000z";
    long n = jsonflat_unescape(in, strlen(in), out);
    const char want[] = "a\n\t\xc3\xa9\xf0\x9f\x98\x80/\0z";
    is_int(n, sizeof(want) - 1, "length with a NUL inside");
    ok(n == (long)sizeof(want) - 1 && !memcmp(out, want, sizeof(want) - 1), "escapes decoded");
    in = "\\ud800x";
    n = jsonflat_unescape(in, strlen(in), out);
    ok(n == 4 && !memcmp(out, "\xef\xbf\xbdx", 4), "lone surrogate becomes U+FFFD");
    in = "\\q";
    is_int(jsonflat_unescape(in, strlen(in), out), -1, "unknown escape");
    in = "\\u12";
    is_int(jsonflat_unescape(in, strlen(in), out), -1, "short \\u");
}

static void test_time(void)
{
    int64_t us;
    ok(jsonflat_time_us("1970-01-01T00:00:00Z", 20, &us) && us == 0, "epoch");
    const char *t = "2021-01-02T03:04:05.123456Z";
    ok(jsonflat_time_us(t, strlen(t), &us) && us == 1609556645123456LL, "microseconds");
    t = "2021-01-02T03:04:05.5Z";
    ok(jsonflat_time_us(t, strlen(t), &us) && us == 1609556645500000LL, "short fraction");
    t = "2021-01-02T03:04:05.123456789Z";
    ok(jsonflat_time_us(t, strlen(t), &us) && us == 1609556645123456LL, "nanoseconds cut");
    t = "2021-01-02T04:04:05+01:00";
    ok(jsonflat_time_us(t, strlen(t), &us) && us == 1609556645000000LL, "offset");
    t = "2000-02-29T00:00:00Z";
    ok(jsonflat_time_us(t, strlen(t), &us) && us == 951782400000000LL, "leap day");
    t = "2021-13-02T03:04:05Z";
    ok(!jsonflat_time_us(t, strlen(t), &us), "bad month");
    t = "2021-01-02 03:04:05Z";
    ok(!jsonflat_time_us(t, strlen(t), &us), "no T");
    t = "2021-01-02T03:04:05";
    ok(!jsonflat_time_us(t, strlen(t), &us), "no zone");
}

int main(void)
{
    test_parse();
    test_unescape();
    test_time();
    return test_done();
}
