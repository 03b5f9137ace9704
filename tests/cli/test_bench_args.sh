#!/usr/bin/env bash
# vlm bench: bad arguments are usage errors naming the argument (exit 2); --device cuda without a
# usable GPU fails with a clear message (exit 1); missing inputs fail (exit 1). None of these needs
# the inference pipeline.
# usage: bash test_bench_args.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
IMG=$FIX/cases/q25_photo/photo_256x300.png
MODEL=$FIX/models/tiny-qwen2_5-vl
SCRIPT_DIR=$(dirname "$(realpath "$0")")
source "$SCRIPT_DIR/lib.sh"

# usage errors (exit 2), each naming the argument at fault
expect bench 2 "--image is required" --
expect bench 2 "--image is required" -- --runs 2
expect bench 2 "unknown option '--bogus'" -- --image "$IMG" --bogus
expect bench 2 "--precision: unknown precision 'fp16'" -- --image "$IMG" --precision fp16
expect bench 2 "unknown option '--run'" -- --image "$IMG" --run 3
expect bench 2 "--image needs a value" -- --image
expect bench 2 "--runs needs a value" -- --image "$IMG" --runs
expect bench 2 "--runs needs a value" -- --image "$IMG" --runs --no-warmup
expect bench 2 "--runs must be at least 1, got 0" -- --image "$IMG" --runs 0
expect bench 2 "--runs must be at least 1, got -3" -- --image "$IMG" --runs -3
expect bench 2 "--runs expects an integer, got 'five'" -- --image "$IMG" --runs five
expect bench 2 "--max-tokens must be at least 1" -- --image "$IMG" --max-tokens 0
expect bench 2 "--max-tokens expects an integer" -- --image "$IMG" --max-tokens 1.5
expect bench 2 "--threads must be 0" -- --image "$IMG" --threads -1
expect bench 2 "--modes needs a value" -- --image "$IMG" --modes
expect bench 2 "--modes: unknown mode 'onnx'" -- --image "$IMG" --modes original onnx
expect bench 2 "--modes: unknown mode 'fast'" -- --image "$IMG" --modes fast
expect bench 2 "--modes: 'original' given twice" -- --image "$IMG" --modes original split_native original
expect bench 2 "--device: unknown device 'gpu'" -- --image "$IMG" --device gpu
expect bench 2 "--device needs a value" -- --image "$IMG" --device
expect bench 2 "--output needs a value" -- --image "$IMG" --output
expect bench 2 "--no-warmup takes no value" -- --image "$IMG" --no-warmup=1
expect bench 2 "--plot out.png" -- --image "$IMG" --plot out.png
expect bench 2 "--csv writes beside the JSON" -- --image "$IMG" --csv
expect bench 2 "choose one" -- --image "$IMG" --compare-devices --compare-quantization
expect bench 2 "--output cannot be combined with --compare-devices" -- --image "$IMG" --compare-devices --output r.json
expect bench 2 "--device cannot be combined with --compare-devices" -- --image "$IMG" --compare-devices --device cpu
expect bench 2 "--quantize cannot be combined" -- --image "$IMG" --compare-quantization --quantize
expect bench 2 "unexpected argument 'extra'" -- --image "$IMG" --runs 2 extra

# nothing was written by any of them
if ls "$TMP" | grep -qv -e '^out.txt$' -e '^err.txt$'; then fail "files left behind: $(ls "$TMP")"; fi

# --help: exit 0, every option of the spec listed on stdout
"$VLM" bench --help >out.txt 2>err.txt || fail "vlm bench --help: exit $?"
for opt in --image --text --modes --runs --max-tokens --no-warmup --ignore-eos --model-id --device --quantize \
    --output-dir --output --csv --compare-devices --compare-quantization --threads --plot; do
    grep -q -- "^  $opt " out.txt || fail "vlm bench --help does not list $opt"
done
grep -q "Describe this image" out.txt || fail "--help does not give the default prompt"
grep -q "default 5" out.txt || fail "--help does not give the default --runs"
grep -q "default 128" out.txt || fail "--help does not give the default --max-tokens"
"$VLM" --help | grep -q "^  bench " || fail "vlm --help does not list bench"

# missing inputs: failures (exit 1) naming the input
expect bench 1 "nope.jpg" -- --image "$TMP/nope.jpg" --model-id "$MODEL"
mkdir -p empty
expect bench 1 "no .jpg, .jpeg or .png file" -- --image "$TMP/empty" --model-id "$MODEL"
expect bench 1 "/no/such/model" -- --image "$IMG" --model-id /no/such/model --device cpu
# output files are checked before any run
expect bench 1 "--output $TMP/nodir/r.json: the directory $TMP/nodir does not exist" -- --image "$IMG" --model-id "$MODEL" \
    --device cpu --output "$TMP/nodir/r.json"
mkdir -p d.svg
expect bench 1 "--plot $TMP/d.svg: is a directory" -- --image "$IMG" --model-id "$MODEL" --device cpu --plot "$TMP/d.svg"

# --serve: the served benchmark's own usage errors, and a server that is not there
expect bench 2 "--serve needs --concurrency N or --request-rate R" -- --serve http://127.0.0.1:9
expect bench 2 "need --serve URL" -- --image "$IMG" --request-rate 4
expect bench 2 "--no-prefix-cache applies to --concurrency" -- --image "$IMG" --no-prefix-cache
# --concurrency without --serve: the in-process engine, whose options are checked before any load
expect bench 2 "--concurrency: '0' is not a whole number" -- --image "$IMG" --concurrency 2,0
expect bench 2 "--concurrency cannot be combined with --compare-devices" -- --image "$IMG" --concurrency 2 \
    --compare-devices
expect bench 2 "--concurrency: '0' is not a whole number" -- --serve http://127.0.0.1:9 --concurrency 1,0
expect bench 2 "--concurrency: '2.5' is not a whole number" -- --serve http://127.0.0.1:9 --concurrency 2.5
expect bench 2 "--request-rate: 'x' is not a positive rate" -- --serve http://127.0.0.1:9 --request-rate x
expect bench 2 "--modes cannot be combined with --serve" -- --serve http://127.0.0.1:9 --concurrency 1 --modes original
expect bench 2 "--model-id cannot be combined with --serve" -- --serve http://127.0.0.1:9 --concurrency 1 --model-id m
expect bench 2 "--timeout must be positive" -- --serve http://127.0.0.1:9 --concurrency 1 --timeout 0
expect bench 2 "expected an http:// or https:// URL" -- --serve ftp://x --concurrency 1
expect bench 1 "GET http://127.0.0.1:9/v1/models: Couldn't connect to server" -- --serve http://127.0.0.1:9/v1/ \
    --concurrency 1
expect bench 1 "--image $TMP/missing.png" -- --serve http://127.0.0.1:9 --concurrency 1 --image "$TMP/missing.png"

# --device cuda alone on a machine without a usable GPU: a clear failure before any work
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
    echo "note: a GPU is present here; the no-GPU --device cuda check is not applicable"
else
    expect bench 1 "--device cuda: no usable GPU" -- --image "$IMG" --model-id "$MODEL" --device cuda
    [ -s out.txt ] && fail "--device cuda without a GPU printed results: $(cat out.txt)"
    grep -q "^vlm: error: " err.txt || fail "--device cuda without a GPU: no error line: $(cat err.txt)"
fi

finish
