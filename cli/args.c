#include "args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Arrays of the lists filled so far, freed at exit (a list never holds more values than argv has
 * arguments, so one allocation per list suffices). */
enum { MAX_LISTS = 32 };
static const char **g_list_arrays[MAX_LISTS];
static int g_n_lists;

static void free_lists(void) {
    for (int i = 0; i < g_n_lists; i++) free((void *)g_list_arrays[i]);
    g_n_lists = 0;
}

static int list_init(const char *command, vlm_arg_list *l, int argc) {
    if (l->v) return 0;
    if (g_n_lists == MAX_LISTS) return vlm_usage_error(command, "too many list options");
    l->v = calloc((size_t)argc + 1, sizeof *l->v);
    if (!l->v) {
        fprintf(stderr, "vlm %s: out of memory for the values of a list option\n", command);
        return 1;
    }
    if (g_n_lists == 0) atexit(free_lists);
    g_list_arrays[g_n_lists++] = l->v;
    return 0;
}

int vlm_usage_error(const char *command, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "vlm %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `vlm %s --help`)\n", command);
    return 2;
}

void vlm_args_help(const char *command, const char *synopsis, const vlm_arg *spec) {
    printf("usage: vlm %s %s\n\noptions:\n", command, synopsis);
    for (const vlm_arg *a = spec; a->name; a++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s", a->name, a->metavar ? " " : "", a->metavar ? a->metavar : "",
                 a->kind == ARG_LIST ? "..." : "");
        printf("  %-28s %s\n", left, a->help ? a->help : "");
    }
    printf("  %-28s %s\n", "-h, --help", "show this help");
}

static int parse_value(const char *command, const vlm_arg *a, const char *v) {
    char *end;
    errno = 0;
    switch (a->kind) {
    case ARG_STR: *(const char **)a->dst = v; return 0;
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < INT_MIN || x > INT_MAX)
            return vlm_usage_error(command, "%s expects an integer, got '%s'", a->name, v);
        *(int *)a->dst = (int)x;
        return 0;
    }
    case ARG_LLONG: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) return vlm_usage_error(command, "%s expects an integer, got '%s'", a->name, v);
        *(long long *)a->dst = x;
        return 0;
    }
    case ARG_FLOAT: {
        float x = strtof(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            return vlm_usage_error(command, "%s expects a number, got '%s'", a->name, v);
        *(float *)a->dst = x;
        return 0;
    }
    case ARG_LIST: {
        vlm_arg_list *l = a->dst;
        if (!l->v) return vlm_usage_error(command, "%s: internal error (list not prepared)", a->name);
        l->v[l->n++] = v;
        return 0;
    }
    case ARG_FLAG: break;
    }
    return 0;
}

static int is_flag(const char *s) { return s[0] == '-' && s[1] == '-' && s[2]; }

int vlm_args_parse(const char *command, const char *synopsis, const vlm_arg *spec, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            vlm_args_help(command, synopsis, spec);
            return -1;
        }
        if (!is_flag(arg)) return vlm_usage_error(command, "unexpected argument '%s'", arg);
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const vlm_arg *a = NULL;
        for (const vlm_arg *s = spec; s->name; s++)
            if (strlen(s->name) == len && !strncmp(s->name, arg, len)) a = s;
        if (!a) return vlm_usage_error(command, "unknown option '%.*s'", (int)len, arg);
        if (a->seen) *a->seen = 1;
        if (a->kind == ARG_FLAG) {
            if (eq) return vlm_usage_error(command, "%s takes no value", a->name);
            *(int *)a->dst = 1;
            continue;
        }
        if (a->kind == ARG_LIST) {
            int r = list_init(command, a->dst, argc);
            if (r) return r;
        }
        if (eq) {
            if (parse_value(command, a, eq + 1)) return 2;
            continue;
        }
        if (i + 1 >= argc || is_flag(argv[i + 1]))
            return vlm_usage_error(command, "%s needs a value (%s)", a->name, a->metavar ? a->metavar : "value");
        if (parse_value(command, a, argv[++i])) return 2;
        if (a->kind == ARG_LIST) /* --modes a b c: take values until the next flag */
            while (i + 1 < argc && !is_flag(argv[i + 1]) && strcmp(argv[i + 1], "-h") != 0)
                if (parse_value(command, a, argv[++i])) return 2;
    }
    return 0;
}
