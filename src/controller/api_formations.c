/* Formations and scale requests: /apps/:app/formations, /formations,
 * /apps/:app/scale/:release. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "events.h"
#include "ids.h"
#include "scheduler.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

static char *formation_id(const char *app_id, const char *release_id)
{
    return xasprintf("%s:%s", app_id, release_id);
}

json_t *api_formation_get(struct controller *c, const char *app_id, const char *release_id,
                          struct err **err)
{
    cleanup_free char *fid = formation_id(app_id, release_id);
    return store_get(c->store, STORE_FORMATION, fid, err);
}

json_t *api_formation_set(struct controller *c, const char *app_id, const char *release_id,
                          const json_t *processes, const json_t *tags, struct err **err)
{
    cleanup_free char *fid = formation_id(app_id, release_id);
    json_t *old = store_get(c->store, STORE_FORMATION, fid, NULL);
    json_t *f = old ? json_deep_copy(old) : json_pack("{s:s,s:s,s:{},s:{},s:o}", "app", app_id,
                                                      "release", release_id, "processes", "tags",
                                                      "created_at", jnow());
    if (processes)
        json_object_set_new(f, "processes", json_deep_copy(processes));
    if (tags)
        json_object_set_new(f, "tags", json_deep_copy(tags));
    json_object_set_new(f, "updated_at", jnow());
    json_t *ev = json_pack("{s:O,s:O,s:s}", "prev_processes",
                           old ? json_object_get(old, "processes") : json_null(), "processes",
                           json_object_get(f, "processes"), "release", release_id);
    json_decref(old);
    int rc = store_put(c->store, STORE_FORMATION, fid, f, err);
    if (rc == 0)
        rc = api_event(c, app_id, "scale", fid, ev, err);
    json_decref(ev);
    if (rc < 0) {
        json_decref(f);
        return NULL;
    }
    return f;
}

static bool tags_ok(const json_t *tags)
{
    if (!tags || json_is_null(tags))
        return true;
    if (!json_is_object(tags))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)tags, k, v) if (!validate_string_map(v, true)) return false;
    return true;
}

/* Resolves :app and :release of the path; answers and returns -1 on failure. */
static int path_app_release(struct httpd_req *r, struct controller *c, json_t **app,
                            json_t **rel, bool release_must_exist_400)
{
    *app = api_path_app(r, c);
    if (!*app)
        return -1;
    *rel = api_release_find(c, httpd_param(r, "release"), NULL);
    if (!*rel) {
        if (release_must_exist_400)
            api_error(r, 400, "validation_error", "release", "release not found");
        else
            httpd_reply_empty(r, 404);
        json_decref(*app);
        *app = NULL;
        return -1;
    }
    return 0;
}

void api_formations_put(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app, *rel;
    if (path_app_release(r, c, &app, &rel, true) < 0)
        return;
    json_t *body = api_body(r);
    json_t *f = NULL;
    struct err *e = NULL;
    const char *field = NULL;
    if (!body)
        goto out;
    json_t *procs = json_object_get(body, "processes");
    json_t *tags = json_object_get(body, "tags");
    json_t *empty = json_object();
    if (!procs || json_is_null(procs))
        procs = empty;
    if (validate_processes(procs, json_object_get(rel, "processes"), &field, &e) < 0) {
        json_decref(empty);
        goto fail;
    }
    if (!tags_ok(tags)) {
        json_decref(empty);
        field = "tags";
        err_makex(&e, EINVAL, "tags must map process types to objects of strings");
        goto fail;
    }
    if (api_begin(c, &e) < 0) {
        json_decref(empty);
        goto fail;
    }
    f = api_formation_set(c, jstr(app, "id"), jstr(rel, "id"), procs,
                          json_is_object(tags) ? tags : NULL, &e);
    json_decref(empty);
    if (!f) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    scheduler_poke(c->sched);
    httpd_reply_json(r, 200, json_incref(f));
    goto out;
fail:
    api_reply_err(r, e, field);
out:
    json_decref(f);
    json_decref(body);
    json_decref(app);
    json_decref(rel);
}

