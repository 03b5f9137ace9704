#!/usr/bin/env bash
# vlm bench --concurrency end to end on the tiny fixture model: the JSON "concurrency" object keyed by
# N with output_tokens_per_sec, ttft, itl and e2e as statistic objects (p90 / p99 as numpy computes
# them over "values"), every request answered, the CSV rows, the console table, the chart; bad levels
# are usage errors.
# usage: bash test_bench_concurrency.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
MODEL=$FIX/models/tiny-qwen2_5-vl
IMG=$FIX/cases/q25_photo/photo_256x300.png
IMG2=$FIX/cases/q25_wide/wide_640x80.png
PY=/usr/bin/python3
source "$(dirname "$(realpath "$0")")/lib.sh"

"$VLM" bench --image "$IMG" --image "$IMG2" --model-id "$MODEL" --device cpu --concurrency 1,3 --runs 2 \
    --max-tokens 6 --ignore-eos --output "$TMP/c.json" --csv --plot "$TMP/c.svg" >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] || { cat out.txt err.txt >&2; echo "FAIL: vlm bench --concurrency exit $rc" >&2; exit 1; }
for s in "LOAD TEST: in-process" "c=1" "c=3" "decode-only steps with all 3 sequences"; do
    grep -qF -- "$s" out.txt || fail "stdout lacks '$s'"
done
grep -q "KV cache of" err.txt || fail "the KV pool is not stated at start"

"$PY" - "$TMP/c.json" "$TMP/c.csv" "$TMP/c.svg" <<'PYEOF' || fail "JSON/CSV checks"
import json, sys, numpy as np, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
csv = open(sys.argv[2]).read().splitlines()
ET.parse(sys.argv[3])
c = r["concurrency"]
assert set(c) == {"1", "3"}, set(c)
for n, level in c.items():
    n = int(n)
    assert level["num_runs"] == 2 and level["num_requests"] == 2 * n and level["num_ok"] == 2 * n, level
    for key in ["output_tokens_per_sec", "ttft", "itl", "e2e", "decode_tokens_per_sec"]:
        s = level[key]
        v = np.array(s["values"], dtype=np.float64)
        assert len(v) > 0, key
        for stat, want in [("mean", v.mean()), ("std", v.std()), ("min", v.min()), ("max", v.max()),
                           ("median", np.median(v)), ("p90", np.percentile(v, 90)), ("p99", np.percentile(v, 99))]:
            assert abs(s[stat] - want) <= 1e-12 * max(1, abs(want)), (n, key, stat, s[stat], want)
    assert len(level["ttft"]["values"]) == 2 * n and len(level["itl"]["values"]) == 2 * n * 5
    assert all(t == 6 for t in level["output_tokens"]["values"])
    assert all(x > 0 for x in level["ttft"]["values"] + level["e2e"]["values"])
assert r["metadata"]["max_tokens"] == 6 and r["metadata"]["ignore_eos"] is True
assert csv[0] == "Level,Metric,Mean,Std,Min,Max,Median,P90,P99,Count", csv[0]
assert any(l.startswith("c=3,output_tokens_per_sec,") for l in csv) and any(l.startswith("c=1,ttft,") for l in csv)
PYEOF

# --no-prefix-cache: the same requests, each doing all its work (no prefix KV or image reuse)
"$VLM" bench --image "$IMG" --model-id "$MODEL" --device cpu --concurrency 2 --runs 1 --max-tokens 4 --ignore-eos \
    --no-prefix-cache --output "$TMP/n.json" >/dev/null 2>err.txt || fail "--no-prefix-cache: $(cat err.txt)"
"$PY" -c 'import json, sys; l = json.load(open(sys.argv[1]))["concurrency"]["2"]; assert l["num_ok"] == 2, l' \
    "$TMP/n.json" || fail "--no-prefix-cache: not every request answered"

for bad in "0" "2,x" "-3"; do
    "$VLM" bench --image "$IMG" --model-id "$MODEL" --concurrency "$bad" >/dev/null 2>e.txt
    [ $? -eq 2 ] && grep -q -- "--concurrency" e.txt || fail "--concurrency $bad: not a usage error naming the flag"
done
"$VLM" bench --image "$IMG" --model-id "$MODEL" --concurrency 2 --modes original split_native >/dev/null 2>e.txt
[ $? -eq 2 ] && grep -q "one mode" e.txt || fail "--concurrency with two modes: not a usage error"
finish
