/* Split artifacts: byte-identical tensors, self-contained directories that bind alone, manifests
 * that notice a changed source or a changed artifact, and nothing half-written on failure. */
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

#include "harness.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/artifact.h"
#include "runtime/split.h"

static const char *copy_model(const char *name, const char *tag) {
    const char *dst = test_tmp(tag);
    vlm_mkdirs(dst);
    const char *files[] = {"config.json",      "generation_config.json", "preprocessor_config.json",
                           "tokenizer.json",   "tokenizer_config.json",  "chat_template.json",
                           "model.safetensors"};
    for (int i = 0; i < 7; i++) {
        char src[1024], d[1024];
        snprintf(src, sizeof src, "%s/%s", test_fixture(name), files[i]);
        snprintf(d, sizeof d, "%s/%s", dst, files[i]);
        vlm_copy_file(src, d);
    }
    return dst;
}

static void check_part(const vlm_safetensors *src, const char *dir, int vision) {
    vlm_safetensors *st;
    CHECK_OK(vlm_st_open(dir, &st));
    if (!st) return;
    int expected = 0;
    for (int i = 0; i < src->n_entries; i++) {
        const vlm_st_entry *e = &src->entries[i];
        int is_vision = strncmp(e->name, "visual.", 7) == 0;
        if (is_vision != vision) continue;
        expected++;
        const vlm_st_entry *c = vlm_st_find(st, e->name);
        CHECK_MSG(c && c->nbytes == e->nbytes && c->dtype == e->dtype && !memcmp(c->data, e->data, e->nbytes),
                  "tensor %s differs", e->name);
    }
    CHECK(st->n_entries == expected);
    /* the artifact binds alone */
    vlm_model_config cfg;
    CHECK_OK(vlm_config_load(dir, &cfg));
    vlm_vision_weights vw;
    vlm_text_weights tw;
    CHECK_OK(vlm_bind_weights(st, &cfg, vision, !vision, &vw, &tw));
    vlm_vision_weights_free(&vw);
    vlm_text_weights_free(&tw);
    vlm_st_close(st);
}

static void test_split_fixture(void) {
    const char *models[] = {"models/tiny-qwen2_5-vl", "models/tiny-qwen2-vl"};
    for (int m = 0; m < 2; m++) {
        const char *model = copy_model(models[m], m ? "src2" : "src25");
        const char *out = test_tmp(m ? "out2" : "out25");
        char why[4096];
        CHECK(!vlm_split_is_fresh(model, out, why, sizeof why));
        CHECK(strstr(why, "does not exist") != NULL);
        CHECK_OK(vlm_split_write(model, out, NULL, NULL));
        CHECK(vlm_split_is_fresh(model, out, why, sizeof why));
        vlm_safetensors *src;
        CHECK_OK(vlm_st_open(model, &src));
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/vision", out);
        check_part(src, dir, 1);
        snprintf(dir, sizeof dir, "%s/language", out);
        check_part(src, dir, 0);
        char f[1024];
        snprintf(f, sizeof f, "%s/language/tokenizer.json", out);
        CHECK(vlm_is_file(f));
        snprintf(f, sizeof f, "%s/vision/preprocessor_config.json", out);
        CHECK(vlm_is_file(f));
        vlm_st_close(src);
    }
}

static void test_staleness(void) {
    const char *model = copy_model("models/tiny-qwen2-vl-c", "src-c");
    const char *out = test_tmp("out-c");
    char why[4096], path[1024];
    CHECK_OK(vlm_split_ensure(model, out, NULL, NULL));
    CHECK(vlm_split_is_fresh(model, out, why, sizeof why));
    /* a changed source (new mtime) makes it stale */
    snprintf(path, sizeof path, "%s/config.json", model);
    struct utimbuf t = {.actime = time(NULL) + 100, .modtime = time(NULL) + 100};
    utime(path, &t);
    CHECK(!vlm_split_is_fresh(model, out, why, sizeof why));
    CHECK(strstr(why, "changed since") != NULL);
    CHECK_OK(vlm_split_ensure(model, out, NULL, NULL));
    CHECK(vlm_split_is_fresh(model, out, why, sizeof why));
    /* a damaged artifact is stale too */
    snprintf(path, sizeof path, "%s/language/model.safetensors", out);
    vlm_write_file(path, "x", 1);
    CHECK(!vlm_split_is_fresh(model, out, why, sizeof why));
    CHECK(strstr(why, "files in") != NULL);
    /* another source */
    CHECK_OK(vlm_split_ensure(model, out, NULL, NULL));
    const char *other = copy_model("models/tiny-qwen2-vl", "src-other");
    CHECK(!vlm_split_is_fresh(other, out, why, sizeof why));
    CHECK(strstr(why, "was made from") != NULL);
}

static void test_split_errors(void) {
    /* a language-only artifact cannot be split again: the error names the reason, no debris */
    const char *model = copy_model("models/tiny-qwen2_5-vl", "src-err");
    const char *out = test_tmp("out-err");
    CHECK_OK(vlm_split_write(model, out, NULL, NULL));
    char lang[1024];
    snprintf(lang, sizeof lang, "%s/language", out);
    CHECK_ERR(vlm_split_write(lang, test_tmp("out-err2"), NULL, NULL), VLM_ERR_FORMAT, "both a vision encoder");
    CHECK_ERR(vlm_split_write(test_tmp("nothing-here"), test_tmp("out-err3"), NULL, NULL), VLM_ERR_NOT_FOUND,
              "nothing-here does not exist");
}

int main(void) {
    RUN(test_split_fixture);
    RUN(test_staleness);
    RUN(test_split_errors);
    return test_summary();
}
