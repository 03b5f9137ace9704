/* Language-model speed on a real-size checkpoint (default: the synthetic Qwen2.5-VL-3B):
 * prefill tokens/s for a P-token prompt and decode tokens/s, bf16 weights and f32 activations,
 * each next to the machine limit measured in the same run: DRAM read bandwidth (decode reads every
 * weight once per token) and the f32 GEMM rate of OpenBLAS (prefill is matrix-matrix).
 *
 *   perf_text_model [--model DIR] [--prompt P] [--decode N] [--threads T] [--runs R] [--precision f32|bf16]
 *
 * The machine is shared and its bandwidth drifts: the bandwidth is measured right before and after
 * the decode run and both are printed. */
#include "perf_common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/membw.h"
#include "base/timer.h"
#include "model/text_model_impl.h"
#include "runtime/text_generate.h"

/* Bytes of weights one decode step reads: every matrix of every layer, the lm_head, the small
 * vectors (the embedding contributes one row). */
static double decode_bytes(const vlm_text_model *m) {
    double b = 0;
    for (int l = 0; l < m->cfg.text.n_layers; l++) {
        const vlm_text_layer *L = &m->layers[l];
        const vlm_tensor *w[7] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w, &L->gate_w, &L->up_w, &L->down_w};
        for (int i = 0; i < 7; i++) b += (double)w[i]->nbytes;
    }
    return b + (double)m->lm_head.nbytes;
}

/* Multiply-adds per prompt token in the matrices (the lm_head runs for one row only). */
static double prefill_flops_per_token(const vlm_text_model *m) {
    const vlm_text_config *t = &m->cfg.text;
    double D = t->hidden, Q = (double)t->n_heads * t->head_dim, KV = (double)t->n_kv_heads * t->head_dim,
           F = t->intermediate;
    return 2.0 * t->n_layers * (D * Q + 2 * D * KV + Q * D + 3 * D * F);
}

/* f32 GEMM rate of OpenBLAS on a prefill-shaped product (M rows x 2048 x 11008), GFLOP/s. */
static double sgemm_gflops(int M, int K, int N) {
    float *a = calloc((size_t)M * K, sizeof(float)), *b = calloc((size_t)N * K, sizeof(float)),
          *c = calloc((size_t)M * N, sizeof(float));
    double best = 0;
    if (a && b && c)
        for (int r = 0; r < 3; r++) {
            double t0 = vlm_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
            double g = 2.0 * M * N * K / (vlm_now() - t0) / 1e9;
            if (g > best) best = g;
        }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv) {
    bench_fair_openblas(argv);
    const char *dir = "/work/models/q25-3b";
    int prompt = 512, decode = 8, threads = 0, runs = 1, bf16 = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt")) prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) decode = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--precision")) bf16 = !strcmp(argv[i + 1], "bf16");
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (prompt < 1 || decode < 1 || runs < 1) {
        fprintf(stderr, "--prompt, --decode and --runs must be >= 1\n");
        return 2;
    }
    vlm_backend *be = NULL;
    vlm_text_model *m = NULL;
    vlm_backend_options bo = {.threads = threads, .bf16 = bf16};
    if (vlm_cpu_backend_create(&bo, &be) != VLM_OK || vlm_text_model_open(be, dir, &m) != VLM_OK) {
        fprintf(stderr, "error: %s\n", vlm_last_error());
        return 1;
    }
    const vlm_text_config *t = &m->cfg.text;
    printf("model %s: %d layers, hidden %d, %d/%d heads, MLP %d, vocab %d, weights %s\n", dir, t->n_layers, t->hidden,
           t->n_heads, t->n_kv_heads, t->intermediate, t->vocab, vlm_dtype_name(m->layers[0].q_w.dtype));
    printf("cpu %s, %d threads, %s precision, load average %.2f\n", vlm_cpu_name(), be->threads, bf16 ? "bf16" : "f32",
           bench_load_average());

    int32_t *ids = malloc((size_t)prompt * sizeof *ids);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < prompt; i++) { /* ordinary text ids, no special tokens */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(x % 150000);
    }
    vlm_gen_request r;
    vlm_gen_request_init(&r);
    r.ids = ids;
    r.n_ids = prompt;
    r.max_new_tokens = decode + 1;
    double gemm = sgemm_gflops(prompt, t->hidden, t->intermediate);
    double wbytes = decode_bytes(m), fpt = prefill_flops_per_token(m);
    printf("f32 GEMM (OpenBLAS, %dx%dx%d): %.1f GFLOP/s -> prefill bound %.1f tok/s (%.2f GFLOP per token)\n", prompt,
           t->hidden, t->intermediate, gemm, gemm * 1e9 / fpt, fpt / 1e9);
    /* warm-up: maps the checkpoint's pages in */
    vlm_gen_result res;
    r.max_new_tokens = 2;
    r.n_ids = prompt < 8 ? prompt : 8;
    if (vlm_text_generate(m, &r, &res) != VLM_OK) {
        fprintf(stderr, "error: %s\n", vlm_last_error());
        return 1;
    }
    vlm_gen_result_free(&res);
    r.n_ids = prompt;
    r.max_new_tokens = decode + 1;
    for (int run = 0; run < runs; run++) {
        double bw0 = vlm_measure_read_bandwidth((size_t)1 << 30, 3, 0);
        if (vlm_text_generate(m, &r, &res) != VLM_OK) {
            fprintf(stderr, "error: %s\n", vlm_last_error());
            return 1;
        }
        double bw1 = vlm_measure_read_bandwidth((size_t)1 << 30, 3, 0);
        double bw = (bw0 + bw1) / 2;
        int steps = res.n_ids - 1;
        double pre_tps = prompt / res.prefill_s, dec_tps = steps / res.decode_s;
        double bound = bw * 1e9 / wbytes;
        printf("run %d: prefill %d tokens %.2f s = %.2f tok/s (%.1f GFLOP/s, %.0f%% of the GEMM rate)\n", run + 1,
               prompt, res.prefill_s, pre_tps, pre_tps * fpt / 1e9, 100 * pre_tps * fpt / 1e9 / gemm);
        printf("run %d: decode %d tokens %.2f s = %.2f tok/s; bandwidth %.1f / %.1f GB/s (before / after), %.2f GB "
               "read per token -> bound %.2f tok/s; decode at %.0f%% of it\n",
               run + 1, steps, res.decode_s, dec_tps, bw0, bw1, wbytes / 1e9, bound, 100 * dec_tps / bound);
        printf("run %d: KV cache %.1f MB for %d positions, activations %.1f MB\n", run + 1, res.kv_cache_bytes / 1e6,
               prompt + decode, res.activation_bytes / 1e6);
        vlm_gen_result_free(&res);
    }
    free(ids);
    vlm_text_model_free(m);
    vlm_backend_destroy(be);
    return 0;
}
