#include "tabw.h"

#include "test.h"

static void check(const char *in, const char *want, const char *name)
{
    struct tabw w = TABW_INIT;
    tabw_addf(&w, "%s", in);
    struct strbuf out = STRBUF_INIT;
    tabw_format(&w, &out);
    is_str(out.buf, want, "%s", name);
    strbuf_release(&out);
    strbuf_release(&w.text);
}

int main(void)
{
    /* outputs recorded from Flynn's Go CLI */
    check("NAME\tCONTROLLER URL\tGIT URL\tIMAGE URL\n"
          "a\thttps://controller.b.test\t(none)\thttps://images.b.test\t(default)\n"
          "c\thttps://controller.x.test:9443\t(none)\thttps://images.x.test:9443\n",
          "NAME  CONTROLLER URL                  GIT URL  IMAGE URL\n"
          "a     https://controller.b.test       (none)   https://images.b.test  (default)\n"
          "c     https://controller.x.test:9443  (none)   https://images.x.test:9443\n",
          "cluster list");
    check("NAME\tURL\na\thttps://controller.b.test\t(default)\n",
          "NAME  URL\na     https://controller.b.test  (default)\n", "cluster default");
    check("ID\tSTATUS\tCREATED\tFINISHED\nabc\trunning\t4 seconds ago\t\n",
          "ID   STATUS   CREATED        FINISHED\nabc  running  4 seconds ago  \n",
          "empty last cell keeps padding");
    check("=== x\nGit URL:\tg\nWeb URL:\thttp://w\n", "=== x\nGit URL:  g\nWeb URL:  http://w\n",
          "untabbed line ends a block");
    check("a\xc3\xa9\tb\nxx\tc\n", "a\xc3\xa9  b\nxx  c\n", "widths count runes");
    return test_done();
}
