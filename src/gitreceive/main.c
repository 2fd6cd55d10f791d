/*
 * flynn-gitreceive: git's smart HTTP protocol for the cluster's apps
 * (flynn-api.md §8 step 1), behind the router at https://git.DOMAIN/APP.git.
 *
 *   GET  /APP.git/info/refs?service=git-receive-pack|git-upload-pack
 *   POST /APP.git/git-receive-pack     (push; the build runs in its hook)
 *   POST /APP.git/git-upload-pack      (clone/fetch of what was pushed)
 *
 * Auth is HTTP Basic with the cluster key as the password (any user name),
 * as Flynn's CLI configures git's credential helper. Each app has a bare
 * repository DATA_DIR/repos/APPID.git whose pre-receive hook runs
 * flynn-receiver (main_receiver.c), which builds and deploys the pushed
 * revision; its output reaches the git client as "remote:" lines because
 * git receive-pack multiplexes hook output into the response, which we
 * stream as it comes.
 *
 * Request bodies are read whole by evhttp (bounded by --max-push); the
 * response streams. The app lookup is a short blocking call to the local
 * controller (src/lib/httpc.h).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "err.h"
#include "fsutil.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "notify.h"
#include "proc.h"
#include "strbuf.h"
#include "xalloc.h"

struct gr {
    struct event_base *base;
    const char *data_dir, *controller, *key, *receiver;
    struct rpc *rpcs;
};

/* One running `git receive-pack|upload-pack --stateless-rpc`. */
struct rpc {
    struct rpc *next, **pprev;
    struct gr *g;
    pid_t pid;
    struct bufferevent *in, *out;
    struct httpd_stream *stream;
};

static bool key_ok(struct gr *g, struct httpd_req *r)
{
    const char *h = httpd_header(r, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6))
        return false;
    const char *b64 = h + 6;
    size_t n = strlen(b64);
    if (n == 0 || n > 1024 || n % 4)
        return false;
    unsigned char dec[800];
    int dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    if (dl < 0)
        return false;
    while (n && b64[n - 1] == '=') {
        n--;
        dl--;
    }
    dec[dl] = '\0';
    const char *colon = memchr(dec, ':', (size_t)dl);
    if (!colon)
        return false;
    const char *pw = colon + 1;
    size_t pl = (size_t)dl - (size_t)(pw - (const char *)dec), kl = strlen(g->key);
    return pl == kl && CRYPTO_memcmp(pw, g->key, kl) == 0;
}

static void unauthorized(struct httpd_req *r)
{
    httpd_set_header(r, "WWW-Authenticate", "Basic realm=\"flynn\"");
    httpd_reply_text(r, 401, "text/plain", "authentication required: the cluster key\n", 41);
}

/* "APP.git" -> app name; NULL when malformed. */
static char *app_name(const char *seg)
{
    size_t n = strlen(seg);
    if (n < 5 || n > 100 || strcmp(seg + n - 4, ".git"))
        return NULL;
    for (size_t i = 0; i < n - 4; i++)
        if (!(seg[i] >= 'a' && seg[i] <= 'z') && !(seg[i] >= '0' && seg[i] <= '9') &&
            seg[i] != '-')
            return NULL;
    return xstrndup(seg, n - 4);
}

/* Looks the app up in the controller: its ID, or NULL with *status (404 unknown, 502). */
static char *app_id(struct gr *g, const char *name, int *status)
{
    struct strbuf out;
    strbuf_init(&out, 0);
    struct err *e = NULL;
    cleanup_free char *cred_url = NULL;
    /* credentials go in the URL's userinfo (httpc has no header hook) */
    const char *p = strstr(g->controller, "://");
    cred_url = xasprintf("%.*s://:%s@%s/apps/%s", (int)(p - g->controller), g->controller, g->key,
                         p + 3, name);
    struct httpc_req req = {.url = cred_url, .timeout_secs = 10, .accept = "application/json"};
    int st = httpc_do(&req, &out, &e);
    char *id = NULL;
    if (st == 200) {
        json_t *j = json_loadb(out.buf, out.len, 0, NULL);
        const char *s = json_string_value(json_object_get(j, "id"));
        if (s && strlen(s) == 36)
            id = xstrdup(s);
        json_decref(j);
    }
    if (!id) {
        if (st < 0)
            log_error("controller: %s", e->msg);
        err_free(e);
        *status = st == 404 ? 404 : 502;
    }
    strbuf_release(&out);
    return id;
}

