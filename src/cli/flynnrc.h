/*
 * flynnrc: the client configuration file (~/.flynnrc, or $FLYNNRC).
 *
 * A TOML file with a top-level `default` and one [[cluster]] table per
 * cluster (docs/flynn-api.md §1.4). flynnrc_format writes it byte for byte
 * as Flynn's Go CLI does (BurntSushi/toml's encoder plus a final newline;
 * an empty file when there are no clusters), so files move between the two
 * clients unchanged. The reader accepts the TOML subset such files use:
 * `key = "basic string"` or 'literal', comments, blank lines and
 * [[cluster]] headers; unknown keys are ignored.
 */
#ifndef CLI_FLYNNRC_H
#define CLI_FLYNNRC_H

#include <stddef.h>

#include "err.h"
#include "strbuf.h"

struct flynnrc_cluster {
    char *name;
    char *oauth_url; /* OAuthURL */
    char *key;
    char *tls_pin;
    char *controller_url;
    char *git_url;
    char *image_url;
    char *docker_push_url;
};

struct flynnrc {
    char *default_name; /* "" when unset */
    struct flynnrc_cluster **clusters;
    size_t nclusters;
};

/* The path: $FLYNNRC, else $HOME/.flynnrc. Caller frees. */
char *flynnrc_path(void);
/* $HOME/.flynn. Caller frees. */
char *flynnrc_dir(void);

struct flynnrc *flynnrc_new(void);
void flynnrc_free(struct flynnrc *rc);
/* Parses text; on a syntax error returns NULL with *err naming the line. */
struct flynnrc *flynnrc_parse(const char *text, struct err **err);
/* Reads path; a missing file gives an empty config. */
struct flynnrc *flynnrc_load(const char *path, struct err **err);
void flynnrc_format(const struct flynnrc *rc, struct strbuf *out);
int flynnrc_save(const struct flynnrc *rc, const char *path, struct err **err);

struct flynnrc_cluster *flynnrc_cluster_new(void);
void flynnrc_cluster_free(struct flynnrc_cluster *c);
struct flynnrc_cluster *flynnrc_find(const struct flynnrc *rc, const char *name);
/* Appends c (taking it). A cluster with the same name or URLs conflicts:
 * with force the old one is replaced, otherwise -1 and Flynn's message. */
int flynnrc_add(struct flynnrc *rc, struct flynnrc_cluster *c, int force, struct err **err);
/* Detaches and returns the cluster named name, or NULL. */
struct flynnrc_cluster *flynnrc_remove(struct flynnrc *rc, const char *name);
/* Sets the default when a cluster has that name; returns 0, else -1. */
int flynnrc_set_default(struct flynnrc *rc, const char *name);

/* Go's %q of s (the quoting Flynn uses in its messages). Caller frees. */
char *go_quote(const char *s);

#endif
