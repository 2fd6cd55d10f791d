#include "git.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "proc.h"
#include "strbuf.h"
#include "xalloc.h"

static int run_git(const char *const argv[], struct strbuf *out)
{
    struct err *e = NULL;
    int rc = proc_run(argv, out, &e);
    if (rc < 0) {
        err_free(e);
        return -1;
    }
    return rc;
}

int git_in_repo(void)
{
    const char *argv[] = {"git", "rev-parse", "--git-dir", NULL};
    return run_git(argv, NULL) == 0;
}

static void trim(struct strbuf *sb)
{
    while (sb->len && (sb->buf[sb->len - 1] == '\n' || sb->buf[sb->len - 1] == '\r' ||
                       sb->buf[sb->len - 1] == ' '))
        sb->buf[--sb->len] = '\0';
}

char *git_config_get(const char *key)
{
    struct strbuf out = STRBUF_INIT;
    const char *argv[] = {"git", "config", key, NULL};
    if (run_git(argv, &out) != 0) {
        strbuf_release(&out);
        return NULL;
    }
    trim(&out);
    return strbuf_detach(&out, NULL);
}

int git_config_global_set(const char *key, const char *value, struct err **err)
{
    cleanup_strbuf struct strbuf out = STRBUF_INIT;
    const char *argv[] = {"git", "config", "--global", key, value, NULL};
    int rc = run_git(argv, &out);
    if (rc < 0)
        return err_makex(err, ENOENT,
                         "Executable 'git' was not found. Use --no-git to skip git configuration");
    if (rc != 0) {
        trim(&out);
        return err_makex(err, EIO, "error running \"git config --global %s %s\": %s", key, value,
                         out.buf);
    }
    return 0;
}

void git_config_global_remove_section(const char *section)
{
    const char *argv[] = {"git", "config", "--global", "--remove-section", section, NULL};
    run_git(argv, NULL);
}

int git_remote_add(const char *name, const char *url)
{
    const char *argv[] = {"git", "remote", "add", "--", name, url, NULL};
    return run_git(argv, NULL) == 0 ? 0 : -1;
}

void git_warn_ca_env(const char *git_url, const char *ca_path)
{
    const char *env = getenv("GIT_SSL_CAINFO");
    if (!env || !*env || !git_url || !*git_url)
        return;
    struct err *e = NULL;
    char *ca = ca_path ? fs_read_file(ca_path, NULL, &e) : NULL;
    err_free(e);
    e = NULL;
    char *bundle = ca ? fs_read_file(env, NULL, &e) : NULL;
    err_free(e);
    bool covered = ca && bundle && *ca && strstr(bundle, ca);
    free(bundle);
    if (!covered)
        fprintf(stderr,
                "WARNING: GIT_SSL_CAINFO is set (%s). It overrides the cluster's CA certificate "
                "that git is set to use for %s%s%s%s, so `git push` to this cluster will fail its "
                "certificate check. Push with it unset (env -u GIT_SSL_CAINFO git push flynn "
                "main), or add %s to %s.\n",
                env, git_url, ca_path ? " (" : "", ca_path ? ca_path : "", ca_path ? ")" : "",
                ca_path ? ca_path : "the cluster's CA certificate", env);
    free(ca);
}

void git_warn_cluster_ca_env(const struct flynnrc_cluster *c)
{
    if (!c || !c->git_url || !*c->git_url || !getenv("GIT_SSL_CAINFO"))
        return;
    char *dir = flynnrc_dir();
    char *path = xasprintf("%s/ca-certs/%s.pem", dir, c->name);
    git_warn_ca_env(c->git_url, access(path, R_OK) == 0 ? path : NULL);
    free(path);
    free(dir);
}

void git_remote_remove(const char *name)
{
    const char *argv[] = {"git", "remote", "remove", name, NULL};
    run_git(argv, NULL);
}

int git_remote_exists(const char *name)
{
    cleanup_free char *key = xasprintf("remote.%s.url", name);
    cleanup_free char *url = git_config_get(key);
    return url != NULL;
}

