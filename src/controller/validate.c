#include "validate.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "xalloc.h"

bool validate_app_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 100)
        return false;
    bool prev_dash = true; /* no leading dash */
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '-') {
            if (prev_dash)
                return false;
            prev_dash = true;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            prev_dash = false;
        } else {
            return false;
        }
    }
    return !prev_dash;
}

static const char *const adjectives[] = {
    "amber", "brave", "calm", "dapper", "eager", "fancy", "gentle", "happy", "icy", "jolly",
    "keen", "lucky", "mellow", "noble", "olive", "proud", "quiet", "rapid", "sunny", "tidy",
    "upbeat", "vivid", "witty", "young", "zesty",
};
static const char *const animals[] = {
    "otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "orca", "panda", "quail",
    "raven", "seal", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "bison", "crane",
};

void app_name_generate(char out[64])
{
    uint32_t r[3];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        memset(r, 0, sizeof(r));
    snprintf(out, 64, "%s-%s-%04u", adjectives[r[0] % ARRAY_SIZE(adjectives)],
             animals[r[1] % ARRAY_SIZE(animals)], (unsigned)(r[2] % 10000));
}

bool validate_env_key(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n > 0 && n <= 1024 && !strchr(key, '=');
}

bool validate_process_type(const char *type)
{
    size_t n = type ? strlen(type) : 0;
    if (n == 0 || n > 100)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)type[i]) && !strchr("_.-", type[i]))
            return false;
    return true;
}

bool uuid_normalize(const char *s, char out[37])
{
    if (!s)
        return false;
    char hex[33];
    size_t nh = 0;
    static const int dash_at[] = {8, 12, 16, 20};
    size_t di = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '-') {
            /* dashes are only allowed at the canonical positions */
            if (di >= 4 || (int)nh != dash_at[di])
                return false;
            di++;
            continue;
        }
        if (!isxdigit((unsigned char)*p) || nh == 32)
            return false;
        hex[nh++] = (char)tolower((unsigned char)*p);
    }
    if (nh != 32 || (di != 0 && di != 4))
        return false;
    hex[32] = '\0';
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return true;
}

bool validate_string_map(const json_t *v, bool allow_null)
{
    if (!v || json_is_null(v))
        return allow_null;
    if (!json_is_object(v))
        return false;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val) if (!json_is_string(val)) return false;
    return true;
}

static int fail(const char **field, const char *f, struct err **err, const char *msg)
{
    if (field)
        *field = f;
    return err_makex(err, EINVAL, "%s", msg);
}

static const struct {
    const char *name;
    json_int_t def;
} default_resources[] = {
    {"memory", 1073741824},
    {"cpu", 1000},
    {"temp_disk", 104857600},
    {"max_fd", 10000},
};

json_t *resources_default(json_t *res)
{
    if (!json_is_object(res))
        res = json_object();
    for (size_t i = 0; i < ARRAY_SIZE(default_resources); i++) {
        json_t *r = json_object_get(res, default_resources[i].name);
        if (!json_is_object(r)) {
            r = json_object();
            json_object_set_new(res, default_resources[i].name, r);
        }
        json_t *lim = json_object_get(r, "limit");
        if (!json_is_integer(lim)) {
            lim = json_integer(default_resources[i].def);
            json_object_set_new(r, "limit", lim);
        }
        if (!json_is_integer(json_object_get(r, "request")))
            json_object_set(r, "request", lim);
    }
    return res;
}

static bool is_string_array(const json_t *v)
{
    if (!json_is_array(v))
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!json_is_string(e)) return false;
    return true;
}

static int env_check(json_t *env, const char *field, const char **fieldp, struct err **err)
{
    if (!validate_string_map(env, true))
        return fail(fieldp, field, err, "env must be an object of strings");
    const char *k;
    json_t *v;
    if (json_is_object(env))
        json_object_foreach(env, k, v) if (!validate_env_key(k))
            return fail(fieldp, field, err, "env key is invalid");
    return 0;
}

