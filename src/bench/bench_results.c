/* The benchmark's results: configuration as run, runs per image and mode, overall results and
 * their statistics. Built by the runner, or by tests with synthetic numbers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/memory.h"
#include "bench/bench.h"

void vlm_bench_config_init(vlm_bench_config *c) {
    memset(c, 0, sizeof *c);
    c->model_id = "Qwen/Qwen2.5-VL-3B-Instruct";
    c->output_dir = "split_models";
    c->text = "Describe this image.";
    c->n_modes = 3;
    for (int i = 0; i < 3; i++) c->modes[i] = (vlm_mode)i;
    c->runs = 5;
    c->max_tokens = 128;
    c->warmup = 1;
    c->device = VLM_DEV_AUTO;
}

static char *dup_or_null(const char *s, vlm_status *st) {
    if (!s) return NULL;
    char *d = vlm_strdup(s, "a benchmark setting");
    if (!d) *st = VLM_ERR_NOMEM;
    return d;
}

static vlm_status reserve_runs(vlm_bench_mode_result *m, int cap) {
    if (cap > 1024) cap = 1024; /* grows in vlm_bench_add_run when more runs come */
    m->runs = vlm_calloc((size_t)(cap > 0 ? cap : 1), sizeof *m->runs, "the benchmark runs");
    if (!m->runs) return VLM_ERR_NOMEM;
    m->cap_runs = cap > 0 ? cap : 1;
    return VLM_OK;
}

vlm_status vlm_bench_results_init(vlm_bench_results *r, const vlm_bench_config *c, vlm_device device) {
    memset(r, 0, sizeof *r);
    if (c->n_images < 1) return vlm_err(VLM_ERR_INVALID, "bench: no image to run");
    if (c->n_modes < 1 || c->n_modes > VLM_BENCH_MAX_MODES)
        return vlm_err(VLM_ERR_INVALID, "bench: %d modes (expected 1 to %d)", c->n_modes, VLM_BENCH_MAX_MODES);
    if (c->runs < 1) return vlm_err(VLM_ERR_INVALID, "bench: --runs %d (expected at least 1)", c->runs);
    vlm_status st = VLM_OK;
    r->model_id = dup_or_null(c->model_id, &st);
    r->prompt = dup_or_null(c->text, &st);
    r->output_dir = dup_or_null(c->output_dir, &st);
    r->device_requested = c->device;
    r->device = device;
    snprintf(r->device_name, sizeof r->device_name, "%s", device == VLM_DEV_CPU ? vlm_cpu_name() : "");
    r->runs = c->runs;
    r->max_tokens = c->max_tokens;
    r->warmup = c->warmup;
    r->ignore_eos = c->ignore_eos;
    r->quantize = c->quantize;
    r->threads = c->threads;
    r->precision = c->precision;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(r->timestamp, sizeof r->timestamp, "%Y-%m-%dT%H:%M:%S%z", &tm);
    r->n_modes = c->n_modes;
    for (int i = 0; i < c->n_modes; i++) {
        r->modes[i] = c->modes[i];
        r->overall[i].mode = c->modes[i];
    }
    r->images = vlm_calloc((size_t)c->n_images, sizeof *r->images, "the benchmark's images");
    if (!r->images) st = VLM_ERR_NOMEM;
    else r->n_images = c->n_images;
    for (int i = 0; st == VLM_OK && i < r->n_images; i++) {
        vlm_bench_image_result *im = &r->images[i];
        im->path = dup_or_null(c->images[i], &st);
        if (st != VLM_OK) break;
        st = vlm_bench_image_size(c->images[i], &im->width, &im->height);
        for (int k = 0; st == VLM_OK && k < r->n_modes; k++) {
            im->modes[k].mode = r->modes[k];
            st = reserve_runs(&im->modes[k], c->runs);
        }
    }
    if (st != VLM_OK) {
        if (st == VLM_ERR_NOMEM && !vlm_last_error()[0]) vlm_err(st, "out of memory setting up the benchmark");
        vlm_bench_results_free(r);
    }
    return st;
}

vlm_status vlm_bench_add_run(vlm_bench_results *r, int image, int mode_index, const vlm_bench_run *run) {
    if (image < 0 || image >= r->n_images || mode_index < 0 || mode_index >= r->n_modes)
        return vlm_err(VLM_ERR_INVALID, "bench: no image %d / mode %d in these results", image, mode_index);
    vlm_bench_mode_result *m = &r->images[image].modes[mode_index];
    if (m->n_runs == m->cap_runs) {
        int cap = m->cap_runs * 2;
        vlm_bench_run *p = vlm_realloc(m->runs, (size_t)cap * sizeof *p, "the benchmark runs");
        if (!p) return VLM_ERR_NOMEM;
        m->runs = p;
        m->cap_runs = cap;
    }
    m->runs[m->n_runs++] = *run;
    return VLM_OK;
}

