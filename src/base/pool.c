/* The thread pool (pool.h). One job at a time: the caller publishes it by bumping `gen`, every
 * worker answers each generation exactly once by decrementing `pending` (so the next job cannot
 * be published while a worker still reads this one), and tasks are claimed from `next`.
 * Waiting is spin-then-futex on both sides; `sleepers` / `caller_sleeps` say when a wake-up
 * system call is needed (seq_cst on both sides: either the sleeper sees the new value, or the
 * waker sees the sleeper). */
#include "base/pool.h"

#include <immintrin.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/memory.h"

struct vlm_pool {
    int threads;
    pthread_t *workers; /* threads - 1 */
    int started;        /* workers running (all of them once created) */
    pthread_mutex_t run_lock;
    /* the job */
    vlm_pool_fn fn;
    void *arg;
    int64_t n_tasks;
    int job_threads;
    _Atomic int64_t next;
    /* signalling */
    _Atomic uint32_t gen;
    _Atomic int sleepers;
    _Atomic uint32_t pending;
    _Atomic int caller_sleeps;
    _Atomic int stop;
};

typedef struct {
    vlm_pool *pool;
    int index;
} worker_arg;

static _Thread_local int t_in_pool; /* 1 while this thread runs pool tasks */

static void futex_wait(_Atomic uint32_t *addr, uint32_t val) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr, int n) { syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n); }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until *addr != val or the spin window ends; returns the last value read. */
static uint32_t spin_while(_Atomic uint32_t *addr, uint32_t val) {
    uint32_t v = atomic_load_explicit(addr, memory_order_acquire);
    if (v != val) return v;
    int64_t end = now_ns() + (int64_t)VLM_POOL_SPIN_US * 1000;
    for (int i = 1;; i++) {
        _mm_pause();
        v = atomic_load_explicit(addr, memory_order_acquire);
        if (v != val) return v;
        if (i % 64 == 0 && now_ns() > end) return v;
    }
}

static void run_tasks(vlm_pool *p, int thread) {
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->arg, t, thread);
    }
}

static void *worker_main(void *v) {
    worker_arg *wa = v;
    vlm_pool *p = wa->pool;
    const int index = wa->index;
    vlm_free(wa);
    t_in_pool = 1;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = spin_while(&p->gen, seen);
        while (g == seen) { /* sleep until the next job */
            atomic_fetch_add(&p->sleepers, 1);
            if (atomic_load(&p->gen) == seen) futex_wait(&p->gen, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            g = atomic_load(&p->gen);
        }
        seen = g;
        if (atomic_load(&p->stop)) break;
        if (index < p->job_threads) run_tasks(p, index);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeps)) futex_wake(&p->pending, 1);
    }
    return NULL;
}

int vlm_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void stop_workers(vlm_pool *p) {
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    futex_wake(&p->gen, INT_MAX);
    for (int i = 0; i < p->started; i++) pthread_join(p->workers[i], NULL);
    p->started = 0;
}

vlm_status vlm_pool_create(int threads, vlm_pool **out) {
    *out = NULL;
    if (threads <= 0) threads = vlm_cpu_count();
    vlm_pool *p = vlm_calloc(1, sizeof *p, "a thread pool");
    if (!p) return VLM_ERR_NOMEM;
    p->threads = threads;
    pthread_mutex_init(&p->run_lock, NULL);
    if (threads > 1) {
        p->workers = vlm_calloc((size_t)threads - 1, sizeof *p->workers, "the thread pool's worker list");
        if (!p->workers) {
            p->threads = 1; /* no worker was started */
            vlm_pool_free(p);
            return VLM_ERR_NOMEM;
        }
    }
    for (int i = 1; i < threads; i++) {
        worker_arg *wa = vlm_alloc(sizeof *wa, "a pool worker's start arguments");
        int rc = wa ? 0 : -1;
        if (wa) {
            wa->pool = p;
            wa->index = i;
            rc = pthread_create(&p->workers[i - 1], NULL, worker_main, wa);
            if (rc != 0) vlm_free(wa);
        }
        if (rc != 0) {
            vlm_pool_free(p); /* stops the workers started so far */
            return wa ? vlm_err(VLM_ERR_RUNTIME, "cannot start thread %d of %d for the CPU backend", i, threads)
                      : VLM_ERR_NOMEM;
        }
        p->started = i;
    }
    *out = p;
    return VLM_OK;
}

void vlm_pool_free(vlm_pool *p) {
    if (!p) return;
    stop_workers(p);
    pthread_mutex_destroy(&p->run_lock);
    vlm_free(p->workers);
    vlm_free(p);
}

int vlm_pool_threads(const vlm_pool *p) { return p ? p->threads : 1; }

void vlm_pool_run(vlm_pool *p, int max_threads, int64_t n_tasks, vlm_pool_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    int threads = p ? p->threads : 1;
    if (max_threads > 0 && max_threads < threads) threads = max_threads;
    if ((int64_t)threads > n_tasks) threads = (int)n_tasks;
    if (threads <= 1 || t_in_pool) {
        for (int64_t t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    p->job_threads = threads;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store(&p->pending, (uint32_t)(p->threads - 1));
    atomic_fetch_add(&p->gen, 1); /* publishes the job (seq_cst: ordered after the stores above) */
    if (atomic_load(&p->sleepers) > 0) futex_wake(&p->gen, INT_MAX);
    t_in_pool = 1;
    run_tasks(p, 0);
    t_in_pool = 0;
    uint32_t left = atomic_load(&p->pending);
    while (left != 0) { /* until every worker has answered: spin while they make progress, then sleep */
        uint32_t v = spin_while(&p->pending, left);
        if (v != left) {
            left = v;
            continue;
        }
        atomic_store(&p->caller_sleeps, 1);
        if (atomic_load(&p->pending) == left) futex_wait(&p->pending, left);
        atomic_store(&p->caller_sleeps, 0);
        left = atomic_load(&p->pending);
    }
    pthread_mutex_unlock(&p->run_lock);
}
