#!/usr/bin/env bash
# Prepares what scripts/gpu_check.sh needs on the GPU machine (the device tool's H200), which has
# nvcc, CMake and PyTorch but none of this project's Debian libraries, cannot install any, and is
# sent only the working tree (tracked and untracked-not-ignored files) plus up to 8 carried paths,
# 64 MiB in all:
#   build-gpu/          vlm, test_cuda and test_text_model built here for sm_90a (-DVLM_CUDA_ARCH=90a;
#                       no ONNX Runtime: run_onnx runs its vision on the CPU anyway)
#   .gpu/bundle.tar.xz  those binaries; lib/: the shared libraries they need from this machine (ldd,
#                       less glibc, libstdc++ and CUDA's, which the GPU machine has); include/: the
#                       headers of those libraries (jpeg, png, zlib, pcre2, utf8proc, cJSON, libcrypto),
#                       so the GPU machine can also build from source with them; fixtures/: every model case of tests/fixtures (expected tensors without
#                       the preprocessing ones); images/: the 448x448 and 1920x1080 bench images
#   .gpu/bundle.txt     what it holds and the hash of the sources it was built from
# Then it checks what would travel against the 64 MiB and prints the exact `run` call to make.
# Usage: scripts/gpu_bundle.sh   (after scripts/setup.sh; rerun after any source change)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build-gpu
STAGE=$BUILD/bundle
FIX=tests/fixtures
LIMIT=$((64 << 20))

[[ -f $FIX/README.md ]] || { echo "gpu_bundle: $FIX missing; run scripts/setup.sh first" >&2; exit 1; }

echo "gpu_bundle: building $BUILD (sm_90a)" >&2
cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DVLM_CUDA_ARCH=90a -DVLM_ONNXRUNTIME=OFF >/dev/null
grep -q "VLM_HAVE_CUDA" $BUILD/CMakeFiles/vlmcore.dir/flags.make ||
  { echo "gpu_bundle: this build has no CUDA backend (nvcc not found?)" >&2; exit 1; }
nice cmake --build $BUILD -j "$(nproc)" --target vlm test_cuda test_text_model >&2

rm -rf "$STAGE" && mkdir -p "$STAGE"/{bin,lib,include/cjson,images}
BINS=(vlm tests/test_cuda tests/test_text_model)
for b in "${BINS[@]}"; do cp "$BUILD/$b" "$STAGE/bin/"; done

# Shared libraries: what ldd resolves, less what every Linux with a CUDA driver has (glibc, the C++
# runtime) and CUDA's own (cuBLAS, which gpu_check.sh finds there; 600 MB could not travel anyway).
SKIP='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libstdc\+\+|libgcc_s|libcublas|libcudart|libcuda\.)'
for b in "${BINS[@]}"; do ldd "$BUILD/$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    [[ $name =~ $SKIP ]] && continue
    cp -L "$path" "$STAGE/lib/$name"
  done
# link names for building there (libX.so -> the soname copied above)
for pair in jpeg:libjpeg.so.62 png16:libpng16.so.16 png:libpng16.so.16 z:libz.so.1 pcre2-8:libpcre2-8.so.0 \
  utf8proc:libutf8proc.so.2 cjson:libcjson.so.1 crypto:libcrypto.so.3; do
  [[ -f $STAGE/lib/${pair#*:} ]] || { echo "gpu_bundle: ${pair#*:} not among the binaries' libraries" >&2; exit 1; }
  ln -sf "${pair#*:}" "$STAGE/lib/lib${pair%%:*}.so"
done
# headers of the same libraries (the -dev packages of scripts/setup.sh)
for h in jpeglib.h jerror.h jmorecfg.h x86_64-linux-gnu/jconfig.h libpng16/png.h libpng16/pngconf.h \
  libpng16/pnglibconf.h zlib.h zconf.h pcre2.h utf8proc.h; do
  cp -L "/usr/include/$h" "$STAGE/include/"
done
cp -L /usr/include/cjson/cJSON.h "$STAGE/include/cjson/"
cp -rL /usr/include/openssl "$STAGE/include/" # libcrypto's headers (SHA-256), with the multiarch ones
cp -L /usr/include/x86_64-linux-gnu/openssl/*.h "$STAGE/include/openssl/"

python3 scripts/gpu_check.py bundle-fixtures "$FIX" "$STAGE/fixtures" >&2

# bench images: the fixtures' 1920x1080 photo, and the same scaled to 448x448 (Pillow, JPEG q95)
/usr/bin/python3 - "$FIX/cases/preproc_photo_1920x1080/photo_1920x1080.png" "$STAGE/images" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
assert im.size == (1920, 1080), im.size
im.save(sys.argv[2] + "/photo_1920x1080.jpg", quality=95)
im.resize((448, 448), Image.BICUBIC).save(sys.argv[2] + "/photo_448x448.jpg", quality=95)
PY

HASH=$(python3 scripts/gpu_check.py source-hash .)
mkdir -p .gpu
{
  echo "source_hash=$HASH"
  echo "commit=$(git rev-parse HEAD)$(git diff --quiet HEAD -- && echo '' || echo ' (with uncommitted changes)')"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(ldd --version | head -1)"
  echo "nvcc=$(/usr/local/cuda/bin/nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo none)"
  echo "libs=$(cd "$STAGE/lib" && ls | tr '\n' ' ')"
} >.gpu/bundle.txt
cp .gpu/bundle.txt "$STAGE/bundle.txt"
echo "gpu_bundle: compressing (xz)" >&2
tar -C "$STAGE" -cf - . | xz -9 -T"$(nproc)" >.gpu/bundle.tar.xz.tmp
mv .gpu/bundle.tar.xz.tmp .gpu/bundle.tar.xz

# What travels: tracked files, untracked files git does not ignore, and the carried .gpu/
tracked=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s | awk '{s += $1} END {print s + 0}')
carried=$(du -sb .gpu | cut -f1)
total=$((tracked + untracked + carried))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "gpu_bundle: travels $(mib $total) of 64 MiB: tracked $(mib $tracked), untracked $(mib $untracked)," \
  ".gpu/ $(mib $carried) (bundle unpacked: $(mib "$(du -sb "$STAGE" | cut -f1)"))"
if ((total > LIMIT)); then
  echo "gpu_bundle: over the device tool's 64 MiB: nothing would travel" >&2
  exit 1
fi
cat <<EOF
gpu_bundle: ready. Dry run here first:
  OUT=/tmp/gpu-check-out VLM_GPU_CHECK_DRY=1 scripts/gpu_check.sh
then, where the device tool lends a GPU, one call:
  run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=540)
(the script keeps to VLM_GPU_CHECK_BUDGET=${VLM_GPU_CHECK_BUDGET:-450} s; results: \$OUT/gpu_check.json, \$OUT/gpu_check.log)
EOF
