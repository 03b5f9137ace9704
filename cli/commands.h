/* The subcommands of `vlm`, one file each. Each returns the process exit status: 0 success,
 * 1 failure (message on stderr), 2 usage error.
 *
 * cli/cmd_*.c, the commands that use a model (run, serve, bench), reach the engine through
 * include/vlm.h only (with the utility layers base/ and io/ for messages, files and JSON, and the
 * applications written on vlm.h: src/serve, the server, and src/bench, the benchmark). cli/dev/cmd_*.c are developer tools that work on
 * checkpoints and artifacts piece by piece, and call the internal modules directly: split,
 * export-onnx and quantize (the artifacts vlm_load otherwise makes when it needs them), info,
 * tokenize, preprocess, make-synthetic. scripts/check_layout.sh enforces the difference. */
#ifndef VLM_CLI_COMMANDS_H
#define VLM_CLI_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* cli/dev/ */
int cmd_split(int argc, char **argv);
int cmd_export_onnx(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_make_synthetic(int argc, char **argv);

/* Prints "vlm: <last error>" to stderr and returns 1 (2 for VLM_ERR_USAGE). */
int vlm_cli_fail(int status);

#endif
