#include "runtime/split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/memory.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "runtime/artifact.h"

/* Support files each artifact carries (copied when the source has them). */
static const char *const k_vision_files[] = {"config.json", "preprocessor_config.json", NULL};
static const char *const k_language_files[] = {"config.json",
                                               "generation_config.json",
                                               "tokenizer.json",
                                               "tokenizer_config.json",
                                               "chat_template.json",
                                               "chat_template.jinja",
                                               "vocab.json",
                                               "merges.txt",
                                               "special_tokens_map.json",
                                               "added_tokens.json",
                                               NULL};

typedef struct {
    const vlm_safetensors *st;
    const vlm_st_entry **picked;
    vlm_progress_fn progress;
    void *user;
    const char *stage;
} copy_ctx;

static vlm_status copy_tensor(void *ctx, int i, vlm_st_writer *w) {
    copy_ctx *c = ctx;
    return vlm_st_writer_data(w, c->picked[i]->data, c->picked[i]->nbytes);
}

static void copy_progress(void *user, uint64_t done, uint64_t total) {
    copy_ctx *c = user;
    if (c->progress) c->progress(c->user, c->stage, total ? (double)done / (double)total : 1.0);
}

/* Writes one part into a temporary directory, then renames it over OUTPUT_DIR/<part>. */
static vlm_status write_part(const char *model_dir, const char *output_dir, const vlm_safetensors *st, const char *part,
                             const char *prefix, int want_vision, const char *const *files, vlm_progress_fn progress,
                             void *user) {
    char final_dir[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(final_dir, sizeof final_dir, output_dir, part));
    vlm_tmp_dir tmp;
    VLM_TRY(vlm_tmp_dir_create(&tmp, final_dir));
    const char *tmp_dir = tmp.path;

    /* the part's tensors, unchanged names and bytes */
    const vlm_st_entry **picked = vlm_calloc((size_t)st->n_entries + 1, sizeof *picked, "the tensors of a part");
    vlm_st_spec *specs = picked ? vlm_calloc((size_t)st->n_entries + 1, sizeof *specs, "the tensors of a part") : NULL;
    vlm_status s = (!picked || !specs) ? vlm_err_ctx(VLM_ERR_NOMEM, "splitting %s", model_dir) : VLM_OK;
    int n = 0;
    size_t lp = strlen(prefix);
    for (int i = 0; s == VLM_OK && i < st->n_entries; i++) {
        const vlm_st_entry *e = &st->entries[i];
        int is_vision = strncmp(e->name, prefix, lp) == 0;
        if (is_vision != want_vision) continue;
        picked[n] = e;
        specs[n] = (vlm_st_spec){.name = e->name, .dtype = e->dtype, .ndim = e->ndim};
        memcpy(specs[n].shape, e->shape, sizeof specs[n].shape);
        n++;
    }
    if (s == VLM_OK && n == 0) s = vlm_err(VLM_ERR_FORMAT, "%s has no %s tensors to split", model_dir, part);
    copy_ctx c = {.st = st, .picked = picked, .progress = progress, .user = user, .stage = part};
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    if (s == VLM_OK) s = vlm_st_write_sharded(tmp_dir, specs, n, 0, copy_tensor, &c, mk, mv, 1, copy_progress, &c);
    free(picked);
    free(specs);

    for (int i = 0; s == VLM_OK && files[i]; i++) {
        char src[VLM_PATH_MAX], dst[VLM_PATH_MAX];
        s = vlm_path_join(src, sizeof src, model_dir, files[i]);
        if (s == VLM_OK && !vlm_is_file(src)) continue;
        if (s == VLM_OK) s = vlm_path_join(dst, sizeof dst, tmp_dir, files[i]);
        if (s == VLM_OK) s = vlm_copy_file(src, dst);
    }
    if (s == VLM_OK) s = vlm_manifest_write_for(model_dir, tmp_dir, part);
    if (s == VLM_OK) s = vlm_artifact_publish(tmp_dir, final_dir);
    if (s == VLM_OK) vlm_tmp_dir_close(&tmp);
    else vlm_tmp_dir_abort(&tmp);
    return s;
}

/* Both parts of an open checkpoint (under the output directory's lock). */
static vlm_status split_open(const char *model_dir, const char *output_dir, const vlm_safetensors *st,
                             vlm_progress_fn progress, void *user) {
    vlm_checkpoint_parts parts;
    vlm_status s = vlm_detect_parts(st, &parts);
    if (s == VLM_OK && (!parts.has_vision || !parts.has_text))
        s = vlm_err(VLM_ERR_FORMAT, "%s must hold both a vision encoder and a language model to be split", model_dir);
    const char *prefix = vlm_vision_prefix(parts.naming);
    if (s == VLM_OK)
        s = write_part(model_dir, output_dir, st, VLM_SPLIT_VISION, prefix, 1, k_vision_files, progress, user);
    if (s == VLM_OK)
        s = write_part(model_dir, output_dir, st, VLM_SPLIT_LANGUAGE, prefix, 0, k_language_files, progress, user);
    return s;
}

vlm_status vlm_split_write(const char *model_dir, const char *output_dir, vlm_progress_fn progress, void *user) {
    vlm_safetensors *st;
    VLM_TRY(vlm_mkdirs(output_dir));
    vlm_dir_lock lock;
    VLM_TRY(vlm_writer_lock(output_dir, &lock));
    vlm_status s = vlm_st_open(model_dir, &st);
    if (s == VLM_OK) {
        s = split_open(model_dir, output_dir, st, progress, user);
        vlm_st_close(st);
    }
    vlm_writer_unlock(&lock);
    if (s != VLM_OK) vlm_err_ctx(s, "splitting %s into %s", model_dir, output_dir);
    return s;
}

int vlm_split_is_fresh(const char *model_dir, const char *output_dir, char *why, size_t cap) {
    char dir[VLM_PATH_MAX];
    const char *parts[] = {VLM_SPLIT_VISION, VLM_SPLIT_LANGUAGE};
    for (int i = 0; i < 2; i++) {
        if (vlm_path_join(dir, sizeof dir, output_dir, parts[i]) != VLM_OK) {
            snprintf(why, cap, "output directory path too long");
            return 0;
        }
        int fresh = vlm_manifest_is_fresh(dir, parts[i], model_dir, why, cap);
        if (fresh <= 0) return fresh;
    }
    return 1;
}

vlm_status vlm_split_ensure(const char *model_dir, const char *output_dir, vlm_progress_fn progress, void *user) {
    char why[VLM_PATH_MAX + 256];
    int fresh = vlm_split_is_fresh(model_dir, output_dir, why, sizeof why);
    if (fresh < 0) return vlm_err_ctx(VLM_ERR_NOMEM, "checking the split of %s", model_dir);
    if (fresh) return VLM_OK;
    /* stale or missing: look again under the lock, as another process may be writing it now */
    VLM_TRY(vlm_mkdirs(output_dir));
    vlm_dir_lock lock;
    VLM_TRY(vlm_writer_lock(output_dir, &lock));
    vlm_status s = VLM_OK;
    fresh = vlm_split_is_fresh(model_dir, output_dir, why, sizeof why);
    if (fresh < 0) s = vlm_err_ctx(VLM_ERR_NOMEM, "checking the split of %s", model_dir);
    if (fresh == 0) {
        VLM_LOG_I("splitting %s into %s/{vision,language} (%s)", model_dir, output_dir, why);
        s = vlm_split_write(model_dir, output_dir, progress, user);
    }
    vlm_writer_unlock(&lock);
    return s;
}
