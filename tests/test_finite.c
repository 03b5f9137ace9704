/* NaN and infinity: the finiteness check on what a stage hands on (host memory and the CPU
 * backend's op), and the scan of a checkpoint's weights that `vlm info --check` and a failed run
 * use, for every stored dtype and for quantized tensors' block scales. End to end (a NaN weight
 * through `vlm run` and `vlm info --check`): tests/cli/test_reliability.sh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "model/weights.h"
#include "tensor/quant.h"

static void test_check_finite(void) {
    enum { R = 3, C = 1000 };
    float *x = malloc(sizeof(float) * R * C);
    for (int i = 0; i < R * C; i++) x[i] = (float)i * 1e-3f;
    vlm_backend *be = NULL;
    CHECK_OK(vlm_backend_create(VLM_DEV_CPU, NULL, &be));
    CHECK_OK(vlm_check_finite(NULL, x, R, C, "host"));
    if (be) CHECK_OK(vlm_check_finite(be, x, R, C, "cpu"));
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const int at[] = {2 * C + 999, 0, 1024}; /* the last element, the first, a block's first */
    for (int k = 0; k < 3; k++) {
        x[at[k]] = bad[k];
        char want[128];
        snprintf(want, sizeof want, "the logits: not finite (NaN or infinity) at row %d, column %d of 3 x 1000",
                 at[k] / C, at[k] % C);
        CHECK_ERR(vlm_check_finite(NULL, x, R, C, "the logits"), VLM_ERR_RUNTIME, want);
        if (be) CHECK_ERR(vlm_check_finite(be, x, R, C, "the logits"), VLM_ERR_RUNTIME, want);
        x[at[k]] = 0;
    }
    x[5] = NAN, x[2500] = NAN; /* the first one is named */
    CHECK_ERR(vlm_check_finite(NULL, x, R, C, "x"), VLM_ERR_RUNTIME, "at row 0, column 5");
    CHECK(vlm_find_nonfinite_host(x, 5) == -1);
    vlm_backend_destroy(be);
    free(x);
}

typedef struct {
    char text[8][256];
    int n;
} found;

static int collect(void *user, const vlm_weight_issue *is) {
    found *f = user;
    if (f->n < 8) vlm_weight_issue_describe(is, f->text[f->n++], sizeof f->text[0]);
    return 0;
}

static void test_scan_weights(void) {
    /* f32 [2, 4] with +inf at (1, 2); bf16 [3, 2] with two NaNs; f16 [4] with -inf; a clean bf16;
     * a Q4_0 matrix [2 rows of 2 blocks] whose second row's first block scale is inf */
    float f32[8] = {0};
    f32[6] = INFINITY;
    uint16_t bf16[6] = {0x3f80, 0x3f80, 0x3f80, 0x7fc0, 0x3f80, 0xffc1};
    uint16_t f16[4] = {0x3c00, 0x3c00, 0x3c00, 0xfc00};
    uint16_t clean[4] = {0x3f80, 0xbf80, 0x0000, 0x8000};
    enum { QB = 18 }; /* Q4_0: f16 scale + 16 bytes */
    uint8_t q4[2 * 2 * QB] = {0};
    for (int b = 0; b < 4; b++) q4[b * QB] = 0x00, q4[b * QB + 1] = 0x3c; /* scale 1.0 */
    q4[2 * QB] = 0x00, q4[2 * QB + 1] = 0x7c;                             /* +inf */
    vlm_st_spec specs[] = {
        {.name = "a.f32", .dtype = VLM_DT_F32, .ndim = 2, .shape = {2, 4}},
        {.name = "b.bf16", .dtype = VLM_DT_BF16, .ndim = 2, .shape = {3, 2}},
        {.name = "c.f16", .dtype = VLM_DT_F16, .ndim = 1, .shape = {4}},
        {.name = "d.clean", .dtype = VLM_DT_BF16, .ndim = 1, .shape = {4}},
        {.name = "e.q4", .dtype = VLM_DT_U8, .ndim = 2, .shape = {2, 2 * QB}},
    };
    const void *data[] = {f32, bf16, f16, clean, q4};
    const char *keys[] = {"quant:e.q4"}, *vals[] = {"q4_0"};
    CHECK_OK(vlm_st_save(test_tmp("w.safetensors"), specs, data, 5, keys, vals, 1));
    vlm_safetensors *st = NULL;
    CHECK_OK(vlm_st_open(test_tmp("w.safetensors"), &st));
    if (!st) return;
    found f = {0};
    int n_bad = -1;
    CHECK_OK(vlm_weights_scan_finite(st, collect, &f, &n_bad));
    CHECK(n_bad == 4 && f.n == 4);
    const char *want[] = {
        "tensor a.f32: 1 value is NaN or infinite (the first at row 1, column 2)",
        "tensor b.bf16: 2 values are NaN or infinite (the first at row 1, column 1)",
        "tensor c.f16: 1 value is NaN or infinite (the first at row 0, column 3)",
        "tensor e.q4: 1 block scale is not finite (the first in row 1)",
    };
    for (int i = 0; i < 4 && i < f.n; i++) CHECK_MSG(!strcmp(f.text[i], want[i]), "got '%s'", f.text[i]);
    vlm_st_close(st);
}

int main(void) {
    RUN(test_check_finite);
    RUN(test_scan_weights);
    return test_summary();
}
