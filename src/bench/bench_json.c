/* Benchmark results as JSON (modes + metadata, per-image results under "images" when there are
 * several) and CSV. JSON numbers are written at full precision (%.17g, which reads back to the same
 * double), so the statistics match a recomputation over "values" exactly. */
#include <string.h>

#include "bench/bench.h"

static void indent(vlm_strbuf *b, int n) { vlm_sb_printf(b, "\n%*s", n, ""); }

static void key(vlm_strbuf *b, int ind, const char *k) {
    indent(b, ind);
    vlm_sb_json_string(b, k, strlen(k));
    vlm_sb_append(b, ": ", 2);
}

static void str_or_null(vlm_strbuf *b, const char *s) {
    if (s) vlm_sb_json_string(b, s, strlen(s));
    else vlm_sb_append(b, "null", 4);
}

static void mode_object(vlm_strbuf *b, const vlm_bench_mode_result *m, int ind) {
    vlm_sb_append(b, "{", 1);
    for (int k = 0; k < VLM_BM_COUNT; k++) {
        const vlm_bench_stats *s = &m->stats[k];
        key(b, ind + 2, vlm_bench_metrics[k].key);
        vlm_sb_append(b, "{\"mean\": ", 9);
        vlm_sb_json_number(b, s->mean);
        vlm_sb_append(b, ", \"std\": ", 9);
        vlm_sb_json_number(b, s->std);
        vlm_sb_append(b, ", \"min\": ", 9);
        vlm_sb_json_number(b, s->min);
        vlm_sb_append(b, ", \"max\": ", 9);
        vlm_sb_json_number(b, s->max);
        vlm_sb_append(b, ", \"median\": ", 12);
        vlm_sb_json_number(b, s->median);
        vlm_sb_append(b, ", \"values\": [", 13);
        for (int i = 0; i < m->n_runs; i++) {
            if (i) vlm_sb_append(b, ", ", 2);
            vlm_sb_json_number(b, m->runs[i].m[k]);
        }
        vlm_sb_append(b, "]},", 3);
    }
    key(b, ind + 2, "num_runs");
    vlm_sb_printf(b, "%d", m->n_runs);
    indent(b, ind);
    vlm_sb_append(b, "}", 1);
}

/* "<mode>": {...} for every mode that ran, each followed by a comma. */
static void modes_members(vlm_strbuf *b, const vlm_bench_mode_result *modes, int n, int ind) {
    for (int k = 0; k < n; k++) {
        if (modes[k].outcome != VLM_BENCH_RAN || modes[k].n_runs == 0) continue;
        key(b, ind, vlm_mode_name(modes[k].mode));
        mode_object(b, &modes[k], ind);
        vlm_sb_append(b, ",", 1);
    }
}

static void image_size(vlm_strbuf *b, const vlm_bench_image_result *im) {
    vlm_sb_printf(b, "{\"width\": %d, \"height\": %d}", im->width, im->height);
}

static void metadata(vlm_strbuf *b, const vlm_bench_results *r) {
    const int i2 = 4;
    vlm_sb_append(b, "{", 1);
    key(b, i2, "model_id");
    str_or_null(b, r->model_id);
    vlm_sb_append(b, ",", 1);
    key(b, i2, "model_path");
    str_or_null(b, r->model_path);
    vlm_sb_append(b, ",", 1);
    key(b, i2, "device");
    str_or_null(b, vlm_device_name(r->device));
    vlm_sb_append(b, ",", 1);
    key(b, i2, "device_requested");
    str_or_null(b, vlm_device_name(r->device_requested));
    vlm_sb_append(b, ",", 1);
    key(b, i2, "device_name");
    str_or_null(b, r->device_name);
    vlm_sb_append(b, ",", 1);
    /* one image: its path and size; several: the lists, in run order */
    key(b, i2, "image_path");
    if (r->n_images == 1) str_or_null(b, r->images[0].path);
    else {
        vlm_sb_append(b, "[", 1);
        for (int i = 0; i < r->n_images; i++) {
            if (i) vlm_sb_append(b, ", ", 2);
            str_or_null(b, r->images[i].path);
        }
        vlm_sb_append(b, "]", 1);
    }
    vlm_sb_append(b, ",", 1);
    key(b, i2, "image_size");
    if (r->n_images == 1) image_size(b, &r->images[0]);
    else {
        vlm_sb_append(b, "[", 1);
        for (int i = 0; i < r->n_images; i++) {
            if (i) vlm_sb_append(b, ", ", 2);
            image_size(b, &r->images[i]);
        }
        vlm_sb_append(b, "]", 1);
    }
    vlm_sb_printf(b, ",");
    key(b, i2, "num_images");
    vlm_sb_printf(b, "%d,", r->n_images);
    key(b, i2, "prompt");
    str_or_null(b, r->prompt);
    vlm_sb_append(b, ",", 1);
    key(b, i2, "runs");
    vlm_sb_printf(b, "%d,", r->runs);
    key(b, i2, "max_tokens");
    vlm_sb_printf(b, "%d,", r->max_tokens);
    key(b, i2, "warmup");
    vlm_sb_printf(b, "%s,", r->warmup ? "true" : "false");
    key(b, i2, "ignore_eos");
    vlm_sb_printf(b, "%s,", r->ignore_eos ? "true" : "false");
    key(b, i2, "decoding");
    vlm_sb_printf(b, "\"greedy\",");
    key(b, i2, "quantization");
    vlm_sb_printf(b, "\"%s\",", r->quantize ? "4-bit" : "none");
    key(b, i2, "threads");
    vlm_sb_printf(b, "%d,", r->threads);
    key(b, i2, "precision");
    vlm_sb_printf(b, "\"%s\",", vlm_precision_name(r->precision));
    key(b, i2, "output_dir");
    str_or_null(b, r->output_dir);
    vlm_sb_append(b, ",", 1);
    key(b, i2, "modes");
    vlm_sb_append(b, "[", 1);
    for (int k = 0; k < r->n_modes; k++) vlm_sb_printf(b, "%s\"%s\"", k ? ", " : "", vlm_mode_name(r->modes[k]));
    vlm_sb_append(b, "],", 2);
    key(b, i2, "skipped");
    vlm_sb_append(b, "{", 1);
    int any = 0;
    for (int k = 0; k < r->n_modes; k++) {
        if (r->overall[k].outcome != VLM_BENCH_SKIPPED) continue;
        if (any++) vlm_sb_append(b, ",", 1);
        key(b, i2 + 2, vlm_mode_name(r->overall[k].mode));
        str_or_null(b, r->overall[k].reason);
    }
    if (any) indent(b, i2);
    vlm_sb_append(b, "},", 2);
    key(b, i2, "version");
    vlm_sb_printf(b, "\"%s\",", VLM_VERSION);
    key(b, i2, "timestamp");
    str_or_null(b, r->timestamp);
    indent(b, 2);
    vlm_sb_append(b, "}", 1);
}

