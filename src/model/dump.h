/* --dump: collects intermediate tensors under the fixtures' names (expected.safetensors) and writes
 * them to one safetensors file, so any run can be compared stage by stage with the reference.
 * A NULL dump makes every call a no-op, so model code calls these unconditionally. */
#ifndef VLM_MODEL_DUMP_H
#define VLM_MODEL_DUMP_H

#include <stdint.h>

#include "image/grid.h"
#include "kernels/backend.h"

typedef struct vlm_dump vlm_dump;

vlm_status vlm_dump_create(vlm_dump **out);
void vlm_dump_free(vlm_dump *d);
/* Copies rows x cols floats from device memory (of backend be). Replaces an earlier tensor of the
 * same name. */
vlm_status vlm_dump_f32(vlm_dump *d, vlm_backend *be, const char *name, const float *dev, int64_t rows, int64_t cols);
/* A host f32 tensor of any shape. */
vlm_status vlm_dump_f32_host(vlm_dump *d, const char *name, const float *data, int ndim, const int64_t *shape);
/* A host integer tensor (stored as I64). */
vlm_status vlm_dump_i64(vlm_dump *d, const char *name, const int64_t *data, int ndim, const int64_t *shape);
vlm_status vlm_dump_i32_as_i64(vlm_dump *d, const char *name, const int32_t *data, int ndim, const int64_t *shape);
/* Image grids as the processor's image_grid_thw: I64 [n, 3]. */
vlm_status vlm_dump_grids(vlm_dump *d, const char *name, const vlm_grid_thw *grids, int n);
/* Writes everything collected (atomically). */
vlm_status vlm_dump_write(const vlm_dump *d, const char *path);

#endif
