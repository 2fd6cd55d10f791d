/* POST /attach: the host daemon's side of Flynn's attach (attach.h). The
 * daemon only answers the HTTP part; a live job's client is passed to the
 * job's shim, which serves it. */
#include "attach.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fsutil.h"
#include "httpd.h"
#include "jobs.h"
#include "log.h"
#include "xalloc.h"

#define REPLAY_TIMEOUT_SECS 60

/* Connects to the shim's socket in the job's directory. */
static int connect_shim(const char *dir, struct err **err)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, ATTACH_SOCKET);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return err_makex(err, ENAMETOOLONG, "the job has no attach socket");
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return err_make(err, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return err_make(err, e, "connect to the job's shim");
    }
    return fd;
}

/* Appends the job's stored output (log.1, then log) as DATA frames. */
static void add_log(struct jobs *jobs, const char *id, struct strbuf *out)
{
    int ended;
    cleanup_free char *log = jobs_log_path(jobs, id, &ended, NULL);
    if (!log)
        return;
    cleanup_free char *old = xasprintf("%s.1", log);
    const char *files[] = {old, log};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        cleanup_free char *txt = fs_read_file(files[i], NULL, NULL);
        char *save = NULL;
        for (char *l = txt ? strtok_r(txt, "\n", &save) : NULL; l;
             l = strtok_r(NULL, "\n", &save)) {
            json_t *o = json_loads(l, 0, NULL);
            const char *st = json_string_value(json_object_get(o, "stream"));
            json_t *m = json_object_get(o, "msg");
            /* the host's own lines about the job ("system") are not its output */
            if (json_is_string(m) && !json_is_true(json_object_get(o, "system"))) {
                struct strbuf line = STRBUF_INIT;
                strbuf_add(&line, json_string_value(m), json_string_length(m));
                strbuf_addch(&line, '\n');
                attach_put_data(out, st && !strcmp(st, "stderr") ? 2 : 1, line.buf, line.len);
                strbuf_release(&line);
            }
            json_decref(o);
        }
    }
}

static void replay_done(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_free(bev);
}

static void replay_event(struct bufferevent *bev, short what, void *arg)
{
    bufferevent_free(bev);
}

/* An ended job: its output and how it ended, then the connection closes. */
static void replay(struct httpd_req *r, struct jobs *jobs, struct event_base *base, json_t *aj)
{
    const char *id = json_string_value(json_object_get(aj, "id"));
    struct err *e = NULL;
    int fd = httpd_upgrade(r, ATTACH_PROTOCOL, NULL, &e);
    if (fd < 0) {
        log_warn("attach to job %s: %s", id, e->msg);
        err_free(e);
        return;
    }
    struct strbuf out = STRBUF_INIT;
    strbuf_addch(&out, ATTACH_SUCCESS);
    add_log(jobs, id, &out);
    const char *error = json_string_value(json_object_get(aj, "error"));
    if (json_integer_value(json_object_get(aj, "status")) == JOB_FAILED)
        attach_put_error(&out, error ? error : "the job failed to start");
    else
        attach_put_exit(&out, (uint32_t)json_integer_value(json_object_get(aj, "exit_status")));
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    struct timeval to = {REPLAY_TIMEOUT_SECS, 0};
    bufferevent_set_timeouts(bev, NULL, &to);
    bufferevent_setcb(bev, NULL, replay_done, replay_event, NULL);
    bufferevent_write(bev, out.buf, out.len);
    bufferevent_enable(bev, EV_WRITE);
    strbuf_release(&out);
}

static int get_u16(json_t *body, const char *k, uint16_t *out)
{
    json_t *v = json_object_get(body, k);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535)
        return -1;
    *out = (uint16_t)json_integer_value(v);
    return 0;
}

void attach_api_handle(struct httpd_req *r, struct jobs *jobs, struct event_base *base)
{
    if (!httpd_wants_upgrade(r, ATTACH_PROTOCOL)) {
        httpd_reply_error(r, 400, "validation_error", "POST /attach needs 'Upgrade: %s'",
                          ATTACH_PROTOCOL);
        return;
    }
    json_t *body = httpd_body_json(r);
    if (!body)
        return;
    struct err *e = NULL;
    json_t *aj = NULL;
    char *dir = NULL;
    int sock = -1;
    struct strbuf early = STRBUF_INIT;
    struct attach_handoff h = {0};
    const char *id = json_string_value(json_object_get(body, "job_id"));
    json_t *flags = json_object_get(body, "flags");
    if (!id || !*id) {
        httpd_reply_error(r, 400, "validation_error", "job_id is required");
        goto out;
    }
    if (flags && !json_is_null(flags) &&
        (!json_is_integer(flags) || json_integer_value(flags) < 0)) {
        httpd_reply_error(r, 400, "validation_error", "flags must be a non-negative integer");
        goto out;
    }
    h.flags = (uint32_t)json_integer_value(flags);
    if (get_u16(body, "height", &h.height) < 0 || get_u16(body, "width", &h.width) < 0) {
        httpd_reply_error(r, 400, "validation_error", "height and width must be 0-65535");
        goto out;
    }
    aj = jobs_get(jobs, id, &e);
    if (!aj) {
        httpd_reply_err(r, e);
        goto out;
    }
    if (json_integer_value(json_object_get(aj, "status")) >= JOB_DONE) {
        replay(r, jobs, base, aj);
        goto out;
    }
    dir = jobs_dir(jobs, id, NULL);
    sock = dir ? connect_shim(dir, &e) : -1;
    if (sock < 0) {
        /* its shim is going away: the job is about to be reported ended */
        httpd_reply_error(r, 503, "service_unavailable", "attach to job '%s': %s", id,
                          e ? e->msg : "job not found");
        err_free(e);
        goto out;
    }
    int fd = httpd_upgrade(r, ATTACH_PROTOCOL, &early, &e);
    if (fd >= 0) {
        unsigned char ok = ATTACH_SUCCESS;
        if (send(fd, &ok, 1, MSG_NOSIGNAL) != 1 ||
            attach_handoff_send(sock, fd, &h, early.buf, early.len, &e) < 0) {
            struct strbuf msg = STRBUF_INIT;
            attach_put_error(&msg, e ? e->msg : "attach: the client went away");
            ssize_t n = send(fd, msg.buf, msg.len, MSG_NOSIGNAL);
            (void)n;
            strbuf_release(&msg);
        }
        close(fd);
    }
    if (e) {
        log_warn("attach to job %s: %s", id, e->msg);
        err_free(e);
    }
out:
    if (sock >= 0)
        close(sock);
    strbuf_release(&early);
    free(dir);
    json_decref(aj);
    json_decref(body);
}
