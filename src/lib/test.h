/*
 * test: a tiny TAP producer for unit tests beside the code.
 *
 *   ok(cond, "name"); is_int(got, want, "name"); is_str(got, want, "name");
 *   return test_done();   (exit 0 when every check passed, 1 otherwise)
 */
#ifndef LIB_TEST_H
#define LIB_TEST_H

#include <stdio.h>
#include <string.h>

static int test_n, test_failed;

#define ok(cond, ...)                                                                              \
    do {                                                                                           \
        int ok_ = !!(cond);                                                                        \
        test_n++;                                                                                  \
        if (!ok_)                                                                                  \
            test_failed++;                                                                         \
        printf("%s %d - ", ok_ ? "ok" : "not ok", test_n);                                         \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        if (!ok_)                                                                                  \
            printf("#   failed at %s:%d\n", __FILE__, __LINE__);                                   \
    } while (0)

#define is_int(got, want, ...)                                                                     \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        ok(g_ == w_, __VA_ARGS__);                                                                 \
        if (g_ != w_)                                                                              \
            printf("#   got %lld, want %lld\n", g_, w_);                                           \
    } while (0)

#define is_str(got, want, ...)                                                                     \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        int same_ = (g_ && w_) ? !strcmp(g_, w_) : g_ == w_;                                       \
        ok(same_, __VA_ARGS__);                                                                    \
        if (!same_)                                                                                \
            printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");           \
    } while (0)

static inline int test_done(void)
{
    printf("1..%d\n", test_n);
    return test_failed ? 1 : 0;
}

#endif
