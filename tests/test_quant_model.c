/* Quantized checkpoints (runtime/quantize.h): each fixture model quantizes, binds with the expected
 * dtypes and logical shapes, its matrix products stay within the documented tolerance of the f32
 * products with the original weights, embedding rows dequantize; outputs are atomic and replace
 * only earlier outputs; corrupt files (unknown format tag, missing tag, wrong block count, rows
 * that are not whole blocks, a truncated file) are rejected with messages naming the tensor. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/quant_kernels.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/artifact.h"
#include "runtime/quantize.h"
#include "tensor/quant.h"

/* The kernels' context: a pool of the threads set_threads asked for (0: every core). */
static vlm_cpu_ctx g_ctx;
static __attribute__((unused)) void set_threads(int n) {
    vlm_pool_free(g_ctx.pool);
    g_ctx.pool = NULL;
    if (vlm_pool_create(n, &g_ctx.pool) != VLM_OK) g_ctx.pool = NULL; /* one thread */
}

static uint64_t g_rng = 99;

static vlm_status quantize(const char *model, const char *out, vlm_dtype linear, int vision, int language_only) {
    vlm_quant_options o;
    vlm_quant_options_default(&o);
    o.linear = linear;
    o.vision = vision;
    o.language_only = language_only;
    vlm_quant_stats st;
    return vlm_quantize_checkpoint(model, out, &o, &st);
}

/* The largest error a weight of this block can have (quant.h), over the whole block. */
static float block_bound(vlm_dtype t, const uint8_t *blk) {
    float d = fabsf(vlm_quant_block_scale(blk));
    return t == VLM_DT_Q8_0 ? d / 2 : t == VLM_DT_Q4_0 ? d : 0.1520f * d;
}

/* y_q = x · W_q^T against the f32 product with the original weights:
 *   |y_q - y| <= Σ_k bound_k |x_k| (weights) + Σ_b d_x / 2 Σ |w_q| (activations) + NF4's int8 code book,
 * and the relative RMS error over the outputs is reported and kept under a documented ceiling
 * (0.2 for 4-bit formats, 0.02 for Q8_0: about twice the weights' own relative RMS error). */
static double check_matmul(const char *name, const vlm_tensor *wq, const vlm_tensor *w0) {
    int64_t N = wq->shape[0], K = wq->shape[1];
    int M = 3;
    float *x = malloc(sizeof(float) * (size_t)(M * K)), *yq = malloc(sizeof(float) * (size_t)(M * N));
    float *row = malloc(sizeof(float) * (size_t)K), *dq = malloc(sizeof(float) * (size_t)K);
    for (int64_t i = 0; i < M * K; i++) x[i] = test_rand(&g_rng);
    vlm_cpu_matmul(&g_ctx, yq, x, wq, NULL, M);
    size_t rb = vlm_dtype_row_bytes(wq->dtype, K), bs = vlm_dtype_size(wq->dtype);
    int bk = vlm_dtype_block(wq->dtype), bad = 0;
    double se = 0, ss = 0;
    for (int64_t n = 0; n < N; n++) {
        vlm_to_f32(w0->dtype, (const char *)w0->data + (size_t)n * K * vlm_dtype_size(w0->dtype), row, (size_t)K);
        const uint8_t *qr = (const uint8_t *)wq->data + (size_t)n * rb;
        vlm_dequantize_row(wq->dtype, qr, dq, K);
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * K;
            double y = 0, bound = 1e-5;
            for (int64_t b = 0; b < K / 32; b++) {
                float amax = 0;
                double wabs = 0;
                for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xm[b * 32 + j]));
                for (int j = 0; j < 32; j++) {
                    int64_t k = b * 32 + j;
                    float wb = block_bound(wq->dtype, qr + (size_t)(k / bk) * bs);
                    y += (double)row[k] * xm[k];
                    bound += (double)wb * fabsf(xm[k]);
                    wabs += fabs((double)dq[k]);
                    if (wq->dtype == VLM_DT_NF4) bound += fabsf(xm[k]) * wb / 0.1520f / 254.0f * 1.0001f;
                }
                bound += amax / 127.0f / 2 * wabs;
            }
            double got = yq[(size_t)m * N + n];
            if (fabs(got - y) > bound && bad++ < 3)
                fprintf(stderr, "  %s [%d, %lld]: %.6g vs f32 %.6g, bound %.3g\n", name, m, (long long)n, got, y,
                        bound);
            se += (got - y) * (got - y);
            ss += y * y;
        }
    }
    double rel = sqrt(se / (ss > 0 ? ss : 1));
    CHECK_MSG(bad == 0, "%s: outputs beyond the bound", name);
    CHECK_MSG(rel < (wq->dtype == VLM_DT_Q8_0 ? 0.02 : 0.2), "%s (%s): relative RMS error %.4f", name,
              vlm_dtype_name(wq->dtype), rel);
    free(x), free(yq), free(row), free(dq);
    return rel;
}

