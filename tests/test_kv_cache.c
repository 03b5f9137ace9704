/* The KV blocks' bookkeeping (src/runtime/kv_cache.h): allocation, references, the free count,
 * published blocks found by their identity and kept while free until the pool needs them (empty
 * blocks reused first, then cached ones least recently released first), and the chained block
 * identities (tokens, images by content hash, grid and place, everything before). Also the image
 * caches (image_cache.h): the embedding LRU by bytes and the size memo. */
#include <string.h>

#include "harness.h"
#include "kernels/backend.h"
#include "runtime/image_cache.h"
#include "runtime/kv_cache.h"

static vlm_block_hash hash_of(int v) {
    vlm_block_hash h;
    memset(&h, 0, sizeof h);
    memcpy(h.h, &v, sizeof v);
    h.h[31] = 7;
    return h;
}

static void test_alloc_release(void) {
    vlm_kv_cache c;
    CHECK_OK(vlm_kvc_init(&c, 4));
    CHECK(vlm_kvc_free_count(&c) == 4);
    int a = vlm_kvc_alloc(&c), b = vlm_kvc_alloc(&c), d = vlm_kvc_alloc(&c), e = vlm_kvc_alloc(&c);
    CHECK(a >= 0 && b >= 0 && d >= 0 && e >= 0 && a != b && b != d && d != e && a != e);
    CHECK(vlm_kvc_alloc(&c) == -1 && vlm_kvc_free_count(&c) == 0);
    vlm_kvc_retain(&c, b); /* two users */
    vlm_kvc_release(&c, b);
    CHECK(vlm_kvc_free_count(&c) == 0);
    vlm_kvc_release(&c, b);
    CHECK(vlm_kvc_free_count(&c) == 1 && vlm_kvc_alloc(&c) == b);
    vlm_kvc_release(&c, b);
    vlm_kvc_release(&c, b); /* a release too many changes nothing */
    CHECK(vlm_kvc_free_count(&c) == 1);
    vlm_kvc_release(&c, a), vlm_kvc_release(&c, d), vlm_kvc_release(&c, e);
    CHECK(vlm_kvc_free_count(&c) == 4);
    vlm_kvc_free(&c);
    CHECK_ERR(vlm_kvc_init(&c, 0), VLM_ERR_INVALID, "0 blocks");
}

static void test_prefix_blocks(void) {
    vlm_kv_cache c;
    CHECK_OK(vlm_kvc_init(&c, 4));
    vlm_block_hash h1 = hash_of(1), h2 = hash_of(2), h3 = hash_of(3);
    int a = vlm_kvc_alloc(&c), b = vlm_kvc_alloc(&c);
    CHECK(vlm_kvc_find(&c, &h1) == -1);
    vlm_kvc_publish(&c, a, &h1);
    vlm_kvc_publish(&c, b, &h2);
    vlm_kvc_publish(&c, b, &h3); /* a block has one identity */
    int other = vlm_kvc_alloc(&c);
    vlm_kvc_publish(&c, other, &h1); /* an identity has one block */
    CHECK(vlm_kvc_find(&c, &h1) == a && vlm_kvc_find(&c, &h2) == b && vlm_kvc_find(&c, &h3) == -1);
    vlm_kvc_release(&c, other);
    /* released, the cached blocks stay findable and count as free */
    vlm_kvc_release(&c, b);
    vlm_kvc_release(&c, a);
    CHECK(vlm_kvc_free_count(&c) == 4 && vlm_kvc_find(&c, &h1) == a && vlm_kvc_find(&c, &h2) == b);
    /* a new user of a cached block takes it off the free list */
    vlm_kvc_retain(&c, a);
    CHECK(vlm_kvc_free_count(&c) == 3);
    /* empty blocks are reused before cached ones; then the least recently released cached one */
    int x = vlm_kvc_alloc(&c), y = vlm_kvc_alloc(&c);
    CHECK(x != a && x != b && y != a && y != b);
    CHECK(vlm_kvc_find(&c, &h2) == b);
    int z = vlm_kvc_alloc(&c); /* only b is left: it is evicted and forgotten */
    CHECK(z == b && vlm_kvc_find(&c, &h2) == -1 && vlm_kvc_find(&c, &h1) == a);
    CHECK(vlm_kvc_alloc(&c) == -1);
    vlm_kvc_release(&c, a), vlm_kvc_release(&c, x), vlm_kvc_release(&c, y), vlm_kvc_release(&c, z);
    CHECK(vlm_kvc_free_count(&c) == 4);
    vlm_kvc_free(&c);
}

