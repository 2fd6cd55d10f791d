#include "slug.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "test.h"
#include "xalloc.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define SHA_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

/* A cached slug whose last use was `age` seconds ago. */
static void fake_slug(const char *cache, const char *sha, int age)
{
    char *app = xasprintf("%s/%s/root/app", cache, sha);
    char *ready = xasprintf("%s/%s/ready", cache, sha);
    char *f = xasprintf("%s/Procfile", app);
    char *lock = xasprintf("%s/%s.lock", cache, sha);
    fs_mkdir_p(app, 0755, NULL);
    fs_write_file(f, "web: x\n", 7, 0644, 0, NULL);
    fs_write_file(ready, "", 0, 0644, 0, NULL);
    fs_write_file(lock, "", 0, 0600, 0, NULL);
    struct timespec ts[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    utimensat(AT_FDCWD, ready, ts, 0);
    free(app);
    free(ready);
    free(f);
    free(lock);
}

static int has(const char *cache, const char *name)
{
    char *p = xasprintf("%s/%s", cache, name);
    int r = fs_exists(p);
    free(p);
    return r;
}

int main(void)
{
    ok(slug_sha256_is_valid(SHA_A), "64 hex digits");
    ok(!slug_sha256_is_valid(SHA_A "a"), "65 digits");
    ok(!slug_sha256_is_valid("g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
       "not hex");
    char *d = slug_dir("/c", "ABCDEF6789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    is_str(d, "/c/abcdef6789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
           "slug dir is lowercase");
    free(d);

    char tmpl[] = "/tmp/slug-test-XXXXXX";
    const char *cache = mkdtemp(tmpl);
    ok(cache != NULL, "temp cache");
    fake_slug(cache, SHA_A, 400); /* oldest, but in use */
    fake_slug(cache, SHA_B, 300);
    fake_slug(cache, SHA_C, 10); /* newest */
    char *tmp = xasprintf("%s/.tmp-%s", cache, SHA_D);
    char *trash = xasprintf("%s/.trash-0123", cache);
    char *orphan = xasprintf("%s/%s.lock", cache, SHA_D);
    fs_mkdir_p(tmp, 0755, NULL);
    fs_mkdir_p(trash, 0755, NULL);
    fs_write_file(orphan, "", 0, 0600, 0, NULL);

    char *lockp = xasprintf("%s/%s.lock", cache, SHA_A);
    int fd = open(lockp, O_RDWR | O_CLOEXEC);
    ok(fd >= 0 && flock(fd, LOCK_SH) == 0, "a job holds slug A");
    struct err *e = NULL;
    is_int(slug_cache_evict(cache, 1, &e), 1, "one slug evicted");
    ok(has(cache, SHA_A), "slug in use kept although oldest");
    ok(!has(cache, SHA_B) && !has(cache, SHA_B ".lock"), "unused old slug and its lock removed");
    ok(has(cache, SHA_C) && has(cache, SHA_C ".lock"), "newest slug kept");
    ok(!has(cache, ".tmp-" SHA_D) && !has(cache, SHA_D ".lock"), "interrupted fetch cleaned");
    ok(!has(cache, ".trash-0123"), "trash removed");
    close(fd);
    is_int(slug_cache_evict(cache, 1, &e), 1, "released slug evicted next time");
    ok(!has(cache, SHA_A) && has(cache, SHA_C), "only the newest is left");
    is_int(slug_cache_evict(cache, 0, &e), 1, "keep 0 evicts every unused slug");

    /* nothing listens on port 1: the error names the URL; no lock remains */
    struct slug_ref ref = {.url = "http://127.0.0.1:1/slugs/x.tgz", .sha256 = SHA_D};
    ok(slug_acquire(cache, &ref, "/nonexistent/flynn-host", &e) < 0 && e && strstr(e->msg, ref.url),
       "fetch error names URL");
    if (e)
        printf("# %s\n", e->msg);
    err_free(e);
    e = NULL;
    ok(!has(cache, SHA_D) && !has(cache, SHA_D ".lock") && !has(cache, ".tmp-" SHA_D ".tgz"),
       "a failed fetch leaves nothing");
    is_int(slug_cache_evict(cache, 1, NULL), 0, "an empty cache");
    is_int(slug_cache_evict("/nonexistent/slugs", 1, NULL), 0, "a missing cache is empty");

    fs_rm_rf(cache, NULL);
    free(tmp);
    free(trash);
    free(orphan);
    free(lockp);
    return test_done();
}
