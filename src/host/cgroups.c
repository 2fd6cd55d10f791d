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
