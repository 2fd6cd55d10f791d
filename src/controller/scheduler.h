/*
 * scheduler: makes the jobs running on the hosts match the formations
 * (flynn-api.md §10, §11). It runs on the controller's event loop and never
 * blocks it: host calls are asynchronous evhttp client requests.
 *
 * Per host (--host URL, several allowed) it lists GET /host/jobs, then
 * follows the host's SSE event stream, reconnecting with backoff. On every
 * poke (a formation or deployment changed) and on a periodic tick it
 * reconciles: for each formation it starts missing jobs (PUT
 * /host/jobs/HOSTID-UUID on the least-loaded host) and stops extra ones
 * (DELETE), restarting crashed jobs with exponential backoff. Every job
 * state change is written to the jobs table with a `job` event.
 *
 * Deployments (api_deployments.c creates them) are driven here too.
 *
 * All functions accept a NULL scheduler (no hosts configured) and then do
 * nothing, so handlers need not check.
 */
#ifndef CONTROLLER_SCHEDULER_H
#define CONTROLLER_SCHEDULER_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

struct controller;
struct scheduler;

/* Result of scheduler_host_get: status 0 when no answer came, -1 when the
 * scheduler is shutting down (data NULL); data is borrowed for the call. */
typedef void (*scheduler_raw_cb)(int status, const char *data, size_t len, void *arg);

struct scheduler *scheduler_new(struct controller *c);
/* Adds a host by its API base URL (http://HOST:PORT); call before start. */
int scheduler_add_host(struct scheduler *s, const char *url, struct err **err);
void scheduler_start(struct scheduler *s);
void scheduler_free(struct scheduler *s);
/* Schedules a reconcile pass soon (coalesced). */
void scheduler_poke(struct scheduler *s);
/* Asks the job's host to stop it. job is a Job object (borrowed). */
int scheduler_stop_job(struct scheduler *s, const json_t *job, struct err **err);
/* Starts a one-off job (NewJob req, flynn-api.md §4.6) of release rel under
 * app on the least-loaded host; returns the Job stub {id, uuid, host_id,
 * release, args} (caller decrefs). EBUSY when no host is synced. */
json_t *scheduler_run_job(struct scheduler *s, const json_t *app, const json_t *rel,
                          const json_t *req, struct err **err);
/* Attached one-off jobs (flynn run): as scheduler_run_job, and the host job
 * gets config.stdin and config.tty (req's "tty"). cb runs once, when the
 * host took the job (err NULL) or refused it (err says why; the job is
 * recorded failed), unless scheduler_run_cancel(uuid) comes first. */
typedef void (*scheduler_placed_cb)(const char *err, void *arg);
json_t *scheduler_run_attached(struct scheduler *s, const json_t *app, const json_t *rel,
                               const json_t *req, scheduler_placed_cb cb, void *arg,
                               struct err **err);
void scheduler_run_cancel(struct scheduler *s, const char *uuid);
/* GET path on the host with that ID (asynchronously); cb runs exactly once
 * unless this returns -1 (ENOENT: unknown host). */
int scheduler_host_get(struct scheduler *s, const char *host_id, const char *path,
                       scheduler_raw_cb cb, void *arg, struct err **err);
/* Address of the host with that ID (borrowed); -1 when unknown. */
int scheduler_host_addr(struct scheduler *s, const char *host_id, const char **addr, int *port);
/* Service name -> ["IP:PORT", ...] of the jobs that are up and passed their
 * check (the router's backends), the one up longest first: that one is the
 * service's leader (`leader` routes go to it alone) and stays leader until
 * it leaves, also across controller restarts, as with Flynn's discoverd.
 * Caller decrefs; {} for a NULL scheduler. */
json_t *scheduler_service_backends(struct scheduler *s);
/* Starts driving a deployment that api_deployments.c recorded as pending. */
void scheduler_deploy(struct scheduler *s, const char *deployment_id);

#endif
