/* Unit tests of validate.c: names, ids, env keys, release normalisation. */
#include "validate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static json_t *J(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    if (!j)
        abort();
    return j;
}

static int release_err(const char *body, const char *want_field)
{
    json_t *r = J(body);
    const char *field = NULL;
    struct err *e = NULL;
    int rc = release_normalize(r, &field, &e);
    int ok = rc < 0 && e && e->errnum == EINVAL && field && !strcmp(field, want_field);
    err_free(e);
    json_decref(r);
    return ok;
}

int main(void)
{
    ok(validate_app_name("a"), "single char");
    ok(validate_app_name("my-app-2"), "dashes between words");
    ok(!validate_app_name(""), "empty");
    ok(!validate_app_name("-a") && !validate_app_name("a-") && !validate_app_name("a--b"),
       "bad dashes");
    ok(!validate_app_name("A") && !validate_app_name("a_b") && !validate_app_name("a.b"),
       "bad chars");
    char longn[102];
    memset(longn, 'a', 101);
    longn[101] = '\0';
    ok(!validate_app_name(longn), "101 chars");
    longn[100] = '\0';
    ok(validate_app_name(longn), "100 chars");

    for (int i = 0; i < 50; i++) {
        char n[64];
        app_name_generate(n);
        if (!validate_app_name(n)) {
            ok(0, "generated name '%s' is valid", n);
            break;
        }
        if (i == 49)
            ok(1, "50 generated names are valid");
    }

    char u[37];
    ok(uuid_normalize("0123456789ABCDEF0123456789abcdef", u) &&
           !strcmp(u, "01234567-89ab-cdef-0123-456789abcdef"),
       "undashed upper-case uuid");
    ok(uuid_normalize("01234567-89ab-cdef-0123-456789abcdef", u), "dashed uuid");
    ok(!uuid_normalize("01234567-89ab-cdef-0123-456789abcde", u), "short");
    ok(!uuid_normalize("0123456789ab-cdef-0123-456789abcdef0", u), "dash misplaced");
    ok(!uuid_normalize("g1234567-89ab-cdef-0123-456789abcdef", u), "non-hex");
    ok(!uuid_normalize("", u) && !uuid_normalize(NULL, u), "empty / NULL");

    ok(validate_env_key("PATH") && !validate_env_key("") && !validate_env_key("A=B"), "env keys");
    ok(validate_process_type("web") && validate_process_type("my_worker-2.x"), "process types");
    ok(!validate_process_type("") && !validate_process_type("a b") &&
           !validate_process_type("a/b"),
       "bad process types");

    json_t *m = J("{\"a\":\"b\"}");
    ok(validate_string_map(m, false), "string map");
    json_decref(m);
    m = J("{\"a\":1}");
    ok(!validate_string_map(m, true), "non-string value");
    json_decref(m);
    ok(validate_string_map(json_null(), true) && !validate_string_map(json_null(), false),
       "null map");

    json_t *r = J("{\"artifact\":\"0123456789abcdef0123456789abcdef\",\"processes\":{\"web\":"
                  "{\"entrypoint\":[\"a\"],\"cmd\":[\"b\"],\"data\":true,\"ports\":[{\"port\":80}],"
                  "\"resources\":{\"memory\":{\"limit\":5}}}}}");
    const char *field = NULL;
    struct err *e = NULL;
    is_int(release_normalize(r, &field, &e), 0, "release normalises");
    json_t *web = json_object_get(json_object_get(r, "processes"), "web");
    is_str(json_string_value(json_array_get(json_object_get(r, "artifacts"), 0)),
           "01234567-89ab-cdef-0123-456789abcdef", "artifact folded into artifacts");
    ok(!json_object_get(r, "artifact"), "legacy artifact removed");
    is_int(json_array_size(json_object_get(web, "args")), 2, "cmd+entrypoint folded into args");
    is_str(json_string_value(json_array_get(json_object_get(web, "args"), 0)), "a",
           "entrypoint first");
    ok(!json_object_get(web, "cmd") && !json_object_get(web, "data"), "deprecated fields gone");
    is_str(json_string_value(json_object_get(json_array_get(json_object_get(web, "volumes"), 0),
                                             "path")),
           "/data", "data becomes /data volume");
    is_str(json_string_value(json_object_get(json_array_get(json_object_get(web, "ports"), 0),
                                             "proto")),
           "tcp", "port proto defaults to tcp");
    json_t *res = json_object_get(web, "resources");
    is_int(json_integer_value(json_object_get(json_object_get(res, "memory"), "request")), 5,
           "null request becomes the limit");
    is_int(json_integer_value(json_object_get(json_object_get(res, "cpu"), "limit")), 1000,
           "default cpu");
    is_int(json_integer_value(json_object_get(json_object_get(res, "temp_disk"), "limit")),
           104857600, "default temp_disk");
    json_decref(r);

    ok(release_err("{\"env\":{\"\":\"x\"}}", "env"), "empty env key");
    ok(release_err("{\"env\":{\"A\":2}}", "env"), "non-string env");
    ok(release_err("{\"artifacts\":[\"x\"]}", "artifacts"), "bad artifact id");
    ok(release_err("{\"processes\":{\"a b\":{}}}", "processes"), "bad process type");
    ok(release_err("{\"processes\":{\"web\":{\"args\":\"ls\"}}}", "processes"), "args string");
    ok(release_err("{\"processes\":{\"web\":{\"ports\":[{\"port\":-1}]}}}", "processes"),
       "negative port");
    ok(release_err("{\"meta\":[]}", "meta"), "meta array");

    json_t *rp = J("{\"web\":{},\"worker\":{}}");
    json_t *p = J("{\"web\":2,\"worker\":0}");
    ok(validate_processes(p, rp, &field, NULL) == 0, "counts ok");
    json_decref(p);
    const char *bad[] = {"{\"web\":-1}", "{\"web\":10001}", "{\"web\":\"1\"}", "{\"db\":1}",
                         "{\"web\":1.0}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        p = J(bad[i]);
        ok(validate_processes(p, rp, &field, NULL) < 0, "rejects %s", bad[i]);
        json_decref(p);
    }
    json_decref(rp);
    return test_done();
}
