/* Unit tests of route_table.c: parsing, lookup, backend reuse on reload. */
#include "route_table.h"

#include <string.h>

#include "test.h"

static const char *lookup(struct route_table *t, const char *host, const char *path)
{
    struct route *r = route_table_lookup(t, host, strlen(host), path, strlen(path));
    return r ? r->id : NULL;
}

int main(void)
{
    struct err *e = NULL;
    const char *j = "[{\"id\":\"root\",\"domain\":\"A.test\",\"backends\":[\"127.0.0.1:1\"]},"
                    "{\"id\":\"api\",\"domain\":\"a.test\",\"path\":\"/api\","
                    "\"backends\":[\"127.0.0.1:2\",\"127.0.0.1:1\"]},"
                    "{\"id\":\"wild\",\"domain\":\"*.w.test\",\"backends\":[]},"
                    "{\"id\":\"t\",\"type\":\"tcp\",\"port\":3001,\"backends\":[\"[::1]:5\"]}]";
    struct route_table *t = route_table_parse(j, strlen(j), NULL, &e);
    ok(t != NULL, "parse");
    if (!t)
        return test_done();
    is_int((int)t->nroutes, 4, "four routes");
    is_int((int)t->nbackends, 3, "three distinct backends");
    is_str(lookup(t, "a.test", "/"), "root", "root");
    is_str(lookup(t, "A.TEST:80", "/api"), "api", "api without slash, host case and port");
    is_str(lookup(t, "a.test", "/api/x?y"), "api", "api prefix");
    is_str(lookup(t, "a.test", "/apix"), "root", "not a segment prefix");
    is_str(lookup(t, "x.w.test", "/"), "wild", "wildcard");
    is_str(lookup(t, "y.x.w.test", "/"), "wild", "wildcard, deeper");
    ok(lookup(t, "w.test", "/") == NULL, "wildcard needs a label");
    ok(lookup(t, "b.test", "/") == NULL, "unknown host");
    ok(route_table_lookup_domain(t, "a.test", 6) != NULL, "SNI lookup");

    const char *j2 = "[{\"id\":\"root\",\"domain\":\"a.test\",\"backends\":[\"127.0.0.1:1\"]}]";
    struct backend *b1 = t->routes[0].backends[0];
    struct backend *b2 = t->routes[1].backends[0];
    struct route_table *t2 = route_table_parse(j2, strlen(j2), t, &e);
    ok(t2 && t2->routes[0].backends[0] == b1, "reload keeps the backend object");
    ok(b2->draining, "a removed backend drains");
    ok(!b1->draining, "a kept backend does not");
    route_table_unref(t);
    route_table_unref(t2);

    /* a leader route goes to the first backend listed (the oldest) alone;
     * when that one leaves, to the next */
    const char *jl = "[{\"id\":\"l\",\"domain\":\"l.test\",\"leader\":true,"
                     "\"backends\":[\"127.0.0.1:7\",\"127.0.0.1:8\"]},"
                     "{\"id\":\"all\",\"domain\":\"all.test\","
                     "\"backends\":[\"127.0.0.1:7\",\"127.0.0.1:8\"]},"
                     "{\"id\":\"lt\",\"type\":\"tcp\",\"port\":3002,\"leader\":true,"
                     "\"backends\":[\"127.0.0.1:9\",\"127.0.0.1:7\"]}]";
    struct route_table *tl = route_table_parse(jl, strlen(jl), NULL, &e);
    ok(tl != NULL, "parse leader routes");
    if (tl) {
        is_int((int)tl->routes[0].nbackends, 1, "a leader route has one backend");
        is_str(tl->routes[0].backends[0]->addr, "127.0.0.1:7", "the first listed");
        is_int((int)tl->routes[1].nbackends, 2, "a plain route has all");
        is_int((int)tl->routes[2].nbackends, 1, "a leader TCP route has one backend");
        is_str(tl->routes[2].backends[0]->addr, "127.0.0.1:9", "the first listed (tcp)");
        const char *jl2 = "[{\"id\":\"l\",\"domain\":\"l.test\",\"leader\":true,"
                          "\"backends\":[\"127.0.0.1:8\"]}]";
        struct backend *old_leader = tl->routes[0].backends[0];
        struct route_table *tl2 = route_table_parse(jl2, strlen(jl2), tl, &e);
        ok(tl2 && !strcmp(tl2->routes[0].backends[0]->addr, "127.0.0.1:8"),
           "the next instance leads once the leader leaves");
        ok(old_leader->draining, "the old leader drains");
        route_table_unref(tl2);
        const char *jl3 =
            "[{\"domain\":\"l.test\",\"leader\":true,\"backends\":[\"127.0.0.1:8\",3]}]";
        struct err *e3 = NULL;
        struct route_table *tl3 = route_table_parse(jl3, strlen(jl3), NULL, &e3);
        ok(!tl3 && e3, "a leader route's other backends must still be strings");
        err_free(e3);
        route_table_unref(tl3);
    }
    route_table_unref(tl);

    const char *bad[] = {"{", "[1]", "[{\"domain\":\"a\",\"backends\":[\"nope\"]}]",
                         "[{\"type\":\"tcp\"}]", "[{\"type\":\"http\"}]",
                         "[{\"domain\":\"a\",\"path\":\"x\"}]", "[{\"type\":\"udp\"}]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct err *e2 = NULL;
        struct route_table *x = route_table_parse(bad[i], strlen(bad[i]), NULL, &e2);
        ok(x == NULL && e2 != NULL, "rejects %s", bad[i]);
        err_free(e2);
        route_table_unref(x);
    }
    return test_done();
}
