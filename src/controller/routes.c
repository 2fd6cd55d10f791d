/*
 * The whole HTTP API of flynn-controller in one table (flynn-api.md §3).
 *
 * How to add an endpoint: write the handler in api_<noun>.c, declare it in
 * api.h, add AUTHED(handler) below (unless it must work without the key) and
 * one row to controller_routes. The httpd matches rows in order; ":name"
 * captures a segment (httpd_param). Keep the table grouped as §3 is.
 */
#include "api.h"
#include "controller.h"
#include "httpd.h"

/* Each authed handler gets a wrapper that answers a bare 401 first when the
 * key is missing or wrong. */
#define AUTHED(fn)                                                                                 \
    static void auth_##fn(struct httpd_req *r, void *arg)                                          \
    {                                                                                              \
        if (api_authorized(r, arg))                                                                \
            fn(r, arg);                                                                            \
    }

AUTHED(api_status)
AUTHED(api_router_table)
AUTHED(api_well_known_status)
AUTHED(api_apps_create)
AUTHED(api_apps_list)
AUTHED(api_apps_get)
AUTHED(api_apps_update)
AUTHED(api_apps_delete)
AUTHED(api_artifacts_create)
AUTHED(api_artifacts_list)
AUTHED(api_artifacts_get)
AUTHED(api_releases_create)
AUTHED(api_releases_list)
AUTHED(api_releases_get)
AUTHED(api_app_releases_list)
AUTHED(api_app_release_get)
AUTHED(api_app_release_set)
AUTHED(api_app_release_delete)
AUTHED(api_formations_put)
AUTHED(api_formations_get)
AUTHED(api_formations_delete)
AUTHED(api_app_formations_list)
AUTHED(api_formations_list)
AUTHED(api_scale_put)
AUTHED(api_jobs_list)
AUTHED(api_jobs_get)
AUTHED(api_jobs_delete)
AUTHED(api_jobs_put)
AUTHED(api_jobs_run)
AUTHED(api_app_log)
AUTHED(api_providers_create)
AUTHED(api_providers_list)
AUTHED(api_providers_get)
AUTHED(api_resources_create)
AUTHED(api_resources_list)
AUTHED(api_resources_all)
AUTHED(api_app_resources)
AUTHED(api_resources_get)
AUTHED(api_resources_put)
AUTHED(api_resources_delete)
AUTHED(api_resource_app_add)
AUTHED(api_resource_app_remove)
AUTHED(api_sinks_create)
AUTHED(api_sinks_list)
AUTHED(api_sinks_get)
AUTHED(api_sinks_delete)
AUTHED(api_app_gc)
AUTHED(api_volumes_list)
AUTHED(api_app_volumes_list)
AUTHED(api_app_volume_get)
AUTHED(api_active_jobs)
AUTHED(api_events_get)
AUTHED(api_event_get)
AUTHED(api_deploy)
AUTHED(api_deployments_list)
AUTHED(api_deployment_get)
AUTHED(api_routes_all)
AUTHED(api_routes_create)
AUTHED(api_routes_list)
AUTHED(api_routes_get)
AUTHED(api_routes_update)
AUTHED(api_routes_delete)

