#!/usr/bin/env bash
# vlm preprocess: output equal to the fixtures bit for bit (SHA-256 of the F32 pixel_values), grids,
# overrides, exit codes and messages for bad input. Usage: test_preprocess.sh VLM FIXTURES_DIR
set -u
VLM=$1
FIX=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

MODEL=$FIX/models/tiny-qwen2_5-vl

# tensor bytes of a safetensors file: DATA FILE NAME → writes the tensor's bytes to stdout
tensor() {
    local f=$1 name=$2 hl hdr off
    hl=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
    hdr=$(head -c $((8 + hl)) "$f" | tail -c "$hl")
    off=$(printf '%s' "$hdr" | grep -o "\"$name\":{[^}]*}" | grep -o '"data_offsets":\[[0-9]*,[0-9]*\]' | grep -o '[0-9][0-9]*' | tr '\n' ' ')
    set -- $off
    tail -c +$((8 + hl + $1 + 1)) "$f" | head -c $(($2 - $1))
}

expected_sha() { grep -o '"pixel_values_sha256_f32le": "[0-9a-f]*"' "$1/expected.json" | grep -o '[0-9a-f]\{64\}'; }

# run ARGS... : sets rc, out (stdout), err (stderr)
run() {
    "$VLM" preprocess "$@" >"$TMP/stdout" 2>"$TMP/stderr"
    rc=$?
    out=$(cat "$TMP/stdout")
    err=$(cat "$TMP/stderr")
}

# 1. one EXIF-rotated JPEG: bit-exact pixel_values, grid [1, 12, 8], nothing on stdout
case_dir=$FIX/cases/preproc_jpeg_exif6
run --model-id "$MODEL" --image "$case_dir/jpeg_exif6_photo_171x121.jpg" --out "$TMP/a.safetensors"
[ $rc -eq 0 ] || fail "exif6: exit $rc: $err"
[ -z "$out" ] || fail "exif6: stdout should be empty, got: $out"
got=$(tensor "$TMP/a.safetensors" pixel_values | sha256sum | cut -d' ' -f1)
[ "$got" = "$(expected_sha "$case_dir")" ] || fail "exif6: pixel_values SHA-256 $got"
grid=$(tensor "$TMP/a.safetensors" image_grid_thw | od -An -t d8 | tr -s ' \n' ' ')
[ "$grid" = " 1 12 8 " ] || fail "exif6: grid '$grid'"
grep -q '"pixel_values":{"dtype":"F32","shape":\[96,1176\]' "$TMP/a.safetensors" || fail "exif6: pixel_values header"

# 2. two images (JPEG + PNG) concatenated in order, 2-row grid
case_dir=$FIX/cases/q25_two_images
run --model-id "$MODEL" --image "$case_dir/jpeg_photo_face_140x150.jpg" "$case_dir/tiny_20x30.png" --out "$TMP/b.safetensors"
[ $rc -eq 0 ] || fail "two images: exit $rc: $err"
got=$(tensor "$TMP/b.safetensors" pixel_values | sha256sum | cut -d' ' -f1)
[ "$got" = "$(expected_sha "$case_dir")" ] || fail "two images: pixel_values SHA-256 $got"
grid=$(tensor "$TMP/b.safetensors" image_grid_thw | od -An -t d8 | tr -s ' \n' ' ')
[ "$grid" = " 1 10 10 1 4 6 " ] || fail "two images: grid '$grid'"

# 3. --max-pixels / --min-pixels override preprocessor_config.json
run --model-id "$MODEL" --image "$FIX/cases/q25_photo/photo_256x300.png" --max-pixels 20000 --out "$TMP/c.safetensors"
[ $rc -eq 0 ] || fail "max-pixels: exit $rc: $err"
grid=$(tensor "$TMP/c.safetensors" image_grid_thw | od -An -t d8 | tr -s ' \n' ' ')
[ "$grid" = " 1 10 8 " ] || fail "max-pixels: grid '$grid'"
run --model-id "$MODEL" --image "$FIX/cases/q25_tiny_image/tiny_20x30.png" --min-pixels 100000 --out "$TMP/d.safetensors"
grid=$(tensor "$TMP/d.safetensors" image_grid_thw | od -An -t d8 | tr -s ' \n' ' ')
[ "$grid" = " 1 20 28 " ] || fail "min-pixels: grid '$grid'"

