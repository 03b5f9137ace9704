/* vlm tokenize: text -> ids with a checkpoint's tokenizer.json, or ids -> text with --decode.
 *   vlm tokenize --model-id M (--text STR | --file F) [--json] [--chat [--image-tokens N...]]
 *   vlm tokenize --model-id M --decode "9707 1879" [--skip-special] [--json]
 *   vlm tokenize --model-id M --decode (--text IDS | --file F) ...
 * Text from --file is used byte for byte. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/memory.h"
#include "commands.h"
#include "io/file.h"
#include "io/hf_cache.h"
#include "io/json.h"
#include "text/chat.h"
#include "text/tokenizer.h"

static const char k_synopsis[] =
    "--model-id ID (--text STR | --file F) [--json] [--chat [--image-tokens N...]]\n"
    "       vlm tokenize --model-id ID --decode [IDS] [--text IDS | --file F] [--skip-special] [--json]";

/* A tokenizer.json file, a directory holding one (a checkpoint or not), or a Hugging Face id. */
static vlm_status open_tokenizer(const char *model_id, vlm_tokenizer **t) {
    char dir[VLM_PATH_MAX];
    if (vlm_is_file(model_id)) return vlm_tok_load(model_id, t);
    if (vlm_is_dir(model_id) && vlm_path_join(dir, sizeof dir, model_id, "tokenizer.json") == VLM_OK &&
        vlm_is_file(dir))
        return vlm_tok_load(dir, t);
    VLM_TRY(vlm_resolve_model(model_id, dir, sizeof dir));
    return vlm_tok_load_dir(dir, t);
}

/* Ids separated by white space, commas or brackets ("9707 1879", "[9707, 1879]"). */
static int parse_ids(const char *s, size_t n, vlm_ids *ids) {
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '[' || c == ']') {
            i++;
            continue;
        }
        if (c < '0' || c > '9') return vlm_usage_error("tokenize", "--decode: '%c' is not part of a token id list", c);
        long long v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i++] - '0');
            if (v > INT32_MAX) return vlm_usage_error("tokenize", "--decode: token id out of range");
        }
        if (vlm_ids_push(ids, (int32_t)v) != VLM_OK) return vlm_cli_fail(VLM_ERR_NOMEM);
    }
    return 0;
}

static int print_ids(const vlm_ids *ids, int json, const vlm_strbuf *prompt) {
    vlm_strbuf b = {0};
    if (json) vlm_sb_append(&b, "{\"ids\": [", 9);
    for (size_t i = 0; i < ids->n; i++) vlm_sb_printf(&b, "%s%d", i ? (json ? ", " : " ") : "", ids->v[i]);
    if (json) {
        vlm_sb_append(&b, "]", 1);
        if (prompt) {
            vlm_sb_append(&b, ", \"prompt\": ", 12);
            vlm_sb_json_string(&b, prompt->data, prompt->len);
        }
        vlm_sb_append(&b, "}", 1);
    }
    vlm_sb_append(&b, "\n", 1);
    int ok = !b.failed && fwrite(b.data, 1, b.len, stdout) == b.len;
    vlm_sb_free(&b);
    return ok ? 0 : vlm_cli_fail(vlm_err(VLM_ERR_IO, "writing to stdout failed"));
}

static int print_text(const vlm_strbuf *text, int json) {
    vlm_strbuf b = {0};
    if (json) {
        vlm_sb_append(&b, "{\"text\": ", 9);
        vlm_sb_json_string(&b, text->data ? text->data : "", text->len);
        vlm_sb_append(&b, "}", 1);
    } else vlm_sb_append(&b, text->data ? text->data : "", text->len);
    vlm_sb_append(&b, "\n", 1);
    int ok = !b.failed && fwrite(b.data, 1, b.len, stdout) == b.len;
    vlm_sb_free(&b);
    return ok ? 0 : vlm_cli_fail(vlm_err(VLM_ERR_IO, "writing to stdout failed"));
}

static int parse_counts(const vlm_arg_list *l, int *counts) {
    for (int i = 0; i < l->n; i++) {
        char *end;
        errno = 0;
        long v = strtol(l->v[i], &end, 10);
        if (!*l->v[i] || *end || errno || v < 1 || v > INT32_MAX)
            return vlm_usage_error("tokenize", "--image-tokens expects positive integers, got '%s'", l->v[i]);
        counts[i] = (int)v;
    }
    return 0;
}