static const char HOOK[] = "#!/bin/sh\n"
                           "# written by flynn-gitreceive: builds and deploys the push\n"
                           "exec \"$FLYNN_RECEIVER\" \"$@\"\n";

/* The app's bare repository, made on first use; its hook is (re)written. */
static char *repo_dir(struct gr *g, const char *id, struct err **err)
{
    char *dir = xasprintf("%s/repos/%s.git", g->data_dir, id);
    cleanup_free char *head = xasprintf("%s/HEAD", dir);
    if (!fs_exists(head)) {
        const char *argv[] = {"git", "init", "--bare", "-q", "--initial-branch=main", dir, NULL};
        struct strbuf out;
        strbuf_init(&out, 0);
        int rc = proc_run(argv, &out, err);
        strbuf_release(&out);
        if (rc != 0) {
            if (rc > 0)
                err_makex(err, EIO, "git init failed for %s", dir);
            free(dir);
            return NULL;
        }
    }
    cleanup_free char *hook = xasprintf("%s/hooks/pre-receive", dir);
    if (fs_write_file(hook, HOOK, sizeof(HOOK) - 1, 0755, 0, err) < 0) {
        free(dir);
        return NULL;
    }
    return dir;
}

/* Common checks: auth, app, service. Returns the repo dir or NULL (answered). */
static char *prologue(struct httpd_req *r, struct gr *g, const char *service, char **name_out,
                      char **id_out)
{
    if (!key_ok(g, r)) {
        unauthorized(r);
        return NULL;
    }
    if (!service ||
        (strcmp(service, "git-receive-pack") && strcmp(service, "git-upload-pack"))) {
        httpd_reply_text(r, 403, "text/plain", "only git-receive-pack and git-upload-pack\n", 43);
        return NULL;
    }
    char *name = app_name(httpd_param(r, "repo"));
    if (!name) {
        httpd_reply_text(r, 404, "text/plain", "not an app repository (APP.git)\n", 32);
        return NULL;
    }
    int st = 0;
    char *id = app_id(g, name, &st);
    if (!id) {
        cleanup_free char *msg = st == 404 ? xasprintf("app '%s' does not exist: create it with "
                                                       "`flynn create %s`\n",
                                                       name, name)
                                           : xasprintf("the controller did not answer\n");
        httpd_reply_text(r, st, "text/plain", msg, strlen(msg));
        free(name);
        return NULL;
    }
    struct err *e = NULL;
    char *dir = repo_dir(g, id, &e);
    if (!dir) {
        log_error("%s", e->msg);
        httpd_reply_text(r, 500, "text/plain", "repository error\n", 17);
        err_free(e);
        free(name);
        free(id);
        return NULL;
    }
    *name_out = name;
    *id_out = id;
    return dir;
}

static void pkt_line(struct strbuf *sb, const char *s)
{
    strbuf_addf(sb, "%04zx%s", strlen(s) + 4, s);
}

