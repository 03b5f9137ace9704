#!/usr/bin/env bash
# vlm run end to end on the fixture models: answers, --json, --dump, every mode, and bad input
# (each a clear message and a non-zero exit status, nothing half-written).
set -u
VLM=$1
FIX=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { # description, condition
  if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}
PY=/usr/bin/python3
M25=$FIX/models/tiny-qwen2_5-vl
C=$FIX/cases/q25_photo
PROMPT=$($PY -c "import json,sys;print(json.load(open(sys.argv[1]))['prompt'])" "$C/request.json")
IMG=$C/$($PY -c "import json,sys;print(json.load(open(sys.argv[1]))['image'])" "$C/request.json")

# an image case: streamed answer on stdout, ids in --json equal the fixture's
"$VLM" run --model-id "$M25" --image "$IMG" --text "$PROMPT" --greedy --max-tokens 16 --json "$T/o.json" \
  --dump "$T/d.safetensors" >"$T/out" 2>"$T/err"
check "image run exits 0" "[ $? -eq 0 ]"
check "answer streamed to stdout" "[ -s $T/out ]"
check "logs stay off stdout" "! grep -q 'vlm:' $T/out"
check "json ids equal the fixture" "$PY - $T/o.json $C/expected.json <<'PY'
import json, sys
o, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert o['generated_ids'] == e['generated_ids'] and o['input_ids'] == e['input_ids']
assert set(o['timings']) >= {'preprocess', 'vision', 'prefill', 'decode', 'total'}
assert o['tokens']['image'] == e['num_image_tokens'] and o['tokens']['generated'] == 16
PY"
check "dump written" "[ -s $T/d.safetensors ]"
check "json has the per-image block and the stop reason" "$PY - $T/o.json <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
assert o['images'] == [{'width': 256, 'height': 300, 'resized_width': 252, 'resized_height': 308, 'tokens': 99}]
assert o['stop_reason'] == 'max_tokens'
PY"
# --stop: the answer ends just before the first occurrence of a piece of it; stdout shows none of it
check "--stop cuts the answer before the stop string" "$PY - \"$VLM\" $M25 \"$IMG\" \"$PROMPT\" $T/o.json $T/st.json <<'PY'
import json, subprocess, sys
vlm, model, img, prompt, whole, out = sys.argv[1:]
text = json.load(open(whole))['text']
assert len(text) >= 4, text
stop = text[len(text) // 2:len(text) // 2 + 2]
p = subprocess.run([vlm, 'run', '--model-id', model, '--image', img, '--text', prompt, '--greedy', '--max-tokens',
                    '16', '--stop', stop, '--json', out], capture_output=True)
assert p.returncode == 0, p.stderr
o = json.load(open(out))
want = text[:text.index(stop)]
assert o['text'] == want and o['stop_reason'] == 'stop_string', (o['text'], want, stop)
assert p.stdout.decode('utf-8', 'replace').rstrip('\\n') == want
PY"

# text only, and split_native with its artifacts
"$VLM" run --model-id "$M25" --text "Hello" --max-tokens 4 --greedy >"$T/out2" 2>"$T/err2"
check "text-only run exits 0" "[ $? -eq 0 ]"
"$VLM" run --model-id "$M25" --mode split_native --output-dir "$T/split" --image "$IMG" --text "$PROMPT" \
  --greedy --max-tokens 16 --json "$T/s.json" >/dev/null 2>"$T/err3"
check "split_native exits 0" "[ $? -eq 0 ]"
check "split artifacts written" "[ -f $T/split/vision/model.safetensors ] && [ -f $T/split/language/tokenizer.json ]"
check "split_native ids equal original's" "$PY -c \"import json;a=json.load(open('$T/o.json'));b=json.load(open('$T/s.json'));assert a['generated_ids']==b['generated_ids']\""
check "no temporary files left" "[ -z \"\$(find $T/split -name '*vlm-tmp*')\" ]"

# bad input
"$VLM" run --model-id "$M25" --image "$T/missing.png" --text hi >/dev/null 2>"$T/e1"
check "missing image: exit 1" "[ $? -eq 1 ]"
check "missing image: message names it" "grep -q 'missing.png' $T/e1"
"$VLM" run --model-id "$T/nomodel" --text hi >/dev/null 2>"$T/e2"
check "missing model: exit 1" "[ $? -eq 1 ] && grep -q 'not found' $T/e2"
echo '{"model_type": "llava"}' >"$T/cfg.json"; mkdir -p "$T/llava"; cp "$T/cfg.json" "$T/llava/config.json"
"$VLM" run --model-id "$T/llava" --text hi >/dev/null 2>"$T/e3"
check "unsupported model: exit 1, names supported" "[ $? -eq 1 ] && grep -q 'qwen2_5_vl' $T/e3"
"$VLM" run --model-id "$M25" --mode turbo --text hi >/dev/null 2>"$T/e4"
check "unknown mode: exit 2" "[ $? -eq 2 ] && grep -q turbo $T/e4"
for bad in "--temperature -1" "--top-k -5" "--top-p -0.5" "--top-p 1.5" "--repetition-penalty -1" \
  "--repetition-penalty 0"; do
  "$VLM" run --model-id "$M25" --text hi $bad >"$T/eneg" 2>&1
  check "negative sampling flag $bad: exit 2 naming it" "[ $? -eq 2 ] && grep -q -- '${bad%% *}' $T/eneg"
done
"$VLM" run --model-id "$M25" --text hi --precision fp8 >/dev/null 2>"$T/ep"
check "unknown precision: exit 2 naming it" "[ $? -eq 2 ] && grep -q fp8 $T/ep"
# --precision bf16: the same greedy ids as the fixture on this case (measured for every case in
# test_pipeline's test_bf16), with --threads 1 and 2 giving the same answer
"$VLM" run --model-id "$M25" --image "$IMG" --text "$PROMPT" --greedy --max-tokens 16 --precision bf16 --threads 1 \
  --json "$T/b1.json" >/dev/null 2>"$T/eb1"
check "bf16 run exits 0" "[ $? -eq 0 ]"
"$VLM" run --model-id "$M25" --image "$IMG" --text "$PROMPT" --greedy --max-tokens 16 --precision bf16 --threads 2 \
  --json "$T/b2.json" >/dev/null 2>"$T/eb2"
check "bf16 ids equal across thread counts and to the fixture" "$PY - $T/b1.json $T/b2.json $C/expected.json <<'PY'
import json, sys
a, b, e = (json.load(open(p)) for p in sys.argv[1:4])
assert a['generated_ids'] == b['generated_ids'] == e['generated_ids']
PY"
"$VLM" run --model-id "$M25" --text hi --bogus >/dev/null 2>"$T/e5"
check "unknown flag: exit 2" "[ $? -eq 2 ] && grep -q bogus $T/e5"
"$VLM" run --model-id "$M25" --text hi --max-tokens 500000 >/dev/null 2>"$T/e6"
check "beyond the context: exit 1" "[ $? -eq 1 ] && grep -qi 'context\|position' $T/e6"
VLM_MEMORY_LIMIT_MB=1 "$VLM" run --model-id "$M25" --image "$FIX/cases/preproc_photo_1920x1080/photo_1920x1080.png" \
  --text hi >/dev/null 2>"$T/e7"
check "image larger than memory allows: exit 1, suggests --max-pixels" "[ $? -eq 1 ] && grep -q 'max-pixels' $T/e7"
printf 'not an image' >"$T/fake.jpg"
"$VLM" run --model-id "$M25" --image "$T/fake.jpg" --text hi >/dev/null 2>"$T/e8"
check "not an image: exit 1, names formats" "[ $? -eq 1 ] && grep -q 'JPEG' $T/e8"
"$VLM" run --model-id "$M25" --image "$IMG" --text hi --device cuda >/dev/null 2>"$T/e9"
rc=$?
if "$VLM" run --help >/dev/null && ! nvidia-smi >/dev/null 2>&1; then
  check "--device cuda without a GPU: exit 1 with the reason" "[ $rc -eq 1 ] && grep -qi 'cuda' $T/e9"
fi
exit $fail
