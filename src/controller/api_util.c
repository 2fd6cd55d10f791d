/* Helpers shared by the api_*.c handlers: auth, bodies, errors, lookups,
 * transactions with their events. */
#include "api.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "events.h"
#include "ids.h"
#include "log.h"
#include "store.h"
#include "validate.h"
#include "xalloc.h"

char *api_auth_password(struct httpd_req *r)
{
    const char *h = httpd_header(r, "Authorization");
    if (!h)
        return NULL;
    if (!strncasecmp(h, "Bearer ", 7))
        return xstrdup(h + 7);
    if (strncasecmp(h, "Basic ", 6))
        return NULL;
    const char *b64 = h + 6;
    while (*b64 == ' ')
        b64++;
    size_t n = strlen(b64);
    if (n == 0 || n % 4 || n > 8192)
        return NULL;
    unsigned char *out = xmalloc(n / 4 * 3 + 1);
    int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (len < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts padding as output bytes */
    if (n >= 1 && b64[n - 1] == '=')
        len--;
    if (n >= 2 && b64[n - 2] == '=')
        len--;
    out[len] = '\0';
    if (memchr(out, '\0', (size_t)len)) {
        free(out);
        return NULL;
    }
    char *colon = strchr((char *)out, ':');
    if (!colon) {
        free(out);
        return NULL;
    }
    /* user name is ignored (empty from the CLI, "user" from git, "Bearer" for tokens) */
    char *pw = xstrdup(colon + 1);
    free(out);
    return pw;
}

bool api_key_ok(struct controller *c, const char *pw)
{
    if (c->nkeys == 0)
        return true;
    if (!pw)
        return false;
    unsigned char got[SHA256_DIGEST_LENGTH], want[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)pw, strlen(pw), got);
    int match = 0;
    /* compare digests in constant time against every key, without an early exit */
    for (size_t i = 0; i < c->nkeys; i++) {
        SHA256((const unsigned char *)c->keys[i], strlen(c->keys[i]), want);
        match |= CRYPTO_memcmp(got, want, sizeof(got)) == 0;
    }
    return match;
}

bool api_authorized(struct httpd_req *r, struct controller *c)
{
    cleanup_free char *pw = api_auth_password(r);
    if (api_key_ok(c, pw))
        return true;
    httpd_reply_empty(r, 401);
    return false;
}

json_t *api_body(struct httpd_req *r)
{
    const char *ct = httpd_header(r, "Content-Type");
    if (!ct || !strcasestr(ct, "application/json")) {
        api_error(r, 400, "validation_error", NULL, "Content-Type must be application/json");
        return NULL;
    }
    return httpd_body_json(r);
}

void api_error(struct httpd_req *r, int status, const char *code, const char *field,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s,s:s,s:b}", "code", code, "message", msg, "retry",
                          status == 503 || status == 429 || status == 500);
    if (field)
        json_object_set_new(j, "detail", json_pack("{s:s}", "field", field));
    httpd_reply_json(r, status, j);
}

void api_reply_err(struct httpd_req *r, struct err *e, const char *field)
{
    switch (e->errnum) {
    case ENOENT: httpd_reply_empty(r, 404); break;
    case EINVAL: api_error(r, 400, "validation_error", field, "%s", e->msg); break;
    case EEXIST: api_error(r, 409, "object_exists", NULL, "%s", e->msg); break;
    case EBUSY: api_error(r, 503, "service_unavailable", NULL, "%s", e->msg); break;
    default:
        log_error("request %s %s: %s", httpd_method(r), httpd_path(r), e->msg);
        api_error(r, 500, "unknown_error", NULL, "Something went wrong");
        break;
    }
    err_free(e);
}

void api_reply_ok(struct httpd_req *r)
{
    httpd_reply_empty(r, 200);
}

const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

json_t *jnow(void)
{
    char now[40];
    time_now_rfc3339(now);
    return json_string(now);
}

json_t *api_app_find(struct controller *c, const char *ref, struct err **err)
{
    char id[37];
    if (uuid_normalize(ref, id)) {
        struct err *e = NULL;
        json_t *a = store_get(c->store, STORE_APP, id, &e);
        if (a || e->errnum != ENOENT) {
            if (!a)
                *err = e;
            else
                err_free(e);
            return a;
        }
        err_free(e);
    }
    return store_app_by_name(c->store, ref, err);
}

json_t *api_release_find(struct controller *c, const char *ref, struct err **err)
{
    char id[37];
    if (!uuid_normalize(ref, id)) {
        err_makex(err, ENOENT, "release not found");
        return NULL;
    }
    return store_get(c->store, STORE_RELEASE, id, err);
}

json_t *api_path_app(struct httpd_req *r, struct controller *c)
{
    struct err *e = NULL;
    json_t *a = api_app_find(c, httpd_param(r, "app"), &e);
    if (!a)
        api_reply_err(r, e, NULL);
    return a;
}

int api_begin(struct controller *c, struct err **err)
{
    return store_begin(c->store, err);
}

int api_commit(struct controller *c, struct err **err)
{
    if (store_commit(c->store, err) < 0)
        return -1;
    events_flush(c->events);
    api_router_changed(c);
    return 0;
}

void api_rollback(struct controller *c)
{
    store_rollback(c->store);
}

int api_event(struct controller *c, const char *app_id, const char *type, const char *object_id,
              const json_t *data, struct err **err)
{
    return store_event_add(c->store, app_id, type, object_id, data, err) < 0 ? -1 : 0;
}

int api_save(struct controller *c, int kind, const char *id, const json_t *obj,
             const char *app_id, const char *event_type, struct err **err)
{
    if (api_begin(c, err) < 0)
        return -1;
    if (store_put(c->store, kind, id, obj, err) < 0 ||
        (event_type && api_event(c, app_id, event_type, id, obj, err) < 0)) {
        api_rollback(c);
        return -1;
    }
    return api_commit(c, err);
}