vlm_status vlm_bench_json(const vlm_bench_results *r, vlm_strbuf *b) {
    vlm_sb_append(b, "{", 1);
    modes_members(b, r->overall, r->n_modes, 2);
    key(b, 2, "metadata");
    metadata(b, r);
    if (r->n_images > 1) {
        vlm_sb_append(b, ",", 1);
        key(b, 2, "images");
        vlm_sb_append(b, "[", 1);
        for (int i = 0; i < r->n_images; i++) {
            const vlm_bench_image_result *im = &r->images[i];
            indent(b, 4);
            vlm_sb_append(b, "{", 1);
            modes_members(b, im->modes, r->n_modes, 6);
            key(b, 6, "image");
            vlm_sb_append(b, "{\"path\": ", 9);
            str_or_null(b, im->path);
            vlm_sb_printf(b, ", \"width\": %d, \"height\": %d}", im->width, im->height);
            indent(b, 4);
            vlm_sb_append(b, i + 1 < r->n_images ? "}," : "}", i + 1 < r->n_images ? 2 : 1);
        }
        indent(b, 2);
        vlm_sb_append(b, "]", 1);
    }
    vlm_sb_append(b, "\n}\n", 3);
    if (b->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory writing the benchmark JSON");
    return VLM_OK;
}

vlm_status vlm_bench_write_json(const vlm_bench_results *r, const char *path) {
    vlm_strbuf b = {0};
    vlm_status s = vlm_bench_json(r, &b);
    if (s == VLM_OK) s = vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    return s == VLM_OK ? s : vlm_err_ctx(s, "--output %s", path);
}

vlm_status vlm_bench_csv(const vlm_bench_results *r, vlm_strbuf *b) {
    vlm_sb_printf(b, "Mode,Metric,Mean,Std,Min,Max,Median,Num Runs\n");
    for (int k = 0; k < r->n_modes; k++) {
        const vlm_bench_mode_result *m = &r->overall[k];
        if (m->outcome != VLM_BENCH_RAN || m->n_runs == 0) continue;
        for (int j = 0; j < VLM_BM_COUNT; j++) {
            const vlm_bench_stats *s = &m->stats[j];
            vlm_sb_printf(b, "%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%d\n", vlm_mode_name(m->mode), vlm_bench_metrics[j].key,
                          s->mean, s->std, s->min, s->max, s->median, m->n_runs);
        }
    }
    if (b->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory writing the benchmark CSV");
    return VLM_OK;
}

vlm_status vlm_bench_write_csv(const vlm_bench_results *r, const char *path) {
    vlm_strbuf b = {0};
    vlm_status s = vlm_bench_csv(r, &b);
    if (s == VLM_OK) s = vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    return s == VLM_OK ? s : vlm_err_ctx(s, "--csv %s", path);
}

void vlm_bench_csv_path(const char *json_path, char *out, size_t cap) {
    size_t n = strlen(json_path);
    if (n > 5 && !strcmp(json_path + n - 5, ".json")) snprintf(out, cap, "%.*s.csv", (int)(n - 5), json_path);
    else snprintf(out, cap, "%s.csv", json_path);
}
