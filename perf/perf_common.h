/* Shared by the micro-benchmarks that use OpenBLAS's sgemm as the f32 GEMM baseline. */
#ifndef VLM_BENCH_COMMON_H
#define VLM_BENCH_COMMON_H

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cpu.h"

/* Debian's OpenBLAS 0.3.21 does not know some newer CPU models (this workplace's Xeon, model 207)
 * and then runs its SSE3 kernels, which would make a meaningless baseline: re-run the program with
 * its AVX-512 kernels selected (OpenBLAS reads the variable when it is loaded). */
static inline void bench_fair_openblas(char **argv) {
    if (vlm_cpu_has_avx512() && strstr(openblas_get_config(), "Prescott") && !getenv("OPENBLAS_CORETYPE")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        execv("/proc/self/exe", argv);
    }
}

/* The 1-minute load average, printed next to results (this machine is often shared). */
static inline double bench_load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

#endif
