/*
 * ingest: reads a batch of log lines as the hosts send them (and as the
 * snapshot stores them) into a logbuf.
 *
 * A batch is NDJSON: a job header, then that job's lines, then the next
 * header, and so on (docs/internals/logaggregator.md):
 *
 *   {"job":"host0-UUID","app":"APPUUID","app_name":"web","release":"UUID",
 *    "type":"web","host":"host0","seq":1200}
 *   {"time":"2021-01-02T03:04:05.123456Z","stream":"stdout","msg":"hello"}
 *   {"time":"...","stream":"stderr","msg":"job exited with status 3","system":true}
 *
 * Lines are the job's log lines exactly as flynn-shim wrote them. "seq" is
 * the host's count of the job's lines shipped before the first line that
 * follows (so the lines are seq, seq+1, ...); lines at or below the job's
 * last seq are duplicates and skipped. A header without "seq" turns that
 * check off. A line that is not a flat JSON object with a string "msg" is
 * counted as malformed and skipped; so are lines of a header without "app".
 * Lines before any header make the batch invalid (nothing is stored).
 */
#ifndef LOGAGG_INGEST_H
#define LOGAGG_INGEST_H

#include <stddef.h>

#include "err.h"
#include "jsonflat.h"
#include "logbuf.h"

struct ingest_result {
    size_t lines;      /* stored */
    size_t duplicates; /* skipped: seq already seen */
    size_t malformed;  /* skipped: not a log line */
};

struct ingest_cbs {
    /* each stored line, right after it was added (may be NULL) */
    void (*on_line)(struct logline *l, void *arg);
    /* an object that is neither a header nor a line (snapshot records);
     * return <0 to count it as malformed (may be NULL: all are) */
    int (*on_other)(const struct jsonflat_member *m, int n, void *arg);
    void *arg;
};

/* Adds the batch's lines to b. Returns 0 and fills *res, or -1 (EINVAL)
 * when the batch does not start with a header. */
int ingest_batch(struct logbuf *b, const char *body, size_t len, const struct ingest_cbs *cbs,
                 struct ingest_result *res, struct err **err);

#endif
