/* Providers and resources (flynn-api.md §3.6, §9): the controller stores
 * providers, asks them for resources over HTTP (POST URL with the config,
 * DELETE URL?id=EXTERNAL_ID) and keeps each resource with its app links. */
#include <errno.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "ahttp.h"
#include "api.h"
#include "ids.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

#define PROVIDER_TIMEOUT 60

static json_t *provider_find(struct controller *c, const char *ref)
{
    char id[37];
    json_t *p = NULL;
    if (uuid_normalize(ref, id))
        p = store_get(c->store, STORE_PROVIDER, id, NULL);
    return p ? p : store_provider_by_name(c->store, ref, NULL);
}

static json_t *path_provider(struct httpd_req *r, struct controller *c)
{
    json_t *p = provider_find(c, httpd_param(r, "provider"));
    if (!p)
        httpd_reply_empty(r, 404);
    return p;
}

/* The resource of the path if it belongs to provider p. */
static json_t *path_resource(struct httpd_req *r, struct controller *c, const json_t *p)
{
    char id[37];
    json_t *res = uuid_normalize(httpd_param(r, "id"), id)
                      ? store_get(c->store, STORE_RESOURCE, id, NULL)
                      : NULL;
    if (res && strcmp(jstr(res, "provider"), jstr(p, "id"))) {
        json_decref(res);
        res = NULL;
    }
    if (!res)
        httpd_reply_empty(r, 404);
    return res;
}

/* Writes res and one event per app (or a cluster-wide one). In a transaction. */
static int save_resource(struct controller *c, const json_t *res, const char *event,
                         struct err **err)
{
    if (api_begin(c, err) < 0)
        return -1;
    int rc = store_put(c->store, STORE_RESOURCE, jstr(res, "id"), res, err);
    json_t *apps = json_object_get(res, "apps");
    size_t i;
    json_t *a;
    if (rc == 0 && json_array_size(apps) == 0)
        rc = api_event(c, NULL, event, jstr(res, "id"), res, err);
    json_array_foreach(apps, i, a) if (rc == 0) rc =
        api_event(c, json_string_value(a), event, jstr(res, "id"), res, err);
    if (rc < 0) {
        api_rollback(c);
        return -1;
    }
    return api_commit(c, err);
}

/* Resolves a list of app names/UUIDs to UUIDs; NULL (and an answer) on error. */
static json_t *resolve_apps(struct httpd_req *r, struct controller *c, const json_t *refs)
{
    json_t *out = json_array();
    if (refs && !json_is_null(refs) && !json_is_array(refs)) {
        json_decref(out);
        api_error(r, 400, "validation_error", "apps", "apps must be an array");
        return NULL;
    }
    size_t i;
    json_t *ref;
    json_array_foreach(refs, i, ref)
    {
        json_t *app = json_is_string(ref) ? api_app_find(c, json_string_value(ref), NULL) : NULL;
        if (!app) {
            json_decref(out);
            api_error(r, 400, "validation_error", "apps", "app %s not found",
                      json_is_string(ref) ? json_string_value(ref) : "(not a string)");
            return NULL;
        }
        json_array_append(out, json_object_get(app, "id"));
        json_decref(app);
    }
    return out;
}

void api_providers_create(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *body = api_body(r);
    if (!body)
        return;
    const char *name = jstr(body, "name"), *url = jstr(body, "url");
    struct err *e = NULL;
    json_t *dup = NULL;
    if (!name || !validate_app_name(name)) {
        api_error(r, 400, "validation_error", "name", "name is invalid");
    } else if (!url || strncmp(url, "http://", 7) || strlen(url) > 2048) {
        api_error(r, 400, "validation_error", "url", "url must be an http:// URL");
    } else if ((dup = store_provider_by_name(c->store, name, NULL))) {
        api_error(r, 409, "object_exists", NULL, "provider \"%s\" already exists", name);
    } else {
        char id[37];
        id_uuid(id);
        json_t *p = json_pack("{s:s,s:s,s:s,s:o}", "id", id, "name", name, "url", url,
                              "created_at", jnow());
        json_object_set(p, "updated_at", json_object_get(p, "created_at"));
        if (api_save(c, STORE_PROVIDER, id, p, NULL, "provider", &e) < 0)
            api_reply_err(r, e, NULL);
        else
            httpd_reply_json(r, 200, json_incref(p));
        json_decref(p);
    }
    json_decref(dup);
    json_decref(body);
}

void api_providers_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_PROVIDER, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, l);
}

void api_providers_get(struct httpd_req *r, void *arg)
{
    json_t *p = path_provider(r, arg);
    if (p)
        httpd_reply_json(r, 200, p);
}

