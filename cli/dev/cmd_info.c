/* vlm info: what a checkpoint is — family, dimensions, parameter counts, dtypes, bytes on disk,
 * naming scheme and special token ids. The weights are bound, so a broken checkpoint fails here.
 * --check also reads every weight and lists the tensors holding NaN or infinity (exit 1 if any). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "io/hf_cache.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"
#include "tensor/quant.h"
#include "text/generation_config.h"

typedef struct {
    int64_t vision_params, text_params;
    uint64_t vision_bytes, text_bytes, file_bytes;
    int dtype_count[VLM_DT_COUNT];
} tally;

static void count(const vlm_safetensors *st, const vlm_checkpoint_parts *parts, tally *t) {
    memset(t, 0, sizeof *t);
    const char *vp = vlm_vision_prefix(parts->naming);
    for (int i = 0; i < st->n_entries; i++) {
        const vlm_st_entry *e = &st->entries[i];
        vlm_tensor tt = vlm_st_tensor(e);
        int64_t n = vlm_tensor_numel(&tt);
        /* a quantized tensor (U8 rows of blocks, format in __metadata__) counts its weights */
        char key[600];
        snprintf(key, sizeof key, "quant:%s", e->name);
        const char *tag = e->dtype == VLM_DT_U8 && e->ndim == 2 ? vlm_st_meta(st, e, key) : NULL;
        vlm_dtype qt;
        if (tag && vlm_quant_from_tag(tag, &qt) == 0) {
            n = e->shape[0] * (e->shape[1] / (int64_t)vlm_dtype_size(qt)) * vlm_dtype_block(qt);
            t->dtype_count[qt]++;
        }
        if (!strncmp(e->name, vp, strlen(vp))) {
            t->vision_params += n;
            t->vision_bytes += e->nbytes;
        } else {
            t->text_params += n;
            t->text_bytes += e->nbytes;
        }
        if (!tag) t->dtype_count[e->dtype]++;
    }
    for (int i = 0; i < st->n_files; i++) t->file_bytes += st->files[i].map.size;
}

/* --check: each tensor with a NaN or infinity, as text lines and as JSON objects. */
typedef struct {
    vlm_strbuf text, json;
} issues;

static int on_issue(void *user, const vlm_weight_issue *is) {
    issues *c = user;
    char line[1024];
    vlm_weight_issue_describe(is, line, sizeof line);
    vlm_sb_printf(&c->text, "                 %s\n", line);
    vlm_sb_printf(&c->json, "%s{\"name\": ", c->json.len ? ", " : "");
    vlm_sb_json_string(&c->json, is->name, strlen(is->name));
    vlm_sb_printf(&c->json, ", \"count\": %lld, \"row\": %lld, \"column\": %lld, \"in_block_scales\": %s}",
                  (long long)is->count, (long long)is->row, (long long)is->col, is->in_scales ? "true" : "false");
    return 0;
}

static void dtypes_str(const tally *t, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < VLM_DT_COUNT; d++)
        if (t->dtype_count[d] && n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "", vlm_dtype_name((vlm_dtype)d));
}

