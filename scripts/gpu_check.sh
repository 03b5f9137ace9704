#!/usr/bin/env bash
# The GPU check of issue #20, made to run in ONE call of the device tool (an H200 lent for 15 minutes
# in all, machine start included), after scripts/gpu_bundle.sh has prepared .gpu/ here:
#   run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=540)
# Steps, most important first; each under `timeout`, sized so that the whole keeps to
# VLM_GPU_CHECK_BUDGET seconds (default 450); a step that no longer fits is skipped and says so:
#   env        GPU, driver, CPU, memory, nvcc, PyTorch (machine facts for the note)
#   unpack     .gpu/bundle.tar.xz -> $WORK/bundle (binaries, libraries, headers, fixtures, images)
#   build      the carried build if it was made from these sources and starts here; else a build
#              here from the carried headers and libraries (the machine has no -dev packages)
#   op_tests   tests/test_cuda: every CUDA op against the CPU scalar reference
#   parity     every fixture case through `vlm run`: cpu, cuda with the f32 GEMM (ids equal to the
#              CPU's and the fixture's, every dumped stage within the fixture's tolerance) and cuda
#              as shipped (bf16 tensor-core GEMM, rtol 1e-2, ids reported)
#   text_model tests/test_text_model (its cuda parity part) with the f32 GEMM
#   synthetic  vlm make-synthetic --config qwen2.5-vl-3b (real sizes, random bf16 weights)
#   smoke_3b   one `vlm run --device cuda` on it (448x448, 32 tokens): first timings, kept if a bench times out
#   bench_448_bf16, bench_1080_bf16   vlm bench --device cuda (448x448: 128 tokens; 1920x1080: 32)
#   hf         perf/hf_anchor.py: Hugging Face's Qwen2.5-VL, bf16 + SDPA, same checkpoint and images
#   bench_448_q4, bench_1080_q4       the same with --quantize (4-bit language model)
#   compare    vlm bench --compare-devices at 448x448 (cpu vs cuda table)
# Results under $OUT (they come back): gpu_check.json (every step, parity, bench medians, HF's
# figures, headline ratios; rewritten after each step, so a timeout keeps what was done),
# gpu_check.log (every step's full output), gpu_check_raw.tar.gz (the raw bench/parity files).
#
# Dry run on a machine without a GPU (here): OUT=/tmp/gpu-check-out VLM_GPU_CHECK_DRY=1 scripts/gpu_check.sh
# -- the same steps with --device cpu, the small `demo` config for the synthetic model, one short run
# per bench, the HF step only compiled (no PyTorch here); VLM_GPU_CHECK_FORCE_BUILD=1 also exercises
# the build-there fallback. Other knobs: VLM_GPU_CHECK_STEPS="op_tests parity ..." (a subset, e.g.
# for a rerun), VLM_GPU_CHECK_WORK (default /tmp/vlm-gpu-check), VLM_GPU_CHECK_BUDGET (seconds).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
DRY=${VLM_GPU_CHECK_DRY:-0}
: "${OUT:?set OUT to the folder for the results (the device tool sets it)}"
WORK=${VLM_GPU_CHECK_WORK:-/tmp/vlm-gpu-check}
BUDGET=${VLM_GPU_CHECK_BUDGET:-450}
STEPS=${VLM_GPU_CHECK_STEPS:-all}
BUNDLE=$ROOT/.gpu/bundle.tar.xz
B=$WORK/bundle
PY=${PYTHON:-python3}
export VLM_DATA_DIR=$ROOT # configs/ and assets/ of this tree (the binaries were built elsewhere)
export VLM_TEST_FIXTURES=$B/fixtures

if [[ $DRY == 1 ]]; then
  DEV=cpu SYN_CONFIG=demo RUNS=1 TOK448=8 TOK1080=4 CMP_RUNS=1 CMP_TOK=4
else
  DEV=cuda SYN_CONFIG=qwen2.5-vl-3b RUNS=3 TOK448=128 TOK1080=32 CMP_RUNS=2 CMP_TOK=32
fi
MODEL=$WORK/synthetic-$SYN_CONFIG

# ---- one step: `step NAME TIMEOUT` runs this script again as `--step NAME` under timeout ----------
state() { [[ -f $WORK/state.env ]] && source "$WORK/state.env"; }
vlm_env() { # run a binary with the carried (or built-there) libraries and the machine's cuBLAS
  LD_LIBRARY_PATH="$B/lib${CUBLAS_DIR:+:$CUBLAS_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
}
vlm() { vlm_env "$VLM_BIN" "$@"; }

