/*
 * opts: command-line options in the style Flynn's docopt usages accept.
 *
 * Options may appear anywhere among the positionals ("-y", "-p PIN",
 * "-pPIN", "--tls-pin PIN", "--tls-pin=PIN", grouped short flags "-fd");
 * "--" ends the options. A spec lists every option a command knows; anything
 * else is a usage error.
 */
#ifndef CLI_OPTS_H
#define CLI_OPTS_H

#include <stddef.h>

#include "err.h"

#define OPTS_MAX 16

struct opt_spec {
    char short_name;       /* 0 when none */
    const char *long_name; /* without "--", NULL when none */
    int has_arg;
};

struct opts {
    const struct opt_spec *specs;
    size_t nspecs;
    int set[OPTS_MAX];         /* times each option was given */
    const char *val[OPTS_MAX]; /* last value of options with has_arg */
    char **pos;                /* positionals, borrowed from argv */
    int npos;
};

/* Parses argv[0..argc) (argv[0] is the first argument, not the command).
 * On a usage error returns -1 with *err saying what was wrong. Free with
 * opts_release. */
int opts_parse(struct opts *o, const struct opt_spec *specs, size_t nspecs, int argc, char **argv,
               struct err **err);
void opts_release(struct opts *o);
/* By long name (or the one-letter short name as a string): was it given? */
int opts_has(const struct opts *o, const char *name);
/* Value of an option with an argument, or def when absent. */
const char *opts_get(const struct opts *o, const char *name, const char *def);

#endif
