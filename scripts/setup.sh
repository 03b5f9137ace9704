#!/usr/bin/env bash
# Installs everything vlm needs to build and test, from Debian's packages and the npm registry.
# Idempotent: packages already present are skipped, ONNX Runtime is fetched once into third_party/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools and libraries (see DESIGN.md "Libraries" for why each one).
PKGS=(
  build-essential cmake pkg-config
  libjpeg62-turbo-dev libpng-dev          # image decoding, the decoders Pillow uses
  libcjson-dev                            # JSON (config, tokenizer.json, safetensors headers)
  libpcre2-dev                            # pre-tokenizer regex (JIT, Unicode classes)
  libutf8proc-dev                         # NFC normalization
  libssl-dev                              # SHA-256 (libcrypto): image identities, KV-block hashes
  libopenblas-dev libopenblas0-openmp     # f32 GEMM panels
  libomp-dev                              # OpenMP for clang builds (gcc brings libgomp)
  clang libclang-rt-dev                   # make fuzz: libFuzzer, ASan + UBSan with float-cast-overflow
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev   # ONNX export
  libmicrohttpd-dev                       # vlm serve: the HTTP server
  libcurl4-openssl-dev                    # vlm bench --serve: the HTTP client; file:// URL parsing
  python3-onnx python3-numpy python3-pil  # test-side checks: onnx checker, Pillow comparison bench
  clang-format clang-tidy gcovr           # make format / format-check, make lint, make coverage
  curl nginx-light python3-prometheus-client  # vlm serve tests: a client, a load balancer, a metrics parser
)
# Node (npm: ONNX Runtime and the OpenAI client of the serve tests) from Debian when there is none.
command -v node >/dev/null || PKGS+=(nodejs)
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else
      echo "setup.sh: missing packages: ${missing[*]}" >&2
      echo "setup.sh: not root and no passwordless sudo; install them with:" >&2
      echo "  sudo apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  else SUDO=; fi
  echo "setup.sh: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "setup.sh: all Debian packages present" >&2
fi

# OpenMP build of OpenBLAS, so its threads and ours share one pool.
if [[ $(id -u) -eq 0 ]] && [[ -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 ]]; then
  update-alternatives --set libopenblas.so.0-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 >/dev/null 2>&1 || true
fi

scripts/fetch_onnxruntime.sh || echo "setup.sh: ONNX Runtime not available; run_onnx will be reported unavailable" >&2

# The official OpenAI client for Node, test-only, at the version of tests/serve/package-lock.json.
if command -v npm >/dev/null; then
  want=$(sed -n 's/.*"openai": "\(.*\)".*/\1/p' tests/serve/package.json)
  have=$(cd tests/serve && node -p "require('./node_modules/openai/version.js').VERSION" 2>/dev/null || true)
  if [[ "$have" != "$want" ]]; then
    (cd tests/serve && npm ci --no-audit --no-fund --silent) ||
      echo "setup.sh: npm ci in tests/serve failed: the OpenAI client tests will fail" >&2
  fi
fi

# The reference fixtures (not tracked: ~86 MB): a copy of ../shared/fixtures when it is beside the
# checkout. Without them, the tests that need them are skipped, naming this fix.
if [[ -d ../shared/fixtures ]]; then
  scripts/refresh_fixtures.sh ../shared/fixtures
else
  echo "setup.sh: ../shared/fixtures not found; the fixture tests will be skipped" >&2
fi
