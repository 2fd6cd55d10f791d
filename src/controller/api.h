/*
 * api: the HTTP handlers of flynn-controller (api_<noun>.c) and the helpers
 * they share (api_util.c). routes.c lists every handler in one table.
 *
 * Handler contract: answer exactly once. Lookups of missing objects answer a
 * bare 404 (no JSON; the Go CLI relies on it). Errors are Flynn's JSON
 * {"code","message","detail"?,"retry"}. Successes are always 200.
 */
#ifndef CONTROLLER_API_H
#define CONTROLLER_API_H

#include <jansson.h>
#include <stdbool.h>

#include "controller.h"
#include "err.h"
#include "httpd.h"

/* --- helpers (api_util.c) --- */

/* Checks the Authorization header; answers a bare 401 and returns false
 * when it fails. */
bool api_authorized(struct httpd_req *r, struct controller *c);
/* Password from Basic/Bearer auth (malloc'd) or NULL when none. */
char *api_auth_password(struct httpd_req *r);
/* Constant-time check of a password against the configured keys. */
bool api_key_ok(struct controller *c, const char *pw);
/* Parses the request body as a JSON object; requires a JSON Content-Type.
 * On failure answers 400 itself and returns NULL. */
json_t *api_body(struct httpd_req *r);
/* Error reply with an optional detail {"field": field}. */
void api_error(struct httpd_req *r, int status, const char *code, const char *field,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Consumes e: ENOENT → bare 404, EINVAL → validation_error (field detail),
 * EEXIST → object_exists, else unknown_error with retry. */
void api_reply_err(struct httpd_req *r, struct err *e, const char *field);
void api_reply_ok(struct httpd_req *r); /* 200, empty body */
/* Borrowed string field or NULL. */
const char *jstr(const json_t *o, const char *key);
/* Finds an app by name or UUID (dashed or not); ENOENT when missing. */
json_t *api_app_find(struct controller *c, const char *ref, struct err **err);
/* Finds a release by UUID (dashed or not). */
json_t *api_release_find(struct controller *c, const char *ref, struct err **err);
/* Looks up :app from the path; on failure answers (bare 404) and returns NULL. */
json_t *api_path_app(struct httpd_req *r, struct controller *c);

/* Transactions: begin; commit also pushes new events to SSE subscribers. */
int api_begin(struct controller *c, struct err **err);
int api_commit(struct controller *c, struct err **err);
void api_rollback(struct controller *c);
/* Writes an event row (inside a transaction). data borrowed. */
int api_event(struct controller *c, const char *app_id, const char *type, const char *object_id,
              const json_t *data, struct err **err);
/* Puts obj and writes its event in one transaction (begin..commit). */
int api_save(struct controller *c, int kind, const char *id, const json_t *obj,
             const char *app_id, const char *event_type, struct err **err);
/* Fresh RFC 3339 timestamp as a JSON string. */
json_t *jnow(void);

/* Inside a transaction: adds the default HTTP route NAME.DOMAIN → NAME-web
 * for a new app (api_routes.c). */
int api_route_add_default(struct controller *c, const json_t *app, struct err **err);
/* Inside a transaction: deletes the app's routes; returns them. */
json_t *api_routes_delete_app(struct controller *c, const char *app_id, struct err **err);

/* Inside a transaction: makes rel the app's current release (updates app
 * in place and in the store) and writes the app_release event. */
int api_app_set_release(struct controller *c, json_t *app, const json_t *rel, struct err **err);

/* Inside a transaction: sets the formation (app, release) to processes
 * (borrowed; NULL keeps the current counts) and tags (NULL keeps), writes the
 * legacy "scale" event; returns the new formation (caller decrefs). */
json_t *api_formation_set(struct controller *c, const char *app_id, const char *release_id,
                          const json_t *processes, const json_t *tags, struct err **err);
/* ExpandedFormation of f (new reference). */
json_t *api_formation_expand(struct controller *c, const json_t *f);
/* The formation of (app, release) or NULL (ENOENT). */
json_t *api_formation_get(struct controller *c, const char *app_id, const char *release_id,
                          struct err **err);

/* Upserts a Job (by its "uuid"; "app" must be set) in its own
 * transaction, writing a `job` event when its state changed. */
/* Routers' feed (api_router.c): GET /router/table[?wait=GENERATION] answers
 * {"generation": N, "routes": [route + "backends": ["IP:PORT"]]} at once,
 * or, when wait names the current generation, when it changes (or after
 * 25 s with the same one). api_router_changed marks it stale. */
void api_router_table(struct httpd_req *r, void *arg);
void api_router_changed(struct controller *c);
void api_router_free(struct controller *c);

int api_job_save(struct controller *c, json_t *job, struct err **err);

/* Attached one-off jobs (api_attach.c): takes over POST /apps/:app/jobs
 * with "Upgrade: flynn-attach/0" once api_jobs_run validated the NewJob
 * (app, rel, body borrowed): places the job, attaches to it on its host,
 * answers 101 and relays. api_attach_free_all ends those in progress. */
void api_jobs_attach(struct httpd_req *r, struct controller *c, const json_t *app,
                     const json_t *rel, json_t *body);
void api_attach_free_all(struct controller *c);

/* Records a deployment status change in its own transaction: writes the
 * `deployment` event (with error when non-NULL). "complete" also switches the
 * app's current release and sets finished_at; "failed" sets finished_at. */
int api_deployment_status(struct controller *c, json_t *dep, const char *status,
                          const char *error, struct err **err);

/* --- handlers --- */
#define H(name) void name(struct httpd_req *r, void *arg)
H(api_ping);
H(api_ca_cert);
H(api_status);
H(api_well_known_status);
H(api_apps_create);
H(api_apps_list);
H(api_apps_get);
H(api_apps_update);
H(api_apps_delete);
H(api_artifacts_create);
H(api_artifacts_list);
H(api_artifacts_get);
H(api_releases_create);
H(api_releases_list);
H(api_releases_get);
H(api_app_releases_list);
H(api_app_release_get);
H(api_app_release_set);
H(api_app_release_delete);
H(api_formations_put);
H(api_formations_get);
H(api_formations_delete);
H(api_app_formations_list);
H(api_formations_list);
H(api_scale_put);
H(api_jobs_list);
H(api_jobs_get);
H(api_jobs_delete);
H(api_jobs_put);
H(api_jobs_run);
H(api_app_log);
/* Ends the log requests still waiting on the log aggregator (shutdown). */
void api_logs_free(struct controller *c);
H(api_providers_create);
H(api_providers_list);
H(api_providers_get);
H(api_resources_create);
H(api_resources_list);
H(api_resources_all);
H(api_app_resources);
H(api_resources_get);
H(api_resources_put);
H(api_resources_delete);
H(api_resource_app_add);
H(api_resource_app_remove);
H(api_sinks_create);
H(api_sinks_list);
H(api_sinks_get);
H(api_sinks_delete);
H(api_app_gc);
H(api_volumes_list);
H(api_app_volumes_list);
H(api_app_volume_get);
H(api_active_jobs);
H(api_events_get);
H(api_event_get);
H(api_deploy);
H(api_deployments_list);
H(api_deployment_get);
H(api_routes_all);
H(api_routes_create);
H(api_routes_list);
H(api_routes_get);
H(api_routes_update);
H(api_routes_delete);
#undef H

#endif
