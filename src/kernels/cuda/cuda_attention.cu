/* Attention on the GPU, never materialising an n_q x n_kv matrix.
 * - Many queries (prefill, vision): a flash-style kernel. A block of QB threads holds QB query rows
 *   of one head (queries in shared memory, one output accumulator per thread in registers), walks
 *   the union of their key ranges in tiles of TK keys staged in shared memory, and keeps an online
 *   softmax per query. Each query masks the keys outside its own range (causal limit, or its
 *   window / image segment).
 * - Few queries (decode) or head sizes without a specialised kernel: one block per (query, head);
 *   scores for the whole key range go to a scratch row, then softmax, then the weighted sum of V
 *   with threads over the head dimension. */
#include <math.h>

#include "cuda_common.cuh"

extern "C" {
#include "kernels/cpu/ref.h"
}

enum { QB = 32, TK = 16, FEW_THREADS = 256 };

struct attn_args {
    int n_q, n_kv, q_pos0, causal, has_ranges;
    int n_heads, group, q_stride, kv_stride, out_stride;
    float scale;
};

__device__ __forceinline__ void key_range(const attn_args &a, const int *ranges, int i, int *lo, int *hi) {
    if (a.causal) {
        *lo = 0;
        *hi = min(a.n_kv, a.q_pos0 + i + 1);
    } else if (a.has_ranges) {
        *lo = ranges[2 * i];
        *hi = ranges[2 * i + 1];
    } else {
        *lo = 0;
        *hi = a.n_kv;
    }
}

template <int HD>
__global__ void k_attn_tiled(float *out, const float *q, const float *k, const float *v, attn_args a,
                             const int *ranges) {
    __shared__ float qs[QB][HD + 1];
    __shared__ float ks[TK][HD];
    __shared__ float vs[TK][HD];
    __shared__ int blo, bhi;
    int h = blockIdx.y, kh = h / a.group;
    int i = blockIdx.x * QB + threadIdx.x;
    int active = i < a.n_q;
    int lo = 0, hi = 0;
    if (active) key_range(a, ranges, i, &lo, &hi);
    for (int d = 0; d < HD; d++) qs[threadIdx.x][d] = active ? q[(size_t)i * a.q_stride + (size_t)h * HD + d] : 0.0f;
    if (threadIdx.x == 0) {
        blo = 1 << 30;
        bhi = 0;
    }
    __syncthreads();
    if (active && hi > lo) {
        atomicMin(&blo, lo);
        atomicMax(&bhi, hi);
    }
    __syncthreads();
    float acc[HD];
    for (int d = 0; d < HD; d++) acc[d] = 0;
    float m = -INFINITY, l = 0;
    for (int j0 = blo; j0 < bhi; j0 += TK) {
        int nt = min(TK, bhi - j0);
        for (int e = threadIdx.x; e < nt * HD; e += QB) {
            int j = e / HD, d = e % HD;
            ks[j][d] = k[(size_t)(j0 + j) * a.kv_stride + (size_t)kh * HD + d];
            vs[j][d] = v[(size_t)(j0 + j) * a.kv_stride + (size_t)kh * HD + d];
        }
        __syncthreads();
        float s[TK];
        float tmax = -INFINITY;
        for (int j = 0; j < nt; j++) {
            int key = j0 + j;
            if (key < lo || key >= hi) {
                s[j] = -INFINITY;
                continue;
            }
            float dot = 0;
            for (int d = 0; d < HD; d++) dot += qs[threadIdx.x][d] * ks[j][d];
            s[j] = dot * a.scale;
            tmax = fmaxf(tmax, s[j]);
        }
        if (tmax > -INFINITY) {
            float nm = fmaxf(m, tmax);
            float corr = __expf(m - nm);
            l *= corr;
            for (int d = 0; d < HD; d++) acc[d] *= corr;
            for (int j = 0; j < nt; j++) {
                if (s[j] == -INFINITY) continue;
                float p = __expf(s[j] - nm);
                l += p;
                for (int d = 0; d < HD; d++) acc[d] += p * vs[j][d];
            }
            m = nm;
        }
        __syncthreads();
    }
    if (active) {
        float inv = l > 0 ? 1.0f / l : 0.0f;
        float *o = out + (size_t)i * a.out_stride + (size_t)h * HD;
        for (int d = 0; d < HD; d++) o[d] = acc[d] * inv;
    }
}

