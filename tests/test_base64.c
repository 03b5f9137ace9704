/* Base64 for data: URIs: RFC 4648's test vectors both ways, every padding form, whitespace, and
 * each way an input can be wrong (a message naming the offset, nothing returned). */
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "base/memory.h"
#include "harness.h"

static void expect(const char *in, const char *want) {
    unsigned char *out = NULL;
    size_t n = 0;
    vlm_status s = vlm_base64_decode(in, strlen(in), &out, &n);
    CHECK_MSG(s == VLM_OK, "'%s': %s", in, vlm_last_error());
    CHECK_MSG(s == VLM_OK && n == strlen(want) && !memcmp(out, want, n), "'%s' decoded to %zu bytes", in, n);
    CHECK(s != VLM_OK || out[n] == 0);
    vlm_free(out);
}

static void expect_bad(const char *in, const char *needle) {
    unsigned char *out = (unsigned char *)1;
    size_t n = 7;
    CHECK_ERR(vlm_base64_decode(in, strlen(in), &out, &n), VLM_ERR_FORMAT, needle);
    CHECK(out == NULL && n == 0);
}

static void test_rfc4648_vectors(void) {
    expect("", "");
    expect("Zg==", "f");
    expect("Zm8=", "fo");
    expect("Zm9v", "foo");
    expect("Zm9vYg==", "foob");
    expect("Zm9vYmE=", "fooba");
    expect("Zm9vYmFy", "foobar");
}

static void test_encode(void) {
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        vlm_strbuf b = {0};
        vlm_base64_encode(plain[i], strlen(plain[i]), &b);
        CHECK_MSG(!strcmp(b.data ? b.data : "", enc[i]), "'%s' -> '%s'", plain[i], b.data ? b.data : "");
        vlm_sb_free(&b);
    }
    /* every byte value, both ways */
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
    vlm_strbuf b = {0};
    vlm_base64_encode(all, 256, &b);
    unsigned char *back = NULL;
    size_t n = 0;
    CHECK_OK(vlm_base64_decode(b.data, b.len, &back, &n));
    CHECK(n == 256 && back && !memcmp(back, all, 256));
    vlm_free(back);
    vlm_sb_free(&b);
}

static void test_lenient_forms(void) {
    expect("Zg", "f"); /* padding is optional */
    expect("Zm8", "fo");
    expect("Zm9v\r\nYmFy\n", "foobar"); /* MIME line breaks */
    expect(" Zm9v YmE= ", "fooba");
    expect("Zm8= ", "fo");
}

static void test_every_byte_value(void) {
    /* 0..255 encoded by Python's base64.b64encode(bytes(range(256))) */
    const char *enc = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"
                      "P0BBQkNERUZHSElKS0xNTk9QUVJTVFVW"
                      "V1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+"
                      "AgYKDhIWGh4iJiouMjY6PkJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6yt"
                      "rq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/"
                      "T19vf4+fr7/P3+/w==";
    unsigned char *out = NULL;
    size_t n = 0;
    CHECK_OK(vlm_base64_decode(enc, strlen(enc), &out, &n));
    CHECK(n == 256);
    int ok = 1;
    for (size_t i = 0; out && i < n && i < 256; i++) ok &= out[i] == i;
    CHECK(ok);
    vlm_free(out);
}

static void test_bad_inputs(void) {
    expect_bad("Zm9v!mFy", "'!' at offset 4");
    expect_bad("Zm9v-_Fy", "'-' at offset 4"); /* the URL-safe alphabet is not base64 */
    expect_bad("Zm9v\x01", "byte 0x01 at offset 4");
    expect_bad("Z", "ends inside a group");
    expect_bad("Zm9vY", "ends inside a group");
    expect_bad("=Zm9", "misplaced padding");
    expect_bad("Z===", "misplaced padding");
    expect_bad("Zm9v=", "misplaced padding");
    expect_bad("Zg=", "ends inside a group");
    expect_bad("Zg==Zg==", "follows the '=' padding");
    expect_bad("Zm8==", "misplaced padding");
}

int main(void) {
    RUN(test_rfc4648_vectors);
    RUN(test_encode);
    RUN(test_lenient_forms);
    RUN(test_every_byte_value);
    RUN(test_bad_inputs);
    return test_summary();
}
