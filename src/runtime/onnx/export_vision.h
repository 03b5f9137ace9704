/* The vision tower graph (exporter internals; the contract is in onnx_vision.h). */
#ifndef VLM_RUNTIME_ONNX_EXPORT_VISION_H
#define VLM_RUNTIME_ONNX_EXPORT_VISION_H

#include "model/config.h"
#include "model/weights.h"
#include "runtime/onnx/export_graph.h"

/* Adds the nodes and weights of the vision tower to g: inputs pixel_values / image_grid_thw,
 * output image_embeds. The weights are views into the checkpoint mapping (keep it open until the
 * file is written). */
vlm_status vlm_onnx_build_vision(vlm_ox_graph *g, const vlm_model_config *cfg, const vlm_vision_weights *w);

#endif
