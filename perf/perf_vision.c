/* Vision encoder speed on a real-size checkpoint (default: the synthetic Qwen2.5-VL-3B at
 * /work/models/q25-3b): time to encode a 448x448 image (grid 1x32x32) and a 1280x720 one
 * (smart_resize -> 728x1288, grid 1x52x92), achieved GFLOP/s (every matmul and attention product
 * counted) and peak RSS.
 *
 * Baselines measured in the same run, with the same weights and shapes:
 *   gemm  - the encoder's matmuls alone (first --base-blocks blocks, scaled to the depth, plus
 *           patch embedding and merger);
 *   attn  - its attention calls alone (one window block and one full block, scaled);
 * so "other" = encoder - gemm - attn is what the encoder adds around the kernels (norms, rope,
 * residual adds, activations, gathers): the measure of wasted work.
 *
 *   perf_vision [--model DIR] [--only 448|720] [--reps N] [--base-blocks N] [--threads N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/memory.h"
#include "base/timer.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "model/vision_layout.h"
#include "model/vision_model.h"
#include "model/weights.h"

typedef struct {
    vlm_model_config cfg;
    vlm_safetensors *st;
    vlm_vision_weights vw;
    vlm_text_weights tw;
    vlm_backend *be;
    vlm_vision_model *m;
} bench_model;

static float *random_rows(size_t n, uint64_t seed) {
    float *p = malloc(n * sizeof(float));
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (float)((seed >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f; /* [-1, 1) */
    }
    return p;
}

/* The matmuls of the encoder on grid g, blocks [0, nb), timed; returns seconds scaled to depth. */
static double time_gemms(bench_model *b, int N, int nb, double *flops) {
    const vlm_vision_config *v = &b->cfg.vision;
    vlm_backend *be = b->be;
    int W = v->width, F = v->mlp_hidden, M = N / 4, K = vlm_vision_patch_dim(v);
    float *x = random_rows((size_t)N * (K > 3 * W ? K : 3 * W), 1), *y = malloc(sizeof(float) * (size_t)N * 2 * F);
    float *big = malloc(sizeof(float) * (size_t)N * (3 * W > 2 * F ? 3 * W : 2 * F));
    /* zero biases: the encoder's products carry one, so these do too */
    float *zb = calloc((size_t)(4 * W > 3 * W + F + v->out_hidden ? 4 * W : 3 * W + F + v->out_hidden), sizeof(float));
    if (!x || !y || !big || !zb) return -1;
    double f = 0, t0 = vlm_now();
    vlm_matmul(be, y, x, &b->vw.patch_embed, NULL, N);
    f += 2.0 * N * K * W;
    double t_fixed = vlm_now() - t0;
    t0 = vlm_now();
    for (int i = 0; i < nb; i++) {
        const vlm_vision_block_weights *B = &b->vw.blocks[i];
        vlm_matmul(be, big, x, &B->qkv_w, zb, N);
        vlm_matmul(be, y, x, &B->proj_w, zb, N);
        vlm_matmul(be, big, x, &B->gate_w, zb, N);
        vlm_matmul(be, big + (size_t)N * F, x, &B->up_w, zb, N);
        vlm_matmul(be, y, big, &B->down_w, zb, N);
    }
    double t_blocks = (vlm_now() - t0) * v->depth / nb;
    f += 2.0 * N * v->depth * ((double)W * 3 * W + (double)W * W + 3.0 * W * F);
    t0 = vlm_now();
    vlm_matmul(be, big, x, &b->vw.merger_fc1_w, zb, M);
    vlm_matmul(be, y, big, &b->vw.merger_fc2_w, zb, M);
    t_fixed += vlm_now() - t0;
    f += 2.0 * M * 4 * W * 4 * W + 2.0 * M * 4 * W * v->out_hidden;
    free(x), free(y), free(big), free(zb);
    *flops = f;
    return t_fixed + t_blocks;
}

/* One window-attention call and one full-attention call on random q/k/v, scaled to the depth. */
static double time_attention(bench_model *b, const vlm_grid_thw *g) {
    const vlm_vision_config *v = &b->cfg.vision;
    vlm_vision_layout l;
    if (vlm_vision_layout_build(v, 1, g, 1, &l) != VLM_OK) return -1;
    int N = l.n_patches, W = v->width;
    float *qkv = random_rows((size_t)N * 3 * W, 2), *o = malloc(sizeof(float) * (size_t)N * W);
    if (!qkv || !o) return -1;
    vlm_attn_params p = {.n_q = N,
                         .n_kv = N,
                         .n_heads = v->n_heads,
                         .n_kv_heads = v->n_heads,
                         .head_dim = v->head_dim,
                         .q_stride = 3 * W,
                         .kv_stride = 3 * W,
                         .out_stride = W,
                         .scale = 0.1f};
    p.segments = l.window_segments, p.n_segments = l.n_windows;
    double t0 = vlm_now();
    vlm_attention(b->be, o, qkv, qkv + W, qkv + 2 * W, &p);
    double tw = vlm_now() - t0;
    p.segments = l.full_segments, p.n_segments = l.n_full;
    t0 = vlm_now();
    vlm_attention(b->be, o, qkv, qkv + W, qkv + 2 * W, &p);
    double tf = vlm_now() - t0;
    int n_full = 0;
    for (int i = 0; i < v->depth; i++) n_full += vlm_vision_block_is_full(v, b->cfg.family, i);
    free(qkv), free(o);
    vlm_vision_layout_free(&l);
    return tw * (v->depth - n_full) + tf * n_full;
}

