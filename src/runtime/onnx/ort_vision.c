/* The exported vision tower in an ONNX Runtime session (C API, CPU execution provider). */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <onnxruntime_c_api.h>

#include "base/cpu.h"
#include "base/log.h"
#include "base/memory.h"
#include "base/pool.h"
#include "io/file.h"
#include "runtime/onnx/onnx_vision.h"

struct vlm_ort_vision {
    const OrtApi *api;
    OrtEnv *env;
    OrtSession *session;
    OrtMemoryInfo *mem;
    int out_hidden, patch_dim, merge;
    char path[VLM_PATH_MAX];
};

static const OrtApi *get_api(char *reason, size_t cap) {
    const OrtApiBase *base = OrtGetApiBase();
    const OrtApi *api = base ? base->GetApi(ORT_API_VERSION) : NULL;
    if (!api && reason && cap)
        snprintf(reason, cap,
                 "run_onnx is unavailable: the ONNX Runtime library (version %s) does not provide C API "
                 "version %d, which vlm was compiled against",
                 base ? base->GetVersionString() : "?", ORT_API_VERSION);
    return api;
}

int vlm_ort_available(char *reason, size_t cap) {
    if (reason && cap) reason[0] = '\0';
    return get_api(reason, cap) != NULL;
}

/* Turns an ORT status into a vlm error: "<context>: <ORT's message>"; releases the status. */
static vlm_status ort_err(const OrtApi *api, OrtStatus *st, vlm_status code, const char *fmt, ...) VLM_PRINTF(4, 5);
static vlm_status ort_err(const OrtApi *api, OrtStatus *st, vlm_status code, const char *fmt, ...) {
    char ctx[VLM_PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    OrtErrorCode ec = api->GetErrorCode(st);
    if (ec == ORT_NO_SUCHFILE) code = VLM_ERR_NOT_FOUND;
    else if (ec == ORT_NO_MODEL || ec == ORT_INVALID_PROTOBUF || ec == ORT_INVALID_GRAPH) code = VLM_ERR_FORMAT;
    /* ORT's messages may carry its C++ source location and signature before the words that matter:
     * keep what follows the last "[ONNXRuntimeError] : N : CODE : " marker */
    const char *msg = api->GetErrorMessage(st), *m;
    while ((m = strstr(msg, "[ONNXRuntimeError] : "))) {
        const char *p = m + strlen("[ONNXRuntimeError] : ");
        for (int colons = 0; *p && colons < 2; p++) colons += *p == ':';
        msg = p + (*p == ' ');
    }
    int len = (int)strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) len--;
    vlm_status s = vlm_err(code, "%s: %.*s", ctx, len, msg);
    api->ReleaseStatus(st);
    return s;
}

#define ORT_TRY(v, call, code, ...)                                                                                    \
    do {                                                                                                               \
        OrtStatus *ort_st_ = (call);                                                                                   \
        if (ort_st_) return ort_err((v)->api, ort_st_, (code), __VA_ARGS__);                                           \
    } while (0)

static int has_provider(const OrtApi *api, const char *name) {
    char **list = NULL;
    int n = 0, found = 0;
    OrtStatus *st = api->GetAvailableProviders(&list, &n);
    if (st) {
        api->ReleaseStatus(st);
        return 0;
    }
    for (int i = 0; i < n; i++) found |= !strcmp(list[i], name);
    st = api->ReleaseAvailableProviders(list, n);
    if (st) api->ReleaseStatus(st);
    return found;
}

/* The CUDA provider is a separate library next to libonnxruntime (ORT lists the provider as
 * available whether or not that library was shipped, as in the npm onnxruntime-node build). */
static int cuda_provider_present(void) {
    Dl_info info;
    if (!dladdr((void *)OrtGetApiBase, &info) || !info.dli_fname) return 0;
    char path[VLM_PATH_MAX];
    const char *slash = strrchr(info.dli_fname, '/');
    int dir = slash ? (int)(slash - info.dli_fname) : 0;
    snprintf(path, sizeof path, "%.*s%slibonnxruntime_providers_cuda.so", dir, info.dli_fname, slash ? "/" : "");
    return vlm_is_file(path);
}

