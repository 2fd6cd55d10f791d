#include "logbuf.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

#define DEFAULT_APP_LINES 10000
#define DEFAULT_APP_BYTES (16u << 20)
#define DEFAULT_TOTAL_BYTES (256u << 20)

/* A chained hash of named entries; the entries link themselves (hnext). */
struct htab {
    void **slots;
    size_t nslots, n;
};

struct logbuf {
    struct logbuf_limits lim;
    struct htab apps, jobs;
    struct ptrq all; /* struct logline * by gseq; NULL for holes */
    size_t lines, bytes;
    uint64_t received, evicted, duplicates;
};

/* ---- pointer queue ---- */

static void ptrq_push(struct ptrq *q, void *p)
{
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        void **nv = xmalloc(ncap * sizeof(*nv));
        for (size_t i = 0; i < q->len; i++)
            nv[i] = q->v[(q->head + i) & (q->cap - 1)];
        free(q->v);
        q->v = nv;
        q->cap = ncap;
        q->head = 0;
    }
    q->v[(q->head + q->len) & (q->cap - 1)] = p;
    q->len++;
}

static void *ptrq_pop(struct ptrq *q)
{
    if (!q->len)
        return NULL;
    void *p = q->v[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    q->first++;
    return p;
}

static void **ptrq_slot(const struct ptrq *q, uint64_t n)
{
    if (n < q->first || n - q->first >= q->len)
        return NULL;
    return &q->v[(q->head + (size_t)(n - q->first)) & (q->cap - 1)];
}

/* ---- hash tables ---- */

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* Entries start with their key pointer and end with hnext; these two
 * accessors keep the table generic over logapp and logjob. */
#define APP_KEY(e) (((struct logapp *)(e))->id)
#define APP_NEXT(e) (((struct logapp *)(e))->hnext)
#define JOB_KEY(e) (((struct logjob *)(e))->id)
#define JOB_NEXT(e) (((struct logjob *)(e))->hnext)

static struct logapp *app_find(struct htab *t, const char *id)
{
    if (!t->nslots)
        return NULL;
    for (struct logapp *a = t->slots[hash(id) & (t->nslots - 1)]; a; a = a->hnext)
        if (!strcmp(a->id, id))
            return a;
    return NULL;
}

static struct logjob *job_find(struct htab *t, const char *id)
{
    if (!t->nslots)
        return NULL;
    for (struct logjob *j = t->slots[hash(id) & (t->nslots - 1)]; j; j = j->hnext)
        if (!strcmp(j->id, id))
            return j;
    return NULL;
}

/* Doubles the table when full; is_job picks the entry layout. */
static void htab_grow(struct htab *t, bool is_job)
{
    if (t->n < t->nslots)
        return;
    size_t ns = t->nslots ? t->nslots * 2 : 64;
    void **slots = xcalloc(ns, sizeof(*slots));
    for (size_t i = 0; i < t->nslots; i++) {
        void *e = t->slots[i];
        while (e) {
            void *next = is_job ? (void *)JOB_NEXT(e) : (void *)APP_NEXT(e);
            size_t k = hash(is_job ? JOB_KEY(e) : APP_KEY(e)) & (ns - 1);
            if (is_job)
                JOB_NEXT(e) = slots[k];
            else
                APP_NEXT(e) = slots[k];
            slots[k] = e;
            e = next;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = ns;
}

/* ---- buffer ---- */

struct logbuf *logbuf_new(const struct logbuf_limits *limits)
{
    struct logbuf *b = xcalloc(1, sizeof(*b));
    if (limits)
        b->lim = *limits;
    if (!b->lim.app_lines)
        b->lim.app_lines = DEFAULT_APP_LINES;
    if (!b->lim.app_bytes)
        b->lim.app_bytes = DEFAULT_APP_BYTES;
    if (!b->lim.total_bytes)
        b->lim.total_bytes = DEFAULT_TOTAL_BYTES;
    b->all.first = 1;
    return b;
}

const struct logbuf_limits *logbuf_limits(const struct logbuf *b)
{
    return &b->lim;
}

static void job_free(struct logjob *j)
{
    free(j->id);
    free(j->app_id);
    free(j->app_name);
    free(j->release);
    free(j->type);
    free(j->host_id);
    free(j);
}

void logbuf_free(struct logbuf *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->all.len; i++)
        free(b->all.v[(b->all.head + i) & (b->all.cap - 1)]);
    free(b->all.v);
    for (size_t i = 0; i < b->jobs.nslots; i++) {
        struct logjob *j = b->jobs.slots[i];
        while (j) {
            struct logjob *n = j->hnext;
            job_free(j);
            j = n;
        }
    }
    for (size_t i = 0; i < b->apps.nslots; i++) {
        struct logapp *a = b->apps.slots[i];
        while (a) {
            struct logapp *n = a->hnext;
            free(a->lines.v);
            free(a->id);
            free(a);
            a = n;
        }
    }
    free(b->jobs.slots);
    free(b->apps.slots);
    free(b);
}

struct logapp *logbuf_app(struct logbuf *b, const char *app_id, bool create)
{
    struct logapp *a = app_find(&b->apps, app_id);
    if (a || !create)
        return a;
    htab_grow(&b->apps, false);
    a = xcalloc(1, sizeof(*a));
    a->id = xstrdup(app_id);
    size_t k = hash(app_id) & (b->apps.nslots - 1);
    a->hnext = b->apps.slots[k];
    b->apps.slots[k] = a;
    b->apps.n++;
    return a;
}

void logbuf_apps(struct logbuf *b, void (*fn)(struct logapp *a, void *arg), void *arg)
{
    for (size_t i = 0; i < b->apps.nslots; i++)
        for (struct logapp *a = b->apps.slots[i]; a; a = a->hnext)
            fn(a, arg);
}

struct logjob *logbuf_job(struct logbuf *b, const struct logjob_meta *m)
{
    struct logjob *j = job_find(&b->jobs, m->id);
    if (j)
        return j;
    htab_grow(&b->jobs, true);
    j = xcalloc(1, sizeof(*j));
    j->id = xstrdup(m->id);
    j->app_id = xstrdup(m->app_id ? m->app_id : "");
    j->app_name = xstrdup(m->app_name ? m->app_name : "");
    j->release = xstrdup(m->release ? m->release : "");
    j->type = xstrdup(m->type ? m->type : "");
    j->host_id = xstrdup(m->host_id ? m->host_id : "");
    j->app = logbuf_app(b, j->app_id, true);
    size_t k = hash(j->id) & (b->jobs.nslots - 1);
    j->hnext = b->jobs.slots[k];
    b->jobs.slots[k] = j;
    b->jobs.n++;
    return j;
}

void logbuf_job_release(struct logbuf *b, struct logjob *j)
{
    if (!j || j->refs)
        return;
    struct logjob **pp = (struct logjob **)&b->jobs.slots[hash(j->id) & (b->jobs.nslots - 1)];
    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (!*pp)
        BUG("job '%s' is not in its table", j->id);
    *pp = j->hnext;
    b->jobs.n--;
    job_free(j);
}

/* Drops one line that is already out of both queues' live ranges. */
static void line_drop(struct logbuf *b, struct logline *l)
{
    struct logapp *a = l->job->app;
    size_t sz = LOGLINE_SIZE(l);
    a->bytes -= sz;
    a->evicted++;
    b->bytes -= sz;
    b->lines--;
    b->evicted++;
    struct logjob *j = l->job;
    free(l);
    j->refs--;
    logbuf_job_release(b, j);
}

/* The app's oldest line goes; its global slot becomes a hole. */
static void evict_app_oldest(struct logbuf *b, struct logapp *a)
{
    struct logline *l = ptrq_pop(&a->lines);
    void **slot = ptrq_slot(&b->all, l->gseq);
    if (!slot || *slot != l)
        BUG("line %llu is not in the global queue", (unsigned long long)l->gseq);
    *slot = NULL;
    while (b->all.len && !b->all.v[b->all.head])
        ptrq_pop(&b->all);
    line_drop(b, l);
}

/* The oldest line of all goes; it is also its app's oldest. */
static void evict_global_oldest(struct logbuf *b)
{
    struct logline *l = ptrq_pop(&b->all);
    struct logapp *a = l->job->app;
    if (ptrq_pop(&a->lines) != l)
        BUG("the oldest line of app '%s' is not its oldest in the buffer", a->id);
    while (b->all.len && !b->all.v[b->all.head])
        ptrq_pop(&b->all);
    line_drop(b, l);
}

struct logline *logbuf_add(struct logbuf *b, struct logjob *j, const char *ts, size_t ts_len,
                           int64_t ts_us, enum log_stream stream, unsigned flags, int64_t seq,
                           const char *msg, size_t msg_len)
{
    if (seq >= 0) {
        if (j->has_seq && (uint64_t)seq <= j->last_seq) {
            b->duplicates++;
            return NULL;
        }
        j->last_seq = (uint64_t)seq;
        j->has_seq = true;
    }
    if (ts_len > 255)
        ts_len = 255;
    if (msg_len > UINT32_MAX - 1)
        msg_len = UINT32_MAX - 1;
    struct logline *l = xmalloc(sizeof(*l) + ts_len + msg_len + 2);
    l->job = j;
    l->gseq = b->all.first + b->all.len;
    l->seq = seq >= 0 ? (uint64_t)seq : 0;
    l->ts_us = ts_us;
    l->msg_len = (uint32_t)msg_len;
    l->ts_len = (uint8_t)ts_len;
    l->stream = (uint8_t)stream;
    l->flags = (uint8_t)flags;
    memcpy(l->data, ts, ts_len);
    l->data[ts_len] = '\0';
    memcpy(l->data + ts_len + 1, msg, msg_len);
    l->data[ts_len + 1 + msg_len] = '\0';
    j->refs++;
    struct logapp *a = j->app;
    size_t sz = LOGLINE_SIZE(l);
    ptrq_push(&a->lines, l);
    ptrq_push(&b->all, l);
    a->bytes += sz;
    a->received++;
    b->bytes += sz;
    b->lines++;
    b->received++;
    /* the new line itself always stays, so a reader sees it */
    while (a->lines.len > 1 && (a->lines.len > b->lim.app_lines || a->bytes > b->lim.app_bytes))
        evict_app_oldest(b, a);
    while (b->lines > 1 && b->bytes > b->lim.total_bytes)
        evict_global_oldest(b);
    return l;
}

uint64_t logbuf_first_gseq(const struct logbuf *b)
{
    return b->all.first;
}

uint64_t logbuf_next_gseq(const struct logbuf *b)
{
    return b->all.first + b->all.len;
}

struct logline *logbuf_at(const struct logbuf *b, uint64_t gseq)
{
    void **slot = ptrq_slot(&b->all, gseq);
    return slot ? *slot : NULL;
}

void logbuf_stats(const struct logbuf *b, struct logbuf_stats *out)
{
    *out = (struct logbuf_stats){.lines = b->lines,
                                 .bytes = b->bytes,
                                 .apps = b->apps.n,
                                 .jobs = b->jobs.n,
                                 .received = b->received,
                                 .evicted = b->evicted,
                                 .duplicates = b->duplicates};
}