static int bench_grid(bench_model *b, const char *label, int gh, int gw, int reps, int base_blocks) {
    vlm_grid_thw g[1] = {{1, gh, gw}};
    int N = gh * gw, M = N / 4, D = b->cfg.vision.out_hidden;
    float *px = random_rows((size_t)N * vlm_vision_patch_dim(&b->cfg.vision), 7),
          *out = malloc(sizeof(float) * (size_t)M * D);
    if (!px || !out) return 1;
    uint64_t need = vlm_vision_activation_bytes(&b->cfg, g, 1, 0);
    double flops = vlm_vision_flops(&b->cfg, g, 1);
    vlm_reset_peak_rss();
    uint64_t rss0 = vlm_rss_bytes();
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = vlm_now();
        if (vlm_vision_encode(b->m, px, N, g, 1, out, 1, NULL) != VLM_OK) {
            fprintf(stderr, "encode: %s\n", vlm_last_error());
            return 1;
        }
        double t = vlm_now() - t0;
        if (t < best) best = t;
    }
    uint64_t peak = vlm_peak_rss_bytes();
    vlm_vision_trim(b->m);
    double gemm_flops = 0, t_gemm = time_gemms(b, N, base_blocks, &gemm_flops);
    double t_attn = time_attention(b, g);
    double mib = 1024.0 * 1024.0;
    printf("%-9s grid 1x%dx%d  N=%d  %.1f GFLOP  encode %.2f s  %.1f GFLOP/s\n", label, gh, gw, N, flops / 1e9, best,
           flops / best / 1e9);
    printf("          baseline (same run): matmuls alone %.2f s (%.1f GFLOP/s), attention alone %.2f s; "
           "other %.2f s (%.1f%% of encode)\n",
           t_gemm, gemm_flops / t_gemm / 1e9, t_attn, best - t_gemm - t_attn, 100.0 * (best - t_gemm - t_attn) / best);
    printf("          activations (estimate) %.1f MiB; RSS before %.1f MiB, peak %.1f MiB\n", need / mib, rss0 / mib,
           peak / mib);
    free(px), free(out);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = "/work/models/q25-3b", *only = NULL;
    int reps = 1, base_blocks = 4;
    vlm_backend_options bo = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--base-blocks") && i + 1 < argc) base_blocks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) bo.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) bo.bf16 = !strcmp(argv[++i], "bf16");
        else {
            fprintf(stderr,
                    "usage: %s [--model DIR] [--only 448|720] [--reps N] [--base-blocks N] [--threads N] [--precision "
                    "f32|bf16]\n",
                    argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear as each measurement ends */
    bench_model b = {0};
    vlm_status s = vlm_config_load(dir, &b.cfg);
    if (s == VLM_OK) s = vlm_st_open(dir, &b.st);
    if (s == VLM_OK) s = vlm_bind_weights(b.st, &b.cfg, 1, 0, &b.vw, &b.tw);
    if (s == VLM_OK) s = vlm_cpu_backend_create(&bo, &b.be);
    if (s == VLM_OK) s = vlm_vision_create(&b.cfg, &b.vw, b.be, &b.m);
    if (s != VLM_OK) {
        fprintf(stderr, "perf_vision: %s\n", vlm_last_error());
        return 1;
    }
    if (reps < 1) reps = 1;
    if (base_blocks < 1 || base_blocks > b.cfg.vision.depth) base_blocks = b.cfg.vision.depth;
    printf("vision encoder %s (%s, width %d, depth %d), CPU %s, %d threads, f32 activations, %s weights\n", dir,
           vlm_family_name(b.cfg.family), b.cfg.vision.width, b.cfg.vision.depth, b.be->device_name, b.be->threads,
           vlm_dtype_name(b.vw.blocks[0].qkv_w.dtype));
    /* warm-up: a small image touches every weight once (page cache -> resident) */
    vlm_grid_thw wg[1] = {{1, 8, 8}};
    float *wp = random_rows(64 * (size_t)vlm_vision_patch_dim(&b.cfg.vision), 3),
          *wo = malloc(sizeof(float) * 16 * (size_t)b.cfg.vision.out_hidden);
    double t0 = vlm_now();
    s = vlm_vision_encode(b.m, wp, 64, wg, 1, wo, 1, NULL);
    printf("warm-up 1x8x8: %.2f s\n", vlm_now() - t0);
    free(wp), free(wo);
    int rc = s != VLM_OK;
    if (!rc && (!only || !strcmp(only, "448"))) rc |= bench_grid(&b, "448x448", 32, 32, reps, base_blocks);
    if (!rc && (!only || !strcmp(only, "720"))) rc |= bench_grid(&b, "1280x720", 52, 92, reps, base_blocks);
    vlm_vision_free(b.m);
    vlm_backend_destroy(b.be);
    vlm_vision_weights_free(&b.vw);
    vlm_text_weights_free(&b.tw);
    vlm_st_close(b.st);
    return rc;
}
