/* vlm: run and benchmark Qwen2-VL / Qwen2.5-VL vision-language models. The CLI is a thin user of
 * the engine: each subcommand parses its flags and calls the library. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "vlm_status.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command k_commands[] = {
    {"run", cmd_run, "answer a prompt about images (streams the answer to stdout)"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server: /v1/chat/completions, /health, /metrics"},
    {"bench", cmd_bench, "measure and compare the modes: timings, throughput, memory, JSON/CSV/chart"},
    {"split", cmd_split, "write the vision encoder and language model as separate artifacts"},
    {"export-onnx", cmd_export_onnx, "export the vision tower to ONNX (vision.onnx) for run_onnx"},
    {"quantize", cmd_quantize, "write a quantized copy of a checkpoint (q4_0, q8_0 or nf4 weights)"},
    {"info", cmd_info, "describe a checkpoint: family, dimensions, parameters, dtypes, sizes"},
    {"tokenize", cmd_tokenize, "encode text to token ids with a checkpoint's tokenizer, or decode ids"},
    {"preprocess", cmd_preprocess, "decode images and run the image processor: pixel_values + image_grid_thw"},
    {"make-synthetic", cmd_make_synthetic, "write a checkpoint with a real architecture and random weights"},
};
enum { N_COMMANDS = sizeof k_commands / sizeof k_commands[0] };

static void usage(FILE *f) {
    fprintf(f,
            "vlm %s — run and benchmark Qwen2-VL / Qwen2.5-VL models on CPU and CUDA\n\n"
            "usage: vlm COMMAND [options]   (vlm COMMAND --help for its options)\n\ncommands:\n",
            VLM_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-16s %s\n", k_commands[i].name, k_commands[i].summary);
}

int vlm_cli_fail(int status) {
    const char *msg = vlm_last_error();
    fprintf(stderr, "vlm: error: %s\n", msg[0] ? msg : vlm_status_name((vlm_status)status));
    return status == VLM_ERR_USAGE ? 2 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("vlm %s\n", VLM_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, k_commands[i].name)) return k_commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "vlm: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
