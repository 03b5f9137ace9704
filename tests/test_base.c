/* src/base itself: error messages and context, allocation (alignment, overflow, realloc, strdup,
 * the failure-injection hook), the string buffer (growth, formatting, the failed flag), the clock,
 * CPU features and thread count, and the memory probes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/error.h"
#include "base/log.h"
#include "base/memory.h"
#include "base/strbuf.h"
#include "base/timer.h"
#include "harness.h"

static void test_errors(void) {
    vlm_err_clear();
    CHECK(vlm_last_error()[0] == '\0');
    CHECK(vlm_err(VLM_ERR_IO, "cannot open %s", "a.bin") == VLM_ERR_IO);
    CHECK(!strcmp(vlm_last_error(), "cannot open a.bin"));
    CHECK(vlm_err_ctx(VLM_ERR_IO, "loading %s", "m") == VLM_ERR_IO);
    CHECK(!strcmp(vlm_last_error(), "loading m: cannot open a.bin"));
    /* context on context, and a long message is cut, never overflowed */
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    vlm_err(VLM_ERR_FORMAT, "%s", big);
    vlm_err_ctx(VLM_ERR_FORMAT, "outer");
    CHECK(!strncmp(vlm_last_error(), "outer: xxx", 10) && strlen(vlm_last_error()) < sizeof big);
    vlm_err_clear();
    CHECK(vlm_last_error()[0] == '\0');
    /* every status has a name */
    for (int s = VLM_OK; s <= VLM_ERR_BUSY; s++) CHECK(vlm_status_name((vlm_status)s)[0] != '\0');
    CHECK(!strcmp(vlm_status_name(VLM_ERR_NOMEM), "out of memory"));
}

static vlm_status inner(void) { return vlm_err(VLM_ERR_NOT_FOUND, "tensor t"); }
static vlm_status outer(void) {
    VLM_TRY(inner());
    return VLM_OK;
}

static void test_try(void) { CHECK_ERR(outer(), VLM_ERR_NOT_FOUND, "tensor t"); }

static void test_alloc(void) {
    for (size_t n = 0; n < 300; n += 37) {
        char *p = vlm_alloc(n, "a test block");
        CHECK(p && ((uintptr_t)p % VLM_ALIGN) == 0);
        if (p) memset(p, 1, n);
        vlm_free(p);
    }
    char *h = vlm_alloc_aligned(100, 4096, "a page-aligned block");
    CHECK(h && ((uintptr_t)h % 4096) == 0);
    vlm_free(h);
    int *z = vlm_calloc(100, sizeof *z, "zeros");
    int all_zero = z != NULL;
    for (int i = 0; z && i < 100; i++) all_zero &= z[i] == 0;
    CHECK(all_zero);
    vlm_free(z);
    /* count * size overflowing size_t is refused, naming the block */
    CHECK(vlm_calloc(SIZE_MAX / 2, 4, "the huge table") == NULL);
    CHECK(strstr(vlm_last_error(), "the huge table") != NULL);
    CHECK(vlm_alloc(SIZE_MAX - 8, "an impossible block") == NULL);
    CHECK(strstr(vlm_last_error(), "out of memory allocating") && strstr(vlm_last_error(), "an impossible block"));
    char *r = vlm_realloc(NULL, 4, "grown");
    CHECK(r != NULL);
    if (r) memcpy(r, "abc", 4);
    char *r2 = vlm_realloc(r, 1 << 20, "grown");
    CHECK(r2 && !strcmp(r2, "abc"));
    vlm_free(r2 ? r2 : r);
    char *d = vlm_strdup("hello", "a copy");
    CHECK(d && !strcmp(d, "hello"));
    vlm_free(d);
    vlm_free(NULL);
}

