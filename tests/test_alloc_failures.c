/* Failure paths, as SQLite tests them: a whole vlm_load + vlm_generate of a fixture model with an
 * image, in each mode (original, split_native, and run_onnx where ONNX Runtime is built), run again
 * and again with allocation N made to fail (vlm_alloc_fail_at), N = 1, 2, ... until a run completes
 * without reaching its N-th allocation. Every failure point must either return an error that says
 * what could not be allocated, or (where the engine has a fallback: kernel scratch, a cache)
 * produce the very same answer; nothing may crash, and nothing may leak (the sanitizer build runs
 * LeakSanitizer after every run). The split and ONNX artifacts are prepared once, before the loops.
 *
 * Usage: test_alloc_failures [hook|original|split_native|run_onnx]... (none: all); CTest runs one
 * test per mode, in parallel. VLM_ALLOC_FAILURE_STRIDE=k tests every k-th failure point only
 * (default 1: all of them); VLM_ALLOC_FAILURE_VERBOSE=1 names each failure a run recovered from. */
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "harness.h"
#include "vlm.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VLM_TEST_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VLM_TEST_LSAN 1
#endif
#ifdef VLM_TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

enum { MAX_IDS = 64 };

typedef struct {
    vlm_status status;
    char error[512];
    int32_t ids[MAX_IDS];
    int n_ids;
    char text[512];
    char failed_what[128]; /* the injected failure's allocation */
} outcome;

static const char *g_model, *g_image, *g_prompt;

/* The whole public-API path once: load, generate, free. */
static void run_once(vlm_mode mode, const char *out_dir, outcome *o) {
    memset(o, 0, sizeof *o);
    vlm_load_options lo;
    vlm_load_options_init(&lo);
    lo.model_id = g_model;
    lo.mode = mode;
    lo.device = VLM_DEV_CPU;
    lo.threads = 2;
    lo.output_dir = out_dir;
    vlm_model *m = NULL;
    vlm_result res = {0};
    o->status = vlm_load(&lo, &m);
    if (o->status == VLM_OK) {
        const char *images[1] = {g_image};
        vlm_request r;
        vlm_request_init(&r);
        r.images = images;
        r.n_images = 1;
        r.text = g_prompt;
        r.sampling.greedy = 1;
        r.sampling.max_tokens = 8;
        o->status = vlm_generate(m, &r, &res);
    }
    if (o->status != VLM_OK || vlm_alloc_failed()) snprintf(o->error, sizeof o->error, "%s", vlm_last_error());
    if (o->status == VLM_OK) {
        o->n_ids = res.n_generated < MAX_IDS ? res.n_generated : MAX_IDS;
        memcpy(o->ids, res.generated_ids, (size_t)o->n_ids * sizeof *o->ids);
        snprintf(o->text, sizeof o->text, "%s", res.text ? res.text : "");
    }
    vlm_result_free(&res);
    vlm_model_free(m);
    snprintf(o->failed_what, sizeof o->failed_what, "%s", vlm_alloc_failure_what());
}

static int same_answer(const outcome *a, const outcome *b) {
    return a->n_ids == b->n_ids && !memcmp(a->ids, b->ids, (size_t)a->n_ids * sizeof *a->ids) &&
        !strcmp(a->text, b->text);
}

