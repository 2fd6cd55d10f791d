/*
 * units: the number and time formats Flynn's CLI prints and parses, each
 * as Go (and docker/go-units) does it.
 */
#ifndef CLI_UNITS_H
#define CLI_UNITS_H

/* go-units RAMInBytes (binary, "512MB" = 512 MiB) or FromHumanSize
 * (decimal): "N[.N][ ][kmgtp][i][b]", case-insensitive. 0 or -1. */
int units_parse_size(const char *s, int binary, long long *out);
/* Flynn's FormatLimit: memory and temp_disk as "%.4g" + binary unit
 * ("512MB", "1GB"), other types as a plain number. Caller frees. */
char *units_format_limit(const char *type, long long v);
/* Go's time.Duration String ("3.944629056s", "12.5ms", "1m2s"). */
char *units_go_duration(long long ns);
/* Go's "2006-01-02T15:04:05.000000Z07:00" of an RFC 3339 time: six
 * fraction digits (truncated), the zone kept ("Z" for UTC). */
char *units_micro_time(const char *rfc3339);

#endif
