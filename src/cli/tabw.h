/*
 * tabw: aligned columns exactly as Go's text/tabwriter prints them with
 * Flynn's settings (minwidth 1, tabwidth 2, padding 2, pad with spaces).
 *
 * Write text whose cells end with '\t' and lines with '\n'; tabw_flush
 * prints everything to stdout. The text after a line's last tab is not
 * aligned. A column is aligned over each run of consecutive lines that
 * have a cell in it, as Go does.
 */
#ifndef CLI_TABW_H
#define CLI_TABW_H

#include "strbuf.h"

struct tabw {
    struct strbuf text;
};

#define TABW_INIT {STRBUF_INIT}

void tabw_addf(struct tabw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One row: cells joined by tabs, ended by a newline (Flynn's listRec). */
void tabw_row(struct tabw *w, int n, const char *const cells[]);
/* Formats into out (used by tests) and resets w. */
void tabw_format(struct tabw *w, struct strbuf *out);
/* Prints to stdout and resets w. */
void tabw_flush(struct tabw *w);

#endif