__device__ float block_reduce(float v, int is_max) {
    __shared__ float part[32];
    __shared__ float res;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float t = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, t) : v + t;
    }
    if (lane == 0) part[wid] = v;
    __syncthreads();
    if (wid == 0) {
        float t = lane < (int)(blockDim.x >> 5) ? part[lane] : (is_max ? -INFINITY : 0.0f);
        for (int o = 16; o > 0; o >>= 1) {
            float u = __shfl_xor_sync(0xffffffffu, t, o);
            t = is_max ? fmaxf(t, u) : t + u;
        }
        if (lane == 0) res = t;
    }
    __syncthreads();
    float r = res;
    __syncthreads();
    return r;
}

__global__ void k_attn_few(float *out, const float *q, const float *k, const float *v, attn_args a, const int *ranges,
                           float *scores, int hd) {
    int h = blockIdx.x, i = blockIdx.y, kh = h / a.group;
    int lo, hi;
    key_range(a, ranges, i, &lo, &hi);
    const float *qr = q + (size_t)i * a.q_stride + (size_t)h * hd;
    float *sc = scores + ((size_t)i * a.n_heads + h) * (size_t)a.n_kv;
    float mx = -INFINITY;
    for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) {
        const float *kr = k + (size_t)j * a.kv_stride + (size_t)kh * hd;
        float dot = 0;
        for (int d = 0; d < hd; d++) dot += qr[d] * kr[d];
        sc[j] = dot * a.scale;
        mx = fmaxf(mx, sc[j]);
    }
    mx = block_reduce(mx, 1);
    float sum = 0;
    for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) {
        sc[j] = __expf(sc[j] - mx);
        sum += sc[j];
    }
    sum = block_reduce(sum, 0);
    float inv = sum > 0 ? 1.0f / sum : 0.0f;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0;
        for (int j = lo; j < hi; j++) o += sc[j] * v[(size_t)j * a.kv_stride + (size_t)kh * hd + d];
        out[(size_t)i * a.out_stride + (size_t)h * hd + d] = o * inv;
    }
}

#define TILED_CASE(HD)                                                                                                 \
    case HD: k_attn_tiled<HD><<<grid, QB, 0, c->stream>>>(out, q, k, v, a, d_ranges); break;

void cuda_attention(vlm_backend *be, float *out, const float *q, const float *k, const float *v,
                    const vlm_attn_params *p) {
    cuda_impl *c = impl_of(be);
    if (p->n_q <= 0) return;
    attn_args a = {p->n_q,      p->n_kv,      p->q_pos0,     p->causal, 0, p->n_heads, p->n_heads / p->n_kv_heads,
                   p->q_stride, p->kv_stride, p->out_stride, p->scale};
    int *d_ranges = NULL;
    if (!p->causal && p->segments) { /* per-row key ranges, computed on the host */
        a.has_ranges = 1;
        size_t bytes = (size_t)p->n_q * 2 * sizeof(int);
        int *host = (int *)vlm_alloc(bytes, "attention ranges");
        d_ranges = (int *)cuda_scratch(be, (void **)&c->ranges, &c->ranges_cap, bytes, "attention ranges");
        if (!host || !d_ranges) {
            free(host);
            cuda_note(be, cudaErrorMemoryAllocation, "attention ranges");
            return;
        }
        for (int i = 0; i < p->n_q; i++) vlm_attn_key_range(p, i, &host[2 * i], &host[2 * i + 1]);
        cuda_note(be, cudaMemcpyAsync(d_ranges, host, bytes, cudaMemcpyHostToDevice, c->stream), "attention ranges");
        cudaStreamSynchronize(c->stream); /* host buffer freed next */
        free(host);
    }
    int hd = p->head_dim;
    int tiled = p->n_q > 4;
    if (tiled) {
        dim3 grid((unsigned)((p->n_q + QB - 1) / QB), (unsigned)p->n_heads);
        switch (hd) {
            TILED_CASE(16)
            TILED_CASE(20)
            TILED_CASE(32)
            TILED_CASE(40) TILED_CASE(64) TILED_CASE(80) TILED_CASE(96) TILED_CASE(128) default : tiled = 0;
        }
    }
    if (!tiled) {
        size_t need = (size_t)p->n_q * p->n_heads * (size_t)(p->n_kv > 0 ? p->n_kv : 1) * sizeof(float);
        float *sc = (float *)cuda_scratch(be, (void **)&c->scores, &c->scores_cap, need, "attention scores");
        if (!sc) return;
        dim3 grid((unsigned)p->n_heads, (unsigned)p->n_q);
        k_attn_few<<<grid, FEW_THREADS, 0, c->stream>>>(out, q, k, v, a, d_ranges, sc, hd);
    }
    CUDA_LAUNCH_CHECK(be, "attention");
}