static void info_refs(struct httpd_req *r, void *arg)
{
    struct gr *g = arg;
    const char *service = httpd_query(r, "service");
    char *name = NULL, *id = NULL;
    cleanup_free char *dir = prologue(r, g, service, &name, &id);
    if (!dir)
        return;
    const char *argv[] = {"git", service + 4, "--stateless-rpc", "--advertise-refs", dir, NULL};
    struct strbuf out, body;
    strbuf_init(&out, 0);
    strbuf_init(&body, 0);
    struct err *e = NULL;
    int rc = proc_run(argv, &out, &e);
    if (rc != 0) {
        log_error("git %s --advertise-refs: %s", service + 4, e ? e->msg : "failed");
        err_free(e);
        httpd_reply_text(r, 500, "text/plain", "git failed\n", 11);
    } else {
        cleanup_free char *first = xasprintf("# service=%s\n", service);
        pkt_line(&body, first);
        strbuf_adds(&body, "0000");
        strbuf_add(&body, out.buf, out.len);
        cleanup_free char *ct = xasprintf("application/x-%s-advertisement", service);
        httpd_set_header(r, "Cache-Control", "no-cache");
        httpd_reply_text(r, 200, ct, body.buf, body.len);
    }
    strbuf_release(&out);
    strbuf_release(&body);
    free(name);
    free(id);
}

static void rpc_free(struct rpc *p)
{
    *p->pprev = p->next;
    if (p->next)
        p->next->pprev = p->pprev;
    if (p->in)
        bufferevent_free(p->in);
    if (p->out)
        bufferevent_free(p->out);
    if (p->pid > 0)
        kill(-p->pid, SIGTERM); /* the client went away: stop git and the build */
    free(p);
}

static void rpc_finish(struct rpc *p)
{
    if (p->stream) {
        httpd_stream_end(p->stream);
        p->stream = NULL;
    }
    p->pid = 0; /* ended on its own: reaped by on_child */
    rpc_free(p);
}

static void out_read(struct bufferevent *bev, void *arg)
{
    struct rpc *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    while ((n = evbuffer_get_length(in)) > 0) {
        size_t chunk = n > 65536 ? 65536 : n;
        httpd_stream_write(p->stream, evbuffer_pullup(in, (ev_ssize_t)chunk), chunk);
        evbuffer_drain(in, chunk);
    }
}

static void out_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        out_read(bev, arg);
        rpc_finish(arg);
    }
}

static void in_written(struct bufferevent *bev, void *arg)
{
    struct rpc *p = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        bufferevent_free(p->in); /* closes git's stdin */
        p->in = NULL;
    }
}

static void in_event(struct bufferevent *bev, short what, void *arg)
{
    struct rpc *p = arg;
    bufferevent_free(p->in);
    p->in = NULL;
}

static void stream_closed(struct httpd_stream *s, void *arg)
{
    struct rpc *p = arg;
    p->stream = NULL;
    log_warn("client closed the connection during a push; stopping git (pid %d)", p->pid);
    rpc_free(p);
}

/* Inflates a gzip body into out; -1 when it is not valid gzip. */
static int gunzip(const void *data, size_t len, struct evbuffer *out, size_t max)
{
    z_stream z = {0};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -1;
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    unsigned char buf[65536];
    int rc;
    size_t total = 0;
    do {
        z.next_out = buf;
        z.avail_out = sizeof(buf);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END)
            break;
        size_t got = sizeof(buf) - z.avail_out;
        total += got;
        if (total > max) {
            rc = Z_MEM_ERROR;
            break;
        }
        evbuffer_add(out, buf, got);
    } while (rc != Z_STREAM_END && (z.avail_in > 0 || z.avail_out == 0));
    inflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static size_t max_push = (size_t)1 << 30;

