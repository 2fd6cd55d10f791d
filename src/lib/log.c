#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "xalloc.h"

enum log_level log_min_level = LOG_LVL_INFO;
static const char *component = "flynn";
static int json_mode;
static const char *names[] = {"debug", "info", "warn", "error"};

void log_init(const char *comp, enum log_level min, int json)
{
    component = comp;
    log_min_level = min;
    json_mode = json;
}

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (!strcmp(s, names[i]))
            return (int)i;
    return -1;
}

static void vwrite(enum log_level lvl, const char *fmt, va_list ap)
{
    char msg[4096];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%06ldZ", (long)tv.tv_usec);
    if (json_mode) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "time", ts, "component", component, "level",
                              names[lvl], "msg", msg);
        char *line = json_dumps(o, JSON_COMPACT);
        fprintf(stderr, "%s\n", line ? line : "{}");
        free(line);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s %s: %s\n", ts, component, names[lvl], msg);
    }
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(lvl, fmt, ap);
    va_end(ap);
}

void log_bug(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "BUG: %s:%d: %s\n", file, line, msg);
    abort();
}
