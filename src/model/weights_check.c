/* Scanning a checkpoint's weights for NaN and infinity (weights.h): `vlm info --check`, and the
 * explanation of a run whose activations stopped being finite. Tests the exponent bits of the
 * stored numbers (all ones: NaN or infinity) without converting them; quantized tensors (U8 with a
 * "quant:" format) have their block scales checked, as their codes are always finite. */
#include <stdio.h>
#include <string.h>

#include "model/weights.h"
#include "tensor/quant.h"

/* Element i of a tensor's bytes (memcpy: a tensor's data need not be aligned). */
static uint32_t u32_at(const uint8_t *p, size_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}
static uint16_t u16_at(const uint8_t *p, size_t i) {
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
}

/* Index of the first element whose exponent bits are all ones (NaN or infinity) and the number of
 * such elements (first = -1 when none); one loop per width so that each vectorizes. */
static void scan_plain(const vlm_st_entry *e, int64_t *first, int64_t *count) {
    const uint8_t *p = e->data;
    size_t n = e->nbytes / vlm_dtype_size(e->dtype);
    int64_t c = 0;
    if (e->dtype == VLM_DT_F32) {
        for (size_t i = 0; i < n; i++) c += (u32_at(p, i) & 0x7f800000u) == 0x7f800000u;
    } else {
        uint16_t m = e->dtype == VLM_DT_BF16 ? 0x7f80u : 0x7c00u;
        for (size_t i = 0; i < n; i++) c += (u16_at(p, i) & m) == m;
    }
    *first = -1;
    *count = c;
    for (size_t i = 0; c && i < n && *first < 0; i++) { /* only bad tensors get here */
        int bad = e->dtype == VLM_DT_F32 ? (u32_at(p, i) & 0x7f800000u) == 0x7f800000u
            : e->dtype == VLM_DT_BF16    ? (u16_at(p, i) & 0x7f80u) == 0x7f80u
                                         : (u16_at(p, i) & 0x7c00u) == 0x7c00u;
        if (bad) *first = (int64_t)i;
    }
}

vlm_status vlm_weights_scan_finite(const vlm_safetensors *st, vlm_weight_issue_fn on_issue, void *user, int *n_bad) {
    *n_bad = 0;
    for (int i = 0; i < st->n_entries; i++) {
        const vlm_st_entry *e = &st->entries[i];
        vlm_weight_issue is = {.name = e->name, .first = -1};
        size_t cols = e->ndim >= 2 ? (size_t)e->shape[e->ndim - 1] : 0;
        char key[600];
        snprintf(key, sizeof key, "quant:%s", e->name);
        const char *tag = e->dtype == VLM_DT_U8 ? vlm_st_meta(st, e, key) : NULL;
        vlm_dtype q;
        if (tag && vlm_quant_from_tag(tag, &q) == 0) {
            /* every block starts with its f16 scale; a row holds cols bytes of whole blocks */
            size_t bs = vlm_dtype_size(q), nblocks = e->nbytes / bs;
            is.count = 0;
            for (size_t b = 0; b < nblocks; b++) {
                const uint8_t *p = (const uint8_t *)e->data + b * bs;
                if (((p[0] | p[1] << 8) & 0x7c00) != 0x7c00) continue;
                if (is.first < 0) is.first = (int64_t)b;
                is.count++;
            }
            is.in_scales = 1;
            if (is.first >= 0) {
                size_t per_row = cols ? cols / bs : 1;
                is.row = per_row ? is.first / (int64_t)per_row : 0;
                is.col = -1;
            }
        } else if (e->dtype == VLM_DT_F32 || e->dtype == VLM_DT_BF16 || e->dtype == VLM_DT_F16) {
            scan_plain(e, &is.first, &is.count);
            if (is.first >= 0) {
                is.row = cols ? is.first / (int64_t)cols : 0;
                is.col = cols ? is.first % (int64_t)cols : is.first;
            }
        }
        if (is.first < 0) continue;
        (*n_bad)++;
        if (on_issue && on_issue(user, &is)) break;
    }
    return VLM_OK;
}

void vlm_weight_issue_describe(const vlm_weight_issue *is, char *out, size_t cap) {
    if (is->in_scales)
        snprintf(out, cap, "tensor %s: %lld block scale%s not finite (the first in row %lld)", is->name,
                 (long long)is->count, is->count == 1 ? " is" : "s are", (long long)is->row);
    else
        snprintf(out, cap, "tensor %s: %lld value%s NaN or infinite (the first at row %lld, column %lld)", is->name,
                 (long long)is->count, is->count == 1 ? " is" : "s are", (long long)is->row, (long long)is->col);
}
