#include "opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static int find_long(const struct opts *o, const char *name, size_t len)
{
    for (size_t i = 0; i < o->nspecs; i++) {
        const char *l = o->specs[i].long_name;
        if (l && strlen(l) == len && !strncmp(l, name, len))
            return (int)i;
    }
    return -1;
}

static int find_short(const struct opts *o, char c)
{
    for (size_t i = 0; i < o->nspecs; i++)
        if (o->specs[i].short_name && o->specs[i].short_name == c)
            return (int)i;
    return -1;
}

int opts_parse(struct opts *o, const struct opt_spec *specs, size_t nspecs, int argc, char **argv,
               struct err **err)
{
    memset(o, 0, sizeof(*o));
    if (nspecs > OPTS_MAX)
        nspecs = OPTS_MAX;
    o->specs = specs;
    o->nspecs = nspecs;
    o->pos = xcalloc((size_t)argc + 1, sizeof(char *));
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            o->pos[o->npos++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int k = find_long(o, name, len);
            if (k < 0)
                return err_makex(err, EINVAL, "unknown option --%.*s", (int)len, name);
            o->set[k]++;
            if (specs[k].has_arg) {
                if (eq)
                    o->val[k] = eq + 1;
                else if (i + 1 < argc)
                    o->val[k] = argv[++i];
                else
                    return err_makex(err, EINVAL, "option --%s needs a value", specs[k].long_name);
            } else if (eq) {
                return err_makex(err, EINVAL, "option --%s takes no value", specs[k].long_name);
            }
            continue;
        }
        for (const char *p = a + 1; *p; p++) {
            int k = find_short(o, *p);
            if (k < 0)
                return err_makex(err, EINVAL, "unknown option -%c", *p);
            o->set[k]++;
            if (!specs[k].has_arg)
                continue;
            if (p[1])
                o->val[k] = p + 1;
            else if (i + 1 < argc)
                o->val[k] = argv[++i];
            else
                return err_makex(err, EINVAL, "option -%c needs a value", *p);
            break;
        }
    }
    return 0;
}

void opts_release(struct opts *o)
{
    free(o->pos);
    o->pos = NULL;
    o->npos = 0;
}

static int lookup(const struct opts *o, const char *name)
{
    if (name[0] && !name[1]) {
        int k = find_short(o, name[0]);
        if (k >= 0)
            return k;
    }
    return find_long(o, name, strlen(name));
}

int opts_has(const struct opts *o, const char *name)
{
    int k = lookup(o, name);
    return k >= 0 && o->set[k] > 0;
}

const char *opts_get(const struct opts *o, const char *name, const char *def)
{
    int k = lookup(o, name);
    return k >= 0 && o->val[k] ? o->val[k] : def;
}
