/* vlm preprocess: decode image files and run the model's image processor on them, writing what the
 * vision tower takes: pixel_values (F32 [patches, 3·T·P²]: 1176 wide for the published models) and
 * image_grid_thw (I64 [images, 3]), with several images concatenated in order, as transformers'
 * processor returns them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "commands.h"
#include "image/preproc_config.h"
#include "image/preprocess.h"
#include "io/hf_cache.h"
#include "io/safetensors.h"

static vlm_status run(const char *model_id, const vlm_arg_list *images, long long min_px, long long max_px,
                      long long limit, const char *out) {
    char dir[VLM_PATH_MAX];
    vlm_preproc_config cfg;
    VLM_TRY(vlm_resolve_model(model_id, dir, sizeof dir));
    vlm_status s = vlm_preproc_config_load(dir, &cfg);
    if (s != VLM_OK) return vlm_err_ctx(s, "%s", model_id);

    vlm_pool *pool = NULL; /* one thread per core, as vlm run's default */
    s = vlm_pool_create(0, &pool);
    if (s != VLM_OK) return s;
    vlm_pixel_values *pv = vlm_calloc((size_t)images->n, sizeof *pv, "the images' pixel values");
    int64_t *grid = NULL;
    float *all = NULL;
    int n = 0;
    int64_t total = 0;
    if (!pv) {
        vlm_pool_free(pool);
        return VLM_ERR_NOMEM;
    }
    for (; n < images->n; n++) {
        const char *path = images->v[n];
        double t0 = vlm_now();
        vlm_image img;
        vlm_image_info info;
        s = vlm_image_decode_file(path, limit, &img, &info);
        if (s != VLM_OK) goto done;
        double t1 = vlm_now();
        s = vlm_preprocess_image(&img, &cfg, min_px, max_px, pool, &pv[n]);
        if (s != VLM_OK) {
            vlm_err_ctx(s, "%s", path);
            vlm_image_free(&img);
            n++;
            goto done;
        }
        VLM_LOG_I("%s: %s %dx%d (%s%s) -> resized %dx%d (h x w), grid [%d, %d, %d], %lld patches; "
                  "decode %.1f ms, preprocess %.1f ms",
                  path, vlm_image_format_name(info.format), img.width, img.height, info.mode,
                  info.orientation != 1 ? ", EXIF-rotated" : "", pv[n].resized_h, pv[n].resized_w, pv[n].grid.t,
                  pv[n].grid.h, pv[n].grid.w, (long long)pv[n].n_patches, (t1 - t0) * 1e3, (vlm_now() - t1) * 1e3);
        vlm_image_free(&img);
        total += pv[n].n_patches;
    }
    const int dim = pv[0].patch_dim;
    grid = vlm_alloc(sizeof(int64_t) * 3 * (size_t)n, "image_grid_thw");
    all = n == 1 ? pv[0].data : vlm_alloc((size_t)total * dim * sizeof(float), "pixel_values");
    if (!grid || !all) {
        s = VLM_ERR_NOMEM;
        goto done;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        grid[3 * i] = pv[i].grid.t, grid[3 * i + 1] = pv[i].grid.h, grid[3 * i + 2] = pv[i].grid.w;
        if (n > 1) memcpy(all + off, pv[i].data, (size_t)pv[i].n_patches * dim * sizeof(float));
        off += (size_t)pv[i].n_patches * dim;
    }
    vlm_st_spec specs[2] = {{"pixel_values", VLM_DT_F32, 2, {total, dim}}, {"image_grid_thw", VLM_DT_I64, 2, {n, 3}}};
    const void *data[2] = {all, grid};
    const char *keys[1] = {"format"}, *values[1] = {"pt"};
    s = vlm_st_save(out, specs, data, 2, keys, values, 1);
    if (s == VLM_OK)
        VLM_LOG_I("wrote %s: pixel_values [%lld, %d], image_grid_thw [%d, 3]", out, (long long)total, dim, n);
done:
    if (all && n > 1) vlm_free(all);
    vlm_free(grid);
    for (int i = 0; i < n; i++) vlm_pixel_values_free(&pv[i]);
    vlm_free(pv);
    vlm_pool_free(pool);
    return s;
}

int cmd_preprocess(int argc, char **argv) {
    const char *model_id = NULL, *out = NULL;
    vlm_arg_list images = {0};
    long long min_px = 0, max_px = 0, limit = 0;
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &model_id, "ID",
         "checkpoint directory or Hugging Face model id (its preprocessor_config.json)"},
        {"--image", ARG_LIST, &images, "FILE", "JPEG or PNG file; several are concatenated in order"},
        {"--min-pixels", ARG_LLONG, &min_px, "N", "override min_pixels of preprocessor_config.json"},
        {"--max-pixels", ARG_LLONG, &max_px, "N", "override max_pixels of preprocessor_config.json"},
        {"--max-image-pixels", ARG_LLONG, &limit, "N",
         "refuse image files with more pixels than this (default 178956970, Pillow's limit)"},
        {"--out", ARG_STR, &out, "FILE", "output .safetensors: pixel_values (F32), image_grid_thw (I64)"},
        {0},
    };
    const char *synopsis = "--model-id ID --image FILE [--image FILE ...] [--min-pixels N] [--max-pixels N] --out FILE";
    int r = vlm_args_parse("preprocess", synopsis, spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    if (!model_id) return vlm_usage_error("preprocess", "--model-id is required");
    if (!images.n) return vlm_usage_error("preprocess", "--image is required");
    if (!out) return vlm_usage_error("preprocess", "--out is required");
    if (min_px < 0 || max_px < 0 || limit < 0)
        return vlm_usage_error("preprocess", "--min-pixels, --max-pixels and --max-image-pixels must be positive");
    vlm_status s = vlm_check_output_path(out, "--out");
    if (s == VLM_OK) s = run(model_id, &images, min_px, max_px, limit, out);
    return s == VLM_OK ? 0 : vlm_cli_fail(s);
}
