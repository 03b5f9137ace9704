#include "io/hf_cache.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

void vlm_hf_cache_dir(char *out, size_t cap) {
    const char *e = getenv("HF_HUB_CACHE");
    if (e && *e) {
        snprintf(out, cap, "%s", e);
        return;
    }
    e = getenv("HF_HOME");
    if (e && *e) {
        snprintf(out, cap, "%s/hub", e);
        return;
    }
    const char *home = getenv("HOME");
    snprintf(out, cap, "%s/.cache/huggingface/hub", home && *home ? home : ".");
}

/* A checkpoint directory has config.json. */
static int is_checkpoint(const char *dir) {
    char p[VLM_PATH_MAX];
    /* any config.json: one that is not a regular file (a FIFO) is refused when it is read, by name */
    return vlm_path_join(p, sizeof p, dir, "config.json") == VLM_OK && vlm_path_exists(p);
}

vlm_status vlm_resolve_model(const char *model_id, char *out, size_t cap) {
    if (!model_id || !*model_id) return vlm_err(VLM_ERR_INVALID, "empty --model-id");
    if (vlm_is_dir(model_id)) {
        if (!is_checkpoint(model_id))
            return vlm_err(VLM_ERR_NOT_FOUND,
                           "%s is a directory but has no config.json (not a Hugging Face checkpoint)", model_id);
        if ((size_t)snprintf(out, cap, "%s", model_id) >= cap) return vlm_err(VLM_ERR_INVALID, "path too long");
        return VLM_OK;
    }
    char cache[VLM_PATH_MAX];
    vlm_hf_cache_dir(cache, sizeof cache);
    const char *slash = strchr(model_id, '/');
    int looks_like_id = slash && slash != model_id && slash[1] && !strchr(slash + 1, '/') && model_id[0] != '.';
    if (!looks_like_id)
        return vlm_err(VLM_ERR_NOT_FOUND,
                       "model %s not found: no such directory, and it is not a Hugging Face id of the form ORG/NAME",
                       model_id);
    char repo[VLM_PATH_MAX], org[256], name[512];
    snprintf(org, sizeof org, "%.*s", (int)(slash - model_id), model_id);
    snprintf(name, sizeof name, "%s", slash + 1);
    if ((size_t)snprintf(repo, sizeof repo, "%s/models--%s--%s", cache, org, name) >= sizeof repo)
        return vlm_err(VLM_ERR_INVALID, "path too long");
    char ref[VLM_PATH_MAX], rev[128] = {0}, snap[VLM_PATH_MAX];
    snprintf(ref, sizeof ref, "%s/refs/main", repo);
    char *text = NULL;
    if (vlm_is_file(ref) && vlm_read_file(ref, sizeof rev - 1, &text, NULL) == VLM_OK) {
        snprintf(rev, sizeof rev, "%s", text);
        rev[strcspn(rev, "\r\n ")] = '\0';
        free(text);
    }
    if (rev[0] && !strchr(rev, '/')) {
        snprintf(snap, sizeof snap, "%s/snapshots/%s", repo, rev);
        if (is_checkpoint(snap)) {
            if ((size_t)snprintf(out, cap, "%s", snap) >= cap) return vlm_err(VLM_ERR_INVALID, "path too long");
            return VLM_OK;
        }
    } else { /* no refs/main: accept a single snapshot */
        char sdir[VLM_PATH_MAX];
        snprintf(sdir, sizeof sdir, "%s/snapshots", repo);
        DIR *d = opendir(sdir);
        int found = 0;
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.') continue;
                snprintf(snap, sizeof snap, "%s/%s", sdir, e->d_name);
                if (is_checkpoint(snap)) {
                    found++;
                    snprintf(out, cap, "%s", snap);
                }
            }
            closedir(d);
        }
        if (found == 1) return VLM_OK;
    }
    return vlm_err(VLM_ERR_NOT_FOUND,
                   "model %s not found: %s is not a directory, and the Hugging Face cache has no snapshot of it "
                   "(looked in %s/snapshots/%s). Download it with `huggingface-cli download %s`, or pass "
                   "--model-id a checkpoint directory",
                   model_id, model_id, repo, rev[0] ? rev : "<refs/main>", model_id);
}
