#!/bin/sh
# vlm against llama.cpp on the same weights, alternated (vlm, llama.cpp, vlm, llama.cpp, ...) so that
# both see the same load of a shared host: prefill of P tokens and decode of N, per weight format.
#
#   perf/anchor_llama.sh BUILD MODEL_DIR Q4_DIR GGUF_DIR NODE_MODULES [P] [N] [ROUNDS]
#
# MODEL_DIR: the bf16 checkpoint; Q4_DIR: `vlm quantize --type q4_0 --language-only` of it;
# GGUF_DIR: f16.gguf and q4_0.gguf written by `BUILD/perf/perf_gguf_write`; NODE_MODULES: where
# `npm install node-llama-cpp @node-llama-cpp/linux-x64` put the packages.
set -u
BUILD=$1 MODEL=$2 Q4=$3 GGUF=$4 NM=$5 P=${6:-512} N=${7:-128} ROUNDS=${8:-2}
here=$(dirname "$0")
vlm() { # $1: model dir, $2: label
    "$BUILD/perf/perf_text_model" --model "$1" --prompt "$P" --decode "$N" 2>&1 |
        awk -v l="$2" '/run 1: prefill/ {pf = $9} /run 1: decode/ {dc = $9} END {printf "vlm       %-6s pp%s %s tok/s, tg%s %s tok/s\n", l, P, pf, N, dc}' P="$P" N="$N"
}
llama() { # $1: gguf
    NODE_PATH="$NM" node "$here/llama_anchor.mjs" "$1" --prompt "$P" --gen "$N" --reps 1 2>/dev/null | grep '^llama'
}
for r in $(seq "$ROUNDS"); do
    echo "-- round $r, load average $(cut -d' ' -f1 /proc/loadavg)"
    vlm "$MODEL" bf16
    llama "$GGUF/f16.gguf"
    vlm "$Q4" q4_0
    llama "$GGUF/q4_0.gguf"
done
