/* run_onnx vision speed: exports a checkpoint's vision tower (when the export in --export is
 * missing or stale), opens it in ONNX Runtime and times the encoder on random pixel rows for a
 * grid (default 1x32x32: a 448x448 image), reporting export, session-creation and per-image times
 * and the resident memory.
 *
 *   perf_onnx_vision --export DIR [--model DIR] [--threads N] [--grid H W] [--reps N]
 *                     [--weights stored|f32] [--external auto|always|never] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/memory.h"
#include "base/timer.h"
#include "runtime/onnx/onnx_vision.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *model = "/work/models/q25-3b", *out = NULL;
    int threads = 0, reps = 3;
    vlm_grid_thw grid = {1, 32, 32};
    vlm_onnx_export_options o;
    vlm_onnx_export_options_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--model") && more) model = argv[++i];
        else if (!strcmp(a, "--export") && more) out = argv[++i];
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && more) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--grid") && i + 2 < argc) grid.h = atoi(argv[++i]), grid.w = atoi(argv[++i]);
        else if (!strcmp(a, "--weights") && more && !vlm_onnx_weights_parse(argv[i + 1], &o.weights)) i++;
        else if (!strcmp(a, "--external") && more && !vlm_onnx_external_parse(argv[i + 1], &o.external)) i++;
        else {
            fprintf(stderr,
                    "usage: perf_onnx_vision --export DIR [--model DIR] [--threads N] [--grid H W] "
                    "[--reps N] [--weights stored|f32] [--external auto|always|never]\n");
            return 2;
        }
    }
    if (!out || reps < 1) {
        fprintf(stderr, "perf_onnx_vision: --export DIR is required\n");
        return 2;
    }
    if (threads <= 0) threads = vlm_threads();
    int64_t n = vlm_grid_patches(&grid);
    printf("model %s, grid %lldx%lldx%lld (%lld patches), %d threads, weights %s, CPU %s\n", model, (long long)grid.t,
           (long long)grid.h, (long long)grid.w, (long long)n, threads, vlm_onnx_weights_name(o.weights),
           vlm_cpu_name());

    double t0 = vlm_now();
    int exported = 0;
    if (vlm_onnx_ensure_export(model, out, &o, &exported) != VLM_OK) {
        fprintf(stderr, "perf_onnx_vision: %s\n", vlm_last_error());
        return 1;
    }
    if (exported) printf("export: %.1f s\n", vlm_now() - t0);

    uint64_t rss0 = vlm_rss_bytes();
    t0 = vlm_now();
    vlm_ort_vision *v = NULL;
    if (vlm_ort_vision_open(out, threads, VLM_DEV_CPU, &v) != VLM_OK) {
        fprintf(stderr, "perf_onnx_vision: %s\n", vlm_last_error());
        return 1;
    }
    printf("session: %.2f s, RSS +%.0f MB\n", vlm_now() - t0, (double)(vlm_rss_bytes() - rss0) / 1e6);

    const int64_t dim = vlm_ort_vision_patch_dim(v);
    float *pix = malloc(sizeof(float) * (size_t)(n * dim));
    float *emb = malloc(sizeof(float) * (size_t)(n / 4 * vlm_ort_vision_out_hidden(v)));
    double *times = calloc((size_t)reps + 1, sizeof(double));
    if (!pix || !emb || !times) return 1;
    uint64_t seed = 1;
    for (int64_t i = 0; i < n * dim; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        pix[i] = (float)((seed >> 40) & 0xffffff) / (float)(1 << 22) - 2.0f;
    }
    int status = 0;
    for (int r = 0; r <= reps && !status; r++) { /* run 0 is the warm-up */
        t0 = vlm_now();
        if (vlm_ort_vision_run(v, pix, n, (int)dim, &grid, 1, emb, n / 4) != VLM_OK) {
            fprintf(stderr, "perf_onnx_vision: %s\n", vlm_last_error());
            status = 1;
        }
        times[r] = vlm_now() - t0;
        printf("run %d: %.3f s%s\n", r, times[r], r ? "" : " (warm-up)");
    }
    if (!status) {
        qsort(times + 1, (size_t)reps, sizeof(double), cmp_double);
        printf("vision (ONNX Runtime): min %.3f s, median %.3f s over %d runs; peak RSS %.0f MB\n", times[1],
               times[1 + reps / 2], reps, (double)vlm_peak_rss_bytes() / 1e6);
    }
    free(pix);
    free(emb);
    free(times);
    vlm_ort_vision_close(v);
    return status;
}
