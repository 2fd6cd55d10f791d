#include "flynnrc.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsutil.h"
#include "xalloc.h"

char *flynnrc_path(void)
{
    const char *p = getenv("FLYNNRC");
    if (p && *p)
        return xstrdup(p);
    const char *home = getenv("HOME");
    return xasprintf("%s/.flynnrc", home && *home ? home : ".");
}

char *flynnrc_dir(void)
{
    const char *home = getenv("HOME");
    return xasprintf("%s/.flynn", home && *home ? home : ".");
}

struct flynnrc *flynnrc_new(void)
{
    struct flynnrc *rc = xcalloc(1, sizeof(*rc));
    rc->default_name = xstrdup("");
    return rc;
}

struct flynnrc_cluster *flynnrc_cluster_new(void)
{
    struct flynnrc_cluster *c = xcalloc(1, sizeof(*c));
    c->name = xstrdup("");
    c->oauth_url = xstrdup("");
    c->key = xstrdup("");
    c->tls_pin = xstrdup("");
    c->controller_url = xstrdup("");
    c->git_url = xstrdup("");
    c->image_url = xstrdup("");
    c->docker_push_url = xstrdup("");
    return c;
}

void flynnrc_cluster_free(struct flynnrc_cluster *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->oauth_url);
    free(c->key);
    free(c->tls_pin);
    free(c->controller_url);
    free(c->git_url);
    free(c->image_url);
    free(c->docker_push_url);
    free(c);
}

void flynnrc_free(struct flynnrc *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < rc->nclusters; i++)
        flynnrc_cluster_free(rc->clusters[i]);
    free(rc->clusters);
    free(rc->default_name);
    free(rc);
}

static void push(struct flynnrc *rc, struct flynnrc_cluster *c)
{
    rc->clusters = xrealloc(rc->clusters, (rc->nclusters + 1) * sizeof(*rc->clusters));
    rc->clusters[rc->nclusters++] = c;
}

/* Appends the UTF-8 encoding of code point cp. */
static void add_utf8(struct strbuf *sb, unsigned long cp)
{
    if (cp < 0x80) {
        strbuf_addch(sb, (int)cp);
    } else if (cp < 0x800) {
        strbuf_addch(sb, (int)(0xc0 | (cp >> 6)));
        strbuf_addch(sb, (int)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        strbuf_addch(sb, (int)(0xe0 | (cp >> 12)));
        strbuf_addch(sb, (int)(0x80 | ((cp >> 6) & 0x3f)));
        strbuf_addch(sb, (int)(0x80 | (cp & 0x3f)));
    } else {
        strbuf_addch(sb, (int)(0xf0 | (cp >> 18)));
        strbuf_addch(sb, (int)(0x80 | ((cp >> 12) & 0x3f)));
        strbuf_addch(sb, (int)(0x80 | ((cp >> 6) & 0x3f)));
        strbuf_addch(sb, (int)(0x80 | (cp & 0x3f)));
    }
}

/* Parses a TOML string at *pp (basic "..." or literal '...'); advances *pp. */
static char *parse_string(const char **pp)
{
    const char *p = *pp;
    char q = *p++;
    struct strbuf sb = STRBUF_INIT;
    while (*p && *p != q && *p != '\n') {
        if (q == '"' && *p == '\\') {
            p++;
            switch (*p) {
            case 'b': strbuf_addch(&sb, '\b'); break;
            case 't': strbuf_addch(&sb, '\t'); break;
            case 'n': strbuf_addch(&sb, '\n'); break;
            case 'f': strbuf_addch(&sb, '\f'); break;
            case 'r': strbuf_addch(&sb, '\r'); break;
            case '"': strbuf_addch(&sb, '"'); break;
            case '\\': strbuf_addch(&sb, '\\'); break;
            case 'u':
            case 'U': {
                int n = *p == 'u' ? 4 : 8;
                char hex[9] = {0};
                for (int i = 0; i < n; i++) {
                    if (!p[1 + i]) {
                        strbuf_release(&sb);
                        return NULL;
                    }
                    hex[i] = p[1 + i];
                }
                char *end;
                unsigned long cp = strtoul(hex, &end, 16);
                if (*end) {
                    strbuf_release(&sb);
                    return NULL;
                }
                add_utf8(&sb, cp);
                p += n;
                break;
            }
            default:
                strbuf_release(&sb);
                return NULL;
            }
            p++;
            continue;
        }
        strbuf_addch(&sb, *p++);
    }
    if (*p != q) {
        strbuf_release(&sb);
        return NULL;
    }
    *pp = p + 1;
    return strbuf_detach(&sb, NULL);
}

static char **cluster_field(struct flynnrc_cluster *c, const char *key)
{
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"Name", offsetof(struct flynnrc_cluster, name)},
        {"OAuthURL", offsetof(struct flynnrc_cluster, oauth_url)},
        {"Key", offsetof(struct flynnrc_cluster, key)},
        {"TLSPin", offsetof(struct flynnrc_cluster, tls_pin)},
        {"ControllerURL", offsetof(struct flynnrc_cluster, controller_url)},
        {"GitURL", offsetof(struct flynnrc_cluster, git_url)},
        {"ImageURL", offsetof(struct flynnrc_cluster, image_url)},
        {"DockerPushURL", offsetof(struct flynnrc_cluster, docker_push_url)},
    };
    /* TOML keys are case-sensitive, but Go's decoder matches field names
     * case-insensitively as a fallback, so "name" works there too. */
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (!strcasecmp(fields[i].name, key))
            return (char **)((char *)c + fields[i].off);
    return NULL;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

