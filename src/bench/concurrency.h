/* vlm bench --concurrency N[,N...] (bench_concurrency.c): N requests at once to an in-process engine,
 * per level, with the shared load-test statistics and reports (loadtest.h). */
#ifndef VLM_BENCH_CONCURRENCY_H
#define VLM_BENCH_CONCURRENCY_H

#include "bench/bench.h"
#include "bench/loadtest.h"

/* Loads the model (the first of c->modes, default original; c->device, c->quantize, c->threads),
 * runs one unmeasured request unless c->warmup is 0, then per level c->runs runs of N requests
 * submitted together (the images in turn, c->text, greedy, c->max_tokens, c->ignore_eos). The
 * peak memory of each level is logged: mapped weights, KV pool (and the part of it used), the rest. */
vlm_status vlm_bench_concurrency(const vlm_bench_config *c, const int *levels, int n_levels, vlm_loadtest_results *out);

#endif
