/* safetensors reader and writer: round trips, shards, and a corpus of broken files that must be
 * rejected with messages naming the file and the tensor. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/file.h"
#include "io/safetensors.h"

/* Builds a file from a header string and a data size. */
static const char *write_raw(const char *name, const char *header, size_t data_bytes, int64_t fake_len) {
    const char *path = test_tmp(name);
    size_t hl = strlen(header);
    size_t total = 8 + hl + data_bytes;
    unsigned char *buf = calloc(1, total);
    uint64_t len = fake_len >= 0 ? (uint64_t)fake_len : hl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, header, hl);
    vlm_write_file(path, buf, total);
    free(buf);
    return path;
}

static void test_round_trip(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {0x3f80, 0x4000, 0xbf80};
    int64_t c[2] = {7, -9};
    vlm_st_spec specs[] = {{"a", VLM_DT_F32, 2, {2, 3}}, {"b.weight", VLM_DT_BF16, 1, {3}}, {"c", VLM_DT_I64, 1, {2}}};
    const void *data[] = {a, b, c};
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    const char *path = test_tmp("rt.safetensors");
    CHECK_OK(vlm_st_save(path, specs, data, 3, mk, mv, 1));
    vlm_safetensors *st;
    CHECK_OK(vlm_st_open(path, &st));
    if (!st) return;
    CHECK(st->n_entries == 3);
    const vlm_st_entry *e = vlm_st_find(st, "a");
    CHECK(e && e->dtype == VLM_DT_F32 && e->ndim == 2 && e->shape[1] == 3 && !memcmp(e->data, a, sizeof a));
    e = vlm_st_find(st, "b.weight");
    CHECK(e && e->dtype == VLM_DT_BF16 && !memcmp(e->data, b, sizeof b));
    e = vlm_st_find(st, "c");
    CHECK(e && e->dtype == VLM_DT_I64 && !memcmp(e->data, c, sizeof c));
    CHECK(e && (uintptr_t)e->data % 8 == 0); /* the writer orders tensors so each is aligned */
    CHECK(vlm_st_find(st, "zzz") == NULL);
    const char *fmt = vlm_st_meta(st, NULL, "format");
    CHECK(fmt && !strcmp(fmt, "pt"));
    CHECK((uintptr_t)vlm_st_find(st, "a")->data % 8 == 0);
    vlm_st_close(st);
}

static void test_writer_checks_sizes(void) {
    vlm_st_spec spec = {"x", VLM_DT_F32, 1, {4}};
    vlm_st_writer *w;
    CHECK_OK(vlm_st_writer_open(&w, test_tmp("short.safetensors"), &spec, 1, NULL, NULL, 0));
    float v[2] = {0};
    CHECK_OK(vlm_st_writer_data(w, v, sizeof v));
    CHECK_ERR(vlm_st_writer_close(w), VLM_ERR_INVALID, "8 of 16 data bytes");
    CHECK(!vlm_path_exists(test_tmp("short.safetensors"))); /* nothing half-written */
}

static void test_fixture_model(void) {
    vlm_safetensors *st;
    CHECK_OK(vlm_st_open(test_fixture("models/tiny-qwen2_5-vl"), &st));
    if (!st) return;
    CHECK(st->n_entries == 80);
    const vlm_st_entry *e = vlm_st_find(st, "model.embed_tokens.weight");
    CHECK(e && e->dtype == VLM_DT_BF16 && e->shape[0] == 151936 && e->shape[1] == 64);
    vlm_st_close(st);
}

