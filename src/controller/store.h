/*
 * store: the controller's durable state, behind a struct of function pointers
 * so that SQLite (store_sqlite.c) and later PostgreSQL implement the same API.
 *
 * Objects are kept as JSON documents (the wire shapes of flynn-api.md §4) in
 * one collection per kind; the backend indexes the few fields it needs for
 * lookups (id, app, release, name, type+uri, state). Events are an
 * append-only log with strictly increasing integer ids.
 *
 * Every mutating API call runs as store_begin .. store_commit (or
 * store_rollback); an object write and its event row therefore land in the
 * same transaction. Calls are synchronous and short (single-writer SQLite on
 * the event loop thread).
 *
 * Ownership: json_t results are new references the caller decrefs; json_t
 * arguments are borrowed. Errors follow err.h: ENOENT means "no such object".
 */
#ifndef CONTROLLER_STORE_H
#define CONTROLLER_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

enum store_kind {
    STORE_APP,
    STORE_ARTIFACT,
    STORE_RELEASE,
    STORE_FORMATION, /* id is "APPID:RELEASEID" */
    STORE_JOB,       /* id is the job UUID */
    STORE_DEPLOYMENT,
    STORE_ROUTE,
    STORE_SCALE_REQUEST,
    STORE_PROVIDER, /* unique by name */
    STORE_RESOURCE,
    STORE_SINK,
    STORE_KIND_MAX
};

/* Filter for store_events_list. NULL / 0 fields do not filter. */
struct store_event_filter {
    const char *app_id;
    const char *object_id;
    const char *const *object_types; /* NULL-terminated */
    int64_t since_id;                /* id > since_id */
    int64_t before_id;               /* id < before_id */
    int count;                       /* 0: all */
    int oldest_first;                /* otherwise newest first */
};

struct store;

struct store_ops {
    int (*begin)(struct store *s, struct err **err);
    int (*commit)(struct store *s, struct err **err);
    void (*rollback)(struct store *s);
    json_t *(*get)(struct store *s, enum store_kind k, const char *id, struct err **err);
    /* Newest first. app_id / release_id may be NULL (no filter). */
    json_t *(*list)(struct store *s, enum store_kind k, const char *app_id, const char *release_id,
                    struct err **err);
    int (*put)(struct store *s, enum store_kind k, const char *id, const json_t *obj,
               struct err **err);
    int (*del)(struct store *s, enum store_kind k, const char *id, struct err **err);
    /* Looks up an app by name. */
    json_t *(*app_by_name)(struct store *s, const char *name, struct err **err);
    /* Looks up a provider by name. */
    json_t *(*provider_by_name)(struct store *s, const char *name, struct err **err);
    /* Looks up an artifact by type and uri. */
    json_t *(*artifact_by_uri)(struct store *s, const char *type, const char *uri,
                               struct err **err);
    /* Appends an event; data borrowed; returns the new id (>0) or -1. */
    int64_t (*event_add)(struct store *s, const char *app_id, const char *object_type,
                         const char *object_id, const json_t *data, struct err **err);
    /* Returns [Event] matching f. */
    json_t *(*events_list)(struct store *s, const struct store_event_filter *f, struct err **err);
    void (*close)(struct store *s);
};

struct store {
    const struct store_ops *ops;
};

/* Opens (creating and migrating as needed) DIR/controller.db. Caller frees
 * with store_close. */
struct store *store_sqlite_open(const char *dir, struct err **err);

static inline int store_begin(struct store *s, struct err **err) { return s->ops->begin(s, err); }
static inline int store_commit(struct store *s, struct err **err) { return s->ops->commit(s, err); }
static inline void store_rollback(struct store *s) { s->ops->rollback(s); }
static inline json_t *store_get(struct store *s, enum store_kind k, const char *id,
                                struct err **err)
{
    return s->ops->get(s, k, id, err);
}
static inline json_t *store_list(struct store *s, enum store_kind k, const char *app_id,
                                 const char *release_id, struct err **err)
{
    return s->ops->list(s, k, app_id, release_id, err);
}
static inline int store_put(struct store *s, enum store_kind k, const char *id, const json_t *obj,
                            struct err **err)
{
    return s->ops->put(s, k, id, obj, err);
}
static inline int store_del(struct store *s, enum store_kind k, const char *id, struct err **err)
{
    return s->ops->del(s, k, id, err);
}
static inline json_t *store_app_by_name(struct store *s, const char *name, struct err **err)
{
    return s->ops->app_by_name(s, name, err);
}
static inline json_t *store_provider_by_name(struct store *s, const char *name,
                                             struct err **err)
{
    return s->ops->provider_by_name(s, name, err);
}
static inline json_t *store_artifact_by_uri(struct store *s, const char *type, const char *uri,
                                            struct err **err)
{
    return s->ops->artifact_by_uri(s, type, uri, err);
}
static inline int64_t store_event_add(struct store *s, const char *app_id, const char *object_type,
                                      const char *object_id, const json_t *data, struct err **err)
{
    return s->ops->event_add(s, app_id, object_type, object_id, data, err);
}
static inline json_t *store_events_list(struct store *s, const struct store_event_filter *f,
                                        struct err **err)
{
    return s->ops->events_list(s, f, err);
}
static inline void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

#endif