static vlm_status use_cuda(vlm_ort_vision *v, OrtSessionOptions *so) {
    const OrtApi *api = v->api;
    if (!has_provider(api, "CUDAExecutionProvider") || !cuda_provider_present())
        return vlm_err(VLM_ERR_UNAVAILABLE,
                       "run_onnx on cuda: this ONNX Runtime build (%s) has no CUDA execution "
                       "provider (the npm onnxruntime-node library is CPU-only: no libonnxruntime_providers_cuda.so); "
                       "run with --device cpu, or build vlm against an ONNX Runtime GPU release with ORT_ROOT",
                       OrtGetApiBase()->GetVersionString());
    OrtCUDAProviderOptionsV2 *cuda = NULL;
    ORT_TRY(v, api->CreateCUDAProviderOptions(&cuda), VLM_ERR_UNAVAILABLE, "run_onnx on cuda");
    OrtStatus *st = api->SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda);
    api->ReleaseCUDAProviderOptions(cuda);
    if (st) return ort_err(api, st, VLM_ERR_UNAVAILABLE, "run_onnx on cuda: adding the CUDA execution provider");
    return VLM_OK;
}

static vlm_status metadata_int(vlm_ort_vision *v, OrtModelMetadata *md, OrtAllocator *alloc, const char *key,
                               int *out) {
    char *value = NULL;
    ORT_TRY(v, v->api->ModelMetadataLookupCustomMetadataMap(md, alloc, key, &value), VLM_ERR_FORMAT, "%s", v->path);
    if (!value)
        return vlm_err(VLM_ERR_FORMAT, "%s has no %s metadata: not a vision tower exported by vlm export-onnx", v->path,
                       key);
    char *end;
    long x = strtol(value, &end, 10);
    int ok = *value && !*end && x > 0 && x < (1 << 24);
    *out = (int)x;
    OrtStatus *st = v->api->AllocatorFree(alloc, value);
    if (st) v->api->ReleaseStatus(st);
    if (!ok) return vlm_err(VLM_ERR_FORMAT, "%s: bad %s metadata", v->path, key);
    return VLM_OK;
}

static vlm_status read_metadata(vlm_ort_vision *v) {
    const OrtApi *api = v->api;
    OrtAllocator *alloc;
    OrtModelMetadata *md;
    ORT_TRY(v, api->GetAllocatorWithDefaultOptions(&alloc), VLM_ERR_RUNTIME, "ONNX Runtime allocator");
    ORT_TRY(v, api->SessionGetModelMetadata(v->session, &md), VLM_ERR_FORMAT, "%s", v->path);
    vlm_status s = metadata_int(v, md, alloc, "vlm.out_hidden", &v->out_hidden);
    if (s == VLM_OK) s = metadata_int(v, md, alloc, "vlm.patch_dim", &v->patch_dim);
    if (s == VLM_OK) s = metadata_int(v, md, alloc, "vlm.merge_size", &v->merge);
    int version = 0;
    if (s == VLM_OK) s = metadata_int(v, md, alloc, "vlm.exporter_version", &version);
    if (s == VLM_OK && version != VLM_ONNX_EXPORTER_VERSION)
        s = vlm_err(VLM_ERR_FORMAT, "%s was made by exporter version %d, this vlm needs %d: export it again", v->path,
                    version, VLM_ONNX_EXPORTER_VERSION);
    api->ReleaseModelMetadata(md);
    return s;
}