/* ExpandedFormation of flynn-api.md §4.5. */
json_t *api_formation_expand(struct controller *c, const json_t *f)
{
    json_t *app = store_get(c->store, STORE_APP, jstr(f, "app"), NULL);
    json_t *rel = store_get(c->store, STORE_RELEASE, jstr(f, "release"), NULL);
    json_t *arts = json_array();
    size_t i;
    json_t *aid;
    json_array_foreach(json_object_get(rel, "artifacts"), i, aid)
    {
        json_t *a = store_get(c->store, STORE_ARTIFACT, json_string_value(aid), NULL);
        if (a)
            json_array_append_new(arts, a);
    }
    json_t *x = json_pack("{s:o*,s:o*,s:o,s:O,s:O,s:O,s:b}", "app", app, "release", rel,
                          "artifacts", arts, "processes", json_object_get(f, "processes"), "tags",
                          json_object_get(f, "tags"), "updated_at", json_object_get(f, "updated_at"),
                          "deleted", 0);
    return x;
}

void api_formations_get(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app, *rel;
    if (path_app_release(r, c, &app, &rel, false) < 0)
        return;
    struct err *e = NULL;
    json_t *f = api_formation_get(c, jstr(app, "id"), jstr(rel, "id"), &e);
    if (!f) {
        api_reply_err(r, e, NULL);
    } else {
        const char *ex = httpd_query(r, "expand");
        if (ex && !strcmp(ex, "true")) {
            httpd_reply_json(r, 200, api_formation_expand(c, f));
            json_decref(f);
        } else {
            httpd_reply_json(r, 200, f);
        }
    }
    json_decref(app);
    json_decref(rel);
}

void api_formations_delete(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app, *rel;
    if (path_app_release(r, c, &app, &rel, false) < 0)
        return;
    struct err *e = NULL;
    cleanup_free char *fid = formation_id(jstr(app, "id"), jstr(rel, "id"));
    json_t *old = store_get(c->store, STORE_FORMATION, fid, &e);
    if (!old)
        goto fail;
    if (api_begin(c, &e) < 0)
        goto fail;
    json_t *ev = json_pack("{s:O,s:{},s:s}", "prev_processes", json_object_get(old, "processes"),
                           "processes", "release", jstr(rel, "id"));
    int rc = store_del(c->store, STORE_FORMATION, fid, &e);
    if (rc == 0)
        rc = api_event(c, jstr(app, "id"), "scale", fid, ev, &e);
    json_decref(ev);
    if (rc < 0) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    scheduler_poke(c->sched);
    api_reply_ok(r);
    goto out;
fail:
    api_reply_err(r, e, NULL);
out:
    json_decref(old);
    json_decref(app);
    json_decref(rel);
}

void api_app_formations_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_FORMATION, jstr(app, "id"), NULL, &e);
    json_decref(app);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, l);
}

void api_formations_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    const char *active = httpd_query(r, "active");
    const char *accept = httpd_header(r, "Accept");
    if (accept && strstr(accept, "text/event-stream") && httpd_query(r, "since"))
        return events_formations_stream(r, c, httpd_query(r, "since"));
    if (!active || strcmp(active, "true"))
        return api_error(r, 400, "validation_error", NULL,
                         "use ?active=true, or ?since=T with Accept: text/event-stream");
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_FORMATION, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    json_t *out = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(l, i, f)
    {
        const char *t;
        json_t *n;
        bool any = false;
        json_object_foreach(json_object_get(f, "processes"), t, n) any |= json_integer_value(n) > 0;
        if (any)
            json_array_append_new(out, api_formation_expand(c, f));
    }
    json_decref(l);
    httpd_reply_json(r, 200, out);
}

/* Cancels earlier pending requests of the formation (inside a transaction). */
static int cancel_pending(struct controller *c, const char *app_id, const char *rel_id,
                          struct err **err)
{
    json_t *l = store_list(c->store, STORE_SCALE_REQUEST, app_id, rel_id, err);
    if (!l)
        return -1;
    size_t i;
    json_t *sr;
    int rc = 0;
    json_array_foreach(l, i, sr)
    {
        const char *st = jstr(sr, "state");
        if (!st || strcmp(st, "pending"))
            continue;
        json_object_set_new(sr, "state", json_string("cancelled"));
        json_object_set_new(sr, "updated_at", jnow());
        if ((rc = store_put(c->store, STORE_SCALE_REQUEST, jstr(sr, "id"), sr, err)) < 0 ||
            (rc = api_event(c, app_id, "scale_request_cancelation", jstr(sr, "id"), sr, err)) < 0)
            break;
    }
    json_decref(l);
    return rc;
}