if [[ ${1:-} == --step ]]; then
  state
  name=$2
  set -x
  case $name in
  env)
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
    nvidia-smi || true
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Flags)' | cut -c1-300
    free -g
    df -h /tmp "$ROOT" | cat
    head -2 /etc/os-release
    ldd --version | head -1
    (command -v nvcc || ls /usr/local/cuda/bin/nvcc) && nvcc --version 2>/dev/null | tail -2
    cmake --version | head -1
    cc --version | head -1
    $PY -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "transformers", transformers.__version__)' 2>&1 | tail -1
    $PY - "$WORK/env.json" <<'PY'
import json, os, subprocess, sys
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:
        return "error: %s" % e
env = {"gpu": sh("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader"),
       "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"), "cores": os.cpu_count(),
       "mem": sh("free -g | awk '/Mem:/ {print $2 \" GiB\"}'"), "os": sh(". /etc/os-release; echo $PRETTY_NAME"),
       "glibc": sh("ldd --version | head -1"), "nvcc": sh("nvcc --version 2>/dev/null | tail -1"),
       "torch": sh("python3 -c 'import torch; print(torch.__version__)' 2>/dev/null"),
       "transformers": sh("python3 -c 'import transformers; print(transformers.__version__)' 2>/dev/null")}
json.dump(env, open(sys.argv[1], "w"), indent=1)
PY
    ;;
  unpack)
    [[ -f $BUNDLE ]] || { echo "no $BUNDLE: run scripts/gpu_bundle.sh and carry .gpu"; exit 1; }
    rm -rf "$B" && mkdir -p "$B"
    if command -v xz >/dev/null; then tar -C "$B" -xJf "$BUNDLE"; else
      $PY -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE" "$B"
    fi
    cat "$B/bundle.txt"
    du -sh "$B"/*
    ;;
  build)
    # cuBLAS: the CUDA toolkit's, else the one PyTorch's wheels bring
    CUBLAS_DIR=
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib \
      $($PY -c 'import nvidia, os; [print(os.path.join(p, "cublas", "lib")) for p in nvidia.__path__]' 2>/dev/null) \
      $(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13/ {print $NF}' | xargs -r -n1 dirname); do
      if [[ -e $d/libcublas.so.13 ]]; then CUBLAS_DIR=$d; break; fi
    done
    echo "cuBLAS: ${CUBLAS_DIR:-not found}"
    want=$($PY scripts/gpu_check.py source-hash "$ROOT")
    have=$(sed -n 's/^source_hash=//p' "$B/bundle.txt")
    BIN=$B/bin
    why=
    [[ $want == "$have" ]] || why="the carried build is of other sources (bundle $have, here $want)"
    [[ -z $why && ${VLM_GPU_CHECK_FORCE_BUILD:-0} == 1 ]] && why="VLM_GPU_CHECK_FORCE_BUILD=1"
    if [[ -z $why ]]; then
      CUBLAS_DIR=$CUBLAS_DIR vlm_env ldd "$BIN/vlm" | grep -E 'not found|cublas' || true
      CUBLAS_DIR=$CUBLAS_DIR vlm_env "$BIN/vlm" --version || why="the carried vlm does not start here"
    fi
    if [[ -n $why ]]; then
      # Build here: the machine's nvcc, CMake and C compiler, with the carried headers and libraries
      # of jpeg, png, zlib, pcre2, utf8proc, cJSON and libcrypto (no pkg-config or -dev packages needed), no
      # OpenBLAS (perf/ only), no ONNX Runtime or protobuf-c (run_onnx and export-onnx report
      # themselves unavailable), warnings not fatal (another compiler version)
      echo "building here: $why"
      I=$B/include L=$B/lib
      cmake -S "$ROOT" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DVLM_CUDA_ARCH=90a -DVLM_ONNXRUNTIME=OFF \
        -DVLM_WERROR=OFF -DPKG_CONFIG_EXECUTABLE=/nonexistent/pkg-config \
        -DJPEG_INCLUDE_DIR="$I" -DJPEG_LIBRARY="$L/libjpeg.so" -DPNG_PNG_INCLUDE_DIR="$I" \
        -DPNG_LIBRARY="$L/libpng16.so" -DZLIB_INCLUDE_DIR="$I" -DZLIB_LIBRARY="$L/libz.so" \
        -DPCRE2_INCLUDE_DIR="$I" -DPCRE2_LIBRARY="$L/libpcre2-8.so" -DUTF8PROC_INCLUDE_DIR="$I" \
        -DUTF8PROC_LIBRARY="$L/libutf8proc.so" -DCJSON_INCLUDE_DIR="$I" -DCJSON_LIBRARY="$L/libcjson.so" \
        -DOPENSSL_INCLUDE_DIR="$I" -DOPENSSL_CRYPTO_LIBRARY="$L/libcrypto.so" \
        -DPROTOC_C=PROTOC_C-NOTFOUND -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" ||
        exit 1
      grep -q VLM_HAVE_CUDA "$WORK/build/CMakeFiles/vlmcore.dir/flags.make" || { echo "no CUDA backend in the build"; exit 1; }
      cmake --build "$WORK/build" -j "$(nproc)" --target vlm test_cuda test_text_model || exit 1
      BIN=$WORK/build-bin
      rm -rf "$BIN" && mkdir -p "$BIN"
      cp "$WORK/build/vlm" "$WORK/build/tests/test_cuda" "$WORK/build/tests/test_text_model" "$BIN/"
      CUBLAS_DIR=$CUBLAS_DIR vlm_env "$BIN/vlm" --version || exit 1
      if [[ $DRY == 1 ]]; then # here, prove no header came from this machine's -dev packages
        if grep -rhoE '/usr/include/(jpeglib|jconfig|jmorecfg|jerror|png|pngconf|pnglibconf|zlib|zconf|pcre2|utf8proc)\.h|/usr/include/(cjson|openssl|x86_64-linux-gnu/openssl)/' \
          "$WORK/build" --include='*.make' --include='*.d' --include='*.ts' | sort -u | grep .; then
          echo "the build used this machine's headers above, not the carried ones"
          exit 1
        fi
      fi
      echo "built here: $why" >"$WORK/build-note"
    else
      echo "carried build: $BIN (bundle of these sources)" >"$WORK/build-note"
    fi
    {
      echo "VLM_BIN=$BIN/vlm"
      echo "TEST_BIN=$BIN"
      echo "CUBLAS_DIR=$CUBLAS_DIR"
    } >"$WORK/state.env"
    cat "$WORK/build-note"
    ;;
  op_tests)
    vlm_env "$TEST_BIN/test_cuda"
    rc=$?
    [[ $rc == 77 && $DRY == 1 ]] && exit 77 # no GPU here: skipped with its reason, as in CI
    [[ $rc == 77 ]] && echo "test_cuda skipped on the GPU machine: the CUDA backend cannot use this GPU (reason above)"
    ((rc == 77)) && exit 1
    exit $rc
    ;;
  parity)
    if [[ $DRY == 1 ]]; then runs="cpu:cpu:1e-4,cuda_f32:cpu:1e-4:VLM_CUDA_GEMM_F32=1,cuda:cpu:1e-2"; else
      runs="cpu:cpu:1e-4,cuda_f32:cuda:1e-4:VLM_CUDA_GEMM_F32=1,cuda:cuda:1e-2"
    fi
    LD_LIBRARY_PATH="$B/lib${CUBLAS_DIR:+:$CUBLAS_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      $PY scripts/gpu_check.py parity --vlm "$VLM_BIN" --fixtures "$B/fixtures" --work "$WORK/parity" \
      --out "$WORK/parity.json" --runs "$runs" --timeout 60 --budget "$STEP_BUDGET"
    ;;
  text_model)
    VLM_CUDA_GEMM_F32=1 vlm_env "$TEST_BIN/test_text_model"
    ;;
  synthetic)
    if [[ -f $MODEL/config.json && -f $MODEL/.complete ]]; then echo "already made: $MODEL"; exit 0; fi
    rm -rf "$MODEL"
    vlm make-synthetic --config "$SYN_CONFIG" --out "$MODEL" && touch "$MODEL/.complete" && du -sh "$MODEL"
    ;;
  smoke_3b)
    # one plain run first: its timings survive even if a bench below runs out of time
    vlm run --model-id "$MODEL" --image "$B/images/photo_448x448.jpg" --text "Describe this image." --greedy \
      --max-tokens 32 --ignore-eos --device "$DEV" --json "$WORK/smoke_3b.json"
    ;;
  bench_*)
    key=${name#bench_}
    img=$B/images/photo_448x448.jpg tok=$TOK448
    [[ $key == 1080_* ]] && img=$B/images/photo_1920x1080.jpg tok=$TOK1080
    q=()
    [[ $key == *_q4 ]] && q=(--quantize)
    vlm bench --model-id "$MODEL" --image "$img" --modes original --device "$DEV" --runs "$RUNS" \
      --max-tokens "$tok" --ignore-eos "${q[@]}" --output-dir "$WORK/artifacts" --output "$WORK/bench_$key.json"
    ;;
  hf)
    if [[ $DRY == 1 ]]; then
      PYTHONDONTWRITEBYTECODE=1 $PY -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" perf/hf_anchor.py || exit 1
      $PY perf/hf_anchor.py --help >/dev/null || exit 1
      echo "dry run: perf/hf_anchor.py compiles; not run (no PyTorch or GPU here)"
      exit 77
    fi
    PYTHONUNBUFFERED=1 $PY perf/hf_anchor.py --model "$MODEL" --small-image "$B/images/photo_448x448.jpg" \
      --large-image "$B/images/photo_1920x1080.jpg" --max-tokens "$TOK448" --runs "$RUNS" --out "$WORK/hf.json"
    ;;
  compare)
    rm -rf "$WORK/compare" && mkdir -p "$WORK/compare" && cd "$WORK/compare" || exit 1
    [[ $DRY == 1 ]] && echo "dry run: no GPU here, so the cuda side is reported skipped"
    vlm bench --model-id "$MODEL" --image "$B/images/photo_448x448.jpg" --modes original --compare-devices \
      --runs "$CMP_RUNS" --max-tokens "$CMP_TOK" --ignore-eos --output-dir "$WORK/artifacts"
    ;;
  *)
    echo "unknown step $name"
    exit 2
    ;;
  esac
  exit
fi

# ---- the driver -------------------------------------------------------------------------------
mkdir -p "$OUT" "$WORK/logs"
LOG=$OUT/gpu_check.log
START=$(date +%s)
DEADLINE=$((START + BUDGET))
rm -f "$WORK/steps.jsonl"
# results of the steps about to run go; those of other steps (an earlier call on a warm machine)
# stay, marked "from an earlier call" in the summary
for s in env parity smoke_3b hf bench_448_bf16 bench_1080_bf16 bench_448_q4 bench_1080_q4 compare; do
  if [[ $STEPS == all || " $STEPS " == *" $s "* ]]; then
    rm -rf "$WORK/$s.json" "$WORK/logs/$s.log"
    [[ $s == compare ]] && rm -rf "$WORK/compare"
  fi
done
$PY - "$WORK/meta.json" "$DRY" "$BUDGET" "$STEPS" <<'PY'
import json, sys, time
json.dump({"dry_run": sys.argv[2] == "1", "budget_s": int(sys.argv[3]), "steps_asked": sys.argv[4],
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started_epoch": time.time()}, open(sys.argv[1], "w"))
PY
echo "gpu_check: $(date -u +%FT%TZ), budget ${BUDGET}s, work $WORK, dry=$DRY" | tee "$LOG"

FAILED=0
step() { # NAME TIMEOUT_S
  local name=$1 limit=$2
  if [[ $STEPS != all && " $STEPS " != *" $name "* ]]; then return; fi
  local now left t0 rc status note
  now=$(date +%s)
  left=$((DEADLINE - now - 10))
  if ((left < 20)); then
    $PY scripts/gpu_check.py record "$WORK" "$name" skipped 0 0 "out of time (budget ${BUDGET}s)"
    echo "== $name: skipped, out of time" | tee -a "$LOG"
    return
  fi
  ((limit > left)) && limit=$left
  echo "== $name (timeout ${limit}s)" | tee -a "$LOG"
  t0=$(date +%s.%N)
  STEP_BUDGET=$((limit - 10)) timeout -k 10 "$limit" bash "$ROOT/scripts/gpu_check.sh" --step "$name" \
    >"$WORK/logs/$name.log" 2>&1
  rc=$?
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  case $rc in
  0) status=ok note="" ;;
  77) status=skipped note=$(grep -hE 'SKIPPED|skipped|dry run' "$WORK/logs/$name.log" | grep -v '^+' | tail -1) ;;
  124 | 137) status=timeout note="killed after ${limit}s" FAILED=1 ;;
  *) status=fail note=$(grep -v '^+' "$WORK/logs/$name.log" | tail -1) FAILED=1 ;;
  esac
  cat "$WORK/logs/$name.log" >>"$LOG"
  echo "== $name: $status (rc $rc, ${secs}s) $note" | tee -a "$LOG"
  [[ $status != ok ]] && grep -v '^+' "$WORK/logs/$name.log" | tail -15
  $PY scripts/gpu_check.py record "$WORK" "$name" "$status" "$rc" "$secs" "${note:0:300}"
  $PY scripts/gpu_check.py summary "$WORK" "$OUT/gpu_check.json"
}

# timeouts sum past the budget on purpose: a fast step leaves its time to the later ones
step env 30
step unpack 60
step build 300
if [[ ! -f $WORK/state.env ]]; then
  echo "gpu_check: no usable build; stopping" | tee -a "$LOG"
else
  step op_tests 120
  step parity 180
  step text_model 120
  step synthetic 180
  step smoke_3b 60
  step bench_448_bf16 120
  step bench_1080_bf16 120
  step hf 240
  step bench_448_q4 180
  step bench_1080_q4 90
  step compare 150
fi

# raw files (bench JSONs, parity report, HF JSON), small, in one archive
(cd "$WORK" && tar -czf "$OUT/gpu_check_raw.tar.gz" --exclude='*.safetensors' --ignore-failed-read \
  ./*.json ./steps.jsonl parity compare logs build-note 2>/dev/null)
$PY scripts/gpu_check.py summary "$WORK" "$OUT/gpu_check.json" --print | tee -a "$LOG"
echo "gpu_check: done in $(($(date +%s) - START))s; results in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$LOG"
exit $FAILED