struct flynnrc *flynnrc_parse(const char *text, struct err **err)
{
    struct flynnrc *rc = flynnrc_new();
    struct flynnrc_cluster *cur = NULL;
    int in_other_table = 0;
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        if (!eol)
            eol = p + strlen(p);
        const char *s = skip_ws(p);
        if (s >= eol || *s == '#' || *s == '\r') {
            p = *eol ? eol + 1 : eol;
            continue;
        }
        if (*s == '[') {
            const char *q = s;
            int arr = q[1] == '[';
            q += arr ? 2 : 1;
            q = skip_ws(q);
            const char *name = q;
            while (q < eol && *q != ']' && *q != ' ' && *q != '\t')
                q++;
            size_t nlen = (size_t)(q - name);
            q = skip_ws(q);
            if (*q != ']' || (arr && q[1] != ']'))
                goto syntax;
            if (arr && nlen == 7 && !strncmp(name, "cluster", 7)) {
                cur = flynnrc_cluster_new();
                push(rc, cur);
                in_other_table = 0;
            } else {
                cur = NULL;
                in_other_table = 1;
            }
            p = *eol ? eol + 1 : eol;
            continue;
        }
        const char *k = s;
        while (s < eol && *s != '=' && *s != ' ' && *s != '\t')
            s++;
        cleanup_free char *key = xstrndup(k, (size_t)(s - k));
        s = skip_ws(s);
        if (*s != '=')
            goto syntax;
        s = skip_ws(s + 1);
        if (*s != '"' && *s != '\'')
            goto syntax;
        char *val = parse_string(&s);
        if (!val)
            goto syntax;
        s = skip_ws(s);
        if (s < eol && *s != '#' && *s != '\r') {
            free(val);
            goto syntax;
        }
        char **slot = NULL;
        if (cur)
            slot = cluster_field(cur, key);
        else if (!in_other_table && !strcmp(key, "default"))
            slot = &rc->default_name;
        if (slot) {
            free(*slot);
            *slot = val;
        } else {
            free(val);
        }
        p = *eol ? eol + 1 : eol;
    }
    return rc;
syntax:
    flynnrc_free(rc);
    err_makex(err, EINVAL, "syntax error on line %d", lineno);
    return NULL;
}

struct flynnrc *flynnrc_load(const char *path, struct err **err)
{
    struct err *e = NULL;
    cleanup_free char *text = fs_read_file(path, NULL, &e);
    if (!text) {
        if (e->errnum == ENOENT) {
            err_free(e);
            return flynnrc_new();
        }
        *err = e;
        return NULL;
    }
    struct flynnrc *rc = flynnrc_parse(text, err);
    if (!rc)
        err_wrap(err, "%s", path);
    return rc;
}

/* A TOML basic string as BurntSushi/toml writes it. */
static void add_quoted(struct strbuf *sb, const char *s)
{
    strbuf_addch(sb, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '\b': strbuf_adds(sb, "\\b"); break;
        case '\t': strbuf_adds(sb, "\\t"); break;
        case '\n': strbuf_adds(sb, "\\n"); break;
        case '\f': strbuf_adds(sb, "\\f"); break;
        case '\r': strbuf_adds(sb, "\\r"); break;
        case '"': strbuf_adds(sb, "\\\""); break;
        case '\\': strbuf_adds(sb, "\\\\"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                strbuf_addf(sb, "\\u%04X", *p);
            else
                strbuf_addch(sb, *p);
        }
    }
    strbuf_addch(sb, '"');
}

static void add_kv(struct strbuf *sb, const char *key, const char *val, int always)
{
    if (!always && !*val)
        return;
    strbuf_addf(sb, "  %s = ", key);
    add_quoted(sb, val);
    strbuf_addch(sb, '\n');
}