static vlm_status open_session(vlm_ort_vision *v, int threads, vlm_device device) {
    const OrtApi *api = v->api;
    /* ORT's own error lines would repeat what the returned error says */
    OrtLoggingLevel level = vlm_log_get_level() >= VLM_LOG_DEBUG ? ORT_LOGGING_LEVEL_WARNING : ORT_LOGGING_LEVEL_FATAL;
    ORT_TRY(v, api->CreateEnv(level, "vlm", &v->env), VLM_ERR_RUNTIME, "creating the ONNX Runtime environment");
    ORT_TRY(v, api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &v->mem), VLM_ERR_RUNTIME,
            "ONNX Runtime memory info");
    OrtSessionOptions *so = NULL;
    ORT_TRY(v, api->CreateSessionOptions(&so), VLM_ERR_RUNTIME, "ONNX Runtime session options");
    OrtStatus *st = api->SetIntraOpNumThreads(so, threads > 0 ? threads : vlm_cpu_count());
    if (!st) st = api->SetInterOpNumThreads(so, 1);
    if (!st) st = api->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL);
    /* VLM_ORT_PROFILE=PREFIX: ONNX Runtime writes a per-node timing profile PREFIX_<date>.json */
    const char *profile = getenv("VLM_ORT_PROFILE");
    if (!st && profile && *profile) st = api->EnableProfiling(so, profile);
    vlm_status s = st ? ort_err(api, st, VLM_ERR_RUNTIME, "ONNX Runtime session options") : VLM_OK;
    if (s == VLM_OK && device == VLM_DEV_CUDA) s = use_cuda(v, so);
    if (s == VLM_OK) {
        st = api->CreateSession(v->env, v->path, so, &v->session);
        if (st)
            s = ort_err(api, st, VLM_ERR_FORMAT,
                        "%s: ONNX Runtime cannot load it (corrupt or truncated? export "
                        "it again with vlm export-onnx)",
                        v->path);
    }
    api->ReleaseSessionOptions(so);
    return s;
}

vlm_status vlm_ort_vision_open(const char *path, int threads, vlm_device device, vlm_ort_vision **out) {
    *out = NULL;
    char reason[256];
    const OrtApi *api = get_api(reason, sizeof reason);
    if (!api) return vlm_err(VLM_ERR_UNAVAILABLE, "%s", reason);
    vlm_ort_vision *v = vlm_calloc(1, sizeof *v, "the ONNX Runtime session");
    if (!v) return VLM_ERR_NOMEM;
    v->api = api;
    vlm_status s = VLM_OK;
    if (vlm_is_dir(path)) s = vlm_path_join(v->path, sizeof v->path, path, VLM_ONNX_FILE);
    else if (snprintf(v->path, sizeof v->path, "%s", path) >= (int)sizeof v->path)
        s = vlm_err(VLM_ERR_INVALID, "path too long: %s", path);
    if (s == VLM_OK && !vlm_is_file(v->path))
        s = vlm_err(VLM_ERR_NOT_FOUND, "%s not found: export the vision tower first (vlm export-onnx)", v->path);
    if (s == VLM_OK) s = open_session(v, threads, device);
    if (s == VLM_OK) s = read_metadata(v);
    if (s != VLM_OK) {
        vlm_ort_vision_close(v);
        return s;
    }
    VLM_LOG_D("run_onnx: %s loaded (%d intra-op threads, out_hidden %d)", v->path,
              threads > 0 ? threads : vlm_cpu_count(), v->out_hidden);
    *out = v;
    return VLM_OK;
}

void vlm_ort_vision_close(vlm_ort_vision *v) {
    if (!v) return;
    if (v->session) v->api->ReleaseSession(v->session);
    if (v->mem) v->api->ReleaseMemoryInfo(v->mem);
    if (v->env) v->api->ReleaseEnv(v->env);
    free(v);
}

int vlm_ort_vision_out_hidden(const vlm_ort_vision *v) { return v->out_hidden; }
int vlm_ort_vision_patch_dim(const vlm_ort_vision *v) { return v->patch_dim; }

