/*
 * render: a stored line as the bytes a reader gets.
 *
 *  - Flynn's log message (flynn-api.md §6), one JSON object per line:
 *    {"host_id","job_id","msg","process_type" (omitted when empty),"source",
 *     "stream","timestamp"}; source is "app" for the job's own output and
 *    "host" for the line the host adds when a job crashed or failed;
 *  - the same wrapped for SSE: data: {"event":"message","data":MSG}\n\n;
 *  - RFC 5424 syslog with the framing of the sink (RFC 6587 octet counting,
 *    or newline-terminated).
 *
 * Every function appends to a strbuf; invalid UTF-8 in a message becomes
 * U+FFFD, so the output is always valid JSON for strict decoders.
 */
#ifndef LOGAGG_RENDER_H
#define LOGAGG_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "logbuf.h"
#include "strbuf.h"

/* Appends s[0..len) as a quoted JSON string. */
void render_json_string(struct strbuf *out, const char *s, size_t len);

/* Appends the line as Flynn's message JSON and a newline, or as an SSE
 * event when sse is set. */
void render_message(struct strbuf *out, const struct logline *l, bool sse);

/* A message the aggregator itself says to a reader (source "logaggregator",
 * stream "stderr"), e.g. that lines were dropped because it fell behind. */
void render_notice(struct strbuf *out, const char *app_id, const char *msg, bool sse);

enum syslog_framing { SYSLOG_OCTET_COUNTED, SYSLOG_NEWLINE, SYSLOG_PREFIXED_NEWLINE };

struct syslog_opts {
    enum syslog_framing framing;
    const char *prefix;   /* template: text put before every message, or NULL */
    bool use_ids;         /* APP-NAME is the app's ID instead of its name */
    bool structured_data; /* add [flynn@32473 app=... job=...] */
};

/* Appends one framed RFC 5424 message:
 *   <PRI>1 TIMESTAMP HOST APP TYPE.JOB - SD PREFIXMSG
 * PRI is user-level (facility 1), severity info for stdout and err for
 * stderr. Fields are cut to RFC 5424's lengths and non-printable bytes in
 * them become '_'. */
void render_syslog(struct strbuf *out, const struct logline *l, const struct syslog_opts *o);

/* Parses a sink's "format" (NULL or "" is rfc6587); false when unknown. */
bool render_syslog_framing(const char *name, enum syslog_framing *out);

#endif
