#!/usr/bin/env bash
# vlm serve through the official OpenAI client for Node (npm "openai", installed by scripts/setup.sh
# into tests/serve/node_modules): non-streaming and streaming, a base64 image and a file:// image,
# each equal to `vlm run --greedy`; models.list; errors as the client's typed exceptions.
# Skipped (exit 77) only where node is absent.
# usage: bash test_serve_openai_node.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
HERE=$(dirname "$(realpath "$0")")
if ! command -v node >/dev/null; then
    echo "SKIPPED: node is not installed (scripts/setup.sh installs Debian's nodejs); the OpenAI Node client test needs it" >&2
    exit 77
fi
if [ ! -f "$HERE/node_modules/openai/version.js" ]; then
    echo "FAIL: the npm package openai is not in $HERE/node_modules: run scripts/setup.sh (npm ci in tests/serve)" >&2
    exit 1
fi
source "$HERE/lib.sh"

M25=$FIX/models/tiny-qwen2_5-vl
C=$FIX/cases/q25_photo
IMG=$C/photo_256x300.png
PROMPT=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["prompt"])' "$C/request.json")
"$VLM" run --model-id "$M25" --image "$IMG" --text "$PROMPT" --greedy --max-tokens 16 --json "$TMP/run.json" \
    >/dev/null 2>"$TMP/run.err" || fail "vlm run: $(cat "$TMP/run.err")"
start_server s --model-id "$M25" --api-key node-key --media-dir "$FIX/cases" --served-model-name tiny || finish
node "$HERE/openai_client.mjs" "$s_URL" node-key "$IMG" "file://$IMG" "$PROMPT" "$TMP/run.json" ||
    fail "the OpenAI Node client checks failed (above)"
stop_server s
finish
