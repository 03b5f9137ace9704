#include "base/cpu.h"

#include "base/pool.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vlm_cpu_features g_cpu;
static int g_cpu_ready;

const vlm_cpu_features *vlm_cpu(void) {
    if (!g_cpu_ready) {
        __builtin_cpu_init();
        g_cpu.avx2 = __builtin_cpu_supports("avx2");
        g_cpu.fma = __builtin_cpu_supports("fma");
        g_cpu.f16c = 1; /* part of the x86-64-v3 baseline this binary requires */
        g_cpu.avx512f = __builtin_cpu_supports("avx512f");
        g_cpu.avx512bw = __builtin_cpu_supports("avx512bw");
        g_cpu.avx512vl = __builtin_cpu_supports("avx512vl");
        g_cpu.avx512dq = __builtin_cpu_supports("avx512dq");
        g_cpu.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
        g_cpu.avx512_vnni = __builtin_cpu_supports("avx512vnni");
        g_cpu.amd = __builtin_cpu_is("amd");
        /* gcc 12 has no names for AVX-VNNI and AMX in __builtin_cpu_supports: read /proc. */
        FILE *f = fopen("/proc/cpuinfo", "r");
        if (f) {
            char line[8192];
            while (fgets(line, sizeof line, f)) {
                if (strncmp(line, "flags", 5) != 0) continue;
                g_cpu.avx_vnni = strstr(line, " avx_vnni") != NULL;
                g_cpu.amx_bf16 = strstr(line, " amx_bf16") != NULL;
                g_cpu.amx_int8 = strstr(line, " amx_int8") != NULL;
                break;
            }
            fclose(f);
        }
        g_cpu_ready = 1;
    }
    return &g_cpu;
}

int vlm_cpu_has_avx512(void) {
    const char *off = getenv("VLM_NO_AVX512");
    if (off && *off && strcmp(off, "0") != 0) return 0;
    const vlm_cpu_features *c = vlm_cpu();
    return c->avx512f && c->avx512bw && c->avx512vl && c->avx512dq;
}

const char *vlm_cpu_name(void) {
    static char name[256];
    if (name[0]) return name;
    snprintf(name, sizeof name, "unknown x86-64 CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return name;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t') p++;
                p[strcspn(p, "\n")] = '\0';
                snprintf(name, sizeof name, "%s", p);
            }
            break;
        }
    }
    fclose(f);
    return name;
}

static int g_threads;

void vlm_set_threads(int n) {
    g_threads = n > 0 ? n : 0;
    omp_set_num_threads(vlm_threads());
}

int vlm_threads(void) {
    if (g_threads > 0) return g_threads;
    const char *e = getenv("VLM_THREADS");
    if (e && atoi(e) > 0) return atoi(e);
    return vlm_cpu_count();
}
