#include "tabw.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define TABW_MINWIDTH 1
#define TABW_PADDING 2

struct cell {
    const char *text;
    size_t len;
    size_t width; /* in runes */
};

struct line {
    struct cell *cells;
    size_t n; /* cells, the last one not tab-terminated */
};

struct fmt {
    struct line *lines;
    size_t nlines;
    size_t *widths;
    size_t nwidths;
    struct strbuf *out;
};

void tabw_addf(struct tabw *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vaddf(&w->text, fmt, ap);
    va_end(ap);
}

void tabw_row(struct tabw *w, int n, const char *const cells[])
{
    for (int i = 0; i < n; i++) {
        strbuf_adds(&w->text, cells[i] ? cells[i] : "");
        strbuf_addch(&w->text, i + 1 < n ? '\t' : '\n');
    }
}

static size_t runes(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

static void write_lines(struct fmt *f, size_t line0, size_t line1)
{
    for (size_t i = line0; i < line1; i++) {
        struct line *l = &f->lines[i];
        for (size_t j = 0; j < l->n; j++) {
            struct cell *c = &l->cells[j];
            strbuf_add(f->out, c->text, c->len);
            if (j < f->nwidths)
                for (size_t k = c->width; k < f->widths[j]; k++)
                    strbuf_addch(f->out, ' ');
        }
        if (i + 1 < f->nlines)
            strbuf_addch(f->out, '\n');
    }
}

/* Go's text/tabwriter Writer.format, column blocks by recursion. */
static void format(struct fmt *f, size_t line0, size_t line1)
{
    size_t column = f->nwidths;
    for (size_t this = line0; this < line1; this++) {
        if (column + 1 >= f->lines[this].n)
            continue;
        write_lines(f, line0, this);
        line0 = this;
        size_t width = TABW_MINWIDTH;
        for (; this < line1; this++) {
            struct line *l = &f->lines[this];
            if (column + 1 >= l->n)
                break;
            size_t w = l->cells[column].width + TABW_PADDING;
            if (w > width)
                width = w;
        }
        f->widths = xrealloc(f->widths, (f->nwidths + 1) * sizeof(size_t));
        f->widths[f->nwidths++] = width;
        format(f, line0, this);
        f->nwidths--;
        line0 = this;
        this--; /* the loop's this++ must not skip the line that ended the block */
    }
    write_lines(f, line0, line1);
}

void tabw_format(struct tabw *w, struct strbuf *out)
{
    struct fmt f = {0};
    f.out = out;
    const char *p = w->text.buf, *end = w->text.buf + w->text.len;
    /* split into lines; the text after the final '\n' is one more line */
    for (;;) {
        f.lines = xrealloc(f.lines, (f.nlines + 1) * sizeof(*f.lines));
        struct line *l = &f.lines[f.nlines++];
        memset(l, 0, sizeof(*l));
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *stop = eol ? eol : end;
        for (;;) {
            const char *tab = memchr(p, '\t', (size_t)(stop - p));
            const char *ce = tab ? tab : stop;
            l->cells = xrealloc(l->cells, (l->n + 1) * sizeof(*l->cells));
            l->cells[l->n++] = (struct cell){p, (size_t)(ce - p), runes(p, (size_t)(ce - p))};
            if (!tab)
                break;
            p = tab + 1;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    format(&f, 0, f.nlines);
    for (size_t i = 0; i < f.nlines; i++)
        free(f.lines[i].cells);
    free(f.lines);
    free(f.widths);
    strbuf_reset(&w->text);
}

void tabw_flush(struct tabw *w)
{
    struct strbuf out = STRBUF_INIT;
    tabw_format(w, &out);
    fwrite(out.buf, 1, out.len, stdout);
    strbuf_release(&out);
    strbuf_release(&w->text);
}