char *git_app_from_url(struct flynnrc *rc, const char *cluster_filter, const char *url,
                       struct flynnrc_cluster **cluster)
{
    for (size_t i = 0; i < rc->nclusters; i++) {
        struct flynnrc_cluster *c = rc->clusters[i];
        if (cluster_filter && *cluster_filter && strcmp(c->name, cluster_filter))
            continue;
        cleanup_free char *prefix = xasprintf("%s/", c->git_url);
        size_t pl = strlen(prefix), ul = strlen(url);
        if (ul >= pl + 4 && !strncmp(url, prefix, pl) && !strcmp(url + ul - 4, ".git")) {
            *cluster = c;
            return xstrndup(url + pl, ul - pl - 4);
        }
    }
    return NULL;
}

struct remote_app {
    char *remote;
    char *app;
    struct flynnrc_cluster *cluster;
};

/* Push remotes of `git remote -v` that point at a cluster; -1 when git fails. */
static int list_remotes(struct flynnrc *rc, const char *filter, struct remote_app **out, size_t *n)
{
    struct strbuf sb = STRBUF_INIT;
    const char *argv[] = {"git", "remote", "-v", NULL};
    *out = NULL;
    *n = 0;
    if (run_git(argv, &sb) != 0) {
        strbuf_release(&sb);
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(sb.buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0};
        int nf = 0;
        char *s2 = NULL;
        for (char *t = strtok_r(line, " \t", &s2); t && nf < 4; t = strtok_r(NULL, " \t", &s2))
            f[nf++] = t;
        if (nf != 3 || strcmp(f[2], "(push)"))
            continue;
        struct flynnrc_cluster *c = NULL;
        char *app = git_app_from_url(rc, filter, f[1], &c);
        if (!app)
            continue;
        int dup = 0;
        for (size_t i = 0; i < *n; i++)
            if (!strcmp((*out)[i].remote, f[0])) {
                free((*out)[i].app);
                (*out)[i].app = app;
                (*out)[i].cluster = c;
                dup = 1;
            }
        if (dup)
            continue;
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = (struct remote_app){xstrdup(f[0]), app, c};
    }
    strbuf_release(&sb);
    return 0;
}

static void free_remotes(struct remote_app *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].remote);
        free(r[i].app);
    }
    free(r);
}

char *git_app_from_remote(struct flynnrc *rc, const char *cluster_filter, const char *remote,
                          struct flynnrc_cluster **cluster, struct err **err)
{
    if (remote && *remote) {
        cleanup_free char *key = xasprintf("remote.%s.url", remote);
        cleanup_free char *url = git_config_get(key);
        if (!url) {
            char cwd[4096];
            if (!getcwd(cwd, sizeof(cwd)))
                strcpy(cwd, ".");
            err_makex(err, ENOENT, "could not find git remote %s in %s", remote, cwd);
            return NULL;
        }
        char *app = git_app_from_url(rc, cluster_filter, url, cluster);
        if (!app)
            err_makex(err, ENOENT, "could not find app name in %s git remote", remote);
        return app;
    }
    struct remote_app *r;
    size_t n;
    if (list_remotes(rc, cluster_filter, &r, &n) < 0)
        return NULL; /* Flynn hides this error */
    char *app = NULL;
    if (n > 1) {
        struct strbuf sb = STRBUF_INIT;
        strbuf_adds(&sb, "error: Multiple apps listed in git remotes, please specify one with the "
                         "global -a option to disambiguate.\n\nAvailable Flynn remotes:");
        for (size_t i = 0; i < n; i++)
            strbuf_addf(&sb, "\n%s", r[i].remote);
        err_makex(err, EINVAL, "%s", sb.buf);
        strbuf_release(&sb);
    } else if (n == 1) {
        app = xstrdup(r[0].app);
        *cluster = r[0].cluster;
    } else {
        err_makex(err, ENOENT, "no apps in git remotes");
    }
    free_remotes(r, n);
    return app;
}

char **git_app_remotes(struct flynnrc *rc, const char *cluster_filter, const char *app)
{
    struct remote_app *r;
    size_t n, k = 0;
    if (list_remotes(rc, cluster_filter, &r, &n) < 0)
        return xcalloc(1, sizeof(char *));
    char **names = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        if (!strcmp(r[i].app, app))
            names[k++] = xstrdup(r[i].remote);
    free_remotes(r, n);
    return names;
}