void vlm_bench_skip(vlm_bench_results *r, int mode_index, const char *reason) {
    if (mode_index < 0 || mode_index >= r->n_modes) return;
    r->overall[mode_index].outcome = VLM_BENCH_SKIPPED;
    snprintf(r->overall[mode_index].reason, VLM_BENCH_REASON_MAX, "%s", reason);
    for (int i = 0; i < r->n_images; i++) {
        vlm_bench_mode_result *m = &r->images[i].modes[mode_index];
        m->outcome = VLM_BENCH_SKIPPED;
        m->n_runs = 0;
        snprintf(m->reason, VLM_BENCH_REASON_MAX, "%s", reason);
    }
}

static vlm_status compute_stats(vlm_bench_mode_result *m) {
    memset(m->stats, 0, sizeof m->stats);
    if (m->outcome != VLM_BENCH_RAN || m->n_runs == 0) return VLM_OK;
    double *v = vlm_alloc((size_t)m->n_runs * 2 * sizeof *v, "the statistics of the runs");
    if (!v) return VLM_ERR_NOMEM;
    for (int k = 0; k < VLM_BM_COUNT; k++) {
        for (int i = 0; i < m->n_runs; i++) v[i] = m->runs[i].m[k];
        vlm_bench_stats_compute(v, m->n_runs, v + m->n_runs, &m->stats[k]);
    }
    free(v);
    return VLM_OK;
}

vlm_status vlm_bench_finish(vlm_bench_results *r) {
    for (int k = 0; k < r->n_modes; k++) {
        vlm_bench_mode_result *o = &r->overall[k];
        if (o->outcome == VLM_BENCH_SKIPPED) continue;
        int total = 0;
        for (int i = 0; i < r->n_images; i++) total += r->images[i].modes[k].n_runs;
        free(o->runs);
        o->runs = NULL;
        o->n_runs = o->cap_runs = 0;
        VLM_TRY(reserve_runs(o, total));
        for (int i = 0; i < r->n_images; i++) {
            const vlm_bench_mode_result *m = &r->images[i].modes[k];
            memcpy(o->runs + o->n_runs, m->runs, (size_t)m->n_runs * sizeof *m->runs);
            o->n_runs += m->n_runs;
        }
        /* a mode that ran on no image at all (runs 0) has nothing to report */
        if (o->n_runs == 0) {
            o->outcome = VLM_BENCH_SKIPPED;
            snprintf(o->reason, VLM_BENCH_REASON_MAX, "no run was recorded");
        }
        VLM_TRY(compute_stats(o));
        for (int i = 0; i < r->n_images; i++) VLM_TRY(compute_stats(&r->images[i].modes[k]));
    }
    return VLM_OK;
}

void vlm_bench_results_free(vlm_bench_results *r) {
    if (!r) return;
    free(r->model_id);
    free(r->model_path);
    free(r->prompt);
    free(r->output_dir);
    for (int i = 0; r->images && i < r->n_images; i++) {
        free(r->images[i].path);
        for (int k = 0; k < VLM_BENCH_MAX_MODES; k++) free(r->images[i].modes[k].runs);
    }
    free(r->images);
    for (int k = 0; k < VLM_BENCH_MAX_MODES; k++) free(r->overall[k].runs);
    memset(r, 0, sizeof *r);
}

int vlm_bench_n_ran(const vlm_bench_results *r) {
    int n = 0;
    for (int k = 0; k < r->n_modes; k++) n += r->overall[k].outcome == VLM_BENCH_RAN && r->overall[k].n_runs > 0;
    return n;
}

vlm_status vlm_bench_check_output_dir(const char *dir, const char *what) {
    if (!vlm_is_dir(dir)) return vlm_err(VLM_ERR_NOT_FOUND, "%s: the directory %s does not exist", what, dir);
    if (access(dir, W_OK) != 0) return vlm_err(VLM_ERR_IO, "%s: cannot write in %s: %s", what, dir, strerror(errno));
    return VLM_OK;
}

vlm_status vlm_bench_check_output_path(const char *path, const char *flag) { return vlm_check_output_path(path, flag); }
