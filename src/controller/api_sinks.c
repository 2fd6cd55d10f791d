/* Log sinks (flynn-api.md §3.7, §4.10): stored and evented; the log
 * aggregator polls GET /sinks and delivers to them (kinds syslog and, ours,
 * http: {"url": "http://HOST:PORT/PATH"}, NDJSON batches POSTed). Also the
 * placeholders POST /apps/:app/gc and the (always empty) volume lists. */
#include <string.h>

#include "api.h"
#include "ids.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

static const char *sink_check(const json_t *b, const char **field)
{
    const char *kind = jstr(b, "kind");
    json_t *cfg = json_object_get(b, "config");
    json_t *hm = json_object_get(b, "host_managed");
    *field = "kind";
    if (!kind || (strcmp(kind, "syslog") && strcmp(kind, "logaggregator") && strcmp(kind, "http")))
        return "kind must be syslog, http or logaggregator";
    *field = "host_managed";
    if (hm && !json_is_null(hm) && !json_is_boolean(hm))
        return "host_managed must be a boolean";
    *field = "config";
    if (!json_is_object(cfg))
        return "config must be an object";
    if (!strcmp(kind, "syslog")) {
        const char *url = jstr(cfg, "url");
        if (!url || (strncmp(url, "syslog://", 9) && strncmp(url, "syslog+tls://", 13)))
            return "syslog sinks need a syslog:// or syslog+tls:// url";
        const char *fmt = jstr(cfg, "format");
        if (fmt && *fmt && strcmp(fmt, "rfc6587") && strcmp(fmt, "newline") &&
            strcmp(fmt, "prefixed_newline"))
            return "format is invalid";
    } else if (!strcmp(kind, "http")) {
        const char *url = jstr(cfg, "url");
        if (!url || strncmp(url, "http://", 7) || !url[7])
            return "http sinks need an http:// url";
    } else if (!jstr(cfg, "addr") || !*jstr(cfg, "addr")) {
        return "logaggregator sinks need an addr";
    }
    return NULL;
}

void api_sinks_create(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *b = api_body(r);
    if (!b)
        return;
    const char *field;
    const char *bad = sink_check(b, &field);
    char id[37];
    const char *given = jstr(b, "id");
    if (!bad && given && *given && !uuid_normalize(given, id)) {
        bad = "id is invalid";
        field = "id";
    } else if (!given || !*given) {
        id_uuid(id);
    }
    if (bad) {
        api_error(r, 400, "validation_error", field, "%s", bad);
        json_decref(b);
        return;
    }
    json_t *sink = json_pack("{s:s,s:O,s:b,s:O,s:o}", "id", id, "kind", json_object_get(b, "kind"),
                             "host_managed", json_is_true(json_object_get(b, "host_managed")),
                             "config", json_object_get(b, "config"), "created_at", jnow());
    json_object_set(sink, "updated_at", json_object_get(sink, "created_at"));
    struct err *e = NULL;
    json_t *dup = store_get(c->store, STORE_SINK, id, NULL);
    if (dup)
        api_error(r, 409, "object_exists", NULL, "sink %s already exists", id);
    else if (api_save(c, STORE_SINK, id, sink, NULL, "sink", &e) < 0)
        api_reply_err(r, e, NULL);
    else
        httpd_reply_json(r, 200, json_incref(sink));
    json_decref(dup);
    json_decref(sink);
    json_decref(b);
}

void api_sinks_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_SINK, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, l);
}

static json_t *path_sink(struct httpd_req *r, struct controller *c)
{
    char id[37];
    json_t *s = uuid_normalize(httpd_param(r, "id"), id) ? store_get(c->store, STORE_SINK, id, NULL)
                                                          : NULL;
    if (!s)
        httpd_reply_empty(r, 404);
    return s;
}

void api_sinks_get(struct httpd_req *r, void *arg)
{
    json_t *s = path_sink(r, arg);
    if (s)
        httpd_reply_json(r, 200, s);
}

void api_sinks_delete(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *s = path_sink(r, c);
    if (!s)
        return;
    struct err *e = NULL;
    int rc = api_begin(c, &e);
    if (rc == 0) {
        rc = store_del(c->store, STORE_SINK, jstr(s, "id"), &e);
        if (rc == 0)
            rc = api_event(c, NULL, "sink_deletion", jstr(s, "id"), s, &e);
        if (rc < 0)
            api_rollback(c);
        else
            rc = api_commit(c, &e);
    }
    if (rc < 0)
        api_reply_err(r, e, NULL);
    else
        httpd_reply_json(r, 200, json_incref(s));
    json_decref(s);
}

/* Release GC is not implemented: answering 200 keeps clients that schedule
 * it working; nothing is deleted. */
void api_app_gc(struct httpd_req *r, void *arg)
{
    json_t *app = api_path_app(r, arg);
    if (!app)
        return;
    json_decref(app);
    api_reply_ok(r);
}

/* Volumes: the hosts do not create any yet, so every list is empty and every
 * lookup misses; this keeps `flynn volume` truthful instead of failing. */
void api_volumes_list(struct httpd_req *r, void *arg)
{
    httpd_reply_json(r, 200, json_array());
}

void api_app_volumes_list(struct httpd_req *r, void *arg)
{
    json_t *app = api_path_app(r, arg);
    if (!app)
        return;
    json_decref(app);
    httpd_reply_json(r, 200, json_array());
}

void api_app_volume_get(struct httpd_req *r, void *arg)
{
    json_t *app = api_path_app(r, arg);
    if (!app)
        return;
    json_decref(app);
    httpd_reply_empty(r, 404);
}
