/* A cheap fingerprint of a checkpoint directory, to tell whether artifacts made from it (split,
 * ONNX export, quantized copy) are stale: the size and modification time of every config,
 * tokenizer and safetensors file, and a hash of each safetensors header — never a hash of the
 * weights themselves (7 GB). */
#ifndef VLM_RUNTIME_FINGERPRINT_H
#define VLM_RUNTIME_FINGERPRINT_H

#include <stddef.h>

#include "base/error.h"

enum { VLM_FINGERPRINT_LEN = 17 }; /* 16 hex digits + NUL */

vlm_status vlm_fingerprint_dir(const char *dir, char out[VLM_FINGERPRINT_LEN]);

/* Artifact manifests (vlm_manifest.json inside an artifact directory). */
typedef struct {
    char kind[32];                         /* "vision", "language", "onnx-vision", "language-q4_0", ... */
    char source[4096];                     /* absolute path of the source checkpoint */
    char fingerprint[VLM_FINGERPRINT_LEN]; /* of the source checkpoint */
    char artifact[VLM_FINGERPRINT_LEN];    /* of the artifact's own files (the manifest excluded) */
    char version[32];                      /* vlm version that wrote it */
} vlm_manifest;

vlm_status vlm_manifest_write(const char *artifact_dir, const vlm_manifest *m);
vlm_status vlm_manifest_read(const char *artifact_dir, vlm_manifest *m);
/* 1 when artifact_dir holds a manifest of `kind` made from source_dir as it is now; otherwise 0
 * and `why` says what differs (missing, other source, changed source). */
int vlm_manifest_is_fresh(const char *artifact_dir, const char *kind, const char *source_dir, char *why, size_t cap);

#endif