static const vlm_tensor *find_src(const vlm_safetensors *src, const char *name, vlm_tensor *view) {
    const vlm_st_entry *e = vlm_st_find(src, name);
    if (!e) return NULL;
    *view = vlm_st_tensor(e);
    return view;
}

static void check_model(const char *fixture, const char *tag, vlm_dtype linear) {
    const char *model = test_fixture(fixture);
    const char *out = test_tmp(tag);
    CHECK_OK(quantize(model, out, linear, 0, 0));
    vlm_model_config cfg;
    vlm_safetensors *st = NULL, *src = NULL;
    CHECK_OK(vlm_config_load(out, &cfg));
    CHECK_OK(vlm_st_open(out, &st));
    CHECK_OK(vlm_st_open(model, &src));
    if (!st || !src) return;
    CHECK(vlm_st_meta(st, NULL, "vlm_quant_version") != NULL);
    vlm_vision_weights vw;
    vlm_text_weights tw;
    CHECK_OK(vlm_bind_weights(st, &cfg, 1, 1, &vw, &tw));
    int n_quant = 0;
    double worst = 0, head = 0;
    for (int l = 0; l < tw.n_layers; l++) {
        const vlm_text_layer_weights *L = &tw.layers[l];
        const vlm_tensor *ws[] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w, &L->gate_w, &L->up_w, &L->down_w};
        const char *nm[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
        for (int i = 0; i < 7; i++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, nm[i]);
            vlm_tensor v0;
            const vlm_tensor *w0 = find_src(src, name, &v0);
            CHECK(w0 && ws[i]->shape[0] == w0->shape[0] && ws[i]->shape[1] == w0->shape[1]);
            int divisible = ws[i]->shape[1] % vlm_dtype_block(linear) == 0;
            CHECK_MSG(ws[i]->dtype == (divisible ? linear : w0->dtype), "%s is %s", name, vlm_dtype_name(ws[i]->dtype));
            if (w0 && divisible && ws[i]->dtype == linear) {
                double rel = check_matmul(name, ws[i], w0);
                worst = rel > worst ? rel : worst;
                n_quant++;
            }
        }
        CHECK(L->in_norm.dtype == VLM_DT_BF16 && L->q_b.dtype == VLM_DT_BF16);
    }
    CHECK(n_quant > 0);
    /* the embedding (and the tied lm_head) in Q8_0 when its width allows */
    vlm_tensor e0;
    const vlm_tensor *emb0 = find_src(src, "model.embed_tokens.weight", &e0);
    if (tw.embed.shape[1] % 32 == 0) {
        CHECK(tw.embed.dtype == VLM_DT_Q8_0);
        head =
            check_matmul("lm_head", &tw.lm_head, cfg.text.tie_embeddings ? emb0 : find_src(src, "lm_head.weight", &e0));
        int32_t ids[3] = {0, 151655, 77};
        int64_t D = tw.embed.shape[1];
        float *y = malloc(sizeof(float) * (size_t)(3 * D)), *ref = malloc(sizeof(float) * (size_t)D);
        vlm_cpu_embed(&g_ctx, y, &tw.embed, ids, 3);
        size_t rb = vlm_dtype_row_bytes(VLM_DT_Q8_0, D);
        for (int i = 0; i < 3; i++) {
            vlm_dequantize_row(VLM_DT_Q8_0, (const uint8_t *)tw.embed.data + (size_t)ids[i] * rb, ref, D);
            CHECK(!memcmp(ref, y + i * D, sizeof(float) * (size_t)D));
        }
        free(y), free(ref);
    } else {
        CHECK(tw.embed.dtype == VLM_DT_BF16);
    }
    fprintf(stderr, "  %s %s: largest relative RMS error of a layer's outputs vs f32 %.4f, lm_head (q8_0) %.4f\n",
            fixture, vlm_quant_tag(linear), worst, head);
    CHECK(vw.blocks[0].qkv_w.dtype == VLM_DT_BF16); /* the vision tower as stored */
    CHECK(vlm_st_find(st, "lm_head.weight") == NULL || !cfg.text.tie_embeddings);
    vlm_vision_weights_free(&vw);
    vlm_text_weights_free(&tw);
    vlm_st_close(st);
    vlm_st_close(src);
}

