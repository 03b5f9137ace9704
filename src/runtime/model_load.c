/* vlm_load: resolve the checkpoint, prepare the artifacts the mode needs (split, ONNX export,
 * quantized copy) when they are missing or stale, create the backend, and load the two components. */
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "io/hf_cache.h"
#include "runtime/artifact.h"
#include "runtime/pipeline.h"
#include "runtime/quantize.h"
#include "runtime/split.h"
#include "text/chat_template.h"

/* Opens dir's config and weights for a component. */
static vlm_status open_component(vlm_component *c, const char *dir) {
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    VLM_TRY(vlm_config_load(dir, &c->cfg));
    VLM_TRY(vlm_st_open(dir, &c->st));
    c->owns_st = 1;
    return VLM_OK;
}

static void close_component(vlm_component *c) {
    if (c->owns_st) vlm_st_close(c->st);
    c->st = NULL;
}

/* The language side: weights, decoder and tokenizer from dir. */
static vlm_status load_language(vlm_model *m, const char *dir) {
    VLM_TRY(open_component(&m->lang, dir));
    vlm_vision_weights unused;
    VLM_TRY(vlm_bind_weights(m->lang.st, &m->lang.cfg, 0, 1, &unused, &m->tw));
    vlm_checkpoint_parts parts;
    VLM_TRY(vlm_detect_parts(m->lang.st, &parts));
    m->lang.bytes = 0;
    const char *vp = vlm_vision_prefix(parts.naming);
    for (int i = 0; i < m->lang.st->n_entries; i++)
        if (strncmp(m->lang.st->entries[i].name, vp, strlen(vp)) != 0) m->lang.bytes += m->lang.st->entries[i].nbytes;
    VLM_TRY(vlm_text_model_create(m->be, &m->lang.cfg, &m->tw, &m->text));
    /* stop ids: generation_config.json's, else config.json's eos_token_id */
    VLM_TRY(vlm_generation_config_load(dir, &m->gen));
    vlm_generation_config_default_eos(&m->gen, m->lang.cfg.tokens.eos_ids, m->lang.cfg.tokens.n_eos);
    vlm_status s = vlm_tok_load_dir(dir, &m->tok);
    if (s != VLM_OK) return vlm_err_ctx(s, "tokenizer of %s", dir);
    vlm_chat_template_check(dir); /* a warning when prompts will differ from the checkpoint's template */
    return VLM_OK;
}

/* The native vision side from dir; in `original` it reuses the language side's mapping. */
static vlm_status load_vision(vlm_model *m, const char *dir, int share) {
    if (share) {
        m->vis = m->lang;
        m->vis.owns_st = 0;
    } else {
        VLM_TRY(open_component(&m->vis, dir));
    }
    VLM_TRY(vlm_preproc_config_load(dir, &m->preproc));
    vlm_text_weights unused;
    VLM_TRY(vlm_bind_weights(m->vis.st, &m->vis.cfg, 1, 0, &m->vw, &unused));
    vlm_checkpoint_parts parts;
    VLM_TRY(vlm_detect_parts(m->vis.st, &parts));
    if (!parts.has_vision)
        return vlm_err(VLM_ERR_NOT_FOUND,
                       "%s has no vision encoder (visual.* tensors): a language-only artifact can only "
                       "answer text prompts",
                       dir);
    m->vis.bytes = vlm_st_bytes_with_prefix(m->vis.st, vlm_vision_prefix(parts.naming));
    return vlm_vision_create(&m->vis.cfg, &m->vw, m->be, &m->vision);
}

static void report_progress(vlm_model *m, const char *stage, double f) {
    if (m->opt.progress) m->opt.progress(m->opt.progress_user, stage, f);
}

static void quant_progress(void *user, double f) {
    vlm_model *m = user;
    if (m->opt.progress) m->opt.progress(m->opt.progress_user, "quantizing", f);
}

/* The quantized artifact OUTPUT_DIR/<kind> (language-q4_0, or quantized-q4_0 with the vision tower
 * too), made from the source checkpoint when it is missing or stale. */
