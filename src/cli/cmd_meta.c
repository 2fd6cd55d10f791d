/* meta: app metadata (GET /apps/APP, POST /apps/ID/meta with the whole app). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tabw.h"
#include "xalloc.h"

int cmd_meta(struct cli *cli, int argc, char **argv, struct err **err)
{
    cleanup_free char *ea = NULL;
    cleanup_free char *path = NULL;
    cleanup_free char *eid = NULL;
    cleanup_free char *mpath = NULL;
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 0, -1) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *app = NULL, *updated = NULL;
    const char *sub = o.npos ? o.pos[0] : NULL;
    int set = sub && !strcmp(sub, "set"), unset = sub && !strcmp(sub, "unset");
    if ((sub && !set && !unset) || (sub && o.npos < 2)) {
        ret = cli_usage(cli);
        goto out;
    }
    const char *name = cli_app(cli, err);
    struct client *c = name ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    ea = client_escape(name);
    path = xasprintf("/apps/%s", ea);
    if (client_json(c, "GET", path, NULL, &app, err) < 0)
        goto out;
    json_t *meta = json_object_get(app, "meta");
    if (!sub) {
        struct tabw w = TABW_INIT;
        tabw_addf(&w, "KEY\tVALUE\n");
        size_t n;
        const char **keys = json_sorted_keys(meta, &n);
        for (size_t i = 0; i < n; i++)
            tabw_addf(&w, "%s\t%s\n", keys[i], json_string_value(json_object_get(meta, keys[i])));
        free(keys);
        tabw_flush(&w);
        ret = 0;
        goto out;
    }
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(app, "meta", meta);
    }
    for (int i = 1; i < o.npos; i++) {
        if (unset) {
            json_object_del(meta, o.pos[i]);
            continue;
        }
        char *eq = strchr(o.pos[i], '=');
        if (!eq) {
            cleanup_free char *q = go_quote(o.pos[i]);
            ret = err_makex(err, EINVAL, "invalid var format: %s", q);
            goto out;
        }
        cleanup_free char *k = xstrndup(o.pos[i], (size_t)(eq - o.pos[i]));
        json_object_set_new(meta, k, json_string(eq + 1));
    }
    const char *id = json_string_value(json_object_get(app, "id"));
    eid = client_escape(id ? id : name);
    mpath = xasprintf("/apps/%s/meta", eid);
    ret = client_json(c, "POST", mpath, app, &updated, err);
out:
    json_decref(updated);
    json_decref(app);
    opts_release(&o);
    return ret;
}