static void test_fixtures(void) {
    check_model("models/tiny-qwen2_5-vl", "q25-q4", VLM_DT_Q4_0);
    check_model("models/tiny-qwen2_5-vl", "q25-nf4", VLM_DT_NF4);
    check_model("models/tiny-qwen2_5-vl", "q25-q8", VLM_DT_Q8_0);
    check_model("models/tiny-qwen2-vl", "q2-q4", VLM_DT_Q4_0);    /* untied lm_head */
    check_model("models/tiny-qwen2-vl-c", "q2c-q4", VLM_DT_Q4_0); /* widths 48: partly kept */
}

static void test_vision_and_language_only(void) {
    const char *model = test_fixture("models/tiny-qwen2_5-vl");
    const char *out = test_tmp("q25-vision");
    CHECK_OK(quantize(model, out, VLM_DT_Q4_0, 1, 0));
    vlm_model_config cfg;
    vlm_safetensors *st = NULL;
    CHECK_OK(vlm_config_load(out, &cfg));
    CHECK_OK(vlm_st_open(out, &st));
    vlm_vision_weights vw;
    vlm_text_weights tw;
    CHECK_OK(vlm_bind_weights(st, &cfg, 1, 1, &vw, &tw));
    CHECK(vw.blocks[0].qkv_w.dtype == VLM_DT_Q4_0 && vw.merger_fc2_w.dtype == VLM_DT_Q4_0);
    CHECK(vw.patch_embed.dtype == VLM_DT_BF16 && vw.blocks[0].norm1_w.dtype == VLM_DT_BF16);
    vlm_vision_weights_free(&vw);
    vlm_text_weights_free(&tw);
    vlm_st_close(st);

    const char *lang = test_tmp("q25-lang");
    CHECK_OK(quantize(model, lang, VLM_DT_NF4, 0, 1));
    char why[4096];
    CHECK(vlm_manifest_is_fresh(lang, "language-nf4", model, why, sizeof why));
    CHECK(!vlm_manifest_is_fresh(lang, "language-q4_0", model, why, sizeof why));
    CHECK_OK(vlm_st_open(lang, &st));
    if (st) {
        vlm_checkpoint_parts parts;
        CHECK_OK(vlm_detect_parts(st, &parts));
        CHECK(!parts.has_vision && parts.has_text);
        CHECK_OK(vlm_bind_weights(st, &cfg, 0, 1, &vw, &tw));
        vlm_text_weights_free(&tw);
        vlm_st_close(st);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", lang);
    CHECK(vlm_is_file(path));
    snprintf(path, sizeof path, "%s/preprocessor_config.json", lang);
    CHECK(!vlm_is_file(path));
    /* config.json records the quantization */
    cJSON *root = NULL;
    snprintf(path, sizeof path, "%s/config.json", lang);
    CHECK_OK(vlm_json_load(path, &root));
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "vlm_quantization");
    const cJSON *lin = cJSON_GetObjectItemCaseSensitive(q, "linear");
    CHECK(cJSON_IsString(lin) && !strcmp(lin->valuestring, "nf4"));
    cJSON_Delete(root);
}

