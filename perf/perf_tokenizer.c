/* Tokenizer speed: loading the fixture tokenizer.json (7 MB, 151k tokens and merges) and encoding
 * ~1 MB of mixed-language text (the 208 encode cases of fixtures/tokenizer, repeated), one thread.
 * Baselines measured in the same run: cJSON parsing the same file (what a cJSON-based loader
 * would pay before building any table), and the pre-tokenizer regex alone (PCRE2 JIT over the same
 * text): encode = regex + NFC check + BPE, so their ratio shows what BPE and the rest cost.
 * Times are the median of several runs, as wall clock and as this thread's CPU time: on a shared
 * machine the CPU time is what one core costs, the wall time what a user waits.
 * usage: perf_tokenizer [tokenizer.json] [megabytes] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/timer.h"
#include "io/file.h"
#include "io/json.h"
#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* wall and CPU seconds of one timed section */
typedef struct {
    double w0, c0;
} stopwatch;
static stopwatch sw_start(void) { return (stopwatch){vlm_now(), cpu_now()}; }
static void sw_stop(stopwatch s, double *wall, double *cpu) {
    *wall = vlm_now() - s.w0;
    *cpu = cpu_now() - s.c0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

/* The encode cases' texts joined by newlines, repeated to `target` bytes. */
static char *build_text(size_t target, size_t *len) {
    char *data;
    size_t n;
    if (vlm_read_file(VLM_TEST_FIXTURES "/tokenizer/cases.jsonl", 0, &data, &n) != VLM_OK) return NULL;
    vlm_strbuf one = {0};
    for (char *l = data; l && *l;) {
        char *nl = strchr(l, '\n');
        cJSON *o;
        if (vlm_json_parse(l, nl ? (size_t)(nl - l) : strlen(l), "cases.jsonl", &o) == VLM_OK) {
            const cJSON *hex = cJSON_GetObjectItemCaseSensitive(o, "text_utf8_hex");
            for (const char *h = hex->valuestring; h[0] && h[1]; h += 2) {
                unsigned v;
                sscanf(h, "%2x", &v);
                char c = (char)v;
                vlm_sb_append(&one, &c, 1);
            }
            vlm_sb_append(&one, "\n", 1);
            cJSON_Delete(o);
        }
        l = nl ? nl + 1 : NULL;
    }
    free(data);
    char *text = malloc(target + one.len);
    size_t k = 0;
    while (k < target) {
        memcpy(text + k, one.data, one.len);
        k += one.len;
    }
    *len = k;
    vlm_sb_free(&one);
    return text;
}

static size_t regex_only(vlm_tokenizer *t, const char *s, size_t n) {
    const vlm_tok_regex *r = &t->split[0];
    size_t start = 0, pieces = 0;
    while (start < n) {
        int rc = pcre2_jit_match(r->code, (PCRE2_SPTR)s, n, start, 0, r->md, NULL);
        if (rc < 0) break;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        pieces++;
    }
    return pieces;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : VLM_TEST_FIXTURES "/tokenizer/qwen2_5_vl/tokenizer.json";
    double mb = argc > 2 ? atof(argv[2]) : 1.0;
    enum { LOADS = 5, ENCODES = 5 };
    double t_load[LOADS], t_cjson[LOADS], c_load[LOADS], c_cjson[LOADS];
    vlm_tokenizer *t = NULL;
    for (int i = 0; i < LOADS; i++) {
        char *data;
        size_t n;
        stopwatch sw = sw_start();
        if (vlm_read_file(path, 0, &data, &n) != VLM_OK) {
            fprintf(stderr, "%s\n", vlm_last_error());
            return 1;
        }
        cJSON *j = cJSON_ParseWithLength(data, n);
        cJSON_Delete(j);
        free(data);
        sw_stop(sw, &t_cjson[i], &c_cjson[i]);
        vlm_tok_free(t);
        sw = sw_start();
        if (vlm_tok_load(path, &t) != VLM_OK) {
            fprintf(stderr, "%s\n", vlm_last_error());
            return 1;
        }
        sw_stop(sw, &t_load[i], &c_load[i]);
    }
    printf("load %s (%d ids, %d merges), median of %d:\n", path, vlm_tok_n_ids(t), vlm_tok_n_merges(t), LOADS);
    printf("  vlm_tok_load:                 wall %6.1f ms  cpu %6.1f ms\n", 1e3 * median(t_load, LOADS),
           1e3 * median(c_load, LOADS));
    printf("  baseline read + cJSON parse:  wall %6.1f ms  cpu %6.1f ms  (load / baseline, cpu: %.2f)\n",
           1e3 * median(t_cjson, LOADS), 1e3 * median(c_cjson, LOADS), median(c_load, LOADS) / median(c_cjson, LOADS));

    size_t len;
    char *text = build_text((size_t)(mb * 1e6), &len);
    if (!text) {
        fprintf(stderr, "%s\n", vlm_last_error());
        return 1;
    }
    vlm_ids ids = {0};
    vlm_ids_reserve(&ids, len);
    double w[3][ENCODES], c[3][ENCODES]; /* encode (cache on), encode (cache off), regex only */
    size_t pieces = 0;
    for (int i = 0; i < ENCODES; i++) {
        stopwatch sw = sw_start();
        pieces = regex_only(t, text, len);
        sw_stop(sw, &w[2][i], &c[2][i]);
        for (int cold = 0; cold < 2; cold++) {
            ids.n = 0;
            t->cache_off = cold;
            sw = sw_start();
            vlm_tok_encode(t, text, len, &ids);
            sw_stop(sw, &w[cold][i], &c[cold][i]);
        }
    }
    t->cache_off = 0;
    static const char *names[3] = {"encode, piece cache on ", "encode, piece cache off", "baseline: regex split only"};
    double cm[3];
    printf("encode %.2f MB (%zu ids, %zu regex pieces), one thread, median of %d:\n", len / 1e6, ids.n, pieces,
           ENCODES);
    for (int k = 0; k < 3; k++) {
        double wm = median(w[k], ENCODES);
        cm[k] = median(c[k], ENCODES);
        printf("  %-27s wall %6.1f MB/s (%5.1f ms)  cpu %6.1f MB/s (%5.1f ms)\n", names[k], len / wm / 1e6, wm * 1e3,
               len / cm[k] / 1e6, cm[k] * 1e3);
    }
    printf("  encode / regex-only time (cpu): %.2f with the cache, %.2f without\n", cm[0] / cm[2], cm[1] / cm[2]);
    vlm_ids_free(&ids);
    free(text);
    vlm_tok_free(t);
    return 0;
}
