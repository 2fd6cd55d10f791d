#include "route_table.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "xalloc.h"

void (*route_table_backend_release)(struct backend *b);

void backend_ref(struct backend *b)
{
    b->refs++;
}

void backend_unref(struct backend *b)
{
    if (!b || --b->refs > 0)
        return;
    if (route_table_backend_release)
        route_table_backend_release(b);
    free(b);
}

static int parse_addr(const char *s, struct backend *b)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || strlen(s) >= sizeof(b->addr))
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -1;
    memset(&b->sa, 0, sizeof(b->sa));
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&b->sa;
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return -1;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        b->salen = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&b->sa;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -1;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        b->salen = sizeof(*a4);
    }
    snprintf(b->addr, sizeof(b->addr), "%s", s);
    return 0;
}

/* The table's backend for addr: shared within the table, taken over from
 * old when it had one. */
static struct backend *get_backend(struct route_table *t, struct route_table *old,
                                   const char *addr, struct err **err)
{
    for (size_t i = 0; i < t->nbackends; i++)
        if (!strcmp(t->backends[i]->addr, addr))
            return t->backends[i];
    struct backend *b = NULL;
    for (size_t i = 0; old && i < old->nbackends; i++)
        if (!strcmp(old->backends[i]->addr, addr)) {
            b = old->backends[i];
            backend_ref(b);
            b->draining = false;
            break;
        }
    if (!b) {
        b = xcalloc(1, sizeof(*b));
        if (parse_addr(addr, b) < 0) {
            free(b);
            err_makex(err, EINVAL, "bad backend address '%s'", addr);
            return NULL;
        }
        b->refs = 1;
    }
    t->backends = xrealloc(t->backends, (t->nbackends + 1) * sizeof(*t->backends));
    t->backends[t->nbackends++] = b;
    return b;
}

static char *lower_dup(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int load_route(struct route_table *t, struct route_table *old, json_t *o, struct route *r,
                      size_t idx, struct err **err)
{
    if (!json_is_object(o))
        return err_makex(err, EINVAL, "route %zu: not an object", idx);
    const char *type = jstr(o, "type");
    if (!type || !strcmp(type, "http"))
        r->type = ROUTE_HTTP;
    else if (!strcmp(type, "tcp"))
        r->type = ROUTE_TCP;
    else
        return err_makex(err, EINVAL, "route %zu: bad type '%s'", idx, type);
    r->id = xstrdup(jstr(o, "id") ? jstr(o, "id") : "");
    r->service = xstrdup(jstr(o, "service") ? jstr(o, "service") : "");
    r->sticky = json_is_true(json_object_get(o, "sticky"));
    r->disable_keep_alives = json_is_true(json_object_get(o, "disable_keep_alives"));
    if (r->type == ROUTE_HTTP) {
        const char *d = jstr(o, "domain");
        if (!d || !*d)
            return err_makex(err, EINVAL, "route %zu: http route without a domain", idx);
        r->domain = lower_dup(d);
        char *colon = strchr(r->domain, ':');
        if (colon)
            *colon = '\0';
        const char *p = jstr(o, "path");
        if (!p || !*p)
            p = "/";
        if (p[0] != '/')
            return err_makex(err, EINVAL, "route %zu: path '%s' does not start with /", idx, p);
        size_t pl = strlen(p);
        r->path = p[pl - 1] == '/' ? xstrdup(p) : xasprintf("%s/", p);
        r->path_len = strlen(r->path);
        json_t *c = json_object_get(o, "certificate");
        const char *cert = json_is_object(c) ? jstr(c, "cert") : NULL;
        const char *key = json_is_object(c) ? jstr(c, "key") : NULL;
        if (!cert || !key) {
            cert = jstr(o, "tls_cert");
            key = jstr(o, "tls_key");
        }
        if (cert && *cert && key && *key) {
            r->cert_pem = xstrdup(cert);
            r->key_pem = xstrdup(key);
        }
    } else {
        json_t *port = json_object_get(o, "port");
        if (!json_is_integer(port) || json_integer_value(port) <= 0 ||
            json_integer_value(port) > 65535)
            return err_makex(err, EINVAL, "route %zu: tcp route needs a port", idx);
        r->port = (int)json_integer_value(port);
        r->path = xstrdup("");
    }
    json_t *bs = json_object_get(o, "backends");
    if (bs && !json_is_array(bs))
        return err_makex(err, EINVAL, "route %zu: backends is not a list", idx);
    size_t n = json_array_size(bs);
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(bs, i)))
            return err_makex(err, EINVAL, "route %zu: backend %zu is not a string", idx, i);
    r->leader = json_is_true(json_object_get(o, "leader"));
    if (r->leader && n > 1)
        n = 1; /* the service's leader comes first */
    r->backends = xcalloc(n ? n : 1, sizeof(*r->backends));
    for (size_t i = 0; i < n; i++) {
        const char *a = json_string_value(json_array_get(bs, i));
        struct backend *b = get_backend(t, old, a, err);
        if (!b)
            return err_wrap(err, "route %zu", idx);
        r->backends[r->nbackends++] = b;
    }
    return 0;
}

