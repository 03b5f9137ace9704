#!/usr/bin/env bash
# vlm export-onnx: writes vision.onnx + manifest, skips an up-to-date export, re-exports a stale one,
# passes onnx.checker, and reports usage errors (exit 2) and bad checkpoints (exit 1) by name.
# usage: bash test_export_onnx.sh <path-to-vlm> <fixtures-dir>
set -u
VLM=$1
FIX=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
check() { # description, then a command that must succeed
    local what=$1
    shift
    if "$@"; then echo "ok   $what" >&2; else echo "FAIL $what" >&2; fail=1; fi
}

if ! "$VLM" export-onnx --help >/dev/null 2>&1; then
    echo "FAIL vlm export-onnx --help" >&2
    exit 1
fi
MODEL=$FIX/models/tiny-qwen2_5-vl
OUT=$TMP/onnx

# unavailable exporter (built without protobuf-c): the error says so, nothing else to test (skip: 77)
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [[ $rc -ne 0 ]] && grep -q "not built in" "$TMP/err"; then
    echo "skip: $(cat "$TMP/err")" >&2
    exit 77
fi
check "export exits 0" test $rc -eq 0
check "stdout is the path of vision.onnx" grep -qx "$OUT/vision.onnx" "$TMP/out"
check "vision.onnx written" test -s "$OUT/vision.onnx"
check "manifest written" test -s "$OUT/vision.onnx.manifest.json"
check "no external data for a tiny model" test ! -e "$OUT/vision.onnx.data"

# up to date: no second export
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" >/dev/null 2>"$TMP/err"
check "second run exits 0" test $? -eq 0
check "second run says up to date" grep -q "is up to date" "$TMP/err"

# other options make it stale; --force exports anyway
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" --weights f32 --external-data always >/dev/null 2>"$TMP/err"
check "f32 + external export exits 0" test $? -eq 0
check "it says why it exports" grep -q 'exported with weights "stored", "f32" asked for' "$TMP/err"
check "external data written" test -s "$OUT/vision.onnx.data"
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" --weights f32 --external-data always --force >/dev/null 2>"$TMP/err"
check "--force exports again" grep -q "exported the vision tower" "$TMP/err"
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" --external-data never >/dev/null 2>"$TMP/err"
check "back to inline: data file removed" test ! -e "$OUT/vision.onnx.data"

# a truncated vision.onnx is stale
truncate -s 1000 "$OUT/vision.onnx"
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" >/dev/null 2>"$TMP/err"
check "truncated export is redone" grep -q "has 1000 bytes" "$TMP/err"

# the other families
for m in tiny-qwen2-vl tiny-qwen2-vl-c; do
    "$VLM" export-onnx --model-id "$FIX/models/$m" --output-dir "$TMP/$m" >/dev/null 2>"$TMP/err"
    check "export $m" test $? -eq 0
done

# Debian's onnx 1.12 checker
if /usr/bin/python3 -c 'import onnx' 2>/dev/null; then
    for d in "$OUT" "$TMP/tiny-qwen2-vl" "$TMP/tiny-qwen2-vl-c"; do
        check "onnx.checker accepts $d/vision.onnx" /usr/bin/python3 -c \
            'import onnx, sys; onnx.checker.check_model(sys.argv[1], full_check=True)' "$d/vision.onnx"
    done
else
    echo "skip: /usr/bin/python3 has no onnx module (python3-onnx)" >&2
fi

# usage errors: exit 2
"$VLM" export-onnx --output-dir "$OUT" >/dev/null 2>"$TMP/err"
check "missing --model-id exits 2" test $? -eq 2
check "missing --model-id is named" grep -q -- "--model-id is required" "$TMP/err"
"$VLM" export-onnx --model-id "$MODEL" >/dev/null 2>&1
check "missing --output-dir exits 2" test $? -eq 2
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" --weights f64 >/dev/null 2>"$TMP/err"
check "bad --weights exits 2" test $? -eq 2
check "bad --weights is named" grep -q "'f64'" "$TMP/err"
"$VLM" export-onnx --model-id "$MODEL" --output-dir "$OUT" --external-data sometimes >/dev/null 2>&1
check "bad --external-data exits 2" test $? -eq 2

# failures: exit 1 with the path at fault
mkdir -p "$TMP/empty"
"$VLM" export-onnx --model-id "$TMP/empty" --output-dir "$TMP/x" >"$TMP/out" 2>"$TMP/err"
check "checkpoint without files exits 1" test $? -eq 1
check "the error names the directory" grep -q "$TMP/empty" "$TMP/err"
check "nothing on stdout on failure" test ! -s "$TMP/out"

exit $fail
