#!/usr/bin/env bash
# Hostile input the CLI must refuse clearly, fast and without leftovers:
#   - a FIFO (or a device) as any input path: refused at once, naming what it is, never a hang
#     (every call runs under `timeout`; exit 124 would be the hang);
#   - NaN weights: an error naming the stage (the logits, the image embeddings) and the tensor, not
#     garbage with exit 0; `vlm info --check` lists them;
#   - unwritable output paths (--json, --dump, --out): refused before the model loads;
#   - artifact writers: a killed writer's temporaries are removed by the next writer, a live one's
#     are not; writers started together on one output directory all succeed;
#   - a checkpoint whose chat template vlm does not know: one warning naming what vlm renders.
# usage: bash test_reliability.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$(realpath "$1")
FIX=$(realpath "$2")
MODEL=$FIX/models/tiny-qwen2_5-vl
IMG=$FIX/cases/q25_photo/photo_256x300.png
SCRIPT_DIR=$(dirname "$(realpath "$0")")
source "$SCRIPT_DIR/lib.sh"
EXPECT_TIMEOUT=60
export VLM_THREADS=1

# A copy of the tiny model (links to its large files, real copies of what a test changes).
copy_model() {
    mkdir -p "$1"
    for f in "$MODEL"/*; do ln -s "$f" "$1/$(basename "$f")"; done
}

# ---- FIFOs and devices as inputs ----
mkfifo fifo
expect run 1 "fifo is a FIFO (named pipe), not a regular file" -- --model-id "$MODEL" --image fifo --text hi
expect run 1 "fifo is a FIFO (named pipe), not a regular file" -- --model-id "$MODEL" --file fifo
expect tokenize 1 "fifo is a FIFO (named pipe), not a regular file" -- --model-id "$MODEL" --file fifo
expect preprocess 1 "fifo is a FIFO (named pipe), not a regular file" -- --model-id "$MODEL" --image fifo --out pv.st
expect bench 1 "--image fifo is a FIFO (named pipe), not a regular file" -- --model-id "$MODEL" --image fifo \
    --device cpu --runs 1
expect run 1 "/dev/zero is a character device, not a regular file" -- --model-id "$MODEL" --image /dev/zero --text hi
copy_model fifo_model
rm fifo_model/config.json && mkfifo fifo_model/config.json
expect run 1 "config.json is a FIFO" -- --model-id fifo_model --text hi
expect info 1 "config.json is a FIFO" -- --model-id fifo_model
copy_model fifo_weights
rm fifo_weights/model.safetensors && mkfifo fifo_weights/model.safetensors
expect run 1 "model.safetensors is a FIFO" -- --model-id fifo_weights --text hi
expect run 1 "model.safetensors is a FIFO" -- --model-id fifo_weights --text hi --mode split_native \
    --output-dir fifo_split
copy_model fifo_tok
rm fifo_tok/tokenizer.json && mkfifo fifo_tok/tokenizer.json
expect run 1 "tokenizer.json is a FIFO" -- --model-id fifo_tok --text hi

# ---- output paths are checked before the model loads ----
# a model that does not exist: the output path is what fails, so it was checked first
expect run 1 "--json $TMP/nodir/r.json: the directory $TMP/nodir does not exist" -- \
    --model-id "$TMP/no-such-model" --text hi --json "$TMP/nodir/r.json"
expect run 1 "--dump $TMP: is a directory" -- --model-id "$TMP/no-such-model" --text hi --dump "$TMP"
expect preprocess 1 "--out $TMP/nodir/pv.st: the directory $TMP/nodir does not exist" -- --model-id "$MODEL" \
    --image "$IMG" --out "$TMP/nodir/pv.st"
mkdir ro && chmod 555 ro
if [ "$(id -u)" -ne 0 ]; then # root writes anywhere
    expect run 1 "--json ro/r.json: cannot write in ro" -- --model-id "$MODEL" --text hi --json ro/r.json
fi
# nothing streamed: the answer never started
QUIET_STDOUT=1 expect run 1 "--json $TMP/nodir/r.json" -- --model-id "$MODEL" --text hi --max-tokens 2 \
    --json "$TMP/nodir/r.json"
# devices are written in place (a rename over /dev/null would replace the device node)
expect run 0 "" -- --model-id "$MODEL" --text hi --max-tokens 2 --json /dev/null
[ -c /dev/null ] || fail "/dev/null is no longer a character device"

# ---- NaN weights ----
# poison PATTERN ROW COL: a copy of the tiny model whose tensor named PATTERN has a bf16 NaN there
poison() {
    local dir=$1 name=$2 row=$3 col=$4
    copy_model "$dir"
    rm "$dir/model.safetensors"
    python3 - "$MODEL/model.safetensors" "$dir/model.safetensors" "$name" "$row" "$col" <<'EOF'
import json, struct, sys
src, dst, name, row, col = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
data = bytearray(open(src, 'rb').read())
n = struct.unpack('<Q', data[:8])[0]
h = json.loads(data[8:8 + n])
t = h[name]
assert t['dtype'] == 'BF16'
off = 8 + n + t['data_offsets'][0] + 2 * (row * t['shape'][-1] + col)
data[off:off + 2] = struct.pack('<H', 0x7fc0)
open(dst, 'wb').write(data)
EOF
}
poison nan_text model.layers.1.mlp.up_proj.weight 5 3
expect run 1 "the language model's logits for generated token 1: not finite" -- --model-id nan_text --text hi
grep -qF "the checkpoint's tensor model.layers.1.mlp.up_proj.weight: 1 value is NaN or infinite (the first at row 5, column 3)" err.txt ||
    fail "the NaN weight is not named: $(cat err.txt)"
expect info 1 "1 tensor holds NaN or infinity" -- --model-id nan_text --check
grep -qF "tensor model.layers.1.mlp.up_proj.weight: 1 value is NaN or infinite (the first at row 5, column 3)" out.txt ||
    fail "vlm info --check does not list the tensor: $(cat out.txt)"
"$VLM" info --model-id nan_text --check --json >out.txt 2>err.txt
grep -qF '"nonfinite": [{"name": "model.layers.1.mlp.up_proj.weight", "count": 1, "row": 5, "column": 3' out.txt ||
    fail "vlm info --check --json: $(cat out.txt)"
expect info 0 "" -- --model-id "$MODEL" --check
grep -q "all [0-9]* tensors are finite" out.txt || fail "vlm info --check on a good model: $(cat out.txt)"
poison nan_vision visual.blocks.0.mlp.up_proj.weight 2 1
expect run 1 "the vision encoder's output (the image embeddings): not finite" -- --model-id nan_vision \
    --image "$IMG" --text hi
grep -qF "the checkpoint's tensor visual.blocks.0.mlp.up_proj.weight" err.txt || fail "vision NaN not named: $(cat err.txt)"
expect run 1 "not finite" -- --model-id nan_vision --image "$IMG" --text hi --mode split_native --output-dir nan_split
# a text-only prompt never runs the poisoned vision tower
expect run 0 "" -- --model-id nan_vision --text hi --max-tokens 2

# ---- artifact writers: leftovers of killed writers, concurrent writers ----
dead_pid() { # a pid that no longer runs
    sh -c 'exit 0' &
    local p=$!
    wait "$p"
    echo "$p"
}
mkdir -p split
dead=$(dead_pid)
mkdir split/vision.vlm-tmp."$dead" && head -c 100000 /dev/zero >split/vision.vlm-tmp."$dead"/model.safetensors
mkdir split/language.old.vlm-tmp."$dead"
head -c 1000 /dev/zero >split/vision.onnx.data.vlm-tmp."$dead"
sleep 300 &
live=$!
mkdir split/language.vlm-tmp."$live"
mkdir split/notes.tmp."$dead" # not a vlm temporary: never touched
expect split 0 "" -- --model-id "$MODEL" --output-dir split
for t in vision.vlm-tmp."$dead" language.old.vlm-tmp."$dead" vision.onnx.data.vlm-tmp."$dead"; do
    [ -e split/"$t" ] && fail "the killed writer's $t was not removed"
done
[ -d split/language.vlm-tmp."$live" ] || fail "a live writer's temporary was removed"
[ -d split/notes.tmp."$dead" ] || fail "a directory vlm did not make was removed"
kill "$live"
wait "$live" 2>/dev/null
# a writer really killed in the middle (SIGKILL: no cleanup runs) leaves at most its temporaries,
# which the next writer removes
"$VLM" quantize --model-id "$MODEL" --out killed/q4 >/dev/null 2>&1 &
writer=$!
sleep 0.3
kill -9 "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
expect quantize 0 "" -- --model-id "$MODEL" --out killed/q4
left=$(find killed -maxdepth 1 -name '*vlm-tmp*')
[ -z "$left" ] || fail "temporaries left after the next writer: $left"
# four writers of one fresh output directory at once: all succeed, and the result is fresh
for round in 1 2; do
    rm -rf together
    pids=()
    for i in 1 2 3 4; do
        "$VLM" split --model-id "$MODEL" --output-dir together >"w$i.out" 2>"w$i.err" &
        pids+=($!)
    done
    for i in 1 2 3 4; do
        wait "${pids[$((i - 1))]}" || fail "round $round: concurrent split $i failed: $(cat "w$i.err")"
    done
    [ -z "$(find together -name '*vlm-tmp*')" ] || fail "round $round: temporaries left: $(ls together)"
done
for i in 1 2 3; do
    "$VLM" run --model-id "$MODEL" --mode split_native --output-dir same --text hi --max-tokens 2 >"r$i.out" \
        2>"r$i.err" &
    pids[i]=$!
done
for i in 1 2 3; do wait "${pids[i]}" || fail "concurrent run --mode split_native $i failed: $(cat "r$i.err")"; done

# ---- chat templates ----
copy_model custom_tmpl
rm custom_tmpl/chat_template.json custom_tmpl/tokenizer_config.json
python3 - "$MODEL" custom_tmpl <<'EOF'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
t = json.load(open(src + '/chat_template.json'))['chat_template']
json.dump({'chat_template': t.replace('You are a helpful assistant.', 'You are a pirate.')}, open(dst + '/chat_template.json', 'w'))
c = json.load(open(src + '/tokenizer_config.json'))
c.pop('chat_template', None)
json.dump(c, open(dst + '/tokenizer_config.json', 'w'))
EOF
expect run 0 "the chat template in chat_template.json is not one vlm knows" -- --model-id custom_tmpl --text hi \
    --max-tokens 2
[ "$(grep -c "not one vlm knows" err.txt)" -eq 1 ] || fail "the template warning is not given once: $(cat err.txt)"
grep -qF "vlm renders the Qwen2-VL / Qwen2.5-VL template instead" err.txt || fail "the warning does not say what vlm uses"
expect run 0 "" -- --model-id "$MODEL" --text hi --max-tokens 2
grep -q "chat template" err.txt && fail "a warning for the checkpoint's own (known) template: $(cat err.txt)"

finish
