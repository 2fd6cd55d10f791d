#include "oci.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "test.h"

static int check(const char *body, const char *id, const char *want_in_msg)
{
    json_t *j = json_loads(body, 0, NULL);
    struct err *e = NULL;
    int rc = oci_validate_job(j, id, &e);
    json_decref(j);
    int good = want_in_msg ? (rc < 0 && e && strstr(e->msg, want_in_msg)) : rc == 0;
    if (!good)
        printf("# body %s: rc %d msg %s\n", body, rc, e ? e->msg : "(none)");
    err_free(e);
    return good;
}

int main(void)
{
    ok(check("{\"config\":{\"args\":[\"true\"]}}", "h-1", NULL), "minimal job is valid");
    ok(check("{\"config\":{\"args\":[\"true\"]}}", "../x", "job id"), "id with a slash");
    ok(check("{\"config\":{\"args\":[\"true\"]}}", "", "job id"), "empty id");
    ok(check("{}", "h-1", "config"), "missing config");
    ok(check("{\"config\":{\"args\":[]}}", "h-1", "config.args"), "empty args");
    ok(check("{\"config\":{\"args\":[\"\"]}}", "h-1", "config.args"), "empty command");
    ok(check("{\"config\":{\"args\":[\"x\"],\"env\":{\"A\":1}}}", "h-1", "config.env.A"), "env value type");
    ok(check("{\"config\":{\"args\":[\"x\"],\"uid\":-1}}", "h-1", "config.uid"), "negative uid");
    ok(check("{\"config\":{\"args\":[\"x\"]},\"resources\":{\"cpu\":{\"limit\":\"a\"}}}", "h-1",
             "resources.cpu"), "cpu limit type");
    ok(check("{\"config\":{\"args\":[\"x\"]},\"stop_timeout\":99999}", "h-1", "stop_timeout"),
       "stop timeout bound");

#define SHA "0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef"
#define SLUGJOB(slug) "{\"config\":{\"args\":[\"x\"]},\"root\":{\"stack\":\"default\",\"slug\":" slug "}}"
    ok(check(SLUGJOB("{\"url\":\"http://127.0.0.1:5002/slugs/a.tgz\",\"sha256\":\"" SHA
                     "\",\"size\":10}"), "h-1", NULL), "slug job is valid");
    ok(check(SLUGJOB("{\"url\":\"https://b.example/x\",\"sha256\":\"" SHA "\"}"), "h-1", NULL),
       "slug size is optional");
    ok(check(SLUGJOB("{\"url\":\"http://a/x\",\"sha256\":\"" SHA "\",\"mode\":1}"), "h-1",
             "unknown field 'root.slug.mode'"), "unknown slug field");
    ok(check("{\"config\":{\"args\":[\"x\"]},\"root\":{\"image\":\"x\"}}", "h-1",
             "unknown field 'root.image'"), "unknown root field");
    ok(check(SLUGJOB("{\"url\":\"http://a/x\"}"), "h-1", "root.slug.sha256"), "sha256 required");
    ok(check(SLUGJOB("{\"url\":\"http://a/x\",\"sha256\":\"abc\"}"), "h-1", "root.slug.sha256"),
       "short sha256");
    ok(check(SLUGJOB("{\"url\":\"http://a/x\",\"sha256\":\"" SHA "\",\"size\":-1}"), "h-1",
             "root.slug.size"), "negative size");
    ok(check(SLUGJOB("{\"url\":\"http://a/x\",\"sha256\":\"" SHA "\",\"size\":\"1\"}"), "h-1",
             "root.slug.size"), "size type");
    ok(check(SLUGJOB("{\"url\":\"file:///etc/passwd\",\"sha256\":\"" SHA "\"}"), "h-1",
             "root.slug.url"), "file URL");
    ok(check(SLUGJOB("{\"url\":\"http:///x\",\"sha256\":\"" SHA "\"}"), "h-1", "root.slug.url"),
       "URL without a host");
    ok(check(SLUGJOB("{\"url\":\"http://a/x y\",\"sha256\":\"" SHA "\"}"), "h-1",
             "root.slug.url"), "URL with a space");
    ok(check(SLUGJOB("{\"sha256\":\"" SHA "\"}"), "h-1", "root.slug.url"), "url required");
    ok(check(SLUGJOB("\"http://a/x\""), "h-1", "root.slug must be an object"), "slug type");

    json_t *spec = json_loads("{\"config\":{\"args\":[\"x\"],\"env\":{\"A\":\"b\"},"
                              "\"ports\":[{\"port\":0},{\"port\":7000}]}}", 0, NULL);
    json_t *env = oci_env(spec, "h-1", "100.100.1.2");
    char *s = json_dumps(env, JSON_COMPACT);
    ok(strstr(s, "\"A=b\"") != NULL, "job env kept");
    ok(strstr(s, "\"PORT_0=5000\"") && strstr(s, "\"PORT_1=7000\""), "port 0 becomes 5000+index");
    ok(strstr(s, "\"PORT=5000\"") != NULL, "PORT is the first port");
    ok(strstr(s, "\"EXTERNAL_IP=100.100.1.2\"") && strstr(s, "\"FLYNN_JOB_ID=h-1\""), "host env");
    ok(strstr(s, "PATH=") != NULL, "a default PATH");
    free(s);
    json_decref(env);

    struct oci_job oj = {.id = "h-1", .spec = spec, .rootfs = "/r", .netns_path = "/ns",
                         .job_dir = "/j", .ip = "100.100.1.2", .hostname = "h",
                         .cgroups_path = "/flynn/h-1"};
    json_t *cfg = oci_config(&oj, NULL);
    ok(cfg != NULL, "config builds");
    ok(json_is_true(json_object_get(json_object_get(cfg, "process"), "noNewPrivileges")),
       "noNewPrivileges");
    s = json_dumps(cfg, JSON_COMPACT);
    ok(strstr(s, "\"type\":\"network\",\"path\":\"/ns\"") != NULL, "pinned network namespace");
    ok(strstr(s, "CAP_SYS_ADMIN") == NULL, "no CAP_SYS_ADMIN");
    ok(strstr(s, "\"destination\":\"/usr\",\"type\":\"bind\",\"source\":\"/usr\"") != NULL,
       "host /usr bound");
    ok(strstr(s, "/runner") == NULL, "no runner without a slug");
    free(s);
    json_decref(cfg);
    oj.runner_dir = "/opt/runner";
    cfg = oci_config(&oj, NULL);
    s = json_dumps(cfg, JSON_COMPACT);
    ok(strstr(s, "\"destination\":\"/runner\",\"type\":\"bind\",\"source\":\"/opt/runner\","
                 "\"options\":[\"rbind\",\"ro\"") != NULL,
       "runner bound read-only");
    free(s);
    json_decref(cfg);
    json_decref(spec);

    /* an attached job with a terminal: flynn-init first, the tty, its size */
    ok(check("{\"config\":{\"args\":[\"x\"],\"tty\":1}}", "h-1", "config.tty"), "tty type");
    ok(check("{\"config\":{\"args\":[\"x\"],\"stdin\":\"y\"}}", "h-1", "config.stdin"),
       "stdin type");
    spec = json_loads("{\"config\":{\"args\":[\"sh\",\"-i\"],\"tty\":true,\"stdin\":true}}", 0,
                      NULL);
    oj = (struct oci_job){.id = "h-2", .spec = spec, .rootfs = "/r", .job_dir = "/j", .ip = "",
                          .hostname = "h", .cgroups_path = "/flynn/h-2",
                          .init_path = "/bin/flynn-init"};
    cfg = oci_config(&oj, NULL);
    json_t *proc = json_object_get(cfg, "process");
    ok(json_is_true(json_object_get(proc, "terminal")), "a terminal");
    s = json_dumps(json_object_get(proc, "args"), JSON_COMPACT);
    is_str(s, "[\"/.flynn-init\",\"sh\",\"-i\"]", "flynn-init runs the command");
    free(s);
    s = json_dumps(cfg, JSON_COMPACT);
    ok(strstr(s, "\"destination\":\"/.flynn-init\",\"type\":\"bind\",\"source\":"
                 "\"/bin/flynn-init\",\"options\":[\"bind\",\"ro\"") != NULL,
       "flynn-init bound read-only");
    free(s);
    char path[] = "/tmp/oci-test-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    json_dump_file(cfg, path, 0);
    ok(oci_set_console_size(path, 30, 100, NULL) == 0, "console size set");
    json_t *back = json_load_file(path, 0, NULL);
    json_t *cs = json_object_get(json_object_get(back, "process"), "consoleSize");
    ok(json_integer_value(json_object_get(cs, "height")) == 30 &&
           json_integer_value(json_object_get(cs, "width")) == 100,
       "consoleSize in config.json");
    json_decref(back);
    unlink(path);
    json_decref(cfg);
    json_decref(spec);
    return test_done();
}
