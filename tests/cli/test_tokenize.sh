#!/usr/bin/env bash
# vlm tokenize: ids, --json, --decode (value or --text / --file), --chat, files used byte for byte,
# model ids (directory, tokenizer.json, Hugging Face cache), exit codes.
# usage: test_tokenize.sh <vlm> <fixtures-dir>
set -u
VLM=$1
FIX=$2
MODEL=$FIX/models/tiny-qwen2_5-vl
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

check() { # name, expected, actual
    if [ "$2" != "$3" ]; then
        echo "FAIL $1: expected [$2] got [$3]" >&2
        fails=$((fails + 1))
    else
        echo "ok   $1" >&2
    fi
}
status() { # name, expected exit status, command...
    local name=$1 want=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    check "$name (exit $want)" "$want" "$got"
    if [ "$want" != 0 ] && [ ! -s "$TMP/err" ]; then
        echo "FAIL $name: no message on stderr" >&2
        fails=$((fails + 1))
    fi
}

check "encode" "9707 1879" "$("$VLM" tokenize --model-id "$MODEL" --text "Hello world")"
check "encode --json" '{"ids": [9707, 1879]}' "$("$VLM" tokenize --model-id "$MODEL" --text "Hello world" --json)"
check "tokenizer.json path" "9707 1879" "$("$VLM" tokenize --model-id "$FIX/tokenizer/qwen2_5_vl/tokenizer.json" --text "Hello world")"
check "tokenizer dir" "9707 1879" "$("$VLM" tokenize --model-id "$FIX/tokenizer/qwen2_5_vl" --text "Hello world")"
check "decode value" "Hello world" "$("$VLM" tokenize --model-id "$MODEL" --decode "9707 1879")"
check "decode --text" "Hello world" "$("$VLM" tokenize --model-id "$MODEL" --decode --text "[9707, 1879]")"
check "decode --json" '{"text": "Hello world"}' "$("$VLM" tokenize --model-id "$MODEL" --decode "9707,1879" --json)"
check "decode special" "<|im_start|>system<|im_end|>" "$("$VLM" tokenize --model-id "$MODEL" --decode "151644 8948 151645")"
check "decode --skip-special" "system" "$("$VLM" tokenize --model-id "$MODEL" --decode "151644 8948 151645" --skip-special)"
check "decode unknown ids" "Hello world" "$("$VLM" tokenize --model-id "$MODEL" --decode "9707 151900 1879 151935")"
check "chat" "151644 8948 198 2610 525 264 10950 17847 13 151645 198 151644 872 198 151652 151655 151653 74785 419 2168 13 151645 198 151644 77091 198" \
    "$("$VLM" tokenize --model-id "$MODEL" --chat --image-tokens 1 --text "Describe this image.")"
check "chat pads" "6" "$("$VLM" tokenize --model-id "$MODEL" --chat --image-tokens 4 2 --text "Two." | tr ' ' '\n' | grep -c '^151655$')"

# a file is used byte for byte: NUL, CRLF, trailing newlines, ill-formed UTF-8
printf 'line one\r\nzwei \xc3\xbc\n\x00end \xff\xfe\n\n' >"$TMP/in.txt"
"$VLM" tokenize --model-id "$MODEL" --file "$TMP/in.txt" >"$TMP/ids.txt"
check "file encode" 0 $?
"$VLM" tokenize --model-id "$MODEL" --decode --file "$TMP/ids.txt" >"$TMP/back.txt"
printf 'line one\r\nzwei \xc3\xbc\n\x00end \xef\xbf\xbd\xef\xbf\xbd\n\n\n' >"$TMP/want.txt"
if cmp -s "$TMP/back.txt" "$TMP/want.txt"; then check "file round trip" ok ok; else check "file round trip" same differ; fi
check "file vs text" "$("$VLM" tokenize --model-id "$MODEL" --text "zwei ü")" \
    "$(printf 'zwei \xc3\xbc' >"$TMP/z.txt"; "$VLM" tokenize --model-id "$MODEL" --file "$TMP/z.txt")"

# a Hugging Face id found in the cache
SNAP=$TMP/hub/models--Org--Tiny/snapshots/abc123
mkdir -p "$SNAP" "$TMP/hub/models--Org--Tiny/refs"
echo abc123 >"$TMP/hub/models--Org--Tiny/refs/main"
cp "$MODEL/config.json" "$MODEL/tokenizer.json" "$SNAP/"
check "hf id" "9707 1879" "$(HF_HUB_CACHE=$TMP/hub "$VLM" tokenize --model-id Org/Tiny --text "Hello world")"

status "help" 0 "$VLM" tokenize --help
status "no model" 2 "$VLM" tokenize --text hi
status "no text" 2 "$VLM" tokenize --model-id "$MODEL"
status "text and file" 2 "$VLM" tokenize --model-id "$MODEL" --text a --file "$TMP/in.txt"
status "unknown flag" 2 "$VLM" tokenize --model-id "$MODEL" --text a --nope
status "bad ids" 2 "$VLM" tokenize --model-id "$MODEL" --decode "12 x"
status "negative id" 2 "$VLM" tokenize --model-id "$MODEL" --decode "5 -3"
status "image tokens without chat" 2 "$VLM" tokenize --model-id "$MODEL" --text a --image-tokens 3
status "bad image tokens" 2 "$VLM" tokenize --model-id "$MODEL" --chat --text a --image-tokens 0
status "missing model" 1 "$VLM" tokenize --model-id "$TMP/nope" --text a
status "unknown hf id" 1 env HF_HUB_CACHE="$TMP/hub" "$VLM" tokenize --model-id Org/Missing --text a
status "missing file" 1 "$VLM" tokenize --model-id "$MODEL" --file "$TMP/none.txt"
head -c 100000 "$MODEL/tokenizer.json" >"$TMP/cut.json"
status "truncated tokenizer.json" 1 "$VLM" tokenize --model-id "$TMP/cut.json" --text a
grep -q "truncated" "$TMP/err" && check "truncated message" ok ok || check "truncated message" "truncated" "$(cat "$TMP/err")"
status "spelled image pad" 1 "$VLM" tokenize --model-id "$MODEL" --chat --text "<|image_pad|>"

[ $fails = 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "all ok" >&2
