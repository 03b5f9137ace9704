/* The export manifest (vision.onnx.manifest.json): what an ONNX export was made from, so a later
 * load can tell whether it is still up to date (see vlm_onnx_export_current in onnx_vision.h). */
#ifndef VLM_RUNTIME_ONNX_MANIFEST_H
#define VLM_RUNTIME_ONNX_MANIFEST_H

#include "runtime/onnx/onnx_vision.h"

/* Writes out_dir's manifest for the export just written there (the last step of an export). */
vlm_status vlm_onnx_manifest_write(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o,
                                   int external);

#endif
