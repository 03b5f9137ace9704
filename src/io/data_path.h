/* Where the project's run-time data lives (assets/, configs/): $VLM_DATA_DIR, else the directory
 * above the executable (the repository when run from build/), else the source tree it was built from. */
#ifndef VLM_IO_DATA_PATH_H
#define VLM_IO_DATA_PATH_H

#include <stddef.h>

#include "base/error.h"

/* out = <data dir>/rel; VLM_ERR_NOT_FOUND when no data directory has rel. */
vlm_status vlm_data_path(const char *rel, char *out, size_t cap);

#endif
