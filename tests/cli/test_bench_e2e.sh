#!/usr/bin/env bash
# vlm bench end to end on the tiny fixture model with 2 runs: JSON structure and keys, statistics
# equal to numpy over "values", CSV header and rows, the console summary, the chart, skipped-mode
# reporting, --ignore-eos, several images, and the timestamped files of both comparisons.
# usage: bash test_bench_e2e.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
MODEL=$FIX/models/tiny-qwen2_5-vl
IMG=$FIX/cases/q25_photo/photo_256x300.png
IMG2=$FIX/cases/q25_wide/wide_640x80.png
PY=/usr/bin/python3
source "$(dirname "$(realpath "$0")")/lib.sh"

"$VLM" bench --image "$IMG" --model-id "$MODEL" --device cpu --runs 2 --max-tokens 8 --output-dir "$TMP/split" \
    --output "$TMP/r.json" --csv --plot "$TMP/chart.svg" >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] || { cat out.txt err.txt >&2; echo "FAIL: vlm bench exit $rc" >&2; exit 1; }

# the console summary, in the spec's shape
for s in "BENCHMARK CONFIGURATION" "BENCHMARK RESULTS SUMMARY" "Mode            Metric                    Mean         Std          Min          Max" \
    "original        Duration (s)" "split_native    Tokens/sec" "Fastest Mode: " "Relative Performance (vs " \
    "Throughput Comparison:" "TARGETS" "development (CPU)" "Image:        $IMG (256x300)" "Prompt:       Describe this image."; do
    grep -qF -- "$s" out.txt || fail "stdout lacks '$s'"
done
grep -q $'\r' out.txt && fail "progress escapes on stdout"
[ -s chart.svg ] || fail "no chart"

# JSON, CSV and chart checked against numpy and the spec
"$PY" - "$TMP/r.json" "$TMP/r.csv" "$TMP/chart.svg" "$MODEL" <<'PYEOF' || fail "JSON/CSV checks"
import json, sys, os, numpy as np, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
csv = open(sys.argv[2]).read().splitlines()
ET.parse(sys.argv[3])  # well-formed
model = sys.argv[4]
SPEC = ["duration", "tokens_per_sec", "tokens_generated", "vision_inference_time", "cpu_memory_delta",
        "gpu_memory_delta", "gpu_peak_memory", "vision_model_size", "language_model_size", "onnx_model_size",
        "prefill_tokens_per_sec", "decode_tokens_per_sec", "time_to_first_token", "preprocess_time", "cpu_peak_memory"]
md = r["metadata"]
assert set(r) <= {"original", "split_native", "run_onnx", "metadata"}, set(r)
assert "original" in r and "split_native" in r, set(r)
# run_onnx either ran or is reported as skipped with its reason
assert "run_onnx" in r or md["skipped"].get("run_onnx"), md["skipped"]
for k in ["model_id", "model_path", "device", "device_name", "image_path", "image_size", "prompt", "runs", "max_tokens",
          "warmup", "quantization", "version", "timestamp"]:
    assert k in md, k
assert md["runs"] == 2 and md["max_tokens"] == 8 and md["warmup"] is True and md["device"] == "cpu"
assert md["image_size"] == {"width": 256, "height": 300}, md["image_size"]
assert os.path.realpath(md["model_path"]) == os.path.realpath(model), md["model_path"]
assert md["prompt"] == "Describe this image."
rows = 0
assert csv[0] == "Mode,Metric,Mean,Std,Min,Max,Median,Num Runs", csv[0]
csv_rows = {tuple(l.split(",")[:2]): l.split(",") for l in csv[1:]}
for mode, m in r.items():
    if mode == "metadata":
        continue
    assert m["num_runs"] == 2, (mode, m["num_runs"])
    for key in SPEC:
        assert key in m, (mode, key)
    for key, s in m.items():
        if key == "num_runs":
            continue
        assert set(s) == {"mean", "std", "min", "max", "median", "values"}, (mode, key, set(s))
        v = np.array(s["values"], dtype=np.float64)
        assert len(v) == 2, (mode, key)
        assert s["mean"] == np.mean(v) and s["std"] == np.std(v), (mode, key, s, np.mean(v), np.std(v))
        assert s["min"] == v.min() and s["max"] == v.max() and s["median"] == np.median(v), (mode, key)
        row = csv_rows[(mode, key)]
        assert row[2] == "%.4f" % s["mean"] and row[6] == "%.4f" % s["median"] and row[7] == "2", row
        rows += 1
    tg, d, tps = (np.array(m[k]["values"]) for k in ("tokens_generated", "duration", "tokens_per_sec"))
    assert np.all(tg >= 1) and np.all(tg <= 8), tg
    assert np.all(d > 0) and np.allclose(tps, tg / d, rtol=1e-12), (tps, tg / d)
    assert all(x > 0 for x in m["vision_inference_time"]["values"]), mode
    assert m["gpu_peak_memory"]["max"] == 0 and m["gpu_memory_delta"]["max"] == 0
    # sizes of the artifacts the mode uses: run_onnx's vision encoder is the ONNX file
    assert m["language_model_size"]["min"] > 0, mode
    assert mode == "run_onnx" or m["vision_model_size"]["min"] > 0, mode
    assert (m["onnx_model_size"]["min"] > 0) == (mode == "run_onnx"), mode
