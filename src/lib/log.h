/*
 * log: leveled log lines on stderr, text or JSON lines.
 *
 * Each line carries the component (set once with log_init), the level and
 * the message. The macros test the level before evaluating their arguments,
 * so debug logging costs nothing when it is off.
 */
#ifndef LIB_LOG_H
#define LIB_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

extern enum log_level log_min_level;

/* component: short name such as "host"; json: write JSON lines. */
void log_init(const char *component, enum log_level min, int json);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int log_level_parse(const char *s);
void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= log_min_level)                                                                \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)

/* BUG: an invariant broke; print where and abort. */
#define BUG(...) log_bug(__FILE__, __LINE__, __VA_ARGS__)
void log_bug(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#endif
