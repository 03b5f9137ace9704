/* The sampler: argmax, repetition penalty on positive and negative logits, and sampling statistics
 * with a fixed seed (temperature, top-k with ties, top-p), determinism, parameter resolution. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "text/sampler.h"

enum { DRAWS = 20000 };

/* Frequencies of DRAWS samples from logits (copied before each draw). */
static void frequencies(vlm_sampler *s, const float *logits, int V, double *freq) {
    float *tmp = malloc((size_t)V * sizeof *tmp);
    memset(freq, 0, (size_t)V * sizeof *freq);
    for (int i = 0; i < DRAWS; i++) {
        memcpy(tmp, logits, (size_t)V * sizeof *tmp);
        int32_t id = vlm_sampler_sample(s, tmp);
        if (id >= 0 && id < V) freq[id] += 1.0 / DRAWS;
    }
    free(tmp);
}

static vlm_sampler_params sampling(float temperature, int top_k, float top_p, uint64_t seed) {
    return (vlm_sampler_params){.do_sample = 1,
                                .temperature = temperature,
                                .top_k = top_k,
                                .top_p = top_p,
                                .repetition_penalty = 1.0f,
                                .seed = seed};
}

/* |freq - want| within 5 standard deviations of a binomial proportion (+ a small floor). */
static void check_freq(const char *what, const double *freq, const double *want, int V) {
    for (int i = 0; i < V; i++) {
        double sd = sqrt(want[i] * (1 - want[i]) / DRAWS);
        CHECK_MSG(fabs(freq[i] - want[i]) <= 5 * sd + 1e-9, "%s: id %d drawn %.4f, expected %.4f", what, i, freq[i],
                  want[i]);
    }
}

static void softmax(const float *x, int n, double t, double *p) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x[i] / t);
    for (int i = 0; i < n; i++) sum += p[i] = exp(x[i] / t - mx);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

static void test_greedy(void) {
    vlm_sampler_params p = vlm_sampler_greedy();
    vlm_sampler *s = NULL;
    CHECK_OK(vlm_sampler_create(5, &p, &s));
    float l[5] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
    CHECK(vlm_sampler_sample(s, l) == 1); /* the first maximum */
    vlm_sampler_free(s);
}

static void test_repetition_penalty(void) {
    vlm_sampler_params p = vlm_sampler_greedy();
    p.repetition_penalty = 2.0f;
    vlm_sampler *s = NULL;
    CHECK_OK(vlm_sampler_create(5, &p, &s));
    int32_t seen[4] = {0, 1, 0, 99}; /* duplicates count once; ids outside the vocabulary are ignored */
    vlm_sampler_accept(s, seen, 4);
    float l[5] = {3.0f, -2.0f, 1.6f, 0.0f, -0.5f};
    int32_t id = vlm_sampler_sample(s, l);
    CHECK(l[0] == 1.5f);  /* positive: divided */
    CHECK(l[1] == -4.0f); /* negative: multiplied */
    CHECK(l[2] == 1.6f && l[3] == 0.0f && l[4] == -0.5f);
    CHECK(id == 2); /* 1.6 now beats the penalized 1.5 */
    /* generated ids join the seen set */
    vlm_sampler_accept(s, &id, 1);
    float l2[5] = {3.0f, -2.0f, 1.6f, 0.0f, -0.5f};
    CHECK(vlm_sampler_sample(s, l2) == 0 && l2[2] == 0.8f);
    vlm_sampler_free(s);
}

static void test_temperature(void) {
    float l[4] = {1.0f, 0.5f, 0.0f, -1.0f};
    double f[4], want[4];
    vlm_sampler_params p = sampling(0.7f, 0, 1.0f, 42);
    vlm_sampler *s = NULL;
    CHECK_OK(vlm_sampler_create(4, &p, &s));
    frequencies(s, l, 4, f);
    softmax(l, 4, 0.7f, want);
    check_freq("temperature 0.7", f, want, 4);
    vlm_sampler_free(s);
    p = sampling(2.0f, 0, 1.0f, 43);
    CHECK_OK(vlm_sampler_create(4, &p, &s));
    frequencies(s, l, 4, f);
    softmax(l, 4, 2.0, want);
    check_freq("temperature 2", f, want, 4);
    vlm_sampler_free(s);
}