static int process_normalize(json_t *p, const char **field, struct err **err)
{
    if (!json_is_object(p))
        return fail(field, "processes", err, "process type must be an object");
    if (env_check(json_object_get(p, "env"), "processes", field, err) < 0)
        return -1;
    json_t *args = json_object_get(p, "args");
    json_t *cmd = json_object_get(p, "cmd");
    json_t *ep = json_object_get(p, "entrypoint");
    if ((args && !json_is_null(args) && !is_string_array(args)) ||
        (cmd && !json_is_null(cmd) && !is_string_array(cmd)) ||
        (ep && !json_is_null(ep) && !is_string_array(ep)))
        return fail(field, "processes", err, "process args must be an array of strings");
    if (!json_array_size(args) && (json_array_size(cmd) || json_array_size(ep))) {
        json_t *a = json_array();
        if (json_is_array(ep))
            json_array_extend(a, ep);
        if (json_is_array(cmd))
            json_array_extend(a, cmd);
        json_object_set_new(p, "args", a);
    }
    json_object_del(p, "cmd");
    json_object_del(p, "entrypoint");
    json_t *ports = json_object_get(p, "ports");
    if (ports && !json_is_null(ports)) {
        if (!json_is_array(ports))
            return fail(field, "processes", err, "ports must be an array");
        size_t i;
        json_t *port;
        json_array_foreach(ports, i, port)
        {
            json_t *pn = json_object_get(port, "port");
            if (!json_is_object(port) || (pn && !json_is_integer(pn)) ||
                json_integer_value(pn) < 0 || json_integer_value(pn) > 65535)
                return fail(field, "processes", err, "port is invalid");
            const char *proto = json_string_value(json_object_get(port, "proto"));
            if (!proto || !*proto)
                json_object_set_new(port, "proto", json_string("tcp"));
            else if (strcmp(proto, "tcp") && strcmp(proto, "udp"))
                return fail(field, "processes", err, "port proto is invalid");
            if (!pn)
                json_object_set_new(port, "port", json_integer(0));
        }
    }
    json_t *data = json_object_get(p, "data");
    if (json_is_true(data)) {
        json_t *vols = json_object_get(p, "volumes");
        if (!json_is_array(vols)) {
            vols = json_array();
            json_object_set_new(p, "volumes", vols);
        }
        json_array_append_new(vols, json_pack("{s:s}", "path", "/data"));
    }
    json_object_del(p, "data");
    json_t *res = json_object_get(p, "resources");
    if (res && !json_is_null(res) && !json_is_object(res))
        return fail(field, "processes", err, "resources must be an object");
    json_object_set_new(p, "resources", resources_default(json_incref(res)));
    return 0;
}

int release_normalize(json_t *rel, const char **field, struct err **err)
{
    json_t *arts = json_object_get(rel, "artifacts");
    json_t *art = json_object_get(rel, "artifact");
    if (arts && !json_is_null(arts) && !is_string_array(arts))
        return fail(field, "artifacts", err, "artifacts must be an array of IDs");
    if (art && !json_is_null(art) && !json_is_string(art))
        return fail(field, "artifact", err, "artifact must be an ID");
    json_t *norm = json_array();
    if (json_array_size(arts)) {
        size_t i;
        json_t *a;
        json_array_foreach(arts, i, a)
        {
            char id[37];
            if (!uuid_normalize(json_string_value(a), id)) {
                json_decref(norm);
                return fail(field, "artifacts", err, "artifact ID is invalid");
            }
            json_array_append_new(norm, json_string(id));
        }
    } else if (json_is_string(art) && *json_string_value(art)) {
        char id[37];
        if (!uuid_normalize(json_string_value(art), id)) {
            json_decref(norm);
            return fail(field, "artifact", err, "artifact ID is invalid");
        }
        json_array_append_new(norm, json_string(id));
    }
    json_object_set_new(rel, "artifacts", norm);
    json_object_del(rel, "artifact");
    json_t *env = json_object_get(rel, "env");
    if (env_check(env, "env", field, err) < 0)
        return -1;
    if (!validate_string_map(json_object_get(rel, "meta"), true))
        return fail(field, "meta", err, "meta must be an object of strings");
    json_t *procs = json_object_get(rel, "processes");
    if (procs && !json_is_null(procs)) {
        if (!json_is_object(procs))
            return fail(field, "processes", err, "processes must be an object");
        const char *t;
        json_t *p;
        json_object_foreach(procs, t, p)
        {
            if (!validate_process_type(t))
                return fail(field, "processes", err, "process type is invalid");
            if (process_normalize(p, field, err) < 0)
                return -1;
        }
    }
    return 0;
}

int validate_processes(const json_t *procs, const json_t *release_procs, const char **field,
                       struct err **err)
{
    if (!json_is_object(procs))
        return fail(field, "processes", err, "processes must be an object");
    const char *t;
    json_t *n;
    json_object_foreach((json_t *)procs, t, n)
    {
        if (!json_is_integer(n))
            return fail(field, "processes", err, "process count must be an integer");
        if (json_integer_value(n) < 0)
            return fail(field, "processes", err, "process count must not be negative");
        if (json_integer_value(n) > MAX_PROCESS_COUNT)
            return fail(field, "processes", err, "process count is too large");
        if (release_procs && !json_object_get(release_procs, t))
            return fail(field, "processes", err, "process type is not in the release");
    }
    return 0;
}
