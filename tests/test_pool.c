/* The thread pool (src/base/pool.h): every task runs exactly once on every pool size and thread
 * limit, thread numbers stay below the count in use, a call from inside a task runs on the calling
 * thread, two pools of different sizes coexist, and calls from several threads on one pool take
 * turns. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "harness.h"

typedef struct {
    _Atomic int *hits;
    int max_thread; /* the highest thread number allowed */
    _Atomic int bad_thread;
    vlm_pool *nested; /* when set, every task runs a small job on it */
    _Atomic int nested_hits;
} count_job;

static void nested_task(void *arg, int64_t t, int thread) {
    count_job *j = arg;
    if (thread != 0) atomic_store(&j->bad_thread, 1); /* inside a task: the calling thread only */
    atomic_fetch_add(&j->nested_hits, 1);
}

static void count_task(void *arg, int64_t t, int thread) {
    count_job *j = arg;
    atomic_fetch_add(&j->hits[t], 1);
    if (thread < 0 || thread > j->max_thread) atomic_store(&j->bad_thread, 1);
    if (j->nested) vlm_pool_run(j->nested, 0, 3, nested_task, j);
}

static void check_run(vlm_pool *p, int max_threads, int64_t n, int nested) {
    count_job j = {.hits = calloc((size_t)n + 1, sizeof(int)), .nested = nested ? p : NULL};
    int limit = vlm_pool_threads(p);
    if (max_threads > 0 && max_threads < limit) limit = max_threads;
    j.max_thread = limit - 1;
    vlm_pool_run(p, max_threads, n, count_task, &j);
    int wrong = 0;
    for (int64_t t = 0; t < n; t++) wrong += atomic_load(&j.hits[t]) != 1;
    CHECK_MSG(wrong == 0, "pool of %d, max %d, %lld tasks: %d tasks not run exactly once", vlm_pool_threads(p),
              max_threads, (long long)n, wrong);
    CHECK_MSG(!atomic_load(&j.bad_thread), "a thread number outside [0, %d)", limit);
    if (nested) CHECK(atomic_load(&j.nested_hits) == 3 * n);
    free(j.hits);
}

static void test_every_task_once(void) {
    static const int sizes[] = {1, 2, 3, 5};
    static const int64_t tasks[] = {0, 1, 2, 7, 100, 10000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        vlm_pool *p = NULL;
        CHECK_OK(vlm_pool_create(sizes[s], &p));
        CHECK(vlm_pool_threads(p) == sizes[s]);
        for (size_t t = 0; t < sizeof tasks / sizeof *tasks; t++)
            for (int max = 0; max <= 3; max++) check_run(p, max, tasks[t], 0);
        for (int rep = 0; rep < 2000; rep++) check_run(p, 0, 3, 0); /* many short jobs back to back */
        check_run(p, 0, 50, 1);
        vlm_pool_free(p);
    }
    check_run(NULL, 0, 10, 0); /* no pool: the calling thread */
    CHECK(vlm_pool_threads(NULL) == 1);
    vlm_pool *p = NULL;
    CHECK_OK(vlm_pool_create(0, &p));
    CHECK(vlm_pool_threads(p) == vlm_cpu_count());
    vlm_pool_free(p);
}

/* Workers that slept (past the spin window) wake for the next job. */
static void test_after_sleep(void) {
    vlm_pool *p = NULL;
    CHECK_OK(vlm_pool_create(3, &p));
    for (int i = 0; i < 3; i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        check_run(p, 0, 64, 0);
    }
    vlm_pool_free(p);
}

typedef struct {
    vlm_pool *p;
    int ok;
} caller_arg;

static void *caller_main(void *v) {
    caller_arg *a = v;
    a->ok = 1;
    for (int rep = 0; rep < 300; rep++) {
        count_job j = {.hits = calloc(40, sizeof(int)), .max_thread = vlm_pool_threads(a->p) - 1};
        vlm_pool_run(a->p, 0, 40, count_task, &j);
        for (int t = 0; t < 40; t++) a->ok &= atomic_load(&j.hits[t]) == 1;
        a->ok &= !atomic_load(&j.bad_thread);
        free(j.hits);
    }
    return NULL;
}

/* Two pools of different sizes used at once (two models), and two callers sharing one pool. */
static void test_concurrent(void) {
    vlm_pool *a = NULL, *b = NULL;
    CHECK_OK(vlm_pool_create(2, &a));
    CHECK_OK(vlm_pool_create(3, &b));
    caller_arg args[4] = {{a, 0}, {b, 0}, {a, 0}, {b, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, caller_main, &args[i]);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(args[i].ok, "caller %d", i);
    }
    vlm_pool_free(a);
    vlm_pool_free(b);
}

int main(void) {
    RUN(test_every_task_once);
    RUN(test_after_sleep);
    RUN(test_concurrent);
    return test_summary();
}
