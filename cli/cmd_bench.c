/* vlm bench: measure and compare the execution modes (../shared/BENCHMARK_SPEC.md). Parses and
 * checks the options, then calls src/bench: the runner, the console report, the output files. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "base/log.h"
#include "bench/bench.h"
#include "commands.h"

static const char k_synopsis[] =
    "--image PATH [--image PATH ...] [--text STR] [--modes M ...] [--runs N] [--max-tokens N] [--no-warmup]\n"
    "       [--ignore-eos] [--model-id ID] [--device auto|cuda|cpu] [--quantize] [--output-dir DIR] [--output FILE]\n"
    "       [--csv] [--compare-devices | --compare-quantization] [--threads N] [--plot FILE.svg|FILE.html]";

typedef struct {
    vlm_arg_list images, modes;
    const char *text, *model_id, *device, *output_dir, *output, *plot;
    int runs, max_tokens, no_warmup, ignore_eos, quantize, csv, compare_devices, compare_quant, threads;
    int device_seen;
} bench_args;

static int usage(const char *fmt, const char *a, const char *b) { return vlm_usage_error("bench", fmt, a, b); }

/* Everything that makes the command line wrong is a usage error (exit 2) naming the argument. */
static int check_args(const bench_args *a, vlm_bench_config *c) {
    if (a->images.n == 0) return vlm_usage_error("bench", "--image is required");
    if (a->runs < 1) return vlm_usage_error("bench", "--runs must be at least 1, got %d", a->runs);
    if (a->max_tokens < 1) return vlm_usage_error("bench", "--max-tokens must be at least 1, got %d", a->max_tokens);
    if (a->threads < 0) return vlm_usage_error("bench", "--threads must be 0 (every core) or more, got %d", a->threads);
    if (a->modes.n) {
        c->n_modes = 0;
        for (int i = 0; i < a->modes.n; i++) {
            vlm_mode m;
            if (vlm_mode_parse(a->modes.v[i], &m))
                return usage("--modes: unknown mode '%s' (expected original, split_native or run_onnx)%s",
                             a->modes.v[i], "");
            for (int j = 0; j < c->n_modes; j++)
                if (c->modes[j] == m) return usage("--modes: '%s' given twice%s", a->modes.v[i], "");
            c->modes[c->n_modes++] = m;
        }
    }
    if (vlm_device_parse(a->device, &c->device) != 0)
        return usage("--device: unknown device '%s' (expected auto, cuda or cpu)%s", a->device, "");
    if (a->plot && !vlm_bench_plot_format_ok(a->plot))
        return usage("--plot %s: the chart is written as FILE.svg or FILE.html%s", a->plot, "");
    int compare = a->compare_devices + a->compare_quant;
    if (compare > 1) return usage("--compare-devices and --compare-quantization: choose one%s%s", "", "");
    if (compare) {
        const char *which = a->compare_devices ? "--compare-devices" : "--compare-quantization";
        if (a->output)
            return usage("--output cannot be combined with %s (it writes benchmark_<side>_TIMESTAMP.json)%s", which,
                         "");
        if (a->plot) return usage("--plot cannot be combined with %s%s", which, "");
        if (a->compare_devices && a->device_seen)
            return usage("--device cannot be combined with --compare-devices (it runs cuda and cpu)%s%s", "", "");
        if (a->compare_quant && a->quantize)
            return usage("--quantize cannot be combined with --compare-quantization (it runs both)%s%s", "", "");
    } else if (a->csv && !a->output) {
        return usage("--csv writes beside the JSON: give --output FILE too%s%s", "", "");
    }
    c->text = a->text;
    c->model_id = a->model_id;
    c->output_dir = a->output_dir;
    c->runs = a->runs;
    c->max_tokens = a->max_tokens;
    c->warmup = !a->no_warmup;
    c->ignore_eos = a->ignore_eos;
    c->quantize = a->quantize;
    c->threads = a->threads;
    return 0;
}

static int run_single(const bench_args *a, const vlm_bench_config *c) {
    vlm_bench_results r;
    vlm_status s = vlm_bench_measure(c, 0, &r);
    if (s != VLM_OK) return vlm_cli_fail(s);
    vlm_bench_print_report(stdout, &r);
    fflush(stdout);
    if (vlm_bench_n_ran(&r) == 0) {
        vlm_bench_results_free(&r);
        vlm_err(VLM_ERR_UNAVAILABLE, "nothing was measured: every mode was skipped (reasons above)");
        return vlm_cli_fail(VLM_ERR_UNAVAILABLE);
    }
    if (a->output && (s = vlm_bench_write_json(&r, a->output)) == VLM_OK) {
        VLM_LOG_I("bench: wrote %s", a->output);
        if (a->csv) {
            char path[VLM_PATH_MAX];
            vlm_bench_csv_path(a->output, path, sizeof path);
            if ((s = vlm_bench_write_csv(&r, path)) == VLM_OK) VLM_LOG_I("bench: wrote %s", path);
        }
    }
    if (s == VLM_OK && a->plot && (s = vlm_bench_write_plot(&r, a->plot)) == VLM_OK)
        VLM_LOG_I("bench: wrote %s", a->plot);
    vlm_bench_results_free(&r);
    return s == VLM_OK ? 0 : vlm_cli_fail(s);
}

