/* Console output of the benchmark (the spec's shape): configuration header, BENCHMARK RESULTS
 * SUMMARY table, fastest mode, relative performance, throughput comparison, skipped modes and the
 * targets table. Reads results only. */
#include <math.h>
#include <string.h>

#include "bench/bench.h"

static const char k_rule[] = "======================================================================";
static const char k_dash[] = "--------------------------------------------------------------------------------------";

static void print_image_line(FILE *f, const char *label, const vlm_bench_image_result *im) {
    if (im->width > 0) fprintf(f, "%-14s%s (%dx%d)\n", label, im->path, im->width, im->height);
    else fprintf(f, "%-14s%s (size unknown)\n", label, im->path);
}

void vlm_bench_print_config(FILE *f, const vlm_bench_results *r) {
    fprintf(f, "%s\nBENCHMARK CONFIGURATION\n%s\n", k_rule, k_rule);
    if (r->model_path && strcmp(r->model_path, r->model_id) != 0)
        fprintf(f, "%-14s%s (%s)\n", "Model:", r->model_id, r->model_path);
    else fprintf(f, "%-14s%s\n", "Model:", r->model_id);
    fprintf(f, "%-14s%s (%s)\n", "Device:", vlm_device_name(r->device), r->device_name[0] ? r->device_name : "unknown");
    if (r->n_images == 1) print_image_line(f, "Image:", &r->images[0]);
    else {
        fprintf(f, "%-14s%d\n", "Images:", r->n_images);
        for (int i = 0; i < r->n_images; i++) print_image_line(f, "", &r->images[i]);
    }
    fprintf(f, "%-14s%s\n", "Prompt:", r->prompt);
    fprintf(f, "%-14s%d per mode%s\n", "Runs:", r->runs, r->warmup ? " (+1 warm-up)" : " (no warm-up)");
    fprintf(f, "%-14s%d (greedy; %s)\n", "Max tokens:", r->max_tokens,
            r->ignore_eos ? "exactly this many, --ignore-eos" : "stops at end of sequence");
    fprintf(f, "%-14s%s\n", "Quantization:", r->quantize ? "4-bit" : "none");
    fprintf(f, "%-14s%s\n", "Precision:", vlm_precision_name(r->precision));
    fprintf(f, "%-14s", "Modes:");
    for (int k = 0; k < r->n_modes; k++) fprintf(f, "%s%s", k ? ", " : "", vlm_mode_name(r->modes[k]));
    fprintf(f, "\n");
    if (r->threads > 0) fprintf(f, "%-14s%d\n", "Threads:", r->threads);
    else fprintf(f, "%-14s%s\n", "Threads:", "all cores");
}