static void loop_mode(vlm_mode mode) {
    const char *name = vlm_mode_name(mode);
    char out_dir[1024];
    snprintf(out_dir, sizeof out_dir, "%s", test_tmp(name));
    /* the reference answer, and the artifacts this mode needs, made once */
    outcome ref;
    vlm_alloc_fail_at(0);
    run_once(mode, out_dir, &ref);
    if (mode == VLM_MODE_RUN_ONNX && ref.status == VLM_ERR_UNAVAILABLE) {
        fprintf(stderr, "  %s: skipped (%s)\n", name, ref.error);
        return;
    }
    CHECK_MSG(ref.status == VLM_OK, "%s: the run without injected failures: %s", name, ref.error);
    if (ref.status != VLM_OK) return;
    vlm_alloc_fail_at(0);
    run_once(mode, out_dir, &ref); /* now with the artifacts in place: the count the loop covers */
    uint64_t total = vlm_alloc_count();
    CHECK(ref.status == VLM_OK && total > 0);

    const char *st = getenv("VLM_ALLOC_FAILURE_STRIDE");
    uint64_t stride = st && atoi(st) > 0 ? (uint64_t)atoi(st) : 1;
    uint64_t points = 0, errors = 0, recovered = 0, n;
    int finished = 0;
    for (n = 1; n <= 4 * total + 100 && !finished; n += stride) {
        outcome o;
        vlm_alloc_fail_at(n);
        run_once(mode, out_dir, &o);
        int hit = vlm_alloc_failed();
        vlm_alloc_fail_at(0);
#ifdef VLM_TEST_LSAN
        CHECK_MSG(__lsan_do_recoverable_leak_check() == 0, "%s: allocation %llu failed: leaked (report above)", name,
                  (unsigned long long)n);
#endif
        if (!hit) { /* the run made fewer than n allocations: every failure point was visited */
            CHECK_MSG(o.status == VLM_OK && same_answer(&o, &ref), "%s: the run after the loop: %s", name, o.error);
            finished = 1;
            continue;
        }
        points++;
        if (o.status != VLM_OK) {
            errors++;
            /* the allocator names what it could not allocate; callers may only add context */
            CHECK_MSG(strstr(o.error, "out of memory") != NULL || strstr(o.error, "allocation") != NULL,
                      "%s: allocation %llu failed: status %s, message \"%s\" does not say out of memory", name,
                      (unsigned long long)n, vlm_status_name(o.status), o.error);
            CHECK_MSG(o.status == VLM_ERR_NOMEM, "%s: allocation %llu failed: status %s (\"%s\"), not out of memory",
                      name, (unsigned long long)n, vlm_status_name(o.status), o.error);
        } else {
            recovered++;
            if (getenv("VLM_ALLOC_FAILURE_VERBOSE"))
                fprintf(stderr, "  %s: allocation %llu (%s) failed and the run went on\n", name, (unsigned long long)n,
                        o.failed_what);
            CHECK_MSG(same_answer(&o, &ref), "%s: allocation %llu failed, the run went on and answered differently",
                      name, (unsigned long long)n);
        }
    }
    /* a stride may step over the end; otherwise the loop must have ended with a clean run */
    CHECK_MSG(finished || stride > 1, "%s: still failing allocations after %llu", name, (unsigned long long)n);
    fprintf(stderr,
            "  %s: %llu allocations per run; %llu failure points tested (every %llu): %llu clean errors, %llu "
            "recovered with the same answer\n",
            name, (unsigned long long)total, (unsigned long long)points, (unsigned long long)stride,
            (unsigned long long)errors, (unsigned long long)recovered);
}

static void test_original(void) { loop_mode(VLM_MODE_ORIGINAL); }
static void test_split_native(void) { loop_mode(VLM_MODE_SPLIT_NATIVE); }
static void test_run_onnx(void) { loop_mode(VLM_MODE_RUN_ONNX); }

/* The hook itself: the n-th allocation fails once, with a message naming it; counting restarts. */
static void test_hook(void) {
    vlm_alloc_fail_at(2);
    void *a = vlm_alloc(16, "first");
    void *b = vlm_alloc(16, "the second block");
    void *c = vlm_alloc(16, "third");
    CHECK(a && !b && c && vlm_alloc_failed() && vlm_alloc_count() == 3);
    CHECK(strstr(vlm_last_error(), "out of memory allocating 16 bytes for the second block") != NULL);
    vlm_free(a);
    vlm_free(c);
    vlm_alloc_fail_at(1);
    char *s = vlm_strdup("x", "a copy");
    CHECK(!s && vlm_alloc_failed());
    void *r = vlm_realloc(NULL, 8, "grown");
    CHECK(r != NULL);
    vlm_alloc_fail_at(1);
    void *r2 = vlm_realloc(r, 4096, "grown more");
    CHECK(r2 == NULL && strstr(vlm_last_error(), "grown more")); /* r is still valid */
    vlm_free(r);
    vlm_alloc_fail_at(0);
    CHECK(vlm_alloc_count() == 0 && !vlm_alloc_failed());
}

static int wanted(int argc, char **argv, const char *name) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    g_model = test_fixture("models/tiny-qwen2_5-vl");
    g_image = test_fixture("cases/q25_tiny_image/tiny_20x30.png");
    g_prompt = "What colour is this?";
    if (wanted(argc, argv, "hook")) RUN(test_hook);
    if (wanted(argc, argv, "original")) RUN(test_original);
    if (wanted(argc, argv, "split_native")) RUN(test_split_native);
    if (wanted(argc, argv, "run_onnx")) RUN(test_run_onnx);
    return test_summary();
}