static int cmp_route_ptr(const void *a, const void *b)
{
    const struct route *x = *(struct route *const *)a, *y = *(struct route *const *)b;
    int c = strcmp(x->domain, y->domain);
    if (c)
        return c;
    if (x->path_len != y->path_len)
        return x->path_len > y->path_len ? -1 : 1; /* longest first */
    return strcmp(x->path, y->path);
}

static void build_domains(struct route_table *t)
{
    size_t nhttp = 0;
    for (size_t i = 0; i < t->nroutes; i++)
        nhttp += t->routes[i].type == ROUTE_HTTP;
    if (!nhttp)
        return;
    struct route **all = xcalloc(nhttp, sizeof(*all));
    size_t k = 0;
    for (size_t i = 0; i < t->nroutes; i++)
        if (t->routes[i].type == ROUTE_HTTP)
            all[k++] = &t->routes[i];
    qsort(all, nhttp, sizeof(*all), cmp_route_ptr);
    t->domains = xcalloc(nhttp, sizeof(*t->domains));
    for (size_t i = 0; i < nhttp;) {
        size_t j = i;
        while (j < nhttp && !strcmp(all[j]->domain, all[i]->domain))
            j++;
        struct domain_entry *d = &t->domains[t->ndomains++];
        d->domain = all[i]->domain;
        d->n = j - i;
        d->routes = xcalloc(d->n, sizeof(*d->routes));
        memcpy(d->routes, all + i, d->n * sizeof(*d->routes));
        i = j;
    }
    free(all);
}

static void table_free(struct route_table *t)
{
    for (size_t i = 0; i < t->nroutes; i++) {
        struct route *r = &t->routes[i];
        free(r->id);
        free(r->domain);
        free(r->path);
        free(r->service);
        free(r->backends);
        free(r->cert_pem);
        free(r->key_pem);
        if (r->ssl && route_table_ssl_free)
            route_table_ssl_free(r->ssl);
    }
    free(t->routes);
    for (size_t i = 0; i < t->ndomains; i++)
        free(t->domains[i].routes);
    free(t->domains);
    for (size_t i = 0; i < t->nbackends; i++)
        backend_unref(t->backends[i]);
    free(t->backends);
    free(t);
}

void (*route_table_ssl_free)(struct ssl_ctx_st *ctx);

struct route_table *route_table_parse(const char *text, size_t len, struct route_table *old,
                                      struct err **err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        err_makex(err, EINVAL, "invalid JSON at line %d: %s", je.line, je.text);
        return NULL;
    }
    json_t *list = json_is_object(root) ? json_object_get(root, "routes") : root;
    if (!json_is_array(list)) {
        json_decref(root);
        err_makex(err, EINVAL, "expected a JSON list of routes");
        return NULL;
    }
    static unsigned long generation;
    struct route_table *t = xcalloc(1, sizeof(*t));
    t->refs = 1;
    t->generation = ++generation;
    size_t n = json_array_size(list);
    t->routes = xcalloc(n ? n : 1, sizeof(*t->routes));
    for (size_t i = 0; i < n; i++) {
        t->nroutes++;
        if (load_route(t, old, json_array_get(list, i), &t->routes[i], i, err) < 0) {
            json_decref(root);
            table_free(t);
            return NULL;
        }
    }
    json_decref(root);
    build_domains(t);
    /* backends of old that t does not carry start draining */
    for (size_t i = 0; old && i < old->nbackends; i++) {
        bool kept = false;
        for (size_t j = 0; j < t->nbackends && !kept; j++)
            kept = t->backends[j] == old->backends[i];
        if (!kept)
            old->backends[i]->draining = true;
    }
    return t;
}

