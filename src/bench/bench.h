/* vlm bench: measure and compare the execution modes of a model (../shared/BENCHMARK_SPEC.md).
 *
 * Measurement and reporting are separate on purpose. The runner (bench_run.c) is the only part that
 * calls the engine (vlm_load / vlm_generate); it fills the plain structs below. Everything else —
 * statistics, the console summary, targets, JSON, CSV, charts, comparisons — only reads them, so it
 * is tested with synthetic results (tests/test_bench_*.c) independently of the pipeline.
 *
 *   vlm_bench_config c;  vlm_bench_config_init(&c);  c.images = paths;  c.n_images = 1;
 *   vlm_bench_results r;  vlm_bench_measure(&c, 0, &r);       // or, synthetic: results_init + add_run
 *   vlm_bench_finish(&r);  vlm_bench_print_report(stdout, &r);  vlm_bench_write_json(&r, "x.json");
 *   vlm_bench_results_free(&r);
 */
#ifndef VLM_BENCH_H
#define VLM_BENCH_H

#include <stdio.h>

#include "base/error.h"
#include "io/file.h"
#include "io/json.h"
#include "vlm.h"

enum { VLM_BENCH_MAX_MODES = 3, VLM_BENCH_REASON_MAX = 512 };

/* ---- metrics ------------------------------------------------------------------------------- */

/* Per-run metrics, in the order they are printed and written. The first ten are the spec's; the
 * rest are the spec's extras (prefill/decode rates, time to first token, preprocessing time, peak
 * RSS) and the per-stage times the chart stacks (prefill_time, decode_time). */
typedef enum {
    VLM_BM_DURATION,       /* s: wall clock of vlm_generate (preprocess, vision, prefill, decode) */
    VLM_BM_TOKENS_PER_SEC, /* tokens_generated / duration */
    VLM_BM_TOKENS_GENERATED,
    VLM_BM_VISION_TIME,   /* s */
    VLM_BM_CPU_MEM_DELTA, /* MB: RSS after - before the run */
    VLM_BM_GPU_MEM_DELTA, /* MB: device memory in use after - before (0 on cpu) */
    VLM_BM_GPU_PEAK_MEM,  /* MB (0 on cpu) */
    VLM_BM_VISION_SIZE,   /* MB on disk of the artifacts the mode uses */
    VLM_BM_LANGUAGE_SIZE,
    VLM_BM_ONNX_SIZE,
    VLM_BM_PREFILL_TPS,
    VLM_BM_DECODE_TPS,
    VLM_BM_TTFT,            /* s */
    VLM_BM_PREPROCESS_TIME, /* s */
    VLM_BM_PREFILL_TIME,    /* s */
    VLM_BM_DECODE_TIME,     /* s */
    VLM_BM_CPU_PEAK_MEM,    /* MB: peak RSS during the run */
    VLM_BM_COUNT
} vlm_bench_metric;

typedef struct {
    const char *key;   /* JSON and CSV name, e.g. "duration" */
    const char *label; /* console, e.g. "Duration (s)" */
    int decimals;      /* console */
} vlm_bench_metric_info;

extern const vlm_bench_metric_info vlm_bench_metrics[VLM_BM_COUNT];

#define VLM_BENCH_MB (1024.0 * 1024.0) /* MB = 2^20 bytes */

/* ---- statistics ----------------------------------------------------------------------------- */

typedef struct {
    double mean, std, min, max, median;
} vlm_bench_stats;

/* The statistics numpy gives for a float64 array: mean (pairwise summation, as numpy.mean),
 * population std (ddof 0: sqrt of the mean squared deviation), min, max, median (mean of the two
 * middle values for an even count). scratch holds n doubles (the sort for the median). n >= 1. */
void vlm_bench_stats_compute(const double *v, int n, double *scratch, vlm_bench_stats *out);
/* numpy's pairwise sum of n doubles (exposed for the tests). */
double vlm_bench_pairwise_sum(const double *v, int n);

/* ---- results -------------------------------------------------------------------------------- */

typedef struct {
    double m[VLM_BM_COUNT];
} vlm_bench_run;

typedef enum { VLM_BENCH_RAN = 0, VLM_BENCH_SKIPPED = 1 } vlm_bench_outcome;

typedef struct {
    vlm_mode mode;
    vlm_bench_outcome outcome;
    char reason[VLM_BENCH_REASON_MAX]; /* why it was skipped */
    int n_runs, cap_runs;
    vlm_bench_run *runs;                 /* in the order they ran */
    vlm_bench_stats stats[VLM_BM_COUNT]; /* filled by vlm_bench_finish from exactly runs[] */
} vlm_bench_mode_result;

