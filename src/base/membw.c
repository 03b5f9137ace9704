#include "base/membw.h"
#include "base/memory.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/timer.h"

/* Each thread reads its share either as one sequential stream or as 4 interleaved streams (4
 * distant regions in lockstep), alternately, and the best rate of either counts: the memory systems
 * differ (a Sapphire Rapids core reads ~14 GB/s from one stream and ~20 from four; 2 AMD Zen 4 cores
 * read more from one stream each than from four), and the decode kernels stream the faster way
 * (vlm_cpu_streams). */
static size_t read_share(const __m256i *buf, size_t n, int nt, int id, int streams, int *acc_out) {
    size_t per = n / (size_t)nt / (size_t)streams / 8 * 8; /* vectors per stream */
    const __m256i *s = buf + (size_t)id * per * (size_t)streams;
    /* 4 accumulators read pairs of vectors: 4 distant regions (gap: a stream's length) or 4
     * neighbouring pairs of one stream (gap: 2 vectors) */
    size_t gap = streams == 1 ? 2 : per, step = streams == 1 ? 8 : 2;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < per; i += step) {
        a0 = _mm256_xor_si256(a0, _mm256_xor_si256(_mm256_load_si256(s + i), _mm256_load_si256(s + i + 1)));
        a1 = _mm256_xor_si256(a1, _mm256_xor_si256(_mm256_load_si256(s + gap + i), _mm256_load_si256(s + gap + i + 1)));
        a2 = _mm256_xor_si256(
            a2, _mm256_xor_si256(_mm256_load_si256(s + 2 * gap + i), _mm256_load_si256(s + 2 * gap + i + 1)));
        a3 = _mm256_xor_si256(
            a3, _mm256_xor_si256(_mm256_load_si256(s + 3 * gap + i), _mm256_load_si256(s + 3 * gap + i + 1)));
    }
    __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    *acc_out ^= _mm256_extract_epi32(a, 0);
    return (size_t)streams * per * sizeof(__m256i);
}

double vlm_measure_read_bandwidth(size_t bytes, int reps, int threads) {
    if (threads <= 0) threads = vlm_threads();
    size_t n = bytes / sizeof(__m256i) / 8 * 8;
    __m256i *buf = vlm_alloc(n * sizeof(__m256i), "the bandwidth probe's buffer");
    if (!buf) return 0; /* 0: not measured (the error names why) */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = _mm256_set1_epi32((int)i); /* touch every page */
    double best = 0;
    volatile int sink = 0;
    for (int r = 0; r < 2 * reps; r++) {
        size_t read = 0;
        int acc_all = 0, streams = r & 1 ? 4 : 1;
        double t0 = vlm_now();
#pragma omp parallel num_threads(threads) reduction(^ : acc_all) reduction(+ : read)
        read += read_share(buf, n, omp_get_num_threads(), omp_get_thread_num(), streams, &acc_all);
        double dt = vlm_now() - t0;
        sink ^= acc_all;
        double gbs = (double)read / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    (void)sink;
    free(buf);
    return best;
}