struct route_table *route_table_load(const char *path, struct route_table *old, struct err **err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        err_make(err, errno, "open '%s'", path);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 65536;
            buf = xrealloc(buf, cap);
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        err_makex(err, EIO, "read '%s'", path);
        return NULL;
    }
    struct route_table *t = route_table_parse(buf, len, old, err);
    free(buf);
    if (!t)
        err_wrap(err, "load routes from '%s'", path);
    return t;
}

void route_table_ref(struct route_table *t)
{
    t->refs++;
}

void route_table_unref(struct route_table *t)
{
    if (t && --t->refs == 0)
        table_free(t);
}

static struct domain_entry *find_domain(const struct route_table *t, const char *h, size_t n)
{
    size_t lo = 0, hi = t->ndomains;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *d = t->domains[mid].domain;
        int c = strncmp(d, h, n);
        if (c == 0 && d[n] != '\0')
            c = 1;
        if (c == 0)
            return &t->domains[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Lowercases host into buf, without a ":port" and a trailing dot. */
static size_t norm_host(const char *host, size_t n, char *buf, size_t cap)
{
    size_t k = 0;
    if (n && host[0] == '[') { /* IPv6 literal: keep up to ']' */
        const char *e = memchr(host, ']', n);
        n = e ? (size_t)(e - host + 1) : n;
    } else {
        const char *c = memchr(host, ':', n);
        if (c)
            n = (size_t)(c - host);
    }
    if (n && host[n - 1] == '.')
        n--;
    if (n >= cap)
        return 0;
    for (; k < n; k++)
        buf[k] = (char)tolower((unsigned char)host[k]);
    buf[k] = '\0';
    return k;
}

static struct domain_entry *match_domain(const struct route_table *t, const char *host,
                                         size_t host_len)
{
    char h[256 + 2];
    size_t n = norm_host(host, host_len, h + 1, sizeof(h) - 1);
    if (!n)
        return NULL;
    struct domain_entry *d = find_domain(t, h + 1, n);
    if (d)
        return d;
    /* wildcards: "*.b.c" for "a.b.c", then "*.c" */
    for (size_t i = 1; i < n; i++) {
        if (h[1 + i] != '.')
            continue;
        h[i] = '*';
        d = find_domain(t, h + i, n - i + 1);
        if (d)
            return d;
    }
    return NULL;
}

struct route *route_table_lookup(const struct route_table *t, const char *host, size_t host_len,
                                 const char *path, size_t path_len)
{
    if (!t || !t->ndomains)
        return NULL;
    struct domain_entry *d = match_domain(t, host, host_len);
    if (!d)
        return NULL;
    const char *q = memchr(path, '?', path_len);
    if (q)
        path_len = (size_t)(q - path);
    for (size_t i = 0; i < d->n; i++) {
        struct route *r = d->routes[i];
        if (path_len >= r->path_len && !memcmp(path, r->path, r->path_len))
            return r;
        if (path_len + 1 == r->path_len && !memcmp(path, r->path, path_len))
            return r; /* "/api" for route "/api/" */
    }
    return NULL;
}

struct route *route_table_lookup_domain(const struct route_table *t, const char *host,
                                        size_t host_len)
{
    if (!t || !t->ndomains)
        return NULL;
    struct domain_entry *d = match_domain(t, host, host_len);
    if (!d)
        return NULL;
    for (size_t i = 0; i < d->n; i++)
        if (d->routes[i]->ssl)
            return d->routes[i];
    return d->routes[d->n - 1];
}
