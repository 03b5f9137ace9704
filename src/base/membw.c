#include "base/membw.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/timer.h"

double vlm_measure_read_bandwidth(size_t bytes, int reps, int threads) {
    if (threads <= 0) threads = vlm_threads();
    size_t n = bytes / sizeof(__m256i) / 8 * 8;
    __m256i *buf = aligned_alloc(64, n * sizeof(__m256i));
    if (!buf) return 0;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = _mm256_set1_epi32((int)i); /* touch every page */
    double best = 0;
    volatile int sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = vlm_now();
        int acc_all = 0;
#pragma omp parallel num_threads(threads) reduction(^ : acc_all)
        {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
#pragma omp for schedule(static)
            for (size_t i = 0; i < n; i += 8) {
                a0 = _mm256_xor_si256(a0, _mm256_load_si256(buf + i));
                a1 = _mm256_xor_si256(a1, _mm256_load_si256(buf + i + 2));
                a2 = _mm256_xor_si256(a2, _mm256_load_si256(buf + i + 4));
                a3 = _mm256_xor_si256(a3, _mm256_load_si256(buf + i + 6));
                a0 = _mm256_xor_si256(a0, _mm256_load_si256(buf + i + 1));
                a1 = _mm256_xor_si256(a1, _mm256_load_si256(buf + i + 3));
                a2 = _mm256_xor_si256(a2, _mm256_load_si256(buf + i + 5));
                a3 = _mm256_xor_si256(a3, _mm256_load_si256(buf + i + 7));
            }
            __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
            acc_all ^= _mm256_extract_epi32(a, 0);
        }
        double dt = vlm_now() - t0;
        sink ^= acc_all;
        double gbs = (double)(n * sizeof(__m256i)) / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    free(buf);
    return best;
}