/* A provision in flight: the client's request waits for the provider. */
struct provision {
    struct controller *c;
    struct httpd_req *r;
    json_t *provider, *apps;
};

static void on_provisioned(int status, const char *body, size_t len, void *arg)
{
    struct provision *pv = arg;
    struct controller *c = pv->c;
    json_t *resp = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    const char *ext = jstr(resp, "id");
    json_t *env = json_object_get(resp, "env");
    if (status < 0) {
        api_error(pv->r, 503, "service_unavailable", NULL, "the controller is shutting down");
    } else if (!ext || !validate_string_map(env, true)) {
        api_error(pv->r, 500, "unknown_error", NULL, "provider %s: %s", jstr(pv->provider, "name"),
                  status == 0     ? "no answer"
                  : status != 200 ? "provisioning failed"
                                  : "bad answer (want {\"id\", \"env\"})");
    } else {
        char id[37];
        id_uuid(id);
        json_t *res = json_pack("{s:s,s:O,s:s,s:o,s:O,s:o}", "id", id, "provider",
                                json_object_get(pv->provider, "id"), "external_id", ext, "env",
                                json_is_object(env) ? json_incref(env) : json_object(), "apps",
                                pv->apps, "created_at", jnow());
        struct err *e = NULL;
        if (save_resource(c, res, "resource", &e) < 0)
            api_reply_err(pv->r, e, NULL);
        else
            httpd_reply_json(pv->r, 200, json_incref(res));
        json_decref(res);
    }
    json_decref(resp);
    json_decref(pv->provider);
    json_decref(pv->apps);
    free(pv);
}

void api_resources_create(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *p = path_provider(r, c);
    if (!p)
        return;
    json_t *body = api_body(r), *apps = NULL;
    if (!body || !(apps = resolve_apps(r, c, json_object_get(body, "apps"))))
        goto out;
    json_t *config = json_object_get(body, "config");
    if (config && !json_is_null(config) && !json_is_object(config)) {
        api_error(r, 400, "validation_error", "config", "config must be an object");
        goto out;
    }
    char *cfg = json_is_object(config) ? json_dumps(config, JSON_COMPACT) : xstrdup("{}");
    struct provision *pv = xcalloc(1, sizeof(*pv));
    pv->c = c;
    pv->r = r;
    pv->provider = json_incref(p);
    pv->apps = json_incref(apps);
    struct err *e = NULL;
    if (ahttp_request(c->http, "POST", jstr(p, "url"), cfg, PROVIDER_TIMEOUT, on_provisioned, pv,
                      &e) < 0) {
        json_decref(pv->provider);
        json_decref(pv->apps);
        free(pv);
        api_error(r, 500, "unknown_error", NULL, "provider %s: %s", jstr(p, "name"), e->msg);
        err_free(e);
    }
    free(cfg);
out:
    json_decref(apps);
    json_decref(body);
    json_decref(p);
}

static void reply_filtered(struct httpd_req *r, struct controller *c, const char *provider_id,
                           const char *app_id)
{
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_RESOURCE, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    json_t *out = json_array();
    size_t i, k;
    json_t *res, *a;
    json_array_foreach(l, i, res)
    {
        if (provider_id && strcmp(jstr(res, "provider"), provider_id))
            continue;
        bool has = !app_id;
        json_array_foreach(json_object_get(res, "apps"), k, a) has |=
            app_id && !strcmp(json_string_value(a), app_id);
        if (has)
            json_array_append(out, res);
    }
    json_decref(l);
    httpd_reply_json(r, 200, out);
}

void api_resources_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *p = path_provider(r, c);
    if (!p)
        return;
    reply_filtered(r, c, jstr(p, "id"), NULL);
    json_decref(p);
}

void api_resources_all(struct httpd_req *r, void *arg)
{
    reply_filtered(r, arg, NULL, NULL);
}

void api_app_resources(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    reply_filtered(r, c, NULL, jstr(app, "id"));
    json_decref(app);
}

void api_resources_get(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *p = path_provider(r, c);
    if (!p)
        return;
    json_t *res = path_resource(r, c, p);
    if (res)
        httpd_reply_json(r, 200, res);
    json_decref(p);
}

