/* vlm bench: measure and compare the execution modes (../shared/BENCHMARK_SPEC.md). Parses and
 * checks the options, then calls src/bench: the runner, the console report, the output files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/log.h"
#include "bench/bench.h"
#include "bench/concurrency.h"
#include "bench/serve_bench.h"
#include "commands.h"

static const char k_synopsis[] =
    "--image PATH [--image PATH ...] [--text STR] [--modes M ...] [--runs N] [--max-tokens N] [--no-warmup]\n"
    "       [--ignore-eos] [--model-id ID] [--device auto|cuda|cpu] [--quantize] [--output-dir DIR] [--output FILE]\n"
    "       [--csv] [--compare-devices | --compare-quantization] [--threads N] [--precision f32|bf16]\n"
    "       [--plot FILE.svg|FILE.html] [--concurrency N[,N...] [--no-prefix-cache]]   (N requests at once to an\n"
    "       in-process engine)\n"
    "   or: vlm bench --serve URL (--concurrency N[,N...] | --request-rate R[,R...]) [--requests K] [--image PATH "
    "...]\n"
    "       [--text STR] [--max-tokens N] [--ignore-eos] [--runs N] [--api-key KEY] [--served-model NAME]\n"
    "       [--timeout S] [--no-warmup] [--output FILE] [--csv] [--plot FILE.svg|FILE.html]";

typedef struct {
    vlm_arg_list images, modes, concurrency, rates;
    const char *text, *model_id, *device, *output_dir, *output, *plot, *serve, *api_key, *served_model, *precision;
    int runs, max_tokens, no_warmup, ignore_eos, quantize, csv, compare_devices, compare_quant, threads, requests;
    int no_prefix_cache;
    float timeout;
    int device_seen, runs_seen, model_seen, modes_seen, output_dir_seen;
} bench_args;

static int usage(const char *fmt, const char *a, const char *b) { return vlm_usage_error("bench", fmt, a, b); }

/* Everything that makes the command line wrong is a usage error (exit 2) naming the argument. */
static int check_args(const bench_args *a, vlm_bench_config *c) {
    if (a->images.n == 0) return vlm_usage_error("bench", "--image is required");
    if (a->runs < 1) return vlm_usage_error("bench", "--runs must be at least 1, got %d", a->runs);
    if (a->max_tokens < 1) return vlm_usage_error("bench", "--max-tokens must be at least 1, got %d", a->max_tokens);
    if (a->threads < 0) return vlm_usage_error("bench", "--threads must be 0 (every core) or more, got %d", a->threads);
    if (vlm_precision_parse(a->precision, &c->precision) != 0)
        return usage("--precision: unknown precision '%s' (expected f32 or bf16)%s", a->precision, "");
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
    c->no_reuse = a->no_prefix_cache;
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

/* "1,4,16" or "1 4 16" (several --concurrency values) into numbers > 0. */
static int parse_levels(const vlm_arg_list *l, const char *flag, int integers, double *out, int cap, int *n) {
    *n = 0;
    for (int i = 0; i < l->n; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", l->v[i]);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *end;
            double v = strtod(t, &end);
            if (*end || !(v > 0) || (integers && v != (int)v) || v > 1e6)
                return vlm_usage_error("bench", "%s: '%s' is not a %s", flag, t,
                                       integers ? "whole number >= 1" : "positive rate (requests per second)");
            if (*n == cap) return vlm_usage_error("bench", "%s: at most %d levels", flag, cap);
            out[(*n)++] = v;
        }
    }
    return 0;
}

/* The load test's results: the console table, then --output (JSON, --csv beside it) and --plot. */
static vlm_status write_loadtest(const bench_args *a, const vlm_loadtest_results *res) {
    vlm_status s = VLM_OK;
    vlm_loadtest_print(stdout, res);
    fflush(stdout);
    if (a->output && (s = vlm_loadtest_write_json(res, a->output)) == VLM_OK) {
        VLM_LOG_I("bench: wrote %s", a->output);
        if (a->csv) {
            char path[VLM_PATH_MAX];
            vlm_bench_csv_path(a->output, path, sizeof path);
            if ((s = vlm_loadtest_write_csv(res, path)) == VLM_OK) VLM_LOG_I("bench: wrote %s", path);
        }
    }
    if (s == VLM_OK && a->plot && (s = vlm_loadtest_write_plot(res, a->plot)) == VLM_OK)
        VLM_LOG_I("bench: wrote %s", a->plot);
    return s;
}

/* vlm bench --concurrency without --serve: N requests at once to an in-process engine
 * (src/bench/bench_concurrency.c), after the usual checks of the bench's options. */
