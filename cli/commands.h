/* The subcommands of `vlm`, one file each (cli/cmd_*.c). Each returns the process exit status:
 * 0 success, 1 failure (message on stderr), 2 usage error. */
#ifndef VLM_CLI_COMMANDS_H
#define VLM_CLI_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_make_synthetic(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_split(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_export_onnx(int argc, char **argv);

/* Prints "vlm: <last error>" to stderr and returns 1 (2 for VLM_ERR_USAGE). */
int vlm_cli_fail(int status);

#endif
