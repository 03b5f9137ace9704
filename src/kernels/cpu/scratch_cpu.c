/* Per-thread scratch buffers of the CPU kernels and the choice of SIMD path. */
#include <pthread.h>
#include <stdlib.h>

#include "base/cpu.h"
#include "base/memory.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"

/* One set of buffers per thread, freed by a thread-exit destructor (OpenMP teams shrink and grow
 * with the thread count, and their threads come and go). */
typedef struct {
    float *buf[VLM_SCRATCH_COUNT];
    size_t cap[VLM_SCRATCH_COUNT];
} scratch_set;

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static int g_key_ok;
static _Thread_local scratch_set *t_set;

static void destroy_set(void *p) {
    scratch_set *s = p;
    for (int i = 0; i < VLM_SCRATCH_COUNT; i++) free(s->buf[i]);
    free(s);
}

static void make_key(void) { g_key_ok = pthread_key_create(&g_key, destroy_set) == 0; }

static int g_no_scratch;

void vlm_cpu_kernels_test_no_scratch(int on) { g_no_scratch = on; }

float *vlm_cpu_scratch(int slot, size_t floats) {
    if (slot < 0 || slot >= VLM_SCRATCH_COUNT || g_no_scratch) return NULL;
    if (!t_set) {
        pthread_once(&g_key_once, make_key);
        if (!g_key_ok) return NULL;
        scratch_set *s = vlm_calloc(1, sizeof *s, "a thread's kernel scratch");
        if (!s) return NULL;
        if (pthread_setspecific(g_key, s) != 0) {
            free(s);
            return NULL;
        }
        t_set = s;
    }
    scratch_set *s = t_set;
    if (floats <= s->cap[slot] && s->buf[slot]) return s->buf[slot];
    free(s->buf[slot]);
    s->buf[slot] = NULL;
    s->cap[slot] = 0;
    if (floats > ((size_t)-1 - 127) / sizeof(float)) return NULL;
    void *p = vlm_alloc(floats * sizeof(float) + 64, "kernel scratch"); /* NULL: the caller's fallback runs */
    if (!p) return NULL;
    s->buf[slot] = p;
    s->cap[slot] = floats;
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