/* PUT: import/restore a resource as given (no provider call). */
void api_resources_put(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *p = path_provider(r, c);
    if (!p)
        return;
    json_t *body = api_body(r), *apps = NULL;
    char id[37];
    if (!body || !(apps = resolve_apps(r, c, json_object_get(body, "apps"))))
        goto out;
    if (!uuid_normalize(httpd_param(r, "id"), id)) {
        api_error(r, 400, "validation_error", "id", "id is invalid");
        goto out;
    }
    const char *ext = jstr(body, "external_id");
    json_t *env = json_object_get(body, "env");
    if (!ext || !validate_string_map(env, true)) {
        api_error(r, 400, "validation_error", ext ? "env" : "external_id", "resource is invalid");
        goto out;
    }
    json_t *res = json_pack("{s:s,s:O,s:s,s:o,s:O,s:o}", "id", id, "provider",
                            json_object_get(p, "id"), "external_id", ext, "env",
                            json_is_object(env) ? json_incref(env) : json_object(), "apps", apps,
                            "created_at", jnow());
    struct err *e = NULL;
    if (save_resource(c, res, "resource", &e) < 0)
        api_reply_err(r, e, NULL);
    else
        httpd_reply_json(r, 200, json_incref(res));
    json_decref(res);
out:
    json_decref(apps);
    json_decref(body);
    json_decref(p);
}

struct deprovision {
    struct controller *c;
    struct httpd_req *r;
    json_t *res;
};

static void on_deprovisioned(int status, const char *body, size_t len, void *arg)
{
    struct deprovision *dp = arg;
    struct err *e = NULL;
    if (status < 0) {
        api_error(dp->r, 503, "service_unavailable", NULL, "the controller is shutting down");
    } else if (status != 200) {
        api_error(dp->r, 500, "unknown_error", NULL, "provider: deprovisioning failed (%d)",
                  status);
    } else if (api_begin(dp->c, &e) == 0) {
        int rc = store_del(dp->c->store, STORE_RESOURCE, jstr(dp->res, "id"), &e);
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(dp->res, "apps"), i, a) if (rc == 0) rc =
            api_event(dp->c, json_string_value(a), "resource_deletion", jstr(dp->res, "id"),
                      dp->res, &e);
        if (rc < 0)
            api_rollback(dp->c);
        if (rc < 0 || api_commit(dp->c, &e) < 0)
            api_reply_err(dp->r, e, NULL);
        else
            httpd_reply_json(dp->r, 200, json_incref(dp->res));
    } else {
        api_reply_err(dp->r, e, NULL);
    }
    json_decref(dp->res);
    free(dp);
}

void api_resources_delete(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *p = path_provider(r, c);
    if (!p)
        return;
    json_t *res = path_resource(r, c, p);
    if (!res) {
        json_decref(p);
        return;
    }
    char *q = evhttp_encode_uri(jstr(res, "external_id"));
    cleanup_free char *url =
        xasprintf("%s%sid=%s", jstr(p, "url"), strchr(jstr(p, "url"), '?') ? "&" : "?", q);
    free(q);
    struct deprovision *dp = xcalloc(1, sizeof(*dp));
    dp->c = c;
    dp->r = r;
    dp->res = res;
    struct err *e = NULL;
    if (ahttp_request(c->http, "DELETE", url, NULL, PROVIDER_TIMEOUT, on_deprovisioned, dp, &e) <
        0) {
        api_error(r, 500, "unknown_error", NULL, "provider %s: %s", jstr(p, "name"), e->msg);
        err_free(e);
        json_decref(res);
        free(dp);
    }
    json_decref(p);
}

static void link_app(struct httpd_req *r, struct controller *c, bool add)
{
    json_t *p = path_provider(r, c);
    if (!p)
        return;
    json_t *res = path_resource(r, c, p), *app = NULL;
    if (!res || !(app = api_path_app(r, c)))
        goto out;
    json_t *apps = json_object_get(res, "apps");
    if (!json_is_array(apps)) {
        apps = json_array();
        json_object_set_new(res, "apps", apps);
    }
    const char *app_id = jstr(app, "id");
    size_t i, found = (size_t)-1;
    json_t *a;
    json_array_foreach(apps, i, a) if (!strcmp(json_string_value(a), app_id)) found = i;
    if (add && found == (size_t)-1)
        json_array_append(apps, json_object_get(app, "id"));
    if (!add && found != (size_t)-1)
        json_array_remove(apps, found);
    struct err *e = NULL;
    int rc = api_begin(c, &e);
    if (rc == 0) {
        rc = store_put(c->store, STORE_RESOURCE, jstr(res, "id"), res, &e);
        if (rc == 0)
            rc = api_event(c, app_id, add ? "resource" : "resource_app_deletion", jstr(res, "id"),
                           res, &e);
        if (rc < 0)
            api_rollback(c);
        else
            rc = api_commit(c, &e);
    }
    if (rc < 0)
        api_reply_err(r, e, NULL);
    else
        httpd_reply_json(r, 200, json_incref(res));
out:
    json_decref(app);
    json_decref(res);
    json_decref(p);
}

void api_resource_app_add(struct httpd_req *r, void *arg)
{
    link_app(r, arg, true);
}

void api_resource_app_remove(struct httpd_req *r, void *arg)
{
    link_app(r, arg, false);
}