static int run_concurrency(const bench_args *a, const vlm_bench_config *c) {
    double conc[32];
    int levels[32], n = 0, r;
    if ((r = parse_levels(&a->concurrency, "--concurrency", 1, conc, 32, &n))) return r;
    if (a->compare_devices || a->compare_quant)
        return vlm_usage_error("bench",
                               "--concurrency cannot be combined with --compare-devices / --compare-quantization");
    if (a->modes.n > 1) return vlm_usage_error("bench", "--concurrency measures one mode: give at most one in --modes");
    for (int i = 0; i < n; i++) levels[i] = (int)conc[i];
    vlm_loadtest_results res;
    vlm_status s = vlm_bench_concurrency(c, levels, n, &res);
    if (s != VLM_OK) return vlm_cli_fail(s);
    s = write_loadtest(a, &res);
    vlm_loadtest_free(&res);
    return s == VLM_OK ? 0 : vlm_cli_fail(s);
}

/* vlm bench --serve URL: a load test of an OpenAI-compatible server (src/bench/bench_serve.c). */
static int run_serve(const bench_args *a) {
    const char *bad = a->modes_seen   ? "--modes"
        : a->device_seen              ? "--device"
        : a->quantize                 ? "--quantize"
        : a->model_seen               ? "--model-id"
        : a->compare_devices          ? "--compare-devices"
        : a->compare_quant            ? "--compare-quantization"
        : a->threads                  ? "--threads"
        : strcmp(a->precision, "f32") ? "--precision"
        : a->output_dir_seen          ? "--output-dir"
                                      : NULL;
    if (bad) return vlm_usage_error("bench", "%s cannot be combined with --serve (the server's own setting)", bad);
    double conc[32], rates[32];
    int n_conc = 0, n_rates = 0, r;
    if ((r = parse_levels(&a->concurrency, "--concurrency", 1, conc, 32, &n_conc)) ||
        (r = parse_levels(&a->rates, "--request-rate", 0, rates, 32, &n_rates)))
        return r;
    if (n_conc + n_rates == 0) return vlm_usage_error("bench", "--serve needs --concurrency N or --request-rate R");
    if (a->requests < 0) return vlm_usage_error("bench", "--requests must be at least 1");
    if (a->runs < 1) return vlm_usage_error("bench", "--runs must be at least 1, got %d", a->runs);
    if (a->max_tokens < 1) return vlm_usage_error("bench", "--max-tokens must be at least 1, got %d", a->max_tokens);
    if (!(a->timeout > 0)) return vlm_usage_error("bench", "--timeout must be positive seconds");
    if (a->plot && !vlm_bench_plot_format_ok(a->plot))
        return vlm_usage_error("bench", "--plot %s: the chart is written as FILE.svg or FILE.html", a->plot);
    if (a->csv && !a->output) return vlm_usage_error("bench", "--csv writes beside the JSON: give --output FILE too");
    vlm_status s;
    if (a->output && (s = vlm_bench_check_output_path(a->output, "--output")) != VLM_OK) return vlm_cli_fail(s);
    if (a->plot && (s = vlm_bench_check_output_path(a->plot, "--plot")) != VLM_OK) return vlm_cli_fail(s);
    char **images = NULL;
    int n_images = 0;
    if (a->images.n && (s = vlm_bench_collect_images(a->images.v, a->images.n, &images, &n_images)) != VLM_OK)
        return vlm_cli_fail(s);
    int conc_i[32];
    for (int i = 0; i < n_conc; i++) conc_i[i] = (int)conc[i];
    const char *key = a->api_key ? a->api_key
        : getenv("VLM_API_KEY")  ? getenv("VLM_API_KEY")
                                 : getenv("OPENAI_API_KEY");
    vlm_bench_serve_config c = {.url = a->serve,
                                .api_key = key && key[0] ? key : NULL,
                                .model = a->served_model,
                                .text = a->text,
                                .images = (const char *const *)images,
                                .n_images = n_images,
                                .max_tokens = a->max_tokens,
                                .ignore_eos = a->ignore_eos,
                                .warmup = !a->no_warmup,
                                .runs = a->runs_seen ? a->runs : 1,
                                .requests = a->requests,
                                .concurrency = conc_i,
                                .n_concurrency = n_conc,
                                .rates = rates,
                                .n_rates = n_rates,
                                .timeout_s = a->timeout};
    vlm_loadtest_results res;
#ifdef VLM_HAVE_SERVE
    s = vlm_bench_serve(&c, &res);
#else
    s = vlm_err(VLM_ERR_UNAVAILABLE,
                "--serve is not in this build: libmicrohttpd and libcurl were not found when "
                "vlm was configured (scripts/setup.sh installs them)");
#endif
    vlm_bench_free_list(images, n_images);
    if (s != VLM_OK) return vlm_cli_fail(s);
    vlm_loadtest_print(stdout, &res);
    fflush(stdout);
    if (a->output && (s = vlm_loadtest_write_json(&res, a->output)) == VLM_OK) {
        VLM_LOG_I("bench: wrote %s", a->output);
        if (a->csv) {
            char path[VLM_PATH_MAX];
            vlm_bench_csv_path(a->output, path, sizeof path);
            if ((s = vlm_loadtest_write_csv(&res, path)) == VLM_OK) VLM_LOG_I("bench: wrote %s", path);
        }
    }
    if (s == VLM_OK && a->plot && (s = vlm_loadtest_write_plot(&res, a->plot)) == VLM_OK)
        VLM_LOG_I("bench: wrote %s", a->plot);
    int ok = 0;
    for (int i = 0; i < res.n_levels; i++) ok += res.levels[i].n_ok;
    vlm_loadtest_free(&res);
    if (s != VLM_OK) return vlm_cli_fail(s);
    if (!ok) {
        vlm_err(VLM_ERR_IO, "--serve %s: no request succeeded (errors above)", a->serve);
        return vlm_cli_fail(VLM_ERR_IO);
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    bench_args a = {.text = "Describe this image.",
                    .model_id = "Qwen/Qwen2.5-VL-3B-Instruct",
                    .device = "auto",
                    .precision = "f32",
                    .output_dir = "split_models",
                    .runs = 5,
                    .max_tokens = 128,
                    .timeout = 1800};
    vlm_arg spec[] = {
        {"--image", ARG_LIST, &a.images, "PATH", "input image (required); repeat it, or name a directory, for several"},
        {"--text", ARG_STR, &a.text, "STR", "prompt (default \"Describe this image.\")"},
        {"--modes", ARG_LIST, &a.modes, "M", "original, split_native, run_onnx (default: all three)", &a.modes_seen},
        {"--runs", ARG_INT, &a.runs, "N", "measured runs per mode (default 5; with --serve, per level: 1)",
         &a.runs_seen},
        {"--max-tokens", ARG_INT, &a.max_tokens, "N", "tokens to generate at most (default 128)"},
        {"--no-warmup", ARG_FLAG, &a.no_warmup, NULL, "skip the unmeasured warm-up run of each mode"},
        {"--ignore-eos", ARG_FLAG, &a.ignore_eos, NULL, "always generate exactly --max-tokens tokens"},
        {"--model-id", ARG_STR, &a.model_id, "ID",
         "checkpoint directory or HF id (default Qwen/Qwen2.5-VL-3B-Instruct)", &a.model_seen},
        {"--device", ARG_STR, &a.device, "D", "auto, cuda or cpu (default auto: cuda when a GPU is usable)",
         &a.device_seen},
        {"--quantize", ARG_FLAG, &a.quantize, NULL, "4-bit weights"},
        {"--output-dir", ARG_STR, &a.output_dir, "DIR", "split / ONNX / quantized artifacts (default split_models)",
         &a.output_dir_seen},
        {"--output", ARG_STR, &a.output, "FILE", "write the results as JSON"},
        {"--csv", ARG_FLAG, &a.csv, NULL, "also write CSV beside the JSON (same name, .csv)"},
        {"--compare-devices", ARG_FLAG, &a.compare_devices, NULL,
         "run on cuda and cpu; write benchmark_{cuda,cpu}_TIMESTAMP.json here"},
        {"--compare-quantization", ARG_FLAG, &a.compare_quant, NULL,
         "run non-quantized and 4-bit; write benchmark_{non_quantized,quantized}_TIMESTAMP.json here"},
        {"--threads", ARG_INT, &a.threads, "N", "CPU threads (default: every core)"},
        {"--precision", ARG_STR, &a.precision, "P", "f32 (default) | bf16: arithmetic of the matrix products"},
        {"--plot", ARG_STR, &a.plot, "FILE", "chart of stage times and throughput (.svg or .html)"},
        {"--serve", ARG_STR, &a.serve, "URL", "benchmark an OpenAI-compatible server at URL instead (vlm serve, ...)"},
        {"--concurrency", ARG_LIST, &a.concurrency, "N",
         "requests at once, e.g. 1,4,16 (one level each): to an in-process engine, or with --serve in flight"},
        {"--no-prefix-cache", ARG_FLAG, &a.no_prefix_cache, NULL,
         "--concurrency: no reuse of prompt prefixes' KV or image embeddings between requests"},
        {"--request-rate", ARG_LIST, &a.rates, "R", "--serve: Poisson arrivals at R requests/s (one level each)"},
        {"--requests", ARG_INT, &a.requests, "K", "--serve: requests per level and run (default N; rates: 16)"},
        {"--api-key", ARG_STR, &a.api_key, "KEY", "--serve: bearer key (default $VLM_API_KEY or $OPENAI_API_KEY)"},
        {"--served-model", ARG_STR, &a.served_model, "NAME", "--serve: the model name (default: GET /v1/models)"},
        {"--timeout", ARG_FLOAT, &a.timeout, "S", "--serve: seconds one request may take (default 1800)"},
        {0},
    };
    int r = vlm_args_parse("bench", k_synopsis, spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    if (a.serve) return run_serve(&a);
    if (a.no_prefix_cache && !a.concurrency.n)
        return vlm_usage_error("bench", "--no-prefix-cache applies to --concurrency (the in-process engine)");
    if (a.rates.n || a.requests || a.api_key || a.served_model)
        return vlm_usage_error("bench", "--request-rate, --requests, --api-key and --served-model need --serve URL");
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
    if (a.concurrency.n) {
        r = run_concurrency(&a, &c);
    } else if (a.compare_devices || a.compare_quant) {
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
