/* ps, kill: jobs. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tabw.h"
#include "xalloc.h"

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Oldest first; jobs without a creation time first (Flynn's sortJobs). */
static int by_created(const void *a, const void *b)
{
    const char *x = jstr(*(json_t *const *)a, "created_at");
    const char *y = jstr(*(json_t *const *)b, "created_at");
    if (!*x || !*y)
        return !*x && !*y ? 0 : (!*x ? -1 : 1);
    return strcmp(x, y); /* RFC 3339 UTC strings sort by time */
}

int cmd_ps(struct cli *cli, int argc, char **argv, struct err **err)
{
    cleanup_free char *ea = NULL;
    cleanup_free char *path = NULL;
    static const struct opt_spec specs[] = {
        {'a', "all", 0}, {'c', "command", 0}, {'q', "quiet", 0}, {'t', "type", 1}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 0) < 0)
        return CLI_USAGE;
    int ret = -1;
    json_t *jobs = NULL;
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    ea = client_escape(app);
    path = xasprintf("/apps/%s/jobs", ea);
    if (client_json(c, "GET", path, NULL, &jobs, err) < 0)
        goto out;
    size_t n = json_array_size(jobs);
    json_t **v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(jobs, i);
    qsort(v, n, sizeof(*v), by_created);
    int quiet = opts_has(&o, "quiet"), cmd = opts_has(&o, "command"), all = opts_has(&o, "all");
    const char *want = opts_get(&o, "type", "");
    struct tabw w = TABW_INIT;
    if (!quiet)
        tabw_addf(&w, "ID\tTYPE\tSTATE\tCREATED\tRELEASE%s\n", cmd ? "\tCOMMAND" : "");
    for (size_t i = 0; i < n; i++) {
        json_t *j = v[i];
        const char *state = jstr(j, "state");
        if (!all && strcmp(state, "up") && strcmp(state, "pending"))
            continue;
        const char *type = *jstr(j, "type") ? jstr(j, "type") : "run";
        if (*want && strcmp(type, want))
            continue;
        const char *id = *jstr(j, "id") ? jstr(j, "id") : jstr(j, "uuid");
        if (quiet) {
            tabw_addf(&w, "%s\n", id);
            continue;
        }
        cleanup_free char *created = human_time(jstr(j, "created_at"));
        tabw_addf(&w, "%s\t%s\t%s\t%s\t%s", id, type, state, created, jstr(j, "release"));
        if (cmd) {
            tabw_addf(&w, "\t");
            size_t k;
            json_t *a;
            json_array_foreach(json_object_get(j, "args"), k, a)
                tabw_addf(&w, "%s%s", k ? " " : "", json_string_value(a));
        }
        tabw_addf(&w, "\n");
    }
    tabw_flush(&w);
    free(v);
    ret = 0;
out:
    json_decref(jobs);
    opts_release(&o);
    return ret;
}

int cmd_kill(struct cli *cli, int argc, char **argv, struct err **err)
{
    cleanup_free char *ea = NULL;
    struct opts o;
    if (cli_parse(cli, &o, NULL, 0, argc, argv, 1, -1) < 0)
        return CLI_USAGE;
    int ret = -1;
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    ea = client_escape(app);
    int ok = 1;
    for (int i = 0; i < o.npos; i++) {
        cleanup_free char *ej = client_escape(o.pos[i]);
        cleanup_free char *path = xasprintf("/apps/%s/jobs/%s", ea, ej);
        struct err *e = NULL;
        if (client_json(c, "DELETE", path, NULL, NULL, &e) < 0) {
            ok = 0;
            fprintf(stderr, "ERROR: could not kill job %s: %s\n", o.pos[i], e->msg);
            err_free(e);
            continue;
        }
        fprintf(stderr, "Job %s killed.\n", o.pos[i]);
    }
    ret = ok ? 0 : err_makex(err, EIO, "Could not kill all jobs.");
out:
    opts_release(&o);
    return ret;
}
