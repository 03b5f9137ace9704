#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_level = -1;

static vlm_log_level level_from_env(void) {
    const char *e = getenv("VLM_LOG");
    if (!e) return VLM_LOG_INFO;
    if (!strcmp(e, "error")) return VLM_LOG_ERROR;
    if (!strcmp(e, "warn")) return VLM_LOG_WARN;
    if (!strcmp(e, "debug")) return VLM_LOG_DEBUG;
    return VLM_LOG_INFO;
}

void vlm_log_set_level(vlm_log_level level) { g_level = (int)level; }

vlm_log_level vlm_log_get_level(void) {
    if (g_level < 0) g_level = (int)level_from_env();
    return (vlm_log_level)g_level;
}

void vlm_log(vlm_log_level level, const char *fmt, ...) {
    if (level > vlm_log_get_level()) return;
    static const char *tag[] = {"error", "warning", "info", "debug"};
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "vlm: %s%s%s\n", level == VLM_LOG_INFO ? "" : tag[level], level == VLM_LOG_INFO ? "" : ": ", buf);
}

void vlm_progress(int done, const char *fmt, ...) {
    static int tty = -1;
    if (tty < 0) tty = isatty(STDERR_FILENO);
    if (!tty || vlm_log_get_level() < VLM_LOG_INFO) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[K%s%s", buf, done ? "\n" : "");
    fflush(stderr);
}
