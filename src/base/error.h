/* Error reporting: every fallible function returns vlm_status and records a message on this thread.
 * Callers that add context call vlm_err_ctx, which prepends to the message already recorded. */
#ifndef VLM_BASE_ERROR_H
#define VLM_BASE_ERROR_H

#include "vlm_status.h"

#if defined(__GNUC__)
#define VLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VLM_PRINTF(a, b)
#endif

/* Records the message and returns code, so `return vlm_err(VLM_ERR_IO, "...")` reads naturally. */
vlm_status vlm_err(vlm_status code, const char *fmt, ...) VLM_PRINTF(2, 3);
/* Prepends "context: " to the current message and returns code. */
vlm_status vlm_err_ctx(vlm_status code, const char *fmt, ...) VLM_PRINTF(2, 3);
void vlm_err_clear(void);
#ifdef __clang_analyzer__
/* For the static analyzer (make lint), which cannot see into error.c: both return the code given. */
#define vlm_err(code, ...) (vlm_err((code), __VA_ARGS__), (code))
#define vlm_err_ctx(code, ...) (vlm_err_ctx((code), __VA_ARGS__), (code))
#endif

/* Propagate a non-OK status. */
#define VLM_TRY(expr)                                                                                                  \
    do {                                                                                                               \
        vlm_status vlm_try_s_ = (expr);                                                                                \
        if (vlm_try_s_ != VLM_OK) return vlm_try_s_;                                                                   \
    } while (0)

#endif