typedef struct {
    char *path;
    int width, height;                                /* 0 when the size could not be read from the header */
    vlm_bench_mode_result modes[VLM_BENCH_MAX_MODES]; /* same order as vlm_bench_results.modes */
} vlm_bench_image_result;

typedef struct {
    /* configuration, as run */
    char *model_id, *model_path, *prompt, *output_dir;
    vlm_device device_requested, device; /* device: the one used (auto resolved) */
    char device_name[128];               /* CPU model or GPU name */
    int runs, max_tokens, warmup, ignore_eos, quantize, threads;
    vlm_precision precision;
    char timestamp[40]; /* ISO 8601, local time */
    int n_modes;
    vlm_mode modes[VLM_BENCH_MAX_MODES];
    int n_images;
    vlm_bench_image_result *images;
    /* per mode: every image's runs, image after image (== images[0] for one image) */
    vlm_bench_mode_result overall[VLM_BENCH_MAX_MODES];
} vlm_bench_results;

/* ---- configuration and the runner ------------------------------------------------------------ */

typedef struct {
    const char *model_id;   /* default Qwen/Qwen2.5-VL-3B-Instruct */
    const char *output_dir; /* default split_models */
    const char *text;       /* default "Describe this image." */
    const char *const *images;
    int n_images;
    vlm_mode modes[VLM_BENCH_MAX_MODES];
    int n_modes;    /* default: all three */
    int runs;       /* default 5 */
    int max_tokens; /* default 128 */
    int warmup;     /* default 1 */
    int ignore_eos;
    int quantize;
    int threads;             /* 0 = every core */
    vlm_precision precision; /* default f32 */
    vlm_device device;       /* default auto */
    int no_reuse;            /* --concurrency: no prefix KV or image-embedding reuse between requests */
} vlm_bench_config;

void vlm_bench_config_init(vlm_bench_config *c);

/* Runs the benchmark: per mode, load (not measured), one warm-up unless disabled, then c->runs
 * measured greedy generations per image. A mode that cannot run here (VLM_ERR_UNAVAILABLE: no ONNX
 * Runtime, no GPU, ...) is recorded as skipped with the reason; any other failure stops the
 * benchmark with an error. `out` is finished (statistics computed) on success. When the device is
 * cuda and no GPU is usable, every mode is skipped with that reason when skip_unusable_device is set
 * (the cuda side of --compare-devices), else it is an error. */
vlm_status vlm_bench_measure(const vlm_bench_config *c, int skip_unusable_device, vlm_bench_results *out);

/* Building results (the runner uses these; tests use them with synthetic numbers). results_init
 * copies the configuration and reads each image's size from its header; device must be resolved
 * (cpu or cuda). */
vlm_status vlm_bench_results_init(vlm_bench_results *r, const vlm_bench_config *c, vlm_device device);
vlm_status vlm_bench_add_run(vlm_bench_results *r, int image, int mode_index, const vlm_bench_run *run);
void vlm_bench_skip(vlm_bench_results *r, int mode_index, const char *reason);
/* Gathers the overall results and computes every statistic. */
vlm_status vlm_bench_finish(vlm_bench_results *r);
void vlm_bench_results_free(vlm_bench_results *r);
/* Checks before a long run that an output file can be created (its directory exists and is
 * writable, and it is not a directory); flag names the option in the message. */
vlm_status vlm_bench_check_output_path(const char *path, const char *flag);
vlm_status vlm_bench_check_output_dir(const char *dir, const char *what);
/* Number of modes that ran. */
int vlm_bench_n_ran(const vlm_bench_results *r);

/* ---- images (bench_image.c) ------------------------------------------------------------------ */

/* Width and height of the decoded image, after its EXIF orientation (what the model sees); the
 * decoder's error (naming the file and the supported formats) for anything it cannot read. */
vlm_status vlm_bench_image_size(const char *path, int *width, int *height);
/* Expands --image arguments: files as given, directories to their .jpg/.jpeg/.png files sorted by
 * name. *out is an array of malloc'ed strings (free with vlm_bench_free_list). */
vlm_status vlm_bench_collect_images(const char *const *args, int n, char ***out, int *n_out);
void vlm_bench_free_list(char **list, int n);

/* ---- reporting (bench_report.c, bench_json.c, bench_plot.c, bench_compare.c) ----------------- */

/* Configuration header, per-image summaries (several images), the overall summary, skipped modes
 * and the targets table. */
void vlm_bench_print_report(FILE *f, const vlm_bench_results *r);
void vlm_bench_print_config(FILE *f, const vlm_bench_results *r);
/* The BENCHMARK RESULTS SUMMARY block (title NULL: the spec's header line alone), then fastest
 * mode, relative performance and throughput comparison when more than one mode ran. */