int cmd_info(int argc, char **argv) {
    const char *model_id = NULL;
    int json = 0, check = 0;
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &model_id, "ID", "checkpoint directory or Hugging Face model id"},
        {"--json", ARG_FLAG, &json, NULL, "print JSON instead of text"},
        {"--check", ARG_FLAG, &check, NULL, "read every weight and report NaN or infinity (exit 1 if any)"},
        {0},
    };
    int r = vlm_args_parse("info", "--model-id ID [--json] [--check]", spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    if (!model_id) return vlm_usage_error("info", "--model-id is required");

    char dir[VLM_PATH_MAX];
    vlm_model_config cfg;
    vlm_generation_config gen;
    vlm_safetensors *st = NULL;
    vlm_checkpoint_parts parts;
    vlm_vision_weights vw = {0};
    vlm_text_weights tw = {0};
    vlm_status s = vlm_resolve_model(model_id, dir, sizeof dir);
    if (s == VLM_OK) s = vlm_config_load(dir, &cfg);
    if (s == VLM_OK) s = vlm_generation_config_load(dir, &gen);
    if (s == VLM_OK) vlm_generation_config_default_eos(&gen, cfg.tokens.eos_ids, cfg.tokens.n_eos);
    if (s == VLM_OK) s = vlm_st_open(dir, &st);
    if (s == VLM_OK) s = vlm_detect_parts(st, &parts);
    if (s == VLM_OK) s = vlm_bind_weights(st, &cfg, parts.has_vision, parts.has_text, &vw, &tw);
    if (s != VLM_OK) {
        vlm_st_close(st);
        vlm_err_ctx(s, "%s", model_id);
        return vlm_cli_fail(s);
    }
    tally t;
    count(st, &parts, &t);
    issues bad = {0};
    int n_bad = 0;
    if (check) vlm_weights_scan_finite(st, on_issue, &bad, &n_bad);
    char dts[128];
    dtypes_str(&t, dts, sizeof dts);
    const vlm_text_config *tc = &cfg.text;
    const vlm_vision_config *vc = &cfg.vision;
    const char *naming = parts.naming == VLM_NAMES_NESTED ? "model.visual/model.language_model" : "visual/model";
    if (json) {
        vlm_strbuf b = {0};
        vlm_sb_printf(&b, "{\"path\": ");
        vlm_sb_json_string(&b, dir, strlen(dir));
        vlm_sb_printf(&b, ", \"family\": \"%s\", \"model_type\": \"%s\", \"naming\": \"%s\", \"dtypes\": \"%s\",\n",
                      vlm_family_name(cfg.family), cfg.model_type, naming, dts);
        vlm_sb_printf(&b, " \"has_vision\": %s, \"has_text\": %s,\n", parts.has_vision ? "true" : "false",
                      parts.has_text ? "true" : "false");
        vlm_sb_printf(&b,
                      " \"text\": {\"hidden_size\": %d, \"num_layers\": %d, \"num_heads\": %d, \"num_kv_heads\": %d, "
                      "\"head_dim\": %d, \"intermediate_size\": %d, \"vocab_size\": %d, \"tie_word_embeddings\": %s, "
                      "\"rope_theta\": %g, \"mrope_section\": [%d, %d, %d]},\n",
                      tc->hidden, tc->n_layers, tc->n_heads, tc->n_kv_heads, tc->head_dim, tc->intermediate, tc->vocab,
                      tc->tie_embeddings ? "true" : "false", tc->rope_theta, tc->mrope_section[0], tc->mrope_section[1],
                      tc->mrope_section[2]);
        vlm_sb_printf(&b,
                      " \"vision\": {\"depth\": %d, \"width\": %d, \"num_heads\": %d, \"head_dim\": %d, "
                      "\"mlp_hidden\": %d, \"out_hidden\": %d, \"patch_size\": %d, \"merge_size\": %d, "
                      "\"window_size\": %d, \"fullatt_blocks\": [",
                      vc->depth, vc->width, vc->n_heads, vc->head_dim, vc->mlp_hidden, vc->out_hidden, vc->patch_size,
                      vc->merge_size, cfg.family == VLM_FAMILY_QWEN2_5_VL ? vc->window_size : 0);
        for (int i = 0; i < vc->n_fullatt; i++) vlm_sb_printf(&b, "%s%d", i ? ", " : "", vc->fullatt_blocks[i]);
        vlm_sb_printf(&b, "]},\n \"params\": {\"vision\": %lld, \"language\": %lld, \"total\": %lld},\n",
                      (long long)t.vision_params, (long long)t.text_params,
                      (long long)(t.vision_params + t.text_params));
        vlm_sb_printf(&b, " \"bytes\": {\"vision\": %llu, \"language\": %llu, \"files\": %llu, \"num_files\": %d},\n",
                      (unsigned long long)t.vision_bytes, (unsigned long long)t.text_bytes,
                      (unsigned long long)t.file_bytes, st->n_files);
        vlm_sb_printf(&b,
                      " \"special_tokens\": {\"image\": %d, \"video\": %d, \"vision_start\": %d, "
                      "\"vision_end\": %d, \"bos\": %d, \"eos\": [",
                      cfg.tokens.image_token_id, cfg.tokens.video_token_id, cfg.tokens.vision_start_id,
                      cfg.tokens.vision_end_id, cfg.tokens.bos_token_id);
        for (int i = 0; i < gen.n_eos; i++) vlm_sb_printf(&b, "%s%d", i ? ", " : "", gen.eos_ids[i]);
        vlm_sb_printf(&b, "]}");
        if (check)
            vlm_sb_printf(&b, ",\n \"check\": {\"tensors\": %d, \"nonfinite\": [%s]}", st->n_entries,
                          bad.json.data ? bad.json.data : "");
        vlm_sb_printf(&b, "}\n");
        fputs(b.data, stdout);
        vlm_sb_free(&b);
    } else {
        printf("path:            %s\n", dir);
        printf("family:          %s (%s), naming %s, dtypes %s\n", vlm_family_name(cfg.family), cfg.model_type, naming,
               dts);
        printf("language model:  hidden %d, %d layers, %d heads / %d KV heads, head_dim %d, MLP %d, vocab %d, %s\n",
               tc->hidden, tc->n_layers, tc->n_heads, tc->n_kv_heads, tc->head_dim, tc->intermediate, tc->vocab,
               tc->tie_embeddings ? "tied lm_head" : "separate lm_head");
        printf("                 rope_theta %g, mrope_section [%d, %d, %d]\n", tc->rope_theta, tc->mrope_section[0],
               tc->mrope_section[1], tc->mrope_section[2]);
        printf("vision encoder:  %d blocks, width %d, %d heads (head_dim %d), MLP %d, merger -> %d\n", vc->depth,
               vc->width, vc->n_heads, vc->head_dim, vc->mlp_hidden, vc->out_hidden);
        if (cfg.family == VLM_FAMILY_QWEN2_5_VL) {
            printf("                 window %d px, full attention in blocks [", vc->window_size);
            for (int i = 0; i < vc->n_fullatt; i++) printf("%s%d", i ? ", " : "", vc->fullatt_blocks[i]);
            printf("]\n");
        }
        printf("parameters:      vision %.3f M, language %.3f M, total %.3f M (%.2f G)\n", t.vision_params / 1e6,
               t.text_params / 1e6, (t.vision_params + t.text_params) / 1e6, (t.vision_params + t.text_params) / 1e9);
        printf("bytes on disk:   vision %.1f MB, language %.1f MB, %d file(s) %.1f MB\n", t.vision_bytes / 1048576.0,
               t.text_bytes / 1048576.0, st->n_files, t.file_bytes / 1048576.0);
        printf("special tokens:  image %d, video %d, vision_start %d, vision_end %d, eos", cfg.tokens.image_token_id,
               cfg.tokens.video_token_id, cfg.tokens.vision_start_id, cfg.tokens.vision_end_id);
        for (int i = 0; i < gen.n_eos; i++) printf(" %d", gen.eos_ids[i]);
        printf("\n");
        if (check && !n_bad) printf("check:           all %d tensors are finite\n", st->n_entries);
        if (check && n_bad)
            printf("check:           %d of %d tensors hold NaN or infinity:\n%s", n_bad, st->n_entries, bad.text.data);
    }
    vlm_sb_free(&bad.text);
    vlm_sb_free(&bad.json);
    vlm_vision_weights_free(&vw);
    vlm_text_weights_free(&tw);
    vlm_st_close(st);
    if (n_bad) {
        vlm_err(VLM_ERR_FORMAT, "%s: %d tensor%s NaN or infinity (listed above)", model_id, n_bad,
                n_bad == 1 ? " holds" : "s hold");
        return vlm_cli_fail(VLM_ERR_FORMAT);
    }
    return 0;
}
