/* run_onnx: the vision tower exported to ONNX (protobuf-c + onnx.proto) and run with ONNX Runtime.
 *
 * Export: `vlm_onnx_export(checkpoint_dir, out_dir, ...)` writes out_dir/vision.onnx (opset 17,
 * IR version 8, standard ops only: it passes onnx 1.12's checker), plus out_dir/vision.onnx.data
 * when the weights go to an external data file, plus out_dir/vision.onnx.manifest.json (what it was
 * made from) — written last, so an interrupted export reads as stale.
 *
 * Graph contract (one image per call):
 *   input  pixel_values    float32 [num_patches, C*T*P*P] (1176): the image processor's rows, in
 *                          its order (the 4 patches of each 2x2 merge group consecutive)
 *   input  image_grid_thw  int64   [1, 3]: (t, h, w) in patches of that one image; num_patches must
 *                          equal t*h*w and h, w must be even (the host checks; the graph does not)
 *   output image_embeds    float32 [num_patches/4, out_hidden]: merged features in the original
 *                          (raster) order — what replaces the image's <|image_pad|> tokens
 * Everything else (rotary angles, Qwen2.5-VL window gather/scatter indices and the key padding
 * mask) is computed inside the graph from image_grid_thw. Windows are attended densely as
 * [windows, heads, S, S] with S = 4 patches x (window_size/patch/merge)^2 = 64, never as an
 * N x N mask; full-attention blocks attend per frame of the image, one head at a time
 * ([t, 1, h*w, h*w] scores: 0.46 GB for a 1920x1080 image).
 * Several images: one graph call per image (vlm_ort_vision_run loops over the grid rows).
 *
 * Weights: kept in the checkpoint's dtype (BF16 / F16) with a Cast to float32 in the graph, or
 * converted to float32 at export (VLM_ONNX_WEIGHTS_F32); either way the math runs in float32 and
 * the results are the same (BF16 -> F32 is exact). The default keeps stored dtypes: half the disk
 * (1.34 GB instead of 2.68 GB for Qwen2.5-VL-3B), same speed (ONNX Runtime folds the Casts when it
 * loads the session). Weights go to the external data file when they exceed 256 MB (real
 * checkpoints; ONNX Runtime then maps them, which loads faster and with less memory than parsing
 * them out of the protobuf) — and must above protobuf's 2 GB limit; tiny checkpoints stay inline. */
#ifndef VLM_RUNTIME_ONNX_VISION_H
#define VLM_RUNTIME_ONNX_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "image/grid.h"
#include "kernels/backend.h"

#define VLM_ONNX_FILE "vision.onnx"
#define VLM_ONNX_DATA_FILE "vision.onnx.data"
#define VLM_ONNX_MANIFEST_FILE "vision.onnx.manifest.json"

/* Bumped whenever the graph changes, so exports made by an older exporter read as stale. */
enum { VLM_ONNX_EXPORTER_VERSION = 1 };

typedef enum {
    VLM_ONNX_WEIGHTS_STORED = 0, /* checkpoint dtype in the file, Cast to float32 in the graph */
    VLM_ONNX_WEIGHTS_F32 = 1     /* converted to float32 at export */
} vlm_onnx_weights;

typedef enum {
    VLM_ONNX_EXTERNAL_AUTO = 0, /* external data file when the weights exceed 256 MB */
    VLM_ONNX_EXTERNAL_ALWAYS = 1,
    VLM_ONNX_EXTERNAL_NEVER = 2 /* an error when the weights do not fit in one protobuf */
} vlm_onnx_external;

typedef struct {
    vlm_onnx_weights weights;
    vlm_onnx_external external;
} vlm_onnx_export_options;

void vlm_onnx_export_options_init(vlm_onnx_export_options *o);
const char *vlm_onnx_weights_name(vlm_onnx_weights w);              /* "stored" / "f32" */
int vlm_onnx_weights_parse(const char *s, vlm_onnx_weights *out);   /* 0 on success */
int vlm_onnx_external_parse(const char *s, vlm_onnx_external *out); /* "auto" | "always" | "never" */

/* 1 when this build can export (protobuf-c and onnx.proto were found); reason explains a 0. */
int vlm_onnx_export_available(char *reason, size_t cap);

/* Writes out_dir/vision.onnx (+ data file) and the manifest from the checkpoint directory
 * model_dir (created if needed; an older export there is replaced). */
vlm_status vlm_onnx_export(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o);

/* Is out_dir's export up to date for the checkpoint in model_dir? *current = 1 when the manifest
 * matches: same exporter version, same checkpoint path, config.json and every safetensors file
 * unchanged (size, mtime, header bytes), the export files present with their recorded sizes, and
 * (when o is not NULL) made with the same options. Otherwise *current = 0 and why says what
 * differs. Errors only for an unreadable checkpoint. */
vlm_status vlm_onnx_export_current(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o,
                                   int *current, char *why, size_t why_cap);

/* Exports when the export is missing or stale (logging why); *exported says whether it did. */
vlm_status vlm_onnx_ensure_export(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o,
                                  int *exported);

/* ---- ONNX Runtime session (CPU execution provider) ---- */

/* 1 when this build has ONNX Runtime and the library provides the C API version it was compiled
 * against; reason explains a 0. (include/vlm.h's vlm_onnx_available is this.) */
int vlm_ort_available(char *reason, size_t cap);

typedef struct vlm_ort_vision vlm_ort_vision;

/* Opens out_dir/vision.onnx (or a path ending in .onnx) with intra-op threads = threads (0 = every
 * core). device: VLM_DEV_CPU; VLM_DEV_CUDA is refused with the reason when the ONNX Runtime
 * library has no CUDA execution provider (the npm onnxruntime-node build has none). A missing,
 * corrupt or truncated file is an error naming it, with ONNX Runtime's own message. */
vlm_status vlm_ort_vision_open(const char *path, int threads, vlm_device device, vlm_ort_vision **out);
void vlm_ort_vision_close(vlm_ort_vision *v);
/* Width of one output row (the text hidden size). */
int vlm_ort_vision_out_hidden(const vlm_ort_vision *v);
/* Values in one input row (C*T*P*P). */
int vlm_ort_vision_patch_dim(const vlm_ort_vision *v);
/* Runs the images of one request: pixel_values [n_patches, patch_dim] (rows of all images, in
 * order) and their grids. Writes n_patches/4 rows of out_hidden floats to out (out_rows
 * is the caller's capacity in rows). One graph call per image. */
vlm_status vlm_ort_vision_run(vlm_ort_vision *v, const float *pixel_values, int64_t n_patches, int patch_dim,
                              const vlm_grid_thw *grids, int n_images, float *out, int64_t out_rows);

#endif
