#include "text/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"

typedef struct {
    float v;
    int32_t i;
} scored;

struct vlm_sampler {
    int vocab;
    vlm_sampler_params p;
    unsigned char *seen; /* [vocab] */
    int32_t *seen_list;  /* the distinct ids seen, in first-seen order */
    int n_seen;
    scored *cand; /* [vocab] candidates of the sampling path */
    float *heap;  /* [vocab] top-k selection scratch */
    uint64_t rng[4];
};

vlm_sampler_params vlm_sampler_greedy(void) {
    return (vlm_sampler_params){
        .do_sample = 0, .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .repetition_penalty = 1.0f, .seed = 0};
}

/* What the caller set must be valid on its own, whatever else is set (temperature 0 does not make a
 * bad top_p acceptable). */
static vlm_status check_given(const vlm_sampling *u) {
    unsigned g = u->given;
    if ((g & VLM_SAMPLING_TEMPERATURE) && !(u->temperature >= 0 && isfinite(u->temperature)))
        return vlm_err(VLM_ERR_INVALID, "temperature %g must be a number >= 0 (0 means greedy)", u->temperature);
    if ((g & VLM_SAMPLING_TOP_K) && u->top_k < 0)
        return vlm_err(VLM_ERR_INVALID, "top_k %d must be >= 0 (0 turns it off)", u->top_k);
    if ((g & VLM_SAMPLING_TOP_P) && !(u->top_p > 0 && u->top_p <= 1))
        return vlm_err(VLM_ERR_INVALID, "top_p %g must be in (0, 1] (1 turns it off)", u->top_p);
    if ((g & VLM_SAMPLING_REPETITION_PENALTY) && !(u->repetition_penalty > 0 && isfinite(u->repetition_penalty)))
        return vlm_err(VLM_ERR_INVALID, "repetition penalty %g must be a positive number (1 turns it off)",
                       u->repetition_penalty);
    return VLM_OK;
}

vlm_status vlm_sampler_params_resolve(const vlm_generation_config *gc, const vlm_sampling *user,
                                      vlm_sampler_params *out) {
    if (user && user->greedy) {
        *out = vlm_sampler_greedy();
        return VLM_OK;
    }
    int from_gc = !user || user->use_generation_config;
    /* transformers' GenerationConfig defaults */
    vlm_sampler_params p = {.do_sample = 0,
                            .temperature = 1.0f,
                            .top_k = 50,
                            .top_p = 1.0f,
                            .repetition_penalty = 1.0f,
                            .seed = user ? user->seed : 0};
    if (from_gc && gc) {
        p.do_sample = gc->do_sample;
        p.temperature = gc->temperature;
        p.top_k = gc->top_k;
        p.top_p = gc->top_p;
        p.repetition_penalty = gc->repetition_penalty;
    }
    if (user) {
        VLM_TRY(check_given(user));
        unsigned g = user->given;
        if (g & VLM_SAMPLING_TEMPERATURE) p.temperature = user->temperature, p.do_sample = 1;
        if (g & VLM_SAMPLING_TOP_K) p.top_k = user->top_k, p.do_sample = 1;
        if (g & VLM_SAMPLING_TOP_P) p.top_p = user->top_p, p.do_sample = 1;
        if (g & VLM_SAMPLING_REPETITION_PENALTY) p.repetition_penalty = user->repetition_penalty;
    }
    if (p.do_sample && p.temperature == 0.0f) p.do_sample = 0; /* temperature 0: argmax */
    *out = p;
    return vlm_sampler_params_check(out);
}