static void test_shards(void) {
    float a[2] = {1, 2}, b[3] = {3, 4, 5};
    vlm_st_spec sa = {"a", VLM_DT_F32, 1, {2}}, sb = {"b", VLM_DT_F32, 1, {3}};
    const void *da[] = {a}, *db[] = {b};
    vlm_mkdirs(test_tmp("sharded"));
    CHECK_OK(vlm_st_save(test_tmp("sharded/model-00001-of-00002.safetensors"), &sa, da, 1, NULL, NULL, 0));
    CHECK_OK(vlm_st_save(test_tmp("sharded/model-00002-of-00002.safetensors"), &sb, db, 1, NULL, NULL, 0));
    const char *index = "{\"metadata\": {\"total_size\": 20}, \"weight_map\": {\"a\": "
                        "\"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}}";
    CHECK_OK(vlm_write_file(test_tmp("sharded/model.safetensors.index.json"), index, strlen(index)));
    vlm_safetensors *st;
    CHECK_OK(vlm_st_open(test_tmp("sharded"), &st));
    if (st) {
        CHECK(st->n_files == 2 && st->n_entries == 2);
        CHECK(((const float *)vlm_st_find(st, "b")->data)[2] == 5);
        CHECK(vlm_st_bytes_with_prefix(st, "") == 20);
        vlm_st_close(st);
    }
    /* an index naming the wrong file for a tensor */
    const char *bad = "{\"weight_map\": {\"a\": \"model-00002-of-00002.safetensors\", \"b\": "
                      "\"model-00002-of-00002.safetensors\"}}";
    vlm_mkdirs(test_tmp("badshard"));
    vlm_copy_file(test_tmp("sharded/model-00002-of-00002.safetensors"),
                  test_tmp("badshard/model-00002-of-00002.safetensors"));
    vlm_write_file(test_tmp("badshard/model.safetensors.index.json"), bad, strlen(bad));
    CHECK_ERR(vlm_st_open(test_tmp("badshard"), &st), VLM_ERR_FORMAT, "lists tensor a");
    /* an index naming a missing shard */
    const char *missing = "{\"weight_map\": {\"a\": \"nope.safetensors\"}}";
    vlm_mkdirs(test_tmp("missing"));
    vlm_write_file(test_tmp("missing/model.safetensors.index.json"), missing, strlen(missing));
    CHECK_ERR(vlm_st_open(test_tmp("missing"), &st), VLM_ERR_IO, "nope.safetensors");
}

static void test_corrupt_corpus(void) {
    vlm_safetensors *st = NULL;
    const char *p;
    CHECK_ERR(vlm_st_open(test_tmp("does-not-exist.safetensors"), &st), VLM_ERR_NOT_FOUND, "does not exist");
    vlm_write_file(test_tmp("empty.safetensors"), "", 0);
    CHECK_ERR(vlm_st_open(test_tmp("empty.safetensors"), &st), VLM_ERR_FORMAT, "too short");
    p = write_raw("huge_header.safetensors", "{}", 0, (int64_t)1 << 40);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "exceeds");
    p = write_raw("trunc_header.safetensors", "{\"a\":", 0, 1000);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "truncated");
    p = write_raw("bad_json.safetensors", "{\"a\": {\"dtype\": \"F32\", ", 0, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "not valid JSON");
    p = write_raw("not_object.safetensors", "[1, 2]  ", 0, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "must be a JSON object");
    p = write_raw("bad_dtype.safetensors", "{\"w\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8,
                  -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_UNSUPPORTED, "tensor w has dtype F64");
    p = write_raw("out_of_range.safetensors",
                  "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "tensor w: data_offsets [0, 16] out of range");
    p = write_raw("size_mismatch.safetensors",
                  "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 16]}}", 16, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "shape x dtype needs 12");
    p = write_raw("overlap.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                  " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                  12, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "overlap");
    p = write_raw("duplicate.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                  " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                  8, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "appears twice");
    p = write_raw("neg_shape.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
                  4, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "shape[0]");
    p = write_raw("no_offsets.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "data_offsets");
    p = write_raw("bad_meta.safetensors", "{\"__metadata__\": {\"k\": 3}}", 0, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "__metadata__");
    p = write_raw("overflow.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 8], \"data_offsets\": [0, 4]}}", 4,
                  -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "tensor a");
    /* numbers beyond int64 / uint64: refused before any cast (the casts were undefined behaviour,
     * found by libFuzzer with clang's float-cast-overflow check; the sanitizer builds check it) */
    p = write_raw("shape_1e19.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1e19], \"data_offsets\": [0, 4]}}", 4, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "tensor a: shape[0] is not a non-negative integer");
    p = write_raw("offsets_1e20.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [1e20, 1e20]}}", 4, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "tensor a: data_offsets [1e+20, 1e+20] out of range");
    p = write_raw("offsets_neg.safetensors",
                  "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-1e20, 4]}}", 4, -1);
    CHECK_ERR(vlm_st_open(p, &st), VLM_ERR_FORMAT, "tensor a: \"data_offsets\" must be non-negative integers");
    /* truncating a valid file: the last tensor falls outside the data */
    vlm_safetensors *ok;
    CHECK_OK(vlm_st_open(test_fixture("models/tiny-qwen2-vl-c/model.safetensors"), &ok));
    if (ok) {
        size_t half = ok->files[0].map.size / 2;
        CHECK_OK(vlm_write_file(test_tmp("truncated.safetensors"), ok->files[0].map.data, half));
        CHECK_ERR(vlm_st_open(test_tmp("truncated.safetensors"), &st), VLM_ERR_FORMAT, "truncated.safetensors: tensor");
        vlm_st_close(ok);
    }
    CHECK(st == NULL);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_writer_checks_sizes);
    RUN(test_fixture_model);
    RUN(test_shards);
    RUN(test_corrupt_corpus);
    return test_summary();
}
