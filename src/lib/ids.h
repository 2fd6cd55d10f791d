/*
 * ids: random identifiers and timestamps in Flynn's formats.
 */
#ifndef LIB_IDS_H
#define LIB_IDS_H

#include <stddef.h>
#include <time.h>

/* Fills out (37 bytes) with a random v4 UUID, lowercase and dashed. */
void id_uuid(char out[37]);
/* Fills out with 2*n lowercase hex chars of randomness and a NUL. */
void id_hex(char *out, size_t n);
/* RFC 3339 UTC with microseconds, trailing zeros dropped ("...56.657428Z").
 * out needs 32 bytes. */
void time_rfc3339(const struct timespec *ts, char out[40]);
void time_now_rfc3339(char out[40]);
/* Seconds since the epoch of an RFC 3339 time as Flynn writes them
 * ("YYYY-MM-DDTHH:MM:SS[.fraction]", UTC), fraction kept; -1 when t is
 * NULL or not of that form. */
double time_parse_rfc3339(const char *t);
/* Microseconds since the epoch. */
long long time_now_us(void);
/* True when s is a v4-style UUID, dashed or not. */
int id_is_uuid(const char *s);

#endif
