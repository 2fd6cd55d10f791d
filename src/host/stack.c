#include "stack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "proc.h"
#include "xalloc.h"

static int valid_name(const char *n)
{
    if (!*n || strlen(n) > 64)
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

char *stack_path(const char *state_dir, const char *name, struct err **err)
{
    if (!valid_name(name)) {
        err_makex(err, EINVAL, "stack name '%s' is invalid", name);
        return NULL;
    }
    char *p = xasprintf("%s/stacks/%s", state_dir, name);
    cleanup_free char *done = xasprintf("%s/.complete", p);
    if (!fs_exists(done)) {
        err_makex(err, ENOENT, "stack '%s' does not exist", name);
        free(p);
        return NULL;
    }
    return p;
}

char *stack_ensure_default(const char *state_dir, struct err **err)
{
    cleanup_free char *dir = xasprintf("%s/stacks/default", state_dir);
    cleanup_free char *done = xasprintf("%s/.complete", dir);
    if (fs_exists(done))
        return xstrdup(dir);
    log_info("building the default stack from the host's Debian in %s", dir);
    if (fs_rm_rf(dir, err) < 0 || fs_mkdir_p(dir, 0755, err) < 0)
        return NULL;
    static const char *dirs[] = {"usr", "etc", "tmp", "proc", "sys", "dev", "app",
                                 "root", "home", "var", "var/tmp", "var/lib", "run", "mnt",
                                 "opt", "srv", "media"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        cleanup_free char *p = xasprintf("%s/%s", dir, dirs[i]);
        if (mkdir(p, strcmp(dirs[i], "tmp") && strcmp(dirs[i], "var/tmp") ? 0755 : 01777) < 0 &&
            errno != EEXIST) {
            err_make(err, errno, "mkdir '%s'", p);
            return NULL;
        }
    }
    static const char *links[][2] = {
        {"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}};
    for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
        cleanup_free char *p = xasprintf("%s/%s", dir, links[i][0]);
        cleanup_free char *hostp = xasprintf("/%s", links[i][0]);
        struct stat st;
        if (lstat(hostp, &st) == 0 && !S_ISLNK(st.st_mode)) {
            /* not a merged-/usr host: bind the directory instead */
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                err_make(err, errno, "mkdir '%s'", p);
                return NULL;
            }
            continue;
        }
        if (symlink(links[i][1], p) < 0 && errno != EEXIST) {
            err_make(err, errno, "symlink '%s'", p);
            return NULL;
        }
    }
    /* /etc without secrets; tar keeps symlinks (alternatives) as they are */
    cleanup_free char *etc = xasprintf("%s/etc", dir);
    cleanup_free char *script = xasprintf(
        "tar -C /etc --exclude=./shadow --exclude=./shadow- --exclude=./gshadow "
        "--exclude=./gshadow- --exclude=./ssh --exclude=./sudoers --exclude=./sudoers.d "
        "--exclude=./ssl/private --exclude=./flynn --exclude=./machine-id "
        "--exclude=./security/opasswd -cf - . | tar -C '%s' -xf -",
        etc);
    const char *argv[] = {"sh", "-c", script, NULL};
    struct strbuf out = STRBUF_INIT;
    int rc = proc_run(argv, &out, err);
    if (rc < 0) {
        strbuf_release(&out);
        return NULL;
    }
    if (rc != 0) {
        err_makex(err, EIO, "copy /etc into the stack failed (status %d): %s", rc, out.buf);
        strbuf_release(&out);
        return NULL;
    }
    strbuf_release(&out);
    static const char *empty[] = {"etc/hostname", "etc/hosts", "etc/resolv.conf"};
    for (size_t i = 0; i < ARRAY_SIZE(empty); i++) {
        cleanup_free char *p = xasprintf("%s/%s", dir, empty[i]);
        unlink(p); /* a symlink to /run/... on some hosts; jobs bind their own file here */
        if (fs_write_file(p, "", 0, 0644, 0, err) < 0)
            return NULL;
    }
    if (fs_write_file(done, "", 0, 0644, 1, err) < 0)
        return NULL;
    return xstrdup(dir);
}
