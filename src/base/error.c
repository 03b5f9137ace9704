#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { VLM_ERR_MAX = 2048 };
static _Thread_local char g_msg[VLM_ERR_MAX];

const char *vlm_last_error(void) { return g_msg; }

void vlm_err_clear(void) { g_msg[0] = '\0'; }

/* the names in parentheses: under the analyzer error.h makes them macros (make lint) */
vlm_status(vlm_err)(vlm_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return code;
}

vlm_status(vlm_err_ctx)(vlm_status code, const char *fmt, ...) {
    char prefix[VLM_ERR_MAX], old[VLM_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    /* prefix + ": " + old, truncated to the buffer */
    size_t n = strlen(prefix);
    memcpy(g_msg, prefix, n + 1);
    if (old[0] && n + 2 < sizeof g_msg) {
        memcpy(g_msg + n, ": ", 3);
        n += 2;
        size_t m = strlen(old);
        if (m > sizeof g_msg - 1 - n) m = sizeof g_msg - 1 - n;
        memcpy(g_msg + n, old, m);
        g_msg[n + m] = '\0';
    }
    return code;
}

const char *vlm_status_name(vlm_status s) {
    switch (s) {
    case VLM_OK: return "ok";
    case VLM_ERR_IO: return "I/O error";
    case VLM_ERR_FORMAT: return "format error";
    case VLM_ERR_UNSUPPORTED: return "not supported";
    case VLM_ERR_INVALID: return "invalid argument";
    case VLM_ERR_NOMEM: return "out of memory";
    case VLM_ERR_NOT_FOUND: return "not found";
    case VLM_ERR_UNAVAILABLE: return "unavailable";
    case VLM_ERR_RUNTIME: return "runtime error";
    case VLM_ERR_USAGE: return "usage error";
    case VLM_ERR_BUSY: return "busy";
    }
    return "unknown error";
}