static vlm_status ensure_quantized(vlm_model *m, int with_vision, char *dir, size_t cap) {
    vlm_quant_options qo;
    vlm_quant_options_default(&qo);
    qo.language_only = !with_vision;
    qo.vision = with_vision;
    qo.progress = quant_progress;
    qo.progress_user = m;
    char kind[64], why[VLM_PATH_MAX + 256];
    vlm_quant_kind(&qo, kind, sizeof kind);
    VLM_TRY(vlm_path_join(dir, cap, m->output_dir, kind));
    int fresh = vlm_manifest_is_fresh(dir, kind, m->source_dir, why, sizeof why);
    if (fresh < 0) return vlm_err_ctx(VLM_ERR_NOMEM, "checking %s", dir);
    if (fresh) return VLM_OK;
    VLM_TRY(vlm_mkdirs(m->output_dir));
    /* look again under the lock: another process may be writing it now */
    vlm_dir_lock lock;
    VLM_TRY(vlm_writer_lock(m->output_dir, &lock));
    vlm_status s = VLM_OK;
    fresh = vlm_manifest_is_fresh(dir, kind, m->source_dir, why, sizeof why);
    if (fresh < 0) s = vlm_err_ctx(VLM_ERR_NOMEM, "checking %s", dir);
    if (fresh == 0) {
        VLM_LOG_I("quantizing %s into %s (%s)", m->source_dir, dir, why);
        vlm_quant_stats stats;
        s = vlm_quantize_checkpoint(m->source_dir, dir, &qo, &stats);
    }
    vlm_writer_unlock(&lock);
    return s;
}

static vlm_status prepare_and_load(vlm_model *m) {
    const vlm_load_options *o = &m->opt;
    char vis_dir[VLM_PATH_MAX], lang_dir[VLM_PATH_MAX], q_dir[VLM_PATH_MAX];
    if (o->quantize_vision && !o->quantize) return vlm_err(VLM_ERR_INVALID, "--quantize-vision goes with --quantize");
    if (o->quantize_vision && o->mode == VLM_MODE_RUN_ONNX)
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "--quantize-vision: run_onnx exports the vision encoder in stored precision");
    if (o->quantize) {
        /* both components from one quantized checkpoint when the vision tower is quantized too;
         * otherwise only the language model is replaced by its quantized artifact */
        VLM_TRY(ensure_quantized(m, o->quantize_vision, q_dir, sizeof q_dir));
        VLM_TRY(load_language(m, q_dir));
        report_progress(m, "loading", 0.5);
        if (o->quantize_vision) return load_vision(m, q_dir, 0);
        if (o->mode == VLM_MODE_ORIGINAL) return load_vision(m, m->source_dir, 0);
    }
    if (o->mode == VLM_MODE_ORIGINAL) {
        VLM_TRY(load_language(m, m->source_dir));
        report_progress(m, "loading", 0.5);
        /* a checkpoint without visual.* tensors (a language artifact) still answers text */
        vlm_checkpoint_parts parts;
        VLM_TRY(vlm_detect_parts(m->lang.st, &parts));
        if (parts.has_vision) VLM_TRY(load_vision(m, m->source_dir, 1));
        return VLM_OK;
    }
    /* split_native and run_onnx take the language model from the split artifact */
    VLM_TRY(vlm_split_ensure(m->source_dir, m->output_dir, o->progress, o->progress_user));
    VLM_TRY(vlm_path_join(vis_dir, sizeof vis_dir, m->output_dir, VLM_SPLIT_VISION));
    VLM_TRY(vlm_path_join(lang_dir, sizeof lang_dir, m->output_dir, VLM_SPLIT_LANGUAGE));
    if (!o->quantize) {
        VLM_TRY(load_language(m, lang_dir));
        report_progress(m, "loading", 0.5);
    }
    if (o->mode == VLM_MODE_SPLIT_NATIVE) return load_vision(m, vis_dir, 0);

    /* run_onnx: the vision encoder is the exported graph, run by ONNX Runtime on the CPU */
    char why[512];
    if (!vlm_onnx_available(why, sizeof why)) return vlm_err(VLM_ERR_UNAVAILABLE, "run_onnx: %s", why);
    int exported = 0;
    report_progress(m, "exporting ONNX", -1);
    VLM_TRY(vlm_onnx_ensure_export(vis_dir, m->output_dir, NULL, &exported));
    if (exported) VLM_LOG_I("exported the vision encoder to %s/%s", m->output_dir, VLM_ONNX_FILE);
    if (m->device == VLM_DEV_CUDA)
        VLM_LOG_W("run_onnx: this ONNX Runtime build has no CUDA execution provider; the vision encoder runs on the "
                  "CPU, the language model on the GPU");
    VLM_TRY(open_component(&m->vis, vis_dir)); /* its config (merge size) */
    VLM_TRY(vlm_preproc_config_load(vis_dir, &m->preproc));
    VLM_TRY(vlm_ort_vision_open(m->output_dir, m->be->threads, VLM_DEV_CPU, &m->onnx));
    const char *files[] = {VLM_ONNX_FILE, VLM_ONNX_DATA_FILE};
    for (int i = 0; i < 2; i++) {
        char p[VLM_PATH_MAX];
        uint64_t size = 0;
        if (vlm_path_join(p, sizeof p, m->output_dir, files[i]) == VLM_OK && vlm_is_file(p) &&
            vlm_file_stat(p, &size, NULL) == VLM_OK)
            m->onnx_bytes += size;
    }
    return VLM_OK;
}

