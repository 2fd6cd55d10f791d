#include "flynnrc.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "xalloc.h"

/* The file Flynn's CLI wrote, docs/flynn-api.md §1.4, plus SaveTo's final
 * newline. */
static const char example[] = "default = \"test2\"\n"
                              "\n"
                              "[[cluster]]\n"
                              "  Name = \"test2\"\n"
                              "  Key = \"s3cr3t\"\n"
                              "  TLSPin = \"4SfhSbd9bwgZU7agPp2YIdKR8N3mHMCM6yOlreqVlF8=\"\n"
                              "  ControllerURL = \"https://controller.example.test:9443\"\n"
                              "  GitURL = \"https://git.example.test:9443\"\n"
                              "  ImageURL = \"https://images.example.test:9443\"\n"
                              "\n";

/* Written by the Go CLI: empty default, --no-git, escapes. */
static const char go_escapes[] = "default = \"\"\n"
                                 "\n"
                                 "[[cluster]]\n"
                                 "  Name = \"a\"\n"
                                 "  Key = \"k\"\n"
                                 "  ControllerURL = \"https://controller.b.test\"\n"
                                 "  GitURL = \"\"\n"
                                 "  ImageURL = \"x\"\n"
                                 "\n"
                                 "[[cluster]]\n"
                                 "  Name = \"q\\\"\\\\\xc3\xa9\"\n"
                                 "  Key = \"k\\\\ey\\ttab\"\n"
                                 "  ControllerURL = \"https://controller.d.test\"\n"
                                 "  GitURL = \"\"\n"
                                 "  ImageURL = \"https://images.d.test\"\n"
                                 "\n";

static void round_trip(const char *text, const char *name)
{
    struct err *e = NULL;
    struct flynnrc *rc = flynnrc_parse(text, &e);
    ok(rc != NULL, "%s parses", name);
    if (!rc) {
        err_free(e);
        return;
    }
    struct strbuf sb = STRBUF_INIT;
    flynnrc_format(rc, &sb);
    is_str(sb.buf, text, "%s written back byte for byte", name);
    strbuf_release(&sb);
    flynnrc_free(rc);
}

int main(void)
{
    round_trip(example, "§1.4 example");
    round_trip(go_escapes, "Go CLI escapes");

    struct err *e = NULL;
    struct flynnrc *rc = flynnrc_parse(example, &e);
    is_str(rc->default_name, "test2", "default");
    is_int(rc->nclusters, 1, "one cluster");
    is_str(rc->clusters[0]->key, "s3cr3t", "key");
    is_str(rc->clusters[0]->tls_pin, "4SfhSbd9bwgZU7agPp2YIdKR8N3mHMCM6yOlreqVlF8=", "pin");
    is_str(rc->clusters[0]->controller_url, "https://controller.example.test:9443", "url");

    /* add: conflicts as Flynn reports them */
    struct flynnrc_cluster *c = flynnrc_cluster_new();
    free(c->name);
    c->name = xstrdup("test2");
    ok(flynnrc_add(rc, c, 0, &e) < 0, "same name conflicts");
    is_str(e ? e->msg : NULL, "Cluster \"test2\" already exists in ~/.flynnrc", "message");
    err_free(e);
    e = NULL;
    c = flynnrc_cluster_new();
    free(c->name);
    c->name = xstrdup("other");
    free(c->controller_url);
    c->controller_url = xstrdup("https://controller.example.test:9443");
    ok(flynnrc_add(rc, c, 0, &e) < 0, "same controller URL conflicts");
    is_str(e ? e->msg : NULL,
           "A cluster with the URL \"https://controller.example.test:9443\" already exists in "
           "~/.flynnrc",
           "url message");
    err_free(e);
    e = NULL;
    c = flynnrc_cluster_new();
    free(c->name);
    c->name = xstrdup("test2");
    free(c->controller_url);
    c->controller_url = xstrdup("https://controller.new.test");
    ok(flynnrc_add(rc, c, 1, &e) == 0, "force replaces");
    is_int(rc->nclusters, 1, "still one cluster");
    is_str(rc->clusters[0]->controller_url, "https://controller.new.test", "replaced");

    /* remove the last one: the file is written empty */
    struct flynnrc_cluster *gone = flynnrc_remove(rc, "test2");
    ok(gone != NULL, "removed");
    flynnrc_cluster_free(gone);
    struct strbuf sb = STRBUF_INIT;
    flynnrc_format(rc, &sb);
    is_int(sb.len, 0, "no clusters: empty file");
    strbuf_release(&sb);
    ok(flynnrc_set_default(rc, "nope") < 0, "unknown default refused");
    flynnrc_free(rc);

    /* reading hand-written variants */
    rc = flynnrc_parse("# comment\ndefault='x'\n[[cluster]]\nName=\"x\" # trailing\n"
                       "Key = \"k\\u00e9\"\nOther = \"ignored\"\n[other]\ndefault = \"no\"\n",
                       &e);
    ok(rc != NULL, "hand-written file parses");
    if (rc) {
        is_str(rc->default_name, "x", "literal string");
        is_str(rc->clusters[0]->name, "x", "comment after value");
        is_str(rc->clusters[0]->key, "k\xc3\xa9", "\\u escape");
        flynnrc_free(rc);
    }
    rc = flynnrc_parse("default = \"x\n", &e);
    ok(rc == NULL && e && !strcmp(e->msg, "syntax error on line 1"), "unterminated string");
    err_free(e);
    e = NULL;
    rc = flynnrc_parse("[[cluster]]\nName = 3\n", &e);
    ok(rc == NULL && e && !strcmp(e->msg, "syntax error on line 2"), "non-string value");
    err_free(e);

    char *q = go_quote("a\"b\\c\td");
    is_str(q, "\"a\\\"b\\\\c\\td\"", "go_quote");
    free(q);
    return test_done();
}