int cmd_bench(int argc, char **argv) {
    bench_args a = {.text = "Describe this image.",
                    .model_id = "Qwen/Qwen2.5-VL-3B-Instruct",
                    .device = "auto",
                    .output_dir = "split_models",
                    .runs = 5,
                    .max_tokens = 128};
    vlm_arg spec[] = {
        {"--image", ARG_LIST, &a.images, "PATH", "input image (required); repeat it, or name a directory, for several"},
        {"--text", ARG_STR, &a.text, "STR", "prompt (default \"Describe this image.\")"},
        {"--modes", ARG_LIST, &a.modes, "M", "original, split_native, run_onnx (default: all three)"},
        {"--runs", ARG_INT, &a.runs, "N", "measured runs per mode (default 5)"},
        {"--max-tokens", ARG_INT, &a.max_tokens, "N", "tokens to generate at most (default 128)"},
        {"--no-warmup", ARG_FLAG, &a.no_warmup, NULL, "skip the unmeasured warm-up run of each mode"},
        {"--ignore-eos", ARG_FLAG, &a.ignore_eos, NULL, "always generate exactly --max-tokens tokens"},
        {"--model-id", ARG_STR, &a.model_id, "ID",
         "checkpoint directory or HF id (default Qwen/Qwen2.5-VL-3B-Instruct)"},
        {"--device", ARG_STR, &a.device, "D", "auto, cuda or cpu (default auto: cuda when a GPU is usable)",
         &a.device_seen},
        {"--quantize", ARG_FLAG, &a.quantize, NULL, "4-bit weights"},
        {"--output-dir", ARG_STR, &a.output_dir, "DIR", "split / ONNX / quantized artifacts (default split_models)"},
        {"--output", ARG_STR, &a.output, "FILE", "write the results as JSON"},
        {"--csv", ARG_FLAG, &a.csv, NULL, "also write CSV beside the JSON (same name, .csv)"},
        {"--compare-devices", ARG_FLAG, &a.compare_devices, NULL,
         "run on cuda and cpu; write benchmark_{cuda,cpu}_TIMESTAMP.json here"},
        {"--compare-quantization", ARG_FLAG, &a.compare_quant, NULL,
         "run non-quantized and 4-bit; write benchmark_{non_quantized,quantized}_TIMESTAMP.json here"},
        {"--threads", ARG_INT, &a.threads, "N", "CPU threads (default: every core)"},
        {"--plot", ARG_STR, &a.plot, "FILE", "chart of stage times and throughput (.svg or .html)"},
        {0},
    };
    int r = vlm_args_parse("bench", k_synopsis, spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    vlm_bench_config c;
    vlm_bench_config_init(&c);
    if ((r = check_args(&a, &c))) return r;

    /* --device cuda without a usable GPU fails before any work, with the reason */
    vlm_device dev;
    vlm_status s;
    if (!a.compare_devices && (s = vlm_device_resolve(c.device, &dev)) != VLM_OK) return vlm_cli_fail(s);

    if (a.output && (s = vlm_bench_check_output_path(a.output, "--output")) != VLM_OK) return vlm_cli_fail(s);
    if (a.plot && (s = vlm_bench_check_output_path(a.plot, "--plot")) != VLM_OK) return vlm_cli_fail(s);
    if (a.output && a.csv) {
        char csv[VLM_PATH_MAX];
        vlm_bench_csv_path(a.output, csv, sizeof csv);
        if ((s = vlm_bench_check_output_path(csv, "--csv")) != VLM_OK) return vlm_cli_fail(s);
    }
    if ((a.compare_devices || a.compare_quant) &&
        (s = vlm_bench_check_output_dir(".", "the comparison files")) != VLM_OK)
        return vlm_cli_fail(s);

    char **images = NULL;
    int n_images = 0;
    if ((s = vlm_bench_collect_images(a.images.v, a.images.n, &images, &n_images)) != VLM_OK) return vlm_cli_fail(s);
    c.images = (const char *const *)images;
    c.n_images = n_images;
    if (a.compare_devices || a.compare_quant) {
        int any = 0;
        s = vlm_bench_compare(&c, a.compare_devices ? VLM_BENCH_COMPARE_DEVICES : VLM_BENCH_COMPARE_QUANTIZATION, ".",
                              a.csv, stdout, &any);
        if (s == VLM_OK && !any)
            s = vlm_err(VLM_ERR_UNAVAILABLE,
                        "nothing was measured: every mode was skipped on both sides (reasons above)");
        r = s == VLM_OK ? 0 : vlm_cli_fail(s);
    } else {
        r = run_single(&a, &c);
    }
    vlm_bench_free_list(images, n_images);
    return r;
}
