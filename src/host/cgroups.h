/*
 * cgroups: detect the machine's cgroup layout and make it usable by crun.
 *
 * Layouts: "v2" (only cgroup2 at /sys/fs/cgroup), "v1" (only v1
 * hierarchies), "hybrid" (v1 controllers with a cgroup2 hierarchy at
 * /sys/fs/cgroup/unified). Debian's crun 1.8.1 refuses hybrid mode while
 * the v2 hierarchy has controllers enabled ("cgroups in hybrid mode not
 * supported, drop all controllers from cgroupv2"): a controller that is not
 * mounted as v1 (hugetlb on this kind of machine) shows up in the v2 root.
 * cgroups_setup mounts a v1 hierarchy for each such controller, which moves
 * it out of v2; nothing else changes and no reboot is needed.
 */
#ifndef HOST_CGROUPS_H
#define HOST_CGROUPS_H

#include "err.h"

/* Returns "v2", "v1" or "hybrid" (static string). */
const char *cgroups_mode(void);
/* Makes the layout usable by crun (see above); idempotent. */
int cgroups_setup(struct err **err);
/* Remounts the cgroup2 hierarchy (v2 or hybrid) with "favordynmods" when it
 * lacks it, keeping its other options. Moving a process into a cgroup takes
 * a global lock whose writers otherwise wait for an RCU grace period: ~10-20
 * ms of every `crun run` on an idle machine (bench/job_start.py). The cost,
 * per the kernel's cgroup-v2 guide, is somewhat dearer forks and exits. A
 * machine-wide setting; kept when the daemon stops. 0 when nothing needed
 * doing or it was done, -1 with *err. */
int cgroups_favor_dynmods(struct err **err);
/* Whether the job's cgroup (crun cgroupsPath "/flynn/ID") recorded an OOM
 * kill; reads v1 memory.oom_control or v2 memory.events. */
int cgroups_oom_killed(const char *cgpath);

#endif