void api_scale_put(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app, *rel;
    if (path_app_release(r, c, &app, &rel, true) < 0)
        return;
    json_t *body = api_body(r);
    json_t *sr = NULL, *cur = NULL, *f = NULL, *merged = NULL;
    struct err *e = NULL;
    const char *field = NULL;
    if (!body)
        goto out;
    const char *app_id = jstr(app, "id"), *rel_id = jstr(rel, "id");
    const char *state = jstr(body, "state");
    if (state && *state && strcmp(state, "pending")) {
        /* update of an existing request (the scheduler's use) */
        char id[37];
        if (!uuid_normalize(jstr(body, "id"), id) ||
            !(sr = store_get(c->store, STORE_SCALE_REQUEST, id, NULL))) {
            api_error(r, 400, "validation_error", "id", "scale request not found");
            goto out;
        }
        if (strcmp(state, "complete") && strcmp(state, "cancelled")) {
            api_error(r, 400, "validation_error", "state", "state is invalid");
            goto out;
        }
        json_object_set_new(sr, "state", json_string(state));
        json_object_set_new(sr, "updated_at", jnow());
        if (api_save(c, STORE_SCALE_REQUEST, id, sr, app_id, "scale_request", &e) < 0)
            goto fail;
        httpd_reply_json(r, 200, json_incref(sr));
        goto out;
    }
    json_t *np = json_object_get(body, "new_processes");
    json_t *nt = json_object_get(body, "new_tags");
    if (json_is_null(np))
        np = NULL;
    if (json_is_null(nt))
        nt = NULL;
    if (!np && !nt) {
        api_error(r, 400, "validation_error", "new_processes",
                  "scale request must set new_processes or new_tags");
        goto out;
    }
    if (np && validate_processes(np, json_object_get(rel, "processes"), &field, &e) < 0)
        goto fail;
    if (!tags_ok(nt)) {
        field = "new_tags";
        err_makex(&e, EINVAL, "new_tags must map process types to objects of strings");
        goto fail;
    }
    cur = api_formation_get(c, app_id, rel_id, NULL);
    char id[37];
    id_uuid(id);
    sr = json_pack("{s:s,s:s,s:s,s:s,s:O,s:O,s:O,s:O,s:o}", "id", id, "app", app_id, "release",
                   rel_id, "state", "pending", "old_processes",
                   cur ? json_object_get(cur, "processes") : json_null(), "new_processes",
                   np ? np : (cur ? json_object_get(cur, "processes") : json_null()), "old_tags",
                   cur ? json_object_get(cur, "tags") : json_null(), "new_tags",
                   nt ? nt : (cur ? json_object_get(cur, "tags") : json_null()), "created_at",
                   jnow());
    json_object_set(sr, "updated_at", json_object_get(sr, "created_at"));
    if (!json_is_object(json_object_get(sr, "old_processes")))
        json_object_set_new(sr, "old_processes", json_object());
    /* as Flynn's formation repo does: the request's types are set, the
     * formation's other types keep their counts */
    if (np && cur && json_is_object(json_object_get(cur, "processes"))) {
        merged = json_deep_copy(json_object_get(cur, "processes"));
        json_object_update(merged, np);
        np = merged;
    }
    if (api_begin(c, &e) < 0)
        goto fail;
    if (cancel_pending(c, app_id, rel_id, &e) < 0 ||
        store_put(c->store, STORE_SCALE_REQUEST, id, sr, &e) < 0 ||
        !(f = api_formation_set(c, app_id, rel_id, np, nt, &e)) ||
        api_event(c, app_id, "scale_request", id, sr, &e) < 0) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    scheduler_poke(c->sched);
    httpd_reply_json(r, 200, json_incref(sr));
    goto out;
fail:
    api_reply_err(r, e, field);
out:
    json_decref(merged);
    json_decref(f);
    json_decref(cur);
    json_decref(sr);
    json_decref(body);
    json_decref(app);
    json_decref(rel);
}
