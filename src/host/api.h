/*
 * api: the host API's HTTP routes (docs/internals/host-api.md) over jobs.
 */
#ifndef HOST_API_H
#define HOST_API_H

#include "err.h"
#include "jobs.h"

struct event_base;
struct host_api;

struct host_api *host_api_new(struct event_base *base, struct jobs *jobs, const char *host_id,
                              const char *version);
/* Listens on HOST:PORT; returns the bound port. May be called several times. */
int host_api_listen(struct host_api *a, const char *addr, struct err **err);
void host_api_free(struct host_api *a);
/* GET/PUT /host/config change where job logs are shipped (logship.h);
 * without a shipper those answer 404. */
struct logship;
void host_api_set_logship(struct host_api *a, struct logship *ship);

#endif
