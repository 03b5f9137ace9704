#!/usr/bin/env bash
# Fetches ONNX Runtime's C API into third_party/onnxruntime/{include,lib} from the npm registry:
# the header from com.github.asus4.onnxruntime (API version 29), the library from onnxruntime-node.
# Skipped when ORT_ROOT is set (an official release: include/ + lib/) or the copy is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=third_party/onnxruntime
HEADER_PKG=com.github.asus4.onnxruntime@0.4.9
LIB_PKG=onnxruntime-node@1.30.0

if [[ -n "${ORT_ROOT:-}" ]]; then echo "fetch_onnxruntime.sh: using ORT_ROOT=$ORT_ROOT" >&2; exit 0; fi
if [[ -f $DEST/include/onnxruntime_c_api.h && -f $DEST/lib/libonnxruntime.so.1 ]]; then
  echo "fetch_onnxruntime.sh: ONNX Runtime already in $DEST" >&2; exit 0
fi
command -v npm >/dev/null || { echo "fetch_onnxruntime.sh: npm not found" >&2; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "$HEADER_PKG" "$LIB_PKG" >/dev/null )
mkdir -p "$tmp/h" "$tmp/l"
tar -xzf "$tmp"/com.github.asus4.onnxruntime-*.tgz -C "$tmp/h"
tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp/l"
hdr=$(find "$tmp/h" -name onnxruntime_c_api.h | head -1)
lib=$(find "$tmp/l" -path '*linux/x64*' -name 'libonnxruntime.so.1*' | head -1)
[[ -n $hdr && -n $lib ]] || { echo "fetch_onnxruntime.sh: header or library not found in the npm packages" >&2; exit 1; }
mkdir -p "$DEST/include" "$DEST/lib"
cp "$(dirname "$hdr")"/*.h "$DEST/include/"
cp -L "$lib" "$DEST/lib/libonnxruntime.so.1"
ln -sf libonnxruntime.so.1 "$DEST/lib/libonnxruntime.so"
echo "fetch_onnxruntime.sh: ONNX Runtime installed in $DEST" >&2
