#include "ids.h"

#include <string.h>

#include "test.h"

int main(void)
{
    char a[37], b[37];
    id_uuid(a);
    id_uuid(b);
    is_int(strlen(a), 36, "uuid is 36 characters");
    ok(id_is_uuid(a), "a generated uuid is recognised: %s", a);
    ok(strcmp(a, b) != 0, "two uuids differ");
    ok(a[14] == '4', "version 4");
    ok(strchr("89ab", a[19]) != NULL, "RFC 4122 variant");
    ok(id_is_uuid("52aedfbfe61340f2941ad832d10fc400"), "undashed form is accepted");
    ok(!id_is_uuid("52AEDFBF-e613-40f2-941a-d832d10fc400"), "upper case is not");
    ok(!id_is_uuid("52aedfbf-e613-40f2-941a-d832d10fc40"), "short is not");
    ok(!id_is_uuid(""), "empty is not");

    char t[40];
    struct timespec ts = {1450232456, 657428000};
    time_rfc3339(&ts, t);
    is_str(t, "2015-12-16T02:20:56.657428Z", "RFC 3339 with microseconds");
    ts.tv_nsec = 500000000;
    time_rfc3339(&ts, t);
    is_str(t, "2015-12-16T02:20:56.5Z", "trailing zeros dropped");
    ts.tv_nsec = 0;
    time_rfc3339(&ts, t);
    is_str(t, "2015-12-16T02:20:56Z", "no fraction when zero");
    ok(time_parse_rfc3339("2015-12-16T02:20:56Z") == 1450232456.0, "parse: whole seconds");
    ok(time_parse_rfc3339("2015-12-16T02:20:56.5Z") == 1450232456.5, "parse: a fraction");
    ok(time_parse_rfc3339("2015-12-16T02:20:56.12Z") <
           time_parse_rfc3339("2015-12-16T02:20:56.1234Z"),
       "parse: fractions of different widths compare by value, not text");
    ok(time_parse_rfc3339("2015-12-16T02:20:56Z") < time_parse_rfc3339("2015-12-16T02:20:56.5Z"),
       "parse: no fraction sorts before a fraction of the same second");
    ok(time_parse_rfc3339("yesterday") < 0, "parse: not a time is -1");
    ok(time_parse_rfc3339(NULL) < 0, "parse: NULL is -1");
    char h[17];
    id_hex(h, 8);
    is_int(strlen(h), 16, "hex id length");
    return test_done();
}