/* One graph call: rows of one image in, its merged rows out (checked against the expected shape). */
static vlm_status run_image(vlm_ort_vision *v, const float *pixels, int64_t rows, const vlm_grid_thw *grid,
                            float *out) {
    const OrtApi *api = v->api;
    int64_t pv_shape[2] = {rows, v->patch_dim}, grid_shape[2] = {1, 3};
    int64_t grid_copy[3] = {grid->t, grid->h, grid->w}; /* the graph's image_grid_thw is int64 */
    OrtValue *inputs[2] = {NULL, NULL}, *output = NULL;
    vlm_status s = VLM_OK;
    OrtStatus *st =
        api->CreateTensorWithDataAsOrtValue(v->mem, (void *)pixels, (size_t)(rows * v->patch_dim) * sizeof(float),
                                            pv_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &inputs[0]);
    if (!st)
        st = api->CreateTensorWithDataAsOrtValue(v->mem, grid_copy, sizeof grid_copy, grid_shape, 2,
                                                 ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &inputs[1]);
    const char *in_names[2] = {"pixel_values", "image_grid_thw"}, *out_names[1] = {"image_embeds"};
    if (!st) st = api->Run(v->session, NULL, in_names, (const OrtValue *const *)inputs, 2, out_names, 1, &output);
    if (st)
        s = ort_err(api, st, VLM_ERR_RUNTIME, "%s: running the vision tower on a %lldx%lldx%lld grid", v->path,
                    (long long)grid->t, (long long)grid->h, (long long)grid->w);
    OrtTensorTypeAndShapeInfo *info = NULL;
    int64_t dims[2] = {0, 0};
    size_t nd = 0;
    float *data = NULL;
    if (s == VLM_OK) {
        st = api->GetTensorTypeAndShape(output, &info);
        if (!st) st = api->GetDimensionsCount(info, &nd);
        if (!st && nd == 2) st = api->GetDimensions(info, dims, 2);
        if (!st) st = api->GetTensorMutableData(output, (void **)&data);
        if (st) s = ort_err(api, st, VLM_ERR_RUNTIME, "%s: reading the output", v->path);
        else if (!data) s = vlm_err(VLM_ERR_RUNTIME, "%s: the session returned no output data", v->path);
    }
    int64_t want = rows / ((int64_t)v->merge * v->merge);
    if (s == VLM_OK && (nd != 2 || dims[0] != want || dims[1] != v->out_hidden))
        s = vlm_err(VLM_ERR_FORMAT, "%s returned a [%lld, %lld] output, expected [%lld, %d]", v->path,
                    (long long)dims[0], (long long)dims[1], (long long)want, v->out_hidden);
    if (s == VLM_OK && data) memcpy(out, data, (size_t)(want * v->out_hidden) * sizeof(float));
    if (info) api->ReleaseTensorTypeAndShapeInfo(info);
    if (output) api->ReleaseValue(output);
    for (int i = 0; i < 2; i++)
        if (inputs[i]) api->ReleaseValue(inputs[i]);
    return s;
}

vlm_status vlm_ort_vision_run(vlm_ort_vision *v, const float *pixel_values, int64_t n_patches, int patch_dim,
                              const vlm_grid_thw *grids, int n_images, float *out, int64_t out_rows) {
    int64_t mm = (int64_t)v->merge * v->merge, row = 0;
    if (patch_dim != v->patch_dim)
        return vlm_err(VLM_ERR_INVALID, "run_onnx: pixel rows have %d values, %s expects %d", patch_dim, v->path,
                       v->patch_dim);
    if (n_images < 1) return vlm_err(VLM_ERR_INVALID, "run_onnx: no image");
    for (int i = 0; i < n_images; i++) {
        const vlm_grid_thw *g = &grids[i];
        if (g->t < 1 || g->h < 1 || g->w < 1 || g->h % v->merge || g->w % v->merge || g->h > (1 << 20) ||
            g->w > (1 << 20) || g->t > 4096)
            return vlm_err(VLM_ERR_INVALID,
                           "run_onnx: image %d has grid (%d, %d, %d); t >= 1 and h, w must be positive multiples "
                           "of %d",
                           i, g->t, g->h, g->w, v->merge);
        row += vlm_grid_patches(g);
    }
    if (row != n_patches)
        return vlm_err(VLM_ERR_INVALID, "run_onnx: the grids cover %lld patches but pixel_values has %lld rows",
                       (long long)row, (long long)n_patches);
    if (n_patches / mm > out_rows)
        return vlm_err(VLM_ERR_INVALID, "run_onnx: the output needs %lld rows, the buffer has %lld",
                       (long long)(n_patches / mm), (long long)out_rows);
    row = 0;
    for (int i = 0; i < n_images; i++) {
        int64_t rows = vlm_grid_patches(&grids[i]);
        VLM_TRY(run_image(v, pixel_values + row * patch_dim, rows, &grids[i], out + row / mm * v->out_hidden));
        row += rows;
    }
    return VLM_OK;
}
