/* Chat template: the rendered prompt and input ids of every fixture case that has a prompt, the chat
 * encode cases of fixtures/tokenizer, conversations rendered by Jinja2 from the checkpoints'
 * chat_template, and the errors of the ids builder. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/file.h"
#include "io/json.h"
#include "text/chat.h"
#include "text/chat_template.h"

static vlm_tokenizer *g_tok;

static cJSON *load_json(const char *path) {
    cJSON *j = NULL;
    CHECK_OK(vlm_json_load(path, &j));
    return j;
}

static int ids_equal(const vlm_ids *got, const cJSON *want, size_t offset) {
    int n = cJSON_GetArraySize(want);
    if (got->n != offset + (size_t)n) return 0;
    for (int i = 0; i < n; i++)
        if (got->v[offset + (size_t)i] != cJSON_GetArrayItem(want, i)->valueint) return 0;
    return 1;
}

/* One case directory: request.json (model, prompt, image / images) and expected.json
 * (rendered_prompt, input_ids, image_grid_thw). */
static int check_case(const char *name) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s", test_fixture("cases"));
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", name);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    cJSON *exp = load_json(path);
    const cJSON *rendered = cJSON_GetObjectItemCaseSensitive(exp, "rendered_prompt");
    if (!cJSON_IsString(rendered)) {
        cJSON_Delete(exp);
        return 0;
    }
    snprintf(path, sizeof path, "%s/request.json", dir);
    cJSON *req = load_json(path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    snprintf(path, sizeof path, "%s/%s", dir,
             cJSON_IsString(model) ? model->valuestring : "../../models/tiny-qwen2_5-vl");
    vlm_tokenizer *t = NULL;
    CHECK_OK(vlm_tok_load_dir(path, &t));

    const cJSON *grids = cJSON_GetObjectItemCaseSensitive(exp, "image_grid_thw"), *g;
    int counts[16], n_images = 0, total = 0;
    cJSON_ArrayForEach(g, grids) {
        CHECK_OK(vlm_chat_vision_tokens(cJSON_GetArrayItem(g, 0)->valueint, cJSON_GetArrayItem(g, 1)->valueint,
                                        cJSON_GetArrayItem(g, 2)->valueint, 2, &counts[n_images]));
        total += counts[n_images++];
    }
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(req, "image"),
                *many = cJSON_GetObjectItemCaseSensitive(req, "images");
    CHECK_MSG(n_images ==
                  (cJSON_IsString(one)       ? 1
                       : cJSON_IsArray(many) ? cJSON_GetArraySize(many)
                                             : 0),
              "%s images", name);
    const cJSON *nit = cJSON_GetObjectItemCaseSensitive(exp, "num_image_tokens");
    if (nit) CHECK_MSG(total == nit->valueint, "%s: %d image tokens", name, total);

    vlm_ids ids = {0};
    vlm_strbuf text = {0};
    if (t)
        CHECK_OK(
            vlm_chat_build_prompt(t, prompt->valuestring, strlen(prompt->valuestring), counts, n_images, &ids, &text));
    CHECK_MSG(text.data && !strcmp(text.data, rendered->valuestring), "%s: rendered \"%s\"", name,
              text.data ? text.data : "");
    CHECK_MSG(ids_equal(&ids, cJSON_GetObjectItemCaseSensitive(exp, "input_ids"), 0), "%s: input ids (%zu)", name,
              ids.n);
    const cJSON *nids = cJSON_GetObjectItemCaseSensitive(exp, "num_input_ids");
    CHECK(nids && ids.n == (size_t)nids->valueint);
    vlm_ids_free(&ids);
    vlm_sb_free(&text);
    vlm_tok_free(t);
    cJSON_Delete(req);
    cJSON_Delete(exp);
    return 1;
}

static void test_fixture_cases(void) {
    DIR *d = opendir(test_fixture("cases"));
    CHECK(d != NULL);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        n += check_case(e->d_name);
    }
    if (d) closedir(d);
    fprintf(stderr, "  %d cases with a prompt\n", n);
    CHECK(n >= 11); /* q25_* (7, with q25_two_images and q25_text_only), q2vl_* (3), q2vlc_photo */
}

