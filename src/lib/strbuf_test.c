#include "strbuf.h"

#include <stdlib.h>

#include "err.h"
#include "test.h"

int main(void)
{
    struct strbuf sb = STRBUF_INIT;
    is_str(sb.buf, "", "a new strbuf reads as the empty string");
    strbuf_adds(&sb, "hello");
    strbuf_addch(&sb, ' ');
    strbuf_addf(&sb, "%s %d", "world", 42);
    is_str(sb.buf, "hello world 42", "adds, addch and addf append");
    is_int(sb.len, 14, "len follows");
    for (int i = 0; i < 1000; i++)
        strbuf_adds(&sb, "0123456789");
    is_int(sb.len, 10014, "grows past its first allocation");
    ok(sb.buf[sb.len] == '\0', "stays NUL-terminated");
    strbuf_remove_prefix(&sb, 6);
    ok(!strncmp(sb.buf, "world 42", 8), "remove_prefix drops the head");
    strbuf_remove_prefix(&sb, 1 << 20);
    is_str(sb.buf, "", "remove_prefix past the end empties");
    size_t len;
    strbuf_adds(&sb, "x");
    char *s = strbuf_detach(&sb, &len);
    is_str(s, "x", "detach hands over the string");
    is_int(len, 1, "detach gives the length");
    is_str(sb.buf, "", "detach leaves an empty strbuf");
    free(s);
    strbuf_release(&sb);

    struct err *e = NULL;
    is_int(err_make(&e, 2, "open '%s'", "/x"), -1, "err_make returns -1");
    is_str(e->msg, "open '/x': No such file or directory", "err_make appends strerror");
    err_wrap(&e, "start job '%s'", "j");
    is_str(e->msg, "start job 'j': open '/x': No such file or directory", "err_wrap prefixes");
    is_int(err_http_status(e), 404, "ENOENT maps to 404");
    err_free(e);
    return test_done();
}
