/* /apps: create, list, get, update (also /meta), delete. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "ids.h"
#include "scheduler.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

static const char *const strategies[] = {
    "all-at-once", "one-by-one", "one-down-one-up", "in-batches", "sirenia", "discoverd-meta",
};

static bool strategy_ok(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(strategies); i++)
        if (!strcmp(s, strategies[i]))
            return true;
    return false;
}

/* Applies the updatable fields (meta, strategy, deploy_timeout) of body to app. */
static int apply_fields(json_t *app, const json_t *body, const char **field, struct err **err)
{
    json_t *meta = json_object_get(body, "meta");
    if (!validate_string_map(meta, true)) {
        *field = "meta";
        return err_makex(err, EINVAL, "meta must be an object of strings");
    }
    if (json_is_object(meta))
        json_object_set_new(app, "meta", json_deep_copy(meta));
    json_t *st = json_object_get(body, "strategy");
    if (st && !json_is_null(st) && !(json_is_string(st) && !*json_string_value(st))) {
        if (!json_is_string(st) || !strategy_ok(json_string_value(st))) {
            *field = "strategy";
            return err_makex(err, EINVAL, "strategy is invalid");
        }
        json_object_set(app, "strategy", st);
    }
    json_t *dt = json_object_get(body, "deploy_timeout");
    if (dt && !json_is_null(dt)) {
        if (!json_is_integer(dt) || json_integer_value(dt) < 0 ||
            json_integer_value(dt) > 86400) {
            *field = "deploy_timeout";
            return err_makex(err, EINVAL, "deploy_timeout is invalid");
        }
        if (json_integer_value(dt) > 0)
            json_object_set(app, "deploy_timeout", dt);
    }
    return 0;
}

void api_apps_create(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *body = api_body(r);
    if (!body)
        return;
    struct err *e = NULL;
    const char *field = NULL;
    json_t *app = json_object();
    char id[37];
    json_t *jid = json_object_get(body, "id");
    if (json_is_string(jid) && *json_string_value(jid)) {
        if (!uuid_normalize(json_string_value(jid), id)) {
            field = "id";
            err_makex(&e, EINVAL, "id is invalid");
            goto fail;
        }
    } else if (jid && !json_is_null(jid) && !json_is_string(jid)) {
        field = "id";
        err_makex(&e, EINVAL, "id is invalid");
        goto fail;
    } else {
        id_uuid(id);
    }
    json_t *jname = json_object_get(body, "name");
    char gen[64];
    const char *name = NULL;
    if (jname && !json_is_null(jname)) {
        if (!json_is_string(jname)) {
            field = "name";
            err_makex(&e, EINVAL, "name is invalid");
            goto fail;
        }
        name = json_string_value(jname);
    }
    if (name && *name) {
        if (!validate_app_name(name)) {
            field = "name";
            err_makex(&e, EINVAL, "name is invalid");
            goto fail;
        }
    } else {
        /* a generated name that is still free */
        for (int i = 0; i < 20; i++) {
            app_name_generate(gen);
            struct err *le = NULL;
            json_t *x = store_app_by_name(c->store, gen, &le);
            err_free(le);
            if (!x)
                break;
            json_decref(x);
        }
        name = gen;
    }
    json_object_set_new(app, "id", json_string(id));
    json_object_set_new(app, "name", json_string(name));
    json_object_set_new(app, "meta", json_object());
    json_object_set_new(app, "strategy", json_string("all-at-once"));
    json_object_set_new(app, "deploy_timeout", json_integer(120));
    if (apply_fields(app, body, &field, &e) < 0)
        goto fail;
    json_t *meta = json_object_get(app, "meta");
    if (!json_object_get(meta, "gc.max_inactive_slug_releases"))
        json_object_set_new(meta, "gc.max_inactive_slug_releases", json_string("10"));
    json_object_set_new(app, "created_at", jnow());
    json_object_set(app, "updated_at", json_object_get(app, "created_at"));

    json_t *dup = api_app_find(c, name, NULL);
    if (!dup)
        dup = store_get(c->store, STORE_APP, id, NULL);
    if (dup) {
        json_decref(dup);
        api_error(r, 409, "object_exists", NULL, "application \"%s\" already exists", name);
        goto out;
    }
    if (api_begin(c, &e) < 0)
        goto fail;
    const char *sys = jstr(meta, "flynn-system-app");
    if (store_put(c->store, STORE_APP, id, app, &e) < 0 ||
        api_event(c, id, "app", id, app, &e) < 0 ||
        ((!sys || strcmp(sys, "true")) && api_route_add_default(c, app, &e) < 0)) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    httpd_reply_json(r, 200, json_incref(app));
    goto out;
fail:
    api_reply_err(r, e, field);
out:
    json_decref(app);
    json_decref(body);
}

void api_apps_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_APP, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, l);
}

void api_apps_get(struct httpd_req *r, void *arg)
{
    json_t *app = api_path_app(r, arg);
    if (app)
        httpd_reply_json(r, 200, app);
}

void api_apps_update(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *body = api_body(r);
    if (!body) {
        json_decref(app);
        return;
    }
    struct err *e = NULL;
    const char *field = NULL;
    if (apply_fields(app, body, &field, &e) < 0) {
        api_reply_err(r, e, field);
    } else {
        json_object_set_new(app, "updated_at", jnow());
        const char *id = jstr(app, "id");
        if (api_save(c, STORE_APP, id, app, id, "app", &e) < 0)
            api_reply_err(r, e, NULL);
        else
            httpd_reply_json(r, 200, json_incref(app));
    }
    json_decref(body);
    json_decref(app);
}

void api_apps_delete(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    char id[37];
    snprintf(id, sizeof(id), "%s", jstr(app, "id"));
    struct err *e = NULL;
    json_t *rels = NULL, *routes = NULL;
    if (api_begin(c, &e) < 0)
        goto fail;
    rels = store_list(c->store, STORE_RELEASE, id, NULL, &e);
    if (!rels || !(routes = api_routes_delete_app(c, id, &e)))
        goto fail_tx;
    /* formations go with the app (ON DELETE CASCADE); the scheduler then
     * stops the app's jobs because no formation wants them any more */
    if (store_del(c->store, STORE_APP, id, &e) < 0)
        goto fail_tx;
    json_t *data = json_pack("{s:{s:s,s:O,s:[],s:O},s:s}", "app_deletion", "app", id,
                             "deleted_routes", routes, "deleted_resources", "deleted_releases",
                             rels, "error", "");
    int rc = api_event(c, id, "app_deletion", id, data, &e);
    json_decref(data);
    if (rc < 0)
        goto fail_tx;
    if (api_commit(c, &e) < 0)
        goto fail;
    scheduler_poke(c->sched); /* its jobs now belong to no formation */
    api_reply_ok(r);
    goto out;
fail_tx:
    api_rollback(c);
fail:
    api_reply_err(r, e, NULL);
out:
    json_decref(rels);
    json_decref(routes);
    json_decref(app);
}
