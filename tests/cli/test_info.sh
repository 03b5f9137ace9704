#!/usr/bin/env bash
# vlm info on each fixture model: dimensions and parameter counts (the tensors of the file), and
# make-synthetic's demo checkpoint; bad input gets a clear message.
set -u
VLM=$1
FIX=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
PY=/usr/bin/python3
expect() { # model, python assertions on the JSON j
  "$VLM" info --model-id "$FIX/models/$1" --json >"$T/$1.json" 2>"$T/$1.err"
  check "info $1 exits 0" "[ $? -eq 0 ]"
  check "info $1 facts" "$PY -c \"import json; j=json.load(open('$T/$1.json')); t=j['text']; v=j['vision']; p=j['params']; $2\""
}
expect tiny-qwen2_5-vl "assert j['family']=='Qwen2.5-VL' and t['hidden_size']==64 and t['num_layers']==2 and t['num_heads']==4 and t['num_kv_heads']==2 and t['head_dim']==16 and t['intermediate_size']==128 and t['tie_word_embeddings'] and v['depth']==4 and v['width']==32 and v['mlp_hidden']==48 and v['out_hidden']==64 and v['fullatt_blocks']==[1,3] and p['total']==p['vision']+p['language'] and p['language']==151936*64+2*(2*64+64*64+64+2*(32*64+32)+64*64+3*128*64)+64 and j['special_tokens']['eos']==[151645,151643]"
expect tiny-qwen2-vl "assert j['family']=='Qwen2-VL' and t['hidden_size']==32 and t['num_kv_heads']==1 and not t['tie_word_embeddings'] and v['width']==32 and v['mlp_hidden']==64 and v['out_hidden']==32 and p['language']==2*151936*32+2*(2*32+32*32+32+2*(16*32+16)+32*32+3*96*32)+32"
expect tiny-qwen2-vl-c "assert t['hidden_size']==48 and t['num_heads']==3 and v['width']==40 and v['head_dim']==20 and v['mlp_hidden']==160 and v['out_hidden']==48 and p['vision']==40*1176+2*(4*40+3*40*40+3*40+40*40+40+2*160*40+160+40)+2*40+160*160+160+48*160+48"

"$VLM" make-synthetic --config demo --out "$T/demo" --seed 3 2>/dev/null
check "make-synthetic demo" "[ $? -eq 0 ] && [ -f $T/demo/model.safetensors ] && [ -f $T/demo/tokenizer.json ]"
"$VLM" info --model-id "$T/demo" --json >"$T/demo.json"
check "demo is a loadable Qwen2.5-VL" "$PY -c \"import json; j=json.load(open('$T/demo.json')); assert j['family']=='Qwen2.5-VL' and j['params']['total'] > 40e6\""
"$VLM" make-synthetic --config nonsense --out "$T/x" 2>"$T/e1"
check "unknown config: exit 1, lists the known ones" "[ $? -eq 1 ] && grep -q 'qwen2.5-vl-3b' $T/e1"
"$VLM" info 2>"$T/e2"
check "info without --model-id: exit 2" "[ $? -eq 2 ]"
mkdir -p "$T/broken" && cp "$FIX/models/tiny-qwen2-vl/config.json" "$T/broken/" && head -c 1000 "$FIX/models/tiny-qwen2-vl/model.safetensors" >"$T/broken/model.safetensors"
"$VLM" info --model-id "$T/broken" 2>"$T/e3"
check "truncated checkpoint: exit 1, names the file" "[ $? -eq 1 ] && grep -q 'model.safetensors' $T/e3"
exit $fail
