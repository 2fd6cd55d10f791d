/*
 * git: the git commands the client runs (remotes, global config), and
 * finding the app of a git remote (docs/flynn-api.md §1.4, §1.5).
 */
#ifndef CLI_GIT_H
#define CLI_GIT_H

#include "err.h"
#include "flynnrc.h"

int git_in_repo(void);
/* `git config KEY` trimmed, or NULL when unset. Caller frees. */
char *git_config_get(const char *key);
/* `git config --global KEY VALUE`; -1 with git's output on failure. */
int git_config_global_set(const char *key, const char *value, struct err **err);
void git_config_global_remove_section(const char *section);
int git_remote_add(const char *name, const char *url);
/* A GIT_SSL_CAINFO in the environment overrides the http.GITURL.sslCAInfo
 * that points git at the cluster's CA (ca_path), so pushes would fail
 * their certificate check with a message that does not say why: warns on
 * stderr unless that file already holds the cluster's certificate. */
void git_warn_ca_env(const char *git_url, const char *ca_path);
/* The same for a cluster's git URL and saved CA (~/.flynn/ca-certs/NAME.pem). */
void git_warn_cluster_ca_env(const struct flynnrc_cluster *c);
void git_remote_remove(const char *name);
int git_remote_exists(const char *name);

/* The app a git URL names on one of the clusters (only cluster_filter
 * when set): returns the app name, *cluster set, or NULL. Caller frees. */
char *git_app_from_url(struct flynnrc *rc, const char *cluster_filter, const char *url,
                       struct flynnrc_cluster **cluster);
/* The app of remote (when non-NULL), else of the one push remote that
 * points at a cluster's git URL. NULL with *err when there is none or
 * several; *err NULL and NULL returned when git is unusable. */
char *git_app_from_remote(struct flynnrc *rc, const char *cluster_filter, const char *remote,
                          struct flynnrc_cluster **cluster, struct err **err);
/* Names of push remotes pointing at app name on a cluster. NULL-terminated,
 * caller frees each and the array. */
char **git_app_remotes(struct flynnrc *rc, const char *cluster_filter, const char *app);

#endif