static void test_top_k(void) {
    float l[5] = {0.2f, 1.0f, -0.3f, 0.8f, 0.1f};
    double f[5];
    vlm_sampler_params p = sampling(1.0f, 2, 1.0f, 7);
    vlm_sampler *s = NULL;
    CHECK_OK(vlm_sampler_create(5, &p, &s));
    frequencies(s, l, 5, f);
    double e1 = exp(1.0), e3 = exp(0.8);
    double want[5] = {0, e1 / (e1 + e3), 0, e3 / (e1 + e3), 0};
    check_freq("top-k 2", f, want, 5);
    CHECK(f[0] == 0 && f[2] == 0 && f[4] == 0);
    vlm_sampler_free(s);
    /* ties at the k-th value are kept (transformers removes only logits < the k-th largest) */
    float t[4] = {1.0f, 1.0f, 1.0f, 0.0f};
    p = sampling(1.0f, 2, 1.0f, 8);
    CHECK_OK(vlm_sampler_create(4, &p, &s));
    frequencies(s, t, 4, f);
    double want_t[4] = {1 / 3.0, 1 / 3.0, 1 / 3.0, 0};
    check_freq("top-k ties", f, want_t, 4);
    vlm_sampler_free(s);
}

static void test_top_p(void) {
    float l[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    double f[4];
    vlm_sampler *s = NULL;
    /* ascending cumulative 0.05, 0.20, 0.50, 1: with top_p 0.75 those <= 0.25 go */
    vlm_sampler_params p = sampling(1.0f, 0, 0.75f, 11);
    CHECK_OK(vlm_sampler_create(4, &p, &s));
    frequencies(s, l, 4, f);
    double want[4] = {0.625, 0.375, 0, 0};
    check_freq("top-p 0.75", f, want, 4);
    vlm_sampler_free(s);
    /* top_p 0.9: only the 0.05 tail (cumulative 0.05 <= 0.1) goes */
    p = sampling(1.0f, 0, 0.9f, 12);
    CHECK_OK(vlm_sampler_create(4, &p, &s));
    frequencies(s, l, 4, f);
    double want9[4] = {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0};
    check_freq("top-p 0.9", f, want9, 4);
    vlm_sampler_free(s);
    /* a tiny top_p keeps the most likely token only (the generation config of the real models) */
    p = sampling(0.1f, 1, 0.001f, 13);
    p.repetition_penalty = 1.05f;
    CHECK_OK(vlm_sampler_create(4, &p, &s));
    frequencies(s, l, 4, f);
    CHECK(fabs(f[0] - 1.0) < 1e-9 && f[1] == 0 && f[2] == 0 && f[3] == 0);
    vlm_sampler_free(s);
}

static void test_large_vocab(void) {
    enum { V = 151936 };
    float *l = malloc(V * sizeof *l), *tmp = malloc(V * sizeof *tmp);
    uint64_t st = 5;
    for (int i = 0; i < V; i++) l[i] = 3 * test_rand(&st);
    /* the 50 largest */
    float *sorted = malloc(V * sizeof *sorted);
    memcpy(sorted, l, V * sizeof *l);
    float kth = -INFINITY;
    for (int k = 0; k < 50; k++) { /* 50 passes of max: simple and obviously right */
        int best = -1;
        for (int i = 0; i < V; i++)
            if (sorted[i] > -INFINITY && (best < 0 || sorted[i] > sorted[best])) best = i;
        kth = sorted[best];
        sorted[best] = -INFINITY;
    }
    vlm_sampler_params p = sampling(1.0f, 50, 0.95f, 3);
    vlm_sampler *s = NULL;
    CHECK_OK(vlm_sampler_create(V, &p, &s));
    int outside = 0;
    for (int i = 0; i < 200; i++) {
        memcpy(tmp, l, V * sizeof *l);
        int32_t id = vlm_sampler_sample(s, tmp);
        outside += l[id] < kth;
    }
    CHECK(outside == 0);
    vlm_sampler_free(s);
    free(sorted), free(l), free(tmp);
}

static void test_seed(void) {
    float l[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, tmp[6];
    int32_t a[64], b[64], c[64];
    vlm_sampler_params p = sampling(1.0f, 0, 1.0f, 1234);
    vlm_sampler *s1 = NULL, *s2 = NULL, *s3 = NULL;
    CHECK_OK(vlm_sampler_create(6, &p, &s1));
    CHECK_OK(vlm_sampler_create(6, &p, &s2));
    p.seed = 1235;
    CHECK_OK(vlm_sampler_create(6, &p, &s3));
    for (int i = 0; i < 64; i++) {
        memcpy(tmp, l, sizeof l), a[i] = vlm_sampler_sample(s1, tmp);
        memcpy(tmp, l, sizeof l), b[i] = vlm_sampler_sample(s2, tmp);
        memcpy(tmp, l, sizeof l), c[i] = vlm_sampler_sample(s3, tmp);
    }
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a) != 0);
    vlm_sampler_free(s1), vlm_sampler_free(s2), vlm_sampler_free(s3);
}

