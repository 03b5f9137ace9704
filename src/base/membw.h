/* Memory read bandwidth of this machine, measured now: the bound every decode-speed figure is
 * compared with (DRAM bandwidth drifts from minute to minute on shared hosts, so benchmarks
 * measure it in the same run as what they compare with it). */
#ifndef VLM_BASE_MEMBW_H
#define VLM_BASE_MEMBW_H

#include <stddef.h>

/* Reads a buffer of `bytes` (make it well above the last-level cache) `reps` times each way (one
 * stream per thread, 4 streams per thread) with `threads`
 * threads (0 = all) and returns the best rate in GB/s (1e9 bytes/s); 0 when allocation fails. */
double vlm_measure_read_bandwidth(size_t bytes, int reps, int threads);

#endif
