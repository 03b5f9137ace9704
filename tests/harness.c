#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"

int g_test_failures, g_test_checks;
const char *g_test_name = "";

void test_check_err(vlm_status got, vlm_status want, const char *needle, const char *expr, const char *file, int line) {
    g_test_checks++;
    const char *msg = vlm_last_error();
    if (got != want || (needle && !strstr(msg, needle))) {
        g_test_failures++;
        fprintf(stderr, "  FAIL %s:%d [%s]: %s\n    expected %s containing \"%s\"\n    got      %s: \"%s\"\n", file,
                line, g_test_name, expr, vlm_status_name(want), needle ? needle : "", vlm_status_name(got), msg);
    }
}

static char g_tmpdir[256];

static void cleanup_tmp(void) {
    if (g_tmpdir[0] && !getenv("VLM_TEST_KEEP")) vlm_remove_tree(g_tmpdir);
}

const char *test_tmpdir(void) {
    if (!g_tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/vlm-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(g_tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(cleanup_tmp);
    }
    return g_tmpdir;
}

const char *test_tmp(const char *rel) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "%s/%s", test_tmpdir(), rel);
    return b;
}

/* The fixtures are a copy of ../shared/fixtures that scripts/setup.sh makes (they are not tracked):
 * without them a test that needs them is skipped (exit 77) with the command that fixes it, and
 * .ci/run, which always has ../shared, fails on that skip. $VLM_TEST_FIXTURES names another copy
 * (a test binary run on another machine: scripts/gpu_check.sh). */
static const char *fixtures_dir(void) {
    const char *env = getenv("VLM_TEST_FIXTURES");
    return env && *env ? env : VLM_TEST_FIXTURES;
}

static void need_fixtures(void) {
    static int checked;
    if (checked++) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/README.md", fixtures_dir());
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return;
    }
    fprintf(stderr,
            "SKIPPED: fixtures missing: %s has no README.md; run scripts/setup.sh (or "
            "scripts/refresh_fixtures.sh DIR) to copy ../shared/fixtures there\n",
            fixtures_dir());
    exit(77);
}

const char *test_fixture(const char *rel) {
    need_fixtures();
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "%s/%s", fixtures_dir(), rel);
    return b;
}

int test_summary(void) {
    fprintf(stderr, "%d checks, %d failures\n", g_test_checks, g_test_failures);
    return g_test_failures ? 1 : 0;
}

float test_max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

float test_max_abs(const float *a, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i]) > m) m = fabsf(a[i]);
    return m;
}

int test_close(const char *what, const float *got, const float *ref, size_t n, float rtol, float atol) {
    float d = test_max_abs_diff(got, ref, n), m = test_max_abs(ref, n);
    int ok = d <= rtol * m + atol;
    g_test_checks++;
    if (!ok) {
        g_test_failures++;
        fprintf(stderr, "  FAIL [%s] %s: max|diff| %.3g > %.3g (max|ref| %.3g, n %zu)\n", g_test_name, what, d,
                rtol * m + atol, m, n);
    }
    return ok;
}

float test_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
