/* CPU features (checked at run time so one binary runs on any AVX2 machine) and thread count. */
#ifndef VLM_BASE_CPU_H
#define VLM_BASE_CPU_H

typedef struct {
    int avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512dq; /* "avx512" below means all four */
    int avx512_bf16, avx512_vnni, avx_vnni;
    int amx_bf16, amx_int8;
    int amd; /* an AMD CPU (the memory system differs: see vlm_cpu_streams) */
} vlm_cpu_features;

const vlm_cpu_features *vlm_cpu(void);
/* 1 when the AVX-512 (F, BW, VL, DQ) kernels may run; VLM_NO_AVX512=1 forces 0 (for tests). */
int vlm_cpu_has_avx512(void);
/* The CPU model name from /proc/cpuinfo, e.g. "AMD EPYC 9R14". */
const char *vlm_cpu_name(void);

/* Threads of the offline tools (quantize, synthetic checkpoints, the bandwidth probe):
 * vlm_set_threads, else VLM_THREADS, else every core this process may use. Inference never reads
 * this: each backend has its own thread count (vlm_backend_options.threads, kernels/backend.h). */
void vlm_set_threads(int n);
int vlm_threads(void);

#endif
