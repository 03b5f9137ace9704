/* vlm run: answer a prompt about zero or more images, streaming the answer to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "io/file.h"
#include "io/json.h"
#include "vlm.h"

static int stream_out(void *user, const char *piece, size_t len) {
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static void json_ids(vlm_strbuf *b, const char *key, const int32_t *ids, int n) {
    vlm_sb_printf(b, "  \"%s\": [", key);
    for (int i = 0; i < n; i++) vlm_sb_printf(b, "%s%d", i ? ", " : "", ids[i]);
    vlm_sb_printf(b, "]");
}

static vlm_status write_json(const char *path, const vlm_result *r, const vlm_model_info *info) {
    vlm_strbuf b = {0};
    const vlm_timings *t = &r->timings;
    vlm_sb_printf(&b, "{\n");
    json_ids(&b, "input_ids", r->input_ids, r->n_input);
    vlm_sb_printf(&b, ",\n");
    json_ids(&b, "generated_ids", r->generated_ids, r->n_generated);
    vlm_sb_printf(&b, ",\n  \"text\": ");
    vlm_sb_json_string(&b, r->text ? r->text : "", r->text ? strlen(r->text) : 0);
    vlm_sb_printf(&b, ",\n  \"stop_reason\": \"%s\",\n", vlm_stop_reason_name(r->stop));
    vlm_sb_printf(&b, "  \"images\": [");
    for (int i = 0; i < r->n_images; i++) {
        const vlm_image_summary *im = &r->images[i];
        vlm_sb_printf(&b,
                      "%s{\"width\": %d, \"height\": %d, \"resized_width\": %d, \"resized_height\": %d, "
                      "\"tokens\": %d}",
                      i ? ", " : "", im->width, im->height, im->resized_width, im->resized_height, im->tokens);
    }
    vlm_sb_printf(&b, "],\n");
    vlm_sb_printf(&b,
                  "  \"timings\": {\"preprocess\": %.6f, \"vision\": %.6f, \"prefill\": %.6f, \"decode\": %.6f, "
                  "\"total\": %.6f, \"time_to_first_token\": %.6f, \"load\": %.6f},\n",
                  t->preprocess_s, t->vision_s, t->prefill_s, t->decode_s, t->total_s, t->time_to_first_token_s,
                  info->load_s);
    vlm_sb_printf(&b,
                  "  \"tokens\": {\"prompt\": %d, \"image\": %d, \"generated\": %d, \"prefill_per_s\": %.3f, "
                  "\"decode_per_s\": %.3f},\n",
                  t->prompt_tokens, t->image_tokens, t->generated_tokens, t->prefill_tokens_per_s,
                  t->decode_tokens_per_s);
    vlm_sb_printf(&b,
                  "  \"memory\": {\"cpu_rss_before\": %llu, \"cpu_rss_after\": %llu, \"cpu_rss_peak\": %llu, "
                  "\"gpu_before\": %llu, \"gpu_after\": %llu, \"gpu_peak\": %llu, \"kv_cache\": %llu},\n",
                  (unsigned long long)t->cpu_rss_before, (unsigned long long)t->cpu_rss_after,
                  (unsigned long long)t->cpu_rss_peak, (unsigned long long)t->gpu_mem_before,
                  (unsigned long long)t->gpu_mem_after, (unsigned long long)t->gpu_mem_peak,
                  (unsigned long long)t->kv_cache_bytes);
    vlm_sb_printf(&b, "  \"model\": {\"family\": \"%s\", \"mode\": \"%s\", \"device\": ", info->family,
                  vlm_mode_name(info->mode));
    vlm_sb_json_string(&b, info->device_name, strlen(info->device_name));
    vlm_sb_printf(&b, ", \"quantized\": %s}\n}\n", info->quantized ? "true" : "false");
    vlm_status s =
        b.failed ? vlm_err(VLM_ERR_NOMEM, "out of memory writing %s", path) : vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    return s;
}

int cmd_run(int argc, char **argv) {
    vlm_load_options o;
    vlm_request r;
    vlm_load_options_init(&o);
    vlm_request_init(&r);
    vlm_arg_list images = {0}, stops = {0};
    const char *mode = "original", *device = "auto", *precision = "f32", *json = NULL, *text = NULL, *file = NULL;
    long long seed = 0;
    int greedy = 0, seen_t = 0, seen_k = 0, seen_p = 0, seen_r = 0;
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &o.model_id, "ID",
         "checkpoint directory or Hugging Face id (default Qwen/Qwen2.5-VL-3B-Instruct)"},
        {"--image", ARG_LIST, &images, "FILE", "an image (repeat for several, in prompt order)"},
        {"--text", ARG_STR, &text, "STR", "the prompt"},
        {"--file", ARG_STR, &file, "FILE", "read the prompt from a file (byte for byte)"},
        {"--system", ARG_STR, &r.system, "STR", "system prompt (default: the model's)"},
        {"--mode", ARG_STR, &mode, "MODE", "original | split_native | run_onnx (default original)"},
        {"--output-dir", ARG_STR, &o.output_dir, "DIR", "split / ONNX / quantized artifacts (default split_models)"},
        {"--device", ARG_STR, &device, "DEV", "auto | cuda | cpu (default auto)"},
        {"--threads", ARG_INT, &o.threads, "N", "CPU threads (default: all cores)"},
        {"--precision", ARG_STR, &precision, "P",
         "f32 (default: the reference's arithmetic) | bf16 (bf16 activations in the matrix products)"},
        {"--quantize", ARG_FLAG, &o.quantize, NULL, "4-bit language model weights"},
        {"--quantize-vision", ARG_FLAG, &o.quantize_vision, NULL, "also quantize the vision encoder"},
        {"--min-pixels", ARG_LLONG, &o.min_pixels, "N", "override the processor's min_pixels"},
        {"--max-pixels", ARG_LLONG, &o.max_pixels, "N", "override the processor's max_pixels"},
        {"--max-tokens", ARG_INT, &r.sampling.max_tokens, "N", "new tokens at most (default 128)"},
        {"--greedy", ARG_FLAG, &greedy, NULL, "plain argmax, no penalty"},
        {"--temperature", ARG_FLOAT, &r.sampling.temperature, "T", "sampling temperature (0: greedy)", &seen_t},
        {"--top-k", ARG_INT, &r.sampling.top_k, "K", "top-k sampling (0: off)", &seen_k},
        {"--top-p", ARG_FLOAT, &r.sampling.top_p, "P", "nucleus sampling, in (0, 1]", &seen_p},
        {"--repetition-penalty", ARG_FLOAT, &r.sampling.repetition_penalty, "R", "repetition penalty (> 0; 1: off)",
         &seen_r},
        {"--seed", ARG_LLONG, &seed, "S", "random seed"},
        {"--ignore-eos", ARG_FLAG, &r.sampling.ignore_eos, NULL, "generate exactly --max-tokens"},
        {"--stop", ARG_LIST, &stops, "STR", "end the answer before this text (repeat for several)"},
        {"--json", ARG_STR, &json, "OUT", "write ids, text, timings and memory as JSON"},
        {"--dump", ARG_STR, &r.dump_path, "OUT", "write intermediate tensors (fixture names) to a safetensors file"},
        {0},
    };
    int rc =
        vlm_args_parse("run", "--model-id ID [--image FILE]... (--text STR | --file FILE) [options]", spec, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (!text && !file) return vlm_usage_error("run", "--text or --file is required");
    if (text && file) return vlm_usage_error("run", "give --text or --file, not both");
    if (vlm_mode_parse(mode, &o.mode) != 0)
        return vlm_usage_error("run", "unknown --mode '%s' (expected original, split_native or run_onnx)", mode);
    if (vlm_device_parse(device, &o.device) != 0)
        return vlm_usage_error("run", "unknown --device '%s' (expected auto, cuda or cpu)", device);
    if (r.sampling.max_tokens < 1) return vlm_usage_error("run", "--max-tokens must be at least 1");
    if (o.threads < 0) return vlm_usage_error("run", "--threads must be positive");
    if (vlm_precision_parse(precision, &o.precision) != 0)
        return vlm_usage_error("run", "unknown --precision '%s' (expected f32 or bf16)", precision);
    if (o.min_pixels < 0 || o.max_pixels < 0)
        return vlm_usage_error("run", "--min-pixels / --max-pixels must be positive");
    if (seen_t && !(r.sampling.temperature >= 0))
        return vlm_usage_error("run", "--temperature %g must be >= 0 (0 means greedy)", r.sampling.temperature);
    if (seen_k && r.sampling.top_k < 0)
        return vlm_usage_error("run", "--top-k %d must be >= 0 (0 turns it off)", r.sampling.top_k);
    if (seen_p && !(r.sampling.top_p > 0 && r.sampling.top_p <= 1))
        return vlm_usage_error("run", "--top-p %g must be in (0, 1]", r.sampling.top_p);
    if (seen_r && !(r.sampling.repetition_penalty > 0))
        return vlm_usage_error("run", "--repetition-penalty %g must be positive", r.sampling.repetition_penalty);
    r.sampling.given = (seen_t ? VLM_SAMPLING_TEMPERATURE : 0) | (seen_k ? VLM_SAMPLING_TOP_K : 0) |
        (seen_p ? VLM_SAMPLING_TOP_P : 0) | (seen_r ? VLM_SAMPLING_REPETITION_PENALTY : 0);
    r.sampling.greedy = greedy;
    r.sampling.seed = (uint64_t)seed;
    /* output paths fail now, not after loading the model and streaming the whole answer */
    vlm_status s = json ? vlm_check_output_path(json, "--json") : VLM_OK;
    if (s == VLM_OK && r.dump_path) s = vlm_check_output_path(r.dump_path, "--dump");
    for (int i = 0; s == VLM_OK && i < images.n; i++) { /* and missing or unreadable images */
        int fd;
        s = vlm_open_regular(images.v[i], &fd);
        if (s == VLM_OK) close(fd);
        else vlm_err_ctx(s, "--image");
    }
    if (s != VLM_OK) return vlm_cli_fail(s);
    char *file_text = NULL;
    size_t file_len = 0;
    if (file) {
        s = vlm_read_file(file, (size_t)64 << 20, &file_text, &file_len);
        if (s != VLM_OK) return vlm_cli_fail(s);
        text = file_text;
    }
    r.text = text;
    r.text_len = file ? file_len : strlen(text);
    r.images = images.v;
    r.n_images = images.n;
    r.on_text = stream_out;
    r.stop = stops.v;
    r.n_stop = stops.n;

    vlm_model *m = NULL;
    s = vlm_load(&o, &m);
    vlm_result res = {0};
    if (s == VLM_OK) s = vlm_generate(m, &r, &res);
    if (s == VLM_OK) {
        printf("\n");
        fflush(stdout);
        vlm_model_info info;
        vlm_model_get_info(m, &info);
        if (json) s = write_json(json, &res, &info);
    }
    vlm_result_free(&res);
    vlm_model_free(m);
    free(file_text);
    return s == VLM_OK ? 0 : vlm_cli_fail(s);
}
