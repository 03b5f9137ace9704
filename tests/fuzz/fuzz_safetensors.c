/* Fuzz target: the safetensors header parser and validator. Any input must give VLM_OK or an
 * error with a message — never a crash, an out-of-bounds read or a leak. */
#include <stdint.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vlm_safetensors *st = NULL;
    if (vlm_st_open_buffer(data, size, "fuzz.safetensors", &st) == VLM_OK) {
        /* touch every tensor's bytes: they must lie inside the buffer */
        volatile uint8_t sink = 0;
        for (int i = 0; i < st->n_entries; i++) {
            const uint8_t *p = st->entries[i].data;
            if (st->entries[i].nbytes) sink ^= p[0] ^ p[st->entries[i].nbytes - 1];
            (void)vlm_st_find(st, st->entries[i].name);
        }
        (void)sink;
        vlm_st_close(st);
    } else if (!vlm_last_error()[0]) {
        __builtin_trap(); /* an error without a message */
    }
    return 0;
}
