/*
 * slug: the host's cache of unpacked slugs.
 *
 * A slug is a gzip tar of an app's /app tree (paths relative to /app, as
 * `tar -C /app -czf - .` writes them), kept in the blobstore. Jobs name it in
 * root.slug {url, sha256, size}; each host fetches and unpacks a slug once
 * and every job of it mounts the same tree as a read-only overlay layer.
 *
 * Layout of the cache directory (STATE_DIR/slugs):
 *
 *   SHA.lock        flock: exclusive while the slug is fetched or evicted,
 *                   shared while a job uses it (its shim holds the lock)
 *   SHA/root/app/   the unpacked tree; SHA/root is the overlay layer
 *   SHA/ready       written before SHA/ appears; its mtime is the last use
 *   .tmp-SHA/       a fetch in progress (only under the exclusive lock)
 *   .tmp-SHA.tgz
 *   .trash-*        an evicted slug being removed
 *
 * SHA is the lowercase hex SHA-256 of the archive. SHA/ appears by rename,
 * complete, so a crash never leaves a half-unpacked slug in use. A lock file
 * is only valid while its path still names the open inode: whoever removes
 * it does so under the exclusive lock, and slug_acquire re-checks after each
 * flock.
 *
 * slug_acquire and slug_cache_evict block (network, disk, locks): call them
 * from the per-job shim or before the daemon's event loop runs, never on it.
 */
#ifndef HOST_SLUG_H
#define HOST_SLUG_H

#include "err.h"

struct slug_ref {
    const char *url;    /* http:// or https:// */
    const char *sha256; /* 64 hex digits, any case */
    long long size;     /* bytes of the archive; <= 0 when not given */
};

/* Makes sure the slug is unpacked in cache (created when missing), marks it
 * used now, and returns an O_CLOEXEC fd holding a shared lock on it, which
 * keeps slug_cache_evict away. While another process fetches the same slug
 * this waits for it instead of fetching twice. The caller keeps the fd as
 * long as a job uses the slug and hands it to slug_release. On failure
 * returns -1 with *err naming the URL and the reason (HTTP status, checksum
 * or size mismatch, unpack error). The download runs as
 * `FETCHER fetch-slug URL SHA256 SIZE OUT` (fetcher: the flynn-host binary),
 * which calls slug_download and prints its error on failure. */
int slug_acquire(const char *cache, const struct slug_ref *s, const char *fetcher,
                 struct err **err);

/* Marks the slug used now and closes fd (from slug_acquire), which drops
 * the lock. Takes ownership of fd; -1 is a no-op. */
void slug_release(const char *cache, const char *sha256, int fd);

/* The slug's directory in the cache, CACHE/sha (lowercased); the overlay
 * layer is its "root" subdirectory. Caller frees. */
char *slug_dir(const char *cache, const char *sha256);

/* Keeps the `keep` most recently used slugs and removes older ones that no
 * job uses (no shared lock is held), plus leftovers of interrupted fetches
 * and evictions. Returns how many slugs were removed (a missing cache is
 * 0), or -1 with *err when the cache cannot be read or something could not
 * be removed; the rest is still tried. */
int slug_cache_evict(const char *cache, int keep, struct err **err);

/* True when s is 64 hex digits. */
int slug_sha256_is_valid(const char *s);

/* Downloads s->url into fd (http or https, redirects followed) and checks
 * the status, the size (when given) and the SHA-256 (any case). Returns 0, or -1 with
 * *err naming the URL and what went wrong. In slug_fetch.c (libcurl). */
int slug_download(const struct slug_ref *s, int fd, struct err **err);

#endif