/* ---- the chat cases of fixtures/tokenizer/cases.jsonl ---- */

static const cJSON *find_case(cJSON **lines, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(lines[i], "name");
        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name)) return lines[i];
    }
    return NULL;
}

#define TEXT(s)                                                                                                        \
    { VLM_CHAT_TEXT, s, sizeof(s) - 1 }
#define IMAGE                                                                                                          \
    { VLM_CHAT_IMAGE, NULL, 0 }
#define VIDEO                                                                                                          \
    { VLM_CHAT_VIDEO, NULL, 0 }

/* Renders and builds msgs; the text must be the case's text and the ids the case's ids (after
 * `skip` leading ids: the default system prompt when the case is a fragment without it). */
static void check_chat_case(cJSON **lines, int n_lines, const char *name, const vlm_chat_message *msgs, int n,
                            vlm_chat_options opt, const int *counts, int n_counts, int fragment) {
    const cJSON *c = find_case(lines, n_lines, name);
    CHECK_MSG(c != NULL, "case %s", name);
    if (!c) return;
    const char *want = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
    vlm_strbuf text = {0};
    vlm_ids ids = {0};
    CHECK_OK(vlm_chat_build(g_tok, msgs, n, &opt, counts, n_counts, &ids, &text));
    static const char sys[] = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    size_t skip_text = fragment ? sizeof sys - 1 : 0, skip_ids = fragment ? 11 : 0; /* the system prompt is 11 ids */
    if (!fragment)                                                                  /* text with one pad per image */
        CHECK_MSG(text.data && !strcmp(text.data, want), "%s: rendered \"%s\"", name, text.data ? text.data : "");
    else CHECK_MSG(text.len >= skip_text && !memcmp(text.data, sys, skip_text), "%s: system prompt", name);
    CHECK_MSG(ids_equal(&ids, cJSON_GetObjectItemCaseSensitive(c, "ids"), skip_ids), "%s: ids", name);
    vlm_ids_free(&ids);
    vlm_sb_free(&text);
}

static void test_chat_encode_cases(void) {
    char *data;
    size_t len;
    CHECK_OK(vlm_read_file(test_fixture("tokenizer/cases.jsonl"), 0, &data, &len));
    cJSON *lines[512];
    int n = 0;
    for (char *l = data; l && *l && n < 512;) {
        char *nl = strchr(l, '\n');
        if (vlm_json_parse(l, nl ? (size_t)(nl - l) : strlen(l), "cases.jsonl", &lines[n]) == VLM_OK) n++;
        l = nl ? nl + 1 : NULL;
    }
    vlm_chat_options gen = {1, 0};
    const vlm_chat_part p1[] = {IMAGE, TEXT("Describe this image.")};
    check_chat_case(lines, n, "chat_image_prompt", &(vlm_chat_message){"user", p1, 2}, 1, gen, (int[]){1}, 1, 0);
    const vlm_chat_part p2[] = {TEXT("What is 2+2?")};
    check_chat_case(lines, n, "chat_text_only", &(vlm_chat_message){"user", p2, 1}, 1, gen, NULL, 0, 0);
    const vlm_chat_part hi[] = {TEXT("Hi!")}, hello[] = {TEXT("Hello! How can I help?")},
                        cmp[] = {IMAGE, IMAGE, TEXT("Compare these two images.")};
    const vlm_chat_message multi[] = {{"user", hi, 1}, {"assistant", hello, 1}, {"user", cmp, 3}};
    check_chat_case(lines, n, "chat_multi_turn", multi, 3, gen, (int[]){1, 1}, 2, 0);
    const vlm_chat_part p4[] = {VIDEO, TEXT("What happens in this video?")};
    check_chat_case(lines, n, "chat_video_prompt", &(vlm_chat_message){"user", p4, 2}, 1, gen, (int[]){1}, 1, 0);
    /* fragments without the system prompt: compare after it */
    vlm_chat_options nogen = {0, 0}, vid = {0, 1};
    const vlm_chat_part p5[] = {IMAGE, TEXT("OCR this.")};
    check_chat_case(lines, n, "chat_image_pad_expanded", &(vlm_chat_message){"user", p5, 2}, 1, nogen, (int[]){16}, 1,
                    1);
    const vlm_chat_part p6[] = {IMAGE, IMAGE, TEXT("Which is larger?")};
    check_chat_case(lines, n, "chat_add_vision_id", &(vlm_chat_message){"user", p6, 3}, 1, vid, (int[]){1, 1}, 2, 1);
    for (int i = 0; i < n; i++) cJSON_Delete(lines[i]);
    free(data);
}