void flynnrc_format(const struct flynnrc *rc, struct strbuf *out)
{
    if (!rc->nclusters)
        return;
    strbuf_adds(out, "default = ");
    add_quoted(out, rc->default_name);
    strbuf_addch(out, '\n');
    for (size_t i = 0; i < rc->nclusters; i++) {
        const struct flynnrc_cluster *c = rc->clusters[i];
        strbuf_adds(out, "\n[[cluster]]\n");
        add_kv(out, "Name", c->name, 1);
        add_kv(out, "OAuthURL", c->oauth_url, 0);
        add_kv(out, "Key", c->key, 0);
        add_kv(out, "TLSPin", c->tls_pin, 0);
        add_kv(out, "ControllerURL", c->controller_url, 1);
        add_kv(out, "GitURL", c->git_url, 1);
        add_kv(out, "ImageURL", c->image_url, 1);
        add_kv(out, "DockerPushURL", c->docker_push_url, 0);
    }
    strbuf_addch(out, '\n');
}

int flynnrc_save(const struct flynnrc *rc, const char *path, struct err **err)
{
    cleanup_strbuf struct strbuf sb = STRBUF_INIT;
    flynnrc_format(rc, &sb);
    if (fs_write_file(path, sb.buf, sb.len, 0644, 0, err) < 0)
        return err_wrap(err, "write %s", path);
    return 0;
}

struct flynnrc_cluster *flynnrc_find(const struct flynnrc *rc, const char *name)
{
    for (size_t i = 0; i < rc->nclusters; i++)
        if (!strcmp(rc->clusters[i]->name, name))
            return rc->clusters[i];
    return NULL;
}

int flynnrc_add(struct flynnrc *rc, struct flynnrc_cluster *c, int force, struct err **err)
{
    cleanup_free char *msg = NULL;
    long conflict = -1;
    for (size_t i = 0; i < rc->nclusters; i++) {
        const struct flynnrc_cluster *e = rc->clusters[i];
        char *m = NULL;
        cleanup_free char *q = NULL;
        if (!strcmp(e->name, c->name)) {
            q = go_quote(c->name);
            m = xasprintf("Cluster %s already exists in ~/.flynnrc", q);
        } else if (*e->git_url && !strcmp(e->git_url, c->git_url)) {
            q = go_quote(c->git_url);
            m = xasprintf("A cluster with the URL %s already exists in ~/.flynnrc", q);
        } else if (!strcmp(e->controller_url, c->controller_url)) {
            q = go_quote(c->controller_url);
            m = xasprintf("A cluster with the URL %s already exists in ~/.flynnrc", q);
        } else if (*e->docker_push_url && !strcmp(e->docker_push_url, c->docker_push_url)) {
            q = go_quote(c->docker_push_url);
            m = xasprintf("A cluster with the URL %s already exists in ~/.flynnrc", q);
        }
        if (m) {
            if (conflict != -1 && conflict != (long)i) {
                free(m);
                flynnrc_cluster_free(c);
                return err_makex(
                    err, EEXIST,
                    "The cluster name and/or URLs conflict with multiple existing clusters.");
            }
            conflict = (long)i;
            free(msg);
            msg = m;
        }
    }
    if (msg) {
        if (!force) {
            flynnrc_cluster_free(c);
            return err_makex(err, EEXIST, "%s", msg);
        }
        flynnrc_cluster_free(rc->clusters[conflict]);
        memmove(&rc->clusters[conflict], &rc->clusters[conflict + 1],
                (rc->nclusters - (size_t)conflict - 1) * sizeof(*rc->clusters));
        rc->nclusters--;
    }
    push(rc, c);
    return 0;
}

struct flynnrc_cluster *flynnrc_remove(struct flynnrc *rc, const char *name)
{
    for (size_t i = 0; i < rc->nclusters; i++) {
        struct flynnrc_cluster *c = rc->clusters[i];
        if (strcmp(c->name, name))
            continue;
        memmove(&rc->clusters[i], &rc->clusters[i + 1],
                (rc->nclusters - i - 1) * sizeof(*rc->clusters));
        rc->nclusters--;
        return c;
    }
    return NULL;
}

int flynnrc_set_default(struct flynnrc *rc, const char *name)
{
    if (!flynnrc_find(rc, name))
        return -1;
    free(rc->default_name);
    rc->default_name = xstrdup(name);
    return 0;
}

char *go_quote(const char *s)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_addch(&sb, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '\a': strbuf_adds(&sb, "\\a"); break;
        case '\b': strbuf_adds(&sb, "\\b"); break;
        case '\f': strbuf_adds(&sb, "\\f"); break;
        case '\n': strbuf_adds(&sb, "\\n"); break;
        case '\r': strbuf_adds(&sb, "\\r"); break;
        case '\t': strbuf_adds(&sb, "\\t"); break;
        case '\v': strbuf_adds(&sb, "\\v"); break;
        case '"': strbuf_adds(&sb, "\\\""); break;
        case '\\': strbuf_adds(&sb, "\\\\"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                strbuf_addf(&sb, "\\x%02x", *p);
            else
                strbuf_addch(&sb, *p);
        }
    }
    strbuf_addch(&sb, '"');
    return strbuf_detach(&sb, NULL);
}
