/* The OpenAI mapping of vlm serve: every field of a chat-completions request into vlm_request, every
 * way a request is wrong (status, message, param), and the answers (chat.completion, SSE chunks,
 * the error object) read back as JSON. No model: these are the server's own contracts. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/memory.h"
#include "harness.h"
#include "io/file.h"
#include "serve/openai.h"
#include "serve/sse.h"

static const char *const k_models[] = {"tiny", "/models/tiny"};
static vlm_oai_options g_opt = {.models = k_models, .n_models = 2, .default_max_tokens = 77};

/* "iVBOR..." = the first bytes of a PNG, enough for the parser (it does not decode images) */
#define PNG_B64 "iVBORw0KGgo="

static int parse(const char *json, vlm_oai_chat *c, vlm_oai_error *e) {
    return vlm_oai_parse_chat(json, strlen(json), &g_opt, c, e);
}

/* The request parses; the caller checks c and frees it. */
#define PARSE_OK(json, c)                                                                                              \
    do {                                                                                                               \
        vlm_oai_error e_;                                                                                              \
        int st_ = parse(json, c, &e_);                                                                                 \
        CHECK_MSG(st_ == 0, "%s -> %d %s", json, st_, e_.message);                                                     \
    } while (0)

/* The request is refused with status, a message containing needle and param (NULL: null). */
static void expect_bad(const char *json, int status, const char *needle, const char *param) {
    vlm_oai_chat c;
    vlm_oai_error e;
    int st = parse(json, &c, &e);
    CHECK_MSG(st == status, "%s -> %d (%s), expected %d", json, st, e.message, status);
    CHECK_MSG(strstr(e.message, needle) != NULL, "%s: message '%s' lacks '%s'", json, e.message, needle);
    CHECK_MSG(param ? !strcmp(e.param, param) : e.param[0] == 0, "%s: param '%s', expected '%s'", json, e.param,
              param ? param : "");
    CHECK(c.root == NULL && c.messages == NULL); /* nothing left to free */
    vlm_oai_chat_free(&c);
}

#define USER "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_minimal_request(void) {
    vlm_oai_chat c;
    PARSE_OK("{" USER "}", &c);
    CHECK(c.req.n_messages == 1 && !strcmp(c.req.messages[0].role, "user"));
    CHECK(!strcmp(c.req.messages[0].text, "hi") && c.req.messages[0].n_parts == 0);
    CHECK(c.req.sampling.max_tokens == 77 && c.req.sampling.given == 0 && c.req.sampling.use_generation_config);
    CHECK(!c.stream && !c.include_usage && !c.seed_given && c.model == NULL && c.req.n_stop == 0);
    vlm_oai_chat_free(&c);
}

static void test_sampling_fields(void) {
    vlm_oai_chat c;
    PARSE_OK("{\"model\":\"tiny\"," USER ",\"max_tokens\":5,\"temperature\":0,\"top_p\":0.5,\"top_k\":-1,"
             "\"repetition_penalty\":1.0,\"seed\":-1,\"ignore_eos\":true,\"n\":1,\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true},\"return_token_ids\":true}",
             &c);
    const vlm_sampling *s = &c.req.sampling;
    CHECK(s->max_tokens == 5 && s->temperature == 0 && s->top_p == 0.5f && s->top_k == 0);
    CHECK(s->repetition_penalty == 1.0f && s->ignore_eos && s->seed == UINT64_MAX && c.seed_given);
    CHECK(s->given ==
          (VLM_SAMPLING_TEMPERATURE | VLM_SAMPLING_TOP_P | VLM_SAMPLING_TOP_K | VLM_SAMPLING_REPETITION_PENALTY));
    CHECK(c.stream && c.include_usage && c.return_token_ids && !strcmp(c.model, "tiny"));
    vlm_oai_chat_free(&c);
    /* max_completion_tokens is the newer name and wins; null is the same as absent */
    PARSE_OK("{" USER ",\"max_tokens\":5,\"max_completion_tokens\":9,\"temperature\":null,\"top_k\":40}", &c);
    CHECK(c.req.sampling.max_tokens == 9 && c.req.sampling.given == VLM_SAMPLING_TOP_K && c.req.sampling.top_k == 40);
    vlm_oai_chat_free(&c);
    /* fields accepted when they ask for nothing this server does differently */
    PARSE_OK("{" USER ",\"model\":\"/models/tiny\",\"frequency_penalty\":0,\"presence_penalty\":0,\"logprobs\":false,"
             "\"top_logprobs\":0,\"logit_bias\":{},\"tools\":[],\"tool_choice\":\"none\",\"parallel_tool_calls\":true,"
             "\"response_format\":{\"type\":\"text\"},\"user\":\"u1\",\"metadata\":{\"a\":\"b\"},\"store\":false,"
             "\"service_tier\":\"auto\",\"modalities\":[\"text\"],\"stop\":null}",
             &c);
    vlm_oai_chat_free(&c);
}

