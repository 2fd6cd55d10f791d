/* route: list, add, update and remove an app's HTTP and TCP routes. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "tabw.h"
#include "xalloc.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int has_tls(json_t *r)
{
    json_t *cert = json_object_get(r, "certificate");
    return (cert && !json_is_null(cert)) || *jstr(r, "tls_cert");
}

static int route_list(struct client *c, const char *app, struct err **err)
{
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s/routes", ea);
    json_t *routes = NULL;
    if (client_json(c, "GET", path, NULL, &routes, err) < 0)
        return -1;
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "ROUTE\tSERVICE\tID\tSTICKY\tLEADER\tPATH\n");
    /* like Flynn's loop, values of an http row carry over to later tcp rows */
    cleanup_free char *route = xstrdup("");
    cleanup_free char *protocol = xstrdup("");
    cleanup_free char *service = xstrdup("");
    const char *sticky = "", *rpath = "";
    size_t i;
    json_t *r;
    json_array_foreach(routes, i, r)
    {
        const char *type = jstr(r, "type");
        long long port = json_integer_value(json_object_get(r, "port"));
        if (!strcmp(type, "tcp")) {
            free(route);
            route = xasprintf("%lld", port);
            free(protocol);
            protocol = xstrdup("tcp");
            free(service);
            service = xstrdup(jstr(r, "service"));
        } else if (!strcmp(type, "http")) {
            free(route);
            route = port ? xasprintf("%s:%lld", jstr(r, "domain"), port) : xstrdup(jstr(r, "domain"));
            free(service);
            service = xstrdup(jstr(r, "service"));
            free(protocol);
            protocol = xstrdup(has_tls(r) ? "https" : "http");
            sticky = json_is_true(json_object_get(r, "sticky")) ? "true" : "false";
            rpath = jstr(r, "path");
        }
        tabw_addf(&w, "%s:%s\t%s\t%s/%s\t%s\t%s\t%s\n", protocol, route, service, type,
                  jstr(r, "id"), sticky, json_is_true(json_object_get(r, "leader")) ? "true" : "false",
                  rpath);
    }
    tabw_flush(&w);
    json_decref(routes);
    return 0;
}

/* The PEM blocks of one type in text (Flynn's readPEM for "-"). */
static char *pem_blocks(const char *text, const char *type)
{
    cleanup_free char *begin = xasprintf("-----BEGIN %s-----", type);
    cleanup_free char *end = xasprintf("-----END %s-----", type);
    struct strbuf sb = STRBUF_INIT;
    for (const char *p = strstr(text, begin); p; p = strstr(p, begin)) {
        const char *e = strstr(p, end);
        if (!e)
            break;
        e += strlen(end);
        strbuf_add(&sb, p, (size_t)(e - p));
        strbuf_addch(&sb, '\n');
        p = e;
    }
    if (!sb.len) {
        strbuf_release(&sb);
        return NULL;
    }
    return strbuf_detach(&sb, NULL);
}

static int read_tls(struct opts *o, char **cert, char **key, struct err **err)
{
    const char *cp = opts_get(o, "tls-cert", ""), *kp = opts_get(o, "tls-key", "");
    *cert = *key = NULL;
    if (!*cp && !*kp)
        return 0;
    if (!*cp || !*kp)
        return err_makex(err, EINVAL, "Both the TLS certificate AND private key need to be specified");
    cleanup_strbuf struct strbuf in = STRBUF_INIT;
    if (!strcmp(cp, "-") || !strcmp(kp, "-")) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
            strbuf_add(&in, buf, n);
    }
    const char *paths[2] = {cp, kp}, *types[2] = {"CERTIFICATE", "PRIVATE KEY"};
    char **outs[2] = {cert, key};
    for (int i = 0; i < 2; i++) {
        if (!strcmp(paths[i], "-")) {
            *outs[i] = pem_blocks(in.buf, types[i]);
            if (!*outs[i])
                goto fail_stdin;
        } else {
            *outs[i] = fs_read_file(paths[i], NULL, err);
            if (!*outs[i]) {
                err_wrap(err, "Failed to read TLS %s", i ? "key" : "cert");
                goto fail;
            }
        }
        continue;
    fail_stdin:
        err_makex(err, EINVAL, "Failed to read TLS %s: No PEM blocks found in stdin",
                  i ? "key" : "cert");
        goto fail;
    }
    return 0;
fail:
    free(*cert);
    free(*key);
    *cert = *key = NULL;
    return -1;
}

static int parse_port(struct opts *o, long *port, struct err **err)
{
    const char *p = opts_get(o, "port", "");
    *port = 0;
    if (!*p)
        return 0;
    char *end;
    *port = strtol(p, &end, 10);
    if (*end) {
        cleanup_free char *q = go_quote(p);
        return err_makex(err, EINVAL, "strconv.Atoi: parsing %s: invalid syntax", q);
    }
    return 0;
}

