/* --compare-devices and --compare-quantization: the timestamped result files of each side and the
 * printed side-by-side comparison. The runs themselves are ordinary vlm_bench_measure calls. */
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "bench/bench.h"

void vlm_bench_file_timestamp(char *out, size_t cap) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(out, cap, "%Y%m%d_%H%M%S", &tm);
}

vlm_status vlm_bench_comparison_path(char *out, size_t cap, const char *dir, const char *side, const char *stamp) {
    char name[256];
    snprintf(name, sizeof name, "benchmark_%s_%s.json", side, stamp);
    if (!dir || !dir[0] || !strcmp(dir, ".")) {
        if (strlen(name) >= cap) return vlm_err(VLM_ERR_INVALID, "%s: path too long", name);
        snprintf(out, cap, "%s", name);
        return VLM_OK;
    }
    return vlm_path_join(out, cap, dir, name);
}

vlm_status vlm_bench_write_side(const vlm_bench_results *r, const char *dir, const char *side, const char *stamp,
                                int csv, int *written, char *path_out, size_t path_cap) {
    *written = 0;
    if (path_cap) path_out[0] = '\0';
    if (vlm_bench_n_ran(r) == 0) return VLM_OK;
    char path[VLM_PATH_MAX];
    VLM_TRY(vlm_bench_comparison_path(path, sizeof path, dir, side, stamp));
    VLM_TRY(vlm_bench_write_json(r, path));
    if (csv) {
        char cpath[VLM_PATH_MAX];
        vlm_bench_csv_path(path, cpath, sizeof cpath);
        VLM_TRY(vlm_bench_write_csv(r, cpath));
    }
    *written = 1;
    if (path_cap) snprintf(path_out, path_cap, "%s", path);
    return VLM_OK;
}

static const vlm_bench_mode_result *find_mode(const vlm_bench_results *r, vlm_mode mode) {
    for (int k = 0; k < r->n_modes; k++)
        if (r->overall[k].mode == mode) return &r->overall[k];
    return NULL;
}

static int ran(const vlm_bench_mode_result *m) { return m && m->outcome == VLM_BENCH_RAN && m->n_runs > 0; }

/* The memory that matters on the side's device: peak device memory on cuda, peak RSS on cpu. */
static double peak_mem(const vlm_bench_results *r, const vlm_bench_mode_result *m) {
    return m->stats[r->device == VLM_DEV_CUDA ? VLM_BM_GPU_PEAK_MEM : VLM_BM_CPU_PEAK_MEM].mean;
}

static double model_mb(const vlm_bench_mode_result *m) {
    return m->stats[VLM_BM_VISION_SIZE].mean + m->stats[VLM_BM_LANGUAGE_SIZE].mean + m->stats[VLM_BM_ONNX_SIZE].mean;
}

/* "cuda: skipped: <reason>" (one reason for every mode), else each mode with its own. */
static void print_side_skipped(FILE *f, const char *name, const vlm_bench_results *r) {
    int same = 1;
    for (int k = 1; k < r->n_modes; k++) same &= !strcmp(r->overall[k].reason, r->overall[0].reason);
    if (same && r->n_modes) {
        fprintf(f, "%s: skipped: %s\n", name, r->overall[0].reason);
        return;
    }
    fprintf(f, "%s: nothing ran\n", name);
    for (int k = 0; k < r->n_modes; k++)
        fprintf(f, "  %-15s: skipped: %s\n", vlm_mode_name(r->overall[k].mode), r->overall[k].reason);
}