static void test_stop_strings(void) {
    vlm_oai_chat c;
    PARSE_OK("{" USER ",\"stop\":\"END\"}", &c);
    CHECK(c.req.n_stop == 1 && !strcmp(c.req.stop[0], "END"));
    vlm_oai_chat_free(&c);
    PARSE_OK("{" USER ",\"stop\":[\"a\",\"\\n\\n\"]}", &c);
    CHECK(c.req.n_stop == 2 && !strcmp(c.req.stop[1], "\n\n"));
    vlm_oai_chat_free(&c);
    expect_bad("{" USER ",\"stop\":[\"a\",\"\"]}", 400, "empty", "stop[1]");
    expect_bad("{" USER ",\"stop\":[\"a\",3]}", 400, "expected a string", "stop[1]");
    expect_bad("{" USER ",\"stop\":5}", 400, "a string or an array of strings", "stop");
    expect_bad("{" USER ",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\","
               "\"14\",\"15\",\"16\",\"17\"]}",
               400, "at most 16", "stop");
}

static void test_sampling_errors(void) {
    expect_bad("{" USER ",\"max_tokens\":0}", 400, "out of range", "max_tokens");
    expect_bad("{" USER ",\"max_tokens\":1.5}", 400, "expected an integer", "max_tokens");
    expect_bad("{" USER ",\"max_tokens\":\"10\"}", 400, "expected an integer, but got a string", "max_tokens");
    expect_bad("{" USER ",\"max_completion_tokens\":-3}", 400, "out of range", "max_completion_tokens");
    expect_bad("{" USER ",\"temperature\":-0.5}", 400, "must be >= 0", "temperature");
    expect_bad("{" USER ",\"temperature\":true}", 400, "expected a number", "temperature");
    expect_bad("{" USER ",\"top_p\":0}", 400, "(0, 1]", "top_p");
    expect_bad("{" USER ",\"top_p\":1.5}", 400, "(0, 1]", "top_p");
    expect_bad("{" USER ",\"top_k\":-2}", 400, "out of range", "top_k");
    expect_bad("{" USER ",\"repetition_penalty\":0}", 400, "must be > 0", "repetition_penalty");
    expect_bad("{" USER ",\"seed\":1e300}", 400, "out of range", "seed");
    expect_bad("{" USER ",\"n\":2}", 400, "one choice per request", "n");
    expect_bad("{" USER ",\"ignore_eos\":1}", 400, "expected a boolean", "ignore_eos");
    expect_bad("{" USER ",\"stream\":\"yes\"}", 400, "expected a boolean", "stream");
    expect_bad("{" USER ",\"stream_options\":{\"include_usage\":true}}", 400, "only allowed when 'stream'",
               "stream_options");
    expect_bad("{" USER ",\"stream\":true,\"stream_options\":{\"bogus\":1}}", 400, "bogus", "stream_options");
    expect_bad("{" USER ",\"logprobs\":true}", 400, "not supported", "logprobs");
    expect_bad("{" USER ",\"top_logprobs\":2}", 400, "not supported", "top_logprobs");
    expect_bad("{" USER ",\"frequency_penalty\":0.5}", 400, "not supported", "frequency_penalty");
    expect_bad("{" USER ",\"presence_penalty\":-1}", 400, "not supported", "presence_penalty");
    expect_bad("{" USER ",\"logit_bias\":{\"5\":3}}", 400, "not supported", "logit_bias");
    expect_bad("{" USER ",\"tools\":[{\"type\":\"function\"}]}", 400, "no tool calling", "tools");
    expect_bad("{" USER ",\"tool_choice\":\"required\"}", 400, "not supported", "tool_choice");
    expect_bad("{" USER ",\"response_format\":{\"type\":\"json_object\"}}", 400, "not supported", "response_format");
    expect_bad("{" USER ",\"modalities\":[\"audio\"]}", 400, "not supported", "modalities");
    expect_bad("{" USER ",\"user\":5}", 400, "expected a string", "user");
}

