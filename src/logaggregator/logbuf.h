/*
 * logbuf: the log aggregator's memory: the recent lines of every app.
 *
 * Lines arrive in order (logbuf_add) and belong to a job, interned by ID
 * with its app, release, process type and host (struct logjob). Each app
 * keeps its lines oldest first; all lines together also form one global
 * sequence, numbered by gseq (+1 per line added), which sinks read with a
 * cursor.
 *
 * Bounds: per app (lines and bytes) and in total (bytes). Adding a line
 * that crosses a bound drops the oldest line of that app (per-app bounds)
 * or of all apps (the total bound) until it holds again; each drop is
 * counted in the app's and the buffer's `evicted`. A line's size is its
 * struct plus its text (LOGLINE_SIZE).
 *
 * Invariants: an app's lines are in arrival order and so are the global
 * ones; a line dropped by a per-app bound leaves a hole (NULL) in the
 * global sequence that logbuf_at reports as NULL. A struct logline is valid
 * until the next logbuf_add or logbuf_free; a struct logjob while one of its
 * lines is (logbuf_job_release frees one that has none).
 *
 * Duplicates: jobs carry the host's per-job line counter (seq); logbuf_add
 * refuses a line whose seq is not above the job's last one, so a batch sent
 * again after a lost acknowledgement is not stored twice.
 */
#ifndef LOGAGG_LOGBUF_H
#define LOGAGG_LOGBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_stream { LOG_STDOUT, LOG_STDERR, LOG_INIT, LOG_NSTREAMS };

enum logline_flags {
    LOGLINE_SYSTEM = 1 << 0, /* written by the host (why a job ended), not the job */
};

struct logbuf_limits {
    size_t app_lines;   /* per app; 0: the default 10000 (Flynn's) */
    size_t app_bytes;   /* per app; 0: the default 16 MiB */
    size_t total_bytes; /* all apps; 0: the default 256 MiB */
};

/* A queue of pointers numbered from `first`: the numbering survives pops. */
struct ptrq {
    void **v;
    size_t cap, head, len; /* cap is a power of two */
    uint64_t first;        /* number of v[head] */
};

struct logapp {
    char *id;
    struct ptrq lines; /* struct logline *, oldest first */
    size_t bytes;
    uint64_t received; /* lines stored since start */
    uint64_t evicted;  /* lines dropped by a bound */
    void *watchers;    /* the server's followers of this app */
    struct logapp *hnext;
};

struct logjob {
    char *id, *app_id, *app_name, *release, *type, *host_id; /* "" when unknown */
    struct logapp *app;
    uint64_t last_seq; /* valid when has_seq */
    bool has_seq;
    size_t refs; /* lines that point here */
    struct logjob *hnext;
};

struct logline {
    struct logjob *job;
    uint64_t gseq;
    uint64_t seq;  /* the host's counter for the job */
    int64_t ts_us; /* the timestamp, microseconds since the epoch */
    uint32_t msg_len;
    uint8_t ts_len;
    uint8_t stream; /* enum log_stream */
    uint8_t flags;  /* enum logline_flags */
    char data[];    /* timestamp (RFC 3339, as received), NUL, message, NUL */
};

#define LOGLINE_SIZE(l) (sizeof(struct logline) + (l)->ts_len + (l)->msg_len + 2)

static inline const char *logline_ts(const struct logline *l)
{
    return l->data;
}

static inline const char *logline_msg(const struct logline *l)
{
    return l->data + l->ts_len + 1;
}

struct logbuf;

struct logbuf *logbuf_new(const struct logbuf_limits *limits);
void logbuf_free(struct logbuf *b);
const struct logbuf_limits *logbuf_limits(const struct logbuf *b);

/* The app with this ID; made (empty) when create is set, else NULL if none. */
struct logapp *logbuf_app(struct logbuf *b, const char *app_id, bool create);
/* Calls fn for every app. */
void logbuf_apps(struct logbuf *b, void (*fn)(struct logapp *a, void *arg), void *arg);

/* Job metadata as received; NULL fields count as "". */
struct logjob_meta {
    const char *id, *app_id, *app_name, *release, *type, *host_id;
};
/* The job with meta->id, made when new (a known job keeps its app and
 * metadata). Call logbuf_job_release when done adding its lines. */
struct logjob *logbuf_job(struct logbuf *b, const struct logjob_meta *meta);
/* Frees the job when no line points at it any more. */
void logbuf_job_release(struct logbuf *b, struct logjob *j);

/* Adds a line of job j: the timestamp text ts (ts_len < 256, kept as is)
 * and its value ts_us, the message (copied). seq is the host's counter, or
 * negative for none. Returns the line, or NULL when seq marks a duplicate. */
struct logline *logbuf_add(struct logbuf *b, struct logjob *j, const char *ts, size_t ts_len,
                           int64_t ts_us, enum log_stream stream, unsigned flags, int64_t seq,
                           const char *msg, size_t msg_len);

/* Global sequence: lines numbered [first, next). logbuf_at is NULL outside
 * it and for holes. */
uint64_t logbuf_first_gseq(const struct logbuf *b);
uint64_t logbuf_next_gseq(const struct logbuf *b);
struct logline *logbuf_at(const struct logbuf *b, uint64_t gseq);

/* An app's lines: index 0 is the oldest, count() - 1 the newest. */
static inline size_t logapp_count(const struct logapp *a)
{
    return a->lines.len;
}
static inline struct logline *logapp_line(const struct logapp *a, size_t i)
{
    return a->lines.v[(a->lines.head + i) & (a->lines.cap - 1)];
}

struct logbuf_stats {
    size_t lines, bytes, apps, jobs;
    uint64_t received, evicted, duplicates;
};
void logbuf_stats(const struct logbuf *b, struct logbuf_stats *out);

#endif