static void test_output_dir(void) {
    const char *model = test_fixture("models/tiny-qwen2-vl");
    const char *out = test_tmp("replace");
    CHECK_OK(quantize(model, out, VLM_DT_Q4_0, 0, 0));
    CHECK_OK(quantize(model, out, VLM_DT_Q8_0, 0, 0)); /* an earlier output is replaced */
    char why[4096], path[1024];
    CHECK(vlm_manifest_is_fresh(out, "quantized-q8_0", model, why, sizeof why));
    /* a directory with other files is not ours to replace */
    const char *foreign = test_tmp("foreign");
    vlm_mkdirs(foreign);
    snprintf(path, sizeof path, "%s/notes.txt", foreign);
    vlm_write_file(path, "keep me", 7);
    CHECK_ERR(quantize(model, foreign, VLM_DT_Q4_0, 0, 0), VLM_ERR_INVALID, "refusing to replace");
    CHECK(vlm_is_file(path));
    /* an empty directory is fine; quantizing a quantized checkpoint is not */
    const char *empty = test_tmp("empty");
    vlm_mkdirs(empty);
    CHECK_OK(quantize(model, empty, VLM_DT_Q4_0, 0, 0));
    CHECK_ERR(quantize(empty, test_tmp("twice"), VLM_DT_Q4_0, 0, 0), VLM_ERR_INVALID, "is already quantized");
    CHECK(!vlm_path_exists(test_tmp("twice")));
    /* a weight that cannot be quantized: the error names it, nothing is left behind */
    const char *src = test_tmp("nan-src");
    vlm_mkdirs(src);
    const char *files[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", model, files[i]);
        snprintf(b, sizeof b, "%s/%s", src, files[i]);
        vlm_copy_file(a, b);
    }
    vlm_safetensors *st;
    CHECK_OK(vlm_st_open(model, &st));
    vlm_st_spec *specs = calloc((size_t)st->n_entries, sizeof *specs);
    const void **data = calloc((size_t)st->n_entries, sizeof *data);
    uint16_t *poisoned = NULL;
    for (int i = 0; i < st->n_entries; i++) {
        const vlm_st_entry *e = &st->entries[i];
        specs[i] = (vlm_st_spec){.name = e->name, .dtype = e->dtype, .ndim = e->ndim};
        memcpy(specs[i].shape, e->shape, sizeof specs[i].shape);
        data[i] = e->data;
        if (!strcmp(e->name, "model.layers.1.mlp.up_proj.weight")) {
            poisoned = malloc(e->nbytes);
            memcpy(poisoned, e->data, e->nbytes);
            poisoned[5 * e->shape[1] + 3] = 0x7fc0; /* NaN in row 5 */
            data[i] = poisoned;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    CHECK_OK(vlm_st_save(path, specs, data, st->n_entries, NULL, NULL, 0));
    vlm_st_close(st);
    free(specs), free(data), free(poisoned);
    const char *nan_out = test_tmp("nan-out");
    CHECK_ERR(quantize(src, nan_out, VLM_DT_Q4_0, 0, 0), VLM_ERR_FORMAT,
              "tensor model.layers.1.mlp.up_proj.weight, row 5: a weight is not finite");
    CHECK(!vlm_path_exists(nan_out));
    char tmp[1024];
    CHECK_OK(vlm_tmp_name(tmp, sizeof tmp, nan_out));
    CHECK(!vlm_path_exists(tmp));
}

/* The CPU backend's interleaved copy of a mapped checkpoint tensor: the mapping's pages are
 * dropped from the process, and the view still reads the same bytes (faulted back in). */
static void test_prepare_mapped(void) {
    const char *out = test_tmp("mapped");
    CHECK_OK(quantize(test_fixture("models/tiny-qwen2_5-vl"), out, VLM_DT_Q4_0, 0, 1));
    vlm_safetensors *st = NULL;
    CHECK_OK(vlm_st_open(out, &st));
    if (!st) return;
    const vlm_st_entry *e = vlm_st_find(st, "model.embed_tokens.weight");
    vlm_tensor host;
    int64_t shape[2] = {151936, 64};
    CHECK_OK(vlm_quant_bind(st, e, 2, shape, &host));
    uint8_t *copy = malloc(host.nbytes);
    memcpy(copy, host.data, host.nbytes);
    vlm_tensor dev;
    CHECK_OK(vlm_cpu_quant_prepare(g_ctx.pool, &host, &dev));
    CHECK(!memcmp(copy, host.data, host.nbytes)); /* the view reads the file again */
    float x[2 * 64], *y0 = malloc(sizeof(float) * 2 * 151936), *y1 = malloc(sizeof(float) * 2 * 151936);
    for (int i = 0; i < 128; i++) x[i] = test_rand(&g_rng);
    vlm_cpu_matmul(&g_ctx, y0, x, &host, NULL, 2);
    vlm_cpu_matmul(&g_ctx, y1, x, &dev, NULL, 2);
    CHECK(test_close("prepared lm_head", y1, y0, 2 * 151936, 1e-5f, 1e-5f));
    vlm_cpu_quant_release(&dev);
    free(copy), free(y0), free(y1);
    vlm_st_close(st);
}

/* ---- corrupt quantized files ---- */
typedef enum { BAD_TAG, NO_TAG, BLOCKS, PARTIAL_ROWS, ROWS } corruption;

/* Rewrites the quantized checkpoint `dir` into `out` with one corruption of q_proj of layer 0. */
static void corrupt(const char *dir, const char *out, corruption how) {
    const char *victim = "model.layers.0.self_attn.q_proj.weight";
    vlm_safetensors *st;
    CHECK_OK(vlm_st_open(dir, &st));
    if (!st) return;
    int n = st->n_entries;
    vlm_st_spec *specs = calloc((size_t)n, sizeof *specs);
    const void **data = calloc((size_t)n, sizeof *data);
    void *big = NULL;
    for (int i = 0; i < n; i++) {
        const vlm_st_entry *e = &st->entries[i];
        specs[i] = (vlm_st_spec){.name = e->name, .dtype = e->dtype, .ndim = e->ndim};
        memcpy(specs[i].shape, e->shape, sizeof specs[i].shape);
        data[i] = e->data;
        if (strcmp(e->name, victim)) continue;
        if (how == BLOCKS) specs[i].shape[1] += 18;      /* one block too many per row */
        if (how == PARTIAL_ROWS) specs[i].shape[1] -= 1; /* rows end mid-block */
        if (how == ROWS) specs[i].shape[0] -= 1;
        big = calloc(1, vlm_st_spec_bytes(&specs[i]) + 1);
        data[i] = big;
    }
    /* metadata: every key of the original, the victim's tag changed or dropped */
    cJSON *meta = cJSON_Parse(st->files[0].metadata_json);
    int nm = cJSON_GetArraySize(meta), k = 0;
    const char **keys = calloc((size_t)nm + 1, sizeof *keys), **vals = calloc((size_t)nm + 1, sizeof *vals);
    char victim_key[128];
    snprintf(victim_key, sizeof victim_key, "quant:%s", victim);
    for (const cJSON *it = meta ? meta->child : NULL; it; it = it->next) {
        if (!strcmp(it->string, victim_key) && how == NO_TAG) continue;
        keys[k] = it->string;
        vals[k++] = !strcmp(it->string, victim_key) && how == BAD_TAG ? "q5_k" : it->valuestring;
    }
    char path[1024];
    vlm_mkdirs(out);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECK_OK(vlm_st_save(path, specs, data, n, keys, vals, k));
    cJSON_Delete(meta);
    free(keys), free(vals), free(specs), free(data), free(big);
    vlm_st_close(st);
}

static void expect_bind_error(const char *dir, const vlm_model_config *cfg, const char *needle) {
    vlm_safetensors *st;
    CHECK_OK(vlm_st_open(dir, &st));
    if (!st) return;
    vlm_vision_weights vw;
    vlm_text_weights tw;
    CHECK_ERR(vlm_bind_weights(st, cfg, 1, 1, &vw, &tw), VLM_ERR_FORMAT, needle);
    vlm_st_close(st);
}

static void test_corrupt_files(void) {
    const char *model = test_fixture("models/tiny-qwen2_5-vl");
    const char *good = test_tmp("good");
    CHECK_OK(quantize(model, good, VLM_DT_Q4_0, 0, 0));
    vlm_model_config cfg;
    CHECK_OK(vlm_config_load(model, &cfg));
    corrupt(good, test_tmp("bad-tag"), BAD_TAG);
    expect_bind_error(test_tmp("bad-tag"), &cfg,
                      "tensor model.layers.0.self_attn.q_proj.weight has unknown quantization format 'q5_k' "
                      "(known: q4_0, q8_0, nf4)");
    corrupt(good, test_tmp("no-tag"), NO_TAG);
    expect_bind_error(test_tmp("no-tag"), &cfg,
                      "tensor model.layers.0.self_attn.q_proj.weight is stored as U8 without a quantization format");
    corrupt(good, test_tmp("blocks"), BLOCKS);
    expect_bind_error(test_tmp("blocks"), &cfg,
                      "tensor model.layers.0.self_attn.q_proj.weight has 3 q4_0 blocks per row (96 weights), the "
                      "config implies 2 (64 weights)");
    corrupt(good, test_tmp("partial"), PARTIAL_ROWS);
    expect_bind_error(test_tmp("partial"), &cfg,
                      "tensor model.layers.0.self_attn.q_proj.weight: 35 bytes per row is not a whole number of "
                      "18-byte q4_0 blocks");
    corrupt(good, test_tmp("rows"), ROWS);
    expect_bind_error(test_tmp("rows"), &cfg,
                      "tensor model.layers.0.self_attn.q_proj.weight has 63 rows, the config "
                      "implies 64");
    /* a file cut short: the reader names the file and the tensor past its end */
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/model.safetensors", good);
    const char *cut = test_tmp("cut");
    vlm_mkdirs(cut);
    snprintf(dst, sizeof dst, "%s/model.safetensors", cut);
    char *bytes;
    size_t len;
    CHECK_OK(vlm_read_file(src, 0, &bytes, &len));
    CHECK_OK(vlm_write_file(dst, bytes, len - 1000));
    free(bytes);
    vlm_safetensors *st = NULL;
    vlm_status s = vlm_st_open(cut, &st);
    CHECK_MSG(s == VLM_ERR_FORMAT && strstr(vlm_last_error(), "model.safetensors"), "%s", vlm_last_error());
    if (st) vlm_st_close(st);
}

int main(void) {
    set_threads(0);
    RUN(test_fixtures);
    RUN(test_vision_and_language_only);
    RUN(test_output_dir);
    RUN(test_prepare_mapped);
    RUN(test_corrupt_files);
    return test_summary();
}