static const struct httpd_route routes[] = {
    /* no auth */
    {"GET", "/ping", api_ping},
    {"GET", "/ca-cert", api_ca_cert}, /* checks the key itself when one is sent */
    {"GET", "/status", auth_api_status},
    {"GET", "/.well-known/status", auth_api_well_known_status},

    /* §3.1 apps */
    {"POST", "/apps", auth_api_apps_create},
    {"GET", "/apps", auth_api_apps_list},
    {"GET", "/apps/:app", auth_api_apps_get},
    {"POST", "/apps/:app", auth_api_apps_update},
    {"POST", "/apps/:app/meta", auth_api_apps_update},
    {"DELETE", "/apps/:app", auth_api_apps_delete},
    {"GET", "/apps/:app/log", auth_api_app_log},
    {"POST", "/apps/:app/gc", auth_api_app_gc}, /* accepted, no-op */

    /* §3.2 releases and artifacts */
    {"POST", "/artifacts", auth_api_artifacts_create},
    {"GET", "/artifacts", auth_api_artifacts_list},
    {"GET", "/artifacts/:id", auth_api_artifacts_get},
    {"POST", "/releases", auth_api_releases_create},
    {"GET", "/releases", auth_api_releases_list},
    {"GET", "/releases/:id", auth_api_releases_get},
    {"GET", "/apps/:app/releases", auth_api_app_releases_list},
    {"DELETE", "/apps/:app/releases/:id", auth_api_app_release_delete},
    {"GET", "/apps/:app/release", auth_api_app_release_get},
    {"PUT", "/apps/:app/release", auth_api_app_release_set},

    /* §3.3 formations, scale requests, deployments */
    {"PUT", "/apps/:app/formations/:release", auth_api_formations_put},
    {"GET", "/apps/:app/formations/:release", auth_api_formations_get},
    {"DELETE", "/apps/:app/formations/:release", auth_api_formations_delete},
    {"GET", "/apps/:app/formations", auth_api_app_formations_list},
    {"GET", "/formations", auth_api_formations_list},
    {"PUT", "/apps/:app/scale/:release", auth_api_scale_put},
    {"POST", "/apps/:app/deploy", auth_api_deploy},
    {"GET", "/apps/:app/deployments", auth_api_deployments_list},
    {"GET", "/deployments/:id", auth_api_deployment_get},

    /* §3.4 jobs */
    {"GET", "/apps/:app/jobs", auth_api_jobs_list},
    {"POST", "/apps/:app/jobs", auth_api_jobs_run}, /* detached only */
    {"GET", "/apps/:app/jobs/:job", auth_api_jobs_get},
    {"PUT", "/apps/:app/jobs/:job", auth_api_jobs_put},
    {"DELETE", "/apps/:app/jobs/:job", auth_api_jobs_delete},
    {"GET", "/active-jobs", auth_api_active_jobs},

    /* §3.5 routes */
    {"GET", "/routes", auth_api_routes_all},
    {"GET", "/router/table", auth_api_router_table},
    {"POST", "/apps/:app/routes", auth_api_routes_create},
    {"GET", "/apps/:app/routes", auth_api_routes_list},
    {"GET", "/apps/:app/routes/:type/:id", auth_api_routes_get},
    {"PUT", "/apps/:app/routes/:type/:id", auth_api_routes_update},
    {"DELETE", "/apps/:app/routes/:type/:id", auth_api_routes_delete},

    /* §3.6 providers and resources */
    {"POST", "/providers", auth_api_providers_create},
    {"GET", "/providers", auth_api_providers_list},
    {"GET", "/providers/:provider", auth_api_providers_get},
    {"POST", "/providers/:provider/resources", auth_api_resources_create},
    {"GET", "/providers/:provider/resources", auth_api_resources_list},
    {"GET", "/providers/:provider/resources/:id", auth_api_resources_get},
    {"PUT", "/providers/:provider/resources/:id", auth_api_resources_put},
    {"DELETE", "/providers/:provider/resources/:id", auth_api_resources_delete},
    {"PUT", "/providers/:provider/resources/:id/apps/:app", auth_api_resource_app_add},
    {"DELETE", "/providers/:provider/resources/:id/apps/:app", auth_api_resource_app_remove},
    {"GET", "/resources", auth_api_resources_all},
    {"GET", "/apps/:app/resources", auth_api_app_resources},

    /* §3.7 events */
    {"GET", "/events", auth_api_events_get},
    {"GET", "/events/:id", auth_api_event_get},
    {"GET", "/volumes", auth_api_volumes_list},           /* always [] for now */
    {"GET", "/apps/:app/volumes", auth_api_app_volumes_list},
    {"GET", "/apps/:app/volumes/:id", auth_api_app_volume_get},
    {"POST", "/sinks", auth_api_sinks_create},
    {"GET", "/sinks", auth_api_sinks_list},
    {"GET", "/sinks/:id", auth_api_sinks_get},
    {"DELETE", "/sinks/:id", auth_api_sinks_delete},
};

const struct httpd_route *const controller_routes = routes;
const size_t controller_nroutes = sizeof(routes) / sizeof(routes[0]);