/* `--decode IDS` is the flag plus its value; a bare `--decode` takes the ids from --text / --file. */
static int split_decode_value(int argc, char **argv, char **out, const char **ids) {
    int n = 0;
    for (int i = 0; i < argc; i++) {
        out[n++] = argv[i];
        if (!strcmp(argv[i], "--decode") && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) *ids = argv[++i];
    }
    return n;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_id = NULL, *text = NULL, *file = NULL, *decode_ids = NULL;
    int json = 0, decode = 0, skip = 0, chat = 0;
    vlm_arg_list image_tokens = {0};
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &model_id, "ID",
         "checkpoint directory (with tokenizer.json), tokenizer.json, or HF id"},
        {"--text", ARG_STR, &text, "STR", "text to encode (ids with --decode)"},
        {"--file", ARG_STR, &file, "F", "read the text (ids with --decode) from a file, byte for byte"},
        {"--json", ARG_FLAG, &json, NULL, "print {\"ids\": [...]} ({\"text\": ...} with --decode)"},
        {"--decode", ARG_FLAG, &decode, NULL, "decode ids (given after it, or by --text / --file) to text"},
        {"--skip-special", ARG_FLAG, &skip, NULL, "with --decode: drop special tokens"},
        {"--chat", ARG_FLAG, &chat, NULL,
         "encode the text as a user turn of the chat template, with the generation prompt"},
        {"--image-tokens", ARG_LIST, &image_tokens, "N", "with --chat: images before the text, N tokens each"},
        {0},
    };
    char **args = vlm_alloc(((size_t)argc + 1) * sizeof *args, "the arguments");
    if (!args) return vlm_cli_fail(VLM_ERR_NOMEM);
    int n_args = split_decode_value(argc, argv, args, &decode_ids);
    int r = vlm_args_parse("tokenize", k_synopsis, spec, n_args, args);
    vlm_free(args);
    if (r) return r < 0 ? 0 : r;
    if (!model_id) return vlm_usage_error("tokenize", "--model-id is required");
    if (text && file) return vlm_usage_error("tokenize", "give --text or --file, not both");
    if (decode_ids && (text || file)) return vlm_usage_error("tokenize", "--decode IDS takes no --text / --file");
    if (!text && !file && !decode_ids) return vlm_usage_error("tokenize", "--text or --file is required");
    if (decode && chat) return vlm_usage_error("tokenize", "--chat encodes; it cannot be used with --decode");
    if (image_tokens.n && !chat) return vlm_usage_error("tokenize", "--image-tokens needs --chat");
    if (skip && !decode) return vlm_usage_error("tokenize", "--skip-special needs --decode");
    int *counts = vlm_calloc((size_t)image_tokens.n + 1, sizeof *counts, "--image-tokens");
    if (!counts) return vlm_cli_fail(VLM_ERR_NOMEM);
    if (parse_counts(&image_tokens, counts)) {
        vlm_free(counts);
        return 2;
    }

    char *data = NULL;
    size_t len = 0;
    const char *input = decode_ids ? decode_ids : text;
    if (input) len = strlen(input);
    else {
        vlm_status s = vlm_read_file(file, 0, &data, &len);
        if (s != VLM_OK) {
            vlm_free(counts);
            return vlm_cli_fail(s);
        }
        input = data;
    }
    vlm_ids ids = {0};
    vlm_strbuf out = {0};
    vlm_tokenizer *t = NULL;
    int rc = 0;
    if (decode) rc = parse_ids(input, len, &ids);
    vlm_status s = rc ? VLM_OK : open_tokenizer(model_id, &t);
    if (!rc && s == VLM_OK) {
        if (decode) s = vlm_tok_decode(t, ids.v, ids.n, skip, &out);
        else if (chat) s = vlm_chat_build_prompt(t, input, len, counts, image_tokens.n, &ids, &out);
        else s = vlm_tok_encode(t, input, len, &ids);
    }
    if (!rc) /* else: a usage error, already printed */
        rc = s != VLM_OK ? vlm_cli_fail(s)
            : decode     ? print_text(&out, json)
                         : print_ids(&ids, json, chat ? &out : NULL);
    vlm_tok_free(t);
    vlm_ids_free(&ids);
    vlm_sb_free(&out);
    free(data);
    vlm_free(counts);
    return rc;
}
