/* Artifacts made from a checkpoint — the split parts (split.c), quantized copies (quantize.c) and
 * the ONNX export (onnx/) — and what tells a current one from a stale one: fingerprints of the
 * source checkpoint and manifests written beside the artifact.
 *
 * A fingerprint is cheap: the size and modification time of every config, tokenizer and
 * safetensors file, and a hash of each safetensors header — never a hash of the weights themselves
 * (7 GB). Directory artifacts (split, quantized) carry vlm_manifest.json; the ONNX export keeps its
 * own manifest (onnx/onnx_manifest.c, which also records the export options) built from the same
 * per-file fingerprint. Every artifact is written to a temporary directory or file first and put in
 * place when complete. */
#ifndef VLM_RUNTIME_ARTIFACT_H
#define VLM_RUNTIME_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "io/file.h"

enum { VLM_FINGERPRINT_LEN = 17 }; /* 16 hex digits + NUL */

/* One digest of a directory's config, tokenizer and safetensors files (the manifest excluded). */
vlm_status vlm_fingerprint_dir(const char *dir, char out[VLM_FINGERPRINT_LEN]);

/* The same facts file by file, to say which file changed: config.json, the safetensors index when
 * present and every safetensors file of a checkpoint. */
typedef struct {
    char name[256];
    uint64_t size;
    int64_t mtime_ns;
    char header[VLM_FINGERPRINT_LEN]; /* FNV-1a 64 of a safetensors header in hex, "" for other files */
} vlm_fingerprint_file;

typedef struct {
    char checkpoint[VLM_PATH_MAX]; /* the resolved (absolute) checkpoint directory */
    vlm_fingerprint_file *files;
    int n;
} vlm_checkpoint_fingerprint;

vlm_status vlm_checkpoint_fingerprint_take(const char *model_dir, vlm_checkpoint_fingerprint *fp);
void vlm_checkpoint_fingerprint_free(vlm_checkpoint_fingerprint *fp);

/* Directory artifact manifests (vlm_manifest.json inside the artifact directory). */
typedef struct {
    char kind[32];                         /* "vision", "language", "language-q4_0", "quantized-nf4", ... */
    char source[4096];                     /* absolute path of the source checkpoint */
    char fingerprint[VLM_FINGERPRINT_LEN]; /* of the source checkpoint */
    char artifact[VLM_FINGERPRINT_LEN];    /* of the artifact's own files (the manifest excluded) */
    char version[32];                      /* vlm version that wrote it */
} vlm_manifest;

vlm_status vlm_manifest_write(const char *artifact_dir, const vlm_manifest *m);
vlm_status vlm_manifest_read(const char *artifact_dir, vlm_manifest *m);
/* The last step of writing a directory artifact: the manifest of `kind` naming model_dir as its
 * source, with both fingerprints taken now. */
vlm_status vlm_manifest_write_for(const char *model_dir, const char *artifact_dir, const char *kind);
/* 1 when artifact_dir holds a manifest of `kind` made from source_dir as it is now; 0 when not,
 * and `why` says what differs (missing, other source, changed source, changed artifact); -1 when
 * it cannot tell for want of memory (the error is recorded: not a reason to rebuild). */
int vlm_manifest_is_fresh(const char *artifact_dir, const char *kind, const char *source_dir, char *why, size_t cap);

/* Puts the complete artifact directory tmp_dir in place of final_dir: an old final_dir is moved
 * aside, replaced, then removed (it stays when the rename fails). */
vlm_status vlm_artifact_publish(const char *tmp_dir, const char *final_dir);

#endif