static void service_rpc(struct httpd_req *r, struct gr *g, const char *service)
{
    char *name = NULL, *id = NULL;
    cleanup_free char *ct = NULL;
    cleanup_free char *dir = prologue(r, g, service, &name, &id);
    if (!dir)
        return;
    size_t len;
    const void *body = httpd_body(r, &len);
    struct evbuffer *input = evbuffer_new();
    const char *enc = httpd_header(r, "Content-Encoding");
    if (enc && !strcmp(enc, "gzip")) {
        if (gunzip(body, len, input, max_push) < 0) {
            evbuffer_free(input);
            httpd_reply_text(r, 400, "text/plain", "bad gzip body\n", 14);
            goto out;
        }
    } else if (enc && strcmp(enc, "identity")) {
        evbuffer_free(input);
        httpd_reply_text(r, 415, "text/plain", "unsupported Content-Encoding\n", 29);
        goto out;
    } else {
        evbuffer_add(input, body, len);
    }
    int pin[2], pout[2];
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0) {
        evbuffer_free(input);
        httpd_reply_text(r, 500, "text/plain", "pipe failed\n", 12);
        goto out;
    }
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        signal(SIGPIPE, SIG_DFL);
        setenv("FLYNN_APP", name, 1);
        setenv("FLYNN_APP_ID", id, 1);
        execlp("git", "git", service + 4, "--stateless-rpc", dir, (char *)NULL);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    if (pid < 0) {
        close(pin[1]);
        close(pout[0]);
        evbuffer_free(input);
        httpd_reply_text(r, 500, "text/plain", "fork failed\n", 12);
        goto out;
    }
    log_info("%s %s (%s): pid %d", service, name, id, pid);
    struct rpc *p = xcalloc(1, sizeof(*p));
    p->g = g;
    p->pid = pid;
    p->next = g->rpcs;
    if (p->next)
        p->next->pprev = &p->next;
    p->pprev = &g->rpcs;
    g->rpcs = p;
    evutil_make_socket_nonblocking(pin[1]);
    evutil_make_socket_nonblocking(pout[0]);
    p->in = bufferevent_socket_new(g->base, pin[1], BEV_OPT_CLOSE_ON_FREE);
    p->out = bufferevent_socket_new(g->base, pout[0], BEV_OPT_CLOSE_ON_FREE);
    ct = xasprintf("application/x-%s-result", service);
    httpd_set_header(r, "Cache-Control", "no-cache");
    p->stream = httpd_stream_start(r, ct, stream_closed, p);
    bufferevent_setcb(p->in, NULL, in_written, in_event, p);
    bufferevent_setcb(p->out, out_read, NULL, out_event, p);
    bufferevent_write_buffer(p->in, input);
    evbuffer_free(input);
    bufferevent_enable(p->in, EV_WRITE);
    bufferevent_enable(p->out, EV_READ);
out:
    free(name);
    free(id);
}

static void receive_pack(struct httpd_req *r, void *arg)
{
    service_rpc(r, arg, "git-receive-pack");
}

static void upload_pack(struct httpd_req *r, void *arg)
{
    service_rpc(r, arg, "git-upload-pack");
}

