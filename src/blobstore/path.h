/*
 * path: the blob path of a request target, checked and percent-decoded.
 *
 * The blob path is the request target up to its first '?' or '#' (the
 * query is ignored), percent-decoded once. It is accepted when it is one or
 * more segments, each after exactly one '/', where every segment:
 *   - is 1..255 bytes (a file name: NAME_MAX);
 *   - is not "." or "..";
 *   - holds no NUL, no control character (< 0x20, 0x7f) and no invalid
 *     UTF-8 (so every accepted path can be echoed in JSON).
 * The decoded path is at most PATH_MAX_BLOB bytes, leading '/' included.
 * Everything else is refused: "/", "//a", "/a//b", "/a/" (empty segments),
 * a '%' not followed by two hex digits, and escapes that decode to any of
 * the above ("%2e%2e", "%2F%2F", "%00").
 *
 * The checks run on the decoded bytes, so what the file system sees is
 * exactly what was checked; nothing is decoded twice.
 */
#ifndef BLOBSTORE_PATH_H
#define BLOBSTORE_PATH_H

#include <stddef.h>

#define PATH_MAX_BLOB 1024

/* Decodes and checks target[0..n). On success returns 0 and sets *out to
 * the decoded path without its leading '/' ("a/b" for "/a/b"; caller
 * frees). On failure returns -1 and sets *why to a static reason. */
int path_parse(const char *target, size_t n, char **out, const char **why);

#endif
