/* Routes storage: /routes, /apps/:app/routes[/:type/:id]. No router reads
 * them yet; the shapes and checks are flynn-api.md §3.5 and §4.8. */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <string.h>

#include "api.h"
#include "ids.h"
#include "store.h"
#include "strbuf.h"
#include "validate.h"
#include "xalloc.h"

#define ZERO_TIME "0001-01-01T00:00:00Z"

/* True when cert (PEM, first certificate) and key (PEM) parse and match. */
static bool cert_pair_ok(const char *cert, const char *key)
{
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    bool ok = x && k && X509_check_private_key(x, k) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    ERR_clear_error();
    return ok;
}

static void reply_route_error(struct httpd_req *r, int status, const char *code, const char *msg,
                              const json_t *route)
{
    json_t *j = json_pack("{s:s,s:s,s:O,s:b}", "code", code, "message", msg, "detail", route,
                          "retry", 0);
    httpd_reply_json(r, status, j);
}

static bool same_route(const json_t *a, const json_t *b)
{
    const char *ta = jstr(a, "type"), *tb = jstr(b, "type");
    if (strcmp(ta, tb) || (jstr(a, "id") && jstr(b, "id") && !strcmp(jstr(a, "id"), jstr(b, "id"))))
        return false;
    if (!strcmp(ta, "tcp"))
        return json_integer_value(json_object_get(a, "port")) ==
               json_integer_value(json_object_get(b, "port"));
    return !strcmp(jstr(a, "domain"), jstr(b, "domain")) && !strcmp(jstr(a, "path"), jstr(b, "path"));
}

/* Checks and normalises route r (in place) against all existing routes.
 * Returns 0, or answers the request and returns -1. */
static int route_check(struct httpd_req *req, struct controller *c, json_t *rt, json_t *all)
{
    const char *type = jstr(rt, "type");
    if (!type || (strcmp(type, "http") && strcmp(type, "tcp"))) {
        reply_route_error(req, 400, "validation_error", "Invalid route", rt);
        return -1;
    }
    const char *svc = jstr(rt, "service");
    json_t *port = json_object_get(rt, "port");
    if (!svc || !*svc || strlen(svc) > 200 || (port && !json_is_null(port) && !json_is_integer(port)) ||
        json_integer_value(port) < 0 || json_integer_value(port) > 65535) {
        reply_route_error(req, 400, "validation_error", "Invalid route", rt);
        return -1;
    }
    static const char *const bools[] = {"leader", "drain_backends", "sticky",
                                        "disable_keep_alives"};
    for (size_t i = 0; i < ARRAY_SIZE(bools); i++) {
        json_t *b = json_object_get(rt, bools[i]);
        if (b && !json_is_boolean(b) && !json_is_null(b)) {
            reply_route_error(req, 400, "validation_error", "Invalid route", rt);
            return -1;
        }
        if (!json_is_boolean(b) && (!strcmp(bools[i], "leader") || !strcmp(bools[i], "drain_backends") ||
                                    !strcmp(type, "http")))
            json_object_set_new(rt, bools[i], json_false());
    }
    json_int_t pn = json_integer_value(port);
    if (!strcmp(type, "http")) {
        const char *dom = jstr(rt, "domain");
        if (!dom || !*dom || strlen(dom) > 253 || strchr(dom, '/') || strchr(dom, ' ') || pn) {
            reply_route_error(req, 400, "validation_error", "Invalid route", rt);
            return -1;
        }
        const char *path = jstr(rt, "path");
        struct strbuf p = STRBUF_INIT;
        if (!path || !*path)
            path = "/";
        if (path[0] != '/')
            strbuf_addch(&p, '/');
        strbuf_adds(&p, path);
        if (p.buf[p.len - 1] != '/')
            strbuf_addch(&p, '/');
        json_object_set_new(rt, "path", json_string(p.buf));
        bool is_root = !strcmp(p.buf, "/");
        strbuf_release(&p);
        json_object_del(rt, "port");
        const char *tc = jstr(rt, "tls_cert"), *tk = jstr(rt, "tls_key");
        json_t *cert = json_object_get(rt, "certificate");
        if (json_is_object(cert)) {
            tc = jstr(cert, "cert");
            tk = jstr(cert, "key");
        }
        if ((tc && *tc) || (tk && *tk)) {
            if (!tc || !tk || !cert_pair_ok(tc, tk)) {
                reply_route_error(req, 400, "validation_error", "Invalid route: bad certificate or key", rt);
                return -1;
            }
            char cid[37];
            id_uuid(cid);
            json_t *ct = json_pack("{s:s,s:s,s:s,s:o}", "id", cid, "cert", tc, "key", tk,
                                   "created_at", jnow());
            json_object_set(ct, "updated_at", json_object_get(ct, "created_at"));
            json_object_set_new(rt, "certificate", ct);
        } else {
            json_object_del(rt, "certificate");
        }
        json_object_del(rt, "tls_cert");
        json_object_del(rt, "tls_key");
        if (!is_root) {
            bool have_root = false;
            size_t i;
            json_t *o;
            json_array_foreach(all, i, o) have_root |=
                !strcmp(jstr(o, "type"), "http") && !strcmp(jstr(o, "domain"), dom) &&
                !strcmp(jstr(o, "path"), "/");
            if (!have_root) {
                reply_route_error(req, 400, "validation_error", "Invalid route", rt);
                return -1;
            }
        }
    } else {
        static const char *const http_only[] = {"domain", "path", "sticky", "disable_keep_alives",
                                                "certificate", "tls_cert", "tls_key"};
        for (size_t i = 0; i < ARRAY_SIZE(http_only); i++)
            json_object_del(rt, http_only[i]);
        if (pn == 80 || pn == 443) {
            reply_route_error(req, 409, "conflict", "Port reserved for HTTP/HTTPS traffic", rt);
            return -1;
        }
        if (pn == 0) {
            for (int cand = 3000; cand <= 3500 && !pn; cand++) {
                bool used = false;
                size_t i;
                json_t *o;
                json_array_foreach(all, i, o) used |= !strcmp(jstr(o, "type"), "tcp") &&
                                                      json_integer_value(json_object_get(o, "port")) == cand;
                if (!used)
                    pn = cand;
            }
            if (!pn) {
                reply_route_error(req, 409, "conflict", "No free port for the TCP route", rt);
                return -1;
            }
        }
        json_object_set_new(rt, "port", json_integer(pn));
    }
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o) if (same_route(o, rt))
    {
        reply_route_error(req, 409, "conflict", "Duplicate route", rt);
        return -1;
    }
    return 0;
}

