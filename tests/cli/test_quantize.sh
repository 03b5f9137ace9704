#!/usr/bin/env bash
# vlm quantize: usage errors exit 2 naming the argument, failures exit 1 with a message, a run writes
# a loadable quantized directory (vlm info reads it) with nothing on stdout, and a second run
# replaces it in place.
# usage: bash test_quantize.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
MODEL=$FIX/models/tiny-qwen2_5-vl
SCRIPT_DIR=$(dirname "$(realpath "$0")")
QUIET_STDOUT=1
source "$SCRIPT_DIR/lib.sh"

expect quantize 2 "--model-id is required" -- --out q
expect quantize 2 "--out is required" -- --model-id "$MODEL"
expect quantize 2 "--type must be one of q4_0, q8_0, nf4, got 'q5_k'" -- --model-id "$MODEL" --out q --type q5_k
expect quantize 2 "--embed-type must be one of" -- --model-id "$MODEL" --out q --embed-type int8
expect quantize 2 "unknown option '--bogus'" -- --model-id "$MODEL" --out q --bogus
expect quantize 2 "conflict" -- --model-id "$MODEL" --out q --quantize-vision --language-only
expect quantize 1 "does-not-exist" -- --model-id "$TMP/does-not-exist" --out q

expect quantize 0 "wrote q4" -- --model-id "$MODEL" --out q4
[ -f q4/model.safetensors ] && [ -f q4/config.json ] && [ -f q4/tokenizer.json ] && [ -f q4/vlm_manifest.json ] ||
    fail "q4 is missing files: $(ls q4)"
grep -q '"vlm_quantization"' q4/config.json || fail "config.json does not record the quantization"
ls -d q4.vlm-tmp.* >/dev/null 2>&1 && fail "a temporary directory was left behind"
# the quantized checkpoint loads (vlm info binds its weights) and shows block formats
"$VLM" info --model-id q4 >info.txt 2>err.txt || fail "vlm info on the quantized checkpoint: $(cat err.txt)"

expect quantize 0 "nf4" -- --model-id "$MODEL" --out q4 --type nf4 --embed-type keep
grep -q '"linear":[[:space:]]*"nf4"' q4/config.json || fail "q4 was not replaced by the nf4 run"

mkdir foreign && echo keep >foreign/notes.txt
expect quantize 1 "refusing to replace" -- --model-id "$MODEL" --out foreign
[ -f foreign/notes.txt ] || fail "a foreign directory was touched"

expect quantize 1 "already quantized" -- --model-id q4 --out twice

finish
