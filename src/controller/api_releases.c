/* /artifacts, /releases, /apps/:app/releases and /apps/:app/release. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "ids.h"
#include "scheduler.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

static int take_id(const json_t *body, char id[37], const char **field, struct err **err)
{
    json_t *jid = json_object_get(body, "id");
    if (!jid || json_is_null(jid) || (json_is_string(jid) && !*json_string_value(jid))) {
        id_uuid(id);
        return 0;
    }
    if (!json_is_string(jid) || !uuid_normalize(json_string_value(jid), id)) {
        *field = "id";
        return err_makex(err, EINVAL, "id is invalid");
    }
    return 0;
}

void api_artifacts_create(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *body = api_body(r);
    if (!body)
        return;
    struct err *e = NULL;
    const char *field = NULL;
    char id[37];
    const char *type = jstr(body, "type"), *uri = jstr(body, "uri");
    json_t *existing = NULL;
    if (take_id(body, id, &field, &e) < 0)
        goto fail;
    if (!type || (strcmp(type, "flynn") && strcmp(type, "docker") && strcmp(type, "file"))) {
        field = "type";
        err_makex(&e, EINVAL, "type is invalid");
        goto fail;
    }
    if (!uri || !*uri || strlen(uri) > 4096) {
        field = "uri";
        err_makex(&e, EINVAL, "uri is invalid");
        goto fail;
    }
    if (!validate_string_map(json_object_get(body, "meta"), true)) {
        field = "meta";
        err_makex(&e, EINVAL, "meta must be an object of strings");
        goto fail;
    }
    if (!validate_string_map(json_object_get(body, "hashes"), true)) {
        field = "hashes";
        err_makex(&e, EINVAL, "hashes must be an object of strings");
        goto fail;
    }
    json_t *size = json_object_get(body, "size");
    json_t *manifest = json_object_get(body, "manifest");
    if ((size && !json_is_null(size) && (!json_is_integer(size) || json_integer_value(size) < 0)) ||
        (manifest && !json_is_null(manifest) && !json_is_object(manifest))) {
        field = size && !json_is_integer(size) ? "size" : "manifest";
        err_makex(&e, EINVAL, "%s is invalid", field);
        goto fail;
    }
    existing = store_artifact_by_uri(c->store, type, uri, NULL);
    if (existing) {
        httpd_reply_json(r, 200, existing);
        json_decref(body);
        return;
    }
    json_t *lut = json_object_get(body, "layer_url_template");
    if (lut && !json_is_null(lut) && !json_is_string(lut)) {
        field = "layer_url_template";
        err_makex(&e, EINVAL, "layer_url_template is invalid");
        goto fail;
    }
    json_t *a = json_pack("{s:s,s:s,s:s}", "id", id, "type", type, "uri", uri);
    static const char *const copy[] = {"meta", "manifest", "hashes", "size", "layer_url_template"};
    for (size_t i = 0; i < ARRAY_SIZE(copy); i++) {
        json_t *v = json_object_get(body, copy[i]);
        if (v && !json_is_null(v))
            json_object_set(a, copy[i], v);
    }
    json_object_set_new(a, "created_at", jnow());
    if (api_save(c, STORE_ARTIFACT, id, a, NULL, "artifact", &e) < 0) {
        json_decref(a);
        goto fail;
    }
    httpd_reply_json(r, 200, a);
    json_decref(body);
    return;
fail:
    api_reply_err(r, e, field);
    json_decref(body);
}

static void reply_list(struct httpd_req *r, struct controller *c, enum store_kind k,
                       const char *app_id)
{
    struct err *e = NULL;
    json_t *l = store_list(c->store, k, app_id, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, l);
}

static void reply_get(struct httpd_req *r, struct controller *c, enum store_kind k)
{
    char id[37];
    if (!uuid_normalize(httpd_param(r, "id"), id))
        return httpd_reply_empty(r, 404);
    struct err *e = NULL;
    json_t *o = store_get(c->store, k, id, &e);
    if (!o)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, o);
}

void api_artifacts_list(struct httpd_req *r, void *arg)
{
    reply_list(r, arg, STORE_ARTIFACT, NULL);
}

void api_artifacts_get(struct httpd_req *r, void *arg)
{
    reply_get(r, arg, STORE_ARTIFACT);
}

void api_releases_create(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *body = api_body(r);
    if (!body)
        return;
    struct err *e = NULL;
    const char *field = NULL;
    char id[37];
    json_t *app = NULL, *rel = NULL;
    if (take_id(body, id, &field, &e) < 0)
        goto fail;
    const char *app_ref = jstr(body, "app_id");
    if (!app_ref || !*app_ref || !(app = api_app_find(c, app_ref, NULL))) {
        field = "app_id";
        err_makex(&e, EINVAL, "app_id is invalid");
        goto fail;
    }
    rel = json_deep_copy(body);
    if (release_normalize(rel, &field, &e) < 0)
        goto fail;
    size_t i;
    json_t *aid;
    json_array_foreach(json_object_get(rel, "artifacts"), i, aid)
    {
        json_t *art = store_get(c->store, STORE_ARTIFACT, json_string_value(aid), NULL);
        if (!art) {
            field = "artifacts";
            err_makex(&e, EINVAL, "artifact %s does not exist", json_string_value(aid));
            goto fail;
        }
        json_decref(art);
    }
    json_object_set_new(rel, "id", json_string(id));
    json_object_set(rel, "app_id", json_object_get(app, "id"));
    static const char *const maps[] = {"env", "meta", "processes"};
    for (size_t k = 0; k < ARRAY_SIZE(maps); k++)
        if (!json_is_object(json_object_get(rel, maps[k])))
            json_object_del(rel, maps[k]);
    json_object_set_new(rel, "created_at", jnow());
    json_t *dup = store_get(c->store, STORE_RELEASE, id, NULL);
    if (dup) {
        json_decref(dup);
        err_makex(&e, EEXIST, "release %s already exists", id);
        goto fail;
    }
    if (api_save(c, STORE_RELEASE, id, rel, jstr(app, "id"), "release", &e) < 0)
        goto fail;
    httpd_reply_json(r, 200, json_incref(rel));
    goto out;
fail:
    api_reply_err(r, e, field);
out:
    json_decref(rel);
    json_decref(app);
    json_decref(body);
}

void api_releases_list(struct httpd_req *r, void *arg)
{
    reply_list(r, arg, STORE_RELEASE, NULL);
}

void api_releases_get(struct httpd_req *r, void *arg)
{
    reply_get(r, arg, STORE_RELEASE);
}

void api_app_releases_list(struct httpd_req *r, void *arg)
{
    json_t *app = api_path_app(r, arg);
    if (!app)
        return;
    reply_list(r, arg, STORE_RELEASE, jstr(app, "id"));
    json_decref(app);
}

void api_app_release_get(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    const char *rid = jstr(app, "release");
    struct err *e = NULL;
    json_t *rel = rid ? store_get(c->store, STORE_RELEASE, rid, &e) : NULL;
    if (rel)
        httpd_reply_json(r, 200, rel);
    else if (e)
        api_reply_err(r, e, NULL);
    else
        httpd_reply_empty(r, 404);
    json_decref(app);
}

/* Inside a transaction: makes rel the app's current release, with the
 * app_release event. Used by PUT /apps/:app/release and deployments. */
