/* SQLite backend of store.h: one table per object kind holding the JSON
 * document plus indexed columns, and an append-only events table. */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

struct store_sqlite {
    struct store base; /* first: struct store * casts to us */
    sqlite3 *db;
    int in_tx;
};

static const char *const tables[STORE_KIND_MAX] = {
    [STORE_APP] = "apps",
    [STORE_ARTIFACT] = "artifacts",
    [STORE_RELEASE] = "releases",
    [STORE_FORMATION] = "formations",
    [STORE_JOB] = "jobs",
    [STORE_DEPLOYMENT] = "deployments",
    [STORE_ROUTE] = "routes",
    [STORE_SCALE_REQUEST] = "scale_requests",
    [STORE_PROVIDER] = "providers",
    [STORE_RESOURCE] = "resources",
    [STORE_SINK] = "sinks",
};

/* Numbered migrations; never edit one that has shipped, append a new one.
 * Each is one parenthesised string (clang warns about adjacent literals). */
static const char *const migrations[] = {
    /* 1: initial schema */
    ("CREATE TABLE apps (id TEXT PRIMARY KEY, app_id TEXT, release_id TEXT,"
    "  k1 TEXT NOT NULL UNIQUE, k2 TEXT, data TEXT NOT NULL);"
    "CREATE TABLE artifacts (id TEXT PRIMARY KEY, app_id TEXT, release_id TEXT,"
    "  k1 TEXT NOT NULL, k2 TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (k1, k2));"
    "CREATE TABLE releases (id TEXT PRIMARY KEY,"
    "  app_id TEXT REFERENCES apps(id) ON DELETE CASCADE, release_id TEXT,"
    "  k1 TEXT, k2 TEXT, data TEXT NOT NULL);"
    "CREATE INDEX releases_app ON releases(app_id);"
    "CREATE TABLE formations (id TEXT PRIMARY KEY,"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
    "  release_id TEXT NOT NULL REFERENCES releases(id) ON DELETE CASCADE,"
    "  k1 TEXT, k2 TEXT, data TEXT NOT NULL);"
    "CREATE INDEX formations_app ON formations(app_id);"
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, app_id TEXT, release_id TEXT,"
    "  k1 TEXT, k2 TEXT, data TEXT NOT NULL);"
    "CREATE INDEX jobs_app ON jobs(app_id);"
    "CREATE TABLE deployments (id TEXT PRIMARY KEY,"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE, release_id TEXT,"
    "  k1 TEXT, k2 TEXT, data TEXT NOT NULL);"
    "CREATE INDEX deployments_app ON deployments(app_id);"
    "CREATE TABLE routes (id TEXT PRIMARY KEY,"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE, release_id TEXT,"
    "  k1 TEXT, k2 TEXT, data TEXT NOT NULL);"
    "CREATE INDEX routes_app ON routes(app_id);"
    "CREATE TABLE scale_requests (id TEXT PRIMARY KEY,"
    "  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE, release_id TEXT,"
    "  k1 TEXT, k2 TEXT, data TEXT NOT NULL);"
    "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, app_id TEXT,"
    "  object_type TEXT NOT NULL, object_id TEXT, data TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    "CREATE INDEX events_app ON events(app_id);"),
    /* 2: providers and resources (a resource's apps live in its document) */
    ("CREATE TABLE providers (id TEXT PRIMARY KEY, app_id TEXT, release_id TEXT,"
    "  k1 TEXT NOT NULL UNIQUE, k2 TEXT, data TEXT NOT NULL);"
    "CREATE TABLE resources (id TEXT PRIMARY KEY, app_id TEXT, release_id TEXT,"
    "  k1 TEXT NOT NULL REFERENCES providers(id), k2 TEXT, data TEXT NOT NULL);"
    "CREATE INDEX resources_provider ON resources(k1);"),
    /* 3: log sinks */
    ("CREATE TABLE sinks (id TEXT PRIMARY KEY, app_id TEXT, release_id TEXT,"
     "  k1 TEXT, k2 TEXT, data TEXT NOT NULL);"),
};

static struct store_sqlite *S(struct store *s)
{
    return (struct store_sqlite *)s;
}

static int dberr(struct store_sqlite *s, struct err **err, const char *what)
{
    int rc = sqlite3_errcode(s->db);
    int en = (rc == SQLITE_CONSTRAINT) ? EEXIST : (rc == SQLITE_BUSY ? EBUSY : EIO);
    return err_makex(err, en, "%s: %s", what, sqlite3_errmsg(s->db));
}

static int exec(struct store_sqlite *s, const char *sql, struct err **err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_makex(err, EIO, "sqlite: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static sqlite3_stmt *prep(struct store_sqlite *s, const char *sql, struct err **err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        dberr(s, err, "prepare");
        return NULL;
    }
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static int migrate(struct store_sqlite *s, struct err **err)
{
    if (exec(s, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " applied_at TEXT NOT NULL)",
             err) < 0)
        return -1;
    sqlite3_stmt *st = prep(s, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", err);
    if (!st)
        return -1;
    int have = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    for (int v = have + 1; v <= (int)ARRAY_SIZE(migrations); v++) {
        if (exec(s, "BEGIN IMMEDIATE", err) < 0)
            return -1;
        char now[40];
        time_now_rfc3339(now);
        cleanup_free char *rec =
            xasprintf("INSERT INTO schema_migrations VALUES (%d, '%s')", v, now);
        if (exec(s, migrations[v - 1], err) < 0 || exec(s, rec, err) < 0) {
            exec(s, "ROLLBACK", NULL);
            return err_wrap(err, "migration %d", v);
        }
        if (exec(s, "COMMIT", err) < 0)
            return -1;
        log_info("store: applied migration %d", v);
    }
    return 0;
}

static int op_begin(struct store *st, struct err **err)
{
    struct store_sqlite *s = S(st);
    if (s->in_tx)
        BUG("nested store transaction");
    if (exec(s, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    s->in_tx = 1;
    return 0;
}

static int op_commit(struct store *st, struct err **err)
{
    struct store_sqlite *s = S(st);
    s->in_tx = 0;
    if (exec(s, "COMMIT", err) < 0) {
        exec(s, "ROLLBACK", NULL);
        return -1;
    }
    return 0;
}

static void op_rollback(struct store *st)
{
    struct store_sqlite *s = S(st);
    if (s->in_tx)
        exec(s, "ROLLBACK", NULL);
    s->in_tx = 0;
}

static json_t *row_json(sqlite3_stmt *st, int col)
{
    const char *txt = (const char *)sqlite3_column_text(st, col);
    json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
    if (!j)
        BUG("corrupt JSON document in store");
    return j;
}

static json_t *get_one(struct store_sqlite *s, const char *sql, const char *a, const char *b,
                       const char *what, struct err **err)
{
    sqlite3_stmt *st = prep(s, sql, err);
    if (!st)
        return NULL;
    bind_text(st, 1, a);
    if (b)
        bind_text(st, 2, b);
    int rc = sqlite3_step(st);
    json_t *j = NULL;
    if (rc == SQLITE_ROW)
        j = row_json(st, 0);
    else if (rc == SQLITE_DONE)
        err_makex(err, ENOENT, "%s not found", what);
    else
        dberr(s, err, "select");
    sqlite3_finalize(st);
    return j;
}

static json_t *op_get(struct store *st, enum store_kind k, const char *id, struct err **err)
{
    cleanup_free char *sql = xasprintf("SELECT data FROM %s WHERE id = ?", tables[k]);
    return get_one(S(st), sql, id, NULL, "object", err);
}

static json_t *op_app_by_name(struct store *st, const char *name, struct err **err)
{
    return get_one(S(st), "SELECT data FROM apps WHERE k1 = ?", name, NULL, "app", err);
}

static json_t *op_provider_by_name(struct store *st, const char *name, struct err **err)
{
    return get_one(S(st), "SELECT data FROM providers WHERE k1 = ?", name, NULL, "provider", err);
}

static json_t *op_artifact_by_uri(struct store *st, const char *type, const char *uri,
                                  struct err **err)
{
    return get_one(S(st), "SELECT data FROM artifacts WHERE k1 = ? AND k2 = ?", type, uri,
                   "artifact", err);
}

static json_t *op_list(struct store *st, enum store_kind k, const char *app_id,
                       const char *release_id, struct err **err)
{
    struct store_sqlite *s = S(st);
    cleanup_free char *sql = xasprintf(
        "SELECT data FROM %s WHERE (?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR release_id = ?2)"
        " ORDER BY rowid DESC",
        tables[k]);
    sqlite3_stmt *q = prep(s, sql, err);
    if (!q)
        return NULL;
    bind_text(q, 1, app_id);
    bind_text(q, 2, release_id);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        json_array_append_new(arr, row_json(q, 0));
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        arr = NULL;
        dberr(s, err, "list");
    }
    sqlite3_finalize(q);
    return arr;
}

static const char *str_field(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int op_put(struct store *st, enum store_kind k, const char *id, const json_t *obj,
                  struct err **err)
{
    struct store_sqlite *s = S(st);
    const char *app = NULL, *rel = NULL, *k1 = NULL, *k2 = NULL;
    switch (k) {
    case STORE_APP: k1 = str_field(obj, "name"); break;
    case STORE_ARTIFACT:
        k1 = str_field(obj, "type");
        k2 = str_field(obj, "uri");
        break;
    case STORE_RELEASE: app = str_field(obj, "app_id"); break;
    case STORE_PROVIDER: k1 = str_field(obj, "name"); break;
    case STORE_RESOURCE: k1 = str_field(obj, "provider"); break;
    case STORE_JOB:
        k1 = str_field(obj, "state");
        /* fall through */
    default:
        app = str_field(obj, "app");
        rel = str_field(obj, "release");
        if (k == STORE_DEPLOYMENT)
            rel = str_field(obj, "new_release");
        break;
    }
    cleanup_free char *data = json_dumps(obj, JSON_COMPACT);
    cleanup_free char *sql = xasprintf(
        "INSERT INTO %s (id, app_id, release_id, k1, k2, data) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET app_id = excluded.app_id,"
        " release_id = excluded.release_id, k1 = excluded.k1, k2 = excluded.k2,"
        " data = excluded.data",
        tables[k]);
    sqlite3_stmt *q = prep(s, sql, err);
    if (!q)
        return -1;
    bind_text(q, 1, id);
    bind_text(q, 2, app);
    bind_text(q, 3, rel);
    bind_text(q, 4, k1);
    bind_text(q, 5, k2);
    bind_text(q, 6, data);
    int rc = sqlite3_step(q);
    int ret = 0;
    if (rc != SQLITE_DONE)
        ret = dberr(s, err, "write");
    sqlite3_finalize(q);
    return ret;
}

static int op_del(struct store *st, enum store_kind k, const char *id, struct err **err)
{
    struct store_sqlite *s = S(st);
    cleanup_free char *sql = xasprintf("DELETE FROM %s WHERE id = ?", tables[k]);
    sqlite3_stmt *q = prep(s, sql, err);
    if (!q)
        return -1;
    bind_text(q, 1, id);
    int ret = 0;
    if (sqlite3_step(q) != SQLITE_DONE)
        ret = dberr(s, err, "delete");
    else if (sqlite3_changes(s->db) == 0)
        ret = err_makex(err, ENOENT, "object not found");
    sqlite3_finalize(q);
    return ret;
}

static int64_t op_event_add(struct store *st, const char *app_id, const char *object_type,
                            const char *object_id, const json_t *data, struct err **err)
{
    struct store_sqlite *s = S(st);
    char now[40];
    time_now_rfc3339(now);
    cleanup_free char *d = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    sqlite3_stmt *q = prep(s,
                           "INSERT INTO events (app_id, object_type, object_id, data, created_at)"
                           " VALUES (?, ?, ?, ?, ?)",
                           err);
    if (!q)
        return -1;
    bind_text(q, 1, app_id);
    bind_text(q, 2, object_type);
    bind_text(q, 3, object_id);
    bind_text(q, 4, d);
    bind_text(q, 5, now);
    int64_t id = -1;
    if (sqlite3_step(q) == SQLITE_DONE)
        id = sqlite3_last_insert_rowid(s->db);
    else
        dberr(s, err, "event insert");
    sqlite3_finalize(q);
    return id;
}

static json_t *op_events_list(struct store *st, const struct store_event_filter *f,
                              struct err **err)
{
    struct store_sqlite *s = S(st);
    struct strbuf sql = STRBUF_INIT;
    strbuf_adds(&sql, "SELECT id, app_id, object_type, object_id, data, created_at FROM events"
                      " WHERE (?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR object_id = ?2)"
                      " AND id > ?3 AND (?4 = 0 OR id < ?4)");
    int ntypes = 0;
    if (f->object_types && f->object_types[0]) {
        strbuf_adds(&sql, " AND object_type IN (");
        for (; f->object_types[ntypes]; ntypes++)
            strbuf_addf(&sql, "%s?%d", ntypes ? ", " : "", 6 + ntypes);
        strbuf_adds(&sql, ")");
    }
    /* "count" keeps the newest N; an oldest-first answer re-sorts them. */
    strbuf_adds(&sql, " ORDER BY id DESC LIMIT ?5");
    if (f->oldest_first) {
        char *inner = strbuf_detach(&sql, NULL);
        strbuf_addf(&sql, "SELECT * FROM (%s) ORDER BY id ASC", inner);
        free(inner);
    }
    sqlite3_stmt *q = prep(s, sql.buf, err);
    strbuf_release(&sql);
    if (!q)
        return NULL;
    bind_text(q, 1, f->app_id);
    bind_text(q, 2, f->object_id);
    sqlite3_bind_int64(q, 3, f->since_id);
    sqlite3_bind_int64(q, 4, f->before_id);
    sqlite3_bind_int64(q, 5, f->count > 0 ? f->count : -1);
    for (int i = 0; i < ntypes; i++)
        bind_text(q, 6 + i, f->object_types[i]);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *ev = json_object();
        json_object_set_new(ev, "id", json_integer(sqlite3_column_int64(q, 0)));
        if (sqlite3_column_type(q, 1) != SQLITE_NULL)
            json_object_set_new(ev, "app",
                                json_string((const char *)sqlite3_column_text(q, 1)));
        json_object_set_new(ev, "object_type",
                            json_string((const char *)sqlite3_column_text(q, 2)));
        if (sqlite3_column_type(q, 3) != SQLITE_NULL)
            json_object_set_new(ev, "object_id",
                                json_string((const char *)sqlite3_column_text(q, 3)));
        json_object_set_new(ev, "data", row_json(q, 4));
        json_object_set_new(ev, "created_at",
                            json_string((const char *)sqlite3_column_text(q, 5)));
        json_array_append_new(arr, ev);
    }
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        arr = NULL;
        dberr(s, err, "events");
    }
    sqlite3_finalize(q);
    return arr;
}

static void op_close(struct store *st)
{
    struct store_sqlite *s = S(st);
    sqlite3_close(s->db);
    free(s);
}

static const struct store_ops sqlite_ops = {
    .begin = op_begin,
    .commit = op_commit,
    .rollback = op_rollback,
    .get = op_get,
    .list = op_list,
    .put = op_put,
    .del = op_del,
    .app_by_name = op_app_by_name,
    .provider_by_name = op_provider_by_name,
    .artifact_by_uri = op_artifact_by_uri,
    .event_add = op_event_add,
    .events_list = op_events_list,
    .close = op_close,
};

struct store *store_sqlite_open(const char *dir, struct err **err)
{
    cleanup_free char *path = xasprintf("%s/controller.db", dir);
    struct store_sqlite *s = xcalloc(1, sizeof(*s));
    s->base.ops = &sqlite_ops;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        err_makex(err, EIO, "open '%s': %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        sqlite3_close(s->db);
        free(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (exec(s, "PRAGMA journal_mode = WAL", err) < 0 ||
        exec(s, "PRAGMA synchronous = FULL", err) < 0 ||
        exec(s, "PRAGMA foreign_keys = ON", err) < 0 || migrate(s, err) < 0) {
        err_wrap(err, "open '%s'", path);
        op_close(&s->base);
        return NULL;
    }
    return &s->base;
}
