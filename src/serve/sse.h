/* Server-sent events for a streamed chat completion: "data: <chunk JSON>\n\n" per event, ending with
 * "data: [DONE]\n\n" as OpenAI's clients expect. The stream's order:
 *   begin  -> a chunk with delta {"role": "assistant", "content": ""}
 *   text   -> a chunk with delta {"content": ...} per call (pieces that arrived together go together)
 *   end    -> the chunk with finish_reason and the "vlm" object, the usage chunk when asked, [DONE]
 *   error  -> (instead of end, once the HTTP status is sent) {"error": {...}} and [DONE]
 * Comments (": ...\n\n") keep an idle connection alive; clients ignore them. */
#ifndef VLM_SERVE_SSE_H
#define VLM_SERVE_SSE_H

#include "serve/openai.h"

typedef struct {
    vlm_oai_meta meta;
    int include_usage, with_ids;
} vlm_sse_chat;

void vlm_sse_chat_begin(const vlm_sse_chat *s, vlm_strbuf *out);
void vlm_sse_chat_text(const vlm_sse_chat *s, const char *text, size_t len, vlm_strbuf *out);
void vlm_sse_chat_end(const vlm_sse_chat *s, const vlm_result *r, vlm_strbuf *out);
void vlm_sse_chat_error(const vlm_sse_chat *s, const vlm_oai_error *e, vlm_strbuf *out);
void vlm_sse_keepalive(vlm_strbuf *out);

#endif