int api_app_set_release(struct controller *c, json_t *app, const json_t *rel, struct err **err)
{
    const char *app_id = jstr(app, "id");
    const char *prev_id = jstr(app, "release");
    json_t *prev = prev_id ? store_get(c->store, STORE_RELEASE, prev_id, NULL) : NULL;
    json_object_set(app, "release", json_object_get(rel, "id"));
    json_object_set_new(app, "updated_at", jnow());
    json_t *data = json_pack("{s:O}", "release", rel);
    if (prev)
        json_object_set_new(data, "prev_release", prev);
    int rc = store_put(c->store, STORE_APP, app_id, app, err);
    if (rc == 0)
        rc = api_event(c, app_id, "app_release", jstr(rel, "id"), data, err);
    json_decref(data);
    return rc;
}

void api_app_release_set(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *body = api_body(r);
    json_t *rel = NULL;
    struct err *e = NULL;
    if (!body)
        goto out;
    rel = api_release_find(c, jstr(body, "id") ? jstr(body, "id") : "", NULL);
    if (!rel) {
        api_error(r, 400, "validation_error", "id", "release not found");
        goto out;
    }
    if (api_begin(c, &e) < 0)
        goto fail;
    if (api_app_set_release(c, app, rel, &e) < 0) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    httpd_reply_json(r, 200, json_incref(rel));
    goto out;
fail:
    api_reply_err(r, e, NULL);
out:
    json_decref(rel);
    json_decref(body);
    json_decref(app);
}

void api_app_release_delete(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    struct err *e = NULL;
    json_t *rel = api_release_find(c, httpd_param(r, "id"), NULL);
    if (!rel || strcmp(jstr(rel, "app_id"), jstr(app, "id"))) {
        httpd_reply_empty(r, 404);
        goto out;
    }
    const char *cur = jstr(app, "release");
    if (cur && !strcmp(cur, jstr(rel, "id"))) {
        api_error(r, 400, "validation_error", NULL, "cannot delete current app release");
        goto out;
    }
    if (api_begin(c, &e) < 0)
        goto fail;
    json_t *data = json_pack("{s:{s:s,s:s,s:[],s:[]},s:s}", "release_deletion", "app",
                             jstr(app, "id"), "release", jstr(rel, "id"), "remaining_apps",
                             "deleted_files", "error", "");
    int rc = store_del(c->store, STORE_RELEASE, jstr(rel, "id"), &e);
    if (rc == 0)
        rc = api_event(c, jstr(app, "id"), "release_deletion", jstr(rel, "id"), data, &e);
    json_decref(data);
    if (rc < 0) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    scheduler_poke(c->sched); /* its formation went with it */
    api_reply_ok(r);
    goto out;
fail:
    api_reply_err(r, e, NULL);
out:
    json_decref(rel);
    json_decref(app);
}
