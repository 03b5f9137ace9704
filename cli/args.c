#include "args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        if (l->n >= VLM_ARG_LIST_MAX)
            return vlm_usage_error(command, "%s given more than %d times", a->name, VLM_ARG_LIST_MAX);
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
        if (eq) {
            if (parse_value(command, a, eq + 1)) return 2;
            continue;
        }
        if (i + 1 >= argc || is_flag(argv[i + 1]))
            return vlm_usage_error(command, "%s needs a value (%s)", a->name, a->metavar ? a->metavar : "value");
        if (parse_value(command, a, argv[++i])) return 2;
        if (a->kind == ARG_LIST) /* --modes a b c: take values until the next flag */
            while (i + 1 < argc && !is_flag(argv[i + 1]) && strcmp(argv[i + 1], "-h"))
                if (parse_value(command, a, argv[++i])) return 2;
    }
    return 0;
}
