/* Fuzz target: the chat template builder (text/chat.h: rendering, encoding, vision-pad expansion)
 * and the recognition of checkpoint templates (text/chat_template.h). The first byte picks:
 *   even: a conversation. Messages are separated by 0x00, parts by 0x01; a message starts with
 *         its role (a byte 0x10..0x13 for system / user / assistant / tool, else the text up to
 *         the first 0x02, any bytes); a part that starts with 0x03 is an image, 0x04 a video,
 *         anything else text. Bits 1 and 2 of the first byte set add_generation_prompt and
 *         add_vision_id. What builds holds exactly the pads its images and videos ask for, and
 *         the rendered text ends with the generation prompt when asked; what fails has a message.
 *   odd:  a Jinja template text: normalised and compared with the known templates (no crash, and
 *         the same answer twice). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/chat.h"
#include "text/chat_template.h"

enum { MAX_MSGS = 16, MAX_PARTS = 16 };

static vlm_tokenizer *g_tok;

static void check(int cond) {
    if (!cond) __builtin_trap();
}

/* The index of the first c in d[from, to), or to. */
static size_t find(const uint8_t *d, size_t from, size_t to, uint8_t c) {
    while (from < to && d[from] != c) from++;
    return from;
}

static void fuzz_conversation(uint8_t flags, const uint8_t *d, size_t size) {
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    char role_text[MAX_MSGS][64];
    vlm_chat_part parts[MAX_MSGS][MAX_PARTS];
    vlm_chat_message msgs[MAX_MSGS];
    int n_msgs = 0, n_vision = 0, pads[MAX_MSGS * MAX_PARTS];
    long long want_pads = 0;
    size_t i = 0;
    while (i <= size && n_msgs < MAX_MSGS) {
        size_t m_end = find(d, i, size, 0x00);
        vlm_chat_message *m = &msgs[n_msgs];
        if (i < m_end && d[i] >= 0x10 && d[i] <= 0x13) {
            m->role = roles[d[i++] - 0x10];
        } else {
            size_t r_end = find(d, i, m_end, 0x02), n = r_end - i;
            if (n > sizeof role_text[0] - 1) n = sizeof role_text[0] - 1;
            memcpy(role_text[n_msgs], d + i, n);
            role_text[n_msgs][n] = '\0';
            m->role = role_text[n_msgs];
            i = r_end < m_end ? r_end + 1 : m_end;
        }
        int n_parts = 0;
        while (i <= m_end && n_parts < MAX_PARTS) {
            size_t q = find(d, i, m_end, 0x01);
            vlm_chat_part *part = &parts[n_msgs][n_parts++];
            if (i < q && (d[i] == 0x03 || d[i] == 0x04)) {
                *part = (vlm_chat_part){d[i] == 0x03 ? VLM_CHAT_IMAGE : VLM_CHAT_VIDEO, NULL, 0};
                pads[n_vision] = 1 + (int)((n_vision * 7u + size) % 5u);
                want_pads += pads[n_vision++];
            } else {
                *part = (vlm_chat_part){VLM_CHAT_TEXT, (const char *)d + i, q - i};
            }
            i = q + 1;
        }
        m->parts = parts[n_msgs];
        m->n_parts = n_parts;
        n_msgs++;
        i = m_end + 1;
    }
    vlm_chat_options opt = {.add_generation_prompt = (flags >> 1) & 1, .add_vision_id = (flags >> 2) & 1};
    vlm_ids ids = {0};
    vlm_strbuf text = {0};
    if (vlm_chat_build(g_tok, msgs, n_msgs, &opt, pads, n_vision, &ids, &text) == VLM_OK) {
        const vlm_tok_specials *sp = vlm_tok_specials_of(g_tok);
        long long got = 0;
        for (size_t k = 0; k < ids.n; k++) got += ids.v[k] == sp->image_pad || ids.v[k] == sp->video_pad;
        check(got == want_pads);
        static const char gen[] = "<|im_start|>assistant\n";
        if (opt.add_generation_prompt)
            check(text.len >= sizeof gen - 1 && !memcmp(text.data + text.len - (sizeof gen - 1), gen, sizeof gen - 1));
    } else {
        check(vlm_last_error()[0] != '\0');
        check(ids.n == 0 && text.len == 0); /* nothing half-built is left behind */
    }
    vlm_ids_free(&ids);
    vlm_sb_free(&text);
}

static void fuzz_template(const uint8_t *data, size_t size) {
    const char *a = vlm_chat_template_known((const char *)data, size);
    const char *b = vlm_chat_template_known((const char *)data, size);
    check(a == b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) check(vlm_tok_load(VLM_SOURCE_DIR "/assets/tokenizer/tokenizer.json", &g_tok) == VLM_OK);
    if (size == 0) return 0;
    if (data[0] & 1) fuzz_template(data + 1, size - 1);
    else fuzz_conversation(data[0], data + 1, size - 1);
    return 0;
}