int api_route_add_default(struct controller *c, const json_t *app, struct err **err)
{
    if (!c->domain || !*c->domain)
        return 0;
    char id[37];
    id_uuid(id);
    cleanup_free char *dom = xasprintf("%s.%s", jstr(app, "name"), c->domain);
    cleanup_free char *svc = xasprintf("%s-web", jstr(app, "name"));
    cleanup_free char *parent = xasprintf("controller/apps/%s", jstr(app, "id"));
    json_t *rt = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:o}", "type", "http", "id",
                           id, "parent_ref", parent, "service", svc, "domain", dom, "path", "/",
                           "leader", 0, "drain_backends", 1, "sticky", 0, "disable_keep_alives",
                           0, "created_at", jnow());
    json_object_set(rt, "updated_at", json_object_get(rt, "created_at"));
    json_object_set(rt, "app", json_object_get(app, "id"));
    int rc = store_put(c->store, STORE_ROUTE, id, rt, err);
    json_object_del(rt, "app");
    if (rc == 0)
        rc = api_event(c, jstr(app, "id"), "route", id, rt, err);
    json_decref(rt);
    return rc;
}

/* Routes as the API shows them (without our internal "app" field). */
static json_t *strip(json_t *l)
{
    size_t i;
    json_t *o;
    json_array_foreach(l, i, o) json_object_del(o, "app");
    return l;
}

json_t *api_routes_delete_app(struct controller *c, const char *app_id, struct err **err)
{
    json_t *l = store_list(c->store, STORE_ROUTE, app_id, NULL, err);
    if (!l)
        return NULL;
    size_t i;
    json_t *o;
    json_array_foreach(l, i, o) if (store_del(c->store, STORE_ROUTE, jstr(o, "id"), err) < 0)
    {
        json_decref(l);
        return NULL;
    }
    return strip(l);
}

void api_routes_all(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_ROUTE, NULL, NULL, &e);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, strip(l));
}

void api_routes_list(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    struct err *e = NULL;
    json_t *l = store_list(c->store, STORE_ROUTE, jstr(app, "id"), NULL, &e);
    json_decref(app);
    if (!l)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, strip(l));
}

/* Saves route rt of app (id set), with its event, and answers. */
static void save(struct httpd_req *r, struct controller *c, json_t *app, json_t *rt,
                 const char *event)
{
    struct err *e = NULL;
    const char *id = jstr(rt, "id");
    json_object_set(rt, "app", json_object_get(app, "id"));
    if (api_begin(c, &e) < 0)
        return api_reply_err(r, e, NULL);
    int rc = store_put(c->store, STORE_ROUTE, id, rt, &e);
    json_object_del(rt, "app");
    if (rc == 0)
        rc = api_event(c, jstr(app, "id"), event, id, rt, &e);
    if (rc < 0) {
        api_rollback(c);
        return api_reply_err(r, e, NULL);
    }
    if (api_commit(c, &e) < 0)
        return api_reply_err(r, e, NULL);
    httpd_reply_json(r, 200, json_incref(rt));
}

