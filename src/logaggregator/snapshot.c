/* The snapshot: what the buffer holds, written when the aggregator stops
 * and read back when it starts, so a restart (a deploy, a host reboot of
 * the job) keeps the history. The format is an ingest batch (ingest.h) in
 * global order, a header before each run of one job's consecutive lines,
 * followed by one {"sink":ID,"next":N} record per sink: N counts the
 * snapshot's lines that sink had already delivered. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest.h"
#include "log.h"
#include "logagg.h"
#include "render.h"
#include "strbuf.h"
#include "xalloc.h"

static const char *const stream_names[LOG_NSTREAMS] = {"stdout", "stderr", "init"};

static void add_str_member(struct strbuf *sb, const char *key, const char *v)
{
    strbuf_addf(sb, ",\"%s\":", key);
    render_json_string(sb, v, strlen(v));
}

struct cursor_pos {
    uint64_t gseq, rel;
    char *id;
};

struct cursors {
    struct cursor_pos *v;
    size_t n;
};

static void collect(const char *id, uint64_t gseq, void *arg)
{
    struct cursors *c = arg;
    c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
    c->v[c->n++] = (struct cursor_pos){gseq, 0, xstrdup(id)};
}

int snapshot_write(struct logagg *ag, const char *path, struct err **err)
{
    cleanup_free char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return err_make(err, errno, "create '%s'", tmp);
    struct cursors cur = {0};
    if (ag->sinks)
        sinks_cursors(ag->sinks, collect, &cur);
    struct strbuf sb = STRBUF_INIT;
    const struct logjob *prev = NULL;
    uint64_t prev_seq = 0, written = 0;
    uint64_t first = logbuf_first_gseq(ag->buf), next = logbuf_next_gseq(ag->buf);
    int ret = 0;
    for (uint64_t g = first; g < next; g++) {
        const struct logline *l = logbuf_at(ag->buf, g);
        if (!l)
            continue;
        for (size_t i = 0; i < cur.n; i++)
            if (cur.v[i].gseq > g)
                cur.v[i].rel = written + 1;
        const struct logjob *j = l->job;
        if (j != prev || (j->has_seq && l->seq != prev_seq + 1)) {
            strbuf_adds(&sb, "{\"job\":");
            render_json_string(&sb, j->id, strlen(j->id));
            add_str_member(&sb, "app", j->app_id);
            add_str_member(&sb, "app_name", j->app_name);
            add_str_member(&sb, "release", j->release);
            add_str_member(&sb, "type", j->type);
            add_str_member(&sb, "host", j->host_id);
            if (j->has_seq)
                strbuf_addf(&sb, ",\"seq\":%llu", (unsigned long long)l->seq);
            strbuf_adds(&sb, "}\n");
            prev = j;
        }
        prev_seq = l->seq;
        strbuf_adds(&sb, "{\"time\":");
        render_json_string(&sb, logline_ts(l), l->ts_len);
        strbuf_addf(&sb, ",\"stream\":\"%s\",\"msg\":", stream_names[l->stream]);
        render_json_string(&sb, logline_msg(l), l->msg_len);
        strbuf_adds(&sb, (l->flags & LOGLINE_SYSTEM) ? ",\"system\":true}\n" : "}\n");
        written++;
        if (sb.len > (1u << 20)) {
            if (fwrite(sb.buf, 1, sb.len, f) != sb.len) {
                ret = err_make(err, errno, "write '%s'", tmp);
                break;
            }
            strbuf_reset(&sb);
        }
    }
    /* a sink at or past the end delivered every line written */
    for (size_t i = 0; i < cur.n; i++) {
        uint64_t rel = cur.v[i].gseq >= next ? written : cur.v[i].rel;
        strbuf_adds(&sb, "{\"sink\":");
        render_json_string(&sb, cur.v[i].id, strlen(cur.v[i].id));
        strbuf_addf(&sb, ",\"next\":%llu}\n", (unsigned long long)rel);
        free(cur.v[i].id);
    }
    free(cur.v);
    if (!ret && fwrite(sb.buf, 1, sb.len, f) != sb.len)
        ret = err_make(err, errno, "write '%s'", tmp);
    strbuf_release(&sb);
    if (fflush(f) != 0 && !ret)
        ret = err_make(err, errno, "write '%s'", tmp);
    if (!ret && fsync(fileno(f)) < 0)
        ret = err_make(err, errno, "sync '%s'", tmp);
    fclose(f);
    if (!ret && rename(tmp, path) < 0)
        ret = err_make(err, errno, "rename '%s' to '%s'", tmp, path);
    if (ret)
        unlink(tmp);
    else
        log_info("snapshot: %llu lines written to %s", (unsigned long long)written, path);
    return ret;
}

struct load_ctx {
    struct logagg *ag;
    uint64_t base; /* the gseq the snapshot's first line got */
};

static int on_record(const struct jsonflat_member *m, int n, void *arg)
{
    struct load_ctx *lc = arg;
    struct logagg *ag = lc->ag;
    const struct jsonflat_member *id = jsonflat_get(m, n, "sink");
    const struct jsonflat_member *nx = jsonflat_get(m, n, "next");
    if (!id || id->type != JF_STRING || id->escaped || !nx || nx->type != JF_NUMBER)
        return -1;
    struct sink_cursor *c = xcalloc(1, sizeof(*c));
    c->id = xstrndup(id->val, id->val_len);
    c->gseq = lc->base + strtoull(nx->val, NULL, 10);
    c->next = ag->restored;
    ag->restored = c;
    return 0;
}

int snapshot_load(struct logagg *ag, const char *path, struct err **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return err_make(err, errno, "open '%s'", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return err_make(err, e, "stat '%s'", path);
    }
    int ret = 0;
    if (st.st_size > 0) {
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            ret = err_make(err, errno, "map '%s'", path);
        } else {
            struct ingest_result res;
            struct load_ctx lc = {ag, logbuf_next_gseq(ag->buf)};
            struct ingest_cbs cbs = {.on_other = on_record, .arg = &lc};
            ret = ingest_batch(ag->buf, map, (size_t)st.st_size, &cbs, &res, err);
            munmap(map, (size_t)st.st_size);
            if (!ret)
                log_info("snapshot: %zu lines loaded from %s (%zu malformed)", res.lines, path,
                         res.malformed);
        }
    }
    close(fd);
    if (ret == 0)
        unlink(path);
    else
        err_wrap(err, "load snapshot '%s'", path);
    return ret;
}