static void status(struct httpd_req *r, void *arg)
{
    httpd_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static const struct httpd_route routes[] = {
    {"GET", "/", status},
    {"GET", "/:repo/info/refs", info_refs},
    {"POST", "/:repo/git-receive-pack", receive_pack},
    {"POST", "/:repo/git-upload-pack", upload_pack},
};

static void on_child(evutil_socket_t fd, short what, void *arg)
{
    int st;
    while (waitpid(-1, &st, WNOHANG) > 0) {
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: flynn-gitreceive --controller URL --key-file FILE [flags]\n"
            "  --listen HOST:PORT       (default 127.0.0.1:1114)\n"
            "  --controller URL         the controller's API (http://127.0.0.1:1111)\n"
            "  --key-file FILE          the cluster key (git's password; the controller's key)\n"
            "  --data-dir DIR           repositories and builds (default /var/lib/flynn/gitreceive)\n"
            "  --receiver PATH          the pre-receive program (default: flynn-receiver beside\n"
            "                           this binary)\n"
            "  --max-push BYTES         largest push body (default 1 GiB)\n"
            "Everything else the receiver needs comes from the environment, which the hook\n"
            "inherits: FLYNN_HOST_URL, FLYNN_BLOBSTORE_URL, FLYNN_SLUGBUILDER_DIR, ...\n"
            "(see docs/internals/gitreceive.md).\n");
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:1114", *key_file = NULL;
    struct gr g = {.data_dir = "/var/lib/flynn/gitreceive"};
    static const struct option lo[] = {
        {"listen", 1, 0, 'l'},     {"controller", 1, 0, 'c'}, {"key-file", 1, 0, 'k'},
        {"data-dir", 1, 0, 'd'},   {"receiver", 1, 0, 'r'},   {"max-push", 1, 0, 'm'},
        {"help", 0, 0, 'h'},       {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'l': listen = optarg; break;
        case 'c': g.controller = optarg; break;
        case 'k': key_file = optarg; break;
        case 'd': g.data_dir = optarg; break;
        case 'r': g.receiver = optarg; break;
        case 'm': max_push = (size_t)strtoull(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!g.controller || !key_file || optind < argc) {
        usage(stderr);
        return 2;
    }
    log_init("gitreceive", LOG_LVL_INFO, 0);
    struct err *e = NULL;
    size_t kl;
    char *key = fs_read_file(key_file, &kl, &e);
    if (!key) {
        log_error("%s", e->msg);
        return 1;
    }
    key[strcspn(key, "\r\n")] = '\0';
    if (!*key) {
        log_error("the key file '%s' is empty", key_file);
        return 1;
    }
    g.key = key;
    char *recv = NULL;
    if (!g.receiver) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            log_error("cannot find my own path; pass --receiver");
            return 1;
        }
        self[n] = '\0';
        *strrchr(self, '/') = '\0';
        recv = xasprintf("%s/flynn-receiver", self);
        g.receiver = recv;
    }
    if (access(g.receiver, X_OK) < 0) {
        log_error("receiver '%s' is not executable: %s", g.receiver, strerror(errno));
        return 1;
    }
    cleanup_free char *repos = xasprintf("%s/repos", g.data_dir);
    if (fs_mkdir_p(repos, 0700, &e) < 0) {
        log_error("%s", e->msg);
        return 1;
    }
    /* what the hook (flynn-receiver) inherits */
    setenv("FLYNN_RECEIVER", g.receiver, 1);
    setenv("FLYNN_CONTROLLER_URL", g.controller, 1);
    setenv("FLYNN_CONTROLLER_KEY", key, 1);
    setenv("FLYNN_GITRECEIVE_DIR", g.data_dir, 1);
    unsetenv("NOTIFY_SOCKET_CHILD");
    signal(SIGPIPE, SIG_IGN);
    g.base = event_base_new();
    struct httpd_opts o = {.max_body = max_push, .timeout_secs = 3600};
    struct httpd *h = httpd_new(g.base, routes, ARRAY_SIZE(routes), &o, &g);
    int port = httpd_listen(h, listen, &e);
    if (port < 0) {
        log_error("%s", e->msg);
        return 1;
    }
    cleanup_free char *bound =
        xasprintf("%.*s:%d", (int)(strrchr(listen, ':') - listen), listen, port);
    struct event *chld = evsignal_new(g.base, SIGCHLD, on_child, NULL);
    struct event *term = evsignal_new(g.base, SIGTERM, on_stop, g.base);
    struct event *intr = evsignal_new(g.base, SIGINT, on_stop, g.base);
    event_add(chld, NULL);
    event_add(term, NULL);
    event_add(intr, NULL);
    log_info("listening on %s; repositories in %s", bound, repos);
    notify_ready(bound);
    unsetenv("NOTIFY_SOCKET");
    event_base_dispatch(g.base);
    while (g.rpcs)
        rpc_free(g.rpcs);
    httpd_free(h);
    event_free(chld);
    event_free(term);
    event_free(intr);
    event_base_free(g.base);
    free(key);
    free(recv);
    return 0;
}