static void test_block_hashes(void) {
    int32_t ids[48], ids2[48];
    for (int i = 0; i < 48; i++) ids[i] = ids2[i] = 100 + i;
    for (int i = 20; i < 30; i++) ids[i] = ids2[i] = 151655; /* one image's pads in blocks 1 (16..31) */
    uint8_t img[1][32], img2[1][32];
    memset(img, 1, sizeof img);
    memset(img2, 2, sizeof img2);
    int32_t grid[1][3] = {{1, 4, 10}};
    int start[1] = {20}, tokens[1] = {10};
    vlm_block_hash a[3], b[3];
    CHECK_OK(vlm_block_hashes(ids, 48, 16, (const uint8_t(*)[32])img, (const int32_t(*)[3])grid, start, tokens, 1, a));
    CHECK_OK(vlm_block_hashes(ids2, 48, 16, (const uint8_t(*)[32])img, (const int32_t(*)[3])grid, start, tokens, 1, b));
    CHECK(!memcmp(a, b, sizeof a)); /* same tokens and image: same identities */
    /* another image with the same pads: block 0 is the same, blocks 1 and 2 differ */
    CHECK_OK(
        vlm_block_hashes(ids2, 48, 16, (const uint8_t(*)[32])img2, (const int32_t(*)[3])grid, start, tokens, 1, b));
    CHECK(!memcmp(&a[0], &b[0], sizeof a[0]) && memcmp(&a[1], &b[1], sizeof a[1]) && memcmp(&a[2], &b[2], sizeof a[2]));
    /* another grid: the same */
    int32_t grid2[1][3] = {{1, 10, 4}};
    CHECK_OK(
        vlm_block_hashes(ids2, 48, 16, (const uint8_t(*)[32])img, (const int32_t(*)[3])grid2, start, tokens, 1, b));
    CHECK(!memcmp(&a[0], &b[0], sizeof a[0]) && memcmp(&a[1], &b[1], sizeof a[1]));
    /* a token changed in block 0 changes every identity after it (chained) */
    ids2[3] = 7;
    CHECK_OK(vlm_block_hashes(ids2, 48, 16, (const uint8_t(*)[32])img, (const int32_t(*)[3])grid, start, tokens, 1, b));
    CHECK(memcmp(&a[0], &b[0], sizeof a[0]) && memcmp(&a[1], &b[1], sizeof a[1]) && memcmp(&a[2], &b[2], sizeof a[2]));
    /* a token changed in the last block changes only that one; a partial block has none */
    ids2[3] = ids[3];
    ids2[40] = 9;
    CHECK_OK(vlm_block_hashes(ids2, 47, 16, (const uint8_t(*)[32])img, (const int32_t(*)[3])grid, start, tokens, 1, b));
    CHECK(!memcmp(&a[0], &b[0], sizeof a[0]) && !memcmp(&a[1], &b[1], sizeof a[1]));
}

static void test_image_caches(void) {
    vlm_backend *be = NULL;
    CHECK_OK(vlm_cpu_backend_create(NULL, &be)); /* NULL: every core */
    if (!be) return;
    vlm_image_cache c;
    vlm_image_cache_init(&c, be, 3 * 10 * 4 * sizeof(float)); /* three entries of 10 rows of 4 */
    float rows[40];
    for (int i = 0; i < 40; i++) rows[i] = (float)i;
    uint8_t h[4][32];
    for (int k = 0; k < 4; k++) memset(h[k], k + 1, 32);
    vlm_grid_thw g = {1, 4, 10};
    for (int k = 0; k < 3; k++) vlm_image_cache_put(&c, h[k], g, rows, 10, 4);
    const float *got = vlm_image_cache_get(&c, h[0], g, 10, 4); /* h[0] becomes the most recent */
    CHECK(got && got != rows && !memcmp(got, rows, sizeof rows));
    vlm_grid_thw g2 = {1, 10, 4};
    CHECK(!vlm_image_cache_get(&c, h[0], g2, 10, 4)); /* another grid is another entry */
    vlm_image_cache_put(&c, h[3], g, rows, 10, 4);    /* full: h[1], the least recent, goes */
    CHECK(vlm_image_cache_get(&c, h[0], g, 10, 4) && !vlm_image_cache_get(&c, h[1], g, 10, 4));
    CHECK(vlm_image_cache_get(&c, h[2], g, 10, 4) && vlm_image_cache_get(&c, h[3], g, 10, 4));
    CHECK(c.n == 3 && c.used == c.cap);
    float big[400] = {0};
    vlm_image_cache_put(&c, h[1], g, big, 100, 4); /* larger than the whole cache: not kept */
    CHECK(!vlm_image_cache_get(&c, h[1], g, 100, 4) && c.n == 3);
    vlm_image_cache_free(&c);
    CHECK(be->bytes_in_use == 0);
    vlm_backend_destroy(be);

    vlm_image_sizes s;
    CHECK_OK(vlm_image_sizes_init(&s, 2));
    vlm_image_size e = {.min_pixels = 0, .max_pixels = 1000, .summary = {.width = 5, .tokens = 3}, .grid = g}, out;
    memcpy(e.hash, h[0], 32);
    vlm_image_sizes_add(&s, &e);
    CHECK(vlm_image_sizes_find(&s, h[0], 0, 1000, &out) && out.summary.width == 5 && out.grid.w == 10);
    CHECK(!vlm_image_sizes_find(&s, h[0], 0, 2000, &out)); /* other limits, other sizes */
    memcpy(e.hash, h[1], 32);
    vlm_image_sizes_add(&s, &e);
    vlm_image_sizes_find(&s, h[0], 0, 1000, &out); /* h[0] is now the more recent */
    memcpy(e.hash, h[2], 32);
    vlm_image_sizes_add(&s, &e); /* full: h[1] is replaced */
    CHECK(vlm_image_sizes_find(&s, h[0], 0, 1000, &out) && !vlm_image_sizes_find(&s, h[1], 0, 1000, &out));
    CHECK(vlm_image_sizes_find(&s, h[2], 0, 1000, &out));
    vlm_image_sizes_free(&s);
}

int main(void) {
    RUN(test_alloc_release);
    RUN(test_prefix_blocks);
    RUN(test_block_hashes);
    RUN(test_image_caches);
    return test_summary();
}