# 4. the format comes from the bytes, not the name
cp "$FIX/cases/q25_photo/photo_256x300.png" "$TMP/photo.jpg"
run --model-id "$MODEL" --image "$TMP/photo.jpg" --out "$TMP/e.safetensors"
[ $rc -eq 0 ] || fail "PNG named .jpg: exit $rc: $err"

# 5. bad input: exit 1 with a message naming the file and the problem, no output file
expect_fail() { # NAME NEEDLE ARGS...
    local name=$1 needle=$2
    shift 2
    rm -f "$TMP/bad.safetensors"
    run "$@" --out "$TMP/bad.safetensors"
    [ $rc -eq 1 ] || fail "$name: exit $rc (want 1): $err"
    printf '%s' "$err" | grep -qF -- "$needle" || fail "$name: message lacks '$needle': $err"
    [ ! -e "$TMP/bad.safetensors" ] || fail "$name: output written anyway"
}
: >"$TMP/empty.png"
printf 'GIF89a\001\000\001\000\000\000\000;' >"$TMP/anim.gif"
printf 'BM\076\000\000\000\000\000\000\000' >"$TMP/pic.bmp"
head -c 3000 "$FIX/cases/preproc_jpeg_420/jpeg420_photo_151x177.jpg" >"$TMP/cut.jpg"
head -c 2000 "$FIX/cases/q25_photo/photo_256x300.png" >"$TMP/cut.png"
printf '\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x03\x00\x00\x00\x03\x08\x00\x00\x00\x00\x73\x43\xea\x63\x00\x00\x00\x0e\x49\x44\x41\x54\x78\x9c\x63\x68\x68\x68\x60\x80\x62\x00\x1b\x0c\x04\x81\x25\x89\x81\x69\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82' >"$TMP/3x3.png"
expect_fail "empty" "empty.png: the file is empty" --model-id "$MODEL" --image "$TMP/empty.png"
expect_fail "gif" "GIF images are not supported (supported formats: JPEG, PNG)" --model-id "$MODEL" --image "$TMP/anim.gif"
expect_fail "bmp" "BMP images are not supported" --model-id "$MODEL" --image "$TMP/pic.bmp"
expect_fail "truncated jpeg" "cut.jpg: cannot decode JPEG: image file is truncated" --model-id "$MODEL" --image "$TMP/cut.jpg"
expect_fail "truncated png" "cut.png: image file is truncated" --model-id "$MODEL" --image "$TMP/cut.png"
expect_fail "missing" "no_such.png" --model-id "$MODEL" --image "$TMP/no_such.png"
expect_fail "too small" "3x3.png: image 3x3 is too small" --model-id "$MODEL" --image "$TMP/3x3.png"
expect_fail "pixel limit" "more than the limit of 1000 decoded pixels" --model-id "$MODEL" \
    --image "$FIX/cases/q25_photo/photo_256x300.png" --max-image-pixels 1000
expect_fail "second image bad" "anim.gif" --model-id "$MODEL" --image "$FIX/cases/q25_photo/photo_256x300.png" "$TMP/anim.gif"
expect_fail "no model" "$TMP/no_model" --model-id "$TMP/no_model" --image "$FIX/cases/q25_photo/photo_256x300.png"
expect_fail "min > max" "must be positive with min <= max" --model-id "$MODEL" --image "$FIX/cases/q25_photo/photo_256x300.png" \
    --min-pixels 5000 --max-pixels 4000

# 6. usage errors: exit 2
run --model-id "$MODEL" --image "$FIX/cases/q25_photo/photo_256x300.png"
[ $rc -eq 2 ] || fail "no --out: exit $rc"
run --model-id "$MODEL" --image x.png --out "$TMP/f.safetensors" --bogus
[ $rc -eq 2 ] || fail "unknown flag: exit $rc"
run --model-id "$MODEL" --image x.png --out "$TMP/f.safetensors" --max-pixels lots
[ $rc -eq 2 ] || fail "bad number: exit $rc"
run --help
[ $rc -eq 0 ] && printf '%s' "$out" | grep -q -- "--min-pixels" || fail "--help"

if [ $fails -ne 0 ]; then
    echo "$fails failure(s)" >&2
    exit 1
fi
echo "test_preprocess.sh: all passed" >&2
