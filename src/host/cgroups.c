#include "cgroups.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include "fsutil.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

const char *cgroups_mode(void)
{
    struct statfs fs;
    if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
        return "v2";
    if (statfs("/sys/fs/cgroup/unified", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
        return "hybrid";
    return "v1";
}

int cgroups_setup(struct err **err)
{
    if (strcmp(cgroups_mode(), "hybrid"))
        return 0;
    cleanup_free char *ctrls = fs_read_file("/sys/fs/cgroup/unified/cgroup.controllers", NULL, err);
    if (!ctrls)
        return err_wrap(err, "read cgroup2 controllers");
    char *save = NULL;
    for (char *c = strtok_r(ctrls, " \n", &save); c; c = strtok_r(NULL, " \n", &save)) {
        cleanup_free char *dir = xasprintf("/sys/fs/cgroup/%s", c);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return err_make(err, errno, "mkdir '%s' for the v1 %s hierarchy", dir, c);
        if (mount("cgroup", dir, "cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC, c) < 0 &&
            errno != EBUSY)
            return err_make(err, errno, "mount v1 cgroup hierarchy '%s' on '%s'", c, dir);
        log_info("hybrid cgroups: mounted v1 '%s' at %s so crun accepts the layout", c, dir);
    }
    return 0;
}

/* The mountinfo line of the cgroup2 mount at path: its per-mount options
 * (field 6) and superblock options (the last field), or -1. */
static int mount_options(const char *path, char **mnt_opts, char **sb_opts)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int found = -1;
    while (found < 0 && getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - TYPE SOURCE SUPER */
        char *save = NULL, *fld[6] = {0};
        for (int i = 0; i < 6; i++)
            fld[i] = strtok_r(i ? NULL : line, " \n", &save);
        if (!fld[5] || strcmp(fld[4], path))
            continue;
        char *type = NULL, *super = NULL;
        for (char *t = strtok_r(NULL, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
            if (!strcmp(t, "-")) {
                type = strtok_r(NULL, " \n", &save);
                strtok_r(NULL, " \n", &save); /* source */
                super = strtok_r(NULL, " \n", &save);
                break;
            }
        if (type && super && !strcmp(type, "cgroup2")) {
            *mnt_opts = xstrdup(fld[5]);
            *sb_opts = xstrdup(super);
            found = 0;
        }
    }
    free(line);
    fclose(f);
    return found;
}

static int has_option(const char *opts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = opts; (p = strstr(p, name)); p += n)
        if ((p == opts || p[-1] == ',') && (p[n] == ',' || !p[n]))
            return 1;
    return 0;
}

int cgroups_favor_dynmods(struct err **err)
{
    const char *path = NULL;
    struct statfs fs;
    if (statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
        path = "/sys/fs/cgroup";
    else if (statfs("/sys/fs/cgroup/unified", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
        path = "/sys/fs/cgroup/unified";
    if (!path)
        return 0;
    cleanup_free char *mnt = NULL;
    cleanup_free char *sb = NULL;
    if (mount_options(path, &mnt, &sb) < 0)
        return err_makex(err, ENOENT, "no cgroup2 mount at %s in /proc/self/mountinfo", path);
    if (has_option(sb, "favordynmods"))
        return 0;
    /* a remount replaces both kinds of options: keep every one there is */
    unsigned long flags = MS_REMOUNT;
    static const struct {
        const char *name;
        unsigned long flag;
    } mflags[] = {{"ro", MS_RDONLY},         {"nosuid", MS_NOSUID},         {"nodev", MS_NODEV},
                  {"noexec", MS_NOEXEC},     {"noatime", MS_NOATIME},       {"nodiratime", MS_NODIRATIME},
                  {"relatime", MS_RELATIME}, {"strictatime", MS_STRICTATIME}};
    for (size_t i = 0; i < sizeof(mflags) / sizeof(mflags[0]); i++)
        if (has_option(mnt, mflags[i].name))
            flags |= mflags[i].flag;
    struct strbuf data = STRBUF_INIT;
    char *save = NULL;
    for (char *o = strtok_r(sb, ",", &save); o; o = strtok_r(NULL, ",", &save))
        if (strcmp(o, "rw") && strcmp(o, "ro"))
            strbuf_addf(&data, "%s,", o);
    strbuf_addf(&data, "favordynmods");
    int rc = mount("cgroup2", path, "cgroup2", flags, data.buf);
    int e = errno;
    strbuf_release(&data);
    if (rc < 0)
        return err_make(err, e, "remount %s with favordynmods", path);
    log_info("cgroups: remounted %s with favordynmods (a job's cgroup move no longer waits for an "
             "RCU grace period; --no-favordynmods leaves it alone)",
             path);
    return 0;
}

static long long field(const char *path, const char *key)
{
    cleanup_free char *s = fs_read_file(path, NULL, NULL);
    if (!s)
        return -1;
    size_t kl = strlen(key);
    for (char *line = s; line && *line;) {
        if (!strncmp(line, key, kl) && line[kl] == ' ')
            return atoll(line + kl + 1);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return -1;
}

int cgroups_oom_killed(const char *cgpath)
{
    const char *mode = cgroups_mode();
    cleanup_free char *p = !strcmp(mode, "v2")
                               ? xasprintf("/sys/fs/cgroup%s/memory.events", cgpath)
                               : xasprintf("/sys/fs/cgroup/memory%s/memory.oom_control", cgpath);
    return field(p, "oom_kill") > 0;
}