static int route_add(struct client *c, const char *app, struct opts *o, struct err **err)
{
    const char *type = o->pos[1];
    long port;
    if (parse_port(o, &port, err) < 0)
        return -1;
    cleanup_free char *def_service = xasprintf("%s-web", app);
    const char *service = opts_get(o, "service", "");
    if (!*service)
        service = def_service;
    json_t *r = json_pack("{s:s,s:s,s:b,s:s,s:s}", "type", type, "service", service, "leader",
                          opts_has(o, "leader"), "created_at", "0001-01-01T00:00:00Z",
                          "updated_at", "0001-01-01T00:00:00Z");
    cleanup_free char *cert = NULL;
    cleanup_free char *key = NULL;
    if (!strcmp(type, "http")) {
        if (read_tls(o, &cert, &key, err) < 0) {
            json_decref(r);
            return -1;
        }
        const char *d = o->pos[2];
        size_t hl = strcspn(d, "/?#");
        json_object_set_new(r, "domain", json_stringn(d, hl));
        if (d[hl] == '/')
            json_object_set_new(r, "path", json_stringn(d + hl, strcspn(d + hl, "?#")));
        if (opts_has(o, "sticky"))
            json_object_set_new(r, "sticky", json_true());
        if (cert) {
            json_object_set_new(r, "tls_cert", json_string(cert));
            json_object_set_new(r, "tls_key", json_string(key));
        }
        if (opts_has(o, "disable-keep-alives"))
            json_object_set_new(r, "disable_keep_alives", json_true());
    }
    if (port)
        json_object_set_new(r, "port", json_integer(port));
    json_object_set_new(r, "drain_backends", json_boolean(!opts_has(o, "no-drain-backends")));
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s/routes", ea);
    json_t *created = NULL;
    int rc = client_json(c, "POST", path, r, &created, err);
    json_decref(r);
    if (rc < 0)
        return -1;
    if (!strcmp(type, "tcp"))
        printf("tcp/%s listening on port %lld\n", jstr(created, "id"),
               (long long)json_integer_value(json_object_get(created, "port")));
    else
        printf("%s/%s\n", type, jstr(created, "id"));
    json_decref(created);
    return 0;
}

static void set_flag(json_t *r, const char *field, struct opts *o, const char *on, const char *off)
{
    if (opts_has(o, on))
        json_object_set_new(r, field, json_true());
    else if (opts_has(o, off))
        json_object_set_new(r, field, json_false());
}

static int route_update(struct client *c, const char *app, const char *id, struct opts *o,
                        struct err **err)
{
    cleanup_free char *type = xstrndup(id, strcspn(id, "/"));
    if (strcmp(type, "http") && strcmp(type, "tcp"))
        return err_makex(err, EINVAL, "Route type %s not supported.", type);
    cleanup_free char *ea = client_escape(app);
    cleanup_free char *path = xasprintf("/apps/%s/routes/%s", ea, id);
    json_t *r = NULL, *out = NULL;
    int ret = -1;
    cleanup_free char *cert = NULL;
    cleanup_free char *key = NULL;
    if (client_json(c, "GET", path, NULL, &r, err) < 0)
        goto out;
    const char *service = opts_get(o, "service", "");
    if (!strcmp(type, "tcp") && !*service) {
        err_makex(err, EINVAL, "No service name given");
        goto out;
    }
    if (*service)
        json_object_set_new(r, "service", json_string(service));
    if (!strcmp(type, "http")) {
        json_object_del(r, "certificate");
        if (read_tls(o, &cert, &key, err) < 0)
            goto out;
        json_object_set_new(r, "tls_cert", json_string(cert ? cert : ""));
        json_object_set_new(r, "tls_key", json_string(key ? key : ""));
        set_flag(r, "sticky", o, "sticky", "no-sticky");
        set_flag(r, "disable_keep_alives", o, "disable-keep-alives", "enable-keep-alives");
    }
    set_flag(r, "leader", o, "leader", "no-leader");
    if (client_json(c, "PUT", path, r, &out, err) < 0)
        goto out;
    if (!strcmp(type, "tcp"))
        printf("%s/%s listening on port %lld\n", type, jstr(r, "id"),
               (long long)json_integer_value(json_object_get(r, "port")));
    else
        printf("updated %s/%s\n", type, jstr(r, "id"));
    ret = 0;
out:
    json_decref(out);
    json_decref(r);
    return ret;
}

int cmd_route(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {
        {'s', "service", 1},        {'p', "port", 1},          {'c', "tls-cert", 1},
        {'k', "tls-key", 1},        {0, "sticky", 0},          {0, "no-sticky", 0},
        {0, "leader", 0},           {0, "no-leader", 0},       {0, "no-drain-backends", 0},
        {0, "disable-keep-alives", 0}, {0, "enable-keep-alives", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 3) < 0)
        return CLI_USAGE;
    int ret = -1;
    const char *sub = o.npos ? o.pos[0] : NULL;
    int ok = !sub ||
             (!strcmp(sub, "add") && ((o.npos == 3 && !strcmp(o.pos[1], "http")) ||
                                      (o.npos == 2 && !strcmp(o.pos[1], "tcp")))) ||
             (!strcmp(sub, "update") && o.npos == 2) || (!strcmp(sub, "remove") && o.npos == 2);
    if (!ok) {
        ret = cli_usage(cli);
        goto out;
    }
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    if (!sub) {
        ret = route_list(c, app, err);
    } else if (!strcmp(sub, "add")) {
        ret = route_add(c, app, &o, err);
    } else if (!strcmp(sub, "update")) {
        ret = route_update(c, app, o.pos[1], &o, err);
    } else {
        char *ea = client_escape(app);
        char *path = xasprintf("/apps/%s/routes/%s", ea, o.pos[1]);
        ret = client_json(c, "DELETE", path, NULL, NULL, err);
        free(path);
        free(ea);
        if (ret == 0)
            printf("Route %s removed.\n", o.pos[1]);
    }
out:
    opts_release(&o);
    return ret;
}