int vlm_bench_rank(const vlm_bench_mode_result *modes, int n, vlm_bench_metric k, int descending, int *order) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (modes[i].outcome == VLM_BENCH_RAN && modes[i].n_runs > 0) order[m++] = i;
    /* insertion sort: stable, at most three modes */
    for (int i = 1; i < m; i++) {
        int x = order[i], j = i;
        double v = modes[x].stats[k].mean;
        while (j > 0) {
            double u = modes[order[j - 1]].stats[k].mean;
            if (descending ? !(v > u) : !(v < u)) break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
    return m;
}

static void print_table(FILE *f, const vlm_bench_mode_result *modes, int n) {
    fprintf(f, "%-15s %-25s %-12s %-12s %-12s %s\n", "Mode", "Metric", "Mean", "Std", "Min", "Max");
    fprintf(f, "%s\n", k_dash);
    for (int i = 0; i < n; i++) {
        const vlm_bench_mode_result *m = &modes[i];
        if (m->outcome != VLM_BENCH_RAN || m->n_runs == 0) continue;
        for (int k = 0; k < VLM_BM_COUNT; k++) {
            const vlm_bench_stats *s = &m->stats[k];
            int d = vlm_bench_metrics[k].decimals;
            fprintf(f, "%-15s %-25s %-12.*f %-12.*f %-12.*f %.*f\n", vlm_mode_name(m->mode), vlm_bench_metrics[k].label,
                    d, s->mean, d, s->std, d, s->min, d, s->max);
        }
    }
}

static void print_comparisons(FILE *f, const vlm_bench_mode_result *modes, int n) {
    int order[VLM_BENCH_MAX_MODES];
    int m = vlm_bench_rank(modes, n, VLM_BM_DURATION, 0, order);
    if (m < 2) return;
    const vlm_bench_mode_result *fast = &modes[order[0]];
    double best = fast->stats[VLM_BM_DURATION].mean;
    fprintf(f, "\nFastest Mode: %s (%.3fs)\n", vlm_mode_name(fast->mode), best);
    fprintf(f, "\nRelative Performance (vs %s):\n", vlm_mode_name(fast->mode));
    for (int i = 0; i < m; i++) {
        double d = modes[order[i]].stats[VLM_BM_DURATION].mean;
        double ratio = d > 0 ? best / d : 0.0, slower = best > 0 ? (d / best - 1.0) * 100.0 : 0.0;
        fprintf(f, "  %-15s: %.3fs (%.2fx, %+.1f%%)\n", vlm_mode_name(modes[order[i]].mode), d, ratio, slower);
    }
    m = vlm_bench_rank(modes, n, VLM_BM_TOKENS_PER_SEC, 1, order);
    fprintf(f, "\nThroughput Comparison:\n");
    for (int i = 0; i < m; i++)
        fprintf(f, "  %-15s: %.2f tokens/sec\n", vlm_mode_name(modes[order[i]].mode),
                modes[order[i]].stats[VLM_BM_TOKENS_PER_SEC].mean);
}

/* Greedy decoding gives every mode the same work only when they stop at the same token. */
static void print_work_note(FILE *f, const vlm_bench_results *r, const vlm_bench_mode_result *modes) {
    int order[VLM_BENCH_MAX_MODES];
    int m = vlm_bench_rank(modes, r->n_modes, VLM_BM_TOKENS_GENERATED, 0, order);
    if (m < 2) return;
    double lo = modes[order[0]].stats[VLM_BM_TOKENS_GENERATED].mean;
    double hi = modes[order[m - 1]].stats[VLM_BM_TOKENS_GENERATED].mean;
    if (hi != lo)
        fprintf(f,
                "\nNote: the modes generated different numbers of tokens (%.1f to %.1f on average); "
                "--ignore-eos makes the work equal.\n",
                lo, hi);
}

static void print_skipped(FILE *f, const vlm_bench_mode_result *modes, int n) {
    int any = 0;
    for (int i = 0; i < n; i++) {
        if (modes[i].outcome != VLM_BENCH_SKIPPED) continue;
        if (!any++) fprintf(f, "\nSkipped modes:\n");
        fprintf(f, "  %-15s: skipped: %s\n", vlm_mode_name(modes[i].mode), modes[i].reason);
    }
}

void vlm_bench_print_summary(FILE *f, const vlm_bench_results *r, const vlm_bench_mode_result *modes,
                             const char *title) {
    fprintf(f, "\n%s\nBENCHMARK RESULTS SUMMARY%s%s\n%s\n\n", k_rule, title ? ": " : "", title ? title : "", k_rule);
    print_table(f, modes, r->n_modes);
    print_comparisons(f, modes, r->n_modes);
    print_work_note(f, r, modes);
}

/* ---- targets -------------------------------------------------------------------------------- */

const vlm_bench_target vlm_bench_targets[3] = {
    {"development (CPU)", VLM_DEV_CPU, 0, 10.0, 10.0, 2048.0, VLM_BM_CPU_PEAK_MEM},
    {"production (GPU)", VLM_DEV_CUDA, 0, 2.0, 50.0, 4096.0, VLM_BM_GPU_PEAK_MEM},
    {"optimized (GPU + ONNX vision)", VLM_DEV_CUDA, 1, 1.5, 70.0, 3072.0, VLM_BM_GPU_PEAK_MEM},
};

int vlm_bench_targets_eval(const vlm_bench_results *r, vlm_bench_target_row *rows, int cap) {
    int n = 0;
    for (int k = 0; k < r->n_modes; k++) {
        const vlm_bench_mode_result *m = &r->overall[k];
        if (m->outcome != VLM_BENCH_RAN || m->n_runs == 0) continue;
        for (int t = 0; t < 3; t++) {
            const vlm_bench_target *g = &vlm_bench_targets[t];
            if (g->device != r->device || (g->onnx_only && m->mode != VLM_MODE_RUN_ONNX) || n >= cap) continue;
            vlm_bench_target_row *w = &rows[n++];
            w->target = g;
            w->mode = m->mode;
            w->duration = m->stats[VLM_BM_DURATION].mean;
            w->tokens_per_s = m->stats[VLM_BM_TOKENS_PER_SEC].mean;
            w->memory_mb = m->stats[g->memory_metric].mean;
            w->memory_delta_mb = m->stats[g->device == VLM_DEV_CPU ? VLM_BM_CPU_MEM_DELTA : VLM_BM_GPU_MEM_DELTA].mean;
            w->duration_ok = w->duration < g->max_duration_s;
            w->throughput_ok = w->tokens_per_s > g->min_tokens_per_s;
            w->memory_ok = w->memory_mb < g->max_memory_mb;
            w->pass = w->duration_ok && w->throughput_ok && w->memory_ok;
        }
    }
    return n;
}

static const char *pf(int ok) { return ok ? "PASS" : "FAIL"; }

void vlm_bench_print_targets(FILE *f, const vlm_bench_results *r) {
    vlm_bench_target_row rows[VLM_BENCH_MAX_MODES * 3];
    int n = vlm_bench_targets_eval(r, rows, VLM_BENCH_MAX_MODES * 3);
    fprintf(f, "\n%s\nTARGETS (Qwen2.5-VL-3B class; reported as pass/fail, not promised)\n%s\n\n", k_rule, k_rule);
    if (!n) {
        fprintf(f, "No mode ran: nothing to compare with the targets.\n");
        return;
    }
    fprintf(f, "%-15s %-30s %-22s %-20s %-44s %s\n", "Mode", "Profile", "Duration", "Tokens/s", "Memory", "Result");
    for (int i = 0; i < n; i++) {
        const vlm_bench_target_row *w = &rows[i];
        char dur[64], tps[64], mem[96];
        snprintf(dur, sizeof dur, "%.3fs < %gs %s", w->duration, w->target->max_duration_s, pf(w->duration_ok));
        snprintf(tps, sizeof tps, "%.2f > %g %s", w->tokens_per_s, w->target->min_tokens_per_s, pf(w->throughput_ok));
        snprintf(mem, sizeof mem, "%s peak %.1f < %g MB %s (delta %.1f)",
                 w->target->memory_metric == VLM_BM_CPU_PEAK_MEM ? "CPU" : "GPU", w->memory_mb,
                 w->target->max_memory_mb, pf(w->memory_ok), w->memory_delta_mb);
        fprintf(f, "%-15s %-30s %-22s %-20s %-44s %s\n", vlm_mode_name(w->mode), w->target->profile, dur, tps, mem,
                pf(w->pass));
    }
    fprintf(f, "Memory: %s against the profile's limit, the delta over the run beside it (MB = 2^20 bytes).\n",
            r->device == VLM_DEV_CUDA ? "mean gpu_peak_memory" : "mean cpu_peak_memory (the process's peak RSS)");
    int dev_fail = 0;
    for (int i = 0; i < n; i++) dev_fail |= rows[i].target->device == VLM_DEV_CPU && !rows[i].pass;
    if (dev_fail)
        fprintf(f,
                "On a few CPU cores a bf16 3B model cannot reach the development profile: each decoded token "
                "reads 6.2 GB of weights, so decode is bounded by memory bandwidth (about 8 tok/s at 50 GB/s); "
                "4-bit (--quantize, 1.9 GB per token) is the configuration meant for it.\n");
}

void vlm_bench_print_report(FILE *f, const vlm_bench_results *r) {
    vlm_bench_print_config(f, r);
    if (r->n_images > 1) {
        for (int i = 0; i < r->n_images; i++) {
            char title[VLM_PATH_MAX + 64];
            const vlm_bench_image_result *im = &r->images[i];
            snprintf(title, sizeof title, "image %d/%d, %s (%dx%d)", i + 1, r->n_images, im->path, im->width,
                     im->height);
            vlm_bench_print_summary(f, r, im->modes, title);
        }
        char title[64];
        snprintf(title, sizeof title, "all %d images", r->n_images);
        vlm_bench_print_summary(f, r, r->overall, title);
    } else {
        vlm_bench_print_summary(f, r, r->overall, NULL);
    }
    print_skipped(f, r->overall, r->n_modes);
    vlm_bench_print_targets(f, r);
}
