/* The Qwen2-VL / Qwen2.5-VL chat template, rendered natively (no Jinja engine), and the prompt ids
 * the language model receives.
 *
 * The checkpoints' template (chat_template in tokenizer_config.json / chat_template.json; the same
 * for Qwen2-VL and Qwen2.5-VL), rendered as transformers does (trim_blocks, lstrip_blocks):
 *
 *   <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n      only when the first message
 *                                                                    is not a system message
 *   for each message:  <|im_start|>ROLE\nCONTENT<|im_end|>\n
 *   with add_generation_prompt:  <|im_start|>assistant\n
 *
 * CONTENT is the message's parts in order: a text part is its text as is; an image part is
 * <|vision_start|><|image_pad|><|vision_end|> (a video part the same with <|video_pad|>), preceded
 * by "Picture N: " ("Video N: ") when add_vision_id is set, N counting from 1 over the conversation.
 * A user turn as the processor builds it has its images first, then the text.
 *
 * Ids: the rendered text is encoded as a whole (so special-token strings typed in a text part become
 * those tokens, as in transformers), then the k-th <|image_pad|> / <|video_pad|> is repeated
 * pad_counts[k] times: the number of merged patches of that image, grid_t*grid_h*grid_w /
 * merge_size^2 (vlm_chat_vision_tokens). */
#ifndef VLM_TEXT_CHAT_H
#define VLM_TEXT_CHAT_H

#include <stddef.h>

#include "base/strbuf.h"
#include "text/tokenizer.h"

typedef enum { VLM_CHAT_TEXT, VLM_CHAT_IMAGE, VLM_CHAT_VIDEO } vlm_chat_part_type;

typedef struct {
    vlm_chat_part_type type;
    const char *text; /* VLM_CHAT_TEXT: UTF-8, len bytes (NUL bytes allowed) */
    size_t len;
} vlm_chat_part;

typedef struct {
    const char *role; /* "system", "user", "assistant" (any role is rendered as given) */
    const vlm_chat_part *parts;
    int n_parts;
} vlm_chat_message;

typedef struct {
    int add_generation_prompt; /* end with "<|im_start|>assistant\n" (1 for generation) */
    int add_vision_id;         /* "Picture N: " before each image */
} vlm_chat_options;

/* Appends the rendered conversation to *out. VLM_ERR_INVALID for an empty conversation, a
 * message without a role or a role with a line break or NUL. */
vlm_status vlm_chat_render(const vlm_chat_message *msgs, int n_msgs, const vlm_chat_options *opt, vlm_strbuf *out);

/* Renders, encodes and expands the vision pads: *ids receives the model's input ids (appended),
 * *text (when not NULL) the rendered text with one pad per image. pad_counts[k] (k < n_pads) is the
 * token count of the k-th image or video part of the conversation, in order; n_pads must equal the
 * number of those parts, and the encoded text must hold exactly those pads (VLM_ERR_INVALID when a
 * text part spells out "<|image_pad|>", when counts are missing or < 1, or when the tokenizer has
 * no <|vision_start|> / <|image_pad|> / <|vision_end|> tokens). */
vlm_status vlm_chat_build(vlm_tokenizer *t, const vlm_chat_message *msgs, int n_msgs, const vlm_chat_options *opt,
                          const int *pad_counts, int n_pads, vlm_ids *ids, vlm_strbuf *text);

/* The usual one-turn prompt: the default system prompt, one user turn with n_images images and
 * then `prompt`, and the generation prompt. image_tokens[k] is image k's token count. */
vlm_status vlm_chat_build_prompt(vlm_tokenizer *t, const char *prompt, size_t prompt_len, const int *image_tokens,
                                 int n_images, vlm_ids *ids, vlm_strbuf *text);

/* Tokens of one image: grid_t*grid_h*grid_w / (merge_size^2); VLM_ERR_INVALID when a value is < 1,
 * the product does not divide or exceeds INT32_MAX. */
vlm_status vlm_chat_vision_tokens(int grid_t, int grid_h, int grid_w, int merge_size, int *tokens);

#endif
