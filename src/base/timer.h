/* Monotonic wall-clock time in seconds. */
#ifndef VLM_BASE_TIMER_H
#define VLM_BASE_TIMER_H

double vlm_now(void);

#endif
