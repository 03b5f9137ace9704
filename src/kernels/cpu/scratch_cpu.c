/* Per-thread scratch buffers of the CPU kernels and the choice of SIMD path. */
#include <stdlib.h>

#include "base/cpu.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"

static _Thread_local float *t_buf[VLM_SCRATCH_COUNT];
static _Thread_local size_t t_cap[VLM_SCRATCH_COUNT];

float *vlm_cpu_scratch(int slot, size_t floats) {
    if (slot < 0 || slot >= VLM_SCRATCH_COUNT) return NULL;
    if (floats <= t_cap[slot] && t_buf[slot]) return t_buf[slot];
    free(t_buf[slot]);
    t_buf[slot] = NULL;
    t_cap[slot] = 0;
    if (floats > ((size_t)-1 - 63) / sizeof(float)) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, (floats * sizeof(float) + 63) / 64 * 64 + 64) != 0) return NULL;
    t_buf[slot] = p;
    t_cap[slot] = floats;
    return p;
}

static int g_force_avx2 = -1; /* -1: not decided yet (VLM_NO_AVX512 read on first use) */
static int g_has_avx512 = -1;

void vlm_cpu_kernels_force_avx2(int on) { g_force_avx2 = on ? 1 : 0; }

int vlm_cpu_kernels_avx512(void) {
    if (g_has_avx512 < 0) g_has_avx512 = vlm_cpu_has_avx512(); /* VLM_NO_AVX512=1 makes it 0 */
    if (g_force_avx2 < 0) g_force_avx2 = 0;
    return g_has_avx512 && !g_force_avx2;
}
