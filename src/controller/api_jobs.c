/* Jobs: /apps/:app/jobs, /active-jobs. The jobs table is filled by the
 * scheduler through api_job_save. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "scheduler.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

int api_job_save(struct controller *c, json_t *job, struct err **err)
{
    const char *uuid = jstr(job, "uuid");
    json_t *old = store_get(c->store, STORE_JOB, uuid, NULL);
    const char *old_state = old ? jstr(old, "state") : NULL;
    const char *state = jstr(job, "state");
    bool changed = !old_state || !state || strcmp(old_state, state);
    if (old && json_object_get(old, "created_at"))
        json_object_set(job, "created_at", json_object_get(old, "created_at"));
    else if (!json_object_get(job, "created_at"))
        json_object_set_new(job, "created_at", jnow());
    json_object_set_new(job, "updated_at", jnow());
    json_decref(old);
    if (api_begin(c, err) < 0)
        return -1;
    if (store_put(c->store, STORE_JOB, uuid, job, err) < 0 ||
        (changed && api_event(c, jstr(job, "app"), "job", uuid, job, err) < 0)) {
        api_rollback(c);
        return -1;
    }
    return api_commit(c, err);
}

/* A job reference is "HOSTID-UUID" or a bare UUID; returns the UUID. */
static bool job_uuid(const char *ref, char out[37])
{
    if (uuid_normalize(ref, out))
        return true;
    const char *dash = ref ? strchr(ref, '-') : NULL;
    return dash && uuid_normalize(dash + 1, out);
}

static json_t *path_job(struct httpd_req *r, struct controller *c, json_t **app)
{
    *app = api_path_app(r, c);
    if (!*app)
        return NULL;
    char uuid[37];
    json_t *job = job_uuid(httpd_param(r, "job"), uuid)
                      ? store_get(c->store, STORE_JOB, uuid, NULL)
                      : NULL;
    const char *ja = job ? jstr(job, "app") : NULL;
    if (!job || !ja || strcmp(ja, jstr(*app, "id"))) {
        json_decref(job);
        json_decref(*app);
        *app = NULL;
        httpd_reply_empty(r, 404);
        return NULL;
    }
    return job;
}

void api_jobs_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_JOB, jstr(app, "id"), NULL, &e);
    json_decref(app);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, l);
}

void api_jobs_get(struct httpd_req *r, void *arg)
{
    json_t *app;
    json_t *job = path_job(r, arg, &app);
    if (!job)
        return;
    json_decref(app);
    httpd_reply_json(r, 200, job);
}

void api_jobs_delete(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app;
    json_t *job = path_job(r, c, &app);
    if (!job)
        return;
    struct err *e = NULL;
    if (!jstr(job, "host_id") || !c->sched)
        api_error(r, 400, "validation_error", NULL,
                  "cannot kill a job which has not been placed on a host");
    else if (scheduler_stop_job(c->sched, job, &e) < 0)
        api_reply_err(r, e, NULL);
    else
        api_reply_ok(r);
    json_decref(job);
    json_decref(app);
}

static const char *const job_states[] = {"pending", "blocked", "starting", "up",
                                         "stopping", "down",    "crashed",  "failed"};

void api_jobs_put(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *body = api_body(r);
    struct err *e = NULL;
    char uuid[37];
    if (!body)
        goto out;
    if (!uuid_normalize(httpd_param(r, "job"), uuid)) {
        api_error(r, 400, "validation_error", "uuid", "job uuid is invalid");
        goto out;
    }
    const char *state = jstr(body, "state");
    bool ok = false;
    for (size_t i = 0; state && i < ARRAY_SIZE(job_states); i++)
        ok |= !strcmp(state, job_states[i]);
    if (!ok) {
        api_error(r, 400, "validation_error", "state", "state is invalid");
        goto out;
    }
    json_object_set_new(body, "uuid", json_string(uuid));
    json_object_set(body, "app", json_object_get(app, "id"));
    if (api_job_save(c, body, &e) < 0)
        api_reply_err(r, e, NULL);
    else
        httpd_reply_json(r, 200, json_incref(body));
out:
    json_decref(body);
    json_decref(app);
}

void api_active_jobs(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_JOB, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    json_t *out = json_array();
    size_t i;
    json_t *j;
    json_array_foreach(l, i, j)
    {
        const char *s = jstr(j, "state");
        if (s && (!strcmp(s, "pending") || !strcmp(s, "starting") || !strcmp(s, "up") ||
                  !strcmp(s, "stopping")))
            json_array_append(out, j);
    }
    json_decref(l);
    httpd_reply_json(r, 200, out);
}

void api_jobs_run(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *body = NULL, *rel = NULL, *job = NULL;
    struct err *e = NULL;
    const char *up = httpd_header(r, "Upgrade");
    bool attach = up && *up;
    if (attach && !httpd_wants_upgrade(r, "flynn-attach/0")) {
        api_error(r, 400, "validation_error", NULL, "cannot upgrade to '%s'", up);
        goto out;
    }
    body = api_body(r);
    if (!body)
        goto out;
    rel = api_release_find(c, jstr(body, "release") ? jstr(body, "release") : "", NULL);
    if (!rel) {
        api_error(r, 400, "validation_error", "release", "release is invalid");
        goto out;
    }
    /* the CLI still sends entrypoint + cmd next to args; they only matter alone */
    json_t *args = json_object_get(body, "args");
    if (!json_array_size(args)) {
        json_t *a = json_array();
        if (json_is_array(json_object_get(body, "entrypoint")))
            json_array_extend(a, json_object_get(body, "entrypoint"));
        if (json_is_array(json_object_get(body, "cmd")))
            json_array_extend(a, json_object_get(body, "cmd"));
        json_object_set_new(body, "args", a);
        args = a;
    }
    size_t i;
    json_t *v;
    json_array_foreach(args, i, v) if (!json_is_string(v))
    {
        api_error(r, 400, "validation_error", "args", "args must be an array of strings");
        goto out;
    }
    const char *field = "env";
    if (!validate_string_map(json_object_get(body, "env"), true) ||
        !(field = "meta", validate_string_map(json_object_get(body, "meta"), true))) {
        api_error(r, 400, "validation_error", field, "%s must be an object of strings", field);
        goto out;
    }
    if (!c->sched) {
        api_error(r, 503, "service_unavailable", NULL, "no hosts are configured");
        goto out;
    }
    if (attach) {
        api_jobs_attach(r, c, app, rel, body);
        goto out;
    }
    job = scheduler_run_job(c->sched, app, rel, body, &e);
    if (!job)
        api_reply_err(r, e, "args");
    else
        httpd_reply_json(r, 200, json_incref(job));
out:
    json_decref(job);
    json_decref(rel);
    json_decref(body);
    json_decref(app);
}
