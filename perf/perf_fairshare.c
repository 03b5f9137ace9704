/* A fair share under load: language-model prefill and decode speed on a quiet machine and beside
 * one CPU-bound neighbour process (a busy loop in its own session, as another user's job would
 * be), alternated in one run (quiet, busy, quiet, busy, ...), printed as the ratio busy / quiet.
 * On 2 cores with 2 threads of ours and one neighbour, the scheduler's fair share is 2/3 of the
 * machine; threads that spin while they wait (OpenMP's default) fall far below it.
 *
 *   perf_fairshare [--model DIR] [--prompt P] [--decode N] [--rounds R] [--threads T]
 *                  [--precision f32|bf16]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/timer.h"
#include "model/text_model_impl.h"
#include "perf_common.h"
#include "runtime/text_generate.h"

/* A CPU-bound neighbour: a child in its own session spinning until killed. */
static pid_t start_neighbour(void) {
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        volatile unsigned long x = 0;
        for (;;) x++;
    }
    return pid;
}

static void stop_neighbour(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

typedef struct {
    double prefill, decode; /* tok/s */
} speeds;

static int measure(vlm_text_model *m, vlm_gen_request *r, int prompt, speeds *out) {
    vlm_gen_result res;
    if (vlm_text_generate(m, r, &res) != VLM_OK) {
        fprintf(stderr, "perf_fairshare: %s\n", vlm_last_error());
        return 0;
    }
    out->prefill = prompt / res.prefill_s;
    out->decode = (res.n_ids - 1) / res.decode_s;
    vlm_gen_result_free(&res);
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = "/work/models/qwen2.5-vl-3b";
    int prompt = 128, decode = 16, rounds = 2, threads = 0, bf16 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) bf16 = !strcmp(argv[++i], "bf16");
        else {
            fprintf(stderr,
                    "usage: perf_fairshare [--model DIR] [--prompt P] [--decode N] [--rounds R] "
                    "[--threads T] [--precision f32|bf16]\n");
            return 2;
        }
    }
    if (prompt < 1 || decode < 1 || rounds < 1) {
        fprintf(stderr, "perf_fairshare: --prompt, --decode and --rounds must be >= 1\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    vlm_backend *be = NULL;
    vlm_text_model *m = NULL;
    vlm_backend_options bo = {.threads = threads, .bf16 = bf16};
    if (vlm_cpu_backend_create(&bo, &be) != VLM_OK || vlm_text_model_open(be, dir, &m) != VLM_OK) {
        fprintf(stderr, "perf_fairshare: %s\n", vlm_last_error());
        return 1;
    }
    printf("perf_fairshare: %s, %s, %d threads, %s precision, prompt %d, decode %d, load average %.2f\n", dir,
           vlm_cpu_name(), be->threads, bf16 ? "bf16" : "f32", prompt, decode, bench_load_average());
    int32_t *ids = malloc((size_t)prompt * sizeof *ids);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < prompt; i++) { /* ordinary text ids, no special tokens */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(x % 150000);
    }
    vlm_gen_request r;
    vlm_gen_request_init(&r);
    r.ids = ids;
    r.n_ids = prompt;
    r.max_new_tokens = 2; /* warm-up: the checkpoint's pages mapped in */
    speeds warm;
    if (!measure(m, &r, prompt, &warm)) return 1;
    r.max_new_tokens = decode + 1;
    double sum[2][2] = {{0}};
    printf("%-6s %-10s %12s %12s\n", "round", "neighbour", "prefill t/s", "decode t/s");
    for (int round = 0; round < rounds; round++)
        for (int busy = 0; busy <= 1; busy++) {
            pid_t pid = busy ? start_neighbour() : 0;
            if (busy) usleep(200 * 1000); /* the neighbour running before we start */
            speeds s;
            int ok = measure(m, &r, prompt, &s);
            stop_neighbour(pid);
            if (!ok) return 1;
            sum[busy][0] += s.prefill, sum[busy][1] += s.decode;
            printf("%-6d %-10s %12.2f %12.2f\n", round + 1, busy ? "1 busy" : "none", s.prefill, s.decode);
        }
    printf("mean: quiet prefill %.2f, decode %.2f tok/s; with a neighbour prefill %.2f (%.0f%% of quiet), decode %.2f "
           "(%.0f%% of quiet)\n",
           sum[0][0] / rounds, sum[0][1] / rounds, sum[1][0] / rounds, 100 * sum[1][0] / sum[0][0], sum[1][1] / rounds,
           100 * sum[1][1] / sum[0][1]);
    free(ids);
    vlm_text_model_free(m);
    vlm_backend_destroy(be);
    return 0;
}
