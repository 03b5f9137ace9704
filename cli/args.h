/* A small declarative command-line parser shared by every subcommand: a table of flags, each with
 * a kind and a destination. Unknown flags, missing values and bad numbers are usage errors that
 * name the argument (exit status 2). */
#ifndef VLM_CLI_ARGS_H
#define VLM_CLI_ARGS_H

typedef enum {
    ARG_FLAG,  /* --x: int set to 1 */
    ARG_STR,   /* --x V: const char * */
    ARG_INT,   /* --x N: int */
    ARG_LLONG, /* --x N: long long */
    ARG_FLOAT, /* --x F: float */
    ARG_LIST,  /* --x V (repeatable) or --x V1 V2 ... (until the next flag): vlm_arg_list */
} vlm_arg_kind;

/* Values of a repeatable flag, in order (pointers into argv). The array is allocated by the parser
 * on the first value, sized for every argument, and freed at exit: no cap on how often a flag
 * repeats. */
typedef struct {
    const char **v;
    int n;
} vlm_arg_list;

typedef struct {
    const char *name; /* "--max-tokens" */
    vlm_arg_kind kind;
    void *dst;
    const char *metavar; /* "N" (NULL for flags) */
    const char *help;
    int *seen; /* optional: set to 1 when given */
} vlm_arg;

/* Parses argv[first..argc) against spec (terminated by a {0} entry). Returns 0 on success,
 * 2 after printing a usage error, -1 after printing help (--help / -h): exit 0 then, or 1 when
 * memory for a list option's values could not be allocated. */
int vlm_args_parse(const char *command, const char *synopsis, const vlm_arg *spec, int argc, char **argv);
void vlm_args_help(const char *command, const char *synopsis, const vlm_arg *spec);
/* Prints "vlm COMMAND: message" and returns 2. */
int vlm_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