void api_routes_create(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *rt = api_body(r);
    json_t *all = NULL;
    if (!rt)
        goto out;
    struct err *e = NULL;
    all = store_list(c->store, STORE_ROUTE, NULL, NULL, &e);
    if (!all) {
        api_reply_err(r, e, NULL);
        goto out;
    }
    if (route_check(r, c, rt, all) < 0)
        goto out;
    char id[37];
    id_uuid(id);
    json_object_set_new(rt, "id", json_string(id));
    json_object_set_new(rt, "parent_ref", json_sprintf("controller/apps/%s", jstr(app, "id")));
    json_object_set_new(rt, "created_at", jnow());
    json_object_set(rt, "updated_at", json_object_get(rt, "created_at"));
    save(r, c, app, rt, "route");
out:
    json_decref(all);
    json_decref(rt);
    json_decref(app);
}

/* The route of the path (:type/:id) if it belongs to the app. */
static json_t *path_route(struct httpd_req *r, struct controller *c, json_t *app)
{
    char id[37];
    if (!uuid_normalize(httpd_param(r, "id"), id))
        return NULL;
    json_t *rt = store_get(c->store, STORE_ROUTE, id, NULL);
    if (rt && (strcmp(jstr(rt, "app"), jstr(app, "id")) ||
               strcmp(jstr(rt, "type"), httpd_param(r, "type")))) {
        json_decref(rt);
        return NULL;
    }
    if (rt)
        json_object_del(rt, "app");
    return rt;
}

void api_routes_get(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *rt = path_route(r, c, app);
    json_decref(app);
    if (!rt)
        return httpd_reply_empty(r, 404);
    httpd_reply_json(r, 200, rt);
}

void api_routes_update(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *old = path_route(r, c, app), *body = NULL, *all = NULL;
    if (!old) {
        httpd_reply_empty(r, 404);
        goto out;
    }
    body = api_body(r);
    if (!body)
        goto out;
    struct err *e = NULL;
    all = store_list(c->store, STORE_ROUTE, NULL, NULL, &e);
    if (!all) {
        api_reply_err(r, e, NULL);
        goto out;
    }
    json_object_set(body, "id", json_object_get(old, "id"));
    json_object_set(body, "type", json_object_get(old, "type"));
    if (!strcmp(jstr(old, "type"), "tcp") && !json_integer_value(json_object_get(body, "port")))
        json_object_set(body, "port", json_object_get(old, "port"));
    if (route_check(r, c, body, all) < 0)
        goto out;
    json_object_set(body, "parent_ref", json_object_get(old, "parent_ref"));
    json_object_set(body, "created_at", json_object_get(old, "created_at"));
    json_object_set_new(body, "updated_at", jnow());
    save(r, c, app, body, "route");
out:
    json_decref(all);
    json_decref(body);
    json_decref(old);
    json_decref(app);
}

void api_routes_delete(struct httpd_req *r, void *arg)
{
    struct controller *c = arg;
    json_t *app = api_path_app(r, c);
    if (!app)
        return;
    json_t *rt = path_route(r, c, app), *all = NULL;
    struct err *e = NULL;
    if (!rt) {
        httpd_reply_empty(r, 404);
        goto out;
    }
    if (!strcmp(jstr(rt, "type"), "http") && !strcmp(jstr(rt, "path"), "/")) {
        all = store_list(c->store, STORE_ROUTE, NULL, NULL, NULL);
        size_t i;
        json_t *o;
        bool deps = false;
        json_array_foreach(all, i, o) deps |= !strcmp(jstr(o, "type"), "http") &&
                                             !strcmp(jstr(o, "domain"), jstr(rt, "domain")) &&
                                             strcmp(jstr(o, "path"), "/");
        if (deps) {
            reply_route_error(r, 400, "validation_error", "Route has dependent routes", rt);
            goto out;
        }
    }
    if (api_begin(c, &e) < 0)
        goto fail;
    if (store_del(c->store, STORE_ROUTE, jstr(rt, "id"), &e) < 0 ||
        api_event(c, jstr(app, "id"), "route_deletion", jstr(rt, "id"), rt, &e) < 0) {
        api_rollback(c);
        goto fail;
    }
    if (api_commit(c, &e) < 0)
        goto fail;
    api_reply_ok(r);
    goto out;
fail:
    api_reply_err(r, e, NULL);
out:
    json_decref(all);
    json_decref(rt);
    json_decref(app);
}