/* ---- conversations rendered by Jinja2 3.1.6 (trim_blocks, lstrip_blocks) from chat_template ---- */

static void check_render(const char *what, const vlm_chat_message *m, int n, vlm_chat_options opt, const char *want) {
    vlm_strbuf b = {0};
    CHECK_OK(vlm_chat_render(m, n, &opt, &b));
    CHECK_MSG(b.data && !strcmp(b.data, want), "%s: \"%s\"", what, b.data ? b.data : "");
    vlm_sb_free(&b);
}

static void test_jinja_renderings(void) {
    const vlm_chat_part pirate[] = {TEXT("You are a pirate.")}, arr[] = {IMAGE, TEXT("Arr?")};
    check_render(
        "system_given", (vlm_chat_message[]){{"system", pirate, 1}, {"user", arr, 2}}, 2, (vlm_chat_options){1, 0},
        "<|im_start|>system\nYou are a pirate.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        "Arr?<|im_end|>\n<|im_start|>assistant\n");
    const vlm_chat_part vis[] = {IMAGE, IMAGE, VIDEO, TEXT("Which is larger?")};
    check_render(
        "vision_id", (vlm_chat_message[]){{"user", vis, 4}}, 1, (vlm_chat_options){1, 1},
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nPicture 1: <|vision_start|>"
        "<|image_pad|><|vision_end|>Picture 2: <|vision_start|><|image_pad|><|vision_end|>Video 1: <|vision_start|>"
        "<|video_pad|><|vision_end|>Which is larger?<|im_end|>\n<|im_start|>assistant\n");
    const vlm_chat_part h[] = {TEXT("Hi")}, hello[] = {TEXT("Hello.")};
    check_render("no_gen_prompt", (vlm_chat_message[]){{"user", h, 1}, {"assistant", hello, 1}}, 2,
                 (vlm_chat_options){0, 0},
                 "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                 "<|im_start|>assistant\nHello.<|im_end|>\n");
    const vlm_chat_part mix[] = {TEXT("A:"), IMAGE, TEXT(" B:"), IMAGE};
    check_render(
        "text_between_images", (vlm_chat_message[]){{"user", mix, 4}}, 1, (vlm_chat_options){1, 0},
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nA:<|vision_start|><|image_pad|>"
        "<|vision_end|> B:<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n");
    const vlm_chat_part x[] = {TEXT("x")}, y[] = {TEXT("y")};
    check_render("late_system", (vlm_chat_message[]){{"user", x, 1}, {"system", y, 1}}, 2, (vlm_chat_options){1, 0},
                 "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
                 "<|im_start|>system\ny<|im_end|>\n<|im_start|>assistant\n");
}

/* ---- ids: expansion and errors ---- */

static void test_build_ids(void) {
    const vlm_tok_specials *sp = vlm_tok_specials_of(g_tok);
    const vlm_chat_part mix[] = {TEXT("A:"), IMAGE, TEXT(" B:"), VIDEO, IMAGE};
    vlm_chat_message m = {"user", mix, 5};
    vlm_ids ids = {0};
    CHECK_OK(vlm_chat_build(g_tok, &m, 1, NULL, (int[]){3, 5, 2}, 3, &ids, NULL));
    int img = 0, vid = 0, starts = 0;
    for (size_t i = 0; i < ids.n; i++) {
        img += ids.v[i] == sp->image_pad;
        vid += ids.v[i] == sp->video_pad;
        starts += ids.v[i] == sp->vision_start;
    }
    CHECK(img == 5 && vid == 5 && starts == 3);
    /* the first image's 3 pads come before the video's 5 */
    size_t first = 0;
    while (first < ids.n && ids.v[first] != sp->image_pad) first++;
    CHECK(first + 4 < ids.n && ids.v[first + 2] == sp->image_pad && ids.v[first + 3] == sp->vision_end &&
          ids.v[first + 4] != sp->image_pad);
    size_t before = ids.n;
    /* errors leave ids and text as they were */
    vlm_strbuf text = {0};
    vlm_sb_append(&text, "keep", 4);
    CHECK_ERR(vlm_chat_build(g_tok, &m, 1, NULL, (int[]){3, 5}, 2, &ids, &text), VLM_ERR_INVALID,
              "2 token counts given for 3");
    CHECK_ERR(vlm_chat_build(g_tok, &m, 1, NULL, (int[]){3, 0, 2}, 3, &ids, &text), VLM_ERR_INVALID,
              "token count of 0");
    const vlm_chat_part spelled[] = {TEXT("look: <|image_pad|>")};
    CHECK_ERR(vlm_chat_build(g_tok, &(vlm_chat_message){"user", spelled, 1}, 1, NULL, NULL, 0, &ids, &text),
              VLM_ERR_INVALID, "spell one out");
    CHECK(ids.n == before && text.len == 4 && !strcmp(text.data, "keep"));
    CHECK_ERR(vlm_chat_build(g_tok, NULL, 0, NULL, NULL, 0, &ids, NULL), VLM_ERR_INVALID, "no messages");
    CHECK_ERR(vlm_chat_render(&(vlm_chat_message){"us\ner", mix, 1}, 1, NULL, &text), VLM_ERR_INVALID, "line break");
    CHECK_ERR(vlm_chat_render(&(vlm_chat_message){NULL, mix, 1}, 1, NULL, &text), VLM_ERR_INVALID, "no role");
    vlm_sb_free(&text);
    vlm_ids_free(&ids);

    int tokens = 0;
    CHECK_OK(vlm_chat_vision_tokens(1, 10, 10, 2, &tokens));
    CHECK(tokens == 25);
    CHECK_OK(vlm_chat_vision_tokens(2, 78, 138, 2, &tokens));
    CHECK(tokens == 5382);
    CHECK_ERR(vlm_chat_vision_tokens(1, 5, 5, 2, &tokens), VLM_ERR_INVALID, "not a whole number");
    CHECK_ERR(vlm_chat_vision_tokens(0, 4, 4, 2, &tokens), VLM_ERR_INVALID, "grid");
    /* NUL bytes in a text part are kept */
    const vlm_chat_part nul[] = {{VLM_CHAT_TEXT, "a\0b", 3}};
    vlm_strbuf b = {0};
    CHECK_OK(vlm_chat_render(&(vlm_chat_message){"user", nul, 1}, 1, NULL, &b));
    CHECK(b.len > 3 && memmem(b.data, b.len, "a\0b", 3) != NULL);
    vlm_sb_free(&b);
}

/* The template of every fixture checkpoint and of the assets is known; the same template laid out
 * with whitespace control, comments and other quotes is the same template; a changed system prompt
 * or turn format is not. */
static const char *known_text(void) {
    static char *t;
    if (t) return t;
    cJSON *j = NULL;
    CHECK_OK(vlm_json_load(VLM_SOURCE_DIR "/assets/tokenizer/chat_template.json", &j));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    t = strdup(cJSON_IsString(v) ? v->valuestring : "");
    cJSON_Delete(j);
    return t;
}

static char *replace(const char *s, const char *from, const char *to) {
    const char *at = strstr(s, from);
    if (!at) return strdup(s);
    size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    return out;
}

static void test_template_recognition(void) {
    const char *t = known_text();
    CHECK(vlm_chat_template_known(t, strlen(t)) != NULL);
    const char *models[] = {"models/tiny-qwen2-vl", "models/tiny-qwen2-vl-c", "models/tiny-qwen2_5-vl"};
    for (int i = 0; i < 3; i++) {
        vlm_strbuf b = {0};
        char where[64];
        CHECK_OK(vlm_chat_template_read(test_fixture(models[i]), &b, where, sizeof where));
        CHECK(!strcmp(where, "chat_template.json"));
        CHECK_MSG(vlm_chat_template_known(b.data, b.len) != NULL, "%s", models[i]);
        CHECK(vlm_chat_template_check(test_fixture(models[i])) == VLM_CHAT_TEMPLATE_KNOWN);
        vlm_sb_free(&b);
    }
    /* laid out: {%- -%} trimming, trim_blocks / lstrip_blocks, a comment, double quotes, spaces in tags */
    char *a = replace(t, "{% for message in messages %}", "{#- the turns -#}\n{%- for message in messages -%}\n    ");
    char *b = replace(a, "message['role'] != 'system' %}", "message[\"role\"]!=\"system\"   %}");
    char *c =
        replace(b, "{% endfor %}{% if add_generation_prompt %}", "{% endfor %}\n    {% if add_generation_prompt %}");
    CHECK(vlm_chat_template_known(c, strlen(c)) != NULL);
    free(a), free(b), free(c);
    /* the same text without trimming renders different whitespace: not the same template */
    a = replace(t, "{% endif %}<|im_start|>{{ message['role'] }}", "{% endif %}\n <|im_start|>{{ message['role'] }}");
    CHECK(vlm_chat_template_known(a, strlen(a)) == NULL);
    free(a);
    a = replace(t, "You are a helpful assistant.", "You are a pirate.");
    CHECK(vlm_chat_template_known(a, strlen(a)) == NULL);
    /* a checkpoint with its own template: unknown (a warning, once); one without any: none */
    const char *dir = test_tmp("custom");
    CHECK_OK(vlm_mkdirs(dir));
    vlm_strbuf js = {0};
    vlm_sb_printf(&js, "{\"chat_template\": ");
    vlm_sb_json_string(&js, a, strlen(a));
    vlm_sb_printf(&js, "}");
    CHECK_OK(vlm_write_file(test_tmp("custom/tokenizer_config.json"), js.data, js.len));
    CHECK(vlm_chat_template_check(dir) == VLM_CHAT_TEMPLATE_UNKNOWN);
    CHECK(vlm_chat_template_check(dir) == VLM_CHAT_TEMPLATE_UNKNOWN);
    /* chat_template.jinja comes first, as in transformers */
    CHECK_OK(vlm_write_file(test_tmp("custom/chat_template.jinja"), t, strlen(t)));
    CHECK(vlm_chat_template_check(dir) == VLM_CHAT_TEMPLATE_KNOWN);
    /* a list of named templates: the "default" one */
    const char *list_dir = test_tmp("listed");
    CHECK_OK(vlm_mkdirs(list_dir));
    vlm_sb_free(&js);
    vlm_sb_printf(&js,
                  "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}, {\"name\": \"default\", "
                  "\"template\": ");
    vlm_sb_json_string(&js, t, strlen(t));
    vlm_sb_printf(&js, "}]}");
    CHECK_OK(vlm_write_file(test_tmp("listed/tokenizer_config.json"), js.data, js.len));
    CHECK(vlm_chat_template_check(list_dir) == VLM_CHAT_TEMPLATE_KNOWN);
    CHECK(vlm_chat_template_check(test_tmpdir()) == VLM_CHAT_TEMPLATE_NONE);
    vlm_sb_free(&js);
    free(a);
}

int main(void) {
    CHECK_OK(vlm_tok_load(test_fixture("tokenizer/qwen2_5_vl/tokenizer.json"), &g_tok));
    if (!g_tok) return 1;
    RUN(test_fixture_cases);
    RUN(test_chat_encode_cases);
    RUN(test_jinja_renderings);
    RUN(test_build_ids);
    RUN(test_template_recognition);
    vlm_tok_free(g_tok);
    return test_summary();
}
