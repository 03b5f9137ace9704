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
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect STATUS NEEDLE -- ARGS...: runs vlm bench ARGS, checks the exit status and that stderr names NEEDLE
expect() {
    local want=$1 needle=$2
    shift 3
    "$VLM" bench "$@" >out.txt 2>err.txt
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "vlm bench $*: exit $rc, expected $want; stderr: $(cat err.txt)"
    elif ! grep -qF -- "$needle" err.txt; then
        fail "vlm bench $*: stderr does not name '$needle': $(cat err.txt)"
    elif [ "$want" -eq 2 ] && [ -s out.txt ]; then
        fail "vlm bench $*: a usage error printed on stdout: $(cat out.txt)"
    fi
}

# usage errors (exit 2), each naming the argument at fault
expect 2 "--image is required" --
expect 2 "--image is required" -- --runs 2
expect 2 "unknown option '--bogus'" -- --image "$IMG" --bogus
expect 2 "unknown option '--run'" -- --image "$IMG" --run 3
expect 2 "--image needs a value" -- --image
expect 2 "--runs needs a value" -- --image "$IMG" --runs
expect 2 "--runs needs a value" -- --image "$IMG" --runs --no-warmup
expect 2 "--runs must be at least 1, got 0" -- --image "$IMG" --runs 0
expect 2 "--runs must be at least 1, got -3" -- --image "$IMG" --runs -3
expect 2 "--runs expects an integer, got 'five'" -- --image "$IMG" --runs five
expect 2 "--max-tokens must be at least 1" -- --image "$IMG" --max-tokens 0
expect 2 "--max-tokens expects an integer" -- --image "$IMG" --max-tokens 1.5
expect 2 "--threads must be 0" -- --image "$IMG" --threads -1
expect 2 "--modes needs a value" -- --image "$IMG" --modes
expect 2 "--modes: unknown mode 'onnx'" -- --image "$IMG" --modes original onnx
expect 2 "--modes: unknown mode 'fast'" -- --image "$IMG" --modes fast
expect 2 "--modes: 'original' given twice" -- --image "$IMG" --modes original split_native original
expect 2 "--device: unknown device 'gpu'" -- --image "$IMG" --device gpu
expect 2 "--device needs a value" -- --image "$IMG" --device
expect 2 "--output needs a value" -- --image "$IMG" --output
expect 2 "--no-warmup takes no value" -- --image "$IMG" --no-warmup=1
expect 2 "--plot out.png" -- --image "$IMG" --plot out.png
expect 2 "--csv writes beside the JSON" -- --image "$IMG" --csv
expect 2 "choose one" -- --image "$IMG" --compare-devices --compare-quantization
expect 2 "--output cannot be combined with --compare-devices" -- --image "$IMG" --compare-devices --output r.json
expect 2 "--device cannot be combined with --compare-devices" -- --image "$IMG" --compare-devices --device cpu
expect 2 "--quantize cannot be combined" -- --image "$IMG" --compare-quantization --quantize
expect 2 "unexpected argument 'extra'" -- --image "$IMG" --runs 2 extra

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
expect 1 "nope.jpg" -- --image "$TMP/nope.jpg" --model-id "$MODEL"
mkdir -p empty
expect 1 "no .jpg, .jpeg or .png file" -- --image "$TMP/empty" --model-id "$MODEL"
expect 1 "/no/such/model" -- --image "$IMG" --model-id /no/such/model --device cpu
# output files are checked before any run
expect 1 "--output $TMP/nodir/r.json: the directory $TMP/nodir does not exist" -- --image "$IMG" --model-id "$MODEL" \
    --device cpu --output "$TMP/nodir/r.json"
mkdir -p d.svg
expect 1 "--plot $TMP/d.svg: is a directory" -- --image "$IMG" --model-id "$MODEL" --device cpu --plot "$TMP/d.svg"

# --device cuda alone on a machine without a usable GPU: a clear failure before any work
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
    echo "note: a GPU is present here; the no-GPU --device cuda check is not applicable"
else
    expect 1 "--device cuda: no usable GPU" -- --image "$IMG" --model-id "$MODEL" --device cuda
    [ -s out.txt ] && fail "--device cuda without a GPU printed results: $(cat out.txt)"
    grep -q "^vlm: error: " err.txt || fail "--device cuda without a GPU: no error line: $(cat err.txt)"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "ok"