void vlm_bench_print_summary(FILE *f, const vlm_bench_results *r, const vlm_bench_mode_result *modes,
                             const char *title);

/* Indices into modes[0..n) of the modes that ran, sorted by a metric's mean (ascending or
 * descending; ties keep mode order). Returns the count. */
int vlm_bench_rank(const vlm_bench_mode_result *modes, int n, vlm_bench_metric k, int descending, int *order);

/* Targets of the spec (Qwen2.5-VL-3B class), checked against the mean of each mode that ran. */
typedef struct {
    const char *profile; /* "development (CPU)" ... */
    vlm_device device;   /* where it applies */
    int onnx_only;       /* applies to run_onnx only (GPU + ONNX vision) */
    double max_duration_s, min_tokens_per_s, max_memory_mb;
    vlm_bench_metric memory_metric; /* cpu_peak_memory or gpu_peak_memory: judged by the peak */
} vlm_bench_target;

typedef struct {
    const vlm_bench_target *target;
    vlm_mode mode;
    double duration, tokens_per_s, memory_mb;
    double memory_delta_mb; /* the delta over the run, shown beside the peak */
    int duration_ok, throughput_ok, memory_ok, pass;
} vlm_bench_target_row;

extern const vlm_bench_target vlm_bench_targets[3];
/* Every (mode that ran, profile that applies to the device and mode) pair; returns the count. */
int vlm_bench_targets_eval(const vlm_bench_results *r, vlm_bench_target_row *rows, int cap);
void vlm_bench_print_targets(FILE *f, const vlm_bench_results *r);

/* JSON: {"<mode>": {"<metric>": {"mean","std","min","max","median","values"}, ..., "num_runs"}, ...,
 * "metadata": {...}} plus "images": [...] when there are several images. Numbers at %.17g. */
vlm_status vlm_bench_json(const vlm_bench_results *r, vlm_strbuf *out);
vlm_status vlm_bench_write_json(const vlm_bench_results *r, const char *path);
/* CSV: Mode,Metric,Mean,Std,Min,Max,Median,Num Runs — four decimals, overall results. */
vlm_status vlm_bench_csv(const vlm_bench_results *r, vlm_strbuf *out);
vlm_status vlm_bench_write_csv(const vlm_bench_results *r, const char *path);
/* The CSV beside a JSON file: "x.json" -> "x.csv" (other names get ".csv" appended). */
void vlm_bench_csv_path(const char *json_path, char *out, size_t cap);

/* Chart: stacked per-stage duration per mode and throughput per mode, with error bars (one std).
 * path ending in .svg: a standalone SVG; .html: an HTML page with the SVG inline and the numbers. */
vlm_status vlm_bench_plot_svg(const vlm_bench_results *r, vlm_strbuf *out);
vlm_status vlm_bench_write_plot(const vlm_bench_results *r, const char *path);
/* 1 when path names a chart format (.svg or .html). */
int vlm_bench_plot_format_ok(const char *path);

/* Comparisons. The timestamp in file names is local time as YYYYmmdd_HHMMSS. */
void vlm_bench_file_timestamp(char *out, size_t cap);
/* dir/benchmark_<side>_<stamp>.json */
vlm_status vlm_bench_comparison_path(char *out, size_t cap, const char *dir, const char *side, const char *stamp);
/* Writes dir/benchmark_<side>_<stamp>.json (and the .csv beside it when csv) for a side in which at
 * least one mode ran; a side where nothing ran is not written (*written = 0). */
vlm_status vlm_bench_write_side(const vlm_bench_results *r, const char *dir, const char *side, const char *stamp,
                                int csv, int *written, char *path_out, size_t path_cap);
/* A side-by-side table of two benchmarks (a: baseline, b: the other) per mode: duration, tokens/s,
 * memory and model sizes, with b's speed relative to a. A side where nothing ran is shown with its
 * skip reasons. */
void vlm_bench_print_comparison(FILE *f, const char *title, const char *name_a, const vlm_bench_results *a,
                                const char *name_b, const vlm_bench_results *b);

typedef enum { VLM_BENCH_COMPARE_DEVICES, VLM_BENCH_COMPARE_QUANTIZATION } vlm_bench_comparison;
/* Runs both sides (devices: cpu and cuda, the cuda side skipped with the reason when no GPU is
 * usable; quantization: not quantized and 4-bit on base->device), prints each side's report and the
 * comparison to out, and writes dir/benchmark_<side>_<stamp>.json (+ .csv) for each side that ran.
 * *any_ran: whether some mode ran on some side. */
vlm_status vlm_bench_compare(const vlm_bench_config *base, vlm_bench_comparison kind, const char *dir, int csv,
                             FILE *out, int *any_ran);

#endif
