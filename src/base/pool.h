/* A thread pool: the threads a backend computes with (ggml's model: each backend has its own
 * thread count, so two models with different counts coexist in one process).
 *
 * vlm_pool_run(p, n, fn, arg) runs fn(arg, task, thread) for every task in [0, n) on the pool's
 * threads, the calling thread included (it is thread 0), and returns when all are done. Threads
 * take tasks one at a time from a shared counter, so a thread that the OS deschedules (a machine
 * shared with busy processes) delays only the task it holds: the others take the rest. Cut work
 * into a few tasks per thread for that reason.
 *
 * How the threads wait: a thread without work spins for a short while (VLM_POOL_SPIN_US, about
 * the gap between two ops of a decode step, so a quiet machine never pays a wake-up), then sleeps
 * on a futex, giving its core to whoever needs it. There is no busy waiting beyond that window,
 * which is what keeps a fair share of the CPU with a CPU-bound neighbour (OpenMP's default
 * policy spins for milliseconds and collapses there).
 *
 * A NULL pool, a pool of one thread, and calls made from inside a task run the tasks in order on
 * the calling thread. Calls from several threads at once on the same pool take turns. */
#ifndef VLM_BASE_POOL_H
#define VLM_BASE_POOL_H

#include <stdint.h>

#include "base/error.h"

typedef struct vlm_pool vlm_pool;
typedef void (*vlm_pool_fn)(void *arg, int64_t task, int thread);

/* Microseconds a waiting thread spins before it sleeps. */
enum { VLM_POOL_SPIN_US = 100 };

/* A pool of `threads` threads (the caller plus threads - 1 workers); threads <= 0: one per core
 * this process may run on. */
vlm_status vlm_pool_create(int threads, vlm_pool **out);
void vlm_pool_free(vlm_pool *p);
/* Threads of the pool (1 for NULL). */
int vlm_pool_threads(const vlm_pool *p);
/* Runs the tasks on at most max_threads threads (<= 0: all of the pool's). */
void vlm_pool_run(vlm_pool *p, int max_threads, int64_t n_tasks, vlm_pool_fn fn, void *arg);

/* Cores this process may run on (its affinity mask), at least 1. */
int vlm_cpu_count(void);

#endif
