/* The chat template a checkpoint ships, compared with the one vlm renders natively (chat.h).
 *
 * vlm renders the Qwen2-VL / Qwen2.5-VL template in C, with no Jinja engine. A checkpoint whose
 * template differs (a fine-tune with its own system prompt or turn format) would otherwise get a
 * prompt it did not ask for without a word. So at load the template is read, normalised (what it
 * renders counts, not how the file lays it out) and compared with the templates vlm knows; an
 * unknown one gets a warning, once per checkpoint directory and process, naming what vlm renders
 * instead.
 *
 * Normalised text: Jinja's whitespace control applied as transformers renders templates
 * (trim_blocks, lstrip_blocks, "{%-" / "-%}"), comments dropped, whitespace inside tags removed
 * outside string literals, string literals in double quotes. Templates with the same normalised
 * text render the same. */
#ifndef VLM_TEXT_CHAT_TEMPLATE_H
#define VLM_TEXT_CHAT_TEMPLATE_H

#include <stddef.h>

#include "io/json.h"

typedef enum {
    VLM_CHAT_TEMPLATE_NONE,    /* the checkpoint has no chat template: vlm's own is used */
    VLM_CHAT_TEMPLATE_KNOWN,   /* one vlm renders natively */
    VLM_CHAT_TEMPLATE_UNKNOWN, /* another one (or an unreadable file): vlm's own is used, with a warning */
} vlm_chat_template_kind;

/* Appends the normalised text of a Jinja template to *out (VLM_ERR_NOMEM only). */
vlm_status vlm_chat_template_normalize(const char *tmpl, size_t len, vlm_strbuf *out);

/* The name of the known template that tmpl renders as ("Qwen2-VL / Qwen2.5-VL"), or NULL. */
const char *vlm_chat_template_known(const char *tmpl, size_t len);

/* The template of the checkpoint in dir, where transformers' processor finds it: chat_template.jinja,
 * else chat_template.json's "chat_template", else tokenizer_config.json's "chat_template" (a string,
 * or the entry named "default" of a list). *tmpl gets the text, where[] the file's name;
 * VLM_ERR_NOT_FOUND when there is none, other errors for unreadable files. */
vlm_status vlm_chat_template_read(const char *dir, vlm_strbuf *tmpl, char *where, size_t where_cap);

/* What vlm_load calls for the language model's directory: reads and compares the template, and
 * warns (once per directory and process) when it is unknown or unreadable. Never fails a load. */
vlm_chat_template_kind vlm_chat_template_check(const char *dir);

/* What vlm renders, in words: the text of the warning. */
extern const char vlm_chat_template_native_summary[];

#endif
