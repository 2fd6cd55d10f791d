/* volume: an app's volumes (list, show, decommission). */
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

/* A *time.Time printed with %v: Go's String(), or "<nil>". */
static char *time_or_nil(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? go_time_string(s) : xstrdup("<nil>");
}

/* cluster.GenerateJobID: HOSTID-UUID, or "" without a job. */
static char *job_id(json_t *v)
{
    const char *job = json_string_value(json_object_get(v, "job"));
    return job ? xasprintf("%s-%s", jstr(v, "host_id"), job) : xstrdup("");
}

static int volume_list(struct client *c, const char *ea, struct err **err)
{
    char *path = xasprintf("/apps/%s/volumes", ea);
    json_t *list = NULL;
    int rc = client_json(c, "GET", path, NULL, &list, err);
    free(path);
    if (rc < 0)
        return -1;
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "ID\tHOST\tSTATE\tATTACHED JOB\tCREATED\tDECOMMISSIONED\n");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        cleanup_free char *job = job_id(v);
        cleanup_free char *created = human_time(jstr(v, "created_at"));
        json_t *dec = json_object_get(v, "decommissioned_at");
        tabw_addf(&w, "%s\t%s\t%s\t%s\t%s\t%s\n", jstr(v, "id"), jstr(v, "host_id"),
                  jstr(v, "state"), job, created, dec && !json_is_null(dec) ? "true" : "false");
    }
    tabw_flush(&w);
    json_decref(list);
    return 0;
}

static int volume_show(struct client *c, const char *ea, const char *id, int as_json,
                       struct err **err)
{
    char *ei = client_escape(id);
    char *path = xasprintf("/apps/%s/volumes/%s", ea, ei);
    free(ei);
    json_t *v = NULL;
    int rc = client_json(c, "GET", path, NULL, &v, err);
    free(path);
    if (rc < 0)
        return -1;
    if (as_json) {
        char *s = json_dumps(v, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(v);
        return 0;
    }
    cleanup_free char *job = job_id(v);
    cleanup_free char *created = time_or_nil(v, "created_at");
    cleanup_free char *updated = time_or_nil(v, "updated_at");
    cleanup_free char *dec = time_or_nil(v, "decommissioned_at");
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "ID:\t%s\nState:\t%s\nHostID:\t%s\nAppID:\t%s\nReleaseID:\t%s\n", jstr(v, "id"),
              jstr(v, "state"), jstr(v, "host_id"), jstr(v, "app"), jstr(v, "release"));
    tabw_addf(&w, "JobID:\t%s\nJobType:\t%s\nCreatedAt:\t%s\nUpdatedAt:\t%s\n", job,
              jstr(v, "job_type"), created, updated);
    tabw_addf(&w, "DecommissionedAt:\t%s\n", dec);
    tabw_flush(&w);
    json_decref(v);
    return 0;
}

static int volume_decommission(struct client *c, const char *ea, const char *id, struct err **err)
{
    char *ei = client_escape(id);
    char *path = xasprintf("/apps/%s/volumes/%s/decommission", ea, ei);
    free(ei);
    json_t *body = json_pack("{s:s,s:s,s:s,s:s}", "id", id, "host_id", "", "type", "", "state", "");
    json_t *v = NULL;
    int rc = client_json(c, "PUT", path, body, &v, err);
    free(path);
    json_decref(body);
    if (rc < 0)
        return -1;
    cleanup_free char *at = time_or_nil(v, "decommissioned_at");
    printf("volume %s successfully decommissioned at %s\n", id, at);
    json_decref(v);
    return 0;
}

int cmd_volume(struct cli *cli, int argc, char **argv, struct err **err)
{
    static const struct opt_spec specs[] = {{0, "json", 0}};
    struct opts o;
    if (cli_parse(cli, &o, specs, ARRAY_SIZE(specs), argc, argv, 0, 2) < 0)
        return CLI_USAGE;
    int ret = -1;
    char *ea = NULL;
    const char *sub = o.npos ? o.pos[0] : NULL;
    int show = sub && !strcmp(sub, "show") && o.npos == 2;
    int decom = sub && !strcmp(sub, "decommission") && o.npos == 2;
    if ((sub && !show && !decom) || (!show && opts_has(&o, "json"))) {
        ret = cli_usage(cli);
        goto out;
    }
    const char *app = cli_app(cli, err);
    struct client *c = app ? cli_client(cli, err) : NULL;
    if (!c)
        goto out;
    ea = client_escape(app);
    if (show)
        ret = volume_show(c, ea, o.pos[1], opts_has(&o, "json"), err);
    else if (decom)
        ret = volume_decommission(c, ea, o.pos[1], err);
    else
        ret = volume_list(c, ea, err);
out:
    free(ea);
    opts_release(&o);
    return ret;
}