static void test_request_shape_errors(void) {
    expect_bad("", 400, "empty", NULL);
    expect_bad("{\"messages\":[", 400, "not valid JSON", NULL);
    expect_bad("[1,2]", 400, "must be a JSON object, not an array", NULL);
    expect_bad("{}", 400, "Missing required parameter: 'messages'", "messages");
    expect_bad("{\"messages\":null}", 400, "Missing required parameter", "messages");
    expect_bad("{\"messages\":[]}", 400, "empty", "messages");
    expect_bad("{\"messages\":{}}", 400, "expected an array", "messages");
    expect_bad("{" USER ",\"foo\":1}", 400, "Unrecognized request argument supplied: foo", "foo");
    expect_bad("{" USER ",\"max_tokens\":1,\"max_tokens\":2}", 400, "given twice", "max_tokens");
    /* a \u0000 escape would cut the text at the NUL; an escaped backslash before "u0000" is plain text */
    expect_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", 400, "\\u0000", NULL);
    vlm_oai_chat c;
    PARSE_OK("{\"messages\":[{\"role\":\"user\",\"content\":\"a\\\\u0000b\"}]}", &c);
    CHECK(c.req.messages && !strcmp(c.req.messages[0].text, "a\\u0000b"));
    vlm_oai_chat_free(&c);
    /* model names */
    expect_bad("{" USER ",\"model\":\"gpt-4o\"}", 404, "'gpt-4o' does not exist", "model");
    expect_bad("{" USER ",\"model\":7}", 400, "expected a string", "model");
    vlm_oai_options any = g_opt;
    any.n_models = 0;
    vlm_oai_error e;
    const char *j = "{" USER ",\"model\":\"whatever\"}";
    CHECK(vlm_oai_parse_chat(j, strlen(j), &any, &c, &e) == 0);
    vlm_oai_chat_free(&c);
    /* not NUL-terminated: only len bytes are read */
    const char buf[] = "{" USER "}garbage";
    CHECK(vlm_oai_parse_chat(buf, strlen("{" USER "}"), &g_opt, &c, &e) == 0);
    vlm_oai_chat_free(&c);
}

