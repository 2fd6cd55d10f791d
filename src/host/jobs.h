/*
 * jobs: the job table of one host.
 *
 * A job is started by forking a flynn-shim (see main_shim.c) that owns the
 * container; the table follows it through the shim's status pipe ("start",
 * "error") and a pidfd on the shim (exit). Everything about a job lives in
 * RUN_DIR/jobs/ID/ (job.json, shim.json, config.json, log, exit.json), so a
 * restarted daemon re-adopts running jobs and finalises those that ended
 * while it was down (jobs_new does this).
 *
 * Statuses (Flynn's integers): 0 starting, 1 running, 2 done, 3 crashed,
 * 4 failed. Events: "create", "start", "stop", "error".
 */
#ifndef HOST_JOBS_H
#define HOST_JOBS_H

#include <jansson.h>

#include "err.h"

struct event_base;
struct jobs;

enum job_status { JOB_STARTING, JOB_RUNNING, JOB_DONE, JOB_CRASHED, JOB_FAILED };

struct jobs_cfg {
    const char *host_id;
    const char *run_dir;   /* per-boot state: RUN_DIR/jobs, RUN_DIR/crun, RUN_DIR/netns */
    const char *state_dir; /* durable: stacks, slugs, resurrect */
    const char *bridge;    /* NULL or "" disables job networking */
    const char *subnet;    /* "100.100.1.0/24"; gateway is the first address */
    int mtu;
    int stop_timeout; /* default seconds between SIGTERM and SIGKILL */
    const char *shim_path;
    const char *crun;
    int max_finished; /* finished jobs kept in the table */
    const char *runner_dir; /* bound at /runner in jobs with a slug; NULL: the default */
    int slug_keep;          /* cached slugs kept (see slug.h); < 0: 20 */
    int favor_dynmods;      /* remount cgroup2 with favordynmods (cgroups.h) */
    const char *host_path;  /* flynn-host, run by shims as `fetch-slug` (slug.h) */
};

/* Sets up the network, cgroups and default stack, recovers jobs left in
 * RUN_DIR by an earlier run, and evicts cached slugs beyond cfg->slug_keep
 * (the shims of slug jobs evict again when their job ends). */
struct jobs *jobs_new(struct event_base *base, const struct jobs_cfg *cfg, struct err **err);
void jobs_free(struct jobs *j);

/* Starts a job; spec is borrowed (copied). Returns its ActiveJob (caller
 * decrefs). Errors: EINVAL bad spec, EEXIST duplicate ID, EAGAIN no address. */
json_t *jobs_add(struct jobs *j, const char *id, json_t *spec, struct err **err);
/* Map ID -> ActiveJob of every (or every active) job. Caller decrefs. */
json_t *jobs_list(struct jobs *j, int active_only);
/* ActiveJob of one job or NULL (ENOENT). Caller decrefs. */
json_t *jobs_get(struct jobs *j, const char *id, struct err **err);
/* SIGTERM now, SIGKILL after the job's stop timeout. */
int jobs_stop(struct jobs *j, const char *id, struct err **err);
int jobs_signal(struct jobs *j, const char *id, int sig, struct err **err);
/* Path of the job's log file (caller frees) and whether it has ended. */
char *jobs_log_path(struct jobs *j, const char *id, int *ended, struct err **err);
/* The job's directory, RUN_DIR/jobs/ID (caller frees); its shim listens on
 * ATTACH_SOCKET there (attach.h). ENOENT when the job is unknown. */
char *jobs_dir(struct jobs *j, const char *id, struct err **err);
/* Stops every job and waits (running the loop) until all ended. */
void jobs_stop_all(struct jobs *j);
json_t *jobs_status(struct jobs *j);

/* Events: cb gets the event object {"event","job_id","job"} (borrowed). */
typedef void (*jobs_event_cb)(json_t *event, void *arg);
void jobs_subscribe(struct jobs *j, jobs_event_cb cb, void *arg);
void jobs_unsubscribe(struct jobs *j, jobs_event_cb cb, void *arg);

#endif