void vlm_bench_print_comparison(FILE *f, const char *title, const char *name_a, const vlm_bench_results *a,
                                const char *name_b, const vlm_bench_results *b) {
    static const char rule[] = "======================================================================";
    fprintf(f, "\n%s\n%s\n%s\n", rule, title, rule);
    const vlm_bench_results *side[2] = {a, b};
    const char *name[2] = {name_a, name_b};
    for (int s = 0; s < 2; s++)
        if (vlm_bench_n_ran(side[s]) == 0) print_side_skipped(f, name[s], side[s]);
    char h[7][48];
    snprintf(h[0], sizeof h[0], "%s (s)", name_a);
    snprintf(h[1], sizeof h[1], "%s (s)", name_b);
    snprintf(h[2], sizeof h[2], "%s tok/s", name_a);
    snprintf(h[3], sizeof h[3], "%s tok/s", name_b);
    snprintf(h[4], sizeof h[4], "%s MB", name_a);
    snprintf(h[5], sizeof h[5], "%s MB", name_b);
    snprintf(h[6], sizeof h[6], "Model MB (%s / %s)", name_a, name_b);
    fprintf(f, "\n%-15s %-20s %-20s %-9s %-20s %-20s %-20s %-20s %s\n", "Mode", h[0], h[1], "Speedup", h[2], h[3], h[4],
            h[5], h[6]);
    for (int k = 0; k < a->n_modes; k++) {
        vlm_mode mode = a->overall[k].mode;
        const vlm_bench_mode_result *ma = &a->overall[k], *mb = find_mode(b, mode);
        if (!ran(ma) || !ran(mb)) {
            const vlm_bench_mode_result *miss = !ran(ma) ? ma : mb;
            fprintf(f, "%-15s skipped on %s: %s\n", vlm_mode_name(mode), !ran(ma) ? name_a : name_b,
                    miss ? miss->reason : "not run");
            continue;
        }
        double da = ma->stats[VLM_BM_DURATION].mean, db = mb->stats[VLM_BM_DURATION].mean;
        char speed[32];
        snprintf(speed, sizeof speed, "%.2fx", db > 0 ? da / db : 0.0);
        fprintf(f, "%-15s %-20.3f %-20.3f %-9s %-20.2f %-20.2f %-20.1f %-20.1f %.1f / %.1f\n", vlm_mode_name(mode), da,
                db, speed, ma->stats[VLM_BM_TOKENS_PER_SEC].mean, mb->stats[VLM_BM_TOKENS_PER_SEC].mean,
                peak_mem(a, ma), peak_mem(b, mb), model_mb(ma), model_mb(mb));
    }
    fprintf(f,
            "\nSpeedup = %s duration / %s duration (above 1: %s is faster). MB: peak memory of each side "
            "(device memory on cuda, resident memory on cpu).\n",
            name_a, name_b, name_b);
}

vlm_status vlm_bench_compare(const vlm_bench_config *base, vlm_bench_comparison kind, const char *dir, int csv,
                             FILE *out, int *any_ran) {
    *any_ran = 0;
    vlm_bench_config c[2] = {*base, *base};
    const char *side[2], *title;
    int skip_device[2] = {0, 0};
    if (kind == VLM_BENCH_COMPARE_DEVICES) {
        /* cpu is the baseline; the cuda side is skipped with the reason when no GPU is usable */
        side[0] = "cpu", side[1] = "cuda", title = "DEVICE COMPARISON (cpu vs cuda)";
        c[0].device = VLM_DEV_CPU;
        c[1].device = VLM_DEV_CUDA;
        skip_device[1] = 1;
    } else {
        side[0] = "non_quantized", side[1] = "quantized", title = "QUANTIZATION COMPARISON (non-quantized vs 4-bit)";
        c[0].quantize = 0;
        c[1].quantize = 1;
    }
    vlm_bench_results r[2];
    memset(r, 0, sizeof r);
    vlm_status s = VLM_OK;
    /* devices: the cuda side first, so a skipped GPU is reported before the long cpu runs */
    for (int i = kind == VLM_BENCH_COMPARE_DEVICES ? 1 : 0, n = 0; s == VLM_OK && n < 2; n++, i = 1 - i) {
        s = vlm_bench_measure(&c[i], skip_device[i], &r[i]);
        if (s != VLM_OK) vlm_err_ctx(s, "%s side", side[i]);
    }
    char stamp[32];
    vlm_bench_file_timestamp(stamp, sizeof stamp);
    for (int i = 0; s == VLM_OK && i < 2; i++) {
        fprintf(out, "\n######## %s ########\n", side[i]);
        if (vlm_bench_n_ran(&r[i])) vlm_bench_print_report(out, &r[i]);
        else fprintf(out, "nothing ran on this side (the reason is in the comparison below)\n");
    }
    if (s == VLM_OK) vlm_bench_print_comparison(out, title, side[0], &r[0], side[1], &r[1]);
    for (int i = 0; s == VLM_OK && i < 2; i++) {
        int written;
        char path[VLM_PATH_MAX];
        s = vlm_bench_write_side(&r[i], dir, side[i], stamp, csv, &written, path, sizeof path);
        if (written) {
            *any_ran = 1;
            VLM_LOG_I("bench: wrote %s", path);
        } else if (s == VLM_OK) {
            VLM_LOG_W("bench: %s side: nothing ran, no file written", side[i]);
        }
    }
    vlm_bench_results_free(&r[0]);
    vlm_bench_results_free(&r[1]);
    return s;
}