vlm_status vlm_load(const vlm_load_options *o, vlm_model **out) {
    *out = NULL;
    double t0 = vlm_now();
    if (!o->model_id || !*o->model_id) return vlm_err(VLM_ERR_INVALID, "no model id given");
    if ((unsigned)o->mode > VLM_MODE_RUN_ONNX) return vlm_err(VLM_ERR_INVALID, "unknown mode %d", (int)o->mode);
    vlm_model *m = vlm_calloc(1, sizeof *m, "the model");
    if (!m) return vlm_err_ctx(VLM_ERR_NOMEM, "loading %s", o->model_id);
    pthread_mutex_init(&m->lock, NULL);
    m->opt = *o;
    snprintf(m->model_id, sizeof m->model_id, "%s", o->model_id);
    snprintf(m->output_dir, sizeof m->output_dir, "%s",
             o->output_dir && *o->output_dir ? o->output_dir : "split_models");
    m->opt.model_id = m->model_id;
    m->opt.output_dir = m->output_dir;
    if ((unsigned)o->precision > VLM_PRECISION_BF16) {
        free(m);
        return vlm_err(VLM_ERR_INVALID, "unknown precision %d (expected f32 or bf16)", (int)o->precision);
    }
    /* the model's threads: its own, never a process-wide setting (two models may differ) */
    vlm_backend_options bo = {.threads = o->threads, .bf16 = o->precision == VLM_PRECISION_BF16};
    const char *env = getenv("VLM_THREADS");
    if (bo.threads <= 0 && env && atoi(env) > 0) bo.threads = atoi(env);
    vlm_status s = vlm_resolve_model(o->model_id, m->source_dir, sizeof m->source_dir);
    /* the processor's class defaults until a vision component brings its own file */
    if (s == VLM_OK) s = vlm_preproc_config_parse(NULL, "preprocessor_config.json", &m->preproc);
    if (s == VLM_OK) s = vlm_device_resolve(o->device, &m->device); /* auto is resolved here, once */
    if (s == VLM_OK) s = vlm_backend_create(m->device, &bo, &m->be);
    if (s == VLM_OK) {
        report_progress(m, "loading", 0.0);
        s = prepare_and_load(m);
        report_progress(m, "loading", 1.0);
    }
    if (s != VLM_OK) {
        vlm_err_ctx(s, "loading %s (%s)", o->model_id, vlm_mode_name(o->mode));
        vlm_model_free(m);
        return s;
    }
    m->load_s = vlm_now() - t0;
    *out = m;
    return VLM_OK;
}

void vlm_model_free(vlm_model *m) {
    if (!m) return;
    vlm_vision_free(m->vision);
    if (m->onnx) vlm_ort_vision_close(m->onnx);
    vlm_text_model_free(m->text);
    vlm_tok_free(m->tok);
    vlm_vision_weights_free(&m->vw);
    vlm_text_weights_free(&m->tw);
    close_component(&m->vis);
    close_component(&m->lang);
    vlm_backend_destroy(m->be);
    pthread_mutex_destroy(&m->lock);
    vlm_free(m);
    vlm_release_free_memory(); /* what the model held goes back to the system, not to the next model's RSS */
}

void vlm_model_get_info(const vlm_model *m, vlm_model_info *info) {
    memset(info, 0, sizeof *info);
    if (!m) return;
    info->family = vlm_family_name(m->lang.cfg.family);
    info->resolved_path = m->source_dir;
    info->device_name = m->be ? m->be->device_name : "";
    info->device = m->device;
    info->mode = m->opt.mode;
    info->quantized = m->opt.quantize;
    info->vision_model_bytes = m->vision ? m->vis.bytes : 0;
    info->language_model_bytes = m->lang.bytes;
    info->onnx_model_bytes = m->onnx_bytes;
    info->load_s = m->load_s;
}

static int first_issue(void *user, const vlm_weight_issue *is) {
    vlm_weight_issue_describe(is, user, 512);
    return 1; /* the first is enough to name the cause */
}

void vlm_model_explain_nonfinite(vlm_model *m) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", vlm_last_error());
    if (!m->weights_scanned) {
        int n = 0;
        m->bad_weight[0] = '\0';
        if (m->lang.st) vlm_weights_scan_finite(m->lang.st, first_issue, m->bad_weight, &n);
        if (!n && m->vis.st && m->vis.st != m->lang.st)
            vlm_weights_scan_finite(m->vis.st, first_issue, m->bad_weight, &n);
        m->weights_scanned = 1;
    }
    if (m->bad_weight[0]) vlm_err(VLM_ERR_RUNTIME, "%s; the checkpoint's %s", msg, m->bad_weight);
    else vlm_err(VLM_ERR_RUNTIME, "%s; every weight of the checkpoint is finite, so a value overflowed", msg);
}
