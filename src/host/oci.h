/*
 * oci: the only module that knows crun's config.json (OCI runtime spec 1.0).
 *
 * oci_config builds the runtime config of one job: namespaces (mount, pid,
 * uts, ipc and net; the net namespace is the pinned one the shim makes, or
 * the host's for host-network jobs), Docker's default capability set,
 * noNewPrivileges, a seccomp deny-list, cgroup limits from the job's
 * resources, the overlay root with the host's /usr bound read-only, and a
 * tmpfs /tmp; a job with a slug also gets the runner bound read-only at
 * /runner.
 */
#ifndef HOST_OCI_H
#define HOST_OCI_H

#include <jansson.h>

#include "err.h"

struct oci_job {
    const char *id;
    json_t *spec;           /* the validated host Job (borrowed) */
    const char *rootfs;     /* merged overlay directory */
    const char *netns_path; /* NULL for host network */
    const char *job_dir;    /* holds hosts, hostname, resolv.conf */
    const char *ip;         /* "" for host network */
    const char *hostname;
    const char *cgroups_path; /* "/flynn/ID" */
    const char *runner_dir;   /* bound read-only at /runner; NULL for none */
    const char *init_path;    /* flynn-init, bound at /.flynn-init and run as PID 1 with
                                 the job's args after it (attached jobs); NULL: none */
};

/* Returns the config.json object; caller decrefs. A job with config.tty
 * gets a terminal (process.terminal: crun hands its pty to the shim). */
json_t *oci_config(const struct oci_job *j, struct err **err);
/* Sets process.consoleSize in the config.json at path (the shim does this
 * when the first client of a tty job says its window size). */
int oci_set_console_size(const char *path, unsigned rows, unsigned cols, struct err **err);
/* Validates a host Job body (see docs/internals/host-api.md); on failure
 * sets *err (EINVAL) naming the field. path_id is the ID from the URL. */
int oci_validate_job(json_t *spec, const char *path_id, struct err **err);
/* The job's env as "K=V" strings (job env, then PORT, PORT_n, EXTERNAL_IP,
 * FLYNN_JOB_ID); returns a JSON array. */
json_t *oci_env(json_t *spec, const char *id, const char *ip);

#endif