static void test_messages(void) {
    vlm_oai_chat c;
    PARSE_OK("{\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},{\"role\":\"user\",\"name\":\"x\","
             "\"content\":[{\"type\":\"text\",\"text\":\"look: \"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
             "\"data:image/png;base64," PNG_B64 "\",\"detail\":\"high\"}},{\"type\":\"text\",\"text\":\"?\"}]},"
             "{\"role\":\"assistant\",\"content\":\"a cat\",\"refusal\":null,\"tool_calls\":[]},"
             "{\"role\":\"user\",\"content\":[]}]}",
             &c);
    CHECK(c.req.n_messages == 4);
    const vlm_message *m = c.req.messages;
    CHECK(!strcmp(m[0].role, "system") && !strcmp(m[0].text, "be brief"));
    CHECK(!strcmp(m[1].role, "user") && m[1].n_parts == 3 && m[1].text == NULL);
    CHECK(m[1].parts[0].image == NULL && !strcmp(m[1].parts[0].text, "look: ") && m[1].parts[0].text_len == 6);
    CHECK(m[1].parts[1].image == &c.images[0] && c.n_images == 1);
    CHECK(c.images[0].n_bytes == 8 && !memcmp(c.images[0].bytes, "\x89PNG\r\n\x1a\n", 8) && !c.images[0].path);
    CHECK(!strcmp(m[1].parts[2].text, "?"));
    CHECK(!strcmp(m[2].role, "assistant") && !strcmp(m[2].text, "a cat"));
    CHECK(m[3].n_parts == 0 && m[3].text && !m[3].text[0]);
    vlm_oai_chat_free(&c);
    expect_bad("{\"messages\":[1]}", 400, "expected an object", "messages[0]");
    expect_bad("{\"messages\":[{\"content\":\"x\"}]}", 400, "expected a string", "messages[0].role");
    expect_bad("{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", 400, "Role 'tool' is not supported",
               "messages[0].role");
    expect_bad("{\"messages\":[{\"role\":\"user\"}]}", 400, "a string or an array of content parts",
               "messages[0].content");
    expect_bad("{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[{}]}]}", 400, "tool_calls",
               "messages[0]");
    expect_bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}", 400,
               "'input_audio' is not supported", "messages[0].content[0].type");
    expect_bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", 400, "expected a string",
               "messages[0].content[0].text");
    expect_bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\",\"x\":1}]}]}", 400,
               "Unrecognized field 'x'", "messages[0].content[0]");
    expect_bad("{\"messages\":[{\"role\":\"user\",\"content\":[\"hi\"]}]}", 400, "expected an object",
               "messages[0].content[0]");
}

#define IMG(url, extra)                                                                                                \
    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":" url extra "}]}]}"

static void test_images(void) {
    vlm_oai_chat c;
    /* a plain string as image_url; pixel limits in the part and inside image_url; at the top level */
    PARSE_OK("{\"min_pixels\":3136,\"max_pixels\":100352,\"messages\":[{\"role\":\"user\",\"content\":["
             "{\"type\":\"image_url\",\"image_url\":\"DATA:image/jpeg;BASE64," PNG_B64 "\",\"max_pixels\":50176},"
             "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64," PNG_B64 "\",\"min_pixels\":784}}"
             "]}]}",
             &c);
    CHECK(c.n_images == 2 && c.req.min_pixels == 3136 && c.req.max_pixels == 100352);
    CHECK(c.images[0].max_pixels == 50176 && c.images[0].min_pixels == 0);
    CHECK(c.images[1].min_pixels == 784 && c.images[1].max_pixels == 0);
    vlm_oai_chat_free(&c);
    const char *P = "messages[0].content[0].image_url.url";
    expect_bad(IMG("{\"url\":\"https://example.com/cat.png\"}", ""), 400, "not fetched", P);
    expect_bad(IMG("{\"url\":\"ftp://x/cat.png\"}", ""), 400, "unsupported URL", P);
    expect_bad(IMG("{\"url\":\"data:text/plain;base64,aGk=\"}", ""), 400, "is not an image", P);
    expect_bad(IMG("{\"url\":\"data:image/png," PNG_B64 "\"}", ""), 400, "only base64", P);
    expect_bad(IMG("{\"url\":\"data:image/png;base64\"}", ""), 400, "needs a ','", P);
    expect_bad(IMG("{\"url\":\"data:image/png;base64,iVBO*w0K\"}", ""), 400, "'*' at offset 4", P);
    expect_bad(IMG("{\"url\":\"data:image/png;base64,\"}", ""), 400, "holds no data", P);
    expect_bad(IMG("{\"url\":\"file:///etc/passwd\"}", ""), 400, "without --media-dir", P);
    expect_bad(IMG("{\"url\":5}", ""), 400, "expected a string", P);
    expect_bad(IMG("5", ""), 400, "an object with a \"url\"", "messages[0].content[0].image_url");
    expect_bad(IMG("{\"url\":\"data:image/png;base64," PNG_B64 "\",\"detail\":\"max\"}", ""), 400, "detail",
               "messages[0].content[0].image_url");
    expect_bad(IMG("{\"url\":\"data:image/png;base64," PNG_B64 "\",\"bogus\":1}", ""), 400,
               "Unrecognized field 'bogus'", "messages[0].content[0].image_url");
    expect_bad(IMG("{\"url\":\"data:image/png;base64," PNG_B64 "\",\"max_pixels\":9}", ",\"max_pixels\":9"), 400,
               "both in the part and in its image_url", "messages[0].content[0]");
    expect_bad(IMG("{\"url\":\"data:image/png;base64," PNG_B64 "\",\"min_pixels\":900,\"max_pixels\":800}", ""), 400,
               "larger than max_pixels", "messages[0].content[0]");
    expect_bad(IMG("{\"url\":\"data:image/png;base64," PNG_B64 "\",\"max_pixels\":0}", ""), 400, "out of range",
               "messages[0].content[0].max_pixels");
    expect_bad("{" USER ",\"min_pixels\":5000,\"max_pixels\":4000}", 400, "larger than 'max_pixels'", "min_pixels");
}

