/*
 * logship: sends the log lines of every job of an app to the log
 * aggregator (docs/internals/logaggregator.md).
 *
 * The job's own log files (RUN_DIR/jobs/ID/log and log.1, written by its
 * flynn-shim) are the buffer: the shipper reads them from a per-job
 * position and POSTs batches of lines to http://AGGREGATOR/v1/ingest, one
 * request at a time. A position moves only when the aggregator answered
 * 200, and is then written to RUN_DIR/jobs/ID/log.ship ("INODE OFFSET SEQ"),
 * so an aggregator that is away (or restarting) and a daemon restart lose
 * nothing: shipping resumes where it stopped. The bound is the shim's two
 * log files (8 MiB each): lines older than those are gone from disk before
 * they could be sent, and the shipper logs that it skipped some.
 *
 * Jobs are those whose metadata names an app (flynn-controller.app); each
 * batch section carries the job's app, app name, release, process type,
 * host ID and the count of the job's lines shipped before (seq), which the
 * aggregator uses to drop lines it already has.
 */
#ifndef HOST_LOGSHIP_H
#define HOST_LOGSHIP_H

#include <jansson.h>
#include <stdbool.h>

#include "err.h"
#include "jobs.h"

struct event_base;
struct logship;

/* Follows the jobs of `jobs` (all of them listed when a target is set,
 * then through its events). Ships nothing until a target is set. */
struct logship *logship_new(struct event_base *base, struct jobs *jobs, const char *run_dir,
                            const char *state_dir, const char *host_id);
void logship_free(struct logship *s);

/* The aggregator: "HOST:PORT" or "http://HOST:PORT"; NULL or "" stops
 * shipping (positions are kept). EINVAL when addr is neither. With
 * remember, it is also written to STATE_DIR/log-aggregator, which
 * logship_start reads when the daemon starts without the flag. */
int logship_set_target(struct logship *s, const char *addr, bool remember, struct err **err);
/* At start: flag (--log-aggregator) when given, else the remembered one. */
int logship_start(struct logship *s, const char *flag, struct err **err);
/* The current target as given ("" when none). */
const char *logship_target(const struct logship *s);
/* {"target","connected","jobs","lines_shipped","batches","last_error"} */
json_t *logship_status(const struct logship *s);

#endif
