/* The vision layout on hand-made grids: window index and boundaries (padding, sides already a
 * multiple of the window, tiny grids, several images, several frames), the full-attention
 * segments, the rotary angle table in patch order, and grid validation. Values worked out by hand
 * from transformers' get_window_index / rot_pos_emb. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/config.h"
#include "model/vision_layout.h"

static vlm_vision_config cfg25(void) {
    /* Qwen2.5-VL-3B vision: window 112 px = 4 x 4 merged tokens */
    return (vlm_vision_config){.depth = 1,
                               .width = 1280,
                               .n_heads = 16,
                               .head_dim = 80,
                               .mlp_hidden = 3420,
                               .out_hidden = 2048,
                               .in_channels = 3,
                               .patch_size = 14,
                               .temporal_patch_size = 2,
                               .merge_size = 2,
                               .window_size = 112,
                               .norm_eps = 1e-6f};
}

static int ints_equal(const int *a, const int *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* Expect window_index == idx[0..m) and window boundaries == cu[0..nw]. */
static void expect_windows(const vlm_grid_thw *grids, int n_images, const int *idx, int m, const int *cu, int nw) {
    vlm_vision_config v = cfg25();
    vlm_vision_layout l;
    CHECK_OK(vlm_vision_layout_build(&v, 1, grids, n_images, &l));
    CHECK_MSG(l.n_merged == m, "%d merged tokens, expected %d", l.n_merged, m);
    CHECK_MSG(l.n_windows == nw, "%d windows, expected %d", l.n_windows, nw);
    if (l.n_merged == m) CHECK(ints_equal(l.window_index, idx, m));
    if (l.n_windows == nw) CHECK(ints_equal(l.window_segments, cu, nw + 1));
    /* a permutation with its inverse */
    int ok = 1;
    for (int j = 0; j < l.n_merged; j++) ok &= l.window_inverse[l.window_index[j]] == j;
    CHECK(ok);
    vlm_vision_layout_free(&l);
}

static void test_tiny_grid(void) {
    /* patches 4x4 -> merged 2x2: one window holding all 4 tokens */
    vlm_grid_thw g[1] = {{1, 4, 4}};
    expect_windows(g, 1, (int[]){0, 1, 2, 3}, 4, (int[]){0, 16}, 1);
    /* the smallest grid: one merged token */
    vlm_grid_thw g1[1] = {{1, 2, 2}};
    expect_windows(g1, 1, (int[]){0}, 1, (int[]){0, 4}, 1);
}

static void test_padding(void) {
    /* merged 1 x 5: windows cols 0-3 and col 4 */
    vlm_grid_thw g[1] = {{1, 2, 10}};
    expect_windows(g, 1, (int[]){0, 1, 2, 3, 4}, 5, (int[]){0, 16, 20}, 2);
    /* merged 5 x 5 (10 x 10 patches): 16 + 4 + 4 + 1 tokens */
    vlm_grid_thw g2[1] = {{1, 10, 10}};
    int idx[25] = {0,  1,  2,  3,  5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, /* rows 0-3, cols 0-3 */
                   4,  9,  14, 19,                                             /* col 4 */
                   20, 21, 22, 23,                                             /* row 4 */
                   24};
    expect_windows(g2, 1, idx, 25, (int[]){0, 64, 80, 96, 100}, 4);
}

static void test_multiple_of_window(void) {
    /* merged 4 x 8: HF pads a whole empty window row and column (2 x 3 windows, 4 empty) */
    vlm_grid_thw g[1] = {{1, 8, 16}};
    int idx[32], k = 0;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) idx[k++] = r * 8 + c;
    for (int r = 0; r < 4; r++)
        for (int c = 4; c < 8; c++) idx[k++] = r * 8 + c;
    expect_windows(g, 1, idx, 32, (int[]){0, 64, 128}, 2);
    /* merged 4 x 4: one full window, raster order */
    vlm_grid_thw g2[1] = {{1, 8, 8}};
    int id2[16];
    for (int i = 0; i < 16; i++) id2[i] = i;
    expect_windows(g2, 1, id2, 16, (int[]){0, 64}, 1);
}

static void test_two_images(void) {
    /* merged 1 x 5 then 2 x 2: the second image's tokens offset by 5, boundaries continue */
    vlm_grid_thw g[2] = {{1, 2, 10}, {1, 4, 4}};
    expect_windows(g, 2, (int[]){0, 1, 2, 3, 4, 5, 6, 7, 8}, 9, (int[]){0, 16, 20, 36}, 3);
    vlm_vision_config v = cfg25();
    vlm_vision_layout l;
    CHECK_OK(vlm_vision_layout_build(&v, 1, g, 2, &l));
    CHECK(l.n_full == 2 && l.full_segments[0] == 0 && l.full_segments[1] == 20 && l.full_segments[2] == 36);
    vlm_vision_layout_free(&l);
}

