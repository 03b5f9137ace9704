/* Benchmark statistics on known values: mean, population std (numpy's default, ddof 0), min, max,
 * median of odd and even counts, and numpy's pairwise summation bit for bit (expected numbers were
 * computed with numpy 1.24: np.mean, np.std, np.median). */
#include <string.h>

#include "bench/bench.h"
#include "harness.h"

static vlm_bench_stats stats_of(const double *v, int n) {
    double scratch[256];
    vlm_bench_stats s;
    vlm_bench_stats_compute(v, n, scratch, &s);
    return s;
}

static void test_even_count(void) {
    const double v[] = {4, 1, 3, 2}; /* unsorted on purpose */
    vlm_bench_stats s = stats_of(v, 4);
    CHECK(s.mean == 2.5);
    CHECK(s.std == 1.118033988749895); /* np.std([1,2,3,4]) = sqrt(1.25) */
    CHECK(s.min == 1 && s.max == 4);
    CHECK(s.median == 2.5);        /* mean of the two middle values */
    CHECK(v[0] == 4 && v[1] == 1); /* the input is not reordered */
}

static void test_odd_count(void) {
    const double v[] = {3, 1, 2};
    vlm_bench_stats s = stats_of(v, 3);
    CHECK(s.mean == 2);
    CHECK(s.std == 0.816496580927726); /* sqrt(2/3): population, not sample (which would be 1) */
    CHECK(s.median == 2);
    const double w[] = {2, 4, 4, 4, 5, 5, 7, 9, 100};
    s = stats_of(w, 9);
    CHECK(s.median == 5);
    CHECK(s.min == 2 && s.max == 100);
}

static void test_classic(void) {
    const double v[] = {2, 4, 4, 4, 5, 5, 7, 9};
    vlm_bench_stats s = stats_of(v, 8);
    CHECK(s.mean == 5);
    CHECK(s.std == 2);
    CHECK(s.median == 4.5);
}

static void test_single_and_constant(void) {
    const double one[] = {1.25};
    vlm_bench_stats s = stats_of(one, 1);
    CHECK(s.mean == 1.25 && s.std == 0 && s.min == 1.25 && s.max == 1.25 && s.median == 1.25);
    const double c[] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
    s = stats_of(c, 7);
    CHECK(s.median == 0.1 && s.min == 0.1 && s.max == 0.1);
    CHECK(fabs(s.mean - 0.1) < 1e-16);
}

static void test_negative(void) {
    /* cpu_memory_delta can be negative (memory returned during the run) */
    const double v[] = {-3.5, 1.5, -0.5, 2.5};
    vlm_bench_stats s = stats_of(v, 4);
    CHECK(s.mean == 0);
    CHECK(s.min == -3.5 && s.max == 2.5);
    CHECK(s.median == 0.5);
    CHECK(fabs(s.std - sqrt((12.25 + 2.25 + 0.25 + 6.25) / 4)) < 1e-15);
}

/* Values where a plain left-to-right sum differs from numpy's pairwise sum in the last bit: the
 * statistics must be numpy's, so a reader recomputing from the JSON gets the same numbers. */
static void fill(double *v, int n) {
    for (int i = 0; i < n; i++) v[i] = ((i * 7919 % 1009) / 97.0) * (1 + 1 * 1e-3) + 1e-7 * i;
}

static void test_numpy_bit_exact(void) {
    double v[150];
    fill(v, 20);
    vlm_bench_stats s = stats_of(v, 20);
    CHECK_MSG(s.mean == 4.784161774742268, "mean %.17g", s.mean);
    CHECK_MSG(s.std == 3.011770124581037, "std %.17g", s.std);
    CHECK(s.median == 4.716052896391752);
    CHECK(s.min == 0.0 && s.max == 9.772650184536081);
    double naive = 0;
    for (int i = 0; i < 20; i++) naive += v[i];
    CHECK(naive / 20 != s.mean); /* the case really tells the two sums apart */

    fill(v, 150); /* above 128 values: numpy splits the sum in halves */
    s = stats_of(v, 150);
    CHECK_MSG(s.mean == 5.239262089175257, "mean %.17g", s.mean);
    CHECK_MSG(s.std == 3.0062061590033125, "std %.17g", s.std);
    CHECK(s.median == 5.273316528350515);
    CHECK(s.max == 10.371188867010309);
}

static void test_pairwise_sum(void) {
    double v[300];
    for (int i = 0; i < 300; i++) v[i] = 1.0;
    for (int n = 1; n <= 300; n++) CHECK(vlm_bench_pairwise_sum(v, n) == n);
    CHECK(vlm_bench_pairwise_sum(v, 0) == 0);
}

static void test_metric_table(void) {
    /* every metric has a JSON key and a console label; the spec's keys are present */
    const char *spec_keys[] = {"duration",
                               "tokens_per_sec",
                               "tokens_generated",
                               "vision_inference_time",
                               "cpu_memory_delta",
                               "gpu_memory_delta",
                               "gpu_peak_memory",
                               "vision_model_size",
                               "language_model_size",
                               "onnx_model_size",
                               "prefill_tokens_per_sec",
                               "decode_tokens_per_sec",
                               "time_to_first_token",
                               "preprocess_time",
                               "cpu_peak_memory"};
    for (size_t i = 0; i < sizeof spec_keys / sizeof spec_keys[0]; i++) {
        int found = 0;
        for (int k = 0; k < VLM_BM_COUNT; k++) found += !strcmp(vlm_bench_metrics[k].key, spec_keys[i]);
        CHECK_MSG(found == 1, "%s", spec_keys[i]);
    }
    for (int k = 0; k < VLM_BM_COUNT; k++) {
        CHECK(vlm_bench_metrics[k].key && vlm_bench_metrics[k].label);
        CHECK(strlen(vlm_bench_metrics[k].label) <= 25); /* the console column */
    }
}

int main(void) {
    RUN(test_even_count);
    RUN(test_odd_count);
    RUN(test_classic);
    RUN(test_single_and_constant);
    RUN(test_negative);
    RUN(test_numpy_bit_exact);
    RUN(test_pairwise_sum);
    RUN(test_metric_table);
    return test_summary();
}
