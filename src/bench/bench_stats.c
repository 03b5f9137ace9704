/* Statistics of the benchmark, computed exactly as numpy computes them for a float64 array, so a
 * reader who recomputes them from the JSON "values" with numpy gets the same numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

const vlm_bench_metric_info vlm_bench_metrics[VLM_BM_COUNT] = {
    [VLM_BM_DURATION] = {"duration", "Duration (s)", 3},
    [VLM_BM_TOKENS_PER_SEC] = {"tokens_per_sec", "Tokens/sec", 2},
    [VLM_BM_TOKENS_GENERATED] = {"tokens_generated", "Tokens Generated", 3},
    [VLM_BM_VISION_TIME] = {"vision_inference_time", "Vision Inference (s)", 3},
    [VLM_BM_CPU_MEM_DELTA] = {"cpu_memory_delta", "CPU Mem Delta (MB)", 3},
    [VLM_BM_GPU_MEM_DELTA] = {"gpu_memory_delta", "GPU Mem Delta (MB)", 3},
    [VLM_BM_GPU_PEAK_MEM] = {"gpu_peak_memory", "GPU Peak Mem (MB)", 3},
    [VLM_BM_VISION_SIZE] = {"vision_model_size", "Vision Model (MB)", 3},
    [VLM_BM_LANGUAGE_SIZE] = {"language_model_size", "Language Model (MB)", 3},
    [VLM_BM_ONNX_SIZE] = {"onnx_model_size", "ONNX Model (MB)", 3},
    [VLM_BM_PREFILL_TPS] = {"prefill_tokens_per_sec", "Prefill Tokens/sec", 2},
    [VLM_BM_DECODE_TPS] = {"decode_tokens_per_sec", "Decode Tokens/sec", 2},
    [VLM_BM_TTFT] = {"time_to_first_token", "Time to First Token (s)", 3},
    [VLM_BM_PREPROCESS_TIME] = {"preprocess_time", "Preprocess Time (s)", 3},
    [VLM_BM_PREFILL_TIME] = {"prefill_time", "Prefill Time (s)", 3},
    [VLM_BM_DECODE_TIME] = {"decode_time", "Decode Time (s)", 3},
    [VLM_BM_CPU_PEAK_MEM] = {"cpu_peak_memory", "CPU Peak Mem (MB)", 3},
};

/* numpy's pairwise summation (umath loops_utils): a plain loop below 8 values, 8 interleaved
 * accumulators up to 128, halves (multiples of 8) above. np.sum starts from the identity 0. */
static double pairwise(const double *a, int n) {
    if (n < 8) {
        double res = -0.0;
        for (int i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

double vlm_bench_pairwise_sum(const double *v, int n) { return 0.0 + pairwise(v, n); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void vlm_bench_stats_compute(const double *v, int n, double *scratch, vlm_bench_stats *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return;
    double mean = vlm_bench_pairwise_sum(v, n) / n;
    /* numpy.var: the squared deviations from the mean, summed pairwise, over n (ddof 0) */
    for (int i = 0; i < n; i++) scratch[i] = (v[i] - mean) * (v[i] - mean);
    out->std = sqrt(vlm_bench_pairwise_sum(scratch, n) / n);
    out->mean = mean;
    memcpy(scratch, v, (size_t)n * sizeof *v);
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_double);
    out->min = scratch[0];
    out->max = scratch[n - 1];
    out->median = n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2.0;
}