static void test_file_urls(void) {
    char dir[1024], outside[1024], spaced[1024], link[1024];
    snprintf(dir, sizeof dir, "%s", test_tmp("media"));
    CHECK_OK(vlm_mkdirs(dir));
    char *real = realpath(dir, NULL);
    snprintf(spaced, sizeof spaced, "%s/a cat.png", real);
    snprintf(outside, sizeof outside, "%s", test_tmp("outside.png"));
    snprintf(link, sizeof link, "%s/link.png", real);
    CHECK_OK(vlm_write_file(spaced, "x", 1));
    CHECK_OK(vlm_write_file(outside, "x", 1));
    CHECK(symlink(outside, link) == 0);
    vlm_oai_options o = g_opt;
    o.media_dir = real;
    char json[4096];
    vlm_oai_chat c;
    vlm_oai_error e;
    /* percent-encoded, with and without "localhost" */
    const char *forms[] = {"file://%s/a%%20cat.png", "file://localhost%s/a%%20cat.png",
                           "file://%s/../media/a%%20cat.png"};
    for (int i = 0; i < 3; i++) {
        char url[2048];
        snprintf(url, sizeof url, forms[i], real);
        snprintf(json, sizeof json, IMG("{\"url\":\"%s\"}", ""), url);
        int st = vlm_oai_parse_chat(json, strlen(json), &o, &c, &e);
        CHECK_MSG(st == 0, "%s: %s", url, e.message);
        CHECK(st != 0 || (c.images[0].path && !strcmp(c.images[0].path, spaced) && !c.images[0].bytes));
        vlm_oai_chat_free(&c);
    }
    struct {
        const char *url, *needle;
    } bad[] = {
        {"file://%s/../outside.png", "outside --media-dir"},
        {"file://%s/link.png", "outside --media-dir"}, /* a link inside pointing out */
        {"file://%s/missing.png", "no such file"},
        {"file://%s", "is not a file"},
        {"file://otherhost%s/a.png", "not a usable file:// URL"},
        {"file://%s/a%%00.png", "not a usable file:// URL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char url[2048];
        snprintf(url, sizeof url, bad[i].url, real);
        snprintf(json, sizeof json, IMG("{\"url\":\"%s\"}", ""), url);
        int st = vlm_oai_parse_chat(json, strlen(json), &o, &c, &e);
        CHECK_MSG(st == 400 && strstr(e.message, bad[i].needle), "%s -> %d %s", url, st, e.message);
        vlm_oai_chat_free(&c);
    }
    free(real);
}

/* ---- answers ---------------------------------------------------------------------------------------- */

static vlm_result sample_result(void) {
    static int32_t in[] = {1, 2, 3, 4}, gen[] = {10, 11, 12};
    static double times[] = {0.5, 0.6, 0.7};
    static vlm_image_summary img = {
        .width = 640, .height = 480, .resized_width = 644, .resized_height = 476, .tokens = 391};
    vlm_result r = {.input_ids = in,
                    .n_input = 4,
                    .generated_ids = gen,
                    .n_generated = 3,
                    .text = "a \"cat\"\n\xc3\xa9",
                    .stop = VLM_STOP_MAX_TOKENS,
                    .images = &img,
                    .n_images = 1,
                    .token_times = times};
    r.timings.prompt_tokens = 4;
    r.timings.cached_tokens = 2;
    r.timings.vision_s = 0.25;
    r.timings.queue_s = 0.125;
    return r;
}

static cJSON *parse_json(const char *s, size_t n) {
    cJSON *j = cJSON_ParseWithLength(s, n);
    CHECK_MSG(j != NULL, "not JSON: %.*s", (int)n, s);
    return j;
}

static double num(const cJSON *o, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *k = strtok(buf, "."); k && v; k = strtok(NULL, ".")) {
        if (*k >= '0' && *k <= '9') v = cJSON_GetArrayItem(v, atoi(k));
        else v = cJSON_GetObjectItemCaseSensitive(v, k);
    }
    CHECK_MSG(cJSON_IsNumber(v), "%s is not a number", path);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *text_at(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_completion_json(void) {
    vlm_result r = sample_result();
    vlm_oai_meta m = {.id = "chatcmpl-1", .created = 1700000000, .model = "tiny"};
    vlm_strbuf b = {0};
    vlm_oai_completion(&b, &m, &r, 1);
    cJSON *j = parse_json(b.data, b.len);
    CHECK(!strcmp(text_at(j, "object", NULL), "chat.completion") && !strcmp(text_at(j, "id", NULL), "chatcmpl-1"));
    CHECK(num(j, "created") == 1700000000 && !strcmp(text_at(j, "model", NULL), "tiny"));
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    CHECK(!strcmp(text_at(ch, "message", "content"), "a \"cat\"\n\xc3\xa9"));
    CHECK(!strcmp(text_at(ch, "message", "role"), "assistant") &&
          !strcmp(text_at(ch, "finish_reason", NULL), "length"));
    CHECK(num(j, "usage.prompt_tokens") == 4 && num(j, "usage.completion_tokens") == 3 &&
          num(j, "usage.total_tokens") == 7);
    CHECK(num(j, "usage.prompt_tokens_details.cached_tokens") == 2);
    CHECK(num(j, "choices.0.token_ids.2") == 12 && num(j, "prompt_token_ids.3") == 4);
    CHECK(num(j, "vlm.images.0.resized_width") == 644 && num(j, "vlm.images.0.tokens") == 391);
    CHECK(num(j, "vlm.images.0.width") == 640 && num(j, "vlm.images.0.height") == 480);
    CHECK(num(j, "vlm.timings.vision") == 0.25 && num(j, "vlm.timings.queue") == 0.125);
    cJSON_Delete(j);
    vlm_sb_free(&b);
    /* without ids: no token_ids anywhere */
    r.stop = VLM_STOP_EOS;
    vlm_oai_completion(&b, &m, &r, 0);
    CHECK(!strstr(b.data, "token_ids") && strstr(b.data, "\"finish_reason\":\"stop\""));
    vlm_sb_free(&b);
    CHECK(!strcmp(vlm_oai_finish_reason(VLM_STOP_STRING), "stop"));
    CHECK(!strcmp(vlm_oai_finish_reason(VLM_STOP_CANCELLED), "abort"));
}

/* Splits an SSE stream into its "data: " payloads (comments skipped); returns the count. */
static int sse_events(const char *s, char ev[][4096], int cap) {
    int n = 0;
    while (*s && n < cap) {
        const char *end = strstr(s, "\n\n");
        CHECK_MSG(end != NULL, "an event is not ended by a blank line: %s", s);
        if (!end) break;
        if (!strncmp(s, "data: ", 6)) {
            snprintf(ev[n], 4096, "%.*s", (int)(end - s - 6), s + 6);
            n++;
        } else CHECK_MSG(s[0] == ':', "not an SSE line: %.20s", s);
        s = end + 2;
    }
    return n;
}

static void test_sse_stream(void) {
    vlm_result r = sample_result();
    vlm_sse_chat s = {.meta = {.id = "chatcmpl-2", .created = 1, .model = "tiny"}, .include_usage = 1};
    vlm_strbuf b = {0};
    vlm_sse_chat_begin(&s, &b);
    vlm_sse_chat_text(&s, "a \"ca", 5, &b);
    vlm_sse_keepalive(&b);
    vlm_sse_chat_text(&s, "", 0, &b); /* nothing */
    vlm_sse_chat_text(&s, "t\"\n\xc3\xa9", 5, &b);
    vlm_sse_chat_end(&s, &r, &b);
    static char ev[8][4096];
    int n = sse_events(b.data, ev, 8);
    CHECK(n == 6);
    vlm_strbuf text = {0};
    for (int i = 0; i < n - 1; i++) {
        cJSON *j = parse_json(ev[i], strlen(ev[i]));
        if (!j) continue;
        CHECK(!strcmp(text_at(j, "object", NULL), "chat.completion.chunk") &&
              !strcmp(text_at(j, "id", NULL), "chatcmpl-2"));
        const cJSON *usage = cJSON_GetObjectItem(j, "usage");
        const cJSON *choices = cJSON_GetObjectItem(j, "choices");
        const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
        if (i == 0) CHECK(!strcmp(text_at(c0, "delta", "role"), "assistant"));
        if (i < 3) {
            CHECK(cJSON_IsNull(usage) && cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
            const char *t = text_at(c0, "delta", "content");
            vlm_sb_append(&text, t, strlen(t));
        }
        if (i == 3) {
            CHECK(!strcmp(text_at(c0, "finish_reason", NULL), "length") && cJSON_IsNull(usage));
            CHECK(num(j, "vlm.images.0.resized_height") == 476);
        }
        if (i == 4) CHECK(cJSON_GetArraySize(choices) == 0 && num(j, "usage.completion_tokens") == 3);
        cJSON_Delete(j);
    }
    CHECK(text.data && !strcmp(text.data, r.text));
    CHECK(!strcmp(ev[n - 1], "[DONE]"));
    CHECK(strstr(b.data, ": keep-alive\n\n") != NULL);
    vlm_sb_free(&text);
    vlm_sb_free(&b);
    /* without include_usage: no usage key at all; an error ends the stream too */
    s.include_usage = 0;
    vlm_sse_chat_begin(&s, &b);
    vlm_oai_error e;
    vlm_oai_error_set(&e, 503, "shutting_down", NULL, "bye");
    vlm_sse_chat_error(&s, &e, &b);
    n = sse_events(b.data, ev, 8);
    CHECK(n == 3 && !strstr(b.data, "usage") && !strcmp(ev[2], "[DONE]"));
    cJSON *j = parse_json(ev[1], strlen(ev[1]));
    CHECK(!strcmp(text_at(j, "error", "message"), "bye") && !strcmp(text_at(j, "error", "code"), "shutting_down"));
    cJSON_Delete(j);
    vlm_sb_free(&b);
}

static void test_error_body(void) {
    vlm_oai_error e;
    CHECK(vlm_oai_error_set(&e, 400, NULL, "messages[0].role", "bad \"%s\"", "x") == 400);
    vlm_strbuf b = {0};
    vlm_oai_error_body(&b, &e);
    cJSON *j = parse_json(b.data, b.len);
    const cJSON *err = cJSON_GetObjectItem(j, "error");
    CHECK(!strcmp(text_at(err, "message", NULL), "bad \"x\"") &&
          !strcmp(text_at(err, "type", NULL), "invalid_request_error"));
    CHECK(!strcmp(text_at(err, "param", NULL), "messages[0].role") && cJSON_IsNull(cJSON_GetObjectItem(err, "code")));
    cJSON_Delete(j);
    vlm_sb_free(&b);
    vlm_oai_error_set(&e, 401, "invalid_api_key", NULL, "no");
    vlm_oai_error_body(&b, &e);
    CHECK(strstr(b.data, "\"param\":null") && strstr(b.data, "\"type\":\"authentication_error\""));
    vlm_sb_free(&b);
    CHECK(vlm_oai_error_from_status(&e, VLM_ERR_BUSY, "full") == 429 && !strcmp(e.type, "rate_limit_error"));
    CHECK(vlm_oai_error_from_status(&e, VLM_ERR_INVALID, "bad") == 400);
    CHECK(vlm_oai_error_from_status(&e, VLM_ERR_FORMAT, "bad image") == 400);
    CHECK(vlm_oai_error_from_status(&e, VLM_ERR_RUNTIME, "boom") == 500 && !strcmp(e.type, "server_error"));
}

static void test_result_copy(void) {
    vlm_result r = sample_result(), c;
    CHECK_OK(vlm_oai_result_copy(&r, &c));
    CHECK(c.input_ids != r.input_ids && c.n_input == 4 && c.input_ids[3] == 4 && c.generated_ids[2] == 12);
    CHECK(c.text != r.text && !strcmp(c.text, r.text) && c.images[0].tokens == 391 && c.token_times[2] == 0.7);
    CHECK(c.timings.cached_tokens == 2 && c.stop == VLM_STOP_MAX_TOKENS);
    vlm_oai_result_release(&c);
    CHECK(c.text == NULL && c.n_generated == 0);
    vlm_result empty = {0};
    CHECK_OK(vlm_oai_result_copy(&empty, &c));
    CHECK(c.text && !c.text[0] && !c.images && !c.token_times);
    vlm_oai_result_release(&c);
}

/* The fuzz target's seeds are requests that parse (so the fuzz run mutates valid requests). */
static void test_fuzz_seeds_parse(void) {
    const char *seeds[] = {"text.json", "image_data.json", "accepted_fields.json", "escapes.json"};
    vlm_oai_options any = g_opt;
    any.n_models = 0;
    for (int i = 0; i < 4; i++) {
        char path[1024], *text = NULL;
        size_t n = 0;
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/fuzz_openai_request/%s", VLM_SOURCE_DIR, seeds[i]);
        CHECK_OK(vlm_read_file(path, 1 << 20, &text, &n));
        vlm_oai_chat c;
        vlm_oai_error e;
        CHECK_MSG(text && vlm_oai_parse_chat(text, n, &any, &c, &e) == 0, "%s: %s", seeds[i], e.message);
        vlm_oai_chat_free(&c);
        free(text);
    }
}

int main(void) {
    RUN(test_minimal_request);
    RUN(test_sampling_fields);
    RUN(test_stop_strings);
    RUN(test_sampling_errors);
    RUN(test_request_shape_errors);
    RUN(test_messages);
    RUN(test_images);
    RUN(test_file_urls);
    RUN(test_completion_json);
    RUN(test_sse_stream);
    RUN(test_error_body);
    RUN(test_result_copy);
    RUN(test_fuzz_seeds_parse);
    return test_summary();
}
