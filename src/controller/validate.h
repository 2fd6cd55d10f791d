/*
 * validate: pure checks and conversions of controller input (no I/O), so
 * they can be unit tested (validate_test.c).
 *
 * Functions that check a JSON object return 0, or -1 with *err set to an
 * EINVAL error whose message is Flynn's ("name is invalid") and, when a
 * field is known, *field set to a static field name for the error detail.
 */
#ifndef CONTROLLER_VALIDATE_H
#define CONTROLLER_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define MAX_PROCESS_COUNT 10000

/* ^[a-z\d]+(-[a-z\d]+)*$, 1..100 characters. */
bool validate_app_name(const char *name);
/* A fresh name "adjective-animal-NNNN" that passes validate_app_name. */
void app_name_generate(char out[64]);
/* Non-empty, no '=' and no NUL; at most 1024 bytes. */
bool validate_env_key(const char *key);
/* [A-Za-z0-9_.-], 1..100 characters. */
bool validate_process_type(const char *type);
/* Accepts a UUID dashed or not (any case); writes the lowercase dashed
 * form. Returns false when s is not a UUID. */
bool uuid_normalize(const char *s, char out[37]);
/* JSON object whose values are all strings (or null / absent when
 * allow_null). */
bool validate_string_map(const json_t *v, bool allow_null);

/* Checks and normalises a Release body in place: artifact/artifacts, env,
 * meta, processes (cmd/entrypoint folded into args, data → /data volume,
 * default resources). */
int release_normalize(json_t *rel, const char **field, struct err **err);
/* Checks a processes map {type: count}: counts are integers 0..MAX and,
 * when release_procs is non-NULL, every type exists in it. */
int validate_processes(const json_t *procs, const json_t *release_procs, const char **field,
                       struct err **err);
/* Fills the default resources of flynn-api.md §4.3 into a resources map
 * (creating it when NULL); returns the (new) map. */
json_t *resources_default(json_t *res);

#endif