vlm_status vlm_sampler_params_check(const vlm_sampler_params *p) {
    if (!(p->repetition_penalty > 0))
        return vlm_err(VLM_ERR_INVALID, "repetition penalty %g must be a positive number", p->repetition_penalty);
    if (!p->do_sample) return VLM_OK;
    if (!(p->temperature > 0))
        return vlm_err(VLM_ERR_INVALID, "temperature %g must be a positive number (0 means greedy)", p->temperature);
    if (p->top_k < 0) return vlm_err(VLM_ERR_INVALID, "top_k %d must be >= 0 (0 turns it off)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return vlm_err(VLM_ERR_INVALID, "top_p %g must be in (0, 1] (1 turns it off)", p->top_p);
    return VLM_OK;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256**: a uniform double in [0, 1) */
static double next_uniform(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return (double)(r >> 11) * 0x1.0p-53;
}

vlm_status vlm_sampler_create(int vocab, const vlm_sampler_params *p, vlm_sampler **out) {
    *out = NULL;
    if (vocab <= 0) return vlm_err(VLM_ERR_INVALID, "sampler: vocabulary size %d must be positive", vocab);
    VLM_TRY(vlm_sampler_params_check(p));
    vlm_sampler *s = vlm_calloc(1, sizeof *s, "the sampler");
    if (!s) return VLM_ERR_NOMEM;
    s->vocab = vocab;
    s->p = *p;
    s->seen = vlm_calloc((size_t)vocab, 1, "the sampler's seen-token set");
    s->seen_list = vlm_alloc((size_t)vocab * sizeof *s->seen_list, "the sampler's seen-token list");
    s->cand = vlm_alloc((size_t)vocab * sizeof *s->cand, "the sampler's candidates");
    s->heap = vlm_alloc((size_t)vocab * sizeof *s->heap, "the sampler's top-k heap");
    if (!s->seen || !s->seen_list || !s->cand || !s->heap) {
        vlm_sampler_free(s);
        return VLM_ERR_NOMEM;
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    *out = s;
    return VLM_OK;
}

void vlm_sampler_free(vlm_sampler *s) {
    if (!s) return;
    vlm_free(s->seen);
    vlm_free(s->seen_list);
    vlm_free(s->cand);
    vlm_free(s->heap);
    vlm_free(s);
}

void vlm_sampler_accept(vlm_sampler *s, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= s->vocab || s->seen[id]) continue;
        s->seen[id] = 1;
        s->seen_list[s->n_seen++] = id;
    }
}

static void apply_repetition_penalty(const vlm_sampler *s, float *logits) {
    float pen = s->p.repetition_penalty;
    if (pen == 1.0f) return;
    for (int i = 0; i < s->n_seen; i++) {
        float *v = &logits[s->seen_list[i]];
        *v = *v < 0 ? *v * pen : *v / pen;
    }
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Descending by value; equal values by id, so the order does not depend on qsort. */
static int cmp_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Min-heap sift-down on values (the heap's root is the smallest of the k largest seen). */
static void sift_down(float *h, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && h[l] < h[m]) m = l;
        if (r < k && h[r] < h[m]) m = r;
        if (m == i) return;
        float t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The k-th largest value of x (k <= n), using heap (k floats) as scratch. */
static float kth_largest(const float *x, int n, int k, float *heap) {
    for (int i = 0; i < k; i++) heap[i] = x[i];
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(heap, k, i);
    for (int i = k; i < n; i++)
        if (x[i] > heap[0]) {
            heap[0] = x[i];
            sift_down(heap, k, 0);
        }
    return heap[0];
}

/* Candidates after top-k (every logit >= the k-th largest), sorted descending; returns the count. */
static int top_k_candidates(vlm_sampler *s, const float *logits) {
    int V = s->vocab, k = s->p.top_k, n = 0;
    float lo = -INFINITY;
    if (k > 0 && k < V) lo = kth_largest(logits, V, k, s->heap);
    for (int i = 0; i < V; i++)
        if (logits[i] >= lo && logits[i] > -INFINITY) s->cand[n++] = (scored){logits[i], i};
    qsort(s->cand, (size_t)n, sizeof *s->cand, cmp_desc);
    return n;
}

/* top-p over n candidates sorted descending: how many of the most likely to keep. */
static int top_p_keep(const scored *c, int n, float top_p) {
    if (top_p >= 1.0f || n <= 1) return n;
    float mx = c[0].v;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += expf(c[i].v - mx);
    /* ascending cumulative probability (float32 probabilities, summed in double as torch's cumsum
     * does on the CPU); ids with cumulative <= 1 - top_p are removed, the top one never */
    float cut = (float)(1.0 - (double)top_p);
    double cum = 0;
    int removed = 0;
    for (int i = n - 1; i >= 1; i--) {
        cum += (float)(expf(c[i].v - mx) / sum);
        if ((float)cum <= cut) removed++;
        else break;
    }
    return n - removed;
}

int32_t vlm_sampler_sample(vlm_sampler *s, float *logits) {
    apply_repetition_penalty(s, logits);
    if (!s->p.do_sample) return argmax(logits, s->vocab);
    if (s->p.temperature != 1.0f)
        for (int i = 0; i < s->vocab; i++) logits[i] /= s->p.temperature;
    int n = top_k_candidates(s, logits);
    if (n == 0) return argmax(logits, s->vocab); /* every logit -inf or NaN: nothing to draw from */
    n = top_p_keep(s->cand, n, s->p.top_p);
    float mx = s->cand[0].v;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += expf(s->cand[i].v - mx);
    double u = next_uniform(s->rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += expf(s->cand[i].v - mx);
        if (u < acc) return s->cand[i].i;
    }
    return s->cand[n - 1].i;
}
