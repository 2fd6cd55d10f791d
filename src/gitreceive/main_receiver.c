/*
 * flynn-receiver: the pre-receive hook of every app repository (run by
 * git receive-pack under flynn-gitreceive). It builds the pushed revision
 * in a slugbuilder job, stores the slug in the blobstore, makes an artifact
 * and a release, deploys it and waits until it runs (flynn-api.md §8, our
 * way: the build job gets the tree through bind mounts, see
 * docs/internals/gitreceive.md). Everything it prints reaches the git
 * client as "remote:" lines; a non-zero exit rejects the push.
 *
 * Environment (inherited from flynn-gitreceive, or set by hand for tests):
 *   FLYNN_APP, FLYNN_APP_ID          the app (set per push)
 *   FLYNN_CONTROLLER_URL, FLYNN_CONTROLLER_KEY
 *   FLYNN_HOST_URL                   host API for the build job (http://127.0.0.1:1113)
 *   FLYNN_BLOBSTORE_URL              (http://127.0.0.1:5002)
 *   FLYNN_SLUGBUILDER_DIR            bound at /builder (/usr/local/lib/flynn/slugbuilder)
 *   FLYNN_GITRECEIVE_DIR             builds/, cache/, locks/ live here
 *   FLYNN_BUILD_TIMEOUT (s, 900), FLYNN_BUILD_MAX_OUTPUT (bytes, 16 MiB),
 *   FLYNN_SLUG_MAX (bytes, 1 GiB), FLYNN_BUILD_MEMORY (bytes, 2 GiB)
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "fsutil.h"
#include "httpc.h"
#include "ids.h"
#include "strbuf.h"
#include "xalloc.h"

static const char *ctl_url, *host_url, *blob_url;
static char *auth_header;
static char host_id[128], job_id[200];
static volatile sig_atomic_t stopping;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void stop_job(void)
{
    if (!job_id[0])
        return;
    cleanup_free char *url = xasprintf("%s/host/jobs/%s", host_url, job_id);
    struct httpc_req req = {.method = "DELETE", .url = url, .timeout_secs = 30};
    struct err *e = NULL;
    httpc_do(&req, NULL, &e);
    err_free(e);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("\n ERROR: ", stdout);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    return -1;
}

/* A controller call; returns the status (or -1), *out the JSON body when it parses. */
static int api(const char *method, const char *path, json_t *body, json_t **out)
{
    cleanup_free char *url = xasprintf("%s%s", ctl_url, path);
    cleanup_free char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *hdrs[] = {auth_header, NULL};
    struct httpc_req req = {.method = method,
                            .url = url,
                            .body = text,
                            .body_len = text ? strlen(text) : 0,
                            .accept = "application/json",
                            .timeout_secs = 60,
                            .headers = hdrs};
    struct strbuf sb;
    strbuf_init(&sb, 0);
    struct err *e = NULL;
    int st = httpc_do(&req, &sb, &e);
    if (st < 0) {
        fail("the controller did not answer: %s", e->msg);
        err_free(e);
    }
    if (out)
        *out = st > 0 && sb.len ? json_loadb(sb.buf, sb.len, 0, NULL) : NULL;
    strbuf_release(&sb);
    return st;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long env_num(const char *name, long long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end || n <= 0 ? def : n;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* Runs a shell command line with positional arguments; returns its exit status. */
static int sh(const char *script, const char *const args[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        const char *argv[16] = {"sh", "-c", script, "sh"};
        int n = 4;
        for (int i = 0; args && args[i] && n < 15; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        dup2(1, 2);
        execv("/bin/sh", (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Picks the branch update to deploy from the hook's stdin. */
static int pick_ref(char sha[41], char ref[256])
{
    char line[1024], best_ref[256] = "", best_sha[41] = "";
    int best_rank = -1;
    while (fgets(line, sizeof(line), stdin)) {
        char o[64], n[64], r[256];
        if (sscanf(line, "%63s %63s %255s", o, n, r) != 3)
            continue;
        if (strlen(n) != 40 || strspn(n, "0") == 40 || strncmp(r, "refs/heads/", 11))
            continue;
        int rank = !strcmp(r, "refs/heads/main") || !strcmp(r, "refs/heads/master") ? 2 : 1;
        if (rank > best_rank) {
            best_rank = rank;
            snprintf(best_ref, sizeof(best_ref), "%s", r);
            snprintf(best_sha, sizeof(best_sha), "%s", n);
        }
    }
    if (best_rank < 0)
        return -1;
    memcpy(sha, best_sha, 41);
    snprintf(ref, 256, "%s", best_ref);
    return 0;
}

struct follow {
    size_t bytes, max;
    bool cut;
    char last;
};

static int on_log(const char *data, size_t len, void *arg)
{
    struct follow *f = arg;
    if (stopping)
        return -1;
    f->bytes += len;
    if (f->bytes > f->max) {
        f->cut = true;
        return -1;
    }
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    if (len)
        f->last = data[len - 1];
    return 0;
}

static int sha256_file(const char *path, const void *data, size_t len, char hex[65])
{
    unsigned char md[32];
    unsigned int ml = 0;
    if (!EVP_Digest(data, len, md, &ml, EVP_sha256(), NULL))
        return -1;
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    (void)path;
    return 0;
}

static bool good_env_key(const char *k)
{
    if (!*k || !strcmp(k, ".") || !strcmp(k, "..") || strlen(k) > 255)
        return false;
    return !strchr(k, '/');
}

static json_t *web_port(const char *service)
{
    return json_pack("[{s:i,s:s,s:{s:s,s:b,s:{s:s}}}]", "port", 8080, "proto", "tcp", "service",
                     "name", service, "create", 1, "check", "type", "tcp");
}

static bool is_web(const char *type)
{
    size_t n = strlen(type);
    return !strcmp(type, "web") || (n > 4 && !strcmp(type + n - 4, "-web"));
}

/* Waits for a job of release rel and type to be up; -1 when one failed or time ran out. */
static int wait_initial(const char *app_id, const char *rel_id, const char *type, int timeout_s)
{
    cleanup_free char *path = xasprintf("/apps/%s/jobs", app_id);
    time_t end = time(NULL) + timeout_s;
    while (time(NULL) < end && !stopping) {
        json_t *jobs = NULL;
        if (api("GET", path, NULL, &jobs) == 200) {
            size_t i;
            json_t *j;
            int up = 0, bad = 0;
            json_array_foreach(jobs, i, j)
            {
                if (strcmp(jstr(j, "release") ? jstr(j, "release") : "", rel_id) ||
                    strcmp(jstr(j, "type") ? jstr(j, "type") : "", type))
                    continue;
                const char *st = jstr(j, "state");
                if (st && !strcmp(st, "up"))
                    up++;
                else if (st && (!strcmp(st, "crashed") || !strcmp(st, "failed")))
                    bad++;
            }
            json_decref(jobs);
            if (up)
                return 0;
            if (bad)
                return -1;
        }
        struct timespec ts = {0, 25 * 1000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int cmp_created_desc(const void *a, const void *b)
{
    const char *x = jstr(*(json_t *const *)a, "created_at"),
               *y = jstr(*(json_t *const *)b, "created_at");
    return strcmp(y ? y : "", x ? x : "");
}

/* Release garbage collection: keeps the current release and the newest
 * `gc.max_inactive_slug_releases` (app meta, default 10) inactive releases
 * that run a slug; older ones are deleted, and so are the blobs of slugs no
 * kept release uses. Best effort: failures are reported, not fatal. */
static void gc(const json_t *app)
{
    const char *app_id = jstr(app, "id"), *cur = jstr(app, "release");
    const char *keep_s = jstr(json_object_get(app, "meta"), "gc.max_inactive_slug_releases");
    long keep = keep_s ? strtol(keep_s, NULL, 10) : 10;
    if (keep < 0)
        keep = 10;
    cleanup_free char *lp = xasprintf("/apps/%s/releases", app_id);
    json_t *rels = NULL;
    if (api("GET", lp, NULL, &rels) != 200 || !json_is_array(rels)) {
        json_decref(rels);
        return;
    }
    size_t n = json_array_size(rels), i;
    json_t **v = xcalloc(n + 1, sizeof(*v));
    for (i = 0; i < n; i++)
        v[i] = json_array_get(rels, i);
    qsort(v, n, sizeof(*v), cmp_created_desc);
    json_t *kept_arts = json_object(), *doomed = json_array();
    long inactive = 0;
    for (i = 0; i < n; i++) {
        json_t *arts = json_object_get(v[i], "artifacts");
        bool is_cur = cur && jstr(v[i], "id") && !strcmp(cur, jstr(v[i], "id"));
        bool slug = jstr(json_object_get(v[i], "meta"), "git") != NULL; /* made by a push */
        bool keep_it = is_cur || !slug || inactive++ < keep;
        if (!keep_it) {
            /* a release that still runs processes stays */
            cleanup_free char *fp = xasprintf("/apps/%s/formations/%s", app_id, jstr(v[i], "id"));
            json_t *f = NULL;
            if (api("GET", fp, NULL, &f) == 200) {
                const char *k;
                json_t *c;
                json_object_foreach(json_object_get(f, "processes"), k, c) if (json_integer_value(c))
                    keep_it = true;
            }
            json_decref(f);
        }
        size_t a;
        json_t *id;
        if (!keep_it) {
            json_array_append(doomed, v[i]);
            continue;
        }
        json_array_foreach(arts, a, id)
        {
            if (json_is_string(id))
                json_object_set_new(kept_arts, json_string_value(id), json_true());
        }
    }
    size_t k;
    json_t *r;
    int nrel = 0, nblob = 0;
    json_array_foreach(doomed, k, r)
    {
        cleanup_free char *dp = xasprintf("/apps/%s/releases/%s", app_id, jstr(r, "id"));
        if (api("DELETE", dp, NULL, NULL) != 200)
            continue;
        nrel++;
        size_t a;
        json_t *id;
        json_array_foreach(json_object_get(r, "artifacts"), a, id)
        {
            if (!json_is_string(id) || json_object_get(kept_arts, json_string_value(id)))
                continue;
            cleanup_free char *ap = xasprintf("/artifacts/%s", json_string_value(id));
            json_t *art = NULL;
            if (api("GET", ap, NULL, &art) == 200 && jstr(art, "type") &&
                !strcmp(jstr(art, "type"), "file") &&
                jstr(json_object_get(art, "meta"), "blobstore") && jstr(art, "uri")) {
                struct httpc_req req = {.method = "DELETE", .url = jstr(art, "uri"),
                                        .timeout_secs = 30};
                struct err *e = NULL;
                int st = httpc_do(&req, NULL, &e);
                err_free(e);
                if (st == 200 || st == 404)
                    nblob++;
                json_object_set_new(kept_arts, json_string_value(id), json_true());
            }
            json_decref(art);
        }
    }
    if (nrel)
        say("-----> Removed %d old release%s and %d slug%s (keeping %ld inactive releases: "
            "app meta gc.max_inactive_slug_releases)",
            nrel, nrel == 1 ? "" : "s", nblob, nblob == 1 ? "" : "s", keep);
    json_decref(doomed);
    json_decref(kept_arts);
    free(v);
    json_decref(rels);
}

static void on_term(int sig)
{
    stopping = 1;
}

static int receive(const char *app_name, const char *app_id, const char *sha)
{
    const char *data = env_or("FLYNN_GITRECEIVE_DIR", "/var/lib/flynn/gitreceive");
    json_t *app = NULL, *prev = NULL;
    cleanup_free char *p = xasprintf("/apps/%s", app_id);
    if (api("GET", p, NULL, &app) != 200) {
        json_decref(app);
        return fail("app %s does not exist any more", app_name);
    }
    free(p);
    p = xasprintf("/apps/%s/release", app_id);
    int st = api("GET", p, NULL, &prev);
    if (st != 200 && st != 404) {
        json_decref(app);
        json_decref(prev);
        return fail("could not read the app's release (HTTP %d)", st);
    }
    if (st == 404) {
        json_decref(prev);
        prev = NULL;
    }
    int rc = -1;
    char *slug = NULL, *ptf = NULL, *ptt = NULL, *slug_url = NULL;
    char uuid[37], slug_id[37];
    id_uuid(uuid);
    id_uuid(slug_id);
    cleanup_free char *bdir = xasprintf("%s/builds/%s", data, uuid);
    cleanup_free char *src = xasprintf("%s/app", bdir), *envd = xasprintf("%s/env", bdir),
                      *outd = xasprintf("%s/out", bdir),
                      *cache = xasprintf("%s/cache/%s", data, app_id);
    struct err *e = NULL;
    if (fs_mkdir_p(src, 0755, &e) < 0 || fs_mkdir_p(envd, 0755, &e) < 0 ||
        fs_mkdir_p(outd, 0755, &e) < 0 || fs_mkdir_p(cache, 0755, &e) < 0) {
        fail("%s", e->msg);
        err_free(e);
        goto out;
    }
    say("-----> Building %s...", app_name);
    const char *xargs[] = {sha, src, NULL};
    if (sh("git archive --format=tar \"$1\" | tar -x -C \"$2\"", xargs) != 0) {
        fail("could not unpack revision %s", sha);
        goto out;
    }
    /* app env as files (Heroku's ENV_DIR) */
    json_t *env = json_object_get(prev, "env");
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (!good_env_key(k) || !json_is_string(v))
            continue;
        cleanup_free char *f = xasprintf("%s/%s", envd, k);
        if (fs_write_file(f, json_string_value(v), strlen(json_string_value(v)), 0644, 0, &e) < 0) {
            fail("%s", e->msg);
            err_free(e);
            goto out;
        }
    }
    /* the build job, on this machine's host */
    {
        cleanup_free char *url = xasprintf("%s/host/status", host_url);
        struct httpc_req req = {.url = url, .timeout_secs = 10};
        struct strbuf sb;
        strbuf_init(&sb, 0);
        int hs = httpc_do(&req, &sb, &e);
        json_t *hj = hs == 200 ? json_loadb(sb.buf, sb.len, 0, NULL) : NULL;
        strbuf_release(&sb);
        if (!jstr(hj, "id")) {
            json_decref(hj);
            fail("the host at %s did not answer%s%s", host_url, e ? ": " : "", e ? e->msg : "");
            err_free(e);
            goto out;
        }
        snprintf(host_id, sizeof(host_id), "%s", jstr(hj, "id"));
        json_decref(hj);
    }
    char juuid[37];
    id_uuid(juuid);
    snprintf(job_id, sizeof(job_id), "%s-%s", host_id, juuid);
    json_t *jenv = json_pack("{s:s,s:s,s:s}", "SOURCE_VERSION", sha, "STACK",
                             "flynn-debian-12", "FLYNN_APP_NAME", app_name);
    json_object_set_new(jenv, "SLUG_MAX_BYTES",
                        json_sprintf("%lld", env_num("FLYNN_SLUG_MAX", 1LL << 30)));
    const char *bp = jstr(env, "BUILDPACK_URL");
    if (bp)
        json_object_set_new(jenv, "BUILDPACK_URL", json_string(bp));
    json_t *spec = json_pack(
        "{s:s,s:{s:s,s:s,s:s,s:s},s:{s:[s],s:o,s:[{s:s,s:s,s:b},{s:s,s:s,s:b},{s:s,s:s,s:b},"
        "{s:s,s:s,s:b},{s:s,s:s,s:b}]},s:{s:{s:I}},s:{s:s},s:i}",
        "id", job_id, "metadata", "flynn-controller.app", app_id, "flynn-controller.app_name",
        app_name, "flynn-controller.type", "slugbuilder", "flynn-controller.release", "",
        "config", "args", "/builder/build", "env", jenv, "mounts", "location", "/app", "target",
        src, "writeable", 1, "location", "/cache", "target", cache, "writeable", 1, "location",
        "/env", "target", envd, "writeable", 0, "location", "/out", "target", outd, "writeable", 1,
        "location", "/builder", "target",
        env_or("FLYNN_SLUGBUILDER_DIR", "/usr/local/lib/flynn/slugbuilder"), "writeable", 0,
        "resources", "memory", "limit", (json_int_t)env_num("FLYNN_BUILD_MEMORY", 2LL << 30),
        "root", "stack", "default", "stop_timeout", 2);
    {
        cleanup_free char *url = xasprintf("%s/host/jobs/%s", host_url, job_id);
        cleanup_free char *text = json_dumps(spec, JSON_COMPACT);
        json_decref(spec);
        struct httpc_req req = {.method = "PUT",
                                .url = url,
                                .body = text,
                                .body_len = strlen(text),
                                .timeout_secs = 30};
        struct strbuf sb;
        strbuf_init(&sb, 0);
        int hs = httpc_do(&req, &sb, &e);
        if (hs != 200) {
            fail("could not start the build job: %s", e ? e->msg : sb.buf ? sb.buf : "");
            err_free(e);
            strbuf_release(&sb);
            job_id[0] = '\0';
            goto out;
        }
        strbuf_release(&sb);
    }
    /* its output, live, within the limits */
    long long timeout = env_num("FLYNN_BUILD_TIMEOUT", 900);
    struct follow fl = {.max = (size_t)env_num("FLYNN_BUILD_MAX_OUTPUT", 16LL << 20)};
    {
        cleanup_free char *url = xasprintf("%s/host/jobs/%s/log?follow=true", host_url, job_id);
        struct httpc_req req = {.url = url, .timeout_secs = timeout, .on_data = on_log, .arg = &fl};
        int hs = httpc_do(&req, NULL, &e);
        if (fl.last && fl.last != '\n')
            fputc('\n', stdout);
        if (stopping) {
            err_free(e);
            fail("the push was interrupted; the build was stopped");
            goto out;
        }
        if (fl.cut) {
            err_free(e);
            fail("the build wrote more than %zu bytes of output and was stopped "
                 "(limit: FLYNN_BUILD_MAX_OUTPUT on gitreceive)",
                 fl.max);
            goto out;
        }
        if (hs < 0) {
            bool to = strstr(e->msg, "imeout") || strstr(e->msg, "timed out");
            if (to)
                fail("the build ran longer than %lld s and was stopped "
                     "(limit: FLYNN_BUILD_TIMEOUT on gitreceive)",
                     timeout);
            else
                fail("lost the build's output: %s", e->msg);
            err_free(e);
            goto out;
        }
    }
    /* its end */
    json_t *aj = NULL;
    for (int i = 0; i < 100; i++) {
        cleanup_free char *url = xasprintf("%s/host/jobs/%s", host_url, job_id);
        struct httpc_req req = {.url = url, .timeout_secs = 10};
        struct strbuf sb;
        strbuf_init(&sb, 0);
        int hs = httpc_do(&req, &sb, &e);
        err_free(e);
        e = NULL;
        json_decref(aj);
        aj = hs == 200 ? json_loadb(sb.buf, sb.len, 0, NULL) : NULL;
        strbuf_release(&sb);
        if (json_integer_value(json_object_get(aj, "status")) >= 2)
            break;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    int jst = (int)json_integer_value(json_object_get(aj, "status"));
    int code = (int)json_integer_value(json_object_get(aj, "exit_status"));
    bool oom = json_is_true(json_object_get(aj, "oom_killed"));
    const char *jerr = jstr(aj, "error");
    if (jst != 2 || code != 0) {
        if (oom)
            fail("the build ran out of memory (limit %lld bytes: FLYNN_BUILD_MEMORY)",
                 env_num("FLYNN_BUILD_MEMORY", 2LL << 30));
        else if (jst == 4)
            fail("the build job could not start: %s", jerr ? jerr : "unknown error");
        else
            fail("the build failed (exit status %d)", code);
        json_decref(aj);
        goto out;
    }
    json_decref(aj);
    job_id[0] = '\0';
    /* the slug */
    slug = xasprintf("%s/slug.tgz", outd);
    ptf = xasprintf("%s/process_types.json", outd);
    size_t ptl;
    /* the build job wrote these: no symlink may make us read our own files */
    struct stat pst;
    ptt = lstat(ptf, &pst) == 0 && S_ISREG(pst.st_mode) && pst.st_size < (1 << 20)
              ? fs_read_file(ptf, &ptl, &e)
              : NULL;
    json_t *types = ptt ? json_loadb(ptt, ptl, 0, NULL) : NULL;
    if (!json_is_object(types) || !json_object_size(types)) {
        err_free(e);
        json_decref(types);
        fail("the build did not report process types (out/process_types.json)");
        goto out;
    }
    if (!json_object_get(types, "web")) {
        json_decref(types);
        fail("the app has no web process type, so nothing would answer at its domain: "
             "add a line `web: COMMAND` to the Procfile (the command must listen on $PORT)");
        goto out;
    }
    int fd = open(slug, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sbuf;
    if (fd < 0 || fstat(fd, &sbuf) < 0 || !S_ISREG(sbuf.st_mode) || sbuf.st_size == 0) {
        if (fd >= 0)
            close(fd);
        json_decref(types);
        fail("the build made no slug");
        goto out;
    }
    if (sbuf.st_size > env_num("FLYNN_SLUG_MAX", 1LL << 30)) {
        close(fd);
        json_decref(types);
        fail("the slug is %lld bytes, over the limit of %lld (FLYNN_SLUG_MAX)",
             (long long)sbuf.st_size, env_num("FLYNN_SLUG_MAX", 1LL << 30));
        goto out;
    }
    void *map = mmap(NULL, (size_t)sbuf.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        json_decref(types);
        fail("mmap slug: %s", strerror(errno));
        goto out;
    }
    char hex[65];
    sha256_file(slug, map, (size_t)sbuf.st_size, hex);
    say("-----> Uploading slug (%.1f MB)", (double)sbuf.st_size / 1e6);
    slug_url = xasprintf("%s/slugs/%s.tgz", blob_url, slug_id);
    {
        cleanup_free char *ck = xasprintf("X-Checksum-Sha256: %s", hex);
        const char *hdrs[] = {ck, NULL};
        struct httpc_req req = {.method = "PUT",
                                .url = slug_url,
                                .body = map,
                                .body_len = (size_t)sbuf.st_size,
                                .content_type = "application/gzip",
                                .timeout_secs = 600,
                                .headers = hdrs};
        struct strbuf sb;
        strbuf_init(&sb, 0);
        int bs = httpc_do(&req, &sb, &e);
        munmap(map, (size_t)sbuf.st_size);
        if (bs != 200) {
            fail("the blobstore refused the slug (%d): %s", bs,
                 e ? e->msg : sb.buf ? sb.buf : "");
            err_free(e);
            strbuf_release(&sb);
            json_decref(types);
            goto out;
        }
        strbuf_release(&sb);
    }
    /* artifact and release */
    struct strbuf names;
    strbuf_init(&names, 0);
    const char *t;
    json_t *cmd;
    json_object_foreach(types, t, cmd) strbuf_addf(&names, "%s%s", names.len ? "," : "", t);
    json_t *art = json_pack("{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:I}", "id", slug_id, "type", "file",
                            "uri", slug_url, "meta", "blobstore", "true", "sha256", hex,
                            "slugbuilder.process_types", names.buf ? names.buf : "", "size",
                            (json_int_t)sbuf.st_size);
    strbuf_release(&names);
    st = api("POST", "/artifacts", art, NULL);
    json_decref(art);
    if (st != 200) {
        json_decref(types);
        fail("could not create the slug artifact (HTTP %d)", st);
        goto out;
    }
    say("-----> Creating release...");
    json_t *procs = json_object();
    json_object_foreach(types, t, cmd)
    {
        json_t *old = json_object_get(json_object_get(prev, "processes"), t);
        json_t *pt = old ? json_deep_copy(old) : json_object();
        json_object_set_new(pt, "args", json_pack("[s,s,s]", "/runner/init", "start", t));
        if (is_web(t) && !json_object_get(pt, "ports")) {
            cleanup_free char *svc = xasprintf("%s-%s", app_name, t);
            json_object_set_new(pt, "ports", web_port(svc));
            json_object_set_new(pt, "service", json_string(svc));
        }
        json_object_set_new(procs, t, pt);
    }
    json_decref(types);
    json_t *meta = json_object();
    json_object_update(meta, json_object_get(prev, "meta"));
    json_object_set_new(meta, "git", json_string("true"));
    json_object_set_new(meta, "git.commit", json_string(sha));
    json_object_set_new(meta, "slugrunner.stack", json_string("flynn-debian-12"));
    json_t *rel = json_pack("{s:s,s:[s],s:o,s:o,s:o}", "app_id", app_id, "artifacts", slug_id,
                            "env", env ? json_incref(env) : json_object(), "meta", meta,
                            "processes", procs);
    json_t *nrel = NULL;
    st = api("POST", "/releases", rel, &nrel);
    json_decref(rel);
    const char *rel_id = jstr(nrel, "id");
    if (st != 200 || !rel_id) {
        fail("could not create the release (HTTP %d)", st);
        json_decref(nrel);
        goto out;
    }
    json_t *nprocs = json_object_get(nrel, "processes");
    int dtimeout = (int)json_integer_value(json_object_get(app, "deploy_timeout"));
    if (dtimeout <= 0)
        dtimeout = 120;
    /* deploy */
    bool scaled = false;
    if (prev) {
        cleanup_free char *fp = xasprintf("/apps/%s/formations/%s", app_id, jstr(prev, "id"));
        json_t *f = NULL;
        if (api("GET", fp, NULL, &f) == 200) {
            const char *k2;
            json_t *n;
            json_object_foreach(json_object_get(f, "processes"), k2, n) if (json_integer_value(n) > 0)
                scaled = true;
        }
        json_decref(f);
    }
    if (prev && scaled) {
        say("-----> Deploying release...");
        cleanup_free char *dp = xasprintf("/apps/%s/deploy", app_id);
        json_t *req = json_pack("{s:s}", "id", rel_id), *dep = NULL;
        st = api("POST", dp, req, &dep);
        json_decref(req);
        if (st != 200 || !jstr(dep, "id")) {
            fail("could not start the deployment (HTTP %d)", st);
            json_decref(dep);
            json_decref(nrel);
            goto out;
        }
        cleanup_free char *gp = xasprintf("/deployments/%s", jstr(dep, "id"));
        json_decref(dep);
        time_t end = time(NULL) + dtimeout + 5;
        const char *status = "pending";
        json_t *d = NULL;
        while (time(NULL) < end && !stopping) {
            json_decref(d);
            d = NULL;
            if (api("GET", gp, NULL, &d) == 200) {
                status = jstr(d, "status") ? jstr(d, "status") : "pending";
                if (strcmp(status, "pending") && strcmp(status, "running"))
                    break;
            }
            struct timespec ts = {0, 25 * 1000000};
            nanosleep(&ts, NULL);
        }
        if (strcmp(status, "complete")) {
            fail("the deployment did not complete (%s%s%s); the previous release keeps running",
                 status, jstr(d, "error") ? ": " : "", jstr(d, "error") ? jstr(d, "error") : "");
            json_decref(d);
            json_decref(nrel);
            goto out;
        }
        json_decref(d);
    } else {
        cleanup_free char *rp = xasprintf("/apps/%s/release", app_id);
        json_t *req = json_pack("{s:s}", "id", rel_id);
        st = api("PUT", rp, req, NULL);
        json_decref(req);
        if (st != 200) {
            fail("could not set the app's release (HTTP %d)", st);
            json_decref(nrel);
            goto out;
        }
        if (json_object_get(nprocs, "web")) {
            say("=====> Scaling initial release to web=1");
            cleanup_free char *fp = xasprintf("/apps/%s/formations/%s", app_id, rel_id);
            json_t *f = json_pack("{s:s,s:s,s:{s:i}}", "app", app_id, "release", rel_id,
                                  "processes", "web", 1);
            st = api("PUT", fp, f, NULL);
            json_decref(f);
            if (st != 200) {
                fail("could not scale the release (HTTP %d)", st);
                json_decref(nrel);
                goto out;
            }
            say("-----> Waiting for initial web job to start...");
            if (wait_initial(app_id, rel_id, "web", dtimeout) < 0) {
                say(" WARN: scaling initial release down to web=0 due to error");
                json_t *z = json_pack("{s:s,s:s,s:{s:i}}", "app", app_id, "release", rel_id,
                                      "processes", "web", 0);
                api("PUT", fp, z, NULL);
                json_decref(z);
                fail("Initial web job failed to start; see `flynn log` and `flynn ps -a`");
                json_decref(nrel);
                goto out;
            }
            say("=====> Initial web job started");
        }
    }
    json_decref(nrel);
    say("=====> Application deployed");
    rc = 0;
    {
        json_t *app_now = NULL;
        cleanup_free char *ap = xasprintf("/apps/%s", app_id);
        if (api("GET", ap, NULL, &app_now) == 200)
            gc(app_now);
        json_decref(app_now);
    }
out:
    if (rc < 0)
        stop_job();
    free(slug);
    free(ptf);
    free(ptt);
    free(slug_url);
    fs_rm_rf(bdir, NULL);
    json_decref(app);
    json_decref(prev);
    return rc;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *app = getenv("FLYNN_APP"), *app_id = getenv("FLYNN_APP_ID");
    ctl_url = getenv("FLYNN_CONTROLLER_URL");
    const char *key = getenv("FLYNN_CONTROLLER_KEY");
    host_url = env_or("FLYNN_HOST_URL", "http://127.0.0.1:1113");
    blob_url = env_or("FLYNN_BLOBSTORE_URL", "http://127.0.0.1:5002");
    if (!app || !app_id || !ctl_url || !key) {
        fprintf(stdout, "flynn-receiver: run by flynn-gitreceive as a pre-receive hook "
                        "(FLYNN_APP, FLYNN_APP_ID, FLYNN_CONTROLLER_URL, FLYNN_CONTROLLER_KEY)\n");
        return 2;
    }
    {
        cleanup_free char *cred = xasprintf(":%s", key);
        size_t cl = strlen(cred);
        char *b64 = xmalloc(4 * ((cl + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, (int)cl);
        auth_header = xasprintf("Authorization: Basic %s", b64);
        free(b64);
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    char sha[41], ref[256];
    if (pick_ref(sha, ref) < 0) {
        say("-----> Nothing to deploy: the push updates no branch");
        free(auth_header);
        return 0;
    }
    /* one build per app at a time */
    const char *data = env_or("FLYNN_GITRECEIVE_DIR", "/var/lib/flynn/gitreceive");
    cleanup_free char *locks = xasprintf("%s/locks", data);
    cleanup_free char *lockf = xasprintf("%s/%s.lock", locks, app_id);
    fs_mkdir_p(locks, 0700, NULL);
    int lfd = open(lockf, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0) {
        say("-----> Waiting for another push of %s to finish...", app);
        while (flock(lfd, LOCK_EX) < 0 && errno == EINTR && !stopping) {
        }
    }
    say("-----> Deploying %s of %s (%.7s)", ref + 11, app, sha);
    int rc = receive(app, app_id, sha);
    if (rc == 0) {
        /* a clone checks out what runs: HEAD names the deployed branch (git
         * refuses ref writes under the push's quarantine, which HEAD is not) */
        const char *args[] = {ref, NULL};
        sh("env -u GIT_QUARANTINE_PATH git symbolic-ref HEAD \"$1\"", args);
    }
    if (lfd >= 0)
        close(lfd);
    free(auth_header);
    return rc < 0 ? 1 : 0;
}
