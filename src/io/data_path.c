#include "io/data_path.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"

static int try_dir(const char *dir, const char *rel, char *out, size_t cap) {
    if (!dir || !*dir) return 0;
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    return n > 0 && (size_t)n < cap && vlm_path_exists(out);
}

vlm_status vlm_data_path(const char *rel, char *out, size_t cap) {
    if (try_dir(getenv("VLM_DATA_DIR"), rel, out, cap)) return VLM_OK;
    char exe[VLM_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 3; up++) { /* build/vlm, build/tests/x, or installed bin/ */
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = '\0';
            if (try_dir(exe, rel, out, cap)) return VLM_OK;
        }
    }
#ifdef VLM_SOURCE_DIR
    if (try_dir(VLM_SOURCE_DIR, rel, out, cap)) return VLM_OK;
#endif
    return vlm_err(VLM_ERR_NOT_FOUND, "project data file %s not found (set VLM_DATA_DIR to the vlm repository)", rel);
}
