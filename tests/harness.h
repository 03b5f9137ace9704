/* A minimal test harness: CHECK records a failure and continues; each test program registers its
 * cases in main() with RUN(fn) and returns test_summary(). */
#ifndef VLM_TEST_HARNESS_H
#define VLM_TEST_HARNESS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "tensor/tensor.h"

extern int g_test_failures, g_test_checks;
extern const char *g_test_name;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        g_test_checks++;                                                                                               \
        if (!(cond)) {                                                                                                 \
            g_test_failures++;                                                                                         \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, g_test_name, #cond);                        \
        }                                                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                                           \
    do {                                                                                                               \
        g_test_checks++;                                                                                               \
        if (!(cond)) {                                                                                                 \
            g_test_failures++;                                                                                         \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s: ", __FILE__, __LINE__, g_test_name, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
        }                                                                                                              \
    } while (0)

/* The call succeeds (prints the error message when it does not). */
#define CHECK_OK(expr)                                                                                                 \
    do {                                                                                                               \
        vlm_status check_s_ = (expr);                                                                                  \
        CHECK_MSG(check_s_ == VLM_OK, "%s", vlm_last_error());                                                         \
    } while (0)

/* The call fails with `code` and a message containing `needle`. */
#define CHECK_ERR(expr, code, needle) test_check_err((expr), (code), (needle), #expr, __FILE__, __LINE__)

#define RUN(fn)                                                                                                        \
    do {                                                                                                               \
        g_test_name = #fn;                                                                                             \
        int before_ = g_test_failures;                                                                                 \
        fn();                                                                                                          \
        fprintf(stderr, "%s %s\n", g_test_failures == before_ ? "ok  " : "FAIL", #fn);                                 \
    } while (0)

void test_check_err(vlm_status got, vlm_status want, const char *needle, const char *expr, const char *file, int line);
int test_summary(void);

/* Paths: <fixtures>/rel. */
const char *test_fixture(const char *rel);
/* A fresh temporary directory for this test program (removed at exit). */
const char *test_tmpdir(void);
/* <tmpdir>/rel */
const char *test_tmp(const char *rel);

/* Max |a-b| and max |b| over n floats. */
float test_max_abs_diff(const float *a, const float *b, size_t n);
float test_max_abs(const float *a, size_t n);
/* Compares with the fixtures' tolerance rule: max|a-b| <= rtol * max|ref| + atol. Prints the
 * numbers on failure. Returns 1 when close. */
int test_close(const char *what, const float *got, const float *ref, size_t n, float rtol, float atol);

/* A deterministic pseudo-random float in [-1, 1). */
float test_rand(uint64_t *state);

#endif