/* The injection hook: the n-th allocation fails once, through every entry point. */
static void test_injection(void) {
    vlm_alloc_fail_at(3);
    void *a = vlm_alloc(8, "a"), *b = vlm_calloc(1, 8, "b"), *c = vlm_strdup("c", "the third");
    void *d = vlm_realloc(NULL, 8, "d");
    CHECK(a && b && !c && d && vlm_alloc_failed() && vlm_alloc_count() == 4);
    CHECK(!strcmp(vlm_alloc_failure_what(), "the third"));
    CHECK(strstr(vlm_last_error(), "for the third") != NULL);
    vlm_free(a), vlm_free(b), vlm_free(d);
    vlm_alloc_fail_at(0);
    void *e = vlm_alloc(8, "e");
    CHECK(e && !vlm_alloc_failed() && vlm_alloc_count() == 1 && !vlm_alloc_failure_what()[0]);
    vlm_free(e);
}

static void test_strbuf(void) {
    vlm_strbuf b = {0};
    vlm_sb_append(&b, "ab", 2);
    vlm_sb_printf(&b, "-%d-%s", 42, "x");
    CHECK(b.data && !strcmp(b.data, "ab-42-x") && b.len == 7 && !b.failed);
    for (int i = 0; i < 1000; i++) vlm_sb_append(&b, "0123456789", 10);
    CHECK(b.len == 10007 && strlen(b.data) == b.len && !b.failed);
    vlm_sb_free(&b);
    CHECK(!b.data && !b.len);
    /* a failed growth sets the flag and keeps what fit; later appends are no-ops */
    vlm_sb_append(&b, "kept", 4);
    vlm_alloc_fail_at(1);
    char chunk[4096];
    memset(chunk, 'y', sizeof chunk);
    vlm_sb_append(&b, chunk, sizeof chunk);
    vlm_alloc_fail_at(0);
    CHECK(b.failed && !strcmp(b.data, "kept"));
    vlm_sb_printf(&b, "%s", "more");
    CHECK(b.failed && b.len == 4);
    vlm_sb_free(&b);
}

static void test_clock(void) {
    double t0 = vlm_now();
    usleep(2000);
    double t1 = vlm_now();
    CHECK(t1 - t0 >= 0.0015 && t1 - t0 < 5);
}

static void test_cpu(void) {
    const vlm_cpu_features *f = vlm_cpu();
    CHECK(f && f->avx2 && f->fma); /* the build's baseline ISA: the test would not run without it */
    CHECK(vlm_cpu_name()[0] != '\0');
    CHECK(vlm_cpu_has_avx512() == (f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq) || getenv("VLM_NO_AVX512"));
    int n = vlm_threads();
    CHECK(n >= 1);
    vlm_set_threads(1);
    CHECK(vlm_threads() == 1);
    vlm_set_threads(n);
    CHECK(vlm_threads() == n);
}

static void test_memory_probes(void) {
    uint64_t rss = vlm_rss_bytes(), peak = vlm_peak_rss_bytes();
    CHECK(rss > 0 && peak >= rss / 2); /* /proc/self/status on Linux */
    uint64_t avail = vlm_available_memory_bytes();
    CHECK(avail > 0);
    setenv("VLM_MEMORY_LIMIT_MB", "1", 1);
    CHECK(vlm_available_memory_bytes() <= (uint64_t)1 << 20);
    unsetenv("VLM_MEMORY_LIMIT_MB");
    CHECK(vlm_available_memory_bytes() > ((uint64_t)1 << 20) || avail <= ((uint64_t)1 << 20));
}

static void test_log_level(void) {
    vlm_log_level saved = vlm_log_get_level();
    vlm_log_set_level(VLM_LOG_ERROR);
    CHECK(vlm_log_get_level() == VLM_LOG_ERROR);
    VLM_LOG_I("not shown"); /* below the level: nothing to check but that it does not crash */
    vlm_log_set_level(saved);
    CHECK(vlm_log_get_level() == saved);
}

int main(void) {
    RUN(test_errors);
    RUN(test_try);
    RUN(test_alloc);
    RUN(test_injection);
    RUN(test_strbuf);
    RUN(test_clock);
    RUN(test_cpu);
    RUN(test_memory_probes);
    RUN(test_log_level);
    return test_summary();
}
