/* Deployments: POST /apps/:app/deploy, GET /apps/:app/deployments,
 * GET /deployments/:id. The scheduler runs pending deployments. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "ids.h"
#include "scheduler.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

/* Inside a transaction: the deployment event + record. */
static int put_status(struct controller *c, json_t *dep, const char *status, const char *error,
                      struct err **err)
{
    const char *app_id = jstr(dep, "app"), *id = jstr(dep, "id");
    json_object_set_new(dep, "status", json_string(status));
    if (!strcmp(status, "complete") || !strcmp(status, "failed"))
        json_object_set_new(dep, "finished_at", jnow());
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s}", "app", app_id, "deployment", id, "release",
                           jstr(dep, "new_release"), "status", status);
    if (error)
        json_object_set_new(ev, "error", json_string(error));
    int rc = store_put(c->store, STORE_DEPLOYMENT, id, dep, err);
    if (rc == 0)
        rc = api_event(c, app_id, "deployment", id, ev, err);
    json_decref(ev);
    if (rc == 0 && !strcmp(status, "complete")) {
        json_t *app = store_get(c->store, STORE_APP, app_id, err);
        json_t *rel = app ? store_get(c->store, STORE_RELEASE, jstr(dep, "new_release"), err)
                          : NULL;
        rc = rel ? api_app_set_release(c, app, rel, err) : -1;
        json_decref(app);
        json_decref(rel);
    }
    return rc;
}

int api_deployment_status(struct controller *c, json_t *dep, const char *status,
                          const char *error, struct err **err)
{
    if (api_begin(c, err) < 0)
        return -1;
    if (put_status(c, dep, status, error, err) < 0) {
        api_rollback(c);
        return -1;
    }
    return api_commit(c, err);
}

static bool any_running(const json_t *procs)
{
    const char *t;
    json_t *n;
    json_object_foreach((json_t *)procs, t, n) if (json_integer_value(n) > 0) return true;
    return false;
}

static bool unfinished_deployment(struct controller *c, const char *app_id)
{
    json_t *l = store_list(c->store, STORE_DEPLOYMENT, app_id, NULL, NULL);
    bool busy = false;
    size_t i;
    json_t *d;
    json_array_foreach(l, i, d) busy |= !json_object_get(d, "finished_at");
    json_decref(l);
    return busy;
}

void api_deploy(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *body = api_body(r), *rel = NULL, *dep = NULL, *oldf = NULL;
    struct err *e = NULL;
    if (!body)
        goto out;
    rel = api_release_find(c, jstr(body, "id") ? jstr(body, "id") : "", NULL);
    if (!rel) {
        api_error(r, 400, "validation_error", "id", "release not found");
        goto out;
    }
    const char *app_id = jstr(app, "id"), *old_id = jstr(app, "release");
    if (!jstr(rel, "app_id") || strcmp(jstr(rel, "app_id"), app_id)) {
        api_error(r, 400, "validation_error", "id", "release belongs to another app");
        goto out;
    }
    if (unfinished_deployment(c, app_id)) {
        api_error(r, 400, "validation_error", NULL,
                  "Cannot create deploy, there is already one in progress for this app.");
        goto out;
    }
    oldf = old_id ? api_formation_get(c, app_id, old_id, NULL) : NULL;
    char id[37];
    id_uuid(id);
    dep = json_pack("{s:s,s:s,s:s,s:O,s:o,s:O,s:o}", "id", id, "app", app_id, "new_release",
                    jstr(rel, "id"), "strategy", json_object_get(app, "strategy"), "processes",
                    oldf ? json_deep_copy(json_object_get(oldf, "processes")) : json_object(),
                    "deploy_timeout", json_object_get(app, "deploy_timeout"), "created_at",
                    jnow());
    if (old_id)
        json_object_set_new(dep, "old_release", json_string(old_id));
    if (oldf && json_object_size(json_object_get(oldf, "tags")))
        json_object_set(dep, "tags", json_object_get(oldf, "tags"));
    const char *bs = jstr(json_object_get(app, "meta"), "flynn-deploy-batch-size");
    if (bs && atoi(bs) > 0)
        json_object_set_new(dep, "deploy_batch_size", json_integer(atoi(bs)));
    bool immediate = !oldf || !any_running(json_object_get(oldf, "processes")) ||
                     (old_id && !strcmp(old_id, jstr(rel, "id")));
    if (api_begin(c, &e) < 0)
        goto fail;
    int rc;
    if (immediate) {
        rc = put_status(c, dep, "complete", NULL, &e);
    } else if (!c->sched) {
        /* no hosts to run anything on: move the formation over at once */
        json_t *nf = api_formation_set(c, app_id, jstr(rel, "id"),
                                       json_object_get(oldf, "processes"),
                                       json_object_get(oldf, "tags"), &e);
        json_t *zero = json_object();
        const char *t;
        json_t *n;
        json_object_foreach(json_object_get(oldf, "processes"), t, n)
            json_object_set_new(zero, t, json_integer(0));
        json_t *of = nf ? api_formation_set(c, app_id, old_id, zero, NULL, &e) : NULL;
        rc = of ? put_status(c, dep, "complete", NULL, &e) : -1;
        json_decref(nf);
        json_decref(of);
        json_decref(zero);
    } else {
        rc = put_status(c, dep, "pending", NULL, &e);
    }
    if (rc < 0) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    if (!json_object_get(dep, "finished_at"))
        scheduler_deploy(c->sched, id);
    httpd_reply_json(r, 200, json_incref(dep));
    goto out;
fail:
    api_reply_err(r, e, NULL);
out:
    json_decref(oldf);
    json_decref(dep);
    json_decref(rel);
    json_decref(body);
    json_decref(app);
}

void api_deployments_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_DEPLOYMENT, jstr(app, "id"), NULL, &e);
    json_decref(app);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, l);
}

void api_deployment_get(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    char id[37];
    if (!uuid_normalize(httpd_param(r, "id"), id))
        return httpd_reply_empty(r, 404);
    struct err *e = NULL;
    json_t *d = store_get(c->store, STORE_DEPLOYMENT, id, &e);
    if (!d)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, d);
}