static void test_resolve(void) {
    vlm_generation_config gc = {
        .do_sample = 1, .temperature = 0.1f, .top_k = 1, .top_p = 0.001f, .repetition_penalty = 1.05f};
    vlm_sampling u = {.max_tokens = 16, .use_generation_config = 1, .seed = 9};
    vlm_sampler_params p;
    CHECK_OK(vlm_sampler_params_resolve(&gc, &u, &p));
    CHECK(p.do_sample && p.temperature == 0.1f && p.top_k == 1 && p.top_p == 0.001f && p.repetition_penalty == 1.05f);
    CHECK(p.seed == 9);
    u.greedy = 1;
    CHECK_OK(vlm_sampler_params_resolve(&gc, &u, &p));
    CHECK(!p.do_sample && p.repetition_penalty == 1.0f);
    /* generation config off: transformers' defaults (argmax) unless sampling knobs are given */
    u.greedy = 0;
    u.use_generation_config = 0;
    CHECK_OK(vlm_sampler_params_resolve(&gc, &u, &p));
    CHECK(!p.do_sample && p.repetition_penalty == 1.0f && p.top_k == 50);
    u.temperature = 0.7f;
    u.given = VLM_SAMPLING_TEMPERATURE;
    CHECK_OK(vlm_sampler_params_resolve(&gc, &u, &p));
    CHECK(p.do_sample && p.temperature == 0.7f && p.top_k == 50 && p.top_p == 1.0f);
    u.temperature = 0;
    CHECK_OK(vlm_sampler_params_resolve(&gc, &u, &p));
    CHECK(!p.do_sample);
    /* a value set but not given is not used */
    u.given = 0;
    u.temperature = -1;
    CHECK_OK(vlm_sampler_params_resolve(&gc, &u, &p));
    /* given values are checked, also where greedy (temperature 0) would not use them */
    u.given = VLM_SAMPLING_TEMPERATURE;
    CHECK_ERR(vlm_sampler_params_resolve(&gc, &u, &p), VLM_ERR_INVALID, "temperature -1");
    u.temperature = NAN;
    CHECK_ERR(vlm_sampler_params_resolve(&gc, &u, &p), VLM_ERR_INVALID, "temperature nan");
    u.temperature = 0;
    u.given = VLM_SAMPLING_TEMPERATURE | VLM_SAMPLING_TOP_P;
    u.top_p = -0.5f;
    CHECK_ERR(vlm_sampler_params_resolve(&gc, &u, &p), VLM_ERR_INVALID, "top_p -0.5");
    u.top_p = 0;
    CHECK_ERR(vlm_sampler_params_resolve(&gc, &u, &p), VLM_ERR_INVALID, "top_p");
    u.given = VLM_SAMPLING_TOP_K;
    u.top_k = -5;
    CHECK_ERR(vlm_sampler_params_resolve(&gc, &u, &p), VLM_ERR_INVALID, "top_k -5");
    u.given = VLM_SAMPLING_REPETITION_PENALTY;
    u.repetition_penalty = 0;
    CHECK_ERR(vlm_sampler_params_resolve(&gc, &u, &p), VLM_ERR_INVALID, "repetition penalty");
    u.repetition_penalty = -1;
    CHECK_ERR(vlm_sampler_params_resolve(&gc, &u, &p), VLM_ERR_INVALID, "repetition penalty -1");
    vlm_sampler_params bad = sampling(1.0f, -3, 1.0f, 0);
    vlm_sampler *s = NULL;
    CHECK_ERR(vlm_sampler_create(10, &bad, &s), VLM_ERR_INVALID, "top_k -3");
    CHECK(s == NULL);
}

int main(void) {
    RUN(test_greedy);
    RUN(test_repetition_penalty);
    RUN(test_temperature);
    RUN(test_top_k);
    RUN(test_top_p);
    RUN(test_large_vocab);
    RUN(test_seed);
    RUN(test_resolve);
    return test_summary();
}
