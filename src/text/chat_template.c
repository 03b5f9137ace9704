#include "text/chat_template.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "io/file.h"

/* The templates chat.c renders. The first is the one Qwen2-VL and Qwen2.5-VL Instruct checkpoints
 * publish (chat_template.json; tokenizer_config.json carries the same); the second is the same
 * without the add_vision_id option (earlier Qwen2-VL files), which renders what the first renders
 * with add_vision_id unset — vlm's default. */
static const struct {
    const char *name, *text;
} k_known[] = {
    {"Qwen2-VL / Qwen2.5-VL",
     "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages "
     "%}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
     "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ "
     "message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == "
     "'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 "
     "%}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif "
     "%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set "
     "video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif "
     "%}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% "
     "endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"},
    {"Qwen2-VL (without vision ids)",
     "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a "
     "helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string "
     "%}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == "
     "'image' or 'image' in content or 'image_url' in content %}<|vision_start|><|image_pad|><|vision_end|>{% elif "
     "content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in "
     "content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if "
     "add_generation_prompt %}<|im_start|>assistant\n{% endif %}"},
};

const char vlm_chat_template_native_summary[] =
    "vlm renders the Qwen2-VL / Qwen2.5-VL template instead: \"<|im_start|>system\\nYou are a helpful "
    "assistant.<|im_end|>\\n\" when the conversation has no system message, \"<|im_start|>ROLE\\nCONTENT"
    "<|im_end|>\\n\" per message with each image as \"<|vision_start|><|image_pad|><|vision_end|>\" in place, and "
    "\"<|im_start|>assistant\\n\" to start the answer";

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* ---- normalising ---- */

typedef struct {
    vlm_strbuf *out;
    size_t lit_start; /* where the current literal text begins in out */
    int line_start;   /* the current literal begins at the start of a line */
} norm;

/* lstrip_blocks: spaces and tabs between the start of a line and a block tag are dropped. */
static void lstrip_line(norm *n) {
    vlm_strbuf *o = n->out;
    size_t p = o->len;
    while (p > n->lit_start && (o->data[p - 1] == ' ' || o->data[p - 1] == '\t')) p--;
    if ((p > n->lit_start && o->data[p - 1] == '\n') || (p == n->lit_start && n->line_start)) o->len = p;
}

/* "{%-": all whitespace before the tag is dropped. */
static void strip_left(norm *n) {
    vlm_strbuf *o = n->out;
    while (o->len > n->lit_start && is_ws(o->data[o->len - 1])) o->len--;
}

/* The body of a tag from s[i] up to its closing delimiter, whitespace dropped outside string
 * literals, literals in double quotes. Returns the index after the closing delimiter, or len when
 * the tag does not end (the rest is then the tag's body). *minus is set for a "-" before the
 * delimiter. */
static size_t tag_body(const char *s, size_t i, size_t len, char kind, vlm_strbuf *o, int *minus) {
    const char close = kind == '{' ? '}' : kind;
    *minus = 0;
    while (i < len) {
        char c = s[i];
        if (kind == '#') { /* a comment: nothing kept */
            if (c == '#' && i + 1 < len && s[i + 1] == '}') return i + 2;
            i++;
            continue;
        }
        if (c == '-' && i + 2 < len && s[i + 1] == close && s[i + 2] == '}') {
            *minus = 1;
            return i + 3;
        }
        if (c == close && i + 1 < len && s[i + 1] == '}') return i + 2;
        if (c == '\'' || c == '"') {
            size_t j = i + 1;
            int plain = 1; /* no quote or escape inside: the quote style carries no meaning */
            while (j < len && s[j] != c) {
                if (s[j] == '\\' || s[j] == '"' || s[j] == '\'') plain = 0;
                j += s[j] == '\\' && j + 1 < len ? 2 : 1;
            }
            char q = plain ? '"' : c;
            vlm_sb_append(o, &q, 1);
            vlm_sb_append(o, s + i + 1, (j < len ? j : len) - (i + 1));
            if (j < len) vlm_sb_append(o, &q, 1);
            i = j < len ? j + 1 : len;
            continue;
        }
        if (!is_ws(c)) vlm_sb_append(o, &c, 1);
        i++;
    }
    return len;
}

vlm_status vlm_chat_template_normalize(const char *s, size_t len, vlm_strbuf *out) {
    norm n = {.out = out, .lit_start = out->len, .line_start = 1};
    size_t i = 0;
    while (i < len) {
        char kind = i + 1 < len && s[i] == '{' ? s[i + 1] : 0;
        if (kind != '{' && kind != '%' && kind != '#') {
            vlm_sb_append(out, s + i, 1);
            i++;
            continue;
        }
        size_t j = i + 2;
        char mod = j < len && (s[j] == '-' || s[j] == '+') ? s[j] : 0;
        if (mod) j++;
        if (mod == '-') strip_left(&n);
        else if (kind != '{' && mod != '+') lstrip_line(&n);
        if (kind != '#') {
            char open[2] = {'{', kind};
            vlm_sb_append(out, open, 2);
        }
        int minus;
        j = tag_body(s, j, len, kind, out, &minus);
        if (kind != '#') {
            char close[2] = {kind == '{' ? '}' : '%', '}'};
            vlm_sb_append(out, close, 2);
        }
        n.lit_start = out->len;
        n.line_start = 0;
        if (minus) { /* "-%}": all whitespace after the tag is dropped */
            while (j < len && is_ws(s[j])) n.line_start = s[j++] == '\n';
        } else if (kind != '{' && j < len && s[j] == '\n') { /* trim_blocks: one newline after a block */
            j++;
            n.line_start = 1;
        }
        i = j;
    }
    if (out->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory normalising a chat template");
    return VLM_OK;
}

enum { N_KNOWN = sizeof k_known / sizeof k_known[0] };
static vlm_strbuf g_known[N_KNOWN]; /* their normalised texts, made once */

static void init_known(void) {
    for (int k = 0; k < N_KNOWN; k++)
        vlm_chat_template_normalize(k_known[k].text, strlen(k_known[k].text), &g_known[k]);
}

const char *vlm_chat_template_known(const char *tmpl, size_t len) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_known);
    vlm_strbuf t = {0};
    const char *name = NULL;
    if (vlm_chat_template_normalize(tmpl, len, &t) == VLM_OK)
        for (int k = 0; k < N_KNOWN && !name; k++)
            if (!g_known[k].failed && g_known[k].len == t.len && t.data && !memcmp(g_known[k].data, t.data, t.len))
                name = k_known[k].name;
    vlm_sb_free(&t);
    return name;
}

