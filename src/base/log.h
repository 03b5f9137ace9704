/* Logging to stderr (stdout carries only what a command produces). Level from VLM_LOG:
 * error, warn, info (default), debug. Progress lines are shown only when stderr is a terminal. */
#ifndef VLM_BASE_LOG_H
#define VLM_BASE_LOG_H

#include "base/error.h"

typedef enum { VLM_LOG_ERROR = 0, VLM_LOG_WARN, VLM_LOG_INFO, VLM_LOG_DEBUG } vlm_log_level;

void vlm_log_set_level(vlm_log_level level);
vlm_log_level vlm_log_get_level(void);
void vlm_log(vlm_log_level level, const char *fmt, ...) VLM_PRINTF(2, 3);
/* A transient progress line ("\r...") on a terminal; nothing otherwise. done=1 ends the line. */
void vlm_progress(int done, const char *fmt, ...) VLM_PRINTF(2, 3);

#define VLM_LOG_E(...) vlm_log(VLM_LOG_ERROR, __VA_ARGS__)
#define VLM_LOG_W(...) vlm_log(VLM_LOG_WARN, __VA_ARGS__)
#define VLM_LOG_I(...) vlm_log(VLM_LOG_INFO, __VA_ARGS__)
#define VLM_LOG_D(...) vlm_log(VLM_LOG_DEBUG, __VA_ARGS__)

#endif