# greedy: the native modes compute the same numbers, so they generate the same tokens
assert r["split_native"]["tokens_generated"]["values"] == r["original"]["tokens_generated"]["values"]
assert rows == len(csv) - 1, (rows, len(csv))
PYEOF

# --ignore-eos: exactly --max-tokens; --no-warmup; several images (a directory and a file)
mkdir -p imgs && cp "$IMG" imgs/a.png && cp "$IMG2" imgs/b.png
"$VLM" bench --image imgs --image "$IMG" --model-id "$MODEL" --device cpu --modes original --runs 2 --max-tokens 5 \
    --ignore-eos --no-warmup --output-dir "$TMP/split" --output "$TMP/m.json" --plot "$TMP/chart.html" >out2.txt 2>err2.txt ||
    fail "multi-image bench: $(cat err2.txt)"
"$PY" - "$TMP/m.json" <<'PYEOF' || fail "multi-image JSON checks"
import json, sys
r = json.load(open(sys.argv[1]))
assert set(r) == {"original", "metadata", "images"}, set(r)
assert r["original"]["num_runs"] == 6
assert r["original"]["tokens_generated"]["values"] == [5] * 6
assert len(r["images"]) == 3 and r["images"][1]["image"]["width"] == 640
assert [im["original"]["num_runs"] for im in r["images"]] == [2, 2, 2]
assert r["metadata"]["warmup"] is False and r["metadata"]["ignore_eos"] is True
PYEOF
grep -q "BENCHMARK RESULTS SUMMARY: all 3 images" out2.txt || fail "no overall summary for several images"

# --compare-devices: benchmark_cpu_TIMESTAMP.json always; benchmark_cuda_TIMESTAMP.json only when cuda ran
mkdir -p cmp && cd cmp || exit 1
"$VLM" bench --image "$IMG" --model-id "$MODEL" --modes original --runs 2 --max-tokens 4 --output-dir "$TMP/split" \
    --compare-devices --csv >out.txt 2>err.txt || fail "--compare-devices: $(cat err.txt)"
ls benchmark_cpu_[0-9]*_[0-9]*.json >/dev/null 2>&1 || fail "--compare-devices wrote no benchmark_cpu_TIMESTAMP.json: $(ls)"
ls benchmark_cpu_[0-9]*_[0-9]*.csv >/dev/null 2>&1 || fail "--compare-devices --csv wrote no CSV"
grep -q "DEVICE COMPARISON" out.txt || fail "no device comparison printed"
if grep -q "^cuda: skipped: " out.txt; then
    ls benchmark_cuda_* >/dev/null 2>&1 && fail "a cuda file was written although the cuda side was skipped"
    grep -q "skipped" out.txt || fail "the skipped cuda side is not reported with its reason"
else
    ls benchmark_cuda_[0-9]*_[0-9]*.json >/dev/null 2>&1 || fail "the cuda side ran but no benchmark_cuda file"
fi
cd "$TMP" && mkdir -p q && cd q || exit 1

# --compare-quantization: both timestamped files and a printed comparison
"$VLM" bench --image "$IMG" --model-id "$MODEL" --device cpu --modes original --runs 2 --max-tokens 4 \
    --output-dir "$TMP/split" --compare-quantization >out.txt 2>err.txt || fail "--compare-quantization: $(cat err.txt)"
ls benchmark_non_quantized_[0-9]*_[0-9]*.json >/dev/null 2>&1 || fail "no benchmark_non_quantized_TIMESTAMP.json: $(ls)"
ls benchmark_quantized_[0-9]*_[0-9]*.json >/dev/null 2>&1 || fail "no benchmark_quantized_TIMESTAMP.json: $(ls)"
grep -q "QUANTIZATION COMPARISON" out.txt || fail "no quantization comparison printed"
cd "$TMP" || exit 1

finish