/* ---- reading a checkpoint's template ---- */

/* A JSON file's "chat_template": a string, or a list of {"name", "template"} of which the one named
 * "default" is what apply_chat_template uses. VLM_ERR_NOT_FOUND when the key is absent. */
static vlm_status template_from_json(const char *path, vlm_strbuf *tmpl) {
    cJSON *root;
    VLM_TRY(vlm_json_load(path, &root));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    const char *text = NULL;
    if (cJSON_IsString(t)) {
        text = t->valuestring;
    } else if (cJSON_IsArray(t)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *body = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default") && cJSON_IsString(body))
                text = body->valuestring;
        }
    }
    vlm_status s = VLM_OK;
    if (text) vlm_sb_append(tmpl, text, strlen(text));
    else if (!t || cJSON_IsNull(t)) s = VLM_ERR_NOT_FOUND;
    else
        s = vlm_err(VLM_ERR_FORMAT, "%s: \"chat_template\" is neither a string nor a list with a \"default\" entry",
                    path);
    cJSON_Delete(root);
    if (s == VLM_OK && tmpl->failed) s = vlm_err(VLM_ERR_NOMEM, "out of memory reading the chat template of %s", path);
    return s;
}

vlm_status vlm_chat_template_read(const char *dir, vlm_strbuf *tmpl, char *where, size_t where_cap) {
    static const char *const files[] = {"chat_template.jinja", "chat_template.json", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        char path[VLM_PATH_MAX];
        VLM_TRY(vlm_path_join(path, sizeof path, dir, files[i]));
        if (!vlm_path_exists(path)) continue;
        snprintf(where, where_cap, "%s", files[i]);
        if (i == 0) {
            char *text;
            size_t n;
            VLM_TRY(vlm_read_file(path, (size_t)16 << 20, &text, &n));
            vlm_sb_append(tmpl, text, n);
            free(text);
            if (tmpl->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory reading %s", path);
            return VLM_OK;
        }
        vlm_status s = template_from_json(path, tmpl);
        if (s != VLM_ERR_NOT_FOUND) return s;
    }
    snprintf(where, where_cap, "%s", "");
    return VLM_ERR_NOT_FOUND;
}

/* Once per directory and process: a server or a benchmark loads the same checkpoint many times. */
static int first_time_for(const char *dir) {
    enum { REMEMBERED = 32 };
    static char seen[REMEMBERED][PATH_MAX];
    static int n_seen;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    char key[PATH_MAX];
    if (!realpath(dir, key)) snprintf(key, sizeof key, "%s", dir);
    pthread_mutex_lock(&lock);
    int first = 1;
    for (int i = 0; i < n_seen && first; i++) first = strcmp(seen[i], key) != 0;
    if (first && n_seen < REMEMBERED) snprintf(seen[n_seen++], PATH_MAX, "%s", key);
    pthread_mutex_unlock(&lock);
    return first;
}

vlm_chat_template_kind vlm_chat_template_check(const char *dir) {
    vlm_strbuf t = {0};
    char where[64];
    vlm_status s = vlm_chat_template_read(dir, &t, where, sizeof where);
    vlm_chat_template_kind kind = VLM_CHAT_TEMPLATE_UNKNOWN;
    const char *name = NULL;
    if (s == VLM_ERR_NOT_FOUND) kind = VLM_CHAT_TEMPLATE_NONE;
    else if (s == VLM_OK && (name = vlm_chat_template_known(t.data ? t.data : "", t.len)) != NULL)
        kind = VLM_CHAT_TEMPLATE_KNOWN;
    if (kind == VLM_CHAT_TEMPLATE_UNKNOWN && first_time_for(dir)) {
        if (s != VLM_OK)
            VLM_LOG_W("%s: cannot read the checkpoint's chat template (%s); %s", dir, vlm_last_error(),
                      vlm_chat_template_native_summary);
        else
            VLM_LOG_W("%s: the chat template in %s is not one vlm knows, and vlm has no Jinja engine to run it; %s",
                      dir, where, vlm_chat_template_native_summary);
    } else if (kind == VLM_CHAT_TEMPLATE_KNOWN) {
        VLM_LOG_D("%s: chat template in %s: %s", dir, where, name);
    }
    vlm_sb_free(&t);
    return kind;
}
