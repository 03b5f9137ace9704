/* vlm — status codes shared by the public API and the engine. */
#ifndef VLM_STATUS_H
#define VLM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Every fallible function returns one of these; 0 is success. The message that names the file,
 * tensor, flag or value at fault is available from vlm_last_error() on the same thread. */
typedef enum {
    VLM_OK = 0,
    VLM_ERR_IO,          /* a file could not be opened, read, mapped or written */
    VLM_ERR_FORMAT,      /* a file is corrupt or does not follow its format */
    VLM_ERR_UNSUPPORTED, /* valid input this engine does not handle (dtype, architecture, ...) */
    VLM_ERR_INVALID,     /* a bad argument or option value */
    VLM_ERR_NOMEM,       /* an allocation failed, or a request needs more memory than there is */
    VLM_ERR_NOT_FOUND,   /* a model, tensor, token or file that should exist does not */
    VLM_ERR_UNAVAILABLE, /* a feature that this build or machine lacks (CUDA, ONNX Runtime) */
    VLM_ERR_RUNTIME,     /* a failure while computing (device error, numeric trouble) */
    VLM_ERR_USAGE,       /* a command-line usage error (exit status 2) */
    VLM_ERR_BUSY         /* a queue or pool is full for now: retry later (the engine's waiting queue) */
} vlm_status;

/* The message of the last error on this thread ("" when none). */
const char *vlm_last_error(void);
/* A short name for a status code, e.g. "format error". */
const char *vlm_status_name(vlm_status s);

#ifdef __cplusplus
}
#endif
#endif
