#include "opts.h"

#include <string.h>

#include "test.h"
#include "xalloc.h"

static const struct opt_spec specs[] = {
    {'f', "force", 0}, {'d', "default", 0}, {'p', "tls-pin", 1}, {0, "no-git", 0}};

int main(void)
{
    struct opts o;
    struct err *e = NULL;
    char *a1[] = {"add", "-p", "PIN", "--no-git", "name", "-fd", "dom", "key"};
    ok(opts_parse(&o, specs, ARRAY_SIZE(specs), 8, a1, &e) == 0, "parses");
    is_int(o.npos, 4, "positionals");
    is_str(o.pos[1], "name", "pos 1");
    is_str(opts_get(&o, "tls-pin", NULL), "PIN", "value");
    is_str(opts_get(&o, "p", NULL), "PIN", "value by short name");
    ok(opts_has(&o, "force") && opts_has(&o, "d") && opts_has(&o, "no-git"), "flags");
    opts_release(&o);

    char *a2[] = {"--tls-pin=X=", "-pY", "--", "-f"};
    ok(opts_parse(&o, specs, ARRAY_SIZE(specs), 4, a2, &e) == 0, "parses forms");
    is_str(opts_get(&o, "tls-pin", NULL), "Y", "last value wins");
    is_int(o.npos, 1, "after --: positional");
    is_str(o.pos[0], "-f", "dash positional");
    ok(!opts_has(&o, "force"), "not a flag after --");
    opts_release(&o);

    char *a3[] = {"--bogus"};
    ok(opts_parse(&o, specs, ARRAY_SIZE(specs), 1, a3, &e) < 0, "unknown long option");
    is_str(e ? e->msg : NULL, "unknown option --bogus", "message");
    err_free(e);
    e = NULL;
    opts_release(&o);
    char *a4[] = {"-p"};
    ok(opts_parse(&o, specs, ARRAY_SIZE(specs), 1, a4, &e) < 0, "missing value");
    err_free(e);
    e = NULL;
    opts_release(&o);
    char *a5[] = {"--force=1"};
    ok(opts_parse(&o, specs, ARRAY_SIZE(specs), 1, a5, &e) < 0, "value on a flag");
    err_free(e);
    opts_release(&o);
    return test_done();
}
