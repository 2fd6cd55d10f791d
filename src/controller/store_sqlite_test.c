/* Unit tests of the SQLite store through store.h: CRUD, ordering, unique
 * keys, cascades, events and their filters, reopening. */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "test.h"

static json_t *J(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    if (!j)
        abort();
    return j;
}

static int put(struct store *s, enum store_kind k, const char *id, const char *doc)
{
    json_t *j = J(doc);
    struct err *e = NULL;
    int rc = store_put(s, k, id, j, &e);
    json_decref(j);
    int en = e ? e->errnum : 0;
    err_free(e);
    return rc < 0 ? -en : 0;
}

int main(void)
{
    char dir[] = "/tmp/store-test-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct err *e = NULL;
    struct store *s = store_sqlite_open(dir, &e);
    ok(s != NULL, "open creates and migrates");
    if (!s)
        return test_done();

    const char *A = "00000000-0000-4000-8000-000000000001";
    const char *B = "00000000-0000-4000-8000-000000000002";
    const char *R = "00000000-0000-4000-8000-0000000000aa";
    is_int(put(s, STORE_APP, A, "{\"id\":\"00000000-0000-4000-8000-000000000001\",\"name\":\"a\"}"),
           0, "put app a");
    is_int(put(s, STORE_APP, B, "{\"id\":\"00000000-0000-4000-8000-000000000002\",\"name\":\"b\"}"),
           0, "put app b");
    is_int(put(s, STORE_APP, "x", "{\"name\":\"a\"}"), -EEXIST, "duplicate name is EEXIST");
    json_t *l = store_list(s, STORE_APP, NULL, NULL, NULL);
    is_int(json_array_size(l), 2, "two apps");
    is_str(json_string_value(json_object_get(json_array_get(l, 0), "name")), "b", "newest first");
    json_decref(l);
    json_t *a = store_app_by_name(s, "a", NULL);
    is_str(json_string_value(json_object_get(a, "id")), A, "by name");
    json_decref(a);
    ok(store_get(s, STORE_APP, "nope", &e) == NULL && e && e->errnum == ENOENT, "missing ENOENT");
    err_free(e);
    e = NULL;

    /* update keeps the row order */
    is_int(put(s, STORE_APP, A,
               "{\"id\":\"00000000-0000-4000-8000-000000000001\",\"name\":\"a\",\"x\":1}"),
           0, "update a");
    l = store_list(s, STORE_APP, NULL, NULL, NULL);
    is_str(json_string_value(json_object_get(json_array_get(l, 1), "name")), "a",
           "update keeps creation order");
    json_decref(l);

    /* a release and formation cascade away with the app */
    is_int(put(s, STORE_RELEASE, R, "{\"app_id\":\"00000000-0000-4000-8000-000000000001\"}"), 0,
           "put release");
    is_int(put(s, STORE_RELEASE, "r2", "{\"app_id\":\"00000000-0000-4000-8000-0000000000ff\"}"),
           -EEXIST, "release of a missing app violates the foreign key");
    is_int(put(s, STORE_FORMATION, "f",
               "{\"app\":\"00000000-0000-4000-8000-000000000001\","
               "\"release\":\"00000000-0000-4000-8000-0000000000aa\",\"processes\":{}}"),
           0, "put formation");
    l = store_list(s, STORE_FORMATION, A, R, NULL);
    is_int(json_array_size(l), 1, "list by app and release");
    json_decref(l);
    is_int(store_del(s, STORE_APP, A, NULL), 0, "delete app");
    ok(!store_get(s, STORE_RELEASE, R, NULL), "release cascaded");
    ok(!store_get(s, STORE_FORMATION, "f", NULL), "formation cascaded");
    is_int(store_del(s, STORE_APP, A, &e), -1, "delete again fails");
    ok(e && e->errnum == ENOENT, "with ENOENT");
    err_free(e);
    e = NULL;

    /* artifacts are unique by type+uri */
    is_int(put(s, STORE_ARTIFACT, "a1", "{\"type\":\"flynn\",\"uri\":\"u\"}"), 0, "artifact");
    json_t *art = store_artifact_by_uri(s, "flynn", "u", NULL);
    ok(art != NULL, "artifact by uri");
    json_decref(art);
    is_int(put(s, STORE_ARTIFACT, "a2", "{\"type\":\"flynn\",\"uri\":\"u\"}"), -EEXIST,
           "same type+uri");

    /* transactions: rollback drops writes and events */
    ok(store_begin(s, NULL) == 0, "begin");
    put(s, STORE_APP, "t", "{\"name\":\"t\"}");
    json_t *d = J("{\"k\":1}");
    ok(store_event_add(s, "t", "app", "t", d, NULL) > 0, "event in tx");
    store_rollback(s);
    ok(!store_get(s, STORE_APP, "t", NULL), "rolled back");
    struct store_event_filter f = {0};
    l = store_events_list(s, &f, NULL);
    is_int(json_array_size(l), 0, "no events after rollback");
    json_decref(l);

    int64_t ids[4];
    ids[0] = store_event_add(s, B, "app", B, d, NULL);
    ids[1] = store_event_add(s, B, "release", "r", d, NULL);
    ids[2] = store_event_add(s, NULL, "artifact", "x", d, NULL);
    ids[3] = store_event_add(s, B, "app", B, d, NULL);
    ok(ids[0] < ids[1] && ids[1] < ids[2] && ids[2] < ids[3], "event ids increase");
    json_decref(d);
    const char *types[] = {"app", NULL};
    struct store_event_filter f2 = {.app_id = B, .object_types = types};
    l = store_events_list(s, &f2, NULL);
    is_int(json_array_size(l), 2, "filter by app and type");
    is_int(json_integer_value(json_object_get(json_array_get(l, 0), "id")), ids[3], "newest first");
    json_decref(l);
    struct store_event_filter f3 = {.since_id = ids[0], .count = 2, .oldest_first = 1};
    l = store_events_list(s, &f3, NULL);
    is_int(json_array_size(l), 2, "count keeps the newest");
    is_int(json_integer_value(json_object_get(json_array_get(l, 0), "id")), ids[2],
           "then sorted oldest first");
    ok(!json_object_get(json_array_get(l, 0), "app"), "cluster-wide event has no app");
    json_decref(l);
    store_close(s);

    s = store_sqlite_open(dir, &e);
    ok(s != NULL, "reopen");
    json_t *b = s ? store_get(s, STORE_APP, B, NULL) : NULL;
    ok(b != NULL, "data survives reopening");
    json_decref(b);
    store_close(s);

    /* an old database (only migration 1) is upgraded in place */
    char path[64];
    snprintf(path, sizeof(path), "%s/controller.db", dir);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    ok(sqlite3_exec(db,
                    "DROP TABLE sinks; DROP TABLE resources; DROP TABLE providers;"
                    "DELETE FROM schema_migrations WHERE version > 1",
                    NULL, NULL, NULL) == SQLITE_OK,
       "downgrade to schema 1");
    sqlite3_close(db);
    s = store_sqlite_open(dir, &e);
    ok(s != NULL, "reopen old database");
    b = s ? store_get(s, STORE_APP, B, NULL) : NULL;
    ok(b != NULL, "data kept across the upgrade");
    json_decref(b);
    is_int(s ? put(s, STORE_SINK, "s1", "{\"kind\":\"syslog\"}") : -1, 0, "new tables exist");
    store_close(s);
    fs_rm_rf(dir, NULL);
    return test_done();
}
