#!/usr/bin/env bash
# The main job on the demo image: create the embedded default model once (a small synthetic
# Qwen2.5-VL — real architecture, RANDOM weights, so its answers are noise), then benchmark every
# mode on assets/demo/grace_hopper.jpg. Pass a real checkpoint with MODEL=dir-or-HF-id.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
VLM=$BUILD/vlm
MODEL=${MODEL:-models/demo}
if [[ $MODEL == models/demo && ! -f models/demo/config.json ]]; then
  echo "demo: creating the demo model in models/demo (synthetic, random weights)" >&2
  "$VLM" make-synthetic --config demo --out models/demo --seed 1
fi
"$VLM" bench --model-id "$MODEL" --image assets/demo/grace_hopper.jpg --runs "${RUNS:-3}" \
  --max-tokens "${MAX_TOKENS:-32}" --output-dir "${OUTPUT_DIR:-split_models/demo}" --output demo_benchmark.json --csv
