#!/usr/bin/env bash
# Coverage-guided fuzzing of every target tests/fuzz/fuzz_*.c with libFuzzer (ASan + UBSan with
# float-cast-overflow), one target after another, each for a given time. Exits 1 on any finding
# (a crash, a sanitizer report, a leak, an input slower than the timeout or one using more memory
# than the limit) and leaves the reproducer in BUILD/fuzz/findings/.
#
#   scripts/fuzz.sh BUILD SECONDS [TARGET...]    fuzz (make fuzz; .ci/run runs it for 60 s each)
#   scripts/fuzz.sh --merge BUILD [TARGET...]    add to the committed corpus what the runs found
#                                                that reaches new coverage (make fuzz-merge)
#
# The committed corpus (tests/fuzz/corpus/<target>/: seeds, coverage-found inputs, regression
# reproducers) is only read; what a run finds goes to BUILD/fuzz/corpus/<target>/ and survives
# between runs. --merge keeps the committed corpus small: libFuzzer's merge adds only the inputs
# that reach coverage the committed ones do not, each at most MERGE_MAX_LEN bytes.
set -uo pipefail
cd "$(dirname "$0")/.."

merge=0
if [[ ${1:-} == --merge ]]; then
  merge=1
  shift
fi
if (($# < 1 + (1 - merge))); then
  echo "usage: scripts/fuzz.sh BUILD SECONDS [TARGET...] | scripts/fuzz.sh --merge BUILD [TARGET...]" >&2
  exit 2
fi
build=$1
shift
if ((!merge)); then
  seconds=$1
  shift
  [[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || {
    echo "fuzz.sh: SECONDS must be a positive number, got '$seconds'" >&2
    exit 2
  }
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi

# Limits per input: a hang or a blow-up is a finding, not a slow run.
TIMEOUT_S=${FUZZ_TIMEOUT_S:-20}
RSS_MB=${FUZZ_RSS_MB:-2560}
MERGE_MAX_LEN=${FUZZ_MERGE_MAX_LEN:-8192}
# Leaks are findings; ONNX Runtime's process-lifetime allocations are not (tests/lsan.supp).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}
export VLM_DATA_DIR=$PWD OMP_NUM_THREADS=1 VLM_THREADS=1 VLM_LOG=error

mkdir -p "$build/fuzz/logs" "$build/fuzz/findings"
failed=()
printf '%-20s %10s %8s %8s %8s %s\n' target execs exec/s cov ft corpus
for t in "${targets[@]}"; do
  bin=$build/tests/$t
  seeds=tests/fuzz/corpus/$t
  work=$build/fuzz/corpus/$t
  log=$build/fuzz/logs/$t.log
  if [[ ! -x $bin ]]; then
    echo "fuzz.sh: $bin is not built (make fuzz builds it)" >&2
    failed+=("$t(not built)")
    continue
  fi
  mkdir -p "$work" "$seeds"
  if ((merge)); then
    before=$(find "$seeds" -type f | wc -l)
    "$bin" -merge=1 -max_len="$MERGE_MAX_LEN" -timeout="$TIMEOUT_S" -rss_limit_mb="$RSS_MB" \
      "$seeds" "$work" >"$log" 2>&1 || failed+=("$t(merge)")
    after=$(find "$seeds" -type f | wc -l)
    echo "$t: $before -> $after committed inputs ($(du -sh "$seeds" | cut -f1))"
    continue
  fi
  "$bin" -max_total_time="$seconds" -timeout="$TIMEOUT_S" -rss_limit_mb="$RSS_MB" \
    -print_final_stats=1 -artifact_prefix="$build/fuzz/findings/$t-" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  printf '%-20s %10s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
  if ((rc != 0)); then
    failed+=("$t")
    echo "fuzz.sh: $t found a problem (exit $rc); the log's end ($log):" >&2
    grep -E -A40 '^==[0-9]+==ERROR|runtime error|^SUMMARY|ALARM|out-of-memory|deadly signal' "$log" | head -80 >&2
    ls "$build/fuzz/findings/$t-"* 2>/dev/null | sed 's/^/  reproducer: /' >&2
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