static void test_frames(void) {
    /* t = 2: windows per frame; each frame its own full-attention segment */
    vlm_grid_thw g[1] = {{2, 2, 4}};
    expect_windows(g, 1, (int[]){0, 1, 2, 3}, 4, (int[]){0, 8, 16}, 2);
    vlm_vision_config v = cfg25();
    vlm_vision_layout l;
    CHECK_OK(vlm_vision_layout_build(&v, 0, g, 1, &l));
    CHECK(l.n_full == 2 && l.full_segments[1] == 8 && l.full_segments[2] == 16);
    CHECK(l.window_index == NULL && l.n_windows == 0); /* Qwen2-VL: no windows */
    vlm_vision_layout_free(&l);
}

/* rot_pos_emb: rows in patch order (merge groups consecutive), [row * inv_freq, col * inv_freq]. */
static void test_rotary(void) {
    vlm_vision_config v = cfg25();
    v.head_dim = 16; /* rot_dim 8: inv_freq = 10000^-(0, 2, 4, 6)/8 */
    vlm_grid_thw g[1] = {{1, 2, 4}};
    vlm_vision_layout l;
    CHECK_OK(vlm_vision_layout_build(&v, 1, g, 1, &l));
    CHECK(l.rot_dim == 8 && l.n_patches == 8);
    static const int pos[8][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}};
    float worst = 0;
    for (int p = 0; p < 8; p++)
        for (int k = 0; k < 4; k++) {
            double inv = pow(10000.0, -(2.0 * k) / 8.0);
            worst = fmaxf(worst, fabsf(l.rot[p * 8 + k] - (float)(pos[p][0] * inv)));
            worst = fmaxf(worst, fabsf(l.rot[p * 8 + 4 + k] - (float)(pos[p][1] * inv)));
        }
    CHECK_MSG(worst < 1e-6f, "max error %g", worst);
    vlm_vision_layout_free(&l);
    /* a second image restarts at row/col 0 */
    vlm_grid_thw g2[2] = {{1, 2, 2}, {1, 2, 2}};
    CHECK_OK(vlm_vision_layout_build(&v, 1, g2, 2, &l));
    CHECK(memcmp(l.rot, l.rot + 4 * 8, 4 * 8 * sizeof(float)) == 0);
    vlm_vision_layout_free(&l);
}

static void test_grid_errors(void) {
    vlm_vision_config v = cfg25();
    vlm_vision_layout l;
    vlm_grid_thw odd[1] = {{1, 4, 5}}, neg[1] = {{1, -2, 4}}, not_t[1] = {{0, 2, 2}};
    CHECK_ERR(vlm_vision_layout_build(&v, 1, odd, 1, &l), VLM_ERR_INVALID, "w=5");
    CHECK_ERR(vlm_vision_layout_build(&v, 1, neg, 1, &l), VLM_ERR_INVALID, "image 0");
    CHECK_ERR(vlm_vision_layout_build(&v, 1, not_t, 1, &l), VLM_ERR_INVALID, "t=0");
    vlm_grid_thw two[2] = {{1, 2, 2}, {1, 2, 3}};
    CHECK_ERR(vlm_vision_layout_build(&v, 1, two, 2, &l), VLM_ERR_INVALID, "image 1");
    vlm_grid_thw big[2] = {{1, 2048, 2048}, {1, 2, 2}};
    CHECK_ERR(vlm_vision_layout_build(&v, 1, big, 2, &l), VLM_ERR_INVALID, "patches");
    vlm_grid_thw huge[1] = {{1 << 20, 1 << 20, 1 << 20}};
    CHECK_ERR(vlm_vision_layout_build(&v, 1, huge, 1, &l), VLM_ERR_INVALID, "patches");
    CHECK_ERR(vlm_vision_layout_build(&v, 1, NULL, 0, &l), VLM_ERR_INVALID, "no image");
}

/* The real 1280x720 grid: 26 x 46 merged -> 7 x 12 windows, all non-empty. */
static void test_large_grid(void) {
    vlm_vision_config v = cfg25();
    vlm_grid_thw g[1] = {{1, 52, 92}};
    vlm_vision_layout l;
    CHECK_OK(vlm_vision_layout_build(&v, 1, g, 1, &l));
    CHECK(l.n_patches == 4784 && l.n_merged == 1196 && l.n_windows == 84);
    CHECK(l.window_segments[84] == 4784);
    int mono = 1;
    for (int s = 0; s < l.n_windows; s++) mono &= l.window_segments[s + 1] > l.window_segments[s];
    CHECK(mono);
    /* the last window: rows 24-25, cols 44-45 */
    CHECK(l.window_segments[84] - l.window_segments[83] == 16);
    CHECK(l.window_index[l.n_merged - 1] == 25 * 46 + 45);
    vlm_vision_layout_free(&l);
}

int main(void) {
    RUN(test_tiny_grid);
    RUN(test_padding);
    RUN(test_multiple_of_window);
    RUN(test_two_images);
    RUN(test_frames);
    RUN(test_rotary);
    RUN(test_grid_errors);
    RUN(test_large_grid);
    return test_summary();
}
